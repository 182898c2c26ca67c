/*
 * engine_deploy.c — the deploy hook and the webhook, batched: when
 * certificates change, run the operator's command once and POST the
 * webhook once for all the domains that changed within hooks.batch.
 *
 *   IDLE --changed--> WAITING --batch timer--> RUNNING --both hooks
 *    ^                   ^                        |     ended, history
 *    |                   +---- changes pending ---+     written
 *    +----------------------- nothing pending ----+
 *
 * Invariants: at most one run at a time (changes during a run collect in
 * `pending` for the next); WAITING has the batch timer armed and pending
 * non-empty; RUNNING has `run` non-empty and the command and/or webhook
 * (or the history writes after them) in flight. Everything happens on the
 * daemon's loop; nothing here blocks but small file writes and the store.
 *
 * The journal makes delivery survive a stop or a crash (at least once):
 * every new pending name is appended to hooks/pending; a run first writes
 * its names to hooks/running (atomically: it is also the command's names
 * file) and empties hooks/pending; when the run has ended, hooks/running
 * is removed. At start-up both files are read back into pending and
 * delivered after one batch time.
 *
 * A failed run (command exit status not 0, killed at its timeout, webhook
 * failing every attempt) is logged as an error and recorded in each of its
 * domains' history as "deploy-failed"; it is not retried — certbot's rule,
 * and no retry storm against a broken hook. The next change starts a new
 * batch with the new names only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

#define DEPLOY_TIMEOUT_DEFAULT_MS (5 * 60 * 1000)
#define DEPLOY_JOURNAL_MAX	  (64u << 20) /* 250,000 names of 253 bytes */
#define DEPLOY_EVENTS_SLICE                                                    \
	64 /* history writes per loop turn: each is a                          \
	      durable transaction, 10,000 in one go would                      \
	      hold the loop for seconds */

enum dp_state { DP_IDLE = 0, DP_WAITING, DP_RUNNING, DP__MAX };
static const char *const dp_state_names[DP__MAX] = {"idle", "waiting",
						    "running"};

struct engine_deploy {
	uv_loop_t *loop;
	struct store *st;
	char *command, *webhook_url, *live_dir;
	int64_t batch_ms, timeout_ms;
	char pending_path[4200], running_path[4200];
	int journal_fd;
	struct engine_batch *pending; /* for the next run */
	struct engine_batch *run;     /* the run in progress */
	uint64_t first_change;	      /* loop time of the oldest pending */
	enum dp_state state;
	uv_timer_t batch_timer, events_timer, flush_timer;
	int handles;		/* timers open; freed at 0 */
	struct engine_cmd *cmd; /* running command, else NULL */
	struct engine_webhook *wh;
	int cmd_busy, wh_busy;
	char cmd_fail[200], wh_fail[300]; /* "" = that hook did not fail */
	size_t ev_next;			  /* history writes done for run */
	uint64_t run_started;
	int stopping;
	int abandoned; /* the stop's deadline passed: the run's
			  names stay in hooks/running */
	void (*flush_done)(void *ctx);
	void *flush_ctx;
};

static void set_state(struct engine_deploy *dp, enum dp_state s)
{
	if (dp->state != s)
		log_debug("deploy", NULL, "%s -> %s", dp_state_names[dp->state],
			  dp_state_names[s]);
	dp->state = s;
}

static void start_run(struct engine_deploy *dp);

static void on_batch(uv_timer_t *t)
{
	start_run(t->data);
}

/* Arm the batch timer for the oldest pending change. */
static void wait_batch(struct engine_deploy *dp)
{
	uint64_t now = uv_now(dp->loop),
		 at = dp->first_change + (uint64_t)dp->batch_ms;

	set_state(dp, DP_WAITING);
	uv_timer_start(&dp->batch_timer, on_batch, at > now ? at - now : 0, 0);
}

/* ---- the end of a run ------------------------------------------------------
 */

static void run_finished(struct engine_deploy *dp)
{
	if (unlink(dp->running_path) < 0 && errno != ENOENT)
		log_warn("deploy", NULL,
			 "cannot remove %s: %s (its names are "
			 "delivered again at the next start)",
			 dp->running_path, strerror(errno));
	engine_batch_clear(dp->run);
	if (dp->stopping) {
		void (*done)(void *) = dp->flush_done;

		set_state(dp, DP_IDLE);
		dp->flush_done = NULL;
		uv_timer_stop(&dp->flush_timer);
		if (done)
			done(dp->flush_ctx);
		return;
	}
	if (engine_batch_count(dp->pending))
		wait_batch(dp);
	else
		set_state(dp, DP_IDLE);
}

