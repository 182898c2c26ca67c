/*
 * engine_cmd.c — run one shell command from the daemon's loop without
 * blocking it: uv_spawn, its stdout and stderr read through pipes and
 * logged line by line, a timeout that kills it, and one callback at the
 * end. Used for the deploy hook (engine_deploy.c).
 *
 *   RUNNING --exit--> DRAINING --both pipes at EOF, or 1 s--> DONE
 *      |                                                  (cb, then the
 *      +--timeout: SIGTERM to the group, 5 s later SIGKILL    handles close
 *                                                          and it is freed)
 *
 * The command runs in a session (so a process group) of its own: `sh -c`
 * forks whatever the operator wrote, and a timeout must stop all of it,
 * not only the shell. Its output ends when the shell has exited and both
 * pipes reached EOF; a background child still holding a pipe open gets
 * one second after the exit, then we stop reading.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/util.h"

extern char **environ;

#define CMD_LINE_MAX 1000 /* bytes of one logged line */
#define CMD_LINES_MAX                                                          \
	200 /* lines logged per run: a chatty hook must not                    \
	       flood the daemon's log */
#define CMD_KILL_GRACE_MS 5000
#define CMD_EOF_GRACE_MS  1000

struct stream {
	struct engine_cmd *c;
	uv_pipe_t pipe;
	int is_err;   /* stderr: logged at warn */
	int reading;  /* not yet at EOF */
	int skipping; /* the current line was cut: drop until '\n' */
	size_t len;
	char line[CMD_LINE_MAX + 1];
	char rbuf[4096];
};

enum cmd_phase { PH_RUNNING = 0, PH_TERM_SENT, PH_DRAINING, PH_DONE };

struct engine_cmd {
	uv_process_t proc;
	uv_timer_t timer; /* timeout, then kill grace, then EOF grace */
	struct stream out, err;
	int handles; /* open handles; the object is freed at 0 */
	enum cmd_phase phase;
	int exited;
	int cancelled; /* engine_cmd_free: no callback */
	int pid;
	unsigned lines, dropped;
	struct engine_cmd_result res;
	char sub[32];
	engine_cmd_cb cb;
	void *ctx;
};

static void release(struct engine_cmd *c)
{
	if (--c->handles == 0)
		free(c);
}

static void cmd_closed(uv_handle_t *h)
{
	release(h->data);
}

static void pipe_closed(uv_handle_t *h)
{
	release(((struct stream *)h->data)->c);
}

static void emit(struct stream *s)
{
	struct engine_cmd *c = s->c;

	if (c->lines >= CMD_LINES_MAX) {
		c->dropped++;
		return;
	}
	c->lines++;
	s->line[s->len] = '\0';
	/* the log escapes control characters and quotes: a line is one log
	 * line whatever the command printed */
	if (s->is_err)
		log_warn(c->sub, NULL, "stderr: %s%s", s->line,
			 s->skipping ? " [cut]" : "");
	else
		log_info(c->sub, NULL, "stdout: %s%s", s->line,
			 s->skipping ? " [cut]" : "");
	s->len = 0;
}

static void feed(struct stream *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			if (s->skipping)
				s->skipping = 0;
			else
				emit(s);
			continue;
		}
		if (s->skipping)
			continue;
		s->line[s->len++] = p[i];
		if (s->len == CMD_LINE_MAX) {
			s->skipping = 1; /* log what we have, drop the rest */
			emit(s);
		}
	}
}

static void finish(struct engine_cmd *c)
{
	if (c->phase == PH_DONE)
		return;
	c->phase = PH_DONE;
	uv_timer_stop(&c->timer);
	/* a last line without '\n' */
	if (c->out.len)
		emit(&c->out);
	if (c->err.len)
		emit(&c->err);
	if (c->dropped)
		log_warn(c->sub, NULL, "%u more lines of output not logged",
			 c->dropped);
	if (!c->cancelled && c->cb)
		c->cb(c->ctx, &c->res);
	/* the process handle too: closing it does not signal the process */
	uv_close((uv_handle_t *)&c->out.pipe, pipe_closed);
	uv_close((uv_handle_t *)&c->err.pipe, pipe_closed);
	uv_close((uv_handle_t *)&c->timer, cmd_closed);
	uv_close((uv_handle_t *)&c->proc, cmd_closed);
}

static void stop_reading(struct stream *s)
{
	if (s->reading) {
		s->reading = 0;
		uv_read_stop((uv_stream_t *)&s->pipe);
	}
}

