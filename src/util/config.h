/*
 * config — the daemon's configuration: an INI file (-c FILE) plus
 * `--set section.key=value` overrides, checked against one table of keys.
 *
 * Every key has a section, a name, a type, a default and a one-line doc in
 * the schema table of config.c; docs/config.md documents each of them and a
 * unit test keeps the two in sync. Callers read typed fields of struct
 * config, never strings, so a key's type is checked once, here.
 *
 * Order of use:
 *   struct config cfg;
 *   config_defaults(&cfg);                       defaults that work
 *   config_load_file(&cfg, "certherd.conf", ...); optional
 *   config_set(&cfg, "acme.email=a@b.c", ...);   each --set, after the file
 *   config_validate(&cfg, ...);                  cross-field checks and
 *                                                derived defaults
 *   config_load_secrets(&cfg, ...);              when the daemon needs them
 *   ...
 *   config_free(&cfg);
 *
 * Relative paths: in a file they are resolved against the directory of
 * that file; in --set against the current directory. Fields always hold
 * absolute paths.
 *
 * Error convention: 0 or a negative errno (-EINVAL for a bad file or value,
 * -ENOENT/-EACCES/... when a file cannot be read, -ENOMEM). On error a
 * one-line message goes into err (size errsz, may be NULL): lower case,
 * where first ("FILE:LINE:" or "--set:"), then the key, the value and what
 * was expected. Messages never contain secret values.
 */
#ifndef CERTHERD_CONFIG_H
#define CERTHERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest value accepted for any key, and longest line in a file. */
#define CONFIG_VALUE_MAX 4000
/* Largest config file, and most items in one list value. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LIST_MAX 64
/* Largest secret file (EAB HMAC key, API token). */
#define CONFIG_SECRET_MAX 4096

enum config_key_type {
	CONFIG_KEY_ECDSA_P256 = 0,
	CONFIG_KEY_ECDSA_P384,
	CONFIG_KEY_RSA2048,
	CONFIG_KEY_RSA3072,
	CONFIG_KEY_RSA4096,
	CONFIG_KEY__MAX
};
extern const char *const config_key_type_names[CONFIG_KEY__MAX + 1];

enum config_backend {
	CONFIG_BACKEND_SQLITE = 0,
	CONFIG_BACKEND_POSTGRESQL,
	CONFIG_BACKEND__MAX
};
extern const char *const config_backend_names[CONFIG_BACKEND__MAX + 1];

enum config_redirect {
	CONFIG_REDIRECT_REDIRECT = 0, /* 308 to https */
	CONFIG_REDIRECT_404,
	CONFIG_REDIRECT__MAX
};
extern const char *const config_redirect_names[CONFIG_REDIRECT__MAX + 1];

/* same order and values as enum log_level of util.h (checked) */
enum config_log_level {
	CONFIG_LOG_DEBUG = 0,
	CONFIG_LOG_INFO,
	CONFIG_LOG_WARN,
	CONFIG_LOG_ERROR,
	CONFIG_LOG__MAX
};
extern const char *const config_log_level_names[CONFIG_LOG__MAX + 1];

enum config_nginx_strategy {
	CONFIG_NGINX_SERVER_BLOCKS = 0,
	CONFIG_NGINX_SNI_VARIABLE,
	CONFIG_NGINX__MAX
};
extern const char *const config_nginx_strategy_names[CONFIG_NGINX__MAX + 1];

/* same order and values as enum acme_chall_type (http-01, tls-alpn-01) */
enum config_challenge {
	CONFIG_CHALLENGE_HTTP01 = 0,
	CONFIG_CHALLENGE_TLSALPN01,
	CONFIG_CHALLENGE__MAX
};
extern const char *const config_challenge_names[CONFIG_CHALLENGE__MAX + 1];

enum config_addr_kind {
	CONFIG_ADDR_NONE = 0, /* empty value: off / not configured */
	CONFIG_ADDR_ANY,      /* ":PORT": every local address */
	CONFIG_ADDR_IP,	      /* "1.2.3.4:PORT", "[::1]:PORT", or an IP alone */
	CONFIG_ADDR_UNIX,     /* "unix:/path" (only where the key allows it) */
	CONFIG_ADDR_SYSTEM,   /* "system" (only preflight.resolver) */
	CONFIG_ADDR__MAX
};

/* One parsed address. host is the IP literal in canonical text form
 * (inet_ntop, no brackets) for CONFIG_ADDR_IP, else empty; port is 0 for
 * keys whose addresses carry none (preflight.addresses). */
struct config_addr {
	enum config_addr_kind kind;
	int family; /* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC */
	char host[46];
	uint16_t port;
	char path[108]; /* CONFIG_ADDR_UNIX: socket path, absolute */
};

/* A rate limit "N/DURATION": count tokens per period seconds; count 0
 * (written "0") turns the limit off; -1 (empty) means the CA's default,
 * chosen by the daemon from acme.directory. */
