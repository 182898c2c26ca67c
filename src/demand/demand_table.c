/*
 * demand_table — what on-demand issuance knows of each name it was asked
 * about. Pure: no clock (times are arguments), no I/O, no lock (demand.c
 * holds one).
 *
 *   unknown --check--> QUEUED --take--> CHECKING --settle--> WAITING | DENIED
 *                                                               |
 *                      unknown <----- expired, evicted, drop ---+
 *
 * Invariants:
 * - QUEUED entries are on the queue list, oldest first; CHECKING ones on
 *   no list; WAITING and DENIED on the settled list, oldest settled first.
 * - pending (QUEUED + CHECKING) <= max_pending: a flood of new names is
 *   refused at the door rather than queued; nothing is remembered of a
 *   name refused that way, so the table cannot be filled with them.
 * - settled <= max_settled: settling one more drops the oldest settled.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "demand/demand.h"
#include "util/dlist.h"

const char *const demand_state_names[DEMAND__MAX] = {
    [DEMAND_QUEUED] = "queued",
    [DEMAND_CHECKING] = "checking",
    [DEMAND_WAITING] = "waiting",
    [DEMAND_DENIED] = "denied",
};

struct entry {
	struct entry *hnext;   /* hash chain */
	struct dlist_node link; /* the queue or the settled list */
	enum demand_state state;
	int64_t expires_ms;
	char name[DEMAND_NAME_MAX + 1];
};

struct demand_table {
	struct entry **b;
	size_t nb; /* a power of two */
	size_t max_pending, max_settled;
	size_t count[DEMAND__MAX];
	struct dlist queue, settled; /* oldest at the head */
};

static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static struct dlist *list_of(struct demand_table *t, enum demand_state s)
{
	switch (s) {
	case DEMAND_QUEUED:
		return &t->queue;
	case DEMAND_WAITING:
	case DEMAND_DENIED:
		return &t->settled;
	default:
		return NULL;
	}
}

struct demand_table *demand_table_new(size_t max_pending, size_t max_settled)
{
	struct demand_table *t;
	size_t want = (max_pending + max_settled) * 2;

	if (max_pending == 0 || max_settled == 0 || want < max_settled)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nb = 64;
	while (t->nb < want)
		t->nb <<= 1;
	t->b = calloc(t->nb, sizeof(*t->b));
	if (!t->b) {
		free(t);
		return NULL;
	}
	t->max_pending = max_pending;
	t->max_settled = max_settled;
	return t;
}

void demand_table_free(struct demand_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nb; i++)
		for (struct entry *e = t->b[i], *n; e; e = n) {
			n = e->hnext;
			free(e);
		}
	free(t->b);
	free(t);
}

static struct entry **find(struct demand_table *t, const char *name)
{
	struct entry **pp = &t->b[hash(name) & (t->nb - 1)];

	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void set_state(struct demand_table *t, struct entry *e,
		      enum demand_state s)
{
	struct dlist *from = list_of(t, e->state), *to = list_of(t, s);

	if (from)
		dlist_unlink(from, &e->link);
	t->count[e->state]--;
	e->state = s;
	t->count[s]++;
	if (to)
		dlist_push_tail(to, &e->link);
}

/* Unlink and free *pp. */
static void remove_at(struct demand_table *t, struct entry **pp)
{
	struct entry *e = *pp;
	struct dlist *l = list_of(t, e->state);

	if (l)
		dlist_unlink(l, &e->link);
	t->count[e->state]--;
	*pp = e->hnext;
	free(e);
}

static struct entry *insert(struct demand_table *t, const char *name,
			    enum demand_state s)
{
	struct entry *e = calloc(1, sizeof(*e));
	struct entry **head;
	struct dlist *l = list_of(t, s);

