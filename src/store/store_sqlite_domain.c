/*
 * store_sqlite_domain — the account row, and domains with their job state
 * (status, next attempt, consecutive failures, last error) in SQLite.
 * Arguments were validated by store.c; rows read back are checked here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite.h"

/* ---- account --------------------------------------------------------- */

int store__sq_account_put(struct store *st, const struct store_account *a)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_ACCOUNT_PUT,
	    "INSERT OR REPLACE INTO account (directory_url, account_url,"
	    " key_pem, created_ms) VALUES (?1, ?2, ?3, ?4)");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, a->directory_url, -1, SQLITE_STATIC);
	if (a->account_url)
		sqlite3_bind_text(s, 2, a->account_url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, a->key_pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, a->created_ms);
	/* the account key is created once and must survive power loss */
	return store__sq_write(sq, s, 1, 0, NULL);
}

int store__sq_account_get(struct store *st, const char *url,
			  struct store_account *out)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_ACCOUNT_GET,
	    "SELECT account_url, key_pem, created_ms FROM account"
	    " WHERE directory_url = ?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, url, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else if (rc != SQLITE_ROW)
		rc = store__sq_err(sq, rc);
	else if (!(out->directory_url = strdup(url)))
		rc = -ENOMEM;
	else if ((rc = store__sq_dup(s, 0, STORE_URL_MAX, &out->account_url)) ||
		 (rc = store__sq_dup(s, 1, STORE_PEM_MAX, &out->key_pem)))
		;
	else if (!out->key_pem)
		rc = -EBADMSG;
	else
		out->created_ms = sqlite3_column_int64(s, 2);
	store__sq_reset(s);
	if (rc < 0)
		store_account_clear(out);
	return rc < 0 ? rc : 0;
}

/* ---- domains --------------------------------------------------------- */

#define DOMAIN_COLS                                                            \
	"name, status, challenge, added_ms, updated_ms, next_attempt_ms,"      \
	" failures, last_error"

/* Read a row selected with DOMAIN_COLS starting at column 0 into the
 * struct store_domain at row. */
static int domain_row(sqlite3_stmt *s, void *row)
{
	struct store_domain *d = row;
	const char *err = (const char *)sqlite3_column_text(s, 7);
	int rc;

	memset(d, 0, sizeof(*d));
	rc = store__sq_domain_state(s, 1, 6, &d->status, &d->failures);
	if (!rc)
		rc = store__sq_text(s, 0, d->name, sizeof(d->name));
	if (!rc)
		rc = store__sq_text(s, 2, d->challenge, sizeof(d->challenge));
	if (rc)
		return rc;
	d->added_ms = sqlite3_column_int64(s, 3);
	d->updated_ms = sqlite3_column_int64(s, 4);
	d->next_attempt_ms = store__sq_time(s, 5);
	if (err) {
		d->has_error = 1;
		rc = store__problem_from_json(
		    err, (size_t)sqlite3_column_bytes(s, 7), &d->last_error);
	}
	return rc;
}

int store__sq_domain_add(struct store *st, const char *name,
			 const char *challenge, int64_t now_ms)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *ins = store__sq_prep(
	    sq, SQ_DOMAIN_ADD,
	    "INSERT INTO domains (name, status, challenge, added_ms,"
	    " updated_ms, next_attempt_ms) VALUES (?1, 0, ?2, ?3, ?3, ?3)"
	    " ON CONFLICT (name) DO NOTHING");
	/* re-adding a removed name starts it over as a new one */
	sqlite3_stmt *rev = store__sq_prep(
	    sq, SQ_DOMAIN_REVIVE,
	    "UPDATE domains SET status = 0, challenge = ?2, updated_ms = ?3,"
	    " next_attempt_ms = ?3, failures = 0, last_error = NULL"
	    " WHERE name = ?1 AND status = 6");
	int rc, added = 0;

	if (!ins || !rev)
		return -EIO;
	rc = store__sq_begin(sq, 0);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, challenge, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 3, now_ms);
	rc = store__sq_exec(sq, ins);
	if (rc == 0 && sqlite3_changes(sq->db) == 1)
		added = 1;
	if (rc == 0 && !added) {
		sqlite3_bind_text(rev, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(rev, 2, challenge, -1, SQLITE_STATIC);
		sqlite3_bind_int64(rev, 3, now_ms);
		rc = store__sq_exec(sq, rev);
		if (rc == 0 && sqlite3_changes(sq->db) == 1)
			added = 1;
	}
	rc = store__sq_end(sq, rc, 0);
	return rc < 0 ? rc : added;
}

int store__sq_domain_remove(struct store *st, const char *name, int64_t now_ms)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_DOMAIN_REMOVE,
	    "UPDATE domains SET status = 6, next_attempt_ms = NULL,"
	    " updated_ms = ?2 WHERE name = ?1");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms);
	return store__sq_write(sq, s, 0, 1, NULL);
}

