/* The wiring of svcdns: which module feeds which, in what order they start,
 * and the order in which they stop. See daemon.h. */
#include "daemon/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "daemon/handover.h"
#include "daemon/http_views.h"
#include "daemon/lifecycle.h"
#include "daemon/nft_wiring.h"
#include "daemon/pipeline.h"
#include "discovery/kube.h"
#include "discovery/labelsel.h"
#include "discovery/manifest.h"
#include "discovery/model.h"
#include "dns/notify.h"
#include "dns/server.h"
#include "proxy/proxy.h"
#include "resolver/forward.h"
#include "zones/snapshot.h"
#include "zones/zonefile.h"

struct app {
	struct svcdns_options *o;
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint;
	uv_timer_t reclaim;
	struct model_store *store;
	struct label_selector *ns_sel; /* --namespace-labels, or NULL */
	struct model_alloc *alloc;
	struct pipeline *pipeline;
	struct manifest_dir *mdir;
	struct kube_source *kube; /* the Kubernetes API source, or NULL */
	struct dns_server *server;
	struct forwarder *fwd;	       /* names outside the zones served, or NULL */
	struct proxy *proxy;	       /* the ClusterIP datapath (--proxy), or NULL */
	struct nftdp *nft;	       /* the kernel datapath (--proxy=nftables), or NULL */
	struct dns_notifier *notifier; /* --notify targets, or NULL */
	struct sockaddr_storage dns_addrs[OPTIONS_MAX_LISTEN];
	struct snapshot_config scfg;
	struct static_zone *zones[OPTIONS_MAX_ZONE_FILES];
	size_t n_zones;
	char hostname[256];
	int exit_code;
	struct lifecycle *lc; /* HTTP endpoint, readiness, shutdown order, reloads */
	/* --handover-socket: the sockets taken over until this process serves
	 * them (or NULL), the wait for the first sync before it does, and the
	 * socket the next process takes them over through. */
	struct handover_taken *taken;
	uv_timer_t sync_wait;
	bool sync_waiting;
	struct dns_server_config dcfg;
	struct handover_server *handover;
	int held_signal; /* a signal held while a hand-over is in progress */
};

static void on_changed(void *arg)
{
	struct app *app = arg;
	pipeline_changed(app->pipeline);
}

static void on_reclaim(uv_timer_t *t)
{
	struct app *app = t->data;
	/* With no old snapshot left, no reader can hold an old datapath index. */
	if (snapshot_reclaim() != 0 || !snapshot_current())
		return;
	if (app->proxy)
		proxy_live_reclaim(app->proxy, snapshot_current()->chaos_live_arg);
	if (app->nft)
		nftdp_live_reclaim(app->nft, snapshot_current()->chaos_live_arg);
}

/* The end, once lameduck and draining are over (daemon/lifecycle.h). */
static void app_stop(void *arg)
{
	struct app *app = arg;
	handover_stop(app->handover);
	app->handover = NULL;
	handover_done(app->taken, false); /* not serving yet: the old process serves on */
	app->taken = NULL;
	if (app->sync_waiting)
		uv_close((uv_handle_t *)&app->sync_wait, NULL);
	app->sync_waiting = false;
	views_unregister_limits(lifecycle_metrics(app->lc)); /* the counters go with the server */
	dns_server_stop(app->server);
	app->server = NULL;
	lifecycle_stop(app->lc); /* after the workers: it writes their last query log lines */
	forward_control_stop(app->fwd);
	dns_notifier_stop(app->notifier);
	app->notifier = NULL;
	pipeline_stop(app->pipeline);
	proxy_stop(app->proxy); /* after the workers: they read its CHAOS index */
	app->proxy = NULL;
	nft_wiring_stop(lifecycle_metrics(app->lc), app->nft);
	nftdp_stop(app->nft); /* its rules stay in the kernel */
	app->nft = NULL;
	if (app->mdir)
		manifest_dir_stop(app->mdir);
	app->mdir = NULL;
	kube_source_stop(app->kube);
	app->kube = NULL;
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->reclaim, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *app = h->data;
	/* A new process holds copies of our sockets and is getting ready: going
	 * away now would leave them unread until it serves. A second signal
	 * does not wait. */
	if (handover_pending(app->handover) && !app->held_signal) {
		log_info("signal %d: a new process is taking over; stopping once it serves",
			 signum);
		app->held_signal = signum;
		return;
	}
	handover_stop(app->handover); /* no hand-over to a process that is going */
	app->handover = NULL;
	lifecycle_shutdown(app->lc, signum);
}

/* The process that took over serves (the old one is this one), or went away. */
static void on_handover_done(void *arg, bool taken)
{
	struct app *app = arg;
	if (taken)
		lifecycle_handed_over(app->lc);
	if (app->held_signal)
		lifecycle_shutdown(app->lc, app->held_signal);
	app->held_signal = 0;
}

