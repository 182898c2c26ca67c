/*
 * engine_ari_poll.c — renewalInfo fetches for the daemon.
 *
 * A certificate's next attempt time, while it is valid and ARI is in use,
 * is the earlier of its renewal time and its next renewalInfo fetch
 * (engine_renew_first, engine_renew_after_ari). When it comes due and
 * engine_renew_due says to ask, the scheduler hands it here: the domain's
 * next attempt moves ENGINE_ARI_LEASE_MS ahead (so no pass picks it again
 * while we ask; a crash only delays the fetch), the GET runs on the loop
 * through the account's HTTP pool, and the answer is stored: the window
 * on the certificate, the next attempt on the domain, an event when the
 * window changed. A failed fetch is logged, not held against the domain:
 * the lifetime rule then decides and the next fetch is tried in an hour.
 *
 * The window's point is drawn with a seed from the certificate's serial
 * (engine_renew_seed): the same window always gives the same time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_ari_poll.h"
#include "engine/engine_daemon_internal.h" /* engine__time_str */
#include "util/util.h"

struct poll {
	struct engine_ari_poller *p;
	char name[NAME_MAX_LEN + 1];
	char serial[80];
	int64_t cert_id, nb, na;
	struct engine_ari_window old; /* the window stored before */
	int64_t lease_ms;	      /* next attempt while we ask */
	struct acme_ari_op *op;
	struct engine_task task;
	struct poll *prev, *next;
};

struct engine_ari_poller {
	struct engine_session *s;
	struct store *st;
	unsigned max, in_flight;
	uint64_t ok, failed;
	void (*done)(void *ctx, const char *name, int renew_now);
	void *ctx;
	struct poll *polls;
};

struct engine_ari_poller *engine_ari_poller_new(
    struct engine_session *s, struct store *st, unsigned max_in_flight,
    void (*done)(void *ctx, const char *name, int renew_now), void *ctx)
{
	struct engine_ari_poller *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->s = s;
	p->st = st;
	p->max = max_in_flight ? max_in_flight : 1;
	p->done = done;
	p->ctx = ctx;
	return p;
}

unsigned engine_ari_poller_in_flight(const struct engine_ari_poller *p)
{
	return p ? p->in_flight : 0;
}

void engine_ari_poller_counts(const struct engine_ari_poller *p, uint64_t *ok,
			      uint64_t *failed)
{
	*ok = p ? p->ok : 0;
	*failed = p ? p->failed : 0;
}

static void poll_free(struct poll *q)
{
	struct engine_ari_poller *p = q->p;

	if (q->prev)
		q->prev->next = q->next;
	else if (p->polls == q)
		p->polls = q->next;
	if (q->next)
		q->next->prev = q->prev;
	acme_ari_op_free(q->op);
	free(q);
	p->in_flight--;
}

static void poll_closed(struct engine_task *t)
{
	poll_free(t->ctx);
}

/* Record the answer (w NULL: the fetch failed) unless someone else acted
 * on the domain meanwhile (a forced renewal, a removal, a restart of the
 * lease by another node): then their decision stands. */
static void poll_record(struct poll *q, const struct acme_ari *a, int64_t now)
{
	struct engine_ari_poller *p = q->p;
	struct engine_ari_window w, *wp = NULL;
	struct store_domain dom;
	int64_t next;
	int renew;

	if (a) {
		w.start_ms = a->start_ms;
		w.end_ms = a->end_ms;
		wp = &w;
	}
	if (store_domain_get(p->st, q->name, &dom) < 0 ||
	    dom.next_attempt_ms != q->lease_ms ||
	    dom.status != STORE_DOMAIN_VALID) {
		log_debug("ari", q->name,
			  "the domain changed while we asked; answer dropped");
		return;
	}
	if (wp &&
	    (w.start_ms != q->old.start_ms || w.end_ms != q->old.end_ms)) {
		char s[40], e[40], msg[512];

		if (store_cert_set_ari(p->st, q->cert_id, w.start_ms,
				       w.end_ms) < 0)
			log_error("ari", q->name, "cannot store the window: %s",
				  store_errmsg(p->st));
		engine__time_str(w.start_ms, s, sizeof(s));
		engine__time_str(w.end_ms, e, sizeof(e));
		snprintf(msg, sizeof(msg), "renewal window %s .. %s%s%.300s", s,
			 e, a->explanation_url ? " (" : "",
			 a->explanation_url ? a->explanation_url : "");
		if (a->explanation_url)
			strcat(msg, ")");
		store_event_append(p->st, q->name, now, "ari-window", msg);
		log_info("ari", q->name, "%s", msg);
	}
	renew =
	    engine_renew_after_ari(q->nb, q->na, wp, a ? a->retry_after_ms : -1,
				   now, engine_renew_seed(q->serial), &next);
	if (store_domain_reschedule(p->st, &dom, renew ? now : next, now) < 0) {
		log_error("ari", q->name, "cannot update the store: %s",
			  store_errmsg(p->st));
		return;
	}
	if (renew)
		log_info("ari", q->name, "renewal due now (%s)",
			 wp ? "the CA's window" : "lifetime rule, no window");
	p->done(p->ctx, q->name, renew);
}

