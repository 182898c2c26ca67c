#!/bin/bash
# certherd ari against Pebble (which serves renewalInfo, RFC 9773): issue a
# certificate with `certherd issue`, then ask the CA for its renewal
# window. The printed identifier must equal one computed independently
# from the certificate with openssl (AKI keyIdentifier "." DER serial),
# and the window must lie inside the certificate's validity. Replacing the
# certificate ("replaces" in newOrder) is not part of this: no flag for it.
# asan: yes
# timeout: 300
. "$(dirname "$0")/lib.sh"

OUT=$TEST_TMP/out
issue() {
	"$CERTHERD" issue --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
		--http-listen "127.0.0.1:$HTTP01_PORT" --no-progress --out "$OUT" "$@"
}
ari() {
	"$CERTHERD" ari --directory "$ACME_DIRECTORY" --ca-bundle "$CA_BUNDLE" \
		--out "$OUT" "$@"
}
epoch_of() { date -u -d "$1" +%s; }

ca_start || { fail "test CA starts"; finish; }
check "issues ari.example.com" issue ari.example.com
CERT=$OUT/live/ari.example.com/cert.pem

ari ari.example.com >"$TEST_TMP/ari.out" 2>"$TEST_TMP/ari.log"
rc=$?
cp "$TEST_TMP/ari.out" "$TEST_TMP/ari-out.log"
check "certherd ari exits 0" test $rc = 0
field() { sed -n "s/^$1: //p" "$TEST_TMP/ari.out"; }
got=$(field certid)
want=$(ari_certid_openssl "$CERT")
note "certid $got (openssl: $want)"
check "certid equals the one computed with openssl" test -n "$got" -a "$got" = "$want"

start=$(field start)
end=$(field end)
note "window $start .. $end"
rfc3339() { [[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$ ]]; }
check "start is RFC 3339" rfc3339 "$start"
check "end is RFC 3339" rfc3339 "$end"
nb=$(epoch_of "$(openssl x509 -in "$CERT" -noout -startdate | sed 's/^notBefore=//')")
na=$(epoch_of "$(openssl x509 -in "$CERT" -noout -enddate | sed 's/^notAfter=//')")
s=$(epoch_of "$start")
e=$(epoch_of "$end")
note "validity $nb .. $na, window $s .. $e"
check "window starts after notBefore" test "$s" -ge "$nb"
check "window ends before notAfter" test "$e" -le "$na"
check "window end is after its start" test "$e" -gt "$s"
check "retry-after line present" grep -Eq '^retry-after: ([0-9]+|none)$' "$TEST_TMP/ari.out"

# Asking again: same identifier, same window.
check "second ari run" sh -c 'ari_out=$("$0" ari --directory "$1" --ca-bundle "$2" --out "$3" ari.example.com) && printf "%s\n" "$ari_out" | grep -qx "certid: $4"' \
	"$CERTHERD" "$ACME_DIRECTORY" "$CA_BUNDLE" "$OUT" "$got"

# Failures: no certificate for the name, a certificate Pebble never issued
# (the CA answers 404), usage errors.
check_fails "unknown domain fails" ari nothing.example.com
mkdir -p "$OUT/live/self.example.com"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj /CN=self.example.com -days 2 \
	-addext "authorityKeyIdentifier=keyid:always" \
	-keyout "$TEST_TMP/self.key" -out "$OUT/live/self.example.com/cert.pem" \
	>"$TEST_TMP/openssl.log" 2>&1
ari self.example.com >"$TEST_TMP/self.out" 2>"$TEST_TMP/self.log"
rc=$?
check "a certificate the CA never issued: exit 1" test $rc = 1
check "... with the CA's reason" grep -q 'renewalInfo' "$TEST_TMP/self.log"
check_fails "missing --directory is a usage error" \
	"$CERTHERD" ari --out "$OUT" ari.example.com
"$CERTHERD" ari --out "$OUT" ari.example.com >/dev/null 2>&1
check "... with exit status 2" test $? = 2
finish
