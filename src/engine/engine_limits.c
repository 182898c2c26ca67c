/*
 * engine_limits — the rate-limit ledger: token buckets that mirror the
 * CA's limits, so that certherd holds work back itself instead of
 * learning about a limit from a rateLimited error (which, at Let's
 * Encrypt, can lock a registered domain out for days).
 *
 * Model: a bucket of capacity C refills continuously at C per period P
 * (Let's Encrypt describes its limits this way: "300 per 3 hours" refills
 * one order every 36 s). The state (tokens, updated_ms) is all there is
 * to persist; the level at time t is
 *     min(C, tokens + (t - updated_ms) * C / P),
 * computed on demand, so nothing ticks. A bucket never charged is full
 * and is not stored: a million quiet domains cost nothing, and
 * engine_limits_gc drops buckets that have refilled.
 *
 * Storage: one open-addressing hash table (linear probing, load <= 1/2)
 * of (kind, key) -> bucket. Pure: no clock, no I/O; the registered-domain
 * key uses libpsl's built-in list, compiled into the library.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#include "engine/engine.h"

/* Floating refill math: treat levels within this of k as k, so that the
 * time engine_limits_bucket_when returns always passes can/take. */
#define LEVEL_EPS 1e-9

const char *const engine_limit_names[ENGINE_LIMIT__MAX] = {
    [ENGINE_LIMIT_ORDERS] = "new-orders-per-account",
    [ENGINE_LIMIT_REGDOMAIN] = "certificates-per-registered-domain",
    [ENGINE_LIMIT_IDENTICAL] = "certificates-per-identical-set",
    [ENGINE_LIMIT_FAILED_AUTHZ] = "failed-authorizations-per-identifier",
};

/*
 * https://letsencrypt.org/docs/rate-limits/ (2025):
 *  - New Orders per Account: 300 per 3 hours (1 every 36 s);
 *  - New Certificates per Registered Domain: 50 per 7 days; renewals of
 *    an existing certificate are not charged;
 *  - New Certificates per Exact Set of Identifiers: 5 per 7 days;
 *  - Authorization Failures per Identifier per Account: 5 per hour.
 * ARI renewals are exempt from all of them at Let's Encrypt; we still
 * charge them (except where marked), which only errs on the safe side.
 */
const struct engine_limit_def engine_limits_letsencrypt[ENGINE_LIMIT__MAX] = {
    [ENGINE_LIMIT_ORDERS] = {300, 3 * ENGINE_HOUR_MS, 0},
    [ENGINE_LIMIT_REGDOMAIN] = {50, 7 * ENGINE_DAY_MS, 1},
    [ENGINE_LIMIT_IDENTICAL] = {5, 7 * ENGINE_DAY_MS, 0},
    [ENGINE_LIMIT_FAILED_AUTHZ] = {5, ENGINE_HOUR_MS, 0},
};

/* ---- one bucket -------------------------------------------------------- */

static int disabled(const struct engine_limit_def *d)
{
	return !(d->capacity > 0) || d->period_ms <= 0;
}

double engine_limits_level(const struct engine_limit_def *d,
			   const struct engine_bucket *b, int64_t now_ms)
{
	double lvl;

	if (disabled(d))
		return HUGE_VAL;
	lvl = b->tokens;
	/* A clock stepped back refills nothing (and takes nothing back). */
	if (now_ms > b->updated_ms)
		lvl += (double)(now_ms - b->updated_ms) * d->capacity /
		       (double)d->period_ms;
	if (lvl > d->capacity)
		lvl = d->capacity;
	if (lvl < 0)
		lvl = 0;
	return lvl;
}

