/*
 * nginx_render.c — the include file certherd keeps for nginx, rendered
 * from a template, and the challenge snippet. Pure: text in, text out;
 * the engine (engine_nginx.c) reads the template, writes the file, runs
 * `nginx -t` and reloads.
 *
 * Why a template with {{placeholders}} rather than a config language of
 * our own: the operator already writes nginx; they copy one of their
 * hand-written server blocks, put {{domain}} and {{fullchain}} where the
 * name and paths were, and every domain gets that block. Everything that
 * would break nginx's parsing and that we can see without nginx (an
 * unknown placeholder, unbalanced braces) is refused here, the rest is
 * `nginx -t`'s job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nginx/nginx.h"
#include "store/store.h"
#include "util/config.h"

_Static_assert((int)NGINX_SERVER_BLOCKS == (int)CONFIG_NGINX_SERVER_BLOCKS &&
		   (int)NGINX_SNI_VARIABLE == (int)CONFIG_NGINX_SNI_VARIABLE &&
		   (int)NGINX__MAX == (int)CONFIG_NGINX__MAX,
	       "nginx_strategy mirrors config_nginx_strategy");

const char *const nginx_strategy_names[NGINX__MAX] = {"server-blocks",
						      "sni-variable"};

/* sni-variable with wildcards: the variable a map sets to the directory
 * of a handshake's files (docs/nginx.md). */
#define SNI_DIR_VAR "$certherd_cert_dir"

/* The size ssl_certificate_cache gets in the built-in template: entries
 * are parsed certificate+key pairs, a few KiB each. */
#define CERT_CACHE_LINE "ssl_certificate_cache max=20000 inactive=1h valid=1m;"
#define CERT_CACHE_NONE                                                        \
	"# no ssl_certificate_cache (nginx < 1.27.4): files are read at "      \
	"each handshake"

static const char tpl_blocks[] =
    "server {\n"
    "    listen {{listen}} ssl;\n"
    "    server_name {{domain}};\n"
    "    ssl_certificate {{fullchain}};\n"
    "    ssl_certificate_key {{privkey}};\n"
    "    location / {\n"
    "        proxy_pass {{upstream}};\n"
    "        proxy_set_header Host $host;\n"
    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    "        proxy_set_header X-Forwarded-Proto https;\n"
    "    }\n"
    "}\n";

/* default_server: every name no other server block claims lands here,
 * and its files are looked up by the name the client asked for. */
static const char tpl_sni[] =
    "server {\n"
    "    listen {{listen}} ssl default_server;\n"
    "    server_name {{domain}};\n"
    "    ssl_certificate {{fullchain}};\n"
    "    ssl_certificate_key {{privkey}};\n"
    "    {{cert_cache}}\n"
    "    location / {\n"
    "        proxy_pass {{upstream}};\n"
    "        proxy_set_header Host $host;\n"
    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    "        proxy_set_header X-Forwarded-Proto https;\n"
    "    }\n"
    "}\n";

enum ph {
	PH_DOMAIN = 0,
	PH_FULLCHAIN,
	PH_PRIVKEY,
	PH_CERT,
	PH_CHAIN,
	PH_LISTEN,
	PH_UPSTREAM,
	PH_CERT_CACHE,
	PH__MAX
};
static const char *const ph_names[PH__MAX] = {
    "domain", "fullchain", "privkey",  "cert",
    "chain",  "listen",	   "upstream", "cert_cache"};
/* the file each path placeholder stands for */
static const char *const ph_files[PH__MAX] = {
    [PH_FULLCHAIN] = "fullchain.pem",
    [PH_PRIVKEY] = "privkey.pem",
    [PH_CERT] = "cert.pem",
    [PH_CHAIN] = "chain.pem",
};

const char *nginx_builtin_template(enum nginx_strategy s)
{
	return s == NGINX_SNI_VARIABLE ? tpl_sni : tpl_blocks;
}

int nginx_path_ok(const char *p)
{
	if (!p || !*p)
		return 0;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/._+@=,:-", *p)))
			return 0;
	return 1;
}

