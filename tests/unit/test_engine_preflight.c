/*
 * Unit tests for engine_preflight (pure): the verdict and the operator's
 * message for answers pointing at us, elsewhere, partly elsewhere (a
 * foreign AAAA beside our A), through CNAME chains, with no address, for
 * NXDOMAIN and for every kind of resolver failure; addresses compared by
 * value whatever their text form; messages independent of answer order,
 * cut cleanly when the buffer is small; and the re-check backoff:
 * sequence, cap from renew.backoff_max, jitter bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

#define M ENGINE_MIN_MS
#define T0 ((int64_t)1748736000 * 1000)

static const char *const OURS[] = {"127.0.0.1", "2001:db8::10"};

/* An answer: status, then up to 4 addresses, then up to 3 CNAMEs. */
static void set(struct engine_dns_answer *a, enum engine_dns_status st,
		const char *const *addrs, const char *const *cnames)
{
	memset(a, 0, sizeof(*a));
	a->status = st;
	for (size_t i = 0; addrs && addrs[i]; i++)
		snprintf(a->addrs[a->n_addrs++], ENGINE_DNS_ADDR_MAX, "%s",
			 addrs[i]);
	for (size_t i = 0; cnames && cnames[i]; i++)
		snprintf(a->cnames[a->n_cnames++], ENGINE_DNS_NAME_MAX, "%s",
			 cnames[i]);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static enum engine_preflight_verdict judge(const struct engine_dns_result *r,
					   const char *const *ours, size_t n,
					   char *why)
{
	return engine_preflight_judge("shop.example.com", r, ours, n, why, 512);
}

static void test_points_at_us(void **state)
{
	struct engine_dns_result r;
	char why[512];

	(void)state;
	set(&r.a, ENGINE_DNS_OK, L("127.0.0.1"), NULL);
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_OK);
	assert_string_equal(why, "shop.example.com resolves to 127.0.0.1, ours");
	/* Both families ours; the IPv6 one written another way. */
	set(&r.aaaa, ENGINE_DNS_OK, L("2001:0db8:0:0::10"), NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_OK);
	/* Our own list in a non-canonical form matches too. */
	assert_int_equal(judge(&r, L("2001:DB8::0:10", "127.0.0.1"), 2, why),
			 ENGINE_PREFLIGHT_OK);
	/* No addresses configured: resolving is enough. */
	set(&r.a, ENGINE_DNS_OK, L("203.0.113.9"), NULL);
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, NULL, 0, why), ENGINE_PREFLIGHT_OK);
	assert_string_equal(why, "shop.example.com resolves to 203.0.113.9");
	/* Only an AAAA, ours. */
	set(&r.a, ENGINE_DNS_NODATA, NULL, NULL);
	set(&r.aaaa, ENGINE_DNS_OK, L("2001:db8::10"), NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_OK);
}

static void test_elsewhere(void **state)
{
	struct engine_dns_result r;
	char why[512];

	(void)state;
	set(&r.a, ENGINE_DNS_OK, L("203.0.113.9"), NULL);
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_MISMATCH);
	assert_string_equal(why, "shop.example.com resolves to 203.0.113.9, "
				 "not one of ours: 127.0.0.1");
	/* Every configured address is listed, IPv4 first. */
	assert_int_equal(judge(&r, L("2001:db8::10", "127.0.0.1"), 2, why),
			 ENGINE_PREFLIGHT_MISMATCH);
	assert_string_equal(why, "shop.example.com resolves to 203.0.113.9, "
				 "not one of ours: 127.0.0.1, 2001:db8::10");
	/* A foreign AAAA beside our A: the CA may pick the AAAA. */
	set(&r.a, ENGINE_DNS_OK, L("127.0.0.1"), NULL);
	set(&r.aaaa, ENGINE_DNS_OK, L("2001:db8::9"), NULL);
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_MISMATCH);
	assert_string_equal(why, "shop.example.com resolves to 127.0.0.1, "
				 "2001:db8::9; not ours: 2001:db8::9 (ours: "
				 "127.0.0.1)");
	/* Two of three foreign. */
	set(&r.a, ENGINE_DNS_OK, L("198.51.100.2", "127.0.0.1", "198.51.100.1"),
	    NULL);
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_MISMATCH);
	assert_string_equal(why, "shop.example.com resolves to 127.0.0.1, "
				 "198.51.100.1, 198.51.100.2; not ours: "
				 "198.51.100.1, 198.51.100.2 (ours: 127.0.0.1)");
}

