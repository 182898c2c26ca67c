/*
 * Unit tests for engine_renew with a fake clock: renewal times for 90-day,
 * 6-day and 160-hour certificates, jitter bounds over many random inputs,
 * ARI windows in the future, straddling now and in the past, invalid
 * windows, the safety margin, urgency classes, ARI polling clamps, and the
 * failure backoff: sequence, cap, jitter, Retry-After, rateLimited and
 * permanent problems.
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

#define H ENGINE_HOUR_MS
#define D ENGINE_DAY_MS
/* A fixed "now": 2025-06-01T00:00:00Z. */
#define T0 ((int64_t)1748736000 * 1000)

/* splitmix64: a deterministic stream of test inputs. */
static uint64_t rng_state = 42;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void test_lifetime_90d(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D, life = 90 * D;
	int64_t lo = nb + life * 2 / 3 - life / 50;
	int64_t hi = nb + life * 2 / 3 + life / 50;
	int64_t min = INT64_MAX, max = INT64_MIN;
	int i;

	(void)state;
	/* The middle of the random range lands on exactly 2/3 (day 60). */
	assert_int_equal(engine_renew_at(nb, na, NULL, T0, 1ull << 63),
			 nb + 60 * D);
	for (i = 0; i < 10000; i++) {
		int64_t at = engine_renew_at(nb, na, NULL, T0, rnd());

		assert_true(at >= lo && at <= hi);
		min = at < min ? at : min;
		max = at > max ? at : max;
	}
	/* The jitter is used, both ways: spread over most of +-1.8 days. */
	assert_true(min < nb + 60 * D - 17 * H);
	assert_true(max > nb + 60 * D + 17 * H);
	/* Extremes of rnd. */
	assert_true(engine_renew_at(nb, na, NULL, T0, 0) >= lo);
	assert_true(engine_renew_at(nb, na, NULL, T0, UINT64_MAX) <= hi);
	/* The safety margin is 9 days. */
	assert_int_equal(engine_renew_margin(nb, na), 9 * D);
}

static void test_lifetime_6d(void **state)
{
	int64_t nb = T0, na = T0 + 6 * D, life = 6 * D;
	int i;

	(void)state;
	/* Under 10 days: half the lifetime, +-2 %. */
	assert_int_equal(engine_renew_at(nb, na, NULL, T0, 1ull << 63),
			 nb + 3 * D);
	for (i = 0; i < 10000; i++) {
		int64_t at = engine_renew_at(nb, na, NULL, T0, rnd());

		assert_true(at >= nb + life / 2 - life / 50);
		assert_true(at <= nb + life / 2 + life / 50);
		assert_true(at <= na - engine_renew_margin(nb, na));
	}
}

static void test_lifetime_160h(void **state)
{
	int64_t nb = T0, na = T0 + 160 * H;
	int64_t at = engine_renew_at(nb, na, NULL, T0, 1ull << 63);

	(void)state;
	/* 160 h = 6.67 days < 10 days: at 80 h. */
	assert_int_equal(at, nb + 80 * H);
	assert_int_equal(engine_renew_margin(nb, na), 16 * H);
	/* 10 days exactly is not "shorter than 10 days": 2/3. */
	assert_int_equal(engine_renew_at(nb, nb + 10 * D, NULL, T0, 1ull << 63),
			 nb + 10 * D / 3 * 2);
}

static void test_invalid_lifetime(void **state)
{
	(void)state;
	assert_int_equal(engine_renew_at(T0, T0, NULL, T0 + 5, 7), T0 + 5);
	assert_int_equal(engine_renew_at(T0, T0 - D, NULL, T0 + 5, 7), T0 + 5);
}

static void test_ari_future_window(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;
	struct engine_ari_window w = {nb + 60 * D, nb + 62 * D};
	int64_t min = INT64_MAX, max = INT64_MIN;
	int i;

	(void)state;
	assert_int_equal(engine_renew_at(nb, na, &w, T0, 0), w.start_ms);
	assert_int_equal(engine_renew_at(nb, na, &w, T0, 1ull << 63),
			 nb + 61 * D);
	for (i = 0; i < 10000; i++) {
		int64_t at = engine_renew_at(nb, na, &w, T0, rnd());

		assert_true(at >= w.start_ms && at < w.end_ms);
		min = at < min ? at : min;
		max = at > max ? at : max;
	}
	/* Uniform over the window: both ends reached within 1 %. */
	assert_true(min < w.start_ms + 2 * D / 100);
	assert_true(max > w.end_ms - 2 * D / 100);
}

