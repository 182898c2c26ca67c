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
 * Rate limits: one ledger (struct engine_limits) for the account,
 * mirroring the CA's limits so we never spend an order the CA would
 * refuse. Each pass ranks the due domains with engine_queue_next (urgent
 * renewals, new names, early renewals; early renewals keep off the last
 * half of the new-orders bucket), which also reserves the tokens of the
 * ones that start. A domain held back keeps its status and gets as next
 * attempt the time its bucket has refilled enough (docs/daemon.md). Every
 * bucket touched is saved to the store ("<limit name>/<key>"), the
 * account's at start-up and a domain's own just before it is looked at
 * are loaded back, so a restart does not forget what was spent.
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
#include <time.h>

#include <openssl/rand.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

#define DUE_BATCH 256
/* Buckets that have refilled are dropped from memory this often. */
#define GC_EVERY_MS ENGINE_MIN_MS

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
	int in_schedule, schedule_again; /* see schedule() */
	unsigned in_flight;
	struct job *jobs; /* in flight, doubly linked */
	struct engine_limits *lim; /* the account's ledger; loop thread only */
	int64_t next_gc_ms;
	unsigned held;             /* held back by the ledger, last pass */
	struct engine_pass_stats pass; /* pass cost; loop thread only */
	uv_mutex_t stats_mu;       /* guards stats (read by the API thread) */
	struct engine_daemon_stats stats;
	int stats_mu_ok;
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
	int charged;           /* ledger tokens reserved for this order */
	enum engine_class cls;
	char regdomain[NAME_MAX_LEN + 1];
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

/* "2025-01-02T03:04:05Z" for messages. */
static void time_str(int64_t ms, char *buf, size_t sz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, sz, "%lld ms", (long long)ms);
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

/* ---- the ledger's persistence ------------------------------------------------ */

