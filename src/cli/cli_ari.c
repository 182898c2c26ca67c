/*
 * cli_ari.c — `certherd ari`: ask the CA for the RFC 9773 renewal window
 * of a certificate obtained before (DIR/live/DOMAIN/cert.pem) and print
 * it, with the certificate's ARI identifier (the value an order's
 * "replaces" takes). Nothing is written and no account is needed.
 *
 * Output, one "key: value" per line:
 *   certid: <base64url>.<base64url>
 *   start: <RFC 3339>       end: <RFC 3339>
 *   retry-after: <seconds>  (or "none")
 *   explanation: <URL>      (only when the CA gave one)
 * Exit status: 0 printed, 1 the CA refused, has no ARI or the certificate
 * cannot be named, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "util/util.h"

static const char usage_head[] =
	"usage: certherd ari --directory URL --out DIR [options] DOMAIN\n"
	"\n"
	"Print the CA's suggested renewal window (RFC 9773) for\n"
	"DIR/live/DOMAIN/cert.pem, and the certificate's ARI identifier.\n"
	"\n";

static void usage(FILE *f)
{
	fputs(usage_head, f);
	fputs(cli__account_usage, f);
}

/* Leaf PEM of DIR/live/NAME/cert.pem (malloc'd) or NULL, message printed. */
static char *read_cert(const char *out_dir, const char *name)
{
	char path[4096], *pem = NULL;
	size_t len;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/live/%s/cert.pem", out_dir,
			     name) >= sizeof(path)) {
		fprintf(stderr, "certherd ari: path too long for %s\n", name);
		return NULL;
	}
	rc = fsio_read_all(path, ACME_MAX_BODY, &pem, &len);
	if (rc < 0) {
		fprintf(stderr, "certherd ari: cannot read %s: %s\n", path,
			strerror(-rc));
		return NULL;
	}
	return pem;
}

static void print_time(const char *key, int64_t ms)
{
	char t[64];

	if (acme_ari_time_format(ms, t, sizeof(t)) < 0)
		snprintf(t, sizeof(t), "%lld ms", (long long)ms);
	printf("%s: %s\n", key, t);
}

int cli_ari(int argc, char **argv)
{
	static const struct option own[] = {
		{"help", no_argument, NULL, 'h'},
	};
	struct option longopts[32];
	struct cli_account a = {0};
	struct cli_names ns = {0};
	struct engine_session s = {0};
	struct acme_ari ari = {0};
	char err[1024] = "", certid[ACME_ARI_CERTID_MAX];
	unsigned char *der = NULL;
	size_t der_len;
	char *pem = NULL;
	int c, rc, status = 2;

	cli__build_longopts(longopts, 32, own, sizeof(own) / sizeof(own[0]));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = cli__account_opt(&a, "ari", c, optarg);
		if (rc < 0)
			goto out;
		if (rc > 0)
			continue;
		if (c == 'h') {
			usage(stdout);
			status = 0;
		} else {
			usage(stderr);
		}
		goto out;
	}
	if (cli__account_finish(&a, "ari") < 0)
		goto out;
	if (argc - optind != 1) {
		fprintf(stderr, "certherd ari: give exactly one domain\n");
		goto out;
	}
	if (cli__names_add(&ns, "ari", argv[optind]) < 0 || ns.bad || ns.n != 1)
		goto out;
	status = 1;
	pem = read_cert(a.o.out_dir, ns.v[0]);
	if (!pem)
		goto out;
	/* The identifier is printed even when the CA cannot answer: it is
	 * what a replacement order's "replaces" would carry. */
	if (x509_pem_to_der(pem, strlen(pem), &der, &der_len) < 0) {
		fprintf(stderr, "certherd ari: %s: cert.pem holds no certificate\n",
			ns.v[0]);
		goto out;
	}
	rc = acme_ari_certid(der, der_len, certid, sizeof(certid));
	if (rc == 0)
		printf("certid: %s\n", certid);
	if (engine_session_open(&s, &a.o, 0, err, sizeof(err)) < 0 ||
	    engine_ari_fetch(&s, pem, &ari, err, sizeof(err)) < 0) {
		fprintf(stderr, "certherd ari: %s: %s\n", ns.v[0], err);
		goto out;
	}
	print_time("start", ari.start_ms);
	print_time("end", ari.end_ms);
	if (ari.retry_after_ms >= 0)
		printf("retry-after: %lld\n",
		       (long long)(ari.retry_after_ms / 1000));
	else
		printf("retry-after: none\n");
	if (ari.explanation_url)
		printf("explanation: %s\n", ari.explanation_url);
	status = 0;
out:
	acme_ari_clear(&ari);
	engine_session_close(&s);
	free(der);
	free(pem);
	cli__names_clear(&ns);
	cli__account_clear(&a);
	return status;
}
