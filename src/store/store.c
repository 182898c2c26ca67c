/*
 * store — the public entry points. Each one validates its arguments here,
 * once for every backend, then calls the backend through st->ops. Keeping
 * validation out of the backends means a PostgreSQL backend cannot forget
 * a check the SQLite one has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store_internal.h"

const char *const store_domain_status_names[STORE_DOMAIN__MAX] = {
    [STORE_DOMAIN_PENDING] = "pending",
    [STORE_DOMAIN_DNS_PENDING] = "dns-pending",
    [STORE_DOMAIN_ISSUING] = "issuing",
    [STORE_DOMAIN_VALID] = "valid",
    [STORE_DOMAIN_RENEWING] = "renewing",
    [STORE_DOMAIN_FAILED] = "failed",
    [STORE_DOMAIN_REMOVED] = "removed",
};

const char *const store_order_state_names[STORE_ORDER__MAX] = {
    [STORE_ORDER_PENDING] = "pending",	     [STORE_ORDER_READY] = "ready",
    [STORE_ORDER_PROCESSING] = "processing", [STORE_ORDER_VALID] = "valid",
    [STORE_ORDER_INVALID] = "invalid",	     [STORE_ORDER_DONE] = "done",
};

int store_domain_status_parse(const char *s, enum store_domain_status *out)
{
	int i;

	if (!s || !out)
		return -EINVAL;
	for (i = 0; i < STORE_DOMAIN__MAX; i++)
		if (!strcmp(s, store_domain_status_names[i])) {
			*out = (enum store_domain_status)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- helpers shared with backends ------------------------------------ */

int store__str_ok(const char *s, size_t max)
{
	size_t i;

	if (!s || !s[0])
		return -EINVAL;
	for (i = 0; s[i]; i++)
		if (i >= max || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -EINVAL;
	return 0;
}

/*
 * A cheap check that s is what name_normalize produces: [a-z0-9-] labels
 * separated by dots, optionally "*." first. Not a full re-validation (that
 * needs IDNA); its job is to keep "Example.COM" and "example.com." from
 * becoming second rows for one name, and to bound the length.
 */
int store__name_ok(const char *s)
{
	size_t i, label = 0;

	if (!s || !s[0])
		return -EINVAL;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (i >= STORE_NAME_MAX)
			return -EINVAL;
		if (c == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-') ||
		    ++label > 63)
			return -EINVAL;
	}
	return label ? 0 : -EINVAL;
}

void store__free_secret(char *s)
{
	if (!s)
		return;
	/* keys should not linger in freed heap memory */
	explicit_bzero(s, strlen(s));
	free(s);
}

int store__copy(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (!src)
		len = 0;
	if (len >= dstsz || (src && memchr(src, 0, len)))
		return -EBADMSG;
	if (len)
		memcpy(dst, src, len);
	dst[len] = 0;
	return 0;
}

char *store__problem_to_json(const struct store_problem *p)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:i, s:s, s:I}", "type", p->type, "detail",
		      p->detail, "status", p->status, "step", p->step,
		      "retry_after_ms", (json_int_t)p->retry_after_ms);
	char *s = NULL;

	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* The column is ours, but a database can be edited by hand or restored
 * from elsewhere: check every member's type and length. */
