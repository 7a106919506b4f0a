/* Metrics sources over the modules' getters, and the /debug/model JSON, both
 * read on the control thread when the HTTP endpoint is asked. See
 * http_views.h. */
#include "daemon/http_views.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "daemon/pipeline.h"
#include "discovery/kube.h"
#include "discovery/model.h"
#include "resolver/cache.h"
#include "resolver/forward.h"
#include "resolver/upstream.h"
#include "resolver/upstream_budget.h"
#include "dns/limits.h"
#include "proxy/proxy.h"
#include "zones/snapshot.h"

const double views_build_bounds[VIEWS_N_BUILD] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						  0.1,	  0.25,	 0.5,	 1,	2.5,  5,     10};

void views_observe(uint64_t *hist, double *sum, double seconds)
{
	size_t b = 0;
	while (b < VIEWS_N_BUILD && seconds > views_build_bounds[b])
		b++;
	hist[b]++;
	*sum += seconds;
}

static double now_mono(void)
{
	return (double)clock_now_ns() / 1e9;
}

static void gauge(struct metrics_out *o, const char *name, const char *help, double v)
{
	metrics_family(o, name, "gauge", help);
	metrics_sample(o, name, v, NULL);
}

static void counter(struct metrics_out *o, const char *name, const char *help, double v)
{
	metrics_family(o, name, "counter", help);
	metrics_sample(o, name, v, NULL);
}

/* ---- snapshot and lifecycle ------------------------------------------------ */

/* The DNS programming latency SLI (daemon/programming.h), under svcdns's
 * name and, with --metrics-compat coredns, under CoreDNS's. */
static void programming_metrics(struct metrics_out *o, const struct programming *pg)
{
	static const char *const names[] = {"svcdns_dns_programming_duration_seconds",
					    "coredns_kubernetes_dns_programming_duration_seconds"};
	if (!pg)
		return;
	for (int n = 0; n < (metrics_out_compat(o) ? 2 : 1); n++) {
		metrics_family(o, names[n], "histogram",
			       n ? "Histogram of the time (in seconds) it took to program a dns "
				   "instance."
				 : "Time from a change in the cluster (an EndpointSlice's "
				   "last-change-trigger-time) to the snapshot holding it being "
				   "served, by kind of Service (the Kubernetes DNS programming "
				   "latency SLI).");
		for (int k = 0; k < PROG_N_KINDS; k++)
			metrics_histogram(o, names[n], prog_bounds, PROG_N_BOUNDS, pg->hist[k],
					  pg->sum[k], "service_kind",
					  programming_kind_name((enum prog_kind)k), NULL);
	}
	counter(o, "svcdns_dns_programming_skipped_total",
		"Trigger times not observed: their Service was not in the snapshot (or is an "
		"ExternalName), or too many waited at once.",
		(double)pg->skipped);
}

