/* Replay tests of the forwarder: each case is a table of steps (a client's
 * query in, a packet out to an upstream, the upstream's reply, the clock
 * moving on) played against forward_query() and the control thread's probes
 * on a scripted clock and network (resolver/forward_io.h): no socket, no
 * sleep, the same engine code that runs on libuv.
 *
 * Strict by construction: every packet the engine sends must be named by a
 * step, in order; every answer a client gets must be checked by a step; and a
 * client still waiting at the end of a case fails it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "common/log.h"
#include "daemon/options.h"
#include "resolver/forward_int.h"
#include "resolver/upstream.h"
#include "wire/dname.h"
#include "wire/wire.h"

#include "fwd_fake_clock.h"

/* ---- the scripted network ---------------------------------------------------- */

struct fake_xchg {
	struct fwd_xchg x;
	size_t up;
	bool open; /* not yet ended by the engine */
	bool seen; /* a step named it */
	uint8_t msg[FWD_QUERY_MAX];
	size_t len;
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	void (*on_error)(void *arg, int err, bool reused);
	void *arg;
	struct fake_xchg *next;
};

struct fake_net {
	struct fake_xchg *head, **tail;
};

static int fn_send(void *ctx, const struct fwd_xchg_req *r, struct fwd_xchg **out)
{
	struct fake_net *n = ctx;
	struct fake_xchg *x = calloc(1, sizeof(*x));
	if (!x || r->len > sizeof(x->msg)) {
		free(x);
		return -ENOMEM;
	}
	x->x.tcp = r->tcp;
	x->up = r->up;
	x->open = true;
	memcpy(x->msg, r->msg, r->len);
	x->len = r->len;
	x->on_answer = r->on_answer;
	x->on_error = r->on_error;
	x->arg = r->arg;
	*n->tail = x;
	n->tail = &x->next;
	*out = &x->x;
	return 0;
}

static void fn_end(struct fwd_xchg *x)
{
	assert_true(((struct fake_xchg *)x)->open); /* ended twice */
	((struct fake_xchg *)x)->open = false;
}

static uint16_t xchg_qtype(const struct fake_xchg *x)
{
	return wire_rd16(x->msg + WIRE_HDR_LEN + dname_len(x->msg + WIRE_HDR_LEN));
}

/* ---- the cases ---------------------------------------------------------------- */

enum op {
	OP_END = 0,
	OP_ASK,		/* client c asks `name` (type A unless qtype) */
	OP_ASK_PROBE,	/* client c asks the loop probe name svcdns sent upstream `up` */
	OP_SENT,	/* the next packet out: to upstream `up`, for `name`, over `tcp` */
	OP_NOTHING,	/* no packet out that no step has named */
	OP_REPLY,	/* upstream `up` answers its open exchange for `name` */
	OP_FAIL,	/* that exchange fails: ICMP unreachable, connection lost (`reused`) */
	OP_ADVANCE,	/* the clock moves on `ms`; timers fire as they fall due */
	OP_ANSWER,	/* client c got its answer: `rcode`, `addr` (NULL: no record), `ttl` */
	OP_WAITING,	/* client c has no answer yet */
	OP_STATE,	/* upstream `up` is `state` */
	OP_UPSTAT,	/* upstream `up`'s counter at `field` (struct upstream_stats) is `n` */
	OP_STAT,	/* the forwarder's counter at `field` (struct forward_stats) is `n` */
	OP_PROBE,	/* the control thread sent `up` a probe of `kind` no step named yet */
	OP_NO_PROBE,	/* ... and did not */
	OP_PROBE_REPLY, /* `up` answers its open probe of `kind` with `rcode` */
};

enum up_state { UP_USABLE = 1, UP_DOWN, UP_LOOPED };
enum probe_kind { PROBE_HEALTH = 1, PROBE_LOOP };

struct step {
	enum op op;
	unsigned c;
	const char *name;
	uint16_t qtype;
	unsigned up;
	bool tcp;
	uint8_t rcode;
	const char *addr; /* an A record in the reply or the answer */
	uint32_t ttl;	  /* of that record; in ANSWER 0 means any */
	bool tc;	  /* the reply is truncated */
	bool wrong_id;	  /* the reply carries another ID: it must be dropped */
	bool reused;
	uint64_t ms;
	enum up_state state;
	enum probe_kind kind;
	unsigned probe_of; /* 1 + the upstream whose loop probe name is the step's name */
	size_t field;
	uint64_t n;
};

#define ASK(c_, name_)                                                                             \
	{                                                                                          \
		.op = OP_ASK, .c = c_, .name = name_                                               \
	}
#define ASK_PROBE(c_, up_)                                                                         \
	{                                                                                          \
		.op = OP_ASK_PROBE, .c = c_, .up = up_                                             \
	}
#define SENT(up_, name_)                                                                           \
	{                                                                                          \
		.op = OP_SENT, .up = up_, .name = name_                                            \
	}
#define SENT_TCP(up_, name_)                                                                       \
	{                                                                                          \
		.op = OP_SENT, .up = up_, .name = name_, .tcp = true                               \
	}
#define SENT_LOOP_NAME(up_, of_)                                                                   \
	{                                                                                          \
		.op = OP_SENT, .up = up_, .probe_of = (of_) + 1, .qtype = DNS_T_HINFO              \
	}
#define NOTHING_SENT                                                                               \
	{                                                                                          \
		.op = OP_NOTHING                                                                   \
	}
#define REPLY_A(up_, name_, addr_, ttl_)                                                           \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .addr = addr_, .ttl = ttl_               \
	}
#define REPLY_TCP_A(up_, name_, addr_, ttl_)                                                       \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .addr = addr_, .ttl = ttl_, .tcp = true  \
	}
#define REPLY_RCODE(up_, name_, rc_)                                                               \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .rcode = rc_                             \
	}
#define REPLY_TCP_TC(up_, name_)                                                                   \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .tc = true, .tcp = true                  \
	}
