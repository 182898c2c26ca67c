/*
 * tls — front mode's certificate side: which certificate a TLS handshake
 * gets, chosen by SNI in the ClientHello callback (docs/front.md).
 *
 *   tls_sni.c     the server_name extension and SNI names (pure)
 *   tls_index.c   the bounded index of loaded/absent/loading names (pure)
 *   tls_ticket.c  the session ticket key ring, rotated by time (pure)
 *   tls_cert.c    a certificate + chain + key parsed once, refcounted
 *   tls_loader.c  a thread that loads certificates from the store
 *   tls_alpn.c    TLS-ALPN-01 challenge certificates (RFC 8737)
 *   tls_ctx.c     the SSL_CTX: versions, ALPN, tickets, ClientHello callback
 *
 * Why a loader thread: a handshake whose certificate is not in memory is
 * paused (SSL_CLIENT_HELLO_RETRY) while the loader reads it from the store
 * with its own handle, so no worker loop ever waits on SQLite, and
 * start-up loads nothing.
 *
 * Error convention: int functions return 0 or a negative errno; pointer
 * functions return NULL. Prefix tls_.
 */
#ifndef CERTHERD_TLS_H
#define CERTHERD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define TLS_NAME_MAX 253

/* ---- SNI (tls_sni.c, pure) --------------------------------------------- */

/*
 * Parse the body of a ClientHello server_name extension (RFC 6066 3:
 * ServerNameList) and normalize its host_name entry into out (at least
 * TLS_NAME_MAX + 1 bytes). 0; -ENOENT when the list has no host_name;
 * -EINVAL when the extension is malformed or the name is not a valid host
 * name (tls_sni_normalize).
 */
int tls_sni_from_ext(const unsigned char *ext, size_t len, char *out,
		     size_t outsz);
/*
 * Normalize an SNI host name as sent (len bytes, not NUL-terminated): ASCII
 * only (RFC 6066 wants A-labels), lower-cased, one trailing dot dropped;
 * labels 1..63 of [a-z0-9-] not starting or ending with '-', at most 253
 * in all, at least two labels, the last not all digits (no IP literals).
 * The same rules as name_normalize for ASCII names, without its IDNA
 * library calls: this runs on every handshake. 0 or -EINVAL.
 */
int tls_sni_normalize(const char *in, size_t len, char *out, size_t outsz);
/*
 * The wildcard name that covers name: "a.b.example.com" ->
 * "*.b.example.com". -ENOENT when the parent has fewer than two labels
 * ("a.com" is not covered by "*.com"), -EINVAL on bad input.
 */
int tls_sni_wildcard(const char *name, char *out, size_t outsz);

/* ---- the index (tls_index.c, pure) ------------------------------------- */

/*
 * A hash table of store names (exact ones and "*.parent") to what is known
 * of them: a loaded certificate, a load in progress, or known absent (with
 * an expiry, so another node's certificate on a shared store is seen
 * later). Present and absent entries are kept in two LRU lists with their
 * own bounds, so a flood of unknown names evicts other unknown names, never
 * hot certificates. Values are opaque (a struct tls_cert * in the daemon);
 * the index takes one reference per stored value and calls ops.ref /
 * ops.unref. Not locked: the caller serializes (tls_loader holds a mutex).
 */
enum tls_look {
	TLS_LOOK_HIT = 0, /* *val set, one reference taken for the caller */
	TLS_LOOK_ABSENT,  /* no certificate for this name */
	TLS_LOOK_LOADING, /* a load is in progress: wait */
	TLS_LOOK_MISS,	  /* not known: the caller should start a load */
	TLS_LOOK__MAX
};
extern const char *const tls_look_names[TLS_LOOK__MAX];

struct tls_index_ops {
	void (*ref)(void *val);
	void (*unref)(void *val);
};
struct tls_index;

/* max_present: loaded certificates kept (front.cache_size, >= 1);
 * max_absent: absent names kept; absent_ttl_ms: how long "absent" holds.
 * NULL on bad arguments or no memory. */
struct tls_index *tls_index_new(const struct tls_index_ops *ops,
				size_t max_present, size_t max_absent,
				int64_t absent_ttl_ms);
void tls_index_free(struct tls_index *ix); /* NULL ok; unrefs every value */
/*
 * What is known of exactly name (no wildcard fallback; see
 * tls_index_resolve). A hit moves the entry to the front of its LRU.
 * An expired absent entry is dropped and reported as a miss.
 */