static void src_snapshot(struct metrics_out *o, void *arg)
{
	const struct views_state *st = arg;
	const struct snapshot *s = snapshot_current();
	if (s) {
		gauge(o, "svcdns_snapshot_generation",
		      "Generation of the snapshot being served (grows by one per build).",
		      (double)s->generation);
		gauge(o, "svcdns_snapshot_serial", "SOA serial of the snapshot being served.",
		      (double)s->serial);
		gauge(o, "svcdns_snapshot_names", "Names in the snapshot being served.",
		      (double)s->n_names);
		gauge(o, "svcdns_snapshot_bytes", "Memory held by the snapshot being served.",
		      (double)s->bytes);
		gauge(o, "svcdns_snapshot_incremental",
		      "1 when the snapshot being served was built from its predecessor's tables.",
		      s->incremental ? 1 : 0);
		gauge(o, "svcdns_snapshot_synced",
		      "1 once the data source completed its first full sync.", s->synced ? 1 : 0);
		double age = now_mono() - (double)s->built_ns / 1e9;
		gauge(o, "svcdns_snapshot_age_seconds",
		      "Seconds since the snapshot being served was built.", age > 0 ? age : 0);
	}
	metrics_family(o, "svcdns_snapshot_builds_total", "counter",
		       "Snapshots built, in full or incrementally.");
	metrics_sample(o, "svcdns_snapshot_builds_total", (double)st->builds[0], "kind", "full",
		       NULL);
	metrics_sample(o, "svcdns_snapshot_builds_total", (double)st->builds[1], "kind",
		       "incremental", NULL);
	metrics_family(o, "svcdns_snapshot_build_duration_seconds", "histogram",
		       "Time to build a snapshot from the model, view included.");
	metrics_histogram(o, "svcdns_snapshot_build_duration_seconds", views_build_bounds,
			  VIEWS_N_BUILD, st->build_hist, st->build_sum, NULL);
	metrics_family(o, "svcdns_pipeline_failures_total", "counter",
		       "Runs of the pipeline from the model to a published snapshot that failed, "
		       "by stage; the previous snapshot kept being served.");
	for (int k = 0; k < PIPELINE_N_STAGES; k++)
		metrics_sample(o, "svcdns_pipeline_failures_total",
			       (double)pipeline_failures(st->pipeline, (enum pipeline_stage)k),
			       "stage", pipeline_stage_name((enum pipeline_stage)k), NULL);
	uint64_t withheld_total = 0;
	size_t withheld = pipeline_withheld(st->pipeline, &withheld_total);
	metrics_family(o, "svcdns_pipeline_withheld_services", "gauge",
		       "Services whose names the snapshot being served withholds from DNS: the "
		       "datapath refused to forward them.");
	metrics_sample(o, "svcdns_pipeline_withheld_services", (double)withheld, NULL);
	metrics_family(o, "svcdns_pipeline_withheld_total", "counter",
		       "Services withheld from a published snapshot, counted at every snapshot.");
	metrics_sample(o, "svcdns_pipeline_withheld_total", (double)withheld_total, NULL);
	metrics_family(o, "svcdns_data_change_to_serve_seconds", "histogram",
		       "Time from the data source reporting a change to the snapshot holding it "
		       "being served.");
	metrics_histogram(o, "svcdns_data_change_to_serve_seconds", views_build_bounds,
			  VIEWS_N_BUILD, st->serve_hist, st->serve_sum, NULL);
	programming_metrics(o, pipeline_programming(st->pipeline));
	gauge(o, "svcdns_data_source_age_seconds",
	      "Seconds since the data source was last heard from (0 for a manifest directory, "
	      "which is always current).",
	      st->source_age);
	gauge(o, "svcdns_data_stale",
	      "1 while the data source has been silent for longer than --stale-after.",
	      st->stale ? 1 : 0);
	gauge(o, "svcdns_ready", "1 when /ready answers 200.", st->ready ? 1 : 0);
	gauge(o, "svcdns_shutting_down", "1 from SIGTERM until exit (lameduck, then drain).",
	      st->shutting_down ? 1 : 0);
	metrics_family(o, "svcdns_reloads_total", "counter",
		       "Configuration reloads (SIGHUP or a change of --config), by result.");
	metrics_sample(o, "svcdns_reloads_total", (double)st->reloads_ok, "result", "success",
		       NULL);
	metrics_sample(o, "svcdns_reloads_total", (double)st->reloads_failed, "result", "failure",
		       NULL);
	gauge(o, "svcdns_reload_last_success_timestamp_seconds",
	      "Wall clock time of the last successful reload, 0 when none.", st->last_reload);
	if (metrics_out_compat(o))
		counter(o, "coredns_reload_failed_total",
			"Counter of the number of failed reload attempts.",
			(double)st->reloads_failed);
}

/* ---- the model, as the served snapshot holds it ---------------------------- */

static void src_model(struct metrics_out *o, void *arg)
{
	(void)arg;
	const struct snapshot *s = snapshot_current();
	if (!s || !s->view)
		return;
	const struct model_view *v = s->view;
	static const char *const kinds[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
					    "Headless"};
	uint64_t by_kind[5] = {0}, ports = 0, ready = 0, not_ready = 0;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct model_service *svc = v->svcs[i].svc;
		size_t k = svc->headless ? 4 : (size_t)svc->type;
		by_kind[k < 5 ? k : 0]++;
		ports += svc->n_ports;
		for (size_t e = 0; e < v->svcs[i].n_eps; e++) {
			if (v->svcs[i].eps[e].ready)
				ready++;
			else
				not_ready++;
		}
	}
	metrics_family(o, "svcdns_model_services", "gauge",
		       "Services in the model being served, by type (headless ones apart).");
	for (size_t k = 0; k < 5; k++)
		metrics_sample(o, "svcdns_model_services", (double)by_kind[k], "type", kinds[k],
			       NULL);
	gauge(o, "svcdns_model_service_ports", "Service ports in the model being served.",
	      (double)ports);
	metrics_family(o, "svcdns_model_endpoints", "gauge",
		       "Endpoints of every Service in the model being served, by readiness.");
	metrics_sample(o, "svcdns_model_endpoints", (double)ready, "ready", "true", NULL);
	metrics_sample(o, "svcdns_model_endpoints", (double)not_ready, "ready", "false", NULL);
	gauge(o, "svcdns_model_namespaces", "Namespaces in the model being served.",
	      (double)v->n_namespaces);
	uint64_t imports[2] = {0}, import_eps = 0;
	for (size_t i = 0; i < v->n_imports; i++) {
		imports[v->imports[i].svc->headless]++;
		import_eps += v->imports[i].n_eps;
	}
	metrics_family(o, "svcdns_model_service_imports", "gauge",
		       "ServiceImports in the model being served (clusterset.local), by type.");
	metrics_sample(o, "svcdns_model_service_imports", (double)imports[0], "type",
		       "ClusterSetIP", NULL);
	metrics_sample(o, "svcdns_model_service_imports", (double)imports[1], "type", "Headless",
		       NULL);
	gauge(o, "svcdns_model_service_import_endpoints",
	      "Endpoints of every ServiceImport, of every cluster, in the model being served.",
	      (double)import_eps);
}

