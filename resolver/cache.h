/* The forwarder's cache: answers from upstream resolvers, kept for their TTL
 * in a fixed number of independently locked shards (Unbound's slabhash
 * shape), each with its own share of a memory or entry budget and its own
 * least-recently-used list. The shard and the bucket come from fwd_key_hash,
 * keyed per process, so that names a client makes up cannot be aimed at one.
 *
 * Owns: entries, their expiry (positive, negative per RFC 2308, SERVFAIL),
 * the serve-stale window (RFC 8767), the prefetch decision, and the counters.
 * Must never: hold a shard lock for more than one lookup and one copy (plus,
 * on insert, the evictions it forces and a rare doubling of its buckets),
 * allocate an entry under a lock, do I/O, log, or
 * sit in front of the zones svcdns serves itself (only forwarded answers go in).
 * Time is the caller's (milliseconds, monotonic), so tests use a fake clock. */
#ifndef SVCDNS_CACHE_H
#define SVCDNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resolver/forward_msg.h"

struct cache_config {
	size_t max_bytes;   /* memory for entries, 0: no byte bound */
	size_t max_entries; /* 0: no entry bound (one of the two must be set) */
	uint32_t stale_s;   /* keep entries this long past expiry for serve-stale; 0: off */
	bool prefetch;	    /* flag popular entries shortly before they expire */
	unsigned threads;   /* counter slots: callers pass 0..threads-1 */
};

enum cache_kind { CACHE_POSITIVE = 1, CACHE_NEGATIVE, CACHE_SERVFAIL };

struct cache;

int cache_new(const struct cache_config *cfg, struct cache **out);
void cache_free(struct cache *c);

/* Stores the answer `m` to `k` (NULL for CACHE_SERVFAIL) for `ttl` seconds,
 * replacing what was there, except that a SERVFAIL never replaces a fresh
 * answer. Returns 0, -E2BIG (larger than a shard's budget) or -ENOMEM. */
int cache_put(struct cache *c, const struct fwd_key *k, const struct fwd_msg *m,
	      enum cache_kind kind, uint32_t ttl, uint64_t now_ms);

enum cache_result { CACHE_MISS = 0, CACHE_FRESH, CACHE_STALE };

struct cache_hit {
	enum cache_kind kind;
	struct fwd_msg msg; /* points into the caller's buffers */
	struct fwd_ttl ttl; /* how to write TTLs: age, cap, stale */
	bool prefetch;	    /* popular and about to expire: the caller should refresh it */
};

/* Looks `k` up and copies the entry into `buf` (cap bytes) and `ttl_off`
 * (FWD_MAX_RRS entries), so that the caller renders without the lock.
 * With allow_stale, an expired entry inside the serve-stale window is
 * returned as CACHE_STALE (and counted as served stale). */
enum cache_result cache_get(struct cache *c, const struct fwd_key *k, uint64_t now_ms,
			    bool allow_stale, unsigned thread, uint8_t *buf, size_t cap,
			    uint16_t *ttl_off, struct cache_hit *hit);

struct cache_stats {
	uint64_t entries, bytes;
	uint64_t hits, misses, evictions, prefetches, stale_served;
};

/* Sums the per-thread and per-shard counters; safe from any thread. */
void cache_stats_get(struct cache *c, struct cache_stats *out);
/* The caller started a prefetch that cache_get asked for. */
void cache_count_prefetch(struct cache *c, unsigned thread);

#endif
