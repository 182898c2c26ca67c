/*
 * test_nginx — the pure parts of nginx mode: template checks and
 * rendering for both strategies (wildcards included), the snippet,
 * nginx -V parsing, certbot renewal files, address forms; and where the
 * live/ helpers look for a wildcard's files.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nginx/nginx.h"
#include "store/store.h"
#include "util/config.h"

static struct nginx_render_opts opts(enum nginx_strategy s, const char *tpl)
{
	struct nginx_render_opts o = {
	    .strategy = s,
	    .template_text = tpl,
	    .live_dir = "/var/lib/certherd/live",
	    .listen = "443",
	    .upstream = "http://127.0.0.1:8080",
	};
	return o;
}

static void test_blocks_render(void **state)
{
	static const char *const names[] = {"a.example.com", "*.b.example"};
	struct nginx_render_opts o = opts(
	    NGINX_SERVER_BLOCKS,
	    "server { server_name {{domain}}; ssl_certificate {{fullchain}}; "
	    "ssl_certificate_key {{privkey}}; # {{cert}} {{chain}}\n}\n");
	char err[256], *out;
	size_t len;

	(void)state;
	out = nginx_render(&o, names, 2, &len, err, sizeof(err));
	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	assert_non_null(strstr(out, "# 2 domains\n"));
	assert_non_null(
	    strstr(out, "server { server_name a.example.com; ssl_certificate "
			"/var/lib/certherd/live/a.example.com/fullchain.pem; "
			"ssl_certificate_key "
			"/var/lib/certherd/live/a.example.com/privkey.pem; # "
			"/var/lib/certherd/live/a.example.com/cert.pem "
			"/var/lib/certherd/live/a.example.com/chain.pem\n}\n"));
	/* a wildcard's files are where the store writes them, not in the
	 * base name's directory (the plain name's) */
	assert_non_null(strstr(out,
			       "server_name *.b.example; ssl_certificate "
			       "/var/lib/certherd/live/_wildcard.b.example/"
			       "fullchain.pem; ssl_certificate_key "
			       "/var/lib/certherd/live/_wildcard.b.example/"
			       "privkey.pem;"));
	assert_null(strstr(out, "/live/b.example/"));
	free(out);
}

/* server-blocks: a platform's base name, its wildcard and an exact name
 * below it each get their block and their own files; nginx's
 * server_name matching gives the exact name precedence. */
static void test_blocks_wildcard_and_exact(void **state)
{
	static const char *const names[] = {
	    "*.platform.example", "platform.example", "shop9.platform.example"};
	struct nginx_render_opts o = opts(NGINX_SERVER_BLOCKS, NULL);
	char err[256], *out;
	size_t len;

	(void)state;
	out = nginx_render(&o, names, 3, &len, err, sizeof(err));
	assert_non_null(out);
	assert_non_null(strstr(out, "# 3 domains\n"));
	assert_non_null(strstr(out,
			       "    server_name *.platform.example;\n"
			       "    ssl_certificate /var/lib/certherd/live/"
			       "_wildcard.platform.example/fullchain.pem;"));
	assert_non_null(strstr(out,
			       "    server_name platform.example;\n"
			       "    ssl_certificate /var/lib/certherd/live/"
			       "platform.example/fullchain.pem;"));
	assert_non_null(strstr(out,
			       "    server_name shop9.platform.example;\n"
			       "    ssl_certificate /var/lib/certherd/live/"
			       "shop9.platform.example/fullchain.pem;"));
	assert_null(strstr(out, "map "));
	free(out);
}

/* sni-variable with wildcards: a map sends covered names to the
 * wildcard's files, exact names it covers to their own, and everything
 * else to $ssl_server_name as before. */
