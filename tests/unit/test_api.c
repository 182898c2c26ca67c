/*
 * Tests for the control API, for real: the API runs in-process on a fresh
 * temp state directory with a unix socket and a TCP listener on an
 * ephemeral 127.0.0.1 port, and the tests talk to it with libcurl. The
 * test thread has its own store handle to set up certificates and states
 * the API then reports. Covers adding (valid, duplicates, IDN, invalid ->
 * nothing added), listing with filters and pages, show, delete, renew,
 * status, metrics, bad JSON, oversized bodies, unknown paths and methods,
 * the TCP token, the socket mode, stale sockets and the wake hook.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "store/store.h"
#include "util/util.h"
#include "unit_tmp.h"

#define TOKEN "t0ken-for-tests-0123456789"

struct fx {
	char dir[64];
	char state[96];
	char sock[128];
	struct api_server *api;
	struct store *st; /* the test's own handle */
	unsigned port;
	atomic_int wakes;
	int extra_calls;
};

struct resp {
	long status;
	char *body;
	size_t len;
	char ctype[128];
	char allow[128];
	char www_auth[128];
	json_t *json; /* parsed body when it is JSON */
};

/* ---- fixture ---------------------------------------------------------- */

static void on_wake(void *ctx)
{
	struct fx *fx = ctx;

	atomic_fetch_add(&fx->wakes, 1);
}

static int status_extra(void *ctx, json_t *obj)
{
	(void)ctx;
	return json_object_set_new(obj, "queue_depth", json_integer(7));
}

static int metrics_extra(void *ctx, FILE *out)
{
	(void)ctx;
	fputs("# TYPE certherd_queue_depth gauge\ncertherd_queue_depth 7\n",
	      out);
	return 0;
}

static int start(struct fx *fx, size_t max_body)
{
	struct api_opts o = {0};
	struct api_hooks h = {0};
	char err[256];

	o.state_dir = fx->state;
	o.socket_path = fx->sock;
	o.tcp_listen = "127.0.0.1:0";
	o.token = TOKEN;
	o.max_body = max_body;
	h.wake = on_wake;
	h.status_extra = status_extra;
	h.metrics_extra = metrics_extra;
	h.ctx = fx;
	if (api_start(&o, &h, &fx->api, err, sizeof(err)) != 0) {
		fprintf(stderr, "api_start: %s\n", err);
		return -1;
	}
	fx->port = api_tcp_port(fx->api);
	return fx->port ? 0 : -1;
}

static int setup_with(void **state, size_t max_body)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char err[256];

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/certherd-api-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
	snprintf(fx->sock, sizeof(fx->sock), "%s/api.sock", fx->dir);
	if (store_open(fx->state, &fx->st, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	if (start(fx, max_body) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, 0);
}

static int setup_small(void **state)
{
	return setup_with(state, 4096);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	api_stop(fx->api);
	store_close(fx->st);
	unit_rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* ---- HTTP client ------------------------------------------------------ */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, sz * n);
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

static void header_value(const char *line, size_t n, const char *name,
			 char *out, size_t outsz)
{
	size_t nl = strlen(name), vl;

	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	line += nl + 1;
	n -= nl + 1;
	while (n && *line == ' ')
		line++, n--;
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		n--;
	vl = n < outsz - 1 ? n : outsz - 1;
	memcpy(out, line, vl);
	out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;

	header_value(p, sz * n, "Content-Type", r->ctype, sizeof(r->ctype));
	header_value(p, sz * n, "Allow", r->allow, sizeof(r->allow));
	header_value(p, sz * n, "WWW-Authenticate", r->www_auth,
		     sizeof(r->www_auth));
	return sz * n;
}

struct chunked {
	size_t left;
};

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
	struct chunked *c = ud;
	size_t k = sz * n < c->left ? sz * n : c->left;

	memset(p, ' ', k);
	c->left -= k;
	return k;
}

enum via { UNIX, TCP };

/* One request. auth: NULL = none, else the whole Authorization value.
 * chunked > 0 sends that many bytes of spaces with chunked encoding. */
