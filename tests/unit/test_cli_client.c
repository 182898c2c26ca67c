/*
 * Tests of the daemon's command-line client: global options in any
 * position, request paths with escaping, the text and JSON-lines renderers
 * (pure), then end to end: the real control API (api_start) on a unix
 * socket and on TCP in a temp directory, driven by the client's own
 * operations over real HTTP.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/cli_client.h"

/* ---- global options --------------------------------------------------- */

static int parse(struct cli_global *g, char **argv, int *argc)
{
	int n = 0;

	while (argv[n])
		n++;
	*argc = n;
	return cli_global_parse(g, argc, argv);
}

static void test_global_before_and_after(void **state)
{
	struct cli_global g;
	int argc;
	char *a1[] = {"certherd",  "-c",     "/etc/c.conf", "domains", "add",
		      "a.example", "--json", "b.example",   NULL};
	char *a2[] = {"certherd",
		      "domains",
		      "--socket=/s.sock",
		      "ls",
		      "--set",
		      "api.socket=/x",
		      "--set=store.state_dir=/d",
		      "--status",
		      "valid",
		      NULL};
	char *a3[] = {"certherd",    "-c/etc/x.conf", "status", "--config",
		      "/etc/y.conf", "--log-level",   "warn",	NULL};

	assert_int_equal(parse(&g, a1, &argc), 0);
	assert_string_equal(g.config, "/etc/c.conf");
	assert_true(g.json);
	assert_int_equal(argc, 5);
	assert_string_equal(a1[1], "domains");
	assert_string_equal(a1[2], "add");
	assert_string_equal(a1[3], "a.example");
	assert_string_equal(a1[4], "b.example");
	assert_null(a1[5]);

	assert_int_equal(parse(&g, a2, &argc), 0);
	assert_string_equal(g.socket, "/s.sock");
	assert_int_equal(g.n_sets, 2);
	assert_string_equal(g.sets[0], "api.socket=/x");
	assert_string_equal(g.sets[1], "store.state_dir=/d");
	assert_false(g.json);
	assert_int_equal(argc, 5);
	assert_string_equal(a2[2], "ls");
	assert_string_equal(a2[3], "--status");
	assert_string_equal(a2[4], "valid");

	/* the last one wins, as with any option */
	assert_int_equal(parse(&g, a3, &argc), 0);
	assert_string_equal(g.config, "/etc/y.conf");
	assert_true(g.log_level_set);
	assert_int_equal(argc, 2);
}

static void test_global_stops_at_dashdash(void **state)
{
	struct cli_global g;
	int argc;
	char *a[] = {"certherd", "domains",  "rm", "--json",
		     "--",	 "--socket", "-c", NULL};

	assert_int_equal(parse(&g, a, &argc), 0);
	assert_true(g.json);
	assert_null(g.socket);
	assert_null(g.config);
	assert_int_equal(argc, 6);
	assert_string_equal(a[3], "--");
	assert_string_equal(a[4], "--socket");
	assert_string_equal(a[5], "-c");
}

static void test_global_errors(void **state)
{
	struct cli_global g;
	int argc;
	char *missing[] = {"certherd", "status", "--socket", NULL};
	char *badset[] = {"certherd", "--set", "socket=/x", "status", NULL};
	char *nokey[] = {"certherd", "--set", "api.=x", "status", NULL};
	char *badlvl[] = {"certherd", "--log-level", "loud", "status", NULL};
	/* a look-alike is the command's, not ours */
	char *alike[] = {"certherd", "domains", "--jsonx", "--configs", NULL};

	assert_int_equal(parse(&g, missing, &argc), -EINVAL);
	assert_int_equal(parse(&g, badset, &argc), -EINVAL);
	assert_int_equal(parse(&g, nokey, &argc), -EINVAL);
	assert_int_equal(parse(&g, badlvl, &argc), -EINVAL);
	assert_int_equal(parse(&g, alike, &argc), 0);
	assert_int_equal(argc, 4);
	assert_false(g.json);
	assert_null(g.config);
}

static void test_global_too_many_sets(void **state)
{
	char *argv[2 + 2 * (CLI_MAX_SETS + 1) + 1];
	struct cli_global g;
	int argc = 0;

	argv[argc++] = "certherd";
	for (int i = 0; i <= CLI_MAX_SETS; i++) {
		argv[argc++] = "--set";
		argv[argc++] = "api.socket=/x";
	}
	argv[argc++] = "status";
	argv[argc] = NULL;
	assert_int_equal(cli_global_parse(&g, &argc, argv), -EINVAL);
}

