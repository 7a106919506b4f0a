/* The cluster zone's records, from the model view (internal to zones/).
 *
 * Owns: which names and records the Kubernetes DNS specification asks for,
 * the short form `<svc>.<ns>.svc.`, reverse zones and the CHAOS port view.
 * Must never: render wire data itself (the builder does) or touch the model. */
#ifndef SVCDNS_CLUSTER_H
#define SVCDNS_CLUSTER_H

#include <stdint.h>

#include "discovery/model.h"
#include "zones/builder.h"
#include "zones/snapshot.h"

int cluster_records(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		    uint32_t serial);

#endif
