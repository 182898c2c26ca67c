/*
 * Unit tests for acme_order: the order machine driven end to end with
 * recorded CA responses written by hand in the shapes Pebble and Let's
 * Encrypt serve (status, raw header block with Replay-Nonce, Location,
 * Retry-After and Link, JSON body), a fake wall clock, a real P-256
 * account key and CSR, and a small test PKI built with OpenSSL so the
 * downloaded chains parse and cover the ordered names.
 *
 * Every request the machine asks for and every publish/unpublish hook
 * call is appended to one event log, so a test can state the exact
 * conversation it expects, in order.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "crypto/crypto.h"
#include "util/util.h"

#define CA	      "https://pebble.test:14000"
#define DIR_URL	      CA "/dir"
#define NONCE_URL     CA "/nonce-plz"
#define NEW_ACCT_URL  CA "/sign-me-up"
#define NEW_ORDER_URL CA "/order-plz"
#define ACCT_URL      CA "/my-account/7"
#define ORDER_URL     CA "/my-order/Yz3q"
#define FINALIZE_URL  CA "/finalize-order/Yz3q"
#define CERT_URL      CA "/certZ/Yz3q"
#define ALT1_URL      CA "/certZ/Yz3q/1"
#define ALT2_URL      CA "/certZ/Yz3q/2"

/* 2025-01-01T00:00:00Z, a whole second so HTTP-dates line up exactly. */
#define T0 INT64_C(1735689600000)

static const char pebble_dir[] =
    "{\"keyChange\":\"" CA "/rollover-account-key\","
    "\"meta\":{\"externalAccountRequired\":false,"
    "\"termsOfService\":\"data:text/plain,Do%20what%20thou%20wilt\"},"
    "\"newAccount\":\"" NEW_ACCT_URL "\",\"newNonce\":\"" NONCE_URL "\","
    "\"newOrder\":\"" NEW_ORDER_URL "\","
    "\"renewalInfo\":\"" CA "/draft-ietf-acme-ari-03/renewalInfo\","
    "\"revokeCert\":\"" CA "/revoke-cert\"}";

/* One token per authorization index, base64url, >= 22 chars. */
static const char *const tokens[] = {
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
    "Wv4Ix5dAqkXm2fzYpT8sQh0cN3uJ6rBeL9gK1oZaHy7",
    "aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3wX4yZ5_-ab",
};

/* ---- small utilities ----------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		abort();
	return p;
}

/* Formatted text in one of a few rotating static buffers: enough for
 * building a response body and its headers in one expression. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	static char bufs[6][32768];
	static int next;
	char *b = bufs[next++ % 6];
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(bufs[0]));
	return b;
}

/* The event log: requests as "METHOD url", hook calls as
 * "publish|unpublish type domain token". */
static char events[65536];

static void ev(const char *f, ...) __attribute__((format(printf, 1, 2)));
static void ev(const char *f, ...)
{
	size_t len = strlen(events);
	va_list ap;

	va_start(ap, f);
	vsnprintf(events + len, sizeof(events) - len, f, ap);
	va_end(ap);
	len = strlen(events);
	assert_true(len + 1 < sizeof(events));
	events[len] = '\n';
	events[len + 1] = '\0';
}

/* ---- recorded responses ---------------------------------------------------
 */

static int nonce_seq;
static char hdr_buf[16384];

/*
 * A response as libcurl would hand it: status line, the Replay-Nonce a
 * CA puts on every answer (unless with_nonce is 0), any extra header
 * lines ("Name: value\r\n..."), and the body (borrowed).
 */
static struct acme_response mk_res(long status, int with_nonce,
				   const char *extra, const char *body)
{
	struct acme_response r = {0};
	int n;

	n = snprintf(hdr_buf, sizeof(hdr_buf),
		     "HTTP/2 %ld\r\nserver: nginx\r\ncache-control: "
		     "public, max-age=0, no-cache\r\n",
		     status);
	if (with_nonce)
		n += snprintf(hdr_buf + n, sizeof(hdr_buf) - (size_t)n,
			      "replay-nonce: 5Nq7mK2sVx%04dQe8RtYu-Io_Pa\r\n",
			      ++nonce_seq);
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

static char *b64_str(const char *s, size_t len)
{
	size_t n = 0;
	unsigned char *raw;
	char *out;

	if (len == 0) {
		out = xmalloc(1);
		out[0] = '\0';
		return out;
	}
	raw = b64url_decode(s, len, &n);
	assert_non_null(raw);
	out = xmalloc(n + 1);
	memcpy(out, raw, n);
	out[n] = '\0';
	free(raw);
	return out;
}

/* Split a flattened JWS; protected header as JSON, payload as text. */
static void jws_parts(const char *body, json_t **prot, char **payload)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *p, *y;
	char *ptxt;

	assert_non_null(j);
	p = json_string_value(json_object_get(j, "protected"));
	y = json_string_value(json_object_get(j, "payload"));
	assert_non_null(p);
	assert_non_null(y);
	assert_non_null(json_string_value(json_object_get(j, "signature")));
	ptxt = b64_str(p, strlen(p));
	*prot = json_loads(ptxt, 0, NULL);
	assert_non_null(*prot);
	*payload = b64_str(y, strlen(y));
	free(ptxt);
	json_decref(j);
}

/* ---- a test PKI: two roots, one intermediate key cross-signed by both ---- */

static struct {
	EVP_PKEY *root_a_key, *root_b_key, *int_key, *leaf_key;
	X509 *root_a, *root_b, *int_a, *int_b;
	long serial;
} pki;

static X509 *mk_cert(const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		     EVP_PKEY *key, const char *san, int is_ca)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), ++pki.serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn,
						    -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(
			     x, issuer ? X509_get_subject_name(issuer) : name),
			 1);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  is_ca ? "critical,CA:TRUE" : "CA:FALSE");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (san) {
		ext =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static void pem_append(BIO *b, X509 *x)
{
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
}

/*
 * "leaf + intermediate" PEM for a leaf with SAN san; the intermediate is
 * the one issued by root A (via 'a') or root B (via 'b'), so the top
 * issuer CN of the chain names that root. Caller frees.
 */
static char *chain_pem(const char *san, char via)
{
	X509 *issuer = via == 'a' ? pki.int_a : pki.int_b;
	X509 *leaf = mk_cert("leaf", issuer, pki.int_key, pki.leaf_key, san, 0);
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	pem_append(b, leaf);
	pem_append(b, issuer);
	n = BIO_get_mem_data(b, &data);
	out = xmalloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	X509_free(leaf);
	return out;
}

static int pki_setup(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_ERROR);
	pki.root_a_key = key_generate(KEY_ECDSA_P256);
	pki.root_b_key = key_generate(KEY_ECDSA_P256);
	pki.int_key = key_generate(KEY_ECDSA_P256);
	pki.leaf_key = key_generate(KEY_ECDSA_P256);
	if (!pki.root_a_key || !pki.root_b_key || !pki.int_key || !pki.leaf_key)
		return -1;
	pki.root_a = mk_cert("Certherd Test Root A", NULL, pki.root_a_key,
			     pki.root_a_key, NULL, 1);
	pki.root_b = mk_cert("Certherd Test Root B", NULL, pki.root_b_key,
			     pki.root_b_key, NULL, 1);
	pki.int_a = mk_cert("Certherd Test Int", pki.root_a, pki.root_a_key,
			    pki.int_key, NULL, 1);
	pki.int_b = mk_cert("Certherd Test Int", pki.root_b, pki.root_b_key,
			    pki.int_key, NULL, 1);
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	X509_free(pki.root_a);
	X509_free(pki.root_b);
	X509_free(pki.int_a);
	X509_free(pki.int_b);
	EVP_PKEY_free(pki.root_a_key);
	EVP_PKEY_free(pki.root_b_key);
	EVP_PKEY_free(pki.int_key);
	EVP_PKEY_free(pki.leaf_key);
	return 0;
}

/* ---- per-test fixture ---------------------------------------------------- */

struct t {
	EVP_PKEY *key;
	struct acme_client *c;
	const char *names[3];
	size_t n_names;
	unsigned char *csr;
	size_t csr_len;
	struct acme_order *o;
	struct acme_request req;
	int64_t now;
	int64_t waited; /* ms the last send() had to wait first */
	int publish_rc;
	enum acme_chall_type chall; /* the order's challenge type */
	int n_publish, n_unpublish;
	char *own; /* freed by teardown, so a failed assert leaks nothing */
};

static int hook_publish(void *ctx, enum acme_chall_type type,
			const char *domain, const char *token,
			const char *key_auth)
{
	struct t *t = ctx;
	char *want =
	    acme_key_authorization(token, acme_client_thumbprint(t->c));

	assert_non_null(want);
	assert_string_equal(key_auth, want);
	free(want);
	ev("publish %s %s %s", acme_chall_names[type], domain, token);
	t->n_publish++;
	return t->publish_rc;
}

