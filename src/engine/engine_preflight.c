/*
 * engine_preflight.c — the pre-flight judgement, pure: given what DNS
 * answered for a domain (engine_dns.c) and the addresses configured as
 * ours, may it be ordered, and if not, why, in words an operator can act
 * on. Also the re-check backoff. No I/O, no clock, no randomness of its
 * own: everything comes in as arguments, so tests drive it with made-up
 * answers.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

const char *const engine_preflight_types[ENGINE_PREFLIGHT__MAX] = {
	[ENGINE_PREFLIGHT_OK] = "dns-ok",
	[ENGINE_PREFLIGHT_MISMATCH] = "dns-mismatch",
	[ENGINE_PREFLIGHT_NO_ADDRESS] = "dns-no-address",
	[ENGINE_PREFLIGHT_NXDOMAIN] = "dns-nxdomain",
	[ENGINE_PREFLIGHT_DNS_ERROR] = "dns-error",
};

/* An address as bytes, for comparing whatever text form it came in. */
struct ip {
	int family; /* AF_INET or AF_INET6; 0 when unparseable */
	unsigned char b[16];
	const char *text;
};

static struct ip ip_of(const char *s)
{
	struct ip ip = {.text = s};

	if (inet_pton(AF_INET, s, ip.b) == 1)
		ip.family = AF_INET;
	else if (inet_pton(AF_INET6, s, ip.b) == 1)
		ip.family = AF_INET6;
	return ip;
}

/* IPv4 before IPv6, then by bytes: a stable order for messages. */
static int ip_cmp(const void *a, const void *b)
{
	const struct ip *x = a, *y = b;

	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	return memcmp(x->b, y->b, sizeof(x->b));
}

static int ip_eq(const struct ip *x, const struct ip *y)
{
	return x->family && x->family == y->family &&
	       memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

/* A bounded appender: text that does not fit is cut, never overflows. */
struct out {
	char *buf;
	size_t sz, len;
};

static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len + 1 >= o->sz)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->sz - o->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->len += (size_t)n;
	if (o->len >= o->sz)
		o->len = o->sz - 1;
}

static void put_ips(struct out *o, const struct ip *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(o, "%s%s", i ? ", " : "", v[i].text);
}

/* " (via CNAME a -> b)" when the name is an alias. */
static void put_chain(struct out *o, const struct engine_dns_answer *a)
{
	if (!a->n_cnames)
		return;
	put(o, " (via CNAME ");
	for (size_t i = 0; i < a->n_cnames; i++)
		put(o, "%s%s", i ? " -> " : "", a->cnames[i]);
	put(o, ")");
}

static int failed(enum engine_dns_status s)
{
	return s != ENGINE_DNS_OK && s != ENGINE_DNS_NODATA &&
	       s != ENGINE_DNS_NXDOMAIN;
}

/* Why a query failed, as the end of "cannot tell where X points: ...". */
static const char *failure_text(enum engine_dns_status s)
{
	switch (s) {
	case ENGINE_DNS_SERVFAIL:
		return "the DNS server answered SERVFAIL";
	case ENGINE_DNS_REFUSED:
		return "the DNS server refused the query (REFUSED)";
	case ENGINE_DNS_TIMEOUT:
		return "no answer from the DNS server (timeout)";
	case ENGINE_DNS_UNREACHABLE:
		return "the DNS server cannot be reached (connection refused)";
	case ENGINE_DNS_BADRESP:
		return "the DNS server's answer is malformed";
	default:
		return "the lookup failed locally";
	}
}

