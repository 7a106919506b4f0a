/* The snapshot's published tables: what a name's node holds and how it is laid
 * out, the hash tables of names (a base shared by a line of incremental
 * builds, an overlay per build), and the zones they belong to.
 *
 * A build collects names as build nodes (tmp arena: RRsets, cut, ...); zb_finish
 * renders each into a compact published node in the output arena: flags, the
 * name, and the rendered answers inline. The published tables are an immutable
 * base table, shared by a line of incremental snapshots, plus a small overlay
 * per snapshot holding the names added or replaced since the base was made and
 * tombstones for the names removed. Lookups look in the overlay first, and only
 * when it is not empty; once the overlay grows past a fraction of the base the
 * two are merged into a new base, so a build costs what it changes, not what
 * the snapshot holds.
 *
 * Internal to zones/: the builder's files write these, lookup.c reads them on
 * the query path. Must never: be changed once zb_finish hands the tables over
 * (readers on other threads hold them without a lock); the inline readers
 * here allocate nothing and take no lock. Written by the control thread only. */
#ifndef SVCDNS_ZONES_TABLES_H
#define SVCDNS_ZONES_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

enum {
	NF_APEX = 1,
	NF_CUT = 2,	  /* delegation point (NS below an apex) */
	NF_BELOW_CUT = 4, /* glue or occluded data under a delegation */
	NF_WILD_CHILD = 8,
	NF_POD_ROOT = 16,
	NF_WILDCARD = 32, /* the node's first label is '*' */
	NF_CNAME = 64,
	NF_GONE = 128, /* an overlay tombstone: the name was removed */
};

/* A published name. Layout, 8-byte aligned:
 *   this header, the name's first `own` bytes, padding to 8,
 *   when own < len: the node of the rest of the name (its parent),
 *   const struct zone_answer *ans[n_ans + extras], uint16_t types[n_ans].
 * A name keeps only its first label and points at its parent's node, which
 * every name in a zone has (empty non-terminals included): names are most of
 * a snapshot's bytes otherwise. The apex, CHAOS names and tombstones keep the
 * whole name. A parent outlives its children: an incremental build points at
 * older nodes, whose arenas its snapshot holds.
 * ans[0] also answers ANY (RFC 8482: one RRset, already rendered). The extras
 * follow the typed answers: the referral when NF_CUT or NF_BELOW_CUT, then the
 * CNAME chain's default answer when NF_CNAME. */
struct zone_node {
	uint16_t n_ans;
	uint8_t len;
	uint8_t flags;
	uint8_t zidx; /* 1 + index into tables.zones; 0: no zone (CHAOS names) */
	uint8_t own;  /* bytes of the name stored here */
	uint8_t name[];
};

/* The one type a coming name's node holds (RR type 0 is reserved, never
 * data): lookups answer it with its zone's current `not_ready` answer, for
 * every type, so the SOA's serial is the snapshot's. */
#define ZONE_T_COMING 0

/* The whole name of a node whose name is all its own (build nodes). */
#define NODE_NAME(n) ((const uint8_t *)(n)->name)

static inline size_t node_up_off(size_t own)
{
	return (offsetof(struct zone_node, name) + own + 7u) & ~(size_t)7u;
}

static inline size_t node_layout_ans_off(size_t len, size_t own)
{
	return node_up_off(own) + (own < len ? sizeof(void *) : 0);
}

static inline size_t node_ans_off(const struct zone_node *n)
{
	return node_layout_ans_off(n->len, n->own);
}

static inline const struct zone_node *node_up(const struct zone_node *n)
{
	const struct zone_node *up;
	memcpy(&up, (const uint8_t *)n + node_up_off(n->own), sizeof(up));
	return up;
}

/* Equality of short byte runs without a call: labels are a few bytes, and
 * this runs for every name a query looks up. */
static inline bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t x, y;
	for (; n >= 8; a += 8, b += 8, n -= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
	}
	if (n >= 4) {
		uint32_t u, v;
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		if (u != v)
			return false;
		a += 4;
		b += 4;
		n -= 4;
	}
	for (; n; a++, b++, n--)
		if (*a != *b)
			return false;
	return true;
}

/* Whether a node's name is `key` (whose length the caller has checked). */
static inline bool node_name_eq(const struct zone_node *n, const uint8_t *key)
{
	for (;;) {
		if (!bytes_eq(n->name, key, n->own))
			return false;
		if (n->own == n->len)
			return true;
		key += n->own;
		n = node_up(n);
	}
}

/* Writes a node's whole name to out[DNAME_MAX]. */
static inline void node_name_copy(const struct zone_node *n, uint8_t *out)
{
	for (;;) {
		memcpy(out, n->name, n->own);
		if (n->own == n->len)
			return;
		out += n->own;
		n = node_up(n);
	}
}

static inline unsigned node_extras(uint8_t flags)
{
	return !!(flags & (NF_CUT | NF_BELOW_CUT)) + !!(flags & NF_CNAME);
}

static inline const struct zone_answer *const *node_ans(const struct zone_node *n)
{
	return (const struct zone_answer *const *)((const uint8_t *)n + node_ans_off(n));
}

static inline const uint16_t *node_types(const struct zone_node *n)
{
	return (const uint16_t *)(node_ans(n) + n->n_ans + node_extras(n->flags));
}

static inline bool node_is_coming(const struct zone_node *n)
{
	return n->n_ans == 1 && node_types(n)[0] == ZONE_T_COMING;
}

static inline const struct zone_answer *node_referral(const struct zone_node *n)
{
	return node_ans(n)[n->n_ans];
}

