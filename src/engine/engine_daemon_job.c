/*
 * engine_daemon_job.c — one domain's job in the daemon, from the DNS
 * pre-flight through key generation (thread pool), the order (with its
 * HTTP-01, DNS-01 or TLS-ALPN-01 challenges), the live/ write (thread
 * pool) and the store, to its end: success, failure with backoff, or a
 * local failure that gives the ledger's tokens back. See engine_daemon.c
 * for the whole picture and the invariants.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/engine_daemon_internal.h"

/* Give back what engine_queue_next reserved for j (no order was made). */
void engine__job_refund(struct job *j)
{
	struct engine_daemon *d = j->d;
	int64_t now = clock_wall_ms();

	if (!j->charged)
		return;
	j->charged = 0;
	engine_limits_give(d->lim, ENGINE_LIMIT_ORDERS, "", 1, now);
	engine__bucket_save(d, ENGINE_LIMIT_ORDERS, "", now);
	if (engine__charged_for(d, ENGINE_LIMIT_REGDOMAIN, j->cls)) {
		engine_limits_give(d->lim, ENGINE_LIMIT_REGDOMAIN, j->regdomain,
				   1, now);
		engine__bucket_save(d, ENGINE_LIMIT_REGDOMAIN, j->regdomain,
				    now);
	}
	if (engine__charged_for(d, ENGINE_LIMIT_IDENTICAL, j->cls)) {
		engine_limits_give(d->lim, ENGINE_LIMIT_IDENTICAL, j->name, 1,
				   now);
		engine__bucket_save(d, ENGINE_LIMIT_IDENTICAL, j->name, now);
	}
}

/* ---- job lifetime -------------------------------------------------------- */

void engine__job_free(struct job *j)
{
	struct engine_daemon *d = j->d;

	if (j->prev)
		j->prev->next = j->next;
	else if (d->jobs == j)
		d->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	acme_order_free(j->order);
	EVP_PKEY_free(j->key);
	if (j->key_pem)
		OPENSSL_cleanse(j->key_pem, strlen(j->key_pem));
	free(j->key_pem);
	free(j->csr);
	free(j->order_url);
	free(j);
	d->in_flight--;
}

static void job_closed(struct engine_task *t)
{
	struct job *j = t->ctx;
	struct engine_daemon *d = j->d;

	engine__job_free(j);
	if (d->draining && !d->stopping && d->in_flight == d->n_preflight) {
		log_info("daemon", NULL,
			 "drained: every order in flight has finished");
		engine__stop_now(d, 0);
	}
	if (!d->stopping)
		engine__schedule(d);
}

static void job_end(struct job *j)
{
	engine_task_close(&j->task, job_closed);
}

/*
 * Did the CA refuse this renewal's newOrder because of "replaces"? Yes
 * for alreadyReplaced (another order replaced the certificate, RFC 9773
 * §5); and, since a CA that cannot match the identifier to one of its
 * orders answers with whatever it has (pebble 2.10: a 500 for some
 * serials), for any problem at newOrder but a rate limit: one more
 * attempt without "replaces" costs one order at most.
 */
static int replaces_refused(const struct job *j, const struct acme_error *e)
{
	if (!j->replaces[0])
		return 0;
	if (e->type && strcmp(e->type, "alreadyReplaced") == 0)
		return 1;
	return e->step && strcmp(e->step, "newOrder") == 0 &&
	       e->code != ACME_E_TRANSPORT &&
	       !(e->type && strcmp(e->type, "rateLimited") == 0);
}

