/*
 * tlsfloor_gnutls — GnuTLS's own cost of a server TLS 1.3 handshake, to
 * set beside OpenSSL's (`hsbench --floor`) in bench/front.sh, and a probe
 * of what front mode would need from it.
 *
 *   tlsfloor_gnutls CHAIN_PEM KEY_PEM [--seconds S]
 *
 * Floor: a client and a server session of GnuTLS in this process joined by
 * two in-memory byte queues (no sockets), full TLS 1.3 handshakes with
 * X25519 and the given (P-256) certificate for S seconds (default 5). Only
 * the server's calls are timed, with the thread's CPU clock: floor_hs_us
 * is its gnutls_handshake calls plus sending one session ticket
 * (GNUTLS_NO_AUTO_SEND_TICKET, then gnutls_session_ticket_send(1): one
 * ticket, as hsbench --floor and the front send), floor_conn_us adds
 * gnutls_init, the per-session set-up (priorities, credentials, ticket
 * key) and gnutls_deinit: what a server pays per connection at the least.
 * The client does not verify the chain (as hsbench).
 *
 * Probe (one handshake before the loop), each printed as yes/no:
 *   pause  the post-ClientHello callback returns GNUTLS_E_AGAIN, the
 *          handshake returns GNUTLS_E_INTERRUPTED, and calling it again
 *          completes it (front mode pauses a handshake while a
 *          certificate loads or a name is decided); GnuTLS 3.7 does not
 *          call the callback again on resumption, so whatever it waited
 *          for must be in place before the handshake is called again
 *   sni    the certificate is chosen per connection: the credentials hold
 *          no certificate but a retrieve callback
 *          (gnutls_certificate_set_retrieve_function2), called after the
 *          ClientHello, which reads the SNI with gnutls_server_name_get
 *          and hands out the chain and key (setting credentials in the
 *          post-ClientHello callback instead fails: GnuTLS checks them
 *          before calling it, "Insufficient credentials")
 *   alpn   the server offers http/1.1, the client h2 and http/1.1, both
 *          agree on http/1.1
 * plus the negotiated group and the tickets sent. Exit status 1 when a
 * handshake fails. Bench code, not installed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#define QUEUE_SIZE  65536
#define PROBE_NAME  "probe.bench.test"
#define PRIORITIES  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519"

/* one direction of the in-memory connection */
struct queue {
	unsigned char buf[QUEUE_SIZE];
	size_t len;
};

struct end {
	gnutls_session_t s;
	struct queue *in, *out;
};

struct probe {
	int paused, resumed, sni_ok, tickets; /* resumed: completed after */
	gnutls_pcert_st pcert[4]; /* the chain, handed out per connection */
	unsigned n_pcert;
	gnutls_privkey_t key;
};

static struct probe pr;

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tlsfloor_gnutls: ");
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

static ssize_t q_push(gnutls_transport_ptr_t p, const void *data, size_t n)
{
	struct end *e = p;

	if (n > QUEUE_SIZE - e->out->len) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	memcpy(e->out->buf + e->out->len, data, n);
	e->out->len += n;
	return (ssize_t)n;
}

static ssize_t q_pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
	struct end *e = p;

	if (!e->in->len) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	if (n > e->in->len)
		n = e->in->len;
	memcpy(data, e->in->buf, n);
	memmove(e->in->buf, e->in->buf + n, e->in->len - n);
	e->in->len -= n;
	return (ssize_t)n;
}

static void end_wire(struct end *e, struct queue *in, struct queue *out)
{
	e->in = in;
	e->out = out;
	gnutls_transport_set_ptr(e->s, e);
	gnutls_transport_set_push_function(e->s, q_push);
	gnutls_transport_set_pull_function(e->s, q_pull);
}

/* probe: pause once after the ClientHello */
static int probe_hello(gnutls_session_t s)
{
	struct probe *p = gnutls_session_get_ptr(s);

	if (!p->paused) {
		p->paused = 1;
		return GNUTLS_E_AGAIN;
	}
	return 0; /* not called again on resumption in 3.7, but kept safe */
}

/* probe: the certificate chosen per connection from the SNI (GnuTLS asks
 * for it with this callback of the credentials, after the ClientHello) */
static int probe_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca,
			  int nreqs, const gnutls_pk_algorithm_t *algos,
			  int n_algos, gnutls_pcert_st **pcert,
			  unsigned *pcert_len, gnutls_privkey_t *key)
{
	char name[256];
	size_t len = sizeof(name);
	unsigned type;

	(void)req_ca, (void)nreqs, (void)algos, (void)n_algos;
	if (gnutls_server_name_get(s, name, &len, &type, 0) != 0 ||
	    type != GNUTLS_NAME_DNS || strcmp(name, PROBE_NAME))
		return -1; /* no certificate for that name */
	pr.sni_ok = 1;
	*pcert = pr.pcert;
	*pcert_len = pr.n_pcert;
	*key = pr.key;
	return 0;
}

