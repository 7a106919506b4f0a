/* Bounded whole-file reads; see file.h. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max, char **out, size_t *out_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int rc = 0;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	/* Read to the end rather than trust st_size: the file may be growing.
	 * One byte past `max` is enough to know it is too big. */
	size_t cap = (size_t)st.st_size + 1;
	if (cap < 4096)
		cap = 4096;
	if (cap > max + 1)
		cap = max + 1;
	if (!(buf = malloc(cap + 1))) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				rc = -EFBIG;
				goto out;
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		rc = -EFBIG;
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	if (out_len)
		*out_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}
