/*
 * api_domains.c — the /v1/domains endpoints: register names (all or
 * nothing on invalid input, idempotent otherwise), list with filters and
 * a cursor, show one domain with its certificate and history, remove, and
 * request a renewal. Each handler reads the store through the listener's
 * own handle and wakes the scheduler after a write that changes its work.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "crypto/crypto.h"

#define ECHO_MAX 300 /* bytes of a client's bad name echoed back */

static void wake(struct api_call *c)
{
	if (c->hooks->wake)
		c->hooks->wake(c->hooks->ctx);
}

/* History is best effort: the domain row is the truth, a lost event must
 * not turn a done request into an error. */
static void event(struct api_call *c, const char *name, const char *kind,
		  const char *detail)
{
	int rc = store_event_append(c->st, name, c->now_ms, kind, detail);

	if (rc < 0)
		log_warn("api", name, "cannot record %s event: %s", kind,
			 strerror(-rc));
}

/* ---- POST /v1/domains ------------------------------------------------- */

static void reject_invalid(struct api_call *c, const struct api_names *nm)
{
	const struct api_name *first = &nm->v[nm->first_invalid];
	json_t *p, *arr;
	size_t i;

	p = api__problem(c, 400, "invalid-name", "Invalid domain name",
			 "%s%s; nothing was added", first->reason,
			 nm->n_invalid > 1 ? " (and more, see \"invalid\")"
					   : "");
	if (!p)
		return;
	arr = json_array();
	if (!arr || json_object_set_new(p, "invalid", arr))
		goto oom;
	for (i = 0; i < nm->n; i++) {
		const struct api_name *e = &nm->v[i];
		json_t *o;

		if (!e->reason[0])
			continue;
		o = json_pack("{s:o?, s:s}", "name",
			      api__str(e->input, ECHO_MAX), "reason",
			      e->reason);
		if (!o || json_array_append_new(arr, o))
			goto oom;
	}
	return;
oom:
	api__json(c, 500, NULL);
}

void api__domains_add(struct api_call *c)
{
	struct api_names nm;
	json_t *added = NULL, *existing = NULL;
	char err[256];
	size_t i, n_added = 0;
	int rc;

	rc = api__names_parse(c->body, c->body_len, &nm, err, sizeof(err));
	if (rc == -E2BIG) {
		api__problem(c, 413, "too-many-names", "Too many names", "%s",
			     err);
		return;
	}
	if (rc == -ENOMEM) {
		api__json(c, 500, NULL);
		return;
	}
	if (rc < 0) {
		api__problem(c, 400, "malformed", "Malformed request", "%s",
			     err);
		return;
	}
	if (nm.n_invalid) {
		reject_invalid(c, &nm);
		goto out;
	}
	added = json_array();
	existing = json_array();
	if (!added || !existing) {
		api__json(c, 500, NULL);
		goto out;
	}
	/*
	 * One store call per name: each commit is cheap (WAL, NORMAL), and
	 * a failure half-way leaves the names before it registered, which
	 * is harmless since adding is idempotent: the client retries all.
	 */
	for (i = 0; i < nm.n; i++) {
		const char *name = nm.v[i].norm;

		if (nm.v[i].dup)
			continue; /* said twice in one request: report once */
		/* a wildcard is always dns-01; otherwise what was asked,
		 * http-01 by default (docs/dns01.md) */
		rc = store_domain_add(c->st, name,
				      name[0] == '*'	   ? "dns-01"
				      : nm.challenge[0] ? nm.challenge
							: "http-01",
				      c->now_ms);
		if (rc < 0) {
			char what[STORE_NAME_MAX + 64];

			snprintf(what, sizeof(what),
				 "cannot add %s (%zu names before it were "
				 "added)",
				 name, n_added);
			api__store_problem(c, rc, what);
			goto out;
		}
		if (rc == 1) {
			n_added++;
			event(c, name, "added", "registered through the API");
		}
		if (json_array_append_new(rc == 1 ? added : existing,
					  json_string(name))) {
			api__json(c, 500, NULL);
			goto out;
		}
	}
	log_info("api", nm.n == 1 ? nm.v[0].norm : NULL,
		 "domains registered: %zu added, %zu already there", n_added,
		 json_array_size(existing));
	api__json(
	    c, 200,
	    json_pack("{s:O, s:O}", "added", added, "existing", existing));
out:
	if (n_added)
		wake(c); /* also after a partial failure: some names are new */
	json_decref(added);
	json_decref(existing);
	api__names_free(&nm);
}