static void job_failed(struct job *j, const struct acme_error *e)
{
	struct engine_daemon *d = j->d;
	int64_t now = clock_wall_ms();
	struct store_problem p;
	struct store_job sj = {0};
	const char *why = "";
	char buf[1024];

	engine__problem_from(&p, e, now);
	engine__count_failure(d, e);
	/* The CA counts failed authorizations per identifier; so do we. */
	if (e->step && strcmp(e->step, "validation") == 0 &&
	    engine__limit_on(d, ENGINE_LIMIT_FAILED_AUTHZ)) {
		if (engine_limits_take(d->lim, ENGINE_LIMIT_FAILED_AUTHZ,
				       j->name, 1, now) == 0)
			engine__bucket_save(d, ENGINE_LIMIT_FAILED_AUTHZ,
					    j->name, now);
	}
	if (j->order_id)
		store_order_finish(d->st, j->order_id, STORE_ORDER_INVALID,
				   now);
	sj.failures = j->failures + 1;
	sj.next_attempt_ms =
	    engine_renew_backoff(sj.failures, e, now, engine__rnd64(), &why);
	/* renew.backoff_max caps our own backoff, never a wait the CA
	 * asked for (Retry-After, rateLimited). */
	if (d->o.backoff_max_ms > 0 && strcmp(why, "backoff") == 0 &&
	    sj.next_attempt_ms > now + d->o.backoff_max_ms)
		sj.next_attempt_ms = now + d->o.backoff_max_ms;
	if (replaces_refused(j, e)) {
		/* Not final for us: the stored step (REPLACES_REFUSED) makes
		 * the next attempt, at once, go without "replaces". */
		snprintf(p.step, sizeof(p.step), "%s", REPLACES_REFUSED);
		sj.failures = j->failures;
		sj.next_attempt_ms = now;
		why = "retrying without replaces";
	}
	if (sj.next_attempt_ms == ENGINE_NEVER)
		sj.next_attempt_ms = STORE_NO_TIME;
	sj.status = sj.next_attempt_ms == STORE_NO_TIME ? STORE_DOMAIN_FAILED
		    : j->renewing			? STORE_DOMAIN_VALID
							: STORE_DOMAIN_PENDING;
	sj.error = &p;
	store_domain_set_job(d->st, j->name, &sj, now);
	acme_error_str(e, buf, sizeof(buf));
	store_event_append(d->st, j->name, now, "failed", buf);
	log_warn("daemon", j->name, "%s; %s (%s)", buf,
		 sj.next_attempt_ms == STORE_NO_TIME
		     ? "not retrying: the CA's answer is final"
		     : "will retry later",
		 why);
	if (d->o.order_failed && !replaces_refused(j, e))
		d->o.order_failed(d->o.order_failed_ctx, j->name);
	job_end(j);
}

void engine__job_local_failure(struct job *j, const char *why)
{
	struct acme_error e = {.code = ACME_E_INTERNAL, .retry_after_ms = -1};

	e.detail = (char *)why;
	e.step = "local";
	/* No order at the CA yet: what was reserved for it goes back. */
	if (!j->order_id && !(j->order && acme_order_url(j->order)))
		engine__job_refund(j);
	job_failed(j, &e);
}

/* ---- ORDER --------------------------------------------------------------- */

/* After each response: persist the order the moment its URL is known. */
static void order_fed(struct engine_task *t)
{
	struct job *j = t->ctx;
	const char *url = acme_order_url(j->order);
	int rc;

	if (j->order_id || !url)
		return;
	rc = store_order_begin(j->d->st, j->name, url, j->key_pem,
			       clock_wall_ms(), &j->order_id);
	if (rc < 0)
		log_error("daemon", j->name,
			  "cannot persist order %s: %s (a restart will not "
			  "resume it)",
			  url, store_errmsg(j->d->st));
}

/* The certificate is in live/ (or there is no live/): record it, then
 * tell whoever waits for changed certificates. */
static void order_stored(struct job *j)
{
	struct engine_daemon *d = j->d;
	struct store_cert *c = &j->cert;
	int64_t now = clock_wall_ms();
	char detail[sizeof(j->replaces) + 64];

	if (store_cert_insert(
		d->st, c, j->order_id,
		engine_renew_first(c->info.not_before_ms, c->info.not_after_ms,
				   engine__ari_usable(d), now,
				   engine_renew_seed(c->info.serial)),
		now, NULL) < 0) {
		engine__job_local_failure(j, "cannot store the certificate");
		return;
	}
	snprintf(detail, sizeof(detail), "certificate stored%s%s%s",
		 j->replaces[0] ? " (replaces " : "", j->replaces,
		 j->replaces[0] ? ")" : "");
	store_event_append(d->st, j->name, now,
			   j->renewing ? "renewed" : "issued", detail);
	log_info("daemon", j->name, "certificate %s",
		 j->renewing ? "renewed" : "issued");
	uv_mutex_lock(&d->stats_mu);
	d->stats.orders_valid++;
	uv_mutex_unlock(&d->stats_mu);
	engine_deploy_changed(d->deploy, j->name);
	engine_nginx_changed(d->nginx, j->name);
	if (d->o.cert_changed)
		d->o.cert_changed(d->o.cert_changed_ctx, j->name);
	job_end(j);
}

/* On the thread pool: staging, fsyncs and renames of four files cost
 * more than the rest of an order's local work put together, and would
 * hold every other order on the loop meanwhile. */
static void live_work(uv_work_t *w)
{
	struct job *j = w->data;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	/* nginx.key_owner: the key has its owner before it is in place */
	engine_nginx_key_owner(j->d->nginx, &uid, &gid);
	j->rc = store_live_write_as(j->d->o.live_dir, j->name,
				    j->cert.chain_pem, j->key_pem, uid, gid);
}

