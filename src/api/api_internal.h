/*
 * api_internal.h — what the api_ files share: one request as the handlers
 * see it (no libmicrohttpd types: api_server.c translates), the reply they
 * fill, and the pure JSON helpers of api_json.c (also used by the fuzzer).
 * Internal names are api__*.
 */
#ifndef CERTHERD_API_INTERNAL_H
#define CERTHERD_API_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "store/store.h"
#include "util/util.h"

#define API_ARGS_MAX 8 /* query parameters in one request */

struct api_arg {
	const char *key;   /* borrowed from libmicrohttpd, valid for the call */
	const char *value; /* NULL for "?key" without '=' */
};

/* What a handler produces. Exactly one of json and text is set. */
struct api_reply {
	unsigned status;
	json_t *json; /* owned; problem documents included */
	int problem;  /* json is a problem document */
	char *text;   /* owned (malloc'd), with text_len */
	size_t text_len;
	const char *content_type; /* for text; static */
	const char *allow;	  /* Allow header for 405; static */
	int retry_after_s;	  /* > 0: Retry-After header */
};

/* One request, as a handler sees it. */
struct api_call {
	struct store *st; /* this listener's own handle */
	const struct api_hooks *hooks;
	int64_t now_ms;	  /* wall clock read once at the edge */
	const char *body; /* request body (not NUL-terminated), may be NULL */
	size_t body_len;
	struct api_arg args[API_ARGS_MAX];
	size_t n_args;
	struct api_reply reply;
};

/* ---- replies (api_server.c) ------------------------------------------ */

/*
 * Make reply a problem document {"type": "urn:certherd:problem:<kind>",
 * "title", "status", "detail"} and return it (borrowed from c->reply) so
 * the caller can add members; NULL only when out of memory (the server
 * then answers a bare 500).
 */
json_t *api__problem(struct api_call *c, unsigned status, const char *kind,
		     const char *title, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A problem for a store error rc (negative errno): -EBUSY gives 503 with
 * Retry-After, anything else 500 naming what failed. */
void api__store_problem(struct api_call *c, int rc, const char *what);
/* Take ownership of obj (NULL: out of memory -> 500) as the reply. */
void api__json(struct api_call *c, unsigned status, json_t *obj);
/* Value of query parameter key, or NULL if absent. */
const char *api__arg(const struct api_call *c, const char *key);

/* ---- handlers (api_domains.c, api_status.c) -------------------------- */

void api__domains_add(struct api_call *c);
void api__domains_list(struct api_call *c);
/* raw_name is the path segment as decoded by the HTTP layer */
void api__domain_show(struct api_call *c, const char *raw_name);
void api__domain_delete(struct api_call *c, const char *raw_name);
void api__domain_renew(struct api_call *c, const char *raw_name);
void api__status(struct api_call *c);
void api__metrics(struct api_call *c);

/* ---- pure JSON helpers (api_json.c) ---------------------------------- */

struct api_name {
	const char *input;	     /* borrowed from the parsed document */
	char norm[NAME_MAX_LEN + 1]; /* normalized, "" if invalid */
	char reason[256];	     /* why invalid, "" if valid */
	int dup;		     /* normalizes to an earlier entry's name */
};

struct api_names {
	json_t *root;	    /* the parsed body, owns every input string */
	struct api_name *v; /* malloc'd, n entries, in request order */
	size_t n;
	size_t n_invalid;
	size_t first_invalid; /* index of the first invalid entry */
	char challenge[16];   /* "http-01", "dns-01", or "" (automatic) */
};

/*
 * Parse a POST /v1/domains body: an object with exactly one of "names"
 * (array of 1..API_MAX_NAMES strings) or "name" (a string), and optionally
 * "challenge" ("http-01" or "dns-01", for all the names), no other
 * member. Every name is normalized (name_normalize, wildcards allowed
 * unless the challenge is http-01: only DNS-01 proves them); invalid
 * names are not an error here but are counted in n_invalid with a reason,
 * so the caller can reject the whole request listing all of them.
 * Returns 0 (release out with api__names_free), -EINVAL for a body that
 * is not such an object (err says what is wrong), -E2BIG for more than
 * API_MAX_NAMES names, -ENOMEM.
 */
int api__names_parse(const char *body, size_t len, struct api_names *out,
		     char *err, size_t errsz);
void api__names_free(struct api_names *n); /* NULL ok */

/* "2026-11-28T04:00:00Z" (milliseconds dropped) into out; 0 or -EINVAL
 * for a time before 1970 or after 9999. */
int api__rfc3339(int64_t ms, char *out, size_t outsz);
/* The RFC 3339 string of ms, or JSON null for STORE_NO_TIME or a time
 * that cannot be shown. New reference; NULL if out of memory. */
json_t *api__time(int64_t ms);
/* A JSON string of s cut to at most max bytes on a UTF-8 boundary, with
 * invalid UTF-8 replaced by '?'. New reference; NULL if out of memory. */
json_t *api__str(const char *s, size_t max);
/* The stored last error as a problem document: {"type", "detail",
 * "status", "step", "retry_after"}; new reference or NULL. */
json_t *api__last_error(const struct store_domain *d);

#endif
