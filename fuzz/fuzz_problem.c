/*
 * libFuzzer driver for acme_problem_parse: any bytes a CA sends with an
 * error status. Also renders and classifies what was parsed, since the
 * log line is built from the same peer strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_error e;
	char buf[512];
	size_t i;

	memset(&e, 0, sizeof(e));
	e.retry_after_ms = -1;
	e.step = "fuzz";
	if (acme_problem_parse((const char *)data, size, &e) == 0) {
		/* a parsed problem always has a type and a detail */
		if (!e.type || !e.detail || e.code != ACME_E_PROBLEM)
			abort();
		for (i = 0; i < e.n_sub; i++)
			if (!e.sub[i].type)
				abort();
		acme_problem_is_permanent(e.type);
	} else if (e.code != ACME_E_PROTOCOL && e.code != ACME_E_INTERNAL) {
		abort();
	}
	acme_error_str(&e, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(buf) || strchr(buf, '\n'))
		abort();
	acme_error_clear(&e);
	return 0;
}
