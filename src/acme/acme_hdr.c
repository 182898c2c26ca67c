/*
 * acme_hdr — the few HTTP response headers ACME needs (Replay-Nonce,
 * Location, Link, Retry-After), read from the raw header block a driver
 * hands over.
 *
 * Why not let the driver pick headers out: the core must stay testable
 * with recorded responses byte for byte, and libcurl delivers the header
 * block as it came off the wire — possibly several blocks (a "100
 * Continue" interim response, or a proxy CONNECT answer, before the real
 * one), with the status line of each. Only the last block describes the
 * response whose body we hold, so every lookup is confined to it.
 *
 * All of this is peer input: lengths are bounded (ACME_MAX_HEADERS),
 * control characters in a value are rejected rather than passed on to
 * logs, and nothing here allocates except acme_link_parse's scratch copy.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme.h"

#define RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 §5.6.2 tchar: what a header name or a parameter name is made of. */
static int is_tchar(unsigned char c)
{
	if (isalnum(c))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Length of the line starting at p (without its LF or CRLF) and, in *next,
 * where the following line starts. */
static size_t line_len(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t n;

	if (!nl) {
		*next = end;
		return (size_t)(end - p);
	}
	*next = nl + 1;
	n = (size_t)(nl - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

static int is_status_line(const char *p, size_t n)
{
	return n >= 5 && memcmp(p, "HTTP/", 5) == 0;
}

/*
 * Start of the last header block. A status line starts a block; so does
 * the first field line after an empty line (a driver that strips status
 * lines still separates blocks with the empty line that ends each one).
 * The empty line that ends the final block does not start another.
 */
static const char *last_block(const char *hdrs, const char *end)
{
	const char *start = hdrs, *p = hdrs, *next;
	int after_blank = 0;

	while (p < end) {
		size_t n = line_len(p, end, &next);

		if (is_status_line(p, n)) {
			start = next;
			after_blank = 0;
		} else if (n == 0) {
			after_blank = 1;
		} else if (after_blank) {
			start = p;
			after_blank = 0;
		}
		p = next;
	}
	return start;
}

/* Append bytes of a value to out, trimming is the caller's job. */
static int put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Control characters have no business in the values we use
		 * (URLs, nonces, dates) and would let a peer forge log
		 * lines; obs-text (>= 0x80) is passed through. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
	}
	if (*pos + n >= outsz)
		return -EINVAL;
	memcpy(out + *pos, s, n);
	*pos += n;
	return 0;
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && is_ows(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_ows((*s)[*n - 1]))
		(*n)--;
}

int acme_hdr_get(const char *hdrs, size_t len, const char *name, int idx,
		 char *out, size_t outsz)
{
	const char *end, *p, *next;
	size_t nlen, pos = 0;
	int seen = 0, ret = -ENOENT;

	if (!name || !*name || idx < 0 || !out || outsz == 0 ||
	    len > ACME_MAX_HEADERS || (!hdrs && len > 0)) {
		ret = -EINVAL;
		goto out;
	}
	out[0] = '\0';
	if (len == 0)
		goto out;
	nlen = strlen(name);
	end = hdrs + len;
	p = last_block(hdrs, end);
	while (p < end) {
		size_t n = line_len(p, end, &next), vlen;
		const char *v;

		if (n == 0)
			break; /* end of the block */
		/* Field names are tokens immediately followed by ':'
		 * (RFC 9112 §5.1 forbids space before the colon); anything
		 * else, including a stray continuation line, is skipped. */
		if (n <= nlen || p[nlen] != ':' ||
		    strncasecmp(p, name, nlen) != 0) {
			p = next;
			continue;
		}
		if (seen++ < idx) {
			p = next;
			continue;
		}
		v = p + nlen + 1;
		vlen = n - nlen - 1;
		trim(&v, &vlen);
		ret = put(out, outsz, &pos, v, vlen);
		if (ret < 0)
			goto out;
		/* Obsolete line folding (RFC 9112 §5.2): a following line
		 * that starts with whitespace continues the value; it is
		 * joined with a single space as the RFC allows. */
		p = next;
		while (p < end) {
			n = line_len(p, end, &next);
			if (n == 0 || !is_ows(*p))
				break;
			v = p;
			vlen = n;
			trim(&v, &vlen);
			if (vlen > 0) {
				ret = put(out, outsz, &pos, " ", 1);
				if (ret < 0)
					goto out;
				ret = put(out, outsz, &pos, v, vlen);
				if (ret < 0)
					goto out;
			}
			p = next;
		}
		out[pos] = '\0';
		ret = (int)pos;
		goto out;
	}
out:
	return ret;
}

/* ---- Retry-After --------------------------------------------------------- */

static const char *const wkday[7] = {"Sun", "Mon", "Tue", "Wed",
				     "Thu", "Fri", "Sat"};
static const char *const weekday[7] = {"Sunday",    "Monday",	"Tuesday",
				       "Wednesday", "Thursday", "Friday",
				       "Saturday"};
static const char *const month[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *val)
{
	int v = 0;

	while (n-- > 0) {
		if (!isdigit((unsigned char)**s))
			return -1;
		v = v * 10 + (**s - '0');
		(*s)++;
	}
	*val = v;
	return 0;
}

static int lit(const char **s, const char *l)
{
	size_t n = strlen(l);

	if (strncmp(*s, l, n) != 0)
		return -1;
	*s += n;
	return 0;
}

static int name_in(const char **s, const char *const *tab, int n, int *idx)
{
	int i;

	for (i = 0; i < n; i++) {
		if (lit(s, tab[i]) == 0) {
			*idx = i;
			return 0;
		}
	}
	return -1;
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date; done by hand
 * because timegm() is not in C11 and mktime() depends on TZ. */
static int64_t days_from_civil(int y, int m, int d)
{
	static const int before[12] = {0,   31,	 59,  90,  120, 151,
				       181, 212, 243, 273, 304, 334};
	int64_t days = 0;
	int yy;

	/* Years are bounded (1900..9999) by the caller: a plain loop is
	 * clear and cheap enough. */
	for (yy = 1970; yy < y; yy++)
		days += is_leap(yy) ? 366 : 365;
	for (yy = y; yy < 1970; yy++)
		days -= is_leap(yy) ? 366 : 365;
	days += before[m] + (m > 1 && is_leap(y)) + d - 1;
	return days;
}

static int check_date(int y, int m, int d, int hh, int mm, int ss)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};

	if (y < 1900 || y > 9999 || d < 1 ||
	    d > mdays[m] + (m == 1 && is_leap(y)))
		return -1;
	/* 60 is a leap second; counted as the next second. */
	if (hh > 23 || mm > 59 || ss > 60)
		return -1;
	return 0;
}

