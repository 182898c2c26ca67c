/*
 * acme_client.c — one ACME account at one CA: the directory, the nonce
 * pool, the account key and its URL (kid), and the small machine that
 * brings all of that to "ready".
 *
 *     DIRECTORY --GET dir--> NONCE --HEAD newNonce--> ACCOUNT --POST
 *     newAccount--> READY
 *          \________________________________________________\--> FAILED
 *
 * Invariants: in NONCE and later, dir is parsed and complete; in READY,
 * kid is set. The pool only ever holds nonces that passed a length and
 * alphabet check; it is LIFO because a CA expires old nonces first.
 *
 * Also here: the helpers every machine uses to sign POSTs and to turn a
 * failed response into an error value (see acme_internal.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme_internal.h"
#include "util/util.h"

const char *const acme_step_names[ACME_STEP__MAX] = {
	[ACME_STEP_SEND] = "send",
	[ACME_STEP_WAIT] = "wait",
	[ACME_STEP_DONE] = "done",
	[ACME_STEP_FAILED] = "failed",
};

enum client_state {
	CLIENT_DIRECTORY = 0,
	CLIENT_NONCE,
	CLIENT_ACCOUNT,
	CLIENT_READY,
	CLIENT_FAILED,
	CLIENT__MAX
};
static const char *const client_state_names[CLIENT__MAX] = {
	"directory", "nonce", "account", "ready", "failed",
};

struct acme_client {
	enum client_state state;
	EVP_PKEY *key;
	char thumbprint[44];
	char *directory_url;
	char *email;
	int agree_tos;
	int only_existing;
	char *eab_kid;
	unsigned char *eab_hmac;
	size_t eab_hmac_len;
	char *kid;
	struct acme_directory dir;
	int have_dir;
	int https;      /* the directory is https: so must every URL be */
	char *nonces[ACME__NONCE_POOL];
	size_t n_nonces;
	int badnonce_retries;
	int transient_retries;
	int64_t wake_at;
	struct acme_error err;
};

void acme_request_clear(struct acme_request *req)
{
	if (!req)
		return;
	free(req->url);
	free(req->body);
	memset(req, 0, sizeof(*req));
}

static void client_set_state(struct acme_client *c, enum client_state s)
{
	if (c->state != s)
		log_debug("acme", NULL, "client %s -> %s",
			  client_state_names[c->state], client_state_names[s]);
	c->state = s;
}

struct acme_client *acme_client_new(EVP_PKEY *account_key,
				    const struct acme_client_opts *opts)
{
	struct acme_client *c = NULL;

	if (!account_key || !opts || !opts->directory_url ||
	    !acme_jws_alg(account_key))
		return NULL;
	if (!!opts->eab_kid != !!opts->eab_hmac)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->directory_url = strdup(opts->directory_url);
	if (!c->directory_url)
		goto fail;
	c->https = strncmp(c->directory_url, "https://", 8) == 0;
	if (opts->email && !(c->email = strdup(opts->email)))
		goto fail;
	if (opts->account_url && !(c->kid = strdup(opts->account_url)))
		goto fail;
	if (opts->eab_kid) {
		c->eab_kid = strdup(opts->eab_kid);
		c->eab_hmac = malloc(opts->eab_hmac_len ? opts->eab_hmac_len : 1);
		if (!c->eab_kid || !c->eab_hmac)
			goto fail;
		memcpy(c->eab_hmac, opts->eab_hmac, opts->eab_hmac_len);
		c->eab_hmac_len = opts->eab_hmac_len;
	}
	c->agree_tos = opts->agree_tos;
	c->only_existing = opts->only_existing;
	if (acme__client_set_key(c, account_key) < 0)
		goto fail;
	return c;
fail:
	acme_client_free(c);
	return NULL;
}

void acme_client_free(struct acme_client *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->key);
	free(c->directory_url);
	free(c->email);
	free(c->eab_kid);
	if (c->eab_hmac)
		OPENSSL_cleanse(c->eab_hmac, c->eab_hmac_len);
	free(c->eab_hmac);
	free(c->kid);
	acme_directory_clear(&c->dir);
	for (size_t i = 0; i < c->n_nonces; i++)
		free(c->nonces[i]);
	acme_error_clear(&c->err);
	free(c);
}

EVP_PKEY *acme__client_key(struct acme_client *c)
{
	return c->key;
}

int acme__client_set_key(struct acme_client *c, EVP_PKEY *key)
{
	char tp[44];

	if (!acme_jws_alg(key) || acme_jwk_thumbprint(key, tp) < 0)
		return -EINVAL;
	if (!EVP_PKEY_up_ref(key))
		return -ENOMEM;
	EVP_PKEY_free(c->key);
	c->key = key;
	memcpy(c->thumbprint, tp, sizeof(tp));
	return 0;
}

