#!/bin/bash
# nginx mode (docs/nginx.md) with Debian's real nginx, run as an
# unprivileged master (user nobody, its own -p prefix and -c config) on
# loopback ports, and real Pebble, whose HTTP-01 requests reach certherd
# through nginx (the catch-all server of `certherd nginx snippet`):
#  - server-blocks with a user template: N domains registered through the
#    API are each served by nginx with their own certificate (one
#    `openssl s_client -servername` per domain), keys 0600 owned by
#    nginx.key_owner; an HTTP request reaches the upstream;
#  - a renewed certificate is served after the batched reload, and the
#    daemon's handshake check says so;
#  - a broken template (an unknown directive, then an unknown placeholder)
#    never reaches nginx: the include stays as it was, nginx keeps serving
#    and is not reloaded, the failure is in the new domain's history; a
#    fixed template is picked up at SIGHUP;
#  - domains added one by one: at most one nginx reload per
#    nginx.reload_interval (from nginx's own log);
#  - a removed domain leaves the include at the next reload and its files
#    are deleted after store.keep_removed;
#  - sni-variable: one server block, every domain served by its own
#    certificate, adding domains and renewing needs no reload;
#  - import-certbot: a certbot directory's lineages are registered and
#    keep their certificates (not re-issued), then served by nginx;
#  - the status page (GET /v1/status "nginx", `certherd status`) and
#    /metrics count reloads (the same number as nginx's own log), failed
#    `nginx -t` checks, refused templates and handshake mismatches, and
#    show the last reload, check and verification: after the issuance,
#    after each broken template, after the fix, and after a mismatch made
#    on purpose (a hand-written block that shadows a domain).
# N_DOMAINS (default 200) sets the count; t_nginx_bulk.sh runs 2,000.
# asan: yes
# timeout: 900
. "$(dirname "$0")/lib.sh"

N=${N_DOMAINS:-200}
[ -x "$(command -v nginx || echo /usr/sbin/nginx)" ] ||
	{ fail "nginx is installed (scripts/install-deps.sh)"; finish; }

ca_start || { fail "test CA starts"; finish; }
chmod 755 "$TEST_TMP"
NG=$TEST_TMP/nginx
TLS_PORT=18443
APP_PORT=18080
CH_PORT=18402
INCLUDE=$NG/conf/certherd.conf
nginx_nobody "$NG"
ch() { "$CERTHERD" -c "$CONF" "$@"; }

# The challenge forwarding, as `certherd nginx snippet` prints it, moved
# from port 80 to the port Pebble validates on.
"$CERTHERD" --set "http.listen=127.0.0.1:$CH_PORT" nginx snippet >"$TEST_TMP/snippet.txt"
check "nginx snippet forwards to http.listen" grep -q "proxy_pass http://127.0.0.1:$CH_PORT;" "$TEST_TMP/snippet.txt"
sed -n '/^server {/,/^}/p' "$TEST_TMP/snippet.txt" |
	sed "s/listen 80 default_server;/listen 127.0.0.1:$HTTP01_PORT default_server;/; /listen \[::\]:80/d" \
		>"$NG/conf/acme.conf"

{ nginx_head "$NG" "$NG/logs/error.log" notice nobody; cat <<EOF
    access_log off;
    server_names_hash_max_size 16384;
    server_names_hash_bucket_size 128;
    include $NG/conf/acme.conf;
    # hand-written blocks the test adds (shadow.conf), before certherd's
    include $NG/conf/extra-*.conf;
    server {
        listen 127.0.0.1:$APP_PORT;
        location / { return 200 "app \$host\n"; }
    }
    include $INCLUDE;
}
EOF
} >"$NG/conf/nginx.conf"
: >"$INCLUDE"

nginx_start() { nginx_nobody_start; }
nginx_stop() {
	[ -s "$NG/logs/nginx.pid" ] && kill -QUIT "$(cat "$NG/logs/nginx.pid")" 2>/dev/null
	wait_for 10 bash -c "! test -e $NG/logs/nginx.pid"
}
check "nginx starts as nobody with the snippet and an empty include" nginx_start
check "nginx runs as nobody" bash -c "[ \"\$(ps -o user= -p \$(cat $NG/logs/nginx.pid))\" = nobody ]"
# reloads nginx really did (its own log: "signal 1 (SIGHUP) received")
reloads() { grep -c 'SIGHUP) received' "$NG/logs/error.log"; }

