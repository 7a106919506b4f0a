/* The forwarder's seam to time and the network: a clock with timers, and
 * exchanges with upstream servers (one query out, its answers in), each a
 * small table of functions. The per-worker engine (forward_engine.c) and the
 * upstream health checks (upstream_health.c) reach time and sockets only
 * through them, so that the same code runs on libuv in production
 * (forward_uv.c, forward_tcp.c) and under a test's scripted clock and
 * upstream (tests/unit/test_forward_replay.c). Internal to resolver/.
 *
 * Owns: the two interfaces, and the life cycle of their libuv implementation.
 * Must never: decide anything about DNS (which server, which answer, when to
 * give up): an implementation moves bytes and tells the time, no more.
 * Threads: an instance belongs to one loop (a DNS worker's or the control
 * thread's); its functions are called, and its callbacks run, on that loop's
 * thread only. No callback ever runs inside the call that started it
 * (timer_start, send): work started from a client's query leaves from the
 * loop, never from inside forward_query(). */
#ifndef SVCDNS_FORWARD_IO_H
#define SVCDNS_FORWARD_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct upstream_set;

/* ---- time ------------------------------------------------------------------ */

struct fwd_timer;
typedef void (*fwd_timer_fn)(void *arg);

struct fwd_clock {
	void *ctx;
	/* Monotonic milliseconds: cache expiry, probe deadlines. */
	uint64_t (*now_ms)(void *ctx);
	/* Monotonic nanoseconds: how long an upstream took, for /metrics. */
	uint64_t (*now_ns)(void *ctx);
	/* A stopped timer that calls fn(arg) each time it fires; NULL when out
	 * of memory. */
	struct fwd_timer *(*timer_new)(void *ctx, fwd_timer_fn fn, void *arg);
	/* (Re)arms t to fire after_ms from now (0: on the loop's next turn),
	 * then every repeat_ms (0: once). */
	void (*timer_start)(struct fwd_timer *t, uint64_t after_ms, uint64_t repeat_ms);
	void (*timer_stop)(struct fwd_timer *t);
	/* Stops t for good and lets go of it. */
	void (*timer_free)(struct fwd_timer *t);
};

/* ---- upstream exchanges ---------------------------------------------------- */

/* One query on the wire to one upstream: over UDP a socket of its own (a
 * random source port), over TCP or TLS a place on that upstream's
 * connection. Every implementation's exchange starts with this, so that end()
 * can tell them apart. */
struct fwd_xchg {
	bool tcp;
	bool tls; /* forward_tls.c's; an upstream marked tls is asked this way only */
};

struct fwd_xchg_req {
	size_t up; /* index in the upstream set */
	bool tcp;
	const uint8_t *msg; /* the query, its ID in the first two bytes */
	size_t len;
	/* A message from that upstream: over UDP any datagram from its address,
	 * over TCP one that carries the query's ID. It may be rewritten in
	 * place. Returns true when it was the answer, in which case the callee
	 * has ended the exchange; false drops it and keeps listening. */
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	/* The exchange failed (ICMP unreachable, connection refused or lost),
	 * once; nothing arrives after it, and the callee still ends it.
	 * `reused`: the TCP connection had answered queries before, so the
	 * server may only have closed it as idle. */
	void (*on_error)(void *arg, int err, bool reused);
	void *arg;
};

struct fwd_net {
	void *ctx;
	/* Sends r->msg to upstream r->up. Returns 0 with *out, or a negative
	 * errno when nothing was sent (and nothing will arrive). */
	int (*send)(void *ctx, const struct fwd_xchg_req *r, struct fwd_xchg **out);
	/* Ends an exchange: none of its callbacks runs after this. */
	void (*end)(struct fwd_xchg *x);
};

/* ---- the libuv implementation ---------------------------------------------- */

struct fwd_uv;

/* The clock (libuv timers, common/clock.h) and the network (a UDP socket per
 * exchange with IP_RECVERR; the TCP connections of forward_tcp.c; the TLS
 * connections of forward_tls.c for every upstream marked tls) of `loop`,
 * for the servers of `ups`, counting into their counter slot `slot`.
 * count_drops: a datagram from another address than the upstream's counts as
 * dropped (the workers' exchanges; the control thread's probes do not). */
int fwd_uv_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, bool count_drops,
	       struct fwd_uv **out);
const struct fwd_clock *fwd_uv_clock(struct fwd_uv *u);
const struct fwd_net *fwd_uv_net(struct fwd_uv *u);
/* On the loop's thread, once every exchange and timer has ended: closes the
 * TCP connections. */
void fwd_uv_close(struct fwd_uv *u);
/* After the loop has ended. NULL is fine. */
void fwd_uv_free(struct fwd_uv *u);

/* Upstream TCP connections, one per upstream per loop (forward_tcp.c): the
 * TCP half of fwd_uv's network. */
struct fwd_tcp;

int fwd_tcp_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, struct fwd_tcp **out);
int fwd_tcp_send(struct fwd_tcp *t, const struct fwd_xchg_req *r, struct fwd_xchg **out);
void fwd_tcp_end(struct fwd_xchg *x);
void fwd_tcp_close(struct fwd_tcp *t);
void fwd_tcp_free(struct fwd_tcp *t);

#endif
