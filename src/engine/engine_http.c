/*
 * engine_http.c — every HTTP exchange with the CA, concurrently, from one
 * libuv loop through libcurl's multi socket interface.
 *
 * libcurl tells us which sockets to watch (socket_cb) and when to wake it
 * (timer_cb); libuv watches them (one uv_poll_t per socket) and calls
 * curl_multi_socket_action, after which finished transfers are collected
 * and their callbacks run. The multi handle keeps connections to the CA
 * open (HTTP/1.1 keep-alive, see engine_http_send for why not HTTP/2),
 * so thousands of orders share a small pool of TLS connections.
 *
 * Every response is bounded: headers by ACME_MAX_HEADERS and bodies by
 * ACME_MAX_BODY; a CA that sends more fails that exchange, nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "engine/engine.h"
#include "util/util.h"

struct engine_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	char *ca_bundle;
	char *user_agent;
	char *content_type;	/* "Content-Type: ..." of POST bodies */
	long connect_timeout_ms, timeout_ms;
	size_t active;
	struct xfer *xfers; /* doubly linked, for cancellation on free */
};

/* A response buffer that refuses to grow past max (a CA's bytes are
 * bounded like any peer's). */
struct rbuf {
	char *p;
	size_t len, cap, max;
	int too_large;
};

/* One exchange in flight. */
struct xfer {
	struct engine_http *h;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body_out;          /* request body (curl reads it in place) */
	struct rbuf hdrs_in, body_in;
	char errbuf[CURL_ERROR_SIZE];
	engine_http_cb cb;
	void *ctx;
	struct xfer *prev, *next;
};

/* A socket libcurl asked us to watch. */
struct sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct engine_http *h;
};

/* libcurl's header and write callbacks: append or fail the transfer. */
static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct rbuf *b = ud;
	size_t add = size * n;

	if (b->len + add > b->max)
		goto refuse;
	if (b->len + add + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 1024;
		char *np;
		while (nc < b->len + add + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np)
			goto refuse;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
refuse:
	b->too_large = 1;
	return 0;
}

static void xfer_free(struct xfer *x)
{
	struct engine_http *h = x->h;

	if (x->prev)
		x->prev->next = x->next;
	else
		h->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_multi_remove_handle(h->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->body_out);
	free(x->hdrs_in.p);
	free(x->body_in.p);
	free(x);
	h->active--;
}

static void collect_done(struct engine_http *h)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		struct xfer *x;
		struct acme_response res = {0};
		char why[CURL_ERROR_SIZE + 64];

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		int too_large = x->hdrs_in.too_large || x->body_in.too_large;

		if (m->data.result == CURLE_OK && !too_large) {
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
					  &res.status);
			res.headers = x->hdrs_in.p ? x->hdrs_in.p : "";
			res.headers_len = x->hdrs_in.len;
			res.body = x->body_in.p ? x->body_in.p : "";
			res.body_len = x->body_in.len;
		} else {
			res.status = 0;
			snprintf(why, sizeof(why), "%s",
				 too_large ? "response too large"
				 : x->errbuf[0]
					 ? x->errbuf
					 : curl_easy_strerror(m->data.result));
			res.transport_error = why;
		}
		x->cb(x->ctx, &res);
		xfer_free(x);
	}
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock *s = p->data;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
	collect_done(s->h);
}

static void on_timer(uv_timer_t *t)
{
	struct engine_http *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_done(h);
}