static void hook_unpublish(void *ctx, enum acme_chall_type type,
			   const char *domain, const char *token)
{
	struct t *t = ctx;

	ev("unpublish %s %s %s", acme_chall_names[type], domain, token);
	t->n_unpublish++;
}

/* Bring a client to ready against the Pebble-shaped directory. The
 * newAccount answer carries a nonce only if pool_nonce. */
static struct acme_client *ready_client(EVP_PKEY *key, int64_t now,
					int pool_nonce)
{
	struct acme_client_opts co = {.directory_url = DIR_URL,
				      .email = "ops@example.com",
				      .agree_tos = 1};
	struct acme_client *c = acme_client_new(key, &co);
	struct acme_request req;
	struct acme_response r;
	int64_t w;

	assert_non_null(c);
	assert_int_equal(acme_client_next(c, now, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(200, 0, "Content-Type: application/json", pebble_dir);
	assert_int_equal(acme_client_feed(c, &r, now), 0);
	assert_int_equal(acme_client_next(c, now, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(200, 1, NULL, NULL);
	assert_int_equal(acme_client_feed(c, &r, now), 0);
	assert_int_equal(acme_client_next(c, now, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(201, pool_nonce, "Location: " ACCT_URL,
		   "{\"status\":\"valid\",\"contact\":[\"mailto:ops@"
		   "example.com\"],\"orders\":\"" ACCT_URL "/orders\"}");
	assert_int_equal(acme_client_feed(c, &r, now), 0);
	assert_int_equal(acme_client_next(c, now, &req, &w), ACME_STEP_DONE);
	return c;
}

static int setup_names(void **state, const char *const *names, size_t n,
		       int pool_nonce)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	events[0] = '\0';
	t->now = T0;
	t->key = key_generate(KEY_ECDSA_P256);
	if (!t->key)
		return -1;
	for (size_t i = 0; i < n; i++)
		t->names[i] = names[i];
	t->n_names = n;
	if (csr_create(t->key, names, n, &t->csr, &t->csr_len) < 0)
		return -1;
	t->c = ready_client(t->key, t->now, pool_nonce);
	*state = t;
	return 0;
}

static int setup_one(void **state)
{
	static const char *const n[] = {"example.com"};
	return setup_names(state, n, 1, 1);
}

static int setup_two(void **state)
{
	static const char *const n[] = {"example.com", "www.example.com"};
	return setup_names(state, n, 2, 1);
}

static int setup_one_no_nonce(void **state)
{
	static const char *const n[] = {"example.com"};
	return setup_names(state, n, 1, 0);
}

static int teardown(void **state)
{
	struct t *t = *state;

	acme_request_clear(&t->req);
	free(t->own);
	acme_order_free(t->o);
	acme_client_free(t->c);
	EVP_PKEY_free(t->key);
	free(t->csr);
	free(t);
	return 0;
}

/* Create the order; opts may be NULL or carry the optional fields. */
static void start(struct t *t, const struct acme_order_opts *extra)
{
	struct acme_order_opts oo = {0};
	struct acme_challenge_hooks h = {hook_publish, hook_unpublish, t};

	if (extra)
		oo = *extra;
	oo.names = t->names;
	oo.n_names = t->n_names;
	oo.csr_der = t->csr;
	oo.csr_len = t->csr_len;
	oo.chall = t->chall;
	t->o = acme_order_new(t->c, &oo, &h);
	assert_non_null(t->o);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_NEW);
}

/* The next request; a WAIT first advances the fake clock to wake_at
 * (recorded in t->waited). The request stays in t->req. */
static struct acme_request *send(struct t *t)
{
	int64_t w = -1;
	enum acme_step s;

	acme_request_clear(&t->req);
	t->waited = 0;
	s = acme_order_next(t->o, t->now, &t->req, &w);
	if (s == ACME_STEP_WAIT) {
		assert_true(w > t->now);
		t->waited = w - t->now;
		t->now = w;
		s = acme_order_next(t->o, t->now, &t->req, &w);
	}
	assert_int_equal(s, ACME_STEP_SEND);
	assert_non_null(t->req.url);
	if (t->req.method == ACME_POST)
		assert_non_null(t->req.body);
	ev("%s %s", acme_method_names[t->req.method], t->req.url);
	return &t->req;
}

static void feed(struct t *t, long status, const char *extra, const char *body)
{
	struct acme_response r = mk_res(status, 1, extra, body);

	assert_int_equal(acme_order_feed(t->o, &r, t->now), 0);
}

static void xchg(struct t *t, long status, const char *extra, const char *body)
{
	send(t);
	feed(t, status, extra, body);
}

static enum acme_step step_now(struct t *t)
{
	int64_t w = -1;
	enum acme_step s;

	acme_request_clear(&t->req);
	s = acme_order_next(t->o, t->now, &t->req, &w);
	if (s == ACME_STEP_DONE || s == ACME_STEP_FAILED)
		assert_null(t->req.url);
	return s;
}

/* Put one nonce in the pool, as a response to some other request
 * would (for tests that leave a request unanswered). */
static void topup(struct t *t)
{
	struct acme_response r = mk_res(204, 1, NULL, NULL);

	acme_client_take_nonce(t->c, &r);
}

/* Payload of the POST in t->req; "" for POST-as-GET. Caller frees. */
static char *payload_of(struct t *t, json_t **prot)
{
	json_t *p;
	char *y;

	assert_int_equal(t->req.method, ACME_POST);
	jws_parts(t->req.body, &p, &y);
	/* every order request is signed with the account's kid, and names
	 * the URL it is sent to */
	assert_string_equal(json_string_value(json_object_get(p, "kid")),
			    ACCT_URL);
	assert_null(json_object_get(p, "jwk"));
	assert_string_equal(json_string_value(json_object_get(p, "url")),
			    t->req.url);
	assert_non_null(json_string_value(json_object_get(p, "nonce")));
	if (prot)
		*prot = p;
	else
		json_decref(p);
	return y;
}

static void assert_post_as_get(struct t *t)
{
	char *y = payload_of(t, NULL);

	assert_string_equal(y, "");
	free(y);
}

/* ---- CA-side bodies -------------------------------------------------------
 */

static const char *authz_url(size_t i)
{
	return fmt(CA "/authZ/az%zu", i);
}

static const char *chall_url(size_t i)
{
	return fmt(CA "/chalZ/az%zu-http", i);
}

/* An order object as Pebble sends it; extra is appended members. */
static const char *order_body(struct t *t, const char *status,
			      const char *extra)
{
	char ids[2048] = "", azs[2048] = "";

	for (size_t i = 0; i < t->n_names; i++) {
		size_t l1 = strlen(ids), l2 = strlen(azs);
		snprintf(ids + l1, sizeof(ids) - l1,
			 "%s{\"type\":\"dns\",\"value\":\"%s\"}", i ? "," : "",
			 t->names[i]);
		snprintf(azs + l2, sizeof(azs) - l2, "%s\"%s\"", i ? "," : "",
			 authz_url(i));
	}
	return fmt(
	    "{\n  \"status\": \"%s\",\n  \"expires\": "
	    "\"2025-01-08T00:00:00Z\",\n  \"identifiers\": [%s],\n"
	    "  \"authorizations\": [%s],\n  \"finalize\": \"" FINALIZE_URL
	    "\"%s\n}",
	    status, ids, azs, extra ? extra : "");
}

/* An authorization the way Let's Encrypt shapes it: all three challenge
 * types offered, the http-01 one at chall_url(i) with tokens[i]. */
static const char *authz_body(struct t *t, size_t i, const char *status,
			      const char *chall_status, const char *chall_extra)
{
	return fmt(
	    "{\"identifier\":{\"type\":\"dns\",\"value\":\"%s\"},"
	    "\"status\":\"%s\",\"expires\":\"2025-01-08T00:00:00Z\","
	    "\"challenges\":["
	    "{\"type\":\"tls-alpn-01\",\"url\":\"" CA "/chalZ/az%zu-alpn\","
	    "\"status\":\"pending\",\"token\":\"%s\"},"
	    "{\"type\":\"http-01\",\"url\":\"%s\",\"status\":\"%s\","
	    "\"token\":\"%s\"%s},"
	    "{\"type\":\"dns-01\",\"url\":\"" CA "/chalZ/az%zu-dns\","
	    "\"status\":\"pending\",\"token\":\"%s\"}]}",
	    t->names[i], status, i, tokens[i], chall_url(i), chall_status,
	    tokens[i], chall_extra ? chall_extra : "", i, tokens[i]);
}

static const char *valid_order_extra(void)
{
	return ",\n  \"certificate\": \"" CERT_URL "\"";
}

/*
 * Drive a single-name order from newOrder to the finalize request
 * (sent and left in t->req, not yet answered).
 */
static void run_to_finalize(struct t *t)
{
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	xchg(t, 200, NULL,
	     fmt("{\"type\":\"http-01\",\"url\":\"%s\","
		 "\"status\":\"pending\",\"token\":\"%s\"}",
		 chall_url(0), tokens[0]));
	xchg(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_FINALIZE);
	send(t);
}

/* ---- happy paths ------------------------------------------------------------
 */

static void test_single_name_happy(void **state)
{
	struct t *t = *state;
	json_t *prot, *ids, *root;
	char *y, *b64;
	char *chain = chain_pem("DNS:example.com", 'a');
	const char *cert;
	size_t len;

	start(t, NULL);
	assert_null(acme_order_url(t->o));
	assert_string_equal(acme_order_name(t->o), "example.com");

	/* newOrder: identifiers, signed with kid */
	send(t);
	y = payload_of(t, &prot);
	root = json_loads(y, 0, NULL);
	assert_non_null(root);
	ids = json_object_get(root, "identifiers");
	assert_int_equal(json_array_size(ids), 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(ids, 0), "value")),
	    "example.com");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(ids, 0), "type")),
	    "dns");
	assert_null(json_object_get(root, "profile"));
	assert_null(json_object_get(root, "replaces"));
	json_decref(root);
	json_decref(prot);
	free(y);
	feed(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	assert_string_equal(acme_order_url(t->o), ORDER_URL);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_AUTHZ);

	/* authorization: POST-as-GET, then the key authorization goes up */
	send(t);
	assert_post_as_get(t);
	feed(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_RESPOND);
	assert_int_equal(t->n_publish, 1);

	/* challenge: payload is exactly {} */
	send(t);
	y = payload_of(t, NULL);
	assert_string_equal(y, "{}");
	free(y);
	feed(t, 200, "Link: <" CA "/authZ/az0>;rel=\"up\"",
	     fmt("{\"type\":\"http-01\",\"url\":\"%s\",\"status\":"
		 "\"processing\",\"token\":\"%s\"}",
		 chall_url(0), tokens[0]));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_AUTHZ);

	/* poll: the first poll waits a moment */
	send(t);
	assert_true(t->waited > 0);
	assert_post_as_get(t);
	feed(t, 200, NULL, authz_body(t, 0, "pending", "processing", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	assert_int_equal(t->n_unpublish, 1);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_FINALIZE);

	/* finalize: {"csr": base64url(DER)} */
	send(t);
	y = payload_of(t, NULL);
	b64 = b64url_encode(t->csr, t->csr_len);
	assert_string_equal(y, fmt("{\"csr\":\"%s\"}", b64));
	free(b64);
	free(y);
	feed(t, 200, "Retry-After: 2", order_body(t, "processing", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_ORDER);

	send(t);
	assert_int_equal(t->waited, 2000);
	assert_post_as_get(t);
	feed(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_DOWNLOAD);

	send(t);
	assert_post_as_get(t);
	feed(t, 200, "Content-Type: application/pem-certificate-chain", chain);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_VALID);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	cert = acme_order_cert(t->o, &len);
	assert_non_null(cert);
	assert_int_equal(len, strlen(chain));
	assert_string_equal(cert, chain);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_NONE);

	assert_string_equal(events,
			    "POST " NEW_ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "publish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/chalZ/az0-http\n"
			    "POST " CA "/authZ/az0\n"
			    "POST " CA "/authZ/az0\n"
			    "unpublish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " ORDER_URL "\n"
			    "POST " CERT_URL "\n");
	/* a feed after the end is refused, and changes nothing */
	{
		struct acme_response r = mk_res(200, 1, NULL, "{}");
		assert_int_equal(acme_order_feed(t->o, &r, t->now), -EINVAL);
		assert_int_equal(acme_order_state(t->o), ACME_ORDER_VALID);
	}
	free(chain);
}

