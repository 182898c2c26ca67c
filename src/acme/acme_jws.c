/*
 * acme_jws — the signing side of ACME: public JWKs (RFC 7517/7518), their
 * thumbprints (RFC 7638), flattened JWS requests (RFC 7515, RFC 8555
 * §6.2) and external account binding (RFC 8555 §7.3.4).
 *
 * Why here and not in crypto/: this is wire format, not key management.
 * The two traps it exists to get right: JWS ECDSA signatures are the raw
 * fixed-length r||s (RFC 7518 §3.4), not the DER OpenSSL produces, and
 * JWK coordinates are fixed-length while RSA n/e carry no leading zeros.
 *
 * Never logs anything: the inputs are keys and the outputs signatures.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "acme/acme.h"
#include "util/util.h"

enum jws_kind { JWS_NONE = 0, JWS_ES256, JWS_ES384, JWS_RS256 };

/* Which JWS algorithm a key signs with, and its EC coordinate size. */
static enum jws_kind key_kind(EVP_PKEY *key, size_t *coord_len)
{
	char group[64];
	size_t glen = 0;

	if (!key)
		return JWS_NONE;
	if (EVP_PKEY_is_a(key, "RSA"))
		return JWS_RS256;
	if (!EVP_PKEY_is_a(key, "EC"))
		return JWS_NONE;
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), &glen))
		return JWS_NONE;
	/* OpenSSL reports its own short names, but accept the NIST ones
	 * too in case a provider prefers them. */
	if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) {
		*coord_len = 32;
		return JWS_ES256;
	}
	if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) {
		*coord_len = 48;
		return JWS_ES384;
	}
	return JWS_NONE;
}

const char *acme_jws_alg(EVP_PKEY *key)
{
	size_t cl;

	switch (key_kind(key, &cl)) {
	case JWS_ES256:
		return "ES256";
	case JWS_ES384:
		return "ES384";
	case JWS_RS256:
		return "RS256";
	default:
		return NULL;
	}
}

/* base64url of a big number, padded to pad bytes (0: minimal length). */
static json_t *bn_b64(const BIGNUM *bn, size_t pad)
{
	unsigned char *bin = NULL;
	char *enc = NULL;
	json_t *j = NULL;
	size_t n = pad ? pad : (size_t)BN_num_bytes(bn);

	/* A zero exponent or modulus is not a key; RFC 7518 also wants at
	 * least one octet. */
	if (n == 0)
		goto out;
	bin = malloc(n);
	if (!bin)
		goto out;
	if (BN_bn2binpad(bn, bin, (int)n) != (int)n)
		goto out;
	enc = b64url_encode(bin, n);
	if (!enc)
		goto out;
	j = json_string(enc);
out:
	free(bin);
	free(enc);
	return j;
}

json_t *acme_jwk(EVP_PKEY *key)
{
	BIGNUM *a = NULL, *b = NULL;
	json_t *jwk = NULL, *ja = NULL, *jb = NULL;
	size_t cl = 0;
	enum jws_kind kind = key_kind(key, &cl);

	if (kind == JWS_NONE)
		goto out;
	if (kind == JWS_RS256) {
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b))
			goto out;
		ja = bn_b64(a, 0);
		jb = bn_b64(b, 0);
		if (!ja || !jb)
			goto out;
		/* Inserted in lexicographic order (RFC 7638 §3.2); the
		 * thumbprint sorts again on output regardless. "O" takes
		 * its own reference, so ja/jb are always ours to drop. */
		jwk = json_pack("{s:O, s:s, s:O}", "e", jb, "kty", "RSA", "n",
				ja);
	} else {
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b))
			goto out;
		/* Coordinates keep their leading zeros (RFC 7518 §6.2.1.2):
		 * a short x would change the thumbprint ~1 time in 256. */
		ja = bn_b64(a, cl);
		jb = bn_b64(b, cl);
		if (!ja || !jb)
			goto out;
		jwk = json_pack("{s:s, s:s, s:O, s:O}", "crv",
				kind == JWS_ES256 ? "P-256" : "P-384", "kty",
				"EC", "x", ja, "y", jb);
	}
out:
	json_decref(ja);
	json_decref(jb);
	BN_free(a);
	BN_free(b);
	return jwk;
}

int acme_jwk_thumbprint(EVP_PKEY *key, char out[44])
{
	json_t *jwk = NULL;
	char *s = NULL, *enc = NULL;
	unsigned char md[32];
	unsigned int mdlen = 0;
	int ret = -EINVAL;

	jwk = acme_jwk(key);
	if (!jwk)
		goto out;
	/* RFC 7638 §3: required members only, sorted, no whitespace. */
	s = json_dumps(jwk, JSON_SORT_KEYS | JSON_COMPACT);
	if (!s) {
		ret = -ENOMEM;
		goto out;
	}
	if (!EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != sizeof(md)) {
		ret = -EIO;
		goto out;
	}
	enc = b64url_encode(md, sizeof(md));
	if (!enc || strlen(enc) != 43) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(out, enc, 44);
	ret = 0;
out:
	free(enc);
	free(s);
	json_decref(jwk);
	return ret;
}

/*
 * OpenSSL's DER ECDSA-Sig-Value to JWS's r||s, each left-padded to the
 * coordinate size (RFC 7518 §3.4). Writes 2 * cl bytes into out.
 */
static int ecdsa_der_to_raw(const unsigned char *der, size_t der_len, size_t cl,
			    unsigned char *out)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	int ret = -EIO;

	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, out, (int)cl) != (int)cl ||
	    BN_bn2binpad(s, out + cl, (int)cl) != (int)cl)
		goto out;
	ret = 0;
out:
	ECDSA_SIG_free(sig);
	return ret;
}

