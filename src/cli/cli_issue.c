/*
 * cli_issue.c — `certherd issue`: obtain one certificate per domain from
 * any RFC 8555 CA and write certbot's live/<domain>/ layout.
 *
 * Input is validated here before anything reaches the CA: every name is
 * normalized (and rejected with its reason), duplicates are dropped, the
 * EAB key must be base64url. With --dns-updater every name is validated
 * by DNS-01 (wildcards allowed); the TSIG key file must be 0600. Exit status: 0 when every domain got its
 * certificate, 1 when some failed (one summary line each), 2 for usage
 * errors and runs that could not start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli_internal.h"
#include "engine/engine.h"
#include "util/config.h"
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
	"  --no-progress         no progress line even on a terminal\n"
	"DNS-01 (every name, wildcards allowed; docs/dns01.md):\n"
	"  --dns-updater U       rfc2136 (signed UPDATE) or hook (a command)\n"
	"  --dns-server ADDR:PORT  rfc2136: the zone's primary server\n"
	"  --tsig-key-file FILE  rfc2136: key as tsig-keygen writes it, 0600\n"
	"  --dns-hook CMD        hook: run as CMD add|remove NAME VALUE\n"
	"  --dns-zone ZONE       the zone (default: found from the SOA)\n"
	"  --dns-resolver ADDR:PORT  asked for SOA/NS (default resolv.conf)\n"
	"  --dns-wait DURATION   longest wait for every name server to have\n"
	"                        the record (default 2m)\n";

static void usage(FILE *f)
{
	fputs(usage_head, f);
	fputs(cli__account_usage, f);
	fputs(usage_own, f);
}

enum { O_KEYTYPE = CLI_O__OWN, O_PROFILE, O_PREF, O_HTTP, O_CONC, O_DOMFILE,
       O_NOPROG, O_DNSUPD, O_DNSSRV, O_TSIG, O_DNSHOOK, O_DNSZONE, O_DNSRES,
       O_DNSWAIT };

/* The DNS-01 options, checked together. 0, 1 when none was given, or -1
 * (message printed). The TSIG key is read into *key. */
static int dns01_setup(const char *updater, const char *server,
		       const char *key_file, const char *hook,
		       const char *zone, const char *resolver,
		       struct engine_tsig_key *key, struct engine_dns01_zone *z,
		       struct engine_dns01_opts *o)
{
	char *text = NULL, why[256], zn[NAME_MAX_LEN + 1];
	struct config_addr a;
	int rc;

	if (!updater) {
		if (server || key_file || hook || zone || resolver) {
			fprintf(stderr, "certherd issue: --dns-* options need "
				"--dns-updater\n");
			return -1;
		}
		return 1;
	}
	memset(z, 0, sizeof(*z));
	if (strcmp(updater, "rfc2136") == 0) {
		z->updater = ENGINE_DNS01_RFC2136;
		if (!server || hook) {
			fprintf(stderr, "certherd issue: --dns-updater rfc2136 "
				"needs --dns-server (and no --dns-hook)\n");
			return -1;
		}
	} else if (strcmp(updater, "hook") == 0) {
		z->updater = ENGINE_DNS01_HOOK;
		if (!hook || server || key_file) {
			fprintf(stderr, "certherd issue: --dns-updater hook "
				"needs --dns-hook (and no --dns-server or "
				"--tsig-key-file)\n");
			return -1;
		}
	} else {
		fprintf(stderr, "certherd issue: --dns-updater is rfc2136 or "
			"hook, not \"%s\"\n", updater);
		return -1;
	}
	if ((server && (config_parse_addr(server, CONFIG_AF_HOST_REQUIRED,
					  &a) < 0 || a.kind != CONFIG_ADDR_IP)) ||
	    (resolver && (config_parse_addr(resolver, CONFIG_AF_HOST_REQUIRED,
					    &a) < 0 || a.kind != CONFIG_ADDR_IP))) {
		fprintf(stderr, "certherd issue: a DNS server is an IP address "
			"and port: ADDR:PORT or [V6]:PORT\n");
		return -1;
	}
	if (zone && name_normalize(zone, 0, zn, sizeof(zn), why,
				   sizeof(why)) < 0) {
		fprintf(stderr, "certherd issue: --dns-zone: %s\n", why);
		return -1;
	}
	if (key_file) {
		rc = config_read_secret_text(key_file, "--tsig-key-file", &text, why,
					sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "certherd issue: %s\n", why);
			return -1;
		}
		rc = engine_tsig_parse(text, strlen(text), key, why,
				       sizeof(why));
		OPENSSL_cleanse(text, strlen(text));
		free(text);
		if (rc < 0) {
			fprintf(stderr, "certherd issue: %s: %s\n", key_file,
				why);
			return -1;
		}
		z->key = key;
	}
	z->zone = zone;
	z->server = server;
	z->command = hook;
	o->zones = z;
	o->n_zones = 1;
	o->resolver = resolver;
	return 0;
}

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
		{"dns-updater", required_argument, NULL, O_DNSUPD},
		{"dns-server", required_argument, NULL, O_DNSSRV},
		{"tsig-key-file", required_argument, NULL, O_TSIG},
		{"dns-hook", required_argument, NULL, O_DNSHOOK},
		{"dns-zone", required_argument, NULL, O_DNSZONE},
		{"dns-resolver", required_argument, NULL, O_DNSRES},
		{"dns-wait", required_argument, NULL, O_DNSWAIT},
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
	const char *dns_upd = NULL, *dns_srv = NULL, *tsig = NULL, *hook = NULL;
	const char *dns_zone = NULL, *dns_res = NULL;
	struct engine_tsig_key key = {.name = ""};
	struct engine_dns01_zone dz;
	struct engine_dns01_opts dopts = {0};
	int64_t wait_s = 0;
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
		case O_DNSUPD: dns_upd = optarg; break;
		case O_DNSSRV: dns_srv = optarg; break;
		case O_TSIG: tsig = optarg; break;
		case O_DNSHOOK: hook = optarg; break;
		case O_DNSZONE: dns_zone = optarg; break;
		case O_DNSRES: dns_res = optarg; break;
		case O_DNSWAIT:
			if (config_parse_duration(optarg, &wait_s) < 0 ||
			    wait_s < 1 || wait_s > 3600) {
				fprintf(stderr, "certherd issue: --dns-wait "
					"takes a duration from 1s to 1h\n");
				goto out;
			}
			break;
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
	rc = dns01_setup(dns_upd, dns_srv, tsig, hook, dns_zone, dns_res, &key,
			 &dz, &dopts);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		dopts.propagation_timeout_ms = wait_s * 1000;
		o.dns01 = &dopts;
		ns.flags = NAME_ALLOW_WILDCARD; /* DNS-01 proves wildcards */
	}
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
	OPENSSL_cleanse(&key, sizeof(key));
	engine_issue_results_free(res, ns.n);
	cli__names_clear(&ns);
	cli__account_clear(&a);
	return status;
}
