/*
 * Unit tests for util/config: defaults are valid; every value type accepts
 * what docs/config.md says and refuses the rest with the exact message;
 * file errors name FILE:LINE; --set overrides the file; secret files are
 * checked for mode; the example in docs/config.md parses and every key of
 * the schema is documented there; the dump reads back the same.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/config.h"
#include "util/util.h"

static char err[1024];

/* --set on fresh defaults; returns rc, message in err */
static int set1(struct config *c, const char *a)
{
	err[0] = '\0';
	return config_set(c, a, err, sizeof(err));
}

static int load(struct config *c, const char *text)
{
	err[0] = '\0';
	return config_load_string(c, text, "t.conf", "/etc/certherd", err,
				  sizeof(err));
}

static void test_defaults_valid(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.acme.directory,
			    "https://acme-v02.api.letsencrypt.org/directory");
	assert_int_equal(c.acme.key_type, CONFIG_KEY_ECDSA_P256);
	assert_int_equal(c.acme.concurrency, 100);
	assert_int_equal(c.acme.ca_connections, 8);
	assert_string_equal(c.store.state_dir, "/var/lib/certherd");
	assert_string_equal(c.store.live_dir, "/var/lib/certherd/live");
	assert_true(c.store.write_live);
	assert_string_equal(c.api.socket, "/var/lib/certherd/api.sock");
	assert_int_equal(c.api.listen.kind, CONFIG_ADDR_NONE);
	assert_int_equal(c.http.listen.kind, CONFIG_ADDR_ANY);
	assert_int_equal(c.http.listen.port, 80);
	assert_int_equal(c.http.redirect, CONFIG_REDIRECT_REDIRECT);
	assert_true(c.preflight.enabled);
	assert_int_equal(c.preflight.resolver.kind, CONFIG_ADDR_SYSTEM);
	assert_int_equal(c.preflight.addresses.n, 0);
	assert_int_equal(c.hooks.batch, 30);
	assert_int_equal(c.log.level, CONFIG_LOG_INFO);
	assert_false(c.front.enabled);
	assert_int_equal(c.front.listen.port, 443);
	assert_false(c.on_demand.enabled);
	assert_false(c.nginx.enabled);
	assert_int_equal(c.nginx.strategy, CONFIG_NGINX_SERVER_BLOCKS);
	assert_string_equal(c.nginx.nginx, "nginx");
	assert_int_equal(c.nginx.reload_interval, 60);
	assert_string_equal(c.nginx.include,
			    "/var/lib/certherd/nginx/certherd.conf");
	config_free(&c);
	config_free(NULL);
}

