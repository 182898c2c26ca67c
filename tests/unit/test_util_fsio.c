/*
 * Unit tests for fsio: atomic writes land with the requested mode, replace
 * the old contents and leave no temp file; failures leave nothing behind;
 * mkdirs and read_all including their size limit.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/util.h"
#include "unit_tmp.h"

struct fx {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/certherd-fsio-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/file.pem", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	unit_rm_tree(fx->dir);
	free(fx);
	return 0;
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_creates_with_mode(void **state)
{
	struct fx *fx = *state;
	struct stat st;
	char *data;
	size_t len;

	assert_int_equal(fsio_write_atomic(fx->path, "hello", 5, 0600), 0);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fsio_read_all(fx->path, 100, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(count_entries(fx->dir), 1);
}

static void test_write_replaces(void **state)
{
	struct fx *fx = *state;
	struct stat st;
	char *data;
	size_t len;

	assert_int_equal(
	    fsio_write_atomic(fx->path, "old contents, long", 18, 0600), 0);
	assert_int_equal(fsio_write_atomic(fx->path, "new", 3, 0644), 0);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(fsio_read_all(fx->path, 100, &data, &len), 0);
	assert_int_equal(len, 3);
	assert_string_equal(data, "new");
	free(data);
	/* no "file.pem.tmp.*" left over */
	assert_int_equal(count_entries(fx->dir), 1);

	/* empty contents are a valid file */
	assert_int_equal(fsio_write_atomic(fx->path, NULL, 0, 0600), 0);
	assert_int_equal(fsio_read_all(fx->path, 100, &data, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);
}

static void test_write_missing_dir(void **state)
{
	struct fx *fx = *state;
	char bad[200];

	snprintf(bad, sizeof(bad), "%s/nope/file.pem", fx->dir);
	assert_int_equal(fsio_write_atomic(bad, "x", 1, 0600), -ENOENT);
	assert_int_equal(count_entries(fx->dir), 0);
	assert_int_equal(fsio_write_atomic("", "x", 1, 0600), -EINVAL);
}

static void test_write_failed_rename(void **state)
{
	struct fx *fx = *state;

	/* a directory in the way makes rename fail after the temp file was
	 * written: the temp file must be removed again */
	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_true(fsio_write_atomic(fx->path, "x", 1, 0600) < 0);
	assert_int_equal(count_entries(fx->dir), 1);
}

static void test_mkdirs(void **state)
{
	struct fx *fx = *state;
	char deep[200];
	struct stat st;

	snprintf(deep, sizeof(deep), "%s/a/b//c/", fx->dir);
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);
	snprintf(deep, sizeof(deep), "%s/a/b/c", fx->dir);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* existing directories are fine */
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);

	/* a file in the way is not */
	assert_int_equal(fsio_write_atomic(fx->path, "x", 1, 0600), 0);
	snprintf(deep, sizeof(deep), "%s/sub", fx->path);
	assert_int_equal(fsio_mkdirs(deep, 0700), -ENOTDIR);
	assert_int_equal(fsio_mkdirs("", 0700), -EINVAL);
}

static void test_read_all(void **state)
{
	struct fx *fx = *state;
	char big[10000];
	char *data = (char *)"sentinel";
	size_t len = 7;

	memset(big, 'z', sizeof(big));
	assert_int_equal(fsio_write_atomic(fx->path, big, sizeof(big), 0600),
			 0);
	assert_int_equal(fsio_read_all(fx->path, sizeof(big), &data, &len), 0);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(data, big, sizeof(big));
	assert_int_equal(data[len], '\0');
	free(data);

	assert_int_equal(fsio_read_all(fx->path, sizeof(big) - 1, &data, &len),
			 -EFBIG);
	assert_null(data);
	assert_int_equal(fsio_read_all(fx->path, 0, &data, &len), -EFBIG);

	snprintf(big, sizeof(big), "%s/missing", fx->dir);
	assert_int_equal(fsio_read_all(big, 100, &data, &len), -ENOENT);
}

static void test_clock(void **state)
{
	int64_t a, b;

	(void)state;
	a = clock_mono_ms();
	b = clock_mono_ms();
	assert_true(b >= a);
	/* after 2020-01-01 */
	assert_true(clock_wall_s() > 1577836800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_creates_with_mode, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_write_replaces, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_write_missing_dir, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_write_failed_rename, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_all, setup, teardown),
	    cmocka_unit_test(test_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
