/*
 * cli_domains.c — the daemon's client commands: `certherd domains
 * add|rm|ls|show`, `certherd renew`, `certherd status`.
 *
 * Three layers, so tests can take each alone: cli_fmt_* turn API JSON into
 * text (pure), cli_do_* run one operation against a struct cli_client and
 * write to a FILE, and the cli_domains/cli_renew/cli_status entry points
 * parse argv and pick stdout.
 *
 * Output contract: with --json, `domains ls` prints one compact JSON
 * object per line per domain (scripts read it line by line, so it streams
 * page by page) and the other commands print the API's JSON. Without it,
 * text for people: every string that came from the daemon (and through it
 * from a CA) is made safe for a terminal first. Exit status 0 ok, 1 the
 * API refused or the daemon could not be reached, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_client.h"
#include "cli/cli_internal.h" /* cli__names_line */
#include "util/util.h"

#define ACME_URN "urn:ietf:params:acme:error:"
/* Names per POST /v1/domains: well inside the API's 10,000 names and
 * 1 MiB body even with 253-byte names. */
#define ADD_BATCH 1000
/* Page size asked of GET /v1/domains (the API's maximum). */
#define LS_PAGE	       1000
#define MAX_NAMES_FILE (64u << 20)

/* ---- text for terminals ---------------------------------------------- */

/* Bytes (1..4) of the character at s; *ok is 0 when it is no well-formed
 * UTF-8, a C0 or C1 control or DEL: such a character is shown as one '?',
 * so nothing a peer sends can drive the terminal. */