/* Sign input with key; base64url signature (malloc'd) or NULL. */
static char *sign_input(EVP_PKEY *key, const char *input, size_t len)
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char *sig = NULL, raw[2 * 48];
	size_t siglen = 0, cl = 0;
	enum jws_kind kind = key_kind(key, &cl);
	const EVP_MD *md = kind == JWS_ES384 ? EVP_sha384() : EVP_sha256();
	char *enc = NULL;

	if (kind == JWS_NONE)
		goto out;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		goto out;
	/* For RSA keys the default padding is PKCS#1 v1.5, as RS256
	 * requires. */
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input,
			   len) != 1)
		goto out;
	sig = malloc(siglen);
	if (!sig)
		goto out;
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input,
			   len) != 1)
		goto out;
	if (kind == JWS_RS256) {
		enc = b64url_encode(sig, siglen);
	} else {
		if (ecdsa_der_to_raw(sig, siglen, cl, raw))
			goto out;
		enc = b64url_encode(raw, 2 * cl);
	}
out:
	free(sig);
	EVP_MD_CTX_free(ctx);
	return enc;
}

/* HMAC-SHA256 of input, base64url (malloc'd) or NULL. Kept apart so the
 * RFC 7515 A.1 vector can test it directly. */
static char *hs256(const unsigned char *key, size_t key_len, const char *input,
		   size_t len)
{
	unsigned char mac[32];
	size_t mac_len = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
		       (const unsigned char *)input, len, mac, sizeof(mac),
		       &mac_len) ||
	    mac_len != sizeof(mac))
		return NULL;
	return b64url_encode(mac, mac_len);
}

/*
 * protected "." payload, both base64url; the protected header is
 * serialized compact and sorted so that identical requests produce
 * identical bytes (easier to compare in tests and recordings).
 */
static char *signing_input(json_t *prot, const char *payload,
			   size_t payload_len, char **prot_b64,
			   char **payload_b64)
{
	char *ps = NULL, *in = NULL;
	size_t a, b;

	*prot_b64 = *payload_b64 = NULL;
	ps = json_dumps(prot, JSON_SORT_KEYS | JSON_COMPACT);
	if (!ps)
		goto out;
	*prot_b64 = b64url_encode(ps, strlen(ps));
	*payload_b64 = b64url_encode(payload ? payload : "", payload_len);
	if (!*prot_b64 || !*payload_b64)
		goto out;
	a = strlen(*prot_b64);
	b = strlen(*payload_b64);
	in = malloc(a + b + 2);
	if (!in)
		goto out;
	memcpy(in, *prot_b64, a);
	in[a] = '.';
	memcpy(in + a + 1, *payload_b64, b + 1);
out:
	free(ps);
	return in;
}

/* Flattened JWS object (RFC 7515 §7.2.2) from its three parts. */
static json_t *flattened(const char *prot_b64, const char *payload_b64,
			 const char *sig_b64)
{
	return json_pack("{s:s, s:s, s:s}", "protected", prot_b64, "payload",
			 payload_b64, "signature", sig_b64);
}

char *acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce,
		    const char *url, const char *payload)
{
	json_t *prot = NULL, *jws = NULL, *jwk = NULL;
	char *in = NULL, *pb = NULL, *yb = NULL, *sig = NULL, *res = NULL;
	const char *alg = acme_jws_alg(key);

	if (!alg || !url)
		goto out;
	prot = json_pack("{s:s, s:s}", "alg", alg, "url", url);
	if (!prot)
		goto out;
	if (nonce && json_object_set_new(prot, "nonce", json_string(nonce)))
		goto out;
	/* RFC 8555 §6.2: kid and jwk are mutually exclusive; jwk only
	 * for newAccount and certificate-key revocation. */
	if (kid) {
		if (json_object_set_new(prot, "kid", json_string(kid)))
			goto out;
	} else {
		jwk = acme_jwk(key);
		if (!jwk || json_object_set_new(prot, "jwk", jwk)) {
			jwk = NULL;
			goto out;
		}
		jwk = NULL;
	}
	in = signing_input(prot, payload, payload ? strlen(payload) : 0, &pb,
			   &yb);
	if (!in)
		goto out;
	sig = sign_input(key, in, strlen(in));
	if (!sig)
		goto out;
	jws = flattened(pb, yb, sig);
	if (!jws)
		goto out;
	res = json_dumps(jws, JSON_COMPACT);
out:
	json_decref(jws);
	json_decref(prot);
	free(in);
	free(pb);
	free(yb);
	free(sig);
	return res;
}

json_t *acme_eab_jws(const char *eab_kid, const unsigned char *hmac_key,
		     size_t hmac_len, EVP_PKEY *account_key, const char *url)
{
	json_t *prot = NULL, *jwk = NULL, *jws = NULL;
	char *jwk_s = NULL, *in = NULL, *pb = NULL, *yb = NULL, *sig = NULL;

	if (!eab_kid || !hmac_key || hmac_len == 0 || !url)
		goto out;
	jwk = acme_jwk(account_key);
	if (!jwk)
		goto out;
	jwk_s = json_dumps(jwk, JSON_SORT_KEYS | JSON_COMPACT);
	/* RFC 8555 §7.3.4: no nonce in the inner JWS. */
	prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid,
			 "url", url);
	if (!jwk_s || !prot)
		goto out;
	in = signing_input(prot, jwk_s, strlen(jwk_s), &pb, &yb);
	if (!in)
		goto out;
	sig = hs256(hmac_key, hmac_len, in, strlen(in));
	if (!sig)
		goto out;
	jws = flattened(pb, yb, sig);
out:
	json_decref(jwk);
	json_decref(prot);
	free(jwk_s);
	free(in);
	free(pb);
	free(yb);
	free(sig);
	return jws;
}
