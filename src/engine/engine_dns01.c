/*
 * engine_dns01.c — publishes DNS-01 responses (RFC 8555 §8.4) for orders
 * on the loop: the TXT record _acme-challenge.<name> (a wildcard's is its
 * base name's) goes to the zone through its updater, then every
 * authoritative server of the zone is asked until all of them serve it,
 * and only then is the order told it may answer the challenge. After
 * validation or failure the order withdraws it and the record is removed.
 *
 * One publication (op):
 *
 *   ZONE (zone not configured: SOA lookup) -> ADD (RFC 2136 UPDATE on the
 *   thread pool, or `COMMAND add NAME VALUE`) -> CHECK (every NS, thread
 *   pool) --not all yet--> WAIT (timer, CHECK_EVERY_MS) -> CHECK ...
 *        |                   |
 *        |                   +-- past propagation_timeout: failed
 *        +-- all serve it: READY (the order is told: cb rc 0)
 *   withdrawn (unpublish, any time) -> REMOVE (update / `COMMAND remove`)
 *   once nothing is in flight -> freed. The callback is never called
 *   after unpublish.
 *
 * ldns blocks, so its exchanges run on libuv's thread pool
 * (engine_dns01_ldns.c), a few seconds each; the waits between checks are
 * timers on the loop, so a slow zone holds no thread. Lifetimes: an op is
 * freed when its timer has closed and no work of it is queued (refs); the
 * publisher, when engine_dns01_free was called and its last op is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/engine.h"
#include "util/config.h"
#include "util/util.h"

#define CHECK_EVERY_MS		2000
#define DEFAULT_PROPAGATION_MS	(120 * 1000)
#define DEFAULT_HOOK_TIMEOUT_MS (60 * 1000)
#define DEFAULT_TTL		60

const char *const engine_dns01_updater_names[ENGINE_DNS01__MAX] = {
    [ENGINE_DNS01_RFC2136] = "rfc2136",
    [ENGINE_DNS01_HOOK] = "hook",
};

/* A zone's settings, owned copies. */
struct zone {
	char name[NAME_MAX_LEN + 1]; /* "" = any name, zone from SOA */
	enum engine_dns01_updater updater;
	char *server, *command;
	struct engine_tsig_key key;
	int has_key;
};

enum op_state {
	OP_ZONE = 0,
	OP_ADD,
	OP_CHECK,
	OP_WAIT,
	OP_READY,
	OP_REMOVE,
	OP_FAILED,
	OP__MAX
};
static const char *const op_state_names[OP__MAX] = {
    "zone", "add", "check", "wait", "ready", "remove", "failed"};

struct op {
	struct engine_dns01 *d;
	struct op *prev, *next;
	const struct zone *z;
	enum op_state state;
	char domain[NAME_MAX_LEN + 1];
	char token[128];
	char owner[NAME_MAX_LEN + 1];
	char zone[NAME_MAX_LEN + 1];
	char value[64];
	engine_dns01_ready_cb cb;
	void *ctx;
	int withdrawn; /* unpublish came: no cb; remove once idle */
	int added;     /* the record may be in the zone */
	int busy;      /* work or command in flight */
	int ended;     /* out of the list, timer closing */
	int refs;
	int64_t started, deadline;
	unsigned checks;
	uv_timer_t timer;
	uv_work_t work;
	struct engine_cmd *cmd;
	int rc; /* result of the work */
	char why[512];
};

struct engine_dns01 {
	uv_loop_t *loop;
	struct zone *zones;
	size_t n_zones;
	char *resolver;
	int64_t propagation_ms, hook_timeout_ms;
	unsigned ttl;
	struct op *ops;
	size_t n_ops; /* allocated, ended ones included */
	int closing;
};

static void op_step(struct op *op);

static void set_state(struct op *op, enum op_state s)
{
	if (op->state != s)
		log_debug("dns01", op->domain, "%s: %s -> %s", op->owner,
			  op_state_names[op->state], op_state_names[s]);
	op->state = s;
}

