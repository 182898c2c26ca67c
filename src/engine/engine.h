/*
 * engine — drives the sans-I/O ACME core over the network: libcurl's
 * multi interface on a libuv loop for every exchange with the CA, an
 * in-process HTTP-01 responder (libmicrohttpd), and the runner that keeps
 * many orders in flight at once from one thread.
 *
 * Error convention: int functions return 0 or a negative errno; where a
 * function takes err/errsz it writes a one-line reason there.
 */
#ifndef CERTHERD_ENGINE_H
#define CERTHERD_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "acme/acme.h"
#include "crypto/crypto.h"

/* ---- HTTP client (engine_http.c) ------------------------------------- */

struct engine_http;

struct engine_http_opts {
	const char *ca_bundle;      /* PEM file of trusted CAs, NULL = system */
	long connect_timeout_ms;    /* 0 = 10 s */
	long timeout_ms;            /* whole exchange; 0 = 60 s */
	long max_host_connections;  /* 0 = 8 kept-alive connections */
	const char *user_agent;     /* NULL = "certherd/VERSION" */
};

typedef void (*engine_http_cb)(void *ctx, const struct acme_response *res);

/* Create on loop; NULL on failure. */
struct engine_http *engine_http_new(uv_loop_t *loop,
				    const struct engine_http_opts *opts);
/*
 * Start one exchange. req is copied; cb is called exactly once from the
 * loop with the response (status 0 and transport_error when none came),
 * which is valid only during the call. Bodies over ACME_MAX_BODY and
 * headers over ACME_MAX_HEADERS fail the exchange.
 */
int engine_http_send(struct engine_http *h, const struct acme_request *req,
		     engine_http_cb cb, void *ctx);
/* Exchanges in flight. */
size_t engine_http_active(const struct engine_http *h);
/* Cancel everything (callbacks are not called) and close; NULL ok.
 * Run the loop afterwards so libuv can release the handles. */
void engine_http_free(struct engine_http *h);

/* ---- HTTP-01 responder (engine_chall.c) -------------------------------- */

struct engine_chall;

/*
 * Serve GET /.well-known/acme-challenge/<token> on listen ("ADDR:PORT",
 * "[v6]:PORT" or ":PORT" for all addresses) from its own thread. Other
 * paths get 404. NULL on failure with the reason in err.
 */
struct engine_chall *engine_chall_new(const char *listen, char *err,
				      size_t errsz);
/* Hooks for acme_order_new; they publish into this responder. */
struct acme_challenge_hooks engine_chall_hooks(struct engine_chall *ch);
/* Number of responses being served (for tests and metrics). */
size_t engine_chall_count(struct engine_chall *ch);
void engine_chall_free(struct engine_chall *ch); /* NULL ok */

/* ---- a machine run on the loop (engine_task.c) --------------------------- */

/*
 * Drives any next/feed machine of the acme module (client, order, op):
 * asks it for the next step, sends, feeds, sleeps on WAIT, and calls done
 * once with DONE or FAILED.
 */
struct engine_task {
	enum acme_step (*next)(void *m, int64_t now_ms,
			       struct acme_request *req, int64_t *wake_at);
	int (*feed)(void *m, const struct acme_response *res, int64_t now_ms);
	void *machine;
	void (*done)(struct engine_task *t, enum acme_step result);
	void *ctx;              /* for done */
	/* private */
	struct engine_http *http;
	uv_timer_t timer;
	int timer_init;
	int closing;
	void (*close_cb)(struct engine_task *);
};

/* Typed constructors for the three machines. */
void engine_task_client(struct engine_task *t, struct acme_client *c);
void engine_task_order(struct engine_task *t, struct acme_order *o);
void engine_task_op(struct engine_task *t, struct acme_op *op);
/* Start (or continue) driving t; 0 or negative errno. */
int engine_task_start(struct engine_task *t, uv_loop_t *loop,
		      struct engine_http *http);
/* Stop timers; close_cb (may be NULL) runs once libuv released them. */
void engine_task_close(struct engine_task *t, void (*close_cb)(struct engine_task *));

/* ---- an account session (engine_session.c) ------------------------------ */

/* Where the account lives and how to reach its CA. */
struct engine_account_opts {
	const char *directory_url;
	const char *ca_bundle;       /* NULL = system trust store */
	const char *email;
	const char *eab_kid;         /* EAB: both or neither */
	const unsigned char *eab_hmac;
	size_t eab_hmac_len;
	unsigned ca_connections;     /* HTTP connections to the CA, 0 = 8 */
	const char *out_dir;         /* accounts/<ca>/account-key.pem here */
};

/*
 * A loop, an HTTP client and a ready ACME account. The account key is
 * out_dir/accounts/<ca>/account-key.pem (0600), created on first use and
 * reused after.
 */
struct engine_session {
	uv_loop_t loop;
	struct engine_http *http;
	struct acme_client *client;
	EVP_PKEY *account_key;
	char key_path[4096];
	int loop_open;
};

/* Set up directories, key, loop and HTTP client; with ready != 0 also run
 * the account machine to READY. 0, or negative errno with err set. */
int engine_session_open(struct engine_session *s,
			const struct engine_account_opts *o, int ready,
			char *err, size_t errsz);
/* Run the account machine on the loop until READY (0) or FAILED. */
int engine_session_ready(struct engine_session *s, char *err, size_t errsz);
/* Run one operation to completion; 0, or -EIO with the CA's reason. */
int engine_session_run_op(struct engine_session *s, struct acme_op *op,
			  char *err, size_t errsz);
/* Release everything; safe on a zeroed or partly opened session. */
void engine_session_close(struct engine_session *s);

/*
 * Revoke the certificate in out_dir/live/<name>/cert.pem for each name,
 * signed by the account or, with by_cert_key, by the certificate's own
 * key (privkey.pem). reason: RFC 5280 code 0..10 or -1. Returns the number
 * of names that failed (each reported on stderr), or a negative errno with
 * err set when nothing could be tried.
 */
int engine_revoke(const struct engine_account_opts *o,
		  const char *const *names, size_t n, int reason,
		  int by_cert_key, char *err, size_t errsz);
/*
 * Roll the account over to a new key of type t (RFC 8555 §7.3.5). The new
 * key is saved as account-key.pem.new before the CA is asked, and renamed
 * over account-key.pem after it agreed, so a crash leaves a usable key.
 */
int engine_key_rollover(const struct engine_account_opts *o, enum key_type t,
			char *err, size_t errsz);

/* ---- issuing many certificates (engine_issue.c) --------------------------- */

struct engine_issue_opts {
	struct engine_account_opts acct;
	enum key_type key_type;
	const char *profile;
	const char *preferred_issuer;
	const char *http_listen;     /* HTTP-01 responder address */
	unsigned concurrency;        /* orders in flight, >= 1 */
	int progress;                /* draw progress on stderr */
};

/* What happened to one name. */
struct engine_issue_result {
	char *name;
	int ok;
	char *error;   /* one line, NULL when ok */
};

/*
 * Obtain one certificate per name (names already normalized) and write
 * certbot's layout under out_dir. Fills *results (malloc'd array of n,
 * caller frees with engine_issue_results_free). Returns 0 when the run
 * completed (individual names may still have failed: see results), or a
 * negative errno with err set when it could not run at all (no account,
 * responder address in use, unwritable out_dir).
 */
int engine_issue(const char *const *names, size_t n,
		 const struct engine_issue_opts *opts,
		 struct engine_issue_result **results, char *err, size_t errsz);
void engine_issue_results_free(struct engine_issue_result *r, size_t n);

#endif
