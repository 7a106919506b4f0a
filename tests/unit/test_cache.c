/* The forwarder's cache with a fake clock: expiry, serve-stale, LRU eviction
 * under an entry and a byte budget, SERVFAIL entries, prefetch, counters, and
 * several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "resolver/cache.h"
#include "wire/wire.h"

static uint16_t offs[FWD_MAX_RRS], got_offs[FWD_MAX_RRS];
static uint8_t buf[65536];

/* A key for "<label>.example." type `qtype`. */
static void key_for(struct fwd_key *k, const char *label, uint16_t qtype, uint8_t flags)
{
	size_t l = strlen(label);
	memset(k, 0, sizeof(*k));
	k->name[0] = (uint8_t)l;
	memcpy(k->name + 1, label, l);
	memcpy(k->name + 1 + l, "\7example", 9);
	k->name_len = (uint16_t)(1 + l + 9);
	k->qtype = qtype;
	k->qclass = DNS_C_IN;
	k->flags = flags;
	fwd_key_hash(k);
}

/* An answer to k with one A record of TTL `ttl` (and `pad` bytes of TXT). */
struct answer {
	uint8_t wire[2048];
	struct fwd_msg m;
};

static int build_answer(struct answer *a, const struct fwd_key *k, uint32_t ttl, size_t pad,
			uint16_t *o)
{
	uint8_t *w = a->wire;
	memset(w, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(w, 1);
	wire_hdr_set(w, WIRE_QR, true);
	wire_hdr_set(w, WIRE_RD, true);
	wire_hdr_set(w, WIRE_RA, true);
	wire_hdr_set_count(w, WIRE_QD, 1);
	wire_hdr_set_count(w, WIRE_AN, 1);
	size_t n = WIRE_HDR_LEN;
	memcpy(w + n, k->name, k->name_len);
	n += k->name_len;
	wire_wr16(w + n, k->qtype);
	wire_wr16(w + n + 2, DNS_C_IN);
	n += 4;
	uint16_t rdlen = pad ? (uint16_t)pad : 4;
	/* owner: a pointer to the question's name */
	wire_wr16(w + n, 0xC000 | WIRE_HDR_LEN);
	wire_wr16(w + n + 2, pad ? DNS_T_TXT : DNS_T_A);
	wire_wr16(w + n + 4, DNS_C_IN);
	wire_wr32(w + n + 6, ttl);
	wire_wr16(w + n + 10, rdlen);
	n += 12;
	memset(w + n, pad ? 'x' : 7, rdlen);
	if (pad)
		w[n] = (uint8_t)(pad - 1); /* one TXT string */
	n += rdlen;
	return fwd_msg_parse(w, n, k, 1, o, &a->m);
}

static void make_answer(struct answer *a, const struct fwd_key *k, uint32_t ttl, size_t pad)
{
	assert_int_equal(build_answer(a, k, ttl, pad, offs), 0);
}

static struct cache *new_cache(size_t bytes, size_t entries, uint32_t stale, bool prefetch)
{
	struct cache_config cfg = {.max_bytes = bytes,
				   .max_entries = entries,
				   .stale_s = stale,
				   .prefetch = prefetch,
				   .threads = 4};
	struct cache *c = NULL;
	assert_int_equal(cache_new(&cfg, &c), 0);
	return c;
}

static enum cache_result get(struct cache *c, const struct fwd_key *k, uint64_t now, bool stale,
			     struct cache_hit *h)
{
	return cache_get(c, k, now, stale, 0, buf, sizeof(buf), got_offs, h);
}

static void test_expiry(void **state)
{
	(void)state;
	struct cache *c = new_cache(1 << 20, 0, 0, false);
	struct fwd_key k, k_aaaa, k_do;
	struct answer a;
	struct cache_hit h;
	key_for(&k, "www", DNS_T_A, 0);
	key_for(&k_aaaa, "www", DNS_T_AAAA, 0);
	key_for(&k_do, "www", DNS_T_A, FWD_KEY_DO);
	make_answer(&a, &k, 60, 0);

	static const struct {
		uint64_t now;
		enum cache_result want;
		uint32_t age;
	} cases[] = {
	    {1000, CACHE_FRESH, 0},   {1999, CACHE_FRESH, 0}, {2000, CACHE_FRESH, 1},
	    {60999, CACHE_FRESH, 59}, {61000, CACHE_MISS, 0}, {70000, CACHE_MISS, 0},
	};
	assert_int_equal(cache_put(c, &k, &a.m, CACHE_POSITIVE, 60, 1000), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum cache_result r = get(c, &k, cases[i].now, false, &h);
		if (r != cases[i].want)
			fail_msg("at %llu ms: got %d, want %d", (unsigned long long)cases[i].now, r,
				 cases[i].want);
		if (r == CACHE_FRESH) {
			assert_int_equal(h.ttl.age, cases[i].age);
			assert_int_equal(h.ttl.cap, 60);
			assert_int_equal(h.msg.len, a.m.len);
			assert_memory_equal(h.msg.wire, a.m.wire, a.m.len);
			assert_int_equal(h.msg.n_ttl, 1);
		}
	}
	/* Type and DO bit are part of the key. */
	cache_put(c, &k, &a.m, CACHE_POSITIVE, 60, 100000);
	assert_int_equal(get(c, &k_aaaa, 100000, false, &h), CACHE_MISS);
	assert_int_equal(get(c, &k_do, 100000, false, &h), CACHE_MISS);

	struct cache_stats st;
	cache_stats_get(c, &st);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.entries, 1);
	cache_free(c);
}