int store__problem_from_json(const char *s, size_t len, struct store_problem *p)
{
	json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
	const char *type, *detail, *step;
	json_int_t status, retry;
	int rc = -EBADMSG;

	memset(p, 0, sizeof(*p));
	if (!o || json_unpack(o, "{s:s, s:s, s:I, s:s, s:I}", "type", &type,
			      "detail", &detail, "status", &status, "step",
			      &step, "retry_after_ms", &retry))
		goto out;
	if (status < 0 || status > 999 || retry < STORE_NO_TIME)
		goto out;
	if (store__copy(p->type, sizeof(p->type), type, strlen(type)) ||
	    store__copy(p->detail, sizeof(p->detail), detail, strlen(detail)) ||
	    store__copy(p->step, sizeof(p->step), step, strlen(step)))
		goto out;
	p->status = (int)status;
	p->retry_after_ms = retry;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* ---- open / close ---------------------------------------------------- */

int store_open(const char *state_dir, struct store **out, char *err,
	       size_t errsz)
{
	if (err && errsz)
		err[0] = 0;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (store__str_ok(state_dir, 4096))
		return -EINVAL;
	return store__sqlite_open(state_dir, out, err, errsz);
}

void store_close(struct store *st)
{
	if (st)
		st->ops->close(st);
}

const char *store_errmsg(const struct store *st)
{
	return st ? st->errmsg : "no store";
}

/* ---- bulk writes ------------------------------------------------------ */

int store_bulk_begin(struct store *st)
{
	if (!st)
		return -EINVAL;
	return st->ops->bulk_begin(st);
}

int store_bulk_end(struct store *st, int commit)
{
	if (!st)
		return -EINVAL;
	return st->ops->bulk_end(st, commit);
}

/* ---- account --------------------------------------------------------- */

int store_account_put(struct store *st, const struct store_account *a)
{
	if (!st || !a || store__str_ok(a->directory_url, STORE_URL_MAX) ||
	    (a->account_url && store__str_ok(a->account_url, STORE_URL_MAX)) ||
	    !a->key_pem || !a->key_pem[0] ||
	    strnlen(a->key_pem, STORE_PEM_MAX + 1) > STORE_PEM_MAX)
		return -EINVAL;
	return st->ops->account_put(st, a);
}

int store_account_get(struct store *st, const char *directory_url,
		      struct store_account *out)
{
	if (!st || !out || store__str_ok(directory_url, STORE_URL_MAX))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	return st->ops->account_get(st, directory_url, out);
}

void store_account_clear(struct store_account *a)
{
	if (!a)
		return;
	free(a->directory_url);
	free(a->account_url);
	store__free_secret(a->key_pem);
	memset(a, 0, sizeof(*a));
}

/* ---- domains --------------------------------------------------------- */

static int chall_ok(const char *c)
{
	return !strcmp(c, "http-01") || !strcmp(c, "dns-01") ||
		       !strcmp(c, "tls-alpn-01")
		   ? 0
		   : -EINVAL;
}

int store_domain_add(struct store *st, const char *name, const char *challenge,
		     int64_t now_ms)
{
	if (!challenge)
		challenge = "http-01";
	if (!st || store__name_ok(name) || chall_ok(challenge) || now_ms < 0)
		return -EINVAL;
	return st->ops->domain_add(st, name, challenge, now_ms);
}

int store_domain_remove(struct store *st, const char *name, int64_t now_ms)
{
	if (!st || store__name_ok(name) || now_ms < 0)
		return -EINVAL;
	return st->ops->domain_remove(st, name, now_ms);
}

int store_domain_get(struct store *st, const char *name,
		     struct store_domain *out)
{
	if (!st || !out || store__name_ok(name))
		return -EINVAL;
	return st->ops->domain_get(st, name, out);
}

int store_domain_list(struct store *st, const struct store_domain_filter *f,
		      struct store_domain *out, size_t max, size_t *n)
{
	static const struct store_domain_filter all;

	if (n)
		*n = 0;
	if (!f)
		f = &all;
	if (!st || !out || !n || max == 0 || max > 100000 ||
	    (f->status_mask >> STORE_DOMAIN__MAX) != 0)
		return -EINVAL;
	/* a prefix is any start of a name; the cursor is a whole name */
	if (f->prefix && f->prefix[0] &&
	    store__str_ok(f->prefix, STORE_NAME_MAX))
		return -EINVAL;
	if (f->after && f->after[0] && store__name_ok(f->after))
		return -EINVAL;
	return st->ops->domain_list(st, f, out, max, n);
}

int store_domain_count(struct store *st, uint64_t counts[STORE_DOMAIN__MAX])
{
	if (!st || !counts)
		return -EINVAL;
	memset(counts, 0, sizeof(uint64_t) * STORE_DOMAIN__MAX);
	return st->ops->domain_count(st, counts);
}

int store_domain_due(struct store *st, int64_t now_ms,
		     const unsigned rank[STORE_DOMAIN__MAX],
		     struct store_due *out, size_t max, size_t *n)
{
	if (n)
		*n = 0;
	if (!st || !rank || !out || !n || max == 0 || max > 100000)
		return -EINVAL;
	return st->ops->domain_due(st, now_ms, rank, out, max, n);
}

static int problem_ok(const struct store_problem *p)
{
	/* fixed arrays: require the NUL inside them */
	if (!memchr(p->type, 0, sizeof(p->type)) ||
	    !memchr(p->detail, 0, sizeof(p->detail)) ||
	    !memchr(p->step, 0, sizeof(p->step)) || p->status < 0 ||
	    p->status > 999 || p->retry_after_ms < STORE_NO_TIME)
		return -EINVAL;
	return 0;
}

int store_domain_set_job(struct store *st, const char *name,
			 const struct store_job *job, int64_t now_ms)
{
	if (!st || !job || store__name_ok(name) || now_ms < 0 ||
	    (unsigned)job->status >= STORE_DOMAIN__MAX ||
	    job->next_attempt_ms < STORE_NO_TIME ||
	    (job->error && problem_ok(job->error)))
		return -EINVAL;
	return st->ops->domain_set_job(st, name, job, now_ms);
}

int store_domain_reschedule(struct store *st, const struct store_domain *dom,
			    int64_t next_attempt_ms, int64_t now_ms)
{
	struct store_job job = {
	    .status = dom->status,
	    .next_attempt_ms = next_attempt_ms,
	    .failures = dom->failures,
	    .error = dom->has_error ? &dom->last_error : NULL,
	};

	return store_domain_set_job(st, dom->name, &job, now_ms);
}

/* ---- orders ---------------------------------------------------------- */

static int pem_ok(const char *pem)
{
	return pem && pem[0] && strnlen(pem, STORE_PEM_MAX + 1) <= STORE_PEM_MAX
		   ? 0
		   : -EINVAL;
}

int store_order_begin(struct store *st, const char *domain, const char *url,
		      const char *key_pem, int64_t now_ms, int64_t *id)
{
	if (!st || !id || store__name_ok(domain) ||
	    store__str_ok(url, STORE_URL_MAX) || pem_ok(key_pem) || now_ms < 0)
		return -EINVAL;
	return st->ops->order_begin(st, domain, url, key_pem, now_ms, id);
}

int store_order_update(struct store *st, int64_t id,
		       enum store_order_state state, int64_t now_ms)
{
	if (!st || id <= 0 || now_ms < 0 ||
	    (unsigned)state >= STORE_ORDER_INVALID)
		return -EINVAL;
	return st->ops->order_update(st, id, state, now_ms, 0);
}

int store_order_finish(struct store *st, int64_t id,
		       enum store_order_state state, int64_t now_ms)
{
	if (!st || id <= 0 || now_ms < 0 ||
	    (state != STORE_ORDER_DONE && state != STORE_ORDER_INVALID))
		return -EINVAL;
	return st->ops->order_update(st, id, state, now_ms, 1);
}

int store_order_list_pending(struct store *st, int64_t after_id,
			     struct store_order *out, size_t max, size_t *n)
{
	if (n)
		*n = 0;
	if (!st || !out || !n || max == 0 || max > 100000 || after_id < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out) * max);
	return st->ops->order_list_pending(st, after_id, out, max, n);
}

