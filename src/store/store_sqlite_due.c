/*
 * store_sqlite_due — the scheduler's question, "which domains are due,
 * best first?" (store_domain_due), answered in time that grows with the
 * answer, not with the number of due domains.
 *
 * Order: rank[status] ascending (the caller's), then the current
 * certificate's expiry (none = last), next attempt, name. One SQL ORDER BY
 * over all due rows gave that, but sorted every due row at every pass: at
 * 100,000 domains all due (a platform onboarding them at once) 35 ms per
 * pass, for a pass that starts one order (bench/RESULTS.md).
 *
 * Instead, per status, in rank order, until max rows are found:
 *   - peek: are more than DUE_SORT_MAX rows of this status due? (an index
 *     range scan that stops at DUE_SORT_MAX + 1 rows)
 *   - few: sort them (SQ_DUE_SORT, range of domains_due (status,
 *     next_attempt_ms, ...)): cost grows with those few;
 *   - many: walk domains_due_rank (status, expiry, next attempt, name),
 *     which is already in the wanted order, skipping rows not yet due,
 *     until max are found (SQ_DUE_WALK). Due renewals are the ones whose
 *     certificates expire first and new names have no expiry, so the
 *     first rows are mostly the answer; in the worst case (many due late
 *     in the expiry order) the walk reads each row of that status once,
 *     as the single sort did.
 * Statuses the caller ranks equal are fetched each up to max and merged
 * here (qsort), which gives the same order as one query over both.
 * Both indexes are partial (next_attempt_ms IS NOT NULL) and cover every
 * column read: no table row is touched (schema step 2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite.h"

/* Up to this many due rows of one status are sorted; more are walked. */
#define DUE_SORT_MAX 1024

#define DUE_COLS                                                               \
	"name, status, next_attempt_ms, cert_not_after_ms, failures,"          \
	" cert_not_before_ms"
#define DUE_ORDER                                                              \
	" ORDER BY coalesce(cert_not_after_ms, 9223372036854775807),"          \
	" next_attempt_ms, name"

/* Read a row selected with DUE_COLS into the struct store_due at row. */
static int due_row(sqlite3_stmt *s, void *row)
{
	struct store_due *d = row;
	int rc;

	memset(d, 0, sizeof(*d));
	rc = store__sq_text(s, 0, d->name, sizeof(d->name));
	if (rc == 0)
		rc = store__sq_domain_state(s, 1, 4, &d->status, &d->failures);
	if (rc)
		return rc;
	d->next_attempt_ms = sqlite3_column_int64(s, 2);
	d->not_after_ms = store__sq_time(s, 3);
	d->not_before_ms = store__sq_time(s, 5);
	return 0;
}

/* Is more than DUE_SORT_MAX of status due? 1 yes, 0 no, <0 error. */
static int due_many(struct sq *sq, int status, int64_t now_ms)
{
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_DUE_PEEK,
	    "SELECT count(*) FROM (SELECT 1 FROM domains INDEXED BY domains_due"
	    " WHERE status = ?1 AND next_attempt_ms IS NOT NULL"
	    " AND next_attempt_ms <= ?2 LIMIT ?3)");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int(s, 1, status);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int(s, 3, DUE_SORT_MAX + 1);
	rc = sqlite3_step(s);
	rc = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) > DUE_SORT_MAX
			      : store__sq_err(sq, rc);
	store__sq_reset(s);
	return rc;
}

/* Up to max due rows of status, best first, appended to out[*n]. */
static int due_status(struct sq *sq, int status, int64_t now_ms,
		      struct store_due *out, size_t max, size_t *n)
{
	sqlite3_stmt *s;
	int rc = due_many(sq, status, now_ms);

	if (rc < 0)
		return rc;
	/* INDEXED BY: the planner cannot know which one fits this status */
	s = rc ? store__sq_prep(sq, SQ_DUE_WALK,
				"SELECT " DUE_COLS " FROM domains INDEXED BY "
				"domains_due_rank WHERE status = ?1"
				" AND next_attempt_ms IS NOT NULL"
				" AND next_attempt_ms <= ?2" DUE_ORDER
				" LIMIT ?3")
	       : store__sq_prep(sq, SQ_DUE_SORT,
				"SELECT " DUE_COLS " FROM domains INDEXED BY "
				"domains_due WHERE status = ?1"
				" AND next_attempt_ms IS NOT NULL"
				" AND next_attempt_ms <= ?2" DUE_ORDER
				" LIMIT ?3");
	if (!s)
		return -EIO;
	sqlite3_bind_int(s, 1, status);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
	return store__sq_rows(sq, s, due_row, out, sizeof(*out), *n + max, n);
}

/* The order within one rank: expiry (none last), next attempt, name. */
static int due_cmp(const void *a, const void *b)
{
	const struct store_due *x = a, *y = b;
	int64_t ex = x->not_after_ms == STORE_NO_TIME ? INT64_MAX
						      : x->not_after_ms;
	int64_t ey = y->not_after_ms == STORE_NO_TIME ? INT64_MAX
						      : y->not_after_ms;

	if (ex != ey)
		return ex < ey ? -1 : 1;
	if (x->next_attempt_ms != y->next_attempt_ms)
		return x->next_attempt_ms < y->next_attempt_ms ? -1 : 1;
	return strcmp(x->name, y->name);
}

int store__sq_domain_due(struct store *st, int64_t now_ms, const unsigned *rank,
			 struct store_due *out, size_t max, size_t *n)
{
	struct sq *sq = sq_of(st);
	struct store_due *tmp = NULL;
	int order[STORE_DOMAIN__MAX], k = 0, rc = 0;

	/* statuses by rank (stable: equal ranks keep status order) */
	for (int s = 0; s < STORE_DOMAIN__MAX; s++) {
		int i;

		if (s == STORE_DOMAIN_REMOVED)
			continue; /* never due */
		i = k++;
		while (i > 0 && rank[order[i - 1]] > rank[s]) {
			order[i] = order[i - 1];
			i--;
		}
		order[i] = s;
	}
	for (int i = 0; i < k && *n < max && rc == 0;) {
		int j = i + 1;
		size_t want = max - *n, got = 0;

		while (j < k && rank[order[j]] == rank[order[i]])
			j++;
		if (j == i + 1) {
			rc = due_status(sq, order[i], now_ms, out, want, n);
			i = j;
			continue;
		}
		/* equal ranks: up to want of each, merged, the best kept */
		tmp = malloc(sizeof(*tmp) * want * (size_t)(j - i));
		if (!tmp) {
			rc = -ENOMEM;
			break;
		}
		for (int g = i; g < j && rc == 0; g++)
			rc = due_status(sq, order[g], now_ms, tmp, want, &got);
		if (rc == 0) {
			qsort(tmp, got, sizeof(*tmp), due_cmp);
			if (got > want)
				got = want;
			memcpy(out + *n, tmp, got * sizeof(*tmp));
			*n += got;
		}
		free(tmp);
		tmp = NULL;
		i = j;
	}
	return rc;
}