static void dns01_release(struct engine_dns01 *d)
{
	for (size_t i = 0; i < d->n_zones; i++) {
		free(d->zones[i].server);
		free(d->zones[i].command);
		OPENSSL_cleanse(&d->zones[i].key, sizeof(d->zones[i].key));
	}
	free(d->zones);
	free(d->resolver);
	free(d);
}

static void op_unref(struct op *op)
{
	struct engine_dns01 *d = op->d;

	if (--op->refs > 0)
		return;
	free(op);
	if (--d->n_ops == 0 && d->closing)
		dns01_release(d);
}

static void timer_closed(uv_handle_t *h)
{
	op_unref(h->data);
}

/* Out of the list, timer closed; freed once no work is queued. */
static void op_end(struct op *op)
{
	struct engine_dns01 *d = op->d;

	if (op->ended)
		return;
	op->ended = 1;
	if (op->prev)
		op->prev->next = op->next;
	else
		d->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	uv_timer_stop(&op->timer);
	uv_close((uv_handle_t *)&op->timer, timer_closed);
	op_unref(op); /* the list's */
}

/* Tell the order; op may be gone when this returns (the callback may
 * withdraw it). */
static void report(struct op *op, int rc, const char *why)
{
	if (op->withdrawn || op->d->closing || !op->cb)
		return;
	op->cb(op->ctx, op->token, rc, why);
}

/* ---- work on the thread pool --------------------------------------------- */

static void work_run(uv_work_t *w)
{
	struct op *op = w->data;
	const struct zone *z = op->z;
	const char *res = op->d->resolver;

	op->why[0] = '\0';
	switch (op->state) {
	case OP_ZONE:
		op->rc = engine_dns01_zone_of(res, op->owner, op->zone,
					      sizeof(op->zone), op->why,
					      sizeof(op->why));
		break;
	case OP_ADD:
	case OP_REMOVE:
		op->rc = engine_dns01_update(
		    z->server, op->zone, z->has_key ? &z->key : NULL,
		    op->state == OP_ADD, op->owner, op->value, op->d->ttl,
		    op->why, sizeof(op->why));
		break;
	case OP_CHECK:
		op->rc = engine_dns01_check(res, op->zone, op->owner, op->value,
					    op->why, sizeof(op->why));
		break;
	default:
		op->rc = -EINVAL;
		break;
	}
}

static void work_done(uv_work_t *w, int status)
{
	struct op *op = w->data;

	op->busy = 0;
	if (op->ended) { /* the publisher is closing */
		op_unref(op);
		return;
	}
	if (status < 0) {
		op->rc = -ECANCELED;
		snprintf(op->why, sizeof(op->why), "cancelled");
	}
	op_unref(op);
	op_step(op);
}

static void queue_work(struct op *op)
{
	op->busy = 1;
	op->refs++;
	op->work.data = op;
	if (uv_queue_work(op->d->loop, &op->work, work_run, work_done) < 0) {
		op->refs--;
		op->busy = 0;
		op->rc = -EIO;
		snprintf(op->why, sizeof(op->why), "cannot queue the DNS work");
		op_step(op);
	}
}

/* ---- the hook command ------------------------------------------------------
 */

static void cmd_done(void *ctx, const struct engine_cmd_result *r)
{
	struct op *op = ctx;

	op->cmd = NULL;
	op->busy = 0;
	op->rc = 0;
	if (r->spawn_error)
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook did not start: "
			 "%s",
			 strerror(-r->spawn_error));
	else if (r->timed_out)
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook ran past its "
			 "timeout of %lld s and was killed",
			 (long long)(op->d->hook_timeout_ms / 1000));
	else if (r->term_signal)
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook was killed by "
			 "signal %d",
			 r->term_signal);
	else if (r->exit_status != 0)
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook exited with "
			 "status %lld",
			 (long long)r->exit_status);
	else
		op->why[0] = '\0';
	if (op->why[0])
		op->rc = -EIO;
	op_step(op);
}

