/*
 * Unit tests for acme_problem: every RFC 8555 §6.7 error type parsed from
 * a problem document, the §6.7.1 subproblem example, documents that are
 * not problems, garbage and oversized bodies, the permanence table and
 * the one-line rendering used in logs.
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

/* RFC 8555 §6.7, table of error types, and whether we treat each as
 * permanent (see acme_problem.c for why). */
static const struct {
	const char *type;
	int permanent;
} rfc_types[] = {
    {"accountDoesNotExist", 1},
    {"alreadyRevoked", 1},
    {"badCSR", 1},
    {"badNonce", 0},
    {"badPublicKey", 1},
    {"badRevocationReason", 1},
    {"badSignatureAlgorithm", 1},
    {"caa", 1},
    {"compound", 0},
    {"connection", 0},
    {"dns", 0},
    {"externalAccountRequired", 1},
    {"incorrectResponse", 0},
    {"invalidContact", 1},
    {"malformed", 1},
    {"orderNotReady", 0},
    {"rateLimited", 0},
    {"rejectedIdentifier", 1},
    {"serverInternal", 0},
    {"tls", 0},
    {"unauthorized", 0},
    {"unsupportedContact", 1},
    {"unsupportedIdentifier", 1},
    {"userActionRequired", 1},
};

static struct acme_error fresh(void)
{
	struct acme_error e;

	memset(&e, 0, sizeof(e));
	e.retry_after_ms = -1;
	return e;
}

static int parse(const char *body, struct acme_error *e)
{
	return acme_problem_parse(body, strlen(body), e);
}

static void test_every_rfc_type(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rfc_types) / sizeof(rfc_types[0]); i++) {
		struct acme_error e = fresh();
		char body[512];

		snprintf(body, sizeof(body),
			 "{\"type\":\"urn:ietf:params:acme:error:%s\","
			 "\"detail\":\"something about %s\",\"status\":400}",
			 rfc_types[i].type, rfc_types[i].type);
		assert_int_equal(parse(body, &e), 0);
		assert_int_equal(e.code, ACME_E_PROBLEM);
		assert_string_equal(e.type, rfc_types[i].type);
		assert_non_null(strstr(e.detail, rfc_types[i].type));
		assert_int_equal(e.status, 400);
		assert_int_equal(e.n_sub, 0);
		assert_null(e.sub);
		assert_int_equal(acme_problem_is_permanent(e.type),
				 rfc_types[i].permanent);
		acme_error_clear(&e);
	}
}

static void test_subproblems_rfc_example(void **state)
{
	/* RFC 8555 §6.7.1 */
	const char *body =
	    "{\n"
	    "    \"type\": \"urn:ietf:params:acme:error:malformed\",\n"
	    "    \"detail\": \"Some of the identifiers requested were "
	    "rejected\",\n"
	    "    \"subproblems\": [\n"
	    "        {\n"
	    "            \"type\": \"urn:ietf:params:acme:error:malformed\",\n"
	    "            \"detail\": \"Invalid underscore in DNS name "
	    "\\\"_example.org\\\"\",\n"
	    "            \"identifier\": {\n"
	    "                \"type\": \"dns\",\n"
	    "                \"value\": \"_example.org\"\n"
	    "            }\n"
	    "        },\n"
	    "        {\n"
	    "            \"type\": "
	    "\"urn:ietf:params:acme:error:rejectedIdentifier\",\n"
	    "            \"detail\": \"This CA will not issue for "
	    "\\\"example.net\\\"\",\n"
	    "            \"identifier\": {\n"
	    "                \"type\": \"dns\",\n"
	    "                \"value\": \"example.net\"\n"
	    "            }\n"
	    "        }\n"
	    "    ]\n"
	    "}\n";
	struct acme_error e = fresh();
	char buf[512];

	(void)state;
	e.status = 400; /* from the response line; the body has none */
	e.step = "newOrder";
	assert_int_equal(parse(body, &e), 0);
	assert_string_equal(e.type, "malformed");
	assert_string_equal(e.detail,
			    "Some of the identifiers requested were rejected");
	assert_int_equal(e.status, 400);
	assert_string_equal(e.step, "newOrder");
	assert_int_equal(e.retry_after_ms, -1);
	assert_int_equal(e.n_sub, 2);
	assert_string_equal(e.sub[0].type, "malformed");
	assert_string_equal(e.sub[0].identifier, "_example.org");
	assert_string_equal(e.sub[0].detail,
			    "Invalid underscore in DNS name \"_example.org\"");
	assert_string_equal(e.sub[1].type, "rejectedIdentifier");
	assert_string_equal(e.sub[1].identifier, "example.net");

	acme_error_str(&e, buf, sizeof(buf));
	assert_string_equal(buf,
			    "malformed: Some of the identifiers requested were "
			    "rejected (step newOrder, HTTP 400); _example.org "
			    "malformed: Invalid underscore in DNS name "
			    "\"_example.org\", example.net rejectedIdentifier: "
			    "This CA will not issue for \"example.net\"");
	acme_error_clear(&e);
	assert_null(e.type);
	assert_null(e.sub);
	assert_int_equal(e.n_sub, 0);
	assert_int_equal(e.code, ACME_E_NONE);
	assert_int_equal(e.retry_after_ms, -1);
}

