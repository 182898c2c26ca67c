/*
 * Unit tests for crypto: key generation for every type, PEM round trips,
 * key files, CSRs parsed back and verified, and certificate inspection on
 * a root -> intermediate -> leaf chain built here with the X509 API.
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

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "util/util.h"
#include "unit_tmp.h"

/* Generated once for the whole run: RSA 4096 takes seconds. */
static EVP_PKEY *keys[KEY__MAX];

static int group_setup(void **state)
{
	int t;

	(void)state;
	for (t = 0; t < KEY__MAX; t++) {
		keys[t] = key_generate((enum key_type)t);
		if (!keys[t])
			return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	int t;

	(void)state;
	for (t = 0; t < KEY__MAX; t++) {
		EVP_PKEY_free(keys[t]);
		keys[t] = NULL;
	}
	return 0;
}

static void test_key_types(void **state)
{
	static const struct {
		const char *name;
		int id;
		int bits;
	} want[KEY__MAX] = {
	    [KEY_ECDSA_P256] = {"ecdsa-p256", EVP_PKEY_EC, 256},
	    [KEY_ECDSA_P384] = {"ecdsa-p384", EVP_PKEY_EC, 384},
	    [KEY_RSA2048] = {"rsa2048", EVP_PKEY_RSA, 2048},
	    [KEY_RSA3072] = {"rsa3072", EVP_PKEY_RSA, 3072},
	    [KEY_RSA4096] = {"rsa4096", EVP_PKEY_RSA, 4096},
	};
	enum key_type parsed;
	int t;

	(void)state;
	for (t = 0; t < KEY__MAX; t++) {
		assert_string_equal(key_type_name((enum key_type)t),
				    want[t].name);
		assert_int_equal(key_type_parse(want[t].name, &parsed), 0);
		assert_int_equal(parsed, t);
		assert_int_equal(EVP_PKEY_get_base_id(keys[t]), want[t].id);
		assert_int_equal(EVP_PKEY_get_bits(keys[t]), want[t].bits);
	}
	assert_null(key_type_name(KEY__MAX));
	assert_int_equal(key_type_parse("rsa1024", &parsed), -EINVAL);
	assert_int_equal(key_type_parse("", &parsed), -EINVAL);
	assert_null(key_generate(KEY__MAX));
}

static void test_key_pem_round_trip(void **state)
{
	int t;

	(void)state;
	for (t = 0; t < KEY__MAX; t++) {
		size_t len = 0;
		char *pem = key_to_pem(keys[t], &len);
		EVP_PKEY *back;

		assert_non_null(pem);
		assert_int_equal(strlen(pem), len);
		assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
		back = key_from_pem(pem, len);
		assert_non_null(back);
		assert_int_equal(EVP_PKEY_eq(back, keys[t]), 1);
		EVP_PKEY_free(back);
		free(pem);
	}
	assert_null(key_from_pem("not a key", 9));
	assert_null(key_from_pem("", 0));
}

static void test_key_from_sec1(void **state)
{
	BIO *bio = BIO_new(BIO_s_mem());
	EVP_PKEY *back;
	char *data;
	long n;

	(void)state;
	/* the traditional "EC PRIVATE KEY" form other tools write */
	assert_true(PEM_write_bio_PrivateKey_traditional(
	    bio, keys[KEY_ECDSA_P256], NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0);
	assert_non_null(strstr(data, "BEGIN EC PRIVATE KEY"));
	back = key_from_pem(data, (size_t)n);
	assert_non_null(back);
	assert_int_equal(EVP_PKEY_eq(back, keys[KEY_ECDSA_P256]), 1);
	EVP_PKEY_free(back);
	BIO_free(bio);
}

static void test_key_files(void **state)
{
	char dir[] = "/tmp/certherd-key-XXXXXX";
	char path[128];
	struct stat st;
	EVP_PKEY *a, *b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/account.key", dir);

	assert_null(key_load(path));
	a = key_load_or_create(path, KEY_ECDSA_P256);
	assert_non_null(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* the second call loads the same key instead of making one */
	b = key_load_or_create(path, KEY_ECDSA_P256);
	assert_non_null(b);
	assert_int_equal(EVP_PKEY_eq(a, b), 1);
	EVP_PKEY_free(b);
	b = key_load(path);
	assert_non_null(b);
	assert_int_equal(EVP_PKEY_eq(a, b), 1);
	EVP_PKEY_free(b);

	assert_int_equal(key_save(keys[KEY_RSA2048], path), 0);
	b = key_load(path);
	assert_non_null(b);
	assert_int_equal(EVP_PKEY_eq(keys[KEY_RSA2048], b), 1);
	EVP_PKEY_free(b);

	/* a damaged key file is an error, never silently replaced */
	assert_int_equal(fsio_write_atomic(path, "garbage", 7, 0600), 0);
	assert_null(key_load_or_create(path, KEY_ECDSA_P256));
	assert_null(key_load(path));

	EVP_PKEY_free(a);
	assert_int_equal(unit_rm_tree(dir), 0);
}

static void check_csr(EVP_PKEY *key, const char *const *names, size_t n,
		      const char *want_cn)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_REQ *req;
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *gens;
	char cn[256];
	size_t i;
	int idx;

	assert_int_equal(csr_create(key, names, n, &der, &len), 0);
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(req);
	assert_ptr_equal(p, der + len);
	assert_int_equal(X509_REQ_verify(req, key), 1);
	assert_int_equal(X509_REQ_get_signature_nid(req),
			 EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA
			     ? NID_sha256WithRSAEncryption
			     : NID_ecdsa_with_SHA256);

	exts = X509_REQ_get_extensions(req);
	assert_non_null(exts);
	idx = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
	assert_true(idx >= 0);
	gens = X509V3_EXT_d2i(X509v3_get_ext(exts, idx));
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), n);
	for (i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, (int)i);

		assert_int_equal(g->type, GEN_DNS);
		assert_int_equal(ASN1_STRING_length(g->d.dNSName),
				 strlen(names[i]));
		assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName),
				    names[i], strlen(names[i]));
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);

	cn[0] = '\0';
	X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req),
				  NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, want_cn);
	X509_REQ_free(req);
	free(der);
}

