/*
 * Unit test of store_domain_due (and of store_domain_list by status, which
 * shares the fixture) against a reference computed here: 3,000
 * domains in every status, with and without certificates, due and not,
 * enough due in one status (more than the 1,024 the store sorts) that
 * its index walk is taken as well as its sort; several rank tables (the
 * daemon's, equal ranks that must be merged, reversed) and sizes. The
 * store's answer must be exactly the reference's first rows.
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

#include "store/store.h"
#include "store_fixture.h"

#define N 3000

struct dom {
	char name[32];
	enum store_domain_status status;
	int64_t next; /* STORE_NO_TIME: not scheduled */
	int64_t nb, na; /* STORE_NO_TIME: no certificate */
};

struct fx {
	struct store_fx s;
	struct dom d[N];
};

static const unsigned *ref_rank;

/* A fixed pseudo-random sequence, so failures reproduce. */
static uint64_t lcg = 42;
static int64_t rnd(int64_t lo, int64_t hi)
{
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	return lo + (int64_t)((lcg >> 33) % (uint64_t)(hi - lo));
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (store_fx_open(&fx->s) < 0)
		return -1;
	if (store_bulk_begin(fx->s.st) < 0)
		return -1;
	for (int i = 0; i < N; i++) {
		struct dom *d = &fx->d[i];
		struct store_job job = {0};
		int kind = (int)rnd(0, 10);

		/* names not in insertion order, some sharing an expiry */
		snprintf(d->name, sizeof(d->name), "d%04d.example.com",
			 (i * 7919) % N);
		d->nb = d->na = STORE_NO_TIME;
		if (store_domain_add(fx->s.st, d->name, NULL, T0) != 1)
			return -1;
		if (kind < 6) {
			/* with a certificate: VALID, due or not; a few share
			 * an expiry so the next keys decide */
			struct store_cert c;

			d->nb = rnd(T0 - 90000, T0);
			d->na = kind == 0 ? T0 + 5000 : d->nb + rnd(1000, 200000);
			c = store_fx_cert(d->name, "01", d->nb, d->na);
			d->next = rnd(T0 - 80000, T0 + 10000);
			if (store_cert_insert(fx->s.st, &c, 0, d->next, T0,
					      NULL) < 0)
				return -1;
			d->status = STORE_DOMAIN_VALID;
		} else {
			d->status = kind < 9 ? STORE_DOMAIN_PENDING
				    : rnd(0, 2) ? STORE_DOMAIN_FAILED
						: STORE_DOMAIN_DNS_PENDING;
			d->next = rnd(T0 - 50000, T0 + 20000);
		}
		/* some not scheduled, some removed, some in flight */
		switch (rnd(0, 20)) {
		case 0:
			d->next = STORE_NO_TIME;
			break;
		case 1:
			d->status = STORE_DOMAIN_RENEWING;
			break;
		case 2:
			d->status = STORE_DOMAIN_ISSUING;
			break;
		}
		job.status = d->status;
		job.next_attempt_ms = d->next;
		if (store_domain_set_job(fx->s.st, d->name, &job, T0) < 0)
			return -1;
		if (rnd(0, 40) == 0) {
			if (store_domain_remove(fx->s.st, d->name, T0) < 0)
				return -1;
			d->status = STORE_DOMAIN_REMOVED;
			d->next = STORE_NO_TIME;
		}
	}
	if (store_bulk_end(fx->s.st, 1) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	store_fx_close(&fx->s);
	free(fx);
	return 0;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct dom *x = a, *y = b;
	int64_t ex = x->na == STORE_NO_TIME ? INT64_MAX : x->na;
	int64_t ey = y->na == STORE_NO_TIME ? INT64_MAX : y->na;

	if (ref_rank[x->status] != ref_rank[y->status])
		return ref_rank[x->status] < ref_rank[y->status] ? -1 : 1;
	if (ex != ey)
		return ex < ey ? -1 : 1;
	if (x->next != y->next)
		return x->next < y->next ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The store's answer for (rank, max) equals the reference's first rows. */
static void check(struct fx *fx, const unsigned rank[STORE_DOMAIN__MAX],
		  size_t max, size_t min_due_valid)
{
	static struct dom ref[N];
	static struct store_due got[N];
	size_t nref = 0, n = 0, nvalid = 0;

	for (int i = 0; i < N; i++) {
		const struct dom *d = &fx->d[i];

		if (d->status == STORE_DOMAIN_REMOVED ||
		    d->next == STORE_NO_TIME || d->next > T0)
			continue;
		ref[nref++] = *d;
		nvalid += d->status == STORE_DOMAIN_VALID;
	}
	/* the set-up makes the walk path happen (more than 1,024 due) */
	assert_true(nvalid >= min_due_valid);
	ref_rank = rank;
	qsort(ref, nref, sizeof(ref[0]), ref_cmp);
	assert_int_equal(store_domain_due(fx->s.st, T0, rank, got, max, &n), 0);
	assert_int_equal(n, max < nref ? max : nref);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(got[i].name, ref[i].name) != 0)
			fail_msg("row %zu: store %s, reference %s", i,
				 got[i].name, ref[i].name);
		assert_int_equal(got[i].status, ref[i].status);
		assert_int_equal(got[i].next_attempt_ms, ref[i].next);
		assert_int_equal(got[i].not_before_ms, ref[i].nb);
		assert_int_equal(got[i].not_after_ms, ref[i].na);
	}
}

