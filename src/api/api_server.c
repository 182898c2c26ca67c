/*
 * api_server.c — the HTTP side of the control API: the listeners, request
 * bodies, bearer-token check, routing, and turning a handler's reply into
 * a libmicrohttpd response.
 *
 * Each listener is one libmicrohttpd daemon with one internal polling
 * thread and its own store handle (store handles are per thread). The
 * unix socket is created, bound and chmod'ed here and handed over with
 * MHD_OPTION_LISTEN_SOCKET, because libmicrohttpd only binds TCP itself.
 *
 * A request goes: first call (headers only) -> auth (TCP) and
 * Content-Length check -> body chunks appended up to max_body -> last call
 * (upload size 0) -> route -> handler fills struct api_reply -> queued.
 * Anything refused early (401, 413 by Content-Length) is queued on the
 * first call, so the body is never read.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <microhttpd.h>

#include "api/api_internal.h"
#include "util/util.h"

#define TOKEN_MAX 512

struct api_listener {
	struct api_server *srv;
	struct MHD_Daemon *mhd;
	struct store *st;
	int tcp; /* requires the bearer token */
};

struct api_server {
	struct api_hooks hooks;
	char *token;
	size_t token_len;
	size_t max_body;
	char *socket_path; /* NULL when no unix listener */
	dev_t sock_dev;	   /* identity of the socket file we created */
	ino_t sock_ino;
	struct api_listener ux;
	struct api_listener tcp;
};

/* Per-request state, freed in the completion callback. */
struct req {
	char *body;
	size_t len, cap;
	int too_large; /* body grew past max_body: answer 413 at the end */
};

/* ---- replies ---------------------------------------------------------- */

