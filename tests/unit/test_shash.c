/* The keyed hash (common/shash.h): SipHash-1-3 vectors, the key set once, and
 * what it is for: names crafted to share one hash under the unkeyed dname_hash
 * (as the forwarder's cache and in-flight table used it) spread over the
 * cache's shards and buckets under the keyed fwd_key_hash, and land elsewhere
 * under another key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/shash.h"
#include "resolver/forward_msg.h"
#include "wire/dname.h"
#include "wire/wire.h"

/* The cache's layout (resolver/cache.c): 16 shards picked by bits 28..31, and at
 * least 64 buckets per shard picked by the low bits; the in-flight table of
 * resolver/forward.c has 1024 buckets, also the low bits. */
#define CACHE_SHARDS	  16
#define CACHE_MIN_BUCKETS 64
#define FQ_BUCKETS	  1024
#define N_NAMES		  256

static const uint8_t key_seq[SHASH_KEY_SIZE] = {0, 1, 2,  3,  4,  5,  6,  7,
						8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t key_zero[SHASH_KEY_SIZE];

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* shash_bytes hashes tag || data; with tag = bytes 00..07 and data = 08..,
 * the message is 00 01 02 ... as in the usual SipHash vector tables. These
 * values come from an implementation of SipHash written apart from this one,
 * itself checked against the published SipHash-2-4 vector and against
 * CPython's SipHash-1-3 (its hash() of bytes with PYTHONHASHSEED=0). */
static void test_vectors(void **state)
{
	(void)state;
	static const struct {
		size_t len; /* data bytes after the tag */
		uint64_t want;
	} cases[] = {
	    {0, 0x369095118d299a8eull},	 {1, 0x25a48eb36c063de4ull},  {7, 0xd320d86d2a519956ull},
	    {8, 0xcc4fdd1a7d908b66ull},	 {15, 0x525a0e7fdae6c123ull}, {22, 0x540f11d643c5e663ull},
	    {30, 0xb3f47496ae3a36a1ull}, {60, 0xed596abb6fcd2463ull},
	};
	uint8_t msg[8 + 60];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	shash_set_key(key_seq);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(shash_bytes(le64(msg), msg + 8, cases[i].len), cases[i].want);
	assert_int_equal(shash_u64(le64(msg)), cases[0].want);

	/* "\7example\3com\0" under the zero key: CPython's hash() of those bytes. */
	static const uint8_t name[] = "\7example\3com";
	shash_set_key(key_zero);
	assert_int_equal(shash_bytes(le64(name), name + 8, sizeof(name) - 8),
			 0xef7d9342d6775b6aull);
}

/* Runs first: nothing has set a key yet, so shash_init draws one. */
static void test_init_once(void **state)
{
	(void)state;
	static const uint8_t name[] = "\7example\3com";
	assert_int_equal(shash_init(), 0);
	uint64_t h = shash_bytes(le64(name), name + 8, sizeof(name) - 8);
	/* the zero key's value: a random key gives it once in 2^64 */
	assert_true(h != 0xef7d9342d6775b6aull);
	assert_int_equal(shash_init(), 0);
	assert_int_equal(shash_bytes(le64(name), name + 8, sizeof(name) - 8), h);
	/* a key set by a test is not replaced by a later shash_init */
	shash_set_key(key_seq);
	uint64_t fixed = shash_u64(42);
	assert_int_equal(shash_init(), 0);
	assert_int_equal(shash_u64(42), fixed);
}

/* fwd_key_hash as it was, over the unkeyed dname_hash. */
static uint32_t old_key_hash(const struct fwd_key *k)
{
	uint32_t h = dname_hash(k->name, k->name_len);
	h ^= (uint32_t)k->qtype * 0x9E3779B1u;
	h ^= (uint32_t)k->qclass << 16 ^ (uint32_t)k->flags << 24;
	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 12;
	return h;
}

/* dname_hash's state after its first word, for a name of `len` bytes. */
static uint64_t dname_hash_first_step(uint64_t len, uint64_t word)
{
	const uint64_t k = 0x9E3779B97F4A7C15ull;
	uint64_t h = (len * k ^ word) * k;
	return h ^ h >> 29;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* N_NAMES keys for "<15 octets>.example.com." type A that all have the same
 * dname_hash, the way an attacker would make them: the first label's first 7
 * octets are random, and its next 8 octets (dname_hash's second word) are
 * chosen to cancel the difference that the first word made to the state, so
 * that from the second word on every name leaves dname_hash in the same
 * state. The octets are any but A-Z (the cache keys lowercased names), which
 * a client may put in a label. */
static void crafted_keys(struct fwd_key *out)
{
	static const uint8_t tail[] = "\7example\3com";
	const size_t len = 16 + sizeof(tail);
	uint64_t target = 0, rng = 0x5DEECE66Dull;
	for (size_t n = 0; n < N_NAMES;) {
		uint8_t name[DNAME_MAX];
		name[0] = 15;
		for (int i = 1; i < 8; i++)
			name[i] = (uint8_t)('a' + rng_next(&rng) % 26);
		uint64_t h0 = dname_hash_first_step(len, le64(name));
		if (n == 0)
			target = h0 ^ le64((const uint8_t *)"a-second");
		uint64_t w1 = target ^ h0;
		bool upper = false;
		for (int i = 0; i < 8; i++) {
			name[8 + i] = (uint8_t)(w1 >> (8 * i));
			upper |= name[8 + i] >= 'A' && name[8 + i] <= 'Z';
		}
		if (upper)
			continue;
		memcpy(name + 16, tail, sizeof(tail));
		struct fwd_key *k = &out[n++];
		memset(k, 0, sizeof(*k));
		memcpy(k->name, name, len);
		k->name_len = (uint16_t)len;
		k->qtype = DNS_T_A;
		k->qclass = DNS_C_IN;
		assert_int_equal(dname_len(k->name), len);
	}
}

struct spread {
	unsigned max_cell;  /* most keys in one (shard, bucket) of the cache */
	unsigned max_shard; /* most keys in one shard */
	unsigned max_fq;    /* most keys in one bucket of the in-flight table */
};

static struct spread spread_of(const uint32_t *hash, size_t n)
{
	static unsigned cell[CACHE_SHARDS * CACHE_MIN_BUCKETS], shard[CACHE_SHARDS], fq[FQ_BUCKETS];
	memset(cell, 0, sizeof(cell));
	memset(shard, 0, sizeof(shard));
	memset(fq, 0, sizeof(fq));
	struct spread s = {0};
	for (size_t i = 0; i < n; i++) {
		uint32_t sh = hash[i] >> 28 & (CACHE_SHARDS - 1);
		unsigned *c = &cell[sh * CACHE_MIN_BUCKETS + (hash[i] & (CACHE_MIN_BUCKETS - 1))];
		if (++*c > s.max_cell)
			s.max_cell = *c;
		if (++shard[sh] > s.max_shard)
			s.max_shard = shard[sh];
		unsigned *f = &fq[hash[i] & (FQ_BUCKETS - 1)];
		if (++*f > s.max_fq)
			s.max_fq = *f;
	}
	return s;
}

static void test_crafted_names_spread(void **state)
{
	(void)state;
	static struct fwd_key keys[N_NAMES];
	static uint32_t old_h[N_NAMES], new_h[N_NAMES], other_h[N_NAMES];
	crafted_keys(keys);
	for (size_t i = 0; i < N_NAMES; i++) {
		/* really different names, all with one old hash */
		if (i)
			assert_memory_not_equal(keys[i].name, keys[0].name, keys[0].name_len);
		assert_int_equal(dname_hash(keys[i].name, keys[i].name_len),
				 dname_hash(keys[0].name, keys[0].name_len));
		old_h[i] = old_key_hash(&keys[i]);
	}
	struct spread old_s = spread_of(old_h, N_NAMES);
	assert_int_equal(old_s.max_cell, N_NAMES); /* one chain of them all, at any size */
	assert_int_equal(old_s.max_fq, N_NAMES);

	shash_set_key(key_seq);
	for (size_t i = 0; i < N_NAMES; i++) {
		fwd_key_hash(&keys[i]);
		new_h[i] = keys[i].hash;
	}
	/* 256 keys over 1024 cells, 16 shards and 1024 buckets: on average a
	 * quarter per cell, 16 per shard. The bounds are far past anything a
	 * uniform hash does (a cell of 8 comes once in millions of tables). */
	struct spread new_s = spread_of(new_h, N_NAMES);
	assert_in_range(new_s.max_cell, 1, 7);
	assert_in_range(new_s.max_shard, 1, 40);
	assert_in_range(new_s.max_fq, 1, 7);

	/* Another key, another table: the cells of one key say nothing about
	 * those of the next process. */
	static const uint8_t key_other[SHASH_KEY_SIZE] = {0xa5, 0x5a, 0x3c, 0xc3, 0x96, 0x69,
							  0x0f, 0xf0, 0x11, 0x22, 0x33, 0x44,
							  0x55, 0x66, 0x77, 0x88};
	shash_set_key(key_other);
	size_t moved = 0;
	for (size_t i = 0; i < N_NAMES; i++) {
		fwd_key_hash(&keys[i]);
		other_h[i] = keys[i].hash;
		uint32_t a = new_h[i], b = other_h[i];
		bool same_cell = (a >> 28) == (b >> 28) &&
				 (a & (CACHE_MIN_BUCKETS - 1)) == (b & (CACHE_MIN_BUCKETS - 1));
		moved += !same_cell;
	}
	struct spread other_s = spread_of(other_h, N_NAMES);
	assert_in_range(other_s.max_cell, 1, 7);
	assert_true(moved >= N_NAMES * 9 / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_once),
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_crafted_names_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
