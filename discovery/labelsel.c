/* The label selector parser and matcher: a lexer that takes the longest
 * operator, a loop over comma-separated requirements, and the same checks of
 * keys, values and operators that kube-apiserver applies. */
#include "discovery/labelsel.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/manifest_fields.h"

enum op { OP_IN, OP_NOTIN, OP_EQ, OP_NEQ, OP_EXISTS, OP_NOT_EXISTS, OP_GT, OP_LT };

struct req {
	enum op op;
	char *key;
	char **values;
	size_t n_values;
	long long num; /* OP_GT, OP_LT */
};

struct label_selector {
	struct req *reqs;
	size_t n, cap;
};

enum tok {
	T_END = 0,
	T_IDENT,
	T_IN,
	T_NOTIN,
	T_NOT,
	T_NEQ,
	T_OPEN,
	T_CLOSE,
	T_COMMA,
	T_EQ,
	T_DEQ,
	T_GT,
	T_LT,
};

struct lexer {
	const char *s;
	size_t pos;
	/* The token just read: its kind and its text s[start..start+len). */
	enum tok tok;
	size_t start, len;
	char *why;
	size_t cap;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static enum tok symbol(const char *p, size_t n)
{
	static const struct {
		const char *text;
		enum tok tok;
	} syms[] = {{"!=", T_NEQ},  {"==", T_DEQ}, {"!", T_NOT}, {"(", T_OPEN}, {")", T_CLOSE},
		    {",", T_COMMA}, {"=", T_EQ},   {">", T_GT},	 {"<", T_LT}};
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (strlen(syms[i].text) == n && memcmp(syms[i].text, p, n) == 0)
			return syms[i].tok;
	return T_END;
}

/* The next token. `values`: the keywords in and notin are plain words there,
 * as in the API server's parser (only an operator's place knows them). */
static void lex(struct lexer *l, bool values)
{
	const char *s = l->s;

	while (is_space(s[l->pos]))
		l->pos++;
	l->start = l->pos;
	if (!s[l->pos]) {
		l->tok = T_END;
		l->len = 0;
		return;
	}
	if (is_special(s[l->pos])) {
		/* The longest symbol: "!=" over "!", "==" over "=". */
		size_t n = symbol(s + l->pos, 2) != T_END && is_special(s[l->pos + 1]) ? 2 : 1;
		l->tok = symbol(s + l->pos, n);
		l->len = n;
		l->pos += n;
		return;
	}
	while (s[l->pos] && !is_space(s[l->pos]) && !is_special(s[l->pos]))
		l->pos++;
	l->len = l->pos - l->start;
	l->tok = T_IDENT;
	if (!values && l->len == 2 && memcmp(s + l->start, "in", 2) == 0)
		l->tok = T_IN;
	else if (!values && l->len == 5 && memcmp(s + l->start, "notin", 5) == 0)
		l->tok = T_NOTIN;
}

/* Looks at the next token without taking it. */
static enum tok peek(struct lexer *l)
{
	size_t pos = l->pos, start = l->start, len = l->len;
	enum tok tok = l->tok;