/* ---- the Kubernetes API source --------------------------------------------- */

static void src_kube(struct metrics_out *o, void *arg)
{
	const struct views_state *st = arg;
	const struct kube_source *ks = st->kube;
	if (!ks)
		return;
	metrics_family(o, "svcdns_kubernetes_watch_events_total", "counter",
		       "Watch events received from the API server, by resource and type.");
	for (int r = 0; r < kube_source_resources(ks); r++)
		for (int t = 0; t < KUBE_EV_TYPES; t++)
			metrics_sample(o, "svcdns_kubernetes_watch_events_total",
				       (double)kube_source_events(ks, (enum kube_resource)r,
								  (enum kube_event_type)t),
				       "resource", kube_resource_name((enum kube_resource)r),
				       "type", kube_event_type_name((enum kube_event_type)t), NULL);
	metrics_family(o, "svcdns_kubernetes_relists_total", "counter",
		       "Lists started again after 410 Gone, by resource.");
	for (int r = 0; r < kube_source_resources(ks); r++)
		metrics_sample(o, "svcdns_kubernetes_relists_total",
			       (double)kube_source_relists(ks, (enum kube_resource)r), "resource",
			       kube_resource_name((enum kube_resource)r), NULL);
	metrics_family(o, "svcdns_kubernetes_bad_lines_total", "counter",
		       "Lines of a watch stream that were not events and were skipped.");
	for (int r = 0; r < kube_source_resources(ks); r++)
		metrics_sample(o, "svcdns_kubernetes_bad_lines_total",
			       (double)kube_source_bad_lines(ks, (enum kube_resource)r), "resource",
			       kube_resource_name((enum kube_resource)r), NULL);
	double since = kube_source_seconds_since_contact(ks);
	gauge(o, "svcdns_kubernetes_seconds_since_contact",
	      "Seconds since a byte last came from the API server (-1: never).", since);
	gauge(o, "svcdns_kubernetes_synced", "1 once every resource was listed in full once.",
	      kube_source_synced(ks) ? 1 : 0);
	metrics_family(o, "svcdns_kubernetes_resource_served", "gauge",
		       "1 when the API server serves the resource; 0 for an optional one it does "
		       "not (ServiceCIDRs before Kubernetes 1.31, ServiceImports without the CRD), "
		       "which svcdns does without.");
	for (int r = 0; r < kube_source_resources(ks); r++)
		metrics_sample(o, "svcdns_kubernetes_resource_served",
			       kube_source_served(ks, (enum kube_resource)r) ? 1 : 0, "resource",
			       kube_resource_name((enum kube_resource)r), NULL);
	views_kube_requests(o, ks);
}

/* ---- the forwarder and its cache ------------------------------------------- */

/* Per upstream: queries, failures, health, rcodes, durations. */
/* Each upstream's packets by what became of them, and what its
 * --upstream-max-qps budget held back. */
