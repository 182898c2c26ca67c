/*
 * net_front — front mode's workers: one thread per core, each with its
 * own libuv loop and its own listening socket on front.listen
 * (SO_REUSEPORT: the kernel spreads new connections over the workers, no
 * shared accept lock, no thundering herd). A worker owns its connections
 * from accept to close; workers share only the SSL_CTX and the
 * certificate loader (tls/).
 *
 * Why libuv and not a hand-written epoll loop: the rest of certherd runs
 * on libuv, and a worker needs what it gives for free: timers (handshake
 * and idle timeouts), a cross-thread wake-up (uv_async: a certificate
 * finished loading), and upstream connects to TCP or unix sockets with
 * write queues. The client socket is watched with uv_poll so OpenSSL
 * reads and writes it directly (no copy through a BIO pair).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "tls/tls.h"
#include "util/config.h"
#include "util/util.h"

#define LISTEN_BACKLOG 4096
#define ACCEPT_BATCH 64

/* config_addr -> sockaddr for a listener or a TCP upstream. any: ":PORT"
 * binds [::] dual-stack. */
static int to_sockaddr(const struct config_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->kind == CONFIG_ADDR_ANY) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons(a->port);
		return 0;
	}
	if (a->kind != CONFIG_ADDR_IP)
		return -EINVAL;
	if (strchr(a->host, ':')) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		return inet_pton(AF_INET6, a->host, &s6->sin6_addr) == 1
			       ? 0
			       : -EINVAL;
	} else {
		struct sockaddr_in *s4 = (void *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		return inet_pton(AF_INET, a->host, &s4->sin_addr) == 1
			       ? 0
			       : -EINVAL;
	}
}

static int upstream_from(const struct config_addr *a, struct net__upstream *u)
{
	memset(u, 0, sizeof(*u));
	if (!a || a->kind == CONFIG_ADDR_NONE)
		return 0;
	u->set = 1;
	if (a->kind == CONFIG_ADDR_UNIX) {
		u->is_unix = 1;
		if (strlen(a->path) >= sizeof(u->path))
			return -EINVAL;
		strcpy(u->path, a->path);
		return 0;
	}
	return to_sockaddr(a, &u->ss);
}

