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
#include <strings.h>
#include <time.h>

#include <jansson.h>

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

struct serve_ctx {
	struct engine_daemon *d;
	int64_t orders_period_ms;
};

static void wake(void *ctx)
{
	struct serve_ctx *sc = ctx;

	engine_daemon_wake(sc->d);
}

/* "2025-01-02T03:04:05Z", as the API writes times. */
static json_t *json_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

/* The new-orders bucket as of now: the snapshot refilled since it was
 * taken (the loop publishes one per pass, at least every second). */
static double orders_now(const struct engine_daemon_stats *st, int64_t now,
			 int64_t period_ms)
{
	double tok = st->orders_tokens;

	if (st->orders_capacity > 0 && period_ms > 0 && now > st->at_ms)
		tok += (double)(now - st->at_ms) * st->orders_capacity /
		       (double)period_ms;
	return tok > st->orders_capacity ? st->orders_capacity : tok;
}

/* GET /v1/status: in_flight, held and the account's rate-limit headroom.
 * Runs on an API thread: reads only the daemon's published snapshot. */
static int status_extra(void *ctx, json_t *obj)
{
	struct serve_ctx *sc = ctx;
	struct engine_daemon_stats st;
	json_t *rl, *b;
	int64_t now = clock_wall_ms();

	engine_daemon_stats(sc->d, &st);
	rl = json_array();
	if (!rl || json_object_set_new(obj, "rate_limits", rl) ||
	    json_object_set_new(obj, "in_flight", json_integer(st.in_flight)) ||
	    json_object_set_new(obj, "held_by_rate_limits",
				json_integer(st.held)))
		return -ENOMEM;
	if (st.orders_capacity <= 0)
		return 0; /* limits.orders = 0: no bucket to show */
	/* member by member: json_pack with "f" followed by more members
	 * gave objects that crash json_dumps (jansson 2.14, Debian 12) */
	b = json_object();
	if (!b || json_array_append_new(rl, b) ||
	    json_object_set_new(b, "limit", json_string("orders")) ||
	    json_object_set_new(b, "key", json_string("")) ||
	    json_object_set_new(
		b, "tokens",
		json_real(orders_now(&st, now, sc->orders_period_ms))) ||
	    json_object_set_new(b, "capacity", json_real(st.orders_capacity)) ||
	    json_object_set_new(b, "full_at",
				json_time(st.orders_full_at_ms > now
						  ? st.orders_full_at_ms
						  : now)))
		return -ENOMEM;
	return 0;
}

/* The scheduler's pass cost: last and longest pass as gauges, the sums
 * as counters (rate(sum) / rate(count) is the mean over any window). */
static void metrics_passes(FILE *out, const struct engine_pass_stats *p)
{
	fprintf(out,
		"# HELP certherd_scheduler_pass_seconds Duration of a "
		"scheduler pass: wall time and CPU time of the loop thread, "
		"of the last pass and of the longest since start.\n"
		"# TYPE certherd_scheduler_pass_seconds gauge\n"
		"certherd_scheduler_pass_seconds{stat=\"last_wall\"} %.6f\n"
		"certherd_scheduler_pass_seconds{stat=\"max_wall\"} %.6f\n"
		"certherd_scheduler_pass_seconds{stat=\"last_cpu\"} %.6f\n"
		"certherd_scheduler_pass_seconds{stat=\"max_cpu\"} %.6f\n"
		"# HELP certherd_scheduler_passes_total Scheduler passes "
		"since start.\n"
		"# TYPE certherd_scheduler_passes_total counter\n"
		"certherd_scheduler_passes_total %llu\n"
		"# HELP certherd_scheduler_pass_wall_seconds_total Wall time "
		"of all scheduler passes since start.\n"
		"# TYPE certherd_scheduler_pass_wall_seconds_total counter\n"
		"certherd_scheduler_pass_wall_seconds_total %.6f\n"
		"# HELP certherd_scheduler_pass_cpu_seconds_total CPU time of "
		"the loop thread in all scheduler passes since start.\n"
		"# TYPE certherd_scheduler_pass_cpu_seconds_total counter\n"
		"certherd_scheduler_pass_cpu_seconds_total %.6f\n",
		p->last_wall_s, p->max_wall_s, p->last_cpu_s, p->max_cpu_s,
		(unsigned long long)p->passes, p->sum_wall_s, p->sum_cpu_s);
}

