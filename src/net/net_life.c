/*
 * net_life — a running front's lifecycle: settings a SIGHUP changes, the
 * default certificate, a removed domain, and the drain at SIGTERM.
 *
 * Drain: the caller (any thread) sets draining and a deadline and wakes
 * every worker; each closes its listening socket on its own thread (the
 * kernel then refuses new connections: with SO_REUSEPORT a connection
 * could otherwise land on a listener nobody accepts from) and closes the
 * connections that have not sent a request (keep-alive clients, preconnects:
 * nothing is lost). Handshakes in flight may complete, and the connections
 * relaying bytes go on, until they end or the deadline passes; then
 * net_front_stop closes what is left.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "tls/tls.h"
#include "util/util.h"

#define DRAIN_POLL_MS 20

void net_front_set_live(struct net_front *f, const struct net_front_live *l)
{
	if (!f)
		return;
	atomic_store_explicit(&f->live.handshake_ms,
			      l->handshake_timeout_ms ? l->handshake_timeout_ms
						      : 10000,
			      memory_order_relaxed);
	atomic_store_explicit(&f->live.idle_ms,
			      l->idle_timeout_ms ? l->idle_timeout_ms : 300000,
			      memory_order_relaxed);
	atomic_store_explicit(&f->live.max_conns,
			      l->max_conns ? l->max_conns : 16384,
			      memory_order_relaxed);
	atomic_store_explicit(&f->live.ondemand_wait_ms,
			      l->ondemand_wait_ms ? l->ondemand_wait_ms
						  : 30000,
			      memory_order_relaxed);
	atomic_store_explicit(&f->live.proxy_protocol, l->proxy_protocol != 0,
			      memory_order_relaxed);
}

void net_front_set_default(struct net_front *f, struct tls_cert *c)
{
	if (f)
		tls_default_set(f->def, c);
}

void net_front_removed(struct net_front *f, const char *name)
{
	if (f && f->loader)
		tls_loader_removed(f->loader, name);
}

static void listener_closed(uv_handle_t *h)
{
	struct net_worker *w = h->data;

	close(w->lfd);
	w->lfd = -1;
}

void net__worker_drain(struct net_worker *w)
{
	w->listening = 0;
	uv_close((uv_handle_t *)&w->lpoll, listener_closed);
	net__conn_drain(w);
}

void net_front_drain(struct net_front *f, int64_t drain_ms)
{
	int64_t until;

	if (!f)
		return;
	until = clock_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
	pthread_mutex_lock(&f->notify_mu);
	if (!atomic_load(&f->draining) || until < f->drain_until)
		f->drain_until = until;
	atomic_store(&f->draining, 1);
	if (!f->notify_off)
		for (unsigned i = 0; i < f->n; i++)
			uv_async_send(&f->w[i].async);
	pthread_mutex_unlock(&f->notify_mu);
	log_info("front", NULL,
		 "draining: not accepting; %llu connections may finish for "
		 "up to %lld ms",
		 (unsigned long long)atomic_load(&f->c.conns_open),
		 (long long)(drain_ms > 0 ? drain_ms : 0));
}

unsigned net_front_drain_wait(struct net_front *f)
{
	struct timespec ts = {0, DRAIN_POLL_MS * 1000000L};
	uint64_t open_;

	if (!f)
		return 0;
	for (;;) {
		int64_t until;

		pthread_mutex_lock(&f->notify_mu);
		until = f->drain_until;
		pthread_mutex_unlock(&f->notify_mu);
		open_ = atomic_load(&f->c.conns_open);
		if (open_ == 0 || clock_mono_ms() >= until)
			break;
		nanosleep(&ts, NULL);
	}
	if (open_)
		log_warn("front", NULL,
			 "drain time is up: closing %llu connections still "
			 "open",
			 (unsigned long long)open_);
	atomic_fetch_add(&f->c.drain_closed, open_);
	return (unsigned)open_;
}
