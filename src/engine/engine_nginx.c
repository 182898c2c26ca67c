/*
 * engine_nginx.c — nginx mode's driver on the daemon's loop: keeps the
 * include file nginx reads in step with the store and reloads nginx,
 * safely and rarely (docs/nginx.md).
 *
 *   IDLE --change/poke--> WAITING --timer--> pass: render from the store
 *     ^                                       |  nothing nginx reads
 *     +---------------------------------------+  changed: IDLE (or VERIFY)
 *     |                                       v
 *     |   nginx -t failed: old include    CHECKING (`nginx -t`, the new
 *     +<--- back, message logged and       include in place, the old one
 *     |     in the changed domains'        kept as include.certherd-old)
 *     |     history                           | ok
 *     |                                       v
 *     +<----------------------- failed --- RELOADING (`nginx -s reload`)
 *     |                                       | ok
 *     +<------------------------------------ VERIFYING (thread pool: TLS
 *                                             handshakes with a sample of
 *                                             the changed names)
 *
 * Invariants: one pass at a time (changes during a pass set `dirty` and
 * wait for IDLE); WAITING has the pass timer armed; CHECKING and
 * RELOADING have a command running; VERIFYING has work queued. A pass
 * starts no earlier than one reload_interval after the last reload, and
 * reloads only when the include's bytes changed or (server-blocks) a
 * certificate nginx loaded at its last reload changed: nginx reads
 * static certificate files only at a reload, variable ones (sni-variable)
 * at each handshake.
 *
 * Why the check runs with the new file in place and rolls back, rather
 * than on a copy: the include may be reached from the operator's
 * nginx.conf through any chain of includes we cannot rewrite; `nginx -t`
 * with the operator's own command checks exactly what a reload would
 * load. During the check the old file is kept as a hard link; a crash
 * before the verdict is undone at the next start (the old one comes
 * back), and nginx never reloads in between: only we reload it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "nginx/nginx.h"
#include "store/store.h"
#include "util/util.h"

#define NG_PAGE		512   /* domains read from the store at once */
#define NG_MIN_GAP_MS	1000  /* between two passes, to gather changes */
/* nginx -t parses every certificate and key of server-blocks: 59 s for
 * 10,000 on a busy 2-core machine (bench/RESULTS.md), so 60 s was the
 * edge of failing every check of a large platform */
#define NG_CMD_TIMEOUT	300000
#define NG_SAMPLE	8     /* names verified after a reload */
#define NG_VERIFY_MS	20000 /* how long nginx gets to serve them */
#define NG_HANDSHAKE_MS 2000
#define NG_EVENTS_MAX	256 /* history entries written for one failure */
#define NG_OUT_MAX	(64u << 10)
#define NG_SAFETY_MS                                                           \
	60000 /* a pass at least this often: changes made                      \
		 to the store by another process */

/* The SNI a wildcard "*.x" is checked with: "certherd-verify.x", a name
 * it covers and that no one asks for (skipped if it is registered: it
 * would have its own certificate) */
#define NG_PROBE_LABEL "certherd-verify"

enum ng_state {
	NG_IDLE = 0,
	NG_WAITING,
	NG_CHECKING,
	NG_RELOADING,
	NG_VERIFYING,
	NG__MAX
};
static const char *const ng_state_names[NG__MAX] = {
    "idle", "waiting", "checking", "reloading", "verifying"};

struct ng_verify {
	struct engine_nginx *ng;
	uv_work_t work;
	size_t n;
	char names[NG_SAMPLE][NAME_MAX_LEN + 1];
	char sni[NG_SAMPLE][NAME_MAX_LEN + 1]; /* names[i], or its probe */
	char want[NG_SAMPLE][80];
	char got[NG_SAMPLE][80];
	char why[NG_SAMPLE][300];
	int ok[NG_SAMPLE];
};

struct engine_nginx {
	uv_loop_t *loop;
	struct store *st;
	struct engine_nginx_opts o;
	char *include, *template_file, *command, *listen, *upstream, *live_dir,
	    *verify_host;
	char backup[4300], out_path[4300], qout[4400];
	enum ng_state state;
	int dirty;	 /* something may have changed: pass soon */
	int need_reload; /* certificates changed under the include */
	int first_pass;	 /* keys of every domain get their owner */
	int cert_cache;	 /* nginx >= 1.27.4 */
	unsigned version;
	uint64_t last_reload; /* loop time; 0 = never */
	int reloaded_once;
	uint64_t last_pass;
	struct engine_batch *changed; /* certificates stored since the last
					 successful reload */
	struct engine_batch *pass;    /* those of the pass in progress */
	struct engine_batch *told;    /* have last_err in their history */
	size_t pass_domains;	      /* in the include of this pass */
	int pass_include_changed;
	struct engine_cmd *cmd;
	struct ng_verify *verify; /* in flight; outlives ng if freed */
	uv_timer_t timer, safety;
	int handles;
	int freed;
	char last_err[512]; /* the last failure logged, not repeated */
	unsigned long reloads;
	uint64_t cmd_started; /* loop time the running command started */
	/* for the status page and /metrics: written on the loop thread,
	 * read by the API's threads, both under mu */
	uv_mutex_t mu;
	int mu_ok;
	struct engine_nginx_stats stats;
};

