#!/usr/bin/env bash
# The ClusterIP datapath side by side, in one run on loopback: a client talks
# to a backend directly, through svcdns --proxy (ClusterIP -> Pod IP), and
# through HAProxy (Debian's package, one thread, splice-auto) configured for
# the same mapping. Three measures: bulk TCP throughput (one connection, MB/s),
# connection rate (short request/response connections, CONC at a time), and
# UDP request rate (CONC requests in flight; HAProxy does not proxy UDP).
#
#   contrib/bench/proxy.sh                 # SECS=3 CONC=32 by default
#   SECS=5 CONC=64 SVCDNS_BIN=build/svcdns contrib/bench/proxy.sh
#
# Installs haproxy with apt-get when missing; builds a Release svcdns in
# build-bench-proxy unless SVCDNS_BIN names one. Every address is in
# 127.0.0.0/8 (backend 127.78.250.1, ClusterIP 127.77.250.1, HAProxy
# 127.77.251.1), every port above 1024.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
SECS="${SECS:-3}"
CONC="${CONC:-32}"

if ! command -v haproxy >/dev/null 2>&1; then
	echo "proxy.sh: installing the Debian package haproxy"
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy \
		>/dev/null
fi
if [ -z "${SVCDNS_BIN:-}" ]; then
	cmake -S . -B build-bench-proxy -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF >/dev/null
	cmake --build build-bench-proxy -j"$(nproc)" >/dev/null
	SVCDNS_BIN=build-bench-proxy/svcdns
fi

tmp="$(mktemp -d /tmp/svcdns-bench-proxy.XXXXXX)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

cc -O2 -o "$tmp/proxy_load" contrib/bench/proxy_load.c
load="$tmp/proxy_load"
BE=127.78.250.1 CIP=127.77.250.1 HA=127.77.251.1

"$load" sink $BE 8080 & pids+=($!)
"$load" rr $BE 8081 & pids+=($!)
"$load" udp-echo $BE 5301 & pids+=($!)

mkdir "$tmp/m"
cat >"$tmp/m/bench.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec:
  clusterIP: $CIP
  selector: {app: bench}
  ports:
    - {name: bulk, port: 8000, targetPort: 8080}
    - {name: rr, port: 8001, targetPort: 8081}
    - {name: udp, port: 5300, targetPort: 5301, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: bench-1, namespace: default, labels: {app: bench}}
spec:
  containers:
    - name: c
      image: x
      ports: [{containerPort: 8080}, {containerPort: 8081}, {containerPort: 5301, protocol: UDP}]
status: {phase: Running, podIP: $BE, conditions: [{type: Ready, status: "True"}]}
EOF
dnsport=$((20000 + RANDOM % 20000))
"$SVCDNS_BIN" --manifests "$tmp/m" --listen 127.0.0.1:$dnsport --proxy --log-level warn \
	2>"$tmp/svcdns.log" &
pids+=($!)
svcdns_pid=$!

cat >"$tmp/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 4000
defaults
	mode tcp
	timeout connect 1s
	timeout client 30s
	timeout server 30s
	option splice-auto
frontend bulk
	bind $HA:8000
	default_backend bulk
backend bulk
	server b1 $BE:8080
frontend rr
	bind $HA:8001
	default_backend rr
backend rr
	server r1 $BE:8081
EOF
haproxy -db -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy.log" &
pids+=($!)
haproxy_pid=$!

# Everything answers before measuring starts (grep reads all: no SIGPIPE
# under pipefail).
ready=""
for _ in $(seq 100); do
	if dig @127.0.0.1 -p $dnsport +short +time=1 +tries=1 bench.default.svc.cluster.local \
		2>/dev/null | grep "$CIP" >/dev/null &&
		"$load" bulk $CIP 8000 0.01 >/dev/null 2>&1 &&
		"$load" bulk $HA 8000 0.01 >/dev/null 2>&1; then
		ready=yes
		break
	fi
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "proxy.sh: svcdns or haproxy did not come up" >&2
	cat "$tmp/svcdns.log" "$tmp/haproxy.log" >&2
	exit 1
fi

# CPU time (user + system, ms) a process has used: its own cost, whatever
# the client and the backend take on the same cores.
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

measure() { # name test ip port
	local v pid="" c0=0
	[ "$1" = svcdns ] && pid=$svcdns_pid
	[ "$1" = haproxy ] && pid=$haproxy_pid
	[ -n "$pid" ] && c0=$(cpu_ms "$pid")
	case "$2" in
	bulk) v=$("$load" bulk "$3" "$4" "$SECS") || v=failed ;;
	connrate) v=$("$load" connrate "$3" "$4" "$SECS" "$CONC") || v=failed ;;
	udprate) v=$("$load" udprate "$3" "$4" "$SECS" "$CONC") || v=failed ;;
	esac
	echo "$1 $2 $v" >>"$tmp/results"
	[ -n "$pid" ] && echo "$1 cpu_$2 $(awk -v a="$c0" -v b="$(cpu_ms "$pid")" \
		'BEGIN { print b - a }')" >>"$tmp/results"
	return 0
}

: >"$tmp/results"
for test in bulk connrate; do
	port=8000
	[ $test = connrate ] && port=8001
	measure direct $test $BE $([ $test = bulk ] && echo 8080 || echo 8081)
	measure svcdns $test $CIP $port
	measure haproxy $test $HA $port
done
measure direct udprate $BE 5301
measure svcdns udprate $CIP 5300

echo "# $(nproc) cores, ${SECS} s per measure, concurrency $CONC; svcdns datapath on its control loop"
awk '
	{ v[$1 "," $2] = $3 }
	END {
		printf "%-22s %12s %12s %12s %10s %10s\n", "measure", "direct", "svcdns", "haproxy",
			"svc/dir", "svc/hap"
		split("bulk connrate udprate", tests, " ")
		units["bulk"] = "bulk MB/s"; units["connrate"] = "connections/s"
		units["udprate"] = "UDP requests/s"
		for (i = 1; i <= 3; i++) {
			t = tests[i]; d = v["direct," t]; s = v["svcdns," t]; h = v["haproxy," t]
			printf "%-22s %12s %12s %12s %10s %10s\n", units[t], d, s, (h == "" ? "-" : h),
				(d > 0 ? sprintf("%.2f", s / d) : "-"),
				(h > 0 ? sprintf("%.2f", s / h) : "-")
		}
		# CPU used by each proxy per unit of work (lower is better).
		printf "%-22s %12s %12s %12s\n", "proxy CPU", "", "svcdns", "haproxy"
		secs = '"$SECS"'
		for (i = 1; i <= 3; i++) {
			t = tests[i]
			unit = (t == "bulk") ? "ms per GB" : "us per " (t == "connrate" ? "conn" : "req")
			row = ""
			for (k = 1; k <= 2; k++) {
				n = (k == 1) ? "svcdns" : "haproxy"
				c = v[n ",cpu_" t]; r = v[n "," t]
				if (c == "" || r <= 0) { cell[k] = "-"; continue }
				work = (t == "bulk") ? r * secs / 1000 : r * secs
				cell[k] = (t == "bulk") ? sprintf("%.0f", c / work) : sprintf("%.1f", c * 1000 / work)
			}
			printf "%-22s %12s %12s %12s\n", unit, "", cell[1], cell[2]
		}
	}' "$tmp/results"
if grep -q . "$tmp/svcdns.log"; then
	echo "# svcdns said:"
	sed 's/^/#   /' "$tmp/svcdns.log"
fi
