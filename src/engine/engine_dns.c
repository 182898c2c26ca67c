/*
 * engine_dns.c — a stub DNS resolver on the daemon's libuv loop, for the
 * pre-flight check (engine_preflight.c judges what it finds).
 *
 * c-ares does the protocol (queries, retransmission, TCP fallback on
 * truncation, parsing and validating the answers); this file only gives
 * it the loop: c-ares reports through sock_state_cb which of its sockets
 * it wants watched, each gets a uv_poll, and one uv_timer fires when
 * c-ares' next timeout is due. After anything that may have changed its
 * timeouts (a query sent, a socket event, a timer) the timer is re-armed
 * from ares_timeout(). Nothing blocks: a lookup is two queries (A and
 * AAAA) in flight, finished by the second answer.
 *
 * Lifetimes: each poll handle is freed by its own close callback; the
 * resolver by its timer's, so a close in progress never touches freed
 * memory. ares_destroy() in engine_dns_free cancels every query; their
 * callbacks then see ARES_EDESTRUCTION and free the lookup without
 * calling the caller.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "engine/engine.h"

#define DEFAULT_TIMEOUT_MS 2000
#define TRIES 2

const char *const engine_dns_status_names[ENGINE_DNS__MAX] = {
	[ENGINE_DNS_OK] = "ok",
	[ENGINE_DNS_NODATA] = "nodata",
	[ENGINE_DNS_NXDOMAIN] = "nxdomain",
	[ENGINE_DNS_SERVFAIL] = "servfail",
	[ENGINE_DNS_REFUSED] = "refused",
	[ENGINE_DNS_TIMEOUT] = "timeout",
	[ENGINE_DNS_UNREACHABLE] = "unreachable",
	[ENGINE_DNS_BADRESP] = "badresp",
	[ENGINE_DNS_ERROR] = "error",
};

struct dns_sock {
	uv_poll_t poll;
	ares_socket_t fd;
	struct engine_dns *r;
	struct dns_sock *next;
};

struct engine_dns {
	uv_loop_t *loop;
	ares_channel channel;
	int channel_ok;
	int lib_ok;
	uv_timer_t timer;
	struct dns_sock *socks;
	size_t active;
	int destroying;
};

/* One lookup: the A and AAAA queries of one name. */
struct lookup {
	struct engine_dns *r;
	engine_dns_cb cb;
	void *ctx;
	int pending;   /* queries not answered yet */
	int cancelled; /* the resolver is going away: do not call cb */
	struct engine_dns_result res;
};

/* ---- the loop side: sockets and the timer ------------------------------- */

static void arm_timer(struct engine_dns *r);

static void sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct dns_sock *s = h->data;
	struct engine_dns *r = s->r;
	ares_socket_t rd = ARES_SOCKET_BAD, wr = ARES_SOCKET_BAD;

	/* On a poll error let c-ares read and write: it sees the socket's
	 * error itself and fails or retries the query. */
	if (status < 0 || (events & UV_READABLE))
		rd = s->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wr = s->fd;
	ares_process_fd(r->channel, rd, wr); /* may close s (deferred free) */
	arm_timer(r);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
			  int writable)
{
	struct engine_dns *r = data;
	struct dns_sock **pp, *s;

	for (pp = &r->socks; *pp && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (!readable && !writable) {
		/* c-ares is about to close fd: stop watching it first. */
		if (!s)
			return;
		*pp = s->next;
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, sock_closed);
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return; /* the query times out instead */
		if (uv_poll_init_socket(r->loop, &s->poll, fd) < 0) {
			free(s);
			return;
		}
		s->fd = fd;
		s->r = r;
		s->poll.data = s;
		s->next = r->socks;
		r->socks = s;
	}
	uv_poll_start(&s->poll,
		      (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
		      on_poll);
}

static void on_timer(uv_timer_t *t)
{
	struct engine_dns *r = t->data;

	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(r);
}

/* Wake up when c-ares' earliest timeout is due; idle when nothing runs. */
static void arm_timer(struct engine_dns *r)
{
	struct timeval tv, *t;
	uint64_t ms;

	if (r->destroying)
		return;
	if (!r->active) {
		uv_timer_stop(&r->timer);
		return;
	}
	t = ares_timeout(r->channel, NULL, &tv);
	if (!t) {
		uv_timer_stop(&r->timer);
		return;
	}
	/* Round up: waking a millisecond early would only arm it again. */
	ms = (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000;
	uv_timer_start(&r->timer, on_timer, ms, 0);
}

/* ---- answers --------------------------------------------------------------- */

static enum engine_dns_status status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return ENGINE_DNS_OK;
	case ARES_ENODATA:
		return ENGINE_DNS_NODATA;
	case ARES_ENOTFOUND:
		return ENGINE_DNS_NXDOMAIN;
	case ARES_ESERVFAIL:
		return ENGINE_DNS_SERVFAIL;
	case ARES_EREFUSED:
		return ENGINE_DNS_REFUSED;
	case ARES_ETIMEOUT:
		return ENGINE_DNS_TIMEOUT;
	case ARES_ECONNREFUSED:
		return ENGINE_DNS_UNREACHABLE;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
	case ARES_ENOTIMP:
		return ENGINE_DNS_BADRESP;
	default:
		return ENGINE_DNS_ERROR;
	}
}