/* The last reference to ng is gone: release what is left. */
static void ng_release(struct engine_nginx *ng)
{
	if (ng->mu_ok)
		uv_mutex_destroy(&ng->mu);
	free(ng->verify_host);
	free(ng);
}

static void stats_lock(struct engine_nginx *ng)
{
	if (ng->mu_ok)
		uv_mutex_lock(&ng->mu);
}

static void stats_unlock(struct engine_nginx *ng)
{
	if (ng->mu_ok)
		uv_mutex_unlock(&ng->mu);
}

/* Record an outcome in ev (under mu): now, ok, the running command's
 * duration when there is one, and the message. */
static void stats_event(struct engine_nginx *ng, struct engine_nginx_event *ev,
			int ok, int timed, const char *msg)
{
	ev->at_ms = clock_wall_ms();
	ev->ok = ok;
	ev->seconds =
	    timed ? (double)(uv_now(ng->loop) - ng->cmd_started) / 1000.0 : 0;
	snprintf(ev->message, sizeof(ev->message), "%.*s",
		 (int)sizeof(ev->message) - 1, msg ? msg : "");
}

/* What waits for a reload: the changed names and those of the pass. */
static void stats_pending(struct engine_nginx *ng)
{
	if (ng->freed)
		return;
	stats_lock(ng);
	ng->stats.pending = engine_batch_count(ng->changed) +
			 engine_batch_count(ng->pass);
	stats_unlock(ng);
}

static void set_state(struct engine_nginx *ng, enum ng_state s)
{
	if (ng->state != s)
		log_debug("nginx", NULL, "%s -> %s", ng_state_names[ng->state],
			  ng_state_names[s]);
	ng->state = s;
	stats_lock(ng);
	ng->stats.state = ng_state_names[s];
	stats_unlock(ng);
	stats_pending(ng);
}

static void on_pass(uv_timer_t *t);

/* Arm the pass timer if there is something to do and nothing runs. */
static void kick(struct engine_nginx *ng)
{
	uint64_t now = uv_now(ng->loop), at = now;

	if (ng->freed || !ng->dirty || ng->state != NG_IDLE)
		return;
	if (ng->last_pass && ng->last_pass + NG_MIN_GAP_MS > at)
		at = ng->last_pass + NG_MIN_GAP_MS;
	if (ng->reloaded_once &&
	    ng->last_reload + (uint64_t)ng->o.reload_interval_ms > at)
		at = ng->last_reload + (uint64_t)ng->o.reload_interval_ms;
	set_state(ng, NG_WAITING);
	uv_timer_start(&ng->timer, on_pass, at - now, 0);
}

static void back_to_idle(struct engine_nginx *ng)
{
	set_state(ng, NG_IDLE);
	ng->last_pass = uv_now(ng->loop);
	kick(ng);
}

/* Log a failure at error once, then at debug while it repeats (a broken
 * template fails again at every pass until it is fixed). */
static void fail_log(struct engine_nginx *ng, const char *msg)
{
	if (strcmp(ng->last_err, msg) == 0) {
		log_debug("nginx", NULL, "%s (again)", msg);
		return;
	}
	snprintf(ng->last_err, sizeof(ng->last_err), "%.*s",
		 (int)sizeof(ng->last_err) - 1, msg);
	engine_batch_clear(ng->told); /* a new failure: tell everyone */
	log_error("nginx", NULL, "%s", msg);
}

/* Record kind/detail in the history of the pass's names that were not
 * told of this same failure yet (a broken template fails again at every
 * pass until it is fixed: one entry per domain, not one a minute), at
 * most NG_EVENTS_MAX per pass (a failure of 10,000 names is one log line
 * and a sample of entries, not a minute of database writes). */
static void pass_events(struct engine_nginx *ng, const char *kind,
			const char *detail)
{
	size_t n = engine_batch_count(ng->pass), written = 0;
	int64_t now = clock_wall_ms();

	for (size_t i = 0; i < n && written < NG_EVENTS_MAX; i++) {
		const char *name = engine_batch_name(ng->pass, i);

		if (engine_batch_add(ng->told, name) == 0)
			continue; /* already has this failure */
		store_event_append(ng->st, name, now, kind, detail);
		written++;
	}
}

/* The pass did not reach nginx: its names wait for the next one. */
static void pass_keep(struct engine_nginx *ng)
{
	if (engine_batch_merge(ng->changed, ng->pass) < 0)
		log_error("nginx", NULL,
			  "out of memory keeping changed names; they are "
			  "loaded at the next reload anyway");
	engine_batch_clear(ng->pass);
}

/* nginx's own words from the command's stderr file: the [emerg] and
 * [alert] lines (else the last line), one line, at most outsz. */
