/*
 * cli — the command line: `certherd <command> [options]`. Each command is
 * a function taking argc/argv after the command name and returning the
 * process exit status.
 */
#ifndef CERTHERD_CLI_H
#define CERTHERD_CLI_H

/* Dispatch argv[1] to its command; prints usage on errors. */
int cli_main(int argc, char **argv);

int cli_issue(int argc, char **argv);
int cli_revoke(int argc, char **argv);
int cli_account(int argc, char **argv);

#endif
