/* --proxy=nftables: what the kernel datapath is told from the options (the
 * NodePort address, the Service CIDR, the DNS listeners to exempt from
 * conntrack), and its place in the pipeline. */
#include "daemon/nft_wiring.h"

#include <string.h>
#include <netinet/in.h>

#include "common/log.h"

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
	return nftdp_apply(arg, s->view);
}

void nft_wiring_start(const struct svcdns_options *o, struct pipeline *p, struct nftdp **out)
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
	*out = NULL;
	if (nftdp_start(&cfg, out) < 0) {
		log_error("proxy: cannot start the nftables datapath; serving DNS only");
		*out = NULL;
		return;
	}
	pipeline_set_datapath_stage(p, nft_wiring_stage, *out);
}
