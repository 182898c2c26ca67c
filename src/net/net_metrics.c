/*
 * net_metrics — front mode's counters in Prometheus' text format, for the
 * daemon's /metrics (cli_serve.c appends them).
 */
#include <errno.h>
#include <stdio.h>

#include "net/net.h"

int net_front_metrics(struct net_front *f, FILE *out)
{
	struct net_front_stats s;

	if (!f)
		return 0;
	net_front_stats(f, &s);
	fprintf(out,
		"# HELP certherd_front_connections_total Connections accepted "
		"on front.listen, by outcome of the accept.\n"
		"# TYPE certherd_front_connections_total counter\n"
		"certherd_front_connections_total{result=\"accepted\"} %llu\n"
		"certherd_front_connections_total{result=\"refused\"} %llu\n"
		"# HELP certherd_front_connections Open front connections.\n"
		"# TYPE certherd_front_connections gauge\n"
		"certherd_front_connections %llu\n"
		"# HELP certherd_front_handshakes_total TLS handshakes, by "
		"result.\n"
		"# TYPE certherd_front_handshakes_total counter\n"
		"certherd_front_handshakes_total{result=\"ok\"} %llu\n"
		"certherd_front_handshakes_total{result=\"no_sni\"} %llu\n"
		"certherd_front_handshakes_total{result=\"unknown_name\"} %llu\n"
		"certherd_front_handshakes_total{result=\"timeout\"} %llu\n"
		"certherd_front_handshakes_total{result=\"error\"} %llu\n"
		"certherd_front_handshakes_total{result=\"ondemand_timeout\"} "
		"%llu\n"
		"certherd_front_handshakes_total{result=\"acme_tls_1\"} %llu\n"
		"# HELP certherd_front_ondemand_waits_total Handshakes paused "
		"while their name was issued on demand.\n"
		"# TYPE certherd_front_ondemand_waits_total counter\n"
		"certherd_front_ondemand_waits_total %llu\n"
		"# HELP certherd_front_upstream_connects_total Upstream "
		"connections started (at a client's first bytes: a "
		"connection that sends nothing gets none).\n"
		"# TYPE certherd_front_upstream_connects_total counter\n"
		"certherd_front_upstream_connects_total %llu\n"
		"# HELP certherd_front_upstream_errors_total Connections to or "
		"from the upstream that failed.\n"
		"# TYPE certherd_front_upstream_errors_total counter\n"
		"certherd_front_upstream_errors_total %llu\n"
		"# HELP certherd_front_cache_lookups_total Certificate lookups "
		"by SNI, by result (miss: loaded from the store).\n"
		"# TYPE certherd_front_cache_lookups_total counter\n"
		"certherd_front_cache_lookups_total{result=\"hit\"} %llu\n"
		"certherd_front_cache_lookups_total{result=\"miss\"} %llu\n"
		"# HELP certherd_front_cache_loads_total Store reads of "
		"certificates, and those that failed.\n"
		"# TYPE certherd_front_cache_loads_total counter\n"
		"certherd_front_cache_loads_total %llu\n"
		"certherd_front_cache_load_errors_total %llu\n"
		"# HELP certherd_front_cache_entries Names in the certificate "
		"index: parsed certificates, and names known to have none.\n"
		"# TYPE certherd_front_cache_entries gauge\n"
		"certherd_front_cache_entries{kind=\"certificate\"} %llu\n"
		"certherd_front_cache_entries{kind=\"absent\"} %llu\n",
		(unsigned long long)s.accepted, (unsigned long long)s.refused,
		(unsigned long long)s.conns_open,
		(unsigned long long)s.handshakes_ok,
		(unsigned long long)s.hs_no_sni,
		(unsigned long long)s.hs_unknown,
		(unsigned long long)s.hs_timeout,
		(unsigned long long)s.hs_error,
		(unsigned long long)s.hs_gave_up,
		(unsigned long long)s.acme_challenges,
		(unsigned long long)s.hs_ondemand_wait,
		(unsigned long long)s.upstream_connects,
		(unsigned long long)s.upstream_errors,
		(unsigned long long)s.cache_hits,
		(unsigned long long)s.cache_misses,
		(unsigned long long)s.cache_loads,
		(unsigned long long)s.cache_load_errors,
		(unsigned long long)s.cache_present,
		(unsigned long long)s.cache_absent);
	fprintf(out,
		"# HELP certherd_front_default_handshakes_total Handshakes "
		"completed with front.default_certificate (also counted as "
		"ok).\n"
		"# TYPE certherd_front_default_handshakes_total counter\n"
		"certherd_front_default_handshakes_total %llu\n"
		"# HELP certherd_front_drain_closed_total Connections a drain "
		"closed: no request yet when it began, or not done by its "
		"end.\n"
		"# TYPE certherd_front_drain_closed_total counter\n"
		"certherd_front_drain_closed_total %llu\n",
		(unsigned long long)s.hs_default,
		(unsigned long long)s.drain_closed);
	return ferror(out) ? -EIO : 0;
}