/* A derived default follows state_dir unless set explicitly. */
static void test_derived(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(set1(&c, "store.state_dir=/srv/ch"), 0);
	assert_int_equal(set1(&c, "api.socket=/run/ch.sock"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.store.live_dir, "/srv/ch/live");
	assert_string_equal(c.api.socket, "/run/ch.sock");
	/* validate again after state_dir changes: derived ones follow */
	assert_int_equal(set1(&c, "store.state_dir=/srv/x"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.store.live_dir, "/srv/x/live");
	assert_string_equal(c.api.socket, "/run/ch.sock");
	config_free(&c);
}

struct vcase {
	const char *set;
	const char *msg; /* NULL: accepted */
};

static const struct vcase vcases[] = {
    /* string / url / email */
    {"acme.directory=https://localhost:14000/dir", NULL},
    {"acme.directory=ftp://x/dir",
     "--set: acme.directory: \"ftp://x/dir\" is not an http:// or "
     "https:// URL with a host"},
    {"acme.directory=", "--set: acme.directory: may not be empty"},
    {"acme.email=ops@example.com", NULL},
    {"acme.email=", NULL},
    {"acme.email=ops",
     "--set: acme.email: \"ops\" is not an e-mail address like "
     "admin@example.com"},
    {"acme.email=\"ops@example.com\"",
     "--set: acme.email: \"\\x22ops@example.com\\x22\" is quoted; values "
     "are taken literally, write it without quotes"},
    {"hooks.deploy=systemctl reload nginx; true", NULL},
    {"hooks.deploy=a ; b",
     "--set: hooks.deploy: \"a ; b\" contains \" ;\", which starts a "
     "comment in a file"},
    {"acme.profile=a\tb",
     "--set: acme.profile: \"a\\x09b\" contains a control character"},
    /* bool */
    {"store.write_live=no", NULL},
    {"store.write_live=ON", NULL},
    {"store.write_live=maybe",
     "--set: store.write_live: \"maybe\" is not a boolean (true, false, "
     "yes, no, on, off, 1, 0)"},
    /* int */
    {"acme.concurrency=1", NULL},
    {"acme.concurrency=10000", NULL},
    {"acme.concurrency=0",
     "--set: acme.concurrency: \"0\" is not an integer from 1 to 10000"},
    {"acme.concurrency=10001",
     "--set: acme.concurrency: \"10001\" is not an integer from 1 to "
     "10000"},
    {"acme.concurrency=0x10",
     "--set: acme.concurrency: \"0x10\" is not an integer from 1 to "
     "10000"},
    {"acme.concurrency=99999999999999999999",
     "--set: acme.concurrency: \"99999999999999999999\" is not an integer "
     "from 1 to 10000"},
    /* duration */
    {"hooks.batch=5m", NULL},
    {"hooks.batch=0", NULL},
    {"hooks.batch=2d",
     "--set: hooks.batch: \"2d\" is not a duration like 30s, 5m, 12h or "
     "7d from 0s to 1d"},
    {"hooks.batch=30",
     "--set: hooks.batch: \"30\" is not a duration like 30s, 5m, 12h or "
     "7d from 0s to 1d"},
    {"nginx.reload_interval=0s",
     "--set: nginx.reload_interval: \"0s\" is not a duration like 30s, "
     "5m, 12h or 7d from 1s to 1d"},
    /* enum */
    {"acme.key_type=rsa3072", NULL},
    {"acme.key_type=rsa1024",
     "--set: acme.key_type: \"rsa1024\" is not one of ecdsa-p256, "
     "ecdsa-p384, rsa2048, rsa3072, rsa4096"},
    {"nginx.strategy=sni-variable", NULL},
    {"http.redirect=302",
     "--set: http.redirect: \"302\" is not one of redirect, 404"},
    /* address */
    {"http.listen=127.0.0.1:8080", NULL},
    {"http.listen=[::1]:8080", NULL},
    {"http.listen=localhost:80",
     "--set: http.listen: \"localhost:80\" is not empty or an address like "
     ":80, 127.0.0.1:80 or [::1]:80"},
    {"http.listen=", NULL}, /* no HTTP-01: DNS-01 or TLS-ALPN-01 validate */
    {"api.listen=", NULL},
    {"preflight.resolver=127.0.0.1:8053", NULL},
    {"preflight.resolver=:53",
     "--set: preflight.resolver: \":53\" is not system or an address "
     "like 127.0.0.1:53 or [::1]:53"},
    {"front.upstream=unix:/run/nginx.sock", NULL},
    {"front.upstream=unix:run/nginx.sock",
     "--set: front.upstream: \"unix:run/nginx.sock\" is not an address "
     "like 127.0.0.1:8080, [::1]:8080 or unix:/path"},
    {"http.listen=unix:/run/x.sock",
     "--set: http.listen: \"unix:/run/x.sock\" is not empty or an address "
     "like :80, 127.0.0.1:80 or [::1]:80"},
    /* address list */
    {"preflight.addresses=192.0.2.1, 2001:db8::1,[2001:db8::2]", NULL},
    {"preflight.addresses=", NULL},
    {"preflight.addresses=192.0.2.1,,192.0.2.2",
     "--set: preflight.addresses: \"\" is not IP addresses like "
     "192.0.2.1, 2001:db8::1, comma-separated"},
    {"preflight.addresses=192.0.2.1:80",
     "--set: preflight.addresses: \"192.0.2.1:80\" is not IP addresses "
     "like 192.0.2.1, 2001:db8::1, comma-separated"},
    /* rate */
    {"limits.orders=5/1m", NULL},
    {"limits.orders=0", NULL},
    {"limits.orders=", NULL},
    {"limits.identical=0/7d", NULL},
    {"limits.certs_per_domain=1000000/1d12h", NULL},
    {"limits.orders=5",
     "--set: limits.orders: \"5\" is not a rate like 300/3h or 5/7d (count "
     "from 0 to 1000000 per duration), or 0 for no limit"},
    {"limits.orders=5/0",
     "--set: limits.orders: \"5/0\" is not a rate like 300/3h or 5/7d "
     "(count from 0 to 1000000 per duration), or 0 for no limit"},
    {"limits.orders=-1/1h",
     "--set: limits.orders: \"-1/1h\" is not a rate like 300/3h or 5/7d "
     "(count from 0 to 1000000 per duration), or 0 for no limit"},
    {"limits.orders=1000001/1h",
     "--set: limits.orders: \"1000001/1h\" is not a rate like 300/3h or "
     "5/7d (count from 0 to 1000000 per duration), or 0 for no limit"},
    {"limits.failed_authz=/1h",
     "--set: limits.failed_authz: \"/1h\" is not a rate like 300/3h or "
     "5/7d (count from 0 to 1000000 per duration), or 0 for no limit"},
    /* syntax of --set itself */
    {"acme.email", "--set: \"acme.email\" is not section.key=value"},
    {"email=x", "--set: \"email=x\" is not section.key=value"},
    {".email=x", "--set: \".email=x\" is not section.key=value"},
    {"acme.=x", "--set: \"acme.=x\" is not section.key=value"},
    {"acme.mail=x", "--set: unknown key \"acme.mail\" in [acme]"},
    {"acmee.email=x", "--set: unknown section [acmee] (key \"acmee.email\")"},
};

static void test_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		struct config c;
		int rc;

		assert_int_equal(config_defaults(&c), 0);
		rc = set1(&c, vcases[i].set);
		if (!vcases[i].msg) {
			if (rc != 0)
				fail_msg("%s: %s", vcases[i].set, err);
		} else {
			if (rc != -EINVAL)
				fail_msg("%s: accepted", vcases[i].set);
			assert_string_equal(err, vcases[i].msg);
		}
		config_free(&c);
	}
}