static size_t utf8_char(const unsigned char *s, int *ok)
{
	unsigned cp;
	size_t n;

	*ok = 0;
	if (s[0] < 0x80) {
		*ok = s[0] >= 0x20 && s[0] != 0x7f;
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07u;
	} else {
		return 1;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 1;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 1;
	*ok = !(cp >= 0x80 && cp <= 0x9f);
	return n;
}

static size_t text_cols(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t cols = 0;
	int ok;

	for (; *p; cols++)
		p += utf8_char(p, &ok);
	return cols;
}

char *cli_fmt_text(const char *s, size_t maxcols, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t keep = text_cols(s), o = 0, dots = 0;
	int ok;

	if (maxcols && keep > maxcols) {
		dots = maxcols < 3 ? maxcols : 3;
		keep = maxcols - dots;
	}
	for (size_t i = 0; i < keep && *p; i++) {
		size_t n = utf8_char(p, &ok);
		if (o + (ok ? n : 1) + 4 > cap) { /* room for "..." and NUL */
			dots = 3;
			break;
		}
		if (ok)
			memcpy(out + o, p, n);
		else
			out[o] = '?';
		o += ok ? n : 1;
		p += n;
	}
	while (dots-- > 0 && o + 1 < cap)
		out[o++] = '.';
	out[o] = '\0';
	return out;
}

char *cli_fmt_error(const json_t *err, char *out, size_t cap)
{
	const char *type = NULL, *detail = NULL;

	out[0] = '\0';
	if (json_is_string(err)) {
		snprintf(out, cap, "%s", json_string_value(err));
		return out;
	}
	if (!json_is_object(err))
		return out;
	type = json_string_value(json_object_get(err, "type"));
	detail = json_string_value(json_object_get(err, "detail"));
	if (type && strncmp(type, ACME_URN, strlen(ACME_URN)) == 0)
		type += strlen(ACME_URN);
	if (type && *type && detail && *detail)
		snprintf(out, cap, "%s: %s", type, detail);
	else
		snprintf(out, cap, "%s",
			 type && *type ? type
			 : detail      ? detail
				       : "");
	return out;
}

static const char *str_or_dash(const json_t *v)
{
	const char *s = json_string_value(v);

	return s && *s ? s : "-";
}

int cli_fmt_domain_line(FILE *out, const json_t *domain)
{
	static const char *const must[] = {"name", "state", "not_after",
					   "last_error"};
	json_t *o =
	    json_is_object(domain) ? json_deep_copy(domain) : json_object();
	char *line = NULL;
	int rc = -ENOMEM;

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		if (!json_object_get(o, must[i]) &&
		    json_object_set_new(o, must[i], json_null()) < 0)
			goto out;
	/* compact output escapes control characters: one line each */
	if (!(line = json_dumps(o, JSON_COMPACT)))
		goto out;
	rc = fprintf(out, "%s\n", line) < 0 ? -EIO : 0;
out:
	free(line);
	json_decref(o);
	return rc;
}

int cli_fmt_domains_table(FILE *out, const json_t *rows, size_t width)
{
	size_t wn = strlen("NAME"), ws = strlen("STATE"),
	       wa = strlen("NOT_AFTER"), i;
	char name[1024], state[128], after[128], err[2048], shown[2048];
	const json_t *d;

	/* first pass: column widths of what will be printed */
	json_array_foreach(rows, i, d)
	{
		size_t n;
		cli_fmt_text(str_or_dash(json_object_get(d, "name")), 0, name,
			     sizeof(name));
		cli_fmt_text(str_or_dash(json_object_get(d, "state")), 0, state,
			     sizeof(state));
		cli_fmt_text(str_or_dash(json_object_get(d, "not_after")), 0,
			     after, sizeof(after));
		if ((n = text_cols(name)) > wn)
			wn = n;
		if ((n = text_cols(state)) > ws)
			ws = n;
		if ((n = text_cols(after)) > wa)
			wa = n;
	}
	if (fprintf(out, "%-*s  %-*s  %-*s  %s\n", (int)wn, "NAME", (int)ws,
		    "STATE", (int)wa, "NOT_AFTER", "LAST_ERROR") < 0)
		return -EIO;
	json_array_foreach(rows, i, d)
	{
		size_t used = wn + ws + wa + 6, room = 0;
		cli_fmt_text(str_or_dash(json_object_get(d, "name")), 0, name,
			     sizeof(name));
		cli_fmt_text(str_or_dash(json_object_get(d, "state")), 0, state,
			     sizeof(state));
		cli_fmt_text(str_or_dash(json_object_get(d, "not_after")), 0,
			     after, sizeof(after));
		cli_fmt_error(json_object_get(d, "last_error"), err,
			      sizeof(err));
		if (width)
			room = width > used + 8 ? width - used : 8;
		cli_fmt_text(err[0] ? err : "-", room, shown, sizeof(shown));
		if (fprintf(out, "%-*s  %-*s  %-*s  %s\n",
			    (int)(wn + strlen(name) - text_cols(name)), name,
			    (int)(ws + strlen(state) - text_cols(state)), state,
			    (int)(wa + strlen(after) - text_cols(after)), after,
			    shown) < 0)
			return -EIO;
	}
	return 0;
}

/* One value on one line: scalars as text, an array of scalars joined
 * with ", ", anything else as compact JSON; made safe for a terminal. */
static char *value_text(const json_t *v, char *out, size_t cap)
{
	char tmp[4096];
	size_t i;
	const json_t *it;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return cli_fmt_text(
		    json_string_value(v)[0] ? json_string_value(v) : "-", 0,
		    out, cap);
	case JSON_INTEGER:
		snprintf(out, cap, "%lld", (long long)json_integer_value(v));
		return out;
	case JSON_REAL:
		snprintf(out, cap, "%g", json_real_value(v));
		return out;
	case JSON_TRUE:
		snprintf(out, cap, "true");
		return out;
	case JSON_FALSE:
		snprintf(out, cap, "false");
		return out;
	case JSON_NULL:
		snprintf(out, cap, "-");
		return out;
	case JSON_ARRAY: {
		size_t o = 0;
		tmp[0] = '\0';
		json_array_foreach(v, i, it)
		{
			if (json_is_object(it) || json_is_array(it))
				goto as_json;
			char one[1024];
			int n = snprintf(tmp + o, sizeof(tmp) - o, "%s%s",
					 i ? ", " : "",
					 value_text(it, one, sizeof(one)));
			if (n < 0 || (size_t)n >= sizeof(tmp) - o)
				break;
			o += (size_t)n;
		}
		return cli_fmt_text(o ? tmp : "-", 0, out, cap);
	}
	default:
		break;
	}
as_json : {
	char *s = json_dumps(v, JSON_COMPACT);
	cli_fmt_text(s ? s : "?", 0, out, cap);
	free(s);
	return out;
}
}

