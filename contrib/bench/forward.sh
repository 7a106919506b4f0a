#!/usr/bin/env bash
# The forwarding benchmark of issue 16: svcdns, Unbound, dnsmasq and Knot
# Resolver side by side, each pinned to one core with its cache on, forwarding
# to one local Knot DNS that serves 100,000 outside names (and NXDOMAIN for
# the rest) on loopback, so that nothing leaves the machine. One command:
#
#   contrib/bench/forward.sh             # 100k names, 1 round of 10 s runs
#   contrib/bench/forward.sh --quick     # a short check of the harness itself
#
# Per server, with every name cached: cache hits (QPS, and QPS per busy core
# of the server's own CPU time), the pods' query mix with a share of names
# never seen (QPS, upstream packets per client query), miss
# latency at a fixed rate, memory with the 100,000 names cached. The figures
# and what they mean are in doc/performance.md; fwdtool.py says what the query
# files hold. --help lists every option.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3

names=100000
lookups=100000
new_pct=2
duration=10
rounds=1
miss_rate=500
clients=2
per_client=100
server_cpu=1
load_cpu=0
port_base=23640
servers="svcdns unbound dnsmasq kresd"
build="$root/build-bench"
svcdns_bin=""
install=1

cmdline="contrib/bench/forward.sh $*"

