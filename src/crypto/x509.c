/*
 * x509 — reading certificates: the facts the scheduler and status page
 * need (names, validity, serial, issuer), key/cert matching before an
 * install, and splitting the PEM chain a CA returns into leaf and rest.
 *
 * Chains come from the CA and from disk, so they are parsed strictly
 * where we re-emit them (x509_split_chain, x509_chain_top_issuer): only
 * CERTIFICATE blocks, each exactly one DER certificate. What we write back
 * is re-encoded by OpenSSL, so stray text between blocks never reaches a
 * server's certificate file. Reading just the first certificate
 * (x509_from_pem, x509_pem_to_der) is lenient so a combined
 * "cert + key" file still yields its certificate.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/crypto_internal.h"
#include "util/util.h"

/* A chain of more than this many certificates is not one a CA sends. */
#define X509_CHAIN_MAX 16

static BIO *x509_bio(const char *pem, size_t len)
{
	if (!pem || len == 0 || len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(pem, (int)len);
}

X509 *x509_from_pem(const char *pem, size_t len)
{
	X509 *cert = NULL;
	BIO *bio;

	bio = x509_bio(pem, len);
	if (!bio)
		goto out;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!cert)
		crypto__drain_errors("certificate from pem failed");
out:
	BIO_free(bio);
	return cert;
}

static int asn1_time_to_epoch(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* Copy the first commonName of name as UTF-8 into out; "" when absent.
 * Cut at a character boundary when it does not fit. */
static int x509_name_cn(const X509_NAME *name, char *out, size_t outsz)
{
	unsigned char *utf8 = NULL;
	X509_NAME_ENTRY *ent;
	int idx, len;
	size_t n;
	int rc = -EINVAL;

	if (outsz == 0)
		goto out;
	out[0] = '\0';
	rc = 0;
	if (!name)
		goto out;
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0)
		goto out;
	ent = X509_NAME_get_entry(name, idx);
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent));
	if (len < 0) {
		rc = -EINVAL;
		goto out;
	}
	n = (size_t)len;
	if (memchr(utf8, '\0', n)) {
		/* an embedded NUL hides the rest of the name from C code */
		rc = -EINVAL;
		goto out;
	}
	if (n >= outsz) {
		n = outsz - 1;
		while (n > 0 && (utf8[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, utf8, n);
	out[n] = '\0';
out:
	OPENSSL_free(utf8);
	return rc;
}

static int x509_serial_hex(X509 *cert, char *out, size_t outsz)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = -EINVAL;

	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	if (!bn)
		goto out;
	/* BN_bn2hex writes upper-case digits without separators */
	hex = BN_bn2hex(bn);
	if (!hex) {
		rc = -ENOMEM;
		goto out;
	}
	if (strlen(hex) >= outsz)
		goto out;
	strcpy(out, hex);
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

static int x509_san_names(X509 *cert, struct x509_info *info)
{
	GENERAL_NAMES *gens;
	int i, count;
	int rc = 0;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (!gens)
		goto out; /* no SAN at all: no names */
	count = sk_GENERAL_NAME_num(gens);
	info->names = calloc((size_t)count + 1, sizeof(*info->names));
	if (!info->names) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *data;
		int len;
		char *s;

		if (gen->type != GEN_DNS)
			continue;
		data = ASN1_STRING_get0_data(gen->d.dNSName);
		len = ASN1_STRING_length(gen->d.dNSName);
		if (len < 0 || memchr(data, '\0', (size_t)len)) {
			rc = -EINVAL;
			goto out;
		}
		s = malloc((size_t)len + 1);
		if (!s) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(s, data, (size_t)len);
		s[len] = '\0';
		info->names[info->n_names++] = s;
	}
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

int x509_inspect(X509 *cert, struct x509_info *info)
{
	int rc = -EINVAL;

	if (!info)
		goto out;
	memset(info, 0, sizeof(*info));
	if (!cert)
		goto out;
	rc = x509_san_names(cert, info);
	if (rc < 0)
		goto out;
	rc = asn1_time_to_epoch(X509_get0_notBefore(cert), &info->not_before);
	if (rc < 0)
		goto out;
	rc = asn1_time_to_epoch(X509_get0_notAfter(cert), &info->not_after);
	if (rc < 0)
		goto out;
	rc = x509_serial_hex(cert, info->serial, sizeof(info->serial));
	if (rc < 0)
		goto out;
	rc = x509_name_cn(X509_get_issuer_name(cert), info->issuer_cn,
			  sizeof(info->issuer_cn));
	if (rc < 0)
		goto out;
	rc = x509_name_cn(X509_get_subject_name(cert), info->subject_cn,
			  sizeof(info->subject_cn));
out:
	if (rc < 0) {
		crypto__drain_errors("certificate inspection failed");
		x509_info_free(info);
	}
	return rc;
}

void x509_info_free(struct x509_info *info)
{
	size_t i;

	if (!info)
		return;
	for (i = 0; i < info->n_names; i++)
		free(info->names[i]);
	free(info->names);
	info->names = NULL;
	info->n_names = 0;
}

int x509_key_matches(X509 *cert, EVP_PKEY *key)
{
	EVP_PKEY *pub;
	int r;

	if (!cert || !key)
		return -EINVAL;
	pub = X509_get0_pubkey(cert);
	if (!pub) {
		crypto__drain_errors("certificate public key unreadable");
		return -EINVAL;
	}
	r = EVP_PKEY_eq(pub, key);
	/* 1 equal, 0 different, -1 different types: the last is simply a
	 * mismatch (an RSA key for an EC certificate). -2 means OpenSSL
	 * cannot compare, which is an error. */
	if (r == 1)
		return 1;
	if (r == 0 || r == -1) {
		ERR_clear_error();
		return 0;
	}
	crypto__drain_errors("key comparison unsupported");
	return -EINVAL;
}

/*
 * Parse every PEM block of a chain into *out. Each block must be a
 * CERTIFICATE holding exactly one DER certificate; anything else rejects
 * the whole input. At least one certificate is required.
 */
static int x509_parse_chain(const char *pem, size_t len, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *chain = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	X509 *cert = NULL;
	long dlen;
	BIO *bio;
	int rc = -EINVAL;

	*out = NULL;
	bio = x509_bio(pem, len);
	if (!bio)
		goto out;
	chain = sk_X509_new_null();
	if (!chain) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
			unsigned long e = ERR_peek_last_error();

			/* "no start line" is the normal end of input */
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE &&
			    sk_X509_num(chain) > 0) {
				ERR_clear_error();
				break;
			}
			goto out;
		}
		if (strcmp(name, PEM_STRING_X509) != 0 || header[0] != '\0' ||
		    sk_X509_num(chain) >= X509_CHAIN_MAX)
			goto out;
		p = data;
		cert = d2i_X509(NULL, &p, dlen);
		if (!cert || p != data + dlen)
			goto out;
		if (!sk_X509_push(chain, cert))
			goto out;
		cert = NULL;
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	*out = chain;
	chain = NULL;
	rc = 0;
out:
	if (rc < 0)
		crypto__drain_errors("certificate chain does not parse");
	X509_free(cert);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	sk_X509_pop_free(chain, X509_free);
	BIO_free(bio);
	return rc;
}