/* Record a failed run in each of its domains' history, a slice per loop
 * turn. */
static void on_events(uv_timer_t *t)
{
	struct engine_deploy *dp = t->data;
	size_t n = engine_batch_count(dp->run),
	       end = dp->ev_next + DEPLOY_EVENTS_SLICE;
	int64_t now = clock_wall_ms();
	char detail[512];

	snprintf(detail, sizeof(detail), "%s%s%s", dp->cmd_fail,
		 dp->cmd_fail[0] && dp->wh_fail[0] ? "; " : "", dp->wh_fail);
	for (; dp->ev_next < n && dp->ev_next < end; dp->ev_next++) {
		const char *name = engine_batch_name(dp->run, dp->ev_next);

		if (store_event_append(dp->st, name, now, "deploy-failed",
				       detail) < 0 &&
		    dp->ev_next == 0)
			log_warn("deploy", name,
				 "cannot record the failure in "
				 "the history: %s",
				 store_errmsg(dp->st));
	}
	if (dp->ev_next < n) {
		uv_timer_start(&dp->events_timer, on_events, 0, 0);
		return;
	}
	run_finished(dp);
}

/* Both hooks have ended: log the outcome, write history, move on. */
static void run_ended(struct engine_deploy *dp)
{
	size_t n = engine_batch_count(dp->run);
	uint64_t took = uv_now(dp->loop) - dp->run_started;

	if (dp->cmd_busy || dp->wh_busy || dp->abandoned)
		return;
	if (!dp->cmd_fail[0] && !dp->wh_fail[0]) {
		log_info("deploy", NULL,
			 "hooks done for %zu domain%s in %llu ms", n,
			 n == 1 ? "" : "s", (unsigned long long)took);
		run_finished(dp);
		return;
	}
	log_error("deploy", n == 1 ? engine_batch_name(dp->run, 0) : NULL,
		  "hooks failed for %zu domain%s (first %s): %s%s%s; not "
		  "retried, recorded in each domain's history",
		  n, n == 1 ? "" : "s", engine_batch_name(dp->run, 0),
		  dp->cmd_fail, dp->cmd_fail[0] && dp->wh_fail[0] ? "; " : "",
		  dp->wh_fail);
	dp->ev_next = 0;
	uv_timer_start(&dp->events_timer, on_events, 0, 0);
}

static void cmd_done(void *ctx, const struct engine_cmd_result *r)
{
	struct engine_deploy *dp = ctx;

	dp->cmd = NULL; /* released by engine_cmd after this call */
	dp->cmd_busy = 0;
	if (r->spawn_error)
		snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
			 "deploy hook could not start: %s",
			 uv_strerror(r->spawn_error));
	else if (r->timed_out)
		snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
			 "deploy hook killed after its timeout of %lld s",
			 (long long)(dp->timeout_ms / 1000));
	else if (r->term_signal)
		snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
			 "deploy hook killed by signal %d", r->term_signal);
	else if (r->exit_status != 0)
		snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
			 "deploy hook exited with status %lld",
			 (long long)r->exit_status);
	else
		log_info("deploy", NULL, "deploy hook exited with status 0");
	run_ended(dp);
}

static void wh_done(void *ctx, int ok, unsigned attempts, const char *why)
{
	struct engine_deploy *dp = ctx;

	dp->wh_busy = 0;
	if (ok)
		log_info("deploy", NULL, "webhook accepted (attempt %u)",
			 attempts);
	else
		snprintf(dp->wh_fail, sizeof(dp->wh_fail),
			 "webhook failed after %u attempt%s: %.240s", attempts,
			 attempts == 1 ? "" : "s", why);
	run_ended(dp);
}

/* ---- starting a run -------------------------------------------------------
 */

