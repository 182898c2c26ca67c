/*
 * config — one table of keys drives parsing, --set, defaults, the dump and
 * the key list in docs; struct config gives callers typed fields.
 *
 * The INI syntax is inih's (libinih): "[section]", "key = value", comments
 * starting a line with ';' or '#', and " ;" starting an inline comment.
 * We feed inih through our own line reader (ini_parse_stream) because it
 * lets us count lines for messages without depending on how the library
 * was built (INI_HANDLER_LINENO), refuse over-long lines instead of having
 * them cut silently, and strip leading blanks so an indented line is a key
 * of its own and never a multi-line continuation of the previous value.
 *
 * Values are checked for their key's type when they are read, so a bad
 * value is reported with its file and line; relations between keys are
 * checked once everything is read (config_validate).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "util/config.h"
#include "util/util.h"

const char *const config_key_type_names[CONFIG_KEY__MAX + 1] = {
    "ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096", NULL};
const char *const config_backend_names[CONFIG_BACKEND__MAX + 1] = {
    "sqlite", "postgresql", NULL};
const char *const config_redirect_names[CONFIG_REDIRECT__MAX + 1] = {
    "redirect", "404", NULL};
const char *const config_log_level_names[CONFIG_LOG__MAX + 1] = {
    "debug", "info", "warn", "error", NULL};
const char *const config_challenge_names[CONFIG_CHALLENGE__MAX + 1] = {
    "http-01", "tls-alpn-01", NULL};
const char *const config_nginx_strategy_names[CONFIG_NGINX__MAX + 1] = {
    "server-blocks", "sni-variable", NULL};

enum ktype {
	T_STRING = 0,
	T_COMMAND,
	T_PATH,
	T_URL,
	T_EMAIL,
	T_BOOL,
	T_INT,
	T_DURATION,
	T_ENUM,
	T_ADDR,
	T_IP_LIST,
	T_RATE,
	T__MAX
};
static const char *const ktype_names[T__MAX] = {
    "string", "command",  "path", "url",     "email",	    "bool",
    "int",    "duration", "enum", "address", "address list", "rate"};

/* Key flags beyond the address flags of config.h (which use bits 0-4). */
enum {
	K_REQUIRED = 1 << 8, /* may not be empty */
	K_REDACT = 1 << 9,   /* config_dump prints <redacted> */
};

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;
	const char *doc;
	int64_t min, max;	  /* T_INT, T_DURATION */
	const char *const *names; /* T_ENUM */
	unsigned flags;
};

#define F(field)  offsetof(struct config, field)
#define AF_LISTEN 0
#define AF_PEER	  (CONFIG_AF_HOST_REQUIRED)
#define DAY	  (24 * 3600)

