/*
 * engine_ari.c — one RFC 9773 renewalInfo fetch on an engine session: the
 * certificate identifier from the leaf, the CA's directory if the client
 * has not fetched it yet (and nothing more: the GET is unauthenticated, so
 * no account is created or looked up), then acme_ari's machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

/* The client machine, stopped as soon as it holds the directory: its
 * next step would be newNonce and then the account, neither of which ARI
 * needs. */
static enum acme_step dir_next(void *m, int64_t now_ms,
			       struct acme_request *req, int64_t *wake_at)
{
	struct acme_client *c = m;

	if (acme_client_directory(c)) {
		memset(req, 0, sizeof(*req));
		return ACME_STEP_DONE;
	}
	return acme_client_next(c, now_ms, req, wake_at);
}

static int dir_feed(void *m, const struct acme_response *res, int64_t now_ms)
{
	return acme_client_feed(m, res, now_ms);
}

int engine_ari_fetch(struct engine_session *s, const char *chain_pem,
		     struct acme_ari *out, char *err, size_t errsz)
{
	struct engine_task t = {0};
	struct acme_ari_op *op = NULL;
	char certid[ACME_ARI_CERTID_MAX], why[1024];
	unsigned char *der = NULL;
	size_t der_len;
	int rc;

	acme_ari_clear(out);
	if (!chain_pem ||
	    x509_pem_to_der(chain_pem, strlen(chain_pem), &der, &der_len) < 0) {
		snprintf(err, errsz, "no PEM certificate to ask about");
		rc = -EINVAL;
		goto out;
	}
	rc = acme_ari_certid(der, der_len, certid, sizeof(certid));
	if (rc < 0) {
		snprintf(err, errsz,
			 rc == -ENOENT
			     ? "the certificate has no Authority Key "
			       "Identifier, so ARI cannot name it"
			     : "cannot compute the certificate's ARI "
			       "identifier: %s",
			 strerror(-rc));
		goto out;
	}
	if (!acme_client_directory(s->client)) {
		t.next = dir_next;
		t.feed = dir_feed;
		t.machine = s->client;
		if (engine_session_run_task(s, &t) != ACME_STEP_DONE) {
			snprintf(err, errsz, "cannot fetch the CA's directory: %s",
				 acme_error_str(acme_client_error(s->client),
						why, sizeof(why)));
			rc = -EIO;
			goto out;
		}
	}
	rc = acme_ari_op_new(s->client, certid, &op);
	if (rc == -ENOTSUP) {
		snprintf(err, errsz,
			 "the CA does not offer ARI (no renewalInfo in its "
			 "directory)");
		goto out;
	}
	if (rc < 0) {
		snprintf(err, errsz, "cannot set up the renewalInfo request: %s",
			 strerror(-rc));
		goto out;
	}
	memset(&t, 0, sizeof(t));
	engine_task_ari(&t, op);
	log_debug("ari", NULL, "GET %s", acme_ari_op_url(op));
	if (engine_session_run_task(s, &t) != ACME_STEP_DONE) {
		snprintf(err, errsz, "renewalInfo for %s failed: %s", certid,
			 acme_error_str(acme_ari_op_error(op), why, sizeof(why)));
		rc = -EIO;
		goto out;
	}
	rc = acme_ari_op_result(op, out);
out:
	acme_ari_op_free(op);
	free(der);
	return rc;
}
