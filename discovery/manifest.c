/* Manifest decoding: the bytes of one JSON or YAML file become validated model
 * objects. Validation follows the API server closely enough that a manifest
 * accepted here would be accepted by `kubectl apply`, and every rejection is
 * one log line naming the file, the object and the reason. */
#include "discovery/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/file.h"
#include "common/jarena.h"
#include "common/log.h"
#include "discovery/yaml2json.h"

/* Lists may nest (a List of Lists); real files never go deeper than this. */
#define MAX_LIST_DEPTH 4
/* API server limits that also bound our work per object. */
#define MAX_SLICE_ENDPOINTS 1000
#define MAX_ENDPOINT_ADDRS  100
#define MAX_PORTS	    1000

static const char SELECTOR_WHY[] = "a Service selects one group of Pods (plain key=value pairs)";
static const char SERVICE_NAME_LABEL[] = "kubernetes.io/service-name";

/* Where one object comes from and what it is called, for log lines. */
struct dctx {
	const char *where;     /* "manifest demo.yaml", or the API source's name */
	size_t index;	       /* 1-based position in the file, 0 when unknown */
	const char *stem;      /* file stem for generated Pod names, or NULL */
	size_t *unnamed_pods;  /* Pods given a generated name so far in this file */
	const char *kind_name; /* as written, once read; NULL before */
	const char *dflt_kind; /* for an object without kind (a list item), or NULL */
	const char *dflt_api;  /* likewise for apiVersion */
	char id[400];	       /* ctx_id()'s buffer */
	bool kind_known;
	enum model_kind kind;
	const char *ns;	  /* borrowed from the JSON (or "default") */
	const char *name; /* borrowed, or generated_name */
	char generated_name[80];
	/* What happens because of the next rejection, when it is not the whole
	 * object ("only this endpoint is dropped"); NULL otherwise. */
	const char *consequence;
};

/* "Service default/web", "object #3": made only when a line is logged, since
 * formatting it for every object was a tenth of a 100k-object list's decoding. */
static const char *ctx_id(struct dctx *c)
{
	const char *kind = c->kind_name;

	if (c->name && c->kind_known && c->kind == KIND_NAMESPACE)
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

static int bad(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct dctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s: %s: %s%s%s", c->where, ctx_id(c), msg, c->consequence ? "; " : "",
		 c->consequence ? c->consequence : "");
	return -EINVAL;
}

