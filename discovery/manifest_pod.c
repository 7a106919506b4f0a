/* Decoding a Pod: labels, container ports (and those of sidecar init
 * containers), hostname and subdomain, and the status the endpoints
 * controller reads (phase, Ready condition, Pod IPs). */
#include "discovery/manifest_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static int pod_container_ports(struct dctx *c, const json_t *containers, const char *list,
			       bool sidecars_only, struct model_pod *p)
{
	char path[64], sub[160];
	int rc;

	for (size_t i = 0; i < json_array_size(containers); i++) {
		json_t *ct = json_array_get(containers, i), *ports;
		snprintf(path, sizeof(path), "spec.%s[%zu]", list, i);
		if (!json_is_object(ct))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(ct));
		if (sidecars_only) {
			/* only init containers that keep running serve traffic */
			const char *policy;
			mf_path_join(sub, sizeof(sub), path, ".restartPolicy");
			if ((rc = mf_get_str(c, json_object_get(ct, "restartPolicy"), sub,
					     &policy)) < 0)
				return rc;
			if (!policy || strcmp(policy, "Always") != 0)
				continue;
		}
		mf_path_join(sub, sizeof(sub), path, ".ports");
		if ((rc = mf_get_arr(c, json_object_get(ct, "ports"), sub, MAX_PORTS, &ports)) < 0)
			return rc;
		size_t n = ports ? json_array_size(ports) : 0;
		if (n == 0)
			continue;
		if (p->n_ports + n > MAX_PORTS)
			return mf_bad(c, "%s: more than %d container ports", sub, MAX_PORTS);
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
				return mf_bad(c, "%s: must be an object, got %s", sub,
					      mf_jtype(jp));
			p->n_ports++;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].containerPort", path, j);
			if ((rc = mf_get_port(c, json_object_get(jp, "containerPort"), sub,
					      &cp->port)) < 0)
				return rc;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].protocol", path, j);
			if ((rc = mf_get_proto(c, json_object_get(jp, "protocol"), sub,
					       &cp->proto)) < 0)
				return rc;
			snprintf(sub, sizeof(sub), "%s.ports[%zu].name", path, j);
			if ((rc = mf_get_str(c, json_object_get(jp, "name"), sub, &name)) < 0)
				return rc;
			if (name && *name && !mf_is_iana_svc_name(name))
				return mf_bad(c,
					      "%s: \"%.64s\" is not a valid port name (at most 15 "
					      "lowercase letters, digits and '-', with a letter)",
					      sub, name);
			if ((rc = mf_dup_str(name && *name ? name : NULL, &cp->name)) < 0)
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
	if ((rc = mf_get_str(c, json_object_get(status, "phase"), "status.phase", &phase)) < 0)
		return rc;
	p->terminal = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);

	if ((rc = mf_get_arr(c, json_object_get(status, "conditions"), "status.conditions", 64,
			     &conds)) < 0)
		return rc;
	for (size_t i = 0; conds && i < json_array_size(conds); i++) {
		json_t *cd = json_array_get(conds, i);
		const char *type, *st;
		mf_path_index(path, sizeof(path), "status.conditions", i);
		if (!json_is_object(cd))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(cd));
		snprintf(path, sizeof(path), "status.conditions[%zu].type", i);
		if ((rc = mf_get_str(c, json_object_get(cd, "type"), path, &type)) < 0)
			return rc;
		snprintf(path, sizeof(path), "status.conditions[%zu].status", i);
		if ((rc = mf_get_str(c, json_object_get(cd, "status"), path, &st)) < 0)
			return rc;
		if (type && strcmp(type, "Ready") == 0) {
			have_ready = true;
			p->ready = st && strcmp(st, "True") == 0;
		}
	}
	if (!have_ready)
		p->ready = phase && strcmp(phase, "Running") == 0;

	if ((rc = mf_get_str(c, json_object_get(status, "podIP"), "status.podIP", &ip)) < 0 ||
	    (rc = mf_get_arr(c, json_object_get(status, "podIPs"), "status.podIPs", 2, &ips)) < 0)
		return rc;
	for (size_t i = 0; ips && i < json_array_size(ips); i++) {
		json_t *e = json_array_get(ips, i);
		mf_path_index(path, sizeof(path), "status.podIPs", i);
		if (!json_is_object(e))
			return mf_bad(c, "%s: must be an object, got %s", path, mf_jtype(e));
		snprintf(path, sizeof(path), "status.podIPs[%zu].ip", i);
		if ((rc = mf_get_str(c, json_object_get(e, "ip"), path, &list[n])) < 0)
			return rc;
		if (!list[n] || !*list[n])
			return mf_bad(c, "%s: required", path);
		n++;
	}
	if (ip && *ip) {
		if (n == 0)
			list[n++] = ip;
		else if (strcmp(list[0], ip) != 0)
			return mf_bad(
			    c, "status.podIPs[0].ip: \"%.64s\" must equal status.podIP \"%.64s\"",
			    list[0], ip);
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i] == ip)
			snprintf(path, sizeof(path), "status.podIP");
		else
			snprintf(path, sizeof(path), "status.podIPs[%zu].ip", i);
		if ((rc = mf_parse_ip(c, list[i], path, &p->ips[i])) < 0)
			return rc;
	}
	if (n == 2 && p->ips[0].family == p->ips[1].family)
		return mf_bad(c,
			      "status.podIPs: a dual-stack Pod has one IPv4 and one IPv6 address");
	p->n_ips = n;
	return 0;
}