static int bucket_key(char *out, size_t sz, enum engine_limit kind,
		      const char *key)
{
	int n = snprintf(out, sz, "%s/%s", engine_limit_names[kind], key);

	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

static int limit_on(const struct engine_daemon *d, enum engine_limit kind)
{
	const struct engine_limit_def *def = engine_limits_def(d->lim, kind);

	return def && def->capacity > 0;
}

/* Load (kind, key) from the store over what memory has: memory and store
 * agree after every change (bucket_save), so this only matters for
 * buckets not seen since the start. */
static void bucket_load(struct engine_daemon *d, enum engine_limit kind,
			const char *key)
{
	struct store_bucket sb;
	struct engine_bucket b;
	char k[STORE_BUCKET_KEY_MAX + 1];

	if (!limit_on(d, kind) || bucket_key(k, sizeof(k), kind, key) < 0 ||
	    store_bucket_load(d->st, k, &sb) < 0)
		return;
	b.tokens = sb.tokens;
	b.updated_ms = sb.updated_ms;
	engine_limits_restore(d->lim, kind, key, &b);
}

/* Persist (kind, key) as its level at now: the same bucket. */
static void bucket_save(struct engine_daemon *d, enum engine_limit kind,
			const char *key, int64_t now)
{
	struct store_bucket sb = {0};
	struct engine_headroom h;

	if (!limit_on(d, kind) ||
	    bucket_key(sb.key, sizeof(sb.key), kind, key) < 0 ||
	    engine_limits_headroom(d->lim, kind, key, now, &h) < 0)
		return;
	sb.tokens = h.tokens;
	sb.updated_ms = now;
	if (store_bucket_save(d->st, &sb) < 0)
		log_warn("daemon", NULL,
			 "cannot save rate-limit bucket %s: %s (a restart may "
			 "spend it again)",
			 sb.key, store_errmsg(d->st));
}

/* The CA exempts renewals from some limits (the def says which). */
static int charged_for(const struct engine_daemon *d, enum engine_limit kind,
		       enum engine_class cls)
{
	const struct engine_limit_def *def = engine_limits_def(d->lim, kind);

	return cls == ENGINE_CLASS_NEW || !def->renewal_exempt;
}

/* Give back what engine_queue_next reserved for j (no order was made). */
static void job_refund(struct job *j)
{
	struct engine_daemon *d = j->d;
	int64_t now = clock_wall_ms();

	if (!j->charged)
		return;
	j->charged = 0;
	engine_limits_give(d->lim, ENGINE_LIMIT_ORDERS, "", 1, now);
	bucket_save(d, ENGINE_LIMIT_ORDERS, "", now);
	if (charged_for(d, ENGINE_LIMIT_REGDOMAIN, j->cls)) {
		engine_limits_give(d->lim, ENGINE_LIMIT_REGDOMAIN, j->regdomain,
				   1, now);
		bucket_save(d, ENGINE_LIMIT_REGDOMAIN, j->regdomain, now);
	}
	if (charged_for(d, ENGINE_LIMIT_IDENTICAL, j->cls)) {
		engine_limits_give(d->lim, ENGINE_LIMIT_IDENTICAL, j->name, 1,
				   now);
		bucket_save(d, ENGINE_LIMIT_IDENTICAL, j->name, now);
	}
}

static void publish_stats(struct engine_daemon *d, int64_t now)
{
	struct engine_headroom h = {0};

	engine_limits_headroom(d->lim, ENGINE_LIMIT_ORDERS, "", now, &h);
	uv_mutex_lock(&d->stats_mu);
	d->stats.in_flight = d->in_flight;
	d->stats.held = d->held;
	d->stats.orders_tokens = h.tokens;
	d->stats.orders_capacity = h.capacity > 0 ? h.capacity : 0;
	d->stats.orders_full_at_ms = h.full_at_ms;
	d->stats.at_ms = now;
	d->stats.pass = d->pass;
	uv_mutex_unlock(&d->stats_mu);
}

void engine_daemon_stats(struct engine_daemon *d,
			 struct engine_daemon_stats *out)
{
	uv_mutex_lock(&d->stats_mu);
	*out = d->stats;
	uv_mutex_unlock(&d->stats_mu);
}

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
	/* The CA counts failed authorizations per identifier; so do we. */
	if (e->step && strcmp(e->step, "validation") == 0 &&
	    limit_on(d, ENGINE_LIMIT_FAILED_AUTHZ)) {
		if (engine_limits_take(d->lim, ENGINE_LIMIT_FAILED_AUTHZ,
				       j->name, 1, now) == 0)
			bucket_save(d, ENGINE_LIMIT_FAILED_AUTHZ, j->name, now);
	}
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
	/* No order at the CA yet: what was reserved for it goes back. */
	if (!j->order_id && !(j->order && acme_order_url(j->order)))
		job_refund(j);
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

/* The store's order of due domains: renewals (by expiry), then new
 * names. engine_queue_next makes the final choice by class. */
static const unsigned due_rank[STORE_DOMAIN__MAX] = {
	[STORE_DOMAIN_VALID] = 0,   [STORE_DOMAIN_PENDING] = 1,
	[STORE_DOMAIN_DNS_PENDING] = 2, [STORE_DOMAIN_FAILED] = 3,
	[STORE_DOMAIN_ISSUING] = 4, [STORE_DOMAIN_RENEWING] = 4,
	[STORE_DOMAIN_REMOVED] = 5,
};

/*
 * The class of a due domain: NEW without a certificate; a renewal is
 * URGENT from engine_renew_urgent_at, else EARLY -- except a renewal due
 * before half the certificate's lifetime, which no renewal rule of ours
 * (nor a normal ARI window) asks for: an operator forced it (`certherd
 * renew`, a key compromise, a changed profile) and it is served as URGENT.
 */
static enum engine_class due_class(const struct store_due *due, int64_t now)
{
	int64_t nb = due->not_before_ms, na = due->not_after_ms;

	/* The validity comes with the due row: loading each due domain's
	 * certificate (PEMs and all) here made a pass at 100,000 domains
	 * cost ~10 ms of CPU to start one order (bench/RESULTS.md). */
	if (na == STORE_NO_TIME || nb == STORE_NO_TIME)
		return ENGINE_CLASS_NEW;
	if (na > nb && now < nb + (na - nb) / 2)
		return ENGINE_CLASS_URGENT;
	return engine_renew_class(nb, na, now);
}

static int start_due(struct engine_daemon *d, const struct store_due *due,
		     enum engine_class cls, const char *regdomain)
{
	int64_t now = clock_wall_ms();
	struct store_job sj = {0};
	struct store_domain dom;
	struct job *j;

	if (store_domain_get(d->st, due->name, &dom) < 0)
		return -EIO;
	j = job_new(d, due->name);
	if (!j)
		return -ENOMEM;
	j->renewing = due->not_after_ms != STORE_NO_TIME;
	j->failures = due->failures;
	j->cls = cls;
	snprintf(j->regdomain, sizeof(j->regdomain), "%s", regdomain);
	/* Unschedule while in flight so no pass picks it twice. */
	sj.status = j->renewing ? STORE_DOMAIN_RENEWING : STORE_DOMAIN_ISSUING;
	sj.next_attempt_ms = STORE_NO_TIME;
	sj.failures = due->failures;
	sj.error = dom.has_error ? &dom.last_error : NULL;
	if (store_domain_set_job(d->st, j->name, &sj, now) < 0) {
		log_error("daemon", j->name, "cannot update the store: %s",
			  store_errmsg(d->st));
		job_free(j);
		return -EIO;
	}
	j->charged = 1; /* from here on job_local_failure refunds */
	job_queue_keygen(j);
	return 0;
}

/*
 * A due domain the ledger holds back: it keeps its status, failures and
 * last error, and is due again when its buckets allow it. The k-th domain
 * of a class held by the account's bucket in this pass waits for k more
 * tokens (capped at the capacity), so the waiting names come back one per
 * refill instead of all at every refill. The event is written once per
 * wait, not at every refill.
 */
static void hold(struct engine_daemon *d, const struct store_due *due,
		 enum engine_class cls, const char *rd, unsigned k,
		 int64_t now)
{
	const struct engine_limit_def *od =
	    engine_limits_def(d->lim, ENGINE_LIMIT_ORDERS);
	struct store_domain dom;
	struct store_event last;
	struct store_job sj = {0};
	char why[512], when[40];
	double need = 1;
	int64_t t, at = now;
	size_t n = 0, o = 0;

	if (cls == ENGINE_CLASS_EARLY)
		need += (double)(int64_t)(od->capacity *
					  ENGINE_QUEUE_EARLY_RESERVE);
	need += k;
	if (od->capacity > 0 && need > od->capacity)
		need = od->capacity;
	why[0] = '\0';
	t = engine_limits_when(d->lim, ENGINE_LIMIT_ORDERS, "", need, now);
	if (t > now) {
		at = t;
		o += (size_t)snprintf(why + o, sizeof(why) - o, "%s",
				      "new orders per account");
	}
	if (charged_for(d, ENGINE_LIMIT_REGDOMAIN, cls) &&
	    (t = engine_limits_when(d->lim, ENGINE_LIMIT_REGDOMAIN, rd, 1,
				    now)) > now) {
		at = at > t ? at : t;
		o += (size_t)snprintf(why + o, sizeof(why) - o,
				      "%scertificates per registered domain %s",
				      o ? ", " : "", rd);
	}
	if (o < sizeof(why) && charged_for(d, ENGINE_LIMIT_IDENTICAL, cls) &&
	    (t = engine_limits_when(d->lim, ENGINE_LIMIT_IDENTICAL, due->name,
				    1, now)) > now) {
		at = at > t ? at : t;
		o += (size_t)snprintf(why + o, sizeof(why) - o, "%s%s",
				      o ? ", " : "",
				      "certificates per identical set");
	}
	if (o < sizeof(why) &&
	    (t = engine_limits_when(d->lim, ENGINE_LIMIT_FAILED_AUTHZ,
				    due->name, 1, now)) > now) {
		at = at > t ? at : t;
		o += (size_t)snprintf(why + o, sizeof(why) - o, "%s%s",
				      o ? ", " : "",
				      "failed authorizations per name");
	}
	if (at <= now || at == ENGINE_NEVER)
		/* Nothing empty after all (or the early class waiting on
		 * the reserve of a tiny bucket): look again at the next
		 * refill rather than never. */
		at = now + (od->capacity > 0 ? od->period_ms /
						       (int64_t)od->capacity
					     : ENGINE_MIN_MS);
	if (store_domain_get(d->st, due->name, &dom) < 0)
		return;
	sj.status = dom.status;
	sj.next_attempt_ms = at;
	sj.failures = dom.failures;
	sj.error = dom.has_error ? &dom.last_error : NULL;
	if (store_domain_set_job(d->st, due->name, &sj, now) < 0) {
		log_error("daemon", due->name, "cannot update the store: %s",
			  store_errmsg(d->st));
		return;
	}
	d->held++;
	if (store_event_list(d->st, due->name, &last, 1, &n) == 0 && n == 1 &&
	    strcmp(last.kind, "rate-limited") == 0)
		return;
	time_str(at, when, sizeof(when));
	snprintf(last.detail, sizeof(last.detail),
		 "rate-limited (local ledger): %s order waits for %s until %s",
		 engine_class_names[cls],
		 o ? why : "the early-renewal reserve", when);
	store_event_append(d->st, due->name, now, "rate-limited", last.detail);
	log_info("daemon", due->name, "%s", last.detail);
}

/* Seconds on clock id (CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID). */
static double clock_s(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Account for one pass that took wall / cpu seconds (the instrument of
 * the "pass under 50 ms at 100,000 domains" target, bench/serve.sh). */
static void pass_cost(struct engine_daemon *d, double wall, double cpu)
{
	struct engine_pass_stats *p = &d->pass;

	p->passes++;
	p->last_wall_s = wall;
	p->last_cpu_s = cpu;
	p->sum_wall_s += wall;
	p->sum_cpu_s += cpu;
	if (wall > p->max_wall_s)
		p->max_wall_s = wall;
	if (cpu > p->max_cpu_s)
		p->max_cpu_s = cpu;
}

/*
 * One pass: up to DUE_BATCH due domains from the store, ranked by class
 * in a queue of this pass (engine_queue_next applies the class shares
 * and the per-name buckets and reserves the tokens), started while
 * concurrency allows. When the ledger allows nothing more, every due
 * domain left is held back (hold) until its buckets refill; when
 * concurrency is what stops us, the rest simply stays due.
 */
static void schedule_pass(struct engine_daemon *d)
{
	static struct store_due due[DUE_BATCH];
	static enum engine_class cls[DUE_BATCH];
	static char rd[DUE_BATCH][NAME_MAX_LEN + 1];
	struct engine_queue *q = NULL;
	struct engine_queue_item it;
	char name[NAME_MAX_LEN + 1];
	int64_t now = clock_wall_ms();
	unsigned waiting[ENGINE_CLASS__MAX] = {0};
	size_t n = 0, max, started = 0;
	int rc = 0;
	double wall0 = clock_s(CLOCK_MONOTONIC);
	double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);

	if (now >= d->next_gc_ms) {
		engine_limits_gc(d->lim, now);
		d->next_gc_ms = now + GC_EVERY_MS;
	}
	if (d->stopping || d->in_flight >= d->o.concurrency)
		goto out;
	max = d->o.concurrency - d->in_flight;
	if (store_domain_due(d->st, now, due_rank, due, DUE_BATCH, &n) < 0) {
		log_error("daemon", NULL, "cannot read due domains: %s",
			  store_errmsg(d->st));
		goto out;
	}
	if (!n)
		goto out;
	d->held = 0;
	q = engine_queue_new();
	if (!q)
		goto out;
	for (size_t i = 0; i < n; i++) {
		cls[i] = due_class(&due[i], now);
		if (engine_limits_regdomain(due[i].name, rd[i], sizeof(rd[i])) < 0)
			snprintf(rd[i], sizeof(rd[i]), "%.*s",
				 (int)sizeof(rd[i]) - 1, due[i].name);
		bucket_load(d, ENGINE_LIMIT_REGDOMAIN, rd[i]);
		bucket_load(d, ENGINE_LIMIT_IDENTICAL, due[i].name);
		bucket_load(d, ENGINE_LIMIT_FAILED_AUTHZ, due[i].name);
		if (engine_queue_push(q, due[i].name, cls[i],
				      due[i].next_attempt_ms, ENGINE_NEVER) < 0)
			goto out;
	}
	while (started < max) {
		size_t i;

		rc = engine_queue_next(q, d->lim, now, name, sizeof(name), &it,
				       NULL);
		if (rc <= 0)
			break;
		for (i = 0; i < n && strcmp(due[i].name, name) != 0; i++)
			;
		if (i == n)
			continue; /* cannot happen: the queue holds due[] */
		bucket_save(d, ENGINE_LIMIT_ORDERS, "", now);
		if (charged_for(d, ENGINE_LIMIT_REGDOMAIN, cls[i]))
			bucket_save(d, ENGINE_LIMIT_REGDOMAIN, rd[i], now);
		if (charged_for(d, ENGINE_LIMIT_IDENTICAL, cls[i]))
			bucket_save(d, ENGINE_LIMIT_IDENTICAL, due[i].name, now);
		if (start_due(d, &due[i], cls[i], rd[i]) < 0) {
			struct job tmp = {.d = d, .charged = 1, .cls = cls[i]};

			snprintf(tmp.name, sizeof(tmp.name), "%s", name);
			snprintf(tmp.regdomain, sizeof(tmp.regdomain), "%s",
				 rd[i]);
			job_refund(&tmp);
			continue;
		}
		started++;
	}
	if (rc < 0) {
		log_error("daemon", NULL, "scheduler: %s", strerror(-rc));
		goto out;
	}
	if (started == max)
		goto out; /* concurrency, not the ledger, stops us */
	/* The ledger allows nothing more now: hold back what is left. */
	for (size_t i = 0; i < n; i++) {
		if (engine_queue_get(q, due[i].name, &it) < 0)
			continue; /* started */
		hold(d, &due[i], cls[i], rd[i], waiting[cls[i]]++, now);
	}
out:
	engine_queue_free(q);
	pass_cost(d, clock_s(CLOCK_MONOTONIC) - wall0,
		  clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0);
	publish_stats(d, now);
}

/* A pass can end a job synchronously (a local failure), whose close asks
 * for another pass: run that one after this pass, never inside it (the
 * pass's buffers are static). */
static void schedule(struct engine_daemon *d)
{
	if (d->in_schedule) {
		d->schedule_again = 1;
		return;
	}
	d->in_schedule = 1;
	do {
		d->schedule_again = 0;
		schedule_pass(d);
	} while (d->schedule_again && !d->stopping);
	d->in_schedule = 0;
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
			if (d->o.live_dir &&
			    store_live_sweep(d->o.live_dir, j->name) > 0)
				log_info("daemon", j->name,
					 "removed temp files of an interrupted "
					 "write in %s",
					 d->o.live_dir);
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
	if (uv_mutex_init(&d->stats_mu) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	d->stats_mu_ok = 1;
	d->lim = engine_limits_new(NULL);
	if (!d->lim) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int k = 0; o->limits && k < ENGINE_LIMIT__MAX; k++) {
		if (engine_limits_set(d->lim, (enum engine_limit)k,
				      &o->limits[k]) < 0) {
			snprintf(err, errsz, "bad rate limit for %s",
				 engine_limit_names[k]);
			rc = -EINVAL;
			goto fail;
		}
	}
	rc = store_open(o->state_dir, &d->st, err, errsz);
	if (rc < 0)
		goto fail;
	/* The account's bucket now; a domain's own when it is due. */
	bucket_load(d, ENGINE_LIMIT_ORDERS, "");
	publish_stats(d, clock_wall_ms());
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
	engine_limits_free(d->lim);
	if (d->stats_mu_ok)
		uv_mutex_destroy(&d->stats_mu);
	free(d);
}