/* --zone-file ORIGIN=FILE, each parsed now (a bad one stops the start). */
static int load_zones(struct app *app)
{
	for (size_t i = 0; i < app->o->n_zone_files; i++) {
		char spec[4096];
		snprintf(spec, sizeof(spec), "%s", app->o->zone_files[i]);
		char *eq = strchr(spec, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		if (zonefile_load(spec, eq + 1, &app->zones[app->n_zones]) < 0)
			return -1;
		app->n_zones++;
	}
	return 0;
}

/* Glue for ns.dns.<zone>: the first specific address we listen on. */
static void ns_glue(struct snapshot_config *scfg, const struct svcdns_options *o)
{
	for (size_t i = 0; i < o->n_listen && !scfg->have_ns_addr; i++) {
		const struct sockaddr_storage *ss = &o->listen[i].addr;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
			if (a->sin_addr.s_addr == htonl(INADDR_ANY))
				continue;
			scfg->ns_addr.family = AF_INET;
			memcpy(scfg->ns_addr.bytes, &a->sin_addr, 4);
		} else {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
			if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
				continue;
			scfg->ns_addr.family = AF_INET6;
			memcpy(scfg->ns_addr.bytes, &a->sin6_addr, 16);
		}
		scfg->have_ns_addr = true;
	}
}

static int api_start(struct app *app)
{
	const struct svcdns_options *o = app->o;
	struct kube_conn conn;
	int rc;

	if (o->kubeconfig)
		rc = kubeconfig_load(o->kubeconfig, o->context, &conn);
	else if (o->api_server)
		rc = (conn = (struct kube_conn){0}, 0);
	else
		rc = kubeconfig_in_cluster(&conn);
	if (rc == 0)
		rc = kubeconfig_override(&conn, o->api_server, o->token_file, o->ca_file);
	if (rc == 0)
		rc = kube_source_start(app->loop, &conn, &o->kube, app->store, on_changed, app,
				       &app->kube);
	kubeconfig_free(&conn);
	return rc;
}

/* The forwarder and the settings of the first snapshot. */
static int setup(struct app *app)
{
	struct svcdns_options *o = app->o;
	/* Reverse names outside both CIDRs are forwarded, not NXDOMAIN. */
	o->fwd.zone = o->zone;
	o->fwd.cluster_cidrs[0] = o->service_cidr;
	o->fwd.cluster_cidrs[1] = o->pod_cidr;
	o->fwd.n_cluster_cidrs = 2;
	o->fwd.prefetch = !o->no_prefetch;
	if (forward_new(&o->fwd, o->listen, o->n_listen, o->threads, &app->fwd) < 0)
		return -1;
	gethostname(app->hostname, sizeof(app->hostname) - 1);
	app->scfg.zone = o->zone;
	app->scfg.ttl = o->ttl;
	app->scfg.endpoint_pod_names = o->endpoint_pod_names;
	app->scfg.ignore_empty_service = o->ignore_empty_service;
	app->scfg.service_cidr = &o->service_cidr;
	app->scfg.pod_cidr = &o->pod_cidr;
	app->scfg.rotate = !o->no_rotate;
	app->scfg.clusterset = (enum snapshot_clusterset)o->clusterset_zone;
	app->scfg.pods = (enum snapshot_pods)o->pods;
	o->kube.pods = o->pods == SNAPSHOT_PODS_VERIFIED;
	app->scfg.not_ready_ttl = o->not_ready_ttl;
	app->scfg.hostname = app->hostname;
	/* Topology order (zones/topology.c): the node as --node-name says, else
	 * the host name, as the nftables datapath takes it. */
	app->scfg.node_name = o->node_name ? o->node_name : app->hostname;
	app->scfg.node_zone = o->node_zone;
	app->scfg.static_zones = (const struct static_zone *const *)app->zones;
	app->scfg.n_static_zones = app->n_zones;
	ns_glue(&app->scfg, o);
	if (lifecycle_new(&o->lc, &app->scfg, o->listen, o->n_listen, &app->lc) < 0)
		goto oom;
	app->loop = uv_default_loop();
	app->store = model_store_new();
	app->alloc = model_alloc_new(&o->service_cidr, &o->pod_cidr);
	if (!app->store || !app->alloc ||
	    model_alloc_set_node_ports(app->alloc, (uint16_t)o->node_port_min,
				       (uint16_t)o->node_port_max) < 0)
		goto oom;
	if (o->namespace_labels) {
		/* checked when the options were read: only memory can fail here */
		char why[256];
		if (label_selector_parse(o->namespace_labels, &app->ns_sel, why, sizeof(why)) < 0)
			goto oom;
		model_store_set_ns_selector(app->store, app->ns_sel);
		log_info("serving only the namespaces whose labels match %s", o->namespace_labels);
	}
	model_store_keep_pod_addrs(app->store, o->pods == SNAPSHOT_PODS_VERIFIED);
	struct pipeline_config pc = {
	    .loop = app->loop,
	    .store = app->store,
	    .alloc = app->alloc,
	    .scfg = &app->scfg,
	    .lc = app->lc,
	};
	if (pipeline_new(&pc, &app->pipeline) < 0)
		goto oom;
	return 0;
oom:
	log_error("out of memory");
	return -1;
}

