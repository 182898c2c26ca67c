/*
 * Unit tests for engine_nginx_stats.c: nginx mode's counters as the
 * status page's "nginx" object and as certherd_nginx_* metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/engine.h"
#include "nginx/nginx.h"

static char *metrics_of(const struct engine_nginx_stats *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(engine_nginx_metrics(s, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* Before anything happened: counters 0, the last events null, and no
 * timestamp gauge (0 would read as 1970). */
static void test_nothing_yet(void **state)
{
	struct engine_nginx_stats s = {.strategy = NGINX_SNI_VARIABLE,
				       .state = "waiting"};
	json_t *o = json_object(), *ng;
	char *m;

	(void)state;
	assert_int_equal(engine_nginx_status_json(&s, o), 0);
	ng = json_object_get(o, "nginx");
	assert_true(json_is_object(ng));
	assert_string_equal(
	    json_string_value(json_object_get(ng, "strategy")),
	    "sni-variable");
	assert_string_equal(json_string_value(json_object_get(ng, "state")),
			    "waiting");
	assert_int_equal(json_integer_value(json_object_get(ng, "reloads")),
			 0);
	assert_true(json_is_null(json_object_get(ng, "last_reload")));
	assert_true(json_is_null(json_object_get(ng, "last_check")));
	assert_true(json_is_null(json_object_get(ng, "last_refused")));
	assert_true(json_is_null(json_object_get(ng, "last_verify")));
	json_decref(o);

	m = metrics_of(&s);
	assert_non_null(strstr(m, "certherd_nginx_reloads_total{result=\"ok\"} 0\n"));
	assert_non_null(strstr(m, "certherd_nginx_verify_mismatches_total 0\n"));
	assert_null(strstr(m, "certherd_nginx_last_reload_timestamp_seconds"));
	assert_null(strstr(m, "certherd_nginx_last_verify_mismatches"));
	free(m);
}

static void test_after_events(void **state)
{
	struct engine_nginx_stats s = {
	    .strategy = NGINX_SERVER_BLOCKS,
	    .state = "idle",
	    .domains = 2000,
	    .pending = 3,
	    .reloads_ok = 14,
	    .reloads_failed = 1,
	    .checks_ok = 15,
	    .checks_failed = 2,
	    .refused = 1,
	    .verify_names = 40,
	    .verify_mismatches = 1,
	    .last_reload = {.at_ms = 1764326467000, .ok = 1, .seconds = 0.25,
			    .message = "nginx reloaded (14 since start)"},
	    .last_check = {.at_ms = 1764326466000, .ok = 0, .seconds = 7.5,
			   .message = "nginx -t failed: \"quoted\""},
	    .last_verify = {.at_ms = 1764326469000, .names = 8,
			    .mismatches = 1, .message = "serves 5A3F"},
	};
	json_t *o = json_object(), *ng, *ev;
	char *m, *text;

	(void)state;
	assert_int_equal(engine_nginx_status_json(&s, o), 0);
	ng = json_object_get(o, "nginx");
	assert_int_equal(json_integer_value(json_object_get(ng, "domains")),
			 2000);
	assert_int_equal(json_integer_value(json_object_get(ng, "pending")),
			 3);
	assert_int_equal(
	    json_integer_value(json_object_get(ng, "checks_failed")), 2);
	ev = json_object_get(ng, "last_reload");
	assert_string_equal(json_string_value(json_object_get(ev, "at")),
			    "2025-11-28T10:41:07Z");
	assert_string_equal(json_string_value(json_object_get(ev, "result")),
			    "ok");
	ev = json_object_get(ng, "last_check");
	assert_string_equal(json_string_value(json_object_get(ev, "result")),
			    "failed");
	assert_string_equal(json_string_value(json_object_get(ev, "message")),
			    "nginx -t failed: \"quoted\"");
	ev = json_object_get(ng, "last_verify");
	assert_int_equal(json_integer_value(json_object_get(ev, "names")), 8);
	assert_int_equal(
	    json_integer_value(json_object_get(ev, "mismatches")), 1);
	/* the whole object serializes (jansson escapes the quotes) */
	text = json_dumps(o, 0);
	assert_non_null(text);
	assert_non_null(strstr(text, "\\\"quoted\\\""));
	free(text);
	json_decref(o);

	m = metrics_of(&s);
	assert_non_null(strstr(m, "certherd_nginx_reloads_total{result=\"failed\"} 1\n"));
	assert_non_null(strstr(m, "certherd_nginx_checks_total{result=\"ok\"} 15\n"));
	assert_non_null(strstr(m, "certherd_nginx_refused_total 1\n"));
	assert_non_null(strstr(m, "certherd_nginx_verify_names_total 40\n"));
	assert_non_null(strstr(m, "certherd_nginx_domains 2000\n"));
	assert_non_null(strstr(m, "certherd_nginx_last_reload_timestamp_seconds 1764326467.000\n"));
	assert_non_null(strstr(m, "certherd_nginx_last_reload_success 1\n"));
	assert_non_null(strstr(m, "certherd_nginx_last_verify_mismatches 1\n"));
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nothing_yet),
	    cmocka_unit_test(test_after_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
