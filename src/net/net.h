/*
 * net — front mode's connections: the TLS listener (one libuv loop per
 * worker thread, each with its own SO_REUSEPORT socket), the relay from a
 * terminated TLS connection to the upstream web server, and the PROXY
 * protocol v2 header that tells the upstream who the client is.
 *
 *   net_proxy.c   PROXY v2 header builder and parser (pure)
 *   net_front.c   workers, listeners, start/stop, stats
 *   net_conn.c    one connection: handshake, upstream connect, relay
 *
 * Error convention: int functions return 0 (or a length where stated) or
 * a negative errno; pointer functions return NULL. Prefix net_.
 */
#ifndef CERTHERD_NET_H
#define CERTHERD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct config_addr;
struct tls_cert;

/* ---- PROXY protocol v2 (net_proxy.c, pure) ------------------------------ */

/* 16 fixed + 36 (IPv6 addresses) + TLVs: authority (3 + 253), ALPN
 * (3 + 255), rounded up. */
#define NET_PROXY_MAX 576

/* PP2 TLV types used (haproxy's proxy-protocol.txt, section 2.2). */
#define NET_PP2_TYPE_ALPN 0x01
#define NET_PP2_TYPE_AUTHORITY 0x02

struct net_proxy_info {
	const struct sockaddr *src; /* the client (AF_INET or AF_INET6; a
				       v4-mapped IPv6 address is sent as
				       IPv4) */
	const struct sockaddr *dst; /* the address it connected to */
	const char *authority;	    /* SNI, NULL or "" = none; <= 253 */
	const unsigned char *alpn;  /* negotiated protocol, NULL = none */
	size_t alpn_len;	    /* <= 255 */
};
/*
 * Write the PROXY v2 header (command PROXY, TCP over the source's family)
 * for in into out. Returns its length (> 0), -EINVAL for an address family
 * other than IPv4/IPv6, mismatched families (after unmapping), or an
 * over-long TLV value, -ENOSPC when outsz is too small (NET_PROXY_MAX is
 * always enough).
 */
int net_proxy_build(const struct net_proxy_info *in, unsigned char *out,
		    size_t outsz);

struct net_proxy_parsed {
	int local;			/* command LOCAL: no addresses */
	struct sockaddr_storage src, dst;
	char authority[256];		/* "" when absent */
	unsigned char alpn[256];
	size_t alpn_len;
};
/*
 * Parse a PROXY v2 header at the start of in. Returns the header's length
 * (> 0), 0 when more bytes are needed, -EINVAL when it is not a valid v2
 * header (bad signature, version, command, family, lengths, or TLVs that
 * overrun the header). Unknown TLVs are skipped. For tests and fuzzing
 * the builder; the daemon only builds.
 */
int net_proxy_parse(const unsigned char *in, size_t len,
		    struct net_proxy_parsed *out);

/* ---- the front (net_front.c) ------------------------------------------- */

struct net_front;
struct tls_loader;

struct net_front_opts {
	const char *state_dir;			  /* the store */
	const struct config_addr *listen;	  /* front.listen */
	const struct config_addr *upstream;	  /* front.upstream */
	const struct config_addr *upstream_h2c;	  /* NONE: no h2 */
	int proxy_protocol;			  /* send PROXY v2 */
	unsigned workers;			  /* 0: one per core */
	size_t cache_size;			  /* front.cache_size */
	unsigned handshake_timeout_ms;		  /* 0: 10 s */
	unsigned idle_timeout_ms;		  /* 0: 5 min */
	unsigned max_conns;			  /* per worker, 0: 16384 */
	/* TLS-ALPN-01 (RFC 8737) answered on listen: net_front_alpn_* */
	int tls_alpn;
	/* On-demand issuance (docs/front.md): asked, on a worker thread,
	 * whether a name with no certificate may wait for one (1) or is
	 * refused (0); NULL = off. Must not block. A waiting handshake is
	 * retried at every net_front_wake and certificate change, and
	 * refused with an internal_error alert after ondemand_wait_ms. */
	int (*unknown)(void *ctx, const char *sni);
	void *unknown_ctx;
	unsigned ondemand_wait_ms;		  /* 0: 30 s */
	/* front.default_certificate (tls_default_load), NULL = none: the
	 * front takes its own reference */
	struct tls_cert *default_cert;
};

