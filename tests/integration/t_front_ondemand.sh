#!/bin/bash
# Front mode, second part: on-demand issuance and TLS-ALPN-01, against real
# Pebble (which validates TLS-ALPN-01 on port 5001: the front listens
# there, and acme.challenge = tls-alpn-01 makes every order validate
# through it), a real nginx behind (proxy_protocol) and a real HTTP server
# for on_demand.ask (python3: 204 for names under ok.test or ok2.test with
# the right token, 403 otherwise; it logs every request). Checks:
# - a registered name asked for while its order cannot finish (Pebble
#   stopped) waits in its handshake and gets its new certificate;
# - a name nobody registered, allowed by ask, is issued during its first
#   handshake (openssl verifies it to Pebble's root; curl gets nginx's
#   answer); 5 concurrent first handshakes of another name share one order
#   and one ask;
# - a name ask denies gets unrecognized_name, no order, no store row, and
#   is not asked again (cached); the per-registered-domain budget refuses
#   the 4th approved name under ok.test;
# - a handshake whose certificate cannot come in on_demand.wait gets an
#   internal_error alert; the name is served once its order completes;
# - 10,000 handshakes with random SNI names create no order and no store
#   row, while handshakes of a known name all succeed, none slower than 2 s;
# - Pebble's log shows TLS-ALPN-01 validations only (no HTTP-01), and an
#   acme-tls/1 handshake with no pending challenge is refused;
# - the ask URL's token is never logged; metrics; clean SIGTERM.
# asan: yes
# timeout: 900
. "$(dirname "$0")/lib.sh"

UP=8081
ASK=3000
ca_start || { fail "test CA starts"; finish; }
FRONT=$TLSALPN01_PORT
NG=$TEST_TMP/nginx
mkdir -p "$NG/tmp"
{ nginx_head "$NG" "$TEST_TMP/nginx-error.log" info; cat <<NGINX
	access_log off;
	server {
		listen 127.0.0.1:$UP proxy_protocol;
		location / { return 200 "hello \$host\n"; }
	}
}
NGINX
} >"$NG/nginx.conf"
bg nginx nginx -g "daemon off;" -e "$TEST_TMP/nginx-error.log" -p "$NG" -c "$NG/nginx.conf"
check "nginx starts on 127.0.0.1:$UP" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$UP"

# 204 for names under ok.test or ok2.test with the token, 403 otherwise
bg ask python3 "$SRC/tests/integration/ask_server.py" $ASK "$TEST_TMP/asks.txt" \
	'/ask?token=s3cret' ok.test ok2.test
check "the ask server starts" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ASK"

serve_conf dns \
	"[acme]" "challenge = tls-alpn-01" \
	"[renew]" "ari = false" \
	"[front]" "enabled = true" "listen = 127.0.0.1:$FRONT" \
	"upstream = 127.0.0.1:$UP" "workers = 2" "cache_size = 200" \
	"[on_demand]" "enabled = true" \
	"ask = http://127.0.0.1:$ASK/ask?token=s3cret" \
	"budget_per_hour = 50" "budget_per_domain = 3" "wait = 10s"
check "daemon starts with on-demand and tls-alpn-01" serve_start
check "front listens on $FRONT (Pebble's TLS-ALPN-01 port)" \
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FRONT"

