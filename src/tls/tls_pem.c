/*
 * tls_pem — what makes a certificate load cheap: a parser kept by the
 * thread that loads (front mode's loader), reused for every load.
 *
 * Measured with OpenSSL 3.0 (bench/front.sh, profile of a loading front):
 * PEM_read_bio_PrivateKey builds a decoder context per call, about 800 us
 * for a P-256 key, while decoding with one kept context costs 50-90 us;
 * and each d2i_X509 of an intermediate costs 100-200 us although a whole
 * store shares a handful of intermediates. So the parser keeps the key
 * decoders (one for EC keys, what certherd makes, one for any type) and
 * the intermediates it has seen, by their DER bytes; a load then parses
 * the leaf and the key only, and cached certificates share one X509 per
 * intermediate (less memory too).
 *
 * The leaf's own d2i_X509 stays the bulk of a load (120-220 us: it builds
 * a decoder for the public key). Tried and left: registering an ENGINE
 * with a method for id-ecPublicKey makes libcrypto 3.0 take its old EC
 * decoder instead (~50 us), but that ENGINE then also takes every EC
 * operation of the process that names the type, provider keys included:
 * X509_sign and X509_REQ_sign with a provider key fail (test_tls_cert
 * caught it), and CSRs are signed in this process.
 *
 * Not thread-safe: one parser per thread. The X509s it hands out carry
 * their own references, so certificates outlive the parser.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>

#include "tls/tls.h"

/* Distinct intermediates remembered; a CA rotates among a few. */
#define INTER_MAX 32

struct tls_pem {
	EVP_PKEY *out; /* where both decoders put their key */
	OSSL_DECODER_CTX *ec, *any;
	struct {
		unsigned char *der;
		size_t len;
		X509 *x;
	} inter[INTER_MAX];
	unsigned n_inter, next_evict;
};

struct tls_pem *tls_pem_new(void)
{
	struct tls_pem *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	/* input "PEM" takes PKCS#8 and the traditional forms alike */
	p->ec = OSSL_DECODER_CTX_new_for_pkey(&p->out, "PEM", NULL, "EC",
					      EVP_PKEY_KEYPAIR, NULL, NULL);
	p->any = OSSL_DECODER_CTX_new_for_pkey(&p->out, "PEM", NULL, NULL,
					       EVP_PKEY_KEYPAIR, NULL, NULL);
	if (!p->ec || !p->any) {
		ERR_clear_error();
		tls_pem_free(p);
		return NULL;
	}
	return p;
}

void tls_pem_free(struct tls_pem *p)
{
	if (!p)
		return;
	OSSL_DECODER_CTX_free(p->ec);
	OSSL_DECODER_CTX_free(p->any);
	for (unsigned i = 0; i < p->n_inter; i++) {
		free(p->inter[i].der);
		X509_free(p->inter[i].x);
	}
	free(p);
}

static EVP_PKEY *decode_with(struct tls_pem *p, OSSL_DECODER_CTX *dc,
			     const char *pem, size_t len)
{
	const unsigned char *in = (const unsigned char *)pem;
	size_t left = len;

	p->out = NULL;
	if (OSSL_DECODER_from_data(dc, &in, &left) != 1 || !p->out) {
		ERR_clear_error();
		EVP_PKEY_free(p->out);
		p->out = NULL;
		return NULL;
	}
	return p->out;
}

EVP_PKEY *tls_pem_key(struct tls_pem *p, const char *pem, size_t len)
{
	EVP_PKEY *k = decode_with(p, p->ec, pem, len);

	return k ? k : decode_with(p, p->any, pem, len);
}

X509 *tls_pem_intermediate(struct tls_pem *p, const unsigned char *der,
			   size_t len)
{
	const unsigned char *in = der;
	unsigned i;
	X509 *x;

	for (i = 0; i < p->n_inter; i++)
		if (p->inter[i].x && p->inter[i].len == len &&
		    memcmp(p->inter[i].der, der, len) == 0) {
			X509_up_ref(p->inter[i].x);
			return p->inter[i].x;
		}
	if (len > LONG_MAX)
		return NULL;
	x = d2i_X509(NULL, &in, (long)len);
	if (!x || in != der + len) {
		/* trailing bytes: not exactly one certificate */
		ERR_clear_error();
		X509_free(x);
		return NULL;
	}
	if (p->n_inter < INTER_MAX) {
		i = p->n_inter++;
	} else {
		/* full: a store with more than INTER_MAX distinct
		 * intermediates still works, at the old price */
		i = p->next_evict;
		p->next_evict = (p->next_evict + 1) % INTER_MAX;
		free(p->inter[i].der);
		X509_free(p->inter[i].x);
		p->inter[i].der = NULL;
		p->inter[i].x = NULL;
	}
	p->inter[i].der = malloc(len);
	if (!p->inter[i].der)
		return x; /* works, not remembered: the slot stays empty */
	memcpy(p->inter[i].der, der, len);
	p->inter[i].len = len;
	p->inter[i].x = x;
	X509_up_ref(x);
	return x;
}