static void reply_reset(struct api_reply *r)
{
	json_decref(r->json);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

json_t *api__problem(struct api_call *c, unsigned status, const char *kind,
		     const char *title, const char *fmt, ...)
{
	char detail[1024], type[96];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(type, sizeof(type), "urn:certherd:problem:%s", kind);
	reply_reset(&c->reply);
	c->reply.status = status;
	c->reply.problem = 1;
	o = json_object();
	/* detail may quote client bytes cut by vsnprintf: api__str makes
	 * sure it stays valid UTF-8 */
	if (!o || json_object_set_new(o, "type", json_string(type)) ||
	    json_object_set_new(o, "title", json_string(title)) ||
	    json_object_set_new(o, "status", json_integer(status)) ||
	    json_object_set_new(o, "detail",
				api__str(detail, sizeof(detail)))) {
		json_decref(o);
		return NULL;
	}
	c->reply.json = o;
	return o;
}

void api__store_problem(struct api_call *c, int rc, const char *what)
{
	const char *msg = store_errmsg(c->st);

	if (rc == -EBUSY) {
		api__problem(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
			     "Store busy",
			     "%s: the database is busy, retry shortly", what);
		c->reply.retry_after_s = 1;
		return;
	}
	log_error("api", NULL, "%s: %s (%s)", what, strerror(-rc),
		  msg ? msg : "");
	api__problem(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "store", "Store error",
		     "%s: %s", what, strerror(-rc));
}

void api__json(struct api_call *c, unsigned status, json_t *obj)
{
	reply_reset(&c->reply);
	c->reply.status = status;
	c->reply.json = obj; /* NULL is answered as a bare 500 */
}

const char *api__arg(const struct api_call *c, const char *key)
{
	for (size_t i = 0; i < c->n_args; i++)
		if (strcmp(c->args[i].key, key) == 0)
			return c->args[i].value ? c->args[i].value : "";
	return NULL;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn,
				  struct api_reply *r)
{
	struct MHD_Response *resp;
	const char *ctype = r->content_type;
	char *body = r->text;
	size_t len = r->text_len;
	unsigned status = r->status;
	enum MHD_Result ret;
	char num[24];

	if (r->json) {
		body = json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY);
		ctype = r->problem ? "application/problem+json"
				   : "application/json";
		if (body) {
			len = strlen(body);
			/* one more byte: a trailing newline for shell users */
			char *nl = realloc(body, len + 2);
			if (nl) {
				body = nl;
				body[len++] = '\n';
				body[len] = '\0';
			}
		}
	} else {
		r->text = NULL; /* ownership moves to the response */
	}
	if (!body) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ctype = "text/plain";
		len = 0;
	}
	resp = MHD_create_response_from_buffer(len, body ? body : (void *)"",
					       body ? MHD_RESPMEM_MUST_FREE
						    : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (r->allow)
		MHD_add_response_header(resp, "Allow", r->allow);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, "WWW-Authenticate",
					"Bearer realm=\"certherd\"");
	if (r->retry_after_s > 0) {
		snprintf(num, sizeof(num), "%d", r->retry_after_s);
		MHD_add_response_header(resp, "Retry-After", num);
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- routing ---------------------------------------------------------- */

static int is_get(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static void not_allowed(struct api_call *c, const char *method,
			const char *allow)
{
	api__problem(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
		     "Method not allowed", "%s is not allowed here; use %s",
		     method, allow);
	c->reply.allow = allow;
}

/*
 * /v1/domains                   GET list, POST add
 * /v1/domains/{name}            GET show, DELETE remove
 * /v1/domains/{name}/renew      POST renew
 * /v1/status                    GET
 * /metrics                      GET
 * The path was percent-decoded by libmicrohttpd, so an IDN arrives as
 * UTF-8 and name_normalize turns it into its A-label form.
 */
static void route(struct api_call *c, const char *method, const char *url)
{
	static const char dom[] = "/v1/domains";
	char name[NAME_MAX_LEN * 4 + 1];
	const char *rest, *slash;
	size_t nl;

	if (strcmp(url, dom) == 0 || strcmp(url, "/v1/domains/") == 0) {
		if (is_get(method))
			api__domains_list(c);
		else if (strcmp(method, "POST") == 0)
			api__domains_add(c);
		else
			not_allowed(c, method, "GET, HEAD, POST");
		return;
	}
	if (strcmp(url, "/v1/status") == 0) {
		if (is_get(method))
			api__status(c);
		else
			not_allowed(c, method, "GET, HEAD");
		return;
	}
	if (strcmp(url, "/metrics") == 0) {
		if (is_get(method))
			api__metrics(c);
		else
			not_allowed(c, method, "GET, HEAD");
		return;
	}
	if (strncmp(url, "/v1/domains/", sizeof(dom)) != 0)
		goto not_found;
	rest = url + sizeof(dom);
	slash = strchr(rest, '/');
	nl = slash ? (size_t)(slash - rest) : strlen(rest);
	if (nl == 0 || nl >= sizeof(name)) {
		if (nl == 0)
			goto not_found;
		api__problem(c, MHD_HTTP_BAD_REQUEST, "invalid-name",
			     "Invalid domain name",
			     "domain name in the path is too long (%zu bytes)",
			     nl);
		return;
	}
	memcpy(name, rest, nl);
	name[nl] = '\0';
	if (!slash) {
		if (is_get(method))
			api__domain_show(c, name);
		else if (strcmp(method, "DELETE") == 0)
			api__domain_delete(c, name);
		else
			not_allowed(c, method, "GET, HEAD, DELETE");
		return;
	}
	if (strcmp(slash, "/renew") == 0) {
		if (strcmp(method, "POST") == 0)
			api__domain_renew(c, name);
		else
			not_allowed(c, method, "POST");
		return;
	}
not_found:
	api__problem(c, MHD_HTTP_NOT_FOUND, "not-found", "Not found",
		     "no such endpoint: %.200s (see docs/api.md)", url);
}

/* ---- authentication --------------------------------------------------- */

/* Constant time in the length of the expected token: the loop does not
 * stop at the first difference nor at the end of the offered value. */
static int token_ok(const struct api_server *s, const char *offered)
{
	size_t olen = strlen(offered), i;
	unsigned char diff = (unsigned char)(olen != s->token_len);

	for (i = 0; i < s->token_len; i++)
		diff |= (unsigned char)s->token[i] ^
			(unsigned char)(i < olen ? offered[i] : 0);
	return diff == 0;
}

static int authorized(const struct api_server *s, struct MHD_Connection *conn)
{
	const char *h =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return token_ok(s, h);
}

/* ---- the access handler ---------------------------------------------- */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	struct api_call *c = cls;

	(void)kind;
	if (c->n_args == API_ARGS_MAX)
		return MHD_NO; /* too many: reported by the caller */
	c->args[c->n_args].key = key;
	c->args[c->n_args].value = value;
	c->n_args++;
	return MHD_YES;
}

static enum MHD_Result early(struct MHD_Connection *conn, unsigned status,
			     const char *kind, const char *title,
			     const char *detail)
{
	struct api_call c;
	enum MHD_Result ret;

	memset(&c, 0, sizeof(c));
	api__problem(&c, status, kind, title, "%s", detail);
	ret = send_reply(conn, &c.reply);
	reply_reset(&c.reply);
	return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_len, void **req_cls)
{
	struct api_listener *l = cls;
	struct api_server *s = l->srv;
	struct req *rq = *req_cls;
	struct api_call c;
	enum MHD_Result ret;
	char msg[160];

	(void)version;
	if (!rq) {
		const char *cl;

		/* first call: headers only. Refuse before reading a body. */
		if (l->tcp && !authorized(s, conn))
			return early(conn, MHD_HTTP_UNAUTHORIZED,
				     "unauthorized", "Unauthorized",
				     "missing or wrong bearer token: send "
				     "\"Authorization: Bearer <token>\"");
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->max_body) {
			snprintf(msg, sizeof(msg),
				 "request body of %.20s bytes is larger than "
				 "the limit of %zu bytes",
				 cl, s->max_body);
			return early(conn, MHD_HTTP_CONTENT_TOO_LARGE,
				     "too-large", "Request too large", msg);
		}
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*req_cls = rq;
		return MHD_YES;
	}
	if (*upload_len) {
		/* Chunked bodies have no Content-Length: count as they come
		 * and discard past the limit (the connection timeout bounds
		 * how long a client can keep sending). */
		size_t n = *upload_len;

		*upload_len = 0;
		if (rq->too_large || n > s->max_body - rq->len) {
			rq->too_large = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
			return MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			char *nb;

			while (cap < rq->len + n)
				cap *= 2;
			if (cap > s->max_body)
				cap = s->max_body;
			nb = realloc(rq->body, cap);
			if (!nb)
				return MHD_NO;
			rq->body = nb;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		return MHD_YES;
	}
	if (rq->too_large) {
		snprintf(msg, sizeof(msg),
			 "request body is larger than the limit of %zu bytes",
			 s->max_body);
		return early(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too-large",
			     "Request too large", msg);
	}

	memset(&c, 0, sizeof(c));
	c.st = l->st;
	c.hooks = &s->hooks;
	c.now_ms = clock_wall_ms();
	c.body = rq->body;
	c.body_len = rq->len;
	if (MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg,
				      &c) > API_ARGS_MAX)
		api__problem(&c, MHD_HTTP_BAD_REQUEST, "bad-param",
			     "Bad query parameter",
			     "too many query parameters (at most %d)",
			     API_ARGS_MAX);
	else
		route(&c, method, url);
	if (c.reply.status >= 500)
		log_warn("api", NULL, "%s %.200s -> %u", method, url,
			 c.reply.status);
	else
		log_debug("api", NULL, "%s %.200s -> %u", method, url,
			  c.reply.status);
	ret = send_reply(conn, &c.reply);
	reply_reset(&c.reply);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*req_cls = NULL;
	}
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_warn("api", NULL, "http server: %s", buf);
}

