/*
 * demand — the decider thread of on-demand issuance (see demand.h).
 *
 * A worker asks demand_check from a ClientHello callback; the answer comes
 * from the table (demand_table.c) under a mutex. A name not known yet is
 * queued, and this thread decides it:
 *
 *   registered in the store (not removed)?
 *     failed for good, or its next attempt beyond on_demand.wait -> DENIED
 *     otherwise                                  -> WAITING (no new order:
 *                                                   the daemon has it)
 *   not registered: on_demand.ask set?
 *     no                                         -> DENIED
 *     yes: GET ask?domain=NAME
 *       2xx and within both budgets  -> registered in the store, the
 *                                       daemon woken            -> WAITING
 *       2xx over a budget                                       -> DENIED
 *       other status                                            -> DENIED
 *       no answer, 5xx                                          -> DENIED
 *                                                       (for ERROR_TTL_MS)
 *
 * After each round of decisions, and every second while names wait, the
 * front is woken so paused handshakes look again: the refused get their
 * alert, the waiting pause again, and those whose certificate was stored
 * meanwhile (demand_issued) load it and go on.
 *
 * Budgets are token buckets (engine_limits: the ORDERS row is the overall
 * budget, REGDOMAIN the per registered domain one, both per hour), in
 * memory only: a restart starts them full. Only names approved by ask are
 * charged; registered names were allowed by the platform already.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demand/demand.h"
#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

#define MAX_PENDING   1024	       /* names being decided at once */
#define MAX_SETTLED   65536	       /* decisions remembered */
#define BATCH	      64	       /* names taken per round */
#define DENY_TTL_MS   (10 * 60 * 1000) /* ask said no; not registered */
#define ERROR_TTL_MS  (30 * 1000)      /* ask failed: try again soon */
#define BUDGET_TTL_MS (60 * 1000)      /* over a budget */
#define FAILED_TTL_MS                                                          \
	(60 * 1000)			/* its order failed, or it is not      \
					   due within the wait */
#define WAIT_TTL_MS    (10 * 60 * 1000) /* allowed: looked at again after */
#define RETRY_EVERY_MS 1000		/* wake the front while names wait */
#define WARN_EVERY_MS  (60 * 1000)	/* repeated warnings, at most */
#define HOUR_MS	       (60 * 60 * 1000)

struct demand {
	struct demand_opts o;
	char challenge[16];
	pthread_mutex_t mu;
	pthread_t th;
	int started, stop;
	struct demand_table *t;
	struct demand_asker *asker;
	struct store *st; /* the thread's own handle */
	struct engine_limits *lim;
	struct demand_stats stats;
	int disabled; /* on_demand.enabled turned off by a reload */
	int decided; /* this round settled something */
	int64_t next_retry_ms;
	int64_t warn_ask_ms, warn_budget_ms;
	uint64_t quiet_ask, quiet_budget; /* warnings not logged since */
};

/* Under mu. */
static void settle(struct demand *dm, const char *name, enum demand_state s,
		   int64_t ttl_ms)
{
	if (demand_table_settle(dm->t, name, s, clock_mono_ms() + ttl_ms) < 0)
		log_error("on-demand", name, "out of memory in the table");
	dm->decided = 1;
}

/* A warning that a flood could repeat: the first one, then at most one
 * per WARN_EVERY_MS with how many were not logged. Under mu. */
static int warn_now(int64_t *next_ms, uint64_t *quiet, uint64_t *skipped)
{
	int64_t now = clock_mono_ms();

	if (now < *next_ms) {
		(*quiet)++;
		return 0;
	}
	*next_ms = now + WARN_EVERY_MS;
	*skipped = *quiet;
	*quiet = 0;
	return 1;
}

