/*
 * cli_client.c — the HTTP side of the CLI: request paths with escaping,
 * finding the daemon (flags, then the config file), one blocking libcurl
 * request at a time over the daemon's unix socket or TCP, and the error
 * answers (problem documents) turned into one line each.
 *
 * Blocking and one handle are enough here: a command makes a handful of
 * sequential requests (pages of `domains ls`, batches of `domains add`)
 * and the handle keeps the connection between them. Every answer is
 * bounded by CLI_MAX_RESPONSE; a bigger one is an error, not a realloc
 * storm.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "cli/cli_client.h"
#include "cli/cli_internal.h"
#include "util/config.h"
#include "util/util.h"

#define CONNECT_TIMEOUT_MS 5000L
#define TOTAL_TIMEOUT_MS   120000L

/* ---- a growable string for building paths ---------------------------- */

struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		char *np;
		while (nc < b->len + n + 1)
			nc *= 2;
		if (!(np = realloc(b->p, nc))) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_escape(struct sb *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~') {
			sb_putn(b, (const char *)&ch, 1);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			sb_putn(b, e, 3);
		}
	}
}

static char *sb_take(struct sb *b)
{
	if (b->oom || !b->p) {
		free(b->p);
		return b->oom ? NULL : strdup("");
	}
	return b->p;
}

/* ---- URLs ------------------------------------------------------------ */

char *cli_url_escape(const char *s)
{
	struct sb b = {0};

	sb_escape(&b, s, strlen(s));
	return sb_take(&b);
}

char *cli_url_domains(const char *status, const char *prefix, long limit,
		      const char *cursor)
{
	struct sb b = {0};
	char sep = '?';

	sb_puts(&b, "/v1/domains");
	if (status && *status) {
		const char *p = status;
		sb_puts(&b, "?status=");
		sep = '&';
		for (;;) {
			size_t n = strcspn(p, ",");
			sb_escape(&b, p, n);
			if (!p[n])
				break;
			sb_puts(&b, ",");
			p += n + 1;
		}
	}
	if (prefix && *prefix) {
		sb_putn(&b, &sep, 1);
		sep = '&';
		sb_puts(&b, "prefix=");
		sb_escape(&b, prefix, strlen(prefix));
	}
	if (limit > 0) {
		char num[32];
		snprintf(num, sizeof(num), "%climit=%ld", sep, limit);
		sep = '&';
		sb_puts(&b, num);
	}
	if (cursor && *cursor) {
		sb_putn(&b, &sep, 1);
		sb_puts(&b, "cursor=");
		sb_escape(&b, cursor, strlen(cursor));
	}
	return sb_take(&b);
}

char *cli_url_domain(const char *name, const char *suffix)
{
	struct sb b = {0};

	sb_puts(&b, "/v1/domains/");
	sb_escape(&b, name, strlen(name));
	sb_puts(&b, suffix ? suffix : "");
	return sb_take(&b);
}

/* ---- finding the daemon --------------------------------------------- */

int cli_client_init(struct cli_client *c, const char *socket,
		    const char *api_url, const char *token)
{
	memset(c, 0, sizeof(*c));
	if ((socket && !(c->socket = strdup(socket))) ||
	    (api_url && !(c->api_url = strdup(api_url))) ||
	    (token && !(c->token = strdup(token)))) {
		cli_client_close(c);
		return -ENOMEM;
	}
	/* paths start with '/': "http://h:1/" + "/v1" would be "//v1" */
	if (c->api_url) {
		size_t n = strlen(c->api_url);
		while (n > 0 && c->api_url[n - 1] == '/')
			c->api_url[--n] = '\0';
	}
	return 0;
}

void cli_client_close(struct cli_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	free(c->socket);
	free(c->api_url);
	memset(c, 0, sizeof(*c));
}

const char *cli_client_where(const struct cli_client *c)
{
	return c->api_url ? c->api_url : c->socket;
}

/* The effective configuration of -c FILE and --set, validated as the
 * daemon would, so the CLI derives api.socket exactly as `serve` does. */
static int load_config(const struct cli_global *g, struct config *cfg,
		       char *err, size_t errsz)
{
	return cli__plain_config(g, cfg, err, errsz);
}

int cli_client_open(struct cli_client *c, const struct cli_global *g, char *err,
		    size_t errsz)
{
	struct config cfg;
	char *token = NULL;
	int rc, have_cfg = 0;

	memset(c, 0, sizeof(*c));
	/* --socket alone needs no config: a broken file must not keep an
	 * operator from talking to a running daemon. */
	if (!g->socket || (g->api_url && !g->token_file && g->config)) {
		if ((rc = load_config(g, &cfg, err, errsz)) < 0)
			return rc;
		have_cfg = 1;
	}
	if (g->api_url) {
		const char *tf = g->token_file;
		if (!tf && have_cfg && cfg.api.token_file[0])
			tf = cfg.api.token_file;
		if (tf && (rc = config_read_secret(tf, "--token-file", &token,
						   err, errsz)) < 0)
			goto out;
		rc = cli_client_init(c, NULL, g->api_url, token);
	} else {
		const char *sock = g->socket;
		if (!sock)
			sock = have_cfg && cfg.api.socket[0]
				   ? cfg.api.socket
				   : CLI_DEFAULT_SOCKET;
		if (strlen(sock) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errsz, "socket path too long: %s", sock);
			rc = -ENAMETOOLONG;
			goto out;
		}
		rc = cli_client_init(c, sock, NULL, NULL);
	}
	if (rc < 0)
		snprintf(err, errsz, "out of memory");
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	if (have_cfg)
		config_free(&cfg);
	return rc;
}

/* ---- one request ------------------------------------------------------ */

