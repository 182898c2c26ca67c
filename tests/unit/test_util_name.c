/*
 * Unit tests for name_normalize: tables of names that must normalize to a
 * given form and names that must be refused, plus the shape of the error
 * message (problem named, input quoted).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/util.h"

struct good_case {
	const char *in;
	unsigned flags;
	const char *want;
};

struct bad_case {
	const char *in;
	unsigned flags;
	const char *why; /* substring expected in the message */
};

static void test_good(void **state)
{
	static const struct good_case cases[] = {
	    {"example.com", 0, "example.com"},
	    {"Example.COM.", 0, "example.com"},
	    {"WWW.Example.Com", 0, "www.example.com"},
	    {"a-b.example.co.uk", 0, "a-b.example.co.uk"},
	    {"123.example.com", 0, "123.example.com"},
	    {"xn--bcher-kva.de", 0, "xn--bcher-kva.de"},
	    {"XN--BCHER-KVA.DE", 0, "xn--bcher-kva.de"},
	    {"www.xn--bcher-kva.xn--p1ai", 0, "www.xn--bcher-kva.xn--p1ai"},
	    /* UTS#46 maps upper case and the ideographic full stop */
	    {"\xc3\x89XAMPLE\xe3\x80\x82"
	     "com",
	     0, "xn--xample-9ua.com"},
	    {"b\xc3\xbc"
	     "cher.de",
	     0, "xn--bcher-kva.de"},
	    {"B\xc3\x9c"
	     "CHER.de",
	     0, "xn--bcher-kva.de"},
	    {"b\xc3\xbc"
	     "cher.de.",
	     0, "xn--bcher-kva.de"},
	    /* non-transitional: sharp s is kept, not mapped to "ss" */
	    {"fa\xc3\x9f.de", 0, "xn--fa-hia.de"},
	    {"*.example.com", NAME_ALLOW_WILDCARD, "*.example.com"},
	    {"*.Example.COM.", NAME_ALLOW_WILDCARD, "*.example.com"},
	    {"*.b\xc3\xbc"
	     "cher.de",
	     NAME_ALLOW_WILDCARD, "*.xn--bcher-kva.de"},
	    /* two labels counting the wildcard; whether a CA allows it
	     * is the CA's policy, not a syntax question */
	    {"*.com", NAME_ALLOW_WILDCARD, "*.com"},
	    {"example.com", NAME_ALLOW_WILDCARD, "example.com"},
	};
	char out[NAME_MAX_LEN + 1];
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = name_normalize(cases[i].in, cases[i].flags, out,
					sizeof(out), err, sizeof(err));

		if (rc != 0)
			fail_msg("\"%s\" rejected: %s", cases[i].in, err);
		assert_string_equal(out, cases[i].want);
	}
}

static void test_bad(void **state)
{
	char label64[65];
	char long254[300];
	char long253[300];
	char out[NAME_MAX_LEN + 1];
	char err[256];
	size_t i;
	int rc;

	(void)state;
	memset(label64, 'a', 64);
	label64[64] = '\0';
	snprintf(long253, sizeof(long253), "%s.example.com", label64);

	/* 3 * 63 + 3 dots = 192; + 58 + ".de" = 253 and one more = 254 */
	memset(long254, 0, sizeof(long254));
	for (i = 0; i < 3; i++) {
		memset(long254 + i * 64, 'a', 63);
		long254[i * 64 + 63] = '.';
	}
	memset(long254 + 192, 'b', 58);
	strcpy(long254 + 250, ".de");
	assert_int_equal(strlen(long254), 253);
	rc = name_normalize(long254, 0, out, sizeof(out), err, sizeof(err));
	assert_int_equal(rc, 0);
	long254[249] = '\0';
	strcat(long254, "bb.de");
	assert_int_equal(strlen(long254), 254);

	const struct bad_case cases[] = {
	    {"", 0, "empty name"},
	    {".", 0, "empty label"},
	    {"a..b", 0, "empty label"},
	    {".example.com", 0, "empty label"},
	    {"example.com..", 0, "empty label"},
	    {"-a.com", 0, "'-'"},
	    {"a-.com", 0, "'-'"},
	    {long253, 0, "longer than 63"},
	    {long254, 0, "longer than 253"},
	    {"1.2.3.4", 0, "IP address"},
	    {"::1", 0, "IP address"},
	    {"[::1]", 0, "IP address"},
	    {"2001:db8::1", 0, "IP address"},
	    {"example.123", 0, "numeric"},
	    {"localhost", 0, "single-label"},
	    {"localhost.", 0, "single-label"},
	    {"a_b.com", 0, "'_'"},
	    {"exa mple.com", 0, "' '"},
	    {"exa\tmple.com", 0, "byte 0x09"},
	    {"a.*.example.com", NAME_ALLOW_WILDCARD, "'*'"},
	    {"*example.com", NAME_ALLOW_WILDCARD, "wildcard"},
	    {"*", NAME_ALLOW_WILDCARD, "wildcard"},
	    {"*.", NAME_ALLOW_WILDCARD, "empty label"},
	    {"**.example.com", NAME_ALLOW_WILDCARD, "wildcard"},
	    {"*.*.example.com", NAME_ALLOW_WILDCARD, "'*'"},
	    {"*.example.com", 0, "wildcard not allowed"},
	    {"example.com/path", 0, "'/'"},
	    {"b\xc3\xbc"
	     "cher_x.de",
	     0, "'_'"},
	    {"\xff\xfe.com", 0, ""}, /* not UTF-8 */
	    {"xn--zz.com", 0, "punycode"},
	    /* decodes to a U-label with upper case: not canonical */
	    {"xn--ss-fxa.de", 0, "punycode"},
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(out, "untouched");
		err[0] = '\0';
		rc = name_normalize(cases[i].in, cases[i].flags, out,
				    sizeof(out), err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("\"%s\" accepted as \"%s\"", cases[i].in, out);
		if (strncmp(err, "invalid domain \"", 16) != 0 ||
		    !strstr(err, cases[i].why))
			fail_msg("\"%s\": unexpected message: %s", cases[i].in,
				 err);
	}
}

static void test_message(void **state)
{
	char out[NAME_MAX_LEN + 1];
	char err[256];
	char huge[2000];

	(void)state;
	assert_int_equal(name_normalize("exa mple.com", 0, out, sizeof(out),
					err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(
	    err, "invalid domain \"exa mple.com\": label contains ' '");

	/* NULL err is allowed; a tiny one is cut, never overflowed */
	assert_int_equal(name_normalize("a..b", 0, out, sizeof(out), NULL, 0),
			 -EINVAL);
	assert_int_equal(name_normalize("a..b", 0, out, sizeof(out), err, 8),
			 -EINVAL);
	assert_int_equal(strlen(err), 7);

	/* a huge input is refused and quoted only in part */
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(
	    name_normalize(huge, 0, out, sizeof(out), err, sizeof(err)),
	    -EINVAL);
	assert_true(strlen(err) < 200);
	assert_non_null(strstr(err, "...\""));

	/* an output buffer too small for the result */
	assert_int_equal(
	    name_normalize("example.com", 0, out, 5, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    name_normalize(NULL, 0, out, sizeof(out), err, sizeof(err)),
	    -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
