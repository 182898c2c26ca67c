#!/bin/bash
# The test CA used by certherd's integration tests, demo and benchmarks:
# Pebble (Let's Encrypt's test ACME server) plus pebble-challtestsrv as the
# DNS server that points every name at 127.0.0.1, all on loopback.
#
#   tests/ca/ca.sh start DIR    start both, write DIR/ca.env, print its path
#   tests/ca/ca.sh stop DIR     stop what `start DIR` started
#   tests/ca/ca.sh pause DIR    SIGSTOP Pebble (CA hangs; state is kept)
#   tests/ca/ca.sh resume DIR   SIGCONT Pebble
#   tests/ca/ca.sh wedged DIR   exit 0 if Pebble stopped answering for good
#                               (its store lock leaked; docs/pebble.md)
#
# DIR/ca.env is KEY='value' lines (source it, `set -a` to export):
#   ACME_DIRECTORY   https://127.0.0.1:14000/dir
#   CA_BUNDLE        PEM of the CA that signed Pebble's HTTPS certificate
#                    (freshly generated at every start; trust it for ACME)
#   PEBBLE_ROOT      Pebble's issuing root (/roots/0): the trust anchor for
#                    issued certificates (chains hold an intermediate)
#   PEBBLE_INTERMEDIATE  Pebble's intermediate (/intermediates/0)
#   PEBBLE_MGMT      https://127.0.0.1:15000 (Pebble management API)
#   CHALLTESTSRV_MGMT http://127.0.0.1:8055 (challtestsrv management API,
#                    e.g. POST /set-default-ipv4, /add-a, /clear-a)
#   DNS_SERVER       127.0.0.1:8053 (what Pebble resolves names with)
#   HTTP01_PORT      port Pebble connects to for HTTP-01 (our responder's)
#   TLSALPN01_PORT   port Pebble connects to for TLS-ALPN-01
#   PEBBLE_VERSION   Debian version of the pebble package in use
#   PEBBLE_BIN, CHALLTESTSRV_BIN, PEBBLE_PID, CHALLTESTSRV_PID, CA_DIR
#   PEBBLE_NONCEREJECT, PEBBLE_ALWAYS_VALID, PEBBLE_EAB, PEBBLE_PROFILES
#                    the effective knob values
#   EAB_KID, EAB_HMAC_KEY (base64url, no padding)  only when PEBBLE_EAB=1
#   PEBBLE_PROFILE_NAMES 'default shortlived'  only when PEBBLE_PROFILES=1
#
# Knobs read from the environment by `start`:
#   PEBBLE_BIN           default: pebble 2.10 under /opt/certherd/pebble-testing
#                        if present, else /usr/bin/pebble (2.4.0)
#   CHALLTESTSRV_BIN     default: pebble-challtestsrv next to PEBBLE_BIN
#   PEBBLE_NONCEREJECT   percent of good nonces rejected as badNonce
#                        (default 5, Pebble's own default; 0 turns it off)
#   PEBBLE_ALWAYS_VALID=1  skip challenge validation (benchmark ceilings only)
#   PEBBLE_EAB=1         require external account binding
#   PEBBLE_PROFILES=1    offer profiles "default" (90 days) and "shortlived"
#                        (6 days); needs pebble >= 2.7 (fails otherwise)
#   PEBBLE_HTTP01_PORT   default 5002;  PEBBLE_TLSALPN01_PORT  default 5001
#   PEBBLE_CERT_VALIDITY seconds of validity of issued certificates (2.4.0:
#                        5 years by default; 2.10: 90 days; with
#                        PEBBLE_PROFILES=1 it sets the "default" profile's)
#   PEBBLE_START_TIMEOUT seconds to wait for the directory (default 20)
#   PEBBLE_DNS_SERVER    ADDR:PORT Pebble resolves (and validates DNS-01)
#                        through instead of challtestsrv (e.g. a test's own
#                        BIND, tests/integration/named.sh); DNS_SERVER in
#                        ca.env stays challtestsrv's
# Always: PEBBLE_VA_NOSLEEP=1 (no artificial validation delay) and
# PEBBLE_AUTHZREUSE=0 (every order validates for real). Other PEBBLE_*
# variables (PEBBLE_CHAIN_LENGTH, PEBBLE_ALTERNATE_ROOTS, ...) pass through.
set -euo pipefail

