/*
 * engine_session.c — what every command that talks to a CA needs first:
 * the account key on disk, a libuv loop, the HTTP client and an account
 * brought to READY. Also the one-shot account operations (revocation,
 * key rollover) run on such a session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/util.h"

/* out_dir/accounts/<host_port_path>: one account per CA directory. */
static int account_dir(const char *out_dir, const char *url, char *path,
		       size_t sz)
{
	char slug[256];
	const char *p = strstr(url, "://");
	size_t k = 0;

	for (p = p ? p + 3 : url; *p && k < sizeof(slug) - 1; p++) {
		char ch = *p;
		slug[k++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')
				    ? ch
				    : '_';
	}
	slug[k] = '\0';
	if ((size_t)snprintf(path, sz, "%s/accounts/%s", out_dir, slug) >= sz)
		return -ENAMETOOLONG;
	return fsio_mkdirs(path, 0700);
}

static enum acme_step run_task(struct engine_session *s,
			       struct engine_task *t);

/*
 * A rollover interrupted after the CA switched keys but before
 * account-key.pem.new was renamed leaves the account reachable only with
 * the .new key. Ask the CA whether it knows that key (onlyReturnExisting,
 * which never creates an account): if so, finish the rename and use it;
 * if not, the CA never switched and the .new key is dropped. Returns 0
 * when s->client is ready with the recovered key, -ENOENT otherwise.
 */
static int finish_rollover(struct engine_session *s,
			   const struct acme_client_opts *co)
{
	struct acme_client_opts probe = *co;
	struct engine_task t = {0};
	char next[sizeof(s->key_path) + 8];
	EVP_PKEY *nk;

	snprintf(next, sizeof(next), "%s.new", s->key_path);
	if (access(next, F_OK) != 0)
		return -ENOENT;
	nk = key_load(next);
	probe.only_existing = 1;
	probe.eab_kid = NULL; /* an existing account needs no binding */
	probe.eab_hmac = NULL;
	s->client = nk ? acme_client_new(nk, &probe) : NULL;
	if (s->client) {
		engine_task_client(&t, s->client);
		if (run_task(s, &t) == ACME_STEP_DONE &&
		    rename(next, s->key_path) == 0) {
			log_warn("acme", NULL,
				 "finished an interrupted key rollover: %s "
				 "is now the account key",
				 s->key_path);
			EVP_PKEY_free(s->account_key);
			s->account_key = nk;
			return 0;
		}
	}
	log_warn("acme", NULL,
		 "discarding %s: the CA does not know it (the rollover it "
		 "was made for never happened)",
		 next);
	acme_client_free(s->client);
	s->client = NULL;
	EVP_PKEY_free(nk);
	unlink(next);
	return -ENOENT;
}

int engine_session_open(struct engine_session *s,
			const struct engine_account_opts *o, int ready,
			char *err, size_t errsz)
{
	struct engine_http_opts ho = {
		.ca_bundle = o->ca_bundle,
		.max_host_connections = o->ca_connections,
	};
	struct acme_client_opts co = {
		.directory_url = o->directory_url,
		.email = o->email,
		.agree_tos = 1,
		.eab_kid = o->eab_kid,
		.eab_hmac = o->eab_hmac,
		.eab_hmac_len = o->eab_hmac_len,
	};
	char dir[4000];
	int rc;

	memset(s, 0, sizeof(*s));
	rc = account_dir(o->out_dir, o->directory_url, dir, sizeof(dir));
	if (rc < 0) {
		snprintf(err, errsz, "cannot create %s/accounts: %s", o->out_dir,
			 strerror(-rc));
		return rc;
	}
	snprintf(s->key_path, sizeof(s->key_path), "%s/account-key.pem", dir);
	s->account_key = key_load_or_create(s->key_path, KEY_ECDSA_P256);
	if (!s->account_key) {
		snprintf(err, errsz,
			 "cannot load or create the account key %s (unreadable "
			 "or not a private key?)",
			 s->key_path);
		return -EIO;
	}
	if (uv_loop_init(&s->loop) < 0) {
		snprintf(err, errsz, "cannot create the event loop");
		return -ENOMEM;
	}
	s->loop_open = 1;
	s->http = engine_http_new(&s->loop, &ho);
	if (!s->http) {
		snprintf(err, errsz, "cannot set up the HTTP client");
		return -ENOMEM;
	}
	if (ready && finish_rollover(s, &co) == 0)
		return 0;
	s->client = acme_client_new(s->account_key, &co);
	if (!s->client) {
		snprintf(err, errsz, "cannot set up the ACME client");
		return -ENOMEM;
	}
	return ready ? engine_session_ready(s, err, errsz) : 0;
}

struct wait_done {
	enum acme_step result;
	uv_loop_t *loop;
};

/* Stop the loop: idle kept-alive connections to the CA stay registered,
 * so uv_run would not return on its own. */
static void task_done(struct engine_task *t, enum acme_step st)
{
	struct wait_done *w = t->ctx;

	w->result = st;
	uv_stop(w->loop);
}

/* Drive t until it is done; the loop has nothing else to do meanwhile. */
static enum acme_step run_task(struct engine_session *s, struct engine_task *t)
{
	struct wait_done w = {ACME_STEP_FAILED, &s->loop};

	t->ctx = &w;
	t->done = task_done;
	if (engine_task_start(t, &s->loop, s->http) == 0)
		uv_run(&s->loop, UV_RUN_DEFAULT);
	engine_task_close(t, NULL);
	uv_run(&s->loop, UV_RUN_NOWAIT);
	return w.result;
}

int engine_session_ready(struct engine_session *s, char *err, size_t errsz)
{
	struct engine_task t = {0};
	char buf[1024];

	engine_task_client(&t, s->client);
	if (run_task(s, &t) == ACME_STEP_DONE)
		return 0;
	snprintf(err, errsz, "cannot set up the ACME account: %s",
		 acme_error_str(acme_client_error(s->client), buf, sizeof(buf)));
	return -EIO;
}

int engine_session_run_op(struct engine_session *s, struct acme_op *op,
			  char *err, size_t errsz)
{
	struct engine_task t = {0};

	engine_task_op(&t, op);
	if (run_task(s, &t) == ACME_STEP_DONE)
		return 0;
	acme_error_str(acme_op_error(op), err, errsz);
	return -EIO;
}

enum acme_step engine_session_run_task(struct engine_session *s,
				      struct engine_task *t)
{
	return run_task(s, t);
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void engine_session_close(struct engine_session *s)
{
	engine_http_free(s->http);
	s->http = NULL;
	if (s->loop_open) {
		uv_walk(&s->loop, walk_close, NULL);
		uv_run(&s->loop, UV_RUN_DEFAULT);
		uv_loop_close(&s->loop);
		s->loop_open = 0;
	}
	acme_client_free(s->client);
	s->client = NULL;
	EVP_PKEY_free(s->account_key);
	s->account_key = NULL;
}

/* ---- revocation ------------------------------------------------------------ */

static int revoke_one(struct engine_session *s, const char *out_dir,
		      const char *name, int reason, int by_cert_key)
{
	char path[4200], why[4400] = "";
	char *pem = NULL;
	size_t len, der_len = 0;
	unsigned char *der = NULL;
	EVP_PKEY *ck = NULL;
	struct acme_op *op = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/live/%s/cert.pem", out_dir, name);
	rc = fsio_read_all(path, ACME_MAX_BODY, &pem, &len);
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot read %s: %s", path,
			 strerror(-rc));
		goto out;
	}
	rc = x509_pem_to_der(pem, len, &der, &der_len);
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s holds no certificate", path);
		goto out;
	}
	if (by_cert_key) {
		snprintf(path, sizeof(path), "%s/live/%s/privkey.pem", out_dir,
			 name);
		ck = key_load(path);
		if (!ck) {
			snprintf(why, sizeof(why), "cannot load %s", path);
			rc = -EIO;
			goto out;
		}
	}
	op = acme_op_revoke(s->client, der, der_len, reason, ck);
	if (!op) {
		snprintf(why, sizeof(why), "cannot build the revocation");
		rc = -ENOMEM;
		goto out;
	}
	rc = engine_session_run_op(s, op, why, sizeof(why));
