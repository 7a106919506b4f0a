/* Decoding a Service: type, ClusterIPs (single or dual stack, or headless),
 * ports with their targetPort and nodePort, selector, session affinity,
 * checked as the API server checks them. */
#include "discovery/manifest_fields.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SELECTOR_WHY[] = "a Service selects one group of Pods (plain key=value pairs)";

static int svc_cluster_ips(struct dctx *c, const json_t *spec, struct model_service *s)
{
	const char *ip;
	json_t *ips;
	const char *list[2] = {0};
	size_t n = 0;
	int rc;
	char path[64];

	if ((rc = mf_get_str(c, json_object_get(spec, "clusterIP"), "spec.clusterIP", &ip)) < 0 ||
	    (rc = mf_get_arr(c, json_object_get(spec, "clusterIPs"), "spec.clusterIPs", 2, &ips)) <
		0)
		return rc;
	for (size_t i = 0; ips && i < json_array_size(ips); i++) {
		mf_path_index(path, sizeof(path), "spec.clusterIPs", i);
		if ((rc = mf_get_str(c, json_array_get(ips, i), path, &list[n])) < 0)
			return rc;
		if (!list[n] || !*list[n])
			return mf_bad(c, "%s: must be an IP address or \"None\"", path);
		n++;
	}
	if (ip && *ip) {
		if (n == 0)
			list[n++] = ip;
		else if (strcmp(list[0], ip) != 0)
			return mf_bad(
			    c, "spec.clusterIPs[0]: \"%.64s\" must equal spec.clusterIP \"%.64s\"",
			    list[0], ip);
	}
	if (s->type == SVC_EXTERNAL_NAME) {
		if (n > 0)
			return mf_bad(c,
				      "spec.clusterIP: must be empty for an ExternalName Service");
		return 0;
	}
	if (n > 0 && strcmp(list[0], "None") == 0) {
		if (n > 1)
			return mf_bad(c, "spec.clusterIPs: \"None\" must be the only entry");
		if (s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER)
			return mf_bad(c, "spec.clusterIP: may not be \"None\" for a %s Service",
				      s->type == SVC_NODE_PORT ? "NodePort" : "LoadBalancer");
		s->headless = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i] == ip)
			snprintf(path, sizeof(path), "spec.clusterIP");
		else
			mf_path_index(path, sizeof(path), "spec.clusterIPs", i);
		if ((rc = mf_parse_ip(c, list[i], path, &s->cluster_ips[i])) < 0)
			return rc;
	}
	if (n == 2 && s->cluster_ips[0].family == s->cluster_ips[1].family)
		return mf_bad(c,
			      "spec.clusterIPs: a dual-stack Service needs one IPv4 and one IPv6 "
			      "address");
	s->n_cluster_ips = n;
	return 0;
}

static int svc_target_port(struct dctx *c, const json_t *v, const char *path,
			   struct model_svc_port *p)
{
	p->target_num = p->port; /* the API server defaults an empty/0 targetPort */
	if (mf_absent(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n == 0)
			return 0;
		if (n < 1 || n > 65535)
			return mf_bad(c, "%s: must be in 1..65535, got %lld", path, (long long)n);
		p->target_num = (uint16_t)n;
		return 0;
	}
	const char *s;
	int rc = mf_get_str(c, v, path, &s);
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
			return mf_bad(c, "%s: must be in 1..65535, got \"%.20s\"", path, s);
		p->target_num = (uint16_t)n;
		return 0;
	}
	if (!mf_is_iana_svc_name(s))
		return mf_bad(c,
			      "%s: \"%.64s\" is not a port number or a port name (at most 15 "
			      "lowercase letters, digits and '-', with a letter)",
			      path, s);
	p->target_num = 0;
	return mf_dup_str(s, &p->target_name);
}

