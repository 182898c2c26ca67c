/*
 * net_internal.h — what net_front.c and net_conn.c share: the worker and
 * the front. Not for other modules.
 */
#ifndef CERTHERD_NET_INTERNAL_H
#define CERTHERD_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "net/net.h"

struct net_conn;

/* One upstream: a TCP address or a unix socket path. */
struct net__upstream {
	int is_unix;
	struct sockaddr_storage ss; /* TCP */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int set;
};

struct net_worker {
	struct net_front *f;
	unsigned id;
	pthread_t th;
	int started;
	uv_loop_t loop;
	uv_poll_t lpoll; /* the listening socket */
	uv_async_t async; /* loads done, or stop */
	int lfd;
	atomic_int stop;
	int listening; /* lpoll open: not closed by a drain yet */
	struct net_conn *conns;	 /* every open connection */
	struct net_conn *paused; /* handshakes waiting for a certificate */
	unsigned n_conns;
};

/* Counters, updated by workers with relaxed atomics. */
struct net__counters {
	atomic_uint_fast64_t hs_default, drain_closed, accepted, refused, handshakes_ok, hs_no_sni,
		hs_unknown, hs_timeout, hs_error, upstream_connects, upstream_errors, conns_open,
		hs_ondemand_wait, hs_gave_up, acme_challenges;
};

/* The settings a SIGHUP may change (net_front_set_live), read by the
 * workers with relaxed loads: a timer already armed keeps its value. */
struct net__live {
	atomic_uint handshake_ms, idle_ms, max_conns, ondemand_wait_ms;
	atomic_int proxy_protocol;
};
#define LIVE(f, x) atomic_load_explicit(&(f)->live.x, memory_order_relaxed)

struct net_front {
	struct net_front_opts o;
	struct net__live live;
	struct tls_default *def; /* front.default_certificate */
	/* SIGTERM (net_life.c): the listeners close, connections that have
	 * not sent a request close, the rest may finish until drain_until
	 * (clock_mono_ms) */
	atomic_int draining;
	int64_t drain_until;
	SSL_CTX *ctx;
	struct tls_loader *loader;
	struct tls_alpn *alpn; /* NULL without tls_alpn */
	struct net_worker *w;
	unsigned n;
	struct net__upstream up, up_h2;
	/* the loader's "loaded" notifications reach the workers' async
	 * handles only while they exist */
	pthread_mutex_t notify_mu;
	int notify_off;
	struct net__counters c;
};

/* net_conn.c: take over an accepted socket (closed on failure). */
void net__conn_accept(struct net_worker *w, int fd);
/* Retry every paused handshake of w (a certificate load finished). */
void net__conn_retry_paused(struct net_worker *w);
/* Close every connection of w (stop). */
void net__conn_close_all(struct net_worker *w);
/* A drain began: close w's connections that have not sent a request
 * (OPEN: close_notify first), let the others go on. */
void net__conn_drain(struct net_worker *w);
/* net_life.c: on w's thread, a drain began: close its listener. */
void net__worker_drain(struct net_worker *w);

#endif