static void cmd_message(struct engine_nginx *ng, char *out, size_t outsz)
{
	char *text = NULL, *p, *line;
	size_t len = 0, o = 0;

	out[0] = '\0';
	if (fsio_read_all(ng->out_path, NG_OUT_MAX, &text, &len) < 0)
		return;
	for (line = text; line && *line; line = p) {
		size_t n;

		p = strchr(line, '\n');
		if (p)
			*p++ = '\0';
		if (!*line)
			continue;
		if (!strstr(line, "[emerg]") && !strstr(line, "[alert]") &&
		    !strstr(line, "[error]") && p && *p)
			continue; /* keep the last line whatever it is */
		for (n = 0; line[n]; n++)
			if ((unsigned char)line[n] < 0x20)
				line[n] = ' ';
		o += (size_t)snprintf(out + o, outsz - o, "%s%s", o ? "; " : "",
				      line);
		if (o >= outsz - 1)
			break;
	}
	free(text);
}

/* ---- verification ---------------------------------------------------------
 */

static void verify_work(uv_work_t *w)
{
	struct ng_verify *v = w->data;
	uint64_t deadline = (uint64_t)clock_mono_ms() + NG_VERIFY_MS;
	char host[64];
	unsigned port;
	size_t left = v->n;

	snprintf(host, sizeof(host), "%s", v->ng->verify_host);
	port = v->ng->o.verify_port;
	/* nginx applies a reload asynchronously: new workers take new
	 * connections a moment after `nginx -s reload` returned, so ask
	 * again until every name answers right or the time is up */
	while (left && (uint64_t)clock_mono_ms() < deadline) {
		for (size_t i = 0; i < v->n; i++) {
			if (v->ok[i])
				continue;
			v->why[i][0] = v->got[i][0] = '\0';
			if (nginx_verify_serial(host, port, v->sni[i],
						NG_HANDSHAKE_MS, v->got[i],
						sizeof(v->got[i]), v->why[i],
						sizeof(v->why[i])) == 0 &&
			    strcmp(v->got[i], v->want[i]) == 0) {
				v->ok[i] = 1;
				left--;
			}
		}
		if (left)
			usleep(250 * 1000);
	}
}

static void verify_done(uv_work_t *w, int status)
{
	struct ng_verify *v = w->data;
	struct engine_nginx *ng = v->ng;
	int64_t now = clock_wall_ms();
	size_t bad = 0;

	if (ng->freed) {
		ng->verify = NULL;
		free(v);
		if (ng->handles == 0)
			ng_release(ng);
		return;
	}
	stats_lock(ng);
	ng->stats.last_verify.message[0] = '\0';
	stats_unlock(ng);
	for (size_t i = 0; i < v->n; i++) {
		char detail[512];

		if (v->ok[i]) {
			log_debug("nginx", v->names[i],
				  "nginx serves certificate %s", v->want[i]);
			continue;
		}
		bad++;
		if (v->got[i][0])
			snprintf(detail, sizeof(detail),
				 "nginx at %s port %u serves certificate %s "
				 "for %s, not the current %s",
				 ng->verify_host, ng->o.verify_port, v->got[i],
				 v->sni[i], v->want[i]);
		else
			snprintf(detail, sizeof(detail),
				 "nginx does not serve the current certificate "
				 "%s: %.300s",
				 v->want[i], v->why[i]);
		log_error("nginx", v->names[i], "%s", detail);
		store_event_append(ng->st, v->names[i], now, "nginx-mismatch",
				   detail);
		stats_lock(ng);
		if (!ng->stats.last_verify.message[0])
			snprintf(ng->stats.last_verify.message,
				 sizeof(ng->stats.last_verify.message), "%.*s",
				 (int)sizeof(ng->stats.last_verify.message) - 1,
				 detail);
		stats_unlock(ng);
	}
	stats_lock(ng);
	ng->stats.verify_names += v->n;
	ng->stats.verify_mismatches += bad;
	ng->stats.last_verify.at_ms = now;
	ng->stats.last_verify.names = (unsigned)v->n;
	ng->stats.last_verify.mismatches = (unsigned)bad;
	stats_unlock(ng);
	if (status == 0 && !bad)
		log_info("nginx", v->n == 1 ? v->names[0] : NULL,
			 "verified: nginx serves the new certificate of %zu "
			 "sampled domain%s",
			 v->n, v->n == 1 ? "" : "s");
	ng->verify = NULL;
	free(v);
	engine_batch_clear(ng->pass);
	back_to_idle(ng);
}

