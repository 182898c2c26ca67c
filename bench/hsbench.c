/*
 * hsbench — TLS handshake load generator for bench/front.sh and
 * bench/nginx.sh: full TLS 1.3 handshakes (never a resumption), a random
 * SNI name per connection, and a check that the certificate served names
 * that SNI.
 *
 *   hsbench HOST:PORT NAMES_FILE [--seconds S] [--concurrency C]
 *           [--seed N] [--tls12] [--each]
 *   hsbench HOST:PORT NAMES_FILE --first SECONDS [--since EPOCH_NS]
 *   hsbench --floor CHAIN_PEM KEY_PEM [--seconds S]
 *   hsbench --serve HOST:PORT CHAIN_PEM KEY_PEM
 *
 * Load (default): C connections in flight (default 4) on one thread,
 * non-blocking, for S seconds (default 10). Each connection: TCP connect,
 * ClientHello with a name drawn uniformly from NAMES_FILE (one per line),
 * handshake, then the served leaf certificate must name the SNI
 * (X509_check_host: subjectAltName, wildcards as RFC 6125 allows); then
 * close_notify, and the connection is held until the server closes it (or
 * 5 s), so that the server has done everything a connection costs before
 * the next one starts. Latency is from connect() to the client's Finished
 * (SSL_connect done). Prints one line of KEY=VALUE: handshakes (completed
 * and matching), mismatches, failures (refused, alerts, resets, 10 s
 * handshake timeouts), seconds, rate, p50_ms, p99_ms, max_ms, client_cpu_s
 * (this process's user+system CPU: when it is near seconds, the client
 * was the bottleneck). --each: the names in file order, each once, then
 * stop (or at S seconds): a warm-up that shows every name to a server
 * that loads certificates at their first handshake. The chain is not verified (the servers' CA is a
 * throwaway or Pebble's; the name check is what proves the server chose
 * the right certificate, and verifying would spend the client's core).
 *
 * --first: one handshake at a time until one succeeds with a matching
 * certificate (the first name of the file), retrying every 2 ms for at
 * most SECONDS; prints first_ms, counted from --since (CLOCK_REALTIME in
 * ns, e.g. `date +%s%N` when the server was launched) or from the start.
 * Exit status 1 if none succeeded.
 *
 * --floor: OpenSSL's own cost of a server handshake with no sockets: a
 * client and a server SSL joined by memory BIOs in this process, the
 * server with the given certificate, full TLS 1.3 handshakes for S
 * seconds; only the server's calls are timed, with the thread's CPU clock.
 * Prints floor_hs_us (the server's SSL_do_handshake calls per handshake),
 * floor_conn_us (the same plus the server's SSL_new and SSL_free: what
 * every server pays per connection at the least), floor_percert_conn_us
 * (the same with the certificate installed per connection in the
 * ClientHello callback with SSL_use_cert_and_key from parsed X509s and
 * key, as the front does on a cache hit; its handshakes alternate with
 * the plain ones) and handshakes (of each kind). One session ticket per
 * handshake, as the front sends.
 *
 * --serve: the socket floor, a minimal TLS server to be measured from
 * outside like the real ones (process CPU / handshakes): one thread, one
 * certificate, no SNI logic; accept, handshake, read until close_notify or
 * EOF, close_notify, close. Runs until killed. For the load's certificate
 * check to pass with every name, give it a wildcard certificate covering
 * them (bench/front.sh makes one for *.bench.test).
 *
 * Bench code, not installed; the figures it prints are described in
 * bench/README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CONC	   1024
#define MAX_NAMES	   10000000u
#define NAME_MAX_LEN	   253
#define HANDSHAKE_TIMEOUT  10.0
#define CLOSE_TIMEOUT	   5.0

enum hs_state {
	HS_IDLE = 0,	/* slot free: a new connection starts */
	HS_CONNECTING,	/* TCP connect in progress */
	HS_HANDSHAKE,	/* SSL_connect in progress */
	HS_CLOSING,	/* close_notify sent, waiting for the server's close */
	HS__MAX
};