/* ---- URLs --------------------------------------------------------------- */

static void test_urls(void **state)
{
	char *s;

	s = cli_url_domain("www.example.com", "");
	assert_string_equal(s, "/v1/domains/www.example.com");
	free(s);
	s = cli_url_domain("*.b\xc3\xbc"
			   "cher.de/../x?y#z",
			   "/renew");
	assert_string_equal(s, "/v1/domains/%2A.b%C3%BCcher.de%2F..%2Fx%3Fy%23z"
			       "/renew");
	free(s);
	s = cli_url_domains(NULL, NULL, 0, NULL);
	assert_string_equal(s, "/v1/domains");
	free(s);
	s = cli_url_domains("valid,dns-pending", "a&b=c d", 1000, "k+/=");
	assert_string_equal(
	    s, "/v1/domains?status=valid,dns-pending"
	       "&prefix=a%26b%3Dc%20d&limit=1000&cursor=k%2B%2F%3D");
	free(s);
	s = cli_url_domains(NULL, "", 0, "c1");
	assert_string_equal(s, "/v1/domains?cursor=c1");
	free(s);
	s = cli_url_domains("fa%led", NULL, 5, NULL);
	assert_string_equal(s, "/v1/domains?status=fa%25led&limit=5");
	free(s);
	s = cli_url_escape("AZaz09-._~ \x01\xff");
	assert_string_equal(s, "AZaz09-._~%20%01%FF");
	free(s);
}

/* ---- renderers ---------------------------------------------------------- */

static void test_text(void **state)
{
	char out[64];

	assert_string_equal(cli_fmt_text("plain", 0, out, sizeof(out)),
			    "plain");
	/* control characters, an escape sequence, a lone byte, a C1 CSI */
	assert_string_equal(cli_fmt_text("a\nb\x1b[31mc\xff"
					 "d\xc2\x9b"
					 "e",
					 0, out, sizeof(out)),
			    "a?b?[31mc?d?e");
	assert_string_equal(cli_fmt_text("abcdefghij", 8, out, sizeof(out)),
			    "abcde...");
	assert_string_equal(cli_fmt_text("abcdefgh", 8, out, sizeof(out)),
			    "abcdefgh");
	/* cut at a character, not inside one: 5 columns of 2-byte chars */
	assert_string_equal(
	    cli_fmt_text("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", 5,
			 out, sizeof(out)),
	    "\xc3\xa4\xc3\xa4...");
	/* the buffer bounds it too */
	assert_string_equal(cli_fmt_text("abcdefghijklmnop", 0, out, 10),
			    "abcdef...");
}

static void test_error_text(void **state)
{
	char out[256];
	json_t *e =
	    json_pack("{ss ss}", "type", "urn:ietf:params:acme:error:dns",
		      "detail", "NXDOMAIN looking up A");
	json_t *s = json_string("plain words");
	json_t *t = json_pack("{ss}", "type", "about:blank");

	assert_string_equal(cli_fmt_error(e, out, sizeof(out)),
			    "dns: NXDOMAIN looking up A");
	assert_string_equal(cli_fmt_error(s, out, sizeof(out)), "plain words");
	assert_string_equal(cli_fmt_error(t, out, sizeof(out)), "about:blank");
	assert_string_equal(cli_fmt_error(json_null(), out, sizeof(out)), "");
	assert_string_equal(cli_fmt_error(NULL, out, sizeof(out)), "");
	json_decref(e);
	json_decref(s);
	json_decref(t);
}

/* What f printed, as a malloc'd string. */
struct capture {
	char *buf;
	size_t len;
	FILE *f;
};

static FILE *cap_open(struct capture *c)
{
	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
	return c->f;
}

static char *cap_close(struct capture *c)
{
	fclose(c->f);
	return c->buf;
}

static json_t *rows_fixture(void)
{
	json_t *rows = json_loads(
	    "[{\"name\":\"a.example\",\"state\":\"valid\","
	    "\"not_after\":\"2026-03-01T00:00:00Z\",\"last_error\":null},"
	    "{\"name\":\"long-name.example.org\",\"state\":\"dns-pending\","
	    "\"not_after\":null,\"last_error\":{\"type\":"
	    "\"urn:ietf:params:acme:error:dns\",\"detail\":\"no A record "
	    "for long-name.example.org\\nat all\"}}]",
	    0, NULL);
	assert_non_null(rows);
	return rows;
}

