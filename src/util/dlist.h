/*
 * dlist — an intrusive doubly linked list with a count: the node lives
 * inside the element (struct dlist_node), so linking never allocates and
 * unlinking an element found some other way (a hash lookup) is O(1). The
 * order lists of the bounded caches (demand_table, tls_index) use it:
 * push at one end, evict or take from the other, move an element on use.
 * Header only: a few pointer assignments each, inlined where they are used.
 */
#ifndef CERTHERD_UTIL_DLIST_H
#define CERTHERD_UTIL_DLIST_H

#include <stddef.h>

struct dlist_node {
	struct dlist_node *prev, *next; /* NULL at the ends, and off a list */
};

struct dlist {
	struct dlist_node *head, *tail; /* NULL when empty */
	size_t n;
};

/* The element of type type whose member member is node p (NULL: NULL). */
#define DLIST_ENTRY(p, type, member)                                           \
	((p) ? (type *)(void *)((char *)(p) - offsetof(type, member)) : NULL)

/* Add e (on no list) at the head. */
static inline void dlist_push_head(struct dlist *l, struct dlist_node *e)
{
	e->prev = NULL;
	e->next = l->head;
	if (l->head)
		l->head->prev = e;
	else
		l->tail = e;
	l->head = e;
	l->n++;
}

/* Add e (on no list) at the tail. */
static inline void dlist_push_tail(struct dlist *l, struct dlist_node *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->n++;
}

/* Take e off l, which it is on. */
static inline void dlist_unlink(struct dlist *l, struct dlist_node *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
	l->n--;
}

#endif
