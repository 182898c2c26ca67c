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
 * requests get 404, or with redirect a 308 to https://HOST/PATH when the
 * Host header is a valid domain name. NULL on failure with the reason in
 * err.
 */
struct engine_chall *engine_chall_new(const char *listen, int redirect,
				      char *err, size_t errsz);
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

struct engine_daemon_opts {
	struct engine_account_opts acct; /* acct.out_dir: where the account
					    key lives (the state directory) */
	const char *state_dir;           /* the store */
	const char *live_dir;            /* certbot layout, NULL = none */
	enum key_type key_type;
	const char *profile;
	const char *http_listen;         /* HTTP-01 responder */
	int http_redirect;               /* other :80 requests -> https */
	unsigned concurrency;            /* orders in flight, >= 1 */
	unsigned tick_ms;                /* scheduler pass interval, 0 = 1000 */
	/* The CA's limits for the ledger: ENGINE_LIMIT__MAX rows (struct
	 * engine_limit_def, below), copied; NULL = engine_limits_letsencrypt. */
	const struct engine_limit_def *limits;
};

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
	struct engine_pass_stats pass;
};
/* Copy the latest snapshot into *out. Safe from any thread. */
void engine_daemon_stats(struct engine_daemon *d,
			 struct engine_daemon_stats *out);

/* Set everything up (store, account, responder); 0 or negative errno with
 * err set. *out is the caller's: engine_daemon_close. */
int engine_daemon_open(const struct engine_daemon_opts *o,
		       struct engine_daemon **out, char *err, size_t errsz);
/* Run until SIGTERM/SIGINT or engine_daemon_stop; 0 on a clean stop. */
int engine_daemon_run(struct engine_daemon *d);
/* Something changed (a domain added, a renewal asked for): run a
 * scheduler pass soon. Safe from any thread. */
void engine_daemon_wake(struct engine_daemon *d);
void engine_daemon_close(struct engine_daemon *d); /* NULL ok */

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

#endif