/* The placeholder starting at t ("{{name}}"): its index, its length into
 * *adv; -1 for an unknown one, -2 for "{{" without "}}". */
static int ph_at(const char *t, size_t *adv)
{
	const char *end = strstr(t + 2, "}}");

	if (!end)
		return -2;
	*adv = (size_t)(end + 2 - t);
	for (int i = 0; i < PH__MAX; i++)
		if ((size_t)(end - t - 2) == strlen(ph_names[i]) &&
		    strncmp(t + 2, ph_names[i], strlen(ph_names[i])) == 0)
			return i;
	return -1;
}

static const char *tpl_of(const struct nginx_render_opts *o)
{
	return o->template_text ? o->template_text
				: nginx_builtin_template(o->strategy);
}

/* 1-based line of position pos in t, for messages. */
static unsigned line_of(const char *t, size_t pos)
{
	unsigned l = 1;

	for (size_t i = 0; i < pos; i++)
		l += t[i] == '\n';
	return l;
}

int nginx_template_check(const struct nginx_render_opts *o, char *err,
			 size_t errsz)
{
	const char *t = tpl_of(o);
	size_t n = strnlen(t, NGINX_TEMPLATE_MAX + 1), adv, open_at = 0;
	int seen[PH__MAX] = {0}, depth = 0, ph;
	char quote = 0;

	if (n > NGINX_TEMPLATE_MAX) {
		snprintf(err, errsz, "template is larger than %u bytes",
			 NGINX_TEMPLATE_MAX);
		return -EINVAL;
	}
	if (o->strategy >= NGINX__MAX || !nginx_path_ok(o->live_dir) ||
	    !o->listen || !*o->listen) {
		snprintf(err, errsz,
			 "live directory %s cannot be written in an nginx "
			 "file (letters, digits and /._+@=,:- only)",
			 o->live_dir ? o->live_dir : "(none)");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c < 0x20 && c != '\n' && c != '\t') {
			snprintf(err, errsz,
				 "template line %u: control character 0x%02x",
				 line_of(t, i), c);
			return -EINVAL;
		}
		if (c == '{' && t[i + 1] == '{') {
			ph = ph_at(t + i, &adv);
			if (ph == -2 ||
			    (ph == -1 && memchr(t + i, '\n', adv))) {
				snprintf(err, errsz,
					 "template line %u: {{ without }}",
					 line_of(t, i));
				return -EINVAL;
			}
			if (ph < 0) {
				snprintf(
				    err, errsz,
				    "template line %u: unknown placeholder "
				    "%.*s (known: domain, fullchain, "
				    "privkey, cert, chain, listen, "
				    "upstream, cert_cache)",
				    line_of(t, i), adv > 40 ? 40 : (int)adv,
				    t + i);
				return -EINVAL;
			}
			seen[ph] = 1;
			i += adv - 1;
			continue;
		}
		if (quote) {
			if (c == '\\' && t[i + 1])
				i++;
			else if (c == (unsigned char)quote)
				quote = 0;
			continue;
		}
		if (c == '#') {
			while (i + 1 < n && t[i + 1] != '\n')
				i++;
		} else if (c == '"' || c == '\'') {
			quote = (char)c;
		} else if (c == '{') {
			if (depth++ == 0)
				open_at = i;
		} else if (c == '}' && --depth < 0) {
			snprintf(err, errsz,
				 "template line %u: '}' closes "
				 "nothing",
				 line_of(t, i));
			return -EINVAL;
		}
	}
	if (quote || depth) {
		snprintf(err, errsz,
			 quote ? "template: a quoted string is not closed"
			       : "template line %u: '{' is not closed",
			 line_of(t, open_at));
		return -EINVAL;
	}
	if (seen[PH_UPSTREAM] && !o->upstream) {
		snprintf(err, errsz,
			 "template uses {{upstream}} but "
			 "nginx.upstream is not set");
		return -EINVAL;
	}
	if (o->strategy == NGINX_SERVER_BLOCKS && !seen[PH_DOMAIN]) {
		snprintf(err, errsz,
			 "template has no {{domain}}: every domain would get "
			 "the same server block");
		return -EINVAL;
	}
	return 0;
}

