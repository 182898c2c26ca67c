#!/bin/bash
# Issuance benchmark: how fast, and at what CPU and memory cost, certherd
# obtains N certificates from a local Pebble, next to Apache mod_md and lego
# doing the same job against the same CA, and next to Pebble's own ceiling.
#
#   sudo bench/issue.sh           N=300 and N=1000 (about 12-15 minutes)
#   sudo bench/issue.sh --quick   N=100 only (smoke test, about 3 minutes)
#
# Needs root (network namespace, apache2 dropping to www-data), a release
# build (made here if missing: build-bench/), scripts/install-deps.sh and
# bench/install-peers.sh (apache2, lego, GNU time). Everything runs on
# loopback in a private network namespace (tests/netns.sh); every wait is
# bounded. Prints one markdown table per N plus ratios against the targets.
# BENCH_KEEP=1 keeps the work directory (logs of every run) for inspection;
# for development, BENCH_SIZES="N..." replaces the sizes and BENCH_ONLY=RE
# runs only the rows whose tool (certherd, ceiling, mod_md, lego) matches.
#
# Rows (each configuration gets a freshly started CA, tests/ca/ca.sh):
#   certherd   certherd issue, --concurrency 100 (default); at N>=1000 also
#              --concurrency 1000 (the "1,000 orders in flight" RSS target)
#   ceiling    the same certherd runs with PEBBLE_ALWAYS_VALID=1: Pebble
#              skips validation, so this is the CA's ceiling, not a client
#              figure
#   Ratios use certherd's c=100 row, or its c=1000 row when c=100 could not
#   obtain all N (Pebble wedged in every attempt, see below), and the ceiling
#   row of the same concurrency.
#   mod_md     Apache httpd (Debian's apache2) with one MDomain + SSL
#              VirtualHost per name, MDRenewMode always, its own ServerRoot;
#              timed from start until N pubcert files are in the MD store
#   lego       one `lego run` process per name, xargs -P 8 and -P 32, HTTP-01
#              through --http.webroot served by python3 -m http.server
#
# Fairness: PEBBLE_NONCEREJECT=0 for every run (Pebble would otherwise reject
# 5% of nonces); all clients use ECDSA P-256 keys (mod_md is told so with
# MDPrivateKeys, its default RSA-2048 would make it much slower); all do real
# HTTP-01 except the ceiling row.
#
# Measurements: wall time from /usr/bin/time (certherd, lego) or from Apache's
# start to the last certificate (mod_md, polled every 0.5 s). CPU = user+sys
# of the client's processes: /usr/bin/time for certherd and lego (all lego
# processes included), /proc/PID/stat of every apache2 process for mod_md.
# Peak RSS: /usr/bin/time's max RSS for certherd; for mod_md the sum over
# apache2 processes of each one's largest VmRSS (sampled every 0.5 s by
# bench/procmon.py; PSS in the notes); for lego the largest single process,
# with the largest simultaneous sum over all lego processes in the notes.
# Pebble wedges: see "stalls, wedges" below; every wedge is in the notes.
# "Pebble CPU s" is Pebble's own user+sys at the end of the run: on a small
# machine the CA competes with the client for the same cores.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done