static void poll_done(struct engine_task *t, enum acme_step step)
{
	struct poll *q = t->ctx;
	struct acme_ari a = {.retry_after_ms = -1};
	int64_t now = clock_wall_ms();
	char why[1024];

	if (step == ACME_STEP_DONE && acme_ari_op_result(q->op, &a) == 0) {
		q->p->ok++;
		poll_record(q, &a, now);
	} else {
		q->p->failed++;
		log_warn(
		    "ari", q->name,
		    "renewalInfo fetch failed: %s (the lifetime rule "
		    "decides until the next fetch)",
		    acme_error_str(acme_ari_op_error(q->op), why, sizeof(why)));
		poll_record(q, NULL, now);
	}
	acme_ari_clear(&a);
	engine_task_close(&q->task, poll_closed);
}

int engine_ari_poller_start(struct engine_ari_poller *p,
			    const struct store_domain *dom,
			    const struct store_cert *c, int64_t now_ms)
{
	char certid[ACME_ARI_CERTID_MAX];
	unsigned char *der = NULL;
	struct poll *q;
	size_t der_len;
	int rc;

	if (p->in_flight >= p->max)
		return -EBUSY;
	if (!c->chain_pem || x509_pem_to_der(c->chain_pem, strlen(c->chain_pem),
					     &der, &der_len) < 0)
		return -ENOTSUP;
	rc = acme_ari_certid(der, der_len, certid, sizeof(certid));
	free(der);
	if (rc < 0)
		return -ENOTSUP;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	rc = acme_ari_op_new(p->s->client, certid, &q->op);
	if (rc < 0) {
		free(q);
		return rc == -ENOTSUP ? -ENOTSUP : rc;
	}
	q->p = p;
	snprintf(q->name, sizeof(q->name), "%s", dom->name);
	snprintf(q->serial, sizeof(q->serial), "%s", c->info.serial);
	q->cert_id = c->info.id;
	q->nb = c->info.not_before_ms;
	q->na = c->info.not_after_ms;
	q->old.start_ms = c->info.ari_start_ms;
	q->old.end_ms = c->info.ari_end_ms;
	q->lease_ms = now_ms + ENGINE_ARI_LEASE_MS;
	if (store_domain_reschedule(p->st, dom, q->lease_ms, now_ms) < 0) {
		acme_ari_op_free(q->op);
		free(q);
		return -EIO;
	}
	q->next = p->polls;
	if (p->polls)
		p->polls->prev = q;
	p->polls = q;
	p->in_flight++;
	engine_task_ari(&q->task, q->op);
	q->task.done = poll_done;
	q->task.ctx = q;
	log_debug("ari", q->name, "GET %s", acme_ari_op_url(q->op));
	if (engine_task_start(&q->task, &p->s->loop, p->s->http) < 0) {
		/* The lease runs out and a later pass asks again. */
		log_warn("ari", q->name, "cannot start the renewalInfo fetch");
		engine_task_close(&q->task, poll_closed);
	}
	return 0;
}

void engine_ari_poller_free(struct engine_ari_poller *p)
{
	if (!p)
		return;
	while (p->polls) {
		p->polls->task.closing = 1;
		poll_free(p->polls);
	}
	free(p);
}
