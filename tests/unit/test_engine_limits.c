/*
 * Unit tests for engine_limits with a fake clock: continuous refill with
 * fractional tokens, "when" agreeing with "can" to the millisecond,
 * refusals that change nothing, persistence and restore (including a
 * clock stepped back), overrides, garbage collection, headroom, the Let's
 * Encrypt default table, and the keys: registered domains through the
 * public suffix list and identical-set keys.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "util/util.h"

#define H  ENGINE_HOUR_MS
#define D  ENGINE_DAY_MS
#define T0 ((int64_t)1748736000 * 1000)

static void test_le_table(void **state)
{
	const struct engine_limit_def *t = engine_limits_letsencrypt;
	struct engine_limits *l = engine_limits_new(NULL);

	(void)state;
	assert_non_null(l);
	assert_true(t[ENGINE_LIMIT_ORDERS].capacity == 300);
	assert_int_equal(t[ENGINE_LIMIT_ORDERS].period_ms, 3 * H);
	assert_true(t[ENGINE_LIMIT_REGDOMAIN].capacity == 50);
	assert_int_equal(t[ENGINE_LIMIT_REGDOMAIN].period_ms, 7 * D);
	assert_true(t[ENGINE_LIMIT_REGDOMAIN].renewal_exempt);
	assert_true(t[ENGINE_LIMIT_IDENTICAL].capacity == 5);
	assert_int_equal(t[ENGINE_LIMIT_IDENTICAL].period_ms, 7 * D);
	assert_true(t[ENGINE_LIMIT_FAILED_AUTHZ].capacity == 5);
	assert_int_equal(t[ENGINE_LIMIT_FAILED_AUTHZ].period_ms, H);
	/* A new ledger uses that table. */
	assert_memory_equal(engine_limits_def(l, ENGINE_LIMIT_ORDERS),
			    &t[ENGINE_LIMIT_ORDERS], sizeof(*t));
	assert_string_equal(engine_limit_names[ENGINE_LIMIT_ORDERS],
			    "new-orders-per-account");
	/* LE's own description: one order back every 36 s. */
	assert_int_equal(engine_limits_bucket_when(
			     &t[ENGINE_LIMIT_ORDERS],
			     &(struct engine_bucket){0, T0}, 1, T0),
			 T0 + 36 * 1000);
	engine_limits_free(l);
}

static void test_bucket_math(void **state)
{
	/* 5 per hour: one token every 12 minutes. */
	struct engine_limit_def d = {5, H, 0};
	struct engine_bucket b = {5, T0};
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_int_equal(engine_limits_bucket_take(&d, &b, 1, T0), 0);
	assert_int_equal(engine_limits_bucket_take(&d, &b, 1, T0), -EAGAIN);
	assert_true(b.tokens == 0 && b.updated_ms == T0);
	/* Fractional refill: 6 minutes = half a token. */
	assert_true(fabs(engine_limits_level(&d, &b, T0 + 6 * 60000) - 0.5) <
		    1e-12);
	assert_int_equal(engine_limits_bucket_take(&d, &b, 1, T0 + 6 * 60000),
			 -EAGAIN);
	/* ... but half a token can be taken. */
	assert_int_equal(
	    engine_limits_bucket_take(&d, &b, 0.5, T0 + 6 * 60000), 0);
	assert_true(fabs(b.tokens) < 1e-12);
	assert_int_equal(b.updated_ms, T0 + 6 * 60000);
	/* when() is exact: 12 min later, not a millisecond earlier. */
	assert_int_equal(engine_limits_bucket_when(&d, &b, 1, T0 + 6 * 60000),
			 T0 + 18 * 60000);
	assert_int_equal(
	    engine_limits_bucket_take(&d, &b, 1, T0 + 18 * 60000 - 1), -EAGAIN);
	assert_int_equal(engine_limits_bucket_take(&d, &b, 1, T0 + 18 * 60000),
			 0);
	/* Never more than the capacity, however long we wait. */
	assert_true(engine_limits_level(&d, &b, T0 + 100 * D) == 5);
	assert_true(engine_limits_bucket_when(&d, &b, 6, T0) == ENGINE_NEVER);
	/* Capacity 0 disables the limit. */
	d.capacity = 0;
	assert_int_equal(engine_limits_bucket_take(&d, &b, 1000, T0), 0);
	assert_int_equal(engine_limits_bucket_when(&d, &b, 1000, T0), T0);
}

