/*
 * engine_daemon.c — the daemon's engine: keeps every registered domain's
 * certificate valid, from one loop thread.
 *
 * A job is one domain being worked on:
 *
 *   due (store) --> PREFLIGHT (DNS, on the loop) --> KEYGEN (thread pool)
 *        |            not pointing at us: tokens back, DNS_PENDING with
 *        |            the answer seen, re-checked with backoff
 *        |        --> ORDER (acme_order on the loop)
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
 * DNS-01 (wildcards, and domains registered with challenge "dns-01"): no
 * pre-flight (the name need not point at us), and the order's publish goes
 * to engine_dns01.c, which answers later (ACME_PUBLISH_PENDING) once every
 * authoritative server serves the TXT record; the job then kicks its task.
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
#include "engine/engine_ari_poll.h"
#include "store/store.h"
#include "util/util.h"

#define DUE_BATCH 256
/* renewalInfo fetches in flight at once (they share the CA connections
 * with the orders; each is one small GET). */
#define ARI_IN_FLIGHT 16
/* Buckets that have refilled are dropped from memory this often. */
#define GC_EVERY_MS ENGINE_MIN_MS
/* A STATUS= line for the service manager at most this often: it counts
 * the domains per state in the store, which costs a scan. */
#define STATUS_EVERY_MS 5000

struct job;

/* A name whose renewal was decided without a window in the store (the
 * renewalInfo fetch failed and the lifetime rule says now): renew it
 * without asking again. Memory only: after a restart we simply ask. */
struct go_name {
	struct go_name *next;
	char name[NAME_MAX_LEN + 1];
};

struct engine_daemon {
	struct engine_daemon_opts o;
	struct engine_session s;
	struct store *st;
	struct engine_chall *chall;
	struct acme_challenge_hooks chall_hooks; /* the responder's */
	struct store *chall_st; /* the responder thread's own store handle */
	struct engine_deploy *deploy; /* hooks; NULL when none configured */
	struct engine_nginx *nginx;   /* nginx mode; NULL when off */
	struct engine_prune *prune;   /* removed domains' files */
	uv_async_t wake;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t drain_timer;
	int handles_open;
	int stopping;
	int draining;          /* SIGTERM: no new jobs, waiting for these */
	unsigned n_preflight;  /* jobs waiting for their DNS pre-flight: a
				  drain does not wait for them (no order yet) */
	int64_t next_status_ms; /* next STATUS= notification */
	int in_schedule, schedule_again; /* see schedule() */
	unsigned in_flight;
	struct job *jobs; /* in flight, doubly linked */
	struct engine_limits *lim; /* the account's ledger; loop thread only */
	struct engine_ari_poller *ari;
	struct go_name *go;
	struct engine_dns *dns;    /* pre-flight resolver, NULL when off */
	struct engine_dns01 *dns01; /* DNS-01 publisher, NULL when none */
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
	int was_dns_pending;   /* failed its last pre-flight */
	enum acme_chall_type chall; /* HTTP-01, or DNS-01 */
	enum engine_class cls;
	char regdomain[NAME_MAX_LEN + 1];
	char replaces[ACME_ARI_CERTID_MAX]; /* "" unless renewing with ARI */
	struct acme_order *order;
	struct engine_task task;
	uv_work_t work;        /* keygen, then the live/ write */
	int rc;
	struct store_cert cert; /* the new certificate while live/ is written
				   (PEMs borrowed from order and key_pem) */
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

/* ARI is on and the CA offers renewalInfo. */
static int ari_usable(const struct engine_daemon *d)
{
	const struct acme_directory *dir =
	    d->s.client ? acme_client_directory(d->s.client) : NULL;

	return d->o.ari && dir && dir->renewal_info;
}

static struct go_name **go_find(struct engine_daemon *d, const char *name)
{
	struct go_name **g;