static int hms(const char **p, int *hh, int *mm, int *ss)
{
	return digits(p, 2, hh) || lit(p, ":") || digits(p, 2, mm) ||
	       lit(p, ":") || digits(p, 2, ss);
}

/*
 * HTTP-date (RFC 9110 §5.6.7) to epoch seconds. Recipients must accept
 * the obsolete RFC 850 and asctime forms too, so all three are parsed;
 * the weekday name is checked for form but not against the date.
 */
static int http_date(const char *s, int64_t *t)
{
	int wd, y, m, d, hh, mm, ss;
	const char *p = s;

	/* "Sunday" before "Sun": the long names start with the short. */
	if (name_in(&p, weekday, 7, &wd) == 0) {
		/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. Two-digit years
		 * are read as 19xx/20xx around 1970, which is all that
		 * matters for a retry delay. */
		if (lit(&p, ", ") || digits(&p, 2, &d) || lit(&p, "-") ||
		    name_in(&p, month, 12, &m) || lit(&p, "-") ||
		    digits(&p, 2, &y) || lit(&p, " ") ||
		    hms(&p, &hh, &mm, &ss) || lit(&p, " GMT") || *p)
			return -1;
		y += y < 70 ? 2000 : 1900;
	} else if (name_in(&p, wkday, 7, &wd) != 0) {
		return -1;
	} else if (*p == ',') {
		/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
		if (lit(&p, ", ") || digits(&p, 2, &d) || lit(&p, " ") ||
		    name_in(&p, month, 12, &m) || lit(&p, " ") ||
		    digits(&p, 4, &y) || lit(&p, " ") ||
		    hms(&p, &hh, &mm, &ss) || lit(&p, " GMT") || *p)
			return -1;
	} else {
		/* asctime: Sun Nov  6 08:49:37 1994 (day space-padded) */
		if (lit(&p, " ") || name_in(&p, month, 12, &m) || lit(&p, " "))
			return -1;
		if (*p == ' ') {
			p++;
			if (digits(&p, 1, &d))
				return -1;
		} else if (digits(&p, 2, &d)) {
			return -1;
		}
		if (lit(&p, " ") || hms(&p, &hh, &mm, &ss) || lit(&p, " ") ||
		    digits(&p, 4, &y) || *p)
			return -1;
	}
	if (check_date(y, m, d, hh, mm, ss))
		return -1;
	*t = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
	return 0;
}