static void test_table(void **state)
{
	json_t *rows = rows_fixture();
	struct capture c;
	char *s;

	assert_int_equal(cli_fmt_domains_table(cap_open(&c), rows, 0), 0);
	s = cap_close(&c);
	assert_string_equal(
	    s, "NAME                   STATE        NOT_AFTER             "
	       "LAST_ERROR\n"
	       "a.example              valid        2026-03-01T00:00:00Z  -\n"
	       "long-name.example.org  dns-pending  -                     "
	       "dns: no A record for long-name.example.org?at all\n");
	free(s);

	/* an 80-column terminal: the error is cut to fit */
	assert_int_equal(cli_fmt_domains_table(cap_open(&c), rows, 80), 0);
	s = cap_close(&c);
	{
		char *line = strrchr(s, '\n');
		*line = '\0';
		line = strrchr(s, '\n') + 1;
		assert_int_equal(strlen(line), 80);
		assert_string_equal(line + 77, "...");
	}
	free(s);
	json_decref(rows);
}

static void test_json_lines(void **state)
{
	json_t *rows = rows_fixture(), *d,
	       *bare = json_pack("{ss}", "name", "x.example");
	struct capture c;
	size_t i, n = 0;
	char *s, *line, *save = NULL;

	cap_open(&c);
	json_array_foreach(rows, i, d)
	    assert_int_equal(cli_fmt_domain_line(c.f, d), 0);
	assert_int_equal(cli_fmt_domain_line(c.f, bare), 0);
	s = cap_close(&c);
	for (line = strtok_r(s, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_t *o = json_loads(line, 0, NULL);
		assert_true(json_is_object(o));
		assert_non_null(json_object_get(o, "name"));
		assert_non_null(json_object_get(o, "state"));
		assert_non_null(json_object_get(o, "not_after"));
		assert_non_null(json_object_get(o, "last_error"));
		json_decref(o);
	}
	/* the newline in the detail stayed escaped: three objects, 3 lines */
	assert_int_equal(n, 3);
	free(s);
	json_decref(rows);
	json_decref(bare);
}

static void test_show_and_status(void **state)
{
	json_t *d = json_loads(
	    "{\"name\":\"a.example\",\"state\":\"valid\",\"added_at\":"
	    "\"2026-01-01T00:00:00Z\",\"next_attempt_at\":null,"
	    "\"failures\":0,\"last_error\":null,\"certificate\":{"
	    "\"serial\":\"0a1b\",\"not_after\":\"2026-03-01T00:00:00Z\","
	    "\"names\":[\"a.example\",\"www.a.example\"]},\"history\":[{"
	    "\"ts\":\"2026-01-01T00:00:01Z\",\"kind\":\"issued\","
	    "\"detail\":\"serial 0a1b\"}]}",
	    0, NULL);
	json_t *st = json_loads("{\"domains\":{\"pending\":2,\"valid\":5},"
				"\"total\":7,\"queue\":{\"depth\":3}}",
				0, NULL);
	struct capture c;
	char *s;

	assert_int_equal(cli_fmt_domain_show(cap_open(&c), d), 0);
	s = cap_close(&c);
	assert_non_null(strstr(s, "name:            a.example\n"));
	assert_non_null(strstr(s, "next_attempt_at: -\n"));
	assert_non_null(strstr(s, "last_error: -\n"));
	assert_non_null(strstr(s, "certificate:\n  serial:    0a1b\n"));
	assert_non_null(strstr(s, "  names:     a.example, www.a.example\n"));
	assert_non_null(strstr(s, "history:\n  2026-01-01T00:00:01Z  issued "
				  "    serial 0a1b\n"));
	free(s);

	assert_int_equal(cli_fmt_status(cap_open(&c), st), 0);
	s = cap_close(&c);
	assert_string_equal(s, "total:     7\n"
			       "  pending: 2\n"
			       "  valid:   5\n"
			       "queue:\n"
			       "  depth: 3\n");
	free(s);
	json_decref(d);
	json_decref(st);
}

/* ---- end to end: the real API on a temp dir ----------------------------- */

struct e2e {
	char dir[64];
	char sock[128];
	struct api_server *api;
	struct cli_client c;
};

static int e2e_setup(void **state)
{
	struct e2e *e = calloc(1, sizeof(*e));
	struct api_opts o = {0};
	struct api_hooks h = {0};
	char err[512];

	assert_non_null(e);
	strcpy(e->dir, "/tmp/certherd-cli-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->sock, sizeof(e->sock), "%s/api.sock", e->dir);
	o.state_dir = e->dir;
	o.socket_path = e->sock;
	o.tcp_listen = "127.0.0.1:0";
	o.token = "s3cret-token";
	if (api_start(&o, &h, &e->api, err, sizeof(err)) < 0)
		fail_msg("api_start: %s", err);
	assert_int_equal(cli_client_init(&e->c, e->sock, NULL, NULL), 0);
	*state = e;
	return 0;
}

static int e2e_teardown(void **state)
{
	struct e2e *e = *state;
	char cmd[160];

	cli_client_close(&e->c);
	api_stop(e->api);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", e->dir);
	free(e);
	return 0;
}

/* Run one operation with its output captured; returns the exit status. */
#define RUN(rc, out, call)                                                     \
	do {                                                                   \
		struct capture cap_;                                           \
		FILE *f_ = cap_open(&cap_);                                    \
		(rc) = (call);                                                 \
		(out) = cap_close(&cap_);                                      \
	} while (0)

static void test_e2e_add_ls_show_rm(void **state)
{
	struct e2e *e = *state;
	const char *names[] = {"a.example.com", "B.Example.com.",
			       "a.example.com"};
	const char *bad[] = {"ok.example.com", "-bad-.example.com"};
	char *out;
	int rc;

	RUN(rc, out, cli_do_add(&e->c, 0, f_, names, 3));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "added a.example.com\n"));
	assert_non_null(strstr(out, "added b.example.com\n"));
	free(out);

	RUN(rc, out, cli_do_add(&e->c, 1, f_, names, 2));
	assert_int_equal(rc, 0);
	{
		json_t *o = json_loads(out, 0, NULL);
		assert_int_equal(json_array_size(json_object_get(o, "added")),
				 0);
		assert_int_equal(
		    json_array_size(json_object_get(o, "existing")), 2);
		json_decref(o);
	}
	free(out);

	/* a bad name: 400, the reasons on stderr, exit 1 */
	RUN(rc, out, cli_do_add(&e->c, 0, f_, bad, 2));
	assert_int_equal(rc, 1);
	free(out);

	RUN(rc, out, cli_do_ls(&e->c, 0, f_, NULL, NULL, 0));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "a.example.com"));
	assert_non_null(strstr(out, "pending"));
	assert_null(strstr(out, "ok.example.com"));
	free(out);

	RUN(rc, out, cli_do_ls(&e->c, 1, f_, "pending", "b.", 0));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"name\":\"b.example.com\""));
	assert_null(strstr(out, "a.example.com"));
	free(out);

	RUN(rc, out, cli_do_show(&e->c, 0, f_, "a.example.com"));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "state:"));
	assert_non_null(strstr(out, "history:"));
	free(out);

	RUN(rc, out, cli_do_show(&e->c, 1, f_, "a.example.com"));
	assert_int_equal(rc, 0);
	{
		json_t *o = json_loads(out, 0, NULL);
		assert_string_equal(
		    json_string_value(json_object_get(o, "name")),
		    "a.example.com");
		json_decref(o);
	}
	free(out);

	RUN(rc, out, cli_do_renew(&e->c, 0, f_, "a.example.com"));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "renewal of a.example.com requested"));
	free(out);

	RUN(rc, out, cli_do_rm(&e->c, 0, f_, "a.example.com"));
	assert_int_equal(rc, 0);
	assert_string_equal(out, "removed a.example.com\n");
	free(out);

	RUN(rc, out, cli_do_show(&e->c, 0, f_, "nothere.example.com"));
	assert_int_equal(rc, 1);
	free(out);

	RUN(rc, out, cli_do_status(&e->c, 0, f_));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "total:"));
	assert_non_null(strstr(out, "  pending:"));
	free(out);
}