static void upstream_packet_metrics(struct metrics_out *o, struct upstream_set *set,
				    const struct upstream_stats *us)
{
	const char *name = "svcdns_forward_upstream_packets_total";
	metrics_family(o, name, "counter",
		       "Packets sent to each upstream, by outcome: answered, timeout, "
		       "network_error (the rest are in flight).");
	for (size_t i = 0; i < set->n; i++) {
		uint64_t answered = 0;
		for (int r = 0; r < 16; r++)
			answered += us[i].rcodes[r];
		const char *to = set->ups[i].text;
		metrics_sample(o, name, (double)answered, "to", to, "outcome", "answered", NULL);
		metrics_sample(o, name, (double)us[i].timeouts, "to", to, "outcome", "timeout",
			       NULL);
		metrics_sample(o, name, (double)us[i].net_errors, "to", to, "outcome",
			       "network_error", NULL);
	}
	if (!set->budget)
		return;
	name = "svcdns_forward_budget_held_total";
	metrics_family(o, name, "counter",
		       "Sends to each upstream that --upstream-max-qps held back (each try).");
	for (size_t i = 0; i < set->n; i++)
		metrics_sample(o, name, (double)upstream_budget_held(set->budget, i), "to",
			       set->ups[i].text, NULL);
}

/* Each TLS upstream's handshakes by outcome; nothing without TLS upstreams. */
static void upstream_tls_metrics(struct metrics_out *o, struct upstream_set *set,
				 const struct upstream_stats *us)
{
	if (!set->tls)
		return;
	const char *name = "svcdns_forward_tls_handshakes_total";
	metrics_family(o, name, "counter",
		       "TLS handshakes with each TLS upstream, by outcome: ok, resumed (an earlier "
		       "session taken up), verify_failed, error.");
	for (size_t i = 0; i < set->n; i++) {
		if (!set->ups[i].tls)
			continue;
		for (int k = 0; k < UPSTREAM_TLS_OUTCOMES; k++)
			metrics_sample(o, name, (double)us[i].tls_handshakes[k], "to",
				       set->ups[i].text, "outcome", upstream_tls_outcome_names[k],
				       NULL);
	}
}

static void upstream_metrics(struct metrics_out *o, struct upstream_set *set, bool compat)
{
	size_t n = set->n;
	struct upstream_stats *us = calloc(n, sizeof(*us));
	if (!us)
		return;
	for (size_t i = 0; i < n; i++)
		upstream_stats_get(set, i, &us[i]);
	static const struct {
		const char *name, *help;
		size_t off;
	} per[] = {
	    {"svcdns_forward_requests_total", "Queries sent to each upstream (UDP, TCP and TLS).",
	     offsetof(struct upstream_stats, requests)},
	    {"svcdns_forward_tcp_requests_total", "Queries sent to each upstream over TCP.",
	     offsetof(struct upstream_stats, tcp_requests)},
	    {"svcdns_forward_tls_requests_total", "Queries sent to each upstream over TLS.",
	     offsetof(struct upstream_stats, tls_requests)},
	    {"svcdns_forward_timeouts_total", "Upstream queries that got no answer in time.",
	     offsetof(struct upstream_stats, timeouts)},
	    {"svcdns_forward_network_errors_total", "Upstream queries refused, unreachable or cut.",
	     offsetof(struct upstream_stats, net_errors)},
	    {"svcdns_forward_dropped_total",
	     "Upstream answers dropped: wrong ID, question or source.",
	     offsetof(struct upstream_stats, dropped)},
	    {"svcdns_forward_healthcheck_failures_total",
	     "Health probes of a down upstream that got no answer.",
	     offsetof(struct upstream_stats, health_failures)},
	};
	for (size_t k = 0; k < sizeof(per) / sizeof(per[0]); k++) {
		metrics_family(o, per[k].name, "counter", per[k].help);
		for (size_t i = 0; i < n; i++)
			metrics_sample(
			    o, per[k].name,
			    (double)*(const uint64_t *)((const char *)&us[i] + per[k].off), "to",
			    set->ups[i].text, NULL);
	}
	upstream_packet_metrics(o, set, us);
	upstream_tls_metrics(o, set, us);
	metrics_family(o, "svcdns_forward_upstream_healthy", "gauge",
		       "1 when the upstream is used, 0 while it is down or looped back.");
	for (size_t i = 0; i < n; i++)
		metrics_sample(o, "svcdns_forward_upstream_healthy",
			       us[i].down || us[i].looped ? 0 : 1, "to", set->ups[i].text, NULL);
	for (int c = 0; c < 2; c++) {
		const char *name =
		    c ? "coredns_forward_responses_total" : "svcdns_forward_responses_total";
		if (c && !compat)
			break;
		metrics_family(o, name, "counter", "Upstream answers, by upstream and rcode.");
		for (size_t i = 0; i < n; i++)
			for (unsigned r = 0; r < 16; r++)
				if (us[i].rcodes[r])
					metrics_sample(o, name, (double)us[i].rcodes[r], "to",
						       set->ups[i].text, "rcode",
						       metrics_rcode_name(r), NULL);
	}
	double bounds[UPSTREAM_DUR_BUCKETS];
	for (size_t b = 0; b < UPSTREAM_DUR_BUCKETS; b++)
		bounds[b] = upstream_dur_bounds_ms[b] / 1000.0;
	for (int c = 0; c < 2; c++) {
		const char *name = c ? "coredns_forward_request_duration_seconds"
				     : "svcdns_forward_request_duration_seconds";
		if (c && !compat)
			break;
		metrics_family(o, name, "histogram",
			       "Time an upstream took to answer, by upstream.");
		for (size_t i = 0; i < n; i++)
			metrics_histogram(o, name, bounds, UPSTREAM_DUR_BUCKETS, us[i].dur_buckets,
					  (double)us[i].dur_us_sum / 1e6, "to", set->ups[i].text,
					  NULL);
	}
	if (compat) {
		metrics_family(o, "coredns_forward_requests_total", "counter",
			       "Counter of requests made per upstream.");
		for (size_t i = 0; i < n; i++)
			metrics_sample(o, "coredns_forward_requests_total", (double)us[i].requests,
				       "to", set->ups[i].text, NULL);
		metrics_family(o, "coredns_forward_healthcheck_failures_total", "counter",
			       "Counter of the number of failed healthchecks.");
		for (size_t i = 0; i < n; i++)
			metrics_sample(o, "coredns_forward_healthcheck_failures_total",
				       (double)us[i].health_failures, "to", set->ups[i].text, NULL);
	}
	free(us);
}

