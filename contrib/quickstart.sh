#!/usr/bin/env bash
# svcdns quick start on a fresh Debian machine.
#
#   contrib/quickstart.sh run    install what is missing, build, serve the demo
#                                cluster (contrib/demo) on 127.0.0.1:5353
#   contrib/quickstart.sh test   install what is missing, build with ASan+UBSan,
#                                run the whole test suite (ctest)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

# Build and runtime dependencies, and the real clients the tests use.
BUILD_PKGS=(build-essential cmake pkg-config libldns-dev libuv1-dev libcurl4-openssl-dev
	libjansson-dev libyaml-dev libmicrohttpd-dev)
TEST_PKGS=(libcmocka-dev bind9-dnsutils knot-dnsutils python3 python3-dnspython knot)

install_missing() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "quickstart: installing Debian packages: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}"
}

jobs() { nproc 2>/dev/null || echo 2; }

case "${1:-}" in
run)
	install_missing "${BUILD_PKGS[@]}" bind9-dnsutils
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSVCDNS_TESTS=OFF >/dev/null
	cmake --build build -j"$(jobs)"
	cat <<'MSG'

svcdns is serving the demo cluster (contrib/demo) on 127.0.0.1:5353. Try:

  dig @127.0.0.1 -p 5353 my-service.default.svc.cluster.local
  dig @127.0.0.1 -p 5353 _http._tcp.web.shop.svc.cluster.local SRV
  dig @127.0.0.1 -p 5353 db.shop.svc.cluster.local
  dig @127.0.0.1 -p 5353 db-0.db.shop.svc.cluster.local
  dig @127.0.0.1 -p 5353 payments.shop.svc.cluster.local
  dig @127.0.0.1 -p 5353 -x 10.96.10.10
  dig @127.0.0.1 -p 5353 CH TXT web.shop.svc.cluster.local +short
  dig @127.0.0.1 -p 5353 web.shop.svc

Edit a file in contrib/demo and ask again: answers change without a restart.
Ctrl-C stops the server.

MSG
	exec build/svcdns --manifests contrib/demo --listen 127.0.0.1:5353
	;;
test)
	install_missing "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
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
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac
