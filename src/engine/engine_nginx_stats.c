/*
 * engine_nginx_stats.c — what nginx mode has done, for the status page
 * (GET /v1/status "nginx", and so `certherd status`) and /metrics
 * (certherd_nginx_*): reloads, `nginx -t` checks, includes certherd
 * refused to write, and the handshake samples after reloads. The
 * counters are kept by engine_nginx.c on the loop thread; these functions
 * only format a copy taken under its mutex (docs/nginx.md, docs/api.md).
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "engine/engine_daemon_internal.h"
#include "nginx/nginx.h"

int engine_daemon_nginx_stats(struct engine_daemon *d,
			      struct engine_nginx_stats *out)
{
	if (!d || !d->nginx)
		return -ENOENT;
	engine_nginx_stats(d->nginx, out);
	return 0;
}

/* "2025-01-02T03:04:05Z" as the API writes times, null for never. */
static json_t *when(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	if (ms <= 0 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

/* {"at", "result", "seconds", "message"}, or null when it never happened;
 * result is ok_word or fail_word. */
static json_t *event_json(const struct engine_nginx_event *ev,
			  const char *ok_word, const char *fail_word,
			  int timed)
{
	json_t *o;

	if (!ev->at_ms)
		return json_null();
	o = json_object();
	if (!o || json_object_set_new(o, "at", when(ev->at_ms)) ||
	    json_object_set_new(o, "result",
				json_string(ev->ok ? ok_word : fail_word)) ||
	    (timed &&
	     json_object_set_new(o, "seconds", json_real(ev->seconds))) ||
	    json_object_set_new(o, "message", json_string(ev->message))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int engine_nginx_status_json(const struct engine_nginx_stats *s, json_t *obj)
{
	json_t *ng = json_object(), *v = NULL;

	if (!ng || json_object_set_new(obj, "nginx", ng))
		return -ENOMEM;
	if (json_object_set_new(ng, "strategy",
				json_string(s->strategy >= 0 &&
						    s->strategy < NGINX__MAX
						? nginx_strategy_names[s->strategy]
						: "?")) ||
	    json_object_set_new(ng, "state",
				json_string(s->state ? s->state : "?")) ||
	    json_object_set_new(ng, "domains",
				json_integer((json_int_t)s->domains)) ||
	    json_object_set_new(ng, "pending",
				json_integer((json_int_t)s->pending)) ||
	    json_object_set_new(ng, "reloads",
				json_integer((json_int_t)s->reloads_ok)) ||
	    json_object_set_new(ng, "reloads_failed",
				json_integer((json_int_t)s->reloads_failed)) ||
	    json_object_set_new(ng, "checks_failed",
				json_integer((json_int_t)s->checks_failed)) ||
	    json_object_set_new(ng, "refused",
				json_integer((json_int_t)s->refused)) ||
	    json_object_set_new(ng, "verify_mismatches",
				json_integer((json_int_t)s->verify_mismatches)))
		return -ENOMEM;
	if (!(v = event_json(&s->last_reload, "ok", "failed", 1)) ||
	    json_object_set_new(ng, "last_reload", v))
		return -ENOMEM;
	if (!(v = event_json(&s->last_check, "ok", "failed", 1)) ||
	    json_object_set_new(ng, "last_check", v))
		return -ENOMEM;
	if (!(v = event_json(&s->last_refused, "ok", "refused", 0)) ||
	    json_object_set_new(ng, "last_refused", v))
		return -ENOMEM;
	if (!s->last_verify.at_ms) {
		v = json_null();
	} else {
		v = json_object();
		if (v &&
		    (json_object_set_new(v, "at", when(s->last_verify.at_ms)) ||
		     json_object_set_new(v, "names",
					 json_integer(s->last_verify.names)) ||
		     json_object_set_new(
			 v, "mismatches",
			 json_integer(s->last_verify.mismatches)) ||
		     json_object_set_new(
			 v, "message", json_string(s->last_verify.message)))) {
			json_decref(v);
			v = NULL;
		}
	}
	if (!v || json_object_set_new(ng, "last_verify", v))
		return -ENOMEM;
	return 0;
}

int engine_nginx_metrics(const struct engine_nginx_stats *s, FILE *out)
{
	fprintf(out,
		"# HELP certherd_nginx_reloads_total nginx reloads (nginx -s "
		"reload) since start, by result.\n"
		"# TYPE certherd_nginx_reloads_total counter\n"
		"certherd_nginx_reloads_total{result=\"ok\"} %llu\n"
		"certherd_nginx_reloads_total{result=\"failed\"} %llu\n"
		"# HELP certherd_nginx_checks_total Checks of a new include "
		"with nginx -t since start, by result (failed: the previous "
		"include was kept).\n"
		"# TYPE certherd_nginx_checks_total counter\n"
		"certherd_nginx_checks_total{result=\"ok\"} %llu\n"
		"certherd_nginx_checks_total{result=\"failed\"} %llu\n"
		"# HELP certherd_nginx_refused_total Passes whose include "
		"certherd did not write (template refused or unreadable), "
		"since start.\n"
		"# TYPE certherd_nginx_refused_total counter\n"
		"certherd_nginx_refused_total %llu\n"
		"# HELP certherd_nginx_verify_names_total Names checked by a "
		"TLS handshake with nginx after a change, since start.\n"
		"# TYPE certherd_nginx_verify_names_total counter\n"
		"certherd_nginx_verify_names_total %llu\n"
		"# HELP certherd_nginx_verify_mismatches_total Checked names "
		"for which nginx did not serve the current certificate, since "
		"start.\n"
		"# TYPE certherd_nginx_verify_mismatches_total counter\n"
		"certherd_nginx_verify_mismatches_total %llu\n"
		"# HELP certherd_nginx_domains Domains in the include at the "
		"last pass.\n"
		"# TYPE certherd_nginx_domains gauge\n"
		"certherd_nginx_domains %llu\n"
		"# HELP certherd_nginx_pending Changed certificates that wait "
		"for a reload.\n"
		"# TYPE certherd_nginx_pending gauge\n"
		"certherd_nginx_pending %llu\n",
		(unsigned long long)s->reloads_ok,
		(unsigned long long)s->reloads_failed,
		(unsigned long long)s->checks_ok,
		(unsigned long long)s->checks_failed,
		(unsigned long long)s->refused,
		(unsigned long long)s->verify_names,
		(unsigned long long)s->verify_mismatches,
		(unsigned long long)s->domains, (unsigned long long)s->pending);
	/* only once it happened: a 0 timestamp would read as 1970 */
	if (s->last_reload.at_ms)
		fprintf(out,
			"# HELP certherd_nginx_last_reload_timestamp_seconds "
			"When the last reload was tried (Unix time).\n"
			"# TYPE certherd_nginx_last_reload_timestamp_seconds "
			"gauge\n"
			"certherd_nginx_last_reload_timestamp_seconds %.3f\n"
			"# HELP certherd_nginx_last_reload_success 1 when the "
			"last reload succeeded, else 0.\n"
			"# TYPE certherd_nginx_last_reload_success gauge\n"
			"certherd_nginx_last_reload_success %d\n",
			(double)s->last_reload.at_ms / 1000.0,
			s->last_reload.ok ? 1 : 0);
	if (s->last_verify.at_ms)
		fprintf(out,
			"# HELP certherd_nginx_last_verify_mismatches Names "
			"of the last handshake sample nginx did not serve "
			"the current certificate for.\n"
			"# TYPE certherd_nginx_last_verify_mismatches gauge\n"
			"certherd_nginx_last_verify_mismatches %u\n",
			s->last_verify.mismatches);
	return ferror(out) ? -EIO : 0;
}
