/*
 * Internals of the SQLite backend, shared by store_sqlite*.c and
 * store_schema.c: the handle, the prepared-statement cache and the
 * transaction helpers. Each statement has a slot in enum sq_id; the SQL
 * text lives next to the function that runs it and is prepared on first
 * use (SQLITE_PREPARE_PERSISTENT), then reset and reused.
 */
#ifndef CERTHERD_STORE_SQLITE_H
#define CERTHERD_STORE_SQLITE_H

#include <sqlite3.h>

#include "store/store_internal.h"

enum sq_id {
	SQ_BEGIN = 0,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_SYNC_FULL,
	SQ_SYNC_NORMAL,
	SQ_SAVEPOINT,
	SQ_RELEASE,
	SQ_ROLLBACK_TO,
	SQ_ACCOUNT_PUT,
	SQ_ACCOUNT_GET,
	SQ_DOMAIN_ADD,
	SQ_DOMAIN_REVIVE,
	SQ_DOMAIN_REMOVE,
	SQ_DOMAIN_GET,
	SQ_DOMAIN_LIST,
	SQ_DOMAIN_LIST_STATUS,
	SQ_DOMAIN_COUNT,
	SQ_DUE_PEEK,
	SQ_DUE_SORT,
	SQ_DUE_WALK,
	SQ_DOMAIN_SET_JOB,
	SQ_ORDER_BEGIN,
	SQ_ORDER_UPDATE,
	SQ_ORDER_FINISH,
	SQ_ORDER_PENDING,
	SQ_CERT_UNCURRENT,
	SQ_CERT_INSERT,
	SQ_CERT_DOMAIN_VALID,
	SQ_CERT_DOMAIN_VALIDITY,
	SQ_CERT_CURRENT,
	SQ_CERT_EXPIRING,
	SQ_CERT_SET_ARI,
	SQ_CHALL_PUT,
	SQ_CHALL_GET,
	SQ_CHALL_DELETE,
	SQ_CHALL_EXPIRE,
	SQ_BUCKET_SAVE,
	SQ_BUCKET_LOAD,
	SQ_EVENT_APPEND,
	SQ_EVENT_TRIM,
	SQ_EVENT_LIST,
	SQ__MAX
};

struct sq {
	struct store base; /* first: struct store * casts to struct sq * */
	sqlite3 *db;
	sqlite3_stmt *stmt[SQ__MAX];
	int bulk; /* inside store_bulk_begin/end: writes are savepoints */
};

static inline struct sq *sq_of(struct store *st)
{
	return (struct sq *)st;
}

/* The cached statement for id, prepared from sql on first use; NULL on
 * error (recorded in errmsg). Callers bind, step, then sq_reset. */
sqlite3_stmt *store__sq_prep(struct sq *sq, enum sq_id id, const char *sql);
void store__sq_reset(sqlite3_stmt *s);
/* Map an SQLite result code to a negative errno and record the message. */
int store__sq_err(struct sq *sq, int rc);
/* Run a statement that returns no rows (one step); 0 or negative errno. */
int store__sq_exec(struct sq *sq, sqlite3_stmt *s);
/* BEGIN IMMEDIATE (take the write lock now, so a busy database waits in
 * busy_timeout instead of failing on lock upgrade). durable: this commit
 * is synced (synchronous=FULL) before it returns. Inside a bulk
 * (store_bulk_begin) a savepoint instead, released by store__sq_end;
 * durability then comes from the bulk's commit. */
int store__sq_begin(struct sq *sq, int durable);
/* COMMIT if rc >= 0 else ROLLBACK; returns rc or the commit's error. */
int store__sq_end(struct sq *sq, int rc, int durable);
/* Run the bound statement s (one write, no rows back) in a transaction of
 * its own (store__sq_begin(durable) .. store__sq_end): 0 or a negative
 * errno; -ENOENT, rolled back, when must_change and no row changed. The
 * rows changed into *changed (NULL: not wanted). s is reset either way. */