out:
	if (rc < 0)
		log_error("revoke", name, "certificate not revoked: %s", why);
	else
		log_info("revoke", name, "certificate revoked");
	acme_op_free(op);
	EVP_PKEY_free(ck);
	free(der);
	free(pem);
	return rc;
}

int engine_revoke(const struct engine_account_opts *o,
		  const char *const *names, size_t n, int reason,
		  int by_cert_key, char *err, size_t errsz)
{
	struct engine_session s;
	int failed = 0;
	int rc = engine_session_open(&s, o, 1, err, errsz);

	if (rc == 0)
		for (size_t i = 0; i < n; i++)
			failed += revoke_one(&s, o->out_dir, names[i], reason,
					     by_cert_key) < 0;
	engine_session_close(&s);
	return rc < 0 ? rc : failed;
}

/* ---- key rollover ------------------------------------------------------------ */

int engine_key_rollover(const struct engine_account_opts *o, enum key_type t,
			char *err, size_t errsz)
{
	struct engine_session s;
	struct acme_op *op = NULL;
	EVP_PKEY *nk = NULL;
	char next[4200], why[1024];
	int rc = engine_session_open(&s, o, 1, err, errsz);

	if (rc < 0)
		goto out;
	snprintf(next, sizeof(next), "%s.new", s.key_path);
	nk = key_generate(t);
	if (!nk || (rc = key_save(nk, next)) < 0) {
		snprintf(err, errsz, "cannot create the new account key %s",
			 next);
		rc = rc < 0 ? rc : -EIO;
		goto out;
	}
	op = acme_op_key_change(s.client, nk);
	if (!op) {
		snprintf(err, errsz, "cannot build the key change");
		rc = -ENOMEM;
		goto out;
	}
	rc = engine_session_run_op(&s, op, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errsz, "the CA refused the key change: %s", why);
		unlink(next);
		goto out;
	}
	if (rename(next, s.key_path) < 0) {
		rc = -errno;
		snprintf(err, errsz,
			 "the CA switched to the new key but %s could not be "
			 "renamed to %s: %s (rename it by hand)",
			 next, s.key_path, strerror(errno));
		goto out;
	}
	log_info("acme", NULL, "account %s now uses a new %s key",
		 acme_client_account_url(s.client), key_type_name(t));
out:
	acme_op_free(op);
	EVP_PKEY_free(nk);
	engine_session_close(&s);
	return rc;
}
