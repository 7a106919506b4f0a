/* The hash map the store, the view, the allocator and the API reflectors
 * share: byte-string keys copied into the map, one word of value, a stable
 * hash (allocations start where a name hashes to). */
#include "discovery/store_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAP_MIN_CAP 16

uint64_t store_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* FNV's low bits are weak for short keys; the table and the allocators
	 * both reduce modulo a power of two, so finish with a full mix. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

void store_map_init(struct store_map *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->n = 0;
}

void store_map_clear(struct store_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	store_map_init(m);
}

static size_t slot_home(const struct store_map_slot *s, size_t mask)
{
	return (size_t)store_hash(s->key, s->klen) & mask;
}

static size_t map_index(const struct store_map *m, const void *key, size_t klen, uint64_t hash)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)hash & mask;

	for (;;) {
		const struct store_map_slot *s = &m->slots[i];
		if (!s->key)
			return i;
		if (s->klen == klen && memcmp(s->key, key, klen) == 0)
			return i;
		i = (i + 1) & mask;
	}
}

struct store_map_slot *store_map_find(const struct store_map *m, const void *key, size_t klen)
{
	if (m->n == 0)
		return NULL;
	size_t i = map_index(m, key, klen, store_hash(key, klen));
	return m->slots[i].key ? &m->slots[i] : NULL;
}

static int map_grow(struct store_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : MAP_MIN_CAP;
	struct store_map_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct store_map_slot *s = &m->slots[i];
		if (!s->key)
			continue;
		size_t j = slot_home(s, cap - 1);
		while (slots[j].key)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int store_map_insert(struct store_map *m, const void *key, size_t klen,
		     struct store_map_slot **slot, bool *created)
{
	uint64_t hash = store_hash(key, klen);
	int ret;

	if (klen > UINT32_MAX)
		return -EINVAL;

	if (m->n) {
		size_t i = map_index(m, key, klen, hash);
		if (m->slots[i].key) {
			*slot = &m->slots[i];
			*created = false;
			return 0;
		}
	}
	/* Load factor at most 3/4 keeps linear probes short. */
	if ((m->n + 1) * 4 > m->cap * 3) {
		ret = map_grow(m);
		if (ret)
			return ret;
	}
	char *copy = malloc(klen + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key, klen);
	copy[klen] = '\0';
	size_t i = map_index(m, key, klen, hash);
	m->slots[i] = (struct store_map_slot){.key = copy, .klen = (uint32_t)klen};
	m->n++;
	*slot = &m->slots[i];
	*created = true;
	return 0;
}

/* Backward-shift deletion: later members of the probe run move up so that no
 * tombstones are needed and lookups stay correct. */
static void map_remove_at(struct store_map *m, size_t i)
{
	size_t mask = m->cap - 1;
	size_t j = i;

	free(m->slots[i].key);
	for (;;) {
		j = (j + 1) & mask;
		if (!m->slots[j].key)
			break;
		size_t home = slot_home(&m->slots[j], mask);
		/* The slot at j may fill the hole at i only if its home is not
		 * cyclically within (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		m->slots[i] = m->slots[j];
		i = j;
	}
	m->slots[i] = (struct store_map_slot){0};
	m->n--;
}

void store_map_remove(struct store_map *m, const void *key, size_t klen)
{
	if (m->n == 0)
		return;
	size_t i = map_index(m, key, klen, store_hash(key, klen));
	if (m->slots[i].key)
		map_remove_at(m, i);
}

void store_map_sweep(struct store_map *m, uint32_t gen)
{
	/* Removal only moves slots towards the hole being filled, so staying on
	 * index i after a removal visits every slot; a slot that wraps around
	 * from the start is simply looked at twice. */
	for (size_t i = 0; i < m->cap;) {
		if (m->slots[i].key && m->slots[i].gen != gen)
			map_remove_at(m, i);
		else
			i++;
	}
}