enum engine_preflight_verdict
engine_preflight_judge(const char *name, const struct engine_dns_result *r,
		       const char *const *ours, size_t n_ours, char *why,
		       size_t whysz)
{
	struct ip seen[2 * ENGINE_DNS_MAX_ADDRS], bad[2 * ENGINE_DNS_MAX_ADDRS];
	struct ip mine[64];
	size_t n_seen = 0, n_bad = 0, n_mine = 0;
	const struct engine_dns_answer *q[2] = {&r->a, &r->aaaa};
	/* The chain shown: the A query's, else the AAAA query's. */
	const struct engine_dns_answer *chain =
	    r->a.n_cnames ? &r->a : &r->aaaa;
	struct out o = {why, whysz, 0};
	char dummy[1];

	if (!o.buf || !o.sz) {
		o.buf = dummy;
		o.sz = sizeof(dummy);
	}
	o.buf[0] = '\0';
	for (int k = 0; k < 2; k++) {
		if (failed(q[k]->status)) {
			put(&o, "cannot tell where %s points: %s for its %s "
				"record",
			    name, failure_text(q[k]->status), k ? "AAAA" : "A");
			return ENGINE_PREFLIGHT_DNS_ERROR;
		}
	}
	if (r->a.status == ENGINE_DNS_NXDOMAIN ||
	    r->aaaa.status == ENGINE_DNS_NXDOMAIN) {
		put(&o, "%s does not exist in DNS (NXDOMAIN)", name);
		put_chain(&o, chain);
		return ENGINE_PREFLIGHT_NXDOMAIN;
	}
	for (int k = 0; k < 2; k++) {
		if (q[k]->status != ENGINE_DNS_OK)
			continue;
		for (size_t i = 0; i < q[k]->n_addrs && i < ENGINE_DNS_MAX_ADDRS;
		     i++) {
			struct ip ip = ip_of(q[k]->addrs[i]);
			size_t j;

			for (j = 0; j < n_seen && !ip_eq(&seen[j], &ip); j++)
				;
			if (ip.family && j == n_seen)
				seen[n_seen++] = ip;
		}
	}
	if (!n_seen) {
		put(&o, "%s has no A or AAAA record", name);
		put_chain(&o, chain);
		return ENGINE_PREFLIGHT_NO_ADDRESS;
	}
	qsort(seen, n_seen, sizeof(seen[0]), ip_cmp);
	for (size_t i = 0; i < n_ours && n_mine < 64; i++) {
		struct ip ip = ip_of(ours[i]);

		if (ip.family)
			mine[n_mine++] = ip;
	}
	qsort(mine, n_mine, sizeof(mine[0]), ip_cmp);
	for (size_t i = 0; n_mine && i < n_seen; i++) {
		size_t j;

		for (j = 0; j < n_mine && !ip_eq(&mine[j], &seen[i]); j++)
			;
		if (j == n_mine)
			bad[n_bad++] = seen[i];
	}
	put(&o, "%s resolves to ", name);
	put_ips(&o, seen, n_seen);
	put_chain(&o, chain);
	if (!n_bad) {
		put(&o, "%s", n_mine ? ", ours" : "");
		return ENGINE_PREFLIGHT_OK;
	}
	if (n_bad == n_seen) {
		put(&o, ", not one of ours: ");
	} else {
		/* Some ours, some not: the CA may validate at any. */
		put(&o, "; not ours: ");
		put_ips(&o, bad, n_bad);
		put(&o, " (ours: ");
	}
	put_ips(&o, mine, n_mine);
	put(&o, "%s", n_bad == n_seen ? "" : ")");
	return ENGINE_PREFLIGHT_MISMATCH;
}

int64_t engine_preflight_backoff(unsigned checks, int64_t now_ms,
				 int64_t max_ms, uint64_t rnd)
{
	int64_t d = ENGINE_PREFLIGHT_BASE_MS;

	if (max_ms <= 0)
		max_ms = ENGINE_BACKOFF_CAP_MS;
	if (!checks)
		checks = 1;
	for (unsigned i = 1; i < checks && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* Up to 10 % shorter, never longer than the cap. */
	d -= (int64_t)((double)(d / 10) * ((double)(rnd >> 11) * 0x1p-53));
	return now_ms + d;
}
