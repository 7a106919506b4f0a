/* The sharded answer cache: a hash table and an LRU list per shard, one mutex
 * per shard held only for a lookup and one copy. See cache.h. */
#include "resolver/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/shash.h"
#include "wire/wire.h"

#define N_SHARDS	    16 /* a power of two; enough that 2..16 workers rarely meet */
#define MIN_BUCKETS	    64
#define PREFETCH_MIN_HITS   2	 /* "popular": asked again since it was stored */
#define PREFETCH_MIN_TTL_MS 2000 /* shorter TTLs are not worth a second query */

struct entry {
	struct entry *hnext;	     /* bucket chain */
	struct entry *lprev, *lnext; /* LRU list, most recent first */
	uint32_t hash;
	uint16_t qtype, qclass;
	uint8_t flags;
	uint8_t kind;
	bool prefetching;
	uint16_t name_len;
	uint32_t ttl; /* seconds from stored_ms */
	uint32_t hits;
	uint64_t stored_ms, expire_ms;
	size_t bytes; /* what this entry costs against the budget */
	/* the fwd_msg fields, without its pointers */
	uint16_t len, qend, an_end, an_ns_end, an, ns, ar, n_ttl, n_ttl_an_ns;
	uint8_t rcode;
	bool ad;
	uint8_t data[]; /* name, then wire, then the TTL offsets */
};

struct shard {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t n_buckets; /* a power of two */
	struct entry *lru_head, *lru_tail;
	size_t max_bytes, max_entries;
	/* Written under the lock, read without it by cache_stats_get. */
	atomic_size_t entries, bytes;
	atomic_uint_fast64_t evictions;
	char pad[64];
};

struct thread_stats {
	_Alignas(64) atomic_uint_fast64_t hits, misses, prefetches, stale_served;
};

struct cache {
	struct shard shards[N_SHARDS];
	struct thread_stats *stats;
	unsigned threads;
	uint32_t stale_ms_window;
	bool prefetch;
};

