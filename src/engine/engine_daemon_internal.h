/*
 * engine_daemon_internal.h — what the daemon's three files share:
 *   engine_daemon.c        open/run/close, signals (reload, drain, stop),
 *                          resume after a crash, stats and notify status
 *   engine_daemon_job.c    one domain's job: pre-flight, key, order,
 *                          challenges, live/ and store, success/failure
 *   engine_daemon_sched.c  the scheduler pass: due domains, ARI triage,
 *                          the rate-limit ledger's queue and holds
 * Everything here runs on the daemon's loop thread unless it says so.
 */
#ifndef CERTHERD_ENGINE_DAEMON_INTERNAL_H
#define CERTHERD_ENGINE_DAEMON_INTERNAL_H

#include <stdint.h>

#include "engine/engine.h"
#include "engine/engine_ari_poll.h"
#include "store/store.h"
#include "util/util.h"

#define DUE_BATCH 256
/* renewalInfo fetches in flight at once (they share the CA connections
 * with the orders; each is one small GET). */
#define ARI_IN_FLIGHT 32
/* Buckets that have refilled are dropped from memory this often. */
#define GC_EVERY_MS ENGINE_MIN_MS
/* A STATUS= line for the service manager at most this often: it counts
 * the domains per state in the store, which costs a scan. */
#define STATUS_EVERY_MS 5000

struct job;

/* A name whose renewal was decided without a window in the store (the
 * renewalInfo fetch failed and the lifetime rule says now): renew it
 * without asking again. Memory only: after a restart we simply ask. */
struct go_name {
	struct go_name *next;
	char name[NAME_MAX_LEN + 1];
};

struct engine_daemon {
	struct engine_daemon_opts o;
	struct engine_session s;
	struct store *st;
	struct engine_chall *chall;
	struct acme_challenge_hooks chall_hooks; /* the responder's */
	struct store *chall_st; /* the responder thread's own store handle */
	struct engine_deploy *deploy; /* hooks; NULL when none configured */
	struct engine_nginx *nginx;   /* nginx mode; NULL when off */
	struct engine_prune *prune;   /* removed domains' files */
	uv_async_t wake;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t drain_timer;
	int handles_open;
	int stopping;
	int draining;		/* SIGTERM: no new jobs, waiting for these */
	unsigned n_preflight;	/* jobs waiting for their DNS pre-flight: a
				   drain does not wait for them (no order yet) */
	int64_t next_status_ms; /* next STATUS= notification */
	int in_schedule, schedule_again; /* see engine__schedule() */
	unsigned in_flight;
	struct job *jobs;	   /* in flight, doubly linked */
	struct engine_limits *lim; /* the account's ledger; loop thread only */
	struct engine_ari_poller *ari;
	struct go_name *go;
	struct engine_dns *dns;	    /* pre-flight resolver, NULL when off */
	struct engine_dns01 *dns01; /* DNS-01 publisher, NULL when none */
	int64_t next_gc_ms;
	unsigned held;		       /* held back by the ledger, last pass */
	struct engine_pass_stats pass; /* pass cost; loop thread only */
	uv_mutex_t stats_mu; /* guards stats (read by the API thread) */
	struct engine_daemon_stats stats;
	int stats_mu_ok;
};

struct job {
	struct engine_daemon *d;
	char name[NAME_MAX_LEN + 1];
	int renewing;	   /* the domain has a current certificate */
	uint32_t failures; /* before this attempt */
	EVP_PKEY *key;
	char *key_pem;
	unsigned char *csr;
	size_t csr_len;
	char *order_url;	    /* resuming a persisted order */
	int64_t order_id;	    /* 0 until persisted */
	int charged;		    /* ledger tokens reserved for this order */
	int was_dns_pending;	    /* failed its last pre-flight */
	enum acme_chall_type chall; /* HTTP-01, or DNS-01 */
	enum engine_class cls;
	char regdomain[NAME_MAX_LEN + 1];
	char replaces[ACME_ARI_CERTID_MAX]; /* "" unless renewing with ARI */
	struct acme_order *order;
	struct engine_task task;
	uv_work_t work; /* keygen, then the live/ write */
	int rc;
	struct store_cert cert; /* the new certificate while live/ is written
				   (PEMs borrowed from order and key_pem) */
	struct job *prev, *next;
};

/* The last error's step of a renewal whose newOrder with "replaces" the
 * CA refused: the next order goes without it. */
#define REPLACES_REFUSED "newOrder-replaces"

/* ---- engine_daemon.c ---- */
uint64_t engine__rnd64(void);
int engine__ari_usable(const struct engine_daemon *d);
void engine__time_str(int64_t ms, char *buf, size_t sz);
void engine__problem_from(struct store_problem *p, const struct acme_error *e,
			  int64_t now);
void engine__count_failure(struct engine_daemon *d, const struct acme_error *e);
void engine__publish_stats(struct engine_daemon *d, int64_t now);
void engine__notify_status(struct engine_daemon *d, int64_t now, int force);
void engine__stop_now(struct engine_daemon *d, int at_once);

/* ---- engine_daemon_job.c ---- */
void engine__job_refund(struct job *j);
void engine__job_free(struct job *j);
void engine__job_local_failure(struct job *j, const char *why);
int engine__chall_lookup(void *ctx, const char *token, char *out, size_t sz);
enum acme_chall_type engine__chall_for(const struct engine_daemon *d,
				       const struct store_domain *dom);
struct job *engine__job_new(struct engine_daemon *d, const char *name);
void engine__job_queue_keygen(struct job *j);
void engine__job_preflight(struct job *j);

/* ---- engine_daemon_sched.c ---- */
void engine__go_del(struct engine_daemon *d, const char *name);
int engine__limit_on(const struct engine_daemon *d, enum engine_limit kind);
void engine__bucket_load(struct engine_daemon *d, enum engine_limit kind,
			 const char *key);
void engine__bucket_save(struct engine_daemon *d, enum engine_limit kind,
			 const char *key, int64_t now);
int engine__charged_for(const struct engine_daemon *d, enum engine_limit kind,
			enum engine_class cls);
void engine__ari_done(void *ctx, const char *name, int renew_now);
int engine__job_running(const struct engine_daemon *d, const char *name);
void engine__schedule(struct engine_daemon *d);

#endif