static int svc_ports(struct dctx *c, const json_t *spec, struct model_service *s)
{
	json_t *ports;
	char path[64], sub[96];
	int rc;

	if ((rc = mf_get_arr(c, json_object_get(spec, "ports"), "spec.ports", MAX_PORTS, &ports)) <
	    0)
		return rc;
	size_t n = ports ? json_array_size(ports) : 0;
	if (n == 0) {
		if (s->type != SVC_EXTERNAL_NAME && !s->headless)
			return mf_bad(c, "spec.ports: required (at least one port)");
		return 0;
	}
	if (!(s->ports = calloc(n, sizeof(*s->ports))))
		return -ENOMEM;
	s->n_ports = n;
	for (size_t i = 0; i < n; i++) {
		struct model_svc_port *p = &s->ports[i];
		json_t *jp = json_array_get(ports, i);
		const char *name;
		mf_path_index(path, sizeof(path), "spec.ports", i);
		if (!json_is_object(jp))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(jp));

		mf_path_join(sub, sizeof(sub), path, ".name");
		if ((rc = mf_get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
			return rc;
		if (!name)
			name = "";
		if (*name && !mf_is_dns1123_label(name))
			return mf_bad(c,
				      "%s: \"%.64s\" is not a valid port name (lowercase letters, "
				      "digits and '-', at most 63)",
				      sub, name);
		if (!*name && n > 1)
			return mf_bad(c, "%s: required when a Service has several ports", sub);
		if ((rc = mf_dup_str(name, &p->name)) < 0)
			return rc;

		mf_path_join(sub, sizeof(sub), path, ".port");
		if ((rc = mf_get_port(c, json_object_get(jp, "port"), sub, &p->port)) < 0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".protocol");
		if ((rc = mf_get_proto(c, json_object_get(jp, "protocol"), sub, &p->proto)) < 0)
			return rc;
		mf_path_join(sub, sizeof(sub), path, ".targetPort");
		if ((rc = svc_target_port(c, json_object_get(jp, "targetPort"), sub, p)) < 0)
			return rc;

		json_t *np = json_object_get(jp, "nodePort");
		mf_path_join(sub, sizeof(sub), path, ".nodePort");
		if (!mf_absent(np) && !(json_is_integer(np) && json_integer_value(np) == 0)) {
			if (s->type != SVC_NODE_PORT && s->type != SVC_LOAD_BALANCER)
				return mf_bad(
				    c, "%s: only a NodePort or LoadBalancer Service has one", sub);
			/* The API server's --service-node-port-range is its own
			 * choice: any port it assigned is served. Allocation for
			 * manifests without one uses --node-port-range (view_alloc.c). */
			if (!json_is_integer(np) || json_integer_value(np) < 1 ||
			    json_integer_value(np) > 65535)
				return mf_bad(c, "%s: must be an integer in 1..65535", sub);
			p->node_port = (uint16_t)json_integer_value(np);
		}

		for (size_t j = 0; j < i; j++) {
			const struct model_svc_port *q = &s->ports[j];
			if (*p->name && strcmp(q->name, p->name) == 0)
				return mf_bad(c, "%s.name: \"%s\" is used by spec.ports[%zu] too",
					      path, p->name, j);
			if (q->port == p->port && q->proto == p->proto)
				return mf_bad(c, "%s: port %u/%s is listed twice", path, p->port,
					      model_proto_name(p->proto));
			/* the API server lets TCP and UDP share a nodePort */
			if (p->node_port && q->node_port == p->node_port && q->proto == p->proto)
				return mf_bad(c,
					      "%s.nodePort: %u/%s is used by spec.ports[%zu] too",
					      path, p->node_port, model_proto_name(p->proto), j);
		}
	}
	return 0;
}

/* The annotation that came before publishNotReadyAddresses: the DNS
 * specification (1.1.0, section 2.1) still counts every endpoint of such a
 * Service as ready, in every record (addresses, hostnames, SRV, PTR). Its value
 * is read as Go's strconv.ParseBool reads it, as kube-dns did; anything else
 * (or none) means no. */
static int add_ext_ip(struct dctx *c, const json_t *v, const char *path, struct model_service *s)
{
	const char *text;
	struct net_addr a;
	int rc;
	if ((rc = mf_get_str(c, v, path, &text)) < 0)
		return rc;
	if (!text || !*text)
		return mf_bad(c, "%s: must be an IP address", path);
	if ((rc = mf_parse_ip(c, text, path, &a)) < 0)
		return rc;
	for (size_t i = 0; i < s->n_ext_ips; i++)
		if (net_addr_cmp(&s->ext_ips[i], &a) == 0)
			return 0;
	if (s->n_ext_ips < MODEL_EXT_IPS_MAX)
		s->ext_ips[s->n_ext_ips++] = a;
	return 0;
}

/* spec.externalIPs, and the ingress IPs of a LoadBalancer (an ingress entry
 * with only a hostname has none; a status on another type is not used). */
static int svc_ext_ips(struct dctx *c, const json_t *obj, const json_t *spec,
		       struct model_service *s)
{
	json_t *arr, *status, *lb, *ing;
	char path[80];
	int rc;
	if ((rc = mf_get_arr(c, json_object_get(spec, "externalIPs"), "spec.externalIPs", 1024,
			     &arr)) < 0)
		return rc;
	for (size_t i = 0; arr && i < json_array_size(arr); i++) {
		mf_path_index(path, sizeof(path), "spec.externalIPs", i);
		if ((rc = add_ext_ip(c, json_array_get(arr, i), path, s)) < 0)
			return rc;
	}
	if (s->type != SVC_LOAD_BALANCER)
		return 0;
	if ((rc = mf_get_obj(c, json_object_get(obj, "status"), "status", &status)) < 0 || !status)
		return rc;
	if ((rc = mf_get_obj(c, json_object_get(status, "loadBalancer"), "status.loadBalancer",
			     &lb)) < 0 ||
	    !lb)
		return rc;
	if ((rc = mf_get_arr(c, json_object_get(lb, "ingress"), "status.loadBalancer.ingress", 1024,
			     &ing)) < 0)
		return rc;
	for (size_t i = 0; ing && i < json_array_size(ing); i++) {
		json_t *e = json_array_get(ing, i);
		mf_path_index(path, sizeof(path), "status.loadBalancer.ingress", i);
		if (!json_is_object(e))
			return mf_bad(c, "%s: must be an object", path);
		if (mf_absent(json_object_get(e, "ip")))
			continue;
		strncat(path, ".ip", sizeof(path) - strlen(path) - 1);
		if ((rc = add_ext_ip(c, json_object_get(e, "ip"), path, s)) < 0)
			return rc;
	}
	return 0;
}

static int svc_policy(struct dctx *c, const json_t *spec, const char *field, bool *local)
{
	const char *v;
	char path[48];
	int rc;
	snprintf(path, sizeof(path), "spec.%s", field);
	if ((rc = mf_get_str(c, json_object_get(spec, field), path, &v)) < 0)
		return rc;
	*local = v && strcmp(v, "Local") == 0;
	if (v && *v && !*local && strcmp(v, "Cluster") != 0)
		return mf_bad(c, "%s: must be Cluster or Local, got \"%.64s\"", path, v);
	return 0;
}

static bool tolerates_unready(const json_t *obj)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	const json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	const char *v = json_string_value(
	    json_object_get(ann, "service.alpha.kubernetes.io/tolerate-unready-endpoints"));
	for (size_t i = 0; v && i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcmp(v, yes[i]) == 0)
			return true;
	return false;
}