/* ---- listeners -------------------------------------------------------- */

static struct MHD_Daemon *start_mhd(struct api_listener *l, unsigned flags,
				    int fd, const struct sockaddr *sa)
{
	/*
	 * One internal thread per listener; the connection memory limit
	 * bounds headers, bodies are bounded by max_body above

	 * (the logger must come first to catch messages about the rest)
	 */
	if (fd >= 0)
		return MHD_start_daemon(
		    flags, 0, NULL, NULL, answer, l, MHD_OPTION_EXTERNAL_LOGGER,
		    mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_LIMIT,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
		    MHD_OPTION_END);
	return MHD_start_daemon(
	    flags, 0, NULL, NULL, answer, l, MHD_OPTION_EXTERNAL_LOGGER,
	    mhd_log, NULL, MHD_OPTION_SOCK_ADDR, sa,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_LIMIT,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
}

/*
 * Create, bind and listen on the unix socket. A file already at path is
 * replaced only if it is a socket nobody accepts on (a previous run that
 * died); a live daemon or a non-socket file is an error, never deleted.
 */
static int unix_listen(struct api_server *s, const char *path, int *fdp,
		       char *err, size_t errsz)
{
	struct sockaddr_un sa;
	struct stat sb;
	int fd = -1, rc;

	*fdp = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errsz,
			 "API socket path too long (at most %zu bytes): %.200s",
			 sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, errsz,
				 "cannot create API socket %.200s: a file that "
				 "is not a socket is in the way",
				 path);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto sys;
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		fd = -1;
		if (rc == 0) {
			snprintf(err, errsz,
				 "API socket %.200s is in use: is another "
				 "certherd running?",
				 path);
			return -EADDRINUSE;
		}
		if (unlink(path) < 0 && errno != ENOENT)
			goto sys;
		log_info("api", NULL, "replaced stale API socket %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto sys;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto sys;
	/* chmod after bind: the mode must not depend on the umask */
	if (chmod(path, 0660) < 0 || lstat(path, &sb) < 0)
		goto sys_unlink;
	s->sock_dev = sb.st_dev;
	s->sock_ino = sb.st_ino;
	if (listen(fd, 128) < 0)
		goto sys_unlink;
	*fdp = fd;
	return 0;
sys_unlink:
	rc = -errno;
	unlink(path);
	goto fail;
sys:
	rc = -errno;
fail:
	snprintf(err, errsz, "cannot create API socket %.200s: %s", path,
		 strerror(-rc));
	if (fd >= 0)
		close(fd);
	return rc;
}

static int token_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > TOKEN_MAX)
		return 0;
	for (; *t; t++)
		if (*t <= ' ' || *t > '~')
			return 0;
	return 1;
}

