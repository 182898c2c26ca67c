/*
 * acme — the RFC 8555 protocol core, sans I/O.
 *
 * Nothing here opens a socket, reads a file or the clock. A driver asks a
 * machine (the client or an order) what to do next, performs the HTTP
 * exchange it is given, and feeds the response back:
 *
 *     for (;;) {
 *             step = acme_order_next(o, now, &req, &wake_at);
 *             SEND  -> do req over HTTP, then acme_order_feed(o, &res, now)
 *             WAIT  -> come back at wake_at (polling, Retry-After)
 *             DONE / FAILED -> read acme_order_cert() / acme_order_error()
 *     }
 *
 * Time: every now_ms / wake_at is wall-clock milliseconds since the epoch
 * (the Retry-After date form needs wall time); the driver supplies it.
 *
 * The client (one per CA account) owns the directory, the nonce pool and
 * the account key; orders borrow it. Every response fed to any machine adds
 * its Replay-Nonce to the pool, and a badNonce problem is retried with a
 * fresh nonce transparently (bounded).
 *
 * Error convention: int functions return 0 or a negative errno; an ACME
 * failure is data (struct acme_error) kept by the machine that failed.
 * Ownership: strings passed in are copied unless stated; pointers returned
 * by accessors are borrowed from the machine and live as long as it.
 */
#ifndef CERTHERD_ACME_H
#define CERTHERD_ACME_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

/* Bounds on what a CA may send us. */
#define ACME_MAX_BODY (1u << 20)     /* JSON and certificate chains */
#define ACME_MAX_HEADERS (64u << 10) /* all header lines of a response */
/* A badNonce costs one round trip and CAs reject valid nonces at random
 * (Pebble's chaos mode: half of them); 20 in a row at 50% happens once in
 * a million requests, so only a CA that rejects everything exhausts it. */
#define ACME_MAX_BADNONCE_RETRIES 20

/* ---- HTTP exchange types (driver <-> core) --------------------------- */

enum acme_method { ACME_GET = 0, ACME_HEAD, ACME_POST, ACME_METHOD__MAX };
extern const char *const acme_method_names[ACME_METHOD__MAX];

/* A request the driver must send. POST bodies are JWS JSON
 * (Content-Type: application/jose+json). Owned by the caller of *_next,
 * released with acme_request_clear. */
struct acme_request {
	enum acme_method method;
	char *url;
	char *body;
	size_t body_len;
};
void acme_request_clear(struct acme_request *req);

/* A response as the driver received it: status, the raw header block
 * (lines separated by CRLF or LF, as libcurl hands them, status line
 * allowed), and the body. All borrowed for the duration of the feed call.
 * status 0 means the exchange failed at the transport (detail in
 * transport_error). */
struct acme_response {
	long status;
	const char *headers;
	size_t headers_len;
	const char *body;
	size_t body_len;
	const char *transport_error;
};

/* ---- header parsing (acme_hdr.c) -------------------------------------- */

/*
 * Find the idx-th (0-based) header named name (case-insensitive) in a raw
 * header block and copy its value (trimmed) into out (outsz bytes,
 * truncated values rejected). Returns the value length, -ENOENT when
 * absent, -EINVAL on malformed input or truncation.
 */
int acme_hdr_get(const char *hdrs, size_t len, const char *name, int idx,
		 char *out, size_t outsz);
/*
 * Retry-After value (delta-seconds or IMF-fixdate) to milliseconds from
 * now_s (wall seconds, needed for the date form). Returns 0 and sets *ms
 * (clamped to 0..24h), or -EINVAL.
 */
int acme_retry_after_parse(const char *v, int64_t now_s, int64_t *ms);
/*
 * Parse one Link header value that may hold several links
 * (`<url>;rel="alternate", <url2>;rel="up"`), calling cb for each with the
 * URL and rel. Returns 0 or -EINVAL.
 */
