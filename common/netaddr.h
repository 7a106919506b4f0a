/* IP addresses and prefixes: the one address type and the one CIDR type that
 * discovery (ClusterIPs, endpoints, allocation ranges), zones (reverse names),
 * the resolver (cluster ranges, --allow-recursion) and the datapath share.
 *
 * Owns: parsing (IPv4 octets with leading zeros are read as decimal, as the
 * Kubernetes API server reads them), canonical formatting, ordering and prefix
 * membership. Must never allocate or log; callable from any thread. */
#ifndef SVCDNS_NETADDR_H
#define SVCDNS_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16];
};

struct net_cidr {
	struct net_addr base; /* host bits cleared */
	uint8_t prefix;
};

/* Returns 0 or -EINVAL ("10.96.05.77" is 10.96.5.77). */
int net_addr_parse(const char *text, struct net_addr *out);
/* The canonical text (inet_ntop); "?" for a family it does not know. */
void net_addr_format(const struct net_addr *a, char *buf, size_t len);
/* IPv4 before IPv6; numeric order within a family. */
int net_addr_cmp(const struct net_addr *a, const struct net_addr *b);

/* "10.96.0.0/12", "fd00::/8", or a bare address (a host prefix). Returns 0 or
 * -EINVAL. */
int net_cidr_parse(const char *text, struct net_cidr *out);
bool net_cidr_contains(const struct net_cidr *c, const struct net_addr *a);
/* The same for an address in its raw form (4 or 16 bytes of `family`). */
bool net_cidr_contains_raw(const struct net_cidr *c, uint8_t family, const uint8_t *bytes);

#endif
