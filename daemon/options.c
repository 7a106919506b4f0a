/* The option table: the one place where svcdns's options are named, given
 * their kind, range, default, reload rule and help, and the parsers of the
 * values whose syntax is their own. Reading them is options_load.c's. */
#include "daemon/options.h"
#include "daemon/options_table.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http.h"
#include "common/log.h"
#include "discovery/labelsel.h"
#include "dns/limits.h"
#include "wire/dname.h"
#include "zones/snapshot.h"

/* ---- values with a syntax of their own ------------------------------------ */

static int parse_zone(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	uint8_t wire[DNAME_MAX];
	if (dname_from_text(arg, wire, sizeof(wire)) < 0) {
		snprintf(why, cap, "not a domain name");
		return -EINVAL;
	}
	o->zone = arg;
	return 0;
}

static int parse_clusterset(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	static const char *const modes[] = {"auto", "on", "off"}; /* enum snapshot_clusterset */
	for (int i = 0; i < 3; i++)
		if (strcmp(arg, modes[i]) == 0) {
			o->clusterset_zone = i;
			return 0;
		}
	snprintf(why, cap, "expected auto, on or off");
	return -EINVAL;
}

static int parse_zone_file(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || !eq[1]) {
		snprintf(why, cap, "expected ORIGIN=FILE");
		return -EINVAL;
	}
	if (o->n_zone_files == OPTIONS_MAX_ZONE_FILES) {
		snprintf(why, cap, "at most %d zone files", OPTIONS_MAX_ZONE_FILES);
		return -EINVAL;
	}
	o->zone_files[o->n_zone_files++] = arg;
	return 0;
}

static int parse_node_ports(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	unsigned a = 0, b = 0;
	int used = 0;
	if (sscanf(arg, "%5u-%5u%n", &a, &b, &used) != 2 || (size_t)used != strlen(arg) || a == 0 ||
	    b > 65535 || a > b) {
		snprintf(why, cap, "expected FIRST-LAST, like 30000-32767");
		return -EINVAL;
	}
	o->node_port_min = a;
	o->node_port_max = b;
	return 0;
}

static int parse_log_level(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	int level = log_level_parse(arg);
	if (level < 0) {
		snprintf(why, cap, "expected error, warn, info or debug");
		return -EINVAL;
	}
	o->log_level = level;
	return 0;
}

static int parse_upstream(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	struct forward_options *f = &o->fwd;
	if (strcmp(arg, "none") == 0) {
		f->upstream_none = true;
		return 0;
	}
	if (f->n_upstreams == FWD_MAX_UPSTREAMS ||
	    dns_server_parse(arg, &f->upstreams[f->n_upstreams]) < 0) {
		snprintf(why, cap,
			 "expected ADDR[:PORT], [V6]:PORT, tls://ADDR[:PORT][#SERVERNAME] or none "
			 "(at most %d)",
			 FWD_MAX_UPSTREAMS);
		return -EINVAL;
	}
	f->n_upstreams++;
	return 0;
}

/* DOMAIN=ADDR[:PORT][,ADDR[:PORT]...] into one stub domain. */
static int stub_read(const char *arg, struct fwd_stub_option *st)
{
	const char *eq = strchr(arg, '=');
	uint8_t wire[DNAME_MAX];
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(st->domain))
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	memcpy(st->domain, arg, (size_t)(eq - arg));
	if (dname_from_text(st->domain, wire, sizeof(wire)) < 0)
		return -EINVAL;
	for (const char *p = eq + 1; *p;) {
		size_t len = strcspn(p, ",");
		char one[80 + DNS_NAME_TEXT];
		if (len == 0 || len >= sizeof(one) || st->n == FWD_MAX_STUB_SERVERS)
			return -EINVAL;
		memcpy(one, p, len);
		one[len] = '\0';
		if (dns_server_parse(one, &st->servers[st->n]) < 0)
			return -EINVAL;
		st->n++;
		p += len + (p[len] == ',');
	}
	return st->n ? 0 : -EINVAL;
}

static int parse_stub_domain(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	struct forward_options *f = &o->fwd;
	if (f->n_stubs == FWD_MAX_STUBS || stub_read(arg, &f->stubs[f->n_stubs]) < 0) {
		snprintf(why, cap, "expected DOMAIN=ADDR[:PORT][,ADDR...] (at most %d domains)",
			 FWD_MAX_STUBS);
		return -EINVAL;
	}
	f->n_stubs++;
	return 0;
}