/* The members of obj as aligned "key: value" lines at indent; nested
 * objects as "key:" and their members two columns further in. Keys in
 * skip (NULL-terminated, may be NULL) are left out. */
static int put_object(FILE *out, const json_t *obj, int indent,
		      const char *const *skip)
{
	const char *key;
	const json_t *v;
	size_t w = 0;
	char text[4096], k[256];

	json_object_foreach((json_t *)obj, key, v)
	{
		size_t n = text_cols(cli_fmt_text(key, 0, k, sizeof(k)));
		if (n > w)
			w = n;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		int skipped = 0;
		for (const char *const *s = skip; s && *s; s++)
			skipped |= strcmp(*s, key) == 0;
		if (skipped)
			continue;
		cli_fmt_text(key, 0, k, sizeof(k));
		if (json_is_object(v) && json_object_size(v) > 0) {
			if (fprintf(out, "%*s%s:\n", indent, "", k) < 0 ||
			    put_object(out, v, indent + 2, NULL) < 0)
				return -EIO;
			continue;
		}
		if (fprintf(out, "%*s%s:%*s %s\n", indent, "", k,
			    (int)(w - text_cols(k)), "",
			    value_text(v, text, sizeof(text))) < 0)
			return -EIO;
	}
	return 0;
}

int cli_fmt_domain_show(FILE *out, const json_t *d)
{
	static const char *const skip[] = {"last_error", "certificate",
					   "history", NULL};
	const json_t *cert = json_object_get(d, "certificate");
	const json_t *hist = json_object_get(d, "history"), *h;
	char err[2048], text[2048];
	size_t i;

	if (put_object(out, d, 0, skip) < 0)
		return -EIO;
	cli_fmt_error(json_object_get(d, "last_error"), err, sizeof(err));
	if (fprintf(out, "last_error: %s\n",
		    cli_fmt_text(err[0] ? err : "-", 0, text, sizeof(text))) <
	    0)
		return -EIO;
	if (json_is_object(cert)) {
		if (fputs("certificate:\n", out) < 0 ||
		    put_object(out, cert, 2, NULL) < 0)
			return -EIO;
	} else if (fputs("certificate: -\n", out) < 0) {
		return -EIO;
	}
	if (json_array_size(hist) == 0)
		return fputs("history: -\n", out) < 0 ? -EIO : 0;
	if (fputs("history:\n", out) < 0)
		return -EIO;
	json_array_foreach(hist, i, h)
	{
		char ts[128], kind[128];
		const json_t *det = json_object_get(h, "detail");
		cli_fmt_text(str_or_dash(json_object_get(h, "ts")), 0, ts,
			     sizeof(ts));
		cli_fmt_text(str_or_dash(json_object_get(h, "kind")), 0, kind,
			     sizeof(kind));
		if (json_is_object(det))
			cli_fmt_error(det, err, sizeof(err));
		else if (json_is_string(det))
			snprintf(err, sizeof(err), "%s",
				 json_string_value(det));
		else
			err[0] = '\0';
		if (fprintf(out, "  %s  %-10s %s\n", ts, kind,
			    cli_fmt_text(err, 0, text, sizeof(text))) < 0)
			return -EIO;
	}
	return 0;
}

int cli_fmt_status(FILE *out, const json_t *st)
{
	static const char *const skip[] = {"total", "domains", NULL};
	const json_t *counts = json_object_get(st, "domains"), *v;
	const char *key;
	char k[256];
	size_t w = strlen("total");

	json_object_foreach(
	    (json_t *)counts, key,
	    v) if (text_cols(cli_fmt_text(key, 0, k, sizeof(k))) + 2 > w) w =
	    text_cols(k) + 2;
	if (fprintf(out, "%-*s %lld\n", (int)w + 1, "total:",
		    (long long)json_integer_value(
			json_object_get(st, "total"))) < 0)
		return -EIO;
	json_object_foreach((json_t *)counts, key, v)
	{
		cli_fmt_text(key, 0, k, sizeof(k));
		if (fprintf(out, "  %s:%*s %lld\n", k,
			    (int)(w - 2 - text_cols(k)), "",
			    (long long)json_integer_value(v)) < 0)
			return -EIO;
	}
	return put_object(out, st, 0, skip);
}