/* The forwarder's cache. */
static void cache_metrics(struct metrics_out *o, struct cache *c, bool compat)
{
	struct cache_stats cs;
	cache_stats_get(c, &cs);
	gauge(o, "svcdns_cache_entries", "Answers in the forwarder's cache.", (double)cs.entries);
	gauge(o, "svcdns_cache_bytes", "Memory held by the forwarder's cache.", (double)cs.bytes);
	counter(o, "svcdns_cache_hits_total", "Forwarded queries answered from the cache.",
		(double)cs.hits);
	counter(o, "svcdns_cache_misses_total", "Forwarded queries the cache could not answer.",
		(double)cs.misses);
	counter(o, "svcdns_cache_evictions_total", "Entries evicted to stay within the budget.",
		(double)cs.evictions);
	counter(o, "svcdns_cache_prefetch_total", "Popular entries refreshed before expiry.",
		(double)cs.prefetches);
	counter(o, "svcdns_cache_served_stale_total",
		"Expired entries served because every upstream failed (RFC 8767).",
		(double)cs.stale_served);
	if (!compat)
		return;
	/* CoreDNS splits entries, hits and evictions into success and denial;
	 * svcdns keeps one count, labelled type="all". */
	const char *srv = metrics_out_server(o);
	metrics_family(o, "coredns_cache_entries", "gauge", "The number of elements in the cache.");
	metrics_sample(o, "coredns_cache_entries", (double)cs.entries, "server", srv, "type", "all",
		       NULL);
	metrics_family(o, "coredns_cache_hits_total", "counter", "The count of cache hits.");
	metrics_sample(o, "coredns_cache_hits_total", (double)cs.hits, "server", srv, "type", "all",
		       NULL);
	metrics_family(o, "coredns_cache_misses_total", "counter", "The count of cache misses.");
	metrics_sample(o, "coredns_cache_misses_total", (double)cs.misses, "server", srv, NULL);
	metrics_family(o, "coredns_cache_evictions_total", "counter",
		       "The count of cache evictions.");
	metrics_sample(o, "coredns_cache_evictions_total", (double)cs.evictions, "server", srv,
		       "type", "all", NULL);
	metrics_family(o, "coredns_cache_prefetch_total", "counter",
		       "The number of times the cache has prefetched a cached item.");
	metrics_sample(o, "coredns_cache_prefetch_total", (double)cs.prefetches, "server", srv,
		       NULL);
	metrics_family(o, "coredns_cache_served_stale_total", "counter",
		       "The number of requests served from stale cache entries.");
	metrics_sample(o, "coredns_cache_served_stale_total", (double)cs.stale_served, "server",
		       srv, NULL);
}

