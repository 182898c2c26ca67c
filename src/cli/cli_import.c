/*
 * cli_import.c — `certherd import-certbot DIR`: take over the lineages of
 * a certbot configuration directory (/etc/letsencrypt) without issuing
 * anything that is still valid.
 *
 * For each DIR/renewal/NAME.conf: the lineage's fullchain and key (the
 * paths the file names, else DIR/live/NAME/), checked to belong together;
 * every DNS name of the certificate is registered in the store, and while
 * the certificate is valid it becomes that name's current certificate
 * (live/ files written, renewal scheduled by the usual rule), so the
 * daemon renews it when it is due and not before. An expired lineage
 * registers its names for a new certificate. A name that already has a
 * certificate here, or an order in flight, is left as it is. Wildcards
 * are skipped: certherd answers http-01, which cannot prove them.
 *
 * It writes the store directly (SQLite lets the daemon run meanwhile; the
 * daemon's nginx pass looks at the store at least once a minute).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "crypto/crypto.h"
#include "nginx/nginx.h"
#include "store/store.h"
#include "util/config.h"
#include "util/util.h"

#define LINEAGES_MAX 1000000

struct imp {
	struct store *st;
	const struct config *cfg;
	const char *dir;
	int chown_keys;
	uid_t uid;
	gid_t gid;
	unsigned imported, registered, skipped, failed;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read path, else fallback; 0 or negative errno (path read into *out). */
static int read_pem(const char *path, const char *fallback, char **out)
{
	size_t len;
	int rc = -ENOENT;

	if (path && *path)
		rc = fsio_read_all(path, STORE_PEM_MAX, out, &len);
	if (rc < 0)
		rc = fsio_read_all(fallback, STORE_PEM_MAX, out, &len);
	if (rc == 0 && strlen(*out) != len) {
		free(*out);
		*out = NULL;
		rc = -EINVAL;
	}
	return rc;
}

static void day(int64_t s, char *buf, size_t sz)
{
	time_t t = (time_t)s;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, sz, "%Y-%m-%d", &tm))
		snprintf(buf, sz, "?");
}

/* One name of a lineage. */
static void import_name(struct imp *im, const char *lineage, const char *raw,
			const char *chain, const char *key,
			const struct x509_info *info, int valid)
{
	char name[NAME_MAX_LEN + 1], why[300], until[32];
	struct store_domain dom;
	struct store_cert c = {0};
	int64_t now = clock_wall_ms();
	int rc;

	if (name_normalize(raw, 0, name, sizeof(name), why, sizeof(why)) < 0) {
		printf("skipped %s (lineage %s): %s\n", raw, lineage,
		       strncmp(raw, "*.", 2) == 0
			   ? "a wildcard needs dns-01, certherd answers http-01"
			   : why);
		im->skipped++;
		return;
	}
	if (store_domain_get(im->st, name, &dom) == 0 &&
	    dom.status != STORE_DOMAIN_REMOVED) {
		if (dom.status == STORE_DOMAIN_ISSUING ||
		    dom.status == STORE_DOMAIN_RENEWING) {
			printf("skipped %s: an order is in flight\n", name);
			im->skipped++;
			return;
		}
		if (store_cert_current(im->st, name, &c) == 0) {
			store_cert_clear(&c);
			printf("skipped %s: it already has a certificate\n",
			       name);
			im->skipped++;
			return;
		}
	}
	rc = store_domain_add(im->st, name, NULL, now);
	if (rc < 0) {
		printf("failed %s: cannot register: %s\n", name,
		       store_errmsg(im->st));
		im->failed++;
		return;
	}
	if (!valid) {
		store_event_append(im->st, name, now, "imported",
				   "certbot lineage expired: registered for a "
				   "new certificate");
		printf("registered %s (lineage %s expired: a new certificate "
		       "will be issued)\n",
		       name, lineage);
		im->registered++;
		return;
	}
	if (im->cfg->store.write_live) {
		/* the key is the nginx workers' before it is in place */
		rc = store_live_write_as(
		    im->cfg->store.live_dir, name, chain, key,
		    im->chown_keys ? im->uid : (uid_t)-1,
		    im->chown_keys ? im->gid : (gid_t)-1);
		if (rc == 0 && im->chown_keys)
			rc = nginx_key_chown(im->cfg->store.live_dir, name,
					     im->uid, im->gid);
		if (rc < 0) {
			printf("failed %s: cannot write its live/ files: %s\n",
			       name, strerror(-rc));
			im->failed++;
			return;
		}
	}
	snprintf(c.info.domain, sizeof(c.info.domain), "%s", name);
	snprintf(c.info.serial, sizeof(c.info.serial), "%s", info->serial);
	snprintf(c.info.issuer, sizeof(c.info.issuer), "%s", info->issuer_cn);
	c.info.not_before_ms = info->not_before * 1000;
	c.info.not_after_ms = info->not_after * 1000;
	c.info.ari_start_ms = c.info.ari_end_ms = STORE_NO_TIME;
	c.chain_pem = (char *)chain;
	c.key_pem = (char *)key;
	rc = store_cert_insert(
	    im->st, &c, 0,
	    engine_renew_first(c.info.not_before_ms, c.info.not_after_ms,
			       im->cfg->renew.ari, now,
			       engine_renew_seed(info->serial)),
	    now, NULL);
	if (rc < 0) {
		printf("failed %s: cannot store the certificate: %s\n", name,
		       store_errmsg(im->st));
		im->failed++;
		return;
	}
	snprintf(why, sizeof(why),
		 "certificate %s imported from certbot lineage %s",
		 info->serial, lineage);
	store_event_append(im->st, name, now, "imported", why);
	day(info->not_after, until, sizeof(until));
	printf("imported %s (valid until %s)\n", name, until);
	im->imported++;
}

