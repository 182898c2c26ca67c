/*
 * acme_order.c — one certificate order, from newOrder to the downloaded
 * chain (RFC 8555 §7.4, §7.5, §7.1.6), as a state machine driven through
 * acme_order_next / acme_order_feed.
 *
 *   NEW --newOrder (or fetch a resumed order URL)--> by order status:
 *        pending -> AUTHZ   ready -> FINALIZE   processing -> POLL_ORDER
 *        valid -> DOWNLOAD  invalid -> FAILED
 *   AUTHZ       fetch every authorization; valid ones need nothing,
 *               pending ones get their key authorization published
 *   PUBLISH     a publish is pending (DNS-01: update sent, waiting for
 *               the authoritative servers): nothing to send until the
 *               driver calls acme_order_chall_ready, or the poll
 *               deadline passes (-> FAILED)
 *   RESPOND     POST {} to each pending challenge whose response is
 *               published (ready)
 *   POLL_AUTHZ  poll each authorization until valid (Retry-After or
 *               capped backoff, bounded by a deadline); invalid -> FAILED
 *   FINALIZE    POST the CSR; -> POLL_ORDER or DOWNLOAD
 *   POLL_ORDER  poll the order until valid
 *   DOWNLOAD    fetch the chain; with a preferred issuer that the default
 *               chain does not end in, try each Link rel="alternate"
 *   ALTERNATE   -> VALID (preferred chain, or the default when none match)
 *
 * Invariants: from AUTHZ on, url and finalize_url are set and n_authz >= 1;
 * in RESPOND, cursor indexes an authorization not yet valid whose response
 * is ready; in POLL_AUTHZ, one not yet valid that was answered; in
 * PUBLISH, some authorization is neither valid nor ready and none is
 * ready to answer or to poll; in DOWNLOAD, cert_url is set; in VALID, cert holds a chain
 * whose leaf covers every requested name. Any request may first be
 * replaced by a newNonce when the pool is empty (pending_nonce). A
 * badNonce answer repeats the same request; transient failures (no
 * response, 5xx) repeat it after a short backoff, a few times at most.
 * Published challenge responses are always withdrawn on VALID or FAILED.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme_internal.h"
#include "crypto/crypto.h"
#include "util/util.h"

#define POLL_FIRST_MS 300
#define POLL_MAX_MS 10000
#define POLL_DEFAULT_DEADLINE_MS (10 * 60 * 1000)
#define TRANSIENT_RETRIES 3
#define MAX_AUTHZ 100
#define MAX_ALTERNATES 8

const char *const acme_order_state_names[ACME_ORDER__MAX] = {
	[ACME_ORDER_NEW] = "new",
	[ACME_ORDER_AUTHZ] = "authz",
	[ACME_ORDER_PUBLISH] = "publish",
	[ACME_ORDER_RESPOND] = "respond",
	[ACME_ORDER_POLL_AUTHZ] = "poll-authz",
	[ACME_ORDER_FINALIZE] = "finalize",
	[ACME_ORDER_POLL_ORDER] = "poll-order",
	[ACME_ORDER_DOWNLOAD] = "download",
	[ACME_ORDER_ALTERNATE] = "alternate",
	[ACME_ORDER_VALID] = "valid",
	[ACME_ORDER_FAILED] = "failed",
};

/* The ACME step named in errors, per state. */
static const char *const state_step[ACME_ORDER__MAX] = {
	[ACME_ORDER_NEW] = "newOrder",
	[ACME_ORDER_AUTHZ] = "authorization",
	[ACME_ORDER_PUBLISH] = "challenge",
	[ACME_ORDER_RESPOND] = "challenge",
	[ACME_ORDER_POLL_AUTHZ] = "validation",
	[ACME_ORDER_FINALIZE] = "finalize",
	[ACME_ORDER_POLL_ORDER] = "issuance",
	[ACME_ORDER_DOWNLOAD] = "download",
	[ACME_ORDER_ALTERNATE] = "download",
	[ACME_ORDER_VALID] = "done",
	[ACME_ORDER_FAILED] = "done",
};

struct authz {
	char *url;
	char *domain;    /* as the CA names it, "*." restored for wildcards */
	char *chall_url;
	char *token;
	int valid;
	int published;
	int ready;       /* the published response is available */
	int responded;
};

