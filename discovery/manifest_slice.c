/* Decoding an EndpointSlice: its address type, ports and endpoints (an
 * unusable endpoint is dropped alone), the Service it belongs to (the
 * kubernetes.io/service-name label, or the ServiceImport that
 * multicluster.kubernetes.io/service-name names), and the time of the change
 * it reflects. */
#include "discovery/manifest_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"

static const char SERVICE_NAME_LABEL[] = "kubernetes.io/service-name";
static const char TRIGGER_TIME_ANNOTATION[] = "endpoints.kubernetes.io/last-change-trigger-time";

int64_t mf_rfc3339_ms(const char *s)
{
	struct tm tm = {0};
	int n = 0, off_min = 0;
	int64_t ms = 0;

	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 19)
		return 0;
	const char *p = s + n;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		if (digits == 0)
			return 0;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
		   p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '9' && p[5] >= '0' &&
		   p[5] <= '9') {
		off_min =
		    ((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[4] - '0') * 10 + (p[5] - '0');
		if (*p == '-')
			off_min = -off_min;
		p += 6;
	} else {
		return 0;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t <= 0)
		return 0;
	return ((int64_t)t - (int64_t)off_min * 60) * 1000 + ms;
}
static const char MC_SERVICE_LABEL[] = "multicluster.kubernetes.io/service-name";
static const char MC_CLUSTER_LABEL[] = "multicluster.kubernetes.io/source-cluster";

static int slice_ports(struct dctx *c, const json_t *obj, struct model_slice *sl)
{
	json_t *ports;
	char path[64], sub[96];
	int rc;

	if ((rc = mf_get_arr(c, json_object_get(obj, "ports"), "ports", MAX_PORTS, &ports)) < 0)
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
		mf_path_index(path, sizeof(path), "ports", i);
		if (!json_is_object(jp))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(jp));
		mf_path_join(sub, sizeof(sub), path, ".name");
		if ((rc = mf_get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
			return rc;
		if (name && *name && !mf_is_dns1123_label(name))
			return mf_bad(c, "%s: \"%.64s\" is not a valid port name", sub, name);
		mf_path_join(sub, sizeof(sub), path, ".protocol");
		if ((rc = mf_get_proto(c, json_object_get(jp, "protocol"), sub, &proto)) < 0)
			return rc;
		/* a port with no number means "all ports" to the API; there is
		 * nothing DNS could publish for it */
		json_t *jport = json_object_get(jp, "port");
		if (mf_absent(jport))
			continue;
		mf_path_join(sub, sizeof(sub), path, ".port");
		if ((rc = mf_get_port(c, jport, sub, &port)) < 0)
			return rc;
		struct model_slice_port *p = &sl->ports[sl->n_ports++];
		p->port = port;
		p->proto = proto;
		if ((rc = mf_dup_str(name ? name : "", &p->name)) < 0)
			return rc;
	}
	return 0;
}

/* The API server's bound on hints.forZones (maxZoneHints). */
#define MAX_ZONE_HINTS 8

/* zone and hints.forZones: where the endpoint runs and the zones the
 * EndpointSlice controller gives it to (topology-aware routing). The hints
 * are kept as one comma-separated string: a zone name holds no comma. */
static int slice_endpoint_topology(struct dctx *c, const json_t *je, const char *path,
				   struct model_endpoint *ep)
{
	json_t *hints, *zones;
	const char *s;
	char sub[128];
	char list[MAX_ZONE_HINTS * 64];
	size_t used = 0;
	int rc;

	mf_path_join(sub, sizeof(sub), path, ".zone");
	if ((rc = mf_get_str(c, json_object_get(je, "zone"), sub, &s)) < 0)
		return rc;
	if (s && *s && !mf_is_label_value(s))
		return mf_bad(c, "%s: \"%.64s\" is not a valid label value", sub, s);
	if ((rc = mf_dup_str(s && *s ? s : NULL, &ep->zone)) < 0)
		return rc;
	mf_path_join(sub, sizeof(sub), path, ".hints");
	if ((rc = mf_get_obj(c, json_object_get(je, "hints"), sub, &hints)) < 0 || !hints)
		return rc;
	mf_path_join(sub, sizeof(sub), path, ".hints.forZones");
	if ((rc = mf_get_arr(c, json_object_get(hints, "forZones"), sub, MAX_ZONE_HINTS, &zones)) <
		0 ||
	    !zones)
		return rc;
	for (size_t i = 0; i < json_array_size(zones); i++) {
		json_t *z = json_array_get(zones, i);
		char at[sizeof(sub)];
		mf_path_index(at, sizeof(at), sub, i);
		if (!json_is_object(z))
			return mf_bad(c, "%s: must be an object, got %s", at, mf_jtype(z));
		if ((rc = mf_get_str(c, json_object_get(z, "name"), at, &s)) < 0)
			return rc;
		if (!s || !*s || strlen(s) > 63 || !mf_is_label_value(s))
			return mf_bad(c, "%s.name: required, a valid label value", at);
		size_t l = strlen(s);
		if (used)
			list[used++] = ',';
		memcpy(list + used, s, l);
		used += l;
	}
	list[used] = '\0';
	return used ? mf_dup_str(list, &ep->for_zones) : 0;
}