int acme_retry_after_parse(const char *v, int64_t now_s, int64_t *ms)
{
	char buf[64];
	const char *s;
	size_t n;
	int64_t val, t;
	int ret = -EINVAL;

	if (!v || !ms)
		goto out;
	s = v;
	n = strlen(v);
	trim(&s, &n);
	if (n == 0 || n >= sizeof(buf))
		goto out;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (isdigit((unsigned char)buf[0])) {
		/* delta-seconds: digits only. Past the clamp we stop
		 * accumulating, so any number of digits is safe. */
		size_t i;

		val = 0;
		for (i = 0; i < n; i++) {
			if (!isdigit((unsigned char)buf[i]))
				goto out;
			if (val <= RETRY_AFTER_MAX_MS / 1000)
				val = val * 10 + (buf[i] - '0');
		}
		val *= 1000;
	} else {
		if (http_date(buf, &t))
			goto out;
		/* A date in the past means "now"; guard the subtraction
		 * against absurd clocks. */
		if (now_s > t)
			val = 0;
		else if (t - now_s > RETRY_AFTER_MAX_MS / 1000)
			val = RETRY_AFTER_MAX_MS;
		else
			val = (t - now_s) * 1000;
	}
	if (val > RETRY_AFTER_MAX_MS)
		val = RETRY_AFTER_MAX_MS;
	*ms = val;
	ret = 0;
out:
	return ret;
}

/* ---- Link (RFC 8288) ----------------------------------------------------- */

struct link_cursor {
	char *p;
};

static void skip_ows(struct link_cursor *c)
{
	while (is_ows(*c->p))
		c->p++;
}

/*
 * A parameter value: token or quoted-string (RFC 9110 §5.6.4), unescaped
 * into val (at least as large as the input). 0 or -1.
 */
static int param_value(struct link_cursor *c, char *val)
{
	size_t n = 0;

	if (*c->p == '"') {
		c->p++;
		for (;;) {
			unsigned char ch = (unsigned char)*c->p;

			if (ch == '"')
				break;
			if (ch == '\\') {
				c->p++;
				ch = (unsigned char)*c->p;
			}
			if (ch == '\0' || (ch < 0x20 && ch != '\t') ||
			    ch == 0x7f)
				return -1;
			val[n++] = (char)ch;
			c->p++;
		}
		c->p++;
	} else {
		while (is_tchar((unsigned char)*c->p))
			val[n++] = *c->p++;
		if (n == 0)
			return -1;
	}
	val[n] = '\0';
	return 0;
}

