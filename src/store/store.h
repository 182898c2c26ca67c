/*
 * store — the daemon's durable state: the ACME account, customer domains
 * and their job state, in-flight orders, certificates, challenges,
 * rate-limit buckets and a per-domain event history. One interface
 * (struct store with an ops table, see store_internal.h); the SQLite
 * backend is the embedded default, a PostgreSQL backend can be added for
 * clusters without changing callers. Plus store_live_write, which puts a
 * certificate on disk in certbot's live/<domain>/ layout.
 *
 * Error convention: int functions return 0 (or a count where stated) or a
 * negative errno: -EINVAL bad input, -ENOENT not found, -EEXIST conflict,
 * -ENOMEM, -EBUSY database locked past the busy timeout, -ENOSPC disk full,
 * -EBADMSG a row read back failed validation (corrupt or foreign data),
 * -ENOTSUP schema newer than this code, -EIO anything else. Pointer
 * functions return NULL. store_errmsg() says more about the last error.
 *
 * Time is never read here: every timestamp is passed in and stored as
 * int64 milliseconds since the epoch (the ACME core's clock_wall_ms unit),
 * so tests drive it with a fake clock. STORE_NO_TIME means "none".
 *
 * Names: domain names must already be normalized by name_normalize()
 * (lower-case A-labels); the store rejects anything else with -EINVAL
 * instead of normalizing, so one name never has two rows.
 *
 * Threads: a handle is used by one thread at a time. Another thread (the
 * :80 challenge server) opens its own handle; WAL lets it read while the
 * scheduler writes.
 *
 * Private keys (account key, certificate keys, pending CSR keys) are
 * stored as PEM in the database file, which is 0600 in a 0700 directory,
 * and are never logged.
 */
#ifndef CERTHERD_STORE_H
#define CERTHERD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_NO_TIME (-1)

/* Bounds on what goes in and what we accept back. */
#define STORE_NAME_MAX		253	     /* = NAME_MAX_LEN in util.h */
#define STORE_URL_MAX		2048	     /* ACME URLs */
#define STORE_PEM_MAX		(256u << 10) /* chain or key PEM */
#define STORE_TOKEN_MAX		128	     /* ACME challenge token */
#define STORE_KEYAUTH_MAX	256	     /* token "." thumbprint */
#define STORE_BUCKET_KEY_MAX	300 /* e.g. "certs/<registered domain>" */
#define STORE_EVENTS_PER_DOMAIN 50  /* history kept per domain */

struct store;

/* ---- open / close ---------------------------------------------------- */

/*
 * Open (creating if needed) the SQLite store in state_dir: the directory
 * is created 0700 if missing, the database "certherd.db" 0600. Migrates an
 * older schema to the current one; refuses (-ENOTSUP) a database written
 * by a newer certherd. On failure writes a message into err (may be NULL).
 * *out is owned by the caller: release with store_close.
 */
int store_open(const char *state_dir, struct store **out, char *err,
	       size_t errsz);
void store_close(struct store *st); /* NULL ok */
/* The last error's detail (backend message); borrowed, valid until the
 * next call on st. Never contains bound values, hence never key material. */
const char *store_errmsg(const struct store *st);
/* Schema version this code writes. */
int store_schema_version(void);

/* ---- bulk writes ------------------------------------------------------ */

/*
 * Group every write on st from store_bulk_begin to store_bulk_end into one
 * transaction, for loading many domains at once (bench/populate): one
 * commit, and one sync, instead of one per write. Each write inside keeps
 * its own all-or-nothing behaviour (a failed write undoes only itself and
 * returns its error as usual); a write that is durable on its own
 * (store_order_begin, store_cert_insert) is made durable by the final
 * commit instead. Other handles see nothing until then, and writers on
 * them wait, so keep bulks for imports, not for the daemon's loop.
 * store_bulk_begin: 0, -EBUSY if a bulk is already open on st, or a
 * store error. store_bulk_end(st, commit): commit != 0 commits (synced),
 * 0 rolls back everything since store_bulk_begin; -EINVAL without an
 * open bulk.
 */
int store_bulk_begin(struct store *st);
int store_bulk_end(struct store *st, int commit);

/* ---- account --------------------------------------------------------- */

