/*
 * Unit tests for acme_jws (and the small acme_chall helpers): the RFC 7638
 * §3.1 thumbprint, the RFC 7515 A.1 HMAC and A.3 ECDSA examples, and
 * JWS we produce for ES256/ES384/RS256 checked the way a CA would —
 * decode, check the protected header, rebuild the signing input, turn
 * r||s back into DER and verify with OpenSSL. EAB is checked by
 * recomputing its MAC.
 *
 * The .c is included (h2o style) to reach the static HMAC and signing
 * primitives the RFC vectors exercise directly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "acme/acme_jws.c"

/* ---- helpers ------------------------------------------------------------- */

/* malloc that cannot return NULL, so the compiler (and the reader)
 * need not consider it. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		abort();
	return p;
}

static unsigned char *dec(const char *s, size_t *n)
{
	unsigned char *p = b64url_decode(s, strlen(s), n);

	assert_non_null(p);
	return p;
}

static BIGNUM *dec_bn(const char *s)
{
	size_t n;
	unsigned char *p = dec(s, &n);
	BIGNUM *bn = BN_bin2bn(p, (int)n, NULL);

	free(p);
	assert_non_null(bn);
	return bn;
}

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *bld, int selection)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *key = NULL;

	assert_non_null(params);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &key, selection, params), 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return key;
}

static EVP_PKEY *rsa_pub(const char *n64, const char *e64)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *n = dec_bn(n64), *e = dec_bn(e64);
	EVP_PKEY *key;

	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n),
			 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e),
			 1);
	key = fromdata("RSA", bld, EVP_PKEY_PUBLIC_KEY);
	BN_free(n);
	BN_free(e);
	return key;
}

static EVP_PKEY *ec_key(const char *group, const char *x64, const char *y64,
			const char *d64)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	unsigned char pub[1 + 2 * 48], *x, *y;
	size_t xn, yn;
	BIGNUM *d = dec_bn(d64);
	EVP_PKEY *key;

	x = dec(x64, &xn);
	y = dec(y64, &yn);
	assert_int_equal(xn, yn);
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, xn);
	memcpy(pub + 1 + xn, y, yn);
	assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(
			     bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
			 1);
	assert_int_equal(OSSL_PARAM_BLD_push_octet_string(
			     bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + xn + yn),
			 1);
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d), 1);
	key = fromdata("EC", bld, EVP_PKEY_KEYPAIR);
	BN_free(d);
	free(x);
	free(y);
	return key;
}

/* Verify a JWS signature as a CA would: RS256 as is, ES* converted from
 * r||s back to DER. 1 if valid. */
static int jws_verify(EVP_PKEY *key, const char *alg, const char *input,
		      const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md =
	    strcmp(alg, "ES384") == 0 ? EVP_sha384() : EVP_sha256();
	unsigned char *der = NULL;
	int derlen = 0, ok;

	assert_non_null(ctx);
	if (alg[0] == 'E') {
		ECDSA_SIG *es = ECDSA_SIG_new();
		size_t half = siglen / 2;

		assert_int_equal(siglen % 2, 0);
		assert_int_equal(
		    ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)half, NULL),
				   BN_bin2bn(sig + half, (int)half, NULL)),
		    1);
		derlen = i2d_ECDSA_SIG(es, &der);
		assert_true(derlen > 0);
		ECDSA_SIG_free(es);
		sig = der;
		siglen = (size_t)derlen;
	}
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, md, NULL, key), 1);
	ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input,
			      strlen(input)) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	return ok;
}

/* ---- RFC vectors --------------------------------------------------------- */

/* RFC 7638 §3.1 */
static const char rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7"
    "aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBX"
    "Arwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
    "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
    "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

static void test_rfc7638_thumbprint(void **state)
{
	EVP_PKEY *key = rsa_pub(rfc7638_n, "AQAB");
	char tp[44], expect[600];
	json_t *jwk;
	char *s;

	(void)state;
	assert_int_equal(acme_jwk_thumbprint(key, tp), 0);
	assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

	/* the hashed form: required members, sorted, no whitespace */
	jwk = acme_jwk(key);
	assert_non_null(jwk);
	s = json_dumps(jwk, JSON_SORT_KEYS | JSON_COMPACT);
	snprintf(expect, sizeof(expect),
		 "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"%s\"}", rfc7638_n);
	assert_string_equal(s, expect);
	assert_string_equal(acme_jws_alg(key), "RS256");
	free(s);
	json_decref(jwk);
	EVP_PKEY_free(key);
}

