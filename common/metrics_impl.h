/* The registry's layout, shared by the files of the metrics module:
 * metrics.c (the registry, sources, the scrape), metrics_text.c (the
 * Prometheus text format) and metrics_dns.c (the per-worker DNS counters).
 * Internal to common/metrics*.c.
 *
 * Owns: struct metrics and struct metrics_out, and the calls between those
 * files. Must never: be included anywhere else (metrics.h is the interface).
 * Threads: as metrics.h says; the zone table is the only part workers read
 * (slots below n_zones, immutable once published). */
#ifndef SVCDNS_METRICS_IMPL_H
#define SVCDNS_METRICS_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

#define METRICS_MAX_WORKERS 256
#define METRICS_MAX_SOURCES 32

struct mzone {
	uint8_t wire[256]; /* lowercased */
	size_t len;
	enum metrics_zone_kind kind;
	char text[256]; /* with the trailing dot */
};

struct msource {
	char name[64];
	metrics_source_fn fn;
	void *arg;
};

struct metrics {
	struct mzone zones[METRICS_MAX_ZONES];
	atomic_uint n_zones; /* slots below it are immutable */
	struct metrics_worker *workers[METRICS_MAX_WORKERS];
	unsigned n_workers; /* control thread only */
	struct msource sources[METRICS_MAX_SOURCES];
	size_t n_sources;
	atomic_bool qlog_on;
	bool compat;
	char server[96];
	double start_time; /* wall clock, seconds */
};

struct metrics_out {
	char *buf;
	size_t len, cap;
	int err;
	bool compat;
	const char *server;
};

/* ---- metrics_text.c ---- */
/* An empty exposition; 0 or -ENOMEM. */
int metrics_out_init(struct metrics_out *o, bool compat, const char *server);
/* Hands over the text (malloc'd) or, after an error while writing, frees it
 * and returns that error. */
int metrics_out_finish(struct metrics_out *o, char **body, size_t *len);

/* ---- metrics_dns.c ---- */
/* The DNS families, summed over every worker's counters. */
void metrics_dns_render(struct metrics *m, struct metrics_out *o);
/* Frees every worker's counters (metrics_free, after the workers stopped). */
void metrics_workers_free(struct metrics *m);

#endif
