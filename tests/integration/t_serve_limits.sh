#!/bin/bash
# certherd serve's rate-limit ledger against real Pebble, with a small
# configured limit (limits.orders = 5/2m: one new order every 24 s):
# of 12 domains added at once exactly 5 are ordered, the other 7 wait
# (still pending, next attempt in the future, an event saying the local
# ledger holds them) and come through one per refill until all 12 are
# valid; a renewal forced with `certherd renew` while new domains wait
# gets the next token before them (a forced renewal is served as urgent,
# docs/daemon.md); Pebble sees no more orders than we meant to make; the
# status shows the orders bucket; and a restart does not forget what was
# spent.
# asan: yes
# timeout: 400
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
serve_conf dns "[acme]" "concurrency = 50" "[limits]" "orders = 5/2m"
ls_json() { ch domains ls --json 2>/dev/null; }
n_valid() { ls_json | jq -s '[.[] | select(.state == "valid")] | length'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }
# valid_names: the names reported valid, one a line.
valid_names() { ls_json | jq -r 'select(.state == "valid") | .name' | sort; }
show() { ch domains show --json "$1" 2>/dev/null; }

check "daemon starts with limits.orders = 5/2m" serve_start
for i in $(seq -w 1 12); do echo "l$i.example.com"; done >"$TEST_TMP/names.txt"
check "add 12 domains at once" ch domains add --file "$TEST_TMP/names.txt"
check "5 become valid quickly" wait_for 20 all_valid 5
valid_names >"$TEST_TMP/first5.txt"
grep -vxFf "$TEST_TMP/first5.txt" "$TEST_TMP/names.txt" >"$TEST_TMP/waiting.txt"
check "the other 7 are the waiting ones" test "$(wc -l <"$TEST_TMP/waiting.txt")" = 7
now=$(date +%s)
bad=0
for n in $(cat "$TEST_TMP/waiting.txt"); do
	show "$n" >"$TEST_TMP/w.json"
	st=$(jq -r .state "$TEST_TMP/w.json")
	next=$(jq -r '.next_attempt_at // "" | fromdateiso8601? // 0' "$TEST_TMP/w.json")
	ev=$(jq -r '[.history[] | select(.kind == "rate-limited") | .detail] | first // ""' "$TEST_TMP/w.json")
	if [ "$st" != pending ] || [ "$next" -le "$now" ] ||
		! grep -q 'rate-limited (local ledger)' <<<"$ev"; then
		note "$n: state=$st next=$next now=$now event=$ev"
		bad=$((bad + 1))
	fi
done
check "they are pending, next attempt in the future, held by the local ledger" test $bad = 0
ch status --json >"$TEST_TMP/status.json" 2>&1
check "status --json shows the orders bucket" \
	jq -e '.rate_limits[] | select(.limit == "orders" and .capacity == 5 and .tokens < 1 and .full_at != null)' "$TEST_TMP/status.json"
check "status --json shows in_flight" jq -e '.in_flight >= 0' "$TEST_TMP/status.json"
curl -s --unix-socket "$STATE/api.sock" http://x/metrics >"$TEST_TMP/metrics.txt"
check "metrics show the orders bucket" grep -q '^certherd_ratelimit_tokens{limit="orders"}' "$TEST_TMP/metrics.txt"
check "metrics show orders in flight" grep -q '^certherd_orders_in_flight ' "$TEST_TMP/metrics.txt"

# Priority: a renewal asked for now (before the first refill, 24 s after
# the first orders) must get the next token ahead of the 7 new names.
forced=$(head -1 "$TEST_TMP/first5.txt")
check "force a renewal of $forced while 7 new domains wait" ch renew "$forced"
renewed() {
	show "$forced" >"$TEST_TMP/f.json" &&
		jq -e '[.history[] | select(.kind == "renewed")] | length > 0' "$TEST_TMP/f.json"
}
check "the forced renewal goes through" wait_for 90 renewed
n_early=0
for n in $(cat "$TEST_TMP/waiting.txt"); do
	st=$(show "$n" | jq -r .state)
	[ "$st" = pending ] || n_early=$((n_early + 1))
done
check "it went before every waiting new domain ($n_early of them not pending any more)" test $n_early = 0

# A restart keeps what was spent: the bucket comes back from the store.
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
check "restart" serve_start
ch status --json >"$TEST_TMP/status2.json" 2>&1
check "after the restart the orders bucket is still nearly empty" \
	jq -e '.rate_limits[] | select(.limit == "orders" and .tokens < 2)' "$TEST_TMP/status2.json"

check "all 12 become valid as the bucket refills" wait_for 220 all_valid 12
orders=$(grep -c 'Added order' "$CA_DIR/pebble.log")
check "Pebble saw $orders orders for 12 domains and 1 forced renewal" test "$orders" -le 13
bad=0
for n in $(cat "$TEST_TMP/names.txt"); do verify_cert "$STATE" "$n" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "every live/ certificate is good" test $bad = 0
check "SIGTERM stops the daemon cleanly" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 50); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
finish
