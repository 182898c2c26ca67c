#!/bin/bash
# Front mode handshake benchmark (issue 4, "Measured"): certherd's front
# next to nginx, HAProxy and hitch terminating TLS for the same N domains
# with the same certificates, one after the other in one run, plus
# OpenSSL's own floor and the crypto ceiling.
#
#   sudo bench/front.sh             N = 1,000, 10,000 and 100,000; writes its
#                                   section of bench/RESULTS.md
#   sudo bench/front.sh --quick     N = 1,000, 5 s windows; prints only
#   --no-write                      print only
#
# Knobs (environment): BENCH_SIZES ("1000 10000 100000"), BENCH_SECONDS
# (measured window per server, 20), BENCH_WARM (at most this many seconds
# of warm-up before the window, 60), BENCH_CONC (handshakes in flight, 4), BENCH_SERVERS (which
# rows: "front1 front1-10k front nginx nginx-sni haproxy hitch minimal"),
# BENCH_BIG_SERVERS (the rows run at N > 10,000: "front1 front1-10k front
# haproxy minimal"; nginx and hitch
# load one SSL_CTX per domain, several GiB and minutes at 100,000),
# BENCH_KEEP=1 (keep the work directory and every log), BENCH_RELAY=0
# (skip the relay throughput section), BENCH_RELAY_RUNS (downloads per
# server, 3), BENCH_RELAY_SERVERS ("front1 nginx haproxy").
#
# The certificates. bench/populate writes N domains into a certherd store
# (own P-256 key each, signed by a throwaway CA; nothing due, so the daemon
# orders nothing during the run) and, with --export, the same certificates
# as files: NAME/fullchain.pem + privkey.pem (nginx), NAME/combined.pem
# (HAProxy's crt-list, hitch's pem-file). Names pNNNNNN.bench.test.
#
# The servers (all on 127.0.0.1:18443, TLS 1.2 and 1.3, their own defaults
# otherwise: each sends its usual session tickets, none is resumed):
#   front1     certherd serve, [front] workers = 1, cache_size default
#              (100,000: every name of the run fits; the warm-up loads
#              them all, N/150 s at most), upstream the sink below with
#              PROXY v2. The front
#              connects its upstream at a client's first bytes: these
#              handshake-only clients never reach the sink (as with
#              nginx's `return 200`); HAProxy and hitch connect at accept
#              (the sink's own CPU is shown apart)
#   front1-10k the same with cache_size = 10,000, only at N > 10,000:
#              with uniformly random names most handshakes load their
#              certificate (the miss path), and memory beyond the cache
#              is what a name costs when it is not in memory
#   front      workers = 0 (one per core), default cache
#   nginx      one server block per domain (ssl_certificate per block),
#              worker_processes 1, `return 200` (no upstream)
#   nginx-sni  one server block with $ssl_server_name in the certificate
#              paths (read from disk at every handshake), worker_processes 1
#   haproxy    `bind ... ssl crt-list` (one line per domain), nbthread 1,
#              mode tcp to the sink with send-proxy-v2: the same job as the
#              front
#   hitch      one pem-file per domain, workers = 1, write-proxy-v2 to the
#              sink
#   minimal    the socket floor: `hsbench --serve`, a single-threaded epoll
#              TLS server with ONE certificate (a wildcard *.bench.test made
#              here with openssl, leaf + its own throwaway CA, P-256 like the
#              others) and no SNI logic, reading ahead (one read per
#              flight) as the front does: accept, handshake, read until
#              close_notify or EOF, close_notify, close; no upstream. It is
#              what a server cannot go below with libssl and kernel sockets,
#              measured exactly like the others (its KiB per domain is left
#              empty: it holds one certificate whatever N is)
# The sink: an nginx on 127.0.0.1:18080 with `listen ... proxy_protocol`
# (reads the PROXY header, closes at EOF); its CPU is not counted in the
# server's, and is shown on its own.
#
# The load: build-bench/bench/hsbench (bench/hsbench.c), one thread,
# BENCH_CONC connections in flight, each a full TLS 1.3 handshake with a
# random SNI among the N names, the served certificate checked to name
# the SNI (every mismatch is counted and shown), close_notify, then wait
# for the server to close. On 2 cores the generator saturates its own core
# first, so handshakes/s are client-bound: the comparison is
#   server CPU us per handshake = (utime+stime of the server's processes
#   from /proc/PID/stat at the end of the window - at its start) /
#   handshakes completed in the window
# and p99 latency (connect() to the client's Finished) under the same
# load.
# Per server and N: start-up = from launching the server until the first
# handshake with a matching certificate (hsbench --first, polling every
# 2 ms); RSS and PSS = sums over the server's processes (master and
# workers) after the window; KiB per domain = (PSS at N - PSS of the same
# server with one domain, measured in the same run) / N.
# Floors: hsbench --floor (client and server SSL joined by memory BIOs in
# one process, the server's calls timed with its thread CPU clock, the
# wildcard certificate, one ticket): floor_hs_us counts only the server's
# SSL_do_handshake calls, floor_conn_us adds its SSL_new and SSL_free (what
# every server pays per connection), floor_percert_conn_us is the latter
# with the certificate installed per connection in the ClientHello
# callback (SSL_use_cert_and_key, as the front does on a cache hit); the
# "minimal" row above is the floor with sockets. The floor is measured
# twice: on an idle machine, and with the other core running openssl
# speed, as busy as the load generator keeps it during the windows. The same in-memory floor with GnuTLS and wolfSSL
# (bench/tlsfloor_gnutls.c, bench/tlsfloor_wolfssl.c: same certificate,
# TLS 1.3, X25519, one ticket; built when libgnutls28-dev / libwolfssl-dev
# are installed, bench/install-peers.sh; a note otherwise), with their
# probes of what front mode needs (pause and resume at the ClientHello,
# certificate chosen per connection from the SNI, ALPN).
# Ceiling: `openssl speed`: one ECDSA P-256 signature + two X25519
# operations (key generation and derivation, both one scalar
# multiplication).
#
# Relay throughput (issue 4: "a 100 MiB response against nginx
# terminating TLS itself"): after the tables, curl --http1.1 downloads a
# 100 MiB file of random bytes (made here) from https://p000001.bench.test
# (--resolve, chain verified against populate's throwaway CA) through the
# front with the one-domain store (the sink nginx serves the file behind
# it, PROXY v2, its config unchanged but for the file's location), through
# HAProxy (mode tcp to the same sink) and from nginx terminating TLS
# itself (one server block, same certificate, the file from its own
# root); BENCH_RELAY_RUNS times each. Per server: MiB/s (median wall time
# of the downloads), CPU ms per MiB of the server, of the sink (front and
# HAProxy) and of curl, and every download's size and SHA-256 checked
# against the file's (a wrong one is counted and left out of the figures).
#
# Needs root (network namespace), a release build (made here if missing:
# build-bench/), scripts/install-deps.sh, bench/install-peers.sh (nginx,
# haproxy, hitch). Everything runs in a private network namespace on
# loopback (tests/netns.sh) with a Pebble from tests/ca/ca.sh (the daemon
# registers its account at start; no order is made).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0 WRITE=1
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	--no-write) WRITE=0 ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--quick] [--no-write]" >&2; exit 2 ;;
	esac
