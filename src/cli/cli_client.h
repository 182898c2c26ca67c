/*
 * cli_client — the command line's side of the control API: find the
 * daemon, send one HTTP request over its unix socket (or TCP with a bearer
 * token), and turn the JSON answers into what an operator reads.
 *
 * It is its own header, apart from cli_internal.h, because this half of the
 * CLI needs no engine: only libcurl and jansson.
 *
 * Layers, pure first (tests reach each one alone):
 *   cli_url_*     build request paths with every user string escaped
 *   cli_fmt_*     render API JSON as tables, key: value lines, JSON lines
 *   cli_client_*  the HTTP transport (libcurl, blocking, bounded)
 *   cli_do_*      one operation each, what `certherd domains ...` runs
 *
 * Error convention: int functions return 0 or a negative errno, except
 * cli_do_*, which return the process exit status (0 ok, 1 the API refused
 * or the daemon could not be reached, messages on stderr). Pointers are
 * NULL on failure.
 */
#ifndef CERTHERD_CLI_CLIENT_H
#define CERTHERD_CLI_CLIENT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

struct cli_global;

#define CLI_DEFAULT_SOCKET "/var/lib/certherd/api.sock"
/* Largest API answer read; a page of domains is far below. */
#define CLI_MAX_RESPONSE (16u << 20)

/* ---- URLs (pure) --------------------------------------------------- */

/* Percent-encode everything but RFC 3986 unreserved characters. malloc'd
 * (caller frees) or NULL. */
char *cli_url_escape(const char *s);
/* "/v1/domains?status=..&prefix=..&limit=..&cursor=..": every argument
 * optional (NULL, limit <= 0). status is a comma-separated list: each
 * item is escaped, the commas are kept. malloc'd or NULL. */
char *cli_url_domains(const char *status, const char *prefix, long limit,
		      const char *cursor);
/* "/v1/domains/<escaped name><suffix>"; suffix "" or e.g. "/renew".
 * malloc'd or NULL. */
char *cli_url_domain(const char *name, const char *suffix);

/* ---- formatting (pure: writes only to the FILE given) --------------- */

/*
 * Copy s into out (size cap >= 4) for a terminal: control characters
 * (a CA's detail may hold newlines or escape sequences) become '?', and
 * when the text is longer than maxcols characters (0: no limit) it is cut
 * at a character boundary and ends with "...". Returns out.
 */
char *cli_fmt_text(const char *s, size_t maxcols, char *out, size_t cap);
/* A last_error value as "type: detail" (the ACME URN prefix
 * "urn:ietf:params:acme:error:" dropped); a plain string as it is; null
 * or absent as "". Returns out. */
char *cli_fmt_error(const json_t *err, char *out, size_t cap);
/* One domain as one compact JSON object and '\n', with at least name,
 * state, not_after and last_error (null when the API left one out).
 * 0 or -EIO/-ENOMEM. */
int cli_fmt_domain_line(FILE *out, const json_t *domain);
/* rows: array of domain objects. Columns NAME STATE NOT_AFTER LAST_ERROR
 * aligned to the widest value; the last column is cut so a line fits in
 * width columns (0: no limit). */
int cli_fmt_domains_table(FILE *out, const json_t *rows, size_t width);
/* GET /v1/domains/{name} as key: value lines, certificate and history. */
int cli_fmt_domain_show(FILE *out, const json_t *d);
/* GET /v1/status: total, counts per state, then the other members. */
int cli_fmt_status(FILE *out, const json_t *st);

/* ---- transport ------------------------------------------------------ */

struct cli_client {
	char *socket;  /* owned: unix socket path, NULL with api_url */
	char *api_url; /* owned: base URL for TCP, NULL with socket */
	char *token;   /* owned, wiped on free: bearer token or NULL */
	void *curl;    /* owned CURL easy handle, made on first request */
};

struct cli_response {
	long status; /* HTTP status */
	char *body;  /* owned, NUL-terminated */
	size_t len;
};

/*
 * Where the daemon is: --api-url (+ --token-file or api.token_file) for
 * TCP, else the socket: --socket, else api.socket of the -c file with the
 * --set overrides applied, else CLI_DEFAULT_SOCKET. 0 or negative errno
 * with a message in err.
 */
int cli_client_open(struct cli_client *c, const struct cli_global *g, char *err,
		    size_t errsz);
/* Set up c for a socket path, or for a base URL and token (copied). */
int cli_client_init(struct cli_client *c, const char *socket,
		    const char *api_url, const char *token);
/* Free what c owns; zeroed after. */
void cli_client_close(struct cli_client *c);
/* What c talks to, for messages: the socket path or the URL. */
const char *cli_client_where(const struct cli_client *c);

/*
 * One request: method "GET", "POST" or "DELETE", path from cli_url_*,
 * body JSON text or NULL. 0 with *r filled for any HTTP status (caller
 * frees with cli_response_clear), or negative with a message in err when
 * no answer came (not running, refused, timed out, answer larger than
 * CLI_MAX_RESPONSE).
 */
int cli_client_request(struct cli_client *c, const char *method,
		       const char *path, const char *body,
		       struct cli_response *r, char *err, size_t errsz);
void cli_response_clear(struct cli_response *r);

/* Print an error answer to stderr: "certherd: <detail>" from a problem
 * document (title or the status when it has no detail), and each
 * invalid[] entry as "certherd: <name>: <reason>". */
void cli_print_problem(const struct cli_response *r);

/* ---- operations: exit status, results on out, errors on stderr ------- */

int cli_do_add(struct cli_client *c, int json, FILE *out,
	       const char *const *names, size_t n);
int cli_do_ls(struct cli_client *c, int json, FILE *out, const char *status,
	      const char *prefix, size_t width);
int cli_do_show(struct cli_client *c, int json, FILE *out, const char *name);
int cli_do_rm(struct cli_client *c, int json, FILE *out, const char *name);
int cli_do_renew(struct cli_client *c, int json, FILE *out, const char *name);
int cli_do_status(struct cli_client *c, int json, FILE *out);

#endif
