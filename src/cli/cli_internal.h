/*
 * Internals shared by the cli module's commands (cli__ prefix).
 */
#ifndef CERTHERD_CLI_INTERNAL_H
#define CERTHERD_CLI_INTERNAL_H

#include <getopt.h>
#include <stddef.h>

#include "cli/cli.h"
#include "engine/engine.h"

/* Option codes of the account options; commands number theirs from
 * CLI_O__OWN up. */
enum {
	CLI_O_DIR = 256,
	CLI_O_CABUNDLE,
	CLI_O_EMAIL,
	CLI_O_EABKID,
	CLI_O_EABKEY,
	CLI_O_OUT,
	CLI_O_CONNS,
	CLI_O_LOG,
	CLI_O__OWN
};

struct cli_account {
	struct engine_account_opts o;
	const char *eab_key;  /* as given, base64url */
	unsigned char *hmac;  /* decoded, owned */
};

extern const struct option cli__account_longopts[];
extern const size_t cli__n_account_longopts;
extern const char cli__account_usage[];

/* own[] followed by the account options and a terminator into out. */
int cli__build_longopts(struct option *out, size_t cap,
			const struct option *own, size_t n_own);
/* 1 if c was an account option (applied), 0 if not, <0 on a bad value
 * (message printed). */
int cli__account_opt(struct cli_account *a, const char *cmd, int c,
		     const char *arg);
/* Check required options and decode EAB; 0 or -EINVAL (printed). */
int cli__account_finish(struct cli_account *a, const char *cmd);
void cli__account_clear(struct cli_account *a);
/* Parse a decimal in [min, max]; 0 or -EINVAL (printed). */
int cli__long_number(const char *cmd, const char *flag, const char *s,
		     long min, long max, long *out);

/* Normalized, de-duplicated domain names; bad counts rejected inputs
 * (each reported on stderr). */
struct cli_names {
	char **v;
	size_t n, cap;
	int bad;
	unsigned flags; /* name_normalize flags (NAME_ALLOW_WILDCARD) */
	size_t *set;    /* hash set of indexes into v (private) */
	size_t set_cap;
};
int cli__names_add(struct cli_names *ns, const char *cmd, const char *raw);
int cli__names_file(struct cli_names *ns, const char *cmd, const char *path);
/* The next name of a names file being split in place, as strtok_r (buf
 * on the first call, NULL after): one per line, '#' starts a comment,
 * blank lines and surrounding white space skipped. NULL at the end. */
char *cli__names_line(char *buf, char **save);
void cli__names_clear(struct cli_names *ns);

/* ---- serve's configuration, at start and at SIGHUP (cli_reload.c) ------ */

struct config;

/* Read the daemon's configuration as `serve` does: defaults, -c FILE,
 * every --set in order, config_validate, secret files. 0, or a negative
 * errno with err set and cfg freed. */
int cli__serve_config(const struct cli_global *g, struct config *cfg,
		      char *err, size_t errsz);
/* log.level from cfg, unless --log-level was given (which wins). */
void cli__serve_log_level(const struct cli_global *g, const struct config *cfg);
/* The live settings of cfg into o (concurrency, redirect, limits into
 * limits[], which o->limits points to, backoff, drain). The CA's default
 * limits follow start's acme.directory: the CA cannot change without a
 * restart. Borrowed: cfg, start; o's pointers point into limits. */
void cli__serve_live_opts(const struct config *cfg, const struct config *start,
			  struct engine_daemon_opts *o,
			  struct engine_limit_def limits[ENGINE_LIMIT__MAX]);

/* ---- front mode's live settings (cli_front.c) ---------------------------- */

struct net_front;
struct net_front_live;
struct tls_cert;
struct demand;
struct demand_opts;

/* The [front] and [on_demand] keys a running front takes. */
void cli__front_live(const struct config *cfg, struct net_front_live *l);
/* front.default_certificate and default_key read and checked: *out is
 * NULL when none is configured. 0, or a negative errno with err set. */