static void src_forward(struct metrics_out *o, void *arg)
{
	const struct views_state *st = arg;
	if (!st->fwd)
		return;
	bool compat = metrics_out_compat(o);
	struct forward_stats fs;
	forward_stats_get(st->fwd, &fs);
	counter(o, "svcdns_forward_queries_total",
		"Client queries that needed an answer from upstream.", (double)fs.forwarded);
	counter(o, "svcdns_forward_coalesced_total",
		"Forwarded queries that joined an identical one in flight.", (double)fs.coalesced);
	counter(o, "svcdns_forward_max_concurrent_rejects_total",
		"Queries refused because --max-concurrent were in flight.", (double)fs.rejected);
	counter(o, "svcdns_forward_all_down_total",
		"Queries answered SERVFAIL at once because every upstream was down.",
		(double)fs.servfail_down);
	counter(o, "svcdns_forward_recursion_refused_total",
		"Queries refused because the client is outside --allow-recursion.",
		(double)fs.recursion_refused);
	counter(o, "svcdns_forward_budget_waits_total",
		"Questions that waited because --upstream-max-qps left no room.",
		(double)fs.budget_waits);
	counter(o, "svcdns_forward_budget_refused_total",
		"Questions answered SERVFAIL (or stale) because the budget left no room in time.",
		(double)fs.budget_refused);
	counter(o, "svcdns_forward_budget_stale_total",
		"Expired cache entries answered (EDE 3) because the budget left no room.",
		(double)fs.budget_stale);
	counter(o, "svcdns_forward_tries_exhausted_total",
		"Questions that used up --upstream-max-tries with servers left to ask.",
		(double)fs.tries_exhausted);
	metrics_family(o, "svcdns_forward_filtered_total", "counter",
		       "Questions for an address family the cluster cannot use, answered empty "
		       "(EDE 17) by --filter-aaaa or --filter-a instead of asked upstream.");
	metrics_sample(o, "svcdns_forward_filtered_total", (double)fs.filtered_aaaa, "type", "AAAA",
		       NULL);
	metrics_sample(o, "svcdns_forward_filtered_total", (double)fs.filtered_a, "type", "A",
		       NULL);
	gauge(o, "svcdns_forward_in_flight", "Upstream queries in flight.", (double)fs.in_flight);
	if (compat)
		counter(o, "coredns_forward_max_concurrent_rejects_total",
			"Counter of the number of queries rejected because the concurrent queries "
			"were at maximum.",
			(double)fs.rejected);

	struct upstream_set *set = forward_upstreams(st->fwd);
	if (set && set->n)
		upstream_metrics(o, set, compat);
	struct cache *c = forward_cache(st->fwd);
	if (c)
		cache_metrics(o, c, compat);
}

/* ---- the datapath ---------------------------------------------------------- */

struct proxy_pass {
	struct metrics_out *o;
	const char *name;
	size_t off; /* a field of proxy_port_stats; SIZE_MAX: bytes by direction */
};

static void proxy_sample(void *arg, const char *ns, const char *name, const char *port_name,
			 uint8_t proto, uint16_t port, const struct proxy_port_stats *st)
{
	struct proxy_pass *pp = arg;
	char pnum[8];
	snprintf(pnum, sizeof(pnum), "%u", (unsigned)port);
	if (pp->off == SIZE_MAX) {
		metrics_sample(pp->o, pp->name, (double)st->bytes_in, "namespace", ns, "service",
			       name, "port_name", port_name, "port", pnum, "protocol",
			       model_proto_name(proto), "direction", "to_endpoint", NULL);
		metrics_sample(pp->o, pp->name, (double)st->bytes_out, "namespace", ns, "service",
			       name, "port_name", port_name, "port", pnum, "protocol",
			       model_proto_name(proto), "direction", "to_client", NULL);
		return;
	}
	metrics_sample(pp->o, pp->name, (double)*(const uint64_t *)((const char *)st + pp->off),
		       "namespace", ns, "service", name, "port_name", port_name, "port", pnum,
		       "protocol", model_proto_name(proto), NULL);
}

