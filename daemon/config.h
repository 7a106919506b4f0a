/* The configuration file (--config FILE): the same options as the command
 * line, one per line, read at start and again on every reload.
 *
 *     # comments and blank lines are ignored
 *     listen 127.0.0.1:5353        an option and its value ("--" optional)
 *     --zone-file example.org=/etc/svcdns/example.org.zone
 *     ttl=30                       or name=value
 *     log-queries                  a flag alone
 *
 * Owns: the file's syntax: splitting it into (name, value, line) entries.
 * Must never: know what an option means or apply one; daemon/options.c
 * looks each name up in the option table, parses its value and orders the
 * file's options before the command line's. */
#ifndef SVCDNS_CONFIG_H
#define SVCDNS_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_BYTES (1u << 20)

struct config_line {
	char *name;  /* without "--" */
	char *value; /* NULL when the line holds a name alone */
	unsigned line;
};

/* Reads `path` into *lines (free with config_lines_free). On error writes
 * the reason, naming the file and line, to err and returns a negative errno. */
int config_read_file(const char *path, struct config_line **lines, size_t *n, char *err,
		     size_t errlen);
void config_lines_free(struct config_line *lines, size_t n);

#endif
