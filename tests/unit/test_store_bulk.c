/*
 * Unit tests for store_bulk_begin / store_bulk_end against real SQLite:
 * writes in a bulk are invisible to another handle until the commit, a
 * failed write inside undoes only itself (its savepoint) and the bulk
 * goes on, a rolled-back bulk leaves nothing, and misuse (nesting, end
 * without begin) is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "store_fixture.h"

static uint64_t n_domains(struct store *st)
{
	uint64_t counts[STORE_DOMAIN__MAX] = {0}, total = 0;

	assert_int_equal(store_domain_count(st, counts), 0);
	for (int i = 0; i < STORE_DOMAIN__MAX; i++)
		total += counts[i];
	return total;
}

static void test_bulk_commit_is_atomic(void **state)
{
	struct store_fx *fx = *state;
	struct store *other = NULL;
	struct store_cert c =
	    store_fx_cert("a.example.com", "01", T0, T0 + 90000), got;
	struct store_domain d;
	char err[256];

	assert_int_equal(store_open(fx->state, &other, err, sizeof(err)), 0);
	assert_int_equal(store_bulk_begin(fx->st), 0);
	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(
	    store_cert_insert(fx->st, &c, 0, T0 + 60000, T0, NULL), 0);
	assert_int_equal(store_event_append(fx->st, "a.example.com", T0,
					    "issued", "bulk"),
			 0);
	/* this handle sees its own writes, the other none yet */
	assert_int_equal(n_domains(fx->st), 2);
	assert_int_equal(n_domains(other), 0);
	assert_int_equal(store_bulk_end(fx->st, 1), 0);
	assert_int_equal(n_domains(other), 2);
	assert_int_equal(store_domain_get(other, "a.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_VALID);
	assert_int_equal(d.next_attempt_ms, T0 + 60000);
	assert_int_equal(store_cert_current(other, "a.example.com", &got), 0);
	assert_string_equal(got.info.serial, "01");
	store_cert_clear(&got);
	/* after the bulk, writes commit one by one again */
	assert_int_equal(store_domain_add(fx->st, "c.example.com", NULL, T0),
			 1);
	assert_int_equal(n_domains(other), 3);
	store_close(other);
}

static void test_bulk_failed_write_undoes_itself(void **state)
{
	struct store_fx *fx = *state;
	struct store_cert c =
	    store_fx_cert("a.example.com", "01", T0, T0 + 90000);
	struct store_cert bad =
	    store_fx_cert("nope.example.com", "02", T0, T0 + 90000);
	struct store_cert got;
	struct store_domain d;

	assert_int_equal(store_bulk_begin(fx->st), 0);
	assert_int_equal(store_domain_add(fx->st, "a.example.com", NULL, T0),
			 1);
	/* unknown domain: the insert fails and leaves no row behind */
	assert_int_equal(store_cert_insert(fx->st, &bad, 0, T0, T0, NULL),
			 -ENOENT);
	/* a wrong order id fails after the certificate row was written:
	 * that row and the domain update are undone with it */
	assert_int_equal(store_cert_insert(fx->st, &c, 4242, T0, T0, NULL),
			 -ENOENT);
	assert_int_equal(store_domain_add(fx->st, "b.example.com", NULL, T0),
			 1);
	assert_int_equal(store_bulk_end(fx->st, 1), 0);
	assert_int_equal(n_domains(fx->st), 2);
	assert_int_equal(store_cert_current(fx->st, "a.example.com", &got),
			 -ENOENT);
	assert_int_equal(store_domain_get(fx->st, "a.example.com", &d), 0);
	assert_int_equal(d.status, STORE_DOMAIN_PENDING);
	assert_int_equal(d.next_attempt_ms, T0);
}

static void test_bulk_rollback(void **state)
{
	struct store_fx *fx = *state;

	assert_int_equal(store_domain_add(fx->st, "kept.example.com", NULL, T0),
			 1);
	assert_int_equal(store_bulk_begin(fx->st), 0);
	assert_int_equal(store_domain_add(fx->st, "x.example.com", NULL, T0),
			 1);
	assert_int_equal(store_domain_remove(fx->st, "kept.example.com", T0),
			 0);
	assert_int_equal(store_bulk_end(fx->st, 0), 0);
	assert_int_equal(n_domains(fx->st), 1);
	{
		struct store_domain d;

		assert_int_equal(store_domain_get(fx->st, "x.example.com", &d),
				 -ENOENT);
		assert_int_equal(
		    store_domain_get(fx->st, "kept.example.com", &d), 0);
		assert_int_equal(d.status, STORE_DOMAIN_PENDING);
	}
}

static void test_bulk_misuse(void **state)
{
	struct store_fx *fx = *state;

	assert_int_equal(store_bulk_end(fx->st, 1), -EINVAL);
	assert_int_equal(store_bulk_begin(fx->st), 0);
	assert_int_equal(store_bulk_begin(fx->st), -EBUSY);
	assert_int_equal(store_bulk_end(fx->st, 1), 0);
	assert_int_equal(store_bulk_end(fx->st, 1), -EINVAL);
	assert_int_equal(store_bulk_begin(NULL), -EINVAL);
	assert_int_equal(store_bulk_end(NULL, 1), -EINVAL);
}

#define T(f)                                                                   \
	cmocka_unit_test_setup_teardown(f, store_fx_setup, store_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_bulk_commit_is_atomic),
	    T(test_bulk_failed_write_undoes_itself),
	    T(test_bulk_rollback),
	    T(test_bulk_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