/* RFC 7515 A.1: HMAC SHA-256 */
static void test_rfc7515_a1_hmac(void **state)
{
	const char *k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75"
			"aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
	const char *input =
	    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
	    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
	    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
	size_t kn;
	unsigned char *key = dec(k, &kn);
	char *sig;

	(void)state;
	sig = hs256(key, kn, input, strlen(input));
	assert_non_null(sig);
	assert_string_equal(sig, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	free(sig);
	free(key);
}

/* RFC 7515 A.3: ECDSA P-256 SHA-256 */
static const char a3_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char a3_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
static const char a3_d[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
static const char a3_input[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char a3_sig[] =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA"
    "pmWQxfKTUJqPP3-Kg6NU1Q";

static void test_rfc7515_a3_ecdsa(void **state)
{
	EVP_PKEY *key = ec_key("prime256v1", a3_x, a3_y, a3_d);
	unsigned char *sig;
	size_t n;
	char *mine;
	json_t *jwk;

	(void)state;
	/* the RFC's own signature verifies through our r||s handling... */
	sig = dec(a3_sig, &n);
	assert_int_equal(n, 64);
	assert_true(jws_verify(key, "ES256", a3_input, sig, n));
	sig[10] ^= 1;
	assert_false(jws_verify(key, "ES256", a3_input, sig, n));
	free(sig);

	/* ...and so does ours over the same input (ECDSA is randomized,
	 * so the bytes differ from the RFC's) */
	mine = sign_input(key, a3_input, strlen(a3_input));
	assert_non_null(mine);
	sig = dec(mine, &n);
	assert_int_equal(n, 64);
	assert_true(jws_verify(key, "ES256", a3_input, sig, n));
	free(sig);
	free(mine);

	/* the JWK reproduces the RFC's coordinates */
	jwk = acme_jwk(key);
	assert_string_equal(json_string_value(json_object_get(jwk, "x")), a3_x);
	assert_string_equal(json_string_value(json_object_get(jwk, "y")), a3_y);
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
			    "P-256");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")),
			    "EC");
	assert_int_equal(json_object_size(jwk), 4);
	json_decref(jwk);
	EVP_PKEY_free(key);
}

/* ---- our JWS, checked as a CA would -------------------------------------- */

/*
 * Decode and check one flattened JWS. Returns the decoded protected
 * header (caller decrefs) after checking the signature.
 */
static json_t *check_jws(EVP_PKEY *key, const char *jws_s,
			 const char *expect_alg, const char *expect_payload)
{
	json_error_t jerr;
	json_t *jws = json_loads(jws_s, 0, &jerr), *prot;
	const char *p64, *y64, *s64;
	unsigned char *praw, *yraw, *sraw;
	size_t pn, yn, sn;
	char *input;

	assert_non_null(jws);
	assert_int_equal(json_object_size(jws), 3);
	p64 = json_string_value(json_object_get(jws, "protected"));
	y64 = json_string_value(json_object_get(jws, "payload"));
	s64 = json_string_value(json_object_get(jws, "signature"));
	assert_non_null(p64);
	assert_non_null(y64);
	assert_non_null(s64);

	praw = dec(p64, &pn);
	prot =
	    json_loadb((const char *)praw, pn, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(prot);
	assert_string_equal(json_string_value(json_object_get(prot, "alg")),
			    expect_alg);
	/* RFC 8555 §6.2: exactly one of kid and jwk */
	assert_true(!!json_object_get(prot, "kid") !=
		    !!json_object_get(prot, "jwk"));

	if (y64[0]) {
		yraw = dec(y64, &yn);
		assert_int_equal(yn, strlen(expect_payload));
		assert_memory_equal(yraw, expect_payload, yn);
		free(yraw);
	} else {
		assert_string_equal(expect_payload, "");
	}

	input = xmalloc(strlen(p64) + strlen(y64) + 2);
	sprintf(input, "%s.%s", p64, y64);
	sraw = dec(s64, &sn);
	if (!strcmp(expect_alg, "ES256"))
		assert_int_equal(sn, 64);
	else if (!strcmp(expect_alg, "ES384"))
		assert_int_equal(sn, 96);
	else
		assert_int_equal(sn, (size_t)EVP_PKEY_get_size(key));
	assert_true(jws_verify(key, expect_alg, input, sraw, sn));
	/* a changed payload must not verify */
	input[strlen(input) - 1] ^= 1;
	assert_false(jws_verify(key, expect_alg, input, sraw, sn));

	free(input);
	free(sraw);
	free(praw);
	json_decref(jws);
	return prot;
}

static void roundtrip(EVP_PKEY *key, const char *alg)
{
	const char *url = "https://ca.example/acme/new-order";
	const char *payload =
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}]}";
	char *s;
	json_t *prot, *jwk;

	assert_string_equal(acme_jws_alg(key), alg);

	/* kid form with nonce */
	s = acme_jws_sign(key, "https://ca.example/acme/acct/7", "nonce-1", url,
			  payload);
	assert_non_null(s);
	prot = check_jws(key, s, alg, payload);
	assert_string_equal(json_string_value(json_object_get(prot, "kid")),
			    "https://ca.example/acme/acct/7");
	assert_string_equal(json_string_value(json_object_get(prot, "nonce")),
			    "nonce-1");
	assert_string_equal(json_string_value(json_object_get(prot, "url")),
			    url);
	assert_int_equal(json_object_size(prot), 4);
	json_decref(prot);
	free(s);

	/* jwk form (newAccount), POST-as-GET, no nonce */
	s = acme_jws_sign(key, NULL, NULL, url, NULL);
	assert_non_null(s);
	prot = check_jws(key, s, alg, "");
	jwk = acme_jwk(key);
	assert_true(json_equal(json_object_get(prot, "jwk"), jwk));
	assert_null(json_object_get(prot, "nonce"));
	assert_null(json_object_get(prot, "kid"));
	assert_int_equal(json_object_size(prot), 3);
	json_decref(jwk);
	json_decref(prot);
	free(s);

	/* "{}" (answering a challenge) differs from POST-as-GET's "" */
	s = acme_jws_sign(key, "k", "n", url, "{}");
	assert_non_null(s);
	json_decref(check_jws(key, s, alg, "{}"));
	free(s);

	assert_null(acme_jws_sign(key, "k", "n", NULL, "{}"));
	assert_null(acme_jws_sign(NULL, "k", "n", url, "{}"));
}