static void test_values_stored(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(set1(&c, "preflight.addresses= 192.0.2.1 , "
				  "2001:DB8:0::1 "),
			 0);
	assert_int_equal(c.preflight.addresses.n, 2);
	assert_string_equal(c.preflight.addresses.v[0].host, "192.0.2.1");
	assert_string_equal(c.preflight.addresses.v[1].host, "2001:db8::1");
	assert_int_equal(c.preflight.addresses.v[1].family, AF_INET6);
	assert_int_equal(set1(&c, "front.upstream=unix:/run/n.sock"), 0);
	assert_int_equal(c.front.upstream.kind, CONFIG_ADDR_UNIX);
	assert_string_equal(c.front.upstream.path, "/run/n.sock");
	assert_int_equal(set1(&c, "acme.key_type=rsa4096"), 0);
	assert_int_equal(c.acme.key_type, CONFIG_KEY_RSA4096);
	assert_int_equal(c.limits.orders.count, -1); /* the CA's default */
	assert_int_equal(set1(&c, "limits.identical=5/7d"), 0);
	assert_int_equal(c.limits.identical.count, 5);
	assert_int_equal(c.limits.identical.period, 7 * 86400);
	assert_int_equal(set1(&c, "limits.orders=5/1m"), 0);
	assert_int_equal(c.limits.orders.count, 5);
	assert_int_equal(c.limits.orders.period, 60);
	assert_int_equal(set1(&c, "limits.failed_authz=0"), 0);
	assert_int_equal(c.limits.failed_authz.count, 0);
	assert_int_equal(set1(&c, "store.keep_removed=1d12h"), 0);
	assert_int_equal(c.store.keep_removed, 36 * 3600);
	/* a relative path in --set is relative to the current directory */
	assert_int_equal(set1(&c, "acme.ca_bundle=roots.pem"), 0);
	{
		char cwd[4096], want[4200];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		snprintf(want, sizeof(want), "%s/roots.pem", cwd);
		assert_string_equal(c.acme.ca_bundle, want);
	}
	config_free(&c);
}

