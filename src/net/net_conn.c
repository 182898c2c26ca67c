/*
 * net_conn — one front connection on its worker's loop: TLS handshake
 * (paused while its certificate loads), the client's first bytes, connect
 * to the upstream, PROXY v2 header, then bytes both ways.
 *
 *   HANDSHAKE --done--> OPEN --first bytes--> CONNECTING --connected--> RELAY
 *       |  ^ paused       |                                               |
 *       |  |              +-- close_notify/EOF, idle timeout --> CLOSING <-+
 *       |  | (ClientHello callback: certificate loading, or the   both ends done
 *       |  | name being issued on demand), on the worker's paused list,
 *       |  | no poll; retried when a load finishes or the front is woken
 *       +-------- alert, error, handshake timeout --------------------------> CLOSING
 *       +-------- done with a TLS-ALPN-01 challenge certificate ------------> CLOSING
 *
 * OPEN: the upstream is connected when the client has sent its first bytes
 * (HTTP clients always speak first), not at the end of the handshake: a
 * connection that closes without a request — a browser's preconnect, a
 * scanner, a health check of the TLS port — costs the upstream nothing,
 * and the PROXY header leaves with those first bytes in one write.
 *
 * Timer of HANDSHAKE: handshake_timeout_ms from the accept; when the
 * handshake first pauses for on-demand issuance it is restarted with
 * ondemand_wait_ms, and when that runs out the handshake is retried once
 * with hello.give_up set, which refuses it with an internal_error alert.
 *
 * Invariants of RELAY:
 * - client -> upstream: at most one upstream write in flight (c2u_busy);
 *   the client socket is not polled for reading meanwhile: back-pressure
 *   is the upstream's pace, and memory is one buffer per direction.
 * - upstream -> client: upstream reading is stopped while u2c holds bytes
 *   not yet accepted by SSL_write.
 * - half-close: the client's close_notify or EOF shuts the upstream's
 *   write side (after queued writes); the upstream's EOF sends
 *   close_notify and shuts the client's write side once u2c is flushed.
 *   The connection ends when both directions have ended, on an error, or
 *   after idle_timeout_ms with no byte moved.
 * CLOSING: every handle is being closed; the last close frees the
 * connection (SSL, socket). Callbacks that arrive meanwhile do nothing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "net/net_internal.h"
#include "tls/tls.h"
#include "util/util.h"

#define BUF_SIZE 16384 /* one TLS record of plaintext */

enum conn_state {
	CONN_HANDSHAKE = 0,
	CONN_OPEN,
	CONN_CONNECTING,
	CONN_RELAY,
	CONN_CLOSING,
	CONN__MAX
};
static const char *const conn_state_names[CONN__MAX] = {
	"handshake", "open", "connecting", "relay", "closing"};

struct net_conn {
	struct net_worker *w;
	struct net_conn *prev, *next;	/* w->conns */
	struct net_conn *pprev, *pnext; /* w->paused, when paused */
	int paused;
	int od_waiting; /* the timer counts the on-demand wait */
	enum conn_state state;
	int fd;
	SSL *ssl;
	struct tls_hello hello;
	uv_poll_t poll;
	int poll_events;
	uv_timer_t timer;
	uint64_t last_io; /* uv_now of the last byte moved */
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} up;
	int up_init;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	int open_handles;
	/* what SSL_read / SSL_write last asked for: 0, or
	 * SSL_ERROR_WANT_READ / SSL_ERROR_WANT_WRITE */
	int rd_want, wr_want;
	int client_eof, up_eof, up_shut, client_shut, up_reading;
	int c2u_busy;
	size_t first_len; /* OPEN -> RELAY: the client's first bytes in c2u */
	size_t u2c_len, u2c_off;
	/* client -> upstream bytes at C2U(c); the room before them takes
	 * the PROXY header, so it leaves with the client's first bytes */
	unsigned char c2u_buf[NET_PROXY_MAX + BUF_SIZE];
	unsigned char u2c[BUF_SIZE];
};

#define C2U(c) ((c)->c2u_buf + NET_PROXY_MAX)
#define COUNT(f, x) atomic_fetch_add_explicit(&(f)->c.x, 1, memory_order_relaxed)