static void test_csr(void **state)
{
	static const char *const names[] = {"example.com", "www.example.com",
					    "*.example.org"};
	char long_name[80];
	const char *longer[2];
	unsigned char *der = NULL;
	size_t len = 0;
	int t;

	(void)state;
	for (t = 0; t < KEY__MAX; t++)
		check_csr(keys[t], names, 3, "example.com");
	check_csr(keys[KEY_ECDSA_P256], names + 1, 1, "www.example.com");

	/* a first name over 64 characters cannot be a CN: subject empty */
	memset(long_name, 'a', 62);
	strcpy(long_name + 62, ".example.com");
	longer[0] = long_name;
	longer[1] = "example.com";
	check_csr(keys[KEY_ECDSA_P256], longer, 2, "");

	assert_int_equal(csr_create(keys[0], names, 0, &der, &len), -EINVAL);
	assert_int_equal(csr_create(NULL, names, 1, &der, &len), -EINVAL);
	longer[1] = "";
	assert_int_equal(csr_create(keys[0], longer, 2, &der, &len), -EINVAL);
	assert_null(der);
}

/* Build a certificate for tests: subject CN, SANs from a config string,
 * issued by issuer (NULL: self-signed) and signed with sign_key. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san,
		       X509 *issuer, EVP_PKEY *sign_key, long serial, time_t nb,
		       time_t na)
{
	X509 *c = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX ctx;

	assert_non_null(c);
	assert_true(X509_set_version(c, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(c), serial));
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(c), nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(c), na));
	assert_true(X509_set_pubkey(c, key));
	name = X509_get_subject_name(c);
	assert_true(X509_NAME_add_entry_by_txt(
	    name, "O", MBSTRING_ASC, (const unsigned char *)"Test", -1, -1, 0));
	assert_true(
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(
	    c, issuer ? X509_get_subject_name(issuer) : name));
	if (san) {
		X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
		ext =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		assert_true(X509_add_ext(c, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(c, sign_key, EVP_sha256()));
	return c;
}

static char *to_pem(X509 *const *certs, size_t n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s;
	size_t i;
	long len;

	for (i = 0; i < n; i++)
		assert_true(PEM_write_bio_X509(bio, certs[i]));
	len = BIO_get_mem_data(bio, &data);
	s = malloc((size_t)len + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	BIO_free(bio);
	return s;
}

struct chain {
	X509 *root, *inter, *leaf;
};

static int chain_setup(void **state)
{
	struct chain *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return -1;
	ch->root = make_cert(keys[KEY_RSA2048], "Test Root X1", NULL, NULL,
			     keys[KEY_RSA2048], 1, 1600000000, 2000000000);
	ch->inter =
	    make_cert(keys[KEY_ECDSA_P384], "Test Intermediate E9", NULL,
		      ch->root, keys[KEY_RSA2048], 2, 1600000000, 1900000000);
	/* serial with the high bit set: must print as 00-less upper hex */
	ch->leaf = make_cert(keys[KEY_ECDSA_P256], "example.com",
			     "DNS:example.com,DNS:www.example.com,"
			     "IP:192.0.2.1,DNS:*.example.net",
			     ch->inter, keys[KEY_ECDSA_P384], 0xabcdef12,
			     1764298800, 1772074800);
	*state = ch;
	return 0;
}

