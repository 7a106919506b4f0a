/* The forwarder: what svcdns does with every name it does not serve itself.
 * One `struct forwarder` holds what all threads share (upstreams and their
 * health, the sharded cache, counters); each DNS worker runs its own
 * `struct forward_worker` on its own libuv loop: its own upstream UDP sockets
 * (one per attempt, random source port and ID), its own reused upstream TCP
 * connections, its own table of queries in flight (identical queries are
 * sent once per worker). A query never crosses threads. Files: forward.c
 * (shared state), forward_engine.c (the per-worker engine), forward_budget.c
 * (its queue of questions the upstream budget holds back),
 * forward_uv.c, forward_tcp.c and forward_tls.c (its clock and sockets on
 * libuv, DNS over TLS with OpenSSL, behind the seam of forward_io.h that the
 * replay tests drive instead).
 *
 * Owns: what struct forward_options describes (the program's option table,
 * daemon/options.c, declares and parses the flags that fill it: --upstream,
 * --resolv-conf, --stub-domain, --policy, the cache, autopath, fallthrough), recursion
 * access (--allow-recursion, RA), timeouts and failover,
 * TC -> TCP, --max-concurrent, coalescing, serve-stale, prefetch, the
 * upstream budgets (--upstream-max-qps, --upstream-max-tries), the address
 * families the cluster cannot use (--filter-aaaa, --filter-a).
 * Must never: answer from or change the snapshot (it only reads it to route),
 * block a worker, or deliver an answer from inside forward_query(): answers
 * that were not ready at once leave later, from the worker's loop. */
#ifndef SVCDNS_FORWARD_H
#define SVCDNS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "resolver/cache.h"
#include "resolver/forward_route.h"
#include "wire/query_info.h"
#include "wire/wire.h"
#include "wire/listen.h"
#include "resolver/upstream.h"
#include "zones/snapshot.h"

#define FWD_MAX_UPSTREAMS    16
#define FWD_MAX_STUBS	     16
#define FWD_MAX_STUB_SERVERS 8
#define FWD_MAX_ALLOW	     64

struct fwd_stub_option {
	char domain[DNAME_MAX * 4];
	struct dns_listen servers[FWD_MAX_STUB_SERVERS];
	size_t n;
};

/* --filter-aaaa, --filter-a: whether an address family outside the cluster
 * is answered empty instead of asked upstream; AUTO decides from the CIDRs. */
enum fwd_filter { FWD_FILTER_OFF = 0, FWD_FILTER_ON, FWD_FILTER_AUTO };

struct forward_options {
	struct dns_listen upstreams[FWD_MAX_UPSTREAMS];
	size_t n_upstreams;
	bool upstream_none; /* --upstream none */
	const char *resolv_conf;
	const char *upstream_ca; /* CA file for TLS upstreams; NULL: the system's */
	struct fwd_stub_option stubs[FWD_MAX_STUBS];
	size_t n_stubs;
	enum upstream_policy policy;
	unsigned timeout_ms;
	unsigned max_concurrent;
	struct net_cidr allow[FWD_MAX_ALLOW]; /* empty: loopback and private ranges */
	size_t n_allow;
	size_t cache_bytes, cache_entries; /* both 0: no cache */
	uint32_t cache_max_ttl, cache_max_neg_ttl, cache_servfail_ttl;
	uint32_t serve_stale_s; /* 0: off */
	unsigned max_qps;	/* --upstream-max-qps per upstream; 0: no budget */
	unsigned max_tries;	/* --upstream-max-tries: packets per client question */
	enum fwd_filter filter_aaaa, filter_a;
	bool prefetch;
	bool autopath;
	struct fwd_fallthrough fallthrough;
	/* From the program's own flags. */
	const char *zone;
	struct net_cidr cluster_cidrs[2];
	size_t n_cluster_cidrs;
};

struct forwarder;