/* ---- GET /v1/domains -------------------------------------------------- */

static int parse_status_list(struct api_call *c, const char *s, unsigned *mask)
{
	char word[32];

	*mask = 0;
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		enum store_domain_status st;

		if (n == 0 || n >= sizeof(word))
			goto bad;
		memcpy(word, s, n);
		word[n] = '\0';
		if (store_domain_status_parse(word, &st) < 0)
			goto bad;
		*mask |= 1u << st;
		s += n + (comma ? 1 : 0);
		if (comma && !*s)
			goto bad; /* trailing comma */
	}
	if (*mask)
		return 0;
bad:
	api__problem(c, 400, "bad-param", "Bad query parameter",
		     "status: want a comma-separated list of pending, "
		     "dns-pending, issuing, valid, renewing, failed, removed");
	return -EINVAL;
}

static int parse_limit(struct api_call *c, const char *s, size_t *limit)
{
	unsigned long v = 0;
	const char *p;

	for (p = s; *p && v <= API_LIST_MAX; p++) {
		if (*p < '0' || *p > '9')
			break;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (p == s || *p || v < 1 || v > API_LIST_MAX) {
		api__problem(c, 400, "bad-param", "Bad query parameter",
			     "limit: want an integer from 1 to %d",
			     API_LIST_MAX);
		return -EINVAL;
	}
	*limit = v;
	return 0;
}

/* A prefix is the start of a stored (A-label, lower-case) name; it may
 * end mid-label, so it cannot go through name_normalize. */
static int parse_prefix(struct api_call *c, const char *s, char *out,
			size_t outsz)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)tolower((unsigned char)s[i]);

		if (i + 1 >= outsz ||
		    !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '*')) {
			api__problem(c, 400, "bad-param", "Bad query parameter",
				     "prefix: want at most %d characters of "
				     "a-z, 0-9, '-', '.' (IDNs in their "
				     "xn-- form)",
				     NAME_MAX_LEN);
			return -EINVAL;
		}
		out[i] = (char)ch;
	}
	out[i] = '\0';
	return 0;
}

static json_t *domain_summary(struct api_call *c, const struct store_domain *d)
{
	struct store_cert cert;
	int64_t not_after = STORE_NO_TIME;

	memset(&cert, 0, sizeof(cert));
	if (store_cert_current(c->st, d->name, &cert) == 0)
		not_after = cert.info.not_after_ms;
	store_cert_clear(&cert);
	return json_pack("{s:s, s:s, s:o*, s:o*}", "name", d->name, "state",
			 store_domain_status_names[d->status], "not_after",
			 api__time(not_after), "last_error",
			 api__last_error(d));
}

void api__domains_list(struct api_call *c)
{
	struct store_domain_filter f = {0};
	struct store_domain *v = NULL;
	char prefix[NAME_MAX_LEN + 1], cursor[NAME_MAX_LEN + 1], err[256];
	size_t limit = API_LIST_DEFAULT, n = 0, i;
	const char *s;
	json_t *arr = NULL;
	int rc;

	/* removed domains only when asked for: they are history */
	f.status_mask =
	    ((1u << STORE_DOMAIN__MAX) - 1) & ~(1u << STORE_DOMAIN_REMOVED);
	for (i = 0; i < c->n_args; i++) {
		const char *k = c->args[i].key;

		if (strcmp(k, "status") && strcmp(k, "prefix") &&
		    strcmp(k, "limit") && strcmp(k, "cursor")) {
			api__problem(
			    c, 400, "bad-param", "Bad query parameter",
			    "unknown parameter \"%.64s\": want status, "
			    "prefix, limit or cursor",
			    k);
			return;
		}
	}
	if ((s = api__arg(c, "status")) &&
	    parse_status_list(c, s, &f.status_mask))
		return;
	if ((s = api__arg(c, "limit")) && parse_limit(c, s, &limit))
		return;
	if ((s = api__arg(c, "prefix"))) {
		if (parse_prefix(c, s, prefix, sizeof(prefix)))
			return;
		f.prefix = prefix;
	}
	if ((s = api__arg(c, "cursor")) && *s) {
		if (name_normalize(s, NAME_ALLOW_WILDCARD, cursor,
				   sizeof(cursor), err, sizeof(err)) < 0) {
			api__problem(c, 400, "bad-param", "Bad query parameter",
				     "cursor: want a next_cursor value from a "
				     "previous page (%s)",
				     err);
			return;
		}
		f.after = cursor;
	}
	/* one more than asked tells whether another page exists */
	v = malloc((limit + 1) * sizeof(*v));
	arr = json_array();
	if (!v || !arr) {
		api__json(c, 500, NULL);
		goto out;
	}
	rc = store_domain_list(c->st, &f, v, limit + 1, &n);
	if (rc < 0) {
		api__store_problem(c, rc, "cannot list domains");
		goto out;
	}
	for (i = 0; i < n && i < limit; i++)
		if (json_array_append_new(arr, domain_summary(c, &v[i]))) {
			api__json(c, 500, NULL);
			goto out;
		}
	api__json(c, 200,
		  json_pack("{s:O, s:s?}", "domains", arr, "next_cursor",
			    n > limit ? v[limit - 1].name : NULL));
out:
	json_decref(arr);
	free(v);
}