struct slot {
	enum hs_state state;
	int fd;
	SSL *ssl;
	const char *name;
	double t0; /* connect() */
};

struct stats {
	uint64_t ok, mismatch, fail;
	uint32_t *lat_us; /* latencies of ok handshakes */
	size_t n_lat, cap_lat;
};

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: the names drawn depend on --seed only */
static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

/* Names file: one host name per line, empty lines skipped; every name
 * checked to be printable and short, since it goes into ClientHellos. */
static char **names_load(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[NAME_MAX_LEN + 3], **v = NULL;
	size_t cap = 0;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	*n = 0;
	while (fgets(line, sizeof(line), f)) {
		size_t len = strcspn(line, "\r\n");

		if (line[len] == 0 && !feof(f))
			die("%s: line %zu too long", path, *n + 1);
		line[len] = 0;
		if (!len)
			continue;
		for (size_t i = 0; i < len; i++)
			if (line[i] <= ' ' || line[i] > '~')
				die("%s: bad name on line %zu", path, *n + 1);
		if (*n == cap) {
			cap = cap ? 2 * cap : 1024;
			if (cap > MAX_NAMES || !(v = realloc(v, cap * sizeof(*v))))
				die("%s: too many names", path);
		}
		if (!(v[(*n)++] = strdup(line)))
			die("out of memory");
	}
	fclose(f);
	if (!*n)
		die("%s: no names", path);
	return v;
}

static void parse_addr(const char *hp, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	char host[256], *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;

	if (strlen(hp) >= sizeof(host))
		die("bad address %s", hp);
	strcpy(host, hp);
	colon = strrchr(host, ':');
	if (!colon)
		die("address %s: HOST:PORT expected", hp);
	*colon = 0;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		die("cannot resolve %s", hp);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

static SSL_CTX *client_ctx(int tls12)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int v = tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, v) ||
	    !SSL_CTX_set_max_proto_version(ctx, v))
		die("cannot make the client SSL_CTX");
	/* full handshakes only: no session is ever stored or offered */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static void slot_close(int ep, struct slot *s)
{
	if (s->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	SSL_free(s->ssl);
	s->ssl = NULL;
	s->fd = -1;
	s->state = HS_IDLE;
}

static void want(int ep, struct slot *s, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = s};

	if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void lat_add(struct stats *st, double sec)
{
	if (st->n_lat == st->cap_lat) {
		st->cap_lat = st->cap_lat ? 2 * st->cap_lat : 65536;
		st->lat_us = realloc(st->lat_us, st->cap_lat * sizeof(uint32_t));
		if (!st->lat_us)
			die("out of memory");
	}
	st->lat_us[st->n_lat++] = sec > 4e3 ? 4000000000u
					    : (uint32_t)(sec * 1e6 + 0.5);
}

/* 1 when the leaf the server sent names s->name */
static int cert_matches(SSL *ssl, const char *name)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	int ok = x && X509_check_host(x, name, 0, 0, NULL) == 1;

	X509_free(x);
	return ok;
}

static int slot_start(int ep, struct slot *s, SSL_CTX *ctx,
		      const struct sockaddr_storage *ss, socklen_t sl,
		      const char *name)
{
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
	int one = 1;

	s->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->name = name;
	s->t0 = now_s();
	s->ssl = SSL_new(ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd) ||
	    !SSL_set_tlsext_host_name(s->ssl, name))
		die("cannot make an SSL");
	if (connect(s->fd, (const struct sockaddr *)ss, sl) < 0 &&
	    errno != EINPROGRESS)
		return -1;
	s->state = HS_CONNECTING;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
	return 0;
}

/* One step of a slot's machine; returns with the slot waiting on epoll,
 * or closed (HS_IDLE) after counting its result. */
