/*
 * engine_tsig.c — reads a TSIG key in the form BIND's tsig-keygen and
 * ddns-confgen write it, so an operator hands certherd the very file the
 * DNS server's configuration includes:
 *
 *     key "certherd-platform" {
 *             algorithm hmac-sha256;
 *             secret "h8X...base64...=";
 *     };
 *
 * Pure: text in, a struct out. Exactly one key; algorithm hmac-sha256
 * (RFC 8945 §6: the one every server implements; older HMAC-MD5 keys are
 * refused rather than silently used); the secret standard base64 of 16 to
 * 128 bytes. Comments (#, //, and C style) and any layout are accepted.
 * Messages name the file's problem, never the secret.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

struct lex {
	const char *p, *end;
	char tok[ENGINE_TSIG_SECRET_MAX + 8];
	int quoted;
};

/* The next token into l->tok: a word, a quoted string (quotes dropped,
 * no escapes: none of our fields need them), or one of { } ;. 1, 0 at
 * the end, -EINVAL on something malformed. */
static int next(struct lex *l)
{
	size_t n = 0;

	for (;;) {
		while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' ||
					 *l->p == '\n' || *l->p == '\r'))
			l->p++;
		if (l->p < l->end &&
		    (*l->p == '#' ||
		     (*l->p == '/' && l->p + 1 < l->end && l->p[1] == '/'))) {
			while (l->p < l->end && *l->p != '\n')
				l->p++;
			continue;
		}
		if (l->p + 1 < l->end && l->p[0] == '/' && l->p[1] == '*') {
			const char *e = NULL;
			for (const char *q = l->p + 2; q + 1 < l->end; q++)
				if (q[0] == '*' && q[1] == '/') {
					e = q;
					break;
				}
			if (!e)
				return -EINVAL;
			l->p = e + 2;
			continue;
		}
		break;
	}
	l->quoted = 0;
	if (l->p >= l->end)
		return 0;
	if (*l->p == '{' || *l->p == '}' || *l->p == ';') {
		l->tok[0] = *l->p++;
		l->tok[1] = '\0';
		return 1;
	}
	if (*l->p == '"') {
		l->quoted = 1;
		for (l->p++; l->p < l->end && *l->p != '"'; l->p++) {
			if (n + 1 >= sizeof(l->tok) || *l->p == '\n' ||
			    (unsigned char)*l->p < 0x20 || *l->p == '\\')
				return -EINVAL;
			l->tok[n++] = *l->p;
		}
		if (l->p >= l->end)
			return -EINVAL;
		l->p++;
		l->tok[n] = '\0';
		return 1;
	}
	while (l->p < l->end && !strchr(" \t\r\n{};\"#", *l->p)) {
		if (n + 1 >= sizeof(l->tok) || (unsigned char)*l->p < 0x20 ||
		    (unsigned char)*l->p >= 0x7f)
			return -EINVAL;
		l->tok[n++] = *l->p++;
	}
	l->tok[n] = '\0';
	return n ? 1 : -EINVAL;
}

static int expect(struct lex *l, const char *what)
{
	return next(l) == 1 && !l->quoted && strcmp(l->tok, what) == 0
		   ? 0
		   : -EINVAL;
}

/* Standard base64 with padding; decoded length into *len. */
static int b64_len(const char *s, size_t *len)
{
	size_t n = strlen(s), pad = 0;

	if (n == 0 || n % 4)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '=') {
			if (i < n - 2)
				return -EINVAL;
			pad++;
			continue;
		}
		if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return -EINVAL;
	}
	*len = n / 4 * 3 - pad;
	return 0;
}

int engine_tsig_parse(const char *text, size_t len, struct engine_tsig_key *k,
		      char *why, size_t whysz)
{
	struct lex l = {.p = text, .end = text + len};
	int have_alg = 0, have_secret = 0, rc;
	size_t raw;

	memset(k, 0, sizeof(*k));
	if (!text || memchr(text, '\0', len)) {
		snprintf(why, whysz, "not a text file");
		return -EINVAL;
	}
	if (expect(&l, "key") < 0 || next(&l) != 1 ||
	    strlen(l.tok) > NAME_MAX_LEN) {
		snprintf(why, whysz,
			 "expected key \"NAME\" { ... }; (as "
			 "tsig-keygen writes it)");
		return -EINVAL;
	}
	/* a key name is a domain name (one label is common) */
	if (!l.tok[0] ||
	    strspn(l.tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789-_.") != strlen(l.tok)) {
		snprintf(why, whysz, "the key name is not a domain name");
		return -EINVAL;
	}
	snprintf(k->name, sizeof(k->name), "%s", l.tok);
	if (expect(&l, "{") < 0)
		goto syntax;
	for (;;) {
		if (next(&l) != 1)
			goto syntax;
		if (!l.quoted && strcmp(l.tok, "}") == 0)
			break;
		if (!l.quoted && strcmp(l.tok, "algorithm") == 0) {
			if (have_alg++ || next(&l) != 1)
				goto syntax;
			if (strcasecmp(l.tok, "hmac-sha256") != 0) {
				snprintf(why, whysz,
					 "algorithm %.40s is not "
					 "supported: use hmac-sha256",
					 l.tok);
				goto fail;
			}
		} else if (!l.quoted && strcmp(l.tok, "secret") == 0) {
			if (have_secret++ || next(&l) != 1)
				goto syntax;
			if (b64_len(l.tok, &raw) < 0 || raw < 16 || raw > 128 ||
			    strlen(l.tok) >= sizeof(k->secret)) {
				snprintf(why, whysz,
					 "the secret is not base64 "
					 "of 16 to 128 bytes");
				goto fail;
			}
			snprintf(k->secret, sizeof(k->secret), "%s", l.tok);
			memset(l.tok, 0, sizeof(l.tok));
		} else {
			snprintf(why, whysz,
				 "unknown statement %.40s in the "
				 "key",
				 l.tok);
			goto fail;
		}
		if (expect(&l, ";") < 0)
			goto syntax;
	}
	if (expect(&l, ";") < 0 || (rc = next(&l)) != 0)
		goto syntax;
	if (!have_alg || !have_secret) {
		snprintf(why, whysz, "the key has no %s",
			 have_alg ? "secret" : "algorithm");
		goto fail;
	}
	snprintf(k->algorithm, sizeof(k->algorithm), "hmac-sha256.");
	return 0;
syntax:
	snprintf(why, whysz,
		 "expected key \"NAME\" { algorithm hmac-sha256; "
		 "secret \"BASE64\"; }; (one key, as tsig-keygen writes it)");
fail:
	memset(&l, 0, sizeof(l));
	memset(k, 0, sizeof(*k));
	return -EINVAL;
}
