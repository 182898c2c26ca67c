/*
 * key — private keys: generate, PEM in and out, load and save.
 *
 * Account keys and certificate keys both pass through here. Keys are
 * stored as unencrypted PKCS#8 PEM with mode 0600 (the store directory is
 * the protection); PEM buffers that held a key are wiped before they are
 * freed. Loading accepts PKCS#8, SEC1 and PKCS#1 so keys made by other
 * tools can be imported, but never prompts for a passphrase.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "crypto/crypto.h"
#include "crypto/crypto_internal.h"
#include "util/util.h"

/* Large enough for an RSA 8192 key in PEM; anything bigger is not a key. */
#define KEY_PEM_MAX (64 * 1024)

static const char *const key_type_names[KEY__MAX] = {
    [KEY_ECDSA_P256] = "ecdsa-p256", [KEY_ECDSA_P384] = "ecdsa-p384",
    [KEY_RSA2048] = "rsa2048",	     [KEY_RSA3072] = "rsa3072",
    [KEY_RSA4096] = "rsa4096",
};

/* OpenSSL leaves its reasons on a per-thread queue; keep the first at
 * debug level for whoever investigates and leave the queue empty so a
 * later, unrelated failure is not blamed on this one. */
void crypto__drain_errors(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug("crypto", NULL, "%s: %s", what, buf);
	}
	ERR_clear_error();
}

const char *key_type_name(enum key_type t)
{
	if ((int)t < 0 || t >= KEY__MAX)
		return NULL;
	return key_type_names[t];
}

int key_type_parse(const char *s, enum key_type *out)
{
	int i;

	if (!s || !out)
		return -EINVAL;
	for (i = 0; i < KEY__MAX; i++) {
		if (strcmp(s, key_type_names[i]) == 0) {
			*out = (enum key_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

EVP_PKEY *key_generate(enum key_type t)
{
	EVP_PKEY *key = NULL;

	switch (t) {
	case KEY_ECDSA_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case KEY_ECDSA_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case KEY_RSA2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case KEY_RSA3072:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case KEY_RSA4096:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	default:
		return NULL;
	}
	if (!key)
		crypto__drain_errors("key generation failed");
	return key;
}

char *key_to_pem(EVP_PKEY *key, size_t *len)
{
	BIO *bio = NULL;
	char *pem = NULL;
	char *data;
	long n;

	if (!key || !len)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		goto out;
	/* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in
	 * OpenSSL 3 for every key type. */
	if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		crypto__drain_errors("key to pem failed");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0)
		goto out;
	pem = malloc((size_t)n + 1);
	if (!pem)
		goto out;
	memcpy(pem, data, (size_t)n);
	pem[n] = '\0';
	*len = (size_t)n;
out:
	/* the memory BIO's buffer is cleared by OpenSSL when freed */
	BIO_free(bio);
	return pem;
}

/* Never ask for a passphrase: a daemon has no one to ask, and the default
 * OpenSSL callback would read from the terminal. */
static int key_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

EVP_PKEY *key_from_pem(const char *pem, size_t len)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;

	if (!pem || len == 0 || len > KEY_PEM_MAX)
		goto out;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		goto out;
	key = PEM_read_bio_PrivateKey(bio, NULL, key_no_passphrase, NULL);
	if (!key)
		crypto__drain_errors("key from pem failed");
out:
	BIO_free(bio);
	return key;
}

EVP_PKEY *key_load(const char *path)
{
	EVP_PKEY *key = NULL;
	char *pem = NULL;
	size_t len = 0;

	if (!path)
		goto out;
	if (fsio_read_all(path, KEY_PEM_MAX, &pem, &len) < 0)
		goto out;
	key = key_from_pem(pem, len);
out:
	if (pem) {
		/* malloc'd by us, so wiped here and freed with free() */
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	return key;
}

int key_save(EVP_PKEY *key, const char *path)
{
	char *pem = NULL;
	size_t len = 0;
	int rc;

	if (!key || !path) {
		rc = -EINVAL;
		goto out;
	}
	pem = key_to_pem(key, &len);
	if (!pem) {
		rc = -EIO;
		goto out;
	}
	rc = fsio_write_atomic(path, pem, len, 0600);
out:
	if (pem) {
		/* malloc'd by us, so wiped here and freed with free() */
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	return rc;
}

EVP_PKEY *key_load_or_create(const char *path, enum key_type t)
{
	EVP_PKEY *key = NULL;
	char *pem = NULL;
	size_t len = 0;
	int rc;

	if (!path)
		goto out;
	rc = fsio_read_all(path, KEY_PEM_MAX, &pem, &len);
	if (rc == 0) {
		/* An existing file that does not parse is an error, never a
		 * reason to overwrite it: it may be the only copy of an
		 * account key. */
		key = key_from_pem(pem, len);
		goto out;
	}
	if (rc != -ENOENT)
		goto out;
	/* Two processes creating the same key at once would each rename
	 * their own into place and the loser would hold a key that is not on
	 * disk; callers serialize first use (one daemon, one store lock). */
	key = key_generate(t);
	if (!key)
		goto out;
	if (key_save(key, path) < 0) {
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	if (pem) {
		/* malloc'd by us, so wiped here and freed with free() */
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	return key;
}
