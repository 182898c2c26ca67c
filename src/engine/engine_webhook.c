/*
 * engine_webhook.c — POST one JSON body to the operator's URL from the
 * daemon's loop, with a few retries: the deploy webhook (engine_deploy.c).
 *
 * It has an engine_http of its own rather than the session's: that one
 * trusts acme.ca_bundle (the CA's roots, Pebble's in tests), while the
 * webhook is the platform's server and is checked against the system's
 * roots; and its POSTs are application/json, not JOSE.
 *
 *   IDLE --post--> SENDING --2xx--> IDLE (cb ok)
 *                     |  \--fail, attempts left--> WAITING --timer--> SENDING
 *                     \--fail, none left--> IDLE (cb failed, last reason)
 *
 * Redirects are not followed (a 3xx is a failure, as with the CA): the
 * body names key files, and we do not send it where the operator did not
 * say. Nothing of the URL is logged by us: its user-info or query may
 * hold a token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

#define WEBHOOK_TIMEOUT_MS 30000
#define WEBHOOK_CONNECT_MS 10000

struct engine_webhook {
	struct engine_http *http;
	char *url;
	char *body;
	size_t len;
	unsigned attempt; /* of the post in flight, 1-based; 0 = idle */
	uv_timer_t retry;
	engine_webhook_cb cb;
	void *ctx;
	char why[256];
};

static void send_now(struct engine_webhook *w);

static void done(struct engine_webhook *w, int ok)
{
	engine_webhook_cb cb = w->cb;
	unsigned attempts = w->attempt;

	free(w->body);
	w->body = NULL;
	w->attempt = 0;
	w->cb = NULL;
	cb(w->ctx, ok, attempts, w->why);
}

static void on_retry(uv_timer_t *t)
{
	send_now(t->data);
}

static void on_response(void *ctx, const struct acme_response *res)
{
	struct engine_webhook *w = ctx;

	if (res->status >= 200 && res->status <= 299) {
		w->why[0] = '\0';
		done(w, 1);
		return;
	}
	if (res->status == 0)
		snprintf(w->why, sizeof(w->why), "%s",
			 res->transport_error ? res->transport_error
					      : "no response");
	else
		snprintf(w->why, sizeof(w->why), "HTTP status %ld",
			 res->status);
	if (w->attempt >= ENGINE_WEBHOOK_ATTEMPTS) {
		done(w, 0);
		return;
	}
	log_warn("webhook", NULL,
		 "attempt %u of %u failed: %s; retrying in %lld ms", w->attempt,
		 ENGINE_WEBHOOK_ATTEMPTS, w->why,
		 (long long)engine_batch_retry_ms(w->attempt + 1));
	uv_timer_start(&w->retry, on_retry,
		       (uint64_t)engine_batch_retry_ms(w->attempt + 1), 0);
}

static void send_now(struct engine_webhook *w)
{
	struct acme_request req = {
	    .method = ACME_POST,
	    .url = w->url,
	    .body = w->body,
	    .body_len = w->len,
	};
	int rc;

	w->attempt++;
	rc = engine_http_send(w->http, &req, on_response, w);
	if (rc < 0) {
		snprintf(w->why, sizeof(w->why), "cannot send: %s",
			 strerror(-rc));
		done(w, 0);
	}
}

struct engine_webhook *engine_webhook_new(uv_loop_t *loop, const char *url)
{
	struct engine_http_opts ho = {
	    .connect_timeout_ms = WEBHOOK_CONNECT_MS,
	    .timeout_ms = WEBHOOK_TIMEOUT_MS,
	    .max_host_connections = 1,
	    .content_type = "application/json",
	};
	struct engine_webhook *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->url = strdup(url);
	w->http = engine_http_new(loop, &ho);
	if (!w->url || !w->http) {
		engine_http_free(w->http);
		free(w->url);
		free(w);
		return NULL;
	}
	uv_timer_init(loop, &w->retry);
	w->retry.data = w;
	return w;
}

int engine_webhook_post(struct engine_webhook *w, char *body, size_t len,
			engine_webhook_cb cb, void *ctx)
{
	if (w->attempt) {
		free(body);
		return -EBUSY;
	}
	w->body = body;
	w->len = len;
	w->cb = cb;
	w->ctx = ctx;
	w->why[0] = '\0';
	send_now(w);
	return 0;
}

static void webhook_closed(uv_handle_t *h)
{
	free(h->data);
}

void engine_webhook_free(struct engine_webhook *w)
{
	if (!w)
		return;
	engine_http_free(w->http); /* cancels: on_response is not called */
	free(w->url);
	free(w->body);
	uv_timer_stop(&w->retry);
	uv_close((uv_handle_t *)&w->retry, webhook_closed);
}