done
[ $QUICK = 1 ] && WRITE=0
BUILD=$REPO/build-bench
CERTHERD=$BUILD/certherd
POPULATE=$BUILD/bench/populate
HSBENCH=$BUILD/bench/hsbench
die() { echo "bench/front.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- outside
if [ -z "${CERTHERD_NETNS:-}" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root (network namespace)"
	for t in nginx haproxy hitch openssl jq; do
		command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
			die "$t missing: run bench/install-peers.sh"
	done
	if [ ! -d "$BUILD" ]; then
		meson setup "$BUILD" "$REPO" -Dbuildtype=release >/dev/null ||
			die "meson setup build-bench failed"
	fi
	ninja -C "$BUILD" >/dev/null || die "build failed: ninja -C build-bench"
	# the other libraries' floors are built when their dev packages were
	# there at configure time; installed since: configure again
	for l in gnutls wolfssl; do
		if pkg-config --exists "$l" && [ ! -x "$BUILD/bench/tlsfloor_$l" ]; then
			meson setup --reconfigure "$BUILD" "$REPO" >/dev/null &&
				ninja -C "$BUILD" >/dev/null || die "build failed: ninja -C build-bench"
		fi
	done
	export BENCH_LOADAVG
	BENCH_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
	exec "$REPO/tests/netns.sh" "$0" "$@"
fi

# ----------------------------------------------------------------- inside
export PATH=$PATH:/usr/sbin
if [ $QUICK = 1 ]; then
	SIZES=${BENCH_SIZES:-1000} SECS=${BENCH_SECONDS:-5} WARM=${BENCH_WARM:-10}
else
	SIZES=${BENCH_SIZES:-1000 10000 100000} SECS=${BENCH_SECONDS:-20} WARM=${BENCH_WARM:-60}
fi
CONC=${BENCH_CONC:-4}
SERVERS=${BENCH_SERVERS:-front1 front1-10k front nginx nginx-sni haproxy hitch minimal}
BIG_SERVERS=${BENCH_BIG_SERVERS:-front1 front1-10k front haproxy minimal}
TLS=127.0.0.1:18443
SINK_PORT=18080
TICK=$(getconf CLK_TCK)
W=$(mktemp -d /tmp/certherd-bench-front.XXXXXX)
chmod 755 "$W"
OUT=$W/report.md
WILD=$W/wild # the one certificate of the "minimal" row and of the floors
WWW=$W/www   # the 100 MiB file of the relay throughput section
SPIDS="" CA_DIR="" SINK_NG=$W/sink
T_BEGIN=$SECONDS

cleanup() {
	stop_server
	[ -f "$SINK_NG/nginx.pid" ] && kill -QUIT "$(cat "$SINK_NG/nginx.pid")" 2>/dev/null
	[ -n "$CA_DIR" ] && "$REPO/tests/ca/ca.sh" stop "$CA_DIR" >/dev/null 2>&1
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calc() { awk "BEGIN { printf \"%s\", ($*) }" </dev/null; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
say() { printf '%s\n' "$*" | tee -a "$OUT"; }
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; } # kv LINE KEY

# The server's processes: the pid started and its children (workers).
procs() { [ -n "$SPIDS" ] && { echo "$SPIDS"; ps -o pid= --ppid "$SPIDS" 2>/dev/null; } | awk 'NF {print $1}'; }
cpu_of() { # utime+stime in ticks, summed over the pids given
	local p t=0 st
	for p in "$@"; do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*") "}
		# shellcheck disable=SC2086
		set -- $st
		t=$((t + ${12} + ${13}))
	done
	echo $t
}
mem_of() { # "RSS_KiB PSS_KiB" summed over the pids given
	local p r=0 s=0 a b
	for p in "$@"; do
		a=$(awk '$1 == "Rss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
		b=$(awk '$1 == "Pss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		r=$((r + ${a:-0})) s=$((s + ${b:-0}))
	done
	echo "$r $s"
}

stop_server() {
	[ -n "$SPIDS" ] || return 0
	kill -TERM "$SPIDS" 2>/dev/null
	local i
	for i in $(seq 1 300); do kill -0 "$SPIDS" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SPIDS" 2>/dev/null
	wait "$SPIDS" 2>/dev/null
	SPIDS=""
}

# ------------------------------------------------------------- the servers
# start_server KIND N DIR: launch in the foreground of a background job
# (SPIDS = its pid); LAUNCH_NS = when.
start_server() {
	local kind=$1 n=$2 d=$3 certs=$3/certs
	mkdir -p "$d/$kind"
	case $kind in
	front1 | front | front1-10k)
		cp -a "$d/state.orig" "$d/$kind/state"
		cat >"$d/$kind/certherd.conf" <<-EOF
			[acme]
			directory = $ACME_DIRECTORY
			ca_bundle = $CA_BUNDLE
			email = ops@example.com
			[store]
			state_dir = $d/$kind/state
			write_live = false
			[http]
			listen = 127.0.0.1:18402
			[api]
			socket = $d/$kind/api.sock
			[preflight]
			enabled = false
			[front]
			enabled = true
			listen = $TLS
			upstream = 127.0.0.1:$SINK_PORT
			workers = $([ "$kind" = front ] && echo 0 || echo 1)
			$([ "$kind" = front1-10k ] && echo "cache_size = 10000")
		EOF
		LAUNCH_NS=$(date +%s%N)
		"$CERTHERD" -c "$d/$kind/certherd.conf" serve >"$d/$kind/log" 2>&1 &
		;;
	nginx | nginx-sni)
		local ng=$d/$kind
		mkdir -p "$ng/logs" "$ng/tmp"
		{
			# workers as root: with \$ssl_server_name they read the 0600 keys
			# at every handshake (certherd's nginx mode gives the keys to
			# the worker user instead, nginx.key_owner)
			echo "user root; worker_processes 1; daemon off; master_process on;"
			echo "error_log $ng/logs/error.log warn; pid $ng/nginx.pid;"
			echo "worker_rlimit_nofile 65536;"
			echo "events { worker_connections 16384; }"
			echo "http { access_log off; client_body_temp_path $ng/tmp/b; proxy_temp_path $ng/tmp/p;"
			echo "  fastcgi_temp_path $ng/tmp/f; uwsgi_temp_path $ng/tmp/u; scgi_temp_path $ng/tmp/s;"
			echo "  server_names_hash_max_size 262144; server_names_hash_bucket_size 128;"
			echo "  ssl_protocols TLSv1.2 TLSv1.3;"
			if [ "$kind" = nginx ]; then
				awk -v c="$certs" -v l="$TLS" '{
					printf "  server { listen %s ssl; server_name %s;\n", l, $1
					printf "    ssl_certificate %s/%s/fullchain.pem; ssl_certificate_key %s/%s/privkey.pem;\n", c, $1, c, $1
					printf "    location / { return 200 \"app\\n\"; }\n"
					printf "    location = /big.bin { root %s; } }\n", w }' w="$WWW" "$d/names.txt"
			else
				echo "  server { listen $TLS ssl default_server;"
				echo "    ssl_certificate $certs/\$ssl_server_name/fullchain.pem;"
				echo "    ssl_certificate_key $certs/\$ssl_server_name/privkey.pem;"
				echo "    location / { return 200 \"app\\n\"; }"
				echo "    location = /big.bin { root $WWW; } }"
			fi
			echo "}"
		} >"$ng/nginx.conf"
		LAUNCH_NS=$(date +%s%N)
		nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log" >"$ng/log" 2>&1 &
		;;
	haproxy)
		sed "s|^|$certs/|; s|\$|/combined.pem|" "$d/names.txt" >"$d/$kind/crt-list"
		cat >"$d/$kind/haproxy.cfg" <<-EOF
			global
			    nbthread 1
			    maxconn 8000
			    ssl-default-bind-options ssl-min-ver TLSv1.2
			defaults
			    mode tcp
			    timeout connect 5s
			    timeout client 30s
			    timeout server 30s
			frontend fe
			    bind $TLS ssl crt-list $d/$kind/crt-list
			    default_backend be
			backend be
			    server sink 127.0.0.1:$SINK_PORT send-proxy-v2
		EOF
		LAUNCH_NS=$(date +%s%N)
		haproxy -db -f "$d/$kind/haproxy.cfg" >"$d/$kind/log" 2>&1 &
		;;
	hitch)
		{
			echo "frontend = \"[127.0.0.1]:18443\""
			echo "backend = \"[127.0.0.1]:$SINK_PORT\""
			echo "workers = 1"
			echo "daemon = off"
			echo "write-proxy-v2 = on"
			echo "tls-protos = TLSv1.2 TLSv1.3"
			echo "sni-nomatch-abort = on"
			echo "user = \"nobody\""
			sed 's|.*|pem-file = "'"$certs"'/&/combined.pem"|' "$d/names.txt"
		} >"$d/$kind/hitch.conf"
		LAUNCH_NS=$(date +%s%N)
		hitch --config="$d/$kind/hitch.conf" >"$d/$kind/log" 2>&1 &
		;;
	minimal)
		LAUNCH_NS=$(date +%s%N)
		"$HSBENCH" --serve "$TLS" "$WILD/fullchain.pem" "$WILD/privkey.pem" >"$d/$kind/log" 2>&1 &
		;;
	esac
	SPIDS=$!
}