static void conn_close(struct net_conn *c);
static void client_io(struct net_conn *c);

static void set_state(struct net_conn *c, enum conn_state s)
{
	log_debug("front", c->hello.sni[0] ? c->hello.sni : NULL,
		  "connection %s -> %s", conn_state_names[c->state],
		  conn_state_names[s]);
	c->state = s;
}

static void paused_unlink(struct net_conn *c)
{
	if (!c->paused)
		return;
	if (c->pprev)
		c->pprev->pnext = c->pnext;
	else
		c->w->paused = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
	c->pprev = c->pnext = NULL;
	c->paused = 0;
}

static void on_client_poll(uv_poll_t *p, int status, int events);

static void poll_set(struct net_conn *c, int events)
{
	if (events == c->poll_events)
		return;
	c->poll_events = events;
	if (events)
		uv_poll_start(&c->poll, events, on_client_poll);
	else
		uv_poll_stop(&c->poll);
}

/* Poll for what SSL_get_error's e asks for: 1 when it was a want. */
static int poll_want(struct net_conn *c, int e)
{
	if (e == SSL_ERROR_WANT_READ)
		poll_set(c, UV_READABLE);
	else if (e == SSL_ERROR_WANT_WRITE)
		poll_set(c, UV_WRITABLE);
	else
		return 0;
	return 1;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct net_conn *c = h->data;
	struct net_worker *w = c->w;

	if (--c->open_handles > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	atomic_fetch_sub_explicit(&w->f->c.conns_open, 1, memory_order_relaxed);
	SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

static void conn_close(struct net_conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	set_state(c, CONN_CLOSING);
	paused_unlink(c);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	if (c->up_init)
		uv_close((uv_handle_t *)&c->up, on_handle_closed);
}

static void touch(struct net_conn *c)
{
	c->last_io = uv_now(&c->w->loop);
}

/* ---- handshake ----------------------------------------------------------- */

static void first_bytes(struct net_conn *c);
static void on_timer(uv_timer_t *t);

static void handshake(struct net_conn *c)
{
	struct net_front *f = c->w->f;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1 && c->hello.result == TLS_HELLO_ACME) {
		/* RFC 8737 section 3: the validation is the handshake;
		 * nothing else is exchanged */
		COUNT(f, acme_challenges);
		log_debug("front", c->hello.sni,
			  "tls-alpn-01 challenge certificate served");
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
		conn_close(c);
		return;
	}
	if (r == 1) {
		COUNT(f, handshakes_ok);
		if (c->hello.result == TLS_HELLO_DEFAULT)
			COUNT(f, hs_default);
		set_state(c, CONN_OPEN);
		touch(c);
		/* from now on the timer counts idle time */
		uv_timer_start(&c->timer, on_timer, LIVE(f, idle_ms), 0);
		first_bytes(c);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (poll_want(c, e))
		return;
	switch (e) {
	case SSL_ERROR_WANT_CLIENT_HELLO_CB:
		/* the certificate is loading: wait off the poll, on the
		 * worker's paused list, until the loader says so */
		poll_set(c, 0);
		if (c->hello.result == TLS_HELLO_ONDEMAND && !c->od_waiting) {
			c->od_waiting = 1;
			COUNT(f, hs_ondemand_wait);
			uv_timer_start(&c->timer, on_timer,
				       LIVE(f, ondemand_wait_ms), 0);
		}
		if (!c->paused) {
			c->paused = 1;
			c->pnext = c->w->paused;
			c->pprev = NULL;
			if (c->pnext)
				c->pnext->pprev = c;
			c->w->paused = c;
		}
		return;
	default:
		break;
	}
	switch (c->hello.result) {
	case TLS_HELLO_NO_SNI:
		COUNT(f, hs_no_sni);
		break;
	case TLS_HELLO_UNKNOWN:
		COUNT(f, hs_unknown);
		log_debug("front", c->hello.sni,
			  "handshake refused: no certificate");
		break;
	case TLS_HELLO_GAVE_UP:
		COUNT(f, hs_gave_up);
		log_warn("front", c->hello.sni,
			 "handshake refused: no on-demand certificate after "
			 "%u ms",
			 LIVE(f, ondemand_wait_ms));
		break;
	default:
		COUNT(f, hs_error);
		break;
	}
	ERR_clear_error();
	conn_close(c);
}

/* ---- relay ---------------------------------------------------------------- */

static void on_up_written(uv_write_t *req, int status)
{
	struct net_conn *c = req->data;

	c->c2u_busy = 0;
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		COUNT(c->w->f, upstream_errors);
		conn_close(c);
		return;
	}
	touch(c);
	/* SSL may hold more decrypted bytes than the poll can tell */
	client_io(c);
}

static int write_up(struct net_conn *c, const unsigned char *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int rc;

	c->wreq.data = c;
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->up, &b, 1, on_up_written);
	if (rc < 0)
		return rc;
	c->c2u_busy = 1;
	return 0;
}