static void test_sni_wildcard_map(void **state)
{
	static const char *const names[] = {
	    "*.platform.example",    "*.eu.platform.example",
	    "customer.example",	     "shop9.platform.example",
	    "a.eu.platform.example", "deep.a.platform.example",
	    "platform.example"};
	static const char want[] =
	    "map $ssl_server_name $certherd_cert_dir {\n"
	    "    default $ssl_server_name;\n"
	    "    shop9.platform.example shop9.platform.example;\n"
	    "    a.eu.platform.example a.eu.platform.example;\n"
	    "    ~*^[a-z0-9-]+\\.eu\\.platform\\.example$ "
	    "_wildcard.eu.platform.example;\n"
	    "    ~*^[a-z0-9-]+\\.platform\\.example$ "
	    "_wildcard.platform.example;\n"
	    "}\n";
	struct nginx_render_opts o = opts(NGINX_SNI_VARIABLE, NULL);
	char err[256], *out, *plain;
	size_t len, plen;

	(void)state;
	out = nginx_render(&o, names, 7, &len, err, sizeof(err));
	assert_non_null(out);
	if (!strstr(out, want))
		fail_msg("map not as expected:\n%s", out);
	/* the map is at the http level, before the server block */
	assert_true(strstr(out, "map ") < strstr(out, "server {"));
	assert_non_null(strstr(out, "ssl_certificate /var/lib/certherd/live/"
				    "$certherd_cert_dir/fullchain.pem;"));
	assert_non_null(strstr(out, "ssl_certificate_key /var/lib/certherd/"
				    "live/$certherd_cert_dir/privkey.pem;"));
	assert_null(strstr(out, "$ssl_server_name/"));
	/* names a wildcard does not cover are not listed: they read their
	 * own files through the default, and adding one changes nothing */
	assert_null(strstr(out, "customer.example"));
	assert_null(strstr(out, "deep.a.platform.example"));
	assert_null(strstr(out, "    platform.example"));
	/* same input, same bytes */
	plain = nginx_render(&o, names, 7, &plen, err, sizeof(err));
	assert_non_null(plain);
	assert_int_equal(len, plen);
	assert_memory_equal(out, plain, len);
	free(plain);
	/* without a wildcard the include is what it always was */
	plain = nginx_render(&o, names + 2, 5, &plen, err, sizeof(err));
	assert_non_null(plain);
	assert_null(strstr(plain, "map "));
	assert_non_null(strstr(plain, "/live/$ssl_server_name/fullchain.pem;"));
	free(plain);
	free(out);
}

static void test_wildcard_covers(void **state)
{
	(void)state;
	assert_int_equal(nginx_wildcard_covers("*.platform.example",
					       "shop1.platform.example"),
			 1);
	/* one label only, as TLS clients match */
	assert_int_equal(
	    nginx_wildcard_covers("*.platform.example", "a.b.platform.example"),
	    0);
	assert_int_equal(
	    nginx_wildcard_covers("*.platform.example", "platform.example"), 0);
	assert_int_equal(
	    nginx_wildcard_covers("*.platform.example", ".platform.example"),
	    0);
	assert_int_equal(
	    nginx_wildcard_covers("*.platform.example", "*.platform.example"),
	    0);
	assert_int_equal(nginx_wildcard_covers("*.platform.example",
					       "shop1.xplatform.example"),
			 0);
	assert_int_equal(
	    nginx_wildcard_covers("platform.example", "a.platform.example"), 0);
	assert_int_equal(nginx_wildcard_covers(NULL, "a.b"), 0);
}

/* The live/ helpers find a wildcard's files in _wildcard.BASE (where
 * store_live_write puts them), never in the base name's directory, and
 * deleting a removed wildcard's files leaves the base name's alone. */