static int metrics_extra(void *ctx, FILE *out)
{
	struct serve_ctx *sc = ctx;
	struct engine_daemon_stats st;

	engine_daemon_stats(sc->d, &st);
	fprintf(out,
		"# HELP certherd_orders_in_flight Orders being worked on.\n"
		"# TYPE certherd_orders_in_flight gauge\n"
		"certherd_orders_in_flight %u\n"
		"# HELP certherd_ratelimit_held Due domains the local rate-limit "
		"ledger held back at the last pass.\n"
		"# TYPE certherd_ratelimit_held gauge\n"
		"certherd_ratelimit_held %u\n",
		st.in_flight, st.held);
	metrics_passes(out, &st.pass);
	if (st.orders_capacity > 0)
		fprintf(out,
			"# HELP certherd_ratelimit_tokens Tokens left in a "
			"rate-limit bucket of the account.\n"
			"# TYPE certherd_ratelimit_tokens gauge\n"
			"certherd_ratelimit_tokens{limit=\"orders\"} %.3f\n"
			"# HELP certherd_ratelimit_capacity Capacity of a "
			"rate-limit bucket of the account.\n"
			"# TYPE certherd_ratelimit_capacity gauge\n"
			"certherd_ratelimit_capacity{limit=\"orders\"} %.0f\n",
			orders_now(&st, clock_wall_ms(), sc->orders_period_ms),
			st.orders_capacity);
	return ferror(out) ? -EIO : 0;
}

/* Does the directory URL belong to Let's Encrypt (production, staging)? */
static int is_letsencrypt(const char *url)
{
	const char *h = strstr(url, "://"), *end;
	size_t n, m = strlen("letsencrypt.org");

	if (!h)
		return 0;
	h += 3;
	end = h + strcspn(h, ":/?#");
	n = (size_t)(end - h);
	return n >= m && strncasecmp(end - m, "letsencrypt.org", m) == 0 &&
	       (n == m || end[-(long)m - 1] == '.');
}

/* [limits] keys -> the ledger's table. An empty key is the CA's limit:
 * Let's Encrypt's published one with Let's Encrypt, none with a CA whose
 * limits we cannot know (its rateLimited answers still back off).
 * Renewal exemptions stay Let's Encrypt's (CA policy, not a number an
 * operator tunes). */
static void limits_from(const struct config *cfg,
			struct engine_limit_def defs[ENGINE_LIMIT__MAX])
{
	const struct config_rate *r[ENGINE_LIMIT__MAX] = {
		[ENGINE_LIMIT_ORDERS] = &cfg->limits.orders,
		[ENGINE_LIMIT_REGDOMAIN] = &cfg->limits.certs_per_domain,
		[ENGINE_LIMIT_IDENTICAL] = &cfg->limits.identical,
		[ENGINE_LIMIT_FAILED_AUTHZ] = &cfg->limits.failed_authz,
	};
	int le = is_letsencrypt(cfg->acme.directory);

	for (int k = 0; k < ENGINE_LIMIT__MAX; k++) {
		defs[k] = engine_limits_letsencrypt[k];
		if (r[k]->count < 0) {
			if (!le)
				defs[k].capacity = 0; /* off */
			continue;
		}
		defs[k].capacity = (double)r[k]->count;
		/* off (0): any period, the ledger ignores it */
		if (r[k]->count)
			defs[k].period_ms = r[k]->period * 1000;
	}
}

int cli_serve(const struct cli_global *g, int argc, char **argv)
{
	struct config cfg;
	struct engine_daemon_opts o = {0};
	struct engine_daemon *d = NULL;
	struct api_server *api = NULL;
	struct api_opts ao = {0};
	struct api_hooks ah = {0};
	struct serve_ctx sc = {0};
	struct engine_limit_def limits[ENGINE_LIMIT__MAX];
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
	limits_from(&cfg, limits);
	o.limits = limits;
	sc.orders_period_ms = limits[ENGINE_LIMIT_ORDERS].period_ms;
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
	sc.d = d;
	ah.wake = wake;
	ah.status_extra = status_extra;
	ah.metrics_extra = metrics_extra;
	ah.ctx = &sc;
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
