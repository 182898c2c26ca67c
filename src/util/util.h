/*
 * util — small helpers every module needs: logging to a sink, domain-name
 * normalization, base64url, atomic file writes, time.
 *
 * Error convention: functions returning int give 0 on success or a negative
 * errno value (-EINVAL, -ENOMEM, -EIO, ...). Functions returning pointers
 * give NULL on failure. Ownership is stated per function.
 */
#ifndef CERTHERD_UTIL_H
#define CERTHERD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- logging (log.c) ------------------------------------------------- */

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
	LOG_LVL__MAX
};

/* Lines go to stderr as logfmt: `ts=... level=info sub=acme domain=x msg="..."`.
 * `domain` may be NULL. Never pass key material or signatures. */
void log_set_level(enum log_level min);
enum log_level log_get_level(void);
/* Parse "debug|info|warn|error"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
void log_msg(enum log_level lvl, const char *sub, const char *domain,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(sub, dom, ...) \
	do { if (log_get_level() <= LOG_LVL_DEBUG) \
		log_msg(LOG_LVL_DEBUG, sub, dom, __VA_ARGS__); } while (0)
#define log_info(sub, dom, ...) log_msg(LOG_LVL_INFO, sub, dom, __VA_ARGS__)
#define log_warn(sub, dom, ...) log_msg(LOG_LVL_WARN, sub, dom, __VA_ARGS__)
#define log_error(sub, dom, ...) log_msg(LOG_LVL_ERROR, sub, dom, __VA_ARGS__)

/* ---- domain names (name.c) ------------------------------------------- */

#define NAME_MAX_LEN 253

enum name_flags {
	NAME_ALLOW_WILDCARD = 1 << 0, /* accept a leading "*." label */
};

/*
 * Normalize a domain name given by a user or a peer into the form sent to
 * the CA: lower-case, trailing dot removed, IDN (UTF-8) converted to
 * punycode A-labels (libidn2, IDNA2008 + UTS#46 non-transitional), then
 * checked: total length <= 253, labels 1..63 of [a-z0-9-] not starting or
 * ending with '-', at least two labels, not an IP literal, wildcard only
 * as the whole leftmost label and only with NAME_ALLOW_WILDCARD.
 * On success writes the result into out (size outsz >= NAME_MAX_LEN + 1)
 * and returns 0. On failure returns -EINVAL and writes a message naming
 * the input into err (size errsz; may be NULL).
 */
int name_normalize(const char *in, unsigned flags, char *out, size_t outsz,
		   char *err, size_t errsz);

/* ---- base64url without padding (b64.c) -------------------------------- */

/* Encoded length of n bytes (no padding), without the NUL. */
size_t b64url_len(size_t n);
/* Encode n bytes; returns a malloc'd NUL-terminated string (caller frees)
 * or NULL on allocation failure. */
char *b64url_encode(const void *data, size_t n);
/* Decode; accepts base64url with or without '=' padding, rejects other
 * characters. Returns malloc'd bytes (caller frees), *outlen set, or NULL. */
unsigned char *b64url_decode(const char *s, size_t len, size_t *outlen);

/* ---- files (fsio.c) -------------------------------------------------- */

/*
 * Write data to path atomically: a temp file in the same directory
 * (path + ".tmp.XXXXXX"), created with mode, written fully, fsynced, renamed
 * over path, then the directory fsynced. On any error the temp file is
 * removed, path is untouched, and a negative errno is returned.
 */
int fsio_write_atomic(const char *path, const void *data, size_t len,
		      unsigned mode);
/*
 * The two halves of fsio_write_atomic, for writing a set of files that
 * should change together: fsio_stage writes and fsyncs data to a temp file
 * next to path (mode as given) and hands its malloc'd name to *tmp_out;
 * fsio_commit renames it over path (then fsyncs the directory if sync_dir)
 * and frees tmp, removing the temp on failure; fsio_discard removes and
 * frees a staged temp (NULL ok). 0 or negative errno.
 */
int fsio_stage(const char *path, const void *data, size_t len, unsigned mode,
	       char **tmp_out);
int fsio_commit(char *tmp, const char *path, int sync_dir);
void fsio_discard(char *tmp);
/* mkdir -p with mode for each created component; 0 or negative errno. */
int fsio_mkdirs(const char *path, unsigned mode);
/* Read a whole file of at most max bytes; malloc'd (NUL-terminated, caller
 * frees) into *out, length into *len. -EFBIG when larger than max. */
int fsio_read_all(const char *path, size_t max, char **out, size_t *len);

/* ---- listen addresses (addr.c) ----------------------------------------- */

struct sockaddr_storage;
/*
 * Parse "ADDR:PORT", "[V6]:PORT" or ":PORT" (all IPv4 addresses) into ss.
 * Port 0 ("pick one") only with allow_port0. 0, or -EINVAL with a message
 * naming the input in err (may be NULL).
 */
int addr_parse_listen(const char *str, int allow_port0,
		      struct sockaddr_storage *ss, char *err, size_t errsz);

/* ---- time (clock.c) -------------------------------------------------- */

/* Milliseconds, monotonic clock. Only drivers call these; the pure core
 * gets time as an argument. */
int64_t clock_mono_ms(void);
/* Seconds since the epoch, wall clock. */
int64_t clock_wall_s(void);
/* Milliseconds since the epoch, wall clock: the ACME core's "now". */
int64_t clock_wall_ms(void);

#endif
