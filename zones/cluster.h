/* The cluster zone's records, from the model view (internal to zones/).
 *
 * Owns: which names and records the Kubernetes DNS specification asks for,
 * the short form `<svc>.<ns>.svc.`, reverse zones and the CHAOS identity
 * names (the CHAOS port view is zones/portview.c, rendered at query time);
 * and, in clusterset.c, the Multi-Cluster Services zone clusterset.local
 * from the view's ServiceImports.
 * Called from the control thread only (snapshot builds and zone transfers).
 * Must never: render wire data itself (the builder does) or touch the model. */
#ifndef SVCDNS_CLUSTER_H
#define SVCDNS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discovery/model.h"
#include "zones/builder.h"
#include "zones/snapshot.h"

/* The zones a cluster build declares, in this order, and the names it needs. */
struct cluster_zones {
	struct zb_zone *z, *zs, *rev4, *rev6; /* cluster zone, `svc.`, reverse */
	struct zb_zone *mcs;		      /* clusterset.local, or NULL when not served */
	uint8_t zone[255], svc_full[255], svc_short[255];
	uint8_t mcs_zone[255], mcs_svc[255]; /* clusterset.local, svc.clusterset.local */
	uint32_t ttl;
	bool pod_names;		      /* snapshot_config.endpoint_pod_names */
	bool ignore_empty;	      /* snapshot_config.ignore_empty_service */
	const char *node, *node_zone; /* snapshot_config.node_name, node_zone */
	/* Services that get no records (snapshot.withheld), or none. */
	char *const *withheld;
	size_t n_withheld;
};

/* Everything: zones, base records, every Service but those withheld
 * ("ns/name", sorted as the view sorts Services; n_withheld may be 0). */
int cluster_records(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		    uint32_t serial, char *const *withheld, size_t n_withheld);

/* The parts, for incremental builds: the zones with their SOA and NS (every
 * build), the records that do not belong to one Service (full builds), and
 * one Service's records with its CHAOS view. */
int cluster_zones(struct zb *b, const struct snapshot_config *cfg, uint32_t serial, bool clusterset,
		  struct cluster_zones *cz);
int cluster_base(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		 const struct cluster_zones *cz);
int cluster_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs);

/* ---- topology (topology.c) ----------------------------------------------
 * The locality tier of an endpoint as this server sees it: 0 on this node,
 * 1 in this zone (by its hints.forZones when it has them, else its zone),
 * 2 the rest; 0 for every endpoint when neither node nor zone is known. */
unsigned cluster_endpoint_tier(const struct cluster_zones *cz, const struct view_endpoint *ep);
/* A headless Service's zonal names (`<zone>.pin._zone.<sname>`: the
 * published endpoints of that zone; `<zone>.prefer._zone.<sname>`: the same,
 * and all of them for a zone without one, by a wildcard; `*.pin` has no data),
 * when one of its published endpoints has a zone. */
int cluster_zonal_names(struct zb *b, const struct cluster_zones *cz, const uint8_t *sname,
			const struct view_service *vs);

/* The Service's own names, full and short form: everything at or below them
 * belongs to it. */
int cluster_service_roots(const struct cluster_zones *cz, const struct model_service *s,
			  uint8_t full[255], uint8_t shortn[255]);

/* ---- the clusterset zone (clusterset.c) ----------------------------------
 * KEP-1645's DNS specification, schema 1.0.0, from the view's imports. */

/* Whether a build of view v serves clusterset.local. */
bool clusterset_served(const struct snapshot_config *cfg, const struct model_view *v);
/* Declares the zone with its SOA and NS into cz->mcs (and its names). */
int clusterset_zone(struct zb *b, struct cluster_zones *cz, uint32_t serial);
/* The records of the apex that belong to no import (dns-version). */
int clusterset_base(struct zb *b, const struct cluster_zones *cz);
/* One import's records; nothing when the zone is not served. Its PTRs only
 * where no local Service's PTR exists in this build, so local Services are
 * added first. */
int clusterset_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs);
/* The import's name `<svc>.<ns>.svc.clusterset.local`. */
int clusterset_service_root(const struct cluster_zones *cz, const struct model_service *s,
			    uint8_t out[255]);

/* Helpers of cluster.c that clusterset.c shares. */
int cluster_prepend_label(uint8_t *out, const char *label, const uint8_t *suffix);
int cluster_add_addr(struct zb *b, struct zb_zone *z, const uint8_t *owner,
		     const struct net_addr *a, uint32_t ttl);
int cluster_reverse_name(const struct net_addr *a, uint8_t *out);
/* An endpoint's name label: hostname, Pod name (pod_names), dashed address. */
void cluster_endpoint_label(const struct view_endpoint *ep, bool pod_names, char *out, size_t len);
int cluster_port_srv_owner(uint8_t *out, const struct model_svc_port *p, const uint8_t *sname);
int cluster_srv_rdata(uint8_t *rd, uint16_t prio, uint16_t weight, uint16_t port,
		      const uint8_t *target);
int cluster_zone_with_soa(struct zb *b, const uint8_t *apex, const uint8_t *mname,
			  const uint8_t *rname, uint32_t serial, uint32_t ttl,
			  struct zb_zone **out);

/* The kube-dns Service, whose address is the nameserver's glue. */
bool cluster_is_ns_service(const struct model_service *s);

#endif
