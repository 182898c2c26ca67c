/*
 * cli_serve.c — `certherd serve`: the daemon. Reads the configuration
 * (-c FILE, then every --set section.key=value), opens the engine (store,
 * account, HTTP-01 responder), starts the control API and runs until
 * SIGTERM or SIGINT, which drain (docs/operations.md); SIGHUP reloads the
 * configuration (cli_reload.c). Tells systemd when it is ready. Exit
 * status 0 on a clean stop, 1 when it could not start (the reason on
 * stderr), 2 for usage errors.
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
#include "demand/demand.h"
#include "net/net.h"
#include "tls/tls.h"
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
	struct net_front *front; /* front mode, NULL when off; set once,
				    read by the on-demand thread (atomic) */
	struct demand *demand;	 /* on-demand issuance, NULL when off; set
				    at start or by a reload (atomic) */
	char ca_label[512]; /* the directory URL, escaped for a label */
	struct cli_reload reload;
	struct cli_front_reload front_reload;
};

static struct demand *demand_of(struct serve_ctx *sc)
{
	return __atomic_load_n(&sc->demand, __ATOMIC_ACQUIRE);
}

static struct net_front *front_of(struct serve_ctx *sc)
{
	return __atomic_load_n(&sc->front, __ATOMIC_ACQUIRE);
}

/* s as a Prometheus label value: backslash, quote and newline escaped;
 * cut (never mid-escape) when it does not fit. */
