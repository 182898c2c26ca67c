/*
 * engine_queue — who gets the next rate-limit token: the daemon's queue
 * of domain work (issue or renew), ordered by (class, due time, name),
 * and the rule that picks the next item allowed to start under the
 * ledger's buckets (engine_queue_next).
 *
 * Why not one heap keyed by (class, due): the pick must skip a whole
 * class whose bucket share is used up and look at the next class's
 * earliest item, which one heap cannot give in O(log n). So: one binary
 * heap per class (their concatenation is the (class, due, name) order),
 * a fourth heap of EARLY items keyed by promote_ms so that an early
 * renewal that waited too long becomes URGENT exactly on time, and a
 * name index (open addressing, linear probing, backward-shift deletion)
 * so update and remove by name are O(log n) too.
 *
 * Memory (64-bit): a 40-byte item record, 4 bytes in its class heap, 4
 * in the promotion heap when EARLY, 8 in the index (kept at most half
 * full), plus the name's own allocation: about 56 bytes + the name, ~90
 * bytes for a typical 25-character name; arrays grow by doubling, so up
 * to twice that transiently. A million items: ~100 MB worst case, ~60 MB
 * typical. Items are referred to by 32-bit ids into one array; freed
 * records are reused through a free list.
 *
 * Pure: time comes in as now_ms; nothing reads the clock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

#define NONE UINT32_MAX
#define FREE_CLS 0xff

struct qitem {
	int64_t due_ms;
	int64_t promote_ms;
	char *name;      /* owned */
	uint32_t hash;
	uint32_t hpos;   /* index in heaps[cls]; next free id when free */
	uint32_t ppos;   /* index in the promotion heap, or NONE */
	uint8_t cls;     /* FREE_CLS when the record is free */
};

struct heap {
	uint32_t *v;
	size_t n, cap;
};

struct engine_queue {
	struct qitem *items;
	size_t n_items, cap_items; /* records in use + free, allocated */
	uint32_t free_head;        /* NONE: no free record */
	size_t size;               /* live items */
	struct heap heaps[ENGINE_CLASS__MAX];
	struct heap promo;
	uint32_t *index;           /* id + 1, 0 = empty */
	size_t index_cap;          /* power of two */
};

/* ---- heaps ------------------------------------------------------------- */

/* a before b in a class heap: (due, name). */
static int before(const struct engine_queue *q, uint32_t a, uint32_t b)
{
	const struct qitem *x = &q->items[a], *y = &q->items[b];

	if (x->due_ms != y->due_ms)
		return x->due_ms < y->due_ms;
	return strcmp(x->name, y->name) < 0;
}

/* a before b in the promotion heap: (promote_ms, name). */
static int pbefore(const struct engine_queue *q, uint32_t a, uint32_t b)
{
	const struct qitem *x = &q->items[a], *y = &q->items[b];

	if (x->promote_ms != y->promote_ms)
		return x->promote_ms < y->promote_ms;
	return strcmp(x->name, y->name) < 0;
}

static int hless(const struct engine_queue *q, const struct heap *h,
		 uint32_t a, uint32_t b)
{
	return h == &q->promo ? pbefore(q, a, b) : before(q, a, b);
}

static void hset(struct engine_queue *q, struct heap *h, size_t i,
		 uint32_t id)
{
	h->v[i] = id;
	if (h == &q->promo)
		q->items[id].ppos = (uint32_t)i;
	else
		q->items[id].hpos = (uint32_t)i;
}

static void sift_up(struct engine_queue *q, struct heap *h, size_t i)
{
	uint32_t id = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!hless(q, h, id, h->v[p]))
			break;
		hset(q, h, i, h->v[p]);
		i = p;
	}
	hset(q, h, i, id);
}

static void sift_down(struct engine_queue *q, struct heap *h, size_t i)
{
	uint32_t id = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && hless(q, h, h->v[c + 1], h->v[c]))
			c++;
		if (!hless(q, h, h->v[c], id))
			break;
		hset(q, h, i, h->v[c]);
		i = c;
	}
	hset(q, h, i, id);
}

/* Make room for one more element, so that a push cannot fail midway
 * through an update. */
static int heap_reserve(struct heap *h)
{
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		uint32_t *v = realloc(h->v, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = nc;
	}
	return 0;
}

/* Needs heap_reserve first. */
static void heap_push(struct engine_queue *q, struct heap *h, uint32_t id)
{
	h->v[h->n++] = id;
	sift_up(q, h, h->n - 1);
}

