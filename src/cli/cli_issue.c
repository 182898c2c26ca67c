/*
 * cli_issue.c — `certherd issue`: obtain one certificate per domain from
 * any RFC 8555 CA and write certbot's live/<domain>/ layout.
 *
 * Input is validated here before anything reaches the CA: every name is
 * normalized (and rejected with its reason), duplicates are dropped, the
 * EAB key must be base64url. Exit status: 0 when every domain got its
 * certificate, 1 when some failed (one summary line each), 2 for usage
 * errors and runs that could not start.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "util/util.h"

#define MAX_DOMAINS_FILE (64u << 20)

static const char usage[] =
	"usage: certherd issue --directory URL --out DIR [options] [DOMAIN...]\n"
	"\n"
	"Obtain one certificate per DOMAIN and write DIR/live/DOMAIN/{cert,\n"
	"chain,fullchain,privkey}.pem (keys 0600). The account key is kept in\n"
	"DIR/accounts/ and reused.\n"
	"\n"
	"  --directory URL       ACME directory (e.g. Let's Encrypt's)\n"
	"  --out DIR             where certificates and the account live\n"
	"  --ca-bundle FILE      trust these CAs for HTTPS to the ACME server\n"
	"  --email ADDR          account contact\n"
	"  --eab-kid ID          external account binding key id\n"
	"  --eab-hmac-key B64    external account binding MAC key (base64url)\n"
	"  --key-type TYPE       ecdsa-p256 (default), ecdsa-p384, rsa2048,\n"
	"                        rsa3072, rsa4096\n"
	"  --profile NAME        ask the CA for this certificate profile\n"
	"  --preferred-issuer CN prefer the chain whose top issuer is CN\n"
	"  --http-listen ADDR    HTTP-01 responder address (default :80)\n"
	"  --concurrency N       orders in flight at once (default 100)\n"
	"  --ca-connections N    HTTP connections to the CA (default 8)\n"
	"  --domains-file FILE   more domains, one per line ('#' comments)\n"
	"  --log-level LEVEL     debug, info (default), warn, error\n"
	"  --no-progress         no progress line even on a terminal\n";

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *ns, const char *raw, int *bad)
{
	char norm[NAME_MAX_LEN + 1], why[512];

	if (name_normalize(raw, 0, norm, sizeof(norm), why, sizeof(why)) < 0) {
		fprintf(stderr, "certherd issue: %s\n", why);
		(*bad)++;
		return 0;
	}
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], norm) == 0)
			return 0; /* duplicates are harmless: one order */
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
	ns->n++;
	return 0;
}

static int read_domains_file(const char *path, struct names *ns, int *bad)
{
	char *buf, *line, *save = NULL;
	size_t len;
	int rc = fsio_read_all(path, MAX_DOMAINS_FILE, &buf, &len);

	if (rc < 0) {
		fprintf(stderr, "certherd issue: cannot read %s: %s\n", path,
			strerror(-rc));
		return rc;
	}
	for (line = strtok_r(buf, "\r\n", &save); line && rc == 0;
	     line = strtok_r(NULL, "\r\n", &save)) {
		char *hash = strchr(line, '#'), *end;
		if (hash)
			*hash = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*line)
			rc = names_add(ns, line, bad);
	}
	free(buf);
	return rc;
}

