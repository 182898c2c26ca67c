/*
 * store_sqlite — the embedded backend: one SQLite file in the state
 * directory, opened in WAL mode so readers (the :80 challenge server, the
 * API) never wait for the scheduler's writes.
 *
 * Durability: synchronous=NORMAL, which in WAL mode survives any process
 * crash (kill -9) and may lose the last commits only on power loss. Those
 * commits are job-state updates the scheduler recomputes. The two kinds
 * of commit whose loss costs CA rate limit - a new order's URL and a new
 * certificate - are made with synchronous=FULL (store__sq_begin durable).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_sqlite.h"
#include "util/util.h"

#define SQ_BUSY_TIMEOUT_MS 5000

/* ---- statement cache and helpers ------------------------------------- */

sqlite3_stmt *store__sq_prep(struct sq *sq, enum sq_id id, const char *sql)
{
	int rc;

	if (sq->stmt[id])
		return sq->stmt[id];
	rc = sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&sq->stmt[id], NULL);
	if (rc != SQLITE_OK) {
		store__sq_err(sq, rc);
		sq->stmt[id] = NULL;
	}
	return sq->stmt[id];
}

void store__sq_reset(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		/* drop bound pointers: key PEM must not stay referenced */
		sqlite3_clear_bindings(s);
	}
}

int store__sq_err(struct sq *sq, int rc)
{
	snprintf(sq->base.errmsg, sizeof(sq->base.errmsg), "sqlite: %s",
		 sqlite3_errmsg(sq->db));
	log_debug("store", NULL, "%s", sq->base.errmsg);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		/* a foreign key names a row that does not exist */
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return -EACCES;
	default:
		return -EIO;
	}
}

int store__sq_exec(struct sq *sq, sqlite3_stmt *s)
{
	int rc;

	if (!s)
		return -EIO;
	rc = sqlite3_step(s);
	/* the extended code is what sqlite3_errcode has after the step */
	rc = (rc == SQLITE_DONE || rc == SQLITE_ROW)
		 ? 0
		 : store__sq_err(sq, sqlite3_extended_errcode(sq->db));
	store__sq_reset(s);
	return rc;
}

int store__sq_begin(struct sq *sq, int durable)
{
	int rc;

	if (sq->bulk)
		return store__sq_exec(
		    sq, store__sq_prep(sq, SQ_SAVEPOINT, "SAVEPOINT w"));
	if (durable) {
		rc = store__sq_exec(sq,
				    store__sq_prep(sq, SQ_SYNC_FULL,
						   "PRAGMA synchronous=FULL"));
		if (rc < 0)
			return rc;
	}
	rc =
	    store__sq_exec(sq, store__sq_prep(sq, SQ_BEGIN, "BEGIN IMMEDIATE"));
	if (rc < 0 && durable)
		store__sq_exec(sq, store__sq_prep(sq, SQ_SYNC_NORMAL,
						  "PRAGMA synchronous=NORMAL"));
	return rc;
}

int store__sq_end(struct sq *sq, int rc, int durable)
{
	int c;

	if (sq->bulk) {
		/* undo only this write; the bulk goes on */
		if (rc < 0)
			store__sq_exec(sq, store__sq_prep(sq, SQ_ROLLBACK_TO,
							  "ROLLBACK TO w"));
		c = store__sq_exec(sq,
				   store__sq_prep(sq, SQ_RELEASE, "RELEASE w"));
		return rc < 0 ? rc : c;
	}
	if (rc >= 0) {
		c = store__sq_exec(sq, store__sq_prep(sq, SQ_COMMIT, "COMMIT"));
		if (c < 0)
			rc = c;
	}
	/* a failed COMMIT may leave the transaction open; roll it back */
	if (rc < 0 && !sqlite3_get_autocommit(sq->db))
		store__sq_exec(sq, store__sq_prep(sq, SQ_ROLLBACK, "ROLLBACK"));
	if (durable)
		store__sq_exec(sq, store__sq_prep(sq, SQ_SYNC_NORMAL,
						  "PRAGMA synchronous=NORMAL"));
	return rc;
}

