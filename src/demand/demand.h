/*
 * demand — front mode's on-demand issuance (docs/front.md): may a name
 * that has no certificate be issued during its first TLS handshake?
 *
 *   demand_table.c  what is known of each name asked about (pure)
 *   demand_ask.c    the platform's `ask` URL over libcurl multi
 *   demand.c        the thread that decides: store, ask, budgets, then
 *                   registers approved names and wakes the daemon
 *
 * A name is allowed when it is registered (through the API: it is simply
 * not issued yet) or when on_demand.ask answers 2xx, and then only within
 * the budgets (on-demand orders per hour, overall and per registered
 * domain). An allowed name is registered in the store, so the daemon
 * issues and renews it like any other; handshakes for it wait until the
 * daemon has stored its certificate (demand_issued), and every handshake
 * for the same name waits on that one order.
 *
 * Why a thread of its own: the front's workers must never block on the
 * store or on the ask URL, and the daemon's loop must not be slowed by a
 * flood of handshakes for random names. A worker's question
 * (demand_check) is answered from memory; what is not known yet is queued
 * for this thread, bounded, and a full queue means "no" at once.
 *
 * Error convention: int functions return 0 or a negative errno unless
 * stated; pointer functions NULL. Prefix demand_.
 */
#ifndef CERTHERD_DEMAND_H
#define CERTHERD_DEMAND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DEMAND_NAME_MAX 253

/* ---- the table (demand_table.c, pure) -------------------------------------
 */

enum demand_state {
	DEMAND_QUEUED = 0, /* asked about, waiting for the thread */
	DEMAND_CHECKING,   /* the thread is deciding (store, ask) */
	DEMAND_WAITING,	   /* allowed: handshakes wait for the certificate */
	DEMAND_DENIED,	   /* refused until the entry expires */
	DEMAND__MAX
};
extern const char *const demand_state_names[DEMAND__MAX];

/* What a handshake does for a name with no certificate. */
enum demand_verdict {
	DEMAND_REFUSE = 0, /* alert now */
	DEMAND_WAIT,	   /* pause: being decided, or being issued */
	DEMAND_QUEUE,	   /* new: the caller queued it, pause */
	DEMAND_VERDICT__MAX
};

/*
 * Names being decided (QUEUED, CHECKING) are at most max_pending; settled
 * ones (WAITING, DENIED) at most max_settled, the oldest settled dropped
 * first (it is asked about again if it comes back). A settled entry
 * expires at the time given when it was settled; an expired one counts as
 * unknown.
 */
struct demand_table;
struct demand_table *demand_table_new(size_t max_pending, size_t max_settled);
void demand_table_free(struct demand_table *t); /* NULL ok */
/*
 * A handshake's question about name at now_ms: WAIT for QUEUED, CHECKING
 * and unexpired WAITING; REFUSE for unexpired DENIED and when max_pending
 * names are already being decided (nothing is remembered then); QUEUE
 * when name was unknown (or expired): it is now QUEUED.
 */
enum demand_verdict demand_table_check(struct demand_table *t, const char *name,
				       int64_t now_ms);
/* The oldest QUEUED name, made CHECKING, copied into name (at least
 * DEMAND_NAME_MAX + 1 bytes): 1, or 0 when none is queued. */
int demand_table_take(struct demand_table *t, char *name);
/* Settle name as WAITING or DENIED until expires_ms (a new entry if it
 * was unknown). 0, -EINVAL (other states), -ENOMEM. */
int demand_table_settle(struct demand_table *t, const char *name,
			enum demand_state s, int64_t expires_ms);
/* What is known of name (DEMAND__MAX when nothing), for tests. */
enum demand_state demand_table_state(struct demand_table *t, const char *name);
/* Forget name (its certificate was stored). */
void demand_table_drop(struct demand_table *t, const char *name);
/* Forget every DENIED entry (a reload changed what allows a name). */
void demand_table_forget_denied(struct demand_table *t);
size_t demand_table_pending(const struct demand_table *t);
size_t demand_table_count(const struct demand_table *t, enum demand_state s);

/* ---- the ask URL (demand_ask.c) ------------------------------------------ */

/* base + "?domain=NAME" (or "&domain=NAME" when base has a query; a
 * fragment is dropped) into out. name must be a normalized host name
 * (letters, digits, '-', '.': nothing to escape). 0, -EINVAL, -ENOSPC. */
int demand_ask_url(const char *base, const char *name, char *out, size_t outsz);

