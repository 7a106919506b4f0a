/* Reading the command line (and the --config file merged into it) into
 * struct svcdns_options, and the checks that span several options. */
#include "daemon/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/config.h"
#include "discovery/model.h"
#include "wire/dname.h"

/* Long options of the program itself; values outside char range never clash
 * with the single-letter codes. */
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

enum {
	OPT_ALLOW_TRANSFER = 0x700, /* 0x600 is left for the operations flags */
	OPT_NOTIFY,
};

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

const struct option *options_getopt_table(void)
{
	return opts;
}

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

static void defaults(struct svcdns_options *o)
{
	memset(o, 0, sizeof(*o));
	o->zone = "cluster.local";
	o->ttl = 5;
	o->tcp_max_conns = 1024;
	o->tcp_idle_timeout_ms = 10000;
	o->node_port_min = MODEL_NODE_PORT_MIN;
	o->node_port_max = MODEL_NODE_PORT_MAX;
	net_cidr_parse("10.96.0.0/12", &o->service_cidr);
	net_cidr_parse("10.244.0.0/16", &o->pod_cidr);
	net_addr_parse("0.0.0.0", &o->pcfg.node_addr);
	o->pcfg.udp_timeout_ms = 30000;
	o->pcfg.connect_timeout_ms = 1000;
	o->log_level = LOG_INFO;
	forward_options_init(&o->fwd);
	lifecycle_options_init(&o->lc);
	limits_options_init(&o->limits);
}

/* The options of the API source. */
static int api_option(struct svcdns_options *o, int c, const char *arg)
{
	unsigned long v;
	switch (c) {
	case OPT_KUBECONFIG:
		o->kubeconfig = arg;
		return 0;
	case OPT_CONTEXT:
		o->context = arg;
		return 0;
	case OPT_API_SERVER:
		o->api_server = arg;
		return 0;
	case OPT_TOKEN_FILE:
		o->token_file = arg;
		return 0;
	case OPT_CA_FILE:
		o->ca_file = arg;
		return 0;
	case OPT_NAMESPACES:
		o->kube.namespaces = arg;
		return 0;
	case OPT_LABELS:
		o->kube.labels = arg;
		return 0;
	default:
		if (parse_uint(arg, 3600000, &v) < 0 || v == 0) {
			fprintf(stderr, "svcdns: --%s %s: expected a positive number\n",
				c == OPT_API_PAGE_SIZE ? "api-page-size"
				: c == OPT_API_TIMEOUT ? "api-timeout"
						       : "api-backoff-max",
				arg);
			return -EINVAL;
		}
		if (c == OPT_API_PAGE_SIZE)
			o->kube.page_size = (unsigned)v;
		else if (c == OPT_API_TIMEOUT)
			o->kube.timeout_ms = (unsigned)v;
		else
			o->kube.backoff_max_ms = (unsigned)v;
		return 0;
	}
}

/* The options of the datapath. */
static int proxy_option(struct svcdns_options *o, int c, const char *name, const char *arg)
{
	unsigned long v;
	switch (c) {
	case OPT_PROXY:
		o->proxy = true;
		return 0;
	case OPT_PROXY_NO_SPLICE:
		o->pcfg.no_splice = true;
		return 0;
	case OPT_NODE_PORT_RANGE: {
		unsigned a = 0, b = 0;
		int used = 0;
		if (sscanf(arg, "%5u-%5u%n", &a, &b, &used) != 2 || (size_t)used != strlen(arg) ||
		    a == 0 || b > 65535 || a > b) {
			fprintf(stderr,
				"svcdns: --node-port-range %s: expected FIRST-LAST, like "
				"30000-32767\n",
				arg);
			return -EINVAL;
		}
		o->node_port_min = a;
		o->node_port_max = b;
		return 0;
	}
	case OPT_NODE_ADDRESS:
		if (net_addr_parse(arg, &o->pcfg.node_addr) < 0) {
			fprintf(stderr, "svcdns: --node-address %s: expected an IP address\n", arg);
			return -EINVAL;
		}
		return 0;
	default:
		if (parse_uint(arg, 1000000, &v) < 0 || v == 0) {
			fprintf(stderr, "svcdns: %s %s: expected a positive number\n", name, arg);
			return -EINVAL;
		}
		if (c == OPT_UDP_TIMEOUT)
			o->pcfg.udp_timeout_ms = (unsigned)v * 1000u;
		else if (c == OPT_PROXY_CONNECT_TIMEOUT)
			o->pcfg.connect_timeout_ms = (unsigned)v;
		else if (c == OPT_PROXY_MAX_CONNS)
			o->pcfg.max_conns = (unsigned)v;
		else
			o->pcfg.max_flows = (unsigned)v;
		return 0;
	}
}

static int bad(const char *name, const char *arg, const char *want)
{
	fprintf(stderr, "svcdns: --%s %s: expected %s\n", name, arg, want);
	return -EINVAL;
}