ACME_PORT=14000
MGMT_PORT=15000
DNS_PORT=8053
CTS_MGMT_PORT=8055

die() { echo "ca.sh: $*" >&2; exit 1; }

# Is PID alive and one of our CA processes (not a recycled PID)?
our_pid() {
	local pid=$1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q pebble
}

pebble_version() {
	local bin=$1 cl v
	cl="$(dirname "$bin")/../share/doc/pebble/changelog.Debian.gz"
	if [ -r "$cl" ]; then
		v=$(zcat "$cl" | sed -n '1s/^pebble (\([^)]*\)).*/\1/p')
		[ -n "$v" ] && { echo "$v"; return; }
	fi
	v=$(dpkg-query -S "$(readlink -f "$bin")" 2>/dev/null | cut -d: -f1 | head -1)
	if [ -n "$v" ]; then dpkg-query -W -f='${Version}' "$v"; return; fi
	echo unknown
}

dump_logs() {
	local f
	for f in "$DIR/challtestsrv.log" "$DIR/pebble.log"; do
		[ -f "$f" ] || continue
		echo "----- $f" >&2
		tail -n 60 "$f" >&2
	done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

gen_https_certs() {
	# A small CA and a leaf for 127.0.0.1/::1/localhost, fresh every start.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DIR/pebble-https-ca.key" -out "$DIR/pebble-https-ca.pem" \
		-days 30 -subj "/CN=certherd test Pebble HTTPS CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DIR/pebble-https.key" -out "$DIR/pebble-https.csr" \
		-subj "/CN=localhost" 2>/dev/null
	cat >"$DIR/pebble-https.ext" <<-EOF
		basicConstraints=critical,CA:FALSE
		keyUsage=critical,digitalSignature
		extendedKeyUsage=serverAuth
		subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
	EOF
	openssl x509 -req -in "$DIR/pebble-https.csr" -days 30 \
		-CA "$DIR/pebble-https-ca.pem" -CAkey "$DIR/pebble-https-ca.key" \
		-CAcreateserial -extfile "$DIR/pebble-https.ext" \
		-out "$DIR/pebble-https.pem" 2>/dev/null
	chmod 600 "$DIR/pebble-https-ca.key" "$DIR/pebble-https.key"
}

write_config() {
	local eab=false keys="" profiles="" validity=""
	if [ "$PEBBLE_EAB" = 1 ]; then
		eab=true
		keys=$(printf ',\n    "externalAccountMACKeys": {\n      "%s": "%s",\n      "%s": "%s"\n    }' \
			"$EAB_KID" "$EAB_HMAC_KEY" "$EAB_KID2" "$EAB_HMAC_KEY2")
	fi
	# 2.4.0 only knows certificateValidityPeriod; 2.10 ignores it and takes
	# validity from its profiles, so PEBBLE_CERT_VALIDITY sets both (2.4.0
	# ignores the unknown "profiles" key).
	local dflt=7776000 dname="90 days"
	if [ -n "${PEBBLE_CERT_VALIDITY:-}" ]; then
		case "$PEBBLE_CERT_VALIDITY" in *[!0-9]* | "") die "PEBBLE_CERT_VALIDITY must be seconds";; esac
		validity=$(printf ',\n    "certificateValidityPeriod": %d' "$PEBBLE_CERT_VALIDITY")
		dflt=$PEBBLE_CERT_VALIDITY dname="$PEBBLE_CERT_VALIDITY s"
	fi
	if [ "$PEBBLE_PROFILES" = 1 ] || [ -n "${PEBBLE_CERT_VALIDITY:-}" ]; then
		profiles=',
    "profiles": {
      "default": {
        "description": "certherd test default profile ('"$dname"')",
        "validityPeriod": '"$dflt"'
      }'
		if [ "$PEBBLE_PROFILES" = 1 ]; then
			profiles="$profiles"',
      "shortlived": {
        "description": "certherd test short-lived profile (6 days)",
        "validityPeriod": 518400
      }'
		fi
		profiles="$profiles"'
    }'
	fi
	cat >"$DIR/pebble-config.json" <<-EOF
	{
	  "pebble": {
	    "listenAddress": "127.0.0.1:$ACME_PORT",
	    "managementListenAddress": "127.0.0.1:$MGMT_PORT",
	    "certificate": "$DIR/pebble-https.pem",
	    "privateKey": "$DIR/pebble-https.key",
	    "httpPort": $HTTP01_PORT,
	    "tlsPort": $TLSALPN01_PORT,
	    "ocspResponderURL": "",
	    "externalAccountBindingRequired": $eab$keys$profiles$validity
	  }
	}
	EOF
}

