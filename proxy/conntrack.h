/* Stale UDP conntrack entries: a UDP flow to a Service keeps going to the
 * endpoint its conntrack entry names, even once that endpoint is gone (UDP
 * has no end), so entries whose reply comes from a removed endpoint are
 * deleted, as kube-proxy does.
 *
 * Owns: nothing across calls (a netlink socket per call).
 * Must never: delete an entry that does not name one of the endpoints given.
 * Control thread. */
#ifndef SVCDNS_CONNTRACK_H
#define SVCDNS_CONNTRACK_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/view_types.h"

struct conntrack_target {
	struct net_addr addr;
	uint16_t port;
};

/* Deletes the UDP entries whose reply source is one of t[0..n). Returns how
 * many were deleted, or a negative errno (the conntrack netlink interface is
 * not available, no CAP_NET_ADMIN). */
int conntrack_drop_udp(const struct conntrack_target *t, size_t n);

#endif
