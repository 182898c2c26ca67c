/*
 * Unit tests of how front mode parses a stored certificate (tls_cert.c)
 * and of the loader's parser (tls_pem.c): the same result with and
 * without the parser, intermediates shared between certificates, EC and
 * RSA keys, and every malformed input refused with a message. The
 * certificates are made here (self-signed: parsing checks no signature).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "crypto/crypto.h"
#include "tls/tls.h"

/* A PEM certificate for cn with key, valid for days. */
static char *self_signed(EVP_PKEY *key, const char *cn, long days)
{
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long len;

	assert_non_null(x);
	assert_non_null(b);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), days * 86400));
	assert_true(X509_set_pubkey(x, key));
	assert_true(X509_NAME_add_entry_by_NID(
		X509_get_subject_name(x), NID_commonName, MBSTRING_ASC,
		(const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
	assert_true(X509_sign(x, key, EVP_sha256()));
	assert_true(PEM_write_bio_X509(b, x));
	len = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)len);
	BIO_free(b);
	X509_free(x);
	return s;
}

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	assert_non_null(s);
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

struct fx {
	EVP_PKEY *k1, *k2, *ki;
	char *leaf1, *leaf2, *inter, *key1, *key2;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	size_t n;

	f->k1 = key_generate(KEY_ECDSA_P256);
	f->k2 = key_generate(KEY_ECDSA_P256);
	f->ki = key_generate(KEY_ECDSA_P256);
	f->leaf1 = self_signed(f->k1, "one.example", 90);
	f->leaf2 = self_signed(f->k2, "two.example", 30);
	f->inter = self_signed(f->ki, "Intermediate", 365);
	f->key1 = key_to_pem(f->k1, &n);
	f->key2 = key_to_pem(f->k2, &n);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	EVP_PKEY_free(f->k1);
	EVP_PKEY_free(f->k2);
	EVP_PKEY_free(f->ki);
	free(f->leaf1);
	free(f->leaf2);
	free(f->inter);
	free(f->key1);
	free(f->key2);
	free(f);
	return 0;
}

static struct tls_cert *parse(struct tls_pem *p, const char *chain,
			      const char *key, char *err, size_t errsz)
{
	err[0] = '\0';
	return tls_cert_from_pem(p, chain, strlen(chain), key, strlen(key),
				 err, errsz);
}

/* The leaf an SSL was given by tls_cert_use. */
static X509 *served(struct tls_cert *c, SSL_CTX *ctx, SSL **ssl)
{
	*ssl = SSL_new(ctx);
	assert_non_null(*ssl);
	assert_int_equal(tls_cert_use(c, *ssl), 0);
	return SSL_get_certificate(*ssl);
}

