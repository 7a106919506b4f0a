#!/usr/bin/env bash
# The benchmark of issue 6: svcdns against Knot DNS, NSD and a canned responder
# (the floor: the kernel's share of answering a query) on one generated cluster,
# each server pinned to one core and dnsperf to another. One command:
#
#   contrib/bench/run.sh                 # 10k Services, 3 rounds of 10 s per server
#   contrib/bench/run.sh --services 100000
#   contrib/bench/run.sh --quick         # a short check of the harness itself
#
# Installs what it needs from Debian, builds a Release svcdns into build-bench/,
# and prints the table that doc/performance.md shows. --help lists
# every option; the figures are explained in doc/performance.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3

services=10000
threads=1
duration=10
rounds=3
rate=50000
clients=2
per_client=100
server_cpu=1
load_cpu=0
idle_pct=10
idle_wait=120
port_base=23530
servers="canned svcdns knot nsd"
cg_queries=20000
memory_sizes="10000 100000"
sync_sizes="100000"
build="$root/build-bench"
nice_n=0
svcdns_bin=""
install=1
compare=1

cmdline="contrib/bench/run.sh $*"

usage() {
	cat <<EOF
usage: contrib/bench/run.sh [options]

  --services N       Services in the generated cluster (default $services; 100000 for the
                     large case: 5 endpoints per Service in all)
  --threads N        worker threads of every server (default $threads)
  --rounds N         rounds; each server runs once per round (default $rounds)
  --duration S       seconds of each dnsperf run (default $duration)
  --rate Q           the fixed rate of the CPU-per-query runs (default $rate)
  --clients N        dnsperf clients (sockets) (default $clients)
  --per-client N     outstanding queries per client (default $per_client; keep it under ~200)
  --server-cpu N     core the servers are pinned to (default $server_cpu)
  --load-cpu N       core dnsperf is pinned to (default $load_cpu)
  --idle-pct P       a core is idle under P% busy (default $idle_pct)
  --idle-wait S      wait at most S seconds for an idle machine before each run (default
                     $idle_wait); a run that starts busy is marked so in the report
  --servers LIST     which servers, in order (default "$servers")
  --callgrind N      queries of the callgrind runs (default $cg_queries; 0: none)
  --memory LIST      svcdns RSS at these sizes (default "$memory_sizes"; "": none)
  --sync LIST        first sync and watch event -> served answer through the fake Kubernetes
                     API server at these sizes (default "$sync_sizes"; "": none)
  --nice N           run the servers and dnsperf at this niceness (default $nice_n; -10 keeps
                     them ahead of other work on a busy machine: root only)
  --port-base P      ports P..P+3 on 127.0.0.1 (default $port_base)
  --build DIR        build directory (default build-bench)
  --svcdns BIN       benchmark this svcdns binary instead of building one
  --no-install       do not apt-get anything
  --no-compare       do not check that the servers give the same answers
  --quick            --duration 3 --rounds 1 --callgrind 5000 --memory 10000 --idle-wait 10
EOF
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--services) services=$2; shift ;;
	--threads) threads=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--duration) duration=$2; shift ;;
	--rate) rate=$2; shift ;;
	--clients) clients=$2; shift ;;
	--per-client) per_client=$2; shift ;;
	--server-cpu) server_cpu=$2; shift ;;
	--load-cpu) load_cpu=$2; shift ;;
	--idle-pct) idle_pct=$2; shift ;;
	--idle-wait) idle_wait=$2; shift ;;
	--servers) servers=$2; shift ;;
	--callgrind) cg_queries=$2; shift ;;
	--memory) memory_sizes=$2; shift ;;
	--sync) sync_sizes=$2; shift ;;
	--port-base) port_base=$2; shift ;;
	--nice) nice_n=$2; shift ;;
	--build) build=$2; shift ;;
	--svcdns) svcdns_bin=$(realpath "$2"); shift ;;
	--no-install) install=0 ;;
	--no-compare) compare=0 ;;
	--quick) duration=3 rounds=1 cg_queries=5000 memory_sizes=10000 sync_sizes=10000 idle_wait=10 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes: every one we start is a session leader, stopped by its id ----