enum tls_look tls_index_get(struct tls_index *ix, const char *name,
			    int64_t now_ms, void **val);
/*
 * The lookup a handshake makes for an SNI name: the exact name, and when
 * that has no certificate, the wildcard covering it. On TLS_LOOK_MISS and
 * TLS_LOOK_LOADING, *load names what to load or what is being loaded
 * (name, or its wildcard), in a buffer of TLS_NAME_MAX + 1.
 */
enum tls_look tls_index_resolve(struct tls_index *ix, const char *name,
				int64_t now_ms, void **val, char *load);
/* Mark name as being loaded (a miss the caller starts a load for).
 * 0, -EEXIST if it is present or loading already, -ENOMEM. */
int tls_index_loading(struct tls_index *ix, const char *name);
/* A load ended: val (NULL = absent) becomes name's entry, replacing
 * whatever was there (a renewal: the old value is unreffed, and survives
 * while handshakes hold it). The index takes its own reference to val;
 * the caller keeps its own. 0 or -ENOMEM. */
int tls_index_put(struct tls_index *ix, const char *name, void *val,
		  int64_t now_ms);
/* name's certificate changed. An absent entry is dropped (the next
 * handshake loads it): 0. A loaded or loading entry stays as it is, so
 * handshakes keep getting the old certificate until tls_index_put
 * replaces it: 1, the caller reloads it. Unknown names: 0. */
int tls_index_changed(struct tls_index *ix, const char *name);
/* Counts, for tests and metrics. */
size_t tls_index_present(const struct tls_index *ix);
size_t tls_index_absent(const struct tls_index *ix);

/* ---- session ticket keys (tls_ticket.c, pure) -------------------------- */

#define TLS_TICKET_KEYS 3 /* the current key and two before it */
struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	int64_t created_ms;
};
/*
 * Keys rotate every period_ms: tickets are issued with the newest key and
 * accepted with any of the TLS_TICKET_KEYS kept, so a ticket lives between
 * (TLS_TICKET_KEYS - 1) and TLS_TICKET_KEYS periods. Randomness is an
 * argument (the caller fills a fresh key with RAND_bytes).
 */
struct tls_ticket_ring {
	struct tls_ticket_key keys[TLS_TICKET_KEYS]; /* [0] newest */
	unsigned n;
	int64_t period_ms;
};
/* Does the ring need a new key at now_ms (empty, or the newest too old)? */
int tls_ticket_due(const struct tls_ticket_ring *r, int64_t now_ms);
/* Push fresh (its created_ms set to now_ms) as the newest key, dropping
 * the oldest beyond TLS_TICKET_KEYS. */
void tls_ticket_push(struct tls_ticket_ring *r,
		     const struct tls_ticket_key *fresh, int64_t now_ms);
/* The key named name: its index (0 = newest) or -ENOENT. Keys older than
 * TLS_TICKET_KEYS periods are not accepted even if still in the ring. */
int tls_ticket_find(const struct tls_ticket_ring *r, const unsigned char *name,
		    int64_t now_ms);

/* ---- certificates (tls_cert.c) ----------------------------------------- */

/* A parsed certificate, its chain and key; refcounted so a renewal can
 * replace it while handshakes still hold it. */
struct tls_cert;
/* Parse a PEM chain (leaf first) and its PEM private key; the key must
 * match the leaf. With a parser (tls_pem.c, NULL for none) keys decode and
 * intermediates are shared at a fraction of the cost. NULL with a message
 * in err on any failure (the message never contains key material). One
 * reference for the caller. */
struct tls_pem;
struct tls_cert *tls_cert_from_pem(struct tls_pem *p, const char *chain_pem,
				   size_t chain_len, const char *key_pem,
				   size_t key_len, char *err, size_t errsz);
void tls_cert_ref(struct tls_cert *c);
void tls_cert_unref(struct tls_cert *c); /* NULL ok */
/* Give ssl this certificate, chain and key (OpenSSL takes its own
 * references). 0 or -EIO. */
int tls_cert_use(struct tls_cert *c, SSL *ssl);
/* The leaf's notAfter, seconds since the epoch. */
int64_t tls_cert_not_after(const struct tls_cert *c);
/* For tls_alpn.c: wrap a leaf and its key (both taken over on success;
 * no chain). NULL on failure, then the caller still owns both. */