static void label_escape(const char *s, char *out, size_t sz)
{
	size_t o = 0;

	for (; *s && o + 3 < sz; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[o++] = '\\';
			out[o++] = *s == '\n' ? 'n' : *s;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
}

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
	struct engine_nginx_stats ngs;
	json_t *rl, *b;
	int64_t now = clock_wall_ms();

	engine_daemon_stats(sc->d, &st);
	if (engine_daemon_nginx_stats(sc->d, &ngs) == 0 &&
	    engine_nginx_status_json(&ngs, obj) < 0)
		return -ENOMEM;
	rl = json_array();
	if (!rl || json_object_set_new(obj, "rate_limits", rl) ||
	    json_object_set_new(obj, "in_flight", json_integer(st.in_flight)) ||
	    json_object_set_new(obj, "concurrency",
				json_integer(st.concurrency)) ||
	    json_object_set_new(obj, "draining", json_boolean(st.draining)) ||
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
		json_real(orders_now(&st, now, st.orders_period_ms))) ||
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
	struct engine_nginx_stats ngs;

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
			orders_now(&st, clock_wall_ms(), st.orders_period_ms),
			st.orders_capacity);
	fprintf(out,
		"# HELP certherd_orders_total Orders finished since start, by "
		"CA and result.\n"
		"# TYPE certherd_orders_total counter\n"
		"certherd_orders_total{ca=\"%s\",result=\"valid\"} %llu\n"
		"certherd_orders_total{ca=\"%s\",result=\"failed\"} %llu\n"
		"# HELP certherd_order_failures_total Failed orders since start, "
		"by CA and problem type (or error kind).\n"
		"# TYPE certherd_order_failures_total counter\n",
		sc->ca_label, (unsigned long long)st.orders_valid, sc->ca_label,
		(unsigned long long)st.orders_failed);
	for (unsigned i = 0; i < st.n_failure_types; i++)
		fprintf(out,
			"certherd_order_failures_total{ca=\"%s\",problem=\"%s\"} "
			"%llu\n",
			sc->ca_label, st.failures[i].type,
			(unsigned long long)st.failures[i].n);
	fprintf(out,
		"# HELP certherd_ari_fetches_total renewalInfo (RFC 9773) "
		"fetches since start, by CA and result.\n"
		"# TYPE certherd_ari_fetches_total counter\n"
		"certherd_ari_fetches_total{ca=\"%s\",result=\"ok\"} %llu\n"
		"certherd_ari_fetches_total{ca=\"%s\",result=\"failed\"} "
		"%llu\n",
		sc->ca_label, (unsigned long long)st.ari_ok, sc->ca_label,
		(unsigned long long)st.ari_failed);
	if (engine_daemon_nginx_stats(sc->d, &ngs) == 0 &&
	    engine_nginx_metrics(&ngs, out) < 0)
		return -EIO;
	if (net_front_metrics(sc->front, out) < 0 ||
	    demand_metrics(demand_of(sc), out) < 0)
		return -EIO;
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
static void limits_from(const struct config *cfg, const char *directory,
			struct engine_limit_def defs[ENGINE_LIMIT__MAX])
{
	const struct config_rate *r[ENGINE_LIMIT__MAX] = {
		[ENGINE_LIMIT_ORDERS] = &cfg->limits.orders,
		[ENGINE_LIMIT_REGDOMAIN] = &cfg->limits.certs_per_domain,
		[ENGINE_LIMIT_IDENTICAL] = &cfg->limits.identical,
		[ENGINE_LIMIT_FAILED_AUTHZ] = &cfg->limits.failed_authz,
	};
	int le = is_letsencrypt(directory);

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

void cli__serve_live_opts(const struct config *cfg, const struct config *start,
			  struct engine_daemon_opts *o,
			  struct engine_limit_def limits[ENGINE_LIMIT__MAX])
{
	o->http_redirect = cfg->http.redirect == CONFIG_REDIRECT_REDIRECT;
	o->concurrency = (unsigned)cfg->acme.concurrency;
	limits_from(cfg, start->acme.directory, limits);
	o->limits = limits;
	o->backoff_max_ms = cfg->renew.backoff_max * 1000;
	o->drain_ms = cfg->daemon.drain_timeout * 1000;
}

/* order_done: the front serves the new certificate from now on, and
 * handshakes waiting for it on demand resume. */
static void cert_changed(void *ctx, const char *name)
{
	struct serve_ctx *sc = ctx;

	demand_issued(demand_of(sc), name);
	net_front_cert_changed(sc->front, name);
}

/* A domain removed through the API (an API thread): the front serves it
 * no more, and forgets any on-demand decision about it. */
static void removed(void *ctx, const char *name)
{
	struct serve_ctx *sc = ctx;

	demand_issued(demand_of(sc), name);
	net_front_removed(front_of(sc), name);
}

/* SIGTERM (the loop thread): the front stops accepting at once. */
static void draining(void *ctx, int64_t drain_ms)
{
	net_front_drain(front_of(ctx), drain_ms);
}

/* ---- front mode's hooks: on-demand issuance, TLS-ALPN-01 --------------- */

/* A worker's ClientHello for a name with no certificate. */
static int front_unknown(void *ctx, const char *sni)
{
	struct serve_ctx *sc = ctx;

	return demand_check(demand_of(sc), sni);
}

/* The on-demand thread decided names: paused handshakes look again. */
static void demand_decided(void *ctx)
{
	net_front_wake(front_of(ctx));
}

/* The on-demand thread registered a name: a scheduler pass now. */
static void demand_registered(void *ctx)
{
	struct serve_ctx *sc = ctx;

	engine_daemon_wake(sc->d);
}

static void order_failed(void *ctx, const char *name)
{
	struct serve_ctx *sc = ctx;

	demand_failed(demand_of(sc), name);
}

static int alpn_publish(void *ctx, const char *domain,
			const unsigned char digest[32])
{
	struct serve_ctx *sc = ctx;
	char err[160];
	int rc = net_front_alpn_publish(front_of(sc), domain, digest, err,
					sizeof(err));

	if (rc < 0)
		log_error("front", domain, "cannot publish tls-alpn-01: %s",
			  err);
	return rc;
}

static void alpn_unpublish(void *ctx, const char *domain)
{
	net_front_alpn_unpublish(front_of(ctx), domain);
}

/* [on_demand] -> its options; started before the front, whose workers
 * ask it from their first handshake, or by a reload that turns it on. */
static int demand_start_from(void *ctx, const struct config *cfg, char *err,
			     size_t errsz)
{
	struct serve_ctx *sc = ctx;
	struct demand_opts dop;
	struct demand *dm = NULL;
	int rc;

	cli__demand_opts(cfg, &dop);
	dop.registered = demand_registered;
	dop.decided = demand_decided;
	dop.ctx = sc;
	rc = demand_start(&dop, &dm, err, errsz);
	__atomic_store_n(&sc->demand, dm, __ATOMIC_RELEASE);
	return rc;
}

/* front.* keys -> the front's options, and start it (after the engine
 * has opened the store it reads certificates from). */
static int front_start(const struct config *cfg, struct serve_ctx *sc,
		       char *err, size_t errsz)
{
	struct net_front_opts fo = {
		.state_dir = cfg->store.state_dir,
		.listen = &cfg->front.listen,
		.upstream = &cfg->front.upstream,
		.upstream_h2c = &cfg->front.upstream_h2c,
		.proxy_protocol = cfg->front.proxy_protocol,
		.workers = (unsigned)cfg->front.workers,
		.cache_size = (size_t)cfg->front.cache_size,
		/* always: the table stays empty unless the daemon orders
		 * with tls-alpn-01 */
		.tls_alpn = 1,
		/* always: a reload may turn on-demand issuance on (until
		 * then demand_check(NULL) refuses) */
		.unknown = front_unknown,
		.unknown_ctx = sc,
	};
	struct net_front_live l;
	struct net_front *f = NULL;
	int rc;

	cli__front_live(cfg, &l);
	fo.handshake_timeout_ms = l.handshake_timeout_ms;
	fo.idle_timeout_ms = l.idle_timeout_ms;
	fo.max_conns = l.max_conns;
	fo.ondemand_wait_ms = l.ondemand_wait_ms;
	rc = cli__front_default(cfg, &fo.default_cert, err, errsz);
	if (rc < 0)
		return rc;
	rc = net_front_start(&fo, &f, err, errsz);
	tls_cert_unref(fo.default_cert); /* the front has its own */
	__atomic_store_n(&sc->front, f, __ATOMIC_RELEASE);
	if (rc == 0) {
		sc->front_reload.front = f;
		sc->front_reload.demand = &sc->demand;
		sc->front_reload.start_demand = demand_start_from;
		sc->front_reload.ctx = sc;
		sc->reload.front = &sc->front_reload;
		if (cli__front_keep_ask(&sc->front_reload,
					cfg->on_demand.ask) < 0) {
			snprintf(err, errsz, "out of memory");
			return -ENOMEM;
		}
	}
	return rc;
}

/* [dns] and the [dns "ZONE"] sections as the engine takes them; the TSIG
 * keys are parsed from the files config_load_secrets read. 0, or -EINVAL
 * with err. Nothing when no zone is configured (*use 0). */
static int dns01_from(const struct config *cfg, struct engine_dns01_opts *o,
		      struct engine_dns01_zone *zones,
		      struct engine_tsig_key *keys, char servers[][80],
		      char *resolver, size_t ressz, int *use, char *err,
		      size_t errsz)
{
	char why[256];

	*use = cfg->dns.n_zones > 0;
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		const struct config_dns_zone *z = &cfg->dns.zones[i];

		memset(&zones[i], 0, sizeof(zones[i]));
		zones[i].zone = z->zone;
		zones[i].updater = z->updater == CONFIG_DNS_HOOK
					   ? ENGINE_DNS01_HOOK
					   : ENGINE_DNS01_RFC2136;
		zones[i].server = addr_str(&z->server, servers[i], 80);
		zones[i].command = z->command;
		if (z->tsig_key) {
			if (engine_tsig_parse(z->tsig_key, strlen(z->tsig_key),
					      &keys[i], why, sizeof(why)) < 0) {
				snprintf(err, errsz, "[dns \"%s\"] tsig_key_file "
					 "%s: %s", z->zone, z->tsig_key_file,
					 why);
				return -EINVAL;
			}
			zones[i].key = &keys[i];
		}
	}
	o->zones = zones;
	o->n_zones = cfg->dns.n_zones;
	o->resolver = addr_str(&cfg->dns.resolver, resolver, ressz);
	o->propagation_timeout_ms = cfg->dns.propagation_timeout * 1000;
	o->hook_timeout_ms = cfg->dns.hook_timeout * 1000;
	return 0;
}

