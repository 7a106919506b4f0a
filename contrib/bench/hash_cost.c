/* What hashing one forwarded name costs: the cache key's hash as it was
 * (unkeyed dname_hash and a 32-bit mix) against the keyed fwd_key_hash
 * (SipHash-1-3, common/shash.h), over a 30-byte name. Each hash feeds a byte
 * of the next name, so the loop measures one hash's latency, as a query
 * pays it, not several overlapped. Both are calls, as in the daemon.
 *
 *   cc -O2 -I. -o /tmp/hash_cost contrib/bench/hash_cost.c common/shash.c \
 *      common/log.c resolver/forward_msg.c wire/dname.c -lpthread
 *   /tmp/hash_cost [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/shash.h"
#include "resolver/forward_msg.h"
#include "wire/dname.h"

__attribute__((noipa)) static uint32_t old_key_hash(const struct fwd_key *k)
{
	uint32_t h = dname_hash(k->name, k->name_len);
	h ^= (uint32_t)k->qtype * 0x9E3779B1u;
	h ^= (uint32_t)k->qclass << 16 ^ (uint32_t)k->flags << 24;
	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 12;
	return h;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* a busy machine: time on the CPU only */
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 50000000;
	if (rounds <= 0 || shash_init() < 0)
		return 1;
	struct fwd_key k;
	memset(&k, 0, sizeof(k));
	/* www.example-shop.example.org.: 30 bytes in wire form */
	int len = dname_from_text("www.example-shop.example.org", k.name, sizeof(k.name));
	if (len != 30)
		return 1;
	k.name_len = (uint16_t)len;
	k.qtype = 1;
	k.qclass = 1;

	/* Whole words change, so that the next load is forwarded from the store
	 * (a byte store under a word load would stall and be timed too). */
	uint64_t word;
	memcpy(&word, k.name + 8, 8);
	for (int pass = 0; pass < 3; pass++) {
		uint32_t h = 0;
		double t0 = now_ns();
		for (long i = 0; i < rounds; i++) {
			uint64_t w = word ^ (h & 15);
			memcpy(k.name + 8, &w, 8);
			h = old_key_hash(&k);
		}
		double t1 = now_ns();
		for (long i = 0; i < rounds; i++) {
			uint64_t w = word ^ (k.hash & 15);
			memcpy(k.name + 8, &w, 8);
			fwd_key_hash(&k);
		}
		double t2 = now_ns();
		printf("pass %d: unkeyed %.2f ns, keyed (SipHash-1-3) %.2f ns per 30-byte name "
		       "[%08x %08x]\n",
		       pass, (t1 - t0) / (double)rounds, (t2 - t1) / (double)rounds, h, k.hash);
	}
	return 0;
}