static void live_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	char why[512];

	if (j->d->stopping)
		return; /* closing: the order stays pending and resumes */
	if (status < 0 || j->rc < 0) {
		snprintf(why, sizeof(why), "cannot write %s/%s: %s",
			 j->d->o.live_dir, j->name,
			 strerror(status < 0 ? EIO : -j->rc));
		engine__job_local_failure(j, why);
		return;
	}
	order_stored(j);
}

static void order_done(struct engine_task *t, enum acme_step s)
{
	struct job *j = t->ctx;
	struct engine_daemon *d = j->d;
	struct store_cert *c = &j->cert;
	struct x509_info info = {0};
	struct store_domain dom;
	X509 *leaf = NULL;
	const char *pem;
	size_t len;

	if (s != ACME_STEP_DONE) {
		job_failed(j, acme_order_error(j->order));
		return;
	}
	pem = acme_order_cert(j->order, &len);
	leaf = x509_from_pem(pem, len);
	if (!leaf || x509_inspect(leaf, &info) < 0 ||
	    x509_key_matches(leaf, j->key) != 1) {
		X509_free(leaf);
		x509_info_free(&info);
		engine__job_local_failure(
		    j, "the CA's certificate does not match its key");
		return;
	}
	X509_free(leaf);
	if (store_domain_get(d->st, j->name, &dom) == 0 &&
	    dom.status == STORE_DOMAIN_REMOVED) {
		/* Removed while we worked: keep the history, not the job. */
		if (j->order_id)
			store_order_finish(d->st, j->order_id, STORE_ORDER_DONE,
					   clock_wall_ms());
		x509_info_free(&info);
		job_end(j);
		return;
	}
	snprintf(c->info.domain, sizeof(c->info.domain), "%s", j->name);
	snprintf(c->info.serial, sizeof(c->info.serial), "%s", info.serial);
	snprintf(c->info.issuer, sizeof(c->info.issuer), "%s", info.issuer_cn);
	snprintf(c->info.profile, sizeof(c->info.profile), "%s",
		 d->o.profile ? d->o.profile : "");
	c->info.not_before_ms = info.not_before * 1000;
	c->info.not_after_ms = info.not_after * 1000;
	c->info.ari_start_ms = c->info.ari_end_ms = STORE_NO_TIME;
	c->chain_pem = (char *)pem;
	c->key_pem = j->key_pem;
	x509_info_free(&info);
	/* live/ first, the store second: a crash in between leaves the
	 * order pending, the restart downloads the same certificate again
	 * and writes the same files, so live/ is never behind the store. */
	if (!d->o.live_dir) {
		order_stored(j);
		return;
	}
	j->work.data = j;
	if (uv_queue_work(&d->s.loop, &j->work, live_work, live_done) < 0)
		engine__job_local_failure(j, "cannot queue the live/ write");
}

/* ---- HTTP-01: served here from memory, shared through the store ---------- */

/* How long a published challenge stays in the store if nobody withdraws
 * it (a crash): longer than any validation. */
#define CHALL_TTL_MS ENGINE_HOUR_MS

/* Publish in this process's responder and in the store, where the
 * responders of other nodes sharing it find it. The responder is what
 * matters for us: a store failure is logged, not fatal. */
static int chall_publish(void *ctx, enum acme_chall_type type,
			 const char *domain, const char *token,
			 const char *key_auth)
{
	struct engine_daemon *d = ctx;
	struct store_challenge c = {0};
	unsigned char digest[32];
	int rc;

	if (type == ACME_CHALL_TLSALPN01) /* front mode's listener */
		return d->o.tlsalpn_publish &&
			       acme_tlsalpn01_digest(key_auth, digest) == 0
			   ? d->o.tlsalpn_publish(d->o.tlsalpn_ctx, domain,
						  digest)
			   : -ENOTSUP;
	if (!d->chall_hooks.publish)
		return -ENOTSUP; /* no HTTP-01 listener (http.listen empty) */
	rc = d->chall_hooks.publish(d->chall_hooks.ctx, type, domain, token,
				    key_auth);
	if (rc < 0)
		return rc;
	snprintf(c.token, sizeof(c.token), "%s", token);
	snprintf(c.key_authorization, sizeof(c.key_authorization), "%s",
		 key_auth);
	snprintf(c.domain, sizeof(c.domain), "%s", domain);
	c.expires_ms = clock_wall_ms() + CHALL_TTL_MS;
	if (store_challenge_put(d->st, &c) < 0)
		log_warn("http01", domain,
			 "cannot share the challenge through the store: %s",
			 store_errmsg(d->st));
	return 0;
}

