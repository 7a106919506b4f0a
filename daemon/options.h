/* The program's options, declared once: one table (options.c) gives every
 * option its name, argument, kind and range, default, whether a reload
 * applies it, and its help. From that table come the command-line parser
 * (getopt_long), the --config file parser, --help, the manual page
 * (svcdns --man), the README's flag table (svcdns --flags-markdown) and the
 * reload rules (options_restart_needed).
 *
 * Time values have one syntax everywhere: "250ms", "5s", "2m", "1h", or a
 * bare number in the unit each option's help names (kept from when each
 * flag took only a number, so that existing command lines still work).
 *
 * Owns: the table, struct svcdns_options and every value syntax in it,
 * including those of the modules (struct forward_options, limits_options,
 * lifecycle_options, proxy_config, kube_options are filled here), and the
 * checks that span several options.
 * Must never: start anything, open a socket or load any file but the
 * --config file (daemon.c loads zone files, lifecycle.c applies reloads);
 * print anything but what an action asks for. Runs on the main thread before
 * anything else, and on the control loop at a reload. */
#ifndef SVCDNS_OPTIONS_H
#define SVCDNS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

/* What the command line asks for instead of running. */
enum options_action {
	OPTIONS_RUN = 0,
	OPTIONS_HELP,
	OPTIONS_VERSION,
	OPTIONS_MAN,
	OPTIONS_FLAGS_MARKDOWN,
	OPTIONS_PROXY_CLEANUP,
};

struct options_value; /* one value as given, for reloads (options.c) */

struct svcdns_options {
	/* The data source: a manifest directory, the Kubernetes API, or both. */
	const char *manifests;
	const char *kubeconfig, *context, *api_server, *token_file, *ca_file;
	bool use_api; /* one of the above, or in a pod with no source named */
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
	const char *node_name; /* --node-name, or NULL: the host name */
	const char *node_zone; /* --node-zone, or NULL: unknown */
	unsigned threads;      /* 0: one per core */
	unsigned tcp_max_conns, tcp_idle_timeout_ms;
	struct limits_options limits;
	/* Forwarding (zone and cluster_cidrs are filled by daemon.c). */
	struct forward_options fwd;
	bool no_prefetch;
	/* The datapath (dns_addrs is filled by daemon.c). */
	bool proxy;
	bool proxy_nftables; /* --proxy=nftables: the kernel datapath */
	struct proxy_config pcfg;
	/* Operations. */
	struct lifecycle_options lc;
	int log_level;
	const char *config;	     /* --config FILE, or NULL */
	const char *handover_socket; /* --handover-socket PATH (daemon/handover.h), or NULL */
	bool check_config;
	bool endpoint_pod_names;
	bool ignore_empty_service;
	bool no_rotate;
	int clusterset_zone;	      /* enum snapshot_clusterset: 0 auto, 1 on, 2 off */
	const char *namespace_labels; /* --namespace-labels SELECTOR (checked), or NULL */
	int pods;		      /* --pods: enum snapshot_pods */
	unsigned not_ready_ttl;	      /* seconds */
	/* Zone transfer. */
	struct net_cidr allow_transfer[OPTIONS_MAX_XFR_ALLOW];
	size_t n_allow_transfer;
	struct dns_listen notify[OPTIONS_MAX_NOTIFY];
	size_t n_notify;

	enum options_action action;
	/* The command line read (not owned; reloads and --check-config read it
	 * again), and every value as given, file first (owned). */
	int argc;
	char *const *argv;
	struct options_value *given;
	size_t n_given;
};

/* Reads the command line and the --config file it names into a new
 * *out (free with options_free). Returns 0, or a negative errno with one line
 * in `err` saying what is wrong and where ("FILE:LINE: --ttl abc: expected
 * ..."); an action (--help...) is returned in (*out)->action before any
 * value is checked. */
int options_load(int argc, char *const *argv, struct svcdns_options **out, char *err,
		 size_t errlen);
void options_free(struct svcdns_options *o);

/* The options a reload cannot apply whose values differ between `old` and
 * `cur`, as " --listen --threads" in `out`. Returns how many. */
size_t options_restart_needed(const struct svcdns_options *old, const struct svcdns_options *cur,
			      char *out, size_t cap);

/* ---- the table, for the generators and tests ------------------------------ */

struct opt_def;
size_t options_count(void);
const struct opt_def *options_at(size_t i);
const char *options_name(const struct opt_def *d);
bool options_reloadable(const struct opt_def *d);
const struct opt_def *options_find(const char *name);

/* --help (options_doc.c): usage and every option, grouped, with defaults. */
void options_print_help(FILE *f);
/* svcdns(8) in roff. */
void options_print_man(FILE *f);
/* The README's flag table, between its marker comments. */
void options_print_markdown(FILE *f);

#endif
