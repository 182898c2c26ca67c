#!/bin/bash
# DNS-01 against a real BIND 9 and real Pebble, which resolves and
# validates through that BIND (PEBBLE_DNS_SERVER):
#  - certherd issue: a wildcard and a plain name through RFC 2136 updates
#    signed with TSIG; the TXT records are gone afterwards (dig);
#  - a wrong TSIG key: a clear error, no order left pending at the CA
#    (the challenge was never answered), nothing added to the zone;
#  - the hook updater with a script that writes through nsupdate, called
#    as `HOOK add|remove NAME VALUE`;
#  - a slow update (the hook's nsupdate lands 4 s after it exits): the
#    propagation check waits for it instead of answering the challenge;
#  - certherd serve: `domains add '*.platform.example'` and a plain name
#    with challenge dns-01 through the API, issued from [dns "ZONE"];
#    a wildcard in a zone without updater fails clearly.
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/named.sh"

ZONE=platform.example
named_start "$TEST_TMP/named" "$ZONE" || { fail "named starts"; finish; }
ok "named serves $ZONE on $NAMED_ADDR"
export PEBBLE_DNS_SERVER=$NAMED_ADDR
ca_start || { fail "test CA starts"; finish; }

OUT=$TEST_TMP/out
issue() {
	run_issuing "$CERTHERD" issue --directory "$ACME_DIRECTORY" \
		--ca-bundle "$CA_BUNDLE" --out "$OUT" --no-progress "$@"
}
txt_gone() { [ -z "$(named_txt "$1")" ]; }
# key files are secrets: 0600 or refused
chmod 600 "$NAMED_KEY"

# ---- RFC 2136 with TSIG --------------------------------------------------

check "issue *.$ZONE and www.$ZONE by DNS-01 (rfc2136)" \
	issue --dns-updater rfc2136 --dns-server "$NAMED_ADDR" \
	--tsig-key-file "$NAMED_KEY" --dns-resolver "$NAMED_ADDR" \
	"*.$ZONE" "www.$ZONE"
check "wildcard certificate in live/_wildcard.$ZONE" \
	verify_cert "$OUT" "_wildcard.$ZONE" "*.$ZONE"
check "www certificate verifies" verify_cert "$OUT" "www.$ZONE"
check "TXT records removed afterwards" txt_gone "_acme-challenge.$ZONE"
check "www TXT record removed afterwards" txt_gone "_acme-challenge.www.$ZONE"
# The zone's journal shows the adds and removes really went through BIND.
check "named applied signed updates" grep -q "update.*approved\|updating zone '$ZONE" "$NAMED_DIR/named.log"

# A group-readable key is refused before anything is sent.
cp "$NAMED_KEY" "$TEST_TMP/open.key"
chmod 640 "$TEST_TMP/open.key"
issue --dns-updater rfc2136 --dns-server "$NAMED_ADDR" \
	--tsig-key-file "$TEST_TMP/open.key" "x.$ZONE" >"$TEST_TMP/open.log" 2>&1
rc=$?
check "group-readable TSIG key refused (exit 2)" test "$rc" = 2
check "message names the key file's permissions" grep -q "open.key" "$TEST_TMP/open.log"

# ---- a wrong TSIG key ----------------------------------------------------------

tsig-keygen -a hmac-sha256 certherd-test >"$TEST_TMP/wrong.key"
chmod 600 "$TEST_TMP/wrong.key"
orders_before=$(grep -c "There are now" "$CA_DIR/pebble.log" 2>/dev/null || echo 0)
issue --dns-updater rfc2136 --dns-server "$NAMED_ADDR" \
	--tsig-key-file "$TEST_TMP/wrong.key" --dns-resolver "$NAMED_ADDR" \
	"bad.$ZONE" >"$TEST_TMP/wrongkey.log" 2>&1
rc=$?
check "wrong TSIG key: the name fails (exit 1)" test "$rc" = 1
check "wrong TSIG key: the error says the key was not accepted" \
	grep -q "failed: bad.$ZONE: .*did not accept the TSIG key\|failed: bad.$ZONE: .*NOTAUTH" "$TEST_TMP/wrongkey.log"
