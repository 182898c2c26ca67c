/*
 * log — logfmt lines on stderr.
 *
 * Every line carries a timestamp, a level, the subsystem and the domain it
 * concerns, so a grep for one domain shows its whole story across modules.
 * A line is built in a stack buffer and written with one fputs(): stdio
 * locks the stream per call, so lines from different threads never
 * interleave. Messages longer than the buffer are truncated, not split.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <time.h>

#include "util/util.h"

#define LOG_LINE_MAX 2048
#define LOG_MSG_MAX  1536

static const char *const log_level_names[LOG_LVL__MAX] = {
    [LOG_LVL_DEBUG] = "debug",
    [LOG_LVL_INFO] = "info",
    [LOG_LVL_WARN] = "warn",
    [LOG_LVL_ERROR] = "error",
};

/* Atomic because a signal handler or another thread may change the level
 * while workers log. */
static atomic_int log_min_level = LOG_LVL_INFO;

void log_set_level(enum log_level min)
{
	if ((int)min < 0 || min >= LOG_LVL__MAX)
		return;
	atomic_store(&log_min_level, (int)min);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&log_min_level);
}

int log_level_parse(const char *s, enum log_level *out)
{
	int i;

	if (!s || !out)
		return -EINVAL;
	for (i = 0; i < LOG_LVL__MAX; i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * A small bounded appender. Text goes in whole units (one character or one
 * escape sequence) and only while `reserve` bytes stay free, so a value cut
 * short can still be closed with its quote and a truncated=1 marker, and
 * an escape sequence is never split.
 */
struct log_buf {
	char *p;
	size_t len;
	size_t cap;
	size_t reserve;
	int full;
};

static void lb_put(struct log_buf *b, const char *s, size_t n)
{
	if (b->full || b->len + n + b->reserve >= b->cap) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void lb_puts(struct log_buf *b, const char *s)
{
	lb_put(b, s, strlen(s));
}

static int needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * Append a logfmt value. Quotes and backslashes are escaped and control
 * characters written as \n, \r, \t or \xNN, so one log line is always one
 * physical line whatever a peer put into an error detail.
 */
static void lb_value(struct log_buf *b, const char *s, int force_quotes)
{
	static const char hex[] = "0123456789abcdef";
	int quote = force_quotes || needs_quotes(s);
	char esc[4];

	if (quote)
		lb_put(b, "\"", 1);
	for (; *s && !b->full; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"':
			lb_put(b, "\\\"", 2);
			break;
		case '\\':
			lb_put(b, "\\\\", 2);
			break;
		case '\n':
			lb_put(b, "\\n", 2);
			break;
		case '\r':
			lb_put(b, "\\r", 2);
			break;
		case '\t':
			lb_put(b, "\\t", 2);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				esc[0] = '\\';
				esc[1] = 'x';
				esc[2] = hex[c >> 4];
				esc[3] = hex[c & 0xf];
				lb_put(b, esc, 4);
			} else {
				esc[0] = (char)c;
				lb_put(b, esc, 1);
			}
		}
	}
	if (quote) {
		/* the closing quote may use the reserve */
		size_t saved = b->reserve;
		int full = b->full;

		b->reserve = 0;
		b->full = 0;
		lb_put(b, "\"", 1);
		b->reserve = saved;
		b->full = full;
	}
}

/* RFC 3339 UTC with milliseconds: 2026-11-28T03:00:00.123Z */
static void format_ts(char *out, size_t outsz)
{
	struct timespec ts;
	struct tm tm;
	char ms[16];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, outsz, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ms, sizeof(ms), ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
	snprintf(out + n, outsz - n, "%s", ms);
}

void log_msg(enum log_level lvl, const char *sub, const char *domain,
	     const char *fmt, ...)
{
	static const char trunc_mark[] = " truncated=1";
	char line[LOG_LINE_MAX];
	char msg[LOG_MSG_MAX];
	char ts[48];
	/* room for the closing quote, the marker, '\n' and NUL */
	struct log_buf b = {
	    .p = line, .cap = sizeof(line), .reserve = sizeof(trunc_mark) + 3};
	va_list ap;
	int n;

	if ((int)lvl < 0 || lvl >= LOG_LVL__MAX)
		lvl = LOG_LVL_ERROR;
	if ((int)lvl < atomic_load(&log_min_level))
		return;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable message)");

	line[0] = '\0';
	format_ts(ts, sizeof(ts));
	lb_puts(&b, "ts=");
	lb_puts(&b, ts);
	lb_puts(&b, " level=");
	lb_puts(&b, log_level_names[lvl]);
	lb_puts(&b, " sub=");
	lb_value(&b, sub ? sub : "-", 0);
	if (domain) {
		lb_puts(&b, " domain=");
		lb_value(&b, domain, 0);
	}
	lb_puts(&b, " msg=");
	lb_value(&b, msg, 1);
	if (n >= (int)sizeof(msg) || b.full) {
		b.full = 0;
		b.reserve = 0;
		lb_puts(&b, trunc_mark);
	}
	line[b.len++] = '\n';
	line[b.len] = '\0';
	fputs(line, stderr);
}
