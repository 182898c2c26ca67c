/*
 * api_json.c — the pure part of the API: parsing the names a client posts
 * and rendering times, strings and stored errors as JSON. No I/O, no
 * clock, so fuzz/fuzz_api_json.c can feed it arbitrary bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF,
 * exactly what jansson refuses. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *api__str(const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0;
	char *buf;
	json_t *j;

	buf = malloc((n < max ? n : max) + 1);
	if (!buf)
		return NULL;
	while (i < n) {
		size_t l = utf8_seq(u + i, n - i);

		if (o + (l ? l : 1) > max)
			break;
		if (l == 0) {
			buf[o++] = '?';
			i++;
			continue;
		}
		memcpy(buf + o, s + i, l);
		o += l;
		i += l;
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

int api__rfc3339(int64_t ms, char *out, size_t outsz)
{
	/* 253402300799 = 9999-12-31T23:59:59Z: keep to four-digit years */
	time_t t;
	struct tm tm;

	if (ms < 0 || ms / 1000 > 253402300799LL || outsz < 21)
		return -EINVAL;
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	if (strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	return 0;
}

json_t *api__time(int64_t ms)
{
	char buf[32];

	if (ms == STORE_NO_TIME || api__rfc3339(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

json_t *api__last_error(const struct store_domain *d)
{
	const struct store_problem *p = &d->last_error;
	json_t *o;

	if (!d->has_error)
		return json_null();
	/* stored strings came from a CA: make sure they are valid JSON */
	o = json_object();
	if (!o || json_object_set_new(o, "type", api__str(p->type, 256)) ||
	    json_object_set_new(o, "detail", api__str(p->detail, 2048)) ||
	    json_object_set_new(o, "status",
				p->status ? json_integer(p->status)
					  : json_null()) ||
	    json_object_set_new(o, "step", api__str(p->step, 64)) ||
	    json_object_set_new(o, "retry_after",
				api__time(p->retry_after_ms))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void api__names_free(struct api_names *n)
{
	if (!n)
		return;
	json_decref(n->root);
	free(n->v);
	memset(n, 0, sizeof(*n));
}

/* qsort_r (glibc; the project builds with _GNU_SOURCE) carries the
 * array as context: the two listener threads may parse at the same time,
 * so no static may hold it. */
static int by_norm(const void *a, const void *b, void *ctx)
{
	const struct api_name *v = ctx;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(v[i].norm, v[j].norm);

	if (c)
		return c;
	return i < j ? -1 : i > j; /* earliest first within equal names */
}

/* Mark entries whose normalized name appeared earlier in the request
 * (e.g. "Shop.Example" and "shop.example", or an IDN and its punycode).
 * Sorting indices is O(n log n) where pairwise checks would be 10^8
 * comparisons for the largest request. */
static int mark_dups(struct api_names *out)
{
	size_t *idx, i;

	if (out->n < 2)
		return 0;
	idx = malloc(out->n * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (i = 0; i < out->n; i++)
		idx[i] = i;
	qsort_r(idx, out->n, sizeof(*idx), by_norm, out->v);
	for (i = 1; i < out->n; i++) {
		struct api_name *prev = &out->v[idx[i - 1]];
		struct api_name *cur = &out->v[idx[i]];

		if (cur->norm[0] && strcmp(prev->norm, cur->norm) == 0)
			cur->dup = 1;
	}
	free(idx);
	return 0;
}

static void one_name(struct api_names *out, const char *in)
{
	struct api_name *e = &out->v[out->n];

	e->input = in;
	if (name_normalize(in, NAME_ALLOW_WILDCARD, e->norm, sizeof(e->norm),
			   e->reason, sizeof(e->reason)) < 0 ||
	    (e->norm[0] == '*' && strcmp(out->challenge, "http-01") == 0 &&
	     snprintf(e->reason, sizeof(e->reason),
		      "%s is a wildcard: only dns-01 can validate it",
		      e->norm) > 0)) {
		e->norm[0] = '\0';
		if (!e->reason[0])
			snprintf(e->reason, sizeof(e->reason), "invalid name");
		if (out->n_invalid++ == 0)
			out->first_invalid = out->n;
	} else {
		e->reason[0] = '\0';
	}
	out->n++;
}

int api__names_parse(const char *body, size_t len, struct api_names *out,
		     char *err, size_t errsz)
{
	json_error_t je;
	json_t *names = NULL, *one = NULL, *chall = NULL, *v;
	const char *key;
	size_t i, count;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!body || len == 0) {
		snprintf(err, errsz, "empty body: want {\"names\": [...]}");
		goto out;
	}
	/* no NUL in strings (JSON_ALLOW_NUL is off): names are C strings */
	out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!out->root) {
		snprintf(err, errsz, "malformed JSON at line %d column %d: %s",
			 je.line, je.column, je.text);
		goto out;
	}
	if (!json_is_object(out->root)) {
		snprintf(err, errsz,
			 "body must be a JSON object {\"names\": [...]}");
		goto out;
	}
	json_object_foreach(out->root, key, v)
	{
		if (strcmp(key, "names") == 0) {
			names = v;
		} else if (strcmp(key, "name") == 0) {
			one = v;
		} else if (strcmp(key, "challenge") == 0) {
			chall = v;
		} else {
			snprintf(err, errsz,
				 "unknown member \"%.64s\": want \"names\" or "
				 "\"name\" (and \"challenge\")",
				 key);
			goto out;
		}
	}
	if (chall) {
		const char *cv = json_string_value(chall);
		if (!cv || (strcmp(cv, "http-01") && strcmp(cv, "dns-01"))) {
			snprintf(err, errsz, "\"challenge\" must be \"http-01\" "
				 "or \"dns-01\"");
			goto out;
		}
		snprintf(out->challenge, sizeof(out->challenge), "%s", cv);
	}
	if (names && one) {
		snprintf(err, errsz, "give \"names\" or \"name\", not both");
		goto out;
	}
	if (!names && !one) {
		snprintf(err, errsz,
			 "missing \"names\": want {\"names\": [...]}");
		goto out;
	}
	if (one && !json_is_string(one)) {
		snprintf(err, errsz, "\"name\" must be a string");
		goto out;
	}
	if (names && !json_is_array(names)) {
		snprintf(err, errsz, "\"names\" must be an array of strings");
		goto out;
	}
	count = one ? 1 : json_array_size(names);
	if (count == 0) {
		snprintf(err, errsz, "\"names\" is empty");
		goto out;
	}
	if (count > API_MAX_NAMES) {
		snprintf(err, errsz,
			 "too many names: %zu, at most %u per request", count,
			 (unsigned)API_MAX_NAMES);
		rc = -E2BIG;
		goto out;
	}
	out->v = calloc(count, sizeof(*out->v));
	if (!out->v) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (one) {
		one_name(out, json_string_value(one));
	} else {
		json_array_foreach(names, i, v)
		{
			if (!json_is_string(v)) {
				snprintf(err, errsz,
					 "\"names\"[%zu] is not a string", i);
				goto out;
			}
			one_name(out, json_string_value(v));
		}
	}
	rc = mark_dups(out);
	if (rc < 0)
		snprintf(err, errsz, "out of memory");
out:
	if (rc < 0)
		api__names_free(out);
	return rc;
}
