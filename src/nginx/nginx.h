/*
 * nginx — nginx mode's own parts (docs/nginx.md), below the engine that
 * drives them:
 *
 *   nginx_render.c   the include file from a template, for both
 *                    strategies; the challenge snippet; pure
 *   nginx_version.c  `nginx -V` output -> version, feature tests; pure
 *   nginx_certbot.c  certbot renewal/NAME.conf parser; pure
 *   nginx_files.c    key ownership for nginx, removed domains' files
 *   nginx_verify.c   a TLS client: which certificate does nginx serve
 *                    for this SNI (blocking; run it off the loop)
 *
 * Error convention: int functions return 0 or a negative errno; where a
 * function takes err/errsz it writes a one-line reason there (lower case,
 * problem first). Pointers: NULL on failure.
 */
#ifndef CERTHERD_NGINX_H
#define CERTHERD_NGINX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config_addr;

/* Largest template accepted, and the longest nginx-side string
 * (listen, upstream, a path) put in a rendered file. */
#define NGINX_TEMPLATE_MAX (64u << 10)
#define NGINX_STR_MAX	   4096

/* Same values as enum config_nginx_strategy (checked in nginx_render.c). */
enum nginx_strategy {
	NGINX_SERVER_BLOCKS = 0, /* one server block per domain */
	NGINX_SNI_VARIABLE,	 /* one block, files by $ssl_server_name */
	NGINX__MAX
};
extern const char *const nginx_strategy_names[NGINX__MAX];

/* ---- rendering (nginx_render.c) ---------------------------------------- */

struct nginx_render_opts {
	enum nginx_strategy strategy;
	const char *template_text; /* NULL: the built-in one of strategy */
	const char *live_dir;	   /* absolute, nginx_path_ok */
	const char *listen;	   /* nginx's form: "443", "127.0.0.1:8443" */
	const char *upstream;	   /* "http://127.0.0.1:8080", NULL = none */
	int cert_cache;		   /* nginx >= 1.27.4: ssl_certificate_cache */
};

/*
 * The placeholders a template may use ({{name}}): domain, fullchain,
 * privkey, cert, chain, listen, upstream, cert_cache. In server-blocks
 * the template is repeated once per domain (and must use {{domain}});
 * in sni-variable it is rendered once, the paths holding $ssl_server_name
 * and {{domain}} being "_".
 */
/* The built-in template of a strategy (static). */
const char *nginx_builtin_template(enum nginx_strategy s);
/*
 * Check o's template without rendering: every {{...}} known, {{upstream}}
 * only with o->upstream, {{domain}} present in server-blocks, braces
 * balanced outside comments and quotes, no NUL or control characters
 * but tab and newline, at most NGINX_TEMPLATE_MAX bytes. 0 or -EINVAL.
 */
int nginx_template_check(const struct nginx_render_opts *o, char *err,
			 size_t errsz);
/*
 * The include file: a header comment, then
 *  - server-blocks: the template for each of names[0..n) (names as the
 *    store holds them, [a-z0-9.*-]); a wildcard "*.x" gets server_name
 *    *.x and the files of live/_wildcard.x/ (nginx's own server_name
 *    matching prefers exact names to wildcards);
 *  - sni-variable: the template once. Without a wildcard among names the
 *    paths hold $ssl_server_name and names are ignored (adding a domain
 *    changes nothing nginx reads). With one, a map comes first:
 *    $certherd_cert_dir is the directory of the wildcard for a name one
 *    label below its base, except for the names listed that have files
 *    of their own (exact entries win over a map's regular expressions),
 *    and $ssl_server_name for every other name; the paths hold it. Names
 *    covered by no wildcard of names are left out of the map.
 * Same input, same bytes, so a caller compares outputs to know whether
 * nginx must reload. malloc'd, NUL-terminated, length into *len; NULL
 * with err set.
 */
char *nginx_render(const struct nginx_render_opts *o, const char *const *names,
		   size_t n, size_t *len, char *err, size_t errsz);
/* Does the wildcard wild ("*.x") cover name: exactly one label, any but
 * a wildcard, before ".x"? 1 or 0 (as TLS clients match, RFC 6125 6.4.3;
 * nginx's own "*.x" would also take a.b.x, which the certificate does
 * not cover). */