started=()      # session ids (= the PIDs we started) still running
policy_rc=""    # a policy-rc.d we put in place for the install, removed after

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
	local pkgs=() c p
	for c in dnsperf:dnsperf knotd:knot nsd:nsd valgrind:valgrind callgrind_control:valgrind \
		dig:bind9-dnsutils taskset:util-linux setsid:util-linux ss:iproute2 ps:procps cmake:cmake \
		cc:gcc pkg-config:pkg-config; do
		command -v "${c%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${c%%:*} ]] || pkgs+=("${c#*:}")
	done
	[[ -x $py ]] || pkgs+=(python3)
	for p in ldns:libldns-dev libuv:libuv1-dev libcurl:libcurl4-openssl-dev \
		jansson:libjansson-dev yaml-0.1:libyaml-dev; do
		pkg-config --exists "${p%%:*}" 2>/dev/null || pkgs+=("${p#*:}")
	done
	[[ ${#pkgs[@]} -gt 0 ]] || return 0
	mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
	[[ $install == 1 ]] || die "missing: ${pkgs[*]} (run without --no-install, or apt-get install them)"
	log "installing from Debian: ${pkgs[*]}"
	# Debian starts knot and nsd on port 53 when they are installed; the benchmark
	# runs its own on loopback, so keep the packaged services from starting.
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
	# Release code (-O3) with symbols, so that the callgrind profile names functions.
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF \
		-DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG -g" >"$build/bench/build.log" 2>&1 ||
		die "cmake failed: $build/bench/build.log"
	cmake --build "$build" -j"$ncpu" >>"$build/bench/build.log" 2>&1 ||
		die "build failed: $build/bench/build.log"
	svcdns_bin=$build/svcdns
fi
[[ -x $svcdns_bin ]] || die "no svcdns binary at $svcdns_bin"
cc -O2 -Wall -Wextra -std=gnu17 -pthread -o "$build/bench/canned" "$here/canned.c"

# ---- data --------------------------------------------------------------------

dataset() { # N [--no-zones] -> prints the directory
	local n=$1 dir="$build/bench/data-$1"
	shift
	if [[ ! -f $dir/meta.json || $here/gen.py -nt $dir/meta.json ]] ||
		{ [[ $# == 0 ]] && [[ ! -f $dir/queries.txt ]]; }; then
		log "generating a cluster of $n Services in $dir"
		$py "$here/gen.py" --services "$n" --out "$dir" "$@" >&2
	fi
	echo "$dir"
}
meta() { $py -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/meta.json" "$2"; }

data=$(dataset "$services")
run="$build/bench/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
ready_name=$(meta "$data" ready_name)
ready_type=$(meta "$data" ready_type)
ready_answer=$(meta "$data" ready_answer)

# ---- servers -----------------------------------------------------------------

declare -A port=([canned]=$port_base [svcdns]=$((port_base + 1)) [knot]=$((port_base + 2)) [nsd]=$((port_base + 3)))
for s in $servers; do [[ -n ${port[$s]:-} ]] || die "unknown server $s"; done

port_free() { [[ -z $(ss -Hlun "sport = :$1") && -z $(ss -Hltn "sport = :$1") ]]; }

since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.3f", t1 - t0 }'; }

session_pids() { ps -o pid= --sid "$1" | tr -d ' '; }

write_config() { # NAME DIR DATA
	local name=$1 dir=$2 d=$3 p=${port[$1]}
	case $name in
	knot)
		cat >"$dir/knot.conf" <<EOF
server:
    rundir: "$dir"
    listen: 127.0.0.1@$p
    udp-workers: $threads
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: notice
database:
    storage: "$dir/db"
template:
  - id: default
    storage: "$d/zones"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
zone:
  - domain: cluster.local
    file: cluster.local.zone
  - domain: in-addr.arpa
    file: in-addr.arpa.zone
EOF
		;;
	nsd)
		# rrl-ratelimit 0: Debian's NSD rate-limits answers by default.
		# minimal-responses: no NS in the authority section of every
		# answer (svcdns and Knot add none).
		cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$p
    server-count: $threads
    reuseport: yes
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    username: ""
    chroot: ""
    zonesdir: "$d/zones"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    minimal-responses: yes
    do-ip6: no
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: cluster.local
    zonefile: cluster.local.zone
zone:
    name: in-addr.arpa
    zonefile: in-addr.arpa.zone
EOF
		;;
	esac
}

# start_server NAME DATA [WRAPPER...]: starts it pinned to the server core, waits
# until it serves the whole cluster; sets $sid (its session = its PID).
start_server() {
	local name=$1 d=$2 p=${port[$1]} dir="$run/$1" cmd
	shift 2
	mkdir -p "$dir"
	port_free "$p" || die "port $p is in use (another process?): choose --port-base"
	write_config "$name" "$dir" "$d"
	case $name in
	canned) cmd=("$build/bench/canned" "127.0.0.1:$p" "$threads") ;;
	# --upstream none: like Knot and NSD, svcdns answers for its zones only (an
	# ExternalName is its CNAME, not chased upstream), and nothing leaves the machine.
	svcdns) cmd=("$svcdns_bin" --manifests "$d/manifests" --listen "127.0.0.1:$p"
		--threads "$threads" --upstream none --log-level info) ;;
	knot) cmd=(knotd -c "$dir/knot.conf") ;;
	nsd) cmd=(nsd -d -c "$dir/nsd.conf") ;;
	esac
	local t0
	t0=$(date +%s.%N)
	nice -n "$nice_n" taskset -c "$server_cpu" setsid "$@" "${cmd[@]}" >>"$dir/server.log" 2>&1 &
	sid=$!
	started+=("$sid")
	local limit=$((${wait_limit:-300} * 5)) i
	for ((i = 0; ; i++)); do
		kill -0 "$sid" 2>/dev/null || die "$name exited while starting: see $dir/server.log"
		((i < limit)) || die "$name did not serve $ready_name within ${wait_limit:-300} s"
		if [[ $name == canned ]]; then
			[[ -n $(ss -Hlun "sport = :$p") ]] && break
		elif dig @127.0.0.1 -p "$p" +short +time=1 +tries=1 "$ready_name" "$ready_type" 2>/dev/null |
			grep -qxF "$ready_answer"; then
			break
		fi
		sleep 0.2
	done
	start_s=$(since "$t0")
	# Nobody else may share the port (SO_REUSEPORT would split the queries).
	local pids owners
	pids=$(session_pids "$sid" | paste -sd'|')
	owners=$(ss -Hlunp "sport = :$p" | grep -oE 'pid=[0-9]+' | sort -u | cut -d= -f2)
	for i in $owners; do
		[[ $i =~ ^($pids)$ ]] || die "process $i also listens on port $p"
	done
	# Knot pins its UDP workers itself: put every thread back on the server core.
	for i in $(session_pids "$sid"); do taskset -a -p -c "$server_cpu" "$i" >/dev/null; done
}

busy_jiffies() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

proc_ticks() { # utime + stime of every process of a session (all threads)
	local t=0 p
	for p in $(session_pids "$1"); do
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
	done
	echo "$t"
}

pss_mb() { # proportional set size of a session, MB (NSD shares its zone between processes)
	local kb=0 p
	for p in $(session_pids "$1"); do
		kb=$((kb + $(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}

# Until the session's CPU time stops growing: the work a server does right after it
# serves its data (logging, freeing what loading needed) is not a query's.
wait_quiet() {
	local t0 t1 i
	t0=$(proc_ticks "$1")
	for ((i = 0; i < 120; i++)); do
		sleep 1
		t1=$(proc_ticks "$1")
		((t1 - t0 > 1)) || return 0
		t0=$t1
	done
	log "warning: $1 still busy after 120 s"
}

wait_idle() { $py "$here/benchtool.py" idle "$server_cpu,$load_cpu" "$idle_pct" "$idle_wait"; }

# dnsperf_run NAME MODE ROUND: one dnsperf run against the running server $sid.
dnsperf_run() {
	local name=$1 mode=$2 r=$3 out="$run/$1/dnsperf-$2-$3.txt" machine args
	machine=$(wait_idle)
	args=(-s 127.0.0.1 -p "${port[$name]}" -d "$data/queries.txt" -l "$duration" -c "$clients"
		-q $((clients * per_client)) -t 2)
	[[ $mode == fixed ]] && args+=(-Q "$rate" -v)
	local j0 p0 j1 p1
	j0=$(busy_jiffies "$server_cpu")
	p0=$(proc_ticks "$sid")
	nice -n "$nice_n" taskset -c "$load_cpu" dnsperf "${args[@]}" >"$out" 2>&1 ||
		die "dnsperf failed: $out"
	j1=$(busy_jiffies "$server_cpu")
	p1=$(proc_ticks "$sid")
	local res
	read -r -a res < <($py "$here/benchtool.py" dnsperf "$out")
	[[ $mode == fixed ]] && gzip -f "$out" # the per-query lines are large
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$mode" "$machine" \
		"${res[@]}" $((j1 - j0)) $((p1 - p0)) >>"$run/runs.tsv"
	log "$name $mode: ${res[3]} QPS, ${res[2]} lost, avg ${res[4]} ms, p99 ${res[5]} ms," \
		"server core $((j1 - j0)) jiffies ($machine)"
}

{
	echo "date=$(date -u +%FT%TZ)"
	echo "command=$cmdline"
	echo "cluster=$(meta "$data" services) Services, $(meta "$data" endpoints) endpoints, $(meta "$data" namespaces) namespaces ($data)"
	echo "setup=$threads thread(s) per server on CPU $server_cpu, dnsperf on CPU $load_cpu ($clients clients x $per_client outstanding), nice $nice_n, $rounds round(s) of $duration s; medians over rounds"
	echo "machine=$(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "rate=$rate"
} >"$run/meta.txt"
printf 'round\tserver\tmode\tmachine\tsent\tcompleted\tlost\tqps\tavg_ms\tp99_ms\tbusy_jiffies\tproc_ticks\n' >"$run/runs.tsv"
printf 'server\tfigure\tvalue\n' >"$run/figures.tsv"
log "results in $run"

# ---- 1. the same answers everywhere ----------------------------------------------

if [[ $compare == 1 ]]; then
	cmp_args=()
	for s in svcdns knot nsd; do
		[[ " $servers " == *" $s "* ]] || continue
		start_server "$s" "$data"
		cmp_args+=("$s=${port[$s]}")
	done
	if [[ ${#cmp_args[@]} -gt 1 ]]; then
		log "comparing answers to $(wc -l <"$data/samples.txt") sample questions"
		$py "$here/compare.py" "$data/samples.txt" "${cmp_args[@]}" | tee "$run/compare.txt" >&2 ||
			die "the servers do not give the same answers: $run/compare.txt"
	fi
	for s in "${started[@]+"${started[@]}"}"; do stop_session "$s"; done
fi

# ---- 2. rounds: saturation, then the fixed rate ------------------------------------

for ((r = 1; r <= rounds; r++)); do
	for s in $servers; do
		log "round $r/$rounds: $s"
		start_server "$s" "$data"
		[[ $r == 1 ]] && printf '%s\tmemory_mb\t%s\n' "$s" "$(pss_mb "$sid")" >>"$run/figures.tsv"
		dnsperf_run "$s" sat "$r"
		dnsperf_run "$s" fixed "$r"
		stop_session "$sid"
	done
done

# ---- 3. instructions per query (callgrind) ---------------------------------------
# Counts user-space instructions, whatever else the machine does. After the server
# serves the cluster, the counters are zeroed, N queries are sent (one run through
# a fixed file, at most 10 outstanding), and the counters are dumped; then zeroed
# again, the same time is let pass with no query, and dumped: per query is
# (first dump - second dump) / N, which takes out the timers that run meanwhile.
# Each dump is one file per thread; their summaries add up to the dump's count.

if ((cg_queries > 0)); then
	head -n "$cg_queries" "$data/queries.txt" >"$run/callgrind-queries.txt"
	for s in svcdns knot; do
		[[ " $servers " == *" $s "* ]] || continue
		log "callgrind: $s, $cg_queries queries"
		out="$run/$s/callgrind.out"
		rm -f "$out"*
		wait_limit=1200 start_server "$s" "$data" valgrind --tool=callgrind --separate-threads=yes \
			--callgrind-out-file="$out"
		wait_quiet "$sid"
		cg_ctl() { # retry: vgdb may need a moment to attach
			local i
			for i in 1 2 3 4 5; do callgrind_control "$@" >/dev/null 2>&1 && return 0; sleep 1; done
			die "callgrind_control $* failed"
		}
		cg_ctl -z "$sid"
		t0=$(date +%s.%N)
		dnsperf -s 127.0.0.1 -p "${port[$s]}" -d "$run/callgrind-queries.txt" -n 1 -c 1 -q 10 -t 30 \
			>"$run/$s/dnsperf-callgrind.txt" 2>&1 || die "dnsperf failed under callgrind"
		t=$(since "$t0")
		cg_ctl -d "$sid"
		cg_ctl -z "$sid"
		sleep "$t"
		cg_ctl -d "$sid"
		stop_session "$sid" 120
		read -r -a res < <($py "$here/benchtool.py" dnsperf "$run/$s/dnsperf-callgrind.txt")
		((res[2] == 0)) || log "warning: $s lost ${res[2]} queries under callgrind"
		read -r with top < <($py "$here/benchtool.py" callgrind "$out".1-*)
		read -r idle _ < <($py "$here/benchtool.py" callgrind "$out".2-*)
		per=$(((with - idle) / res[1]))
		printf '%s\tinstructions_per_query\t%s\n' "$s" "$per" >>"$run/figures.tsv"
		log "$s: $with instructions with ${res[1]} answered queries, $idle idle: $per per query"
		# the profile of the busiest thread: the worker, with one
		callgrind_annotate --inclusive=no --threshold=100 "$top" 2>/dev/null |
			sed -n '1,/^-- Auto-annotated source/p' | head -80 >"$run/$s/profile.txt" || true
	done
fi

# ---- 4. svcdns memory and snapshot build at each size -----------------------------

if [[ -n $memory_sizes ]]; then
	printf 'services\tendpoints\trss_mb\thwm_mb\tbuild_ms\tstart_s\n' >"$run/memory.tsv"
	for n in $memory_sizes; do
		d=$(dataset "$n" --no-zones)
		ready_name=$(meta "$d" ready_name) ready_type=$(meta "$d" ready_type)
		ready_answer=$(meta "$d" ready_answer)
		log "memory: svcdns with $n Services"
		rm -f "$run/svcdns/server.log"
		wait_limit=600 start_server svcdns "$d"
		sleep 1 # let the build that served the last name finish its log line
		build_ms=$(grep -E "snapshot [0-9]+ published" "$run/svcdns/server.log" | tail -1 |
			sed -E 's/.*KiB, ([0-9.]+) ms.*/\1/')
		rss=$(awk '$1 == "VmRSS:" { printf "%.1f", $2 / 1024 }' "/proc/$sid/status")
		hwm=$(awk '$1 == "VmHWM:" { printf "%.1f", $2 / 1024 }' "/proc/$sid/status")
		printf '%s\t%s\t%s\t%s\t%s\t%.1f\n' "$(meta "$d" services)" "$(meta "$d" endpoints)" "$rss" \
			"$hwm" "$build_ms" "$start_s" >>"$run/memory.tsv"
		stop_session "$sid"
	done
fi

# ---- 5. the Kubernetes API source: first sync and watch events ----------------------

if [[ -n $sync_sizes ]]; then
	for n in $sync_sizes; do
		log "sync: svcdns with $n Services through the fake API server"
		"$here/sync.sh" --services "$n" --svcdns "$svcdns_bin" --out "$run/sync-$n" \
			>"$run/sync-$n.txt" 2>&1 || log "sync: the run with $n Services failed (see $run/sync-$n.txt)"
	done
fi

$py "$here/benchtool.py" report "$run" | tee "$run/report.md"
for n in $sync_sizes; do
	if [[ -f $run/sync-$n.txt ]]; then
		echo
		echo "svcdns through the fake Kubernetes API server, $n Services ($run/sync-$n.txt):"
		grep '^SUMMARY' "$run/sync-$n.txt" | sed 's/^SUMMARY /  /'
	fi
done
if [[ -f $run/svcdns/profile.txt ]]; then
	echo
	echo "callgrind profile of svcdns answering the query file: instructions per function"
	echo "(self cost, worker thread; $run/svcdns/profile.txt; the thread's entry frames, left"
	echo "with the whole total by the zeroing of the counters, are left out):"
	grep -E '^ *[0-9,]+ \( *[0-9.]+%\) ' "$run/svcdns/profile.txt" | grep -v 'PROGRAM TOTALS' |
		awk 'match($0, /\( *[0-9.]+%\)/) && n < 15 {
			if (substr($0, RSTART + 1, RLENGTH - 3) + 0 < 95) { print; n++ }
		}'
fi
