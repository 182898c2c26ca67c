/*
 * engine_chall.c — the in-process HTTP-01 responder: answers
 * GET /.well-known/acme-challenge/<token> with the key authorization of an
 * order in flight (RFC 8555 §8.3), everything else with 404.
 *
 * libmicrohttpd runs the listener on its own thread; the loop thread
 * publishes and withdraws responses, so the token table is guarded by a
 * mutex. The table is a chained hash keyed by token: thousands of orders
 * in flight look up in O(1). A token not in it goes to the optional
 * lookup (the daemon's store, shared with other nodes), on this thread.
 *
 * Redirects keep the query string: libmicrohttpd hands the handler the
 * decoded path only, so the request line's raw URI is caught by its
 * URI log callback and kept as the request's context.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "engine/engine.h"
#include "util/util.h"

#define PREFIX "/.well-known/acme-challenge/"
#define BUCKETS 4096

struct entry {
	char *token;
	char *key_auth;
	struct entry *next;
};

struct engine_chall {
	struct MHD_Daemon *mhd;
	/* other requests: 308 to https instead of 404; atomic because a
	 * reload (loop thread) changes it while MHD's thread reads it */
	atomic_int redirect;
	engine_chall_lookup_fn lookup;
	void *lookup_ctx;
	pthread_mutex_t lock;
	struct entry *buckets[BUCKETS];
	size_t count;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % BUCKETS;
}

/*
 * "https://HOST/PATH?QUERY" for a plain-http request (url: the raw
 * request target), or -EINVAL when the Host header is not a domain name
 * we would have a certificate for (an IP, a bad name: no redirect to
 * wherever a client says). The target is passed on only if it is
 * printable ASCII and bounded.
 */
static int https_location(struct MHD_Connection *conn, const char *url,
			  char *out, size_t outsz)
{
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       "Host");
	char h[NAME_MAX_LEN + 8], name[NAME_MAX_LEN + 1];
	size_t ulen = strlen(url);
	char *colon;

	if (!host || strlen(host) >= sizeof(h) || url[0] != '/' || ulen > 2048)
		return -EINVAL;
	for (size_t i = 0; i < ulen; i++)
		if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
			return -EINVAL;
	snprintf(h, sizeof(h), "%s", host);
	if ((colon = strchr(h, ':')))
		*colon = '\0';
	if (name_normalize(h, 0, name, sizeof(name), NULL, 0) < 0)
		return -EINVAL;
	snprintf(out, outsz, "https://%s%s", name, url);
	return 0;
}

/* The raw request target, before libmicrohttpd splits off the query:
 * becomes the request's *req_cls (freed by done). */
static void *raw_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)conn;
	return uri && strlen(uri) <= 2048 ? strdup(uri) : NULL;
}

static void done(void *cls, struct MHD_Connection *conn, void **req_cls,
		 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*req_cls);
	*req_cls = NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_len, void **req_cls)
{
	struct engine_chall *ch = cls;
	struct MHD_Response *r;
	const char *token;
	char *body = NULL, location[NAME_MAX_LEN + 2048 + 16];
	const char *raw = *req_cls;
	unsigned status = MHD_HTTP_NOT_FOUND;
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	if (*upload_len)
		return MHD_NO; /* no request bodies here */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		goto reply;
	}
	if (strncmp(url, PREFIX, strlen(PREFIX)) != 0) {
		/* The raw target when we have it (a missing one means an
		 * oversized or odd request line: the path alone then). */
		if (atomic_load(&ch->redirect) &&
		    https_location(conn, raw && raw[0] == '/' ? raw : url,
				   location, sizeof(location)) == 0)
			status = MHD_HTTP_PERMANENT_REDIRECT;
		goto reply;
	}
	token = url + strlen(PREFIX);
	if (acme_token_valid(token) < 0)
		goto reply;
	pthread_mutex_lock(&ch->lock);
	for (struct entry *e = ch->buckets[hash(token)]; e; e = e->next)
		if (strcmp(e->token, token) == 0) {
			body = strdup(e->key_auth);
			break;
		}
	pthread_mutex_unlock(&ch->lock);
	if (!body && ch->lookup) {
		char ka[512]; /* token "." thumbprint: ~130 bytes */

		if (ch->lookup(ch->lookup_ctx, token, ka, sizeof(ka)) == 0)
			body = strdup(ka);
	}
	if (body)
		status = MHD_HTTP_OK;
