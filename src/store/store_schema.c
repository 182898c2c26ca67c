/*
 * store_schema — the SQLite schema as a list of migrations.
 *
 * PRAGMA user_version holds the number of migrations applied. Each step
 * runs in its own BEGIN IMMEDIATE transaction together with the version
 * bump, so a crash mid-migration leaves the previous version intact, and
 * two processes opening the same new database do not both migrate (the
 * second re-reads the version under the write lock). A database whose
 * version is higher than the steps we know was written by a newer
 * certherd: we refuse it rather than misread it. PRAGMA application_id
 * marks the file as ours so a foreign SQLite file is not "migrated".
 *
 * Rules for new steps: append only; never edit a released step; enum
 * values stored as integers are append-only too (name tables below are
 * for humans reading the database with sqlite3).
 *
 * Times are INTEGER milliseconds since the epoch (columns end in _ms);
 * NULL means "none".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/store_sqlite.h"

#define SCHEMA_APP_ID 0x43485244 /* "CHRD" */

static const char *const schema_steps[] = {
    /* 1: initial schema */
    "CREATE TABLE domain_status (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
    "UNIQUE);"
    "INSERT INTO domain_status VALUES (0,'pending'),(1,'dns-pending'),"
    "(2,'issuing'),(3,'valid'),(4,'renewing'),(5,'failed'),(6,'removed');"
    "CREATE TABLE order_state (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
    "UNIQUE);"
    "INSERT INTO order_state VALUES (0,'pending'),(1,'ready'),"
    "(2,'processing'),(3,'valid'),(4,'invalid'),(5,'done');"

    "CREATE TABLE account ("
    " directory_url TEXT PRIMARY KEY,"
    " account_url TEXT,"
    " key_pem TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"

    "CREATE TABLE domains ("
    " name TEXT PRIMARY KEY,"
    " status INTEGER NOT NULL REFERENCES domain_status(id),"
    " challenge TEXT NOT NULL,"
    " added_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " next_attempt_ms INTEGER,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT" /* JSON problem document */
    ") WITHOUT ROWID;"
    /* the scheduler's query: only scheduled rows are in this index */
    "CREATE INDEX domains_due ON domains(next_attempt_ms)"
    " WHERE next_attempt_ms IS NOT NULL;"
    "CREATE INDEX domains_status ON domains(status);"

    "CREATE TABLE orders ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL REFERENCES domains(name),"
    " url TEXT NOT NULL,"
    " state INTEGER NOT NULL REFERENCES order_state(id),"
    " key_pem TEXT," /* CSR key; NULL once terminal */
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL"
    ");"
    /* one order in flight per domain: a second would spend rate limit */
    "CREATE UNIQUE INDEX orders_inflight ON orders(domain)"
    " WHERE state NOT IN (4,5);"

    "CREATE TABLE certificates ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL REFERENCES domains(name),"
    " chain_pem TEXT NOT NULL,"
    " key_pem TEXT NOT NULL,"
    " serial TEXT NOT NULL,"
    " issuer TEXT NOT NULL,"
    " profile TEXT NOT NULL DEFAULT '',"
    " not_before_ms INTEGER NOT NULL,"
    " not_after_ms INTEGER NOT NULL,"
    " ari_start_ms INTEGER,"
    " ari_end_ms INTEGER,"
    " created_ms INTEGER NOT NULL,"
    " current INTEGER NOT NULL DEFAULT 0 CHECK (current IN (0,1))"
    ");"
    /* at most one current certificate per domain, enforced by SQLite */
    "CREATE UNIQUE INDEX certificates_current ON certificates(domain)"
    " WHERE current = 1;"
    "CREATE INDEX certificates_expiry ON certificates(not_after_ms)"
    " WHERE current = 1;"
    "CREATE INDEX certificates_domain ON certificates(domain);"

    "CREATE TABLE challenges ("
    " token TEXT PRIMARY KEY,"
    " key_authorization TEXT NOT NULL,"
    " domain TEXT NOT NULL REFERENCES domains(name),"
    " expires_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX challenges_expiry ON challenges(expires_ms);"
    "CREATE INDEX challenges_domain ON challenges(domain);"

    "CREATE TABLE rate_buckets ("
    " key TEXT PRIMARY KEY,"
    " tokens REAL NOT NULL,"
    " updated_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"

    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL REFERENCES domains(name),"
    " ts_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " detail TEXT NOT NULL"
    ");"
    "CREATE INDEX events_domain ON events(domain, id);",

    /* 2: the scheduler's due query ranks by the current certificate's
     * validity. Joined from certificates it cost a random b-tree lookup
     * (and, in the row, the PEM overflow pages before the validity
     * columns) per due domain and pass: ~10 ms of CPU per pass at
     * 100,000 domains with 1,000 due (bench/RESULTS.md). The validity
     * now lives in the domain row too, kept by store_cert_insert, and
     * domains_due covers the whole query: one index range scan per
     * status. */
    "ALTER TABLE domains ADD COLUMN cert_not_before_ms INTEGER;"
    "ALTER TABLE domains ADD COLUMN cert_not_after_ms INTEGER;"
    "UPDATE domains SET (cert_not_before_ms, cert_not_after_ms) ="
    " (SELECT not_before_ms, not_after_ms FROM certificates c"
    "  WHERE c.domain = domains.name AND c.current = 1);"
    "DROP INDEX domains_due;"
    "CREATE INDEX domains_due ON domains(status, next_attempt_ms, failures,"
    " cert_not_before_ms, cert_not_after_ms)"
    " WHERE next_attempt_ms IS NOT NULL;"
    /* and one in the scheduler's order, for a large backlog of one
     * status (store_sqlite_due.c): its first rows are the answer */
    "CREATE INDEX domains_due_rank ON domains(status,"
    " coalesce(cert_not_after_ms, 9223372036854775807), next_attempt_ms,"
    " name, failures, cert_not_before_ms)"
    " WHERE next_attempt_ms IS NOT NULL;",
};

