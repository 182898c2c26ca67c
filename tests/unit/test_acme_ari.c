/*
 * Unit tests for acme_ari: the RFC 9773 certificate identifier (the RFC's
 * own example, rebuilt as a real certificate with OpenSSL, and serials
 * with and without the high bit), the strict RFC 3339 parser, the
 * renewalInfo body parser, and the fetch machine driven with hand-written
 * CA responses and a fake clock.
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
#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "crypto/crypto.h"
#include "util/util.h"

#define CA "https://pebble.test:14000"
#define ARI_URL CA "/draft-ietf-acme-ari-03/renewalInfo"
/* 2025-01-01T00:00:00Z */
#define T0 INT64_C(1735689600000)

/* The RFC 9773 §4.1 example: keyIdentifier and serial (0x87654321). */
static const unsigned char rfc_kid[] = {
    0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
    0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
static const unsigned char rfc_serial[] = {0x87, 0x65, 0x43, 0x21};
static const char rfc_certid[] = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

/* ---- certificates ----------------------------------------------------- */

/*
 * A self-signed P-256 certificate with serial (big-endian magnitude) and,
 * when kid is non-NULL, an AKI holding that keyIdentifier (kid_len 0: an
 * AKI without keyIdentifier). DER, malloc'd.
 */
static unsigned char *mk_cert(const unsigned char *serial, size_t serial_len,
			      const unsigned char *kid, size_t kid_len,
			      size_t *der_len)
{
	EVP_PKEY *key = key_generate(KEY_ECDSA_P256);
	X509 *x = X509_new();
	BIGNUM *bn = BN_bin2bn(serial, (int)serial_len, NULL);
	ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, NULL);
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(key);
	assert_non_null(x);
	assert_non_null(sn);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(X509_set_serialNumber(x, sn), 1);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"ari.test", -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	if (kid) {
		AUTHORITY_KEYID *ak = AUTHORITY_KEYID_new();

		assert_non_null(ak);
		if (kid_len) {
			ak->keyid = ASN1_OCTET_STRING_new();
			assert_non_null(ak->keyid);
			assert_int_equal(ASN1_OCTET_STRING_set(ak->keyid, kid,
							       (int)kid_len),
					 1);
		}
		assert_int_equal(X509_add1_ext_i2d(x,
						   NID_authority_key_identifier,
						   ak, 0, X509V3_ADD_DEFAULT),
				 1);
		AUTHORITY_KEYID_free(ak);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	*der_len = (size_t)n;
	X509_NAME_free(name);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(key);
	/* hand back plain malloc'd bytes */
	{
		unsigned char *copy = malloc(*der_len);
		assert_non_null(copy);
		memcpy(copy, der, *der_len);
		OPENSSL_free(der);
		return copy;
	}
}

static void certid_of(const unsigned char *serial, size_t serial_len,
		      const unsigned char *kid, size_t kid_len, char *out,
		      size_t outsz, int want_rc)
{
	size_t len;
	unsigned char *der = mk_cert(serial, serial_len, kid, kid_len, &len);

	assert_int_equal(acme_ari_certid(der, len, out, outsz), want_rc);
	free(der);
}

static void t_certid_rfc_example(void **state)
{
	char id[ACME_ARI_CERTID_MAX];

	(void)state;
	certid_of(rfc_serial, sizeof(rfc_serial), rfc_kid, sizeof(rfc_kid), id,
		  sizeof(id), 0);
	assert_string_equal(id, rfc_certid);
}

/* "<b64url(kid)>.<b64url(content)>" computed independently. */
static void expect_id(const char *id, const unsigned char *kid, size_t kn,
		      const unsigned char *content, size_t cn)
{
	char *a = b64url_encode(kid, kn), *b = b64url_encode(content, cn);
	char want[ACME_ARI_CERTID_MAX];

	snprintf(want, sizeof(want), "%s.%s", a, b);
	assert_string_equal(id, want);
	free(a);
	free(b);
}

static void t_certid_serials(void **state)
{
	static const unsigned char kid[] = {0xfb, 0xff, 0xbf, 0x01};
	unsigned char big[20], big_content[21];
	static const unsigned char low[] = {0x01, 0x23, 0x45};
	static const unsigned char seven_f[] = {0x7f};
	static const unsigned char eighty[] = {0x80};
	static const unsigned char eighty_content[] = {0x00, 0x80};
	char id[ACME_ARI_CERTID_MAX];

	(void)state;
	/* No high bit: the content is the serial itself. */
	certid_of(low, sizeof(low), kid, sizeof(kid), id, sizeof(id), 0);
	expect_id(id, kid, sizeof(kid), low, sizeof(low));
	assert_string_equal(id, "-_-_AQ.ASNF");
	certid_of(seven_f, 1, kid, sizeof(kid), id, sizeof(id), 0);
	assert_string_equal(strchr(id, '.'), ".fw");
	/* High bit set: DER adds 0x00, and so does the identifier. */
	certid_of(eighty, 1, kid, sizeof(kid), id, sizeof(id), 0);
	expect_id(id, kid, sizeof(kid), eighty_content, 2);
	assert_string_equal(strchr(id, '.'), ".AIA");
	/* A full 20-octet serial with the high bit (what CAs issue). */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(0xf0 - i);
	big_content[0] = 0;
	memcpy(big_content + 1, big, sizeof(big));
	certid_of(big, sizeof(big), rfc_kid, sizeof(rfc_kid), id, sizeof(id),
		  0);
	expect_id(id, rfc_kid, sizeof(rfc_kid), big_content,
		  sizeof(big_content));
	assert_int_equal(strlen(strchr(id, '.') + 1), 28);
}

static void t_certid_errors(void **state)
{
	char id[ACME_ARI_CERTID_MAX];
	unsigned char *der, *more;
	size_t len;

	(void)state;
	/* No AKI at all, and an AKI without keyIdentifier. */
	certid_of(rfc_serial, sizeof(rfc_serial), NULL, 0, id, sizeof(id),
		  -ENOENT);
	certid_of(rfc_serial, sizeof(rfc_serial), rfc_kid, 0, id, sizeof(id),
		  -ENOENT);
	/* Too small a buffer: the full id is 35 chars + NUL. */
	certid_of(rfc_serial, sizeof(rfc_serial), rfc_kid, sizeof(rfc_kid),
		  id, 35, -ENOSPC);
	assert_string_equal(id, "");
	certid_of(rfc_serial, sizeof(rfc_serial), rfc_kid, sizeof(rfc_kid),
		  id, 36, 0);
	/* Not a certificate; a certificate with a trailing byte; cut. */
	assert_int_equal(acme_ari_certid((const unsigned char *)"\x30\x03xyz",
					 5, id, sizeof(id)),
			 -EINVAL);
	assert_int_equal(acme_ari_certid(NULL, 0, id, sizeof(id)), -EINVAL);
	der = mk_cert(rfc_serial, sizeof(rfc_serial), rfc_kid,
		      sizeof(rfc_kid), &len);
	more = malloc(len + 1);
	assert_non_null(more);
	memcpy(more, der, len);
	more[len] = 0;
	assert_int_equal(acme_ari_certid(more, len + 1, id, sizeof(id)),
			 -EINVAL);
	assert_int_equal(acme_ari_certid(der, len - 1, id, sizeof(id)),
			 -EINVAL);
	free(more);
	free(der);
}

/* ---- RFC 3339 ------------------------------------------------------------ */

static void t_time_parse(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
	    {"1970-01-01T00:00:00Z", 0},
	    {"2025-01-01T00:00:00Z", T0},
	    {"2025-01-01t00:00:00z", T0},
	    {"2025-01-01T01:00:00+01:00", T0},
	    {"2024-12-31T19:30:00-04:30", T0},
	    {"2025-01-01T00:00:00.5Z", T0 + 500},
	    {"2025-01-01T00:00:00.123Z", T0 + 123},
	    {"2025-01-01T00:00:00.123999999999Z", T0 + 123},
	    {"2025-01-01T00:00:00.000001Z", T0},
	    {"2024-02-29T12:00:00Z", INT64_C(1709208000000)},
	    {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
	    /* a leap second is the next minute's first second */
	    {"2016-12-31T23:59:60Z", INT64_C(1483228800000)},
	    {"1985-04-12T23:20:50.52Z", INT64_C(482196050520)}, /* §5.8 */
	    {"1996-12-19T16:39:57-08:00", INT64_C(851042397000)}, /* §5.8 */
	    {"9999-12-31T23:59:59Z", INT64_C(253402300799000)},
	    {"0001-01-01T00:00:00Z", INT64_C(-62135596800000)},
	};
	static const char *const bad[] = {
	    "",
	    "2025-01-01",
	    "2025-01-01T00:00:00",       /* no offset */
	    "2025-01-01 00:00:00Z",      /* space separator */
	    "2025-01-01T00:00Z",         /* no seconds */
	    "2025-1-01T00:00:00Z",
	    "25-01-01T00:00:00Z",
	    "2025-13-01T00:00:00Z",
	    "2025-00-01T00:00:00Z",
	    "2025-01-00T00:00:00Z",
	    "2025-01-32T00:00:00Z",
	    "2025-02-29T00:00:00Z",      /* not a leap year */
	    "1900-02-29T00:00:00Z",      /* century, not a leap year */
	    "2025-04-31T00:00:00Z",
	    "2025-01-01T24:00:00Z",
	    "2025-01-01T00:60:00Z",
	    "2025-01-01T00:00:61Z",
	    "2025-01-01T00:00:00.Z",     /* empty fraction */
	    "2025-01-01T00:00:00,5Z",
	    "2025-01-01T00:00:00+0100",
	    "2025-01-01T00:00:00+01",
	    "2025-01-01T00:00:00+24:00",
	    "2025-01-01T00:00:00+01:60",
	    "2025-01-01T00:00:00ZZ",
	    "2025-01-01T00:00:00Z ",
	    " 2025-01-01T00:00:00Z",
	    "2025-01-01T00:00:00UTC",
	    "+2025-01-01T00:00:00Z",
	    "0000-01-01T00:00:00Z",
	    "2025-01-01T00:00:00.12345678901234567890123456789012345678901234567Z", /* > 64 bytes */
	    "2025-0a-01T00:00:00Z",
	    "2025-01-01T00:00:00-00:0x",
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -1;
		if (acme_ari_time_parse(good[i].s, strlen(good[i].s), &ms) != 0 ||
		    ms != good[i].ms)
			fail_msg("\"%s\": got %lld, want %lld", good[i].s,
				 (long long)ms, (long long)good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (acme_ari_time_parse(bad[i], strlen(bad[i]), &ms) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	/* Length is honoured: a valid prefix of a longer buffer. */
	assert_int_equal(acme_ari_time_parse("2025-01-01T00:00:00Zjunk", 20,
					     &ms),
			 0);
	assert_int_equal(ms, T0);
	assert_int_equal(acme_ari_time_parse("2025-01-01T00:00:00Z", 19, &ms),
			 -EINVAL);
}

static void t_time_format(void **state)
{
	char buf[40];
	int64_t ms;

	(void)state;
	assert_int_equal(acme_ari_time_format(T0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2025-01-01T00:00:00Z");
	assert_int_equal(acme_ari_time_format(T0 + 7, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2025-01-01T00:00:00.007Z");
	assert_int_equal(acme_ari_time_parse(buf, strlen(buf), &ms), 0);
	assert_int_equal(ms, T0 + 7);
	assert_int_equal(acme_ari_time_format(-1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	assert_int_equal(acme_ari_time_format(T0, buf, 20), -ENOSPC);
	assert_int_equal(acme_ari_time_format(T0, buf, 21), 0);
}

/* ---- the body ------------------------------------------------------------- */

static void t_parse_good(void **state)
{
	struct acme_ari a = {0};
	char err[256];

	(void)state;
	assert_int_equal(
	    acme_ari_parse("{\"suggestedWindow\":{\"start\":"
			   "\"2025-01-02T00:00:00Z\",\"end\":"
			   "\"2025-01-03T00:00:00.250+00:00\"},"
			   "\"explanationURL\":\"https://ca.test/why?x=1\","
			   "\"future\":[1,2]}",
			   15, &a, err, sizeof(err)),
	    -EINVAL); /* len is honoured: the first 15 bytes do not parse */
	{
		const char *b =
		    "{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\","
		    "\"end\":\"2025-01-03T00:00:00.250+00:00\"},"
		    "\"explanationURL\":\"https://ca.test/why?x=1\","
		    "\"future\":[1,2]}";
		assert_int_equal(acme_ari_parse(b, strlen(b), &a, err,
						sizeof(err)),
				 0);
	}
	assert_int_equal(a.start_ms, T0 + 86400000);
	assert_int_equal(a.end_ms, T0 + 2 * 86400000 + 250);
	assert_int_equal(a.retry_after_ms, -1);
	assert_string_equal(a.explanation_url, "https://ca.test/why?x=1");
	acme_ari_clear(&a);
	assert_null(a.explanation_url);
	{
		const char *b = "{\"suggestedWindow\":{\"end\":"
				"\"2025-01-03T00:00:01Z\",\"start\":"
				"\"2025-01-02T23:00:00-01:00\"}}";
		assert_int_equal(acme_ari_parse(b, strlen(b), &a, NULL, 0), 0);
		assert_int_equal(a.start_ms, T0 + 2 * 86400000);
		assert_int_equal(a.end_ms, T0 + 2 * 86400000 + 1000);
	}
	acme_ari_clear(&a);
	acme_ari_clear(NULL);
}

static void t_parse_bad(void **state)
{
	static const struct {
		const char *body;
		const char *why; /* substring of the reason */
	} bad[] = {
	    {"", "empty"},
	    {"[]", "not a JSON object"},
	    {"{", "not a JSON object"},
	    {"{}", "suggestedWindow"},
	    {"{\"suggestedWindow\":[]}", "suggestedWindow"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\"}}",
	     "end is missing"},
	    {"{\"suggestedWindow\":{\"start\":1,\"end\":2}}",
	     "start is not a string"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"}}",
	     "start is not an RFC 3339"},
	    /* end == start and end < start (§4.2: invalid window) */
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-02T00:00:00Z\"}}",
	     "ends before or when"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-03T00:00:00Z\",\"end\":"
	     "\"2025-01-02T00:00:00Z\"}}",
	     "ends before or when"},
	    /* absurd */
	    {"{\"suggestedWindow\":{\"start\":\"1999-12-31T23:59:59Z\",\"end\":"
	     "\"2025-01-02T00:00:00Z\"}}",
	     "outside"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2200-01-01T00:00:00Z\"}}",
	     "outside"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"9999-01-01T00:00:00Z\"}}",
	     "outside"},
	    /* duplicate member */
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\",\"end\":\"2025-01-04T00:00:00Z\"}}",
	     "not a JSON object"},
	    /* explanationURL */
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"},\"explanationURL\":7}",
	     "explanationURL"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"},\"explanationURL\":\"javascript:x\"}",
	     "explanationURL"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"},\"explanationURL\":\"https://a b\"}",
	     "explanationURL"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"},\"explanationURL\":\"https://\"}",
	     "explanationURL"},
	    {"{\"suggestedWindow\":{\"start\":\"2025-01-02T00:00:00Z\",\"end\":"
	     "\"2025-01-03T00:00:00Z\"},\"explanationURL\":\"https://x\\n\"}",
	     "explanationURL"},
	};
	struct acme_ari a = {0};
	char err[256], *big;
	size_t n = ACME_ARI_MAX_BODY + 1;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = acme_ari_parse(bad[i].body, strlen(bad[i].body), &a,
					err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, bad[i].why))
			fail_msg("%s: rc %d, \"%s\" (want \"%s\")", bad[i].body,
				 rc, err, bad[i].why);
		assert_null(a.explanation_url);
	}
	/* Oversized, even if it would parse. */
	big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	assert_int_equal(acme_ari_parse(big, n, &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too large"));
	free(big);
}

/* ---- the machine --------------------------------------------------------- */

static char hdr_buf[4096];

static struct acme_response mk_res(long status, const char *extra,
				   const char *body)
{
	struct acme_response r = {0};
	int n = snprintf(hdr_buf, sizeof(hdr_buf),
			 "HTTP/1.1 %ld\r\nContent-Type: application/json\r\n%s"
			 "\r\n",
			 status, extra ? extra : "");

	assert_true(n > 0 && (size_t)n < sizeof(hdr_buf));
	r.status = status;
	r.headers = hdr_buf;
	r.headers_len = (size_t)n;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	return r;
}

/* A client that fetched a directory whose renewalInfo is ari_url (NULL:
 * none). Only the directory: ARI needs no account. */
static struct acme_client *dir_client(EVP_PKEY **key, const char *ari_url)
{
	struct acme_client_opts co = {.directory_url = CA "/dir"};
	struct acme_client *c;
	struct acme_request req;
	struct acme_response r;
	char dir[1024];
	int64_t w;

	*key = key_generate(KEY_ECDSA_P256);
	assert_non_null(*key);
	c = acme_client_new(*key, &co);
	assert_non_null(c);
	assert_int_equal(acme_client_next(c, T0, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	snprintf(dir, sizeof(dir),
		 "{\"newNonce\":\"" CA "/nonce-plz\",\"newAccount\":\"" CA
		 "/sign-me-up\",\"newOrder\":\"" CA "/order-plz\","
		 "\"revokeCert\":\"" CA "/revoke-cert\",\"keyChange\":\"" CA
		 "/rollover\"%s%s%s}",
		 ari_url ? ",\"renewalInfo\":\"" : "", ari_url ? ari_url : "",
		 ari_url ? "\"" : "");
	r = mk_res(200, NULL, dir);
	assert_int_equal(acme_client_feed(c, &r, T0), 0);
	assert_non_null(acme_client_directory(c));
	return c;
}

static const char good_body[] =
    "{\"suggestedWindow\":{\"start\":\"2025-02-01T00:00:00Z\","
    "\"end\":\"2025-02-03T00:00:00Z\"}}";

static void t_op_get(void **state)
{
	EVP_PKEY *key;
	struct acme_client *c = dir_client(&key, ARI_URL);
	struct acme_ari_op *op;
	struct acme_request req;
	struct acme_response r;
	struct acme_ari a = {0};
	int64_t w = 0;

	(void)state;
	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_SEND);
	assert_int_equal(req.method, ACME_GET);
	assert_string_equal(req.url, ARI_URL "/" "aYhba4dGQEHhs3uEe6CuLN4ByNQ."
					     "AIdlQyE");
	assert_null(req.body);
	assert_int_equal(req.body_len, 0);
	assert_string_equal(acme_ari_op_url(op), req.url);
	acme_request_clear(&req);
	assert_int_equal(acme_ari_op_result(op, &a), -EINVAL); /* not done */
	r = mk_res(200, "Retry-After: 21600\r\n", good_body);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_DONE);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), -EINVAL);
	assert_int_equal(acme_ari_op_result(op, &a), 0);
	assert_int_equal(a.start_ms, T0 + 31 * INT64_C(86400000));
	assert_int_equal(a.end_ms, T0 + 33 * INT64_C(86400000));
	assert_int_equal(a.retry_after_ms, 21600 * INT64_C(1000));
	assert_null(a.explanation_url);
	acme_ari_clear(&a);
	acme_ari_op_free(op);
	acme_client_free(c);
	EVP_PKEY_free(key);
}

static void t_op_retry_after_forms(void **state)
{
	EVP_PKEY *key;
	struct acme_client *c = dir_client(&key, CA "/ari/");
	struct acme_ari_op *op;
	struct acme_request req;
	struct acme_response r;
	struct acme_ari a = {0};
	int64_t w;

	(void)state;
	/* A trailing slash in the directory's URL is not doubled. */
	assert_int_equal(acme_ari_op_new(c, "AAAA.AQ", &op), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_SEND);
	assert_string_equal(req.url, CA "/ari/AAAA.AQ");
	acme_request_clear(&req);
	/* HTTP-date form, one hour after T0. */
	r = mk_res(200, "Retry-After: Wed, 01 Jan 2025 01:00:00 GMT\r\n",
		   good_body);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), 0);
	assert_int_equal(acme_ari_op_result(op, &a), 0);
	assert_int_equal(a.retry_after_ms, 3600 * INT64_C(1000));
	acme_ari_clear(&a);
	acme_ari_op_free(op);

	/* Unreadable Retry-After: none. */
	assert_int_equal(acme_ari_op_new(c, "AAAA.AQ", &op), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(200, "Retry-After: soon\r\n", good_body);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), 0);
	assert_int_equal(acme_ari_op_result(op, &a), 0);
	assert_int_equal(a.retry_after_ms, -1);
	acme_ari_clear(&a);
	acme_ari_op_free(op);
	acme_client_free(c);
	EVP_PKEY_free(key);
}

static void t_op_new_errors(void **state)
{
	struct acme_client_opts co = {.directory_url = CA "/dir"};
	EVP_PKEY *key;
	struct acme_client *c = dir_client(&key, NULL), *fresh;
	struct acme_ari_op *op = (struct acme_ari_op *)1;

	(void)state;
	/* The CA has no renewalInfo: refused before any request. */
	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), -ENOTSUP);
	assert_null(op);
	acme_client_free(c);
	EVP_PKEY_free(key);
	c = dir_client(&key, ARI_URL);
	assert_int_equal(acme_ari_op_new(c, "nodot", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, "a.b.c", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, ".AQ", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, "AQ.", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, "A/Q.AQ", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, "AQ==.AQ", &op), -EINVAL);
	assert_int_equal(acme_ari_op_new(c, NULL, &op), -EINVAL);
	assert_null(op);
	/* No directory yet. */
	fresh = acme_client_new(key, &co);
	assert_non_null(fresh);
	assert_int_equal(acme_ari_op_new(fresh, rfc_certid, &op), -EAGAIN);
	acme_client_free(fresh);
	acme_client_free(c);
	EVP_PKEY_free(key);
}

