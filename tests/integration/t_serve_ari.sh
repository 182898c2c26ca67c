#!/bin/bash
# certherd serve renewing by the CA's renewal information (RFC 9773)
# against pebble 2.10, which serves renewalInfo:
#  - three domains are issued; nothing is renewed on its own;
#  - `certherd renew --ari` makes the daemon ask the CA now: the window is
#    stored (renewal_window, an ari-window event) and, the window being in
#    the future, nothing is renewed;
#  - the certificate is revoked (a CA's "renew now": pebble then answers a
#    window in the past); `renew --ari` again: renewed at once, the order
#    carrying "replaces" with the old certificate's identifier (computed
#    independently with openssl; pebble checks the replaced certificate is
#    the account's and not already replaced);
#  - a forced renewal (`certherd renew`) renews without asking and also
#    carries replaces; with renew.ari = false the daemon never asks.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
serve_conf off
show() { ch domains show --json "$1" 2>/dev/null; }
state_of() { show "$1" | jq -r .state; }
is_valid() { [ "$(state_of "$1")" = valid ]; }
serial_of() { show "$1" | jq -r '.certificate.serial // ""'; }
# n_events NAME KIND: how many events of KIND NAME's history holds.
n_events() { show "$1" | jq --arg k "$2" '[.history[] | select(.kind == $k)] | length'; }
has_events() { [ "$(n_events "$1" "$2")" -ge "$3" ]; }
last_detail() { show "$1" | jq -r --arg k "$2" '[.history[] | select(.kind == $k) | .detail] | first // ""'; }

check "daemon starts" serve_start
check "add a, b, c" ch domains add a.example.com b.example.com c.example.com
for n in a b c; do
	check "$n.example.com becomes valid" wait_for 60 is_valid $n.example.com
done
for n in a b c; do
	check "live/$n.example.com verifies" verify_cert "$STATE" $n.example.com
done
A_OLD=$(serial_of a.example.com)
A_CERTID=$(ari_certid_openssl "$STATE/live/a.example.com/cert.pem")
note "a: serial $A_OLD certid $A_CERTID"
check "no window is known before anyone asked" \
	sh -c '[ "$("$0" -c "$1" domains show --json a.example.com | jq .certificate.renewal_window)" = null ]' "$CERTHERD" "$CONF"

# Ask now: pebble's window for a fresh certificate lies ahead.
check "renew --ari a" ch renew --ari a.example.com
check "the window is fetched and recorded" wait_for 30 has_events a.example.com ari-window 1
show a.example.com >"$TEST_TMP/a1.json"
check "renewal_window start and end are shown" \
	jq -e '.certificate.renewal_window.start and .certificate.renewal_window.end' "$TEST_TMP/a1.json"
ws=$(jq -r '.certificate.renewal_window.start | fromdateiso8601' "$TEST_TMP/a1.json")
we=$(jq -r '.certificate.renewal_window.end | fromdateiso8601' "$TEST_TMP/a1.json")
nb=$(date -u -d "$(openssl x509 -in "$STATE/live/a.example.com/cert.pem" -noout -startdate | sed 's/^notBefore=//')" +%s)
na=$(date -u -d "$(openssl x509 -in "$STATE/live/a.example.com/cert.pem" -noout -enddate | sed 's/^notAfter=//')" +%s)
note "window $ws .. $we, validity $nb .. $na"
check "the window lies within the certificate's validity" test "$ws" -ge "$nb" -a "$we" -le "$na" -a "$we" -gt "$ws"
check "the next attempt is in the future (not renewing)" \
	jq -e '(.next_attempt_at | fromdateiso8601) > now' "$TEST_TMP/a1.json"
sleep 2
check "a was not renewed" test "$(serial_of a.example.com)" = "$A_OLD"
check "a is still valid" is_valid a.example.com

# Revoke: pebble then answers a window in the past, i.e. renew now.
check "revoke a's certificate" "$CERTHERD" revoke --directory "$ACME_DIRECTORY" \
	--ca-bundle "$CA_BUNDLE" --out "$STATE" --with-cert-key a.example.com
check "renew --ari a again" ch renew --ari a.example.com
renewed_a() { [ "$(serial_of a.example.com)" != "$A_OLD" ] && is_valid a.example.com; }
check "a is renewed at once" wait_for 60 renewed_a
check "the new window was recorded first" has_events a.example.com ari-window 2
detail=$(last_detail a.example.com renewed)
note "renewed: $detail"
check "the renewal replaced the old certificate (replaces = openssl's certid)" \
	test "$detail" = "certificate stored (replaces $A_CERTID)"