# measure KIND N DIR: one table row's figures into R_* (empty on failure)
measure() {
	local kind=$1 n=$2 d=$3 first line c0 c1 mem secs=$SECS warm=$WARM
	R_FIRST="" R_LINE="" R_CPU="" R_RSS="" R_PSS="" R_SINK="" R_WARM="" R_WLINE=""
	[ "$n" = 1 ] && secs=2 warm=1
	# with the default cache every name must be loaded before the
	# window: at ~150 loads/s on a busy machine, N/150 s
	case $kind in front1 | front) [ $((n / 150)) -gt "$warm" ] && warm=$((n / 150)) ;; esac
	start_server "$kind" "$n" "$d"
	# the first handshake, given up when the server exits first
	"$HSBENCH" "$TLS" "$d/names.txt" --first 600 --since "$LAUNCH_NS" >"$d/$kind/first" &
	local fpid=$!
	while kill -0 $fpid 2>/dev/null; do
		kill -0 "$SPIDS" 2>/dev/null || { kill $fpid 2>/dev/null; break; }
		sleep 0.05
	done
	wait $fpid 2>/dev/null
	first=$(cat "$d/$kind/first")
	if [ -z "$first" ]; then
		log "$kind at N=$n: no handshake within 600 s or the server exited (see $d/$kind)"
		stop_server
		return 1
	fi
	R_FIRST=$(kv "$first" first_ms)
	# warm-up: every name once, in order (at most $warm s), so that the
	# window measures the steady state; its own cost is the price of a
	# name's first handshake (a certificate load for certherd)
	local pids sink_pids s0 s1 w0 w1 wline
	pids=$(procs)
	# shellcheck disable=SC2086
	w0=$(cpu_of $pids)
	wline=$("$HSBENCH" "$TLS" "$d/names.txt" --each --seconds "$warm" --concurrency "$CONC")
	# shellcheck disable=SC2086
	w1=$(cpu_of $pids)
	R_WARM=$(calc "($w1 - $w0) / $TICK * 1e6 / ($(kv "$wline" handshakes) + 0.001)")
	R_WLINE=$wline
	sink_pids=$(cat "$SINK_NG/nginx.pid"; ps -o pid= --ppid "$(cat "$SINK_NG/nginx.pid")")
	# shellcheck disable=SC2086
	c0=$(cpu_of $pids) s0=$(cpu_of $sink_pids)
	line=$("$HSBENCH" "$TLS" "$d/names.txt" --seconds "$secs" --concurrency "$CONC" --seed "$n")
	# shellcheck disable=SC2086
	c1=$(cpu_of $pids) s1=$(cpu_of $sink_pids)
	# shellcheck disable=SC2046 # one pid per word
	mem=$(mem_of $(procs))
	R_LINE=$line
	local hs
	hs=$(kv "$line" handshakes)
	if [ "${hs:-0}" -gt 0 ]; then
		R_CPU=$(calc "($c1 - $c0) / $TICK * 1e6 / $hs")
		R_SINK=$(calc "($s1 - $s0) / $TICK * 1e6 / $hs")
	fi
	R_RSS=${mem% *} R_PSS=${mem#* }
	log "$kind N=$n: first ${R_FIRST} ms; $line; server cpu ${R_CPU} us/hs; rss ${R_RSS} KiB pss ${R_PSS} KiB"
	stop_server
}

