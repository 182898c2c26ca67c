#!/bin/bash
# Front mode: certherd serve terminates TLS for every registered domain and
# hands the decrypted stream to a real nginx (Debian's) listening with
# proxy_protocol on loopback. Real Pebble issues the certificates; real
# clients (openssl s_client -servername, curl --resolve) check that:
# every name is served its own certificate, chaining to Pebble's root; a
# name refused before it was added through the API is served after it is
# issued, without a restart; nginx reads the client's address from the
# PROXY v2 header (its log shows $proxy_protocol_addr = the client's own
# source address, 127.0.0.2, not certherd's); unknown and missing SNI get
# an unrecognized_name alert; TLS 1.2 and 1.3, not 1.1; session tickets
# resume; 64 MiB both ways arrive intact; a renewal changes the served
# certificate while a slow download started before it finishes intact;
# garbage, half ClientHellos and silent clients neither stop nor slow a
# good handshake, and are closed after the handshake timeout; clients that
# reset right after their handshake do not kill the daemon (SIGPIPE).
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"

FRONT=8443
UP=8080
ca_start || { fail "test CA starts"; finish; }
STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
NG=$TEST_TMP/nginx
mkdir -p "$NG/tmp" "$NG/www"
{ nginx_head "$NG" "$TEST_TMP/nginx-error.log" info; cat <<NGINX
	log_format pp '\$proxy_protocol_addr \$remote_addr \$host \$request_uri';
	server {
		listen 127.0.0.1:$UP proxy_protocol;
		set_real_ip_from 127.0.0.1;
		real_ip_header proxy_protocol;
		access_log $TEST_TMP/nginx-access.log pp;
		client_max_body_size 0;
		location / { return 200 "hello \$host from \$remote_addr\n"; }
		location /files/ {
			root $NG/www;
			dav_methods PUT;
			create_full_put_path on;
		}
	}
}
NGINX
} >"$NG/nginx.conf"
bg nginx nginx -g "daemon off;" -e "$TEST_TMP/nginx-error.log" -p "$NG" -c "$NG/nginx.conf"
check "nginx starts with proxy_protocol on 127.0.0.1:$UP" wait_for 10 \
	bash -c "exec 3<>/dev/tcp/127.0.0.1/$UP"

cat >"$CONF" <<CONF
[acme]
directory = $ACME_DIRECTORY
ca_bundle = $CA_BUNDLE
email = ops@example.com

[store]
state_dir = $STATE

[http]
listen = 127.0.0.1:$HTTP01_PORT

[preflight]
resolver = $DNS_SERVER
addresses = 127.0.0.1

[renew]
; a forced renewal without ARI's "replaces": Pebble 2.10 sometimes answers
; newOrder with "could not find an order for the given certificate" to a
; replaces naming a certificate whose serial has its high bit set, and
; the swap, not ARI, is what this test is about
ari = false

[front]
enabled = true
listen = 127.0.0.1:$FRONT
upstream = 127.0.0.1:$UP
workers = 2
cache_size = 100
CONF
ch() { "$CERTHERD" -c "$CONF" "$@"; }
bg serve "$CERTHERD" -c "$CONF" serve
SERVE_PID=$BG_PID
check "daemon starts in front mode" wait_for 30 test -S "$STATE/api.sock"
check "front listens on $FRONT" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FRONT"

n_valid() { ch domains ls --json 2>/dev/null | grep -c '"state": *"valid"'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }
# served NAME [s_client options...]: the serial of the certificate the
# front serves for SNI NAME (empty when the handshake fails).
served() {
	local name=$1
	shift
	openssl s_client -connect 127.0.0.1:$FRONT -servername "$name" "$@" \
		</dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null
}
live_serial() { openssl x509 -noout -serial -in "$STATE/live/$1/cert.pem"; }
get() { # get NAME PATH [curl options...]
	local name=$1 path=$2
	shift 2
	curl -sS --cacert "$PEBBLE_ROOT" --resolve "$name:$FRONT:127.0.0.1" \
		"$@" "https://$name:$FRONT$path"
}

