/*
 * api — the daemon's control API: HTTP/JSON for the platform's application
 * (register, list, show, remove and renew customer domains, status) and
 * Prometheus metrics, served by libmicrohttpd on a unix socket (no token:
 * file permissions are the access control) and optionally on a TCP address
 * (bearer token required on every request).
 *
 * The API holds no business rules: it validates input, reads and writes
 * the store and wakes the scheduler. docs/api.md describes the endpoints.
 *
 * Threads: each listener (unix, TCP) is one libmicrohttpd daemon with one
 * internal polling thread and its OWN store handle (handles are per
 * thread), so the API never shares a handle with the caller's thread.
 * Every hook below is called from one of those threads, possibly from both
 * at once, never from the thread that called api_start.
 *
 * Error convention: int functions return 0 or a negative errno and write
 * a message into err (lower case, problem first) when they fail.
 */
#ifndef CERTHERD_API_H
#define CERTHERD_API_H

#include <stddef.h>
#include <stdio.h>

struct json_t; /* jansson's json_t */
struct api_server;

/* Bounds on what a client can make us do in one request. */
#define API_MAX_BODY_DEFAULT (1u << 20) /* bytes of request body */
#define API_MAX_NAMES	     10000	/* names in one POST /v1/domains */
#define API_LIST_DEFAULT     100	/* GET /v1/domains page size */
#define API_LIST_MAX	     1000
#define API_CONN_LIMIT	     256 /* concurrent connections per listener */
#define API_CONN_TIMEOUT_S   30	 /* idle/slow connection cut-off */

struct api_hooks {
	/*
	 * Domains were added or removed, or a renewal was requested: the
	 * scheduler should look at the store again. Must be thread-safe and
	 * must not block (the daemon uses uv_async_send). Called at most once
	 * per request, after the store write committed. NULL: nobody to wake.
	 */
	void (*wake)(void *ctx);
	/*
	 * Optional (NULL ok): name was removed (the store write committed),
	 * before wake: front mode stops serving it at once. Thread-safe,
	 * must not block.
	 */
	void (*removed)(void *ctx, const char *name);
	/*
	 * Optional (NULL ok): add members to the GET /v1/status object before
	 * it is sent (queue depth, rate-limit headroom, ...). obj is borrowed;
	 * set members with json_object_set_new. Return 0, or <0 to answer 500.
	 * Must be thread-safe.
	 */
	int (*status_extra)(void *ctx, struct json_t *obj);
	/*
	 * Optional (NULL ok): append lines in Prometheus text format 0.0.4
	 * (# HELP, # TYPE, samples) to out, after the API's own metrics.
	 * out is borrowed. Return 0, or <0 to answer 500. Must be thread-safe.
	 */
	int (*metrics_extra)(void *ctx, FILE *out);
	void *ctx; /* passed to every hook; borrowed */
};

struct api_opts {
	/* The API opens its own store handle(s) here. Required. */
	const char *state_dir;
	/* Unix socket path, or NULL for none. Created mode 0660 (chmod after
	 * bind, so the umask does not matter). An existing socket file is
	 * replaced only when nothing accepts connections on it; any other
	 * kind of file there is an error. Removed again by api_stop. */
	const char *socket_path;
	/* "ADDR:PORT", "[V6]:PORT" or ":PORT" (all addresses), or NULL.
	 * PORT 0 picks a free port (see api_tcp_port). Requires token. */
	const char *tcp_listen;
	/* Bearer token for TCP clients ("Authorization: Bearer <token>"),
	 * compared in constant time. Printable ASCII without spaces, 1..512
	 * bytes. Unix socket clients need none. Copied by api_start. */
	const char *token;
	/* Largest request body accepted; 0 means API_MAX_BODY_DEFAULT.
	 * Larger bodies get 413. */
	size_t max_body;
};

/*
 * Start listening. At least one of socket_path and tcp_listen must be
 * set. Borrows o and h (everything needed is copied). On success *out is
 * the running server (caller owns it: api_stop). On failure nothing keeps
 * running, no socket file is left behind, *out is NULL and err says why;
 * returns -EINVAL (bad options), -EADDRINUSE (another process listens on
 * the socket or the TCP address), -ENOMEM, or another negative errno.
 */
int api_start(const struct api_opts *o, const struct api_hooks *h,
	      struct api_server **out, char *err, size_t errsz);

/* The TCP port actually bound (useful with PORT 0), or 0 if no TCP
 * listener. */
unsigned api_tcp_port(const struct api_server *s);

/*
 * Stop both listeners (requests in flight finish first), close the store
 * handles, unlink the socket file if it is still the one we created, and
 * free s. No hook is called after api_stop returns. NULL ok.
 */
void api_stop(struct api_server *s);

#endif