int64_t engine_limits_bucket_when(const struct engine_limit_def *d,
				  const struct engine_bucket *b, double k,
				  int64_t now_ms)
{
	int64_t from = now_ms > b->updated_ms ? now_ms : b->updated_ms;
	double lvl, dt;

	if (disabled(d) || k <= 0)
		return now_ms;
	if (k > d->capacity + LEVEL_EPS)
		return ENGINE_NEVER;
	lvl = engine_limits_level(d, b, now_ms);
	if (lvl + LEVEL_EPS >= k)
		return now_ms;
	/* Refill runs from max(now, updated): before updated_ms (clock
	 * stepped back) the level stands still. */
	dt = ceil((k - lvl) * (double)d->period_ms / d->capacity);
	if (dt >= (double)(INT64_MAX - from))
		return ENGINE_NEVER;
	return from + (int64_t)dt;
}

int engine_limits_bucket_take(const struct engine_limit_def *d,
			      struct engine_bucket *b, double k,
			      int64_t now_ms)
{
	double lvl;

	if (disabled(d) || k <= 0)
		return 0;
	lvl = engine_limits_level(d, b, now_ms);
	if (lvl + LEVEL_EPS < k)
		return -EAGAIN;
	lvl -= k;
	b->tokens = lvl > 0 ? lvl : 0;
	if (now_ms > b->updated_ms)
		b->updated_ms = now_ms;
	return 0;
}

/* ---- the ledger -------------------------------------------------------- */

struct slot {
	char *key; /* NULL: empty */
	uint32_t hash;
	uint8_t kind;
	struct engine_bucket b;
};

struct engine_limits {
	struct engine_limit_def defs[ENGINE_LIMIT__MAX];
	struct slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

/* FNV-1a over the kind and the key. */
static uint32_t hash_key(enum engine_limit kind, const char *key)
{
	uint32_t h = 2166136261u ^ (uint32_t)kind;

	h *= 16777619u;
	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	return h;
}

static int valid_kind(enum engine_limit kind)
{
	return (unsigned)kind < ENGINE_LIMIT__MAX;
}

struct engine_limits *engine_limits_new(const struct engine_limit_def *defs)
{
	struct engine_limits *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	memcpy(l->defs, defs ? defs : engine_limits_letsencrypt,
	       sizeof(l->defs));
	return l;
}

void engine_limits_free(struct engine_limits *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->cap; i++)
		free(l->slots[i].key);
	free(l->slots);
	free(l);
}

static struct slot *find(const struct engine_limits *l,
			 enum engine_limit kind, const char *key)
{
	uint32_t h;
	size_t i;

	if (l->cap == 0)
		return NULL;
	h = hash_key(kind, key);
	for (i = h & (l->cap - 1);; i = (i + 1) & (l->cap - 1)) {
		struct slot *s = &l->slots[i];

		if (!s->key)
			return NULL;
		if (s->hash == h && s->kind == kind && strcmp(s->key, key) == 0)
			return s;
	}
}

/* Place an entry known to be absent (no allocation, no growth). */
static struct slot *place(struct slot *slots, size_t cap, uint32_t h)
{
	size_t i;

	for (i = h & (cap - 1); slots[i].key; i = (i + 1) & (cap - 1))
		;
	return &slots[i];
}

static int rehash(struct engine_limits *l, size_t ncap, int64_t gc_now,
		  size_t *dropped)
{
	struct slot *ns = calloc(ncap, sizeof(*ns));
	size_t i;

	if (!ns)
		return -ENOMEM;
	for (i = 0; i < l->cap; i++) {
		struct slot *s = &l->slots[i];

		if (!s->key)
			continue;
		if (dropped && engine_limits_level(&l->defs[s->kind], &s->b,
						   gc_now) >=
				       l->defs[s->kind].capacity) {
			free(s->key);
			(*dropped)++;
			l->n--;
			continue;
		}
		*place(ns, ncap, s->hash) = *s;
	}
	free(l->slots);
	l->slots = ns;
	l->cap = ncap;
	return 0;
}