b64url() { openssl rand "$1" | basenc --base64url -w0 | tr -d '='; }

cmd_start() {
	if [ -f "$DIR/ca.env" ]; then
		local old_p old_c
		old_p=$(sed -n "s/^PEBBLE_PID='\(.*\)'$/\1/p" "$DIR/ca.env")
		old_c=$(sed -n "s/^CHALLTESTSRV_PID='\(.*\)'$/\1/p" "$DIR/ca.env")
		if our_pid "$old_p" || our_pid "$old_c"; then
			die "a CA from $DIR is still running; run: $0 stop $DIR"
		fi
	fi
	rm -f "$DIR/ca.env"

	PEBBLE_BIN=${PEBBLE_BIN:-}
	if [ -z "$PEBBLE_BIN" ]; then
		if [ -x /opt/certherd/pebble-testing/usr/bin/pebble ]; then
			PEBBLE_BIN=/opt/certherd/pebble-testing/usr/bin/pebble
		else
			PEBBLE_BIN=/usr/bin/pebble
		fi
	fi
	CHALLTESTSRV_BIN=${CHALLTESTSRV_BIN:-$(dirname "$PEBBLE_BIN")/pebble-challtestsrv}
	[ -x "$PEBBLE_BIN" ] || die "no pebble at $PEBBLE_BIN (run scripts/install-deps.sh)"
	[ -x "$CHALLTESTSRV_BIN" ] || die "no pebble-challtestsrv at $CHALLTESTSRV_BIN"
	PEBBLE_VERSION=$(pebble_version "$PEBBLE_BIN")

	PEBBLE_NONCEREJECT=${PEBBLE_NONCEREJECT:-5}
	PEBBLE_ALWAYS_VALID=${PEBBLE_ALWAYS_VALID:-0}
	PEBBLE_EAB=${PEBBLE_EAB:-0}
	PEBBLE_PROFILES=${PEBBLE_PROFILES:-0}
	HTTP01_PORT=${PEBBLE_HTTP01_PORT:-5002}
	TLSALPN01_PORT=${PEBBLE_TLSALPN01_PORT:-5001}
	local timeout=${PEBBLE_START_TIMEOUT:-20}
	case "$PEBBLE_NONCEREJECT" in *[!0-9]* | "") die "PEBBLE_NONCEREJECT must be a percentage";; esac

	local p
	for p in $ACME_PORT $MGMT_PORT $DNS_PORT $CTS_MGMT_PORT; do
		port_busy "$p" && die "port $p already in use on this host/netns (another CA running? use tests/netns.sh)"
	done

	EAB_KID="" EAB_HMAC_KEY="" EAB_KID2="" EAB_HMAC_KEY2=""
	if [ "$PEBBLE_EAB" = 1 ]; then
		# 48 random bytes: 64 base64url characters, no padding question.
		EAB_KID=kid-1 EAB_HMAC_KEY=$(b64url 48)
		EAB_KID2=kid-2 EAB_HMAC_KEY2=$(b64url 48)
	fi

	gen_https_certs
	write_config
	: >"$DIR/pebble.log"
	: >"$DIR/challtestsrv.log"

	# challtestsrv: only the DNS server and its management API. The DNS
	# flag is -dns01 in 2.4.0 and -dnsserver in 2.10; 2.10 also has DoH.
	local help dnsflag
	help=$("$CHALLTESTSRV_BIN" -h 2>&1 || true)
	local -a cts_args=(-management "127.0.0.1:$CTS_MGMT_PORT"
		-defaultIPv4 127.0.0.1 -defaultIPv6 ""
		-http01 "" -https01 "" -tlsalpn01 "")
	if grep -q -- '-dnsserver' <<<"$help"; then dnsflag=-dnsserver; else dnsflag=-dns01; fi
	cts_args+=("$dnsflag" "127.0.0.1:$DNS_PORT")
	grep -q -- '-doh ' <<<"$help" && cts_args+=(-doh "")

	"$CHALLTESTSRV_BIN" "${cts_args[@]}" </dev/null >>"$DIR/challtestsrv.log" 2>&1 &
	CHALLTESTSRV_PID=$!

	(
		unset PEBBLE_VA_ALWAYS_VALID
		export PEBBLE_VA_NOSLEEP=${PEBBLE_VA_NOSLEEP:-1} PEBBLE_AUTHZREUSE=${PEBBLE_AUTHZREUSE:-0}
		export PEBBLE_WFE_NONCEREJECT=$PEBBLE_NONCEREJECT
		[ "$PEBBLE_ALWAYS_VALID" = 1 ] && export PEBBLE_VA_ALWAYS_VALID=1
		cd "$DIR"
		exec "$PEBBLE_BIN" -config "$DIR/pebble-config.json" \
			-dnsserver "${PEBBLE_DNS_SERVER:-127.0.0.1:$DNS_PORT}"
	) </dev/null >>"$DIR/pebble.log" 2>&1 &
	PEBBLE_PID=$!

	local deadline=$((SECONDS + timeout)) up=0
	while [ $SECONDS -lt $deadline ]; do
		if ! kill -0 "$PEBBLE_PID" 2>/dev/null || ! kill -0 "$CHALLTESTSRV_PID" 2>/dev/null; then
			break
		fi
		if curl -fsS --max-time 2 --cacert "$DIR/pebble-https-ca.pem" \
			-o "$DIR/directory.json" "https://127.0.0.1:$ACME_PORT/dir" 2>/dev/null &&
			curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$CTS_MGMT_PORT/" 2>/dev/null; then
			up=1
			break
		fi
		sleep 0.1
	done
	fail_start() {
		echo "ca.sh: $*" >&2
		dump_logs
		kill "$PEBBLE_PID" "$CHALLTESTSRV_PID" 2>/dev/null || true
		wait "$PEBBLE_PID" "$CHALLTESTSRV_PID" 2>/dev/null || true
		exit 1
	}
	[ $up = 1 ] || fail_start "Pebble ($PEBBLE_BIN, $PEBBLE_VERSION) did not answer at https://127.0.0.1:$ACME_PORT/dir within ${timeout}s"

	curl -fsS --max-time 5 --cacert "$DIR/pebble-https-ca.pem" \
		-o "$DIR/pebble-root.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" ||
		fail_start "could not fetch Pebble's root from its management API"
	curl -fsS --max-time 5 --cacert "$DIR/pebble-https-ca.pem" \
		-o "$DIR/pebble-intermediate.pem" "https://127.0.0.1:$MGMT_PORT/intermediates/0" ||
		fail_start "could not fetch Pebble's intermediate from its management API"
	openssl x509 -noout -in "$DIR/pebble-root.pem" 2>/dev/null ||
		fail_start "Pebble's /roots/0 is not a PEM certificate"

	if [ "$PEBBLE_PROFILES" = 1 ] && ! grep -q '"profiles"' "$DIR/directory.json"; then
		fail_start "PEBBLE_PROFILES=1 but pebble $PEBBLE_VERSION offers no profiles (needs >= 2.7; unset PEBBLE_BIN to use /opt/certherd/pebble-testing)"
	fi

	{
		printf "%s='%s'\n" \
			CA_DIR "$DIR" \
			ACME_DIRECTORY "https://127.0.0.1:$ACME_PORT/dir" \
			CA_BUNDLE "$DIR/pebble-https-ca.pem" \
			PEBBLE_ROOT "$DIR/pebble-root.pem" \
			PEBBLE_INTERMEDIATE "$DIR/pebble-intermediate.pem" \
			PEBBLE_MGMT "https://127.0.0.1:$MGMT_PORT" \
			CHALLTESTSRV_MGMT "http://127.0.0.1:$CTS_MGMT_PORT" \
			DNS_SERVER "127.0.0.1:$DNS_PORT" \
			HTTP01_PORT "$HTTP01_PORT" \
			TLSALPN01_PORT "$TLSALPN01_PORT" \
			PEBBLE_VERSION "$PEBBLE_VERSION" \
			PEBBLE_BIN "$PEBBLE_BIN" \
			CHALLTESTSRV_BIN "$CHALLTESTSRV_BIN" \
			PEBBLE_PID "$PEBBLE_PID" \
			CHALLTESTSRV_PID "$CHALLTESTSRV_PID" \
			PEBBLE_NONCEREJECT "$PEBBLE_NONCEREJECT" \
			PEBBLE_ALWAYS_VALID "$PEBBLE_ALWAYS_VALID" \
			PEBBLE_EAB "$PEBBLE_EAB" \
			PEBBLE_PROFILES "$PEBBLE_PROFILES"
		if [ "$PEBBLE_EAB" = 1 ]; then
			printf "%s='%s'\n" EAB_KID "$EAB_KID" EAB_HMAC_KEY "$EAB_HMAC_KEY" \
				EAB_KID2 "$EAB_KID2" EAB_HMAC_KEY2 "$EAB_HMAC_KEY2"
		fi
		if [ "$PEBBLE_PROFILES" = 1 ]; then
			printf "%s='%s'\n" PEBBLE_PROFILE_NAMES "default shortlived"
		fi
	} >"$DIR/ca.env.tmp"
	mv "$DIR/ca.env.tmp" "$DIR/ca.env"
	echo "$DIR/ca.env"
}