struct config_rate {
	int64_t count;
	int64_t period; /* seconds, > 0 unless count is 0 */
};

struct config_addr_list {
	size_t n;
	struct config_addr *v; /* owned, n entries */
};

/* A [dns "ZONE"] section (config_dns.c; docs/config.md, docs/dns01.md). */
enum config_dns_updater {
	CONFIG_DNS_RFC2136 = 0, /* TSIG-signed RFC 2136 UPDATE to server */
	CONFIG_DNS_HOOK,        /* command add|remove NAME VALUE */
	CONFIG_DNS__MAX
};
extern const char *const config_dns_updater_names[CONFIG_DNS__MAX + 1];

struct config_dns_zone {
	char *zone;                /* normalized, owned */
	int updater;               /* enum config_dns_updater, -1 unset */
	struct config_addr server; /* rfc2136: the primary */
	char *tsig_key_file;       /* NULL = unsigned updates */
	char *command;             /* hook */
	char *tsig_key;            /* the file's text, by
				      config_load_secrets; wiped on free */
};

/*
 * The effective configuration. Strings and paths are owned, NUL-terminated,
 * never NULL after config_defaults (empty means not set); paths are
 * absolute or empty. Durations are in seconds. Fields marked "derived" are
 * filled by config_validate when not set explicitly.
 */
struct config {
	struct {
		char *directory;
		char *ca_bundle;
		char *email;
		char *eab_kid;
		char *eab_hmac_key_file;
		enum config_key_type key_type;
		enum config_challenge challenge;
		char *profile;
		char *preferred_issuer;
		int64_t concurrency;
		int64_t ca_connections;
		/* filled by config_load_secrets; owned, wiped on free */
		char *eab_hmac_key;
	} acme;
	struct {
		char *state_dir;
		enum config_backend backend;
		char *conninfo;
		char *live_dir; /* derived: state_dir/live */
		bool write_live;
		int64_t keep_removed;
	} store;
	struct {
		struct config_addr listen;
		enum config_redirect redirect;
	} http;
	struct {
		char *socket; /* derived: state_dir/api.sock */
		struct config_addr listen;
		char *token_file;
		/* filled by config_load_secrets; owned, wiped on free */
		char *token;
	} api;
	struct {
		bool enabled;
		struct config_addr resolver;
		struct config_addr_list addresses;
	} preflight;
	struct {
		bool ari;
		int64_t backoff_max;
	} renew;
	struct {
		/* the CA's limits mirrored by the daemon's ledger
		 * (docs/scheduling.md); defaults: Let's Encrypt's */
		struct config_rate orders;
		struct config_rate certs_per_domain;
		struct config_rate identical;
		struct config_rate failed_authz;
	} limits;
	struct {
		char *deploy;
		char *webhook;
		int64_t batch;
		int64_t timeout;
	} hooks;
	struct {
		/* [dns]: DNS-01 (docs/dns01.md) */
		struct config_addr resolver;  /* SOA/NS look-ups */
		int64_t propagation_timeout;  /* seconds */
		int64_t hook_timeout;         /* seconds */
		/* [dns "ZONE"] sections, owned */
		struct config_dns_zone *zones;
		size_t n_zones;
	} dns;
	struct {
		enum config_log_level level;
	} log;
	struct {
		int64_t drain_timeout; /* SIGTERM: orders in flight may finish */
	} daemon;
	struct {
		bool enabled;
		struct config_addr listen;
		struct config_addr upstream;
		struct config_addr upstream_h2c;
		bool proxy_protocol;
		int64_t workers;
		int64_t cache_size;
		int64_t handshake_timeout; /* seconds */
		int64_t idle_timeout;	   /* seconds */
		int64_t max_connections;   /* per worker */
		char *default_certificate; /* "" = none */
		char *default_key;
	} front;
	struct {
		bool enabled;
		char *ask;
		int64_t budget_per_hour;
		int64_t budget_per_domain;
		int64_t wait; /* seconds a handshake waits for its certificate */
	} on_demand;
	struct {
		bool enabled;
		enum config_nginx_strategy strategy;
		char *include; /* derived: state_dir/nginx/certherd.conf */
		char *template_file;
		char *nginx;
		struct config_addr upstream;
		int64_t reload_interval;
		bool verify;
		struct config_addr listen; /* the generated blocks' TLS port */
		char *key_owner;	   /* "user[:group]" of privkey.pem */
	} nginx;
	/* internal: which keys were set explicitly (schema index bits) */
	uint64_t set_mask[2];
};

/*
 * Fill cfg (uninitialized memory is fine) with the defaults. 0 or -ENOMEM
 * (cfg is then already freed and zeroed).
 */
int config_defaults(struct config *cfg);

/*
 * Read an INI file (at most CONFIG_FILE_MAX bytes) into cfg over what is
 * there. Unknown sections and keys, keys outside a section, a key given
 * twice, syntax errors, lines longer than CONFIG_VALUE_MAX and bad values
 * are errors naming path:line. On error cfg keeps the keys read before the
 * error: callers discard it. 0 or negative errno.
 */
