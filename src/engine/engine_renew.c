/*
 * engine_renew — renewal policy: when to renew a certificate, when to ask
 * the CA's renewalInfo again, and when to retry after a failure.
 *
 * Why a separate, pure file: these rules decide when a million
 * certificates get renewed and how hard we push a CA that is failing;
 * they must be exact and testable with a fake clock. Nothing here reads
 * the clock or draws random numbers: now_ms and rnd come from the caller.
 *
 * Lifetime-agnostic by design: every fallback is a fraction of the
 * certificate's own lifetime (not "30 days before expiry"), so 90-day,
 * 6-day and 160-hour certificates all get sensible schedules, and the
 * CA's ARI window (RFC 9773) wins whenever it offers one.
 */
#include <string.h>

#include "engine/engine.h"

const char *const engine_class_names[ENGINE_CLASS__MAX] = {
    [ENGINE_CLASS_URGENT] = "urgent-renewal",
    [ENGINE_CLASS_NEW] = "new",
    [ENGINE_CLASS_EARLY] = "renewal",
};

/* A uniform fraction in [0, 1) from the top 53 bits of rnd. */
static double unit(uint64_t rnd)
{
	return (double)(rnd >> 11) * (1.0 / 9007199254740992.0);
}

/* a + b without overflow past INT64_MAX (b >= 0). */
static int64_t add_sat(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	return a + b;
}

int64_t engine_renew_margin(int64_t not_before_ms, int64_t not_after_ms)
{
	int64_t life = not_after_ms - not_before_ms;
	int64_t m = life > 0 ? life / 10 : 0;

	return m < ENGINE_MIN_MS ? ENGINE_MIN_MS : m;
}

int64_t engine_renew_urgent_at(int64_t not_before_ms, int64_t not_after_ms)
{
	int64_t life = not_after_ms - not_before_ms;

	if (life <= 0)
		return not_before_ms;
	/* Twice the margin: an item that sat in the queue until the latest
	 * renewal time (not_after - margin) is urgent by then. */
	return not_after_ms - life / 5;
}

enum engine_class engine_renew_class(int64_t not_before_ms,
				     int64_t not_after_ms, int64_t now_ms)
{
	return now_ms >= engine_renew_urgent_at(not_before_ms, not_after_ms)
		   ? ENGINE_CLASS_URGENT
		   : ENGINE_CLASS_EARLY;
}

int64_t engine_renew_at(int64_t not_before_ms, int64_t not_after_ms,
			const struct engine_ari_window *ari, int64_t now_ms,
			uint64_t rnd)
{
	int64_t life = not_after_ms - not_before_ms;
	int64_t latest, at;

	if (life <= 0)
		return now_ms;
	latest =
	    not_after_ms - engine_renew_margin(not_before_ms, not_after_ms);
	if (latest < not_before_ms)
		latest = not_before_ms;

	if (ari && ari->end_ms > ari->start_ms) {
		/* RFC 9773 §4.2: a uniform random time within the window;
		 * one already passed means renew now. The window is the
		 * CA's spreading of load, so it gets no extra jitter. */
		double span = (double)(ari->end_ms - ari->start_ms);

		at = ari->start_ms + (int64_t)(unit(rnd) * span);
		if (at < now_ms)
			at = now_ms;
		/* The margin still holds: a window reaching past expiry
		 * (a CA bug or a clock skew) must not let us expire. */
		if (at > latest)
			at = latest < now_ms ? now_ms : latest;
		return at;
	}

	if (life < ENGINE_RENEW_SHORT_MS)
		at = not_before_ms + life / 2;
	else
		at = not_before_ms + life / 3 * 2;
	{
		/* +-J with J = 2 % of the lifetime, uniform. */
		double j = (double)life * ENGINE_RENEW_JITTER_PCT / 100.0;

		at += (int64_t)((unit(rnd) * 2.0 - 1.0) * j);
	}
	if (at > latest)
		at = latest;
	if (at < not_before_ms)
		at = not_before_ms;
	return at;
}

int64_t engine_renew_ari_next(int64_t now_ms, int64_t retry_after_ms,
			      int64_t not_after_ms)
{
	int64_t d = retry_after_ms < 0 ? ENGINE_ARI_DEFAULT_MS : retry_after_ms;
	int64_t at;

	/* RFC 9773 §4.3: Retry-After is the target time of the next fetch,
	 * and clients should bound it (the RFC's example: 1 minute to 1
	 * day). Our floor is 1 h: with a million certificates a 1-minute
	 * floor would let the CA ask us for ~17,000 fetches a second. */
	if (d < ENGINE_ARI_MIN_MS)
		d = ENGINE_ARI_MIN_MS;
	if (d > ENGINE_ARI_MAX_MS)
		d = ENGINE_ARI_MAX_MS;
	at = add_sat(now_ms, d);
	/* §4.3: stop checking once the certificate has expired. */
	if (at >= not_after_ms)
		return ENGINE_NEVER;
	return at;
}