/* The data sources and the datapath, then the first snapshot. */
static int start_sources(struct app *app)
{
	const struct svcdns_options *o = app->o;
	/* manifest_dir_start logs why it cannot start: one line, nothing to add */
	if (o->manifests && manifest_dir_start(app->loop, o->manifests, app->store, on_changed, app,
					       &app->mdir) < 0)
		return -1;
	/* Until its first full sync, the cluster zone answers SERVFAIL. */
	if (o->use_api && api_start(app) < 0) {
		log_error("api: cannot start the Kubernetes API source; giving up");
		return -1;
	}
	pipeline_set_source(app->pipeline, app->kube);
	if (o->proxy_nftables)
		nft_wiring_start(o, app->pipeline, lifecycle_metrics(app->lc), &app->nft);
	if (o->proxy && !o->proxy_nftables) {
		struct proxy_config pcfg = o->pcfg;
		for (size_t i = 0; i < o->n_listen; i++)
			app->dns_addrs[i] = o->listen[i].addr;
		pcfg.dns_addrs = app->dns_addrs;
		pcfg.n_dns_addrs = o->n_listen;
		if (proxy_start(app->loop, &pcfg, &app->proxy) < 0)
			log_error("proxy: cannot start the datapath; serving DNS only");
		pipeline_set_datapath(app->pipeline, app->proxy);
	}
	/* The first snapshot exists before the first query can arrive. */
	if (pipeline_run(app->pipeline) < 0 || !snapshot_current()) {
		log_error("no snapshot could be built; giving up");
		return -1;
	}
	return 0;
}

/* The hand-over listener for the next process, once this one serves. */
static void handover_open(struct app *app)
{
	if (!app->o->handover_socket)
		return;
	struct handover_hooks hh = {
	    .server = app->server,
	    .n_listen = app->o->n_listen,
	    .http_fd = lifecycle_http_fd(app->lc),
	    .done = on_handover_done,
	    .arg = app,
	};
	if (handover_listen(app->loop, app->o->handover_socket, &hh, &app->handover) < 0)
		log_warn("handover: the next process will bind its own sockets");
}

/* The DNS workers, on sockets taken over or bound now. */
static int start_dns(struct app *app)
{
	app->dcfg.inherited = handover_inherited(app->taken);
	int ret = dns_server_start(&app->dcfg, &app->server);
	/* The workers serve duplicates: the old process may stop reading (or,
	 * when they could not start, serve on). */
	handover_done(app->taken, ret == 0);
	app->taken = NULL;
	if (ret < 0)
		return ret;
	lifecycle_set_server(app->lc, app->server);
	if (views_register_limits(lifecycle_metrics(app->lc), dns_server_limits(app->server)) < 0)
		log_warn("metrics: the limits' counters cannot be shown in /metrics");
	handover_open(app);
	return 0;
}

/* Taking over: the old process serves until this one's first snapshot is
 * synced (no query meets an unsynced one here), then this one starts. */
static void on_sync_wait(uv_timer_t *t)
{
	struct app *app = t->data;
	const struct snapshot *s = snapshot_current();
	if (!s || !s->synced)
		return;
	uv_close((uv_handle_t *)&app->sync_wait, NULL);
	app->sync_waiting = false;
	if (start_dns(app) < 0) {
		app->exit_code = 1;
		lifecycle_shutdown(app->lc, SIGINT);
	}
}

static void fill_dns_config(struct app *app)
{
	const struct svcdns_options *o = app->o;
	app->dcfg = (struct dns_server_config){
	    .listen = o->listen,
	    .n_listen = o->n_listen,
	    .threads = o->threads,
	    .tcp_max_conns = o->tcp_max_conns,
	    .tcp_idle_timeout_ms = o->tcp_idle_timeout_ms,
	    .tcp_max_lifetime_ms = o->limits.tcp_max_lifetime_ms,
	    .rrl = o->limits.rrl,
	    .rrl_slip = o->limits.rrl_slip,
	    .forwarder = app->fwd,
	    .allow_transfer = o->allow_transfer,
	    .n_allow_transfer = o->n_allow_transfer,
	    .metrics = lifecycle_metrics(app->lc),
	};
}