int acme_link_parse(const char *v, void (*cb)(void *ctx, const char *url,
					      const char *rel),
		    void *ctx);

/* ---- errors and problem documents (acme_problem.c) --------------------- */

enum acme_errc {
	ACME_E_NONE = 0,
	ACME_E_PROBLEM,   /* the CA sent a problem document */
	ACME_E_TRANSPORT, /* no HTTP response (connect, TLS, timeout) */
	ACME_E_PROTOCOL,  /* the CA sent something we cannot accept */
	ACME_E_INVALID,   /* an authorization or the order became invalid */
	ACME_E_TIMEOUT,   /* polling exceeded its deadline */
	ACME_E_INTERNAL,  /* local failure (memory, crypto) */
	ACME_E__MAX
};
extern const char *const acme_errc_names[ACME_E__MAX];

struct acme_subproblem {
	char *type;
	char *detail;
	char *identifier; /* identifier value, may be NULL */
};

/* An error as data: what failed, where, why, and when to retry. */
struct acme_error {
	enum acme_errc code;
	int status;        /* HTTP status, 0 if none */
	char *type;        /* problem type without the URN prefix, e.g.
			      "rateLimited"; NULL if not a problem */
	char *detail;      /* human-readable, always set on failure */
	char *identifier;  /* the domain concerned, may be NULL */
	const char *step;  /* static: "newOrder", "finalize", ... */
	int64_t retry_after_ms; /* -1 if the CA gave none */
	struct acme_subproblem *sub;
	size_t n_sub;
};
void acme_error_clear(struct acme_error *e);
/* Short single-line description for logs and summaries:
 * "rateLimited: too many certificates (step newOrder)". Writes into buf. */
const char *acme_error_str(const struct acme_error *e, char *buf, size_t sz);

/*
 * Parse an RFC 7807 / RFC 8555 §6.7 problem document body into e (type
 * with "urn:ietf:params:acme:error:" stripped, detail, status,
 * subproblems). Returns 0, or -EINVAL if the body is not a problem
 * document (e is then left with code ACME_E_PROTOCOL and a detail).
 */
int acme_problem_parse(const char *body, size_t len, struct acme_error *e);
/* 1 if this problem type means retrying the same request cannot help. */
int acme_problem_is_permanent(const char *type);

/* ---- JWS (acme_jws.c) --------------------------------------------------- */

/* The public JWK of key (EC P-256/P-384 or RSA) as a JSON object with
 * members in lexicographic order (RFC 7638). New reference, or NULL. */
json_t *acme_jwk(EVP_PKEY *key);
/* RFC 7638 thumbprint, base64url of SHA-256: 43 chars + NUL into out. */
int acme_jwk_thumbprint(EVP_PKEY *key, char out[44]);
/* JWS "alg" for key: "ES256", "ES384" or "RS256"; NULL if unsupported. */
const char *acme_jws_alg(EVP_PKEY *key);
/*
 * Flattened JWS JSON serialization (RFC 7515 §7.2.2, RFC 8555 §6.2).
 * Protected header: alg, nonce (omitted if NULL), url, and kid if kid is
 * non-NULL else jwk. payload NULL means POST-as-GET (empty payload).
 * Returns a malloc'd string (caller frees) or NULL.
 */
char *acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce,
		    const char *url, const char *payload);
/*
 * External account binding (RFC 8555 §7.3.4): a JWS with alg HS256 over
 * the account's JWK, kid eab_kid, url = newAccount URL. New reference.
 */
json_t *acme_eab_jws(const char *eab_kid, const unsigned char *hmac_key,
		     size_t hmac_len, EVP_PKEY *account_key, const char *url);

/* ---- directory (acme_dir.c) --------------------------------------------- */

