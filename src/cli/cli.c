/*
 * cli.c — command dispatch, the global options and the top-level usage.
 *
 * Global options are taken out of argv before a command sees it, wherever
 * they stand, so `certherd -c F domains ls` and `certherd domains ls -c F`
 * mean the same and each command's getopt only knows its own options.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

static const char usage[] =
    "usage: certherd [global options] <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve     run the daemon: keep every registered domain's "
    "certificate valid\n"
    "  domains   add, rm, ls, show the daemon's domains\n"
    "  renew     ask the daemon to renew a domain's certificate now\n"
    "  status    the daemon's counts per state\n"
    "  nginx     nginx mode: `nginx snippet` prints the challenge "
    "forwarding\n"
    "  import-certbot  take over a certbot directory's certificates\n"
    "  issue     obtain certificates for domains from an ACME CA "
    "(no daemon)\n"
    "  revoke    revoke certificates obtained before\n"
    "  account   account operations (rollover: new account key)\n"
    "  ari       the CA's suggested renewal window for a certificate\n"
    "  version   print the version\n"
    "\n"
    "global options (before or after the command):\n"
    "  -c, --config FILE        the daemon's configuration file\n"
    "  --set section.key=value  override a configuration key "
    "(repeatable)\n"
    "  --socket PATH            the daemon's API socket (default: "
    "api.socket,\n"
    "                           /var/lib/certherd/api.sock)\n"
    "  --api-url URL            talk to the API over TCP instead\n"
    "  --token-file FILE        bearer token for --api-url\n"
    "  --json                   machine-readable output\n"
    "  --log-level LEVEL        debug, info (default), warn, error\n"
    "\n"
    "`certherd <command> --help` describes a command.\n";

enum gopt {
	G_CONFIG = 0,
	G_SOCKET,
	G_SET,
	G_LOG,
	G_URL,
	G_TOKEN,
	G_JSON,
	G__MAX
};

static const struct {
	const char *name; /* long form without "--" */
	int has_arg;
} gopts[G__MAX] = {
    [G_CONFIG] = {"config", 1}, [G_SOCKET] = {"socket", 1},
    [G_SET] = {"set", 1},	[G_LOG] = {"log-level", 1},
    [G_URL] = {"api-url", 1},	[G_TOKEN] = {"token-file", 1},
    [G_JSON] = {"json", 0},
};

/* Which global option arg is, and where its inline value starts ("--x=v",
 * "-cFILE"); -1 when it is none. */
static int match(const char *arg, const char **inl)
{
	*inl = NULL;
	if (arg[0] == '-' && arg[1] == 'c') {
		if (arg[2])
			*inl = arg + 2;
		return G_CONFIG;
	}
	if (arg[0] != '-' || arg[1] != '-')
		return -1;
	for (int i = 0; i < G__MAX; i++) {
		size_t n = strlen(gopts[i].name);
		if (strncmp(arg + 2, gopts[i].name, n) != 0)
			continue;
		if (arg[2 + n] == '\0')
			return i;
		if (arg[2 + n] == '=' && gopts[i].has_arg) {
			*inl = arg + 3 + n;
			return i;
		}
	}
	return -1;
}

/* "section.key=value": a non-empty section and key before the '='. */
static int set_ok(const char *s)
{
	const char *eq = strchr(s, '='), *dot;

	if (!eq)
		return 0;
	dot = memchr(s, '.', (size_t)(eq - s));
	return dot && dot > s && dot + 1 < eq;
}

