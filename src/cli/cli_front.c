/*
 * cli_front.c — front mode's settings as `serve` applies them at start
 * and at SIGHUP: the keys a running front takes live (timeouts, the
 * connection limit, proxy_protocol, the on-demand wait), the default
 * certificate's files, and the on-demand keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli_internal.h"
#include "demand/demand.h"
#include "net/net.h"
#include "tls/tls.h"
#include "util/config.h"
#include "util/util.h"

void cli__front_live(const struct config *cfg, struct net_front_live *l)
{
	memset(l, 0, sizeof(*l));
	/* durations are seconds; the config bounds them far below 2^32 ms */
	l->handshake_timeout_ms = (unsigned)(cfg->front.handshake_timeout * 1000);
	l->idle_timeout_ms = (unsigned)(cfg->front.idle_timeout * 1000);
	l->max_conns = (unsigned)cfg->front.max_connections;
	l->ondemand_wait_ms = (unsigned)(cfg->on_demand.wait * 1000);
	l->proxy_protocol = cfg->front.proxy_protocol;
}

int cli__front_default(const struct config *cfg, struct tls_cert **out,
		       char *err, size_t errsz)
{
	*out = NULL;
	if (!*cfg->front.default_certificate)
		return 0;
	*out = tls_default_load(cfg->front.default_certificate,
				cfg->front.default_key, err, errsz);
	return *out ? 0 : -EINVAL;
}

void cli__demand_opts(const struct config *cfg, struct demand_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->state_dir = cfg->store.state_dir;
	o->ask = cfg->on_demand.ask;
	o->budget_per_hour = (long)cfg->on_demand.budget_per_hour;
	o->budget_per_domain = (long)cfg->on_demand.budget_per_domain;
	o->wait_ms = cfg->on_demand.wait * 1000;
	o->challenge = config_challenge_names[cfg->acme.challenge];
}

int cli__front_check(const struct cli_front_reload *fr,
		     const struct config *next, struct cli_front_next *fn,
		     char *err, size_t errsz)
{
	int rc;

	memset(fn, 0, sizeof(*fn));
	if (!fr->front)
		return 0; /* front mode off: its keys need a restart */
	/* the files are read at every reload: their contents may change
	 * under the same names (a renewed default certificate) */
	rc = cli__front_default(next, &fn->def, err, errsz);
	if (rc < 0)
		return rc;
	/* copied now so that applying cannot run out of memory halfway */
	fn->ask = strdup(next->on_demand.ask ? next->on_demand.ask : "");
	if (!fn->ask) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int cli__front_apply(struct cli_front_reload *fr, const struct config *next,
		     struct cli_front_next *fn, char *err, size_t errsz)
{
	struct net_front_live l;
	struct demand_opts dop;
	int rc;

	if (!fr->front)
		return 0;
	/* on-demand first: it is the step that can still fail, and then
	 * nothing else has changed */
	if (next->on_demand.enabled && !*fr->demand && fr->start_demand) {
		rc = fr->start_demand(fr->ctx, next, err, errsz);
		if (rc < 0)
			return rc;
	} else if (*fr->demand) {
		cli__demand_opts(next, &dop);
		dop.ask_changed = strcmp(fr->ask ? fr->ask : "", fn->ask) != 0;
		if (demand_reconfigure(*fr->demand, &dop,
				       next->on_demand.enabled) < 0) {
			snprintf(err, errsz, "out of memory");
			return -ENOMEM;
		}
	}
	cli__front_reload_free(fr);
	fr->ask = fn->ask;
	fn->ask = NULL;
	cli__front_live(next, &l);
	net_front_set_live(fr->front, &l);
	net_front_set_default(fr->front, fn->def); /* takes its own ref */
	return 0;
}

void cli__front_next_free(struct cli_front_next *fn)
{
	tls_cert_unref(fn->def);
	fn->def = NULL;
	if (fn->ask) {
		OPENSSL_cleanse(fn->ask, strlen(fn->ask)); /* may hold a token */
		free(fn->ask);
		fn->ask = NULL;
	}
}

int cli__front_keep_ask(struct cli_front_reload *fr, const char *ask)
{
	char *n = strdup(ask ? ask : "");

	if (!n)
		return -ENOMEM;
	cli__front_reload_free(fr);
	fr->ask = n;
	return 0;
}

void cli__front_reload_free(struct cli_front_reload *fr)
{
	if (fr->ask) {
		OPENSSL_cleanse(fr->ask, strlen(fr->ask)); /* may hold a token */
		free(fr->ask);
		fr->ask = NULL;
	}
}