#define REPLY_TC(up_, name_)                                                                       \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .tc = true                               \
	}
#define REPLY_WRONG_ID(up_, name_, addr_)                                                          \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .name = name_, .addr = addr_, .ttl = 60,                \
		.wrong_id = true                                                                   \
	}
#define REPLY_LOOP_NAME(up_, of_, rc_)                                                             \
	{                                                                                          \
		.op = OP_REPLY, .up = up_, .probe_of = (of_) + 1, .rcode = rc_                     \
	}
#define UNREACHABLE(up_, name_)                                                                    \
	{                                                                                          \
		.op = OP_FAIL, .up = up_, .name = name_                                            \
	}
#define TCP_LOST(up_, name_, reused_)                                                              \
	{                                                                                          \
		.op = OP_FAIL, .up = up_, .name = name_, .tcp = true, .reused = reused_            \
	}
#define ADVANCE(ms_)                                                                               \
	{                                                                                          \
		.op = OP_ADVANCE, .ms = ms_                                                        \
	}
#define ANSWER(c_, rc_, addr_, ttl_)                                                               \
	{                                                                                          \
		.op = OP_ANSWER, .c = c_, .rcode = rc_, .addr = addr_, .ttl = ttl_                 \
	}
#define WAITING(c_)                                                                                \
	{                                                                                          \
		.op = OP_WAITING, .c = c_                                                          \
	}
#define STATE(up_, st_)                                                                            \
	{                                                                                          \
		.op = OP_STATE, .up = up_, .state = st_                                            \
	}
#define UPSTAT(up_, f_, n_)                                                                        \
	{                                                                                          \
		.op = OP_UPSTAT, .up = up_, .field = offsetof(struct upstream_stats, f_), .n = n_  \
	}
#define STAT(f_, n_)                                                                               \
	{                                                                                          \
		.op = OP_STAT, .field = offsetof(struct forward_stats, f_), .n = n_                \
	}
#define PROBE(up_, k_)                                                                             \
	{                                                                                          \
		.op = OP_PROBE, .up = up_, .kind = k_                                              \
	}
#define NO_PROBE(up_, k_)                                                                          \
	{                                                                                          \
		.op = OP_NO_PROBE, .up = up_, .kind = k_                                           \
	}
#define PROBE_REPLY(up_, k_, rc_)                                                                  \
	{                                                                                          \
		.op = OP_PROBE_REPLY, .up = up_, .kind = k_, .rcode = rc_                          \
	}

#define NOERROR	 DNS_RCODE_NOERROR
#define SERVFAIL DNS_RCODE_SERVFAIL
#define NXDOMAIN DNS_RCODE_NXDOMAIN
#define REFUSED	 DNS_RCODE_REFUSED

#define MAX_STEPS 40

struct replay_case {
	const char *name;
	const char *args[16]; /* the forwarder's flags, as on the command line */
	bool health;	      /* the control thread's probes and loop check run */
	struct step steps[MAX_STEPS];
};

#define UP0 "--upstream", "192.0.2.1"
#define UP1 "--upstream", "192.0.2.2"
#define UP2 "--upstream", "192.0.2.3"
#define UP3 "--upstream", "192.0.2.4"

