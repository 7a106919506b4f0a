#!/usr/bin/env bash
# svcdns quick start on a fresh Debian machine.
#
#   contrib/quickstart.sh run [--listen ADDR:PORT]
#         install what is missing, build, serve the demo cluster (contrib/demo)
#         on 127.0.0.1:5353, or on ADDR:PORT
#   contrib/quickstart.sh test
#         install what is missing, build with ASan+UBSan, run every test (ctest)
#   contrib/quickstart.sh demo-command [--listen ADDR:PORT]
#         print the command line `run` serves the demo with; the tests run the
#         documentation's transcripts against exactly that command
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

# Build and runtime dependencies, and the real clients the tests use.
BUILD_PKGS=(build-essential cmake pkg-config libldns-dev libuv1-dev libcurl4-openssl-dev
	libjansson-dev libyaml-dev libmicrohttpd-dev libssl-dev libnftables-dev libnftnl-dev libmnl-dev
	libnetfilter-conntrack-dev)
TEST_PKGS=(libcmocka-dev bind9-dnsutils knot-dnsutils python3 python3-dnspython knot iproute2
	clang-format unbound openssl nftables conntrack)
DEFAULT_LISTEN=127.0.0.1:5353

say() { echo "quickstart: $*"; }
die() {
	echo "quickstart: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 run [--listen ADDR:PORT] | test | demo-command [--listen ADDR:PORT]" >&2
	exit 2
}

# The demo as `run` serves it: the demo cluster and nothing else. Without
# forwarding every answer is the same on every machine, with a network or
# without, and outside names are REFUSED instead of depending on this
# machine's resolver. Sets DEMO to the command line.
demo_command() {
	DEMO=("$here/build/svcdns" --manifests "$here/contrib/demo" --upstream none --listen "$1")
}

# Reads `--listen ADDR:PORT` (or nothing) from the arguments into LISTEN.
parse_listen() {
	LISTEN=$DEFAULT_LISTEN
	while [ $# -gt 0 ]; do
		case "$1" in
		--listen)
			[ $# -ge 2 ] || usage
			LISTEN=$2
			shift 2
			;;
		--listen=*)
			LISTEN=${1#--listen=}
			shift
			;;
		*) usage ;;
		esac
	done
}

# The knot and unbound packages enable and start a system server; the tests
# start their own. Only a service whose package this script installed is
# turned off again.
disable_service() {
	if [ -d /run/systemd/system ]; then
		"${SUDO[@]}" systemctl disable --now "$1.service"
	else
		"${SUDO[@]}" deb-systemd-helper disable "$1.service" &&
			"${SUDO[@]}" update-rc.d "$1" disable
	fi
}

disable_services() {
	local svc
	for svc in "$@"; do disable_service "$svc" || return 1; done
}

# install_missing LOGDIR PACKAGE...: installs the packages that are not
# installed yet, keeping apt-get's output in LOGDIR/quickstart-packages.log.
install_missing() {
	local logdir=$1 missing=() p rc=0 daemons=false made_policy=false services=() svc
	local log="$logdir/quickstart-packages.log" policy=/usr/sbin/policy-rc.d
	shift
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0

	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 ||
			die "these Debian packages are missing: ${missing[*]}." \
				"Run this script as root, or install sudo, or install them yourself."
		SUDO=(sudo)
		# a password prompt now, not in the middle of the progress line
		sudo -v || die "sudo failed; run this script as root instead"
	fi
	for p in "${missing[@]}"; do
		case $p in knot | unbound) daemons=true services+=("$p") ;; esac
	done
	mkdir -p "$logdir"
	printf 'quickstart: installing %s (apt-get output in %s) ... ' "${missing[*]}" "$log"
	if $daemons && [ ! -e "$policy" ]; then
		# invoke-rc.d asks this script before it starts a service; 101 means
		# "not now", so installing knot or unbound starts no daemon
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null &&
			"${SUDO[@]}" chmod 755 "$policy" && made_policy=true
	fi
	{
		"${SUDO[@]}" apt-get update &&
			"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
				apt-get install -y --no-install-recommends "${missing[@]}" &&
			disable_services "${services[@]}"
	} >"$log" 2>&1 || rc=$?
	if $made_policy; then
		"${SUDO[@]}" rm -f "$policy"
	fi
	if [ $rc -ne 0 ]; then
		echo "failed (status $rc); the end of $log:" >&2
		tail -n 25 "$log" | sed 's/^/  | /' >&2
		exit 1
	fi
	echo "done"
	for svc in "${services[@]}"; do
		say "the $svc package's system service is disabled and stopped; the tests start their own"
	done
}