#define SCHEMA_VERSION ((int)(sizeof(schema_steps) / sizeof(schema_steps[0])))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		*out = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

/* One migration step or just the check, under the write lock. Returns 1
 * when a step was applied, 0 when up to date, <0 on error. */
static int schema_step(sqlite3 *db, char *err, size_t errsz)
{
	char sql[96];
	int ver = 0, app = 0, tables = 0, rc, ret = -EIO;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errsz, "cannot lock database: %s",
			 sqlite3_errmsg(db));
		return (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
	}
	if (pragma_int(db, "PRAGMA user_version", &ver) != SQLITE_OK ||
	    pragma_int(db, "PRAGMA application_id", &app) != SQLITE_OK ||
	    pragma_int(db, "SELECT count(*) FROM sqlite_schema", &tables) !=
		SQLITE_OK) {
		snprintf(err, errsz, "cannot read database header: %s",
			 sqlite3_errmsg(db));
		ret = (sqlite3_errcode(db) & 0xff) == SQLITE_NOTADB ? -EBADMSG
								    : -EIO;
		goto out;
	}
	if ((app != 0 && app != SCHEMA_APP_ID) || (ver == 0 && tables > 0)) {
		snprintf(err, errsz, "database is not a certherd store");
		ret = -EBADMSG;
		goto out;
	}
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errsz,
			 "database schema version %d is newer than this "
			 "certherd supports (%d): upgrade certherd",
			 ver, SCHEMA_VERSION);
		ret = -ENOTSUP;
		goto out;
	}
	if (ver == SCHEMA_VERSION) {
		ret = 0;
		goto out;
	}
	snprintf(sql, sizeof(sql),
		 "PRAGMA user_version=%d; PRAGMA application_id=%d", ver + 1,
		 SCHEMA_APP_ID);
	if (sqlite3_exec(db, schema_steps[ver], NULL, NULL, NULL) !=
		SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errsz,
			 "schema migration to version %d failed: %s", ver + 1,
			 sqlite3_errmsg(db));
		ret = (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? -ENOSPC
								  : -EIO;
		goto out;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errsz,
			 "schema migration to version %d: commit "
			 "failed: %s",
			 ver + 1, sqlite3_errmsg(db));
		goto out;
	}
	return 1;
out:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

int store__schema_migrate(sqlite3 *db, char *err, size_t errsz)
{
	int rc;

	while ((rc = schema_step(db, err, errsz)) > 0)
		;
	return rc;
}