static void http_full(struct fx *fx, enum via via, const char *method,
		      const char *path, const char *body, const char *auth,
		      size_t chunked, struct resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hs = NULL;
	struct chunked ch = {chunked};
	char url[512], hdr[256];

	memset(r, 0, sizeof(*r));
	assert_non_null(c);
	if (via == UNIX) {
		snprintf(url, sizeof(url), "http://localhost%s", path);
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, fx->sock);
	} else {
		snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", fx->port,
			 path);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	hs = curl_slist_append(hs, "Expect:");
	if (auth) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
		hs = curl_slist_append(hs, hdr);
	}
	if (body) {
		hs = curl_slist_append(hs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)strlen(body));
	} else if (chunked) {
		hs = curl_slist_append(hs, "Transfer-Encoding: chunked");
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &ch);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hs);
	curl_easy_cleanup(c);
	if (r->body && (strncmp(r->ctype, "application/json", 16) == 0 ||
			strncmp(r->ctype, "application/problem+json", 24) == 0))
		r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void http(struct fx *fx, const char *method, const char *path,
		 const char *body, struct resp *r)
{
	http_full(fx, UNIX, method, path, body, NULL, 0, r);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* The reply is a problem document of kind with status. */
static void assert_problem(const struct resp *r, long status, const char *kind)
{
	char type[96];

	snprintf(type, sizeof(type), "urn:certherd:problem:%s", kind);
	if (r->status != status || !r->json)
		fprintf(stderr, "got %ld %s\n", r->status,
			r->body ? r->body : "(no body)");
	assert_int_equal(r->status, status);
	assert_string_equal(r->ctype, "application/problem+json");
	assert_non_null(r->json);
	assert_string_equal(json_string_value(json_object_get(r->json, "type")),
			    type);
	assert_int_equal(json_integer_value(json_object_get(r->json, "status")),
			 status);
	assert_non_null(json_string_value(json_object_get(r->json, "title")));
	assert_non_null(json_string_value(json_object_get(r->json, "detail")));
}

static int has_name(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), name) == 0)
			return 1;
		if (json_is_object(v) &&
		    strcmp(json_string_value(json_object_get(v, "name")),
			   name) == 0)
			return 1;
	}
	return 0;
}

static void add_ok(struct fx *fx, const char *body)
{
	struct resp r;

	http(fx, "POST", "/v1/domains", body, &r);
	if (r.status != 200)
		fprintf(stderr, "%s\n", r.body);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

/* ---- a real certificate for show and metrics -------------------------- */

static char *make_cert(const char *name, int64_t not_before_s,
		       int64_t not_after_s)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	BIO *b = BIO_new(BIO_s_mem());
	char san[300], *pem, *data;
	long n;

	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before_s);
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after_s);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"Test CA", -1, -1, 0);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "DNS:%s", name);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)n);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	return pem;
}

static void put_cert(struct fx *fx, const char *name, int64_t nb_ms,
		     int64_t na_ms)
{
	struct store_cert c;

	memset(&c, 0, sizeof(c));
	snprintf(c.info.domain, sizeof(c.info.domain), "%s", name);
	snprintf(c.info.serial, sizeof(c.info.serial), "1234");
	snprintf(c.info.issuer, sizeof(c.info.issuer), "Test CA");
	c.info.not_before_ms = nb_ms;
	c.info.not_after_ms = na_ms;
	c.info.ari_start_ms = c.info.ari_end_ms = STORE_NO_TIME;
	c.chain_pem = make_cert(name, nb_ms / 1000, na_ms / 1000);
	c.key_pem = (char *)"KEY";
	assert_int_equal(store_cert_insert(fx->st, &c, 0, na_ms - 86400000,
					   clock_wall_ms(), NULL),
			 0);
	free(c.chain_pem);
}

/* ---- tests ------------------------------------------------------------ */

static void test_socket_mode(void **state)
{
	struct fx *fx = *state;
	struct stat sb;

	assert_int_equal(lstat(fx->sock, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0660);
}

static void test_add_and_duplicates(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	json_t *added, *existing;

	http(fx, "POST", "/v1/domains",
	     "{\"names\": [\"Shop.Example.COM\", \"b.example.com.\", "
	     "\"shop.example.com\"]}",
	     &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "application/json");
	added = json_object_get(r.json, "added");
	existing = json_object_get(r.json, "existing");
	assert_int_equal(json_array_size(added), 2);
	assert_true(has_name(added, "shop.example.com"));
	assert_true(has_name(added, "b.example.com"));
	assert_int_equal(json_array_size(existing), 0);
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 1);

	/* again: idempotent, nothing new, no wake */
	http(fx, "POST", "/v1/domains",
	     "{\"names\": [\"shop.example.com\", \"c.example.com\"]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(
	    has_name(json_object_get(r.json, "existing"), "shop.example.com"));
	assert_true(
	    has_name(json_object_get(r.json, "added"), "c.example.com"));
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 2);
	add_ok(fx, "{\"name\": \"c.example.com\"}");
	assert_int_equal(atomic_load(&fx->wakes), 2);
}

static void test_add_idn(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	struct store_domain d;

	http(fx, "POST", "/v1/domains", "{\"name\": \"Bücher.Example\"}", &r);
	assert_int_equal(r.status, 200);
	assert_true(has_name(json_object_get(r.json, "added"),
			     "xn--bcher-kva.example"));
	resp_free(&r);
	assert_int_equal(store_domain_get(fx->st, "xn--bcher-kva.example", &d),
			 0);
	assert_int_equal(d.status, STORE_DOMAIN_PENDING);
	assert_string_equal(d.challenge, "http-01");
	/* the U-label in the path (percent-encoded UTF-8) finds it too */
	http(fx, "GET", "/v1/domains/b%C3%BCcher.example", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")),
			    "xn--bcher-kva.example");
	resp_free(&r);
}

