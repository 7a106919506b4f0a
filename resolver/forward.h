/* The forwarder: what svcdns does with every name it does not serve itself.
 * One `struct forwarder` holds what all threads share (upstreams and their
 * health, the sharded cache, counters); each DNS worker runs its own
 * `struct forward_worker` on its own libuv loop: its own upstream UDP sockets
 * (one per attempt, random source port and ID), its own reused upstream TCP
 * connections, its own table of queries in flight (identical queries are
 * sent once per worker). A query never crosses threads. Files: forward.c
 * (shared state), forward_options.c, forward_engine.c (the per-worker engine),
 * forward_uv.c and forward_tcp.c (its clock and sockets on libuv, behind the
 * seam of forward_io.h that the replay tests drive instead).
 *
 * Owns: the --upstream/--resolv-conf/--stub-domain/--policy/cache/autopath
 * options, recursion access (--allow-recursion, RA), timeouts and failover,
 * TC -> TCP, --max-concurrent, coalescing, serve-stale, prefetch.
 * Must never: answer from or change the snapshot (it only reads it to route),
 * block a worker, or deliver an answer from inside forward_query(): answers
 * that were not ready at once leave later, from the worker's loop. */
#ifndef SVCDNS_FORWARD_H
#define SVCDNS_FORWARD_H

#include <getopt.h>
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

struct forward_options {
	struct dns_listen upstreams[FWD_MAX_UPSTREAMS];
	size_t n_upstreams;
	bool upstream_none; /* --upstream none */
	const char *resolv_conf;
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
	bool prefetch;
	bool autopath;
	/* From the program's own flags. */
	const char *zone;
	struct net_cidr cluster_cidrs[2];
	size_t n_cluster_cidrs;
};

/* getopt_long codes of the forwarder's options (above any character). */
enum {
	FWD_OPT_UPSTREAM = 0x500, /* 0x300: API source, 0x400: proxy (main.c) */
	FWD_OPT_RESOLV_CONF,
	FWD_OPT_STUB_DOMAIN,
	FWD_OPT_POLICY,
	FWD_OPT_TIMEOUT,
	FWD_OPT_MAX_CONCURRENT,
	FWD_OPT_ALLOW_RECURSION,
	FWD_OPT_CACHE_SIZE,
	FWD_OPT_CACHE_MAX_TTL,
	FWD_OPT_CACHE_MAX_NEG_TTL,
	FWD_OPT_CACHE_SERVFAIL_TTL,
	FWD_OPT_SERVE_STALE,
	FWD_OPT_NO_PREFETCH,
	FWD_OPT_AUTOPATH,
	FWD_OPT_LAST = FWD_OPT_AUTOPATH,
};

/* Entries for the program's getopt_long table. */
#define FORWARD_LONG_OPTIONS                                                                       \
	{"upstream", required_argument, NULL, FWD_OPT_UPSTREAM},                                   \
	    {"resolv-conf", required_argument, NULL, FWD_OPT_RESOLV_CONF},                         \
	    {"stub-domain", required_argument, NULL, FWD_OPT_STUB_DOMAIN},                         \
	    {"policy", required_argument, NULL, FWD_OPT_POLICY},                                   \
	    {"upstream-timeout", required_argument, NULL, FWD_OPT_TIMEOUT},                        \
	    {"max-concurrent", required_argument, NULL, FWD_OPT_MAX_CONCURRENT},                   \
	    {"allow-recursion", required_argument, NULL, FWD_OPT_ALLOW_RECURSION},                 \
	    {"cache-size", required_argument, NULL, FWD_OPT_CACHE_SIZE},                           \
	    {"cache-max-ttl", required_argument, NULL, FWD_OPT_CACHE_MAX_TTL},                     \
	    {"cache-max-negative-ttl", required_argument, NULL, FWD_OPT_CACHE_MAX_NEG_TTL},        \
	    {"cache-servfail-ttl", required_argument, NULL, FWD_OPT_CACHE_SERVFAIL_TTL},           \
	    {"serve-stale", required_argument, NULL, FWD_OPT_SERVE_STALE},                         \
	    {"no-prefetch", no_argument, NULL, FWD_OPT_NO_PREFETCH},                               \
	{                                                                                          \
		"autopath", no_argument, NULL, FWD_OPT_AUTOPATH                                    \
	}

#define FORWARD_USAGE                                                                              \
	"  --upstream ADDR[:PORT]  forward other names there, repeatable; 'none': answer "         \
	"REFUSED\n"                                                                                \
	"                          (default: the nameservers in --resolv-conf)\n"                  \
	"  --resolv-conf FILE      where default upstreams come from (default /etc/resolv.conf)\n" \
	"  --stub-domain DOM=ADDR[:PORT][,ADDR...]  forward DOM to its own servers, repeatable\n"  \
	"  --policy P              sequential (default), round_robin or random\n"                  \
	"  --upstream-timeout MS   per attempt, before the next upstream (default 2000)\n"         \
	"  --max-concurrent N      upstream queries in flight, more get REFUSED (default 1000)\n"  \
	"  --allow-recursion CIDR  clients that may use forwarding, repeatable (default:\n"        \
	"                          loopback, 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7)\n"  \
	"  --cache-size N|SIZE     entries (N) or memory (64M, 512K...) for forwarded answers;\n"  \
	"                          0 turns the cache off (default 32M)\n"                          \
	"  --cache-max-ttl S       cap on positive TTLs (default 3600)\n"                          \
	"  --cache-max-negative-ttl S  cap on NXDOMAIN/NODATA caching (default 1800)\n"            \
	"  --cache-servfail-ttl S  how long SERVFAIL is cached (default 5, 0: never)\n"            \
	"  --serve-stale S         answer expired entries up to S seconds old when every\n"        \
	"                          upstream fails (RFC 8767; default 0: off)\n"                    \
	"  --no-prefetch           do not refresh popular entries before they expire\n"            \
	"  --autopath              answer <name>.<ns>.svc.<zone> with a CNAME to <name>. and "     \
	"its\n"                                                                                    \
	"                          answer when nothing in the cluster can match\n"

void forward_options_init(struct forward_options *o);
/* Applies one option; on a bad value prints why to stderr and returns -EINVAL. */
int forward_option(struct forward_options *o, int code, const char *arg);

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
	uint64_t in_flight;
};

void forward_stats_get(struct forwarder *f, struct forward_stats *out);
/* NULL when the cache is off. */
struct cache *forward_cache(struct forwarder *f);
/* Upstream counters: upstream_stats_get(forward_upstreams(f), i, &st). */
struct upstream_set *forward_upstreams(struct forwarder *f);

#endif
