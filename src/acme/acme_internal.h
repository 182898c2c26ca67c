/*
 * Internals shared by the files of the acme module (acme__ prefix). Not
 * part of the module's interface: only the acme module's .c files and unit tests that
 * need to reach inside include this.
 */
#ifndef CERTHERD_ACME_INTERNAL_H
#define CERTHERD_ACME_INTERNAL_H

#include "acme/acme.h"

#define ACME__NONCE_POOL 256 /* nonces kept; older ones are dropped */
#define ACME__NONCE_MAX 256  /* longest nonce accepted from a CA */
#define ACME__URL_MAX 2048   /* longest URL accepted from a CA */

/* Borrowed views of the client for orders and operations. */
EVP_PKEY *acme__client_key(struct acme_client *c);
/* Replace the account key (after keyChange); a reference is taken. */
int acme__client_set_key(struct acme_client *c, EVP_PKEY *key);

/*
 * Build a signed POST to url into *req. payload NULL means POST-as-GET.
 * jwk_key non-NULL signs with that key in jwk form (newAccount,
 * revocation by certificate key); otherwise the account key and kid.
 * Returns 0, -EAGAIN when the nonce pool is empty (send the request from
 * acme__client_nonce_request first), or another negative errno.
 */
int acme__client_post(struct acme_client *c, const char *url,
		      const char *payload, EVP_PKEY *jwk_key,
		      struct acme_request *req);
/* HEAD newNonce into *req; 0 or negative errno. */
int acme__client_nonce_request(struct acme_client *c,
			       struct acme_request *req);

/*
 * Fill e from a failed response (transport error, problem document, or an
 * unexpected status) at step, with the Retry-After header if any.
 */
void acme__error_from_response(struct acme_error *e,
			       const struct acme_response *res,
			       const char *step, int64_t now_ms);
/* Set e to a local or protocol error with a formatted detail. */
void acme__error_set(struct acme_error *e, enum acme_errc code,
		     const char *step, const char *identifier,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 1 if the response is a badNonce problem (retry with a fresh nonce). */
int acme__is_bad_nonce(const struct acme_response *res);
/* 1 if the failure is worth retrying the same request soon: no response,
 * 5xx, or serverInternal. */
int acme__is_transient(const struct acme_response *res);
/* Parse a JSON object body (bounded); NULL with e filled on failure. */
json_t *acme__json_body(const struct acme_response *res, const char *step,
			struct acme_error *e);
/* 1 if s is an http(s) URL we accept from a CA: bounded length, no
 * spaces or control characters, and https when the directory is. */
int acme__url_ok(const struct acme_client *c, const char *s);
/* The first header name as a URL we accept (malloc'd), or NULL. */
char *acme__header_url(const struct acme_client *c,
		       const struct acme_response *res, const char *name);
/* Copy a string member that must be a URL; NULL if absent or invalid. */
char *acme__json_url(const struct acme_client *c, json_t *obj,
		     const char *key);
/* Copy a header value (malloc'd) or NULL. */
char *acme__header(const struct acme_response *res, const char *name,
		   int idx);

#endif