CERTHERD=$REPO/build-bench/certherd
die() { echo "bench/issue.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- outside
if [ -z "${CERTHERD_NETNS:-}" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root (network namespace, apache2)"
	for t in apache2 lego python3 openssl curl; do
		command -v "$t" >/dev/null || die "$t missing: run bench/install-peers.sh"
	done
	[ -x /usr/bin/time ] || die "/usr/bin/time missing: run bench/install-peers.sh"
	[ -f /usr/lib/apache2/modules/mod_md.so ] || die "mod_md missing: run bench/install-peers.sh"
	if [ ! -d "$REPO/build-bench" ]; then
		meson setup "$REPO/build-bench" "$REPO" -Dbuildtype=release >/dev/null ||
			die "meson setup build-bench failed"
	fi
	ninja -C "$REPO/build-bench" >/dev/null || die "build failed: ninja -C build-bench"
	[ -x "$CERTHERD" ] || die "no $CERTHERD"
	exec "$REPO/tests/netns.sh" "$0" "$@"
fi

# ----------------------------------------------------------------- inside
if [ $QUICK = 1 ]; then SIZES="100"; else SIZES="300 1000"; fi
SIZES=${BENCH_SIZES:-$SIZES}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/certherd-bench.XXXXXX)
chmod 755 "$WORK" # apache2's children (www-data) read the MD store
RESULTS=$WORK/results.tsv
: >"$RESULTS"
CUR_CA="" BG_PIDS=""

cleanup() {
	local p
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
	[ -n "$CUR_CA" ] && "$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%s\", ($*) }" </dev/null; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# utime+stime of PID in seconds (0 if gone)
proc_cpu() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	st=${st##*") "} # fields from 3 (state) on; comm may contain spaces
	# shellcheck disable=SC2086
	set -- $st
	calc "(${12} + ${13}) / $TICK"
}

# ca_start DIR [VAR=value...]: fresh CA in DIR, its ca.env exported
ca_start() {
	local dir=$1
	shift
	env PEBBLE_NONCEREJECT=0 "$@" "$REPO/tests/ca/ca.sh" start "$dir" >/dev/null ||
		{ log "CA did not start (see $dir)"; return 1; }
	CUR_CA=$dir
	set -a
	# shellcheck disable=SC1091
	. "$dir/ca.env"
	set +a
}

# ca_stop: record Pebble's CPU seconds in PEBBLE_CPU, then stop the CA
ca_stop() {
	PEBBLE_CPU=$(proc_cpu "$PEBBLE_PID")
	"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
	CUR_CA=""
}

names() { # names N [FIRST]
	local i
	for ((i = ${2:-1}; i <= $1; i++)); do echo "b$i.bench.test"; done
}

# verify_one FILE DOMAIN: FILE (leaf first, then chain) chains to Pebble's
# root and names DOMAIN
verify_one() {
	[ -s "$1" ] || return 1
	openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$1" "$1" >/dev/null 2>&1 &&
		openssl x509 -noout -ext subjectAltName -in "$1" 2>/dev/null | grep -q "DNS:$2"
}

# record N TOOL CONFIG WALL OK CPU RSS_KB PEBBLE_CPU NOTE
record() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# wait_gone PID SECONDS: TERM, then KILL after SECONDS, then reap
stop_pid() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# ------------------------------------------------------- stalls, wedges
# Pebble (2.4.0 and 2.10) sometimes wedges for good under parallel load:
# every request touching its in-memory store blocks on the store's lock
# (docs/pebble.md). A run is watched; when no certificate appears for
# STALL_S seconds, Pebble is sent SIGQUIT (Go prints every goroutine's stack
# to pebble.log, then exits) and the dump decides: goroutines blocked on
# MemoryStore locks = Pebble wedged, and the configuration is run again on a
# fresh CA (at most ATTEMPTS times; the table notes every wedge). A stall
# without that signature is reported as the client's and not retried.
STALL_S=30
ATTEMPTS=3

# watch PID CAP_S COUNTCMD...: 0 when PID ends, 2 when COUNTCMD's output
# has not changed for STALL_S seconds, 4 after CAP_S seconds. Sets W_COUNT.
watch() {
	local pid=$1 cap=$2 t0=$SECONDS since=$SECONDS last=-1 c
	shift 2
	W_COUNT=0
	while kill -0 "$pid" 2>/dev/null; do
		c=$("$@" 2>/dev/null)
		W_COUNT=${c:-0}
		if [ "$W_COUNT" != "$last" ]; then last=$W_COUNT since=$SECONDS; fi
		[ $((SECONDS - since)) -ge $STALL_S ] && return 2
		[ $((SECONDS - t0)) -ge "$cap" ] && return 4
		sleep 0.5
	done
	return 0
}

# pebble_dump: record Pebble's CPU, make it dump its goroutines and exit;
# status 0 (and WEDGE_INFO) when the dump shows store-lock waiters.
pebble_dump() {
	local log=$CA_DIR/pebble.log i
	PEBBLE_CPU=$(proc_cpu "$PEBBLE_PID")
	kill -QUIT "$PEBBLE_PID" 2>/dev/null
	for ((i = 0; i < 30; i++)); do
		kill -0 "$PEBBLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	local waiting funcs
	waiting=$(grep -c '^goroutine .*\[sync\.RWMutex\.R\{0,1\}Lock' "$log")
	funcs=$(awk '/^goroutine /{ w = ($0 ~ /sync\.RWMutex/) } w && match($0, /MemoryStore\)\.[A-Za-z]+/) {
		print substr($0, RSTART + 13, RLENGTH - 13) }' "$log" | sort | uniq -c |
		awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
	WEDGE_INFO="goroutine dump: ${waiting:-0} handlers blocked on Pebble's MemoryStore lock: $funcs"
	[ "${waiting:-0}" -gt 0 ]
}

count_lines() { grep -c "$1" "$2"; }
count_files() { find "$1" -name "$2" ! -name '*.issuer.crt' 2>/dev/null | wc -l; }

# attempt FN N ARGS...: run FN (which sets R_WALL R_OK R_CPU R_RSS R_NOTE
# and returns 2 when Pebble wedged) up to ATTEMPTS times; record the row.
attempt() {
	local fn=$1 n=$2 k rc wnote=""
	shift 2
	case $fn in
	certherd_run) R_TOOL=$2 ;;
	modmd_run) R_TOOL=mod_md ;;
	lego_run) R_TOOL=lego ;;
	esac
	[[ $R_TOOL =~ ${BENCH_ONLY:-.} ]] || return 0
	for ((k = 1; k <= ATTEMPTS; k++)); do
		R_WALL=0 R_OK=0 R_CPU=0 R_RSS=0 R_NOTE="" PEBBLE_CPU=0
		"$fn" "$n" "$k" "$@"
		rc=$?
		[ $rc = 2 ] || break
		log "  Pebble wedged after $R_OK certificates (attempt $k): $WEDGE_INFO"
		wnote="${wnote}attempt $k: Pebble wedged after $R_OK/$n certificates ($WEDGE_INFO); "
	done
	[ $rc = 2 ] && wnote="WEDGED in all $ATTEMPTS attempts (figures: last attempt, until the wedge); $wnote"
	record "$n" "$R_TOOL" "$R_CONFIG" "$R_WALL" "$R_OK" "$R_CPU" "$R_RSS" "$PEBBLE_CPU" "$wnote$R_NOTE"
}

