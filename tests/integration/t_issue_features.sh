#!/bin/bash
# certherd against Pebble's optional features: external account binding
# (required and missing), revocation (by account and by certificate key,
# checked through Pebble's management API), account key rollover, and
# certificate profiles (pebble 2.10).
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"

issue() {
	"$CERTHERD" issue --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
		--http-listen "127.0.0.1:$HTTP01_PORT" --no-progress "$@"
}
acct() { # the account options for revoke / account rollover
	echo --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE"
}
# Pebble's view of a certificate: "Valid" or "Revoked".
cert_status() {
	local serial
	serial=$(openssl x509 -noout -serial -in "$1" | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
	curl -fsS --cacert "$CA_BUNDLE" "$PEBBLE_MGMT/cert-status-by-serial/$serial" |
		grep -o '"Status": *"[A-Za-z]*"' | grep -o '[A-Za-z]*"$' | tr -d '"'
}

# --- EAB --------------------------------------------------------------------
PEBBLE_EAB=1 ca_start "$TEST_TMP/ca-eab" || { fail "CA with EAB starts"; finish; }
issue --out "$TEST_TMP/noeab" a.example.com >"$TEST_TMP/noeab.log" 2>&1
rc=$?
check "without EAB: exit 2" test $rc = 2
check "without EAB: the error says what to give" grep -q 'external account binding.*--eab-kid' "$TEST_TMP/noeab.log"
check "with EAB: issued" issue --out "$TEST_TMP/eab" --eab-kid "$EAB_KID" \
	--eab-hmac-key "$EAB_HMAC_KEY" eab.example.com
check "with EAB: certificate good" verify_cert "$TEST_TMP/eab" eab.example.com
issue --out "$TEST_TMP/badeab" --eab-kid "$EAB_KID" --eab-hmac-key "$EAB_HMAC_KEY2" \
	b.example.com >"$TEST_TMP/badeab.log" 2>&1
rc=$?
check "wrong EAB key: refused with the CA's reason" \
	bash -c "test $rc = 2 && grep -qi 'account' '$TEST_TMP/badeab.log'"
ca_stop "$TEST_TMP/ca-eab"

# --- revocation and rollover --------------------------------------------------
ca_start || { fail "test CA starts"; finish; }
OUT=$TEST_TMP/rv
check "issue two for revocation" issue --out "$OUT" r1.example.com r2.example.com
check "Pebble sees r1 valid" test "$(cert_status "$OUT/live/r1.example.com/cert.pem")" = Valid
# shellcheck disable=SC2046
check "revoke by account" "$CERTHERD" revoke $(acct) --out "$OUT" --reason 4 r1.example.com
check "Pebble sees r1 revoked" test "$(cert_status "$OUT/live/r1.example.com/cert.pem")" = Revoked
# shellcheck disable=SC2046
check "revoke by certificate key" "$CERTHERD" revoke $(acct) --out "$OUT" --with-cert-key r2.example.com
check "Pebble sees r2 revoked" test "$(cert_status "$OUT/live/r2.example.com/cert.pem")" = Revoked
# shellcheck disable=SC2046
"$CERTHERD" revoke $(acct) --out "$OUT" r1.example.com >"$TEST_TMP/again.log" 2>&1
rc=$?
check "revoking twice: exit 1 with alreadyRevoked" \
	bash -c "test $rc = 1 && grep -q alreadyRevoked '$TEST_TMP/again.log'"
# shellcheck disable=SC2046
check_fails "revoke of a domain with no certificate fails" "$CERTHERD" revoke $(acct) --out "$OUT" none.example.com

key=$(ls "$OUT"/accounts/*/account-key.pem)
before=$(openssl pkey -pubout -in "$key")
url_before=$(issue --out "$OUT" k1.example.com 2>&1 | grep -o 'account [^ ]*' | head -1)
# shellcheck disable=SC2046
check "account rollover" "$CERTHERD" account rollover $(acct) --out "$OUT" --key-type ecdsa-p384
check "account key replaced, still 0600" \
	bash -c "test \"\$(openssl pkey -pubout -in '$key')\" != '$before' && test \$(stat -c %a '$key') = 600"
check "no .new key left" test ! -e "$key.new"
url_after=$(issue --out "$OUT" k2.example.com 2>&1 | grep -o 'account [^ ]*' | head -1)
check "same account after rollover ($url_after)" test "$url_before" = "$url_after" -a -n "$url_after"
check "issuing with the rolled key works" verify_cert "$OUT" k2.example.com

# A crash after the CA switched keys but before the rename: the new key is
# still account-key.pem.new and the file holds the old key.
cp "$key" "$TEST_TMP/k2.pem"
# shellcheck disable=SC2046
"$CERTHERD" account rollover $(acct) --out "$OUT" >/dev/null 2>&1
mv "$key" "$key.new"
cp "$TEST_TMP/k2.pem" "$key"
issue --out "$OUT" k3.example.com >"$TEST_TMP/recover.log" 2>&1
check "interrupted rollover is finished on the next run" grep -q 'finished an interrupted key rollover' "$TEST_TMP/recover.log"
check "and the account is the same ($url_before)" grep -qF "$url_before" "$TEST_TMP/recover.log"
check "no .new key left after recovery" test ! -e "$key.new"
# A .new key the CA never saw (crash before the CA answered) is dropped.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key.new" 2>/dev/null
issue --out "$OUT" k4.example.com >"$TEST_TMP/discard.log" 2>&1
check "unknown .new key discarded, same account kept" \
	bash -c "grep -q 'discarding' '$TEST_TMP/discard.log' && grep -qF '$url_before' '$TEST_TMP/discard.log' && test ! -e '$key.new'"
ca_stop

# --- alternate chains: --preferred-issuer picks one ----------------------------
PEBBLE_ALTERNATE_ROOTS=2 ca_start "$TEST_TMP/ca-alt" || { fail "CA with alternate roots starts"; finish; }
curl -fsS --cacert "$CA_BUNDLE" "$PEBBLE_MGMT/roots/2" >"$TEST_TMP/root2.pem"
want=$(openssl x509 -noout -subject -nameopt multiline -in "$TEST_TMP/root2.pem" | sed -n 's/^ *commonName *= *//p')
check "issue preferring the chain of root 2 ($want)" issue --out "$TEST_TMP/alt" \
	--preferred-issuer "$want" alt.example.com
top=$(openssl crl2pkcs7 -nocrl -certfile "$TEST_TMP/alt/live/alt.example.com/chain.pem" |
	openssl pkcs7 -print_certs -noout | grep '^issuer' | tail -1 | sed 's/.*CN *= *//')
check "chain ends at the preferred root ($top)" test "$top" = "$want"
check "and verifies against it" openssl verify -CAfile "$TEST_TMP/root2.pem" \
	-untrusted "$TEST_TMP/alt/live/alt.example.com/chain.pem" "$TEST_TMP/alt/live/alt.example.com/cert.pem"
check "unknown preferred issuer keeps the default chain" issue --out "$TEST_TMP/alt" \
	--preferred-issuer "No Such CA" alt2.example.com
check "default chain verifies against root 0" verify_cert "$TEST_TMP/alt" alt2.example.com
ca_stop "$TEST_TMP/ca-alt"

# --- profiles (pebble >= 2.7) ------------------------------------------------------
if PEBBLE_PROFILES=1 ca_start "$TEST_TMP/ca-prof" 2>"$TEST_TMP/prof-start.log"; then
	check "profile shortlived issued" issue --out "$TEST_TMP/prof" --profile shortlived p.example.com
	days=$(( ($(date -d "$(openssl x509 -noout -enddate -in "$TEST_TMP/prof/live/p.example.com/cert.pem" | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
	check "shortlived certificate lives under 7 days ($days)" test "$days" -lt 7
	issue --out "$TEST_TMP/prof" --profile nosuch q.example.com >"$TEST_TMP/nosuch.log" 2>&1
	rc=$?
	check "unknown profile: exit 1 naming the domain" \
		bash -c "test $rc = 1 && grep -q '^failed: q.example.com:' '$TEST_TMP/nosuch.log'"
	ca_stop "$TEST_TMP/ca-prof"
else
	skip "profiles" "this pebble has no profiles"
fi
finish
