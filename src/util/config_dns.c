/*
 * config_dns.c — the per-zone sections of the configuration file:
 *
 *     [dns "platform.example"]
 *     updater = rfc2136            ; or hook
 *     server = 192.0.2.53:53       ; rfc2136: the zone's primary
 *     tsig_key_file = /etc/certherd/platform.key   ; rfc2136, 0600
 *     command = /usr/local/bin/dns-hook            ; hook
 *
 * The keys table of config.c describes plain "[section] key" pairs, one
 * value each; a zone section repeats a small set of keys per zone, so it
 * has its own table here and config.c hands over every key of a section
 * named `dns "..."`. Values are checked when read (file:line in the
 * message), the relations between them in config__dns_validate. Zone
 * sections are read from files only (no --set).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/config.h"
#include "util/util.h"

const char *const config_dns_updater_names[CONFIG_DNS__MAX + 1] = {
    "rfc2136", "hook", NULL};

/* The zone name of a section `dns "ZONE"`, normalized into out; 1 when
 * section is one, 0 when it is another section, -EINVAL when it is a
 * malformed or bad zone (msg says). */
int config__dns_section(const char *section, char *out, size_t outsz, char *msg,
			size_t msgsz)
{
	char raw[NAME_MAX_LEN + 8], why[256];
	size_t n;

	if (strncmp(section, "dns ", 4) != 0)
		return 0;
	section += 4;
	while (*section == ' ')
		section++;
	n = strlen(section);
	if (n < 3 || section[0] != '"' || section[n - 1] != '"' ||
	    n - 2 >= sizeof(raw)) {
		snprintf(msg, msgsz, "a zone section is [dns \"ZONE\"]");
		return -EINVAL;
	}
	memcpy(raw, section + 1, n - 2);
	raw[n - 2] = '\0';
	if (name_normalize(raw, 0, out, outsz, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "[dns \"%.100s\"]: %s", raw, why);
		return -EINVAL;
	}
	return 1;
}

static struct config_dns_zone *zone_get(struct config *cfg, const char *name)
{
	struct config_dns_zone *z;

	for (size_t i = 0; i < cfg->dns.n_zones; i++)
		if (strcmp(cfg->dns.zones[i].zone, name) == 0)
			return &cfg->dns.zones[i];
	if (cfg->dns.n_zones >= CONFIG_LIST_MAX)
		return NULL;
	z = realloc(cfg->dns.zones, (cfg->dns.n_zones + 1) * sizeof(*z));
	if (!z)
		return NULL;
	cfg->dns.zones = z;
	z = &z[cfg->dns.n_zones];
	memset(z, 0, sizeof(*z));
	z->updater = -1;
	if (!(z->zone = strdup(name)))
		return NULL;
	cfg->dns.n_zones++;
	return z;
}