check "wrong TSIG key: the secret is not in the output" \
	bash -c "! grep -qF \"\$(sed -n 's/.*secret \"\\(.*\\)\";/\\1/p' '$TEST_TMP/wrong.key')\" '$TEST_TMP/wrongkey.log'"
check "wrong TSIG key: no TXT record added" txt_gone "_acme-challenge.bad.$ZONE"
check "wrong TSIG key: the challenge was never answered" \
	bash -c "! grep -q 'bad.$ZONE' '$CA_DIR/pebble.log' || ! grep -q 'Attempting to validate.*bad.$ZONE' '$CA_DIR/pebble.log'"
check "wrong TSIG key: named logged the bad signature" \
	grep -qi "tsig.*\(bad\|fail\|verify\)\|request has invalid signature" "$NAMED_DIR/named.log"
note "orders in pebble.log before: $orders_before"

# ---- the hook updater -------------------------------------------------------------

HOOK=$TEST_TMP/dns-hook.sh
cat >"$HOOK" <<EOF
#!/bin/bash
# certherd DNS hook: \$1 add|remove, \$2 NAME, \$3 VALUE; nsupdate with the key
set -eu
action=\$1 name=\$2 value=\$3
echo "\$(date +%s.%N) \$action \$name \$value \$CERTHERD_DNS_ZONE" >>"$TEST_TMP/hook-calls.log"
[ "\$CERTHERD_DNS_NAME" = "\$name" ] && [ "\$CERTHERD_DNS_VALUE" = "\$value" ]
case \$action in add) op="update add \$name. 60 IN TXT \"\$value\"" ;;
  remove) op="update delete \$name. IN TXT \"\$value\"" ;; *) exit 64 ;; esac
run() { printf 'server 127.0.0.1 53\nzone $ZONE\n%s\nsend\n' "\$op" | nsupdate -k "$NAMED_KEY"; }
if [ "\$action" = add ] && [ -n "\${SLOW_DNS:-}" ]; then
	# the provider accepts at once and publishes later
	( sleep "\$SLOW_DNS"; run; echo "\$(date +%s.%N) published" >>"$TEST_TMP/hook-calls.log" ) >/dev/null 2>&1 &
	exit 0
fi
run
EOF
chmod 755 "$HOOK"
check "issue hook.$ZONE through the hook updater" \
	issue --dns-updater hook --dns-hook "$HOOK" --dns-resolver "$NAMED_ADDR" "hook.$ZONE"
check "hook certificate verifies" verify_cert "$OUT" "hook.$ZONE"
check "hook called with add then remove" \
	bash -c "grep -q ' add _acme-challenge.hook.$ZONE [A-Za-z0-9_-]\{43\} $ZONE\$' '$TEST_TMP/hook-calls.log' && grep -q ' remove _acme-challenge.hook.$ZONE ' '$TEST_TMP/hook-calls.log'"
check "hook TXT record removed afterwards" txt_gone "_acme-challenge.hook.$ZONE"

# A slow update: the hook exits at once, the record appears 4 s later.
start=$SECONDS
SLOW_DNS=4 issue --dns-updater hook --dns-hook "$HOOK" --dns-resolver "$NAMED_ADDR" \
	--log-level debug "slow.$ZONE" >"$TEST_TMP/slow.log" 2>&1
rc=$?
took=$((SECONDS - start))
check "slow update: issued anyway (exit 0)" test "$rc" = 0
check "slow update: the check waited (took ${took}s >= 4s)" test "$took" -ge 4
check "slow update: the check saw it missing first" grep -q "not yet: .*does not serve the TXT record" "$TEST_TMP/slow.log"
check "slow update: certificate verifies" verify_cert "$OUT" "slow.$ZONE"

# ---- the daemon ----------------------------------------------------------------------

STATE=$TEST_TMP/state
CONF=$TEST_TMP/certherd.conf
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
enabled = false

[dns]
resolver = $NAMED_ADDR
propagation_timeout = 30s