static void on_up_shutdown(uv_shutdown_t *req, int status)
{
	struct net_conn *c = req->data;

	if (c->state != CONN_CLOSING)
		client_io(c); /* both ends may be done now */
}

/* Read from the client and queue the bytes for the upstream. */
static void from_client(struct net_conn *c)
{
	int n, e;

	if (c->client_eof || c->c2u_busy)
		return;
	ERR_clear_error();
	n = SSL_read(c->ssl, C2U(c), BUF_SIZE);
	if (n > 0) {
		c->rd_want = 0;
		touch(c);
		if (write_up(c, C2U(c), (size_t)n) < 0)
			conn_close(c);
		return;
	}
	e = SSL_get_error(c->ssl, n);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		c->rd_want = e;
		return;
	case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (see tls_ctx.c) */
		c->client_eof = 1;
		c->sreq.data = c;
		if (!c->up_shut &&
		    uv_shutdown(&c->sreq, (uv_stream_t *)&c->up,
				on_up_shutdown) == 0)
			c->up_shut = 1;
		return;
	default:
		ERR_clear_error();
		conn_close(c);
		return;
	}
}

static void on_up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct net_conn *c = h->data;

	*buf = uv_buf_init((char *)c->u2c, sizeof(c->u2c));
}

static void up_read_stop(struct net_conn *c)
{
	if (c->up_reading) {
		uv_read_stop((uv_stream_t *)&c->up);
		c->up_reading = 0;
	}
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct net_conn *c = s->data;

	if (c->state == CONN_CLOSING || nread == 0)
		return;
	if (nread > 0) {
		/* one buffer: stop reading until the client took it */
		c->u2c_len = (size_t)nread;
		c->u2c_off = 0;
		up_read_stop(c);
		touch(c);
	} else if (nread == UV_EOF) {
		c->up_eof = 1;
		up_read_stop(c);
	} else {
		COUNT(c->w->f, upstream_errors);
		conn_close(c);
		return;
	}
	client_io(c);
}

static void up_read_start(struct net_conn *c)
{
	if (!c->up_reading && !c->up_eof && c->u2c_len == 0 &&
	    uv_read_start((uv_stream_t *)&c->up, on_up_alloc, on_up_read) == 0)
		c->up_reading = 1;
}

/* Give the client what the upstream sent. */
static void to_client(struct net_conn *c)
{
	int n, e;

	if (c->u2c_len == 0) {
		if (c->up_eof && !c->client_shut) {
			/* the upstream is done: tell the client, keep reading
			 * it until it is done too */
			ERR_clear_error();
			SSL_shutdown(c->ssl);
			ERR_clear_error();
			shutdown(c->fd, SHUT_WR);
			c->client_shut = 1;
		}
		return;
	}
	ERR_clear_error();
	n = SSL_write(c->ssl, c->u2c + c->u2c_off, (int)(c->u2c_len - c->u2c_off));
	if (n > 0) {
		c->wr_want = 0;
		touch(c);
		c->u2c_off += (size_t)n;
		if (c->u2c_off == c->u2c_len) {
			c->u2c_len = c->u2c_off = 0;
			up_read_start(c);
			if (c->up_eof)
				to_client(c); /* send close_notify now */
		}
		return;
	}
	e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->wr_want = e;
		return;
	}
	ERR_clear_error();
	conn_close(c);
}