static int slice_endpoint(struct dctx *c, const json_t *je, const char *path,
			  struct model_slice *sl, struct model_endpoint *ep)
{
	json_t *addrs, *cond, *ref;
	const char *s;
	char sub[128];
	int rc;

	if (!json_is_object(je))
		return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(je));
	mf_path_join(sub, sizeof(sub), path, ".addresses");
	if ((rc = mf_get_arr(c, json_object_get(je, "addresses"), sub, MAX_ENDPOINT_ADDRS,
			     &addrs)) < 0)
		return rc;
	if (!addrs || json_array_size(addrs) == 0)
		return mf_bad(c, "%s: required (at least one address)", sub);
	if (!(ep->addrs = calloc(json_array_size(addrs), sizeof(*ep->addrs))))
		return -ENOMEM;
	char list[sizeof(sub)];
	memcpy(list, sub, sizeof(list));
	for (size_t i = 0; i < json_array_size(addrs); i++) {
		mf_path_index(sub, sizeof(sub), list, i);
		if ((rc = mf_get_str(c, json_array_get(addrs, i), sub, &s)) < 0)
			return rc;
		if (!s)
			return mf_bad(c, "%s: must be an address, got null", sub);
		if (sl->address_type == 0)
			continue; /* FQDN endpoints are kept out of the model */
		struct net_addr *a = &ep->addrs[ep->n_addrs];
		if (net_addr_parse(s, a) < 0 || a->family != sl->address_type)
			return mf_bad(c, "%s: \"%.64s\" is not an %s address", sub, s,
				      sl->address_type == AF_INET ? "IPv4" : "IPv6");
		ep->n_addrs++;
	}

	mf_path_join(sub, sizeof(sub), path, ".conditions");
	if ((rc = mf_get_obj(c, json_object_get(je, "conditions"), sub, &cond)) < 0)
		return rc;
	ep->ready = true;
	ep->terminating = false;
	if (cond) {
		mf_path_join(sub, sizeof(sub), path, ".conditions.ready");
		if ((rc = mf_get_bool(c, json_object_get(cond, "ready"), sub, true, &ep->ready)) <
		    0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".conditions.terminating");
		if ((rc = mf_get_bool(c, json_object_get(cond, "terminating"), sub, false,
				      &ep->terminating)) < 0)
			return rc;
	}
	ep->serving = ep->ready;
	if (cond) {
		mf_path_join(sub, sizeof(sub), path, ".conditions.serving");
		if ((rc = mf_get_bool(c, json_object_get(cond, "serving"), sub, ep->ready,
				      &ep->serving)) < 0)
			return rc;
	}

	mf_path_join(sub, sizeof(sub), path, ".hostname");
	if ((rc = mf_get_str(c, json_object_get(je, "hostname"), sub, &s)) < 0)
		return rc;
	if (s && !mf_is_dns1123_label(s))
		return mf_bad(c, "%s: \"%.64s\" is not a valid DNS label", sub, s);
	if ((rc = mf_dup_str(s, &ep->hostname)) < 0)
		return rc;
	mf_path_join(sub, sizeof(sub), path, ".nodeName");
	if ((rc = mf_get_str(c, json_object_get(je, "nodeName"), sub, &s)) < 0 ||
	    (rc = mf_dup_str(s && *s ? s : NULL, &ep->node_name)) < 0)
		return rc;
	if ((rc = slice_endpoint_topology(c, je, path, ep)) < 0)
		return rc;
	mf_path_join(sub, sizeof(sub), path, ".targetRef");
	if ((rc = mf_get_obj(c, json_object_get(je, "targetRef"), sub, &ref)) < 0)
		return rc;
	if (ref) {
		const char *kind, *name;
		mf_path_join(sub, sizeof(sub), path, ".targetRef.kind");
		if ((rc = mf_get_str(c, json_object_get(ref, "kind"), sub, &kind)) < 0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".targetRef.name");
		if ((rc = mf_get_str(c, json_object_get(ref, "name"), sub, &name)) < 0)
			return rc;
		if (kind && strcmp(kind, "Pod") == 0 && name && *name &&
		    (rc = mf_dup_str(name, &ep->pod_name)) < 0)
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
	free(ep->zone);
	free(ep->for_zones);
	*ep = (struct model_endpoint){0};
}