/* Hand-shake with a sample of the pass's names; 1 when queued. */
static int verify_start(struct engine_nginx *ng)
{
	size_t n = engine_batch_count(ng->pass), k, step;
	struct ng_verify *v;

	if (!ng->verify_host || !n)
		return 0;
	v = calloc(1, sizeof(*v));
	if (!v)
		return 0;
	v->ng = ng;
	k = n < NG_SAMPLE ? n : NG_SAMPLE;
	step = n / k;
	/* spread over the batch, not only its first names */
	for (size_t i = 0; i < k; i++) {
		const char *name = engine_batch_name(ng->pass, i * step);
		struct store_cert c = {0};
		struct store_domain d;

		if (strncmp(name, "*.", 2) == 0) {
			/* no SNI names a wildcard itself: ask for a name
			 * it covers */
			int w = snprintf(v->sni[v->n], sizeof(v->sni[0]),
					 NG_PROBE_LABEL "%s", name + 1);

			if (w < 0 || (size_t)w > NAME_MAX_LEN ||
			    (store_domain_get(ng->st, v->sni[v->n], &d) == 0 &&
			     d.status != STORE_DOMAIN_REMOVED))
				continue;
		} else {
			snprintf(v->sni[v->n], sizeof(v->sni[0]), "%s", name);
		}
		if (store_cert_current(ng->st, name, &c) < 0 ||
		    (ng->o.strategy == NGINX_SERVER_BLOCKS &&
		     !nginx_live_present(ng->live_dir, name))) {
			store_cert_clear(&c);
			continue;
		}
		snprintf(v->names[v->n], sizeof(v->names[0]), "%s", name);
		snprintf(v->want[v->n], sizeof(v->want[0]), "%s",
			 c.info.serial);
		v->n++;
		store_cert_clear(&c);
	}
	if (!v->n) {
		free(v);
		return 0;
	}
	v->work.data = v;
	if (uv_queue_work(ng->loop, &v->work, verify_work, verify_done) < 0) {
		free(v);
		return 0;
	}
	ng->verify = v;
	set_state(ng, NG_VERIFYING);
	return 1;
}

/* ---- the commands ----------------------------------------------------------
 */

static void reload_done(void *ctx, const struct engine_cmd_result *r)
{
	struct engine_nginx *ng = ctx;
	char msg[400], line[600];

	ng->cmd = NULL;
	if (r->spawn_error || r->timed_out || r->term_signal ||
	    r->exit_status != 0) {
		cmd_message(ng, msg, sizeof(msg));
		snprintf(line, sizeof(line), "nginx reload failed (%s): %s",
			 ng->command, msg[0] ? msg : "no message");
		fail_log(ng, line);
		pass_events(ng, "nginx-reload-failed", line);
		stats_lock(ng);
		ng->stats.reloads_failed++;
		stats_event(ng, &ng->stats.last_reload, 0, 1, line);
		stats_unlock(ng);
		pass_keep(ng);
		/* counts as a reload for the interval: no retry storm */
		ng->last_reload = uv_now(ng->loop);
		ng->reloaded_once = 1;
		back_to_idle(ng);
		return;
	}
	ng->last_err[0] = '\0';
	engine_batch_clear(ng->told);
	ng->reloads++;
	ng->last_reload = uv_now(ng->loop);
	ng->reloaded_once = 1;
	ng->need_reload = 0;
	snprintf(line, sizeof(line),
		 "nginx reloaded (%lu since start): %zu domain%s in the "
		 "include%s, %zu changed certificate%s",
		 ng->reloads, ng->pass_domains,
		 ng->pass_domains == 1 ? "" : "s",
		 ng->pass_include_changed ? " (changed)" : "",
		 engine_batch_count(ng->pass),
		 engine_batch_count(ng->pass) == 1 ? "" : "s");
	log_info("nginx", NULL, "%s", line);
	stats_lock(ng);
	ng->stats.reloads_ok++;
	stats_event(ng, &ng->stats.last_reload, 1, 1, line);
	stats_unlock(ng);
	if (ng->o.verify && verify_start(ng))
		return;
	engine_batch_clear(ng->pass);
	back_to_idle(ng);
}

/* Run `COMMAND ARGS 2>'out_path'`; 0 or -1 (logged). */
static int run(struct engine_nginx *ng, const char *args, engine_cmd_cb cb)
{
	char *line, err[256];
	size_t n = strlen(ng->command) + strlen(args) + strlen(ng->qout) + 8;

	line = malloc(n);
	if (!line)
		return -1;
	snprintf(line, n, "%s %s 2>%s", ng->command, args, ng->qout);
	ng->cmd_started = uv_now(ng->loop);
	ng->cmd = engine_cmd_start(ng->loop, line, NULL, -1, NG_CMD_TIMEOUT,
				   "nginx", cb, ng, err, sizeof(err));
	free(line);
	if (!ng->cmd) {
		char msg[400];

		snprintf(msg, sizeof(msg), "cannot run %s: %s", ng->command,
			 err);
		fail_log(ng, msg);
		return -1;
	}
	return 0;
}

/* Put the old include back after a failed check. */
static void rollback(struct engine_nginx *ng)
{
	int rc;

	if (access(ng->backup, F_OK) == 0)
		rc = rename(ng->backup, ng->include) < 0 ? -errno : 0;
	else /* there was none: an empty include is valid nginx */
		rc = fsio_write_atomic(ng->include, "", 0, 0644);
	if (rc < 0)
		log_error("nginx", NULL,
			  "cannot put the previous %s back: %s; the file "
			  "nginx -t refused is still there",
			  ng->include, strerror(-rc));
}

