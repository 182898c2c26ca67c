#!/bin/bash
# Front mode's lifecycle, with real nginx behind (proxy_protocol), real
# Pebble, a python ask server, openssl s_client and curl:
# - [front] handshake_timeout, idle_timeout, max_connections: bad values
#   are refused with a clear error; a silent client is closed after the
#   configured handshake_timeout; connections beyond max_connections are
#   refused;
# - a default certificate that cannot be used stops the start with a
#   clear error (missing file, key readable by others, mismatched key);
# - a domain removed through the API is refused (unrecognized_name) at
#   the next handshake on every worker, while a download started before
#   the removal finishes intact;
# - SIGHUP: a default certificate (served for unknown names and no SNI,
#   on-demand still first), a new ask URL (earlier denials forgotten) and
#   budget, a longer handshake timeout, all applied while a long download
#   runs on, which survives; a bad default key refuses the whole reload
#   (neither the front's handshake_timeout nor the engine's concurrency
#   changed in the same file is applied);
#   restart-only keys are warned about;
# - SIGTERM: the listener closes at once (a new connection is refused)
#   while a slow download started before it completes intact.
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"

FRONT=8443
UP=8082
ASK=3001
ca_start || { fail "test CA starts"; finish; }
NG=$TEST_TMP/nginx
mkdir -p "$NG/tmp" "$NG/www/files"
head -c $((24 << 20)) /dev/urandom >"$NG/www/files/big.bin"
want=$(sha256sum <"$NG/www/files/big.bin" | cut -d' ' -f1)
{ nginx_head "$NG" "$TEST_TMP/nginx-error.log" info; cat <<NGINX
	access_log off;
	server {
		listen 127.0.0.1:$UP proxy_protocol;
		location / { return 200 "hello \$host\n"; }
		location /files/ { root $NG/www; }
	}
}
NGINX
} >"$NG/nginx.conf"
bg nginx nginx -g "daemon off;" -e "$TEST_TMP/nginx-error.log" -p "$NG" -c "$NG/nginx.conf"
check "nginx starts on 127.0.0.1:$UP" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$UP"

# ask: /no denies everything, /yes allows names under ok.test
bg ask python3 "$SRC/tests/integration/ask_server.py" $ASK "$TEST_TMP/asks.txt" /yes ok.test
check "the ask server starts" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ASK"

# A default certificate (self-signed, not for any of our names) and keys
# that must be refused.
D=$TEST_TMP/default
mkdir -p "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=default.invalid -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=other.invalid -keyout "$D/other-key.pem" -out "$D/other.pem" 2>/dev/null
chmod 600 "$D/key.pem" "$D/other-key.pem"
cp "$D/key.pem" "$D/open-key.pem"
chmod 644 "$D/open-key.pem"
default_serial=$(openssl x509 -noout -serial -in "$D/cert.pem")

serve_conf dns \
	"[renew]" "ari = false" \
	"[daemon]" "drain_timeout = 30s" \
	"[front]" "enabled = true" "listen = 127.0.0.1:$FRONT" \
	"upstream = 127.0.0.1:$UP" "workers = 2" "cache_size = 100" \
	"handshake_timeout = 2s" "idle_timeout = 1m" "max_connections = 40" \
	"[on_demand]" "enabled = true" "ask = http://127.0.0.1:$ASK/no" \
	"budget_per_hour = 10" "wait = 20s"
cp "$CONF" "$TEST_TMP/base.conf"

# 1. Validation of the new keys, and a default certificate that cannot be
# used: each is a clear error at start.
bad_start() { # bad_start WANT --set ...: serve fails and says WANT
	local want=$1
	shift
	timeout 30 "$CERTHERD" -c "$CONF" "$@" serve >"$TEST_TMP/bad.log" 2>&1
	local rc=$?
	[ $rc != 0 ] && [ $rc != 124 ] && grep -q -- "$want" "$TEST_TMP/bad.log"
}
check "front.handshake_timeout = 0 is refused" bad_start 'front.handshake_timeout' --set front.handshake_timeout=0
check "front.idle_timeout = soon is refused" bad_start 'front.idle_timeout' --set front.idle_timeout=soon
check "front.max_connections = 0 is refused" bad_start 'front.max_connections' --set front.max_connections=0
check "a default certificate without its key is refused" \
	bad_start 'front.default_certificate and front.default_key go together' \
	--set front.default_certificate="$D/cert.pem"
check "a missing default certificate stops the start" \
	bad_start "cannot read $D/nope.pem" \
	--set front.default_certificate="$D/nope.pem" --set front.default_key="$D/key.pem"
check "a default key readable by others stops the start (chmod 600)" \
	bad_start 'chmod 600' \
	--set front.default_certificate="$D/cert.pem" --set front.default_key="$D/open-key.pem"
check "a default key not matching the certificate stops the start" \
	bad_start "front.default_certificate $D/cert.pem with front.default_key $D/other-key.pem" \
	--set front.default_certificate="$D/cert.pem" --set front.default_key="$D/other-key.pem"
