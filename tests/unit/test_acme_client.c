/*
 * Unit tests for acme_client (directory -> newNonce -> newAccount, the
 * nonce pool, the signing and error helpers) and acme_op (keyChange,
 * revokeCert), driven with hand-written responses in the shapes Let's
 * Encrypt and Pebble serve and a fake wall clock.
 *
 * JWS requests are taken apart and their signatures checked the way a
 * CA would: protected header decoded with jansson, ES256 r||s turned
 * back into DER and verified with the key the header claims.
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
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "acme/acme_internal.h"
#include "crypto/crypto.h"
#include "util/util.h"

#define LE	       "https://acme-staging-v02.api.letsencrypt.org"
#define DIR_URL	       LE "/directory"
#define NONCE_URL      LE "/acme/new-nonce"
#define NEW_ACCT_URL   LE "/acme/new-acct"
#define KEY_CHANGE_URL LE "/acme/key-change"
#define REVOKE_URL     LE "/acme/revoke-cert"
#define ACCT_URL       LE "/acme/acct/186734394"

#define T0 INT64_C(1735689600000)

static const char le_dir[] =
    "{\n"
    "  \"keyChange\": \"" KEY_CHANGE_URL "\",\n"
    "  \"meta\": {\n"
    "    \"caaIdentities\": [\"letsencrypt.org\"],\n"
    "    \"termsOfService\": \"https://letsencrypt.org/documents/"
    "LE-SA-v1.5-February-24-2025.pdf\",\n"
    "    \"website\": \"https://letsencrypt.org/docs/staging-environment/\"\n"
    "  },\n"
    "  \"newAccount\": \"" NEW_ACCT_URL "\",\n"
    "  \"newNonce\": \"" NONCE_URL "\",\n"
    "  \"newOrder\": \"" LE "/acme/new-order\",\n"
    "  \"renewalInfo\": \"" LE "/draft-ietf-acme-ari-03/renewalInfo\",\n"
    "  \"revokeCert\": \"" REVOKE_URL "\",\n"
    "  \"xPjYQ7NtB4k\": \"https://community.letsencrypt.org/t/"
    "adding-random-entries-to-the-directory/33417\"\n"
    "}";

static const char acct_body[] =
    "{\n  \"key\": {\"kty\": \"EC\", \"crv\": \"P-256\"},\n"
    "  \"contact\": [\"mailto:ops@example.com\"],\n"
    "  \"initialIp\": \"2001:db8::1\",\n"
    "  \"createdAt\": \"2025-01-01T00:00:00.123Z\",\n"
    "  \"status\": \"valid\"\n}";

static const char bad_nonce[] =
    "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":"
    "\"JWS has an invalid anti-replay nonce\",\"status\":400}";

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		abort();
	return p;
}

/* ---- recorded responses ---------------------------------------------------
 */

static int nonce_seq;
static char hdr_buf[16384];
static char last_nonce[64]; /* the nonce the last mk_res handed out */

static struct acme_response mk_res(long status, int with_nonce,
				   const char *extra, const char *body)
{
	struct acme_response r = {0};
	int n;

	n = snprintf(hdr_buf, sizeof(hdr_buf),
		     "HTTP/2 %ld\r\nserver: nginx\r\n"
		     "cache-control: public, max-age=0, no-cache\r\n",
		     status);
	if (with_nonce) {
		snprintf(last_nonce, sizeof(last_nonce),
			 "MEUCIQDm%04dX-nPkw_9Tk", ++nonce_seq);
		n += snprintf(hdr_buf + n, sizeof(hdr_buf) - (size_t)n,
			      "Replay-Nonce: %s\r\n", last_nonce);
	}
	n += snprintf(hdr_buf + n, sizeof(hdr_buf) - (size_t)n, "%s\r\n",
		      extra ? extra : "");
	assert_true((size_t)n < sizeof(hdr_buf));
	r.status = status;
	r.headers = hdr_buf;
	r.headers_len = (size_t)n;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	return r;
}

/* ---- JWS inspection -------------------------------------------------------
 */

static unsigned char *b64(const char *s, size_t *n)
{
	unsigned char *raw;

	if (!*s) {
		*n = 0;
		return xmalloc(1);
	}
	raw = b64url_decode(s, strlen(s), n);
	assert_non_null(raw);
	return raw;
}

static char *b64_str(const char *s)
{
	size_t n;
	unsigned char *raw = b64(s, &n);
	char *out = xmalloc(n + 1);

	memcpy(out, raw, n);
	out[n] = '\0';
	free(raw);
	return out;
}

struct jws {
	json_t *prot;  /* decoded protected header */
	char *payload; /* decoded payload, "" for POST-as-GET */
	json_t *raw;   /* the flattened object */
};

static void jws_open(struct jws *j, const char *body)
{
	char *p;

	j->raw = json_loads(body, 0, NULL);
	assert_non_null(j->raw);
	assert_int_equal(json_object_size(j->raw), 3);
	p = b64_str(json_string_value(json_object_get(j->raw, "protected")));
	j->prot = json_loads(p, 0, NULL);
	assert_non_null(j->prot);
	free(p);
	j->payload =
	    b64_str(json_string_value(json_object_get(j->raw, "payload")));
}

static void jws_close(struct jws *j)
{
	json_decref(j->prot);
	json_decref(j->raw);
	free(j->payload);
}

