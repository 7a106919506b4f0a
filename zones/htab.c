/* The hash tables of names: open addressing with linear probing over slots
 * that hold a node's address and a few bits of its hash. Growing, adding,
 * replacing and removing; finding is inline in tables.h. */
#include "zones/tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zones/build.h"

int htab_init(struct htab *h, uint32_t cap)
{
	h->slots = calloc(cap, sizeof(*h->slots));
	if (!h->slots)
		return -ENOMEM;
	h->cap = cap;
	h->n = 0;
	return 0;
}

uint32_t htab_cap_for(size_t n)
{
	size_t cap = n + n * 3 / 7 + 16;
	return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

size_t htab_bytes(const struct htab *h)
{
	return h->slots ? (size_t)h->cap * sizeof(*h->slots) : 0;
}

/* The hash of a name in the table: kept by build nodes, computed again from
 * the name of published ones. */
static uint32_t entry_hash(const struct htab *h, const struct zone_node *n)
{
	if (h->build)
		return BNODE(n)->hash;
	uint8_t name[DNAME_MAX];
	node_name_copy(n, name);
	return dname_hash(name, n->len);
}

int htab_grow(struct htab *h, uint32_t cap)
{
	struct htab nh;
	if (htab_init(&nh, cap) < 0)
		return -ENOMEM;
	nh.build = h->build;
	for (uint32_t i = 0; h->slots && i < h->cap; i++)
		if (h->slots[i])
			htab_put_nogrow(&nh, entry_hash(h, slot_node(h->slots[i])),
					slot_node(h->slots[i]));
	free(h->slots);
	*h = nh;
	return 0;
}

/* Adds a name that is not in the table. A load of at most 3/4 keeps misses
 * (NXDOMAIN, the common case under a search path) to a few probes. */
int htab_put(struct htab *h, uint32_t hash, const struct zone_node *n)
{
	if (!slot_fits(n))
		return -EOVERFLOW;
	if ((!h->slots || (size_t)(h->n + 1) * 4 > (size_t)h->cap * 3) &&
	    htab_grow(h, h->slots ? h->cap * 2 : 64) < 0)
		return -ENOMEM;
	htab_put_nogrow(h, hash, n);
	return 0;
}

int htab_replace(struct htab *h, const uint8_t *key, size_t len, uint32_t hash,
		 const struct zone_node *n)
{
	slot_t *s = htab_slot(h, key, len, hash);
	if (s && slot_fits(n)) {
		*s = slot_make(hash, n);
		return 0;
	}
	return s ? -EOVERFLOW : htab_put(h, hash, n);
}

/* Removes a name (backward-shift deletion keeps every probe sequence intact
 * without tombstones). */
void htab_remove(struct htab *h, const uint8_t *key, size_t len, uint32_t hash)
{
	slot_t *sl = htab_slot(h, key, len, hash);
	if (!sl)
		return;
	uint32_t i = (uint32_t)(sl - h->slots), j = i;
	for (;;) {
		if (++j == h->cap)
			j = 0;
		if (!h->slots[j])
			break;
		uint32_t home = slot_home(entry_hash(h, slot_node(h->slots[j])), h->cap);
		/* move j back into the hole at i unless its home lies in (i, j] */
		bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (between)
			continue;
		h->slots[i] = h->slots[j];
		i = j;
	}
	h->slots[i] = 0;
	h->n--;
}

int htab_copy(struct htab *dst, const struct htab *src)
{
	*dst = *src;
	dst->slots = NULL;
	if (!src->slots)
		return 0;
	dst->slots = malloc(htab_bytes(src));
	if (!dst->slots)
		return -ENOMEM;
	memcpy(dst->slots, src->slots, htab_bytes(src));
	return 0;
}