struct acme_directory {
	char *new_nonce, *new_account, *new_order, *revoke_cert, *key_change;
	char *renewal_info;     /* NULL if the CA has no ARI */
	char *terms_of_service; /* meta.termsOfService, may be NULL */
	int eab_required;       /* meta.externalAccountRequired */
	char **profiles;        /* meta.profiles keys, may be NULL */
	size_t n_profiles;
};
/* Parse a directory object; 0, or -EINVAL with a message in err. */
int acme_directory_parse(const char *body, size_t len,
			 struct acme_directory *d, char *err, size_t errsz);
void acme_directory_clear(struct acme_directory *d);

/* ---- challenges -------------------------------------------------------- */

enum acme_chall_type {
	ACME_CHALL_HTTP01 = 0,
	ACME_CHALL_TLSALPN01,
	ACME_CHALL_DNS01,
	ACME_CHALL__MAX
};
extern const char *const acme_chall_names[ACME_CHALL__MAX]; /* "http-01"... */

/* keyAuthorization = token "." thumbprint (RFC 8555 §8.1); malloc'd. */
char *acme_key_authorization(const char *token, const char *thumbprint);
/* Rejects tokens that are not base64url or are too short/long
 * (RFC 8555 §8.1: at least 128 bits of entropy, i.e. >= 22 chars).
 * Returns 0 or -EINVAL. */
int acme_token_valid(const char *token);
/* SHA-256 of the key authorization: the value of the acmeIdentifier
 * extension of a TLS-ALPN-01 certificate (RFC 8737 §3). 0 or -EINVAL. */
int acme_tlsalpn01_digest(const char *key_auth, unsigned char out[32]);
/* base64url(SHA-256(key authorization)): the TXT value of DNS-01
 * (RFC 8555 §8.4); malloc'd, caller frees. */
char *acme_dns01_txt(const char *key_auth);

/*
 * The driver provides these so the core can make challenge responses
 * available before telling the CA to validate. publish returns 0 when the
 * response is available now (HTTP-01 from memory), ACME_PUBLISH_PENDING
 * when it will be later (DNS-01: a DNS update, then the wait until every
 * authoritative server has it; the driver then calls
 * acme_order_chall_ready), or a negative errno (the order then fails).
 * unpublish is called for every challenge publish accepted, pending ones
 * included (the driver cancels what is under way); after it, the driver
 * must not report that challenge ready. Called synchronously from
 * acme_order_feed and acme_order_chall_ready; they must not call back into
 * the core.
 */
#define ACME_PUBLISH_PENDING 1
struct acme_challenge_hooks {
	int (*publish)(void *ctx, enum acme_chall_type type,
		       const char *domain, const char *token,
		       const char *key_auth);
	void (*unpublish)(void *ctx, enum acme_chall_type type,
			  const char *domain, const char *token);
	void *ctx;
};

/* ---- the client: one CA account (acme_client.c) ----------------------- */

struct acme_client;

struct acme_client_opts {
	const char *directory_url;  /* required */
	const char *email;          /* contact, may be NULL */
	int agree_tos;              /* send termsOfServiceAgreed: true */
	const char *eab_kid;        /* EAB, both or neither */
	const unsigned char *eab_hmac;
	size_t eab_hmac_len;
	const char *account_url;    /* known kid from a previous run, or NULL */
	int only_existing;          /* newAccount with onlyReturnExisting:
				       find the key's account, never create */
};

/* account_key: a reference is taken (EVP_PKEY_up_ref). NULL on failure. */
struct acme_client *acme_client_new(EVP_PKEY *account_key,
				    const struct acme_client_opts *opts);
void acme_client_free(struct acme_client *c);

enum acme_step {
	ACME_STEP_SEND = 0, /* perform *req, then feed the response */
	ACME_STEP_WAIT,     /* nothing to do until *wake_at (ms, same clock
			       as now) */
	ACME_STEP_DONE,
	ACME_STEP_FAILED,
	ACME_STEP__MAX
};
extern const char *const acme_step_names[ACME_STEP__MAX];

