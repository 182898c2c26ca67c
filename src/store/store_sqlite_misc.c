/*
 * store_sqlite_misc — the small tables: challenges (read by the :80
 * server of any node), rate-limit buckets and the capped per-domain event
 * history.
 */
#include <errno.h>
#include <string.h>

#include "store/store_sqlite.h"

/* ---- challenges ------------------------------------------------------ */

int store__sq_challenge_put(struct store *st, const struct store_challenge *c)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_CHALL_PUT,
	    "INSERT OR REPLACE INTO challenges (token, key_authorization,"
	    " domain, expires_ms) VALUES (?1, ?2, ?3, ?4)");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, c->token, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, c->key_authorization, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, c->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, c->expires_ms);
	return store__sq_write(sq, s, 0, 0, NULL);
}

int store__sq_challenge_get(struct store *st, const char *token, int64_t now_ms,
			    struct store_challenge *out)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_CHALL_GET,
	    "SELECT token, key_authorization, domain, expires_ms"
	    " FROM challenges WHERE token = ?1 AND expires_ms > ?2");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms);
	memset(out, 0, sizeof(*out));
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else if (rc != SQLITE_ROW)
		rc = store__sq_err(sq, rc);
	else if (!(rc = store__sq_text(s, 0, out->token, sizeof(out->token))) &&
		 !(rc = store__sq_text(s, 1, out->key_authorization,
				       sizeof(out->key_authorization))) &&
		 !(rc = store__sq_text(s, 2, out->domain, sizeof(out->domain))))
		out->expires_ms = sqlite3_column_int64(s, 3);
	store__sq_reset(s);
	return rc;
}

int store__sq_challenge_delete(struct store *st, const char *token)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_CHALL_DELETE, "DELETE FROM challenges WHERE token = ?1");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
	return store__sq_write(sq, s, 0, 1, NULL);
}

int store__sq_challenge_expire(struct store *st, int64_t now_ms)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s =
	    store__sq_prep(sq, SQ_CHALL_EXPIRE,
			   "DELETE FROM challenges WHERE expires_ms <= ?1");
	int rc, n = 0;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now_ms);
	rc = store__sq_write(sq, s, 0, 0, &n);
	return rc < 0 ? rc : n;
}

/* ---- buckets --------------------------------------------------------- */

int store__sq_bucket_save(struct store *st, const struct store_bucket *b)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_BUCKET_SAVE,
	    "INSERT OR REPLACE INTO rate_buckets (key, tokens, updated_ms)"
	    " VALUES (?1, ?2, ?3)");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, b->key, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, b->tokens);
	sqlite3_bind_int64(s, 3, b->updated_ms);
	return store__sq_write(sq, s, 0, 0, NULL);
}

int store__sq_bucket_load(struct store *st, const char *key,
			  struct store_bucket *out)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_BUCKET_LOAD,
	    "SELECT key, tokens, updated_ms FROM rate_buckets WHERE key = ?1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	memset(out, 0, sizeof(*out));
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else if (rc != SQLITE_ROW)
		rc = store__sq_err(sq, rc);
	else if (!(rc = store__sq_text(s, 0, out->key, sizeof(out->key)))) {
		out->tokens = sqlite3_column_double(s, 1);
		out->updated_ms = sqlite3_column_int64(s, 2);
	}
	store__sq_reset(s);
	return rc;
}

/* ---- events ---------------------------------------------------------- */

int store__sq_event_append(struct store *st, const char *domain, int64_t ts_ms,
			   const char *kind, const char *detail)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *ins =
	    store__sq_prep(sq, SQ_EVENT_APPEND,
			   "INSERT INTO events (domain, ts_ms, kind, detail)"
			   " VALUES (?1, ?2, ?3, ?4)");
	/* keep the newest ?2 rows of this domain; uses events_domain */
	sqlite3_stmt *trim = store__sq_prep(
	    sq, SQ_EVENT_TRIM,
	    "DELETE FROM events WHERE domain = ?1 AND id <= (SELECT id FROM"
	    " events WHERE domain = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
	int rc;

	if (!ins || !trim)
		return -EIO;
	rc = store__sq_begin(sq, 0);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(ins, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, ts_ms);
	sqlite3_bind_text(ins, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, detail, -1, SQLITE_STATIC);
	rc = store__sq_exec(sq, ins);
	if (rc == 0) {
		sqlite3_bind_text(trim, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_int(trim, 2, STORE_EVENTS_PER_DOMAIN);
		rc = store__sq_exec(sq, trim);
	}
	return store__sq_end(sq, rc, 0);
}

/* Read an events row (id, ts_ms, kind, detail) into the struct
 * store_event at row. */
static int event_row(sqlite3_stmt *s, void *row)
{
	struct store_event *e = row;
	int rc;

	memset(e, 0, sizeof(*e));
	e->id = sqlite3_column_int64(s, 0);
	e->ts_ms = sqlite3_column_int64(s, 1);
	rc = store__sq_text(s, 2, e->kind, sizeof(e->kind));
	if (!rc)
		rc = store__sq_text(s, 3, e->detail, sizeof(e->detail));
	return rc;
}

int store__sq_event_list(struct store *st, const char *domain,
			 struct store_event *out, size_t max, size_t *n)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_EVENT_LIST,
	    "SELECT id, ts_ms, kind, detail FROM events WHERE domain = ?1"
	    " ORDER BY id DESC LIMIT ?2");

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	return store__sq_rows(sq, s, event_row, out, sizeof(*out), max, n);
}