static void check_done(void *ctx, const struct engine_cmd_result *r)
{
	struct engine_nginx *ng = ctx;
	char msg[400], line[700];

	ng->cmd = NULL;
	if (r->spawn_error || r->timed_out || r->term_signal ||
	    r->exit_status != 0) {
		cmd_message(ng, msg, sizeof(msg));
		if (ng->pass_include_changed)
			rollback(ng);
		snprintf(line, sizeof(line),
			 "nginx -t failed, %s; nginx not reloaded: %s",
			 ng->pass_include_changed
			     ? "the previous include is kept"
			     : "the include did not change",
			 msg[0] ? msg : "no message");
		fail_log(ng, line);
		pass_events(ng, "nginx-check-failed", line);
		stats_lock(ng);
		ng->stats.checks_failed++;
		stats_event(ng, &ng->stats.last_check, 0, 1, line);
		stats_unlock(ng);
		pass_keep(ng);
		back_to_idle(ng);
		return;
	}
	stats_lock(ng);
	ng->stats.checks_ok++;
	stats_event(ng, &ng->stats.last_check, 1, 1, "nginx -t passed");
	stats_unlock(ng);
	if (ng->pass_include_changed && unlink(ng->backup) < 0 &&
	    errno != ENOENT)
		log_warn("nginx", NULL, "cannot remove %s: %s", ng->backup,
			 strerror(errno));
	set_state(ng, NG_RELOADING);
	if (run(ng, "-s reload", reload_done) < 0) {
		pass_keep(ng);
		back_to_idle(ng);
	}
}

/* ---- a pass ----------------------------------------------------------------
 */

struct names {
	char **v;
	size_t n, cap;
};

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = ns->cap = 0;
}

static int names_add(struct names *ns, const char *s)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 256;
		char **nv = realloc(ns->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		ns->v = nv;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strdup(s)))
		return -ENOMEM;
	ns->n++;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Registered domains whose files are in live/, in name order, into ns:
 * those starting with prefix (NULL: all); with cover (sorted, ncover),
 * only the names one label below one of those wildcards.
 */
static int list_served(struct engine_nginx *ng, struct names *ns,
		       const char *prefix, char *const *cover, size_t ncover)
{
	struct store_domain_filter f = {.prefix = prefix};
	struct store_domain *page = malloc(NG_PAGE * sizeof(*page));
	char after[NAME_MAX_LEN + 1] = "", wild[NAME_MAX_LEN + 2];
	const char *w = wild;
	size_t n;
	int rc = -ENOMEM;

	if (!page)
		return rc;
	f.status_mask =
	    ((1u << STORE_DOMAIN__MAX) - 1) & ~(1u << STORE_DOMAIN_REMOVED);
	do {
		f.after = after[0] ? after : NULL;
		rc = store_domain_list(ng->st, &f, page, NG_PAGE, &n);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			const char *name = page[i].name, *dot;

			if (cover) {
				/* cheap before the stat: is its wildcard
				 * one of those served? */
				dot = strchr(name, '.');
				if (name[0] == '*' || !dot)
					continue;
				snprintf(wild, sizeof(wild), "*%s", dot);
				if (!bsearch(&w, cover, ncover, sizeof(*cover),
					     cmp_name))
					continue;
			}
			if (!nginx_live_present(ng->live_dir, name))
				continue;
			if (ng->first_pass && ng->o.chown_keys)
				nginx_key_chown(ng->live_dir, name, ng->o.uid,
						ng->o.gid);
			rc = names_add(ns, name);
		}
		if (rc == 0 && n)
			snprintf(after, sizeof(after), "%s", page[n - 1].name);
	} while (rc == 0 && n == NG_PAGE);
	free(page);
	return rc;
}

/*
 * sni-variable: the names its map needs (nginx_render), none when no
 * wildcard has files (the usual case: one indexed query, nothing else).
 * Otherwise the wildcards with files, then the names they cover that
 * have files of their own; a name the wildcard covers gets its own files
 * once they exist, through a change of the include and a reload.
 */
static int list_map(struct engine_nginx *ng, struct names *ns)
{
	char **wild;
	size_t nw;
	int rc = list_served(ng, ns, "*.", NULL, 0);

	if (rc < 0 || ns->n == 0)
		return rc;
	nw = ns->n;
	wild = malloc(nw * sizeof(*wild));
	if (!wild)
		return -ENOMEM;
	memcpy(wild, ns->v, nw * sizeof(*wild));
	qsort(wild, nw, sizeof(*wild), cmp_name);
	rc = list_served(ng, ns, NULL, wild, nw);
	free(wild);
	return rc;
}