/* PEM of certificates [from, to) of chain as a malloc'd string; "" when
 * the range is empty. */
static char *x509_chain_pem(STACK_OF(X509) * chain, int from, int to)
{
	BIO *bio = NULL;
	char *s = NULL;
	char *data = NULL;
	long n;
	int i;

	bio = BIO_new(BIO_s_mem());
	if (!bio)
		goto out;
	for (i = from; i < to; i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(chain, i)))
			goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n < 0)
		goto out;
	s = malloc((size_t)n + 1);
	if (!s)
		goto out;
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = '\0';
out:
	BIO_free(bio);
	return s;
}

int x509_split_chain(const char *pem, size_t len, char **leaf, char **rest)
{
	STACK_OF(X509) *chain = NULL;
	char *l = NULL, *r = NULL;
	int rc = -EINVAL;

	if (!leaf || !rest)
		goto out;
	*leaf = NULL;
	*rest = NULL;
	rc = x509_parse_chain(pem, len, &chain);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	l = x509_chain_pem(chain, 0, 1);
	r = x509_chain_pem(chain, 1, sk_X509_num(chain));
	if (!l || !r)
		goto out;
	*leaf = l;
	*rest = r;
	l = r = NULL;
	rc = 0;
out:
	free(l);
	free(r);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

int x509_chain_top_issuer(const char *pem, size_t len, char *out, size_t outsz)
{
	STACK_OF(X509) *chain = NULL;
	char cn[256];
	X509 *top;
	int rc = -EINVAL;

	if (!out || outsz == 0)
		goto out;
	rc = x509_parse_chain(pem, len, &chain);
	if (rc < 0)
		goto out;
	top = sk_X509_value(chain, sk_X509_num(chain) - 1);
	rc = x509_name_cn(X509_get_issuer_name(top), cn, sizeof(cn));
	if (rc < 0)
		goto out;
	/* preferred-chain matching needs the whole name, so a cut one is an
	 * error rather than a silently different name */
	if (strlen(cn) >= outsz) {
		rc = -ERANGE;
		goto out;
	}
	strcpy(out, cn);
out:
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

int x509_pem_to_der(const char *pem, size_t len, unsigned char **der,
		    size_t *der_len)
{
	X509 *cert = NULL;
	unsigned char *buf = NULL;
	unsigned char *p;
	int n;
	int rc = -EINVAL;

	if (!der || !der_len)
		goto out;
	cert = x509_from_pem(pem, len);
	if (!cert)
		goto out;
	n = i2d_X509(cert, NULL);
	if (n <= 0) {
		rc = -EIO;
		goto out;
	}
	buf = malloc((size_t)n);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	p = buf;
	if (i2d_X509(cert, &p) != n) {
		rc = -EIO;
		goto out;
	}
	*der = buf;
	*der_len = (size_t)n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	X509_free(cert);
	return rc;
}