/* Run one fetch to its end with the given answer; returns the op. */
static struct acme_ari_op *fetch(struct acme_client *c, long status,
				 const char *extra, const char *body,
				 enum acme_step want)
{
	struct acme_ari_op *op;
	struct acme_request req;
	struct acme_response r;
	int64_t w;

	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(status, extra, body);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), want);
	return op;
}

static void t_op_failures(void **state)
{
	EVP_PKEY *key;
	struct acme_client *c = dir_client(&key, ARI_URL);
	const struct acme_error *e;
	struct acme_ari_op *op;
	struct acme_ari a = {0};
	char buf[512];

	(void)state;
	/* 404 with a problem document: the CA does not know the cert. */
	op = fetch(c, 404, "Content-Type: application/problem+json\r\n",
		   "{\"type\":\"urn:ietf:params:acme:error:malformed\","
		   "\"detail\":\"Certificate not found\",\"status\":404}",
		   ACME_STEP_FAILED);
	e = acme_ari_op_error(op);
	assert_int_equal(e->code, ACME_E_PROBLEM);
	assert_int_equal(e->status, 404);
	assert_string_equal(e->type, "malformed");
	assert_string_equal(e->step, "renewalInfo");
	assert_non_null(strstr(acme_error_str(e, buf, sizeof(buf)),
			       "Certificate not found"));
	assert_int_equal(acme_ari_op_result(op, &a), -EINVAL);
	acme_ari_op_free(op);
	/* 404 without a body. */
	op = fetch(c, 404, NULL, NULL, ACME_STEP_FAILED);
	e = acme_ari_op_error(op);
	assert_int_equal(e->code, ACME_E_PROTOCOL);
	assert_int_equal(e->status, 404);
	acme_ari_op_free(op);
	/* rateLimited keeps its Retry-After. */
	op = fetch(c, 429, "Retry-After: 120\r\n",
		   "{\"type\":\"urn:ietf:params:acme:error:rateLimited\","
		   "\"detail\":\"slow down\",\"status\":429}",
		   ACME_STEP_FAILED);
	e = acme_ari_op_error(op);
	assert_string_equal(e->type, "rateLimited");
	assert_int_equal(e->retry_after_ms, 120000);
	acme_ari_op_free(op);
	/* 200 with a bad window. */
	op = fetch(c, 200, NULL,
		   "{\"suggestedWindow\":{\"start\":\"2025-02-03T00:00:00Z\","
		   "\"end\":\"2025-02-01T00:00:00Z\"}}",
		   ACME_STEP_FAILED);
	e = acme_ari_op_error(op);
	assert_int_equal(e->code, ACME_E_PROTOCOL);
	assert_non_null(strstr(e->detail, "suggestedWindow"));
	acme_ari_op_free(op);
	acme_client_free(c);
	EVP_PKEY_free(key);
}

