/* svcdns: the program. Reads the command line, starts the data source on the
 * control loop, builds and publishes snapshots as the data changes, and runs
 * the DNS workers until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <uv.h>

#include "common/jarena.h"
#include "common/log.h"
#include "common/shash.h"
#include "discovery/kube.h"
#include "discovery/manifest.h"
#include "discovery/model.h"
#include "daemon/config.h"
#include "daemon/http_views.h"
#include "daemon/lifecycle.h"
#include "resolver/forward.h"
#include "dns/limits.h"
#include "dns/notify.h"
#include "dns/server.h"
#include "proxy/proxy.h"
#include "wire/dname.h"
#include "zones/snapshot.h"
#include "zones/xfr.h"
#include "zones/zonefile.h"

#define MAX_LISTEN     32
#define MAX_ZONE_FILES 64

struct app {
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint;
	uv_timer_t reclaim;
	uv_timer_t rebuild;
	struct model_store *store;
	struct model_alloc *alloc;
	struct manifest_dir *mdir;
	struct kube_source *kube; /* the Kubernetes API source, or NULL */
	struct dns_server *server;
	struct forwarder *fwd; /* names outside the zones served (resolver/forward.h), or NULL */
	struct proxy *proxy;   /* the ClusterIP datapath (--proxy), or NULL */
	struct proxy_config pcfg;
	struct dns_notifier *notifier; /* --notify targets, or NULL */
	struct net_cidr xfr_allow[16]; /* --allow-transfer */
	size_t n_xfr_allow;
	struct sockaddr_storage dns_addrs[MAX_LISTEN];
	struct snapshot_config scfg;
	struct static_zone *zones[MAX_ZONE_FILES];
	size_t n_zones;
	char hostname[256];
	int exit_code;
	struct lifecycle *lc; /* HTTP endpoint, readiness, shutdown order, reloads */
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: svcdns --manifests DIR | --kubeconfig FILE | --api-server URL [options]\n"
	    "       (in a pod, with none of them: the in-cluster service account)\n"
	    "\n"
	    "  --manifests DIR         serve the Services in a directory of JSON/YAML manifests\n"
	    "  --kubeconfig FILE       list and watch the Kubernetes API of a kubeconfig\n"
	    "  --context NAME          the kubeconfig's context (default: current-context)\n"
	    "  --api-server URL        the API server (overrides the kubeconfig's)\n"
	    "  --token-file FILE       bearer token, read again when it changes\n"
	    "  --ca-file FILE          CA certificates for the API server (PEM)\n"
	    "  --namespaces A,B        serve only these namespaces (default: all)\n"
	    "  --labels SELECTOR       serve only Services matching a label selector\n"
	    "  --api-page-size N       objects per list page (default 500)\n"
	    "  --api-timeout MS        wait for a list page or a watch's headers (default 30000)\n"
	    "  --api-backoff-max MS    longest wait between retries (default 30000)\n"
	    "  --listen ADDR:PORT      listen address, repeatable (default 0.0.0.0:53 and "
	    "[::]:53)\n"
	    "  --zone NAME             cluster domain (default cluster.local)\n"
	    "  --ttl SECONDS           TTL of cluster records (default 5)\n"
	    "  --zone-file ORIGIN=FILE serve a static zone from a master file, repeatable\n"
	    "  --service-cidr CIDR     ClusterIPs for Services without one (default 10.96.0.0/12)\n"
	    "  --pod-cidr CIDR         addresses for Pods without status (default 10.244.0.0/16)\n"
	    "  --node-port-range A-B   NodePorts for manifest Services without one (default\n"
	    "                          30000-32767); explicit ones are served whatever they are\n"
	    "  --threads N             DNS worker threads (default: one per core)\n"
	    "  --tcp-max-conns N       open TCP connections per thread (default 1024)\n"
	    "  --tcp-idle-timeout MS   close idle TCP connections after MS (default "
	    "10000)\n" LIMITS_USAGE
	    "  --proxy                 forward ClusterIP:port and NodePort traffic to endpoints\n"
	    "  --node-address ADDR     where NodePorts listen (default 0.0.0.0)\n"
	    "  --udp-timeout SECONDS   close idle UDP flows of the datapath (default 30)\n"
	    "  --proxy-connect-timeout MS  wait per endpoint before trying the next (default "
	    "1000)\n"
	    "  --proxy-max-conns N     TCP connections the datapath keeps open (default: a third\n"
	    "                          of the file descriptor limit, at most 16384)\n"
	    "  --proxy-max-flows N     UDP flows the datapath keeps open (default: the same)\n"
	    "  --proxy-no-splice       copy through user space instead of splice(2)\n" FORWARD_USAGE
		LIFECYCLE_USAGE
	    "  --allow-transfer CIDR   clients that may AXFR/IXFR the zones, repeatable (none)\n"
	    "  --notify ADDR[:PORT]    send NOTIFY there when the cluster zones change\n"
	    "  --log-level LEVEL       error, warn, info (default) or debug\n"
	    "  --version               print the version and exit\n");
}