static const char *hdr_str(struct jws *j, const char *k)
{
	return json_string_value(json_object_get(j->prot, k));
}

/* 1 if the ES256 signature of j verifies with key. */
static int jws_verify(struct jws *j, EVP_PKEY *key)
{
	const char *p = json_string_value(json_object_get(j->raw, "protected"));
	const char *y = json_string_value(json_object_get(j->raw, "payload"));
	const char *s = json_string_value(json_object_get(j->raw, "signature"));
	size_t n, inlen = strlen(p) + 1 + strlen(y);
	unsigned char *sig = b64(s, &n), *der = NULL;
	char *in = xmalloc(inlen + 1);
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int derlen, ok;

	assert_int_equal(n, 64);
	snprintf(in, inlen + 1, "%s.%s", p, y);
	assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
					BN_bin2bn(sig + 32, 32, NULL)),
			 1);
	derlen = i2d_ECDSA_SIG(es, &der);
	assert_true(derlen > 0);
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(ctx, der, (size_t)derlen,
			      (const unsigned char *)in, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	free(sig);
	free(in);
	return ok;
}

static void assert_jwk_of(json_t *jwk, EVP_PKEY *key)
{
	json_t *want = acme_jwk(key);

	assert_non_null(want);
	assert_non_null(jwk);
	assert_true(json_equal(jwk, want));
	json_decref(want);
}

/* ---- fixture ----------------------------------------------------------------
 */

struct t {
	EVP_PKEY *key;
	struct acme_client *c;
	struct acme_request req;
	int64_t now;
	char log[8192]; /* "METHOD url" per request */
	/* freed by teardown, so a failed assert leaks nothing */
	struct acme_op *op;
	unsigned char *der;
	EVP_PKEY *ck;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	log_set_level(LOG_LVL_ERROR);
	if (!t)
		return -1;
	t->now = T0;
	t->key = key_generate(KEY_ECDSA_P256);
	if (!t->key)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	acme_request_clear(&t->req);
	acme_op_free(t->op);
	free(t->der);
	EVP_PKEY_free(t->ck);
	acme_client_free(t->c);
	EVP_PKEY_free(t->key);
	free(t);
	return 0;
}

static void client(struct t *t, const struct acme_client_opts *extra)
{
	struct acme_client_opts co = {.directory_url = DIR_URL,
				      .email = "ops@example.com",
				      .agree_tos = 1};

	if (extra)
		co = *extra;
	t->c = acme_client_new(t->key, &co);
	assert_non_null(t->c);
	assert_int_equal(acme_client_ready(t->c), 0);
	assert_null(acme_client_account_url(t->c));
}

static void logreq(struct t *t)
{
	size_t l = strlen(t->log);

	snprintf(t->log + l, sizeof(t->log) - l, "%s %s\n",
		 acme_method_names[t->req.method], t->req.url);
}

static enum acme_step cnext(struct t *t, int64_t *w)
{
	enum acme_step s;
	int64_t dummy;

	acme_request_clear(&t->req);
	s = acme_client_next(t->c, t->now, &t->req, w ? w : &dummy);
	if (s == ACME_STEP_SEND) {
		assert_non_null(t->req.url);
		logreq(t);
	} else {
		assert_null(t->req.url);
	}
	return s;
}

static void cfeed(struct t *t, long status, int nonce, const char *extra,
		  const char *body)
{
	struct acme_response r = mk_res(status, nonce, extra, body);

	assert_int_equal(acme_client_feed(t->c, &r, t->now), 0);
}

/* The whole dance, ending ready with one nonce pooled. */
static void make_ready(struct t *t)
{
	client(t, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 200, 0, "Content-Type: application/json", le_dir);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 200, 1, NULL, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 201, 1, "Location: " ACCT_URL, acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	t->log[0] = '\0';
}

/* ---- client -----------------------------------------------------------------
 */

static void test_new_account_created(void **state)
{
	struct t *t = *state;
	struct jws j;
	json_t *payload;
	char head_nonce[64];

	client(t, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_GET);
	assert_null(t->req.body);
	cfeed(t, 200, 0, "Content-Type: application/json", le_dir);
	assert_non_null(acme_client_directory(t->c));
	assert_string_equal(acme_client_directory(t->c)->new_nonce, NONCE_URL);

	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_HEAD);
	cfeed(t, 200, 1, "Link: <" DIR_URL ">;rel=\"index\"", NULL);
	snprintf(head_nonce, sizeof(head_nonce), "%s", last_nonce);
	assert_int_equal(acme_client_nonces(t->c), 1);

	/* newAccount is signed with the jwk, not a kid */
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_POST);
	assert_int_equal(t->req.body_len, strlen(t->req.body));
	assert_int_equal(acme_client_nonces(t->c), 0);
	jws_open(&j, t->req.body);
	assert_string_equal(hdr_str(&j, "alg"), "ES256");
	assert_string_equal(hdr_str(&j, "nonce"), head_nonce);
	assert_string_equal(hdr_str(&j, "url"), NEW_ACCT_URL);
	assert_null(json_object_get(j.prot, "kid"));
	assert_jwk_of(json_object_get(j.prot, "jwk"), t->key);
	assert_true(jws_verify(&j, t->key));
	payload = json_loads(j.payload, 0, NULL);
	assert_non_null(payload);
	assert_string_equal(json_string_value(json_array_get(
				json_object_get(payload, "contact"), 0)),
			    "mailto:ops@example.com");
	assert_true(
	    json_is_true(json_object_get(payload, "termsOfServiceAgreed")));
	assert_null(json_object_get(payload, "externalAccountBinding"));
	json_decref(payload);
	jws_close(&j);

	cfeed(t, 201, 1,
	      "Content-Type: application/json\r\nLocation: " ACCT_URL
	      "\r\nLink: <https://letsencrypt.org/documents/LE-SA-v1.5-"
	      "February-24-2025.pdf>;rel=\"terms-of-service\"",
	      acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	assert_true(acme_client_ready(t->c));
	assert_string_equal(acme_client_account_url(t->c), ACCT_URL);
	assert_int_equal(acme_client_error(t->c)->code, ACME_E_NONE);
	assert_int_equal(strlen(acme_client_thumbprint(t->c)), 43);
	assert_int_equal(acme_client_nonces(t->c), 1);
	assert_string_equal(t->log, "GET " DIR_URL "\n"
				    "HEAD " NONCE_URL "\n"
				    "POST " NEW_ACCT_URL "\n");
}

