/*
 * engine_daemon.c — the daemon's engine: keeps every registered domain's
 * certificate valid, from one loop thread.
 *
 * A job is one domain being worked on:
 *
 *   due (store) --> KEYGEN (thread pool) --> ORDER (acme_order on the loop)
 *        |              newOrder answered: order URL + key persisted
 *        |              (store_order_begin) before anything else is sent
 *        |                 VALID: certificate stored with its renewal time,
 *        |                        live/ written, event "issued"
 *        |                 FAILED: order finished INVALID, failure backed
 *        |                        off (or stopped when permanent), event
 *   resumed (orders the store still has pending after a crash): the key
 *   comes from the store, the order machine fetches the order URL and
 *   carries on from whatever state the CA has it in.
 *
 * Invariants: a domain with a job in flight is ISSUING or RENEWING in the
 * store with no next attempt, so a scheduler pass never picks it twice; a
 * domain left ISSUING/RENEWING without a pending order (a crash between
 * the two writes) is made due again at start-up. The store is the only
 * memory that survives a restart.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

#define DUE_BATCH 256

struct job;

struct engine_daemon {
	struct engine_daemon_opts o;
	struct engine_session s;
	struct store *st;
	struct engine_chall *chall;
	uv_async_t wake;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint, sighup;
	int handles_open;
	int stopping;
	unsigned in_flight;
	struct job *jobs; /* in flight, doubly linked */
};

struct job {
	struct engine_daemon *d;
	char name[NAME_MAX_LEN + 1];
	int renewing;          /* the domain has a current certificate */
	uint32_t failures;     /* before this attempt */
	EVP_PKEY *key;
	char *key_pem;
	unsigned char *csr;
	size_t csr_len;
	char *order_url;       /* resuming a persisted order */
	int64_t order_id;      /* 0 until persisted */
	struct acme_order *order;
	struct engine_task task;
	uv_work_t work;
	int rc;
	struct job *prev, *next;
};

/* Jitter for the renewal policy (which takes randomness as input). */
static uint64_t rnd64(void)
{
	uint64_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint64_t)clock_mono_ms() * 0x9E3779B97F4A7C15ull;
	return r;
}

static void problem_from(struct store_problem *p, const struct acme_error *e,
			 int64_t now)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->type, sizeof(p->type), "%s",
		 e->type ? e->type : acme_errc_names[e->code]);
	snprintf(p->detail, sizeof(p->detail), "%s",
		 e->detail ? e->detail : "unknown error");
	snprintf(p->step, sizeof(p->step), "%s", e->step ? e->step : "");
	p->status = e->status;
	p->retry_after_ms =
		e->retry_after_ms >= 0 ? now + e->retry_after_ms : STORE_NO_TIME;
}

static void schedule(struct engine_daemon *d);

/* ---- job lifetime ----------------------------------------------------------- */

static void job_free(struct job *j)
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

	job_free(j);
	if (!d->stopping)
		schedule(d);
}

static void job_end(struct job *j)
{
	engine_task_close(&j->task, job_closed);
}

static void job_failed(struct job *j, const struct acme_error *e)
{
	struct engine_daemon *d = j->d;
	int64_t now = clock_wall_ms();
	struct store_problem p;
	struct store_job sj = {0};
	const char *why = "";
	char buf[1024];

	problem_from(&p, e, now);
	if (j->order_id)
		store_order_finish(d->st, j->order_id, STORE_ORDER_INVALID, now);
	sj.failures = j->failures + 1;
	sj.next_attempt_ms = engine_renew_backoff(sj.failures, e, now, rnd64(),
						  &why);
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
	job_end(j);
}

static void job_local_failure(struct job *j, const char *why)
{
	struct acme_error e = {.code = ACME_E_INTERNAL, .retry_after_ms = -1};

	e.detail = (char *)why;
	e.step = "local";
	job_failed(j, &e);
}

/* ---- ORDER ----------------------------------------------------------------- */

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

