/*
 * Unit tests of the PROXY protocol v2 builder and parser (net_proxy.c):
 * the exact bytes of a header for IPv4 with both TLVs (checked against
 * the layout of haproxy's proxy-protocol.txt by hand), IPv6, a v4-mapped
 * client sent as IPv4, round trips, and refusals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"

static struct sockaddr_in v4(const char *ip, unsigned port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};

	inet_pton(AF_INET, ip, &s.sin_addr);
	return s;
}

static struct sockaddr_in6 v6(const char *ip, unsigned port)
{
	struct sockaddr_in6 s = {.sin6_family = AF_INET6,
				 .sin6_port = htons(port)};

	inet_pton(AF_INET6, ip, &s.sin6_addr);
	return s;
}

static void test_v4_bytes(void **state)
{
	struct sockaddr_in src = v4("192.0.2.7", 51000),
			   dst = v4("203.0.113.1", 443);
	struct net_proxy_info in = {
		.src = (struct sockaddr *)&src,
		.dst = (struct sockaddr *)&dst,
		.authority = "a.example",
		.alpn = (const unsigned char *)"http/1.1",
		.alpn_len = 8,
	};
	static const unsigned char want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
		0x54, 0x0A,		/* signature */
		0x21,			/* v2, PROXY */
		0x11,			/* TCP over IPv4 */
		0x00, 12 + 11 + 12,	/* length after the 16 bytes */
		192, 0, 2, 7,		/* source */
		203, 0, 113, 1,		/* destination */
		0xC7, 0x38,		/* 51000 */
		0x01, 0xBB,		/* 443 */
		0x01, 0x00, 8, 'h', 't', 't', 'p', '/', '1', '.', '1',
		0x02, 0x00, 9, 'a', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e',
	};
	unsigned char out[NET_PROXY_MAX];
	int n = net_proxy_build(&in, out, sizeof(out));

	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* exactly enough room works, one byte less does not */
	assert_int_equal(net_proxy_build(&in, out, sizeof(want)), n);
	assert_int_equal(net_proxy_build(&in, out, sizeof(want) - 1), -ENOSPC);
}

static void test_roundtrip(void **state)
{
	struct sockaddr_in6 src = v6("2001:db8::1", 40000),
			    dst = v6("2001:db8::443", 443);
	struct net_proxy_info in = {
		.src = (struct sockaddr *)&src,
		.dst = (struct sockaddr *)&dst,
		.authority = "shop.example.com",
		.alpn = (const unsigned char *)"h2",
		.alpn_len = 2,
	};
	struct net_proxy_parsed p;
	unsigned char out[NET_PROXY_MAX];
	int n = net_proxy_build(&in, out, sizeof(out));

	assert_int_equal(n, 16 + 36 + 3 + 2 + 3 + 16);
	assert_int_equal(out[13], 0x21);
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), n);
	assert_false(p.local);
	assert_memory_equal(&((struct sockaddr_in6 *)&p.src)->sin6_addr,
			    &src.sin6_addr, 16);
	assert_int_equal(((struct sockaddr_in6 *)&p.dst)->sin6_port, htons(443));
	assert_string_equal(p.authority, "shop.example.com");
	assert_int_equal(p.alpn_len, 2);
	assert_memory_equal(p.alpn, "h2", 2);
	/* every prefix needs more bytes; the header is never misread */
	for (int i = 0; i < n; i++)
		assert_int_equal(net_proxy_parse(out, (size_t)i, &p), 0);
	/* no TLVs at all */
	in.authority = NULL;
	in.alpn = NULL;
	in.alpn_len = 0;
	n = net_proxy_build(&in, out, sizeof(out));
	assert_int_equal(n, 16 + 36);
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), n);
	assert_string_equal(p.authority, "");
}

static void test_v4_mapped(void **state)
{
	/* a dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d */
	struct sockaddr_in6 src = v6("::ffff:198.51.100.9", 1234),
			    dst = v6("::ffff:127.0.0.1", 8443);
	struct net_proxy_info in = {.src = (struct sockaddr *)&src,
				    .dst = (struct sockaddr *)&dst};
	struct net_proxy_parsed p;
	unsigned char out[NET_PROXY_MAX];
	char ip[64];
	int n = net_proxy_build(&in, out, sizeof(out));

	assert_int_equal(n, 16 + 12);
	assert_int_equal(out[13], 0x11);
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), n);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&p.src)->sin_addr, ip,
		  sizeof(ip));
	assert_string_equal(ip, "198.51.100.9");
	assert_int_equal(ntohs(((struct sockaddr_in *)&p.src)->sin_port), 1234);
}

static void test_refused(void **state)
{
	struct sockaddr_in a = v4("192.0.2.1", 1);
	struct sockaddr_in6 b = v6("2001:db8::1", 2);
	struct sockaddr_in6 m = v6("::ffff:192.0.2.2", 3);
	struct sockaddr u = {.sa_family = AF_UNIX};
	unsigned char out[NET_PROXY_MAX], alpn[256] = {0};
	char longname[300];
	struct net_proxy_info in = {.src = (struct sockaddr *)&a,
				    .dst = (struct sockaddr *)&b};
	struct net_proxy_parsed p;

	assert_int_equal(net_proxy_build(&in, out, sizeof(out)), -EINVAL);
	in.dst = (struct sockaddr *)&m; /* mapped: the same family after all */
	assert_int_equal(net_proxy_build(&in, out, sizeof(out)), 16 + 12);
	in.src = in.dst = &u;
	assert_int_equal(net_proxy_build(&in, out, sizeof(out)), -EINVAL);
	in.src = in.dst = (struct sockaddr *)&a;
	memset(longname, 'a', 254);
	longname[254] = '\0';
	in.authority = longname;
	assert_int_equal(net_proxy_build(&in, out, sizeof(out)), -EINVAL);
	in.authority = NULL;
	in.alpn = alpn;
	in.alpn_len = 256;
	assert_int_equal(net_proxy_build(&in, out, sizeof(out)), -EINVAL);
	/* the largest header fits NET_PROXY_MAX */
	in.src = in.dst = (struct sockaddr *)&b;
	in.alpn_len = 255;
	longname[253] = '\0';
	in.authority = longname;
	assert_true(net_proxy_build(&in, out, sizeof(out)) > 0);

	/* parser refusals */
	in.authority = "x.example";
	in.alpn_len = 0;
	int n = net_proxy_build(&in, out, sizeof(out));
	out[0] ^= 1;
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), -EINVAL);
	out[0] ^= 1;
	out[12] = 0x31; /* version 3 */
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), -EINVAL);
	out[12] = 0x21;
	out[n - 10] = 0xFF; /* the TLV's length overruns the header */
	assert_int_equal(net_proxy_parse(out, (size_t)n, &p), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_bytes),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_v4_mapped),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