static int start_cmd(struct engine_deploy *dp, size_t n)
{
	char count[48], file[4300], live[4200];
	const char *env[4] = {count, file, NULL, NULL};
	char err[256];
	int fd;

	snprintf(count, sizeof(count), "CERTHERD_DOMAIN_COUNT=%zu", n);
	snprintf(file, sizeof(file), "CERTHERD_DOMAINS_FILE=%s",
		 dp->running_path);
	if (dp->live_dir) {
		snprintf(live, sizeof(live), "CERTHERD_LIVE_DIR=%s",
			 dp->live_dir);
		env[2] = live;
	}
	/* stdin: the same names, for `while read name` */
	fd = open(dp->running_path, O_RDONLY | O_CLOEXEC);
	dp->cmd_busy = 1;
	dp->cmd =
	    engine_cmd_start(dp->loop, dp->command, env, fd, dp->timeout_ms,
			     "deploy-hook", cmd_done, dp, err, sizeof(err));
	if (fd >= 0)
		close(fd); /* the child has its own copy */
	if (!dp->cmd) {
		dp->cmd_busy = 0;
		snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
			 "deploy hook could not start: %.160s", err);
		return -1;
	}
	return 0;
}

static void start_webhook(struct engine_deploy *dp, size_t n)
{
	struct engine_batch_item *items = calloc(n ? n : 1, sizeof(*items));
	struct store_cert_info *info = calloc(n ? n : 1, sizeof(*info));
	char *body = NULL;
	size_t len = 0;

	if (items && info) {
		for (size_t i = 0; i < n; i++) {
			struct store_cert c = {0};

			items[i].name = engine_batch_name(dp->run, i);
			items[i].not_after_ms = -1;
			if (store_cert_current(dp->st, items[i].name, &c) ==
			    0) {
				info[i] = c.info;
				items[i].serial = info[i].serial;
				items[i].not_after_ms = info[i].not_after_ms;
			}
			store_cert_clear(&c);
		}
		body = engine_batch_json(items, n, dp->live_dir,
					 clock_wall_ms(), &len);
	}
	free(items);
	free(info);
	if (!body) {
		snprintf(dp->wh_fail, sizeof(dp->wh_fail),
			 "webhook not sent: out of memory");
		return;
	}
	dp->wh_busy = 1;
	/* may call wh_done at once (cannot send): run_ended copes */
	if (engine_webhook_post(dp->wh, body, len, wh_done, dp) < 0) {
		dp->wh_busy = 0;
		snprintf(dp->wh_fail, sizeof(dp->wh_fail),
			 "webhook not sent: one is still in flight");
	}
}

/* Drop names whose domain has no current certificate any more (removed
 * since it changed, or a journal entry from before a reset). */
static void keep_current(struct engine_deploy *dp)
{
	struct engine_batch *b = engine_batch_new();
	size_t n = engine_batch_count(dp->run);

	if (!b)
		return; /* deliver them all rather than none */
	for (size_t i = 0; i < n; i++) {
		const char *name = engine_batch_name(dp->run, i);
		struct store_domain dom;

		if (store_domain_get(dp->st, name, &dom) < 0 ||
		    dom.status == STORE_DOMAIN_REMOVED) {
			log_info("deploy", name,
				 "not delivered: the domain was "
				 "removed");
			continue;
		}
		if (engine_batch_add(b, name) < 0) {
			engine_batch_free(b);
			return;
		}
	}
	engine_batch_clear(dp->run);
	engine_batch_merge(dp->run, b);
	engine_batch_free(b);
}

static void start_run(struct engine_deploy *dp)
{
	size_t n, len = 0;
	char *lines;
	int rc;

	uv_timer_stop(&dp->batch_timer);
	if (engine_batch_merge(dp->run, dp->pending) < 0) {
		log_error("deploy", NULL,
			  "out of memory starting the hooks; "
			  "trying again after one batch time");
		dp->first_change = uv_now(dp->loop);
		wait_batch(dp);
		return;
	}
	keep_current(dp);
	set_state(dp, DP_RUNNING);
	dp->run_started = uv_now(dp->loop);
	dp->cmd_fail[0] = dp->wh_fail[0] = '\0';
	n = engine_batch_count(dp->run);
	/* the run's names, durable before the pending journal is emptied */
	lines = engine_batch_lines(dp->run, &len);
	rc = lines ? fsio_write_atomic(dp->running_path, lines, len, 0600)
		   : -ENOMEM;
	free(lines);
	if (rc < 0) {
		log_error("deploy", NULL, "cannot write %s: %s",
			  dp->running_path, strerror(-rc));
		if (dp->command)
			snprintf(dp->cmd_fail, sizeof(dp->cmd_fail),
				 "deploy hook not run: cannot write its names "
				 "file (%s)",
				 strerror(-rc));
	} else if (dp->journal_fd >= 0 && ftruncate(dp->journal_fd, 0) < 0) {
		log_warn("deploy", NULL,
			 "cannot empty %s: %s (its names are "
			 "delivered again at the next start)",
			 dp->pending_path, strerror(errno));
	}
	if (!n) {
		run_finished(dp);
		return;
	}
	log_info("deploy", n == 1 ? engine_batch_name(dp->run, 0) : NULL,
		 "running hooks for %zu changed domain%s", n,
		 n == 1 ? "" : "s");
	if (dp->command && rc == 0)
		start_cmd(dp, n);
	if (dp->wh)
		start_webhook(dp, n);
	run_ended(dp); /* returns at once while a hook is busy */
}