static void t_op_transient(void **state)
{
	EVP_PKEY *key;
	struct acme_client *c = dir_client(&key, ARI_URL);
	struct acme_ari_op *op;
	struct acme_request req;
	struct acme_response r;
	int64_t w, now = T0;

	(void)state;
	/* 503, no answer, 500: backed off 1, 2, 4 s; then a 200. */
	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(acme_ari_op_next(op, now, &req, &w),
				 ACME_STEP_SEND);
		acme_request_clear(&req);
		r = mk_res(i == 0 ? 503 : 500, NULL, NULL);
		if (i == 1) {
			r.status = 0;
			r.transport_error = "connection refused";
		}
		assert_int_equal(acme_ari_op_feed(op, &r, now), 0);
		assert_int_equal(acme_ari_op_next(op, now, &req, &w),
				 ACME_STEP_WAIT);
		assert_int_equal(w, now + (1000 << i));
		assert_int_equal(acme_ari_op_next(op, w - 1, &req, &w),
				 ACME_STEP_WAIT);
		now = w;
	}
	assert_int_equal(acme_ari_op_next(op, now, &req, &w), ACME_STEP_SEND);
	assert_int_equal(req.method, ACME_GET);
	acme_request_clear(&req);
	r = mk_res(200, NULL, good_body);
	assert_int_equal(acme_ari_op_feed(op, &r, now), 0);
	assert_int_equal(acme_ari_op_next(op, now, &req, &w), ACME_STEP_DONE);
	acme_ari_op_free(op);

	/* A fourth transient failure fails the op. */
	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), 0);
	now = T0;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(acme_ari_op_next(op, now, &req, &w),
				 ACME_STEP_SEND);
		acme_request_clear(&req);
		r = mk_res(502, NULL, NULL);
		assert_int_equal(acme_ari_op_feed(op, &r, now), 0);
		now += 10000;
	}
	assert_int_equal(acme_ari_op_next(op, now, &req, &w),
			 ACME_STEP_FAILED);
	assert_int_equal(acme_ari_op_error(op)->status, 502);
	/* Feeding while waiting is refused. */
	acme_ari_op_free(op);
	assert_int_equal(acme_ari_op_new(c, rfc_certid, &op), 0);
	assert_int_equal(acme_ari_op_next(op, T0, &req, &w), ACME_STEP_SEND);
	acme_request_clear(&req);
	r = mk_res(503, NULL, NULL);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), 0);
	assert_int_equal(acme_ari_op_feed(op, &r, T0), -EINVAL);
	acme_ari_op_free(op);
	acme_ari_op_free(NULL);
	acme_client_free(c);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(t_certid_rfc_example),
	    cmocka_unit_test(t_certid_serials),
	    cmocka_unit_test(t_certid_errors),
	    cmocka_unit_test(t_time_parse),
	    cmocka_unit_test(t_time_format),
	    cmocka_unit_test(t_parse_good),
	    cmocka_unit_test(t_parse_bad),
	    cmocka_unit_test(t_op_get),
	    cmocka_unit_test(t_op_retry_after_forms),
	    cmocka_unit_test(t_op_new_errors),
	    cmocka_unit_test(t_op_failures),
	    cmocka_unit_test(t_op_transient),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