static void test_when_agrees_with_can(void **state)
{
	/* Awkward numbers: 7 per 1000.003 s. */
	struct engine_limit_def d = {7, 1000003, 0};
	struct engine_bucket b = {0.123, T0};
	int64_t now = T0;
	int i;

	(void)state;
	for (i = 0; i < 200; i++) {
		double k = 0.25 + (i % 13) * 0.5;
		int64_t w = engine_limits_bucket_when(&d, &b, k, now);
		struct engine_bucket c = b;

		if (k > 7) {
			assert_true(w == ENGINE_NEVER);
			continue;
		}
		assert_true(w >= now);
		if (w > now)
			assert_int_equal(
			    engine_limits_bucket_take(&d, &c, k, w - 1),
			    -EAGAIN);
		assert_int_equal(engine_limits_bucket_take(&d, &b, k, w), 0);
		now = w + (i % 3) * 1000;
	}
}

static void test_ledger_take_can_when(void **state)
{
	struct engine_limits *l = engine_limits_new(NULL);
	int i;

	(void)state;
	/* Absent buckets are full and stored only when charged. */
	assert_true(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, "a.example",
				      5, T0));
	assert_false(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, "a.example",
				       6, T0));
	assert_int_equal(engine_limits_count(l), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_IDENTICAL,
						    "a.example", 1, T0),
				 0);
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_IDENTICAL,
					    "a.example", 1, T0 + 10),
			 -EAGAIN);
	/* Other keys are independent. */
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_IDENTICAL,
					    "b.example", 1, T0),
			 0);
	assert_int_equal(engine_limits_count(l), 2);
	/* 5 per 7 days: one back every 33.6 h. */
	assert_int_equal(engine_limits_when(l, ENGINE_LIMIT_IDENTICAL,
					    "a.example", 1, T0 + 10),
			 T0 + 7 * D / 5);
	/* A refusal changes nothing. */
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_IDENTICAL, "new",
					    6, T0),
			 -EAGAIN);
	assert_int_equal(engine_limits_count(l), 2);
	/* Give back a reservation: capped at capacity. */
	assert_int_equal(engine_limits_give(l, ENGINE_LIMIT_IDENTICAL,
					    "a.example", 1, T0 + 10),
			 0);
	assert_true(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, "a.example",
				      1, T0 + 10));
	assert_int_equal(engine_limits_give(l, ENGINE_LIMIT_IDENTICAL,
					    "b.example", 100, T0 + 10),
			 0);
	assert_false(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, "b.example",
				       5.5, T0 + 10));
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT__MAX, "x", 1, T0),
			 -EINVAL);
	engine_limits_free(l);
}

struct saved {
	int n;
	enum engine_limit kind[8];
	char key[8][64];
	struct engine_bucket b[8];
};

static int save_cb(void *ctx, enum engine_limit kind, const char *key,
		   const struct engine_bucket *b)
{
	struct saved *s = ctx;

	assert_true(s->n < 8);
	s->kind[s->n] = kind;
	snprintf(s->key[s->n], sizeof(s->key[0]), "%s", key);
	s->b[s->n] = *b;
	s->n++;
	return 0;
}