/*
 * Bring the client to "ready": fetch the directory, get a nonce, find or
 * create the account (newAccount; an existing account for this key is
 * reused, RFC 8555 §7.3.1). DONE when ready, FAILED with acme_client_error.
 */
enum acme_step acme_client_next(struct acme_client *c, int64_t now_ms,
				struct acme_request *req, int64_t *wake_at);
int acme_client_feed(struct acme_client *c, const struct acme_response *res,
		     int64_t now_ms);
int acme_client_ready(const struct acme_client *c);
const struct acme_error *acme_client_error(const struct acme_client *c);
const struct acme_directory *acme_client_directory(const struct acme_client *c);
/* Account URL (kid) once ready, else NULL. Borrowed. */
const char *acme_client_account_url(const struct acme_client *c);
const char *acme_client_thumbprint(const struct acme_client *c);
/* Harvest Replay-Nonce from any response (orders call this too). */
void acme_client_take_nonce(struct acme_client *c,
			    const struct acme_response *res);
/* Nonces pooled now (for metrics and tests). */
size_t acme_client_nonces(const struct acme_client *c);

/* ---- one-shot account operations (acme_op.c) ---------------------------
 * Key rollover, revocation and ARI lookups share the next/feed shape. */

struct acme_op;
/* keyChange (RFC 8555 §7.3.5) to new_key (a reference is taken). On DONE
 * the client uses new_key from then on. */
struct acme_op *acme_op_key_change(struct acme_client *c, EVP_PKEY *new_key);
/* revokeCert (§7.6) of cert_der with reason (0..10, -1 to omit); signed by
 * the account (cert_key NULL) or by the certificate's key (jwk form). */
struct acme_op *acme_op_revoke(struct acme_client *c,
			       const unsigned char *cert_der, size_t der_len,
			       int reason, EVP_PKEY *cert_key);
enum acme_step acme_op_next(struct acme_op *op, int64_t now_ms,
			    struct acme_request *req, int64_t *wake_at);
int acme_op_feed(struct acme_op *op, const struct acme_response *res,
		 int64_t now_ms);
const struct acme_error *acme_op_error(const struct acme_op *op);
void acme_op_free(struct acme_op *op);

/* ---- orders (acme_order.c) ----------------------------------------------
 *
 * One order for one or more identifiers, from newOrder to the downloaded
 * certificate. See acme_order.c's header comment for the state diagram.
 */

enum acme_order_state {
	ACME_ORDER_NEW = 0,    /* POST newOrder */
	ACME_ORDER_AUTHZ,      /* POST-as-GET each authorization */
	ACME_ORDER_PUBLISH,    /* waiting for the driver to publish */
	ACME_ORDER_RESPOND,    /* publish key auth, POST {} to challenge */
	ACME_ORDER_POLL_AUTHZ, /* poll authorizations until valid/invalid */
	ACME_ORDER_FINALIZE,   /* POST finalize with the CSR */
	ACME_ORDER_POLL_ORDER, /* poll the order until valid */
	ACME_ORDER_DOWNLOAD,   /* POST-as-GET the certificate */
	ACME_ORDER_ALTERNATE,  /* POST-as-GET alternate chains */
	ACME_ORDER_VALID,      /* done: certificate available */
	ACME_ORDER_FAILED,     /* done: acme_order_error says why */
	ACME_ORDER__MAX
};
extern const char *const acme_order_state_names[ACME_ORDER__MAX];

struct acme_order_opts {
	const char *const *names; /* normalized identifiers, >= 1 */
	size_t n_names;
	const unsigned char *csr_der; /* copied */
	size_t csr_len;
	enum acme_chall_type chall;   /* preferred challenge type */
	const char *profile;          /* newOrder "profile", or NULL */
	const char *replaces;         /* RFC 9773 §5: acme_ari_certid() of
					 the certificate this order
					 replaces, or NULL */
	const char *preferred_issuer; /* issuer CN of the chain top, or NULL */
	int64_t poll_deadline_ms;     /* max total polling time, 0 = 10 min */
	const char *order_url;        /* resume an order created before */
};

