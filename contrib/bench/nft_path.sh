#!/usr/bin/env bash
# The kernel datapath's packets, side by side in one run: on three network
# namespaces (client -- node -- backend, veth pairs, the node routing), a
# client measures bulk TCP throughput, TCP connections per second and UDP
# requests per second to the backend directly, through the ClusterIP with
# svcdns --proxy=nftables on the node, and through the ClusterIP with
# svcdns --proxy=userspace on the node.
#
#   contrib/bench/nft_path.sh               # SECS=3 CONC=32 by default
#   SECS=5 SVCDNS_BIN=build/svcdns contrib/bench/nft_path.sh
#
# Runs as root; every address is inside the namespaces it creates and
# deletes (10.0.1.0/24, 10.0.2.0/24, ClusterIP 10.96.250.1). Builds a
# Release svcdns in build-bench-nft unless SVCDNS_BIN names one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
SECS="${SECS:-3}"
CONC="${CONC:-32}"
[ "$(id -u)" -eq 0 ] || {
	echo "nft_path.sh: run as root (network namespaces, nftables)" >&2
	exit 1
}
if [ -z "${SVCDNS_BIN:-}" ]; then
	cmake -S . -B build-bench-nft -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF >/dev/null
	cmake --build build-bench-nft -j"$(nproc)" --target svcdns >/dev/null
	SVCDNS_BIN=build-bench-nft/svcdns
fi
SVCDNS_BIN="$(realpath "$SVCDNS_BIN")"

tag=$$
C=svcdns-bc-$tag N=svcdns-bn-$tag B=svcdns-bb-$tag
BE=10.0.2.2 CIP=10.96.250.1
tmp="$(mktemp -d /tmp/svcdns-bench-path.XXXXXX)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for ns in $C $N $B; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

for ns in $C $N $B; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
ip -n $N link add n0 type veth peer name c0 netns $C
ip -n $N link add n1 type veth peer name b0 netns $B
ip -n $N addr add 10.0.1.1/24 dev n0
ip -n $N addr add 10.0.2.1/24 dev n1
ip -n $C addr add 10.0.1.2/24 dev c0
ip -n $B addr add $BE/24 dev b0
ip -n $N link set n0 up
ip -n $N link set n1 up
ip -n $C link set c0 up
ip -n $B link set b0 up
ip -n $C route add default via 10.0.1.1
ip -n $B route add default via 10.0.2.1
ip netns exec $N sysctl -qw net.ipv4.ip_forward=1

cc -O2 -o "$tmp/proxy_load" contrib/bench/proxy_load.c
load="$tmp/proxy_load"
ip netns exec $B "$load" sink $BE 8080 &
pids+=($!)
ip netns exec $B "$load" rr $BE 8081 &
pids+=($!)
ip netns exec $B "$load" udp-echo $BE 5301 &
pids+=($!)

mkdir "$tmp/m"
cat >"$tmp/m/bench.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec:
  clusterIP: $CIP
  ports:
    - {name: bulk, port: 8000, targetPort: 8080}
    - {name: rr, port: 8001, targetPort: 8081}
    - {name: udp, port: 5300, targetPort: 5301, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: bench-1, namespace: default, labels: {kubernetes.io/service-name: bench}}
addressType: IPv4
ports: [{name: bulk, port: 8080}, {name: rr, port: 8081}, {name: udp, port: 5301, protocol: UDP}]
endpoints: [{addresses: [$BE], conditions: {ready: true}}]
EOF

svcdns_pid=""
start_svcdns() { # mode
	ip netns exec $N "$SVCDNS_BIN" --manifests "$tmp/m" --listen 127.0.0.1:5353 \
		--upstream none --proxy="$1" --log-level warn 2>>"$tmp/svcdns.log" &
	svcdns_pid=$!
	pids+=($svcdns_pid)
	for _ in $(seq 100); do
		if ip netns exec $C "$load" bulk $CIP 8000 0.01 >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "nft_path.sh: svcdns --proxy=$1 did not forward" >&2
	cat "$tmp/svcdns.log" >&2
	exit 1
}
stop_svcdns() {
	kill "$svcdns_pid"
	wait "$svcdns_pid" 2>/dev/null || true
}

cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

measure() { # name test ip port
	local v
	case "$2" in
	bulk) v=$(ip netns exec $C "$load" bulk "$3" "$4" "$SECS") || v=failed ;;
	connrate) v=$(ip netns exec $C "$load" connrate "$3" "$4" "$SECS" "$CONC") || v=failed ;;
	udprate) v=$(ip netns exec $C "$load" udprate "$3" "$4" "$SECS" "$CONC") || v=failed ;;
	esac
	echo "$1 $2 $v" >>"$tmp/results"
}

: >"$tmp/results"
measure direct bulk $BE 8080
measure direct connrate $BE 8081
measure direct udprate $BE 5301
start_svcdns nftables
measure nftables bulk $CIP 8000
measure nftables connrate $CIP 8001
measure nftables udprate $CIP 5300
stop_svcdns
ip netns exec $N "$SVCDNS_BIN" --proxy-cleanup 2>>"$tmp/svcdns.log"
# The user-space datapath needs the ClusterIPs local (doc/datapath.md, "On a node").
ip -n $N route add local 10.96.0.0/12 dev lo
start_svcdns userspace
measure userspace bulk $CIP 8000
measure userspace connrate $CIP 8001
measure userspace udprate $CIP 5300
stop_svcdns

echo "# $(nproc) cores, ${SECS} s per measure, concurrency $CONC; client, node and backend" \
	"in three namespaces"
awk '
	{ v[$1 "," $2] = $3 }
	END {
		printf "%-16s %10s %10s %10s %9s %9s\n", "measure", "direct", "nftables",
			"userspace", "nft/dir", "usr/dir"
		split("bulk connrate udprate", tests, " ")
		units["bulk"] = "bulk MB/s"; units["connrate"] = "connections/s"
		units["udprate"] = "UDP requests/s"
		for (i = 1; i <= 3; i++) {
			t = tests[i]; d = v["direct," t]; n = v["nftables," t]; u = v["userspace," t]
			printf "%-16s %10s %10s %10s %9s %9s\n", units[t], d, n, u,
				(d > 0 ? sprintf("%.2f", n / d) : "-"), (d > 0 ? sprintf("%.2f", u / d) : "-")
		}
	}' "$tmp/results"
if grep -q . "$tmp/svcdns.log"; then
	echo "# svcdns said:"
	sed 's/^/#   /' "$tmp/svcdns.log"
fi
