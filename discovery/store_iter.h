/* Internal to discovery/: walking the store by kind, and the small hash map the
 * store and the view share (byte-string keys, open addressing).
 *
 * Must never be included outside discovery/; model.h is the public interface. */
#ifndef SVCDNS_STORE_ITER_H
#define SVCDNS_STORE_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "discovery/model.h"

/* ---- hash map ---------------------------------------------------------------
 * Keys are copied (any bytes, explicit length); the value is one word. Hashes
 * are not kept (the store's maps hold hundreds of thousands of slots): growing
 * and removing hash the keys they move again. `gen`
 * is free for the caller: store_map_sweep() drops every slot whose gen differs,
 * which is how "keep what was used in this pass, forget the rest" is done. */
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

/* ---- changes since the last view ---------------------------------------------
 * What an incremental view build must look at: every store change marks the
 * Services it may affect, so that the view recomputes those and shares the
 * rest. Keys of `svcs` are "ns\0name" (the Service a changed Service or
 * EndpointSlice names, old and new versions); `nss` holds the namespace of
 * every changed object (its presence in the namespace list may change);
 * `pod_nss` those where a Pod changed (selector Services there may change).
 * The epoch grows on every reset, so that a view knows whether the changes are
 * relative to it. */
struct store_changes {
	struct store_map svcs;
	struct store_map nss;
	struct store_map pod_nss;
	uint64_t epoch;
};

/* An EndpointSlice the view serves: it names its Service and is not FQDN. */
static inline bool store_slice_served(const struct model_slice *sl)
{
	return sl->service && (sl->address_type == AF_INET || sl->address_type == AF_INET6);
}

const struct store_changes *store_changes(const struct model_store *st);
void store_changes_reset(struct model_store *st);
/* Whether any object (or a Namespace object) is in namespace ns. */
bool store_ns_present(const struct model_store *st, const char *ns);
/* Pods the view gives an address to (no status): they make every Pod change a
 * matter for the whole Pod address pool. */
size_t store_pods_unaddressed(const struct model_store *st);
const struct model_service *store_service_find(const struct model_store *st, const char *ns,
					       const char *name);
/* The served EndpointSlices naming Service ns/name, in no particular order;
 * valid until the store changes. A single one is returned through *one (the
 * result then points at it). */
const struct model_slice *const *store_service_slices(const struct model_store *st, const char *ns,
						      const char *name,
						      const struct model_slice **one, size_t *n);

#endif