/* Everything that can move on the client side, then what to poll for. */
static void client_io(struct net_conn *c)
{
	int ev = 0;

	if (c->state != CONN_RELAY)
		return;
	from_client(c);
	if (c->state != CONN_RELAY)
		return;
	to_client(c);
	if (c->state != CONN_RELAY)
		return;
	if (c->client_eof && c->client_shut && !c->c2u_busy) {
		conn_close(c); /* both directions ended */
		return;
	}
	if (!c->client_eof && !c->c2u_busy)
		ev |= c->rd_want == SSL_ERROR_WANT_WRITE ? UV_WRITABLE
							 : UV_READABLE;
	if (c->u2c_len)
		ev |= c->wr_want == SSL_ERROR_WANT_READ ? UV_READABLE
							: UV_WRITABLE;
	poll_set(c, ev);
}

static void on_client_poll(uv_poll_t *p, int status, int events)
{
	struct net_conn *c = p->data;

	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_HANDSHAKE)
		handshake(c);
	else if (c->state == CONN_OPEN)
		first_bytes(c);
	else
		client_io(c);
}

static void on_up_connected(uv_connect_t *req, int status)
{
	struct net_conn *c = req->data;
	struct net_front *f = c->w->f;
	unsigned char hdr[NET_PROXY_MAX];
	size_t hlen = 0;

	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		COUNT(f, upstream_errors);
		log_warn("front", c->hello.sni, "upstream connect failed: %s",
			 uv_strerror(status));
		conn_close(c);
		return;
	}
	set_state(c, CONN_RELAY);
	touch(c);
	if (LIVE(f, proxy_protocol)) {
		/* asked only now: most connections never need them */
		struct sockaddr_storage peer, local;
		socklen_t plen = sizeof(peer), llen = sizeof(local);
		struct net_proxy_info pi = {
			.src = (struct sockaddr *)&peer,
			.dst = (struct sockaddr *)&local,
			.authority = c->hello.sni,
		};
		unsigned alen = 0;
		int n;

		if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) < 0 ||
		    getsockname(c->fd, (struct sockaddr *)&local, &llen) < 0) {
			conn_close(c); /* the client is gone already */
			return;
		}
		SSL_get0_alpn_selected(c->ssl, &pi.alpn, &alen);
		pi.alpn_len = alen;
		n = net_proxy_build(&pi, hdr, sizeof(hdr));
		if (n < 0) {
			conn_close(c);
			return;
		}
		hlen = (size_t)n;
		memcpy(C2U(c) - hlen, hdr, hlen);
	}
	/* the header goes right before the first bytes: one write */
	if (write_up(c, C2U(c) - hlen, hlen + c->first_len) < 0) {
		conn_close(c);
		return;
	}
	c->first_len = 0;
	up_read_start(c);
	c->poll_events = -1; /* force client_io to set the poll */
	client_io(c);
}

static void start_upstream(struct net_conn *c)
{
	struct net_front *f = c->w->f;
	const struct net__upstream *u = &f->up;
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	int rc;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (f->up_h2.set && alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)
		u = &f->up_h2;
	set_state(c, CONN_CONNECTING);
	touch(c);
	COUNT(f, upstream_connects);
	c->creq.data = c;
	if (u->is_unix) {
		rc = uv_pipe_init(&c->w->loop, &c->up.pipe, 0);
		if (rc == 0) {
			c->up_init = 1;
			c->open_handles++;
			c->up.pipe.data = c;
			uv_pipe_connect(&c->creq, &c->up.pipe, u->path,
					on_up_connected);
		}
	} else {
		rc = uv_tcp_init(&c->w->loop, &c->up.tcp);
		if (rc == 0) {
			c->up_init = 1;
			c->open_handles++;
			c->up.tcp.data = c;
			uv_tcp_nodelay(&c->up.tcp, 1);
			rc = uv_tcp_connect(&c->creq, &c->up.tcp,
					    (const struct sockaddr *)&u->ss,
					    on_up_connected);
		}
	}
	if (rc < 0) {
		COUNT(f, upstream_errors);
		log_warn("front", c->hello.sni, "upstream connect failed: %s",
			 uv_strerror(rc));
		conn_close(c);
	}
}

