/*
 * tlsfloor_wolfssl — wolfSSL's own cost of a server TLS 1.3 handshake, to
 * set beside OpenSSL's (`hsbench --floor`) in bench/front.sh, and a probe
 * of what front mode would need from it.
 *
 *   tlsfloor_wolfssl CHAIN_PEM KEY_PEM [--seconds S]
 *
 * Floor: a client and a server WOLFSSL in this process joined by two
 * in-memory byte queues (I/O callbacks, no sockets), full TLS 1.3
 * handshakes with X25519 (the only group of both, and the client's key
 * share) and the given (P-256) certificate for S seconds (default 5). Only
 * the server's calls are timed, with the thread's CPU clock: floor_hs_us
 * is its wolfSSL_accept calls (one session ticket, sent within them:
 * wolfSSL_CTX_set_num_tickets(1), as hsbench --floor and the front send),
 * floor_conn_us adds wolfSSL_new, its I/O set-up and wolfSSL_free. The
 * client does not verify the chain (as hsbench).
 *
 * Probe (one handshake before the loop), each printed as yes/no:
 *   pause  the certificate callback (wolfSSL_CTX_set_cert_cb, OpenSSL's
 *          SSL_CTX_set_cert_cb) returns -1, wolfSSL_accept fails with
 *          WOLFSSL_ERROR_WANT_X509_LOOKUP, and calling it again completes
 *          the handshake (wolfSSL 5.5 has no ClientHello callback like
 *          OpenSSL's SSL_CTX_set_client_hello_cb; this is the closest)
 *   sni    the certificate is chosen per connection: the server's
 *          context has none; the callback reads the SNI
 *          (wolfSSL_get_servername) and switches the connection to a
 *          context holding the certificate (wolfSSL_set_SSL_CTX)
 *   alpn   the server offers http/1.1, the client h2 and http/1.1, both
 *          agree on http/1.1
 * plus the negotiated group and the tickets the client received. Bench
 * code, not installed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define QUEUE_SIZE  65536
#define PROBE_NAME  "probe.bench.test"

struct queue {
	unsigned char buf[QUEUE_SIZE];
	size_t len;
};

static struct queue c2s, s2c;

static struct {
	int paused, resumed, sni_ok, tickets;
	WOLFSSL_CTX *cert_ctx; /* the context holding the certificate */
} pr;

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tlsfloor_wolfssl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double clock_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int q_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct queue *q = ctx;

	(void)ssl;
	if (sz < 0 || (size_t)sz > QUEUE_SIZE - q->len)
		return WOLFSSL_CBIO_ERR_WANT_WRITE;
	memcpy(q->buf + q->len, buf, (size_t)sz);
	q->len += (size_t)sz;
	return sz;
}

static int q_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct queue *q = ctx;
	size_t n = sz < 0 ? 0 : (size_t)sz;

	(void)ssl;
	if (!q->len)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if (n > q->len)
		n = q->len;
	memcpy(buf, q->buf, n);
	memmove(q->buf, q->buf + n, q->len - n);
	q->len -= n;
	return (int)n;
}

/* probe: pause once, then choose the certificate from the SNI */
static int probe_cert_cb(WOLFSSL *ssl, void *arg)
{
	const char *name;

	(void)arg;
	if (!pr.paused) {
		pr.paused = 1;
		return -1;
	}
	name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
	if (!name || strcmp(name, PROBE_NAME))
		return 0; /* no certificate for that name: alert */
	pr.sni_ok = 1;
	return wolfSSL_set_SSL_CTX(ssl, pr.cert_ctx) ? 1 : 0;
}

static int probe_ticket_cb(WOLFSSL *ssl, const unsigned char *t, int len,
			   void *arg)
{
	(void)ssl, (void)t, (void)len, (void)arg;
	pr.tickets++;
	return 0;
}

static WOLFSSL_CTX *ctx_new(int server, const char *chain, const char *key)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method()
						  : wolfTLSv1_3_client_method());
	int groups[1] = {WOLFSSL_ECC_X25519};

	if (!ctx || wolfSSL_CTX_set_groups(ctx, groups, 1) != WOLFSSL_SUCCESS)
		die("cannot make a WOLFSSL_CTX");
	wolfSSL_CTX_SetIORecv(ctx, q_recv);
	wolfSSL_CTX_SetIOSend(ctx, q_send);
	if (server && wolfSSL_CTX_set_num_tickets(ctx, 1) != WOLFSSL_SUCCESS)
		die("cannot set one ticket");
	if (chain &&
	    (wolfSSL_CTX_use_certificate_chain_file(ctx, chain) !=
		     WOLFSSL_SUCCESS ||
	     wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) !=
		     WOLFSSL_SUCCESS))
		die("cannot load %s and %s", chain, key);
	if (!server)
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	return ctx;
}

/* One handshake; the server's calls timed into *hs and *conn (CPU s).
 * probe: the server context pauses and chooses (above). 0 or -1. */