static void test_new_account_reused(void **state)
{
	struct t *t = *state;
	struct acme_client_opts co = {.directory_url = DIR_URL};
	struct jws j;

	client(t, &co);
	cnext(t, NULL);
	cfeed(t, 200, 1, NULL, le_dir); /* a nonce on the directory too */
	/* the directory's nonce is used: no HEAD needed? The client asks
	 * for one anyway; both are fine, but it must end up ready. */
	while (cnext(t, NULL) == ACME_STEP_SEND && t->req.method == ACME_HEAD)
		cfeed(t, 200, 1, NULL, NULL);
	assert_int_equal(t->req.method, ACME_POST);
	jws_open(&j, t->req.body);
	/* no contact, no ToS: an empty object */
	assert_string_equal(j.payload, "{}");
	jws_close(&j);
	cfeed(t, 200, 1, "Location: " ACCT_URL, acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	assert_string_equal(acme_client_account_url(t->c), ACCT_URL);
}

static void test_eab_required_not_configured(void **state)
{
	struct t *t = *state;
	const struct acme_error *e;
	char buf[512];

	client(t, NULL);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL,
	      "{\"newNonce\":\"https://acme.zerossl.com/v2/DV90/newNonce\","
	      "\"newAccount\":\"https://acme.zerossl.com/v2/DV90/newAccount\","
	      "\"newOrder\":\"https://acme.zerossl.com/v2/DV90/newOrder\","
	      "\"revokeCert\":\"https://acme.zerossl.com/v2/DV90/revokeCert\","
	      "\"keyChange\":\"https://acme.zerossl.com/v2/DV90/keyChange\","
	      "\"meta\":{\"termsOfService\":\"https://secure.trust-provider."
	      "com/repository/docs/Legacy/20221001_Certificate_Subscriber_"
	      "Agreement_v_2_5_click.pdf\",\"website\":\"https://zerossl.com\","
	      "\"caaIdentities\":[\"sectigo.com\",\"trust-provider.com\","
	      "\"usertrust.com\",\"comodoca.com\",\"comodo.com\"],"
	      "\"externalAccountRequired\":true}}");
	assert_int_equal(cnext(t, NULL), ACME_STEP_FAILED);
	e = acme_client_error(t->c);
	assert_int_equal(e->code, ACME_E_PROTOCOL);
	assert_string_equal(e->step, "directory");
	assert_non_null(strstr(e->detail, "external account binding"));
	assert_non_null(strstr(e->detail, "--eab-kid"));
	acme_error_str(e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "protocol: the CA requires external"));
	assert_string_equal(t->log, "GET " DIR_URL "\n");
}

static void test_eab_configured(void **state)
{
	struct t *t = *state;
	static const unsigned char hmac[] = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVI";
	struct acme_client_opts co = {.directory_url = DIR_URL,
				      .eab_kid = "kid-1",
				      .eab_hmac = hmac,
				      .eab_hmac_len = sizeof(hmac) - 1};
	struct jws j, e;
	json_t *payload;
	char *eab_text;
	unsigned char mac[32];
	unsigned int maclen = 0;
	size_t siglen;
	unsigned char *sig;
	char in[4096];

	client(t, &co);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL,
	      "{\"newNonce\":\"" NONCE_URL "\",\"newAccount\":\"" NEW_ACCT_URL
	      "\",\"newOrder\":\"" LE "/o\",\"meta\":{"
	      "\"externalAccountRequired\":true}}");
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 200, 1, NULL, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	jws_open(&j, t->req.body);
	payload = json_loads(j.payload, 0, NULL);
	assert_non_null(payload);
	eab_text = json_dumps(
	    json_object_get(payload, "externalAccountBinding"), JSON_COMPACT);
	assert_non_null(eab_text);
	jws_open(&e, eab_text);
	assert_string_equal(hdr_str(&e, "alg"), "HS256");
	assert_string_equal(hdr_str(&e, "kid"), "kid-1");
	assert_string_equal(hdr_str(&e, "url"), NEW_ACCT_URL);
	assert_null(json_object_get(e.prot, "nonce"));
	{
		json_t *jwk = json_loads(e.payload, 0, NULL);
		assert_jwk_of(jwk, t->key);
		json_decref(jwk);
	}
	snprintf(in, sizeof(in), "%s.%s",
		 json_string_value(json_object_get(e.raw, "protected")),
		 json_string_value(json_object_get(e.raw, "payload")));
	HMAC(EVP_sha256(), hmac, (int)(sizeof(hmac) - 1),
	     (const unsigned char *)in, strlen(in), mac, &maclen);
	sig = b64(json_string_value(json_object_get(e.raw, "signature")),
		  &siglen);
	assert_int_equal(siglen, 32);
	assert_memory_equal(sig, mac, 32);
	free(sig);
	jws_close(&e);
	free(eab_text);
	json_decref(payload);
	jws_close(&j);
	cfeed(t, 201, 1, "Location: " ACCT_URL, acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
}