/* ---- the public side ------------------------------------------------------
 */

void engine_deploy_changed(struct engine_deploy *dp, const char *name)
{
	char line[NAME_MAX_LEN + 2];
	int rc, len;

	if (!dp)
		return;
	rc = engine_batch_add(dp->pending, name);
	if (rc < 0) {
		log_error("deploy", name, "cannot queue for the hooks: %s",
			  strerror(-rc));
		return;
	}
	if (rc == 0)
		return; /* already in the next batch */
	len = snprintf(line, sizeof(line), "%s\n", name);
	if (dp->journal_fd >= 0 &&
	    write(dp->journal_fd, line, (size_t)len) != len)
		log_warn("deploy", name,
			 "cannot append to %s: %s (a crash "
			 "before the next run would not deliver it)",
			 dp->pending_path, strerror(errno));
	if (engine_batch_count(dp->pending) == 1)
		dp->first_change = uv_now(dp->loop);
	if (dp->state == DP_IDLE && !dp->stopping)
		wait_batch(dp);
}

static void on_flush_deadline(uv_timer_t *t)
{
	struct engine_deploy *dp = t->data;
	void (*done)(void *) = dp->flush_done;

	log_warn("deploy", NULL,
		 "stopping with the hooks still running for "
		 "%zu domain%s: delivered again at the next start",
		 engine_batch_count(dp->run),
		 engine_batch_count(dp->run) == 1 ? "" : "s");
	dp->abandoned = 1;
	engine_cmd_kill(dp->cmd);
	dp->flush_done = NULL;
	if (done)
		done(dp->flush_ctx);
}

int engine_deploy_flush(struct engine_deploy *dp, int64_t max_ms,
			void (*done)(void *ctx), void *ctx)
{
	if (!dp || dp->stopping)
		return 0;
	dp->stopping = 1;
	if (dp->state == DP_IDLE)
		return 0;
	dp->flush_done = done;
	dp->flush_ctx = ctx;
	if (dp->state == DP_WAITING) {
		size_t n = engine_batch_count(dp->pending);

		log_info("deploy", NULL,
			 "stopping: running the pending hooks "
			 "for %zu domain%s now",
			 n, n == 1 ? "" : "s");
		start_run(dp);
	}
	if (dp->state == DP_IDLE) { /* ended at once */
		dp->flush_done = NULL;
		return 0;
	}
	uv_timer_start(&dp->flush_timer, on_flush_deadline,
		       (uint64_t)(max_ms > 0 ? max_ms : 0), 0);
	return 1;
}

/* ---- set-up and release ---------------------------------------------------
 */

static void dp_closed(uv_handle_t *h)
{
	struct engine_deploy *dp = h->data;

	if (--dp->handles == 0)
		free(dp);
}

/* Names a previous process left undelivered: running, then pending. */
static int journal_load(struct engine_deploy *dp, char *err, size_t errsz)
{
	const char *paths[2] = {dp->running_path, dp->pending_path};
	char *text, *lines;
	size_t len, bad;
	int rc;

	for (int i = 0; i < 2; i++) {
		rc = fsio_read_all(paths[i], DEPLOY_JOURNAL_MAX, &text, &len);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			snprintf(err, errsz, "cannot read %s: %s", paths[i],
				 strerror(-rc));
			return rc;
		}
		rc = engine_batch_parse(dp->pending, text, len, &bad);
		free(text);
		if (rc < 0) {
			snprintf(err, errsz, "out of memory");
			return rc;
		}
		if (bad)
			log_warn("deploy", NULL,
				 "%s: %zu lines are not domain "
				 "names, skipped",
				 paths[i], bad);
	}
	/* one clean journal, then the running file can go */
	lines = engine_batch_lines(dp->pending, &len);
	rc = lines ? fsio_write_atomic(dp->pending_path, lines, len, 0600)
		   : -ENOMEM;
	free(lines);
	if (rc < 0) {
		snprintf(err, errsz, "cannot write %s: %s", dp->pending_path,
			 strerror(-rc));
		return rc;
	}
	unlink(dp->running_path);
	return 0;
}