/* ---- output buffer ---------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* One rendering of the template: for name (server-blocks), whose files
 * are in live_dir/dir/, or for every name (sni-variable: name NULL, dir a
 * variable). */
static void render_one(struct buf *b, const struct nginx_render_opts *o,
		       const char *t, const char *name, const char *dir)
{
	size_t adv = 0;

	while (*t) {
		const char *s = strstr(t, "{{");
		int ph;

		if (!s) {
			puts_(b, t);
			return;
		}
		put(b, t, (size_t)(s - t));
		ph = ph_at(s, &adv); /* checked: known */
		switch (ph) {
		case PH_DOMAIN:
			puts_(b, name ? name : "_");
			break;
		case PH_LISTEN:
			puts_(b, o->listen);
			break;
		case PH_UPSTREAM:
			puts_(b, o->upstream ? o->upstream : "");
			break;
		case PH_CERT_CACHE:
			puts_(b, o->cert_cache ? CERT_CACHE_LINE
					       : CERT_CACHE_NONE);
			break;
		default:
			puts_(b, o->live_dir);
			puts_(b, "/");
			puts_(b, dir);
			puts_(b, "/");
			puts_(b, ph_files[ph]);
			break;
		}
		t = s + adv;
	}
}

int nginx_wildcard_covers(const char *wild, const char *name)
{
	const char *dot;

	if (!wild || !name || strncmp(wild, "*.", 2) != 0 || name[0] == '*' ||
	    !(dot = strchr(name, '.')) || dot == name)
		return 0;
	return strcmp(dot + 1, wild + 2) == 0;
}

/* The store's names are [a-z0-9.-], a wildcard's "*." first; anything
 * else here would be a bug, not a domain, and could break the file. */