/* The options of the DNS side and of zone transfer. */
static int dns_option(struct svcdns_options *o, int c, const char *arg)
{
	unsigned long v;
	switch (c) {
	case 'm':
		o->manifests = arg;
		return 0;
	case 'l':
		if (o->n_listen == OPTIONS_MAX_LISTEN ||
		    dns_listen_parse(arg, &o->listen[o->n_listen]) < 0)
			return bad("listen", arg, "ADDR:PORT or [ADDR]:PORT");
		o->n_listen++;
		return 0;
	case 'z':
		o->zone = arg;
		return 0;
	case 't':
		if (parse_uint(arg, 2147483647ul, &v) < 0)
			return bad("ttl", arg, "seconds");
		o->ttl = (unsigned)v;
		return 0;
	case 'f': {
		const char *eq = strchr(arg, '=');
		if (!eq || eq == arg || !eq[1] || o->n_zone_files == OPTIONS_MAX_ZONE_FILES)
			return bad("zone-file", arg, "ORIGIN=FILE");
		o->zone_files[o->n_zone_files++] = arg;
		return 0;
	}
	case 's':
	case 'p':
		if (net_cidr_parse(arg, c == 's' ? &o->service_cidr : &o->pod_cidr) < 0)
			return bad(c == 's' ? "service-cidr" : "pod-cidr", arg,
				   "a CIDR like 10.96.0.0/12");
		return 0;
	case 'n':
		if (parse_uint(arg, 256, &v) < 0 || v == 0)
			return bad("threads", arg, "1..256");
		o->threads = (unsigned)v;
		return 0;
	case 'c':
		if (parse_uint(arg, 1000000, &v) < 0 || v == 0)
			return bad("tcp-max-conns", arg, "a positive number");
		o->tcp_max_conns = (unsigned)v;
		return 0;
	case 'i':
		if (parse_uint(arg, 3600000, &v) < 0 || v == 0)
			return bad("tcp-idle-timeout", arg, "milliseconds");
		o->tcp_idle_timeout_ms = (unsigned)v;
		return 0;
	case 'v':
		if ((o->log_level = log_level_parse(arg)) < 0)
			return bad("log-level", arg, "error, warn, info or debug");
		return 0;
	case OPT_ALLOW_TRANSFER:
		if (o->n_allow_transfer == OPTIONS_MAX_XFR_ALLOW ||
		    net_cidr_parse(arg, &o->allow_transfer[o->n_allow_transfer]) < 0)
			return bad("allow-transfer", arg, "a CIDR");
		o->n_allow_transfer++;
		return 0;
	case OPT_NOTIFY:
		if (o->n_notify == OPTIONS_MAX_NOTIFY ||
		    dns_listen_parse(arg, &o->notify[o->n_notify]) < 0)
			return bad("notify", arg, "ADDR[:PORT]");
		o->n_notify++;
		return 0;
	default:
		return -EINVAL;
	}
}

/* The checks that span several options. */
static enum options_result check(struct svcdns_options *o)
{
	/* In a pod with no source named, the service account is the source. */
	o->use_api = o->kubeconfig || o->api_server || o->token_file || o->ca_file ||
		     (!o->manifests && getenv("KUBERNETES_SERVICE_HOST"));
	if ((o->context || o->kube.namespaces || o->kube.labels) && !o->use_api) {
		fprintf(stderr, "svcdns: --context, --namespaces and --labels apply to the "
				"Kubernetes API source: give --kubeconfig or --api-server\n");
		return OPTIONS_USAGE;
	}
	if (!o->manifests && !o->use_api) {
		fprintf(stderr,
			"svcdns: no data source: give --manifests DIR, --kubeconfig FILE or "
			"--api-server URL\n");
		usage(stderr);
		return OPTIONS_USAGE;
	}
	uint8_t zbuf[256];
	if (dname_from_text(o->zone, zbuf, sizeof(zbuf)) < 0) {
		fprintf(stderr, "svcdns: --zone %s: not a domain name\n", o->zone);
		return OPTIONS_USAGE;
	}
	if (o->n_listen == 0) {
		dns_listen_parse("0.0.0.0:53", &o->listen[o->n_listen++]);
		dns_listen_parse("[::]:53", &o->listen[o->n_listen++]);
	}
	return OPTIONS_RUN;
}

enum options_result options_parse(int argc, char **argv, struct svcdns_options *o)
{
	int c, ret;
	defaults(o);
	/* --config FILE: its options go before the command line's. */
	if (config_merge_argv(&argc, &argv) < 0)
		return OPTIONS_USAGE;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'V':
			printf("svcdns %s\n", SVCDNS_VERSION);
			return OPTIONS_EXIT_OK;
		case 'h':
			usage(stdout);
			return OPTIONS_EXIT_OK;
		case '?':
			usage(stderr);
			return OPTIONS_USAGE;
		case OPT_KUBECONFIG ... OPT_API_BACKOFF_MAX:
			ret = api_option(o, c, optarg);
			break;
		case OPT_PROXY ... OPT_NODE_PORT_RANGE:
			ret = proxy_option(o, c, argv[optind - 1], optarg);
			break;
		case FWD_OPT_UPSTREAM ... FWD_OPT_LAST:
			ret = forward_option(&o->fwd, c, optarg);
			break;
		case LIMITS_OPT_TCP_MAX_LIFETIME ... LIMITS_OPT_LAST:
			ret = limits_option(&o->limits, c, optarg);
			break;
		case LC_OPT_HTTP ... LC_OPT_LAST:
			ret = lifecycle_option(&o->lc, c, optarg);
			break;
		default:
			ret = dns_option(o, c, optarg);
			break;
		}
		if (ret < 0)
			return OPTIONS_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "svcdns: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return OPTIONS_USAGE;
	}
	return check(o);
}