int engine_deploy_new(uv_loop_t *loop, struct store *st,
		      const struct engine_deploy_opts *o,
		      struct engine_deploy **out, char *err, size_t errsz)
{
	struct engine_deploy *dp;
	char dir[4100];
	int rc = -ENOMEM;

	*out = NULL;
	if ((!o->command || !*o->command) && (!o->webhook || !*o->webhook))
		return 0;
	dp = calloc(1, sizeof(*dp));
	if (!dp) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	dp->loop = loop;
	dp->st = st;
	dp->journal_fd = -1;
	dp->batch_ms = o->batch_ms > 0 ? o->batch_ms : 0;
	dp->timeout_ms =
	    o->timeout_ms > 0 ? o->timeout_ms : DEPLOY_TIMEOUT_DEFAULT_MS;
	if (o->command && *o->command && !(dp->command = strdup(o->command)))
		goto fail;
	if (o->webhook && *o->webhook &&
	    (!(dp->webhook_url = strdup(o->webhook)) ||
	     !(dp->wh = engine_webhook_new(loop, o->webhook))))
		goto fail;
	if (o->live_dir && !(dp->live_dir = strdup(o->live_dir)))
		goto fail;
	dp->pending = engine_batch_new();
	dp->run = engine_batch_new();
	if (!dp->pending || !dp->run)
		goto fail;
	snprintf(dir, sizeof(dir), "%s/hooks", o->state_dir);
	snprintf(dp->pending_path, sizeof(dp->pending_path), "%s/pending", dir);
	snprintf(dp->running_path, sizeof(dp->running_path), "%s/running", dir);
	rc = fsio_mkdirs(dir, 0700);
	if (rc < 0) {
		snprintf(err, errsz, "cannot create %s: %s", dir,
			 strerror(-rc));
		goto fail_msg;
	}
	rc = journal_load(dp, err, errsz);
	if (rc < 0)
		goto fail_msg;
	dp->journal_fd = open(dp->pending_path,
			      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (dp->journal_fd < 0) {
		rc = -errno;
		snprintf(err, errsz, "cannot open %s: %s", dp->pending_path,
			 strerror(errno));
		goto fail_msg;
	}
	uv_timer_init(loop, &dp->batch_timer);
	uv_timer_init(loop, &dp->events_timer);
	uv_timer_init(loop, &dp->flush_timer);
	dp->batch_timer.data = dp->events_timer.data = dp->flush_timer.data =
	    dp;
	dp->handles = 3;
	if (engine_batch_count(dp->pending)) {
		size_t n = engine_batch_count(dp->pending);

		log_info("deploy", NULL,
			 "%zu changed domain%s not delivered "
			 "before the last stop: the hooks run for them in "
			 "%lld ms",
			 n, n == 1 ? "" : "s", (long long)dp->batch_ms);
		dp->first_change = uv_now(loop);
		wait_batch(dp);
	}
	*out = dp;
	return 0;
fail:
	snprintf(err, errsz, "out of memory");
fail_msg:
	engine_deploy_free(dp);
	return rc;
}

void engine_deploy_free(struct engine_deploy *dp)
{
	if (!dp)
		return;
	engine_cmd_free(dp->cmd); /* no callback: SIGKILL to its group */
	dp->cmd = NULL;
	engine_webhook_free(dp->wh);
	dp->wh = NULL;
	if (dp->journal_fd >= 0)
		close(dp->journal_fd);
	engine_batch_free(dp->pending);
	engine_batch_free(dp->run);
	free(dp->command);
	free(dp->webhook_url);
	free(dp->live_dir);
	dp->pending = dp->run = NULL;
	if (!dp->handles) {
		free(dp);
		return;
	}
	uv_close((uv_handle_t *)&dp->batch_timer, dp_closed);
	uv_close((uv_handle_t *)&dp->events_timer, dp_closed);
	uv_close((uv_handle_t *)&dp->flush_timer, dp_closed);
}