static const struct replay_case cases[] = {
    {
	.name = "failover: a timeout moves on to the next upstream",
	.args = {UP0, UP1, "--upstream-timeout", "1000"},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		ADVANCE(999),
		NOTHING_SENT,
		WAITING(0),
		ADVANCE(1),
		SENT(1, "www.example.test"),
		REPLY_A(1, "www.example.test", "192.0.2.80", 60),
		ANSWER(0, NOERROR, "192.0.2.80", 60),
		UPSTAT(0, timeouts, 1),
		STATE(0, UP_USABLE),
		/* a second failure in a row: down, and skipped from then on */
		ASK(1, "w2.example.test"),
		SENT(0, "w2.example.test"),
		ADVANCE(1000),
		SENT(1, "w2.example.test"),
		REPLY_A(1, "w2.example.test", "192.0.2.81", 60),
		ANSWER(1, NOERROR, "192.0.2.81", 60),
		STATE(0, UP_DOWN),
		ASK(2, "w3.example.test"),
		SENT(1, "w3.example.test"),
		REPLY_A(1, "w3.example.test", "192.0.2.82", 60),
		ANSWER(2, NOERROR, "192.0.2.82", 60),
	    },
    },
    {
	.name = "failover: unreachable at once, SERVFAIL and REFUSED move on",
	.args = {UP0, UP1, "--upstream-timeout", "1000", "--cache-size", "0"},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		UNREACHABLE(0, "www.example.test"),
		SENT(1, "www.example.test"),
		REPLY_A(1, "www.example.test", "192.0.2.80", 60),
		ANSWER(0, NOERROR, "192.0.2.80", 60),
		UPSTAT(0, net_errors, 1),
		ASK(1, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_RCODE(0, "www.example.test", SERVFAIL),
		SENT(1, "www.example.test"),
		REPLY_RCODE(1, "www.example.test", REFUSED),
		ADVANCE(0),
		ANSWER(1, SERVFAIL, NULL, 0),
		/* NXDOMAIN is an answer: no other server is asked */
		ASK(2, "nothere.example.test"),
		SENT(0, "nothere.example.test"),
		REPLY_RCODE(0, "nothere.example.test", NXDOMAIN),
		ANSWER(2, NXDOMAIN, NULL, 0),
	    },
    },
    {
	.name = "answers that do not match are dropped, the right one taken",
	.args = {UP0},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_WRONG_ID(0, "www.example.test", "6.6.6.1"),
		WAITING(0),
		UPSTAT(0, dropped, 1),
		REPLY_A(0, "www.example.test", "192.0.2.80", 60),
		ANSWER(0, NOERROR, "192.0.2.80", 60),
	    },
    },
    {
	.name = "health: a down upstream is probed and comes back",
	.args = {UP0, "--upstream-timeout", "1000"},
	.health = true,
	.steps =
	    {
		NO_PROBE(0, PROBE_HEALTH),
		ASK(0, "a.example.test"),
		SENT(0, "a.example.test"),
		ADVANCE(1000),
		ANSWER(0, SERVFAIL, NULL, 0),
		ASK(1, "b.example.test"),
		SENT(0, "b.example.test"),
		ADVANCE(1000),
		ANSWER(1, SERVFAIL, NULL, 0),
		STATE(0, UP_DOWN),
		/* every upstream down: SERVFAIL at once, nothing sent */
		ASK(2, "c.example.test"),
		ANSWER(2, SERVFAIL, NULL, 0),
		NOTHING_SENT,
		STAT(servfail_down, 1),
		ADVANCE(500),
		PROBE(0, PROBE_HEALTH),
		/* unanswered: a failed health check, and the next probe */
		ADVANCE(1000),
		UPSTAT(0, health_failures, 1),
		PROBE(0, PROBE_HEALTH),
		STATE(0, UP_DOWN),
		PROBE_REPLY(0, PROBE_HEALTH, NOERROR),
		STATE(0, UP_USABLE),
		ASK(3, "d.example.test"),
		SENT(0, "d.example.test"),
		REPLY_A(0, "d.example.test", "192.0.2.84", 60),
		ANSWER(3, NOERROR, "192.0.2.84", 60),
		ADVANCE(2000),
		NO_PROBE(0, PROBE_HEALTH),
	    },
    },
    {
	.name = "coalescing: identical queries, one upstream packet",
	.args = {UP0},
	.steps =
	    {
		ASK(0, "www.example.test"),
		ASK(1, "www.example.test"),
		ASK(2, "WWW.Example.TEST"),
		SENT(0, "www.example.test"),
		NOTHING_SENT,
		STAT(coalesced, 2),
		REPLY_A(0, "www.example.test", "192.0.2.80", 60),
		ANSWER(0, NOERROR, "192.0.2.80", 60),
		ANSWER(1, NOERROR, "192.0.2.80", 60),
		ANSWER(2, NOERROR, "192.0.2.80", 60),
		/* asked again: the cache answers */
		ASK(3, "www.example.test"),
		ANSWER(3, NOERROR, "192.0.2.80", 60),
		NOTHING_SENT,
	    },
    },
    {
	.name = "TC -> TCP to the same upstream",
	/* big2 takes four packets: UDP, TCP, TCP again, then the next server */
	.args = {UP0, UP1, "--upstream-max-tries", "4"},
	.steps =
	    {
		ASK(0, "big.example.test"),
		SENT(0, "big.example.test"),
		REPLY_TC(0, "big.example.test"),
		SENT_TCP(0, "big.example.test"),
		WAITING(0),
		REPLY_TCP_A(0, "big.example.test", "192.0.2.90", 60),
		ANSWER(0, NOERROR, "192.0.2.90", 60),
		UPSTAT(0, tcp_requests, 1),
		/* a reused connection that was closed: once more on a fresh
		 * one; lost again: the next upstream */
		ASK(1, "big2.example.test"),
		SENT(0, "big2.example.test"),
		REPLY_TC(0, "big2.example.test"),
		SENT_TCP(0, "big2.example.test"),
		TCP_LOST(0, "big2.example.test", true),
		SENT_TCP(0, "big2.example.test"),
		TCP_LOST(0, "big2.example.test", true),
		SENT(1, "big2.example.test"),
		REPLY_A(1, "big2.example.test", "192.0.2.91", 60),
		ANSWER(1, NOERROR, "192.0.2.91", 60),
		/* truncated over TCP as well: a broken server, the next one */
		ASK(2, "big3.example.test"),
		SENT(0, "big3.example.test"),
		REPLY_TC(0, "big3.example.test"),
		SENT_TCP(0, "big3.example.test"),
		REPLY_TCP_TC(0, "big3.example.test"),
		SENT(1, "big3.example.test"),
		REPLY_A(1, "big3.example.test", "192.0.2.92", 60),
		ANSWER(2, NOERROR, "192.0.2.92", 60),
	    },
    },
    {
	.name = "prefetch: an entry asked twice in its last 10% is refreshed, not once",
	.args = {UP0},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_A(0, "www.example.test", "192.0.2.80", 100),
		ANSWER(0, NOERROR, "192.0.2.80", 100),
		ADVANCE(90500),
		ASK(1, "www.example.test"),
		ANSWER(1, NOERROR, "192.0.2.80", 10),
		NOTHING_SENT,
		ADVANCE(500),
		ASK(2, "www.example.test"),
		ANSWER(2, NOERROR, "192.0.2.80", 9),
		SENT(0, "www.example.test"),
		REPLY_A(0, "www.example.test", "192.0.2.81", 100),
		STAT(in_flight, 0),
		/* past the old entry's expiry, the refreshed one answers */
		ADVANCE(20000),
		ASK(3, "www.example.test"),
		ANSWER(3, NOERROR, "192.0.2.81", 80),
		NOTHING_SENT,
	    },
    },
    {
	.name = "prefetch: not before the last 10% of the TTL",
	.args = {UP0},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_A(0, "www.example.test", "192.0.2.80", 100),
		ANSWER(0, NOERROR, "192.0.2.80", 100),
		ADVANCE(85000),
		ASK(1, "www.example.test"),
		ANSWER(1, NOERROR, "192.0.2.80", 15),
		ADVANCE(1000),
		ASK(2, "www.example.test"),
		ANSWER(2, NOERROR, "192.0.2.80", 14),
		NOTHING_SENT,
		/* expired: asked again like any miss */
		ADVANCE(14000),
		ASK(3, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_A(0, "www.example.test", "192.0.2.81", 100),
		ANSWER(3, NOERROR, "192.0.2.81", 100),
	    },
    },
    {
	.name = "serve-stale: an expired entry answers when the upstreams fail",
	.args = {UP0, "--serve-stale", "60", "--upstream-timeout", "1000"},
	.steps =
	    {
		ASK(0, "short.example.test"),
		SENT(0, "short.example.test"),
		REPLY_A(0, "short.example.test", "192.0.2.3", 3),
		ANSWER(0, NOERROR, "192.0.2.3", 3),
		ADVANCE(4000),
		ASK(1, "short.example.test"),
		SENT(0, "short.example.test"),
		ADVANCE(1000),
		ANSWER(1, NOERROR, "192.0.2.3", 30),
		/* still failing: now down, and the stale entry answers at once */
		ASK(2, "short.example.test"),
		SENT(0, "short.example.test"),
		UNREACHABLE(0, "short.example.test"),
		ADVANCE(0),
		ANSWER(2, NOERROR, "192.0.2.3", 30),
		STATE(0, UP_DOWN),
		ASK(3, "short.example.test"),
		ANSWER(3, NOERROR, "192.0.2.3", 30),
		NOTHING_SENT,
		/* past the stale window: SERVFAIL */
		ADVANCE(60000),
		ASK(4, "short.example.test"),
		ANSWER(4, SERVFAIL, NULL, 0),
	    },
    },
    {
	.name = "serve-stale: off by default, SERVFAIL",
	.args = {UP0, "--upstream-timeout", "1000"},
	.steps =
	    {
		ASK(0, "short.example.test"),
		SENT(0, "short.example.test"),
		REPLY_A(0, "short.example.test", "192.0.2.3", 3),
		ANSWER(0, NOERROR, "192.0.2.3", 3),
		ADVANCE(4000),
		ASK(1, "short.example.test"),
		SENT(0, "short.example.test"),
		ADVANCE(1000),
		ANSWER(1, SERVFAIL, NULL, 0),
	    },
    },
    {
	.name = "max-concurrent: REFUSED beyond it, room again once answered",
	.args = {UP0, "--max-concurrent", "2"},
	.steps =
	    {
		ASK(0, "a.example.test"),
		ASK(1, "b.example.test"),
		SENT(0, "a.example.test"),
		SENT(0, "b.example.test"),
		STAT(in_flight, 2),
		ASK(2, "c.example.test"),
		ANSWER(2, REFUSED, NULL, 0),
		NOTHING_SENT,
		STAT(rejected, 1),
		/* joining a question in flight takes no more room */
		ASK(3, "a.example.test"),
		NOTHING_SENT,
		REPLY_A(0, "a.example.test", "192.0.2.1", 60),
		ANSWER(0, NOERROR, "192.0.2.1", 60),
		ANSWER(3, NOERROR, "192.0.2.1", 60),
		ASK(4, "c.example.test"),
		SENT(0, "c.example.test"),
		REPLY_A(0, "b.example.test", "192.0.2.2", 60),
		ANSWER(1, NOERROR, "192.0.2.2", 60),
		REPLY_A(0, "c.example.test", "192.0.2.3", 60),
		ANSWER(4, NOERROR, "192.0.2.3", 60),
		STAT(in_flight, 0),
	    },
    },
    {
	.name = "max-tries: three packets per question by default, failover included",
	.args = {UP0, UP1, UP2, UP3, "--upstream-timeout", "1000", "--cache-size", "0"},
	.steps =
	    {
		ASK(0, "www.example.test"),
		SENT(0, "www.example.test"),
		REPLY_RCODE(0, "www.example.test", SERVFAIL),
		SENT(1, "www.example.test"),
		ADVANCE(1000),
		SENT(2, "www.example.test"),
		UNREACHABLE(2, "www.example.test"),
		/* a fourth server is left, but the question has had its three */
		ADVANCE(0),
		ANSWER(0, SERVFAIL, NULL, 0),
		NOTHING_SENT,
		STAT(tries_exhausted, 1),
		/* a new question starts a new count */
		ASK(1, "w2.example.test"),
		SENT(0, "w2.example.test"),
		REPLY_A(0, "w2.example.test", "192.0.2.81", 60),
		ANSWER(1, NOERROR, "192.0.2.81", 60),
	    },
    },
    {
	.name = "max-tries: TC -> TCP is a packet too",
	.args = {UP0, UP1, "--upstream-max-tries", "2"},
	.steps =
	    {
		ASK(0, "big.example.test"),
		SENT(0, "big.example.test"),
		REPLY_TC(0, "big.example.test"),
		SENT_TCP(0, "big.example.test"),
		REPLY_TCP_TC(0, "big.example.test"),
		ADVANCE(0),
		ANSWER(0, SERVFAIL, NULL, 0),
		NOTHING_SENT,
		STAT(tries_exhausted, 1),
	    },
    },
    {
	.name = "max-qps: over budget, new names wait, duplicates coalesce, then SERVFAIL",
	.args = {UP0, "--upstream-max-qps", "2", "--upstream-timeout", "5000"},
	.steps =
	    {
		ASK(0, "a.example.test"),
		SENT(0, "a.example.test"),
		ADVANCE(400),
		ASK(1, "b.example.test"),
		SENT(0, "b.example.test"),
		/* the third in the same second waits for the first slot to free */
		ADVANCE(100),
		ASK(2, "c.example.test"),
		ASK(3, "c.example.test"),
		NOTHING_SENT,
		STAT(budget_waits, 1),
		STAT(coalesced, 1),
		ADVANCE(499),
		NOTHING_SENT,
		ADVANCE(1),
		SENT(0, "c.example.test"),
		REPLY_A(0, "c.example.test", "192.0.2.3", 60),
		ANSWER(2, NOERROR, "192.0.2.3", 60),
		ANSWER(3, NOERROR, "192.0.2.3", 60),
		/* b's slot frees at 1400, then none until 2000: d waits two
		 * seconds at most, then SERVFAIL, and never past the budget */
		ADVANCE(400),
		ASK(4, "d.example.test"),
		SENT(0, "d.example.test"),
		ASK(5, "e.example.test"),
		NOTHING_SENT,
		REPLY_A(0, "a.example.test", "192.0.2.1", 60),
		ANSWER(0, NOERROR, "192.0.2.1", 60),
		REPLY_A(0, "b.example.test", "192.0.2.2", 60),
		ANSWER(1, NOERROR, "192.0.2.2", 60),
		REPLY_A(0, "d.example.test", "192.0.2.4", 60),
		ANSWER(4, NOERROR, "192.0.2.4", 60),
		ADVANCE(599),
		NOTHING_SENT,
		ADVANCE(1),
		SENT(0, "e.example.test"),
		REPLY_A(0, "e.example.test", "192.0.2.5", 60),
		ANSWER(5, NOERROR, "192.0.2.5", 60),
		STAT(budget_refused, 0),
	    },
    },
    {
	.name = "max-qps: a wait is bounded; the budget's SERVFAIL is not cached",
	.args = {UP0, "--upstream-max-qps", "1", "--upstream-timeout", "5000"},
	.steps =
	    {
		ASK(0, "a.example.test"),
		SENT(0, "a.example.test"),
		ASK(1, "b.example.test"),
		NOTHING_SENT,
		/* the queue holds what one second of budget sends in two: two */
		ASK(2, "c.example.test"),
		ASK(3, "d.example.test"),
		ANSWER(3, SERVFAIL, NULL, 0),
		STAT(budget_refused, 1),
		ADVANCE(1000),
		SENT(0, "b.example.test"),
		REPLY_A(0, "b.example.test", "192.0.2.2", 60),
		ANSWER(1, NOERROR, "192.0.2.2", 60),
		ADVANCE(999),
		WAITING(2),
		ADVANCE(1),
		ANSWER(2, SERVFAIL, NULL, 0),
		NOTHING_SENT,
		STAT(budget_refused, 2),
		REPLY_A(0, "a.example.test", "192.0.2.1", 60),
		ANSWER(0, NOERROR, "192.0.2.1", 60),
		/* asked again with room: upstream, not a cached SERVFAIL */
		ASK(4, "c.example.test"),
		SENT(0, "c.example.test"),
		REPLY_A(0, "c.example.test", "192.0.2.3", 60),
		ANSWER(4, NOERROR, "192.0.2.3", 60),
	    },
    },
    {
	.name = "max-qps: over budget, an expired entry is answered stale and refreshed",
	.args = {UP0, "--upstream-max-qps", "1", "--serve-stale", "60"},
	.steps =
	    {
		ASK(0, "short.example.test"),
		SENT(0, "short.example.test"),
		REPLY_A(0, "short.example.test", "192.0.2.3", 1),
		ANSWER(0, NOERROR, "192.0.2.3", 1),
		ADVANCE(1500),
		ASK(1, "other.example.test"),
		SENT(0, "other.example.test"),
		REPLY_A(0, "other.example.test", "192.0.2.9", 60),
		ANSWER(1, NOERROR, "192.0.2.9", 60),
		/* no room: the expired entry answers at once, the refresh waits */
		ASK(2, "short.example.test"),
		ANSWER(2, NOERROR, "192.0.2.3", 30),
		NOTHING_SENT,
		STAT(budget_stale, 1),
		ADVANCE(1000),
		SENT(0, "short.example.test"),
		REPLY_A(0, "short.example.test", "192.0.2.4", 60),
		ASK(3, "short.example.test"),
		ANSWER(3, NOERROR, "192.0.2.4", 60),
	    },
    },
    {
	.name = "loop detection: a probe name coming back marks the upstream",
	.args = {UP0, UP1, "--upstream-timeout", "1000"},
	.health = true,
	.steps =
	    {
		PROBE(0, PROBE_LOOP),
		PROBE(1, PROBE_LOOP),
		/* upstream 0 forwards our probe back to us */
		ASK_PROBE(0, 0),
		ANSWER(0, REFUSED, NULL, 0),
		STATE(0, UP_LOOPED),
		NOTHING_SENT,
		/* upstream 1 answers it as any resolver would */
		PROBE_REPLY(1, PROBE_LOOP, NXDOMAIN),
		STATE(1, UP_USABLE),
		ASK(1, "www.example.test"),
		SENT(1, "www.example.test"),
		REPLY_A(1, "www.example.test", "192.0.2.80", 60),
		ANSWER(1, NOERROR, "192.0.2.80", 60),
		/* a looped upstream is never probed for health either */
		ADVANCE(3000),
		NO_PROBE(0, PROBE_HEALTH),
		STATE(0, UP_LOOPED),
		/* once the check is over, that name is a client's like any other */
		ASK_PROBE(2, 1),
		SENT_LOOP_NAME(1, 1),
		REPLY_LOOP_NAME(1, 1, NXDOMAIN),
		ANSWER(2, NXDOMAIN, NULL, 0),
		STATE(1, UP_USABLE),
	    },
    },
};

