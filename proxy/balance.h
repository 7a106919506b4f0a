/* Choosing the endpoint of one Service port for a new connection or flow:
 * round robin, and sessionAffinity ClientIP (a client address keeps its
 * endpoint while it keeps coming back within the timeout).
 *
 * Owns: the round-robin cursor and the affinity table of one Service port.
 * Must never: touch sockets or read the clock: callers pass `now_ms`, so the
 * tests drive time. Internal to proxy/. */
#ifndef SVCDNS_BALANCE_H
#define SVCDNS_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/netaddr.h"

/* One endpoint of a Service port: the address and the port it serves on. */
struct proxy_endpoint {
	struct net_addr addr;
	uint16_t port;
};

struct balance_slot;

struct balance {
	uint32_t cursor;	    /* next round-robin position */
	struct balance_slot *slots; /* affinity: open addressing, linear probing */
	size_t cap;		    /* slots (a power of two), 0 until first use */
	size_t used;		    /* occupied slots, expired ones included */
	size_t max_entries;	    /* the table never grows past this */
	uint64_t affinity_dropped;  /* clients not remembered: table full */
};

/* `max_entries` bounds the memory one Service port's affinity table takes. */
void balance_init(struct balance *b, size_t max_entries);
void balance_free(struct balance *b);

/* The index (in eps[0..n), n > 0, sorted by address as the view sorts them)
 * of the endpoint for a new connection from `client`. With `affinity_ms` > 0
 * a client seen within that time gets the endpoint it had, as long as that
 * endpoint is still in `eps`; everyone else gets the next one in round-robin
 * order, and is remembered. */
size_t balance_pick(struct balance *b, const struct proxy_endpoint *eps, size_t n,
		    const struct net_addr *client, uint32_t affinity_ms, uint64_t now_ms);

/* Records that `client` is served by `ep` (the endpoint that answered after
 * the picked one failed, or a refresh of the timeout). No-op without affinity. */
void balance_bind(struct balance *b, const struct net_addr *client, const struct proxy_endpoint *ep,
		  uint32_t affinity_ms, uint64_t now_ms);

/* Forgets `client` (its endpoint stopped answering). */
void balance_forget(struct balance *b, const struct net_addr *client);

/* Drops the whole affinity table (sessionAffinity turned off). */
void balance_clear(struct balance *b);

/* Entries remembered and not expired at `now_ms` (for tests and the view). */
size_t balance_affinity_count(const struct balance *b, uint32_t affinity_ms, uint64_t now_ms);

/* Binary search for an endpoint in a sorted array; returns its index or -1. */
long balance_find(const struct proxy_endpoint *eps, size_t n, const struct proxy_endpoint *ep);

#endif
