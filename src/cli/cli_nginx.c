/*
 * cli_nginx.c — nginx mode on the command line: `certherd nginx snippet`
 * (what to paste into nginx so it forwards HTTP-01 challenges to us), and
 * the [nginx] keys turned into the engine's options for `serve`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "nginx/nginx.h"
#include "util/config.h"
#include "util/util.h"

/* Where nginx reaches a listener of ours: a wildcard address becomes
 * loopback. 0 or -EINVAL. */
static int reach(const struct config_addr *a, char *out, size_t outsz)
{
	const char *h = a->host;

	if (a->kind == CONFIG_ADDR_ANY || strcmp(h, "0.0.0.0") == 0)
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	else if (a->kind != CONFIG_ADDR_IP)
		return -EINVAL;
	snprintf(out, outsz, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h, a->port);
	return 0;
}

int cli__serve_nginx(const struct config *cfg, struct cli_nginx_opts *n,
		     char *err, size_t errsz)
{
	struct engine_nginx_opts *o = &n->o;

	memset(n, 0, sizeof(*n));
	if (!cfg->nginx.enabled)
		return 0;
	if (!cfg->store.write_live) {
		snprintf(err, errsz,
			 "nginx.enabled needs store.write_live: "
			 "nginx reads the live/ files");
		return -EINVAL;
	}
	if (nginx_listen_str(&cfg->nginx.listen, n->listen, sizeof(n->listen)) <
	    0) {
		snprintf(err, errsz, "nginx.listen must be an address");
		return -EINVAL;
	}
	if (cfg->nginx.upstream.kind != CONFIG_ADDR_NONE &&
	    nginx_upstream_str(&cfg->nginx.upstream, n->upstream,
			       sizeof(n->upstream)) < 0) {
		snprintf(err, errsz,
			 "nginx.upstream: the socket path cannot be written "
			 "in an nginx file");
		return -EINVAL;
	}
	/* the handshake check goes where the generated blocks listen */
	if (cfg->nginx.listen.kind == CONFIG_ADDR_ANY)
		snprintf(n->verify_host, sizeof(n->verify_host), "127.0.0.1");
	else
		snprintf(n->verify_host, sizeof(n->verify_host), "%s",
			 strcmp(cfg->nginx.listen.host, "0.0.0.0") == 0
			     ? "127.0.0.1"
			 : strcmp(cfg->nginx.listen.host, "::") == 0
			     ? "::1"
			     : cfg->nginx.listen.host);
	if (cfg->nginx.key_owner[0]) {
		if (nginx_owner_parse(cfg->nginx.key_owner, &o->uid, &o->gid,
				      err, errsz) < 0)
			return -EINVAL;
		o->chown_keys = 1;
	}
	o->strategy = (int)cfg->nginx.strategy;
	o->include = cfg->nginx.include;
	o->template_file =
	    cfg->nginx.template_file[0] ? cfg->nginx.template_file : NULL;
	o->command = cfg->nginx.nginx;
	o->listen = n->listen;
	o->upstream = n->upstream[0] ? n->upstream : NULL;
	o->live_dir = cfg->store.live_dir;
	o->state_dir = cfg->store.state_dir;
	o->verify = cfg->nginx.verify;
	o->verify_host = cfg->nginx.verify ? n->verify_host : NULL;
	o->verify_port = cfg->nginx.listen.port;
	o->reload_interval_ms = cfg->nginx.reload_interval * 1000;
	n->on = 1;
	return 0;
}

static const char nginx_usage[] =
    "usage: certherd [-c FILE] [--set section.key=value]... nginx snippet\n"
    "\n"
    "Print the nginx configuration that forwards ACME HTTP-01 challenges\n"
    "(/.well-known/acme-challenge/) to certherd's http.listen: a location\n"
    "block for existing port-80 server blocks, and a catch-all port-80\n"
    "server. docs/nginx.md explains nginx mode.\n";

int cli_nginx(const struct cli_global *g, int argc, char **argv)
{
	struct config cfg;
	char err[1024], target[80], *text;
	int help;

	help = argc > 1 &&
	       (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
	if (help || argc != 2 || strcmp(argv[1], "snippet") != 0) {
		fputs(nginx_usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	if (cli__plain_config(g, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "certherd nginx: %s\n", err);
		return 2;
	}
	if (reach(&cfg.http.listen, target, sizeof(target)) < 0) {
		fprintf(stderr, "certherd nginx: http.listen is off\n");
		config_free(&cfg);
		return 2;
	}
	if (cfg.http.listen.port == 80)
		fprintf(stderr,
			"certherd nginx: warning: http.listen is on port 80, "
			"which nginx keeps in nginx mode; set http.listen to "
			"a loopback port such as 127.0.0.1:8402\n");
	config_free(&cfg);
	text = nginx_snippet(target);
	if (!text) {
		fprintf(stderr, "certherd nginx: out of memory\n");
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}