static void slot_step(int ep, struct slot *s, struct stats *st, int counting)
{
	int r, err = 0;
	socklen_t el = sizeof(err);
	char buf[4096];

	switch (s->state) {
	case HS_CONNECTING:
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
		    err) {
			st->fail += (uint64_t)counting;
			slot_close(ep, s);
			return;
		}
		s->state = HS_HANDSHAKE;
		/* fall through */
	case HS_HANDSHAKE:
		ERR_clear_error();
		r = SSL_connect(s->ssl);
		if (r == 1) {
			if (!cert_matches(s->ssl, s->name)) {
				st->mismatch += (uint64_t)counting;
				slot_close(ep, s);
				return;
			}
			if (counting) {
				st->ok++;
				lat_add(st, now_s() - s->t0);
			}
			SSL_shutdown(s->ssl); /* close_notify */
			s->state = HS_CLOSING;
			s->t0 = now_s();
			want(ep, s, EPOLLIN);
			return;
		}
		switch (SSL_get_error(s->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			want(ep, s, EPOLLIN);
			return;
		case SSL_ERROR_WANT_WRITE:
			want(ep, s, EPOLLOUT);
			return;
		default:
			st->fail += (uint64_t)counting;
			slot_close(ep, s);
			return;
		}
	case HS_CLOSING:
		/* tickets and the server's close_notify are read and dropped;
		 * done at the server's close (EOF, reset or close_notify) */
		for (;;) {
			ERR_clear_error();
			r = SSL_read(s->ssl, buf, sizeof(buf));
			if (r > 0)
				continue;
			if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
				want(ep, s, EPOLLIN);
				return;
			}
			slot_close(ep, s);
			return;
		}
	default:
		return;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const struct stats *st, double p)
{
	size_t i;

	if (!st->n_lat)
		return 0;
	i = (size_t)(p * (double)(st->n_lat - 1) + 0.5);
	return st->lat_us[i] / 1000.0;
}

static void run_load(const char *addr, char **names, size_t n_names,
		     double seconds, int conc, int tls12, int each)
{
	size_t next = 0;
	struct sockaddr_storage ss;
	socklen_t sl;
	SSL_CTX *ctx = client_ctx(tls12);
	struct slot slots[MAX_CONC];
	struct epoll_event evs[MAX_CONC];
	struct stats st = {0};
	struct rusage ru;
	double t_start, t_end, t, cpu0, cpu1;
	int ep = epoll_create1(0), open_slots;

	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	parse_addr(addr, &ss, &sl);
	for (int i = 0; i < conc; i++)
		slots[i] = (struct slot){.state = HS_IDLE, .fd = -1};
	getrusage(RUSAGE_SELF, &ru);
	cpu0 = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	t_start = now_s();
	t_end = t_start + seconds;
	for (;;) {
		int n;

		t = now_s();
		open_slots = 0;
		for (int i = 0; i < conc; i++) {
			struct slot *s = &slots[i];

			/* bounded waits: a stuck handshake is a failure */
			if (s->state == HS_HANDSHAKE || s->state == HS_CONNECTING) {
				if (t - s->t0 > HANDSHAKE_TIMEOUT) {
					st.fail++;
					slot_close(ep, s);
				}
			} else if (s->state == HS_CLOSING &&
				   t - s->t0 > CLOSE_TIMEOUT) {
				slot_close(ep, s);
			}
			if (s->state == HS_IDLE && t < t_end &&
			    (!each || next < n_names) &&
			    slot_start(ep, s, ctx, &ss, sl,
				       each ? names[next++]
					    : names[rnd() % n_names]) < 0) {
				st.fail++;
				slot_close(ep, s);
			}
			open_slots += s->state != HS_IDLE;
		}
		if (!open_slots)
			break;
		n = epoll_wait(ep, evs, conc, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;

			/* a handshake finishing after the window is not
			 * counted: the server CPU window ends with it */
			slot_step(ep, s, &st, now_s() <= t_end);
		}
	}
	t = now_s();
	getrusage(RUSAGE_SELF, &ru);
	cpu1 = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (st.n_lat)
		qsort(st.lat_us, st.n_lat, sizeof(uint32_t), cmp_u32);
	printf("handshakes=%llu mismatches=%llu failures=%llu seconds=%.2f "
	       "rate=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "client_cpu_s=%.2f\n",
	       (unsigned long long)st.ok, (unsigned long long)st.mismatch,
	       (unsigned long long)st.fail, each ? t - t_start : seconds,
	       (double)st.ok / (each ? t - t_start : seconds), pct_ms(&st, 0.50), pct_ms(&st, 0.99),
	       st.n_lat ? st.lat_us[st.n_lat - 1] / 1000.0 : 0.0, cpu1 - cpu0);
	free(st.lat_us);
	close(ep);
	SSL_CTX_free(ctx);
}

