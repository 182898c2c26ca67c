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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "util/util.h"

static const char usage_head[] =
	"usage: certherd issue --directory URL --out DIR [options] [DOMAIN...]\n"
	"\n"
	"Obtain one certificate per DOMAIN and write DIR/live/DOMAIN/{cert,\n"
	"chain,fullchain,privkey}.pem (keys 0600). The account key is kept in\n"
	"DIR/accounts/ and reused.\n"
	"\n";
static const char usage_own[] =
	"  --key-type TYPE       ecdsa-p256 (default), ecdsa-p384, rsa2048,\n"
	"                        rsa3072, rsa4096\n"
	"  --profile NAME        ask the CA for this certificate profile\n"
	"  --preferred-issuer CN prefer the chain whose top issuer is CN\n"
	"  --http-listen ADDR    HTTP-01 responder address (default :80)\n"
	"  --concurrency N       orders in flight at once (default 100)\n"
	"  --domains-file FILE   more domains, one per line ('#' comments)\n"
	"  --no-progress         no progress line even on a terminal\n";

static void usage(FILE *f)
{
	fputs(usage_head, f);
	fputs(cli__account_usage, f);
	fputs(usage_own, f);
}

enum { O_KEYTYPE = CLI_O__OWN, O_PROFILE, O_PREF, O_HTTP, O_CONC, O_DOMFILE,
       O_NOPROG };

int cli_issue(int argc, char **argv)
{
	static const struct option own[] = {
		{"key-type", required_argument, NULL, O_KEYTYPE},
		{"profile", required_argument, NULL, O_PROFILE},
		{"preferred-issuer", required_argument, NULL, O_PREF},
		{"http-listen", required_argument, NULL, O_HTTP},
		{"concurrency", required_argument, NULL, O_CONC},
		{"domains-file", required_argument, NULL, O_DOMFILE},
		{"no-progress", no_argument, NULL, O_NOPROG},
		{"help", no_argument, NULL, 'h'},
	};
	struct option longopts[32];
	struct engine_issue_opts o = {
		.key_type = KEY_ECDSA_P256,
		.http_listen = ":80",
		.concurrency = 100,
		.progress = 1,
	};
	struct cli_account a = {0};
	struct engine_issue_result *res = NULL;
	struct cli_names ns = {0};
	const char *domfile = NULL;
	char err[1024] = "";
	int c, rc, status = 2, nfail = 0;
	long v;

	cli__build_longopts(longopts, 32, own, sizeof(own) / sizeof(own[0]));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = cli__account_opt(&a, "issue", c, optarg);
		if (rc < 0)
			goto out;
		if (rc > 0)
			continue;
		switch (c) {
		case O_PROFILE: o.profile = optarg; break;
		case O_PREF: o.preferred_issuer = optarg; break;
		case O_HTTP: o.http_listen = optarg; break;
		case O_DOMFILE: domfile = optarg; break;
		case O_NOPROG: o.progress = 0; break;
		case O_KEYTYPE:
			if (key_type_parse(optarg, &o.key_type) < 0) {
				fprintf(stderr,
					"certherd issue: unknown key type \"%s\"\n",
					optarg);
				goto out;
			}
			break;
		case O_CONC:
			if (cli__long_number("issue", "--concurrency", optarg, 1,
					     100000, &v) < 0)
				goto out;
			o.concurrency = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			status = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (cli__account_finish(&a, "issue") < 0)
		goto out;
	o.acct = a.o;
	for (int i = optind; i < argc; i++)
		if (cli__names_add(&ns, "issue", argv[i]) < 0)
			goto out;
	if (domfile && cli__names_file(&ns, "issue", domfile) < 0)
		goto out;
	if (ns.bad) {
		fprintf(stderr,
			"certherd issue: %d invalid domain%s; nothing was ordered\n",
			ns.bad, ns.bad == 1 ? "" : "s");
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
	fprintf(stderr, "certherd issue: %zu of %zu certificates obtained\n",
		ns.n - (size_t)nfail, ns.n);
	status = nfail ? 1 : 0;
out:
	engine_issue_results_free(res, ns.n);
	cli__names_clear(&ns);
	cli__account_clear(&a);
	return status;
}