static void chall_unpublish(void *ctx, enum acme_chall_type type,
			    const char *domain, const char *token)
{
	struct engine_daemon *d = ctx;

	if (type == ACME_CHALL_TLSALPN01) {
		if (d->o.tlsalpn_unpublish)
			d->o.tlsalpn_unpublish(d->o.tlsalpn_ctx, domain);
		return;
	}
	if (!d->chall_hooks.unpublish)
		return;
	d->chall_hooks.unpublish(d->chall_hooks.ctx, type, domain, token);
	store_challenge_delete(d->st, token);
}

/* On the responder's thread, for a token this process does not serve. */
int engine__chall_lookup(void *ctx, const char *token, char *out, size_t sz)
{
	struct engine_daemon *d = ctx;
	struct store_challenge c;

	if (!d->chall_st ||
	    store_challenge_get(d->chall_st, token, clock_wall_ms(), &c) < 0)
		return -ENOENT;
	snprintf(out, sz, "%s", c.key_authorization);
	return 0;
}

/* ---- DNS-01: published through engine_dns01, answered later ------------ */

static void job_dns01_ready(void *ctx, const char *token, int rc,
			    const char *why)
{
	struct job *j = ctx;

	acme_order_chall_ready(j->order, token, rc, why, clock_wall_ms());
	engine_task_kick(&j->task);
}

/* The order's hooks, per job: DNS-01 needs to find its job again. */
static int job_publish(void *ctx, enum acme_chall_type type, const char *domain,
		       const char *token, const char *key_auth)
{
	struct job *j = ctx;

	if (type != ACME_CHALL_DNS01)
		return chall_publish(j->d, type, domain, token, key_auth);
	return engine_dns01_publish(j->d->dns01, domain, token, key_auth,
				    job_dns01_ready, j);
}

static void job_unpublish(void *ctx, enum acme_chall_type type,
			  const char *domain, const char *token)
{
	struct job *j = ctx;

	if (type != ACME_CHALL_DNS01)
		chall_unpublish(j->d, type, domain, token);
	else
		engine_dns01_unpublish(j->d->dns01, domain, token);
}

/* DNS-01 for a wildcard (nothing else can prove one) and for a domain
 * registered with challenge dns-01; also for a name in a configured zone
 * when there is no HTTP-01 listener (http.listen empty) and HTTP-01 is
 * what acme.challenge asks for; acme.challenge otherwise. */
enum acme_chall_type engine__chall_for(const struct engine_daemon *d,
				       const struct store_domain *dom)
{
	if (dom->name[0] == '*' || strcmp(dom->challenge, "dns-01") == 0)
		return ACME_CHALL_DNS01;
	if (!d->chall && d->o.chall == ACME_CHALL_HTTP01 && d->dns01 &&
	    engine_dns01_covers(d->dns01, dom->name))
		return ACME_CHALL_DNS01;
	return d->o.chall;
}

static void start_order(struct job *j)
{
	struct engine_daemon *d = j->d;
	struct acme_challenge_hooks hooks = {job_publish, job_unpublish, j};
	const char *name = j->name;
	struct acme_order_opts oo = {
	    .names = &name,
	    .n_names = 1,
	    .csr_der = j->csr,
	    .csr_len = j->csr_len,
	    .chall = j->chall,
	    .profile = d->o.profile,
	    .replaces = j->replaces[0] ? j->replaces : NULL,
	    .order_url = j->order_url,
	};

	j->order = acme_order_new(d->s.client, &oo, &hooks);
	if (!j->order) {
		engine__job_local_failure(j, "cannot create the order");
		return;
	}
	engine_task_order(&j->task, j->order);
	j->task.done = order_done;
	j->task.fed = order_fed;
	if (engine_task_start(&j->task, &d->s.loop, d->s.http) < 0)
		engine__job_local_failure(j, "cannot start the order");
}

/* ---- KEYGEN (thread pool) ------------------------------------------------ */

static void keygen_work(uv_work_t *w)
{
	struct job *j = w->data;
	const char *name = j->name;
	size_t len;

	if (!j->key)
		j->key = key_generate(j->d->o.key_type);
	if (j->key && !j->key_pem)
		j->key_pem = key_to_pem(j->key, &len);
	j->rc = j->key && j->key_pem
		    ? csr_create(j->key, &name, 1, &j->csr, &j->csr_len)
		    : -EIO;
}

static void keygen_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	if (j->d->stopping)
		return; /* closing: the job is freed with the daemon */
	if (status < 0 || j->rc < 0) {
		engine__job_local_failure(j, "cannot make the key or CSR");
		return;
	}
	start_order(j);
}