static void test_jws_es256(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	(void)state;
	assert_non_null(key);
	roundtrip(key, "ES256");
	EVP_PKEY_free(key);
}

static void test_jws_es384(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	json_t *jwk;
	size_t n;
	unsigned char *x;

	(void)state;
	assert_non_null(key);
	roundtrip(key, "ES384");
	jwk = acme_jwk(key);
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
			    "P-384");
	x = dec(json_string_value(json_object_get(jwk, "x")), &n);
	assert_int_equal(n, 48);
	free(x);
	json_decref(jwk);
	EVP_PKEY_free(key);
}

static void test_jws_rs256(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	char *a, *b;

	(void)state;
	assert_non_null(key);
	roundtrip(key, "RS256");
	/* PKCS#1 v1.5 is deterministic: same request, same bytes */
	a = acme_jws_sign(key, "k", "n", "https://u", "{}");
	b = acme_jws_sign(key, "k", "n", "https://u", "{}");
	assert_string_equal(a, b);
	free(a);
	free(b);
	EVP_PKEY_free(key);
}

/*
 * Fixed lengths where OpenSSL gives minimal ones: keys whose x starts
 * with a zero byte (1 in 256) and signatures whose r or s does (1 in
 * 128) must still produce 32-byte fields.
 */
static void test_leading_zeros(void **state)
{
	int i, found_key = 0, found_sig = 0;

	(void)state;
	for (i = 0; i < 4000 && !found_key; i++) {
		EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		BIGNUM *x = NULL;

		assert_true(
		    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x));
		if (BN_num_bytes(x) < 32) {
			json_t *jwk = acme_jwk(key);
			size_t n;
			unsigned char *raw = dec(
			    json_string_value(json_object_get(jwk, "x")), &n);

			assert_int_equal(n, 32);
			assert_int_equal(raw[0], 0);
			free(raw);
			json_decref(jwk);
			found_key = 1;
		}
		BN_free(x);
		EVP_PKEY_free(key);
	}
	assert_true(found_key);

	{
		EVP_PKEY *key = ec_key("prime256v1", a3_x, a3_y, a3_d);

		for (i = 0; i < 3000 && !found_sig; i++) {
			char *s = sign_input(key, a3_input, strlen(a3_input));
			size_t n;
			unsigned char *raw = dec(s, &n);

			assert_int_equal(n, 64);
			assert_true(jws_verify(key, "ES256", a3_input, raw, n));
			if (raw[0] == 0 || raw[32] == 0)
				found_sig = 1;
			free(raw);
			free(s);
		}
		EVP_PKEY_free(key);
	}
	assert_true(found_sig);
}

