/* A temporary directory per cmocka test, made by its setup and removed with
 * everything in it by its teardown, which cmocka runs even when the test
 * failed: no test leaves files (tokens, keys, manifests) behind.
 *
 * Owns: the directory under $TMPDIR (or /tmp) and its removal.
 * Must never: follow a symbolic link out of the directory while removing.
 * Called from the test program's only thread. */
#ifndef SVCDNS_TEST_TMPDIR_H
#define SVCDNS_TEST_TMPDIR_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static inline int tmpdir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path) == 0 ? 0 : -1;
}

/* cmocka setup: *state becomes the path of a new empty directory. */
static inline int tmpdir_setup(void **state)
{
	const char *base = getenv("TMPDIR");
	char *dir = malloc(512);
	if (!dir)
		return -1;
	snprintf(dir, 512, "%s/svcdns-unit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

/* cmocka teardown: removes the directory and whatever is left in it (a
 * test may have removed it already). */
static inline int tmpdir_teardown(void **state)
{
	char *dir = *state;
	int rc = 0;
	if (dir && nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT) {
		perror(dir);
		rc = -1;
	}
	free(dir);
	*state = NULL;
	return rc;
}

#endif