static int one(WOLFSSL_CTX *cctx, WOLFSSL_CTX *sctx, int probe, double *hs,
	       double *conn, char *info, size_t info_len)
{
	WOLFSSL *c = wolfSSL_new(cctx), *s;
	int cdone = 0, sdone = 0, rc = -1, want_lookup = 0;
	double t0, h = 0, setup;

	c2s.len = s2c.len = 0;
	if (!c || wolfSSL_UseSNI(c, WOLFSSL_SNI_HOST_NAME, PROBE_NAME,
				 (unsigned short)strlen(PROBE_NAME)) !=
			  WOLFSSL_SUCCESS ||
	    wolfSSL_UseKeyShare(c, WOLFSSL_ECC_X25519) != WOLFSSL_SUCCESS)
		die("client set-up failed");
	if (probe && (wolfSSL_UseALPN(c, (char *)"h2,http/1.1", 11,
				      WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
			      WOLFSSL_SUCCESS ||
		      wolfSSL_set_SessionTicket_cb(c, probe_ticket_cb, NULL) !=
			      WOLFSSL_SUCCESS))
		die("client probe set-up failed");
	wolfSSL_SetIOReadCtx(c, &s2c);
	wolfSSL_SetIOWriteCtx(c, &c2s);
	t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	s = wolfSSL_new(sctx);
	if (s) {
		wolfSSL_SetIOReadCtx(s, &c2s);
		wolfSSL_SetIOWriteCtx(s, &s2c);
	}
	setup = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	if (!s)
		die("server wolfSSL_new failed");
	if (probe && wolfSSL_UseALPN(s, (char *)"http/1.1", 8,
				     WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
			     WOLFSSL_SUCCESS)
		die("server probe set-up failed");
	for (int i = 0; i < 20 && !(cdone && sdone); i++) {
		int r;

		if (!cdone) {
			r = wolfSSL_connect(c);
			if (r == WOLFSSL_SUCCESS)
				cdone = 1;
			else if (wolfSSL_get_error(c, r) !=
				 WOLFSSL_ERROR_WANT_READ)
				goto out;
		}
		if (sdone)
			continue;
		t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		r = wolfSSL_accept(s);
		h += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
		if (r == WOLFSSL_SUCCESS) {
			sdone = 1;
			continue;
		}
		r = wolfSSL_get_error(s, r);
		if (r == WOLFSSL_ERROR_WANT_X509_LOOKUP && probe)
			want_lookup = 1; /* paused: called again next turn */
		else if (r != WOLFSSL_ERROR_WANT_READ) {
			fprintf(stderr, "server: error %d\n", r);
			goto out;
		}
	}
	rc = cdone && sdone && (!probe || want_lookup) ? 0 : -1;
	if (!rc && probe) {
		char buf[64], *proto = NULL;
		unsigned short plen = 0;

		pr.resumed = 1;
		/* the client reads the tickets the server sent */
		wolfSSL_read(c, buf, sizeof(buf));
		if (wolfSSL_ALPN_GetProtocol(c, &proto, &plen) !=
			    WOLFSSL_SUCCESS ||
		    !proto)
			plen = 0;
		snprintf(info, info_len, "%.*s %s", (int)plen,
			 proto ? proto : "",
			 wolfSSL_get_curve_name(s) ? wolfSSL_get_curve_name(s)
						   : "?");
		WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(c);

		if (!peer)
			rc = -1; /* no certificate reached the client */
		wolfSSL_X509_free(peer); /* a reference of its own here */
	}
out:
	wolfSSL_free(c);
	t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	wolfSSL_free(s);
	*hs += h;
	*conn += setup + h + clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	return rc;
}

int main(int argc, char **argv)
{
	WOLFSSL_CTX *cctx, *sctx, *probe_ctx;
	double seconds = 5, hs = 0, conn = 0, t_end;
	unsigned long n = 0;
	char info[64] = "", *group;

	if (argc == 5 && !strcmp(argv[3], "--seconds")) {
		seconds = strtod(argv[4], NULL);
		if (!(seconds > 0 && seconds < 3600))
			die("bad --seconds %s", argv[4]);
	} else if (argc != 3) {
		die("usage: tlsfloor_wolfssl CHAIN_PEM KEY_PEM [--seconds S]");
	}
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		die("wolfSSL_Init failed");
	cctx = ctx_new(0, NULL, NULL);
	sctx = ctx_new(1, argv[1], argv[2]);

	/* the probe: a server context with no certificate but a callback */
	probe_ctx = ctx_new(1, NULL, NULL);
	pr.cert_ctx = sctx;
	wolfSSL_CTX_set_cert_cb(probe_ctx, probe_cert_cb, NULL);
	if (one(cctx, probe_ctx, 1, &hs, &conn, info, sizeof(info)) < 0)
		die("the probe handshake failed (paused %d, sni %d)", pr.paused,
		    pr.sni_ok);
	group = strchr(info, ' ');
	if (group)
		*group++ = 0;

	/* the floor */
	hs = conn = 0;
	t_end = clock_s(CLOCK_MONOTONIC) + seconds;
	while (clock_s(CLOCK_MONOTONIC) < t_end) {
		if (one(cctx, sctx, 0, &hs, &conn, NULL, 0) < 0)
			die("in-memory handshake failed");
		n++;
	}
	printf("lib=wolfssl-%s floor_hs_us=%.1f floor_conn_us=%.1f "
	       "handshakes=%lu group=%s tickets=%d pause=%s sni=%s alpn=%s\n",
	       wolfSSL_lib_version(), hs * 1e6 / (double)n,
	       conn * 1e6 / (double)n, n, group ? group : "?", pr.tickets,
	       pr.paused && pr.resumed ? "yes" : "no", pr.sni_ok ? "yes" : "no",
	       !strcmp(info, "http/1.1") ? "yes" : "no");
	wolfSSL_CTX_free(probe_ctx);
	wolfSSL_CTX_free(sctx);
	wolfSSL_CTX_free(cctx);
	wolfSSL_Cleanup();
	return 0;
}