/* The slot of (kind, key), created full at now_ms if absent. */
static struct slot *get(struct engine_limits *l, enum engine_limit kind,
			const char *key, int64_t now_ms)
{
	struct slot *s = find(l, kind, key);
	uint32_t h;
	char *k;

	if (s)
		return s;
	if ((l->n + 1) * 2 > l->cap &&
	    rehash(l, l->cap ? l->cap * 2 : 64, 0, NULL) < 0)
		return NULL;
	k = strdup(key);
	if (!k)
		return NULL;
	h = hash_key(kind, key);
	s = place(l->slots, l->cap, h);
	s->key = k;
	s->hash = h;
	s->kind = (uint8_t)kind;
	s->b.tokens = l->defs[kind].capacity;
	s->b.updated_ms = now_ms;
	l->n++;
	return s;
}

int engine_limits_set(struct engine_limits *l, enum engine_limit kind,
		      const struct engine_limit_def *d)
{
	size_t i;

	if (!valid_kind(kind) || !d || (d->capacity > 0 && d->period_ms <= 0))
		return -EINVAL;
	l->defs[kind] = *d;
	for (i = 0; i < l->cap; i++)
		if (l->slots[i].key && l->slots[i].kind == kind &&
		    l->slots[i].b.tokens > d->capacity)
			l->slots[i].b.tokens = d->capacity > 0 ? d->capacity : 0;
	return 0;
}

const struct engine_limit_def *engine_limits_def(const struct engine_limits *l,
						 enum engine_limit kind)
{
	return valid_kind(kind) ? &l->defs[kind] : NULL;
}

/* Absent buckets read as full at now. */
static struct engine_bucket peek(const struct engine_limits *l,
				 enum engine_limit kind, const char *key,
				 int64_t now_ms)
{
	const struct slot *s = find(l, kind, key);
	struct engine_bucket b = {l->defs[kind].capacity, now_ms};

	return s ? s->b : b;
}

int engine_limits_can(const struct engine_limits *l, enum engine_limit kind,
		      const char *key, double k, int64_t now_ms)
{
	if (!valid_kind(kind) || !key)
		return 0;
	return engine_limits_when(l, kind, key, k, now_ms) == now_ms;
}

int64_t engine_limits_when(const struct engine_limits *l,
			   enum engine_limit kind, const char *key, double k,
			   int64_t now_ms)
{
	struct engine_bucket b;

	if (!valid_kind(kind) || !key)
		return ENGINE_NEVER;
	b = peek(l, kind, key, now_ms);
	return engine_limits_bucket_when(&l->defs[kind], &b, k, now_ms);
}

int engine_limits_take(struct engine_limits *l, enum engine_limit kind,
		       const char *key, double k, int64_t now_ms)
{
	struct engine_bucket b;
	struct slot *s;

	if (!valid_kind(kind) || !key)
		return -EINVAL;
	if (disabled(&l->defs[kind]) || k <= 0)
		return 0;
	/* Check before creating a slot, so a refusal stores nothing. */
	b = peek(l, kind, key, now_ms);
	if (engine_limits_bucket_take(&l->defs[kind], &b, k, now_ms) < 0)
		return -EAGAIN;
	s = get(l, kind, key, now_ms);
	if (!s)
		return -ENOMEM;
	s->b = b;
	return 0;
}

int engine_limits_give(struct engine_limits *l, enum engine_limit kind,
		       const char *key, double k, int64_t now_ms)
{
	const struct engine_limit_def *d;
	struct slot *s;
	double lvl;

	if (!valid_kind(kind) || !key || k < 0)
		return -EINVAL;
	d = &l->defs[kind];
	s = find(l, kind, key);
	if (disabled(d) || !s)
		return 0; /* absent is full: nothing to give back to */
	lvl = engine_limits_level(d, &s->b, now_ms) + k;
	s->b.tokens = lvl > d->capacity ? d->capacity : lvl;
	if (now_ms > s->b.updated_ms)
		s->b.updated_ms = now_ms;
	return 0;
}

