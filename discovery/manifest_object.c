/* Decoding one object: its kind and apiVersion, the metadata every kind
 * shares (namespace, name, labels), then the kind's own fields; a Namespace is
 * nothing more, a ServiceCIDR little more. The API source decodes its objects
 * here too. */
#include "discovery/manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "discovery/manifest_fields.h"

/* A kind may be served at several versions: `api` (may be NULL) picks the
 * entry it names, else the first of the kind says what is expected. */
static int known_kind(const char *kind, const char *api, enum model_kind *k, const char **want)
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
	    {"ServiceCIDR", "networking.k8s.io/v1", KIND_SERVICE_CIDR},
	    {"ServiceCIDR", "networking.k8s.io/v1beta1", KIND_SERVICE_CIDR},
	    {"ServiceImport", "multicluster.x-k8s.io/v1alpha1", KIND_IMPORT},
	};
	int found = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kind, kinds[i].kind) != 0)
			continue;
		if (!found || (api && strcmp(api, kinds[i].api) == 0)) {
			*k = kinds[i].k;
			*want = kinds[i].api;
		}
		found = 1;
	}
	return found;
}

/* spec.cidrs: one or two ranges in canonical form, one per family, as the
 * API server validates them. */
static int decode_service_cidr(struct dctx *c, const json_t *obj, struct model_service_cidr **out)
{
	json_t *spec, *cidrs;
	const char *text;
	char path[32];
	int rc;

	if ((rc = mf_get_obj(c, json_object_get(obj, "spec"), "spec", &spec)) < 0 ||
	    (rc = mf_get_arr(c, json_object_get(spec, "cidrs"), "spec.cidrs", 2, &cidrs)) < 0)
		return rc;
	if (!cidrs || json_array_size(cidrs) == 0)
		return mf_bad(c, "spec.cidrs: required (one range, or two of different families)");
	struct model_service_cidr *sc = calloc(1, sizeof(*sc));
	if (!sc || !(sc->name = strdup(c->name))) {
		free(sc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < json_array_size(cidrs); i++) {
		struct net_cidr *r = &sc->cidrs[sc->n_cidrs];
		char canon[64];
		mf_path_index(path, sizeof(path), "spec.cidrs", i);
		if ((rc = mf_get_str(c, json_array_get(cidrs, i), path, &text)) < 0)
			goto fail;
		if (!text || !strchr(text, '/') || net_cidr_parse(text, r) < 0) {
			rc = mf_bad(c, "%s: \"%.64s\" is not a CIDR", path, text ? text : "");
			goto fail;
		}
		net_addr_format(&r->base, canon, sizeof(canon));
		size_t cl = strlen(canon);
		snprintf(canon + cl, sizeof(canon) - cl, "/%u", r->prefix);
		if (strcmp(canon, text) != 0) {
			rc = mf_bad(c, "%s: \"%.64s\" is not in canonical form (%s)", path, text,
				    canon);
			goto fail;
		}
		if (sc->n_cidrs == 1 && sc->cidrs[0].base.family == r->base.family) {
			rc = mf_bad(c, "%s: two ranges must be of different IP families", path);
			goto fail;
		}
		sc->n_cidrs++;
	}
	*out = sc;
	return 0;
fail:
	free(sc->name);
	free(sc);
	return rc;
}

/* Decodes one object; c->kind_known/ns/name tell the caller who was
 * rejected. Returns 0, 1 for an ignored kind, or a negative code. */
int mf_decode_one(struct dctx *c, json_t *obj, struct model_object *out)
{
	const char *kind = NULL, *api = NULL, *want_api = NULL, *ns = NULL, *name = NULL;
	json_t *meta;
	int rc;

	c->kind_name = NULL;
	if (!json_is_object(obj))
		return mf_bad(c, "must be an object, got %s", mf_jtype(obj));
	if ((rc = mf_get_str(c, json_object_get(obj, "kind"), "kind", &kind)) < 0 ||
	    (rc = mf_get_str(c, json_object_get(obj, "apiVersion"), "apiVersion", &api)) < 0)
		return rc;
	if (!kind)
		kind = c->dflt_kind;
	if (!api)
		api = c->dflt_api;
	if (!kind || !*kind)
		return mf_bad(c, "kind: required");
	if (!known_kind(kind, api, &c->kind, &want_api)) {
		log_debug("%s: %s: kind %.64s (%.64s) is not used, ignored", c->where, mf_ctx_id(c),
			  kind, api ? api : "no apiVersion");
		return 1;
	}
	c->kind_known = true;
	c->kind_name = kind;

	if ((rc = mf_get_obj(c, json_object_get(obj, "metadata"), "metadata", &meta)) < 0)
		return rc;
	if ((rc = mf_get_str(c, json_object_get(meta, "namespace"), "metadata.namespace", &ns)) <
		0 ||
	    (rc = mf_get_str(c, json_object_get(meta, "name"), "metadata.name", &name)) < 0)
		return rc;
	bool cluster_scoped = c->kind == KIND_NAMESPACE || c->kind == KIND_SERVICE_CIDR;
	c->ns = cluster_scoped ? NULL : (ns && *ns ? ns : "default");
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
		return mf_bad(c, "metadata.name: required");

	if (!api || strcmp(api, want_api) != 0)
		return mf_bad(c, "apiVersion: must be %s for a %s, got %s%.64s%s", want_api, kind,
			      api ? "\"" : "", api ? api : "nothing", api ? "\"" : "");
	if (c->ns && !mf_is_dns1123_label(c->ns))
		return mf_bad(c,
			      "metadata.namespace: \"%.64s\" is not a valid namespace name (a DNS "
			      "label: lowercase letters, digits and '-')",
			      c->ns);
	switch (c->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		if (!mf_is_dns1035_label(c->name))
			return mf_bad(
			    c, "metadata.name: a Service name is a DNS-1035 label (at most "
			       "63 lowercase letters, digits and '-', starting with a letter)");
		break;
	case KIND_NAMESPACE:
		if (!mf_is_dns1123_label(c->name))
			return mf_bad(c,
				      "metadata.name: a Namespace name is a DNS label (at most 63 "
				      "lowercase letters, digits and '-')");
		break;
	default:
		if (!mf_is_dns1123_subdomain(c->name))
			return mf_bad(c, "metadata.name: not a valid DNS subdomain name");
		break;
	}
	/* labels of every kind are checked, as the API server would */
	struct model_labels labels = {0};
	rc = mf_get_labels(c, json_object_get(meta, "labels"), "metadata.labels", NULL, &labels);
	if (rc < 0 || c->kind != KIND_NAMESPACE)
		mf_labels_free(&labels);
	if (rc < 0)
		return rc;

	out->kind = c->kind;
	switch (c->kind) {
	case KIND_SERVICE:
		return mf_decode_service(c, obj, &out->u.svc);
	case KIND_SLICE:
		return mf_decode_slice(c, obj, &out->u.slice);
	case KIND_POD:
		if (c->pod_addrs_only)
			return mf_decode_pod_addrs(c, obj, &out->u.pod);
		return mf_decode_pod(c, obj, &out->u.pod);
	case KIND_SERVICE_CIDR:
		return decode_service_cidr(c, obj, &out->u.cidr);
	case KIND_IMPORT:
		return mf_decode_import(c, obj, &out->u.svc);
	default: {
		/* its labels are all it carries: --namespace-labels reads them */
		struct model_namespace *n = calloc(1, sizeof(*n));
		if (!n || !(n->name = strdup(c->name))) {
			free(n);
			mf_labels_free(&labels);
			return -ENOMEM;
		}
		n->labels = labels;
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
	int rc = mf_decode_one(&c, obj, &o);
	if (rc == -ENOMEM)
		log_error("%s: %s: out of memory", c.where, mf_ctx_id(&c));
	if (rc == 0)
		*out = o;
	return rc;
}

int manifest_decode_pod_addrs(const char *where, struct json_t *obj, struct model_object *out)
{
	struct dctx c = {.where = where ? where : "object",
			 .dflt_kind = "Pod",
			 .dflt_api = "v1",
			 .pod_addrs_only = true};
	struct model_object o = {0};
	int rc = mf_decode_one(&c, obj, &o);
	if (rc == -ENOMEM)
		log_error("%s: %s: out of memory", c.where, mf_ctx_id(&c));
	if (rc == 0)
		*out = o;
	return rc;
}

int manifest_decode_object(const char *where, struct json_t *obj, struct model_object *out)
{
	return manifest_decode_item(where, obj, NULL, NULL, out);
}
