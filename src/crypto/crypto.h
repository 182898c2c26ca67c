/*
 * crypto — keys, CSRs and certificate inspection on OpenSSL 3 EVP.
 * Prefixes: key_, csr_, x509_. No policy lives here.
 *
 * Error convention: int functions return 0 or a negative errno
 * (-EINVAL bad input, -ENOMEM, -EIO OpenSSL failure); pointer functions
 * return NULL. Errors from OpenSSL are drained from its error queue and
 * summarized into err buffers where a function takes one.
 */
#ifndef CERTHERD_CRYPTO_H
#define CERTHERD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

enum key_type {
	KEY_ECDSA_P256 = 0,
	KEY_ECDSA_P384,
	KEY_RSA2048,
	KEY_RSA3072,
	KEY_RSA4096,
	KEY__MAX
};

/* "ecdsa-p256" etc.; NULL for out-of-range. */
const char *key_type_name(enum key_type t);
/* Parse a name as above; 0 or -EINVAL. */
int key_type_parse(const char *s, enum key_type *out);

/* Generate a new key; caller owns the result (EVP_PKEY_free). */
EVP_PKEY *key_generate(enum key_type t);
/* PEM (PKCS#8, unencrypted) of a private key; malloc'd, caller frees. */
char *key_to_pem(EVP_PKEY *key, size_t *len);
/* Parse a PEM private key (PKCS#8, SEC1 or PKCS#1); caller owns result. */
EVP_PKEY *key_from_pem(const char *pem, size_t len);
/* Load from file / save atomically with mode 0600. */
EVP_PKEY *key_load(const char *path);
int key_save(EVP_PKEY *key, const char *path);
/* Load the key at path, or generate one of type t and save it there
 * (0600) if the file does not exist. Caller owns result. */
EVP_PKEY *key_load_or_create(const char *path, enum key_type t);

/*
 * CSR for names[0..n) (all as SAN dNSNames; CN left empty since CAs take
 * SANs), signed by key (SHA-256). DER into *der (malloc'd, caller frees).
 */
int csr_create(EVP_PKEY *key, const char *const *names, size_t n,
	       unsigned char **der, size_t *der_len);

/* Facts about one certificate, filled by x509_inspect. */
struct x509_info {
	char **names;       /* SAN dNSNames, malloc'd array of malloc'd strings */
	size_t n_names;
	int64_t not_before; /* seconds since the epoch */
	int64_t not_after;
	char serial[80];    /* hex, upper-case, no separators */
	char issuer_cn[256];/* issuer commonName, "" if none */
	char subject_cn[256];
};
void x509_info_free(struct x509_info *info); /* frees members; NULL ok */

/* Parse the first certificate of a PEM chain. Caller frees with X509_free. */
X509 *x509_from_pem(const char *pem, size_t len);
/* Fill info from a certificate. */
int x509_inspect(X509 *cert, struct x509_info *info);
/* 1 if key is the private key of cert's public key, 0 if not, <0 error. */
int x509_key_matches(X509 *cert, EVP_PKEY *key);
/*
 * Split a PEM chain into the leaf ("cert") and the rest ("chain"), each a
 * malloc'd NUL-terminated PEM string. Rejects input with no certificate or
 * anything that does not parse as X.509. 0 or negative errno.
 */
int x509_split_chain(const char *pem, size_t len, char **leaf, char **rest);
/* Issuer CN of the last certificate in a PEM chain (the one closest to
 * the root) into out; 0 or negative errno. Used for preferred-chain choice. */
int x509_chain_top_issuer(const char *pem, size_t len, char *out, size_t outsz);
/* DER of the first certificate in a PEM chain (for revocation, ARI). */
int x509_pem_to_der(const char *pem, size_t len, unsigned char **der,
		    size_t *der_len);

#endif
