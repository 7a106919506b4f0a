/* The clusterset zone: the records of the Multi-Cluster Services DNS
 * specification (KEP-1645, schema 1.0.0) for the view's ServiceImports, built
 * by the same builder and the same incremental path as the cluster zone. */
#include "zones/cluster.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "wire/dname.h"
#include "wire/wire.h"

#define MCS_ZONE	   "clusterset.local"
#define MCS_SCHEMA_VERSION "1.0.0"

bool clusterset_served(const struct snapshot_config *cfg, const struct model_view *v)
{
	if (cfg->clusterset == SNAPSHOT_CLUSTERSET_OFF)
		return false;
	return cfg->clusterset == SNAPSHOT_CLUSTERSET_ON || (v && v->multicluster);
}

int clusterset_zone(struct zb *b, struct cluster_zones *cz, uint32_t serial)
{
	uint8_t apex[DNAME_MAX], mname[DNAME_MAX], rname[DNAME_MAX], tmp[DNAME_MAX];

	/* The nameserver is the cluster zone's, whose glue that zone holds. */
	if (dname_from_text(MCS_ZONE, apex, sizeof(apex)) < 0 ||
	    cluster_prepend_label(tmp, "dns", cz->zone) < 0 ||
	    cluster_prepend_label(mname, "ns", tmp) < 0 ||
	    cluster_prepend_label(rname, "hostmaster", apex) < 0 ||
	    cluster_prepend_label(cz->mcs_svc, "svc", apex) < 0)
		return -EINVAL;
	memcpy(cz->mcs_zone, apex, dname_len(apex));
	return cluster_zone_with_soa(b, apex, mname, rname, serial, cz->ttl, &cz->mcs);
}

int clusterset_base(struct zb *b, const struct cluster_zones *cz)
{
	uint8_t name[DNAME_MAX], rd[16];
	int ret;

	if (!cz->mcs)
		return 0;
	if (cluster_prepend_label(name, "dns-version", cz->mcs_zone) < 0)
		return -EINVAL;
	rd[0] = sizeof(MCS_SCHEMA_VERSION) - 1;
	memcpy(rd + 1, MCS_SCHEMA_VERSION, sizeof(MCS_SCHEMA_VERSION) - 1);
	if ((ret = zb_rr_add(b, cz->mcs, name, DNS_T_TXT, cz->ttl, rd,
			     sizeof(MCS_SCHEMA_VERSION))) < 0)
		return ret;
	return zb_name_add(b, cz->mcs, cz->mcs_svc);
}

int clusterset_service_root(const struct cluster_zones *cz, const struct model_service *s,
			    uint8_t out[255])
{
	uint8_t nsn[DNAME_MAX];
	if (!cz->mcs || cluster_prepend_label(nsn, s->ns, cz->mcs_svc) < 0 ||
	    cluster_prepend_label(out, s->name, nsn) < 0)
		return -EINVAL;
	return 0;
}

/* A PTR for an import's address, unless a local Service's already names it
 * (the specification's Limitations: one PTR per address). */
static int import_ptr(struct zb *b, const struct cluster_zones *cz, const struct net_addr *a,
		      const uint8_t *target)
{
	uint8_t rev[DNAME_MAX];
	if (cluster_reverse_name(a, rev) <= 0 || zb_has_type(b, rev, DNS_T_PTR))
		return 0;
	return zb_rr_add(b, a->family == AF_INET ? cz->rev4 : cz->rev6, rev, DNS_T_PTR, cz->ttl,
			 target, (uint16_t)dname_len(target));
}

/* A ClusterSetIP import: its IPs, their PTRs, an SRV per named port whose
 * target is the import's own name. No name per cluster (2.3.4). */