static void test_odd_but_accepted(void **state)
{
	struct acme_error e = fresh();

	(void)state;
	/* non-ACME type URIs are kept whole; title stands in for detail;
	 * bogus status ignored; malformed subproblems skipped */
	assert_int_equal(parse("{\"type\":\"https://example.com/probs/out-of-"
			       "credit\",\"title\":\"You do not have enough "
			       "credit.\",\"status\":\"403\",\"subproblems\":"
			       "[1,{\"detail\":\"no type\"},{\"type\":\"urn:"
			       "ietf:params:acme:error:caa\"},{\"type\":"
			       "\"dns\",\"identifier\":\"not an object\"}]}",
			       &e),
			 0);
	assert_string_equal(e.type, "https://example.com/probs/out-of-credit");
	assert_string_equal(e.detail, "You do not have enough credit.");
	assert_int_equal(e.status, 0);
	assert_int_equal(e.n_sub, 2);
	assert_string_equal(e.sub[0].type, "caa");
	assert_null(e.sub[0].detail);
	assert_null(e.sub[0].identifier);
	assert_string_equal(e.sub[1].type, "dns");
	assert_null(e.sub[1].identifier);
	assert_int_equal(acme_problem_is_permanent(e.type), 0);

	/* parsing again replaces, without leaking (ASan checks) */
	assert_int_equal(parse("{\"type\":\"urn:ietf:params:acme:error:"
			       "rateLimited\",\"status\":429,\"identifier\":"
			       "{\"type\":\"dns\",\"value\":\"a.example\"}}",
			       &e),
			 0);
	assert_string_equal(e.type, "rateLimited");
	assert_string_equal(e.detail, "no detail given");
	assert_string_equal(e.identifier, "a.example");
	assert_int_equal(e.status, 429);
	assert_int_equal(e.n_sub, 0);

	/* the bare prefix is not stripped to an empty type */
	assert_int_equal(
	    parse("{\"type\":\"urn:ietf:params:acme:error:\"}", &e), 0);
	assert_string_equal(e.type, "urn:ietf:params:acme:error:");
	acme_error_clear(&e);
}

static void test_not_a_problem(void **state)
{
	static const char *const bad[] = {
	    "",
	    "garbage",
	    "{",
	    "[]",
	    "\"urn:ietf:params:acme:error:malformed\"",
	    "null",
	    "42",
	    /* an order is JSON but not a problem */
	    ("{\"status\":\"pending\",\"expires\":\"2016-01-05T14:09:07.99Z\","
	     "\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}]}"),
	    "{\"type\":42,\"detail\":\"x\"}",
	    "{\"type\":\"\",\"detail\":\"x\"}",
	    "{\"type\":\"urn:ietf:params:acme:error:dns\"} trailing",
	    "{\"type\":\"a\",\"type\":\"b\"}",
	    "{\"type\":\"urn:ietf:params:acme:error:d\\u0000ns\"}",
	    "\xff\xfe{}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct acme_error e = fresh();

		e.step = "finalize";
		assert_int_equal(parse(bad[i], &e), -EINVAL);
		assert_int_equal(e.code, ACME_E_PROTOCOL);
		assert_non_null(e.detail);
		assert_null(e.type);
		assert_string_equal(e.step, "finalize");
		acme_error_clear(&e);
	}
}