/* ---- the player ---------------------------------------------------------------- */

#define N_CLIENTS 8

struct client {
	bool asked;
	uint16_t id;
	unsigned answers, checked; /* responses received, and checked by a step */
	bool released;		   /* let go without an answer */
	uint8_t q[DNAME_MAX + 4];  /* the question as asked */
	size_t qlen;
	uint8_t resp[4096];
	size_t rlen;
};

struct player {
	const struct replay_case *rc;
	unsigned step;
	struct fake_clock clk;
	struct fake_net net, ctl;
	struct fwd_clock fclk;
	struct fwd_net fnet, fctl;
	struct forwarder *f;
	struct forward_worker *fw;
	struct client clients[N_CLIENTS];
};

static struct player *playing; /* for the failure messages */

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			char why_[2048];                                                           \
			snprintf(why_, sizeof(why_), __VA_ARGS__);                                 \
			fail_msg("%s: step %u: %s", playing->rc->name, playing->step + 1, why_);   \
		}                                                                                  \
	} while (0)

static void on_tcp_reply(void *conn, const uint8_t *msg, size_t len)
{
	struct client *c = conn;
	if (!msg) {
		c->released = true;
		return;
	}
	CHECK(len <= sizeof(c->resp), "answer of %zu bytes", len);
	memcpy(c->resp, msg, len);
	c->rlen = len;
	c->answers++;
}