read_pids() {
	[ -f "$DIR/ca.env" ] || return 1
	PEBBLE_PID=$(sed -n "s/^PEBBLE_PID='\(.*\)'$/\1/p" "$DIR/ca.env")
	CHALLTESTSRV_PID=$(sed -n "s/^CHALLTESTSRV_PID='\(.*\)'$/\1/p" "$DIR/ca.env")
}

cmd_stop() {
	read_pids || { echo "ca.sh: no $DIR/ca.env; nothing to stop" >&2; return 0; }
	local pids="" pid i
	for pid in $PEBBLE_PID $CHALLTESTSRV_PID; do
		our_pid "$pid" && pids="$pids $pid"
	done
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill -CONT $pids 2>/dev/null || true # in case it was paused
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for i in $(seq 100); do
		local alive=""
		for pid in $pids; do our_pid "$pid" && alive="$alive $pid"; done
		[ -n "$alive" ] || break
		if [ "$i" = 50 ]; then
			# shellcheck disable=SC2086
			kill -KILL $alive 2>/dev/null || true
		fi
		sleep 0.1
	done
	# Reap them if they are our children (same shell), else they are gone.
	# shellcheck disable=SC2086
	wait $pids 2>/dev/null || true
	for pid in $pids; do
		our_pid "$pid" && die "process $pid did not stop"
	done
	return 0
}