/* Wildcards register with dns-01; a plain name may ask for it. */
static void test_add_wildcard_and_challenge(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	struct store_domain d;

	http(fx, "POST", "/v1/domains",
	     "{\"names\": [\"*.Wild.example.com\"]}", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(store_domain_get(fx->st, "*.wild.example.com", &d), 0);
	assert_string_equal(d.challenge, "dns-01");
	http(fx, "POST", "/v1/domains",
	     "{\"name\": \"api.example.com\", \"challenge\": \"dns-01\"}",
	     &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(store_domain_get(fx->st, "api.example.com", &d), 0);
	assert_string_equal(d.challenge, "dns-01");
	http(fx, "POST", "/v1/domains", "{\"name\": \"b.example.com\"}", &r);
	resp_free(&r);
	assert_int_equal(store_domain_get(fx->st, "b.example.com", &d), 0);
	assert_string_equal(d.challenge, "http-01");
	http(fx, "POST", "/v1/domains",
	     "{\"name\": \"c.example.com\", \"challenge\": \"tls-alpn-01\"}",
	     &r);
	assert_problem(&r, 400, "malformed");
	resp_free(&r);
	/* a wildcard is found by its name in a path */
	http(fx, "GET", "/v1/domains/*.wild.example.com", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(
	    json_string_value(json_object_get(r.json, "challenge")), "dns-01");
	resp_free(&r);
}

static void test_add_invalid_adds_nothing(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	struct store_domain d;
	json_t *inv;
	uint64_t counts[STORE_DOMAIN__MAX];

	/* a wildcard is valid, but not with http-01 */
	http(fx, "POST", "/v1/domains",
	     "{\"names\": [\"good.example.com\", \"bad..example.com\", "
	     "\"192.0.2.1\", \"*.wild.example.com\"], "
	     "\"challenge\": \"http-01\"}",
	     &r);
	assert_problem(&r, 400, "invalid-name");
	assert_non_null(
	    strstr(json_string_value(json_object_get(r.json, "detail")),
		   "bad..example.com"));
	inv = json_object_get(r.json, "invalid");
	assert_int_equal(json_array_size(inv), 3);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(inv, 0), "name")),
	    "bad..example.com");
	assert_non_null(json_string_value(
	    json_object_get(json_array_get(inv, 0), "reason")));
	assert_true(has_name(inv, "192.0.2.1"));
	assert_true(has_name(inv, "*.wild.example.com"));
	resp_free(&r);
	assert_int_equal(store_domain_get(fx->st, "good.example.com", &d),
			 -ENOENT);
	assert_int_equal(store_domain_count(fx->st, counts), 0);
	for (int i = 0; i < STORE_DOMAIN__MAX; i++)
		assert_int_equal(counts[i], 0);
	assert_int_equal(atomic_load(&fx->wakes), 0);
}

static void test_add_bad_bodies(void **state)
{
	struct fx *fx = *state;
	static const char *const bad[] = {
	    "{\"names\": [\"a.example\"",      /* truncated */
	    "not json",			       /* not JSON */
	    "[\"a.example\"]",		       /* not an object */
	    "\"a.example\"",		       /* not an object */
	    "{}",			       /* no names */
	    "{\"names\": []}",		       /* empty */
	    "{\"names\": \"a.example\"}",      /* not an array */
	    "{\"names\": [\"a.example\", 1]}", /* not a string */
	    "{\"name\": 5}",		       /* not a string */
	    "{\"names\": [\"a.example\"], \"name\": \"b.example\"}",
	    "{\"names\": [\"a.example\"], \"extra\": 1}",
	    "{\"name\": \"a.example\", \"name\": \"b.example\"}", /* dup key */
	};
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http(fx, "POST", "/v1/domains", bad[i], &r);
		assert_problem(&r, 400, "malformed");
		resp_free(&r);
	}
	/* no body at all */
	http(fx, "POST", "/v1/domains", "", &r);
	assert_problem(&r, 400, "malformed");
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 0);
}

static void test_too_many_names(void **state)
{
	struct fx *fx = *state;
	size_t n = API_MAX_NAMES + 1, i, off = 0;
	char *body = malloc(n * 24 + 32);
	struct resp r;

	assert_non_null(body);
	off += (size_t)sprintf(body, "{\"names\": [");
	for (i = 0; i < n; i++)
		off += (size_t)sprintf(body + off, "%s\"n%zu.example.com\"",
				       i ? "," : "", i);
	strcpy(body + off, "]}");
	http(fx, "POST", "/v1/domains", body, &r);
	assert_problem(&r, 413, "too-many-names");
	resp_free(&r);
	free(body);
}