static void test_order_and_duplicates(void **state)
{
	struct engine_dns_result r1, r2;
	char w1[512], w2[512];

	(void)state;
	set(&r1.a, ENGINE_DNS_OK, L("203.0.113.9", "192.0.2.1", "203.0.113.9"),
	    NULL);
	set(&r1.aaaa, ENGINE_DNS_OK, L("2001:db8::2", "2001:db8::1"), NULL);
	set(&r2.a, ENGINE_DNS_OK, L("192.0.2.1", "203.0.113.9"), NULL);
	set(&r2.aaaa, ENGINE_DNS_OK, L("2001:db8::1", "2001:db8::2"), NULL);
	judge(&r1, OURS, 2, w1);
	judge(&r2, OURS, 2, w2);
	/* Round-robin order must not read as a new answer. */
	assert_string_equal(w1, w2);
	assert_string_equal(w1, "shop.example.com resolves to 192.0.2.1, "
				"203.0.113.9, 2001:db8::1, 2001:db8::2, not one "
				"of ours: 127.0.0.1, 2001:db8::10");
}

static void test_cname(void **state)
{
	struct engine_dns_result r;
	char why[512];

	(void)state;
	set(&r.a, ENGINE_DNS_OK, L("203.0.113.9"), L("x.example.net"));
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_MISMATCH);
	assert_string_equal(why, "shop.example.com resolves to 203.0.113.9 "
				 "(via CNAME x.example.net), not one of ours: "
				 "127.0.0.1");
	set(&r.a, ENGINE_DNS_OK, L("127.0.0.1"),
	    L("x.example.net", "lb.cdn.example", "edge.cdn.example"));
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_OK);
	assert_string_equal(why, "shop.example.com resolves to 127.0.0.1 (via "
				 "CNAME x.example.net -> lb.cdn.example -> "
				 "edge.cdn.example), ours");
	/* The chain from the AAAA query when the A query had none. */
	set(&r.a, ENGINE_DNS_NODATA, NULL, NULL);
	set(&r.aaaa, ENGINE_DNS_OK, L("2001:db8::9"), L("v6.example.net"));
	judge(&r, OURS, 1, why);
	assert_string_equal(why, "shop.example.com resolves to 2001:db8::9 "
				 "(via CNAME v6.example.net), not one of ours: "
				 "127.0.0.1");
	/* A CNAME to a name with no address. */
	set(&r.a, ENGINE_DNS_NODATA, NULL, L("gone.example.net"));
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 1, why), ENGINE_PREFLIGHT_NO_ADDRESS);
	assert_string_equal(why, "shop.example.com has no A or AAAA record "
				 "(via CNAME gone.example.net)");
}

static void test_no_address_and_nxdomain(void **state)
{
	struct engine_dns_result r;
	char why[512];

	(void)state;
	set(&r.a, ENGINE_DNS_NODATA, NULL, NULL);
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_NO_ADDRESS);
	assert_string_equal(why, "shop.example.com has no A or AAAA record");
	/* Not even with no addresses configured. */
	assert_int_equal(judge(&r, NULL, 0, why), ENGINE_PREFLIGHT_NO_ADDRESS);
	/* "OK" with nothing usable in it is no address either. */
	set(&r.a, ENGINE_DNS_OK, L("not-an-ip"), NULL);
	assert_int_equal(judge(&r, NULL, 0, why), ENGINE_PREFLIGHT_NO_ADDRESS);

	set(&r.a, ENGINE_DNS_NXDOMAIN, NULL, NULL);
	set(&r.aaaa, ENGINE_DNS_NXDOMAIN, NULL, NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_NXDOMAIN);
	assert_string_equal(why,
			    "shop.example.com does not exist in DNS (NXDOMAIN)");
	/* One of the two is enough (the name is gone). */
	set(&r.a, ENGINE_DNS_OK, L("127.0.0.1"), NULL);
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_NXDOMAIN);
	/* A dangling CNAME whose target does not exist. */
	set(&r.a, ENGINE_DNS_NXDOMAIN, NULL, L("typo.example.net"));
	assert_int_equal(judge(&r, OURS, 2, why), ENGINE_PREFLIGHT_NXDOMAIN);
	assert_string_equal(why, "shop.example.com does not exist in DNS "
				 "(NXDOMAIN) (via CNAME typo.example.net)");
}

