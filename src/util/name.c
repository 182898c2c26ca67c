/*
 * name — normalize and validate domain names before they reach a CA.
 *
 * Names come from config files, the command line, TLS ClientHellos (on-
 * demand issuance) and certificates. Everything downstream — storage keys,
 * rate-limit buckets, the identifiers of a new order — relies on one
 * spelling per name, so this is the only place that decides it:
 *
 *   1. IP literals (v4, v6, bracketed v6) are refused outright; ACME has a
 *      separate identifier type for them and we do not issue for them.
 *   2. A leading "*." is set aside when NAME_ALLOW_WILDCARD is given.
 *   3. Non-ASCII input goes through libidn2 (IDNA2008 with UTS#46
 *      non-transitional mapping, NFC), which also lower-cases it.
 *      ASCII input is only lower-cased: libidn2 would accept things CAs
 *      refuse (underscores without STD3 rules), so ASCII is held to our
 *      own rules below instead.
 *   4. One trailing dot (the DNS root) is removed.
 *   5. Every label must be 1..63 characters of [a-z0-9-], not starting or
 *      ending with '-'; labels already in "xn--" form must be valid,
 *      canonical punycode; the whole name at most 253; at least two labels
 *      (counting the wildcard); the last label not all digits, since no
 *      TLD is numeric and such names are mistyped IPs.
 *
 * Underscores are rejected: they are legal in DNS but not in host names,
 * and public CAs refuse them in certificates.
 *
 * Pure code: no I/O, no allocation visible to the caller.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "util/util.h"

#define LABEL_MAX_LEN 63
/* Inputs longer than this cannot become a valid name even after IDNA
 * mapping shrinks them; refusing early bounds the work done on them. */
#define NAME_INPUT_MAX 1024

/* Copy the input into dst for an error message, with unprintable bytes
 * shown as '?' so the message stays one readable line. */
