/*
 * Unit tests for engine_queue with a fake clock: 100,000 random items
 * popped in exactly the order of a sort by (class, due, name), with
 * random updates and removals on the way; peek/get; promotion of early
 * renewals to urgent on time; and the pick rule under the ledger: class
 * order, the early-renewal reserve (an empty share skips the class, so
 * onboarding goes on), a domain at its own limit deferred without
 * blocking others, renewal exemption, wake-up times, and that what is
 * picked is charged.
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

#include "engine/engine.h"
#include "util/util.h"

#define H  ENGINE_HOUR_MS
#define D  ENGINE_DAY_MS
#define T0 ((int64_t)1748736000 * 1000)

static uint64_t rng_state = 7;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct ref {
	char name[32];
	int cls;
	int64_t due;
	int live;
};

static int ref_cmp(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->live != y->live)
		return y->live - x->live; /* live first */
	if (x->cls != y->cls)
		return x->cls - y->cls;
	if (x->due != y->due)
		return x->due < y->due ? -1 : 1;
	return strcmp(x->name, y->name);
}

#define N 100000

static void test_order_against_sort(void **state)
{
	struct engine_queue *q = engine_queue_new();
	struct ref *r = calloc(N, sizeof(*r));
	struct engine_queue_item it;
	char name[NAME_MAX_LEN + 1];
	size_t i, live = N;

	(void)state;
	assert_non_null(q);
	assert_non_null(r);
	for (i = 0; i < N; i++) {
		snprintf(r[i].name, sizeof(r[i].name), "d%zu.example", i);
		r[i].cls = (int)(rnd() % ENGINE_CLASS__MAX);
		/* Few distinct due times, so ties by name are exercised. */
		r[i].due = T0 + (int64_t)(rnd() % 1000) * 1000;
		r[i].live = 1;
		assert_int_equal(engine_queue_push(q, r[i].name, r[i].cls,
						   r[i].due, ENGINE_NEVER),
				 0);
	}
	assert_int_equal(engine_queue_size(q), N);
	/* Update a third (class and time), remove a tenth. */
	for (i = 0; i < N; i++) {
		uint64_t x = rnd();

		if (x % 3 == 0) {
			r[i].cls = (int)((x >> 8) % ENGINE_CLASS__MAX);
			r[i].due = T0 + (int64_t)((x >> 16) % 1000) * 1000;
			assert_int_equal(engine_queue_push(q, r[i].name,
							   r[i].cls, r[i].due,
							   ENGINE_NEVER),
					 0);
		} else if (x % 10 == 1) {
			assert_int_equal(engine_queue_remove(q, r[i].name), 0);
			assert_int_equal(engine_queue_remove(q, r[i].name),
					 -ENOENT);
			r[i].live = 0;
			live--;
		}
	}
	assert_int_equal(engine_queue_size(q), live);
	/* Lookups by name. */
	for (i = 0; i < N; i += 997) {
		int rc = engine_queue_get(q, r[i].name, &it);

		if (!r[i].live) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(it.name, r[i].name);
		assert_int_equal(it.cls, r[i].cls);
		assert_int_equal(it.due_ms, r[i].due);
	}
	qsort(r, N, sizeof(*r), ref_cmp);
	for (i = 0; i < live; i++) {
		struct engine_queue_item pk;

		assert_int_equal(engine_queue_peek(q, &pk), 0);
		assert_string_equal(pk.name, r[i].name);
		assert_int_equal(engine_queue_pop(q, name, sizeof(name), &it),
				 0);
		assert_string_equal(name, r[i].name);
		assert_string_equal(it.name, r[i].name);
		assert_int_equal(it.cls, r[i].cls);
		assert_int_equal(it.due_ms, r[i].due);
	}
	assert_int_equal(engine_queue_size(q), 0);
	assert_int_equal(engine_queue_pop(q, name, sizeof(name), &it), -ENOENT);
	assert_int_equal(engine_queue_peek(q, &it), -ENOENT);
	/* Reuse after emptying (free list). */
	assert_int_equal(engine_queue_push(q, "again.example", 1, T0, 0), 0);
	assert_int_equal(engine_queue_size(q), 1);
	free(r);
	engine_queue_free(q);
}