/* Render; NULL (logged) when it cannot. */
static char *render(struct engine_nginx *ng, size_t *len)
{
	struct nginx_render_opts ro = {
	    .strategy = (enum nginx_strategy)ng->o.strategy,
	    .live_dir = ng->live_dir,
	    .listen = ng->listen,
	    .upstream = ng->upstream,
	    .cert_cache = ng->cert_cache,
	};
	struct names ns = {0};
	char *tpl = NULL, *out = NULL, err[400], msg[700];
	size_t tlen;
	int rc;

	if (ng->template_file) {
		rc = fsio_read_all(ng->template_file, NGINX_TEMPLATE_MAX, &tpl,
				   &tlen);
		if (rc < 0) {
			snprintf(msg, sizeof(msg),
				 "cannot read nginx.template %s: %s; nginx "
				 "keeps its configuration",
				 ng->template_file, strerror(-rc));
			goto fail;
		}
		if (strlen(tpl) != tlen) {
			snprintf(msg, sizeof(msg),
				 "nginx.template %s holds a NUL byte; nginx "
				 "keeps its configuration",
				 ng->template_file);
			goto fail;
		}
		ro.template_text = tpl;
	}
	rc = ng->o.strategy == NGINX_SERVER_BLOCKS
		 ? list_served(ng, &ns, NULL, NULL, 0)
		 : list_map(ng, &ns);
	if (rc == 0 && ng->first_pass && ng->o.chown_keys &&
	    ng->o.strategy != NGINX_SERVER_BLOCKS) {
		/* list_map lists only the names its map needs: every other
		 * key written before this start (key_owner set since, a
		 * store filled by another tool) gets its owner too */
		struct names all = {0};

		rc = list_served(ng, &all, NULL, NULL, 0);
		names_free(&all);
	}
	if (rc < 0) {
		snprintf(
		    msg, sizeof(msg), "cannot list the domains for nginx: %s",
		    rc == -ENOMEM ? "out of memory" : store_errmsg(ng->st));
		goto fail;
	}
	ng->first_pass = 0;
	ng->pass_domains = ns.n;
	stats_lock(ng);
	ng->stats.domains = ns.n;
	stats_unlock(ng);
	out = nginx_render(&ro, (const char *const *)ns.v, ns.n, len, err,
			   sizeof(err));
	if (!out) {
		snprintf(msg, sizeof(msg),
			 "nginx include not written: %s: %s; nginx keeps its "
			 "configuration",
			 ng->template_file ? ng->template_file
					   : "built-in template",
			 err);
		goto fail;
	}
	goto out;
fail:
	fail_log(ng, msg);
	pass_events(ng, "nginx-check-failed", msg);
	stats_lock(ng);
	ng->stats.refused++;
	stats_event(ng, &ng->stats.last_refused, 0, 0, msg);
	stats_unlock(ng);
out:
	names_free(&ns);
	free(tpl);
	return out;
}

/* Put text in place as the include, keeping the old one as the backup
 * (a hard link) until the check has spoken. 0 or negative errno. */
static int swap_in(struct engine_nginx *ng, const char *text, size_t len,
		   int had_old)
{
	char *tmp = NULL;
	int rc;

	unlink(ng->backup);
	if (had_old && link(ng->include, ng->backup) < 0)
		return -errno;
	rc = fsio_stage(ng->include, text, len, 0644, &tmp);
	if (rc == 0)
		rc = fsio_commit(tmp, ng->include, 1);
	if (rc < 0)
		unlink(ng->backup);
	return rc;
}

static void on_pass(uv_timer_t *t)
{
	struct engine_nginx *ng = t->data;
	char *text, *cur = NULL;
	size_t len, clen = 0;
	int rc, had_old;

	ng->dirty = 0;
	if (engine_batch_merge(ng->pass, ng->changed) < 0) {
		log_error("nginx", NULL, "out of memory");
		back_to_idle(ng);
		return;
	}
	text = render(ng, &len);
	if (!text) {
		pass_keep(ng);
		back_to_idle(ng);
		return;
	}
	rc = fsio_read_all(ng->include, 64u << 20, &cur, &clen);
	had_old = rc == 0;
	ng->pass_include_changed =
	    !had_old || clen != len || memcmp(cur, text, len) != 0;
	free(cur);
	if (ng->o.strategy == NGINX_SERVER_BLOCKS &&
	    engine_batch_count(ng->pass))
		ng->need_reload = 1;
	if (!ng->pass_include_changed && !ng->need_reload) {
		free(text);
		log_debug("nginx", NULL, "nothing nginx reads changed");
		/* sni-variable: renewed files are read at the next
		 * handshake; check that they are */
		if (ng->o.verify && verify_start(ng))
			return;
		engine_batch_clear(ng->pass);
		back_to_idle(ng);
		return;
	}
	if (ng->pass_include_changed &&
	    (rc = swap_in(ng, text, len, had_old)) < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "cannot write %s: %s", ng->include,
			 strerror(-rc));
		fail_log(ng, msg);
		free(text);
		pass_keep(ng);
		back_to_idle(ng);
		return;
	}
	free(text);
	set_state(ng, NG_CHECKING);
	if (run(ng, "-t -q", check_done) < 0) {
		if (ng->pass_include_changed)
			rollback(ng);
		pass_keep(ng);
		back_to_idle(ng);
	}
}