/*
 * Relation types registered with IANA are case-insensitive and lower-case
 * in the registry (RFC 8288 §2.1.1), so they are lowered to let callers
 * compare with strcmp; extension types are URIs and are left alone.
 */
static void lower_reg_rel(char *rel)
{
	char *q;

	if (!isalpha((unsigned char)rel[0]) || strchr(rel, ':'))
		return;
	for (q = rel; *q; q++)
		*q = (char)tolower((unsigned char)*q);
}

/*
 * One pass over a Link value; emits only when cb is non-NULL, so the
 * caller can validate the whole value before reporting anything.
 * buf is a writable copy of the value, scratch the same size.
 */
static int link_walk(char *buf, char *scratch,
		     void (*cb)(void *ctx, const char *url, const char *rel),
		     void *ctx)
{
	struct link_cursor c = {buf};

	for (;;) {
		char *url, *rel = NULL;
		int have_rel = 0;

		/* The list rule (RFC 9110 §5.6.1) allows empty elements. */
		while (is_ows(*c.p) || *c.p == ',')
			c.p++;
		if (*c.p == '\0')
			return 0;
		if (*c.p != '<')
			return -1;
		url = ++c.p;
		while (*c.p != '>') {
			unsigned char ch = (unsigned char)*c.p;

			if (ch <= 0x20 || ch == 0x7f || ch == '<')
				return -1;
			c.p++;
		}
		if (c.p == url)
			return -1;
		*c.p++ = '\0';
		for (;;) {
			char *pname;
			size_t plen;

			skip_ows(&c);
			if (*c.p != ';')
				break;
			c.p++;
			skip_ows(&c);
			pname = c.p;
			while (is_tchar((unsigned char)*c.p))
				c.p++;
			plen = (size_t)(c.p - pname);
			if (plen == 0)
				return -1;
			skip_ows(&c);
			if (*c.p != '=') {
				/* A parameter without a value: legal and
				 * uninteresting to us. */
				continue;
			}
			c.p++;
			skip_ows(&c);
			/* Each parameter gets its own slot at the start of
			 * scratch unless it is the first rel, which is kept
			 * (RFC 8288 §3.3: later rel parameters are ignored). */
			if (plen == 3 && strncasecmp(pname, "rel", 3) == 0 &&
			    !have_rel) {
				rel = scratch;
				if (param_value(&c, rel))
					return -1;
				have_rel = 1;
			} else {
				char *tmp = have_rel
						? scratch + strlen(scratch) + 1
						: scratch;

				if (param_value(&c, tmp))
					return -1;
			}
		}
		if (*c.p != ',' && *c.p != '\0')
			return -1;
		if (have_rel && cb) {
			/* rel may list several space-separated types. */
			char *save = NULL, *tok;

			for (tok = strtok_r(rel, " \t", &save); tok;
			     tok = strtok_r(NULL, " \t", &save)) {
				lower_reg_rel(tok);
				cb(ctx, url, tok);
			}
		}
	}
}

int acme_link_parse(const char *v,
		    void (*cb)(void *ctx, const char *url, const char *rel),
		    void *ctx)
{
	char *buf = NULL, *scratch = NULL;
	size_t n;
	int ret = -EINVAL;

	if (!v || !cb)
		goto out;
	n = strlen(v);
	if (n > ACME_MAX_HEADERS)
		goto out;
	/* Two copies: the first pass validates everything (so a bad value
	 * reports nothing), the second emits. Each pass writes NULs into
	 * its buffer, hence the fresh copy. */
	buf = malloc(n + 1);
	scratch = malloc(n + 2);
	if (!buf || !scratch) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(buf, v, n + 1);
	if (link_walk(buf, scratch, NULL, NULL))
		goto out;
	memcpy(buf, v, n + 1);
	link_walk(buf, scratch, cb, ctx);
	ret = 0;
out:
	free(buf);
	free(scratch);
	return ret;
}
