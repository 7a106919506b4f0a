/* What the HTTP endpoint shows beyond the DNS counters: the metrics sources
 * that read each module's getters (snapshot, model, Kubernetes API source,
 * forwarder, cache, datapath, lifecycle, the DNS listeners' limits), and the
 * /debug/model JSON view.
 *
 * Owns: metric names, labels and help texts of those families (and their
 * CoreDNS twins with --metrics-compat coredns), and the debug view's shape.
 * Must never: change anything it reads; it runs on the control thread at a
 * scrape, reading plain getters and the published snapshot. */
#ifndef SVCDNS_HTTP_VIEWS_H
#define SVCDNS_HTTP_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

struct kube_source;
struct forwarder;
struct proxy;
struct dns_limits;
struct pipeline;

/* Upper bounds (seconds) of the snapshot build and data-change-to-served
 * histograms. */
#define VIEWS_N_BUILD 14

/* Kept by the lifecycle on the control thread, read at a scrape. */
struct views_state {
	struct kube_source *kube;  /* or NULL */
	struct forwarder *fwd;	   /* or NULL */
	struct proxy *proxy;	   /* or NULL */
	struct pipeline *pipeline; /* or NULL */
	uint64_t builds[2];	   /* full, incremental */
	uint64_t build_hist[VIEWS_N_BUILD + 1];
	double build_sum;
	uint64_t serve_hist[VIEWS_N_BUILD + 1]; /* data change -> snapshot published */
	double serve_sum;
	uint64_t reloads_ok, reloads_failed;
	double last_reload; /* wall clock of the last successful reload, 0: none */
	bool ready;
	bool shutting_down;
	double source_age; /* seconds since the data source was heard from; 0: manifests */
	bool stale;
};

extern const double views_build_bounds[VIEWS_N_BUILD];

/* Adds one observation (seconds) to a histogram of VIEWS_N_BUILD bounds. */
void views_observe(uint64_t *hist, double *sum, double seconds);

/* Registers the sources on `m`; `st` must outlive it. Returns 0 or a
 * negative errno. */
int views_register(struct metrics *m, const struct views_state *st);

/* The hits of each limit of the DNS listeners (dns/limits.h) as
 * svcdns_dns_limit_hits_total{limit}. The listeners start after the other
 * sources are registered and stop before them, so their source comes and
 * goes on its own: unregister it before `l` is freed. */
int views_register_limits(struct metrics *m, const struct dns_limits *l);
void views_unregister_limits(struct metrics *m);

/* The JSON of /debug/model: the current snapshot's generation, serial and
 * view (Services, ports, targetPorts, endpoints with readiness). *body is
 * malloc'd. Returns 0, -ENOENT before the first snapshot, or -ENOMEM. */
int views_debug_model(char **body, size_t *len);

/* The API client's request families (http_views_api.c), part of the
 * Kubernetes source's metrics. */
void views_kube_requests(struct metrics_out *o, const struct kube_source *ks);

#endif
