/* svcdns: the program. Reads the command line, starts the data source on the
 * control loop, builds and publishes snapshots as the data changes, and runs
 * the DNS workers until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "discovery/manifest.h"
#include "discovery/model.h"
#include "dns/server.h"
#include "zones/dname.h"
#include "zones/snapshot.h"
#include "zones/zonefile.h"

#define MAX_LISTEN 32
#define MAX_ZONE_FILES 64

struct app {
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint;
	uv_timer_t reclaim;
	uv_timer_t rebuild;
	struct model_store *store;
	struct model_alloc *alloc;
	struct manifest_dir *mdir;
	struct dns_server *server;
	struct snapshot_config scfg;
	struct static_zone *zones[MAX_ZONE_FILES];
	size_t n_zones;
	char hostname[256];
	int exit_code;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: svcdns --manifests DIR [options]\n"
		"\n"
		"  --manifests DIR         serve the Services in a directory of JSON/YAML manifests\n"
		"  --listen ADDR:PORT      listen address, repeatable (default 0.0.0.0:53 and [::]:53)\n"
		"  --zone NAME             cluster domain (default cluster.local)\n"
		"  --ttl SECONDS           TTL of cluster records (default 5)\n"
		"  --zone-file ORIGIN=FILE serve a static zone from a master file, repeatable\n"
		"  --service-cidr CIDR     ClusterIPs for Services without one (default 10.96.0.0/12)\n"
		"  --pod-cidr CIDR         addresses for Pods without status (default 10.244.0.0/16)\n"
		"  --threads N             DNS worker threads (default: one per core)\n"
		"  --tcp-max-conns N       open TCP connections per thread (default 1024)\n"
		"  --tcp-idle-timeout MS   close idle TCP connections after MS (default 10000)\n"
		"  --log-level LEVEL       error, warn, info (default) or debug\n"
		"  --version               print the version and exit\n");
}

static void rebuild_now(struct app *app)
{
	uint64_t t0 = uv_hrtime();
	struct model_view view;
	int ret = model_view_build(app->store, app->alloc, &view);
	if (ret < 0) {
		log_error("model: building the view failed (%s); serving the previous snapshot",
			  strerror(-ret));
		return;
	}
	struct snapshot *s = NULL;
	size_t n_svcs = view.n_svcs;
	uint64_t t_view = uv_hrtime();
	ret = snapshot_build(&app->scfg, &view, snapshot_current(), &s);
	if (ret < 0) {
		model_view_free(&view);
		log_error("snapshot: build failed (%s); serving the previous snapshot",
			  strerror(-ret));
		return;
	}
	s->synced = true;
	snapshot_publish(s);
	uint64_t t_end = uv_hrtime();
	log_info("snapshot %llu published: serial %u, %zu services, %zu names, %zu KiB, "
		 "%.1f ms (view %.1f ms, zones %.1f ms)",
		 (unsigned long long)s->generation, s->serial, n_svcs, s->n_names, s->bytes >> 10,
		 (double)(t_end - t0) / 1e6, (double)(t_view - t0) / 1e6,
		 (double)(t_end - t_view) / 1e6);
}

static void on_rebuild(uv_timer_t *t)
{
	rebuild_now(t->data);
}

static void on_changed(void *arg)
{
	struct app *app = arg;
	/* Coalesce bursts of changes into one build on the next loop turn. */
	uv_timer_start(&app->rebuild, on_rebuild, 0, 0);
}

