/*
 * tls_cert — one domain's certificate, chain and key, parsed once from the
 * store's PEM and shared by every handshake that serves it.
 *
 * Refcounted because a renewal replaces it in the index while handshakes
 * still use it: tls_cert_use gives the SSL its own references to the
 * X509s and the key (SSL_use_cert_and_key), so an SSL never depends on
 * this object outliving it; the count only guards the window between a
 * lookup and tls_cert_use.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "tls/tls.h"

/* A chain longer than this is not a web PKI chain. */
#define CHAIN_MAX 8

struct tls_cert {
	atomic_int refs;
	X509 *leaf;
	STACK_OF(X509) *chain; /* intermediates, may be empty */
	EVP_PKEY *key;
	int64_t not_after;
};

static void cert_free(struct tls_cert *c)
{
	X509_free(c->leaf);
	sk_X509_pop_free(c->chain, X509_free);
	EVP_PKEY_free(c->key);
	free(c);
}

/* The next PEM block of b, which must be a CERTIFICATE: the X509 (a
 * shared intermediate when p is given and leaf is 0), or NULL at the end
 * (*end = 1) or on an error. */
static X509 *next_cert(BIO *b, struct tls_pem *p, int leaf, int *end)
{
	char *name = NULL, *hdr = NULL;
	unsigned char *der = NULL;
	const unsigned char *in;
	long len = 0;
	X509 *x = NULL;

	*end = 0;
	if (PEM_read_bio(b, &name, &hdr, &der, &len) != 1) {
		/* PEM_R_NO_START_LINE: no further block */
		*end = ERR_GET_REASON(ERR_peek_last_error()) ==
		       PEM_R_NO_START_LINE;
		ERR_clear_error();
		return NULL;
	}
	if (strcmp(name, PEM_STRING_X509) == 0 && hdr[0] == '\0') {
		in = der;
		if (p && !leaf)
			x = tls_pem_intermediate(p, der, (size_t)len);
		else if ((x = d2i_X509(NULL, &in, len)) && in != der + len) {
			X509_free(x); /* trailing bytes */
			x = NULL;
		}
	}
	ERR_clear_error();
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(der);
	return x;
}

struct tls_cert *tls_cert_from_pem(struct tls_pem *p, const char *chain_pem,
				   size_t chain_len, const char *key_pem,
				   size_t key_len, char *err, size_t errsz)
{
	struct tls_cert *c = calloc(1, sizeof(*c));
	BIO *b = NULL;
	X509 *x;
	const ASN1_TIME *na;
	struct tm tm;
	int end;

	if (!c || !chain_pem || !key_pem || chain_len > INT32_MAX ||
	    key_len > INT32_MAX) {
		snprintf(err, errsz, "bad arguments or out of memory");
		goto fail;
	}
	atomic_init(&c->refs, 1);
	c->chain = sk_X509_new_null();
	b = BIO_new_mem_buf(chain_pem, (int)chain_len);
	if (!c->chain || !b) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	c->leaf = next_cert(b, p, 1, &end);
	if (!c->leaf) {
		snprintf(err, errsz, "the chain does not start with a certificate");
		goto fail;
	}
	while ((x = next_cert(b, p, 0, &end))) {
		if (sk_X509_num(c->chain) >= CHAIN_MAX ||
		    !sk_X509_push(c->chain, x)) {
			X509_free(x);
			snprintf(err, errsz, "chain longer than %d certificates",
				 CHAIN_MAX);
			goto fail;
		}
	}
	if (!end) {
		snprintf(err, errsz, "the chain holds a block that is not a certificate");
		goto fail;
	}
	if (p) {
		c->key = tls_pem_key(p, key_pem, key_len);
	} else {
		BIO_free(b);
		b = BIO_new_mem_buf(key_pem, (int)key_len);
		c->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	}
	if (!c->key) {
		snprintf(err, errsz, "the private key does not parse");
		goto fail;
	}
	if (X509_check_private_key(c->leaf, c->key) != 1) {
		snprintf(err, errsz, "the private key is not the certificate's");
		goto fail;
	}
	na = X509_get0_notAfter(c->leaf);
	if (!na || ASN1_TIME_to_tm(na, &tm) != 1) {
		snprintf(err, errsz, "the certificate has no valid notAfter");
		goto fail;
	}
	c->not_after = (int64_t)timegm(&tm);
	BIO_free(b);
	return c;
fail:
	ERR_clear_error();
	BIO_free(b);
	if (c)
		cert_free(c);
	return NULL;
}

struct tls_cert *tls__cert_wrap(X509 *leaf, EVP_PKEY *key)
{
	struct tls_cert *c = calloc(1, sizeof(*c));
	const ASN1_TIME *na = X509_get0_notAfter(leaf);
	struct tm tm;

	if (!c || !na || ASN1_TIME_to_tm(na, &tm) != 1 ||
	    !(c->chain = sk_X509_new_null())) {
		if (c)
			sk_X509_free(c->chain);
		free(c);
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->leaf = leaf;
	c->key = key;
	c->not_after = (int64_t)timegm(&tm);
	return c;
}

void tls_cert_ref(struct tls_cert *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tls_cert_unref(struct tls_cert *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) ==
			 1)
		cert_free(c);
}

int tls_cert_use(struct tls_cert *c, SSL *ssl)
{
	/* override = 1: replace whatever the SSL had (nothing: the
	 * SSL_CTX holds no certificate of its own) */
	if (SSL_use_cert_and_key(ssl, c->leaf, c->key, c->chain, 1) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int64_t tls_cert_not_after(const struct tls_cert *c)
{
	return c->not_after;
}
