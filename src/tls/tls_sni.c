/*
 * tls_sni — the server_name a client sends, turned into the spelling the
 * store keys certificates by. Pure: bytes in, a name or an error out.
 *
 * Every byte comes from an unauthenticated peer, before any certificate
 * is chosen, on every handshake, so the parser is bounded by the
 * extension's own lengths and the name rules are checked in one pass
 * without libidn2 (RFC 6066 section 3 says host names are sent as
 * A-labels; a U-label is refused rather than converted). The rules match
 * name_normalize for ASCII names (util/name.c): a name accepted here that
 * the store could hold is spelled as the store spells it.
 */
#include <errno.h>
#include <string.h>

#include "tls/tls.h"

#define SNI_LABEL_MAX 63
#define SNI_HOST_NAME 0 /* NameType host_name (RFC 6066) */

int tls_sni_normalize(const char *in, size_t len, char *out, size_t outsz)
{
	size_t label = 0, labels = 0, last_start = 0, i;
	int last_digits = 1;

	if (!in || !out || outsz < TLS_NAME_MAX + 1)
		return -EINVAL;
	if (len > 0 && in[len - 1] == '.')
		len--; /* the root: "example.com." is example.com */
	if (len == 0 || len > TLS_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			/* empty label, or one ending with '-' */
			if (label == 0 || out[i - 1] == '-')
				return -EINVAL;
			labels++;
			label = 0;
			last_start = i + 1;
			last_digits = 1;
			out[i] = '.';
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return -EINVAL;
		if (c == '-' && label == 0)
			return -EINVAL;
		if (++label > SNI_LABEL_MAX)
			return -EINVAL;
		if (c < '0' || c > '9')
			last_digits = 0;
		out[i] = (char)c;
	}
	if (out[len - 1] == '-')
		return -EINVAL;
	labels++;
	/* one label is no public name; an all-digit last label is an IPv4
	 * address, which SNI must not carry (RFC 6066) */
	if (labels < 2 || last_digits || last_start >= len)
		return -EINVAL;
	out[len] = '\0';
	return 0;
}

int tls_sni_from_ext(const unsigned char *ext, size_t len, char *out,
		     size_t outsz)
{
	size_t list, off;

	if (!ext || !out || len < 2)
		return -EINVAL;
	list = (size_t)ext[0] << 8 | ext[1];
	if (list != len - 2 || list == 0)
		return -EINVAL;
	/* ServerName entries: type (1), length (2), name. The RFC allows
	 * one per type; take the first host_name, check the rest is well
	 * formed. */
	for (off = 2; off < len;) {
		size_t n;
		unsigned type;

		if (len - off < 3)
			return -EINVAL;
		type = ext[off];
		n = (size_t)ext[off + 1] << 8 | ext[off + 2];
		off += 3;
		if (n > len - off)
			return -EINVAL;
		if (type == SNI_HOST_NAME) {
			/* a NUL inside is caught by the character rules */
			return tls_sni_normalize((const char *)ext + off, n,
						 out, outsz);
		}
		off += n;
	}
	return -ENOENT;
}

int tls_sni_wildcard(const char *name, char *out, size_t outsz)
{
	const char *parent;
	size_t n;

	if (!name || !out || outsz < TLS_NAME_MAX + 1 || name[0] == '*')
		return -EINVAL;
	parent = strchr(name, '.');
	if (!parent || !strchr(parent + 1, '.'))
		return -ENOENT; /* "*.com" covers no registered name */
	n = strlen(parent);
	if (n + 1 > TLS_NAME_MAX)
		return -ENOENT; /* "*" + parent would be too long a name */
	out[0] = '*';
	memcpy(out + 1, parent, n + 1);
	return 0;
}