/* `COMMAND add|remove NAME VALUE`: NAME is [a-z0-9._-] and VALUE
 * base64url, so neither needs quoting for sh; they are in the
 * environment too. */
static void run_hook(struct op *op, const char *action)
{
	char cmdline[CONFIG_VALUE_MAX + 2 * NAME_MAX_LEN + 100];
	char e_action[32], e_name[NAME_MAX_LEN + 32], e_value[96];
	char e_zone[NAME_MAX_LEN + 32], e_domain[NAME_MAX_LEN + 32];
	const char *env[] = {e_action, e_name, e_value, e_zone, e_domain, NULL};
	char err[256];
	int n;

	n = snprintf(cmdline, sizeof(cmdline), "%s %s %s %s", op->z->command,
		     action, op->owner, op->value);
	snprintf(e_action, sizeof(e_action), "CERTHERD_DNS_ACTION=%s", action);
	snprintf(e_name, sizeof(e_name), "CERTHERD_DNS_NAME=%s", op->owner);
	snprintf(e_value, sizeof(e_value), "CERTHERD_DNS_VALUE=%s", op->value);
	snprintf(e_zone, sizeof(e_zone), "CERTHERD_DNS_ZONE=%s", op->zone);
	snprintf(e_domain, sizeof(e_domain), "CERTHERD_DOMAIN=%s", op->domain);
	if (n < 0 || (size_t)n >= sizeof(cmdline)) {
		op->rc = -E2BIG;
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook command is "
			 "too long");
		op_step(op);
		return;
	}
	op->busy = 1;
	op->cmd = engine_cmd_start(op->d->loop, cmdline, env, -1,
				   op->d->hook_timeout_ms, "dns-hook", cmd_done,
				   op, err, sizeof(err));
	if (!op->cmd) {
		op->busy = 0;
		op->rc = -EIO;
		snprintf(op->why, sizeof(op->why),
			 "the DNS hook did not start: "
			 "%s",
			 err);
		op_step(op);
	}
}

/* ---- the machine
 * --------------------------------------------------------------- */

static void start_update(struct op *op, int add)
{
	set_state(op, add ? OP_ADD : OP_REMOVE);
	if (add)
		op->added = 1; /* may be there even if the answer is lost */
	if (op->z->updater == ENGINE_DNS01_HOOK)
		run_hook(op, add ? "add" : "remove");
	else
		queue_work(op);
}

static void on_timer(uv_timer_t *t)
{
	struct op *op = t->data;

	set_state(op, OP_CHECK);
	queue_work(op);
}

static void start_remove_or_end(struct op *op)
{
	if (op->added && !op->d->closing) {
		start_update(op, 0);
		return;
	}
	op_end(op);
}

static void fail_op(struct op *op, const char *why)
{
	set_state(op, OP_FAILED);
	log_warn("dns01", op->domain, "cannot publish %s: %s", op->owner, why);
	report(op, -EIO, why); /* op may be gone */
}

/* Called whenever the work or command of op has ended (rc, why), and by
 * unpublish when nothing is in flight. */