static void player_start(struct player *p, const struct replay_case *rc)
{
	memset(p, 0, sizeof(*p));
	p->rc = rc;
	playing = p;
	p->clk.now = 1000000; /* an arbitrary start: nothing may assume 0 */
	p->net.tail = &p->net.head;
	p->ctl.tail = &p->ctl.head;
	p->fclk = fc_clock(&p->clk);
	p->fnet = (struct fwd_net){&p->net, fn_send, fn_end};
	p->fctl = (struct fwd_net){&p->ctl, fn_send, fn_end};

	/* The forwarder's flags read as the program reads them (daemon/options.h),
	 * with defaults from the one option table. */
	const char *argv[24] = {"svcdns", "--manifests", "."};
	int argc = 3;
	for (size_t i = 0; rc->args[i]; i++) {
		CHECK(argc < 23, "too many flags");
		argv[argc++] = rc->args[i];
	}
	struct svcdns_options *so = NULL;
	char err[256];
	CHECK(options_load(argc, (char *const *)argv, &so, err, sizeof(err)) == 0, "flags: %s",
	      err);
	struct forward_options o = so->fwd;
	o.prefetch = !so->no_prefetch;
	o.zone = so->zone;
	assert_int_equal(forward_new(&o, NULL, 0, 1, &p->f), 0);
	options_free(so);
	assert_non_null(p->f);
	assert_int_equal(forward_worker_new_io(p->f, 0, on_tcp_reply, &p->fclk, &p->fnet, &p->fw),
			 0);
	if (rc->health)
		assert_int_equal(forward_control_start_io(p->f, &p->fclk, &p->fctl), 0);
	fc_run_until(&p->clk, p->clk.now);
}

