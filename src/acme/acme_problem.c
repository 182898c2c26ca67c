/*
 * acme_problem — ACME failures as data: the error codes, problem documents
 * (RFC 7807 as profiled by RFC 8555 §6.7) parsed into struct acme_error,
 * a one-line rendering for logs, and the policy question every retry loop
 * asks: can trying again help?
 *
 * Why a separate file: every machine (client, order, op) turns a CA's
 * error response into the same struct, and the engine's backoff decides
 * from it; one parser and one permanence table keep them consistent.
 *
 * The body is peer input: bounded by ACME_MAX_BODY, strings kept as sent
 * (UTF-8) but control characters are masked when rendered for logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme.h"

#define ACME_ERR_PREFIX "urn:ietf:params:acme:error:"
/* More subproblems than this only make logs longer; the rest are dropped. */
#define PROBLEM_MAX_SUB 100

/* clang-format off: one name per line reads better than bin-packed */
const char *const acme_errc_names[ACME_E__MAX] = {
    [ACME_E_NONE] = "none",	      [ACME_E_PROBLEM] = "problem",
    [ACME_E_TRANSPORT] = "transport", [ACME_E_PROTOCOL] = "protocol",
    [ACME_E_INVALID] = "invalid",     [ACME_E_TIMEOUT] = "timeout",
    [ACME_E_INTERNAL] = "internal",
};
/* clang-format on */

static void sub_clear(struct acme_subproblem *s)
{
	free(s->type);
	free(s->detail);
	free(s->identifier);
	s->type = s->detail = s->identifier = NULL;
}

void acme_error_clear(struct acme_error *e)
{
	size_t i;

	if (!e)
		return;
	free(e->type);
	free(e->detail);
	free(e->identifier);
	for (i = 0; i < e->n_sub; i++)
		sub_clear(&e->sub[i]);
	free(e->sub);
	memset(e, 0, sizeof(*e));
	e->retry_after_ms = -1;
}

/* ---- rendering ----------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t sz, len;
};

/*
 * Append s, masking control characters: details and identifiers come
 * from the CA, and a newline in them would let it forge log lines.
 */
static void sb_put(struct sbuf *b, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (b->len + 1 >= b->sz)
			break;
		b->p[b->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	b->p[b->len] = '\0';
}

/* label and a number, e.g. "HTTP 429". */
static void sb_num(struct sbuf *b, const char *label, long long v,
		   const char *unit)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%lld", v);
	sb_put(b, label);
	sb_put(b, tmp);
	sb_put(b, unit);
}

const char *acme_error_str(const struct acme_error *e, char *buf, size_t sz)
{
	struct sbuf b = {buf, sz, 0};
	const char *sep = " (";
	size_t i;

	if (!buf || sz == 0)
		return "";
	buf[0] = '\0';
	if (!e || e->code == ACME_E_NONE) {
		sb_put(&b, "no error");
		goto out;
	}
	if (e->type)
		sb_put(&b, e->type);
	else if ((unsigned)e->code < ACME_E__MAX)
		sb_put(&b, acme_errc_names[e->code]);
	else
		sb_put(&b, "unknown");
	sb_put(&b, ": ");
	sb_put(&b, e->detail ? e->detail : "no detail");
	if (e->identifier) {
		sb_put(&b, sep);
		sb_put(&b, "domain ");
		sb_put(&b, e->identifier);
		sep = ", ";
	}
	if (e->step) {
		sb_put(&b, sep);
		sb_put(&b, "step ");
		sb_put(&b, e->step);
		sep = ", ";
	}
	if (e->status > 0) {
		sb_put(&b, sep);
		sb_num(&b, "HTTP ", e->status, "");
		sep = ", ";
	}
	if (e->retry_after_ms >= 0) {
		sb_put(&b, sep);
		sb_num(&b, "retry after ", (e->retry_after_ms + 999) / 1000,
		       "s");
		sep = ", ";
	}
	if (sep[0] == ',')
		sb_put(&b, ")");
	for (i = 0; i < e->n_sub; i++) {
		const struct acme_subproblem *s = &e->sub[i];

		sb_put(&b, i == 0 ? "; " : ", ");
		if (s->identifier) {
			sb_put(&b, s->identifier);
			sb_put(&b, " ");
		}
		sb_put(&b, s->type ? s->type : "?");
		if (s->detail) {
			sb_put(&b, ": ");
			sb_put(&b, s->detail);
		}
	}
out:
	return buf;
}