int mf_decode_service(struct dctx *c, const json_t *obj, struct model_service **out)
{
	struct model_service *s = calloc(1, sizeof(*s));
	json_t *spec, *cfg, *cip;
	const char *type, *affinity, *ext;
	int rc;

	if (!s)
		return -ENOMEM;
	s->affinity_timeout = 10800;
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
	if (!type || strcmp(type, "ClusterIP") == 0) {
		s->type = SVC_CLUSTER_IP;
	} else if (strcmp(type, "NodePort") == 0) {
		s->type = SVC_NODE_PORT;
	} else if (strcmp(type, "LoadBalancer") == 0) {
		s->type = SVC_LOAD_BALANCER;
	} else if (strcmp(type, "ExternalName") == 0) {
		s->type = SVC_EXTERNAL_NAME;
	} else {
		rc = mf_bad(c,
			    "spec.type: must be ClusterIP, NodePort, LoadBalancer or ExternalName, "
			    "got \"%.64s\"",
			    type);
		goto fail;
	}

	if ((rc = svc_cluster_ips(c, spec, s)) < 0)
		goto fail;

	if (s->type == SVC_EXTERNAL_NAME) {
		if ((rc = mf_get_str(c, json_object_get(spec, "externalName"), "spec.externalName",
				     &ext)) < 0)
			goto fail;
		if (!ext || !*ext) {
			rc = mf_bad(c, "spec.externalName: required for an ExternalName Service");
			goto fail;
		}
		if ((rc = mf_dup_str(ext, &s->external_name)) < 0)
			goto fail;
		/* DNS names are case-insensitive; store the canonical spelling */
		size_t len = strlen(s->external_name);
		if (len > 1 && s->external_name[len - 1] == '.')
			s->external_name[--len] = '\0';
		for (char *p = s->external_name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!mf_is_dns1123_subdomain(s->external_name)) {
			rc =
			    mf_bad(c, "spec.externalName: \"%.100s\" is not a valid DNS name", ext);
			goto fail;
		}
	}

	if ((rc = svc_ports(c, spec, s)) < 0 || (rc = svc_ext_ips(c, obj, spec, s)) < 0 ||
	    (rc = svc_policy(c, spec, "externalTrafficPolicy", &s->ext_policy_local)) < 0 ||
	    (rc = svc_policy(c, spec, "internalTrafficPolicy", &s->int_policy_local)) < 0)
		goto fail;

	json_t *sel = json_object_get(spec, "selector");
	s->has_selector = !mf_absent(sel);
	if ((rc = mf_get_labels(c, sel, "spec.selector", SELECTOR_WHY, &s->selector)) < 0)
		goto fail;

	if ((rc = mf_get_bool(c, json_object_get(spec, "publishNotReadyAddresses"),
			      "spec.publishNotReadyAddresses", false, &s->publish_not_ready)) < 0)
		goto fail;
	if (tolerates_unready(obj))
		s->publish_not_ready = true;

	if ((rc = mf_get_str(c, json_object_get(spec, "sessionAffinity"), "spec.sessionAffinity",
			     &affinity)) < 0)
		goto fail;
	if (affinity && strcmp(affinity, "ClientIP") == 0) {
		s->affinity_client_ip = true;
	} else if (affinity && *affinity && strcmp(affinity, "None") != 0) {
		rc = mf_bad(c, "spec.sessionAffinity: must be None or ClientIP, got \"%.64s\"",
			    affinity);
		goto fail;
	}
	if ((rc = mf_get_obj(c, json_object_get(spec, "sessionAffinityConfig"),
			     "spec.sessionAffinityConfig", &cfg)) < 0)
		goto fail;
	if (cfg && (rc = mf_get_obj(c, json_object_get(cfg, "clientIP"),
				    "spec.sessionAffinityConfig.clientIP", &cip)) < 0)
		goto fail;
	if (cfg && cip && !mf_absent(json_object_get(cip, "timeoutSeconds"))) {
		json_t *t = json_object_get(cip, "timeoutSeconds");
		if (!json_is_integer(t) || json_integer_value(t) < 1 ||
		    json_integer_value(t) > 86400) {
			rc =
			    mf_bad(c, "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be "
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
