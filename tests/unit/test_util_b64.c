/*
 * Unit tests for base64url: the RFC 4648 §10 vectors in the url alphabet,
 * round trips over every byte value and length, and the inputs the strict
 * decoder must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/util.h"

static void test_rfc4648_vectors(void **state)
{
	/* RFC 4648 §10 with padding dropped (§5 alphabet is identical for
	 * these, none of them produce '+' or '/') */
	static const char *const v[][2] = {
	    {"", ""},
	    {"f", "Zg"},
	    {"fo", "Zm8"},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg"},
	    {"fooba", "Zm9vYmE"},
	    {"foobar", "Zm9vYmFy"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *enc = b64url_encode(v[i][0], strlen(v[i][0]));
		unsigned char *dec;
		size_t n = 99;

		assert_non_null(enc);
		assert_string_equal(enc, v[i][1]);
		assert_int_equal(b64url_len(strlen(v[i][0])), strlen(enc));
		dec = b64url_decode(enc, strlen(enc), &n);
		assert_non_null(dec);
		assert_int_equal(n, strlen(v[i][0]));
		assert_memory_equal(dec, v[i][0], n);
		assert_int_equal(dec[n], 0);
		free(enc);
		free(dec);
	}
}

static void test_url_alphabet(void **state)
{
	static const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
	unsigned char *dec;
	char *enc;
	size_t n;

	(void)state;
	/* 0xfbffbf is "+/+/" in standard base64 */
	enc = b64url_encode(bytes, sizeof(bytes));
	assert_string_equal(enc, "-_-_");
	free(enc);
	dec = b64url_decode("-_-_", 4, &n);
	assert_non_null(dec);
	assert_int_equal(n, 3);
	assert_memory_equal(dec, bytes, 3);
	free(dec);
	assert_null(b64url_decode("+/+/", 4, &n));
}

static void test_padding(void **state)
{
	static const char *const ok[][2] = {
	    {"Zg==", "f"},
	    {"Zm8=", "fo"},
	    {"Zm9v", "foo"},
	    {"Zm9vYg==", "foob"},
	};
	static const char *const bad[] = {
	    "Zg=",		    /* padding does not complete a quantum */
	    "Zg===",		    /* too much */
	    "Zm8==",		    /* wrong amount */
	    "Zm9v=",		    /* padding after a full quantum */
	    "Z===",		    /* a single char can never be valid */
	    "Z",     "Zm9vY", "Zh", /* non-zero unused bits: not canonical */
	    "Zm9=",  "Zg=a",	    /* '=' in the middle */
	    "=Zg",   "Zm 9v", "Zm9v\n", "Zm9+", "====",
	};
	unsigned char *dec;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		dec = b64url_decode(ok[i][0], strlen(ok[i][0]), &n);
		assert_non_null(dec);
		assert_int_equal(n, strlen(ok[i][1]));
		assert_memory_equal(dec, ok[i][1], n);
		free(dec);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dec = b64url_decode(bad[i], strlen(bad[i]), &n);
		if (dec)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* an embedded NUL inside len is a bad character */
	assert_null(b64url_decode("Zm\0v", 4, &n));
	/* len, not the NUL, bounds the input */
	dec = b64url_decode("Zm9vYmFy", 4, &n);
	assert_non_null(dec);
	assert_int_equal(n, 3);
	free(dec);
}

static void test_round_trip(void **state)
{
	unsigned char buf[300];
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	for (len = 0; len <= sizeof(buf); len++) {
		char *enc = b64url_encode(buf, len);
		unsigned char *dec;
		size_t n;

		assert_non_null(enc);
		assert_int_equal(strlen(enc), b64url_len(len));
		assert_null(strchr(enc, '='));
		dec = b64url_decode(enc, strlen(enc), &n);
		assert_non_null(dec);
		assert_int_equal(n, len);
		assert_memory_equal(dec, buf, len);
		free(enc);
		free(dec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4648_vectors),
	    cmocka_unit_test(test_url_alphabet),
	    cmocka_unit_test(test_padding),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
