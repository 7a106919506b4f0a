/* The per-upstream sliding-window send budget: a ring of the last N send
 * times per upstream, under a lock of its own. See upstream_budget.h. */
#include "resolver/upstream_budget.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_NS 1000000000ull
#define SENDING	  UINT64_MAX /* a slot taken whose packet has not left yet */

struct ring {
	_Alignas(64) pthread_mutex_t lock;
	uint64_t *times; /* ns or SENDING; times[head] is the oldest once full */
	size_t head, used;
	uint64_t held;
};

struct upstream_budget {
	unsigned qps;
	size_t n;
	struct ring *rings;
};

int upstream_budget_new(size_t n, unsigned max_qps, struct upstream_budget **out)
{
	*out = NULL;
	if (!max_qps || max_qps > UPSTREAM_BUDGET_MAX_QPS)
		return -EINVAL;
	struct upstream_budget *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->qps = max_qps;
	b->rings = aligned_alloc(64, sizeof(*b->rings) * (n ? n : 1));
	if (!b->rings)
		goto fail;
	memset(b->rings, 0, sizeof(*b->rings) * (n ? n : 1));
	for (; b->n < n; b->n++) {
		struct ring *r = &b->rings[b->n];
		r->times = calloc(max_qps, sizeof(*r->times));
		if (!r->times || pthread_mutex_init(&r->lock, NULL) != 0) {
			free(r->times);
			goto fail;
		}
	}
	*out = b;
	return 0;
fail:
	upstream_budget_free(b);
	return -ENOMEM;
}

void upstream_budget_free(struct upstream_budget *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		pthread_mutex_destroy(&b->rings[i].lock);
		free(b->rings[i].times);
	}
	free(b->rings);
	free(b);
}

/* 0 when a send may leave at `now`, else the nanoseconds until one may.
 * Under the ring's lock. */
static uint64_t ring_wait(const struct upstream_budget *b, const struct ring *r, uint64_t now)
{
	if (r->used < b->qps)
		return 0;
	if (r->times[r->head] == SENDING)
		return 1; /* a second ago, and not out yet: look again soon */
	uint64_t free_at = r->times[r->head] + WINDOW_NS;
	return now >= free_at ? 0 : free_at - now;
}

static uint64_t ns_to_ms_up(uint64_t ns)
{
	return (ns + 999999u) / 1000000u;
}

uint64_t upstream_budget_take(struct upstream_budget *b, size_t idx, const struct fwd_clock *clk,
			      size_t *slot)
{
	struct ring *r = &b->rings[idx];
	pthread_mutex_lock(&r->lock);
	uint64_t wait = ring_wait(b, r, clk->now_ns(clk->ctx));
	if (wait) {
		r->held++;
	} else if (r->used < b->qps) {
		*slot = (r->head + r->used++) % b->qps;
		r->times[*slot] = SENDING;
	} else {
		*slot = r->head;
		r->times[*slot] = SENDING;
		r->head = (r->head + 1) % b->qps;
	}
	pthread_mutex_unlock(&r->lock);
	return ns_to_ms_up(wait);
}

void upstream_budget_sent(struct upstream_budget *b, size_t idx, size_t slot,
			  const struct fwd_clock *clk)
{
	struct ring *r = &b->rings[idx];
	pthread_mutex_lock(&r->lock);
	r->times[slot] = clk->now_ns(clk->ctx);
	pthread_mutex_unlock(&r->lock);
}

uint64_t upstream_budget_peek(struct upstream_budget *b, size_t idx, const struct fwd_clock *clk)
{
	struct ring *r = &b->rings[idx];
	pthread_mutex_lock(&r->lock);
	uint64_t wait = ring_wait(b, r, clk->now_ns(clk->ctx));
	pthread_mutex_unlock(&r->lock);
	return ns_to_ms_up(wait);
}

unsigned upstream_budget_qps(const struct upstream_budget *b)
{
	return b->qps;
}

uint64_t upstream_budget_held(struct upstream_budget *b, size_t idx)
{
	struct ring *r = &b->rings[idx];
	pthread_mutex_lock(&r->lock);
	uint64_t held = r->held;
	pthread_mutex_unlock(&r->lock);
	return held;
}