static void test_unsupported_keys(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	char tp[44];

	(void)state;
	assert_non_null(ed);
	assert_non_null(p521);
	assert_null(acme_jws_alg(ed));
	assert_null(acme_jws_alg(p521));
	assert_null(acme_jws_alg(NULL));
	assert_null(acme_jwk(ed));
	assert_null(acme_jwk(p521));
	assert_int_equal(acme_jwk_thumbprint(ed, tp), -EINVAL);
	assert_null(acme_jws_sign(ed, "k", "n", "https://u", "{}"));
	assert_null(acme_eab_jws("kid", (const unsigned char *)"k", 1, ed,
				 "https://u"));
	EVP_PKEY_free(ed);
	EVP_PKEY_free(p521);
}

/* ---- external account binding -------------------------------------------- */

static void test_eab(void **state)
{
	EVP_PKEY *acct = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	const char *hmac64 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEt"
			     "x3MUAsUDkMTQ12W";
	const char *url = "https://ca.example/acme/new-account";
	size_t kn, pn, yn, sn;
	unsigned char *k = dec(hmac64, &kn), *praw, *yraw, *sraw;
	unsigned char mac[32];
	size_t maclen;
	json_t *eab, *prot, *inner, *jwk;
	const char *p64, *y64, *s64;
	char *input;

	(void)state;
	eab = acme_eab_jws("kid-1", k, kn, acct, url);
	assert_non_null(eab);
	assert_int_equal(json_object_size(eab), 3);
	p64 = json_string_value(json_object_get(eab, "protected"));
	y64 = json_string_value(json_object_get(eab, "payload"));
	s64 = json_string_value(json_object_get(eab, "signature"));

	/* RFC 8555 §7.3.4: alg is a MAC, kid the EAB key id, url the
	 * newAccount URL, and no nonce */
	praw = dec(p64, &pn);
	prot = json_loadb((const char *)praw, pn, 0, NULL);
	assert_non_null(prot);
	assert_string_equal(json_string_value(json_object_get(prot, "alg")),
			    "HS256");
	assert_string_equal(json_string_value(json_object_get(prot, "kid")),
			    "kid-1");
	assert_string_equal(json_string_value(json_object_get(prot, "url")),
			    url);
	assert_int_equal(json_object_size(prot), 3);

	/* payload is the account's JWK */
	yraw = dec(y64, &yn);
	inner = json_loadb((const char *)yraw, yn, 0, NULL);
	jwk = acme_jwk(acct);
	assert_true(json_equal(inner, jwk));

	/* MAC recomputed independently */
	input = xmalloc(strlen(p64) + strlen(y64) + 2);
	sprintf(input, "%s.%s", p64, y64);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k, kn,
				  (unsigned char *)input, strlen(input), mac,
				  sizeof(mac), &maclen));
	sraw = dec(s64, &sn);
	assert_int_equal(sn, 32);
	assert_memory_equal(sraw, mac, 32);

	/* bad arguments */
	assert_null(acme_eab_jws(NULL, k, kn, acct, url));
	assert_null(acme_eab_jws("kid-1", NULL, kn, acct, url));
	assert_null(acme_eab_jws("kid-1", k, 0, acct, url));
	assert_null(acme_eab_jws("kid-1", k, kn, NULL, url));
	assert_null(acme_eab_jws("kid-1", k, kn, acct, NULL));

	free(input);
	free(sraw);
	free(yraw);
	free(praw);
	free(k);
	json_decref(jwk);
	json_decref(inner);
	json_decref(prot);
	json_decref(eab);
	EVP_PKEY_free(acct);
}

