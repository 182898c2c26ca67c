/*
 * acme_op.c — one-shot account operations with the same next/feed shape
 * as orders: account key rollover (RFC 8555 §7.3.5) and certificate
 * revocation (§7.6).
 *
 *   SEND --2xx--> DONE      badNonce: SEND again with a fresh nonce
 *        --else--> FAILED   transient: SEND again after a short backoff
 *
 * Invariant: payload and url are fixed at creation; only the nonce (and
 * for keyChange the outer signature) changes between attempts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme_internal.h"
#include "util/util.h"

enum op_kind { OP_KEY_CHANGE = 0, OP_REVOKE, OP__MAX };
static const char *const op_step[OP__MAX] = {"keyChange", "revokeCert"};

struct acme_op {
	enum op_kind kind;
	struct acme_client *c;
	EVP_PKEY *key;  /* keyChange: the new key; revoke: cert key or NULL */
	char *url;
	char *payload;
	int done, failed, pending_nonce;
	int badnonce_retries, transient_retries;
	int64_t wake_at;
	struct acme_error err;
};

static struct acme_op *op_new(struct acme_client *c, enum op_kind kind,
			      const char *url, EVP_PKEY *key)
{
	struct acme_op *op;

	if (!url)
		return NULL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kind = kind;
	op->c = c;
	op->err.retry_after_ms = -1;
	op->url = strdup(url);
	if (key && EVP_PKEY_up_ref(key))
		op->key = key;
	if (!op->url || (key && !op->key)) {
		acme_op_free(op);
		return NULL;
	}
	return op;
}

struct acme_op *acme_op_key_change(struct acme_client *c, EVP_PKEY *new_key)
{
	const struct acme_directory *d = acme_client_directory(c);
	const char *kid = acme_client_account_url(c);
	struct acme_op *op;
	json_t *inner = NULL;
	char *inner_jws = NULL;

	if (!d || !kid || !new_key || !acme_jws_alg(new_key))
		return NULL;
	op = op_new(c, OP_KEY_CHANGE, d->key_change, new_key);
	if (!op)
		return NULL;
	/* The inner JWS is signed by the new key over {account, oldKey}
	 * and carries no nonce (§7.3.5). */
	inner = json_pack("{s:s,s:o}", "account", kid, "oldKey",
			  acme_jwk(acme__client_key(c)));
	if (inner) {
		char *p = json_dumps(inner, JSON_COMPACT);
		if (p)
			inner_jws = acme_jws_sign(new_key, NULL, NULL,
						  d->key_change, p);
		free(p);
	}
	json_decref(inner);
	op->payload = inner_jws;
	if (!op->payload) {
		acme_op_free(op);
		return NULL;
	}
	return op;
}

struct acme_op *acme_op_revoke(struct acme_client *c,
			       const unsigned char *cert_der, size_t der_len,
			       int reason, EVP_PKEY *cert_key)
{
	const struct acme_directory *d = acme_client_directory(c);
	struct acme_op *op;
	json_t *p;
	char *b64;

	if (!d || !cert_der || der_len == 0 || reason > 10 ||
	    (!cert_key && !acme_client_account_url(c)))
		return NULL;
	op = op_new(c, OP_REVOKE, d->revoke_cert, cert_key);
	if (!op)
		return NULL;
	b64 = b64url_encode(cert_der, der_len);
	p = b64 ? json_pack("{s:s}", "certificate", b64) : NULL;
	if (p && reason >= 0)
		json_object_set_new(p, "reason", json_integer(reason));
	op->payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	free(b64);
	if (!op->payload) {
		acme_op_free(op);
		return NULL;
	}
	return op;
}

void acme_op_free(struct acme_op *op)
{
	if (!op)
		return;
	EVP_PKEY_free(op->key);
	free(op->url);
	free(op->payload);
	acme_error_clear(&op->err);
	free(op);
}

const struct acme_error *acme_op_error(const struct acme_op *op)
{
	return &op->err;
}

enum acme_step acme_op_next(struct acme_op *op, int64_t now_ms,
			    struct acme_request *req, int64_t *wake_at)
{
	EVP_PKEY *jwk_key = op->kind == OP_REVOKE ? op->key : NULL;
	int rc;

	memset(req, 0, sizeof(*req));
	if (op->done)
		return ACME_STEP_DONE;
	if (op->failed)
		return ACME_STEP_FAILED;
	if (op->wake_at > now_ms) {
		*wake_at = op->wake_at;
		return ACME_STEP_WAIT;
	}
	rc = acme__client_post(op->c, op->url, op->payload, jwk_key, req);
	op->pending_nonce = rc == -EAGAIN;
	if (rc == -EAGAIN)
		rc = acme__client_nonce_request(op->c, req);
	if (rc < 0) {
		acme__error_set(&op->err, ACME_E_INTERNAL, op_step[op->kind],
				NULL, "cannot build the request");
		op->failed = 1;
		return ACME_STEP_FAILED;
	}
	return ACME_STEP_SEND;
}

int acme_op_feed(struct acme_op *op, const struct acme_response *res,
		 int64_t now_ms)
{
	acme_client_take_nonce(op->c, res);
	if (op->done || op->failed)
		return -EINVAL;
	if (op->pending_nonce) {
		op->pending_nonce = 0;
		if ((res->status == 200 || res->status == 204) &&
		    acme_client_nonces(op->c) == 0) {
			acme__error_set(&op->err, ACME_E_PROTOCOL,
					op_step[op->kind], NULL,
					"the CA sent no Replay-Nonce");
			op->failed = 1;
			return 0;
		}
		if (res->status == 200 || res->status == 204)
			return 0;
	} else if (res->status == 200) {
		if (op->kind == OP_KEY_CHANGE &&
		    acme__client_set_key(op->c, op->key) < 0) {
			acme__error_set(&op->err, ACME_E_INTERNAL, "keyChange",
					NULL, "cannot switch to the new key");
			op->failed = 1;
			return 0;
		}
		op->done = 1;
		return 0;
	} else if (acme__is_bad_nonce(res) &&
		   op->badnonce_retries++ < ACME_MAX_BADNONCE_RETRIES) {
		return 0;
	}
	if (acme__is_transient(res) && op->transient_retries < 3) {
		op->wake_at = now_ms + (1000 << op->transient_retries++);
		return 0;
	}
	acme__error_from_response(&op->err, res, op_step[op->kind], now_ms);
	op->failed = 1;
	return 0;
}