# ------------------------------------------------------------------- run
CA_DIR=$W/ca
env PEBBLE_NONCEREJECT=0 "$REPO/tests/ca/ca.sh" start "$CA_DIR" >/dev/null || die "CA does not start"
set -a
# shellcheck disable=SC1091
. "$CA_DIR/ca.env"
set +a
sysctl -qw net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# the sink behind front, HAProxy and hitch
mkdir -p "$SINK_NG/tmp"
cat >"$SINK_NG/nginx.conf" <<EOF
worker_processes 1; error_log $SINK_NG/error.log warn; pid $SINK_NG/nginx.pid;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $SINK_NG/tmp/b; proxy_temp_path $SINK_NG/tmp/p;
  fastcgi_temp_path $SINK_NG/tmp/f; uwsgi_temp_path $SINK_NG/tmp/u; scgi_temp_path $SINK_NG/tmp/s;
  server { listen 127.0.0.1:$SINK_PORT proxy_protocol; location / { return 200 "app\n"; }
    location = /big.bin { root $WWW; } } }
EOF
# the 100 MiB response of the relay section (random: nothing compresses)
mkdir -p "$WWW"
head -c $((100 * 1048576)) /dev/urandom >"$WWW/big.bin" || die "cannot write $WWW/big.bin"
chmod 644 "$WWW/big.bin"
BIG_BYTES=$(stat -c %s "$WWW/big.bin") BIG_SHA=$(sha256sum <"$WWW/big.bin" | cut -d' ' -f1)
nginx -p "$SINK_NG" -c "$SINK_NG/nginx.conf" -e "$SINK_NG/error.log" || die "the sink nginx does not start"

