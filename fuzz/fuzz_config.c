/*
 * fuzz_config.c — the configuration reader is fed by operators' files and
 * command lines. The input is parsed as an INI file over the defaults;
 * what it accepts must validate or fail cleanly, and its dump must read
 * back to the same dump (so `config show` output is always a valid
 * config). The same bytes also go through --set and the duration and
 * address parsers with every flag combination.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/config.h"

static char *dump(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		abort();
	if (config_dump(c, m) != 0)
		abort();
	fclose(m);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], *text, *d1, *d2;
	struct config a, b;
	struct config_addr ad;
	int64_t dur;

	if (size > 64 * 1024)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (config_defaults(&a) != 0)
		abort();
	if (config_load_string(&a, text, "fuzz", "/", err, sizeof(err)) == 0 &&
	    config_validate(&a, err, sizeof(err)) == 0) {
		d1 = dump(&a);
		if (config_defaults(&b) != 0)
			abort();
		if (config_load_string(&b, d1, "dump", "/", err, sizeof(err)) ||
		    config_validate(&b, err, sizeof(err)))
			abort(); /* the dump of a valid config must read back */
		d2 = dump(&b);
		if (strcmp(d1, d2) != 0)
			abort();
		free(d1);
		free(d2);
		config_free(&b);
	}
	config_free(&a);

	if (config_defaults(&a) != 0)
		abort();
	(void)config_set(&a, text, err, sizeof(err));
	config_free(&a);

	if (config_parse_duration(text, &dur) == 0 &&
	    (dur < 0 || dur > 3650LL * 24 * 3600))
		abort();
	for (unsigned f = 0; f < 32; f++)
		if (config_parse_addr(text, f, &ad) == 0 &&
		    (ad.kind >= CONFIG_ADDR__MAX ||
		     memchr(ad.host, '\0', sizeof(ad.host)) == NULL))
			abort();
	free(text);
	return 0;
}
