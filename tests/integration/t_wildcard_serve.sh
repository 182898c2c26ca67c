#!/bin/bash
# Serving a wildcard certificate (docs/dns01.md, docs/front.md,
# docs/nginx.md), with real BIND 9 (the zone, TSIG updates, and Pebble's
# resolver), real Pebble and Debian's real nginx. `certherd serve` issues
# *.platform.example through DNS-01, and platform.example and
# own.platform.example through HTTP-01; then, with the same store:
#  - front mode: shop1. and shop2.platform.example are served the
#    wildcard (its SAN, and curl verifies the name against it to Pebble's
#    root), own.platform.example and the base name their own, a name two
#    labels down nothing;
#  - nginx mode, server-blocks: a `server_name *.platform.example` block
#    reads live/_wildcard.platform.example; nginx serves the wildcard to
#    covered names, their own to exact names; a renewed wildcard is served
#    after the reload and the daemon's handshake check (SNI
#    certherd-verify.platform.example) says so;
#  - nginx mode, sni-variable: the map sends covered names to the
#    wildcard's files, exact names to their own; a name added under the
#    wildcard gets its own certificate once issued; removing the wildcard
#    takes the map out and, after store.keep_removed, deletes
#    live/_wildcard.platform.example and nothing of live/platform.example.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/named.sh"

ZONE=platform.example
WILD="*.$ZONE"
OWN=own.$ZONE
FRONT=8443
UP=8080
NGX_TLS=18443
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX_BIN" ] || { fail "nginx is installed (scripts/install-deps.sh)"; finish; }

named_start "$TEST_TMP/named" "$ZONE" || { fail "named starts"; finish; }
chmod 600 "$NAMED_KEY"
export PEBBLE_DNS_SERVER=$NAMED_ADDR
ca_start || { fail "test CA starts"; finish; }

# ---- the upstream: a real nginx, which is also nginx mode's nginx --------
NG=$TEST_TMP/nginx
INCLUDE=$NG/certherd.conf
mkdir -p "$NG/tmp"
{ nginx_head "$NG" "$NG/error.log" notice; cat <<NGINX
	access_log off;
	server {
		listen 127.0.0.1:$UP proxy_protocol;
		listen 127.0.0.1:$((UP + 1));
		location / { return 200 "hello \$host\n"; }
	}
	include $INCLUDE;
}
NGINX
} >"$NG/nginx.conf"
: >"$INCLUDE"
NGINX_CMD="$NGINX_BIN -p $NG -c $NG/nginx.conf -e $NG/error.log"
$NGINX_CMD || { fail "nginx starts"; finish; }
on_exit "[ -s $NG/nginx.pid ] && kill -TERM \$(cat $NG/nginx.pid) 2>/dev/null"
check "nginx starts" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$UP"