/* The largest request: 10,000 new names in one POST, in reasonable time. */
static void test_max_names(void **state)
{
	struct fx *fx = *state;
	size_t n = API_MAX_NAMES, i, off = 0;
	char *body = malloc(n * 24 + 32);
	int64_t t0;
	struct resp r;
	uint64_t counts[STORE_DOMAIN__MAX];

	assert_non_null(body);
	off += (size_t)sprintf(body, "{\"names\": [");
	for (i = 0; i < n; i++)
		off += (size_t)sprintf(body + off, "%s\"n%zu.example.com\"",
				       i ? "," : "", i);
	strcpy(body + off, "]}");
	t0 = clock_mono_ms();
	http(fx, "POST", "/v1/domains", body, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "added")), n);
	fprintf(stderr, "# %zu names added in %lld ms\n", n,
		(long long)(clock_mono_ms() - t0));
	resp_free(&r);
	free(body);
	assert_int_equal(store_domain_count(fx->st, counts), 0);
	assert_int_equal(counts[STORE_DOMAIN_PENDING], n);
	assert_int_equal(atomic_load(&fx->wakes), 1);
}

static void test_oversized_body(void **state)
{
	struct fx *fx = *state; /* max_body 4096 */
	char *body = malloc(8192);
	struct resp r;

	assert_non_null(body);
	memset(body, ' ', 8191);
	body[8191] = '\0';
	memcpy(body, "{\"name\": \"a.example.com\"}", 24);
	http(fx, "POST", "/v1/domains", body, &r);
	assert_problem(&r, 413, "too-large");
	resp_free(&r);
	free(body);
	/* chunked: no Content-Length, counted as it arrives */
	http_full(fx, UNIX, "POST", "/v1/domains", NULL, NULL, 100000, &r);
	assert_problem(&r, 413, "too-large");
	resp_free(&r);
	/* a body at the limit is read */
	http_full(fx, UNIX, "POST", "/v1/domains", NULL, NULL, 4096, &r);
	assert_problem(&r, 400, "malformed");
	resp_free(&r);
	/* and the server still answers */
	add_ok(fx, "{\"name\": \"a.example.com\"}");
}

static void test_list_filters_pages(void **state)
{
	struct fx *fx = *state;
	struct store_job job = {STORE_DOMAIN_FAILED, STORE_NO_TIME, 3, NULL};
	struct store_problem p;
	struct resp r;
	json_t *doms, *d;
	char path[512];
	const char *cursor;
	size_t seen = 0;
	int64_t now = clock_wall_ms();

	add_ok(fx, "{\"names\": [\"a1.example.com\", \"a2.example.com\", "
		   "\"a3.example.com\", \"a4.example.com\", "
		   "\"a5.example.com\", \"shop1.example.org\", "
		   "\"shop2.example.org\", \"gone.example.org\"]}");
	memset(&p, 0, sizeof(p));
	strcpy(p.type, "urn:ietf:params:acme:error:rejectedIdentifier");
	strcpy(p.detail, "CA refuses this name");
	strcpy(p.step, "newOrder");
	p.status = 400;
	p.retry_after_ms = STORE_NO_TIME;
	job.error = &p;
	assert_int_equal(
	    store_domain_set_job(fx->st, "shop2.example.org", &job, now), 0);
	put_cert(fx, "shop1.example.org", now - 3600000, now + 86400000);
	assert_int_equal(store_domain_remove(fx->st, "gone.example.org", now),
			 0);

	/* all (but removed), default page */
	http(fx, "GET", "/v1/domains", NULL, &r);
	assert_int_equal(r.status, 200);
	doms = json_object_get(r.json, "domains");
	assert_int_equal(json_array_size(doms), 7);
	assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
	assert_false(has_name(doms, "gone.example.org"));
	d = json_array_get(doms, 0);
	assert_string_equal(json_string_value(json_object_get(d, "name")),
			    "a1.example.com");
	assert_string_equal(json_string_value(json_object_get(d, "state")),
			    "pending");
	assert_true(json_is_null(json_object_get(d, "not_after")));
	assert_true(json_is_null(json_object_get(d, "last_error")));
	resp_free(&r);

	/* status filter, and the stored error as an object */
	http(fx, "GET", "/v1/domains?status=failed,valid", NULL, &r);
	assert_int_equal(r.status, 200);
	doms = json_object_get(r.json, "domains");
	assert_int_equal(json_array_size(doms), 2);
	d = json_array_get(doms, 0);
	assert_string_equal(json_string_value(json_object_get(d, "name")),
			    "shop1.example.org");
	assert_string_equal(json_string_value(json_object_get(d, "state")),
			    "valid");
	assert_true(json_is_string(json_object_get(d, "not_after")));
	assert_int_equal(
	    strlen(json_string_value(json_object_get(d, "not_after"))), 20);
	d = json_array_get(doms, 1);
	assert_string_equal(json_string_value(json_object_get(d, "state")),
			    "failed");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(d, "last_error"), "type")),
			    "urn:ietf:params:acme:error:rejectedIdentifier");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(d, "last_error"), "step")),
			    "newOrder");
	resp_free(&r);

	/* removed only when asked */
	http(fx, "GET", "/v1/domains?status=removed", NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "domains")),
			 1);
	resp_free(&r);

	/* prefix (case-insensitive) */
	http(fx, "GET", "/v1/domains?prefix=SHOP", NULL, &r);
	doms = json_object_get(r.json, "domains");
	assert_int_equal(json_array_size(doms), 2);
	assert_true(has_name(doms, "shop1.example.org"));
	resp_free(&r);

	/* pages of 2 over the five a*.example.com */
	cursor = NULL;
	for (int page = 0; page < 5; page++) {
		snprintf(path, sizeof(path), "/v1/domains?prefix=a&limit=2%s%s",
			 cursor ? "&cursor=" : "", cursor ? cursor : "");
		http(fx, "GET", path, NULL, &r);
		assert_int_equal(r.status, 200);
		seen += json_array_size(json_object_get(r.json, "domains"));
		{
			json_t *nc = json_object_get(r.json, "next_cursor");
			static char buf[256];

			if (json_is_null(nc)) {
				resp_free(&r);
				break;
			}
			snprintf(buf, sizeof(buf), "%s", json_string_value(nc));
			cursor = buf;
		}
		resp_free(&r);
	}
	assert_int_equal(seen, 5);
	assert_string_equal(cursor, "a4.example.com");
}

