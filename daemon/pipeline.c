/* From a change in the model to the published snapshot, in one visible
 * sequence of stages, and what happens when one of them fails.
 *
 * What a failure means, stage by stage (every one leaves the previous
 * snapshot served, is counted in svcdns_pipeline_failures_total{stage}, is
 * logged once per streak of failures and retried with backoff; a new change
 * during the backoff waits for the retry, which includes it):
 *  - view, snapshot: out of memory; nothing was published.
 *  - datapath: proxy_apply could not take the new view at all (out of memory
 *    for its port table or its listener set). The new snapshot is freed
 *    unpublished, because DNS must never hand out a ClusterIP the datapath
 *    does not forward: the previous snapshot's ClusterIPs keep their
 *    listeners (proxy_apply leaves them as they were when it fails).
 *  - A port the datapath cannot bind (address in use, permission) is not a
 *    failure of the run: the snapshot is published, since DNS must not go
 *    stale for every Service because one port is busy. The datapath logs each
 *    such port with its Service, retries it every 5 s and shows it in the
 *    CHAOS TXT view of the Service.
 *  - A Service whose rules the kernel refuses (--proxy=nftables) is not a
 *    failure of the run either: the snapshot is built again without its
 *    names (snapshot_withhold) and published, so DNS answers every other
 *    Service and never hands out that one's ClusterIP; the run is repeated
 *    with backoff until the rules go in, and the names come back then.
 * Before the first snapshot there is nothing to fall back on: the program
 * gives up its start when the first run fails (daemon.c). */
#include "daemon/pipeline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "daemon/lifecycle.h"
#include "discovery/kube.h"
#include "dns/notify.h"
#include "proxy/proxy.h"
#include "zones/xfr.h"

#define RETRY_MIN_MS	250
#define RETRY_MAX_MS	30000
#define WITHHELD_MIN_MS 1000

struct pipeline {
	struct pipeline_config cfg;
	struct kube_source *kube;
	struct proxy *proxy;
	struct dns_notifier *notifier;
	pipeline_datapath_fn datapath;
	void *datapath_arg;
	pipeline_refused_fn refused;
	size_t n_withheld;     /* in the last published snapshot */
	uint64_t withheld_all; /* each Service each time it was withheld */
	unsigned withheld_ms;  /* the backoff of the run that retries them, 0: none */
	uv_timer_t timer;
	bool stopped;
	unsigned retry_ms; /* the backoff of the retry scheduled, 0: none */
	unsigned streak;   /* failed runs in a row */
	uint64_t failures[PIPELINE_N_STAGES];
	struct programming prog;
};

static int64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const stage_names[PIPELINE_N_STAGES] = {
    [PIPELINE_VIEW] = "view",
    [PIPELINE_SNAPSHOT] = "snapshot",
    [PIPELINE_DATAPATH] = "datapath",
};

const char *pipeline_stage_name(enum pipeline_stage stage)
{
	return stage < PIPELINE_N_STAGES ? stage_names[stage] : "unknown";
}

static int proxy_stage(void *arg, struct snapshot *s)
{
	struct proxy *proxy = arg;
	int ret = proxy_apply(proxy, s->view);
	if (ret < 0)
		return ret;
	s->chaos_live = proxy_chaos_live;
	s->chaos_live_arg = proxy_live_index(proxy);
	return 0;
}

int pipeline_new(const struct pipeline_config *cfg, struct pipeline **out)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	if (!p->cfg.retry_min_ms)
		p->cfg.retry_min_ms = RETRY_MIN_MS;
	if (!p->cfg.withheld_min_ms)
		p->cfg.withheld_min_ms = WITHHELD_MIN_MS;
	if (!p->cfg.wall_ms)
		p->cfg.wall_ms = realtime_ms;
	if (p->cfg.retry_max_ms < p->cfg.retry_min_ms)
		p->cfg.retry_max_ms =
		    p->cfg.retry_min_ms > RETRY_MAX_MS ? p->cfg.retry_min_ms : RETRY_MAX_MS;
	uv_timer_init(cfg->loop, &p->timer);
	p->timer.data = p;
	*out = p;
	return 0;
}

void pipeline_set_source(struct pipeline *p, struct kube_source *kube)
{
	p->kube = kube;
}

void pipeline_set_datapath(struct pipeline *p, struct proxy *proxy)
{
	p->proxy = proxy;
	if (proxy)
		pipeline_set_datapath_stage(p, proxy_stage, proxy);
	else
		pipeline_set_datapath_stage(p, NULL, NULL);
}

void pipeline_set_datapath_stage(struct pipeline *p, pipeline_datapath_fn fn, void *arg)
{
	p->datapath = fn;
	p->datapath_arg = arg;
}

