/*
 * Unit tests of on-demand issuance's pure parts: the table of names being
 * decided and decided (demand_table.c: states, the pending bound that
 * refuses a flood at the door, the settled bound that drops the oldest,
 * expiry, drop) and the ask URL (demand_ask.c). Times are arguments.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "demand/demand.h"

static void test_table_states(void **state)
{
	struct demand_table *t = demand_table_new(4, 8);
	char name[DEMAND_NAME_MAX + 1];

	assert_non_null(t);
	assert_int_equal(demand_table_check(t, "a.example.com", 0),
			 DEMAND_QUEUE);
	/* asked again while queued, then while checking: wait, once */
	assert_int_equal(demand_table_check(t, "a.example.com", 1),
			 DEMAND_WAIT);
	assert_int_equal(demand_table_pending(t), 1);
	assert_int_equal(demand_table_take(t, name), 1);
	assert_string_equal(name, "a.example.com");
	assert_int_equal(demand_table_take(t, name), 0);
	assert_int_equal(demand_table_state(t, "a.example.com"),
			 DEMAND_CHECKING);
	assert_int_equal(demand_table_check(t, "a.example.com", 2),
			 DEMAND_WAIT);
	/* allowed: wait until it expires, then it is asked about again */
	assert_int_equal(
	    demand_table_settle(t, "a.example.com", DEMAND_WAITING, 100), 0);
	assert_int_equal(demand_table_pending(t), 0);
	assert_int_equal(demand_table_check(t, "a.example.com", 99),
			 DEMAND_WAIT);
	assert_int_equal(demand_table_check(t, "a.example.com", 100),
			 DEMAND_QUEUE);
	assert_int_equal(demand_table_take(t, name), 1);
	/* denied: refused until it expires */
	assert_int_equal(
	    demand_table_settle(t, "a.example.com", DEMAND_DENIED, 200), 0);
	assert_int_equal(demand_table_check(t, "a.example.com", 150),
			 DEMAND_REFUSE);
	assert_int_equal(demand_table_check(t, "a.example.com", 200),
			 DEMAND_QUEUE);
	/* only settled states can be settled to; bad names are refused */
	assert_int_equal(
	    demand_table_settle(t, "a.example.com", DEMAND_QUEUED, 0), -EINVAL);
	assert_int_equal(demand_table_check(t, "", 0), DEMAND_REFUSE);
	/* drop forgets a settled name, not one being decided */
	demand_table_drop(t, "a.example.com");
	assert_int_equal(demand_table_state(t, "a.example.com"), DEMAND_QUEUED);
	assert_int_equal(demand_table_take(t, name), 1);
	assert_int_equal(
	    demand_table_settle(t, "a.example.com", DEMAND_WAITING, 1000), 0);
	demand_table_drop(t, "a.example.com");
	assert_int_equal(demand_table_state(t, "a.example.com"), DEMAND__MAX);
	assert_int_equal(demand_table_count(t, DEMAND_WAITING), 0);
	/* a failed order settles a waiting name as denied (demand_failed) */
	assert_int_equal(
	    demand_table_settle(t, "b.example.com", DEMAND_WAITING, 1000), 0);
	assert_int_equal(
	    demand_table_settle(t, "b.example.com", DEMAND_DENIED, 1000), 0);
	assert_int_equal(demand_table_count(t, DEMAND_WAITING), 0);
	assert_int_equal(demand_table_count(t, DEMAND_DENIED), 1);
	demand_table_free(t);
}

