#!/bin/sh
# Fetch Debian testing's pebble (2.10: ARI, profiles) without touching the
# system's apt configuration, and unpack it under DEST (default
# /opt/certherd/pebble-testing). The mirror is the one this machine's apt
# sources already use: we read it, never hard-code a host.
set -eu
DEST=${1:-/opt/certherd/pebble-testing}
if [ -x "$DEST/usr/bin/pebble" ]; then echo "$DEST/usr/bin/pebble"; exit 0; fi

uri=""
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	u=$(awk '/^URIs:/ {print $2; exit}' "$f")
	s=$(awk '/^Suites:/ {print $2; exit}' "$f")
	case "$s" in bookworm|trixie|testing|sid|stable) uri=$u; break;; esac
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
	uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$uri" ] || { echo "fetch-pebble-testing: no Debian mirror found in apt sources" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri testing main" > "$work/sources.list"
opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/nonexistent
      -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache
      -o Acquire::Languages=none -o APT::Get::List-Cleanup=0"
# shellcheck disable=SC2086
apt-get $opts update >&2
cd "$work"
# shellcheck disable=SC2086
apt-get $opts download pebble >&2
mkdir -p "$DEST"
dpkg -x "$work"/pebble_*.deb "$DEST"
echo "$DEST/usr/bin/pebble"