static void free_xchgs(struct fake_net *n)
{
	for (struct fake_xchg *x = n->head, *next; x; x = next) {
		next = x->next;
		free(x);
	}
}

static void player_finish(struct player *p)
{
	for (unsigned i = 0; i < N_CLIENTS; i++) {
		struct client *c = &p->clients[i];
		CHECK(!c->asked || c->answers > 0, "client %u still waits at the end", i);
		CHECK(c->answers == c->checked, "client %u got an answer no step checked", i);
	}
	for (struct fake_xchg *x = p->net.head; x; x = x->next)
		CHECK(x->seen, "a packet to upstream %zu that no step named", x->up);
	forward_worker_close(p->fw);
	forward_worker_free(p->fw);
	forward_control_stop(p->f);
	forward_free(p->f);
	for (struct fake_xchg *x = p->net.head; x; x = x->next)
		CHECK(!x->open, "an exchange the engine never ended");
	for (struct fake_xchg *x = p->ctl.head; x; x = x->next)
		CHECK(!x->open, "a probe never ended");
	CHECK(!p->clk.timers, "a timer never freed");
	free_xchgs(&p->net);
	free_xchgs(&p->ctl);
}

/* A name in wire form with its case kept, as a client may ask it. */
static size_t put_name_as_typed(const char *text, uint8_t *out)
{
	size_t n = 0;
	for (const char *p = text; *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		CHECK(l > 0 && l <= DNAME_LABEL_MAX && n + l + 2 <= DNAME_MAX, "bad name %s", text);
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	return n;
}

/* The same name lowercased, as the forwarder asks upstream. */
static size_t put_name(const char *text, uint8_t *out)
{
	int n = dname_from_text(text, out, DNAME_MAX);
	CHECK(n > 0, "bad name %s", text);
	return (size_t)n;
}

/* A client's query (over TCP, no EDNS) and the REFUSED that dns_answer()
 * writes for a name outside the zones served, then forward_query(). */
static void ask(struct player *p, unsigned ci, const uint8_t *name, size_t nlen, uint16_t qtype)
{
	struct client *c = &p->clients[ci];
	uint8_t req[512], resp[65536];
	CHECK(!c->asked, "client %u asks twice", ci);
	c->asked = true;
	c->id = (uint16_t)(0x5100 + ci * 0x0101);
	memset(req, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(req, c->id);
	wire_hdr_set(req, WIRE_RD, true);
	wire_hdr_set_count(req, WIRE_QD, 1);
	memcpy(req + WIRE_HDR_LEN, name, nlen);
	size_t len = WIRE_HDR_LEN + nlen;
	wire_wr16(req + len, qtype);
	wire_wr16(req + len + 2, DNS_C_IN);
	len += 4;
	memcpy(c->q, req + WIRE_HDR_LEN, len - WIRE_HDR_LEN);
	c->qlen = len - WIRE_HDR_LEN;
	memcpy(resp, req, len);
	wire_hdr_set(resp, WIRE_QR, true);
	wire_hdr_set_rcode(resp, DNS_RCODE_REFUSED);
	size_t rlen = len;
	struct dns_query_info info = {.qtype = qtype,
				      .rcode = DNS_RCODE_REFUSED,
				      .qend = (uint16_t)len,
				      .limit = 65535,
				      .outside = 1};
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(5300 + ci))};
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct forward_client fc = {.proto = DNS_TCP,
				    .peer = (const struct sockaddr *)&peer,
				    .peer_len = sizeof(peer),
				    .udp_fd = -1,
				    .conn = c};
	if (forward_query(p->fw, NULL, &fc, req, len, resp, &rlen, sizeof(resp), &info) ==
	    FORWARD_REPLY)
		on_tcp_reply(c, resp, rlen);
}

#define NAME_OF(s) ((s)->name ? (s)->name : "a loop probe name")

/* The step's name as the forwarder asks it upstream: its text lowercased, or
 * an upstream's loop probe name. */
