/*
 * Unit tests for acme_dir: directories in the shapes Let's Encrypt and
 * Pebble serve (written by hand from their documented form), a minimal
 * RFC 8555 one, and everything that must be refused — missing resources,
 * wrong types, non-http(s) URLs, non-objects, garbage, oversized bodies.
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

#include "acme/acme.h"

/* malloc that cannot return NULL, so the compiler (and the reader)
 * need not consider it. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		abort();
	return p;
}

static int parse(const char *body, struct acme_directory *d, char *err,
		 size_t errsz)
{
	return acme_directory_parse(body, strlen(body), d, err, errsz);
}

static void test_letsencrypt_shape(void **state)
{
	const char *body =
	    "{\n"
	    "  \"Zx9-k2PqJx4\": \"https://community.letsencrypt.org/t/"
	    "adding-random-entries-to-the-directory/33417\",\n"
	    "  \"keyChange\": \"https://acme-v02.api.letsencrypt.org/acme/"
	    "key-change\",\n"
	    "  \"meta\": {\n"
	    "    \"caaIdentities\": [\"letsencrypt.org\"],\n"
	    "    \"profiles\": {\n"
	    "      \"classic\": \"https://letsencrypt.org/docs/"
	    "profiles#classic\",\n"
	    "      \"shortlived\": \"https://letsencrypt.org/docs/"
	    "profiles#shortlived\",\n"
	    "      \"tlsserver\": \"https://letsencrypt.org/docs/"
	    "profiles#tlsserver\"\n"
	    "    },\n"
	    "    \"termsOfService\": \"https://letsencrypt.org/documents/"
	    "LE-SA-v1.5-February-24-2025.pdf\",\n"
	    "    \"website\": \"https://letsencrypt.org\"\n"
	    "  },\n"
	    "  \"newAccount\": \"https://acme-v02.api.letsencrypt.org/acme/"
	    "new-acct\",\n"
	    "  \"newNonce\": \"https://acme-v02.api.letsencrypt.org/acme/"
	    "new-nonce\",\n"
	    "  \"newOrder\": \"https://acme-v02.api.letsencrypt.org/acme/"
	    "new-order\",\n"
	    "  \"renewalInfo\": \"https://acme-v02.api.letsencrypt.org/"
	    "draft-ietf-acme-ari-03/renewalInfo\",\n"
	    "  \"revokeCert\": \"https://acme-v02.api.letsencrypt.org/acme/"
	    "revoke-cert\"\n"
	    "}\n";
	struct acme_directory d;
	char err[128];

	(void)state;
	memset(&d, 0xa5, sizeof(d)); /* parse must not read old contents */
	assert_int_equal(parse(body, &d, err, sizeof(err)), 0);
	assert_string_equal(d.new_nonce,
			    "https://acme-v02.api.letsencrypt.org/acme/"
			    "new-nonce");
	assert_string_equal(d.new_account,
			    "https://acme-v02.api.letsencrypt.org/acme/"
			    "new-acct");
	assert_string_equal(d.new_order,
			    "https://acme-v02.api.letsencrypt.org/acme/"
			    "new-order");
	assert_string_equal(d.revoke_cert,
			    "https://acme-v02.api.letsencrypt.org/acme/"
			    "revoke-cert");
	assert_string_equal(d.key_change,
			    "https://acme-v02.api.letsencrypt.org/acme/"
			    "key-change");
	assert_string_equal(d.renewal_info,
			    "https://acme-v02.api.letsencrypt.org/"
			    "draft-ietf-acme-ari-03/renewalInfo");
	assert_string_equal(d.terms_of_service,
			    "https://letsencrypt.org/documents/"
			    "LE-SA-v1.5-February-24-2025.pdf");
	assert_int_equal(d.eab_required, 0);
	assert_int_equal(d.n_profiles, 3);
	assert_string_equal(d.profiles[0], "classic");
	assert_string_equal(d.profiles[1], "shortlived");
	assert_string_equal(d.profiles[2], "tlsserver");
	acme_directory_clear(&d);
	assert_null(d.new_nonce);
	assert_null(d.profiles);
	assert_int_equal(d.n_profiles, 0);
	acme_directory_clear(&d); /* twice is fine */
	acme_directory_clear(NULL);
}