static void test_serve_stale(void **state)
{
	(void)state;
	struct cache *c = new_cache(1 << 20, 0, 100, false);
	struct fwd_key k;
	struct answer a;
	struct cache_hit h;
	key_for(&k, "stale", DNS_T_A, 0);
	make_answer(&a, &k, 10, 0);
	cache_put(c, &k, &a.m, CACHE_POSITIVE, 10, 0);
	assert_int_equal(get(c, &k, 5000, true, &h), CACHE_FRESH);
	assert_false(h.ttl.stale);
	/* Expired: a miss for the normal path, stale when every upstream failed. */
	assert_int_equal(get(c, &k, 20000, false, &h), CACHE_MISS);
	assert_int_equal(get(c, &k, 20000, true, &h), CACHE_STALE);
	assert_true(h.ttl.stale);
	assert_int_equal(get(c, &k, 109999, true, &h), CACHE_STALE);
	/* Past the window: gone for good. */
	assert_int_equal(get(c, &k, 110000, true, &h), CACHE_MISS);
	assert_int_equal(get(c, &k, 50000, true, &h), CACHE_MISS);
	struct cache_stats st;
	cache_stats_get(c, &st);
	assert_int_equal(st.stale_served, 2);
	assert_int_equal(st.entries, 0);
	cache_free(c);
}

static void test_servfail(void **state)
{
	(void)state;
	struct cache *c = new_cache(1 << 20, 0, 100, false);
	struct fwd_key k;
	struct answer a;
	struct cache_hit h;
	key_for(&k, "sf", DNS_T_A, 0);
	make_answer(&a, &k, 60, 0);
	/* A SERVFAIL never replaces a fresh answer ... */
	cache_put(c, &k, &a.m, CACHE_POSITIVE, 60, 0);
	cache_put(c, &k, NULL, CACHE_SERVFAIL, 5, 1000);
	assert_int_equal(get(c, &k, 2000, false, &h), CACHE_FRESH);
	assert_int_equal(h.kind, CACHE_POSITIVE);
	/* ... but an expired one, yes; and it is never served stale. */
	cache_put(c, &k, NULL, CACHE_SERVFAIL, 5, 70000);
	assert_int_equal(get(c, &k, 71000, false, &h), CACHE_FRESH);
	assert_int_equal(h.kind, CACHE_SERVFAIL);
	assert_int_equal(get(c, &k, 76000, true, &h), CACHE_MISS);
	/* Without an answer only SERVFAIL may be stored. */
	assert_int_equal(cache_put(c, &k, NULL, CACHE_POSITIVE, 5, 0), -E2BIG);
	cache_free(c);
}

/* Keys whose hashes land in one shard, so that its LRU order is visible. */
static size_t same_shard_keys(struct fwd_key *out, size_t want)
{
	size_t n = 0;
	uint32_t shard = 0;
	for (int i = 0; n < want && i < 10000; i++) {
		char label[16];
		snprintf(label, sizeof(label), "k%d", i);
		key_for(&out[n], label, DNS_T_A, 0);
		uint32_t s = out[n].hash >> 28 & 15;
		if (n == 0)
			shard = s;
		if (s == shard)
			n++;
	}
	return n;
}

static void test_lru_entries(void **state)
{
	(void)state;
	/* 32 entries over 16 shards: 2 per shard. */
	struct cache *c = new_cache(0, 32, 0, false);
	struct fwd_key k[3];
	struct answer a;
	struct cache_hit h;
	assert_int_equal(same_shard_keys(k, 3), 3);
	for (int i = 0; i < 2; i++) {
		make_answer(&a, &k[i], 60, 0);
		cache_put(c, &k[i], &a.m, CACHE_POSITIVE, 60, 0);
	}
	assert_int_equal(get(c, &k[0], 1, false, &h), CACHE_FRESH); /* k[1] is now the oldest */
	make_answer(&a, &k[2], 60, 0);
	cache_put(c, &k[2], &a.m, CACHE_POSITIVE, 60, 2);
	assert_int_equal(get(c, &k[0], 3, false, &h), CACHE_FRESH);
	assert_int_equal(get(c, &k[1], 3, false, &h), CACHE_MISS);
	assert_int_equal(get(c, &k[2], 3, false, &h), CACHE_FRESH);
	struct cache_stats st;
	cache_stats_get(c, &st);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.entries, 2);
	cache_free(c);
}

