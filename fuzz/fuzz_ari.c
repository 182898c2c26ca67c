/*
 * libFuzzer driver for the RFC 9773 parsers: acme_ari_parse (a
 * renewalInfo body, with its RFC 3339 timestamps and explanationURL),
 * acme_ari_time_parse on the raw bytes, and acme_ari_certid on the bytes
 * taken as a DER certificate. Checks what the header promises: a parsed
 * window is ordered and in bounds, a parsed timestamp formats back to the
 * same instant, an identifier is base64url "." base64url.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int b64url_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_ari a = {0};
	char err[256], t[64], id[ACME_ARI_CERTID_MAX];
	int64_t ms, back;
	size_t dots = 0;

	a.retry_after_ms = -1;
	if (acme_ari_parse((const char *)data, size, &a, err, sizeof(err)) == 0) {
		if (a.end_ms <= a.start_ms || a.start_ms < ACME_ARI_EARLIEST_MS ||
		    a.end_ms >= ACME_ARI_LATEST_MS || a.retry_after_ms != -1)
			abort();
		if (a.explanation_url &&
		    (strncmp(a.explanation_url, "http", 4) != 0 ||
		     strpbrk(a.explanation_url, " \t\r\n")))
			abort();
	} else if (a.explanation_url || !err[0] || strlen(err) >= sizeof(err)) {
		abort();
	}
	acme_ari_clear(&a);

	if (acme_ari_time_parse((const char *)data, size, &ms) == 0) {
		if (acme_ari_time_format(ms, t, sizeof(t)) == 0) {
			if (acme_ari_time_parse(t, strlen(t), &back) != 0 ||
			    back != ms)
				abort();
		} else if (ms > INT64_C(253402300799999)) {
			abort(); /* only years past 9999 may fail to format */
		}
	}

	if (acme_ari_certid(data, size, id, sizeof(id)) == 0) {
		for (const char *p = id; *p; p++) {
			if (*p == '.')
				dots++;
			else if (!b64url_char(*p))
				abort();
		}
		if (dots != 1 || id[0] == '.' || id[strlen(id) - 1] == '.')
			abort();
	}
	return 0;
}
