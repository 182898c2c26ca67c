/*
 * fuzz_proxy.c — the PROXY v2 header builder (net_proxy.c) fed addresses,
 * an authority and an ALPN value taken from the input, and the parser fed
 * both the built header and the raw input. Checks what the upstream
 * relies on: a built header is never longer than NET_PROXY_MAX, parses
 * back whole (same length, same addresses, ports, authority and ALPN),
 * and the parser never reads past its input or accepts a length beyond
 * it.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage src = {0}, dst = {0};
	struct net_proxy_parsed p;
	unsigned char out[NET_PROXY_MAX];
	char auth[300];
	struct net_proxy_info in = {.src = (struct sockaddr *)&src,
				    .dst = (struct sockaddr *)&dst};
	size_t alen, plen;
	int n, m;

	/* the parser on raw bytes: bounded by them */
	m = net_proxy_parse(data, size, &p);
	if (m > 0 && (size_t)m > size)
		abort();
	if (size < 40)
		return 0;
	/* 1 byte flags, 36 bytes of addresses and ports, 2 lengths, rest */
	int six = data[0] & 1, mapped = data[0] & 2;
	if (six || mapped) {
		struct sockaddr_in6 *s = (void *)&src, *d = (void *)&dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, data + 1, 16);
		memcpy(&d->sin6_addr, data + 17, 16);
		if (mapped) {
			/* a dual-stack listener's view of IPv4 */
			memset(&s->sin6_addr, 0, 10);
			memset(&s->sin6_addr.s6_addr[10], 0xff, 2);
			memcpy(&d->sin6_addr, &s->sin6_addr, 12);
		}
		memcpy(&s->sin6_port, data + 33, 2);
		memcpy(&d->sin6_port, data + 35, 2);
	} else {
		struct sockaddr_in *s = (void *)&src, *d = (void *)&dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, data + 1, 4);
		memcpy(&d->sin_addr, data + 5, 4);
		memcpy(&s->sin_port, data + 33, 2);
		memcpy(&d->sin_port, data + 35, 2);
	}
	data += 37;
	size -= 37;
	alen = data[0];
	plen = data[1];
	data += 2;
	size -= 2;
	if (alen > size)
		alen = size;
	memcpy(auth, data, alen);
	auth[alen] = '\0'; /* an embedded NUL shortens it, as C would */
	data += alen;
	size -= alen;
	if (plen > size)
		plen = size;
	in.authority = auth;
	in.alpn = data;
	in.alpn_len = plen;
	n = net_proxy_build(&in, out, sizeof(out));
	if (n < 0)
		return 0;
	if (n > NET_PROXY_MAX)
		abort();
	if (net_proxy_parse(out, (size_t)n, &p) != n || p.local)
		abort();
	if (strcmp(p.authority, auth) != 0 || p.alpn_len != plen ||
	    memcmp(p.alpn, in.alpn, plen) != 0)
		abort();
	if (p.src.ss_family == AF_INET) {
		const struct sockaddr_in *a = (void *)&p.src;
		const unsigned char *want = src.ss_family == AF_INET
			? (const unsigned char *)&((struct sockaddr_in *)&src)->sin_addr
			: &((struct sockaddr_in6 *)&src)->sin6_addr.s6_addr[12];
		if (memcmp(&a->sin_addr, want, 4) != 0)
			abort();
	} else if (memcmp(&((struct sockaddr_in6 *)&p.src)->sin6_addr,
			  &((struct sockaddr_in6 *)&src)->sin6_addr, 16) != 0) {
		abort();
	}
	/* every prefix is "need more" */
	for (int i = 0; i < n; i++)
		if (net_proxy_parse(out, (size_t)i, &p) != 0)
			abort();
	return 0;
}