static void test_oversized(void **state)
{
	struct acme_error e = fresh();
	size_t n = ACME_MAX_BODY + 1;
	char *big = malloc(n);
	const char *head = "{\"type\":\"urn:ietf:params:acme:error:dns\","
			   "\"detail\":\"";

	(void)state;
	assert_non_null(big);
	memset(big, 'a', n);
	memcpy(big, head, strlen(head));
	memcpy(big + n - 2, "\"}", 2);
	assert_int_equal(acme_problem_parse(big, n, &e), -EINVAL);
	assert_int_equal(e.code, ACME_E_PROTOCOL);
	/* one byte less is fine */
	memcpy(big + n - 3, "\"}", 2);
	assert_int_equal(acme_problem_parse(big, n - 1, &e), 0);
	assert_string_equal(e.type, "dns");
	acme_error_clear(&e);
	free(big);
	assert_int_equal(acme_problem_parse(NULL, 0, &e), -EINVAL);
	acme_error_clear(&e);
	assert_int_equal(acme_problem_parse("{}", 2, NULL), -EINVAL);
}

static void test_many_subproblems(void **state)
{
	struct acme_error e = fresh();
	size_t cap = 64 + 1000 * 64, i, len;
	char *body = malloc(cap);

	(void)state;
	assert_non_null(body);
	len = (size_t)snprintf(body, cap,
			       "{\"type\":\"urn:ietf:params:acme:error:"
			       "compound\",\"subproblems\":[");
	for (i = 0; i < 1000; i++)
		len += (size_t)snprintf(body + len, cap - len,
					"%s{\"type\":\"urn:ietf:params:acme:"
					"error:dns\"}",
					i ? "," : "");
	len += (size_t)snprintf(body + len, cap - len, "]}");
	assert_int_equal(acme_problem_parse(body, len, &e), 0);
	/* capped: enough to explain, bounded for logs */
	assert_true(e.n_sub > 0 && e.n_sub <= 100);
	acme_error_clear(&e);
	free(body);
}

static void test_permanence(void **state)
{
	(void)state;
	assert_int_equal(acme_problem_is_permanent(NULL), 0);
	assert_int_equal(acme_problem_is_permanent(""), 0);
	assert_int_equal(acme_problem_is_permanent("about:blank"), 0);
	assert_int_equal(acme_problem_is_permanent("somethingNew"), 0);
	/* the full URN is not what we store */
	assert_int_equal(
	    acme_problem_is_permanent("urn:ietf:params:acme:error:caa"), 0);
	assert_int_equal(acme_problem_is_permanent("alreadyReplaced"), 1);
	assert_int_equal(acme_problem_is_permanent("invalidProfile"), 1);
	assert_int_equal(acme_problem_is_permanent("CAA"), 0);
}

static void test_error_str(void **state)
{
	struct acme_error e = fresh();
	char buf[256], tiny[8];

	(void)state;
	assert_string_equal(acme_error_str(&e, buf, sizeof(buf)), "no error");
	assert_string_equal(acme_error_str(NULL, buf, sizeof(buf)), "no error");

	e.code = ACME_E_PROBLEM;
	e.type = strdup("rateLimited");
	e.detail = strdup("too many certificates\nlevel=error forged=1");
	e.identifier = strdup("a.example");
	e.step = "newOrder";
	e.status = 429;
	e.retry_after_ms = 1500;
	assert_string_equal(acme_error_str(&e, buf, sizeof(buf)),
			    "rateLimited: too many certificates?level=error "
			    "forged=1 (domain a.example, step newOrder, "
			    "HTTP 429, retry after 2s)");
	/* truncation stays NUL-terminated */
	assert_string_equal(acme_error_str(&e, tiny, sizeof(tiny)), "rateLim");
	acme_error_clear(&e);

	e.code = ACME_E_TRANSPORT;
	e.detail = strdup("connection refused");
	assert_string_equal(acme_error_str(&e, buf, sizeof(buf)),
			    "transport: connection refused");
	free(e.detail);
	e.detail = NULL;
	e.step = "directory";
	assert_string_equal(acme_error_str(&e, buf, sizeof(buf)),
			    "transport: no detail (step directory)");
	acme_error_clear(&e);
	acme_error_clear(NULL);
}

static void test_names(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < ACME_E__MAX; i++)
		assert_non_null(acme_errc_names[i]);
	assert_string_equal(acme_errc_names[ACME_E_PROBLEM], "problem");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_rfc_type),
	    cmocka_unit_test(test_subproblems_rfc_example),
	    cmocka_unit_test(test_odd_but_accepted),
	    cmocka_unit_test(test_not_a_problem),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_many_subproblems),
	    cmocka_unit_test(test_permanence),
	    cmocka_unit_test(test_error_str),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