check_fails "no key material in those messages" grep -q 'PRIVATE' "$TEST_TMP/bad.log"

check "daemon starts in front mode" serve_start
check "front listens on $FRONT" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FRONT"

served() { # the serial served for SNI NAME (empty: handshake failed)
	openssl s_client -connect 127.0.0.1:$FRONT -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}
alert_for() { # does SNI NAME get unrecognized_name?
	openssl s_client -connect 127.0.0.1:$FRONT -servername "$1" </dev/null 2>&1 |
		grep -q 'unrecognized name'
}
live_serial() { openssl x509 -noout -serial -in "$STATE/live/$1/cert.pem" 2>/dev/null; }
state_of() { ch domains show "$1" --json 2>/dev/null | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' | head -1; }
get() { # get NAME PATH [curl options...]
	local name=$1 path=$2
	shift 2
	curl -sS --cacert "$PEBBLE_ROOT" --resolve "$name:$FRONT:127.0.0.1" \
		"$@" "https://$name:$FRONT$path"
}
metrics() { curl -fsS --unix-socket "$STATE/api.sock" http://x/metrics >"$TEST_TMP/metrics.txt"; }
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TEST_TMP/metrics.txt"; }
# closed_after SECS: seconds until the front closes a silent client
closed_after() {
	python3 - "$FRONT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t0 = time.time()
s.settimeout(30)
try:
    while s.recv(100):
        pass
except ConnectionResetError:
    pass
print(f"{time.time() - t0:.1f}")
PY
}
hup() { # hup: SIGHUP and wait for the reload's last line
	local n
	n=$(grep -c 'configuration reloaded\|reload failed' "$TEST_TMP/serve.log")
	kill -HUP $SERVE_PID
	wait_for 20 bash -c "[ \$(grep -c 'configuration reloaded\|reload failed' '$TEST_TMP/serve.log') -gt $n ]"
}

t=$(closed_after)
check "a silent client is closed after handshake_timeout = 2s (${t}s)" \
	python3 -c "import sys; sys.exit(not 1.5 <= $t <= 5)"
# 2 workers x 40: 100 silent clients, the excess refused at accept
python3 - "$FRONT" <<'PY' >"$TEST_TMP/limit.log" 2>&1
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(100)]
time.sleep(0.5)
PY
metrics
check "max_connections = 40 per worker: the excess is refused ($(metric 'certherd_front_connections_total{result="refused"}'))" \
	test "$(metric 'certherd_front_connections_total{result="refused"}')" -ge 20

# 2. Removal.
check "add 2 domains" ch domains add keep.example.com gone.example.com
check "both become valid" wait_for 120 bash -c "[ \$('$CERTHERD' -c '$CONF' domains ls --json | grep -c '\"state\": *\"valid\"') = 2 ]"
check "gone.example.com is served its own certificate" \
	test -n "$(served gone.example.com)" -a "$(served gone.example.com)" = "$(live_serial gone.example.com)"
get gone.example.com /files/big.bin -f --limit-rate 1M -o "$TEST_TMP/gone.bin" &
SLOW=$!
sleep 1
check "remove gone.example.com through the API" ch domains rm gone.example.com
check "while a download of it started before is still running" kill -0 $SLOW
bad=0
for i in $(seq 10); do alert_for gone.example.com || bad=$((bad + 1)); done
check "the next 10 handshakes (both workers) get unrecognized_name ($bad not)" test $bad = 0
check "keep.example.com is still served" test "$(served keep.example.com)" = "$(live_serial keep.example.com)"
wait $SLOW
rc=$?
check "and finishes intact (curl status $rc)" bash -c "[ $rc = 0 ] && [ \"\$(sha256sum <'$TEST_TMP/gone.bin' | cut -d' ' -f1)\" = '$want' ]"

# 3. On-demand before the reload: ask /no denies new.ok.test.
check "ask /no: new.ok.test gets unrecognized_name" alert_for new.ok.test
check "after one ask" test "$(grep -c '^/no new.ok.test ' "$TEST_TMP/asks.txt")" = 1
check "unknown names get unrecognized_name (no default certificate yet)" alert_for nope.example.com

# 4. SIGHUP while a long download runs: a default certificate, ask /yes,
# budget, a longer handshake timeout, and a restart-only key.
get keep.example.com /files/big.bin -f --limit-rate 1M -o "$TEST_TMP/long.bin" &
LONG=$!
sleep 1
{
	sed -e "s#^ask = .*#ask = http://127.0.0.1:$ASK/yes#" \
		-e 's/^budget_per_hour = .*/budget_per_hour = 1/' \
		-e 's/^handshake_timeout = .*/handshake_timeout = 6s/' \
		-e 's/^cache_size = .*/cache_size = 200/' "$TEST_TMP/base.conf"
	printf '[front]\ndefault_certificate = %s\ndefault_key = %s\n' "$D/cert.pem" "$D/other-key.pem"
	printf '[acme]\nconcurrency = 7\n'
} >"$CONF"
check "SIGHUP with a default key that does not match" hup
check "is refused whole, with the reason" \
	grep -q "reload failed: front.default_certificate $D/cert.pem with front.default_key $D/other-key.pem.*; still running with the previous configuration" "$TEST_TMP/serve.log"
check "and changed nothing (still unrecognized_name)" alert_for nope.example.com
t=$(closed_after)
check "not the front's handshake_timeout either (a silent client closed after ${t}s, not 6s)" \
	python3 -c "import sys; sys.exit(not 1.5 <= $t <= 5)"
check "nor the engine's acme.concurrency (status: $(ch status --json | jq .concurrency))" \
	bash -c "'$CERTHERD' -c '$CONF' status --json | jq -e '.concurrency == 100' >/dev/null"
sed -i "s#other-key.pem#key.pem#" "$CONF"
check "SIGHUP with the right key" hup
check "the download started before the reloads is still running" kill -0 $LONG
check "applies the front and on-demand keys" \
	grep -q 'configuration reloaded: applied.*front.handshake_timeout 2s -> 6s' "$TEST_TMP/serve.log"
check "and the engine's acme.concurrency with them (status: $(ch status --json | jq .concurrency))" \
	bash -c "'$CERTHERD' -c '$CONF' status --json | jq -e '.concurrency == 7' >/dev/null"
check "warns that front.cache_size needs a restart" \
	grep -q 'front.cache_size changed (100 -> 200); restart to apply' "$TEST_TMP/serve.log"
check "unknown name: the default certificate" test "$(served nope.example.com)" = "$default_serial"
check "no SNI: the default certificate" bash -c "openssl s_client -connect 127.0.0.1:$FRONT -noservername </dev/null 2>/dev/null | openssl x509 -noout -serial | grep -qx '$default_serial'"
check "the removed domain: the default certificate" test "$(served gone.example.com)" = "$default_serial"
body=$(curl -sS -k --resolve "nope.example.com:$FRONT:127.0.0.1" "https://nope.example.com:$FRONT/")
check "a request to an unknown name reaches nginx through the default certificate ($body)" test "$body" = "hello nope.example.com"
check "registered names keep their own" test "$(served keep.example.com)" = "$(live_serial keep.example.com)"
t0=$SECONDS
check "new.ok.test, denied by the old ask, is allowed by the new one and issued during its handshake" \
	bash -c "openssl s_client -connect 127.0.0.1:$FRONT -servername new.ok.test -CAfile '$PEBBLE_ROOT' -verify_return_error </dev/null >'$TEST_TMP/new.log' 2>&1"
check "on-demand goes before the default certificate (its own, $((SECONDS - t0)) s)" \
	bash -c "[ \"\$(openssl x509 -noout -serial <'$TEST_TMP/new.log')\" = '$(live_serial new.ok.test)' ]"
check "budget_per_hour = 1: the next allowed name is over the budget (default certificate)" \
	test "$(served second.ok.test)" = "$default_serial"
check "and is not registered" test -z "$(state_of second.ok.test)"
metrics
check "metrics: an on-demand budget refusal" test "$(metric 'certherd_ondemand_decisions_total{result="budget"}')" -ge 1
check "metrics: handshakes with the default certificate ($(metric certherd_front_default_handshakes_total))" \
	test "$(metric certherd_front_default_handshakes_total)" -ge 4
t=$(closed_after)
check "a silent client is now closed after handshake_timeout = 6s (${t}s)" \
	python3 -c "import sys; sys.exit(not 5 <= $t <= 10)"
wait $LONG
rc=$?
check "and finishes intact across them (curl status $rc)" bash -c "[ $rc = 0 ] && [ \"\$(sha256sum <'$TEST_TMP/long.bin' | cut -d' ' -f1)\" = '$want' ]"

# 5. SIGTERM: stop accepting at once, let a running download finish.
get keep.example.com /files/big.bin -f --limit-rate 3M -o "$TEST_TMP/last.bin" &
LAST=$!
sleep 1
kill -TERM $SERVE_PID
check "after SIGTERM a new connection is refused at once" \
	wait_for 2 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$FRONT)"
check "the daemon is still up, draining" kill -0 $SERVE_PID
wait $LAST
rc=$?
check "the download started before SIGTERM finishes intact (curl status $rc)" bash -c "[ $rc = 0 ] && [ \"\$(sha256sum <'$TEST_TMP/last.bin' | cut -d' ' -f1)\" = '$want' ]"
check "then the daemon exits" wait_for 10 bash -c "! kill -0 $SERVE_PID"
check "and said it drained the front" grep -q 'draining: not accepting' "$TEST_TMP/serve.log"
check_fails "no sanitizer report" grep -q 'ERROR: AddressSanitizer\|runtime error' "$TEST_TMP/serve.log"
finish