/* ---- operations ------------------------------------------------------- */

/*
 * One request whose answer must be a JSON object with a 2xx status.
 * Returns the parsed object (caller decrefs) with the raw answer in *r
 * (caller clears), or NULL after printing why.
 */
static json_t *call(struct cli_client *c, const char *method, const char *path,
		    const char *body, struct cli_response *r)
{
	char err[1024];
	json_t *doc;

	if (cli_client_request(c, method, path, body, r, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "certherd: %s\n", err);
		return NULL;
	}
	if (r->status < 200 || r->status > 299) {
		cli_print_problem(r);
		cli_response_clear(r);
		return NULL;
	}
	doc = json_loadb(r->body, r->len, 0, NULL);
	if (!json_is_object(doc)) {
		fprintf(stderr,
			"certherd: the API at %s answered HTTP %ld without a "
			"JSON object\n",
			cli_client_where(c), r->status);
		json_decref(doc);
		cli_response_clear(r);
		return NULL;
	}
	return doc;
}

/* The API's own JSON, as it came, on one line of its own. */
static int put_raw(FILE *out, const struct cli_response *r)
{
	size_t n = r->len;

	while (n > 0 && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
		n--;
	return fprintf(out, "%.*s\n", (int)n, r->body) < 0 ? 1 : 0;
}

/* Print the names of arr as "<label> NAME" lines. */
static int put_names(FILE *out, const char *label, const json_t *arr)
{
	const json_t *v;
	char text[1024];
	size_t i;

	json_array_foreach(
	    arr, i, v) if (fprintf(out, "%s %s\n", label,
				   cli_fmt_text(str_or_dash(v), 0, text,
						sizeof(text))) < 0) return -EIO;
	return 0;
}

int cli_do_add(struct cli_client *c, int json, FILE *out,
	       const char *const *names, size_t n)
{
	json_t *added = json_array(), *existing = json_array(), *res = NULL;
	struct cli_response r = {0};
	size_t done = 0;
	int status = 1;

	if (!added || !existing)
		goto oom;
	while (done < n) {
		size_t k = n - done < ADD_BATCH ? n - done : ADD_BATCH;
		json_t *req = json_object(), *arr = json_array(), *doc;
		char *body = NULL;

		if (req && arr && json_object_set(req, "names", arr) == 0)
			for (size_t i = 0; i < k; i++)
				if (json_array_append_new(
					arr, json_string(names[done + i])) < 0)
					break;
		if (json_array_size(arr) == k)
			body = json_dumps(req, JSON_COMPACT);
		json_decref(arr);
		json_decref(req);
		if (!body)
			goto oom;
		doc = call(c, "POST", "/v1/domains", body, &r);
		free(body);
		if (!doc) {
			if (done)
				fprintf(
				    stderr,
				    "certherd: the first %zu names were "
				    "sent and registered before this error\n",
				    done);
			goto out;
		}
		if (!json) {
			put_names(out, "added", json_object_get(doc, "added"));
			put_names(out, "existing",
				  json_object_get(doc, "existing"));
		}
		json_array_extend(added, json_object_get(doc, "added"));
		json_array_extend(existing, json_object_get(doc, "existing"));
		json_decref(doc);
		cli_response_clear(&r);
		done += k;
	}
	if (json) {
		char *s;
		if (!(res = json_pack("{sOsO}", "added", added, "existing",
				      existing)) ||
		    !(s = json_dumps(res, JSON_COMPACT)))
			goto oom;
		fprintf(out, "%s\n", s);
		free(s);
	}
	status = 0;
	goto out;
oom:
	fprintf(stderr, "certherd: out of memory\n");
out:
	json_decref(res);
	json_decref(added);
	json_decref(existing);
	cli_response_clear(&r);
	return status;
}

int cli_do_ls(struct cli_client *c, int json, FILE *out, const char *status,
	      const char *prefix, size_t width)
{
	json_t *rows = json_array(), *doc = NULL;
	struct cli_response r = {0};
	char *cursor = NULL, *path = NULL;
	int rc = 1;

	if (!rows)
		goto oom;
	for (;;) {
		const json_t *page, *d, *next;
		size_t i;

		if (!(path = cli_url_domains(status, prefix, LS_PAGE, cursor)))
			goto oom;
		if (!(doc = call(c, "GET", path, NULL, &r)))
			goto out;
		page = json_object_get(doc, "domains");
		if (!json_is_array(page)) {
			fprintf(stderr,
				"certherd: the API's domain list has no "
				"\"domains\" array\n");
			goto out;
		}
		if (json) {
			json_array_foreach(page, i,
					   d) if (cli_fmt_domain_line(out, d) <
						  0) goto io;
			fflush(out);
		} else if (json_array_extend(rows, (json_t *)page) < 0) {
			goto oom;
		}
		next = json_object_get(doc, "next_cursor");
		if (!json_is_string(next) || !*json_string_value(next))
			break;
		/* a cursor that does not move would loop forever */
		if (cursor && strcmp(cursor, json_string_value(next)) == 0) {
			fprintf(stderr, "certherd: the API returned the same "
					"cursor twice; listing stopped\n");
			goto out;
		}
		free(cursor);
		if (!(cursor = strdup(json_string_value(next))))
			goto oom;
		json_decref(doc);
		doc = NULL;
		cli_response_clear(&r);
		free(path);
		path = NULL;
	}
	if (!json && cli_fmt_domains_table(out, rows, width) < 0)
		goto io;
	rc = 0;
	goto out;
io:
	fprintf(stderr, "certherd: cannot write the output: %s\n",
		strerror(errno));
	goto out;
oom:
	fprintf(stderr, "certherd: out of memory\n");
out:
	json_decref(doc);
	json_decref(rows);
	cli_response_clear(&r);
	free(cursor);
	free(path);
	return rc;
}

/* The shape every single-domain operation shares: one request, then the
 * raw JSON or render(). */
static int one(struct cli_client *c, int json, FILE *out, const char *method,
	       const char *path,
	       int (*render)(FILE *, const json_t *, const char *arg),
	       const char *arg)
{
	struct cli_response r = {0};
	json_t *doc;
	int rc = 1;

	if (!path) {
		fprintf(stderr, "certherd: out of memory\n");
		return 1;
	}
	if (!(doc = call(c, method, path, NULL, &r)))
		return 1;
	if (json)
		rc = put_raw(out, &r);
	else
		rc = render(out, doc, arg) < 0 ? 1 : 0;
	json_decref(doc);
	cli_response_clear(&r);
	return rc;
}

static int render_show(FILE *out, const json_t *d, const char *arg)
{
	return cli_fmt_domain_show(out, d);
}

static int render_rm(FILE *out, const json_t *d, const char *arg)
{
	char text[1024];

	return fprintf(out, "removed %s\n",
		       cli_fmt_text(
			   json_string_value(json_object_get(d, "name")) ?: arg,
			   0, text, sizeof(text))) < 0
		   ? -EIO
		   : 0;
}

static int render_renew(FILE *out, const json_t *d, const char *arg)
{
	char name[1024], at[128];

	cli_fmt_text(json_string_value(json_object_get(d, "name")) ?: arg, 0,
		     name, sizeof(name));
	cli_fmt_text(str_or_dash(json_object_get(d, "next_attempt_at")), 0, at,
		     sizeof(at));
	return fprintf(out, "renewal of %s requested; next attempt at %s\n",
		       name, at) < 0
		   ? -EIO
		   : 0;
}

static int render_status(FILE *out, const json_t *st, const char *arg)
{
	return cli_fmt_status(out, st);
}

int cli_do_show(struct cli_client *c, int json, FILE *out, const char *name)
{
	char *path = cli_url_domain(name, "");
	int rc = one(c, json, out, "GET", path, render_show, name);

	free(path);
	return rc;
}

int cli_do_rm(struct cli_client *c, int json, FILE *out, const char *name)
{
	char *path = cli_url_domain(name, "");
	int rc = one(c, json, out, "DELETE", path, render_rm, name);

	free(path);
	return rc;
}

/* `renew --ari`: ask the CA's renewalInfo first (set by cli_renew). */
static int renew_ask_ari;

int cli_do_renew(struct cli_client *c, int json, FILE *out, const char *name)
{
	char *path = cli_url_domain(name, renew_ask_ari ? "/renew?ari=true"
							: "/renew");
	int rc = one(c, json, out, "POST", path, render_renew, name);

	free(path);
	return rc;
}

int cli_do_status(struct cli_client *c, int json, FILE *out)
{
	return one(c, json, out, "GET", "/v1/status", render_status, NULL);
}

/* ---- commands ----------------------------------------------------------- */

static const char domains_usage[] =
    "usage: certherd [-c FILE | --socket PATH] domains <subcommand> "
    "[--json]\n"
    "\n"
    "  add NAME... [--file FILE]   register domains (FILE: one name per "
    "line,\n"
    "                              '#' comments); names go to the daemon "
    "as given\n"
    "  rm NAME...                  remove domains: their certificates stop "
    "renewing\n"
    "  ls [--status S,..] [--prefix P]\n"
    "                              list domains (--json: one object per "
    "line)\n"
    "  show NAME                   state, certificate, next attempt, "
    "history\n"
    "\n"
    "See `certherd --help` for the global options.\n";

/* Names from a file, as given (cli__names_line). Appends to *v (grown). */
static int names_file(const char *path, char ***v, size_t *n, size_t *cap,
		      char **keep)
{
	char *buf, *line, *save = NULL;
	size_t len;
	int rc = fsio_read_all(path, MAX_NAMES_FILE, &buf, &len);

	if (rc < 0) {
		fprintf(stderr, "certherd domains add: cannot read %s: %s\n",
			path, strerror(-rc));
		return rc;
	}
	*keep = buf; /* the names point into it */
	for (line = cli__names_line(buf, &save); line;
	     line = cli__names_line(NULL, &save)) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			char **nv = realloc(*v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = nc;
		}
		(*v)[(*n)++] = line;
	}
	return 0;
}

