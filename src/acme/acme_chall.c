/*
 * acme_chall — challenge names and the two pure pieces every challenge
 * type shares: the key authorization (RFC 8555 §8.1) and the check that
 * a token from the CA is safe to use.
 *
 * Why the token check matters: for http-01 the token becomes a file name
 * or URL path segment on our side, so a token that is anything but
 * base64url could walk out of the challenge directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"
#include "util/util.h"

/* RFC 8555 §8.1: >= 128 bits of entropy is 22 base64url chars. The upper
 * bound is ours: no CA sends more, and it keeps paths short. */
#define TOKEN_MIN 22
#define TOKEN_MAX 256

const char *const acme_chall_names[ACME_CHALL__MAX] = {
    [ACME_CHALL_HTTP01] = "http-01",
    [ACME_CHALL_TLSALPN01] = "tls-alpn-01",
    [ACME_CHALL_DNS01] = "dns-01",
};

const char *const acme_method_names[ACME_METHOD__MAX] = {
    [ACME_GET] = "GET",
    [ACME_HEAD] = "HEAD",
    [ACME_POST] = "POST",
};

char *acme_key_authorization(const char *token, const char *thumbprint)
{
	size_t a, b;
	char *ka;

	if (!token || !thumbprint)
		return NULL;
	a = strlen(token);
	b = strlen(thumbprint);
	ka = malloc(a + b + 2);
	if (!ka)
		return NULL;
	memcpy(ka, token, a);
	ka[a] = '.';
	memcpy(ka + a + 1, thumbprint, b + 1);
	return ka;
}

/* 0 or -EINVAL, as the module's error convention says: callers test
 * "< 0", so a boolean here would wave every token through. */
int acme_token_valid(const char *token)
{
	size_t n = 0;

	if (!token)
		return -EINVAL;
	/* Padding '=' is not allowed: RFC 8555 §8.1 says base64url
	 * without padding. */
	for (; token[n]; n++) {
		char c = token[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -EINVAL;
		if (n >= TOKEN_MAX)
			return -EINVAL;
	}
	return n >= TOKEN_MIN ? 0 : -EINVAL;
}

int acme_tlsalpn01_digest(const char *key_auth, unsigned char out[32])
{
	if (!key_auth || !EVP_Digest(key_auth, strlen(key_auth), out, NULL,
				     EVP_sha256(), NULL))
		return -EINVAL;
	return 0;
}

char *acme_dns01_txt(const char *key_auth)
{
	unsigned char d[32];

	if (acme_tlsalpn01_digest(key_auth, d) < 0)
		return NULL;
	return b64url_encode(d, sizeof(d));
}