struct tls_cert *tls__cert_wrap(X509 *leaf, EVP_PKEY *key);

/* ---- the loader's parser (tls_pem.c) ------------------------------------ */

/* Kept by one thread and reused for every load (see tls_pem.c for the
 * figures). NULL when out of memory. */
struct tls_pem *tls_pem_new(void);
void tls_pem_free(struct tls_pem *p); /* NULL ok */
/* A PEM private key (PKCS#8 or traditional, EC first then any type), or
 * NULL; the caller owns it. */
EVP_PKEY *tls_pem_key(struct tls_pem *p, const char *pem, size_t len);
/* The X509 of these DER bytes, parsed once per parser and shared: a new
 * reference for the caller, or NULL when they are not one certificate. */
X509 *tls_pem_intermediate(struct tls_pem *p, const unsigned char *der,
			   size_t len);

/* ---- TLS-ALPN-01 (tls_alpn.c) -------------------------------------------- */

/*
 * Does the body of a ClientHello ALPN extension (RFC 7301: ProtocolNameList)
 * offer "acme-tls/1"? 1 yes, 0 no, -EINVAL when it is malformed. Pure.
 */
int tls_alpn_offered(const unsigned char *ext, size_t len);
/*
 * The RFC 8737 challenge certificate for name: self-signed with a fresh
 * P-256 key, subjectAltName dNSName name, and the critical acmeIdentifier
 * extension holding digest (SHA-256 of the key authorization,
 * acme_tlsalpn01_digest). One reference for the caller; NULL with err.
 */
struct tls_cert *tls_alpn_cert_new(const char *name,
				   const unsigned char digest[32], char *err,
				   size_t errsz);
/*
 * The pending challenges, by domain. Published and withdrawn by the
 * daemon's loop (its challenge hooks), read by the front's workers; every
 * function is thread-safe.
 */
struct tls_alpn;
struct tls_alpn *tls_alpn_new(void); /* NULL on ENOMEM */
void tls_alpn_free(struct tls_alpn *t); /* NULL ok */
/* Make name's challenge certificate and serve it from now on (replacing a
 * previous one for name). 0, or a negative errno with err set. */
int tls_alpn_publish(struct tls_alpn *t, const char *name,
		     const unsigned char digest[32], char *err, size_t errsz);
void tls_alpn_unpublish(struct tls_alpn *t, const char *name);
/* name's challenge certificate, referenced for the caller, or NULL. */
struct tls_cert *tls_alpn_get(struct tls_alpn *t, const char *name);
size_t tls_alpn_count(struct tls_alpn *t);

/* ---- the default certificate (tls_default.c) ----------------------------- */

/*
 * front.default_certificate: served to handshakes whose name has no
 * certificate (and to those without SNI) instead of an unrecognized_name
 * alert. The holder is thread-safe: workers read it, a reload replaces it.
 */
struct tls_default;
/* Read and parse the PEM chain at cert_path and the PEM key at key_path
 * (a secret file: mode 0600 or stricter, see config_read_secret_text);
 * the key must match the leaf. One reference for the caller, or NULL
 * with err naming the key and the file (never key material). */
struct tls_cert *tls_default_load(const char *cert_path, const char *key_path,
				  char *err, size_t errsz);
struct tls_default *tls_default_new(void); /* empty; NULL on ENOMEM */
void tls_default_free(struct tls_default *d); /* NULL ok */
/* Serve c from the next handshake on (NULL: none, the alert again); takes
 * its own reference. Handshakes that chose the old one keep it. */
void tls_default_set(struct tls_default *d, struct tls_cert *c);
/* The current one, referenced for the caller, or NULL (d NULL ok). */
struct tls_cert *tls_default_get(struct tls_default *d);
/* Give ssl the default certificate: 1 done, 0 there is none (d NULL ok),
 * or a negative errno. */
int tls_default_use(struct tls_default *d, SSL *ssl);

/* ---- the loader (tls_loader.c) ----------------------------------------- */

/*
 * The index, its lock and the thread that fills it from the store. Shared
 * by every worker: lookups take the mutex for a hash probe (tens of
 * nanoseconds against a handshake's hundreds of microseconds).
 */
