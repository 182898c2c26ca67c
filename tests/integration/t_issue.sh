#!/bin/bash
# certherd issue against real Pebble with real HTTP-01: one domain, 200
# domains at once, the account reused on the next run, Pebble rejecting
# half of all nonces, and one domain that cannot validate while the others
# succeed. Every certificate is checked with openssl (verify_cert).
# asan: yes
# timeout: 600
. "$(dirname "$0")/lib.sh"

issue() {
	"$CERTHERD" issue --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
		--http-listen "127.0.0.1:$HTTP01_PORT" --no-progress "$@"
}

ca_start || { fail "test CA starts"; finish; }

OUT=$TEST_TMP/one
check "issues one domain" issue --out "$OUT" --email ops@example.com one.example.com
check "its certificate is good" verify_cert "$OUT" one.example.com
key=$(ls "$OUT"/accounts/*/account-key.pem)
check "account key is 0600" test "$(stat -c %a "$key")" = 600
sum=$(sha256sum <"$key")
issue --out "$OUT" two.example.com >"$TEST_TMP/second.log" 2>&1
check "second run issues with the same account" grep -q 'account .* reused' "$TEST_TMP/second.log"
check "account key kept" test "$(sha256sum <"$key")" = "$sum"
check "no temp files left" test -z "$(find "$OUT" -name '*.tmp*')"

# 200 at once.
OUT=$TEST_TMP/many
for i in $(seq 1 200); do echo "m$i.example.net"; done >"$TEST_TMP/200.txt"
check "issues 200 domains concurrently" run_issuing issue --out "$OUT" \
	--domains-file "$TEST_TMP/200.txt" --concurrency 200
bad=0
for i in $(seq 1 200); do
	verify_cert "$OUT" "m$i.example.net" >"$TEST_TMP/verify.log" 2>&1 || {
		bad=$((bad + 1))
		cat "$TEST_TMP/verify.log"
	}
done
check "all 200 certificates are good" test $bad = 0
check "200 key files, all 0600" test "$(find "$OUT/live" -name privkey.pem -perm 0600 | wc -l)" = 200

# One name cannot validate: the DNS points it where nothing listens.
curl -fsS -X POST "$CHALLTESTSRV_MGMT/add-a" \
	-d '{"host":"broken.example.org","addresses":["127.0.0.2"]}' >/dev/null
OUT=$TEST_TMP/partial
issue --out "$OUT" ok1.example.org broken.example.org ok2.example.org \
	>"$TEST_TMP/partial.log" 2>&1
rc=$?
check "exit status 1 when a domain fails" test $rc = 1
good_ones() { verify_cert "$OUT" ok1.example.org && verify_cert "$OUT" ok2.example.org; }
check "the good domains still got certificates" good_ones
check "summary names the failed domain and the CA's reason" \
	grep -E '^failed: broken\.example\.org: .*(connection|refused)' "$TEST_TMP/partial.log"
check "no files for the failed domain" test ! -e "$OUT/live/broken.example.org"
ca_stop

# Half of all nonces rejected: badNonce is retried transparently.
PEBBLE_NONCEREJECT=50 ca_start "$TEST_TMP/ca-nonce" || { fail "CA with nonce rejection starts"; finish; }
OUT=$TEST_TMP/nonce
for i in $(seq 1 30); do echo "n$i.example.com"; done >"$TEST_TMP/30.txt"
check "PEBBLE_WFE_NONCEREJECT=50: all 30 issued" run_issuing issue --out "$OUT" \
	--domains-file "$TEST_TMP/30.txt" --concurrency 30
check "Pebble really rejected nonces" grep -q 'badNonce\|bad nonce\|nonce' "$TEST_TMP/ca-nonce/pebble.log"
bad=0
for i in $(seq 1 30); do verify_cert "$OUT" "n$i.example.com" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "all 30 certificates are good" test $bad = 0
finish
