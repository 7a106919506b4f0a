#!/usr/bin/env bash
# Lays out the root file system of the container image (contrib/Dockerfile's
# last stage starts from nothing): the binary, the shared libraries it loads,
# what those libraries read at run time, and the user it runs as.
#
#   contrib/image-root.sh BINARY ROOT
#
# Runs as root on the Debian system that built BINARY, with ca-certificates
# and libcap2-bin installed.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 BINARY ROOT" >&2
	exit 2
fi
bin=$1
root=$2
uid=65532

install -d -m 0755 "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/usr/share/doc"
install -d -m 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/svcdns"

# The loader and every library, at the path the loader found it: with no
# ld.so.cache in the image, the loader looks in its built-in directories,
# which are where Debian installs them.
if ldd "$bin" | grep -q 'not found'; then
	ldd "$bin" >&2
	echo "$0: a shared library of $bin is missing" >&2
	exit 1
fi
mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if [ ${#libs[@]} -eq 0 ]; then
	echo "$0: ldd names no shared library of $bin" >&2
	exit 1
fi
for lib in "${libs[@]}"; do
	install -d -m 0755 "$root$(dirname "$lib")"
	cp -L --preserve=mode "$lib" "$root$lib"
done

# libcurl (OpenSSL) reads this bundle for an API server whose CA the
# kubeconfig does not name.
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

# The licences of what is shipped: the copyright file of each Debian package
# a file comes from. With merged /usr, dpkg knows a file by one of two names.
owner() {
	local p
	for p in "$1" "$(readlink -f "$1")"; do
		for q in "$p" "/usr$p" "${p#/usr}"; do
			dpkg-query -S "$q" 2>/dev/null | head -n1 | cut -d: -f1 && return 0
		done
	done
	return 1
}
pkgs=(ca-certificates)
for lib in "${libs[@]}"; do
	if ! pkg=$(owner "$lib") || [ -z "$pkg" ]; then
		echo "$0: no Debian package owns $lib" >&2
		exit 1
	fi
	pkgs+=("$pkg")
done
for pkg in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
	install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
done

# The user and group the image runs as, so that tools (and logs) show a name,
# and the name service configuration libc reads for host names.
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/usr/sbin/nologin
svcdns:x:$uid:$uid:svcdns:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
svcdns:x:$uid:
EOF
cat >"$root/etc/nsswitch.conf" <<EOF
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

# Port 53 without root: the only privilege the binary carries.
setcap cap_net_bind_service=+ep "$root/usr/local/bin/svcdns"

# The root is complete when the binary starts in it alone.
chroot "$root" /usr/local/bin/svcdns --version