static void test_wildcard_files(void **state)
{
	char dir[] = "/tmp/certherd-test-nginx-XXXXXX", path[256], dn[300];
	static const char *const files[] = {"fullchain.pem", "privkey.pem"};

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_string_equal(store_live_dirname("*.p.example", dn, sizeof(dn)),
			    "_wildcard.p.example");
	/* only the base name has files */
	snprintf(path, sizeof(path), "%s/p.example", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < 2; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/p.example/%s", dir, files[i]);
		assert_non_null(f = fopen(path, "w"));
		fclose(f);
	}
	assert_int_equal(nginx_live_present(dir, "p.example"), 1);
	assert_int_equal(nginx_live_present(dir, "*.p.example"), 0);
	assert_int_equal(nginx_live_delete(dir, "*.p.example"), 0);
	assert_int_equal(nginx_live_present(dir, "p.example"), 1);
	/* now the wildcard's own */
	snprintf(path, sizeof(path), "%s/_wildcard.p.example", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < 2; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/_wildcard.p.example/%s", dir,
			 files[i]);
		assert_non_null(f = fopen(path, "w"));
		fclose(f);
	}
	assert_int_equal(nginx_live_present(dir, "*.p.example"), 1);
	assert_int_equal(nginx_live_delete(dir, "*.p.example"), 1);
	assert_int_equal(nginx_live_present(dir, "*.p.example"), 0);
	assert_int_equal(nginx_live_present(dir, "p.example"), 1);
	assert_int_equal(nginx_live_delete(dir, "p.example"), 1);
	assert_int_equal(rmdir(dir), 0);
}

static void test_render_deterministic(void **state)
{
	static const char *const names[] = {"a.example.com", "b.example.com"};
	struct nginx_render_opts o = opts(NGINX_SERVER_BLOCKS, NULL);
	char err[256], *x, *y;
	size_t lx, ly;

	(void)state;
	x = nginx_render(&o, names, 2, &lx, err, sizeof(err));
	y = nginx_render(&o, names, 2, &ly, err, sizeof(err));
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(lx, ly);
	assert_memory_equal(x, y, lx);
	/* the built-in template proxies to the upstream */
	assert_non_null(strstr(x, "proxy_pass http://127.0.0.1:8080;"));
	assert_non_null(strstr(x, "listen 443 ssl;"));
	free(x);
	free(y);
}

static void test_sni_render(void **state)
{
	static const char *const names[] = {"a.example.com"};
	struct nginx_render_opts o = opts(NGINX_SNI_VARIABLE, NULL);
	char err[256], *one, *none;
	size_t l1, l0;

	(void)state;
	one = nginx_render(&o, names, 1, &l1, err, sizeof(err));
	none = nginx_render(&o, NULL, 0, &l0, err, sizeof(err));
	assert_non_null(one);
	assert_non_null(none);
	/* names do not matter: adding a domain changes nothing */
	assert_int_equal(l1, l0);
	assert_memory_equal(one, none, l0);
	assert_non_null(strstr(one, "ssl_certificate /var/lib/certherd/live/"
				    "$ssl_server_name/fullchain.pem;"));
	assert_non_null(strstr(one, "server_name _;"));
	assert_non_null(strstr(one, "default_server"));
	assert_non_null(strstr(one, "no ssl_certificate_cache"));
	free(one);
	o.cert_cache = 1;
	free(none);
	none = nginx_render(&o, NULL, 0, &l0, err, sizeof(err));
	assert_non_null(strstr(none, "    ssl_certificate_cache max=20000"));
	free(none);
}

