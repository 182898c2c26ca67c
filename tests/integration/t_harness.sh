#!/bin/bash
# Smoke test of the test CA harness itself (tests/ca/ca.sh), with every
# pebble this machine has (Debian 12's 2.4.0 and testing's 2.10): the ACME
# directory answers over TLS with the generated CA bundle (and only with it),
# Pebble's root is fetched, the DNS server answers 127.0.0.1 for any name,
# the knobs take effect (profiles, EAB, nonce rejection, validity) and stop
# leaves nothing running. Needs no certherd binary.
# timeout: 300
. "$(dirname "$0")/lib.sh"

PEBBLES=()
[ -x /usr/bin/pebble ] && PEBBLES+=(/usr/bin/pebble)
[ -x /opt/certherd/pebble-testing/usr/bin/pebble ] &&
	PEBBLES+=(/opt/certherd/pebble-testing/usr/bin/pebble)
[ ${#PEBBLES[@]} -gt 0 ] || fail "a pebble is installed (run scripts/install-deps.sh)"
[ ${#PEBBLES[@]} = 2 ] || note "only ${PEBBLES[*]} available"

dir_json() { curl -fsS --max-time 5 --cacert "$CA_BUNDLE" "$ACME_DIRECTORY"; }

# One DNS query for NAME/A to DNS_SERVER over UDP; prints the A records.
dns_a() {
	local q="" label hex labels
	IFS=. read -r -a labels <<<"$1"
	for label in "${labels[@]}"; do q+=$(printf '\\x%02x' "${#label}")$label; done
	exec 3<>"/dev/udp/${DNS_SERVER%:*}/${DNS_SERVER#*:}" || return 1
	# header: id 0x4242, RD, 1 question; then QNAME, type A, class IN
	printf "\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00${q}\x00\x00\x01\x00\x01" >&3
	hex=" $(timeout 3 dd bs=4096 count=1 status=none <&3 | od -An -v -tx1 | tr -s ' \n' '  ')"
	exec 3<&-
	# Each answer: NAME, type A (00 01), class IN (00 01), TTL, length 4, addr.
	grep -oE ' 00 01 00 01( [0-9a-f]{2}){4} 00 04( [0-9a-f]{2}){4}' <<<"$hex" |
		while read -r -a b; do
			printf '%d.%d.%d.%d\n' "0x${b[10]}" "0x${b[11]}" "0x${b[12]}" "0x${b[13]}"
		done
}

export -f dns_a dir_json

no_ca_left() {
	! kill -0 "$PEBBLE_PID" 2>/dev/null && ! kill -0 "$CHALLTESTSRV_PID" 2>/dev/null &&
		! curl -s --max-time 2 -k -o /dev/null "$ACME_DIRECTORY"
}

for bin in "${PEBBLES[@]}"; do
	export PEBBLE_BIN=$bin
	dir="$TEST_TMP/ca-$(basename "$(dirname "$(dirname "$(dirname "$bin")")")")"
	if ! ca_start "$dir"; then
		fail "CA starts with $bin"
		continue
	fi
	v=$PEBBLE_VERSION
	ok "CA starts with $bin (pebble $v)"
	check "[$v] directory answers over TLS with CA_BUNDLE" dir_json
	check_fails "[$v] directory is refused without CA_BUNDLE" \
		curl -fsS --max-time 5 --cacert /etc/ssl/certs/ca-certificates.crt "$ACME_DIRECTORY"
	check "[$v] directory lists newNonce/newAccount/newOrder" \
		bash -c "dir=\$(curl -fsS --cacert '$CA_BUNDLE' '$ACME_DIRECTORY') &&
			for k in newNonce newAccount newOrder revokeCert keyChange; do
				grep -q \"\\\"\$k\\\"\" <<<\"\$dir\" || { echo \"no \$k\"; exit 1; }; done"
	check "[$v] PEBBLE_ROOT is a self-signed CA certificate" \
		openssl verify -CAfile "$PEBBLE_ROOT" "$PEBBLE_ROOT"
	check "[$v] the intermediate chains to PEBBLE_ROOT" \
		openssl verify -CAfile "$PEBBLE_ROOT" "$PEBBLE_INTERMEDIATE"
	check "[$v] every name resolves to 127.0.0.1 via DNS_SERVER" \
		bash -c "[ \"\$(dns_a www.harness-$RANDOM.test)\" = 127.0.0.1 ]"
	check "[$v] no artificial validation sleep, no authz reuse" \
		grep -q -e 'Disabling random VA sleeps' "$dir/pebble.log"
	check "[$v] authz reuse 0%" grep -q 'authz reuse for each identifier 0%' "$dir/pebble.log"
	check "[$v] validation is real (not always-valid)" \
		bash -c "! grep -q 'VA always returns valid' '$dir/pebble.log'"
	case "$v" in
	2.10*)
		check "[$v] directory offers renewalInfo (ARI)" bash -c "dir_json | grep -q '\"renewalInfo\"'" ;;
	esac
	check "ca.sh stop ($v)" ca_stop "$dir"
	check "[$v] nothing left running after stop" wait_for 10 no_ca_left
done

# Knobs, with each pebble.
for bin in "${PEBBLES[@]}"; do
	export PEBBLE_BIN=$bin
	dir="$TEST_TMP/knobs"
	if ! PEBBLE_EAB=1 PEBBLE_NONCEREJECT=0 PEBBLE_CERT_VALIDITY=3600 ca_start "$dir"; then
		fail "CA starts with PEBBLE_EAB=1 ($bin)"
		continue
	fi
	v=$PEBBLE_VERSION
	check "[$v] PEBBLE_EAB=1: directory says externalAccountRequired" \
		bash -c "dir_json | grep -q '\"externalAccountRequired\": *true'"
	check "[$v] PEBBLE_EAB=1: EAB_KID and base64url EAB_HMAC_KEY in ca.env" \
		bash -c "[ -n '$EAB_KID' ] && grep -qxE '[A-Za-z0-9_-]{43,}' <<<'$EAB_HMAC_KEY'"
	check "[$v] PEBBLE_NONCEREJECT=0 reaches Pebble" \
		grep -q 'reject 0% of good nonces' "$dir/pebble.log"
	check "[$v] PEBBLE_CERT_VALIDITY=3600 reaches Pebble" \
		grep -qE 'validity period of 3600 seconds' "$dir/pebble.log"
	ca_stop "$dir" >/dev/null
	if PEBBLE_PROFILES=1 ca_start "$dir" 2>"$TEST_TMP/profiles-start.log"; then
		case "$v" in
		2.4*) fail "[$v] PEBBLE_PROFILES=1 is refused (2.4.0 has no profiles)" ;;
		*)
			check "[$v] PEBBLE_PROFILES=1: directory offers default and shortlived" \
				bash -c "d=\$(dir_json) && grep -q '\"shortlived\"' <<<\"\$d\" && grep -q '\"default\"' <<<\"\$d\""
			check "[$v] PEBBLE_PROFILES=1: directory offers renewalInfo" \
				bash -c "dir_json | grep -q '\"renewalInfo\"'"
			;;
		esac
		ca_stop "$dir" >/dev/null
	else
		case "$v" in
		2.4*) check "[$v] PEBBLE_PROFILES=1 is refused (2.4.0 has no profiles) and leaves nothing running" no_ca_left ;;
		*) fail "[$v] CA starts with PEBBLE_PROFILES=1" "$(cat "$TEST_TMP/profiles-start.log")" ;;
		esac
	fi
