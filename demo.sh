#!/bin/bash
# The demo: on a fresh Debian 12 machine, install what is needed, build
# certherd, start a local Pebble CA (Let's Encrypt's test server) on a
# private loopback, run the daemon (`certherd serve`) against it, register
# 1,000 domains through its control API as a hosting platform would, and
# watch them being issued with real HTTP-01 validation. The daemon runs in
# front mode: it terminates TLS on 127.0.0.1:443 for every domain, in front
# of an nginx that listens with proxy_protocol on 127.0.0.1:8080, so once
# the domains are valid curl and openssl reach them through it, each with
# its own certificate. Then stop the daemon with SIGTERM (a drain).
#
#   sudo ./demo.sh [N]        N domains (default 1000)
#
# Everything runs in a private network namespace: nothing listens on the
# machine's real interfaces. Certificates end up in ./demo-out/live/, the
# daemon's state and log in ./demo-out/state/ and ./demo-out/serve.log.
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000}
case "$N" in '' | *[!0-9]* | 0) echo "demo.sh: N must be a positive number" >&2; exit 2 ;; esac

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
CONF=$OUT/certherd.conf
CH=build/certherd
SERVE_PID=
NGINX_PID=

tests/ca/ca.sh start "$OUT/ca" >/dev/null
cleanup() {
	[ -z "$SERVE_PID" ] || kill -KILL "$SERVE_PID" 2>/dev/null || true
	[ -z "$NGINX_PID" ] || kill -TERM "$NGINX_PID" 2>/dev/null || true
	tests/ca/ca.sh stop "$OUT/ca" >/dev/null 2>&1
}
trap cleanup EXIT
load_ca_env() {
	set -a
	. "$OUT/ca/ca.env"
	set +a
}
load_ca_env

# The web server behind the front: Debian's nginx on loopback, taking the
# client's address from the PROXY v2 header certherd sends first.
mkdir -p "$OUT/nginx/tmp"
cat >"$OUT/nginx/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log;
events { worker_connections 1024; }
http {
	client_body_temp_path $OUT/nginx/tmp/body;
	proxy_temp_path $OUT/nginx/tmp/proxy;
	fastcgi_temp_path $OUT/nginx/tmp/fastcgi;
	uwsgi_temp_path $OUT/nginx/tmp/uwsgi;
	scgi_temp_path $OUT/nginx/tmp/scgi;
	access_log off;
	server {
		listen 127.0.0.1:8080 proxy_protocol;
		set_real_ip_from 127.0.0.1;
		real_ip_header proxy_protocol;
		location / {
			return 200 "nginx: the shop of \$host, for client \$remote_addr (PROXY v2), TLS by certherd\n";
		}
	}
}
NGINX
nginx -e "$OUT/nginx/error.log" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
NGINX_PID=$!

# The daemon's configuration: Pebble as the CA, its HTTP-01 port, no DNS
# pre-flight (the demo's names exist only in Pebble's own DNS server),
# front mode on 127.0.0.1:443 in front of that nginx.
write_conf() {
	cat >"$CONF" <<CONF
[acme]
directory = $ACME_DIRECTORY
ca_bundle = $CA_BUNDLE
email = ops@customer-domains.test
concurrency = 300

[store]
state_dir = $OUT/state
live_dir = $OUT/live

[http]
listen = 127.0.0.1:$HTTP01_PORT

[preflight]
enabled = false

[front]
enabled = true
listen = 127.0.0.1:443
upstream = 127.0.0.1:8080

[log]
level = warn
CONF
}
start_daemon() {
	"$CH" -c "$CONF" serve 2>>"$OUT/serve.log" &
	SERVE_PID=$!
	for _ in $(seq 100); do
		[ -S "$OUT/state/api.sock" ] && "$CH" -c "$CONF" status >/dev/null 2>&1 && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "demo.sh: the daemon did not start; its log:" >&2
	tail -20 "$OUT/serve.log" >&2
	exit 1
}
# stop_daemon [now]: SIGTERM (a drain of the orders in flight); with "now"
# a second SIGTERM right after it, which stops at once. Sets STOP_RC.
stop_daemon() {
	kill -TERM "$SERVE_PID"
	if [ "${1:-}" = now ]; then
		sleep 0.2
		kill -TERM "$SERVE_PID" 2>/dev/null || true
	fi
	STOP_RC=0
	wait "$SERVE_PID" || STOP_RC=$?
	SERVE_PID=
}

write_conf
echo "== certherd serve against Pebble $PEBBLE_VERSION at $ACME_DIRECTORY"
start_daemon
echo "   daemon running (pid $SERVE_PID), control API on $OUT/state/api.sock"

for i in $(seq 1 "$N"); do echo "shop$i.customer-domains.test"; done >"$OUT/domains.txt"
echo "== registering $N domains through the API (certherd domains add, 100 per request)"
start=$(date +%s.%N)
rm -f "$OUT"/batch.*
split -l 100 -d -a 4 "$OUT/domains.txt" "$OUT/batch."
batches=0
for b in "$OUT"/batch.*; do
	"$CH" -c "$CONF" domains add --file "$b" >/dev/null
	batches=$((batches + 1))