/*
 * The chain as c-ares' hostent gives it: h_aliases are the names that
 * were CNAMEs, in the order of the answer (the name asked for first),
 * h_name is where the chain ends. The targets are therefore aliases[1..]
 * followed by h_name.
 */
static void take_chain(struct engine_dns_answer *a, const struct hostent *h)
{
	size_t n = 0;

	if (!h || !h->h_aliases || !h->h_aliases[0] || !h->h_name)
		return;
	for (size_t i = 1; h->h_aliases[i] && n < ENGINE_DNS_MAX_CNAMES; i++)
		snprintf(a->cnames[n++], ENGINE_DNS_NAME_MAX, "%s",
			 h->h_aliases[i]);
	if (n < ENGINE_DNS_MAX_CNAMES)
		snprintf(a->cnames[n++], ENGINE_DNS_NAME_MAX, "%s", h->h_name);
	a->n_cnames = n;
}

static void parse_a(struct engine_dns_answer *a, const unsigned char *buf,
		    int len)
{
	struct ares_addrttl ttl[ENGINE_DNS_MAX_ADDRS];
	struct hostent *h = NULL;
	int n = ENGINE_DNS_MAX_ADDRS, rc;

	rc = ares_parse_a_reply(buf, len, &h, ttl, &n);
	a->status = status_of(rc);
	if (rc == ARES_SUCCESS) {
		take_chain(a, h);
		for (int i = 0; i < n && i < ENGINE_DNS_MAX_ADDRS; i++)
			if (inet_ntop(AF_INET, &ttl[i].ipaddr,
				      a->addrs[a->n_addrs], ENGINE_DNS_ADDR_MAX))
				a->n_addrs++;
	}
	if (h)
		ares_free_hostent(h);
}

static void parse_aaaa(struct engine_dns_answer *a, const unsigned char *buf,
		       int len)
{
	struct ares_addr6ttl ttl[ENGINE_DNS_MAX_ADDRS];
	struct hostent *h = NULL;
	int n = ENGINE_DNS_MAX_ADDRS, rc;

	rc = ares_parse_aaaa_reply(buf, len, &h, ttl, &n);
	a->status = status_of(rc);
	if (rc == ARES_SUCCESS) {
		take_chain(a, h);
		for (int i = 0; i < n && i < ENGINE_DNS_MAX_ADDRS; i++)
			if (inet_ntop(AF_INET6, &ttl[i].ip6addr,
				      a->addrs[a->n_addrs], ENGINE_DNS_ADDR_MAX))
				a->n_addrs++;
	}
	if (h)
		ares_free_hostent(h);
}