static void test_byte_budget(void **state)
{
	(void)state;
	/* 64 KiB over 16 shards; entries of about 1 KiB. */
	struct cache *c = new_cache(64 << 10, 0, 0, false);
	struct answer a;
	struct cache_stats st;
	for (int i = 0; i < 500; i++) {
		struct fwd_key k;
		char label[16];
		snprintf(label, sizeof(label), "b%d", i);
		key_for(&k, label, DNS_T_TXT, 0);
		make_answer(&a, &k, 60, 900);
		assert_int_equal(cache_put(c, &k, &a.m, CACHE_POSITIVE, 60, (uint64_t)i), 0);
		cache_stats_get(c, &st);
		assert_true(st.bytes <= 64 << 10);
	}
	assert_true(st.entries > 16 && st.entries < 64);
	assert_int_equal(st.entries + st.evictions, 500);
	/* Larger than a shard's whole budget: refused, nothing evicted for it. */
	struct fwd_key big;
	key_for(&big, "big", DNS_T_TXT, 0);
	struct cache *tiny = new_cache(16 * 600, 0, 0, false);
	make_answer(&a, &big, 60, 900);
	assert_int_equal(cache_put(tiny, &big, &a.m, CACHE_POSITIVE, 60, 0), -E2BIG);
	cache_free(tiny);
	cache_free(c);
}

static void test_prefetch(void **state)
{
	(void)state;
	struct cache *c = new_cache(1 << 20, 0, 0, true);
	struct fwd_key k, lonely;
	struct answer a;
	struct cache_hit h;
	key_for(&k, "popular", DNS_T_A, 0);
	key_for(&lonely, "lonely", DNS_T_A, 0);
	make_answer(&a, &k, 100, 0);
	cache_put(c, &k, &a.m, CACHE_POSITIVE, 100, 0);
	make_answer(&a, &lonely, 100, 0);
	cache_put(c, &lonely, &a.m, CACHE_POSITIVE, 100, 0);
	assert_int_equal(get(c, &k, 10000, false, &h), CACHE_FRESH);
	assert_false(h.prefetch); /* 90 s left */
	/* Inside the last 10 % of its TTL, asked twice: refresh it, once. */
	assert_int_equal(get(c, &k, 91000, false, &h), CACHE_FRESH);
	assert_true(h.prefetch);
	assert_int_equal(get(c, &k, 92000, false, &h), CACHE_FRESH);
	assert_false(h.prefetch);
	/* Asked once only: not popular. */
	assert_int_equal(get(c, &lonely, 95000, false, &h), CACHE_FRESH);
	assert_false(h.prefetch);
	cache_free(c);
}

struct hammer {
	struct cache *c;
	unsigned thread;
};

static void *hammer(void *arg)
{
	struct hammer *hm = arg;
	static _Thread_local uint8_t tbuf[65536];
	static _Thread_local uint16_t toffs[FWD_MAX_RRS];
	struct answer a;
	struct cache_hit h;
	for (int i = 0; i < 3000; i++) {
		struct fwd_key k;
		char label[16];
		snprintf(label, sizeof(label), "h%d", i % 200);
		key_for(&k, label, DNS_T_A, 0);
		if (cache_get(hm->c, &k, (uint64_t)i, false, hm->thread, tbuf, sizeof(tbuf), toffs,
			      &h) == CACHE_MISS) {
			if (build_answer(&a, &k, 1, 0, toffs) < 0)
				return (void *)1;
			cache_put(hm->c, &k, &a.m, CACHE_POSITIVE, 1, (uint64_t)i);
		} else if (memcmp(h.msg.wire + 12, k.name, k.name_len) != 0) {
			return (void *)1; /* another key's data */
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	/* Small enough to evict all the time. */
	struct cache *c = new_cache(0, 64, 0, true);
	pthread_t t[4];
	struct hammer hm[4];
	for (unsigned i = 0; i < 4; i++) {
		hm[i] = (struct hammer){c, i};
		pthread_create(&t[i], NULL, hammer, &hm[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	struct cache_stats st;
	cache_stats_get(c, &st);
	assert_int_equal(st.hits + st.misses, 4 * 3000);
	assert_true(st.entries <= 64);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expiry),	cmocka_unit_test(test_serve_stale),
	    cmocka_unit_test(test_servfail),	cmocka_unit_test(test_lru_entries),
	    cmocka_unit_test(test_byte_budget), cmocka_unit_test(test_prefetch),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
