#!/bin/bash
# Daemon benchmark (issue 3, "Measured"): certherd serve with 100,000
# registered domains that have certificates. Measures, against the targets:
#   - start-up time until GET /v1/status answers   (target < 1 s)
#   - RSS after start and after minutes of passes  (target < 200 MiB)
#   - cost of one scheduler pass, CPU and wall     (target < 50 ms)
#   - POST /v1/domains -> valid certificate from a local Pebble, 100
#     domains one at a time: median, p90, max
# and, in the same run against the same CA, one certificate with lego and
# with certbot (a whole one-shot client run) as ratios to certherd's
# POST -> valid median.
#
#   sudo bench/serve.sh             100,000 domains; writes its section of
#                                   bench/RESULTS.md (about 10 minutes)
#   sudo bench/serve.sh --quick     10,000 domains, shorter soak, 20 POSTs,
#                                   3 peer runs; prints only (about 3 min)
#   --no-write                      print only, even for a full run
#
# Knobs (environment): BENCH_DOMAINS (100000), BENCH_DUE (percent of the
# domains past their renewal time at start, 1), BENCH_STARTS (start-ups
# timed, 5), BENCH_SOAK_S (seconds of idle passes after the backlog, 180),
# BENCH_MASS_S (seconds of the all-due run, 60),
# BENCH_POSTS (100), BENCH_PEER_RUNS (10), BENCH_PEERS=0 (skip lego and
# certbot), BENCH_POPULATE=fast|pebble (below), BENCH_KEEP=1 (keep the work
# directory with every log).
#
# Needs root (network namespace), a release build (made here if missing:
# build-bench/, which also builds bench/populate), scripts/install-deps.sh
# and bench/install-peers.sh (the sqlite3 shell; lego and certbot for the
# peer rows). Runs in a
# private network namespace (tests/netns.sh) with a fresh Pebble 2.10 from
# tests/ca/ca.sh (PEBBLE_NONCEREJECT=0, as in issue.sh); every wait is
# bounded.
#
# The store. BENCH_POPULATE=fast (default): bench/populate writes N domains
# with real certificates (own P-256 key each, signed by a throwaway CA) in
# 10,000-domain transactions through the store library: ages uniform over
# the 58 days before their renewal point, BENCH_DUE % past it (due at
# once, renewed from Pebble during the run: the backlog of about 14 hours
# of downtime at 1 %). About 2-4 minutes. BENCH_POPULATE=pebble: the daemon
# itself obtains all N from Pebble (POSTed 1,000 names at a time); about
# 15 minutes per 100,000 when Pebble does not wedge, and a wedge (30 s
# without a new certificate) restarts Pebble and the daemon, which costs
# minutes of backoff each; every certificate is then fresh, so nothing is
# due. The report says which was used.
#
# How each figure is measured:
#   start-up   a copy of the populated store (database and account key, page
#              cache warm) per start; time from launching `certherd serve`
#              until `GET /v1/status` on the unix socket answers 200, polled
#              every 5 ms; BENCH_STARTS starts, median and max. Each start is
#              stopped with SIGTERM at once.
#   RSS        VmRSS from /proc/PID/status: right after start, when the
#              renewal backlog is done, and after BENCH_SOAK_S more seconds
#              of passes (the largest of samples every 5 s in that window),
#              plus VmHWM (peak) at the end.
#   pass       the daemon's own instrument (/metrics
#              certherd_scheduler_pass_seconds{stat=max_wall,max_cpu} and the
#              *_total counters): CPU of the loop thread and wall time of
#              every pass; longest pass, and the mean per window = delta of
#              the sums / delta of the pass count. Cross-check: the whole
#              process's CPU (utime+stime from /proc) over the idle window
#              divided by the passes in it.
#   POST->valid  bench/postvalid.py: one name at a time, POST, then GET
#              /v1/domains/NAME every 10 ms until "valid"; 0.2 s between
#              names; on the daemon holding the N domains.
#   all due    a copy of the store with every domain's next attempt set
#              to now (as after a mass revocation; the API's renew does
#              this to one domain), the daemon run BENCH_MASS_S seconds (60;
#              0 skips) against Pebble: passes as above, renewals counted,
#              peak RSS.
#   peers      after the daemon stopped (they need the HTTP-01 port): one
#              warm-up run (account registration), then BENCH_PEER_RUNS
#              timed runs of `lego run` (built-in HTTP-01 server) and
#              `certbot certonly --standalone`, one new name each; wall time
#              of the whole process, median. Both use ECDSA P-256 keys by
#              default, like certherd.
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
die() { echo "bench/serve.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- outside
if [ -z "${CERTHERD_NETNS:-}" ]; then
	[ "$(id -u)" = 0 ] || die "must run as root (network namespace)"
	for t in curl jq python3 openssl; do
		command -v "$t" >/dev/null || die "$t missing: run scripts/install-deps.sh"
	done
	command -v sqlite3 >/dev/null || die "sqlite3 missing: run bench/install-peers.sh"
	if [ "${BENCH_PEERS:-1}" = 1 ]; then
		for t in lego certbot; do
			command -v "$t" >/dev/null || die "$t missing: run bench/install-peers.sh (or BENCH_PEERS=0)"
		done
	fi
	if [ ! -d "$BUILD" ]; then
		meson setup "$BUILD" "$REPO" -Dbuildtype=release >/dev/null ||
			die "meson setup build-bench failed"
	fi
	ninja -C "$BUILD" >/dev/null || die "build failed: ninja -C build-bench"
	{ [ -x "$CERTHERD" ] && [ -x "$POPULATE" ]; } || die "no $CERTHERD or $POPULATE"
	exec "$REPO/tests/netns.sh" "$0" "$@"
fi

# ----------------------------------------------------------------- inside
if [ $QUICK = 1 ]; then
	N=${BENCH_DOMAINS:-10000} SOAK=${BENCH_SOAK_S:-30} POSTS=${BENCH_POSTS:-20}
	PEER_RUNS=${BENCH_PEER_RUNS:-3} STARTS=${BENCH_STARTS:-3} MASS_S=${BENCH_MASS_S:-20}
else
	N=${BENCH_DOMAINS:-100000} SOAK=${BENCH_SOAK_S:-180} POSTS=${BENCH_POSTS:-100}
	PEER_RUNS=${BENCH_PEER_RUNS:-10} STARTS=${BENCH_STARTS:-5} MASS_S=${BENCH_MASS_S:-60}
fi
DUE=${BENCH_DUE:-1}
MODE=${BENCH_POPULATE:-fast}
case $MODE in fast | pebble) ;; *) die "BENCH_POPULATE must be fast or pebble" ;; esac
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/certherd-serve-bench.XXXXXX)
OUT=$WORK/report.md
CUR_CA="" DAEMON=""

