/*
 * tls_index — what front mode knows of each name: its parsed certificate,
 * that it has none, or that a load is in progress. Pure data structure
 * (no lock, no I/O, no clock read): tls_loader.c locks and feeds it.
 *
 * Entry states and where they live:
 *
 *   (unknown) --tls_index_loading--> LOADING --tls_index_put(val)--> PRESENT
 *                                        |     --tls_index_put(NULL)-> ABSENT
 *   PRESENT --put--> PRESENT (the new value replaces the old: renewal)
 *   ABSENT  --expiry or tls_index_changed--> (unknown)
 *   PRESENT/ABSENT --evicted at the tail of its LRU--> (unknown)
 *
 * Invariants: every entry is in the hash table exactly once; PRESENT
 * entries are on the present list and hold one reference to val;
 * ABSENT entries are on the absent list with val NULL; LOADING entries
 * are on no list (they are bounded by the loader's queue) and are never
 * evicted, so a result always finds its entry. Each list is kept within
 * its bound, separately: unknown names evict unknown names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"
#include "util/dlist.h"

const char *const tls_look_names[TLS_LOOK__MAX] = {
	[TLS_LOOK_HIT] = "hit",
	[TLS_LOOK_ABSENT] = "absent",
	[TLS_LOOK_LOADING] = "loading",
	[TLS_LOOK_MISS] = "miss",
};

enum ent_state { ENT_PRESENT = 0, ENT_ABSENT, ENT_LOADING };

struct ent {
	struct ent *hnext;     /* hash chain */
	struct dlist_node lru; /* LRU list, newest at head */
	enum ent_state state;
	void *val;
	int64_t expires_ms; /* ABSENT only */
	uint32_t hash;
	char name[];
};

struct lru {
	struct dlist list;
	size_t max;
};

struct tls_index {
	struct tls_index_ops ops;
	struct ent **buckets;
	size_t mask;
	struct lru present, absent;
	int64_t absent_ttl_ms;
};

/* FNV-1a: names are short and not chosen to collide with a secret-free
 * hash... except by a peer flooding random SNI names. Chains stay short
 * because the table holds at most max_present + max_absent entries in
 * as many buckets, and an attacker cannot see bucket positions. */
static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void lru_unlink(struct lru *l, struct ent *e)
{
	dlist_unlink(&l->list, &e->lru);
}

static void lru_push(struct lru *l, struct ent *e)
{
	dlist_push_head(&l->list, &e->lru);
}

static struct lru *list_of(struct tls_index *ix, struct ent *e)
{
	switch (e->state) {
	case ENT_PRESENT:
		return &ix->present;
	case ENT_ABSENT:
		return &ix->absent;
	default:
		return NULL;
	}
}

static struct ent *find(struct tls_index *ix, const char *name,
			struct ent ***link)
{
	uint32_t h = hash_name(name);
	struct ent **p = &ix->buckets[h & ix->mask];

	for (; *p; p = &(*p)->hnext) {
		if ((*p)->hash == h && strcmp((*p)->name, name) == 0)
			break;
	}
	if (link)
		*link = p;
	return *p;
}

/* Unlink e from its list and the table and free it (unref its value). */
static void drop(struct tls_index *ix, struct ent *e)
{
	struct lru *l = list_of(ix, e);
	struct ent **p;

	if (l)
		lru_unlink(l, e);
	find(ix, e->name, &p);
	*p = e->hnext;
	if (e->state == ENT_PRESENT && e->val)
		ix->ops.unref(e->val);
	free(e);
}

static void evict(struct tls_index *ix, struct lru *l)
{
	while (l->list.n > l->max && l->list.tail)
		drop(ix, DLIST_ENTRY(l->list.tail, struct ent, lru));
}

struct tls_index *tls_index_new(const struct tls_index_ops *ops,
				size_t max_present, size_t max_absent,
				int64_t absent_ttl_ms)
{
	struct tls_index *ix;
	size_t want = max_present + max_absent, n = 16;

	if (!ops || !ops->ref || !ops->unref || max_present == 0 ||
	    max_absent == 0 || max_present > (1u << 24) ||
	    max_absent > (1u << 24) || absent_ttl_ms < 0)
		return NULL;
	while (n < want)
		n <<= 1;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return NULL;
	ix->buckets = calloc(n, sizeof(*ix->buckets));
	if (!ix->buckets) {
		free(ix);
		return NULL;
	}
	ix->ops = *ops;
	ix->mask = n - 1;
	ix->present.max = max_present;
	ix->absent.max = max_absent;
	ix->absent_ttl_ms = absent_ttl_ms;
	return ix;
}