static void query_done(struct lookup *l, struct engine_dns_answer *a,
		       int status, const unsigned char *buf, int len,
		       void (*parse)(struct engine_dns_answer *,
				     const unsigned char *, int))
{
	struct engine_dns *r = l->r;

	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		l->cancelled = 1;
	else if (status == ARES_SUCCESS)
		parse(a, buf, len);
	else
		a->status = status_of(status);
	if (--l->pending > 0)
		return;
	r->active--;
	if (!l->cancelled && !r->destroying)
		l->cb(l->ctx, &l->res);
	free(l);
}

static void on_a(void *arg, int status, int timeouts, unsigned char *buf,
		 int len)
{
	struct lookup *l = arg;

	(void)timeouts;
	query_done(l, &l->res.a, status, buf, len, parse_a);
}

static void on_aaaa(void *arg, int status, int timeouts, unsigned char *buf,
		    int len)
{
	struct lookup *l = arg;

	(void)timeouts;
	query_done(l, &l->res.aaaa, status, buf, len, parse_aaaa);
}

/* ---- public ------------------------------------------------------------------ */

int engine_dns_lookup(struct engine_dns *r, const char *name,
		      engine_dns_cb cb, void *ctx)
{
	struct lookup *l;
	size_t n = name ? strlen(name) : 0;

	if (!n || n >= ENGINE_DNS_NAME_MAX || !cb || r->destroying)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->r = r;
	l->cb = cb;
	l->ctx = ctx;
	l->pending = 2;
	l->res.a.status = l->res.aaaa.status = ENGINE_DNS_ERROR;
	r->active++;
	/* Either query may answer at once (a local failure): the lookup
	 * ends with whichever comes second, here or from the loop. */
	ares_query(r->channel, name, 1 /* C_IN */, 1 /* T_A */, on_a, l);
	ares_query(r->channel, name, 1 /* C_IN */, 28 /* T_AAAA */, on_aaaa, l);
	arm_timer(r);
	return 0;
}

size_t engine_dns_active(const struct engine_dns *r)
{
	return r ? r->active : 0;
}

static void dns_closed(uv_handle_t *h)
{
	free(h->data);
}

struct engine_dns *engine_dns_new(uv_loop_t *loop, const char *server,
				  unsigned timeout_ms, char *err, size_t errsz)
{
	struct engine_dns *r = calloc(1, sizeof(*r));
	struct ares_options opts;
	int rc;

	if (!r) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->loop = loop;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errsz, "cannot initialise c-ares: %s",
			 ares_strerror(rc));
		free(r);
		return NULL;
	}
	r->lib_ok = 1;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state_cb;
	opts.sock_state_cb_data = r;
	opts.timeout = (int)(timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
	opts.tries = TRIES;
	/* ares_query never applies search domains; NOSEARCH says so for
	 * anything else, and a name is always asked as it is. NOCHECKRESP:
	 * a SERVFAIL or REFUSED answer comes back as such instead of making
	 * c-ares try the next server and, once all did, report "connection
	 * refused" (1.18), which would tell the operator the wrong thing.
	 * A failed check is re-checked with backoff anyway. */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP;
	rc = ares_init_options(&r->channel, &opts,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
				       ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errsz, "cannot set up the DNS resolver: %s",
			 ares_strerror(rc));
		goto fail;
	}
	r->channel_ok = 1;
	if (server) {
		rc = ares_set_servers_ports_csv(r->channel, server);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errsz, "bad DNS server %s: %s", server,
				 ares_strerror(rc));
			goto fail;
		}
	}
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	return r;
fail:
	if (r->channel_ok)
		ares_destroy(r->channel);
	ares_library_cleanup();
	free(r);
	return NULL;
}

void engine_dns_free(struct engine_dns *r)
{
	if (!r)
		return;
	r->destroying = 1;
	/* Cancels every query (callbacks see ARES_EDESTRUCTION) and closes
	 * the sockets, which removes their polls through sock_state_cb. */
	ares_destroy(r->channel);
	while (r->socks) { /* any c-ares did not report closed */
		struct dns_sock *s = r->socks;

		r->socks = s->next;
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, sock_closed);
	}
	if (r->lib_ok)
		ares_library_cleanup();
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, dns_closed);
}
