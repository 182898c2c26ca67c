/*
 * engine_task.c — runs one protocol machine of the acme module on the
 * loop: next() -> send -> feed() -> next() ..., sleeping on a libuv timer
 * when the machine says WAIT, and calling done() once at the end.
 *
 * The machines take wall-clock milliseconds (see acme.h); the timer is
 * armed with the difference, so a clock step only shifts one wait.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

static enum acme_step client_next(void *m, int64_t now, struct acme_request *r,
				  int64_t *w)
{
	return acme_client_next(m, now, r, w);
}
static int client_feed(void *m, const struct acme_response *r, int64_t now)
{
	return acme_client_feed(m, r, now);
}
static enum acme_step order_next(void *m, int64_t now, struct acme_request *r,
				 int64_t *w)
{
	return acme_order_next(m, now, r, w);
}
static int order_feed(void *m, const struct acme_response *r, int64_t now)
{
	return acme_order_feed(m, r, now);
}
static enum acme_step op_next(void *m, int64_t now, struct acme_request *r,
			      int64_t *w)
{
	return acme_op_next(m, now, r, w);
}
static int op_feed(void *m, const struct acme_response *r, int64_t now)
{
	return acme_op_feed(m, r, now);
}

void engine_task_client(struct engine_task *t, struct acme_client *c)
{
	t->next = client_next;
	t->feed = client_feed;
	t->machine = c;
}

void engine_task_order(struct engine_task *t, struct acme_order *o)
{
	t->next = order_next;
	t->feed = order_feed;
	t->machine = o;
}

static enum acme_step ari_next(void *m, int64_t now_ms,
			       struct acme_request *req, int64_t *wake_at)
{
	return acme_ari_op_next(m, now_ms, req, wake_at);
}

static int ari_feed(void *m, const struct acme_response *res, int64_t now_ms)
{
	return acme_ari_op_feed(m, res, now_ms);
}

void engine_task_ari(struct engine_task *t, struct acme_ari_op *op)
{
	t->next = ari_next;
	t->feed = ari_feed;
	t->machine = op;
}

void engine_task_op(struct engine_task *t, struct acme_op *op)
{
	t->next = op_next;
	t->feed = op_feed;
	t->machine = op;
}

static void step(struct engine_task *t);

static void on_response(void *ctx, const struct acme_response *res)
{
	struct engine_task *t = ctx;

	t->feed(t->machine, res, clock_wall_ms());
	if (t->fed)
		t->fed(t);
	step(t);
}

static void on_wake(uv_timer_t *timer)
{
	step(timer->data);
}

static void step(struct engine_task *t)
{
	struct acme_request req;
	int64_t now = clock_wall_ms(), wake = now;
	enum acme_step s;

	if (t->closing)
		return;
	s = t->next(t->machine, now, &req, &wake);
	switch (s) {
	case ACME_STEP_SEND:
		if (engine_http_send(t->http, &req, on_response, t) < 0) {
			/* Feed the failure so the machine records it. */
			struct acme_response res = {
				.status = 0,
				.transport_error = "cannot start the request",
			};
			acme_request_clear(&req);
			on_response(t, &res);
			return;
		}
		acme_request_clear(&req);
		break;
	case ACME_STEP_WAIT:
		uv_timer_start(&t->timer, on_wake,
			       wake > now ? (uint64_t)(wake - now) : 0, 0);
		break;
	default:
		t->done(t, s);
		break;
	}
}

int engine_task_start(struct engine_task *t, uv_loop_t *loop,
		      struct engine_http *http)
{
	t->http = http;
	t->closing = 0;
	if (!t->timer_init) {
		int rc = uv_timer_init(loop, &t->timer);
		if (rc < 0)
			return rc;
		t->timer.data = t;
		t->timer_init = 1;
	}
	step(t);
	return 0;
}

void engine_task_kick(struct engine_task *t)
{
	/* the timer runs only while the machine waits */
	if (t->closing || !t->timer_init || !uv_is_active((uv_handle_t *)&t->timer))
		return;
	uv_timer_stop(&t->timer);
	step(t);
}

static void task_closed(uv_handle_t *h)
{
	struct engine_task *t = h->data;

	if (t->close_cb)
		t->close_cb(t);
}

void engine_task_close(struct engine_task *t,
		       void (*close_cb)(struct engine_task *))
{
	t->closing = 1;
	if (!t->timer_init) {
		if (close_cb)
			close_cb(t);
		return;
	}
	t->close_cb = close_cb;
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, task_closed);
}