# A name asked for before it exists is refused (and remembered as
# absent); once issued it must be served anyway.
openssl s_client -connect 127.0.0.1:$FRONT -servername late.example.com \
	</dev/null >"$TEST_TMP/late-before.log" 2>&1
check "a name not registered gets the unrecognized_name alert" \
	grep -q 'unrecognized name' "$TEST_TMP/late-before.log"

for i in 1 2 3 4 5; do echo "f$i.example.com"; done >"$TEST_TMP/names.txt"
check "add 5 domains" ch domains add --file "$TEST_TMP/names.txt"
check "all 5 become valid" wait_for 120 all_valid 5
bad=""
for i in 1 2 3 4 5; do
	n=f$i.example.com
	[ -n "$(served $n)" ] && [ "$(served $n)" = "$(live_serial $n)" ] || bad="$bad $n"
done
check "each name is served its own certificate (${bad:-all 5})" test -z "$bad"
bad=""
for i in 1 2 3 4 5; do
	n=f$i.example.com
	body=$(get $n /) && [ "$body" = "hello $n from 127.0.0.1" ] || bad="$bad $n:$body"
done
check "curl verifies each to Pebble's root and nginx answers for the name (${bad:-ok})" test -z "$bad"

body=$(get f1.example.com /pp-check --interface 127.0.0.2)
check "nginx sees the client's address from the PROXY header ($body)" \
	test "$body" = "hello f1.example.com from 127.0.0.2"
check "nginx's log shows \$proxy_protocol_addr 127.0.0.2" \
	grep -qx '127.0.0.2 127.0.0.2 f1.example.com /pp-check' "$TEST_TMP/nginx-access.log"

check "a name added through the API after a refused handshake" ch domains add late.example.com
check "becomes valid" wait_for 60 all_valid 6
check "and is served without a restart" test "$(served late.example.com)" = "$(live_serial late.example.com)"

openssl s_client -connect 127.0.0.1:$FRONT -servername nope.example.com </dev/null \
	>"$TEST_TMP/unknown.log" 2>&1
check "unknown SNI: alert unrecognized_name" grep -q 'unrecognized name' "$TEST_TMP/unknown.log"
openssl s_client -connect 127.0.0.1:$FRONT -noservername </dev/null \
	>"$TEST_TMP/nosni.log" 2>&1
check "no SNI: alert unrecognized_name" grep -q 'unrecognized name' "$TEST_TMP/nosni.log"

check "TLS 1.3 handshakes" bash -c "[ -n \"\$(openssl s_client -connect 127.0.0.1:$FRONT -servername f2.example.com -tls1_3 </dev/null 2>/dev/null | grep 'TLSv1.3')\" ]"
check "TLS 1.2 handshakes" bash -c "[ -n \"\$(openssl s_client -connect 127.0.0.1:$FRONT -servername f2.example.com -tls1_2 </dev/null 2>/dev/null | grep 'TLSv1.2')\" ]"
# (SECLEVEL=0: today's openssl would not even offer TLS 1.1 otherwise)
openssl s_client -connect 127.0.0.1:$FRONT -servername f2.example.com -tls1_1 \
	-cipher 'DEFAULT:@SECLEVEL=0' </dev/null >"$TEST_TMP/tls11.log" 2>&1
