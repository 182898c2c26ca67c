/*
 * Unit tests for acme_hdr: header lookup in raw blocks as libcurl hands
 * them (CRLF or LF, status lines, several blocks, repeats, folding,
 * junk), Retry-After in all its forms, and RFC 8288 Link values.
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

static int get(const char *blk, const char *name, int idx, char *out,
	       size_t outsz)
{
	return acme_hdr_get(blk, strlen(blk), name, idx, out, outsz);
}

static void test_hdr_crlf_and_lf(void **state)
{
	static const char *const blocks[] = {
	    "HTTP/2 201 \r\n"
	    "server: nginx\r\n"
	    "content-type: application/json\r\n"
	    "replay-nonce: Ab_c-123\r\n"
	    "Location:   https://ca.example/acme/acct/1  \r\n"
	    "\r\n",
	    "HTTP/1.1 201 Created\n"
	    "Replay-Nonce:Ab_c-123\n"
	    "location: https://ca.example/acme/acct/1\n"
	    "\n",
	    /* no status line, no final empty line */
	    ("Replay-Nonce: Ab_c-123\r\n"
	     "Location: https://ca.example/acme/acct/1"),
	};
	char v[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
		assert_int_equal(
		    get(blocks[i], "Replay-Nonce", 0, v, sizeof(v)), 8);
		assert_string_equal(v, "Ab_c-123");
		assert_int_equal(get(blocks[i], "LOCATION", 0, v, sizeof(v)),
				 (int)strlen("https://ca.example/acme/acct/1"));
		assert_string_equal(v, "https://ca.example/acme/acct/1");
		assert_int_equal(get(blocks[i], "Retry-After", 0, v, sizeof(v)),
				 -ENOENT);
	}
}

static void test_hdr_last_block(void **state)
{
	const char *blk = "HTTP/1.1 100 Continue\r\n"
			  "X-Early: yes\r\n"
			  "\r\n"
			  "HTTP/1.1 200 Connection established\r\n"
			  "Replay-Nonce: proxy-nonce\r\n"
			  "\r\n"
			  "HTTP/1.1 201 Created\r\n"
			  "Replay-Nonce: real-nonce\r\n"
			  "\r\n";
	/* A driver that drops status lines still leaves the separators. */
	const char *nostatus = "Replay-Nonce: first\n"
			       "\n"
			       "Replay-Nonce: second\n"
			       "\n";
	char v[64];

	(void)state;
	assert_int_equal(get(blk, "Replay-Nonce", 0, v, sizeof(v)), 10);
	assert_string_equal(v, "real-nonce");
	assert_int_equal(get(blk, "Replay-Nonce", 1, v, sizeof(v)), -ENOENT);
	assert_int_equal(get(blk, "X-Early", 0, v, sizeof(v)), -ENOENT);
	assert_int_equal(get(nostatus, "Replay-Nonce", 0, v, sizeof(v)), 6);
	assert_string_equal(v, "second");
}

static void test_hdr_repeated(void **state)
{
	const char *blk =
	    "HTTP/1.1 200 OK\r\n"
	    "Link: <https://ca.example/dir>;rel=\"index\"\r\n"
	    "Content-Type: application/pem-certificate-chain\r\n"
	    "link: <https://ca.example/cert/1/1>;rel=\"alternate\"\r\n"
	    "LINK: <https://ca.example/cert/1/2>;rel=\"alternate\"\r\n"
	    "\r\n";
	char v[128];

	(void)state;
	assert_true(get(blk, "Link", 0, v, sizeof(v)) > 0);
	assert_string_equal(v, "<https://ca.example/dir>;rel=\"index\"");
	assert_true(get(blk, "Link", 1, v, sizeof(v)) > 0);
	assert_string_equal(v,
			    "<https://ca.example/cert/1/1>;rel=\"alternate\"");
	assert_true(get(blk, "Link", 2, v, sizeof(v)) > 0);
	assert_string_equal(v,
			    "<https://ca.example/cert/1/2>;rel=\"alternate\"");
	assert_int_equal(get(blk, "Link", 3, v, sizeof(v)), -ENOENT);
	assert_int_equal(get(blk, "Link", -1, v, sizeof(v)), -EINVAL);
}