struct acme_order {
	struct acme_client *c;
	enum acme_order_state state;
	char **names;
	size_t n_names;
	unsigned char *csr;
	size_t csr_len;
	enum acme_chall_type chall;
	char *profile, *replaces, *preferred_issuer;
	int64_t poll_deadline_ms;
	struct acme_challenge_hooks hooks;

	char *url, *finalize_url, *cert_url;
	struct authz *authz;
	size_t n_authz;
	size_t cursor;
	char *alt_urls[MAX_ALTERNATES];
	size_t n_alt;
	char *cert;
	size_t cert_len;

	int pending_nonce;
	int badnonce_retries;
	int transient_retries;
	int64_t wake_at;
	int64_t poll_started;
	int64_t poll_interval;
	struct acme_error err;
};

static void set_state(struct acme_order *o, enum acme_order_state s)
{
	if (o->state != s)
		log_debug("acme", o->names[0], "order %s -> %s",
			  acme_order_state_names[o->state],
			  acme_order_state_names[s]);
	if (s != ACME_ORDER_POLL_AUTHZ && s != ACME_ORDER_POLL_ORDER)
		o->poll_started = 0;
	o->state = s;
	o->cursor = 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct acme_order *acme_order_new(struct acme_client *c,
				  const struct acme_order_opts *opts,
				  const struct acme_challenge_hooks *hooks)
{
	struct acme_order *o;

	if (!c || !opts || opts->n_names == 0 || !opts->names ||
	    !opts->csr_der || opts->csr_len == 0 ||
	    opts->chall >= ACME_CHALL__MAX)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->c = c;
	o->names = calloc(opts->n_names, sizeof(char *));
	o->csr = malloc(opts->csr_len);
	if (!o->names || !o->csr)
		goto fail;
	o->n_names = opts->n_names;
	for (size_t i = 0; i < opts->n_names; i++)
		if (!(o->names[i] = strdup(opts->names[i])))
			goto fail;
	memcpy(o->csr, opts->csr_der, opts->csr_len);
	o->csr_len = opts->csr_len;
	o->chall = opts->chall;
	o->profile = dup_or_null(opts->profile);
	o->replaces = dup_or_null(opts->replaces);
	o->preferred_issuer = dup_or_null(opts->preferred_issuer);
	o->url = dup_or_null(opts->order_url);
	if ((opts->profile && !o->profile) ||
	    (opts->replaces && !o->replaces) ||
	    (opts->preferred_issuer && !o->preferred_issuer) ||
	    (opts->order_url && !o->url))
		goto fail;
	o->poll_deadline_ms = opts->poll_deadline_ms > 0
				      ? opts->poll_deadline_ms
				      : POLL_DEFAULT_DEADLINE_MS;
	if (hooks)
		o->hooks = *hooks;
	o->err.retry_after_ms = -1;
	return o;
fail:
	acme_order_free(o);
	return NULL;
}

static void unpublish_all(struct acme_order *o)
{
	for (size_t i = 0; i < o->n_authz; i++) {
		struct authz *a = &o->authz[i];
		if (a->published && o->hooks.unpublish)
			o->hooks.unpublish(o->hooks.ctx, o->chall, a->domain,
					   a->token);
		a->published = 0;
	}
}

static void free_authz(struct acme_order *o)
{
	for (size_t i = 0; i < o->n_authz; i++) {
		free(o->authz[i].url);
		free(o->authz[i].domain);
		free(o->authz[i].chall_url);
		free(o->authz[i].token);
	}
	free(o->authz);
	o->authz = NULL;
	o->n_authz = 0;
}

void acme_order_free(struct acme_order *o)
{
	if (!o)
		return;
	unpublish_all(o);
	free_authz(o);
	for (size_t i = 0; o->names && i < o->n_names; i++)
		free(o->names[i]);
	free(o->names);
	free(o->csr);
	free(o->profile);
	free(o->replaces);
	free(o->preferred_issuer);
	free(o->url);
	free(o->finalize_url);
	free(o->cert_url);
	for (size_t i = 0; i < o->n_alt; i++)
		free(o->alt_urls[i]);
	free(o->cert);
	acme_error_clear(&o->err);
	free(o);
}

enum acme_order_state acme_order_state(const struct acme_order *o)
{
	return o->state;
}

const char *acme_order_url(const struct acme_order *o)
{
	return o->url;
}

const char *acme_order_cert(const struct acme_order *o, size_t *len)
{
	if (o->state != ACME_ORDER_VALID)
		return NULL;
	if (len)
		*len = o->cert_len;
	return o->cert;
}

const struct acme_error *acme_order_error(const struct acme_order *o)
{
	return &o->err;
}

const char *acme_order_name(const struct acme_order *o)
{
	return o->names[0];
}

static void fail(struct acme_order *o)
{
	if (!o->err.identifier && !(o->err.identifier = strdup(o->names[0])))
		o->err.identifier = NULL;
	unpublish_all(o);
	set_state(o, ACME_ORDER_FAILED);
}

static void fail_with(struct acme_order *o, enum acme_errc code,
		      const char *detail)
{
	acme__error_set(&o->err, code, state_step[o->state], o->names[0], "%s",
			detail);
	fail(o);
}

static char *new_order_payload(struct acme_order *o)
{
	json_t *p = json_object(), *ids = json_array();
	char *out = NULL;

	if (!p || !ids)
		goto out;
	for (size_t i = 0; i < o->n_names; i++)
		json_array_append_new(ids, json_pack("{s:s,s:s}", "type", "dns",
						     "value", o->names[i]));
	json_object_set(p, "identifiers", ids);
	if (o->profile)
		json_object_set_new(p, "profile", json_string(o->profile));
	if (o->replaces)
		json_object_set_new(p, "replaces", json_string(o->replaces));
	out = json_dumps(p, JSON_COMPACT);
out:
	json_decref(ids);
	json_decref(p);
	return out;
}

static char *finalize_payload(struct acme_order *o)
{
	char *b64 = b64url_encode(o->csr, o->csr_len), *out = NULL;
	json_t *p;

	if (!b64)
		return NULL;
	p = json_pack("{s:s}", "csr", b64);
	if (p)
		out = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	free(b64);
	return out;
}

enum acme_step acme_order_next(struct acme_order *o, int64_t now_ms,
			       struct acme_request *req, int64_t *wake_at)
{
	const char *url = NULL;
	char *payload = NULL;
	int rc;

	memset(req, 0, sizeof(*req));
	if (o->state == ACME_ORDER_VALID)
		return ACME_STEP_DONE;
	if (o->state == ACME_ORDER_FAILED)
		return ACME_STEP_FAILED;
	if (!acme_client_ready(o->c)) {
		fail_with(o, ACME_E_INTERNAL, "the ACME account is not ready");
		return ACME_STEP_FAILED;
	}
	if (o->wake_at > now_ms) {
		*wake_at = o->wake_at;
		return ACME_STEP_WAIT;
	}
	switch (o->state) {
	case ACME_ORDER_NEW:
		if (o->url) {
			url = o->url; /* resuming: fetch the order we made */
		} else {
			url = acme_client_directory(o->c)->new_order;
			payload = new_order_payload(o);
			if (!payload)
				goto internal;
		}
		break;
	case ACME_ORDER_AUTHZ:
	case ACME_ORDER_POLL_AUTHZ:
		url = o->authz[o->cursor].url;
		break;
	case ACME_ORDER_PUBLISH: {
		/* woken at the deadline with the response still not out */
		struct authz *a = &o->authz[o->cursor];
		acme__error_set(&o->err, ACME_E_TIMEOUT, "challenge",
				a->domain,
				"the %s response for %s was not published "
				"within %lld s",
				acme_chall_names[o->chall], a->domain,
				(long long)(o->poll_deadline_ms / 1000));
		fail(o);
		return ACME_STEP_FAILED;
	}
	case ACME_ORDER_RESPOND:
		url = o->authz[o->cursor].chall_url;
		payload = strdup("{}");
		if (!payload)
			goto internal;
		break;
	case ACME_ORDER_FINALIZE:
		url = o->finalize_url;
		payload = finalize_payload(o);
		if (!payload)
			goto internal;
		break;
	case ACME_ORDER_POLL_ORDER:
		url = o->url;
		break;
	case ACME_ORDER_DOWNLOAD:
		url = o->cert_url;
		break;
	case ACME_ORDER_ALTERNATE:
		url = o->alt_urls[o->cursor];
		break;
	default:
		goto internal;
	}
	rc = acme__client_post(o->c, url, payload, NULL, req);
	free(payload);
	if (rc == -EAGAIN) {
		o->pending_nonce = 1;
		if (acme__client_nonce_request(o->c, req) < 0)
			goto internal;
		return ACME_STEP_SEND;
	}
	if (rc < 0)
		goto internal;
	o->pending_nonce = 0;
	return ACME_STEP_SEND;
internal:
	acme_request_clear(req);
	fail_with(o, ACME_E_INTERNAL, "cannot build the request");
	return ACME_STEP_FAILED;
}

/* Schedule the next poll: the CA's Retry-After, else capped backoff. */
static void poll_later(struct acme_order *o, const struct acme_response *res,
		       int64_t now_ms)
{
	char ra[128];
	int64_t delay;

	if (o->poll_started == 0) {
		o->poll_started = now_ms;
		o->poll_interval = POLL_FIRST_MS;
	}
	if (now_ms - o->poll_started > o->poll_deadline_ms) {
		acme__error_set(&o->err, ACME_E_TIMEOUT, state_step[o->state],
				o->names[0],
				"the CA did not finish %s within %lld s",
				state_step[o->state],
				(long long)(o->poll_deadline_ms / 1000));
		fail(o);
		return;
	}
	delay = o->poll_interval;
	o->poll_interval = o->poll_interval * 3 / 2;
	if (o->poll_interval > POLL_MAX_MS)
		o->poll_interval = POLL_MAX_MS;
	if (res && acme_hdr_get(res->headers, res->headers_len, "Retry-After",
				0, ra, sizeof(ra)) > 0) {
		int64_t ms;
		if (acme_retry_after_parse(ra, now_ms / 1000, &ms) == 0)
			delay = ms < 100 ? 100 : ms > 60000 ? 60000 : ms;
	}
	o->wake_at = now_ms + delay;
}

/* An authorization's failure reason: the first challenge error. */
static void fail_authz(struct acme_order *o, struct authz *a, json_t *j,
		       const char *status)
{
	json_t *chs = json_object_get(j, "challenges"), *ch;
	size_t i;

	json_array_foreach(chs, i, ch) {
		json_t *err = json_object_get(ch, "error");
		char *txt;
		if (!json_is_object(err))
			continue;
		txt = json_dumps(err, JSON_COMPACT);
		acme_error_clear(&o->err);
		if (txt && acme_problem_parse(txt, strlen(txt), &o->err) == 0) {
			free(txt);
			o->err.code = ACME_E_INVALID;
			o->err.step = "validation";
			o->err.retry_after_ms = -1;
			free(o->err.identifier);
			o->err.identifier = strdup(a->domain);
			fail(o);
			return;
		}
		free(txt);
	}
	acme__error_set(&o->err, ACME_E_INVALID, "validation", a->domain,
			"authorization for %s is %s", a->domain, status);
	fail(o);
}

static int own_name(struct acme_order *o, const char *name)
{
	for (size_t i = 0; i < o->n_names; i++)
		if (strcasecmp(o->names[i], name) == 0)
			return 1;
	return 0;
}

/* Read an authorization object into a; pick and publish its challenge. */
static void on_authz(struct acme_order *o, json_t *j)
{
	struct authz *a = &o->authz[o->cursor];
	const char *status = json_string_value(json_object_get(j, "status"));
	const char *value = json_string_value(
		json_object_get(json_object_get(j, "identifier"), "value"));
	const char *want = acme_chall_names[o->chall];
	json_t *chs, *ch, *pick = NULL;
	char name[NAME_MAX_LEN + 3];
	size_t i;

	if (!status || !value || strlen(value) > NAME_MAX_LEN) {
		fail_with(o, ACME_E_PROTOCOL,
			  "authorization lacks status or identifier");
		return;
	}
	snprintf(name, sizeof(name), "%s%s",
		 json_is_true(json_object_get(j, "wildcard")) ? "*." : "",
		 value);
	if (!own_name(o, name)) {
		acme__error_set(&o->err, ACME_E_PROTOCOL, "authorization",
				o->names[0],
				"the CA sent an authorization for %s, which "
				"was not ordered",
				name);
		fail(o);
		return;
	}
	if (!a->domain && !(a->domain = strdup(name)))
		goto internal;
	if (strcmp(status, "valid") == 0) {
		a->valid = 1;
		return;
	}
	if (strcmp(status, "pending") != 0) {
		fail_authz(o, a, j, status);
		return;
	}
	chs = json_object_get(j, "challenges");
	json_array_foreach(chs, i, ch) {
		const char *t = json_string_value(json_object_get(ch, "type"));
		if (t && strcmp(t, want) == 0) {
			pick = ch;
			break;
		}
	}
	if (!pick) {
		acme__error_set(&o->err, ACME_E_PROTOCOL, "authorization",
				a->domain, "the CA offers no %s challenge for %s",
				want, a->domain);
		fail(o);
		return;
	}
	free(a->chall_url);
	free(a->token);
	a->chall_url = acme__json_url(o->c, pick, "url");
	a->token = dup_or_null(json_string_value(json_object_get(pick, "token")));
	if (!a->chall_url || !a->token || acme_token_valid(a->token) < 0) {
		fail_with(o, ACME_E_PROTOCOL,
			  "the CA sent a challenge with a bad url or token");
		return;
	}
	{
		const char *cs = json_string_value(json_object_get(pick, "status"));
		/* A resumed order may have answered already. */
		if (cs && strcmp(cs, "pending") != 0)
			a->responded = 1;
	}
	if (!a->published && o->hooks.publish) {
		char *ka = acme_key_authorization(a->token,
						  acme_client_thumbprint(o->c));
		int rc;
		if (!ka)
			goto internal;
		rc = o->hooks.publish(o->hooks.ctx, o->chall, a->domain,
				      a->token, ka);
		free(ka);
		if (rc == ACME_PUBLISH_PENDING) {
			a->published = 1; /* withdrawn even if never ready */
			a->ready = 0;
			return;
		}
		if (rc < 0) {
			acme__error_set(&o->err, ACME_E_INTERNAL, "challenge",
					a->domain,
					"cannot publish the %s response for %s",
					want, a->domain);
			fail(o);
			return;
		}
		a->published = 1;
	}
	if (a->published || !o->hooks.publish)
		a->ready = 1;
	return;
internal:
	fail_with(o, ACME_E_INTERNAL, "out of memory");
}

/* What an authorization not yet valid needs next. */
enum need { NEED_RESPOND, NEED_POLL, NEED_PUBLISH };

/* Index of the first authorization not yet valid that needs this. */
static size_t next_authz(struct acme_order *o, enum need need)
{
	for (size_t i = 0; i < o->n_authz; i++) {
		const struct authz *a = &o->authz[i];
		if (a->valid)
			continue;
		if (need == NEED_RESPOND && !a->responded && a->ready)
			return i;
		if (need == NEED_POLL && a->responded)
			return i;
		if (need == NEED_PUBLISH && !a->responded && !a->ready)
			return i;
	}
	return o->n_authz;
}

/* After the authorizations are known: respond, poll, wait for the
 * driver to publish, or finalize. */
static void advance_authz(struct acme_order *o, int64_t now_ms)
{
	size_t i = next_authz(o, NEED_RESPOND);

	if (i < o->n_authz) {
		set_state(o, ACME_ORDER_RESPOND);
		o->cursor = i;
		o->wake_at = 0;
		return;
	}
	i = next_authz(o, NEED_POLL);
	if (i < o->n_authz) {
		set_state(o, ACME_ORDER_POLL_AUTHZ);
		o->cursor = i;
		poll_later(o, NULL, now_ms); /* give the CA a moment first */
		return;
	}
	i = next_authz(o, NEED_PUBLISH);
	if (i < o->n_authz) {
		if (o->state != ACME_ORDER_PUBLISH) {
			set_state(o, ACME_ORDER_PUBLISH);
			/* woken by acme_order_chall_ready, or at the
			 * deadline to give up */
			o->wake_at = now_ms + o->poll_deadline_ms;
		}
		o->cursor = i;
		return;
	}
	unpublish_all(o);
	set_state(o, ACME_ORDER_FINALIZE);
}

int acme_order_chall_ready(struct acme_order *o, const char *token, int rc,
			   const char *detail, int64_t now_ms)
{
	struct authz *a = NULL;

	if (o->state == ACME_ORDER_VALID || o->state == ACME_ORDER_FAILED)
		return -EINVAL;
	for (size_t i = 0; token && i < o->n_authz; i++)
		if (o->authz[i].token && o->authz[i].published &&
		    !o->authz[i].ready && strcmp(o->authz[i].token, token) == 0)
			a = &o->authz[i];
	if (!a)
		return -ENOENT;
	if (rc < 0) {
		acme__error_set(&o->err, ACME_E_INTERNAL, "challenge",
				a->domain, "cannot publish the %s response for "
				"%s: %s", acme_chall_names[o->chall], a->domain,
				detail ? detail : "unknown error");
		fail(o);
		return 0;
	}
	a->ready = 1;
	log_debug("acme", o->names[0], "%s response for %s is published",
		  acme_chall_names[o->chall], a->domain);
	/* In AUTHZ the last fetch decides; while polling, the poll's end
	 * does (advance_authz picks this one up). */
	if (o->state == ACME_ORDER_PUBLISH)
		advance_authz(o, now_ms);
	return 0;
}

/* An order object (from newOrder, a fetch, finalize or a poll). */
static void on_order(struct acme_order *o, json_t *j,
		     const struct acme_response *res, int64_t now_ms)
{
	const char *status = json_string_value(json_object_get(j, "status"));
	json_t *az = json_object_get(j, "authorizations"), *v;
	size_t i;

	if (!status) {
		fail_with(o, ACME_E_PROTOCOL, "order has no status");
		return;
	}
	if (!o->finalize_url && !(o->finalize_url = acme__json_url(o->c, j, "finalize"))) {
		fail_with(o, ACME_E_PROTOCOL, "order has no valid finalize URL");
		return;
	}
	if (strcmp(status, "pending") == 0) {
		if (!json_is_array(az) || json_array_size(az) == 0 ||
		    json_array_size(az) > MAX_AUTHZ) {
			fail_with(o, ACME_E_PROTOCOL,
				  "pending order has no authorizations");
			return;
		}
		free_authz(o);
		o->authz = calloc(json_array_size(az), sizeof(*o->authz));
		if (!o->authz) {
			fail_with(o, ACME_E_INTERNAL, "out of memory");
			return;
		}
		o->n_authz = json_array_size(az);
		json_array_foreach(az, i, v) {
			const char *s = json_string_value(v);
			json_t *tmp = json_pack("{s:s?}", "u", s);
			o->authz[i].url = tmp ? acme__json_url(o->c, tmp, "u") : NULL;
			json_decref(tmp);
			if (!o->authz[i].url) {
				fail_with(o, ACME_E_PROTOCOL,
					  "order has a bad authorization URL");
				return;
			}
		}
		set_state(o, ACME_ORDER_AUTHZ);
	} else if (strcmp(status, "ready") == 0) {
		set_state(o, ACME_ORDER_FINALIZE);
	} else if (strcmp(status, "processing") == 0) {
		if (o->state != ACME_ORDER_POLL_ORDER)
			set_state(o, ACME_ORDER_POLL_ORDER);
		poll_later(o, res, now_ms);
	} else if (strcmp(status, "valid") == 0) {
		free(o->cert_url);
		o->cert_url = acme__json_url(o->c, j, "certificate");
		if (!o->cert_url) {
			fail_with(o, ACME_E_PROTOCOL,
				  "valid order has no certificate URL");
			return;
		}
		set_state(o, ACME_ORDER_DOWNLOAD);
	} else {
		json_t *err = json_object_get(j, "error");
		char *txt = json_is_object(err) ? json_dumps(err, JSON_COMPACT)
						: NULL;
		const char *step = state_step[o->state];
		acme_error_clear(&o->err);
		if (txt && acme_problem_parse(txt, strlen(txt), &o->err) == 0) {
			o->err.code = ACME_E_INVALID;
			o->err.step = step;
			o->err.retry_after_ms = -1;
		} else {
			acme__error_set(&o->err, ACME_E_INVALID, step,
					o->names[0], "order for %s is %s",
					o->names[0], status);
		}
		free(txt);
		fail(o);
	}
}

static void collect_alternate(void *ctx, const char *url, const char *rel)
{
	struct acme_order *o = ctx;
	json_t *tmp;

	if (strcmp(rel, "alternate") != 0 || o->n_alt == MAX_ALTERNATES)
		return;
	tmp = json_pack("{s:s}", "u", url);
	if (tmp && (o->alt_urls[o->n_alt] = acme__json_url(o->c, tmp, "u")))
		o->n_alt++;
	json_decref(tmp);
}

/* Check a downloaded chain: it parses and its leaf covers our names. */
static int check_chain(struct acme_order *o, const struct acme_response *res)
{
	struct x509_info info = {0};
	X509 *leaf;
	int ok = 0;

	if (!res->body || res->body_len == 0 || res->body_len > ACME_MAX_BODY)
		return 0;
	leaf = x509_from_pem(res->body, res->body_len);
	if (!leaf || x509_inspect(leaf, &info) < 0)
		goto out;
	ok = 1;
	for (size_t i = 0; i < o->n_names && ok; i++) {
		int found = 0;
		for (size_t k = 0; k < info.n_names; k++)
			if (strcasecmp(info.names[k], o->names[i]) == 0)
				found = 1;
		ok = found;
	}
out:
	x509_info_free(&info);
	X509_free(leaf);
	return ok;
}

static int issuer_preferred(struct acme_order *o, const char *pem, size_t len)
{
	char cn[256];

	return x509_chain_top_issuer(pem, len, cn, sizeof(cn)) == 0 &&
	       strcmp(cn, o->preferred_issuer) == 0;
}

static int keep_chain(struct acme_order *o, const struct acme_response *res)
{
	char *c = malloc(res->body_len + 1);

	if (!c)
		return -ENOMEM;
	memcpy(c, res->body, res->body_len);
	c[res->body_len] = '\0';
	free(o->cert);
	o->cert = c;
	o->cert_len = res->body_len;
	return 0;
}

static void on_certificate(struct acme_order *o,
			   const struct acme_response *res)
{
	if (!check_chain(o, res)) {
		if (o->state == ACME_ORDER_ALTERNATE)
			goto next_alternate;
		fail_with(o, ACME_E_PROTOCOL,
			  "the CA sent a certificate that does not parse or "
			  "does not cover the ordered names");
		return;
	}
	if (o->state == ACME_ORDER_DOWNLOAD) {
		char link[8192];
		if (keep_chain(o, res) < 0) {
			fail_with(o, ACME_E_INTERNAL, "out of memory");
			return;
		}
		for (int i = 0; i < 32 && acme_hdr_get(res->headers,
						       res->headers_len, "Link",
						       i, link, sizeof(link)) >= 0;
		     i++)
			acme_link_parse(link, collect_alternate, o);
		if (o->preferred_issuer && o->n_alt > 0 &&
		    !issuer_preferred(o, o->cert, o->cert_len)) {
			set_state(o, ACME_ORDER_ALTERNATE);
			return;
		}
		set_state(o, ACME_ORDER_VALID);
		return;
	}
	if (issuer_preferred(o, res->body, res->body_len)) {
		if (keep_chain(o, res) < 0) {
			fail_with(o, ACME_E_INTERNAL, "out of memory");
			return;
		}
		set_state(o, ACME_ORDER_VALID);
		return;
	}
next_alternate:
	if (o->cursor + 1 < o->n_alt) {
		o->cursor++;
		return;
	}
	log_info("acme", o->names[0],
		 "no chain ends in preferred issuer \"%s\"; using the default",
		 o->preferred_issuer);
	set_state(o, ACME_ORDER_VALID);
}

int acme_order_feed(struct acme_order *o, const struct acme_response *res,
		    int64_t now_ms)
{
	enum acme_order_state st = o->state;
	json_t *j = NULL;
	int ok;

	acme_client_take_nonce(o->c, res);
	if (st == ACME_ORDER_VALID || st == ACME_ORDER_FAILED)
		return -EINVAL;
	if (o->pending_nonce) {
		o->pending_nonce = 0;
		ok = res->status == 200 || res->status == 204;
		if (ok && acme_client_nonces(o->c) == 0) {
			fail_with(o, ACME_E_PROTOCOL,
				  "the CA sent no Replay-Nonce");
			return 0;
		}
		if (ok)
			return 0;
		goto failed;
	}
	if (acme__is_bad_nonce(res)) {
		if (o->badnonce_retries++ < ACME_MAX_BADNONCE_RETRIES)
			return 0; /* same request again, fresh nonce */
		goto failed;
	}
	switch (st) {
	case ACME_ORDER_NEW:
		ok = res->status == (o->url ? 200 : 201) || res->status == 200;
		break;
	default:
		ok = res->status == 200;
		break;
	}
	if (!ok)
		goto failed;
	o->badnonce_retries = 0;
	o->transient_retries = 0;

	if (st == ACME_ORDER_DOWNLOAD || st == ACME_ORDER_ALTERNATE) {
		on_certificate(o, res);
		return 0;
	}
	j = acme__json_body(res, state_step[st], &o->err);
	if (!j) {
		fail(o);
		return 0;
	}
	switch (st) {
	case ACME_ORDER_NEW:
		if (!o->url && !(o->url = acme__header_url(o->c, res, "Location"))) {
			fail_with(o, ACME_E_PROTOCOL,
				  "the CA sent no valid order URL");
			break;
		}
		on_order(o, j, res, now_ms);
		break;
	case ACME_ORDER_AUTHZ:
		on_authz(o, j);
		if (o->state != ACME_ORDER_AUTHZ)
			break;
		if (++o->cursor == o->n_authz)
			advance_authz(o, now_ms);
		break;
	case ACME_ORDER_RESPOND:
		o->authz[o->cursor].responded = 1;
		advance_authz(o, now_ms);
		break;
	case ACME_ORDER_POLL_AUTHZ: {
		struct authz *a = &o->authz[o->cursor];
		const char *s = json_string_value(json_object_get(j, "status"));
		if (s && strcmp(s, "valid") == 0) {
			a->valid = 1;
			if (a->published && o->hooks.unpublish)
				o->hooks.unpublish(o->hooks.ctx, o->chall,
						   a->domain, a->token);
			a->published = 0;
			size_t i = next_authz(o, NEED_POLL);
			if (i == o->n_authz) {
				advance_authz(o, now_ms);
			} else {
				o->cursor = i;
				o->wake_at = 0;
			}
		} else if (s && (strcmp(s, "pending") == 0 ||
				 strcmp(s, "processing") == 0)) {
			poll_later(o, res, now_ms);
		} else {
			fail_authz(o, a, j, s ? s : "without status");
		}
		break;
	}
	case ACME_ORDER_FINALIZE:
	case ACME_ORDER_POLL_ORDER:
		on_order(o, j, res, now_ms);
		if (o->state == ACME_ORDER_AUTHZ ||
		    o->state == ACME_ORDER_FINALIZE)
			fail_with(o, ACME_E_PROTOCOL,
				  "order went back to an earlier state");
		break;
	default:
		break;
	}
	json_decref(j);
	return 0;
failed:
	if (acme__is_transient(res) &&
	    o->transient_retries < TRANSIENT_RETRIES) {
		o->wake_at = now_ms + (1000 << o->transient_retries++);
		return 0;
	}
	if (st == ACME_ORDER_ALTERNATE) {
		/* The default chain already passed its checks: an alternate
		 * we cannot fetch only means trying the next one. */
		o->transient_retries = 0;
		o->badnonce_retries = 0;
		if (o->cursor + 1 < o->n_alt)
			o->cursor++;
		else
			set_state(o, ACME_ORDER_VALID);
		return 0;
	}
	acme__error_from_response(&o->err, res, state_step[st], now_ms);
	if (!o->err.identifier)
		o->err.identifier = strdup(o->names[0]);
	fail(o);
	return 0;
}