static void on_safety(uv_timer_t *t)
{
	engine_nginx_poke(t->data);
}

/* ---- the public side -------------------------------------------------------
 */

void engine_nginx_changed(struct engine_nginx *ng, const char *name)
{
	if (!ng)
		return;
	/* the daemon's live/ writer gives the key its owner before the
	 * rename (engine_nginx_key_owner); this covers a writer that could
	 * not, and says why */
	if (ng->o.chown_keys) {
		int rc =
		    nginx_key_chown(ng->live_dir, name, ng->o.uid, ng->o.gid);
		if (rc < 0)
			log_error("nginx", name,
				  "cannot give privkey.pem to uid %u: %s",
				  (unsigned)ng->o.uid, strerror(-rc));
	}
	if (engine_batch_add(ng->changed, name) < 0)
		log_error("nginx", name,
			  "out of memory: loaded at the next "
			  "reload anyway");
	stats_pending(ng);
	ng->dirty = 1;
	kick(ng);
}

void engine_nginx_poke(struct engine_nginx *ng)
{
	if (!ng)
		return;
	ng->dirty = 1;
	kick(ng);
}

unsigned long engine_nginx_reloads(const struct engine_nginx *ng)
{
	return ng ? ng->reloads : 0;
}

void engine_nginx_key_owner(const struct engine_nginx *ng, uid_t *uid,
			    gid_t *gid)
{
	if (!ng || !ng->o.chown_keys)
		return;
	*uid = ng->o.uid;
	*gid = ng->o.gid;
}

void engine_nginx_stats(struct engine_nginx *ng, struct engine_nginx_stats *out)
{
	stats_lock(ng);
	*out = ng->stats;
	stats_unlock(ng);
}

/* `COMMAND -V`, once at start: which nginx (blocking, before the loop
 * runs). 0 or -EINVAL with err set. */
