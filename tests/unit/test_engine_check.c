/*
 * Unit tests for engine_daemon_check_live, the check a reload runs on the
 * engine's live settings before it applies any part (cli_reload.c): it
 * needs no daemon; Let's Encrypt's table, no table and limits turned off
 * (any period) pass; a limit with tokens but no refill period is refused
 * with the limit's name, wherever it sits in the table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

static void test_accepts(void **state)
{
	struct engine_limit_def t[ENGINE_LIMIT__MAX];
	struct engine_daemon_opts o = {0};
	char err[128] = "";

	(void)state;
	assert_int_equal(engine_daemon_check_live(&o, err, sizeof(err)), 0);
	memcpy(t, engine_limits_letsencrypt, sizeof(t));
	o.limits = t;
	assert_int_equal(engine_daemon_check_live(&o, err, sizeof(err)), 0);
	/* off: the period is ignored (limits.orders = 0 parses to 0/0) */
	t[ENGINE_LIMIT_ORDERS].capacity = 0;
	t[ENGINE_LIMIT_ORDERS].period_ms = 0;
	assert_int_equal(engine_daemon_check_live(&o, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_refuses_each(void **state)
{
	(void)state;
	for (int k = 0; k < ENGINE_LIMIT__MAX; k++) {
		struct engine_limit_def t[ENGINE_LIMIT__MAX];
		struct engine_daemon_opts o = {.limits = t};
		char err[128] = "", want[128];

		memcpy(t, engine_limits_letsencrypt, sizeof(t));
		t[k].capacity = 5;
		t[k].period_ms = k % 2 ? 0 : -1000;
		assert_int_equal(engine_daemon_check_live(&o, err, sizeof(err)),
				 -EINVAL);
		snprintf(want, sizeof(want), "bad rate limit for %s",
			 engine_limit_names[k]);
		assert_string_equal(err, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts),
	    cmocka_unit_test(test_refuses_each),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