int cli_global_parse(struct cli_global *g, int *argc, char **argv)
{
	int i, k = 1, n = *argc;

	memset(g, 0, sizeof(*g));
	for (i = 1; i < n; i++) {
		const char *inl, *val;
		int o;

		if (strcmp(argv[i], "--") == 0)
			break; /* the rest is the command's, verbatim */
		if ((o = match(argv[i], &inl)) < 0) {
			argv[k++] = argv[i];
			continue;
		}
		val = inl;
		if (gopts[o].has_arg && !val) {
			if (i + 1 >= n) {
				fprintf(stderr, "certherd: %s wants a value\n",
					argv[i]);
				return -EINVAL;
			}
			val = argv[++i];
		}
		switch (o) {
		case G_CONFIG:
			g->config = val;
			break;
		case G_SOCKET:
			g->socket = val;
			break;
		case G_URL:
			g->api_url = val;
			break;
		case G_TOKEN:
			g->token_file = val;
			break;
		case G_JSON:
			g->json = 1;
			break;
		case G_SET:
			if (!set_ok(val)) {
				fprintf(
				    stderr,
				    "certherd: --set wants section.key=value, "
				    "not \"%s\"\n",
				    val);
				return -EINVAL;
			}
			if (g->n_sets == CLI_MAX_SETS) {
				fprintf(
				    stderr,
				    "certherd: more than %d --set options\n",
				    CLI_MAX_SETS);
				return -EINVAL;
			}
			g->sets[g->n_sets++] = val;
			break;
		case G_LOG: {
			enum log_level lvl;
			if (log_level_parse(val, &lvl) < 0) {
				fprintf(stderr,
					"certherd: unknown log level \"%s\"\n",
					val);
				return -EINVAL;
			}
			log_set_level(lvl);
			g->log_level = val;
			g->log_level_set = 1;
			break;
		}
		}
	}
	for (; i < n; i++)
		argv[k++] = argv[i];
	argv[k] = NULL;
	*argc = k;
	return 0;
}

/* The engine commands run without a daemon: options that only make sense
 * with one are refused rather than silently ignored. */
static int engine_cmd(const struct cli_global *g, const char *cmd)
{
	if (g->config || g->socket || g->n_sets || g->json || g->api_url ||
	    g->token_file) {
		fprintf(
		    stderr,
		    "certherd %s: -c, --set, --socket, --api-url, "
		    "--token-file and --json are for the daemon's commands\n",
		    cmd);
		return -EINVAL;
	}
	return 0;
}

int cli_main(int argc, char **argv)
{
	struct cli_global g;
	const char *cmd;

	if (cli_global_parse(&g, &argc, argv) < 0)
		return 2;
	cmd = argc >= 2 ? argv[1] : NULL;
	if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage, cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("certherd %s\n", CERTHERD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "domains") == 0)
		return cli_domains(&g, argc - 1, argv + 1);
	if (strcmp(cmd, "renew") == 0)
		return cli_renew(&g, argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return cli_status(&g, argc - 1, argv + 1);
	if (strcmp(cmd, "nginx") == 0)
		return cli_nginx(&g, argc - 1, argv + 1);
	if (strcmp(cmd, "import-certbot") == 0)
		return cli_import_certbot(&g, argc - 1, argv + 1);
	if (strcmp(cmd, "serve") == 0) {
#ifdef CLI_HAVE_SERVE
		return cli_serve(&g, argc - 1, argv + 1);
#else
		fprintf(stderr, "certherd: serve is not built in\n");
		return 2;
#endif
	}
	if (strcmp(cmd, "issue") == 0)
		return engine_cmd(&g, cmd) < 0 ? 2
					       : cli_issue(argc - 1, argv + 1);
	if (strcmp(cmd, "revoke") == 0)
		return engine_cmd(&g, cmd) < 0 ? 2
					       : cli_revoke(argc - 1, argv + 1);
	if (strcmp(cmd, "account") == 0)
		return engine_cmd(&g, cmd) < 0
			   ? 2
			   : cli_account(argc - 1, argv + 1);
	if (strcmp(cmd, "ari") == 0)
		return engine_cmd(&g, cmd) < 0 ? 2 : cli_ari(argc - 1, argv + 1);
	fprintf(stderr, "certherd: unknown command \"%s\"\n\n%s", cmd, usage);
	return 2;
}