cleanup() {
	[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
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
say() { printf '%s\n' "$*" | tee -a "$OUT"; }

# utime+stime of PID in seconds (0 if gone)
proc_cpu() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	st=${st##*") "}
	# shellcheck disable=SC2086
	set -- $st
	calc "(${12} + ${13}) / $TICK"
}
# proc_kb PID FIELD: VmRSS / VmHWM in kB (0 if gone)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { calc "$1 / 1024" | xargs printf '%.1f'; }

ca_start() {
	local dir=$1
	env PEBBLE_NONCEREJECT=0 "$REPO/tests/ca/ca.sh" start "$dir" >/dev/null ||
		{ log "CA did not start (see $dir)"; return 1; }
	CUR_CA=$dir
	set -a
	# shellcheck disable=SC1091
	. "$dir/ca.env"
	set +a
}

# conf STATE: the daemon's configuration for a state directory
conf() {
	cat >"$1.conf" <<-CONF
		[acme]
		directory = $ACME_DIRECTORY
		ca_bundle = $CA_BUNDLE
		email = ops@example.com

		[store]
		state_dir = $1

		[http]
		listen = 127.0.0.1:$HTTP01_PORT

		[api]
		socket = $1/api.sock

		[preflight]
		enabled = false
	CONF
}

api() { curl -s --max-time 10 --unix-socket "$STATE/api.sock" "http://certherd$1"; }
status_ok() {
	[ -S "$1/api.sock" ] &&
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --unix-socket "$1/api.sock" http://certherd/v1/status)" = 200 ]
}
# metric NAME_AND_LABELS: its value in /metrics (empty if absent)
metric() { api /metrics | awk -v m="$1" '$1 == m { print $2 }'; }

# start_daemon STATE LOG: launch, wait (cap 60 s) for /v1/status; sets
# DAEMON and START_S (seconds from launch to the first 200)
start_daemon() {
	local st=$1 t0 i
	conf "$st"
	t0=$(now)
	"$CERTHERD" -c "$st.conf" serve >>"$2" 2>&1 &
	DAEMON=$!
	for ((i = 0; i < 12000; i++)); do
		status_ok "$st" && break
		kill -0 "$DAEMON" 2>/dev/null || { log "daemon exited; see $2"; tail -n 5 "$2" >&2; return 1; }
		sleep 0.005
	done
	START_S=$(calc "$(now) - $t0")
	status_ok "$st"
}

stop_daemon() {
	local i
	[ -n "$DAEMON" ] || return 0
	kill -TERM "$DAEMON" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	DAEMON=""
}

# count STATE: domains in STATE (from the daemon's API)
count() { api /v1/status | jq -r ".domains.\"$1\" // 0"; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
pct() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }'; }
maxv() { sort -n | tail -n1; }

# --------------------------------------------------------------- populate
# The account: one start on an empty store registers it with this Pebble
# (the key lands in STATE/accounts/); every store used later gets a copy,
# so each start does what a restart does: load the key, look the account
# up, no registration.
make_account() {
	local st=$WORK/acct
	STATE=$st
	start_daemon "$st" "$WORK/acct.log" || die "the daemon does not start; see $WORK/acct.log"
	stop_daemon
	[ -d "$st/accounts" ] || die "no account directory after the first start"
}

populate_fast() {
	local line
	log "populate: $N domains, $DUE % due (bench/populate)"
	line=$("$POPULATE" "$PRISTINE" --domains "$N" --due "$DUE") || die "populate failed"
	POP_INFO="bench/populate (fast path): $line"
	log "  $line"
}

# The slow path: the daemon obtains every certificate from Pebble.
populate_pebble() {
	local t0 last=-1 since=$SECONDS v i
	STATE=$PRISTINE
	t0=$SECONDS
	log "populate: $N domains through Pebble (POST 1,000 at a time)"
	start_daemon "$STATE" "$WORK/populate.log" || die "daemon does not start"
	for ((i = 1; i <= N; i += 1000)); do
		seq "$i" $((i + 999 > N ? N : i + 999)) | awk '{ printf "p%06d.bench.test\n", $1 }' |
			jq -R . | jq -sc '{names: .}' |
			curl -s -o /dev/null --max-time 60 --unix-socket "$STATE/api.sock" \
				-H 'Content-Type: application/json' --data-binary @- http://certherd/v1/domains
	done
	WEDGES=0
	while :; do
		v=$(count valid)
		[ "${v:-0}" -ge "$N" ] && break
		if [ "$v" != "$last" ]; then last=$v since=$SECONDS; fi
		if [ $((SECONDS - since)) -ge 30 ]; then
			WEDGES=$((WEDGES + 1))
			log "  no new certificate for 30 s at $v/$N: restarting Pebble and the daemon"
			[ $WEDGES -gt 20 ] && die "Pebble wedged 20 times; use BENCH_POPULATE=fast"
			stop_daemon
			"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
			ca_start "$WORK/ca-$WEDGES" || die "CA does not restart"
			start_daemon "$STATE" "$WORK/populate.log" || die "daemon does not restart"
			since=$SECONDS
		fi
		sleep 2
	done
	stop_daemon
	rm -rf "$STATE/live" # the fast path writes no live/ either
	POP_INFO="through Pebble (slow path): $N certificates obtained by the daemon in $((SECONDS - t0)) s, $WEDGES Pebble restarts; all fresh, none due"
}

# ---------------------------------------------------------------- startup
measure_startups() {
	local k st=$WORK/start
	: >"$WORK/starts"
	: >"$WORK/start-rss"
	for ((k = 1; k <= STARTS; k++)); do
		rm -rf "$st"
		cp -a "$PRISTINE" "$st"
		STATE=$st
		start_daemon "$st" "$WORK/start-$k.log" || die "start $k failed; see $WORK/start-$k.log"
		proc_kb "$DAEMON" VmRSS >>"$WORK/start-rss"
		echo "$START_S" >>"$WORK/starts"
		log "  start $k: $(calc "$START_S * 1000" | xargs printf '%.0f') ms"
		stop_daemon
	done
	rm -rf "$st"
}

# ------------------------------------------------------------------- soak
# snap NAME: metrics and /proc figures into SNAP_<NAME>_*
snap() {
	local m
	m=$(api /metrics)
	eval "SNAP_${1}_passes=$(awk '$1 == "certherd_scheduler_passes_total" { print $2 }' <<<"$m")"
	eval "SNAP_${1}_wall=$(awk '$1 == "certherd_scheduler_pass_wall_seconds_total" { print $2 }' <<<"$m")"
	eval "SNAP_${1}_cpu=$(awk '$1 == "certherd_scheduler_pass_cpu_seconds_total" { print $2 }' <<<"$m")"
	eval "SNAP_${1}_maxwall=$(awk '$1 == "certherd_scheduler_pass_seconds{stat=\"max_wall\"}" { print $2 }' <<<"$m")"
	eval "SNAP_${1}_maxcpu=$(awk '$1 == "certherd_scheduler_pass_seconds{stat=\"max_cpu\"}" { print $2 }' <<<"$m")"
	eval "SNAP_${1}_proc=$(proc_cpu "$DAEMON")"
	eval "SNAP_${1}_rss=$(proc_kb "$DAEMON" VmRSS)"
	eval "SNAP_${1}_t=$(now)"
}
v() { eval "echo \${SNAP_$1_$2:-0}"; }

# backlog_done: the due renewals are all done (nothing renewing, nothing
# in flight, nothing due)
backlog_done() {
	local s
	s=$(api /v1/status) || return 1
	[ "$(jq -r '.domains.renewing + .domains.issuing + .in_flight' <<<"$s")" = 0 ] &&
		[ "$(sqlite3 "file:$STATE/certherd.db?mode=ro" "SELECT count(*) FROM domains WHERE next_attempt_ms <= $(date +%s%3N) AND status <> 6" 2>/dev/null)" = 0 ]
}

soak() {
	local t0 since last=-1 c rssmax=0 r i
	STATE=$WORK/soak
	cp -a "$PRISTINE" "$STATE"
	start_daemon "$STATE" "$WORK/soak.log" || die "soak start failed"
	snap start
	log "soak: renewal backlog ($NDUE due at start)"
	t0=$SECONDS since=$SECONDS BACKLOG_NOTE=""
	until backlog_done; do
		c=$(grep -c 'certificate renewed' "$WORK/soak.log")
		if [ "$c" != "$last" ]; then last=$c since=$SECONDS; fi
		if [ $((SECONDS - since)) -ge 30 ]; then
			if "$REPO/tests/ca/ca.sh" wedged "$CUR_CA" 2>/dev/null; then
				BACKLOG_NOTE="Pebble wedged after $c renewals (docs/pebble.md): the backlog window ends there; "
			else
				BACKLOG_NOTE="no renewal for 30 s after $c (Pebble not wedged): see soak.log; "
			fi
			log "  $BACKLOG_NOTE"
			break
		fi
		[ $((SECONDS - t0)) -ge 600 ] && { BACKLOG_NOTE="backlog not done after 600 s; "; break; }
		sleep 0.5
	done
	RENEWED=$(grep -c 'certificate renewed' "$WORK/soak.log")
	BACKLOG_S=$((SECONDS - t0))
	snap backlog
	log "soak: backlog done ($RENEWED renewed in ${BACKLOG_S}s); ${SOAK}s of idle passes"
	for ((i = 0; i < SOAK; i += 5)); do
		sleep 5
		r=$(proc_kb "$DAEMON" VmRSS)
		[ "${r:-0}" -gt "$rssmax" ] && rssmax=$r
	done
	snap idle
	SOAK_RSSMAX=$rssmax
	log "POST -> valid: $POSTS domains, one at a time"
	local names=() k
	for ((k = 1; k <= POSTS; k++)); do names+=("$(printf 'q%03d.post.test' "$k")"); done
	python3 "$REPO/bench/postvalid.py" "$STATE/api.sock" --spacing 0.2 --timeout 60 "${names[@]}" \
		>"$WORK/postvalid.txt" 2>"$WORK/postvalid.err"
	snap post
	HWM=$(proc_kb "$DAEMON" VmHWM)
	for k in 1 2 3; do
		verify_live "$STATE" "q00$k.post.test" || POST_NOTE="live/q00$k.post.test does not verify; "
	done
	stop_daemon
}

# verify_live STATE NAME: live/NAME/fullchain.pem chains to Pebble's root
# and names NAME
verify_live() {
	local f=$1/live/$2/fullchain.pem
	[ -s "$f" ] &&
		openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$f" "$f" >/dev/null 2>&1 &&
		openssl x509 -noout -ext subjectAltName -in "$f" 2>/dev/null | grep -q "DNS:$2"
}

# ------------------------------------------------------------------- mass
# Every domain due at once, as after a mass revocation or an operator's
# renew-all (the API's renew does the same to one row: next attempt =
# now): the scheduler's worst case, a due backlog of N. The daemon runs
# MASS_S seconds against Pebble; passes and renewals are counted.
# Each attempt on a fresh CA (the account key is reused; the new Pebble
# registers it again at start); when Pebble wedges during it, once more.
mass() {
	local c0 k
	MASS_NOTE=""
	for k in 1 2; do
		"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
		ca_start "$WORK/ca-mass-$k" || die "the CA does not restart"
		STATE=$WORK/mass
		rm -rf "$STATE"
		cp -a "$PRISTINE" "$STATE"
		sqlite3 "$STATE/certherd.db" "UPDATE domains SET next_attempt_ms = $(date +%s%3N) WHERE status <> 6" ||
			die "cannot make every domain due"
		log "mass renewal: all $N due, ${MASS_S}s (attempt $k)"
		start_daemon "$STATE" "$WORK/mass-$k.log" || die "mass start failed"
		snap m0
		c0=$(grep -c 'certificate renewed' "$WORK/mass-$k.log")
		sleep "$MASS_S"
		snap m1
		MASS_RENEWED=$(($(grep -c 'certificate renewed' "$WORK/mass-$k.log") - c0))
		MASS_HWM=$(proc_kb "$DAEMON" VmHWM)
		stop_daemon
		rm -rf "$STATE"
		"$REPO/tests/ca/ca.sh" wedged "$CUR_CA" 2>/dev/null || break
		MASS_NOTE="${MASS_NOTE}Pebble wedged during all-due attempt $k after $MASS_RENEWED renewals (docs/pebble.md)$([ $k = 1 ] && echo ', run again on a fresh CA'); "
		log "  $MASS_NOTE"
	done
}

# ------------------------------------------------------------------ peers
peer_lego() { # peer_lego NAME
	LEGO_CA_CERTIFICATES=$CA_BUNDLE timeout 120 lego --server "$ACME_DIRECTORY" \
		--accept-tos --email a@b.test --path "$WORK/lego" --http \
		--http.port "127.0.0.1:$HTTP01_PORT" --domains "$1" run >>"$WORK/lego.log" 2>&1 &&
		[ -s "$WORK/lego/certificates/$1.crt" ]
}
peer_certbot() { # peer_certbot NAME
	REQUESTS_CA_BUNDLE=$CA_BUNDLE timeout 120 certbot certonly --standalone \
		--non-interactive --agree-tos -m a@b.test --no-eff-email \
		--server "$ACME_DIRECTORY" --preferred-challenges http \
		--http-01-address 127.0.0.1 --http-01-port "$HTTP01_PORT" \
		--config-dir "$WORK/certbot/etc" --work-dir "$WORK/certbot/work" \
		--logs-dir "$WORK/certbot/logs" -d "$1" >>"$WORK/certbot.log" 2>&1 &&
		[ -s "$WORK/certbot/etc/live/$1/fullchain.pem" ]
}
peers() {
	local tool k t0 ok
	for tool in lego certbot; do
		: >"$WORK/$tool.times"
		# each tool on a fresh CA: the same start for both
		"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
		ca_start "$WORK/ca-$tool" || die "the CA does not restart"
		log "peer: $tool, 1 warm-up + $PEER_RUNS runs"
		"peer_$tool" "w0.$tool.test" || log "  $tool warm-up failed; see $WORK/$tool.log"
		ok=0
		for ((k = 1; k <= PEER_RUNS; k++)); do
			t0=$(now)
			if "peer_$tool" "r$k.$tool.test"; then
				calc "($(now) - $t0) * 1000" >>"$WORK/$tool.times"
				echo >>"$WORK/$tool.times"
				ok=$((ok + 1))
			elif "$REPO/tests/ca/ca.sh" wedged "$CUR_CA" 2>/dev/null; then
				PEER_NOTE="${PEER_NOTE:-}Pebble wedged during $tool run $k (not counted; CA restarted, account registered again); "
				"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
				ca_start "$WORK/ca-$tool-$k" || die "the CA does not restart"
				"peer_$tool" "w$k.$tool.test" >/dev/null 2>&1
			fi
		done
		eval "PEER_OK_$tool=$ok"
	done
}

# ----------------------------------------------------------------- report
T_START=$SECONDS
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
ca_start "$WORK/ca" || die "the CA does not start"
make_account
PRISTINE=$WORK/pristine
mkdir -p "$PRISTINE"
chmod 700 "$PRISTINE"
cp -a "$WORK/acct/accounts" "$PRISTINE/"
"populate_$MODE"
DBSIZE=$(stat -c %s "$PRISTINE/certherd.db")
# One stored certificate checked from outside: parses, its signature
# verifies against the chain stored with it, it names its domain.
sqlite3 "file:$PRISTINE/certherd.db?mode=ro" \
	"SELECT chain_pem FROM certificates WHERE domain = 'p000001.bench.test' AND current = 1" >"$WORK/sample.pem"
if openssl verify -partial_chain -CAfile "$WORK/sample.pem" "$WORK/sample.pem" >/dev/null 2>&1 &&
	openssl x509 -noout -ext subjectAltName -in "$WORK/sample.pem" 2>/dev/null | grep -q 'DNS:p000001.bench.test$'; then
	SAMPLE=yes
else
	SAMPLE="NO (see $WORK/sample.pem)"
fi
NDUE=$(sqlite3 "file:$PRISTINE/certherd.db?mode=ro" "SELECT count(*) FROM domains WHERE next_attempt_ms <= $(date +%s%3N)")
NCERT=$(sqlite3 "file:$PRISTINE/certherd.db?mode=ro" "SELECT count(*) FROM certificates WHERE current = 1")
log "start-up: $STARTS starts"
measure_startups
soak
[ "$MASS_S" -gt 0 ] && mass
if [ "${BENCH_PEERS:-1}" = 1 ]; then peers; fi
"$REPO/tests/ca/ca.sh" stop "$CUR_CA" >/dev/null 2>&1
CUR_CA=""

: >"$OUT"
say "## certherd daemon benchmark (bench/serve.sh)"
say ""
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the run: $LOAD0"
say "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
say "- certherd $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src meson.build bench 2>/dev/null || echo '+dirty') (build-bench, buildtype=release); Pebble $PEBBLE_VERSION, PEBBLE_NONCEREJECT=0"
say "- command: \`sudo bench/serve.sh$([ $QUICK = 1 ] && echo ' --quick')\`$(env | grep -o '^BENCH_[A-Z_]*=[^ ]*' | sort | tr '\n' ' ' | sed 's/^/ with /; s/ $//; s/^ with $//')"
say "- store: $N domains, $NCERT with a current certificate, $NDUE due at start; database $(mib $((DBSIZE / 1024))) MiB; populated $POP_INFO"
say "- the stored certificate of p000001.bench.test parses, verifies against its stored chain and names its domain: $SAMPLE"
say ""
say "| figure | measured | target | verdict |"
say "|---|---:|---:|---|"
SMED=$(median <"$WORK/starts") SMAX=$(maxv <"$WORK/starts")
verdict() { [ "$(calc "$1")" = 1 ] && echo PASS || echo FAIL; }
say "| start-up until GET /v1/status answers, median of $STARTS (max) | $(calc "$SMED * 1000" | xargs printf '%.0f') ms ($(calc "$SMAX * 1000" | xargs printf '%.0f') ms) | < 1 s | $(verdict "$SMAX < 1") |"
RSS_START=$(median <"$WORK/start-rss")
RSS_END=$SOAK_RSSMAX
[ "$(v post rss)" -gt "$RSS_END" ] && RSS_END=$(v post rss)
say "| RSS right after start (median of $STARTS) | $(mib "$RSS_START") MiB | < 200 MiB | $(verdict "$RSS_START < 200 * 1024") |"
say "| RSS after the backlog, ${SOAK} s of passes and the POSTs (largest sample) | $(mib "$RSS_END") MiB | < 200 MiB | $(verdict "$RSS_END < 200 * 1024") |"
say "| peak RSS of the whole soak (VmHWM) | $(mib "$HWM") MiB | < 200 MiB | $(verdict "$HWM < 200 * 1024") |"
PMAXW=$(v post maxwall) PMAXC=$(v post maxcpu)
say "| longest scheduler pass since start: loop-thread CPU (its longest wall time) | $(calc "$PMAXC * 1000" | xargs printf '%.2f') ms ($(calc "$PMAXW * 1000" | xargs printf '%.2f') ms) | < 50 ms CPU | $(verdict "$PMAXC < 0.05") |"
# window NAME FROM TO [RENEWED]: mean pass (loop-thread CPU, wall); the
# whole process's CPU per pass (idle) or per renewal (RENEWED given: the
# passes are then a small part of it)
window() {
	local np dw dc dp per
	np=$(calc "$(v "$3" passes) - $(v "$2" passes)")
	dw=$(calc "$(v "$3" wall) - $(v "$2" wall)")
	dc=$(calc "$(v "$3" cpu) - $(v "$2" cpu)")
	dp=$(calc "$(v "$3" proc) - $(v "$2" proc)")
	[ "$np" -gt 0 ] || return 0
	if [ -n "${4:-}" ] && [ "$4" -gt 0 ]; then
		per="; process CPU $(calc "$dp * 1000 / $4" | xargs printf '%.2f') ms per renewal"
	else
		per="; process CPU $(calc "$dp * 1000 / $np" | xargs printf '%.2f') ms per pass"
	fi
	say "| mean pass, $1 ($np passes in $(calc "$(v "$3" t) - $(v "$2" t)" | xargs printf '%.0f') s): loop-thread CPU (wall)$per | $(calc "$dc * 1000 / $np" | xargs printf '%.2f') ms ($(calc "$dw * 1000 / $np" | xargs printf '%.2f') ms) | < 50 ms CPU | $(verdict "$dc / $np < 0.05") |"
}
window "renewal backlog ($RENEWED renewed in ${BACKLOG_S} s)" start backlog "$RENEWED"
window "idle" backlog idle
if [ "$MASS_S" -gt 0 ]; then
	window "all $N due ($MASS_RENEWED renewed in ${MASS_S} s)" m0 m1 "$MASS_RENEWED"
	say "| longest pass with all $N due: loop-thread CPU (wall); peak RSS | $(calc "$(v m1 maxcpu) * 1000" | xargs printf '%.2f') ms ($(calc "$(v m1 maxwall) * 1000" | xargs printf '%.2f') ms); $(mib "$MASS_HWM") MiB | < 50 ms CPU; < 200 MiB | $(verdict "$(v m1 maxcpu) < 0.05 && $MASS_HWM < 200 * 1024") |"
fi
cut -d' ' -f2 "$WORK/postvalid.txt" >"$WORK/post.ms"
POK=$(grep -c ' valid$' "$WORK/postvalid.txt")
PMED=$(median <"$WORK/post.ms")
say "| POST /v1/domains -> valid, $POK/$POSTS valid: median / p90 / max | $(printf '%.0f' "$PMED") / $(pct 90 <"$WORK/post.ms" | xargs printf '%.0f') / $(maxv <"$WORK/post.ms" | xargs printf '%.0f') ms | (none) | |"
say ""
NOTES="${BACKLOG_NOTE}${POST_NOTE:-}${MASS_NOTE:-}${PEER_NOTE:-}"
[ -n "$NOTES" ] && say "Notes: $NOTES" && say ""
if [ "${BENCH_PEERS:-1}" = 1 ]; then
	say "One new certificate from the same Pebble: certherd's POST -> valid against a whole one-shot client run ($PEER_RUNS runs each, after a warm-up that registered the account):"
	say ""
	say "| client | median ms | max ms | ok | ÷ certherd median |"
	say "|---|---:|---:|---:|---:|"
	say "| certherd serve (POST -> valid) | $(printf '%.0f' "$PMED") | $(maxv <"$WORK/post.ms" | xargs printf '%.0f') | $POK/$POSTS | 1.0x |"
	for tool in lego certbot; do
		m=$(median <"$WORK/$tool.times")
		[ "$m" = - ] && { say "| $tool | - | - | 0/$PEER_RUNS | - |"; continue; }
		say "| $tool $(dpkg-query -W -f='${Version}' "$tool" 2>/dev/null) | $(printf '%.0f' "$m") | $(maxv <"$WORK/$tool.times" | xargs printf '%.0f') | $(eval "echo \$PEER_OK_$tool")/$PEER_RUNS | $(calc "$m / $PMED" | xargs printf '%.1f')x |"
	done
	say ""
fi
say "total bench time: $((SECONDS - T_START)) s"

if [ $WRITE = 1 ]; then
	python3 - "$REPO/bench/RESULTS.md" "$OUT" <<-'PY'
		import sys
		path, new = sys.argv[1], open(sys.argv[2]).read()
		begin, end = "<!-- bench/serve.sh: begin -->\n", "<!-- bench/serve.sh: end -->\n"
		text = open(path).read()
		block = begin + new + end
		if begin in text and end in text:
		    a = text.index(begin)
		    b = text.index(end) + len(end)
		    text = text[:a] + block + text[b:]
		else:
		    text = text.rstrip("\n") + "\n\n" + block
		open(path, "w").write(text)
	PY
	log "wrote the section of bench/RESULTS.md"
fi