/* ---- challenges ---------------------------------------------------------- */

/* SHA-256("abc") from FIPS 180-2, as TLS-ALPN-01 digest and DNS-01 TXT. */
static void test_chall_digests(void **state)
{
	static const unsigned char abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	unsigned char d[32];
	char *txt;

	(void)state;
	assert_int_equal(acme_tlsalpn01_digest("abc", d), 0);
	assert_memory_equal(d, abc, 32);
	assert_int_equal(acme_tlsalpn01_digest(NULL, d), -EINVAL);
	txt = acme_dns01_txt("abc");
	assert_non_null(txt);
	assert_string_equal(txt, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
	free(txt);
}

static void test_chall(void **state)
{
	char *ka;
	char long_tok[300];

	(void)state;
	assert_string_equal(acme_chall_names[ACME_CHALL_HTTP01], "http-01");
	assert_string_equal(acme_chall_names[ACME_CHALL_TLSALPN01],
			    "tls-alpn-01");
	assert_string_equal(acme_chall_names[ACME_CHALL_DNS01], "dns-01");
	assert_string_equal(acme_method_names[ACME_GET], "GET");
	assert_string_equal(acme_method_names[ACME_HEAD], "HEAD");
	assert_string_equal(acme_method_names[ACME_POST], "POST");

	/* RFC 8555 §8.3 example token with the RFC 7638 thumbprint */
	ka = acme_key_authorization(
	    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
	    "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	assert_string_equal(ka, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA."
				"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(ka);
	assert_null(acme_key_authorization(NULL, "x"));
	assert_null(acme_key_authorization("x", NULL));

	assert_int_equal(0, acme_token_valid("evaGxfADs6pSRb2LAv9IZf17Dt3"
					     "juxGJ-PCt92wr-oA"));
	assert_int_equal(0,
			 acme_token_valid("abcdefghijklmnopqrstuv")); /* 22 */
	assert_int_equal(-EINVAL,
			 acme_token_valid("abcdefghijklmnopqrstu")); /* 21 */
	assert_int_equal(-EINVAL, acme_token_valid(NULL));
	assert_int_equal(-EINVAL, acme_token_valid(""));
	assert_int_equal(
	    -EINVAL, acme_token_valid("../../../../etc/passwd-aaaaaaaaaaa"));
	assert_int_equal(-EINVAL, acme_token_valid("abcdefghijklmnopqrstuv="));
	assert_int_equal(-EINVAL, acme_token_valid("abcdefghijklmnopqrstu+/"));
	assert_int_equal(-EINVAL, acme_token_valid("abcdefghijk mnopqrstuvw"));
	memset(long_tok, 'a', sizeof(long_tok));
	long_tok[256] = '\0';
	assert_int_equal(0, acme_token_valid(long_tok));
	long_tok[256] = 'a';
	long_tok[257] = '\0';
	assert_int_equal(-EINVAL, acme_token_valid(long_tok));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7638_thumbprint),
	    cmocka_unit_test(test_rfc7515_a1_hmac),
	    cmocka_unit_test(test_rfc7515_a3_ecdsa),
	    cmocka_unit_test(test_jws_es256),
	    cmocka_unit_test(test_jws_es384),
	    cmocka_unit_test(test_jws_rs256),
	    cmocka_unit_test(test_leading_zeros),
	    cmocka_unit_test(test_unsupported_keys),
	    cmocka_unit_test(test_eab),
	    cmocka_unit_test(test_chall),
		cmocka_unit_test(test_chall_digests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