/* --fallthrough alone (arg NULL): every zone served; =ZONES: the zones named,
 * separated by commas. Given again, the zones add up. */
static int parse_fallthrough(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	struct fwd_fallthrough *ft = &o->fwd.fallthrough;
	bool all = ft->on && ft->n == 0;
	ft->on = true;
	if (!arg || all) {
		ft->n = 0;
		return 0;
	}
	char name[DNAME_MAX * 4 + 1];
	for (const char *p = arg;; p++) {
		size_t len = strcspn(p, ",");
		int wl = len < sizeof(name) ? (int)len : -1;
		if (wl > 0) {
			memcpy(name, p, len);
			name[len] = '\0';
			wl = dname_from_text(name, ft->zones[ft->n], DNAME_MAX);
		}
		if (wl <= 0 || ft->n == FWD_ROUTE_MAX_FALLTHROUGH) {
			snprintf(why, cap, "expected zones separated by commas (at most %d)",
				 FWD_ROUTE_MAX_FALLTHROUGH);
			return -EINVAL;
		}
		dname_lower(ft->zones[ft->n], (size_t)wl);
		ft->len[ft->n++] = (uint16_t)wl;
		p += len;
		if (!*p)
			return 0;
	}
}

static int parse_policy(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	static const char *const names[] = {
	    [UPSTREAM_SEQUENTIAL] = "sequential",
	    [UPSTREAM_ROUND_ROBIN] = "round_robin",
	    [UPSTREAM_RANDOM] = "random",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(arg, names[i]) == 0) {
			o->fwd.policy = (enum upstream_policy)i;
			return 0;
		}
	snprintf(why, cap, "expected sequential, round_robin or random");
	return -EINVAL;
}

static int filter_read(const char *arg, enum fwd_filter *out, char *why, size_t cap)
{
	static const char *const names[] = {
	    [FWD_FILTER_OFF] = "off", [FWD_FILTER_ON] = "on", [FWD_FILTER_AUTO] = "auto"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = (enum fwd_filter)i;
			return 0;
		}
	snprintf(why, cap, "expected auto, on or off");
	return -EINVAL;
}

static int parse_filter_aaaa(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	return filter_read(arg, &o->fwd.filter_aaaa, why, cap);
}

static int parse_filter_a(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	return filter_read(arg, &o->fwd.filter_a, why, cap);
}

/* A count of entries ("10000"), or memory with a unit ("64M", "512KiB"). */
static int parse_cache_size(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {{"b", 0},	 {"k", 10},   {"kb", 10}, {"kib", 10}, {"m", 20},
		     {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},  {"gib", 30}};
	char *end;
	errno = 0;
	unsigned long long v = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
	if (arg[0] < '0' || arg[0] > '9' || errno)
		goto bad;
	if (*end == '\0') {
		o->fwd.cache_entries = (size_t)v;
		o->fwd.cache_bytes = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].unit) == 0 && v <= (1ull << 40) >> units[i].shift) {
			o->fwd.cache_bytes = (size_t)(v << units[i].shift);
			o->fwd.cache_entries = 0;
			return 0;
		}
bad:
	snprintf(why, cap, "expected entries (10000) or a size (64M, 512K)");
	return -EINVAL;
}

static int parse_http(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	if (http_listen_check(arg) < 0) {
		snprintf(why, cap, "expected ADDR:PORT or [ADDR]:PORT");
		return -EINVAL;
	}
	o->lc.http = arg;
	return 0;
}

static int parse_compat(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	if (strcmp(arg, "coredns") != 0 && strcmp(arg, "none") != 0) {
		snprintf(why, cap, "expected coredns or none");
		return -EINVAL;
	}
	o->lc.compat = strcmp(arg, "coredns") == 0;
	return 0;
}

static int parse_namespace_labels(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	struct label_selector *sel;
	int rc = label_selector_parse(arg, &sel, why, cap);
	if (rc < 0)
		return -EINVAL;
	label_selector_free(sel);
	o->namespace_labels = arg;
	return 0;
}

