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
# Then handshakes through nginx (after the reload, the daemon stopped):
# bench/hsbench, the load generator of bench/front.sh, for BENCH_HS_S
# seconds (10) with 4 handshakes in flight, full TLS 1.3, a random SNI
# among the N names per connection, every served certificate checked
# against its SNI: handshakes/s (client-bound on 2 cores: the generator
# saturates its own core), nginx's CPU per handshake (utime+stime of the
# master and workers from /proc over the window / handshakes), p99
# latency, mismatches and failures.
# BENCH_ADD (default 1000) sets ADD; BENCH_CONCURRENCY (200) is the
# daemon's acme.concurrency; BENCH_KEEP=1 keeps the work directory;
# BENCH_STRATEGIES (default "server-blocks sni-variable") picks them.
# BENCH_POPULATE=1: the N domains come from bench/populate (the store
# and live/ written directly, each name its own key and a certificate
# from a throwaway CA) instead of from Pebble: nginx reads the same kind
# of files, and at 10,000 Pebble's wedges (below) make issuing them take
# most of an hour here; the ADD domains are still issued by Pebble.
# PEBBLE_ALWAYS_VALID=1 (tests/ca/ca.sh) skips validation: issuance time
# is not measured here, and at 10,000 names validation through nginx is
# most of the run.
# Pebble 2.10 wedges for good now and then under thousands of orders
# (docs/pebble.md; at 2,000 and more, most runs): 60 s without a new
# certificate and `tests/ca/ca.sh wedged`, and the daemon stops, the CA
# restarts in place (certherd registers its account again at start) and
# the daemon starts again on the same store; names stuck behind orders of
# the old CA are made due with `certherd renew`. The restarts are counted
# under the table; issuance time is not a figure here.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ "${CERTHERD_NETNS:-}" = "" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/nginx.sh: run as root" >&2; exit 1; }
	exec "$REPO/tests/netns.sh" "$0" "$@"
fi
SIZES=${BENCH_SIZES:-2000 10000}
ADD=${BENCH_ADD:-1000}
BIN=$REPO/build/certherd
HSBENCH=$REPO/build/bench/hsbench
HS_S=${BENCH_HS_S:-10}
{ [ -x "$BIN" ] && [ -x "$HSBENCH" ]; } || { meson setup "$REPO/build" >/dev/null; meson compile -C "$REPO/build" >/dev/null; } || exit 1
TICK=$(getconf CLK_TCK)
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
cpu_ticks() { # utime+stime of the nginx master and its workers, in ticks
	local m p t=0 st
	m=$(cat "$NG/logs/nginx.pid" 2>/dev/null) || { echo 0; return; }
	for p in $m $(ps -o pid= --ppid "$m"); do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*") "}
		# shellcheck disable=SC2086
		set -- $st
		t=$((t + ${12} + ${13}))
	done
	echo $t
}
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; } # kv LINE KEY
workers() { ps -o pid= --ppid "$(cat "$NG/logs/nginx.pid")" -o cmd= | awk '/worker process/ {print $1}' | sort; }
wait_for() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $d ] || return 1; sleep 0.1; done; }

