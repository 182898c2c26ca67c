#!/bin/bash
# certherd serve against real Pebble: domains added through the control
# API (over its unix socket, with the certherd CLI) all become valid and
# land in live/; kill -9 of the daemon at random moments of a 500-domain
# run (four times) and a restart
# resume the pending orders: every domain ends valid, no file is half
# written, and Pebble saw no more orders than domains plus the newOrder
# requests in flight at each kill;
# the API rejects bad names with the reason.
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"

ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
serve_conf dns "[acme]" "concurrency = 50"
# n_valid: how many domains the daemon reports valid.
n_valid() { ch domains ls --json 2>/dev/null | grep -c '"state": *"valid"'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }

check "daemon starts and its API socket appears" serve_start
check "API socket is 0660" test "$(stat -c %a "$STATE/api.sock")" = 660
check "state directory is 0700" test "$(stat -c %a "$STATE")" = 700

for i in $(seq 1 40); do echo "s$i.example.com"; done >"$TEST_TMP/first.txt"
check "add 40 domains through the API" ch domains add --file "$TEST_TMP/first.txt"
check "all 40 become valid" wait_for 120 all_valid 40
bad=0
for i in $(seq 1 40); do verify_cert "$STATE" "s$i.example.com" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "their live/ certificates are good" test $bad = 0
ch domains show s1.example.com >"$TEST_TMP/show.log" 2>&1
check "domains show reports valid" grep -q valid "$TEST_TMP/show.log"

# kill -9 at random moments of 460 more (500 in all), four times,
# restarting each time.
for i in $(seq 1 460); do echo "k$i.example.net"; done >"$TEST_TMP/more.txt"
check "add 460 more" ch domains add --file "$TEST_TMP/more.txt"
for k in 1 2 3 4; do
	sleep $((RANDOM % 2)).$((RANDOM % 10))
	kill -9 "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	rm -f "$STATE/api.sock"
	check "restart after kill -9 #$k" serve_start
done
check "all 500 end valid" wait_for 300 all_valid 500
check "no temp files left behind" test -z "$(find "$STATE" -name '*.tmp*')"
# An order is persisted the moment newOrder answers; a kill can only lose
# the newOrder requests in flight at that instant, at most one per CA
# connection (8). Persisting an intent before newOrder and adopting it
# from the account's order list would close that gap (not done yet).
orders=$(grep -c 'Added order' "$CA_DIR/pebble.log")
check "Pebble saw $orders orders for 500 domains (at most 8 extra per kill)" test "$orders" -le 532
bad=0
for i in $(seq 1 460); do verify_cert "$STATE" "k$i.example.net" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "every live/ certificate after the kills is good" test $bad = 0

# :80 answers anything but a challenge with a redirect to https.
loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: shop.example.com:80' \
	"http://127.0.0.1:$HTTP01_PORT/cart?x=1")
check "plain http is redirected to https, query kept ($loc)" test "$loc" = "308 https://shop.example.com/cart?x=1"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: 10.1.2.3' "http://127.0.0.1:$HTTP01_PORT/")
check "no redirect for a Host that is not a domain name ($code)" test "$code" = 404

# A challenge another node wrote to the shared store (here: the sqlite3
# shell, as a second process) is answered on :80; an expired one is not.
# (Tokens: 43 base64url characters, like a CA's 256-bit ones.)
now_ms=$(($(date +%s) * 1000))
TOK_NEW=$(printf 'n%.0s' $(seq 43))
TOK_OLD=$(printf 'o%.0s' $(seq 43))
sq() { sqlite3 -cmd '.timeout 5000' "$STATE/certherd.db" "$@"; }
sq "INSERT INTO challenges VALUES ('$TOK_NEW', '$TOK_NEW.thumb', 's1.example.com', $((now_ms + 600000)));
    INSERT INTO challenges VALUES ('$TOK_OLD', '$TOK_OLD.thumb', 's1.example.com', $((now_ms - 1000)));"
body=$(curl -s -H 'Host: s1.example.com' "http://127.0.0.1:$HTTP01_PORT/.well-known/acme-challenge/$TOK_NEW")
check "a challenge from the store is served" test "$body" = "$TOK_NEW.thumb"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP01_PORT/.well-known/acme-challenge/$TOK_OLD")
check "an expired one is not ($code)" test "$code" = 404

ch domains add 'bad..name' >"$TEST_TMP/bad.log" 2>&1
rc=$?
check "API rejects a bad name with the reason" \
	bash -c "test $rc = 1 && grep -q 'bad\.\.name' '$TEST_TMP/bad.log'"
check "SIGTERM stops the daemon cleanly" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 50); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
finish