static void import_lineage(struct imp *im, const char *lineage)
{
	char path[4400], fb[4400], err[300];
	char *text = NULL, *chain = NULL, *key = NULL;
	struct nginx_certbot_conf conf;
	struct x509_info info = {0};
	X509 *leaf = NULL;
	EVP_PKEY *pk = NULL;
	size_t len;
	int rc, valid;

	snprintf(path, sizeof(path), "%s/renewal/%s.conf", im->dir, lineage);
	rc = fsio_read_all(path, 1u << 20, &text, &len);
	if (rc < 0 ||
	    nginx_certbot_conf_parse(text, len, &conf, err, sizeof(err)) < 0) {
		printf("failed lineage %s: %s: %s\n", lineage, path,
		       rc < 0 ? strerror(-rc) : err);
		im->failed++;
		goto out;
	}
	snprintf(fb, sizeof(fb), "%s/live/%s/fullchain.pem", im->dir, lineage);
	rc = read_pem(conf.fullchain, fb, &chain);
	if (rc == 0) {
		snprintf(fb, sizeof(fb), "%s/live/%s/privkey.pem", im->dir,
			 lineage);
		rc = read_pem(conf.privkey, fb, &key);
	}
	if (rc < 0) {
		printf("failed lineage %s: cannot read its fullchain.pem and "
		       "privkey.pem: %s\n",
		       lineage, strerror(-rc));
		im->failed++;
		goto out;
	}
	leaf = x509_from_pem(chain, strlen(chain));
	pk = key_from_pem(key, strlen(key));
	if (!leaf || !pk || x509_inspect(leaf, &info) < 0 ||
	    x509_key_matches(leaf, pk) != 1) {
		printf("failed lineage %s: %s\n", lineage,
		       !leaf || !pk ? "fullchain.pem or privkey.pem does not "
				      "parse"
				    : "privkey.pem is not the key of the "
				      "certificate");
		im->failed++;
		goto out;
	}
	valid = info.not_after * 1000 > clock_wall_ms();
	for (size_t i = 0; i < info.n_names; i++)
		import_name(im, lineage, info.names[i], chain, key, &info,
			    valid);
out:
	x509_info_free(&info);
	X509_free(leaf);
	EVP_PKEY_free(pk);
	if (key)
		OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(chain);
	free(text);
}

static const char import_usage[] =
    "usage: certherd [-c FILE] [--set section.key=value]... import-certbot "
    "DIR\n"
    "\n"
    "Register the domains of a certbot configuration directory (DIR holds\n"
    "renewal/NAME.conf and live/NAME/) and keep their certificates: each\n"
    "valid one becomes its domains' current certificate and is renewed\n"
    "when due, not re-issued. docs/nginx.md describes the migration.\n";

int cli_import_certbot(const struct cli_global *g, int argc, char **argv)
{
	struct config cfg;
	struct imp im = {0};
	char err[1024], path[4200];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dh = NULL;
	int help, status = 1;

	help = argc > 1 &&
	       (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
	if (help || argc != 2 || argv[1][0] == '-') {
		fputs(import_usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	if (cli__plain_config(g, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "certherd import-certbot: %s\n", err);
		return 2;
	}
	im.cfg = &cfg;
	im.dir = argv[1];
	if (cfg.nginx.key_owner[0]) {
		if (nginx_owner_parse(cfg.nginx.key_owner, &im.uid, &im.gid,
				      err, sizeof(err)) < 0) {
			fprintf(stderr, "certherd import-certbot: %s\n", err);
			goto out;
		}
		im.chown_keys = 1;
	}
	snprintf(path, sizeof(path), "%s/renewal", im.dir);
	dh = opendir(path);
	if (!dh) {
		fprintf(stderr,
			"certherd import-certbot: cannot read %s: %s (DIR is "
			"certbot's configuration directory, e.g. "
			"/etc/letsencrypt)\n",
			path, strerror(errno));
		goto out;
	}
	while ((e = readdir(dh))) {
		size_t l = strlen(e->d_name);

		if (l <= 5 || strcmp(e->d_name + l - 5, ".conf") != 0 ||
		    e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 64;
			if (cap > LINEAGES_MAX ||
			    !(nv = realloc(names, cap * sizeof(*nv)))) {
				fprintf(stderr, "certherd import-certbot: too "
						"many lineages\n");
				goto out;
			}
			names = nv;
		}
		if (!(names[n] = strndup(e->d_name, l - 5)))
			goto out;
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	if (store_open(cfg.store.state_dir, &im.st, err, sizeof(err)) < 0) {
		fprintf(stderr, "certherd import-certbot: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		import_lineage(&im, names[i]);
	printf("%zu lineages: %u domains imported with their certificate, %u "
	       "registered for a new one, %u skipped, %u failed\n",
	       n, im.imported, im.registered, im.skipped, im.failed);
	status = im.failed ? 1 : 0;
out:
	if (dh)
		closedir(dh);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	store_close(im.st);
	config_free(&cfg);
	return status;
}