int store__sq_domain_get(struct store *st, const char *name,
			 struct store_domain *out)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(sq, SQ_DOMAIN_GET,
					 "SELECT " DOMAIN_COLS
					 " FROM domains WHERE name = ?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = domain_row(s, out);
	else if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else
		rc = store__sq_err(sq, rc);
	store__sq_reset(s);
	return rc;
}

/* Masks of at most this many statuses are listed status by status. */
#define LIST_BY_STATUS_BITS 2
#define LIST_BY_STATUS_MAX  4096 /* rows asked; beyond, the scan below */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_domain *)a)->name,
		      ((const struct store_domain *)b)->name);
}

/*
 * A mask of one or two statuses (the daemon's orphan sweep: issuing and
 * renewing; the API's ?status=failed): the rows of each status come in
 * name order from domains_status, whose entries are (status, name), up to
 * max each, and are merged here. The scan below would read every domain
 * row to find them: 25 ms of CPU at 100,000 domains (bench/RESULTS.md).
 */
static int list_by_status(struct sq *sq, const struct store_domain_filter *f,
			  struct store_domain *out, size_t max, size_t *n)
{
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_DOMAIN_LIST_STATUS,
	    "SELECT " DOMAIN_COLS " FROM domains INDEXED BY domains_status"
	    " WHERE status = ?3 AND name > ?1 AND name >= ?2"
	    " AND name < ?2 || '~' ORDER BY name LIMIT ?4");
	struct store_domain *tmp;
	size_t got = 0;
	int rc = 0;

	if (!s)
		return -EIO;
	tmp = malloc(sizeof(*tmp) * max * LIST_BY_STATUS_BITS);
	if (!tmp)
		return -ENOMEM;
	for (int st = 0; st < STORE_DOMAIN__MAX && rc == 0; st++) {
		if (!(f->status_mask & (1u << st)))
			continue;
		sqlite3_bind_text(s, 1, f->after ? f->after : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(s, 2, f->prefix ? f->prefix : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(s, 3, st);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
		rc = store__sq_rows(sq, s, domain_row, tmp, sizeof(*tmp),
				    got + max, &got);
	}
	if (rc == 0) {
		qsort(tmp, got, sizeof(*tmp), name_cmp);
		*n = got < max ? got : max;
		memcpy(out, tmp, *n * sizeof(*tmp));
	}
	free(tmp);
	return rc;
}

/*
 * Prefix match as a range on the primary key (name >= p AND name < p||'~')
 * so it uses the index; valid because stored names only contain
 * [a-z0-9.*-], all below '~'. A status mask of 0 means every status.
 */
int store__sq_domain_list(struct store *st, const struct store_domain_filter *f,
			  struct store_domain *out, size_t max, size_t *n)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s;

	if (f->status_mask &&
	    __builtin_popcount(f->status_mask) <= LIST_BY_STATUS_BITS &&
	    max <= LIST_BY_STATUS_MAX)
		return list_by_status(sq, f, out, max, n);
	s = store__sq_prep(
	    sq, SQ_DOMAIN_LIST,
	    "SELECT " DOMAIN_COLS " FROM domains"
	    " WHERE name > ?1 AND name >= ?2 AND name < ?2 || '~'"
	    " AND (?3 = 0 OR ((?3 >> status) & 1) = 1)"
	    " ORDER BY name LIMIT ?4");
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, f->after ? f->after : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, f->prefix ? f->prefix : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, f->status_mask);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
	return store__sq_rows(sq, s, domain_row, out, sizeof(*out), max, n);
}

int store__sq_domain_count(struct store *st, uint64_t *counts)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_DOMAIN_COUNT,
	    "SELECT status, count(*) FROM domains GROUP BY status");
	int rc;

	if (!s)
		return -EIO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t status = sqlite3_column_int64(s, 0);

		if (status >= 0 && status < STORE_DOMAIN__MAX)
			counts[status] = (uint64_t)sqlite3_column_int64(s, 1);
	}
	rc = rc == SQLITE_DONE ? 0 : store__sq_err(sq, rc);
	store__sq_reset(s);
	return rc;
}

int store__sq_domain_set_job(struct store *st, const char *name,
			     const struct store_job *job, int64_t now_ms)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_DOMAIN_SET_JOB,
	    "UPDATE domains SET status = ?2, next_attempt_ms = ?3,"
	    " failures = ?4, last_error = ?5, updated_ms = ?6 WHERE name = ?1");
	char *json = NULL;
	int rc;

	if (!s)
		return -EIO;
	if (job->error && !(json = store__problem_to_json(job->error)))
		return -ENOMEM;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)job->status);
	store__sq_bind_time(s, 3, job->next_attempt_ms);
	sqlite3_bind_int64(s, 4, job->failures);
	if (json)
		sqlite3_bind_text(s, 5, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, now_ms);
	rc = store__sq_write(sq, s, 0, 1, NULL);
	free(json); /* after the write: it is bound SQLITE_STATIC */
	return rc;
}