static void test_list_bad_params(void **state)
{
	struct fx *fx = *state;
	static const char *const bad[] = {
	    "/v1/domains?limit=0",
	    "/v1/domains?limit=1001",
	    "/v1/domains?limit=abc",
	    "/v1/domains?limit=",
	    "/v1/domains?limit=-5",
	    "/v1/domains?status=bogus",
	    "/v1/domains?status=valid,",
	    "/v1/domains?status=",
	    "/v1/domains?prefix=a%20b",
	    "/v1/domains?cursor=..",
	    "/v1/domains?color=red",
	    "/v1/domains?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9",
	};
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http(fx, "GET", bad[i], NULL, &r);
		assert_problem(&r, 400, "bad-param");
		resp_free(&r);
	}
	http(fx, "GET", "/v1/domains?limit=1000", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_show(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	json_t *c, *h;
	int64_t now = clock_wall_ms();

	add_ok(fx, "{\"name\": \"show.example.com\"}");
	put_cert(fx, "show.example.com", 1700000000000LL, 1800000000000LL);
	(void)now;
	http(fx, "GET", "/v1/domains/SHOW.example.com", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")),
			    "show.example.com");
	assert_string_equal(json_string_value(json_object_get(r.json, "state")),
			    "valid");
	assert_true(json_is_string(json_object_get(r.json, "added_at")));
	assert_true(json_is_string(json_object_get(r.json, "next_attempt_at")));
	assert_int_equal(
	    json_integer_value(json_object_get(r.json, "failures")), 0);
	assert_true(json_is_null(json_object_get(r.json, "last_error")));
	c = json_object_get(r.json, "certificate");
	assert_true(json_is_object(c));
	assert_string_equal(json_string_value(json_object_get(c, "serial")),
			    "1234");
	assert_string_equal(json_string_value(json_object_get(c, "issuer")),
			    "Test CA");
	assert_string_equal(json_string_value(json_object_get(c, "not_before")),
			    "2023-11-14T22:13:20Z");
	assert_string_equal(json_string_value(json_object_get(c, "not_after")),
			    "2027-01-15T08:00:00Z");
	assert_true(has_name(json_object_get(c, "names"), "show.example.com"));
	h = json_object_get(r.json, "history");
	assert_true(json_array_size(h) >= 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(h, 0), "kind")),
	    "added");
	assert_true(
	    json_is_string(json_object_get(json_array_get(h, 0), "ts")));
	resp_free(&r);

	/* no certificate yet: null */
	add_ok(fx, "{\"name\": \"new.example.com\"}");
	http(fx, "GET", "/v1/domains/new.example.com", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_null(json_object_get(r.json, "certificate")));
	resp_free(&r);

	http(fx, "GET", "/v1/domains/unknown.example.com", NULL, &r);
	assert_problem(&r, 404, "unknown-domain");
	resp_free(&r);
	http(fx, "GET", "/v1/domains/not..valid", NULL, &r);
	assert_problem(&r, 400, "invalid-name");
	resp_free(&r);
}