void pipeline_set_datapath_refused(struct pipeline *p, pipeline_refused_fn fn)
{
	p->refused = fn;
}

size_t pipeline_withheld(const struct pipeline *p, uint64_t *total)
{
	if (total)
		*total = p ? p->withheld_all : 0;
	return p ? p->n_withheld : 0;
}

void pipeline_set_notifier(struct pipeline *p, struct dns_notifier *notifier)
{
	p->notifier = notifier;
}

const struct programming *pipeline_programming(const struct pipeline *p)
{
	return p ? &p->prog : NULL;
}

uint64_t pipeline_failures(const struct pipeline *p, enum pipeline_stage stage)
{
	return p && stage < PIPELINE_N_STAGES ? p->failures[stage] : 0;
}

unsigned pipeline_retry_ms(const struct pipeline *p)
{
	return p ? p->retry_ms : 0;
}

static void on_timer(uv_timer_t *t)
{
	pipeline_run(t->data);
}

/* A stage failed: count it, say so once per streak, and try again later. */
static int failed(struct pipeline *p, enum pipeline_stage stage, int err)
{
	p->failures[stage]++;
	p->streak++;
	p->retry_ms = p->retry_ms ? p->retry_ms * 2 : p->cfg.retry_min_ms;
	if (p->retry_ms > p->cfg.retry_max_ms)
		p->retry_ms = p->cfg.retry_max_ms;
	if (p->streak == 1)
		log_error("pipeline: %s stage failed (%s); %s, retrying with backoff",
			  pipeline_stage_name(stage), strerror(-err),
			  snapshot_current() ? "serving the previous snapshot"
					     : "no snapshot published yet");
	else
		log_debug("pipeline: %s stage failed again (%s); retry in %u ms",
			  pipeline_stage_name(stage), strerror(-err), p->retry_ms);
	if (!p->stopped)
		uv_timer_start(&p->timer, on_timer, p->retry_ms, 0);
	return err;
}

/* The view and the snapshot built from it, with the settings in force. */
static int build(struct pipeline *p, struct snapshot **out, size_t *n_svcs, uint64_t *t_view)
{
	struct model_view view;
	/* A reload may have changed the settings (daemon/lifecycle.h); tables built
	 * with other settings are not reused: a predecessor without its view
	 * makes snapshot_build build in full, from its generation and serial. */
	const struct snapshot_config *cfg = lifecycle_snapshot_config(p->cfg.lc, p->cfg.scfg);
	const struct snapshot *prev = snapshot_current();
	/* The view is derived from the published one when the snapshot will be
	 * too; model_view_update checks that the store's changes are relative
	 * to it (a view built and then dropped by a failed run is not) and
	 * builds in full otherwise. */
	const struct model_view *base = prev && prev->cfg == cfg ? prev->view : NULL;
	int ret = model_view_update(p->cfg.store, p->cfg.alloc, base, &view);
	if (ret < 0)
		return failed(p, PIPELINE_VIEW, ret);
	*n_svcs = view.n_svcs;
	*t_view = uv_hrtime();
	struct snapshot prev_settings;
	if (prev && prev->cfg != cfg) {
		prev_settings = *prev;
		prev_settings.view = NULL;
		prev = &prev_settings;
	}
	ret = snapshot_build(cfg, &view, prev, out);
	if (ret < 0) {
		model_view_free(&view);
		return failed(p, PIPELINE_SNAPSHOT, ret);
	}
	return 0;
}

/* The reverse names the cluster answers for changed (a ServiceCIDR came or
 * went, or the first snapshot): one line saying which ranges they are now. */
static void log_rev_cidrs(const struct snapshot *prev, const struct snapshot *s)
{
	char list[512] = "", one[INET6_ADDRSTRLEN];
	size_t o = 0;

	if (prev && prev->n_rev_cidrs == s->n_rev_cidrs &&
	    prev->rev_cidrs_from_cluster == s->rev_cidrs_from_cluster &&
	    memcmp(prev->rev_cidrs, s->rev_cidrs, s->n_rev_cidrs * sizeof(s->rev_cidrs[0])) == 0)
		return;
	if (!s->n_rev_cidrs)
		return;
	for (size_t i = 0; i < s->n_rev_cidrs && o < sizeof(list); i++) {
		net_addr_format(&s->rev_cidrs[i].base, one, sizeof(one));
		int n = snprintf(list + o, sizeof(list) - o, "%s%s/%u", i ? ", " : "", one,
				 s->rev_cidrs[i].prefix);
		o += n > 0 ? (size_t)n : 0;
	}
	log_info("reverse zones: the cluster's ranges are %s (service ranges from %s)", list,
		 s->rev_cidrs_from_cluster ? "its ServiceCIDRs" : "--service-cidr");
}

