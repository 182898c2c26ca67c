/*
 * libFuzzer driver for acme_directory_parse: the first document fetched
 * from a CA, before anything else is trusted. Checks the promises the
 * rest of the core relies on when parsing succeeds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const char *u, int required)
{
	if (!u) {
		if (required)
			abort();
		return;
	}
	if (strncasecmp(u, "https://", 8) != 0 &&
	    strncasecmp(u, "http://", 7) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_directory d;
	char err[256];
	size_t i;

	if (acme_directory_parse((const char *)data, size, &d, err,
				 sizeof(err)) == 0) {
		check_url(d.new_nonce, 1);
		check_url(d.new_account, 1);
		check_url(d.new_order, 1);
		check_url(d.revoke_cert, 0);
		check_url(d.key_change, 0);
		check_url(d.renewal_info, 0);
		for (i = 0; i < d.n_profiles; i++)
			if (!d.profiles[i] || !*d.profiles[i])
				abort();
		acme_directory_clear(&d);
	} else if (d.new_nonce || d.profiles || !err[0]) {
		abort();
	}
	return 0;
}
