/* A small hash map from byte-string keys to one word, open addressing with
 * linear probes and backward-shift removal: the allocator's sticky values and
 * notes, the view's label index, the store's change record and the API
 * reflectors' resourceVersion index all use it.
 *
 * Owns: its slots and the copies of its keys. Must never: know what the keys
 * or values mean. Not thread-safe: each map belongs to one thread at a time.
 * Internal to discovery/. */
#ifndef SVCDNS_STORE_MAP_H
#define SVCDNS_STORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys are copied (any bytes, explicit length); the value is one word. Hashes
 * are not kept (the store's maps hold hundreds of thousands of slots): growing
 * and removing hash the keys they move again. `gen` is free for the caller:
 * store_map_sweep() drops every slot whose gen differs, which is how "keep
 * what was used in this pass, forget the rest" is done. */
struct store_map_slot {
	char *key; /* NULL: empty slot; NUL-terminated copy, stable while present */
	uintptr_t val;
	uint32_t klen; /* keys are names: far below 4 GiB (inserting longer fails) */
	uint32_t gen;
};

struct store_map {
	struct store_map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

/* Stable across runs and builds: allocations hash names with it. */
uint64_t store_hash(const void *data, size_t len);

void store_map_init(struct store_map *m);
void store_map_clear(struct store_map *m);
struct store_map_slot *store_map_find(const struct store_map *m, const void *key, size_t klen);
/* Finds the key or adds it (val 0, gen 0). *created tells which. The slot
 * pointer is valid until the next insert or removal. Returns 0 or -ENOMEM. */
int store_map_insert(struct store_map *m, const void *key, size_t klen,
		     struct store_map_slot **slot, bool *created);
void store_map_remove(struct store_map *m, const void *key, size_t klen);
void store_map_sweep(struct store_map *m, uint32_t gen);

#endif