static void maybe_finish(struct engine_cmd *c)
{
	if (c->exited && !c->out.reading && !c->err.reading)
		finish(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct stream *s = h->data;

	(void)hint;
	buf->base = s->rbuf;
	buf->len = sizeof(s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct stream *s = st->data;

	if (n > 0) {
		feed(s, buf->base, (size_t)n);
		return;
	}
	if (n < 0) { /* UV_EOF or a read error: either way, no more output */
		stop_reading(s);
		maybe_finish(s->c);
	}
}

static void on_timer(uv_timer_t *t);

/* SIGTERM to the whole group now, SIGKILL after the grace. */
static void terminate(struct engine_cmd *c, const char *why)
{
	log_warn(c->sub, NULL, "%s: stopping it (SIGTERM to its process group)",
		 why);
	if (c->pid > 0)
		kill(-c->pid, SIGTERM);
	c->phase = PH_TERM_SENT;
	uv_timer_start(&c->timer, on_timer, CMD_KILL_GRACE_MS, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct engine_cmd *c = t->data;

	switch (c->phase) {
	case PH_RUNNING:
		c->res.timed_out = 1;
		terminate(c, "command still running at its timeout");
		break;
	case PH_TERM_SENT:
		log_warn(c->sub, NULL, "command ignored SIGTERM: SIGKILL");
		if (c->pid > 0)
			kill(-c->pid, SIGKILL);
		break;
	case PH_DRAINING:
		/* exited, but a background child holds a pipe open */
		stop_reading(&c->out);
		stop_reading(&c->err);
		finish(c);
		break;
	case PH_DONE:
		break;
	}
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
	struct engine_cmd *c = p->data;

	c->exited = 1;
	c->res.exit_status = status;
	c->res.term_signal = sig;
	c->phase = PH_DRAINING;
	uv_timer_start(&c->timer, on_timer, CMD_EOF_GRACE_MS, 0);
	maybe_finish(c);
}

/* The daemon's environment without the keys env sets, then env. */
static char **build_env(const char *const *env)
{
	size_t n = 0, m = 0, k = 0;
	char **out;

	while (environ && environ[n])
		n++;
	while (env && env[m])
		m++;
	out = calloc(n + m + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int dup = 0;

		for (size_t j = 0; j < m && !dup; j++)
			dup = strncmp(env[j], environ[i], kl) == 0 &&
			      env[j][kl] == '=';
		if (!dup)
			out[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		out[k++] = (char *)env[j];
	return out;
}

struct engine_cmd *engine_cmd_start(uv_loop_t *loop, const char *command,
				    const char *const *env, int stdin_fd,
				    int64_t timeout_ms, const char *sub,
				    engine_cmd_cb cb, void *ctx, char *err,
				    size_t errsz)
{
	struct engine_cmd *c = calloc(1, sizeof(*c));
	char *args[] = {"sh", "-c", (char *)command, NULL};
	uv_process_options_t po = {0};
	uv_stdio_container_t io[3];
	char **envp = NULL;
	int rc;

	if (!c || !(envp = build_env(env))) {
		snprintf(err, errsz, "out of memory");
		free(c);
		return NULL;
	}
	snprintf(c->sub, sizeof(c->sub), "%s", sub ? sub : "cmd");
	c->cb = cb;
	c->ctx = ctx;
	c->out.c = c->err.c = c;
	c->err.is_err = 1;
	uv_pipe_init(loop, &c->out.pipe, 0);
	uv_pipe_init(loop, &c->err.pipe, 0);
	uv_timer_init(loop, &c->timer);
	c->out.pipe.data = &c->out;
	c->err.pipe.data = &c->err;
	c->timer.data = c;
	c->proc.data = c;
	c->handles = 4; /* uv_spawn initializes proc even when it fails */

	io[0].flags = stdin_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
	io[0].data.fd = stdin_fd;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&c->out.pipe;
	io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[2].data.stream = (uv_stream_t *)&c->err.pipe;
	po.file = "/bin/sh";
	po.args = args;
	po.env = envp;
	po.exit_cb = on_proc_exit;
	po.stdio = io;
	po.stdio_count = 3;
	/* setsid(): its own process group, killed as a whole */
	po.flags = UV_PROCESS_DETACHED;
	rc = uv_spawn(loop, &c->proc, &po);
	free(envp);
	if (rc < 0) {
		/* reported through cb like any other end: one path */
		c->res.spawn_error = rc;
		c->exited = 1;
		c->phase = PH_DRAINING;
		uv_timer_start(&c->timer, on_timer, 0, 0);
		return c;
	}
	c->pid = c->proc.pid;
	c->out.reading =
	    uv_read_start((uv_stream_t *)&c->out.pipe, on_alloc, on_read) == 0;
	c->err.reading =
	    uv_read_start((uv_stream_t *)&c->err.pipe, on_alloc, on_read) == 0;
	uv_timer_start(&c->timer, on_timer,
		       (uint64_t)(timeout_ms > 0 ? timeout_ms : 1), 0);
	return c;
}

void engine_cmd_kill(struct engine_cmd *c)
{
	if (!c || c->phase != PH_RUNNING)
		return;
	uv_timer_stop(&c->timer);
	terminate(c, "the daemon is stopping and the command still runs");
}

void engine_cmd_free(struct engine_cmd *c)
{
	if (!c)
		return;
	c->cancelled = 1;
	if (!c->exited && c->pid > 0)
		kill(-c->pid, SIGKILL);
	stop_reading(&c->out);
	stop_reading(&c->err);
	finish(c);
}