static void test_bad_directory(void **state)
{
	struct t *t = *state;
	static const struct {
		long status;
		const char *body;
		const char *has;
	} cases[] = {
	    {200, "<html><body>Welcome to nginx!</body></html>",
	     "bad ACME directory"},
	    {200, "[]", "bad ACME directory"},
	    {200,
	     "{\"newAccount\":\"" NEW_ACCT_URL "\",\"newOrder\":\"" LE "/o\"}",
	     "bad ACME directory"},
	    {200,
	     "{\"newNonce\":\"ftp://x/n\",\"newAccount\":\"" NEW_ACCT_URL
	     "\",\"newOrder\":\"" LE "/o\"}",
	     "bad ACME directory"},
	    {200,
	     "{\"newNonce\":5,\"newAccount\":\"" NEW_ACCT_URL
	     "\",\"newOrder\":\"" LE "/o\"}",
	     "bad ACME directory"},
	    {200, NULL, "bad ACME directory"},
	    {404,
	     "{\"type\":\"urn:ietf:params:acme:error:malformed\","
	     "\"detail\":\"Page not found\",\"status\":404}",
	     "Page not found"},
	    {404, "<html>404</html>", "404"},
	    /* an https directory may not send us to plain http */
	    {200,
	     "{\"newNonce\":\"http://ca.example/n\",\"newAccount\":\""
	     NEW_ACCT_URL "\",\"newOrder\":\"" LE "/o\"}",
	     "plain-http URL"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct acme_error *e;

		client(t, NULL);
		assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
		cfeed(t, cases[i].status, 0, NULL, cases[i].body);
		assert_int_equal(cnext(t, NULL), ACME_STEP_FAILED);
		e = acme_client_error(t->c);
		assert_string_equal(e->step, "directory");
		assert_non_null(e->detail);
		if (!strstr(e->detail, cases[i].has))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e->detail,
				 cases[i].has);
		assert_false(acme_client_ready(t->c));
		acme_client_free(t->c);
		t->c = NULL;
	}
}

static void test_transient_then_success(void **state)
{
	struct t *t = *state;
	int64_t w = 0;

	client(t, NULL);
	cnext(t, NULL);
	cfeed(t, 503, 0, "Retry-After: 60", "<html>503</html>");
	assert_int_equal(cnext(t, &w), ACME_STEP_WAIT);
	assert_int_equal(w, T0 + 1000);
	t->now = T0 + 999;
	assert_int_equal(cnext(t, &w), ACME_STEP_WAIT);
	assert_int_equal(w, T0 + 1000);
	t->now = T0 + 1000;
	assert_int_equal(cnext(t, &w), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_GET);
	/* no response at all: transient too, waits longer */
	{
		struct acme_response r = {
		    .status = 0, .transport_error = "Could not resolve host"};
		assert_int_equal(acme_client_feed(t->c, &r, t->now), 0);
	}
	assert_int_equal(cnext(t, &w), ACME_STEP_WAIT);
	assert_int_equal(w, t->now + 2000);
	t->now = w;
	assert_int_equal(cnext(t, &w), ACME_STEP_SEND);
	cfeed(t, 200, 0, NULL, le_dir);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 200, 1, NULL, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 201, 1, "Location: " ACCT_URL, acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	assert_string_equal(t->log, "GET " DIR_URL "\n"
				    "GET " DIR_URL "\n"
				    "GET " DIR_URL "\n"
				    "HEAD " NONCE_URL "\n"
				    "POST " NEW_ACCT_URL "\n");
}

static void test_transient_exhausted(void **state)
{
	struct t *t = *state;
	int64_t w;
	int sends = 0;
	enum acme_step s;

	client(t, NULL);
	while ((s = cnext(t, &w)) != ACME_STEP_FAILED) {
		if (s == ACME_STEP_WAIT) {
			t->now = w;
			continue;
		}
		assert_int_equal(s, ACME_STEP_SEND);
		cfeed(t, 502, 0, NULL, "<html>Bad Gateway</html>");
		assert_true(++sends < 10);
	}
	assert_int_equal(sends, 4);
	assert_int_equal(acme_client_error(t->c)->status, 502);
	assert_int_equal(acme_client_error(t->c)->code, ACME_E_PROTOCOL);
	assert_string_equal(acme_client_error(t->c)->step, "directory");
}

