/*
 * fuzz_sni.c — the ClientHello server_name extension parser and SNI
 * normalization (tls_sni.c), fed raw bytes both as an extension body and
 * as a name. Checks what the certificate lookup relies on: an accepted
 * name is 1..253 bytes of lower-case LDH and dots; for ASCII input the
 * result is exactly name_normalize's (the store's spelling), and
 * name_normalize accepts what tls_sni_normalize accepts unless an
 * "xn--" label is not canonical punycode (which only libidn2 can tell,
 * and which then simply finds no certificate); the wildcard of an
 * accepted name is one label shorter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"
#include "util/util.h"

static void check_name(const char *out)
{
	size_t len = strlen(out);

	if (len == 0 || len > TLS_NAME_MAX)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = out[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[TLS_NAME_MAX + 1], ref[NAME_MAX_LEN + 1], wild[TLS_NAME_MAX + 1];
	char in[1100];
	int rc, ascii = 1;

	if (tls_sni_from_ext(data, size, out, sizeof(out)) == 0)
		check_name(out);
	rc = tls_sni_normalize((const char *)data, size, out, sizeof(out));
	if (rc == 0) {
		check_name(out);
		if (tls_sni_wildcard(out, wild, sizeof(wild)) == 0 &&
		    (wild[0] != '*' || strlen(wild) >= strlen(out) + 1 ||
		     strcmp(strchr(out, '.'), wild + 1) != 0))
			abort();
	}
	if (size >= sizeof(in))
		return 0;
	for (size_t i = 0; i < size; i++)
		if (data[i] == 0 || data[i] >= 0x80)
			ascii = 0;
	if (!ascii || (size && data[0] == '*'))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (name_normalize(in, 0, ref, sizeof(ref), NULL, 0) == 0) {
		/* the store's spelling: the handshake must find it */
		if (rc != 0 || strcmp(out, ref) != 0)
			abort();
	} else if (rc == 0 && !strstr(out, "xn--")) {
		abort();
	}
	return 0;
}
