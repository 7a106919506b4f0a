/* The configuration file (--config FILE): the same options as the command
 * line, one per line, read at start and again on every reload.
 *
 *     # comments and blank lines are ignored
 *     listen 127.0.0.1:5353        an option and its value ("--" optional)
 *     --zone-file example.org=/etc/svcdns/example.org.zone
 *     ttl=30                       or name=value
 *     log-queries                  a flag alone
 *
 * The file's options come first and the command line's after them: for an
 * option given once, the command line wins; repeatable options (--listen,
 * --zone-file, --upstream...) add up.
 *
 * Owns: reading the file, merging it with the command line, and collecting
 * the options of a merged command line (for comparing two configurations).
 * Must never: apply anything; daemon/lifecycle.h decides what a reload changes. */
#ifndef SVCDNS_CONFIG_H
#define SVCDNS_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#define CONFIG_MAX_BYTES (1u << 20)

/* At start, before getopt: when argv names --config FILE, replaces *argv with
 * argv[0], the file's options, then the rest of the command line. The
 * original command line is kept for reloads. Prints the reason and returns
 * a negative errno when the file cannot be read or parsed. */
int config_merge_argv(int *argc, char ***argv);

/* The --config path of the command line, or NULL. */
const char *config_path(void);

/* The original command line (without the file's options). */
void config_original_argv(int *argc, char *const **argv);

/* Reads `path` into tokens ("--name", "value"...). *tokens is malloc'd (free
 * with config_tokens_free). On error writes the reason (with the line) to
 * err and returns a negative errno. */
int config_read_file(const char *path, char ***tokens, int *n, char *err, size_t errlen);
void config_tokens_free(char **tokens, int n);

/* The options of a merged command line, in order. */
struct config_entry {
	const char *name; /* the long option's name (points into the option table) */
	char *value;	  /* NULL for a flag */
};

struct config_set {
	struct config_entry *e;
	size_t n;
};

/* Runs getopt_long over argv[0..argc) with `opts` (which must be the
 * program's table) and collects every option. An unknown option, a missing
 * value or a stray argument is an error (reason in err). */
int config_collect(const struct option *opts, int argc, char **argv, struct config_set *out,
		   char *err, size_t errlen);
void config_set_free(struct config_set *s);

/* The values an option has in `s`, in order; returns how many (up to max are
 * stored). */
size_t config_values(const struct config_set *s, const char *name, const char **vals, size_t max);
/* Whether `name` has the same values, in the same order, in a and b. */
int config_same(const struct config_set *a, const struct config_set *b, const char *name);

#endif