static void test_profile_and_replaces_in_new_order(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.profile = "shortlived",
				     .replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ."
						 "AIdlQyE"};
	json_t *root;
	char *y;

	start(t, &oo);
	send(t);
	y = payload_of(t, NULL);
	root = json_loads(y, 0, NULL);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "profile")),
			    "shortlived");
	assert_string_equal(
	    json_string_value(json_object_get(root, "replaces")),
	    "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	json_decref(root);
	free(y);
}

/* Two names, one authorization already valid from an earlier order: it
 * is fetched but neither published nor answered. */
static void test_multi_name_authz_reuse(void **state)
{
	struct t *t = *state;
	char *chain = chain_pem("DNS:example.com,DNS:www.example.com", 'a');
	char *y;

	start(t, NULL);
	send(t);
	y = payload_of(t, NULL);
	assert_non_null(strstr(y, "\"value\":\"example.com\""));
	assert_non_null(strstr(y, "\"value\":\"www.example.com\""));
	free(y);
	feed(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	send(t);
	assert_post_as_get(t);
	feed(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	send(t);
	assert_post_as_get(t);
	feed(t, 200, NULL, authz_body(t, 1, "pending", "pending", NULL));
	send(t);
	y = payload_of(t, NULL);
	assert_string_equal(y, "{}");
	free(y);
	feed(t, 200, NULL,
	     fmt("{\"type\":\"http-01\",\"url\":\"%s\",\"status\":"
		 "\"pending\",\"token\":\"%s\"}",
		 chall_url(1), tokens[1]));
	xchg(t, 200, "Retry-After: 1",
	     authz_body(t, 1, "pending", "processing", NULL));
	xchg(t, 200, NULL, authz_body(t, 1, "valid", "valid", NULL));
	assert_int_equal(t->waited, 1000);
	/* finalize answered "valid" at once (a fast CA) */
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(events,
			    "POST " NEW_ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "POST " CA "/authZ/az1\n"
			    "publish http-01 www.example.com "
			    "Wv4Ix5dAqkXm2fzYpT8sQh0cN3uJ6rBeL9gK1oZaHy7\n"
			    "POST " CA "/chalZ/az1-http\n"
			    "POST " CA "/authZ/az1\n"
			    "POST " CA "/authZ/az1\n"
			    "unpublish http-01 www.example.com "
			    "Wv4Ix5dAqkXm2fzYpT8sQh0cN3uJ6rBeL9gK1oZaHy7\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " CERT_URL "\n");
	free(chain);
}

/* Two pending authorizations: both published before either challenge
 * is answered, both withdrawn as each becomes valid. */
static void test_multi_name_both_pending(void **state)
{
	struct t *t = *state;
	char *chain = chain_pem("DNS:www.example.com,DNS:example.com", 'a');
	const char *chall_ok = "{\"type\":\"http-01\",\"status\":\"pending\"}";

	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 1, "pending", "pending", NULL));
	xchg(t, 200, NULL, chall_ok);
	xchg(t, 200, NULL, chall_ok);
	xchg(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	xchg(t, 200, NULL, authz_body(t, 1, "pending", "processing", NULL));
	xchg(t, 200, NULL, authz_body(t, 1, "valid", "valid", NULL));
	xchg(t, 200, NULL, order_body(t, "processing", NULL));
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(events,
			    "POST " NEW_ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "publish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/authZ/az1\n"
			    "publish http-01 www.example.com "
			    "Wv4Ix5dAqkXm2fzYpT8sQh0cN3uJ6rBeL9gK1oZaHy7\n"
			    "POST " CA "/chalZ/az0-http\n"
			    "POST " CA "/chalZ/az1-http\n"
			    "POST " CA "/authZ/az0\n"
			    "unpublish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/authZ/az1\n"
			    "POST " CA "/authZ/az1\n"
			    "unpublish http-01 www.example.com "
			    "Wv4Ix5dAqkXm2fzYpT8sQh0cN3uJ6rBeL9gK1oZaHy7\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " ORDER_URL "\n"
			    "POST " CERT_URL "\n");
	free(chain);
}

/* A wildcard: the CA names "example.com" with "wildcard": true. */
static void test_wildcard_authz(void **state)
{
	struct t *t = *state;
	static const char *const w[] = {"*.example.com"};
	const char *body;

	t->names[0] = w[0];
	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	/* authz_body names t->names[0]; make it the bare name + wildcard */
	body = fmt("{\"identifier\":{\"type\":\"dns\",\"value\":"
		   "\"example.com\"},\"status\":\"pending\",\"wildcard\":true,"
		   "\"challenges\":[{\"type\":\"dns-01\",\"url\":\"" CA
		   "/chalZ/w\",\"status\":\"pending\",\"token\":\"%s\"}]}",
		   tokens[0]);
	xchg(t, 200, NULL, body);
	/* we asked for http-01, a wildcard only offers dns-01 */
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_non_null(strstr(acme_order_error(t->o)->detail, "http-01"));
	assert_string_equal(acme_order_error(t->o)->identifier,
			    "*.example.com");
}

/* ---- nonces ---------------------------------------------------------------
 */

static void test_empty_pool_inserts_new_nonce(void **state)
{
	struct t *t = *state;
	struct acme_response r;

	start(t, NULL);
	assert_int_equal(acme_client_nonces(t->c), 0);
	send(t);
	assert_int_equal(t->req.method, ACME_HEAD);
	assert_null(t->req.body);
	feed(t, 200, NULL, NULL);
	send(t);
	assert_string_equal(t->req.url, NEW_ORDER_URL);
	/* newOrder answer without a nonce: the pool runs dry again */
	r = mk_res(201, 0, "Location: " ORDER_URL,
		   order_body(t, "pending", NULL));
	assert_int_equal(acme_order_feed(t->o, &r, t->now), 0);
	xchg(t, 204, NULL, NULL); /* Let's Encrypt answers HEAD with 200,
				    Pebble GET with 204: both do */
	send(t);
	assert_post_as_get(t);
	assert_string_equal(events, "HEAD " NONCE_URL "\n"
				    "POST " NEW_ORDER_URL "\n"
				    "HEAD " NONCE_URL "\n"
				    "POST " CA "/authZ/az0\n");
}

static void test_new_nonce_without_nonce_fails(void **state)
{
	struct t *t = *state;
	struct acme_response r;

	start(t, NULL);
	send(t);
	assert_int_equal(t->req.method, ACME_HEAD);
	r = mk_res(200, 0, NULL, NULL);
	assert_int_equal(acme_order_feed(t->o, &r, t->now), 0);
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_non_null(strstr(acme_order_error(t->o)->detail, "Replay-Nonce"));
	assert_string_equal(acme_order_error(t->o)->step, "newOrder");
}

static const char bad_nonce[] =
    "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":"
    "\"JWS has an invalid anti-replay nonce: \\\"abc\\\"\",\"status\":400}";

/* badNonce on any step: the same request again, with a fresh nonce. */
static void test_bad_nonce_repeats_request(void **state)
{
	struct t *t = *state;
	const char *ph = "Content-Type: application/problem+json";
	char first[256];
	json_t *p;
	char *y;

	start(t, NULL);
	send(t);
	y = payload_of(t, &p);
	snprintf(first, sizeof(first), "%s",
		 json_string_value(json_object_get(p, "nonce")));
	json_decref(p);
	free(y);
	feed(t, 400, ph, bad_nonce);
	send(t);
	y = payload_of(t, &p);
	assert_string_not_equal(json_string_value(json_object_get(p, "nonce")),
				first);
	json_decref(p);
	free(y);
	feed(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 400, ph, bad_nonce);
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	xchg(t, 400, ph, bad_nonce);
	send(t);
	y = payload_of(t, NULL);
	assert_string_equal(y, "{}");
	free(y);
	feed(t, 200, NULL, "{\"status\":\"pending\"}");
	xchg(t, 400, ph, bad_nonce);
	xchg(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	xchg(t, 400, ph, bad_nonce);
	xchg(t, 200, NULL, order_body(t, "processing", NULL));
	xchg(t, 400, ph, bad_nonce);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_ORDER);
	send(t);
	assert_string_equal(t->req.url, ORDER_URL);
	assert_string_equal(events,
			    "POST " NEW_ORDER_URL "\n"
			    "POST " NEW_ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "POST " CA "/authZ/az0\n"
			    "publish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/chalZ/az0-http\n"
			    "POST " CA "/chalZ/az0-http\n"
			    "POST " CA "/authZ/az0\n"
			    "POST " CA "/authZ/az0\n"
			    "unpublish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " ORDER_URL "\n"
			    "POST " ORDER_URL "\n");
}

static void test_bad_nonce_bounded(void **state)
{
	struct t *t = *state;
	char buf[512];
	int posts = 0;

	start(t, NULL);
	while (step_now(t) == ACME_STEP_SEND) {
		assert_string_equal(t->req.url, NEW_ORDER_URL);
		posts++;
		feed(t, 400, NULL, bad_nonce);
		assert_true(posts <= ACME_MAX_BADNONCE_RETRIES + 1);
	}
	assert_int_equal(posts, ACME_MAX_BADNONCE_RETRIES + 1);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_FAILED);
	assert_string_equal(acme_order_error(t->o)->type, "badNonce");
	assert_string_equal(acme_order_error(t->o)->step, "newOrder");
	assert_int_equal(acme_order_error(t->o)->status, 400);
	acme_error_str(acme_order_error(t->o), buf, sizeof(buf));
	assert_non_null(strstr(buf, "badNonce: JWS has an invalid"));
}