/* ---- parsing ------------------------------------------------------------- */

/* Problem type as we keep it: the ACME namespace is implied, other URIs
 * (RFC 7807 allows any) are kept whole so they stay recognizable. */
static char *type_dup(const char *t)
{
	size_t n = strlen(ACME_ERR_PREFIX);

	if (strncasecmp(t, ACME_ERR_PREFIX, n) == 0 && t[n])
		t += n;
	return strdup(t);
}

static const char *str_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "identifier": {"type": "dns", "value": "example.com"} -> the value */
static const char *ident_value(json_t *o)
{
	json_t *id = json_object_get(o, "identifier");

	return json_is_object(id) ? str_member(id, "value") : NULL;
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

/*
 * Subproblems (RFC 8555 §6.7.1). Entries that are not objects or have no
 * type are skipped: one malformed entry should not hide the others.
 */
static int parse_subs(json_t *arr, struct acme_subproblem **out, size_t *n)
{
	struct acme_subproblem *subs = NULL;
	size_t i, cnt = 0, max;
	int ret = 0;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		goto out;
	max = json_array_size(arr);
	if (max > PROBLEM_MAX_SUB)
		max = PROBLEM_MAX_SUB;
	subs = calloc(max, sizeof(*subs));
	if (!subs) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < max; i++) {
		json_t *s = json_array_get(arr, i);
		const char *type = str_member(s, "type");
		struct acme_subproblem *d = &subs[cnt];

		if (!json_is_object(s) || !type || !*type)
			continue;
		d->type = type_dup(type);
		if (!d->type || dup_opt(&d->detail, str_member(s, "detail")) ||
		    dup_opt(&d->identifier, ident_value(s))) {
			cnt++; /* so the partial entry is freed below */
			ret = -ENOMEM;
			goto out;
		}
		cnt++;
	}
out:
	if (ret < 0) {
		for (i = 0; i < cnt; i++)
			sub_clear(&subs[i]);
		free(subs);
		subs = NULL;
		cnt = 0;
	} else if (cnt == 0) {
		free(subs);
		subs = NULL;
	}
	*out = subs;
	*n = cnt;
	return ret;
}

static void set_protocol_error(struct acme_error *e, const char *why)
{
	free(e->detail);
	e->detail = strdup(why);
	e->code = ACME_E_PROTOCOL;
}