static int chain_teardown(void **state)
{
	struct chain *ch = *state;

	X509_free(ch->root);
	X509_free(ch->inter);
	X509_free(ch->leaf);
	free(ch);
	return 0;
}

static void test_inspect(void **state)
{
	struct chain *ch = *state;
	struct x509_info info;

	assert_int_equal(x509_inspect(ch->leaf, &info), 0);
	assert_int_equal(info.n_names, 3);
	assert_string_equal(info.names[0], "example.com");
	assert_string_equal(info.names[1], "www.example.com");
	assert_string_equal(info.names[2], "*.example.net");
	assert_int_equal(info.not_before, 1764298800);
	assert_int_equal(info.not_after, 1772074800);
	assert_string_equal(info.serial, "ABCDEF12");
	assert_string_equal(info.issuer_cn, "Test Intermediate E9");
	assert_string_equal(info.subject_cn, "example.com");
	x509_info_free(&info);
	assert_null(info.names);
	x509_info_free(&info); /* twice is harmless */
	x509_info_free(NULL);

	/* no SAN at all */
	assert_int_equal(x509_inspect(ch->root, &info), 0);
	assert_int_equal(info.n_names, 0);
	assert_string_equal(info.serial, "01");
	assert_string_equal(info.issuer_cn, "Test Root X1");
	assert_int_equal(info.not_after, 2000000000);
	x509_info_free(&info);

	assert_int_equal(x509_inspect(NULL, &info), -EINVAL);
}

static void test_key_matches(void **state)
{
	struct chain *ch = *state;

	assert_int_equal(x509_key_matches(ch->leaf, keys[KEY_ECDSA_P256]), 1);
	assert_int_equal(x509_key_matches(ch->root, keys[KEY_RSA2048]), 1);
	/* same type, other key */
	assert_int_equal(x509_key_matches(ch->root, keys[KEY_RSA3072]), 0);
	/* other type */
	assert_int_equal(x509_key_matches(ch->leaf, keys[KEY_RSA2048]), 0);
	assert_int_equal(x509_key_matches(ch->leaf, keys[KEY_ECDSA_P384]), 0);
	assert_true(x509_key_matches(NULL, keys[0]) < 0);
}

static void test_from_pem_and_der(void **state)
{
	struct chain *ch = *state;
	X509 *two[2] = {ch->leaf, ch->inter};
	char *pem = to_pem(two, 2);
	unsigned char *der = NULL, *want = NULL;
	size_t der_len = 0;
	int want_len;
	X509 *c;

	c = x509_from_pem(pem, strlen(pem));
	assert_non_null(c);
	assert_int_equal(X509_cmp(c, ch->leaf), 0);
	X509_free(c);

	assert_int_equal(x509_pem_to_der(pem, strlen(pem), &der, &der_len), 0);
	want_len = i2d_X509(ch->leaf, &want);
	assert_true(want_len > 0);
	assert_int_equal(der_len, want_len);
	assert_memory_equal(der, want, der_len);
	OPENSSL_free(want);
	free(der);
	free(pem);

	assert_null(x509_from_pem("nothing", 7));
	assert_int_equal(x509_pem_to_der("nothing", 7, &der, &der_len),
			 -EINVAL);
}