static void test_delete(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	struct store_domain d;

	add_ok(fx, "{\"name\": \"del.example.com\"}");
	assert_int_equal(atomic_load(&fx->wakes), 1);
	http(fx, "DELETE", "/v1/domains/del.example.com", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")),
			    "removed");
	assert_string_equal(json_string_value(json_object_get(r.json, "name")),
			    "del.example.com");
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 2);
	assert_int_equal(store_domain_get(fx->st, "del.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_REMOVED);
	assert_int_equal(d.next_attempt_ms, STORE_NO_TIME);

	http(fx, "DELETE", "/v1/domains/nope.example.com", NULL, &r);
	assert_problem(&r, 404, "unknown-domain");
	resp_free(&r);
	/* renew of a removed domain is refused */
	http(fx, "POST", "/v1/domains/del.example.com/renew", NULL, &r);
	assert_problem(&r, 409, "removed");
	resp_free(&r);
	/* adding it again brings it back */
	http(fx, "POST", "/v1/domains", "{\"name\": \"del.example.com\"}", &r);
	assert_true(
	    has_name(json_object_get(r.json, "added"), "del.example.com"));
	resp_free(&r);
}

static void test_renew(void **state)
{
	struct fx *fx = *state;
	struct store_problem p;
	struct store_job job = {STORE_DOMAIN_VALID, 0, 2, NULL};
	struct store_domain d;
	struct resp r;
	int64_t before;

	add_ok(fx, "{\"name\": \"renew.example.com\"}");
	memset(&p, 0, sizeof(p));
	strcpy(p.type, "connection");
	strcpy(p.detail, "timeout");
	strcpy(p.step, "validate");
	p.retry_after_ms = STORE_NO_TIME;
	job.error = &p;
	job.next_attempt_ms = clock_wall_ms() + 86400000LL * 30;
	assert_int_equal(store_domain_set_job(fx->st, "renew.example.com", &job,
					      clock_wall_ms()),
			 0);
	before = clock_wall_ms();
	http(fx, "POST", "/v1/domains/renew.example.com/renew", NULL, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")),
			    "renew.example.com");
	assert_true(json_is_string(json_object_get(r.json, "next_attempt_at")));
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 2);
	assert_int_equal(store_domain_get(fx->st, "renew.example.com", &d), 0);
	assert_true(d.next_attempt_ms >= before &&
		    d.next_attempt_ms <= clock_wall_ms());
	assert_int_equal(d.failures, 2); /* kept */
	assert_int_equal(d.status, STORE_DOMAIN_VALID);
	assert_true(d.has_error);
	assert_string_equal(d.last_error.detail, "timeout");

	/* With a certificate: a forced renewal sets its window to now (the
	 * daemon renews at once); ?ari=true clears it (the daemon asks the
	 * CA first). Both show in GET as renewal_window. */
	{
		struct store_cert c;
		json_t *w;
		int64_t t0 = clock_wall_ms();

		put_cert(fx, "renew.example.com", t0 - 86400000LL,
			 t0 + 89 * 86400000LL);
		http(fx, "POST", "/v1/domains/renew.example.com/renew", NULL,
		     &r);
		assert_int_equal(r.status, 202);
		resp_free(&r);
		assert_int_equal(store_cert_current(fx->st, "renew.example.com",
						    &c),
				 0);
		assert_true(c.info.ari_start_ms >= t0 &&
			    c.info.ari_start_ms <= clock_wall_ms());
		assert_true(c.info.ari_end_ms == c.info.ari_start_ms + 1);
		store_cert_clear(&c);
		http(fx, "GET", "/v1/domains/renew.example.com", NULL, &r);
		w = json_object_get(json_object_get(r.json, "certificate"),
				    "renewal_window");
		assert_true(json_is_string(json_object_get(w, "start")));
		resp_free(&r);
		http(fx, "POST", "/v1/domains/renew.example.com/renew?ari=true",
		     NULL, &r);
		assert_int_equal(r.status, 202);
		resp_free(&r);
		assert_int_equal(store_cert_current(fx->st, "renew.example.com",
						    &c),
				 0);
		assert_true(c.info.ari_start_ms == STORE_NO_TIME &&
			    c.info.ari_end_ms == STORE_NO_TIME);
		store_cert_clear(&c);
		http(fx, "GET", "/v1/domains/renew.example.com", NULL, &r);
		assert_null(json_object_get(
		    json_object_get(r.json, "certificate"), "renewal_window"));
		resp_free(&r);
		http(fx, "POST", "/v1/domains/renew.example.com/renew?ari=maybe",
		     NULL, &r);
		assert_problem(&r, 400, "bad-argument");
		resp_free(&r);
	}

	http(fx, "POST", "/v1/domains/nope.example.com/renew", NULL, &r);
	assert_problem(&r, 404, "unknown-domain");
	resp_free(&r);
	http(fx, "GET", "/v1/domains/renew.example.com/renew", NULL, &r);
	assert_problem(&r, 405, "method-not-allowed");
	assert_string_equal(r.allow, "POST");
	resp_free(&r);
}