static int probe_ticket_hook(gnutls_session_t s, unsigned htype,
			     unsigned when, unsigned incoming,
			     const gnutls_datum_t *msg)
{
	struct probe *p = gnutls_session_get_ptr(s);

	(void)htype, (void)when, (void)msg;
	if (!incoming)
		p->tickets++;
	return 0;
}

struct server_cfg {
	gnutls_certificate_credentials_t cred, probe_cred;
	gnutls_priority_t prio;
	gnutls_datum_t ticket_key;
	const gnutls_datum_t *alpn;
	struct probe *probe; /* NULL in the timed loop */
};

static void server_init(struct end *e, const struct server_cfg *c)
{
	if (gnutls_init(&e->s, GNUTLS_SERVER | GNUTLS_NONBLOCK |
				       GNUTLS_NO_AUTO_SEND_TICKET) < 0 ||
	    gnutls_priority_set(e->s, c->prio) < 0 ||
	    gnutls_session_ticket_enable_server(e->s, &c->ticket_key) < 0)
		die("server session set-up failed");
	/* ALPN in the probe only: hsbench --floor offers none either */
	if (c->probe) {
		if (gnutls_alpn_set_protocols(e->s, c->alpn, 1, 0) < 0)
			die("server ALPN set-up failed");
		if (gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE,
					   c->probe_cred) < 0)
			die("server credentials failed");
		gnutls_session_set_ptr(e->s, c->probe);
		gnutls_handshake_set_post_client_hello_function(e->s,
								probe_hello);
		gnutls_handshake_set_hook_function(
			e->s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
			GNUTLS_HOOK_POST, probe_ticket_hook);
	} else if (gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE,
					  c->cred) < 0) {
		die("server credentials failed");
	}
}

/* One handshake; the server's calls timed into *hs and *conn (CPU s).
 * Returns 0, or -1 when it failed. */