jobs() { nproc 2>/dev/null || echo 2; }

# serve_demo ADDR:PORT: starts the demo, says how to ask it once it answers,
# and stops it on Ctrl-C or SIGTERM.
serve_demo() {
	local listen=$1 host port pid tee_pid rc=0 i log=build/demo.log
	case "$listen" in
	\[*\]:*)
		host=${listen%%]:*}
		host=${host#[}
		port=${listen##*]:}
		;;
	*:*)
		host=${listen%:*}
		port=${listen##*:}
		;;
	*) die "--listen $listen: expected ADDR:PORT, for example 127.0.0.1:5454" ;;
	esac
	case "$host" in
	0.0.0.0) host=127.0.0.1 ;;
	::) host=::1 ;;
	esac

	demo_command "$listen"
	mkdir -p build
	: >"$log" # not the last run's lines
	# Its own session: Ctrl-C reaches this script alone, which passes on one
	# SIGTERM (a second signal would make svcdns stop at once, uncleanly).
	exec 3> >(tee "$log" >&2)
	tee_pid=$!
	setsid "${DEMO[@]}" 2>&3 &
	pid=$!
	exec 3>&- # tee ends when svcdns does
	STOPPING=false
	trap 'STOPPING=true; kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP

	# Serving means: this svcdns has bound its sockets (its log says so; the
	# port may be shared with another process) and a query gets an answer.
	for ((i = 1; ; i++)); do
		$STOPPING && break
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || rc=$?
			wait "$tee_pid" || true # every line of it in the log
			if grep -qi "address already in use" "$log"; then
				die "$listen is in use by another program; choose another address:" \
					"contrib/quickstart.sh run --listen 127.0.0.1:5454"
			fi
			die "svcdns stopped with status $rc before it answered (its log: $log)"
		fi
		if grep -q "\] listening on " "$log" &&
			[ "$(dig @"$host" -p "$port" +time=1 +tries=1 +short \
				dns-version.cluster.local TXT 2>/dev/null)" = '"1.1.0"' ]; then
			break
		fi
		[ "$i" -eq 300 ] && say "svcdns has not answered on $listen for 30 s; still waiting (its log: $log)"
		sleep 0.1
	done
	if ! $STOPPING; then
		cat <<MSG

svcdns is serving the demo cluster (contrib/demo) on $listen. Try:

  dig @$host -p $port my-service.default.svc.cluster.local
  dig @$host -p $port _http._tcp.web.shop.svc.cluster.local SRV
  dig @$host -p $port db.shop.svc.cluster.local
  dig @$host -p $port db-0.db.shop.svc.cluster.local
  dig @$host -p $port payments.shop.svc.cluster.local
  dig @$host -p $port -x 10.96.10.10
  dig @$host -p $port CH TXT web.shop.svc.cluster.local +short
  dig @$host -p $port web.shop.svc

It answers for the demo only (--upstream none): other names get REFUSED.
Edit a file in contrib/demo and ask again: answers change without a restart.
Ctrl-C stops the server.

MSG
	fi
	rc=0
	while :; do
		wait "$pid" && rc=0 || rc=$?
		kill -0 "$pid" 2>/dev/null || break
	done
	exit "$rc"
}

case "${1:-}" in
run)
	shift
	parse_listen "$@"
	install_missing build "${BUILD_PKGS[@]}" bind9-dnsutils
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSVCDNS_TESTS=OFF >/dev/null
	cmake --build build -j"$(jobs)"
	serve_demo "$LISTEN"
	;;
demo-command)
	shift
	parse_listen "$@"
	demo_command "$LISTEN"
	printf '%q ' "${DEMO[@]}"
	echo
	;;
test)
	[ $# -eq 1 ] || usage
	install_missing build-test "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
	cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DSVCDNS_SANITIZE=ON >/dev/null
	cmake --build build-test -j"$(jobs)"
	cd build-test
	ctest --output-on-failure -j"$(jobs)" --timeout 300
	# ThreadSanitizer over the unit tests that start threads (the list is in
	# tests/CMakeLists.txt): under a minute on two cores.
	cd "$here"
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSVCDNS_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j"$(jobs)" --target threaded_tests
	(cd build-tsan && ctest -L threads --output-on-failure --timeout 300)
	;;
*)
	usage
	;;
esac