void store_order_clear(struct store_order *o)
{
	if (!o)
		return;
	free(o->url);
	store__free_secret(o->key_pem);
	memset(o, 0, sizeof(*o));
}

/* ---- certificates ---------------------------------------------------- */

static int cert_info_ok(const struct store_cert_info *i)
{
	if (store__name_ok(i->domain) ||
	    store__str_ok(i->serial, sizeof(i->serial) - 1) ||
	    !memchr(i->issuer, 0, sizeof(i->issuer)) ||
	    !memchr(i->profile, 0, sizeof(i->profile)) ||
	    i->not_before_ms < 0 || i->not_after_ms < i->not_before_ms ||
	    i->ari_start_ms < STORE_NO_TIME || i->ari_end_ms < STORE_NO_TIME)
		return -EINVAL;
	return 0;
}

int store_cert_insert(struct store *st, const struct store_cert *c,
		      int64_t order_id, int64_t renew_at_ms, int64_t now_ms,
		      int64_t *id)
{
	if (!st || !c || cert_info_ok(&c->info) || pem_ok(c->chain_pem) ||
	    pem_ok(c->key_pem) || order_id < 0 || renew_at_ms < STORE_NO_TIME ||
	    now_ms < 0)
		return -EINVAL;
	return st->ops->cert_insert(st, c, order_id, renew_at_ms, now_ms, id);
}

int store_cert_current(struct store *st, const char *domain,
		       struct store_cert *out)
{
	if (!st || !out || store__name_ok(domain))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	return st->ops->cert_current(st, domain, out);
}