struct acme_order *acme_order_new(struct acme_client *c,
				  const struct acme_order_opts *opts,
				  const struct acme_challenge_hooks *hooks);
void acme_order_free(struct acme_order *o);
enum acme_step acme_order_next(struct acme_order *o, int64_t now_ms,
			       struct acme_request *req, int64_t *wake_at);
int acme_order_feed(struct acme_order *o, const struct acme_response *res,
		    int64_t now_ms);
enum acme_order_state acme_order_state(const struct acme_order *o);
/* URL of the order once created (persist it to resume), else NULL. */
const char *acme_order_url(const struct acme_order *o);
/* The chosen PEM chain (leaf first) once VALID, else NULL. Borrowed. */
const char *acme_order_cert(const struct acme_order *o, size_t *len);
const struct acme_error *acme_order_error(const struct acme_order *o);
/* Identifier the order is for (names[0]). */
const char *acme_order_name(const struct acme_order *o);
/*
 * The driver's answer to a publish that returned ACME_PUBLISH_PENDING for
 * token: rc 0 when the response is available (the challenge is answered
 * at the next step: call acme_order_next again, the order may be waiting
 * in ACME_ORDER_PUBLISH), or a negative errno with detail (one line, for
 * the error; copied) when it cannot be, which fails the order (step
 * "challenge"). A publish left pending past the order's poll deadline
 * fails it too. Returns 0, -ENOENT when no pending publish has this token
 * (an unknown token, already reported, or withdrawn), -EINVAL when the
 * order has ended.
 */
int acme_order_chall_ready(struct acme_order *o, const char *token, int rc,
			   const char *detail, int64_t now_ms);

/* ---- ACME Renewal Information, RFC 9773 (acme_ari.c) ---------------------
 *
 * The CA's suggested renewal window for one certificate, fetched with an
 * unauthenticated GET of <directory renewalInfo>/<certid>. The fetch has
 * the next/feed shape of the other machines; the identifier, the body
 * parser and the RFC 3339 parser are exposed on their own for callers,
 * tests and the fuzzer.
 */

#define ACME_ARI_CERTID_MAX 512     /* identifier buffer, NUL included */
#define ACME_ARI_MAX_BODY (64u << 10) /* a renewalInfo body is ~200 bytes */
#define ACME_ARI_TIME_MAX 64        /* longest RFC 3339 string accepted */
/* Window times outside [2000-01-01, 2200-01-01) UTC are refused as absurd:
 * no CA suggests renewing before ARI existed or two centuries ahead. */
#define ACME_ARI_EARLIEST_MS INT64_C(946684800000)
#define ACME_ARI_LATEST_MS INT64_C(7258118400000)

/* A renewalInfo answer. explanation_url is malloc'd and owned by the
 * struct (released by acme_ari_clear). */
struct acme_ari {
	int64_t start_ms, end_ms;  /* suggestedWindow, wall ms, start < end */
	int64_t retry_after_ms;    /* the response's Retry-After relative to
				      the time it was fed, -1 none */
	char *explanation_url;     /* NULL when the CA gave none */
};
/* Free explanation_url and reset *a (retry_after_ms -1); NULL ok. */
void acme_ari_clear(struct acme_ari *a);

/*
 * The RFC 9773 §4.1 unique identifier of a certificate (one DER
 * certificate, no trailing bytes): base64url(keyIdentifier of its
 * Authority Key Identifier) "." base64url(content octets of the DER
 * serialNumber, including the leading 0x00 a serial with the high bit set
 * carries), both without padding. This value is also what an order's
 * "replaces" names. Writes a NUL-terminated string into out. Returns 0;
 * -ENOENT when the certificate has no AKI extension or the AKI has no
 * keyIdentifier (ARI cannot identify it; the CA's own certificates always
 * have one); -EINVAL for input that is not one certificate; -ENOSPC when
 * outsz is too small (ACME_ARI_CERTID_MAX is always enough for a
 * conforming certificate); -ENOMEM.
 */
