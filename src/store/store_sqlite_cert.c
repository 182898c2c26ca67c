/*
 * store_sqlite_cert — in-flight orders and certificates in SQLite.
 *
 * Order life: begin (PENDING, URL + CSR key, durable) -> update through
 * READY / PROCESSING / VALID -> finish as DONE (by store_cert_insert, in
 * the certificate's transaction) or INVALID. Terminal orders drop their
 * key. Invariants kept by SQLite itself: at most one non-terminal order
 * per domain (orders_inflight) and at most one current certificate per
 * domain (certificates_current).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite.h"

/* ---- orders ---------------------------------------------------------- */

int store__sq_order_begin(struct store *st, const char *domain, const char *url,
			  const char *key_pem, int64_t now_ms, int64_t *id)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_ORDER_BEGIN,
	    "INSERT INTO orders (domain, url, state, key_pem, created_ms,"
	    " updated_ms) VALUES (?1, ?2, 0, ?3, ?4, ?4)");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, key_pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now_ms);
	rc = store__sq_write(sq, s, 1, 0, NULL);
	/* the connection's last insert: COMMIT or RELEASE insert nothing */
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(sq->db);
	return rc;
}

int store__sq_order_update(struct store *st, int64_t id,
			   enum store_order_state state, int64_t now_ms,
			   int terminal)
{
	struct sq *sq = sq_of(st);
	/* key_pem = CASE ...: a terminal order forgets its CSR key */
	sqlite3_stmt *s =
	    store__sq_prep(sq, SQ_ORDER_UPDATE,
			   "UPDATE orders SET state = ?2, updated_ms = ?3,"
			   " key_pem = CASE WHEN ?4 THEN NULL ELSE key_pem END"
			   " WHERE id = ?1 AND state NOT IN (4,5)");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, (int)state);
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_int(s, 4, terminal);
	return store__sq_write(sq, s, 0, 1, NULL);
}

/* Read a pending order's row into the struct store_order at row; on
 * error what it allocated is freed. */
static int order_row(sqlite3_stmt *s, void *row)
{
	struct store_order *o = row;
	int64_t state = sqlite3_column_int64(s, 2);
	int rc;

	o->id = sqlite3_column_int64(s, 0);
	o->created_ms = sqlite3_column_int64(s, 5);
	o->updated_ms = sqlite3_column_int64(s, 6);
	rc = store__sq_text(s, 1, o->domain, sizeof(o->domain));
	if (!rc && (state < 0 || state >= STORE_ORDER_INVALID))
		rc = -EBADMSG;
	if (!rc)
		rc = store__sq_dup(s, 3, STORE_URL_MAX, &o->url);
	if (!rc)
		rc = store__sq_dup(s, 4, STORE_PEM_MAX, &o->key_pem);
	/* a pending order without URL or key cannot be resumed */
	if (!rc && (!o->url || !o->key_pem))
		rc = -EBADMSG;
	if (rc) {
		store_order_clear(o);
		return rc;
	}
	o->state = (enum store_order_state)state;
	return 0;
}

int store__sq_order_list_pending(struct store *st, int64_t after_id,
				 struct store_order *out, size_t max, size_t *n)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_ORDER_PENDING,
	    "SELECT id, domain, state, url, key_pem, created_ms, updated_ms"
	    " FROM orders WHERE state NOT IN (4,5) AND id > ?1"
	    " ORDER BY id LIMIT ?2");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	rc = store__sq_rows(sq, s, order_row, out, sizeof(*out), max, n);
	if (rc < 0) {
		while (*n > 0)
			store_order_clear(&out[--*n]);
	}
	return rc;
}

/* ---- certificates ---------------------------------------------------- */

#define CERT_COLS                                                              \
	"id, domain, serial, issuer, profile, not_before_ms, not_after_ms,"    \
	" ari_start_ms, ari_end_ms, created_ms, current"

/* Read a row selected with CERT_COLS into the struct store_cert_info at
 * row. */
static int cert_row(sqlite3_stmt *s, void *row)
{
	struct store_cert_info *i = row;
	int rc;

	memset(i, 0, sizeof(*i));
	i->id = sqlite3_column_int64(s, 0);
	rc = store__sq_text(s, 1, i->domain, sizeof(i->domain));
	if (!rc)
		rc = store__sq_text(s, 2, i->serial, sizeof(i->serial));
	if (!rc)
		rc = store__sq_text(s, 3, i->issuer, sizeof(i->issuer));
	if (!rc)
		rc = store__sq_text(s, 4, i->profile, sizeof(i->profile));
	i->not_before_ms = sqlite3_column_int64(s, 5);
	i->not_after_ms = sqlite3_column_int64(s, 6);
	i->ari_start_ms = store__sq_time(s, 7);
	i->ari_end_ms = store__sq_time(s, 8);
	i->created_ms = sqlite3_column_int64(s, 9);
	i->current = sqlite3_column_int(s, 10);
	return rc;
}