static void test_pebble_shape(void **state)
{
	const char *body =
	    "{\n"
	    "   \"keyChange\": \"https://localhost:14000/"
	    "rollover-account-key\",\n"
	    "   \"meta\": {\n"
	    "      \"externalAccountRequired\": true,\n"
	    "      \"profiles\": {\n"
	    "         \"default\": \"The profile you know and love\",\n"
	    "         \"shortlived\": \"A short-lived cert profile\"\n"
	    "      },\n"
	    "      \"termsOfService\": \"data:text/plain,Do%20what%20thou"
	    "%20wilt\"\n"
	    "   },\n"
	    "   \"newAccount\": \"https://localhost:14000/sign-me-up\",\n"
	    "   \"newNonce\": \"https://localhost:14000/nonce-plz\",\n"
	    "   \"newOrder\": \"https://localhost:14000/order-plz\",\n"
	    "   \"renewalInfo\": \"https://localhost:14000/"
	    "draft-ietf-acme-ari-03/renewalInfo/\",\n"
	    "   \"revokeCert\": \"https://localhost:14000/revoke-cert\"\n"
	    "}";
	struct acme_directory d;
	char err[128];

	(void)state;
	assert_int_equal(parse(body, &d, err, sizeof(err)), 0);
	assert_string_equal(d.new_nonce, "https://localhost:14000/nonce-plz");
	assert_string_equal(d.new_account,
			    "https://localhost:14000/sign-me-up");
	assert_string_equal(d.new_order, "https://localhost:14000/order-plz");
	assert_string_equal(d.key_change,
			    "https://localhost:14000/rollover-account-key");
	/* shown, never fetched: a data: URL is fine here */
	assert_string_equal(d.terms_of_service,
			    "data:text/plain,Do%20what%20thou%20wilt");
	assert_int_equal(d.eab_required, 1);
	assert_int_equal(d.n_profiles, 2);
	assert_string_equal(d.profiles[0], "default");
	acme_directory_clear(&d);
}

static void test_minimal(void **state)
{
	struct acme_directory d;

	(void)state;
	/* only what RFC 8555 requires of us; plain http for local CAs */
	assert_int_equal(parse("{\"newNonce\":\"http://127.0.0.1:4001/n\","
			       "\"newAccount\":\"HTTPS://ca.example/a\","
			       "\"newOrder\":\"https://ca.example/o\"}",
			       &d, NULL, 0),
			 0);
	assert_string_equal(d.new_nonce, "http://127.0.0.1:4001/n");
	assert_null(d.revoke_cert);
	assert_null(d.key_change);
	assert_null(d.renewal_info);
	assert_null(d.terms_of_service);
	assert_null(d.profiles);
	assert_int_equal(d.n_profiles, 0);
	assert_int_equal(d.eab_required, 0);
	acme_directory_clear(&d);

	/* odd but harmless meta: ignored, not fatal */
	assert_int_equal(parse("{\"newNonce\":\"https://c/n\","
			       "\"newAccount\":\"https://c/a\","
			       "\"newOrder\":\"https://c/o\",\"meta\":{"
			       "\"termsOfService\":42,\"profiles\":{"
			       "\"ok\":\"x\",\"bad name\":\"x\",\"\":\"x\"},"
			       "\"caaIdentities\":\"nope\"}}",
			       &d, NULL, 0),
			 0);
	assert_null(d.terms_of_service);
	assert_int_equal(d.n_profiles, 1);
	assert_string_equal(d.profiles[0], "ok");
	acme_directory_clear(&d);
}