static int listen_socket(const struct config_addr *a, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	int fd, one = 1, zero = 0;
	socklen_t len;

	if (to_sockaddr(a, &ss) < 0) {
		snprintf(err, errsz, "front.listen: not an address to listen on");
		return -EINVAL;
	}
	len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
				      : sizeof(struct sockaddr_in6);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0 && a->kind == CONFIG_ADDR_ANY) {
		/* no IPv6 on this host: every IPv4 address */
		struct sockaddr_in *s4 = (void *)&ss;

		memset(&ss, 0, sizeof(ss));
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		len = sizeof(*s4);
		fd = socket(AF_INET,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    /* accepted sockets inherit it: no call per connection */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6 && a->kind == CONFIG_ADDR_ANY &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail: {
	int e = errno;

	snprintf(err, errsz, "front.listen: cannot listen on port %u: %s",
		 a->port, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}
}

static void on_listen(uv_poll_t *p, int status, int events)
{
	struct net_worker *w = p->data;

	if (status < 0)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(w->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("front", NULL,
					 "cannot accept: %s", strerror(errno));
			return; /* EAGAIN: all taken, or another worker's */
		}
		atomic_fetch_add_explicit(&w->f->c.accepted, 1,
					  memory_order_relaxed);
		if (w->n_conns >= LIVE(w->f, max_conns)) {
			atomic_fetch_add_explicit(&w->f->c.refused, 1,
						  memory_order_relaxed);
			close(fd);
			continue;
		}
		net__conn_accept(w, fd);
	}
}

static void on_async(uv_async_t *a)
{
	struct net_worker *w = a->data;

	if (atomic_load(&w->stop)) {
		if (!uv_is_closing((uv_handle_t *)&w->async)) {
			if (w->listening)
				uv_close((uv_handle_t *)&w->lpoll, NULL);
			w->listening = 0;
			uv_close((uv_handle_t *)&w->async, NULL);
			net__conn_close_all(w);
		}
		return;
	}
	if (atomic_load(&w->f->draining) && w->listening)
		net__worker_drain(w);
	net__conn_retry_paused(w);
}

static void *worker_main(void *arg)
{
	struct net_worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* The loader finished loads: wake every worker to retry paused
 * handshakes (uv_async_send coalesces). */
static void loaded(void *ctx)
{
	struct net_front *f = ctx;

	pthread_mutex_lock(&f->notify_mu);
	if (!f->notify_off)
		for (unsigned i = 0; i < f->n; i++)
			uv_async_send(&f->w[i].async);
	pthread_mutex_unlock(&f->notify_mu);
}

static int worker_init(struct net_front *f, struct net_worker *w, unsigned id,
		       char *err, size_t errsz)
{
	int rc;

	w->f = f;
	w->id = id;
	w->lfd = -1;
	rc = uv_loop_init(&w->loop);
	if (rc < 0) {
		snprintf(err, errsz, "front: %s", uv_strerror(rc));
		return rc;
	}
	w->lfd = listen_socket(f->o.listen, err, errsz);
	if (w->lfd < 0) {
		rc = w->lfd;
		uv_loop_close(&w->loop);
		return rc;
	}
	uv_async_init(&w->loop, &w->async, on_async);
	w->async.data = w;
	uv_poll_init_socket(&w->loop, &w->lpoll, w->lfd);
	w->lpoll.data = w;
	uv_poll_start(&w->lpoll, UV_READABLE, on_listen);
	w->listening = 1;
	return 0;
}

int net_front_start(const struct net_front_opts *o, struct net_front **out,
		    char *err, size_t errsz)
{
	struct net_front *f;
	struct tls_loader_opts lo = {0};
	struct tls_ctx_opts co = {0};
	unsigned i;
	int rc;

	*out = NULL;
	/* OpenSSL and libuv write to sockets with write(2): a client that
	 * resets its connection must cost an EPIPE, not the process. The
	 * daemon has no use for SIGPIPE anywhere. */
	signal(SIGPIPE, SIG_IGN);
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	f->o = *o;
	pthread_mutex_init(&f->notify_mu, NULL);
	if (!f->o.workers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		f->o.workers = n > 0 ? (unsigned)n : 1;
	}
	if (!f->o.handshake_timeout_ms)
		f->o.handshake_timeout_ms = 10000;
	if (!f->o.idle_timeout_ms)
		f->o.idle_timeout_ms = 300000;
	if (!f->o.max_conns)
		f->o.max_conns = 16384;
	if (!f->o.ondemand_wait_ms)
		f->o.ondemand_wait_ms = 30000;
	{
		struct net_front_live lv = {
			.handshake_timeout_ms = f->o.handshake_timeout_ms,
			.idle_timeout_ms = f->o.idle_timeout_ms,
			.max_conns = f->o.max_conns,
			.ondemand_wait_ms = f->o.ondemand_wait_ms,
			.proxy_protocol = f->o.proxy_protocol,
		};

		net_front_set_live(f, &lv);
	}
	if (!(f->def = tls_default_new())) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	tls_default_set(f->def, o->default_cert);
	if (upstream_from(o->upstream, &f->up) < 0 || !f->up.set ||
	    upstream_from(o->upstream_h2c, &f->up_h2) < 0) {
		snprintf(err, errsz, "front.upstream: not a usable address");
		rc = -EINVAL;
		goto fail;
	}
	lo.state_dir = o->state_dir;
	lo.cache_size = o->cache_size;
	lo.loaded = loaded;
	lo.ctx = f;
	rc = tls_loader_start(&lo, &f->loader, err, errsz);
	if (rc < 0)
		goto fail;
	if (o->tls_alpn && !(f->alpn = tls_alpn_new())) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	co.loader = f->loader;
	co.h2 = f->up_h2.set;
	co.alpn = f->alpn;
	co.unknown = o->unknown;
	co.unknown_ctx = o->unknown_ctx;
	co.def = f->def;
	f->ctx = tls_ctx_new(&co, err, errsz);
	if (!f->ctx) {
		rc = -EIO;
		goto fail;
	}
	f->w = calloc(f->o.workers, sizeof(*f->w));
	if (!f->w) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	/* every listener is bound before any thread starts: a port in use
	 * fails the start, not one worker */
	for (i = 0; i < f->o.workers; i++) {
		rc = worker_init(f, &f->w[i], i, err, errsz);
		if (rc < 0)
			goto fail;
		f->n++;
	}
	for (i = 0; i < f->n; i++) {
		rc = -pthread_create(&f->w[i].th, NULL, worker_main, &f->w[i]);
		if (rc < 0) {
			snprintf(err, errsz, "front: cannot start a worker: %s",
				 strerror(-rc));
			goto fail;
		}
		f->w[i].started = 1;
	}
	log_info("front", NULL, "TLS on port %u, %u workers, cache %zu",
		 o->listen->port, f->n, o->cache_size);
	*out = f;
	return 0;
fail:
	net_front_stop(f);
	return rc;
}

void net_front_stop(struct net_front *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->notify_mu);
	f->notify_off = 1;
	pthread_mutex_unlock(&f->notify_mu);
	for (unsigned i = 0; i < f->n; i++) {
		struct net_worker *w = &f->w[i];

		atomic_store(&w->stop, 1);
		if (!w->started) {
			/* never ran: close its handles on this thread */
			on_async(&w->async);
			uv_run(&w->loop, UV_RUN_DEFAULT);
		} else {
			uv_async_send(&w->async);
			pthread_join(w->th, NULL);
		}
		uv_loop_close(&w->loop);
		if (w->lfd >= 0)
			close(w->lfd);
	}
	tls_loader_stop(f->loader);
	tls_ctx_free(f->ctx);
	tls_alpn_free(f->alpn);
	tls_default_free(f->def);
	free(f->w);
	pthread_mutex_destroy(&f->notify_mu);
	free(f);
}

void net_front_cert_changed(struct net_front *f, const char *name)
{
	if (!f || !f->loader)
		return;
	tls_loader_changed(f->loader, name);
	/* handshakes waiting for this name's on-demand certificate look it
	 * up again (a miss now: it loads, and they resume when it has) */
	if (f->o.unknown)
		loaded(f);
}

void net_front_wake(struct net_front *f)
{
	if (f)
		loaded(f);
}

int net_front_alpn_publish(struct net_front *f, const char *name,
			   const unsigned char digest[32], char *err,
			   size_t errsz)
{
	if (!f || !f->alpn) {
		snprintf(err, errsz, "tls-alpn-01 needs front mode");
		return -ENOTSUP;
	}
	return tls_alpn_publish(f->alpn, name, digest, err, errsz);
}

void net_front_alpn_unpublish(struct net_front *f, const char *name)
{
	if (f)
		tls_alpn_unpublish(f->alpn, name);
}

void net_front_stats(struct net_front *f, struct net_front_stats *out)
{
	struct tls_loader_stats ls;

	memset(out, 0, sizeof(*out));
#define C(x) out->x = atomic_load_explicit(&f->c.x, memory_order_relaxed)
	C(accepted);
	C(refused);
	C(handshakes_ok);
	C(hs_no_sni);
	C(hs_unknown);
	C(hs_timeout);
	C(hs_error);
	C(upstream_connects);
	C(upstream_errors);
	C(conns_open);
	C(hs_ondemand_wait);
	C(hs_gave_up);
	C(acme_challenges);
	C(hs_default);
	C(drain_closed);
#undef C
	tls_loader_stats(f->loader, &ls);
	out->cache_hits = ls.hits;
	out->cache_misses = ls.misses;
	out->cache_loads = ls.loads;
	out->cache_load_errors = ls.load_errors;
	out->cache_present = ls.present;
	out->cache_absent = ls.absent_kept;
}