static int clustersetip_records(struct zb *b, const struct cluster_zones *cz, const uint8_t *sname,
				const struct model_service *s)
{
	uint8_t name[DNAME_MAX], rd[DNAME_MAX + 8];
	int ret;
	for (size_t i = 0; i < s->n_cluster_ips; i++)
		if ((ret = cluster_add_addr(b, cz->mcs, sname, &s->cluster_ips[i], cz->ttl)) < 0 ||
		    (ret = import_ptr(b, cz, &s->cluster_ips[i], sname)) < 0)
			return ret;
	if (s->n_cluster_ips == 0)
		return 0;
	for (size_t i = 0; i < s->n_ports; i++) {
		const struct model_svc_port *p = &s->ports[i];
		if (cluster_port_srv_owner(name, p, sname) < 0)
			continue;
		int l = cluster_srv_rdata(rd, 0, 100, p->port, sname);
		if ((ret = zb_rr_add(b, cz->mcs, name, DNS_T_SRV, cz->ttl, rd, (uint16_t)l)) < 0 ||
		    (ret = zb_rr_add(b, cz->mcs, sname, DNS_T_SRV, cz->ttl, rd, (uint16_t)l)) < 0)
			return ret;
	}
	return 0;
}

/* One ready endpoint of a headless import from cluster ep->cluster: its
 * address at the import's name and at `<hostname>.<clusterid>.<svc>...`, its
 * PTR, and an SRV per named port it serves. */
static int headless_endpoint(struct zb *b, const struct cluster_zones *cz, const uint8_t *sname,
			     const struct model_service *s, const struct view_endpoint *ep,
			     uint16_t weight)
{
	uint8_t cname[DNAME_MAX], hname[DNAME_MAX], name[DNAME_MAX], rd[DNAME_MAX + 8];
	char host[64];
	int ret;

	if ((ret = cluster_add_addr(b, cz->mcs, sname, &ep->addr, cz->ttl)) < 0)
		return ret;
	/* Without a source cluster there is no name to give it. */
	cluster_endpoint_label(ep, cz->pod_names, host, sizeof(host));
	if (!ep->cluster || cluster_prepend_label(cname, ep->cluster, sname) < 0 ||
	    cluster_prepend_label(hname, host, cname) < 0)
		return 0;
	if ((ret = cluster_add_addr(b, cz->mcs, hname, &ep->addr, cz->ttl)) < 0 ||
	    (ret = import_ptr(b, cz, &ep->addr, hname)) < 0)
		return ret;
	for (size_t i = 0; i < s->n_ports; i++) {
		uint16_t port = ep->target_ports ? ep->target_ports[i] : 0;
		if (!port || cluster_port_srv_owner(name, &s->ports[i], sname) < 0)
			continue;
		int l = cluster_srv_rdata(rd, 0, weight, port, hname);
		if ((ret = zb_rr_add(b, cz->mcs, name, DNS_T_SRV, cz->ttl, rd, (uint16_t)l)) < 0 ||
		    (ret = zb_rr_add(b, cz->mcs, sname, DNS_T_SRV, cz->ttl, rd, (uint16_t)l)) < 0)
			return ret;
	}
	return 0;
}

int clusterset_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs)
{
	const struct model_service *s = vs->svc;
	uint8_t sname[DNAME_MAX];

	if (!cz->mcs)
		return 0;
	if (clusterset_service_root(cz, s, sname) < 0) {
		log_warn("ServiceImport %s/%s: name too long for DNS; not served", s->ns, s->name);
		return 0;
	}
	if (!s->headless)
		return clustersetip_records(b, cz, sname, s);
	/* Ready endpoints only (2.4): an import has no publishNotReadyAddresses.
	 * None ready: no name at all, so NXDOMAIN. */
	size_t n_ready = 0;
	for (size_t e = 0; e < vs->n_eps; e++)
		n_ready += vs->eps[e].ready;
	uint16_t weight = (uint16_t)(n_ready ? (100 / n_ready ? 100 / n_ready : 1) : 100);
	for (size_t e = 0; e < vs->n_eps; e++) {
		if (!vs->eps[e].ready)
			continue;
		int ret = headless_endpoint(b, cz, sname, s, &vs->eps[e], weight);
		if (ret < 0)
			return ret;
	}
	return 0;
}