static size_t step_name(const struct player *p, const struct step *s, uint8_t *out)
{
	if (!s->probe_of)
		return put_name(s->name, out);
	const struct upstream *u = &forward_upstreams(p->f)->ups[s->probe_of - 1];
	memcpy(out, u->probe_name, u->probe_len);
	return u->probe_len;
}

/* The exchange a reply or a failure is for: the latest open one to `up` for
 * the step's name and transport. */
static struct fake_xchg *find_open(struct player *p, const struct step *s)
{
	uint8_t name[DNAME_MAX];
	size_t nlen = step_name(p, s, name);
	struct fake_xchg *found = NULL;
	for (struct fake_xchg *x = p->net.head; x; x = x->next)
		if (x->open && x->up == s->up && x->x.tcp == s->tcp &&
		    dname_len(x->msg + WIRE_HDR_LEN) == nlen &&
		    memcmp(x->msg + WIRE_HDR_LEN, name, nlen) == 0)
			found = x;
	CHECK(found && found->seen, "no open %s exchange with upstream %u for %s",
	      s->tcp ? "TCP" : "UDP", s->up, NAME_OF(s));
	return found;
}

/* The upstream's reply to x: its question, `rcode`, an A record when the
 * step has an address, TC when it says so. */
static size_t build_reply(const struct fake_xchg *x, const struct step *s, uint8_t *out)
{
	size_t n = WIRE_HDR_LEN + dname_len(x->msg + WIRE_HDR_LEN) + 4;
	memcpy(out, x->msg, n);
	wire_hdr_set(out, WIRE_QR, true);
	wire_hdr_set(out, WIRE_RA, true);
	wire_hdr_set(out, WIRE_TC, s->tc);
	wire_hdr_set_rcode(out, s->rcode);
	wire_hdr_set_count(out, WIRE_AR, 0);
	if (s->wrong_id)
		wire_hdr_set_id(out, (uint16_t)(wire_hdr_id(out) + 1));
	if (s->addr) {
		wire_wr16(out + n, 0xC000 | WIRE_HDR_LEN);
		wire_wr16(out + n + 2, DNS_T_A);
		wire_wr16(out + n + 4, DNS_C_IN);
		wire_wr32(out + n + 6, s->ttl);
		wire_wr16(out + n + 10, 4);
		CHECK(inet_pton(AF_INET, s->addr, out + n + 12) == 1, "bad address %s", s->addr);
		n += 16;
		wire_hdr_set_count(out, WIRE_AN, 1);
	}
	return n;
}

static void do_sent(struct player *p, const struct step *s)
{
	struct fake_xchg *x = p->net.head;
	while (x && x->seen)
		x = x->next;
	CHECK(x, "nothing sent, want %s to upstream %u", NAME_OF(s), s->up);
	x->seen = true;
	char got[DNAME_MAX * 4];
	dname_to_text(x->msg + WIRE_HDR_LEN, got, sizeof(got));
	uint8_t want[DNAME_MAX];
	size_t wl = step_name(p, s, want);
	CHECK(x->up == s->up && x->x.tcp == s->tcp && dname_len(x->msg + WIRE_HDR_LEN) == wl &&
		  memcmp(x->msg + WIRE_HDR_LEN, want, wl) == 0 &&
		  xchg_qtype(x) == (s->qtype ? s->qtype : DNS_T_A),
	      "sent %s type %u to upstream %zu over %s, want %s to %u over %s", got, xchg_qtype(x),
	      x->up, x->x.tcp ? "TCP" : "UDP", NAME_OF(s), s->up, s->tcp ? "TCP" : "UDP");
	CHECK(wire_hdr_has(x->msg, WIRE_RD) && !wire_hdr_has(x->msg, WIRE_QR),
	      "the upstream query is not a recursive query");
}

static void do_reply(struct player *p, const struct step *s)
{
	struct fake_xchg *x = find_open(p, s);
	uint8_t buf[512];
	size_t n = build_reply(x, s, buf);
	bool taken = x->on_answer(x->arg, buf, n);
	CHECK(taken == !s->wrong_id, "the reply was %s", taken ? "taken" : "dropped");
	CHECK(x->open == !taken, "the exchange is %s after the reply", x->open ? "open" : "ended");
}

static void do_fail(struct player *p, const struct step *s)
{
	struct fake_xchg *x = find_open(p, s);
	x->on_error(x->arg, s->tcp ? -ECONNRESET : -ECONNREFUSED, s->reused);
	CHECK(!x->open, "the failed exchange was not ended");
}

/* The first answer record's address and TTL, or "" when there is none. */
static void first_a(const struct client *c, char *addr, uint32_t *ttl)
{
	addr[0] = '\0';
	*ttl = 0;
	int off = dname_skip(c->resp, c->rlen, WIRE_HDR_LEN);
	if (off < 0 || wire_hdr_count(c->resp, WIRE_AN) == 0)
		return;
	off = dname_skip(c->resp, c->rlen, (size_t)off + 4);
	if (off < 0 || (size_t)off + 14 > c->rlen || wire_rd16(c->resp + off) != DNS_T_A)
		return;
	*ttl = wire_rd32(c->resp + off + 4);
	inet_ntop(AF_INET, c->resp + off + 10, addr, INET_ADDRSTRLEN);
}

static void do_answer(struct player *p, const struct step *s)
{
	struct client *c = &p->clients[s->c];
	CHECK(c->answers == c->checked + 1, "client %u has %u new answers, want 1", s->c,
	      c->answers - c->checked);
	c->checked = c->answers;
	CHECK(c->rlen >= WIRE_HDR_LEN && wire_hdr_id(c->resp) == c->id &&
		  wire_hdr_has(c->resp, WIRE_QR),
	      "client %u: not an answer with its ID", s->c);
	CHECK(c->rlen >= WIRE_HDR_LEN + c->qlen && wire_hdr_count(c->resp, WIRE_QD) == 1 &&
		  memcmp(c->resp + WIRE_HDR_LEN, c->q, c->qlen) == 0,
	      "client %u: the question is not echoed as asked", s->c);
	CHECK(wire_hdr_rcode(c->resp) == s->rcode, "client %u: rcode %u, want %u", s->c,
	      wire_hdr_rcode(c->resp), s->rcode);
	char addr[INET_ADDRSTRLEN];
	uint32_t ttl;
	first_a(c, addr, &ttl);
	CHECK(strcmp(addr, s->addr ? s->addr : "") == 0, "client %u: address '%s', want '%s'", s->c,
	      addr, s->addr ? s->addr : "");
	CHECK(!s->ttl || ttl == s->ttl, "client %u: TTL %u, want %u", s->c, ttl, s->ttl);
}