static void sock_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *ud,
		     void *sockp)
{
	struct engine_http *h = ud;
	struct sock *s = sockp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, sock_closed);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		curl_multi_assign(h->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *ud)
{
	struct engine_http *h = ud;

	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* "Content-Type: " + type, malloc'd; NULL on ENOMEM. */
static char *content_type_header(const char *type)
{
	static const char pfx[] = "Content-Type: ";
	size_t n = strlen(type);
	char *s = malloc(sizeof(pfx) + n);

	if (s) {
		memcpy(s, pfx, sizeof(pfx) - 1);
		memcpy(s + sizeof(pfx) - 1, type, n + 1);
	}
	return s;
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct engine_http *engine_http_new(uv_loop_t *loop,
				    const struct engine_http_opts *opts)
{
	static uv_once_t once = UV_ONCE_INIT;
	struct engine_http *h = calloc(1, sizeof(*h));
	char ua[64];

	uv_once(&once, global_init);
	if (!h)
		return NULL;
	h->loop = loop;
	h->multi = curl_multi_init();
	snprintf(ua, sizeof(ua), "certherd/%s", CERTHERD_VERSION);
	h->user_agent = strdup(opts && opts->user_agent ? opts->user_agent : ua);
	if (opts && opts->ca_bundle)
		h->ca_bundle = strdup(opts->ca_bundle);
	h->content_type = content_type_header(
		opts && opts->content_type ? opts->content_type
					   : "application/jose+json");
	if (!h->multi || !h->user_agent || !h->content_type ||
	    (opts && opts->ca_bundle && !h->ca_bundle)) {
		curl_multi_cleanup(h->multi);
		free(h->user_agent);
		free(h->content_type);
		free(h->ca_bundle);
		free(h);
		return NULL;
	}
	h->connect_timeout_ms =
		opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
	h->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 60000;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  opts && opts->max_host_connections
				  ? opts->max_host_connections
				  : 8L);
	/* Keep every pooled connection open between bursts. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 64L);
	return h;
}

int engine_http_send(struct engine_http *h, const struct acme_request *req,
		     engine_http_cb cb, void *ctx)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->h = h;
	x->cb = cb;
	x->ctx = ctx;
	x->easy = curl_easy_init();
	if (!x->easy)
		goto nomem;
	curl_easy_setopt(x->easy, CURLOPT_URL, req->url);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	x->hdrs_in.max = ACME_MAX_HEADERS;
	x->body_in.max = ACME_MAX_BODY;
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, &x->hdrs_in);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->body_in);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	/* HTTP/1.1 on a pool of kept-alive connections: Debian 12's libcurl
	 * (7.88) stalls HTTP/2 transfers for good once a few hundred streams
	 * are queued on multiplexed connections (seen against Pebble with
	 * 200 orders in flight), and a CA answers small requests fast enough
	 * that a pool of connections is not the bottleneck. */
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "https,http");
	/* The CA's redirects are not part of ACME; never follow them. */
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	if (h->ca_bundle)
		curl_easy_setopt(x->easy, CURLOPT_CAINFO, h->ca_bundle);
	x->hdrs = curl_slist_append(NULL, "Accept-Language: en");
	switch (req->method) {
	case ACME_HEAD:
		curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
		break;
	case ACME_POST:
		x->body_out = malloc(req->body_len + 1);
		if (!x->body_out)
			goto nomem;
		memcpy(x->body_out, req->body, req->body_len);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body_out);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE,
				 (long)req->body_len);
		x->hdrs = curl_slist_append(x->hdrs, h->content_type);
		/* No "Expect: 100-continue" round trip. */
		x->hdrs = curl_slist_append(x->hdrs, "Expect:");
		break;
	default:
		break;
	}
	if (!x->hdrs)
		goto nomem;
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	x->next = h->xfers;
	if (h->xfers)
		h->xfers->prev = x;
	h->xfers = x;
	h->active++;
	if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
		xfer_free(x);
		return -EIO;
	}
	return 0;
nomem:
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->body_out);
	free(x);
	return -ENOMEM;
}

size_t engine_http_active(const struct engine_http *h)
{
	return h->active;
}

static void http_closed(uv_handle_t *hd)
{
	free(hd->data);
}

void engine_http_free(struct engine_http *h)
{
	if (!h)
		return;
	while (h->xfers)
		xfer_free(h->xfers);
	/* Cleanup closes the connections, which removes their sockets
	 * through socket_cb. */
	curl_multi_cleanup(h->multi);
	free(h->ca_bundle);
	free(h->user_agent);
	free(h->content_type);
	uv_timer_stop(&h->timer);
	h->timer.data = h;
	uv_close((uv_handle_t *)&h->timer, http_closed);
}
