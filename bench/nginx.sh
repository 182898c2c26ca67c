#!/bin/bash
# nginx mode benchmark (docs/nginx.md): what a reload costs nginx when
# certherd keeps N domains in it, per strategy, and how many reloads
# adding domains one by one causes.
#
#   sudo bench/nginx.sh                     N = 2,000 and 10,000
#   sudo BENCH_SIZES=2000 bench/nginx.sh    one size
#
# For each strategy (server-blocks with the built-in template, sni-variable)
# and each N: a fresh Pebble (tests/ca/ca.sh) and Debian's nginx (run as
# nobody, own prefix, on loopback in a private network namespace), certherd
# serve registers N domains through its API and obtains them (HTTP-01
# through nginx); then:
#   reload ms    one `nginx -s reload` (the daemon stopped): from the
#                signal until no worker of the old generation is left and a
#                new one serves a handshake, polled every 20 ms
#   RSS before   nginx master + workers (sum of VmRSS, ps) at rest
#   RSS during   the largest such sum while the reload runs (old and new
#                workers side by side)
#   RSS after    at rest 2 s after the reload
# Then, on the same nginx and daemon (reload_interval = 1m): ADD more
# domains added one by one through the CLI, and the reloads nginx's own
# log shows until every one is served.
# Handshakes per second through nginx with random SNI are not measured:
# the tool is meant to be shared with front mode, which does not exist yet.
# BENCH_ADD (default 1000) sets ADD; BENCH_KEEP=1 keeps the work directory.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ "${CERTHERD_NETNS:-}" = "" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/nginx.sh: run as root" >&2; exit 1; }
	exec "$REPO/tests/netns.sh" "$0" "$@"
fi
SIZES=${BENCH_SIZES:-2000 10000}
ADD=${BENCH_ADD:-1000}
BIN=$REPO/build/certherd
[ -x "$BIN" ] || { meson setup "$REPO/build" >/dev/null && meson compile -C "$REPO/build" >/dev/null; } || exit 1
W=$(mktemp -d /tmp/certherd-bench-nginx.XXXXXX)
chmod 755 "$W"
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
TLS_PORT=18443
CH_PORT=18402
APP_PORT=18080

rss() { # sum of VmRSS (KiB) of the nginx master and its workers
	local m
	m=$(cat "$NG/logs/nginx.pid" 2>/dev/null) || { echo 0; return; }
	ps -o rss= --pid "$m" --ppid "$m" 2>/dev/null | awk '{s += $1} END {print s + 0}'
}
workers() { ps -o pid= --ppid "$(cat "$NG/logs/nginx.pid")" -o cmd= | awk '/worker process/ {print $1}' | sort; }
wait_for() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $d ] || return 1; sleep 0.1; done; }

