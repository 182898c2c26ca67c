#!/bin/bash
# The demo: on a fresh Debian 12 machine, install what is needed, build
# certherd, start a local Pebble CA (Let's Encrypt's test server) on a
# private loopback, and obtain certificates for 1,000 domains with real
# HTTP-01 validation. Then check a few of them with openssl.
#
#   sudo ./demo.sh [N]        N domains (default 1000)
#
# Everything runs in a private network namespace: nothing listens on the
# machine's real interfaces. Certificates end up in ./demo-out/live/.
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000}

if [ "${CERTHERD_DEMO_INNER:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo ./demo.sh): it installs packages and uses a network namespace" >&2; exit 1; }
	scripts/install-deps.sh
	[ -f build/build.ninja ] || meson setup build -Dbuildtype=release >/dev/null
	ninja -C build certherd >/dev/null
	rm -rf demo-out
	mkdir -p demo-out
	CERTHERD_DEMO_INNER=1 exec tests/netns.sh "$0" "$N"
fi

OUT=$PWD/demo-out
tests/ca/ca.sh start "$OUT/ca" >/dev/null
trap 'tests/ca/ca.sh stop "$OUT/ca" >/dev/null 2>&1' EXIT
set -a
. "$OUT/ca/ca.env"
set +a
for i in $(seq 1 "$N"); do echo "shop$i.customer-domains.test"; done >"$OUT/domains.txt"

echo "== certherd issue: $N domains against Pebble $PEBBLE_VERSION at $ACME_DIRECTORY"
start=$(date +%s.%N)
# Pebble 2.10 can wedge under many parallel requests (see docs/pebble.md):
# 4 connections keep it healthy and still saturate it.
build/certherd issue --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
	--http-listen "127.0.0.1:$HTTP01_PORT" --out "$OUT" --log-level warn \
	--domains-file "$OUT/domains.txt" --concurrency 300 --ca-connections 4
end=$(date +%s.%N)
got=$(find "$OUT/live" -name fullchain.pem | wc -l)
awk -v n="$got" -v a="$start" -v b="$end" \
	'BEGIN { printf "== %d certificates in %.1f s (%.0f per second)\n", n, b - a, n / (b - a) }'

echo "== a sample, checked with openssl against Pebble's root:"
for i in 1 $((N / 2)) "$N"; do
	d=shop$i.customer-domains.test
	l=$OUT/live/$d
	printf '%-36s ' "$d"
	openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$l/chain.pem" "$l/cert.pem" >/dev/null &&
		printf 'chain ok, ' || printf 'CHAIN BAD, '
	openssl x509 -noout -ext subjectAltName -in "$l/cert.pem" | tail -1 | tr -d ' \n'
	printf ', key %s\n' "$(stat -c %a "$l/privkey.pem")"
done
echo "== certificates are in demo-out/live/<domain>/{cert,chain,fullchain,privkey}.pem"