int cli__front_default(const struct config *cfg, struct tls_cert **out,
		       char *err, size_t errsz);
/* [on_demand] into o (no hooks set). Borrowed: cfg. */
void cli__demand_opts(const struct config *cfg, struct demand_opts *o);
/* What a SIGHUP changes in front mode (cli_serve.c fills it). */
struct cli_front_reload {
	struct net_front *front;  /* NULL: front mode off */
	struct demand **demand;	  /* the daemon's, NULL inside when off */
	/* on_demand.enabled turned on by a reload: start it (sets
	 * *demand). 0 or a negative errno with err. */
	int (*start_demand)(void *ctx, const struct config *cfg, char *err,
			    size_t errsz);
	void *ctx;
	char *ask; /* on_demand.ask last applied, owned (may hold a token) */
};
/* A reload's front part, read and checked but not applied yet. */
struct cli_front_next {
	struct tls_cert *def; /* the default certificate, read again; owned,
				 NULL: none */
	char *ask;	      /* next's on_demand.ask, owned (may hold a
				 token) */
};
/* A reload checks every part first and applies only when all accept
 * (cli_reload.c). cli__front_check reads next's default certificate
 * files again and copies what applying needs, changing nothing: 0, or a
 * negative errno with err. cli__front_apply then applies next's live
 * front and on-demand keys, on-demand first: everything, or nothing when
 * on-demand cannot start or be changed (err set), the only steps left
 * that can fail. fn is the caller's either way: cli__front_next_free.
 * Both do nothing when front mode is off. Loop thread. */
int cli__front_check(const struct cli_front_reload *fr,
		     const struct config *next, struct cli_front_next *fn,
		     char *err, size_t errsz);
int cli__front_apply(struct cli_front_reload *fr, const struct config *next,
		     struct cli_front_next *fn, char *err, size_t errsz);
void cli__front_next_free(struct cli_front_next *fn); /* zeroed ok */
/* Remember ask as the one applied. 0 or -ENOMEM. */
int cli__front_keep_ask(struct cli_front_reload *fr, const char *ask);
void cli__front_reload_free(struct cli_front_reload *fr);

/* What a reload compares the new configuration with. */
struct cli_reload {
	const struct cli_global *g;  /* borrowed, for -c and --set */
	const struct config *start;  /* what the daemon started with;
					borrowed, outlives the daemon */
	char **start_vals;           /* start's values as dumped, owned */
	char **live_vals;            /* the last applied ones, owned */
	struct cli_front_reload *front; /* front mode's keys, NULL: none */
};
/* 0 or -ENOMEM. */
int cli__reload_init(struct cli_reload *r, const struct cli_global *g,
		     const struct config *start);
void cli__reload_free(struct cli_reload *r); /* NULL ok */
/* SIGHUP, on the daemon's loop thread: re-read, then apply or keep
 * everything (logged either way). 1 applied, 0 kept the running
 * configuration, <0 out of memory (also kept). */
int cli__reload(struct cli_reload *r, struct engine_daemon *d);

/* ---- nginx mode (cli_nginx.c) ------------------------------------------ */

/* Defaults, -c FILE, every --set, config_validate; no secret files (for
 * commands that need none). 0, or negative errno with err set. */
int cli__plain_config(const struct cli_global *g, struct config *cfg,
		      char *err, size_t errsz);

/* The engine's nginx options and the strings they point to. */
struct cli_nginx_opts {
	struct engine_nginx_opts o; /* points into cfg and the buffers */
	char listen[80], upstream[200], verify_host[64];
	int on; /* nginx.enabled */
};
/* [nginx] of cfg into n (n->on 0 when nginx mode is off). 0, or -EINVAL
 * with err set. */
int cli__serve_nginx(const struct config *cfg, struct cli_nginx_opts *n,
		     char *err, size_t errsz);

#endif