/* A badNonce during polling after successes still gets the full budget:
 * the counter resets on every good answer. */
static void test_bad_nonce_budget_resets(void **state)
{
	struct t *t = *state;

	start(t, NULL);
	for (int i = 0; i < ACME_MAX_BADNONCE_RETRIES; i++)
		xchg(t, 400, NULL, bad_nonce);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	for (int i = 0; i < ACME_MAX_BADNONCE_RETRIES; i++)
		xchg(t, 400, NULL, bad_nonce);
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_RESPOND);
}

/* ---- polling, Retry-After, backoff, deadline ----------------------------- */

/* Order up to the point where the authorization is being polled. */
static void run_to_poll_authz(struct t *t)
{
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	xchg(t, 200, NULL, "{\"status\":\"processing\"}");
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_AUTHZ);
}

static void test_retry_after_delta_on_authz(void **state)
{
	struct t *t = *state;
	int64_t w = 0;
	struct acme_request req;

	start(t, NULL);
	run_to_poll_authz(t);
	xchg(t, 200, "Retry-After: 5",
	     authz_body(t, 0, "pending", "processing", NULL));
	/* exactly 5 s later, not before */
	assert_int_equal(acme_order_next(t->o, t->now + 4999, &req, &w),
			 ACME_STEP_WAIT);
	assert_null(req.url);
	assert_int_equal(w, t->now + 5000);
	send(t);
	assert_int_equal(t->waited, 5000);
	assert_string_equal(t->req.url, CA "/authZ/az0");
}

static void test_retry_after_http_date_on_order(void **state)
{
	struct t *t = *state;
	char date[64];
	time_t when;
	struct tm tm;

	start(t, NULL);
	run_to_finalize(t);
	/* Retry-After as an IMF-fixdate 7 s from now */
	when = (time_t)(t->now / 1000) + 7;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	feed(t, 200, fmt("Retry-After: %s", date),
	     order_body(t, "processing", NULL));
	send(t);
	assert_int_equal(t->waited, 7000);
	assert_string_equal(t->req.url, ORDER_URL);
	/* and in delta-seconds form on the order too */
	feed(t, 200, "Retry-After: 3", order_body(t, "processing", NULL));
	send(t);
	assert_int_equal(t->waited, 3000);
}

/* Without Retry-After the poll interval grows, and stops at a cap. */
static void test_backoff_grows_and_caps(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.poll_deadline_ms = 3600 * 1000};
	int64_t prev = 0, max = 0;

	start(t, &oo);
	run_to_poll_authz(t);
	for (int i = 0; i < 20; i++) {
		xchg(t, 200, NULL,
		     authz_body(t, 0, "pending", "processing", NULL));
		assert_true(t->waited > 0);
		assert_true(t->waited >= prev);
		if (i > 0 && prev < 10000)
			assert_true(t->waited > prev); /* it really grows */
		prev = t->waited;
		if (t->waited > max)
			max = t->waited;
	}
	assert_true(max <= 10000);
	assert_int_equal(prev, 10000);
	/* a silly Retry-After is clamped to a minute */
	xchg(t, 200, "Retry-After: 86400",
	     authz_body(t, 0, "pending", "processing", NULL));
	send(t);
	assert_int_equal(t->waited, 60000);
}

static void test_poll_authz_deadline(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.poll_deadline_ms = 30000};
	char buf[512];
	int polls = 0;

	start(t, &oo);
	run_to_poll_authz(t);
	while (acme_order_state(t->o) == ACME_ORDER_POLL_AUTHZ) {
		xchg(t, 200, NULL,
		     authz_body(t, 0, "pending", "processing", NULL));
		assert_true(++polls < 100);
	}
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	/* 30 s of backoff from 300 ms growing by half: about 10 polls */
	assert_true(polls >= 5 && polls <= 15);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_TIMEOUT);
	assert_string_equal(acme_order_error(t->o)->step, "validation");
	assert_string_equal(acme_order_error(t->o)->identifier, "example.com");
	assert_int_equal(t->n_unpublish, 1);
	acme_error_str(acme_order_error(t->o), buf, sizeof(buf));
	assert_non_null(strstr(buf, "timeout: "));
}

static void test_poll_order_deadline(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.poll_deadline_ms = 20000};
	int polls = 0;

	start(t, &oo);
	run_to_finalize(t);
	feed(t, 200, NULL, order_body(t, "processing", NULL));
	while (acme_order_state(t->o) == ACME_ORDER_POLL_ORDER) {
		xchg(t, 200, "Retry-After: 4",
		     order_body(t, "processing", NULL));
		assert_true(++polls < 100);
	}
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_TIMEOUT);
	assert_string_equal(acme_order_error(t->o)->step, "issuance");
	assert_true(polls >= 4 && polls <= 6);
}