int acme_client_ready(const struct acme_client *c)
{
	return c->state == CLIENT_READY;
}

const struct acme_error *acme_client_error(const struct acme_client *c)
{
	return &c->err;
}

const struct acme_directory *acme_client_directory(const struct acme_client *c)
{
	return c->have_dir ? &c->dir : NULL;
}

const char *acme_client_account_url(const struct acme_client *c)
{
	return c->state == CLIENT_READY ? c->kid : NULL;
}

const char *acme_client_thumbprint(const struct acme_client *c)
{
	return c->thumbprint;
}

size_t acme_client_nonces(const struct acme_client *c)
{
	return c->n_nonces;
}

/* A nonce is base64url (RFC 8555 §6.5.1); anything else is not stored. */
static int nonce_valid(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > ACME__NONCE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = n[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

void acme_client_take_nonce(struct acme_client *c,
			    const struct acme_response *res)
{
	char buf[ACME__NONCE_MAX + 1];
	char *n;

	if (!res || res->status == 0 ||
	    acme_hdr_get(res->headers, res->headers_len, "Replay-Nonce", 0,
			 buf, sizeof(buf)) <= 0 ||
	    !nonce_valid(buf))
		return;
	n = strdup(buf);
	if (!n)
		return;
	if (c->n_nonces == ACME__NONCE_POOL) {
		/* Drop the oldest: it is the likeliest to have expired. */
		free(c->nonces[0]);
		memmove(c->nonces, c->nonces + 1,
			(ACME__NONCE_POOL - 1) * sizeof(c->nonces[0]));
		c->n_nonces--;
	}
	c->nonces[c->n_nonces++] = n;
}

static char *nonce_pop(struct acme_client *c)
{
	if (c->n_nonces == 0)
		return NULL;
	return c->nonces[--c->n_nonces];
}

int acme__client_nonce_request(struct acme_client *c, struct acme_request *req)
{
	memset(req, 0, sizeof(*req));
	if (!c->have_dir)
		return -EINVAL;
	req->method = ACME_HEAD;
	req->url = strdup(c->dir.new_nonce);
	return req->url ? 0 : -ENOMEM;
}

int acme__client_post(struct acme_client *c, const char *url,
		      const char *payload, EVP_PKEY *jwk_key,
		      struct acme_request *req)
{
	char *nonce;
	int rc = 0;

	memset(req, 0, sizeof(*req));
	if (!jwk_key && !c->kid)
		return -EINVAL;
	nonce = nonce_pop(c);
	if (!nonce)
		return -EAGAIN;
	req->method = ACME_POST;
	req->url = strdup(url);
	req->body = acme_jws_sign(jwk_key ? jwk_key : c->key,
				  jwk_key ? NULL : c->kid, nonce, url, payload);
	if (!req->url || !req->body) {
		acme_request_clear(req);
		rc = -ENOMEM;
		goto out;
	}
	req->body_len = strlen(req->body);
out:
	free(nonce);
	return rc;
}

char *acme__header(const struct acme_response *res, const char *name, int idx)
{
	char buf[8192];

	if (acme_hdr_get(res->headers, res->headers_len, name, idx, buf,
			 sizeof(buf)) < 0)
		return NULL;
	return strdup(buf);
}

void acme__error_set(struct acme_error *e, enum acme_errc code,
		     const char *step, const char *identifier,
		     const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	acme_error_clear(e);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	e->code = code;
	e->step = step;
	e->detail = strdup(buf);
	e->identifier = identifier ? strdup(identifier) : NULL;
	e->retry_after_ms = -1;
}

void acme__error_from_response(struct acme_error *e,
			       const struct acme_response *res,
			       const char *step, int64_t now_ms)
{
	char ra[128];
	int64_t ms;

	if (res->status == 0) {
		acme__error_set(e, ACME_E_TRANSPORT, step, NULL,
				"no response from the CA: %s",
				res->transport_error ? res->transport_error
						     : "transport error");
		return;
	}
	acme_error_clear(e);
	if (acme_problem_parse(res->body, res->body_len, e) == 0) {
		e->code = ACME_E_PROBLEM;
	} else {
		acme__error_set(e, ACME_E_PROTOCOL, step, NULL,
				"unexpected HTTP status %ld from the CA",
				res->status);
	}
	e->step = step;
	e->status = (int)res->status;
	e->retry_after_ms = -1;
	if (acme_hdr_get(res->headers, res->headers_len, "Retry-After", 0, ra,
			 sizeof(ra)) > 0 &&
	    acme_retry_after_parse(ra, now_ms / 1000, &ms) == 0)
		e->retry_after_ms = ms;
}

/* The problem type of a response, if it carries one; scratch e. */
static int response_problem_is(const struct acme_response *res,
			       const char *type)
{
	struct acme_error e = {0};
	int is = 0;

	if (res->status >= 400 &&
	    acme_problem_parse(res->body, res->body_len, &e) == 0)
		is = e.type && strcmp(e.type, type) == 0;
	acme_error_clear(&e);
	return is;
}

int acme__is_bad_nonce(const struct acme_response *res)
{
	return res->status == 400 && response_problem_is(res, "badNonce");
}

int acme__is_transient(const struct acme_response *res)
{
	return res->status == 0 || res->status >= 500 ||
	       response_problem_is(res, "serverInternal");
}

json_t *acme__json_body(const struct acme_response *res, const char *step,
			struct acme_error *e)
{
	json_error_t jerr;
	json_t *j;

	if (!res->body || res->body_len == 0 || res->body_len > ACME_MAX_BODY) {
		acme__error_set(e, ACME_E_PROTOCOL, step, NULL,
				"CA response body is %s",
				res->body_len ? "too large" : "empty");
		return NULL;
	}
	j = json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		acme__error_set(e, ACME_E_PROTOCOL, step, NULL,
				"CA response is not a JSON object: %s",
				j ? "wrong type" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

int acme__url_ok(const struct acme_client *c, const char *s)
{
	size_t len;

	if (!s)
		return 0;
	len = strlen(s);
	/* Once the directory is https, every URL must be: a plain-http URL
	 * would carry signed requests and certificates in clear text. */
	if (len > ACME__URL_MAX ||
	    (strncmp(s, "https://", 8) != 0 &&
	     (c->https || strncmp(s, "http://", 7) != 0)))
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

char *acme__json_url(const struct acme_client *c, json_t *obj,
		     const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return acme__url_ok(c, s) ? strdup(s) : NULL;
}

char *acme__header_url(const struct acme_client *c,
		       const struct acme_response *res, const char *name)
{
	char *v = acme__header(res, name, 0);

	if (v && !acme__url_ok(c, v)) {
		free(v);
		v = NULL;
	}
	return v;
}

/* Every URL of the directory passes acme__url_ok (no https -> http). */
static int dir_urls_ok(const struct acme_client *c)
{
	const char *const u[] = {c->dir.new_nonce, c->dir.new_account,
				 c->dir.new_order, c->dir.revoke_cert,
				 c->dir.key_change, c->dir.renewal_info};

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (u[i] && !acme__url_ok(c, u[i]))
			return 0;
	return 1;
}

/* newAccount payload: contact, ToS, EAB (RFC 8555 §7.3, §7.3.4). */
static char *account_payload(struct acme_client *c)
{
	json_t *p = json_object();
	char *out = NULL;

	if (!p)
		return NULL;
	if (c->only_existing) { /* RFC 8555 §7.3.1: look up, never create */
		json_object_set_new(p, "onlyReturnExisting", json_true());
		goto dump;
	}
	if (c->email) {
		char mailto[512];
		snprintf(mailto, sizeof(mailto), "mailto:%s", c->email);
		json_object_set_new(p, "contact", json_pack("[s]", mailto));
	}
	if (c->agree_tos)
		json_object_set_new(p, "termsOfServiceAgreed", json_true());
	if (c->eab_kid) {
		json_t *eab = acme_eab_jws(c->eab_kid, c->eab_hmac,
					   c->eab_hmac_len, c->key,
					   c->dir.new_account);
		if (!eab)
			goto out;
		json_object_set_new(p, "externalAccountBinding", eab);
	}
dump:
	out = json_dumps(p, JSON_COMPACT);
out:
	json_decref(p);
	return out;
}

enum acme_step acme_client_next(struct acme_client *c, int64_t now_ms,
				struct acme_request *req, int64_t *wake_at)
{
	char *payload;
	int rc;

	memset(req, 0, sizeof(*req));
	if (c->state == CLIENT_READY)
		return ACME_STEP_DONE;
	if (c->state == CLIENT_FAILED)
		return ACME_STEP_FAILED;
	if (c->wake_at > now_ms) {
		*wake_at = c->wake_at;
		return ACME_STEP_WAIT;
	}
	switch (c->state) {
	case CLIENT_DIRECTORY:
		req->method = ACME_GET;
		req->url = strdup(c->directory_url);
		break;
	case CLIENT_NONCE:
		if (acme__client_nonce_request(c, req) < 0)
			goto internal;
		break;
	case CLIENT_ACCOUNT:
		payload = account_payload(c);
		if (!payload)
			goto internal;
		rc = acme__client_post(c, c->dir.new_account, payload, c->key,
				       req);
		free(payload);
		if (rc == -EAGAIN) {
			client_set_state(c, CLIENT_NONCE);
			return acme_client_next(c, now_ms, req, wake_at);
		}
		if (rc < 0)
			goto internal;
		break;
	default:
		goto internal;
	}
	if (!req->url)
		goto internal;
	return ACME_STEP_SEND;
internal:
	acme_request_clear(req);
	acme__error_set(&c->err, ACME_E_INTERNAL, client_state_names[c->state],
			NULL, "cannot build the request (out of memory?)");
	client_set_state(c, CLIENT_FAILED);
	return ACME_STEP_FAILED;
}

/* Retry a transient failure a few times with backoff before giving up. */
static int client_retry(struct acme_client *c,
			const struct acme_response *res, int64_t now_ms)
{
	if (acme__is_bad_nonce(res) &&
	    c->badnonce_retries++ < ACME_MAX_BADNONCE_RETRIES)
		return 1;
	if (acme__is_transient(res) && c->transient_retries < 3) {
		c->wake_at = now_ms + (1000 << c->transient_retries++);
		return 1;
	}
	return 0;
}

int acme_client_feed(struct acme_client *c, const struct acme_response *res,
		     int64_t now_ms)
{
	char err[256];
	json_t *j = NULL;
	int rc = 0;

	acme_client_take_nonce(c, res);
	if (c->state == CLIENT_DIRECTORY) {
		if (res->status != 200) {
			if (client_retry(c, res, now_ms))
				goto out;
			acme__error_from_response(&c->err, res, "directory",
						  now_ms);
			goto fail;
		}
		acme_directory_clear(&c->dir);
		if (acme_directory_parse(res->body, res->body_len, &c->dir, err,
					 sizeof(err)) < 0) {
			acme__error_set(&c->err, ACME_E_PROTOCOL, "directory",
					NULL, "bad ACME directory at %s: %s",
					c->directory_url, err);
			goto fail;
		}
		if (!dir_urls_ok(c)) {
			acme__error_set(&c->err, ACME_E_PROTOCOL, "directory",
					NULL,
					"the https directory at %s lists a "
					"plain-http URL",
					c->directory_url);
			goto fail;
		}
		c->have_dir = 1;
		if (c->dir.eab_required && !c->eab_kid) {
			acme__error_set(&c->err, ACME_E_PROTOCOL, "directory",
					NULL,
					"the CA requires external account "
					"binding: give --eab-kid and "
					"--eab-hmac-key");
			goto fail;
		}
		c->transient_retries = 0;
		client_set_state(c, CLIENT_NONCE);
	} else if (c->state == CLIENT_NONCE) {
		if (res->status != 200 && res->status != 204) {
			if (client_retry(c, res, now_ms))
				goto out;
			acme__error_from_response(&c->err, res, "newNonce",
						  now_ms);
			goto fail;
		}
		if (c->n_nonces == 0) {
			acme__error_set(&c->err, ACME_E_PROTOCOL, "newNonce",
					NULL, "the CA sent no Replay-Nonce");
			goto fail;
		}
		client_set_state(c, CLIENT_ACCOUNT);
	} else if (c->state == CLIENT_ACCOUNT) {
		char *kid;
		const char *status;

		if (res->status != 200 && res->status != 201) {
			if (client_retry(c, res, now_ms))
				goto out;
			acme__error_from_response(&c->err, res, "newAccount",
						  now_ms);
			goto fail;
		}
		kid = acme__header_url(c, res, "Location");
		if (!kid) {
			acme__error_set(&c->err, ACME_E_PROTOCOL, "newAccount",
					NULL, "the CA sent no account URL");
			goto fail;
		}
		j = acme__json_body(res, "newAccount", &c->err);
		if (!j) {
			free(kid);
			goto fail;
		}
		status = json_string_value(json_object_get(j, "status"));
		if (status && strcmp(status, "valid") != 0) {
			free(kid);
			acme__error_set(&c->err, ACME_E_PROTOCOL, "newAccount",
					NULL, "account is %s", status);
			goto fail;
		}
		free(c->kid);
		c->kid = kid;
		log_info("acme", NULL, "account %s %s", kid,
			 res->status == 201 ? "created" : "reused");
		client_set_state(c, CLIENT_READY);
	}
	goto out;
fail:
	client_set_state(c, CLIENT_FAILED);
	rc = 0;
out:
	json_decref(j);
	return rc;
}