static void on_reclaim(uv_timer_t *t)
{
	(void)t;
	snapshot_reclaim();
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *app = h->data;
	log_info("signal %d: shutting down", signum);
	dns_server_stop(app->server);
	app->server = NULL;
	if (app->mdir)
		manifest_dir_stop(app->mdir);
	app->mdir = NULL;
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->reclaim, NULL);
	uv_close((uv_handle_t *)&app->rebuild, NULL);
}

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
	    {"log-level", required_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct app app;
	struct dns_listen listen[MAX_LISTEN];
	size_t n_listen = 0;
	const char *manifests = NULL;
	const char *zone = "cluster.local";
	unsigned long ttl = 5, threads = 0, max_conns = 1024, idle_ms = 10000;
	struct model_cidr svc_cidr, pod_cidr;
	model_cidr_parse("10.96.0.0/12", &svc_cidr);
	model_cidr_parse("10.244.0.0/16", &pod_cidr);
	int ret = 1, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			manifests = optarg;
			break;
		case 'l':
			if (n_listen == MAX_LISTEN || dns_listen_parse(optarg, &listen[n_listen]) < 0) {
				fprintf(stderr, "svcdns: --listen %s: expected ADDR:PORT or [ADDR]:PORT\n",
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
				fprintf(stderr, "svcdns: --zone-file %s: expected ORIGIN=FILE\n", optarg);
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
			if (model_cidr_parse(optarg, c == 's' ? &svc_cidr : &pod_cidr) < 0) {
				fprintf(stderr, "svcdns: %s %s: expected a CIDR like 10.96.0.0/12\n",
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
				fprintf(stderr, "svcdns: --tcp-max-conns %s: expected a positive number\n",
					optarg);
				return 2;
			}
			break;
		case 'i':
			if (parse_uint(optarg, 3600000, &idle_ms) < 0 || idle_ms == 0) {
				fprintf(stderr, "svcdns: --tcp-idle-timeout %s: expected milliseconds\n",
					optarg);
				return 2;
			}
			break;
		case 'v': {
			int lvl = log_level_parse(optarg);
			if (lvl < 0) {
				fprintf(stderr, "svcdns: --log-level %s: expected error, warn, info or debug\n",
					optarg);
				return 2;
			}
			log_set_level((enum log_level)lvl);
			break;
		}
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
	if (!manifests) {
		fprintf(stderr, "svcdns: no data source: give --manifests DIR\n");
		usage(stderr);
		return 2;
	}
	uint8_t zbuf[256];
	if (dname_from_text(zone, zbuf, sizeof(zbuf)) < 0) {
		fprintf(stderr, "svcdns: --zone %s: not a domain name\n", zone);
		return 2;
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

	app.loop = uv_default_loop();
	app.store = model_store_new();
	app.alloc = model_alloc_new(&svc_cidr, &pod_cidr);
	if (!app.store || !app.alloc) {
		log_error("out of memory");
		goto out;
	}
	uv_timer_init(app.loop, &app.rebuild);
	app.rebuild.data = &app;
	if (manifest_dir_start(app.loop, manifests, app.store, on_changed, &app, &app.mdir) < 0) {
		log_error("manifests %s: cannot be read; giving up", manifests);
		uv_close((uv_handle_t *)&app.rebuild, NULL);
		uv_run(app.loop, UV_RUN_DEFAULT);
		goto out;
	}
	/* The first snapshot exists before the first query can arrive. */
	rebuild_now(&app);
	if (!snapshot_current()) {
		log_error("no snapshot could be built; giving up");
		manifest_dir_stop(app.mdir);
		app.mdir = NULL;
		uv_close((uv_handle_t *)&app.rebuild, NULL);
		uv_run(app.loop, UV_RUN_DEFAULT);
		goto out;
	}
	struct dns_server_config dcfg = {
	    .listen = listen,
	    .n_listen = n_listen,
	    .threads = (unsigned)threads,
	    .tcp_max_conns = (unsigned)max_conns,
	    .tcp_idle_timeout_ms = (unsigned)idle_ms,
	};
	if (dns_server_start(&dcfg, &app.server) < 0) {
		manifest_dir_stop(app.mdir);
		app.mdir = NULL;
		uv_close((uv_handle_t *)&app.rebuild, NULL);
		uv_run(app.loop, UV_RUN_DEFAULT);
		goto out;
	}
	uv_signal_init(app.loop, &app.sigterm);
	uv_signal_init(app.loop, &app.sigint);
	app.sigterm.data = app.sigint.data = &app;
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_timer_init(app.loop, &app.reclaim);
	uv_timer_start(&app.reclaim, on_reclaim, 100, 100);
	log_info("svcdns %s serving zone %s from %s", SVCDNS_VERSION, zone, manifests);

	uv_run(app.loop, UV_RUN_DEFAULT);
	ret = 0;
out:
	snapshot_shutdown();
	if (app.loop)
		uv_loop_close(app.loop);
	model_alloc_free(app.alloc);
	model_store_free(app.store);
	for (size_t i = 0; i < app.n_zones; i++)
		zonefile_free(app.zones[i]);
	return ret;
}
