/* The cluster zone's records, from the model view (internal to zones/).
 *
 * Owns: which names and records the Kubernetes DNS specification asks for,
 * the short form `<svc>.<ns>.svc.`, reverse zones and the CHAOS identity
 * names (the CHAOS port view is zones/portview.c, rendered at query time).
 * Called from the control thread only (snapshot builds and zone transfers).
 * Must never: render wire data itself (the builder does) or touch the model. */
#ifndef SVCDNS_CLUSTER_H
#define SVCDNS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "discovery/model.h"
#include "zones/builder.h"
#include "zones/snapshot.h"

/* The zones a cluster build declares, in this order, and the names it needs. */
struct cluster_zones {
	struct zb_zone *z, *zs, *rev4, *rev6; /* cluster zone, `svc.`, reverse */
	uint8_t zone[255], svc_full[255], svc_short[255];
	uint32_t ttl;
	bool pod_names;	   /* snapshot_config.endpoint_pod_names */
	bool ignore_empty; /* snapshot_config.ignore_empty_service */
};

/* Everything: zones, base records, every Service. */
int cluster_records(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		    uint32_t serial);

/* The parts, for incremental builds: the zones with their SOA and NS (every
 * build), the records that do not belong to one Service (full builds), and
 * one Service's records with its CHAOS view. */
int cluster_zones(struct zb *b, const struct snapshot_config *cfg, uint32_t serial,
		  struct cluster_zones *cz);
int cluster_base(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		 const struct cluster_zones *cz);
int cluster_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs);

/* The Service's own names, full and short form: everything at or below them
 * belongs to it. */
int cluster_service_roots(const struct cluster_zones *cz, const struct model_service *s,
			  uint8_t full[255], uint8_t shortn[255]);

/* The kube-dns Service, whose address is the nameserver's glue. */
bool cluster_is_ns_service(const struct model_service *s);

#endif