struct recv {
	struct cli_response *r;
	size_t cap;
	int too_big;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct recv *rv = arg;
	struct cli_response *r = rv->r;
	size_t n = size * nmemb;

	if (n > CLI_MAX_RESPONSE - r->len) {
		rv->too_big = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > rv->cap) {
		size_t nc = rv->cap ? rv->cap : 4096;
		char *nb;
		while (nc < r->len + n + 1)
			nc *= 2;
		if (!(nb = realloc(r->body, nc)))
			return 0;
		r->body = nb;
		rv->cap = nc;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Why a connection failed, in the words an operator can act on. */
static void connect_error(const struct cli_client *c, long os_errno,
			  const char *curlmsg, char *err, size_t errsz)
{
	const char *why = os_errno ? strerror((int)os_errno) : curlmsg;
	const char *hint = "";

	if (os_errno == ENOENT || os_errno == ECONNREFUSED || !os_errno)
		hint = " (is `certherd serve` running?)";
	else if (os_errno == EACCES || os_errno == EPERM)
		hint = " (is this user in the socket's group?)";
	snprintf(err, errsz, "cannot reach certherd at %s: %s%s",
		 cli_client_where(c), why, hint);
}

int cli_client_request(struct cli_client *c, const char *method,
		       const char *path, const char *body,
		       struct cli_response *r, char *err, size_t errsz)
{
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, *auth = NULL;
	struct curl_slist *hdrs = NULL, *h;
	struct recv rv = {.r = r};
	CURLcode cc;
	long os_errno = 0;
	int rc = -EIO;
	CURL *e;

	memset(r, 0, sizeof(*r));
	if (!c->curl && !(c->curl = curl_easy_init())) {
		snprintf(err, errsz, "cannot initialize libcurl");
		return -ENOMEM;
	}
	e = c->curl;
	curl_easy_reset(e); /* options of the last request go, the
			       connection stays */
	if (asprintf(&url, "%s%s", c->api_url ? c->api_url : "http://localhost",
		     path) < 0) {
		url = NULL;
		goto oom;
	}
	h = curl_slist_append(hdrs, "Accept: application/json");
	if (!h)
		goto oom;
	hdrs = h;
	if (body) {
		if (!(h = curl_slist_append(hdrs,
					    "Content-Type: application/json")))
			goto oom;
		hdrs = h;
	}
	if (c->token) {
		if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
			auth = NULL;
			goto oom;
		}
		if (!(h = curl_slist_append(hdrs, auth)))
			goto oom;
		hdrs = h;
	}
	if (c->socket)
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "certherd/" CERTHERD_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &rv);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
				 (long)(body ? strlen(body) : 0));
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		if (rv.too_big) {
			snprintf(err, errsz,
				 "answer from certherd at %s is larger than "
				 "%u bytes",
				 cli_client_where(c), CLI_MAX_RESPONSE);
			rc = -EFBIG;
		} else if (cc == CURLE_COULDNT_CONNECT) {
			curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
			connect_error(c, os_errno,
				      errbuf[0] ? errbuf
						: curl_easy_strerror(cc),
				      err, errsz);
			rc = os_errno ? -(int)os_errno : -ECONNREFUSED;
		} else if (cc == CURLE_OPERATION_TIMEDOUT) {
			snprintf(err, errsz,
				 "certherd at %s did not answer in time",
				 cli_client_where(c));
			rc = -ETIMEDOUT;
		} else {
			snprintf(err, errsz,
				 "request to certherd at %s failed: %s",
				 cli_client_where(c),
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		}
		cli_response_clear(r);
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	if (!r->body && !(r->body = strdup("")))
		goto oom;
	rc = 0;
	goto out;
oom:
	snprintf(err, errsz, "out of memory");
	cli_response_clear(r);
	rc = -ENOMEM;
out:
	curl_slist_free_all(hdrs);
	if (auth)
		explicit_bzero(auth, strlen(auth));
	free(auth);
	free(url);
	return rc;
}

void cli_response_clear(struct cli_response *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

void cli_print_problem(const struct cli_response *r)
{
	json_t *doc = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *detail = NULL;
	char text[1024];

	if (json_is_object(doc)) {
		detail = json_string_value(json_object_get(doc, "detail"));
		if (!detail || !*detail)
			detail =
			    json_string_value(json_object_get(doc, "title"));
	}
	if (detail && *detail) {
		fprintf(stderr, "certherd: %s\n",
			cli_fmt_text(detail, 0, text, sizeof(text)));
	} else if (r->body && r->len) {
		/* not a problem document (a proxy, an old daemon): show the
		 * start of what came, made safe for the terminal */
		fprintf(stderr, "certherd: HTTP %ld from the API: %s\n",
			r->status,
			cli_fmt_text(r->body, 200, text, sizeof(text)));
	} else {
		fprintf(stderr, "certherd: HTTP %ld from the API\n", r->status);
	}
	if (json_is_object(doc)) {
		json_t *inv = json_object_get(doc, "invalid"), *it;
		size_t i;
		json_array_foreach(inv, i, it)
		{
			char name[600];
			const char *n =
			    json_string_value(json_object_get(it, "name"));
			const char *why =
			    json_string_value(json_object_get(it, "reason"));
			if (!why)
				why = "invalid";
			if (detail && strstr(detail, why))
				continue; /* the detail said it already */
			cli_fmt_text(why, 0, text, sizeof(text));
			if (n && strstr(why, n)) /* the reason names it */
				fprintf(stderr, "certherd: %s\n", text);
			else
				fprintf(stderr, "certherd: %s: %s\n",
					cli_fmt_text(n ? n : "?", 0, name,
						     sizeof(name)),
					text);
		}
	}
	json_decref(doc);
}
