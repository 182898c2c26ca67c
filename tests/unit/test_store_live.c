/*
 * Unit tests for store_live_write: certbot's live/<domain>/ files from a
 * real chain (a self-signed CA and a leaf it issued, made here with
 * OpenSSL), with the right contents and modes; bad names and bad chains
 * write nothing.
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
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/util.h"
#include "unit_tmp.h"

/* A certificate for cn signed by sign_key; issuer NULL = self-signed. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer,
		      EVP_PKEY *sign_key)
{
	X509 *c = X509_new();
	X509_NAME *name;

	assert_non_null(c);
	assert_true(X509_set_version(c, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(c), 42));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), 86400));
	assert_true(X509_set_pubkey(c, key));
	name = X509_get_subject_name(c);
	assert_true(
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
				       (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(
	    c, issuer ? X509_get_subject_name(issuer) : name));
	assert_true(X509_sign(c, sign_key, EVP_sha256()));
	return c;
}

static char *cert_pem(X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long len;

	assert_non_null(b);
	assert_true(PEM_write_bio_X509(b, c));
	len = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)len);
	BIO_free(b);
	return s;
}

static char *slurp(const char *dir, const char *file, mode_t *mode)
{
	char path[512];
	struct stat sb;
	char *data = NULL;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_int_equal(stat(path, &sb), 0);
	*mode = sb.st_mode & 0777;
	assert_int_equal(fsio_read_all(path, 1 << 20, &data, &len), 0);
	return data;
}

static void test_live_layout(void **state)
{
	char tmp[] = "/tmp/certherd-live-XXXXXX";
	char live[128], dom[256], both[16384];
	EVP_PKEY *ca_key = key_generate(KEY_ECDSA_P256);
	EVP_PKEY *key = key_generate(KEY_ECDSA_P256);
	X509 *ca, *leaf;
	char *ca_pem, *leaf_pem, *key_pem, *s;
	struct stat sb;
	mode_t mode;
	size_t klen;

	(void)state;
	assert_non_null(mkdtemp(tmp));
	snprintf(live, sizeof(live), "%s/live", tmp);
	ca = cert_new(ca_key, "Test CA", NULL, ca_key);
	leaf = cert_new(key, "www.example.com", ca, ca_key);
	ca_pem = cert_pem(ca);
	leaf_pem = cert_pem(leaf);
	key_pem = key_to_pem(key, &klen);
	assert_non_null(key_pem);
	snprintf(both, sizeof(both), "%s%s", leaf_pem, ca_pem);

	assert_int_equal(
	    store_live_write(live, "www.example.com", both, key_pem), 0);
	snprintf(dom, sizeof(dom), "%s/www.example.com", live);
	assert_int_equal(stat(dom, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0755);
	s = slurp(dom, "privkey.pem", &mode);
	assert_int_equal(mode, 0600);
	assert_string_equal(s, key_pem);
	free(s);
	s = slurp(dom, "cert.pem", &mode);
	assert_int_equal(mode, 0644);
	assert_string_equal(s, leaf_pem);
	free(s);
	s = slurp(dom, "chain.pem", &mode);
	assert_string_equal(s, ca_pem);
	free(s);
	s = slurp(dom, "fullchain.pem", &mode);
	assert_int_equal(mode, 0644);
	assert_string_equal(s, both);
	free(s);

	/* a second write replaces the files in place */
	assert_int_equal(
	    store_live_write(live, "www.example.com", leaf_pem, key_pem), 0);
	s = slurp(dom, "fullchain.pem", &mode);
	assert_string_equal(s, leaf_pem);
	free(s);
	s = slurp(dom, "chain.pem", &mode);
	assert_string_equal(s, "");
	free(s);

	/* with an owner for the key (nginx.key_owner): privkey.pem has it,
	 * still 0600, the others stay ours; no temp file is left. As root
	 * another user's (nobody's id), else our own (all chown allows) */
	{
		uid_t u = getuid() == 0 ? 65534 : getuid();
		gid_t g = getuid() == 0 ? 65534 : getgid();
		char p[512];

		assert_int_equal(store_live_write_as(live, "www.example.com",
						     both, key_pem, u, g),
				 0);
		snprintf(p, sizeof(p), "%s/privkey.pem", dom);
		assert_int_equal(lstat(p, &sb), 0);
		assert_int_equal(sb.st_uid, u);
		assert_int_equal(sb.st_gid, g);
		assert_int_equal(sb.st_mode & 0777, 0600);
		snprintf(p, sizeof(p), "%s/fullchain.pem", dom);
		assert_int_equal(lstat(p, &sb), 0);
		assert_int_equal(sb.st_uid, getuid());
		assert_int_equal(store_live_sweep(live, "www.example.com"), 0);
		s = slurp(dom, "privkey.pem", &mode);
		assert_string_equal(s, key_pem);
		free(s);
	}

	/* a wildcard gets _wildcard.BASE: the base name's own directory
	 * belongs to the plain name, which a platform often has too */
	assert_int_equal(store_live_write(live, "*.example.com", both, key_pem),
			 0);
	snprintf(dom, sizeof(dom), "%s/_wildcard.example.com/fullchain.pem",
		 live);
	assert_int_equal(stat(dom, &sb), 0);
	snprintf(dom, sizeof(dom), "%s/example.com", live);
	assert_int_equal(stat(dom, &sb), -1);
	{
		char buf[64];
		assert_string_equal(store_live_dirname("*.a.example", buf,
							sizeof(buf)),
				    "_wildcard.a.example");
		assert_string_equal(store_live_dirname("a.example", buf,
							sizeof(buf)),
				    "a.example");
	}

	/* bad names and bad chains write nothing */
	assert_int_equal(store_live_write(live, "../evil.com", both, key_pem),
			 -EINVAL);
	assert_int_equal(
	    store_live_write(live, "Bad.example.com", both, key_pem), -EINVAL);
	assert_int_equal(
	    store_live_write(live, "x.example.com", "garbage", key_pem),
	    -EINVAL);
	assert_int_equal(store_live_write(live, "x.example.com", both, NULL),
			 -EINVAL);
	/* a key that is not the leaf's is refused */
	{
		EVP_PKEY *other = key_generate(KEY_ECDSA_P256);
		size_t olen;
		char *opem = key_to_pem(other, &olen);

		assert_int_equal(
		    store_live_write(live, "x.example.com", both, opem),
		    -EINVAL);
		free(opem);
		EVP_PKEY_free(other);
	}
	assert_int_equal(store_live_write(NULL, "x.example.com", both, key_pem),
			 -EINVAL);
	snprintf(dom, sizeof(dom), "%s/x.example.com", live);
	assert_int_equal(stat(dom, &sb), -1);

	free(ca_pem);
	free(leaf_pem);
	free(key_pem);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	unit_rm_tree(tmp);
}

/* Leftovers of an interrupted write go; live files and others stay. */
static void test_live_sweep(void **state)
{
	char tmp[] = "/tmp/certherd-sweep-XXXXXX", p[512];
	static const char *const files[] = {
		"privkey.pem.tmp.AbC123", "cert.pem", "cert.pem.tmp.x",
		"notes.tmp.ABCDEF"};

	(void)state;
	assert_non_null(mkdtemp(tmp));
	assert_int_equal(store_live_sweep("/nonexistent/certherd/live", "a.example.com"), 0);
	assert_int_equal(store_live_sweep(tmp, "../etc"), -EINVAL);
	snprintf(p, sizeof(p), "%s/a.example.com", tmp);
	assert_int_equal(mkdir(p, 0755), 0);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/a.example.com/%s", tmp, files[i]);
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		fclose(f);
	}
	assert_int_equal(store_live_sweep(tmp, "a.example.com"), 1);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/a.example.com/%s", tmp, files[i]);
		assert_int_equal(access(p, F_OK) == 0, i != 0);
	}
	unit_rm_tree(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_live_layout),
	    cmocka_unit_test(test_live_sweep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
