/*
 * nginx_files.c — what nginx needs of the live/ files beyond their
 * content: who may read the keys, and getting rid of a removed domain's
 * files once its retention has passed.
 *
 * Ownership: store_live_write makes privkey.pem 0600, owned by certherd.
 * nginx reads the keys of server blocks in its master process (root on a
 * usual install: nothing to do), but with ssl_certificate paths holding
 * variables it reads them in the workers, as nginx's `user` (www-data):
 * nginx.key_owner gives each key to that user, still 0600.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nginx/nginx.h"
#include "store/store.h"

/* The files store_live_write creates in a domain's directory. */
static const char *const live_files[] = {"privkey.pem", "cert.pem", "chain.pem",
					 "fullchain.pem"};

int nginx_owner_parse(const char *spec, uid_t *uid, gid_t *gid, char *err,
		      size_t errsz)
{
	char user[256];
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	struct passwd *pw;

	if (n == 0 || n >= sizeof(user) || (colon && !colon[1])) {
		snprintf(err, errsz,
			 "nginx.key_owner: \"%.80s\" is not user or "
			 "user:group",
			 spec);
		return -EINVAL;
	}
	memcpy(user, spec, n);
	user[n] = '\0';
	pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errsz, "nginx.key_owner: no user \"%s\"", user);
		return -ENOENT;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (colon) {
		struct group *gr = getgrnam(colon + 1);

		if (!gr) {
			snprintf(err, errsz,
				 "nginx.key_owner: no group \"%.80s\"",
				 colon + 1);
			return -ENOENT;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

/* live_dir/<dir>: the directory of name's files, where store_live_write
 * puts them (a wildcard's is _wildcard.BASE: the base name's directory is
 * the plain name's, whose files must never be taken for the wildcard's,
 * nor deleted with it). */
static int dir_of(const char *live_dir, const char *name, char *out,
		  size_t outsz)
{
	char dn[STORE_NAME_MAX + 16];
	int w;

	if (!live_dir || !name || !*name || strchr(name, '/') ||
	    name[0] == '.' || strlen(name) > STORE_NAME_MAX)
		return -EINVAL;
	w = snprintf(out, outsz, "%s/%s", live_dir,
		     store_live_dirname(name, dn, sizeof(dn)));
	return w < 0 || (size_t)w >= outsz ? -ENAMETOOLONG : 0;
}

int nginx_key_chown(const char *live_dir, const char *name, uid_t uid,
		    gid_t gid)
{
	char path[4400];
	int rc = dir_of(live_dir, name, path, sizeof(path) - 16);

	if (rc < 0)
		return rc;
	strcat(path, "/privkey.pem");
	/* lchown: never follow a link someone put there to another file */
	if (lchown(path, uid, gid) < 0 || chmod(path, 0600) < 0)
		return -errno;
	return 0;
}

int nginx_live_delete(const char *live_dir, const char *name)
{
	char dir[4400], path[4500];
	int rc = dir_of(live_dir, name, dir, sizeof(dir)), any = 0;

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(live_files) / sizeof(live_files[0]);
	     i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, live_files[i]);
		if (unlink(path) == 0)
			any = 1;
		else if (errno != ENOENT)
			return -errno;
	}
	/* ENOTEMPTY: someone keeps other files there; leave them */
	if (rmdir(dir) == 0)
		any = 1;
	else if (errno != ENOENT && errno != ENOTEMPTY)
		return -errno;
	return any;
}

int nginx_live_present(const char *live_dir, const char *name)
{
	char dir[4400], path[4500];
	struct stat st;

	if (dir_of(live_dir, name, dir, sizeof(dir)) < 0)
		return 0;
	snprintf(path, sizeof(path), "%s/fullchain.pem", dir);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "%s/privkey.pem", dir);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