static void test_status(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	json_t *d;

	add_ok(fx, "{\"names\": [\"s1.example.com\", \"s2.example.com\", "
		   "\"s3.example.com\"]}");
	assert_int_equal(
	    store_domain_remove(fx->st, "s3.example.com", clock_wall_ms()), 0);
	http(fx, "GET", "/v1/status", NULL, &r);
	assert_int_equal(r.status, 200);
	d = json_object_get(r.json, "domains");
	assert_int_equal(json_integer_value(json_object_get(d, "pending")), 2);
	assert_int_equal(json_integer_value(json_object_get(d, "valid")), 0);
	assert_int_equal(json_integer_value(json_object_get(d, "removed")), 1);
	assert_int_equal(json_object_size(d), STORE_DOMAIN__MAX);
	assert_int_equal(json_integer_value(json_object_get(r.json, "total")),
			 2);
	assert_int_equal(
	    json_integer_value(json_object_get(r.json, "queue_depth")), 7);
	resp_free(&r);
}

static void test_metrics(void **state)
{
	struct fx *fx = *state;
	struct resp r;
	const char *m;
	double secs;
	int64_t now = clock_wall_ms();

	/* no certificate: no expiry gauge */
	http(fx, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype,
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(r.body, "# TYPE certherd_domains gauge\n"));
	assert_non_null(
	    strstr(r.body, "certherd_domains{state=\"pending\"} 0\n"));
	assert_null(strstr(r.body, "earliest_expiry"));
	assert_non_null(strstr(r.body, "certherd_queue_depth 7\n"));
	resp_free(&r);

	add_ok(fx, "{\"names\": [\"m1.example.com\", \"m2.example.com\", "
		   "\"m3.example.com\"]}");
	put_cert(fx, "m1.example.com", now - 3600000, now + 10 * 86400000LL);
	put_cert(fx, "m2.example.com", now - 3600000, now + 20 * 86400000LL);
	/* the soonest belongs to a removed domain: not counted */
	put_cert(fx, "m3.example.com", now - 3600000, now + 86400000LL);
	assert_int_equal(store_domain_remove(fx->st, "m3.example.com", now), 0);
	http(fx, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(
	    strstr(r.body, "certherd_domains{state=\"valid\"} 2\n"));
	assert_non_null(
	    strstr(r.body, "certherd_domains{state=\"removed\"} 1\n"));
	assert_non_null(strstr(
	    r.body,
	    "# TYPE certherd_certificate_earliest_expiry_seconds gauge\n"));
	m = strstr(r.body, "\ncertherd_certificate_earliest_expiry_seconds ");
	assert_non_null(m);
	secs = strtod(strchr(m + 1, ' ') + 1, NULL);
	assert_true(secs > 10 * 86400.0 - 60 && secs <= 10 * 86400.0);
	resp_free(&r);
}

static void test_unknown_and_methods(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	http(fx, "GET", "/", NULL, &r);
	assert_problem(&r, 404, "not-found");
	resp_free(&r);
	http(fx, "GET", "/v2/domains", NULL, &r);
	assert_problem(&r, 404, "not-found");
	resp_free(&r);
	http(fx, "GET", "/v1/domains/a.example.com/other", NULL, &r);
	assert_problem(&r, 404, "not-found");
	resp_free(&r);
	http(fx, "PUT", "/v1/domains", NULL, &r);
	assert_problem(&r, 405, "method-not-allowed");
	assert_string_equal(r.allow, "GET, HEAD, POST");
	resp_free(&r);
	http(fx, "POST", "/v1/domains/a.example.com", NULL, &r);
	assert_problem(&r, 405, "method-not-allowed");
	assert_string_equal(r.allow, "GET, HEAD, DELETE");
	resp_free(&r);
	http(fx, "DELETE", "/v1/status", NULL, &r);
	assert_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
	http(fx, "POST", "/metrics", "{}", &r);
	assert_problem(&r, 405, "method-not-allowed");
	resp_free(&r);
}

static void test_tcp_token(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	http_full(fx, TCP, "GET", "/v1/status", NULL, NULL, 0, &r);
	assert_problem(&r, 401, "unauthorized");
	assert_non_null(strstr(r.www_auth, "Bearer"));
	resp_free(&r);
	http_full(fx, TCP, "GET", "/v1/status", NULL, "Bearer wrong", 0, &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);
	/* a prefix of the token, and the token with a byte more */
	http_full(fx, TCP, "GET", "/v1/status", NULL, "Bearer t0ken", 0, &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);
	http_full(fx, TCP, "GET", "/v1/status", NULL, "Bearer " TOKEN "x", 0,
		  &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);
	http_full(fx, TCP, "GET", "/v1/status", NULL, "Basic " TOKEN, 0, &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);
	/* refused before any handler: nothing added, nothing woken */
	http_full(fx, TCP, "POST", "/v1/domains",
		  "{\"name\": \"tcp.example.com\"}", "Bearer nope", 0, &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 0);
	/* unknown paths too: 401, not 404 */
	http_full(fx, TCP, "GET", "/nothing", NULL, NULL, 0, &r);
	assert_problem(&r, 401, "unauthorized");
	resp_free(&r);

	http_full(fx, TCP, "GET", "/v1/status", NULL, "Bearer " TOKEN, 0, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	http_full(fx, TCP, "POST", "/v1/domains",
		  "{\"name\": \"tcp.example.com\"}", "bearer  " TOKEN, 0, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(atomic_load(&fx->wakes), 1);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void test_start_errors(void **state)
{
	struct fx *fx = *state;
	struct api_opts o = {0};
	struct api_server *s = (struct api_server *)1;
	char err[256], path[160];
	int fd, fds;

	/* another daemon listens on the socket: refused, file kept */
	o.state_dir = fx->state;
	o.socket_path = fx->sock;
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)),
			 -EADDRINUSE);
	assert_null(s);
	assert_non_null(strstr(err, "in use"));
	assert_int_equal(access(fx->sock, F_OK), 0);

	/* a stale socket (nobody listening) is replaced */
	snprintf(path, sizeof(path), "%s/stale.sock", fx->dir);
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		strcpy(sa.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		close(fd);
	}
	o.socket_path = path;
	fds = count_fds();
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), 0);
	api_stop(s);
	/* listener and store closed (<=: a sanitizer may close its own) */
	assert_true(count_fds() <= fds);
	assert_int_equal(access(path, F_OK), -1); /* removed on stop */

	/* a regular file is never deleted */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), -EEXIST);
	assert_int_equal(access(path, F_OK), 0);

	/* TCP without a token, bad address */
	o.socket_path = NULL;
	o.tcp_listen = "127.0.0.1:0";
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), -EINVAL);
	o.token = "has space";
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), -EINVAL);
	o.token = TOKEN;
	o.tcp_listen = "nowhere";
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), -EINVAL);
	o.tcp_listen = NULL;
	assert_int_equal(api_start(&o, NULL, &s, err, sizeof(err)), -EINVAL);
	api_stop(NULL);
}