static void test_ari_past_and_straddling(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;
	struct engine_ari_window past = {nb + 10 * D, nb + 11 * D};
	struct engine_ari_window now_in = {nb + 20 * D, nb + 22 * D};
	int64_t now = nb + 21 * D;

	(void)state;
	/* Window wholly past: now, whatever rnd says. */
	assert_int_equal(engine_renew_at(nb, na, &past, nb + 30 * D, 0),
			 nb + 30 * D);
	assert_int_equal(
	    engine_renew_at(nb, na, &past, nb + 30 * D, UINT64_MAX),
	    nb + 30 * D);
	/* Straddling now: a point before now means now, after stays. */
	assert_int_equal(engine_renew_at(nb, na, &now_in, now, 0), now);
	assert_true(engine_renew_at(nb, na, &now_in, now, UINT64_MAX) > now);
}

static void test_ari_invalid_and_clamped(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;
	struct engine_ari_window bad = {nb + 62 * D, nb + 60 * D};
	struct engine_ari_window empty = {nb + 60 * D, nb + 60 * D};
	struct engine_ari_window late = {na - D, na + 5 * D};

	(void)state;
	/* end <= start: ignored (RFC 9773 §4.2), lifetime rule applies. */
	assert_int_equal(engine_renew_at(nb, na, &bad, T0, 1ull << 63),
			 nb + 60 * D);
	assert_int_equal(engine_renew_at(nb, na, &empty, T0, 1ull << 63),
			 nb + 60 * D);
	/* A window past the margin is pulled back to not_after - 9 d. */
	assert_int_equal(engine_renew_at(nb, na, &late, T0, 0), na - 9 * D);
	/* ... and once that is past too, now. */
	assert_int_equal(engine_renew_at(nb, na, &late, na - 2 * D, 0),
			 na - 2 * D);
}

static void test_class(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;

	(void)state;
	assert_int_equal(engine_renew_urgent_at(nb, na), na - 18 * D);
	assert_int_equal(engine_renew_class(nb, na, nb + 60 * D),
			 ENGINE_CLASS_EARLY);
	assert_int_equal(engine_renew_class(nb, na, na - 18 * D),
			 ENGINE_CLASS_URGENT);
	assert_int_equal(engine_renew_class(nb, na, na + D),
			 ENGINE_CLASS_URGENT);
	/* The latest renewal time (margin) is always urgent. */
	assert_true(na - engine_renew_margin(nb, na) >=
		    engine_renew_urgent_at(nb, na));
	assert_string_equal(engine_class_names[ENGINE_CLASS_NEW], "new");
}

static void test_ari_next(void **state)
{
	int64_t na = T0 + 90 * D;

	(void)state;
	/* No Retry-After: 6 h. */
	assert_int_equal(engine_renew_ari_next(T0, -1, na), T0 + 6 * H);
	/* Clamped below at 1 h and above at 24 h. */
	assert_int_equal(engine_renew_ari_next(T0, 0, na), T0 + H);
	assert_int_equal(engine_renew_ari_next(T0, 60 * 1000, na), T0 + H);
	assert_int_equal(engine_renew_ari_next(T0, 5 * H, na), T0 + 5 * H);
	assert_int_equal(engine_renew_ari_next(T0, 3 * D, na), T0 + D);
	assert_int_equal(engine_renew_ari_next(T0, INT64_MAX, na), T0 + D);
	/* Nothing to check once the certificate has expired. */
	assert_true(engine_renew_ari_next(T0, 6 * H, T0 + 2 * H) ==
		    ENGINE_NEVER);
}

static void test_backoff_sequence(void **state)
{
	const int64_t mins[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
				1440, 1440, 1440};
	unsigned n;
	const char *why = NULL;

	(void)state;
	for (n = 1; n <= sizeof(mins) / sizeof(mins[0]); n++) {
		int64_t base = mins[n - 1] * ENGINE_MIN_MS;
		int i;

		/* rnd at the middle: exactly the nominal delay. */
		assert_int_equal(
		    engine_renew_backoff(n, NULL, T0, 1ull << 63, &why),
		    T0 + base);
		assert_string_equal(why, "backoff");
		for (i = 0; i < 1000; i++) {
			int64_t at = engine_renew_backoff(n, NULL, T0, rnd(),
							  NULL);

			assert_true(at >= T0 + base * 9 / 10);
			assert_true(at < T0 + base * 11 / 10);
		}
	}
	/* 0 is taken as 1; huge counts do not overflow. */
	assert_int_equal(engine_renew_backoff(0, NULL, T0, 1ull << 63, NULL),
			 T0 + ENGINE_MIN_MS);
	assert_int_equal(
	    engine_renew_backoff(UINT32_MAX, NULL, T0, 1ull << 63, NULL),
	    T0 + D);
}

