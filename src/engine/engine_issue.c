/*
 * engine_issue.c — obtain one certificate for each of many names, with up
 * to `concurrency` orders in flight, from one thread.
 *
 * One run: set up the account (client task), then keep the pipeline full.
 * Each name is a job:
 *
 *   KEYGEN (thread pool: key + CSR) -> ORDER (loop: acme_order machine)
 *     -> WRITE (thread pool: live/<name>/ files, fsync) -> result
 *
 * Key generation (RSA is slow) and fsync-heavy writes run on libuv's
 * thread pool so the loop never stalls the other orders. A failed name
 * records its reason and frees its slot; it never delays the others.
 *
 * With opts->dns01 every name is validated by DNS-01 (engine_dns01.c):
 * no HTTP-01 responder is started, and the run ends only once every TXT
 * record it added has been removed again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

struct run;

struct job {
	struct run *run;
	size_t idx;
	EVP_PKEY *key;
	unsigned char *csr;
	size_t csr_len;
	struct acme_order *order;
	struct engine_task task;
	uv_work_t work;
	char *chain;     /* downloaded PEM chain, for WRITE */
	int rc;          /* result of the thread-pool stage */
	char why[4400];
};

struct run {
	struct engine_session s;
	const char *const *names;
	size_t n;
	const struct engine_issue_opts *opts;
	struct engine_chall *chall;
	struct engine_dns01 *dns01; /* DNS-01 publisher, or NULL */
	uv_timer_t cleanup;          /* waits for the last TXT removals */
	int cleanup_on;
	size_t next, in_flight, ok, failed;
	struct engine_issue_result *results;
	uv_timer_t progress;
	int progress_on;
};

static void start_more(struct run *r);
static void cleanup_wait(uv_timer_t *t);

static void set_result(struct run *r, size_t idx, const char *error)
{
	struct engine_issue_result *res = &r->results[idx];

	res->ok = error == NULL;
	res->error = error ? strdup(error) : NULL;
	if (error) {
		r->failed++;
		log_warn("issue", r->names[idx], "certificate not obtained: %s",
			 error);
	} else {
		r->ok++;
		log_info("issue", r->names[idx], "certificate obtained");
	}
}

static void job_free(struct job *j)
{
	acme_order_free(j->order);
	EVP_PKEY_free(j->key);
	free(j->csr);
	free(j->chain);
	free(j);
}

static void job_closed(struct engine_task *t)
{
	struct job *j = t->ctx;
	struct run *r = j->run;

	job_free(j);
	r->in_flight--;
	start_more(r);
}

static void job_finish(struct job *j, const char *error)
{
	set_result(j->run, j->idx, error);
	engine_task_close(&j->task, job_closed);
}

/* ---- WRITE: live/<name>/{cert,chain,fullchain,privkey}.pem ------------ */

/* The CA could hand back a certificate for another key (a bug, or an
 * attacker): store_live_write refuses a pair nginx would refuse, and
 * stages all four files before renaming any. */
static int write_live(const char *out_dir, const char *name, EVP_PKEY *key,
		      const char *chain, char *why, size_t whysz)
{
	char dir[4096];
	size_t pem_len;
	char *pem = key_to_pem(key, &pem_len);
	int rc = -ENOMEM;

	snprintf(dir, sizeof(dir), "%s/live", out_dir);
	if (pem)
		rc = store_live_write(dir, name, chain, pem);
	if (rc == -EINVAL)
		snprintf(why, whysz,
			 "the CA's certificate for %s does not parse or does "
			 "not match its key",
			 name);
	else if (rc < 0)
		snprintf(why, whysz, "cannot write %s/%s: %s", dir, name,
			 strerror(-rc));
	if (pem)
		OPENSSL_cleanse(pem, pem_len);
	free(pem);
	return rc;
}

static void write_work(uv_work_t *w)
{
	struct job *j = w->data;

	j->rc = write_live(j->run->opts->acct.out_dir, j->run->names[j->idx], j->key,
			   j->chain, j->why, sizeof(j->why));
}

static void write_done(uv_work_t *w, int status)
{
	struct job *j = w->data;

	job_finish(j, status < 0 ? "cancelled" : j->rc < 0 ? j->why : NULL);
}

/* ---- ORDER --------------------------------------------------------------- */

static void order_done(struct engine_task *t, enum acme_step s)
{
	struct job *j = t->ctx;
	size_t len;
	const char *pem;
	char buf[1024];

	if (s != ACME_STEP_DONE) {
		job_finish(j, acme_error_str(acme_order_error(j->order), buf,
					     sizeof(buf)));
		return;
	}
	pem = acme_order_cert(j->order, &len);
	j->chain = pem ? strndup(pem, len) : NULL;
	if (!j->chain) {
		job_finish(j, "out of memory");
		return;
	}
	j->work.data = j;
	if (uv_queue_work(&j->run->s.loop, &j->work, write_work, write_done) < 0)
		job_finish(j, "cannot queue the file write");
}

/* ---- DNS-01: a publication per job ----------------------------------------- */

static void dns01_ready(void *ctx, const char *token, int rc, const char *why)
{
	struct job *j = ctx;

	acme_order_chall_ready(j->order, token, rc, why, clock_wall_ms());
	engine_task_kick(&j->task);
}

static int dns01_publish(void *ctx, enum acme_chall_type type,
			 const char *domain, const char *token,
			 const char *key_auth)
{
	struct job *j = ctx;

	if (type != ACME_CHALL_DNS01)
		return -EINVAL;
	return engine_dns01_publish(j->run->dns01, domain, token, key_auth,
				    dns01_ready, j);
}