static void quote_input(const char *in, char *dst, size_t dstsz)
{
	size_t i;

	for (i = 0; in[i] && i + 4 < dstsz; i++) {
		unsigned char c = (unsigned char)in[i];

		dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (in[i] && i >= 3) {
		/* mark the cut so a reader does not take it for the input */
		memcpy(dst + i - 3, "...", 3);
	}
	dst[i] = '\0';
}

static int name_fail(const char *in, char *err, size_t errsz, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static int name_fail(const char *in, char *err, size_t errsz, const char *fmt,
		     ...)
{
	char shown[96];
	char why[128];
	va_list ap;

	if (!err || errsz == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	quote_input(in, shown, sizeof(shown));
	snprintf(err, errsz, "invalid domain \"%s\": %s", shown, why);
	return -EINVAL;
}

static int is_ip_literal(const char *in)
{
	unsigned char addr[16];
	char tmp[64];
	size_t n = strlen(in);

	if (inet_pton(AF_INET, in, addr) == 1 ||
	    inet_pton(AF_INET6, in, addr) == 1)
		return 1;
	if (n > 2 && n < sizeof(tmp) && in[0] == '[' && in[n - 1] == ']') {
		memcpy(tmp, in + 1, n - 2);
		tmp[n - 2] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) == 1)
			return 1;
	}
	return 0;
}

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Describe a bad character for a message: printable ones quoted, others
 * by value. */
static void describe_char(unsigned char c, char *out, size_t outsz)
{
	if (c > 0x20 && c < 0x7f && c != '\'')
		snprintf(out, outsz, "'%c'", c);
	else if (c == ' ')
		snprintf(out, outsz, "' '");
	else
		snprintf(out, outsz, "byte 0x%02x", c);
}

/*
 * Check the label sequence in s (already lower-case ASCII, no wildcard,
 * no trailing dot). `labels` gets the label count.
 */
static int check_labels(const char *in, const char *s, int *labels, char *err,
			size_t errsz)
{
	const char *p = s;
	const char *last = s;
	int count = 0;

	for (;;) {
		const char *end = strchr(p, '.');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		size_t i;
		char what[16];

		if (len == 0)
			return name_fail(in, err, errsz, "empty label");
		if (len > LABEL_MAX_LEN)
			return name_fail(in, err, errsz,
					 "label longer than %d characters",
					 LABEL_MAX_LEN);
		for (i = 0; i < len; i++) {
			if (!is_ldh(p[i])) {
				describe_char((unsigned char)p[i], what,
					      sizeof(what));
				return name_fail(in, err, errsz,
						 "label contains %s", what);
			}
		}
		if (p[0] == '-' || p[len - 1] == '-')
			return name_fail(in, err, errsz,
					 "label starts or ends with '-'");
		count++;
		last = p;
		if (!end)
			break;
		p = end + 1;
	}
	if (strspn(last, "0123456789") == strlen(last))
		return name_fail(in, err, errsz, "top-level label is numeric");
	*labels = count;
	return 0;
}

static int has_alabel(const char *s)
{
	const char *p = s;

	for (;;) {
		if (strncmp(p, "xn--", 4) == 0)
			return 1;
		p = strchr(p, '.');
		if (!p)
			return 0;
		p++;
	}
}

/*
 * Labels already in "xn--" form skip the IDNA conversion above, so check
 * them here: they must decode, and encoding the result again must give
 * the same bytes. Otherwise the CA would refuse the order, or two
 * spellings could name the same domain.
 */
static int check_alabels(const char *in, const char *s, char *err, size_t errsz)
{
	char *u = NULL;
	char *a = NULL;
	int rc = 0;
	int irc;

	if (!has_alabel(s))
		goto out;
	irc = idn2_to_unicode_8z8z(s, &u, 0);
	if (irc == IDN2_OK)
		irc = idn2_to_ascii_8z(u, &a,
				       IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
	if (irc != IDN2_OK) {
		rc = name_fail(in, err, errsz, "bad punycode label: %s",
			       idn2_strerror(irc));
		goto out;
	}
	if (strcmp(a, s) != 0)
		rc = name_fail(in, err, errsz,
			       "punycode label is not in canonical form");
out:
	idn2_free(u);
	idn2_free(a);
	return rc;
}

int name_normalize(const char *in, unsigned flags, char *out, size_t outsz,
		   char *err, size_t errsz)
{
	char buf[NAME_INPUT_MAX + 1];
	char *idn = NULL;
	const char *rest;
	int wildcard = 0;
	int labels = 0;
	size_t n, total, i;
	int rc = -EINVAL;
	int irc;

	if (err && errsz)
		err[0] = '\0';
	if (!in || !out) {
		rc = name_fail("", err, errsz, "no name given");
		goto out;
	}
	n = strlen(in);
	if (n == 0) {
		rc = name_fail(in, err, errsz, "empty name");
		goto out;
	}
	if (n > NAME_INPUT_MAX) {
		rc = name_fail(in, err, errsz, "name too long");
		goto out;
	}
	if (is_ip_literal(in)) {
		rc = name_fail(in, err, errsz, "is an IP address");
		goto out;
	}

	rest = in;
	if (in[0] == '*') {
		if (in[1] != '.') {
			rc = name_fail(
			    in, err, errsz,
			    "wildcard must be a whole leftmost label");
			goto out;
		}
		if (!(flags & NAME_ALLOW_WILDCARD)) {
			rc = name_fail(in, err, errsz,
				       "wildcard not allowed here");
			goto out;
		}
		wildcard = 1;
		rest = in + 2;
	}

	if (has_non_ascii(rest)) {
		irc = idn2_to_ascii_8z(rest, &idn,
				       IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
		if (irc != IDN2_OK) {
			rc =
			    name_fail(in, err, errsz, "%s", idn2_strerror(irc));
			goto out;
		}
		rest = idn;
	}
	n = strlen(rest);
	if (n > NAME_INPUT_MAX) {
		rc = name_fail(in, err, errsz, "name too long");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char c = rest[i];

		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
	if (n == 0) {
		rc = name_fail(in, err, errsz, "empty label");
		goto out;
	}

	rc = check_labels(in, buf, &labels, err, errsz);
	if (rc < 0)
		goto out;
	rc = check_alabels(in, buf, err, errsz);
	if (rc < 0)
		goto out;
	rc = -EINVAL;
	labels += wildcard;
	total = n + (wildcard ? 2 : 0);
	if (total > NAME_MAX_LEN) {
		rc = name_fail(in, err, errsz, "name longer than %d characters",
			       NAME_MAX_LEN);
		goto out;
	}
	if (labels < 2) {
		rc = name_fail(in, err, errsz, "single-label name");
		goto out;
	}
	if (total + 1 > outsz) {
		rc = name_fail(in, err, errsz, "output buffer too small");
		goto out;
	}
	snprintf(out, outsz, "%s%s", wildcard ? "*." : "", buf);
	rc = 0;
out:
	idn2_free(idn);
	return rc;
}
