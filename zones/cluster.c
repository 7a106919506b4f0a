/* The cluster zone: turns the model view into the records of the Kubernetes
 * DNS-Based Service Discovery specification (schema 1.1.0), the short form
 * `<svc>.<ns>.svc.`, and the reverse zones. */
#include "zones/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "wire/dname.h"
#include "wire/wire.h"

#define SCHEMA_VERSION "1.1.0"

/* Joins `label` in front of the wire name `suffix`. Returns the length or -EINVAL. */
static int prepend(uint8_t *out, const char *label, size_t ll, const uint8_t *suffix)
{
	size_t sl = dname_len(suffix);
	if (ll == 0 || ll > DNAME_LABEL_MAX || 1 + ll + sl > DNAME_MAX)
		return -EINVAL;
	out[0] = (uint8_t)ll;
	for (size_t i = 0; i < ll; i++) {
		uint8_t c = (uint8_t)label[i];
		out[1 + i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
	}
	memcpy(out + 1 + ll, suffix, sl);
	return (int)(1 + ll + sl);
}

static int prepend_str(uint8_t *out, const char *label, const uint8_t *suffix)
{
	return prepend(out, label, strlen(label), suffix);
}

static int add_addr(struct zb *b, struct zb_zone *z, const uint8_t *owner, const struct net_addr *a,
		    uint32_t ttl)
{
	if (a->family == AF_INET)
		return zb_rr_add(b, z, owner, DNS_T_A, ttl, a->bytes, 4);
	return zb_rr_add(b, z, owner, DNS_T_AAAA, ttl, a->bytes, 16);
}

/* The reverse name of an address: d.c.b.a.in-addr.arpa or the ip6.arpa
 * nibbles, written as wire form directly (there is one per Service and per
 * endpoint of a headless Service). */
static int reverse_name(const struct net_addr *a, uint8_t *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (a->family == AF_INET) {
		for (int i = 3; i >= 0; i--) {
			unsigned v = a->bytes[i];
			uint8_t *lab = &out[o++];
			if (v >= 100)
				out[o++] = (uint8_t)('0' + v / 100);
			if (v >= 10)
				out[o++] = (uint8_t)('0' + v / 10 % 10);
			out[o++] = (uint8_t)('0' + v % 10);
			*lab = (uint8_t)(&out[o] - lab - 1);
		}
		memcpy(out + o, "\7in-addr\4arpa", 14);
		return (int)(o + 14);
	}
	for (int i = 15; i >= 0; i--) {
		out[o++] = 1;
		out[o++] = (uint8_t)hex[a->bytes[i] & 15];
		out[o++] = 1;
		out[o++] = (uint8_t)hex[a->bytes[i] >> 4];
	}
	memcpy(out + o, "\3ip6\4arpa", 10);
	return (int)(o + 10);
}

/* The system-assigned hostname of an endpoint without one: its address with
 * dashes, as CoreDNS writes it (10-1-2-3, 2001-db8--1). */
static void dashed_addr(const struct net_addr *a, char *out, size_t len)
{
	net_addr_format(a, out, len);
	for (char *p = out; *p; p++)
		if (*p == '.' || *p == ':')
			*p = '-';
}

static bool valid_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DNAME_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static const char *proto_label(uint8_t proto)
{
	switch (proto) {
	case PROTO_UDP:
		return "_udp";
	case PROTO_SCTP:
		return "_sctp";
	default:
		return "_tcp";
	}
}

/* An endpoint is published when ready, or always with publishNotReadyAddresses. */
static bool published(const struct model_service *s, const struct view_endpoint *e)
{
	return e->ready || s->publish_not_ready;
}

static int srv_rdata(uint8_t *rd, uint16_t prio, uint16_t weight, uint16_t port,
		     const uint8_t *target)
{
	size_t tl = dname_len(target);
	wire_wr16(rd, prio);
	wire_wr16(rd + 2, weight);
	wire_wr16(rd + 4, port);
	memcpy(rd + 6, target, tl);
	return (int)(6 + tl);
}

/* The SRV owner `_<port>._<proto>.<sname>` of a port; -EINVAL when the port
 * has no name that can be a label. */
static int port_srv_owner(uint8_t *out, const struct model_svc_port *p, const uint8_t *sname)
{
	uint8_t tmp[DNAME_MAX];
	char plabel[DNAME_LABEL_MAX + 2];
	if (!p->name || !p->name[0] || !valid_label(p->name))
		return -EINVAL;
	snprintf(plabel, sizeof(plabel), "_%s", p->name);
	if (prepend_str(tmp, proto_label(p->proto), sname) < 0 || prepend_str(out, plabel, tmp) < 0)
		return -EINVAL;
	return 0;
}

/* A ClusterIP Service: its addresses, their PTRs (rev4 != NULL), and one SRV
 * per named port, at the port's name and at the Service's. */
/* A ClusterIP Service: its addresses, their PTRs, an SRV per named port.
 * Without `names` (an empty Service under --ignore-empty-service) the PTRs
 * only. */
static int clusterip_records(struct zb *b, struct zb_zone *z, const uint8_t *sname,
			     const struct model_service *s, uint32_t ttl, struct zb_zone *rev4,
			     struct zb_zone *rev6, bool names)
{
	uint8_t name[DNAME_MAX], rd[DNAME_MAX + 8];
	int ret;
	for (size_t i = 0; i < s->n_cluster_ips; i++) {
		if (names && (ret = add_addr(b, z, sname, &s->cluster_ips[i], ttl)) < 0)
			return ret;
		if (rev4 && reverse_name(&s->cluster_ips[i], name) > 0) {
			struct zb_zone *rz = s->cluster_ips[i].family == AF_INET ? rev4 : rev6;
			if ((ret = zb_rr_add(b, rz, name, DNS_T_PTR, ttl, sname,
					     (uint16_t)dname_len(sname))) < 0)
				return ret;
		}
	}
	if (s->n_cluster_ips == 0 || !names)
		return 0;
	for (size_t i = 0; i < s->n_ports; i++) {
		const struct model_svc_port *p = &s->ports[i];
		if (port_srv_owner(name, p, sname) < 0)
			continue;
		int l = srv_rdata(rd, 0, 100, p->port, sname);
		if ((ret = zb_rr_add(b, z, name, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0 ||
		    (ret = zb_rr_add(b, z, sname, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0)
			return ret;
	}
	return 0;
}

/* One published endpoint of a headless Service: its address at the Service's
 * name and, in the full form only, at its own name `hname`, its PTR, and an
 * SRV per named port with a target port. `weight`: its share. */
static int endpoint_records(struct zb *b, struct zb_zone *z, const uint8_t *sname,
			    const uint8_t *hname, const struct model_service *s,
			    const struct view_endpoint *ep, uint32_t ttl, uint16_t weight,
			    struct zb_zone *rev4, struct zb_zone *rev6, bool short_form)
{
	uint8_t name[DNAME_MAX], rd[DNAME_MAX + 8];
	int ret;
	if ((ret = add_addr(b, z, sname, &ep->addr, ttl)) < 0)
		return ret;
	if (short_form)
		return 0;
	if ((ret = add_addr(b, z, hname, &ep->addr, ttl)) < 0)
		return ret;
	if (rev4 && reverse_name(&ep->addr, name) > 0) {
		struct zb_zone *rz = ep->addr.family == AF_INET ? rev4 : rev6;
		if ((ret = zb_rr_add(b, rz, name, DNS_T_PTR, ttl, hname,
				     (uint16_t)dname_len(hname))) < 0)
			return ret;
	}
	for (size_t i = 0; i < s->n_ports; i++) {
		const struct model_svc_port *p = &s->ports[i];
		uint16_t port = ep->target_ports ? ep->target_ports[i] : 0;
		if (!port || port_srv_owner(name, p, sname) < 0)
			continue;
		int l = srv_rdata(rd, 0, weight, port, hname);
		if ((ret = zb_rr_add(b, z, name, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0 ||
		    (ret = zb_rr_add(b, z, sname, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0)
			return ret;
	}
	return 0;
}

/* A headless Service: the endpoints themselves, each under its own label
 * (cluster_endpoint_label); the names of those not ready yet are coming names. */
static int headless_records(struct zb *b, const struct cluster_zones *cz, struct zb_zone *z,
			    const uint8_t *sname, const struct view_service *vs,
			    struct zb_zone *rev4, struct zb_zone *rev6, bool short_form)
{
	const struct model_service *s = vs->svc;
	size_t n_pub = 0;
	for (size_t e = 0; e < vs->n_eps; e++)
		n_pub += published(s, &vs->eps[e]);
	/* Equal shares of weight, as CoreDNS gives them. */
	uint16_t weight = (uint16_t)(n_pub ? (100 / n_pub ? 100 / n_pub : 1) : 100);
	/* Nearest tier first (zones/topology.c): the Service's RRsets list the
	 * endpoints on this node, then this zone's, then the rest. In central
	 * mode one tier, each record marked with its zone: the answers get an
	 * ordering per client zone. */
	bool central = !cz->node_zone;
	for (unsigned tier = 0; tier < ZB_TIERS; tier++) {
		zb_set_tier(b, tier);
		for (size_t e = 0; e < vs->n_eps; e++) {
			const struct view_endpoint *ep = &vs->eps[e];
			if (!published(s, ep) || cluster_endpoint_tier(cz, ep) != tier)
				continue;
			char host[64];
			uint8_t hname[DNAME_MAX];
			cluster_endpoint_label(ep, cz->pod_names, host, sizeof(host));
			if (prepend_str(hname, host, sname) < 0)
				continue;
			zb_set_zone(b, central && ep->zone && ep->zone[0]
					   ? snapshot_zone_hash(ep->zone)
					   : 0);
			int ret = endpoint_records(b, z, sname, hname, s, ep, cz->ttl, weight, rev4,
						   rev6, short_form);
			if (ret < 0) {
				zb_set_tier(b, 0);
				zb_set_zone(b, 0);
				return ret;
			}
		}
	}
	zb_set_tier(b, 0);
	zb_set_zone(b, 0);
	int zret = short_form ? 0 : cluster_zonal_names(b, cz, sname, vs);
	if (zret < 0)
		return zret;
	/* The names of endpoints not ready yet, once the published ones are in
	 * (a name a ready endpoint also has is served): peers that look one up
	 * early get an NXDOMAIN that caches keep for --not-ready-ttl. */
	bool coming = false;
	for (size_t e = 0; e < vs->n_eps && !short_form; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		char host[64];
		uint8_t hname[DNAME_MAX];
		if (published(s, ep))
			continue;
		cluster_endpoint_label(ep, cz->pod_names, host, sizeof(host));
		int ret = prepend_str(hname, host, sname) < 0 ? 0 : zb_name_coming(b, z, hname);
		if (ret < 0)
			return ret;
		coming = true;
	}
	/* With no endpoint ready, the Service's own name is coming as well. */
	return coming && n_pub == 0 ? zb_name_coming(b, z, sname) : 0;
}

/* Records of one Service under `svc_suffix` (the wire name `svc.<zone>` or
 * `svc.`). PTRs only for the real zone (rev != NULL). The short form
 * (`short_form`) carries the Service-level records only — addresses, CNAME and
 * the SRV records of ClusterIP Services, what `dig svc.ns.svc` asks for; the
 * per-endpoint names of headless Services live under the full zone alone. */
static int service_records(struct zb *b, const struct cluster_zones *cz, struct zb_zone *z,
			   const uint8_t *svc_suffix, const struct view_service *vs,
			   struct zb_zone *rev4, struct zb_zone *rev6, bool short_form)
{
	uint32_t ttl = cz->ttl;
	const struct model_service *s = vs->svc;
	uint8_t nsname[DNAME_MAX], sname[DNAME_MAX], rd[DNAME_MAX + 8];

	if (prepend_str(nsname, s->ns, svc_suffix) < 0 || prepend_str(sname, s->name, nsname) < 0) {
		log_warn("Service %s/%s: name too long for DNS; not served", s->ns, s->name);
		return 0;
	}
	if (s->type == SVC_EXTERNAL_NAME) {
		if (!s->external_name)
			return 0;
		int l = dname_from_text(s->external_name, rd, sizeof(rd));
		if (l < 0) {
			log_warn("Service %s/%s: externalName %s is not a DNS name; not served",
				 s->ns, s->name, s->external_name);
			return 0;
		}
		return zb_rr_add(b, z, sname, DNS_T_CNAME, ttl, rd, (uint16_t)l);
	}
	if (!s->headless) {
		bool names = !cz->ignore_empty;
		for (size_t e = 0; e < vs->n_eps && !names; e++)
			names = published(s, &vs->eps[e]);
		return clusterip_records(b, z, sname, s, ttl, rev4, rev6, names);
	}
	return headless_records(b, cz, z, sname, vs, rev4, rev6, short_form);
}

static int soa_rdata(uint8_t *rd, const uint8_t *mname, const uint8_t *rname, uint32_t serial,
		     uint32_t minimum)
{
	size_t l1 = dname_len(mname), l2 = dname_len(rname);
	memcpy(rd, mname, l1);
	memcpy(rd + l1, rname, l2);
	uint32_t v[5] = {serial, 7200, 1800, 86400, minimum};
	uint8_t *p = rd + l1 + l2;
	for (int i = 0; i < 5; i++, p += 4)
		wire_wr32(p, v[i]);
	return (int)(l1 + l2 + 20);
}

/* Declares a zone with an SOA and NS naming ns.dns.<zone>. */
static int zone_with_soa(struct zb *b, const uint8_t *apex, const uint8_t *mname,
			 const uint8_t *rname, uint32_t serial, uint32_t ttl, struct zb_zone **out)
{
	uint8_t rd[2 * DNAME_MAX + 20];
	int ret = zb_zone_add(b, apex, out);
	if (ret < 0)
		return ret;
	zb_zone_mark_dynamic(*out);
	int l = soa_rdata(rd, mname, rname, serial, ttl);
	if ((ret = zb_rr_add(b, *out, apex, DNS_T_SOA, ttl, rd, (uint16_t)l)) < 0)
		return ret;
	return zb_rr_add(b, *out, apex, DNS_T_NS, ttl, mname, (uint16_t)dname_len(mname));
}

int cluster_zones(struct zb *b, const struct snapshot_config *cfg, uint32_t serial, bool clusterset,
		  struct cluster_zones *cz)
{
	uint8_t mname[DNAME_MAX], rname[DNAME_MAX], name[DNAME_MAX], tmp[DNAME_MAX];
	uint32_t ttl = cfg->ttl;
	int ret;

	if (dname_from_text(cfg->zone, cz->zone, sizeof(cz->zone)) < 0)
		return -EINVAL;
	if (prepend_str(tmp, "dns", cz->zone) < 0 || prepend_str(mname, "ns", tmp) < 0 ||
	    prepend_str(rname, "hostmaster", cz->zone) < 0 ||
	    prepend_str(cz->svc_full, "svc", cz->zone) < 0)
		return -EINVAL;
	dname_from_text("svc.", cz->svc_short, sizeof(cz->svc_short));
	cz->ttl = ttl;
	cz->pod_names = cfg->endpoint_pod_names;
	cz->ignore_empty = cfg->ignore_empty_service;
	cz->node = cfg->node_name && cfg->node_name[0] ? cfg->node_name : NULL;
	cz->node_zone = cfg->node_zone && cfg->node_zone[0] ? cfg->node_zone : NULL;
	cz->withheld = NULL;
	cz->n_withheld = 0;

	if ((ret = zone_with_soa(b, cz->zone, mname, rname, serial, ttl, &cz->z)) < 0)
		return ret;
	zb_zone_coming_names(cz->z, cfg->not_ready_ttl);
	/* The short form is its own small zone so that its negative answers carry
	 * an SOA that is an ancestor of the question. */
	if ((ret = zone_with_soa(b, cz->svc_short, mname, rname, serial, ttl, &cz->zs)) < 0)
		return ret;
	dname_from_text("in-addr.arpa", name, sizeof(name));
	if ((ret = zone_with_soa(b, name, mname, rname, serial, ttl, &cz->rev4)) < 0)
		return ret;
	dname_from_text("ip6.arpa", name, sizeof(name));
	if ((ret = zone_with_soa(b, name, mname, rname, serial, ttl, &cz->rev6)) < 0)
		return ret;
	/* Declared last: a build that adds it is a full one (zones are declared
	 * in the same order by every build of a line). */
	cz->mcs = NULL;
	return clusterset ? clusterset_zone(b, cz, serial) : 0;
}

bool cluster_is_ns_service(const struct model_service *s)
{
	return strcmp(s->ns, "kube-system") == 0 && strcmp(s->name, "kube-dns") == 0;
}

int cluster_base(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		 const struct cluster_zones *cz)
{
	uint8_t mname[DNAME_MAX], name[DNAME_MAX], tmp[DNAME_MAX], rd[256];
	uint32_t ttl = cz->ttl;
	int ret;

	if (prepend_str(tmp, "dns", cz->zone) < 0 || prepend_str(mname, "ns", tmp) < 0)
		return -EINVAL;
	/* Glue for the nameserver: the kube-dns Service if the cluster has one
	 * (that is the address pods use), else the address we listen on. */
	bool glued = false;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct model_service *s = v->svcs[i].svc;
		if (cluster_is_ns_service(s) && !s->headless)
			for (size_t k = 0; k < s->n_cluster_ips; k++) {
				if ((ret = add_addr(b, cz->z, mname, &s->cluster_ips[k], ttl)) < 0)
					return ret;
				glued = true;
			}
	}
	if (!glued && cfg->have_ns_addr &&
	    (ret = add_addr(b, cz->z, mname, &cfg->ns_addr, ttl)) < 0)
		return ret;

	if (prepend_str(name, "dns-version", cz->zone) < 0)
		return -EINVAL;
	rd[0] = sizeof(SCHEMA_VERSION) - 1;
	memcpy(rd + 1, SCHEMA_VERSION, sizeof(SCHEMA_VERSION) - 1);
	if ((ret = zb_rr_add(b, cz->z, name, DNS_T_TXT, ttl, rd, sizeof(SCHEMA_VERSION))) < 0)
		return ret;
	if ((ret = zb_name_add(b, cz->z, cz->svc_full)) < 0)
		return ret;
	if (cfg->pods != SNAPSHOT_PODS_DISABLED &&
	    (prepend_str(name, "pod", cz->zone) < 0 ||
	     (ret = zb_mark_pod_root(b, cz->z, name, ttl)) < 0))
		return ret;

	for (size_t i = 0; i < v->n_namespaces; i++) {
		if (prepend_str(name, v->namespaces[i], cz->svc_full) < 0)
			continue;
		if ((ret = zb_name_add(b, cz->z, name)) < 0)
			return ret;
		if (prepend_str(name, v->namespaces[i], cz->svc_short) >= 0 &&
		    (ret = zb_name_add(b, cz->zs, name)) < 0)
			return ret;
	}

	/* CHAOS identity, as BIND, Knot and NSD answer it. */
	const char *version = "svcdns " SVCDNS_VERSION;
	const char *host = cfg->hostname ? cfg->hostname : "svcdns";
	static const char *const version_names[] = {"version.bind", "version.server"};
	static const char *const id_names[] = {"id.server", "hostname.bind"};
	for (int i = 0; i < 2; i++) {
		dname_from_text(version_names[i], name, sizeof(name));
		if ((ret = zb_chaos_txt(b, name, &version, 1)) < 0)
			return ret;
		dname_from_text(id_names[i], name, sizeof(name));
		if ((ret = zb_chaos_txt(b, name, &host, 1)) < 0)
			return ret;
	}
	return 0;
}

int cluster_service_roots(const struct cluster_zones *cz, const struct model_service *s,
			  uint8_t full[DNAME_MAX], uint8_t shortn[DNAME_MAX])
{
	uint8_t nsn[DNAME_MAX];
	if (s->imported) {
		int ret = clusterset_service_root(cz, s, full);
		if (ret == 0)
			memcpy(shortn, full, dname_len(full));
		return ret;
	}
	if (prepend_str(nsn, s->ns, cz->svc_full) < 0 || prepend_str(full, s->name, nsn) < 0 ||
	    prepend_str(nsn, s->ns, cz->svc_short) < 0 || prepend_str(shortn, s->name, nsn) < 0)
		return -EINVAL;
	return 0;
}

/* Binary search of "ns/name" keys sorted by (ns, name). */
static bool withheld(const struct cluster_zones *cz, const struct model_service *s)
{
	size_t lo = 0, hi = cz->n_withheld, nsl = strlen(s->ns);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = cz->withheld[mid], *slash = strchr(k, '/');
		size_t kl = slash ? (size_t)(slash - k) : strlen(k);
		int c = strncmp(k, s->ns, kl < nsl ? kl : nsl);
		if (!c)
			c = (kl > nsl) - (kl < nsl);
		if (!c)
			c = strcmp(slash ? slash + 1 : "", s->name);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

int cluster_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs)
{
	int ret;
	if (vs->svc->imported)
		return clusterset_service(b, cz, vs);
	if (cz->n_withheld && withheld(cz, vs->svc))
		return 0;
	if ((ret = service_records(b, cz, cz->z, cz->svc_full, vs, cz->rev4, cz->rev6, false)) <
		0 ||
	    (ret = service_records(b, cz, cz->zs, cz->svc_short, vs, NULL, NULL, true)) < 0)
		return ret;
	return 0;
}

int cluster_records(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		    uint32_t serial, char *const *withheld, size_t n_withheld)
{
	struct cluster_zones cz;
	int ret;
	/* Names per Service: its full and short names, a _proto and a port name
	 * under each per named port, a reverse name, and per endpoint of a
	 * headless one a name and a reverse name. An estimate: the table grows
	 * past it if need be. */
	size_t n_names = v->n_namespaces * 2;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct model_service *s = v->svcs[i].svc;
		n_names += 3 + 4 * s->n_ports + (s->headless ? 2 * v->svcs[i].n_eps : 0);
	}
	for (size_t i = 0; i < v->n_imports; i++)
		n_names += 3 + 4 * v->imports[i].svc->n_ports + 4 * v->imports[i].n_eps;
	if ((ret = zb_reserve(b, n_names)) < 0)
		return ret;
	if ((ret = cluster_zones(b, cfg, serial, clusterset_served(cfg, v), &cz)) < 0 ||
	    (ret = cluster_base(b, cfg, v, &cz)) < 0 || (ret = clusterset_base(b, &cz)) < 0)
		return ret;
	cz.withheld = withheld;
	cz.n_withheld = n_withheld;
	for (size_t i = 0; i < v->n_svcs; i++)
		if ((ret = cluster_service(b, &cz, &v->svcs[i])) < 0)
			return ret;
	/* After every local Service: an import's PTR yields to a local one. */
	for (size_t i = 0; i < v->n_imports; i++)
		if ((ret = cluster_service(b, &cz, &v->imports[i])) < 0)
			return ret;
	return 0;
}

/* ---- shared with clusterset.c ------------------------------------------ */

int cluster_prepend_label(uint8_t *out, const char *label, const uint8_t *suffix)
{
	return prepend_str(out, label, suffix);
}

int cluster_add_addr(struct zb *b, struct zb_zone *z, const uint8_t *owner,
		     const struct net_addr *a, uint32_t ttl)
{
	return add_addr(b, z, owner, a, ttl);
}

int cluster_reverse_name(const struct net_addr *a, uint8_t *out)
{
	return reverse_name(a, out);
}

void cluster_endpoint_label(const struct view_endpoint *ep, bool pod_names, char *out, size_t len)
{
	if (ep->hostname && valid_label(ep->hostname))
		snprintf(out, len, "%s", ep->hostname);
	else if (pod_names && ep->pod_name && valid_label(ep->pod_name))
		snprintf(out, len, "%s", ep->pod_name);
	else
		dashed_addr(&ep->addr, out, len);
}

int cluster_port_srv_owner(uint8_t *out, const struct model_svc_port *p, const uint8_t *sname)
{
	return port_srv_owner(out, p, sname);
}

int cluster_srv_rdata(uint8_t *rd, uint16_t prio, uint16_t weight, uint16_t port,
		      const uint8_t *target)
{
	return srv_rdata(rd, prio, weight, port, target);
}

int cluster_zone_with_soa(struct zb *b, const uint8_t *apex, const uint8_t *mname,
			  const uint8_t *rname, uint32_t serial, uint32_t ttl, struct zb_zone **out)
{
	return zone_with_soa(b, apex, mname, rname, serial, ttl, out);
}