static void notify(struct pipeline *p, uint32_t serial)
{
	/* Secondaries of the cluster's zones transfer them again now. */
	uint8_t zones[4][255];
	size_t nz = xfr_dynamic_zones(p->cfg.scfg, zones, 4);
	dns_notifier_send(p->notifier, (const uint8_t(*)[255])zones, nz, serial);
}

/* The Services the datapath refused leave the snapshot's names; a run to
 * retry them is due after the backoff. */
static int withhold(struct pipeline *p, struct snapshot **s)
{
	const char *const *keys = NULL;
	size_t n = p->refused ? p->refused(p->datapath_arg, &keys) : 0;
	if (n) {
		int ret = snapshot_withhold(s, keys, n);
		if (ret < 0)
			return ret;
		if (n != p->n_withheld)
			log_warn(
			    "pipeline: %zu Service%s withheld from DNS, the first %s: the datapath "
			    "refused %s rules (logged above); retried with backoff",
			    n, n == 1 ? "" : "s", keys[0], n == 1 ? "its" : "their");
		p->withheld_all += n;
		p->withheld_ms = p->withheld_ms ? p->withheld_ms * 2 : p->cfg.withheld_min_ms;
		if (p->withheld_ms > p->cfg.retry_max_ms)
			p->withheld_ms = p->cfg.retry_max_ms;
	} else {
		if (p->n_withheld)
			log_info("pipeline: no Service withheld from DNS any more");
		p->withheld_ms = 0;
	}
	p->n_withheld = n;
	return 0;
}

int pipeline_run(struct pipeline *p)
{
	uint64_t t0 = uv_hrtime(), t_view = t0;
	struct snapshot *s = NULL;
	size_t n_svcs = 0;
	uv_timer_stop(&p->timer);
	/* The trigger times of what this build includes: the store as it is. */
	if (p->kube) {
		struct kube_trigger *t;
		size_t n = kube_source_take_triggers(p->kube, &t);
		programming_add(&p->prog, t, n);
	}
	int ret = build(p, &s, &n_svcs, &t_view);
	if (ret < 0)
		return ret;
	/* The API source is synced once every resource was listed. */
	s->synced = !p->kube || kube_source_synced(p->kube);
	/* DNS never hands out a ClusterIP the datapath does not forward yet. */
	if (p->datapath && (ret = p->datapath(p->datapath_arg, s)) < 0) {
		snapshot_free(s);
		return failed(p, PIPELINE_DATAPATH, ret);
	}
	if ((ret = withhold(p, &s)) < 0) {
		snapshot_free(s);
		return failed(p, PIPELINE_DATAPATH, ret);
	}
	if (p->streak)
		log_info("pipeline: publishing again after %u failed run%s", p->streak,
			 p->streak == 1 ? "" : "s");
	p->streak = 0;
	p->retry_ms = 0;
	uint32_t serial = s->serial;
	bool full_build = !s->incremental;
	log_rev_cidrs(snapshot_current(), s);
	snapshot_publish(s);
	uint64_t t_pub = uv_hrtime();
	programming_published(&p->prog, s->view, p->cfg.wall_ms());
	/* A full build (and the first load of many files) frees as much as it
	 * allocates: hand the freed pages back rather than keep them as heap.
	 * After publishing: the new answers are served meanwhile. */
	if (full_build)
		malloc_trim(0);
	if (p->notifier)
		notify(p, serial);
	if (p->withheld_ms && !p->stopped)
		uv_timer_start(&p->timer, on_timer, p->withheld_ms, 0);
	uint64_t t_end = uv_hrtime();
	lifecycle_published(p->cfg.lc, s, t_pub - t0);
	log_info("snapshot %llu published: serial %u, %zu services, %zu names, %zu KiB, "
		 "%.1f ms (view %.1f ms, zones %.1f ms; then %.1f ms returning freed memory)",
		 (unsigned long long)s->generation, s->serial, n_svcs, s->n_names, s->bytes >> 10,
		 (double)(t_pub - t0) / 1e6, (double)(t_view - t0) / 1e6,
		 (double)(t_pub - t_view) / 1e6, (double)(t_end - t_pub) / 1e6);
	return 0;
}

void pipeline_changed(struct pipeline *p)
{
	if (!p || p->stopped)
		return;
	lifecycle_data_changed(p->cfg.lc);
	/* After a failure the retry is already due and will include this. */
	if (p->retry_ms)
		return;
	/* Coalesce bursts of changes into one build on the next loop turn. */
	uv_timer_start(&p->timer, on_timer, 0, 0);
}

void pipeline_stop(struct pipeline *p)
{
	if (!p || p->stopped)
		return;
	p->stopped = true;
	uv_close((uv_handle_t *)&p->timer, NULL);
}

void pipeline_free(struct pipeline *p)
{
	if (p)
		programming_free(&p->prog);
	free(p);
}