static void op_step(struct op *op)
{
	int64_t now = clock_mono_ms();
	char why[1400];

	if (op->busy)
		return;
	if (op->withdrawn && op->state != OP_REMOVE) {
		uv_timer_stop(&op->timer);
		start_remove_or_end(op);
		return;
	}
	switch (op->state) {
	case OP_ZONE:
		if (op->rc < 0) {
			op->added = 0;
			fail_op(op, op->why);
			return;
		}
		log_debug("dns01", op->domain, "%s is in zone %s", op->owner,
			  op->zone);
		start_update(op, 1);
		return;
	case OP_ADD:
		if (op->rc < 0) {
			/* a refused update added nothing; a failed hook
			 * may have: it is asked to remove it all the same */
			op->added = op->z->updater == ENGINE_DNS01_HOOK;
			fail_op(op, op->why);
			return;
		}
		log_info("dns01", op->domain,
			 "TXT record %s added (%s); "
			 "waiting until every name server of %s has it",
			 op->owner, engine_dns01_updater_names[op->z->updater],
			 op->zone);
		op->deadline = now + op->d->propagation_ms;
		set_state(op, OP_CHECK);
		queue_work(op);
		return;
	case OP_CHECK:
		op->checks++;
		if (op->rc > 0) {
			log_info("dns01", op->domain, "%s: %s after %lld ms",
				 op->owner, op->why,
				 (long long)(now - op->started));
			set_state(op, OP_READY);
			report(op, 0, NULL); /* op may be gone */
			return;
		}
		if (op->rc < 0 || now >= op->deadline) {
			snprintf(why, sizeof(why), "%s", op->why);
			if (op->rc == 0)
				snprintf(
				    why, sizeof(why),
				    "the TXT record %s "
				    "was not served by every name server "
				    "of %s within %lld s: %s",
				    op->owner, op->zone,
				    (long long)(op->d->propagation_ms / 1000),
				    op->why);
			fail_op(op, why);
			return;
		}
		log_debug("dns01", op->domain, "not yet: %s", op->why);
		set_state(op, OP_WAIT);
		uv_timer_start(&op->timer, on_timer, CHECK_EVERY_MS, 0);
		return;
	case OP_REMOVE:
		if (op->rc < 0)
			log_warn("dns01", op->domain,
				 "TXT record %s may be left "
				 "in zone %s: %s",
				 op->owner, op->zone, op->why);
		else
			log_info("dns01", op->domain, "TXT record %s removed",
				 op->owner);
		op->added = 0;
		op_end(op);
		return;
	default:
		return;
	}
}

/* ---- public
 * ------------------------------------------------------------------- */

static const struct zone *zone_for(const struct engine_dns01 *d,
				   const char *name)
{
	const struct zone *best = NULL, *any = NULL;
	size_t nl = strlen(name);

	if (name[0] == '*' && name[1] == '.') {
		name += 2;
		nl -= 2;
	}
	for (size_t i = 0; d && i < d->n_zones; i++) {
		const struct zone *z = &d->zones[i];
		size_t zl = strlen(z->name);
		if (!zl) {
			any = z;
			continue;
		}
		/* the zone itself or a name below it, longest zone wins */
		if ((nl == zl && strcmp(name, z->name) == 0) ||
		    (nl > zl && name[nl - zl - 1] == '.' &&
		     strcmp(name + nl - zl, z->name) == 0))
			if (!best || zl > strlen(best->name))
				best = z;
	}
	return best ? best : any;
}

int engine_dns01_covers(const struct engine_dns01 *d, const char *name)
{
	return name && zone_for(d, name) != NULL;
}