done
rm -f "$OUT"/batch.*
awk -v a="$start" -v b="$(date +%s.%N)" -v n="$batches" \
	'BEGIN { printf "   %d requests in %.2f s\n", n, b - a }'

# One status line a second until every domain is valid. Pebble (a test CA)
# can wedge for good under parallel load: its store lock leaks
# (docs/pebble.md). Then stop the daemon, restart Pebble and the daemon
# (which resumes its orders), and, once nothing is in flight any more, ask
# again for the domains the lost orders left waiting; the account key is
# reused.
echo "== issuing (one line a second from certherd status --json)"
wedges=0
stalled=0
while :; do
	sleep 1
	st=$("$CH" -c "$CONF" status --json 2>/dev/null || echo '{}')
	read -r valid issuing pending failed inflight < <(jq -r \
		'[.domains.valid, .domains.issuing, .domains.pending,
		  .domains.failed, .in_flight] | map(. // 0) | @tsv' <<<"$st")
	awk -v a="$start" -v b="$(date +%s.%N)" -v v="$valid" -v n="$N" \
		-v i="$issuing" -v p="$pending" -v f="$failed" -v q="$inflight" \
		'BEGIN { printf "   [%5.1f s] %5d/%d valid  %4d issuing  %5d pending  %3d failed  %3d orders in flight\n", b - a, v, n, i, p, f, q }'
	[ "$valid" -lt "$N" ] || break
	if tests/ca/ca.sh wedged "$OUT/ca" 2>/dev/null; then
		wedges=$((wedges + 1))
		[ $wedges -le 3 ] || { echo "demo.sh: Pebble wedged $wedges times; giving up" >&2; exit 1; }
		echo "== Pebble wedged (its bug, see docs/pebble.md); restarting it and the daemon"
		stop_daemon now
		cat "$PEBBLE_ROOT" >>"$OUT/roots.pem" # earlier certificates chain to it
		tests/ca/ca.sh stop "$OUT/ca" >/dev/null 2>&1
		tests/ca/ca.sh start "$OUT/ca" >/dev/null
		load_ca_env
		write_conf
		start_daemon
		continue
	fi
	# After a wedge the orders of the old Pebble fail on the new one and
	# back off; with nothing left in flight, make the waiting names due.
	if [ $wedges -gt 0 ] && [ "$inflight" = 0 ] && [ "$issuing" = 0 ]; then
		stalled=$((stalled + 1))
		if [ $stalled -ge 2 ]; then
			"$CH" -c "$CONF" domains ls --json 2>/dev/null |
				jq -r 'select(.state == "pending" or .state == "failed") | .name' |
				xargs -r -n 200 "$CH" -c "$CONF" renew >/dev/null
			stalled=0
		fi
	else
		stalled=0
	fi
done
end=$(date +%s.%N)
cat "$PEBBLE_ROOT" >>"$OUT/roots.pem"
awk -v n="$N" -v a="$start" -v b="$end" \
	'BEGIN { printf "== %d certificates in %.1f s (%.0f per second), from the first API request to the last one valid\n", n, b - a, n / (b - a) }'

echo "== a sample, checked with openssl against Pebble's root(s):"
for i in 1 $(((N + 1) / 2)) "$N"; do
	d=shop$i.customer-domains.test
	l=$OUT/live/$d
	printf '   %-36s ' "$d"
	openssl verify -CAfile "$OUT/roots.pem" -untrusted "$l/chain.pem" "$l/cert.pem" >/dev/null &&
		printf 'chain ok, ' || printf 'CHAIN BAD, '
	openssl x509 -noout -ext subjectAltName -in "$l/cert.pem" | tail -1 | tr -d ' \n'
	printf ', key %s\n' "$(stat -c %a "$l/privkey.pem")"
done

echo "== front mode: each domain through certherd on 127.0.0.1:443 (curl --resolve from 127.0.0.2, nginx behind)"
for i in 1 $(((N + 1) / 2)) "$N"; do
	d=shop$i.customer-domains.test
	served=$(openssl s_client -connect 127.0.0.1:443 -servername "$d" \
		-CAfile "$OUT/roots.pem" -verify_return_error </dev/null 2>/dev/null |
		openssl x509 -noout -serial -ext subjectAltName 2>/dev/null |
		sed -n 's/^serial=//p; s/^ *DNS://p' | paste -sd' ')
	live=$(openssl x509 -noout -serial -in "$OUT/live/$d/cert.pem" | sed 's/^serial=//')
	printf '   %-36s served %s: %s\n' "$d" "${served:-NOTHING}" \
		"$([ "${served%% *}" = "$live" ] && echo "its own certificate (serial as in live/)" || echo "NOT ITS OWN")"
	printf '   %-36s curl: %s' "" "$(curl -sS --interface 127.0.0.2 --cacert "$OUT/roots.pem" \
		--resolve "$d:443:127.0.0.1" "https://$d/" || echo "FAILED")"
	echo
done

t0=$(date +%s.%N)
stop_daemon
awk -v a="$t0" -v b="$(date +%s.%N)" -v rc="$STOP_RC" \
	'BEGIN { printf "== daemon stopped by SIGTERM in %.1f s, exit status %d\n", b - a, rc }'
echo "== certificates are in demo-out/live/<domain>/{cert,chain,fullchain,privkey}.pem; the daemon's log in demo-out/serve.log"