/* Terminal width for the table, 0 (no cut) when stdout is no terminal. */
static size_t term_width(void)
{
	struct winsize ws;

	if (!isatty(STDOUT_FILENO) ||
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
		return 0;
	return ws.ws_col;
}

static int open_client(const struct cli_global *g, struct cli_client *c)
{
	char err[1024];

	if (cli_client_open(c, g, err, sizeof(err)) < 0) {
		fprintf(stderr, "certherd: %s\n", err);
		return -1;
	}
	return 0;
}

enum { O_FILE = 256, O_STATUS, O_PREFIX };

static int domains_add(const struct cli_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, O_FILE},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char **names = NULL, *bufs[16] = {0};
	size_t n = 0, cap = 0, nbufs = 0;
	struct cli_client c = {0};
	int ch, status = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(domains_usage, stdout);
			status = 0;
			goto out;
		}
		if (ch != O_FILE) {
			fputs(domains_usage, stderr);
			goto out;
		}
		if (nbufs == sizeof(bufs) / sizeof(bufs[0])) {
			fprintf(stderr,
				"certherd domains add: at most %zu "
				"--file options\n",
				nbufs);
			goto out;
		}
		if (names_file(optarg, &names, &n, &cap, &bufs[nbufs++]) < 0) {
			status = 1;
			goto out;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			char **nv = realloc(names, nc * sizeof(*nv));
			if (!nv) {
				status = 1;
				goto out;
			}
			names = nv;
			cap = nc;
		}
		names[n++] = argv[i];
	}
	if (n == 0) {
		fprintf(stderr, "certherd domains add: no names given\n");
		goto out;
	}
	status = 1;
	if (open_client(g, &c) < 0)
		goto out;
	status = cli_do_add(&c, g->json, stdout, (const char *const *)names, n);
