/*
 * api_status.c — GET /v1/status (counts per state, plus whatever the
 * daemon adds through hooks.status_extra) and GET /metrics (Prometheus
 * text format 0.0.4, plus hooks.metrics_extra).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

/* How many soonest-expiring certificates to look through for one whose
 * domain is still registered (removed domains keep their certificate
 * rows). Past this many removed ones in a row the gauge is left out
 * rather than scanning the table. */
#define EXPIRY_SCAN 64

void api__status(struct api_call *c)
{
	uint64_t counts[STORE_DOMAIN__MAX];
	uint64_t total = 0;
	json_t *o = NULL, *dom;
	int rc, i;

	rc = store_domain_count(c->st, counts);
	if (rc < 0) {
		api__store_problem(c, rc, "cannot count domains");
		return;
	}
	o = json_object();
	dom = json_object();
	if (!o || !dom || json_object_set_new(o, "domains", dom))
		goto oom;
	for (i = 0; i < STORE_DOMAIN__MAX; i++) {
		if (json_object_set_new(dom, store_domain_status_names[i],
					json_integer((json_int_t)counts[i])))
			goto oom;
		if (i != STORE_DOMAIN_REMOVED)
			total += counts[i];
	}
	/* total: registered domains, i.e. every state but "removed" */
	if (json_object_set_new(o, "total", json_integer((json_int_t)total)))
		goto oom;
	if (c->hooks->status_extra &&
	    c->hooks->status_extra(c->hooks->ctx, o) < 0) {
		json_decref(o);
		api__problem(c, 500, "internal", "Status unavailable",
			     "the daemon could not report its status");
		return;
	}
	api__json(c, 200, o);
	return;
oom:
	json_decref(o);
	api__json(c, 500, NULL);
}

/*
 * The soonest not_after among current certificates of domains that are
 * not removed, in *out; 0 when found, 1 when there is none, <0 on a store
 * error. store_cert_expiring is soonest first, so the first match wins.
 */
static int earliest_expiry(struct api_call *c, int64_t *out)
{
	struct store_cert_info *v;
	struct store_domain d;
	size_t n = 0, i;
	int rc;

	v = malloc(EXPIRY_SCAN * sizeof(*v));
	if (!v)
		return -ENOMEM;
	rc = store_cert_expiring(c->st, INT64_MAX, v, EXPIRY_SCAN, &n);
	for (i = 0; rc == 0 && i < n; i++) {
		rc = store_domain_get(c->st, v[i].domain, &d);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == 0 && d.status != STORE_DOMAIN_REMOVED) {
			*out = v[i].not_after_ms;
			break;
		}
	}
	if (rc == 0 && i == n)
		rc = 1;
	free(v);
	return rc;
}

void api__metrics(struct api_call *c)
{
	uint64_t counts[STORE_DOMAIN__MAX];
	int64_t expiry = 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int rc, i, have_expiry;

	rc = store_domain_count(c->st, counts);
	if (rc < 0) {
		api__store_problem(c, rc, "cannot count domains");
		return;
	}
	rc = earliest_expiry(c, &expiry);
	if (rc < 0) {
		api__store_problem(c, rc, "cannot read certificate expiry");
		return;
	}
	have_expiry = rc == 0;
	f = open_memstream(&buf, &len);
	if (!f) {
		api__json(c, 500, NULL);
		return;
	}
	fputs("# HELP certherd_domains Registered domains by state.\n"
	      "# TYPE certherd_domains gauge\n",
	      f);
	for (i = 0; i < STORE_DOMAIN__MAX; i++)
		fprintf(f, "certherd_domains{state=\"%s\"} %llu\n",
			store_domain_status_names[i],
			(unsigned long long)counts[i]);
	if (have_expiry) {
		/* negative once the earliest certificate has expired: that
		 * is the alert, keep it visible */
		fprintf(f,
			"# HELP certherd_certificate_earliest_expiry_seconds "
			"Seconds until the earliest notAfter among current "
			"certificates of registered domains.\n"
			"# TYPE certherd_certificate_earliest_expiry_seconds "
			"gauge\n"
			"certherd_certificate_earliest_expiry_seconds %.3f\n",
			(double)(expiry - c->now_ms) / 1000.0);
	}
	rc = 0;
	if (c->hooks->metrics_extra)
		rc = c->hooks->metrics_extra(c->hooks->ctx, f);
	if (fclose(f) != 0 || rc < 0 || !buf) {
		free(buf);
		api__problem(c, 500, "internal", "Metrics unavailable",
			     "the daemon could not report its metrics");
		return;
	}
	api__json(c, 200, NULL); /* clears the reply; text set below */
	c->reply.text = buf;
	c->reply.text_len = len;
	c->reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
}