static void test_duration_table(void **state)
{
	static const struct {
		const char *s;
		int64_t v; /* -1: refused */
	} t[] = {
	    {"0", 0},
	    {"0s", 0},
	    {"30s", 30},
	    {"5m", 300},
	    {"12h", 43200},
	    {"7d", 604800},
	    {"1h30m", 5400},
	    {"90s", 90},
	    {"3650d", 315360000},
	    {"3651d", -1},
	    {"", -1},
	    {"s", -1},
	    {"5", -1},
	    {"5x", -1},
	    {"-5s", -1},
	    {"5 m", -1},
	    {"1.5h", -1},
	    {"5M", -1},
	    {"99999999999999999999s", -1},
	    {"1h ", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t v = -7;
		int rc = config_parse_duration(t[i].s, &v);

		if (t[i].v < 0) {
			if (rc != -EINVAL)
				fail_msg("duration \"%s\" accepted", t[i].s);
		} else {
			if (rc != 0 || v != t[i].v)
				fail_msg("duration \"%s\": rc %d v %lld",
					 t[i].s, rc, (long long)v);
		}
	}
}

static void test_addr_table(void **state)
{
	static const struct {
		const char *s;
		unsigned flags;
		int kind; /* -1: refused */
		const char *host;
		unsigned port;
	} t[] = {
	    {":80", 0, CONFIG_ADDR_ANY, "", 80},
	    {"0.0.0.0:443", 0, CONFIG_ADDR_IP, "0.0.0.0", 443},
	    {"127.0.0.1:65535", 0, CONFIG_ADDR_IP, "127.0.0.1", 65535},
	    {"[::1]:80", 0, CONFIG_ADDR_IP, "::1", 80},
	    {"[2001:DB8::0:1]:80", 0, CONFIG_ADDR_IP, "2001:db8::1", 80},
	    {"::1:80", 0, -1, NULL, 0},
	    {"[::1]80", 0, -1, NULL, 0},
	    {"[::1]:", 0, -1, NULL, 0},
	    {"[]:80", 0, -1, NULL, 0},
	    {"[127.0.0.1]:80", 0, -1, NULL, 0},
	    {"127.0.0.1:0", 0, -1, NULL, 0},
	    {"127.0.0.1:65536", 0, -1, NULL, 0},
	    {"127.0.0.1:+80", 0, -1, NULL, 0},
	    {"127.0.0.1:080", 0, CONFIG_ADDR_IP, "127.0.0.1", 80},
	    {"127.0.0.1", 0, -1, NULL, 0},
	    {"256.0.0.1:80", 0, -1, NULL, 0},
	    {"example.com:80", 0, -1, NULL, 0},
	    {":80", CONFIG_AF_HOST_REQUIRED, -1, NULL, 0},
	    {"", 0, -1, NULL, 0},
	    {"", CONFIG_AF_EMPTY_OK, CONFIG_ADDR_NONE, "", 0},
	    {"system", 0, -1, NULL, 0},
	    {"system", CONFIG_AF_SYSTEM_OK, CONFIG_ADDR_SYSTEM, "", 0},
	    {"unix:/a", 0, -1, NULL, 0},
	    {"unix:/a", CONFIG_AF_UNIX_OK, CONFIG_ADDR_UNIX, "", 0},
	    {"192.0.2.7", CONFIG_AF_NO_PORT, CONFIG_ADDR_IP, "192.0.2.7", 0},
	    {"[::2]", CONFIG_AF_NO_PORT, CONFIG_ADDR_IP, "::2", 0},
	    {"::ffff:192.0.2.1", CONFIG_AF_NO_PORT, CONFIG_ADDR_IP,
	     "::ffff:192.0.2.1", 0},
	    {"192.0.2.7:80", CONFIG_AF_NO_PORT, -1, NULL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct config_addr a;
		int rc = config_parse_addr(t[i].s, t[i].flags, &a);

		if (t[i].kind < 0) {
			if (rc != -EINVAL)
				fail_msg("address \"%s\" accepted", t[i].s);
			continue;
		}
		if (rc != 0 || (int)a.kind != t[i].kind ||
		    strcmp(a.host, t[i].host) != 0 || a.port != t[i].port)
			fail_msg(
			    "address \"%s\": rc %d kind %d host %s port %u",
			    t[i].s, rc, a.kind, a.host, a.port);
	}
}

struct fcase {
	const char *text;
	const char *msg;
};

static const struct fcase fcases[] = {
    {"[acme]\nemail = a@b.co\nmail = x\n",
     "t.conf:3: unknown key \"mail\" in [acme]"},
    {"; c\n\n[acmee]\nemail = x\n",
     "t.conf:4: unknown section [acmee] (key \"email\")"},
    {"email = a@b.co\n", "t.conf:1: key \"email\" is outside any [section]"},
    {"[acme]\nemail = a@b.co\n\n[acme]\nemail = c@d.co\n",
     "t.conf:5: acme.email is already set on line 2"},
    {"[acme]\n  key_type = rsa1024\n",
     "t.conf:2: acme.key_type: \"rsa1024\" is not one of ecdsa-p256, "
     "ecdsa-p384, rsa2048, rsa3072, rsa4096"},
    {"[acme]\nemail = a@b.co\njunk\n",
     "t.conf:3: syntax error: expected [section], key = value or a "
     "comment"},
    {"[acme\nemail = a@b.co\n",
     "t.conf:1: syntax error: expected [section], key = value or a "
     "comment"},
    /* the first error wins, wherever it comes from */
    {"[acme]\nkey_type = x\njunk\n",
     "t.conf:2: acme.key_type: \"x\" is not one of ecdsa-p256, "
     "ecdsa-p384, rsa2048, rsa3072, rsa4096"},
    {"[acme]\njunk\nkey_type = x\n",
     "t.conf:2: syntax error: expected [section], key = value or a "
     "comment"},
    /* indented lines are keys, never continuations */
    {"[acme]\nemail = a@b.co\n    profile = x y\n  bogus = 1\n",
     "t.conf:4: unknown key \"bogus\" in [acme]"},
    {"[log]\r\nlevel = loud\r\n",
     "t.conf:2: log.level: \"loud\" is not one of debug, info, warn, "
     "error"},
};

/* [dns "ZONE"] sections: read, matched by name, checked, dumped. */
static void test_dns_zones(void **state)
{
	static const char *const bad[][2] = {
	    {"[dns \"a.example\"]\nupdater = bind\n", "not rfc2136 or hook"},
	    {"[dns \"a.example\"]\nserver = a.example:53\n", "ADDR:PORT"},
	    {"[dns \"a.example\"]\nttl = 5\n", "unknown key"},
	    {"[dns \"a..example\"]\nupdater = hook\n", "a..example"},
	    {"[dns a.example]\nupdater = hook\n", "[dns \"ZONE\"]"},
	    {"[dns \"a.example\"]\nupdater = hook\nupdater = hook\n",
	     "already set"},
	};
	struct config c;
	const struct config_dns_zone *z;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(
	    config_load_string(&c,
			       "[dns]\npropagation_timeout = 30s\n"
			       "[dns \"Platform.Example.\"]\nupdater = rfc2136\n"
			       "server = 192.0.2.53:53\ntsig_key_file = k.key\n"
			       "[dns \"shop.platform.example\"]\n"
			       "updater = hook\ncommand = /bin/hook x\n",
			       "t.conf", "/etc/certherd", err, sizeof(err)),
	    0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(c.dns.propagation_timeout, 30);
	assert_int_equal(c.dns.n_zones, 2);
	z = config_dns_zone_for(&c, "*.platform.example");
	assert_non_null(z);
	assert_string_equal(z->zone, "platform.example");
	assert_int_equal(z->updater, CONFIG_DNS_RFC2136);
	assert_string_equal(z->server.host, "192.0.2.53");
	assert_string_equal(z->tsig_key_file, "/etc/certherd/k.key");
	/* the longest zone wins; unrelated names have none */
	z = config_dns_zone_for(&c, "a.shop.platform.example");
	assert_non_null(z);
	assert_string_equal(z->command, "/bin/hook x");
	assert_null(config_dns_zone_for(&c, "xplatform.example"));
	assert_null(config_dns_zone_for(&c, "example"));
	f = open_memstream(&text, &len);
	assert_int_equal(config_dump(&c, f), 0);
	fclose(f);
	assert_non_null(strstr(text, "[dns \"platform.example\"]\nupdater = "
				     "rfc2136\nserver = 192.0.2.53:53\n"));
	free(text);
	config_free(&c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_defaults(&c), 0);
		err[0] = '\0';
		assert_int_equal(config_load_string(&c, bad[i][0], "t.conf",
						    "/", err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], err);
		config_free(&c);
	}
	/* relations: rfc2136 without server, hook without command */
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_string(&c,
					    "[dns \"a.example\"]\nupdater = "
					    "rfc2136\n",
					    "t.conf", "/", err, sizeof(err)),
			 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "needs server"));
	config_free(&c);
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_string(&c,
					    "[dns \"a.example\"]\nupdater = "
					    "hook\nserver = 1.2.3.4:53\n",
					    "t.conf", "/", err, sizeof(err)),
			 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "needs command"));
	config_free(&c);
}

