/* The framing of API response bodies, apart from the transport: a watch
 * stream cut into lines (one event each), a list page split into its items
 * so that each can be parsed and freed on its own. */
#include "discovery/kube_http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines ----------------------------------------------------------------- */

void kube_lines_init(struct kube_lines *lb, size_t max)
{
	*lb = (struct kube_lines){.max = max};
}

void kube_lines_reset(struct kube_lines *lb)
{
	lb->len = 0;
}

void kube_lines_free(struct kube_lines *lb)
{
	free(lb->buf);
	kube_lines_init(lb, lb->max);
}

static int lines_append(struct kube_lines *lb, const char *p, size_t n)
{
	if (lb->len + n > lb->max) {
		lb->len = 0;
		return -E2BIG;
	}
	if (lb->len + n > lb->cap) {
		size_t cap = lb->cap ? lb->cap : 4096;
		while (cap < lb->len + n)
			cap *= 2;
		char *nb = realloc(lb->buf, cap);
		if (!nb)
			return -ENOMEM;
		lb->buf = nb;
		lb->cap = cap;
	}
	memcpy(lb->buf + lb->len, p, n);
	lb->len += n;
	return 0;
}

int kube_lines_feed(struct kube_lines *lb, const char *data, size_t len, kube_line_cb cb, void *arg)
{
	const char *p = data, *end = data + len;
	int rc;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return lines_append(lb, p, (size_t)(end - p));
		const char *line = p;
		size_t n = (size_t)(nl - p);
		if (lb->len) {
			/* the end of a line begun in an earlier piece */
			if ((rc = lines_append(lb, p, n)) < 0)
				return rc;
			line = lb->buf;
			n = lb->len;
		} else if (n > lb->max) {
			return -E2BIG;
		}
		p = nl + 1;
		if (n && line[n - 1] == '\r')
			n--;
		lb->len = 0;
		if (n && (rc = cb(arg, line, n)) < 0)
			return rc;
	}
	return 0;
}

/* ---- list pages ------------------------------------------------------------ */

struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* At a '"': moves past the closing quote. */
static int skip_string(struct scan *s)
{
	for (s->p++; s->p < s->end; s->p++) {
		if (*s->p == '\\') {
			s->p++;
		} else if (*s->p == '"') {
			s->p++;
			return 0;
		}
	}
	return -EINVAL;
}

/* Deeper than this is refused, as jansson refuses it. */
#define SCAN_MAX_DEPTH 2048

/* Moves past one value: a string, an object or array (brackets matched by
 * kind, strings skipped), or a scalar (up to the next delimiter). */
static int skip_value(struct scan *s)
{
	uint8_t is_obj[SCAN_MAX_DEPTH / 8];
	size_t depth = 0;

	skip_ws(s);
	if (s->p >= s->end)
		return -EINVAL;
	if (*s->p != '{' && *s->p != '[') {
		if (*s->p == '"')
			return skip_string(s);
		const char *start = s->p;
		while (s->p < s->end && !memchr(",}] \t\r\n", *s->p, 7))
			s->p++;
		return s->p > start ? 0 : -EINVAL;
	}
	while (s->p < s->end) {
		char c = *s->p;
		if (c == '"') {
			if (skip_string(s) < 0)
				return -EINVAL;
			continue;
		}
		if (c == '{' || c == '[') {
			if (depth == SCAN_MAX_DEPTH)
				return -EINVAL;
			if (c == '{')
				is_obj[depth / 8] |= (uint8_t)(1u << (depth % 8));
			else
				is_obj[depth / 8] &= (uint8_t) ~(1u << (depth % 8));
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return -EINVAL;
			depth--;
			if (((is_obj[depth / 8] >> (depth % 8)) & 1) != (c == '}'))
				return -EINVAL;
			if (depth == 0) {
				s->p++;
				return 0;
			}
		}
		s->p++;
	}
	return -EINVAL;
}

/* At '[': calls cb for every element and moves past the ']'. */
static int split_items(struct scan *s, kube_item_cb cb, void *arg)
{
	size_t n = 0;
	int rc;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		skip_ws(s);
		const char *start = s->p;
		if ((rc = skip_value(s)) < 0)
			return rc;
		if (cb && (rc = cb(arg, n++, start, (size_t)(s->p - start))) < 0)
			return rc;
		skip_ws(s);
		if (s->p >= s->end)
			return -EINVAL;
		if (*s->p++ == ']')
			return 0;
		if (s->p[-1] != ',')
			return -EINVAL;
	}
}

int kube_list_split(const char *body, size_t len, struct kube_span *meta, kube_item_cb cb,
		    void *arg)
{
	struct scan s = {body, body + len};
	bool have_items = false;
	int rc;

	*meta = (struct kube_span){0};
	skip_ws(&s);
	if (s.p >= s.end || *s.p++ != '{')
		return -EINVAL;
	skip_ws(&s);
	if (s.p < s.end && *s.p == '}') {
		s.p++;
		goto tail;
	}
	for (;;) {
		skip_ws(&s);
		const char *key = s.p;
		if (s.p >= s.end || *s.p != '"' || skip_string(&s) < 0)
			return -EINVAL;
		/* Keys are compared raw: an escaped "items" is simply not recognised. */
		size_t klen = (size_t)(s.p - key);
		skip_ws(&s);
		if (s.p >= s.end || *s.p++ != ':')
			return -EINVAL;
		skip_ws(&s);
		if (klen == 7 && memcmp(key, "\"items\"", 7) == 0 && s.p < s.end && *s.p == '[') {
			if ((rc = split_items(&s, cb, arg)) < 0)
				return rc;
			have_items = true;
		} else {
			const char *v = s.p;
			if ((rc = skip_value(&s)) < 0)
				return rc;
			if (klen == 10 && memcmp(key, "\"metadata\"", 10) == 0) {
				*meta = (struct kube_span){v, (size_t)(s.p - v)};
				if (!cb)
					return 0;
			}
		}
		skip_ws(&s);
		if (s.p >= s.end)
			return -EINVAL;
		if (*s.p++ == '}')
			break;
		if (s.p[-1] != ',')
			return -EINVAL;
	}
tail:
	skip_ws(&s);
	return s.p == s.end && have_items ? 0 : -EINVAL;
}