static int one(const struct server_cfg *sc,
	       gnutls_certificate_credentials_t ccred, gnutls_priority_t cprio,
	       double *hs, double *conn, char *alpn_out, size_t alpn_len)
{
	static struct queue c2s, s2c;
	static const gnutls_datum_t calpn[2] = {
		{(unsigned char *)"h2", 2}, {(unsigned char *)"http/1.1", 8}};
	struct end c, s;
	int cdone = 0, sdone = 0, rc = -1, interrupted = 0;
	double t0, h = 0, setup;

	c2s.len = s2c.len = 0;
	if (gnutls_init(&c.s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0 ||
	    gnutls_priority_set(c.s, cprio) < 0 ||
	    gnutls_credentials_set(c.s, GNUTLS_CRD_CERTIFICATE, ccred) < 0 ||
	    gnutls_server_name_set(c.s, GNUTLS_NAME_DNS, PROBE_NAME,
				   strlen(PROBE_NAME)) < 0 ||
	    (sc->probe && gnutls_alpn_set_protocols(c.s, calpn, 2, 0) < 0))
		die("client session set-up failed");
	end_wire(&c, &s2c, &c2s);
	t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	server_init(&s, sc);
	end_wire(&s, &c2s, &s2c);
	setup = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	for (int i = 0; i < 20 && !(cdone && sdone); i++) {
		int r;

		if (!cdone) {
			r = gnutls_handshake(c.s);
			if (r == 0)
				cdone = 1;
			else if (r != GNUTLS_E_AGAIN)
				goto out;
		}
		if (sdone)
			continue;
		t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		r = gnutls_handshake(s.s);
		if (r == 0)
			r = gnutls_session_ticket_send(s.s, 1, 0);
		h += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
		if (r == 0)
			sdone = 1;
		else if (r == GNUTLS_E_INTERRUPTED && sc->probe)
			interrupted = 1; /* paused: called again next turn */
		else if (r != GNUTLS_E_AGAIN) {
			fprintf(stderr, "server: %s\n", gnutls_strerror(r));
			goto out;
		}
	}
	rc = cdone && sdone && (!sc->probe || interrupted) ? 0 : -1;
	if (sc->probe && !rc)
		sc->probe->resumed = 1; /* paused, then completed */
	if (!rc && alpn_out) {
		gnutls_datum_t p;

		alpn_out[0] = 0;
		if (gnutls_alpn_get_selected_protocol(c.s, &p) == 0 &&
		    p.size < alpn_len) {
			memcpy(alpn_out, p.data, p.size);
			alpn_out[p.size] = 0;
		}
		if (!gnutls_certificate_get_peers(c.s, &(unsigned){0}))
			rc = -1; /* no certificate reached the client */
		snprintf(alpn_out + strlen(alpn_out),
			 alpn_len - strlen(alpn_out), " %s",
			 gnutls_group_get_name(gnutls_group_get(s.s)));
	}
out:
	gnutls_deinit(c.s);
	t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	gnutls_deinit(s.s);
	*hs += h;
	*conn += setup + h + clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	return rc;
}

int main(int argc, char **argv)
{
	static const gnutls_datum_t salpn = {(unsigned char *)"http/1.1", 8};
	struct server_cfg sc = {.alpn = &salpn};
	gnutls_datum_t keypem;
	gnutls_certificate_credentials_t ccred;
	gnutls_priority_t cprio;
	double seconds = 5, hs = 0, conn = 0, t_end;
	unsigned long n = 0;
	char alpn[64], group[32] = "?";

	if (argc == 5 && !strcmp(argv[3], "--seconds")) {
		seconds = strtod(argv[4], NULL);
		if (!(seconds > 0 && seconds < 3600))
			die("bad --seconds %s", argv[4]);
	} else if (argc != 3) {
		die("usage: tlsfloor_gnutls CHAIN_PEM KEY_PEM [--seconds S]");
	}
	if (gnutls_global_init() < 0 ||
	    gnutls_certificate_allocate_credentials(&sc.cred) < 0 ||
	    gnutls_certificate_allocate_credentials(&ccred) < 0 ||
	    gnutls_priority_init(&sc.prio, PRIORITIES, NULL) < 0 ||
	    gnutls_priority_init(&cprio, PRIORITIES, NULL) < 0 ||
	    gnutls_session_ticket_key_generate(&sc.ticket_key) < 0)
		die("set-up failed");
	if (gnutls_certificate_set_x509_key_file(sc.cred, argv[1], argv[2],
						 GNUTLS_X509_FMT_PEM) < 0)
		die("cannot load %s and %s", argv[1], argv[2]);

	/* the probe: credentials with no certificate but a callback */
	pr.n_pcert = 4;
	if (gnutls_pcert_list_import_x509_file(pr.pcert, &pr.n_pcert, argv[1],
					       GNUTLS_X509_FMT_PEM, NULL, NULL,
					       0) < 0 ||
	    gnutls_load_file(argv[2], &keypem) < 0 ||
	    gnutls_privkey_init(&pr.key) < 0 ||
	    gnutls_privkey_import_x509_raw(pr.key, &keypem,
					   GNUTLS_X509_FMT_PEM, NULL, 0) < 0 ||
	    gnutls_certificate_allocate_credentials(&sc.probe_cred) < 0)
		die("cannot load %s and %s for the probe", argv[1], argv[2]);
	gnutls_free(keypem.data);
	gnutls_certificate_set_retrieve_function2(sc.probe_cred, probe_retrieve);
	sc.probe = &pr;
	if (one(&sc, ccred, cprio, &hs, &conn, alpn, sizeof(alpn)) < 0)
		die("the probe handshake failed (paused %d, resumed %d)",
		    pr.paused, pr.resumed);
	sc.probe = NULL;
	if (strchr(alpn, ' ')) {
		snprintf(group, sizeof(group), "%s", strchr(alpn, ' ') + 1);
		*strchr(alpn, ' ') = 0;
	}

	/* the floor */
	hs = conn = 0;
	t_end = clock_s(CLOCK_MONOTONIC) + seconds;
	while (clock_s(CLOCK_MONOTONIC) < t_end) {
		if (one(&sc, ccred, cprio, &hs, &conn, NULL, 0) < 0)
			die("in-memory handshake failed");
		n++;
	}
	printf("lib=gnutls-%s floor_hs_us=%.1f floor_conn_us=%.1f "
	       "handshakes=%lu group=%s tickets=%d pause=%s sni=%s alpn=%s\n",
	       gnutls_check_version(NULL), hs * 1e6 / (double)n,
	       conn * 1e6 / (double)n, n, group, pr.tickets,
	       pr.paused && pr.resumed ? "yes" : "no", pr.sni_ok ? "yes" : "no",
	       !strcmp(alpn, "http/1.1") ? "yes" : "no");
	gnutls_free(sc.ticket_key.data);
	gnutls_priority_deinit(sc.prio);
	gnutls_priority_deinit(cprio);
	gnutls_certificate_free_credentials(sc.cred);
	gnutls_certificate_free_credentials(sc.probe_cred);
	gnutls_certificate_free_credentials(ccred);
	gnutls_global_deinit();
	return 0;
}