/* ---- failures of validation and issuance --------------------------------- */

static void test_invalid_authz_challenge_error(void **state)
{
	struct t *t = *state;
	const struct acme_error *e;
	char buf[512];

	start(t, NULL);
	run_to_poll_authz(t);
	xchg(t, 200, NULL,
	     authz_body(t, 0, "invalid", "invalid",
			",\"validated\":\"2025-01-01T00:00:03Z\",\"error\":{"
			"\"type\":\"urn:ietf:params:acme:error:connection\","
			"\"detail\":\"93.184.215.14: Fetching http://"
			"example.com/.well-known/acme-challenge/LoqX: "
			"Connection refused\",\"status\":400}"));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	e = acme_order_error(t->o);
	assert_int_equal(e->code, ACME_E_INVALID);
	assert_string_equal(e->type, "connection");
	assert_non_null(strstr(e->detail, "Connection refused"));
	assert_string_equal(e->identifier, "example.com");
	assert_string_equal(e->step, "validation");
	assert_int_equal(e->status, 400);
	assert_int_equal(e->retry_after_ms, -1);
	assert_int_equal(t->n_publish, 1);
	assert_int_equal(t->n_unpublish, 1);
	assert_non_null(strstr(events, "unpublish http-01 example.com"));
	acme_error_str(e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "connection: 93.184.215.14"));
	assert_non_null(strstr(buf, "domain example.com"));
	assert_non_null(strstr(buf, "step validation"));
}

/* An invalid authorization with no challenge error still says which. */
static void test_invalid_authz_without_error(void **state)
{
	struct t *t = *state;

	start(t, NULL);
	run_to_poll_authz(t);
	xchg(t, 200, NULL, authz_body(t, 0, "deactivated", "pending", NULL));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_INVALID);
	assert_non_null(strstr(acme_order_error(t->o)->detail, "deactivated"));
	assert_int_equal(t->n_unpublish, 1);
}

/* Two pending authorizations, the second fails: both are withdrawn. */
static void test_second_authz_invalid_unpublishes_all(void **state)
{
	struct t *t = *state;

	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 1, "pending", "pending", NULL));
	xchg(t, 200, NULL, "{}");
	xchg(t, 200, NULL, "{}");
	xchg(t, 200, NULL,
	     authz_body(t, 0, "invalid", "invalid",
			",\"error\":{\"type\":\"urn:ietf:params:acme:error:"
			"unauthorized\",\"detail\":\"Invalid response from "
			"http://example.com/.well-known/acme-challenge/x: "
			"404\",\"status\":403}"));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_string_equal(acme_order_error(t->o)->type, "unauthorized");
	assert_int_equal(t->n_publish, 2);
	assert_int_equal(t->n_unpublish, 2);
}

static void test_publish_failure(void **state)
{
	struct t *t = *state;

	t->publish_rc = -EACCES;
	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_INTERNAL);
	assert_string_equal(acme_order_error(t->o)->step, "challenge");
	assert_int_equal(t->n_unpublish, 0); /* nothing was published */
	assert_null(strstr(events, "chalZ"));
}

/* ---- a publish that completes later (DNS-01) --------------------------------
 */

/* A wildcard's authorization as the CA sends it: the base name with
 * "wildcard": true, only dns-01 offered. */
static const char *wildcard_authz(const char *status, const char *chall_status)
{
	return fmt("{\"identifier\":{\"type\":\"dns\",\"value\":"
		   "\"example.com\"},\"status\":\"%s\",\"wildcard\":true,"
		   "\"challenges\":[{\"type\":\"dns-01\",\"url\":\"" CA
		   "/chalZ/w\",\"status\":\"%s\",\"token\":\"%s\"}]}",
		   status, chall_status, tokens[0]);
}

/* Up to the authorization of a wildcard DNS-01 order whose publish is
 * pending: nothing may be sent until the driver says it is out. */
static void run_to_pending_publish(struct t *t)
{
	static const char *const w[] = {"*.example.com"};
	struct acme_request req;
	int64_t wake = -1;

	t->names[0] = w[0];
	t->chall = ACME_CHALL_DNS01;
	t->publish_rc = ACME_PUBLISH_PENDING;
	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, wildcard_authz("pending", "pending"));
	assert_int_equal(t->n_publish, 1);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_PUBLISH);
	/* waiting, at most until the poll deadline (10 min by default) */
	assert_int_equal(acme_order_next(t->o, t->now, &req, &wake),
			 ACME_STEP_WAIT);
	assert_null(req.url);
	assert_int_equal(wake, t->now + 10 * 60 * 1000);
}

static void test_dns01_pending_publish_then_ready(void **state)
{
	struct t *t = *state;
	char *chain = chain_pem("DNS:*.example.com", 'a');

	run_to_pending_publish(t);
	t->now += 30000; /* the DNS took 30 s to reach every server */
	assert_int_equal(acme_order_chall_ready(t->o, "nosuchtoken", 0, NULL,
						t->now),
			 -ENOENT);
	assert_int_equal(acme_order_chall_ready(t->o, tokens[0], 0, NULL,
						t->now),
			 0);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_RESPOND);
	/* reported once: a second report finds nothing pending */
	assert_int_equal(acme_order_chall_ready(t->o, tokens[0], 0, NULL,
						t->now),
			 -ENOENT);
	send(t);
	assert_int_equal(t->waited, 0); /* answered at once */
	assert_string_equal(t->req.url, CA "/chalZ/w");
	feed(t, 200, NULL,
	     fmt("{\"type\":\"dns-01\",\"url\":\"" CA "/chalZ/w\","
		 "\"status\":\"processing\",\"token\":\"%s\"}",
		 tokens[0]));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_AUTHZ);
	xchg(t, 200, NULL, wildcard_authz("valid", "valid"));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_FINALIZE);
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(events,
			    "POST " NEW_ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "publish dns-01 *.example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/chalZ/w\n"
			    "POST " CA "/authZ/az0\n"
			    "unpublish dns-01 *.example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " FINALIZE_URL "\n"
			    "POST " CERT_URL "\n");
	/* the order is over: nothing left to report */
	assert_int_equal(acme_order_chall_ready(t->o, tokens[0], 0, NULL,
						t->now),
			 -EINVAL);
	free(chain);
}

static void test_dns01_publish_fails_later(void **state)
{
	struct t *t = *state;
	const struct acme_error *e;

	run_to_pending_publish(t);
	assert_int_equal(acme_order_chall_ready(t->o, tokens[0], -EIO,
						"the DNS server refused the "
						"update: NOTAUTH",
						t->now),
			 0);
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	e = acme_order_error(t->o);
	assert_int_equal(e->code, ACME_E_INTERNAL);
	assert_string_equal(e->step, "challenge");
	assert_string_equal(e->identifier, "*.example.com");
	assert_non_null(strstr(e->detail, "NOTAUTH"));
	/* a pending publish is withdrawn too (the driver cancels it), and
	 * the CA was never told to validate */
	assert_int_equal(t->n_unpublish, 1);
	assert_null(strstr(events, "chalZ"));
}

static void test_dns01_publish_deadline(void **state)
{
	struct t *t = *state;
	struct acme_request req;
	int64_t wake = -1;

	run_to_pending_publish(t);
	t->now += 10 * 60 * 1000 - 1;
	assert_int_equal(acme_order_next(t->o, t->now, &req, &wake),
			 ACME_STEP_WAIT);
	t->now += 1;
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_TIMEOUT);
	assert_string_equal(acme_order_error(t->o)->step, "challenge");
	assert_int_equal(t->n_unpublish, 1);
	assert_null(strstr(events, "chalZ"));
}

static void test_order_invalid_after_finalize(void **state)
{
	struct t *t = *state;
	const struct acme_error *e;

	start(t, NULL);
	run_to_finalize(t);
	feed(t, 200, NULL,
	     order_body(t, "invalid",
			",\"error\":{\"type\":\"urn:ietf:params:acme:error:"
			"badCSR\",\"detail\":\"CSR contains a public key of a "
			"known weak type\",\"status\":400}"));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	e = acme_order_error(t->o);
	assert_int_equal(e->code, ACME_E_INVALID);
	assert_string_equal(e->type, "badCSR");
	assert_string_equal(e->step, "finalize");
	assert_string_equal(e->identifier, "example.com");
	assert_non_null(strstr(e->detail, "weak"));
}

static void test_order_invalid_without_error_object(void **state)
{
	struct t *t = *state;

	start(t, NULL);
	run_to_finalize(t);
	feed(t, 200, NULL, order_body(t, "processing", NULL));
	xchg(t, 200, NULL, order_body(t, "invalid", NULL));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_INVALID);
	assert_null(acme_order_error(t->o)->type);
	assert_string_equal(acme_order_error(t->o)->step, "issuance");
	assert_non_null(strstr(acme_order_error(t->o)->detail, "invalid"));
}