check "TLS 1.1 is refused with a protocol_version alert" grep -q 'alert protocol version' "$TEST_TMP/tls11.log"
# The upstream is connected at a client's first bytes: handshakes that
# end without a request (preconnects, scanners) cost it nothing.
upconn() { curl -fsS --unix-socket "$STATE/api.sock" http://x/metrics | awk '$1 == "certherd_front_upstream_connects_total" { print $2 }'; }
u0=$(upconn)
for i in 1 2 3 4 5; do
	openssl s_client -connect 127.0.0.1:$FRONT -servername f2.example.com </dev/null >/dev/null 2>&1
done
u1=$(upconn)
check "5 handshakes with no request open no upstream connection ($u0 -> $u1)" test -n "$u0" -a "$u0" = "$u1"
get f2.example.com / -o /dev/null
u2=$(upconn)
check "one request opens one ($u1 -> $u2)" test "$u2" = $((u1 + 1))
# a client's Finished and its first requests in one segment: the front
# reads them in one read, and the second request, already inside SSL,
# is relayed without waiting for a poll
check "Finished + two pipelined requests in one write: both answered" \
	python3 "$SRC/tests/integration/tls_coalesce.py" $FRONT f2.example.com "$PEBBLE_ROOT"
alpn=$(get f2.example.com / -o /dev/null -w '%{http_version}')
check "curl offering h2 and http/1.1 gets http/1.1 (no h2c upstream) ($alpn)" test "$alpn" = 1.1

openssl s_client -connect 127.0.0.1:$FRONT -servername f3.example.com -tls1_2 \
	-sess_out "$TEST_TMP/sess12" </dev/null >/dev/null 2>&1
check "a TLS 1.2 session ticket resumes" bash -c "openssl s_client -connect 127.0.0.1:$FRONT -servername f3.example.com -tls1_2 -sess_in '$TEST_TMP/sess12' </dev/null 2>/dev/null | grep -q '^Reused'"
(sleep 1) | openssl s_client -connect 127.0.0.1:$FRONT -servername f3.example.com -tls1_3 \
	-sess_out "$TEST_TMP/sess13" >/dev/null 2>&1
check "a TLS 1.3 ticket resumes" bash -c "(sleep 1) | openssl s_client -connect 127.0.0.1:$FRONT -servername f3.example.com -tls1_3 -sess_in '$TEST_TMP/sess13' 2>/dev/null | grep -q '^Reused'"

# 64 MiB up (PUT through nginx's DAV) and down, compared byte for byte.
head -c $((64 << 20)) /dev/urandom >"$TEST_TMP/big.bin"
want=$(sha256sum <"$TEST_TMP/big.bin" | cut -d' ' -f1)
check "64 MiB uploaded through the front" get f4.example.com /files/big.bin -T "$TEST_TMP/big.bin" -o /dev/null -f
check "arrive intact at nginx" test "$(sha256sum <"$NG/www/files/big.bin" | cut -d' ' -f1)" = "$want"
got=$(get f4.example.com /files/big.bin -f | sha256sum | cut -d' ' -f1)
check "and come back intact" test "$got" = "$want"

# A renewal while a slow download (about 8 s) runs on the old certificate.
old=$(served f5.example.com)
get f5.example.com /files/big.bin -f --limit-rate 8M -o "$TEST_TMP/slow.bin" &
SLOW=$!
check "renew f5 while a slow download runs" ch renew f5.example.com
check "the renewed certificate is stored" wait_for 60 bash -c "[ \"\$(openssl x509 -noout -serial -in '$STATE/live/f5.example.com/cert.pem')\" != '$old' ]"
new=$(served f5.example.com)
check "new handshakes get the renewed certificate ($old -> $new)" \
	bash -c "[ -n '$new' ] && [ '$new' != '$old' ] && [ '$new' = \"\$(openssl x509 -noout -serial -in '$STATE/live/f5.example.com/cert.pem')\" ]"
check "the download started before the renewal was still running" kill -0 $SLOW
wait $SLOW
rc=$?
check "and finishes intact (curl status $rc)" bash -c "[ $rc = 0 ] && [ \"\$(sha256sum <'$TEST_TMP/slow.bin' | cut -d' ' -f1)\" = '$want' ]"

# Garbage, half ClientHellos and silent clients: 60 of them held open
# while good handshakes go on; the front closes them after its 10 s
# handshake timeout.
cat >"$TEST_TMP/abuse.py" <<'PY'
import os, socket, subprocess, sys, time
port, name, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
socks = []
for i in range(60):
    s = socket.create_connection(("127.0.0.1", port))
    if i % 3 == 0:
        s.sendall(os.urandom(300))                    # not TLS at all
    elif i % 3 == 1:
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))  # half a record
    socks.append(s)                                   # i % 3 == 2: silent