int store__sq_rows(struct sq *sq, sqlite3_stmt *s,
		   int (*read)(sqlite3_stmt *s, void *row), void *out,
		   size_t size, size_t end, size_t *n)
{
	int rc = 0;

	while (rc == 0 && *n < end && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		rc = read(s, (char *)out + *n * size);
		if (rc == 0)
			(*n)++;
	}
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		rc = 0;
	else if (rc > 0)
		rc = store__sq_err(sq, rc);
	store__sq_reset(s);
	return rc;
}

int store__sq_write(struct sq *sq, sqlite3_stmt *s, int durable,
		    int must_change, int *changed)
{
	int rc = store__sq_begin(sq, durable), n = 0;

	if (rc < 0) {
		store__sq_reset(s); /* drop the bindings */
		return rc;
	}
	rc = store__sq_exec(sq, s);
	if (rc == 0) {
		n = sqlite3_changes(sq->db);
		if (must_change && n == 0)
			rc = -ENOENT;
	}
	rc = store__sq_end(sq, rc, durable);
	if (rc == 0 && changed)
		*changed = n;
	return rc;
}

int store__sq_domain_state(sqlite3_stmt *s, int status_col, int failures_col,
			   enum store_domain_status *status,
			   uint32_t *failures)
{
	int64_t st = sqlite3_column_int64(s, status_col);
	int64_t f = sqlite3_column_int64(s, failures_col);

	if (st < 0 || st >= STORE_DOMAIN__MAX || f < 0 || f > UINT32_MAX)
		return -EBADMSG;
	*status = (enum store_domain_status)st;
	*failures = (uint32_t)f;
	return 0;
}

int store__sq_text(sqlite3_stmt *s, int col, char *dst, size_t dstsz)
{
	const char *t = (const char *)sqlite3_column_text(s, col);

	return store__copy(dst, dstsz, t,
			   t ? (size_t)sqlite3_column_bytes(s, col) : 0);
}

int store__sq_dup(sqlite3_stmt *s, int col, size_t max, char **out)
{
	const char *t = (const char *)sqlite3_column_text(s, col);
	size_t len = t ? (size_t)sqlite3_column_bytes(s, col) : 0;

	*out = NULL;
	if (!t)
		return 0;
	if (len > max || memchr(t, 0, len))
		return -EBADMSG;
	*out = strndup(t, len);
	return *out ? 0 : -ENOMEM;
}

int64_t store__sq_time(sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return STORE_NO_TIME;
	return sqlite3_column_int64(s, col);
}

int store__sq_bind_time(sqlite3_stmt *s, int col, int64_t t)
{
	return t == STORE_NO_TIME ? sqlite3_bind_null(s, col)
				  : sqlite3_bind_int64(s, col, t);
}

/* ---- bulk writes ----------------------------------------------------- */

int store__sq_bulk_begin(struct store *st)
{
	struct sq *sq = sq_of(st);
	int rc;

	if (sq->bulk)
		return -EBUSY;
	/* durable now: SQLite refuses to change synchronous inside a
	 * transaction, and the bulk's one commit stands for every durable
	 * write inside it */
	rc = store__sq_begin(sq, 1);
	if (rc == 0)
		sq->bulk = 1;
	return rc;
}

int store__sq_bulk_end(struct store *st, int commit)
{
	struct sq *sq = sq_of(st);

	int rc;

	if (!sq->bulk)
		return -EINVAL;
	sq->bulk = 0;
	rc = store__sq_end(sq, commit ? 0 : -ECANCELED, 1);
	return rc == -ECANCELED ? 0 : rc;
}

/* ---- open / close ---------------------------------------------------- */

static void sq_close(struct store *st)
{
	struct sq *sq = sq_of(st);
	int i;

	for (i = 0; i < SQ__MAX; i++)
		sqlite3_finalize(sq->stmt[i]);
	/* the last connection to close checkpoints and removes the WAL */
	sqlite3_close_v2(sq->db);
	free(sq);
}

