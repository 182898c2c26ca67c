/*
 * Unit tests of the default certificate (tls_default.c): reading the PEM
 * pair with the checks of a secret file (missing file, key readable by
 * others, key not the certificate's: refused with a message naming the
 * key and the file, never key material), and the holder a reload swaps
 * while handshakes keep the certificate they took. The certificates are
 * made here with OpenSSL (self-signed P-256) in a temporary directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/tls.h"

static char dir[] = "/tmp/test_tls_default.XXXXXX";

/* A self-signed P-256 certificate in DIR/NAME.pem, its key in
 * DIR/NAME.key with mode. */
static void make_pair(const char *name, mode_t mode)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	char path[256];
	FILE *f;

	assert_non_null(k);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	assert_non_null(f = fopen(path, "w"));
	PEM_write_X509(f, x);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	assert_non_null(f = fopen(path, "w"));
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

static struct tls_cert *load(const char *cert, const char *key, char *err,
			     size_t errsz)
{
	char c[256], k[256];

	snprintf(c, sizeof(c), "%s/%s", dir, cert);
	snprintf(k, sizeof(k), "%s/%s", dir, key);
	err[0] = '\0';
	return tls_default_load(c, k, err, errsz);
}

static void test_load(void **state)
{
	char err[512];
	struct tls_cert *c;

	(void)state;
	make_pair("a", 0600);
	make_pair("b", 0600);
	make_pair("open", 0644);
	c = load("a.pem", "a.key", err, sizeof(err));
	assert_non_null(c);
	tls_cert_unref(c);
	/* missing certificate file */
	assert_null(load("none.pem", "a.key", err, sizeof(err)));
	assert_non_null(strstr(err, "front.default_certificate: cannot read"));
	/* key readable by others: a secret file's check */
	assert_null(load("open.pem", "open.key", err, sizeof(err)));
	assert_non_null(strstr(err, "front.default_key"));
	assert_non_null(strstr(err, "chmod 600"));
	/* key of another certificate */
	assert_null(load("a.pem", "b.key", err, sizeof(err)));
	assert_non_null(strstr(err, "a.pem with front.default_key"));
	assert_null(strstr(err, "PRIVATE"));
	/* a key where the certificate should be */
	assert_null(load("a.key", "a.key", err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(strstr(err, "PRIVATE"));
}

static void test_holder(void **state)
{
	char err[512];
	struct tls_default *d = tls_default_new();
	struct tls_cert *a = load("a.pem", "a.key", err, sizeof(err));
	struct tls_cert *b = load("b.pem", "b.key", err, sizeof(err));
	struct tls_cert *got;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = SSL_new(ctx);

	(void)state;
	assert_non_null(d);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(tls_default_get(d));
	assert_null(tls_default_get(NULL));
	assert_int_equal(tls_default_use(d, ssl), 0); /* none: the alert */
	tls_default_set(d, a);
	tls_cert_unref(a); /* the holder keeps its own */
	got = tls_default_get(d);
	assert_ptr_equal(got, a);
	assert_int_equal(tls_default_use(d, ssl), 1);
	/* a reload swaps it; what a handshake took stays usable */
	tls_default_set(d, b);
	assert_ptr_equal(tls_default_get(d), b);
	tls_cert_unref(b); /* the get above */
	assert_true(tls_cert_not_after(got) > 0);
	tls_cert_unref(got);
	tls_default_set(d, NULL);
	assert_null(tls_default_get(d));
	tls_cert_unref(b);
	tls_default_free(d);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	const char *names[] = {"a.pem", "a.key", "b.pem", "b.key",
			       "open.pem", "open.key"};
	char p[256];

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_holder),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
