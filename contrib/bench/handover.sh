#!/usr/bin/env bash
# Queries lost across a restart of svcdns under a steady load: dnsperf asks at a
# fixed rate (default 20,000 queries per second over UDP) while svcdns is
# replaced by a new process, once with the socket hand-over (--handover-socket:
# the new process takes the listening sockets over, then the old one is
# stopped) and once by a plain stop and start. Prints, per run, the queries
# dnsperf sent, those answered, lost (no answer within 2 s) and SERVFAIL, and
# the datagrams the kernel dropped for a full receive buffer: on svcdns's
# sockets (it was not given the CPU to keep up), and on the whole machine
# (dnsperf's sockets, and every other program's).
#
#   contrib/bench/handover.sh                      # both modes, 20k qps, 12 s each
#   contrib/bench/handover.sh --rate 50000 --rounds 3
#   contrib/bench/handover.sh --bin build/svcdns --modes handover
#
# Needs dnsperf and kdig (Debian: dnsperf, knot-dnsutils) and a built svcdns
# (--bin; a Release build gives the figures of the README).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3

bin=""
rate=20000
duration=12
switch_at=4
services=1000
threads=2
clients=4
modes="handover plain"
rounds=1
port=23690
logs=""
transport=udp

usage() {
	cat <<EOF
usage: contrib/bench/handover.sh [options]

  --bin PATH       the svcdns binary (default: build-rel/, build/ or build-h/ under the
                   repository, the first that has one)
  --rate Q         queries per second dnsperf sends (default $rate)
  --duration S     seconds of each dnsperf run (default $duration)
  --switch-at S    seconds into the run when svcdns is replaced (default $switch_at)
  --services N     Services in the generated cluster (default $services)
  --threads N      DNS worker threads of both processes (default $threads)
  --clients N      dnsperf clients, each a socket of its own (default $clients)
  --modes LIST     any of "handover", "plain" and "none" (no replacement: what the
                   machine loses anyway), in that order (default "$modes")
  --rounds N       runs of each mode (default $rounds)
  --port P         the DNS port (default $port)
  --transport T    udp, or tcp: dnsperf keeps one connection per client open, which the
                   old process closes at the end of its drain (queries in flight then are
                   lost unless the client asks again, as RFC 7766 expects it to)
  --logs DIR       keep svcdns's logs and dnsperf's reports there
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--switch-at) switch_at=$2; shift 2 ;;
	--services) services=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--logs) logs=$2; shift 2 ;;
	--transport) transport=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "handover.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done

if [ -z "$bin" ]; then
	for b in build-rel build build-h; do
		if [ -x "$root/$b/svcdns" ]; then
			bin="$root/$b/svcdns"
			break
		fi
	done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "handover.sh: no svcdns binary (--bin)" >&2; exit 2; }
for c in dnsperf kdig; do
	command -v $c >/dev/null || { echo "handover.sh: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcdns-handover-XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ -n "$logs" ]; then
		mkdir -p "$logs"
		cp "$tmp"/*.log "$tmp"/*.txt "$logs"/ 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

"$py" "$here/gen.py" --services "$services" --out "$tmp/cluster" --queries 20000 >/dev/null

# start_svcdns LOG [ARGS...]: starts svcdns in the background; its PID in $started.
start_svcdns() {
	local log=$1
	shift
	"$bin" --manifests "$tmp/cluster/manifests" --listen "127.0.0.1:$port" --upstream none \
		--threads "$threads" "$@" >"$log" 2>&1 &
	started=$!
	pids+=("$started")
}

answers() {
	kdig @127.0.0.1 -p "$port" +short +timeout=1 +retry=0 dns-version.cluster.local TXT \
		2>/dev/null | grep -q 1.1.0
}

wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND every 10 ms
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.01
	done
}

stop_pid() { # SIGTERM, then wait for it to exit
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Datagrams the kernel dropped for a full receive buffer, on the whole machine
# (other programs' too): a server or a client that could not keep up.
rcvbuf_errors() {
	awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 }
		else print $c }' /proc/net/snmp
}

# Datagrams dropped for a full receive buffer on svcdns's own sockets (read
# before they close; after a hand-over they are the new process's).
server_drops() {
	local hex
	hex=$(printf '%04X' "$port")
	awk -v p=":$hex" '$2 ~ p"$" { d += $NF } END { print d + 0 }' /proc/net/udp
}

field() { # field FILE LABEL: the number after "LABEL" in dnsperf's report
	sed -n "s/^ *$2 *\([0-9]*\).*/\1/p" "$1" | head -1
}

echo "# $(basename "$bin") over $transport, $threads threads, $services Services, $rate qps for $duration s," \
	"replaced at $switch_at s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %5s %9s %9s %6s %8s %6s %12s %13s\n' mode round sent answered lost servfail qps \
	server-drops machine-drops
for r in $(seq 1 "$rounds"); do
	for mode in $modes; do
		sock="$tmp/handover.sock"
		extra=()
		[ "$mode" = handover ] && extra=(--handover-socket "$sock")
		drops0=$(rcvbuf_errors)
		start_svcdns "$tmp/$mode-$r-old.log" "${extra[@]}"
		old=$started
		wait_for 30 answers || { echo "svcdns did not start" >&2; tail "$tmp/$mode-$r-old.log" >&2; exit 1; }
		out="$tmp/$mode-$r-dnsperf.txt"
		# Room for every query of the 2 s timeout in flight: dnsperf stops
		# sending at its limit of outstanding queries, which would hide a gap.
		outstanding=$((rate * 2 > 65000 ? 65000 : rate * 2))
		dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/cluster/queries.txt" -l "$duration" \
			-Q "$rate" -c "$clients" -q "$outstanding" -b 4096 -t 2 \
			-m "$transport" >"$out" 2>&1 &
		perf=$!
		pids+=("$perf")
		sleep "$switch_at"
		if [ "$mode" = none ]; then
			new=$old
			sdrops=0
		elif [ "$mode" = handover ]; then
			start_svcdns "$tmp/$mode-$r-new.log" "${extra[@]}"
			new=$started
			wait_for 30 grep -qs "handover: serving;" "$tmp/$mode-$r-new.log" ||
				{ echo "the new process did not take over" >&2; exit 1; }
			stop_pid "$old"
			sdrops=0
		else
			sdrops=$(server_drops)
			stop_pid "$old"
			start_svcdns "$tmp/$mode-$r-new.log"
			new=$started
		fi
		wait "$perf" || true
		sdrops=$((sdrops + $(server_drops)))
		stop_pid "$new"
		drops=$(($(rcvbuf_errors) - drops0))
		sent=$(field "$out" "Queries sent:")
		done_=$(field "$out" "Queries completed:")
		lost=$(field "$out" "Queries lost:")
		servfail=$(sed -n 's/.*SERVFAIL \([0-9]*\).*/\1/p' "$out" | head -1)
		qps=$(sed -n 's/^ *Queries per second: *\([0-9]*\).*/\1/p' "$out" | head -1)
		printf '%-9s %5s %9s %9s %6s %8s %6s %12s %13s\n' "$mode" "$r" "$sent" "$done_" "$lost" \
			"${servfail:-0}" "$qps" "$sdrops" "$drops"
	done
done
