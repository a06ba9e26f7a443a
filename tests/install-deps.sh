#!/usr/bin/env bash
# install-deps: install the Debian packages smpgw builds and tests with, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
set -euo pipefail
packages=(
	build-essential autoconf automake libtool pkg-config
	libcbor-dev libsystemd-dev libmicrohttpd-dev libsqlite3-dev libjansson-dev nettle-dev libinih-dev
	dbus python3 python3-pytest python3-yaml openssl sqlite3 curl clang systemd groff-base
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "install-deps: missing Debian packages. Run:" >&2
	echo "  sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