check "live/a.example.com verifies (new certificate)" verify_cert "$STATE" a.example.com
check "live/ holds the new serial" sh -c \
	'[ "$(openssl x509 -in "$0/live/a.example.com/cert.pem" -noout -serial | sed "s/^serial=//" | tr A-F a-f | sed "s/^0*//")" = "$(printf %s "$1" | tr A-F a-f | sed "s/^0*//")" ]' \
	"$STATE" "$(serial_of a.example.com)"

# Forced renewal: no question asked, replaces carried.
B_OLD=$(serial_of b.example.com)
B_CERTID=$(ari_certid_openssl "$STATE/live/b.example.com/cert.pem")
check "renew b (forced)" ch renew b.example.com
renewed_b() { [ "$(serial_of b.example.com)" != "$B_OLD" ] && is_valid b.example.com; }
check "b is renewed" wait_for 60 renewed_b
check "b's renewal did not ask the CA" test "$(n_events b.example.com ari-window)" = 0
check "b's renewal carried replaces" \
	test "$(last_detail b.example.com renewed)" = "certificate stored (replaces $B_CERTID)"
check "c untouched" sh -c '[ "$("$0" -c "$1" domains show --json c.example.com | jq "[.history[] | select(.kind == \"renewed\")] | length")" = 0 ]' "$CERTHERD" "$CONF"

# Metrics: orders by result, failures by problem type, ARI fetches. One
# more domain points where nothing listens, so pebble's validation fails
# with a "connection" problem: it backs off while other domains proceed.
curl -fsS -X POST "$CHALLTESTSRV_MGMT/add-a" \
	-d '{"host": "fail.example.com", "addresses": ["127.0.0.2"]}' >/dev/null
check "add fail.example.com (its A record points nowhere)" ch domains add fail.example.com
failed_once() { show fail.example.com | jq -e '.last_error.type == "connection"' >/dev/null; }
check "its order fails with a connection problem" wait_for 60 failed_once
show fail.example.com >"$TEST_TMP/fail.json"
check "it backs off: failures 1, next attempt about a minute ahead" \
	jq -e '.failures == 1 and .state == "pending" and ((.next_attempt_at | fromdateiso8601) - now) > 40' "$TEST_TMP/fail.json"
check "the rest proceed meanwhile" ch domains add d.example.com e.example.com
check "d.example.com becomes valid" wait_for 60 is_valid d.example.com
check "e.example.com becomes valid" wait_for 60 is_valid e.example.com
check "fail.example.com was not tried again" \
	test "$(n_events fail.example.com failed)" = 1
curl -fsS --unix-socket "$STATE/api.sock" http://x/metrics >"$TEST_TMP/metrics.txt"
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TEST_TMP/metrics.txt"; }
CA_L="ca=\"$ACME_DIRECTORY\""
check "metrics: 7 orders valid (5 issued, 2 renewed)" test "$(metric "certherd_orders_total{$CA_L,result=\"valid\"}")" = 7
check "metrics: 1 order failed" test "$(metric "certherd_orders_total{$CA_L,result=\"failed\"}")" = 1
check "metrics: the failure counted as connection" test "$(metric "certherd_order_failures_total{$CA_L,problem=\"connection\"}")" = 1
check "metrics: 2 renewalInfo fetches answered" test "$(metric "certherd_ari_fetches_total{$CA_L,result=\"ok\"}")" = 2
check "metrics: no renewalInfo fetch failed" test "$(metric "certherd_ari_fetches_total{$CA_L,result=\"failed\"}")" = 0

# renew.ari = false: renew --ari renews directly, without replaces.
kill -TERM "$SERVE_PID"
check "daemon stops on SIGTERM" wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
check "daemon restarts with renew.ari = false" serve_start --set renew.ari=false
C_OLD=$(serial_of c.example.com)
check "renew --ari c" ch renew --ari c.example.com
renewed_c() { [ "$(serial_of c.example.com)" != "$C_OLD" ] && is_valid c.example.com; }
check "c is renewed without asking" wait_for 60 renewed_c
check "no window fetched for c" test "$(n_events c.example.com ari-window)" = 0
check "no replaces without ARI" test "$(last_detail c.example.com renewed)" = "certificate stored"
check "no errors logged" sh -c "! grep -h 'level=error' '$TEST_TMP'/serve*.log"
finish
