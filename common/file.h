/* Reading a whole file, bounded: manifests, kubeconfigs, tokens, zone files.
 *
 * Owns: the read loop (EINTR, files that grow while read, the size limit).
 * Must never: log; the caller knows what the file is and says so. */
#ifndef SVCDNS_FILE_H
#define SVCDNS_FILE_H

#include <stddef.h>

/* Reads the regular file at `path` to its end into a malloc'd buffer with a
 * NUL after the last byte (not counted in *out_len). Returns 0, -EFBIG when
 * it holds more than `max` bytes, -EINVAL when it is not a regular file, or
 * -errno. *out is NULL on failure. */
int file_read_all(const char *path, size_t max, char **out, size_t *out_len);

#endif
