/*
 * engine_notify.c — tells the service manager what the daemon is doing,
 * through libsystemd's sd_notify (the unit is Type=notify, see
 * dist/certherd.service and docs/operations.md):
 *
 *   READY=1                      the API and the HTTP-01 listener accept
 *   RELOADING=1, MONOTONIC_USEC  a SIGHUP reload begins (READY=1 ends it)
 *   STOPPING=1                   SIGTERM: draining, then exiting
 *   STATUS=...                   one line for `systemctl status`
 *
 * Without NOTIFY_SOCKET in the environment (not started by systemd, or by
 * a unit of another Type) sd_notify does nothing, and neither do we. A
 * notification that cannot be sent is logged once and otherwise ignored:
 * the daemon's work never depends on the service manager hearing it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "engine/engine.h"
#include "util/util.h"

/* Longest STATUS= text sent; systemctl shows one line anyway. */
#define STATUS_MAX 512

static atomic_int warned;

int engine_notify_enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

/* One datagram of "KEY=VALUE" lines; 0 or negative errno. */
static int send_state(const char *state)
{
	int rc;

	if (!engine_notify_enabled())
		return 0;
	rc = sd_notify(0, state);
	if (rc < 0 && !atomic_exchange(&warned, 1))
		log_warn("notify", NULL,
			 "cannot notify the service manager: %s (further "
			 "failures are not logged)",
			 strerror(-rc));
	return rc < 0 ? rc : 0;
}

int engine_notify_ready(void)
{
	return send_state("READY=1");
}

int engine_notify_stopping(void)
{
	return send_state("STOPPING=1");
}

int engine_notify_reloading(void)
{
	struct timespec ts;
	char buf[64];

	/* MONOTONIC_USEC lets systemd (Type=notify-reload, 253+) tell this
	 * reload from an earlier one; older versions ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
		     (unsigned long long)ts.tv_nsec / 1000ull);
	return send_state(buf);
}

int engine_notify_status(const char *fmt, ...)
{
	char buf[STATUS_MAX + 8];
	va_list ap;
	int n;

	if (!engine_notify_enabled())
		return 0;
	memcpy(buf, "STATUS=", 7);
	va_start(ap, fmt);
	n = vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	/* One line: a newline would start another assignment. */
	for (char *p = buf + 7; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return send_state(buf);
}