static void test_backoff_transient_and_retry_after(void **state)
{
	struct acme_error e = {0};
	const char *why = NULL;

	(void)state;
	e.code = ACME_E_PROBLEM;
	e.type = "serverInternal";
	e.retry_after_ms = -1;
	assert_int_equal(engine_renew_backoff(3, &e, T0, 1ull << 63, &why),
			 T0 + 4 * ENGINE_MIN_MS);
	assert_string_equal(why, "backoff");
	/* A Retry-After longer than the backoff wins... */
	e.retry_after_ms = 2 * H;
	assert_int_equal(engine_renew_backoff(3, &e, T0, 1ull << 63, &why),
			 T0 + 2 * H);
	assert_string_equal(why, "retry-after");
	/* ... a shorter one does not shorten it. */
	e.retry_after_ms = 10 * 1000;
	assert_int_equal(engine_renew_backoff(3, &e, T0, 1ull << 63, &why),
			 T0 + 4 * ENGINE_MIN_MS);
	assert_string_equal(why, "backoff");
	/* Transport failures are transient. */
	memset(&e, 0, sizeof(e));
	e.code = ACME_E_TRANSPORT;
	e.retry_after_ms = -1;
	assert_true(engine_renew_backoff(1, &e, T0, 0, NULL) < ENGINE_NEVER);
}

static void test_backoff_rate_limited(void **state)
{
	struct acme_error e = {0};
	const char *why = NULL;
	int i;

	(void)state;
	e.code = ACME_E_PROBLEM;
	e.type = "rateLimited";
	e.retry_after_ms = 3 * H;
	/* Exactly the Retry-After, whatever the failure count, plus
	 * [0, 1 min) so refused names do not return in lockstep. */
	assert_int_equal(engine_renew_backoff(9, &e, T0, 0, &why), T0 + 3 * H);
	assert_string_equal(why, "rate-limited");
	for (i = 0; i < 1000; i++) {
		int64_t at = engine_renew_backoff(1, &e, T0, rnd(), NULL);

		assert_true(at >= T0 + 3 * H);
		assert_true(at < T0 + 3 * H + ENGINE_MIN_MS);
	}
	/* Without a Retry-After: ordinary backoff. */
	e.retry_after_ms = -1;
	assert_int_equal(engine_renew_backoff(2, &e, T0, 1ull << 63, &why),
			 T0 + 2 * ENGINE_MIN_MS);
	assert_string_equal(why, "backoff");
}

static void test_backoff_permanent(void **state)
{
	static const char *const perm[] = {"rejectedIdentifier", "caa",
					   "unsupportedIdentifier", "badCSR",
					   "malformed", "userActionRequired"};
	struct acme_subproblem sub[2] = {{0}};
	struct acme_error e = {0};
	const char *why = NULL;
	size_t i;

	(void)state;
	e.code = ACME_E_PROBLEM;
	e.retry_after_ms = 5 * H; /* irrelevant when permanent */
	for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++) {
		e.type = (char *)perm[i];
		why = NULL;
		assert_true(engine_renew_backoff(1, &e, T0, 0, &why) ==
			    ENGINE_NEVER);
		assert_string_equal(why, "permanent");
	}
	/* Compound: permanent only when every subproblem is. */
	e.type = "compound";
	e.sub = sub;
	e.n_sub = 2;
	sub[0].type = "rejectedIdentifier";
	sub[1].type = "unsupportedIdentifier";
	assert_true(engine_renew_backoff(1, &e, T0, 0, &why) == ENGINE_NEVER);
	sub[1].type = "dns";
	assert_true(engine_renew_backoff(1, &e, T0, 0, &why) < ENGINE_NEVER);
	assert_string_equal(why, "retry-after");
}

/* The due decision: without ARI always renew; with ARI renew only when
 * the known window's point has come, else ask the CA first. */
static void test_due_decision(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;
	struct engine_ari_window past = {T0 + 10 * D, T0 + 11 * D};
	struct engine_ari_window future = {T0 + 60 * D, T0 + 62 * D};
	struct engine_ari_window bad = {T0 + 60 * D, T0 + 60 * D};
	int64_t now = T0 + 61 * D;

	(void)state;
	assert_int_equal(engine_renew_due(nb, na, NULL, 0, now, rnd()),
			 ENGINE_DUE_RENEW);
	assert_int_equal(engine_renew_due(nb, na, &future, 0, T0, rnd()),
			 ENGINE_DUE_RENEW);
	/* ARI usable, nothing known yet: ask. */
	assert_int_equal(engine_renew_due(nb, na, NULL, 1, now, rnd()),
			 ENGINE_DUE_ASK_ARI);
	assert_int_equal(engine_renew_due(nb, na, &bad, 1, now, rnd()),
			 ENGINE_DUE_ASK_ARI);
	/* A window in the past (a revoked certificate, a forced renewal). */
	assert_int_equal(engine_renew_due(nb, na, &past, 1, T0 + 20 * D, rnd()),
			 ENGINE_DUE_RENEW);
	/* A future window: this due time was a poll time. */
	assert_int_equal(engine_renew_due(nb, na, &future, 1, T0 + D, rnd()),
			 ENGINE_DUE_ASK_ARI);
	/* Past the window's end: renew whatever the seed. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(engine_renew_due(nb, na, &future, 1,
						  T0 + 62 * D, rnd()),
				 ENGINE_DUE_RENEW);
	/* Inside the window: renew exactly when the seed's point passed. */
	for (int i = 0; i < 1000; i++) {
		uint64_t r = rnd();
		int64_t at = engine_renew_at(nb, na, &future, T0, r);

		assert_int_equal(engine_renew_due(nb, na, &future, 1, at - 1, r),
				 ENGINE_DUE_ASK_ARI);
		assert_int_equal(engine_renew_due(nb, na, &future, 1, at, r),
				 ENGINE_DUE_RENEW);
	}
	/* Expired: nothing to ask about. */
	assert_int_equal(engine_renew_due(nb, na, NULL, 1, na, rnd()),
			 ENGINE_DUE_RENEW);
}

