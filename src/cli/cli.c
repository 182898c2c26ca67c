/*
 * cli.c — command dispatch and the top-level usage text.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
	"usage: certherd <command> [options]\n"
	"\n"
	"commands:\n"
	"  issue     obtain certificates for domains from an ACME CA\n"
	"  revoke    revoke certificates obtained before\n"
	"  account   account operations (rollover: new account key)\n"
	"  version   print the version\n"
	"\n"
	"`certherd <command> --help` describes a command.\n";

int cli_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0) {
		printf("certherd %s\n", CERTHERD_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "issue") == 0)
		return cli_issue(argc - 1, argv + 1);
	if (strcmp(argv[1], "revoke") == 0)
		return cli_revoke(argc - 1, argv + 1);
	if (strcmp(argv[1], "account") == 0)
		return cli_account(argc - 1, argv + 1);
	fprintf(stderr, "certherd: unknown command \"%s\"\n\n%s", argv[1],
		usage);
	return 2;
}