static int parse_pods(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	if (strcmp(arg, "insecure") == 0)
		o->pods = SNAPSHOT_PODS_INSECURE;
	else if (strcmp(arg, "disabled") == 0)
		o->pods = SNAPSHOT_PODS_DISABLED;
	else if (strcmp(arg, "verified") == 0)
		o->pods = SNAPSHOT_PODS_VERIFIED;
	else {
		snprintf(why, cap, "expected disabled, insecure or verified");
		return -EINVAL;
	}
	return 0;
}

static int parse_api_list_mode(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	if (strcmp(arg, "auto") == 0)
		o->kube.list_mode = KUBE_LIST_AUTO;
	else if (strcmp(arg, "watchlist") == 0)
		o->kube.list_mode = KUBE_LIST_WATCHLIST;
	else if (strcmp(arg, "paged") == 0)
		o->kube.list_mode = KUBE_LIST_PAGED;
	else {
		snprintf(why, cap, "expected auto, watchlist or paged");
		return -EINVAL;
	}
	return 0;
}

/* --proxy alone keeps meaning the user-space datapath, which needs no
 * privilege beyond binding ports; nftables needs CAP_NET_ADMIN. */
static int parse_proxy(struct svcdns_options *o, const char *arg, char *why, size_t cap)
{
	if (arg && strcmp(arg, "userspace") != 0 && strcmp(arg, "nftables") != 0) {
		snprintf(why, cap, "expected userspace or nftables");
		return -EINVAL;
	}
	o->proxy = true;
	o->proxy_nftables = arg && strcmp(arg, "nftables") == 0;
	return 0;
}

/* ---- the table ---------------------------------------------------------------- */

#define F(field) offsetof(struct svcdns_options, field)
#define LIST(field, count, max)                                                                    \
	.flags = OPT_REPEAT, .off = F(field), .count_off = F(count), .max_n = (max)
#define MS(lo_, hi_) .kind = OPT_DURATION, .unit = OPT_MS, .lo = (lo_), .hi = (hi_)
#define SEC	     1000ull
#define MINUTE	     (60 * SEC)
#define HOUR	     (60 * MINUTE)
#define DAY	     (24 * HOUR)