/* The steps of store_cert_insert, inside its transaction. */
static int cert_insert_tx(struct sq *sq, const struct store_cert *c,
			  int64_t order_id, int64_t renew_at_ms, int64_t now_ms,
			  int64_t *id)
{
	const struct store_cert_info *i = &c->info;
	sqlite3_stmt *un = store__sq_prep(sq, SQ_CERT_UNCURRENT,
					  "UPDATE certificates SET current = 0"
					  " WHERE domain = ?1 AND current = 1");
	sqlite3_stmt *ins = store__sq_prep(
	    sq, SQ_CERT_INSERT,
	    "INSERT INTO certificates (domain, chain_pem, key_pem, serial,"
	    " issuer, profile, not_before_ms, not_after_ms, ari_start_ms,"
	    " ari_end_ms, created_ms, current)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)");
	sqlite3_stmt *dom = store__sq_prep(
	    sq, SQ_CERT_DOMAIN_VALID,
	    "UPDATE domains SET status = 3, failures = 0, last_error = NULL,"
	    " next_attempt_ms = ?2, updated_ms = ?3"
	    " WHERE name = ?1 AND status <> 6");
	int rc;

	if (!un || !ins || !dom)
		return -EIO;
	sqlite3_bind_text(un, 1, i->domain, -1, SQLITE_STATIC);
	rc = store__sq_exec(sq, un);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(ins, 1, i->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, c->chain_pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, c->key_pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, i->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, i->issuer, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 6, i->profile, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 7, i->not_before_ms);
	sqlite3_bind_int64(ins, 8, i->not_after_ms);
	store__sq_bind_time(ins, 9, i->ari_start_ms);
	store__sq_bind_time(ins, 10, i->ari_end_ms);
	sqlite3_bind_int64(ins, 11, now_ms);
	rc = store__sq_exec(sq, ins);
	if (rc < 0)
		return rc;
	if (id)
		*id = sqlite3_last_insert_rowid(sq->db);
	/* a domain removed while its order ran keeps REMOVED */
	sqlite3_bind_text(dom, 1, i->domain, -1, SQLITE_STATIC);
	store__sq_bind_time(dom, 2, renew_at_ms);
	sqlite3_bind_int64(dom, 3, now_ms);
	rc = store__sq_exec(sq, dom);
	if (rc < 0)
		return rc;
	/* the domain row's copy of the current validity (the due query's
	 * index), whatever the domain's status: a removed name that comes
	 * back is ranked by its newest certificate */
	{
		sqlite3_stmt *v = store__sq_prep(
		    sq, SQ_CERT_DOMAIN_VALIDITY,
		    "UPDATE domains SET cert_not_before_ms = ?2,"
		    " cert_not_after_ms = ?3 WHERE name = ?1");

		if (!v)
			return -EIO;
		sqlite3_bind_text(v, 1, i->domain, -1, SQLITE_STATIC);
		sqlite3_bind_int64(v, 2, i->not_before_ms);
		sqlite3_bind_int64(v, 3, i->not_after_ms);
		rc = store__sq_exec(sq, v);
	}
	if (rc < 0 || order_id == 0)
		return rc;
	/* the order ends in the certificate's transaction: a crash never
	 * leaves a stored certificate with its order still pending */
	{
		sqlite3_stmt *o = store__sq_prep(
		    sq, SQ_ORDER_FINISH,
		    "UPDATE orders SET state = 5, key_pem = NULL,"
		    " updated_ms = ?2 WHERE id = ?1 AND domain = ?3"
		    " AND state NOT IN (4,5)");

		if (!o)
			return -EIO;
		sqlite3_bind_int64(o, 1, order_id);
		sqlite3_bind_int64(o, 2, now_ms);
		sqlite3_bind_text(o, 3, i->domain, -1, SQLITE_STATIC);
		rc = store__sq_exec(sq, o);
		/* the caller named an order that is not this domain's open
		 * one: refuse the whole certificate rather than guess */
		if (rc == 0 && sqlite3_changes(sq->db) == 0)
			rc = -ENOENT;
	}
	return rc;
}

int store__sq_cert_insert(struct store *st, const struct store_cert *c,
			  int64_t order_id, int64_t renew_at_ms, int64_t now_ms,
			  int64_t *id)
{
	struct sq *sq = sq_of(st);
	int rc = store__sq_begin(sq, 1);

	if (rc < 0)
		return rc;
	rc = cert_insert_tx(sq, c, order_id, renew_at_ms, now_ms, id);
	return store__sq_end(sq, rc, 1);
}

int store__sq_cert_current(struct store *st, const char *domain,
			   struct store_cert *out)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_CERT_CURRENT,
	    "SELECT " CERT_COLS ", chain_pem, key_pem FROM certificates"
	    " WHERE domain = ?1 AND current = 1");
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, domain, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		rc = -ENOENT;
	else if (rc != SQLITE_ROW)
		rc = store__sq_err(sq, rc);
	else if (!(rc = cert_row(s, &out->info)) &&
		 !(rc = store__sq_dup(s, 11, STORE_PEM_MAX, &out->chain_pem)) &&
		 !(rc = store__sq_dup(s, 12, STORE_PEM_MAX, &out->key_pem)) &&
		 (!out->chain_pem || !out->key_pem))
		rc = -EBADMSG;
	store__sq_reset(s);
	if (rc < 0)
		store_cert_clear(out);
	return rc;
}

int store__sq_cert_expiring(struct store *st, int64_t before_ms,
			    struct store_cert_info *out, size_t max, size_t *n)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s =
	    store__sq_prep(sq, SQ_CERT_EXPIRING,
			   "SELECT " CERT_COLS " FROM certificates"
			   " WHERE current = 1 AND not_after_ms < ?1"
			   " ORDER BY not_after_ms, domain LIMIT ?2");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, before_ms);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	return store__sq_rows(sq, s, cert_row, out, sizeof(*out), max, n);
}

int store__sq_cert_set_ari(struct store *st, int64_t id, int64_t start_ms,
			   int64_t end_ms)
{
	struct sq *sq = sq_of(st);
	sqlite3_stmt *s = store__sq_prep(
	    sq, SQ_CERT_SET_ARI,
	    "UPDATE certificates SET ari_start_ms = ?2, ari_end_ms = ?3"
	    " WHERE id = ?1");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	store__sq_bind_time(s, 2, start_ms);
	store__sq_bind_time(s, 3, end_ms);
	return store__sq_write(sq, s, 0, 1, NULL);
}