static void test_bad_nonce_bounded(void **state)
{
	struct t *t = *state;
	int posts = 0;
	char prev[64] = "";

	client(t, NULL);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL, le_dir);
	cnext(t, NULL);
	cfeed(t, 200, 1, NULL, NULL);
	while (cnext(t, NULL) == ACME_STEP_SEND) {
		struct jws j;

		assert_int_equal(t->req.method, ACME_POST);
		assert_string_equal(t->req.url, NEW_ACCT_URL);
		/* each retry carries the nonce the badNonce answer gave */
		jws_open(&j, t->req.body);
		assert_string_not_equal(hdr_str(&j, "nonce"), prev);
		snprintf(prev, sizeof(prev), "%s", hdr_str(&j, "nonce"));
		jws_close(&j);
		cfeed(t, 400, 1, "Content-Type: application/problem+json",
		      bad_nonce);
		assert_true(++posts <= ACME_MAX_BADNONCE_RETRIES + 1);
	}
	assert_int_equal(posts, ACME_MAX_BADNONCE_RETRIES + 1);
	assert_string_equal(acme_client_error(t->c)->type, "badNonce");
	assert_string_equal(acme_client_error(t->c)->step, "newAccount");
	assert_int_equal(acme_client_error(t->c)->code, ACME_E_PROBLEM);
}

/* A badNonce answer without a fresh nonce: a HEAD fills the pool. */
static void test_bad_nonce_without_nonce(void **state)
{
	struct t *t = *state;

	client(t, NULL);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL, le_dir);
	cnext(t, NULL);
	cfeed(t, 200, 1, NULL, NULL);
	cnext(t, NULL);
	cfeed(t, 400, 0, NULL, bad_nonce);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_HEAD);
	cfeed(t, 204, 1, NULL, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_SEND);
	cfeed(t, 200, 1, "Location: " ACCT_URL, acct_body);
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	assert_string_equal(t->log, "GET " DIR_URL "\n"
				    "HEAD " NONCE_URL "\n"
				    "POST " NEW_ACCT_URL "\n"
				    "HEAD " NONCE_URL "\n"
				    "POST " NEW_ACCT_URL "\n");
}

static void test_new_nonce_without_nonce(void **state)
{
	struct t *t = *state;

	client(t, NULL);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL, le_dir);
	cnext(t, NULL);
	cfeed(t, 200, 0, NULL, NULL);
	assert_int_equal(cnext(t, NULL), ACME_STEP_FAILED);
	assert_string_equal(acme_client_error(t->c)->step, "newNonce");
	assert_non_null(
	    strstr(acme_client_error(t->c)->detail, "Replay-Nonce"));
}

static void test_account_failures(void **state)
{
	struct t *t = *state;
	static const struct {
		long status;
		const char *hdr;
		const char *body;
		const char *has;
	} cases[] = {
	    {201, NULL, acct_body, "account URL"},
	    {201, "Location: urn:acct:1", acct_body, "account URL"},
	    {201, "Location: " ACCT_URL, "{\"status\":\"deactivated\"}",
	     "deactivated"},
	    {201, "Location: " ACCT_URL, "not json", "JSON"},
	    {201, "Location: " ACCT_URL, NULL, "empty"},
	    {400, NULL,
	     "{\"type\":\"urn:ietf:params:acme:error:invalidContact\","
	     "\"detail\":\"Error validating contact(s) :: contact email "
	     "\\\"ops@example\\\" has invalid domain\",\"status\":400}",
	     "invalid domain"},
	    {403, NULL,
	     "{\"type\":\"urn:ietf:params:acme:error:"
	     "externalAccountRequired\",\"detail\":\"EAB needed\"}",
	     "EAB needed"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		client(t, NULL);
		cnext(t, NULL);
		cfeed(t, 200, 0, NULL, le_dir);
		cnext(t, NULL);
		cfeed(t, 200, 1, NULL, NULL);
		cnext(t, NULL);
		cfeed(t, cases[i].status, 1, cases[i].hdr, cases[i].body);
		assert_int_equal(cnext(t, NULL), ACME_STEP_FAILED);
		assert_string_equal(acme_client_error(t->c)->step,
				    "newAccount");
		if (!strstr(acme_client_error(t->c)->detail, cases[i].has))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i,
				 acme_client_error(t->c)->detail, cases[i].has);
		assert_null(acme_client_account_url(t->c));
		acme_client_free(t->c);
		t->c = NULL;
	}
}

