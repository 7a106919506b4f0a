/* YAML to JSON for manifests: a libyaml event stream is folded into jansson
 * values with an explicit stack (no recursion on input depth), so hostile
 * input is bounded by YAML2JSON_MAX_DEPTH and YAML2JSON_MAX_NODES. */
#include "discovery/yaml2json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct frame {
	json_t *val;	   /* the array or object being built */
	char *key;	   /* objects: the key whose value comes next */
	bool key_is_merge; /* that key is a plain '<<' */
	json_t *merges;	   /* objects: mappings named by '<<', applied at the end */
	char *anchor;
	size_t start_nodes;
	int child_height; /* tallest child so far (scalars count 0) */
};

struct anchor {
	json_t *val;
	size_t nodes;
	int height;
};

struct builder {
	struct frame stack[YAML2JSON_MAX_DEPTH];
	int depth;
	size_t nodes;
	json_t *root; /* current document's value, once complete */
	/* anchor name -> index into anchors[]; redefinitions take a new slot so
	 * that later aliases see the latest definition, as YAML requires */
	json_t *anchor_index;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	char *err;
	size_t errlen;
	int rc;
};

static const char TAG_STR[] = "tag:yaml.org,2002:str";

static int fail(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(b->err, b->errlen, "line %zu column %zu: %s", mark.line + 1, mark.column + 1, msg);
	b->rc = -EINVAL;
	return -EINVAL;
}

static int fail_nomem(struct builder *b)
{
	snprintf(b->err, b->errlen, "out of memory");
	b->rc = -ENOMEM;
	return -ENOMEM;
}

static void anchors_clear(struct builder *b)
{
	for (size_t i = 0; i < b->n_anchors; i++)
		json_decref(b->anchors[i].val);
	b->n_anchors = 0;
	json_object_clear(b->anchor_index);
}

static int anchor_add(struct builder *b, const char *name, json_t *v, size_t nodes, int height)
{
	if (b->n_anchors == b->cap_anchors) {
		size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 16;
		struct anchor *a = realloc(b->anchors, cap * sizeof(*a));
		if (!a)
			return fail_nomem(b);
		b->anchors = a;
		b->cap_anchors = cap;
	}
	if (json_object_set_new(b->anchor_index, name, json_integer((json_int_t)b->n_anchors)))
		return fail_nomem(b);
	b->anchors[b->n_anchors++] = (struct anchor){json_incref(v), nodes, height};
	return 0;
}

static int count_node(struct builder *b, size_t n, yaml_mark_t mark)
{
	if (n > YAML2JSON_MAX_NODES - b->nodes)
		return fail(b, mark, "document expands to more than %u nodes (alias bomb?)",
			    YAML2JSON_MAX_NODES);
	b->nodes += n;
	return 0;
}

static bool all_digits(const char *s, size_t len, int base)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = base == 8    ? (c >= '0' && c <= '7')
			  : base == 10 ? (c >= '0' && c <= '9')
				       : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
					  (c >= 'A' && c <= 'F'));
		if (!ok)
			return false;
	}
	return true;
}

/* Integers too large for json_int_t become reals, so that a validator
 * reports "must be an integer" instead of the value silently wrapping. */
static json_t *make_int(const char *s, size_t len, int base, bool neg)
{
	uint64_t v = 0;
	double d = 0;
	bool overflow = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
		if (v > (UINT64_MAX - (uint64_t)digit) / (uint64_t)base)
			overflow = true;
		v = v * (uint64_t)base + (uint64_t)digit;
		d = d * base + digit;
	}
	if (!overflow && (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
		json_int_t iv = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)v)
				    : (json_int_t)v;
		return json_integer(iv);
	}
	if (base == 10 && len < 64) {
		/* strtod rounds correctly where the digit loop above does not */
		char buf[64];
		memcpy(buf, s, len);
		buf[len] = '\0';
		d = strtod(buf, NULL);
	}
	if (!isfinite(d))
		return json_stringn(s, len);
	return json_real(neg ? -d : d);
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float(const char *s, size_t len)
{
	size_t i = 0, digits = 0;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < len && s[i] == '.') {
		i++;
		size_t frac = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, frac++;
		if (digits == 0 && frac == 0)
			return false;
	} else if (digits == 0) {
		return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		size_t exp = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, exp++;
		if (exp == 0)
			return false;
	}
	return i == len;
}

static bool is_one_of(const char *s, size_t len, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == len && memcmp(*words, s, len) == 0)
			return true;
	return false;
}

/* The YAML 1.2 core schema for plain scalars. JSON cannot hold .inf and .nan,
 * so those stay strings (no manifest field takes a float anyway). */
