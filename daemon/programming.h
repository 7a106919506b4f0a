/* The Kubernetes DNS programming latency SLI: the time from a change in the
 * cluster (an EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time
 * annotation, set by the controller that made the change) to the moment this
 * instance serves it (the snapshot holding it is published), per kind of
 * Service, as CoreDNS's coredns_kubernetes_dns_programming_duration_seconds
 * reports it. svcdns's own svcdns_data_change_to_serve_seconds measures from
 * the event's arrival instead, which says nothing of the way to svcdns.
 *
 * Owns: the trigger times taken from the API source and not yet published,
 * the histograms, and the kind of each Service (from the published view).
 * Must never: read a clock (the pipeline gives it the time) or log. Control
 * thread only, from the pipeline; read at a scrape. */
#ifndef SVCDNS_PROGRAMMING_H
#define SVCDNS_PROGRAMMING_H

#include <stddef.h>
#include <stdint.h>

#include "discovery/kube.h"
#include "discovery/model.h"

enum prog_kind {
	PROG_CLUSTER_IP = 0,	   /* a Service with a ClusterIP */
	PROG_HEADLESS_SELECTOR,	   /* headless, endpoints from its selector */
	PROG_HEADLESS_NO_SELECTOR, /* headless, endpoints written by someone else */
	PROG_N_KINDS
};

/* 1 ms doubling to about 9 minutes: the SLI's range, CoreDNS's buckets. */
#define PROG_N_BOUNDS 20
extern const double prog_bounds[PROG_N_BOUNDS];

struct programming {
	struct kube_trigger *pend; /* taken from the source, not yet published */
	size_t n_pend, cap_pend;
	uint64_t hist[PROG_N_KINDS][PROG_N_BOUNDS + 1];
	double sum[PROG_N_KINDS];
	/* Trigger times not observed: no such Service in the published view (or
	 * an ExternalName), or more than KUBE_MAX_TRIGGERS waiting. */
	uint64_t skipped;
};

/* "cluster_ip", "headless_with_selector", "headless_without_selector". */
const char *programming_kind_name(enum prog_kind k);
/* Adds n trigger times taken from the source (takes ownership of t, which
 * may be NULL when n is 0). */
void programming_add(struct programming *pg, struct kube_trigger *t, size_t n);
/* The snapshot built from `v` was published at now_ms (milliseconds since
 * the epoch): observes every trigger time waiting, clamped at 0 when the
 * annotation is ahead of this clock (skew between the nodes). */
void programming_published(struct programming *pg, const struct model_view *v, int64_t now_ms);
void programming_free(struct programming *pg);

#endif
