/* The metrics of the API client's requests (the families of
 * views_kube_requests in http_views.h): every request by verb, resource and
 * status code, its duration, the time it waited for the client-side limits,
 * the bytes received, list pages and watch restarts. */
#include "daemon/http_views.h"

#include <stdio.h>

#include "discovery/kube.h"
#include "discovery/kube_http.h"

#define EACH_SLOT(v, r)                                                                            \
	for (int v = 0; v < KUBE_VERBS; v++)                                                       \
		for (int r = 0; r < KUBE_RESOURCES; r++)

static const char *vn(int v)
{
	return kube_verb_name((enum kube_verb)v);
}

static const char *rn(int r)
{
	return kube_resource_name((enum kube_resource)r);
}

static void requests(struct metrics_out *o, const struct kube_source *ks)
{
	metrics_family(o, "svcdns_api_requests_total", "counter",
		       "Requests to the Kubernetes API server, by verb, resource and HTTP status "
		       "(none: no response; the contact probe is a list of namespaces).");
	EACH_SLOT(v, r)
	{
		const struct kube_http_stats *st =
		    kube_source_http_stats(ks, (enum kube_verb)v, (enum kube_resource)r);
		for (unsigned c = 0; st && c < KUBE_HTTP_CODES; c++)
			if (st->requests[c])
				metrics_sample(o, "svcdns_api_requests_total",
					       (double)st->requests[c], "verb", vn(v), "resource",
					       rn(r), "code", kube_http_code_name(c), NULL);
	}
	metrics_family(o, "svcdns_api_request_duration_seconds", "histogram",
		       "Duration of API requests: a list page until its body is in, a watch "
		       "until its response headers, a failure until it failed.");
	EACH_SLOT(v, r)
	{
		const struct kube_http_stats *st =
		    kube_source_http_stats(ks, (enum kube_verb)v, (enum kube_resource)r);
		for (unsigned c = 0; st && c < KUBE_HTTP_CODES; c++)
			if (st->requests[c])
				metrics_histogram(
				    o, "svcdns_api_request_duration_seconds", kube_http_dur_bounds,
				    KUBE_HTTP_DUR_BOUNDS, st->dur[c], st->dur_sum[c], "verb", vn(v),
				    "resource", rn(r), "code", kube_http_code_name(c), NULL);
	}
}

void views_kube_requests(struct metrics_out *o, const struct kube_source *ks)
{
	requests(o, ks);
	metrics_family(o, "svcdns_api_rate_limiter_wait_seconds", "histogram",
		       "Time API requests waited for --api-qps, --api-burst and "
		       "--api-max-inflight before they were sent.");
	EACH_SLOT(v, r)
	{
		const struct kube_http_stats *st =
		    kube_source_http_stats(ks, (enum kube_verb)v, (enum kube_resource)r);
		if (st)
			metrics_histogram(o, "svcdns_api_rate_limiter_wait_seconds",
					  kube_http_dur_bounds, KUBE_HTTP_DUR_BOUNDS, st->wait,
					  st->wait_sum, "verb", vn(v), "resource", rn(r), NULL);
	}
	metrics_family(o, "svcdns_api_response_bytes_total", "counter",
		       "Body bytes received from the API server, by verb and resource.");
	EACH_SLOT(v, r)
	{
		const struct kube_http_stats *st =
		    kube_source_http_stats(ks, (enum kube_verb)v, (enum kube_resource)r);
		if (st)
			metrics_sample(o, "svcdns_api_response_bytes_total", (double)st->bytes,
				       "verb", vn(v), "resource", rn(r), NULL);
	}
	metrics_family(o, "svcdns_api_list_pages_total", "counter",
		       "List pages asked for, by resource (the contact probe not counted).");
	for (int r = 0; r < KUBE_RESOURCES; r++)
		metrics_sample(o, "svcdns_api_list_pages_total",
			       (double)kube_source_list_pages(ks, (enum kube_resource)r),
			       "resource", rn(r), NULL);
	metrics_family(o, "svcdns_api_watch_restarts_total", "counter",
		       "Watches started again after the first, by resource.");
	for (int r = 0; r < KUBE_RESOURCES; r++)
		metrics_sample(o, "svcdns_api_watch_restarts_total",
			       (double)kube_source_watch_restarts(ks, (enum kube_resource)r),
			       "resource", rn(r), NULL);
}
