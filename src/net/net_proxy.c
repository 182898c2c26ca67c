/*
 * net_proxy — the PROXY protocol version 2 header (haproxy's
 * doc/proxy-protocol.txt) that front mode sends to the upstream before
 * the decrypted bytes, so the web server logs and limits by the real
 * client address and knows the SNI name and ALPN protocol. Binary v2
 * rather than text v1: it carries TLVs and needs no parsing of text by
 * the upstream.
 *
 * Layout: 12-byte signature, version/command (0x21: v2, PROXY), family/
 * transport (0x11 TCP over IPv4, 0x21 TCP over IPv6), length of the rest
 * (big endian), the addresses and ports, then TLVs (type, 2-byte length,
 * value). Pure: buffers in, buffers out.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "net/net.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define VER_CMD_PROXY 0x21
#define VER_CMD_LOCAL 0x20
#define FAM_TCP4 0x11
#define FAM_TCP6 0x21
#define FAM_UNSPEC 0x00

/* An IPv4 view of a: itself, or the IPv4 inside a v4-mapped IPv6
 * address (a dual-stack listener's view of an IPv4 client). */
static const struct sockaddr *unmap(const struct sockaddr *a,
				    struct sockaddr_in *tmp)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;

	if (a->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return a;
	memset(tmp, 0, sizeof(*tmp));
	tmp->sin_family = AF_INET;
	tmp->sin_port = s6->sin6_port;
	memcpy(&tmp->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	return (const struct sockaddr *)tmp;
}

static size_t put_tlv(unsigned char *p, unsigned type, const void *v,
		      size_t n)
{
	p[0] = (unsigned char)type;
	p[1] = (unsigned char)(n >> 8);
	p[2] = (unsigned char)n;
	memcpy(p + 3, v, n);
	return 3 + n;
}

int net_proxy_build(const struct net_proxy_info *in, unsigned char *out,
		    size_t outsz)
{
	struct sockaddr_in t1, t2;
	const struct sockaddr *src, *dst;
	size_t alen = in->authority ? strlen(in->authority) : 0;
	size_t need, off = 16;

	if (!in->src || !in->dst || (in->alpn_len && !in->alpn) ||
	    alen > 253 || in->alpn_len > 255)
		return -EINVAL;
	src = unmap(in->src, &t1);
	dst = unmap(in->dst, &t2);
	if (src->sa_family != dst->sa_family ||
	    (src->sa_family != AF_INET && src->sa_family != AF_INET6))
		return -EINVAL;
	need = 16 + (src->sa_family == AF_INET ? 12 : 36) +
	       (alen ? 3 + alen : 0) + (in->alpn_len ? 3 + in->alpn_len : 0);
	if (need > outsz)
		return -ENOSPC;
	memcpy(out, sig, sizeof(sig));
	out[12] = VER_CMD_PROXY;
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src,
					 *d = (const void *)dst;

		out[13] = FAM_TCP4;
		memcpy(out + off, &s->sin_addr, 4);
		memcpy(out + off + 4, &d->sin_addr, 4);
		memcpy(out + off + 8, &s->sin_port, 2); /* network order */
		memcpy(out + off + 10, &d->sin_port, 2);
		off += 12;
	} else {
		const struct sockaddr_in6 *s = (const void *)src,
					  *d = (const void *)dst;

		out[13] = FAM_TCP6;
		memcpy(out + off, &s->sin6_addr, 16);
		memcpy(out + off + 16, &d->sin6_addr, 16);
		memcpy(out + off + 32, &s->sin6_port, 2);
		memcpy(out + off + 34, &d->sin6_port, 2);
		off += 36;
	}
	if (in->alpn_len)
		off += put_tlv(out + off, NET_PP2_TYPE_ALPN, in->alpn,
			       in->alpn_len);
	if (alen)
		off += put_tlv(out + off, NET_PP2_TYPE_AUTHORITY,
			       in->authority, alen);
	out[14] = (unsigned char)((off - 16) >> 8);
	out[15] = (unsigned char)(off - 16);
	return (int)off;
}

int net_proxy_parse(const unsigned char *in, size_t len,
		    struct net_proxy_parsed *out)
{
	size_t body, alen, off;

	memset(out, 0, sizeof(*out));
	/* a prefix of the signature may still become a header */
	if (memcmp(in, sig, len < sizeof(sig) ? len : sizeof(sig)) != 0)
		return -EINVAL;
	if (len < 16)
		return 0;
	if (in[12] != VER_CMD_PROXY && in[12] != VER_CMD_LOCAL)
		return -EINVAL;
	body = (size_t)in[14] << 8 | in[15];
	if (len < 16 + body)
		return 0;
	out->local = in[12] == VER_CMD_LOCAL;
	switch (in[13]) {
	case FAM_TCP4: {
		struct sockaddr_in *s = (void *)&out->src,
				   *d = (void *)&out->dst;

		alen = 12;
		if (body < alen)
			return -EINVAL;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, in + 16, 4);
		memcpy(&d->sin_addr, in + 20, 4);
		memcpy(&s->sin_port, in + 24, 2);
		memcpy(&d->sin_port, in + 26, 2);
		break;
	}
	case FAM_TCP6: {
		struct sockaddr_in6 *s = (void *)&out->src,
				    *d = (void *)&out->dst;

		alen = 36;
		if (body < alen)
			return -EINVAL;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, in + 16, 16);
		memcpy(&d->sin6_addr, in + 32, 16);
		memcpy(&s->sin6_port, in + 48, 2);
		memcpy(&d->sin6_port, in + 50, 2);
		break;
	}
	case FAM_UNSPEC:
		if (!out->local)
			return -EINVAL;
		alen = 0;
		break;
	default:
		return -EINVAL;
	}
	for (off = 16 + alen; off < 16 + body;) {
		unsigned type;
		size_t n;

		if (16 + body - off < 3)
			return -EINVAL;
		type = in[off];
		n = (size_t)in[off + 1] << 8 | in[off + 2];
		off += 3;
		if (n > 16 + body - off)
			return -EINVAL;
		if (type == NET_PP2_TYPE_AUTHORITY) {
			if (n >= sizeof(out->authority) ||
			    memchr(in + off, '\0', n))
				return -EINVAL;
			memcpy(out->authority, in + off, n);
			out->authority[n] = '\0';
		} else if (type == NET_PP2_TYPE_ALPN) {
			if (n > sizeof(out->alpn))
				return -EINVAL;
			memcpy(out->alpn, in + off, n);
			out->alpn_len = n;
		}
		off += n;
	}
	return (int)(16 + body);
}
