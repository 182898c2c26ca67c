/*
 * fuzz_api_json.c — the control API's POST /v1/domains body parser
 * (api__names_parse) and the string sanitizer its replies use, fed any
 * bytes a client can send. Checks what the handlers rely on: on success
 * every entry is either a valid normalized name or has a reason, the
 * invalid count and first index agree, duplicates point at names seen
 * before; every client string echoed back becomes a valid JSON string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_names nm;
	char err[256], *s;
	size_t i, invalid = 0;
	json_t *j;

	if (api__names_parse((const char *)data, size, &nm, err, sizeof(err)) ==
	    0) {
		if (nm.n == 0 || nm.n > API_MAX_NAMES)
			abort();
		for (i = 0; i < nm.n; i++) {
			const struct api_name *e = &nm.v[i];

			if (!e->input || (!e->norm[0]) != (e->reason[0] != 0))
				abort();
			if (e->reason[0] && invalid++ == 0 &&
			    nm.first_invalid != i)
				abort();
			if (e->dup && !e->norm[0])
				abort();
			/* the reply echoes the input: always encodable */
			j = api__str(e->input, 300);
			if (!j)
				abort();
			json_decref(j);
		}
		if (invalid != nm.n_invalid)
			abort();
		api__names_free(&nm);
	} else if (!err[0] || nm.root || nm.v) {
		abort();
	}

	/* arbitrary bytes (not only JSON strings) through the sanitizer */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	j = api__str(s, size % 512);
	if (!j || strlen(json_string_value(j)) > size % 512)
		abort();
	json_decref(j);
	free(s);
	return 0;
}
