/* The upstream budget (--upstream-max-qps): in any sliding one-second window
 * no upstream receives more than N packets from svcdns, bursts included. Each
 * upstream keeps the send times of its last N packets in a ring; a packet may
 * leave only when the oldest of them is at least one second old, so that the
 * bound holds for every window, not on average (a token bucket would let 2N
 * through across a refill).
 *
 * Owns: the rings, their locks, and the count of sends each held back.
 * Must never: sleep, allocate after upstream_budget_new(), or decide what a
 * held-back query does (the engine queues it, answers it stale or fails it).
 * Threads: shared by every DNS worker and the control thread's probes; each
 * upstream's ring has its own lock, held for one comparison and one store.
 * Time is read from the caller's clock inside that lock. A send is recorded
 * twice: taken before it leaves (its slot then blocks the window), and its
 * time set once the packet is out (upstream_budget_sent), so that a worker
 * preempted between the two cannot make two sends less than a second apart
 * that the ring thinks are further. */
#ifndef SVCDNS_UPSTREAM_BUDGET_H
#define SVCDNS_UPSTREAM_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resolver/forward_io.h"

#define UPSTREAM_BUDGET_MAX_QPS 1000000u

struct upstream_budget;

/* A budget of max_qps packets per second for each of n upstreams. */
int upstream_budget_new(size_t n, unsigned max_qps, struct upstream_budget **out);
void upstream_budget_free(struct upstream_budget *b);

/* Takes one packet of upstream idx's budget: returns 0 when the packet may
 * be sent, with its *slot, which the caller must hand to
 * upstream_budget_sent() once the send has returned (sent or not); else the
 * milliseconds (at least 1) until one may, and the refusal is counted as
 * held back. */
uint64_t upstream_budget_take(struct upstream_budget *b, size_t idx, const struct fwd_clock *clk,
			      size_t *slot);
/* The packet of `slot` has left (or failed to): its time is now. */
void upstream_budget_sent(struct upstream_budget *b, size_t idx, size_t slot,
			  const struct fwd_clock *clk);
/* The same question without taking: 0 when a packet could leave now. */
uint64_t upstream_budget_peek(struct upstream_budget *b, size_t idx, const struct fwd_clock *clk);

unsigned upstream_budget_qps(const struct upstream_budget *b);
/* Sends of upstream idx that its budget held back (each try counts). */
uint64_t upstream_budget_held(struct upstream_budget *b, size_t idx);

#endif