/* OPEN: wait for the client's first bytes, then connect the upstream with
 * them in hand. A client that ends before sending any gets close_notify
 * and its connection closed; the upstream never hears of it. */
static void first_bytes(struct net_conn *c)
{
	int n, e;

	ERR_clear_error();
	n = SSL_read(c->ssl, C2U(c), BUF_SIZE);
	if (n > 0) {
		c->first_len = (size_t)n;
		touch(c);
		poll_set(c, 0); /* one buffer: nothing more until connected */
		start_upstream(c);
		return;
	}
	e = SSL_get_error(c->ssl, n);
	if (poll_want(c, e))
		return;
	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN)
		SSL_shutdown(c->ssl); /* a reply to its close_notify */
	ERR_clear_error();
	conn_close(c);
}

/* ---- timers, accept, worker hooks ------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
	struct net_conn *c = t->data;
	struct net_front *f = c->w->f;
	uint64_t now = uv_now(&c->w->loop), idle = LIVE(f, idle_ms);

	if (c->state == CONN_HANDSHAKE && c->paused &&
	    c->hello.result == TLS_HELLO_ONDEMAND && !c->hello.give_up) {
		/* the on-demand wait ran out: refuse with a clear alert
		 * (hello_cb sees give_up) rather than a silent close */
		c->hello.give_up = 1;
		paused_unlink(c);
		handshake(c);
		if (c->state == CONN_HANDSHAKE) /* the certificate came just
						   now: the usual bound */
			uv_timer_start(&c->timer, on_timer,
				       LIVE(f, handshake_ms), 0);
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		/* a slow or silent client, or a certificate that takes too
		 * long to load */
		COUNT(f, hs_timeout);
		conn_close(c);
		return;
	}
	if (now - c->last_io >= idle) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timer, idle - (now - c->last_io), 0);
}

void net__conn_accept(struct net_worker *w, int fd)
{
	struct net_front *f = w->f;
	struct net_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	/* TCP_NODELAY comes from the listener (Linux copies it) */
	c->ssl = SSL_new(f->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1 ||
	    uv_poll_init_socket(&w->loop, &c->poll, fd) < 0) {
		ERR_clear_error();
		SSL_free(c->ssl);
		close(fd);
		free(c);
		return;
	}
	SSL_set_accept_state(c->ssl);
	SSL_set_app_data(c->ssl, &c->hello);
	c->poll.data = c;
	uv_timer_init(&w->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->next = w->conns;
	if (c->next)
		c->next->prev = c;
	w->conns = c;
	w->n_conns++;
	atomic_fetch_add_explicit(&f->c.conns_open, 1, memory_order_relaxed);
	uv_timer_start(&c->timer, on_timer, LIVE(f, handshake_ms), 0);
	poll_set(c, UV_READABLE); /* the ClientHello */
}

void net__conn_retry_paused(struct net_worker *w)
{
	struct net_conn *c = w->paused, *next;

	/* detach the list first: a handshake that must wait again puts
	 * itself back on it */
	w->paused = NULL;
	for (; c; c = next) {
		next = c->pnext;
		c->paused = 0;
		c->pprev = c->pnext = NULL;
		if (c->state == CONN_HANDSHAKE)
			handshake(c);
	}
}

void net__conn_drain(struct net_worker *w)
{
	for (struct net_conn *c = w->conns; c; c = c->next) {
		if (c->state != CONN_OPEN)
			continue; /* handshakes complete, relays finish */
		/* no request yet: nothing is lost, and a keep-alive client
		 * that would open one later reconnects elsewhere */
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
		COUNT(w->f, drain_closed);
		conn_close(c);
	}
}

void net__conn_close_all(struct net_worker *w)
{
	for (struct net_conn *c = w->conns; c; c = c->next)
		conn_close(c);
}
