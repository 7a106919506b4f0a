/* The operator's side of the program: the HTTP endpoint (/metrics, /health,
 * /ready, /debug/model), readiness, freshness of the data, the query log,
 * graceful shutdown (lameduck, then drain) and reloading the configuration
 * (SIGHUP, a change of --config FILE).
 *
 * Owns: its options (LIFECYCLE_LONG_OPTIONS), the metrics registry, the ready
 * state and its reason, the timers that keep lifecycle_freshness.h current,
 * the order of shutdown, what a reload may change (log level, query log, TTL,
 * zone files, freshness and lameduck settings) and the snapshot settings in
 * force after a reload.
 * Must never: answer queries or build snapshots itself; it asks daemon.c
 * (hooks) to rebuild and to stop. Everything runs on the control loop. */
#ifndef SVCDNS_LIFECYCLE_H
#define SVCDNS_LIFECYCLE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/metrics.h"
#include "dns/server.h"
#include "zones/snapshot.h"

/* getopt_long codes (0x300: API source, 0x400: proxy, 0x500: forwarder). */
enum {
	LC_OPT_HTTP = 0x600,
	LC_OPT_METRICS_COMPAT,
	LC_OPT_STALE_AFTER,
	LC_OPT_UNREADY_AFTER,
	LC_OPT_LAMEDUCK,
	LC_OPT_CONFIG,
	LC_OPT_CHECK_CONFIG,
	LC_OPT_LOG_QUERIES,
	LC_OPT_LAST = LC_OPT_LOG_QUERIES,
};

#define LIFECYCLE_LONG_OPTIONS                                                                     \
	{"http", required_argument, NULL, LC_OPT_HTTP},                                            \
	    {"metrics-compat", required_argument, NULL, LC_OPT_METRICS_COMPAT},                    \
	    {"stale-after", required_argument, NULL, LC_OPT_STALE_AFTER},                          \
	    {"unready-after", required_argument, NULL, LC_OPT_UNREADY_AFTER},                      \
	    {"lameduck", required_argument, NULL, LC_OPT_LAMEDUCK},                                \
	    {"config", required_argument, NULL, LC_OPT_CONFIG},                                    \
	    {"check-config", no_argument, NULL, LC_OPT_CHECK_CONFIG},                              \
	{                                                                                          \
		"log-queries", no_argument, NULL, LC_OPT_LOG_QUERIES                               \
	}

#define LIFECYCLE_USAGE                                                                            \
	"  --http ADDR:PORT        serve /metrics, /health, /ready, /debug/model (default: off)\n" \
	"  --metrics-compat coredns  also export CoreDNS's metric names and labels\n"              \
	"  --stale-after SECONDS   cluster answers carry EDE 3 (Stale Answer) when the API\n"      \
	"                          has been silent this long (default 60)\n"                       \
	"  --unready-after SECONDS /ready fails when the API has been silent this long (default\n" \
	"                          off)\n"                                                         \
	"  --lameduck DURATION     after SIGTERM, answer this long while /ready fails, then\n"     \
	"                          drain (default 5s, with --http only; 500ms, 2s, 0)\n"           \
	"  --config FILE           more options, one per line; reloaded when it changes\n"         \
	"  --check-config          check the options (and --config FILE), then exit\n"             \
	"  --log-queries           log one line per query\n"

struct lifecycle_options {
	const char *http;
	bool compat;
	unsigned stale_after_s;
	unsigned unready_after_s; /* 0: off */
	unsigned lameduck_ms;
	bool log_queries;
	bool check_only;
};

void lifecycle_options_init(struct lifecycle_options *o);
/* Applies one option; on a bad value prints why to stderr, returns -EINVAL. */
int lifecycle_option(struct lifecycle_options *o, int code, const char *arg);

struct kube_source;
struct forwarder;
struct proxy;
struct pipeline;

/* What the lifecycle works with, filled by daemon.c. */
struct lifecycle_hooks {
	uv_loop_t *loop;
	const struct option *opts; /* the program's getopt table, to read a reload */
	struct dns_server *server;
	struct kube_source *kube;   /* or NULL: a manifest directory, always fresh */
	struct forwarder *fwd;	    /* or NULL */
	struct proxy *proxy;	    /* or NULL */
	struct pipeline *pipeline;  /* its failure counters are metrics */
	void (*rebuild)(void *arg); /* build and publish a snapshot soon */
	void (*stop)(void *arg);    /* stop everything; calls lifecycle_stop */
	void *arg;
};

struct lifecycle;

/* Before the DNS server starts: makes the metrics registry (with a zone label
 * per zone of `scfg`) and sets up freshness for `scfg->zone`. `scfg` is the
 * settings of the first build and must outlive the lifecycle. */
int lifecycle_new(const struct lifecycle_options *o, const struct snapshot_config *scfg,
		  const struct dns_listen *listen, size_t n_listen, struct lifecycle **out);
/* The per-worker counters' registry, for dns_server_config. */
struct metrics *lifecycle_metrics(struct lifecycle *lc);
/* After the DNS server started: HTTP endpoint, timers, SIGHUP, --config
 * watch. Returns 0 or a negative errno (the HTTP address cannot be bound). */
int lifecycle_start(struct lifecycle *lc, const struct lifecycle_hooks *h);

/* SIGTERM/SIGINT: /ready fails at once; after lameduck (SIGTERM with --http)
 * the DNS server drains, then hooks.stop runs. A second signal stops at once. */
void lifecycle_shutdown(struct lifecycle *lc, int signum);
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