int store_cert_expiring(struct store *st, int64_t before_ms,
			struct store_cert_info *out, size_t max, size_t *n)
{
	if (n)
		*n = 0;
	if (!st || !out || !n || max == 0 || max > 100000)
		return -EINVAL;
	return st->ops->cert_expiring(st, before_ms, out, max, n);
}

int store_cert_set_ari(struct store *st, int64_t id, int64_t start_ms,
		       int64_t end_ms)
{
	int clear = start_ms == STORE_NO_TIME && end_ms == STORE_NO_TIME;

	if (!st || id <= 0 || (!clear && (start_ms < 0 || end_ms < start_ms)))
		return -EINVAL;
	return st->ops->cert_set_ari(st, id, start_ms, end_ms);
}

void store_cert_clear(struct store_cert *c)
{
	if (!c)
		return;
	free(c->chain_pem);
	store__free_secret(c->key_pem);
	c->chain_pem = NULL;
	c->key_pem = NULL;
}

/* ---- challenges ------------------------------------------------------ */

/* Tokens are base64url (RFC 8555 8.1); anything else is not ours. */
static int token_ok(const char *t)
{
	size_t i;

	if (!t || !t[0])
		return -EINVAL;
	for (i = 0; t[i]; i++)
		if (i >= STORE_TOKEN_MAX || !((t[i] >= 'a' && t[i] <= 'z') ||
					      (t[i] >= 'A' && t[i] <= 'Z') ||
					      (t[i] >= '0' && t[i] <= '9') ||
					      t[i] == '-' || t[i] == '_'))
			return -EINVAL;
	return 0;
}

int store_challenge_put(struct store *st, const struct store_challenge *c)
{
	if (!st || !c || token_ok(c->token) || store__name_ok(c->domain) ||
	    store__str_ok(c->key_authorization, STORE_KEYAUTH_MAX) ||
	    c->expires_ms < 0)
		return -EINVAL;
	return st->ops->challenge_put(st, c);
}

int store_challenge_get(struct store *st, const char *token, int64_t now_ms,
			struct store_challenge *out)
{
	if (!st || !out || token_ok(token))
		return -EINVAL;
	return st->ops->challenge_get(st, token, now_ms, out);
}

int store_challenge_delete(struct store *st, const char *token)
{
	if (!st || token_ok(token))
		return -EINVAL;
	return st->ops->challenge_delete(st, token);
}

int store_challenge_expire(struct store *st, int64_t now_ms)
{
	if (!st)
		return -EINVAL;
	return st->ops->challenge_expire(st, now_ms);
}

/* ---- buckets --------------------------------------------------------- */

int store_bucket_save(struct store *st, const struct store_bucket *b)
{
	if (!st || !b || store__str_ok(b->key, STORE_BUCKET_KEY_MAX) ||
	    !(b->tokens >= -1e12 && b->tokens <= 1e12) || b->updated_ms < 0)
		return -EINVAL;
	return st->ops->bucket_save(st, b);
}

int store_bucket_load(struct store *st, const char *key,
		      struct store_bucket *out)
{
	if (!st || !out || store__str_ok(key, STORE_BUCKET_KEY_MAX))
		return -EINVAL;
	return st->ops->bucket_load(st, key, out);
}

/* ---- events ---------------------------------------------------------- */

int store_event_append(struct store *st, const char *domain, int64_t ts_ms,
		       const char *kind, const char *detail)
{
	struct store_event e;

	if (!detail)
		detail = "";
	/* kind is a short word chosen by code; detail is free text we cut
	 * to size rather than refuse, since it often quotes a CA */
	if (!st || store__name_ok(domain) ||
	    store__str_ok(kind, sizeof(e.kind) - 1) || ts_ms < 0)
		return -EINVAL;
	snprintf(e.detail, sizeof(e.detail), "%s", detail);
	return st->ops->event_append(st, domain, ts_ms, kind, e.detail);
}

int store_event_list(struct store *st, const char *domain,
		     struct store_event *out, size_t max, size_t *n)
{
	if (n)
		*n = 0;
	if (!st || !out || !n || max == 0 || max > 100000 ||
	    store__name_ok(domain))
		return -EINVAL;
	return st->ops->event_list(st, domain, out, max, n);
}