/* ---- /v1/domains/{name} ------------------------------------------------ */

/* Normalize the name from the path into out; on failure the reply is a
 * 400 problem and -EINVAL is returned. */
static int path_name(struct api_call *c, const char *raw, char *out,
		     size_t outsz)
{
	char err[256];

	if (name_normalize(raw, NAME_ALLOW_WILDCARD, out, outsz, err,
			   sizeof(err)) == 0)
		return 0;
	api__problem(c, 400, "invalid-name", "Invalid domain name", "%s", err);
	return -EINVAL;
}

/* Load name into d; on failure the reply is set (404 or store error). */
static int load(struct api_call *c, const char *name, struct store_domain *d)
{
	int rc = store_domain_get(c->st, name, d);

	if (rc == -ENOENT)
		api__problem(c, 404, "unknown-domain", "Unknown domain",
			     "%s is not registered", name);
	else if (rc < 0)
		api__store_problem(c, rc, "cannot read domain");
	return rc;
}

static json_t *cert_json(const struct store_cert *cert)
{
	const struct store_cert_info *i = &cert->info;
	struct x509_info xi;
	json_t *o, *names;
	X509 *x;

	o = json_pack("{s:o*, s:o*, s:o*, s:o*}", "serial",
		      api__str(i->serial, sizeof(i->serial)), "not_before",
		      api__time(i->not_before_ms), "not_after",
		      api__time(i->not_after_ms), "issuer",
		      api__str(i->issuer, sizeof(i->issuer)));
	if (o && i->ari_start_ms != STORE_NO_TIME)
		/* the CA's renewalInfo window (or the instant of a forced
		 * renewal, which the daemon treats the same way) */
		json_object_set_new(o, "renewal_window",
				    json_pack("{s:o*, s:o*}", "start",
					      api__time(i->ari_start_ms), "end",
					      api__time(i->ari_end_ms)));
	if (!o || !cert->chain_pem)
		return o;
	/* the SANs are not a column: read them from the leaf */
	memset(&xi, 0, sizeof(xi));
	x = x509_from_pem(cert->chain_pem, strlen(cert->chain_pem));
	if (x && x509_inspect(x, &xi) == 0 && (names = json_array())) {
		for (size_t k = 0; k < xi.n_names; k++)
			json_array_append_new(names,
					      api__str(xi.names[k], 256));
		json_object_set_new(o, "names", names);
	}
	x509_info_free(&xi);
	X509_free(x);
	return o;
}

void api__domain_show(struct api_call *c, const char *raw)
{
	char name[NAME_MAX_LEN + 1];
	struct store_event ev[STORE_EVENTS_PER_DOMAIN];
	struct store_domain d;
	struct store_cert cert;
	json_t *o = NULL, *hist = NULL, *cj;
	size_t n = 0, i;
	int rc;

	memset(&cert, 0, sizeof(cert));
	if (path_name(c, raw, name, sizeof(name)) || load(c, name, &d))
		return;
	rc = store_cert_current(c->st, name, &cert);
	if (rc < 0 && rc != -ENOENT) {
		api__store_problem(c, rc, "cannot read certificate");
		goto out;
	}
	cj = rc == 0 ? cert_json(&cert) : json_null();
	rc = store_event_list(c->st, name, ev, STORE_EVENTS_PER_DOMAIN, &n);
	if (rc < 0) {
		json_decref(cj);
		api__store_problem(c, rc, "cannot read history");
		goto out;
	}
	hist = json_array();
	for (i = 0; hist && i < n; i++)
		if (json_array_append_new(
			hist,
			json_pack(
			    "{s:o*, s:o*, s:o*}", "ts", api__time(ev[i].ts_ms),
			    "kind", api__str(ev[i].kind, sizeof(ev[i].kind)),
			    "detail",
			    api__str(ev[i].detail, sizeof(ev[i].detail)))))
			break;
	o = json_pack(
	    "{s:s, s:s, s:s, s:o*, s:o*, s:o*, s:I, s:o*, s:o*, s:O*}", "name",
	    d.name, "state", store_domain_status_names[d.status], "challenge",
	    d.challenge, "added_at", api__time(d.added_ms), "updated_at",
	    api__time(d.updated_ms), "next_attempt_at",
	    api__time(d.next_attempt_ms), "failures", (json_int_t)d.failures,
	    "last_error", api__last_error(&d), "certificate", cj, "history",
	    hist);
	/* a NULL member above makes json_pack fail: answer 500, not junk */
	if (o && (!hist || i < n)) {
		json_decref(o);
		o = NULL;
	}
	api__json(c, 200, o);
out:
	json_decref(hist);
	store_cert_clear(&cert);
}

