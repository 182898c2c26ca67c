/*
 * nginx_certbot.c — certbot's renewal/NAME.conf, read by
 * `certherd import-certbot`. Pure. certbot writes it with configobj:
 *
 *   # renew_before_expiry = 30 days
 *   version = 2.1.0
 *   archive_dir = /etc/letsencrypt/archive/example.com
 *   cert = /etc/letsencrypt/live/example.com/cert.pem
 *   privkey = /etc/letsencrypt/live/example.com/privkey.pem
 *   chain = /etc/letsencrypt/live/example.com/chain.pem
 *   fullchain = /etc/letsencrypt/live/example.com/fullchain.pem
 *
 *   [renewalparams]
 *   server = https://acme-v02.api.letsencrypt.org/directory
 *   ...
 *
 * We want where the lineage's files are and which CA issued it; the rest
 * (authenticator, webroot map) is certbot's business.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nginx/nginx.h"

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s &&
	       ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

static int set(char *dst, const char *v, const char *ve, unsigned line,
	       char *err, size_t errsz)
{
	size_t n = (size_t)(ve - v);

	if (n >= NGINX_STR_MAX) {
		snprintf(err, errsz, "line %u: value longer than %u bytes",
			 line, NGINX_STR_MAX - 1);
		return -EINVAL;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

int nginx_certbot_conf_parse(const char *text, size_t len,
			     struct nginx_certbot_conf *out, char *err,
			     size_t errsz)
{
	const char *p = text, *end = text + len;
	int section = 0; /* 0: top level, 1: [renewalparams], 2: other */
	unsigned line = 0;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *s = p, *e = nl ? nl : end, *eq, *ks, *ke, *vs;
		int rc = 0;

		p = nl ? nl + 1 : end;
		line++;
		trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		if (memchr(s, '\0', (size_t)(e - s))) {
			snprintf(err, errsz, "line %u: NUL byte", line);
			return -EINVAL;
		}
		if (*s == '[') {
			section = (size_t)(e - s) == 15 &&
					  memcmp(s, "[renewalparams]", 15) == 0
				      ? 1
				      : 2;
			continue;
		}
		eq = memchr(s, '=', (size_t)(e - s));
		if (!eq) {
			snprintf(err, errsz,
				 "line %u: neither key = value nor [section]",
				 line);
			return -EINVAL;
		}
		ks = s;
		ke = eq;
		vs = eq + 1;
		trim(&ks, &ke);
		trim(&vs, &e);
#define KEY(k) ((size_t)(ke - ks) == strlen(k) && memcmp(ks, k, strlen(k)) == 0)
		if (section == 0 && KEY("fullchain"))
			rc = set(out->fullchain, vs, e, line, err, errsz);
		else if (section == 0 && KEY("privkey"))
			rc = set(out->privkey, vs, e, line, err, errsz);
		else if (section == 1 && KEY("server"))
			rc = set(out->server, vs, e, line, err, errsz);
#undef KEY
		if (rc < 0)
			return rc;
	}
	return 0;
}
