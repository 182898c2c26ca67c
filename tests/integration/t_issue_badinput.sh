#!/bin/bash
# Bad input gets a clear error and writes nothing: invalid names, an
# unreachable CA, a CA whose HTTPS certificate we do not trust, a CA that
# sends garbage, oversized or malformed replies, a busy responder port.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"

OUT=$TEST_TMP/out
nothing_written() { test -z "$(find "$OUT/live" -type f 2>/dev/null)"; }
# expect_error DESC EXIT REGEX CMD... : CMD exits EXIT, stderr matches REGEX,
# and no certificate file was written.
expect_error() {
	local desc=$1 want=$2 re=$3 rc
	shift 3
	"$@" >"$TEST_TMP/err.log" 2>&1
	rc=$?
	if [ "$rc" = "$want" ] && grep -Eq "$re" "$TEST_TMP/err.log" && nothing_written; then
		ok "$desc"
	else
		fail "$desc" "exit $rc (want $want), output:" "$(head -c 600 "$TEST_TMP/err.log")"
	fi
}
c() { "$CERTHERD" issue --no-progress --out "$OUT" --http-listen 127.0.0.1:5002 "$@"; }

expect_error "invalid name named in the error" 2 'invalid domain "exa mple\.com"' \
	c --directory https://127.0.0.1:1/dir 'exa mple.com'
expect_error "IP literal rejected" 2 '1\.2\.3\.4' c --directory https://127.0.0.1:1/dir 1.2.3.4
expect_error "wildcard rejected without DNS-01" 2 '\*\.example\.com' \
	c --directory https://127.0.0.1:1/dir '*.example.com'
expect_error "one bad name stops the run before any order" 2 'nothing was ordered' \
	c --directory https://127.0.0.1:1/dir -- good.example.com -bad-.example.com
printf 'ok.example.com\nbad..example.com\n' >"$TEST_TMP/list.txt"
expect_error "bad name in a domains file" 2 'bad\.\.example\.com' \
	c --directory https://127.0.0.1:1/dir --domains-file "$TEST_TMP/list.txt"
expect_error "missing domains file" 2 'cannot read .*nosuch' \
	c --directory https://127.0.0.1:1/dir --domains-file "$TEST_TMP/nosuch"
expect_error "unknown key type" 2 'unknown key type "dsa"' \
	c --directory https://127.0.0.1:1/dir --key-type dsa a.example.com
expect_error "bad EAB key" 2 'not base64url' \
	c --directory https://127.0.0.1:1/dir --eab-kid k --eab-hmac-key '%%%' a.example.com
expect_error "directory must be http(s)" 2 'must be an http\(s\) URL' \
	c --directory ftp://x/dir a.example.com
expect_error "unreachable CA" 2 'cannot set up the ACME account.*(onnect|refused)' \
	c --directory https://127.0.0.1:1/dir a.example.com

ca_start || { fail "test CA starts"; finish; }
expect_error "CA with an untrusted certificate" 2 'cannot set up the ACME account.*(certificate|SSL)' \
	c --directory "$ACME_DIRECTORY" a.example.com

python3 "$SRC/tests/integration/fakeca/fakeca.py" 18080 2>"$TEST_TMP/fakeca.log" &
on_exit "kill $! 2>/dev/null"
wait_for 10 curl -s -o /dev/null http://127.0.0.1:18080/garbage
F=http://127.0.0.1:18080
expect_error "garbage directory" 2 'bad ACME directory' c --directory $F/garbage a.example.com
expect_error "directory that is not an object" 2 'bad ACME directory' c --directory $F/array a.example.com
expect_error "oversized reply" 2 'too large' c --directory $F/big a.example.com
expect_error "directory with bad URLs" 2 'bad ACME directory' c --directory $F/badurl a.example.com
expect_error "newNonce without a nonce" 2 'Replay-Nonce' c --directory $F/nononce a.example.com
expect_error "oversized headers" 2 'too large' c --directory $F/hugeheader a.example.com

# The responder's port is taken: say so before ordering anything.
python3 -m http.server --bind 127.0.0.1 5002 >/dev/null 2>&1 &
on_exit "kill $! 2>/dev/null"
wait_for 10 curl -s -o /dev/null http://127.0.0.1:5002/
expect_error "responder port in use" 2 'cannot listen on 127\.0\.0\.1:5002' \
	c --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" a.example.com
check "no temp files anywhere" test -z "$(find "$OUT" -name '*.tmp*' 2>/dev/null)"
finish