/* Keep docs/config.md in step: test_config checks every key is there. */
static const struct key keys[] = {
    {"acme", "directory", T_URL, F(acme.directory),
     "https://acme-v02.api.letsencrypt.org/directory",
     "ACME directory URL of the CA", 0, 0, NULL, K_REQUIRED},
    {"acme", "ca_bundle", T_PATH, F(acme.ca_bundle), "",
     "PEM file of CA roots trusted for the ACME server (empty: system store)",
     0, 0, NULL, 0},
    {"acme", "email", T_EMAIL, F(acme.email), "",
     "contact address registered with the account (empty: none)", 0, 0, NULL,
     0},
    {"acme", "eab_kid", T_STRING, F(acme.eab_kid), "",
     "external account binding key id (with eab_hmac_key_file)", 0, 0, NULL, 0},
    {"acme", "eab_hmac_key_file", T_PATH, F(acme.eab_hmac_key_file), "",
     "file holding the base64url EAB HMAC key, mode 0600", 0, 0, NULL, 0},
    {"acme", "key_type", T_ENUM, F(acme.key_type), "ecdsa-p256",
     "certificate key type", 0, 0, config_key_type_names, 0},
    {"acme", "challenge", T_ENUM, F(acme.challenge), "http-01",
     "challenge type of new orders (tls-alpn-01: answered by front mode)", 0,
     0, config_challenge_names, 0},
    {"acme", "profile", T_STRING, F(acme.profile), "",
     "certificate profile asked of the CA (empty: the CA's default)", 0, 0,
     NULL, 0},
    {"acme", "preferred_issuer", T_STRING, F(acme.preferred_issuer), "",
     "common name of the root of the preferred alternate chain", 0, 0, NULL, 0},
    {"acme", "concurrency", T_INT, F(acme.concurrency), "100",
     "orders in flight at once", 1, 10000, NULL, 0},
    {"acme", "ca_connections", T_INT, F(acme.ca_connections), "8",
     "HTTP connections to the CA", 1, 256, NULL, 0},

    {"store", "state_dir", T_PATH, F(store.state_dir), "/var/lib/certherd",
     "directory of the database, keys and sockets", 0, 0, NULL, K_REQUIRED},
    {"store", "backend", T_ENUM, F(store.backend), "sqlite",
     "where state lives", 0, 0, config_backend_names, 0},
    {"store", "conninfo", T_STRING, F(store.conninfo), "",
     "PostgreSQL connection string (backend = postgresql)", 0, 0, NULL,
     K_REDACT},
    {"store", "live_dir", T_PATH, F(store.live_dir), "",
     "certbot-style live/<domain>/ tree (empty: state_dir/live)", 0, 0, NULL,
     0},
    {"store", "write_live", T_BOOL, F(store.write_live), "true",
     "write each certificate to live_dir", 0, 0, NULL, 0},
    {"store", "keep_removed", T_DURATION, F(store.keep_removed), "30d",
     "how long files of a removed domain are kept", 0, 3650LL * DAY, NULL, 0},

    {"http", "listen", T_ADDR, F(http.listen), ":80",
     "HTTP-01 challenge listener and redirect to https (empty: none; then "
     "DNS-01 zones or TLS-ALPN-01 validate)", 0, 0, NULL,
     AF_LISTEN | CONFIG_AF_EMPTY_OK},
    {"http", "redirect", T_ENUM, F(http.redirect), "redirect",
     "answer to other requests: 308 to https, or 404", 0, 0,
     config_redirect_names, 0},

    {"api", "socket", T_PATH, F(api.socket), "",
     "control API unix socket (empty: state_dir/api.sock)", 0, 0, NULL, 0},
    {"api", "listen", T_ADDR, F(api.listen), "",
     "control API TCP address, bearer token required (empty: off)", 0, 0, NULL,
     CONFIG_AF_EMPTY_OK},
    {"api", "token_file", T_PATH, F(api.token_file), "",
     "file holding the API bearer token, mode 0600", 0, 0, NULL, 0},

    {"preflight", "enabled", T_BOOL, F(preflight.enabled), "true",
     "check a domain's DNS before ordering", 0, 0, NULL, 0},
    {"preflight", "resolver", T_ADDR, F(preflight.resolver), "system",
     "DNS server: system (resolv.conf) or ADDR:PORT", 0, 0, NULL,
     AF_PEER | CONFIG_AF_SYSTEM_OK},
    {"preflight", "addresses", T_IP_LIST, F(preflight.addresses), "",
     "our public IPs, comma-separated (empty: only check the name resolves)", 0,
     0, NULL, CONFIG_AF_NO_PORT | CONFIG_AF_EMPTY_OK},

    {"renew", "ari", T_BOOL, F(renew.ari), "true",
     "follow the CA's renewal windows (ARI) when offered", 0, 0, NULL, 0},
    {"renew", "backoff_max", T_DURATION, F(renew.backoff_max), "1d",
     "longest wait between retries of a failing domain", 60, 30LL * DAY, NULL,
     0},

    {"limits", "orders", T_RATE, F(limits.orders), "",
     "new orders per account (empty: Let's Encrypt's 300/3h with LE, else "
     "none)",
     0, 0, NULL, 0},
    {"limits", "certs_per_domain", T_RATE, F(limits.certs_per_domain), "",
     "certificates per registered domain, renewals exempt (empty: 50/7d "
     "with LE, else none)",
     0, 0, NULL, 0},
    {"limits", "identical", T_RATE, F(limits.identical), "",
     "certificates per identical set of names (empty: 5/7d with LE, else "
     "none)",
     0, 0, NULL, 0},
    {"limits", "failed_authz", T_RATE, F(limits.failed_authz), "",
     "failed authorizations per name (empty: 5/1h with LE, else none)", 0, 0,
     NULL, 0},

    {"hooks", "deploy", T_COMMAND, F(hooks.deploy), "",
     "command run (sh -c) after certificates changed (empty: none)", 0, 0, NULL,
     0},
    {"hooks", "webhook", T_URL, F(hooks.webhook), "",
     "URL POSTed a JSON list of changed domains (empty: none)", 0, 0, NULL, 0},
    {"hooks", "batch", T_DURATION, F(hooks.batch), "30s",
     "changes within this time make one hook run", 0, DAY, NULL, 0},
    {"hooks", "timeout", T_DURATION, F(hooks.timeout), "5m",
     "the deploy command is killed after this long", 1, DAY, NULL, 0},

    {"dns", "resolver", T_ADDR, F(dns.resolver), "system",
     "DNS-01: server asked for a zone's SOA and NS: system (resolv.conf) or "
     "ADDR:PORT",
     0, 0, NULL, AF_PEER | CONFIG_AF_SYSTEM_OK},
    {"dns", "propagation_timeout", T_DURATION, F(dns.propagation_timeout),
     "2m", "DNS-01: longest wait for every name server to serve the record",
     1, 3600, NULL, 0},
    {"dns", "hook_timeout", T_DURATION, F(dns.hook_timeout), "1m",
     "DNS-01: a hook updater command is killed after this long", 1, 3600,
     NULL, 0},

    {"log", "level", T_ENUM, F(log.level), "info", "least level logged", 0, 0,
     config_log_level_names, 0},

    {"daemon", "drain_timeout", T_DURATION, F(daemon.drain_timeout), "10s",
     "on SIGTERM, how long orders in flight may finish (0: stop at once)", 0,
     3600, NULL, 0},

    {"front", "enabled", T_BOOL, F(front.enabled), "false",
     "front mode: terminate TLS on listen for every domain", 0, 0, NULL, 0},
    {"front", "listen", T_ADDR, F(front.listen), ":443", "TLS listener", 0, 0,
     NULL, AF_LISTEN},
    {"front", "upstream", T_ADDR, F(front.upstream), "",
     "web server behind: ADDR:PORT or unix:/path", 0, 0, NULL,
     AF_PEER | CONFIG_AF_UNIX_OK | CONFIG_AF_EMPTY_OK},
    {"front", "upstream_h2c", T_ADDR, F(front.upstream_h2c), "",
     "cleartext HTTP/2 upstream; enables h2 for clients (empty: off)", 0, 0,
     NULL, AF_PEER | CONFIG_AF_UNIX_OK | CONFIG_AF_EMPTY_OK},
    {"front", "proxy_protocol", T_BOOL, F(front.proxy_protocol), "true",
     "send a PROXY protocol v2 header upstream", 0, 0, NULL, 0},
    {"front", "workers", T_INT, F(front.workers), "0",
     "TLS worker threads (0: one per core)", 0, 1024, NULL, 0},
    {"front", "cache_size", T_INT, F(front.cache_size), "100000",
     "parsed certificates kept in memory", 16, 10000000, NULL, 0},
    {"front", "handshake_timeout", T_DURATION, F(front.handshake_timeout),
     "10s", "a TLS handshake must finish this long after the accept", 1, 600,
     NULL, 0},
    {"front", "idle_timeout", T_DURATION, F(front.idle_timeout), "5m",
     "a connection with no byte moved for this long is closed", 1, DAY, NULL,
     0},
    {"front", "max_connections", T_INT, F(front.max_connections), "16384",
     "open connections per worker; more are closed at once", 1, 1000000,
     NULL, 0},
    {"front", "default_certificate", T_PATH, F(front.default_certificate), "",
     "PEM chain served for unknown names and no SNI (empty: an "
     "unrecognized_name alert)", 0, 0, NULL, 0},
    {"front", "default_key", T_PATH, F(front.default_key), "",
     "PEM key of default_certificate, mode 0600", 0, 0, NULL, 0},

    {"on_demand", "enabled", T_BOOL, F(on_demand.enabled), "false",
     "issue for an unknown SNI name at its first handshake if allowed", 0, 0,
     NULL, 0},
    {"on_demand", "ask", T_URL, F(on_demand.ask), "",
     "URL asked GET ?domain=NAME, 2xx allows (empty: registered names only)", 0,
     0, NULL, 0},
    {"on_demand", "budget_per_hour", T_INT, F(on_demand.budget_per_hour), "100",
     "on-demand orders per hour, all names together", 0, 1000000, NULL, 0},
    {"on_demand", "budget_per_domain", T_INT, F(on_demand.budget_per_domain),
     "10", "on-demand orders per hour per registered domain", 0, 1000000,
     NULL, 0},
    {"on_demand", "wait", T_DURATION, F(on_demand.wait), "30s",
     "how long a handshake waits for its on-demand certificate", 1, 600, NULL,
     0},

    {"nginx", "enabled", T_BOOL, F(nginx.enabled), "false",
     "nginx mode: maintain an nginx include and reload nginx", 0, 0, NULL, 0},
    {"nginx", "strategy", T_ENUM, F(nginx.strategy), "server-blocks",
     "one server block per domain, or one using $ssl_server_name", 0, 0,
     config_nginx_strategy_names, 0},
    {"nginx", "include", T_PATH, F(nginx.include), "",
     "include file written (empty: state_dir/nginx/certherd.conf)", 0, 0, NULL,
     0},
    {"nginx", "template", T_PATH, F(nginx.template_file), "",
     "server block template (empty: built-in, proxies to upstream)", 0, 0, NULL,
     0},
    {"nginx", "nginx", T_COMMAND, F(nginx.nginx), "nginx",
     "command that runs this nginx, with its -c/-p flags", 0, 0, NULL,
     K_REQUIRED},
    {"nginx", "upstream", T_ADDR, F(nginx.upstream), "",
     "where the built-in template proxies to", 0, 0, NULL,
     AF_PEER | CONFIG_AF_UNIX_OK | CONFIG_AF_EMPTY_OK},
    {"nginx", "reload_interval", T_DURATION, F(nginx.reload_interval), "1m",
     "at most one nginx reload per interval", 1, DAY, NULL, 0},
    {"nginx", "verify", T_BOOL, F(nginx.verify), "true",
     "after a reload, check by handshake that nginx serves the new certs", 0, 0,
     NULL, 0},
    {"nginx", "listen", T_ADDR, F(nginx.listen), ":443",
     "where the generated server blocks listen (ssl)", 0, 0, NULL, AF_LISTEN},
    {"nginx", "key_owner", T_STRING, F(nginx.key_owner), "",
     "user[:group] owning each privkey.pem (empty: certherd's user)", 0, 0,
     NULL, 0},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
/* apply() stores enum values through an int pointer */
_Static_assert(sizeof(enum config_key_type) == sizeof(int) &&
		   sizeof(enum config_backend) == sizeof(int) &&
		   sizeof(enum config_redirect) == sizeof(int) &&
		   sizeof(enum config_log_level) == sizeof(int) &&
		   sizeof(enum config_nginx_strategy) == sizeof(int) &&
		   sizeof(enum config_challenge) == sizeof(int),
	       "enum fields are ints");
/* callers may cast log.level to enum log_level */
_Static_assert(CONFIG_LOG_DEBUG == (int)LOG_LVL_DEBUG &&
		   CONFIG_LOG_INFO == (int)LOG_LVL_INFO &&
		   CONFIG_LOG_WARN == (int)LOG_LVL_WARN &&
		   CONFIG_LOG_ERROR == (int)LOG_LVL_ERROR,
	       "log levels match util.h");
_Static_assert(NKEYS <= 128, "set_mask holds 128 bits");

/* ---- messages ----------------------------------------------------------- */

static void msgf(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msgf(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* A value shown in a message: quoted, at most 60 bytes, control bytes and
 * quotes escaped so a message stays one honest line. */
static const char *show(const char *v, char *buf, size_t bufsz)
{
	size_t o = 0, i;

	buf[o++] = '"';
	for (i = 0; v[i] && o + 8 < bufsz; i++) {
		unsigned char c = (unsigned char)v[i];

		if (i == 60) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define SHOWSZ 320

/* ---- value parsers ------------------------------------------------------ */

int config_parse_duration(const char *s, int64_t *out)
{
	int64_t total = 0;
	const int64_t cap = 3650LL * DAY;
	int parts = 0;

	if (!s || !out)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*s) {
		int64_t n = 0, mul;
		int digits = 0;

		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (*s - '0');
			if (n > cap)
				return -EINVAL;
			s++;
			digits++;
		}
		if (!digits)
			return -EINVAL;
		switch (*s) {
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = DAY;
			break;
		default:
			return -EINVAL;
		}
		s++;
		total += n * mul;
		if (total > cap)
			return -EINVAL;
		parts++;
	}
	if (!parts)
		return -EINVAL;
	*out = total;
	return 0;
}

int config_parse_rate(const char *s, struct config_rate *out)
{
	char num[16];
	const char *slash;
	int64_t n, p;
	size_t len;

	if (!s || !out)
		return -EINVAL;
	if (!*s) {
		out->count = -1; /* the CA's default */
		out->period = 0;
		return 0;
	}
	if (strcmp(s, "0") == 0) {
		out->count = out->period = 0;
		return 0;
	}
	slash = strchr(s, '/');
	if (!slash || (len = (size_t)(slash - s)) == 0 || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len);
	num[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (num[i] < '0' || num[i] > '9')
			return -EINVAL;
	n = strtoll(num, NULL, 10);
	if (n > 1000000 || config_parse_duration(slash + 1, &p) < 0 || p <= 0)
		return -EINVAL;
	out->count = n;
	out->period = n ? p : 0;
	return 0;
}

/* Largest units first: 90 -> "1m30s", 0 -> "0s". */
static void fmt_duration(int64_t v, char *buf, size_t bufsz)
{
	static const struct {
		char u;
		int64_t s;
	} units[] = {{'d', DAY}, {'h', 3600}, {'m', 60}, {'s', 1}};
	size_t o = 0;

	buf[0] = '\0';
	if (v == 0) {
		snprintf(buf, bufsz, "0s");
		return;
	}
	for (size_t i = 0; i < 4 && o < bufsz; i++) {
		if (v >= units[i].s) {
			o += (size_t)snprintf(buf + o, bufsz - o, "%lld%c",
					      (long long)(v / units[i].s),
					      units[i].u);
			v %= units[i].s;
		}
	}
}

static int parse_port(const char *s, uint16_t *port)
{
	long v = 0;

	if (!*s || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* Canonical text of an IP literal; family AF_INET or AF_INET6. */
static int parse_ip(const char *s, int family, struct config_addr *out)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(family, s, buf) != 1)
		return -EINVAL;
	if (!inet_ntop(family, buf, out->host, sizeof(out->host)))
		return -EINVAL;
	out->family = family;
	out->kind = CONFIG_ADDR_IP;
	return 0;
}

int config_parse_addr(const char *s, unsigned flags, struct config_addr *out)
{
	char host[64];
	const char *port;
	size_t hl;

	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!*s)
		return (flags & CONFIG_AF_EMPTY_OK) ? 0 : -EINVAL;
	if (strcmp(s, "system") == 0) {
		if (!(flags & CONFIG_AF_SYSTEM_OK))
			return -EINVAL;
		out->kind = CONFIG_ADDR_SYSTEM;
		return 0;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		if (!(flags & CONFIG_AF_UNIX_OK) || s[5] != '/' ||
		    strlen(s + 5) >= sizeof(out->path))
			return -EINVAL;
		out->kind = CONFIG_ADDR_UNIX;
		out->family = AF_UNIX;
		strcpy(out->path, s + 5);
		return 0;
	}
	if (flags & CONFIG_AF_NO_PORT) {
		hl = strlen(s);
		if (hl >= sizeof(host))
			return -EINVAL;
		if (s[0] == '[' && hl > 2 && s[hl - 1] == ']') {
			memcpy(host, s + 1, hl - 2);
			host[hl - 2] = '\0';
			return parse_ip(host, AF_INET6, out);
		}
		if (parse_ip(s, AF_INET, out) == 0)
			return 0;
		return parse_ip(s, AF_INET6, out);
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (parse_port(close + 2, &out->port) < 0 ||
		    parse_ip(host, AF_INET6, out) < 0)
			goto bad;
		return 0;
	}
	port = strrchr(s, ':');
	if (!port)
		return -EINVAL;
	hl = (size_t)(port - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (parse_port(port + 1, &out->port) < 0)
		goto bad;
	if (hl == 0) {
		if (flags & CONFIG_AF_HOST_REQUIRED)
			goto bad;
		out->kind = CONFIG_ADDR_ANY;
		out->family = AF_UNSPEC;
		return 0;
	}
	/* an IPv6 literal needs brackets: "::1:80" is ambiguous */
	if (parse_ip(host, AF_INET, out) < 0)
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

static void fmt_addr(const struct config_addr *a, char *buf, size_t bufsz)
{
	switch (a->kind) {
	case CONFIG_ADDR_ANY:
		snprintf(buf, bufsz, ":%u", a->port);
		break;
	case CONFIG_ADDR_IP:
		if (a->port == 0)
			snprintf(buf, bufsz, "%s", a->host);
		else if (a->family == AF_INET6)
			snprintf(buf, bufsz, "[%s]:%u", a->host, a->port);
		else
			snprintf(buf, bufsz, "%s:%u", a->host, a->port);
		break;
	case CONFIG_ADDR_UNIX:
		snprintf(buf, bufsz, "unix:%s", a->path);
		break;
	case CONFIG_ADDR_SYSTEM:
		snprintf(buf, bufsz, "system");
		break;
	default:
		buf[0] = '\0';
	}
}

static const char *addr_expect(unsigned flags)
{
	if (flags & CONFIG_AF_NO_PORT)
		return "IP addresses like 192.0.2.1, 2001:db8::1, "
		       "comma-separated";
	if (flags & CONFIG_AF_SYSTEM_OK)
		return "system or an address like 127.0.0.1:53 or [::1]:53";
	if (flags & CONFIG_AF_UNIX_OK)
		return "an address like 127.0.0.1:8080, [::1]:8080 or "
		       "unix:/path";
	if (flags & CONFIG_AF_EMPTY_OK)
		return "empty or an address like :80, 127.0.0.1:80 or "
		       "[::1]:80";
	return "an address like :80, 127.0.0.1:80 or [::1]:80";
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const t[] = {"true", "yes", "on", "1"};
	static const char *const f[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	/* decimal only: no "0x", no leading '+' or blanks */
	if (!((*s >= '0' && *s <= '9') ||
	      (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int check_url(const char *s)
{
	const char *h;

	if (strncmp(s, "https://", 8) == 0)
		h = s + 8;
	else if (strncmp(s, "http://", 7) == 0)
		h = s + 7;
	else
		return -EINVAL;
	if (!*h || *h == '/' || *h == '?' || *h == '#' || strchr(s, ' '))
		return -EINVAL;
	return 0;
}

static int check_email(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@') || strchr(s, ' ') ||
	    strlen(s) > 254 || !strchr(at + 1, '.'))
		return -EINVAL;
	return 0;
}

/* Join base and a relative path; "" stays "". */
static char *resolve_path(const char *v, const char *base)
{
	char *p;

	if (!*v || v[0] == '/' || !base)
		return strdup(v);
	if (asprintf(&p, "%s%s%s", base,
		     base[strlen(base) - 1] == '/' ? "" : "/",
		     strncmp(v, "./", 2) == 0 ? v + 2 : v) < 0)
		return NULL;
	return p;
}

static void free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

/* ---- applying one value ------------------------------------------------- */

static char *full_name(const struct key *k, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s.%s", k->section, k->name);
	return buf;
}

/*
 * Check v against k's type and store it in cfg. base resolves relative
 * paths. On error writes "section.key: "value" <problem>" into msg.
 */
static int apply(struct config *cfg, const struct key *k, const char *v,
		 const char *base, char *msg, size_t msgsz)
{
	void *field = (char *)cfg + k->off;
	char kn[64], sv[SHOWSZ], a[32], b[32];
	size_t vl = strlen(v);
	int rc = -EINVAL;

	full_name(k, kn, sizeof(kn));
	if (vl > CONFIG_VALUE_MAX) {
		msgf(msg, msgsz,
		     "%s: value is %zu bytes long, at most %d "
		     "allowed",
		     kn, vl, CONFIG_VALUE_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c == 0x7f) {
			msgf(msg, msgsz, "%s: %s contains a control character",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
	}
	if (vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') ||
			(v[0] == '\'' && v[vl - 1] == '\''))) {
		msgf(msg, msgsz,
		     "%s: %s is quoted; values are taken "
		     "literally, write it without quotes",
		     kn, show(v, sv, sizeof(sv)));
		return -EINVAL;
	}
	for (size_t i = 1; i < vl; i++) {
		if (v[i] == ';' && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
			msgf(msg, msgsz,
			     "%s: %s contains \" ;\", which starts "
			     "a comment in a file",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
	}
	if (!*v && (k->flags & K_REQUIRED)) {
		msgf(msg, msgsz, "%s: may not be empty", kn);
		return -EINVAL;
	}

	switch (k->type) {
	case T_STRING:
	case T_COMMAND:
	case T_PATH:
	case T_URL:
	case T_EMAIL: {
		char **sp = field, *nv;

		if (*v && k->type == T_URL && check_url(v) < 0) {
			msgf(msg, msgsz,
			     "%s: %s is not an http:// or https:// "
			     "URL with a host",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
		if (*v && k->type == T_EMAIL && check_email(v) < 0) {
			msgf(msg, msgsz,
			     "%s: %s is not an e-mail address "
			     "like admin@example.com",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
		nv = k->type == T_PATH ? resolve_path(v, base) : strdup(v);
		if (!nv) {
			msgf(msg, msgsz, "%s: out of memory", kn);
			return -ENOMEM;
		}
		if (k->type == T_PATH && strlen(nv) >= PATH_MAX) {
			msgf(msg, msgsz, "%s: path %s is longer than %d bytes",
			     kn, show(nv, sv, sizeof(sv)), PATH_MAX - 1);
			free(nv);
			return -EINVAL;
		}
		free(*sp);
		*sp = nv;
		rc = 0;
		break;
	}
	case T_BOOL:
		if (parse_bool(v, field) < 0) {
			msgf(msg, msgsz,
			     "%s: %s is not a boolean (true, "
			     "false, yes, no, on, off, 1, 0)",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
		rc = 0;
		break;
	case T_INT: {
		int64_t n;

		if (parse_int(v, &n) < 0 || n < k->min || n > k->max) {
			msgf(msg, msgsz,
			     "%s: %s is not an integer from %lld "
			     "to %lld",
			     kn, show(v, sv, sizeof(sv)), (long long)k->min,
			     (long long)k->max);
			return -EINVAL;
		}
		*(int64_t *)field = n;
		rc = 0;
		break;
	}
	case T_DURATION: {
		int64_t n;

		if (config_parse_duration(v, &n) < 0 || n < k->min ||
		    n > k->max) {
			fmt_duration(k->min, a, sizeof(a));
			fmt_duration(k->max, b, sizeof(b));
			msgf(msg, msgsz,
			     "%s: %s is not a duration like 30s, "
			     "5m, 12h or 7d from %s to %s",
			     kn, show(v, sv, sizeof(sv)), a, b);
			return -EINVAL;
		}
		*(int64_t *)field = n;
		rc = 0;
		break;
	}
	case T_ENUM: {
		char list[200];
		size_t o = 0;

		for (int i = 0; k->names[i]; i++) {
			if (strcmp(v, k->names[i]) == 0) {
				/* every enum field is a plain C enum (int) */
				*(int *)field = i;
				return 0;
			}
			o +=
			    (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
					     i ? ", " : "", k->names[i]);
		}
		msgf(msg, msgsz, "%s: %s is not one of %s", kn,
		     show(v, sv, sizeof(sv)), list);
		return -EINVAL;
	}
	case T_ADDR: {
		struct config_addr ad;

		if (config_parse_addr(v, k->flags, &ad) < 0) {
			msgf(msg, msgsz, "%s: %s is not %s", kn,
			     show(v, sv, sizeof(sv)), addr_expect(k->flags));
			return -EINVAL;
		}
		*(struct config_addr *)field = ad;
		rc = 0;
		break;
	}
	case T_IP_LIST: {
		struct config_addr_list *l = field, nl = {0, NULL};
		char *copy = strdup(v), *save = NULL, *tok;

		if (!copy || !(nl.v = calloc(CONFIG_LIST_MAX, sizeof(*nl.v)))) {
			free(copy);
			msgf(msg, msgsz, "%s: out of memory", kn);
			return -ENOMEM;
		}
		rc = 0;
		/* strtok_r would skip empty items; "a,,b" is a mistake */
		for (tok = copy; *v && tok; tok = save) {
			char *end;

			save = strchr(tok, ',');
			if (save)
				*save++ = '\0';
			while (*tok == ' ')
				tok++;
			end = tok + strlen(tok);
			while (end > tok && end[-1] == ' ')
				*--end = '\0';
			if (nl.n == CONFIG_LIST_MAX) {
				msgf(msg, msgsz, "%s: more than %d items", kn,
				     CONFIG_LIST_MAX);
				rc = -EINVAL;
				break;
			}
			if (config_parse_addr(tok,
					      k->flags & ~CONFIG_AF_EMPTY_OK,
					      &nl.v[nl.n]) < 0) {
				msgf(msg, msgsz, "%s: %s is not %s", kn,
				     show(tok, sv, sizeof(sv)),
				     addr_expect(k->flags));
				rc = -EINVAL;
				break;
			}
			nl.n++;
		}
		free(copy);
		if (rc < 0) {
			free(nl.v);
			return rc;
		}
		free(l->v);
		*l = nl;
		break;
	}
	case T_RATE:
		if (config_parse_rate(v, field) < 0) {
			msgf(msg, msgsz,
			     "%s: %s is not a rate like 300/3h or 5/7d "
			     "(count from 0 to 1000000 per duration), or 0 "
			     "for no limit",
			     kn, show(v, sv, sizeof(sv)));
			return -EINVAL;
		}
		rc = 0;
		break;
	default:
		break;
	}
	return rc;
}

static const struct key *find_key(const char *section, const char *name,
				  bool *section_known)
{
	*section_known = false;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		*section_known = true;
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static void mark_set(struct config *cfg, const struct key *k)
{
	size_t i = (size_t)(k - keys);

	cfg->set_mask[i / 64] |= 1ULL << (i % 64);
}

static bool is_set(const struct config *cfg, const void *field_addr)
{
	size_t off = (size_t)((const char *)field_addr - (const char *)cfg);

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].off == off)
			return cfg->set_mask[i / 64] & (1ULL << (i % 64));
	return false;
}

/* ---- defaults and free -------------------------------------------------- */

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free_secret(&cfg->acme.eab_hmac_key);
	free_secret(&cfg->api.token);
	config__dns_free(cfg);
	for (size_t i = 0; i < NKEYS; i++) {
		void *field = (char *)cfg + keys[i].off;

		switch (keys[i].type) {
		case T_STRING:
		case T_COMMAND:
		case T_PATH:
		case T_URL:
		case T_EMAIL:
			if (keys[i].flags & K_REDACT)
				free_secret(field);
			else
				free(*(char **)field);
			break;
		case T_IP_LIST:
			free(((struct config_addr_list *)field)->v);
			break;
		default:
			break;
		}
	}
	memset(cfg, 0, sizeof(*cfg));
}

int config_defaults(struct config *cfg)
{
	char msg[256];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		rc = apply(cfg, &keys[i], keys[i].def, "/", msg, sizeof(msg));
		if (rc < 0) {
			/* a bad default is a bug in the table, caught by the
			 * unit tests; out of memory is the only runtime case */
			config_free(cfg);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
	}
	return 0;
}

/* ---- the INI file ------------------------------------------------------- */

/* Longest line handed to inih: a key, '=', blanks and the longest value. */
#define LINE_MAX_LEN (CONFIG_VALUE_MAX + 100)

struct load {
	struct config *cfg;
	const char *name;
	const char *base;
	const char *p, *end; /* text still to read */
	int line;	     /* line last handed to inih */
	int err_line;	     /* first line we reported, 0 if none */
	int rc;
	char *err;
	size_t errsz;
	int seen[NKEYS]; /* line where each key was set in this file */
};

static void load_fail(struct load *ld, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void load_fail(struct load *ld, int rc, const char *fmt, ...)
{
	char m[512];
	va_list ap;

	if (ld->err_line)
		return; /* keep the first error */
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	msgf(ld->err, ld->errsz, "%s:%d: %s", ld->name, ld->line, m);
	ld->err_line = ld->line;
	ld->rc = rc;
}

/* inih's reader: one line per call, so ld->line is the line the handler
 * is about to see. Leading blanks are dropped (no continuation lines). */
static char *reader(char *str, int num, void *stream)
{
	struct load *ld = stream;
	const char *nl, *s;
	size_t len;

	if (ld->p >= ld->end)
		return NULL;
	ld->line++;
	nl = memchr(ld->p, '\n', (size_t)(ld->end - ld->p));
	s = ld->p;
	ld->p = nl ? nl + 1 : ld->end;
	while (s < ld->p && (*s == ' ' || *s == '\t'))
		s++;
	len = (size_t)(ld->p - s);
	if (len > LINE_MAX_LEN || len + 1 > (size_t)num) {
		load_fail(ld, -EINVAL, "line is longer than %d bytes",
			  LINE_MAX_LEN);
		len = 0;
		s = "\n";
		len = 1;
	}
	memcpy(str, s, len);
	str[len] = '\0';
	return str;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct load *ld = user;
	const struct key *k;
	char msg[512], sv[SHOWSZ];
	bool known;
	size_t i;
	int rc;

	if (ld->err_line)
		return 1; /* already failed; stay quiet about the rest */
	if (!*section) {
		load_fail(ld, -EINVAL, "key %s is outside any [section]",
			  show(name, sv, sizeof(sv)));
		return 1;
	}
	{
		/* [dns "ZONE"]: its own keys (config_dns.c) */
		char zone[NAME_MAX_LEN + 1];

		rc = config__dns_section(section, zone, sizeof(zone), msg,
					 sizeof(msg));
		if (rc > 0)
			rc = config__dns_key(ld->cfg, zone, name, value,
					     ld->base, msg, sizeof(msg));
		if (rc < 0)
			load_fail(ld, rc, "%s", msg);
		if (rc != 0 || strncmp(section, "dns ", 4) == 0)
			return 1;
	}
	k = find_key(section, name, &known);
	if (!k) {
		if (known)
			load_fail(ld, -EINVAL, "unknown key %s in [%s]",
				  show(name, sv, sizeof(sv)), section);
		else
			load_fail(ld, -EINVAL, "unknown section [%s] (key %s)",
				  section, show(name, sv, sizeof(sv)));
		return 1;
	}
	i = (size_t)(k - keys);
	if (ld->seen[i]) {
		load_fail(ld, -EINVAL, "%s.%s is already set on line %d",
			  k->section, k->name, ld->seen[i]);
		return 1;
	}
	ld->seen[i] = ld->line;
	rc = apply(ld->cfg, k, value, ld->base, msg, sizeof(msg));
	if (rc < 0) {
		load_fail(ld, rc, "%s", msg);
		return 1;
	}
	mark_set(ld->cfg, k);
	return 1;
}

int config_load_string(struct config *cfg, const char *text, const char *name,
		       const char *base_dir, char *err, size_t errsz)
{
	struct load *ld = NULL;
	char cwd[PATH_MAX];
	size_t len;
	int rc;

	if (!cfg || !text)
		return -EINVAL;
	if (!name)
		name = "config";
	if (!base_dir) {
		if (!getcwd(cwd, sizeof(cwd))) {
			rc = -errno;
			msgf(err, errsz,
			     "%s: cannot get the current "
			     "directory: %s",
			     name, strerror(-rc));
			goto out;
		}
		base_dir = cwd;
	}
	len = strlen(text);
	if (len > CONFIG_FILE_MAX) {
		msgf(err, errsz, "%s: larger than %d bytes", name,
		     CONFIG_FILE_MAX);
		rc = -EFBIG;
		goto out;
	}
	ld = calloc(1, sizeof(*ld));
	if (!ld) {
		rc = -ENOMEM;
		msgf(err, errsz, "%s: out of memory", name);
		goto out;
	}
	ld->cfg = cfg;
	ld->name = name;
	ld->base = base_dir;
	ld->p = text;
	ld->end = text + len;
	ld->err = err;
	ld->errsz = errsz;
	/* Debian's inih sizes its line buffer from this variable (a VLA):
	 * raise it so values up to CONFIG_VALUE_MAX fit; our reader
	 * enforces the bound. */
	if (ini_max_line < LINE_MAX_LEN + 3)
		ini_max_line = LINE_MAX_LEN + 3;
	rc = ini_parse_stream(reader, ld, handler, ld);
	if (ld->err_line && (rc <= 0 || rc >= ld->err_line)) {
		rc = ld->rc;
	} else if (rc > 0) {
		/* inih's own complaint: a line that is neither a section
		 * header, a key = value pair nor a comment */
		ld->line = rc;
		ld->err_line = 0; /* this one came first: it wins */
		load_fail(ld, -EINVAL,
			  "syntax error: expected [section], "
			  "key = value or a comment");
		rc = -EINVAL;
	} else if (rc < 0) {
		msgf(err, errsz, "%s: out of memory", name);
		rc = -ENOMEM;
	}
out:
	free(ld);
	return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err,
		     size_t errsz)
{
	char *text = NULL, *base = NULL, *slash;
	char cwd[PATH_MAX];
	size_t len;
	int rc;

	if (!cfg || !path)
		return -EINVAL;
	rc = fsio_read_all(path, CONFIG_FILE_MAX, &text, &len);
	if (rc == -EFBIG) {
		msgf(err, errsz, "%s: larger than %d bytes", path,
		     CONFIG_FILE_MAX);
		goto out;
	}
	if (rc < 0) {
		msgf(err, errsz, "%s: cannot read: %s", path, strerror(-rc));
		goto out;
	}
	if (memchr(text, '\0', len)) {
		msgf(err, errsz, "%s: contains a NUL byte; not a text file",
		     path);
		rc = -EINVAL;
		goto out;
	}
	/* relative paths in the file are relative to the file's directory,
	 * made absolute now so a later chdir changes nothing */
	if (path[0] == '/') {
		base = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd))) {
			rc = -errno;
			msgf(err, errsz,
			     "%s: cannot get the current "
			     "directory: %s",
			     path, strerror(-rc));
			goto out;
		}
		if (asprintf(&base, "%s/%s", cwd, path) < 0)
			base = NULL;
	}
	if (!base) {
		rc = -ENOMEM;
		msgf(err, errsz, "%s: out of memory", path);
		goto out;
	}
	slash = strrchr(base, '/');
	if (slash == base)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = config_load_string(cfg, text, path, base, err, errsz);
out:
	free(text);
	free(base);
	return rc;
}

/* ---- --set -------------------------------------------------------------- */

int config_set(struct config *cfg, const char *assignment, char *err,
	       size_t errsz)
{
	char sec[64], msg[512], sv[SHOWSZ], cwd[PATH_MAX];
	const char *eq, *dot, *name;
	const struct key *k;
	size_t nl;
	bool known;
	int rc;

	if (!cfg || !assignment)
		return -EINVAL;
	eq = strchr(assignment, '=');
	dot = strchr(assignment, '.');
	if (!eq || !dot || dot > eq || dot == assignment || dot + 1 == eq) {
		msgf(err, errsz, "--set: %s is not section.key=value",
		     show(assignment, sv, sizeof(sv)));
		return -EINVAL;
	}
	if ((size_t)(dot - assignment) >= sizeof(sec) ||
	    (size_t)(eq - dot - 1) >= sizeof(sec)) {
		msgf(err, errsz, "--set: unknown key %s",
		     show(assignment, sv, sizeof(sv)));
		return -EINVAL;
	}
	memcpy(sec, assignment, (size_t)(dot - assignment));
	sec[dot - assignment] = '\0';
	name = dot + 1;
	nl = (size_t)(eq - name);
	k = NULL;
	known = false;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, sec) != 0)
			continue;
		known = true;
		if (strlen(keys[i].name) == nl &&
		    strncmp(keys[i].name, name, nl) == 0)
			k = &keys[i];
	}
	if (!k) {
		char kn[130];

		snprintf(kn, sizeof(kn), "%s.%.*s", sec, (int)nl, name);
		if (known)
			msgf(err, errsz, "--set: unknown key %s in [%s]",
			     show(kn, sv, sizeof(sv)), sec);
		else
			msgf(err, errsz,
			     "--set: unknown section [%s] (key "
			     "%s)",
			     sec, show(kn, sv, sizeof(sv)));
		return -EINVAL;
	}
	if (!getcwd(cwd, sizeof(cwd))) {
		rc = -errno;
		msgf(err, errsz, "--set: cannot get the current directory: %s",
		     strerror(-rc));
		return rc;
	}
	/* blanks around the value go, as they do in a file */
	{
		const char *v = eq + 1;
		size_t vl;
		char *tv;

		while (*v == ' ' || *v == '\t')
			v++;
		vl = strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		tv = strndup(v, vl);
		if (!tv) {
			msgf(err, errsz, "--set: out of memory");
			return -ENOMEM;
		}
		rc = apply(cfg, k, tv, cwd, msg, sizeof(msg));
		free(tv);
	}
	if (rc < 0) {
		msgf(err, errsz, "--set: %s", msg);
		return rc;
	}
	mark_set(cfg, k);
	return 0;
}

/* ---- cross-field checks ------------------------------------------------- */

static int derive(char **field, const char *dir, const char *leaf)
{
	char *p;

	if (asprintf(&p, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
		     leaf) < 0)
		return -ENOMEM;
	free(*field);
	*field = p;
	return 0;
}

/* Two listeners clash when they share a port and either is ":PORT" or
 * both name the same IP. */
static bool clash(const struct config_addr *a, const struct config_addr *b)
{
	if (a->kind == CONFIG_ADDR_NONE || b->kind == CONFIG_ADDR_NONE ||
	    a->kind == CONFIG_ADDR_UNIX || b->kind == CONFIG_ADDR_UNIX ||
	    a->port != b->port)
		return false;
	return a->kind == CONFIG_ADDR_ANY || b->kind == CONFIG_ADDR_ANY ||
	       strcmp(a->host, b->host) == 0;
}

int config_validate(struct config *cfg, char *err, size_t errsz)
{
	const struct config_addr *l[3];
	const char *ln[3];
	char a[80];
	int rc = -EINVAL, n = 0;

	if (!cfg)
		return -EINVAL;
	if (!*cfg->acme.eab_kid != !*cfg->acme.eab_hmac_key_file) {
		msgf(err, errsz,
		     "acme.eab_kid and acme.eab_hmac_key_file go "
		     "together: set both or neither");
		goto out;
	}
	if (cfg->api.listen.kind != CONFIG_ADDR_NONE && !*cfg->api.token_file) {
		msgf(err, errsz,
		     "api.listen is set but api.token_file is "
		     "not: the TCP API needs a bearer token");
		goto out;
	}
	if (cfg->store.backend == CONFIG_BACKEND_POSTGRESQL &&
	    !*cfg->store.conninfo) {
		msgf(err, errsz,
		     "store.backend is postgresql but "
		     "store.conninfo is empty");
		goto out;
	}
	if (cfg->front.enabled && cfg->nginx.enabled) {
		msgf(err, errsz,
		     "front.enabled and nginx.enabled are both "
		     "true: choose one mode");
		goto out;
	}
	if (cfg->front.enabled &&
	    cfg->front.upstream.kind == CONFIG_ADDR_NONE) {
		msgf(err, errsz,
		     "front.enabled is true but front.upstream is "
		     "empty: say where the web server listens");
		goto out;
	}
	if (!*cfg->front.default_certificate != !*cfg->front.default_key) {
		msgf(err, errsz,
		     "front.default_certificate and front.default_key go "
		     "together: set both or neither");
		goto out;
	}
	if (cfg->on_demand.enabled && !cfg->front.enabled) {
		msgf(err, errsz,
		     "on_demand.enabled needs front.enabled: "
		     "names are issued during TLS handshakes");
		goto out;
	}
	if (cfg->acme.challenge == CONFIG_CHALLENGE_TLSALPN01 &&
	    !cfg->front.enabled) {
		msgf(err, errsz,
		     "acme.challenge is tls-alpn-01 but front.enabled is "
		     "false: only the front answers it");
		goto out;
	}
	if (cfg->nginx.enabled &&
	    cfg->nginx.strategy == CONFIG_NGINX_SERVER_BLOCKS &&
	    !*cfg->nginx.template_file &&
	    cfg->nginx.upstream.kind == CONFIG_ADDR_NONE) {
		msgf(err, errsz,
		     "nginx.strategy is server-blocks with the "
		     "built-in template but nginx.upstream is "
		     "empty");
		goto out;
	}
	l[n] = &cfg->http.listen;
	ln[n++] = "http.listen";
	l[n] = &cfg->api.listen;
	ln[n++] = "api.listen";
	if (cfg->front.enabled) {
		l[n] = &cfg->front.listen;
		ln[n++] = "front.listen";
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (clash(l[i], l[j])) {
				fmt_addr(l[j], a, sizeof(a));
				msgf(err, errsz, "%s and %s both listen on %s",
				     ln[i], ln[j], a);
				goto out;
			}
	if (config__dns_validate(cfg, err, errsz) < 0)
		goto out;
	rc = 0;
	if (!is_set(cfg, &cfg->store.live_dir) || !*cfg->store.live_dir)
		rc = derive(&cfg->store.live_dir, cfg->store.state_dir, "live");
	if (!rc && (!is_set(cfg, &cfg->api.socket) || !*cfg->api.socket))
		rc = derive(&cfg->api.socket, cfg->store.state_dir, "api.sock");
	if (!rc && (!is_set(cfg, &cfg->nginx.include) || !*cfg->nginx.include))
		rc = derive(&cfg->nginx.include, cfg->store.state_dir,
			    "nginx/certherd.conf");
	if (rc)
		msgf(err, errsz, "out of memory");
out:
	return rc;
}

/* ---- secrets ------------------------------------------------------------ */

static int read_secret(const char *path, const char *key, char **out,
		       char *err, size_t errsz, int one_line);

int config_read_secret(const char *path, const char *key, char **out, char *err,
		       size_t errsz)
{
	return read_secret(path, key, out, err, errsz, 1);
}

int config_read_secret_text(const char *path, const char *key, char **out,
			    char *err, size_t errsz)
{
	return read_secret(path, key, out, err, errsz, 0);
}

static int read_secret(const char *path, const char *key, char **out,
		       char *err, size_t errsz, int one_line)
{
	char *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		msgf(err, errsz, "%s: cannot open %s: %s", key, path,
		     strerror(-rc));
		return rc;
	}
	/* check the file we opened, not the name (no race with a swap) */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		msgf(err, errsz, "%s: cannot stat %s: %s", key, path,
		     strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		msgf(err, errsz, "%s: %s is not a regular file", key, path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EPERM;
		msgf(err, errsz,
		     "%s: %s has mode %04o; a secret file must "
		     "not be accessible by group or others "
		     "(chmod 600 %s)",
		     key, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > CONFIG_SECRET_MAX) {
		rc = -EFBIG;
		msgf(err, errsz, "%s: %s is larger than %d bytes", key, path,
		     CONFIG_SECRET_MAX);
		goto out;
	}
	buf = malloc(CONFIG_SECRET_MAX + 2);
	if (!buf) {
		rc = -ENOMEM;
		msgf(err, errsz, "%s: out of memory", key);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, CONFIG_SECRET_MAX + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			msgf(err, errsz, "%s: cannot read %s: %s", key, path,
			     strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONFIG_SECRET_MAX) {
			rc = -EFBIG;
			msgf(err, errsz, "%s: %s is larger than %d bytes", key,
			     path, CONFIG_SECRET_MAX);
			goto out;
		}
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		rc = -EINVAL;
		msgf(err, errsz, "%s: %s is empty", key, path);
		goto out;
	}
	if (memchr(buf, '\0', len) || (one_line && memchr(buf, '\n', len))) {
		rc = -EINVAL;
		msgf(err, errsz, "%s: %s must hold one line of text", key,
		     path);
		goto out;
	}
	*out = buf;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		explicit_bzero(buf, CONFIG_SECRET_MAX + 2);
		free(buf);
	}
	close(fd);
	return rc;
}

int config_load_secrets(struct config *cfg, char *err, size_t errsz)
{
	char *s;
	int rc;

	if (*cfg->acme.eab_hmac_key_file) {
		rc = config_read_secret(cfg->acme.eab_hmac_key_file,
					"acme.eab_hmac_key_file", &s, err,
					errsz);
		if (rc < 0)
			return rc;
		free_secret(&cfg->acme.eab_hmac_key);
		cfg->acme.eab_hmac_key = s;
	}
	if (*cfg->api.token_file) {
		rc = config_read_secret(cfg->api.token_file, "api.token_file",
					&s, err, errsz);
		if (rc < 0)
			return rc;
		free_secret(&cfg->api.token);
		cfg->api.token = s;
	}
	return config__dns_secrets(cfg, err, errsz);
}

/* ---- dump --------------------------------------------------------------- */

/* A URL with its user-info and query replaced: they may carry
 * credentials (webhook tokens, ask URL keys). */
static void fmt_url(const char *u, char *buf, size_t bufsz)
{
	const char *host = strstr(u, "://"), *at, *q, *slash;
	size_t o;

	if (!host) {
		snprintf(buf, bufsz, "%s", u);
		return;
	}
	host += 3;
	slash = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(slash - host));
	o = (size_t)snprintf(buf, bufsz, "%.*s%s%.*s", (int)(host - u), u,
			     at ? "<redacted>@" : "",
			     (int)((at ? slash - at - 1 : slash - host)),
			     at ? at + 1 : host);
	if (o >= bufsz)
		return;
	q = strchr(slash, '?');
	snprintf(buf + o, bufsz - o, "%.*s%s",
		 (int)(q ? q - slash : (ptrdiff_t)strlen(slash)), slash,
		 q ? "?<redacted>" : "");
}

int config_dump(const struct config *cfg, FILE *out)
{
	const char *sec = "";
	char buf[CONFIG_VALUE_MAX + 64];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const void *field = (const char *)cfg + k->off;

		if (strcmp(sec, k->section) != 0) {
			fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
			sec = k->section;
		}
		buf[0] = '\0';
		switch (k->type) {
		case T_STRING:
		case T_COMMAND:
		case T_PATH:
		case T_EMAIL: {
			const char *s = *(char *const *)field;

			snprintf(buf, sizeof(buf), "%s",
				 (k->flags & K_REDACT) && *s ? "<redacted>"
							     : s);
			break;
		}
		case T_URL:
			fmt_url(*(char *const *)field, buf, sizeof(buf));
			break;
		case T_BOOL:
			snprintf(buf, sizeof(buf), "%s",
				 *(const bool *)field ? "true" : "false");
			break;
		case T_INT:
			snprintf(buf, sizeof(buf), "%lld",
				 (long long)*(const int64_t *)field);
			break;
		case T_DURATION:
			fmt_duration(*(const int64_t *)field, buf, sizeof(buf));
			break;
		case T_ENUM: {
			int v = *(const int *)field;
			int n = 0;

			while (k->names[n])
				n++;
			snprintf(buf, sizeof(buf), "%s",
				 v >= 0 && v < n ? k->names[v] : "?");
			break;
		}
		case T_ADDR:
			fmt_addr(field, buf, sizeof(buf));
			break;
		case T_IP_LIST: {
			const struct config_addr_list *l = field;
			size_t o = 0;

			for (size_t j = 0; j < l->n && o < sizeof(buf); j++) {
				/* room for any address kind (unix:PATH too), so
				 * -O3's truncation check passes in release builds */
				char a[128];

				fmt_addr(&l->v[j], a, sizeof(a));
				o += (size_t)snprintf(buf + o, sizeof(buf) - o,
						      "%s%s", j ? ", " : "", a);
			}
			break;
		}
		case T_RATE: {
			const struct config_rate *r = field;
			char d[32];

			fmt_duration(r->period, d, sizeof(d));
			if (r->count > 0)
				snprintf(buf, sizeof(buf), "%lld/%s",
					 (long long)r->count, d);
			else if (r->count == 0)
				snprintf(buf, sizeof(buf), "0");
			break;
		}
		default:
			break;
		}
		fprintf(out, "%s =%s%s\n", k->name, *buf ? " " : "", buf);
	}
	config__dns_dump(cfg, out);
	return ferror(out) ? -EIO : 0;
}

/* ---- schema for docs ---------------------------------------------------- */

size_t config_key_count(void)
{
	return NKEYS;
}

int config_key_at(size_t i, struct config_key_info *out)
{
	if (i >= NKEYS || !out)
		return -ENOENT;
	out->section = keys[i].section;
	out->name = keys[i].name;
	out->type = ktype_names[keys[i].type];
	out->def = keys[i].def;
	out->doc = keys[i].doc;
	return 0;
}