/* Restore order after the key of the element at i changed in place. */
static void heap_fix(struct engine_queue *q, struct heap *h, size_t i)
{
	uint32_t id = h->v[i];

	sift_up(q, h, i);
	sift_down(q, h, h == &q->promo ? q->items[id].ppos
				       : q->items[id].hpos);
}

static void heap_del(struct engine_queue *q, struct heap *h, size_t i)
{
	uint32_t last = h->v[--h->n];

	if (i == h->n)
		return;
	/* The moved element may belong either way from here. */
	hset(q, h, i, last);
	heap_fix(q, h, i);
}

/* ---- name index -------------------------------------------------------- */

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* Slot holding name, or the empty slot where it would go. */
static size_t index_slot(const struct engine_queue *q, const char *name,
			 uint32_t h)
{
	size_t mask = q->index_cap - 1, i;

	for (i = h & mask; q->index[i]; i = (i + 1) & mask) {
		const struct qitem *it = &q->items[q->index[i] - 1];

		if (it->hash == h && strcmp(it->name, name) == 0)
			break;
	}
	return i;
}

static uint32_t lookup(const struct engine_queue *q, const char *name)
{
	size_t i;

	if (!q->index_cap)
		return NONE;
	i = index_slot(q, name, hash_name(name));
	return q->index[i] ? q->index[i] - 1 : NONE;
}

