/*
 * engine_daemon_sched.c — the daemon's scheduler pass: the due domains
 * from the store, each triaged (a renewalInfo fetch, a renewal, a new
 * name), ranked by the rate-limit ledger's queue and started while
 * concurrency allows, or held back until their buckets refill; plus the
 * ledger's persistence and the pass's cost instrument.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/engine_daemon_internal.h"

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

void engine__go_del(struct engine_daemon *d, const char *name)
{
	struct go_name **g = go_find(d, name), *x = *g;

	if (x) {
		*g = x->next;
		free(x);
	}
}

/* ---- the ledger's persistence -------------------------------------------- */

static int bucket_key(char *out, size_t sz, enum engine_limit kind,
		      const char *key)
{
	int n = snprintf(out, sz, "%s/%s", engine_limit_names[kind], key);

	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

int engine__limit_on(const struct engine_daemon *d, enum engine_limit kind)
{
	const struct engine_limit_def *def = engine_limits_def(d->lim, kind);

	return def && def->capacity > 0;
}

/* Load (kind, key) from the store over what memory has: memory and store
 * agree after every change (engine__bucket_save), so this only matters for
 * buckets not seen since the start. */
void engine__bucket_load(struct engine_daemon *d, enum engine_limit kind,
			 const char *key)
{
	struct store_bucket sb;
	struct engine_bucket b;
	char k[STORE_BUCKET_KEY_MAX + 1];

	if (!engine__limit_on(d, kind) ||
	    bucket_key(k, sizeof(k), kind, key) < 0 ||
	    store_bucket_load(d->st, k, &sb) < 0)
		return;
	b.tokens = sb.tokens;
	b.updated_ms = sb.updated_ms;
	engine_limits_restore(d->lim, kind, key, &b);
}

/* Persist (kind, key) as its level at now: the same bucket. */
void engine__bucket_save(struct engine_daemon *d, enum engine_limit kind,
			 const char *key, int64_t now)
{
	struct store_bucket sb = {0};
	struct engine_headroom h;

	if (!engine__limit_on(d, kind) ||
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
int engine__charged_for(const struct engine_daemon *d, enum engine_limit kind,
			enum engine_class cls)
{
	const struct engine_limit_def *def = engine_limits_def(d->lim, kind);

	return cls == ENGINE_CLASS_NEW || !def->renewal_exempt;
}

/* ---- scheduling ---------------------------------------------------------- */

/* The store's order of due domains: renewals (by expiry), then new
 * names. engine_queue_next makes the final choice by class. */
static const unsigned due_rank[STORE_DOMAIN__MAX] = {
    [STORE_DOMAIN_VALID] = 0,	    [STORE_DOMAIN_PENDING] = 1,
    [STORE_DOMAIN_DNS_PENDING] = 2, [STORE_DOMAIN_FAILED] = 3,
    [STORE_DOMAIN_ISSUING] = 4,	    [STORE_DOMAIN_RENEWING] = 4,
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
void engine__ari_done(void *ctx, const char *name, int renew_now)
{
	struct engine_daemon *d = ctx;

	if (renew_now)
		go_add(d, name);
	if (!d->stopping)
		engine_daemon_wake(d);
}

/* Is a job for name in flight? (At most acme.concurrency of them.) */
int engine__job_running(const struct engine_daemon *d, const char *name)
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
	    engine__job_running(d, due->name)) {
		/* Made due while its order runs (`certherd renew`): that
		 * order's end schedules it; never two orders at once. */
		if (store_domain_get(d->st, due->name, &dom) == 0)
			store_domain_reschedule(d->st, &dom, STORE_NO_TIME,
						now);
		return 0;
	}
	/* Only a valid certificate under ARI needs a look at its row (the
	 * window, the serial): everything else is decided by the due row. */
	if (due->not_after_ms == STORE_NO_TIME ||
	    due->status != STORE_DOMAIN_VALID || !engine__ari_usable(d) ||
	    *go_find(d, due->name))
		return 1;
	/* With every fetch slot taken it stays due for a later pass, before
	 * its row (PEMs and all) is read: with a large backlog a pass would
	 * otherwise read a whole batch of rows to start nothing. */
	if (engine_ari_poller_in_flight(d->ari) >= ARI_IN_FLIGHT)
		return 0;
	if (store_cert_current(d->st, due->name, &c) < 0)
		return 1;
	nb = c.info.not_before_ms;
	na = c.info.not_after_ms;
	seed = engine_renew_seed(c.info.serial);
	w.start_ms = c.info.ari_start_ms;
	w.end_ms = c.info.ari_end_ms;
	if (engine_renew_due(nb, na, w.start_ms == STORE_NO_TIME ? NULL : &w, 1,
			     now, seed) == ENGINE_DUE_RENEW)
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
static void replaces_for(struct engine_daemon *d,
			 const struct store_domain *dom, char *out, size_t sz)
{
	struct store_cert c = {0};
	unsigned char *der = NULL;
	size_t len;

	out[0] = '\0';
	if (!engine__ari_usable(d) ||
	    (dom->has_error &&
	     strcmp(dom->last_error.step, REPLACES_REFUSED) == 0) ||
	    store_cert_current(d->st, dom->name, &c) < 0)
		return;
	if (c.chain_pem &&
	    x509_pem_to_der(c.chain_pem, strlen(c.chain_pem), &der, &len) ==
		0 &&
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
	j = engine__job_new(d, due->name);
	if (!j)
		return -ENOMEM;
	j->renewing = due->not_after_ms != STORE_NO_TIME;
	j->failures = due->failures;
	if (j->renewing)
		replaces_for(d, &dom, j->replaces, sizeof(j->replaces));
	engine__go_del(d, due->name);
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
		engine__job_free(j);
		return -EIO;
	}
	j->was_dns_pending = dom.status == STORE_DOMAIN_DNS_PENDING;
	j->charged = 1; /* from here on engine__job_local_failure refunds */
	j->chall = engine__chall_for(d, &dom);
	if (j->chall == ACME_CHALL_DNS01 &&
	    !engine_dns01_covers(d->dns01, j->name)) {
		/* no order for what cannot be published */
		engine__job_local_failure(
		    j, "DNS-01 needed, but no [dns \"ZONE\"] "
		       "section covers this name");
		return 0;
	}
	engine__job_preflight(j); /* then keygen, unless DNS says no */
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
		 enum engine_class cls, const char *rd, unsigned k, int64_t now)
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
	if (engine__charged_for(d, ENGINE_LIMIT_REGDOMAIN, cls) &&
	    (t = engine_limits_when(d->lim, ENGINE_LIMIT_REGDOMAIN, rd, 1,
				    now)) > now) {
		at = at > t ? at : t;
		o += (size_t)snprintf(why + o, sizeof(why) - o,
				      "%scertificates per registered domain %s",
				      o ? ", " : "", rd);
	}
	if (o < sizeof(why) &&
	    engine__charged_for(d, ENGINE_LIMIT_IDENTICAL, cls) &&
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
		at = now + (od->capacity > 0
				? od->period_ms / (int64_t)od->capacity
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
	engine__time_str(at, when, sizeof(when));
	snprintf(last.detail, sizeof(last.detail),
		 "rate-limited (local ledger): %s order waits for %s until %s",
		 engine_class_names[cls], o ? why : "the early-renewal reserve",
		 when);
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
			continue; /* not in the queue: neither started nor held
				   */
		if (engine_limits_regdomain(due[i].name, rd[i], sizeof(rd[i])) <
		    0)
			snprintf(rd[i], sizeof(rd[i]), "%.*s",
				 (int)sizeof(rd[i]) - 1, due[i].name);
		engine__bucket_load(d, ENGINE_LIMIT_REGDOMAIN, rd[i]);
		engine__bucket_load(d, ENGINE_LIMIT_IDENTICAL, due[i].name);
		engine__bucket_load(d, ENGINE_LIMIT_FAILED_AUTHZ, due[i].name);
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
		engine__bucket_save(d, ENGINE_LIMIT_ORDERS, "", now);
		if (engine__charged_for(d, ENGINE_LIMIT_REGDOMAIN, cls[i]))
			engine__bucket_save(d, ENGINE_LIMIT_REGDOMAIN, rd[i],
					    now);
		if (engine__charged_for(d, ENGINE_LIMIT_IDENTICAL, cls[i]))
			engine__bucket_save(d, ENGINE_LIMIT_IDENTICAL,
					    due[i].name, now);
		if (start_due(d, &due[i], cls[i], rd[i]) < 0) {
			struct job tmp = {.d = d, .charged = 1, .cls = cls[i]};

			snprintf(tmp.name, sizeof(tmp.name), "%s", name);
			snprintf(tmp.regdomain, sizeof(tmp.regdomain), "%s",
				 rd[i]);
			engine__job_refund(&tmp);
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
	engine__publish_stats(d, now);
	engine__notify_status(d, now, 0);
}

/* A pass can end a job synchronously (a local failure), whose close asks
 * for another pass: run that one after this pass, never inside it (the
 * pass's buffers are static). */
void engine__schedule(struct engine_daemon *d)
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