STATE=$TEST_TMP/state
LIVE=$TEST_TMP/live
BASECONF=(
	"[store]" "live_dir = $LIVE" "keep_removed = 4s"
	"[renew]" "ari = false"
	"[dns]" "resolver = $NAMED_ADDR" "propagation_timeout = 30s"
	"[dns \"$ZONE\"]" "updater = rfc2136" "server = $NAMED_ADDR"
	"tsig_key_file = $NAMED_KEY"
)
stop_serve() {
	kill -TERM "$SERVE_PID" 2>/dev/null
	wait_for 20 bash -c "! kill -0 $SERVE_PID 2>/dev/null"
}
both_valid() { is_state "$1" valid && is_state "$2" valid; }
is_state() { [ "$(ch domains show --json "$1" 2>/dev/null | jq -r .state)" = "$2" ]; }
# san PORT NAME: the DNS names of the certificate served for SNI NAME
san() {
	openssl s_client -connect "127.0.0.1:$1" -servername "$2" </dev/null 2>/dev/null |
		openssl x509 -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' '
}
serial_at() {
	openssl s_client -connect "127.0.0.1:$1" -servername "$2" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
on_disk() { openssl x509 -in "$LIVE/$1/cert.pem" -noout -serial | cut -d= -f2; }
# serves PORT NAME DIR: nginx or the front serves NAME the certificate in live/DIR
serves() { local s; s=$(serial_at "$1" "$2"); [ -n "$s" ] && [ "$s" = "$(on_disk "$3")" ]; }

# ---------------------------------------------------------------- front mode
serve_conf off "${BASECONF[@]}" \
	"[front]" "enabled = true" "listen = 127.0.0.1:$FRONT" \
	"upstream = 127.0.0.1:$UP" "workers = 1"
serve_start || fail "certherd serve starts in front mode"
check "domains add '$WILD' $ZONE $OWN" ch domains add "$WILD" "$ZONE" "$OWN"
check "the wildcard is issued through DNS-01" wait_for 90 is_state "$WILD" valid
check "$ZONE and $OWN are issued through HTTP-01" wait_for 60 both_valid "$ZONE" "$OWN"
check "the wildcard's files are in live/_wildcard.$ZONE" verify_cert "$TEST_TMP" "_wildcard.$ZONE" "$WILD"
for n in shop1 shop2; do
	check "front: $n.$ZONE is served the wildcard (SAN $(san $FRONT $n.$ZONE))" \
		test "$(san $FRONT "$n.$ZONE")" = "DNS:$WILD"
	body=$(curl -sS --cacert "$PEBBLE_ROOT" --resolve "$n.$ZONE:$FRONT:127.0.0.1" "https://$n.$ZONE:$FRONT/")
	check "front: curl verifies $n.$ZONE against the wildcard and reaches nginx ($body)" \
		test "$body" = "hello $n.$ZONE"
done
check "front: $OWN keeps its own certificate ($(san $FRONT $OWN))" serves $FRONT "$OWN" "$OWN"
check "front: $ZONE has its own, not the wildcard ($(san $FRONT $ZONE))" serves $FRONT "$ZONE" "$ZONE"
check "front: a.b.$ZONE (two labels down) is not served the wildcard" \
	test -z "$(serial_at $FRONT "a.b.$ZONE")"
stop_serve

# ------------------------------------------------------- nginx, server-blocks
ngconf() { # ngconf STRATEGY: nginx mode on the same store
	serve_conf off "${BASECONF[@]}" \
		"[nginx]" "enabled = true" "strategy = $1" "include = $INCLUDE" \
		"nginx = $NGINX_CMD" "upstream = 127.0.0.1:$((UP + 1))" \
		"listen = 127.0.0.1:$NGX_TLS" "reload_interval = 2s"
}
ngconf server-blocks
serve_start || fail "certherd serve starts in nginx mode (server-blocks)"
check "the include has a *.$ZONE block with the wildcard's files" \
	wait_for 20 bash -c "grep -A3 'server_name \\*\\.$ZONE;' $INCLUDE | grep -q 'ssl_certificate $LIVE/_wildcard.$ZONE/fullchain.pem;'"
check "nginx reloaded with it" wait_for 20 grep -q 'nginx reloaded' "$TEST_TMP/serve.log"
for n in shop1 shop2; do
	check "server-blocks: nginx serves $n.$ZONE the wildcard" wait_for 10 serves $NGX_TLS "$n.$ZONE" "_wildcard.$ZONE"
done
check "server-blocks: $OWN its own (exact server_name wins)" serves $NGX_TLS "$OWN" "$OWN"
check "server-blocks: $ZONE its own" serves $NGX_TLS "$ZONE" "$ZONE"
body=$(curl -sS --cacert "$PEBBLE_ROOT" --resolve "shop1.$ZONE:$NGX_TLS:127.0.0.1" "https://shop1.$ZONE:$NGX_TLS/")
check "server-blocks: curl verifies shop1.$ZONE and gets the upstream ($body)" test "$body" = "hello shop1.$ZONE"
# A renewed wildcard: served after the reload, checked by the daemon.
OLD=$(on_disk "_wildcard.$ZONE")
check "renew '$WILD'" ch renew "$WILD"
check "the wildcard is renewed (new serial on disk)" \
	wait_for 90 bash -c "[ \"\$(openssl x509 -in $LIVE/_wildcard.$ZONE/cert.pem -noout -serial | cut -d= -f2)\" != $OLD ]"
check "server-blocks: nginx serves shop1.$ZONE the renewed wildcard" wait_for 20 serves $NGX_TLS "shop1.$ZONE" "_wildcard.$ZONE"
check "the daemon verified the wildcard by handshake" \
	wait_for 30 grep -q 'domain=\*\.platform\.example.*verified: nginx serves the new certificate of 1 sampled domain' "$TEST_TMP/serve.log"
check "no mismatch reported" \
	bash -c "! grep -E 'nginx-mismatch|does not serve|serves certificate .* not the current' $TEST_TMP/serve.log"
stop_serve

# -------------------------------------------------------- nginx, sni-variable
ngconf sni-variable
serve_start || fail "certherd serve starts in nginx mode (sni-variable)"
check "the include maps covered names to the wildcard's files" \
	wait_for 20 bash -c "grep -qF '~*^[a-z0-9-]+\\.platform\\.example\$ _wildcard.$ZONE;' $INCLUDE && grep -qF 'ssl_certificate $LIVE/\$certherd_cert_dir/fullchain.pem;' $INCLUDE"
check "and $OWN to its own" grep -q "^    $OWN $OWN;" "$INCLUDE"
check "sni-variable: nginx serves shop1.$ZONE the wildcard" wait_for 20 serves $NGX_TLS "shop1.$ZONE" "_wildcard.$ZONE"
check "sni-variable: shop2.$ZONE too" serves $NGX_TLS "shop2.$ZONE" "_wildcard.$ZONE"
check "sni-variable: $OWN its own" serves $NGX_TLS "$OWN" "$OWN"
check "sni-variable: $ZONE its own" serves $NGX_TLS "$ZONE" "$ZONE"
check "sni-variable: a.b.$ZONE nothing (no file)" test -z "$(serial_at $NGX_TLS "a.b.$ZONE")"
# A name added under the wildcard gets its own certificate once issued
# (before, the wildcard: how long that lasts is the CA's business).
check "domains add late.$ZONE" ch domains add "late.$ZONE"
late_first=$(san $NGX_TLS "late.$ZONE")
check "late.$ZONE is valid" wait_for 60 is_state "late.$ZONE" valid
check "nginx serves late.$ZONE its own once issued" wait_for 20 serves $NGX_TLS "late.$ZONE" "late.$ZONE"
note "late.$ZONE served right after it was added: ${late_first:-nothing}"
check "late.$ZONE is listed in the map" grep -q "^    late.$ZONE late.$ZONE;" "$INCLUDE"
check "shop1.$ZONE still gets the wildcard" serves $NGX_TLS "shop1.$ZONE" "_wildcard.$ZONE"
check "no mismatch reported in sni-variable" \
	bash -c "! grep -E 'nginx-mismatch|does not serve|serves certificate .* not the current' $TEST_TMP/serve.log"

# Removing the wildcard: the map goes, then its files (only its own).
check "domains rm '$WILD'" ch domains rm "$WILD"
check "the map leaves the include" wait_for 20 bash -c "! grep -q '^map ' $INCLUDE"
check "nginx no longer serves shop1.$ZONE a certificate" \
	wait_for 20 bash -c "[ -z \"\$(openssl s_client -connect 127.0.0.1:$NGX_TLS -servername shop1.$ZONE </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null)\" ]"
check "late.$ZONE still gets its own" serves $NGX_TLS "late.$ZONE" "late.$ZONE"
check "live/_wildcard.$ZONE is deleted after keep_removed" wait_for 20 bash -c "! test -e $LIVE/_wildcard.$ZONE"
check "and live/$ZONE is untouched" verify_cert "$TEST_TMP" "$ZONE"
stop_serve
finish
