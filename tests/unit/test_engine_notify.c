/*
 * Unit tests for engine_notify against a real unix datagram socket bound
 * by the test (what systemd's NOTIFY_SOCKET is): every notification is one
 * datagram with the exact assignments; a STATUS= text with newlines stays
 * one assignment; a long one is cut, not split; without NOTIFY_SOCKET
 * nothing is sent and every call returns 0; a socket nobody listens on
 * gives an error, not a crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"

struct sink {
	char dir[64];
	char path[96]; /* fits sockaddr_un.sun_path (108) */
	int fd;
};

static int sink_setup(void **state)
{
	struct sink *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	assert_non_null(s);
	snprintf(s->dir, sizeof(s->dir), "/tmp/certherd-notify.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/notify.sock", s->dir);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", s->path, 1), 0);
	*state = s;
	return 0;
}

static int sink_teardown(void **state)
{
	struct sink *s = *state;

	unsetenv("NOTIFY_SOCKET");
	close(s->fd);
	unlink(s->path);
	rmdir(s->dir);
	free(s);
	return 0;
}

/* The next datagram, NUL-terminated, or "" when none is waiting. */
static const char *next_dgram(struct sink *s)
{
	static char buf[4096];
	ssize_t n = recv(s->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_states(void **state)
{
	struct sink *s = *state;
	const char *m;
	char *end;

	assert_int_equal(engine_notify_enabled(), 1);
	assert_int_equal(engine_notify_ready(), 0);
	assert_string_equal(next_dgram(s), "READY=1");
	assert_int_equal(engine_notify_stopping(), 0);
	assert_string_equal(next_dgram(s), "STOPPING=1");
	assert_int_equal(engine_notify_reloading(), 0);
	m = next_dgram(s);
	assert_int_equal(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
	assert_true(strtoull(m + 27, &end, 10) > 0);
	assert_string_equal(end, "");
	assert_string_equal(next_dgram(s), ""); /* one datagram each */
}

static void test_status_one_line(void **state)
{
	struct sink *s = *state;
	char big[2000];

	assert_int_equal(engine_notify_status("%u domains:\n%s", 3u, "ok\r"),
			 0);
	assert_string_equal(next_dgram(s), "STATUS=3 domains: ok ");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(engine_notify_status("%s", big), 0);
	/* cut at 512 bytes of text, still one assignment */
	assert_int_equal(strlen(next_dgram(s)), strlen("STATUS=") + 512);
}

static void test_no_socket(void **state)
{
	struct sink *s = *state;

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(engine_notify_enabled(), 0);
	assert_int_equal(engine_notify_ready(), 0);
	assert_int_equal(engine_notify_status("x"), 0);
	assert_string_equal(next_dgram(s), "");
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(engine_notify_enabled(), 0);
	assert_int_equal(engine_notify_stopping(), 0);
	assert_string_equal(next_dgram(s), "");
}

static void test_nobody_listening(void **state)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/absent.sock",
		 ((struct sink *)*state)->dir);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_true(engine_notify_ready() < 0);
	assert_true(engine_notify_ready() < 0); /* logged once, still fails */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_states, sink_setup,
					    sink_teardown),
	    cmocka_unit_test_setup_teardown(test_status_one_line, sink_setup,
					    sink_teardown),
	    cmocka_unit_test_setup_teardown(test_no_socket, sink_setup,
					    sink_teardown),
	    cmocka_unit_test_setup_teardown(test_nobody_listening, sink_setup,
					    sink_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
