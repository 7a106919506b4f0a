/* The per-worker engine's own state, shared by its two files: the engine
 * (forward_engine.c: queries in flight, failover, answering clients) and its
 * upstream budget queue (forward_budget.c: questions that wait for
 * --upstream-max-qps). Internal to resolver/.
 *
 * Owns: the layout of a worker, a query in flight and a waiting client.
 * Must never: be included outside resolver/forward_engine.c and
 * resolver/forward_budget.c. Threads: a worker's state is its own thread's. */
#ifndef SVCDNS_FORWARD_ENGINE_H
#define SVCDNS_FORWARD_ENGINE_H

#include "resolver/forward_int.h"
#include "resolver/forward_msg.h"

#define FQ_TABLE     1024 /* buckets of a worker's in-flight table (a power of two) */
#define FWD_ORIG_MAX 1232 /* largest cluster answer kept as a fallback for a splice */
/* Longest a question waits for an upstream's --upstream-max-qps budget. */
#define FWD_BUDGET_WAIT_MS 2000

/* One client waiting for an upstream answer. */
struct fwaiter {
	struct fwaiter *next;
	enum dns_proto proto;
	int udp_fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t ctl[64];
	size_t ctl_len;
	void *conn;
	uint8_t hdr[WIRE_HDR_LEN];
	uint8_t q[DNAME_MAX + 4];
	uint16_t qlen, limit;
	bool edns, edns_do;
	enum fwd_route_kind kind;
	uint8_t prefix[FWD_PREFIX_MAX];
	uint16_t plen, pcount;
	/* SPLICE: the cluster's own answer, sent when the target fails. */
	uint8_t orig[FWD_ORIG_MAX];
	uint16_t orig_len;
	uint64_t start_ns; /* when the query was taken, for /metrics */
};

/* One upstream query in flight (per distinct question, per worker). */
struct fq {
	struct fq *hnext;	/* in the worker's table */
	struct fq *prev, *next; /* active list; `next` also links the free list */
	struct fq *all_next;	/* everything this worker allocated */
	struct forward_worker *fw;
	struct fwd_key key;
	const struct upstream_group *g;
	struct fwd_timer *timer; /* made with the fq, freed at worker shutdown */
	struct fwd_xchg *x;	 /* the attempt on the wire; NULL between attempts */
	uint32_t tried;
	unsigned start;
	int cur; /* group member asked now; -1: none left */
	uint16_t id;
	bool tcp, tcp_retried;
	bool early; /* the attempt failed before it was sent; already reported */
	bool prefetch;
	bool active;
	bool waiting;		  /* in the worker's budget queue; the timer is its deadline */
	bool wait_tcp;		  /* what it waits to send: TCP to `cur`, or the next member */
	bool budget_fail;	  /* it gave up on the budget: no SERVFAIL goes in the cache */
	unsigned sent;		  /* packets sent for it, against --upstream-max-tries */
	size_t slot;		  /* the budget slot of the packet about to leave */
	struct fq *wprev, *wnext; /* the budget queue, oldest first */
	uint64_t attempt_ns;
	struct fwaiter *waiters;
	unsigned n_waiters;
};

struct forward_worker {
	struct forwarder *f;
	unsigned thread;
	forward_tcp_reply_fn tcp_reply;
	struct fwd_clock clk;
	struct fwd_net net;
	struct fwd_uv *uv; /* libuv's clock and network; NULL when the caller gave its own */
	struct fq *table[FQ_TABLE];
	struct fq *active;
	struct fq *free_fq, *all_fq;
	struct fwaiter *free_w;
	size_t n_waiters, max_waiters;
	unsigned rr;
	bool closing;
	/* Questions the upstream budget holds back, oldest first; NULL timer: no
	 * budget. At most max_waiting: what the budget can send in the longest
	 * wait, so that no question waits only to fail. */
	struct fq *wait_head, *wait_tail;
	size_t n_waiting, max_waiting;
	struct fwd_timer *budget_timer;
	bool budget_armed;
	uint64_t budget_due;
	uint16_t ttl_off[FWD_MAX_RRS];
	uint16_t cttl[FWD_MAX_RRS];
	uint8_t cbuf[65536];
	uint8_t out[65536];
};

static inline uint64_t fwd_now_ms(const struct forward_worker *fw)
{
	return fw->clk.now_ms(fw->clk.ctx);
}

/* forward_engine.c */

/* Sends q's next packet: over TCP to the member asked now (tcp), else to
 * the next member by the policy. Within --upstream-max-tries packets for the
 * question, and each server's --upstream-max-qps: when the budget has no
 * room, q waits in the queue. */
void fwd_fq_next(struct fq *q, bool tcp);
/* Fails q from the loop (never from inside forward_query). */
void fwd_fq_fail_soon(struct fq *q);
void fwd_fq_timer_start(struct fq *q, uint64_t ms);

/* forward_budget.c */

/* The budget holds back every server q could ask for `wake_ms`: q waits at
 * the end of the worker's queue, FWD_BUDGET_WAIT_MS at most (its timer is the
 * deadline); when the queue is full it fails at once. */
void fwd_budget_wait(struct fq *q, bool tcp, uint64_t wake_ms);
/* Takes q out of the queue, if it is in it. */
void fwd_budget_remove(struct fq *q);
/* q gives up on the budget: SERVFAIL (or a stale answer), from the loop. */
void fwd_budget_refuse(struct fq *q);
/* The worker's wake-up: sends what the queue can, oldest first. */
void fwd_budget_wake(void *arg);
/* True when the budget holds back every usable member of g right now. */
bool fwd_budget_held(struct forward_worker *fw, const struct upstream_group *g);

#endif