/* A slice that an MCS controller imported from another cluster belongs to
 * the ServiceImport its multicluster label names, and to no local Service
 * even when it carries kubernetes.io/service-name too (kube-proxy serves the
 * import's IP, not the local Service's, from it). */
static int slice_multicluster(struct dctx *c, const json_t *labels, struct model_slice *sl)
{
	const char *mc, *cluster;
	int rc;

	if ((rc = mf_get_str(c, json_object_get(labels, MC_SERVICE_LABEL),
			     "metadata.labels.multicluster.kubernetes.io/service-name", &mc)) < 0 ||
	    (rc = mf_get_str(c, json_object_get(labels, MC_CLUSTER_LABEL),
			     "metadata.labels.multicluster.kubernetes.io/source-cluster",
			     &cluster)) < 0)
		return rc;
	if (!mc || !*mc)
		return 0;
	free(sl->service);
	sl->service = NULL;
	if ((rc = mf_dup_str(mc, &sl->mc_service)) < 0)
		return rc;
	/* A cluster ID is a DNS label; without one the endpoints still count
	 * for the import's addresses but get no per-cluster names. */
	if (cluster && mf_is_dns1123_label(cluster))
		return mf_dup_str(cluster, &sl->cluster);
	if (cluster && *cluster)
		log_warn("%s: %s: source-cluster \"%.64s\" is not a DNS label; its endpoints "
			 "get no per-cluster names",
			 c->where, mf_ctx_id(c), cluster);
	return 0;
}

int mf_decode_slice(struct dctx *c, const json_t *obj, struct model_slice **out)
{
	struct model_slice *sl = calloc(1, sizeof(*sl));
	json_t *meta, *labels, *eps;
	const char *at, *svc;
	char path[64];
	int rc;

	if (!sl)
		return -ENOMEM;
	if ((rc = mf_dup_str(c->ns, &sl->ns)) < 0 || (rc = mf_dup_str(c->name, &sl->name)) < 0)
		goto fail;

	if ((rc = mf_get_str(c, json_object_get(obj, "addressType"), "addressType", &at)) < 0)
		goto fail;
	if (at && strcmp(at, "IPv4") == 0) {
		sl->address_type = AF_INET;
	} else if (at && strcmp(at, "IPv6") == 0) {
		sl->address_type = AF_INET6;
	} else if (at && strcmp(at, "FQDN") == 0) {
		sl->address_type = 0;
	} else {
		rc = mf_bad(c, "addressType: must be IPv4, IPv6 or FQDN, got %s%.64s%s",
			    at ? "\"" : "", at ? at : "nothing", at ? "\"" : "");
		goto fail;
	}

	/* labels were validated with the metadata; only the Service link matters */
	meta = json_object_get(obj, "metadata");
	labels = json_object_get(meta, "labels");
	if ((rc = mf_get_str(c, json_object_get(labels, SERVICE_NAME_LABEL),
			     "metadata.labels.kubernetes.io/service-name", &svc)) < 0)
		goto fail;
	/* The label is optional: a slice without it (or whose label was
	 * removed) is valid and belongs to no Service, so it publishes nothing.
	 * Rejecting it would keep serving its previous version. */
	if (svc && *svc && (rc = mf_dup_str(svc, &sl->service)) < 0)
		goto fail;
	/* Not validated by the API server: a value that is not a time is no
	 * time, and the slice is served all the same. */
	sl->trigger_ms = mf_rfc3339_ms(json_string_value(
	    json_object_get(json_object_get(meta, "annotations"), TRIGGER_TIME_ANNOTATION)));
	if ((rc = slice_multicluster(c, labels, sl)) < 0)
		goto fail;

	if ((rc = slice_ports(c, obj, sl)) < 0)
		goto fail;

	if ((rc = mf_get_arr(c, json_object_get(obj, "endpoints"), "endpoints", MAX_SLICE_ENDPOINTS,
			     &eps)) < 0)
		goto fail;
	if (eps && json_array_size(eps) > 0) {
		if (!(sl->endpoints = calloc(json_array_size(eps), sizeof(*sl->endpoints)))) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < json_array_size(eps); i++) {
			mf_path_index(path, sizeof(path), "endpoints", i);
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