/* --first: ms from `since` (or start) to the first matching handshake */
static int run_first(const char *addr, const char *name, double limit,
		     long long since_ns)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	SSL_CTX *ctx = client_ctx(0);
	struct stats st = {0};
	struct timespec rt;
	double t_end = now_s() + limit, start_rt;
	int ep = epoll_create1(0);

	clock_gettime(CLOCK_REALTIME, &rt);
	start_rt = (double)rt.tv_sec + rt.tv_nsec / 1e9;
	parse_addr(addr, &ss, &sl);
	while (now_s() < t_end && !st.ok) {
		struct slot s = {.state = HS_IDLE, .fd = -1};
		struct epoll_event e;

		if (slot_start(ep, &s, ctx, &ss, sl, name) == 0) {
			while (s.state != HS_IDLE && s.state != HS_CLOSING &&
			       now_s() < t_end)
				if (epoll_wait(ep, &e, 1, 50) > 0)
					slot_step(ep, &s, &st, 1);
		}
		slot_close(ep, &s);
		if (!st.ok)
			usleep(2000);
	}
	if (st.ok) {
		clock_gettime(CLOCK_REALTIME, &rt);
		printf("first_ms=%.0f\n",
		       ((double)rt.tv_sec + rt.tv_nsec / 1e9 -
			(since_ns ? (double)since_ns / 1e9 : start_rt)) * 1e3);
	}
	free(st.lat_us);
	close(ep);
	SSL_CTX_free(ctx);
	return st.ok ? 0 : 1;
}

/* One full handshake between c and s over memory BIOs; only the server's
 * calls are timed (thread CPU clock): its SSL_do_handshake calls are added
 * to *hs_cpu, and those plus its SSL_new and SSL_free (what every server
 * pays per connection besides the handshake) to *conn_cpu. 0 or -1. */
static int floor_one(SSL_CTX *cctx, SSL_CTX *sctx, double *hs_cpu,
		     double *conn_cpu)
{
	SSL *c = SSL_new(cctx), *s;
	BIO *cb = NULL, *sb = NULL;
	int rc = -1, cdone = 0, sdone = 0;
	double t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID), hs = 0;

	s = SSL_new(sctx);
	*conn_cpu += cpu_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	if (!c || !s || !BIO_new_bio_pair(&cb, 0, &sb, 0))
		goto out;
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	SSL_set_tlsext_host_name(c, "floor.bench.test");
	for (int i = 0; i < 20 && !(cdone && sdone); i++) {
		int r;

		if (!cdone) {
			r = SSL_do_handshake(c);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				goto out;
		}
		t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
		r = sdone ? 1 : SSL_do_handshake(s);
		hs += cpu_s(CLOCK_THREAD_CPUTIME_ID) - t0;
		if (r == 1)
			sdone = 1;
		else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
			goto out;
	}
	rc = cdone && sdone ? 0 : -1;
out:
	SSL_free(c);
	*hs_cpu += hs;
	t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
	SSL_free(s);
	*conn_cpu += hs + cpu_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	return rc;
}

/* The certificate of the --floor variant that installs it per connection,
 * parsed once, as the front keeps its cached certificates. */
static struct {
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
} fl_cert;

/* ClientHello callback of that variant: what the front does on a cache
 * hit (src/tls/tls_cert.c: SSL_use_cert_and_key, override) */