/* ask said yes: within the budgets, register name. Under mu. */
static void approve(struct demand *dm, const char *name)
{
	char reg[DEMAND_NAME_MAX + 1];
	int64_t now = clock_mono_ms(), wall = clock_wall_ms();
	uint64_t skipped;
	int rc;

	if (engine_limits_regdomain(name, reg, sizeof(reg)) < 0)
		snprintf(reg, sizeof(reg), "%s", name);
	if (dm->o.budget_per_hour <= 0 || dm->o.budget_per_domain <= 0 ||
	    !engine_limits_can(dm->lim, ENGINE_LIMIT_ORDERS, "", 1, now) ||
	    !engine_limits_can(dm->lim, ENGINE_LIMIT_REGDOMAIN, reg, 1, now)) {
		dm->stats.budget++;
		if (warn_now(&dm->warn_budget_ms, &dm->quiet_budget, &skipped))
			log_warn("on-demand", name,
				 "allowed by ask but refused: the on-demand "
				 "budget (on_demand.budget_per_hour %ld, "
				 "budget_per_domain %ld for %s) is spent "
				 "(%llu more refused since the last warning)",
				 dm->o.budget_per_hour, dm->o.budget_per_domain,
				 reg, (unsigned long long)skipped);
		settle(dm, name, DEMAND_DENIED, BUDGET_TTL_MS);
		return;
	}
	rc = store_domain_add(dm->st, name, dm->challenge, wall);
	if (rc < 0) {
		log_error("on-demand", name, "cannot register: %s",
			  store_errmsg(dm->st));
		dm->stats.ask_errors++;
		settle(dm, name, DEMAND_DENIED, ERROR_TTL_MS);
		return;
	}
	engine_limits_take(dm->lim, ENGINE_LIMIT_ORDERS, "", 1, now);
	engine_limits_take(dm->lim, ENGINE_LIMIT_REGDOMAIN, reg, 1, now);
	store_event_append(dm->st, name, wall, "on-demand",
			   "allowed by on_demand.ask at a TLS handshake");
	dm->stats.approved++;
	log_info("on-demand", name, "allowed by ask: registered for issuance");
	settle(dm, name, DEMAND_WAITING, WAIT_TTL_MS);
	if (dm->o.registered)
		dm->o.registered(dm->o.ctx);
}

static void ask_done(void *ctx, const char *name, long status, const char *why)
{
	struct demand *dm = ctx;
	uint64_t skipped;

	pthread_mutex_lock(&dm->mu);
	if (status >= 200 && status < 300) {
		approve(dm, name);
	} else if (status == 0 || status >= 500) {
		dm->stats.ask_errors++;
		if (warn_now(&dm->warn_ask_ms, &dm->quiet_ask, &skipped)) {
			char st[32];

			snprintf(st, sizeof(st), "HTTP status %ld", status);
			log_warn("on-demand", name,
				 "on_demand.ask failed: %s; refused for now "
				 "(%llu more failures since the last warning)",
				 status ? st : why,
				 (unsigned long long)skipped);
		}
		settle(dm, name, DEMAND_DENIED, ERROR_TTL_MS);
	} else {
		dm->stats.denied++;
		log_debug("on-demand", name, "not allowed by ask (HTTP %ld)",
			  status);
		settle(dm, name, DEMAND_DENIED, DENY_TTL_MS);
	}
	pthread_mutex_unlock(&dm->mu);
}

