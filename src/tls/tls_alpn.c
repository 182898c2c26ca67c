/*
 * tls_alpn — TLS-ALPN-01 (RFC 8737) on the front: the challenge
 * certificates the daemon publishes while an order waits for validation,
 * and the check of a ClientHello's ALPN list for "acme-tls/1".
 *
 * A challenge certificate is self-signed, names exactly the domain in its
 * subjectAltName and carries the critical acmeIdentifier extension
 * (1.3.6.1.5.5.7.1.31) holding the SHA-256 of the key authorization as a
 * DER OCTET STRING (RFC 8737 section 3). It is made once at publish time
 * (a fresh P-256 key: no key of ours ever signs anything but this), kept
 * in a small table keyed by domain, and handed to the handshakes that
 * offer acme-tls/1 for that domain. The table is behind its own mutex:
 * the daemon's loop publishes, the front's workers read.
 *
 * Why the digest and not the key authorization crosses into this module:
 * the front needs nothing else, and the ACME code (acme_tlsalpn01_digest)
 * stays the only place that knows how it is computed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"
#define ACME_TLS_1	    "acme-tls/1"
/* Pending challenges are one per order in flight (acme.concurrency, at
 * most 10,000): a fixed table of chains is plenty. */
#define BUCKETS 1024

int tls_alpn_offered(const unsigned char *ext, size_t len)
{
	size_t list, i = 2;
	const size_t want = sizeof(ACME_TLS_1) - 1;
	int found = 0;

	/* ProtocolNameList: uint16 length, then uint8-length names (RFC
	 * 7301 section 3.1); empty names are not allowed */
	if (!ext || len < 2)
		return -EINVAL;
	list = (size_t)ext[0] << 8 | ext[1];
	if (list + 2 != len || list == 0)
		return -EINVAL;
	while (i < len) {
		size_t n = ext[i++];

		if (n == 0 || n > len - i)
			return -EINVAL;
		if (n == want && memcmp(ext + i, ACME_TLS_1, want) == 0)
			found = 1;
		i += n;
	}
	return found;
}

struct tls_cert *tls_alpn_cert_new(const char *name,
				   const unsigned char digest[32], char *err,
				   size_t errsz)
{
	unsigned char der[34];
	unsigned char serial[16];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *val = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *san = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	BIGNUM *bn = NULL;
	struct tls_cert *c = NULL;

	if (!name || !*name || strlen(name) > TLS_NAME_MAX || !digest) {
		snprintf(err, errsz, "bad arguments");
		return NULL;
	}
	/* the extension's value is the DER of an OCTET STRING of 32 bytes */
	der[0] = 0x04;
	der[1] = 32;
	memcpy(der + 2, digest, 32);
	key = EVP_EC_gen("P-256");
	x = X509_new();
	oid = OBJ_txt2obj(OID_ACME_IDENTIFIER, 1);
	val = ASN1_OCTET_STRING_new();
	san = GENERAL_NAMES_new();
	gn = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	if (!key || !x || !oid || !val || !san || !gn || !ia5 ||
	    RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* a positive serial */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 7 * 24 * 3600) ||
	    X509_NAME_add_entry_by_txt(
		X509_get_subject_name(x), "CN", MBSTRING_ASC,
		(const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (ASN1_STRING_set(ia5, name, -1) != 1)
		goto fail;
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(san, gn))
		goto fail;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, 0) != 1)
		goto fail;
	if (ASN1_OCTET_STRING_set(val, der, sizeof(der)) != 1)
		goto fail;
	ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1 /* critical */, val);
	if (!ext || X509_add_ext(x, ext, -1) != 1 ||
	    X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	c = tls__cert_wrap(x, key);
	if (!c)
		goto fail;
	x = NULL;
	key = NULL;
	goto out;
fail:
	snprintf(err, errsz, "cannot make the tls-alpn-01 certificate");
out:
	ERR_clear_error();
	BN_free(bn);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(val);
	ASN1_OBJECT_free(oid);
	GENERAL_NAMES_free(san);
	GENERAL_NAME_free(gn);
	ASN1_IA5STRING_free(ia5);
	X509_free(x);
	EVP_PKEY_free(key);
	return c;
}

/* ---- the table ------------------------------------------------------------
 */

struct entry {
	struct entry *next;
	struct tls_cert *cert;
	char name[TLS_NAME_MAX + 1];
};

struct tls_alpn {
	pthread_mutex_t mu;
	struct entry *b[BUCKETS];
	size_t n;
};

static unsigned bucket_of(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % BUCKETS;
}

struct tls_alpn *tls_alpn_new(void)
{
	struct tls_alpn *t = calloc(1, sizeof(*t));

	if (t)
		pthread_mutex_init(&t->mu, NULL);
	return t;
}

void tls_alpn_free(struct tls_alpn *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < BUCKETS; i++)
		for (struct entry *e = t->b[i], *next; e; e = next) {
			next = e->next;
			tls_cert_unref(e->cert);
			free(e);
		}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

int tls_alpn_publish(struct tls_alpn *t, const char *name,
		     const unsigned char digest[32], char *err, size_t errsz)
{
	struct tls_cert *c;
	struct entry *e, **pp;

	if (!t || !name || strlen(name) > TLS_NAME_MAX) {
		snprintf(err, errsz, "bad arguments");
		return -EINVAL;
	}
	/* made outside the lock: a keygen and a signature */
	c = tls_alpn_cert_new(name, digest, err, errsz);
	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&t->mu);
	pp = &t->b[bucket_of(name)];
	for (e = *pp; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			break;
	if (e) {
		/* a new order for the same name: the new challenge wins,
		 * handshakes holding the old certificate keep it */
		tls_cert_unref(e->cert);
		e->cert = c;
	} else {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&t->mu);
			tls_cert_unref(c);
			snprintf(err, errsz, "out of memory");
			return -ENOMEM;
		}
		snprintf(e->name, sizeof(e->name), "%s", name);
		e->cert = c;
		e->next = *pp;
		*pp = e;
		t->n++;
	}
	pthread_mutex_unlock(&t->mu);
	return 0;
}

void tls_alpn_unpublish(struct tls_alpn *t, const char *name)
{
	struct entry **pp, *e;

	if (!t || !name)
		return;
	pthread_mutex_lock(&t->mu);
	for (pp = &t->b[bucket_of(name)]; (e = *pp); pp = &e->next)
		if (strcmp(e->name, name) == 0) {
			*pp = e->next;
			tls_cert_unref(e->cert);
			free(e);
			t->n--;
			break;
		}
	pthread_mutex_unlock(&t->mu);
}

struct tls_cert *tls_alpn_get(struct tls_alpn *t, const char *name)
{
	struct tls_cert *c = NULL;

	if (!t || !name)
		return NULL;
	pthread_mutex_lock(&t->mu);
	for (struct entry *e = t->b[bucket_of(name)]; e; e = e->next)
		if (strcmp(e->name, name) == 0) {
			c = e->cert;
			tls_cert_ref(c);
			break;
		}
	pthread_mutex_unlock(&t->mu);
	return c;
}

size_t tls_alpn_count(struct tls_alpn *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	pthread_mutex_unlock(&t->mu);
	return n;
}
