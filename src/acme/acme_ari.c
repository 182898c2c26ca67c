/*
 * acme_ari.c — ACME Renewal Information (RFC 9773): the certificate
 * identifier, the renewalInfo response parser (with a strict RFC 3339
 * timestamp parser) and the machine that fetches one renewalInfo.
 *
 * Why its own machine and not a kind of acme_op: renewalInfo is an
 * unauthenticated GET (§4.1) with no nonce and no JWS, while every acme_op
 * is a signed POST; sharing acme_op_next would mean branching inside it.
 *
 *   FETCH --200 + valid body--> DONE
 *     |   --transient (no answer, 5xx, serverInternal), < 3 times-->
 *     |        BACKOFF --wake_at reached--> FETCH
 *     +---else (404, problem, bad body)--> FAILED
 *
 * Invariants: FETCH: url is fixed at creation, result empty. BACKOFF:
 * wake_at > the time of the failed attempt. DONE: result holds a window
 * with start < end. FAILED: err.code != ACME_E_NONE. DONE and FAILED are
 * final.
 *
 * Everything here is pure: time comes in as now_ms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "acme/acme_internal.h"
#include "util/util.h"

/* ---- the certificate identifier (§4.1) ---------------------------------- */

/* Content bytes of a DER INTEGER (tag 0x02, definite length). */
static int der_int_content(const unsigned char *p, size_t n,
			   const unsigned char **c, size_t *clen)
{
	size_t len, i = 2;

	if (n < 2 || p[0] != 0x02)
		return -EINVAL;
	len = p[1];
	if (len & 0x80) {
		unsigned k = len & 0x7f;

		if (k == 0 || k > 2 || n < 2 + k)
			return -EINVAL;
		len = 0;
		for (unsigned j = 0; j < k; j++)
			len = (len << 8) | p[2 + j];
		i = 2 + k;
	}
	if (len == 0 || n - i != len)
		return -EINVAL;
	*c = p + i;
	*clen = len;
	return 0;
}

int acme_ari_certid(const unsigned char *der, size_t len, char *out,
		    size_t outsz)
{
	const unsigned char *p = der, *content;
	const ASN1_OCTET_STRING *kid;
	unsigned char *sder = NULL;
	char *a = NULL, *b = NULL;
	X509 *x = NULL;
	size_t clen;
	int n, ret = -EINVAL;

	if (!der || len == 0 || len > ACME_MAX_BODY || !out || outsz == 0)
		goto out;
	out[0] = '\0';
	x = d2i_X509(NULL, &p, (long)len);
	if (!x || p != der + len) /* trailing bytes: not one certificate */
		goto out;
	kid = X509_get0_authority_key_id(x);
	if (!kid || ASN1_STRING_length(kid) <= 0) {
		ret = -ENOENT;
		goto out;
	}
	/* The serial as DER, then its content octets: that keeps the
	 * leading 0x00 of a serial whose high bit is set (§4.1). */
	n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &sder);
	if (n <= 0 || der_int_content(sder, (size_t)n, &content, &clen) < 0)
		goto out;
	a = b64url_encode(ASN1_STRING_get0_data(kid),
			  (size_t)ASN1_STRING_length(kid));
	b = b64url_encode(content, clen);
	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	if ((size_t)snprintf(out, outsz, "%s.%s", a, b) >= outsz) {
		out[0] = '\0';
		ret = -ENOSPC;
		goto out;
	}
	ret = 0;
out:
	free(a);
	free(b);
	OPENSSL_free(sder);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* ---- RFC 3339 timestamps ------------------------------------------------- */

static int digits(const char *s, size_t n, int *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1). */
static int64_t days_from_epoch(int y, int m, int d)
{
	static const int before[12] = {0,   31,  59,  90,  120, 151,
				       181, 212, 243, 273, 304, 334};
	int64_t py = y - 1;
	int64_t days = 365 * py + py / 4 - py / 100 + py / 400;

	days += before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
	return days - 719162; /* days from 0001-01-01 to 1970-01-01 */
}