: >"$OUT"
say "## certherd front mode handshake benchmark (bench/front.sh)"
say ""
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the run: ${BENCH_LOADAVG:-?}"
say "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%d GiB", $2/1048576 + 0.5}' /proc/meminfo) RAM, Linux $(uname -r)"
say "- certherd $(git -C "$REPO" rev-parse --short HEAD) (build-bench, buildtype=release); $(openssl version | cut -d' ' -f1-2)"
say "- peers: nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p'), hitch $(hitch --version 2>&1 | awk '{print $2; exit}')"
say "- load: hsbench, $CONC handshakes in flight on one thread, TLS 1.3, X25519, random SNI among the N names, every served certificate checked against its SNI; a warm-up (each name once in order, at most ${WARM} s) then a ${SECS} s window per server; ECDSA P-256 certificates (leaf + throwaway CA)"
say "- command: \`sudo bench/front.sh$([ $QUICK = 1 ] && echo ' --quick')\`$([ -n "${BENCH_SIZES:-}" ] && echo " BENCH_SIZES='$SIZES'")"

# make_wild DIR: a P-256 certificate for *.bench.test (subjectAltName)
# signed by a throwaway CA made here, as DIR/fullchain.pem (leaf + CA, like
# populate's chains) and DIR/privkey.pem; hsbench's X509_check_host accepts
# it for every pNNNNNN.bench.test
make_wild() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 30 -subj "/CN=certherd bench wildcard CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/privkey.pem" -out "$d/leaf.csr" -subj "/CN=*.bench.test" 2>/dev/null &&
		printf '%s\n' "subjectAltName=DNS:*.bench.test" "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/ext" &&
		openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
			-days 30 -extfile "$d/ext" -out "$d/leaf.pem" 2>/dev/null &&
		cat "$d/leaf.pem" "$d/ca.pem" >"$d/fullchain.pem"
}
make_wild "$WILD" || die "cannot make the wildcard certificate"