int engine_limits_restore(struct engine_limits *l, enum engine_limit kind,
			  const char *key, const struct engine_bucket *b)
{
	struct slot *s;
	double cap;

	if (!valid_kind(kind) || !key || !b || isnan(b->tokens))
		return -EINVAL;
	s = get(l, kind, key, b->updated_ms);
	if (!s)
		return -ENOMEM;
	cap = l->defs[kind].capacity;
	s->b = *b;
	if (s->b.tokens > cap)
		s->b.tokens = cap > 0 ? cap : 0;
	if (s->b.tokens < 0)
		s->b.tokens = 0;
	return 0;
}

int engine_limits_foreach(const struct engine_limits *l,
			  int (*cb)(void *ctx, enum engine_limit kind,
				    const char *key,
				    const struct engine_bucket *b),
			  void *ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < l->cap; i++) {
		const struct slot *s = &l->slots[i];

		if (s->key &&
		    (rc = cb(ctx, (enum engine_limit)s->kind, s->key, &s->b)))
			return rc;
	}
	return 0;
}

size_t engine_limits_gc(struct engine_limits *l, int64_t now_ms)
{
	size_t dropped = 0, ncap = l->cap;

	if (l->cap == 0)
		return 0;
	/* Rebuilding is the simplest correct removal under linear probing;
	 * gc runs rarely (a scheduler pass, not per take). On ENOMEM we
	 * just keep everything. */
	if (rehash(l, ncap, now_ms, &dropped) < 0)
		return 0;
	return dropped;
}

size_t engine_limits_count(const struct engine_limits *l)
{
	return l->n;
}

int engine_limits_headroom(const struct engine_limits *l,
			   enum engine_limit kind, const char *key,
			   int64_t now_ms, struct engine_headroom *out)
{
	const struct engine_limit_def *d;
	struct engine_bucket b;

	if (!valid_kind(kind) || !key || !out)
		return -EINVAL;
	d = &l->defs[kind];
	b = peek(l, kind, key, now_ms);
	out->capacity = d->capacity;
	if (disabled(d)) {
		out->tokens = 0;
		out->full_at_ms = now_ms;
		return 0;
	}
	out->tokens = engine_limits_level(d, &b, now_ms);
	out->full_at_ms = engine_limits_bucket_when(d, &b, d->capacity, now_ms);
	return 0;
}

/* ---- keys -------------------------------------------------------------- */

int engine_limits_regdomain(const char *name, char *out, size_t outsz)
{
	const psl_ctx_t *psl = psl_builtin();
	const char *rd = NULL;
	size_t len;

	if (!name || !*name)
		return -EINVAL;
	/* The built-in list is compiled into libpsl (Debian builds it in
	 * from the publicsuffix package): no file is read here. */
	if (psl)
		rd = psl_registrable_domain(psl, name);
	if (!rd)
		rd = name; /* a public suffix itself, or no list */
	len = strlen(rd);
	if (len + 1 > outsz)
		return -ENOSPC;
	memcpy(out, rd, len + 1);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int engine_limits_setkey(const char *const *names, size_t n, char *out,
			 size_t outsz)
{
	char **v;
	size_t i, j, pos = 0;
	int rc = 0;

	if (!names || n == 0 || outsz == 0)
		return -EINVAL;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (!names[i] || !(v[i] = strdup(names[i]))) {
			rc = names[i] ? -ENOMEM : -EINVAL;
			goto out;
		}
		for (j = 0; v[i][j]; j++)
			v[i][j] = (char)tolower((unsigned char)v[i][j]);
	}
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++) {
		size_t len;

		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		len = strlen(v[i]);
		if (pos + (pos > 0) + len + 1 > outsz) {
			rc = -ENOSPC;
			goto out;
		}
		if (pos > 0)
			out[pos++] = ',';
		memcpy(out + pos, v[i], len);
		pos += len;
	}
	out[pos] = '\0';
out:
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return rc;
}