static int name_renderable(const char *s)
{
	if (!s || !*s || strlen(s) > STORE_NAME_MAX)
		return 0;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	return *s &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == strlen(s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * sni-variable's map, when names hold a wildcard: its directory for the
 * names one label below its base (a regular expression: nginx's "*.x"
 * would take a.b.x too, which the certificate does not cover), the
 * name's own for those listed that a wildcard covers (exact strings win
 * over regular expressions in a map, so they keep their certificate),
 * and $ssl_server_name for the rest, as without a map. 1 when written,
 * 0 when names hold no wildcard, -ENOMEM.
 */
static int render_map(struct buf *b, const char *const *names, size_t n)
{
	const char **wild;
	char dn[STORE_NAME_MAX + 16], key[STORE_NAME_MAX + 1];
	size_t nw = 0;

	wild = malloc((n ? n : 1) * sizeof(*wild));
	if (!wild)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (names[i][0] == '*')
			wild[nw++] = names[i];
	if (!nw) {
		free(wild);
		return 0;
	}
	qsort(wild, nw, sizeof(*wild), cmp_str);
	puts_(b, "# a name with no certificate of its own reads the files of "
		 "the wildcard\n# that covers it\n"
		 "map $ssl_server_name " SNI_DIR_VAR " {\n"
		 "    default $ssl_server_name;\n");
	for (size_t i = 0; i < n; i++) {
		const char *dot = strchr(names[i], '.'), *k = key;

		if (names[i][0] == '*' || !dot)
			continue;
		snprintf(key, sizeof(key), "*%s", dot);
		if (!bsearch(&k, wild, nw, sizeof(*wild), cmp_str))
			continue; /* no wildcard covers it: default */
		puts_(b, "    ");
		puts_(b, names[i]);
		puts_(b, " ");
		puts_(b, names[i]);
		puts_(b, ";\n");
	}
	for (size_t i = 0; i < nw; i++) {
		puts_(b, "    ~*^[a-z0-9-]+");
		for (const char *p = wild[i] + 1; *p; p++)
			if (*p == '.')
				puts_(b, "\\.");
			else
				put(b, p, 1);
		puts_(b, "$ ");
		puts_(b, store_live_dirname(wild[i], dn, sizeof(dn)));
		puts_(b, ";\n");
	}
	puts_(b, "}\n");
	free(wild);
	return 1;
}

char *nginx_render(const struct nginx_render_opts *o, const char *const *names,
		   size_t n, size_t *len, char *err, size_t errsz)
{
	struct buf b = {0};
	const char *t = tpl_of(o);
	char head[256], dn[STORE_NAME_MAX + 16];
	int rc;

	if (nginx_template_check(o, err, errsz) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!name_renderable(names[i])) {
			snprintf(err, errsz,
				 "refusing to render domain name %.80s",
				 names[i] ? names[i] : "(null)");
			return NULL;
		}
	snprintf(head, sizeof(head),
		 "# written by certherd (nginx.strategy = %s%s): do not edit, "
		 "it is replaced\n",
		 nginx_strategy_names[o->strategy],
		 o->template_text ? ", your template" : ", built-in template");
	puts_(&b, head);
	if (o->strategy == NGINX_SNI_VARIABLE) {
		rc = render_map(&b, names, n);
		if (rc < 0)
			b.oom = 1;
		render_one(&b, o, t, NULL,
			   rc > 0 ? SNI_DIR_VAR : "$ssl_server_name");
	} else {
		snprintf(head, sizeof(head), "# %zu domain%s\n", n,
			 n == 1 ? "" : "s");
		puts_(&b, head);
		for (size_t i = 0; i < n; i++)
			render_one(
			    &b, o, t, names[i],
			    store_live_dirname(names[i], dn, sizeof(dn)));
	}
	if (b.oom) {
		free(b.p);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	*len = b.len;
	return b.p;
}

int nginx_listen_str(const struct config_addr *a, char *out, size_t outsz)
{
	int w;

	switch (a->kind) {
	case CONFIG_ADDR_ANY:
		w = snprintf(out, outsz, "%u", a->port);
		break;
	case CONFIG_ADDR_IP:
		w = snprintf(out, outsz,
			     strchr(a->host, ':') ? "[%s]:%u" : "%s:%u",
			     a->host, a->port);
		break;
	default:
		return -EINVAL;
	}
	return w < 0 || (size_t)w >= outsz ? -EINVAL : 0;
}

int nginx_upstream_str(const struct config_addr *a, char *out, size_t outsz)
{
	int w;

	switch (a->kind) {
	case CONFIG_ADDR_IP:
		w = snprintf(out, outsz,
			     strchr(a->host, ':') ? "http://[%s]:%u"
						  : "http://%s:%u",
			     a->host, a->port);
		break;
	case CONFIG_ADDR_UNIX:
		if (!nginx_path_ok(a->path))
			return -EINVAL;
		w = snprintf(out, outsz, "http://unix:%s:", a->path);
		break;
	default:
		return -EINVAL;
	}
	return w < 0 || (size_t)w >= outsz ? -EINVAL : 0;
}

char *nginx_snippet(const char *target)
{
	static const char fmt[] =
	    "# certherd answers ACME HTTP-01 challenges on %s (http.listen).\n"
	    "# nginx keeps port 80 and forwards the challenges to it.\n"
	    "#\n"
	    "# 1. In every server block that listens on port 80 for a "
	    "domain:\n"
	    "location ^~ /.well-known/acme-challenge/ {\n"
	    "    proxy_pass http://%s;\n"
	    "    proxy_set_header Host $host;\n"
	    "}\n"
	    "\n"
	    "# 2. Or one catch-all server for port 80 (in the http block), "
	    "which also\n"
	    "#    sends every other request to https:\n"
	    "server {\n"
	    "    listen 80 default_server;\n"
	    "    listen [::]:80 default_server;\n"
	    "    server_name _;\n"
	    "    location ^~ /.well-known/acme-challenge/ {\n"
	    "        proxy_pass http://%s;\n"
	    "        proxy_set_header Host $host;\n"
	    "    }\n"
	    "    location / {\n"
	    "        return 308 https://$host$request_uri;\n"
	    "    }\n"
	    "}\n";
	size_t n = sizeof(fmt) + 3 * strlen(target);
	char *s = malloc(n);

	if (s)
		snprintf(s, n, fmt, target, target, target);
	return s;
}