struct store_account {
	char *directory_url; /* CA directory URL: the key of the row */
	char *account_url;   /* "kid"; NULL until registered */
	char *key_pem;	     /* private key PEM */
	int64_t created_ms;
};
/* Insert or replace the account for a->directory_url. Borrows a. */
int store_account_put(struct store *st, const struct store_account *a);
/* Load the account for directory_url into out (members malloc'd, caller
 * releases with store_account_clear). -ENOENT if none. */
int store_account_get(struct store *st, const char *directory_url,
		      struct store_account *out);
void store_account_clear(struct store_account *a); /* NULL ok */

/* ---- domains and their job state ------------------------------------- */

/* Values are stored as integers: append only, never renumber. */
enum store_domain_status {
	STORE_DOMAIN_PENDING = 0, /* registered, no certificate yet */
	STORE_DOMAIN_DNS_PENDING, /* pre-flight: DNS not pointing at us */
	STORE_DOMAIN_ISSUING,	  /* an order is in flight, no cert yet */
	STORE_DOMAIN_VALID,	  /* current certificate, nothing running */
	STORE_DOMAIN_RENEWING,	  /* current certificate, new order running */
	STORE_DOMAIN_FAILED,	  /* permanent error; needs a human/renew */
	STORE_DOMAIN_REMOVED, /* deleted by the platform; kept for history */
	STORE_DOMAIN__MAX
};
extern const char *const store_domain_status_names[STORE_DOMAIN__MAX];
/* "dns-pending" -> STORE_DOMAIN_DNS_PENDING; 0 or -EINVAL. */
int store_domain_status_parse(const char *s, enum store_domain_status *out);

/* The last error, kept as data (stored as a JSON problem document). */
struct store_problem {
	char type[128]; /* ACME problem type without URN prefix, or ours */
	char detail[1024];
	int status;		/* HTTP status, 0 if none */
	char step[32];		/* "newOrder", "finalize", "preflight", ... */
	int64_t retry_after_ms; /* absolute time, STORE_NO_TIME if none */
};

struct store_domain {
	char name[STORE_NAME_MAX + 1];
	enum store_domain_status status;
	char challenge[16]; /* "http-01", "dns-01", "tls-alpn-01" */
	int64_t added_ms;
	int64_t updated_ms;
	int64_t next_attempt_ms; /* STORE_NO_TIME: not scheduled */
	uint32_t failures;	 /* consecutive */
	int has_error;		 /* last_error is set */
	struct store_problem last_error;
};

/*
 * Register name (idempotent). challenge NULL means "http-01". A new name
 * starts PENDING with next_attempt_ms = now_ms (due at once). Returns 1
 * when the name was added or brought back from REMOVED, 0 when it was
 * already registered (nothing changed), <0 on error.
 */
int store_domain_add(struct store *st, const char *name, const char *challenge,
		     int64_t now_ms);
/* Mark REMOVED and unschedule; certificates and history stay.
 * -ENOENT if unknown. */
int store_domain_remove(struct store *st, const char *name, int64_t now_ms);
/* Fill out; -ENOENT if unknown (REMOVED domains are returned). */
int store_domain_get(struct store *st, const char *name,
		     struct store_domain *out);

struct store_domain_filter {
	unsigned status_mask; /* bit (1u << status); 0 = every status */
	const char *prefix;   /* name prefix, NULL or "" = all */
	const char *after;    /* cursor: names strictly after this, or NULL */
};
/* Up to max domains in name order into out[] (caller's array), count in
 * *n. Page on by passing the last name returned as f->after. */
int store_domain_list(struct store *st, const struct store_domain_filter *f,
		      struct store_domain *out, size_t max, size_t *n);
/* counts[s] = number of domains in status s. */
int store_domain_count(struct store *st, uint64_t counts[STORE_DOMAIN__MAX]);

/* A domain whose next attempt is due, with what the scheduler ranks by. */
struct store_due {
	char name[STORE_NAME_MAX + 1];
	enum store_domain_status status;
	int64_t next_attempt_ms;
	/* the current certificate's validity, STORE_NO_TIME if none: what
	 * the scheduler classes a renewal by, read in the same query so a
	 * pass does not load every due domain's certificate */
	int64_t not_before_ms;
	int64_t not_after_ms;
	uint32_t failures;
};
/*
 * Up to max domains with next_attempt_ms <= now_ms (never REMOVED),
 * ordered by rank[status] ascending (the caller's priority, e.g. renewals
 * before new names), then by the current certificate's expiry, then by
 * next attempt, then by name.
 */
