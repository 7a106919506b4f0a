/* Typed access to the fields of a decoded JSON object, and the API server's
 * rules for names, labels and ports: every failure is one log line naming the
 * object, the field's path and the reason. */
#include "discovery/manifest_fields.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"

/* "Service default/web", "object #3": made only when a line is logged, since
 * formatting it for every object was a tenth of a 100k-object list's decoding. */
const char *mf_ctx_id(struct dctx *c)
{
	const char *kind = c->kind_name;

	if (c->name && c->kind_known && !c->ns)
		snprintf(c->id, sizeof(c->id), "%.40s %.253s", kind ? kind : "object", c->name);
	else if (c->name)
		snprintf(c->id, sizeof(c->id), "%.40s %.63s/%.253s", kind ? kind : "object", c->ns,
			 c->name);
	else if (c->index)
		snprintf(c->id, sizeof(c->id), "%.40s%sobject #%zu", kind ? kind : "",
			 kind ? " " : "", c->index);
	else
		snprintf(c->id, sizeof(c->id), "%.40s%sobject without a name", kind ? kind : "",
			 kind ? " " : "");
	return c->id;
}

int mf_bad(struct dctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s: %s: %s%s%s", c->where, mf_ctx_id(c), msg, c->consequence ? "; " : "",
		 c->consequence ? c->consequence : "");
	return -EINVAL;
}

const char *mf_jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

/* ---- name rules (k8s.io/apimachinery/pkg/util/validation) ----------------- */

static bool is_alnum(char ch)
{
	return mf_is_lower_alnum(ch) || (ch >= 'A' && ch <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..len) */
static bool is_label_span(const char *s, size_t len)
{
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!mf_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return mf_is_lower_alnum(s[0]) && mf_is_lower_alnum(s[len - 1]);
}

bool mf_is_dns1123_label(const char *s)
{
	return is_label_span(s, strlen(s));
}

bool mf_is_dns1035_label(const char *s)
{
	return mf_is_dns1123_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

bool mf_is_dns1123_subdomain(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253)
		return false;
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!is_label_span(p, n))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

/* IANA_SVC_NAME: what a named port may be called. */
bool mf_is_iana_svc_name(const char *s)
{
	size_t len = strlen(s);
	bool letter = false;
	if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-' || strstr(s, "--"))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!mf_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
		letter |= s[i] >= 'a' && s[i] <= 'z';
	}
	return letter;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters */
static bool is_qualified_part(const char *s, size_t len, bool allow_empty)
{
	if (len == 0)
		return allow_empty;
	if (len > 63 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

bool mf_is_label_key(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash)
		return is_qualified_part(s, strlen(s), false);
	char prefix[254];
	size_t plen = (size_t)(slash - s);
	if (plen == 0 || plen >= sizeof(prefix))
		return false;
	memcpy(prefix, s, plen);
	prefix[plen] = '\0';
	return mf_is_dns1123_subdomain(prefix) &&
	       is_qualified_part(slash + 1, strlen(slash + 1), false);
}

bool mf_is_label_value(const char *s)
{
	return is_qualified_part(s, strlen(s), true);
}

/* ---- typed field access; each failure is logged once and returns -EINVAL -- */

int mf_get_str(struct dctx *c, const json_t *v, const char *path, const char **out)
{
	*out = NULL;
	if (mf_absent(v))
		return 0;
	if (!json_is_string(v))
		return mf_bad(c, "%s: must be a string, got %s", path, mf_jtype(v));
	/* C strings end at NUL; a NUL inside would silently change the value */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return mf_bad(c, "%s: must not hold NUL characters", path);
	*out = json_string_value(v);
	return 0;
}

int mf_get_bool(struct dctx *c, const json_t *v, const char *path, bool dflt, bool *out)
{
	*out = dflt;
	if (mf_absent(v))
		return 0;
	if (!json_is_boolean(v))
		return mf_bad(c, "%s: must be true or false, got %s", path, mf_jtype(v));
	*out = json_is_true(v);
	return 0;
}

/* An object field: NULL when absent or null. */
int mf_get_obj(struct dctx *c, const json_t *v, const char *path, json_t **out)
{
	*out = NULL;
	if (mf_absent(v))
		return 0;
	if (!json_is_object(v))
		return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(v));
	*out = (json_t *)v;
	return 0;
}

/* An array field: NULL when absent or null; at most `max` items. */
int mf_get_arr(struct dctx *c, const json_t *v, const char *path, size_t max, json_t **out)
{
	*out = NULL;
	if (mf_absent(v))
		return 0;
	if (!json_is_array(v))
		return mf_bad(c, "%s: must be a list, got %s", path, mf_jtype(v));
	if (json_array_size(v) > max)
		return mf_bad(c, "%s: more than %zu items", path, max);
	*out = (json_t *)v;
	return 0;
}

/* A port number given as a JSON integer in 1..65535. */
int mf_get_port(struct dctx *c, const json_t *v, const char *path, uint16_t *out)
{
	*out = 0;
	if (!json_is_integer(v))
		return mf_bad(c, "%s: must be an integer in 1..65535, got %s", path,
			      mf_absent(v) ? "nothing" : mf_jtype(v));
	json_int_t n = json_integer_value(v);
	if (n < 1 || n > 65535)
		return mf_bad(c, "%s: must be in 1..65535, got %lld", path, (long long)n);
	*out = (uint16_t)n;
	return 0;
}

int mf_get_proto(struct dctx *c, const json_t *v, const char *path, uint8_t *out)
{
	const char *s;
	int rc = mf_get_str(c, v, path, &s);
	if (rc < 0)
		return rc;
	*out = s ? model_proto_parse(s) : PROTO_TCP;
	if (!*out)
		return mf_bad(c, "%s: must be TCP, UDP or SCTP, got \"%.64s\"", path, s);
	return 0;
}

int mf_dup_str(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* A string-to-string map: labels, or a selector (`why` explains the rule). */
int mf_get_labels(struct dctx *c, const json_t *v, const char *path, const char *why,
		  struct model_labels *out)
{
	json_t *obj;
	const char *key;
	json_t *val;
	int rc = mf_get_obj(c, v, path, &obj);
	if (rc < 0 || !obj || json_object_size(obj) == 0)
		return rc;
	out->items = calloc(json_object_size(obj), sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	json_object_foreach(obj, key, val)
	{
		if (!json_is_string(val) ||
		    strlen(json_string_value(val)) != json_string_length(val))
			return mf_bad(c, "%s.%.100s: value must be a string, got %s%s%s", path, key,
				      json_is_string(val) ? "a NUL character" : mf_jtype(val),
				      why ? ": " : "", why ? why : "");
		if (!mf_is_label_key(key))
			return mf_bad(c, "%s: \"%.100s\" is not a valid label key", path, key);
		if (!mf_is_label_value(json_string_value(val)))
			return mf_bad(
			    c,
			    "%s.%.100s: \"%.100s\" is not a valid label value (at most 63 "
			    "letters, digits, '-', '_' or '.')",
			    path, key, json_string_value(val));
		struct model_label *l = &out->items[out->n++];
		if (mf_dup_str(key, &l->key) < 0 ||
		    mf_dup_str(json_string_value(val), &l->value) < 0)
			return -ENOMEM;
	}
	return 0;
}

void mf_labels_free(struct model_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	*l = (struct model_labels){0};
}

/* One address, or two of different families (dual-stack). */
int mf_parse_ip(struct dctx *c, const char *text, const char *path, struct net_addr *out)
{
	if (net_addr_parse(text, out) < 0)
		return mf_bad(c, "%s: \"%.64s\" is not an IP address", path, text);
	return 0;
}