static int floor_hello_cb(SSL *ssl, int *al, void *arg)
{
	(void)arg;
	if (SSL_use_cert_and_key(ssl, fl_cert.leaf, fl_cert.key, fl_cert.chain,
				 1) != 1) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static void floor_cert_load(const char *chain, const char *key)
{
	FILE *f = fopen(chain, "r");
	X509 *x;

	if (!f || !(fl_cert.leaf = PEM_read_X509(f, NULL, NULL, NULL)) ||
	    !(fl_cert.chain = sk_X509_new_null()))
		die("cannot read %s", chain);
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
		if (!sk_X509_push(fl_cert.chain, x))
			die("out of memory");
	ERR_clear_error(); /* the end of the file */
	fclose(f);
	if (!(f = fopen(key, "r")) ||
	    !(fl_cert.key = PEM_read_PrivateKey(f, NULL, NULL, NULL)))
		die("cannot read %s", key);
	fclose(f);
}

static void run_floor(const char *chain, const char *key, double seconds)
{
	SSL_CTX *cctx = client_ctx(0);
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *pctx = SSL_CTX_new(TLS_server_method()); /* per connection */
	double hs = 0, conn = 0, phs = 0, pconn = 0, t_end = now_s() + seconds;
	unsigned long n = 0;

	if (!sctx || !SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(sctx, chain) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(sctx) != 1)
		die("cannot load %s and %s", chain, key);
	floor_cert_load(chain, key);
	if (!pctx || !SSL_CTX_set_min_proto_version(pctx, TLS1_3_VERSION))
		die("cannot make an SSL_CTX");
	SSL_CTX_set_client_hello_cb(pctx, floor_hello_cb, NULL);
	/* as the servers measured: one ticket per handshake is their cost
	 * too (front mode sends one; OpenSSL's default is two) */
	SSL_CTX_set_num_tickets(sctx, 1);
	SSL_CTX_set_num_tickets(pctx, 1);
	/* the two alternate, so that a busy machine weighs on both alike */
	while (now_s() < t_end) {
		if (floor_one(cctx, sctx, &hs, &conn) < 0 ||
		    floor_one(cctx, pctx, &phs, &pconn) < 0)
			die("in-memory handshake failed");
		n++;
	}
	printf("floor_hs_us=%.1f floor_conn_us=%.1f floor_percert_conn_us=%.1f "
	       "handshakes=%lu\n",
	       hs * 1e6 / (double)n, conn * 1e6 / (double)n,
	       pconn * 1e6 / (double)n, n);
	X509_free(fl_cert.leaf);
	sk_X509_pop_free(fl_cert.chain, X509_free);
	EVP_PKEY_free(fl_cert.key);
	SSL_CTX_free(pctx);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* --serve: the socket floor. The least a TLS server can do per connection,
 * measured from outside like the real servers: one thread, one epoll, one
 * SSL_CTX with one certificate (no SNI logic, no certificate lookup, no
 * upstream, no timeouts), each connection accepted, handshaken, read until
 * the client's close_notify or EOF (application data dropped), answered
 * with close_notify and closed. Same SSL_CTX settings as --floor, so the
 * difference between the two is the kernel's sockets and the event loop. */
enum sv_state { SV_HANDSHAKE, SV_READ };

struct sv_conn {
	enum sv_state state;
	int fd;
	SSL *ssl;
};

static void sv_close(struct sv_conn *c, int clean)
{
	/* a close_notify only after the client's: after an error or EOF
	 * OpenSSL forbids SSL_shutdown, and nobody would read it */
	if (clean)
		SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	close(c->fd); /* also drops it from the epoll set */
	free(c);
}

static void sv_want(int ep, struct sv_conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};

	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void sv_step(int ep, struct sv_conn *c)
{
	char buf[16384];
	int r;

	if (c->state == SV_HANDSHAKE) {
		ERR_clear_error();
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				sv_want(ep, c, EPOLLIN);
				return;
			case SSL_ERROR_WANT_WRITE:
				sv_want(ep, c, EPOLLOUT);
				return;
			default:
				sv_close(c, 0);
				return;
			}
		}
		c->state = SV_READ;
	}
	for (;;) {
		ERR_clear_error();
		r = SSL_read(c->ssl, buf, sizeof(buf));
		if (r > 0)
			continue;
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			sv_want(ep, c, EPOLLIN);
			return;
		case SSL_ERROR_ZERO_RETURN: /* the client's close_notify */
			sv_close(c, 1);
			return;
		default: /* EOF, reset, alert */
			sv_close(c, 0);
			return;
		}
	}
}

