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
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/engine_daemon_internal.h"

/* Jitter for the renewal policy (which takes randomness as input). */
uint64_t engine__rnd64(void)
{
	uint64_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint64_t)clock_mono_ms() * 0x9E3779B97F4A7C15ull;
	return r;
}

/* ARI is on and the CA offers renewalInfo. */
int engine__ari_usable(const struct engine_daemon *d)
{
	const struct acme_directory *dir =
	    d->s.client ? acme_client_directory(d->s.client) : NULL;

	return d->o.ari && dir && dir->renewal_info;
}

/* "2025-01-02T03:04:05Z" for messages. */
void engine__time_str(int64_t ms, char *buf, size_t sz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, sz, "%lld ms", (long long)ms);
}

void engine__problem_from(struct store_problem *p, const struct acme_error *e,
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
void engine__count_failure(struct engine_daemon *d, const struct acme_error *e)
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

void engine__publish_stats(struct engine_daemon *d, int64_t now)
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
	engine_ari_poller_counts(d->ari, &d->stats.ari_ok,
				 &d->stats.ari_failed);
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

/* STATUS= for `systemctl status`: domains per state, orders in flight,
 * held back. At most every STATUS_EVERY_MS unless forced (a drain
 * begins); nothing at all without a service manager listening. */
void engine__notify_status(struct engine_daemon *d, int64_t now, int force)
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
	    (unsigned long long)c[STORE_DOMAIN_FAILED], d->in_flight, d->held);
}

static void on_tick(uv_timer_t *t)
{
	engine__schedule(t->data);
}

static void on_wake(uv_async_t *a)
{
	struct engine_daemon *d = a->data;

	engine_nginx_poke(d->nginx); /* a domain added or removed */
	engine__schedule(d);
}

void engine_daemon_wake(struct engine_daemon *d)
{
	uv_async_send(&d->wake);
}

/* ---- signals: reload, drain, stop ---------------------------------------- */

/* How long a stop waits for the hooks' last batch (docs/daemon.md). */
#define DEPLOY_STOP_MS 5000

static void stop_loop(void *ctx)
{
	struct engine_daemon *d = ctx;

	uv_stop(&d->s.loop);
}

/* Stop the loop: after the hooks' pending batch (a few seconds at most),
 * or at once (a second signal). */
void engine__stop_now(struct engine_daemon *d, int at_once)
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
	engine__stop_now(d, 0);
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

	if (d->o.draining)
		d->o.draining(d->o.draining_ctx, again ? 0 : d->o.drain_ms);
	if (again || d->in_flight == d->n_preflight || d->o.drain_ms <= 0) {
		log_info("daemon", NULL,
			 "stopping on signal %d: %u orders in flight resume "
			 "at the next start%s",
			 signum, d->in_flight,
			 again ? " (second signal: not waiting)" : "");
		engine__stop_now(d, again);
		return;
	}
	d->draining = 1;
	engine_notify_stopping();
	log_info("daemon", NULL,
		 "draining on signal %d: no new orders; waiting up to %lld ms "
		 "for the %u in flight (signal again to stop at once)",
		 signum, (long long)d->o.drain_ms,
		 d->in_flight - d->n_preflight);
	uv_timer_start(&d->drain_timer, on_drain_timeout,
		       (uint64_t)d->o.drain_ms, 0);
	engine__publish_stats(d, clock_wall_ms());
	engine__notify_status(d, clock_wall_ms(), 1);
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
	engine__notify_status(d, clock_wall_ms(), 1);
}

int engine_daemon_check_live(const struct engine_daemon_opts *n, char *err,
			     size_t errsz)
{
	for (int k = 0; n->limits && k < ENGINE_LIMIT__MAX; k++)
		if (n->limits[k].capacity > 0 && n->limits[k].period_ms <= 0) {
			snprintf(err, errsz, "bad rate limit for %s",
				 engine_limit_names[k]);
			return -EINVAL;
		}
	return 0;
}

