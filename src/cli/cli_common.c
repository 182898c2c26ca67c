/*
 * cli_common.c — what every command that talks to a CA shares: the
 * account options (--directory, --out, --ca-bundle, --email, EAB,
 * --ca-connections, --log-level), their validation, and reading domain
 * names from arguments and files with normalization.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "util/config.h"
#include "util/util.h"

#define MAX_DOMAINS_FILE (64u << 20)

const struct option cli__account_longopts[] = {
	{"directory", required_argument, NULL, CLI_O_DIR},
	{"ca-bundle", required_argument, NULL, CLI_O_CABUNDLE},
	{"email", required_argument, NULL, CLI_O_EMAIL},
	{"eab-kid", required_argument, NULL, CLI_O_EABKID},
	{"eab-hmac-key", required_argument, NULL, CLI_O_EABKEY},
	{"out", required_argument, NULL, CLI_O_OUT},
	{"ca-connections", required_argument, NULL, CLI_O_CONNS},
	{"log-level", required_argument, NULL, CLI_O_LOG},
};
const size_t cli__n_account_longopts =
	sizeof(cli__account_longopts) / sizeof(cli__account_longopts[0]);

const char cli__account_usage[] =
	"  --directory URL       ACME directory (e.g. Let's Encrypt's)\n"
	"  --out DIR             where certificates and the account live\n"
	"  --ca-bundle FILE      trust these CAs for HTTPS to the ACME server\n"
	"  --email ADDR          account contact\n"
	"  --eab-kid ID          external account binding key id\n"
	"  --eab-hmac-key B64    external account binding MAC key (base64url)\n"
	"  --ca-connections N    HTTP connections to the CA (default 8)\n"
	"  --log-level LEVEL     debug, info (default), warn, error\n";

int cli__long_number(const char *cmd, const char *flag, const char *s,
		     long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "certherd %s: %s wants %ld..%ld, not \"%s\"\n",
			cmd, flag, min, max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int cli__account_opt(struct cli_account *a, const char *cmd, int c,
		     const char *arg)
{
	enum log_level lvl;
	long v;

	switch (c) {
	case CLI_O_DIR: a->o.directory_url = arg; return 1;
	case CLI_O_CABUNDLE: a->o.ca_bundle = arg; return 1;
	case CLI_O_EMAIL: a->o.email = arg; return 1;
	case CLI_O_EABKID: a->o.eab_kid = arg; return 1;
	case CLI_O_EABKEY: a->eab_key = arg; return 1;
	case CLI_O_OUT: a->o.out_dir = arg; return 1;
	case CLI_O_CONNS:
		if (cli__long_number(cmd, "--ca-connections", arg, 1, 256, &v) < 0)
			return -EINVAL;
		a->o.ca_connections = (unsigned)v;
		return 1;
	case CLI_O_LOG:
		if (log_level_parse(arg, &lvl) < 0) {
			fprintf(stderr, "certherd %s: unknown log level \"%s\"\n",
				cmd, arg);
			return -EINVAL;
		}
		log_set_level(lvl);
		return 1;
	default:
		return 0;
	}
}

int cli__account_finish(struct cli_account *a, const char *cmd)
{
	const char *d = a->o.directory_url;

	if (!d || !a->o.out_dir) {
		fprintf(stderr, "certherd %s: --directory and --out are required\n",
			cmd);
		return -EINVAL;
	}
	if (strncmp(d, "https://", 8) != 0 && strncmp(d, "http://", 7) != 0) {
		fprintf(stderr,
			"certherd %s: --directory must be an http(s) URL, not "
			"\"%s\"\n",
			cmd, d);
		return -EINVAL;
	}
	if (!!a->o.eab_kid != !!a->eab_key) {
		fprintf(stderr,
			"certherd %s: --eab-kid and --eab-hmac-key go together\n",
			cmd);
		return -EINVAL;
	}
	if (a->eab_key) {
		a->hmac = b64url_decode(a->eab_key, strlen(a->eab_key),
					&a->o.eab_hmac_len);
		if (!a->hmac || a->o.eab_hmac_len == 0) {
			fprintf(stderr,
				"certherd %s: --eab-hmac-key is not base64url\n",
				cmd);
			return -EINVAL;
		}
		a->o.eab_hmac = a->hmac;
	}
	return 0;
}

void cli__account_clear(struct cli_account *a)
{
	if (a->hmac)
		OPENSSL_cleanse(a->hmac, a->o.eab_hmac_len);
	free(a->hmac);
	a->hmac = NULL;
}

/* FNV-1a; the set only needs to spread names, not resist attackers (the
 * names come from the operator's own files). */
