/* The kernel datapath (--proxy=nftables): one nftables table, inet family
 * "svcdns", that forwards ClusterIP and NodePort traffic to the endpoints of
 * each Service the way kube-proxy's nftables mode does: verdict maps keyed by
 * address, protocol and port lead to one chain per Service port and family,
 * which picks an endpoint at random per connection (numgen) and jumps to that
 * endpoint's chain, which DNATs.
 *
 * Owns: the table and everything in it, and the record of what it holds (the
 * chains and map elements of each Service), from which every change is
 * computed. Chains are named by a hash of their contents, so a chain once
 * written is never rewritten: a change adds new chains, re-points map
 * elements and deletes the chains nothing uses any more, in one transaction.
 * Must never: flush or delete the table except in nftdp_cleanup (rules stay
 * while svcdns restarts), reach into discovery/ (the view's types come through
 * proxy/view_types.h), or keep a pointer into a view.
 * Every function runs on the control thread, but nftdp_chaos_live, which DNS
 * workers call. */
#ifndef SVCDNS_NFT_H
#define SVCDNS_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/view_types.h"

#define NFTDP_TABLE "svcdns"

struct nftdp_config {
	/* Where NodePorts are served: an address, or any (0.0.0.0) for every
	 * local address of the node. */
	struct net_addr node_addr;
	/* Traffic to an address in these that no Service holds is dropped;
	 * prefix 0 or family 0: no such rule for that family. */
	struct net_cidr service_cidr4, service_cidr6;
	/* The addresses svcdns answers DNS on (not loopback, not a wildcard):
	 * DNS to and from them on dns_port skips conntrack (NOTRACK). */
	const struct net_addr *dns_addrs;
	const uint16_t *dns_ports;
	size_t n_dns_addrs;
	/* This node's name: endpoints whose nodeName it is are local, for the
	 * traffic policies Local. NULL: none is. Must outlive the datapath. */
	const char *node_name;
};

struct nftdp;

/* Creates (or takes over) the table: its maps, its hooked chains and their
 * rules, then reads which Service chains and map elements it already holds,
 * so that the first nftdp_apply changes only what differs. Returns 0,
 * -EPERM (no CAP_NET_ADMIN), -EPROTONOSUPPORT (no nf_tables in the kernel),
 * or another negative errno; each is logged with what to do. */
int nftdp_start(const struct nftdp_config *cfg, struct nftdp **out);

/* Makes the table forward what `v` describes. When `v` was derived from the
 * view applied last, only the Services in v->changes are touched; otherwise
 * (the first view, a relist, a failed run) every Service is compared with
 * what the table holds and only the differences are written. Each run is one
 * transaction; when the kernel refuses it, the Services are retried one by
 * one so that each failure is logged with its Service, and the others go in.
 * Returns 0, or -ENOMEM when nothing could be computed (nothing changed) or
 * the refused Services could not be listed (nftdp_refused is then empty and
 * the caller must not publish). */
int nftdp_apply(struct nftdp *nd, const struct model_view *v);

/* The Services whose rules the kernel refused at their last attempt (each
 * was logged with its name, and is tried again at every apply until it goes
 * in): "ns/name" keys sorted as the view sorts Services, valid until the
 * next nftdp_apply. The daemon withholds their names from DNS. */
size_t nftdp_refused(const struct nftdp *nd, const char *const **keys);

/* The CHAOS view of the last apply: an immutable index to set as the
 * snapshot's chaos_live_arg with nftdp_chaos_live, which DNS workers call
 * (no allocation, no lock): per port of a forwarded Service, whether its
 * rules are in. The index refers to the applied view's Service array, so it
 * must go with the snapshot that holds that view: nftdp_live_reclaim frees
 * the retired indexes but `keep`, once no reader holds an older snapshot. */
const void *nftdp_live_index(const struct nftdp *nd);
size_t nftdp_chaos_live(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
			size_t cap, uint16_t *n_rr);
void nftdp_live_reclaim(struct nftdp *nd, const void *keep);

/* What the table holds, for /metrics and tests. */
#define NFTDP_SYNC_N_BOUNDS 9
#define NFTDP_SYNC_BOUNDS                                                                          \
	{                                                                                          \
		0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10                                       \
	}

struct nftdp_stats {
	uint64_t chains, elements; /* Service chains and map elements now */
	uint64_t syncs, full_syncs, failures;
	uint64_t refused;	    /* Services whose rules are not in now (nftdp_refused) */
	uint64_t last_sync_ns;	    /* the duration of the last apply */
	uint64_t conntrack_deleted; /* stale UDP entries of removed endpoints */
	/* Sync durations: counts per bucket (upper bounds NFTDP_SYNC_BOUNDS
	 * seconds, the last one +Inf) and their sum in seconds. */
	uint64_t sync_buckets[NFTDP_SYNC_N_BOUNDS + 1];
	double sync_sum_s;
};
void nftdp_stats_get(const struct nftdp *nd, struct nftdp_stats *out);

/* Forgets the record; the table and its rules stay in the kernel. */
void nftdp_stop(struct nftdp *nd);

/* Deletes the table (svcdns --proxy-cleanup). 0, or a negative errno (logged);
 * a table that does not exist is 0. */
int nftdp_cleanup(void);

#endif
