/*
 * fuzz_name.c — domain-name normalization and base64url decoding, both fed
 * by outside bytes (command line, domain files, later the API). Checks
 * what callers rely on: an accepted name is bounded, lower-case LDH with
 * dots, and normalizing it again gives itself; decoding never reads or
 * writes past its buffers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[1100], out[NAME_MAX_LEN + 1], again[NAME_MAX_LEN + 1], err[256];
	unsigned char *dec;
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1, dlen;

	memcpy(in, data, n);
	in[n] = '\0';
	for (unsigned flags = 0; flags <= NAME_ALLOW_WILDCARD; flags++) {
		if (name_normalize(in, flags, out, sizeof(out), err,
				   sizeof(err)) < 0)
			continue;
		size_t len = strlen(out);
		if (len == 0 || len > NAME_MAX_LEN)
			abort();
		for (size_t i = 0; i < len; i++) {
			char c = out[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '.' || (c == '*' && i == 0)))
				abort();
		}
		if (name_normalize(out, flags, again, sizeof(again), err,
				   sizeof(err)) < 0 ||
		    strcmp(out, again) != 0)
			abort();
	}
	dec = b64url_decode((const char *)data, size, &dlen);
	if (dec && dlen > size)
		abort();
	free(dec);
	return 0;
}