int store__sq_write(struct sq *sq, sqlite3_stmt *s, int durable,
		    int must_change, int *changed);
/* Step s, reading each row with read into the next element of out
 * (elements of size bytes, *n of them filled so far), until the rows end
 * or *n reaches end; then reset s. The loop of every query that lists
 * rows. 0, or read's negative errno (the row it failed on is not
 * counted), or the step's. */
int store__sq_rows(struct sq *sq, sqlite3_stmt *s,
		   int (*read)(sqlite3_stmt *s, void *row), void *out,
		   size_t size, size_t end, size_t *n);
/* Column helpers that bound what comes back: -EBADMSG if it does not fit. */
int store__sq_text(sqlite3_stmt *s, int col, char *dst, size_t dstsz);
int store__sq_dup(sqlite3_stmt *s, int col, size_t max, char **out);
/* A domains row's status and failures columns, checked against their
 * ranges: 0, or -EBADMSG (*status and *failures then untouched). */
int store__sq_domain_state(sqlite3_stmt *s, int status_col, int failures_col,
			   enum store_domain_status *status,
			   uint32_t *failures);
/* Integer column, NULL -> STORE_NO_TIME. */
int64_t store__sq_time(sqlite3_stmt *s, int col);
/* Bind a time: STORE_NO_TIME -> NULL. */
int store__sq_bind_time(sqlite3_stmt *s, int col, int64_t t);

/* store_bulk_begin / store_bulk_end */
int store__sq_bulk_begin(struct store *st);
int store__sq_bulk_end(struct store *st, int commit);

/* Schema (store_schema.c): migrate db to the current version. */
int store__schema_migrate(sqlite3 *db, char *err, size_t errsz);

/* Ops implemented in store_sqlite_*.c */
int store__sq_account_put(struct store *, const struct store_account *);
int store__sq_account_get(struct store *, const char *, struct store_account *);
int store__sq_domain_add(struct store *, const char *, const char *, int64_t);
int store__sq_domain_remove(struct store *, const char *, int64_t);
int store__sq_domain_get(struct store *, const char *, struct store_domain *);
int store__sq_domain_list(struct store *, const struct store_domain_filter *,
			  struct store_domain *, size_t, size_t *);
int store__sq_domain_count(struct store *, uint64_t *);
int store__sq_domain_due(struct store *, int64_t, const unsigned *,
			 struct store_due *, size_t, size_t *);
int store__sq_domain_set_job(struct store *, const char *,
			     const struct store_job *, int64_t);
int store__sq_order_begin(struct store *, const char *, const char *,
			  const char *, int64_t, int64_t *);
int store__sq_order_update(struct store *, int64_t, enum store_order_state,
			   int64_t, int);
int store__sq_order_list_pending(struct store *, int64_t, struct store_order *,
				 size_t, size_t *);
int store__sq_cert_insert(struct store *, const struct store_cert *, int64_t,
			  int64_t, int64_t, int64_t *);
int store__sq_cert_current(struct store *, const char *, struct store_cert *);
int store__sq_cert_expiring(struct store *, int64_t, struct store_cert_info *,
			    size_t, size_t *);
int store__sq_cert_set_ari(struct store *, int64_t, int64_t, int64_t);
int store__sq_challenge_put(struct store *, const struct store_challenge *);
int store__sq_challenge_get(struct store *, const char *, int64_t,
			    struct store_challenge *);
int store__sq_challenge_delete(struct store *, const char *);
int store__sq_challenge_expire(struct store *, int64_t);
int store__sq_bucket_save(struct store *, const struct store_bucket *);
int store__sq_bucket_load(struct store *, const char *, struct store_bucket *);
int store__sq_event_append(struct store *, const char *, int64_t, const char *,
			   const char *);
int store__sq_event_list(struct store *, const char *, struct store_event *,
			 size_t, size_t *);

#endif