static void src_proxy(struct metrics_out *o, void *arg)
{
	const struct views_state *st = arg;
	if (!st->proxy)
		return;
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fams[] = {
	    {"svcdns_proxy_connections_total", "counter",
	     "TCP connections accepted and UDP flows opened, per Service port.",
	     offsetof(struct proxy_port_stats, connections)},
	    {"svcdns_proxy_active_connections", "gauge",
	     "TCP connections and UDP flows open now, per Service port.",
	     offsetof(struct proxy_port_stats, active)},
	    {"svcdns_proxy_bytes_total", "counter",
	     "Bytes forwarded per Service port, by direction.", SIZE_MAX},
	    {"svcdns_proxy_endpoint_failures_total", "counter",
	     "Endpoint attempts refused, timed out or unreachable, per Service port.",
	     offsetof(struct proxy_port_stats, endpoint_failures)},
	    {"svcdns_proxy_no_endpoints_total", "counter",
	     "Connections reset and datagrams dropped because no endpoint was ready.",
	     offsetof(struct proxy_port_stats, no_endpoints)},
	    {"svcdns_proxy_over_limit_total", "counter",
	     "Connections and flows turned away by --proxy-max-conns/-flows.",
	     offsetof(struct proxy_port_stats, over_limit)},
	    {"svcdns_proxy_listeners", "gauge",
	     "Listeners a Service port needs (its ClusterIPs and NodePort).",
	     offsetof(struct proxy_port_stats, listeners)},
	    {"svcdns_proxy_listeners_bound", "gauge",
	     "Of those, the ones bound now; the others are retried every 5 s.",
	     offsetof(struct proxy_port_stats, listeners_bound)},
	};
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		struct proxy_pass pp = {o, fams[k].name, fams[k].off};
		metrics_family(o, fams[k].name, fams[k].type, fams[k].help);
		proxy_port_foreach(st->proxy, proxy_sample, &pp);
	}
}

/* ---- the DNS listeners' limits --------------------------------------------- */

static void src_limits(struct metrics_out *o, void *arg)
{
	const struct dns_limits *l = arg;
	metrics_family(o, "svcdns_dns_limit_hits_total", "counter",
		       "Times a limit of the DNS listeners was hit: a TCP connection refused or "
		       "closed, a client no longer read, a UDP query dropped, an answer dropped "
		       "or truncated by --rrl.");
	for (int what = 0; what < DNS_LIMIT_COUNT; what++)
		metrics_sample(o, "svcdns_dns_limit_hits_total",
			       (double)dns_limits_count(l, (enum dns_limit)what), "limit",
			       dns_limit_name((enum dns_limit)what), NULL);
}

int views_register_limits(struct metrics *m, const struct dns_limits *l)
{
	return metrics_register_source(m, "limits", src_limits, (void *)l);
}

void views_unregister_limits(struct metrics *m)
{
	metrics_unregister_source(m, "limits");
}

int views_register(struct metrics *m, const struct views_state *st)
{
	void *arg = (void *)st; /* the sources only read it */
	int ret = metrics_register_source(m, "snapshot", src_snapshot, arg);
	if (ret == 0)
		ret = metrics_register_source(m, "model", src_model, arg);
	if (ret == 0)
		ret = metrics_register_source(m, "kubernetes", src_kube, arg);
	if (ret == 0)
		ret = metrics_register_source(m, "forward", src_forward, arg);
	if (ret == 0)
		ret = metrics_register_source(m, "proxy", src_proxy, arg);
	return ret;
}

/* ---- /debug/model ------------------------------------------------------------ */

static json_t *jaddr(const struct net_addr *a)
{
	char buf[64];
	net_addr_format(a, buf, sizeof(buf));
	return json_string(buf);
}