static inline const struct zone_answer *node_cname_default(const struct zone_node *n)
{
	return node_ans(n)[n->n_ans + !!(n->flags & (NF_CUT | NF_BELOW_CUT))];
}

static inline const struct zone_answer *node_answer(const struct zone_node *n, uint16_t qtype)
{
	const uint16_t *types = node_types(n);
	for (uint16_t i = 0; i < n->n_ans; i++)
		if (types[i] == qtype)
			return node_ans(n)[i];
	if (qtype == DNS_T_ANY && n->n_ans)
		return node_ans(n)[0];
	return NULL;
}

struct zb_zone {
	uint8_t idx; /* position in tables.zones: the same in every build */
	uint8_t apex[DNAME_MAX];
	uint8_t apex_len;
	bool dynamic;
	uint32_t pod_ttl;	 /* NF_POD_ROOT in this zone (one per zone) */
	struct bnode *apex_node; /* the build that declared the zone only */
	const struct zone_answer *nxdomain;
	const struct zone_answer *nodata;
	const struct zone_answer *not_ready; /* NXDOMAIN of a coming name, when... */
	bool coming_names;		     /* ...the zone has them (zb_zone_coming_names) */
	uint32_t not_ready_ttl;
};

/* A slot: the node's address in the low 48 bits (what user space gets on
 * Linux x86-64 and arm64), 16 bits of its name's hash above them to skip
 * most names without reading them; 0 when empty. 8 bytes a slot. */
typedef uint64_t slot_t;

#define SLOT_PTR_BITS 48
#define SLOT_PTR_MASK (((uint64_t)1 << SLOT_PTR_BITS) - 1)

static inline slot_t slot_make(uint32_t hash, const void *node)
{
	return (uint64_t)(hash & 0xFFFFu) << SLOT_PTR_BITS | (uint64_t)(uintptr_t)node;
}

static inline const struct zone_node *slot_node(slot_t s)
{
	return (const struct zone_node *)(uintptr_t)(s & SLOT_PTR_MASK);
}

static inline bool slot_fits(const void *node)
{
	return ((uint64_t)(uintptr_t)node & ~SLOT_PTR_MASK) == 0;
}

/* Open addressing with linear probing; any capacity (a hash is mapped onto
 * [0, cap) by multiplication), so a table built at once can be sized to a
 * load of 0.7 rather than to the next power of two. The hash of a name
 * already in the table (to move it) comes from its build node in a build's
 * tables, and is computed again from the name in published ones. */
struct htab {
	slot_t *slots;
	uint32_t cap;
	uint32_t n;
	bool build; /* holds build nodes */
};

struct base {
	struct htab names, chaos;
	unsigned refs; /* tables sharing it (control thread only) */
};

#define MAX_ZONES 72

struct tables {
	struct base *base; /* NULL while a full build runs */
	struct htab over, chaos_over;
	size_t n_names;
	struct zb_zone *zones[MAX_ZONES];
	uint8_t n_zones;
};

#define ZONE(t, n) ((t)->zones[(n)->zidx - 1])

static inline uint32_t slot_home(uint32_t hash, uint32_t cap)
{
	return (uint32_t)(((uint64_t)hash * cap) >> 32);
}

static inline slot_t *htab_slot(const struct htab *h, const uint8_t *key, size_t len, uint32_t hash)
{
	if (!h->slots)
		return NULL;
	uint64_t tag = (uint64_t)(hash & 0xFFFFu) << SLOT_PTR_BITS;
	for (uint32_t i = slot_home(hash, h->cap);;) {
		slot_t s = h->slots[i];
		if (!s)
			return NULL;
		if ((s & ~SLOT_PTR_MASK) == tag && slot_node(s)->len == len &&
		    node_name_eq(slot_node(s), key))
			return &h->slots[i];
		if (++i == h->cap)
			i = 0;
	}
}

static inline const struct zone_node *htab_find(const struct htab *h, const uint8_t *key,
						size_t len, uint32_t hash)
{
	const slot_t *s = htab_slot(h, key, len, hash);
	return s ? slot_node(*s) : NULL;
}

/* A published name: the overlay decides when it has the name, else the base. */
static inline const struct zone_node *layered_find(const struct htab *base, const struct htab *over,
						   const uint8_t *key, size_t len, uint32_t hash)
{
	if (over->n) {
		const struct zone_node *n = htab_find(over, key, len, hash);
		if (n)
			return (n->flags & NF_GONE) ? NULL : n;
	}
	return htab_find(base, key, len, hash);
}

/* Adds a name that is not in the table, into a table with room for it. */
static inline void htab_put_nogrow(struct htab *h, uint32_t hash, const struct zone_node *n)
{
	uint32_t i = slot_home(hash, h->cap);
	while (h->slots[i])
		if (++i == h->cap)
			i = 0;
	h->slots[i] = slot_make(hash, n);
	h->n++;
}

/* ---- hash tables (htab.c) -------------------------------------------------- */

int htab_init(struct htab *h, uint32_t cap);
/* A table's capacity for n names at a load of about 0.7. */
uint32_t htab_cap_for(size_t n);
size_t htab_bytes(const struct htab *h);
int htab_grow(struct htab *h, uint32_t cap);
/* Adds a name that is not in the table. */
int htab_put(struct htab *h, uint32_t hash, const struct zone_node *n);
/* Adds a name or replaces the node the table has for it. */
int htab_replace(struct htab *h, const uint8_t *key, size_t len, uint32_t hash,
		 const struct zone_node *n);
void htab_remove(struct htab *h, const uint8_t *key, size_t len, uint32_t hash);
int htab_copy(struct htab *dst, const struct htab *src);

#endif