out:
	cli_client_close(&c);
	for (size_t i = 0; i < nbufs; i++)
		free(bufs[i]);
	free(names);
	return status;
}

static int domains_ls(const struct cli_global *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"status", required_argument, NULL, O_STATUS},
	    {"prefix", required_argument, NULL, O_PREFIX},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_client c = {0};
	const char *prefix = NULL;
	char *status_list = NULL;
	int ch, status = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == O_PREFIX) {
			prefix = optarg;
		} else if (ch == O_STATUS) {
			/* repeated --status adds to the list */
			char *s = NULL;
			if (asprintf(&s, "%s%s%s",
				     status_list ? status_list : "",
				     status_list ? "," : "", optarg) < 0) {
				status = 1;
				goto out;
			}
			free(status_list);
			status_list = s;
		} else {
			fputs(domains_usage, ch == 'h' ? stdout : stderr);
			status = ch == 'h' ? 0 : 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "certherd domains ls: unexpected \"%s\"\n",
			argv[optind]);
		goto out;
	}
	status = 1;
	if (open_client(g, &c) < 0)
		goto out;
	status =
	    cli_do_ls(&c, g->json, stdout, status_list, prefix, term_width());
out:
	cli_client_close(&c);
	free(status_list);
	return status;
}

/* rm, show, renew: NAME arguments and --help only. max 0: any number. */
static int by_name(const struct cli_global *g, int argc, char **argv,
		   const char *cmd, size_t max, const char *usage,
		   int (*op)(struct cli_client *, int, FILE *, const char *))
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_client c = {0};
	int ch, status = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		fputs(usage, ch == 'h' ? stdout : stderr);
		return ch == 'h' ? 0 : 2;
	}
	if (optind >= argc || (max && (size_t)(argc - optind) > max)) {
		fprintf(stderr, "certherd %s: %s\n\n%s", cmd,
			optind >= argc ? "no name given" : "one name only",
			usage);
		return 2;
	}
	if (open_client(g, &c) < 0)
		return 1;
	for (int i = optind; i < argc; i++)
		if (op(&c, g->json, stdout, argv[i]) != 0)
			status = 1; /* report, go on with the others */
	cli_client_close(&c);
	return status;
}