done

# A real HTTP-01 issuance through the harness, when lego (a Debian package,
# used by the benchmarks) is installed; this also exercises verify_cert.
if command -v lego >/dev/null; then
	unset PEBBLE_BIN
	if ca_start "$TEST_TMP/ca-lego"; then
		out="$TEST_TMP/lego"
		if check "lego gets a certificate over real HTTP-01 from pebble $PEBBLE_VERSION" \
			env LEGO_CA_CERTIFICATES="$CA_BUNDLE" lego --accept-tos --email t@example.test \
			--server "$ACME_DIRECTORY" --path "$out" --domains a.harness.test \
			--domains b.harness.test --http --http.port ":$HTTP01_PORT" run; then
			cp "$TEST_TMP/check.log" "$TEST_TMP/lego.log"
			live="$out/live/a.harness.test"
			mkdir -p "$live"
			crt="$out/certificates/a.harness.test.crt"
			awk '/BEGIN CERT/{n++} n==1' "$crt" >"$live/cert.pem"
			awk '/BEGIN CERT/{n++} n>=2' "$crt" >"$live/chain.pem"
			cp "$crt" "$live/fullchain.pem"
			install -m 600 "$out/certificates/a.harness.test.key" "$live/privkey.pem"
			check "verify_cert accepts lego's certificate" verify_cert "$out" a.harness.test
			ln -s a.harness.test "$out/live/b.harness.test"
			check "verify_cert accepts the second SAN" verify_cert "$out" b.harness.test
			check_fails "verify_cert rejects a name not in the SAN" verify_cert "$out" harness.test
			chmod 644 "$live/privkey.pem"
			check_fails "verify_cert rejects a world-readable key" verify_cert "$out" a.harness.test
			chmod 600 "$live/privkey.pem"
			openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$live/privkey.pem" 2>/dev/null
			check_fails "verify_cert rejects a key that does not match" verify_cert "$out" a.harness.test
		fi
	fi
else
	skip "real HTTP-01 issuance through the harness" "lego not installed"
fi

finish
