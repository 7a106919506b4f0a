/* A scripted clock for the forwarder's tests (resolver/forward_io.h): time
 * moves only when a test says so, and timers due meanwhile fire in order, as
 * libuv's would. Shared by the replay and budget tests.
 *
 * Owns: the fake time and its timers. Must never: read a real clock or sleep.
 * Called from the test program's only thread. */
#ifndef SVCDNS_TEST_FWD_FAKE_CLOCK_H
#define SVCDNS_TEST_FWD_FAKE_CLOCK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "resolver/forward_io.h"

struct fake_clock {
	uint64_t now; /* milliseconds */
	uint64_t seq; /* arming order: timers due together fire in it, as in libuv */
	struct fwd_timer *timers;
};

struct fwd_timer {
	struct fake_clock *clk;
	fwd_timer_fn fn;
	void *arg;
	bool armed;
	uint64_t due, repeat, seq;
	struct fwd_timer *next;
};

static inline uint64_t fc_now_ms(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static inline uint64_t fc_now_ns(void *ctx)
{
	return ((struct fake_clock *)ctx)->now * 1000000u;
}

static inline struct fwd_timer *fc_timer_new(void *ctx, fwd_timer_fn fn, void *arg)
{
	struct fake_clock *c = ctx;
	struct fwd_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->clk = c;
	t->fn = fn;
	t->arg = arg;
	t->next = c->timers;
	c->timers = t;
	return t;
}

static inline void fc_timer_start(struct fwd_timer *t, uint64_t after_ms, uint64_t repeat_ms)
{
	t->armed = true;
	t->due = t->clk->now + after_ms;
	t->repeat = repeat_ms;
	t->seq = ++t->clk->seq;
}

static inline void fc_timer_stop(struct fwd_timer *t)
{
	t->armed = false;
}

static inline void fc_timer_free(struct fwd_timer *t)
{
	struct fwd_timer **p = &t->clk->timers;
	while (*p != t)
		p = &(*p)->next;
	*p = t->next;
	free(t);
}

/* Fires every timer due up to `until`, earliest first, moving the clock to
 * each; then the clock reads `until`. */
static inline void fc_run_until(struct fake_clock *c, uint64_t until)
{
	for (unsigned guard = 0;; guard++) {
		assert_true(guard < 100000); /* a timer that keeps rearming itself at once */
		struct fwd_timer *best = NULL;
		for (struct fwd_timer *t = c->timers; t; t = t->next)
			if (t->armed && t->due <= until &&
			    (!best || t->due < best->due ||
			     (t->due == best->due && t->seq < best->seq)))
				best = t;
		if (!best)
			break;
		if (best->due > c->now)
			c->now = best->due;
		if (best->repeat) {
			best->due += best->repeat;
			best->seq = ++c->seq;
		} else {
			best->armed = false;
		}
		best->fn(best->arg);
	}
	c->now = until;
}

/* The fwd_clock of c. */
static inline struct fwd_clock fc_clock(struct fake_clock *c)
{
	return (struct fwd_clock){
	    c, fc_now_ms, fc_now_ns, fc_timer_new, fc_timer_start, fc_timer_stop, fc_timer_free};
}

#endif