static json_t *resolve_plain(const char *s, size_t len)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};

	if (is_one_of(s, len, nulls))
		return json_null();
	if (is_one_of(s, len, trues))
		return json_true();
	if (is_one_of(s, len, falses))
		return json_false();
	if (len > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, len - 2, 16))
		return make_int(s + 2, len - 2, 16, false);
	if (len > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, len - 2, 8))
		return make_int(s + 2, len - 2, 8, false);
	bool sign = len > 0 && (s[0] == '-' || s[0] == '+');
	if (all_digits(s + sign, len - sign, 10))
		return make_int(s + sign, len - sign, 10, sign && s[0] == '-');
	if (is_float(s, len)) {
		char buf[128];
		if (len < sizeof(buf)) {
			memcpy(buf, s, len);
			buf[len] = '\0';
			double d = strtod(buf, NULL);
			if (isfinite(d))
				return json_real(d);
		}
	}
	return json_stringn(s, len);
}

/* Puts a finished value (reference stolen) where the innermost container
 * expects it, registering its anchor first. */
static int place(struct builder *b, json_t *v, const char *anchor, size_t nodes, int height,
		 yaml_mark_t mark)
{
	int rc = 0;
	if (!v)
		return fail_nomem(b);
	if (anchor && (rc = anchor_add(b, anchor, v, nodes, height)) < 0)
		goto out;
	if (b->depth == 0) {
		b->root = v;
		return 0;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (height > f->child_height)
		f->child_height = height;
	if (json_is_array(f->val)) {
		if (json_array_append_new(f->val, v))
			return fail_nomem(b);
		return 0;
	}
	if (!f->key) {
		rc = fail(b, mark, "mapping keys must be strings");
		goto out;
	}
	if (f->key_is_merge) {
		f->key_is_merge = false;
		free(f->key);
		f->key = NULL;
		size_t i;
		json_t *m;
		if (json_is_object(v)) {
			if (json_array_append(f->merges, v))
				rc = fail_nomem(b);
		} else if (json_is_array(v)) {
			json_array_foreach(v, i, m)
			{
				if (!json_is_object(m)) {
					rc = fail(b, mark,
						  "'<<' takes a mapping or a list of mappings");
					break;
				}
				if (json_array_append(f->merges, m)) {
					rc = fail_nomem(b);
					break;
				}
			}
		} else {
			rc = fail(b, mark, "'<<' takes a mapping or a list of mappings");
		}
		goto out;
	}
	if (json_object_set_new(f->val, f->key, v))
		rc = fail_nomem(b);
	free(f->key);
	f->key = NULL;
	return rc;
out:
	json_decref(v);
	return rc;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *anchor = (const char *)ev->data.scalar.anchor;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	int rc;

	if (memchr(s, '\0', len))
		return fail(b, ev->start_mark, "strings may not hold NUL characters");
	/* A long string weighs as much as the nodes its bytes could have made:
	 * an alias copies it whole, so counting it as one node would let a few
	 * kilobytes of aliases ask for gigabytes. */
	size_t weight = 1 + len / 64;
	if ((rc = count_node(b, weight, ev->start_mark)) < 0)
		return rc;

	struct frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
	if (f && json_is_object(f->val) && !f->key) {
		/* a key: plain or not, its text is the key */
		if (json_object_get(f->val, s))
			return fail(b, ev->start_mark, "duplicate key \"%.100s\"", s);
		if (!(f->key = strdup(s)))
			return fail_nomem(b);
		f->key_is_merge = plain && !tag && strcmp(s, "<<") == 0;
		if (f->key_is_merge && !f->merges && !(f->merges = json_array()))
			return fail_nomem(b);
		if (anchor) {
			json_t *k = json_string(s);
			if (!k)
				return fail_nomem(b);
			rc = anchor_add(b, anchor, k, weight, 0);
			json_decref(k);
			return rc;
		}
		return 0;
	}

	json_t *v;
	bool as_string = !plain || (tag && (strcmp(tag, TAG_STR) == 0 || strcmp(tag, "!") == 0));
	v = as_string ? json_stringn(s, len) : resolve_plain(s, len);
	return place(b, v, anchor, weight, 0, ev->start_mark);
}

static int on_start(struct builder *b, const yaml_event_t *ev, bool mapping)
{
	const char *anchor = mapping ? (const char *)ev->data.mapping_start.anchor
				     : (const char *)ev->data.sequence_start.anchor;
	int rc;
	if (b->depth >= YAML2JSON_MAX_DEPTH)
		return fail(b, ev->start_mark, "nesting deeper than %d levels",
			    YAML2JSON_MAX_DEPTH);
	if ((rc = count_node(b, 1, ev->start_mark)) < 0)
		return rc;
	struct frame *f = &b->stack[b->depth];
	*f = (struct frame){.start_nodes = b->nodes - 1};
	f->val = mapping ? json_object() : json_array();
	if (!f->val)
		return fail_nomem(b);
	if (anchor && !(f->anchor = strdup(anchor))) {
		json_decref(f->val);
		return fail_nomem(b);
	}
	b->depth++;
	return 0;
}

static void frame_release(struct frame *f)
{
	json_decref(f->val);
	json_decref(f->merges);
	free(f->key);
	free(f->anchor);
	*f = (struct frame){0};
}

static int on_end(struct builder *b, const yaml_event_t *ev)
{
	struct frame f = b->stack[--b->depth];
	b->stack[b->depth] = (struct frame){0};
	int rc = 0;

	if (f.merges) {
		/* explicit keys win over merged ones; earlier merged mappings win
		 * over later ones (the YAML merge-key convention kubectl follows) */
		size_t i;
		json_t *m;
		json_array_foreach(f.merges, i, m)
		{
			const char *k;
			json_t *val;
			json_object_foreach(m, k, val)
			{
				if (!json_object_get(f.val, k) && json_object_set(f.val, k, val)) {
					frame_release(&f);
					return fail_nomem(b);
				}
			}
		}
	}
	json_t *v = f.val;
	f.val = NULL;
	rc = place(b, v, f.anchor, b->nodes - f.start_nodes, f.child_height + 1, ev->start_mark);
	frame_release(&f);
	return rc;
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	json_t *idx = json_object_get(b->anchor_index, name);
	int rc;
	if (!idx)
		return fail(b, ev->start_mark, "unknown anchor \"%.100s\"", name);
	const struct anchor *a = &b->anchors[json_integer_value(idx)];
	if (b->depth + a->height > YAML2JSON_MAX_DEPTH)
		return fail(b, ev->start_mark, "alias nests deeper than %d levels",
			    YAML2JSON_MAX_DEPTH);
	if ((rc = count_node(b, a->nodes, ev->start_mark)) < 0)
		return rc;

	struct frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
	if (f && json_is_object(f->val) && !f->key) {
		/* an aliased key must be a string */
		if (!json_is_string(a->val))
			return fail(b, ev->start_mark, "mapping keys must be strings");
		const char *s = json_string_value(a->val);
		if (json_object_get(f->val, s))
			return fail(b, ev->start_mark, "duplicate key \"%.100s\"", s);
		if (!(f->key = strdup(s)))
			return fail_nomem(b);
		return 0;
	}
	return place(b, json_deep_copy(a->val), NULL, a->nodes, a->height, ev->start_mark);
}

int yaml_to_json_docs(const char *data, size_t len, json_t **out_array, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct builder *b = NULL;
	json_t *docs = NULL;
	bool parser_ready = false, done = false;
	int rc = 0;
	char dummy[1];

	*out_array = NULL;
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';

	b = calloc(1, sizeof(*b));
	docs = json_array();
	if (!b || !docs || !(b->anchor_index = json_object())) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	b->err = err;
	b->errlen = errlen;
	if (!yaml_parser_initialize(&parser)) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	parser_ready = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			const char *problem = parser.problem ? parser.problem : "syntax error";
			if (parser.error == YAML_MEMORY_ERROR) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory");
			} else if (parser.error == YAML_READER_ERROR) {
				rc = -EINVAL;
				snprintf(err, errlen, "byte %zu: %s", parser.problem_offset,
					 problem);
			} else {
				rc = -EINVAL;
				snprintf(err, errlen, "line %zu column %zu: %s%s%s",
					 parser.problem_mark.line + 1,
					 parser.problem_mark.column + 1, problem,
					 parser.context ? " " : "",
					 parser.context ? parser.context : "");
			}
			goto out;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			anchors_clear(b);
			b->root = NULL;
			break;
		case YAML_DOCUMENT_END_EVENT:
			/* empty documents (and a lone "null") carry no object */
			if (b->root && !json_is_null(b->root)) {
				if (json_array_append_new(docs, b->root))
					rc = fail_nomem(b);
			} else {
				json_decref(b->root);
			}
			b->root = NULL;
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = on_start(b, &ev, false);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = on_start(b, &ev, true);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = on_end(b, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = on_alias(b, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rc < 0)
			goto out;
	}
	*out_array = docs;
	docs = NULL;
out:
	if (parser_ready)
		yaml_parser_delete(&parser);
	if (b) {
		while (b->depth > 0)
			frame_release(&b->stack[--b->depth]);
		json_decref(b->root);
		if (b->anchor_index)
			anchors_clear(b);
		json_decref(b->anchor_index);
		free(b->anchors);
		free(b);
	}
	json_decref(docs);
	return rc;
}
