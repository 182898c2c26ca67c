/*
 * Unit tests of front mode's pure certificate logic: SNI normalization and
 * the server_name extension parser (tls_sni.c), the index with its
 * wildcard fallback, separate LRU bounds, absent expiry and renewal swap
 * (tls_index.c, with counted fake values), and the ticket key ring
 * (tls_ticket.c). Times are arguments: no clock is read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tls/tls.h"
#include "util/util.h"

/* ---- SNI ------------------------------------------------------------------ */

static void test_sni_normalize(void **state)
{
	static const struct {
		const char *in, *want; /* want NULL: refused */
	} cases[] = {
		{"example.com", "example.com"},
		{"WWW.Example.COM", "www.example.com"},
		{"shop.example.com.", "shop.example.com"},
		{"a-b.c0.example", "a-b.c0.example"},
		{"xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"123.example.com", "123.example.com"},
		{"localhost", NULL},	     /* one label */
		{"127.0.0.1", NULL},	     /* IPv4 literal */
		{"example.123", NULL},	     /* numeric TLD */
		{"-a.example.com", NULL},
		{"a-.example.com", NULL},
		{"a..example.com", NULL},
		{".example.com", NULL},
		{"example.com..", NULL},
		{"under_score.example.com", NULL},
		{"sp ace.example.com", NULL},
		{"b\xc3\xbc" "cher.de", NULL}, /* U-label: SNI is A-labels */
		{"*.example.com", NULL},	/* clients never send one */
		{"", NULL},
		{".", NULL},
	};
	char out[TLS_NAME_MAX + 1], ref[TLS_NAME_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tls_sni_normalize(cases[i].in, strlen(cases[i].in),
					   out, sizeof(out));

		if (!cases[i].want) {
			assert_int_equal(rc, -EINVAL);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(out, cases[i].want);
		/* the same spelling the store uses */
		assert_int_equal(name_normalize(cases[i].in, 0, ref,
						sizeof(ref), NULL, 0),
				 0);
		assert_string_equal(out, ref);
	}
}

static void test_sni_lengths(void **state)
{
	char in[300], out[TLS_NAME_MAX + 1];

	/* a 63-character label is fine, 64 is not */
	memset(in, 'a', 63);
	strcpy(in + 63, ".example.com");
	assert_int_equal(tls_sni_normalize(in, strlen(in), out, sizeof(out)),
			 0);
	memset(in, 'a', 64);
	strcpy(in + 64, ".example.com");
	assert_int_equal(tls_sni_normalize(in, strlen(in), out, sizeof(out)),
			 -EINVAL);
	/* 253 characters in all is the limit (a trailing dot is extra) */
	memset(in, 0, sizeof(in));
	for (int i = 0; i < 4; i++)
		memcpy(in + i * 62, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.",
		       62);
	strcpy(in + 248, "abcde"); /* 253 */
	assert_int_equal(strlen(in), 253);
	assert_int_equal(tls_sni_normalize(in, 253, out, sizeof(out)), 0);
	in[253] = '.';
	assert_int_equal(tls_sni_normalize(in, 254, out, sizeof(out)), 0);
	in[253] = 'x';
	assert_int_equal(tls_sni_normalize(in, 254, out, sizeof(out)),
			 -EINVAL);
	/* a NUL inside is not a name */
	assert_int_equal(tls_sni_normalize("a\0b.example.com", 15, out,
					   sizeof(out)),
			 -EINVAL);
	/* too small an output is refused, not overflowed */
	assert_int_equal(tls_sni_normalize("example.com", 11, out, 12),
			 -EINVAL);
}

static void test_sni_ext(void **state)
{
	/* list length 16: host_name (0), length 13, "Shop.Test.Com" */
	static const unsigned char good[] = {0, 16, 0, 0, 13, 'S', 'h', 'o',
					     'p', '.', 'T', 'e', 's', 't',
					     '.', 'C', 'o', 'm'};
	/* another type first (skipped), then host_name */
	static const unsigned char other[] = {0, 10, 7, 0, 1, 'x', 0, 0, 3,
					      'a', '.', 'b'};
	static const unsigned char none[] = {0, 4, 7, 0, 1, 'x'};
	static const unsigned char overrun[] = {0, 6, 0, 0, 9, 'a', '.', 'b'};
	static const unsigned char badlist[] = {0, 9, 0, 0, 3, 'a', '.', 'b'};
	char out[TLS_NAME_MAX + 1];

	assert_int_equal(tls_sni_from_ext(good, sizeof(good), out, sizeof(out)),
			 0);
	assert_string_equal(out, "shop.test.com");
	assert_int_equal(
		tls_sni_from_ext(other, sizeof(other), out, sizeof(out)), 0);
	assert_string_equal(out, "a.b");
	assert_int_equal(tls_sni_from_ext(none, sizeof(none), out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(
		tls_sni_from_ext(overrun, sizeof(overrun), out, sizeof(out)),
		-EINVAL);
	assert_int_equal(
		tls_sni_from_ext(badlist, sizeof(badlist), out, sizeof(out)),
		-EINVAL);
	assert_int_equal(tls_sni_from_ext(good, 1, out, sizeof(out)), -EINVAL);
	/* every truncation of a good extension is refused */
	for (size_t n = 0; n < sizeof(good); n++)
		assert_true(tls_sni_from_ext(good, n, out, sizeof(out)) < 0);
}

static void test_sni_wildcard(void **state)
{
	char out[TLS_NAME_MAX + 1];

	assert_int_equal(tls_sni_wildcard("a.b.example.com", out, sizeof(out)),
			 0);
	assert_string_equal(out, "*.b.example.com");
	assert_int_equal(tls_sni_wildcard("www.example.com", out, sizeof(out)),
			 0);
	assert_string_equal(out, "*.example.com");
	/* "*.com" would cover a registered domain: never */
	assert_int_equal(tls_sni_wildcard("example.com", out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(tls_sni_wildcard("*.example.com", out, sizeof(out)),
			 -EINVAL);
}

/* ---- the index ------------------------------------------------------------ */

/* Fake values: counters, so the test sees every reference taken and given
 * back. */
struct val {
	int refs;
	int id;
};
static void vref(void *v)
{
	((struct val *)v)->refs++;
}
static void vunref(void *v)
{
	((struct val *)v)->refs--;
}
static const struct tls_index_ops ops = {vref, vunref};

static void test_index_states(void **state)
{
	struct tls_index *ix = tls_index_new(&ops, 4, 4, 1000);
	struct val a = {1, 1}, b = {1, 2};
	void *v;
	char load[TLS_NAME_MAX + 1];

	assert_non_null(ix);
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, &v),
			 TLS_LOOK_MISS);
	assert_int_equal(tls_index_loading(ix, "a.example.com"), 0);
	assert_int_equal(tls_index_loading(ix, "a.example.com"), -EEXIST);
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, &v),
			 TLS_LOOK_LOADING);
	assert_int_equal(tls_index_put(ix, "a.example.com", &a, 0), 0);
	assert_int_equal(a.refs, 2); /* ours + the index's */
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, &v),
			 TLS_LOOK_HIT);
	assert_ptr_equal(v, &a);
	assert_int_equal(a.refs, 3); /* + the caller's */
	vunref(v);
	/* a renewal replaces the value; the old one loses the index's ref
	 * only (a handshake holding it keeps it) */
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, &v),
			 TLS_LOOK_HIT); /* a handshake in flight */
	assert_int_equal(tls_index_changed(ix, "a.example.com"), 1);
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, NULL),
			 TLS_LOOK_HIT); /* still served until replaced */
	assert_int_equal(tls_index_put(ix, "a.example.com", &b, 0), 0);
	assert_int_equal(a.refs, 2); /* ours + the handshake's */
	assert_int_equal(b.refs, 2);
	vunref(v);
	assert_int_equal(tls_index_get(ix, "a.example.com", 0, &v),
			 TLS_LOOK_HIT);
	assert_ptr_equal(v, &b);
	vunref(v);

	/* absent, until it expires or changes */
	assert_int_equal(tls_index_loading(ix, "n.example.com"), 0);
	assert_int_equal(tls_index_put(ix, "n.example.com", NULL, 100), 0);
	assert_int_equal(tls_index_get(ix, "n.example.com", 1099, NULL),
			 TLS_LOOK_ABSENT);
	assert_int_equal(tls_index_get(ix, "n.example.com", 1100, NULL),
			 TLS_LOOK_MISS);
	assert_int_equal(tls_index_absent(ix), 0);
	assert_int_equal(tls_index_put(ix, "n.example.com", NULL, 2000), 0);
	assert_int_equal(tls_index_changed(ix, "n.example.com"), 0);
	assert_int_equal(tls_index_get(ix, "n.example.com", 2001, NULL),
			 TLS_LOOK_MISS);
	/* an absent name can be loaded again */
	assert_int_equal(tls_index_put(ix, "n.example.com", NULL, 2000), 0);
	assert_int_equal(tls_index_loading(ix, "n.example.com"), 0);
	assert_int_equal(tls_index_get(ix, "n.example.com", 2001, NULL),
			 TLS_LOOK_LOADING);
	(void)load;
	tls_index_free(ix);
	assert_int_equal(b.refs, 1);
	assert_int_equal(a.refs, 1);
}

