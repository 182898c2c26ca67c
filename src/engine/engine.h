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
#include <stdio.h>
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
	const char *content_type;   /* of POST bodies; NULL = ACME's
				       "application/jose+json" */
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
 * A token this process did not publish, looked up elsewhere (the daemon:
 * in the store, where another node sharing it may have written it). Runs
 * on the responder's one thread. The key authorization into out; 0, or
 * -ENOENT.
 */
typedef int (*engine_chall_lookup_fn)(void *ctx, const char *token,
				      char *out, size_t outsz);
/*
 * Serve GET /.well-known/acme-challenge/<token> on listen ("ADDR:PORT",
 * "[v6]:PORT" or ":PORT" for all addresses) from its own thread, from
 * what was published here, else through lookup (may be NULL). Other
 * requests get 404, or with redirect a 308 to https://HOST/PATH?QUERY
 * (as the client sent it) when the Host header is a valid domain name.
 * NULL on failure with the reason in err.
 */
struct engine_chall *engine_chall_new(const char *listen, int redirect,
				      engine_chall_lookup_fn lookup,
				      void *lookup_ctx,
				      char *err, size_t errsz);
/* Hooks for acme_order_new; they publish into this responder. */
struct acme_challenge_hooks engine_chall_hooks(struct engine_chall *ch);
/* Change the answer to non-challenge requests (a configuration reload).
 * Safe from any thread; requests already answered keep theirs. */
void engine_chall_set_redirect(struct engine_chall *ch, int redirect);
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
	/* Optional: called after every response was fed, before the machine
	 * is asked for its next step (e.g. to persist an order URL before
	 * it is used). */
	void (*fed)(struct engine_task *t);
	void *ctx;              /* for done and fed */
	/* private */
	struct engine_http *http;
	uv_timer_t timer;
	int timer_init;
	int closing;
	void (*close_cb)(struct engine_task *);
};

/* Typed constructors for the machines. */
void engine_task_client(struct engine_task *t, struct acme_client *c);
void engine_task_order(struct engine_task *t, struct acme_order *o);
void engine_task_op(struct engine_task *t, struct acme_op *op);
void engine_task_ari(struct engine_task *t, struct acme_ari_op *op);
/* Start (or continue) driving t; 0 or negative errno. */
int engine_task_start(struct engine_task *t, uv_loop_t *loop,
		      struct engine_http *http);
/* The machine has something to do before its WAIT ends (a DNS-01 response
 * became available): step it now. Does nothing while a request is in
 * flight (its response steps it) or once it has ended. */
void engine_task_kick(struct engine_task *t);
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

struct engine_dns01_opts;