static void rebuild_now(struct app *app)
{
	uint64_t t0 = uv_hrtime();
	struct model_view view;
	/* A reload may have changed the settings (daemon/lifecycle.h); tables built
	 * with other settings are not reused: a predecessor without its view
	 * makes snapshot_build build in full, from its generation and serial. */
	const struct snapshot_config *cfg = lifecycle_snapshot_config(app->lc, &app->scfg);
	const struct snapshot *prev = snapshot_current();
	/* The view is derived from the published one when the snapshot will be
	 * too; model_view_update checks that the store's changes are relative
	 * to it and builds in full otherwise. */
	const struct model_view *base = prev && prev->cfg == cfg ? prev->view : NULL;
	int ret = model_view_update(app->store, app->alloc, base, &view);
	if (ret < 0) {
		log_error("model: building the view failed (%s); serving the previous snapshot",
			  strerror(-ret));
		return;
	}
	struct snapshot *s = NULL;
	size_t n_svcs = view.n_svcs;
	uint64_t t_view = uv_hrtime();
	struct snapshot prev_settings;
	if (prev && prev->cfg != cfg) {
		prev_settings = *prev;
		prev_settings.view = NULL;
		prev = &prev_settings;
	}
	ret = snapshot_build(cfg, &view, prev, &s);
	if (ret < 0) {
		model_view_free(&view);
		log_error("snapshot: build failed (%s); serving the previous snapshot",
			  strerror(-ret));
		return;
	}
	/* The API source is synced once all three resources were listed. */
	s->synced = !app->kube || kube_source_synced(app->kube);
	/* DNS never hands out a ClusterIP the datapath does not forward yet. */
	if (app->proxy) {
		proxy_apply(app->proxy, s->view);
		s->chaos_live = proxy_chaos_live;
		s->chaos_live_arg = proxy_live_index(app->proxy);
	}
	uint32_t serial = s->serial;
	bool full_build = !s->incremental;
	snapshot_publish(s);
	uint64_t t_pub = uv_hrtime();
	/* A full build (and the first load of many files) frees as much as it
	 * allocates: hand the freed pages back rather than keep them as heap.
	 * After publishing: the new answers are served meanwhile. */
	if (full_build)
		malloc_trim(0);
	if (app->notifier) {
		/* Secondaries of the cluster's zones transfer them again now. */
		uint8_t zones[4][255];
		size_t nz = xfr_dynamic_zones(&app->scfg, zones, 4);
		dns_notifier_send(app->notifier, (const uint8_t(*)[255])zones, nz, serial);
	}
	uint64_t t_end = uv_hrtime();
	lifecycle_published(app->lc, s, t_pub - t0);
	log_info("snapshot %llu published: serial %u, %zu services, %zu names, %zu KiB, "
		 "%.1f ms (view %.1f ms, zones %.1f ms; then %.1f ms returning freed memory)",
		 (unsigned long long)s->generation, s->serial, n_svcs, s->n_names, s->bytes >> 10,
		 (double)(t_pub - t0) / 1e6, (double)(t_view - t0) / 1e6,
		 (double)(t_pub - t_view) / 1e6, (double)(t_end - t_pub) / 1e6);
}

static void on_rebuild(uv_timer_t *t)
{
	rebuild_now(t->data);
}

static void on_changed(void *arg)
{
	struct app *app = arg;
	lifecycle_data_changed(app->lc);
	/* Coalesce bursts of changes into one build on the next loop turn. */
	uv_timer_start(&app->rebuild, on_rebuild, 0, 0);
}

