#!/bin/sh
# Install the peer ACME clients and tools that bench/issue.sh and
# bench/serve.sh compare certherd with (Debian 12): Apache httpd with
# mod_md, lego, certbot, GNU time; and the sqlite3 shell serve.sh reads
# the store with; nginx, HAProxy and hitch, the TLS terminators
# bench/front.sh compares front mode with, and the GnuTLS and wolfSSL dev
# packages for its in-memory floors of those libraries (bench/tlsfloor_*.c).
# Kept apart from scripts/install-deps.sh so that the test install stays lean.
# Idempotent: does nothing (and no network) when everything is present.
set -eu
PKGS="apache2 lego certbot time python3 sqlite3 nginx haproxy hitch pkg-config libgnutls28-dev libwolfssl-dev"
if [ "$(id -u)" != 0 ]; then
	echo "install-peers: must run as root (try: sudo $0)" >&2
	exit 1
fi
missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-peers: all packages present" >&2
	exit 0
fi
echo "install-peers: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
# The benchmark runs its own apache2 (-f, private ServerRoot); the packaged
# service is not needed.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now apache2 >/dev/null 2>&1 || true
	# likewise nginx, haproxy and hitch: bench/front.sh runs its own
	systemctl disable --now nginx haproxy hitch >/dev/null 2>&1 || true
	# nor certbot's renewal timer: the benchmark's certbot state is its own
	systemctl disable --now certbot.timer >/dev/null 2>&1 || true
fi
