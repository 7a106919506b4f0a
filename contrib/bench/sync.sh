#!/usr/bin/env bash
# The Kubernetes API source at scale: svcdns against the fake API server
# (tests/fakeapi/fakeapi.py) on gen.py's cluster. Prints one SUMMARY line per
# figure: the fake's own time to stream every list page, the first sync (start
# until the last Service answers, split into receive+parse+store and the
# final build), and watch event -> served answer for Services and
# EndpointSlices (median and worst).
#
#   contrib/bench/sync.sh                        # 100k Services, 20 events
#   contrib/bench/sync.sh --services 10000 --svcdns build/svcdns --out DIR
#
# Builds a Release svcdns in build-bench unless --svcdns names one. Needs
# /usr/bin/python3 with python3-dnspython. --out keeps the generated cluster
# (reused by the next run), svcdns's log and the figures as JSON.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3

services=100000
rounds=20
page_size=500
build="$root/build-bench"
svcdns_bin=""
out=""

usage() {
	cat <<EOF
usage: contrib/bench/sync.sh [options]

  --services N     Services in the generated cluster (default $services)
  --rounds N       watch events timed, half Services, half EndpointSlices (default $rounds)
  --page-size N    list page size, as --api-page-size (default $page_size)
  --build DIR      build directory (default build-bench)
  --svcdns BIN     measure this svcdns binary instead of building one
  --out DIR        keep the cluster, the log and sync.json here (default: a temporary directory)
EOF
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--services) services=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--page-size) page_size=$2; shift ;;
	--build) build=$2; shift ;;
	--svcdns) svcdns_bin=$(realpath "$2"); shift ;;
	--out) out=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

die() { echo "sync.sh: $*" >&2; exit 1; }

"$py" -c "import dns.message" 2>/dev/null || die "$py needs dnspython (apt-get install python3-dnspython)"
if [[ -z $svcdns_bin ]]; then
	mkdir -p "$build"
	echo "sync.sh: building svcdns (Release) in $build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF \
		>"$build/sync-build.log" 2>&1 || die "cmake failed: $build/sync-build.log"
	cmake --build "$build" -j"$(nproc)" >>"$build/sync-build.log" 2>&1 ||
		die "build failed: $build/sync-build.log"
	svcdns_bin=$build/svcdns
fi
[[ -x $svcdns_bin ]] || die "no svcdns binary at $svcdns_bin"

tmp=""
if [[ -z $out ]]; then
	tmp=$(mktemp -d /tmp/svcdns-sync.XXXXXX)
	out=$tmp
	trap 'rm -rf "$tmp"' EXIT
fi
mkdir -p "$out"
out=$(realpath "$out")

SVCDNS_BIN=$svcdns_bin "$py" "$root/tests/fakeapi/bench_sync.py" --services "$services" \
	--rounds "$rounds" --page-size "$page_size" --work "$out/cluster-$services" \
	--log "$out/svcdns-sync.log" --json "$out/sync.json"
