/*
 * fsio — file I/O with crash-safe semantics.
 *
 * Keys and certificates are replaced while servers read them and while
 * the machine may lose power. fsio_write_atomic therefore never writes
 * into the live file: it writes a temp file in the same directory (so
 * rename stays on one filesystem and is atomic), fsyncs it, renames it
 * over the target and fsyncs the directory so the rename itself is
 * durable. A reader sees the old contents or the new, never a mix, and a
 * crash leaves at worst a stray "*.tmp.XXXXXX" file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

static int write_full(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* fsync the directory holding path, so a rename into it survives a crash. */
static int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	int fd = -1;
	int rc;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir) {
		rc = -ENOMEM;
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = 0;
	/* Some filesystems cannot sync a directory and say EINVAL; there is
	 * nothing more to do for them. */
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int fsio_stage(const char *path, const void *data, size_t len, unsigned mode,
	       char **tmp_out)
{
	static const char suffix[] = ".tmp.XXXXXX";
	char *tmp = NULL;
	size_t plen;
	int fd = -1;
	int rc;

	*tmp_out = NULL;
	if (!path || !*path || (!data && len > 0)) {
		rc = -EINVAL;
		goto out;
	}
	plen = strlen(path);
	tmp = malloc(plen + sizeof(suffix));
	if (!tmp) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, suffix, sizeof(suffix));

	/* mkostemp opens with O_CREAT|O_EXCL and mode 0600, so the file is
	 * never readable by others before fchmod, even for a private key. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		free(tmp);
		tmp = NULL; /* nothing was created, nothing to unlink */
		goto out;
	}
	if (fchmod(fd, (mode_t)mode) < 0) {
		rc = -errno;
		goto out;
	}
	rc = write_full(fd, data, len);
	if (rc < 0)
		goto out;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	/* close can report delayed write errors (NFS); it counts. */
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	*tmp_out = tmp;
	tmp = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

int fsio_commit(char *tmp, const char *path, int sync_dir)
{
	int rc = 0;

	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
	}
	free(tmp);
	/* The new contents are in place; a failure to sync the directory
	 * only means the rename may not survive a crash, which the caller
	 * should still hear about. */
	if (rc == 0 && sync_dir)
		rc = fsync_parent(path);
	return rc;
}

void fsio_discard(char *tmp)
{
	if (!tmp)
		return;
	unlink(tmp);
	free(tmp);
}

int fsio_write_atomic(const char *path, const void *data, size_t len,
		      unsigned mode)
{
	char *tmp;
	int rc = fsio_stage(path, data, len, mode, &tmp);

	return rc < 0 ? rc : fsio_commit(tmp, path, 1);
}

int fsio_mkdirs(const char *path, unsigned mode)
{
	struct stat st;
	char *buf = NULL;
	char *p;
	int rc = 0;

	if (!path || !*path) {
		rc = -EINVAL;
		goto out;
	}
	buf = strdup(path);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	/* Create each prefix ending before a '/', then the whole path.
	 * Leading slashes are skipped: "/" always exists. */
	p = buf;
	while (*p == '/')
		p++;
	for (;;) {
		char *slash = strchr(p, '/');
		char saved = 0;

		if (slash) {
			saved = *slash;
			*slash = '\0';
		}
		if (*p && mkdir(buf, (mode_t)mode) < 0) {
			/* Another process may have made it meanwhile; only a
			 * non-directory in the way is an error. */
			if (errno != EEXIST) {
				rc = -errno;
				goto out;
			}
			if (stat(buf, &st) < 0) {
				rc = -errno;
				goto out;
			}
			if (!S_ISDIR(st.st_mode)) {
				rc = -ENOTDIR;
				goto out;
			}
		}
		if (!slash)
			break;
		*slash = saved;
		p = slash + 1;
	}
out:
	free(buf);
	return rc;
}

int fsio_read_all(const char *path, size_t max, char **out, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, used = 0;
	int fd = -1;
	int rc;

	if (!path || !out || !len || max > SIZE_MAX - 2) {
		rc = -EINVAL;
		goto out;
	}
	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* Do not trust st_size (pipes, /proc): read until EOF, growing the
	 * buffer, and stop one byte past max to detect an oversized file. */
	for (;;) {
		ssize_t r;

		if (used == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nbuf;

			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= used) {
				rc = -EFBIG;
				goto out;
			}
			nbuf = realloc(buf, ncap + 1);
			if (!nbuf) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		r = read(fd, buf + used, cap - used);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max) {
			rc = -EFBIG;
			goto out;
		}
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			rc = -ENOMEM;
			goto out;
		}
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