static void test_file_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fcases) / sizeof(fcases[0]); i++) {
		struct config c;

		assert_int_equal(config_defaults(&c), 0);
		if (load(&c, fcases[i].text) != -EINVAL)
			fail_msg("case %zu accepted", i);
		assert_string_equal(err, fcases[i].msg);
		config_free(&c);
	}
}

static void test_long_lines(void **state)
{
	struct config c;
	size_t n = CONFIG_VALUE_MAX + 200;
	char *t = malloc(n + 64), *v;

	(void)state;
	assert_non_null(t);
	/* a value of exactly CONFIG_VALUE_MAX bytes is fine */
	strcpy(t, "[acme]\nprofile = ");
	v = t + strlen(t);
	memset(v, 'p', CONFIG_VALUE_MAX);
	strcpy(v + CONFIG_VALUE_MAX, "\n");
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(load(&c, t), 0);
	assert_int_equal(strlen(c.acme.profile), CONFIG_VALUE_MAX);
	config_free(&c);
	/* one more byte is refused by length */
	strcpy(v + CONFIG_VALUE_MAX, "p\n");
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(load(&c, t), -EINVAL);
	assert_string_equal(err, "t.conf:2: acme.profile: value is 4001 bytes "
				 "long, at most 4000 allowed");
	config_free(&c);
	/* a line far longer is refused by the reader, not cut */
	memset(v, 'p', n);
	strcpy(v + n, "\nbogus = 1\n");
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(load(&c, t), -EINVAL);
	assert_string_equal(err, "t.conf:2: line is longer than 4100 bytes");
	config_free(&c);
	free(t);
}