int store_domain_due(struct store *st, int64_t now_ms,
		     const unsigned rank[STORE_DOMAIN__MAX],
		     struct store_due *out, size_t max, size_t *n);

/* Job state written after each attempt. */
struct store_job {
	enum store_domain_status status;
	int64_t next_attempt_ms; /* STORE_NO_TIME: unschedule */
	uint32_t failures;
	const struct store_problem *error; /* NULL clears last_error */
};
/* Update name's job state. Borrows job. -ENOENT if unknown. */
int store_domain_set_job(struct store *st, const char *name,
			 const struct store_job *job, int64_t now_ms);
/* Move only dom's next attempt (as read with store_domain_get): its
 * status, failures and last error stay. -ENOENT if it is gone. */
int store_domain_reschedule(struct store *st, const struct store_domain *dom,
			    int64_t next_attempt_ms, int64_t now_ms);

/* ---- orders: persisted before use so a restart resumes them ---------- */

enum store_order_state {
	STORE_ORDER_PENDING = 0, /* created at the CA, authorizations to do */
	STORE_ORDER_READY,	 /* authorizations valid, finalize next */
	STORE_ORDER_PROCESSING,	 /* finalized, waiting for the certificate */
	STORE_ORDER_VALID,	 /* certificate ready to download */
	STORE_ORDER_INVALID,	 /* terminal: the CA gave up */
	STORE_ORDER_DONE,	 /* terminal: certificate stored */
	STORE_ORDER__MAX
};
extern const char *const store_order_state_names[STORE_ORDER__MAX];

struct store_order {
	int64_t id;
	char domain[STORE_NAME_MAX + 1];
	enum store_order_state state;
	char *url;     /* malloc'd */
	char *key_pem; /* CSR key, malloc'd; NULL once the order is terminal */
	int64_t created_ms;
	int64_t updated_ms;
};
void store_order_clear(struct store_order *o); /* frees members; NULL ok */

/*
 * Record a new order (state PENDING) for domain with the CA's order URL
 * and the private key its CSR will use, durably (synchronous=FULL), before
 * the caller sends anything else for it. At most one non-terminal order
 * per domain: -EEXIST if one is in flight, -ENOENT if the domain is
 * unknown. Id into *id. Borrows url and key_pem.
 */
int store_order_begin(struct store *st, const char *domain, const char *url,
		      const char *key_pem, int64_t now_ms, int64_t *id);
/* Move order id to state (non-terminal). -ENOENT if unknown or finished. */
int store_order_update(struct store *st, int64_t id,
		       enum store_order_state state, int64_t now_ms);
/* End order id as DONE or INVALID and drop its key. -ENOENT as above. */
int store_order_finish(struct store *st, int64_t id,
		       enum store_order_state state, int64_t now_ms);
/* Non-terminal orders with id > after_id, oldest first, into out[]
 * (members malloc'd: store_order_clear each). For resume after a crash. */
int store_order_list_pending(struct store *st, int64_t after_id,
			     struct store_order *out, size_t max, size_t *n);

/* ---- certificates ---------------------------------------------------- */

struct store_cert_info {
	int64_t id;
	char domain[STORE_NAME_MAX + 1];
	char serial[80];
	char issuer[256];
	char profile[64]; /* "" if none */
	int64_t not_before_ms;
	int64_t not_after_ms;
	int64_t ari_start_ms; /* STORE_NO_TIME if no ARI window known */
	int64_t ari_end_ms;
	int64_t created_ms;
	int current;
};
struct store_cert {
	struct store_cert_info info;
	char *chain_pem; /* leaf first; malloc'd when read back */
	char *key_pem;
};
void store_cert_clear(struct store_cert *c); /* frees PEMs; NULL ok */

/*
 * Store a new certificate for c->info.domain and make it current, in one
 * durable (synchronous=FULL) transaction that also: clears the previous
 * current flag, finishes order_id as DONE (0 = no order), and sets the
 * domain VALID with failures 0, no last error, next attempt renew_at_ms.
 * info.id, current and created_ms are ignored (created = now_ms). Borrows
 * c. New id into *id (may be NULL). -ENOENT if the domain is unknown.
 */
int store_cert_insert(struct store *st, const struct store_cert *c,
		      int64_t order_id, int64_t renew_at_ms, int64_t now_ms,
		      int64_t *id);
/* The current certificate of domain (PEMs malloc'd). -ENOENT if none. */
int store_cert_current(struct store *st, const char *domain,
		       struct store_cert *out);