int mf_decode_pod(struct dctx *c, const json_t *obj, struct model_pod **out)
{
	struct model_pod *p = calloc(1, sizeof(*p));
	json_t *meta, *spec, *list, *status;
	const char *s;
	int rc;

	if (!p)
		return -ENOMEM;
	p->name_generated = c->name == c->generated_name;
	if ((rc = mf_dup_str(c->ns, &p->ns)) < 0 || (rc = mf_dup_str(c->name, &p->name)) < 0)
		goto fail;
	meta = json_object_get(obj, "metadata");
	if ((rc = mf_get_labels(c, json_object_get(meta, "labels"), "metadata.labels", NULL,
				&p->labels)) < 0)
		goto fail;
	p->terminating = !mf_absent(json_object_get(meta, "deletionTimestamp"));

	if ((rc = mf_get_obj(c, json_object_get(obj, "spec"), "spec", &spec)) < 0)
		goto fail;
	if (spec) {
		if ((rc = mf_get_arr(c, json_object_get(spec, "containers"), "spec.containers",
				     MAX_PORTS, &list)) < 0 ||
		    (list && (rc = pod_container_ports(c, list, "containers", false, p)) < 0))
			goto fail;
		if ((rc = mf_get_arr(c, json_object_get(spec, "initContainers"),
				     "spec.initContainers", MAX_PORTS, &list)) < 0 ||
		    (list && (rc = pod_container_ports(c, list, "initContainers", true, p)) < 0))
			goto fail;
		if ((rc = mf_get_str(c, json_object_get(spec, "hostname"), "spec.hostname", &s)) <
		    0)
			goto fail;
		if (s && *s && !mf_is_dns1123_label(s)) {
			rc = mf_bad(c, "spec.hostname: \"%.64s\" is not a valid DNS label", s);
			goto fail;
		}
		if ((rc = mf_dup_str(s && *s ? s : NULL, &p->hostname)) < 0)
			goto fail;
		if ((rc = mf_get_str(c, json_object_get(spec, "subdomain"), "spec.subdomain", &s)) <
		    0)
			goto fail;
		if (s && *s && !mf_is_dns1123_label(s)) {
			rc = mf_bad(c, "spec.subdomain: \"%.64s\" is not a valid DNS label", s);
			goto fail;
		}
		if ((rc = mf_dup_str(s && *s ? s : NULL, &p->subdomain)) < 0)
			goto fail;
		if ((rc = mf_get_str(c, json_object_get(spec, "nodeName"), "spec.nodeName", &s)) <
			0 ||
		    (rc = mf_dup_str(s && *s ? s : NULL, &p->node_name)) < 0)
			goto fail;
	}

	if ((rc = mf_get_obj(c, json_object_get(obj, "status"), "status", &status)) < 0)
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

int mf_decode_pod_addrs(struct dctx *c, const json_t *obj, struct model_pod **out)
{
	struct model_pod *p = calloc(1, sizeof(*p));
	json_t *status;
	int rc;

	if (!p)
		return -ENOMEM;
	if ((rc = mf_dup_str(c->ns, &p->ns)) < 0 || (rc = mf_dup_str(c->name, &p->name)) < 0 ||
	    (rc = mf_get_obj(c, json_object_get(obj, "status"), "status", &status)) < 0)
		goto fail;
	if (status && (rc = pod_status(c, status, p)) < 0)
		goto fail;
	/* what does not count for --pods verified is not kept at all */
	if (!status || p->terminal || p->n_ips == 0) {
		rc = 1;
		goto fail;
	}
	*out = p;
	return 0;
fail:
	model_pod_free(p);
	return rc;
}