static void test_nonce_pool(void **state)
{
	struct t *t = *state;
	char big[400];
	struct acme_response r;
	struct acme_request req;

	make_ready(t);
	assert_int_equal(acme_client_nonces(t->c), 1);
	/* not base64url, empty, too long: not pooled */
	r = mk_res(200, 0, "Replay-Nonce: abc+/=", NULL);
	acme_client_take_nonce(t->c, &r);
	r = mk_res(200, 0, "Replay-Nonce: ", NULL);
	acme_client_take_nonce(t->c, &r);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char h[512];
		snprintf(h, sizeof(h), "Replay-Nonce: %.*s",
			 ACME__NONCE_MAX + 1, big);
		r = mk_res(200, 0, h, NULL);
		acme_client_take_nonce(t->c, &r);
	}
	acme_client_take_nonce(t->c, NULL);
	assert_int_equal(acme_client_nonces(t->c), 1);
	/* a transport failure has no headers worth reading */
	r = mk_res(0, 1, NULL, NULL);
	acme_client_take_nonce(t->c, &r);
	assert_int_equal(acme_client_nonces(t->c), 1);
	/* bounded */
	for (int i = 0; i < ACME__NONCE_POOL + 50; i++) {
		r = mk_res(200, 1, NULL, NULL);
		acme_client_take_nonce(t->c, &r);
	}
	assert_int_equal(acme_client_nonces(t->c), ACME__NONCE_POOL);
	/* LIFO: the newest nonce is used first */
	assert_int_equal(acme__client_post(t->c, LE "/x", NULL, NULL, &req), 0);
	{
		struct jws j;
		jws_open(&j, req.body);
		assert_string_equal(hdr_str(&j, "nonce"), last_nonce);
		/* a later POST: kid, no jwk, empty payload */
		assert_string_equal(hdr_str(&j, "kid"), ACCT_URL);
		assert_null(json_object_get(j.prot, "jwk"));
		assert_string_equal(j.payload, "");
		assert_true(jws_verify(&j, t->key));
		jws_close(&j);
	}
	acme_request_clear(&req);
	acme_request_clear(NULL);
}

static void test_client_new_rejects(void **state)
{
	struct t *t = *state;
	struct acme_client_opts co = {.directory_url = NULL};
	static const unsigned char k[] = "x";

	assert_null(acme_client_new(t->key, &co));
	co.directory_url = DIR_URL;
	assert_null(acme_client_new(NULL, &co));
	assert_null(acme_client_new(t->key, NULL));
	co.eab_kid = "kid";
	assert_null(acme_client_new(t->key, &co));
	co.eab_kid = NULL;
	co.eab_hmac = k;
	co.eab_hmac_len = 1;
	assert_null(acme_client_new(t->key, &co));
	acme_client_free(NULL);
}

/* Feeding a finished client changes nothing. */
static void test_client_feed_when_done(void **state)
{
	struct t *t = *state;

	make_ready(t);
	cfeed(t, 500, 1, NULL, "{}");
	assert_int_equal(cnext(t, NULL), ACME_STEP_DONE);
	assert_string_equal(acme_client_account_url(t->c), ACCT_URL);
}

/* ---- acme_op: keyChange ----------------------------------------------------
 */

static enum acme_step onext(struct t *t, struct acme_op *op, int64_t *w)
{
	int64_t dummy;
	enum acme_step s;

	acme_request_clear(&t->req);
	s = acme_op_next(op, t->now, &t->req, w ? w : &dummy);
	if (s == ACME_STEP_SEND) {
		assert_non_null(t->req.url);
		logreq(t);
	} else {
		assert_null(t->req.url);
	}
	return s;
}

static void ofeed(struct t *t, struct acme_op *op, long status, int nonce,
		  const char *extra, const char *body)
{
	struct acme_response r = mk_res(status, nonce, extra, body);

	assert_int_equal(acme_op_feed(op, &r, t->now), 0);
}

static void test_key_change(void **state)
{
	struct t *t = *state;
	EVP_PKEY *nk = key_generate(KEY_ECDSA_P256);
	char old_tp[44], new_tp[44];
	struct acme_op *op;
	struct jws outer, inner;
	json_t *ip;
	struct acme_request req;

	assert_non_null(nk);
	make_ready(t);
	snprintf(old_tp, sizeof(old_tp), "%s", acme_client_thumbprint(t->c));
	assert_int_equal(acme_jwk_thumbprint(nk, new_tp), 0);
	op = acme_op_key_change(t->c, nk);
	assert_non_null(op);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_POST);
	assert_string_equal(t->req.url, KEY_CHANGE_URL);

	/* outer: account key, kid, nonce, url */
	jws_open(&outer, t->req.body);
	assert_string_equal(hdr_str(&outer, "kid"), ACCT_URL);
	assert_null(json_object_get(outer.prot, "jwk"));
	assert_non_null(hdr_str(&outer, "nonce"));
	assert_string_equal(hdr_str(&outer, "url"), KEY_CHANGE_URL);
	assert_true(jws_verify(&outer, t->key));

	/* inner: new key as jwk, same url, no nonce, no kid */
	jws_open(&inner, outer.payload);
	assert_string_equal(hdr_str(&inner, "alg"), "ES256");
	assert_string_equal(hdr_str(&inner, "url"), KEY_CHANGE_URL);
	assert_null(json_object_get(inner.prot, "nonce"));
	assert_null(json_object_get(inner.prot, "kid"));
	assert_jwk_of(json_object_get(inner.prot, "jwk"), nk);
	assert_true(jws_verify(&inner, nk));
	assert_false(jws_verify(&inner, t->key));
	ip = json_loads(inner.payload, 0, NULL);
	assert_non_null(ip);
	assert_int_equal(json_object_size(ip), 2);
	assert_string_equal(json_string_value(json_object_get(ip, "account")),
			    ACCT_URL);
	assert_jwk_of(json_object_get(ip, "oldKey"), t->key);
	json_decref(ip);
	jws_close(&inner);
	jws_close(&outer);

	/* not yet switched */
	assert_string_equal(acme_client_thumbprint(t->c), old_tp);
	ofeed(t, op, 200, 1, NULL, acct_body);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_DONE);
	assert_int_equal(acme_op_error(op)->code, ACME_E_NONE);
	assert_string_equal(acme_client_thumbprint(t->c), new_tp);
	/* later requests are signed by the new key, same kid */
	assert_int_equal(
	    acme__client_post(t->c, LE "/acme/order/1", NULL, NULL, &req), 0);
	jws_open(&outer, req.body);
	assert_string_equal(hdr_str(&outer, "kid"), ACCT_URL);
	assert_true(jws_verify(&outer, nk));
	assert_false(jws_verify(&outer, t->key));
	jws_close(&outer);
	acme_request_clear(&req);
	/* a feed after the end is refused */
	{
		struct acme_response r = mk_res(200, 1, NULL, NULL);
		assert_int_equal(acme_op_feed(op, &r, t->now), -EINVAL);
	}
	acme_op_free(op);
	EVP_PKEY_free(nk);
}