int engine_daemon_reconfigure(struct engine_daemon *d,
			      const struct engine_daemon_opts *n, char *err,
			      size_t errsz)
{
	/* Check everything first: a reload applies entirely or not at all. */
	int rc = engine_daemon_check_live(n, err, errsz);

	if (rc < 0)
		return rc;
	d->o.concurrency = n->concurrency ? n->concurrency : 100;
	d->o.http_redirect = n->http_redirect;
	if (d->chall)
		engine_chall_set_redirect(d->chall, n->http_redirect);
	for (int k = 0; n->limits && k < ENGINE_LIMIT__MAX; k++) {
		int was_on = engine__limit_on(d, (enum engine_limit)k);

		engine_limits_set(d->lim, (enum engine_limit)k, &n->limits[k]);
		/* Turned on: the account's bucket as last saved, not full
		 * (a domain's own are loaded when it is due). */
		if (!was_on && k == ENGINE_LIMIT_ORDERS)
			engine__bucket_load(d, ENGINE_LIMIT_ORDERS, "");
	}
	d->o.backoff_max_ms = n->backoff_max_ms;
	/* A drain under way keeps the deadline it announced. */
	d->o.drain_ms = n->drain_ms;
	/* A raised concurrency or a larger bucket can start work now. */
	engine__publish_stats(d, clock_wall_ms());
	engine__schedule(d);
	return 0;
}

/* ---- start-up: resume what a crash or stop left -------------------------- */

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
				j = engine__job_new(d, o->domain);
			if (!j) {
				store_order_finish(d->st, o->id,
						   STORE_ORDER_INVALID,
						   clock_wall_ms());
				store_order_clear(o);
				continue;
			}
			j->renewing = dom.status == STORE_DOMAIN_RENEWING ||
				      dom.status == STORE_DOMAIN_VALID;
			j->chall = engine__chall_for(d, &dom);
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
				engine__job_local_failure(
				    j, "the stored order key "
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
			engine__job_queue_keygen(
			    j); /* CSR from the stored key */
		}
	} while (n == 64);
	return resumed;
}

/* Domains left ISSUING/RENEWING with no job (crash between the job
 * update and the order record) become due again. */
static void reschedule_orphans(struct engine_daemon *d)
{
	struct store_domain_filter f = {
	    .status_mask =
		(1u << STORE_DOMAIN_ISSUING) | (1u << STORE_DOMAIN_RENEWING),
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

			snprintf(after, sizeof(after), "%.*s",
				 (int)sizeof(after) - 1, doms[i].name);
			if (engine__job_running(d, doms[i].name))
				continue;
			sj.status = doms[i].status == STORE_DOMAIN_RENEWING
					? STORE_DOMAIN_VALID
					: STORE_DOMAIN_PENDING;
			sj.next_attempt_ms = now;
			sj.failures = doms[i].failures;
			sj.error =
			    doms[i].has_error ? &doms[i].last_error : NULL;
			store_domain_set_job(d->st, doms[i].name, &sj, now);
		}
	} while (n == 256);
}

/* ---- open / run / close -------------------------------------------------- */

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
	engine__bucket_load(d, ENGINE_LIMIT_ORDERS, "");
	engine__publish_stats(d, clock_wall_ms());
	rc = store_open(o->state_dir, &d->chall_st, err, errsz);
	if (rc < 0)
		goto fail;
	/* No http.listen: no HTTP-01 (DNS-01 or TLS-ALPN-01 validate). */
	if (o->http_listen) {
		d->chall =
		    engine_chall_new(o->http_listen, o->http_redirect,
				     engine__chall_lookup, d, err, errsz);
		if (!d->chall) {
			rc = -EADDRINUSE;
			goto fail;
		}
		d->chall_hooks = engine_chall_hooks(d->chall);
	}
	rc = engine_session_open(&d->s, &o->acct, 1, err, errsz);
	if (rc < 0)
		goto fail;
	d->ari = engine_ari_poller_new(&d->s, d->st, ARI_IN_FLIGHT,
				       engine__ari_done, d);
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
		log_info("daemon", NULL, "DNS-01: %zu zone%s",
			 o->dns01->n_zones, o->dns01->n_zones == 1 ? "" : "s");
	}
	d->o.dns01 = NULL; /* copied: the caller's may go */
	if (o->preflight) {
		d->dns = engine_dns_new(&d->s.loop, o->preflight_resolver, 0,
					err, errsz);
		if (!d->dns) {
			rc = -EINVAL;
			goto fail;
		}
		log_info(
		    "daemon", NULL,
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
	log_info("daemon", NULL,
		 "running: %d orders resumed, up to %u in flight",
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
		engine__job_free(d->jobs);
	}
	engine_ari_poller_free(d->ari);
	while (d->go)
		engine__go_del(d, d->go->name);
	engine_chall_free(d->chall); /* stops its thread: chall_st is ours */
	store_close(d->chall_st);
	store_close(d->st);
	engine_limits_free(d->lim);
	if (d->stats_mu_ok)
		uv_mutex_destroy(&d->stats_mu);
	free(d);
}