t0 = time.time()
for _ in range(10):
    r = subprocess.run(["curl", "-sS", "--max-time", "3", "--cacert", root,
                        "--resolve", f"{name}:{port}:127.0.0.1",
                        f"https://{name}:{port}/"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("hello"):
        print("good client failed:", r.returncode, r.stdout, r.stderr); sys.exit(1)
print(f"10 good requests in {time.time() - t0:.2f}s with 60 bad clients open")
if time.time() - t0 > 5:
    print("too slow"); sys.exit(1)
deadline = time.time() + 20
open_ = list(socks)
for s in open_:
    s.settimeout(max(0.1, deadline - time.time()))
    try:
        while s.recv(4096):
            pass                                      # an alert may come first
    except (socket.timeout, TimeoutError):
        print("a bad client was not closed within 20 s"); sys.exit(1)
    except ConnectionResetError:
        pass
print(f"all 60 closed by the front after {time.time() - t0:.1f}s")
# clients that reset the connection right after the handshake, while the
# front still has to tell the upstream and send close_notify: a write to
# a reset socket must not kill the daemon (SIGPIPE)
import ssl, struct
ctx = ssl.create_default_context(cafile=root)
for i in range(50):
    s = socket.create_connection(("127.0.0.1", port))
    t = ctx.wrap_socket(s, server_hostname=name)
    if i % 2:
        t.sendall(b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\n\r\n")
    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t.close()
print("50 clients reset after their handshake")
PY
check "bad clients do not disturb good ones and are closed" \
	python3 "$TEST_TMP/abuse.py" $FRONT f1.example.com "$PEBBLE_ROOT"
note "$(grep -h 'good requests\|closed by\|reset' "$TEST_TMP/check.log" 2>/dev/null | tr '\n' ' ')"
check "the daemon is still up" kill -0 $SERVE_PID

curl -fsS --unix-socket "$STATE/api.sock" http://x/metrics >"$TEST_TMP/metrics.txt"
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TEST_TMP/metrics.txt"; }
check "metrics: handshakes ok counted ($(metric 'certherd_front_handshakes_total{result="ok"}'))" \
	test "$(metric 'certherd_front_handshakes_total{result="ok"}')" -ge 20
check "metrics: unknown names counted ($(metric 'certherd_front_handshakes_total{result="unknown_name"}'))" \
	test "$(metric 'certherd_front_handshakes_total{result="unknown_name"}')" -ge 2
check "metrics: the missing SNI counted" \
	test "$(metric 'certherd_front_handshakes_total{result="no_sni"}')" -ge 1
# 20 silent + 20 half ClientHellos wait for the timeout; garbage is an error
# (at least: on a loaded machine another client of this test may also be
# slower than the 10 s)
check "metrics: at least 40 handshake timeouts ($(metric 'certherd_front_handshakes_total{result="timeout"}'))" \
	test "$(metric 'certherd_front_handshakes_total{result="timeout"}')" -ge 40
check "metrics: no connection left open but ours" \
	test "$(metric certherd_front_connections)" -le 1
check "metrics: 6 certificates in the cache" \
	test "$(metric 'certherd_front_cache_entries{kind="certificate"}')" = 6
check "SIGTERM stops the daemon cleanly" bash -c "kill -TERM $SERVE_PID && for i in \$(seq 100); do kill -0 $SERVE_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
check_fails "no sanitizer report" grep -q 'ERROR: AddressSanitizer\|runtime error' "$TEST_TMP/serve.log"
finish
