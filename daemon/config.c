/* The --config file's syntax: one option per line, split into name, value
 * and line number for daemon/options.c. See config.h. */
#include "daemon/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_lines_free(struct config_line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(lines[i].name);
		free(lines[i].value);
	}
	free(lines);
}

static int push(struct config_line **lines, size_t *n, size_t *cap, const char *name,
		size_t name_len, const char *value, unsigned lineno)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct config_line *nl = realloc(*lines, nc * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		*lines = nl;
		*cap = nc;
	}
	struct config_line *l = &(*lines)[*n];
	l->name = strndup(name, name_len);
	l->value = value ? strdup(value) : NULL;
	l->line = lineno;
	if (!l->name || (value && !l->value)) {
		free(l->name);
		free(l->value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* Reads the whole file (at most CONFIG_MAX_BYTES of text) into *text. */
static int slurp(const char *path, char **text, char *err, size_t errlen)
{
	int ret = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	char *t = malloc(CONFIG_MAX_BYTES + 1);
	size_t len = t ? fread(t, 1, CONFIG_MAX_BYTES + 1, f) : 0;
	if (!t)
		ret = -ENOMEM;
	else if (ferror(f))
		ret = -EIO;
	else if (len > CONFIG_MAX_BYTES)
		ret = -EFBIG;
	else if (memchr(t, '\0', len))
		ret = -EINVAL;
	fclose(f);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 ret == -ENOMEM	 ? "out of memory"
			 : ret == -EIO	 ? "cannot be read"
			 : ret == -EFBIG ? "larger than 1 MiB"
					 : "not a text file");
		free(t);
		return ret;
	}
	t[len] = '\0';
	*text = t;
	return 0;
}

int config_read_file(const char *path, struct config_line **lines, size_t *n, char *err,
		     size_t errlen)
{
	char *text = NULL;
	struct config_line *out = NULL;
	size_t nl = 0, cap = 0;
	int ret = slurp(path, &text, err, errlen);
	if (ret < 0)
		return ret;
	unsigned lineno = 0;
	for (char *line = text, *next; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (isspace((unsigned char)*line))
			line++;
		size_t ll = strlen(line);
		while (ll && isspace((unsigned char)line[ll - 1]))
			line[--ll] = '\0';
		if (!ll || line[0] == '#')
			continue;
		if (line[0] == '-' && line[1] == '-')
			line += 2;
		size_t name_len = 0;
		while (line[name_len] && !isspace((unsigned char)line[name_len]) &&
		       line[name_len] != '=')
			name_len++;
		const char *val = line + name_len;
		if (*val == '=')
			val++;
		while (isspace((unsigned char)*val))
			val++;
		if (name_len == 0 || line[0] == '-') {
			ret = -EINVAL;
			snprintf(err, errlen, "%s:%u: expected an option name", path, lineno);
			goto out;
		}
		if ((ret = push(&out, &nl, &cap, line, name_len, *val ? val : NULL, lineno)) < 0) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto out;
		}
	}
	*lines = out;
	*n = nl;
	out = NULL;
	nl = 0;
out:
	config_lines_free(out, nl);
	free(text);
	return ret;
}