int acme_ari_certid(const unsigned char *der, size_t len, char *out,
		    size_t outsz);

/*
 * Strict RFC 3339 §5.6 date-time: YYYY-MM-DD "T" hh:mm:ss [".digits"]
 * ("Z" / "+hh:mm" / "-hh:mm"), "t" and "z" also accepted (§5.6 note), no
 * spaces, real calendar dates (leap years), seconds up to 60 (a leap
 * second counts as the next minute's first), year 0001..9999, at most
 * ACME_ARI_TIME_MAX bytes. s need not be NUL-terminated. Fractions are
 * truncated to the millisecond. 0 and *ms (wall ms since the epoch), or
 * -EINVAL.
 */
int acme_ari_time_parse(const char *s, size_t len, int64_t *ms);
/* ms as "YYYY-MM-DDThh:mm:ss[.mmm]Z" into out: 0, -ENOSPC, -EINVAL (year
 * outside 0001..9999). */
int acme_ari_time_format(int64_t ms, char *out, size_t outsz);

/*
 * Parse a renewalInfo body (§4.2): a JSON object (duplicate keys refused,
 * unknown members ignored) with suggestedWindow.start/end RFC 3339 strings
 * inside [ACME_ARI_EARLIEST_MS, ACME_ARI_LATEST_MS), end > start, and an
 * optional explanationURL that must be an http(s) URL without spaces or
 * control characters, at most 2 KiB. Bodies over ACME_ARI_MAX_BODY are
 * refused. 0 with *out filled (retry_after_ms -1: it comes from a header),
 * or -EINVAL / -ENOMEM with *out cleared and a one-line reason in err
 * (may be NULL).
 */
int acme_ari_parse(const char *body, size_t len, struct acme_ari *out,
		   char *err, size_t errsz);

struct acme_ari_op;
/*
 * A renewalInfo fetch of certid (as acme_ari_certid makes it; copied)
 * through client c (borrowed; it must outlive the op and have fetched its
 * directory, which acme_client_next does first). Returns 0 with *out (free
 * with acme_ari_op_free); -ENOTSUP when the CA's directory has no
 * renewalInfo (the CA does not do ARI: nothing is sent); -EAGAIN when c
 * has no directory yet; -EINVAL for a malformed certid; -ENOMEM.
 */
int acme_ari_op_new(struct acme_client *c, const char *certid,
		    struct acme_ari_op **out);
/* SEND is always a GET of the renewalInfo URL with no body. Transient
 * failures (no answer, 5xx, serverInternal) are retried three times after
 * 1, 2 and 4 s (WAIT); anything else other than 200 fails the op with the
 * CA's problem (404: the CA does not know the certificate). */
enum acme_step acme_ari_op_next(struct acme_ari_op *op, int64_t now_ms,
				struct acme_request *req, int64_t *wake_at);
/* Feed the response; a 200 must parse (acme_ari_parse) or the op fails
 * with ACME_E_PROTOCOL. The Retry-After header, if readable, becomes the
 * result's retry_after_ms. 0, or -EINVAL when the op was not waiting for
 * a response. */
int acme_ari_op_feed(struct acme_ari_op *op, const struct acme_response *res,
		     int64_t now_ms);
/* After DONE: move the result into *out (the caller then owns it and
 * clears it with acme_ari_clear). 0, or -EINVAL if not DONE. */
int acme_ari_op_result(struct acme_ari_op *op, struct acme_ari *out);
/* The URL fetched (borrowed). */
const char *acme_ari_op_url(const struct acme_ari_op *op);
const struct acme_error *acme_ari_op_error(const struct acme_ari_op *op);
void acme_ari_op_free(struct acme_ari_op *op); /* NULL ok */

#endif
