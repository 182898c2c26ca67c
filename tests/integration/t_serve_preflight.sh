#!/bin/bash
# certherd serve's DNS pre-flight against real DNS servers and real Pebble:
# pebble-challtestsrv holds the records (changed through its management
# API) and dnsmasq, the resolver the daemon asks, forwards to it without
# caching and answers NXDOMAIN for *.nx.test (challtestsrv never does).
# preflight.addresses = 127.0.0.1. Checked:
#  - a name pointing at us becomes valid;
#  - a name whose A points elsewhere, one whose CNAME target does, one
#    with a foreign AAAA next to our A, one that does not exist and one
#    whose server fails stay dns-pending with what was seen (and the
#    CNAME chain) in `domains show --json`, their next check about a
#    minute away, and Pebble never hears of them (no order, no
#    validation); their ledger tokens are given back;
#  - `certherd renew NAME` re-checks at once; the same answer adds no
#    second history event, and the wait doubles;
#  - a resolver that does not answer gives a timeout reason; a stop with a
#    lookup in flight is clean (no sanitizer report under ASan);
#  - once the records are fixed, `certherd renew NAME` makes them valid,
#    with a dns-ok event;
#  - a valid domain whose DNS moved away is not renewed (dns-pending, its
#    certificate kept), until DNS points back.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
DNSMASQ_PORT=8054
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
serve_conf none "[acme]" "concurrency = 20" "[preflight]" \
	"resolver = 127.0.0.1:$DNSMASQ_PORT" "addresses = 127.0.0.1" "[limits]" "orders = 50/1h"