static void order_done(struct engine_task *t, enum acme_step s)
{
	struct job *j = t->ctx;
	struct engine_daemon *d = j->d;
	struct store_cert c = {0};
	struct x509_info info = {0};
	struct store_domain dom;
	X509 *leaf = NULL;
	const char *pem;
	int64_t now = clock_wall_ms();
	size_t len;
	int rc;

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
		job_local_failure(j, "the CA's certificate does not match its key");
		return;
	}
	X509_free(leaf);
	if (store_domain_get(d->st, j->name, &dom) == 0 &&
	    dom.status == STORE_DOMAIN_REMOVED) {
		/* Removed while we worked: keep the history, not the job. */
		if (j->order_id)
			store_order_finish(d->st, j->order_id, STORE_ORDER_DONE,
					   now);
		x509_info_free(&info);
		job_end(j);
		return;
	}
	snprintf(c.info.domain, sizeof(c.info.domain), "%s", j->name);
	snprintf(c.info.serial, sizeof(c.info.serial), "%s", info.serial);
	snprintf(c.info.issuer, sizeof(c.info.issuer), "%s", info.issuer_cn);
	snprintf(c.info.profile, sizeof(c.info.profile), "%s",
		 d->o.profile ? d->o.profile : "");
	c.info.not_before_ms = info.not_before * 1000;
	c.info.not_after_ms = info.not_after * 1000;
	c.info.ari_start_ms = c.info.ari_end_ms = STORE_NO_TIME;
	c.chain_pem = (char *)pem;
	c.key_pem = j->key_pem;
	/* live/ first, the store second: a crash in between leaves the
	 * order pending, the restart downloads the same certificate again
	 * and writes the same files, so live/ is never behind the store. */
	if (d->o.live_dir &&
	    (rc = store_live_write(d->o.live_dir, j->name, pem, j->key_pem)) < 0) {
		char why[512];
		x509_info_free(&info);
		snprintf(why, sizeof(why), "cannot write %s/%s: %s",
			 d->o.live_dir, j->name, strerror(-rc));
		job_local_failure(j, why);
		return;
	}
	rc = store_cert_insert(d->st, &c, j->order_id,
			       engine_renew_at(c.info.not_before_ms,
					       c.info.not_after_ms, NULL, now,
					       rnd64()),
			       now, NULL);
	x509_info_free(&info);
	if (rc < 0) {
		job_local_failure(j, "cannot store the certificate");
		return;
	}
	store_event_append(d->st, j->name, now, j->renewing ? "renewed" : "issued",
			   "certificate stored");
	log_info("daemon", j->name, "certificate %s",
		 j->renewing ? "renewed" : "issued");
	job_end(j);
}

static void start_order(struct job *j)
{
	struct engine_daemon *d = j->d;
	struct acme_challenge_hooks hooks = engine_chall_hooks(d->chall);
	const char *name = j->name;
	struct acme_order_opts oo = {
		.names = &name,
		.n_names = 1,
		.csr_der = j->csr,
		.csr_len = j->csr_len,
		.chall = ACME_CHALL_HTTP01,
		.profile = d->o.profile,
		.order_url = j->order_url,
	};

	j->order = acme_order_new(d->s.client, &oo, &hooks);
	if (!j->order) {
		job_local_failure(j, "cannot create the order");
		return;
	}
	engine_task_order(&j->task, j->order);
	j->task.done = order_done;
	j->task.fed = order_fed;
	if (engine_task_start(&j->task, &d->s.loop, d->s.http) < 0)
		job_local_failure(j, "cannot start the order");
}

/* ---- KEYGEN (thread pool) ------------------------------------------------------ */

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
		job_local_failure(j, "cannot make the key or CSR");
		return;
	}
	start_order(j);
}

static struct job *job_new(struct engine_daemon *d, const char *name)
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

static void job_queue_keygen(struct job *j)
{
	if (uv_queue_work(&j->d->s.loop, &j->work, keygen_work, keygen_done) < 0)
		job_local_failure(j, "cannot queue key generation");
}

/* ---- scheduling ---------------------------------------------------------------- */

/* Renewals close to expiry first, then new names, then the rest. */
static const unsigned due_rank[STORE_DOMAIN__MAX] = {
	[STORE_DOMAIN_VALID] = 0,   [STORE_DOMAIN_PENDING] = 1,
	[STORE_DOMAIN_DNS_PENDING] = 2, [STORE_DOMAIN_FAILED] = 3,
	[STORE_DOMAIN_ISSUING] = 4, [STORE_DOMAIN_RENEWING] = 4,
	[STORE_DOMAIN_REMOVED] = 5,
};

