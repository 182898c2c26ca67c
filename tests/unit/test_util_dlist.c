/*
 * Unit tests for the intrusive list (util/dlist.h): pushes at both ends,
 * unlinking the head, the tail, a middle element and the only one, the
 * count, and DLIST_ENTRY back from a node to its element. The list is
 * checked whole each time, both ways, so a broken back link shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/dlist.h"

struct item {
	int v;
	struct dlist_node link; /* not first: DLIST_ENTRY must subtract */
};

/* l holds exactly want[0..n) from head to tail, linked both ways. */
static void expect(const struct dlist *l, const int *want, size_t n)
{
	const struct dlist_node *p = l->head, *prev = NULL;
	size_t i = 0;

	assert_int_equal(l->n, n);
	for (; p; prev = p, p = p->next, i++) {
		assert_true(i < n);
		assert_ptr_equal(p->prev, prev);
		assert_int_equal(DLIST_ENTRY(p, struct item, link)->v, want[i]);
	}
	assert_int_equal(i, n);
	assert_ptr_equal(l->tail, prev);
}

static void test_push_and_unlink(void **state)
{
	struct item it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
	struct dlist l = {0};

	(void)state;
	expect(&l, NULL, 0);
	dlist_push_tail(&l, &it[1].link);
	dlist_push_tail(&l, &it[2].link);
	dlist_push_head(&l, &it[0].link);
	dlist_push_tail(&l, &it[3].link);
	expect(&l, (const int[]){0, 1, 2, 3}, 4);

	dlist_unlink(&l, &it[2].link); /* middle */
	assert_null(it[2].link.prev);
	assert_null(it[2].link.next);
	expect(&l, (const int[]){0, 1, 3}, 3);
	dlist_unlink(&l, &it[0].link); /* head */
	expect(&l, (const int[]){1, 3}, 2);
	dlist_unlink(&l, &it[3].link); /* tail */
	expect(&l, (const int[]){1}, 1);
	dlist_unlink(&l, &it[1].link); /* the only one */
	expect(&l, NULL, 0);
	assert_null(l.head);

	/* a node taken off goes back on at either end */
	dlist_push_head(&l, &it[2].link);
	dlist_push_head(&l, &it[1].link);
	expect(&l, (const int[]){1, 2}, 2);
}

static void test_entry_of_null(void **state)
{
	struct dlist l = {0};

	(void)state;
	assert_null(DLIST_ENTRY(l.head, struct item, link));
	assert_null(DLIST_ENTRY(l.tail, struct item, link));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_push_and_unlink),
	    cmocka_unit_test(test_entry_of_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