struct job *engine__job_new(struct engine_daemon *d, const char *name)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->d = d;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->task.ctx = j;
	j->work.data = j;
	j->next = d->jobs;
	if (d->jobs)
		d->jobs->prev = j;
	d->jobs = j;
	d->in_flight++;
	return j;
}

void engine__job_queue_keygen(struct job *j)
{
	if (uv_queue_work(&j->d->s.loop, &j->work, keygen_work, keygen_done) <
	    0)
		engine__job_local_failure(j, "cannot queue key generation");
}

/* ---- PREFLIGHT (DNS on the loop) ----------------------------------------- */

/*
 * The name does not point at us (or DNS cannot tell): no order. The
 * tokens reserved go back, the domain waits DNS_PENDING with what was
 * seen as its last error, re-checked with backoff (engine_preflight_backoff,
 * up to renew.backoff_max). One history event per answer: a re-check
 * that sees the same thing adds none.
 */
static void job_dns_pending(struct job *j, enum engine_preflight_verdict v,
			    const char *why)
{
	struct engine_daemon *d = j->d;
	int64_t now = clock_wall_ms();
	struct store_domain dom;
	struct store_problem p = {0};
	struct store_job sj = {0};
	char when[40];
	int same;

	engine__job_refund(j);
	if (store_domain_get(d->st, j->name, &dom) < 0 ||
	    dom.status == STORE_DOMAIN_REMOVED) {
		job_end(j); /* removed meanwhile: nothing to engine__schedule */
		return;
	}
	snprintf(p.type, sizeof(p.type), "%s", engine_preflight_types[v]);
	snprintf(p.detail, sizeof(p.detail), "%s", why);
	snprintf(p.step, sizeof(p.step), "preflight");
	p.retry_after_ms = STORE_NO_TIME;
	same = dom.has_error && strcmp(dom.last_error.step, p.step) == 0 &&
	       strcmp(dom.last_error.type, p.type) == 0 &&
	       strcmp(dom.last_error.detail, p.detail) == 0;
	sj.status = STORE_DOMAIN_DNS_PENDING;
	sj.failures = j->failures + 1;
	sj.next_attempt_ms = engine_preflight_backoff(
	    sj.failures, now, d->o.backoff_max_ms, engine__rnd64());
	sj.error = &p;
	if (store_domain_set_job(d->st, j->name, &sj, now) < 0)
		log_error("daemon", j->name, "cannot update the store: %s",
			  store_errmsg(d->st));
	engine__time_str(sj.next_attempt_ms, when, sizeof(when));
	if (!same) {
		store_event_append(d->st, j->name, now, "dns-pending", why);
		log_info("daemon", j->name,
			 "not ordering: %s (checking again "
			 "at %s)",
			 why, when);
	} else {
		log_debug("daemon", j->name, "still %s (checking again at %s)",
			  p.type, when);
	}
	job_end(j);
}

static void preflight_done(void *ctx, const struct engine_dns_result *r)
{
	struct job *j = ctx;
	struct engine_daemon *d = j->d;
	enum engine_preflight_verdict v;
	char why[sizeof(((struct store_problem *)0)->detail)];

	d->n_preflight--;
	if (d->draining) {
		/* No order yet: left ISSUING/RENEWING like a crash would,
		 * due again at the next start (reschedule_orphans). */
		engine__job_refund(j);
		job_end(j);
		return;
	}
	v = engine_preflight_judge(j->name, r, d->o.preflight_addrs,
				   d->o.n_preflight_addrs, why, sizeof(why));
	if (v != ENGINE_PREFLIGHT_OK) {
		job_dns_pending(j, v, why);
		return;
	}
	if (j->was_dns_pending) {
		store_event_append(d->st, j->name, clock_wall_ms(), "dns-ok",
				   why);
		log_info("daemon", j->name, "DNS now points at us: %s", why);
	} else {
		log_debug("daemon", j->name, "pre-flight: %s", why);
	}
	engine__job_queue_keygen(j);
}

/* Check DNS first when the pre-flight is on; a resumed order never
 * comes here (it was checked before it was created). */
void engine__job_preflight(struct job *j)
{
	int rc;

	/* DNS-01 proves control of the zone, not where the name points
	 * (a wildcard points nowhere) */
	if (!j->d->dns || j->chall == ACME_CHALL_DNS01) {
		engine__job_queue_keygen(j);
		return;
	}
	rc = engine_dns_lookup(j->d->dns, j->name, preflight_done, j);
	if (rc < 0)
		engine__job_local_failure(j, "cannot start the DNS pre-flight");
	else
		j->d->n_preflight++;
}