static void test_same_with_and_without_parser(void **state)
{
	struct fx *f = *state;
	struct tls_pem *p = tls_pem_new();
	char *chain = concat(f->leaf1, f->inter), err[256];
	struct tls_cert *a, *b;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *sa, *sb;
	STACK_OF(X509) *ca, *cb;

	assert_non_null(p);
	a = parse(NULL, chain, f->key1, err, sizeof(err));
	assert_non_null(a);
	b = parse(p, chain, f->key1, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(tls_cert_not_after(a), tls_cert_not_after(b));
	assert_int_equal(X509_cmp(served(a, ctx, &sa), served(b, ctx, &sb)), 0);
	assert_int_equal(SSL_get0_chain_certs(sa, &ca), 1);
	assert_int_equal(SSL_get0_chain_certs(sb, &cb), 1);
	assert_int_equal(sk_X509_num(ca), 1);
	assert_int_equal(sk_X509_num(cb), 1);
	assert_int_equal(X509_cmp(sk_X509_value(ca, 0), sk_X509_value(cb, 0)), 0);
	SSL_free(sa);
	SSL_free(sb);
	tls_cert_unref(a);
	tls_cert_unref(b);
	SSL_CTX_free(ctx);
	tls_pem_free(p);
	free(chain);
}

static void test_intermediate_shared(void **state)
{
	struct fx *f = *state;
	struct tls_pem *p = tls_pem_new();
	char *c1 = concat(f->leaf1, f->inter), *c2 = concat(f->leaf2, f->inter);
	char err[256];
	struct tls_cert *a = parse(p, c1, f->key1, err, sizeof(err));
	struct tls_cert *b = parse(p, c2, f->key2, err, sizeof(err));
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *sa, *sb;
	STACK_OF(X509) *ca, *cb;

	assert_non_null(a);
	assert_non_null(b);
	/* different leaves, one X509 for the intermediate */
	assert_int_not_equal(X509_cmp(served(a, ctx, &sa), served(b, ctx, &sb)), 0);
	assert_int_equal(SSL_get0_chain_certs(sa, &ca), 1);
	assert_int_equal(SSL_get0_chain_certs(sb, &cb), 1);
	assert_ptr_equal(sk_X509_value(ca, 0), sk_X509_value(cb, 0));
	/* a certificate outlives the parser that made it */
	tls_pem_free(p);
	assert_int_equal(X509_cmp(sk_X509_value(ca, 0), sk_X509_value(cb, 0)), 0);
	SSL_free(sa);
	SSL_free(sb);
	tls_cert_unref(a);
	tls_cert_unref(b);
	SSL_CTX_free(ctx);
	free(c1);
	free(c2);
}

static void test_rsa_key(void **state)
{
	struct tls_pem *p = tls_pem_new();
	EVP_PKEY *k = key_generate(KEY_RSA2048);
	char *leaf = self_signed(k, "rsa.example", 10), err[256];
	size_t n;
	char *pem = key_to_pem(k, &n);
	struct tls_cert *c = parse(p, leaf, pem, err, sizeof(err));

	(void)state;
	assert_non_null(c); /* the EC decoder refuses it, the other takes it */
	tls_cert_unref(c);
	tls_pem_free(p);
	EVP_PKEY_free(k);
	free(leaf);
	free(pem);
}

static void test_refused(void **state)
{
	struct fx *f = *state;
	struct tls_pem *p = tls_pem_new();
	char *chain = concat(f->leaf1, f->inter), err[256];
	char *junk = concat(f->leaf1, "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n");
	char *badb64 = concat(f->leaf1, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
	char *keyfirst = concat(f->key1, f->leaf1);
	struct tls_pem *ps[2] = {NULL, p};

	for (int i = 0; i < 2; i++) {
		assert_null(parse(ps[i], chain, f->key2, err, sizeof(err)));
		assert_non_null(strstr(err, "not the certificate's"));
		assert_null(parse(ps[i], "", f->key1, err, sizeof(err)));
		assert_non_null(strstr(err, "does not start with a certificate"));
		assert_null(parse(ps[i], keyfirst, f->key1, err, sizeof(err)));
		assert_non_null(strstr(err, "does not start with a certificate"));
		assert_null(parse(ps[i], junk, f->key1, err, sizeof(err)));
		assert_non_null(strstr(err, "not a certificate"));
		assert_null(parse(ps[i], badb64, f->key1, err, sizeof(err)));
		assert_non_null(strstr(err, "not a certificate"));
		assert_null(parse(ps[i], chain, "not a key", err, sizeof(err)));
		assert_non_null(strstr(err, "does not parse"));
		assert_null(parse(ps[i], chain, f->leaf1, err, sizeof(err)));
		assert_non_null(strstr(err, "does not parse"));
		/* the messages never carry key material */
		assert_null(strstr(err, "PRIVATE"));
	}
	/* the parser still works after all that */
	{
		struct tls_cert *c = parse(p, chain, f->key1, err, sizeof(err));

		assert_non_null(c);
		tls_cert_unref(c);
	}
	tls_pem_free(p);
	free(chain);
	free(junk);
	free(badb64);
	free(keyfirst);
}

static void test_many_intermediates(void **state)
{
	struct fx *f = *state;
	struct tls_pem *p = tls_pem_new();
	char err[256];

	/* more distinct intermediates than the parser remembers: each
	 * still parses; the oldest are forgotten, not broken */
	for (int i = 0; i < 40; i++) {
		char cn[32];
		char *inter, *chain;
		struct tls_cert *c;

		snprintf(cn, sizeof(cn), "Intermediate %d", i);
		inter = self_signed(f->ki, cn, 365);
		chain = concat(f->leaf1, inter);
		c = parse(p, chain, f->key1, err, sizeof(err));
		assert_non_null(c);
		tls_cert_unref(c);
		free(inter);
		free(chain);
	}
	tls_pem_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_with_and_without_parser),
		cmocka_unit_test(test_intermediate_shared),
		cmocka_unit_test(test_rsa_key),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_many_intermediates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