/* --set is applied after the file and wins; relative paths in the file
 * are relative to the file's directory. */
static void test_file_then_set(void **state)
{
	char dir[] = "/tmp/certherd-cfg-XXXXXX", path[256], rel[300];
	struct config c;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[acme]\nemail = file@example.com\nca_bundle = ./roots.pem\n"
	      "[log]\nlevel = warn\n[store]\nstate_dir = state\n",
	      f);
	fclose(f);
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_file(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.acme.email, "file@example.com");
	assert_int_equal(c.log.level, CONFIG_LOG_WARN);
	snprintf(rel, sizeof(rel), "%s/roots.pem", dir);
	assert_string_equal(c.acme.ca_bundle, rel);
	snprintf(rel, sizeof(rel), "%s/state", dir);
	assert_string_equal(c.store.state_dir, rel);
	assert_int_equal(set1(&c, "acme.email=cli@example.com"), 0);
	assert_int_equal(set1(&c, "log.level=debug"), 0);
	assert_string_equal(c.acme.email, "cli@example.com");
	assert_int_equal(c.log.level, CONFIG_LOG_DEBUG);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	snprintf(rel, sizeof(rel), "%s/state/live", dir);
	assert_string_equal(c.store.live_dir, rel);
	config_free(&c);

	/* a missing file says so */
	assert_int_equal(config_defaults(&c), 0);
	snprintf(path, sizeof(path), "%s/none.conf", dir);
	assert_int_equal(config_load_file(&c, path, err, sizeof(err)), -ENOENT);
	snprintf(rel, sizeof(rel), "%s: cannot read: No such file or directory",
		 path);
	assert_string_equal(err, rel);
	config_free(&c);
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	unlink(path);
	rmdir(dir);
}

