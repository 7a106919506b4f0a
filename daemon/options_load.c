/* Reading options through the table: the command line with getopt_long, the
 * --config file line by line, one parser per kind of value, the checks that
 * span options, and comparing two configurations for a reload. */
#include "daemon/options.h"
#include "daemon/options_table.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

/* One value as given: from the --config file (line > 0) or the command line. */
struct options_value {
	const struct opt_def *def;
	char *text; /* NULL for a flag or an action */
	unsigned line;
};

/* ---- values ------------------------------------------------------------------ */

/* A whole decimal number, nothing else (no sign, no space, no base prefix). */
static int read_uint(const char *s, unsigned long long *out)
{
	if (*s < '0' || *s > '9' || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "250ms", "1.5s", "2m", "1h", or a bare number in `bare`; in milliseconds. */
static int read_duration(const char *s, enum opt_unit bare, double *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	size_t n = strspn(s, "0123456789");
	if (n == 0)
		return -EINVAL;
	if (s[n] == '.') {
		size_t frac = strspn(s + n + 1, "0123456789");
		if (frac == 0)
			return -EINVAL;
		n += 1 + frac;
	}
	double v = strtod(s, NULL);
	if (s[n] == '\0') {
		*ms = v * (bare == OPT_MS ? 1 : 1000);
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s + n, units[i].unit) == 0) {
			*ms = v * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

void options_format_ms(unsigned long long ms, char *out, size_t cap)
{
	if (ms == 0)
		snprintf(out, cap, "0");
	else if (ms % 3600000 == 0)
		snprintf(out, cap, "%lluh", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(out, cap, "%llum", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(out, cap, "%llus", ms / 1000);
	else
		snprintf(out, cap, "%llums", ms);
}

static int set_duration(const struct opt_def *d, const char *arg, unsigned *field, char *why,
			size_t cap)
{
	double ms;
	char lo[32], hi[32];
	if (read_duration(arg, d->bare, &ms) < 0) {
		snprintf(why, cap,
			 "expected %s (a bare number) or a duration like 250ms, 5s, 2m, 1h",
			 d->bare == OPT_MS ? "milliseconds" : "seconds");
		return -EINVAL;
	}
	ms = (double)(unsigned long long)(ms + 0.5);
	if (ms < (double)d->lo || ms > (double)d->hi) {
		options_format_ms(d->lo, lo, sizeof(lo));
		options_format_ms(d->hi, hi, sizeof(hi));
		snprintf(why, cap, "expected a duration from %s to %s", lo, hi);
		return -EINVAL;
	}
	unsigned long long v = (unsigned long long)ms;
	if (d->unit == OPT_S && v % 1000) {
		snprintf(why, cap, "expected whole seconds");
		return -EINVAL;
	}
	*field = (unsigned)(d->unit == OPT_S ? v / 1000 : v);
	return 0;
}

/* Stores one value of option `d` into o; on a bad value writes why. */
static int set_value(struct svcdns_options *o, const struct opt_def *d, const char *arg, char *why,
		     size_t cap)
{
	char *field = (char *)o + d->off;
	size_t *count = NULL, i = 0;
	unsigned long long v;
	if ((d->flags & OPT_REPEAT) && d->kind != OPT_CUSTOM) {
		count = (size_t *)((char *)o + d->count_off);
		if (*count == d->max_n) {
			snprintf(why, cap, "at most %zu values", d->max_n);
			return -EINVAL;
		}
		i = *count;
	}
	switch (d->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		break;
	case OPT_STRING:
		*(const char **)field = arg;
		break;
	case OPT_UINT:
		if (read_uint(arg, &v) < 0 || v < d->lo || v > d->hi) {
			snprintf(why, cap, "expected a whole number from %llu to %llu", d->lo,
				 d->hi);
			return -EINVAL;
		}
		*(unsigned *)field = (unsigned)v;
		break;
	case OPT_DURATION:
		return set_duration(d, arg, (unsigned *)field, why, cap);
	case OPT_CIDR:
		if (net_cidr_parse(arg, (struct net_cidr *)field + i) < 0) {
			snprintf(why, cap, "expected a CIDR like 10.96.0.0/12 or fd00::/8");
			return -EINVAL;
		}
		break;
	case OPT_ADDR:
		if (net_addr_parse(arg, (struct net_addr *)field) < 0) {
			snprintf(why, cap, "expected an IP address");
			return -EINVAL;
		}
		break;
	case OPT_LISTEN:
		if (dns_listen_parse(arg, (struct dns_listen *)field + i) < 0) {
			snprintf(why, cap, "expected %s (an IPv6 address in brackets)", d->arg);
			return -EINVAL;
		}
		break;
	case OPT_CUSTOM:
		return d->parse(o, arg, why, cap);
	case OPT_ACTION:
		o->action = (enum options_action)d->lo;
		break;
	}
	if (count)
		(*count)++;
	return 0;
}

/* ---- the command line and the file ----------------------------------------- */

static struct option longopts[OPTIONS_TABLE_MAX + 1];

static const struct option *getopt_table(void)
{
	if (!longopts[0].name)
		for (size_t i = 0; i < options_table_len; i++)
			longopts[i] = (struct option){options_table[i].name,
						      !options_table[i].arg ? no_argument
						      : (options_table[i].flags & OPT_OPTVAL)
							  ? optional_argument
							  : required_argument,
						      NULL, 0x100 + (int)i};
	return longopts;
}

static int push_value(struct options_value **vals, size_t *n, const struct opt_def *d,
		      const char *text, unsigned line)
{
	struct options_value *nv = realloc(*vals, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	*vals = nv;
	nv[*n] = (struct options_value){.def = d, .text = text ? strdup(text) : NULL, .line = line};
	if (text && !nv[*n].text)
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void values_free(struct options_value *vals, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(vals[i].text);
	free(vals);
}

/* What getopt_long refused, in one line. */
static void bad_option(int c, const char *text, char *err, size_t errlen)
{
	if (c == '?' && optopt > 0 && optopt < 0x100) {
		snprintf(err, errlen, "unrecognized option '-%c'", optopt);
		return;
	}
	if (c == ':') {
		snprintf(err, errlen, "option '%s' requires a value", text);
		return;
	}
	if (strncmp(text, "--", 2) == 0) {
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(text + 2, "="), text + 2);
		const struct opt_def *d = options_find(name);
		if (d && !d->arg && strchr(text, '=')) {
			snprintf(err, errlen, "--%s takes no value", name);
			return;
		}
	}
	snprintf(err, errlen, "unrecognized option '%s'", text);
}

/* The command line's options, in order (getopt_long works on a copy: it
 * reorders what it reads). */
static int read_argv(int argc, char *const *argv, struct options_value **vals, size_t *n, char *err,
		     size_t errlen)
{
	const struct option *opts = getopt_table();
	char **av = calloc((size_t)argc + 1, sizeof(*av));
	int c, ret = 0;
	if (!av)
		return -ENOMEM;
	memcpy(av, argv, (size_t)argc * sizeof(*av));
	optind = 0; /* glibc: start afresh */
	opterr = 0;
	while ((c = getopt_long(argc, av, ":h", opts, NULL)) != -1) {
		const struct opt_def *d = c == 'h' ? options_find("help") : NULL;
		if (c >= 0x100 && (size_t)(c - 0x100) < options_table_len)
			d = &options_table[c - 0x100];
		if (!d) {
			bad_option(c, optind > 0 && optind <= argc ? av[optind - 1] : "?", err,
				   errlen);
			ret = -EINVAL;
			break;
		}
		if ((ret = push_value(vals, n, d, optarg, 0)) < 0)
			break;
	}
	if (ret == 0 && optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", av[optind]);
		ret = -EINVAL;
	}
	optind = 0;
	opterr = 1;
	free(av);
	return ret;
}

/* The --config file's options, each checked against the table. */
static int read_file(const char *path, struct options_value **vals, size_t *n, char *err,
		     size_t errlen)
{
	struct config_line *lines = NULL;
	size_t nl = 0;
	int ret = config_read_file(path, &lines, &nl, err, errlen);
	for (size_t i = 0; ret == 0 && i < nl; i++) {
		const struct config_line *l = &lines[i];
		const struct opt_def *d = options_find(l->name);
		const char *why = NULL;
		if (!d)
			why = "unrecognized option";
		else if (strcmp(d->name, "config") == 0)
			why = "cannot name another file";
		else if (d->kind == OPT_ACTION)
			why = "belongs on the command line";
		else if (!d->arg && l->value)
			why = "takes no value";
		else if (d->arg && !l->value && !(d->flags & OPT_OPTVAL))
			why = "requires a value";
		if (why && !d) {
			snprintf(err, errlen, "%s:%u: %s --%s", path, l->line, why, l->name);
			ret = -EINVAL;
			break;
		}
		if (why) {
			snprintf(err, errlen, "%s:%u: --%s %s", path, l->line, l->name, why);
			ret = -EINVAL;
			break;
		}
		ret = push_value(vals, n, d, l->value, l->line);
	}
	config_lines_free(lines, nl);
	return ret;
}

/* ---- loading ------------------------------------------------------------------ */

static int apply_defaults(struct svcdns_options *o, bool repeatable, char *err, size_t errlen)
{
	char why[256], one[128];
	int ret = 0;
	for (size_t i = 0; i < options_table_len && ret == 0; i++) {
		const struct opt_def *d = &options_table[i];
		if (!d->def || !(d->flags & OPT_REPEAT) == repeatable)
			continue;
		if (!repeatable) {
			/* The text is static: a string value may point into it. */
			ret = set_value(o, d, d->def, why, sizeof(why));
		} else if (*(size_t *)((char *)o + d->count_off) == 0) {
			/* Space-separated values of a kind that copies what it reads. */
			for (const char *p = d->def; *p && ret == 0;) {
				size_t len = strcspn(p, " ");
				snprintf(one, sizeof(one), "%.*s", (int)len, p);
				ret = set_value(o, d, one, why, sizeof(why));
				p += len + (p[len] == ' ');
			}
		}
		if (ret < 0)
			snprintf(err, errlen, "the default of --%s, %s: %s", d->name, d->def, why);
	}
	return ret;
}

/* Every value in order; a bad one is named with where it was given. */
static int apply_values(struct svcdns_options *o, char *err, size_t errlen)
{
	char why[256], where[512];
	for (size_t i = 0; i < o->n_given; i++) {
		const struct options_value *v = &o->given[i];
		if (set_value(o, v->def, v->text, why, sizeof(why)) == 0)
			continue;
		where[0] = '\0';
		if (v->line)
			snprintf(where, sizeof(where), "%s:%u: ", o->config, v->line);
		snprintf(err, errlen, "%s--%s %s: %s", where, v->def->name, v->text ? v->text : "",
			 why);
		return -EINVAL;
	}
	return 0;
}

/* The checks that span several options. */
static int check(struct svcdns_options *o, char *err, size_t errlen)
{
	/* In a pod with no source named, the service account is the source. */
	o->use_api = o->kubeconfig || o->api_server || o->token_file || o->ca_file ||
		     (!o->manifests && getenv("KUBERNETES_SERVICE_HOST"));
	if ((o->context || o->kube.namespaces || o->kube.labels) && !o->use_api) {
		snprintf(err, errlen,
			 "--context, --namespaces and --labels apply to the "
			 "Kubernetes API source: give --kubeconfig or --api-server");
		return -EINVAL;
	}
	if (!o->manifests && !o->use_api) {
		snprintf(err, errlen,
			 "no data source: give --manifests DIR, --kubeconfig FILE or "
			 "--api-server URL");
		return -EINVAL;
	}
	return 0;
}

int options_load(int argc, char *const *argv, struct svcdns_options **out, char *err, size_t errlen)
{
	struct options_value *cl = NULL;
	size_t n_cl = 0;
	struct svcdns_options *o = calloc(1, sizeof(*o));
	int ret = -ENOMEM;
	if (!o)
		goto fail;
	o->argc = argc;
	o->argv = argv;
	if ((ret = read_argv(argc, argv, &cl, &n_cl, err, errlen)) < 0)
		goto fail;
	/* An action needs no valid configuration: svcdns --help always helps. */
	for (size_t i = 0; i < n_cl; i++)
		if (cl[i].def->kind == OPT_ACTION) {
			o->action = (enum options_action)cl[i].def->lo;
			values_free(cl, n_cl);
			*out = o;
			return 0;
		}
	/* The file's options go before the command line's: for an option given
	 * once the command line wins, repeatable ones add up. */
	for (size_t i = 0; i < n_cl; i++)
		if (strcmp(cl[i].def->name, "config") == 0)
			o->config = cl[i].text;
	if (o->config && (ret = read_file(o->config, &o->given, &o->n_given, err, errlen)) < 0)
		goto fail;
	for (size_t i = 0; i < n_cl; i++)
		if ((ret = push_value(&o->given, &o->n_given, cl[i].def, cl[i].text, 0)) < 0)
			goto fail;
	if ((ret = apply_defaults(o, false, err, errlen)) < 0 ||
	    (ret = apply_values(o, err, errlen)) < 0 ||
	    (ret = apply_defaults(o, true, err, errlen)) < 0 || (ret = check(o, err, errlen)) < 0)
		goto fail;
	values_free(cl, n_cl);
	*out = o;
	return 0;
fail:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	values_free(cl, n_cl);
	options_free(o);
	return ret;
}

void options_free(struct svcdns_options *o)
{
	if (!o)
		return;
	values_free(o->given, o->n_given);
	free(o);
}

/* ---- comparing two configurations -------------------------------------------- */

static bool text_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The index of the next value of `d` in o->given from `i`, or n_given. */
static size_t next_value(const struct svcdns_options *o, const struct opt_def *d, size_t i)
{
	while (i < o->n_given && o->given[i].def != d)
		i++;
	return i;
}

/* The text in force of an option given once: the last given, or the default. */
static const char *value_in_force(const struct svcdns_options *o, const struct opt_def *d)
{
	const char *v = d->def;
	for (size_t i = next_value(o, d, 0); i < o->n_given; i = next_value(o, d, i + 1))
		v = o->given[i].text ? o->given[i].text : "on";
	return v;
}

static bool same_values(const struct svcdns_options *a, const struct svcdns_options *b,
			const struct opt_def *d)
{
	if (!(d->flags & OPT_REPEAT))
		return text_eq(value_in_force(a, d), value_in_force(b, d));
	for (size_t i = next_value(a, d, 0), j = next_value(b, d, 0);;
	     i = next_value(a, d, i + 1), j = next_value(b, d, j + 1)) {
		if (i == a->n_given || j == b->n_given)
			return i == a->n_given && j == b->n_given;
		if (!text_eq(a->given[i].text, b->given[j].text))
			return false;
	}
}

size_t options_restart_needed(const struct svcdns_options *old, const struct svcdns_options *cur,
			      char *out, size_t cap)
{
	size_t n = 0, len = 0;
	if (cap)
		out[0] = '\0';
	for (size_t i = 0; i < options_table_len; i++) {
		const struct opt_def *d = &options_table[i];
		if ((d->flags & OPT_RELOAD) || d->kind == OPT_ACTION || same_values(old, cur, d))
			continue;
		n++;
		if (len < cap)
			len += (size_t)snprintf(out + len, cap - len, " --%s", d->name);
	}
	return n;
}