static void test_hdr_malformed(void **state)
{
	char v[16];
	const char *blk =
	    "HTTP/1.1 200 OK\r\n"
	    "Replay-Nonce : spaced\r\n" /* space before colon: ignored */
	    "Replay-Nonce-X: other\r\n" /* longer name: no match */
	    "no colon at all\r\n"
	    "Evil: a\rb\r\n" /* bare CR inside a value */
	    "Ctl: a\x01z\r\n"
	    "Empty:\r\n"
	    "Long: 0123456789abcdef\r\n" /* does not fit in v */
	    "Folded: one\r\n"
	    "  two\r\n"
	    "\tthree\r\n"
	    "\r\n";
	char big[32];

	(void)state;
	assert_int_equal(get(blk, "Replay-Nonce", 0, v, sizeof(v)), -ENOENT);
	assert_int_equal(get(blk, "Evil", 0, v, sizeof(v)), -EINVAL);
	assert_int_equal(get(blk, "Ctl", 0, v, sizeof(v)), -EINVAL);
	assert_int_equal(get(blk, "Empty", 0, v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(get(blk, "Long", 0, v, sizeof(v)), -EINVAL);
	assert_int_equal(get(blk, "Long", 0, big, sizeof(big)), 16);
	assert_int_equal(get(blk, "Folded", 0, big, sizeof(big)), 13);
	assert_string_equal(big, "one two three");
	/* exactly fitting: 16 chars need 17 bytes */
	assert_int_equal(get(blk, "Long", 0, big, 16), -EINVAL);
	assert_int_equal(get(blk, "Long", 0, big, 17), 16);

	/* bad arguments and bounds */
	assert_int_equal(acme_hdr_get(NULL, 0, "X", 0, v, sizeof(v)), -ENOENT);
	assert_int_equal(acme_hdr_get(NULL, 5, "X", 0, v, sizeof(v)), -EINVAL);
	assert_int_equal(acme_hdr_get(blk, strlen(blk), "", 0, v, sizeof(v)),
			 -EINVAL);
	assert_int_equal(acme_hdr_get(blk, strlen(blk), "X", 0, v, 0), -EINVAL);
	assert_int_equal(
	    acme_hdr_get(blk, ACME_MAX_HEADERS + 1, "X", 0, v, sizeof(v)),
	    -EINVAL);
}

static void test_hdr_not_terminated(void **state)
{
	/* The block is a (pointer, length) pair, not a C string: nothing
	 * past len may be read. */
	char buf[] = "Replay-Nonce: abcdefXXXXXXXX";
	char v[32];

	(void)state;
	assert_int_equal(acme_hdr_get(buf, 20, "Replay-Nonce", 0, v, sizeof(v)),
			 6);
	assert_string_equal(v, "abcdef");
}

static void test_retry_after_delta(void **state)
{
	int64_t ms = -7;

	(void)state;
	assert_int_equal(acme_retry_after_parse("120", 0, &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(acme_retry_after_parse(" 0 ", 0, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(acme_retry_after_parse("86400", 0, &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(acme_retry_after_parse("86401", 0, &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(
	    acme_retry_after_parse("99999999999999999999999999999999", 0, &ms),
	    0);
	assert_int_equal(ms, 86400000);

	ms = -7;
	assert_int_equal(acme_retry_after_parse("-5", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("+5", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("1.5", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("5s", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("   ", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("soon", 0, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse(NULL, 0, &ms), -EINVAL);
	assert_int_equal(ms, -7); /* untouched on error */
}

static void test_retry_after_date(void **state)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example) */
	const int64_t t = 784111777;
	int64_t ms = -7;

	(void)state;
	assert_int_equal(acme_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT",
						t - 30, &ms),
			 0);
	assert_int_equal(ms, 30000);
	/* obsolete forms, which recipients must accept */
	assert_int_equal(acme_retry_after_parse(
			     "Sunday, 06-Nov-94 08:49:37 GMT", t - 30, &ms),
			 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(
	    acme_retry_after_parse("Sun Nov  6 08:49:37 1994", t - 30, &ms), 0);
	assert_int_equal(ms, 30000);
	/* in the past: now */
	assert_int_equal(acme_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT",
						t + 999, &ms),
			 0);
	assert_int_equal(ms, 0);
	/* far future: clamped */
	assert_int_equal(
	    acme_retry_after_parse("Sat, 01 Jan 2050 00:00:00 GMT", t, &ms), 0);
	assert_int_equal(ms, 86400000);
	/* leap day and end of century */
	assert_int_equal(acme_retry_after_parse("Tue, 29 Feb 2000 00:00:10 GMT",
						951782400, &ms),
			 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(acme_retry_after_parse("Tue, 31 Dec 2069 23:59:59 GMT",
						3155759999 - 1, &ms),
			 0);
	assert_int_equal(ms, 1000);

	ms = -7;
	assert_int_equal(
	    acme_retry_after_parse("Sun, 06 Nov 1994 08:49:37 UTC", t, &ms),
	    -EINVAL);
	assert_int_equal(
	    acme_retry_after_parse("Sun, 31 Feb 1994 08:49:37 GMT", t, &ms),
	    -EINVAL);
	assert_int_equal(
	    acme_retry_after_parse("Sun, 29 Feb 1900 08:49:37 GMT", t, &ms),
	    -EINVAL);
	assert_int_equal(
	    acme_retry_after_parse("Sun, 06 Nov 1994 24:00:00 GMT", t, &ms),
	    -EINVAL);
	assert_int_equal(
	    acme_retry_after_parse("Sun, 6 Nov 1994 08:49:37 GMT", t, &ms),
	    -EINVAL);
	assert_int_equal(acme_retry_after_parse(
			     "Sun, 06 Nov 1994 08:49:37 GMT trailing", t, &ms),
			 -EINVAL);
	assert_int_equal(acme_retry_after_parse("Sun", t, &ms), -EINVAL);
	assert_int_equal(acme_retry_after_parse("Sun, 06 Nov", t, &ms),
			 -EINVAL);
	assert_int_equal(
	    acme_retry_after_parse("Xyz, 06 Nov 1994 08:49:37 GMT", t, &ms),
	    -EINVAL);
	assert_int_equal(ms, -7);
}

struct links {
	int n;
	char url[8][128];
	char rel[8][64];
};

static void link_cb(void *ctx, const char *url, const char *rel)
{
	struct links *l = ctx;

	assert_true(l->n < 8);
	snprintf(l->url[l->n], sizeof(l->url[0]), "%s", url);
	snprintf(l->rel[l->n], sizeof(l->rel[0]), "%s", rel);
	l->n++;
}

static void test_link_basic(void **state)
{
	struct links l = {0};

	(void)state;
	/* Let's Encrypt's shape */
	assert_int_equal(
	    acme_link_parse("<https://acme-v02.api.letsencrypt.org/"
			    "directory>;rel=\"index\"",
			    link_cb, &l),
	    0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.url[0],
			    "https://acme-v02.api.letsencrypt.org/directory");
	assert_string_equal(l.rel[0], "index");

	/* several links, unquoted rel, spaces, other params with commas */
	memset(&l, 0, sizeof(l));
	assert_int_equal(
	    acme_link_parse(" <https://ca/c/1/1> ; rel=alternate ; "
			    "title=\"a, b; c\", <https://ca/up>;"
			    "rel=\"up\";type=text/plain",
			    link_cb, &l),
	    -EINVAL); /* '/' is not a token char: unquoted */
	assert_int_equal(l.n, 0);
	assert_int_equal(
	    acme_link_parse(" <https://ca/c/1/1> ; rel=alternate ; "
			    "title=\"a, b; c\", <https://ca/up>;"
			    "rel=\"up\";type=\"text/plain\"",
			    link_cb, &l),
	    0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.url[0], "https://ca/c/1/1");
	assert_string_equal(l.rel[0], "alternate");
	assert_string_equal(l.url[1], "https://ca/up");
	assert_string_equal(l.rel[1], "up");
}

static void test_link_multi_rel(void **state)
{
	struct links l = {0};

	(void)state;
	/* several relations, registered ones lowered, extension URIs
	 * kept, later rel params ignored (RFC 8288 §3.3) */
	assert_int_equal(
	    acme_link_parse("<https://ca/x>; REL=\"Alternate  up "
			    "https://Ex.example/Rel\"; rel=\"index\", "
			    "<https://ca/norel>; title=x, ,",
			    link_cb, &l),
	    0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.rel[0], "alternate");
	assert_string_equal(l.rel[1], "up");
	assert_string_equal(l.rel[2], "https://Ex.example/Rel");
	assert_string_equal(l.url[2], "https://ca/x");

	/* escaped quote in a quoted parameter */
	memset(&l, 0, sizeof(l));
	assert_int_equal(acme_link_parse("<https://ca/y>;title=\"say "
					 "\\\"hi\\\"\";rel=\"up\";flag",
					 link_cb, &l),
			 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.rel[0], "up");
}

static void test_link_junk(void **state)
{
	static const char *const bad[] = {
	    "https://ca/x; rel=up",	/* no angle brackets */
	    "<https://ca/x; rel=up",	/* unterminated */
	    "<>; rel=up",		/* empty URL */
	    "<https://ca/ x>; rel=up",	/* space in URL */
	    "<https://ca/x>; rel=\"up", /* unterminated quote */
	    "<https://ca/x>; rel=",	/* missing value */
	    "<https://ca/x>; =up",	/* missing name */
	    "<https://ca/x> junk",
	    "<https://ca/x>; rel=up <https://ca/y>",
	    "<https://ca/x>; rel=\"a\x01\"",
	    "<https://ca/ok>; rel=up, garbage",
	};
	struct links l = {0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(acme_link_parse(bad[i], link_cb, &l), -EINVAL);
		/* validated whole before anything is reported */
		assert_int_equal(l.n, 0);
	}
	assert_int_equal(acme_link_parse("", link_cb, &l), 0);
	assert_int_equal(acme_link_parse(" , ", link_cb, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(acme_link_parse(NULL, link_cb, &l), -EINVAL);
	assert_int_equal(acme_link_parse("<https://ca/x>;rel=up", NULL, &l),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hdr_crlf_and_lf),
	    cmocka_unit_test(test_hdr_last_block),
	    cmocka_unit_test(test_hdr_repeated),
	    cmocka_unit_test(test_hdr_malformed),
	    cmocka_unit_test(test_hdr_not_terminated),
	    cmocka_unit_test(test_retry_after_delta),
	    cmocka_unit_test(test_retry_after_date),
	    cmocka_unit_test(test_link_basic),
	    cmocka_unit_test(test_link_multi_rel),
	    cmocka_unit_test(test_link_junk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
