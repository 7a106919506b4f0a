/* The allocator's pools: ranges of ClusterIPs, Pod IPs and NodePorts, each a
 * bitmap of the values in use plus the values objects held in earlier builds
 * (sticky, by object key), so that an object keeps its value while it exists.
 *
 * Owns: struct model_alloc (declared opaque in model.h), its pools and the
 * notes that keep a condition from being logged on every build. Must never:
 * look at Services or Pods; the view's build (view_alloc.c) decides which
 * object gets which value, in which order.
 * Internal to discovery/. Called on the thread that builds views only. */
#ifndef SVCDNS_ALLOC_H
#define SVCDNS_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/netaddr.h"
#include "discovery/model.h"
#include "discovery/store_map.h"

/* A pool is a range of values (addresses of a CIDR, or port numbers) seen as
 * offsets [0, size), of which [lo, hi) may be handed out. The bitmap is rebuilt
 * on every full view build: explicit claims first, then sticky allocations
 * that are still free, then new ones. */
struct alloc_pool {
	const char *what;
	uint8_t family; /* AF_INET, AF_INET6, or 0 for port numbers */
	struct net_addr base;
	uint32_t first_value; /* port pools: the value at offset 0 */
	uint32_t size;
	uint32_t lo;
	uint32_t hi;
	uint64_t *used;
	/* Explicit claims per offset (service and NodePort pools), saturating:
	 * an incremental build releases a claim only where it knows that no
	 * other Service still holds the value. */
	uint8_t *claims;
	bool starved;		 /* a build left some object without a value */
	struct store_map sticky; /* object key -> offset */
};

struct model_alloc {
	struct alloc_pool svc;
	struct alloc_pool pod;
	struct alloc_pool node;
	/* Things already logged, so that a condition is logged once while it
	 * lasts rather than on every build. */
	struct store_map notes;
	uint32_t gen;
};

/* Empties the bitmap and the claim counts (sticky values stay). */
void alloc_pool_reset(struct alloc_pool *p);
/* Whether port v is in the pool's range (an explicit nodePort outside it is
 * served, but is no allocator's business). */
bool alloc_pool_port_in(const struct alloc_pool *p, uint32_t v);
bool alloc_pool_test(const struct alloc_pool *p, uint32_t off);
void alloc_pool_set(struct alloc_pool *p, uint32_t off);
/* The offset of an address in the pool's range, if it is in it. */
bool alloc_pool_addr_offset(const struct alloc_pool *p, const struct net_addr *a, uint32_t *off);
void alloc_pool_offset_addr(const struct alloc_pool *p, uint32_t off, struct net_addr *a);
/* Reserves an explicit claim; false when it was already taken. */
bool alloc_pool_claim(struct alloc_pool *p, uint32_t off);
/* Gives the object (by key) back the value it held in earlier builds, if it
 * is still free, and marks it used in build gen. */
bool alloc_pool_keep(struct alloc_pool *p, const void *key, size_t klen, uint32_t gen,
		     uint32_t *off);
/* A new value for the object: start where the key hashes to, take the next
 * free one. Returns 0, -ENOSPC when the range is full, or -ENOMEM. */
int alloc_pool_take(struct alloc_pool *p, const void *key, size_t klen, uint32_t gen,
		    uint32_t *off);
/* Gives up one value: an allocated one is free at once, a claimed one when
 * its last claim goes; -EAGAIN when the claim count is unknown. */
int alloc_pool_release(struct alloc_pool *p, uint32_t off, bool allocated);

/* After a complete build: forgets the sticky values and notes that build
 * a->gen did not use (their objects are gone from the cluster). */
void alloc_sweep(struct model_alloc *a);

#endif
