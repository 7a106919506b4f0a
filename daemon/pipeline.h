/* The pipeline: the one path a change of the cluster takes to the wire.
 *
 *   data source -> model view -> snapshot -> datapath -> publish -> NOTIFY
 *
 * A change reported by a data source schedules one run on the next loop turn
 * (bursts coalesce); a run derives the view from the store, builds the
 * snapshot, makes the datapath forward what it holds, publishes it and tells
 * the secondaries. A stage that fails leaves the previous snapshot served and
 * the run is retried with backoff (pipeline.c says what each failure means).
 *
 * Owns: the rebuild timer, the retry backoff, the failure counters per stage,
 * the Services withheld from DNS because the datapath refused them,
 * the one log line per run (and one when the reverse zones' ranges change),
 * and the DNS programming latency observations (programming.h), made at
 * publish.
 * Must never: parse options or touch sockets itself (the datapath stage is
 * proxy_apply, or what a test puts in its place). Everything runs on the
 * control loop. */
#ifndef SVCDNS_PIPELINE_H
#define SVCDNS_PIPELINE_H

#include <stdint.h>

#include <uv.h>

#include "daemon/programming.h"
#include "discovery/model.h"
#include "zones/snapshot.h"

enum pipeline_stage {
	PIPELINE_VIEW = 0, /* model_view_update */
	PIPELINE_SNAPSHOT, /* snapshot_build */
	PIPELINE_DATAPATH, /* proxy_apply */
	PIPELINE_N_STAGES
};

/* The datapath stage: makes the datapath forward what s->view describes and
 * may set s->chaos_live. Returns 0 (ports that cannot be bound yet are the
 * datapath's to report and retry) or a negative errno when the datapath could
 * not take the new view at all; then `s` is not published. */
typedef int (*pipeline_datapath_fn)(void *arg, struct snapshot *s);

/* The Services the datapath could not forward after the stage just run
 * ("ns/name", sorted as the view sorts Services; valid until the stage runs
 * again). The pipeline publishes the snapshot without their names
 * (snapshot_withhold) and runs again with backoff (withheld_min_ms doubling
 * to retry_max_ms) while any is left, so that each appears in DNS once its
 * rules are in. */
typedef size_t (*pipeline_refused_fn)(void *arg, const char *const **keys);

struct lifecycle;
struct kube_source;
struct proxy;
struct dns_notifier;

struct pipeline_config {
	uv_loop_t *loop;
	struct model_store *store;
	struct model_alloc *alloc;
	/* The settings of the first build; a reload may replace them
	 * (lifecycle_snapshot_config). Must outlive the pipeline. */
	const struct snapshot_config *scfg;
	struct lifecycle *lc; /* or NULL */
	/* Retry backoff after a failed stage; 0: 250 ms doubling up to 30 s. */
	unsigned retry_min_ms, retry_max_ms;
	/* The first retry of Services the datapath refused, doubling up to
	 * retry_max_ms; 0: 1 s. */
	unsigned withheld_min_ms;
	/* Wall-clock milliseconds since the epoch, for the DNS programming
	 * latency (programming.h); NULL: CLOCK_REALTIME. */
	int64_t (*wall_ms)(void);
};

struct pipeline;

int pipeline_new(const struct pipeline_config *cfg, struct pipeline **out);
/* The sources of the later stages, set as they start (each may stay NULL):
 * the API source (a snapshot is "synced" once it is), the datapath, NOTIFY. */
void pipeline_set_source(struct pipeline *p, struct kube_source *kube);
void pipeline_set_datapath(struct pipeline *p, struct proxy *proxy);
void pipeline_set_notifier(struct pipeline *p, struct dns_notifier *notifier);
/* Puts `fn` in place of proxy_apply (tests: a datapath without sockets). */
void pipeline_set_datapath_stage(struct pipeline *p, pipeline_datapath_fn fn, void *arg);
/* How the stage's datapath (the same arg) reports what it refused; NULL: it
 * never refuses a Service. */
void pipeline_set_datapath_refused(struct pipeline *p, pipeline_refused_fn fn);

/* Builds and publishes now. Returns 0, or the negative errno of the stage
 * that failed (counted, logged, retried after the backoff). */
int pipeline_run(struct pipeline *p);
/* The data changed: a run on the next loop turn, or at the retry already
 * scheduled after a failure. */
void pipeline_changed(struct pipeline *p);

/* The DNS programming latency histograms (programming.h): every run takes
 * the API source's trigger times, every publish observes them. */
const struct programming *pipeline_programming(const struct pipeline *p);

/* Services withheld from the last published snapshot (their datapath rules
 * were refused), and in total since the start, counting each time one was. */
size_t pipeline_withheld(const struct pipeline *p, uint64_t *total);

/* Failed runs, by stage, since the start. */
uint64_t pipeline_failures(const struct pipeline *p, enum pipeline_stage stage);
/* "view", "snapshot", "datapath". */
const char *pipeline_stage_name(enum pipeline_stage stage);
/* The delay of the retry scheduled after a failure, 0 when none is. */
unsigned pipeline_retry_ms(const struct pipeline *p);

/* Closes the timer (the loop frees nothing of it); pipeline_free after the
 * loop has run. */
void pipeline_stop(struct pipeline *p);
void pipeline_free(struct pipeline *p);

#endif