int cli_domains(const struct cli_global *g, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (!sub || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "help") == 0) {
		fputs(domains_usage, sub ? stdout : stderr);
		return sub ? 0 : 2;
	}
	if (strcmp(sub, "add") == 0)
		return domains_add(g, argc - 1, argv + 1);
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
		return domains_ls(g, argc - 1, argv + 1);
	if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
		return by_name(g, argc - 1, argv + 1, "domains rm", 0,
			       domains_usage, cli_do_rm);
	if (strcmp(sub, "show") == 0)
		return by_name(g, argc - 1, argv + 1, "domains show", 1,
			       domains_usage, cli_do_show);
	fprintf(stderr, "certherd domains: unknown subcommand \"%s\"\n\n%s",
		sub, domains_usage);
	return 2;
}

int cli_renew(const struct cli_global *g, int argc, char **argv)
{
	static const char usage[] =
	    "usage: certherd [-c FILE | --socket PATH] renew [--ari] NAME... "
	    "[--json]\n\n"
	    "Ask the daemon to renew these domains' certificates now (it "
	    "still obeys\nthe CA's rate limits). With --ari, ask the CA's "
	    "renewal information (RFC 9773)\nnow instead and renew only if "
	    "its window says so (after a CA announced\nrevocations).\n";
	int n = 0;

	/* --ari is ours; by_name knows only --help. */
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--ari") == 0) {
			renew_ask_ari = 1;
			continue;
		}
		argv[n++] = argv[i];
	}
	return by_name(g, n, argv, "renew", 0, usage, cli_do_renew);
}

int cli_status(const struct cli_global *g, int argc, char **argv)
{
	static const char usage[] =
	    "usage: certherd [-c FILE | --socket PATH] status [--json]\n\n"
	    "Domains per state and the daemon's queue and rate-limit "
	    "headroom.\n";
	struct cli_client c = {0};
	int status;

	if (argc > 1) {
		int help = strcmp(argv[1], "--help") == 0 ||
			   strcmp(argv[1], "-h") == 0;
		fputs(usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	if (open_client(g, &c) < 0)
		return 1;
	status = cli_do_status(&c, g->json, stdout);
	cli_client_close(&c);
	return status;
}