# config PHASE STRATEGY [TEMPLATE]: a fresh state for the phase
config() {
	S=$TEST_TMP/$1
	LIVE=$S/live
	CONF=$S/certherd.conf
	mkdir -p "$S"
	cat >"$CONF" <<EOF
[acme]
directory = $ACME_DIRECTORY
ca_bundle = $CA_BUNDLE
concurrency = 25
[store]
state_dir = $S/state
live_dir = $LIVE
keep_removed = 4s
[http]
listen = 127.0.0.1:$CH_PORT
[api]
socket = $S/api.sock
[preflight]
enabled = false
[renew]
; renewals here are asked for with certherd renew; Pebble 2.10 sometimes
; answers a newOrder with replaces by "could not find an order for the
; given certificate" (500), which is not what this test is about
ari = false
[nginx]
enabled = true
strategy = $2
include = $INCLUDE
nginx = $NGINX_CMD
upstream = 127.0.0.1:$APP_PORT
listen = 127.0.0.1:$TLS_PORT
reload_interval = 3s
key_owner = nobody:nogroup
${3:+template = $3}
EOF
}
serve() {
	rm -f "$S/api.sock"
	bg "serve-$(basename "$S")" "$CERTHERD" -c "$CONF" serve
	SERVE_PID=$BG_PID
	SERVE_LOG=$TEST_TMP/serve-$(basename "$S").log
	wait_for 30 test -S "$S/api.sock"
}
stop_serve() {
	kill -TERM "$SERVE_PID" 2>/dev/null
	wait_for 20 bash -c "! kill -0 $SERVE_PID 2>/dev/null"
}
n_valid() { ch domains ls --json 2>/dev/null | jq -s '[.[] | select(.state == "valid")] | length'; }
all_valid() { [ "$(n_valid)" = "$1" ]; }
served() {
	openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
on_disk() { openssl x509 -in "$LIVE/$1/cert.pem" -noout -serial | cut -d= -f2; }
serves_own() { local s; s=$(served "$1"); [ -n "$s" ] && [ "$s" = "$(on_disk "$1")" ]; }
# every_served NAME...: every name gets its own certificate from nginx
every_served() {
	local bad=0 d
	for d in "$@"; do
		if ! serves_own "$d"; then
			bad=$((bad + 1))
			[ $bad -le 3 ] && echo "$d: nginx serves '$(served "$d")', live/ has $(on_disk "$d" 2>&1)"
		fi
	done
	echo "$bad of $# names not served with their own certificate"
	[ $bad = 0 ]
}
history_has() { ch domains show "$1" --json | jq -e --arg k "$2" '[.history[]? | select(.kind == $k)] | length > 0' >/dev/null; }
# ngs JQ: the status page's "nginx" object passes the jq test JQ
ngs() { ch status --json | jq -e ".nginx | $1"; }
# metric NAME{LABELS}: its value on /metrics
metric() { curl -s --unix-socket "$S/api.sock" http://localhost/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
export -f ch ngs metric
export CERTHERD CONF S

# ---------------------------------------------------------------- server-blocks
TPL=$TEST_TMP/template.conf
cat >"$TPL" <<'EOF'
# a platform's block, with certherd's placeholders
server {
    listen {{listen}} ssl;
    server_name {{domain}};
    ssl_certificate {{fullchain}};
    ssl_certificate_key {{privkey}};
    add_header X-Served-By "template v1";
    location / { proxy_pass {{upstream}}; proxy_set_header Host $host; }
}
EOF
config blocks server-blocks "$TPL"
serve || fail "certherd serve starts (server-blocks)"
NAMES=()
for i in $(seq -w 1 "$N"); do NAMES+=("b$i.nginx.test"); done
printf '%s\n' "${NAMES[@]}" >"$TEST_TMP/blocks.txt"
T0=$SECONDS
check "$N domains registered through the API" ch domains add --file "$TEST_TMP/blocks.txt"
check "all $N issued" wait_for 400 all_valid "$N"
note "issued $N in $((SECONDS - T0)) s"
check "the include has a server block per domain" \
	wait_for 30 bash -c "[ \$(grep -c '^    server_name ' $INCLUDE) = $N ]"
wait_for 30 serves_own "${NAMES[$((N - 1))]}"
check "nginx serves each of the $N domains its own certificate" every_served "${NAMES[@]}"
check "an https request reaches the upstream through the template's block" \
	bash -c "curl -sk --resolve ${NAMES[0]}:$TLS_PORT:127.0.0.1 https://${NAMES[0]}:$TLS_PORT/ | grep -qx 'app ${NAMES[0]}'"
check "privkey.pem is 0600 and owned by nobody (nginx.key_owner)" \
	bash -c "[ \"\$(stat -c '%a %U' $LIVE/${NAMES[0]}/privkey.pem)\" = '600 nobody' ]"
check "the daemon verified by handshake" grep -q 'verified: nginx serves the new certificate' "$SERVE_LOG"
check "status: reloads as many as nginx's log, none failed, last reload ok" \
	wait_for 20 bash -c "ch status --json | jq -e --argjson r \$(grep -c 'SIGHUP) received' $NG/logs/error.log) '.nginx | .reloads == \$r and .reloads_failed == 0 and .checks_failed == 0 and .refused == 0 and .last_reload.result == \"ok\" and .last_check.result == \"ok\" and .domains == $N and .strategy == \"server-blocks\"'"
check "status: the last verification sampled names, no mismatch" \
	ngs '.last_verify.names >= 1 and .last_verify.mismatches == 0 and .verify_mismatches == 0'
check "metrics: certherd_nginx_reloads_total{result=ok} is the status page's count" \
	bash -c "[ \"\$(metric 'certherd_nginx_reloads_total{result=\"ok\"}')\" = \"\$(ch status --json | jq .nginx.reloads)\" ]"
check "metrics: no failed check, a last reload timestamp, success 1" \
	bash -c "[ \"\$(metric 'certherd_nginx_checks_total{result=\"failed\"}')\" = 0 ] && [ \"\$(metric certherd_nginx_last_reload_success)\" = 1 ] && [ -n \"\$(metric certherd_nginx_last_reload_timestamp_seconds)\" ]"
check "certherd status shows the nginx section" bash -c "ch status | grep -A30 '^nginx:' | grep -Eq '^  reloads_failed: +0\$'"

# A renewal: the new certificate is on disk at once, served after the
# batched reload.
R=${NAMES[1]}
OLD=$(on_disk "$R")
check "renew $R" ch renew "$R"
check "$R renewed (new serial on disk)" wait_for 60 bash -c "[ \"\$(openssl x509 -in $LIVE/$R/cert.pem -noout -serial | cut -d= -f2)\" != $OLD ]"
check "nginx serves $R's renewed certificate after the reload" wait_for 20 serves_own "$R"
check "the renewal was verified by handshake" wait_for 25 bash -c "grep -q 'domain=$R.*verified' $SERVE_LOG"

# Domains added one by one: nginx reloads at most once per 3 s interval.
R0=$(reloads)
ADDED=()
for i in $(seq 1 20); do
	ch domains add "one$i.nginx.test" >/dev/null
	ADDED+=("one$i.nginx.test")
	sleep 0.4
done
check "the 20 added one by one are issued" wait_for 120 all_valid $((N + 20))
check "and all served" wait_for 20 every_served "${ADDED[@]}"
grep 'SIGHUP) received' "$NG/logs/error.log" | tail -n +$((R0 + 1)) |
	awk '{print $1" "$2}' | while read -r ts; do date -d "${ts//\//-}" +%s; done >"$TEST_TMP/reload-times.txt"
note "reloads while adding one by one: $(wc -l <"$TEST_TMP/reload-times.txt") (nginx's log)"
check "at most one reload per reload_interval (3 s) while adding one by one" \
	awk 'NR > 1 && $1 - p < 2 { print "reloads " $1 - p " s apart"; bad = 1 } { p = $1 } END { exit bad }' "$TEST_TMP/reload-times.txt"
check "fewer reloads than domains added" bash -c "[ $(wc -l <"$TEST_TMP/reload-times.txt") -lt 20 ]"

# A broken template never reaches nginx.
sleep 4 # past the interval: the next change is checked at once
cp "$INCLUDE" "$TEST_TMP/include.good"
R0=$(reloads)
sed -i 's/add_header X-Served-By "template v1";/add_hedaer X-Served-By "broken";/' "$TPL"
check "a domain added with a broken template" ch domains add broken.nginx.test
check "nginx -t refused it, logged with nginx's message" \
	wait_for 90 grep -q 'nginx -t failed.*unknown directive' "$SERVE_LOG"
check "the include is the previous one" cmp "$INCLUDE" "$TEST_TMP/include.good"
check "no backup left behind" bash -c "! test -e $INCLUDE.certherd-old"
check "nginx was not reloaded" bash -c "[ \$(grep -c 'SIGHUP) received' $NG/logs/error.log) = $R0 ]"
check "status: a failed nginx -t, with nginx's message; the reload count did not move" \
	ngs ".checks_failed >= 1 and .last_check.result == \"failed\" and (.last_check.message | test(\"unknown directive\")) and .reloads == $R0"
# (each pass until the template is fixed fails the same check again)
check "metrics: certherd_nginx_checks_total{result=failed} counts it" \
	bash -c "[ \"\$(metric 'certherd_nginx_checks_total{result=\"failed\"}')\" -ge 1 ]"
check "nginx still serves the old configuration" every_served "${NAMES[@]:0:5}"
check "broken.nginx.test is issued meanwhile" wait_for 60 all_valid $((N + 21))
check "the failure is in broken.nginx.test's history" wait_for 20 history_has broken.nginx.test nginx-check-failed
check "nginx was still not reloaded" bash -c "[ \$(grep -c 'SIGHUP) received' $NG/logs/error.log) = $R0 ]"
check "broken.nginx.test is not in the include nginx has" bash -c "! grep -q 'server_name broken.nginx.test;' $INCLUDE"
sed -i 's/add_hedaer X-Served-By "broken";/add_header X-Served-By "{{nope}}";/' "$TPL"
kill -HUP "$SERVE_PID"
check "an unknown placeholder is refused before nginx sees it" wait_for 20 grep -q 'unknown placeholder {{nope}} (known' "$SERVE_LOG"
check "the include is still the previous one" cmp "$INCLUDE" "$TEST_TMP/include.good"
check "status: the refused template counted, with certherd's reason; no nginx -t ran for it" \
	ngs ".refused >= 1 and .last_refused.result == \"refused\" and (.last_refused.message | test(\"unknown placeholder\")) and .last_check.result == \"failed\""
check "metrics: certherd_nginx_refused_total counts it" bash -c "[ \"\$(metric certherd_nginx_refused_total)\" -ge 1 ]"
sed -i 's/add_header X-Served-By "{{nope}}";/add_header X-Served-By "template v2";/' "$TPL"
kill -HUP "$SERVE_PID"
check "the fixed template is picked up at SIGHUP: broken.nginx.test served" wait_for 30 serves_own broken.nginx.test
check "with the new template" bash -c "curl -skI --resolve broken.nginx.test:$TLS_PORT:127.0.0.1 https://broken.nginx.test:$TLS_PORT/ | grep -qi 'x-served-by: template v2'"
check "status: after the fix one more reload, the last check and reload ok" \
	wait_for 20 ngs ".reloads >= $((R0 + 1)) and .last_check.result == \"ok\" and .last_reload.result == \"ok\" and .checks_failed >= 1 and .reloads_failed == 0"

# Removal: out of the include at the next reload, files after keep_removed.
G=${NAMES[2]}
check "remove $G" ch domains rm "$G"
check "$G leaves the include" wait_for 20 bash -c "! grep -q 'server_name $G;' $INCLUDE"
check "nginx no longer serves $G's certificate" wait_for 20 bash -c "[ \"\$(openssl s_client -connect 127.0.0.1:$TLS_PORT -servername $G </dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2)\" != $(on_disk "$G") ]"
check "its live/ files are deleted after store.keep_removed" wait_for 20 bash -c "! test -e $LIVE/$G"
check "the other domains are still served" every_served "${NAMES[@]:3:5}"
check "no error from nginx checks or handshakes but the broken template's" \
	bash -c "! grep -E 'nginx-mismatch|nginx reload failed' $SERVE_LOG"
stop_serve
cp -a "$LIVE" "$TEST_TMP/blocks-live" # certbot material for the import below

# ---------------------------------------------------------------- sni-variable
nginx_stop
: >"$INCLUDE"
nginx_start || fail "nginx restarts"
config sni sni-variable
serve || fail "certherd serve starts (sni-variable)"
check "the include is one server block with \$ssl_server_name paths" \
	wait_for 20 bash -c "[ \$(grep -c '^server {' $INCLUDE) = 1 ] && grep -q 'ssl_certificate $LIVE/\$ssl_server_name/fullchain.pem;' $INCLUDE"
check "no ssl_certificate_cache for nginx $(nginx -v 2>&1 | sed 's/.*\///')" grep -q 'no ssl_certificate_cache' "$INCLUDE"
wait_for 20 grep -q 'nginx reloaded' "$SERVE_LOG"
sleep 1
R0=$(reloads)
SNAMES=()
for i in $(seq -w 1 "$N"); do SNAMES+=("s$i.nginx.test"); done
printf '%s\n' "${SNAMES[@]}" >"$TEST_TMP/sni.txt"
check "$N domains registered through the API" ch domains add --file "$TEST_TMP/sni.txt"
check "all $N issued" wait_for 400 all_valid "$N"
check "nginx serves each of the $N domains its own certificate" wait_for 20 every_served "${SNAMES[@]}"
R=${SNAMES[0]}
OLD=$(on_disk "$R")
# Who owns the renewed privkey.pem the instant it is renamed into place
# (inotify IN_MOVED_TO, then stat at once): the workers read it at the
# next handshake, so it must be nginx.key_owner's from the start, never
# certherd's for the moment before a chown.
cat >"$TEST_TMP/watch_owner.py" <<'EOF'
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
d = sys.argv[1].encode()
if fd < 0 or libc.inotify_add_watch(fd, d, 0x80) < 0:  # IN_MOVED_TO
    sys.exit("inotify: errno %d" % ctypes.get_errno())
print("watching", flush=True)
while True:
    buf, i = os.read(fd, 65536), 0
    while i < len(buf):
        _, _, _, n = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + n].rstrip(b"\0")
        i += 16 + n
        if name == b"privkey.pem":
            st = os.stat(os.path.join(d, name))
            print("privkey.pem %d %o" % (st.st_uid, st.st_mode & 0o777), flush=True)
EOF
bg watch-owner python3 "$TEST_TMP/watch_owner.py" "$LIVE/$R"
wait_for 10 grep -q watching "$TEST_TMP/watch-owner.log"
check "renew $R" ch renew "$R"
check "$R renewed" wait_for 60 bash -c "[ \"\$(openssl x509 -in $LIVE/$R/cert.pem -noout -serial | cut -d= -f2)\" != $OLD ]"
check "the renewed privkey.pem was nobody's and 0600 the instant it was in place" \
	bash -c "grep -q '^privkey.pem' $TEST_TMP/watch-owner.log && ! grep '^privkey.pem' $TEST_TMP/watch-owner.log | grep -v '^privkey.pem $(id -u nobody) 600\$'"
check "nginx serves the renewed certificate" wait_for 10 serves_own "$R"
check "sni-variable: adding $N domains and a renewal needed no reload" bash -c "[ \$(grep -c 'SIGHUP) received' $NG/logs/error.log) = $R0 ]"
check "the renewal was verified by handshake without a reload" wait_for 25 bash -c "grep -q 'domain=$R.*verified' $SERVE_LOG"
check "an unknown name gets no certificate (no file to read)" bash -c "[ -z \"\$(openssl s_client -connect 127.0.0.1:$TLS_PORT -servername unknown.nginx.test </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null)\" ]"
check "status: sni-variable, the renewal verified, no mismatch" \
	ngs '.strategy == "sni-variable" and .last_verify.names >= 1 and .last_verify.mismatches == 0 and .verify_mismatches == 0'
# A mismatch made on purpose: a hand-written block for one domain (with
# another domain's files) shadows certherd's; after its renewal the
# daemon's handshake check sees nginx serve something else (20 s of
# retries) and says so in the status page and the metrics.
X=${SNAMES[1]}
cat >"$NG/conf/extra-shadow.conf" <<EOF
server {
    listen 127.0.0.1:$TLS_PORT ssl;
    server_name $X;
    ssl_certificate $LIVE/${SNAMES[2]}/fullchain.pem;
    ssl_certificate_key $LIVE/${SNAMES[2]}/privkey.pem;
}
EOF
$NGINX_CMD -s reload
check "the shadowing block is in force" wait_for 20 bash -c "[ \"\$(openssl s_client -connect 127.0.0.1:$TLS_PORT -servername $X </dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2)\" = $(on_disk "${SNAMES[2]}") ]"
check "renew $X" ch renew "$X"
check "the daemon reports the mismatch" wait_for 90 grep -q "domain=$X.*serves certificate" "$SERVE_LOG"
check "status: one mismatch, in the last verification, with its message" \
	wait_for 10 ngs ".verify_mismatches == 1 and .last_verify.mismatches == 1 and (.last_verify.message | test(\"$X\"))"
check "metrics: certherd_nginx_verify_mismatches_total 1, last_verify_mismatches 1" \
	bash -c "[ \"\$(metric certherd_nginx_verify_mismatches_total)\" = 1 ] && [ \"\$(metric certherd_nginx_last_verify_mismatches)\" = 1 ]"
check "the mismatch is in $X's history" history_has "$X" nginx-mismatch
rm -f "$NG/conf/extra-shadow.conf"
$NGINX_CMD -s reload
stop_serve
# A key left root's (written before key_owner was set, or by another
# tool): the first pass after a start hands every key over, not only
# those the sni-variable include names
K=${SNAMES[3]}
chown root:root "$LIVE/$K/privkey.pem"
check "a root-owned key is refused to nginx's workers" bash -c "! openssl s_client -connect 127.0.0.1:$TLS_PORT -servername $K </dev/null 2>/dev/null | grep -q 'BEGIN CERT'"
serve || fail "certherd serve restarts (sni-variable)"
check "sni-variable: the first pass gives every key to nginx.key_owner" \
	wait_for 20 bash -c "[ \"\$(stat -c %U $LIVE/$K/privkey.pem)\" = nobody ]"
check "and nginx serves $K again" wait_for 10 serves_own "$K"
stop_serve

# ---------------------------------------------------------------- import-certbot
CB=$TEST_TMP/letsencrypt
IMP=("${NAMES[@]:3:3}")
for d in "${IMP[@]}"; do
	mkdir -p "$CB/archive/$d" "$CB/live/$d" "$CB/renewal"
	cp "$TEST_TMP/blocks-live/$d/fullchain.pem" "$CB/archive/$d/fullchain1.pem"
	cp "$TEST_TMP/blocks-live/$d/privkey.pem" "$CB/archive/$d/privkey1.pem"
	ln -s "../../archive/$d/fullchain1.pem" "$CB/live/$d/fullchain.pem"
	ln -s "../../archive/$d/privkey1.pem" "$CB/live/$d/privkey.pem"
	cat >"$CB/renewal/$d.conf" <<EOF
# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/$d
cert = /etc/letsencrypt/live/$d/cert.pem
privkey = /etc/letsencrypt/live/$d/privkey.pem
chain = /etc/letsencrypt/live/$d/chain.pem
fullchain = /etc/letsencrypt/live/$d/fullchain.pem

[renewalparams]
account = 0123456789abcdef
authenticator = webroot
server = https://acme-v02.api.letsencrypt.org/directory
EOF
done
# one lineage whose key is not its certificate's
d=${NAMES[7]}
mkdir -p "$CB/live/$d"
cp "$TEST_TMP/blocks-live/$d/fullchain.pem" "$CB/live/$d/fullchain.pem"
cp "$TEST_TMP/blocks-live/${NAMES[8]}/privkey.pem" "$CB/live/$d/privkey.pem"
printf 'version = 2.1.0\n' >"$CB/renewal/$d.conf"
nginx_stop
: >"$INCLUDE"
nginx_start || fail "nginx restarts"
config import server-blocks
"$CERTHERD" -c "$CONF" import-certbot "$CB" >"$TEST_TMP/import.log" 2>&1
note "import-certbot exit status $? (1 expected: one lineage has a wrong key)"
check "3 domains imported, the bad lineage refused" \
	bash -c "grep -q '3 domains imported' $TEST_TMP/import.log && grep -q 'failed lineage ${NAMES[7]}: privkey.pem is not the key' $TEST_TMP/import.log"
serve || fail "certherd serve starts (import)"
check "the imported domains are valid" wait_for 20 all_valid 3
for d in "${IMP[@]}"; do
	check "$d keeps its certbot certificate" bash -c "[ \"\$(openssl x509 -in $LIVE/$d/cert.pem -noout -serial)\" = \"\$(openssl x509 -in $TEST_TMP/blocks-live/$d/cert.pem -noout -serial)\" ]"
done
check "nginx serves the imported certificates" wait_for 20 every_served "${IMP[@]}"
sleep 3
check "nothing was re-issued" bash -c "! grep -qE 'certificate (issued|renewed)' $TEST_TMP/serve-import.log"
check "the history says imported" history_has "${IMP[0]}" imported
stop_serve
finish