usage() {
	cat <<EOF
usage: contrib/bench/forward.sh [options]

  --names N          outside names the upstream serves and clients ask (default $names)
  --lookups N        lookups in the query mix, 8 queries each (default $lookups)
  --new-pct P        percent of lookups for a name never seen before (default $new_pct)
  --duration S       seconds of the mix and the miss runs (default $duration)
  --rounds N         rounds; each server runs once per round (default $rounds)
  --miss-rate Q      the fixed rate of the miss run (default $miss_rate)
  --clients N        dnsperf clients (default $clients)
  --per-client N     outstanding queries per client (default $per_client)
  --server-cpu N     core the servers are pinned to (default $server_cpu)
  --load-cpu N       core dnsperf and the upstream are pinned to (default $load_cpu)
  --servers LIST     which servers, in order (default "$servers"; Unbound is the
                     reference of the ratios)
  --port-base P      ports P..P+4 on 127.0.0.1 (default $port_base)
  --build DIR        build directory (default build-bench)
  --svcdns BIN       benchmark this svcdns binary instead of building one
  --no-install       do not apt-get anything
  --quick            --duration 3 --lookups 20000 --names 20000
EOF
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--names) names=$2; shift ;;
	--lookups) lookups=$2; shift ;;
	--new-pct) new_pct=$2; shift ;;
	--duration) duration=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--miss-rate) miss_rate=$2; shift ;;
	--clients) clients=$2; shift ;;
	--per-client) per_client=$2; shift ;;
	--server-cpu) server_cpu=$2; shift ;;
	--load-cpu) load_cpu=$2; shift ;;
	--servers) servers=$2; shift ;;
	--port-base) port_base=$2; shift ;;
	--build) build=$2; shift ;;
	--svcdns) svcdns_bin=$(realpath "$2"); shift ;;
	--no-install) install=0 ;;
	--quick) duration=3 lookups=20000 names=20000 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[fwdbench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes: every one we start is a session leader, stopped by its id ----

started=()
policy_rc=""

stop_session() { # SID [seconds to wait]
	local sid=$1 wait=${2:-10} i
	kill -TERM -- "-$sid" 2>/dev/null || true
	for ((i = 0; i < wait * 10; i++)); do
		kill -0 -- "-$sid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$sid" 2>/dev/null || true
	wait "$sid" 2>/dev/null || true
	local keep=() s
	for s in "${started[@]}"; do [[ $s == "$sid" ]] || keep+=("$s"); done
	started=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
	local s
	for s in "${started[@]+"${started[@]}"}"; do stop_session "$s" 3; done
	if [[ -n $policy_rc ]]; then rm -f "$policy_rc"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- what it needs -----------------------------------------------------------

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

install_deps() {
	local pkgs=() c
	for c in dnsperf:dnsperf knotd:knot knotc:knot dig:bind9-dnsutils taskset:util-linux \
		setsid:util-linux ss:iproute2 ps:procps cmake:cmake cc:gcc pkg-config:pkg-config \
		unbound:unbound dnsmasq:dnsmasq-base kresd:knot-resolver; do
		command -v "${c%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${c%%:*} ]] || pkgs+=("${c#*:}")
	done
	[[ -x $py ]] || pkgs+=(python3)
	[[ ${#pkgs[@]} -gt 0 ]] || return 0
	mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
	[[ $install == 1 ]] || die "missing: ${pkgs[*]} (run without --no-install, or apt-get install them)"
	log "installing from Debian: ${pkgs[*]}"
	# Debian starts knot, unbound and kresd on port 53 when they are installed;
	# the benchmark runs its own on loopback.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy_rc=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_rc" >/dev/null
		as_root chmod 755 "$policy_rc"
	fi
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
	if [[ -n $policy_rc ]]; then as_root rm -f "$policy_rc"; policy_rc=""; fi
}

PATH=$PATH:/usr/sbin:/sbin
install_deps
ncpu=$(nproc)
((server_cpu < ncpu && load_cpu < ncpu && server_cpu != load_cpu)) ||
	die "--server-cpu and --load-cpu must be two different cores of the $ncpu here"

mkdir -p "$build/bench"
if [[ -z $svcdns_bin ]]; then
	log "building svcdns (Release) in $build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF \
		-DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG -g" >"$build/bench/build.log" 2>&1 ||
		die "cmake failed: $build/bench/build.log"
	cmake --build "$build" -j"$ncpu" >>"$build/bench/build.log" 2>&1 ||
		die "build failed: $build/bench/build.log"
	svcdns_bin=$build/svcdns
fi
[[ -x $svcdns_bin ]] || die "no svcdns binary at $svcdns_bin"

# ---- data --------------------------------------------------------------------

data="$build/bench/fwd-data-$names-$lookups-$new_pct"
if [[ ! -f $data/meta.txt || $here/fwdtool.py -nt $data/meta.txt ]]; then
	log "generating $names names and $lookups lookups in $data"
	$py "$here/fwdtool.py" gen "$data" "$names" "$lookups" "$new_pct"
fi
run="$build/bench/fwd-run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
{
	echo "date=$(date -u +%FT%TZ)"
	echo "command=$cmdline"
	echo "data=$names names (A and AAAA), $lookups lookups x 8 queries (ndots:5 search list), $new_pct% never seen"
	echo "setup=1 thread per server on CPU $server_cpu; dnsperf ($clients clients x $per_client outstanding) and the upstream Knot on CPU $load_cpu; $rounds round(s) of $duration s; misses at $miss_rate QPS"
	echo "machine=$(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
} >"$run/meta.txt"
printf 'round\tserver\tfigure\tvalue\n' >"$run/figures.tsv"
log "results in $run"

declare -A port=([upstream]=$port_base [svcdns]=$((port_base + 1)) [unbound]=$((port_base + 2))
	[dnsmasq]=$((port_base + 3)) [kresd]=$((port_base + 4)))
for s in $servers; do [[ -n ${port[$s]:-} ]] || die "unknown server $s"; done

port_free() { [[ -z $(ss -Hlun "sport = :$1") && -z $(ss -Hltn "sport = :$1") ]]; }
session_pids() { ps -o pid= --sid "$1" | tr -d ' '; }

proc_ticks() { # utime + stime of every process of a session (all threads)
	local t=0 p
	for p in $(session_pids "$1"); do
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
	done
	echo "$t"
}

pss_kb() { # proportional set size of a session
	local kb=0 p
	for p in $(session_pids "$1"); do
		kb=$((kb + $(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	echo "$kb"
}

# ---- the upstream: Knot DNS, authoritative for example. and cluster.local. ----

up_dir="$run/upstream"
mkdir -p "$up_dir/db"
cat >"$up_dir/knot.conf" <<EOF
server:
    rundir: "$up_dir"
    listen: 127.0.0.1@${port[upstream]}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: notice
database:
    storage: "$up_dir/db"
control:
    listen: "$up_dir/knot.sock"
mod-stats:
  - id: requests
    request-protocol: on
template:
  - id: default
    storage: "$data"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    global-module: mod-stats/requests
zone:
  - domain: example
    file: example.zone
  - domain: cluster.local
    file: cluster.local.zone
EOF

upstream_requests() {
	knotc -c "$up_dir/knot.conf" stats mod-stats >"$run/knotc.txt" 2>&1 || true
	$py "$here/fwdtool.py" knot-requests "$run/knotc.txt"
}

# start NAME CMD...: pinned, in a session of its own; waits until n0.example.
# resolves through it; sets $sid.
start() {
	local name=$1 cpu=$server_cpu p=${port[$1]} i
	shift
	[[ $name == upstream ]] && cpu=$load_cpu
	port_free "$p" || die "port $p is in use (another process?): choose --port-base"
	taskset -c "$cpu" setsid "$@" >>"$run/$name.log" 2>&1 &
	sid=$!
	started+=("$sid")
	for ((i = 0; ; i++)); do
		kill -0 "$sid" 2>/dev/null || die "$name exited while starting: see $run/$name.log"
		((i < 600)) || die "$name did not answer within 120 s"
		dig @127.0.0.1 -p "$p" +short +time=1 +tries=1 n0.example A 2>/dev/null |
			grep -qxF 10.0.0.0 && break
		sleep 0.2
	done
	for i in $(session_pids "$sid"); do taskset -a -p -c "$cpu" "$i" >/dev/null; done
}

start_server() { # NAME
	local name=$1 p=${port[$1]} dir="$run/$1" up="127.0.0.1"
	rm -rf "$dir"
	mkdir -p "$dir"
	case $name in
	svcdns)
		mkdir -p "$dir/manifests"
		start svcdns "$svcdns_bin" --manifests "$dir/manifests" --listen "127.0.0.1:$p" \
			--threads 1 --upstream "$up:${port[upstream]}" --cache-size 512M --log-level warn
		;;
	unbound)
		cat >"$dir/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$p
  num-threads: 1
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: ""
  use-syslog: no
  logfile: ""
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  msg-cache-size: 256m
  rrset-cache-size: 512m
  num-queries-per-thread: 4096
  outgoing-range: 8192
forward-zone:
  name: "."
  forward-addr: $up@${port[upstream]}
EOF
		start unbound unbound -d -c "$dir/unbound.conf"
		;;
	dnsmasq)
		# kube-dns ran dnsmasq with --cache-size=1000 and --dns-forward-max=150;
		# here the cache holds every name, as for the others.
		start dnsmasq dnsmasq -k -C /dev/null --port="$p" --listen-address=127.0.0.1 \
			--bind-interfaces --no-resolv --no-hosts --server="$up#${port[upstream]}" \
			--cache-size=300000 --dns-forward-max=1500 --user=root --pid-file= --log-facility=-
		;;
	kresd)
		# FORWARD, not STUB: in a bulk run STUB's answers were not served from
		# the cache here (Knot Resolver 5.6). No trust anchor: no validation,
		# as for the others.
		cat >"$dir/kresd.lua" <<EOF
net.listen('127.0.0.1', $p, { kind = 'dns' })
cache.open(512 * MB, 'lmdb://$dir/cache')
pcall(function() trust_anchors.remove('.') end)
policy.add(policy.all(policy.FORWARD({'$up@${port[upstream]}'})))
EOF
		start kresd kresd -n -c "$dir/kresd.lua" "$dir"
		;;
	esac
}

# perf NAME TAG ARGS...: one dnsperf run against $sid; prints
# "completed lost qps p50 p99 server_ticks upstream_requests".
perf() {
	local name=$1 tag=$2 out="$run/$1/dnsperf-$2.txt" t0 t1 u0 u1
	shift 2
	u0=$(upstream_requests)
	t0=$(proc_ticks "$sid")
	taskset -c "$load_cpu" dnsperf -s 127.0.0.1 -p "${port[$name]}" -c "$clients" -t 2 "$@" \
		>"$out" 2>&1 || die "dnsperf failed: $out"
	t1=$(proc_ticks "$sid")
	u1=$(upstream_requests)
	echo "$($py "$here/fwdtool.py" dnsperf "$out") $((t1 - t0)) $((u1 - u0))"
	gzip -f "$out"
}

fig() { printf '%s\t%s\t%s\t%s\n' "$r" "$1" "$2" "$3" >>"$run/figures.tsv"; }
per_core() { awk -v c="$1" -v t="$2" -v hz="$hz" 'BEGIN { if (t) printf "%.0f", c / (t / hz) }'; }

hz=$(getconf CLK_TCK)
log "upstream: Knot DNS with $names names"
start upstream knotd -c "$up_dir/knot.conf"
up_sid=$sid

for ((r = 1; r <= rounds; r++)); do
	for s in $servers; do
		log "round $r/$rounds: $s"
		start_server "$s"
		sleep 1
		m0=$(pss_kb "$sid")
		read -r c lost qps p50 p99 ticks up < <(perf "$s" warm -d "$data/warm.txt" -n 1 \
			-q $((clients * per_client)))
		fig "$s" warm_up_per_q "$(awk -v u="$up" -v c="$c" 'BEGIN { if (c) printf "%.4f", u / c }')"
		sleep 1
		m1=$(pss_kb "$sid")
		fig "$s" mem_mb "$(awk -v k="$m1" 'BEGIN { printf "%.1f", k / 1024 }')"
		fig "$s" kb_per_name "$(awk -v a="$m0" -v b="$m1" -v n="$names" 'BEGIN { printf "%.3f", (b - a) / n }')"
		log "$s: warm: $c answered, $lost lost, $up upstream; memory $((m0 / 1024)) -> $((m1 / 1024)) MB"
		read -r c lost qps p50 p99 ticks up < <(perf "$s" cached -d "$data/warm.txt" \
			-l "$duration" -q $((clients * per_client)))
		fig "$s" cached_qps "$qps"
		fig "$s" cached_per_core "$(per_core "$c" "$ticks")"
		log "$s: cached names alone: $qps QPS, server CPU $ticks ticks, $up upstream for $c answered"
		read -r c lost qps p50 p99 ticks up < <(perf "$s" hits-first -d "$data/hits.txt" -n 1 \
			-q $((clients * per_client)))
		log "$s: the hit lookups, once: $qps QPS, $up upstream for $c answered"
		read -r c lost qps p50 p99 ticks up < <(perf "$s" hits -d "$data/hits.txt" -l "$duration" \
			-q $((clients * per_client)))
		fig "$s" hit_qps "$qps"
		fig "$s" hit_lost "$lost"
		fig "$s" hit_per_core "$(per_core "$c" "$ticks")"
		log "$s: hits: $qps QPS, $lost lost, server CPU $ticks ticks, $up upstream for $c answered"
		read -r c lost qps p50 p99 ticks up < <(perf "$s" mix -d "$data/mix.txt" -l "$duration" \
			-q $((clients * per_client)))
		fig "$s" mix_qps "$qps"
		fig "$s" mix_per_core "$(per_core "$c" "$ticks")"
		fig "$s" up_per_q "$(awk -v u="$up" -v c="$c" 'BEGIN { if (c) printf "%.4f", u / c }')"
		log "$s: mix: $qps QPS, $lost lost, server CPU $ticks ticks, $up upstream for $c answered"
		read -r c lost qps p50 p99 ticks up < <(perf "$s" miss -d "$data/miss.txt" -l "$duration" \
			-Q "$miss_rate" -q 100 -v)
		fig "$s" miss_p50 "$p50"
		fig "$s" miss_p99 "$p99"
		fig "$s" miss_lost "$lost"
		log "$s: misses at $miss_rate QPS: p50 $p50 ms, p99 $p99 ms, $lost lost"
		stop_session "$sid"
	done
done
stop_session "$up_sid"

$py "$here/fwdtool.py" report "$run" | tee "$run/report.md"