static void test_persist_restore(void **state)
{
	struct engine_limits *l = engine_limits_new(NULL), *r;
	struct saved s = {0};
	int i;

	(void)state;
	for (i = 0; i < 300; i++)
		assert_int_equal(
		    engine_limits_take(l, ENGINE_LIMIT_ORDERS, "", 1, T0), 0);
	assert_int_equal(
	    engine_limits_take(l, ENGINE_LIMIT_REGDOMAIN, "example.com", 20,
			       T0),
	    0);
	assert_int_equal(engine_limits_foreach(l, save_cb, &s), 0);
	assert_int_equal(s.n, 2);

	/* A restart 90 minutes later: the restored ledger answers as the
	 * old one would have, refilled by the time that passed. */
	r = engine_limits_new(NULL);
	for (i = 0; i < s.n; i++)
		assert_int_equal(
		    engine_limits_restore(r, s.kind[i], s.key[i], &s.b[i]), 0);
	assert_true(fabs(engine_limits_level(
			     engine_limits_def(r, ENGINE_LIMIT_ORDERS),
			     &s.b[s.kind[0] == ENGINE_LIMIT_ORDERS ? 0 : 1],
			     T0 + 90 * 60000) -
			 150) < 1e-9);
	assert_true(engine_limits_can(r, ENGINE_LIMIT_ORDERS, "", 150,
				      T0 + 90 * 60000));
	assert_false(engine_limits_can(r, ENGINE_LIMIT_ORDERS, "", 151,
				       T0 + 90 * 60000));
	assert_int_equal(engine_limits_when(r, ENGINE_LIMIT_ORDERS, "", 31,
					    T0),
			 engine_limits_when(l, ENGINE_LIMIT_ORDERS, "", 31,
					    T0));
	assert_true(engine_limits_can(r, ENGINE_LIMIT_REGDOMAIN, "example.com",
				      30, T0));
	assert_false(engine_limits_can(r, ENGINE_LIMIT_REGDOMAIN,
				       "example.com", 31, T0));
	/* Nonsense restored: clamped. */
	assert_int_equal(
	    engine_limits_restore(r, ENGINE_LIMIT_IDENTICAL, "x",
				  &(struct engine_bucket){1e9, T0}),
	    0);
	assert_false(
	    engine_limits_can(r, ENGINE_LIMIT_IDENTICAL, "x", 5.01, T0));
	assert_int_equal(
	    engine_limits_restore(r, ENGINE_LIMIT_IDENTICAL, "y",
				  &(struct engine_bucket){-3, T0}),
	    0);
	assert_false(engine_limits_can(r, ENGINE_LIMIT_IDENTICAL, "y", 0.01,
				       T0));
	assert_int_equal(
	    engine_limits_restore(r, ENGINE_LIMIT_IDENTICAL, "z",
				  &(struct engine_bucket){NAN, T0}),
	    -EINVAL);
	engine_limits_free(l);
	engine_limits_free(r);
}

static void test_clock_stepped_back(void **state)
{
	struct engine_limit_def d = {5, H, 0};
	struct engine_bucket b = {0, T0};

	(void)state;
	/* Saved at T0, read at T0 - 1 h: nothing refills until T0. */
	assert_true(engine_limits_level(&d, &b, T0 - H) == 0);
	assert_int_equal(engine_limits_bucket_when(&d, &b, 1, T0 - H),
			 T0 + 12 * 60000);
}