static void test_order_ready_at_once(void **state)
{
	struct t *t = *state;
	char *chain = chain_pem("DNS:example.com", 'a');

	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "ready", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_FINALIZE);
	xchg(t, 200, NULL, order_body(t, "processing", NULL));
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_int_equal(t->n_publish, 0);
	assert_string_equal(events, "POST " NEW_ORDER_URL "\n"
				    "POST " FINALIZE_URL "\n"
				    "POST " ORDER_URL "\n"
				    "POST " CERT_URL "\n");
	free(chain);
}

/* An order whose URL a previous run persisted: POST-as-GET it, then
 * carry on from whatever status it has now. */
static void test_resumed_order(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.order_url = ORDER_URL};
	char *chain = chain_pem("DNS:example.com", 'a');

	/* pending, with the challenge already answered last time */
	start(t, &oo);
	assert_string_equal(acme_order_url(t->o), ORDER_URL);
	send(t);
	assert_post_as_get(t);
	feed(t, 200, NULL, order_body(t, "pending", NULL));
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "processing", NULL));
	/* straight to polling: no second challenge POST */
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_AUTHZ);
	xchg(t, 200, NULL, authz_body(t, 0, "valid", "valid", NULL));
	assert_string_equal(events,
			    "POST " ORDER_URL "\n"
			    "POST " CA "/authZ/az0\n"
			    "publish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n"
			    "POST " CA "/authZ/az0\n"
			    "unpublish http-01 example.com "
			    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\n");
	acme_order_free(t->o);

	/* valid: just download */
	events[0] = '\0';
	start(t, &oo);
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(events, "POST " ORDER_URL "\n"
				    "POST " CERT_URL "\n");
	acme_order_free(t->o);

	/* processing: poll the order */
	start(t, &oo);
	xchg(t, 200, "Retry-After: 1", order_body(t, "processing", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_POLL_ORDER);
	send(t);
	assert_int_equal(t->waited, 1000);
	assert_string_equal(t->req.url, ORDER_URL);
	acme_order_free(t->o);

	/* ready: finalize */
	topup(t);
	start(t, &oo);
	xchg(t, 200, NULL, order_body(t, "ready", NULL));
	send(t);
	assert_string_equal(t->req.url, FINALIZE_URL);
	acme_order_free(t->o);

	/* gone: 404 from the CA is a failure at step newOrder */
	topup(t);
	start(t, &oo);
	xchg(t, 404, NULL,
	     "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":"
	     "\"No order for ID 12\",\"status\":404}");
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_string_equal(acme_order_error(t->o)->type, "malformed");
	free(chain);
}

/* ---- problem documents on newOrder ----------------------------------------
 */

static const struct {
	const char *type;
	int status;
} problems[] = {
    /* RFC 8555 §6.7 table, with the HTTP status CAs send them with;
     * badNonce and serverInternal are retried and tested apart. */
    {"accountDoesNotExist", 400},
    {"alreadyRevoked", 400},
    {"badCSR", 400},
    {"badPublicKey", 400},
    {"badRevocationReason", 400},
    {"badSignatureAlgorithm", 400},
    {"caa", 403},
    {"compound", 400},
    {"connection", 400},
    {"dns", 400},
    {"externalAccountRequired", 403},
    {"incorrectResponse", 403},
    {"invalidContact", 400},
    {"malformed", 400},
    {"orderNotReady", 403},
    {"rateLimited", 429},
    {"rejectedIdentifier", 400},
    {"tls", 400},
    {"unauthorized", 403},
    {"unsupportedContact", 400},
    {"unsupportedIdentifier", 400},
    {"userActionRequired", 403},
};

static void test_new_order_problem_types(void **state)
{
	struct t *t = *state;

	for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++) {
		const struct acme_error *e;
		char buf[512], want[128];

		events[0] = '\0';
		t->n_unpublish = 0;
		start(t, NULL);
		xchg(t, problems[i].status,
		     "Content-Type: application/problem+json",
		     fmt("{\"type\":\"urn:ietf:params:acme:error:%s\","
			 "\"detail\":\"detail for %s\",\"status\":%d}",
			 problems[i].type, problems[i].type,
			 problems[i].status));
		assert_int_equal(step_now(t), ACME_STEP_FAILED);
		e = acme_order_error(t->o);
		assert_int_equal(e->code, ACME_E_PROBLEM);
		assert_string_equal(e->type, problems[i].type);
		assert_string_equal(e->step, "newOrder");
		assert_int_equal(e->status, problems[i].status);
		assert_string_equal(e->identifier, "example.com");
		assert_int_equal(e->retry_after_ms, -1);
		acme_error_str(e, buf, sizeof(buf));
		snprintf(want, sizeof(want),
			 "%s: detail for %s (domain "
			 "example.com, step newOrder, HTTP %d",
			 problems[i].type, problems[i].type,
			 problems[i].status);
		assert_non_null(strstr(buf, want));
		assert_null(strchr(buf, '\n'));
		/* one request, no retry of a permanent refusal */
		assert_string_equal(events, "POST " NEW_ORDER_URL "\n");
		acme_order_free(t->o);
		t->o = NULL;
	}
}

static void test_rate_limited_retry_after(void **state)
{
	struct t *t = *state;
	char buf[512], date[64];
	time_t when;
	struct tm tm;

	start(t, NULL);
	xchg(t, 429,
	     "Content-Type: application/problem+json\r\nRetry-After: 3600\r\n"
	     "Link: <https://letsencrypt.org/docs/rate-limits/>;rel=\"help\"",
	     "{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":"
	     "\"too many certificates (5) already issued for this exact set "
	     "of identifiers in the last 168h0m0s, retry after 2025-01-01 "
	     "01:00:00 UTC\",\"status\":429}");
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_string_equal(acme_order_error(t->o)->type, "rateLimited");
	assert_int_equal(acme_order_error(t->o)->retry_after_ms, 3600000);
	acme_error_str(acme_order_error(t->o), buf, sizeof(buf));
	assert_non_null(strstr(buf, "retry after 3600"));
	acme_order_free(t->o);

	/* the HTTP-date form */
	start(t, NULL);
	when = (time_t)(t->now / 1000) + 90;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	xchg(t, 429, fmt("Retry-After: %s", date),
	     "{\"type\":\"urn:ietf:params:acme:error:rateLimited\","
	     "\"detail\":\"slow down\"}");
	assert_int_equal(acme_order_error(t->o)->retry_after_ms, 90000);
	assert_int_equal(acme_order_error(t->o)->status, 429);
}

static void test_compound_problem_subproblems(void **state)
{
	struct t *t = *state;
	const struct acme_error *e;
	char buf[1024];

	start(t, NULL);
	xchg(t, 400, NULL,
	     "{\"type\":\"urn:ietf:params:acme:error:compound\",\"detail\":"
	     "\"Error creating new order :: Cannot issue for 2 identifiers\","
	     "\"status\":400,\"subproblems\":["
	     "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
	     "\"detail\":\"Domain name is an IP\",\"identifier\":{\"type\":"
	     "\"dns\",\"value\":\"example.com\"}},"
	     "{\"type\":\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA "
	     "forbids\",\"identifier\":{\"type\":\"dns\",\"value\":"
	     "\"www.example.com\"}}]}");
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	e = acme_order_error(t->o);
	assert_string_equal(e->type, "compound");
	assert_int_equal(e->n_sub, 2);
	assert_string_equal(e->sub[1].type, "caa");
	assert_string_equal(e->sub[1].identifier, "www.example.com");
	acme_error_str(e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "www.example.com caa: CAA forbids"));
}

/* serverInternal (and 5xx, and no response) is transient: three
 * retries with growing waits, then the failure stands. */
static void test_server_internal_retried_then_fails(void **state)
{
	struct t *t = *state;
	static const char si[] =
	    "{\"type\":\"urn:ietf:params:acme:error:serverInternal\","
	    "\"detail\":\"Error creating new order\",\"status\":500}";
	int64_t waits[4];

	start(t, NULL);
	for (int i = 0; i < 4; i++) {
		xchg(t, 500, NULL, si);
		waits[i] = t->waited;
	}
	assert_int_equal(waits[0], 0);
	assert_true(waits[1] > 0 && waits[2] > waits[1] && waits[3] > waits[2]);
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_string_equal(acme_order_error(t->o)->type, "serverInternal");
	assert_string_equal(acme_order_error(t->o)->step, "newOrder");
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROBLEM);
	acme_order_free(t->o);

	/* 503 without a body, then success: the same request again */
	events[0] = '\0';
	start(t, NULL);
	xchg(t, 503, "Retry-After: 1", "<html>Service Unavailable</html>");
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	assert_true(t->waited > 0);
	assert_string_equal(events, "POST " NEW_ORDER_URL "\n"
				    "POST " NEW_ORDER_URL "\n");
	/* a transport failure on the authorization fetch, then success */
	send(t);
	{
		struct acme_response r = {
		    .status = 0, .transport_error = "Connection reset by peer"};
		assert_int_equal(acme_order_feed(t->o, &r, t->now), 0);
	}
	/* the nonce went with the lost request: get one, then retry */
	send(t);
	assert_int_equal(t->req.method, ACME_HEAD);
	assert_true(t->waited > 0);
	feed(t, 200, NULL, NULL);
	xchg(t, 200, NULL, authz_body(t, 0, "pending", "pending", NULL));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_RESPOND);
	acme_order_free(t->o);

	/* four transport failures: ACME_E_TRANSPORT */
	start(t, NULL);
	for (int i = 0; i < 4; i++) {
		struct acme_response r = {.status = 0,
					  .transport_error = "timed out"};
		send(t);
		assert_int_equal(acme_order_feed(t->o, &r, t->now), 0);
	}
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_TRANSPORT);
	assert_non_null(strstr(acme_order_error(t->o)->detail, "timed out"));
}