	lex(l, true);
	enum tok next = l->tok;
	l->pos = pos;
	l->start = start;
	l->len = len;
	l->tok = tok;
	return next;
}

static int fail(struct lexer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct lexer *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->why, l->cap, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "found 'x'" or "found the end", for the token just read. */
static int unexpected(struct lexer *l, const char *expected)
{
	if (l->tok == T_END)
		return fail(l, "found the end, expected: %s", expected);
	return fail(l, "found '%.*s' at %zu, expected: %s", (int)(l->len > 64 ? 64 : l->len),
		    l->s + l->start, l->start + 1, expected);
}

static char *tok_dup(const struct lexer *l)
{
	return strndup(l->s + l->start, l->len);
}

static int add_value(struct req *r, char *v)
{
	if (!v)
		return -ENOMEM;
	char **nv = realloc(r->values, (r->n_values + 1) * sizeof(*nv));
	if (!nv) {
		free(v);
		return -ENOMEM;
	}
	r->values = nv;
	r->values[r->n_values++] = v;
	return 0;
}

/* `( a, b )`: a list of values; "()" and empty places stand for "". */
static int parse_set(struct lexer *l, struct req *r)
{
	int rc;

	lex(l, true);
	if (l->tok != T_OPEN)
		return unexpected(l, "'('");
	bool want_value = true; /* nothing since '(' or the last ',' */
	for (;;) {
		lex(l, true);
		if (l->tok == T_IDENT && want_value) {
			if ((rc = add_value(r, tok_dup(l))) < 0)
				return rc;
			want_value = false;
		} else if (l->tok == T_COMMA) {
			if (want_value && (rc = add_value(r, strdup(""))) < 0)
				return rc;
			want_value = true;
		} else if (l->tok == T_CLOSE) {
			if (want_value && (rc = add_value(r, strdup(""))) < 0)
				return rc;
			return 0;
		} else {
			return unexpected(l, want_value ? "',', ')' or a value" : "',' or ')'");
		}
	}
}

/* After =, ==, !=, > or <: one value, "" when none is written. */
static int parse_exact(struct lexer *l, struct req *r)
{
	enum tok next = peek(l);

	if (next == T_END || next == T_COMMA)
		return add_value(r, strdup(""));
	lex(l, true);
	if (l->tok != T_IDENT)
		return unexpected(l, "a value");
	return add_value(r, tok_dup(l));
}

static int parse_operator(struct lexer *l, struct req *r)
{
	lex(l, false);
	switch (l->tok) {
	case T_IN:
		r->op = OP_IN;
		return parse_set(l, r);
	case T_NOTIN:
		r->op = OP_NOTIN;
		return parse_set(l, r);
	case T_EQ:
	case T_DEQ:
		r->op = OP_EQ;
		return parse_exact(l, r);
	case T_NEQ:
		r->op = OP_NEQ;
		return parse_exact(l, r);
	case T_GT:
		r->op = OP_GT;
		return parse_exact(l, r);
	case T_LT:
		r->op = OP_LT;
		return parse_exact(l, r);
	default:
		return unexpected(l, "in, notin, =, ==, !=, > or <");
	}
}

/* The checks the API server makes once a requirement is read. */
static int check_req(struct lexer *l, struct req *r)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (!mf_is_label_value(r->values[i]))
			return fail(l,
				    "'%.64s' (for %.64s) is not a valid label value: at most 63 "
				    "letters, digits, '-', '_' or '.', starting and ending with a "
				    "letter or digit",
				    r->values[i], r->key);
	if (r->op == OP_GT || r->op == OP_LT) {
		char *end;
		errno = 0;
		r->num = strtoll(r->values[0], &end, 10);
		if (!*r->values[0] || *end || errno == ERANGE)
			return fail(l, "'%.64s' (for %.64s): > and < compare with an integer",
				    r->values[0], r->key);
	}
	return 0;
}

/* One requirement: `!key`, `key`, or `key OP value(s)`. */
static int parse_req(struct lexer *l, struct req *r)
{
	int rc;
	bool negated = false;

	lex(l, true);
	if (l->tok == T_NOT) {
		negated = true;
		lex(l, true);
	}
	if (l->tok != T_IDENT)
		return unexpected(l, "a label key");
	if (!(r->key = tok_dup(l)))
		return -ENOMEM;
	if (!mf_is_label_key(r->key))
		return fail(l,
			    "'%.64s' is not a valid label key: an optional DNS subdomain and '/', "
			    "then at most 63 letters, digits, '-', '_' or '.', starting and ending "
			    "with a letter or digit",
			    r->key);
	enum tok next = peek(l);
	if (negated || next == T_END || next == T_COMMA) {
		r->op = negated ? OP_NOT_EXISTS : OP_EXISTS;
		return 0;
	}
	if ((rc = parse_operator(l, r)) < 0)
		return rc;
	return check_req(l, r);
}

void label_selector_free(struct label_selector *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->reqs[i].key);
		for (size_t j = 0; j < s->reqs[i].n_values; j++)
			free(s->reqs[i].values[j]);
		free(s->reqs[i].values);
	}
	free(s->reqs);
	free(s);
}

int label_selector_parse(const char *text, struct label_selector **out, char *why, size_t cap)
{
	struct lexer l = {.s = text ? text : "", .why = why, .cap = cap};
	struct label_selector *s = calloc(1, sizeof(*s));
	int rc = 0;

	*out = NULL;
	if (cap)
		why[0] = '\0';
	if (!s)
		return -ENOMEM;
	if (peek(&l) == T_END)
		goto done;
	for (;;) {
		if (s->n == s->cap) {
			size_t ncap = s->cap ? s->cap * 2 : 4;
			struct req *nr = realloc(s->reqs, ncap * sizeof(*nr));
			if (!nr) {
				rc = -ENOMEM;
				goto done;
			}
			s->reqs = nr;
			s->cap = ncap;
		}
		memset(&s->reqs[s->n], 0, sizeof(s->reqs[0]));
		s->n++;
		if ((rc = parse_req(&l, &s->reqs[s->n - 1])) < 0)
			goto done;
		lex(&l, true);
		if (l.tok == T_END)
			break;
		if (l.tok != T_COMMA) {
			rc = unexpected(&l, "',' or the end");
			goto done;
		}
		enum tok next = peek(&l);
		if (next != T_IDENT && next != T_NOT) {
			lex(&l, true);
			rc = unexpected(&l, "a requirement after ','");
			goto done;
		}
	}
done:
	if (rc == -ENOMEM && cap)
		snprintf(why, cap, "out of memory");
	if (rc < 0) {
		label_selector_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static const char *label_get(const struct model_labels *labels, const char *key)
{
	for (size_t i = 0; labels && i < labels->n; i++)
		if (strcmp(labels->items[i].key, key) == 0)
			return labels->items[i].value ? labels->items[i].value : "";
	return NULL;
}

static bool in_values(const struct req *r, const char *v)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (strcmp(r->values[i], v) == 0)
			return true;
	return false;
}

static bool req_matches(const struct req *r, const struct model_labels *labels)
{
	const char *v = label_get(labels, r->key);
	char *end;
	long long n;

	switch (r->op) {
	case OP_IN:
	case OP_EQ:
		return v && in_values(r, v);
	case OP_NOTIN:
	case OP_NEQ:
		return !v || !in_values(r, v);
	case OP_EXISTS:
		return v != NULL;
	case OP_NOT_EXISTS:
		return v == NULL;
	case OP_GT:
	case OP_LT:
		if (!v || !*v)
			return false;
		errno = 0;
		n = strtoll(v, &end, 10);
		if (*end || errno == ERANGE)
			return false;
		return r->op == OP_GT ? n > r->num : n < r->num;
	}
	return false;
}

bool label_selector_matches(const struct label_selector *s, const struct model_labels *labels)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (!req_matches(&s->reqs[i], labels))
			return false;
	return true;
}

size_t label_selector_count(const struct label_selector *s)
{
	return s ? s->n : 0;
}