int config__dns_key(struct config *cfg, const char *zone, const char *name,
		    const char *value, const char *base, char *msg,
		    size_t msgsz)
{
	struct config_dns_zone *z = zone_get(cfg, zone);
	size_t vlen = strlen(value);
	char **field = NULL;

	if (!z) {
		snprintf(msg, msgsz, "out of memory (or more than %d zones)",
			 CONFIG_LIST_MAX);
		return -ENOMEM;
	}
	if (strcmp(name, "updater") == 0) {
		if (z->updater >= 0)
			goto twice;
		for (int i = 0; i < CONFIG_DNS__MAX; i++)
			if (strcmp(value, config_dns_updater_names[i]) == 0)
				z->updater = i;
		if (z->updater < 0) {
			snprintf(msg, msgsz,
				 "[dns \"%s\"] updater: \"%.60s\" "
				 "is not rfc2136 or hook",
				 zone, value);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(name, "server") == 0) {
		if (z->server.kind != CONFIG_ADDR_NONE)
			goto twice;
		if (config_parse_addr(value, CONFIG_AF_HOST_REQUIRED,
				      &z->server) < 0 ||
		    z->server.kind != CONFIG_ADDR_IP) {
			memset(&z->server, 0, sizeof(z->server));
			snprintf(msg, msgsz,
				 "[dns \"%s\"] server: \"%.60s\" is "
				 "not ADDR:PORT (an IP address and a port)",
				 zone, value);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(name, "tsig_key_file") == 0)
		field = &z->tsig_key_file;
	else if (strcmp(name, "command") == 0)
		field = &z->command;
	if (!field) {
		snprintf(msg, msgsz,
			 "unknown key %.60s in [dns \"%s\"] (updater, "
			 "server, tsig_key_file, command)",
			 name, zone);
		return -EINVAL;
	}
	if (*field)
		goto twice;
	if (!vlen || vlen > CONFIG_VALUE_MAX || strchr(value, '\n')) {
		snprintf(msg, msgsz, "[dns \"%s\"] %s: empty or too long", zone,
			 name);
		return -EINVAL;
	}
	if (field == &z->tsig_key_file && value[0] != '/' && base) {
		if (asprintf(field, "%s/%s", base, value) < 0)
			*field = NULL;
	} else {
		*field = strdup(value);
	}
	if (!*field) {
		snprintf(msg, msgsz, "out of memory");
		return -ENOMEM;
	}
	return 0;
twice:
	snprintf(msg, msgsz, "[dns \"%s\"] %s is already set", zone, name);
	return -EINVAL;
}

int config__dns_validate(const struct config *cfg, char *err, size_t errsz)
{
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		const struct config_dns_zone *z = &cfg->dns.zones[i];

		if (z->updater < 0) {
			snprintf(err, errsz,
				 "[dns \"%s\"] has no updater "
				 "(rfc2136 or hook)",
				 z->zone);
			return -EINVAL;
		}
		if (z->updater == CONFIG_DNS_RFC2136 &&
		    (z->server.kind != CONFIG_ADDR_IP || z->command)) {
			snprintf(err, errsz,
				 "[dns \"%s\"]: updater rfc2136 "
				 "needs server (and no command)",
				 z->zone);
			return -EINVAL;
		}
		if (z->updater == CONFIG_DNS_HOOK &&
		    (!z->command || z->server.kind != CONFIG_ADDR_NONE ||
		     z->tsig_key_file)) {
			snprintf(err, errsz,
				 "[dns \"%s\"]: updater hook needs "
				 "command (and no server or tsig_key_file)",
				 z->zone);
			return -EINVAL;
		}
	}
	return 0;
}

int config__dns_secrets(struct config *cfg, char *err, size_t errsz)
{
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		struct config_dns_zone *z = &cfg->dns.zones[i];
		char key[NAME_MAX_LEN + 32];
		char *s = NULL;
		int rc;

		if (!z->tsig_key_file)
			continue;
		snprintf(key, sizeof(key), "[dns \"%s\"] tsig_key_file",
			 z->zone);
		rc = config_read_secret_text(z->tsig_key_file, key, &s, err,
					     errsz);
		if (rc < 0)
			return rc;
		if (z->tsig_key) {
			explicit_bzero(z->tsig_key, strlen(z->tsig_key));
			free(z->tsig_key);
		}
		z->tsig_key = s;
	}
	return 0;
}

void config__dns_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		struct config_dns_zone *z = &cfg->dns.zones[i];

		free(z->zone);
		free(z->tsig_key_file);
		free(z->command);
		if (z->tsig_key) {
			explicit_bzero(z->tsig_key, strlen(z->tsig_key));
			free(z->tsig_key);
		}
	}
	free(cfg->dns.zones);
	cfg->dns.zones = NULL;
	cfg->dns.n_zones = 0;
}

void config__dns_dump(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		const struct config_dns_zone *z = &cfg->dns.zones[i];

		fprintf(out, "\n[dns \"%s\"]\nupdater = %s\n", z->zone,
			z->updater >= 0 ? config_dns_updater_names[z->updater]
					: "");
		if (z->server.kind == CONFIG_ADDR_IP)
			fprintf(out,
				strchr(z->server.host, ':')
				    ? "server = [%s]:%u\n"
				    : "server = %s:%u\n",
				z->server.host, (unsigned)z->server.port);
		if (z->tsig_key_file)
			fprintf(out, "tsig_key_file = %s\n", z->tsig_key_file);
		if (z->command)
			fprintf(out, "command = %s\n", z->command);
	}
}

const struct config_dns_zone *config_dns_zone_for(const struct config *cfg,
						  const char *name)
{
	const struct config_dns_zone *best = NULL;
	size_t nl;

	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	nl = strlen(name);
	for (size_t i = 0; i < cfg->dns.n_zones; i++) {
		const struct config_dns_zone *z = &cfg->dns.zones[i];
		size_t zl = strlen(z->zone);

		if ((nl == zl && strcmp(name, z->zone) == 0) ||
		    (nl > zl && name[nl - zl - 1] == '.' &&
		     strcmp(name + nl - zl, z->zone) == 0))
			if (!best || zl > strlen(best->zone))
				best = z;
	}
	return best;
}
