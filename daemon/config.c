/* The --config file: one option per line, turned into command-line tokens
 * that go before the real command line. See config.h. */
#include "daemon/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_orig_argc;
static char **g_orig_argv;
static char **g_merged; /* the merged command line, for the life of the process */
static const char *g_path;

void config_tokens_free(char **tokens, int n)
{
	for (int i = 0; i < n; i++)
		free(tokens[i]);
	free(tokens);
}

static int push(char ***tokens, int *n, int *cap, const char *s, size_t len)
{
	if (*n == *cap) {
		int nc = *cap ? *cap * 2 : 16;
		char **nt = realloc(*tokens, (size_t)nc * sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		*tokens = nt;
		*cap = nc;
	}
	char *t = malloc(len + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, s, len);
	t[len] = '\0';
	(*tokens)[(*n)++] = t;
	return 0;
}

int config_read_file(const char *path, char ***tokens, int *n, char *err, size_t errlen)
{
	char *text = NULL, **tk = NULL;
	int nt = 0, cap = 0, ret = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	text = malloc(CONFIG_MAX_BYTES + 1);
	if (!text) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	size_t len = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f) || len > CONFIG_MAX_BYTES) {
		ret = ferror(f) ? -EIO : -EFBIG;
		snprintf(err, errlen, "%s: %s", path,
			 ret == -EIO ? "cannot be read" : "larger than 1 MiB");
		goto out;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len)) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s: not a text file", path);
		goto out;
	}
	unsigned lineno = 0;
	for (char *line = text, *next; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* Trim; skip blank lines and comments. */
		while (isspace((unsigned char)*line))
			line++;
		size_t ll = strlen(line);
		while (ll && isspace((unsigned char)line[ll - 1]))
			line[--ll] = '\0';
		if (!ll || line[0] == '#')
			continue;
		if (line[0] == '-' && line[1] == '-')
			line += 2;
		size_t nl = 0;
		while (line[nl] && !isspace((unsigned char)line[nl]) && line[nl] != '=')
			nl++;
		const char *val = line + nl;
		if (*val == '=')
			val++;
		while (isspace((unsigned char)*val))
			val++;
		if (nl == 0 || line[0] == '-') {
			ret = -EINVAL;
			snprintf(err, errlen, "%s:%u: expected an option name", path, lineno);
			goto out;
		}
		if (nl == 6 && memcmp(line, "config", 6) == 0) {
			ret = -EINVAL;
			snprintf(err, errlen, "%s:%u: --config cannot name another file", path,
				 lineno);
			goto out;
		}
		char name[128];
		if (nl + 3 > sizeof(name)) {
			ret = -EINVAL;
			snprintf(err, errlen, "%s:%u: option name too long", path, lineno);
			goto out;
		}
		snprintf(name, sizeof(name), "--%.*s", (int)nl, line);
		if ((ret = push(&tk, &nt, &cap, name, strlen(name))) < 0 ||
		    (*val && (ret = push(&tk, &nt, &cap, val, strlen(val))) < 0)) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto out;
		}
	}
	*tokens = tk;
	*n = nt;
	tk = NULL;
	nt = 0;
out:
	config_tokens_free(tk, nt);
	free(text);
	fclose(f);
	return ret;
}

const char *config_path(void)
{
	return g_path;
}

void config_original_argv(int *argc, char *const **argv)
{
	*argc = g_orig_argc;
	*argv = g_orig_argv;
}

int config_merge_argv(int *argc, char ***argv)
{
	char **av = *argv, err[512], **tokens = NULL, **merged;
	int ac = *argc, n = 0;
	g_orig_argc = ac;
	g_orig_argv = av;
	for (int i = 1; i < ac; i++) {
		if (strcmp(av[i], "--") == 0)
			break;
		if (strcmp(av[i], "--config") == 0 && i + 1 < ac)
			g_path = av[i + 1];
		else if (strncmp(av[i], "--config=", 9) == 0)
			g_path = av[i] + 9;
	}
	if (!g_path)
		return 0;
	int ret = config_read_file(g_path, &tokens, &n, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "svcdns: --config %s\n", err);
		return ret;
	}
	/* Kept for the life of the process: getopt's optarg points into it. */
	merged = calloc((size_t)ac + (size_t)n + 1, sizeof(*merged));
	if (!merged) {
		config_tokens_free(tokens, n);
		fprintf(stderr, "svcdns: out of memory\n");
		return -ENOMEM;
	}
	merged[0] = av[0];
	if (n)
		memcpy(merged + 1, tokens, (size_t)n * sizeof(*merged));
	memcpy(merged + 1 + n, av + 1, (size_t)(ac - 1) * sizeof(*merged));
	free(tokens); /* the strings now belong to merged */
	g_merged = merged;
	*argc = ac + n;
	*argv = merged;
	return 0;
}

/* ---- collecting a configuration ------------------------------------------- */

void config_set_free(struct config_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].value);
	free(s->e);
	s->e = NULL;
	s->n = 0;
}

int config_collect(const struct option *opts, int argc, char **argv, struct config_set *out,
		   char *err, size_t errlen)
{
	int ret = 0, c, idx;
	size_t cap = 0;
	memset(out, 0, sizeof(*out));
	/* getopt keeps state between calls: start it afresh, quietly. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, &idx)) != -1) {
		if (c == '?' || c == ':') {
			ret = -EINVAL;
			const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
			snprintf(err, errlen, c == ':' ? "%s: needs a value" : "%s: unknown option",
				 arg);
			goto fail;
		}
		if (out->n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			struct config_entry *ne = realloc(out->e, nc * sizeof(*ne));
			if (!ne) {
				ret = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			out->e = ne;
			cap = nc;
		}
		struct config_entry *e = &out->e[out->n];
		e->name = opts[idx].name;
		e->value = optarg ? strdup(optarg) : NULL;
		if (optarg && !e->value) {
			ret = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		out->n++;
	}
	if (optind < argc) {
		ret = -EINVAL;
		snprintf(err, errlen, "unexpected argument %s", argv[optind]);
		goto fail;
	}
	optind = 0;
	opterr = 1;
	return 0;
fail:
	optind = 0;
	opterr = 1;
	config_set_free(out);
	return ret;
}

size_t config_values(const struct config_set *s, const char *name, const char **vals, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].name, name) == 0) {
			if (k < max)
				vals[k] = s->e[i].value;
			k++;
		}
	return k;
}

int config_same(const struct config_set *a, const struct config_set *b, const char *name)
{
	size_t i = 0, j = 0;
	for (;;) {
		while (i < a->n && strcmp(a->e[i].name, name) != 0)
			i++;
		while (j < b->n && strcmp(b->e[j].name, name) != 0)
			j++;
		if (i == a->n || j == b->n)
			return i == a->n && j == b->n;
		const char *va = a->e[i].value, *vb = b->e[j].value;
		if ((va == NULL) != (vb == NULL) || (va && strcmp(va, vb) != 0))
			return 0;
		i++;
		j++;
	}
}
