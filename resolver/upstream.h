/* Upstream resolvers: the servers svcdns forwards to, grouped by the domain
 * they serve (the default group, then one per --stub-domain), their health as
 * every worker sees it, their counters (upstream.c), and the control-thread
 * work done on them (upstream_health.c): probing a server that failed, and
 * checking at start that no server sends svcdns's queries back to svcdns (a
 * forwarding loop).
 *
 * Owns: upstream addresses and groups, health state (consecutive failures,
 * down, looped), per-upstream counters, probes and the loop check.
 * Must never: answer clients or touch the cache; workers only read the set
 * and report outcomes through upstream_report(). Threads: the set is built
 * and freed on the control thread; workers read it and report from their own
 * threads (atomics, one counter slot each); the probes run on the control
 * thread, on the clock and network they are given (forward_io.h). */
#ifndef SVCDNS_UPSTREAM_H
#define SVCDNS_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "resolver/forward_io.h"
#include "wire/listen.h"
#include "wire/dname.h"

#define UPSTREAM_MAX_PER_GROUP 32  /* a group's members fit a 32-bit "tried" mask */
#define UPSTREAM_MAX_FAILS     2   /* consecutive failures before a server counts as down */
#define UPSTREAM_PROBE_MS      500 /* how often a down server is probed */

enum upstream_policy { UPSTREAM_SEQUENTIAL = 0, UPSTREAM_ROUND_ROBIN, UPSTREAM_RANDOM };

/* Upper bounds (milliseconds) of the duration histogram; one more bucket
 * counts everything slower. */
#define UPSTREAM_DUR_BUCKETS 12
extern const unsigned upstream_dur_bounds_ms[UPSTREAM_DUR_BUCKETS];

/* How a TLS connection's handshake ended; ok and resumed are both successes,
 * resumed the ones that took up an earlier session. */
enum upstream_tls_outcome {
	UPSTREAM_TLS_OK = 0,
	UPSTREAM_TLS_RESUMED,
	UPSTREAM_TLS_VERIFY_FAILED,
	UPSTREAM_TLS_ERROR,
	UPSTREAM_TLS_OUTCOMES
};
extern const char *const upstream_tls_outcome_names[UPSTREAM_TLS_OUTCOMES];

struct upstream_stats {
	uint64_t requests;				/* attempts sent (UDP, TCP and TLS) */
	uint64_t tcp_requests;				/* of which over TCP */
	uint64_t tls_requests;				/* of which over TLS */
	uint64_t tls_handshakes[UPSTREAM_TLS_OUTCOMES]; /* by enum upstream_tls_outcome */
	uint64_t rcodes[16];				/* answers by rcode */
	uint64_t timeouts;
	uint64_t net_errors;	  /* refused, unreachable, connection lost */
	uint64_t dropped;	  /* answers dropped: wrong ID, question or source */
	uint64_t health_failures; /* probes that got no answer */
	uint64_t dur_buckets[UPSTREAM_DUR_BUCKETS + 1];
	uint64_t dur_us_sum; /* over answered attempts */
	bool down, looped;
};

struct upstream_slot; /* per-thread counters */

struct upstream {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char text[80];
	size_t group;
	atomic_uint fails;	       /* consecutive failures, from any worker */
	atomic_bool down;	       /* skipped until a probe gets an answer */
	atomic_bool looped;	       /* it sent our loop probe back to us: never used */
	uint8_t probe_name[DNAME_MAX]; /* the loop check's random name */
	uint16_t probe_len;
	bool tls;		      /* reached over TLS only, never in plaintext */
	char tls_name[DNS_NAME_TEXT]; /* its certificate's name; "": its address */
	/* The current run of verification failures was logged, by whichever
	 * worker saw it first; the next successful handshake clears it. */
	atomic_bool tls_verify_logged;
	struct upstream_slot *slots;
};