static void test_push_rejects(void **state)
{
	struct engine_queue *q = engine_queue_new();
	char longname[NAME_MAX_LEN + 2];

	(void)state;
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(engine_queue_push(q, "", 0, T0, ENGINE_NEVER),
			 -EINVAL);
	assert_int_equal(engine_queue_push(q, NULL, 0, T0, ENGINE_NEVER),
			 -EINVAL);
	assert_int_equal(engine_queue_push(q, longname, 0, T0, ENGINE_NEVER),
			 -EINVAL);
	assert_int_equal(engine_queue_push(q, "a.example", ENGINE_CLASS__MAX,
					   T0, ENGINE_NEVER),
			 -EINVAL);
	assert_int_equal(engine_queue_size(q), 0);
	engine_queue_free(q);
	engine_queue_free(NULL);
}

static void test_promote(void **state)
{
	struct engine_queue *q = engine_queue_new();
	struct engine_queue_item it;

	(void)state;
	/* Two early renewals due now; one becomes urgent at T0 + 1 h. */
	assert_int_equal(engine_queue_push(q, "a.example", ENGINE_CLASS_EARLY,
					   T0, T0 + 2 * H),
			 0);
	assert_int_equal(engine_queue_push(q, "b.example", ENGINE_CLASS_EARLY,
					   T0 + 5, T0 + H),
			 0);
	assert_int_equal(engine_queue_promote(q, T0 + H - 1), 0);
	assert_int_equal(engine_queue_promote(q, T0 + H), 1);
	assert_int_equal(engine_queue_get(q, "b.example", &it), 0);
	assert_int_equal(it.cls, ENGINE_CLASS_URGENT);
	assert_int_equal(engine_queue_peek(q, &it), 0);
	assert_string_equal(it.name, "b.example");
	/* Updating cancels a pending promotion. */
	assert_int_equal(engine_queue_push(q, "a.example", ENGINE_CLASS_EARLY,
					   T0, ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_promote(q, T0 + 10 * D), 0);
	/* Removing an item with a pending promotion. */
	assert_int_equal(engine_queue_push(q, "c.example", ENGINE_CLASS_EARLY,
					   T0, T0 + H),
			 0);
	assert_int_equal(engine_queue_remove(q, "c.example"), 0);
	assert_int_equal(engine_queue_promote(q, T0 + 10 * D), 0);
	engine_queue_free(q);
}

/* Pick everything startable now; return the number picked. */
static int drain(struct engine_queue *q, struct engine_limits *l, int64_t now,
		 char out[][NAME_MAX_LEN + 1], int max)
{
	struct engine_queue_item it;
	int n = 0, rc;

	while (n < max && (rc = engine_queue_next(q, l, now, out[n],
						  NAME_MAX_LEN + 1, &it,
						  NULL)) == 1)
		n++;
	return n;
}

static void test_next_class_order(void **state)
{
	struct engine_queue *q = engine_queue_new();
	struct engine_queue_item it;
	char name[NAME_MAX_LEN + 1];
	int64_t wake;

	(void)state;
	assert_int_equal(engine_queue_push(q, "early.example",
					   ENGINE_CLASS_EARLY, T0 - D,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_push(q, "new.example", ENGINE_CLASS_NEW,
					   T0, ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_push(q, "urgent.example",
					   ENGINE_CLASS_URGENT, T0 - 1,
					   ENGINE_NEVER),
			 0);
	/* Not due yet: urgent at T0 + 1 h waits, the rest go. */
	assert_int_equal(engine_queue_push(q, "later.example",
					   ENGINE_CLASS_URGENT, T0 + H,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(
	    engine_queue_next(q, NULL, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "urgent.example");
	assert_int_equal(wake, T0);
	assert_int_equal(
	    engine_queue_next(q, NULL, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "new.example");
	assert_int_equal(it.cls, ENGINE_CLASS_NEW);
	assert_int_equal(
	    engine_queue_next(q, NULL, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "early.example");
	assert_int_equal(
	    engine_queue_next(q, NULL, T0, name, sizeof(name), &it, &wake), 0);
	assert_int_equal(wake, T0 + H);
	assert_int_equal(engine_queue_next(q, NULL, T0 + H, name, sizeof(name),
					   &it, &wake),
			 1);
	assert_int_equal(
	    engine_queue_next(q, NULL, T0, name, sizeof(name), &it, &wake), 0);
	assert_true(wake == ENGINE_NEVER);
	assert_int_equal(engine_queue_next(q, NULL, T0, name, 10, &it, &wake),
			 -EINVAL);
	engine_queue_free(q);
}

/*
 * The priority rule under a small ORDERS bucket (10 per hour): a backlog
 * of early renewals cannot take the last half of the bucket, so new
 * domains and urgent renewals still get tokens; urgent renewals go
 * before new domains; when the early share is empty the class is skipped
 * and new domains go on; when the bucket is empty nothing starts and the
 * wake-up time is the refill.
 */
static void test_next_priority_under_empty_bucket(void **state)
{
	struct engine_limit_def orders = {10, H, 0};
	struct engine_queue *q = engine_queue_new();
	struct engine_limits *l = engine_limits_new(NULL);
	static char got[64][NAME_MAX_LEN + 1];
	struct engine_queue_item it;
	char name[NAME_MAX_LEN + 1];
	int64_t wake;
	int i, n;

	(void)state;
	assert_int_equal(engine_limits_set(l, ENGINE_LIMIT_ORDERS, &orders), 0);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "early%02d.renew.example", i);
		assert_int_equal(engine_queue_push(q, name, ENGINE_CLASS_EARLY,
						   T0 - D + i, ENGINE_NEVER),
				 0);
	}
	/* Only early renewals: they stop at the reserve (5 of 10 left). */
	n = drain(q, l, T0, got, 64);
	assert_int_equal(n, 5);
	assert_string_equal(got[0], "early00.renew.example");
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 0);
	/* Wake when the early share is back: one token = 6 min. */
	assert_int_equal(wake, T0 + 6 * 60000);

	/* New domains arrive: the early class is skipped, onboarding is not
	 * starved; 3 new (each its own registered domain), then 2 urgent
	 * renewals that come before them. */
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "new%d.shop%d.example", i, i);
		assert_int_equal(engine_queue_push(q, name, ENGINE_CLASS_NEW,
						   T0, ENGINE_NEVER),
				 0);
	}
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "urgent%d.renew.example", i);
		assert_int_equal(engine_queue_push(q, name,
						   ENGINE_CLASS_URGENT, T0,
						   ENGINE_NEVER),
				 0);
	}
	n = drain(q, l, T0, got, 64);
	assert_int_equal(n, 5);
	assert_string_equal(got[0], "urgent0.renew.example");
	assert_string_equal(got[1], "urgent1.renew.example");
	assert_string_equal(got[2], "new0.shop0.example");
	assert_string_equal(got[4], "new2.shop2.example");
	/* Bucket empty: nothing starts, even urgent; wake at the refill. */
	assert_int_equal(engine_queue_push(q, "urgent9.renew.example",
					   ENGINE_CLASS_URGENT, T0,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 0);
	assert_int_equal(wake, T0 + 6 * 60000);
	assert_int_equal(engine_queue_next(q, l, T0 + 6 * 60000, name,
					   sizeof(name), &it, &wake),
			 1);
	assert_string_equal(name, "urgent9.renew.example");
	/* Early renewals wait until the bucket holds 1 + the reserve (5)
	 * again: 6 tokens after it was emptied at T0 + 6 min. */
	assert_int_equal(engine_queue_next(q, l, T0 + 42 * 60000 - 1, name,
					   sizeof(name), &it, &wake),
			 0);
	assert_int_equal(wake, T0 + 42 * 60000);
	assert_int_equal(engine_queue_next(q, l, T0 + 42 * 60000, name,
					   sizeof(name), &it, &wake),
			 1);
	assert_string_equal(name, "early05.renew.example");
	engine_queue_free(q);
	engine_limits_free(l);
}

/* A registered domain at its limit defers its own names; the others go
 * on; renewals are exempt from the per-domain limit (LE table). */
static void test_next_per_domain_deferral(void **state)
{
	struct engine_queue *q = engine_queue_new();
	struct engine_limits *l = engine_limits_new(NULL);
	struct engine_queue_item it;
	struct engine_headroom hr;
	char name[NAME_MAX_LEN + 1];
	int64_t wake;

	(void)state;
	/* example.co.uk has 1 certificate left this week. */
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_REGDOMAIN,
					    "example.co.uk", 49, T0),
			 0);
	assert_int_equal(engine_queue_push(q, "a.example.co.uk",
					   ENGINE_CLASS_NEW, T0 - 3,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_push(q, "b.x.example.co.uk",
					   ENGINE_CLASS_NEW, T0 - 2,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_push(q, "other.example",
					   ENGINE_CLASS_NEW, T0 - 1,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(engine_queue_push(q, "renew.example.co.uk",
					   ENGINE_CLASS_EARLY, T0,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "a.example.co.uk");
	/* b.x.example.co.uk is deferred to the domain's refill (3.36 h)
	 * and other.example goes instead. */
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "other.example");
	assert_int_equal(engine_queue_get(q, "b.x.example.co.uk", &it), 0);
	assert_int_equal(it.due_ms, T0 + 7 * D / 50);
	/* The renewal of the same registered domain is exempt. */
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "renew.example.co.uk");
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 0);
	assert_int_equal(wake, T0 + 7 * D / 50);
	/* What was picked was charged: 3 orders, 2 identical-set tokens for
	 * new names and one for the renewal. */
	assert_int_equal(
	    engine_limits_headroom(l, ENGINE_LIMIT_ORDERS, "", T0, &hr), 0);
	assert_true(hr.tokens == 297);
	assert_int_equal(engine_limits_headroom(l, ENGINE_LIMIT_IDENTICAL,
						"renew.example.co.uk", T0, &hr),
			 0);
	assert_true(hr.tokens == 4);
	assert_false(engine_limits_can(l, ENGINE_LIMIT_REGDOMAIN,
				       "example.co.uk", 1, T0));
	/* A name with failed authorizations waits for that bucket too. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(engine_limits_take(l,
						    ENGINE_LIMIT_FAILED_AUTHZ,
						    "flaky.example", 1, T0),
				 0);
	assert_int_equal(engine_queue_push(q, "flaky.example",
					   ENGINE_CLASS_URGENT, T0,
					   ENGINE_NEVER),
			 0);
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 0);
	assert_int_equal(wake, T0 + 12 * 60000);
	assert_int_equal(engine_queue_next(q, l, T0 + 12 * 60000, name,
					   sizeof(name), &it, &wake),
			 1);
	assert_string_equal(name, "flaky.example");
	engine_queue_free(q);
	engine_limits_free(l);
}

/* An early renewal that waited past its promotion time is picked as
 * urgent, before new domains, and may use the reserve. */
static void test_next_promotion_beats_new(void **state)
{
	struct engine_limit_def orders = {2, H, 0};
	struct engine_queue *q = engine_queue_new();
	struct engine_limits *l = engine_limits_new(NULL);
	struct engine_queue_item it;
	char name[NAME_MAX_LEN + 1];
	int64_t wake;

	(void)state;
	assert_int_equal(engine_limits_set(l, ENGINE_LIMIT_ORDERS, &orders), 0);
	assert_int_equal(engine_limits_take(l, ENGINE_LIMIT_ORDERS, "", 1, T0),
			 0);
	assert_int_equal(engine_queue_push(q, "old.example",
					   ENGINE_CLASS_EARLY, T0 - D, T0),
			 0);
	assert_int_equal(engine_queue_push(q, "new.example", ENGINE_CLASS_NEW,
					   T0 - D, ENGINE_NEVER),
			 0);
	assert_int_equal(
	    engine_queue_next(q, l, T0, name, sizeof(name), &it, &wake), 1);
	assert_string_equal(name, "old.example");
	assert_int_equal(it.cls, ENGINE_CLASS_URGENT);
	engine_queue_free(q);
	engine_limits_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_against_sort),
	    cmocka_unit_test(test_push_rejects),
	    cmocka_unit_test(test_promote),
	    cmocka_unit_test(test_next_class_order),
	    cmocka_unit_test(test_next_priority_under_empty_bucket),
	    cmocka_unit_test(test_next_per_domain_deferral),
	    cmocka_unit_test(test_next_promotion_beats_new),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
