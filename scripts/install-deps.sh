#!/bin/sh
# Install everything certherd needs to build, test, fuzz and benchmark on
# Debian 12, plus Debian testing's pebble (2.10) next to the stable 2.4.0.
# Idempotent: when every package is already installed and pebble-testing is
# unpacked, it does nothing and does not touch the network.
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential meson ninja-build pkg-config libssl-dev
libcurl4-openssl-dev libjansson-dev libuv1-dev libmicrohttpd-dev
libsqlite3-dev sqlite3 libinih-dev libc-ares-dev libsystemd-dev libidn2-dev libpsl-dev publicsuffix libcmocka-dev pebble
openssl curl ca-certificates clang libclang-rt-14-dev util-linux iproute2
procps jq python3 xxd dnsmasq-base nginx"
PEBBLE_TESTING=/opt/certherd/pebble-testing/usr/bin/pebble

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: must run as root (try: sudo $0)" >&2
	exit 1
fi

missing=""
for p in $PKGS; do
	# "install ok installed" is the only state that counts as present.
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing="$missing $p"
done

if [ -n "$missing" ] || [ ! -x "$PEBBLE_TESTING" ]; then
	echo "install-deps: installing:${missing:- (nothing missing; pebble-testing absent)}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends $PKGS
else
	echo "install-deps: all packages present" >&2
fi

# Prints the path of the testing pebble binary; fetches it if absent.
sh tests/ca/fetch-pebble-testing.sh