/*
 * The asks in flight, on libcurl's multi interface, driven by demand.c's
 * thread (every function but demand_asker_wakeup on that thread only).
 * Each ask: GET, DEMAND_ASK_TIMEOUT_MS in all, no redirects, http(s)
 * only, the body read and dropped (at most 64 KiB).
 */
#define DEMAND_ASK_TIMEOUT_MS 5000
#define DEMAND_ASK_MAX	      16 /* asks in flight at once */
struct demand_asker;
/* base: the ask URL (copied), NULL for none (then only wait and wakeup
 * work). NULL on ENOMEM. */
struct demand_asker *demand_asker_new(const char *base);
void demand_asker_free(struct demand_asker *a); /* NULL ok */
/* Ask base from now on (copied; NULL or "": none). Not while another
 * thread uses a (demand.c calls it under its mutex). 0 or -ENOMEM. */
int demand_asker_set_base(struct demand_asker *a, const char *base);
/* Ask about name: 0, -EAGAIN when DEMAND_ASK_MAX are in flight, -ENOTSUP
 * without a URL, -EINVAL, -ENOMEM. */
int demand_asker_start(struct demand_asker *a, const char *name);
size_t demand_asker_active(const struct demand_asker *a);
/* An ask ended: status is the HTTP status (0 when none came, why then
 * says what went wrong, never with the URL). */
typedef void (*demand_ask_cb)(void *ctx, const char *name, long status,
			      const char *why);
/* Run the transfers, wait up to timeout_ms for activity or a wakeup, and
 * call cb for every ask that ended. 0 or -EIO. */
int demand_asker_poll(struct demand_asker *a, int timeout_ms, demand_ask_cb cb,
		      void *ctx);
/* Make a demand_asker_poll in progress return now. Any thread. */
void demand_asker_wakeup(struct demand_asker *a);

/* ---- the decider (demand.c) ---------------------------------------------- */

struct demand;
struct demand_opts {
	const char *state_dir;	/* the store, opened by the thread */
	const char *ask;	/* on_demand.ask; NULL or "": registered
				   names only. Never logged. */
	long budget_per_hour;	/* approved names per hour, all together */
	long budget_per_domain; /* ... per registered domain */
	int64_t wait_ms;	/* on_demand.wait: a registered name whose
				   next attempt is further away is refused */
	const char *challenge;	/* store column of names added */
	int ask_changed;	/* demand_reconfigure: ask is not what it
				   was (forget the denials) */
	/* A name was registered: run a scheduler pass soon
	 * (engine_daemon_wake). Any thread. */
	void (*registered)(void *ctx);
	/* Decisions were made: retry the paused handshakes
	 * (net_front_wake). Called from the thread. */
	void (*decided)(void *ctx);
	void *ctx;
};
int demand_start(const struct demand_opts *o, struct demand **out, char *err,
		 size_t errsz);
void demand_stop(struct demand *dm); /* NULL ok; joins the thread */
/*
 * SIGHUP: apply o's enabled, ask, budget_per_hour, budget_per_domain and
 * wait_ms (the rest is ignored). Disabled, every name is refused (the
 * thread stays, idle); a changed ask or a re-enabling forgets the
 * denials made before; the budgets keep their tokens, capped at a new
 * capacity; waiting handshakes are retried at once. 0 or -ENOMEM (then
 * nothing changed). Any thread.
 */
int demand_reconfigure(struct demand *dm, const struct demand_opts *o,
		       int enabled);
/* A worker's question for name (normalized SNI) with no certificate:
 * 1 wait (pause the handshake), 0 refuse. Never blocks. */
int demand_check(struct demand *dm, const char *name);
/* name's certificate was stored: forget it. Any thread. NULL ok. */
void demand_issued(struct demand *dm, const char *name);
/* name's order failed: handshakes waiting for it are refused (and new ones
 * for a while). Any thread. NULL ok. */
void demand_failed(struct demand *dm, const char *name);

struct demand_stats {
	uint64_t registered; /* allowed: already registered */
	uint64_t approved;   /* allowed by ask, and registered by us */
	uint64_t denied;     /* ask said no, or not registered without ask */
	uint64_t budget;     /* ask said yes, over a budget */
	uint64_t ask_errors; /* ask failed (transport, timeout, 5xx...) */
	uint64_t busy;	     /* refused: too many names being decided */
	uint64_t failed;     /* allowed, but the order failed */
	uint64_t asks;	     /* ask requests made */
	size_t waiting;	     /* names whose handshakes wait now */
};
void demand_stats(struct demand *dm, struct demand_stats *out);
/* The stats as Prometheus text; dm NULL writes nothing. 0 or -EIO. */
int demand_metrics(struct demand *dm, FILE *out);

#endif