static void start_due(struct engine_daemon *d, const struct store_due *due)
{
	int64_t now = clock_wall_ms();
	struct store_job sj = {0};
	struct store_domain dom;
	struct job *j;

	if (store_domain_get(d->st, due->name, &dom) < 0)
		return;
	j = job_new(d, due->name);
	if (!j)
		return;
	j->renewing = due->not_after_ms != STORE_NO_TIME;
	j->failures = due->failures;
	/* Unschedule while in flight so no pass picks it twice. */
	sj.status = j->renewing ? STORE_DOMAIN_RENEWING : STORE_DOMAIN_ISSUING;
	sj.next_attempt_ms = STORE_NO_TIME;
	sj.failures = due->failures;
	sj.error = dom.has_error ? &dom.last_error : NULL;
	if (store_domain_set_job(d->st, j->name, &sj, now) < 0) {
		log_error("daemon", j->name, "cannot update the store: %s",
			  store_errmsg(d->st));
		job_free(j);
		return;
	}
	job_queue_keygen(j);
}

static void schedule(struct engine_daemon *d)
{
	static struct store_due due[DUE_BATCH];
	size_t n = 0, max;

	if (d->stopping || d->in_flight >= d->o.concurrency)
		return;
	max = d->o.concurrency - d->in_flight;
	if (max > DUE_BATCH)
		max = DUE_BATCH;
	if (store_domain_due(d->st, clock_wall_ms(), due_rank, due, max, &n) < 0) {
		log_error("daemon", NULL, "cannot read due domains: %s",
			  store_errmsg(d->st));
		return;
	}
	for (size_t i = 0; i < n; i++)
		start_due(d, &due[i]);
}

static void on_tick(uv_timer_t *t)
{
	schedule(t->data);
}

static void on_wake(uv_async_t *a)
{
	schedule(a->data);
}

void engine_daemon_wake(struct engine_daemon *d)
{
	uv_async_send(&d->wake);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct engine_daemon *d = s->data;

	if (signum == SIGHUP) {
		log_info("daemon", NULL,
			 "SIGHUP: configuration reload is not supported yet; "
			 "restart to apply changes (pending orders resume)");
		return;
	}
	log_info("daemon", NULL,
		 "stopping on signal %d: %u jobs in flight resume at the next "
		 "start",
		 signum, d->in_flight);
	d->stopping = 1;
	uv_stop(&d->s.loop);
}

/* ---- start-up: resume what a crash or stop left ------------------------------------ */

static int resume(struct engine_daemon *d)
{
	struct store_order orders[64];
	int64_t after = 0;
	size_t n;
	int resumed = 0;

	do {
		if (store_order_list_pending(d->st, after, orders, 64, &n) < 0)
			return -EIO;
		for (size_t i = 0; i < n; i++) {
			struct store_order *o = &orders[i];
			struct store_domain dom;
			struct job *j = NULL;

			after = o->id;
			if (store_domain_get(d->st, o->domain, &dom) == 0 &&
			    dom.status != STORE_DOMAIN_REMOVED)
				j = job_new(d, o->domain);
			if (!j) {
				store_order_finish(d->st, o->id,
						   STORE_ORDER_INVALID,
						   clock_wall_ms());
				store_order_clear(o);
				continue;
			}
			j->renewing = dom.status == STORE_DOMAIN_RENEWING ||
				      dom.status == STORE_DOMAIN_VALID;
			j->failures = dom.failures;
			j->order_id = o->id;
			j->order_url = o->url;
			o->url = NULL;
			j->key = o->key_pem ? key_from_pem(o->key_pem,
							   strlen(o->key_pem))
					    : NULL;
			j->key_pem = o->key_pem;
			o->key_pem = NULL;
			store_order_clear(o);
			if (!j->key) {
				job_local_failure(j, "the stored order key "
						     "does not parse");
				continue;
			}
			log_info("daemon", j->name, "resuming order %s",
				 j->order_url);
			resumed++;
			job_queue_keygen(j); /* CSR from the stored key */
		}
	} while (n == 64);
	return resumed;
}

/* Domains left ISSUING/RENEWING with no job (crash between the job
 * update and the order record) become due again. */