static void on_reclaim(uv_timer_t *t)
{
	struct app *app = t->data;
	/* With no old snapshot left, no reader can hold an old datapath index. */
	if (snapshot_reclaim() == 0 && app->proxy && snapshot_current())
		proxy_live_reclaim(app->proxy, snapshot_current()->chaos_live_arg);
}

/* The end, once lameduck and draining are over (daemon/lifecycle.h). */
static void app_stop(void *arg)
{
	struct app *app = arg;
	views_unregister_limits(lifecycle_metrics(app->lc)); /* the counters go with the server */
	dns_server_stop(app->server);
	app->server = NULL;
	lifecycle_stop(app->lc); /* after the workers: it writes their last query log lines */
	forward_control_stop(app->fwd);
	dns_notifier_stop(app->notifier);
	app->notifier = NULL;
	proxy_stop(app->proxy); /* after the workers: they read its CHAOS index */
	app->proxy = NULL;
	if (app->mdir)
		manifest_dir_stop(app->mdir);
	app->mdir = NULL;
	kube_source_stop(app->kube);
	app->kube = NULL;
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->reclaim, NULL);
	uv_close((uv_handle_t *)&app->rebuild, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *app = h->data;
	lifecycle_shutdown(app->lc, signum);
}

/* Long options of the API source; values outside char range never clash with
 * the single-letter codes. */
enum {
	OPT_KUBECONFIG = 0x300,
	OPT_CONTEXT,
	OPT_API_SERVER,
	OPT_TOKEN_FILE,
	OPT_CA_FILE,
	OPT_NAMESPACES,
	OPT_LABELS,
	OPT_API_PAGE_SIZE,
	OPT_API_TIMEOUT,
	OPT_API_BACKOFF_MAX,
};

/* The API source's flags, and starting it. */
struct api_flags {
	const char *kubeconfig, *context, *server, *token_file, *ca_file;
	struct kube_options o;
};

static int api_start(struct app *app, const struct api_flags *f)
{
	struct kube_conn conn;
	int rc;

	if (f->kubeconfig)
		rc = kubeconfig_load(f->kubeconfig, f->context, &conn);
	else if (f->server)
		rc = (conn = (struct kube_conn){0}, 0);
	else
		rc = kubeconfig_in_cluster(&conn);
	if (rc == 0)
		rc = kubeconfig_override(&conn, f->server, f->token_file, f->ca_file);
	if (rc == 0)
		rc = kube_source_start(app->loop, &conn, &f->o, app->store, on_changed, app,
				       &app->kube);
	kubeconfig_free(&conn);
	return rc;
}

/* Long options of zone transfer. */
enum {
	OPT_ALLOW_TRANSFER = 0x700, /* 0x600 is left for the operations flags */
	OPT_NOTIFY,
};