/* ---- download --------------------------------------------------------------
 */

static void run_to_download(struct t *t, const struct acme_order_opts *oo)
{
	start(t, oo);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "ready", NULL));
	xchg(t, 200, NULL, order_body(t, "valid", valid_order_extra()));
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_DOWNLOAD);
}

static void test_download_garbage(void **state)
{
	struct t *t = *state;

	run_to_download(t, NULL);
	xchg(t, 200, NULL,
	     "-----BEGIN CERTIFICATE-----\nnot base64!\n"
	     "-----END CERTIFICATE-----\n");
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_string_equal(acme_order_error(t->o)->step, "download");
	assert_null(acme_order_cert(t->o, NULL));
	acme_order_free(t->o);

	run_to_download(t, NULL);
	xchg(t, 200, NULL, NULL); /* empty body */
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
}

static void test_download_wrong_names(void **state)
{
	struct t *t = *state;
	char *chain = chain_pem("DNS:example.com", 'a'); /* lacks www */

	run_to_download(t, NULL);
	xchg(t, 200, NULL, chain);
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_non_null(
	    strstr(acme_order_error(t->o)->detail, "cover the ordered names"));
	free(chain);
}

static void test_download_preferred_alternate(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.preferred_issuer =
					 "Certherd Test Root B"};
	char *def = chain_pem("DNS:example.com", 'a');
	char *alt = chain_pem("DNS:example.com", 'b');
	const char *got;

	run_to_download(t, &oo);
	xchg(t, 200,
	     "Content-Type: application/pem-certificate-chain\r\n"
	     "Link: <" CA "/dir>;rel=\"index\"\r\n"
	     "Link: <" ALT1_URL ">;rel=\"alternate\"",
	     def);
	assert_int_equal(acme_order_state(t->o), ACME_ORDER_ALTERNATE);
	send(t);
	assert_post_as_get(t);
	feed(t, 200, NULL, alt);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	got = acme_order_cert(t->o, NULL);
	assert_string_equal(got, alt);
	assert_string_equal(events, "POST " NEW_ORDER_URL "\n"
				    "POST " FINALIZE_URL "\n"
				    "POST " CERT_URL "\n"
				    "POST " ALT1_URL "\n");
	acme_order_free(t->o);

	/* two alternates in one Link header; the second matches and the
	 * first is garbage */
	events[0] = '\0';
	run_to_download(t, &oo);
	xchg(t, 200,
	     "Link: <" ALT1_URL ">;rel=\"alternate\", <" ALT2_URL
	     ">;rel=\"alternate\"",
	     def);
	xchg(t, 200, NULL, "junk");
	xchg(t, 200, NULL, alt);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(acme_order_cert(t->o, NULL), alt);
	assert_non_null(strstr(events, "POST " ALT2_URL "\n"));
	free(def);
	free(alt);
}

static void test_download_preferred_is_default(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.preferred_issuer =
					 "Certherd Test Root A"};
	char *def = chain_pem("DNS:example.com", 'a');

	run_to_download(t, &oo);
	xchg(t, 200, "Link: <" ALT1_URL ">;rel=\"alternate\"", def);
	/* the default already ends in the preferred issuer: no fetch */
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(acme_order_cert(t->o, NULL), def);
	assert_null(strstr(events, ALT1_URL));
	free(def);
}

static void test_download_no_alternate_matches(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.preferred_issuer = "ISRG Root X2"};
	char *def = chain_pem("DNS:example.com", 'a');
	char *alt = chain_pem("DNS:example.com", 'b');

	run_to_download(t, &oo);
	xchg(t, 200,
	     "Link: <" ALT1_URL ">;rel=\"alternate\"\r\n"
	     "Link: <" ALT2_URL ">;rel=\"alternate\"",
	     def);
	xchg(t, 200, NULL, alt);
	xchg(t, 200, NULL, alt);
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(acme_order_cert(t->o, NULL), def);
	free(def);
	free(alt);
}

/*
 * An alternate chain that cannot be fetched (404) must not throw away
 * the default chain we already hold and checked: the header comment
 * promises "ALTERNATE -> VALID (preferred chain, or the default when
 * none match)", and a garbage alternate is already skipped that way.
 */
static void test_download_alternate_404_keeps_default(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.preferred_issuer =
					 "Certherd Test Root B"};
	char *def = t->own = chain_pem("DNS:example.com", 'a');

	run_to_download(t, &oo);
	xchg(t, 200, "Link: <" ALT1_URL ">;rel=\"alternate\"", def);
	xchg(t, 404, NULL,
	     "{\"type\":\"urn:ietf:params:acme:error:malformed\","
	     "\"detail\":\"Certificate not found\",\"status\":404}");
	assert_int_equal(step_now(t), ACME_STEP_DONE);
	assert_string_equal(acme_order_cert(t->o, NULL), def);
}

/* ---- hostile or broken CA answers -------------------------------------- */

static void test_authz_for_unordered_name(void **state)
{
	struct t *t = *state;
	const char *body;

	start(t, NULL);
	xchg(t, 201, "Location: " ORDER_URL, order_body(t, "pending", NULL));
	t->names[0] = "evil.example.net";
	body = authz_body(t, 0, "pending", "pending", NULL);
	t->names[0] = "example.com";
	xchg(t, 200, NULL, body);
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_non_null(
	    strstr(acme_order_error(t->o)->detail, "evil.example.net"));
	assert_string_equal(acme_order_error(t->o)->step, "authorization");
	assert_int_equal(t->n_publish, 0);
}

/* One bad answer at a given point; the order must fail with a detail. */
struct bad_case {
	const char *what;
	int at; /* 0 newOrder, 1 authz, 2 finalize, 3 poll order */
	long status;
	const char *hdr;
	const char *body;
	const char *detail_has;
};

static void run_bad_case(struct t *t, const struct bad_case *bc)
{
	const struct acme_error *e;

	events[0] = '\0';
	t->n_publish = t->n_unpublish = 0;
	start(t, NULL);
	if (bc->at >= 1 && bc->at < 2)
		xchg(t, 201, "Location: " ORDER_URL,
		     order_body(t, "pending", NULL));
	if (bc->at >= 2) {
		xchg(t, 201, "Location: " ORDER_URL,
		     order_body(t, "ready", NULL));
	}
	if (bc->at >= 3)
		xchg(t, 200, NULL, order_body(t, "processing", NULL));
	xchg(t, bc->status, bc->hdr, bc->body);
	if (step_now(t) != ACME_STEP_FAILED)
		fail_msg("%s: order did not fail (state %s)", bc->what,
			 acme_order_state_names[acme_order_state(t->o)]);
	e = acme_order_error(t->o);
	assert_true(e->code == ACME_E_PROTOCOL);
	assert_non_null(e->detail);
	assert_non_null(e->step);
	if (bc->detail_has && !strstr(e->detail, bc->detail_has))
		fail_msg("%s: detail \"%s\" lacks \"%s\"", bc->what, e->detail,
			 bc->detail_has);
	assert_int_equal(t->n_publish, t->n_unpublish);
	acme_order_free(t->o);
	t->o = NULL;
}

