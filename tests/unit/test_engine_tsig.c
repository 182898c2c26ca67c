/*
 * Unit tests for engine_tsig_parse: the key file as tsig-keygen writes
 * it, layouts and comments it may carry, and what is refused (other
 * algorithms, bad base64, short secrets, two keys, trailing junk), with
 * messages that never hold the secret.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

/* what `tsig-keygen -a hmac-sha256 certherd-test` printed */
static const char keygen[] =
    "key \"certherd-test\" {\n"
    "\talgorithm hmac-sha256;\n"
    "\tsecret \"hPwr9Yp3eQ2mUoV0YbL0C1R3u6Xs8kJwq4Xr0fN2mYc=\";\n"
    "};\n";
#define SECRET "hPwr9Yp3eQ2mUoV0YbL0C1R3u6Xs8kJwq4Xr0fN2mYc="

static int parse(const char *t, struct engine_tsig_key *k, char *why)
{
	return engine_tsig_parse(t, strlen(t), k, why, 256);
}

static void test_keygen_output(void **state)
{
	struct engine_tsig_key k;
	char why[256] = "";

	(void)state;
	assert_int_equal(parse(keygen, &k, why), 0);
	assert_string_equal(k.name, "certherd-test");
	assert_string_equal(k.algorithm, "hmac-sha256.");
	assert_string_equal(k.secret, SECRET);
	/* any layout, comments of the three kinds, upper-case algorithm */
	assert_int_equal(
	    parse("# made for certherd\n// by ops\nkey \"a.b.\" /* x */ {"
		  "secret \"" SECRET "\"; algorithm HMAC-SHA256; };",
		  &k, why),
	    0);
	assert_string_equal(k.name, "a.b.");
	assert_string_equal(k.secret, SECRET);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "key \"k\" { algorithm hmac-md5; secret \"" SECRET "\"; };",
	    "key \"k\" { algorithm hmac-sha256; secret \"not base64!\"; };",
	    "key \"k\" { algorithm hmac-sha256; secret \"c2hvcnQ=\"; };",
	    "key \"k\" { algorithm hmac-sha256; };",
	    "key \"k\" { secret \"" SECRET "\"; };",
	    "key \"k\" { algorithm hmac-sha256; secret \"" SECRET "\"; }",
	    "key \"k\" { algorithm hmac-sha256; secret \"" SECRET "\"; }; x",
	    ("key \"k\" { algorithm hmac-sha256; secret \"" SECRET "\"; };"
	     "key \"k2\" { algorithm hmac-sha256; secret \"" SECRET "\"; };"),
	    ("key \"k\" { algorithm hmac-sha256; algorithm hmac-sha256; "
	     "secret \"" SECRET "\"; };"),
	    ("key \"k\" { algorithm hmac-sha256; secret \"" SECRET "\"; "
	     "server 1.2.3.4; };"),
	    "key \"k/../x\" { algorithm hmac-sha256; secret \"" SECRET "\"; };",
	    "key \"k\" { algorithm hmac-sha256; secret \"" SECRET,
	    "key \"k\" /* unterminated { algorithm hmac-sha256; };",
	};
	struct engine_tsig_key k;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (parse(bad[i], &k, why) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_true(why[0] != '\0');
		assert_null(strstr(why, SECRET));
		assert_string_equal(k.secret, ""); /* nothing kept */
	}
	/* a NUL byte inside: not a text file */
	assert_int_equal(engine_tsig_parse("key\0\"k\"", 8, &k, why, 256),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keygen_output),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