static int window_ok(const struct engine_ari_window *ari)
{
	return ari && ari->end_ms > ari->start_ms;
}

enum engine_due_act engine_renew_due(int64_t not_before_ms,
				     int64_t not_after_ms,
				     const struct engine_ari_window *ari,
				     int ari_usable, int64_t now_ms,
				     uint64_t rnd)
{
	if (!ari_usable)
		return ENGINE_DUE_RENEW;
	if (window_ok(ari) && engine_renew_at(not_before_ms, not_after_ms, ari,
					      now_ms, rnd) <= now_ms)
		return ENGINE_DUE_RENEW;
	/* No window yet, or its time has not come: this was a poll time. An
	 * expired certificate has nothing to ask about (RFC 9773 §4.3). */
	return now_ms >= not_after_ms ? ENGINE_DUE_RENEW : ENGINE_DUE_ASK_ARI;
}

int engine_renew_after_ari(int64_t not_before_ms, int64_t not_after_ms,
			   const struct engine_ari_window *ari,
			   int64_t retry_after_ms, int64_t now_ms, uint64_t rnd,
			   int64_t *next_ms)
{
	const struct engine_ari_window *w = window_ok(ari) ? ari : NULL;
	int64_t at =
	    engine_renew_at(not_before_ms, not_after_ms, w, now_ms, rnd);
	int64_t poll;

	*next_ms = now_ms;
	if (at <= now_ms)
		return 1;
	poll = engine_renew_ari_next(
	    now_ms, ari ? retry_after_ms : ENGINE_ARI_MIN_MS, not_after_ms);
	*next_ms = poll < at ? poll : at;
	return 0;
}

int64_t engine_renew_first(int64_t not_before_ms, int64_t not_after_ms,
			   int ari_usable, int64_t now_ms, uint64_t rnd)
{
	int64_t at =
	    engine_renew_at(not_before_ms, not_after_ms, NULL, now_ms, rnd);
	int64_t poll;

	if (!ari_usable)
		return at;
	poll = engine_renew_ari_next(now_ms, -1, not_after_ms);
	return poll < at ? poll : at;
}

uint64_t engine_renew_seed(const char *serial)
{
	/* FNV-1a, then a final mix so close serials spread over the whole
	 * range (the window point uses the top bits). */
	uint64_t h = 0xcbf29ce484222325ull;

	for (; serial && *serial; serial++) {
		h ^= (unsigned char)*serial;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* Permanent: retrying the same request cannot help. A compound problem
 * (type "compound" or subproblems only) is permanent when every
 * subproblem is, e.g. every identifier rejected or unsupported. */
static int is_permanent(const struct acme_error *e)
{
	size_t i;

	if (e->type && acme_problem_is_permanent(e->type))
		return 1;
	if (e->n_sub == 0)
		return 0;
	for (i = 0; i < e->n_sub; i++)
		if (!acme_problem_is_permanent(e->sub[i].type))
			return 0;
	return 1;
}

int64_t engine_renew_backoff(unsigned failures, const struct acme_error *e,
			     int64_t now_ms, uint64_t rnd, const char **why)
{
	const char *rule = "backoff";
	int64_t d, at;
	unsigned shift;

	if (e && is_permanent(e)) {
		if (why)
			*why = "permanent";
		return ENGINE_NEVER;
	}
	if (e && e->type && strcmp(e->type, "rateLimited") == 0 &&
	    e->retry_after_ms >= 0) {
		/* The CA said exactly when; the jitter only spreads the
		 * names it refused at once, and never makes us early. */
		if (why)
			*why = "rate-limited";
		return add_sat(
		    add_sat(now_ms, e->retry_after_ms),
		    (int64_t)(unit(rnd) * (double)ENGINE_BACKOFF_RL_JITTER_MS));
	}

	/* base * 2^(n-1), capped; the shift is bounded so it cannot
	 * overflow (2^20 minutes is already far past the cap). */
	shift = failures > 0 ? failures - 1 : 0;
	if (shift > 20)
		shift = 20;
	d = ENGINE_BACKOFF_BASE_MS << shift;
	if (d > ENGINE_BACKOFF_CAP_MS)
		d = ENGINE_BACKOFF_CAP_MS;
	/* x [0.9, 1.1): at the cap too, so that names failing together
	 * (a CA outage) do not come back together. */
	d = (int64_t)((double)d * (0.9 + 0.2 * unit(rnd)));
	at = add_sat(now_ms, d);
	if (e && e->retry_after_ms >= 0 &&
	    add_sat(now_ms, e->retry_after_ms) > at) {
		at = add_sat(now_ms, e->retry_after_ms);
		rule = "retry-after";
	}
	if (why)
		*why = rule;
	return at;
}
