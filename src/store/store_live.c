/*
 * store_live — certbot's on-disk layout, for nginx mode and for operators
 * whose tools expect it:
 *
 *   live_dir/<domain>/cert.pem       leaf certificate        0644
 *                     chain.pem      intermediates           0644
 *                     fullchain.pem  leaf + intermediates    0644
 *                     privkey.pem    private key             0600
 *
 * The key must match the leaf. All four files are staged (written and
 * fsynced under temp names) before any is renamed, then renamed in a row
 * with one directory fsync: a reader never sees half a file, and a failure
 * while staging leaves the old set whole. Only a crash between the renames
 * can leave a mixed set; the daemon reloads nginx after this returns, and
 * the database stays the source of truth, so a restart rewrites them.
 *
 * The staged key gets its final owner (store_live_write_as: nginx's
 * worker user in nginx mode's sni-variable strategy) before it is renamed:
 * a reader never finds a new privkey.pem it cannot open. fullchain.pem
 * and privkey.pem, the pair nginx reads, are renamed last and back to
 * back: a reader that opens one before and the other after that instant
 * (microseconds) gets a mismatched pair, which nginx refuses for that one
 * handshake; two files cannot be replaced at once (docs/nginx.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "store/store_internal.h"
#include "util/util.h"

#define LIVE_FILES 4

/* Refuse a key that is not the leaf's: installed together they would make
 * every handshake fail. */
static int live_key_matches(const char *leaf, const char *key_pem,
			    size_t key_len)
{
	X509 *cert = x509_from_pem(leaf, strlen(leaf));
	EVP_PKEY *key = key_from_pem(key_pem, key_len);
	int rc = -EINVAL;

	if (cert && key && x509_key_matches(cert, key) == 1)
		rc = 0;
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

const char *store_live_dirname(const char *domain, char *buf, size_t sz)
{
	if (strncmp(domain, "*.", 2) == 0)
		snprintf(buf, sz, "_wildcard.%s", domain + 2);
	else
		snprintf(buf, sz, "%s", domain);
	return buf;
}

int store_live_write(const char *live_dir, const char *domain,
		     const char *chain_pem, const char *key_pem)
{
	return store_live_write_as(live_dir, domain, chain_pem, key_pem,
				   (uid_t)-1, (gid_t)-1);
}

int store_live_write_as(const char *live_dir, const char *domain,
			const char *chain_pem, const char *key_pem,
			uid_t key_uid, gid_t key_gid)
{
	char dname[NAME_MAX_LEN + 16];
	/* in rename order: the pair nginx reads last, back to back */
	static const char *const names[LIVE_FILES] = {
	    "cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"};
	enum { KEY = LIVE_FILES - 1 };
	char dir[4300], path[LIVE_FILES][4400];
	char *tmp[LIVE_FILES] = {NULL};
	const char *data[LIVE_FILES];
	char *leaf = NULL, *rest = NULL, *full = NULL;
	size_t chain_len, key_len, ll, rl;
	int rc = -EINVAL, i;

	/* the name becomes a path component: store__name_ok rules out "/",
	 * ".." and empty labels; a wildcard gets _wildcard.BASE */
	if (store__name_ok(domain) || store__str_ok(live_dir, 4096) ||
	    !chain_pem || !key_pem)
		goto out;
	domain = store_live_dirname(domain, dname, sizeof(dname));
	chain_len = strnlen(chain_pem, STORE_PEM_MAX + 1);
	key_len = strnlen(key_pem, STORE_PEM_MAX + 1);
	if (chain_len == 0 || chain_len > STORE_PEM_MAX || key_len == 0 ||
	    key_len > STORE_PEM_MAX)
		goto out;
	rc = x509_split_chain(chain_pem, chain_len, &leaf, &rest);
	if (rc < 0)
		goto out;
	rc = live_key_matches(leaf, key_pem, key_len);
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
	data[0] = leaf;
	data[1] = rest;
	data[2] = full;
	data[KEY] = key_pem;
	snprintf(dir, sizeof(dir), "%s/%s", live_dir, domain);
	rc = fsio_mkdirs(dir, 0755);
	/* stage all four (written and fsynced), then rename them in a row:
	 * a failure while staging leaves the old set untouched */
	for (i = 0; rc == 0 && i < LIVE_FILES; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/%s", dir, names[i]);
		rc = fsio_stage(path[i], data[i], strlen(data[i]),
				i == KEY ? 0600 : 0644, &tmp[i]);
	}
	/* the key's owner before it is in place (lchown: tmp is the regular
	 * file fsio_stage just created with O_EXCL). Best effort: without
	 * it the key stays certherd's, as without key_owner, and the caller
	 * hands it over afterwards and says why that failed */
	if (rc == 0 && (key_uid != (uid_t)-1 || key_gid != (gid_t)-1) &&
	    lchown(tmp[KEY], key_uid, key_gid) < 0)
		log_warn("store", domain,
			 "cannot give the new privkey.pem to uid %ld before "
			 "it is in place: %s",
			 (long)key_uid, strerror(errno));
	for (i = 0; rc == 0 && i < LIVE_FILES; i++) {
		rc = fsio_commit(tmp[i], path[i], i == LIVE_FILES - 1);
		tmp[i] = NULL; /* commit frees it, on failure too */
	}
	if (rc < 0)
		log_warn("store", domain, "cannot write live/ files in %s: %s",
			 dir, strerror(-rc));
out:
	for (i = 0; i < LIVE_FILES; i++)
		fsio_discard(tmp[i]);
	free(leaf);
	free(rest);
	free(full);
	return rc;
}

/* A leftover of fsio_stage: "<file>.pem.tmp.XXXXXX". */
static int is_stage_leftover(const char *n)
{
	const char *t = strstr(n, ".pem.tmp.");

	return t && strlen(t) == strlen(".pem.tmp.") + 6;
}

int store_live_sweep(const char *live_dir, const char *domain)
{
	char path[4096], dname[NAME_MAX_LEN + 16];
	struct dirent *f;
	DIR *sub;
	int removed = 0;

	if (!live_dir || !domain || !*domain || strchr(domain, '/') ||
	    domain[0] == '.')
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", live_dir,
		 store_live_dirname(domain, dname, sizeof(dname)));
	if (!(sub = opendir(path)))
		return errno == ENOENT ? 0 : -errno;
	while ((f = readdir(sub)))
		if (is_stage_leftover(f->d_name) &&
		    unlinkat(dirfd(sub), f->d_name, 0) == 0)
			removed++;
	closedir(sub);
	return removed;
}