int engine_dns01_publish(struct engine_dns01 *d, const char *domain,
			 const char *token, const char *key_auth,
			 engine_dns01_ready_cb cb, void *ctx)
{
	const struct zone *z;
	struct op *op;
	char *txt;
	const char *base;

	if (!d || d->closing || !domain || !token || !key_auth ||
	    strlen(token) >= sizeof(op->token))
		return -EINVAL;
	if (!(z = zone_for(d, domain)))
		return -ENOENT;
	base = strncmp(domain, "*.", 2) == 0 ? domain + 2 : domain;
	if (strlen(base) + strlen("_acme-challenge.") > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	op = calloc(1, sizeof(*op));
	txt = acme_dns01_txt(key_auth);
	if (!op || !txt || strlen(txt) >= sizeof(op->value)) {
		free(op);
		free(txt);
		return -ENOMEM;
	}
	op->d = d;
	op->z = z;
	snprintf(op->domain, sizeof(op->domain), "%s", domain);
	snprintf(op->token, sizeof(op->token), "%s", token);
	/* RFC 8555 §8.4: a wildcard is validated at its base name */
	snprintf(op->owner, sizeof(op->owner), "_acme-challenge.%s", base);
	snprintf(op->zone, sizeof(op->zone), "%s", z->name);
	snprintf(op->value, sizeof(op->value), "%s", txt);
	free(txt);
	op->cb = cb;
	op->ctx = ctx;
	op->started = clock_mono_ms();
	op->refs = 2; /* the list and the timer */
	uv_timer_init(d->loop, &op->timer);
	op->timer.data = op;
	op->next = d->ops;
	if (d->ops)
		d->ops->prev = op;
	d->ops = op;
	d->n_ops++;
	if (!op->zone[0]) {
		set_state(op, OP_ZONE);
		queue_work(op);
	} else {
		start_update(op, 1);
	}
	return ACME_PUBLISH_PENDING;
}

void engine_dns01_unpublish(struct engine_dns01 *d, const char *domain,
			    const char *token)
{
	(void)domain;
	for (struct op *op = d ? d->ops : NULL; op; op = op->next) {
		if (op->withdrawn || strcmp(op->token, token) != 0)
			continue;
		op->withdrawn = 1;
		op_step(op); /* now, or when its work ends */
		return;
	}
}

size_t engine_dns01_active(const struct engine_dns01 *d)
{
	size_t n = 0;

	for (const struct op *op = d ? d->ops : NULL; op; op = op->next)
		n++;
	return n;
}

int engine_dns01_new(uv_loop_t *loop, const struct engine_dns01_opts *o,
		     struct engine_dns01 **out, char *err, size_t errsz)
{
	struct engine_dns01 *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d || !(d->zones =
			calloc(o->n_zones ? o->n_zones : 1, sizeof(*d->zones))))
		goto nomem;
	d->loop = loop;
	d->propagation_ms = o->propagation_timeout_ms > 0
				? o->propagation_timeout_ms
				: DEFAULT_PROPAGATION_MS;
	d->hook_timeout_ms = o->hook_timeout_ms > 0 ? o->hook_timeout_ms
						    : DEFAULT_HOOK_TIMEOUT_MS;
	d->ttl = o->ttl ? o->ttl : DEFAULT_TTL;
	if (o->resolver && !(d->resolver = strdup(o->resolver)))
		goto nomem;
	for (size_t i = 0; i < o->n_zones; i++) {
		const struct engine_dns01_zone *s = &o->zones[i];
		struct zone *z = &d->zones[d->n_zones++];

		snprintf(z->name, sizeof(z->name), "%s",
			 s->zone ? s->zone : "");
		z->updater = s->updater;
		if (s->updater == ENGINE_DNS01_RFC2136 &&
		    (!s->server || !*s->server)) {
			snprintf(err, errsz,
				 "DNS zone %s: rfc2136 needs the "
				 "primary server's address",
				 z->name);
			goto fail;
		}
		if (s->updater == ENGINE_DNS01_HOOK &&
		    (!s->command || !*s->command)) {
			snprintf(err, errsz,
				 "DNS zone %s: hook needs a command", z->name);
			goto fail;
		}
		if ((s->server && !(z->server = strdup(s->server))) ||
		    (s->command && !(z->command = strdup(s->command))))
			goto nomem;
		if (s->key) {
			z->key = *s->key;
			z->has_key = 1;
		}
	}
	*out = d;
	return 0;
nomem:
	snprintf(err, errsz, "out of memory");
fail:
	if (d)
		dns01_release(d);
	return -EINVAL;
}

void engine_dns01_free(struct engine_dns01 *d)
{
	if (!d)
		return;
	d->closing = 1;
	while (d->ops) {
		struct op *op = d->ops;

		if (op->cmd) {
			engine_cmd_free(op->cmd);
			op->cmd = NULL;
			op->busy = 0;
		}
		if (op->busy)
			uv_cancel((uv_req_t *)&op->work);
		if (op->added)
			log_warn("dns01", op->domain,
				 "stopping: TXT record %s "
				 "is left in zone %s",
				 op->owner, op->zone);
		op_end(op);
	}
	if (d->n_ops == 0)
		dns01_release(d);
}
