/* The program's options: every value the command line (and --config FILE)
 * can set, in one struct the rest of the program reads.
 *
 * Owns: reading argv into struct svcdns_options, the checks that span several
 * options (a data source is named, the zone is a domain name), --help and
 * --version.
 * Must never: start anything, open a socket or load a file other than the
 * --config file; daemon.c acts on what is read here. Runs on the main thread
 * before anything else starts, and on the control loop at a reload. */
#ifndef SVCDNS_OPTIONS_H
#define SVCDNS_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/netaddr.h"
#include "daemon/lifecycle.h"
#include "discovery/kube.h"
#include "dns/limits.h"
#include "proxy/proxy.h"
#include "resolver/forward.h"
#include "wire/listen.h"

#define OPTIONS_MAX_LISTEN     32
#define OPTIONS_MAX_ZONE_FILES 64
#define OPTIONS_MAX_XFR_ALLOW  16
#define OPTIONS_MAX_NOTIFY     8

struct svcdns_options {
	/* The data source: a manifest directory, the Kubernetes API, or both. */
	const char *manifests;
	const char *kubeconfig, *context, *api_server, *token_file, *ca_file;
	bool use_api; /* set by the checks: one of the above, or in-cluster */
	struct kube_options kube;
	/* DNS. */
	struct dns_listen listen[OPTIONS_MAX_LISTEN];
	size_t n_listen;
	const char *zone;
	unsigned ttl;
	const char *zone_files[OPTIONS_MAX_ZONE_FILES]; /* "ORIGIN=FILE" */
	size_t n_zone_files;
	struct net_cidr service_cidr, pod_cidr;
	unsigned node_port_min, node_port_max;
	unsigned threads; /* 0: one per core */
	unsigned tcp_max_conns, tcp_idle_timeout_ms;
	struct limits_options limits;
	struct forward_options fwd;
	/* The datapath. */
	bool proxy;
	struct proxy_config pcfg;
	/* Operations. */
	struct lifecycle_options lc;
	int log_level;
	/* Zone transfer. */
	struct net_cidr allow_transfer[OPTIONS_MAX_XFR_ALLOW];
	size_t n_allow_transfer;
	struct dns_listen notify[OPTIONS_MAX_NOTIFY];
	size_t n_notify;
};

/* What main does after options_parse. */
enum options_result {
	OPTIONS_RUN = 0, /* start the program */
	OPTIONS_EXIT_OK, /* --help, --version: printed, exit 0 */
	OPTIONS_USAGE,	 /* a bad command line: the reason printed, exit 2 */
};

/* Reads argv (with --config FILE merged in) into *o. */
enum options_result options_parse(int argc, char **argv, struct svcdns_options *o);

/* The getopt_long table, for comparing configurations at a reload. */
const struct option *options_getopt_table(void);

#endif