static void dns01_unpublish(void *ctx, enum acme_chall_type type,
			    const char *domain, const char *token)
{
	struct job *j = ctx;

	(void)type;
	engine_dns01_unpublish(j->run->dns01, domain, token);
}

/* ---- KEYGEN ---------------------------------------------------------------- */

static void keygen_work(uv_work_t *w)
{
	struct job *j = w->data;
	const char *name = j->run->names[j->idx];

	j->key = key_generate(j->run->opts->key_type);
	j->rc = j->key ? csr_create(j->key, &name, 1, &j->csr, &j->csr_len)
		       : -EIO;
}

static void keygen_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct run *r = j->run;
	struct acme_challenge_hooks hooks =
	    r->dns01 ? (struct acme_challenge_hooks){dns01_publish,
						     dns01_unpublish, j}
		     : engine_chall_hooks(r->chall);
	const char *name = r->names[j->idx];
	struct acme_order_opts oo = {
		.names = &name,
		.n_names = 1,
		.csr_der = j->csr,
		.csr_len = j->csr_len,
		.chall = r->dns01 ? ACME_CHALL_DNS01 : ACME_CHALL_HTTP01,
		.profile = r->opts->profile,
		.preferred_issuer = r->opts->preferred_issuer,
	};

	j->task.ctx = j;
	if (status < 0 || j->rc < 0) {
		job_finish(j, "cannot generate the key or CSR");
		return;
	}
	j->order = acme_order_new(r->s.client, &oo, &hooks);
	if (!j->order) {
		job_finish(j, "cannot create the order (out of memory?)");
		return;
	}
	engine_task_order(&j->task, j->order);
	j->task.done = order_done;
	if (engine_task_start(&j->task, &r->s.loop, r->s.http) < 0)
		job_finish(j, "cannot start the order");
}

static void start_more(struct run *r)
{
	while (r->next < r->n &&
	       r->in_flight < r->opts->concurrency) {
		struct job *j = calloc(1, sizeof(*j));
		if (!j) {
			set_result(r, r->next++, "out of memory");
			continue;
		}
		j->run = r;
		j->idx = r->next++;
		j->task.ctx = j;
		j->work.data = j;
		r->in_flight++;
		if (uv_queue_work(&r->s.loop, &j->work, keygen_work,
				  keygen_done) < 0) {
			r->in_flight--;
			set_result(r, j->idx, "cannot queue key generation");
			free(j);
		}
	}
	if (r->next == r->n && r->in_flight == 0) {
		if (engine_dns01_active(r->dns01) > 0) {
			/* TXT records still being removed: look again */
			if (!r->cleanup_on) {
				uv_timer_init(&r->s.loop, &r->cleanup);
				r->cleanup.data = r;
				r->cleanup_on = 1;
			}
			uv_timer_start(&r->cleanup, cleanup_wait, 100, 0);
			return;
		}
		if (r->progress_on) {
			uv_timer_stop(&r->progress);
			fprintf(stderr, "\r\033[K");
		}
		uv_stop(&r->s.loop); /* idle CA connections keep it alive */
	}
}

static void cleanup_wait(uv_timer_t *t)
{
	start_more(t->data);
}

/* ---- the run ------------------------------------------------------------ */

static void draw_progress(uv_timer_t *t)
{
	struct run *r = t->data;

	fprintf(stderr, "\r\033[K%zu/%zu done: %zu issued, %zu failed, %zu in flight",
		r->ok + r->failed, r->n, r->ok, r->failed, r->in_flight);
}

int engine_issue(const char *const *names, size_t n,
		 const struct engine_issue_opts *opts,
		 struct engine_issue_result **results, char *err, size_t errsz)
{
	struct run r = {0};
	char path[4200];
	int rc = -ENOMEM;

	*results = NULL;
	r.names = names;
	r.n = n;
	r.opts = opts;
	r.results = calloc(n ? n : 1, sizeof(*r.results));
	if (!r.results)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(r.results[i].name = strdup(names[i])))
			goto out;
	snprintf(path, sizeof(path), "%s/live", opts->acct.out_dir);
	if ((rc = fsio_mkdirs(path, 0755)) < 0) {
		snprintf(err, errsz, "cannot create %s: %s", path,
			 strerror(-rc));
		goto out;
	}
	/* The responder first: without it no order can succeed. */
	if (!opts->dns01) {
		r.chall = engine_chall_new(opts->http_listen, 0, NULL, NULL,
					   err, errsz);
		if (!r.chall) {
			rc = -EADDRINUSE;
			goto out;
		}
	}
	rc = engine_session_open(&r.s, &opts->acct, 1, err, errsz);
	if (rc < 0)
		goto out;
	if (opts->dns01 &&
	    (rc = engine_dns01_new(&r.s.loop, opts->dns01, &r.dns01, err,
				   errsz)) < 0)
		goto out;
	if (opts->progress && isatty(STDERR_FILENO)) {
		uv_timer_init(&r.s.loop, &r.progress);
		r.progress.data = &r;
		uv_timer_start(&r.progress, draw_progress, 250, 250);
		r.progress_on = 1;
	}
	start_more(&r);
	uv_run(&r.s.loop, UV_RUN_DEFAULT);
out:
	engine_dns01_free(r.dns01); /* its handles close with the loop's */
	engine_session_close(&r.s);
	engine_chall_free(r.chall);
	if (rc < 0) {
		engine_issue_results_free(r.results, n);
		return rc;
	}
	*results = r.results;
	return 0;
}

void engine_issue_results_free(struct engine_issue_result *r, size_t n)
{
	if (!r)
		return;
	for (size_t i = 0; i < n; i++) {
		free(r[i].name);
		free(r[i].error);
	}
	free(r);
}