int acme_ari_time_parse(const char *s, size_t len, int64_t *ms)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, frac_ms = 0;
	size_t i = 19;

	if (!s || !ms || len < 20 || len > ACME_ARI_TIME_MAX)
		return -EINVAL;
	/* date-fullyear "-" date-month "-" date-mday "T" partial-time */
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -EINVAL;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 ||
	    mi > 59 || sec > 60) /* 60: a leap second (§5.7) */
		return -EINVAL;
	/* time-secfrac: one or more digits; kept to the millisecond
	 * (truncated), the rest only checked. */
	if (s[i] == '.') {
		size_t start = ++i;

		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (i - start < 3)
				frac_ms = frac_ms * 10 + (s[i] - '0');
			i++;
		}
		if (i == start)
			return -EINVAL;
		for (size_t k = i - start; k < 3; k++)
			frac_ms *= 10;
	}
	/* time-offset: "Z" / ("+" / "-") time-hour ":" time-minute */
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (len - i < 6 || digits(s + i + 1, 2, &oh) ||
		    s[i + 3] != ':' || digits(s + i + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -EINVAL;
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	/* Local time minus the offset is UTC. A leap second counts as the
	 * first second of the next minute (POSIX time has no 60th). */
	*ms = ((days_from_epoch(y, mo, d) * 86400 + (int64_t)h * 3600 +
		(int64_t)mi * 60 + sec -
		sign * ((int64_t)oh * 3600 + (int64_t)om * 60)) *
	       1000) +
	      frac_ms;
	return 0;
}

int acme_ari_time_format(int64_t ms, char *out, size_t outsz)
{
	int64_t s = ms / 1000, frac = ms % 1000;
	char buf[48];
	struct tm tm;
	time_t t;
	int n;

	if (!out || outsz == 0)
		return -EINVAL;
	out[0] = '\0';
	if (frac < 0) { /* floor, so times before 1970 format too */
		frac += 1000;
		s--;
	}
	t = (time_t)s;
	if (!gmtime_r(&t, &tm) || tm.tm_year < 1 - 1900 ||
	    tm.tm_year > 9999 - 1900)
		return -EINVAL;
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec);
	if (frac)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03d",
			      (int)frac);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Z");
	if ((size_t)n >= outsz)
		return -ENOSPC;
	memcpy(out, buf, (size_t)n + 1);
	return 0;
}

/* ---- the renewalInfo body (§4.2) ----------------------------------------- */

void acme_ari_clear(struct acme_ari *a)
{
	if (!a)
		return;
	free(a->explanation_url);
	memset(a, 0, sizeof(*a));
	a->retry_after_ms = -1;
}

/* An http(s) URL with a host, bounded, without spaces or control
 * characters: it is shown to the operator and written to logs. */
