/*
 * cli_reload.c — `certherd serve`'s configuration, read at start and again
 * at every SIGHUP: the same -c FILE, then every --set, the same checks and
 * secret files. A reload that cannot be read, does not validate or that a
 * part refuses (every part checks before any applies) changes nothing (the
 * error is logged and the daemon runs on as it was). One that passes
 * applies every key the daemon can change live (live_keys below, via
 * engine_daemon_reconfigure and the log level) and warns once per other
 * changed key, which keeps its running value until a restart.
 *
 * What changed is found by comparing config_dump's output key by key, so a
 * key added to the schema is covered without touching this file: it needs
 * a restart until someone lists it in live_keys and copies it in
 * engine_daemon_reconfigure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "util/config.h"
#include "util/util.h"

/* Keys the running daemon applies at a reload. A feature that holds a
 * live setting in struct engine_daemon_opts adds its keys here. */
static const char *const live_keys[] = {
    "log.level",
    "acme.concurrency",
    "http.redirect",
    "limits.orders",
    "limits.certs_per_domain",
    "limits.identical",
    "limits.failed_authz",
    "renew.backoff_max",
    "daemon.drain_timeout",
    /* front mode (cli_front.c); listen, upstream, workers and cache_size
     * need a restart */
    "front.proxy_protocol",
    "front.handshake_timeout",
    "front.idle_timeout",
    "front.max_connections",
    "front.default_certificate",
    "front.default_key",
    "on_demand.enabled",
    "on_demand.ask",
    "on_demand.budget_per_hour",
    "on_demand.budget_per_domain",
    "on_demand.wait",
    NULL,
};

/* Longest value quoted in a log line; longer ones end in "...". */
#define SHOW_MAX 120
/* Longest summary line of what a reload changed. */
#define SUMMARY_MAX 2048

static int is_live(const char *key)
{
	for (size_t i = 0; live_keys[i]; i++)
		if (strcmp(live_keys[i], key) == 0)
			return 1;
	return 0;
}

int cli__serve_config(const struct cli_global *g, struct config *cfg, char *err,
		      size_t errsz)
{
	int rc = cli__plain_config(g, cfg, err, errsz);

	if (rc < 0)
		return rc;
	if ((rc = config_load_secrets(cfg, err, errsz)) < 0)
		config_free(cfg);
	return rc;
}

void cli__serve_log_level(const struct cli_global *g, const struct config *cfg)
{
	enum log_level lvl;

	/* --log-level on the command line wins over the file, always */
	if (!g->log_level_set &&
	    log_level_parse(config_log_level_names[cfg->log.level], &lvl) == 0)
		log_set_level(lvl);
}

static void free_values(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; i < config_key_count(); i++)
		free(v[i]);
	free(v);
}

/*
 * Every key's value as config_dump prints it (secrets redacted), in
 * schema order: config_key_count() owned strings, NULL on failure. The
 * dump is "[section]" lines, blank lines and one "name = value" line per
 * key in schema order, which is checked, not assumed.
 */
static char **dump_values(const struct config *cfg)
{
	size_t nk = config_key_count(), i = 0, len = 0;
	char **v = calloc(nk, sizeof(*v));
	char *text = NULL, *line, *save = NULL;
	FILE *f;

	if (!v)
		return NULL;
	f = open_memstream(&text, &len);
	if (!f || config_dump(cfg, f) < 0) {
		if (f)
			fclose(f);
		goto fail;
	}
	if (fclose(f) != 0)
		goto fail;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct config_key_info k;
		size_t n;

		/* [dns "ZONE"] sections come last and are not schema keys
		 * (a change to them needs a restart, docs/dns01.md) */
		if (strncmp(line, "[dns \"", 6) == 0)
			break;
		if (line[0] == '[')
			continue;
		if (i >= nk || config_key_at(i, &k) < 0)
			goto fail;
		n = strlen(k.name);
		if (strncmp(line, k.name, n) != 0 || strncmp(line + n, " =", 2))
			goto fail;
		line += n + 2;
		v[i] = strdup(line[0] == ' ' ? line + 1 : line);
		if (!v[i++])
			goto fail;
	}
	if (i != nk)
		goto fail;
	free(text);
	return v;
fail:
	free(text);
	free_values(v);
	return NULL;
}

int cli__reload_init(struct cli_reload *r, const struct cli_global *g,
		     const struct config *start)
{
	memset(r, 0, sizeof(*r));
	r->g = g;
	r->start = start;
	r->start_vals = dump_values(start);
	r->live_vals = dump_values(start);
	if (!r->start_vals || !r->live_vals) {
		cli__reload_free(r);
		return -ENOMEM;
	}
	return 0;
}

void cli__reload_free(struct cli_reload *r)
{
	if (!r)
		return;
	free_values(r->start_vals);
	free_values(r->live_vals);
	r->start_vals = r->live_vals = NULL;
}

/* s, or its first SHOW_MAX bytes and "...", or "(empty)", into buf. */
static const char *show(const char *s, char *buf, size_t sz)
{
	if (!*s)
		return "(empty)";
	snprintf(buf, sz, "%.*s%s", SHOW_MAX, s,
		 strlen(s) > SHOW_MAX ? "..." : "");
	return buf;
}