int cli_issue(int argc, char **argv)
{
	enum { O_DIR = 256, O_CABUNDLE, O_EMAIL, O_EABKID, O_EABKEY, O_KEYTYPE,
	       O_PROFILE, O_HTTP, O_CONC, O_DOMFILE, O_OUT, O_LOG, O_NOPROG,
	       O_PREF, O_CONNS };
	static const struct option longopts[] = {
		{"directory", required_argument, NULL, O_DIR},
		{"ca-bundle", required_argument, NULL, O_CABUNDLE},
		{"email", required_argument, NULL, O_EMAIL},
		{"eab-kid", required_argument, NULL, O_EABKID},
		{"eab-hmac-key", required_argument, NULL, O_EABKEY},
		{"key-type", required_argument, NULL, O_KEYTYPE},
		{"profile", required_argument, NULL, O_PROFILE},
		{"preferred-issuer", required_argument, NULL, O_PREF},
		{"http-listen", required_argument, NULL, O_HTTP},
		{"concurrency", required_argument, NULL, O_CONC},
		{"ca-connections", required_argument, NULL, O_CONNS},
		{"domains-file", required_argument, NULL, O_DOMFILE},
		{"out", required_argument, NULL, O_OUT},
		{"log-level", required_argument, NULL, O_LOG},
		{"no-progress", no_argument, NULL, O_NOPROG},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct engine_issue_opts o = {
		.key_type = KEY_ECDSA_P256,
		.http_listen = ":80",
		.concurrency = 100,
		.progress = 1,
	};
	struct engine_issue_result *res = NULL;
	struct names ns = {0};
	const char *eab_key = NULL, *domfile = NULL;
	unsigned char *hmac = NULL;
	char err[1024] = "";
	int c, bad = 0, status = 2, nfail = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char *end;
		long v;
		enum log_level lvl;
		switch (c) {
		case O_DIR: o.directory_url = optarg; break;
		case O_CABUNDLE: o.ca_bundle = optarg; break;
		case O_EMAIL: o.email = optarg; break;
		case O_EABKID: o.eab_kid = optarg; break;
		case O_EABKEY: eab_key = optarg; break;
		case O_PROFILE: o.profile = optarg; break;
		case O_PREF: o.preferred_issuer = optarg; break;
		case O_HTTP: o.http_listen = optarg; break;
		case O_DOMFILE: domfile = optarg; break;
		case O_OUT: o.out_dir = optarg; break;
		case O_NOPROG: o.progress = 0; break;
		case O_KEYTYPE:
			if (key_type_parse(optarg, &o.key_type) < 0) {
				fprintf(stderr, "certherd issue: unknown key type \"%s\"\n", optarg);
				goto out;
			}
			break;
		case O_CONC:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 100000) {
				fprintf(stderr, "certherd issue: --concurrency wants 1..100000, not \"%s\"\n", optarg);
				goto out;
			}
			o.concurrency = (unsigned)v;
			break;
		case O_CONNS:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 256) {
				fprintf(stderr, "certherd issue: --ca-connections wants 1..256, not \"%s\"\n", optarg);
				goto out;
			}
			o.ca_connections = (unsigned)v;
			break;
		case O_LOG:
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "certherd issue: unknown log level \"%s\"\n", optarg);
				goto out;
			}
			log_set_level(lvl);
			break;
		case 'h':
			fputs(usage, stdout);
			status = 0;
			goto out;
		default:
			fputs(usage, stderr);
			goto out;
		}
	}
	if (!o.directory_url || !o.out_dir) {
		fprintf(stderr, "certherd issue: --directory and --out are required\n\n%s", usage);
		goto out;
	}
	if (strncmp(o.directory_url, "https://", 8) != 0 &&
	    strncmp(o.directory_url, "http://", 7) != 0) {
		fprintf(stderr, "certherd issue: --directory must be an http(s) URL, not \"%s\"\n", o.directory_url);
		goto out;
	}
	if (!!o.eab_kid != !!eab_key) {
		fprintf(stderr, "certherd issue: --eab-kid and --eab-hmac-key go together\n");
		goto out;
	}
	if (eab_key) {
		hmac = b64url_decode(eab_key, strlen(eab_key), &o.eab_hmac_len);
		if (!hmac || o.eab_hmac_len == 0) {
			fprintf(stderr, "certherd issue: --eab-hmac-key is not base64url\n");
			goto out;
		}
		o.eab_hmac = hmac;
	}
	for (int i = optind; i < argc; i++)
		if (names_add(&ns, argv[i], &bad) < 0)
			goto out;
	if (domfile && read_domains_file(domfile, &ns, &bad) < 0)
		goto out;
	if (bad) {
		fprintf(stderr, "certherd issue: %d invalid domain%s; nothing was ordered\n",
			bad, bad == 1 ? "" : "s");
		goto out;
	}
	if (ns.n == 0) {
		fprintf(stderr, "certherd issue: no domains given\n");
		goto out;
	}
	if (engine_issue((const char *const *)ns.v, ns.n, &o, &res, err,
			 sizeof(err)) < 0) {
		fprintf(stderr, "certherd issue: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < ns.n; i++)
		if (!res[i].ok) {
			nfail++;
			fprintf(stderr, "failed: %s: %s\n", res[i].name,
				res[i].error ? res[i].error : "unknown error");
		}
	fprintf(stderr, "certherd issue: %zu of %zu certificates obtained%s\n",
		ns.n - (size_t)nfail, ns.n, nfail ? "" : ", all done");
	status = nfail ? 1 : 0;
out:
	engine_issue_results_free(res, ns.n);
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	if (hmac)
		OPENSSL_cleanse(hmac, o.eab_hmac_len);
	free(hmac);
	return status;
}