cmd_signal() {
	read_pids || die "no $DIR/ca.env"
	our_pid "$PEBBLE_PID" || die "Pebble (pid $PEBBLE_PID) is not running"
	kill "-$1" "$PEBBLE_PID"
}

[ $# = 2 ] || die "usage: $0 start|stop|pause|resume DIR"
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
# Pebble sometimes leaks the lock of its in-memory store under parallel
# load and then never answers a request that touches it again (see
# docs/pebble.md). Its management API's certificate lookup takes that lock:
# when it does not answer within 5 s while Pebble runs, Pebble is wedged.
# Exit 0 if wedged, 1 if healthy. A goroutine dump (SIGQUIT) goes to
# pebble.log as evidence.
cmd_wedged() {
	read_pids || die "no $DIR/ca.env"
	our_pid "$PEBBLE_PID" || die "Pebble (pid $PEBBLE_PID) is not running"
	# shellcheck disable=SC1091
	. "$DIR/ca.env"
	# A wedged Pebble never answers again; a starved one (a loaded machine)
	# answers late. Three silences of 5 s in a row before we say wedged:
	# the QUIT below ends Pebble, so a false alarm would cost a whole run.
	for _ in 1 2 3; do
		if curl -s --max-time 5 -o /dev/null --cacert "$CA_BUNDLE" \
			"$PEBBLE_MGMT/cert-status-by-serial/01"; then
			return 1
		fi
	done
	echo "ca.sh: Pebble is wedged (store lock held); goroutine dump in $DIR/pebble.log" >&2
	kill -QUIT "$PEBBLE_PID" 2>/dev/null
	return 0
}

case "$1" in
start) cmd_start ;;
wedged) cmd_wedged ;;
stop) cmd_stop ;;
pause) cmd_signal STOP ;;
resume) cmd_signal CONT ;;
*) die "usage: $0 start|stop|pause|resume|wedged DIR" ;;
esac