/* Current certificates with not_after_ms < before_ms, soonest first. */
int store_cert_expiring(struct store *st, int64_t before_ms,
			struct store_cert_info *out, size_t max, size_t *n);
/* Record the ARI suggested window of certificate id (both STORE_NO_TIME:
 * forget it, so the daemon asks the CA again). */
int store_cert_set_ari(struct store *st, int64_t id, int64_t start_ms,
		       int64_t end_ms);

/* ---- challenges (served on :80 by any node) -------------------------- */

struct store_challenge {
	char token[STORE_TOKEN_MAX + 1];
	char key_authorization[STORE_KEYAUTH_MAX + 1];
	char domain[STORE_NAME_MAX + 1];
	int64_t expires_ms;
};
/* Insert or replace by token. Borrows c. -ENOENT if domain unknown. */
int store_challenge_put(struct store *st, const struct store_challenge *c);
/* Look token up; expired entries count as absent (-ENOENT). */
int store_challenge_get(struct store *st, const char *token, int64_t now_ms,
			struct store_challenge *out);
int store_challenge_delete(struct store *st, const char *token);
/* Delete expired challenges; returns how many, or <0. */
int store_challenge_expire(struct store *st, int64_t now_ms);

/* ---- rate-limit buckets ---------------------------------------------- */

struct store_bucket {
	char key[STORE_BUCKET_KEY_MAX + 1];
	double tokens;
	int64_t updated_ms;
};
int store_bucket_save(struct store *st, const struct store_bucket *b);
/* -ENOENT if the bucket was never saved. */
int store_bucket_load(struct store *st, const char *key,
		      struct store_bucket *out);

/* ---- per-domain history ---------------------------------------------- */

struct store_event {
	int64_t id;
	int64_t ts_ms;
	char kind[32];	  /* "added", "issued", "failed", ... */
	char detail[512]; /* human-readable; truncated on append if longer */
};
/* Append; the oldest beyond STORE_EVENTS_PER_DOMAIN are dropped in the
 * same transaction. -ENOENT if domain unknown. */
int store_event_append(struct store *st, const char *domain, int64_t ts_ms,
		       const char *kind, const char *detail);
/* Newest first, up to max. */
int store_event_list(struct store *st, const char *domain,
		     struct store_event *out, size_t max, size_t *n);

/* ---- certbot live/ layout (store_live.c) ----------------------------- */

/*
 * Write live_dir/<domain>/{cert,chain,fullchain,privkey}.pem from a PEM
 * chain (leaf first) and its private key: directories 0755, privkey.pem
 * 0600, the others 0644. The chain is re-encoded (x509_split_chain) so
 * only certificates reach the files; a key that is not the leaf's is
 * refused (-EINVAL). All four are staged (written, fsynced) before any is
 * renamed into place, so a failure leaves the old set whole. A wildcard's
 * directory is store_live_dirname's. Borrows everything; 0 or negative
 * errno.
 */
int store_live_write(const char *live_dir, const char *domain,
		     const char *chain_pem, const char *key_pem);
/* The same, privkey.pem owned by key_uid:key_gid ((uid_t)-1 / (gid_t)-1:
 * unchanged, as lchown) from before it is renamed into place, so no
 * reader ever finds it with another owner. Failing to set the owner is
 * logged, not an error: the files are written as store_live_write does. */
int store_live_write_as(const char *live_dir, const char *domain,
			const char *chain_pem, const char *key_pem,
			uid_t key_uid, gid_t key_gid);
/*
 * The directory name under live/ of domain: the name itself, and for a
 * wildcard "*.x" the name "_wildcard.x". Not certbot's base name: that
 * is also the directory of the plain name x, and a platform commonly has
 * both (platform.example and *.platform.example); "_" is never in a
 * host name, so no registered name can take it. Into buf; returns buf.
 */
const char *store_live_dirname(const char *domain, char *buf, size_t sz);
/*
 * Remove the temp files an interrupted store_live_write left (a crash
 * between staging and renaming) in live_dir/<domain>/: the live files
 * themselves are always whole. Only a domain whose order was still
 * pending can have them (the certificate is recorded after the write), so
 * the daemon sweeps exactly the domains it resumes: start-up work grows
 * with the orders in flight, not with the domains. Returns how many were
 * removed (0 when the directory does not exist) or a negative errno.
 */
int store_live_sweep(const char *live_dir, const char *domain);

#endif