static int explanation_url_ok(const char *s)
{
	size_t len = strlen(s), skip;

	if (len > ACME__URL_MAX)
		return 0;
	if (strncmp(s, "https://", 8) == 0)
		skip = 8;
	else if (strncmp(s, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	if (len == skip || s[skip] == '/' || s[skip] == '?' || s[skip] == '#')
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int window_time(json_t *w, const char *key, int64_t *ms, char *err,
		       size_t errsz)
{
	json_t *v = json_object_get(w, key);

	if (!json_is_string(v)) {
		snprintf(err, errsz, "suggestedWindow.%s is %s", key,
			 v ? "not a string" : "missing");
		return -EINVAL;
	}
	if (acme_ari_time_parse(json_string_value(v), json_string_length(v),
				ms) < 0) {
		snprintf(err, errsz,
			 "suggestedWindow.%s is not an RFC 3339 timestamp", key);
		return -EINVAL;
	}
	if (*ms < ACME_ARI_EARLIEST_MS || *ms >= ACME_ARI_LATEST_MS) {
		snprintf(err, errsz,
			 "suggestedWindow.%s lies outside 2000..2199", key);
		return -EINVAL;
	}
	return 0;
}

int acme_ari_parse(const char *body, size_t len, struct acme_ari *out,
		   char *err, size_t errsz)
{
	json_t *j = NULL, *w, *u;
	json_error_t jerr;
	int64_t start, end;
	int ret = -EINVAL;
	char dummy[1];

	if (!err || errsz == 0) {
		err = dummy;
		errsz = sizeof(dummy);
	}
	err[0] = '\0';
	if (!out)
		return -EINVAL;
	acme_ari_clear(out);
	if (!body || len == 0 || len > ACME_ARI_MAX_BODY) {
		snprintf(err, errsz, "renewalInfo body is %s",
			 body && len ? "too large" : "empty");
		goto out;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		snprintf(err, errsz, "renewalInfo is not a JSON object%s%s",
			 j ? "" : ": ", j ? "" : jerr.text);
		goto out;
	}
	w = json_object_get(j, "suggestedWindow");
	if (!json_is_object(w)) {
		snprintf(err, errsz, "renewalInfo has no suggestedWindow object");
		goto out;
	}
	if (window_time(w, "start", &start, err, errsz) < 0 ||
	    window_time(w, "end", &end, err, errsz) < 0)
		goto out;
	/* §4.2: a window whose end is not after its start is invalid. */
	if (end <= start) {
		snprintf(err, errsz,
			 "suggestedWindow ends before or when it starts");
		goto out;
	}
	u = json_object_get(j, "explanationURL");
	if (u) {
		if (!json_is_string(u) || !explanation_url_ok(json_string_value(u))) {
			snprintf(err, errsz,
				 "explanationURL is not an http(s) URL");
			goto out;
		}
		out->explanation_url = strdup(json_string_value(u));
		if (!out->explanation_url) {
			snprintf(err, errsz, "out of memory");
			ret = -ENOMEM;
			goto out;
		}
	}
	out->start_ms = start;
	out->end_ms = end;
	ret = 0;
out:
	json_decref(j);
	return ret;
}

/* ---- the exchange --------------------------------------------------------- */

enum ari_state { ARI_FETCH = 0, ARI_BACKOFF, ARI_DONE, ARI_FAILED, ARI__MAX };
static const char *const ari_state_names[ARI__MAX] = {
	"fetch", "backoff", "done", "failed",
};

#define ARI_STEP "renewalInfo"

struct acme_ari_op {
	enum ari_state state;
	struct acme_client *c;
	char *url;
	int transient_retries;
	int64_t wake_at;
	struct acme_ari result;
	struct acme_error err;
};

static void set_state(struct acme_ari_op *op, enum ari_state s)
{
	if (op->state != s)
		log_debug("acme", NULL, "renewalInfo %s -> %s",
			  ari_state_names[op->state], ari_state_names[s]);
	op->state = s;
}

/* certid as acme_ari_certid makes it: base64url "." base64url. */
static int certid_ok(const char *id)
{
	size_t len = id ? strlen(id) : 0, dots = 0;

	if (len < 3 || len >= ACME_ARI_CERTID_MAX || id[0] == '.' ||
	    id[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = id[i];

		if (ch == '.')
			dots++;
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return dots == 1;
}

int acme_ari_op_new(struct acme_client *c, const char *certid,
		    struct acme_ari_op **out)
{
	const struct acme_directory *d;
	struct acme_ari_op *op;
	size_t n;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!c || !certid_ok(certid))
		return -EINVAL;
	d = acme_client_directory(c);
	if (!d)
		return -EAGAIN;
	if (!d->renewal_info)
		return -ENOTSUP;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->c = c;
	op->err.retry_after_ms = -1;
	op->result.retry_after_ms = -1;
	/* §4.1: the identifier is appended to the renewalInfo URL as one
	 * more path segment. */
	n = strlen(d->renewal_info);
	if (asprintf(&op->url, "%s%s%s", d->renewal_info,
		     n && d->renewal_info[n - 1] == '/' ? "" : "/",
		     certid) < 0) {
		op->url = NULL;
		free(op);
		return -ENOMEM;
	}
	*out = op;
	return 0;
}

void acme_ari_op_free(struct acme_ari_op *op)
{
	if (!op)
		return;
	free(op->url);
	acme_ari_clear(&op->result);
	acme_error_clear(&op->err);
	free(op);
}

const struct acme_error *acme_ari_op_error(const struct acme_ari_op *op)
{
	return &op->err;
}

const char *acme_ari_op_url(const struct acme_ari_op *op)
{
	return op->url;
}

int acme_ari_op_result(struct acme_ari_op *op, struct acme_ari *out)
{
	if (!op || !out || op->state != ARI_DONE)
		return -EINVAL;
	*out = op->result;
	memset(&op->result, 0, sizeof(op->result));
	op->result.retry_after_ms = -1;
	return 0;
}

enum acme_step acme_ari_op_next(struct acme_ari_op *op, int64_t now_ms,
				struct acme_request *req, int64_t *wake_at)
{
	memset(req, 0, sizeof(*req));
	switch (op->state) {
	case ARI_DONE:
		return ACME_STEP_DONE;
	case ARI_FAILED:
		return ACME_STEP_FAILED;
	case ARI_BACKOFF:
		if (op->wake_at > now_ms) {
			*wake_at = op->wake_at;
			return ACME_STEP_WAIT;
		}
		set_state(op, ARI_FETCH);
		break;
	case ARI_FETCH:
	case ARI__MAX:
		break;
	}
	/* §4.1: a plain GET; the resource is public, so no JWS, no nonce. */
	req->method = ACME_GET;
	req->url = strdup(op->url);
	if (!req->url) {
		acme__error_set(&op->err, ACME_E_INTERNAL, ARI_STEP, NULL,
				"cannot build the request");
		set_state(op, ARI_FAILED);
		return ACME_STEP_FAILED;
	}
	return ACME_STEP_SEND;
}

int acme_ari_op_feed(struct acme_ari_op *op, const struct acme_response *res,
		     int64_t now_ms)
{
	char ra[128], why[256];
	int64_t ms;
	int rc;

	acme_client_take_nonce(op->c, res);
	if (op->state != ARI_FETCH)
		return -EINVAL;
	if (res->status == 200) {
		rc = acme_ari_parse(res->body, res->body_len, &op->result, why,
				    sizeof(why));
		if (rc < 0) {
			acme__error_set(&op->err,
					rc == -ENOMEM ? ACME_E_INTERNAL
						      : ACME_E_PROTOCOL,
					ARI_STEP, NULL, "%s", why);
			op->err.status = 200;
			set_state(op, ARI_FAILED);
			return 0;
		}
		/* §4.3: Retry-After says when to ask again; a value we cannot
		 * read counts as none (the caller polls at its default). */
		if (acme_hdr_get(res->headers, res->headers_len, "Retry-After",
				 0, ra, sizeof(ra)) > 0 &&
		    acme_retry_after_parse(ra, now_ms / 1000, &ms) == 0)
			op->result.retry_after_ms = ms;
		set_state(op, ARI_DONE);
		return 0;
	}
	if (acme__is_transient(res) && op->transient_retries < 3) {
		op->wake_at = now_ms + (1000 << op->transient_retries++);
		set_state(op, ARI_BACKOFF);
		return 0;
	}
	acme__error_from_response(&op->err, res, ARI_STEP, now_ms);
	set_state(op, ARI_FAILED);
	return 0;
}
