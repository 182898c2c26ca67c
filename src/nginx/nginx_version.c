/*
 * nginx_version.c — which nginx is this, from what `nginx -V` prints.
 * Pure. The engine runs the configured command with -V once at start-up
 * and asks whether ssl_certificate_cache (1.27.4) exists: Debian 12
 * ships 1.22, so the sni-variable strategy must work without it.
 */
#include <errno.h>
#include <string.h>

#include "nginx/nginx.h"

static int s_is_name(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
	       c == '_';
}

/* A decimal of at most 4 digits at s[*i]; -1 when none. */
static int num(const char *s, size_t len, size_t *i)
{
	int v = 0, digits = 0;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && digits < 5) {
		v = v * 10 + (s[*i] - '0');
		(*i)++;
		digits++;
	}
	return digits == 0 || digits > 4 ? -1 : v;
}

int nginx_version_parse(const char *text, size_t len, unsigned *out)
{
	static const char tag[] = "version: ";
	const char *p = text ? memmem(text, len, tag, sizeof(tag) - 1) : NULL;
	size_t i;
	int a, b, c;

	if (!p)
		return -EINVAL;
	i = (size_t)(p - text) + sizeof(tag) - 1;
	/* "nginx/", "openresty/", "freenginx/": the product, then a slash */
	while (i < len && s_is_name(text[i]))
		i++;
	if (i >= len || text[i] != '/')
		return -EINVAL;
	i++;
	if ((a = num(text, len, &i)) < 0 || i >= len || text[i++] != '.' ||
	    (b = num(text, len, &i)) < 0 || i >= len || text[i++] != '.' ||
	    (c = num(text, len, &i)) < 0 || b > 999 || c > 999)
		return -EINVAL;
	*out = NGINX_VERSION((unsigned)a, (unsigned)b, (unsigned)c);
	return 0;
}
