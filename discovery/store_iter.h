/* Internal to discovery/: walking the store by kind, and the small hash map the
 * store and the view share (byte-string keys, open addressing).
 *
 * Must never be included outside discovery/; model.h is the public interface. */
#ifndef SVCDNS_STORE_ITER_H
#define SVCDNS_STORE_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discovery/model.h"

/* ---- hash map ---------------------------------------------------------------
 * Keys are copied (any bytes, explicit length); the value is one word. `gen`
 * is free for the caller: store_map_sweep() drops every slot whose gen differs,
 * which is how "keep what was used in this pass, forget the rest" is done. */
struct store_map_slot {
	char *key; /* NULL: empty slot */
	size_t klen;
	uint64_t hash;
	uintptr_t val;
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

/* ---- iteration -----------------------------------------------------------
 * Visits every object of one kind, in no particular order. The store must not
 * change while an iterator is in use. */
struct model_store_iter {
	const struct model_store *st;
	enum model_kind kind;
	size_t src;
	size_t i;
};

void model_store_iter_init(struct model_store_iter *it, const struct model_store *st,
			   enum model_kind kind);
const struct model_object *model_store_iter_next(struct model_store_iter *it);
size_t model_store_count(const struct model_store *st, enum model_kind kind);

#endif