static const char *svc_type(const struct model_service *s)
{
	switch (s->type) {
	case SVC_NODE_PORT:
		return "NodePort";
	case SVC_LOAD_BALANCER:
		return "LoadBalancer";
	case SVC_EXTERNAL_NAME:
		return "ExternalName";
	default:
		return "ClusterIP";
	}
}

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *service_json(const struct view_service *vs)
{
	const struct model_service *s = vs->svc;
	json_t *o = json_object(), *ips = json_array(), *ports = json_array(), *eps = json_array();
	json_object_set_new(o, "namespace", json_string(s->ns));
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(
	    o, "type",
	    json_string(s->imported ? (s->headless ? "Headless" : "ClusterSetIP") : svc_type(s)));
	json_object_set_new(o, "headless", json_boolean(s->headless));
	for (size_t i = 0; i < s->n_cluster_ips; i++)
		json_array_append_new(ips, jaddr(&s->cluster_ips[i]));
	json_object_set_new(o, "clusterIPs", ips);
	json_object_set_new(o, "externalName", jstr_or_null(s->external_name));
	json_object_set_new(o, "publishNotReadyAddresses", json_boolean(s->publish_not_ready));
	for (size_t i = 0; i < s->n_ports; i++) {
		const struct model_svc_port *p = &s->ports[i];
		json_t *jp = json_object();
		json_object_set_new(jp, "name", json_string(p->name));
		json_object_set_new(jp, "port", json_integer(p->port));
		json_object_set_new(jp, "protocol", json_string(model_proto_name(p->proto)));
		json_object_set_new(jp, "targetPort",
				    p->target_name
					? json_string(p->target_name)
					: json_integer(p->target_num ? p->target_num : p->port));
		json_object_set_new(jp, "nodePort",
				    p->node_port ? json_integer(p->node_port) : json_null());
		json_array_append_new(ports, jp);
	}
	json_object_set_new(o, "ports", ports);
	json_object_set_new(o, "endpointsFrom",
			    json_string(vs->from_slices ? "EndpointSlices" : "Pods"));
	for (size_t e = 0; e < vs->n_eps; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		json_t *je = json_object(), *tps = json_array();
		json_object_set_new(je, "address", jaddr(&ep->addr));
		json_object_set_new(je, "ready", json_boolean(ep->ready));
		json_object_set_new(je, "serving", json_boolean(ep->serving));
		json_object_set_new(je, "terminating", json_boolean(ep->terminating));
		json_object_set_new(je, "hostname", jstr_or_null(ep->hostname));
		json_object_set_new(je, "nodeName", jstr_or_null(ep->node_name));
		json_object_set_new(je, "podName", jstr_or_null(ep->pod_name));
		json_object_set_new(je, "zone", jstr_or_null(ep->zone));
		if (s->imported)
			json_object_set_new(je, "cluster", jstr_or_null(ep->cluster));
		/* The port this endpoint really serves each Service port on: a
		 * named targetPort can differ from Pod to Pod. */
		for (size_t i = 0; i < s->n_ports; i++) {
			json_t *jt = json_object();
			uint16_t tp = ep->target_ports ? ep->target_ports[i] : 0;
			json_object_set_new(jt, "name", json_string(s->ports[i].name));
			json_object_set_new(jt, "port", json_integer(s->ports[i].port));
			json_object_set_new(jt, "protocol",
					    json_string(model_proto_name(s->ports[i].proto)));
			json_object_set_new(jt, "targetPort", tp ? json_integer(tp) : json_null());
			json_array_append_new(tps, jt);
		}
		json_object_set_new(je, "ports", tps);
		json_array_append_new(eps, je);
	}
	json_object_set_new(o, "endpoints", eps);
	return o;
}

int views_debug_model(char **body, size_t *len)
{
	const struct snapshot *s = snapshot_current();
	if (!s || !s->view)
		return -ENOENT;
	const struct model_view *v = s->view;
	json_t *root = json_object(), *svcs = json_array(), *nss = json_array();
	if (!root || !svcs || !nss) {
		json_decref(root);
		json_decref(svcs);
		json_decref(nss);
		return -ENOMEM;
	}
	json_object_set_new(root, "generation", json_integer((json_int_t)s->generation));
	json_object_set_new(root, "serial", json_integer((json_int_t)s->serial));
	json_object_set_new(root, "synced", json_boolean(s->synced));
	double age = now_mono() - (double)s->built_ns / 1e9;
	json_object_set_new(root, "builtSecondsAgo", json_real(age > 0 ? age : 0));
	for (size_t i = 0; i < v->n_namespaces; i++)
		json_array_append_new(nss, json_string(v->namespaces[i]));
	json_object_set_new(root, "namespaces", nss);
	for (size_t i = 0; i < v->n_svcs; i++)
		json_array_append_new(svcs, service_json(&v->svcs[i]));
	json_object_set_new(root, "services", svcs);
	/* ServiceImports with every cluster's endpoints (clusterset.local). */
	json_t *imps = json_array();
	for (size_t i = 0; imps && i < v->n_imports; i++)
		json_array_append_new(imps, service_json(&v->imports[i]));
	json_object_set_new(root, "serviceImports", imps ? imps : json_null());
	char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	/* The HTTP layer frees the body with free(); jansson's allocator is not
	 * malloc (common/jarena.h): hand over a copy. */
	json_free_t jfree;
	json_get_alloc_funcs(NULL, &jfree);
	*len = strlen(text);
	*body = malloc(*len + 1);
	if (*body)
		memcpy(*body, text, *len + 1);
	jfree(text);
	return *body ? 0 : -ENOMEM;
}