struct engine_issue_opts {
	struct engine_account_opts acct;
	enum key_type key_type;
	const char *profile;
	const char *preferred_issuer;
	const char *http_listen;     /* HTTP-01 responder address */
	unsigned concurrency;        /* orders in flight, >= 1 */
	int progress;                /* draw progress on stderr */
	/* DNS-01 for every name (wildcards allowed), no HTTP-01 responder;
	 * NULL = HTTP-01. Borrowed. */
	const struct engine_dns01_opts *dns01;
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


/* ---- the daemon's engine (engine_daemon.c) ------------------------------
 *
 * Keeps every registered domain's certificate valid: each tick it asks the
 * store which domains are due, starts orders for them (up to concurrency),
 * persists every order's URL and key before they are needed, resumes
 * pending orders after a crash, stores new certificates (and writes
 * live/), schedules the renewal, and backs failures off.
 */
struct engine_daemon;
struct engine_limit_def;
struct engine_dns01_opts;

struct engine_daemon_opts {
	struct engine_account_opts acct; /* acct.out_dir: where the account
					    key lives (the state directory) */
	const char *state_dir;           /* the store */
	const char *live_dir;            /* certbot layout, NULL = none */
	enum key_type key_type;
	const char *profile;
	const char *http_listen;         /* HTTP-01 responder, NULL = none */
	int http_redirect;               /* other :80 requests -> https */
	unsigned concurrency;            /* orders in flight, >= 1 */
	unsigned tick_ms;                /* scheduler pass interval, 0 = 1000 */
	int ari;                         /* renew by the CA's renewalInfo
					    windows when it offers them */
	/* The CA's limits for the ledger: ENGINE_LIMIT__MAX rows (struct
	 * engine_limit_def, below), copied; NULL = engine_limits_letsencrypt. */
	const struct engine_limit_def *limits;
	/* DNS pre-flight before each order (docs/daemon.md). */
	int preflight;                       /* 0: off, order at once */
	const char *preflight_resolver;      /* "ADDR:PORT", NULL = resolv.conf */
	const char *const *preflight_addrs;  /* our IPs, borrowed for the
						daemon's life; none: the name
						must only resolve */
	size_t n_preflight_addrs;
	/* [hooks]: run when certificates change (engine_deploy.c); command
	 * and webhook NULL = none. batch and timeout in milliseconds. */
	const char *deploy_cmd;
	const char *webhook_url;
	int64_t hooks_batch_ms;
	int64_t hooks_timeout_ms;
	/* DNS-01 ([dns], [dns "ZONE"]): how TXT records are published for
	 * wildcards and domains registered with challenge dns-01; NULL =
	 * none (such domains fail with a clear reason). Borrowed during
	 * engine_daemon_open only (copied). */
	const struct engine_dns01_opts *dns01;
	/* Longest failure backoff and DNS re-check wait (renew.backoff_max);
	 * 0 = ENGINE_BACKOFF_CAP_MS. A wait the CA asks for (Retry-After) is
	 * still honoured in full. */
	int64_t backoff_max_ms;
	/* SIGTERM/SIGINT: how long orders in flight may finish before the
	 * daemon stops (daemon.drain_timeout); 0 = stop at once. */
	int64_t drain_ms;
	/* SIGHUP, on the loop thread: re-read the configuration and call
	 * engine_daemon_reconfigure (cli_serve.c does). NULL: SIGHUP only
	 * logs that there is nothing to reload. ctx is borrowed. */
	void (*reload)(struct engine_daemon *d, void *ctx);
	void *reload_ctx;
	/* A certificate was stored (issued or renewed) for name, on the loop
	 * thread: front mode serves it from the next handshake. NULL: none.
	 * ctx is borrowed. */
	void (*cert_changed)(void *ctx, const char *name);
	void *cert_changed_ctx;
	/* nginx mode (engine_nginx.c), copied; NULL = off. */
	const struct engine_nginx_opts *nginx;
	/* store.keep_removed: live/ files of removed domains are deleted
	 * after this long (engine_prune.c); 0 = never. */
	int64_t keep_removed_ms;
	/* Challenge type of new orders (acme.challenge). TLS-ALPN-01 is
	 * answered by front mode: publish gets the SHA-256 of the key
	 * authorization (acme_tlsalpn01_digest) and returns 0 or a negative
	 * errno (the order then fails); both on the loop thread. */
	enum acme_chall_type chall;
	int (*tlsalpn_publish)(void *ctx, const char *domain,
			       const unsigned char digest[32]);
	void (*tlsalpn_unpublish)(void *ctx, const char *domain);
	void *tlsalpn_ctx;
	/* An order for name failed (on the loop thread): front mode stops
	 * handshakes waiting for its on-demand certificate. NULL: none. */
	void (*order_failed)(void *ctx, const char *name);
	void *order_failed_ctx;
	/* SIGTERM/SIGINT arrived (on the loop thread): front mode stops
	 * accepting and lets its connections finish for drain_ms (0: the
	 * daemon stops at once, a second signal). NULL: none. */
	void (*draining)(void *ctx, int64_t drain_ms);
	void *draining_ctx;
};

/* Failure types counted apart (the rest count as "other"), and the
 * longest type kept: the CA's problem types are a short fixed list. */
#define ENGINE_FAIL_TYPES 24
#define ENGINE_FAIL_TYPE_MAX 40
/* Cost of the scheduler passes since start (bench/serve.sh reads it from
 * /metrics): wall time, and CPU time of the loop thread, of the last and
 * of the longest pass, and their sums. */
struct engine_pass_stats {
	uint64_t passes;
	double last_wall_s, max_wall_s, sum_wall_s;
	double last_cpu_s, max_cpu_s, sum_cpu_s;
};

/* What the status page shows of the daemon, a snapshot published by the
 * loop thread after every scheduler pass (at least every tick_ms). */
struct engine_daemon_stats {
	unsigned in_flight;        /* orders being worked on */
	unsigned held;             /* held back by the ledger at the last pass */
	double orders_tokens;      /* the account's new-orders bucket */
	double orders_capacity;    /* 0: the limit is off */
	int64_t orders_full_at_ms; /* when it is full again */
	int64_t at_ms;             /* when the snapshot was taken */
	/* Counters since start, for /metrics. */
	uint64_t orders_valid;     /* orders that ended with a certificate */
	uint64_t orders_failed;    /* orders that failed, by type below */
	struct {
		char type[ENGINE_FAIL_TYPE_MAX]; /* problem type or error kind */
		uint64_t n;
	} failures[ENGINE_FAIL_TYPES];
	unsigned n_failure_types;
	uint64_t ari_ok, ari_failed; /* renewalInfo fetches */
	int64_t orders_period_ms;  /* refill time of the orders bucket */
	unsigned concurrency;      /* the limit on in_flight in force */
	int draining;              /* SIGTERM: no new orders, waiting for
				      those in flight */
	struct engine_pass_stats pass;
};
/* Copy the latest snapshot into *out. Safe from any thread. */
void engine_daemon_stats(struct engine_daemon *d,
			 struct engine_daemon_stats *out);

/* Set everything up (store, account, responder); 0 or negative errno with
 * err set. *out is the caller's: engine_daemon_close. */
int engine_daemon_open(const struct engine_daemon_opts *o,
		       struct engine_daemon **out, char *err, size_t errsz);
/*
 * Run until stopped; 0 on a clean stop. The first SIGTERM or SIGINT
 * drains: no new order starts, those in flight may finish for up to
 * drain_ms, then the loop stops (what is still pending resumes at the
 * next start); a second one stops at once. SIGHUP calls opts.reload
 * between RELOADING=1 and READY=1 notifications.
 */
int engine_daemon_run(struct engine_daemon *d);
/* engine_daemon_reconfigure's checks of n, changing nothing (a reload
 * checks every part before it applies any). Pure. 0, or -EINVAL with err
 * set. */
int engine_daemon_check_live(const struct engine_daemon_opts *n, char *err,
			     size_t errsz);
/*
 * Apply the settings of n that can change while running: concurrency,
 * http_redirect, limits (buckets keep their tokens, capped at a new
 * capacity), backoff_max_ms, drain_ms. Every other field of n is ignored
 * (it needs a restart; the caller says so). n and what it points to are
 * borrowed: what is kept is copied. Loop thread only (the reload hook).
 * 0, or -EINVAL with err set and nothing changed: exactly when
 * engine_daemon_check_live(n) refuses, so a caller that checked first
 * can apply its own settings knowing this one will not fail.
 *
 * A feature adding a live setting adds its field to struct
 * engine_daemon_opts, its check to engine_daemon_check_live and its copy
 * here.
 */
int engine_daemon_reconfigure(struct engine_daemon *d,
			      const struct engine_daemon_opts *n, char *err,
			      size_t errsz);
/* Something changed (a domain added, a renewal asked for): run a
 * scheduler pass soon. Safe from any thread. */
void engine_daemon_wake(struct engine_daemon *d);
void engine_daemon_close(struct engine_daemon *d); /* NULL ok */

/* ---- service manager notifications (engine_notify.c) ---------------------
 *
 * sd_notify(3) for a Type=notify systemd unit. Every function does nothing
 * and returns 0 without NOTIFY_SOCKET in the environment; otherwise 0 or
 * a negative errno (logged once). Safe from any thread.
 */
int engine_notify_enabled(void);   /* 1 when NOTIFY_SOCKET is set */
int engine_notify_ready(void);     /* READY=1 */
int engine_notify_reloading(void); /* RELOADING=1 + MONOTONIC_USEC */
int engine_notify_stopping(void);  /* STOPPING=1 */
/* STATUS=<one line, newlines replaced, at most 512 bytes> */
int engine_notify_status(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* ---- scheduling: pure policy (engine_renew.c, engine_limits.c,
 *      engine_queue.c) ------------------------------------------------------
 *
 * Everything in this section is pure: no I/O, no clock reads, no
 * randomness. Time comes in as now_ms, wall-clock milliseconds since the
 * epoch (the unit of the store's *_ms columns and of acme_error's
 * retry_after_ms), and randomness as a uint64_t rnd the caller draws from
 * its own generator (any value is valid; equal inputs give equal outputs).
 * See docs/scheduling.md for the rules and why.
 */

/* "Never": no time at all (stop retrying, nothing to wait for). */
#define ENGINE_NEVER INT64_MAX

#define ENGINE_MIN_MS  ((int64_t)60 * 1000)
#define ENGINE_HOUR_MS ((int64_t)3600 * 1000)
#define ENGINE_DAY_MS  ((int64_t)86400 * 1000)

/* Classes of work, in priority order (smaller is served first). */
enum engine_class {
	ENGINE_CLASS_URGENT = 0, /* renewal with < 1/5 of the lifetime left */
	ENGINE_CLASS_NEW,        /* a domain without a certificate */
	ENGINE_CLASS_EARLY,      /* renewal that is due but not yet urgent */
	ENGINE_CLASS__MAX
};
extern const char *const engine_class_names[ENGINE_CLASS__MAX];

/* A suggested window from the CA's renewalInfo (RFC 9773 §4.2). */
struct engine_ari_window {
	int64_t start_ms;
	int64_t end_ms;
};

/* Jitter on the lifetime rule: +-2 % of the lifetime. */
#define ENGINE_RENEW_JITTER_PCT 2
/* Certificates shorter than this renew at 1/2 instead of 2/3. */
#define ENGINE_RENEW_SHORT_MS (10 * ENGINE_DAY_MS)

/*
 * When to renew a certificate valid from not_before_ms to not_after_ms.
 *  - ari non-NULL and valid (end > start): a uniform point of [start, end)
 *    chosen by rnd (RFC 9773 §4.2); if that point is in the past, now_ms.
 *    An invalid window (end <= start) is treated as absent (§4.2).
 *  - otherwise: not_before + 2/3 of the lifetime (1/2 when the lifetime is
 *    under ENGINE_RENEW_SHORT_MS), moved by rnd within +-2 % of the
 *    lifetime.
 * Either way the result is never later than not_after minus the safety
 * margin (engine_renew_margin) and never earlier than not_before. A
 * certificate with not_after <= not_before gives now_ms. The result may
 * lie in the past: the caller then renews at once.
 */
int64_t engine_renew_at(int64_t not_before_ms, int64_t not_after_ms,
			const struct engine_ari_window *ari, int64_t now_ms,
			uint64_t rnd);
/* Safety margin: 1/10 of the lifetime, at least one minute. */
int64_t engine_renew_margin(int64_t not_before_ms, int64_t not_after_ms);
/* From this time on a renewal is ENGINE_CLASS_URGENT: not_after minus
 * 1/5 of the lifetime (twice the margin). */
int64_t engine_renew_urgent_at(int64_t not_before_ms, int64_t not_after_ms);
/* ENGINE_CLASS_URGENT at or after engine_renew_urgent_at, else EARLY. */
enum engine_class engine_renew_class(int64_t not_before_ms,
				     int64_t not_after_ms, int64_t now_ms);

/* Bounds on the CA's Retry-After for renewalInfo polling, and the interval
 * used when the CA sent none or the fetch failed for good. */
#define ENGINE_ARI_MIN_MS     ENGINE_HOUR_MS
#define ENGINE_ARI_MAX_MS     ENGINE_DAY_MS
#define ENGINE_ARI_DEFAULT_MS (6 * ENGINE_HOUR_MS)
/*
 * When to fetch renewalInfo next: now + retry_after_ms (relative, -1 when
 * the CA sent none: ENGINE_ARI_DEFAULT_MS) clamped to [ENGINE_ARI_MIN_MS,
 * ENGINE_ARI_MAX_MS]. ENGINE_NEVER once that time is at or past
 * not_after_ms (RFC 9773 §4.3: stop checking an expired certificate).
 */
int64_t engine_renew_ari_next(int64_t now_ms, int64_t retry_after_ms,
			      int64_t not_after_ms);

/*
 * A certificate's renewal has come due (its next attempt time passed):
 * renew now, or first ask the CA's renewalInfo? ari_usable: ARI is on and
 * the CA offers renewalInfo. Without ARI: always renew (the next attempt
 * was the lifetime rule's time). With ARI: renew when the known window
 * (ari, NULL or invalid when none is known) says the time has come
 * (engine_renew_at <= now); otherwise ask the CA first -- the due time
 * was a poll time, or the lifetime rule's time with no window known yet.
 */
enum engine_due_act {
	ENGINE_DUE_RENEW,
	ENGINE_DUE_ASK_ARI,
};
enum engine_due_act engine_renew_due(int64_t not_before_ms,
				     int64_t not_after_ms,
				     const struct engine_ari_window *ari,
				     int ari_usable, int64_t now_ms,
				     uint64_t rnd);
/*
 * After a renewalInfo fetch: 1 when the certificate should be renewed
 * now, else 0 with *next_ms the time to look at it again: the earlier of
 * its renewal time and the next fetch (engine_renew_ari_next with the
 * CA's Retry-After). ari is the window received, NULL when the fetch
 * failed: then the lifetime rule decides, and the next fetch is tried
 * after ENGINE_ARI_MIN_MS.
 */
int engine_renew_after_ari(int64_t not_before_ms, int64_t not_after_ms,
			   const struct engine_ari_window *ari,
			   int64_t retry_after_ms, int64_t now_ms, uint64_t rnd,
			   int64_t *next_ms);
/* The first look at a new certificate: its lifetime renewal time, or
 * with ARI usable the first renewalInfo fetch if that comes earlier. */
int64_t engine_renew_first(int64_t not_before_ms, int64_t not_after_ms,
			   int ari_usable, int64_t now_ms, uint64_t rnd);
/* A stable random seed for one certificate (from its serial), so that the
 * point chosen in an unchanged ARI window does not move at every fetch:
 * re-drawing it each time would pull renewals towards the window's start. */
uint64_t engine_renew_seed(const char *serial);

/* Failure backoff: 1 min doubling per consecutive failure up to 24 h,
 * each delay multiplied by a factor in [0.9, 1.1) from rnd. */
#define ENGINE_BACKOFF_BASE_MS ENGINE_MIN_MS
#define ENGINE_BACKOFF_CAP_MS  ENGINE_DAY_MS
/* Jitter added after a rateLimited Retry-After: [0, 1 min). */
#define ENGINE_BACKOFF_RL_JITTER_MS ENGINE_MIN_MS

/*
 * When to try again after the failures-th consecutive failure (1 for the
 * first; 0 is taken as 1) whose error is e (may be NULL: a failure without
 * details, backed off like a transient one).
 *  - permanent (acme_problem_is_permanent(e->type), or a compound problem
 *    whose every subproblem is permanent): ENGINE_NEVER.
 *  - rateLimited with a Retry-After: now + retry_after + [0, 1 min) jitter,
 *    whatever failures says (the CA told us exactly when).
 *  - otherwise: the exponential delay above, or now + Retry-After when the
 *    CA gave one that is longer.
 * *why (may be NULL) gets a static string naming the rule applied:
 * "permanent", "rate-limited", "retry-after" or "backoff".
 */
int64_t engine_renew_backoff(unsigned failures, const struct acme_error *e,
			     int64_t now_ms, uint64_t rnd, const char **why);

/* ---- rate-limit ledger (engine_limits.c) --------------------------------
 *
 * Token buckets with continuous refill: capacity C tokens, refilling at
 * C per period_ms, so tokens(t) = min(C, tokens + (t - updated) * C / P).
 * A bucket's whole state is (tokens, updated_ms), persisted as is. A
 * bucket never seen is full. One struct engine_limits per CA account.
 */
enum engine_limit {
	ENGINE_LIMIT_ORDERS = 0,   /* new orders per account; key "" */
	ENGINE_LIMIT_REGDOMAIN,    /* certificates per registered domain;
				      key engine_limits_regdomain() */
	ENGINE_LIMIT_IDENTICAL,    /* certificates per identical set of
				      names; key engine_limits_setkey() */
	ENGINE_LIMIT_FAILED_AUTHZ, /* failed authorizations per identifier
				      per account; key the name */
	ENGINE_LIMIT__MAX
};
extern const char *const engine_limit_names[ENGINE_LIMIT__MAX];

struct engine_limit_def {
	double capacity;    /* tokens; <= 0 disables the limit */
	int64_t period_ms;  /* time to refill from 0 to capacity, > 0 */
	int renewal_exempt; /* renewals are not charged (CA policy) */
};
/* Let's Encrypt's published limits (2025), the default table. */
extern const struct engine_limit_def
	engine_limits_letsencrypt[ENGINE_LIMIT__MAX];

/* A bucket's persisted state. */
struct engine_bucket {
	double tokens;
	int64_t updated_ms;
};

/* Pure bucket math on one (def, bucket). A disabled def (capacity <= 0)
 * always allows and never charges. */
double engine_limits_level(const struct engine_limit_def *d,
			   const struct engine_bucket *b, int64_t now_ms);
/* Earliest time >= now_ms at which k tokens are there; ENGINE_NEVER when k
 * exceeds the capacity. */
int64_t engine_limits_bucket_when(const struct engine_limit_def *d,
				  const struct engine_bucket *b, double k,
				  int64_t now_ms);
/* Take k tokens: 0, or -EAGAIN with b unchanged when fewer are there. */
int engine_limits_bucket_take(const struct engine_limit_def *d,
			      struct engine_bucket *b, double k,
			      int64_t now_ms);

struct engine_limits;

/* New ledger with the definitions defs (copied; NULL = Let's Encrypt).
 * NULL on allocation failure. */
struct engine_limits *engine_limits_new(const struct engine_limit_def *defs);
void engine_limits_free(struct engine_limits *l); /* NULL ok */
/* Override one limit (config, per CA). Existing buckets keep their tokens,
 * capped at the new capacity. 0 or -EINVAL (bad kind or period). */
int engine_limits_set(struct engine_limits *l, enum engine_limit kind,
		      const struct engine_limit_def *d);
const struct engine_limit_def *engine_limits_def(const struct engine_limits *l,
						 enum engine_limit kind);
/* 1 when k tokens can be taken now from (kind, key), else 0. key borrowed. */
int engine_limits_can(const struct engine_limits *l, enum engine_limit kind,
		      const char *key, double k, int64_t now_ms);
/* engine_limits_bucket_when for (kind, key). */
int64_t engine_limits_when(const struct engine_limits *l,
			   enum engine_limit kind, const char *key, double k,
			   int64_t now_ms);
/* Take k tokens: 0, -EAGAIN (not enough, nothing taken), -ENOMEM. */
int engine_limits_take(struct engine_limits *l, enum engine_limit kind,
		       const char *key, double k, int64_t now_ms);
/* Give k tokens back (a reservation not used), capped at capacity. */
int engine_limits_give(struct engine_limits *l, enum engine_limit kind,
		       const char *key, double k, int64_t now_ms);
/* Put a persisted bucket back, replacing any state of (kind, key). Tokens
 * are clamped to [0, capacity]; an updated_ms later than a read's now_ms
 * (the wall clock stepped back) refills nothing until now passes it.
 * 0, -EINVAL, -ENOMEM. */
int engine_limits_restore(struct engine_limits *l, enum engine_limit kind,
			  const char *key, const struct engine_bucket *b);
/* Call cb for every stored bucket (for persisting); stops at and returns
 * cb's first non-zero value. key is valid during the call only. */
int engine_limits_foreach(const struct engine_limits *l,
			  int (*cb)(void *ctx, enum engine_limit kind,
				    const char *key,
				    const struct engine_bucket *b),
			  void *ctx);
/* Forget buckets that are full again at now_ms (equal to absent). Returns
 * the number dropped. */
size_t engine_limits_gc(struct engine_limits *l, int64_t now_ms);
size_t engine_limits_count(const struct engine_limits *l);

/* What the status page shows for one bucket. */
struct engine_headroom {
	double tokens;      /* available now */
	double capacity;
	int64_t full_at_ms; /* when it is full again (now_ms if full) */
};
int engine_limits_headroom(const struct engine_limits *l,
			   enum engine_limit kind, const char *key,
			   int64_t now_ms, struct engine_headroom *out);

/* Registered domain of a normalized name for ENGINE_LIMIT_REGDOMAIN, from
 * libpsl's built-in public suffix list (ICANN and private sections, as
 * Let's Encrypt uses): "a.b.example.co.uk" -> "example.co.uk". A name that
 * is itself a public suffix is its own key. 0, or -EINVAL / -ENOSPC. */
int engine_limits_regdomain(const char *name, char *out, size_t outsz);
/* Key of an identical set: names lower-cased, sorted, de-duplicated and
 * joined with ','. 0, -EINVAL (n == 0), -ENOSPC, -ENOMEM. */
int engine_limits_setkey(const char *const *names, size_t n, char *out,
			 size_t outsz);

/* ---- work queue (engine_queue.c) ----------------------------------------
 *
 * Domain work items keyed by name, one per name, ordered by (class,
 * due_ms, name): one binary heap per class plus a heap of pending
 * promotions (EARLY -> URGENT at promote_ms) and a name index. push,
 * pop, update and remove are O(log n); about 64 bytes per item plus the
 * name (see docs/scheduling.md).
 */
struct engine_queue;

struct engine_queue_item {
	const char *name;   /* borrowed from the queue: valid until the item
			       is changed or removed */
	enum engine_class cls;
	int64_t due_ms;     /* not started before this */
	int64_t promote_ms; /* EARLY only: becomes URGENT here; ENGINE_NEVER
			       for none */
};

struct engine_queue *engine_queue_new(void); /* NULL on ENOMEM */
void engine_queue_free(struct engine_queue *q); /* NULL ok */
size_t engine_queue_size(const struct engine_queue *q);
/*
 * Insert name (copied, at most NAME_MAX_LEN bytes) or, when it is already
 * queued, replace its class and times (update). 0, -EINVAL (bad class,
 * empty or long name), -ENOMEM.
 */
int engine_queue_push(struct engine_queue *q, const char *name,
		      enum engine_class cls, int64_t due_ms,
		      int64_t promote_ms);
/* 0 and *out filled, or -ENOENT. */
int engine_queue_get(const struct engine_queue *q, const char *name,
		     struct engine_queue_item *out);
/* 0, or -ENOENT. */
int engine_queue_remove(struct engine_queue *q, const char *name);
/* The smallest item by (class, due, name) regardless of now; 0 or
 * -ENOENT when empty. */
int engine_queue_peek(const struct engine_queue *q,
		      struct engine_queue_item *out);
/* Remove the smallest item, copying its name into name (namesz >
 * NAME_MAX_LEN); 0 or -ENOENT. */
int engine_queue_pop(struct engine_queue *q, char *name, size_t namesz,
		     struct engine_queue_item *out);
/* Move every EARLY item whose promote_ms <= now_ms to URGENT; returns how
 * many moved. */
size_t engine_queue_promote(struct engine_queue *q, int64_t now_ms);

/* Share of the ORDERS bucket early renewals may not touch. */
#define ENGINE_QUEUE_EARLY_RESERVE 0.5

/*
 * Pick the next item allowed to start at now_ms, with the ledger l (NULL:
 * no limits). The rule (docs/scheduling.md):
 *  1. promote EARLY items whose promote_ms has come (engine_queue_promote);
 *  2. classes are tried in order URGENT, NEW, EARLY; a class is considered
 *     only if its earliest item is due (due_ms <= now_ms);
 *  3. a class is skipped when the account's ORDERS bucket cannot give it a
 *     token: URGENT and NEW may take the last token, EARLY only while more
 *     than ENGINE_QUEUE_EARLY_RESERVE of the capacity would remain, so
 *     early renewals never use up what onboarding and urgent renewals need;
 *  4. within a class, an item whose own buckets are empty (REGDOMAIN
 *     unless renewal_exempt for renewals, IDENTICAL, FAILED_AUTHZ, keyed
 *     by its name) is deferred: its due_ms becomes the time those buckets
 *     refill and the next item of the class is tried; one domain at its
 *     limit never blocks the others.
 * The chosen item is removed, its name copied into name (namesz >
 * NAME_MAX_LEN), and one token taken from ORDERS, REGDOMAIN (unless
 * exempt) and IDENTICAL: a reservation the caller gives back with
 * engine_limits_give if no order was created. FAILED_AUTHZ is only
 * checked; the caller takes from it when an authorization fails.
 * Returns 1 with *out (name points into the caller's buffer), 0 when
 * nothing may start now, or a negative errno. *wake_at (may be NULL)
 * gets the earliest time calling again may yield an item (ENGINE_NEVER if
 * the queue is empty); with 1 it is now_ms.
 */
int engine_queue_next(struct engine_queue *q, struct engine_limits *l,
		      int64_t now_ms, char *name, size_t namesz,
		      struct engine_queue_item *out, int64_t *wake_at);

/* ---- ACME Renewal Information (engine_ari.c) -----------------------------
 *
 * RFC 9773: ask the CA when it would like a certificate renewed. The fetch
 * is an unauthenticated GET, so only the CA's directory is needed, never
 * the account.
 */

/*
 * Fetch the renewalInfo of the first certificate of chain_pem (the leaf;
 * PEM, NUL-terminated, borrowed) from s's CA, fetching the directory first
 * if the client has none yet. Fills *out (the caller clears it with
 * acme_ari_clear; retry_after_ms relative to the response). Returns 0;
 * -ENOENT when the certificate has no Authority Key Identifier (ARI cannot
 * name it); -ENOTSUP when the CA's directory has no renewalInfo (nothing
 * was requested); -EINVAL when chain_pem holds no certificate; -EIO when
 * the CA could not be reached or refused (its reason in err).
 */
int engine_ari_fetch(struct engine_session *s, const char *chain_pem,
		     struct acme_ari *out, char *err, size_t errsz);
/* Drive any task to DONE or FAILED on s's loop (what engine_session_run_op
 * does for acme_op; engine_ari_fetch uses it for machines of other
 * types). Returns the final step. (engine_session.c) */
enum acme_step engine_session_run_task(struct engine_session *s,
				       struct engine_task *t);

/* ---- DNS pre-flight (engine_dns.c: the resolver; engine_preflight.c:
 *      pure judgement) ---------------------------------------------------
 *
 * Before a domain is ordered, its A and AAAA records (following CNAMEs)
 * are looked up and compared with the addresses configured as ours, so no
 * order (and no failed-authorization token) is spent on a name that does
 * not point at us yet (docs/daemon.md).
 */

#define ENGINE_DNS_MAX_ADDRS  16  /* addresses kept per query */
#define ENGINE_DNS_MAX_CNAMES 8   /* CNAME targets kept per query */
#define ENGINE_DNS_NAME_MAX   254 /* a name and its NUL */
#define ENGINE_DNS_ADDR_MAX   46  /* INET6_ADDRSTRLEN */

/* What one query (A or AAAA) came back with. */
enum engine_dns_status {
	ENGINE_DNS_OK = 0,       /* records of the type asked for */
	ENGINE_DNS_NODATA,       /* the name exists, no record of that type */
	ENGINE_DNS_NXDOMAIN,     /* the name does not exist */
	ENGINE_DNS_SERVFAIL,     /* the server failed (SERVFAIL) */
	ENGINE_DNS_REFUSED,      /* the server refused (REFUSED) */
	ENGINE_DNS_TIMEOUT,      /* no answer in time */
	ENGINE_DNS_UNREACHABLE,  /* the server could not be reached */
	ENGINE_DNS_BADRESP,      /* a malformed or unexpected answer */
	ENGINE_DNS_ERROR,        /* anything else (local) */
	ENGINE_DNS__MAX
};
extern const char *const engine_dns_status_names[ENGINE_DNS__MAX];

struct engine_dns_answer {
	enum engine_dns_status status;
	/* The CNAME chain from the name asked for, each target in order
	 * ("x.example.net" for shop.example.com CNAME x.example.net). */
	size_t n_cnames;
	char cnames[ENGINE_DNS_MAX_CNAMES][ENGINE_DNS_NAME_MAX];
	/* The addresses of the chain's end, canonical text (inet_ntop). */
	size_t n_addrs;
	char addrs[ENGINE_DNS_MAX_ADDRS][ENGINE_DNS_ADDR_MAX];
};

struct engine_dns_result {
	struct engine_dns_answer a, aaaa;
};

struct engine_dns;

/* Called once per lookup from the loop; r is valid during the call. */
typedef void (*engine_dns_cb)(void *ctx, const struct engine_dns_result *r);

/*
 * A stub resolver (c-ares) on loop: its sockets are watched with uv_poll,
 * its retransmissions run on a uv_timer. server: "ADDR:PORT" or
 * "[V6]:PORT" asked directly, or NULL for the servers of
 * /etc/resolv.conf. timeout_ms per try (two tries per server), 0 = 2000.
 * NULL on failure with the reason in err.
 */
struct engine_dns *engine_dns_new(uv_loop_t *loop, const char *server,
				  unsigned timeout_ms, char *err, size_t errsz);
/*
 * Look name (a normalized domain name, copied) up: A and AAAA at once,
 * without search domains. cb is called exactly once, possibly before this
 * returns (a lookup that cannot start). 0, -EINVAL (bad name), -ENOMEM
 * (then cb is not called).
 */
int engine_dns_lookup(struct engine_dns *r, const char *name,
		      engine_dns_cb cb, void *ctx);
/* Lookups in flight. */
size_t engine_dns_active(const struct engine_dns *r);
/* Drop every lookup (their callbacks are not called) and close; NULL ok.
 * Not from a callback. Run the loop afterwards so libuv can release the
 * handles. */
void engine_dns_free(struct engine_dns *r);

/* The outcome of a pre-flight check. */
enum engine_preflight_verdict {
	ENGINE_PREFLIGHT_OK = 0,     /* points at us (or, with no addresses
					configured, resolves at all) */
	ENGINE_PREFLIGHT_MISMATCH,   /* resolves to an address not ours */
	ENGINE_PREFLIGHT_NO_ADDRESS, /* exists, but has no A or AAAA */
	ENGINE_PREFLIGHT_NXDOMAIN,   /* does not exist */
	ENGINE_PREFLIGHT_DNS_ERROR,  /* the DNS could not tell (SERVFAIL,
					timeout, unreachable, ...) */
	ENGINE_PREFLIGHT__MAX
};
/* Problem types stored as the domain's last error: "dns-ok",
 * "dns-mismatch", "dns-no-address", "dns-nxdomain", "dns-error". */
extern const char *const engine_preflight_types[ENGINE_PREFLIGHT__MAX];

/*
 * Judge r, the answers for name, against ours (n_ours IP literals,
 * borrowed; any text form inet_pton reads). Pure. The rule:
 *  - a query that failed (neither records, NODATA nor NXDOMAIN) makes the
 *    whole check DNS_ERROR: what it would have said is unknown;
 *  - NXDOMAIN from either query: NXDOMAIN;
 *  - no address at all: NO_ADDRESS;
 *  - with ours empty, any address is OK; otherwise every address must be
 *    one of ours (a CA validating HTTP-01 may connect to any of them, and
 *    Let's Encrypt tries IPv6 first), else MISMATCH.
 * why (whysz > 0) gets one line for people and the history, naming the
 * domain, what was seen (addresses sorted, so an answer in another order
 * reads the same) and the CNAME chain, e.g. "shop.example.com resolves to
 * 203.0.113.9 (via CNAME x.example.net), not one of ours: 127.0.0.1".
 */
enum engine_preflight_verdict
engine_preflight_judge(const char *name, const struct engine_dns_result *r,
		       const char *const *ours, size_t n_ours, char *why,
		       size_t whysz);

/* First re-check of a domain that failed its pre-flight. */
#define ENGINE_PREFLIGHT_BASE_MS ENGINE_MIN_MS
/*
 * When to check again after the checks-th consecutive failed pre-flight
 * (1 for the first; 0 is taken as 1): 1 minute doubling per check, capped
 * at max_ms (<= 0: ENGINE_BACKOFF_CAP_MS), then shortened by up to 10 %
 * from rnd so domains that failed together spread out. Pure.
 */
int64_t engine_preflight_backoff(unsigned checks, int64_t now_ms,
				 int64_t max_ms, uint64_t rnd);
/* ---- DNS-01 (engine_dns01.c: publication on the loop; engine_dns01_ldns.c:
 *      the DNS exchanges through ldns; engine_tsig.c: TSIG key files) ------- */

#define ENGINE_TSIG_SECRET_MAX 256
/* A TSIG key (RFC 8945). algorithm as ldns names it ("hmac-sha256."). */
struct engine_tsig_key {
	char name[ENGINE_DNS_NAME_MAX];
	char algorithm[32];
	char secret[ENGINE_TSIG_SECRET_MAX]; /* base64 */
};
/*
 * Parse a key file as BIND's tsig-keygen writes it: exactly one
 * `key "NAME" { algorithm hmac-sha256; secret "BASE64"; };` (comments
 * allowed). Pure. 0 with *k, or -EINVAL with why (never the secret) and
 * *k zeroed.
 */
int engine_tsig_parse(const char *text, size_t len, struct engine_tsig_key *k,
		      char *why, size_t whysz);

enum engine_dns01_updater {
	ENGINE_DNS01_RFC2136 = 0, /* UPDATE to the primary, TSIG-signed */
	ENGINE_DNS01_HOOK,        /* COMMAND add|remove NAME VALUE */
	ENGINE_DNS01__MAX
};
extern const char *const engine_dns01_updater_names[ENGINE_DNS01__MAX];

/* How to update one zone. Borrowed by engine_dns01_new, which copies. */
struct engine_dns01_zone {
	const char *zone;     /* "platform.example": names in it and below;
				 NULL or "" = any name (its zone found from
				 its SOA record), used when no zone matches */
	enum engine_dns01_updater updater;
	const char *server;   /* rfc2136: the primary, "ADDR:PORT" */
	const struct engine_tsig_key *key; /* rfc2136: NULL = unsigned */
	const char *command;  /* hook */
};

struct engine_dns01_opts {
	const struct engine_dns01_zone *zones;
	size_t n_zones;
	const char *resolver;   /* "ADDR:PORT" asked for SOA, NS and their
				   addresses; NULL = /etc/resolv.conf */
	int64_t propagation_timeout_ms; /* 0 = 120 s */
	int64_t hook_timeout_ms;        /* 0 = 60 s */
	unsigned ttl;                   /* of the TXT record, 0 = 60 */
};

struct engine_dns01;
/* A publication's outcome for token: rc 0 when every authoritative server
 * serves the record, else a negative errno and why (one line). */
typedef void (*engine_dns01_ready_cb)(void *ctx, const char *token, int rc,
				      const char *why);

/* 0 with *out, or -EINVAL with err (a zone without what its updater
 * needs). */
int engine_dns01_new(uv_loop_t *loop, const struct engine_dns01_opts *o,
		     struct engine_dns01 **out, char *err, size_t errsz);
/* 1 when some zone (or the catch-all) can publish for name. */
int engine_dns01_covers(const struct engine_dns01 *d, const char *name);
/*
 * Publish the DNS-01 response of domain ("*.x" publishes at x's
 * _acme-challenge) and wait until every authoritative server of its zone
 * serves it; cb is called once from the loop (never from here), unless
 * the token is unpublished first. ACME_PUBLISH_PENDING, -ENOENT (no zone
 * for the name), -EINVAL, -ENOMEM.
 */
int engine_dns01_publish(struct engine_dns01 *d, const char *domain,
			 const char *token, const char *key_auth,
			 engine_dns01_ready_cb cb, void *ctx);
/* Withdraw token's record (after whatever is in flight for it); its cb
 * is not called any more. */
void engine_dns01_unpublish(struct engine_dns01 *d, const char *domain,
			    const char *token);
/* Publications not finished (removals included). */
size_t engine_dns01_active(const struct engine_dns01 *d);
/* Stop: running hooks are killed, records still in zones are logged as
 * left; NULL ok. Run the loop afterwards to release the handles. */
void engine_dns01_free(struct engine_dns01 *d);

/* Blocking exchanges for the thread pool (engine_dns01_ldns.c). resolver
 * "ADDR:PORT" or NULL (resolv.conf). Each returns 0 or a negative errno
 * with why. */
int engine_dns01_zone_of(const char *resolver, const char *name, char *zone,
			 size_t zonesz, char *why, size_t whysz);
int engine_dns01_update(const char *server, const char *zone,
			const struct engine_tsig_key *key, int add,
			const char *owner, const char *value, unsigned ttl,
			char *why, size_t whysz);
/* 1 when every authoritative server of zone (NS, their A/AAAA, each
 * asked on port 53 without recursion) serves value at owner; 0 when one
 * does not yet (why names it); negative on a lookup error. */
int engine_dns01_check(const char *resolver, const char *zone,
		       const char *owner, const char *value, char *why,
		       size_t whysz);

/* ---- deploy hook and webhook (engine_batch.c, engine_cmd.c,
 *      engine_webhook.c, engine_deploy.c) ----------------------------------- */

/*
 * A set of domain names in the order they were added, each once: the
 * certificates changed since the last hook run. Pure (no I/O).
 */
struct engine_batch;

struct engine_batch *engine_batch_new(void); /* NULL on ENOMEM */
void engine_batch_free(struct engine_batch *b); /* NULL ok */
/* Add name (copied; 1..NAME_MAX_LEN bytes of [a-z0-9.*-], as the store
 * holds them). 1 when added, 0 when already there, -EINVAL, -ENOMEM. */
int engine_batch_add(struct engine_batch *b, const char *name);
size_t engine_batch_count(const struct engine_batch *b);
/* The i-th name (i < count), borrowed until the batch changes. */
const char *engine_batch_name(const struct engine_batch *b, size_t i);
void engine_batch_clear(struct engine_batch *b);
/* Move every name of from into to (deduplicated); from is left empty.
 * 0, or -ENOMEM with from unchanged (to may hold some of its names:
 * merging again is harmless). */
int engine_batch_merge(struct engine_batch *to, struct engine_batch *from);
/* Every name followed by '\n', malloc'd and NUL-terminated, length in
 * *len (may be NULL); NULL on ENOMEM. An empty batch gives "". */
char *engine_batch_lines(const struct engine_batch *b, size_t *len);
/* Add the names of text (len bytes, one a line, as engine_batch_lines
 * writes them). Blank lines are skipped; a line that is not a valid name,
 * and a last line without its '\n' (a torn write), are skipped and
 * counted in *bad (may be NULL). 0 or -ENOMEM. */
int engine_batch_parse(struct engine_batch *b, const char *text, size_t len,
		       size_t *bad);

/* What the webhook tells of one changed domain. */
struct engine_batch_item {
	const char *name;
	const char *serial;   /* hex; NULL = unknown */
	int64_t not_after_ms; /* < 0: unknown */
};
/*
 * The webhook's body (docs/daemon.md):
 *   {"event":"certificates-changed","time":T,"count":N,"domains":[
 *     {"name":..,"not_after":T,"serial":..,"fullchain":P,"privkey":P},..]}
 * times RFC 3339 UTC, paths under live_dir (null when live_dir is NULL,
 * unknown values null). malloc'd, NUL-terminated, length in *len; NULL on
 * ENOMEM.
 */
char *engine_batch_json(const struct engine_batch_item *items, size_t n,
			const char *live_dir, int64_t now_ms, size_t *len);

/* Webhook attempts and the wait before attempt k (1-based, k >= 2):
 * 1 s, 4 s, 16 s. */
#define ENGINE_WEBHOOK_ATTEMPTS 4
int64_t engine_batch_retry_ms(unsigned attempt);

/* ---- a shell command on the loop (engine_cmd.c) ---- */

struct engine_cmd;

struct engine_cmd_result {
	int spawn_error;     /* negative errno when it could not start, else 0 */
	int64_t exit_status; /* when it exited */
	int term_signal;     /* when a signal ended it, else 0 */
	int timed_out;       /* killed because it ran past its timeout */
};
typedef void (*engine_cmd_cb)(void *ctx, const struct engine_cmd_result *r);

/*
 * Run `sh -c command` in a process group of its own, with the daemon's
 * environment plus env (NULL-terminated "K=V" strings, copied), stdin
 * from stdin_fd (borrowed; -1 = /dev/null). Every line it writes is
 * logged under sub: stdout at info, stderr at warn (lines over 1,000
 * bytes are cut, at most 200 lines a run). After timeout_ms the group
 * gets SIGTERM, 5 s later SIGKILL. cb is called once, when the command has
 * ended and its output is read (or could not start: spawn_error); the
 * object is released right after it. NULL with err set on failure (cb
 * is then not called).
 */
struct engine_cmd *engine_cmd_start(uv_loop_t *loop, const char *command,
				    const char *const *env, int stdin_fd,
				    int64_t timeout_ms, const char *sub,
				    engine_cmd_cb cb, void *ctx, char *err,
				    size_t errsz);
/* Stop it now (SIGTERM, then SIGKILL after the grace); cb still comes.
 * Like engine_cmd_free, only before cb was called (c is gone after). */
void engine_cmd_kill(struct engine_cmd *c);
/* Kill the group with SIGKILL and release everything without calling
 * cb; NULL ok. Run the loop afterwards so libuv can release handles. */
void engine_cmd_free(struct engine_cmd *c);

/* ---- the webhook (engine_webhook.c) ---- */

struct engine_webhook;
/* ok: a 2xx came; otherwise why holds the last failure (borrowed). */
typedef void (*engine_webhook_cb)(void *ctx, int ok, unsigned attempts,
				  const char *why);

/* POST to url (copied) on loop; TLS verified with the system's roots.
 * NULL on ENOMEM. */
struct engine_webhook *engine_webhook_new(uv_loop_t *loop, const char *url);
/*
 * POST body (len bytes, taken over: freed by the webhook) as
 * application/json, 30 s per attempt, up to ENGINE_WEBHOOK_ATTEMPTS
 * attempts on a transport error or a non-2xx status, waiting
 * engine_batch_retry_ms between them; cb once at the end. One post at a
 * time: -EBUSY while one is in flight, else 0 or -ENOMEM.
 */
int engine_webhook_post(struct engine_webhook *w, char *body, size_t len,
			engine_webhook_cb cb, void *ctx);
/* Cancel (cb not called) and release; NULL ok. Run the loop afterwards. */
void engine_webhook_free(struct engine_webhook *w);

/* ---- batching, both hooks, the journal (engine_deploy.c) ---- */

struct store;
struct engine_deploy;

struct engine_deploy_opts {
	const char *command;   /* NULL or "" = none */
	const char *webhook;   /* NULL or "" = none */
	int64_t batch_ms;      /* changes within this time make one run */
	int64_t timeout_ms;    /* the command is killed after; 0 = 5 min */
	const char *state_dir; /* hooks/ (journal, names file) goes here */
	const char *live_dir;  /* CERTHERD_LIVE_DIR, paths; NULL = none */
};

/*
 * Set up the batcher on loop with the store st (borrowed; loop thread
 * only). Names a previous run left undelivered (stop, crash) are taken
 * from the journal and delivered after one batch time. *out NULL when
 * neither hook is configured (every function accepts NULL). 0, or a
 * negative errno with err set.
 */
int engine_deploy_new(uv_loop_t *loop, struct store *st,
		      const struct engine_deploy_opts *o,
		      struct engine_deploy **out, char *err, size_t errsz);
/* name's certificate was stored: deliver it with the next batch. */
void engine_deploy_changed(struct engine_deploy *dp, const char *name);
/*
 * For a stop: run the pending batch now (or let the running one end),
 * start nothing after it, and call done(ctx) once nothing runs any more
 * or after max_ms, when a command still running is killed. Names not
 * delivered stay in the journal for the next start. Returns 1 when done
 * will be called, 0 when nothing was pending or running (done is not
 * called).
 */
int engine_deploy_flush(struct engine_deploy *dp, int64_t max_ms,
			void (*done)(void *ctx), void *ctx);
/* Kill a running command, cancel a webhook, release; NULL ok. Run the
 * loop afterwards so libuv can release the handles. */
void engine_deploy_free(struct engine_deploy *dp);

/* ---- nginx mode (engine_nginx.c) ------------------------------------------
 *
 * Keeps the include file nginx reads in step with the store, checks it
 * with `nginx -t`, reloads nginx at most once per interval and verifies
 * by handshake that the new certificates are served (docs/nginx.md).
 */
struct engine_nginx;

struct engine_nginx_opts {
	int strategy;		   /* enum nginx_strategy */
	const char *include;	   /* the file nginx includes */
	const char *template_file; /* NULL: the built-in template */
	const char *command;	   /* runs this nginx; "-t -q", "-s reload"
				      and "-V" are appended */
	const char *listen;	   /* nginx's form, "443", "127.0.0.1:8443" */
	const char *upstream;	   /* "http://...", NULL = none */
	const char *live_dir;
	const char *state_dir;	   /* nginx/ in it: the commands' output */
	const char *verify_host;   /* hand-shake here; NULL = no checks */
	unsigned verify_port;
	int verify;
	int64_t reload_interval_ms;
	int chown_keys; /* give each privkey.pem to uid:gid */
	uid_t uid;
	gid_t gid;
};

/* Set up on loop with st (borrowed; loop thread only): checks the
 * built-in template, asks `COMMAND -V` for the version (blocking, once),
 * puts back an include whose check a crash interrupted, and plans a first
 * pass. 0, or negative errno with err set. */
int engine_nginx_new(uv_loop_t *loop, struct store *st,
		     const struct engine_nginx_opts *o,
		     struct engine_nginx **out, char *err, size_t errsz);
/* name's certificate was stored (and its live/ files written). */
void engine_nginx_changed(struct engine_nginx *ng, const char *name);
/* Domains may have been added or removed, or the template changed: look
 * again at the next pass. */
void engine_nginx_poke(struct engine_nginx *ng);
/* Successful reloads since start. */
unsigned long engine_nginx_reloads(const struct engine_nginx *ng);
/* nginx.key_owner into *uid, *gid (left alone without one; ng NULL ok).
 * Any thread: set once by engine_nginx_new. */
void engine_nginx_key_owner(const struct engine_nginx *ng, uid_t *uid,
			    gid_t *gid);

struct json_t;
/* What nginx mode has done since start, for GET /v1/status and /metrics
 * (engine_nginx_stats.c). Times are wall-clock ms, 0 = never. */
struct engine_nginx_event {
	int64_t at_ms;
	int ok;		  /* the result */
	double seconds;	  /* how long the command ran */
	char message[400]; /* nginx's words, or what certherd refused */
};
struct engine_nginx_stats {
	int strategy;		/* enum nginx_strategy */
	const char *state;	/* idle, waiting, checking, reloading,
				   verifying (a static string) */
	uint64_t domains;	/* in the include at the last pass */
	uint64_t pending;	/* changed certificates not reloaded yet */
	uint64_t reloads_ok, reloads_failed;	   /* nginx -s reload */
	uint64_t checks_ok, checks_failed;	   /* nginx -t */
	uint64_t refused;	/* include not rendered: template refused,
				   unreadable, store error (never reached
				   nginx) */
	uint64_t verify_names, verify_mismatches; /* handshake samples */
	struct engine_nginx_event last_reload, last_check, last_refused;
	struct {
		int64_t at_ms;
		unsigned names, mismatches;
		char message[400]; /* the first mismatch */
	} last_verify;
};
/* A consistent copy of ng's stats. Safe from any thread while ng lives. */
void engine_nginx_stats(struct engine_nginx *ng, struct engine_nginx_stats *out);
/* The daemon's nginx mode's stats: 0, or -ENOENT when nginx mode is off.
 * Safe from any thread between engine_daemon_open and _close. */
int engine_daemon_nginx_stats(struct engine_daemon *d,
			      struct engine_nginx_stats *out);
/* Add "nginx": {...} to a GET /v1/status object; 0 or -ENOMEM. */
int engine_nginx_status_json(const struct engine_nginx_stats *s,
			     struct json_t *obj);
/* certherd_nginx_* metrics (Prometheus text) to out; 0 or -EIO. */
int engine_nginx_metrics(const struct engine_nginx_stats *s, FILE *out);
/* Kill a running nginx command and release; NULL ok. A handshake check
 * in flight finishes on its thread first. Run the loop afterwards. */
void engine_nginx_free(struct engine_nginx *ng);

/* ---- removed domains' files (engine_prune.c) ---- */

struct engine_prune;
/* Delete live_dir files of domains removed more than keep_ms ago, checked
 * every keep_ms / 2 (between 1 s and 1 hour). NULL on ENOMEM. */
struct engine_prune *engine_prune_new(uv_loop_t *loop, struct store *st,
				      const char *live_dir, int64_t keep_ms);
void engine_prune_free(struct engine_prune *p); /* NULL ok */

#endif