[dns "$ZONE"]
updater = rfc2136
server = $NAMED_ADDR
tsig_key_file = $NAMED_KEY
CONF
ch() { "$CERTHERD" -c "$CONF" "$@"; }
sq() { sqlite3 -cmd '.timeout 5000' "$STATE/certherd.db" "$@"; }
shows() ( set -o pipefail; ch domains show --json "$1" 2>/dev/null | jq -e "$2" >/dev/null )
state_of() { ch domains show --json "$1" 2>/dev/null | jq -r .state; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
bg serve "$CERTHERD" -c "$CONF" serve
check "daemon starts with a [dns \"$ZONE\"] zone" wait_for 30 test -S "$STATE/api.sock"
check "domains add '*.$ZONE'" ch domains add "*.$ZONE"
check "API: api.$ZONE registered with challenge dns-01" \
	curl -fsS --unix-socket "$STATE/api.sock" -H 'Content-Type: application/json' \
	-d "{\"name\": \"api.$ZONE\", \"challenge\": \"dns-01\"}" http://certherd/v1/domains
check "API: a wildcard with http-01 is refused" \
	bash -c "curl -sS --unix-socket '$STATE/api.sock' -d '{\"name\": \"*.x.$ZONE\", \"challenge\": \"http-01\"}' http://certherd/v1/domains | grep -q 'only dns-01'"
check "the wildcard becomes valid" wait_for 90 is_state "*.$ZONE" valid
check "api.$ZONE becomes valid" wait_for 90 is_state "api.$ZONE" valid
check "serve: wildcard certificate in live/_wildcard.$ZONE" \
	verify_cert "$STATE" "_wildcard.$ZONE" "*.$ZONE"
check "serve: api certificate verifies" verify_cert "$STATE" "api.$ZONE"
check "serve: TXT records removed" wait_for 10 txt_gone "_acme-challenge.$ZONE"
check "serve: api TXT record removed" wait_for 10 txt_gone "_acme-challenge.api.$ZONE"
check "shown with challenge dns-01" shows "*.$ZONE" '.challenge == "dns-01"'
# a wildcard outside every configured zone: no order, a clear reason
check "domains add '*.elsewhere.example'" ch domains add "*.elsewhere.example"
check "a wildcard without a zone fails with the reason" \
	wait_for 30 shows "*.elsewhere.example" '.last_error.detail | test("no \\[dns")'
check "no order was persisted for it" \
	test "$(sq "SELECT count(*) FROM orders WHERE domain = '*.elsewhere.example'")" = 0
check "two orders made, none left pending" \
	test "$(sq "SELECT count(*) FROM orders WHERE state IN (0,1,2)"):$(sq "SELECT count(*) FROM orders")" = "0:2"

# No HTTP-01 listener (http.listen empty): a plain name in the zone is
# validated through DNS-01 on its own; a name outside every zone has no
# way to be validated and says so.
kill -TERM "$BG_PID"
check "daemon stops" wait_for 30 sh -c "! kill -0 $BG_PID 2>/dev/null"
bg serve "$CERTHERD" -c "$CONF" --set http.listen= serve
check "daemon starts without an HTTP-01 listener" \
	wait_for 30 sh -c '"$0" -c "$1" status >/dev/null 2>&1' "$CERTHERD" "$CONF"
check "nothing listens on the HTTP-01 port" \
	bash -c "! curl -s -o /dev/null http://127.0.0.1:$HTTP01_PORT/"
check "domains add auto.$ZONE (no challenge given)" ch domains add "auto.$ZONE"
check "auto.$ZONE becomes valid" wait_for 90 is_state "auto.$ZONE" valid
check "through DNS-01: named took its TXT update" \
	grep -q "_acme-challenge.auto.$ZONE" "$NAMED_DIR/named.log"
check "auto certificate verifies" verify_cert "$STATE" "auto.$ZONE"
check "domains add out.example.org (in no zone)" ch domains add out.example.org
check "it cannot be validated and says why" \
	wait_for 60 shows out.example.org '.last_error != null'

finish
