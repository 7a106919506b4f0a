/* The Prometheus text exposition format (version 0.0.4): families, samples
 * with escaped labels, histograms, written into one growing buffer. Every
 * source of /metrics writes through it. See metrics.h. */
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics_impl.h"

int metrics_out_init(struct metrics_out *o, bool compat, const char *server)
{
	*o = (struct metrics_out){.compat = compat, .server = server};
	o->cap = 64 << 10;
	o->buf = malloc(o->cap);
	if (!o->buf)
		return -ENOMEM;
	o->buf[0] = '\0';
	return 0;
}

int metrics_out_finish(struct metrics_out *o, char **body, size_t *len)
{
	if (o->err) {
		free(o->buf);
		return o->err;
	}
	*body = o->buf;
	*len = o->len;
	return 0;
}

static void out_vprintf(struct metrics_out *o, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void out_vprintf(struct metrics_out *o, const char *fmt, va_list ap)
{
	if (o->err)
		return;
	for (;;) {
		va_list cp;
		va_copy(cp, ap);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, cp);
		va_end(cp);
		if (n < 0) {
			o->err = -EINVAL;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = o->cap * 2 + (size_t)n + 1;
		char *nb = realloc(o->buf, ncap);
		if (!nb) {
			o->err = -ENOMEM;
			return;
		}
		o->buf = nb;
		o->cap = ncap;
	}
}

static void out_printf(struct metrics_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
}

static void out_escaped(struct metrics_out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			out_printf(o, "\\\\");
		else if (*s == '"')
			out_printf(o, "\\\"");
		else if (*s == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *s);
	}
}

static void out_value(struct metrics_out *o, double v)
{
	if (isnan(v))
		out_printf(o, "NaN");
	else if (isinf(v))
		out_printf(o, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		out_printf(o, "%.0f", v);
	else
		out_printf(o, "%.15g", v);
}

void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k="v",...,extra} with the pairs from ap, then `extra` (preformatted,
 * may be NULL). */
static void out_series(struct metrics_out *o, const char *name, const char *suffix, va_list ap,
		       const char *extra)
{
	out_printf(o, "%s%s", name, suffix);
	bool any = false;
	va_list cp;
	va_copy(cp, ap);
	for (const char *k = va_arg(cp, const char *); k; k = va_arg(cp, const char *)) {
		const char *v = va_arg(cp, const char *);
		out_printf(o, "%s%s=\"", any ? "," : "{", k);
		out_escaped(o, v ? v : "");
		out_printf(o, "\"");
		any = true;
	}
	va_end(cp);
	if (extra) {
		out_printf(o, "%s%s", any ? "," : "{", extra);
		any = true;
	}
	if (any)
		out_printf(o, "}");
}

static void metrics_sample_v(struct metrics_out *o, const char *name, double v, va_list labels)
{
	out_series(o, name, "", labels, NULL);
	out_printf(o, " ");
	out_value(o, v);
	out_printf(o, "\n");
}

void metrics_sample(struct metrics_out *o, const char *name, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	metrics_sample_v(o, name, v, ap);
	va_end(ap);
}

static void histogram_v(struct metrics_out *o, const char *name, const double *bounds, size_t n,
			const uint64_t *counts, double sum, va_list ap)
{
	uint64_t cum = 0;
	char le[64];
	for (size_t i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "le=\"%.9g\"", bounds[i]);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		out_series(o, name, "_bucket", ap, le);
		out_printf(o, " %llu\n", (unsigned long long)cum);
	}
	out_series(o, name, "_sum", ap, NULL);
	out_printf(o, " ");
	out_value(o, sum);
	out_printf(o, "\n");
	out_series(o, name, "_count", ap, NULL);
	out_printf(o, " %llu\n", (unsigned long long)cum);
}

void metrics_histogram(struct metrics_out *o, const char *name, const double *bounds, size_t n,
		       const uint64_t *counts, double sum, ...)
{
	va_list ap;
	va_start(ap, sum);
	histogram_v(o, name, bounds, n, counts, sum, ap);
	va_end(ap);
}

bool metrics_out_compat(const struct metrics_out *o)
{
	return o->compat;
}

const char *metrics_out_server(const struct metrics_out *o)
{
	return o->server;
}