static void test_table_flood(void **state)
{
	struct demand_table *t = demand_table_new(16, 64);
	char name[DEMAND_NAME_MAX + 1], n[64];
	int queued = 0, refused = 0;

	assert_non_null(t);
	/* 10,000 new names while nothing is decided: 16 queued, the rest
	 * refused at once and not remembered */
	for (int i = 0; i < 10000; i++) {
		snprintf(n, sizeof(n), "r%d.flood.example", i);
		switch (demand_table_check(t, n, 0)) {
		case DEMAND_QUEUE:
			queued++;
			break;
		case DEMAND_REFUSE:
			refused++;
			break;
		default:
			fail();
		}
	}
	assert_int_equal(queued, 16);
	assert_int_equal(refused, 10000 - 16);
	assert_int_equal(demand_table_pending(t), 16);
	assert_int_equal(demand_table_state(t, "r9999.flood.example"),
			 DEMAND__MAX);
	/* decided in order, oldest first */
	for (int i = 0; i < 16; i++) {
		assert_int_equal(demand_table_take(t, name), 1);
		snprintf(n, sizeof(n), "r%d.flood.example", i);
		assert_string_equal(name, n);
		assert_int_equal(
		    demand_table_settle(t, name, DEMAND_DENIED, 1000), 0);
	}
	/* the settled bound: 100 more denials keep the newest 64 */
	for (int i = 0; i < 100; i++) {
		snprintf(n, sizeof(n), "s%d.flood.example", i);
		assert_int_equal(demand_table_check(t, n, 0), DEMAND_QUEUE);
		assert_int_equal(demand_table_take(t, name), 1);
		assert_int_equal(
		    demand_table_settle(t, name, DEMAND_DENIED, 1000), 0);
	}
	assert_int_equal(demand_table_count(t, DEMAND_DENIED), 64);
	assert_int_equal(demand_table_state(t, "r0.flood.example"),
			 DEMAND__MAX);
	assert_int_equal(demand_table_state(t, "s35.flood.example"),
			 DEMAND__MAX);
	assert_int_equal(demand_table_state(t, "s36.flood.example"),
			 DEMAND_DENIED);
	assert_int_equal(demand_table_check(t, "s99.flood.example", 1),
			 DEMAND_REFUSE);
	demand_table_free(t);
}

/* A reload with a new ask forgets the denials, nothing else. */
static void test_table_forget_denied(void **state)
{
	struct demand_table *t = demand_table_new(4, 8);

	(void)state;
	assert_non_null(t);
	assert_int_equal(demand_table_settle(t, "d1.example.com",
					     DEMAND_DENIED, 1000), 0);
	assert_int_equal(demand_table_settle(t, "w.example.com",
					     DEMAND_WAITING, 1000), 0);
	assert_int_equal(demand_table_settle(t, "d2.example.com",
					     DEMAND_DENIED, 1000), 0);
	assert_int_equal(demand_table_check(t, "q.example.com", 0),
			 DEMAND_QUEUE);
	demand_table_forget_denied(t);
	assert_int_equal(demand_table_count(t, DEMAND_DENIED), 0);
	assert_int_equal(demand_table_state(t, "d1.example.com"), DEMAND__MAX);
	assert_int_equal(demand_table_state(t, "d2.example.com"), DEMAND__MAX);
	assert_int_equal(demand_table_state(t, "w.example.com"),
			 DEMAND_WAITING);
	assert_int_equal(demand_table_state(t, "q.example.com"), DEMAND_QUEUED);
	/* asked about again: queued, not refused */
	assert_int_equal(demand_table_check(t, "d1.example.com", 1),
			 DEMAND_QUEUE);
	demand_table_forget_denied(t); /* nothing to forget: no change */
	assert_int_equal(demand_table_pending(t), 2);
	demand_table_free(t);
}

static void test_ask_url(void **state)
{
	char out[128];

	assert_int_equal(demand_ask_url("http://p.example/ask", "a.example.com",
					out, sizeof(out)),
			 0);
	assert_string_equal(out, "http://p.example/ask?domain=a.example.com");
	assert_int_equal(demand_ask_url("https://p.example/ask?token=s3cret",
					"a.example.com", out, sizeof(out)),
			 0);
	assert_string_equal(
	    out, "https://p.example/ask?token=s3cret&domain=a.example.com");
	assert_int_equal(demand_ask_url("http://p.example/ask?", "b.example",
					out, sizeof(out)),
			 0);
	assert_string_equal(out, "http://p.example/ask?domain=b.example");
	assert_int_equal(demand_ask_url("http://p.example/ask#frag",
					"b.example", out, sizeof(out)),
			 0);
	assert_string_equal(out, "http://p.example/ask?domain=b.example");
	/* a name that would need escaping is not an SNI name */
	assert_int_equal(
	    demand_ask_url("http://p/", "a&b.example", out, sizeof(out)),
	    -EINVAL);
	assert_int_equal(
	    demand_ask_url("http://p/", "A.example", out, sizeof(out)),
	    -EINVAL);
	assert_int_equal(demand_ask_url("", "a.example", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(
	    demand_ask_url("http://p.example/ask", "a.example.com", out, 20),
	    -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_states),
	    cmocka_unit_test(test_table_flood),
	    cmocka_unit_test(test_table_forget_denied),
	    cmocka_unit_test(test_ask_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