static void test_index_wildcard(void **state)
{
	struct tls_index *ix = tls_index_new(&ops, 4, 4, 1000);
	struct val w = {1, 1}, e = {1, 2};
	void *v;
	char load[TLS_NAME_MAX + 1];

	/* unknown: load the exact name first */
	assert_int_equal(tls_index_resolve(ix, "shop.example.com", 0, &v, load),
			 TLS_LOOK_MISS);
	assert_string_equal(load, "shop.example.com");
	tls_index_put(ix, "shop.example.com", NULL, 0);
	/* no certificate of its own: the wildcard is next */
	assert_int_equal(tls_index_resolve(ix, "shop.example.com", 0, &v, load),
			 TLS_LOOK_MISS);
	assert_string_equal(load, "*.example.com");
	tls_index_loading(ix, "*.example.com");
	assert_int_equal(tls_index_resolve(ix, "shop.example.com", 0, &v, load),
			 TLS_LOOK_LOADING);
	assert_string_equal(load, "*.example.com");
	tls_index_put(ix, "*.example.com", &w, 0);
	assert_int_equal(tls_index_resolve(ix, "shop.example.com", 0, &v, load),
			 TLS_LOOK_HIT);
	assert_ptr_equal(v, &w);
	vunref(v);
	/* an exact certificate wins over the wildcard */
	tls_index_put(ix, "www.example.com", &e, 0);
	assert_int_equal(tls_index_resolve(ix, "www.example.com", 0, &v, load),
			 TLS_LOOK_HIT);
	assert_ptr_equal(v, &e);
	vunref(v);
	/* the wildcard covers one label only */
	tls_index_put(ix, "a.b.example.com", NULL, 0);
	assert_int_equal(tls_index_resolve(ix, "a.b.example.com", 0, &v, load),
			 TLS_LOOK_MISS);
	assert_string_equal(load, "*.b.example.com");
	/* a name with no wildcard above it is simply absent */
	tls_index_put(ix, "example.com", NULL, 0);
	assert_int_equal(tls_index_resolve(ix, "example.com", 0, &v, load),
			 TLS_LOOK_ABSENT);
	tls_index_free(ix);
	assert_int_equal(w.refs, 1);
	assert_int_equal(e.refs, 1);
}