void api__domain_delete(struct api_call *c, const char *raw)
{
	char name[NAME_MAX_LEN + 1];
	int rc;

	if (path_name(c, raw, name, sizeof(name)))
		return;
	rc = store_domain_remove(c->st, name, c->now_ms);
	if (rc == -ENOENT) {
		api__problem(c, 404, "unknown-domain", "Unknown domain",
			     "%s is not registered", name);
		return;
	}
	if (rc < 0) {
		api__store_problem(c, rc, "cannot remove domain");
		return;
	}
	event(c, name, "removed", "removed through the API");
	log_info("api", name, "domain removed");
	if (c->hooks->removed)
		c->hooks->removed(c->hooks->ctx, name);
	wake(c);
	api__json(c, 200,
		  json_pack("{s:s, s:s}", "name", name, "state",
			    store_domain_status_names[STORE_DOMAIN_REMOVED]));
}

void api__domain_renew(struct api_call *c, const char *raw)
{
	char name[NAME_MAX_LEN + 1];
	struct store_domain d;
	struct store_cert cert;
	const char *ari = api__arg(c, "ari");
	int ask = ari && (strcmp(ari, "1") == 0 || strcmp(ari, "true") == 0);
	int rc;

	if (ari && !ask && strcmp(ari, "0") != 0 && strcmp(ari, "false") != 0) {
		api__problem(c, 400, "bad-argument", "Bad argument",
			     "ari must be true or false");
		return;
	}
	if (path_name(c, raw, name, sizeof(name)) || load(c, name, &d))
		return;
	if (d.status == STORE_DOMAIN_REMOVED) {
		api__problem(c, 409, "removed", "Domain removed",
			     "%s was removed; add it again to issue a "
			     "certificate",
			     name);
		return;
	}
	/*
	 * The current certificate's window says what the scheduler does when
	 * the domain comes due: one at this instant renews it at once (the
	 * same as a CA's window in the past, e.g. for a revoked certificate);
	 * none (?ari=true) makes it ask the CA's renewalInfo first and renew
	 * only if the CA's window says so. Written before the next attempt,
	 * so the scheduler never sees one without the other.
	 */
	if (store_cert_current(c->st, name, &cert) == 0) {
		rc = store_cert_set_ari(c->st, cert.info.id,
					ask ? STORE_NO_TIME : c->now_ms,
					ask ? STORE_NO_TIME : c->now_ms + 1);
		store_cert_clear(&cert);
		if (rc < 0) {
			api__store_problem(c, rc, "cannot schedule renewal");
			return;
		}
	}
	/* due now, same state, failures and last error: the scheduler
	 * decides what an attempt means for this state */
	rc = store_domain_reschedule(c->st, &d, c->now_ms, c->now_ms);
	if (rc == -ENOENT) {
		load(c, name, &d); /* removed meanwhile: same answer as above */
		return;
	}
	if (rc < 0) {
		api__store_problem(c, rc, "cannot schedule renewal");
		return;
	}
	event(c, name, "renew-requested",
	      ask ? "renewal information check requested through the API"
		  : "renewal requested through the API");
	log_info("api", name, "%s",
		 ask ? "renewal information check requested"
		     : "renewal requested");
	wake(c);
	api__json(c, 202,
		  json_pack("{s:s, s:o*}", "name", name, "next_attempt_at",
			    api__time(c->now_ms)));
}