/* Decide name from the store, or start its ask. No lock held. */
static void decide(struct demand *dm, const char *name)
{
	struct store_domain dom;
	int64_t wall = clock_wall_ms(), wait_ms;
	enum demand_state s = DEMAND_DENIED;
	int64_t ttl = DENY_TTL_MS;
	int rc = store_domain_get(dm->st, name, &dom);

	pthread_mutex_lock(&dm->mu);
	wait_ms = dm->o.wait_ms; /* a reload may change it */
	pthread_mutex_unlock(&dm->mu);
	if (rc == 0 && dom.status != STORE_DOMAIN_REMOVED) {
		if (dom.status == STORE_DOMAIN_FAILED ||
		    (dom.next_attempt_ms != STORE_NO_TIME &&
		     dom.next_attempt_ms > wall + wait_ms)) {
			log_debug("on-demand", name,
				  "registered but not due within the wait");
			ttl = FAILED_TTL_MS;
		} else {
			s = DEMAND_WAITING;
			ttl = WAIT_TTL_MS;
		}
		pthread_mutex_lock(&dm->mu);
		if (s == DEMAND_WAITING)
			dm->stats.registered++;
		else
			dm->stats.failed++;
		settle(dm, name, s, ttl);
		pthread_mutex_unlock(&dm->mu);
		return;
	}
	if (rc < 0 && rc != -ENOENT && rc != -EINVAL) {
		log_warn("on-demand", name, "cannot read the store: %s",
			 store_errmsg(dm->st));
		ttl = ERROR_TTL_MS;
	}
	pthread_mutex_lock(&dm->mu);
	if (ttl == DENY_TTL_MS) {
		rc = demand_asker_start(dm->asker, name);
		if (rc == 0) {
			dm->stats.asks++;
			pthread_mutex_unlock(&dm->mu);
			return;
		}
		if (rc != -ENOTSUP) {
			ttl = ERROR_TTL_MS;
			dm->stats.ask_errors++;
		} else {
			dm->stats.denied++; /* no ask: registered names only */
		}
	} else {
		dm->stats.ask_errors++;
	}
	settle(dm, name, DEMAND_DENIED, ttl);
	pthread_mutex_unlock(&dm->mu);
}

static void *demand_main(void *arg)
{
	struct demand *dm = arg;
	char(*names)[DEMAND_NAME_MAX + 1] = calloc(BATCH, sizeof(*names));

	if (!names) {
		log_error("on-demand", NULL, "out of memory: nothing decided");
		return NULL;
	}
	for (;;) {
		size_t n = 0, room;
		int wake = 0, more;
		int64_t now;

		pthread_mutex_lock(&dm->mu);
		if (dm->stop) {
			pthread_mutex_unlock(&dm->mu);
			break;
		}
		/* names that may need an ask are taken only while there is
		 * room for their asks: the others wait in the queue (and
		 * the queue's bound refuses the excess at the door) */
		room = DEMAND_ASK_MAX - demand_asker_active(dm->asker);
		while (n < BATCH && n < room &&
		       demand_table_take(dm->t, names[n]))
			n++;
		pthread_mutex_unlock(&dm->mu);
		for (size_t i = 0; i < n; i++)
			decide(dm, names[i]);
		pthread_mutex_lock(&dm->mu);
		more = demand_table_count(dm->t, DEMAND_QUEUED) > 0 &&
		       demand_asker_active(dm->asker) < DEMAND_ASK_MAX;
		pthread_mutex_unlock(&dm->mu);
		if (demand_asker_poll(dm->asker, more ? 0 : RETRY_EVERY_MS,
				      ask_done, dm) < 0) {
			log_error("on-demand", NULL,
				  "libcurl failed: stopping "
				  "on-demand decisions");
			break;
		}
		now = clock_mono_ms();
		pthread_mutex_lock(&dm->mu);
		if (dm->decided || (demand_table_count(dm->t, DEMAND_WAITING) &&
				    now >= dm->next_retry_ms)) {
			wake = 1;
			dm->decided = 0;
			dm->next_retry_ms = now + RETRY_EVERY_MS;
		}
		pthread_mutex_unlock(&dm->mu);
		if (wake && dm->o.decided)
			dm->o.decided(dm->o.ctx);
	}
	free(names);
	return NULL;
}

