/*
 * store_live — certbot's on-disk layout, for nginx mode and for operators
 * whose tools expect it:
 *
 *   live_dir/<domain>/cert.pem       leaf certificate        0644
 *                     chain.pem      intermediates           0644
 *                     fullchain.pem  leaf + intermediates    0644
 *                     privkey.pem    private key             0600
 *
 * Each file is replaced atomically (fsio_write_atomic: temp, fsync,
 * rename, fsync dir), so a reader never sees half a file. The four files
 * are not swapped as one unit; the daemon reloads nginx only after
 * store_live_write returned, so nginx never loads a mixed set. privkey.pem
 * goes first: a crash in between leaves an old certificate with a new key
 * at worst, which the restart rewrites from the store (the database is
 * the source of truth, these files are a copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "store/store_internal.h"
#include "util/util.h"

static int live_file(const char *dir, const char *file, const char *data,
		     unsigned mode)
{
	char path[4400];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	return fsio_write_atomic(path, data, strlen(data), mode);
}

int store_live_write(const char *live_dir, const char *domain,
		     const char *chain_pem, const char *key_pem)
{
	char dir[4300];
	char *leaf = NULL, *rest = NULL, *full = NULL;
	size_t chain_len, key_len, ll, rl;
	int rc = -EINVAL;

	/* the name becomes a path component: store__name_ok rules out "/",
	 * ".." and empty labels; wildcards get certbot's plain name */
	if (store__name_ok(domain) || store__str_ok(live_dir, 4096) ||
	    !chain_pem || !key_pem)
		goto out;
	if (domain[0] == '*')
		domain += 2;
	chain_len = strnlen(chain_pem, STORE_PEM_MAX + 1);
	key_len = strnlen(key_pem, STORE_PEM_MAX + 1);
	if (chain_len == 0 || chain_len > STORE_PEM_MAX || key_len == 0 ||
	    key_len > STORE_PEM_MAX)
		goto out;
	rc = x509_split_chain(chain_pem, chain_len, &leaf, &rest);
	if (rc < 0)
		goto out;
	ll = strlen(leaf);
	rl = strlen(rest);
	rc = -ENOMEM;
	full = malloc(ll + rl + 1);
	if (!full)
		goto out;
	memcpy(full, leaf, ll);
	memcpy(full + ll, rest, rl + 1);
	snprintf(dir, sizeof(dir), "%s/%s", live_dir, domain);
	rc = fsio_mkdirs(dir, 0755);
	if (rc < 0)
		goto out;
	rc = live_file(dir, "privkey.pem", key_pem, 0600);
	if (rc == 0)
		rc = live_file(dir, "cert.pem", leaf, 0644);
	if (rc == 0)
		rc = live_file(dir, "chain.pem", rest, 0644);
	if (rc == 0)
		rc = live_file(dir, "fullchain.pem", full, 0644);
	if (rc < 0)
		log_warn("store", domain, "cannot write live/ files in %s: %s",
			 dir, strerror(-rc));
out:
	free(leaf);
	free(rest);
	free(full);
	return rc;
}