static void test_refused(void **state)
{
#define REQ "\"newNonce\":\"https://c/n\",\"newAccount\":\"https://c/a\""
	static const struct {
		const char *body;
		const char *err_has;
	} bad[] = {
	    {"", "empty"},
	    {"garbage", "not JSON"},
	    {"{", "not JSON"},
	    {"[]", "not a JSON object"},
	    {"\"https://c/n\"", "not a JSON object"},
	    {"null", "not a JSON object"},
	    {"{}", "newNonce"},
	    {"{" REQ "}", "newOrder"},
	    {"{\"newNonce\":\"https://c/n\",\"newOrder\":\"https://c/o\"}",
	     "newAccount"},
	    {"{" REQ ",\"newOrder\":42}", "newOrder"},
	    {"{" REQ ",\"newOrder\":null}", "newOrder"},
	    {"{" REQ ",\"newOrder\":[\"https://c/o\"]}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"https://\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"ftp://c/o\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"/acme/new-order\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"javascript:alert(1)\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"https://c/o x\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\\n\"}", "newOrder"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"revokeCert\":7}",
	     "revokeCert"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"keyChange\":"
	     "\"data:x\"}",
	     "keyChange"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"renewalInfo\":{}}",
	     "renewalInfo"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"meta\":[]}", "meta"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"meta\":{"
	     "\"externalAccountRequired\":\"yes\"}}",
	     "externalAccountRequired"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"meta\":{"
	     "\"profiles\":[\"classic\"]}}",
	     "profiles"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\",\"newOrder\":"
	     "\"https://evil/o\"}",
	     "not JSON"},
	    {"{" REQ ",\"newOrder\":\"https://c/o\"} {}", "not JSON"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct acme_directory d;
		char err[160];

		memset(&d, 0xa5, sizeof(d));
		err[0] = '\0';
		if (parse(bad[i].body, &d, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: %s", bad[i].body);
		if (!strstr(err, bad[i].err_has))
			fail_msg("for %s: error '%s' lacks '%s'", bad[i].body,
				 err, bad[i].err_has);
		/* nothing half-filled to leak or trust */
		assert_null(d.new_nonce);
		assert_null(d.new_order);
		assert_null(d.profiles);
		acme_directory_clear(&d);
	}
#undef REQ
	assert_int_equal(acme_directory_parse("{}", 2, NULL, NULL, 0), -EINVAL);
}

static void test_bounds(void **state)
{
	struct acme_directory d;
	char err[128], *body, url[2100];
	size_t n, i;

	(void)state;
	/* a URL just past our bound */
	memcpy(url, "https://c/", 10);
	memset(url + 10, 'a', 2039);
	url[2049] = '\0';
	body = xmalloc(4096);
	snprintf(body, 4096,
		 "{\"newNonce\":\"%s\",\"newAccount\":\"https://c/a\","
		 "\"newOrder\":\"https://c/o\"}",
		 url);
	assert_int_equal(parse(body, &d, err, sizeof(err)), -EINVAL);
	url[2048] = '\0'; /* at the bound: fine */
	snprintf(body, 4096,
		 "{\"newNonce\":\"%s\",\"newAccount\":\"https://c/a\","
		 "\"newOrder\":\"https://c/o\"}",
		 url);
	assert_int_equal(parse(body, &d, err, sizeof(err)), 0);
	acme_directory_clear(&d);
	free(body);

	/* a body over ACME_MAX_BODY is refused before parsing */
	n = ACME_MAX_BODY + 1;
	body = xmalloc(n);
	memset(body, ' ', n);
	memcpy(body,
	       "{\"newNonce\":\"https://c/n\",\"newAccount\":"
	       "\"https://c/a\",\"newOrder\":\"https://c/o\"}",
	       strlen("{\"newNonce\":\"https://c/n\",\"newAccount\":"
		      "\"https://c/a\",\"newOrder\":\"https://c/o\"}"));
	assert_int_equal(acme_directory_parse(body, n, &d, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "larger"));
	assert_int_equal(
	    acme_directory_parse(body, n - 1, &d, err, sizeof(err)), 0);
	acme_directory_clear(&d);
	free(body);

	/* many profiles: capped */
	body = xmalloc(64 * 1024);
	n = (size_t)snprintf(body, 64 * 1024,
			     "{\"newNonce\":\"https://c/n\",\"newAccount\":"
			     "\"https://c/a\",\"newOrder\":\"https://c/o\","
			     "\"meta\":{\"profiles\":{");
	for (i = 0; i < 500; i++)
		n += (size_t)snprintf(body + n, 64 * 1024 - n,
				      "%s\"p%zu\":\"x\"", i ? "," : "", i);
	n += (size_t)snprintf(body + n, 64 * 1024 - n, "}}}");
	assert_int_equal(acme_directory_parse(body, n, &d, err, sizeof(err)),
			 0);
	assert_true(d.n_profiles > 0 && d.n_profiles <= 64);
	acme_directory_clear(&d);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_letsencrypt_shape),
	    cmocka_unit_test(test_pebble_shape),
	    cmocka_unit_test(test_minimal),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
