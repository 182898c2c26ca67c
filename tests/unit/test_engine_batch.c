/*
 * Unit tests for engine_batch: the set of changed names (order kept,
 * duplicates dropped, 10,000 names, bad names refused), its text form
 * and parsing back (torn and garbage lines skipped and counted), merging,
 * the webhook's JSON body (parsed back with jansson: fields, nulls
 * without live_dir or certificate, wildcard paths, times) and the retry
 * delays.
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
#include <jansson.h>

#include "engine/engine.h"
#include "util/util.h"

/* 2025-06-01T00:00:00Z */
#define T0 ((int64_t)1748736000 * 1000)

static void test_add_dedup_order(void **state)
{
	struct engine_batch *b = engine_batch_new();

	(void)state;
	assert_non_null(b);
	assert_int_equal(engine_batch_add(b, "b.example.com"), 1);
	assert_int_equal(engine_batch_add(b, "a.example.com"), 1);
	assert_int_equal(engine_batch_add(b, "b.example.com"), 0);
	assert_int_equal(engine_batch_add(b, "*.example.com"), 1);
	assert_int_equal(engine_batch_count(b), 3);
	assert_string_equal(engine_batch_name(b, 0), "b.example.com");
	assert_string_equal(engine_batch_name(b, 1), "a.example.com");
	assert_string_equal(engine_batch_name(b, 2), "*.example.com");
	assert_null(engine_batch_name(b, 3));
	engine_batch_clear(b);
	assert_int_equal(engine_batch_count(b), 0);
	assert_int_equal(engine_batch_add(b, "b.example.com"), 1);
	engine_batch_free(b);
	engine_batch_free(NULL);
}

static void test_bad_names(void **state)
{
	struct engine_batch *b = engine_batch_new();
	char long_name[NAME_MAX_LEN + 2];

	(void)state;
	assert_int_equal(engine_batch_add(b, ""), -EINVAL);
	assert_int_equal(engine_batch_add(b, NULL), -EINVAL);
	assert_int_equal(engine_batch_add(b, "Upper.example.com"), -EINVAL);
	assert_int_equal(engine_batch_add(b, "a b.example.com"), -EINVAL);
	assert_int_equal(engine_batch_add(b, "a\n.example.com"), -EINVAL);
	assert_int_equal(engine_batch_add(b, "a/../etc"), -EINVAL);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(engine_batch_add(b, long_name), -EINVAL);
	long_name[NAME_MAX_LEN] = '\0';
	assert_int_equal(engine_batch_add(b, long_name), 1);
	assert_int_equal(engine_batch_count(b), 1);
	engine_batch_free(b);
}

/* 10,000 names, each added twice: the index grows and still dedups. */
static void test_many(void **state)
{
	struct engine_batch *b = engine_batch_new();
	char name[64];

	(void)state;
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 10000; i++) {
			snprintf(name, sizeof(name), "d%d.example.com", i);
			assert_int_equal(engine_batch_add(b, name),
					 round == 0 ? 1 : 0);
		}
	assert_int_equal(engine_batch_count(b), 10000);
	assert_string_equal(engine_batch_name(b, 9999), "d9999.example.com");
	engine_batch_free(b);
}

