/*
 * csr — the certificate signing request sent when finalizing an order.
 *
 * Every name goes into the subjectAltName extension, which is what CAs
 * issue from. The subject carries CN = names[0] when it fits the 64
 * character limit of X.520 commonName, because some CAs and older tools
 * still look at it; a longer first name leaves the subject empty, which
 * RFC 8555 permits. Names are expected to be normalized already
 * (name_normalize); this file makes no policy about them.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/crypto_internal.h"
#include "util/util.h"

#define CSR_CN_MAX 64

/* Build the SAN extension list holding one dNSName per name. */
static int csr_add_sans(X509_REQ *req, const char *const *names, size_t n)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	size_t i;
	int rc = -ENOMEM;

	gens = GENERAL_NAMES_new();
	if (!gens)
		goto out;
	for (i = 0; i < n; i++) {
		size_t len = strlen(names[i]);

		if (len == 0 || len > INT_MAX) {
			rc = -EINVAL;
			goto out;
		}
		ia5 = ASN1_IA5STRING_new();
		gen = GENERAL_NAME_new();
		if (!ia5 || !gen || !ASN1_STRING_set(ia5, names[i], (int)len))
			goto out;
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		ia5 = NULL;
		if (!sk_GENERAL_NAME_push(gens, gen))
			goto out;
		gen = NULL;
	}
	rc = -EIO;
	if (X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, 0) != 1)
		goto out;
	if (!X509_REQ_add_extensions(req, exts))
		goto out;
	rc = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

int csr_create(EVP_PKEY *key, const char *const *names, size_t n,
	       unsigned char **der, size_t *der_len)
{
	X509_REQ *req = NULL;
	X509_NAME *subj;
	unsigned char *buf = NULL;
	unsigned char *p;
	size_t i;
	int len;
	int rc = -EINVAL;

	if (!key || !names || n == 0 || !der || !der_len)
		goto out;
	for (i = 0; i < n; i++)
		if (!names[i] || !*names[i])
			goto out;

	rc = -ENOMEM;
	req = X509_REQ_new();
	if (!req)
		goto out;
	rc = -EIO;
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1))
		goto out;
	if (!X509_REQ_set_pubkey(req, key))
		goto out;
	if (strlen(names[0]) <= CSR_CN_MAX) {
		subj = X509_REQ_get_subject_name(req);
		if (!X509_NAME_add_entry_by_NID(
			subj, NID_commonName, MBSTRING_UTF8,
			(const unsigned char *)names[0], -1, -1, 0))
			goto out;
	}
	rc = csr_add_sans(req, names, n);
	if (rc < 0)
		goto out;
	rc = -EIO;
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509_REQ(req, NULL);
	if (len <= 0)
		goto out;
	rc = -ENOMEM;
	buf = malloc((size_t)len);
	if (!buf)
		goto out;
	p = buf;
	rc = -EIO;
	if (i2d_X509_REQ(req, &p) != len)
		goto out;
	*der = buf;
	*der_len = (size_t)len;
	buf = NULL;
	rc = 0;
out:
	if (rc < 0)
		crypto__drain_errors("csr creation failed");
	free(buf);
	X509_REQ_free(req);
	return rc;
}
