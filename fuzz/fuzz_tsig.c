/*
 * libFuzzer driver for engine_tsig_parse: any bytes in a TSIG key file.
 * A parsed key has a name, the one algorithm and a base64 secret; a
 * refused one leaves the key zeroed and a reason without the input's
 * secret-looking part.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct engine_tsig_key k;
	char why[256];

	why[0] = '\0';
	if (engine_tsig_parse((const char *)data, size, &k, why, sizeof(why)) ==
	    0) {
		if (!k.name[0] || strcmp(k.algorithm, "hmac-sha256.") != 0 ||
		    strlen(k.secret) < 24 || strlen(k.secret) % 4)
			abort();
	} else if (!why[0] || k.secret[0] || k.name[0]) {
		abort();
	}
	return 0;
}
