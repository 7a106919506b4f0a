/* Decoding a ServiceImport (multicluster.x-k8s.io/v1alpha1, KEP-1645): its
 * type (ClusterSetIP or Headless), its clusterset IPs and its ports, checked
 * as the CRD's schema checks them, into a model_service marked imported. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "discovery/manifest_fields.h"

static int import_ips(struct dctx *c, const json_t *spec, struct model_service *s)
{
	json_t *ips;
	char path[64];
	const char *ip;
	int rc;

	/* One address per family: a dual-stack import has an IPv4 and an IPv6. */
	if ((rc = mf_get_arr(c, json_object_get(spec, "ips"), "spec.ips", 2, &ips)) < 0)
		return rc;
	for (size_t i = 0; ips && i < json_array_size(ips); i++) {
		mf_path_index(path, sizeof(path), "spec.ips", i);
		if ((rc = mf_get_str(c, json_array_get(ips, i), path, &ip)) < 0)
			return rc;
		if (!ip || !*ip)
			return mf_bad(c, "%s: must be an IP address", path);
		if ((rc = mf_parse_ip(c, ip, path, &s->cluster_ips[i])) < 0)
			return rc;
		s->n_cluster_ips = i + 1;
	}
	if (s->n_cluster_ips == 2 && s->cluster_ips[0].family == s->cluster_ips[1].family)
		return mf_bad(c, "spec.ips: two addresses must be one IPv4 and one IPv6");
	if (s->headless && s->n_cluster_ips)
		return mf_bad(c, "spec.ips: a Headless ServiceImport has no clusterset IP");
	return 0;
}

static int import_ports(struct dctx *c, const json_t *spec, struct model_service *s)
{
	json_t *ports;
	char path[64], sub[96];
	const char *name;
	int rc;

	if ((rc = mf_get_arr(c, json_object_get(spec, "ports"), "spec.ports", MAX_PORTS, &ports)) <
	    0)
		return rc;
	size_t n = ports ? json_array_size(ports) : 0;
	if (n && !(s->ports = calloc(n, sizeof(*s->ports))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct model_svc_port *p = &s->ports[s->n_ports++];
		json_t *jp = json_array_get(ports, i);
		mf_path_index(path, sizeof(path), "spec.ports", i);
		if (!json_is_object(jp))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(jp));
		mf_path_join(sub, sizeof(sub), path, ".name");
		if ((rc = mf_get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
			return rc;
		if (name && *name && !mf_is_dns1123_label(name))
			return mf_bad(c, "%s: \"%.64s\" is not a valid port name", sub, name);
		if ((rc = mf_dup_str(name ? name : "", &p->name)) < 0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".port");
		if ((rc = mf_get_port(c, json_object_get(jp, "port"), sub, &p->port)) < 0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".protocol");
		if ((rc = mf_get_proto(c, json_object_get(jp, "protocol"), sub, &p->proto)) < 0)
			return rc;
		/* The port an endpoint serves comes from its slice, by name. */
		p->target_num = p->port;
	}
	return 0;
}

int mf_decode_import(struct dctx *c, const json_t *obj, struct model_service **out)
{
	struct model_service *s = calloc(1, sizeof(*s));
	json_t *spec;
	const char *type;
	int rc;

	if (!s)
		return -ENOMEM;
	s->imported = true;
	s->type = SVC_CLUSTER_IP;
	if ((rc = mf_dup_str(c->ns, &s->ns)) < 0 || (rc = mf_dup_str(c->name, &s->name)) < 0)
		goto fail;
	if ((rc = mf_get_obj(c, json_object_get(obj, "spec"), "spec", &spec)) < 0)
		goto fail;
	if (!spec) {
		rc = mf_bad(c, "spec: required");
		goto fail;
	}
	if ((rc = mf_get_str(c, json_object_get(spec, "type"), "spec.type", &type)) < 0)
		goto fail;
	if (type && strcmp(type, "Headless") == 0) {
		s->headless = true;
	} else if (!type || strcmp(type, "ClusterSetIP") != 0) {
		rc = mf_bad(c, "spec.type: must be ClusterSetIP or Headless, got %s%.64s%s",
			    type ? "\"" : "", type ? type : "nothing", type ? "\"" : "");
		goto fail;
	}
	if ((rc = import_ips(c, spec, s)) < 0 || (rc = import_ports(c, spec, s)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	model_service_free(s);
	return rc;
}
