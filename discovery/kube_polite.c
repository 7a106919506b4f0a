/* The API client's manners as the source sees them: the client-side limits
 * it sets on its HTTP client, and the statistics of its requests, list pages
 * and watch restarts for the metrics (kube.h). */
#include "discovery/kube_reflector.h"

const char *kube_verb_name(enum kube_verb v)
{
	return v == KUBE_VERB_WATCH ? "watch" : "list";
}

void kube_source_set_limits(struct kube_source *ks, double qps, unsigned burst,
			    unsigned max_inflight)
{
	ks->o.qps = qps;
	ks->o.burst = burst;
	ks->o.max_inflight = max_inflight;
	if (ks->http)
		kube_http_set_limits(ks->http, qps, burst, max_inflight);
}

const struct kube_http_stats *kube_source_http_stats(const struct kube_source *ks, enum kube_verb v,
						     enum kube_resource r)
{
	if (!ks->http || v >= KUBE_VERBS || r >= KUBE_RESOURCES)
		return NULL;
	return kube_http_stats(ks->http, kube_http_slot(v, r));
}

uint64_t kube_source_list_pages(const struct kube_source *ks, enum kube_resource r)
{
	return r < KUBE_RESOURCES ? ks->r[r].pages : 0;
}

uint64_t kube_source_watch_restarts(const struct kube_source *ks, enum kube_resource r)
{
	return r < KUBE_RESOURCES ? ks->r[r].watch_restarts : 0;
}
