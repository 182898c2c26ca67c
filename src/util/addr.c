/*
 * addr.c — listen addresses as operators write them: "ADDR:PORT",
 * "[V6]:PORT" or ":PORT" (every IPv4 address). Shared by every listener
 * (HTTP-01 responder, control API) so they accept the same forms and say
 * the same thing about a bad one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int addr_parse_listen(const char *str, int allow_port0,
		      struct sockaddr_storage *ss, char *err, size_t errsz)
{
	char host[64];
	const char *colon = str ? strrchr(str, ':') : NULL;
	char *end;
	long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (!colon || colon[1] == '\0')
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end || errno || port < (allow_port0 ? 0 : 1) || port > 65535)
		goto bad;
	hl = (size_t)(colon - str);
	if (hl >= sizeof(host))
		goto bad;
	memcpy(host, str, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			goto bad;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (hl == 0)
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto bad;
	}
	return 0;
bad:
	if (err)
		snprintf(err, errsz,
			 "invalid listen address \"%.100s\": want ADDR:PORT, "
			 "[V6]:PORT or :PORT",
			 str ? str : "");
	return -EINVAL;
}
