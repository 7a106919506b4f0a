/* The operator's side of the program: the HTTP endpoint (/metrics, /health,
 * /ready, /debug/model), readiness, freshness of the data, the query log,
 * graceful shutdown (lameduck, then drain) and reloading the configuration
 * (SIGHUP, a change of --config FILE).
 *
 * Owns: the values of its options (struct lifecycle_options, declared in the
 * option table, daemon/options.c), the metrics registry, the ready
 * state and its reason, the timers that keep lifecycle_freshness.h current,
 * the order of shutdown, applying at a reload what the option table marks
 * as reloadable (log level, query log, TTL, zone files, freshness, lameduck
 * and metrics names) and the snapshot settings in force after a reload.
 * Must never: answer queries or build snapshots itself; it asks daemon.c
 * (hooks) to rebuild and to stop. Everything runs on the control loop. */
#ifndef SVCDNS_LIFECYCLE_H
#define SVCDNS_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/metrics.h"
#include "dns/server.h"
#include "zones/snapshot.h"

struct lifecycle_options {
	const char *http;
	bool compat;
	unsigned stale_after_s;
	unsigned unready_after_s; /* 0: off */
	unsigned lameduck_ms;
	bool log_queries;
	unsigned startup_timeout_ms; /* cluster names unanswered before the first sync */
};

struct kube_source;
struct forwarder;
struct proxy;
struct pipeline;
struct svcdns_options;

/* What the lifecycle works with, filled by daemon.c. */
struct lifecycle_hooks {
	uv_loop_t *loop;
	/* The options the program started with (daemon/options.h): the command
	 * line and --config FILE a reload reads again, and what it compares. */
	const struct svcdns_options *opts;
	struct dns_server *server;
	struct kube_source *kube;   /* or NULL: a manifest directory, always fresh */
	struct forwarder *fwd;	    /* or NULL */
	struct proxy *proxy;	    /* or NULL */
	struct pipeline *pipeline;  /* its failure counters are metrics */
	void (*rebuild)(void *arg); /* build and publish a snapshot soon */
	void (*stop)(void *arg);    /* stop everything; calls lifecycle_stop */
	void *arg;
	int http_fd; /* --http's socket taken over (daemon/handover.h), or 0: bind it */
};

struct lifecycle;

/* Before the DNS server starts: makes the metrics registry (with a zone label
 * per zone of `scfg`) and sets up freshness for `scfg->zone`. `scfg` is the
 * settings of the first build and must outlive the lifecycle. */
int lifecycle_new(const struct lifecycle_options *o, const struct snapshot_config *scfg,
		  const struct dns_listen *listen, size_t n_listen, struct lifecycle **out);
/* The per-worker counters' registry, for dns_server_config. */
struct metrics *lifecycle_metrics(struct lifecycle *lc);
/* Before the DNS server starts: HTTP endpoint, timers, SIGHUP, --config
 * watch. Returns 0 or a negative errno (the HTTP address cannot be bound).
 * Until lifecycle_set_server, /ready says the listeners are not open. */
int lifecycle_start(struct lifecycle *lc, const struct lifecycle_hooks *h);
/* The DNS server, once it started (its drain is part of the shutdown). */
void lifecycle_set_server(struct lifecycle *lc, struct dns_server *server);

/* SIGTERM/SIGINT: /ready fails at once; after lameduck (SIGTERM with --http)
 * the DNS server drains, then hooks.stop runs. A second signal stops at once. */
void lifecycle_shutdown(struct lifecycle *lc, int signum);
/* Another process serves our sockets now (daemon/handover.h): the HTTP
 * endpoint closes, the DNS server drains at once, and the process then waits,
 * serving nothing, for SIGTERM or SIGINT to exit (at once). Under a
 * DaemonSet, exiting on its own would only get the old container restarted. */
void lifecycle_handed_over(struct lifecycle *lc);
/* The --http listening socket, to hand over, or -1. */
int lifecycle_http_fd(const struct lifecycle *lc);
/* Closes every handle the lifecycle holds (from hooks.stop). */
void lifecycle_stop(struct lifecycle *lc);
/* After the loop ended and snapshot_shutdown(). */
void lifecycle_free(struct lifecycle *lc);

/* ---- the pipeline's snapshot builds ------------------------------------------------ */

/* The settings to build with: the first ones until a reload changes them.
 * A snapshot built with other settings than its predecessor must be built
 * in full. */
const struct snapshot_config *lifecycle_snapshot_config(struct lifecycle *lc,
							const struct snapshot_config *first);
/* The data source reported a change (starts the change-to-serve clock). */
void lifecycle_data_changed(struct lifecycle *lc);
/* A snapshot was published; `build_ns` is how long it took. */
void lifecycle_published(struct lifecycle *lc, const struct snapshot *s, uint64_t build_ns);

/* For tests: the reason /ready fails, or NULL when ready. */
const char *lifecycle_not_ready(struct lifecycle *lc, char *buf, size_t cap);

#endif