run_one() { # STRATEGY N
	local strategy=$1 n=$2 d=$W/$1-$2
	NG=$d/nginx
	mkdir -p "$NG/conf" "$NG/logs" "$NG/tmp"
	chown -R nobody:nogroup "$NG/logs" "$NG/tmp"
	"$REPO/tests/ca/ca.sh" stop "$d/ca" >/dev/null 2>&1
	"$REPO/tests/ca/ca.sh" start "$d/ca" >/dev/null || { echo "CA does not start" >&2; return 1; }
	set -a; . "$d/ca/ca.env"; set +a
	local cmd="setpriv --reuid=nobody --regid=nogroup --clear-groups -- $NGINX_BIN -p $NG -c $NG/conf/nginx.conf -e $NG/logs/error.log"
	cat >"$NG/conf/nginx.conf" <<EOF
worker_processes 2;
error_log $NG/logs/error.log notice;
pid $NG/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NG/tmp/body; proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi; uwsgi_temp_path $NG/tmp/uwsgi; scgi_temp_path $NG/tmp/scgi;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    server {
        listen 127.0.0.1:$HTTP01_PORT default_server;
        location ^~ /.well-known/acme-challenge/ { proxy_pass http://127.0.0.1:$CH_PORT; }
    }
    server { listen 127.0.0.1:$APP_PORT; location / { return 200 "app\n"; } }
    include $NG/conf/certherd.conf;
}
EOF
	: >"$NG/conf/certherd.conf"
	$cmd || return 1
	cat >"$d/certherd.conf" <<EOF
[acme]
directory = $ACME_DIRECTORY
ca_bundle = $CA_BUNDLE
concurrency = 200
[store]
state_dir = $d/state
live_dir = $d/live
[http]
listen = 127.0.0.1:$CH_PORT
[api]
socket = $d/api.sock
[preflight]
enabled = false
[nginx]
enabled = true
strategy = $strategy
include = $NG/conf/certherd.conf
nginx = $cmd
upstream = 127.0.0.1:$APP_PORT
listen = 127.0.0.1:$TLS_PORT
reload_interval = 1m
key_owner = nobody:nogroup
EOF
	local ch="$BIN -c $d/certherd.conf"
	$BIN -c "$d/certherd.conf" serve >"$d/serve.log" 2>&1 &
	local spid=$!
	wait_for 30 test -S "$d/api.sock" || { echo "serve does not start" >&2; return 1; }
	seq -f "n%06g.bench.test" 1 "$n" >"$d/names.txt"
	$ch domains add --file "$d/names.txt" >/dev/null
	local valid=0 t0=$SECONDS
	until [ "$valid" = "$n" ] || [ $((SECONDS - t0)) -gt 1800 ]; do
		sleep 2
		valid=$($ch status --json | jq '.domains.valid // 0')
	done
	# the last reload with all of them (server-blocks), at most a minute
	wait_for 90 grep -q "verified: nginx serves" "$d/serve.log"
	last=$(tail -1 "$d/names.txt")
	wait_for 90 bash -c "openssl s_client -connect 127.0.0.1:$TLS_PORT -servername $last </dev/null 2>/dev/null | grep -q 'BEGIN CERT'"
	kill -TERM $spid; wait $spid 2>/dev/null
	sleep 2
	# one reload, measured
	local before during after old new t_start t_end
	before=$(rss)
	during=$before
	old=$(workers)
	t_start=$(date +%s%N)
	$cmd -s reload
	while :; do
		r=$(rss); [ "$r" -gt "$during" ] && during=$r
		new=$(workers)
		if ! comm -12 <(echo "$old") <(echo "$new") | grep -q . &&
			openssl s_client -connect 127.0.0.1:$TLS_PORT -servername "$last" </dev/null 2>/dev/null | grep -q 'BEGIN CERT'; then
			break
		fi
		[ $(( ($(date +%s%N) - t_start) / 1000000 )) -gt 120000 ] && break
		sleep 0.02
	done
	t_end=$(date +%s%N)
	sleep 2
	after=$(rss)
	# ADD more, one by one, through the daemon
	$BIN -c "$d/certherd.conf" serve >>"$d/serve.log" 2>&1 &
	spid=$!
	wait_for 30 test -S "$d/api.sock"
	local r0 r1
	r0=$(grep -c 'SIGHUP) received' "$NG/logs/error.log")
	t0=$SECONDS
	for i in $(seq 1 "$ADD"); do $ch domains add "a$i.bench.test" >/dev/null; done
	local add_s=$((SECONDS - t0))
	until [ "$($ch status --json | jq '.domains.valid // 0')" = $((n + ADD)) ] || [ $((SECONDS - t0)) -gt 900 ]; do sleep 2; done
	wait_for 90 bash -c "openssl s_client -connect 127.0.0.1:$TLS_PORT -servername a$ADD.bench.test </dev/null 2>/dev/null | grep -q 'BEGIN CERT'"
	r1=$(grep -c 'SIGHUP) received' "$NG/logs/error.log")
	kill -TERM $spid; wait $spid 2>/dev/null
	kill -QUIT "$(cat "$NG/logs/nginx.pid")"
	"$REPO/tests/ca/ca.sh" stop "$d/ca" >/dev/null 2>&1
	printf '| %s | %d | %d | %d MiB | %d MiB | %d MiB | %d in %d s | %d |\n' "$strategy" "$n" \
		$(( (t_end - t_start) / 1000000 )) $((before / 1024)) $((during / 1024)) $((after / 1024)) \
		"$ADD" "$add_s" $((r1 - r0))
}

echo "nginx $($NGINX_BIN -v 2>&1 | sed 's/.*\///'), $(nproc) cores, certherd $(git -C "$REPO" rev-parse --short HEAD)"
echo
echo "| strategy | domains | reload ms | nginx RSS before | during | after | added one by one | reloads while adding |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
	for s in server-blocks sni-variable; do
		run_one "$s" "$n" || echo "| $s | $n | failed (see $W) | | | | | |"
	done
done
