# shellcheck shell=bash
# Helpers for certherd's integration tests. A test is tests/integration/t_*.sh:
#
#   #!/bin/bash
#   # asan: yes            <- also run against build-asan's binary
#   # timeout: 900         <- seconds (default 600)
#   . "$(dirname "$0")/lib.sh"
#   ca_start                       # Pebble + DNS; sources ca.env
#   check "issues example.test" "$CERTHERD" ... 
#   check "cert is good" verify_cert "$TEST_TMP/out" example.test
#   finish
#
# tests/run.sh runs each file in its own network namespace (tests/netns.sh)
# with CERTHERD (the binary), SRC (repo root) and TEST_TMP (fresh empty
# directory) set; files also run standalone (defaults below, but then the
# fixed CA ports are the host's). Output is TAP-like: `ok - DESC` and
# `not ok - DESC`, diagnostics on `# ` lines. Put every log a failure needs
# under TEST_TMP as *.log: run.sh prints them when the file fails.
#
# Helpers:
#   ok DESC / fail DESC [DETAIL...] / skip DESC REASON    record one result
#   check DESC CMD...     run CMD (output to TEST_TMP/check.log); ok if it
#                         exits 0, else fail and show its output
#   check_fails DESC CMD...   the same, ok if CMD exits nonzero
#   finish                print the summary; exit 1 if anything failed or
#                         nothing was checked (call it last)
#   ca_start [DIR]        start the test CA (knobs: PEBBLE_* variables, see
#                         tests/ca/ca.sh) in DIR (default TEST_TMP/ca), export
#                         everything in its ca.env, stop it on exit
#   ca_stop [DIR]         stop it now
#   verify_cert DIR DOMAIN   DIR/live/DOMAIN/{cert,chain,fullchain,privkey}.pem
#                         chains to PEBBLE_ROOT, names DOMAIN, matches its key,
#                         fullchain = cert + chain, privkey mode 0600
#   bg NAME CMD...        run CMD in the background, output to TEST_TMP/NAME.log,
#                         pid in $BG_PID; killed on exit
#   wait_for SECONDS CMD...   poll CMD every 0.1 s until it succeeds (status 1
#                         on timeout)
#   on_exit CMD...        run CMD (eval'd) when the test exits, LIFO
#   note TEXT...          print a `# ` diagnostic line

set -u

SRC=${SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CERTHERD=${CERTHERD:-$SRC/build/certherd}
if [ -z "${TEST_TMP:-}" ]; then
	TEST_TMP=$(mktemp -d "/tmp/certherd-$(basename "$0" .sh).XXXXXX")
fi
mkdir -p "$TEST_TMP"
export SRC CERTHERD TEST_TMP

T_NAME=$(basename "$0")
T_PASS=0
T_FAIL=0
T_SKIP=0
T_FINISHED=0
T_EXIT_CMDS=()

note() { printf '# %s\n' "$*"; }

ok() {
	T_PASS=$((T_PASS + 1))
	printf 'ok - %s\n' "$*"
}

fail() {
	local desc=$1
	shift
	T_FAIL=$((T_FAIL + 1))
	printf 'not ok - %s\n' "$desc"
	local line
	for line in "$@"; do printf '#   %s\n' "$line"; done
}

skip() {
	T_SKIP=$((T_SKIP + 1))
	printf 'ok - %s # SKIP %s\n' "$1" "${2:-}"
}

# check DESC CMD... : ok if CMD succeeds; on failure show its output.
check() {
	local desc=$1 rc
	shift
	"$@" >"$TEST_TMP/check.log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		ok "$desc"
	else
		fail "$desc" "command (exit $rc): $*"
		tail -n 40 "$TEST_TMP/check.log" | sed 's/^/#   | /'
		# A wedged test CA fails every check after this one, each after
		# its own wait: stop here, finish tells run.sh to run the file
		# again on a fresh CA (docs/pebble.md).
		if [ -n "${CA_DIR:-}" ] && [ -f "$CA_DIR/ca.env" ] &&
			"$SRC/tests/ca/ca.sh" wedged "$CA_DIR" 2>/dev/null; then
			note "the test CA is wedged: stopping this run"
			T_WEDGED=1
			finish
		fi
	fi
	return $rc
}

check_fails() {
	local desc=$1 rc
	shift
	"$@" >"$TEST_TMP/check.log" 2>&1
	rc=$?
	if [ $rc != 0 ]; then
		ok "$desc"
		return 0
	fi
	fail "$desc" "command unexpectedly succeeded: $*"
	tail -n 40 "$TEST_TMP/check.log" | sed 's/^/#   | /'
	return 1
}

finish() {
	T_FINISHED=1
	if [ -s "$TEST_TMP/pebble-wedges.log" ]; then
		sed 's/^/# /' "$TEST_TMP/pebble-wedges.log"
	fi
	if [ $((T_PASS + T_FAIL)) = 0 ]; then
		fail "$T_NAME checked nothing"
	fi
	note "$T_NAME: $T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" = 0 ] && exit 0
	# Failures while the test CA is wedged (docs/pebble.md) say nothing
	# about certherd: tell run.sh, which runs the file once more on a
	# fresh CA. A second failure counts.
	# So do failures after the CA was restarted in place (run_issuing,
	# or a test's own restarts, all logged in pebble-wedges.log): it
	# forgot every account and order the test's state still names.
	if [ -n "${CA_DIR:-}" ] && [ -f "$CA_DIR/ca.env" ] &&
		{ [ -n "${T_WEDGED:-}" ] || [ -s "$TEST_TMP/pebble-wedges.log" ] ||
			"$SRC/tests/ca/ca.sh" wedged "$CA_DIR" 2>/dev/null; }; then
		echo "# PEBBLE-WEDGED: the test CA stopped answering; goroutine dump in $CA_DIR/pebble.log"
		exit 75
	fi
	exit 1
}