static void test_validate(void **state)
{
	static const struct {
		const char *a, *b;
		const char *msg;
	} t[] = {
	    {"acme.eab_kid=kid", NULL,
	     "acme.eab_kid and acme.eab_hmac_key_file go together: set "
	     "both or neither"},
	    {"acme.eab_hmac_key_file=/k", NULL,
	     "acme.eab_kid and acme.eab_hmac_key_file go together: set "
	     "both or neither"},
	    {"api.listen=127.0.0.1:8555", NULL,
	     "api.listen is set but api.token_file is not: the TCP API "
	     "needs a bearer token"},
	    {"store.backend=postgresql", NULL,
	     "store.backend is postgresql but store.conninfo is empty"},
	    {"front.enabled=true", "nginx.enabled=true",
	     "front.enabled and nginx.enabled are both true: choose one "
	     "mode"},
	    {"front.enabled=true", NULL,
	     "front.enabled is true but front.upstream is empty: say where "
	     "the web server listens"},
	    {"on_demand.enabled=true", NULL,
	     "on_demand.enabled needs front.enabled: names are issued "
	     "during TLS handshakes"},
	    {"nginx.enabled=true", NULL,
	     "nginx.strategy is server-blocks with the built-in template "
	     "but nginx.upstream is empty"},
	    {"http.listen=127.0.0.1:443", "front.enabled=true",
	     "http.listen and front.listen both listen on :443"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct config c;

		assert_int_equal(config_defaults(&c), 0);
		assert_int_equal(set1(&c, "front.upstream=127.0.0.1:8443"), 0);
		if (i == 5)
			assert_int_equal(set1(&c, "front.upstream="), 0);
		assert_int_equal(set1(&c, t[i].a), 0);
		if (t[i].b)
			assert_int_equal(set1(&c, t[i].b), 0);
		err[0] = '\0';
		if (config_validate(&c, err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu accepted", i);
		assert_string_equal(err, t[i].msg);
		config_free(&c);
	}
}

static void write_mode(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secrets(void **state)
{
	char dir[] = "/tmp/certherd-sec-XXXXXX", tok[256], eab[256], want[1200],
	     set[300];
	struct config c;
	char *s = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(tok, sizeof(tok), "%s/token", dir);
	snprintf(eab, sizeof(eab), "%s/eab", dir);
	write_mode(tok, "s3cret-token\n", 0644);
	write_mode(eab, "aGVsbG8\n", 0600);

	assert_int_equal(
	    config_read_secret(tok, "api.token_file", &s, err, sizeof(err)),
	    -EPERM);
	assert_null(s);
	snprintf(want, sizeof(want),
		 "api.token_file: %s has mode 0644; a "
		 "secret file must not be accessible by group or others "
		 "(chmod 600 %s)",
		 tok, tok);
	assert_string_equal(err, want);
	assert_null(strstr(err, "s3cret"));

	assert_int_equal(chmod(tok, 0640), 0);
	assert_int_equal(
	    config_read_secret(tok, "api.token_file", &s, err, sizeof(err)),
	    -EPERM);
	assert_int_equal(chmod(tok, 0600), 0);
	assert_int_equal(
	    config_read_secret(tok, "api.token_file", &s, err, sizeof(err)), 0);
	assert_string_equal(s, "s3cret-token");
	free(s);
	s = NULL;

	/* through the config: both secrets land in their fields */
	assert_int_equal(config_defaults(&c), 0);
	snprintf(set, sizeof(set), "api.token_file=%s", tok);
	assert_int_equal(set1(&c, set), 0);
	snprintf(set, sizeof(set), "acme.eab_hmac_key_file=%s", eab);
	assert_int_equal(set1(&c, set), 0);
	assert_int_equal(set1(&c, "acme.eab_kid=kid-1"), 0);
	assert_int_equal(set1(&c, "api.listen=127.0.0.1:8555"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(config_load_secrets(&c, err, sizeof(err)), 0);
	assert_string_equal(c.api.token, "s3cret-token");
	assert_string_equal(c.acme.eab_hmac_key, "aGVsbG8");
	/* the dump names the files, never the secrets */
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);

		assert_non_null(m);
		assert_int_equal(config_dump(&c, m), 0);
		fclose(m);
		assert_null(strstr(buf, "s3cret"));
		assert_null(strstr(buf, "aGVsbG8"));
		assert_non_null(strstr(buf, tok));
		free(buf);
	}
	config_free(&c);

	/* empty, missing, directory */
	write_mode(tok, "\n", 0600);
	assert_int_equal(
	    config_read_secret(tok, "api.token_file", &s, err, sizeof(err)),
	    -EINVAL);
	snprintf(want, sizeof(want), "api.token_file: %s is empty", tok);
	assert_string_equal(err, want);
	assert_int_equal(
	    config_read_secret(dir, "api.token_file", &s, err, sizeof(err)),
	    -EINVAL);
	unlink(tok);
	assert_int_equal(
	    config_read_secret(tok, "api.token_file", &s, err, sizeof(err)),
	    -ENOENT);
	unlink(eab);
	rmdir(dir);
}

static char *dump_str(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	assert_int_equal(config_dump(c, m), 0);
	fclose(m);
	return buf;
}

/* What config_dump prints reads back to the same configuration. */
static void test_dump_roundtrip(void **state)
{
	struct config a, b;
	char *d1, *d2;

	(void)state;
	assert_int_equal(config_defaults(&a), 0);
	assert_int_equal(set1(&a, "preflight.addresses=192.0.2.1,::1"), 0);
	assert_int_equal(set1(&a, "hooks.batch=90s"), 0);
	assert_int_equal(set1(&a, "front.upstream=[::1]:8443"), 0);
	assert_int_equal(set1(&a, "hooks.deploy=systemctl reload nginx"), 0);
	assert_int_equal(set1(&a, "limits.orders=5/90s"), 0);
	assert_int_equal(set1(&a, "limits.identical=0"), 0);
	assert_int_equal(config_validate(&a, err, sizeof(err)), 0);
	d1 = dump_str(&a);
	assert_non_null(strstr(d1, "orders = 5/1m30s\n"));
	assert_non_null(strstr(d1, "identical = 0\n"));
	assert_non_null(strstr(d1, "certs_per_domain =\n"));
	assert_non_null(strstr(d1, "batch = 1m30s\n"));
	assert_non_null(strstr(d1, "addresses = 192.0.2.1, ::1\n"));
	assert_non_null(strstr(d1, "upstream = [::1]:8443\n"));
	assert_int_equal(config_defaults(&b), 0);
	if (load(&b, d1) != 0)
		fail_msg("%s", err);
	assert_int_equal(config_validate(&b, err, sizeof(err)), 0);
	d2 = dump_str(&b);
	assert_string_equal(d1, d2);
	free(d1);
	free(d2);
	config_free(&a);
	config_free(&b);
}

static void test_dump_redacts(void **state)
{
	struct config c;
	char *d;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(set1(&c, "store.conninfo=host=db password=pw"), 0);
	assert_int_equal(set1(&c, "hooks.webhook=https://u:pw@h.example/"
				  "hook?token=pw"),
			 0);
	assert_int_equal(set1(&c, "on_demand.ask=http://127.0.0.1:3000/ask"),
			 0);
	d = dump_str(&c);
	assert_null(strstr(d, "pw"));
	assert_non_null(strstr(d, "conninfo = <redacted>\n"));
	assert_non_null(strstr(d, "webhook = https://<redacted>@h.example/"
				  "hook?<redacted>\n"));
	assert_non_null(strstr(d, "ask = http://127.0.0.1:3000/ask\n"));
	free(d);
	config_free(&c);
}

/* noinline: gcc 12 otherwise warns of a dangling pointer it imagines */
__attribute__((noinline)) static char *read_docs(void)
{
	char *text = NULL;
	size_t len;

	char path[4096];
	size_t n = strlen(TEST_DATA) - strlen("/tests/data");

	/* the source tree is TEST_DATA without its last two components;
	 * tests/data itself need not exist */
	snprintf(path, sizeof(path), "%.*s/docs/config.md", (int)n, TEST_DATA);
	if (fsio_read_all(path, 1 << 20, &text, &len) != 0)
		fail_msg("cannot read %s", path);
	return text;
}

/* The ```ini block under "## Example" in docs/config.md parses and is
 * valid, with relative paths resolved against the docs directory. */
static void test_docs_example(void **state)
{
	char *doc = read_docs(), *start, *end, path[512];
	struct config c;

	(void)state;
	start = strstr(doc, "\n## Example");
	assert_non_null(start);
	start = strstr(start, "```ini\n");
	assert_non_null(start);
	start += 7;
	end = strstr(start, "```");
	assert_non_null(end);
	*end = '\0';
	assert_int_equal(config_defaults(&c), 0);
	err[0] = '\0';
	if (config_load_string(&c, start, "docs/config.md", "/etc/certherd",
			       err, sizeof(err)) != 0)
		fail_msg("%s", err);
	if (config_validate(&c, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(c.front.enabled);
	assert_true(c.on_demand.enabled);
	assert_int_equal(c.on_demand.budget_per_hour, 50);
	assert_int_equal(c.preflight.addresses.n, 2);
	assert_int_equal(c.api.listen.port, 8555);
	assert_int_equal(c.hooks.batch, 60);
	snprintf(path, sizeof(path), "/etc/certherd/api-token");
	assert_string_equal(c.api.token_file, path);
	config_free(&c);
	free(doc);
}

/* Every key of the schema has a row in docs/config.md. */
static void test_docs_every_key(void **state)
{
	char *doc = read_docs();
	struct config_key_info k;
	struct config c;

	(void)state;
	assert_true(config_key_count() > 40);
	assert_int_equal(config_defaults(&c), 0);
	for (size_t i = 0; config_key_at(i, &k) == 0; i++) {
		char row[128], set[200];

		snprintf(row, sizeof(row), "| `%s.%s` | %s |", k.section,
			 k.name, k.type);
		if (!strstr(doc, row))
			fail_msg("docs/config.md lacks %s", row);
		/* and its default is a valid value */
		snprintf(set, sizeof(set), "%s.%s=%s", k.section, k.name,
			 k.def);
		if (set1(&c, set) != 0)
			fail_msg("default of %s.%s: %s", k.section, k.name,
				 err);
	}
	assert_int_equal(config_key_at(config_key_count(), &k), -ENOENT);
	config_free(&c);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_valid),
	    cmocka_unit_test(test_derived),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_values_stored),
	    cmocka_unit_test(test_duration_table),
	    cmocka_unit_test(test_addr_table),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_dns_zones),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_file_then_set),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_secrets),
	    cmocka_unit_test(test_dump_roundtrip),
	    cmocka_unit_test(test_dump_redacts),
	    cmocka_unit_test(test_docs_example),
	    cmocka_unit_test(test_docs_every_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
