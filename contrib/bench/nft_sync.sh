#!/usr/bin/env bash
# How fast --proxy=nftables programs the kernel: for each size given (default
# 10000 and 100000 Services, 5 endpoints each), a full sync into an empty
# table, then 100 each of one Service added, one endpoint removed and one
# Service deleted (median and p99, wall and CPU time). Runs as root, in a
# network namespace of its own: nothing outside it changes.
#
#   contrib/bench/nft_sync.sh               # 10000 and 100000
#   contrib/bench/nft_sync.sh 1000 10000
#
# Builds a Release svcdns core in build-bench-nft/ unless it is there. The
# figures are discussed in doc/datapath.md ("How fast it programs").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
[ "$(id -u)" -eq 0 ] || {
	echo "nft_sync.sh: run as root (it creates a network namespace and an nftables table)" >&2
	exit 1
}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
if [ ! -f build-bench-nft/libsvcdns_core.a ]; then
	cmake -S . -B build-bench-nft -DCMAKE_BUILD_TYPE=Release -DSVCDNS_TESTS=OFF >/dev/null
	cmake --build build-bench-nft -j"$(nproc)" --target svcdns_core >/dev/null
fi
tmp="$(mktemp -d /tmp/svcdns-bench-nft.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046 # the libraries are separate words
cc -O2 -I. -o "$tmp/nft_sync" contrib/bench/nft_sync.c build-bench-nft/libsvcdns_core.a \
	$(pkg-config --libs ldns libuv libcurl jansson yaml-0.1 libmicrohttpd libnftables libnftnl libmnl \
		libnetfilter_conntrack) -lpthread -lm
for n in "${sizes[@]}"; do
	"$tmp/nft_sync" "$n"
done
# Not measured here: what kube-proxy's nftables mode is reported to take, for
# the same measures (issue 14 of svcdns quotes them).
cat <<'KP'
kube-proxy nftables (published, not measured here): full sync 13 to 17 minutes at 5,000 to
44,000 Services; one Service added at 10,000 Services: 8 minutes before its 2024 rework,
141 ms after (kubernetes/kubernetes#126013, #135639, #139513)
KP