# the floors and the ceiling
FLOOR=$("$HSBENCH" --floor "$WILD/fullchain.pem" "$WILD/privkey.pem" --seconds 5)
FLOOR_US=$(kv "$FLOOR" floor_hs_us) FLOOR_CONN_US=$(kv "$FLOOR" floor_conn_us)
FLOOR_PERCERT_US=$(kv "$FLOOR" floor_percert_conn_us)
# The same with the other core busy, as it is during every window (the
# load generator saturates it): on this kind of machine the two cores
# share parts of one physical core or its caches, and the floor rises.
# The busy core runs openssl speed (signatures and key exchanges, like
# the load generator's work).
openssl speed -seconds 8 ecdsap256 ecdhx25519 >/dev/null 2>&1 &
BUSY_PID=$!
sleep 1
FLOOR_BUSY=$("$HSBENCH" --floor "$WILD/fullchain.pem" "$WILD/privkey.pem" --seconds 5)
kill $BUSY_PID 2>/dev/null
wait $BUSY_PID 2>/dev/null
FLOOR_BUSY_CONN_US=$(kv "$FLOOR_BUSY" floor_conn_us)
SPEED=$(openssl speed -seconds 3 ecdsap256 ecdhx25519 2>/dev/null)
SIGN_S=$(awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1)}' <<<"$SPEED")
X_S=$(awk '/253 bits ecdh \(X25519\)/ {print $NF}' <<<"$SPEED")
CEIL_US=$(calc "1e6 / $SIGN_S + 2 * 1e6 / $X_S")
# the other libraries' floors, right after OpenSSL's
OTHER_FLOORS=()
for l in gnutls wolfssl; do
	case $l in gnutls) pkg=libgnutls28-dev lname=GnuTLS ;; wolfssl) pkg=libwolfssl-dev lname=wolfSSL ;; esac
	if [ ! -x "$BUILD/bench/tlsfloor_$l" ]; then
		OTHER_FLOORS+=("$lname: not measured ($pkg not installed: bench/install-peers.sh)")
		continue
	fi
	if ! fl=$("$BUILD/bench/tlsfloor_$l" "$WILD/fullchain.pem" "$WILD/privkey.pem" --seconds 5); then
		OTHER_FLOORS+=("$lname: its floor program failed")
		continue
	fi
	OTHER_FLOORS+=("$lname $(kv "$fl" lib | sed 's/^[a-z]*-//'): $(printf '%.0f' "$(kv "$fl" floor_hs_us)") us per handshake, $(printf '%.0f' "$(kv "$fl" floor_conn_us)") us per connection ($(calc "$(kv "$fl" floor_conn_us) / $FLOOR_CONN_US" | xargs printf '%.2f')x OpenSSL's; group $(kv "$fl" group), $(kv "$fl" tickets) ticket); pause at the ClientHello and resume: $(kv "$fl" pause), certificate by SNI per connection: $(kv "$fl" sni), ALPN: $(kv "$fl" alpn)")
done
say "- libssl's in-memory floor (hsbench --floor, server side only, one ticket): $(printf '%.0f' "$FLOOR_US") us per handshake (SSL_do_handshake), $(printf '%.0f' "$FLOOR_CONN_US") us per connection (SSL_new + handshake + SSL_free), $(printf '%.0f' "$FLOOR_PERCERT_US") us per connection with the certificate installed in the ClientHello callback as the front does (SSL_use_cert_and_key); $(printf '%.0f' "$FLOOR_BUSY_CONN_US") us per connection with the other core busy as in the windows ($(calc "$FLOOR_BUSY_CONN_US / $FLOOR_CONN_US" | xargs printf '%.2f')x idle); with sockets: the \"libssl minimal server\" rows; crypto ceiling (openssl speed: P-256 sign $(printf '%.0f' "$SIGN_S")/s, X25519 $(printf '%.0f' "$X_S")/s): $(printf '%.0f' "$CEIL_US") us"
for f in "${OTHER_FLOORS[@]}"; do say "- in-memory floor of $f"; done
say ""

# one-domain baselines (for KiB per domain), and the account registered
# once so that no start-up below includes it
declare -A BASE
mkdir -p "$W/n1"
"$POPULATE" "$W/n1/state.orig" --domains 1 --due 0 --export "$W/n1/certs" >/dev/null || die "populate failed"
echo p000001.bench.test >"$W/n1/names.txt"
# register_account DIR: one start on DIR/state.orig itself, so that the ACME
# account is in the store and no measured start-up includes registering it
register_account() {
	start_server front1 1 "$1"
	"$HSBENCH" "$TLS" "$1/names.txt" --first 60 >/dev/null || die "certherd front does not serve (see $1/front1/log)"
	stop_server
	rm -rf "$1/state.orig" && mv "$1/front1/state" "$1/state.orig" && rm -rf "$1/front1"
}
register_account "$W/n1"
for kind in $SERVERS; do
	[ "$kind" = minimal ] && continue # one certificate at every N
	[ "$kind" = front1-10k ] && { BASE[$kind]=${BASE[front1]:-}; continue; } # the same at N = 1
	measure "$kind" 1 "$W/n1" && BASE[$kind]=$R_PSS
done

name_of() {
	case $1 in
	front1) echo "certherd front, 1 worker" ;;
	front1-10k) echo "certherd front, 1 worker, cache_size = 10,000 (most names not in memory)" ;;
	front) echo "certherd front, $(nproc) workers" ;;
	nginx) echo "nginx, server block per domain" ;;
	nginx-sni) echo "nginx, \$ssl_server_name paths" ;;
	haproxy) echo "HAProxy, crt-list" ;;
	hitch) echo "hitch, pem-file per domain" ;;
	minimal) echo "libssl minimal server, 1 certificate, sockets" ;;
	esac
}

