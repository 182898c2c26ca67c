/*
 * Unit tests of TLS-ALPN-01 on the front (tls_alpn.c): the ALPN list
 * parser's answers for well-formed and malformed lists, the challenge
 * certificate's contents (RFC 8737 section 3: subjectAltName with exactly
 * the name, the critical acmeIdentifier extension holding the digest as a
 * DER OCTET STRING, the key matching), and the table (publish, replace,
 * withdraw).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

static void test_offered(void **state)
{
	static const unsigned char acme[] = "\x00\x0b\x0a"
					    "acme-tls/1";
	static const unsigned char both[] = "\x00\x17\x02h2\x08http/1.1\x0a"
					    "acme-tls/1";
	static const unsigned char web[] = "\x00\x0c\x02h2\x08http/1.1";
	static const unsigned char prefix[] = "\x00\x0a\x09"
					      "acme-tls/";
	static const unsigned char overrun[] = "\x00\x0b\x0b"
					       "acme-tls/1";
	static const unsigned char empty_name[] = "\x00\x01\x00";
	static const unsigned char bad_len[] = "\x00\x0c\x0a"
					       "acme-tls/1";

	assert_int_equal(tls_alpn_offered(acme, sizeof(acme) - 1), 1);
	assert_int_equal(tls_alpn_offered(both, sizeof(both) - 1), 1);
	assert_int_equal(tls_alpn_offered(web, sizeof(web) - 1), 0);
	assert_int_equal(tls_alpn_offered(prefix, sizeof(prefix) - 1), 0);
	assert_int_equal(tls_alpn_offered(overrun, sizeof(overrun) - 1),
			 -EINVAL);
	assert_int_equal(tls_alpn_offered(empty_name, sizeof(empty_name) - 1),
			 -EINVAL);
	assert_int_equal(tls_alpn_offered(bad_len, sizeof(bad_len) - 1),
			 -EINVAL);
	assert_int_equal(tls_alpn_offered(acme, 1), -EINVAL);
	assert_int_equal(tls_alpn_offered(NULL, 0), -EINVAL);
}

/* The X509 a tls_cert carries, through an SSL (the public way in). */
static X509 *leaf_of(struct tls_cert *c, SSL_CTX *ctx, SSL **ssl)
{
	*ssl = SSL_new(ctx);
	assert_non_null(*ssl);
	assert_int_equal(tls_cert_use(c, *ssl), 0);
	return SSL_get_certificate(*ssl);
}

static void test_cert(void **state)
{
	unsigned char digest[32];
	char err[128];
	struct tls_cert *c;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl;
	X509 *x;
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	X509_EXTENSION *ext;
	const ASN1_OCTET_STRING *val;
	GENERAL_NAMES *san;
	const GENERAL_NAME *gn;
	int loc;

	for (int i = 0; i < 32; i++)
		digest[i] = (unsigned char)(i * 7 + 1);
	c = tls_alpn_cert_new("shop.example.com", digest, err, sizeof(err));
	assert_non_null(c);
	x = leaf_of(c, ctx, &ssl);
	assert_non_null(x);
	/* the acmeIdentifier extension: critical, DER OCTET STRING(32) */
	loc = X509_get_ext_by_OBJ(x, oid, -1);
	assert_true(loc >= 0);
	ext = X509_get_ext(x, loc);
	assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
	val = X509_EXTENSION_get_data(ext);
	assert_int_equal(ASN1_STRING_length(val), 34);
	assert_int_equal(ASN1_STRING_get0_data(val)[0], 0x04);
	assert_int_equal(ASN1_STRING_get0_data(val)[1], 32);
	assert_memory_equal(ASN1_STRING_get0_data(val) + 2, digest, 32);
	/* exactly one dNSName, the domain */
	san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 1);
	gn = sk_GENERAL_NAME_value(san, 0);
	assert_int_equal(gn->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
			    "shop.example.com");
	GENERAL_NAMES_free(san);
	/* self-signed by the key it carries */
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(SSL_check_private_key(ssl), 1);
	SSL_free(ssl);
	tls_cert_unref(c);
	assert_null(tls_alpn_cert_new("", digest, err, sizeof(err)));
	ASN1_OBJECT_free(oid);
	SSL_CTX_free(ctx);
}

static void test_table(void **state)
{
	unsigned char d1[32] = {1}, d2[32] = {2};
	char err[128];
	struct tls_alpn *t = tls_alpn_new();
	struct tls_cert *a, *b;

	assert_non_null(t);
	assert_null(tls_alpn_get(t, "a.example.com"));
	assert_int_equal(
	    tls_alpn_publish(t, "a.example.com", d1, err, sizeof(err)), 0);
	assert_int_equal(
	    tls_alpn_publish(t, "b.example.com", d1, err, sizeof(err)), 0);
	assert_int_equal(tls_alpn_count(t), 2);
	a = tls_alpn_get(t, "a.example.com");
	assert_non_null(a);
	/* a new challenge for the same name replaces it; the old one lives
	 * on while a handshake holds it */
	assert_int_equal(
	    tls_alpn_publish(t, "a.example.com", d2, err, sizeof(err)), 0);
	assert_int_equal(tls_alpn_count(t), 2);
	b = tls_alpn_get(t, "a.example.com");
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	tls_cert_unref(a);
	tls_cert_unref(b);
	tls_alpn_unpublish(t, "a.example.com");
	tls_alpn_unpublish(t, "nothing.example.com");
	assert_null(tls_alpn_get(t, "a.example.com"));
	assert_non_null(b = tls_alpn_get(t, "b.example.com"));
	tls_cert_unref(b);
	assert_int_equal(tls_alpn_count(t), 1);
	tls_alpn_free(t); /* frees b's entry */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_offered),
	    cmocka_unit_test(test_cert),
	    cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