static void run_serve(const char *addr, const char *chain, const char *key)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	struct epoll_event evs[256];
	int one = 1, lfd, ep = epoll_create1(0);

	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	/* a close_notify to a client already gone is EPIPE, not death */
	signal(SIGPIPE, SIG_IGN);
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, chain) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		die("cannot load %s and %s", chain, key);
	SSL_CTX_set_num_tickets(ctx, 1); /* as --floor and the front */
	/* one read per flight, not per record header and body: the fewest
	 * syscalls a libssl server can make (the front does the same) */
	SSL_CTX_set_read_ahead(ctx, 1);
	parse_addr(addr, &ss, &sl);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	/* TCP_NODELAY is inherited by accepted sockets: no call per
	 * connection */
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(lfd, (const struct sockaddr *)&ss, sl) < 0 ||
	    listen(lfd, 4096) < 0)
		die("cannot listen on %s: %s", addr, strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct sv_conn *c = evs[i].data.ptr;
			int fd;

			if (c) {
				sv_step(ep, c);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL,
					     SOCK_NONBLOCK)) >= 0) {
				struct epoll_event ce = {.events = EPOLLIN};

				if (!(c = calloc(1, sizeof(*c))) ||
				    !(c->ssl = SSL_new(ctx)) ||
				    !SSL_set_fd(c->ssl, fd))
					die("out of memory");
				c->fd = fd;
				c->state = SV_HANDSHAKE;
				SSL_set_accept_state(c->ssl);
				ce.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce) < 0)
					die("epoll_ctl: %s", strerror(errno));
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED && errno != EINTR)
				die("accept: %s", strerror(errno));
		}
	}
}

static double parse_pos(const char *s, const char *what, double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v > 0) || v > max)
		die("bad %s: %s", what, s);
	return v;
}

int main(int argc, char **argv)
{
	const char *pos[3] = {NULL, NULL, NULL};
	double seconds = 10, first = 0;
	long long since = 0;
	int conc = 4, tls12 = 0, npos = 0, floor_mode = 0, each = 0;
	int serve = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--seconds") && v)
			seconds = parse_pos(v, "--seconds", 86400), i++;
		else if (!strcmp(a, "--concurrency") && v)
			conc = (int)parse_pos(v, "--concurrency", MAX_CONC), i++;
		else if (!strcmp(a, "--seed") && v)
			rnd_state ^= strtoull(v, NULL, 10) * 0x9E3779B97F4A7C15ull
				     | 1, i++;
		else if (!strcmp(a, "--first") && v)
			first = parse_pos(v, "--first", 3600), i++;
		else if (!strcmp(a, "--since") && v)
			since = strtoll(v, NULL, 10), i++;
		else if (!strcmp(a, "--tls12"))
			tls12 = 1;
		else if (!strcmp(a, "--each"))
			each = 1;
		else if (!strcmp(a, "--floor"))
			floor_mode = 1;
		else if (!strcmp(a, "--serve"))
			serve = 1;
		else if (a[0] != '-' && npos < 3)
			pos[npos++] = a;
		else
			die("usage: hsbench HOST:PORT NAMES [--seconds S] "
			    "[--concurrency C] [--seed N] [--tls12] "
			    "[--first S [--since NS]] | --floor CHAIN KEY | "
			    "--serve HOST:PORT CHAIN KEY");
	}
	if (npos != 2 + serve || (serve && floor_mode))
		die("wrong arguments (see the header of hsbench.c)");
	if (serve) {
		run_serve(pos[0], pos[1], pos[2]);
		return 0;
	}
	if (floor_mode) {
		run_floor(pos[0], pos[1], seconds);
		return 0;
	}
	{
		size_t n;
		char **names = names_load(pos[1], &n);
		int rc = 0;

		if (first > 0)
			rc = run_first(pos[0], names[0], first, since);
		else
			run_load(pos[0], names, n, seconds, conc, tls12, each);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return rc;
	}
}