struct tls_loader;
struct tls_loader_opts {
	const char *state_dir; /* the store, opened read-only by the thread */
	size_t cache_size;     /* certificates kept parsed (front.cache_size) */
	/* Called on the loader thread after each batch of finished loads,
	 * so workers retry the handshakes they paused. Must be quick and
	 * thread-safe (uv_async_send). */
	void (*loaded)(void *ctx);
	void *ctx;
};
int tls_loader_start(const struct tls_loader_opts *o, struct tls_loader **out,
		     char *err, size_t errsz);
void tls_loader_stop(struct tls_loader *l); /* NULL ok; joins the thread */
/*
 * The handshake's lookup for a normalized SNI name (exact, then wildcard).
 * HIT: *cert is referenced for the caller. MISS: a load has been queued
 * and the result is reported as LOADING. ABSENT: no certificate (or the
 * load queue is full: the name is refused rather than queued).
 */
enum tls_look tls_loader_lookup(struct tls_loader *l, const char *sni,
				struct tls_cert **cert);
/* name's certificate changed (order_done): reload it if it is loaded,
 * forget that it was absent. Any thread. */
void tls_loader_changed(struct tls_loader *l, const char *name);
/* name's domain was removed: it is "absent" from now on (its certificate
 * unreffed: handshakes holding it keep it). Any thread. */
void tls_loader_removed(struct tls_loader *l, const char *name);
struct tls_loader_stats {
	uint64_t hits, misses, loads, load_errors, absent;
	size_t present, absent_kept;
};
void tls_loader_stats(struct tls_loader *l, struct tls_loader_stats *out);

/* ---- the SSL_CTX (tls_ctx.c) ------------------------------------------- */

/*
 * What a handshake learnt, kept by the connection and reached from the
 * ClientHello callback through SSL_get_app_data (set it before the
 * handshake).
 */
enum tls_hello_result {
	TLS_HELLO_NONE = 0, /* the callback has not decided yet */
	TLS_HELLO_OK,	    /* a certificate was set */
	TLS_HELLO_WAIT,	    /* paused: a load is in progress */
	TLS_HELLO_NO_SNI,   /* refused: no (valid) server_name */
	TLS_HELLO_UNKNOWN,  /* refused: no certificate for the name */
	TLS_HELLO_ONDEMAND, /* paused: the name is being issued on demand */
	TLS_HELLO_ACME,	    /* a TLS-ALPN-01 challenge certificate was set */
	TLS_HELLO_GAVE_UP,  /* refused: on-demand issuance took too long */
	TLS_HELLO_DEFAULT,  /* no certificate for the name (or no SNI): the
			       default certificate was set */
	TLS_HELLO__MAX
};
extern const char *const tls_hello_result_names[TLS_HELLO__MAX];
struct tls_hello {
	char sni[TLS_NAME_MAX + 1]; /* normalized, "" when none */
	enum tls_hello_result result;
	/* set by the connection when an on-demand wait ran out: the next
	 * retry refuses with an internal_error alert */
	int give_up;
};

/*
 * A name with no certificate, on a worker thread during a ClientHello:
 * may it be issued on demand? 1: yes, or it is being issued: pause the
 * handshake (it is retried when the front is woken); 0: refuse now. Must
 * not block (front mode's on-demand module answers from memory).
 */
typedef int (*tls_unknown_fn)(void *ctx, const char *sni);

struct tls_ctx_opts {
	struct tls_loader *loader; /* borrowed for the ctx's life */
	int h2;			   /* offer "h2" in ALPN (an h2c upstream) */
	int64_t ticket_period_ms;  /* 0: one hour */
	struct tls_alpn *alpn;	   /* TLS-ALPN-01 challenges, NULL = none;
				      borrowed for the ctx's life */
	tls_unknown_fn unknown;	   /* on-demand issuance, NULL = off */
	void *unknown_ctx;
	struct tls_default *def;   /* front.default_certificate, NULL = none;
				      borrowed for the ctx's life */
};
/* A server SSL_CTX for every worker: TLS 1.2 and 1.3, ECDHE/AEAD only,
 * no renegotiation, no compression, server cipher preference, rotating
 * stateless tickets, ALPN http/1.1 (and h2), certificates from the loader
 * by SNI; with o->alpn, a handshake offering acme-tls/1 for a name with a
 * pending challenge gets the challenge certificate and ALPN acme-tls/1
 * (result TLS_HELLO_ACME: the connection closes after the handshake). NULL with err on failure. Free with tls_ctx_free. */
SSL_CTX *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errsz);
void tls_ctx_free(SSL_CTX *ctx); /* NULL ok */

#endif
