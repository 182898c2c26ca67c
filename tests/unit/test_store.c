/*
 * Unit tests for the store against real SQLite, each in a fresh temp
 * directory: migrations and file modes, reopen, schema version refusal,
 * domains (idempotent add, pagination, filters, due order, job state),
 * order resume after a "crash" (close without finishing), certificate
 * switching in one transaction, challenges, buckets, the event cap, rows
 * that fail validation, and bad input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store_fixture.h"

static void reopen(struct store_fx *fx)
{
	char err[256];

	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(store_open(fx->state, &fx->st, err, sizeof(err)), 0);
}

/* Run SQL on the database behind the store's back (tests of what the
 * store does with rows it did not write). */
static void raw_sql(struct store_fx *fx, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static int64_t raw_int(struct store_fx *fx, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v;

	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void test_open_modes_and_version(void **state)
{
	struct store_fx *fx = *state;
	char wal[160];
	struct stat sb;

	assert_int_equal(stat(fx->state, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(fx->db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* the WAL copies the database file's mode */
	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	snprintf(wal, sizeof(wal), "%s-wal", fx->db);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(raw_int(fx, "PRAGMA user_version"),
			 store_schema_version());
}

static void test_reopen_keeps_data(void **state)
{
	struct store_fx *fx = *state;
	struct store_account a = {"https://ca.test/dir", NULL,
				  "-----BEGIN PRIVATE KEY-----\nx\n", T0};
	struct store_account got;
	struct store_domain d;

	assert_int_equal(store_account_put(fx->st, &a), 0);
	assert_int_equal(
	    store_domain_add(fx->st, "a.example.com", "dns-01", T0), 1);
	reopen(fx);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_string_equal(d.challenge, "dns-01");
	assert_int_equal(d.status, STORE_DOMAIN_PENDING);
	assert_int_equal(d.next_attempt_ms, T0);
	assert_int_equal(store_account_get(fx->st, a.directory_url, &got), 0);
	assert_null(got.account_url);
	assert_string_equal(got.key_pem, a.key_pem);
	store_account_clear(&got);
	a.account_url = "https://ca.test/acct/1";
	assert_int_equal(store_account_put(fx->st, &a), 0);
	assert_int_equal(store_account_get(fx->st, a.directory_url, &got), 0);
	assert_string_equal(got.account_url, a.account_url);
	store_account_clear(&got);
	assert_int_equal(store_account_get(fx->st, "https://other/", &got),
			 -ENOENT);
}

static void test_refuses_newer_schema(void **state)
{
	struct store_fx *fx = *state;
	struct store *st2 = (struct store *)1;
	char err[256];

	store_close(fx->st);
	fx->st = NULL;
	raw_sql(fx, "PRAGMA user_version=999");
	assert_int_equal(store_open(fx->state, &st2, err, sizeof(err)),
			 -ENOTSUP);
	assert_null(st2);
	assert_non_null(strstr(err, "newer"));
	/* nothing was changed by the refused open */
	assert_int_equal(raw_int(fx, "PRAGMA user_version"), 999);
}

static void test_refuses_foreign_db(void **state)
{
	struct store_fx *fx = *state;
	struct store *st2 = NULL;
	char err[256];

	store_close(fx->st);
	fx->st = NULL;
	remove(fx->db);
	raw_sql(fx, "CREATE TABLE foo (x)");
	assert_int_equal(store_open(fx->state, &st2, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "not a certherd"));
}

static void test_domain_add_idempotent(void **state)
{
	struct store_fx *fx = *state;
	struct store_domain d;

	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(
	    store_domain_add(fx->st, "a.example.com", NULL, T0 + 5), 0);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_int_equal(d.added_ms, T0);
	assert_int_equal(store_domain_remove(fx->st, "a.example.com", T0 + 9),
			 0);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_REMOVED);
	assert_int_equal(d.next_attempt_ms, STORE_NO_TIME);
	/* adding a removed name brings it back as new */
	assert_int_equal(
	    store_domain_add(fx->st, "a.example.com", NULL, T0 + 10), 1);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_PENDING);
	assert_int_equal(d.next_attempt_ms, T0 + 10);
	assert_int_equal(store_domain_remove(fx->st, "b.example.com", T0),
			 -ENOENT);
	assert_int_equal(store_domain_get(fx->st, "b.example.com", &d),
			 -ENOENT);
}

static void test_domain_list_pages_and_filters(void **state)
{
	struct store_fx *fx = *state;
	struct store_domain page[10];
	struct store_domain_filter f = {0};
	struct store_job job = {STORE_DOMAIN_VALID, STORE_NO_TIME, 0, NULL};
	uint64_t counts[STORE_DOMAIN__MAX];
	char name[64], last[256] = "";
	size_t n, total = 0;
	int i;

	for (i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "a%02d.example.com", i);
		assert_int_equal(store_domain_add(fx->st, name, NULL, T0), 1);
		if (i % 5 == 0)
			assert_int_equal(
			    store_domain_set_job(fx->st, name, &job, T0), 0);
	}
	assert_int_equal(store_domain_add(fx->st, "b.example.org", NULL, T0),
			 1);
	/* pages of 10 by cursor, in name order, nothing twice */
	do {
		f.after = last[0] ? last : NULL;
		assert_int_equal(store_domain_list(fx->st, &f, page, 10, &n),
				 0);
		if (n) {
			assert_true(strcmp(page[0].name, last) > 0);
			strcpy(last, page[n - 1].name);
		}
		total += n;
	} while (n == 10);
	assert_int_equal(total, 26);
	assert_string_equal(last, "b.example.org");

	memset(&f, 0, sizeof(f));
	f.prefix = "a1";
	assert_int_equal(store_domain_list(fx->st, &f, page, 10, &n), 0);
	assert_int_equal(n, 10);
	assert_string_equal(page[0].name, "a10.example.com");
	assert_string_equal(page[9].name, "a19.example.com");

	f.prefix = NULL;
	f.status_mask = 1u << STORE_DOMAIN_VALID;
	assert_int_equal(store_domain_list(fx->st, &f, page, 10, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(page[1].name, "a05.example.com");

	assert_int_equal(store_domain_count(fx->st, counts), 0);
	assert_int_equal(counts[STORE_DOMAIN_VALID], 5);
	assert_int_equal(counts[STORE_DOMAIN_PENDING], 21);
	assert_int_equal(counts[STORE_DOMAIN_FAILED], 0);
}

static void test_due_order_and_job_state(void **state)
{
	struct store_fx *fx = *state;
	/* renewals first, then new names, the rest after */
	const unsigned rank[STORE_DOMAIN__MAX] = {
	    [STORE_DOMAIN_PENDING] = 1,	 [STORE_DOMAIN_DNS_PENDING] = 2,
	    [STORE_DOMAIN_ISSUING] = 3,	 [STORE_DOMAIN_VALID] = 0,
	    [STORE_DOMAIN_RENEWING] = 0, [STORE_DOMAIN_FAILED] = 4,
	    [STORE_DOMAIN_REMOVED] = 5};
	struct store_problem p = {.status = 429, .retry_after_ms = T0 + 3600};
	struct store_job job = {STORE_DOMAIN_VALID, T0 - 10, 0, NULL};
	struct store_due due[8];
	struct store_domain d;
	size_t n;

	assert_int_equal(
	    store_domain_add(fx->st, "new1.example.com", NULL, T0 - 5), 1);
	assert_int_equal(
	    store_domain_add(fx->st, "new2.example.com", NULL, T0 - 50), 1);
	assert_int_equal(
	    store_domain_add(fx->st, "later.example.com", NULL, T0 + 1), 1);
	assert_int_equal(
	    store_domain_add(fx->st, "renew.example.com", NULL, T0), 1);
	assert_int_equal(
	    store_domain_add(fx->st, "gone.example.com", NULL, T0 - 99), 1);
	assert_int_equal(
	    store_domain_set_job(fx->st, "renew.example.com", &job, T0), 0);
	assert_int_equal(store_domain_remove(fx->st, "gone.example.com", T0),
			 0);

	assert_int_equal(store_domain_due(fx->st, T0, rank, due, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(due[0].name, "renew.example.com");
	assert_string_equal(due[1].name, "new2.example.com");
	assert_string_equal(due[2].name, "new1.example.com");
	assert_int_equal(due[0].not_after_ms, STORE_NO_TIME);
	assert_int_equal(store_domain_due(fx->st, T0, rank, due, 1, &n), 0);
	assert_int_equal(n, 1);

	/* a failure with its problem document survives a reopen */
	strcpy(p.type, "rateLimited");
	strcpy(p.detail, "too many \"certificates\" for example.com");
	strcpy(p.step, "newOrder");
	job.status = STORE_DOMAIN_PENDING;
	job.next_attempt_ms = T0 + 3600;
	job.failures = 3;
	job.error = &p;
	assert_int_equal(
	    store_domain_set_job(fx->st, "new1.example.com", &job, T0), 0);
	reopen(fx);
	assert_int_equal(store_domain_get(fx->st, "new1.example.com", &d), 0);
	assert_int_equal(d.failures, 3);
	assert_true(d.has_error);
	assert_string_equal(d.last_error.type, "rateLimited");
	assert_string_equal(d.last_error.detail, p.detail);
	assert_string_equal(d.last_error.step, "newOrder");
	assert_int_equal(d.last_error.status, 429);
	assert_int_equal(d.last_error.retry_after_ms, T0 + 3600);
	job.error = NULL;
	assert_int_equal(
	    store_domain_set_job(fx->st, "new1.example.com", &job, T0), 0);
	assert_int_equal(store_domain_get(fx->st, "new1.example.com", &d), 0);
	assert_false(d.has_error);
	assert_int_equal(
	    store_domain_set_job(fx->st, "none.example.com", &job, T0),
	    -ENOENT);
}

static void test_order_resume_after_crash(void **state)
{
	struct store_fx *fx = *state;
	struct store_order o[4];
	int64_t id, id2;
	size_t n;

	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(store_order_begin(fx->st, "a.example.com",
					   "https://ca.test/order/1", "KEY-A",
					   T0, &id),
			 0);
	/* one order in flight per domain */
	assert_int_equal(store_order_begin(fx->st, "a.example.com",
					   "https://ca.test/order/2", "KEY-X",
					   T0, &id2),
			 -EEXIST);
	assert_int_equal(store_order_begin(fx->st, "zz.example.com",
					   "https://ca.test/order/3", "KEY-X",
					   T0, &id2),
			 -ENOENT);
	assert_int_equal(store_order_begin(fx->st, "b.example.com",
					   "https://ca.test/order/4", "KEY-B",
					   T0, &id2),
			 0);
	assert_int_equal(
	    store_order_update(fx->st, id, STORE_ORDER_PROCESSING, T0 + 1), 0);
	/* "crash": close without finishing anything, then restart */
	reopen(fx);
	assert_int_equal(store_order_list_pending(fx->st, 0, o, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(o[0].id, id);
	assert_string_equal(o[0].domain, "a.example.com");
	assert_string_equal(o[0].url, "https://ca.test/order/1");
	assert_string_equal(o[0].key_pem, "KEY-A");
	assert_int_equal(o[0].state, STORE_ORDER_PROCESSING);
	assert_int_equal(o[0].updated_ms, T0 + 1);
	assert_string_equal(o[1].key_pem, "KEY-B");
	store_order_clear(&o[0]);
	store_order_clear(&o[1]);
	/* cursor */
	assert_int_equal(store_order_list_pending(fx->st, id, o, 4, &n), 0);
	assert_int_equal(n, 1);
	store_order_clear(&o[0]);

	assert_int_equal(
	    store_order_finish(fx->st, id, STORE_ORDER_INVALID, T0 + 2), 0);
	assert_int_equal(store_order_update(fx->st, id, STORE_ORDER_READY, T0),
			 -ENOENT);
	assert_int_equal(store_order_finish(fx->st, id, STORE_ORDER_READY, T0),
			 -EINVAL);
	assert_int_equal(raw_int(fx, "SELECT count(*) FROM orders"
				     " WHERE key_pem IS NULL"),
			 1);
	assert_int_equal(store_order_list_pending(fx->st, 0, o, 4, &n), 0);
	assert_int_equal(n, 1);
	store_order_clear(&o[0]);
	/* a finished order frees the domain for a new one */
	assert_int_equal(store_order_begin(fx->st, "a.example.com",
					   "https://ca.test/order/5", "KEY-A2",
					   T0, &id2),
			 0);
}

static void test_cert_current_switch(void **state)
{
	struct store_fx *fx = *state;
	struct store_cert c1 =
	    store_fx_cert("a.example.com", "01", T0, T0 + 90000);
	struct store_cert c2 =
	    store_fx_cert("a.example.com", "02", T0, T0 + 180000);
	struct store_cert got;
	struct store_cert_info exp[4];
	struct store_domain d;
	int64_t oid, id1, id2, id3;
	size_t n;

	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(store_cert_current(fx->st, "a.example.com", &got),
			 -ENOENT);
	assert_int_equal(store_order_begin(fx->st, "a.example.com",
					   "https://ca.test/o/1", "K", T0,
					   &oid),
			 0);
	assert_int_equal(
	    store_cert_insert(fx->st, &c1, oid, T0 + 60000, T0, &id1), 0);
	/* the order was finished in the certificate's transaction */
	assert_int_equal(raw_int(fx, "SELECT state FROM orders"),
			 STORE_ORDER_DONE);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_VALID);
	assert_int_equal(d.next_attempt_ms, T0 + 60000);

	/* a wrong order id rolls the whole insert back: c1 stays current */
	assert_int_equal(store_cert_insert(fx->st, &c2, oid, T0, T0, &id3),
			 -ENOENT);
	assert_int_equal(store_cert_current(fx->st, "a.example.com", &got), 0);
	assert_int_equal(got.info.id, id1);
	store_cert_clear(&got);

	c2.chain_pem = (char *)"CHAIN2";
	strcpy(c2.info.profile, "shortlived");
	assert_int_equal(
	    store_cert_insert(fx->st, &c2, 0, T0 + 120000, T0 + 5, &id2), 0);
	assert_int_equal(store_cert_current(fx->st, "a.example.com", &got), 0);
	assert_int_equal(got.info.id, id2);
	assert_string_equal(got.chain_pem, "CHAIN2");
	assert_string_equal(got.key_pem, "KEY");
	assert_string_equal(got.info.serial, "02");
	assert_string_equal(got.info.profile, "shortlived");
	assert_true(got.info.current);
	store_cert_clear(&got);
	assert_int_equal(raw_int(fx, "SELECT count(*) FROM certificates"
				     " WHERE current = 1"),
			 1);
	assert_int_equal(raw_int(fx, "SELECT count(*) FROM certificates"), 2);

	c1 = store_fx_cert("b.example.com", "03", T0, T0 + 100000);
	assert_int_equal(
	    store_cert_insert(fx->st, &c1, 0, STORE_NO_TIME, T0, NULL), 0);
	assert_int_equal(store_cert_expiring(fx->st, T0 + 150000, exp, 4, &n),
			 0);
	assert_int_equal(n, 1);
	assert_string_equal(exp[0].domain, "b.example.com");
	assert_int_equal(store_cert_expiring(fx->st, T0 + 999999, exp, 4, &n),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(exp[1].id, id2);

	assert_int_equal(store_cert_set_ari(fx->st, id2, T0 + 1, T0 + 2), 0);
	assert_int_equal(store_cert_current(fx->st, "a.example.com", &got), 0);
	assert_int_equal(got.info.ari_start_ms, T0 + 1);
	assert_int_equal(got.info.ari_end_ms, T0 + 2);
	store_cert_clear(&got);
	assert_int_equal(store_cert_set_ari(fx->st, 9999, T0, T0), -ENOENT);
	c1 = store_fx_cert("zz.example.com", "04", T0, T0 + 1);
	assert_int_equal(store_cert_insert(fx->st, &c1, 0, T0, T0, NULL),
			 -ENOENT);
}

/* Two due domains: r with a certificate valid T0 - 500 .. T0 + 900, n
 * without one. */
static void add_r_and_n(struct store_fx *fx)
{
	struct store_cert c =
	    store_fx_cert("r.example.com", "01", T0 - 500, T0 + 900);

	assert_int_equal(store_domain_add(fx->st, "r.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "n.example.com", NULL, T0),
			 1);
	assert_int_equal(store_cert_insert(fx->st, &c, 0, T0 - 1, T0, NULL),
			 0);
}

/* The due rows of add_r_and_n carry r's validity and none for n. */
static void check_r_and_n(struct store_fx *fx)
{
	const unsigned rank[STORE_DOMAIN__MAX] = {0};
	struct store_due due[4];
	size_t n;

	assert_int_equal(store_domain_due(fx->st, T0, rank, due, 4, &n), 0);
	assert_int_equal(n, 2);
	/* same rank: the one with a certificate expires first */
	assert_string_equal(due[0].name, "r.example.com");
	assert_int_equal(due[0].not_before_ms, T0 - 500);
	assert_int_equal(due[0].not_after_ms, T0 + 900);
	assert_string_equal(due[1].name, "n.example.com");
	assert_int_equal(due[1].not_before_ms, STORE_NO_TIME);
	assert_int_equal(due[1].not_after_ms, STORE_NO_TIME);
}

/* A due row carries its current certificate's validity (the scheduler
 * classes renewals by it without loading the certificate). */
static void test_due_carries_validity(void **state)
{
	struct store_fx *fx = *state;

	add_r_and_n(fx);
	check_r_and_n(fx);
}

/* A version-1 database (validity only in certificates) migrates: the
 * domain rows get their current certificate's validity copied. */
static void test_migration_copies_validity(void **state)
{
	struct store_fx *fx = *state;

	add_r_and_n(fx);
	store_close(fx->st);
	fx->st = NULL;
	/* back to the shape of version 1 */
	raw_sql(fx, "DROP INDEX domains_due; DROP INDEX domains_due_rank;"
		    "ALTER TABLE domains DROP COLUMN cert_not_before_ms;"
		    "ALTER TABLE domains DROP COLUMN cert_not_after_ms;"
		    "CREATE INDEX domains_due ON domains(next_attempt_ms)"
		    " WHERE next_attempt_ms IS NOT NULL;"
		    "PRAGMA user_version=1");
	reopen(fx);
	assert_int_equal(raw_int(fx, "PRAGMA user_version"),
			 store_schema_version());
	check_r_and_n(fx);
}

static void test_challenges(void **state)
{
	struct store_fx *fx = *state;
	struct store_challenge c = {"tok_A-1", "tok_A-1.thumb", "a.example.com",
				    T0 + 1000};
	struct store_challenge got;

	assert_int_equal(store_challenge_put(fx->st, &c), -ENOENT);
	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_challenge_put(fx->st, &c), 0);
	strcpy(c.token, "tokB");
	c.expires_ms = T0 + 5000;
	assert_int_equal(store_challenge_put(fx->st, &c), 0);
	assert_int_equal(store_challenge_get(fx->st, "tok_A-1", T0, &got), 0);
	assert_string_equal(got.key_authorization, "tok_A-1.thumb");
	assert_string_equal(got.domain, "a.example.com");
	/* expired counts as absent even before expire() runs */
	assert_int_equal(
	    store_challenge_get(fx->st, "tok_A-1", T0 + 1000, &got), -ENOENT);
	assert_int_equal(store_challenge_expire(fx->st, T0 + 1000), 1);
	assert_int_equal(store_challenge_expire(fx->st, T0 + 1000), 0);
	assert_int_equal(store_challenge_delete(fx->st, "tokB"), 0);
	assert_int_equal(store_challenge_delete(fx->st, "tokB"), -ENOENT);
	assert_int_equal(store_challenge_get(fx->st, "../etc", T0, &got),
			 -EINVAL);
}

static void test_buckets(void **state)
{
	struct store_fx *fx = *state;
	struct store_bucket b = {"orders/acct1", 299.5, T0};
	struct store_bucket got;

	assert_int_equal(store_bucket_load(fx->st, b.key, &got), -ENOENT);
	assert_int_equal(store_bucket_save(fx->st, &b), 0);
	b.tokens = 12.25;
	b.updated_ms = T0 + 7;
	assert_int_equal(store_bucket_save(fx->st, &b), 0);
	reopen(fx);
	assert_int_equal(store_bucket_load(fx->st, b.key, &got), 0);
	assert_string_equal(got.key, b.key);
	assert_true(got.tokens == 12.25);
	assert_int_equal(got.updated_ms, T0 + 7);
}

static void test_event_cap(void **state)
{
	struct store_fx *fx = *state;
	struct store_event ev[STORE_EVENTS_PER_DOMAIN + 10];
	char detail[600], msg[32];
	size_t n;
	int i;

	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(
	    store_event_append(fx->st, "b.example.com", T0, "added", NULL), 0);
	for (i = 0; i < STORE_EVENTS_PER_DOMAIN + 10; i++) {
		snprintf(msg, sizeof(msg), "attempt %d", i);
		assert_int_equal(store_event_append(fx->st, "a.example.com",
						    T0 + i, "failed", msg),
				 0);
	}
	assert_int_equal(store_event_list(fx->st, "a.example.com", ev,
					  STORE_EVENTS_PER_DOMAIN + 10, &n),
			 0);
	assert_int_equal(n, STORE_EVENTS_PER_DOMAIN);
	assert_string_equal(ev[0].detail, "attempt 59");
	assert_int_equal(ev[0].ts_ms, T0 + 59);
	assert_string_equal(ev[n - 1].detail, "attempt 10");
	/* the other domain's history is untouched */
	assert_int_equal(store_event_list(fx->st, "b.example.com", ev, 4, &n),
			 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].kind, "added");
	/* long details are cut, not refused */
	memset(detail, 'x', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = 0;
	assert_int_equal(
	    store_event_append(fx->st, "b.example.com", T0, "note", detail), 0);
	assert_int_equal(store_event_list(fx->st, "b.example.com", ev, 1, &n),
			 0);
	assert_int_equal(strlen(ev[0].detail), sizeof(ev[0].detail) - 1);
	assert_int_equal(
	    store_event_append(fx->st, "zz.example.com", T0, "x", NULL),
	    -ENOENT);
}

/* Rows edited behind the store's back are refused, not trusted. */
static void test_bad_rows(void **state)
{
	struct store_fx *fx = *state;
	struct store_domain d;
	char big[400], sql[600];

	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "c.example.com", NULL, T0),
			 1);
	raw_sql(fx,
		"PRAGMA foreign_keys=OFF;"
		"UPDATE domains SET status = 99 WHERE name = 'a.example.com';"
		"UPDATE domains SET last_error = '{not json'"
		" WHERE name = 'b.example.com'");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	snprintf(sql, sizeof(sql),
		 "UPDATE domains SET challenge = '%s' WHERE name = "
		 "'c.example.com'",
		 big);
	raw_sql(fx, sql);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d),
			 -EBADMSG);
	assert_int_equal(store_domain_get(fx->st, "b.example.com", &d),
			 -EBADMSG);
	assert_int_equal(store_domain_get(fx->st, "c.example.com", &d),
			 -EBADMSG);
}

static void test_bad_input(void **state)
{
	struct store_fx *fx = *state;
	struct store_domain d;
	struct store_domain_filter f = {0};
	struct store_job job = {STORE_DOMAIN__MAX, 0, 0, NULL};
	struct store_challenge c = {"tok", "tok.x", "a.example.com", T0};
	struct store *st2;
	char longname[400], label[80];
	size_t n;
	int64_t id;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	for (size_t i = 50; i < sizeof(longname) - 1; i += 50)
		longname[i] = '.';
	memset(label, 'b', sizeof(label) - 1);
	strcpy(label + 64, ".example.com");

	assert_int_equal(store_open(NULL, &st2, NULL, 0), -EINVAL);
	assert_int_equal(store_open("/tmp", NULL, NULL, 0), -EINVAL);
	assert_int_equal(store_domain_add(NULL, "a.example.com", NULL, T0),
			 -EINVAL);
	assert_int_equal(store_domain_add(fx->st, NULL, NULL, T0), -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "", NULL, T0), -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "A.example.com", NULL, T0),
			 -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "a.example.com.", NULL, T0),
			 -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "a..example.com", NULL, T0),
			 -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "../etc", NULL, T0), -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "a/b.com", NULL, T0),
			 -EINVAL);
	assert_int_equal(store_domain_add(fx->st, longname, NULL, T0), -EINVAL);
	assert_int_equal(store_domain_add(fx->st, label, NULL, T0), -EINVAL);
	assert_int_equal(
	    store_domain_add(fx->st, "a.example.com", "http-02", T0), -EINVAL);
	assert_int_equal(store_domain_add(fx->st, "*.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", NULL),
			 -EINVAL);
	assert_int_equal(store_domain_list(fx->st, &f, &d, 0, &n), -EINVAL);
	f.status_mask = 1u << STORE_DOMAIN__MAX;
	assert_int_equal(store_domain_list(fx->st, &f, &d, 1, &n), -EINVAL);
	f.status_mask = 0;
	f.prefix = longname;
	assert_int_equal(store_domain_list(fx->st, &f, &d, 1, &n), -EINVAL);
	assert_int_equal(
	    store_domain_set_job(fx->st, "*.example.com", &job, T0), -EINVAL);
	assert_int_equal(
	    store_order_begin(fx->st, "*.example.com", "", "K", T0, &id),
	    -EINVAL);
	assert_int_equal(
	    store_order_begin(fx->st, "*.example.com", "u\n", "K", T0, &id),
	    -EINVAL);
	assert_int_equal(
	    store_order_begin(fx->st, "*.example.com", "u", NULL, T0, &id),
	    -EINVAL);
	assert_int_equal(store_order_update(fx->st, 1, STORE_ORDER_DONE, T0),
			 -EINVAL);
	c.token[0] = 0;
	assert_int_equal(store_challenge_put(fx->st, &c), -EINVAL);
	strcpy(c.token, "to/k");
	assert_int_equal(store_challenge_put(fx->st, &c), -EINVAL);
	assert_int_equal(
	    store_event_append(fx->st, "*.example.com", T0, NULL, "x"),
	    -EINVAL);
	assert_int_equal(store_bucket_load(fx->st, "", NULL), -EINVAL);
	store_close(NULL);
	store_cert_clear(NULL);
	store_order_clear(NULL);
	store_account_clear(NULL);
}

static void test_status_names(void **state)
{
	enum store_domain_status s;
	int i;

	(void)state;
	for (i = 0; i < STORE_DOMAIN__MAX; i++) {
		assert_int_equal(
		    store_domain_status_parse(store_domain_status_names[i], &s),
		    0);
		assert_int_equal(s, i);
	}
	assert_int_equal(store_domain_status_parse("bogus", &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f)                                                                   \
	cmocka_unit_test_setup_teardown(f, store_fx_setup, store_fx_teardown)
	    T(test_open_modes_and_version),
	    T(test_reopen_keeps_data),
	    T(test_refuses_newer_schema),
	    T(test_refuses_foreign_db),
	    T(test_domain_add_idempotent),
	    T(test_domain_list_pages_and_filters),
	    T(test_due_order_and_job_state),
	    T(test_order_resume_after_crash),
	    T(test_cert_current_switch),
	    T(test_due_carries_validity),
	    T(test_migration_copies_validity),
	    T(test_challenges),
	    T(test_buckets),
	    T(test_event_cap),
	    T(test_bad_rows),
	    T(test_bad_input),
	    cmocka_unit_test(test_status_names),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
