#!/bin/bash
# certherd serve renewing by the certificate's lifetime (no ARI): pebble
# issues 150-second certificates, so the daemon's lifetime rule (renew at
# 1/2 of lifetimes under 10 days, +-2 % jitter, never later than the
# margin of max(1/10 lifetime, 1 min) before expiry: docs/scheduling.md)
# must renew each of 20 domains between 72 s and 90 s after its notBefore,
# once, while it stays valid and served from live/.
#
# Why short certificates and not a shifted clock: pebble is a Go binary,
# which reads time without libc, so a clock injected with libfaketime
# would move certherd's time but not the CA's, and every certificate the
# CA issues would look weeks old to the daemon. The policy itself is unit
# tested with a fake clock (tests/unit/test_engine_renew.c); this test
# runs it end to end on the real clock.
# asan: yes
# timeout: 400
. "$(dirname "$0")/lib.sh"

LIFE=150
PEBBLE_CERT_VALIDITY=$LIFE ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
serve_conf off "[renew]" "ari = false"
ls_json() { ch domains ls --json 2>/dev/null; }
n_state() { ls_json | jq -s --arg s "$1" '[.[] | select(.state == $s)] | length'; }
all_valid() { [ "$(n_state valid)" = 20 ]; }
show() { ch domains show --json "$1" 2>/dev/null; }
n_renewed() { show "$1" | jq '[.history[] | select(.kind == "renewed")] | length'; }
all_renewed() {
	local n
	for n in $(cat "$TEST_TMP/names.txt"); do
		[ "$(n_renewed "$n")" -ge 1 ] || return 1
	done
}

check "daemon starts" serve_start
for i in $(seq -w 1 20); do echo "life$i.example.com"; done >"$TEST_TMP/names.txt"
check "add 20 domains" ch domains add --file "$TEST_TMP/names.txt"
check "all 20 valid" wait_for 60 all_valid
declare -A NB SERIAL
for n in $(cat "$TEST_TMP/names.txt"); do
	NB[$n]=$(date -u -d "$(openssl x509 -in "$STATE/live/$n/cert.pem" -noout -startdate | sed 's/^notBefore=//')" +%s)
	SERIAL[$n]=$(openssl x509 -in "$STATE/live/$n/cert.pem" -noout -serial)
done
first=$(printf '%s\n' "${NB[@]}" | sort -n | head -1)
note "first notBefore $first, now $(date +%s)"
check "every domain is renewed by its lifetime" wait_for $((LIFE + 30)) all_renewed

early=0 late=0 same=0 bad=0
for n in $(cat "$TEST_TMP/names.txt"); do
	at=$(show "$n" | jq -r '[.history[] | select(.kind == "renewed") | .ts] | first | fromdateiso8601')
	d=$((at - NB[$n]))
	# 1/2 of 150 s is 75 s, -2 % of the lifetime is 3 s: never before 72 s.
	# The margin (60 s) caps it at 90 s; the pass interval (1 s), the order
	# itself and a loaded machine add a few seconds.
	[ "$d" -ge 72 ] || { note "$n renewed $d s after notBefore"; early=$((early + 1)); }
	[ "$d" -le 110 ] || { note "$n renewed $d s after notBefore"; late=$((late + 1)); }
	[ "$(openssl x509 -in "$STATE/live/$n/cert.pem" -noout -serial)" != "${SERIAL[$n]}" ] ||
		same=$((same + 1))
	verify_cert "$STATE" "$n" >/dev/null || bad=$((bad + 1))
done
check "no renewal before 1/2 of the lifetime minus the jitter" test $early = 0
check "no renewal after the margin (+ slack)" test $late = 0
check "live/ holds a new certificate for every domain" test $same = 0
check "every live/ certificate verifies" test $bad = 0
check "all 20 still valid" all_valid
check "no failures" test "$(ls_json | jq -s '[.[] | select(.last_error != null)] | length')" = 0
check "no errors logged" sh -c "! grep -h 'level=error' '$TEST_TMP'/serve*.log"
finish
