/* --proxy=nftables: what the kernel datapath is told from the options (the
 * NodePort address, the Service CIDR, the DNS listeners to exempt from
 * conntrack), and its place in the pipeline. */
#include "daemon/nft_wiring.h"

#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "common/log.h"
#include "common/metrics.h"

/* The --listen addresses DNS is served on, loopback and wildcards left out:
 * those are the node-local listener and the kube-dns ClusterIP. */
static size_t dns_listeners(const struct svcdns_options *o, struct net_addr *addrs, uint16_t *ports)
{
	size_t n = 0;
	for (size_t i = 0; i < o->n_listen; i++) {
		const struct sockaddr_storage *ss = &o->listen[i].addr;
		struct net_addr a = {.family = (uint8_t)ss->ss_family};
		uint16_t port;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
			memcpy(a.bytes, &s4->sin_addr, 4);
			port = ntohs(s4->sin_port);
			if (a.bytes[0] == 127 || s4->sin_addr.s_addr == htonl(INADDR_ANY))
				continue;
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
			memcpy(a.bytes, &s6->sin6_addr, 16);
			port = ntohs(s6->sin6_port);
			if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
			    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
				continue;
		} else {
			continue;
		}
		addrs[n] = a;
		ports[n++] = port;
	}
	return n;
}

int nft_wiring_stage(void *arg, struct snapshot *s)
{
	int ret = nftdp_apply(arg, s->view);
	if (ret < 0)
		return ret;
	s->chaos_live = nftdp_chaos_live;
	s->chaos_live_arg = nftdp_live_index(arg);
	return 0;
}

static size_t refused(void *arg, const char *const **keys)
{
	return nftdp_refused(arg, keys);
}

/* /metrics: what the table holds and how its syncs went. */
static void src_nftables(struct metrics_out *o, void *arg)
{
	struct nftdp_stats st;
	static const double bounds[] = NFTDP_SYNC_BOUNDS;
	nftdp_stats_get(arg, &st);
	metrics_family(o, "svcdns_nftables_chains", "gauge",
		       "Service, endpoint and NodePort chains and affinity sets in the table.");
	metrics_sample(o, "svcdns_nftables_chains", (double)st.chains, NULL);
	metrics_family(o, "svcdns_nftables_map_elements", "gauge",
		       "Elements of the table's maps and sets (ClusterIP, NodePort, no endpoint).");
	metrics_sample(o, "svcdns_nftables_map_elements", (double)st.elements, NULL);
	metrics_family(o, "svcdns_nftables_syncs_total", "counter",
		       "Snapshots programmed into the table, full (compared with the whole table) "
		       "or incremental (the changed Services only).");
	metrics_sample(o, "svcdns_nftables_syncs_total", (double)(st.syncs - st.full_syncs), "kind",
		       "incremental", NULL);
	metrics_sample(o, "svcdns_nftables_syncs_total", (double)st.full_syncs, "kind", "full",
		       NULL);
	metrics_family(o, "svcdns_nftables_sync_failures_total", "counter",
		       "Services whose rules the kernel refused (each is logged with its name).");
	metrics_sample(o, "svcdns_nftables_sync_failures_total", (double)st.failures, NULL);
	metrics_family(o, "svcdns_nftables_services_refused", "gauge",
		       "Services whose rules the kernel refused at their last attempt: not "
		       "forwarded, their names withheld from DNS, retried with backoff.");
	metrics_sample(o, "svcdns_nftables_services_refused", (double)st.refused, NULL);
	metrics_family(o, "svcdns_nftables_last_sync_seconds", "gauge",
		       "How long the last sync took, until the kernel acknowledged it.");
	metrics_sample(o, "svcdns_nftables_last_sync_seconds", (double)st.last_sync_ns / 1e9, NULL);
	metrics_family(o, "svcdns_nftables_sync_duration_seconds", "histogram",
		       "Sync durations, until the kernel acknowledged the transaction.");
	metrics_histogram(o, "svcdns_nftables_sync_duration_seconds", bounds, NFTDP_SYNC_N_BOUNDS,
			  st.sync_buckets, st.sync_sum_s, NULL);
	metrics_family(o, "svcdns_nftables_conntrack_deleted_total", "counter",
		       "UDP conntrack entries deleted because their endpoint was removed.");
	metrics_sample(o, "svcdns_nftables_conntrack_deleted_total", (double)st.conntrack_deleted,
		       NULL);
}

void nft_wiring_stop(struct metrics *m, struct nftdp *nd)
{
	if (nd && m)
		metrics_unregister_source(m, "nftables");
}

void nft_wiring_start(const struct svcdns_options *o, struct pipeline *p, struct metrics *m,
		      struct nftdp **out)
{
	static struct net_addr addrs[OPTIONS_MAX_LISTEN];
	static uint16_t ports[OPTIONS_MAX_LISTEN];
	struct nftdp_config cfg = {.node_addr = o->pcfg.node_addr};
	if (o->service_cidr.base.family == AF_INET)
		cfg.service_cidr4 = o->service_cidr;
	else
		cfg.service_cidr6 = o->service_cidr;
	cfg.n_dns_addrs = dns_listeners(o, addrs, ports);
	cfg.dns_addrs = addrs;
	cfg.dns_ports = ports;
	static char host[256];
	cfg.node_name = o->node_name;
	if (!cfg.node_name && gethostname(host, sizeof(host) - 1) == 0)
		cfg.node_name = host;
	*out = NULL;
	if (nftdp_start(&cfg, out) < 0) {
		log_error("proxy: cannot start the nftables datapath; serving DNS only");
		*out = NULL;
		return;
	}
	pipeline_set_datapath_stage(p, nft_wiring_stage, *out);
	pipeline_set_datapath_refused(p, refused);
	if (m && metrics_register_source(m, "nftables", src_nftables, *out) < 0)
		log_warn("nftables: its metrics cannot be registered");
}