show() { ch domains show --json "$1" 2>/dev/null; }
state_of() { show "$1" | jq -r .state; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
# cts PATH JSON: one call to challtestsrv's management API.
cts() { curl -fsS -X POST -d "$2" "$CHALLTESTSRV_MGMT/$1" >/dev/null; }
orders() { grep -c 'Added order' "$CA_DIR/pebble.log"; }
# pebble_heard NAME: Pebble saw an order (a validation task) for NAME.
pebble_heard() { grep -q "Value:\"$1\"" "$CA_DIR/pebble.log"; }
# detail NAME: the last error's detail; events NAME KIND: how many.
detail() { show "$1" | jq -r '.last_error.detail // ""'; }
events() { show "$1" | jq "[.history[] | select(.kind == \"$2\")] | length"; }
err_type() { show "$1" | jq -r '.last_error.type // ""'; }
# wait_s NAME: seconds from the last check (the domain's last update) to
# the next one, as the daemon wrote them.
wait_s() {
	show "$1" | jq '((.next_attempt_at // "") | fromdateiso8601? // 0) -
		((.updated_at // "") | fromdateiso8601? // 0)'
}

bg dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
	--no-hosts --no-poll --listen-address=127.0.0.1 --bind-interfaces \
	--port=$DNSMASQ_PORT --server="${DNS_SERVER/:/#}" --cache-size=0 \
	--address=/nx.test/ --pid-file= --user=root --log-facility=- --log-queries
DNSMASQ_PID=$BG_PID
# dig_a NAME: one A query to dnsmasq over UDP; 0 when an answer comes
# (only to know it is up: the daemon's own lookups are what is tested).
dig_a() {
	python3 - "$1" "$DNSMASQ_PORT" <<-'PY'
	import socket, struct, sys
	name, port = sys.argv[1], int(sys.argv[2])
	q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
	q += b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
	q += b"\0" + struct.pack(">HH", 1, 1)
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(1)
	s.sendto(q, ("127.0.0.1", port))
	d = s.recv(4096)
	sys.exit(0 if d[:2] == q[:2] else 1)
	PY
}
check "dnsmasq answers on 127.0.0.1:$DNSMASQ_PORT" wait_for 10 dig_a ok.example.com

# The records: ok -> 127.0.0.1 (challtestsrv's default for any name).
check "away.example.com A 203.0.113.9" \
	cts add-a '{"host":"away.example.com","addresses":["203.0.113.9"]}'
check "alias.example.com CNAME edge.example.net" \
	cts set-cname '{"host":"alias.example.com","target":"edge.example.net"}'
check "edge.example.net A 203.0.113.10" \
	cts add-a '{"host":"edge.example.net","addresses":["203.0.113.10"]}'
check "dual.example.com AAAA 2001:db8::9 (A: ours)" \
	cts add-aaaa '{"host":"dual.example.com","addresses":["2001:db8::9"]}'
check "broken.example.com SERVFAIL" \
	cts set-servfail '{"host":"broken.example.com"}'

check "daemon starts with the pre-flight on" serve_start
check "it says so" grep -q 'DNS pre-flight on: resolver 127.0.0.1:8054, 1 addresses' "$TEST_TMP/serve.log"

BAD="away.example.com alias.example.com dual.example.com missing.nx.test broken.example.com"
check "add ok.example.com and five names not pointing at us" \
	ch domains add ok.example.com $BAD
check "ok.example.com becomes valid" wait_for 60 is_state ok.example.com valid
check "its certificate is good" verify_cert "$STATE" ok.example.com
all_pending() {
	local n
	for n in $BAD; do is_state "$n" dns-pending || return 1; done
}
check "the five are dns-pending" wait_for 30 all_pending

d=$(detail away.example.com)
check "away: the answer seen and ours ($d)" \
	test "$d" = "away.example.com resolves to 203.0.113.9, not one of ours: 127.0.0.1"
d=$(detail alias.example.com)
check "alias: the CNAME chain ($d)" \
	test "$d" = "alias.example.com resolves to 203.0.113.10 (via CNAME edge.example.net), not one of ours: 127.0.0.1"
d=$(detail dual.example.com)
check "dual: the foreign AAAA is named ($d)" \
	test "$d" = "dual.example.com resolves to 127.0.0.1, 2001:db8::9; not ours: 2001:db8::9 (ours: 127.0.0.1)"
d=$(detail missing.nx.test)
check "missing: NXDOMAIN ($d)" \
	test "$d" = "missing.nx.test does not exist in DNS (NXDOMAIN)"
d=$(detail broken.example.com)
check "broken: SERVFAIL ($d)" \
	test "$d" = "cannot tell where broken.example.com points: the DNS server answered SERVFAIL for its A record"
show away.example.com >"$TEST_TMP/away.json"
check "the problem document says step preflight, type dns-mismatch" \
	jq -e '.last_error.step == "preflight" and .last_error.type == "dns-mismatch"' "$TEST_TMP/away.json"
check "missing.nx.test has type dns-nxdomain" test "$(err_type missing.nx.test)" = dns-nxdomain
check "broken.example.com has type dns-error" test "$(err_type broken.example.com)" = dns-error
bad=0
for n in $BAD; do
	s=$(wait_s "$n")
	if [ "$s" -lt 53 ] || [ "$s" -gt 61 ]; then
		note "$n: next check $s s after the last"
		bad=$((bad + 1))
	fi
	[ "$(events "$n" dns-pending)" = 1 ] || { note "$n: $(events "$n" dns-pending) dns-pending events"; bad=$((bad + 1)); }
	[ "$(events "$n" failed)" = 0 ] || { note "$n: has failed events"; bad=$((bad + 1)); }
	pebble_heard "$n" && { note "Pebble heard of $n"; bad=$((bad + 1)); }
done
check "each: next check in about a minute, one event, no order, Pebble never heard of it" test $bad = 0
check "Pebble saw exactly one order (ok.example.com)" test "$(orders)" = 1
ch status --json >"$TEST_TMP/status.json" 2>&1
check "the orders bucket got the five reservations back (49 of 50 left)" \
	jq -e '.rate_limits[] | select(.limit == "orders" and .tokens > 48.9)' "$TEST_TMP/status.json"

# A forced re-check with the same answer: no second event, longer wait.
check "renew away.example.com re-checks at once" ch renew away.example.com
rechecked() { [ "$(show away.example.com | jq .failures)" = 2 ]; }
check "it is checked again" wait_for 20 rechecked
s=$(wait_s away.example.com)
check "the second failed check waits about two minutes ($s s)" \
	test "$s" -ge 107 -a "$s" -le 121
check "still dns-pending" is_state away.example.com dns-pending
check "the same answer adds no second dns-pending event" \
	test "$(events away.example.com dns-pending)" = 1

# Fix the records; renew makes them valid.
check "away.example.com: A record cleared (now the default 127.0.0.1)" \
	cts clear-a '{"host":"away.example.com"}'
check "edge.example.net: A record cleared" cts clear-a '{"host":"edge.example.net"}'
check "dual.example.com: AAAA cleared" cts clear-aaaa '{"host":"dual.example.com"}'
check "broken.example.com: SERVFAIL cleared" cts clear-servfail '{"host":"broken.example.com"}'
for n in away.example.com alias.example.com dual.example.com broken.example.com; do
	check "renew $n" ch renew "$n"
done
all_valid() {
	local n
	for n in away.example.com alias.example.com dual.example.com broken.example.com; do
		is_state "$n" valid || return 1
	done
}
check "all four become valid" wait_for 90 all_valid
bad=0
for n in away.example.com alias.example.com dual.example.com broken.example.com; do
	verify_cert "$STATE" "$n" >/dev/null 2>&1 || bad=$((bad + 1))
	[ "$(events "$n" dns-ok)" = 1 ] || bad=$((bad + 1))
done
check "their certificates are good, each with a dns-ok event" test $bad = 0
check "missing.nx.test stays dns-pending" is_state missing.nx.test dns-pending
check "Pebble saw 5 orders in all" test "$(orders)" = 5

# A renewal whose DNS moved away is not ordered; the certificate stays.
serial=$(openssl x509 -noout -serial -in "$STATE/live/ok.example.com/cert.pem")
check "ok.example.com A 198.51.100.7" \
	cts add-a '{"host":"ok.example.com","addresses":["198.51.100.7"]}'
check "renew ok.example.com" ch renew ok.example.com
check "it goes dns-pending" wait_for 20 is_state ok.example.com dns-pending
check "with the new answer" \
	test "$(detail ok.example.com)" = "ok.example.com resolves to 198.51.100.7, not one of ours: 127.0.0.1"
check "its certificate is still shown" \
	test "$(show ok.example.com | jq '.certificate != null')" = true
check "live/ still holds the same certificate" \
	test "$(openssl x509 -noout -serial -in "$STATE/live/ok.example.com/cert.pem")" = "$serial"
check "no order for it" test "$(orders)" = 5
check "ok.example.com points back at us" cts clear-a '{"host":"ok.example.com"}'
check "renew ok.example.com again" ch renew ok.example.com
renewed() { [ "$(events ok.example.com renewed)" = 1 ]; }
check "now it is renewed" wait_for 60 renewed
check "and valid" is_state ok.example.com valid
check "Pebble saw 6 orders in all" test "$(orders)" = 6

# A resolver that does not answer: a timeout, said so.
check "dnsmasq stops answering (SIGSTOP)" kill -STOP "$DNSMASQ_PID"
on_exit "kill -CONT $DNSMASQ_PID 2>/dev/null"
check "renew missing.nx.test" ch renew missing.nx.test
timed_out() {
	[ "$(detail missing.nx.test)" = "cannot tell where missing.nx.test points: no answer from the DNS server (timeout) for its A record" ]
}
check "it stays dns-pending: the DNS server timed out" wait_for 30 timed_out
check "type dns-error" test "$(err_type missing.nx.test)" = dns-error
check "still no order" test "$(orders)" = 6
# Stop with a lookup in flight: it is dropped, nothing leaks.
check "renew missing.nx.test again" ch renew missing.nx.test
sleep 0.5
check "SIGTERM stops the daemon cleanly, a lookup in flight" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 50); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
check "dnsmasq answers again (SIGCONT)" kill -CONT "$DNSMASQ_PID"
# Under ASan, leaks (the resolver's handles and lookups at stop) and
# errors are reported in the daemon's log on exit.
check_fails "the daemon's log has no sanitizer report" grep -q 'Sanitizer' "$TEST_TMP/serve.log"
finish