/* DNS, NOTIFY, signals and the operator's side, once a snapshot exists. */
static int start_serving(struct app *app)
{
	const struct svcdns_options *o = app->o;
	fill_dns_config(app);
	struct lifecycle_hooks lh = {
	    .loop = app->loop,
	    .opts = o,
	    .kube = app->kube,
	    .fwd = app->fwd,
	    .proxy = app->proxy,
	    .pipeline = app->pipeline,
	    .rebuild = on_changed,
	    .stop = app_stop,
	    .arg = app,
	    .http_fd = handover_http_fd(app->taken),
	};
	/* The HTTP endpoint first: whoever sees DNS answer can reach /ready and
	 * /metrics (which says not ready until the listeners are open). */
	if (lifecycle_start(app->lc, &lh) < 0)
		return -1;
	/* Signals before the workers: once they answer, a client may stop us, and
	 * a SIGTERM before the handler is in place would end the process on the
	 * spot instead of through lameduck. It waits in libuv's queue until the
	 * loop runs, with the server in place. */
	uv_signal_init(app->loop, &app->sigterm);
	uv_signal_init(app->loop, &app->sigint);
	app->sigterm.data = app->sigint.data = app;
	uv_signal_start(&app->sigterm, on_signal, SIGTERM);
	uv_signal_start(&app->sigint, on_signal, SIGINT);
	const struct snapshot *s = snapshot_current();
	if (app->taken && !s->synced) {
		uv_timer_init(app->loop, &app->sync_wait);
		app->sync_wait.data = app;
		app->sync_waiting = true;
		uv_timer_start(&app->sync_wait, on_sync_wait, 10, 10);
	} else if (start_dns(app) < 0) {
		/* the loop ends once every handle is closed (stop_sources) */
		uv_close((uv_handle_t *)&app->sigterm, NULL);
		uv_close((uv_handle_t *)&app->sigint, NULL);
		lifecycle_stop(app->lc);
		return -1;
	}
	if (o->n_notify &&
	    dns_notifier_start(app->loop, o->notify, o->n_notify, &app->notifier) < 0)
		log_error("notify: cannot start; secondaries refresh on their own timer");
	pipeline_set_notifier(app->pipeline, app->notifier);
	forward_control_start(app->fwd, app->loop);
	uv_timer_init(app->loop, &app->reclaim);
	app->reclaim.data = app;
	uv_timer_start(&app->reclaim, on_reclaim, 100, 100);
	log_info("svcdns %s serving zone %s from %s%s%s", SVCDNS_VERSION, o->zone,
		 o->manifests ? o->manifests : "", o->manifests && o->use_api ? " and " : "",
		 o->use_api ? "the Kubernetes API" : "");
	return 0;
}

/* Startup failed after the sources started: close their handles so that the
 * loop can end. */
static void stop_sources(struct app *app)
{
	manifest_dir_stop(app->mdir);
	app->mdir = NULL;
	kube_source_stop(app->kube);
	app->kube = NULL;
	proxy_stop(app->proxy);
	app->proxy = NULL;
	nft_wiring_stop(lifecycle_metrics(app->lc), app->nft);
	nftdp_stop(app->nft);
	app->nft = NULL;
	pipeline_stop(app->pipeline);
	uv_run(app->loop, UV_RUN_DEFAULT);
}

static void app_free(struct app *app)
{
	handover_done(app->taken, false);
	snapshot_shutdown();
	lifecycle_free(app->lc); /* after the snapshots: they may use its settings */
	if (app->loop)
		uv_loop_close(app->loop);
	pipeline_free(app->pipeline);
	model_alloc_free(app->alloc);
	model_store_free(app->store);
	label_selector_free(app->ns_sel);
	forward_free(app->fwd);
	for (size_t i = 0; i < app->n_zones; i++)
		zonefile_free(app->zones[i]);
}

int daemon_run(struct svcdns_options *o)
{
	static struct app app;
	int ret = 1;
	app.o = o;
	log_set_level((enum log_level)o->log_level);
	if (load_zones(&app) < 0)
		goto out;
	if (o->check_config) {
		/* What a reload runs before applying anything (daemon/lifecycle.h). */
		printf("svcdns: configuration OK\n");
		ret = 0;
		goto out;
	}
	if (o->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = n > 0 ? (unsigned)n : 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (setup(&app) < 0)
		goto out;
	if (o->handover_socket &&
	    handover_take(o->handover_socket, o->listen, o->n_listen, o->lc.http, &app.taken) < 0)
		goto out;
	if (start_sources(&app) < 0 || start_serving(&app) < 0) {
		stop_sources(&app);
		goto out;
	}
	uv_run(app.loop, UV_RUN_DEFAULT);
	ret = app.exit_code;
out:
	app_free(&app);
	return ret;
}