for n in $SIZES; do
	d=$W/n$n
	mkdir -p "$d"
	log "populating $n domains"
	pop=$("$POPULATE" "$d/state.orig" --domains "$n" --due 0 --export "$d/certs") || die "populate failed"
	seq -f "p%06g.bench.test" 1 "$n" >"$d/names.txt"
	register_account "$d"
	log "$pop"
	say "### N = $n domains"
	say ""
	say "| server | CPU us/handshake | x certherd (1 worker) | handshakes in ${SECS} s | p99 ms | start-up to first handshake ms | RSS MiB | PSS MiB | KiB per domain | mismatches / failures |"
	say "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	ref="" minref=""
	notes=()
	for kind in $SERVERS; do
		# up to 10,000 names it is the front1 row again
		[ "$kind" = front1-10k ] && [ "$n" -le 10000 ] && continue
		if [ "$n" -gt 10000 ] && ! grep -qw "$kind" <<<"$BIG_SERVERS"; then
			notes+=("$(name_of "$kind"): not run at N=$n (BENCH_BIG_SERVERS)")
			continue
		fi
		if ! measure "$kind" "$n" "$d" || [ -z "$R_CPU" ]; then
			say "| $(name_of "$kind") | failed (see the log) | | | | | | | | |"
			continue
		fi
		[ "$kind" = front1 ] && ref=$R_CPU
		[ "$kind" = minimal ] && minref=$R_CPU
		ratio=""
		[ -n "$ref" ] && ratio=$(calc "$R_CPU / $ref" | xargs printf '%.2fx')
		kib=""
		[ -n "${BASE[$kind]:-}" ] && kib=$(calc "($R_PSS - ${BASE[$kind]}) / $n" | xargs printf '%.1f')
		say "| $(name_of "$kind") | $(printf '%.0f' "$R_CPU") | $ratio | $(kv "$R_LINE" handshakes) | $(kv "$R_LINE" p99_ms) | $R_FIRST | $(calc "$R_RSS / 1024" | xargs printf '%.1f') | $(calc "$R_PSS / 1024" | xargs printf '%.1f') | $kib | $(kv "$R_LINE" mismatches) / $(kv "$R_LINE" failures) |"
		notes+=("$(name_of "$kind"): warm-up $(kv "$R_WLINE" handshakes) names of $n in $(kv "$R_WLINE" seconds) s at $(printf '%.0f' "$R_WARM") us per handshake; client CPU $(kv "$R_LINE" client_cpu_s) s of ${SECS} s, p50 $(kv "$R_LINE" p50_ms) ms, max $(kv "$R_LINE" max_ms) ms$(case $kind in front*|haproxy|hitch) echo "; the sink behind it: $(printf '%.0f' "$R_SINK") us per handshake";; esac)")
	done
	[ -n "$ref" ] && [ -n "$minref" ] &&
		notes+=("certherd front (1 worker) / libssl minimal server (the socket floor): $(calc "$ref / $minref" | xargs printf '%.2f')x; / libssl's in-memory floor per connection: $(calc "$ref / $FLOOR_CONN_US" | xargs printf '%.2f')x, the same with the other core busy: $(calc "$ref / $FLOOR_BUSY_CONN_US" | xargs printf '%.2f')x; the minimal server / the in-memory floor: $(calc "$minref / $FLOOR_CONN_US" | xargs printf '%.2f')x")
	say ""
	for note in "${notes[@]}"; do say "- $note"; done
	say ""
	rm -rf "$d"
done
# ------------------------------------------------------ relay throughput
relay_name() {
	case $1 in
	front1) echo "certherd front, 1 worker, + the sink nginx" ;;
	front) echo "certherd front, $(nproc) workers, + the sink nginx" ;;
	nginx) echo "nginx terminating TLS itself (worker_processes 1)" ;;
	haproxy) echo "HAProxy, mode tcp, + the sink nginx" ;;
	hitch) echo "hitch, + the sink nginx" ;;
	*) name_of "$1" ;;
	esac
}