static void test_key_change_conflict_keeps_key(void **state)
{
	struct t *t = *state;
	EVP_PKEY *nk = key_generate(KEY_ECDSA_P256);
	char old_tp[44];
	struct acme_op *op;

	make_ready(t);
	snprintf(old_tp, sizeof(old_tp), "%s", acme_client_thumbprint(t->c));
	op = acme_op_key_change(t->c, nk);
	assert_non_null(op);
	/* badNonce first: same request again */
	onext(t, op, NULL);
	ofeed(t, op, 400, 1, NULL, bad_nonce);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	ofeed(t, op, 409, 1, "Location: " LE "/acme/acct/99",
	      "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":"
	      "\"New key is already in use for a different account\","
	      "\"status\":409}");
	assert_int_equal(onext(t, op, NULL), ACME_STEP_FAILED);
	assert_string_equal(acme_op_error(op)->type, "malformed");
	assert_string_equal(acme_op_error(op)->step, "keyChange");
	assert_int_equal(acme_op_error(op)->status, 409);
	assert_string_equal(acme_client_thumbprint(t->c), old_tp);
	assert_string_equal(t->log, "POST " KEY_CHANGE_URL "\n"
				    "POST " KEY_CHANGE_URL "\n");
	acme_op_free(op);
	EVP_PKEY_free(nk);
}

static void test_key_change_needs_ready_client(void **state)
{
	struct t *t = *state;
	EVP_PKEY *nk = key_generate(KEY_ECDSA_P256);

	client(t, NULL);
	assert_null(acme_op_key_change(t->c, nk));
	assert_null(
	    acme_op_revoke(t->c, (const unsigned char *)"x", 1, 0, NULL));
	acme_op_free(NULL);
	EVP_PKEY_free(nk);
}

/* ---- acme_op: revokeCert ----------------------------------------------------
 */

/* A small self-signed certificate, DER. */
static unsigned char *cert_der(EVP_PKEY *key, size_t *len)
{
	X509 *x = X509_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"example.com", -1, -1,
				   0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	X509_free(x);
	*len = (size_t)n;
	return der;
}

static void check_revoke_payload(const char *payload, const unsigned char *der,
				 size_t len, int reason)
{
	json_t *p = json_loads(payload, 0, NULL);
	char *want = b64url_encode(der, len);

	assert_non_null(p);
	assert_string_equal(
	    json_string_value(json_object_get(p, "certificate")), want);
	if (reason < 0)
		assert_null(json_object_get(p, "reason"));
	else
		assert_int_equal(
		    json_integer_value(json_object_get(p, "reason")), reason);
	free(want);
	json_decref(p);
}

static void test_revoke_by_account(void **state)
{
	struct t *t = *state;
	EVP_PKEY *ck = key_generate(KEY_ECDSA_P256);
	size_t len;
	unsigned char *der = cert_der(ck, &len);
	struct acme_op *op;
	struct jws j;

	make_ready(t);
	op = acme_op_revoke(t->c, der, len, 4, NULL); /* superseded */
	assert_non_null(op);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	assert_string_equal(t->req.url, REVOKE_URL);
	jws_open(&j, t->req.body);
	assert_string_equal(hdr_str(&j, "kid"), ACCT_URL);
	assert_null(json_object_get(j.prot, "jwk"));
	assert_string_equal(hdr_str(&j, "url"), REVOKE_URL);
	assert_true(jws_verify(&j, t->key));
	check_revoke_payload(j.payload, der, len, 4);
	jws_close(&j);
	ofeed(t, op, 200, 1, NULL, NULL);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_DONE);
	acme_op_free(op);

	/* reason -1: omitted */
	op = acme_op_revoke(t->c, der, len, -1, NULL);
	assert_non_null(op);
	onext(t, op, NULL);
	jws_open(&j, t->req.body);
	check_revoke_payload(j.payload, der, len, -1);
	jws_close(&j);
	acme_op_free(op);

	/* out of range, empty */
	assert_null(acme_op_revoke(t->c, der, len, 11, NULL));
	assert_null(acme_op_revoke(t->c, der, 0, 1, NULL));
	assert_null(acme_op_revoke(t->c, NULL, len, 1, NULL));
	free(der);
	EVP_PKEY_free(ck);
}