static size_t name_hash(const char *s)
{
	size_t h = 1469598103934665603u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

/* Open-addressing set of indexes into ns->v, kept at most half full, so a
 * million names de-duplicate in linear time. */
static int set_grow(struct cli_names *ns)
{
	size_t nc = ns->set_cap ? ns->set_cap * 2 : 128;
	size_t *ns_set = malloc(nc * sizeof(*ns_set));

	if (!ns_set)
		return -ENOMEM;
	for (size_t i = 0; i < nc; i++)
		ns_set[i] = SIZE_MAX;
	for (size_t i = 0; i < ns->n; i++) {
		size_t k = name_hash(ns->v[i]) & (nc - 1);
		while (ns_set[k] != SIZE_MAX)
			k = (k + 1) & (nc - 1);
		ns_set[k] = i;
	}
	free(ns->set);
	ns->set = ns_set;
	ns->set_cap = nc;
	return 0;
}

int cli__names_add(struct cli_names *ns, const char *cmd, const char *raw)
{
	char norm[NAME_MAX_LEN + 1], why[512];
	size_t k;

	if (name_normalize(raw, ns->flags, norm, sizeof(norm), why,
			   sizeof(why)) < 0) {
		fprintf(stderr, "certherd %s: %s\n", cmd, why);
		ns->bad++;
		return 0;
	}
	if ((ns->n + 1) * 2 > ns->set_cap && set_grow(ns) < 0)
		return -ENOMEM;
	for (k = name_hash(norm) & (ns->set_cap - 1); ns->set[k] != SIZE_MAX;
	     k = (k + 1) & (ns->set_cap - 1))
		if (strcmp(ns->v[ns->set[k]], norm) == 0)
			return 0; /* a duplicate is harmless: one order */
	if (ns->n == ns->cap) {
		size_t nc = ns->cap ? ns->cap * 2 : 64;
		char **nv = realloc(ns->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		ns->v = nv;
		ns->cap = nc;
	}
	if (!(ns->v[ns->n] = strdup(norm)))
		return -ENOMEM;
	ns->set[k] = ns->n++;
	return 0;
}

char *cli__names_line(char *buf, char **save)
{
	char *line, *hash, *end;

	for (line = strtok_r(buf, "\r\n", save); line;
	     line = strtok_r(NULL, "\r\n", save)) {
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*line)
			return line;
	}
	return NULL;
}

int cli__names_file(struct cli_names *ns, const char *cmd, const char *path)
{
	char *buf, *line, *save = NULL;
	size_t len;
	int rc = fsio_read_all(path, MAX_DOMAINS_FILE, &buf, &len);

	if (rc < 0) {
		fprintf(stderr, "certherd %s: cannot read %s: %s\n", cmd, path,
			strerror(-rc));
		return rc;
	}
	if (memchr(buf, '\0', len)) {
		fprintf(stderr, "certherd %s: %s is not a text file\n", cmd,
			path);
		free(buf);
		return -EINVAL;
	}
	for (line = cli__names_line(buf, &save); line && rc == 0;
	     line = cli__names_line(NULL, &save))
		rc = cli__names_add(ns, cmd, line);
	free(buf);
	return rc;
}

void cli__names_clear(struct cli_names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	free(ns->set);
	memset(ns, 0, sizeof(*ns));
}

int cli__build_longopts(struct option *out, size_t cap,
			const struct option *own, size_t n_own)
{
	size_t k = 0;

	if (n_own + cli__n_account_longopts + 1 > cap)
		return -ENOSPC;
	for (size_t i = 0; i < n_own; i++)
		out[k++] = own[i];
	for (size_t i = 0; i < cli__n_account_longopts; i++)
		out[k++] = cli__account_longopts[i];
	memset(&out[k], 0, sizeof(out[k]));
	return 0;
}

/* The effective configuration: defaults, -c FILE, every --set, validated
 * (secret files not read). 0, or <0 with err and nothing to free. */
int cli__plain_config(const struct cli_global *g, struct config *cfg, char *err,
		      size_t errsz)
{
	int rc = config_defaults(cfg);

	if (rc < 0) {
		snprintf(err, errsz, "out of memory");
		return rc;
	}
	if (g->config &&
	    (rc = config_load_file(cfg, g->config, err, errsz)) < 0)
		goto fail;
	for (size_t i = 0; i < g->n_sets; i++)
		if ((rc = config_set(cfg, g->sets[i], err, errsz)) < 0)
			goto fail;
	if ((rc = config_validate(cfg, err, errsz)) < 0)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return rc;
}
