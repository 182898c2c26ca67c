/*
 * store_fixture.c — see store_fixture.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "unit_tmp.h"

int store_fx_open(struct store_fx *fx)
{
	char err[256];

	strcpy(fx->dir, "/tmp/certherd-store-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
	snprintf(fx->db, sizeof(fx->db), "%s/certherd.db", fx->state);
	if (store_open(fx->state, &fx->st, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	return 0;
}

void store_fx_close(struct store_fx *fx)
{
	store_close(fx->st);
	fx->st = NULL;
	unit_rm_tree(fx->dir);
}

int store_fx_setup(void **state)
{
	struct store_fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (store_fx_open(fx) < 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

int store_fx_teardown(void **state)
{
	struct store_fx *fx = *state;

	store_fx_close(fx);
	free(fx);
	return 0;
}

struct store_cert store_fx_cert(const char *domain, const char *serial,
				int64_t nb, int64_t na)
{
	struct store_cert c = {0};

	snprintf(c.info.domain, sizeof(c.info.domain), "%s", domain);
	snprintf(c.info.serial, sizeof(c.info.serial), "%s", serial);
	strcpy(c.info.issuer, "Test CA");
	c.info.not_before_ms = nb;
	c.info.not_after_ms = na;
	c.info.ari_start_ms = STORE_NO_TIME;
	c.info.ari_end_ms = STORE_NO_TIME;
	c.chain_pem = (char *)"CHAIN";
	c.key_pem = (char *)"KEY";
	return c;
}
