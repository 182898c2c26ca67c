/*
 * libFuzzer driver for acme_hdr: the input is a raw header block as a
 * driver would hand it over. Every header the machines read is looked
 * up, and the values that get further parsing (Link, Retry-After) are
 * fed to their parsers; the whole input is also fed to those parsers
 * directly so they are reached without first forming a header line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void link_cb(void *ctx, const char *url, const char *rel)
{
	size_t *n = ctx;

	/* callbacks only ever see non-empty, whitespace-free strings */
	if (!*url || !*rel || strpbrk(url, " \t\r\n") ||
	    strpbrk(rel, " \t\r\n"))
		abort();
	(*n)++;
}

static void value(const char *name, const char *v)
{
	int64_t ms = -1;
	size_t n = 0;

	if (strcmp(name, "Retry-After") == 0 || name[0] == '\0') {
		if (acme_retry_after_parse(v, 784111777, &ms) == 0 &&
		    (ms < 0 || ms > 24LL * 3600 * 1000))
			abort();
	}
	if (strcmp(name, "Link") == 0 || name[0] == '\0') {
		if (acme_link_parse(v, link_cb, &n) != 0 && n != 0)
			abort(); /* a refused value reports nothing */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"Replay-Nonce", "Location", "Link",
					    "Retry-After", "Content-Type"};
	char out[2048], *copy;
	size_t i;
	int idx, r;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (idx = 0; idx < 4; idx++) {
			r = acme_hdr_get((const char *)data, size, names[i],
					 idx, out, sizeof(out));
			if (r < 0)
				break;
			if ((size_t)r != strlen(out))
				abort();
			value(names[i], out);
		}
	}
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	value("", copy);
	free(copy);
	return 0;
}
