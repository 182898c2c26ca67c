/*
 * cli_account.c — account-level commands: `certherd revoke` and
 * `certherd account rollover`. Exit status 0 on success, 1 when the CA
 * refused (reason printed), 2 for usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "util/util.h"

enum { O_REASON = CLI_O__OWN, O_CERTKEY, O_KEYTYPE };

int cli_revoke(int argc, char **argv)
{
	static const struct option own[] = {
		{"reason", required_argument, NULL, O_REASON},
		{"with-cert-key", no_argument, NULL, O_CERTKEY},
		{"help", no_argument, NULL, 'h'},
	};
	struct option longopts[32];
	struct cli_account a = {0};
	struct cli_names ns = {0};
	char err[1024];
	long reason = -1;
	int c, rc, status = 2, by_key = 0;

	cli__build_longopts(longopts, 32, own, sizeof(own) / sizeof(own[0]));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = cli__account_opt(&a, "revoke", c, optarg);
		if (rc < 0)
			goto out;
		if (rc > 0)
			continue;
		if (c == O_REASON) {
			if (cli__long_number("revoke", "--reason", optarg, 0, 10,
					     &reason) < 0)
				goto out;
			if (reason == 7) { /* unused in RFC 5280 */
				fprintf(stderr, "certherd revoke: --reason 7 "
						"is not a valid code\n");
				goto out;
			}
		} else if (c == O_CERTKEY) {
			by_key = 1;
		} else {
			FILE *f = c == 'h' ? stdout : stderr;
			fputs("usage: certherd revoke --directory URL --out DIR "
			      "[--reason N] [--with-cert-key] DOMAIN...\n\n"
			      "Revoke DIR/live/DOMAIN/cert.pem, signed by the "
			      "account or, with --with-cert-key, by the\n"
			      "certificate's own key. --reason is an RFC 5280 "
			      "code (0-10, not 7).\n\n",
			      f);
			fputs(cli__account_usage, f);
			status = c == 'h' ? 0 : 2;
			goto out;
		}
	}
	if (cli__account_finish(&a, "revoke") < 0)
		goto out;
	for (int i = optind; i < argc; i++)
		if (cli__names_add(&ns, "revoke", argv[i]) < 0)
			goto out;
	if (ns.bad || ns.n == 0) {
		fprintf(stderr, "certherd revoke: %s\n",
			ns.bad ? "invalid domain names; nothing revoked"
			       : "no domains given");
		goto out;
	}
	rc = engine_revoke(&a.o, (const char *const *)ns.v, ns.n, (int)reason,
			   by_key, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "certherd revoke: %s\n", err);
		goto out;
	}
	status = rc ? 1 : 0;
out:
	cli__names_clear(&ns);
	cli__account_clear(&a);
	return status;
}

static int account_rollover(int argc, char **argv)
{
	static const struct option own[] = {
		{"key-type", required_argument, NULL, O_KEYTYPE},
		{"help", no_argument, NULL, 'h'},
	};
	struct option longopts[32];
	struct cli_account a = {0};
	enum key_type t = KEY_ECDSA_P256;
	char err[2048];
	int c, rc, status = 2;

	cli__build_longopts(longopts, 32, own, sizeof(own) / sizeof(own[0]));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = cli__account_opt(&a, "account rollover", c, optarg);
		if (rc < 0)
			goto out;
		if (rc > 0)
			continue;
		if (c == O_KEYTYPE && key_type_parse(optarg, &t) == 0)
			continue;
		if (c == O_KEYTYPE) {
			fprintf(stderr, "certherd account rollover: unknown key "
					"type \"%s\"\n", optarg);
			goto out;
		}
		fputs("usage: certherd account rollover --directory URL --out "
		      "DIR [--key-type TYPE]\n\nReplace the account key "
		      "(RFC 8555 keyChange); the account stays the same.\n\n",
		      c == 'h' ? stdout : stderr);
		fputs(cli__account_usage, c == 'h' ? stdout : stderr);
		status = c == 'h' ? 0 : 2;
		goto out;
	}
	if (cli__account_finish(&a, "account rollover") < 0)
		goto out;
	if (optind != argc) {
		fprintf(stderr, "certherd account rollover: unexpected \"%s\"\n",
			argv[optind]);
		goto out;
	}
	rc = engine_key_rollover(&a.o, t, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "certherd account rollover: %s\n", err);
	status = rc < 0 ? 1 : 0;
out:
	cli__account_clear(&a);
	return status;
}

int cli_account(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "rollover") == 0)
		return account_rollover(argc - 1, argv + 1);
	fprintf(stderr, "usage: certherd account rollover [options]\n");
	return 2;
}