/* Two secrets equal? Both are NUL-terminated, possibly NULL (unset). The
 * comparison's timing does not matter: both come from our own files. */
static int same_secret(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

int cli__reload(struct cli_reload *r, struct engine_daemon *d)
{
	struct config next;
	struct engine_daemon_opts o = {0};
	struct cli_front_next fn = {0};
	struct engine_limit_def limits[ENGINE_LIMIT__MAX];
	char err[1024] = "", summary[SUMMARY_MAX] = "";
	char a[SHOW_MAX + 8], b[SHOW_MAX + 8];
	char **vals = NULL;
	size_t nk = config_key_count(), sl = 0;
	unsigned restart = 0, changed = 0;
	const char *src = r->g->config ? r->g->config : "--set options";
	int rc;

	log_info("serve", NULL, "SIGHUP: reloading the configuration (%s)",
		 src);
	rc = cli__serve_config(r->g, &next, err, sizeof(err));
	if (rc < 0) {
		log_error("serve", NULL,
			  "reload failed: %s; still running with the previous "
			  "configuration",
			  err);
		return 0;
	}
	vals = dump_values(&next);
	if (!vals) {
		log_error("serve", NULL,
			  "reload failed: out of memory; still running with "
			  "the previous configuration");
		rc = -ENOMEM;
		goto out;
	}
	/* Every part checks first, then every part applies: a part that
	 * refuses leaves the others as they run. The front's default
	 * certificate is read during its check. */
	if (r->front &&
	    cli__front_check(r->front, &next, &fn, err, sizeof(err)) < 0)
		goto refused;
	cli__serve_live_opts(&next, r->start, &o, limits);
	if (engine_daemon_check_live(&o, err, sizeof(err)) < 0)
		goto refused;
	/* The front before the engine: starting on-demand can still fail,
	 * and then the engine has not changed either. The engine cannot
	 * refuse what its check accepted. */
	if (r->front &&
	    cli__front_apply(r->front, &next, &fn, err, sizeof(err)) < 0)
		goto refused;
	if (engine_daemon_reconfigure(d, &o, err, sizeof(err)) < 0)
		goto refused;
	cli__serve_log_level(r->g, &next);

	for (size_t i = 0; i < nk; i++) {
		struct config_key_info k;
		char key[160];

		if (config_key_at(i, &k) < 0)
			continue;
		snprintf(key, sizeof(key), "%s.%s", k.section, k.name);
		if (!is_live(key)) {
			/* compared with what the daemon started with, which
			 * is what it still runs with */
			if (strcmp(vals[i], r->start_vals[i]) == 0)
				continue;
			log_warn("serve", NULL,
				 "%s changed (%s -> %s); restart to apply", key,
				 show(r->start_vals[i], a, sizeof(a)),
				 show(vals[i], b, sizeof(b)));
			restart++;
			continue;
		}
		if (strcmp(vals[i], r->live_vals[i]) == 0)
			continue;
		changed++;
		if (strcmp(key, "log.level") == 0 && r->g->log_level_set)
			log_info("serve", NULL,
				 "log.level changed, but --log-level %s on the "
				 "command line wins",
				 r->g->log_level);
		if (sl < sizeof(summary)) {
			int n = snprintf(summary + sl, sizeof(summary) - sl,
					 "%s%s %s -> %s", sl ? ", " : "", key,
					 show(r->live_vals[i], a, sizeof(a)),
					 show(vals[i], b, sizeof(b)));
			if (n > 0)
				sl += (size_t)n;
		}
	}
	/* Secrets are not in the dump; their files' contents may change
	 * under the same path. Never shown. */
	if (strcmp(next.api.token_file, r->start->api.token_file) == 0 &&
	    !same_secret(next.api.token, r->start->api.token)) {
		log_warn("serve", NULL,
			 "the contents of api.token_file "
			 "changed; restart to apply");
		restart++;
	}
	if (strcmp(next.acme.eab_hmac_key_file,
		   r->start->acme.eab_hmac_key_file) == 0 &&
	    !same_secret(next.acme.eab_hmac_key, r->start->acme.eab_hmac_key)) {
		log_warn("serve", NULL,
			 "the contents of acme.eab_hmac_key_file "
			 "changed; restart to apply");
		restart++;
	}
	log_info("serve", NULL,
		 "configuration reloaded: %s%s; %u changed key%s need%s a "
		 "restart",
		 changed ? "applied " : "nothing to apply live",
		 changed ? summary : "", restart, restart == 1 ? "" : "s",
		 restart == 1 ? "s" : "");
	free_values(r->live_vals);
	r->live_vals = vals;
	vals = NULL;
	rc = 1;
	goto out;
refused:
	log_error("serve", NULL,
		  "reload failed: %s; still running with the previous "
		  "configuration",
		  err);
	rc = 0;
out:
	cli__front_next_free(&fn);
	free_values(vals);
	config_free(&next);
	return rc;
}