static const char *jtype(const json_t *v)
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

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static bool is_alnum(char ch)
{
	return is_lower_alnum(ch) || (ch >= 'A' && ch <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..len) */
static bool is_label_span(const char *s, size_t len)
{
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return is_lower_alnum(s[0]) && is_lower_alnum(s[len - 1]);
}

static bool is_dns1123_label(const char *s)
{
	return is_label_span(s, strlen(s));
}

static bool is_dns1035_label(const char *s)
{
	return is_dns1123_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

static bool is_dns1123_subdomain(const char *s)
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
static bool is_iana_svc_name(const char *s)
{
	size_t len = strlen(s);
	bool letter = false;
	if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-' || strstr(s, "--"))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_lower_alnum(s[i]) && s[i] != '-')
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

static bool is_label_key(const char *s)
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
	return is_dns1123_subdomain(prefix) &&
	       is_qualified_part(slash + 1, strlen(slash + 1), false);
}

static bool is_label_value(const char *s)
{
	return is_qualified_part(s, strlen(s), true);
}

/* ---- typed field access; each failure is logged once and returns -EINVAL -- */

static bool absent(const json_t *v)
{
	return !v || json_is_null(v);
}

/* A string field: NULL when absent or null. */
static int get_str(struct dctx *c, const json_t *v, const char *path, const char **out)
{
	*out = NULL;
	if (absent(v))
		return 0;
	if (!json_is_string(v))
		return bad(c, "%s: must be a string, got %s", path, jtype(v));
	/* C strings end at NUL; a NUL inside would silently change the value */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bad(c, "%s: must not hold NUL characters", path);
	*out = json_string_value(v);
	return 0;
}

static int get_bool(struct dctx *c, const json_t *v, const char *path, bool dflt, bool *out)
{
	*out = dflt;
	if (absent(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(c, "%s: must be true or false, got %s", path, jtype(v));
	*out = json_is_true(v);
	return 0;
}

/* An object field: NULL when absent or null. */
static int get_obj(struct dctx *c, const json_t *v, const char *path, json_t **out)
{
	*out = NULL;
	if (absent(v))
		return 0;
	if (!json_is_object(v))
		return bad(c, "%s: must be an object, got %s", path, jtype(v));
	*out = (json_t *)v;
	return 0;
}

/* An array field: NULL when absent or null; at most `max` items. */
static int get_arr(struct dctx *c, const json_t *v, const char *path, size_t max, json_t **out)
{
	*out = NULL;
	if (absent(v))
		return 0;
	if (!json_is_array(v))
		return bad(c, "%s: must be a list, got %s", path, jtype(v));
	if (json_array_size(v) > max)
		return bad(c, "%s: more than %zu items", path, max);
	*out = (json_t *)v;
	return 0;
}

/* A port number given as a JSON integer in 1..65535. */
static int get_port(struct dctx *c, const json_t *v, const char *path, uint16_t *out)
{
	*out = 0;
	if (!json_is_integer(v))
		return bad(c, "%s: must be an integer in 1..65535, got %s", path,
			   absent(v) ? "nothing" : jtype(v));
	json_int_t n = json_integer_value(v);
	if (n < 1 || n > 65535)
		return bad(c, "%s: must be in 1..65535, got %lld", path, (long long)n);
	*out = (uint16_t)n;
	return 0;
}

static int get_proto(struct dctx *c, const json_t *v, const char *path, uint8_t *out)
{
	const char *s;
	int rc = get_str(c, v, path, &s);
	if (rc < 0)
		return rc;
	*out = s ? model_proto_parse(s) : PROTO_TCP;
	if (!*out)
		return bad(c, "%s: must be TCP, UDP or SCTP, got \"%.64s\"", path, s);
	return 0;
}

static int dup_str(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* Field paths for error messages are made for every field, as each one may
 * be needed; by hand, because snprintf for each was a tenth of decoding a
 * large list. Both truncate as snprintf would. */
static void path_join(char *out, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la >= cap)
		la = cap - 1;
	memcpy(out, a, la);
	if (lb >= cap - la)
		lb = cap - la - 1;
	memcpy(out + la, b, lb);
	out[la + lb] = '\0';
}

static void path_index(char *out, size_t cap, const char *base, size_t i)
{
	char num[24];
	size_t n = sizeof(num);

	num[--n] = '\0';
	num[--n] = ']';
	do
		num[--n] = (char)('0' + i % 10);
	while ((i /= 10) && n > 1);
	num[--n] = '[';
	path_join(out, cap, base, num + n);
}

/* A string-to-string map: labels, or a selector (`why` explains the rule). */
static int get_labels(struct dctx *c, const json_t *v, const char *path, const char *why,
		      struct model_labels *out)
{
	json_t *obj;
	const char *key;
	json_t *val;
	int rc = get_obj(c, v, path, &obj);
	if (rc < 0 || !obj || json_object_size(obj) == 0)
		return rc;
	out->items = calloc(json_object_size(obj), sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	json_object_foreach(obj, key, val)
	{
		if (!json_is_string(val) ||
		    strlen(json_string_value(val)) != json_string_length(val))
			return bad(c, "%s.%.100s: value must be a string, got %s%s%s", path, key,
				   json_is_string(val) ? "a NUL character" : jtype(val),
				   why ? ": " : "", why ? why : "");
		if (!is_label_key(key))
			return bad(c, "%s: \"%.100s\" is not a valid label key", path, key);
		if (!is_label_value(json_string_value(val)))
			return bad(c,
				   "%s.%.100s: \"%.100s\" is not a valid label value (at most 63 "
				   "letters, digits, '-', '_' or '.')",
				   path, key, json_string_value(val));
		struct model_label *l = &out->items[out->n++];
		if (dup_str(key, &l->key) < 0 || dup_str(json_string_value(val), &l->value) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void labels_free(struct model_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	*l = (struct model_labels){0};
}

/* One address, or two of different families (dual-stack). */
static int parse_ip(struct dctx *c, const char *text, const char *path, struct net_addr *out)
{
	if (net_addr_parse(text, out) < 0)
		return bad(c, "%s: \"%.64s\" is not an IP address", path, text);
	return 0;
}

/* ---- Service -------------------------------------------------------------- */

static int svc_cluster_ips(struct dctx *c, const json_t *spec, struct model_service *s)
{
	const char *ip;
	json_t *ips;
	const char *list[2] = {0};
	size_t n = 0;
	int rc;
	char path[64];

	if ((rc = get_str(c, json_object_get(spec, "clusterIP"), "spec.clusterIP", &ip)) < 0 ||
	    (rc = get_arr(c, json_object_get(spec, "clusterIPs"), "spec.clusterIPs", 2, &ips)) < 0)
		return rc;
	for (size_t i = 0; ips && i < json_array_size(ips); i++) {
		path_index(path, sizeof(path), "spec.clusterIPs", i);
		if ((rc = get_str(c, json_array_get(ips, i), path, &list[n])) < 0)
			return rc;
		if (!list[n] || !*list[n])
			return bad(c, "%s: must be an IP address or \"None\"", path);
		n++;
	}
	if (ip && *ip) {
		if (n == 0)
			list[n++] = ip;
		else if (strcmp(list[0], ip) != 0)
			return bad(
			    c, "spec.clusterIPs[0]: \"%.64s\" must equal spec.clusterIP \"%.64s\"",
			    list[0], ip);
	}
	if (s->type == SVC_EXTERNAL_NAME) {
		if (n > 0)
			return bad(c, "spec.clusterIP: must be empty for an ExternalName Service");
		return 0;
	}
	if (n > 0 && strcmp(list[0], "None") == 0) {
		if (n > 1)
			return bad(c, "spec.clusterIPs: \"None\" must be the only entry");
		if (s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER)
			return bad(c, "spec.clusterIP: may not be \"None\" for a %s Service",
				   s->type == SVC_NODE_PORT ? "NodePort" : "LoadBalancer");
		s->headless = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i] == ip)
			snprintf(path, sizeof(path), "spec.clusterIP");
		else
			path_index(path, sizeof(path), "spec.clusterIPs", i);
		if ((rc = parse_ip(c, list[i], path, &s->cluster_ips[i])) < 0)
			return rc;
	}
	if (n == 2 && s->cluster_ips[0].family == s->cluster_ips[1].family)
		return bad(c, "spec.clusterIPs: a dual-stack Service needs one IPv4 and one IPv6 "
			      "address");
	s->n_cluster_ips = n;
	return 0;
}

static int svc_target_port(struct dctx *c, const json_t *v, const char *path,
			   struct model_svc_port *p)
{
	p->target_num = p->port; /* the API server defaults an empty/0 targetPort */
	if (absent(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n == 0)
			return 0;
		if (n < 1 || n > 65535)
			return bad(c, "%s: must be in 1..65535, got %lld", path, (long long)n);
		p->target_num = (uint16_t)n;
		return 0;
	}
	const char *s;
	int rc = get_str(c, v, path, &s);
	if (rc < 0)
		return rc;
	if (!s) /* unreachable: absent() handled null */
		return 0;
	if (!*s)
		return 0;
	size_t len = strlen(s);
	if (strspn(s, "0123456789") == len) {
		/* "8080" is the number 8080, as intstr reads it */
		long n = len <= 5 ? strtol(s, NULL, 10) : 0;
		if (n < 1 || n > 65535)
			return bad(c, "%s: must be in 1..65535, got \"%.20s\"", path, s);
		p->target_num = (uint16_t)n;
		return 0;
	}
	if (!is_iana_svc_name(s))
		return bad(c,
			   "%s: \"%.64s\" is not a port number or a port name (at most 15 "
			   "lowercase letters, digits and '-', with a letter)",
			   path, s);
	p->target_num = 0;
	return dup_str(s, &p->target_name);
}

static int svc_ports(struct dctx *c, const json_t *spec, struct model_service *s)
{
	json_t *ports;
	char path[64], sub[96];
	int rc;

	if ((rc = get_arr(c, json_object_get(spec, "ports"), "spec.ports", MAX_PORTS, &ports)) < 0)
		return rc;
	size_t n = ports ? json_array_size(ports) : 0;
	if (n == 0) {
		if (s->type != SVC_EXTERNAL_NAME && !s->headless)
			return bad(c, "spec.ports: required (at least one port)");
		return 0;
	}
	if (!(s->ports = calloc(n, sizeof(*s->ports))))
		return -ENOMEM;
	s->n_ports = n;
	for (size_t i = 0; i < n; i++) {
		struct model_svc_port *p = &s->ports[i];
		json_t *jp = json_array_get(ports, i);
		const char *name;
		path_index(path, sizeof(path), "spec.ports", i);
		if (!json_is_object(jp))
			return bad(c, "%s: must be an object, got %s", path, jtype(jp));

		path_join(sub, sizeof(sub), path, ".name");
		if ((rc = get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
			return rc;
		if (!name)
			name = "";
		if (*name && !is_dns1123_label(name))
			return bad(c,
				   "%s: \"%.64s\" is not a valid port name (lowercase letters, "
				   "digits and '-', at most 63)",
				   sub, name);
		if (!*name && n > 1)
			return bad(c, "%s: required when a Service has several ports", sub);
		if ((rc = dup_str(name, &p->name)) < 0)
			return rc;

		path_join(sub, sizeof(sub), path, ".port");
		if ((rc = get_port(c, json_object_get(jp, "port"), sub, &p->port)) < 0)
			return rc;
		path_join(sub, sizeof(sub), path, ".protocol");
		if ((rc = get_proto(c, json_object_get(jp, "protocol"), sub, &p->proto)) < 0)
			return rc;
		path_join(sub, sizeof(sub), path, ".targetPort");
		if ((rc = svc_target_port(c, json_object_get(jp, "targetPort"), sub, p)) < 0)
			return rc;

		json_t *np = json_object_get(jp, "nodePort");
		path_join(sub, sizeof(sub), path, ".nodePort");
		if (!absent(np) && !(json_is_integer(np) && json_integer_value(np) == 0)) {
			if (s->type != SVC_NODE_PORT && s->type != SVC_LOAD_BALANCER)
				return bad(c, "%s: only a NodePort or LoadBalancer Service has one",
					   sub);
			/* The API server's --service-node-port-range is its own
			 * choice: any port it assigned is served. Allocation for
			 * manifests without one uses --node-port-range (view.c). */
			if (!json_is_integer(np) || json_integer_value(np) < 1 ||
			    json_integer_value(np) > 65535)
				return bad(c, "%s: must be an integer in 1..65535", sub);
			p->node_port = (uint16_t)json_integer_value(np);
		}

		for (size_t j = 0; j < i; j++) {
			const struct model_svc_port *q = &s->ports[j];
			if (*p->name && strcmp(q->name, p->name) == 0)
				return bad(c, "%s.name: \"%s\" is used by spec.ports[%zu] too",
					   path, p->name, j);
			if (q->port == p->port && q->proto == p->proto)
				return bad(c, "%s: port %u/%s is listed twice", path, p->port,
					   model_proto_name(p->proto));
			/* the API server lets TCP and UDP share a nodePort */
			if (p->node_port && q->node_port == p->node_port && q->proto == p->proto)
				return bad(c, "%s.nodePort: %u/%s is used by spec.ports[%zu] too",
					   path, p->node_port, model_proto_name(p->proto), j);
		}
	}
	return 0;
}

static int decode_service(struct dctx *c, const json_t *obj, struct model_service **out)
{
	struct model_service *s = calloc(1, sizeof(*s));
	json_t *spec, *cfg, *cip;
	const char *type, *affinity, *ext;
	int rc;

	if (!s)
		return -ENOMEM;
	s->affinity_timeout = 10800;
	if ((rc = dup_str(c->ns, &s->ns)) < 0 || (rc = dup_str(c->name, &s->name)) < 0)
		goto fail;
	if ((rc = get_obj(c, json_object_get(obj, "spec"), "spec", &spec)) < 0)
		goto fail;
	if (!spec) {
		rc = bad(c, "spec: required");
		goto fail;
	}

	if ((rc = get_str(c, json_object_get(spec, "type"), "spec.type", &type)) < 0)
		goto fail;
	if (!type || strcmp(type, "ClusterIP") == 0) {
		s->type = SVC_CLUSTER_IP;
	} else if (strcmp(type, "NodePort") == 0) {
		s->type = SVC_NODE_PORT;
	} else if (strcmp(type, "LoadBalancer") == 0) {
		s->type = SVC_LOAD_BALANCER;
	} else if (strcmp(type, "ExternalName") == 0) {
		s->type = SVC_EXTERNAL_NAME;
	} else {
		rc = bad(c,
			 "spec.type: must be ClusterIP, NodePort, LoadBalancer or ExternalName, "
			 "got \"%.64s\"",
			 type);
		goto fail;
	}

	if ((rc = svc_cluster_ips(c, spec, s)) < 0)
		goto fail;

	if (s->type == SVC_EXTERNAL_NAME) {
		if ((rc = get_str(c, json_object_get(spec, "externalName"), "spec.externalName",
				  &ext)) < 0)
			goto fail;
		if (!ext || !*ext) {
			rc = bad(c, "spec.externalName: required for an ExternalName Service");
			goto fail;
		}
		if ((rc = dup_str(ext, &s->external_name)) < 0)
			goto fail;
		/* DNS names are case-insensitive; store the canonical spelling */
		size_t len = strlen(s->external_name);
		if (len > 1 && s->external_name[len - 1] == '.')
			s->external_name[--len] = '\0';
		for (char *p = s->external_name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!is_dns1123_subdomain(s->external_name)) {
			rc = bad(c, "spec.externalName: \"%.100s\" is not a valid DNS name", ext);
			goto fail;
		}
	}

	if ((rc = svc_ports(c, spec, s)) < 0)
		goto fail;

	json_t *sel = json_object_get(spec, "selector");
	s->has_selector = !absent(sel);
	if ((rc = get_labels(c, sel, "spec.selector", SELECTOR_WHY, &s->selector)) < 0)
		goto fail;

	if ((rc = get_bool(c, json_object_get(spec, "publishNotReadyAddresses"),
			   "spec.publishNotReadyAddresses", false, &s->publish_not_ready)) < 0)
		goto fail;

	if ((rc = get_str(c, json_object_get(spec, "sessionAffinity"), "spec.sessionAffinity",
			  &affinity)) < 0)
		goto fail;
	if (affinity && strcmp(affinity, "ClientIP") == 0) {
		s->affinity_client_ip = true;
	} else if (affinity && *affinity && strcmp(affinity, "None") != 0) {
		rc = bad(c, "spec.sessionAffinity: must be None or ClientIP, got \"%.64s\"",
			 affinity);
		goto fail;
	}
	if ((rc = get_obj(c, json_object_get(spec, "sessionAffinityConfig"),
			  "spec.sessionAffinityConfig", &cfg)) < 0)
		goto fail;
	if (cfg && (rc = get_obj(c, json_object_get(cfg, "clientIP"),
				 "spec.sessionAffinityConfig.clientIP", &cip)) < 0)
		goto fail;
	if (cfg && cip && !absent(json_object_get(cip, "timeoutSeconds"))) {
		json_t *t = json_object_get(cip, "timeoutSeconds");
		if (!json_is_integer(t) || json_integer_value(t) < 1 ||
		    json_integer_value(t) > 86400) {
			rc = bad(c, "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be "
				    "an integer in 1..86400");
			goto fail;
		}
		s->affinity_timeout = (uint32_t)json_integer_value(t);
	}
	*out = s;
	return 0;
fail:
	model_service_free(s);
	return rc;
}

/* ---- EndpointSlice -------------------------------------------------------- */

static int slice_ports(struct dctx *c, const json_t *obj, struct model_slice *sl)
{
	json_t *ports;
	char path[64], sub[96];
	int rc;

	if ((rc = get_arr(c, json_object_get(obj, "ports"), "ports", MAX_PORTS, &ports)) < 0)
		return rc;
	if (!ports || json_array_size(ports) == 0)
		return 0;
	if (!(sl->ports = calloc(json_array_size(ports), sizeof(*sl->ports))))
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(ports); i++) {
		json_t *jp = json_array_get(ports, i);
		const char *name;
		uint16_t port;
		uint8_t proto;
		path_index(path, sizeof(path), "ports", i);
		if (!json_is_object(jp))
			return bad(c, "%s: must be an object, got %s", path, jtype(jp));
		path_join(sub, sizeof(sub), path, ".name");
		if ((rc = get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
			return rc;
		if (name && *name && !is_dns1123_label(name))
			return bad(c, "%s: \"%.64s\" is not a valid port name", sub, name);
		path_join(sub, sizeof(sub), path, ".protocol");
		if ((rc = get_proto(c, json_object_get(jp, "protocol"), sub, &proto)) < 0)
			return rc;
		/* a port with no number means "all ports" to the API; there is
		 * nothing DNS could publish for it */
		json_t *jport = json_object_get(jp, "port");
		if (absent(jport))
			continue;
		path_join(sub, sizeof(sub), path, ".port");
		if ((rc = get_port(c, jport, sub, &port)) < 0)
			return rc;
		struct model_slice_port *p = &sl->ports[sl->n_ports++];
		p->port = port;
		p->proto = proto;
		if ((rc = dup_str(name ? name : "", &p->name)) < 0)
			return rc;
	}
	return 0;
}

static int slice_endpoint(struct dctx *c, const json_t *je, const char *path,
			  struct model_slice *sl, struct model_endpoint *ep)
{
	json_t *addrs, *cond, *ref;
	const char *s;
	char sub[128];
	int rc;

	if (!json_is_object(je))
		return bad(c, "%s: must be an object, got %s", path, jtype(je));
	path_join(sub, sizeof(sub), path, ".addresses");
	if ((rc = get_arr(c, json_object_get(je, "addresses"), sub, MAX_ENDPOINT_ADDRS, &addrs)) <
	    0)
		return rc;
	if (!addrs || json_array_size(addrs) == 0)
		return bad(c, "%s: required (at least one address)", sub);
	if (!(ep->addrs = calloc(json_array_size(addrs), sizeof(*ep->addrs))))
		return -ENOMEM;
	char list[sizeof(sub)];
	memcpy(list, sub, sizeof(list));
	for (size_t i = 0; i < json_array_size(addrs); i++) {
		path_index(sub, sizeof(sub), list, i);
		if ((rc = get_str(c, json_array_get(addrs, i), sub, &s)) < 0)
			return rc;
		if (!s)
			return bad(c, "%s: must be an address, got null", sub);
		if (sl->address_type == 0)
			continue; /* FQDN endpoints are kept out of the model */
		struct net_addr *a = &ep->addrs[ep->n_addrs];
		if (net_addr_parse(s, a) < 0 || a->family != sl->address_type)
			return bad(c, "%s: \"%.64s\" is not an %s address", sub, s,
				   sl->address_type == AF_INET ? "IPv4" : "IPv6");
		ep->n_addrs++;
	}

	path_join(sub, sizeof(sub), path, ".conditions");
	if ((rc = get_obj(c, json_object_get(je, "conditions"), sub, &cond)) < 0)
		return rc;
	ep->ready = true;
	ep->terminating = false;
	if (cond) {
		path_join(sub, sizeof(sub), path, ".conditions.ready");
		if ((rc = get_bool(c, json_object_get(cond, "ready"), sub, true, &ep->ready)) < 0)
			return rc;
		path_join(sub, sizeof(sub), path, ".conditions.terminating");
		if ((rc = get_bool(c, json_object_get(cond, "terminating"), sub, false,
				   &ep->terminating)) < 0)
			return rc;
	}
	ep->serving = ep->ready;
	if (cond) {
		path_join(sub, sizeof(sub), path, ".conditions.serving");
		if ((rc = get_bool(c, json_object_get(cond, "serving"), sub, ep->ready,
				   &ep->serving)) < 0)
			return rc;
	}

	path_join(sub, sizeof(sub), path, ".hostname");
	if ((rc = get_str(c, json_object_get(je, "hostname"), sub, &s)) < 0)
		return rc;
	if (s && !is_dns1123_label(s))
		return bad(c, "%s: \"%.64s\" is not a valid DNS label", sub, s);
	if ((rc = dup_str(s, &ep->hostname)) < 0)
		return rc;
	path_join(sub, sizeof(sub), path, ".nodeName");
	if ((rc = get_str(c, json_object_get(je, "nodeName"), sub, &s)) < 0 ||
	    (rc = dup_str(s && *s ? s : NULL, &ep->node_name)) < 0)
		return rc;
	path_join(sub, sizeof(sub), path, ".targetRef");
	if ((rc = get_obj(c, json_object_get(je, "targetRef"), sub, &ref)) < 0)
		return rc;
	if (ref) {
		const char *kind, *name;
		path_join(sub, sizeof(sub), path, ".targetRef.kind");
		if ((rc = get_str(c, json_object_get(ref, "kind"), sub, &kind)) < 0)
			return rc;
		path_join(sub, sizeof(sub), path, ".targetRef.name");
		if ((rc = get_str(c, json_object_get(ref, "name"), sub, &name)) < 0)
			return rc;
		if (kind && strcmp(kind, "Pod") == 0 && name && *name &&
		    (rc = dup_str(name, &ep->pod_name)) < 0)
			return rc;
	}
	return 0;
}

static void endpoint_clear(struct model_endpoint *ep)
{
	free(ep->addrs);
	free(ep->hostname);
	free(ep->node_name);
	free(ep->pod_name);
	*ep = (struct model_endpoint){0};
}

static int decode_slice(struct dctx *c, const json_t *obj, struct model_slice **out)
{
	struct model_slice *sl = calloc(1, sizeof(*sl));
	json_t *meta, *labels, *eps;
	const char *at, *svc;
	char path[64];
	int rc;

	if (!sl)
		return -ENOMEM;
	if ((rc = dup_str(c->ns, &sl->ns)) < 0 || (rc = dup_str(c->name, &sl->name)) < 0)
		goto fail;

	if ((rc = get_str(c, json_object_get(obj, "addressType"), "addressType", &at)) < 0)
		goto fail;
	if (at && strcmp(at, "IPv4") == 0) {
		sl->address_type = AF_INET;
	} else if (at && strcmp(at, "IPv6") == 0) {
		sl->address_type = AF_INET6;
	} else if (at && strcmp(at, "FQDN") == 0) {
		sl->address_type = 0;
	} else {
		rc = bad(c, "addressType: must be IPv4, IPv6 or FQDN, got %s%.64s%s",
			 at ? "\"" : "", at ? at : "nothing", at ? "\"" : "");
		goto fail;
	}

	/* labels were validated with the metadata; only the Service link matters */
	meta = json_object_get(obj, "metadata");
	labels = json_object_get(meta, "labels");
	if ((rc = get_str(c, json_object_get(labels, SERVICE_NAME_LABEL),
			  "metadata.labels.kubernetes.io/service-name", &svc)) < 0)
		goto fail;
	/* The label is optional: a slice without it (or whose label was
	 * removed) is valid and belongs to no Service, so it publishes nothing.
	 * Rejecting it would keep serving its previous version. */
	if (svc && *svc && (rc = dup_str(svc, &sl->service)) < 0)
		goto fail;

	if ((rc = slice_ports(c, obj, sl)) < 0)
		goto fail;

	if ((rc = get_arr(c, json_object_get(obj, "endpoints"), "endpoints", MAX_SLICE_ENDPOINTS,
			  &eps)) < 0)
		goto fail;
	if (eps && json_array_size(eps) > 0) {
		if (!(sl->endpoints = calloc(json_array_size(eps), sizeof(*sl->endpoints)))) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < json_array_size(eps); i++) {
			path_index(path, sizeof(path), "endpoints", i);
			/* counted before filling so that a failure frees the partial one */
			struct model_endpoint *ep = &sl->endpoints[sl->n_endpoints++];
			c->consequence = "only this endpoint is dropped";
			rc = slice_endpoint(c, json_array_get(eps, i), path, sl, ep);
			c->consequence = NULL;
			if (rc == -ENOMEM)
				goto fail;
			if (rc < 0) {
				/* logged; one unusable endpoint never hides its neighbours */
				endpoint_clear(ep);
				sl->n_endpoints--;
			}
		}
		if (sl->address_type == 0) {
			/* FQDN slices are accepted but carry nothing DNS serves */
			for (size_t i = 0; i < sl->n_endpoints; i++)
				endpoint_clear(&sl->endpoints[i]);
			free(sl->endpoints);
			sl->endpoints = NULL;
			sl->n_endpoints = 0;
		}
	}
	*out = sl;
	return 0;
fail:
	model_slice_free(sl);
	return rc;
}

/* ---- Pod ------------------------------------------------------------------ */

static int pod_container_ports(struct dctx *c, const json_t *containers, const char *list,
			       bool sidecars_only, struct model_pod *p)
{
	char path[64], sub[160];
	int rc;

	for (size_t i = 0; i < json_array_size(containers); i++) {
		json_t *ct = json_array_get(containers, i), *ports;
		snprintf(path, sizeof(path), "spec.%s[%zu]", list, i);
		if (!json_is_object(ct))
			return bad(c, "%s: must be an object, got %s", path, jtype(ct));
		if (sidecars_only) {
			/* only init containers that keep running serve traffic */
			const char *policy;
			path_join(sub, sizeof(sub), path, ".restartPolicy");
			if ((rc = get_str(c, json_object_get(ct, "restartPolicy"), sub, &policy)) <
			    0)
				return rc;
			if (!policy || strcmp(policy, "Always") != 0)
				continue;
		}
		path_join(sub, sizeof(sub), path, ".ports");
		if ((rc = get_arr(c, json_object_get(ct, "ports"), sub, MAX_PORTS, &ports)) < 0)
			return rc;
		size_t n = ports ? json_array_size(ports) : 0;
		if (n == 0)
			continue;
		if (p->n_ports + n > MAX_PORTS)
			return bad(c, "%s: more than %d container ports", sub, MAX_PORTS);
		struct model_container_port *np =
		    realloc(p->ports, (p->n_ports + n) * sizeof(*p->ports));
		if (!np)
			return -ENOMEM;
		p->ports = np;
		for (size_t j = 0; j < n; j++) {
			json_t *jp = json_array_get(ports, j);
			struct model_container_port *cp = &p->ports[p->n_ports];
			const char *name;
			*cp = (struct model_container_port){0};
			snprintf(sub, sizeof(sub), "%s.ports[%zu]", path, j);
			if (!json_is_object(jp))
				return bad(c, "%s: must be an object, got %s", sub, jtype(jp));
			p->n_ports++;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].containerPort", path, j);
			if ((rc = get_port(c, json_object_get(jp, "containerPort"), sub,
					   &cp->port)) < 0)
				return rc;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].protocol", path, j);
			if ((rc = get_proto(c, json_object_get(jp, "protocol"), sub, &cp->proto)) <
			    0)
				return rc;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].name", path, j);
			if ((rc = get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
				return rc;
			if (name && *name && !is_iana_svc_name(name))
				return bad(c,
					   "%s: \"%.64s\" is not a valid port name (at most 15 "
					   "lowercase letters, digits and '-', with a letter)",
					   sub, name);
			if ((rc = dup_str(name && *name ? name : NULL, &cp->name)) < 0)
				return rc;
		}
	}
	return 0;
}

static int pod_status(struct dctx *c, const json_t *status, struct model_pod *p)
{
	const char *phase, *ip;
	json_t *conds, *ips;
	const char *list[2] = {0};
	size_t n = 0;
	char path[64];
	int rc;
	bool have_ready = false;

	p->has_status = true;
	if ((rc = get_str(c, json_object_get(status, "phase"), "status.phase", &phase)) < 0)
		return rc;
	p->terminal = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);

	if ((rc = get_arr(c, json_object_get(status, "conditions"), "status.conditions", 64,
			  &conds)) < 0)
		return rc;
	for (size_t i = 0; conds && i < json_array_size(conds); i++) {
		json_t *cd = json_array_get(conds, i);
		const char *type, *st;
		path_index(path, sizeof(path), "status.conditions", i);
		if (!json_is_object(cd))
			return bad(c, "%s: must be an object, got %s", path, jtype(cd));
		snprintf(path, sizeof(path), "status.conditions[%zu].type", i);
		if ((rc = get_str(c, json_object_get(cd, "type"), path, &type)) < 0)
			return rc;
		snprintf(path, sizeof(path), "status.conditions[%zu].status", i);
		if ((rc = get_str(c, json_object_get(cd, "status"), path, &st)) < 0)
			return rc;
		if (type && strcmp(type, "Ready") == 0) {
			have_ready = true;
			p->ready = st && strcmp(st, "True") == 0;
		}
	}
	if (!have_ready)
		p->ready = phase && strcmp(phase, "Running") == 0;

	if ((rc = get_str(c, json_object_get(status, "podIP"), "status.podIP", &ip)) < 0 ||
	    (rc = get_arr(c, json_object_get(status, "podIPs"), "status.podIPs", 2, &ips)) < 0)
		return rc;
	for (size_t i = 0; ips && i < json_array_size(ips); i++) {
		json_t *e = json_array_get(ips, i);
		path_index(path, sizeof(path), "status.podIPs", i);
		if (!json_is_object(e))
			return bad(c, "%s: must be an object, got %s", path, jtype(e));
		snprintf(path, sizeof(path), "status.podIPs[%zu].ip", i);
		if ((rc = get_str(c, json_object_get(e, "ip"), path, &list[n])) < 0)
			return rc;
		if (!list[n] || !*list[n])
			return bad(c, "%s: required", path);
		n++;
	}
	if (ip && *ip) {
		if (n == 0)
			list[n++] = ip;
		else if (strcmp(list[0], ip) != 0)
			return bad(
			    c, "status.podIPs[0].ip: \"%.64s\" must equal status.podIP \"%.64s\"",
			    list[0], ip);
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i] == ip)
			snprintf(path, sizeof(path), "status.podIP");
		else
			snprintf(path, sizeof(path), "status.podIPs[%zu].ip", i);
		if ((rc = parse_ip(c, list[i], path, &p->ips[i])) < 0)
			return rc;
	}
	if (n == 2 && p->ips[0].family == p->ips[1].family)
		return bad(c, "status.podIPs: a dual-stack Pod has one IPv4 and one IPv6 address");
	p->n_ips = n;
	return 0;
}

static int decode_pod(struct dctx *c, const json_t *obj, struct model_pod **out)
{
	struct model_pod *p = calloc(1, sizeof(*p));
	json_t *meta, *spec, *list, *status;
	const char *s;
	int rc;

	if (!p)
		return -ENOMEM;
	p->name_generated = c->name == c->generated_name;
	if ((rc = dup_str(c->ns, &p->ns)) < 0 || (rc = dup_str(c->name, &p->name)) < 0)
		goto fail;
	meta = json_object_get(obj, "metadata");
	if ((rc = get_labels(c, json_object_get(meta, "labels"), "metadata.labels", NULL,
			     &p->labels)) < 0)
		goto fail;
	p->terminating = !absent(json_object_get(meta, "deletionTimestamp"));

	if ((rc = get_obj(c, json_object_get(obj, "spec"), "spec", &spec)) < 0)
		goto fail;
	if (spec) {
		if ((rc = get_arr(c, json_object_get(spec, "containers"), "spec.containers",
				  MAX_PORTS, &list)) < 0 ||
		    (list && (rc = pod_container_ports(c, list, "containers", false, p)) < 0))
			goto fail;
		if ((rc = get_arr(c, json_object_get(spec, "initContainers"), "spec.initContainers",
				  MAX_PORTS, &list)) < 0 ||
		    (list && (rc = pod_container_ports(c, list, "initContainers", true, p)) < 0))
			goto fail;
		if ((rc = get_str(c, json_object_get(spec, "hostname"), "spec.hostname", &s)) < 0)
			goto fail;
		if (s && *s && !is_dns1123_label(s)) {
			rc = bad(c, "spec.hostname: \"%.64s\" is not a valid DNS label", s);
			goto fail;
		}
		if ((rc = dup_str(s && *s ? s : NULL, &p->hostname)) < 0)
			goto fail;
		if ((rc = get_str(c, json_object_get(spec, "subdomain"), "spec.subdomain", &s)) < 0)
			goto fail;
		if (s && *s && !is_dns1123_label(s)) {
			rc = bad(c, "spec.subdomain: \"%.64s\" is not a valid DNS label", s);
			goto fail;
		}
		if ((rc = dup_str(s && *s ? s : NULL, &p->subdomain)) < 0)
			goto fail;
		if ((rc = get_str(c, json_object_get(spec, "nodeName"), "spec.nodeName", &s)) < 0 ||
		    (rc = dup_str(s && *s ? s : NULL, &p->node_name)) < 0)
			goto fail;
	}

	if ((rc = get_obj(c, json_object_get(obj, "status"), "status", &status)) < 0)
		goto fail;
	if (status) {
		if ((rc = pod_status(c, status, p)) < 0)
			goto fail;
	} else {
		/* written for a cluster that would run it: taken as running and ready */
		p->ready = true;
	}
	*out = p;
	return 0;
fail:
	model_pod_free(p);
	return rc;
}

/* ---- one object ----------------------------------------------------------- */

/* A DNS label from a file name: "My_Demo.yaml" -> "my-demo". */
static void file_stem(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < outlen; i++) {
		char ch = (char)tolower((unsigned char)base[i]);
		if (!is_lower_alnum(ch))
			ch = '-';
		if (ch == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = ch;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "pod");
}

static int known_kind(const char *kind, enum model_kind *k, const char **api)
{
	static const struct {
		const char *kind;
		const char *api;
		enum model_kind k;
	} kinds[] = {
	    {"Service", "v1", KIND_SERVICE},
	    {"EndpointSlice", "discovery.k8s.io/v1", KIND_SLICE},
	    {"Pod", "v1", KIND_POD},
	    {"Namespace", "v1", KIND_NAMESPACE},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kind, kinds[i].kind) == 0) {
			*k = kinds[i].k;
			*api = kinds[i].api;
			return 1;
		}
	}
	return 0;
}

/* Kinds whose Pods a controller would create. svcdns runs no controllers: a
 * Service selecting those Pods gets no endpoints from these objects. */
static bool is_workload_kind(const char *kind)
{
	static const char *const workloads[] = {
	    "Deployment", "StatefulSet",	   "DaemonSet", "ReplicaSet", "Job",
	    "CronJob",	  "ReplicationController",
	};
	for (size_t i = 0; kind && i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strcmp(kind, workloads[i]) == 0)
			return true;
	return false;
}

/* One line per file for its workloads (the first named, the rest counted):
 * without it, a Deployment's Service shows endpoints=0/0 and nothing says why. */
static void log_workloads(const char *where, json_t *first, size_t n)
{
	json_t *meta = json_object_get(first, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	char more[64] = "";

	if (n > 1)
		snprintf(more, sizeof(more), " and %zu more workload%s", n - 1, n > 2 ? "s" : "");
	log_warn("%s: %.40s %.63s/%.253s%s: not expanded into Pods (svcdns runs no controllers), "
		 "so Services get no endpoints from Deployments, StatefulSets, DaemonSets, "
		 "ReplicaSets or Jobs; write the Pods or EndpointSlices instead",
		 where, json_string_value(json_object_get(first, "kind")),
		 ns && *ns ? ns : "default", name ? name : "(no name)", more);
}

/* Decodes one object; c->kind_known/ns/name tell the caller who was
 * rejected. Returns 0, 1 for an ignored kind, or a negative code. */
static int decode_one(struct dctx *c, json_t *obj, struct model_object *out)
{
	const char *kind = NULL, *api = NULL, *want_api = NULL, *ns = NULL, *name = NULL;
	json_t *meta;
	int rc;

	c->kind_name = NULL;
	if (!json_is_object(obj))
		return bad(c, "must be an object, got %s", jtype(obj));
	if ((rc = get_str(c, json_object_get(obj, "kind"), "kind", &kind)) < 0 ||
	    (rc = get_str(c, json_object_get(obj, "apiVersion"), "apiVersion", &api)) < 0)
		return rc;
	if (!kind)
		kind = c->dflt_kind;
	if (!api)
		api = c->dflt_api;
	if (!kind || !*kind)
		return bad(c, "kind: required");
	if (!known_kind(kind, &c->kind, &want_api)) {
		log_debug("%s: %s: kind %.64s (%.64s) is not used, ignored", c->where, ctx_id(c),
			  kind, api ? api : "no apiVersion");
		return 1;
	}
	c->kind_known = true;
	c->kind_name = kind;

	if ((rc = get_obj(c, json_object_get(obj, "metadata"), "metadata", &meta)) < 0)
		return rc;
	if ((rc = get_str(c, json_object_get(meta, "namespace"), "metadata.namespace", &ns)) < 0 ||
	    (rc = get_str(c, json_object_get(meta, "name"), "metadata.name", &name)) < 0)
		return rc;
	c->ns = c->kind == KIND_NAMESPACE ? NULL : (ns && *ns ? ns : "default");
	if (name && *name) {
		c->name = name;
	} else if (c->kind == KIND_POD && c->stem && c->unnamed_pods) {
		/* kubectl would need generateName; a demo Pod often has no name
		 * at all (the article's does not), so it gets a stable one */
		snprintf(c->generated_name, sizeof(c->generated_name), "%.50s-%zu", c->stem,
			 ++*c->unnamed_pods);
		c->name = c->generated_name;
		log_info("%s: Pod %s/%s: no metadata.name, named after the file", c->where, c->ns,
			 c->name);
	}
	if (!c->name)
		return bad(c, "metadata.name: required");

	if (!api || strcmp(api, want_api) != 0)
		return bad(c, "apiVersion: must be %s for a %s, got %s%.64s%s", want_api, kind,
			   api ? "\"" : "", api ? api : "nothing", api ? "\"" : "");
	if (c->ns && !is_dns1123_label(c->ns))
		return bad(c,
			   "metadata.namespace: \"%.64s\" is not a valid namespace name (a DNS "
			   "label: lowercase letters, digits and '-')",
			   c->ns);
	switch (c->kind) {
	case KIND_SERVICE:
		if (!is_dns1035_label(c->name))
			return bad(c,
				   "metadata.name: a Service name is a DNS-1035 label (at most "
				   "63 lowercase letters, digits and '-', starting with a letter)");
		break;
	case KIND_NAMESPACE:
		if (!is_dns1123_label(c->name))
			return bad(c, "metadata.name: a Namespace name is a DNS label (at most 63 "
				      "lowercase letters, digits and '-')");
		break;
	default:
		if (!is_dns1123_subdomain(c->name))
			return bad(c, "metadata.name: not a valid DNS subdomain name");
		break;
	}
	/* labels of every kind are checked, as the API server would */
	struct model_labels labels = {0};
	rc = get_labels(c, json_object_get(meta, "labels"), "metadata.labels", NULL, &labels);
	labels_free(&labels);
	if (rc < 0)
		return rc;

	out->kind = c->kind;
	switch (c->kind) {
	case KIND_SERVICE:
		return decode_service(c, obj, &out->u.svc);
	case KIND_SLICE:
		return decode_slice(c, obj, &out->u.slice);
	case KIND_POD:
		return decode_pod(c, obj, &out->u.pod);
	default: {
		struct model_namespace *n = calloc(1, sizeof(*n));
		if (!n || !(n->name = strdup(c->name))) {
			free(n);
			return -ENOMEM;
		}
		out->u.ns = n;
		return 0;
	}
	}
}

int manifest_decode_item(const char *where, struct json_t *obj, const char *kind,
			 const char *api_version, struct model_object *out)
{
	struct dctx c = {
	    .where = where ? where : "object", .dflt_kind = kind, .dflt_api = api_version};
	struct model_object o = {0};
	int rc = decode_one(&c, obj, &o);
	if (rc == -ENOMEM)
		log_error("%s: %s: out of memory", c.where, ctx_id(&c));
	if (rc == 0)
		*out = o;
	return rc;
}

int manifest_decode_object(const char *where, struct json_t *obj, struct model_object *out)
{
	return manifest_decode_item(where, obj, NULL, NULL, out);
}

/* ---- files ---------------------------------------------------------------- */

void manifest_result_free(struct manifest_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_objs; i++)
		model_object_free(&r->objs[i]);
	free(r->objs);
	for (size_t i = 0; i < r->n_rejected; i++) {
		free(r->rejected[i].ns);
		free(r->rejected[i].name);
	}
	free(r->rejected);
	*r = (struct manifest_result){0};
}

static int push_obj(struct manifest_result *r, const struct model_object *o, size_t *cap)
{
	if (r->n_objs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct model_object *n = realloc(r->objs, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->objs = n;
		*cap = ncap;
	}
	r->objs[r->n_objs++] = *o;
	return 0;
}

static int push_rejected(struct manifest_result *r, const struct dctx *c)
{
	struct manifest_rejected *n = realloc(r->rejected, (r->n_rejected + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	r->rejected = n;
	struct manifest_rejected *e = &r->rejected[r->n_rejected];
	*e = (struct manifest_rejected){.kind = c->kind};
	if (dup_str(c->ns, &e->ns) < 0 || dup_str(c->name, &e->name) < 0) {
		free(e->ns);
		free(e->name);
		return -ENOMEM;
	}
	r->n_rejected++;
	return 0;
}

/* Flattens List objects (kubectl get -o json/yaml writes them) into `flat`. */
static int expand(json_t *doc, int depth, json_t *flat, char *err, size_t errlen)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	json_t *items = json_object_get(doc, "items");
	size_t klen = kind ? strlen(kind) : 0;

	if (kind && klen >= 4 && strcmp(kind + klen - 4, "List") == 0 && json_is_array(items)) {
		size_t i;
		json_t *it;
		if (depth >= MAX_LIST_DEPTH) {
			snprintf(err, errlen, "Lists nested deeper than %d levels", MAX_LIST_DEPTH);
			return -EINVAL;
		}
		json_array_foreach(items, i, it)
		{
			int rc = json_is_object(it) ? expand(it, depth + 1, flat, err, errlen)
						    : (json_array_append(flat, it) ? -ENOMEM : 0);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	return json_array_append(flat, doc) ? -ENOMEM : 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* Parses the bytes into an array of top-level documents. */
static int parse_docs(const char *path, const char *data, size_t len, json_t **docs, char *err,
		      size_t errlen)
{
	size_t i = 0;
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		i = 3; /* a UTF-8 byte order mark, as some editors write */
	size_t start = i;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	bool json_ext = has_suffix(path, ".json");
	bool looks_json = i < len && (data[i] == '{' || data[i] == '[');

	*docs = NULL;
	if (json_ext || looks_json) {
		json_error_t jerr;
		json_t *v = json_loadb(data + start, len - start, JSON_REJECT_DUPLICATES, &jerr);
		if (v) {
			if (!(*docs = json_array()) || json_array_append_new(*docs, v)) {
				json_decref(*docs);
				*docs = NULL;
				return -ENOMEM;
			}
			return 0;
		}
		if (json_ext) {
			snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column,
				 jerr.text);
			return -EINVAL;
		}
		/* flow-style YAML also starts with '{': let the YAML parser judge */
	}
	return yaml_to_json_docs(data, len, docs, err, errlen);
}

static int decode_file(const char *path, const char *data, size_t len, struct manifest_result *r)
{
	char where[4200], err[512] = "", stem[64];
	json_t *docs = NULL, *flat = NULL;
	size_t cap = 0, unnamed_pods = 0, n_workloads = 0, i;
	json_t *doc, *first_workload = NULL;
	int rc = 0;

	*r = (struct manifest_result){0};
	snprintf(where, sizeof(where), "manifest %s", path);
	if (len > MANIFEST_MAX_FILE) {
		log_warn("%s: larger than %u bytes, refused", where, MANIFEST_MAX_FILE);
		return -EINVAL;
	}
	if (data && memchr(data, '\0', len)) {
		log_warn("%s: holds a NUL byte (not a text file?), refused", where);
		return -EINVAL;
	}
	if ((rc = parse_docs(path, data ? data : "", data ? len : 0, &docs, err, sizeof(err))) <
	    0) {
		if (rc == -ENOMEM)
			log_error("%s: out of memory", where);
		else
			log_warn("%s: cannot be parsed: %s", where, err);
		goto out;
	}
	if (!(flat = json_array())) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(docs, i, doc)
	{
		if (!json_is_object(doc)) {
			/* not a manifest at all: keep whatever the file held before */
			log_warn("%s: document %zu is %s %s, not an object", where, i + 1,
				 json_is_array(doc) || json_is_integer(doc) ? "an" : "a",
				 jtype(doc));
			rc = -EINVAL;
			goto out;
		}
		if ((rc = expand(doc, 0, flat, err, sizeof(err))) < 0) {
			log_warn("%s: document %zu: %s", where, i + 1, err);
			goto out;
		}
	}

	file_stem(path, stem, sizeof(stem));
	json_array_foreach(flat, i, doc)
	{
		if (is_workload_kind(json_string_value(json_object_get(doc, "kind"))) &&
		    n_workloads++ == 0)
			first_workload = doc;
		struct dctx c = {
		    .where = where, .index = i + 1, .stem = stem, .unnamed_pods = &unnamed_pods};
		struct model_object o = {0};
		int orc = decode_one(&c, doc, &o);
		if (orc == 0) {
			/* Packed now, while the document tree is alive, the object's
			 * pieces are reused by the next object's and the tree frees
			 * into one region that the next file's tree fills again;
			 * packed later by the store, the blocks would land in that
			 * region and break it up (loading took twice as long). If
			 * this fails, the store tries again. */
			(void)model_object_pack(&o);
			if ((rc = push_obj(r, &o, &cap)) < 0) {
				model_object_free(&o);
				goto out;
			}
		} else if (orc == -ENOMEM) {
			rc = orc;
			goto out;
		} else if (orc < 0) {
			r->n_invalid++;
			if (c.kind_known && c.name && (rc = push_rejected(r, &c)) < 0)
				goto out;
		}
	}
	if (n_workloads)
		log_workloads(where, first_workload, n_workloads);
	rc = 0;
out:
	if (rc == -ENOMEM)
		log_error("%s: out of memory", where);
	if (rc < 0)
		manifest_result_free(r);
	json_decref(flat);
	json_decref(docs);
	return rc < 0 && rc != -ENOMEM ? -EINVAL : rc;
}

int manifest_decode(const char *path, const char *data, size_t len, struct manifest_result *r)
{
	/* The file's JSON tree lives only inside decode_file: every value of it
	 * comes from the thread's parse region (common/jarena.h). */
	jarena_begin();
	int rc = decode_file(path, data, len, r);
	jarena_end();
	return rc;
}

int manifest_read_file(const char *path, struct manifest_result *r)
{
	char *buf = NULL;
	size_t len = 0;

	*r = (struct manifest_result){0};
	int rc = file_read_all(path, MANIFEST_MAX_FILE, &buf, &len);
	if (rc == -EFBIG)
		log_warn("manifest %s: larger than %u bytes, refused", path, MANIFEST_MAX_FILE);
	else if (rc == -EINVAL)
		log_warn("manifest %s: not a regular file", path);
	else if (rc < 0)
		log_warn("manifest %s: cannot read: %s", path, strerror(-rc));
	if (rc < 0)
		return rc;
	rc = manifest_decode(path, buf, len, r);
	free(buf);
	return rc;
}