static void reload(struct engine_daemon *d, void *ctx)
{
	struct serve_ctx *sc = ctx;

	cli__reload(&sc->reload, d);
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
	struct cli_nginx_opts ngo;
	unsigned char *hmac = NULL;
	char err[1024] = "", http[80], tcp[80], resolver[80];
	const char *ours[64]; /* preflight.addresses: at most 64 */
	struct engine_dns01_opts dopts;
	static struct engine_dns01_zone dzones[CONFIG_LIST_MAX];
	static struct engine_tsig_key dkeys[CONFIG_LIST_MAX];
	static char dservers[CONFIG_LIST_MAX][80];
	char dresolver[80];
	int status = 1, have_cfg = 0, use_dns01 = 0, rc_open;

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
	if (cli__serve_config(g, &cfg, err, sizeof(err)) < 0)
		goto bad;
	have_cfg = 1;
	cli__serve_log_level(g, &cfg);
	if (cli__reload_init(&sc.reload, g, &cfg) < 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}

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
	o.ari = cfg.renew.ari;
	o.deploy_cmd = cfg.hooks.deploy[0] ? cfg.hooks.deploy : NULL;
	o.webhook_url = cfg.hooks.webhook[0] ? cfg.hooks.webhook : NULL;
	o.hooks_batch_ms = cfg.hooks.batch * 1000;
	o.hooks_timeout_ms = cfg.hooks.timeout * 1000;
	label_escape(cfg.acme.directory, sc.ca_label, sizeof(sc.ca_label));
	o.preflight = cfg.preflight.enabled;
	o.preflight_resolver = addr_str(&cfg.preflight.resolver, resolver,
					sizeof(resolver)); /* NULL: system */
	for (size_t i = 0; i < cfg.preflight.addresses.n && i < 64; i++)
		ours[o.n_preflight_addrs++] = cfg.preflight.addresses.v[i].host;
	o.preflight_addrs = ours;
	if (dns01_from(&cfg, &dopts, dzones, dkeys, dservers, dresolver,
		       sizeof(dresolver), &use_dns01, err, sizeof(err)) < 0)
		goto bad;
	o.dns01 = use_dns01 ? &dopts : NULL;
	cli__serve_live_opts(&cfg, &cfg, &o, limits);
	o.reload = reload;
	o.reload_ctx = &sc;
	o.cert_changed = cert_changed;
	o.cert_changed_ctx = &sc;
	o.keep_removed_ms = cfg.store.keep_removed * 1000;
	if (cli__serve_nginx(&cfg, &ngo, err, sizeof(err)) < 0)
		goto bad;
	o.nginx = ngo.on ? &ngo.o : NULL;
	o.chall = cfg.acme.challenge == CONFIG_CHALLENGE_TLSALPN01
			  ? ACME_CHALL_TLSALPN01
			  : ACME_CHALL_HTTP01;
	o.tlsalpn_publish = alpn_publish;
	o.tlsalpn_unpublish = alpn_unpublish;
	o.tlsalpn_ctx = &sc;
	o.order_failed = order_failed;
	o.order_failed_ctx = &sc;
	o.draining = draining;
	o.draining_ctx = &sc;
	if (!o.http_listen && !use_dns01 &&
	    o.chall != ACME_CHALL_TLSALPN01) {
		snprintf(err, sizeof(err),
			 "http.listen is required unless [dns \"ZONE\"] "
			 "sections or acme.challenge = tls-alpn-01 validate "
			 "instead");
		goto bad;
	}
	rc_open = engine_daemon_open(&o, &d, err, sizeof(err));
	OPENSSL_cleanse(dkeys, sizeof(dkeys)); /* the engine has its copy */
	if (rc_open < 0)
		goto fail;
	sc.d = d; /* the on-demand thread wakes it */
	if (cfg.on_demand.enabled &&
	    demand_start_from(&sc, &cfg, err, sizeof(err)) < 0)
		goto fail;
	if (cfg.front.enabled && front_start(&cfg, &sc, err, sizeof(err)) < 0)
		goto fail;

	ao.state_dir = cfg.store.state_dir;
	ao.socket_path = cfg.api.socket[0] ? cfg.api.socket : NULL;
	ao.tcp_listen = addr_str(&cfg.api.listen, tcp, sizeof(tcp));
	ao.token = cfg.api.token;
	sc.d = d;
	ah.wake = wake;
	ah.removed = removed;
	ah.status_extra = status_extra;
	ah.metrics_extra = metrics_extra;
	ah.ctx = &sc;
	if (api_start(&ao, &ah, &api, err, sizeof(err)) < 0)
		goto fail;
	log_info("serve", NULL, "certherd %s serving; API on %s%s%s",
		 CERTHERD_VERSION, ao.socket_path ? ao.socket_path : "",
		 ao.tcp_listen ? " and " : "", ao.tcp_listen ? ao.tcp_listen : "");
	/* Both listeners accept now (the HTTP-01 responder since
	 * engine_daemon_open, the API since api_start): systemd may start
	 * what depends on us. */
	engine_notify_ready();
	status = engine_daemon_run(d) == 0 ? 0 : 1;
	/* the front stopped accepting at the signal; its connections may
	 * finish within the same drain time */
	net_front_drain_wait(sc.front);
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
	net_front_stop(sc.front); /* before the engine: it may call us */
	sc.front = NULL;
	demand_stop(sc.demand); /* after the front: its workers ask it */
	sc.demand = NULL;
	engine_daemon_close(d);
	OPENSSL_cleanse(dkeys, sizeof(dkeys));
	if (hmac)
		OPENSSL_cleanse(hmac, o.acct.eab_hmac_len);
	free(hmac);
	cli__reload_free(&sc.reload);
	cli__front_reload_free(&sc.front_reload);
	if (have_cfg)
		config_free(&cfg);
	return status;
}