const struct opt_def options_table[] = {
    {.section = "Data source (one is needed; in a pod, none named means its service account)",
     .name = "manifests",
     .arg = "DIR",
     .kind = OPT_STRING,
     .off = F(manifests),
     .help = "serve the Services in a directory of JSON or YAML manifests, watched for "
	     "changes"},
    {.name = "kubeconfig",
     .arg = "FILE",
     .kind = OPT_STRING,
     .off = F(kubeconfig),
     .help = "list and watch the Kubernetes API of a kubeconfig"},
    {.name = "context",
     .arg = "NAME",
     .kind = OPT_STRING,
     .off = F(context),
     .help = "the kubeconfig's context (default: its current-context)"},
    {.name = "api-server",
     .arg = "URL",
     .kind = OPT_STRING,
     .off = F(api_server),
     .help = "the API server (overrides the kubeconfig's)"},
    {.name = "token-file",
     .arg = "FILE",
     .kind = OPT_STRING,
     .off = F(token_file),
     .help = "bearer token for the API server, read again when it changes"},
    {.name = "ca-file",
     .arg = "FILE",
     .kind = OPT_STRING,
     .off = F(ca_file),
     .help = "CA certificates for the API server (PEM)"},
    {.name = "namespaces",
     .arg = "A,B",
     .kind = OPT_STRING,
     .off = F(kube.namespaces),
     .help = "serve only these namespaces (default: all)"},
    {.name = "labels",
     .arg = "SELECTOR",
     .kind = OPT_STRING,
     .off = F(kube.labels),
     .help = "serve only Services matching a label selector"},
    {.name = "namespace-labels",
     .arg = "SELECTOR",
     .kind = OPT_CUSTOM,
     .parse = parse_namespace_labels,
     .help = "serve only the namespaces whose labels match a label selector (k=v, k!=v, "
	     "k in (a,b), k notin (a,b), k, !k, joined by commas), from the API's or the "
	     "manifests' Namespace objects (as CoreDNS's namespace_labels)"},
    {.name = "api-page-size",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 3600000,
     .def = "500",
     .off = F(kube.page_size),
     .help = "objects per list page"},
    {.name = "api-list-mode",
     .arg = "MODE",
     .kind = OPT_CUSTOM,
     .parse = parse_api_list_mode,
     .def = "auto",
     .help = "how Services, EndpointSlices and the rest are listed, at start and after a "
	     "watch expired: watchlist streams the list as a watch's first events (KEP-3157 "
	     "streaming lists: no list held whole, on either side), paged asks for pages of "
	     "--api-page-size, auto streams where the API server does and falls back to pages "
	     "where it refuses or ignores it (as client-go's WatchListClient)"},
    {.name = "api-timeout",
     .arg = "DURATION",
     MS(1, HOUR),
     .bare = OPT_MS,
     .def = "30s",
     .off = F(kube.timeout_ms),
     .help = "wait this long for a list page or a watch's headers"},
    {.name = "api-backoff-max",
     .arg = "DURATION",
     MS(1, HOUR),
     .bare = OPT_MS,
     .def = "30s",
     .off = F(kube.backoff_max_ms),
     .help = "longest wait between retries"},
    {.name = "api-qps",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 0,
     .hi = 100000,
     .def = "5",
     .off = F(kube.qps),
     .help = "requests per second to the API server at most, after --api-burst: every list "
	     "(its later pages free), watch and contact probe takes one; 0: no limit "
	     "(client-go's QPS, CoreDNS's apiserver_qps)"},
    {.name = "api-burst",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 100000,
     .def = "10",
     .off = F(kube.burst),
     .help = "requests to the API server at once above --api-qps (client-go's burst, "
	     "CoreDNS's apiserver_burst)"},
    {.name = "api-max-inflight",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 0,
     .hi = 100000,
     .def = "2",
     .off = F(kube.max_inflight),
     .help = "requests in flight at once that are not watches (lists and probes); 0: no "
	     "limit (as kube-apiserver's max-inflight, watches are not counted; CoreDNS's "
	     "apiserver_max_inflight)"},

    {.section = "DNS",
     .name = "listen",
     .arg = "ADDR:PORT",
     .kind = OPT_LISTEN,
     LIST(listen, n_listen, OPTIONS_MAX_LISTEN),
     .def = "0.0.0.0:53 [::]:53",
     .help = "where to answer queries, over UDP and TCP"},
    {.name = "zone",
     .arg = "NAME",
     .kind = OPT_CUSTOM,
     .parse = parse_zone,
     .def = "cluster.local",
     .help = "the cluster domain"},
    {.name = "endpoint-pod-names",
     .kind = OPT_FLAG,
     .off = F(endpoint_pod_names),
     .help = "name an endpoint without a hostname by its Pod's name (targetRef) instead of "
	     "its dashed address, when that is a DNS label (as CoreDNS's endpoint_pod_names)"},
    {.name = "pods",
     .arg = "MODE",
     .kind = OPT_CUSTOM,
     .parse = parse_pods,
     .def = "insecure",
     .help = "names <a-b-c-d>.<ns>.pod.<zone>: insecure answers any such name with its "
	     "address, disabled none (NXDOMAIN), verified only the address of a Pod of that "
	     "namespace, which watches the Pods (as CoreDNS's pods)"},
    {.name = "ignore-empty-service",
     .kind = OPT_FLAG,
     .off = F(ignore_empty_service),
     .help = "a ClusterIP Service with no ready endpoint answers NXDOMAIN, so that search-list "
	     "resolution goes on (its PTR stays; as CoreDNS's ignore empty_service)"},
    {.name = "no-rotate",
     .kind = OPT_FLAG,
     .off = F(no_rotate),
     .help = "keep A, AAAA and SRV records in a fixed order instead of rotating answers of "
	     "several records from one query to the next (rotation: CoreDNS's loadbalance)"},
    {.name = "clusterset-zone",
     .arg = "auto|on|off",
     .kind = OPT_CUSTOM,
     .parse = parse_clusterset,
     .def = "auto",
     .help = "serve clusterset.local, the Multi-Cluster Services zone, from ServiceImports "
	     "and multicluster EndpointSlices (as CoreDNS's multicluster plugin); auto: from "
	     "the first ServiceImport seen or the API server answering for the resource on"},
    {.name = "not-ready-ttl",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 3600ull * SEC,
     .def = "0s",
     .off = F(not_ready_ttl),
     .help = "negative TTL of the name of a headless Service's endpoint that is not ready yet "
	     "(NXDOMAIN with Extended DNS Error \"endpoint not ready yet\"), so that caches ask "
	     "again soon; other NXDOMAINs keep --ttl (no CoreDNS equivalent)"},
    {.name = "ttl",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 2147483647ull * SEC,
     .def = "5s",
     .flags = OPT_RELOAD,
     .off = F(ttl),
     .help = "TTL of the cluster's records"},
    {.name = "zone-file",
     .arg = "ORIGIN=FILE",
     .kind = OPT_CUSTOM,
     .parse = parse_zone_file,
     .flags = OPT_REPEAT | OPT_RELOAD,
     .max_n = OPTIONS_MAX_ZONE_FILES,
     .help = "serve a static zone from a master file, read again at every reload"},
    {.name = "service-cidr",
     .arg = "CIDR",
     .kind = OPT_CIDR,
     .def = "10.96.0.0/12",
     .off = F(service_cidr),
     .help = "ClusterIPs for Services that have none"},
    {.name = "pod-cidr",
     .arg = "CIDR",
     .kind = OPT_CIDR,
     .def = "10.244.0.0/16",
     .off = F(pod_cidr),
     .help = "addresses for Pods that have no status"},
    {.name = "node-port-range",
     .arg = "FIRST-LAST",
     .kind = OPT_CUSTOM,
     .parse = parse_node_ports,
     .def = "30000-32767",
     .help = "NodePorts for manifest Services that have none; explicit ones are served "
	     "whatever they are"},
    {.name = "threads",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 256,
     .off = F(threads),
     .help = "DNS worker threads (default: one per core)"},
    {.name = "tcp-max-conns",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 1000000,
     .def = "1024",
     .off = F(tcp_max_conns),
     .help = "open TCP connections per thread"},
    {.name = "tcp-idle-timeout",
     .arg = "DURATION",
     MS(1, HOUR),
     .bare = OPT_MS,
     .def = "10s",
     .off = F(tcp_idle_timeout_ms),
     .help = "close a TCP connection silent this long"},
    {.name = "tcp-max-lifetime",
     .arg = "DURATION",
     MS(0, DAY),
     .bare = OPT_MS,
     .def = "2m",
     .off = F(limits.tcp_max_lifetime_ms),
     .help = "close any TCP connection this long after it opened, once its answers are out "
	     "(0: never)"},
    {.name = "rrl",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 0,
     .hi = LIMITS_RRL_MAX,
     .def = "0",
     .off = F(limits.rrl),
     .help = "response rate limiting over UDP: N answers per second per client /24 (IPv6 "
	     "/56) and kind of answer (0: off)"},
    {.name = "rrl-slip",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 0,
     .hi = 100,
     .def = "2",
     .off = F(limits.rrl_slip),
     .help = "every Nth answer --rrl drops is sent truncated instead, so that real clients "
	     "retry over TCP (0: never)"},

    {.section = "Forwarding and caching",
     .name = "upstream",
     .arg = "ADDR[:PORT]",
     .kind = OPT_CUSTOM,
     .parse = parse_upstream,
     .flags = OPT_REPEAT,
     .max_n = FWD_MAX_UPSTREAMS,
     .help = "forward other names there; tls://ADDR[:PORT][#SERVERNAME] over TLS (port 853, "
	     "certificate checked against SERVERNAME, else the address; CoreDNS's forward "
	     "tls://, Unbound's forward-tls-upstream); 'none': answer REFUSED (default: the "
	     "nameservers in --resolv-conf)"},
    {.name = "upstream-ca",
     .arg = "FILE",
     .kind = OPT_STRING,
     .off = F(fwd.upstream_ca),
     .help = "PEM certificates that TLS upstreams are checked against, instead of the "
	     "system's (CoreDNS's tls CA argument, Unbound's tls-cert-bundle)"},
    {.name = "resolv-conf",
     .arg = "FILE",
     .kind = OPT_STRING,
     .def = "/etc/resolv.conf",
     .off = F(fwd.resolv_conf),
     .help = "where the default upstreams come from"},
    {.name = "stub-domain",
     .arg = "DOMAIN=ADDR[:PORT][,ADDR...]",
     .kind = OPT_CUSTOM,
     .parse = parse_stub_domain,
     .flags = OPT_REPEAT,
     .max_n = FWD_MAX_STUBS,
     .help = "forward DOMAIN to servers of its own"},
    {.name = "policy",
     .arg = "POLICY",
     .kind = OPT_CUSTOM,
     .parse = parse_policy,
     .def = "sequential",
     .help = "how upstreams are chosen: sequential, round_robin or random"},
    {.name = "upstream-timeout",
     .arg = "DURATION",
     MS(1, 60 * SEC),
     .bare = OPT_MS,
     .def = "2s",
     .off = F(fwd.timeout_ms),
     .help = "wait this long per attempt before trying the next upstream"},
    {.name = "max-concurrent",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 1000000,
     .def = "1000",
     .off = F(fwd.max_concurrent),
     .help = "upstream queries in flight; more get REFUSED"},
    {.name = "upstream-max-qps",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 0,
     .hi = 1000000,
     .def = "0",
     .off = F(fwd.max_qps),
     .help = "send no upstream more than N queries in any one-second window, bursts "
	     "included; over it, expired entries are answered stale (with --serve-stale) and "
	     "new names wait up to 2 s, then get SERVFAIL (0: no budget; CoreDNS and Unbound "
	     "have none)"},
    {.name = "upstream-max-tries",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 32,
     .def = "3",
     .off = F(fwd.max_tries),
     .help = "upstream packets for one client question, across retries, TCP and failover "
	     "(CoreDNS's forward max_fails is per upstream, not per question)"},
    {.name = "filter-aaaa",
     .arg = "auto|on|off",
     .kind = OPT_CUSTOM,
     .parse = parse_filter_aaaa,
     .def = "off",
     .help = "answer AAAA for names outside the zones served NOERROR with no address (EDE "
	     "17) instead of asking upstream; auto: when --service-cidr and --pod-cidr are both "
	     "IPv4 (CoreDNS: a template block for AAAA)"},
    {.name = "filter-a",
     .arg = "auto|on|off",
     .kind = OPT_CUSTOM,
     .parse = parse_filter_a,
     .def = "off",
     .help = "the same for A, on IPv6-only clusters; auto: when both CIDRs are IPv6"},
    {.name = "allow-recursion",
     .arg = "CIDR",
     .kind = OPT_CIDR,
     LIST(fwd.allow, fwd.n_allow, FWD_MAX_ALLOW),
     .help = "clients that may use forwarding (default: loopback, 10/8, 172.16/12, "
	     "192.168/16, 100.64/10, fc00::/7)"},
    {.name = "cache-size",
     .arg = "N|SIZE",
     .kind = OPT_CUSTOM,
     .parse = parse_cache_size,
     .def = "32M",
     .help = "entries (N) or memory (64M, 512K...) for forwarded answers; 0 turns the cache "
	     "off"},
    {.name = "cache-max-ttl",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 30 * DAY,
     .def = "1h",
     .off = F(fwd.cache_max_ttl),
     .help = "cap on the TTL of cached answers"},
    {.name = "cache-max-negative-ttl",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 30 * DAY,
     .def = "30m",
     .off = F(fwd.cache_max_neg_ttl),
     .help = "cap on caching NXDOMAIN and NODATA"},
    {.name = "cache-servfail-ttl",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 30 * DAY,
     .def = "5s",
     .off = F(fwd.cache_servfail_ttl),
     .help = "how long SERVFAIL is cached (0: never)"},
    {.name = "serve-stale",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = 30 * DAY,
     .def = "0",
     .off = F(fwd.serve_stale_s),
     .help = "answer from expired entries up to this old when every upstream fails or "
	     "--upstream-max-qps leaves no room (RFC 8767, EDE 3; 0: off)"},
    {.name = "no-prefetch",
     .kind = OPT_FLAG,
     .off = F(no_prefetch),
     .help = "do not refresh popular entries before they expire"},
    {.name = "autopath",
     .kind = OPT_FLAG,
     .off = F(fwd.autopath),
     .help = "answer <name>.<ns>.svc.<zone> with a CNAME to <name>. and its answer when "
	     "nothing in the cluster can match"},
    {.name = "fallthrough",
     .arg = "[=ZONES]",
     .kind = OPT_CUSTOM,
     .parse = parse_fallthrough,
     .flags = OPT_REPEAT | OPT_OPTARG,
     .max_n = FWD_ROUTE_MAX_FALLTHROUGH,
     .help = "resolve an NXDOMAIN for a name under ZONES (comma-separated; none given: every "
	     "zone served) through the upstreams instead (CoreDNS's fallthrough)"},

    {.section = "The ClusterIP datapath",
     .name = "proxy",
     .arg = "[=MODE]",
     .kind = OPT_CUSTOM,
     .flags = OPT_OPTARG,
     .parse = parse_proxy,
     .help = "forward ClusterIP:port and NodePort traffic to the endpoints: userspace (the "
	     "default, what --proxy alone means: sockets in svcdns, no privilege needed) or "
	     "nftables (rules in the kernel, as kube-proxy --proxy-mode=nftables; needs "
	     "CAP_NET_ADMIN)"},
    {.name = "node-address",
     .arg = "ADDR",
     .kind = OPT_ADDR,
     .def = "0.0.0.0",
     .off = F(pcfg.node_addr),
     .help = "where NodePorts listen"},
    {.name = "node-name",
     .arg = "NAME",
     .kind = OPT_STRING,
     .off = F(node_name),
     .help = "this node's name, compared with endpoints' nodeName for the nftables "
	     "datapath's externalTrafficPolicy and internalTrafficPolicy Local (default: the "
	     "host name; kube-proxy --hostname-override); headless answers list this node's "
	     "endpoints first"},
    {.name = "node-zone",
     .arg = "ZONE",
     .kind = OPT_STRING,
     .off = F(node_zone),
     .help = "this node's zone (its topology.kubernetes.io/zone label): headless A, AAAA and "
	     "SRV answers list this node's endpoints, then this zone's (or those hinted to it), "
	     "then the rest, each group rotating within itself (no CoreDNS equivalent)"},
    {.name = "udp-timeout",
     .arg = "DURATION",
     MS(SEC, 1000000 * SEC),
     .bare = OPT_S,
     .def = "30s",
     .off = F(pcfg.udp_timeout_ms),
     .help = "close a UDP flow idle this long"},
    {.name = "proxy-connect-timeout",
     .arg = "DURATION",
     MS(1, 1000000),
     .bare = OPT_MS,
     .def = "1s",
     .off = F(pcfg.connect_timeout_ms),
     .help = "wait this long per endpoint before trying the next"},
    {.name = "proxy-max-conns",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 1000000,
     .off = F(pcfg.max_conns),
     .help = "TCP connections the datapath keeps open (default: a third of the file "
	     "descriptor limit, at most 16384)"},
    {.name = "proxy-max-flows",
     .arg = "N",
     .kind = OPT_UINT,
     .lo = 1,
     .hi = 1000000,
     .off = F(pcfg.max_flows),
     .help = "UDP flows the datapath keeps open (default: as --proxy-max-conns)"},
    {.name = "proxy-no-splice",
     .kind = OPT_FLAG,
     .off = F(pcfg.no_splice),
     .help = "copy through user space instead of splice(2)"},

    {.section = "Operations",
     .name = "http",
     .arg = "ADDR:PORT",
     .kind = OPT_CUSTOM,
     .parse = parse_http,
     .help = "serve /metrics, /health, /ready and /debug/model (default: off)"},
    {.name = "metrics-compat",
     .arg = "coredns|none",
     .kind = OPT_CUSTOM,
     .parse = parse_compat,
     .def = "none",
     .flags = OPT_RELOAD,
     .help = "also export CoreDNS's metric names and labels"},
    {.name = "stale-after",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = SEC,
     .hi = DAY,
     .def = "1m",
     .flags = OPT_RELOAD,
     .off = F(lc.stale_after_s),
     .help = "cluster answers carry EDE 3 (Stale Answer) when the Kubernetes API has been "
	     "silent this long"},
    {.name = "unready-after",
     .arg = "DURATION",
     .kind = OPT_DURATION,
     .unit = OPT_S,
     .bare = OPT_S,
     .lo = 0,
     .hi = DAY,
     .def = "0",
     .flags = OPT_RELOAD,
     .off = F(lc.unready_after_s),
     .help = "/ready fails when the Kubernetes API has been silent this long (0: off)"},
    {.name = "lameduck",
     .arg = "DURATION",
     MS(0, 10 * MINUTE),
     .bare = OPT_S,
     .def = "5s",
     .flags = OPT_RELOAD,
     .off = F(lc.lameduck_ms),
     .help = "after SIGTERM, answer this long while /ready fails, then drain (with --http "
	     "only)"},
    {.name = "handover-socket",
     .arg = "PATH",
     .kind = OPT_STRING,
     .off = F(handover_socket),
     .help = "take the DNS and --http listening sockets over from the svcdns listening on this "
	     "Unix socket (if one answers; else bind them), serve them once synced, then listen "
	     "here for the next one: restarts and upgrades lose no query (no CoreDNS "
	     "equivalent; like HAProxy's -x)"},
    {.name = "startup-timeout",
     .arg = "DURATION",
     MS(0, 10 * MINUTE),
     .bare = OPT_S,
     .def = "5s",
     .off = F(lc.startup_timeout_ms),
     .help = "until the first sync with the Kubernetes API, leave cluster names unanswered "
	     "this long (clients ask again), then answer SERVFAIL until synced (0: SERVFAIL at "
	     "once; CoreDNS's kubernetes waits up to 5 s before serving)"},
    {.name = "config",
     .arg = "FILE",
     .kind = OPT_STRING,
     .off = F(config),
     .help = "more options, one per line; reloaded when it changes and on SIGHUP"},
    {.name = "check-config",
     .kind = OPT_FLAG,
     .off = F(check_config),
     .help = "check the options (and --config FILE, and the zone files), then exit"},
    {.name = "log-level",
     .arg = "LEVEL",
     .kind = OPT_CUSTOM,
     .parse = parse_log_level,
     .def = "info",
     .flags = OPT_RELOAD,
     .help = "error, warn, info or debug"},
    {.name = "log-queries",
     .kind = OPT_FLAG,
     .flags = OPT_RELOAD,
     .off = F(lc.log_queries),
     .help = "log one line per query"},

    {.section = "Zone transfer",
     .name = "allow-transfer",
     .arg = "CIDR",
     .kind = OPT_CIDR,
     LIST(allow_transfer, n_allow_transfer, OPTIONS_MAX_XFR_ALLOW),
     .help = "clients that may AXFR or IXFR the zones (default: none)"},
    {.name = "notify",
     .arg = "ADDR[:PORT]",
     .kind = OPT_LISTEN,
     LIST(notify, n_notify, OPTIONS_MAX_NOTIFY),
     .help = "send NOTIFY there when the cluster's zones change"},

    {.section = "Program",
     .name = "help",
     .kind = OPT_ACTION,
     .lo = OPTIONS_HELP,
     .help = "print this help and exit (also -h)"},
    {.name = "version",
     .kind = OPT_ACTION,
     .lo = OPTIONS_VERSION,
     .help = "print the version and exit"},
    {.name = "man",
     .kind = OPT_ACTION,
     .lo = OPTIONS_MAN,
     .help = "print the manual page svcdns(8), in roff, and exit"},
    {.name = "flags-markdown",
     .kind = OPT_ACTION,
     .lo = OPTIONS_FLAGS_MARKDOWN,
     .help = "print the README's table of flags, in Markdown, and exit"},
    {.name = "proxy-cleanup",
     .kind = OPT_ACTION,
     .lo = OPTIONS_PROXY_CLEANUP,
     .help = "delete the nftables table of --proxy=nftables (its rules stay while svcdns "
	     "restarts) and exit"},
};

const size_t options_table_len = sizeof(options_table) / sizeof(options_table[0]);
_Static_assert(sizeof(options_table) / sizeof(options_table[0]) <= OPTIONS_TABLE_MAX,
	       "the option table outgrew OPTIONS_TABLE_MAX");

size_t options_count(void)
{
	return options_table_len;
}

const struct opt_def *options_at(size_t i)
{
	return i < options_table_len ? &options_table[i] : NULL;
}

const char *options_name(const struct opt_def *d)
{
	return d->name;
}

bool options_reloadable(const struct opt_def *d)
{
	return d->flags & OPT_RELOAD;
}

const struct opt_def *options_find(const char *name)
{
	for (size_t i = 0; i < options_table_len; i++)
		if (strcmp(options_table[i].name, name) == 0)
			return &options_table[i];
	return NULL;
}