# hs NAME [s_client options...]: a handshake; its output in $TEST_TMP/hs-NAME.log
hs() {
	local name=$1
	shift
	openssl s_client -connect 127.0.0.1:$FRONT -servername "$name" \
		-CAfile "$PEBBLE_ROOT" -verify_return_error -verify_hostname "$name" \
		"$@" </dev/null >"$TEST_TMP/hs-$name.log" 2>&1
}
served_serial() { openssl x509 -noout -serial <"$TEST_TMP/hs-$1.log" 2>/dev/null; }
live_serial() { openssl x509 -noout -serial -in "$STATE/live/$1/cert.pem" 2>/dev/null; }
state_of() { ch domains show "$1" --json 2>/dev/null | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' | head -1; }
# Orders Pebble created (a newOrder POST it refused with badNonce and we
# sent again is not one).
orders() { grep -c 'Added order' "$CA_DIR/pebble.log"; }
asks_for() { grep -c "^[^ ]* $1 " "$TEST_TMP/asks.txt"; }
metrics() { curl -fsS --unix-socket "$STATE/api.sock" http://x/metrics >"$TEST_TMP/metrics.txt"; }
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TEST_TMP/metrics.txt"; }

# 1. A registered name whose order cannot finish yet: its handshake waits.
"$SRC/tests/ca/ca.sh" pause "$CA_DIR"
check "a name registered through the API" ch domains add reg.example.com
t0=$SECONDS
hs reg.example.com &
HS=$!
sleep 2
check "its first handshake waits while the order cannot finish" kill -0 $HS
"$SRC/tests/ca/ca.sh" resume "$CA_DIR"
wait $HS
rc=$?
check "then completes, verified to Pebble's root (status $rc, $((SECONDS - t0)) s)" test $rc = 0
check "with the certificate the daemon stored" \
	test -n "$(served_serial reg.example.com)" -a "$(served_serial reg.example.com)" = "$(live_serial reg.example.com)"
check "no ask for a registered name" test "$(asks_for reg.example.com)" = 0

# 2. On demand: allowed by ask, issued during the first handshake.
o0=$(orders)
t0=$SECONDS
hs new1.ok.test
rc=$?
check "an unregistered name allowed by ask: first handshake succeeds (status $rc, $((SECONDS - t0)) s)" test $rc = 0
check "with its own new certificate" \
	test -n "$(served_serial new1.ok.test)" -a "$(served_serial new1.ok.test)" = "$(live_serial new1.ok.test)"
check "the name is registered and valid" test "$(state_of new1.ok.test)" = valid
check "its history says why" bash -c "'$CERTHERD' -c '$CONF' domains show new1.ok.test | grep -q 'allowed by on_demand.ask'"
body=$(curl -sS --cacert "$PEBBLE_ROOT" --resolve "new2.ok.test:$FRONT:127.0.0.1" "https://new2.ok.test:$FRONT/")
check "curl's first request to another allowed name gets nginx's answer ($body)" test "$body" = "hello new2.ok.test"
pids=""
for i in 1 2 3 4 5; do
	curl -sS --cacert "$PEBBLE_ROOT" --resolve "new3.ok.test:$FRONT:127.0.0.1" \
		-o "$TEST_TMP/c$i.out" "https://new3.ok.test:$FRONT/" &
	pids="$pids $!"
done
bad=0
for p in $pids; do wait $p || bad=$((bad + 1)); done
check "5 concurrent first handshakes of one name all succeed ($bad failed)" test $bad = 0
check "they shared one ask" test "$(asks_for new3.ok.test)" = 1
check "and one order (one 'certificate issued' for it)" \
	test "$(grep 'new3.ok.test' "$TEST_TMP/serve.log" | grep -c 'certificate issued')" = 1
check "3 names, 3 orders at Pebble" test $(($(orders) - o0)) = 3

# 3. Denied by ask, and over the per-domain budget.
o0=$(orders)
hs evil.example.com
check "a name ask denies: unrecognized_name alert" grep -q 'unrecognized name' "$TEST_TMP/hs-evil.example.com.log"
hs evil.example.com
check "asked once (the denial is cached)" test "$(asks_for evil.example.com)" = 1
check "no store row for it" bash -c "! '$CERTHERD' -c '$CONF' domains show evil.example.com >/dev/null 2>&1"
hs new4.ok.test
check "a 4th name under ok.test is over budget_per_domain = 3: refused" \
	grep -q 'unrecognized name' "$TEST_TMP/hs-new4.ok.test.log"
check "though ask allowed it" test "$(asks_for new4.ok.test)" = 1
check "no store row for it" bash -c "! '$CERTHERD' -c '$CONF' domains show new4.ok.test >/dev/null 2>&1"
check "the budget refusal is logged" grep -q 'new4.ok.test.*budget' "$TEST_TMP/serve.log"
check "no order for either" test "$(orders)" = "$o0"

# 4. The wait bound: the CA stopped, the handshake gives up after 10 s with
# a clear alert; once the CA is back the name is served.
"$SRC/tests/ca/ca.sh" pause "$CA_DIR"
t0=$SECONDS
hs hold.ok2.test
rc=$?
took=$((SECONDS - t0))
"$SRC/tests/ca/ca.sh" resume "$CA_DIR"
check "no certificate within on_demand.wait: the handshake fails after ${took} s" \
	bash -c "[ $rc != 0 ] && [ $took -ge 9 ] && [ $took -le 20 ]"
check "with an internal_error alert" grep -q 'alert internal error' "$TEST_TMP/hs-hold.ok2.test.log"
check "the name still becomes valid" wait_for 60 bash -c "[ \"\$('$CERTHERD' -c '$CONF' domains show hold.ok2.test --json 2>/dev/null | grep -c '\"state\": *\"valid\"')\" -ge 1 ]"
check "and is served" hs hold.ok2.test

# 5. A flood of random names: no order, no row, known names unharmed.
cat >"$TEST_TMP/flood.py" <<'PY'
import random, socket, ssl, string, sys, threading, time
port, known, root, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
bad = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
bad.check_hostname = False
bad.verify_mode = ssl.CERT_NONE
good = ssl.create_default_context(cafile=root)
lock = threading.Lock()
left = [n]
stats = {"refused": 0, "other": 0}
def flood():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        name = "".join(random.choices(string.ascii_lowercase, k=12)) + ".flood" + \
               str(random.randrange(1000)) + ".test"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                with bad.wrap_socket(s, server_hostname=name):
                    pass
            k = "other"
        except ssl.SSLError as e:
            k = "refused" if "UNRECOGNIZED_NAME" in str(e) else "other"
        except OSError:
            k = "other"
        with lock:
            stats[k] += 1
lat, fails = [], []
def known_loop(stop):
    while not stop.is_set():
        t = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with good.wrap_socket(s, server_hostname=known):
                    pass
            lat.append(time.monotonic() - t)
        except Exception as e:
            fails.append(str(e))
        time.sleep(0.02)
stop = threading.Event()
k = threading.Thread(target=known_loop, args=(stop,))
k.start()
t0 = time.monotonic()
ts = [threading.Thread(target=flood) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
took = time.monotonic() - t0
stop.set(); k.join()
lat.sort()
print(f"{n} random names in {took:.1f}s: {stats['refused']} unrecognized_name, "
      f"{stats['other']} other; known name: {len(lat)} handshakes, "
      f"median {lat[len(lat)//2]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms, "
      f"{len(fails)} failed {fails[:3]}")
sys.exit(0 if not fails and lat and lat[-1] < 2.0 and stats["refused"] == n else 1)
PY
o0=$(orders)
rows0=$(ch domains ls --json | grep -c '"name"')
a0=$(wc -l <"$TEST_TMP/asks.txt")
check "10,000 random SNI names refused while a known name keeps handshaking (< 2 s each)" \
	python3 "$TEST_TMP/flood.py" $FRONT new1.ok.test "$PEBBLE_ROOT" 10000
note "$(grep -h 'random names in' "$TEST_TMP/check.log" 2>/dev/null | tail -1)"
check "no order created by the flood" test "$(orders)" = "$o0"
check "no store row created by the flood" test "$(ch domains ls --json | grep -c '"name"')" = "$rows0"
metrics
note "asks during the flood: $(($(wc -l <"$TEST_TMP/asks.txt") - a0)); refused at the door (too many being decided): $(metric 'certherd_ondemand_decisions_total{result="busy"}')"
check "the daemon is still up" kill -0 $SERVE_PID

# 6. TLS-ALPN-01 seen from Pebble, and refused without a pending challenge.
# (Pebble 2.10 logs each HTTP-01 attempt, "Attempting to validate w/
# HTTP", and nothing for a TLS-ALPN-01 one: the type is seen from both
# ends instead: Pebble's valid authorizations, none through HTTP-01, and
# the front's acme-tls/1 handshakes, one per Pebble perspective)
nauthz=$(grep -c 'set VALID by completed challenge' "$CA_DIR/pebble.log")
check "Pebble validated the 5 authorizations ($nauthz)" test "$nauthz" = 5
check_fails "none through HTTP-01" grep -q 'validate w/ HTTP' "$CA_DIR/pebble.log"
openssl s_client -connect 127.0.0.1:$FRONT -servername new1.ok.test -alpn acme-tls/1 \
	</dev/null >"$TEST_TMP/acme-none.log" 2>&1
check "acme-tls/1 with no pending challenge: no_application_protocol" \
	grep -q 'no application protocol' "$TEST_TMP/acme-none.log"

metrics
persp=$(sed -n 's/.*Starting \([0-9]*\) validations.*/\1/p' "$CA_DIR/pebble.log" | head -1)
check "metrics: the front answered acme-tls/1 for each of them, from Pebble's $persp perspectives ($(metric 'certherd_front_handshakes_total{result="acme_tls_1"}'))" \
	test "$(metric 'certherd_front_handshakes_total{result="acme_tls_1"}')" -ge $((5 * persp))
check "metrics: one on-demand timeout" \
	test "$(metric 'certherd_front_handshakes_total{result="ondemand_timeout"}')" = 1
check "metrics: waits counted ($(metric certherd_front_ondemand_waits_total))" \
	test "$(metric certherd_front_ondemand_waits_total)" -ge 8
check "metrics: 4 approved by ask ($(metric 'certherd_ondemand_decisions_total{result="approved"}'))" \
	test "$(metric 'certherd_ondemand_decisions_total{result="approved"}')" = 4
check "metrics: one over budget" \
	test "$(metric 'certherd_ondemand_decisions_total{result="budget"}')" = 1
check "metrics: denials counted ($(metric 'certherd_ondemand_decisions_total{result="denied"}'))" \
	test "$(metric 'certherd_ondemand_decisions_total{result="denied"}')" -ge 1
check_fails "the ask URL's token is never logged" grep -q s3cret "$TEST_TMP/serve.log"
check "SIGTERM stops the daemon cleanly" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 150); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
check_fails "no sanitizer report" grep -q 'ERROR: AddressSanitizer\|runtime error' "$TEST_TMP/serve.log"
finish
