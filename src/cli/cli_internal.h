/*
 * Internals shared by the cli module's commands (cli__ prefix).
 */
#ifndef CERTHERD_CLI_INTERNAL_H
#define CERTHERD_CLI_INTERNAL_H

#include <getopt.h>
#include <stddef.h>

#include "cli/cli.h"
#include "engine/engine.h"

/* Option codes of the account options; commands number theirs from
 * CLI_O__OWN up. */
enum {
	CLI_O_DIR = 256,
	CLI_O_CABUNDLE,
	CLI_O_EMAIL,
	CLI_O_EABKID,
	CLI_O_EABKEY,
	CLI_O_OUT,
	CLI_O_CONNS,
	CLI_O_LOG,
	CLI_O__OWN
};

struct cli_account {
	struct engine_account_opts o;
	const char *eab_key;  /* as given, base64url */
	unsigned char *hmac;  /* decoded, owned */
};

extern const struct option cli__account_longopts[];
extern const size_t cli__n_account_longopts;
extern const char cli__account_usage[];

/* own[] followed by the account options and a terminator into out. */
int cli__build_longopts(struct option *out, size_t cap,
			const struct option *own, size_t n_own);
/* 1 if c was an account option (applied), 0 if not, <0 on a bad value
 * (message printed). */
int cli__account_opt(struct cli_account *a, const char *cmd, int c,
		     const char *arg);
/* Check required options and decode EAB; 0 or -EINVAL (printed). */
int cli__account_finish(struct cli_account *a, const char *cmd);
void cli__account_clear(struct cli_account *a);
/* Parse a decimal in [min, max]; 0 or -EINVAL (printed). */
int cli__long_number(const char *cmd, const char *flag, const char *s,
		     long min, long max, long *out);

/* Normalized, de-duplicated domain names; bad counts rejected inputs
 * (each reported on stderr). */
struct cli_names {
	char **v;
	size_t n, cap;
	int bad;
	size_t *set;    /* hash set of indexes into v (private) */
	size_t set_cap;
};
int cli__names_add(struct cli_names *ns, const char *cmd, const char *raw);
int cli__names_file(struct cli_names *ns, const char *cmd, const char *path);
void cli__names_clear(struct cli_names *ns);

#endif
