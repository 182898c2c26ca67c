/*
 * cli — the command line: `certherd <command> [options]`. Each command is
 * a function taking argc/argv after the command name and returning the
 * process exit status: 0 ok, 1 the CA, the daemon or its API refused or
 * could not be reached, 2 usage.
 *
 * Global options (see cli_global_parse) may appear before or after the
 * command name; cli_main takes them out of argv before dispatching, so a
 * command's own option parser never sees them.
 */
#ifndef CERTHERD_CLI_H
#define CERTHERD_CLI_H

#include <stddef.h>

#define CLI_MAX_SETS 64

/* The global options. Every pointer is borrowed from argv. */
struct cli_global {
	const char *config;		/* -c FILE, --config FILE */
	const char *socket;		/* --socket PATH */
	const char *sets[CLI_MAX_SETS]; /* --set section.key=value, in order */
	size_t n_sets;
	int json;		/* --json */
	const char *log_level;	/* --log-level LEVEL (already applied) */
	int log_level_set;	/* --log-level was given */
	const char *api_url;	/* --api-url URL: TCP instead of socket */
	const char *token_file; /* --token-file FILE: bearer token */
};

/*
 * Take the global options out of argv[1..argc-1] wherever they are, into
 * g (zeroed first), and compact argv (argv[*argc] becomes NULL). Accepted
 * spellings: `-c FILE`, `-cFILE`, `--config FILE`, `--config=FILE`, and
 * the same two long forms for --socket, --set, --log-level, --api-url,
 * --token-file; `--json`. Parsing stops at `--` (which stays in argv for
 * the command). --log-level is checked and applied to the log module.
 * Returns 0, or -EINVAL for a missing value, a bad level, a --set without
 * '.' and '=' or more than CLI_MAX_SETS of them (message printed).
 */
int cli_global_parse(struct cli_global *g, int *argc, char **argv);

/* Dispatch argv[1] to its command; prints usage on errors. */
int cli_main(int argc, char **argv);

/* Commands that run the ACME engine in-process. */
int cli_issue(int argc, char **argv);
int cli_revoke(int argc, char **argv);
int cli_account(int argc, char **argv);
int cli_ari(int argc, char **argv);

/* The daemon (cli_serve.c). */
int cli_serve(const struct cli_global *g, int argc, char **argv);

/* Clients of the daemon's control API (cli_domains.c): argv[0] is the
 * command name ("domains", "renew", "status"). */
int cli_domains(const struct cli_global *g, int argc, char **argv);
int cli_renew(const struct cli_global *g, int argc, char **argv);
int cli_status(const struct cli_global *g, int argc, char **argv);

/* nginx mode (cli_nginx.c, cli_import.c): argv[0] is the command name. */
int cli_nginx(const struct cli_global *g, int argc, char **argv);
int cli_import_certbot(const struct cli_global *g, int argc, char **argv);

#endif