static void test_resolver_failures(void **state)
{
	static const struct {
		enum engine_dns_status st;
		const char *text;
	} cases[] = {
	    {ENGINE_DNS_SERVFAIL, "the DNS server answered SERVFAIL"},
	    {ENGINE_DNS_REFUSED, "the DNS server refused the query (REFUSED)"},
	    {ENGINE_DNS_TIMEOUT, "no answer from the DNS server (timeout)"},
	    {ENGINE_DNS_UNREACHABLE,
	     "the DNS server cannot be reached (connection refused)"},
	    {ENGINE_DNS_BADRESP, "the DNS server's answer is malformed"},
	    {ENGINE_DNS_ERROR, "the lookup failed locally"},
	};
	struct engine_dns_result r;
	char why[512], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* A failed AAAA spoils an A that points at us: with the
		 * AAAA unknown nobody can say the name is ours. */
		set(&r.a, ENGINE_DNS_OK, L("127.0.0.1"), NULL);
		set(&r.aaaa, cases[i].st, NULL, NULL);
		assert_int_equal(judge(&r, OURS, 2, why),
				 ENGINE_PREFLIGHT_DNS_ERROR);
		snprintf(want, sizeof(want),
			 "cannot tell where shop.example.com points: %s for "
			 "its AAAA record",
			 cases[i].text);
		assert_string_equal(why, want);
		/* A failure wins over NXDOMAIN from the other query too. */
		set(&r.a, cases[i].st, NULL, NULL);
		set(&r.aaaa, ENGINE_DNS_NXDOMAIN, NULL, NULL);
		assert_int_equal(judge(&r, NULL, 0, why),
				 ENGINE_PREFLIGHT_DNS_ERROR);
		assert_non_null(strstr(why, "for its A record"));
	}
}

static void test_small_buffer(void **state)
{
	struct engine_dns_result r;
	char why[24];

	(void)state;
	set(&r.a, ENGINE_DNS_OK, L("203.0.113.9", "203.0.113.10"),
	    L("x.example.net"));
	set(&r.aaaa, ENGINE_DNS_NODATA, NULL, NULL);
	memset(why, 'x', sizeof(why));
	assert_int_equal(engine_preflight_judge("shop.example.com", &r, OURS, 1,
						why, sizeof(why)),
			 ENGINE_PREFLIGHT_MISMATCH);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	assert_memory_equal(why, "shop.example.com resolv", sizeof(why) - 1);
	/* No buffer at all: the verdict alone. */
	assert_int_equal(engine_preflight_judge("shop.example.com", &r, OURS, 1,
						NULL, 0),
			 ENGINE_PREFLIGHT_MISMATCH);
}

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(engine_preflight_types[ENGINE_PREFLIGHT_MISMATCH],
			    "dns-mismatch");
	assert_string_equal(engine_preflight_types[ENGINE_PREFLIGHT_NXDOMAIN],
			    "dns-nxdomain");
	for (int i = 0; i < ENGINE_PREFLIGHT__MAX; i++)
		assert_non_null(engine_preflight_types[i]);
	for (int i = 0; i < ENGINE_DNS__MAX; i++)
		assert_non_null(engine_dns_status_names[i]);
}

static void test_backoff(void **state)
{
	const int64_t max = ENGINE_DAY_MS;

	(void)state;
	/* rnd 0: no jitter, exactly the sequence. */
	assert_int_equal(engine_preflight_backoff(0, T0, max, 0), T0 + M);
	assert_int_equal(engine_preflight_backoff(1, T0, max, 0), T0 + M);
	assert_int_equal(engine_preflight_backoff(2, T0, max, 0), T0 + 2 * M);
	assert_int_equal(engine_preflight_backoff(3, T0, max, 0), T0 + 4 * M);
	assert_int_equal(engine_preflight_backoff(11, T0, max, 0),
			 T0 + 1024 * M);
	/* Capped at backoff_max (2048 min > 1 day), however many checks. */
	assert_int_equal(engine_preflight_backoff(12, T0, max, 0), T0 + max);
	assert_int_equal(engine_preflight_backoff(4000000000u, T0, max, 0),
			 T0 + max);
	/* A short backoff_max (renew.backoff_max = 5m). */
	assert_int_equal(engine_preflight_backoff(9, T0, 5 * M, 0), T0 + 5 * M);
	/* 0: the daemon's cap. */
	assert_int_equal(engine_preflight_backoff(30, T0, 0, 0),
			 T0 + ENGINE_BACKOFF_CAP_MS);
	/* Jitter: up to 10 % shorter, never longer. */
	for (unsigned k = 1; k < 20; k++) {
		int64_t base = engine_preflight_backoff(k, T0, max, 0) - T0;
		int64_t lo = engine_preflight_backoff(k, T0, max, UINT64_MAX) -
			     T0;

		assert_true(lo <= base && lo > base - base / 10 - 1);
		assert_true(lo < base);
		for (uint64_t r = 1; r < 1000; r++) {
			int64_t d = engine_preflight_backoff(
					k, T0, max, r * 0x9e3779b97f4a7c15ull) -
				    T0;
			assert_true(d <= base && d >= base - base / 10);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_points_at_us),
	    cmocka_unit_test(test_elsewhere),
	    cmocka_unit_test(test_order_and_duplicates),
	    cmocka_unit_test(test_cname),
	    cmocka_unit_test(test_no_address_and_nxdomain),
	    cmocka_unit_test(test_resolver_failures),
	    cmocka_unit_test(test_small_buffer),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
