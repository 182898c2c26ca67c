/*
 * tls_ticket — the ring of session ticket keys. Pure: the caller brings
 * the clock and the fresh random key (tls_ctx.c does, under its lock).
 *
 * Stateless tickets (TLS 1.2 session tickets and TLS 1.3 PSK tickets) are
 * encrypted with a key only this process knows. Rotating it bounds what a
 * key leak exposes (forward secrecy of resumed sessions ends with the
 * key's life), and keeping the previous keys lets tickets issued just
 * before a rotation still resume.
 */
#include <errno.h>
#include <string.h>

#include "tls/tls.h"

int tls_ticket_due(const struct tls_ticket_ring *r, int64_t now_ms)
{
	if (r->n == 0)
		return 1;
	/* a clock that went back also rotates: a key never looks younger
	 * than it is */
	return now_ms - r->keys[0].created_ms >= r->period_ms ||
	       now_ms < r->keys[0].created_ms;
}

void tls_ticket_push(struct tls_ticket_ring *r,
		     const struct tls_ticket_key *fresh, int64_t now_ms)
{
	memmove(&r->keys[1], &r->keys[0],
		sizeof(r->keys[0]) * (TLS_TICKET_KEYS - 1));
	r->keys[0] = *fresh;
	r->keys[0].created_ms = now_ms;
	if (r->n < TLS_TICKET_KEYS)
		r->n++;
}

int tls_ticket_find(const struct tls_ticket_ring *r, const unsigned char *name,
		    int64_t now_ms)
{
	for (unsigned i = 0; i < r->n; i++) {
		if (memcmp(r->keys[i].name, name, sizeof(r->keys[i].name)))
			continue;
		/* key i was replaced at keys[i-1].created_ms; it is accepted
		 * for TLS_TICKET_KEYS - 1 periods after that */
		if (i > 0 && now_ms - r->keys[i - 1].created_ms >=
				     r->period_ms * (TLS_TICKET_KEYS - 1))
			return -ENOENT;
		return (int)i;
	}
	return -ENOENT;
}