# ------------------------------------------------------------- certherd
# certherd_run N ATTEMPT CONCURRENCY TOOL_LABEL [CA knobs...]
certherd_run() {
	local n=$1 k=$2 conc=$3 tool=$4
	shift 4
	local d=$WORK/$tool-c$conc-$n-$k cap=180 rc w t0 wall u s m
	R_TOOL=$tool R_CONFIG="c=$conc"
	mkdir -p "$d"
	log "$tool: N=$n --concurrency $conc (attempt $k)"
	ca_start "$d/ca" "$@" || { R_NOTE="CA failed to start"; return 1; }
	names "$n" >"$d/names"
	t0=$(now)
	timeout -k 5 $cap /usr/bin/time -o "$d/time" -f '%e %U %S %M' \
		"$CERTHERD" issue --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
		--http-listen "127.0.0.1:$HTTP01_PORT" --out "$d/out" \
		--domains-file "$d/names" --no-progress --concurrency "$conc" \
		>"$d/certherd.log" 2>&1 &
	local tp=$!
	watch "$tp" $cap count_lines 'certificate obtained' "$d/certherd.log"
	w=$?
	wall=$(calc "$(now) - $t0")
	if [ $w = 2 ]; then
		if pebble_dump; then w=wedge; else R_NOTE="STALL: no certificate for ${STALL_S}s and Pebble not wedged ($WEDGE_INFO); "; fi
		kill -TERM "$tp" 2>/dev/null
	fi
	wait "$tp"
	rc=$?
	[ "$w" = wedge ] || ca_stop
	[ "$w" = wedge ] && { "$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1; CUR_CA=""; }
	R_OK=$(find "$d/out/live" -name cert.pem -size +0 2>/dev/null | wc -l)
	if [ -s "$d/time" ] && read -r wall u s m < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$d/time" | tail -n1) && [ -n "$m" ]; then
		R_CPU=$(calc "$u + $s") R_RSS=$m
	else
		R_NOTE="${R_NOTE}killed (CPU/RSS unknown); "
		[ "$w" = 4 ] && R_NOTE="${R_NOTE}TIMEOUT after ${cap}s; "
	fi
	R_WALL=$wall
	[ "$w" = wedge ] && return 2
	[ $rc = 0 ] || R_NOTE="${R_NOTE}exit status $rc; "
	verify_one "$d/out/live/b1.bench.test/fullchain.pem" b1.bench.test ||
		R_NOTE="${R_NOTE}b1 cert does not verify; "
	if [ "$R_OK" != "$n" ] || [ $rc != 0 ]; then
		R_NOTE="${R_NOTE}last error: $(grep -E 'level=(error|warn)' "$d/certherd.log" | tail -n1 | cut -c1-200)"
		log "$tool c=$conc: problem; last lines of $d/certherd.log:"
		tail -n 5 "$d/certherd.log" >&2
	fi
	return 0
}

# --------------------------------------------------------------- mod_md
count_modmd() {
	local f
	shopt -s nullglob
	f=("$1"/staging/*/pubcert*.pem "$1"/domains/*/pubcert*.pem)
	shopt -u nullglob
	echo ${#f[@]}
}

modmd_run() {
	local n=$1 k=$2
	local d=$WORK/modmd-$n-$k i w t0 t1 cap mods=/usr/lib/apache2/modules
	cap=$((60 + n * 2 / 5))
	local a=$d/apache
	R_TOOL=mod_md R_CONFIG="MDomain+vhost each"
	mkdir -p "$a/logs" "$a/md"
	chmod 755 "$d" "$a"
	log "mod_md: N=$n (attempt $k)"
	ca_start "$d/ca" || { R_NOTE="CA failed to start"; return 1; }
	{
		cat <<-EOF
			ServerRoot $a
			PidFile $a/httpd.pid
			DefaultRuntimeDir $a
			Mutex file:$a default
			ErrorLog $a/logs/error.log
			LogLevel warn md:notice
			User www-data
			Group www-data
			ServerName localhost
			LoadModule mpm_event_module $mods/mod_mpm_event.so
			LoadModule authz_core_module $mods/mod_authz_core.so
			LoadModule socache_shmcb_module $mods/mod_socache_shmcb.so
			LoadModule ssl_module $mods/mod_ssl.so
			LoadModule md_module $mods/mod_md.so
			# Debian's mods-available/mpm_event.conf
			StartServers 2
			MinSpareThreads 25
			MaxSpareThreads 75
			ThreadLimit 64
			ThreadsPerChild 25
			MaxRequestWorkers 150
			MaxConnectionsPerChild 0
			Listen 127.0.0.1:$HTTP01_PORT
			Listen 127.0.0.1:443
			SSLSessionCache shmcb:$a/ssl_scache(512000)
			MDStoreDir $a/md
			MDCertificateAuthority $ACME_DIRECTORY
			MDCACertificateFile $CA_BUNDLE
			MDCertificateAgreement accepted
			MDContactEmail a@b.test
			# Pebble connects to HTTP01_PORT for http-01: that is "port 80".
			MDPortMap http:$HTTP01_PORT https:443
			MDCAChallenges http-01
			MDRenewMode always
			# the same key type as certherd and lego (mod_md's default: RSA 2048)
			MDPrivateKeys secp256r1
		EOF
		for i in $(names "$n"); do
			printf 'MDomain %s\n<VirtualHost *:443>\n  ServerName %s\n  SSLEngine on\n</VirtualHost>\n' "$i" "$i"
		done
	} >"$a/httpd.conf"
	if ! apache2 -t -f "$a/httpd.conf" -d "$a" >"$a/logs/configtest.log" 2>&1; then
		ca_stop
		R_NOTE="config test failed: $(head -c 200 "$a/logs/configtest.log")"
		return 1
	fi

	python3 "$REPO/bench/procmon.py" --comm apache2 "$d/procmon" &
	local mon=$!
	BG_PIDS="$BG_PIDS $mon"
	t0=$(now)
	apache2 -DFOREGROUND -f "$a/httpd.conf" -d "$a" >"$a/logs/stdout.log" 2>&1 &
	local ap=$!
	BG_PIDS="$BG_PIDS $ap"
	# Certificates land in staging/ (activated at the next restart). watch
	# returns when all are there (the kill -0 probe: a sentinel that ends).
	(
		while [ "$(count_modmd "$a/md")" -lt "$n" ] && kill -0 "$ap" 2>/dev/null; do
			sleep 0.5
		done
	) &
	local poll=$!
	watch "$poll" $cap count_modmd "$a/md"
	w=$?
	t1=$(now)
	kill "$poll" 2>/dev/null
	wait "$poll" 2>/dev/null
	stop_pid "$mon" 10
	if [ $w = 2 ]; then
		if pebble_dump; then w=wedge; else R_NOTE="STALL: no certificate for ${STALL_S}s and Pebble not wedged ($WEDGE_INFO); "; fi
		"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
		CUR_CA=""
	else
		ca_stop
	fi
	stop_pid "$ap" 15
	R_WALL=$(calc "$t1 - $t0")
	R_OK=$(count_modmd "$a/md")
	local kv pss nproc
	kv=$(cat "$d/procmon" 2>/dev/null)
	R_RSS=$(sed -n 's/.*rss_maxsum_kb=\([0-9]*\).*/\1/p' <<<"$kv")
	pss=$(sed -n 's/.*pss_peak_kb=\([0-9]*\).*/\1/p' <<<"$kv")
	nproc=$(sed -n 's/.*nproc=\([0-9]*\).*/\1/p' <<<"$kv")
	R_CPU=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$kv")
	[ "$w" = wedge ] && return 2
	[ "$w" = 4 ] && R_NOTE="${R_NOTE}TIMEOUT after ${cap}s; "
	[ "$w" = 0 ] && [ "$R_OK" -lt "$n" ] && R_NOTE="${R_NOTE}apache2 exited early (see its logs); "
	local one
	one=$(find "$a/md/staging/b1.bench.test" -name 'pubcert*.pem' 2>/dev/null | head -n1)
	verify_one "${one:-/nonexistent}" b1.bench.test || R_NOTE="${R_NOTE}b1 cert does not verify; "
	local errs threads
	errs=$(grep -c '\[md:error\]' "$a/logs/error.log" 2>/dev/null)
	[ "${errs:-0}" -gt 0 ] && R_NOTE="${R_NOTE}${errs} md errors in log (e.g. $(grep -m1 '\[md:error\]' "$a/logs/error.log" | cut -c1-200)); "
	threads=$(sed -n 's/.*\[pid \([0-9]*:tid [0-9]*\)\] AH10059.*/\1/p' "$a/logs/error.log" 2>/dev/null | sort -u | wc -l)
	R_NOTE="${R_NOTE}ACME work done by ${threads} thread(s) (pid:tid of its 'has been setup' lines); RSS summed over ${nproc:-?} apache2 processes, PSS sum $(calc "${pss:-0} / 1024" | xargs printf '%.0f') MiB"
	return 0
}

# ----------------------------------------------------------------- lego
lego_run() {
	local n=$1 k=$2 p=$3
	local d=$WORK/lego-p$3-$1-$2 cap rc w t0
	cap=$((60 + n * 3 / p))
	R_TOOL=lego R_CONFIG="1 process/name, -P $p"
	mkdir -p "$d/www"
	chmod -R 755 "$d"
	log "lego: N=$n -P $p (attempt $k)"
	ca_start "$d/ca" || { R_NOTE="CA failed to start"; return 1; }
	python3 -m http.server --bind 127.0.0.1 --directory "$d/www" "$HTTP01_PORT" \
		>"$d/webroot-server.log" 2>&1 &
	local web=$!
	BG_PIDS="$BG_PIDS $web"
	local i
	for ((i = 0; i < 50; i++)); do
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$HTTP01_PORT/" && break
		sleep 0.1
	done
	names "$n" 2 >"$d/names"
	# One shared --path: the first process registers the account, the others
	# reuse it (as a lego user with many sites would). No per-process
	# timeout: the whole run is bounded by the outer timeout and the stall
	# watch, and everything stays in one process group for them.
	cat >"$d/one.sh" <<-EOF
		#!/bin/sh
		export LEGO_CA_CERTIFICATES='$CA_BUNDLE'
		exec /usr/bin/time -a -o '$d/rss' -f '%M' \\
			lego --server '$ACME_DIRECTORY' --accept-tos --email a@b.test \\
			--path '$d/lego' --http --http.webroot '$d/www' --domains "\$1" run \\
			>>'$d/lego.log' 2>&1
	EOF
	chmod +x "$d/one.sh"
	python3 "$REPO/bench/procmon.py" --comm lego "$d/procmon" &
	local mon=$!
	BG_PIDS="$BG_PIDS $mon"
	t0=$(now)
	timeout -k 5 $cap /usr/bin/time -o "$d/time" -f '%e %U %S %M' \
		sh -c "'$d/one.sh' b1.bench.test; xargs -P $p -n 1 '$d/one.sh' <'$d/names'" &
	local tp=$!
	watch "$tp" $cap count_files "$d/lego/certificates" '*.bench.test.crt'
	w=$?
	R_WALL=$(calc "$(now) - $t0")
	if [ $w = 2 ]; then
		if pebble_dump; then w=wedge; else R_NOTE="STALL: no certificate for ${STALL_S}s and Pebble not wedged ($WEDGE_INFO); "; fi
		kill -TERM "$tp" 2>/dev/null
	fi
	wait "$tp"
	rc=$?
	stop_pid "$mon" 10
	local webcpu webrss
	webcpu=$(proc_cpu "$web")
	webrss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$web/status" 2>/dev/null)
	if [ "$w" = wedge ]; then
		"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
		CUR_CA=""
	else
		ca_stop
	fi
	stop_pid "$web" 5
	R_OK=$(count_files "$d/lego/certificates" '*.bench.test.crt')
	local u s m
	if [ -s "$d/time" ] && read -r R_WALL u s m < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$d/time" | tail -n1) && [ -n "$m" ]; then
		R_CPU=$(calc "$u + $s")
	else
		R_NOTE="${R_NOTE}killed (CPU unknown); "
		[ "$w" = 4 ] && R_NOTE="${R_NOTE}TIMEOUT after ${cap}s; "
	fi
	R_RSS=$(sort -n "$d/rss" 2>/dev/null | tail -n1)
	[ "$w" = wedge ] && return 2
	[ "$R_OK" -lt "$n" ] && R_NOTE="${R_NOTE}$((n - R_OK)) names failed (e.g. $(grep -i -m1 'error' "$d/lego.log" | cut -c1-160)); "
	verify_one "$d/lego/certificates/b1.bench.test.crt" b1.bench.test || R_NOTE="${R_NOTE}b1 cert does not verify; "
	local slept peak
	slept=$(awk '{ split($2, t, ":"); x = t[1] * 3600 + t[2] * 60 + t[3] }
		/Trying to solve HTTP-01/ { s[$4] = x }
		/The server validated our request/ && ($4 in s) && x - s[$4] >= 5 { k++ }
		END { print k + 0 }' "$d/lego.log" 2>/dev/null)
	peak=$(sed -n 's/.*rss_peak_kb=\([0-9]*\).*/\1/p' "$d/procmon" 2>/dev/null)
	R_NOTE="${R_NOTE}${slept} names waited >= 5 s for validation; RSS: largest process; all lego at once peaked at $(calc "${peak:-0} / 1024" | xargs printf '%.0f') MiB. Not counted: webroot server (python3) CPU ${webcpu}s, RSS $(calc "${webrss:-0} / 1024" | xargs printf '%.0f') MiB"
	return 0
}

# ---------------------------------------------------------------- report
# row N TOOL CONFIG -> "wall ok cpu rss" of the first matching row
row() {
	awk -F'\t' -v n="$1" -v t="$2" -v c="$3" \
		'$1 == n && $2 == t && $3 == c { print $4, $5, $6, $7; exit }' "$RESULTS"
}
rate() { # rate N TOOL CONFIG -> certs/s (0 if none)
	local r
	r=$(row "$@")
	[ -n "$r" ] || { echo 0; return; }
	# shellcheck disable=SC2086
	set -- $r
	calc "($1 > 0) ? $2 / $1 : 0"
}

print_table() {
	local n=$1
	echo
	echo "### N = $n certificates (HTTP-01, Pebble $PEBBLE_VERSION, PEBBLE_NONCEREJECT=0)"
	echo
	echo "| tool | config | wall s | certs/s | CPU s | CPU ms/cert | peak RSS MiB | ok/N | Pebble CPU s |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' -v n="$n" '$1 == n {
		cps = ($4 > 0) ? $5 / $4 : 0
		ms = ($5 > 0) ? 1000 * $6 / $5 : 0
		printf "| %s | %s | %.1f | %.1f | %.2f | %.2f | %.1f | %d/%d | %.1f |\n",
			$2, $3, $4, cps, $6, ms, $7 / 1024, $5, n, $8
	}' "$RESULTS"
	echo
	awk -F'\t' -v n="$n" '$1 == n && $9 != "" { printf "- %s (%s): %s\n", $2, $3, $9 }' "$RESULTS"

	local ch md lb cl verdict cfg=c=100 why="" r
	# certherd's row: the default (c=100), unless it did not get all N
	# (a Pebble wedge in every attempt) and the c=1000 row did.
	r=$(row "$n" certherd c=100)
	if [ "$(echo "$r" | awk '{ print $2 }')" != "$n" ] &&
		[ "$(row "$n" certherd c=1000 | awk '{ print $2 }')" = "$n" ]; then
		cfg=c=1000 why=" because the c=100 row did not obtain all $n (see its notes)"
	fi
	ch=$(rate "$n" certherd $cfg)
	md=$(rate "$n" mod_md "MDomain+vhost each")
	lb=$(awk -F'\t' -v n="$n" '$1 == n && $2 == "lego" && $4 > 0 { r = $5 / $4; if (r > b) b = r } END { printf "%f", b + 0 }' "$RESULTS")
	cl=$(rate "$n" "ceiling" $cfg)
	echo
	echo "Ratios at N=$n (certherd and ceiling = their $cfg rows$why):"
	echo
	if [ "$(calc "$md > 0")" = 1 ]; then
		verdict=$([ "$(calc "$ch / $md >= 3")" = 1 ] && echo PASS || echo FAIL)
		printf -- '- certherd ÷ mod_md: %.1fx  (target ≥ 3x: %s)\n' "$(calc "$ch / $md")" "$verdict"
	else
		echo "- certherd ÷ mod_md: n/a (mod_md obtained nothing)  (target ≥ 3x: FAIL? check the mod_md row)"
	fi
	if [ "$(calc "$lb > 0")" = 1 ]; then
		printf -- '- certherd ÷ lego (best row): %.1fx\n' "$(calc "$ch / $lb")"
	else
		echo "- certherd ÷ lego (best row): n/a (lego obtained nothing)"
	fi
	if [ "$(calc "$cl > 0")" = 1 ]; then
		verdict=$([ "$(calc "$ch / $cl >= 0.8")" = 1 ] && echo PASS || echo FAIL)
		printf -- '- certherd ÷ CA ceiling: %.0f%%  (target ≥ 80%%: %s)\n' "$(calc "100 * $ch / $cl")" "$verdict"
	else
		echo "- certherd ÷ CA ceiling: n/a (ceiling run failed)"
	fi
	r=$(row "$n" certherd c=1000)
	if [ -n "$r" ]; then
		# shellcheck disable=SC2086
		set -- $r
		if [ "$2" = "$n" ]; then
			verdict=$([ "$(calc "$4 / 1024 < 64")" = 1 ] && echo PASS || echo FAIL)
		else
			verdict="FAIL (only $2/$n certificates)"
		fi
		printf -- '- certherd peak RSS with 1,000 orders in flight: %.1f MiB  (target < 64 MiB: %s)\n' \
			"$(calc "$4 / 1024")" "$verdict"
	fi
}

# ------------------------------------------------------------------- main
T_START=$SECONDS
PEBBLE_VERSION=unknown
echo "# certherd issuance benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
echo "- certherd $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src meson.build 2>/dev/null || echo '+dirty') (build-bench, buildtype=release)"
echo "- apache2 $(dpkg-query -W -f='${Version}' apache2 2>/dev/null) with mod_md $(strings /usr/lib/apache2/modules/mod_md.so | grep -A1 -x '[0-9]*\.[0-9]*\.[0-9]*' | grep -B1 -x '%s mod_md/%s' | head -n1)"
echo "- lego $(dpkg-query -W -f='${Version}' lego 2>/dev/null) (Debian)"
echo "- network namespace: $CERTHERD_NETNS; all traffic on loopback"
echo "- PEBBLE_NONCEREJECT=0 for every run (fairness: no client pays for Pebble's random badNonce rejections); ECDSA P-256 keys everywhere"

for n in $SIZES; do
	log "=== N=$n"
	attempt certherd_run "$n" 100 certherd
	[ "$n" -ge 1000 ] && attempt certherd_run "$n" 1000 certherd
	attempt certherd_run "$n" 100 ceiling PEBBLE_ALWAYS_VALID=1
	[ "$n" -ge 1000 ] && attempt certherd_run "$n" 1000 ceiling PEBBLE_ALWAYS_VALID=1
	attempt modmd_run "$n"
	attempt lego_run "$n" 8
	attempt lego_run "$n" 32
	print_table "$n"
done
echo
echo "lego: when the challenge is not yet valid in the CA's answer to lego's POST, lego sleeps 5 s before polling (its fallback when there is no Retry-After); how often that happens depends on how loaded Pebble is (a race), so lego's rate varies between runs."
echo "mod_md's certificates are counted in the MD store's staging area, where they stay until the next graceful restart activates them (not timed)."
echo
echo "total bench time: $((SECONDS - T_START)) s"
