/*
 * unit_tmp.c — see unit_tmp.h.
 */
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "unit_tmp.h"

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int unit_rm_tree(const char *dir)
{
	return nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