unsigned api_tcp_port(const struct api_server *s)
{
	const union MHD_DaemonInfo *i;

	if (!s || !s->tcp.mhd)
		return 0;
	i = MHD_get_daemon_info(s->tcp.mhd, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : 0;
}

int api_start(const struct api_opts *o, const struct api_hooks *h,
	      struct api_server **out, char *err, size_t errsz)
{
	static const struct api_hooks none;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	struct api_server *s = NULL;
	int fd = -1, rc = -EINVAL;

	if (out)
		*out = NULL;
	if (!o || !out || !o->state_dir ||
	    (!o->socket_path && !o->tcp_listen)) {
		snprintf(err, errsz,
			 "API needs a state directory and a socket or a TCP "
			 "address");
		return -EINVAL;
	}
	if (o->tcp_listen && (!o->token || !token_valid(o->token))) {
		snprintf(err, errsz,
			 "API on TCP %.100s needs a token (1..%d printable "
			 "characters, no spaces)",
			 o->tcp_listen, TOKEN_MAX);
		return -EINVAL;
	}
	if (o->tcp_listen && addr_parse_listen(o->tcp_listen, 1, &ss, err, errsz) < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->hooks = h ? *h : none;
	s->max_body = o->max_body ? o->max_body : API_MAX_BODY_DEFAULT;
	s->ux.srv = s->tcp.srv = s;
	s->tcp.tcp = 1;
	if (o->token && !(s->token = strdup(o->token)))
		goto oom;
	s->token_len = s->token ? strlen(s->token) : 0;

	if (o->socket_path) {
		rc = store_open(o->state_dir, &s->ux.st, err, errsz);
		if (rc < 0)
			goto fail;
		if (!(s->socket_path = strdup(o->socket_path)))
			goto oom;
		rc = unix_listen(s, o->socket_path, &fd, err, errsz);
		if (rc < 0) {
			free(s->socket_path);
			s->socket_path = NULL; /* nothing of ours to unlink */
			goto fail;
		}
		s->ux.mhd = start_mhd(&s->ux, flags, fd, NULL);
		if (!s->ux.mhd) {
			close(fd);
			snprintf(err, errsz,
				 "cannot serve the API on %.200s (see log)",
				 o->socket_path);
			rc = -EIO;
			goto fail;
		}
	}
	if (o->tcp_listen) {
		rc = store_open(o->state_dir, &s->tcp.st, err, errsz);
		if (rc < 0)
			goto fail;
		s->tcp.mhd = start_mhd(
		    &s->tcp,
		    flags | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), -1,
		    (struct sockaddr *)&ss);
		if (!s->tcp.mhd) {
			snprintf(err, errsz,
				 "cannot listen on %.100s for the API (address "
				 "in use or not permitted)",
				 o->tcp_listen);
			rc = -EADDRINUSE;
			goto fail;
		}
	}
	log_info(
	    "api", NULL, "control API on%s%s%s%s", s->socket_path ? " " : "",
	    s->socket_path ? s->socket_path : "", o->tcp_listen ? " tcp " : "",
	    o->tcp_listen ? o->tcp_listen : "");
	*out = s;
	return 0;
oom:
	snprintf(err, errsz, "out of memory");
	rc = -ENOMEM;
fail:
	api_stop(s);
	return rc;
}

void api_stop(struct api_server *s)
{
	struct stat sb;

	if (!s)
		return;
	/* stops the threads (and closes the listening sockets, ours
	 * included) before the store handles they use go away */
	if (s->tcp.mhd)
		MHD_stop_daemon(s->tcp.mhd);
	if (s->ux.mhd)
		MHD_stop_daemon(s->ux.mhd);
	store_close(s->tcp.st);
	store_close(s->ux.st);
	/* unlink only the file we created: a newer daemon may own the path */
	if (s->socket_path && lstat(s->socket_path, &sb) == 0 &&
	    sb.st_dev == s->sock_dev && sb.st_ino == s->sock_ino)
		unlink(s->socket_path);
	free(s->socket_path);
	if (s->token) {
		explicit_bzero(s->token, s->token_len);
		free(s->token);
	}
	free(s);
}