static int probe_version(struct engine_nginx *ng, char *err, size_t errsz)
{
	char *line, out[8192];
	size_t n = strlen(ng->command) + 16, len = 0, r;
	FILE *p;
	int st;

	line = malloc(n);
	if (!line)
		return -ENOMEM;
	snprintf(line, n, "%s -V 2>&1", ng->command);
	p = popen(line, "r");
	free(line);
	if (!p) {
		snprintf(err, errsz, "nginx.nginx: cannot run %s: %s",
			 ng->command, strerror(errno));
		return -EINVAL;
	}
	while (len < sizeof(out) - 1 &&
	       (r = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
		len += r;
	out[len] = '\0';
	while (fread(out, 1, 1, p) == 1) /* the rest: let it exit */
		;
	st = pclose(p);
	if (st != 0 || nginx_version_parse(out, len, &ng->version) < 0) {
		snprintf(err, errsz,
			 "nginx.nginx: `%s -V` did not tell nginx's version "
			 "(exit status %d): %.200s",
			 ng->command, st, out);
		return -EINVAL;
	}
	return 0;
}

static char *dup_or_null(const char *s, int *oom)
{
	char *d;

	if (!s || !*s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

int engine_nginx_new(uv_loop_t *loop, struct store *st,
		     const struct engine_nginx_opts *o,
		     struct engine_nginx **out, char *err, size_t errsz)
{
	struct engine_nginx *ng = calloc(1, sizeof(*ng));
	struct nginx_render_opts ro = {0};
	char dir[4200], *slash;
	int oom = 0, rc = -EINVAL;

	*out = NULL;
	if (!ng)
		return -ENOMEM;
	ng->loop = loop;
	ng->st = st;
	ng->o = *o;
	if (uv_mutex_init(&ng->mu) == 0)
		ng->mu_ok = 1;
	ng->stats.strategy = o->strategy;
	ng->stats.state = ng_state_names[NG_IDLE];
	ng->include = dup_or_null(o->include, &oom);
	ng->template_file = dup_or_null(o->template_file, &oom);
	ng->command = dup_or_null(o->command, &oom);
	ng->listen = dup_or_null(o->listen, &oom);
	ng->upstream = dup_or_null(o->upstream, &oom);
	ng->live_dir = dup_or_null(o->live_dir, &oom);
	ng->verify_host = dup_or_null(o->verify_host, &oom);
	ng->changed = engine_batch_new();
	ng->pass = engine_batch_new();
	ng->told = engine_batch_new();
	if (oom || !ng->changed || !ng->pass || !ng->told) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	if (!ng->include || !ng->command || !ng->listen || !ng->live_dir) {
		snprintf(err, errsz,
			 "nginx mode needs nginx.include, "
			 "nginx.nginx, nginx.listen and live/ "
			 "files (store.write_live)");
		goto fail;
	}
	if (!nginx_path_ok(ng->include) || !nginx_path_ok(o->state_dir)) {
		snprintf(err, errsz,
			 "%s: a path nginx mode uses may hold only letters, "
			 "digits and /._+@=,:-",
			 nginx_path_ok(ng->include) ? o->state_dir
						    : ng->include);
		goto fail;
	}
	snprintf(ng->backup, sizeof(ng->backup), "%s.certherd-old",
		 ng->include);
	snprintf(dir, sizeof(dir), "%s/nginx", o->state_dir);
	snprintf(ng->out_path, sizeof(ng->out_path), "%s/nginx.out", dir);
	/* nginx_path_ok: no quote in it, so single quotes are safe */
	snprintf(ng->qout, sizeof(ng->qout), "'%s'", ng->out_path);
	if ((rc = fsio_mkdirs(dir, 0700)) < 0) {
		snprintf(err, errsz, "cannot create %s: %s", dir,
			 strerror(-rc));
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%s", ng->include);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if ((rc = fsio_mkdirs(dir, 0755)) < 0) {
			snprintf(err, errsz, "cannot create %s: %s", dir,
				 strerror(-rc));
			goto fail;
		}
	}
	rc = probe_version(ng, err, errsz);
	if (rc < 0)
		goto fail;
	ng->cert_cache = ng->version >= NGINX_V_CERT_CACHE;
	if (o->strategy == NGINX_SNI_VARIABLE &&
	    ng->version < NGINX_V_CERT_VARIABLES) {
		snprintf(err, errsz,
			 "nginx.strategy sni-variable needs nginx 1.15.9 or "
			 "later (ssl_certificate with variables); %s is "
			 "%u.%u.%u",
			 ng->command, ng->version / 1000000,
			 ng->version / 1000 % 1000, ng->version % 1000);
		rc = -EINVAL;
		goto fail;
	}
	/* the built-in template is checked now; a file at each pass, so a
	 * fixed one is picked up without a restart */
	if (!ng->template_file) {
		ro.strategy = (enum nginx_strategy)o->strategy;
		ro.live_dir = ng->live_dir;
		ro.listen = ng->listen;
		ro.upstream = ng->upstream;
		if ((rc = nginx_template_check(&ro, err, errsz)) < 0)
			goto fail;
	}
	/* a check a crash interrupted: its verdict is unknown, so the
	 * file before it comes back */
	if (access(ng->backup, F_OK) == 0) {
		log_warn("nginx", NULL,
			 "%s was being checked when certherd stopped: the "
			 "previous one is put back",
			 ng->include);
		if (rename(ng->backup, ng->include) < 0) {
			rc = -errno;
			snprintf(err, errsz, "cannot rename %s to %s: %s",
				 ng->backup, ng->include, strerror(errno));
			goto fail;
		}
	}
	uv_timer_init(loop, &ng->timer);
	uv_timer_init(loop, &ng->safety);
	ng->timer.data = ng->safety.data = ng;
	ng->handles = 2;
	uv_timer_start(&ng->safety, on_safety,
		       (uint64_t)(o->reload_interval_ms > NG_SAFETY_MS
				      ? o->reload_interval_ms
				      : NG_SAFETY_MS),
		       (uint64_t)(o->reload_interval_ms > NG_SAFETY_MS
				      ? o->reload_interval_ms
				      : NG_SAFETY_MS));
	ng->first_pass = 1;
	/* what certificates nginx has is unknown: the first pass reloads */
	ng->need_reload = 1;
	ng->dirty = 1;
	log_info("nginx", NULL,
		 "nginx mode: %s, include %s, nginx %u.%u.%u%s, at most one "
		 "reload per %lld s",
		 nginx_strategy_names[o->strategy], ng->include,
		 ng->version / 1000000, ng->version / 1000 % 1000,
		 ng->version % 1000,
		 ng->cert_cache ? " (ssl_certificate_cache)" : "",
		 (long long)(o->reload_interval_ms / 1000));
	kick(ng);
	*out = ng;
	return 0;
fail:
	engine_nginx_free(ng);
	return rc;
}

static void ng_closed(uv_handle_t *h)
{
	struct engine_nginx *ng = h->data;

	if (--ng->handles == 0 && !ng->verify)
		ng_release(ng);
}

void engine_nginx_free(struct engine_nginx *ng)
{
	if (!ng)
		return;
	ng->freed = 1;
	engine_cmd_free(ng->cmd);
	ng->cmd = NULL;
	engine_batch_free(ng->changed);
	engine_batch_free(ng->pass);
	engine_batch_free(ng->told);
	ng->changed = ng->pass = ng->told = NULL;
	free(ng->include);
	free(ng->template_file);
	free(ng->command);
	free(ng->listen);
	free(ng->upstream);
	free(ng->live_dir);
	/* verify_host stays while a handshake thread may read it: freed
	 * with ng (ng_release) */
	if (!ng->handles) {
		if (!ng->verify)
			ng_release(ng);
		return;
	}
	uv_close((uv_handle_t *)&ng->timer, ng_closed);
	uv_close((uv_handle_t *)&ng->safety, ng_closed);
}
