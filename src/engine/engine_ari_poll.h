/*
 * engine_ari_poll.h — the daemon's renewalInfo (RFC 9773) fetches: one
 * GET per certificate whose poll time came, run on the daemon's loop
 * beside its orders, a bounded number at a time. Internal to the engine.
 */
#ifndef CERTHERD_ENGINE_ARI_POLL_H
#define CERTHERD_ENGINE_ARI_POLL_H

#include "engine/engine.h"
#include "store/store.h"

/* How long a domain being asked about stays out of the scheduler's due
 * list (its next attempt is moved this far while the fetch runs; a crash
 * meanwhile only delays the next fetch by this much). */
#define ENGINE_ARI_LEASE_MS (10 * ENGINE_MIN_MS)

struct engine_ari_poller;

/* done(ctx, name, renew_now) after each fetch whose answer was recorded;
 * renew_now when the CA's window (or, when the fetch failed, the lifetime
 * rule) says the certificate should be renewed now: the domain's next
 * attempt has then been set to now. */
struct engine_ari_poller *
engine_ari_poller_new(struct engine_session *s, struct store *st,
		      unsigned max_in_flight,
		      void (*done)(void *ctx, const char *name, int renew_now),
		      void *ctx);
/*
 * Ask about dom's current certificate c (borrowed). 0 when the fetch
 * started; -EBUSY when max_in_flight fetches are running (try at a later
 * pass); -ENOTSUP when the certificate cannot be asked about (no
 * Authority Key Identifier, or the CA has no renewalInfo): the caller
 * renews by the lifetime rule; -EIO when the store cannot be updated.
 */
int engine_ari_poller_start(struct engine_ari_poller *p,
			    const struct store_domain *dom,
			    const struct store_cert *c, int64_t now_ms);
unsigned engine_ari_poller_in_flight(const struct engine_ari_poller *p);
/* Fetches answered and failed since start. */
void engine_ari_poller_counts(const struct engine_ari_poller *p, uint64_t *ok,
			      uint64_t *failed);
/* Abandon fetches in flight (their domains are due again when the lease
 * ends) and free. NULL ok. */
void engine_ari_poller_free(struct engine_ari_poller *p);

#endif
