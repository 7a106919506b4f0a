#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang and runs each in turn.
#
#   contrib/fuzz.sh [SECONDS] [TARGET...]   default: 600 seconds, every target
#
# Each target starts from its seed corpus (tests/fuzz/corpus/<target>, never
# written to) plus what earlier runs learnt (build-fuzz/corpus/<target>). An
# input that crashes, leaks, hangs or runs out of memory is copied into
# tests/fuzz/regress/<target>/, which the normal test suite replays: commit it
# with the fix. Environment: BUILD_DIR (default build-fuzz), FUZZ_FLAGS (extra
# libFuzzer flags, e.g. "-jobs=2 -workers=2"). Exit status 1 if any target
# found something.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

seconds="${1:-600}"
shift || true
case "$seconds" in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS] [TARGET...]" >&2
	exit 2
	;;
esac
build="${BUILD_DIR:-build-fuzz}"
all_targets=(dns_query manifest_json manifest_yaml yaml2json tcp_stream watch_stream kubeconfig
	upstream)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# The normal build's dependencies, plus clang and its libFuzzer runtime.
PKGS=(build-essential cmake pkg-config libldns-dev libuv1-dev libcurl4-openssl-dev
	libjansson-dev libyaml-dev libmicrohttpd-dev libssl-dev libnftables-dev libnftnl-dev libmnl-dev
	libnetfilter-conntrack-dev clang libclang-rt-14-dev)

install_missing() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "fuzz: installing Debian packages: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}"
}

# Per target: the dictionary and the largest input worth trying (a query
# reads a header, a question and OPT; a TCP stream holds a few of them; an
# upstream answer is rarely longer than a few KB; manifests, watch bodies and
# kubeconfigs are small files).
dict_of() {
	case "$1" in
	dns_query | tcp_stream | upstream) echo tests/fuzz/dns_query.dict ;;
	kubeconfig) echo tests/fuzz/kubeconfig.dict ;;
	*) echo tests/fuzz/manifest.dict ;;
	esac
}
max_len_of() {
	case "$1" in
	dns_query) echo 1024 ;;
	tcp_stream | upstream) echo 4096 ;;
	*) echo 16384 ;;
	esac
}

install_missing "${PKGS[@]}"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSVCDNS_FUZZ=ON \
	-DSVCDNS_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
	--target "${targets[@]/#/fuzz_}"

# Leaks are failures; a UBSan report stops the run with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
summary=()
for t in "${targets[@]}"; do
	bin="$build/fuzz/fuzz_$t"
	[ -x "$bin" ] || {
		echo "fuzz: no target $t (have: ${all_targets[*]})" >&2
		exit 2
	}
	work="$build/corpus/$t"
	art="$build/artifacts/$t"
	log="$build/fuzz-$t.log"
	mkdir -p "$work" "$art"
	echo "fuzz: $t for ${seconds}s (log: $log)"
	rc=0
	# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$(max_len_of "$t")" -dict="$(dict_of "$t")" \
		-artifact_prefix="$art/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
		"$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 || true)
	found=()
	for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
		[ -e "$f" ] || continue
		mkdir -p "tests/fuzz/regress/$t"
		cp "$f" "tests/fuzz/regress/$t/"
		found+=("tests/fuzz/regress/$t/$(basename "$f")")
		rm -f "$f"
	done
	if [ "$rc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
		status=1
		summary+=("$t: ${execs:-?} executions, ${cov:-no coverage line}, FAILED (exit $rc): ${found[*]:-no input saved}")
		grep -E -A30 '^==[0-9]+==ERROR|runtime error|check failed|^SUMMARY' "$log" | head -n 60 >&2 || true
	else
		summary+=("$t: ${execs:-?} executions, ${cov:-no coverage line}, nothing found")
	fi
done

echo
printf 'fuzz: %s\n' "${summary[@]}"
[ "$status" -eq 0 ] || echo "fuzz: replay one with $build/fuzz/fuzz_<target> FILE; ctest replays all of tests/fuzz/regress" >&2
exit "$status"
