/*
 * cli_serve.c — `certherd serve`: the daemon. Reads the configuration
 * (-c FILE, then every --set section.key=value), opens the engine (store,
 * account, HTTP-01 responder), starts the control API and runs until
 * SIGTERM or SIGINT. Exit status 0 on a clean stop, 1 when it could not
 * start (the reason on stderr), 2 for usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli_internal.h"
#include "util/config.h"
#include "util/util.h"

/* "ADDR:PORT" / "[V6]:PORT" / ":PORT" for a configured address, or NULL
 * when it is off. */
static const char *addr_str(const struct config_addr *a, char *buf, size_t sz)
{
	switch (a->kind) {
	case CONFIG_ADDR_ANY:
		snprintf(buf, sz, ":%u", a->port);
		return buf;
	case CONFIG_ADDR_IP:
		snprintf(buf, sz, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u",
			 a->host, a->port);
		return buf;
	default:
		return NULL;
	}
}

static void wake(void *ctx)
{
	engine_daemon_wake(ctx);
}

int cli_serve(const struct cli_global *g, int argc, char **argv)
{
	struct config cfg;
	struct engine_daemon_opts o = {0};
	struct engine_daemon *d = NULL;
	struct api_server *api = NULL;
	struct api_opts ao = {0};
	struct api_hooks ah = {0};
	unsigned char *hmac = NULL;
	char err[1024] = "", http[80], tcp[80];
	enum log_level lvl;
	int status = 1;

	if (argc > 1) {
		int help = strcmp(argv[1], "--help") == 0 ||
			   strcmp(argv[1], "-h") == 0;
		fprintf(help ? stdout : stderr,
			"usage: certherd [-c FILE] [--set section.key=value]... "
			"serve\n\nRun the daemon: keep a valid certificate on "
			"every registered domain.\nConfiguration keys: "
			"docs/config.md.\n");
		return help ? 0 : 2;
	}
	if (config_defaults(&cfg) < 0)
		return 1;
	if (g->config && config_load_file(&cfg, g->config, err, sizeof(err)) < 0)
		goto bad;
	for (size_t i = 0; i < g->n_sets; i++)
		if (config_set(&cfg, g->sets[i], err, sizeof(err)) < 0)
			goto bad;
	if (config_validate(&cfg, err, sizeof(err)) < 0 ||
	    config_load_secrets(&cfg, err, sizeof(err)) < 0)
		goto bad;
	if (log_level_parse(config_log_level_names[cfg.log.level], &lvl) == 0 &&
	    !g->log_level_set)
		log_set_level(lvl);

	o.acct.directory_url = cfg.acme.directory;
	o.acct.ca_bundle = cfg.acme.ca_bundle[0] ? cfg.acme.ca_bundle : NULL;
	o.acct.email = cfg.acme.email[0] ? cfg.acme.email : NULL;
	if (cfg.acme.eab_kid[0]) {
		o.acct.eab_kid = cfg.acme.eab_kid;
		hmac = b64url_decode(cfg.acme.eab_hmac_key,
				     strlen(cfg.acme.eab_hmac_key),
				     &o.acct.eab_hmac_len);
		if (!hmac) {
			snprintf(err, sizeof(err),
				 "acme.eab_hmac_key_file does not hold base64url");
			goto bad;
		}
		o.acct.eab_hmac = hmac;
	}
	o.acct.ca_connections = (unsigned)cfg.acme.ca_connections;
	o.acct.out_dir = cfg.store.state_dir;
	o.state_dir = cfg.store.state_dir;
	o.live_dir = cfg.store.write_live ? cfg.store.live_dir : NULL;
	if (key_type_parse(config_key_type_names[cfg.acme.key_type],
			   &o.key_type) < 0)
		o.key_type = KEY_ECDSA_P256;
	o.profile = cfg.acme.profile[0] ? cfg.acme.profile : NULL;
	o.http_listen = addr_str(&cfg.http.listen, http, sizeof(http));
	o.http_redirect = cfg.http.redirect == CONFIG_REDIRECT_REDIRECT;
	o.concurrency = (unsigned)cfg.acme.concurrency;
	if (!o.http_listen) {
		snprintf(err, sizeof(err), "http.listen is required (HTTP-01)");
		goto bad;
	}
	if (engine_daemon_open(&o, &d, err, sizeof(err)) < 0)
		goto fail;

	ao.state_dir = cfg.store.state_dir;
	ao.socket_path = cfg.api.socket[0] ? cfg.api.socket : NULL;
	ao.tcp_listen = addr_str(&cfg.api.listen, tcp, sizeof(tcp));
	ao.token = cfg.api.token;
	ah.wake = wake;
	ah.ctx = d;
	if (api_start(&ao, &ah, &api, err, sizeof(err)) < 0)
		goto fail;
	log_info("serve", NULL, "certherd %s serving; API on %s%s%s",
		 CERTHERD_VERSION, ao.socket_path ? ao.socket_path : "",
		 ao.tcp_listen ? " and " : "", ao.tcp_listen ? ao.tcp_listen : "");
	status = engine_daemon_run(d) == 0 ? 0 : 1;
	goto out;
bad:
	fprintf(stderr, "certherd serve: %s\n", err);
	status = 2;
	goto out;
fail:
	fprintf(stderr, "certherd serve: %s\n", err);
	status = 1;
out:
	api_stop(api);
	engine_daemon_close(d);
	if (hmac)
		OPENSSL_cleanse(hmac, o.acct.eab_hmac_len);
	free(hmac);
	config_free(&cfg);
	return status;
}