int config_load_file(struct config *cfg, const char *path, char *err,
		     size_t errsz);

/*
 * The same from memory; name is used in messages ("name:line"), base_dir
 * resolves relative paths (NULL: the current directory).
 */
int config_load_string(struct config *cfg, const char *text, const char *name,
		       const char *base_dir, char *err, size_t errsz);

/*
 * Apply one "section.key=value" (--set). The value may be empty (turns off
 * keys that allow it). 0 or -EINVAL with a message.
 */
int config_set(struct config *cfg, const char *assignment, char *err,
	       size_t errsz);

/*
 * Cross-field checks (EAB kid and key file together, api.listen needs
 * api.token_file, postgresql needs store.conninfo, on_demand needs front,
 * front and nginx exclusive, listeners distinct, ...), then fill derived
 * defaults of keys not set explicitly. Touches no file. 0 or -EINVAL.
 */
int config_validate(struct config *cfg, char *err, size_t errsz);

/*
 * Read the secrets named by acme.eab_hmac_key_file and api.token_file
 * (when set) into cfg->acme.eab_hmac_key and cfg->api.token. A secret
 * file must be a regular file not accessible by group or others (mode
 * 0600 or stricter), non-empty, at most CONFIG_SECRET_MAX bytes; trailing
 * white space is dropped. 0 or negative errno; the message names the key
 * and the file, never the contents.
 */
int config_load_secrets(struct config *cfg, char *err, size_t errsz);

/*
 * Read one secret file with the checks above into a malloc'd string
 * (*out, caller frees, wipe before free). key names it in messages.
 */
int config_read_secret(const char *path, const char *key, char **out, char *err,
		       size_t errsz);
/* The same checks for a secret of several lines (a TSIG key file as
 * tsig-keygen writes it); only NUL bytes are refused. */
int config_read_secret_text(const char *path, const char *key, char **out,
			    char *err, size_t errsz);

/*
 * Print the effective configuration as an INI file that config_load_file
 * reads back (every key, defaults included). Secret values are never
 * printed; store.conninfo and the user-info and query of URLs are shown
 * as "<redacted>". 0 or -EIO.
 */
int config_dump(const struct config *cfg, FILE *out);

/* Free what cfg owns (wiping secrets) and zero it; NULL is fine. */
void config_free(struct config *cfg);

/* The zone sections (config_dns.c), used by config.c. */
int config__dns_section(const char *section, char *out, size_t outsz,
			char *msg, size_t msgsz);
int config__dns_key(struct config *cfg, const char *zone, const char *name,
		    const char *value, const char *base, char *msg,
		    size_t msgsz);
int config__dns_validate(const struct config *cfg, char *err, size_t errsz);
int config__dns_secrets(struct config *cfg, char *err, size_t errsz);
void config__dns_free(struct config *cfg);
void config__dns_dump(const struct config *cfg, FILE *out);
/* The zone of cfg for name (longest match, the zone itself or below),
 * or NULL. A wildcard "*.x" counts as x. */
const struct config_dns_zone *config_dns_zone_for(const struct config *cfg,
						  const char *name);

/* The schema, for documentation and `certherd config keys`. */
struct config_key_info {
	const char *section;
	const char *name;
	const char *type; /* "string", "path", "bool", "int", "duration", ... */
	const char *def;  /* default as written in a file ("" for none) */
	const char *doc;
};
/* Number of keys; config_key_at fills *out for i < count (0) or returns
 * -ENOENT. The strings are static. */
size_t config_key_count(void);
int config_key_at(size_t i, struct config_key_info *out);

/*
 * Value parsers shared with the rest of the code (and tested alone).
 * config_parse_duration: one or more <number><unit> with unit s, m, h, d
 * ("90s", "1h30m", "7d"), or "0"; at most 10 years. Seconds into *out.
 * config_parse_addr: flags below choose which forms are accepted.
 * Both return 0 or -EINVAL.
 */
int config_parse_duration(const char *s, int64_t *out);
/* "N/DURATION" (N from 0 to 1,000,000, a duration above 0), "0" (off) or
 * "" (count -1: the CA's default). 0 or -EINVAL. */
int config_parse_rate(const char *s, struct config_rate *out);

enum config_addr_flags {
	CONFIG_AF_EMPTY_OK = 1 << 0,	  /* "" -> CONFIG_ADDR_NONE */
	CONFIG_AF_HOST_REQUIRED = 1 << 1, /* reject ":PORT" */
	CONFIG_AF_UNIX_OK = 1 << 2,	  /* accept "unix:/path" */
	CONFIG_AF_SYSTEM_OK = 1 << 3,	  /* accept "system" */
	CONFIG_AF_NO_PORT = 1 << 4,	  /* an IP literal alone, no port */
};
int config_parse_addr(const char *s, unsigned flags, struct config_addr *out);

#endif