# issue_wait N SECONDS (in run_one: d, spid, ch): until N domains are
# valid, restarting a wedged CA in place (header); 1 when time is up
issue_wait() {
	local want=$1 limit=$2 valid=0 last=-1 t0=$SECONDS t_prog=$SECONDS
	until [ "$valid" = "$want" ]; do
		[ $((SECONDS - t0)) -gt "$limit" ] && { echo "$valid of $want valid after $limit s" >&2; return 1; }
		sleep 2
		valid=$($ch status --json | jq '.domains.valid // 0')
		[ "$valid" != "$last" ] && last=$valid t_prog=$SECONDS
		[ $((SECONDS - t_prog)) -gt 60 ] || continue
		t_prog=$SECONDS
		if "$REPO/tests/ca/ca.sh" wedged "$d/ca" 2>/dev/null; then
			WEDGES=$((WEDGES + 1))
			echo "$(basename "$d"): Pebble wedged at $valid/$want; CA and daemon restarted" >&2
			kill -TERM $spid; wait $spid 2>/dev/null
			"$REPO/tests/ca/ca.sh" stop "$d/ca" >/dev/null 2>&1
			"$REPO/tests/ca/ca.sh" start "$d/ca" >/dev/null || return 1
			set -a; . "$d/ca/ca.env"; set +a
			$BIN -c "$d/certherd.conf" serve >>"$d/serve.log" 2>&1 &
			spid=$!
			wait_for 30 test -S "$d/api.sock" || return 1
		else
			$ch domains ls --json | jq -r 'select(.state != "valid") | .name' |
				xargs -r -n 200 $ch renew >/dev/null
		fi
	done
}

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
    # nginx 1.22 (Debian 12) leaves TLS 1.3 out of its default protocols;
    # Debian's own nginx.conf sets this line, so does the operator here
    ssl_protocols TLSv1.2 TLSv1.3;
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
concurrency = ${BENCH_CONCURRENCY:-200}
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
	if [ "${BENCH_POPULATE:-0}" = 1 ]; then
		# pNNNNNN.bench.test, none due for renewal
		"$REPO/build/bench/populate" "$d/state" --domains "$n" --due 0 \
			--export "$d/live" >"$d/populate.log" || { echo "populate failed" >&2; return 1; }
		seq -f "p%06g.bench.test" 1 "$n" >"$d/names.txt"
	else
		seq -f "n%06g.bench.test" 1 "$n" >"$d/names.txt"
	fi
	$BIN -c "$d/certherd.conf" serve >"$d/serve.log" 2>&1 &
	local spid=$!
	wait_for 60 test -S "$d/api.sock" || { echo "serve does not start" >&2; return 1; }
	if [ "${BENCH_POPULATE:-0}" != 1 ]; then
		$ch domains add --file "$d/names.txt" >/dev/null
		issue_wait "$n" 3600 || { kill -TERM $spid; return 1; }
	fi
	# server-blocks: the reload that puts the last of them in the
	# include (within reload_interval, a minute); sni-variable reads the
	# files at each handshake
	[ "$strategy" = sni-variable ] ||
		wait_for 600 grep -q "nginx reloaded .*: $n domains in the include" "$d/serve.log" ||
		echo "$strategy N=$n: no reload with all $n domains in the include" >&2
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
	# handshakes through nginx, random SNI
	local c0 c1 hs line
	c0=$(cpu_ticks)
	line=$("$HSBENCH" 127.0.0.1:$TLS_PORT "$d/names.txt" --seconds "$HS_S" --concurrency 4 --seed "$n")
	c1=$(cpu_ticks)
	hs=$(kv "$line" handshakes)
	echo "$strategy N=$n: $line" >&2
	# ADD more, one by one, through the daemon
	local r0 r1 starts
	starts=$(grep -c 'nginx reloaded (1 since start)' "$d/serve.log")
	$BIN -c "$d/certherd.conf" serve >>"$d/serve.log" 2>&1 &
	spid=$!
	wait_for 30 test -S "$d/api.sock"
	# a daemon's first pass reloads nginx (what nginx loaded is unknown
	# to it): not one of the additions' reloads
	wait_for 600 bash -c "[ \$(grep -c 'nginx reloaded (1 since start)' $d/serve.log) -gt $starts ]"
	sleep 1
	r0=$(grep -c 'SIGHUP) received' "$NG/logs/error.log")
	t0=$SECONDS
	for i in $(seq 1 "$ADD"); do $ch domains add "a$i.bench.test" >/dev/null; done
	local add_s=$((SECONDS - t0))
	issue_wait $((n + ADD)) 1800
	# server-blocks: until a reload has all of them (at 10,000 blocks
	# nginx -t and the reload take minutes here); then until nginx serves
	# the last one
	[ "$strategy" = sni-variable ] ||
		wait_for 900 grep -q "nginx reloaded .*: $((n + ADD)) domains in the include" "$d/serve.log" ||
		echo "$strategy N=$n: no reload with all $((n + ADD)) domains in 900 s" >&2
	wait_for 120 bash -c "openssl s_client -connect 127.0.0.1:$TLS_PORT -servername a$ADD.bench.test </dev/null 2>/dev/null | grep -q 'BEGIN CERT'" ||
		echo "$strategy N=$n: a$ADD.bench.test not served" >&2
	r1=$(grep -c 'SIGHUP) received' "$NG/logs/error.log")
	kill -TERM $spid; wait $spid 2>/dev/null
	# graceful: with 10,000 blocks the master takes a while to go, and
	# the next run's nginx needs its ports
	local master
	master=$(cat "$NG/logs/nginx.pid")
	kill -QUIT "$master"
	wait_for 180 bash -c "! kill -0 $master 2>/dev/null" || kill -KILL "$master"
	"$REPO/tests/ca/ca.sh" stop "$d/ca" >/dev/null 2>&1
	printf '| %s | %d | %d | %d MiB | %d MiB | %d MiB | %.0f | %.0f | %s | %s / %s | %d in %d s | %d |\n' "$strategy" "$n" \
		$(( (t_end - t_start) / 1000000 )) $((before / 1024)) $((during / 1024)) $((after / 1024)) \
		"$(kv "$line" rate)" "$(awk -v a="$c0" -v b="$c1" -v t="$TICK" -v h="${hs:-0}" 'BEGIN { print h ? (b - a) / t * 1e6 / h : 0 }')" \
		"$(kv "$line" p99_ms)" "$(kv "$line" mismatches)" "$(kv "$line" failures)" \
		"$ADD" "$add_s" $((r1 - r0))
}

echo "nginx $($NGINX_BIN -v 2>&1 | sed 's/.*\///'), $(nproc) cores, certherd ${BENCH_COMMIT:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| strategy | domains | reload ms | nginx RSS before | during | after | handshakes/s | nginx CPU us/handshake | p99 ms | mismatches / failures | added one by one | reloads while adding |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
WEDGES=0
for n in $SIZES; do
	for s in ${BENCH_STRATEGIES:-server-blocks sni-variable}; do
		run_one "$s" "$n" ||
			echo "| $s | $n | failed (see $W) | | | | | | | | | |"
	done
done
echo
echo "Pebble wedged $WEDGES times (restarted in place); PEBBLE_ALWAYS_VALID=${PEBBLE_ALWAYS_VALID:-0} BENCH_POPULATE=${BENCH_POPULATE:-0}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