/* ---- the pure helpers ------------------------------------------------- */

static void test_json_helpers(void **state)
{
	char buf[32];
	json_t *j;
	struct api_names nm;
	char err[128];

	(void)state;
	assert_int_equal(api__rfc3339(1795838400000LL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-28T04:00:00Z");
	assert_int_equal(api__rfc3339(-1, buf, sizeof(buf)), -EINVAL);
	j = api__time(STORE_NO_TIME);
	assert_true(json_is_null(j));
	json_decref(j);
	/* invalid UTF-8 and cutting never produce an invalid string */
	j = api__str("a\xff"
		     "b\xc3",
		     16);
	assert_string_equal(json_string_value(j), "a?b?");
	json_decref(j);
	j = api__str("\xc3\xbc\xc3\xbc", 3);
	assert_string_equal(json_string_value(j), "\xc3\xbc");
	json_decref(j);
	/* duplicates after normalization are marked */
	{
		const char *b = "{\"names\": [\"xn--bcher-kva.example\", "
				"\"B\xc3\xbc"
				"cher.example\"]}";

		assert_int_equal(
		    api__names_parse(b, strlen(b), &nm, err, sizeof(err)), 0);
	}
	assert_int_equal(nm.n, 2);
	assert_int_equal(nm.v[0].dup, 0);
	assert_int_equal(nm.v[1].dup, 1);
	api__names_free(&nm);
	/* a NUL inside a string is refused by the parser */
	{
		const char *b = "{\"name\": \"a\\u0000.example\"}";

		assert_int_equal(
		    api__names_parse(b, strlen(b), &nm, err, sizeof(err)),
		    -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_and_duplicates, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_add_idn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_wildcard_and_challenge,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_invalid_adds_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_bad_bodies, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_too_many_names, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_max_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_body, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_list_filters_pages, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_list_bad_params, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_show, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_and_methods, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_tcp_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
	    cmocka_unit_test(test_json_helpers),
	};
	int rc;

	log_set_level(LOG_LVL_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