static void test_index_bounds(void **state)
{
	struct tls_index *ix = tls_index_new(&ops, 3, 2, 1000);
	struct val v[5] = {{1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}};
	char name[64];

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "c%d.example.com", i);
		tls_index_put(ix, name, &v[i], 0);
	}
	/* touch c0 so c1 is the least recently used */
	assert_int_equal(tls_index_get(ix, "c0.example.com", 0, NULL),
			 TLS_LOOK_HIT);
	/* a flood of unknown names only churns the absent list */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "r%d.example.net", i);
		tls_index_put(ix, name, NULL, 0);
	}
	assert_int_equal(tls_index_present(ix), 3);
	assert_int_equal(tls_index_absent(ix), 2);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "c%d.example.com", i);
		assert_int_equal(tls_index_get(ix, name, 0, NULL),
				 TLS_LOOK_HIT);
	}
	assert_int_equal(tls_index_get(ix, "r999.example.net", 0, NULL),
			 TLS_LOOK_ABSENT);
	assert_int_equal(tls_index_get(ix, "r0.example.net", 0, NULL),
			 TLS_LOOK_MISS);
	/* a fourth certificate evicts the least recently used: c0 (c1 and
	 * c2 were read after it above) */
	tls_index_get(ix, "c1.example.com", 0, NULL);
	tls_index_get(ix, "c2.example.com", 0, NULL);
	tls_index_put(ix, "c3.example.com", &v[3], 0);
	assert_int_equal(tls_index_present(ix), 3);
	assert_int_equal(tls_index_get(ix, "c0.example.com", 0, NULL),
			 TLS_LOOK_MISS);
	assert_int_equal(v[0].refs, 1); /* the index let go */
	/* loading entries are never evicted */
	tls_index_loading(ix, "l.example.com");
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "s%d.example.net", i);
		tls_index_put(ix, name, NULL, 0);
	}
	assert_int_equal(tls_index_get(ix, "l.example.com", 0, NULL),
			 TLS_LOOK_LOADING);
	tls_index_free(ix);
	for (int i = 0; i < 5; i++)
		assert_int_equal(v[i].refs, 1);
	assert_null(tls_index_new(&ops, 0, 1, 0));
	assert_null(tls_index_new(&ops, 1, 0, 0));
}