/* Resolves the upstreams (--resolv-conf when none was given; svcdns's own
 * listen addresses are refused), makes the cache and the shared state for
 * `threads` workers. *out is NULL when forwarding is off (--upstream none, or
 * no upstream at all). Returns 0 or a negative errno, logged. */
int forward_new(const struct forward_options *o, const struct dns_listen *listen, size_t n_listen,
		unsigned threads, struct forwarder **out);
void forward_free(struct forwarder *f);

/* Control thread: health probes and the start-up loop check; stop them
 * before its loop ends. */
int forward_control_start(struct forwarder *f, uv_loop_t *loop);
void forward_control_stop(struct forwarder *f);

/* ---- per worker ------------------------------------------------------------ */

struct forward_worker;

/* Sends a forwarded answer on a client's TCP connection, and lets go of it:
 * called exactly once for every query forward_query() took from that
 * connection; msg is NULL when there is no answer (shutdown). */
typedef void (*forward_tcp_reply_fn)(void *conn, const uint8_t *msg, size_t len);

int forward_worker_new(struct forwarder *f, uv_loop_t *loop, unsigned thread,
		       forward_tcp_reply_fn tcp_reply, struct forward_worker **out);
/* On the worker's thread, when it stops: closes every handle, lets go of
 * every waiting client. */
void forward_worker_close(struct forward_worker *fw);
/* After the worker's loop has ended. */
void forward_worker_free(struct forward_worker *fw);

struct forward_client {
	enum dns_proto proto;
	const struct sockaddr *peer;
	socklen_t peer_len;
	int udp_fd;	    /* UDP: the socket the query came in on */
	const uint8_t *ctl; /* UDP: control data for the reply (source address) */
	size_t ctl_len;
	void *conn; /* TCP: handed to tcp_reply */
};

enum forward_verdict {
	FORWARD_REPLY = 0, /* send resp (*rlen bytes) now */
	FORWARD_PENDING,   /* the forwarder answers later */
};

/* Called for every query after dns_answer() wrote `resp` (*rlen bytes, cap
 * bytes of room). For clients allowed recursion it sets RA, and for queries
 * the forwarder takes (forward_route.h) it either rewrites resp (cache hit,
 * SERVFAIL when every upstream is down, REFUSED over --max-concurrent) or
 * takes the query (FORWARD_PENDING). Never allocates on a cache hit. */
enum forward_verdict forward_query(struct forward_worker *fw, const struct snapshot *s,
				   const struct forward_client *c, const uint8_t *req, size_t len,
				   uint8_t *resp, size_t *rlen, size_t cap,
				   const struct dns_query_info *info);

/* ---- counters (summed over threads on read) -------------------------------- */

struct forward_stats {
	uint64_t forwarded;	    /* client queries that needed an upstream answer */
	uint64_t coalesced;	    /* of which joined an identical query in flight */
	uint64_t rejected;	    /* REFUSED over --max-concurrent */
	uint64_t servfail_down;	    /* SERVFAIL at once: every upstream down */
	uint64_t recursion_refused; /* clients outside --allow-recursion */
	uint64_t budget_waits;	    /* questions that waited for --upstream-max-qps */
	uint64_t budget_refused;    /* of which none got a packet out in time: SERVFAIL */
	uint64_t budget_stale;	    /* expired entries answered because of the budget */
	uint64_t tries_exhausted;   /* questions that used up --upstream-max-tries */
	uint64_t filtered_aaaa;	    /* AAAA answered empty by --filter-aaaa */
	uint64_t filtered_a;	    /* A answered empty by --filter-a */
	uint64_t in_flight;
};

void forward_stats_get(struct forwarder *f, struct forward_stats *out);
/* NULL when the cache is off. */
struct cache *forward_cache(struct forwarder *f);
/* Upstream counters: upstream_stats_get(forward_upstreams(f), i, &st). */
struct upstream_set *forward_upstreams(struct forwarder *f);

#endif