static int index_grow(struct engine_queue *q)
{
	size_t nc = q->index_cap ? q->index_cap * 2 : 128, i;
	uint32_t *ni = calloc(nc, sizeof(*ni));

	if (!ni)
		return -ENOMEM;
	for (i = 0; i < q->index_cap; i++) {
		uint32_t e = q->index[i];
		size_t j;

		if (!e)
			continue;
		for (j = q->items[e - 1].hash & (nc - 1); ni[j];
		     j = (j + 1) & (nc - 1))
			;
		ni[j] = e;
	}
	free(q->index);
	q->index = ni;
	q->index_cap = nc;
	return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void index_del(struct engine_queue *q, uint32_t id)
{
	size_t mask = q->index_cap - 1;
	size_t i = index_slot(q, q->items[id].name, q->items[id].hash), j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!q->index[j])
			break;
		home = q->items[q->index[j] - 1].hash & mask;
		/* Move j's entry into the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
			q->index[i] = q->index[j];
			i = j;
		}
	}
	q->index[i] = 0;
}

/* ---- records ----------------------------------------------------------- */

struct engine_queue *engine_queue_new(void)
{
	struct engine_queue *q = calloc(1, sizeof(*q));

	if (q)
		q->free_head = NONE;
	return q;
}

void engine_queue_free(struct engine_queue *q)
{
	size_t i;

	if (!q)
		return;
	for (i = 0; i < q->n_items; i++)
		if (q->items[i].cls != FREE_CLS)
			free(q->items[i].name);
	for (i = 0; i < ENGINE_CLASS__MAX; i++)
		free(q->heaps[i].v);
	free(q->promo.v);
	free(q->index);
	free(q->items);
	free(q);
}

size_t engine_queue_size(const struct engine_queue *q)
{
	return q->size;
}

static int wants_promo(const struct qitem *it)
{
	return it->cls == ENGINE_CLASS_EARLY && it->promote_ms != ENGINE_NEVER;
}

static void fill(const struct qitem *it, struct engine_queue_item *out)
{
	out->name = it->name;
	out->cls = (enum engine_class)it->cls;
	out->due_ms = it->due_ms;
	out->promote_ms = it->promote_ms;
}

/* Take id out of its heaps, the index and the record array. */
static void drop(struct engine_queue *q, uint32_t id)
{
	struct qitem *it = &q->items[id];

	heap_del(q, &q->heaps[it->cls], it->hpos);
	if (it->ppos != NONE)
		heap_del(q, &q->promo, it->ppos);
	index_del(q, id);
	free(it->name);
	it->name = NULL;
	it->cls = FREE_CLS;
	it->hpos = q->free_head;
	q->free_head = id;
	q->size--;
}

int engine_queue_push(struct engine_queue *q, const char *name,
		      enum engine_class cls, int64_t due_ms,
		      int64_t promote_ms)
{
	struct qitem *it;
	uint32_t id, h;
	size_t len, slot;

	if (!name || (unsigned)cls >= ENGINE_CLASS__MAX)
		return -EINVAL;
	len = strlen(name);
	if (len == 0 || len > NAME_MAX_LEN)
		return -EINVAL;

	id = lookup(q, name);
	if (id != NONE) {
		/* Update in place. Room first, so nothing fails halfway. */
		it = &q->items[id];
		if (heap_reserve(&q->heaps[cls]) < 0 ||
		    heap_reserve(&q->promo) < 0)
			return -ENOMEM;
		if (it->ppos != NONE) {
			heap_del(q, &q->promo, it->ppos);
			it->ppos = NONE;
		}
		it->due_ms = due_ms;
		it->promote_ms = promote_ms;
		if (it->cls != cls) {
			heap_del(q, &q->heaps[it->cls], it->hpos);
			it->cls = (uint8_t)cls;
			heap_push(q, &q->heaps[cls], id);
		} else {
			heap_fix(q, &q->heaps[cls], it->hpos);
		}
		if (wants_promo(it))
			heap_push(q, &q->promo, id);
		return 0;
	}

	if ((q->size + 1) * 2 > q->index_cap && index_grow(q) < 0)
		return -ENOMEM;
	if (heap_reserve(&q->heaps[cls]) < 0 || heap_reserve(&q->promo) < 0)
		return -ENOMEM;
	if (q->free_head == NONE && q->n_items == q->cap_items) {
		size_t nc = q->cap_items ? q->cap_items * 2 : 64;
		struct qitem *ni;

		if (nc > NONE)
			return -ENOMEM;
		ni = realloc(q->items, nc * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		q->items = ni;
		q->cap_items = nc;
	}
	if (q->free_head != NONE) {
		id = q->free_head;
		q->free_head = q->items[id].hpos;
	} else {
		id = (uint32_t)q->n_items++;
	}
	it = &q->items[id];
	memset(it, 0, sizeof(*it));
	it->name = strdup(name);
	if (!it->name)
		goto fail_record;
	h = hash_name(name);
	it->hash = h;
	it->cls = (uint8_t)cls;
	it->due_ms = due_ms;
	it->promote_ms = promote_ms;
	it->ppos = NONE;
	heap_push(q, &q->heaps[cls], id);
	if (wants_promo(it))
		heap_push(q, &q->promo, id);
	slot = index_slot(q, name, h);
	q->index[slot] = id + 1;
	q->size++;
	return 0;

fail_record:
	it->cls = FREE_CLS;
	it->hpos = q->free_head;
	q->free_head = id;
	return -ENOMEM;
}

int engine_queue_get(const struct engine_queue *q, const char *name,
		     struct engine_queue_item *out)
{
	uint32_t id = name ? lookup(q, name) : NONE;

	if (id == NONE)
		return -ENOENT;
	if (out)
		fill(&q->items[id], out);
	return 0;
}

int engine_queue_remove(struct engine_queue *q, const char *name)
{
	uint32_t id = name ? lookup(q, name) : NONE;

	if (id == NONE)
		return -ENOENT;
	drop(q, id);
	return 0;
}

/* The smallest id by (class, due, name), or NONE. */
static uint32_t first(const struct engine_queue *q)
{
	size_t c;

	for (c = 0; c < ENGINE_CLASS__MAX; c++)
		if (q->heaps[c].n)
			return q->heaps[c].v[0];
	return NONE;
}

int engine_queue_peek(const struct engine_queue *q,
		      struct engine_queue_item *out)
{
	uint32_t id = first(q);

	if (id == NONE)
		return -ENOENT;
	if (out)
		fill(&q->items[id], out);
	return 0;
}

/* Copy id's record out, then drop it. */
static int take_out(struct engine_queue *q, uint32_t id, char *name,
		    size_t namesz, struct engine_queue_item *out)
{
	struct qitem *it = &q->items[id];
	size_t len = strlen(it->name);

	if (!name || namesz <= len)
		return -ENOSPC;
	memcpy(name, it->name, len + 1);
	if (out) {
		fill(it, out);
		out->name = name;
	}
	drop(q, id);
	return 0;
}

int engine_queue_pop(struct engine_queue *q, char *name, size_t namesz,
		     struct engine_queue_item *out)
{
	uint32_t id = first(q);

	if (id == NONE)
		return -ENOENT;
	return take_out(q, id, name, namesz, out);
}

size_t engine_queue_promote(struct engine_queue *q, int64_t now_ms)
{
	size_t moved = 0;

	while (q->promo.n) {
		uint32_t id = q->promo.v[0];
		struct qitem *it = &q->items[id];

		if (it->promote_ms > now_ms)
			break;
		if (heap_reserve(&q->heaps[ENGINE_CLASS_URGENT]) < 0)
			break; /* stays EARLY; retried at the next pick */
		heap_del(q, &q->promo, 0);
		it->ppos = NONE;
		heap_del(q, &q->heaps[ENGINE_CLASS_EARLY], it->hpos);
		it->cls = ENGINE_CLASS_URGENT;
		heap_push(q, &q->heaps[ENGINE_CLASS_URGENT], id);
		moved++;
	}
	return moved;
}

/* ---- the pick ---------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Which per-item limits charge an item of class cls. */
static int charged(const struct engine_limits *l, enum engine_limit kind,
		   enum engine_class cls)
{
	return cls == ENGINE_CLASS_NEW ||
	       !engine_limits_def(l, kind)->renewal_exempt;
}

int engine_queue_next(struct engine_queue *q, struct engine_limits *l,
		      int64_t now_ms, char *name, size_t namesz,
		      struct engine_queue_item *out, int64_t *wake_at)
{
	int64_t wake = ENGINE_NEVER;
	char rd[NAME_MAX_LEN + 1];
	size_t c;
	int rc = 0;

	if (!name || namesz <= NAME_MAX_LEN)
		return -EINVAL;
	engine_queue_promote(q, now_ms);
	/* A due promotion can only be in the future now. */
	if (q->promo.n)
		wake = q->items[q->promo.v[0]].promote_ms;

	for (c = 0; c < ENGINE_CLASS__MAX; c++) {
		struct heap *h = &q->heaps[c];
		enum engine_class cls = (enum engine_class)c;

		while (h->n) {
			uint32_t id = h->v[0];
			struct qitem *it = &q->items[id];
			int64_t t = now_ms;
			double need = 1;

			if (it->due_ms > now_ms) {
				wake = min64(wake, it->due_ms);
				break;
			}
			if (!l)
				goto start;

			/* The class's share of the account bucket. */
			if (cls == ENGINE_CLASS_EARLY) {
				const struct engine_limit_def *d =
				    engine_limits_def(l, ENGINE_LIMIT_ORDERS);

				need += (double)(int64_t)(d->capacity *
							  ENGINE_QUEUE_EARLY_RESERVE);
			}
			t = engine_limits_when(l, ENGINE_LIMIT_ORDERS, "",
					       need, now_ms);
			if (t > now_ms) {
				wake = min64(wake, t);
				break; /* skip the class, try the next */
			}

			/* The item's own buckets. */
			rc = engine_limits_regdomain(it->name, rd, sizeof(rd));
			if (rc < 0)
				return rc;
			if (charged(l, ENGINE_LIMIT_REGDOMAIN, cls))
				t = max64(t, engine_limits_when(
						 l, ENGINE_LIMIT_REGDOMAIN, rd,
						 1, now_ms));
			if (charged(l, ENGINE_LIMIT_IDENTICAL, cls))
				t = max64(t, engine_limits_when(
						 l, ENGINE_LIMIT_IDENTICAL,
						 it->name, 1, now_ms));
			t = max64(t, engine_limits_when(
					 l, ENGINE_LIMIT_FAILED_AUTHZ,
					 it->name, 1, now_ms));
			if (t > now_ms) {
				/* Defer this one; the class goes on. */
				it->due_ms = t;
				heap_fix(q, h, 0);
				continue;
			}

			/* Reserve: ORDERS, then the item's buckets; undo on
			 * ENOMEM so nothing is charged for nothing. */
			rc = engine_limits_take(l, ENGINE_LIMIT_ORDERS, "", 1,
						now_ms);
			if (rc < 0)
				return rc;
			if (charged(l, ENGINE_LIMIT_REGDOMAIN, cls) &&
			    (rc = engine_limits_take(l, ENGINE_LIMIT_REGDOMAIN,
						     rd, 1, now_ms)) < 0) {
				engine_limits_give(l, ENGINE_LIMIT_ORDERS, "",
						   1, now_ms);
				return rc;
			}
			if (charged(l, ENGINE_LIMIT_IDENTICAL, cls) &&
			    (rc = engine_limits_take(l, ENGINE_LIMIT_IDENTICAL,
						     it->name, 1, now_ms)) < 0) {
				engine_limits_give(l, ENGINE_LIMIT_ORDERS, "",
						   1, now_ms);
				if (charged(l, ENGINE_LIMIT_REGDOMAIN, cls))
					engine_limits_give(
					    l, ENGINE_LIMIT_REGDOMAIN, rd, 1,
					    now_ms);
				return rc;
			}
start:
			rc = take_out(q, id, name, namesz, out);
			if (rc < 0)
				return rc;
			if (wake_at)
				*wake_at = now_ms;
			return 1;
		}
	}
	if (wake_at)
		*wake_at = wake;
	return 0;
}