/* (template, strategy, upstream?, expected message part or NULL) */
static void check_tpl(const char *tpl, enum nginx_strategy s, int upstream,
		      const char *want)
{
	struct nginx_render_opts o = opts(s, tpl);
	char err[512] = "";
	int rc;

	if (!upstream)
		o.upstream = NULL;
	rc = nginx_template_check(&o, err, sizeof(err));
	if (!want) {
		if (rc != 0)
			fail_msg("template refused: %s", err);
		return;
	}
	assert_int_equal(rc, -EINVAL);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void test_template_checks(void **state)
{
	(void)state;
	check_tpl("server { server_name {{domain}}; }", NGINX_SERVER_BLOCKS, 1,
		  NULL);
	check_tpl("server { server_name {{domian}}; }", NGINX_SERVER_BLOCKS, 1,
		  "line 1: unknown placeholder {{domian}}");
	check_tpl("server {\n server_name {{domain; }", NGINX_SERVER_BLOCKS, 1,
		  "line 2: {{ without }}");
	check_tpl("server { server_name {{domain}}; x \"{{nope}}\";\n}",
		  NGINX_SERVER_BLOCKS, 1,
		  "line 1: unknown placeholder {{nope}} (known");
	check_tpl("server { server_name {{domain\n}}; }", NGINX_SERVER_BLOCKS,
		  1, "line 1: {{ without }}");
	check_tpl("server {\n server_name {{domain}};\n", NGINX_SERVER_BLOCKS,
		  1, "line 1: '{' is not closed");
	check_tpl("server { server_name {{domain}}; }\n}\n",
		  NGINX_SERVER_BLOCKS, 1, "line 2: '}' closes nothing");
	check_tpl("server { listen 443; }", NGINX_SERVER_BLOCKS, 1,
		  "no {{domain}}");
	check_tpl("server { listen 443; }", NGINX_SNI_VARIABLE, 1, NULL);
	check_tpl("server { server_name {{domain}}; proxy_pass {{upstream}}; }",
		  NGINX_SERVER_BLOCKS, 0, "nginx.upstream is not set");
	/* braces in comments and strings are not nginx's blocks */
	check_tpl("# {{domain}} {\nserver { return 200 \"}\"; "
		  "server_name {{domain}}; }",
		  NGINX_SERVER_BLOCKS, 1, NULL);
	check_tpl("server { return 200 \"open; server_name {{domain}}; }",
		  NGINX_SERVER_BLOCKS, 1, "quoted string is not closed");
	check_tpl("server {\n\x01 server_name {{domain}}; }",
		  NGINX_SERVER_BLOCKS, 1, "line 2: control character 0x01");
}

static void test_render_refuses(void **state)
{
	static const char *const bad[] = {"a.example.com; evil"};
	static const char *const bad_wild[] = {"*.ok.example", "a.*.example"};
	struct nginx_render_opts o = opts(NGINX_SERVER_BLOCKS, NULL);
	char err[256], *out;
	size_t len;

	(void)state;
	out = nginx_render(&o, bad, 1, &len, err, sizeof(err));
	assert_null(out);
	assert_non_null(strstr(err, "refusing to render domain name"));
	/* a '*' anywhere but a leading label would break the map's regex */
	o.strategy = NGINX_SNI_VARIABLE;
	assert_null(nginx_render(&o, bad_wild, 2, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "refusing to render domain name a.*"));
	o.strategy = NGINX_SERVER_BLOCKS;
	o.live_dir = "/var/lib/cert herd";
	assert_null(nginx_render(&o, NULL, 0, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot be written in an nginx file"));
	o.live_dir = "/srv/$x";
	assert_int_equal(nginx_path_ok(o.live_dir), 0);
	assert_int_equal(nginx_path_ok("/etc/certherd/live-1"), 1);
}

static void test_version(void **state)
{
	static const char debian[] =
	    "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11\n"
	    "TLS SNI support enabled\nconfigure arguments: --with-cc-opt=-g\n";
	unsigned v = 0;

	(void)state;
	assert_int_equal(nginx_version_parse(debian, strlen(debian), &v), 0);
	assert_int_equal(v, NGINX_VERSION(1, 22, 1));
	assert_true(v >= NGINX_V_CERT_VARIABLES);
	assert_true(v < NGINX_V_CERT_CACHE);
	assert_int_equal(
	    nginx_version_parse("nginx version: openresty/1.27.4.1", 33, &v),
	    0);
	assert_true(v >= NGINX_V_CERT_CACHE);
	assert_int_equal(
	    nginx_version_parse("nginx version: nginx/1.29.0", 27, &v), 0);
	assert_int_equal(v, NGINX_VERSION(1, 29, 0));
	assert_int_equal(nginx_version_parse("sh: nginx: not found", 20, &v),
			 -EINVAL);
	assert_int_equal(
	    nginx_version_parse("nginx version: nginx/1.x", 24, &v), -EINVAL);
	assert_int_equal(
	    nginx_version_parse("nginx version: nginx/1.22", 25, &v), -EINVAL);
	/* the length bounds the search: no read past it */
	assert_int_equal(nginx_version_parse(debian, 20, &v), -EINVAL);
}

static void test_certbot_conf(void **state)
{
	static const char conf[] =
	    "# renew_before_expiry = 30 days\n"
	    "version = 2.1.0\r\n"
	    "archive_dir = /etc/letsencrypt/archive/example.com\n"
	    "cert = /etc/letsencrypt/live/example.com/cert.pem\n"
	    "privkey   =  /etc/letsencrypt/live/example.com/privkey.pem  \n"
	    "fullchain = /etc/letsencrypt/live/example.com/fullchain.pem\n"
	    "\n"
	    "[renewalparams]\n"
	    "server = https://acme-v02.api.letsencrypt.org/directory\n"
	    "fullchain = /not/this/one\n"
	    "[[webroot_map]]\n"
	    "example.com = /var/www/html\n";
	struct nginx_certbot_conf c;
	char err[256];

	(void)state;
	assert_int_equal(
	    nginx_certbot_conf_parse(conf, strlen(conf), &c, err, sizeof(err)),
	    0);
	assert_string_equal(c.fullchain,
			    "/etc/letsencrypt/live/example.com/fullchain.pem");
	assert_string_equal(c.privkey,
			    "/etc/letsencrypt/live/example.com/privkey.pem");
	assert_string_equal(c.server,
			    "https://acme-v02.api.letsencrypt.org/directory");
	assert_int_equal(nginx_certbot_conf_parse("version = 1\njunk\n", 17, &c,
						  err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "line 2"));
	assert_int_equal(nginx_certbot_conf_parse("", 0, &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.fullchain, "");
}

static void test_addresses_and_snippet(void **state)
{
	struct config_addr a = {0};
	char buf[200], *s;

	(void)state;
	assert_int_equal(config_parse_addr(":443", 0, &a), 0);
	assert_int_equal(nginx_listen_str(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "443");
	assert_int_equal(config_parse_addr("[::1]:8443", 0, &a), 0);
	assert_int_equal(nginx_listen_str(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[::1]:8443");
	assert_int_equal(nginx_upstream_str(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "http://[::1]:8443");
	assert_int_equal(
	    config_parse_addr("unix:/run/app.sock", CONFIG_AF_UNIX_OK, &a), 0);
	assert_int_equal(nginx_upstream_str(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "http://unix:/run/app.sock:");
	assert_int_equal(nginx_listen_str(&a, buf, sizeof(buf)), -EINVAL);
	s = nginx_snippet("127.0.0.1:8402");
	assert_non_null(s);
	assert_non_null(strstr(s, "location ^~ /.well-known/acme-challenge/ {\n"
				  "    proxy_pass http://127.0.0.1:8402;\n"));
	assert_non_null(strstr(s, "listen 80 default_server;"));
	assert_non_null(strstr(s, "return 308 https://$host$request_uri;"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocks_render),
	    cmocka_unit_test(test_blocks_wildcard_and_exact),
	    cmocka_unit_test(test_sni_wildcard_map),
	    cmocka_unit_test(test_wildcard_covers),
	    cmocka_unit_test(test_wildcard_files),
	    cmocka_unit_test(test_render_deterministic),
	    cmocka_unit_test(test_sni_render),
	    cmocka_unit_test(test_template_checks),
	    cmocka_unit_test(test_render_refuses),
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_certbot_conf),
	    cmocka_unit_test(test_addresses_and_snippet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