static void test_override_gc_headroom(void **state)
{
	struct engine_limits *l = engine_limits_new(NULL);
	struct engine_limit_def small = {2, H, 0}, bad = {2, 0, 0};
	struct engine_headroom hr;

	(void)state;
	assert_int_equal(engine_limits_set(l, ENGINE_LIMIT_ORDERS, &bad),
			 -EINVAL);
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_ORDERS, "", 10, T0),
			 0);
	/* Overriding caps the stored tokens at the new capacity. */
	assert_int_equal(engine_limits_set(l, ENGINE_LIMIT_ORDERS, &small), 0);
	assert_true(engine_limits_can(l, ENGINE_LIMIT_ORDERS, "", 2, T0));
	assert_false(engine_limits_can(l, ENGINE_LIMIT_ORDERS, "", 3, T0));
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_ORDERS, "", 1.5,
					    T0),
			 0);
	assert_int_equal(engine_limits_headroom(l, ENGINE_LIMIT_ORDERS, "", T0,
						&hr),
			 0);
	assert_true(fabs(hr.tokens - 0.5) < 1e-12 && hr.capacity == 2);
	assert_int_equal(hr.full_at_ms, T0 + 45 * 60000);
	/* Absent key: full. */
	assert_int_equal(engine_limits_headroom(l, ENGINE_LIMIT_FAILED_AUTHZ,
						"a.example", T0, &hr),
			 0);
	assert_true(hr.tokens == 5 && hr.full_at_ms == T0);

	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_FAILED_AUTHZ,
					    "a.example", 1, T0),
			 0);
	assert_int_equal(engine_limits_count(l), 2);
	/* After 12 min the authz bucket is full again; orders not yet. */
	assert_int_equal(engine_limits_gc(l, T0 + 12 * 60000), 1);
	assert_int_equal(engine_limits_count(l), 1);
	assert_false(engine_limits_can(l, ENGINE_LIMIT_ORDERS, "", 2,
				       T0 + 12 * 60000));
	assert_int_equal(engine_limits_gc(l, T0 + H), 1);
	assert_int_equal(engine_limits_count(l), 0);
	engine_limits_free(l);
}

static void test_many_keys(void **state)
{
	struct engine_limits *l = engine_limits_new(NULL);
	char key[64];
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "d%d.example", i);
		assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_IDENTICAL,
						    key, 1 + i % 5, T0),
				 0);
	}
	assert_int_equal(engine_limits_count(l), 20000);
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "d%d.example", i);
		assert_true(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, key,
					      5 - (i % 5) - 1, T0));
		if (i % 5 < 4)
			continue;
		assert_false(engine_limits_can(l, ENGINE_LIMIT_IDENTICAL, key,
					       0.5, T0));
	}
	engine_limits_free(l);
}

static void test_regdomain(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"a.b.example.co.uk", "example.co.uk"},
	    {"example.co.uk", "example.co.uk"},
	    {"www.example.com", "example.com"},
	    {"shop.example.com", "example.com"},
	    {"deep.er.sub.example.org", "example.org"},
	    /* The private section counts, as at Let's Encrypt. */
	    {"alice.github.io", "alice.github.io"},
	    {"x.alice.github.io", "alice.github.io"},
	    /* A public suffix itself is its own key. */
	    {"co.uk", "co.uk"},
	};
	char out[NAME_MAX_LEN + 1], tiny[5];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    engine_limits_regdomain(cases[i].in, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].out);
	}
	assert_int_equal(engine_limits_regdomain("", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(
	    engine_limits_regdomain("a.example.com", tiny, sizeof(tiny)),
	    -ENOSPC);
}

static void test_setkey(void **state)
{
	const char *names[] = {"WWW.example.com", "example.com",
			       "www.example.com", "api.example.com"};
	char out[128];

	(void)state;
	assert_int_equal(engine_limits_setkey(names, 4, out, sizeof(out)), 0);
	assert_string_equal(out,
			    "api.example.com,example.com,www.example.com");
	assert_int_equal(engine_limits_setkey(names + 1, 1, out, sizeof(out)),
			 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(engine_limits_setkey(names, 0, out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(engine_limits_setkey(names, 4, out, 20), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_le_table),
	    cmocka_unit_test(test_bucket_math),
	    cmocka_unit_test(test_when_agrees_with_can),
	    cmocka_unit_test(test_ledger_take_can_when),
	    cmocka_unit_test(test_persist_restore),
	    cmocka_unit_test(test_clock_stepped_back),
	    cmocka_unit_test(test_override_gc_headroom),
	    cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_regdomain),
	    cmocka_unit_test(test_setkey),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