/* More domains than one page: ls follows next_cursor to the end, and
 * --json gives exactly one object per line per domain. */
static void test_e2e_ls_pages(void **state)
{
	struct e2e *e = *state;
	enum { N = 2345 };
	char **names = calloc(N, sizeof(*names)), *out, *line, *save = NULL;
	size_t lines = 0;
	int rc;

	assert_non_null(names);
	for (size_t i = 0; i < N; i++)
		assert_true(asprintf(&names[i], "d%04zu.example.net", i) > 0);
	RUN(rc, out, cli_do_add(&e->c, 1, f_, (const char *const *)names, N));
	assert_int_equal(rc, 0);
	free(out);

	RUN(rc, out, cli_do_ls(&e->c, 1, f_, NULL, "d", 0));
	assert_int_equal(rc, 0);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);
		char want[64];
		assert_true(json_is_object(o));
		snprintf(want, sizeof(want), "d%04zu.example.net", lines);
		/* pages come in name order, without gaps or repeats */
		assert_string_equal(
		    json_string_value(json_object_get(o, "name")), want);
		json_decref(o);
		lines++;
	}
	assert_int_equal(lines, N);
	free(out);
	for (size_t i = 0; i < N; i++)
		free(names[i]);
	free(names);
}

static void test_e2e_tcp_token(void **state)
{
	struct e2e *e = *state;
	struct cli_client good, bad;
	char url[64], *out;
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/",
		 api_tcp_port(e->api));
	assert_int_equal(cli_client_init(&good, NULL, url, "s3cret-token"), 0);
	assert_int_equal(cli_client_init(&bad, NULL, url, "wrong"), 0);
	RUN(rc, out, cli_do_status(&good, 1, f_));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"total\""));
	free(out);
	RUN(rc, out, cli_do_status(&bad, 1, f_));
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	free(out);
	cli_client_close(&good);
	cli_client_close(&bad);
}