static void test_revoke_by_cert_key(void **state)
{
	struct t *t = *state;
	EVP_PKEY *ck = key_generate(KEY_ECDSA_P256);
	size_t len;
	unsigned char *der = cert_der(ck, &len);
	struct acme_op *op;
	struct jws j;

	make_ready(t);
	op = acme_op_revoke(t->c, der, len, 1, ck); /* keyCompromise */
	assert_non_null(op);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	jws_open(&j, t->req.body);
	assert_null(json_object_get(j.prot, "kid"));
	assert_jwk_of(json_object_get(j.prot, "jwk"), ck);
	assert_non_null(hdr_str(&j, "nonce"));
	assert_string_equal(hdr_str(&j, "url"), REVOKE_URL);
	assert_true(jws_verify(&j, ck));
	assert_false(jws_verify(&j, t->key));
	check_revoke_payload(j.payload, der, len, 1);
	jws_close(&j);
	/* already revoked: a permanent failure with its type */
	ofeed(t, op, 400, 1, "Content-Type: application/problem+json",
	      "{\"type\":\"urn:ietf:params:acme:error:alreadyRevoked\","
	      "\"detail\":\"Certificate already revoked\",\"status\":400}");
	assert_int_equal(onext(t, op, NULL), ACME_STEP_FAILED);
	assert_int_equal(acme_op_error(op)->code, ACME_E_PROBLEM);
	assert_string_equal(acme_op_error(op)->type, "alreadyRevoked");
	assert_string_equal(acme_op_error(op)->step, "revokeCert");
	assert_true(acme_problem_is_permanent(acme_op_error(op)->type));
	acme_op_free(op);
	free(der);
	EVP_PKEY_free(ck);
}

/* Empty pool: HEAD newNonce first; 503: wait and repeat; badNonce:
 * repeat, at most ACME_MAX_BADNONCE_RETRIES times. */
static void test_op_nonce_and_retries(void **state)
{
	struct t *t = *state;
	EVP_PKEY *ck = key_generate(KEY_ECDSA_P256);
	size_t len;
	unsigned char *der = cert_der(ck, &len);
	struct acme_op *op;
	struct acme_request req;
	int64_t w = 0;
	int posts = 0;

	make_ready(t);
	/* drain the pool */
	while (acme_client_nonces(t->c) > 0) {
		assert_int_equal(
		    acme__client_post(t->c, LE "/x", NULL, NULL, &req), 0);
		acme_request_clear(&req);
	}
	op = acme_op_revoke(t->c, der, len, 0, NULL);
	assert_non_null(op);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_HEAD);
	assert_string_equal(t->req.url, NONCE_URL);
	ofeed(t, op, 200, 1, NULL, NULL);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_SEND);
	assert_int_equal(t->req.method, ACME_POST);
	ofeed(t, op, 503, 1, NULL, "busy");
	assert_int_equal(onext(t, op, &w), ACME_STEP_WAIT);
	assert_int_equal(w, t->now + 1000);
	t->now = w;
	while (onext(t, op, NULL) == ACME_STEP_SEND) {
		assert_string_equal(t->req.url, REVOKE_URL);
		ofeed(t, op, 400, 1, NULL, bad_nonce);
		assert_true(++posts <= ACME_MAX_BADNONCE_RETRIES + 1);
	}
	assert_int_equal(posts, ACME_MAX_BADNONCE_RETRIES + 1);
	assert_string_equal(acme_op_error(op)->type, "badNonce");
	acme_op_free(op);
	free(der);
	EVP_PKEY_free(ck);
}

/*
 * A CA whose newNonce answers 200 without a Replay-Nonce: the client
 * and the order fail at once ("the CA sent no Replay-Nonce"); an op must
 * not ask for a nonce forever.
 */
static void test_op_new_nonce_without_nonce_fails(void **state)
{
	struct t *t = *state;
	EVP_PKEY *ck = t->ck = key_generate(KEY_ECDSA_P256);
	size_t len;
	unsigned char *der = t->der = cert_der(ck, &len);
	struct acme_op *op;
	struct acme_request req;
	int heads = 0;

	make_ready(t);
	while (acme_client_nonces(t->c) > 0) {
		assert_int_equal(
		    acme__client_post(t->c, LE "/x", NULL, NULL, &req), 0);
		acme_request_clear(&req);
	}
	op = t->op = acme_op_revoke(t->c, der, len, 0, NULL);
	assert_non_null(op);
	while (onext(t, op, NULL) == ACME_STEP_SEND && heads < 50) {
		assert_int_equal(t->req.method, ACME_HEAD);
		ofeed(t, op, 200, 0, NULL, NULL);
		heads++;
	}
	assert_true(heads < 50);
	assert_int_equal(onext(t, op, NULL), ACME_STEP_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_new_account_created),
	    T(test_new_account_reused),
	    T(test_eab_required_not_configured),
	    T(test_eab_configured),
	    T(test_bad_directory),
	    T(test_transient_then_success),
	    T(test_transient_exhausted),
	    T(test_bad_nonce_bounded),
	    T(test_bad_nonce_without_nonce),
	    T(test_new_nonce_without_nonce),
	    T(test_account_failures),
	    T(test_nonce_pool),
	    T(test_client_new_rejects),
	    T(test_client_feed_when_done),
	    T(test_key_change),
	    T(test_key_change_conflict_keeps_key),
	    T(test_key_change_needs_ready_client),
	    T(test_revoke_by_account),
	    T(test_revoke_by_cert_key),
	    T(test_op_nonce_and_retries),
	    T(test_op_new_nonce_without_nonce_fails),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
