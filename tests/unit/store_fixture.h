/*
 * store_fixture.h — the store unit tests' fixture: a store opened in a
 * fresh temporary directory, removed again at the end, and a certificate
 * to insert. Compiled into each store test (tests/unit/meson.build).
 */
#ifndef CERTHERD_TEST_STORE_FIXTURE_H
#define CERTHERD_TEST_STORE_FIXTURE_H

#include <stdint.h>

#include "store/store.h"

#define T0 1700000000000LL /* a fixed "now" in ms */

struct store_fx {
	char dir[64];	/* the temporary directory */
	char state[96]; /* dir/state: the store's state directory */
	char db[128];	/* state/certherd.db, for SQL behind the store's back */
	struct store *st;
};

/* Make the directory and open the store in it: 0, or -1 with a message
 * on stderr. */
int store_fx_open(struct store_fx *fx);
/* Close the store and remove the directory with all in it. */
void store_fx_close(struct store_fx *fx);
/* cmocka group/test setup and teardown: *state is a struct store_fx. */
int store_fx_setup(void **state);
int store_fx_teardown(void **state);

/* A certificate for domain valid from nb to na (ms), without an ARI
 * window; its PEM fields point at constant strings. */
struct store_cert store_fx_cert(const char *domain, const char *serial,
				int64_t nb, int64_t na);

#endif