	if (!e)
		return NULL;
	memcpy(e->name, name, strlen(name) + 1);
	e->state = s;
	head = &t->b[hash(name) & (t->nb - 1)];
	e->hnext = *head;
	*head = e;
	t->count[s]++;
	if (l)
		dlist_push_tail(l, &e->link);
	return e;
}

static int expired(const struct entry *e, int64_t now_ms)
{
	return (e->state == DEMAND_WAITING || e->state == DEMAND_DENIED) &&
	       now_ms >= e->expires_ms;
}

static size_t pending(const struct demand_table *t)
{
	return t->count[DEMAND_QUEUED] + t->count[DEMAND_CHECKING];
}

enum demand_verdict demand_table_check(struct demand_table *t, const char *name,
				       int64_t now_ms)
{
	struct entry **pp;

	if (!name || !*name || strlen(name) > DEMAND_NAME_MAX)
		return DEMAND_REFUSE;
	pp = find(t, name);
	if (*pp && !expired(*pp, now_ms))
		return (*pp)->state == DEMAND_DENIED ? DEMAND_REFUSE
						     : DEMAND_WAIT;
	if (pending(t) >= t->max_pending)
		return DEMAND_REFUSE; /* the expired entry stays: harmless */
	if (*pp) {
		set_state(t, *pp, DEMAND_QUEUED);
		return DEMAND_QUEUE;
	}
	return insert(t, name, DEMAND_QUEUED) ? DEMAND_QUEUE : DEMAND_REFUSE;
}

int demand_table_take(struct demand_table *t, char *name)
{
	struct entry *e = DLIST_ENTRY(t->queue.head, struct entry, link);

	if (!e)
		return 0;
	set_state(t, e, DEMAND_CHECKING);
	memcpy(name, e->name, strlen(e->name) + 1);
	return 1;
}

int demand_table_settle(struct demand_table *t, const char *name,
			enum demand_state s, int64_t expires_ms)
{
	struct entry **pp, *e;

	if ((s != DEMAND_WAITING && s != DEMAND_DENIED) || !name || !*name ||
	    strlen(name) > DEMAND_NAME_MAX)
		return -EINVAL;
	pp = find(t, name);
	e = *pp;
	if (e && (e->state == DEMAND_WAITING || e->state == DEMAND_DENIED))
		/* settled again: youngest */
		dlist_unlink(&t->settled, &e->link);
	else if (e && e->state == DEMAND_QUEUED)
		dlist_unlink(&t->queue, &e->link);
	if (!e) {
		e = insert(t, name, DEMAND_CHECKING);
		if (!e)
			return -ENOMEM;
	}
	/* make room: the oldest settled entry goes (never e itself: it is
	 * on no list now) */
	while (t->settled.n >= t->max_settled) {
		struct entry *old =
		    DLIST_ENTRY(t->settled.head, struct entry, link);

		remove_at(t, find(t, old->name));
	}
	t->count[e->state]--;
	e->state = s;
	t->count[s]++;
	e->expires_ms = expires_ms;
	dlist_push_tail(&t->settled, &e->link);
	return 0;
}

enum demand_state demand_table_state(struct demand_table *t, const char *name)
{
	struct entry **pp = find(t, name);

	return *pp ? (*pp)->state : DEMAND__MAX;
}

void demand_table_drop(struct demand_table *t, const char *name)
{
	struct entry **pp = find(t, name);

	/* a name being decided stays: the thread settles it */
	if (*pp && (*pp)->state != DEMAND_QUEUED &&
	    (*pp)->state != DEMAND_CHECKING)
		remove_at(t, pp);
}

void demand_table_forget_denied(struct demand_table *t)
{
	struct dlist_node *p = t->settled.head, *next;

	for (; p; p = next) {
		struct entry *e = DLIST_ENTRY(p, struct entry, link);

		next = p->next;
		if (e->state == DEMAND_DENIED)
			remove_at(t, find(t, e->name));
	}
}

size_t demand_table_pending(const struct demand_table *t)
{
	return pending(t);
}

size_t demand_table_count(const struct demand_table *t, enum demand_state s)
{
	return s < DEMAND__MAX ? t->count[s] : 0;
}