static void test_malformed_answers(void **state)
{
	struct t *t = *state;
	const char *loc = "Location: " ORDER_URL;
	char *big = xmalloc(ACME_MAX_BODY + 2);
	/* copies: fmt's buffers are reused while the cases run */
	char *back_pending = strdup(order_body(t, "pending", NULL));
	char *back_ready = strdup(order_body(t, "ready", NULL));
	char *long_id = strdup(
	    fmt("{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
		"\"value\":\"%0300d\"}}",
		0));
	const struct bad_case cases[] = {
	    {"no Location", 0, 201, NULL, "{\"status\":\"pending\"}",
	     "order URL"},
	    {"order without status", 0, 201, loc,
	     "{\"finalize\":\"" FINALIZE_URL "\",\"authorizations\":[]}",
	     "status"},
	    {"status not a string", 0, 201, loc,
	     "{\"status\":5,\"finalize\":\"" FINALIZE_URL "\"}", "status"},
	    {"no finalize", 0, 201, loc,
	     "{\"status\":\"pending\",\"authorizations\":[\"" CA "/a\"]}",
	     "finalize"},
	    {"finalize not http", 0, 201, loc,
	     "{\"status\":\"ready\",\"finalize\":\"file:///etc/passwd\"}",
	     "finalize"},
	    {"pending without authorizations", 0, 201, loc,
	     "{\"status\":\"pending\",\"finalize\":\"" FINALIZE_URL "\"}",
	     "authorizations"},
	    {"authorizations not an array", 0, 201, loc,
	     "{\"status\":\"pending\",\"finalize\":\"" FINALIZE_URL
	     "\",\"authorizations\":\"" CA "/a\"}",
	     "authorizations"},
	    {"empty authorizations", 0, 201, loc,
	     "{\"status\":\"pending\",\"finalize\":\"" FINALIZE_URL
	     "\",\"authorizations\":[]}",
	     "authorizations"},
	    {"authorization URL not a string", 0, 201, loc,
	     "{\"status\":\"pending\",\"finalize\":\"" FINALIZE_URL
	     "\",\"authorizations\":[{\"url\":\"" CA "/a\"}]}",
	     "authorization URL"},
	    {"authorization URL with a space", 0, 201, loc,
	     "{\"status\":\"pending\",\"finalize\":\"" FINALIZE_URL
	     "\",\"authorizations\":[\"" CA "/a b\"]}",
	     "authorization URL"},
	    {"valid without certificate", 0, 201, loc,
	     "{\"status\":\"valid\",\"finalize\":\"" FINALIZE_URL "\"}",
	     "certificate"},
	    {"body not JSON", 0, 201, loc, "<html>hello</html>", "JSON"},
	    {"body an array", 0, 201, loc, "[1,2]", "JSON"},
	    {"empty body", 0, 201, loc, NULL, "empty"},
	    {"duplicate keys", 0, 201, loc,
	     "{\"status\":\"ready\",\"status\":\"valid\"}", "JSON"},
	    {"oversized body", 0, 201, loc, big, "too large"},
	    {"unexpected 302", 0, 302, "Location: " CA "/elsewhere", "moved",
	     "302"},
	    {"authz without identifier", 1, 200, NULL,
	     "{\"status\":\"pending\",\"challenges\":[]}", "identifier"},
	    {"authz identifier wrong type", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":\"example.com\"}",
	     "identifier"},
	    {"authz status wrong type", 1, 200, NULL,
	     "{\"status\":true,\"identifier\":{\"type\":\"dns\",\"value\":"
	     "\"example.com\"}}",
	     "status"},
	    {"authz challenges not an array", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	     "\"value\":\"example.com\"},\"challenges\":{}}",
	     "http-01"},
	    {"challenge without url", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	     "\"value\":\"example.com\"},\"challenges\":[{\"type\":"
	     "\"http-01\",\"token\":\"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxA\"}"
	     "]}",
	     "bad url or token"},
	    {"token too short", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	     "\"value\":\"example.com\"},\"challenges\":[{\"type\":"
	     "\"http-01\",\"url\":\"" CA "/c\",\"token\":\"abc\"}]}",
	     "bad url or token"},
	    {"token with a slash", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	     "\"value\":\"example.com\"},\"challenges\":[{\"type\":"
	     "\"http-01\",\"url\":\"" CA "/c\",\"token\":\"../../../etc/"
	     "passwd/aaaaaaaaaaaaaaaaaaaaaa\"}]}",
	     "bad url or token"},
	    {"token a number", 1, 200, NULL,
	     "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	     "\"value\":\"example.com\"},\"challenges\":[{\"type\":"
	     "\"http-01\",\"url\":\"" CA "/c\",\"token\":12345}]}",
	     "bad url or token"},
	    {"overlong identifier", 1, 200, NULL, long_id, "identifier"},
	    {"finalize answer not JSON", 2, 200, NULL, "ok", "JSON"},
	    {"order goes back to pending", 3, 200, NULL, back_pending,
	     "earlier state"},
	    {"order goes back to ready", 3, 200, NULL, back_ready,
	     "earlier state"},
	};

	memset(big, ' ', ACME_MAX_BODY + 1);
	big[0] = '{';
	big[ACME_MAX_BODY] = '}';
	big[ACME_MAX_BODY + 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_bad_case(t, &cases[i]);
	free(big);
	free(back_pending);
	free(back_ready);
	free(long_id);
}

/*
 * The order URL comes from the Location header and is POSTed to (and
 * persisted for resumption) like every other URL from the CA, which is
 * checked with acme__json_url; the client refuses a non-http(s) account
 * URL the same way. An order URL that is not http(s) must fail too.
 */
static void test_order_location_must_be_url(void **state)
{
	struct t *t = *state;

	start(t, NULL);
	xchg(t, 201, "Location: urn:ietf:order:1",
	     order_body(t, "ready", NULL));
	assert_int_equal(step_now(t), ACME_STEP_FAILED);
	assert_int_equal(acme_order_error(t->o)->code, ACME_E_PROTOCOL);
	assert_string_equal(acme_order_error(t->o)->step, "newOrder");
}

static void test_client_not_ready(void **state)
{
	struct t *t = *state;
	struct acme_client_opts co = {.directory_url = DIR_URL};
	struct acme_client *fresh = acme_client_new(t->key, &co);
	struct acme_order_opts oo = {.names = t->names,
				     .n_names = 1,
				     .csr_der = t->csr,
				     .csr_len = t->csr_len};
	struct acme_order *o;
	struct acme_request req;
	int64_t w;

	assert_non_null(fresh);
	o = acme_order_new(fresh, &oo, NULL);
	assert_non_null(o);
	assert_int_equal(acme_order_next(o, T0, &req, &w), ACME_STEP_FAILED);
	assert_null(req.url);
	assert_int_equal(acme_order_error(o)->code, ACME_E_INTERNAL);
	acme_order_free(o);
	acme_client_free(fresh);
}

static void test_new_rejects_bad_opts(void **state)
{
	struct t *t = *state;
	struct acme_order_opts oo = {.names = t->names,
				     .n_names = 0,
				     .csr_der = t->csr,
				     .csr_len = t->csr_len};

	assert_null(acme_order_new(t->c, &oo, NULL));
	oo.n_names = 1;
	oo.csr_der = NULL;
	assert_null(acme_order_new(t->c, &oo, NULL));
	oo.csr_der = t->csr;
	oo.chall = ACME_CHALL__MAX;
	assert_null(acme_order_new(t->c, &oo, NULL));
	assert_null(acme_order_new(NULL, &oo, NULL));
	acme_order_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T1(f) cmocka_unit_test_setup_teardown(f, setup_one, teardown)
#define T2(f) cmocka_unit_test_setup_teardown(f, setup_two, teardown)
	    T1(test_single_name_happy),
	    T1(test_profile_and_replaces_in_new_order),
	    T2(test_multi_name_authz_reuse),
	    T2(test_multi_name_both_pending),
	    T1(test_wildcard_authz),
	    cmocka_unit_test_setup_teardown(test_empty_pool_inserts_new_nonce,
					    setup_one_no_nonce, teardown),
	    cmocka_unit_test_setup_teardown(test_new_nonce_without_nonce_fails,
					    setup_one_no_nonce, teardown),
	    T1(test_bad_nonce_repeats_request),
	    T1(test_bad_nonce_bounded),
	    T1(test_bad_nonce_budget_resets),
	    T1(test_retry_after_delta_on_authz),
	    T1(test_retry_after_http_date_on_order),
	    T1(test_backoff_grows_and_caps),
	    T1(test_poll_authz_deadline),
	    T1(test_poll_order_deadline),
	    T1(test_invalid_authz_challenge_error),
	    T1(test_invalid_authz_without_error),
	    T2(test_second_authz_invalid_unpublishes_all),
	    T1(test_publish_failure),
	    T1(test_dns01_pending_publish_then_ready),
	    T1(test_dns01_publish_fails_later),
	    T1(test_dns01_publish_deadline),
	    T1(test_order_invalid_after_finalize),
	    T1(test_order_invalid_without_error_object),
	    T1(test_order_ready_at_once),
	    T1(test_resumed_order),
	    T1(test_new_order_problem_types),
	    T1(test_rate_limited_retry_after),
	    T1(test_compound_problem_subproblems),
	    T1(test_server_internal_retried_then_fails),
	    T1(test_download_garbage),
	    T2(test_download_wrong_names),
	    T1(test_download_preferred_alternate),
	    T1(test_download_preferred_is_default),
	    T1(test_download_no_alternate_matches),
	    T1(test_download_alternate_404_keeps_default),
	    T1(test_authz_for_unordered_name),
	    T1(test_malformed_answers),
	    T1(test_order_location_must_be_url),
	    T1(test_client_not_ready),
	    T1(test_new_rejects_bad_opts),
#undef T1
#undef T2
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