int acme_problem_parse(const char *body, size_t len, struct acme_error *e)
{
	json_t *root = NULL;
	const char *type, *detail;
	struct acme_subproblem *subs = NULL;
	size_t n_sub = 0, i;
	char *ntype = NULL, *ndetail = NULL, *nident = NULL;
	json_t *st;
	int ret = -EINVAL;

	if (!e)
		goto out;
	if (!body || len == 0) {
		set_protocol_error(e, "empty error body");
		goto out;
	}
	if (len > ACME_MAX_BODY) {
		set_protocol_error(e, "error body too large");
		goto out;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		set_protocol_error(e, "error body is not a JSON object");
		goto out;
	}
	/* RFC 7807 lets "type" default to about:blank, but ACME CAs always
	 * send it; without it we would be guessing that an arbitrary object
	 * (an order, say) is an error. */
	type = str_member(root, "type");
	if (!type || !*type) {
		set_protocol_error(e, "error body is not a problem document");
		goto out;
	}
	detail = str_member(root, "detail");
	if (!detail || !*detail)
		detail = str_member(root, "title");
	if (!detail || !*detail)
		detail = "no detail given";
	ntype = type_dup(type);
	ndetail = strdup(detail);
	if (!ntype || !ndetail || dup_opt(&nident, ident_value(root)) ||
	    parse_subs(json_object_get(root, "subproblems"), &subs, &n_sub)) {
		ret = -ENOMEM;
		goto out;
	}
	/* Everything parsed: only now replace what e held, leaving the
	 * fields the caller owns (step, retry_after_ms) alone. */
	free(e->type);
	free(e->detail);
	for (i = 0; i < e->n_sub; i++)
		sub_clear(&e->sub[i]);
	free(e->sub);
	e->type = ntype;
	e->detail = ndetail;
	ntype = ndetail = NULL;
	if (nident) {
		free(e->identifier);
		e->identifier = nident;
		nident = NULL;
	}
	e->sub = subs;
	e->n_sub = n_sub;
	subs = NULL;
	n_sub = 0;
	/* "status" repeats the HTTP status; a sane one is taken, otherwise
	 * the caller's (from the response line) stays. */
	st = json_object_get(root, "status");
	if (json_is_integer(st) && json_integer_value(st) >= 100 &&
	    json_integer_value(st) <= 599)
		e->status = (int)json_integer_value(st);
	e->code = ACME_E_PROBLEM;
	ret = 0;
out:
	if (ret == -ENOMEM && e) {
		set_protocol_error(e, "out of memory parsing error body");
		e->code = ACME_E_INTERNAL;
	}
	for (i = 0; i < n_sub; i++)
		sub_clear(&subs[i]);
	free(subs);
	free(ntype);
	free(ndetail);
	free(nident);
	json_decref(root);
	return ret;
}

/*
 * Problem types after which sending the same request again cannot
 * succeed without a human (or a configuration change) acting first. The
 * engine stops retrying an order on these instead of burning the CA's
 * failed-validation and order limits.
 *
 * Deliberately NOT here, so they are retried with backoff:
 *  - badNonce, rateLimited, serverInternal, orderNotReady: transient by
 *    definition.
 *  - connection, dns, tls, incorrectResponse: validation failures that
 *    usually come from DNS propagation, a web server restart or a
 *    firewall blip, and fix themselves.
 *  - unauthorized: Let's Encrypt uses it for failed HTTP-01 validations
 *    (a 404 on the challenge path) as well as for real authorization
 *    failures; the first kind is as transient as incorrectResponse.
 *  - compound: only its subproblems say what happened; callers look at
 *    them.
 *  - anything unknown, including non-ACME type URIs: assume transient,
 *    since backoff bounds the cost of being wrong.
 */
static const char *const permanent_types[] = {
    "accountDoesNotExist", /* needs a new account, not a retry */
    "alreadyRevoked",	   /* nothing left to do */
    "alreadyReplaced",	   /* RFC 9773: the "replaces" id is used up */
    "badCSR",
    "badPublicKey",
    "badRevocationReason",
    "badSignatureAlgorithm", /* the key type must change */
    "caa",		     /* the domain's CAA records forbid this CA */
    "externalAccountRequired",
    "invalidContact",
    "invalidProfile",	  /* profile name unknown to the CA */
    "malformed",	  /* the same bytes will be refused again */
    "rejectedIdentifier", /* CA policy refuses the name */
    "unsupportedContact",
    "unsupportedIdentifier",
    "userActionRequired", /* e.g. new terms of service to accept */
};

int acme_problem_is_permanent(const char *type)
{
	size_t i;

	if (!type)
		return 0;
	for (i = 0; i < sizeof(permanent_types) / sizeof(permanent_types[0]);
	     i++)
		if (strcmp(type, permanent_types[i]) == 0)
			return 1;
	return 0;
}