/* Long options of the datapath. */
enum {
	OPT_PROXY = 0x400,
	OPT_NODE_ADDRESS,
	OPT_UDP_TIMEOUT,
	OPT_PROXY_CONNECT_TIMEOUT,
	OPT_PROXY_MAX_CONNS,
	OPT_PROXY_MAX_FLOWS,
	OPT_PROXY_NO_SPLICE,
	OPT_NODE_PORT_RANGE,
};

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end || v > max || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"manifests", required_argument, NULL, 'm'},
	    {"listen", required_argument, NULL, 'l'},
	    {"zone", required_argument, NULL, 'z'},
	    {"ttl", required_argument, NULL, 't'},
	    {"zone-file", required_argument, NULL, 'f'},
	    {"service-cidr", required_argument, NULL, 's'},
	    {"pod-cidr", required_argument, NULL, 'p'},
	    {"threads", required_argument, NULL, 'n'},
	    {"tcp-max-conns", required_argument, NULL, 'c'},
	    {"tcp-idle-timeout", required_argument, NULL, 'i'},
	    LIMITS_LONG_OPTIONS,
	    {"log-level", required_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"api-server", required_argument, NULL, OPT_API_SERVER},
	    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	    {"ca-file", required_argument, NULL, OPT_CA_FILE},
	    {"namespaces", required_argument, NULL, OPT_NAMESPACES},
	    {"labels", required_argument, NULL, OPT_LABELS},
	    {"api-page-size", required_argument, NULL, OPT_API_PAGE_SIZE},
	    {"api-timeout", required_argument, NULL, OPT_API_TIMEOUT},
	    {"api-backoff-max", required_argument, NULL, OPT_API_BACKOFF_MAX},
	    {"proxy", no_argument, NULL, OPT_PROXY},
	    {"node-address", required_argument, NULL, OPT_NODE_ADDRESS},
	    {"udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT},
	    {"proxy-connect-timeout", required_argument, NULL, OPT_PROXY_CONNECT_TIMEOUT},
	    {"proxy-max-conns", required_argument, NULL, OPT_PROXY_MAX_CONNS},
	    {"proxy-max-flows", required_argument, NULL, OPT_PROXY_MAX_FLOWS},
	    {"proxy-no-splice", no_argument, NULL, OPT_PROXY_NO_SPLICE},
	    {"node-port-range", required_argument, NULL, OPT_NODE_PORT_RANGE},
	    FORWARD_LONG_OPTIONS,
	    LIFECYCLE_LONG_OPTIONS,
	    {"allow-transfer", required_argument, NULL, OPT_ALLOW_TRANSFER},
	    {"notify", required_argument, NULL, OPT_NOTIFY},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct app app;
	static struct forward_options fopts;
	/* Before any JSON value exists: jansson allocates through it from now on. */
	jarena_install();
	if (shash_init() < 0) /* before any table hashes what clients send */
		return 1;
	forward_options_init(&fopts);
	struct lifecycle_options lopts;
	lifecycle_options_init(&lopts);
	struct limits_options limopts;
	limits_options_init(&limopts);
	/* --config FILE: its options go before the command line's. */
	if (config_merge_argv(&argc, &argv) < 0)
		return 2;
	struct dns_listen listen[MAX_LISTEN];
	size_t n_listen = 0;
	struct dns_listen notify[8];
	size_t n_notify = 0;
	const char *manifests = NULL;
	struct api_flags api = {0};
	const char *zone = "cluster.local";
	unsigned long ttl = 5, threads = 0, max_conns = 1024, idle_ms = 10000;
	struct net_cidr svc_cidr, pod_cidr;
	uint16_t node_port_min = MODEL_NODE_PORT_MIN, node_port_max = MODEL_NODE_PORT_MAX;
	net_cidr_parse("10.96.0.0/12", &svc_cidr);
	net_cidr_parse("10.244.0.0/16", &pod_cidr);
	int ret = 1, c;
	bool proxy_on = false;
	net_addr_parse("0.0.0.0", &app.pcfg.node_addr);
	app.pcfg.udp_timeout_ms = 30000;
	app.pcfg.connect_timeout_ms = 1000;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			manifests = optarg;
			break;
		case 'l':
			if (n_listen == MAX_LISTEN ||
			    dns_listen_parse(optarg, &listen[n_listen]) < 0) {
				fprintf(stderr,
					"svcdns: --listen %s: expected ADDR:PORT or [ADDR]:PORT\n",
					optarg);
				return 2;
			}
			n_listen++;
			break;
		case 'z':
			zone = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 2147483647ul, &ttl) < 0) {
				fprintf(stderr, "svcdns: --ttl %s: expected seconds\n", optarg);
				return 2;
			}
			break;
		case 'f': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || !eq[1] || app.n_zones == MAX_ZONE_FILES) {
				fprintf(stderr, "svcdns: --zone-file %s: expected ORIGIN=FILE\n",
					optarg);
				return 2;
			}
			*eq = '\0';
			if (zonefile_load(optarg, eq + 1, &app.zones[app.n_zones]) < 0)
				goto out;
			app.n_zones++;
			break;
		}
		case 's':
		case 'p':
			if (net_cidr_parse(optarg, c == 's' ? &svc_cidr : &pod_cidr) < 0) {
				fprintf(stderr,
					"svcdns: %s %s: expected a CIDR like 10.96.0.0/12\n",
					c == 's' ? "--service-cidr" : "--pod-cidr", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_uint(optarg, 256, &threads) < 0 || threads == 0) {
				fprintf(stderr, "svcdns: --threads %s: expected 1..256\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (parse_uint(optarg, 1000000, &max_conns) < 0 || max_conns == 0) {
				fprintf(stderr,
					"svcdns: --tcp-max-conns %s: expected a positive number\n",
					optarg);
				return 2;
			}
			break;
		case 'i':
			if (parse_uint(optarg, 3600000, &idle_ms) < 0 || idle_ms == 0) {
				fprintf(stderr,
					"svcdns: --tcp-idle-timeout %s: expected milliseconds\n",
					optarg);
				return 2;
			}
			break;
		case 'v': {
			int lvl = log_level_parse(optarg);
			if (lvl < 0) {
				fprintf(
				    stderr,
				    "svcdns: --log-level %s: expected error, warn, info or debug\n",
				    optarg);
				return 2;
			}
			log_set_level((enum log_level)lvl);
			break;
		}
		case OPT_KUBECONFIG:
			api.kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			api.context = optarg;
			break;
		case OPT_API_SERVER:
			api.server = optarg;
			break;
		case OPT_TOKEN_FILE:
			api.token_file = optarg;
			break;
		case OPT_CA_FILE:
			api.ca_file = optarg;
			break;
		case OPT_NAMESPACES:
			api.o.namespaces = optarg;
			break;
		case OPT_LABELS:
			api.o.labels = optarg;
			break;
		case OPT_API_PAGE_SIZE:
		case OPT_API_TIMEOUT:
		case OPT_API_BACKOFF_MAX: {
			unsigned long v;
			if (parse_uint(optarg, 3600000, &v) < 0 || v == 0) {
				fprintf(stderr, "svcdns: --%s %s: expected a positive number\n",
					c == OPT_API_PAGE_SIZE ? "api-page-size"
					: c == OPT_API_TIMEOUT ? "api-timeout"
							       : "api-backoff-max",
					optarg);
				return 2;
			}
			if (c == OPT_API_PAGE_SIZE)
				api.o.page_size = (unsigned)v;
			else if (c == OPT_API_TIMEOUT)
				api.o.timeout_ms = (unsigned)v;
			else
				api.o.backoff_max_ms = (unsigned)v;
			break;
		}
		case OPT_PROXY:
			proxy_on = true;
			break;
		case OPT_PROXY_NO_SPLICE:
			app.pcfg.no_splice = true;
			break;
		case OPT_NODE_PORT_RANGE: {
			unsigned a = 0, b = 0;
			int used = 0;
			if (sscanf(optarg, "%5u-%5u%n", &a, &b, &used) != 2 ||
			    (size_t)used != strlen(optarg) || a == 0 || b > 65535 || a > b) {
				fprintf(stderr,
					"svcdns: --node-port-range %s: expected FIRST-LAST, like "
					"30000-32767\n",
					optarg);
				return 2;
			}
			node_port_min = (uint16_t)a;
			node_port_max = (uint16_t)b;
			break;
		}
		case OPT_NODE_ADDRESS:
			if (net_addr_parse(optarg, &app.pcfg.node_addr) < 0) {
				fprintf(stderr,
					"svcdns: --node-address %s: expected an IP address\n",
					optarg);
				return 2;
			}
			break;
		case OPT_UDP_TIMEOUT:
		case OPT_PROXY_CONNECT_TIMEOUT:
		case OPT_PROXY_MAX_CONNS:
		case OPT_PROXY_MAX_FLOWS: {
			unsigned long v;
			if (parse_uint(optarg, 1000000, &v) < 0 || v == 0) {
				fprintf(stderr, "svcdns: %s %s: expected a positive number\n",
					argv[optind - 1], optarg);
				return 2;
			}
			if (c == OPT_UDP_TIMEOUT)
				app.pcfg.udp_timeout_ms = (unsigned)v * 1000u;
			else if (c == OPT_PROXY_CONNECT_TIMEOUT)
				app.pcfg.connect_timeout_ms = (unsigned)v;
			else if (c == OPT_PROXY_MAX_CONNS)
				app.pcfg.max_conns = (unsigned)v;
			else
				app.pcfg.max_flows = (unsigned)v;
			break;
		}
		case FWD_OPT_UPSTREAM ... FWD_OPT_LAST:
			if (forward_option(&fopts, c, optarg) < 0)
				return 2;
			break;
		case LIMITS_OPT_TCP_MAX_LIFETIME ... LIMITS_OPT_LAST:
			if (limits_option(&limopts, c, optarg) < 0)
				return 2;
			break;
		case LC_OPT_HTTP ... LC_OPT_LAST:
			if (lifecycle_option(&lopts, c, optarg) < 0)
				return 2;
			break;
		case OPT_ALLOW_TRANSFER:
			if (app.n_xfr_allow == 16 ||
			    net_cidr_parse(optarg, &app.xfr_allow[app.n_xfr_allow]) < 0) {
				fprintf(stderr, "svcdns: --allow-transfer %s: expected a CIDR\n",
					optarg);
				return 2;
			}
			app.n_xfr_allow++;
			break;
		case OPT_NOTIFY:
			if (n_notify == 8 || dns_listen_parse(optarg, &notify[n_notify]) < 0) {
				fprintf(stderr, "svcdns: --notify %s: expected ADDR[:PORT]\n",
					optarg);
				return 2;
			}
			n_notify++;
			break;
		case 'V':
			printf("svcdns %s\n", SVCDNS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "svcdns: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* In a pod with no source named, the service account is the source. */
	bool use_api = api.kubeconfig || api.server || api.token_file || api.ca_file ||
		       (!manifests && getenv("KUBERNETES_SERVICE_HOST"));
	if ((api.context || api.o.namespaces || api.o.labels) && !use_api) {
		fprintf(stderr, "svcdns: --context, --namespaces and --labels apply to the "
				"Kubernetes API source: give --kubeconfig or --api-server\n");
		return 2;
	}
	if (!manifests && !use_api) {
		fprintf(stderr,
			"svcdns: no data source: give --manifests DIR, --kubeconfig FILE or "
			"--api-server URL\n");
		usage(stderr);
		return 2;
	}
	uint8_t zbuf[256];
	if (dname_from_text(zone, zbuf, sizeof(zbuf)) < 0) {
		fprintf(stderr, "svcdns: --zone %s: not a domain name\n", zone);
		return 2;
	}
	if (lopts.check_only) {
		/* What a reload runs before applying anything (daemon/lifecycle.h). */
		printf("svcdns: configuration OK\n");
		ret = 0;
		goto out;
	}
	if (n_listen == 0) {
		dns_listen_parse("0.0.0.0:53", &listen[n_listen++]);
		dns_listen_parse("[::]:53", &listen[n_listen++]);
	}
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned long)n : 1;
	}
	signal(SIGPIPE, SIG_IGN);

	/* Reverse names outside both CIDRs are forwarded, not NXDOMAIN. */
	fopts.zone = zone;
	const struct net_cidr *cidrs[2] = {&svc_cidr, &pod_cidr};
	for (size_t i = 0; i < 2; i++) {
		fopts.cluster_cidrs[fopts.n_cluster_cidrs++] = *cidrs[i];
	}
	if (forward_new(&fopts, listen, n_listen, (unsigned)threads, &app.fwd) < 0)
		goto out;

	gethostname(app.hostname, sizeof(app.hostname) - 1);
	app.scfg.zone = zone;
	app.scfg.ttl = (uint32_t)ttl;
	app.scfg.hostname = app.hostname;
	app.scfg.static_zones = (const struct static_zone *const *)app.zones;
	app.scfg.n_static_zones = app.n_zones;
	/* Glue for ns.dns.<zone>: the first specific address we listen on. */
	for (size_t i = 0; i < n_listen && !app.scfg.have_ns_addr; i++) {
		const struct sockaddr_storage *ss = &listen[i].addr;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
			if (a->sin_addr.s_addr == htonl(INADDR_ANY))
				continue;
			app.scfg.ns_addr.family = AF_INET;
			memcpy(app.scfg.ns_addr.bytes, &a->sin_addr, 4);
		} else {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
			if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
				continue;
			app.scfg.ns_addr.family = AF_INET6;
			memcpy(app.scfg.ns_addr.bytes, &a->sin6_addr, 16);
		}
		app.scfg.have_ns_addr = true;
	}

	if (lifecycle_new(&lopts, &app.scfg, listen, n_listen, &app.lc) < 0) {
		log_error("out of memory");
		goto out;
	}
	app.loop = uv_default_loop();
	app.store = model_store_new();
	app.alloc = model_alloc_new(&svc_cidr, &pod_cidr);
	if (!app.store || !app.alloc ||
	    model_alloc_set_node_ports(app.alloc, node_port_min, node_port_max) < 0) {
		log_error("out of memory");
		goto out;
	}
	uv_timer_init(app.loop, &app.rebuild);
	app.rebuild.data = &app;
	if (manifests &&
	    manifest_dir_start(app.loop, manifests, app.store, on_changed, &app, &app.mdir) < 0) {
		uv_close((uv_handle_t *)&app.rebuild, NULL);
		uv_run(app.loop, UV_RUN_DEFAULT);
		goto out;
	}
	/* Until its first full sync, the cluster zone answers SERVFAIL. */
	if (use_api && api_start(&app, &api) < 0) {
		log_error("api: cannot start the Kubernetes API source; giving up");
		goto stop_sources;
	}
	if (proxy_on) {
		for (size_t i = 0; i < n_listen; i++)
			app.dns_addrs[i] = listen[i].addr;
		app.pcfg.dns_addrs = app.dns_addrs;
		app.pcfg.n_dns_addrs = n_listen;
		if (proxy_start(app.loop, &app.pcfg, &app.proxy) < 0)
			log_error("proxy: cannot start the datapath; serving DNS only");
	}
	/* The first snapshot exists before the first query can arrive. */
	rebuild_now(&app);
	if (!snapshot_current()) {
		log_error("no snapshot could be built; giving up");
		goto stop_sources;
	}
	struct dns_server_config dcfg = {
	    .listen = listen,
	    .n_listen = n_listen,
	    .threads = (unsigned)threads,
	    .tcp_max_conns = (unsigned)max_conns,
	    .tcp_idle_timeout_ms = (unsigned)idle_ms,
	    .tcp_max_lifetime_ms = limopts.tcp_max_lifetime_ms,
	    .rrl = limopts.rrl,
	    .rrl_slip = limopts.rrl_slip,
	    .forwarder = app.fwd,
	    .allow_transfer = app.xfr_allow,
	    .n_allow_transfer = app.n_xfr_allow,
	    .metrics = lifecycle_metrics(app.lc),
	};
	if (dns_server_start(&dcfg, &app.server) < 0) {
		goto stop_sources;
	}
	if (views_register_limits(lifecycle_metrics(app.lc), dns_server_limits(app.server)) < 0)
		log_warn("metrics: the limits' counters cannot be shown in /metrics");
	if (n_notify && dns_notifier_start(app.loop, notify, n_notify, &app.notifier) < 0)
		log_error("notify: cannot start; secondaries refresh on their own timer");
	uv_signal_init(app.loop, &app.sigterm);
	uv_signal_init(app.loop, &app.sigint);
	app.sigterm.data = app.sigint.data = &app;
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	forward_control_start(app.fwd, app.loop);
	uv_timer_init(app.loop, &app.reclaim);
	app.reclaim.data = &app;
	uv_timer_start(&app.reclaim, on_reclaim, 100, 100);
	struct lifecycle_hooks lh = {
	    .loop = app.loop,
	    .opts = opts,
	    .server = app.server,
	    .kube = app.kube,
	    .fwd = app.fwd,
	    .proxy = app.proxy,
	    .rebuild = on_changed,
	    .stop = app_stop,
	    .arg = &app,
	};
	if (lifecycle_start(app.lc, &lh) < 0) {
		app_stop(&app);
		app.exit_code = 1;
	} else {
		log_info("svcdns %s serving zone %s from %s%s%s", SVCDNS_VERSION, zone,
			 manifests ? manifests : "", manifests && use_api ? " and " : "",
			 use_api ? "the Kubernetes API" : "");
	}

	uv_run(app.loop, UV_RUN_DEFAULT);
	ret = app.exit_code;
	goto out;
stop_sources:
	/* Startup failed after the sources started: close their handles so that
	 * the loop can end, then free everything below. */
	manifest_dir_stop(app.mdir);
	app.mdir = NULL;
	kube_source_stop(app.kube);
	app.kube = NULL;
	proxy_stop(app.proxy);
	app.proxy = NULL;
	uv_close((uv_handle_t *)&app.rebuild, NULL);
	uv_run(app.loop, UV_RUN_DEFAULT);
out:
	snapshot_shutdown();
	lifecycle_free(app.lc); /* after the snapshots: they may use its settings */
	if (app.loop)
		uv_loop_close(app.loop);
	model_alloc_free(app.alloc);
	model_store_free(app.store);
	forward_free(app.fwd);
	for (size_t i = 0; i < app.n_zones; i++)
		zonefile_free(app.zones[i]);
	jarena_thread_release();
	return ret;
}