struct upstream_group {
	uint8_t domain[DNAME_MAX]; /* lowercased wire; the root for the default group */
	uint16_t domain_len;
	char text[DNAME_MAX * 4];
	size_t first, n; /* members: ups[first .. first+n-1] */
};

struct upstream_set {
	struct upstream *ups;
	size_t n;
	struct upstream_group *groups;
	size_t n_groups;
	enum upstream_policy policy;
	unsigned slots;	     /* counter slots: workers 0..slots-2, the control thread last */
	unsigned timeout_ms; /* per attempt, also for probes */
	atomic_bool loop_check_active;
	struct upstream_health *health; /* control-thread state */
	/* --upstream-max-qps (upstream_budget.h); NULL: none. The forwarder's:
	 * it makes and frees it. */
	struct upstream_budget *budget;
	struct fwd_tls_ctx *tls; /* forward_tls.h; NULL: no TLS upstream */
};

/* One group of servers for a domain. */
struct upstream_group_cfg {
	const char *domain; /* "." for the default group */
	const struct dns_listen *servers;
	size_t n;
};

int upstream_set_new(const struct upstream_group_cfg *groups, size_t n_groups,
		     enum upstream_policy policy, unsigned timeout_ms, unsigned threads,
		     struct upstream_set **out);
void upstream_set_free(struct upstream_set *s);

/* The group for a name: the longest stub domain that contains it, else the
 * default group; NULL when neither exists. */
const struct upstream_group *upstream_group_for(const struct upstream_set *s, const uint8_t *name,
						size_t len);

static inline bool upstream_usable(struct upstream *u)
{
	return !atomic_load_explicit(&u->down, memory_order_relaxed) &&
	       !atomic_load_explicit(&u->looped, memory_order_relaxed);
}

bool upstream_group_all_down(const struct upstream_set *s, const struct upstream_group *g);

enum upstream_outcome {
	UPSTREAM_ANSWER = 0, /* any well-formed answer: the server is alive */
	UPSTREAM_TIMEOUT,
	UPSTREAM_NET_ERROR,
};

/* A worker's report of one attempt (thread = its counter slot), counted under
 * the transport it really went over: TLS for an upstream marked tls, else TCP
 * when `tcp`, else UDP. Marks the
 * server down after UPSTREAM_MAX_FAILS failures in a row, and logs when a
 * whole group is down. */
void upstream_report(struct upstream_set *s, size_t idx, unsigned thread, enum upstream_outcome o,
		     uint8_t rcode, uint64_t dur_us, bool tcp);
void upstream_count_dropped(struct upstream_set *s, size_t idx, unsigned thread);
/* A worker's count of one TLS handshake's end, in its own slot. */
void upstream_count_tls(struct upstream_set *s, size_t idx, unsigned thread,
			enum upstream_tls_outcome o);

/* The control thread's probe of a down server: an answer puts it back in use
 * (and logs so), none counts as a failed health check. */
void upstream_probe_result(struct upstream_set *s, size_t idx, bool answered);

/* During the start-up loop check: true when `name` (lowercased wire) is one
 * of our probe names, which then marks that upstream looped and logs it. */
bool upstream_loop_probe_seen(struct upstream_set *s, const uint8_t *name, size_t len);

/* Sums one upstream's counters over every thread. */
void upstream_stats_get(const struct upstream_set *s, size_t idx, struct upstream_stats *out);

/* Control thread: probes down servers every UPSTREAM_PROBE_MS and sends the
 * loop check, on the given clock and network (which must outlive it). Stop
 * before the loop ends: it ends its probes and frees its timer. */
int upstream_health_start(struct upstream_set *s, const struct fwd_clock *clk,
			  const struct fwd_net *net);
void upstream_health_stop(struct upstream_set *s);

/* True when two socket addresses are the same address and port. */
bool upstream_addr_equal(const struct sockaddr *a, const struct sockaddr *b);

#endif