static void test_after_ari(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D, next = 0;
	struct engine_ari_window future = {T0 + 60 * D, T0 + 62 * D};
	struct engine_ari_window past = {T0 - 2 * H, T0 - H};

	(void)state;
	/* Window in the past: renew now. */
	assert_int_equal(engine_renew_after_ari(nb, na, &past, 6 * H, T0 + D,
						rnd(), &next),
			 1);
	assert_int_equal(next, T0 + D);
	/* Far window: next poll by Retry-After (clamped), before the point. */
	assert_int_equal(engine_renew_after_ari(nb, na, &future, 6 * H, T0,
						rnd(), &next),
			 0);
	assert_int_equal(next, T0 + 6 * H);
	assert_int_equal(engine_renew_after_ari(nb, na, &future, 60 * 1000, T0,
						rnd(), &next),
			 0);
	assert_int_equal(next, T0 + H);
	/* Close window: its point comes before the next poll. */
	for (int i = 0; i < 1000; i++) {
		uint64_t r = rnd();
		int64_t now = T0 + 60 * D - H;

		assert_int_equal(engine_renew_after_ari(nb, na, &future, 3 * D,
							now, r, &next),
				 0);
		assert_int_equal(next, engine_renew_at(nb, na, &future, now, r) <
						 now + D
					   ? engine_renew_at(nb, na, &future,
							     now, r)
					   : now + D);
	}
	/* Fetch failed: the lifetime rule decides, next try in 1 h. */
	assert_int_equal(engine_renew_after_ari(nb, na, NULL, -1, T0 + D, rnd(),
						&next),
			 0);
	assert_int_equal(next, T0 + D + H);
	assert_int_equal(engine_renew_after_ari(nb, na, NULL, -1, T0 + 70 * D,
						rnd(), &next),
			 1);
}

static void test_first_and_seed(void **state)
{
	int64_t nb = T0, na = T0 + 90 * D;
	uint64_t r = rnd();

	(void)state;
	assert_int_equal(engine_renew_first(nb, na, 0, T0, r),
			 engine_renew_at(nb, na, NULL, T0, r));
	assert_int_equal(engine_renew_first(nb, na, 1, T0, r), T0 + 6 * H);
	/* A 6-hour certificate: its lifetime point (3 h) comes first. */
	assert_int_equal(engine_renew_first(nb, nb + 6 * H, 1, T0, r),
			 engine_renew_at(nb, nb + 6 * H, NULL, T0, r));
	/* Stable and spread. */
	assert_true(engine_renew_seed("0a1b") == engine_renew_seed("0a1b"));
	assert_true(engine_renew_seed("0a1b") != engine_renew_seed("0a1c"));
	assert_true((engine_renew_seed("01") >> 60) !=
			    (engine_renew_seed("02") >> 60) ||
		    (engine_renew_seed("03") >> 60) !=
			    (engine_renew_seed("04") >> 60));
	assert_true(engine_renew_seed(NULL) == engine_renew_seed(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifetime_90d),
	    cmocka_unit_test(test_lifetime_6d),
	    cmocka_unit_test(test_lifetime_160h),
	    cmocka_unit_test(test_invalid_lifetime),
	    cmocka_unit_test(test_ari_future_window),
	    cmocka_unit_test(test_ari_past_and_straddling),
	    cmocka_unit_test(test_ari_invalid_and_clamped),
	    cmocka_unit_test(test_class),
	    cmocka_unit_test(test_ari_next),
	    cmocka_unit_test(test_due_decision),
	    cmocka_unit_test(test_after_ari),
	    cmocka_unit_test(test_first_and_seed),
	    cmocka_unit_test(test_backoff_sequence),
	    cmocka_unit_test(test_backoff_transient_and_retry_after),
	    cmocka_unit_test(test_backoff_rate_limited),
	    cmocka_unit_test(test_backoff_permanent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