static void reschedule_orphans(struct engine_daemon *d)
{
	struct store_domain_filter f = {
		.status_mask = (1u << STORE_DOMAIN_ISSUING) |
			       (1u << STORE_DOMAIN_RENEWING),
	};
	static struct store_domain doms[256];
	char after[NAME_MAX_LEN + 1] = "";
	int64_t now = clock_wall_ms();
	size_t n;

	do {
		f.after = after[0] ? after : NULL;
		if (store_domain_list(d->st, &f, doms, 256, &n) < 0)
			return;
		for (size_t i = 0; i < n; i++) {
			struct job *j;
			struct store_job sj = {0};
			int busy = 0;

			for (j = d->jobs; j && !busy; j = j->next)
				busy = strcmp(j->name, doms[i].name) == 0;
			snprintf(after, sizeof(after), "%s", doms[i].name);
			if (busy)
				continue;
			sj.status = doms[i].status == STORE_DOMAIN_RENEWING
					    ? STORE_DOMAIN_VALID
					    : STORE_DOMAIN_PENDING;
			sj.next_attempt_ms = now;
			sj.failures = doms[i].failures;
			sj.error = doms[i].has_error ? &doms[i].last_error : NULL;
			store_domain_set_job(d->st, doms[i].name, &sj, now);
		}
	} while (n == 256);
}

/* ---- open / run / close ---------------------------------------------------------- */

int engine_daemon_open(const struct engine_daemon_opts *o,
		       struct engine_daemon **out, char *err, size_t errsz)
{
	struct engine_daemon *d = calloc(1, sizeof(*d));
	int rc;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->o = *o;
	if (!d->o.concurrency)
		d->o.concurrency = 100;
	if (!d->o.tick_ms)
		d->o.tick_ms = 1000;
	rc = store_open(o->state_dir, &d->st, err, errsz);
	if (rc < 0)
		goto fail;
	d->chall = engine_chall_new(o->http_listen, o->http_redirect, err,
				    errsz);
	if (!d->chall) {
		rc = -EADDRINUSE;
		goto fail;
	}
	rc = engine_session_open(&d->s, &o->acct, 1, err, errsz);
	if (rc < 0)
		goto fail;
	uv_async_init(&d->s.loop, &d->wake, on_wake);
	d->wake.data = d;
	uv_timer_init(&d->s.loop, &d->tick);
	d->tick.data = d;
	uv_signal_init(&d->s.loop, &d->sigterm);
	uv_signal_init(&d->s.loop, &d->sigint);
	uv_signal_init(&d->s.loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	d->handles_open = 1;
	*out = d;
	return 0;
fail:
	engine_daemon_close(d);
	return rc;
}

int engine_daemon_run(struct engine_daemon *d)
{
	int resumed;

	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	uv_signal_start(&d->sighup, on_signal, SIGHUP);
	if (d->o.live_dir && store_live_sweep(d->o.live_dir) > 0)
		log_info("daemon", NULL,
			 "removed temp files of interrupted writes in %s",
			 d->o.live_dir);
	resumed = resume(d);
	if (resumed < 0)
		log_error("daemon", NULL, "cannot read pending orders: %s",
			  store_errmsg(d->st));
	reschedule_orphans(d);
	log_info("daemon", NULL, "running: %d orders resumed, up to %u in flight",
		 resumed < 0 ? 0 : resumed, d->o.concurrency);
	uv_timer_start(&d->tick, on_tick, 0, d->o.tick_ms);
	uv_run(&d->s.loop, UV_RUN_DEFAULT);
	return 0;
}

void engine_daemon_close(struct engine_daemon *d)
{
	if (!d)
		return;
	if (d->handles_open) {
		uv_close((uv_handle_t *)&d->wake, NULL);
		uv_close((uv_handle_t *)&d->tick, NULL);
		uv_close((uv_handle_t *)&d->sigterm, NULL);
		uv_close((uv_handle_t *)&d->sigint, NULL);
		uv_close((uv_handle_t *)&d->sighup, NULL);
	}
	/* Jobs still in flight are abandoned here; their orders stay
	 * pending in the store and resume at the next start. */
	d->stopping = 1;
	engine_session_close(&d->s);
	while (d->jobs) {
		d->jobs->task.closing = 1;
		job_free(d->jobs);
	}
	engine_chall_free(d->chall);
	store_close(d->st);
	free(d);
}