/* Counters since start; a snapshot. */
struct net_front_stats {
	uint64_t accepted, refused;	/* refused: over max_conns */
	uint64_t handshakes_ok;
	uint64_t hs_no_sni, hs_unknown, hs_timeout, hs_error;
	uint64_t hs_ondemand_wait, hs_gave_up; /* paused for on-demand
						issuance; refused after the
						wait bound */
	uint64_t acme_challenges;	/* TLS-ALPN-01 handshakes answered */
	uint64_t hs_default;	/* completed with the default certificate
				   (also counted in handshakes_ok) */
	uint64_t drain_closed;	/* closed by a drain: not done by its end,
				   or no request yet when it began */
	uint64_t upstream_connects; /* made at a client's first bytes */
	uint64_t upstream_errors;
	uint64_t conns_open;
	uint64_t cache_hits, cache_misses, cache_loads, cache_load_errors;
	uint64_t cache_present, cache_absent;
};

/*
 * Bind the listeners (errors such as a port in use are reported here, with
 * err set), start the certificate loader and the worker threads. *out is
 * the caller's: net_front_stop.
 */
int net_front_start(const struct net_front_opts *o, struct net_front **out,
		    char *err, size_t errsz);
/* Close the listeners and every connection, join the threads, free.
 * NULL ok. */
void net_front_stop(struct net_front *f);
/* A domain's certificate changed (issued, renewed): served from the next
 * handshake on; handshakes in flight keep the old one. Any thread. */
void net_front_cert_changed(struct net_front *f, const char *name);
/* Retry every paused handshake (an on-demand decision was made). Any
 * thread. */
void net_front_wake(struct net_front *f);
/* TLS-ALPN-01: serve name's challenge certificate (digest: SHA-256 of the
 * key authorization) to handshakes offering acme-tls/1, until withdrawn.
 * 0, -ENOTSUP when the front was started without tls_alpn, or another
 * negative errno with err set. Any thread. */
int net_front_alpn_publish(struct net_front *f, const char *name,
			   const unsigned char digest[32], char *err,
			   size_t errsz);
void net_front_alpn_unpublish(struct net_front *f, const char *name);
void net_front_stats(struct net_front *f, struct net_front_stats *out);

/* ---- lifecycle (net_life.c): reload, removal, drain -------------------- */

/* What a SIGHUP may change on a running front (0: the default, as in
 * struct net_front_opts). New connections and newly armed timers use the
 * new values; established connections are not touched. */
struct net_front_live {
	unsigned handshake_timeout_ms, idle_timeout_ms, max_conns;
	unsigned ondemand_wait_ms;
	int proxy_protocol;
};
void net_front_set_live(struct net_front *f, const struct net_front_live *l);
/* Serve c (NULL: none) to names with no certificate from the next
 * handshake on; the front takes its own reference. Any thread. */
void net_front_set_default(struct net_front *f, struct tls_cert *c);
/* name's domain was removed: from the next handshake on it is served no
 * more (its entry becomes "absent"; a wildcard covering it still
 * applies); handshakes and connections that have it keep it. Any thread,
 * f NULL ok. */
void net_front_removed(struct net_front *f, const char *name);
/*
 * SIGTERM: every worker closes its listener at once (new connections are
 * refused), connections that have not sent a request yet are closed, the
 * others may finish for drain_ms (0: closed at once). Any thread; a
 * second call only shortens the deadline. f NULL ok.
 */
void net_front_drain(struct net_front *f, int64_t drain_ms);
/* Wait until every connection has closed or the drain's deadline has
 * passed (at most), then return how many are still open (net_front_stop
 * closes them). Not on a worker thread. */
unsigned net_front_drain_wait(struct net_front *f);
/* The stats as Prometheus text (net_metrics.c); f NULL writes nothing.
 * 0 or -EIO. */
int net_front_metrics(struct net_front *f, FILE *out);

#endif
