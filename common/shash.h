/* The keyed hash for every table whose keys a client chooses: names asked
 * (the forwarder's cache, its table of queries in flight, response rate
 * limiting) and addresses (the per-source share of a UDP batch, the proxy's
 * UDP flows and session affinity). SipHash-1-3 with a 128-bit key drawn once
 * per process from the kernel's random pool: without the key nobody can
 * compute which bucket a name lands in, so crafted names cannot pile into one
 * chain and turn each lookup into a walk of all of them.
 *
 * Owns: the process's key. Must never: change the key once a table was
 * built with it (every table would lose its entries), or serve a table that
 * must hash alike in another process or run (the key differs every run).
 * Threads: shash_init and shash_set_key on the control thread before the
 * workers start (shash_init again later is a no-op); shash_bytes and
 * shash_u64 from any thread, without locks. */
#ifndef SVCDNS_SHASH_H
#define SVCDNS_SHASH_H

#include <stddef.h>
#include <stdint.h>

#define SHASH_KEY_SIZE 16

/* Fills the key from getrandom() the first time; later calls, and calls after
 * shash_set_key, return 0 and change nothing. Returns -errno (and logs) when
 * no random bytes can be had: nothing should be built on a key anyone can
 * guess. Table constructors call it too, so a table is never built on an
 * unset key. */
int shash_init(void);

/* A fixed key, for tests that must be repeatable; before any table exists. */
void shash_set_key(const uint8_t key[SHASH_KEY_SIZE]);

/* SipHash-1-3 of the eight bytes of `tag` (little-endian) followed by
 * data[0..len): the tag carries the small fixed-size fields of a key (type,
 * class, address family, port), so that callers need not copy them next to
 * the name or address. data may be NULL when len is 0. */
uint64_t shash_bytes(uint64_t tag, const void *data, size_t len);

/* The hash of one word: shash_bytes(v, NULL, 0). */
uint64_t shash_u64(uint64_t v);

#endif