reply:
	r = MHD_create_response_from_buffer(body ? strlen(body) : 0,
					    body ? body : (void *)"",
					    body ? MHD_RESPMEM_MUST_FREE
						 : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/plain");
	if (status == MHD_HTTP_PERMANENT_REDIRECT)
		MHD_add_response_header(r, "Location", location);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

struct engine_chall *engine_chall_new(const char *listen, int redirect,
				      engine_chall_lookup_fn lookup,
				      void *lookup_ctx, char *err, size_t errsz)
{
	struct engine_chall *ch;
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

	if (addr_parse_listen(listen, 0, &ss, err, errsz) < 0)
		return NULL;
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&ch->lock, NULL);
	atomic_init(&ch->redirect, redirect ? 1 : 0);
	ch->lookup = lookup;
	ch->lookup_ctx = lookup_ctx;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	ch->mhd = MHD_start_daemon(
		flags, ntohs(((struct sockaddr_in *)&ss)->sin_port), NULL, NULL,
		answer, ch, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
		MHD_OPTION_URI_LOG_CALLBACK, raw_uri, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
	if (!ch->mhd) {
		snprintf(err, errsz,
			 "cannot listen on %s for HTTP-01 (address in use or "
			 "not permitted)",
			 listen);
		pthread_mutex_destroy(&ch->lock);
		free(ch);
		return NULL;
	}
	return ch;
}

static int publish(void *ctx, enum acme_chall_type type, const char *domain,
		   const char *token, const char *key_auth)
{
	struct engine_chall *ch = ctx;
	struct entry *e;
	unsigned b;

	(void)domain;
	if (type != ACME_CHALL_HTTP01)
		return -ENOTSUP;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->token = strdup(token);
	e->key_auth = strdup(key_auth);
	if (!e->token || !e->key_auth) {
		free(e->token);
		free(e->key_auth);
		free(e);
		return -ENOMEM;
	}
	b = hash(token);
	pthread_mutex_lock(&ch->lock);
	e->next = ch->buckets[b];
	ch->buckets[b] = e;
	ch->count++;
	pthread_mutex_unlock(&ch->lock);
	log_debug("http01", domain, "serving token %s", token);
	return 0;
}

static void unpublish(void *ctx, enum acme_chall_type type, const char *domain,
		      const char *token)
{
	struct engine_chall *ch = ctx;
	struct entry **pp, *e = NULL;

	(void)type;
	(void)domain;
	pthread_mutex_lock(&ch->lock);
	for (pp = &ch->buckets[hash(token)]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->token, token) == 0) {
			e = *pp;
			*pp = e->next;
			ch->count--;
			break;
		}
	pthread_mutex_unlock(&ch->lock);
	if (e) {
		free(e->token);
		free(e->key_auth);
		free(e);
	}
}

struct acme_challenge_hooks engine_chall_hooks(struct engine_chall *ch)
{
	struct acme_challenge_hooks h = {publish, unpublish, ch};

	return h;
}

void engine_chall_set_redirect(struct engine_chall *ch, int redirect)
{
	atomic_store(&ch->redirect, redirect ? 1 : 0);
}

size_t engine_chall_count(struct engine_chall *ch)
{
	size_t n;

	pthread_mutex_lock(&ch->lock);
	n = ch->count;
	pthread_mutex_unlock(&ch->lock);
	return n;
}

void engine_chall_free(struct engine_chall *ch)
{
	if (!ch)
		return;
	MHD_stop_daemon(ch->mhd);
	for (size_t i = 0; i < BUCKETS; i++) {
		struct entry *e = ch->buckets[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e->token);
			free(e->key_auth);
			free(e);
		}
	}
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}