void tls_index_free(struct tls_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i <= ix->mask; i++) {
		struct ent *e = ix->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			if (e->state == ENT_PRESENT && e->val)
				ix->ops.unref(e->val);
			free(e);
		}
	}
	free(ix->buckets);
	free(ix);
}

enum tls_look tls_index_get(struct tls_index *ix, const char *name,
			    int64_t now_ms, void **val)
{
	struct ent *e = find(ix, name, NULL);

	if (val)
		*val = NULL;
	if (!e)
		return TLS_LOOK_MISS;
	switch (e->state) {
	case ENT_PRESENT:
		if (&e->lru != ix->present.list.head) {
			lru_unlink(&ix->present, e);
			lru_push(&ix->present, e);
		}
		ix->ops.ref(e->val);
		if (val)
			*val = e->val;
		else
			ix->ops.unref(e->val);
		return TLS_LOOK_HIT;
	case ENT_ABSENT:
		if (now_ms >= e->expires_ms) {
			drop(ix, e);
			return TLS_LOOK_MISS;
		}
		return TLS_LOOK_ABSENT;
	default:
		return TLS_LOOK_LOADING;
	}
}

enum tls_look tls_index_resolve(struct tls_index *ix, const char *name,
				int64_t now_ms, void **val, char *load)
{
	char wild[TLS_NAME_MAX + 1];
	enum tls_look r = tls_index_get(ix, name, now_ms, val);

	if (r == TLS_LOOK_LOADING || r == TLS_LOOK_MISS) {
		snprintf(load, TLS_NAME_MAX + 1, "%s", name);
		return r;
	}
	if (r == TLS_LOOK_HIT)
		return r;
	/* no certificate of its own: a wildcard may cover it */
	if (tls_sni_wildcard(name, wild, sizeof(wild)) < 0)
		return TLS_LOOK_ABSENT;
	r = tls_index_get(ix, wild, now_ms, val);
	if (r == TLS_LOOK_LOADING || r == TLS_LOOK_MISS)
		snprintf(load, TLS_NAME_MAX + 1, "%s", wild);
	return r;
}

int tls_index_loading(struct tls_index *ix, const char *name)
{
	struct ent **p, *e = find(ix, name, &p);
	size_t n = strlen(name);

	if (e && e->state != ENT_ABSENT)
		return -EEXIST;
	if (e) {
		/* absent (expired or not): load again */
		lru_unlink(&ix->absent, e);
		e->state = ENT_LOADING;
		return 0;
	}
	if (n == 0 || n > TLS_NAME_MAX)
		return -EINVAL;
	e = calloc(1, sizeof(*e) + n + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->name, name, n + 1);
	e->hash = hash_name(name);
	e->state = ENT_LOADING;
	*p = e;
	return 0;
}

int tls_index_put(struct tls_index *ix, const char *name, void *val,
		  int64_t now_ms)
{
	struct ent **p, *e = find(ix, name, &p);
	struct lru *l;
	size_t n = strlen(name);

	if (!e) {
		/* a result for a name evicted or never marked: keep it */
		if (n == 0 || n > TLS_NAME_MAX)
			return -EINVAL;
		e = calloc(1, sizeof(*e) + n + 1);
		if (!e)
			return -ENOMEM;
		memcpy(e->name, name, n + 1);
		e->hash = hash_name(name);
		e->state = ENT_LOADING;
		*p = e;
	}
	l = list_of(ix, e);
	if (l)
		lru_unlink(l, e);
	if (e->state == ENT_PRESENT && e->val)
		ix->ops.unref(e->val); /* held on by handshakes that use it */
	e->val = NULL;
	if (val) {
		ix->ops.ref(val);
		e->val = val;
		e->state = ENT_PRESENT;
	} else {
		e->state = ENT_ABSENT;
		e->expires_ms = now_ms + ix->absent_ttl_ms;
	}
	l = list_of(ix, e);
	lru_push(l, e);
	evict(ix, l);
	return 0;
}

int tls_index_changed(struct tls_index *ix, const char *name)
{
	struct ent *e = find(ix, name, NULL);

	if (!e)
		return 0;
	if (e->state == ENT_ABSENT) {
		drop(ix, e);
		return 0;
	}
	return 1;
}

size_t tls_index_present(const struct tls_index *ix)
{
	return ix->present.list.n;
}

size_t tls_index_absent(const struct tls_index *ix)
{
	return ix->absent.list.n;
}