static void test_split_chain(void **state)
{
	struct chain *ch = *state;
	X509 *two[2] = {ch->leaf, ch->inter};
	char *pem = to_pem(two, 2);
	char *leaf_pem = to_pem(two, 1);
	char *inter_pem = to_pem(two + 1, 1);
	char *leaf = NULL, *rest = NULL;
	char *noisy;
	size_t n;

	assert_int_equal(x509_split_chain(pem, strlen(pem), &leaf, &rest), 0);
	assert_string_equal(leaf, leaf_pem);
	assert_string_equal(rest, inter_pem);
	free(leaf);
	free(rest);

	/* a lone leaf gives an empty rest */
	assert_int_equal(
	    x509_split_chain(leaf_pem, strlen(leaf_pem), &leaf, &rest), 0);
	assert_string_equal(leaf, leaf_pem);
	assert_string_equal(rest, "");
	free(leaf);
	free(rest);

	/* text between blocks is dropped from the output */
	n = strlen(pem) + 64;
	noisy = malloc(n);
	assert_non_null(noisy);
	snprintf(noisy, n, "leaf follows\n%sinter follows\n%s", leaf_pem,
		 inter_pem);
	assert_int_equal(x509_split_chain(noisy, strlen(noisy), &leaf, &rest),
			 0);
	assert_string_equal(leaf, leaf_pem);
	assert_string_equal(rest, inter_pem);
	free(leaf);
	free(rest);
	free(noisy);

	free(pem);
	free(leaf_pem);
	free(inter_pem);
}

static void test_split_chain_rejects(void **state)
{
	struct chain *ch = *state;
	X509 *one[1] = {ch->leaf};
	char *cert = to_pem(one, 1);
	size_t klen = 0;
	char *key = key_to_pem(keys[KEY_ECDSA_P256], &klen);
	char *mixed, *broken, *p;
	char *leaf = (char *)"x", *rest = (char *)"y";
	size_t n;

	assert_int_equal(x509_split_chain("", 0, &leaf, &rest), -EINVAL);
	assert_null(leaf);
	assert_null(rest);
	assert_int_equal(x509_split_chain("hello\n", 6, &leaf, &rest), -EINVAL);

	/* a private key in a chain is not a certificate */
	assert_non_null(key);
	n = strlen(cert);
	mixed = malloc(n + klen + 1);
	assert_non_null(mixed);
	memcpy(mixed, cert, n);
	memcpy(mixed + n, key, klen + 1);
	assert_int_equal(x509_split_chain(mixed, strlen(mixed), &leaf, &rest),
			 -EINVAL);
	free(mixed);

	/* a CERTIFICATE block whose DER is damaged */
	broken = strdup(cert);
	assert_non_null(broken);
	p = strchr(broken, '\n') + 1;
	p[10] = p[10] == 'A' ? 'B' : 'A';
	p[11] = p[11] == 'A' ? 'B' : 'A';
	p[12] = '*';
	assert_int_equal(x509_split_chain(broken, strlen(broken), &leaf, &rest),
			 -EINVAL);
	free(broken);

	free(key);
	free(cert);
}

static void test_top_issuer(void **state)
{
	struct chain *ch = *state;
	X509 *three[3] = {ch->leaf, ch->inter, ch->root};
	char *pem2 = to_pem(three, 2);
	char *pem3 = to_pem(three, 3);
	char *pem1 = to_pem(three, 1);
	char out[64];

	assert_int_equal(
	    x509_chain_top_issuer(pem2, strlen(pem2), out, sizeof(out)), 0);
	assert_string_equal(out, "Test Root X1");
	assert_int_equal(
	    x509_chain_top_issuer(pem3, strlen(pem3), out, sizeof(out)), 0);
	assert_string_equal(out, "Test Root X1");
	assert_int_equal(
	    x509_chain_top_issuer(pem1, strlen(pem1), out, sizeof(out)), 0);
	assert_string_equal(out, "Test Intermediate E9");
	assert_int_equal(x509_chain_top_issuer(pem2, strlen(pem2), out, 5),
			 -ERANGE);
	assert_int_equal(x509_chain_top_issuer("junk", 4, out, sizeof(out)),
			 -EINVAL);
	free(pem1);
	free(pem2);
	free(pem3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_types),
	    cmocka_unit_test(test_key_pem_round_trip),
	    cmocka_unit_test(test_key_from_sec1),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_csr),
	    cmocka_unit_test_setup_teardown(test_inspect, chain_setup,
					    chain_teardown),
	    cmocka_unit_test_setup_teardown(test_key_matches, chain_setup,
					    chain_teardown),
	    cmocka_unit_test_setup_teardown(test_from_pem_and_der, chain_setup,
					    chain_teardown),
	    cmocka_unit_test_setup_teardown(test_split_chain, chain_setup,
					    chain_teardown),
	    cmocka_unit_test_setup_teardown(test_split_chain_rejects,
					    chain_setup, chain_teardown),
	    cmocka_unit_test_setup_teardown(test_top_issuer, chain_setup,
					    chain_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
