/*
 * unit_tmp.h — what the unit tests need to clean up the mkdtemp
 * directories they work in. Linked into every unit test (tests/meson.build).
 */
#ifndef CERTHERD_TEST_UNIT_TMP_H
#define CERTHERD_TEST_UNIT_TMP_H

/* Remove dir and everything below it, children first, not following
 * links: 0, or -1 (errno set) when something could not be removed. */
int unit_rm_tree(const char *dir);

#endif