static void test_e2e_unreachable(void **state)
{
	struct e2e *e = *state;
	struct cli_client c;
	struct cli_response r;
	char path[160], err[512];

	snprintf(path, sizeof(path), "%s/none.sock", e->dir);
	assert_int_equal(cli_client_init(&c, path, NULL, NULL), 0);
	assert_true(cli_client_request(&c, "GET", "/v1/status", NULL, &r, err,
				       sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot reach certherd at "));
	assert_non_null(strstr(err, "none.sock: No such file or directory "
				    "(is `certherd serve` running?)"));
	cli_client_close(&c);
}

/* Socket resolution: --socket, else api.socket from -c with --set, else
 * the derived default; checked against the running API. */
static void test_e2e_resolve(void **state)
{
	struct e2e *e = *state;
	struct cli_global g = {0};
	struct cli_client c;
	char conf[160], set[200], err[512], *out;
	FILE *f;
	int rc;

	snprintf(conf, sizeof(conf), "%s/certherd.conf", e->dir);
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "[store]\nstate_dir = %s\n", e->dir);
	fclose(f);

	g.config = conf; /* api.socket derived: state_dir/api.sock */
	assert_int_equal(cli_client_open(&c, &g, err, sizeof(err)), 0);
	assert_string_equal(c.socket, e->sock);
	RUN(rc, out, cli_do_status(&c, 1, f_));
	assert_int_equal(rc, 0);
	free(out);
	cli_client_close(&c);

	snprintf(set, sizeof(set), "api.socket=%s/other.sock", e->dir);
	g.sets[g.n_sets++] = set;
	assert_int_equal(cli_client_open(&c, &g, err, sizeof(err)), 0);
	assert_non_null(strstr(c.socket, "/other.sock"));
	cli_client_close(&c);

	g.socket = "/run/explicit.sock"; /* wins, config not even read */
	g.config = "/nonexistent/certherd.conf";
	assert_int_equal(cli_client_open(&c, &g, err, sizeof(err)), 0);
	assert_string_equal(c.socket, "/run/explicit.sock");
	cli_client_close(&c);

	memset(&g, 0, sizeof(g));
	g.config = "/nonexistent/certherd.conf";
	assert_true(cli_client_open(&c, &g, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/certherd.conf"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_before_and_after),
	    cmocka_unit_test(test_global_stops_at_dashdash),
	    cmocka_unit_test(test_global_errors),
	    cmocka_unit_test(test_global_too_many_sets),
	    cmocka_unit_test(test_urls),
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_error_text),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_json_lines),
	    cmocka_unit_test(test_show_and_status),
	    cmocka_unit_test_setup_teardown(test_e2e_add_ls_show_rm, e2e_setup,
					    e2e_teardown),
	    cmocka_unit_test_setup_teardown(test_e2e_ls_pages, e2e_setup,
					    e2e_teardown),
	    cmocka_unit_test_setup_teardown(test_e2e_tcp_token, e2e_setup,
					    e2e_teardown),
	    cmocka_unit_test_setup_teardown(test_e2e_unreachable, e2e_setup,
					    e2e_teardown),
	    cmocka_unit_test_setup_teardown(test_e2e_resolve, e2e_setup,
					    e2e_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