/* ---- ticket keys ---------------------------------------------------------- */

static void key(struct tls_ticket_key *k, unsigned char tag)
{
	memset(k, tag, sizeof(*k));
}

static void test_ticket_ring(void **state)
{
	struct tls_ticket_ring r = {.period_ms = 1000};
	struct tls_ticket_key k;
	unsigned char name[16];

	assert_true(tls_ticket_due(&r, 0));
	key(&k, 'a');
	tls_ticket_push(&r, &k, 0);
	assert_false(tls_ticket_due(&r, 999));
	assert_true(tls_ticket_due(&r, 1000));
	assert_true(tls_ticket_due(&r, -5)); /* the clock went back */
	memset(name, 'a', sizeof(name));
	assert_int_equal(tls_ticket_find(&r, name, 500), 0);
	key(&k, 'b');
	tls_ticket_push(&r, &k, 1000);
	key(&k, 'c');
	tls_ticket_push(&r, &k, 2000);
	key(&k, 'd');
	tls_ticket_push(&r, &k, 3000);
	assert_int_equal(r.n, TLS_TICKET_KEYS);
	/* 'a' fell out of the ring */
	assert_int_equal(tls_ticket_find(&r, name, 3000), -ENOENT);
	memset(name, 'b', sizeof(name));
	assert_int_equal(tls_ticket_find(&r, name, 3000), 2);
	/* 'b' was replaced at 2000: accepted for two periods after */
	assert_int_equal(tls_ticket_find(&r, name, 3999), 2);
	assert_int_equal(tls_ticket_find(&r, name, 4000), -ENOENT);
	memset(name, 'd', sizeof(name));
	assert_int_equal(tls_ticket_find(&r, name, 3500), 0);
	memset(name, 'z', sizeof(name));
	assert_int_equal(tls_ticket_find(&r, name, 3500), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sni_normalize),
		cmocka_unit_test(test_sni_lengths),
		cmocka_unit_test(test_sni_ext),
		cmocka_unit_test(test_sni_wildcard),
		cmocka_unit_test(test_index_states),
		cmocka_unit_test(test_index_wildcard),
		cmocka_unit_test(test_index_bounds),
		cmocka_unit_test(test_ticket_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
