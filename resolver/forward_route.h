/* Which answered queries the forwarder takes, and what it asks upstream for
 * them: names outside every zone served; reverse names of addresses outside
 * the cluster's CIDRs (CoreDNS's `fallthrough in-addr.arpa ip6.arpa`); the
 * target of an ExternalName CNAME (chased, so that CNAME and address come in
 * one answer); and, with --autopath, `<name>.<ns>.svc.<zone>` that can only be
 * the first step of a client's search list (answered as a CNAME to `<name>.`);
 * with --fallthrough, NXDOMAIN for a name under the zones it names (CoreDNS's
 * fallthrough: the upstreams may know names the cluster does not).
 *
 * Owns: those decisions, made from the query, dns_answer()'s response and
 * snapshot lookups. Must never: allocate, lock, log, or change the response. */
#ifndef SVCDNS_FORWARD_ROUTE_H
#define SVCDNS_FORWARD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/query_info.h"
#include "wire/wire.h"
#include "wire/dname.h"
#include "zones/snapshot.h"

#define FWD_ROUTE_MAX_CIDRS	  4
#define FWD_ROUTE_MAX_FALLTHROUGH 16

/* --fallthrough: which NXDOMAIN answers of the zones served go upstream. */
struct fwd_fallthrough {
	bool on;
	size_t n;					     /* 0: under every zone served */
	uint8_t zones[FWD_ROUTE_MAX_FALLTHROUGH][DNAME_MAX]; /* lowercased wire */
	uint16_t len[FWD_ROUTE_MAX_FALLTHROUGH];
};

struct fwd_route_config {
	uint8_t zone[DNAME_MAX]; /* the cluster domain, lowercased wire */
	uint16_t zone_len;
	bool autopath;
	/* --service-cidr, --pod-cidr: used when the snapshot says no ranges
	 * (snapshot.rev_cidrs, which follow the cluster's ServiceCIDRs) */
	struct net_cidr cluster_cidrs[FWD_ROUTE_MAX_CIDRS];
	size_t n_cluster_cidrs;
	struct fwd_fallthrough fallthrough;
};

/* Bytes of svcdns's own records put before a spliced answer: one CNAME. */
#define FWD_PREFIX_MAX (2 + 10 + DNAME_MAX)

enum fwd_route_kind {
	FWD_ROUTE_NONE = 0, /* answer as dns_answer() did */
	FWD_ROUTE_DIRECT,   /* forward the question itself */
	FWD_ROUTE_SPLICE,   /* forward `target`, answer prefix + its records */
};

struct fwd_route {
	enum fwd_route_kind kind;
	uint8_t target[DNAME_MAX]; /* lowercased wire */
	uint16_t target_len;
	uint8_t prefix[FWD_PREFIX_MAX]; /* records placed right after the question */
	uint16_t plen, pcount;
	bool autopath;
};

/* Decides for one query that dns_answer() answered (resp, rlen) with `info`. */
enum fwd_route_kind fwd_route(const struct fwd_route_config *cfg, const struct snapshot *s,
			      const uint8_t *req, const uint8_t *resp, size_t rlen,
			      const struct dns_query_info *info, struct fwd_route *r);

#endif