# relay_run KIND: BENCH_RELAY_RUNS downloads of /big.bin through KIND
# serving p000001.bench.test (the one-domain store and certificate of the
# baselines); one table row
relay_run() {
	local kind=$1 i c0 c1 s0 s1 out tm sink_pids pids walls="" cpu=0 scpu=0 ccpu=0 ok=0 bad=0
	start_server "$kind" 1 "$W/n1"
	if ! "$HSBENCH" "$TLS" "$W/n1/names.txt" --first 60 >/dev/null; then
		say "| $(relay_name "$kind") | failed (no handshake, see the log) | | | | | | |"
		stop_server
		return
	fi
	pids=$(procs)
	sink_pids=$(cat "$SINK_NG/nginx.pid"; ps -o pid= --ppid "$(cat "$SINK_NG/nginx.pid")")
	for i in $(seq 1 "$RELAY_RUNS"); do
		rm -f "$W/dl.bin"
		# shellcheck disable=SC2086
		c0=$(cpu_of $pids) s0=$(cpu_of $sink_pids)
		tm=$( { TIMEFORMAT='%U %S'; time curl -sS --http1.1 --max-time 300 \
			--cacert "$W/n1/certs/ca.pem" --resolve "p000001.bench.test:${TLS##*:}:127.0.0.1" \
			-o "$W/dl.bin" -w '%{size_download} %{time_total}\n' \
			"https://p000001.bench.test:${TLS##*:}/big.bin" >"$W/curl.out" 2>"$W/curl.err"; } 2>&1)
		# shellcheck disable=SC2086
		c1=$(cpu_of $pids) s1=$(cpu_of $sink_pids)
		out=$(cat "$W/curl.out")
		# the bytes: size and SHA-256 of what arrived
		if [ "$(sha256sum <"$W/dl.bin" 2>/dev/null | cut -d' ' -f1)" = "$BIG_SHA" ] && [ "${out% *}" = "$BIG_BYTES" ]; then
			ok=$((ok + 1))
			walls="$walls ${out#* }"
			cpu=$((cpu + c1 - c0)) scpu=$((scpu + s1 - s0))
			ccpu=$(calc "$ccpu + ${tm% *} + ${tm#* }")
		else
			bad=$((bad + 1))
			log "$kind: download $i wrong: $out $(head -c 300 "$W/curl.err")"
		fi
	done
	stop_server
	rm -f "$W/dl.bin"
	if [ $ok = 0 ]; then
		say "| $(relay_name "$kind") | no correct download of $RELAY_RUNS | | | | | | $ok / $bad |"
		return
	fi
	local mib=$((BIG_BYTES / 1048576 * ok)) med
	med=$(tr ' ' '\n' <<<"$walls" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	local srv_ms up_ms=""
	srv_ms=$(calc "$cpu / $TICK * 1000 / $mib")
	case $kind in front* | haproxy | hitch) up_ms=$(calc "$scpu / $TICK * 1000 / $mib") ;; esac
	say "| $(relay_name "$kind") | $(calc "$BIG_BYTES / 1048576 / $med" | xargs printf '%.0f') | $(printf '%.2f' "$srv_ms") | $([ -n "$up_ms" ] && printf '%.2f' "$up_ms" || echo "-") | $(calc "$srv_ms + ${up_ms:-0}" | xargs printf '%.2f') | $(calc "$ccpu * 1000 / $mib" | xargs printf '%.2f') | $(tr ' ' '\n' <<<"$walls" | awk 'NF' | xargs printf '%.2f ' | sed 's/ $//') | $ok / $bad |"
}

if [ "${BENCH_RELAY:-1}" = 1 ]; then
	RELAY_RUNS=${BENCH_RELAY_RUNS:-3}
	log "relay throughput: $RELAY_RUNS downloads of 100 MiB per server"
	say "### Relay throughput: a 100 MiB response"
	say ""
	say "\`curl --http1.1\` (TLS 1.3, chain verified against the throwaway CA) downloads https://p000001.bench.test/big.bin $RELAY_RUNS times per server (100 MiB of random bytes; every download checked: size and SHA-256). The front and HAProxy relay it from the sink nginx (PROXY v2; the sink's usual config, sendfile off as nginx's default); nginx terminates TLS itself (one server block, same certificate). CPU from /proc over each download, per MiB."
	say ""
	say "| server | MiB/s (median wall) | server CPU ms/MiB | upstream (sink) CPU ms/MiB | total ms/MiB | client (curl) CPU ms/MiB | seconds per download | downloads ok / wrong |"
	say "|---|---:|---:|---:|---:|---:|---:|---:|"
	for kind in ${BENCH_RELAY_SERVERS:-front1 nginx haproxy}; do
		relay_run "$kind"
	done
	say ""
fi

say "total bench time: $((SECONDS - T_BEGIN)) s"

if [ $WRITE = 1 ]; then
	res=$REPO/bench/RESULTS.md
	if grep -q '<!-- bench/front.sh: begin -->' "$res"; then
		awk -v f="$OUT" '
			/<!-- bench\/front.sh: begin -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
			/<!-- bench\/front.sh: end -->/ { skip = 0 }
			!skip' "$res" >"$res.new" && mv "$res.new" "$res"
	else
		{ echo; echo "<!-- bench/front.sh: begin -->"; cat "$OUT"; echo "<!-- bench/front.sh: end -->"; } >>"$res"
	fi
	log "wrote its section of $res"
fi