static void do_state(struct player *p, const struct step *s)
{
	struct upstream_set *set = forward_upstreams(p->f);
	struct upstream_stats st;
	upstream_stats_get(set, s->up, &st);
	enum up_state got = st.looped ? UP_LOOPED : st.down ? UP_DOWN : UP_USABLE;
	static const char *const names[] = {"?", "usable", "down", "looped"};
	CHECK(got == s->state, "upstream %u is %s, want %s", s->up, names[got], names[s->state]);
}

static void do_counter(struct player *p, const struct step *s)
{
	uint64_t got;
	if (s->op == OP_UPSTAT) {
		struct upstream_stats st;
		upstream_stats_get(forward_upstreams(p->f), s->up, &st);
		memcpy(&got, (const uint8_t *)&st + s->field, sizeof(got));
	} else {
		struct forward_stats st;
		forward_stats_get(p->f, &st);
		memcpy(&got, (const uint8_t *)&st + s->field, sizeof(got));
	}
	CHECK(got == s->n, "counter at %zu is %llu, want %llu", s->field, (unsigned long long)got,
	      (unsigned long long)s->n);
}

static bool probe_is(const struct player *p, const struct fake_xchg *x, const struct step *s)
{
	const struct upstream *u = &forward_upstreams(p->f)->ups[s->up];
	if (x->up != s->up)
		return false;
	if (s->kind == PROBE_LOOP)
		return xchg_qtype(x) == DNS_T_HINFO &&
		       memcmp(x->msg + WIRE_HDR_LEN, u->probe_name, u->probe_len) == 0;
	return xchg_qtype(x) == DNS_T_NS && x->msg[WIRE_HDR_LEN] == 0;
}

static void do_probe(struct player *p, const struct step *s)
{
	struct fake_xchg *found = NULL;
	for (struct fake_xchg *x = p->ctl.head; x; x = x->next)
		if (!x->seen && probe_is(p, x, s))
			found = x;
	if (s->op == OP_NO_PROBE) {
		CHECK(!found, "a probe was sent to upstream %u", s->up);
		return;
	}
	CHECK(found, "no probe to upstream %u", s->up);
	for (struct fake_xchg *x = p->ctl.head; x; x = x->next)
		if (probe_is(p, x, s))
			x->seen = true;
}

static void do_probe_reply(struct player *p, const struct step *s)
{
	struct fake_xchg *found = NULL;
	for (struct fake_xchg *x = p->ctl.head; x; x = x->next)
		if (x->open && probe_is(p, x, s))
			found = x;
	CHECK(found, "no open probe to upstream %u", s->up);
	uint8_t buf[512];
	size_t n = build_reply(found, s, buf);
	CHECK(found->on_answer(found->arg, buf, n), "the probe's answer was dropped");
}

static void play_step(struct player *p, const struct step *s)
{
	uint8_t name[DNAME_MAX];
	const struct upstream *u;
	switch (s->op) {
	case OP_ASK:
		ask(p, s->c, name, put_name_as_typed(s->name, name), s->qtype ? s->qtype : DNS_T_A);
		break;
	case OP_ASK_PROBE:
		u = &forward_upstreams(p->f)->ups[s->up];
		ask(p, s->c, u->probe_name, u->probe_len, DNS_T_HINFO);
		break;
	case OP_SENT:
		do_sent(p, s);
		break;
	case OP_NOTHING:
		for (struct fake_xchg *x = p->net.head; x; x = x->next)
			CHECK(x->seen, "a packet was sent to upstream %zu", x->up);
		break;
	case OP_REPLY:
		do_reply(p, s);
		break;
	case OP_FAIL:
		do_fail(p, s);
		break;
	case OP_ADVANCE:
		fc_run_until(&p->clk, p->clk.now + s->ms);
		break;
	case OP_ANSWER:
		do_answer(p, s);
		break;
	case OP_WAITING:
		CHECK(p->clients[s->c].answers == p->clients[s->c].checked,
		      "client %u already has an answer", s->c);
		break;
	case OP_STATE:
		do_state(p, s);
		break;
	case OP_UPSTAT:
	case OP_STAT:
		do_counter(p, s);
		break;
	case OP_PROBE:
	case OP_NO_PROBE:
		do_probe(p, s);
		break;
	case OP_PROBE_REPLY:
		do_probe_reply(p, s);
		break;
	case OP_END:
		break;
	}
	/* What the loop would run next without the clock moving: timers due now. */
	fc_run_until(&p->clk, p->clk.now);
}

static void run_case(void **state)
{
	const struct replay_case *rc = *state;
	struct player *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	player_start(p, rc);
	for (p->step = 0; p->step < MAX_STEPS && rc->steps[p->step].op != OP_END; p->step++)
		play_step(p, &rc->steps[p->step]);
	player_finish(p);
	free(p);
}

int main(void)
{
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct CMUnitTest tests[N];
	/* SVCDNS_REPLAY_LOG=1 shows the engine's debug log of each case. */
	log_set_level(getenv("SVCDNS_REPLAY_LOG") ? LOG_DEBUG : LOG_ERROR);
	for (size_t i = 0; i < N; i++)
		tests[i] = (struct CMUnitTest){.name = cases[i].name,
					       .test_func = run_case,
					       .initial_state = (void *)&cases[i]};
	return _cmocka_run_group_tests("forward_replay", tests, N, NULL, NULL);
}