	for (g = &d->go; *g && strcmp((*g)->name, name) != 0; g = &(*g)->next)
		;
	return g;
}

static void go_add(struct engine_daemon *d, const char *name)
{
	struct go_name *g;

	if (*go_find(d, name) || !(g = calloc(1, sizeof(*g))))
		return; /* no memory: we ask the CA once more, no harm */
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->next = d->go;
	d->go = g;
}

static void go_del(struct engine_daemon *d, const char *name)
{
	struct go_name **g = go_find(d, name), *x = *g;

	if (x) {
		*g = x->next;
		free(x);
	}
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

static int failure_slot(const struct engine_daemon_stats *st, const char *t)
{
	for (unsigned i = 0; i < st->n_failure_types; i++)
		if (strcmp(st->failures[i].type, t) == 0)
			return (int)i;
	return -1;
}

/* Count a failed order under its problem type (or the kind of error
 * when the CA sent no problem). Types we cannot use as a metric label,
 * and new ones once all slots but the last are taken, count as "other",
 * which the last slot is kept for. */
static void count_failure(struct engine_daemon *d, const struct acme_error *e)
{
	struct engine_daemon_stats *st = &d->stats;
	const char *t = e->type ? e->type : acme_errc_names[e->code];
	int i;

	if (!t || !*t || strlen(t) >= ENGINE_FAIL_TYPE_MAX ||
	    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789:._-") != strlen(t))
		t = "other";
	uv_mutex_lock(&d->stats_mu);
	st->orders_failed++;
	i = failure_slot(st, t);
	if (i < 0 && strcmp(t, "other") != 0 &&
	    st->n_failure_types >= ENGINE_FAIL_TYPES - 1)
		i = failure_slot(st, t = "other");
	if (i < 0) {
		i = (int)st->n_failure_types++;
		snprintf(st->failures[i].type, sizeof(st->failures[i].type),
			 "%s", t);
	}
	st->failures[i].n++;
	uv_mutex_unlock(&d->stats_mu);
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
	engine_ari_poller_counts(d->ari, &d->stats.ari_ok, &d->stats.ari_failed);
	d->stats.orders_period_ms =
		engine_limits_def(d->lim, ENGINE_LIMIT_ORDERS)->period_ms;
	d->stats.concurrency = d->o.concurrency;
	d->stats.draining = d->draining;
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

static void stop_now(struct engine_daemon *d, int at_once);

static void job_closed(struct engine_task *t)
{
	struct job *j = t->ctx;
	struct engine_daemon *d = j->d;

	job_free(j);
	if (d->draining && !d->stopping && d->in_flight == d->n_preflight) {
		log_info("daemon", NULL,
			 "drained: every order in flight has finished");
		stop_now(d, 0);
	}
	if (!d->stopping)
		schedule(d);
}

static void job_end(struct job *j)
{
	engine_task_close(&j->task, job_closed);
}

/* The last error's step of a renewal whose newOrder with "replaces" the
 * CA refused: the next order goes without it. */
#define REPLACES_REFUSED "newOrder-replaces"

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

	problem_from(&p, e, now);
	count_failure(d, e);
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

/* The certificate is in live/ (or there is no live/): record it, then
 * tell whoever waits for changed certificates. */
static void order_stored(struct job *j)
{
	struct engine_daemon *d = j->d;
	struct store_cert *c = &j->cert;
	int64_t now = clock_wall_ms();
	char detail[sizeof(j->replaces) + 64];

	if (store_cert_insert(d->st, c, j->order_id,
			      engine_renew_first(c->info.not_before_ms,
						 c->info.not_after_ms,
						 ari_usable(d), now,
						 engine_renew_seed(c->info.serial)),
			      now, NULL) < 0) {
		job_local_failure(j, "cannot store the certificate");
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

	j->rc = store_live_write(j->d->o.live_dir, j->name, j->cert.chain_pem,
				 j->key_pem);
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
		job_local_failure(j, why);
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
		job_local_failure(j, "the CA's certificate does not match its key");
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
		job_local_failure(j, "cannot queue the live/ write");
}

/* ---- HTTP-01: served here from memory, shared through the store ------------------ */

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
	d->chall_hooks.unpublish(d->chall_hooks.ctx, type, domain, token);
	store_challenge_delete(d->st, token);
}

/* On the responder's thread, for a token this process does not serve. */
static int chall_lookup(void *ctx, const char *token, char *out, size_t sz)
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
static int job_publish(void *ctx, enum acme_chall_type type,
		       const char *domain, const char *token,
		       const char *key_auth)
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
 * registered with challenge dns-01; acme.challenge otherwise. */
static enum acme_chall_type chall_for(const struct engine_daemon *d,
				      const struct store_domain *dom)
{
	return dom->name[0] == '*' || strcmp(dom->challenge, "dns-01") == 0
		       ? ACME_CHALL_DNS01
		       : d->o.chall;
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

/* ---- PREFLIGHT (DNS on the loop) ------------------------------------------------ */

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

	job_refund(j);
	if (store_domain_get(d->st, j->name, &dom) < 0 ||
	    dom.status == STORE_DOMAIN_REMOVED) {
		job_end(j); /* removed meanwhile: nothing to schedule */
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
	    sj.failures, now, d->o.backoff_max_ms, rnd64());
	sj.error = &p;
	if (store_domain_set_job(d->st, j->name, &sj, now) < 0)
		log_error("daemon", j->name, "cannot update the store: %s",
			  store_errmsg(d->st));
	time_str(sj.next_attempt_ms, when, sizeof(when));
	if (!same) {
		store_event_append(d->st, j->name, now, "dns-pending", why);
		log_info("daemon", j->name, "not ordering: %s (checking again "
			 "at %s)", why, when);
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
		job_refund(j);
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
		store_event_append(d->st, j->name, clock_wall_ms(), "dns-ok", why);
		log_info("daemon", j->name, "DNS now points at us: %s", why);
	} else {
		log_debug("daemon", j->name, "pre-flight: %s", why);
	}
	job_queue_keygen(j);
}

/* Check DNS first when the pre-flight is on; a resumed order never
 * comes here (it was checked before it was created). */
static void job_preflight(struct job *j)
{
	int rc;

	/* DNS-01 proves control of the zone, not where the name points
	 * (a wildcard points nowhere) */
	if (!j->d->dns || j->chall == ACME_CHALL_DNS01) {
		job_queue_keygen(j);
		return;
	}
	rc = engine_dns_lookup(j->d->dns, j->name, preflight_done, j);
	if (rc < 0)
		job_local_failure(j, "cannot start the DNS pre-flight");
	else
		j->d->n_preflight++;
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
 * The class of a renewal: URGENT from engine_renew_urgent_at, else EARLY
 * -- except a renewal due before half the certificate's lifetime, which
 * no renewal rule of ours (nor a normal ARI window) asks for: an operator
 * forced it (`certherd renew`, a key compromise, a changed profile) or
 * the CA's window says now (a revoked certificate), and it is served as
 * URGENT.
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

/* The CA's answer is in: look again now (a renewal goes to the ledger at
 * the next pass), or let the next fetch run. */
static void ari_done(void *ctx, const char *name, int renew_now)
{
	struct engine_daemon *d = ctx;

	if (renew_now)
		go_add(d, name);
	if (!d->stopping)
		engine_daemon_wake(d);
}

/* Is a job for name in flight? (At most acme.concurrency of them.) */
static int job_running(const struct engine_daemon *d, const char *name)
{
	for (const struct job *j = d->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return 1;
	return 0;
}

/*
 * A due domain: 1 to queue it for an order, with its class in *cls; 0
 * when it needs no order now: its due time was a renewalInfo fetch (handed
 * to the poller, or left due while the poller is full), or, for a
 * certificate ARI cannot name, a time before its lifetime renewal time
 * (then moved to that time).
 */
static int triage(struct engine_daemon *d, const struct store_due *due,
		  int64_t now, enum engine_class *cls)
{
	struct store_cert c = {0};
	struct store_domain dom;
	struct engine_ari_window w;
	int64_t nb, na, at;
	uint64_t seed;
	int rc, queue = 1;

	*cls = due_class(due, now);
	if ((due->status == STORE_DOMAIN_ISSUING ||
	     due->status == STORE_DOMAIN_RENEWING) &&
	    job_running(d, due->name)) {
		/* Made due while its order runs (`certherd renew`): that
		 * order's end schedules it; never two orders at once. */
		if (store_domain_get(d->st, due->name, &dom) == 0)
			store_domain_reschedule(d->st, &dom, STORE_NO_TIME, now);
		return 0;
	}
	/* Only a valid certificate under ARI needs a look at its row (the
	 * window, the serial): everything else is decided by the due row. */
	if (due->not_after_ms == STORE_NO_TIME ||
	    due->status != STORE_DOMAIN_VALID || !ari_usable(d) ||
	    *go_find(d, due->name) ||
	    store_cert_current(d->st, due->name, &c) < 0)
		return 1;
	nb = c.info.not_before_ms;
	na = c.info.not_after_ms;
	seed = engine_renew_seed(c.info.serial);
	w.start_ms = c.info.ari_start_ms;
	w.end_ms = c.info.ari_end_ms;
	if (engine_renew_due(nb, na, w.start_ms == STORE_NO_TIME ? NULL : &w,
			     1, now, seed) == ENGINE_DUE_RENEW)
		goto out;
	rc = store_domain_get(d->st, due->name, &dom);
	if (rc == 0)
		rc = engine_ari_poller_start(d->ari, &dom, &c, now);
	if (rc != -ENOTSUP) {
		queue = 0; /* asking, or ask at a later pass */
		goto out;
	}
	/* ARI cannot name this certificate: the lifetime rule alone. */
	at = engine_renew_at(nb, na, NULL, now, seed);
	if (at > now) {
		store_domain_reschedule(d->st, &dom, at, now);
		queue = 0;
	}
out:
	store_cert_clear(&c);
	return queue;
}

/* The identifier of name's current certificate for "replaces", or ""
 * (no ARI, no certificate, or the CA refused it last time). */
static void replaces_for(struct engine_daemon *d, const struct store_domain *dom,
			 char *out, size_t sz)
{
	struct store_cert c = {0};
	unsigned char *der = NULL;
	size_t len;

	out[0] = '\0';
	if (!ari_usable(d) ||
	    (dom->has_error &&
	     strcmp(dom->last_error.step, REPLACES_REFUSED) == 0) ||
	    store_cert_current(d->st, dom->name, &c) < 0)
		return;
	if (c.chain_pem &&
	    x509_pem_to_der(c.chain_pem, strlen(c.chain_pem), &der, &len) == 0 &&
	    acme_ari_certid(der, len, out, sz) < 0)
		out[0] = '\0';
	free(der);
	store_cert_clear(&c);
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
	if (j->renewing)
		replaces_for(d, &dom, j->replaces, sizeof(j->replaces));
	go_del(d, due->name);
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
	j->was_dns_pending = dom.status == STORE_DOMAIN_DNS_PENDING;
	j->charged = 1; /* from here on job_local_failure refunds */
	j->chall = chall_for(d, &dom);
	if (j->chall == ACME_CHALL_DNS01 &&
	    !engine_dns01_covers(d->dns01, j->name)) {
		/* no order for what cannot be published */
		job_local_failure(j, "DNS-01 needed, but no [dns \"ZONE\"] "
				     "section covers this name");
		return 0;
	}
	job_preflight(j); /* then keygen, unless DNS says no */
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
	if (store_domain_reschedule(d->st, &dom, at, now) < 0) {
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

/* STATUS= for `systemctl status`: domains per state, orders in flight,
 * held back. At most every STATUS_EVERY_MS unless forced (a drain
 * begins); nothing at all without a service manager listening. */
static void notify_status(struct engine_daemon *d, int64_t now, int force)
{
	uint64_t c[STORE_DOMAIN__MAX];
	uint64_t total = 0;

	if (!engine_notify_enabled() || (!force && now < d->next_status_ms))
		return;
	d->next_status_ms = now + STATUS_EVERY_MS;
	if (store_domain_count(d->st, c) < 0)
		return;
	for (int i = 0; i < STORE_DOMAIN__MAX; i++)
		if (i != STORE_DOMAIN_REMOVED)
			total += c[i];
	engine_notify_status(
		"%s%llu domains: %llu valid, %llu pending, %llu issuing, "
		"%llu renewing, %llu failed; %u orders in flight, %u held by "
		"rate limits",
		d->draining ? "draining: " : "", (unsigned long long)total,
		(unsigned long long)c[STORE_DOMAIN_VALID],
		(unsigned long long)(c[STORE_DOMAIN_PENDING] +
				     c[STORE_DOMAIN_DNS_PENDING]),
		(unsigned long long)c[STORE_DOMAIN_ISSUING],
		(unsigned long long)c[STORE_DOMAIN_RENEWING],
		(unsigned long long)c[STORE_DOMAIN_FAILED], d->in_flight,
		d->held);
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
		/* challenges a crash left behind (ours or another node's) */
		store_challenge_expire(d->st, now);
		d->next_gc_ms = now + GC_EVERY_MS;
	}
	if (d->stopping || d->draining || d->in_flight >= d->o.concurrency)
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
		if (!triage(d, &due[i], now, &cls[i]))
			continue; /* not in the queue: neither started nor held */
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
	notify_status(d, now, 0);
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
	struct engine_daemon *d = a->data;

	engine_nginx_poke(d->nginx); /* a domain added or removed */
	schedule(d);
}

void engine_daemon_wake(struct engine_daemon *d)
{
	uv_async_send(&d->wake);
}

/* ---- signals: reload, drain, stop ------------------------------------------- */

/* How long a stop waits for the hooks' last batch (docs/daemon.md). */
#define DEPLOY_STOP_MS 5000

static void stop_loop(void *ctx)
{
	struct engine_daemon *d = ctx;

	uv_stop(&d->s.loop);
}

/* Stop the loop: after the hooks' pending batch (a few seconds at most),
 * or at once (a second signal). */
static void stop_now(struct engine_daemon *d, int at_once)
{
	if (d->stopping) {
		if (at_once)
			uv_stop(&d->s.loop);
		return;
	}
	if (!d->draining)
		engine_notify_stopping();
	d->stopping = 1;
	if (!at_once &&
	    engine_deploy_flush(d->deploy, DEPLOY_STOP_MS, stop_loop, d))
		return;
	uv_stop(&d->s.loop);
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct engine_daemon *d = t->data;

	log_warn("daemon", NULL,
		 "drain time is up: %u orders still in flight resume at the "
		 "next start",
		 d->in_flight);
	stop_now(d, 0);
}

/*
 * The first SIGTERM/SIGINT drains: schedule_pass starts nothing more
 * (jobs already past key generation go on, as do resumed orders), the
 * jobs in flight may finish until drain_ms, and the last one to end stops
 * the loop (job_closed), after the hooks' pending batch. What the timer
 * cuts off stays pending in the store and resumes at the next start, as
 * after a crash. A second signal stops at once.
 */
static void drain(struct engine_daemon *d, int signum)
{
	int again = d->draining || d->stopping;

	if (again || d->in_flight == d->n_preflight || d->o.drain_ms <= 0) {
		log_info("daemon", NULL,
			 "stopping on signal %d: %u orders in flight resume "
			 "at the next start%s",
			 signum, d->in_flight,
			 again ? " (second signal: not waiting)" : "");
		stop_now(d, again);
		return;
	}
	d->draining = 1;
	engine_notify_stopping();
	log_info("daemon", NULL,
		 "draining on signal %d: no new orders; waiting up to %lld ms "
		 "for the %u in flight (signal again to stop at once)",
		 signum, (long long)d->o.drain_ms, d->in_flight - d->n_preflight);
	uv_timer_start(&d->drain_timer, on_drain_timeout,
		       (uint64_t)d->o.drain_ms, 0);
	publish_stats(d, clock_wall_ms());
	notify_status(d, clock_wall_ms(), 1);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct engine_daemon *d = s->data;

	if (signum != SIGHUP) {
		drain(d, signum);
		return;
	}
	engine_notify_reloading();
	engine_nginx_poke(d->nginx); /* re-read nginx.template */
	if (d->o.reload)
		d->o.reload(d, d->o.reload_ctx);
	else
		log_info("daemon", NULL, "SIGHUP: no configuration to reload");
	engine_notify_ready();
	notify_status(d, clock_wall_ms(), 1);
}

int engine_daemon_reconfigure(struct engine_daemon *d,
			      const struct engine_daemon_opts *n, char *err,
			      size_t errsz)
{
	/* Check everything first: a reload applies entirely or not at all. */
	for (int k = 0; n->limits && k < ENGINE_LIMIT__MAX; k++)
		if (n->limits[k].capacity > 0 && n->limits[k].period_ms <= 0) {
			snprintf(err, errsz, "bad rate limit for %s",
				 engine_limit_names[k]);
			return -EINVAL;
		}
	d->o.concurrency = n->concurrency ? n->concurrency : 100;
	d->o.http_redirect = n->http_redirect;
	engine_chall_set_redirect(d->chall, n->http_redirect);
	for (int k = 0; n->limits && k < ENGINE_LIMIT__MAX; k++) {
		int was_on = limit_on(d, (enum engine_limit)k);

		engine_limits_set(d->lim, (enum engine_limit)k, &n->limits[k]);
		/* Turned on: the account's bucket as last saved, not full
		 * (a domain's own are loaded when it is due). */
		if (!was_on && k == ENGINE_LIMIT_ORDERS)
			bucket_load(d, ENGINE_LIMIT_ORDERS, "");
	}
	d->o.backoff_max_ms = n->backoff_max_ms;
	/* A drain under way keeps the deadline it announced. */
	d->o.drain_ms = n->drain_ms;
	/* A raised concurrency or a larger bucket can start work now. */
	publish_stats(d, clock_wall_ms());
	schedule(d);
	return 0;
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
			j->chall = chall_for(d, &dom);
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
			struct store_job sj = {0};

			snprintf(after, sizeof(after), "%.*s", (int)sizeof(after) - 1,
				 doms[i].name);
			if (job_running(d, doms[i].name))
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
	rc = store_open(o->state_dir, &d->chall_st, err, errsz);
	if (rc < 0)
		goto fail;
	d->chall = engine_chall_new(o->http_listen, o->http_redirect,
				    chall_lookup, d, err, errsz);
	if (!d->chall) {
		rc = -EADDRINUSE;
		goto fail;
	}
	d->chall_hooks = engine_chall_hooks(d->chall);
	rc = engine_session_open(&d->s, &o->acct, 1, err, errsz);
	if (rc < 0)
		goto fail;
	d->ari = engine_ari_poller_new(&d->s, d->st, ARI_IN_FLIGHT, ari_done, d);
	if (!d->ari) {
		rc = -ENOMEM;
		goto fail;
	}
	{
		struct engine_deploy_opts dop = {
			.command = o->deploy_cmd,
			.webhook = o->webhook_url,
			.batch_ms = o->hooks_batch_ms,
			.timeout_ms = o->hooks_timeout_ms,
			.state_dir = o->state_dir,
			.live_dir = o->live_dir,
		};
		rc = engine_deploy_new(&d->s.loop, d->st, &dop, &d->deploy, err,
				       errsz);
		if (rc < 0)
			goto fail;
	}
	if (o->nginx) {
		rc = engine_nginx_new(&d->s.loop, d->st, o->nginx, &d->nginx,
				      err, errsz);
		if (rc < 0)
			goto fail;
	}
	if (o->live_dir && o->keep_removed_ms > 0 &&
	    !(d->prune = engine_prune_new(&d->s.loop, d->st, o->live_dir,
					  o->keep_removed_ms))) {
		rc = -ENOMEM;
		goto fail;
	}
	uv_async_init(&d->s.loop, &d->wake, on_wake);
	d->wake.data = d;
	uv_timer_init(&d->s.loop, &d->tick);
	d->tick.data = d;
	uv_signal_init(&d->s.loop, &d->sigterm);
	uv_signal_init(&d->s.loop, &d->sigint);
	uv_signal_init(&d->s.loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	uv_timer_init(&d->s.loop, &d->drain_timer);
	d->drain_timer.data = d;
	d->handles_open = 1;
	if (o->dns01) {
		rc = engine_dns01_new(&d->s.loop, o->dns01, &d->dns01, err,
				      errsz);
		if (rc < 0)
			goto fail;
		log_info("daemon", NULL, "DNS-01: %zu zone%s", o->dns01->n_zones,
			 o->dns01->n_zones == 1 ? "" : "s");
	}
	d->o.dns01 = NULL; /* copied: the caller's may go */
	if (o->preflight) {
		d->dns = engine_dns_new(&d->s.loop, o->preflight_resolver, 0,
					err, errsz);
		if (!d->dns) {
			rc = -EINVAL;
			goto fail;
		}
		log_info("daemon", NULL,
			 "DNS pre-flight on: resolver %s, %zu addresses of ours",
			 o->preflight_resolver ? o->preflight_resolver
					       : "from /etc/resolv.conf",
			 o->n_preflight_addrs);
	}
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
		uv_close((uv_handle_t *)&d->drain_timer, NULL);
	}
	/* Jobs still in flight are abandoned here; their orders stay
	 * pending in the store and resume at the next start. */
	d->stopping = 1;
	engine_dns_free(d->dns); /* before the loop closes: its handles */
	d->dns = NULL;
	/* hooks killed, records left logged; jobs freed below withdraw
	 * nothing more (job_unpublish sees NULL) */
	engine_dns01_free(d->dns01);
	d->dns01 = NULL;
	engine_deploy_free(d->deploy); /* its handles close with the loop's */
	d->deploy = NULL;
	engine_nginx_free(d->nginx);
	d->nginx = NULL;
	engine_prune_free(d->prune);
	d->prune = NULL;
	engine_session_close(&d->s);
	while (d->jobs) {
		d->jobs->task.closing = 1;
		job_free(d->jobs);
	}
	engine_ari_poller_free(d->ari);
	while (d->go)
		go_del(d, d->go->name);
	engine_chall_free(d->chall); /* stops its thread: chall_st is ours */
	store_close(d->chall_st);
	store_close(d->st);
	engine_limits_free(d->lim);
	if (d->stats_mu_ok)
		uv_mutex_destroy(&d->stats_mu);
	free(d);
}