static const struct store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .bulk_begin = store__sq_bulk_begin,
    .bulk_end = store__sq_bulk_end,
    .account_put = store__sq_account_put,
    .account_get = store__sq_account_get,
    .domain_add = store__sq_domain_add,
    .domain_remove = store__sq_domain_remove,
    .domain_get = store__sq_domain_get,
    .domain_list = store__sq_domain_list,
    .domain_count = store__sq_domain_count,
    .domain_due = store__sq_domain_due,
    .domain_set_job = store__sq_domain_set_job,
    .order_begin = store__sq_order_begin,
    .order_update = store__sq_order_update,
    .order_list_pending = store__sq_order_list_pending,
    .cert_insert = store__sq_cert_insert,
    .cert_current = store__sq_cert_current,
    .cert_expiring = store__sq_cert_expiring,
    .cert_set_ari = store__sq_cert_set_ari,
    .challenge_put = store__sq_challenge_put,
    .challenge_get = store__sq_challenge_get,
    .challenge_delete = store__sq_challenge_delete,
    .challenge_expire = store__sq_challenge_expire,
    .bucket_save = store__sq_bucket_save,
    .bucket_load = store__sq_bucket_load,
    .event_append = store__sq_event_append,
    .event_list = store__sq_event_list,
};

/*
 * Create the state directory (0700) and the database file (0600) before
 * SQLite sees them: SQLite would create the file with the umask's mode,
 * and its -wal and -shm files copy the database file's mode.
 */
static int sq_prepare_files(const char *dir, const char *path, char *err,
			    size_t errsz)
{
	struct stat sb;
	int fd, rc;

	rc = fsio_mkdirs(dir, 0700);
	if (rc < 0) {
		snprintf(err, errsz, "cannot create state directory %s: %s",
			 dir, strerror(-rc));
		return rc;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errsz, "cannot open %s: %s", path,
			 strerror(errno));
		return rc;
	}
	/* an existing file readable by others holds keys: tighten it */
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		rc = fchmod(fd, sb.st_mode & 0700) ? -errno : 0;
	close(fd);
	if (rc < 0)
		snprintf(err, errsz, "cannot restrict mode of %s: %s", path,
			 strerror(-rc));
	return rc;
}

static int sq_pragmas(struct sq *sq)
{
	static const char *const sql =
	    "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;"
	    "PRAGMA foreign_keys=ON;"
	    /* keys in freed pages are overwritten, not left in the file */
	    "PRAGMA secure_delete=ON;";
	int rc;

	rc = sqlite3_busy_timeout(sq->db, SQ_BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(sq->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store__sq_err(sq, rc);
}

int store__sqlite_open(const char *state_dir, struct store **out, char *err,
		       size_t errsz)
{
	char scratch[256];
	char path[4200];
	struct sq *sq = NULL;
	int rc;

	if (!err || !errsz) {
		err = scratch;
		errsz = sizeof(scratch);
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/certherd.db", state_dir) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	rc = sq_prepare_files(state_dir, path, err, errsz);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	sq = calloc(1, sizeof(*sq));
	if (!sq)
		goto out;
	sq->base.ops = &sq_ops;
	rc = sqlite3_open_v2(path, &sq->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = sq->db ? store__sq_err(sq, rc) : -ENOMEM;
		snprintf(err, errsz, "cannot open %s: %s", path,
			 sq->base.errmsg);
		goto out;
	}
	sqlite3_extended_result_codes(sq->db, 1);
	rc = sq_pragmas(sq);
	if (rc < 0) {
		snprintf(err, errsz, "cannot set up %s: %s", path,
			 sq->base.errmsg);
		goto out;
	}
	rc = store__schema_migrate(sq->db, err, errsz);
	if (rc < 0)
		goto out;
	*out = &sq->base;
	sq = NULL;
	rc = 0;
out:
	if (sq)
		sq_close(&sq->base);
	return rc;
}