int nginx_wildcard_covers(const char *wild, const char *name);
/* A path nginx can take unquoted and without variables: non-empty,
 * [A-Za-z0-9/._+@=,:-] only. 1 or 0. */
int nginx_path_ok(const char *path);
/* "443" for ":443", "127.0.0.1:8443", "[::1]:8443": an address as a
 * listen directive takes it. 0, or -EINVAL for other kinds. */
int nginx_listen_str(const struct config_addr *a, char *out, size_t outsz);
/* "http://127.0.0.1:8080", "http://unix:/run/app.sock:". 0 or -EINVAL. */
int nginx_upstream_str(const struct config_addr *a, char *out, size_t outsz);
/*
 * What `certherd nginx snippet` prints: the location block that forwards
 * /.well-known/acme-challenge/ to target ("127.0.0.1:8402", certherd's
 * http.listen as nginx reaches it), then a catch-all :80 server doing the
 * same and redirecting the rest to https. malloc'd; NULL on ENOMEM.
 */
char *nginx_snippet(const char *target);

/* ---- nginx -V (nginx_version.c) ------------------------------------------ */

#define NGINX_VERSION(a, b, c) ((a)*1000000u + (b)*1000u + (c))
/* First ssl_certificate with variables, first ssl_certificate_cache. */
#define NGINX_V_CERT_VARIABLES NGINX_VERSION(1, 15, 9)
#define NGINX_V_CERT_CACHE     NGINX_VERSION(1, 27, 4)
/*
 * The version in the output of `nginx -v` / `nginx -V` ("nginx version:
 * nginx/1.22.1", also "openresty/..." and "freenginx/..."), as
 * NGINX_VERSION(a, b, c) into *out. 0, or -EINVAL when there is none.
 */
int nginx_version_parse(const char *text, size_t len, unsigned *out);

/* ---- certbot (nginx_certbot.c) ------------------------------------------- */

/* What a renewal/NAME.conf says about its lineage (paths may be empty). */
struct nginx_certbot_conf {
	char fullchain[NGINX_STR_MAX];
	char privkey[NGINX_STR_MAX];
	char server[NGINX_STR_MAX]; /* the CA's directory URL */
};
/*
 * Parse a renewal configuration (configobj INI: "key = value" lines,
 * [sections], '#' comments). Only the top-level keys before the first
 * section are read. 0, or -EINVAL for a line that is none of these or a
 * value too long.
 */
int nginx_certbot_conf_parse(const char *text, size_t len,
			     struct nginx_certbot_conf *out, char *err,
			     size_t errsz);

/* ---- files nginx reads (nginx_files.c) ----------------------------------- */

/* "user" or "user:group" -> ids (the user's primary group when none is
 * given). 0, or -ENOENT/-EINVAL with err set. */
int nginx_owner_parse(const char *spec, uid_t *uid, gid_t *gid, char *err,
		      size_t errsz);
/*
 * The functions below take a name as the store holds it and find its
 * files where store_live_write puts them: live_dir/<name>/, and for a
 * wildcard "*.x" live_dir/_wildcard.x/ (store_live_dirname).
 */
/* Give live_dir/<name>/privkey.pem to uid:gid, mode 0600. 0 or negative
 * errno. */
int nginx_key_chown(const char *live_dir, const char *name, uid_t uid,
		    gid_t gid);
/* Delete live_dir/<name>/ and the files certherd writes in it (nothing
 * else: a directory holding other files is kept). 1 deleted, 0 there was
 * nothing, negative errno. */
int nginx_live_delete(const char *live_dir, const char *name);
/* Do live_dir/<name>/fullchain.pem and privkey.pem exist? 1 or 0. */
int nginx_live_present(const char *live_dir, const char *name);

/* ---- verification (nginx_verify.c) --------------------------------------- */

/*
 * Connect to host:port (an IP literal), hand-shake TLS with sni, and put
 * the served leaf certificate's serial (upper-case hex, as x509_inspect
 * writes it) into serial. No verification of the chain: the question is
 * only which certificate nginx picked. timeout_ms bounds the connect and
 * the handshake each. 0, or a negative errno with err set.
 */
int nginx_verify_serial(const char *host, unsigned port, const char *sni,
			int timeout_ms, char *serial, size_t serialsz,
			char *err, size_t errsz);

#endif