int demand_start(const struct demand_opts *o, struct demand **out, char *err,
		 size_t errsz)
{
	struct engine_limit_def defs[ENGINE_LIMIT__MAX] = {0};
	struct demand *dm;
	int rc;

	*out = NULL;
	if (!o || !o->state_dir || !o->challenge) {
		snprintf(err, errsz, "on-demand: bad options");
		return -EINVAL;
	}
	dm = calloc(1, sizeof(*dm));
	if (!dm) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	dm->o = *o;
	dm->o.ask = NULL; /* held by the asker only */
	snprintf(dm->challenge, sizeof(dm->challenge), "%s", o->challenge);
	pthread_mutex_init(&dm->mu, NULL);
	/* IDENTICAL and FAILED_AUTHZ stay off (capacity 0) */
	defs[ENGINE_LIMIT_ORDERS].capacity = (double)o->budget_per_hour;
	defs[ENGINE_LIMIT_ORDERS].period_ms = HOUR_MS;
	defs[ENGINE_LIMIT_REGDOMAIN].capacity = (double)o->budget_per_domain;
	defs[ENGINE_LIMIT_REGDOMAIN].period_ms = HOUR_MS;
	defs[ENGINE_LIMIT_IDENTICAL].period_ms = HOUR_MS;
	defs[ENGINE_LIMIT_FAILED_AUTHZ].period_ms = HOUR_MS;
	dm->lim = engine_limits_new(defs);
	dm->t = demand_table_new(MAX_PENDING, MAX_SETTLED);
	dm->asker = demand_asker_new(o->ask && *o->ask ? o->ask : NULL);
	if (!dm->lim || !dm->t || !dm->asker) {
		snprintf(err, errsz, "on-demand: out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	rc = store_open(o->state_dir, &dm->st, err, errsz);
	if (rc < 0)
		goto fail;
	rc = -pthread_create(&dm->th, NULL, demand_main, dm);
	if (rc < 0) {
		snprintf(err, errsz, "on-demand: cannot start its thread: %s",
			 strerror(-rc));
		goto fail;
	}
	dm->started = 1;
	log_info("on-demand", NULL,
		 "on-demand issuance on: %s, %ld per hour, %ld per registered "
		 "domain",
		 o->ask && *o->ask ? "registered names and those ask allows"
				   : "registered names only",
		 o->budget_per_hour, o->budget_per_domain);
	*out = dm;
	return 0;
fail:
	demand_stop(dm);
	return rc;
}

void demand_stop(struct demand *dm)
{
	if (!dm)
		return;
	if (dm->started) {
		pthread_mutex_lock(&dm->mu);
		dm->stop = 1;
		pthread_mutex_unlock(&dm->mu);
		demand_asker_wakeup(dm->asker);
		pthread_join(dm->th, NULL);
	}
	demand_asker_free(dm->asker);
	store_close(dm->st);
	demand_table_free(dm->t);
	engine_limits_free(dm->lim);
	pthread_mutex_destroy(&dm->mu);
	free(dm);
}

int demand_check(struct demand *dm, const char *name)
{
	enum demand_verdict v;

	if (!dm)
		return 0;
	pthread_mutex_lock(&dm->mu);
	if (dm->disabled) {
		pthread_mutex_unlock(&dm->mu);
		return 0;
	}
	v = demand_table_check(dm->t, name, clock_mono_ms());
	if (v == DEMAND_REFUSE &&
	    demand_table_state(dm->t, name) != DEMAND_DENIED)
		dm->stats.busy++;
	pthread_mutex_unlock(&dm->mu);
	if (v == DEMAND_QUEUE)
		demand_asker_wakeup(dm->asker);
	return v != DEMAND_REFUSE;
}

int demand_reconfigure(struct demand *dm, const struct demand_opts *o,
		       int enabled)
{
	struct engine_limit_def d;
	int forget;

	if (!dm)
		return 0;
	pthread_mutex_lock(&dm->mu);
	if (demand_asker_set_base(dm->asker, o->ask) < 0) {
		pthread_mutex_unlock(&dm->mu);
		return -ENOMEM;
	}
	/* a denial by the old ask, or made while off, may not hold now:
	 * the ask is called again. (Whether ask changed is the caller's to
	 * know: the URL is a secret we do not keep apart from the asker.) */
	forget = o->ask_changed || (dm->disabled && enabled);
	if (forget)
		demand_table_forget_denied(dm->t);
	dm->disabled = !enabled;
	dm->o.budget_per_hour = o->budget_per_hour;
	dm->o.budget_per_domain = o->budget_per_domain;
	dm->o.wait_ms = o->wait_ms;
	d = *engine_limits_def(dm->lim, ENGINE_LIMIT_ORDERS);
	d.capacity = (double)o->budget_per_hour;
	engine_limits_set(dm->lim, ENGINE_LIMIT_ORDERS, &d);
	d = *engine_limits_def(dm->lim, ENGINE_LIMIT_REGDOMAIN);
	d.capacity = (double)o->budget_per_domain;
	engine_limits_set(dm->lim, ENGINE_LIMIT_REGDOMAIN, &d);
	dm->decided = 1; /* paused handshakes look again */
	pthread_mutex_unlock(&dm->mu);
	demand_asker_wakeup(dm->asker);
	log_info("on-demand", NULL,
		 "on-demand issuance %s: %s, %ld per hour, %ld per registered "
		 "domain%s",
		 enabled ? "on" : "off",
		 o->ask && *o->ask ? "registered names and those ask allows"
				   : "registered names only",
		 o->budget_per_hour, o->budget_per_domain,
		 forget ? "; earlier denials forgotten" : "");
	return 0;
}

void demand_issued(struct demand *dm, const char *name)
{
	if (!dm)
		return;
	pthread_mutex_lock(&dm->mu);
	demand_table_drop(dm->t, name);
	pthread_mutex_unlock(&dm->mu);
}

void demand_failed(struct demand *dm, const char *name)
{
	int woke = 0;

	if (!dm)
		return;
	pthread_mutex_lock(&dm->mu);
	if (demand_table_state(dm->t, name) == DEMAND_WAITING) {
		dm->stats.failed++;
		demand_table_settle(dm->t, name, DEMAND_DENIED,
				    clock_mono_ms() + FAILED_TTL_MS);
		woke = 1;
	}
	pthread_mutex_unlock(&dm->mu);
	if (woke) {
		log_warn("on-demand", name,
			 "its order failed: handshakes waiting for it are "
			 "refused");
		if (dm->o.decided)
			dm->o.decided(dm->o.ctx);
	}
}

void demand_stats(struct demand *dm, struct demand_stats *out)
{
	pthread_mutex_lock(&dm->mu);
	*out = dm->stats;
	out->waiting = demand_table_count(dm->t, DEMAND_WAITING);
	pthread_mutex_unlock(&dm->mu);
}

int demand_metrics(struct demand *dm, FILE *out)
{
	struct demand_stats s;

	if (!dm)
		return 0;
	demand_stats(dm, &s);
	fprintf(
	    out,
	    "# HELP certherd_ondemand_decisions_total On-demand decisions "
	    "for names with no certificate, by result.\n"
	    "# TYPE certherd_ondemand_decisions_total counter\n"
	    "certherd_ondemand_decisions_total{result=\"registered\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"approved\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"denied\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"budget\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"ask_error\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"busy\"} %llu\n"
	    "certherd_ondemand_decisions_total{result=\"failed\"} %llu\n"
	    "# HELP certherd_ondemand_asks_total Requests to on_demand.ask.\n"
	    "# TYPE certherd_ondemand_asks_total counter\n"
	    "certherd_ondemand_asks_total %llu\n"
	    "# HELP certherd_ondemand_waiting Names whose handshakes wait "
	    "for their certificate.\n"
	    "# TYPE certherd_ondemand_waiting gauge\n"
	    "certherd_ondemand_waiting %zu\n",
	    (unsigned long long)s.registered, (unsigned long long)s.approved,
	    (unsigned long long)s.denied, (unsigned long long)s.budget,
	    (unsigned long long)s.ask_errors, (unsigned long long)s.busy,
	    (unsigned long long)s.failed, (unsigned long long)s.asks,
	    s.waiting);
	return ferror(out) ? -EIO : 0;
}