on_exit() { T_EXIT_CMDS+=("$*"); }

_t_on_exit() {
	local rc=$? i
	trap - EXIT
	if [ "$T_FINISHED" = 0 ]; then
		fail "$T_NAME exited early (status $rc) before finish"
		rc=1
	fi
	for ((i = ${#T_EXIT_CMDS[@]} - 1; i >= 0; i--)); do
		eval "${T_EXIT_CMDS[$i]}" || true
	done
	exit $rc
}
trap _t_on_exit EXIT
# Make timeouts and ^C run the EXIT trap (and so stop the CA).
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

ca_start() {
	local dir=${1:-$TEST_TMP/ca}
	"$SRC/tests/ca/ca.sh" start "$dir" >/dev/null || return 1
	on_exit "'$SRC/tests/ca/ca.sh' stop '$dir' >/dev/null 2>&1"
	set -a
	# shellcheck disable=SC1091
	. "$dir/ca.env"
	set +a
}

# run_issuing CMD... : run CMD (a certherd command against the running test
# CA). If Pebble wedges meanwhile (tests/ca/ca.sh wedged: its store lock
# leaked, docs/pebble.md), kill CMD, restart the CA in place with the same
# knobs and run CMD again: at most twice, each time recorded in
# TEST_TMP/pebble-wedges.log (printed by finish). Returns CMD's status.
# The restarted CA has forgotten every account and order: a later
# failure may come from that (an account the state still names), so
# finish treats a run with a restart like a wedged one.
run_issuing() {
	local tries=0 pid rc
	while :; do
		"$@" &
		pid=$!
		while kill -0 "$pid" 2>/dev/null; do
			sleep 2
			if kill -0 "$pid" 2>/dev/null &&
				"$SRC/tests/ca/ca.sh" wedged "$CA_DIR" 2>/dev/null; then
				kill "$pid" 2>/dev/null
				wait "$pid" 2>/dev/null
				tries=$((tries + 1))
				echo "Pebble wedged during: $* (restart $tries)" >>"$TEST_TMP/pebble-wedges.log"
				[ $tries -le 2 ] || return 124
				"$SRC/tests/ca/ca.sh" stop "$CA_DIR" >/dev/null 2>&1
				"$SRC/tests/ca/ca.sh" start "$CA_DIR" >/dev/null || return 125
				set -a
				# shellcheck disable=SC1091
				. "$CA_DIR/ca.env"
				set +a
				continue 2
			fi
		done
		wait "$pid"
		rc=$?
		return $rc
	done
}

ca_stop() {
	"$SRC/tests/ca/ca.sh" stop "${1:-$TEST_TMP/ca}"
}

bg() {
	local name=$1
	shift
	"$@" </dev/null >>"$TEST_TMP/$name.log" 2>&1 &
	BG_PID=$!
	on_exit "kill -TERM $BG_PID 2>/dev/null; sleep 0.2; kill -KILL $BG_PID 2>/dev/null"
}

wait_for() {
	local secs=$1 deadline
	shift
	deadline=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# The certificates of PEM files, in order, as one line of base64 (DER is
# canonical, so equal lines mean the same certificates in the same order).
pem_certs() {
	cat "$@" | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' |
		tr -d ' \t\r\n'
}

# nginx_head NG ERROR_LOG LEVEL [nobody]: the start of an nginx.conf for a
# test's own nginx (one worker, temporary files under NG), up to and with
# "http {" and its temp paths; the test appends its server blocks and the
# closing "}". Under bg, run it with -g 'daemon off;'. Without "nobody" it
# runs as root with its pid file in NG; with it, it is the one nginx_nobody
# set up (no user line, the pid file in NG/logs, which nobody may write).
nginx_head() {
	local pid=$1/nginx.pid user="user root;"
	if [ "${4:-}" = nobody ]; then
		pid=$1/logs/nginx.pid
		user=
	fi
	mkdir -p "$1/tmp"
	cat <<NGINX_HEAD
$user
worker_processes 1;
pid $pid;
error_log $2 $3;
events { worker_connections 1024; }
http {
	client_body_temp_path $1/tmp/body;
	proxy_temp_path $1/tmp/proxy;
	fastcgi_temp_path $1/tmp/fastcgi;
	uwsgi_temp_path $1/tmp/uwsgi;
	scgi_temp_path $1/tmp/scgi;
NGINX_HEAD
}

# nginx_nobody NG: an nginx run unprivileged, as certherd's nginx mode
# drives it (the tests of docs/nginx.md), its files under NG: conf/ (the
# test writes conf/nginx.conf, starting with `nginx_head NG
# NG/logs/error.log LEVEL nobody`), logs/ (error.log, nginx.pid) and tmp/,
# the last two owned by nobody. Sets NGINX_CMD, the command that starts it
# (and checks and reloads it, as [nginx] nginx = runs it) as nobody; it is
# stopped when the test exits. The test's TEST_TMP must be 0755.
nginx_nobody() {
	local bin
	bin=$(command -v nginx || echo /usr/sbin/nginx)
	NGINX_DIR=$1
	mkdir -p "$1/conf" "$1/logs" "$1/tmp"
	chown -R nobody:nogroup "$1/logs" "$1/tmp"
	NGINX_CMD="setpriv --reuid=nobody --regid=nogroup --clear-groups -- $bin -p $1 -c $1/conf/nginx.conf -e $1/logs/error.log"
	on_exit "[ -s $1/logs/nginx.pid ] && kill -TERM \$(cat $1/logs/nginx.pid) 2>/dev/null"
}
# nginx_nobody_start: start nginx_nobody's nginx (its output appended to
# TEST_TMP/nginx-start.log); returns once it wrote its pid file.
nginx_nobody_start() {
	rm -f "$NGINX_DIR/logs/nginx.pid"
	$NGINX_CMD >>"$TEST_TMP/nginx-start.log" 2>&1
	wait_for 10 test -s "$NGINX_DIR/logs/nginx.pid"
}

# ---- certherd serve -------------------------------------------------------
# serve_conf PREFLIGHT [LINE...]: write $CONF for `certherd serve` against
# the test CA, state in $STATE, HTTP-01 on $HTTP01_PORT, API on
# $STATE/api.sock. PREFLIGHT: "dns" checks names against challtestsrv's
# DNS (which answers 127.0.0.1 for every name, ours), "off" turns the
# pre-flight off, "none" leaves [preflight] to the LINEs. Each LINE is
# appended as is (sections may repeat: "[acme]" "concurrency = 50").
serve_conf() {
	local pf=$1
	shift
	: "${STATE:=$TEST_TMP/state}" "${CONF:=$TEST_TMP/certherd.conf}"
	{
		printf '[acme]\ndirectory = %s\nca_bundle = %s\nemail = ops@example.com\n\n' \
			"$ACME_DIRECTORY" "$CA_BUNDLE"
		printf '[store]\nstate_dir = %s\n\n[http]\nlisten = 127.0.0.1:%s\n\n' \
			"$STATE" "$HTTP01_PORT"
		printf '[api]\nsocket = %s/api.sock\n\n' "$STATE"
		case $pf in
		dns) printf '[preflight]\nresolver = %s\naddresses = 127.0.0.1\n\n' "$DNS_SERVER" ;;
		off) printf '[preflight]\nenabled = false\n\n' ;;
		none) ;;
		*) echo "serve_conf: PREFLIGHT must be dns, off or none" >&2; return 2 ;;
		esac
		[ $# = 0 ] || printf '%s\n' "$@"
	} >"$CONF"
}
# ch ARG...: the certherd CLI on $CONF.
ch() { "$CERTHERD" -c "$CONF" "$@"; }
# serve_start [ARG...]: `certherd -c $CONF ARG... serve` in the background
# (SERVE_PID, log $TEST_TMP/serve.log); returns once its API answers.
serve_start() {
	bg serve "$CERTHERD" -c "$CONF" "$@" serve
	SERVE_PID=$BG_PID
	wait_for 30 sh -c '"$0" -c "$1" status >/dev/null 2>&1' "$CERTHERD" "$CONF"
}

# ari_certid_openssl CERT: the certificate's RFC 9773 identifier computed
# with openssl alone: base64url(AKI keyIdentifier) "." base64url(the DER
# content octets of its serial).
_b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
ari_certid_openssl() {
	local cert=$1 kid serial
	kid=$(openssl x509 -in "$cert" -noout -ext authorityKeyIdentifier |
		sed -n '2p' | sed 's/^ *//; s/^keyid://; s/://g')
	serial=$(openssl x509 -in "$cert" -noout -serial | sed 's/^serial=//')
	[ $((${#serial} % 2)) = 1 ] && serial=0$serial
	# DER INTEGER: a leading 00 keeps a serial with the high bit positive.
	case $serial in [89A-Fa-f]*) serial=00$serial ;; esac
	printf '%s.%s\n' "$(printf '%s' "$kid" | xxd -r -p | _b64url)" \
		"$(printf '%s' "$serial" | xxd -r -p | _b64url)"
}

# verify_cert DIR DOMAIN [SAN]: 0 if DIR/live/DOMAIN holds a good certificate for
# DOMAIN (or SAN: a wildcard lives in live/_wildcard.BASE) from the running
# test CA; otherwise prints why and returns 1.
verify_cert() {
	local d="$1/live/$2" domain=${3:-$2} f bad=0 mode
	for f in cert chain fullchain privkey; do
		[ -s "$d/$f.pem" ] || { echo "missing or empty: $d/$f.pem"; bad=1; }
	done
	[ $bad = 0 ] || return 1
	[ -n "${PEBBLE_ROOT:-}" ] || { echo "PEBBLE_ROOT unset (ca_start first)"; return 1; }
	if ! openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$d/chain.pem" "$d/cert.pem"; then
		echo "cert.pem does not verify to $PEBBLE_ROOT via chain.pem"
		bad=1
	fi
	if ! openssl x509 -noout -checkend 0 -in "$d/cert.pem" >/dev/null; then
		echo "cert.pem has expired"
		bad=1
	fi
	if ! openssl x509 -noout -ext subjectAltName -in "$d/cert.pem" |
		tail -n +2 | tr ',' '\n' | sed 's/^ *//' | grep -qxF "DNS:$domain"; then
		echo "subjectAltName lacks DNS:$domain:"
		openssl x509 -noout -ext subjectAltName -in "$d/cert.pem"
		bad=1
	fi
	if ! cmp -s <(openssl pkey -pubout -in "$d/privkey.pem") \
		<(openssl x509 -pubkey -noout -in "$d/cert.pem"); then
		echo "privkey.pem does not match cert.pem's public key"
		bad=1
	fi
	if [ "$(pem_certs "$d/fullchain.pem")" != "$(pem_certs "$d/cert.pem" "$d/chain.pem")" ]; then
		echo "fullchain.pem is not cert.pem followed by chain.pem"
		bad=1
	fi
	mode=$(stat -L -c %a "$d/privkey.pem")
	if [ "$mode" != 600 ]; then
		echo "privkey.pem has mode $mode, want 600"
		bad=1
	fi
	return $bad
}
