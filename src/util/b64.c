/*
 * b64 — base64url (RFC 4648 §5) without padding, as JOSE and ACME use it.
 *
 * Decoding is strict because its input comes from peers (JWS, CA
 * responses): only the url alphabet, '=' only as correct final padding,
 * and the unused low bits of the last character must be zero, so every
 * byte string has exactly one accepted encoding.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static const char b64url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_len(size_t n)
{
	return (n / 3) * 4 + ((n % 3) ? (n % 3) + 1 : 0);
}

char *b64url_encode(const void *data, size_t n)
{
	const unsigned char *in = data;
	char *out, *o;
	size_t i;

	if (n > (SIZE_MAX - 1) / 4 * 3)
		return NULL;
	out = malloc(b64url_len(n) + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];

		*o++ = b64url_alpha[(v >> 18) & 63];
		*o++ = b64url_alpha[(v >> 12) & 63];
		*o++ = b64url_alpha[(v >> 6) & 63];
		*o++ = b64url_alpha[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		*o++ = b64url_alpha[(v >> 18) & 63];
		*o++ = b64url_alpha[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		*o++ = b64url_alpha[(v >> 18) & 63];
		*o++ = b64url_alpha[(v >> 12) & 63];
		*o++ = b64url_alpha[(v >> 6) & 63];
	}
	*o = '\0';
	return out;
}

static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * The result is NUL-terminated one byte past *outlen as a convenience for
 * callers that decode text (JSON); *outlen does not count it.
 */
unsigned char *b64url_decode(const char *s, size_t len, size_t *outlen)
{
	unsigned char *out = NULL;
	size_t i, o = 0, pad = 0, rem;
	uint32_t acc = 0;
	int bits = 0;
	int ok = 0;

	if (!s || !outlen)
		goto out;
	/* Padding, if present, must bring the length to a multiple of 4. */
	while (pad < len && s[len - 1 - pad] == '=')
		pad++;
	if (pad > 0) {
		if (pad > 2 || len % 4 != 0)
			goto out;
		len -= pad;
	}
	rem = len % 4;
	if (rem == 1 || (pad > 0 && 4 - rem != pad))
		goto out;
	out = malloc(len / 4 * 3 + (rem ? rem - 1 : 0) + 1);
	if (!out)
		goto out;
	for (i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)s[i]);

		if (v < 0)
			goto out;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero, or two inputs would decode alike. */
	if (acc != 0)
		goto out;
	out[o] = '\0';
	*outlen = o;
	ok = 1;
out:
	if (!ok) {
		free(out);
		out = NULL;
	}
	return out;
}
