/* Metrics: the counters DNS workers keep per thread, without contention, and
 * the Prometheus text format the control thread renders when /metrics is
 * scraped, from those counters and from every registered source.
 *
 * Owns: the per-worker DNS counters (requests, responses, durations and sizes
 * by zone, type, protocol, family and rcode), the table of zone labels, the
 * registry of sources (metrics_register_source) and the text exposition.
 * Must never: lock, allocate, log or block in what a worker calls
 * (metrics_dns_*, metrics_worker_enter); a counter has one writer, its worker,
 * and is read with relaxed atomics by the scrape. Everything else runs on the
 * control thread. */
#ifndef SVCDNS_METRICS_H
#define SVCDNS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Zone labels: slot 0 is "." (every name in no zone served: forwarded,
 * refused), then the zones svcdns serves. Slots are never reused, so a
 * counter keeps its meaning for the life of the process. */
#define METRICS_MAX_ZONES 72

enum metrics_zone_kind {
	METRICS_ZONE_OTHER = 0, /* "." */
	METRICS_ZONE_CLUSTER,	/* built from the cluster (CoreDNS plugin "kubernetes") */
	METRICS_ZONE_STATIC,	/* a zone file (CoreDNS plugin "file") */
};

/* The query types CoreDNS gives a label of their own; others are "other". */
#define METRICS_N_TYPES 19
/* Header rcodes 0..15, then BADVERS (16, extended). */
#define METRICS_N_RCODES 17
/* Upper bounds of the request duration histogram, nanoseconds. */
#define METRICS_N_DUR 18
/* Upper bounds of the request and response size histograms, bytes (CoreDNS's). */
#define METRICS_N_SIZE 14

struct metrics;
struct metrics_worker;

int metrics_new(struct metrics **out);
/* After every worker has stopped. */
void metrics_free(struct metrics *m);

/* The zone label for names at or below `text` ("cluster.local"). Returns the
 * slot (existing or new) or -ENOSPC; safe while workers count (new slots are
 * published with a release store). */
int metrics_zone_add(struct metrics *m, const char *text, enum metrics_zone_kind kind);

/* `server` label of the CoreDNS names ("dns://:53"). */
void metrics_set_server_label(struct metrics *m, const char *label);
/* Also export the CoreDNS names and labels (--metrics-compat coredns). */
void metrics_set_compat(struct metrics *m, bool on);

/* ---- workers ------------------------------------------------------------- */

/* A worker's counters, made on the control thread before the worker runs;
 * owned by `m` (they outlive the worker, as counters must). NULL when out of
 * memory or past the slot limit: that worker then counts nothing. */
struct metrics_worker *metrics_worker_new(struct metrics *m);
/* On the worker's thread, before its loop runs: makes metrics_dns_reply_late
 * count into `w`. */
void metrics_worker_enter(struct metrics_worker *w);

enum metrics_proto { METRICS_UDP = 0, METRICS_TCP = 1 };

/* One query as a worker saw it. */
struct metrics_query {
	const uint8_t *req; /* the query as received */
	size_t req_len;
	uint16_t qend; /* end of its question, 0 when none was read */
	uint16_t qtype;
	const uint8_t *resp; /* the response sent, or NULL: none yet (forwarded) or none */
	size_t resp_len;
	uint8_t rcode; /* 0..15, or 16 for BADVERS */
	uint8_t proto; /* enum metrics_proto */
	const struct sockaddr *peer;
	uint64_t dur_ns; /* from receiving the query to its response */
	bool stale;	 /* the answer carried EDE 3 (Stale Answer) */
	bool dnssec_ok;	 /* for the query log */
	uint16_t bufsize;
	const uint8_t *apex; /* the zone's apex when the lookup found one (lowercase wire) */
	uint8_t apex_len;
};

/* Counts one query: a request always, a response when q->resp is set. Also
 * hands it to the query log when that is on (metrics_qlog.h). */
void metrics_dns_query(struct metrics_worker *w, const struct metrics_query *q);

/* For the forwarder, on a worker's thread, when it sends an answer it took
 * earlier (FORWARD_PENDING): counts that response, under zone ".", into the
 * calling worker's counters (set by metrics_worker_enter; a no-op elsewhere).
 * `start_ns` is uv_hrtime() when the query arrived, 0 if unknown. */
void metrics_dns_reply_late(const uint8_t *resp, size_t len, enum metrics_proto proto,
			    const struct sockaddr *peer, uint64_t start_ns);

/* The query log (metrics_qlog.h): on or off at any time; the control thread
 * drains every worker's ring (every QLOG_DRAIN_MS) and logs the lines.
 * Returns how many lines were written. */
void metrics_qlog_set(struct metrics *m, bool on);
size_t metrics_qlog_drain(struct metrics *m);

/* ---- sources --------------------------------------------------------------
 * Anything else that /metrics shows comes from sources: a callback run on
 * the control thread at every scrape that writes families with the helpers
 * below. Each module keeps its counters its own way and exposes plain
 * getters; its source reads them. Register once, on the control thread; the
 * program's registry is lifecycle_metrics() (daemon/lifecycle.h), and the
 * sources of the modules that exist are in daemon/http_views.c. */
struct metrics_out;
typedef void (*metrics_source_fn)(struct metrics_out *o, void *arg);

/* `name` identifies the source (a later registration with the same name
 * replaces it). Returns 0, -ENOSPC or -ENOMEM. */
int metrics_register_source(struct metrics *m, const char *name, metrics_source_fn fn, void *arg);
void metrics_unregister_source(struct metrics *m, const char *name);

/* "# HELP" and "# TYPE" lines; type is "counter", "gauge" or "histogram".
 * Write each family's header once, then all its samples. */
void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help);
/* One sample: labels as name/value pairs ending with NULL; values are escaped.
 * Whole numbers print without a fraction. */
void metrics_sample(struct metrics_out *o, const char *name, double v, ...)
    __attribute__((sentinel));
/* One histogram (name_bucket/_sum/_count): n bounds (upper, in the unit of the
 * metric), counts[0..n] per bucket (not cumulative; the last one is +Inf),
 * and the sum. Labels as for metrics_sample. */
void metrics_histogram(struct metrics_out *o, const char *name, const double *bounds, size_t n,
		       const uint64_t *counts, double sum, ...) __attribute__((sentinel));
/* Whether the CoreDNS names are wanted in this scrape, and their server label. */
bool metrics_out_compat(const struct metrics_out *o);
const char *metrics_out_server(const struct metrics_out *o);

/* Renders everything. *body is malloc'd (the caller frees it). */
int metrics_render(struct metrics *m, char **body, size_t *len);

/* ---- exposed for unit tests ---------------------------------------------- */

/* The zone slot of a wire-format question name (case-insensitive, longest
 * match), 0 when it is in no zone. */
unsigned metrics_zone_of(const struct metrics *m, const uint8_t *name, size_t len);
/* The type label slot of a query type, and the names of the slots. */
unsigned metrics_type_slot(uint16_t qtype);
const char *metrics_type_name(unsigned slot);
const char *metrics_rcode_name(unsigned rcode);

#endif