/* The daemon's table: renewals, new names, the rest; in-flight equal. */
static const unsigned daemon_rank[STORE_DOMAIN__MAX] = {
    [STORE_DOMAIN_VALID] = 0,	[STORE_DOMAIN_PENDING] = 1,
    [STORE_DOMAIN_DNS_PENDING] = 2, [STORE_DOMAIN_FAILED] = 3,
    [STORE_DOMAIN_ISSUING] = 4, [STORE_DOMAIN_RENEWING] = 4,
    [STORE_DOMAIN_REMOVED] = 5,
};

static void test_due_daemon_rank(void **state)
{
	struct fx *fx = *state;

	check(fx, daemon_rank, 1, 1025);
	check(fx, daemon_rank, 256, 1025);
	check(fx, daemon_rank, 1100, 1025); /* past the walked status */
	check(fx, daemon_rank, N, 1025);
}

static void test_due_equal_ranks_merge(void **state)
{
	struct fx *fx = *state;
	const unsigned flat[STORE_DOMAIN__MAX] = {0};
	const unsigned two[STORE_DOMAIN__MAX] = {
	    [STORE_DOMAIN_VALID] = 1, [STORE_DOMAIN_PENDING] = 1,
	    [STORE_DOMAIN_FAILED] = 0, [STORE_DOMAIN_DNS_PENDING] = 2,
	    [STORE_DOMAIN_ISSUING] = 3, [STORE_DOMAIN_RENEWING] = 4};

	check(fx, flat, 256, 1025);
	check(fx, flat, N, 1025);
	check(fx, two, 300, 1025);
	check(fx, two, 2000, 1025);
}

static void test_due_reversed_rank(void **state)
{
	struct fx *fx = *state;
	unsigned rev[STORE_DOMAIN__MAX];

	for (int s = 0; s < STORE_DOMAIN__MAX; s++)
		rev[s] = (unsigned)(STORE_DOMAIN__MAX - s);
	check(fx, rev, 10, 1025);
	check(fx, rev, 1500, 1025);
}

static void test_due_follows_changes(void **state)
{
	struct fx *fx = *state;
	struct store_job job = {STORE_DOMAIN_PENDING, T0 - 99999, 0, NULL};
	struct store_due got[2];
	size_t n = 0;
	int i;

	/* a pending name made due earliest comes first among new names */
	for (i = 0; fx->d[i].status != STORE_DOMAIN_PENDING; i++)
		;
	assert_int_equal(
	    store_domain_set_job(fx->s.st, fx->d[i].name, &job, T0), 0);
	fx->d[i].next = job.next_attempt_ms;
	check(fx, daemon_rank, N, 1025);
	{
		const unsigned pending_first[STORE_DOMAIN__MAX] = {
		    [STORE_DOMAIN_PENDING] = 0, [STORE_DOMAIN_VALID] = 1,
		    [STORE_DOMAIN_DNS_PENDING] = 2, [STORE_DOMAIN_FAILED] = 3,
		    [STORE_DOMAIN_ISSUING] = 4, [STORE_DOMAIN_RENEWING] = 5};

		assert_int_equal(store_domain_due(fx->s.st, T0, pending_first,
						  got, 1, &n),
				 0);
		assert_int_equal(n, 1);
		assert_string_equal(got[0].name, fx->d[i].name);
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dom *)a)->name,
		      ((const struct dom *)b)->name);
}

/* store_domain_list with a mask of one or two statuses (listed status by
 * status and merged) pages through exactly the reference's names. */
static void check_list(struct fx *fx, unsigned mask, const char *prefix,
		       size_t page)
{
	static struct dom ref[N];
	static struct store_domain got[N];
	struct store_domain_filter f = {.status_mask = mask, .prefix = prefix};
	char after[64] = "";
	size_t nref = 0, seen = 0, n;

	for (int i = 0; i < N; i++)
		if ((mask & (1u << fx->d[i].status)) &&
		    (!prefix ||
		     strncmp(fx->d[i].name, prefix, strlen(prefix)) == 0))
			ref[nref++] = fx->d[i];
	qsort(ref, nref, sizeof(ref[0]), name_cmp);
	do {
		f.after = after[0] ? after : NULL;
		n = 0;
		assert_int_equal(store_domain_list(fx->s.st, &f, got, page, &n),
				 0);
		for (size_t i = 0; i < n; i++, seen++) {
			assert_true(seen < nref);
			assert_string_equal(got[i].name, ref[seen].name);
			assert_int_equal(got[i].status, ref[seen].status);
		}
		if (n)
			snprintf(after, sizeof(after), "%s", got[n - 1].name);
	} while (n == page);
	assert_int_equal(seen, nref);
}

static void test_list_by_status(void **state)
{
	struct fx *fx = *state;
	const unsigned inflight = (1u << STORE_DOMAIN_ISSUING) |
				  (1u << STORE_DOMAIN_RENEWING);

	check_list(fx, 1u << STORE_DOMAIN_FAILED, NULL, 1000);
	check_list(fx, 1u << STORE_DOMAIN_FAILED, NULL, 7);
	check_list(fx, inflight, NULL, 256);
	check_list(fx, inflight, NULL, 5);
	check_list(fx, 1u << STORE_DOMAIN_VALID, "d1", 100);
	check_list(fx, (1u << STORE_DOMAIN_VALID) |
			   (1u << STORE_DOMAIN_PENDING), NULL, 333);
	check_list(fx, 1u << STORE_DOMAIN_REMOVED, NULL, 10);
	/* more statuses than that: the scan, same answer */
	check_list(fx, inflight | (1u << STORE_DOMAIN_FAILED), NULL, 50);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_due_daemon_rank),
	    T(test_due_equal_ranks_merge),
	    T(test_due_reversed_rank),
	    T(test_due_follows_changes),
	    T(test_list_by_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
