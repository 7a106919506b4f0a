/* What the forwarder's files share: the state all workers share (built by
 * forward.c, read by the engine in forward_engine.c), and the ways to start
 * the engine and the health checks on a given clock and network, which
 * production gives libuv's and the replay tests give their own.
 * Internal to resolver/ (and its tests).
 *
 * Owns: nothing beyond forward.h's state. Must never: be included from
 * outside resolver/ except by the tests of resolver/. Threads: as forward.h;
 * the *_io functions on the thread that runs the given clock and network. */
#ifndef SVCDNS_FORWARD_INT_H
#define SVCDNS_FORWARD_INT_H

#include <stdatomic.h>

#include "resolver/forward.h"
#include "resolver/forward_io.h"

/* Per-thread counters: one writer each (its worker; the control thread last). */
struct fwd_slot {
	_Alignas(64) atomic_uint_fast64_t forwarded, coalesced, rejected, servfail_down,
	    recursion_refused, budget_waits, budget_refused, budget_stale, tries_exhausted,
	    filtered_aaaa, filtered_a;
};

struct forwarder {
	struct forward_options opt;
	struct upstream_set *ups;
	struct cache *cache; /* NULL: no cache */
	struct fwd_route_config route;
	bool filter_aaaa, filter_a; /* --filter-aaaa, --filter-a, `auto` decided */
	struct net_cidr allow[FWD_MAX_ALLOW];
	size_t n_allow;
	atomic_uint inflight; /* upstream queries of every worker, for --max-concurrent */
	unsigned threads;
	struct fwd_slot *slots;
	struct fwd_uv *control; /* the control thread's clock and network */
};

/* One writer per slot: a relaxed load and store, no locked instruction. */
static inline void fwd_stat_inc(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* forward_worker_new() on the given clock and network, which must outlive
 * the worker (their contexts are kept, the tables are copied). */
int forward_worker_new_io(struct forwarder *f, unsigned thread, forward_tcp_reply_fn tcp_reply,
			  const struct fwd_clock *clk, const struct fwd_net *net,
			  struct forward_worker **out);

/* forward_control_start() on the given clock and network; stop with
 * forward_control_stop(). */
int forward_control_start_io(struct forwarder *f, const struct fwd_clock *clk,
			     const struct fwd_net *net);

#endif