/* One writer per slot: a relaxed load and store, no locked instruction. */
static inline void stat_inc(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

int cache_new(const struct cache_config *cfg, struct cache **out)
{
	unsigned inited = 0;
	if (!cfg->max_bytes && !cfg->max_entries)
		return -EINVAL;
	/* Shards and buckets come from fwd_key_hash, which needs the key. */
	int ret = shash_init();
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->threads = cfg->threads ? cfg->threads : 1;
	c->stats = aligned_alloc(64, sizeof(*c->stats) * c->threads);
	if (!c->stats)
		goto fail;
	memset(c->stats, 0, sizeof(*c->stats) * c->threads);
	c->stale_ms_window = cfg->stale_s > 4000000 ? 4000000000u : cfg->stale_s * 1000u;
	c->prefetch = cfg->prefetch;
	for (unsigned i = 0; i < N_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		if (pthread_mutex_init(&s->lock, NULL) != 0)
			goto fail;
		inited++;
		/* Round up, so that a small budget still holds something per shard. */
		s->max_bytes = cfg->max_bytes ? (cfg->max_bytes + N_SHARDS - 1) / N_SHARDS : 0;
		s->max_entries =
		    cfg->max_entries ? (cfg->max_entries + N_SHARDS - 1) / N_SHARDS : 0;
		s->n_buckets = MIN_BUCKETS;
		s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
		if (!s->buckets)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	for (unsigned i = 0; i < inited; i++) {
		pthread_mutex_destroy(&c->shards[i].lock);
		free(c->shards[i].buckets);
	}
	free(c->stats);
	free(c);
	return ret;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < N_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		for (struct entry *e = s->lru_head, *next; e; e = next) {
			next = e->lnext;
			free(e);
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	free(c->stats);
	free(c);
}

static struct shard *shard_of(struct cache *c, uint32_t hash)
{
	return &c->shards[hash >> 28 & (N_SHARDS - 1)];
}

static bool entry_is(const struct entry *e, const struct fwd_key *k)
{
	return e->hash == k->hash && e->qtype == k->qtype && e->qclass == k->qclass &&
	       e->flags == k->flags && e->name_len == k->name_len &&
	       memcmp(e->data, k->name, k->name_len) == 0;
}

static struct entry **bucket_slot(struct shard *s, const struct fwd_key *k)
{
	struct entry **p = &s->buckets[k->hash & (s->n_buckets - 1)];
	while (*p && !entry_is(*p, k))
		p = &(*p)->hnext;
	return p;
}

static void lru_unlink(struct shard *s, struct entry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		s->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		s->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_push_front(struct shard *s, struct entry *e)
{
	e->lprev = NULL;
	e->lnext = s->lru_head;
	if (s->lru_head)
		s->lru_head->lprev = e;
	s->lru_head = e;
	if (!s->lru_tail)
		s->lru_tail = e;
}

/* Unlinks e from its bucket (found by walking it) and the LRU, and frees it. */
static void entry_remove(struct shard *s, struct entry *e)
{
	struct entry **p = &s->buckets[e->hash & (s->n_buckets - 1)];
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	lru_unlink(s, e);
	atomic_store_explicit(&s->entries,
			      atomic_load_explicit(&s->entries, memory_order_relaxed) - 1,
			      memory_order_relaxed);
	atomic_store_explicit(&s->bytes,
			      atomic_load_explicit(&s->bytes, memory_order_relaxed) - e->bytes,
			      memory_order_relaxed);
	free(e);
}

/* Doubles the bucket array when chains grow; failure only costs speed. */
static void maybe_grow(struct shard *s)
{
	size_t n = atomic_load_explicit(&s->entries, memory_order_relaxed);
	if (n <= s->n_buckets)
		return;
	size_t nb = s->n_buckets * 2;
	struct entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		for (struct entry *e = s->buckets[i], *next; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = nb;
}

static bool over_budget(const struct shard *s, size_t extra_bytes, size_t extra_entries)
{
	size_t bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed) + extra_bytes;
	size_t n = atomic_load_explicit(&s->entries, memory_order_relaxed) + extra_entries;
	return (s->max_bytes && bytes > s->max_bytes) || (s->max_entries && n > s->max_entries);
}

int cache_put(struct cache *c, const struct fwd_key *k, const struct fwd_msg *m,
	      enum cache_kind kind, uint32_t ttl, uint64_t now_ms)
{
	struct shard *s = shard_of(c, k->hash);
	size_t wire_len = m ? m->len : 0;
	size_t n_ttl = m ? m->n_ttl : 0;
	size_t data = k->name_len + wire_len + n_ttl * sizeof(uint16_t);
	size_t bytes = sizeof(struct entry) + data;
	if ((s->max_bytes && bytes > s->max_bytes) || (!m && kind != CACHE_SERVFAIL))
		return -E2BIG;
	/* Allocate outside the lock: other workers may be reading this shard. */
	struct entry *e = malloc(bytes);
	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->hash = k->hash;
	e->qtype = k->qtype;
	e->qclass = k->qclass;
	e->flags = k->flags;
	e->kind = (uint8_t)kind;
	e->name_len = k->name_len;
	e->ttl = ttl;
	e->stored_ms = now_ms;
	e->expire_ms = now_ms + (uint64_t)ttl * 1000u;
	e->bytes = bytes;
	memcpy(e->data, k->name, k->name_len);
	if (m) {
		e->len = m->len;
		e->qend = m->qend;
		e->an_end = m->an_end;
		e->an_ns_end = m->an_ns_end;
		e->an = m->an;
		e->ns = m->ns;
		e->ar = m->ar;
		e->n_ttl = m->n_ttl;
		e->n_ttl_an_ns = m->n_ttl_an_ns;
		e->rcode = m->rcode;
		e->ad = m->ad;
		memcpy(e->data + k->name_len, m->wire, m->len);
		memcpy(e->data + k->name_len + m->len, m->ttl_off, n_ttl * sizeof(uint16_t));
	} else {
		e->rcode = DNS_RCODE_SERVFAIL;
	}

	pthread_mutex_lock(&s->lock);
	struct entry **slot = bucket_slot(s, k);
	if (*slot) {
		struct entry *old = *slot;
		if (kind == CACHE_SERVFAIL && old->kind != CACHE_SERVFAIL &&
		    now_ms < old->expire_ms) {
			pthread_mutex_unlock(&s->lock);
			free(e);
			return 0;
		}
		entry_remove(s, old);
	}
	while (s->lru_tail && over_budget(s, bytes, 1)) {
		entry_remove(s, s->lru_tail);
		stat_inc(&s->evictions);
	}
	slot = &s->buckets[k->hash & (s->n_buckets - 1)];
	e->hnext = *slot;
	*slot = e;
	lru_push_front(s, e);
	atomic_store_explicit(&s->entries,
			      atomic_load_explicit(&s->entries, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&s->bytes,
			      atomic_load_explicit(&s->bytes, memory_order_relaxed) + bytes,
			      memory_order_relaxed);
	maybe_grow(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

enum cache_result cache_get(struct cache *c, const struct fwd_key *k, uint64_t now_ms,
			    bool allow_stale, unsigned thread, uint8_t *buf, size_t cap,
			    uint16_t *ttl_off, struct cache_hit *hit)
{
	struct thread_stats *ts = &c->stats[thread < c->threads ? thread : 0];
	struct shard *s = shard_of(c, k->hash);
	enum cache_result res = CACHE_MISS;

	pthread_mutex_lock(&s->lock);
	struct entry *e = *bucket_slot(s, k);
	if (!e)
		goto out;
	bool fresh = now_ms < e->expire_ms;
	if (!fresh && now_ms >= e->expire_ms + c->stale_ms_window) {
		entry_remove(s, e); /* past any use: make room now */
		goto out;
	}
	if (!fresh && (!allow_stale || e->kind == CACHE_SERVFAIL))
		goto out;
	if (e->len > cap)
		goto out;
	memcpy(buf, e->data + e->name_len, e->len);
	memcpy(ttl_off, e->data + e->name_len + e->len, e->n_ttl * sizeof(uint16_t));
	memset(hit, 0, sizeof(*hit));
	hit->kind = (enum cache_kind)e->kind;
	hit->msg = (struct fwd_msg){
	    .wire = buf,
	    .len = e->len,
	    .qend = e->qend,
	    .an_end = e->an_end,
	    .an_ns_end = e->an_ns_end,
	    .an = e->an,
	    .ns = e->ns,
	    .ar = e->ar,
	    .rcode = e->rcode,
	    .ad = e->ad,
	    .ttl_off = ttl_off,
	    .n_ttl = e->n_ttl,
	    .n_ttl_an_ns = e->n_ttl_an_ns,
	};
	hit->ttl.age = (uint32_t)((now_ms - e->stored_ms) / 1000u);
	hit->ttl.cap = e->ttl;
	hit->ttl.stale = !fresh;
	if (fresh) {
		e->hits++;
		uint64_t left = e->expire_ms - now_ms, whole = (uint64_t)e->ttl * 1000u;
		if (c->prefetch && !e->prefetching && e->kind != CACHE_SERVFAIL &&
		    e->hits >= PREFETCH_MIN_HITS && whole >= PREFETCH_MIN_TTL_MS &&
		    left * 10 <= whole) {
			e->prefetching = true;
			hit->prefetch = true;
		}
	}
	lru_unlink(s, e);
	lru_push_front(s, e);
	res = fresh ? CACHE_FRESH : CACHE_STALE;
out:
	pthread_mutex_unlock(&s->lock);
	if (res == CACHE_FRESH)
		stat_inc(&ts->hits);
	else if (res == CACHE_STALE)
		stat_inc(&ts->stale_served);
	else if (!allow_stale)
		stat_inc(&ts->misses);
	return res;
}

void cache_count_prefetch(struct cache *c, unsigned thread)
{
	stat_inc(&c->stats[thread < c->threads ? thread : 0].prefetches);
}

void cache_stats_get(struct cache *c, struct cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < N_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		out->entries += atomic_load_explicit(&s->entries, memory_order_relaxed);
		out->bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
		out->evictions += atomic_load_explicit(&s->evictions, memory_order_relaxed);
	}
	for (unsigned t = 0; t < c->threads; t++) {
		struct thread_stats *ts = &c->stats[t];
		out->hits += atomic_load_explicit(&ts->hits, memory_order_relaxed);
		out->misses += atomic_load_explicit(&ts->misses, memory_order_relaxed);
		out->prefetches += atomic_load_explicit(&ts->prefetches, memory_order_relaxed);
		out->stale_served += atomic_load_explicit(&ts->stale_served, memory_order_relaxed);
	}
}