static void test_lines_roundtrip(void **state)
{
	struct engine_batch *b = engine_batch_new(), *c = engine_batch_new();
	char *text;
	size_t len, bad = 99;

	(void)state;
	text = engine_batch_lines(b, &len);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
	engine_batch_add(b, "a.example.com");
	engine_batch_add(b, "b.example.com");
	text = engine_batch_lines(b, &len);
	assert_string_equal(text, "a.example.com\nb.example.com\n");
	assert_int_equal(len, strlen(text));
	assert_int_equal(engine_batch_parse(c, text, len, &bad), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(engine_batch_count(c), 2);
	assert_string_equal(engine_batch_name(c, 1), "b.example.com");
	free(text);
	engine_batch_free(b);
	engine_batch_free(c);
}

/* A journal as a crash can leave it: duplicates, blank lines, garbage,
 * a NUL, a torn last line without '\n' (dropped: it may be cut short). */
static void test_parse_dirty(void **state)
{
	static const char text[] = "a.example.com\n\nA.EXAMPLE.COM\n"
				   "a.example.com\nbad name\nx\0y.example.com\n"
				   "c.example.com\nd.exa";
	struct engine_batch *b = engine_batch_new();
	size_t bad = 0;

	(void)state;
	assert_int_equal(engine_batch_parse(b, text, sizeof(text) - 1, &bad),
			 0);
	/* upper case, blank inside, NUL inside, torn */
	assert_int_equal(bad, 4);
	assert_int_equal(engine_batch_count(b), 2);
	assert_string_equal(engine_batch_name(b, 0), "a.example.com");
	assert_string_equal(engine_batch_name(b, 1), "c.example.com");
	engine_batch_free(b);
}

static void test_merge(void **state)
{
	struct engine_batch *a = engine_batch_new(), *b = engine_batch_new();

	(void)state;
	engine_batch_add(a, "a.example.com");
	engine_batch_add(b, "b.example.com");
	engine_batch_add(b, "a.example.com");
	assert_int_equal(engine_batch_merge(a, b), 0);
	assert_int_equal(engine_batch_count(a), 2);
	assert_int_equal(engine_batch_count(b), 0);
	assert_string_equal(engine_batch_name(a, 1), "b.example.com");
	engine_batch_free(a);
	engine_batch_free(b);
}

static json_t *parse(const char *s, size_t len)
{
	json_error_t e;
	json_t *j = json_loadb(s, len, 0, &e);

	if (!j)
		fail_msg("bad JSON: %s: %s", e.text, s);
	return j;
}

static void test_json(void **state)
{
	struct engine_batch_item it[3] = {
	    {.name = "a.example.com", .serial = "0ABC", .not_after_ms = T0},
	    {.name = "*.example.org",
	     .serial = "12",
	     .not_after_ms = T0 + 1500},
	    {.name = "gone.example.net", .serial = NULL, .not_after_ms = -1},
	};
	size_t len = 0;
	char *s = engine_batch_json(it, 3, "/var/lib/certherd/live", T0 + 60000,
				    &len);
	json_t *j, *d;

	(void)state;
	assert_non_null(s);
	assert_int_equal(len, strlen(s));
	j = parse(s, len);
	assert_string_equal(json_string_value(json_object_get(j, "event")),
			    "certificates-changed");
	assert_string_equal(json_string_value(json_object_get(j, "time")),
			    "2025-06-01T00:01:00Z");
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
	assert_int_equal(json_array_size(json_object_get(j, "domains")), 3);
	d = json_array_get(json_object_get(j, "domains"), 0);
	assert_string_equal(json_string_value(json_object_get(d, "name")),
			    "a.example.com");
	assert_string_equal(json_string_value(json_object_get(d, "serial")),
			    "0ABC");
	assert_string_equal(json_string_value(json_object_get(d, "not_after")),
			    "2025-06-01T00:00:00Z");
	assert_string_equal(
	    json_string_value(json_object_get(d, "fullchain")),
	    "/var/lib/certherd/live/a.example.com/fullchain.pem");
	assert_string_equal(json_string_value(json_object_get(d, "privkey")),
			    "/var/lib/certherd/live/a.example.com/privkey.pem");
	/* a wildcard's files are under _wildcard.BASE (store_live_write) */
	d = json_array_get(json_object_get(j, "domains"), 1);
	assert_string_equal(json_string_value(json_object_get(d, "name")),
			    "*.example.org");
	assert_string_equal(json_string_value(json_object_get(d, "fullchain")),
			    "/var/lib/certherd/live/_wildcard.example.org/fullchain.pem");
	d = json_array_get(json_object_get(j, "domains"), 2);
	assert_true(json_is_null(json_object_get(d, "serial")));
	assert_true(json_is_null(json_object_get(d, "not_after")));
	json_decref(j);
	free(s);

	/* no live/ written: paths are null */
	s = engine_batch_json(it, 1, NULL, T0, &len);
	j = parse(s, len);
	d = json_array_get(json_object_get(j, "domains"), 0);
	assert_true(json_is_null(json_object_get(d, "fullchain")));
	assert_true(json_is_null(json_object_get(d, "privkey")));
	json_decref(j);
	free(s);

	/* an empty batch is still a valid body */
	s = engine_batch_json(NULL, 0, NULL, T0, &len);
	j = parse(s, len);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 0);
	assert_int_equal(json_array_size(json_object_get(j, "domains")), 0);
	json_decref(j);
	free(s);
}

static void test_retry_delays(void **state)
{
	(void)state;
	assert_int_equal(engine_batch_retry_ms(2), 1000);
	assert_int_equal(engine_batch_retry_ms(3), 4000);
	assert_int_equal(engine_batch_retry_ms(4), 16000);
	/* beyond the attempts used, still bounded */
	assert_true(engine_batch_retry_ms(100) <= 4 * 3600 * 1000);
	assert_int_equal(ENGINE_WEBHOOK_ATTEMPTS, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_dedup_order),
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_lines_roundtrip),
	    cmocka_unit_test(test_parse_dirty),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_retry_delays),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
