/* Snapshot builder and lookup: RRsets in, prerendered wire answers and
 * open-addressing hash tables out (a base shared by incremental builds plus an
 * overlay of their changes). See builder.h for the contract. */
#include "zones/builder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "wire/dname.h"

/* ---- arena ---------------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(8) uint8_t data[];
};

struct arena {
	struct chunk *head;
	size_t total;
	unsigned refs; /* snapshots sharing it (control thread only) */
};

struct arena *arena_new(void)
{
	struct arena *a = calloc(1, sizeof(struct arena));
	if (a)
		a->refs = 1;
	return a;
}

void arena_retain(struct arena *a)
{
	a->refs++;
}

void arena_release(struct arena *a)
{
	if (a && --a->refs == 0)
		arena_free(a);
}

/* `align` is a power of two up to 8. */
static void *arena_alloc_raw(struct arena *a, size_t size, size_t align)
{
	struct chunk *c = a->head;
	size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
	if (!c || at > c->cap || c->cap - at < size) {
		/* Chunks double from 8 KiB to 256 KiB: an incremental build of
		 * one Service takes a few KiB, a full build many megabytes. */
		size_t next = a->head ? a->head->cap * 2 : (8u << 10);
		if (next > (256u << 10))
			next = 256u << 10;
		size_t cap = size > next ? size : next;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += sizeof(*c) + cap;
		at = 0;
	}
	void *p = c->data + at;
	c->used = at + size;
	return p;
}

void *arena_alloc(struct arena *a, size_t size)
{
	void *p = arena_alloc_raw(a, size, 8);
	if (p)
		memset(p, 0, size);
	return p;
}

size_t arena_bytes(const struct arena *a)
{
	return a->total;
}

void arena_free(struct arena *a)
{
	if (!a)
		return;
	for (struct chunk *c = a->head, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

/* ---- nodes and tables -----------------------------------------------------
 *
 * A build collects names as build nodes (tmp arena: RRsets, cut, ...); zb_finish
 * renders each into a compact published node in the output arena: flags, the
 * name, and the rendered answers inline. The published tables are an immutable
 * base table, shared by a line of incremental snapshots, plus a small overlay
 * per snapshot holding the names added or replaced since the base was made and
 * tombstones for the names removed. Lookups look in the overlay first, and only
 * when it is not empty; once the overlay grows past a fraction of the base the
 * two are merged into a new base, so a build costs what it changes, not what
 * the snapshot holds. */

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

struct rdata {
	struct rdata *next;
	uint16_t len;
	uint8_t d[];
};

struct rrset {
	struct rrset *next;
	uint16_t type;
	uint32_t ttl;
	uint32_t n;
	struct rdata *head, *tail;
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

/* The whole name of a node whose name is all its own (build nodes). */
#define NODE_NAME(n) ((const uint8_t *)(n)->name)

static size_t node_up_off(size_t own)
{
	return (offsetof(struct zone_node, name) + own + 7u) & ~(size_t)7u;
}

static size_t node_layout_ans_off(size_t len, size_t own)
{
	return node_up_off(own) + (own < len ? sizeof(void *) : 0);
}

static size_t node_ans_off(const struct zone_node *n)
{
	return node_layout_ans_off(n->len, n->own);
}

static const struct zone_node *node_up(const struct zone_node *n)
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
static bool node_name_eq(const struct zone_node *n, const uint8_t *key)
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
static void node_name_copy(const struct zone_node *n, uint8_t *out)
{
	for (;;) {
		memcpy(out, n->name, n->own);
		if (n->own == n->len)
			return;
		out += n->own;
		n = node_up(n);
	}
}

static unsigned node_extras(uint8_t flags)
{
	return !!(flags & (NF_CUT | NF_BELOW_CUT)) + !!(flags & NF_CNAME);
}

static const struct zone_answer *const *node_ans(const struct zone_node *n)
{
	return (const struct zone_answer *const *)((const uint8_t *)n + node_ans_off(n));
}

static const uint16_t *node_types(const struct zone_node *n)
{
	return (const uint16_t *)(node_ans(n) + n->n_ans + node_extras(n->flags));
}

static const struct zone_answer *node_referral(const struct zone_node *n)
{
	return node_ans(n)[n->n_ans];
}

static const struct zone_answer *node_cname_default(const struct zone_node *n)
{
	return node_ans(n)[n->n_ans + !!(n->flags & (NF_CUT | NF_BELOW_CUT))];
}

/* A name while a build collects it (tmp arena). Its header and name (a struct
 * zone_node with n_ans unused) follow it, so that the build's table holds the
 * same kind of pointer as the published ones. */
struct bnode {
	struct rrset *sets;
	struct bnode *cut;		    /* the highest NF_CUT node at or above it */
	const struct zone_answer *referral; /* on NF_CUT nodes */
	const struct zone_answer *chaos;    /* CHAOS names: their TXT answer */
	struct zone_node *pub;		    /* what zb_finish made of it */
	/* the parent: this build's, or an older build's published node */
	struct bnode *up;
	const struct zone_node *up_old;
	uint32_t hash;
};

#define BHDR(bn)   ((struct zone_node *)((bn) + 1))
#define BNODE(hdr) ((struct bnode *)(hdr)-1)

struct zb_zone {
	uint8_t idx; /* position in tables.zones: the same in every build */
	uint8_t apex[DNAME_MAX];
	uint8_t apex_len;
	bool dynamic;
	uint32_t pod_ttl;	 /* NF_POD_ROOT in this zone (one per zone) */
	struct bnode *apex_node; /* the build that declared the zone only */
	const struct zone_answer *nxdomain;
	const struct zone_answer *nodata;
};

/* A slot: the node's address in the low 48 bits (what user space gets on
 * Linux x86-64 and arm64), 16 bits of its name's hash above them to skip
 * most names without reading them; 0 when empty. 8 bytes a slot. */
typedef uint64_t slot_t;

#define SLOT_PTR_BITS 48
#define SLOT_PTR_MASK (((uint64_t)1 << SLOT_PTR_BITS) - 1)

static slot_t slot_make(uint32_t hash, const void *node)
{
	return (uint64_t)(hash & 0xFFFFu) << SLOT_PTR_BITS | (uint64_t)(uintptr_t)node;
}

static const struct zone_node *slot_node(slot_t s)
{
	return (const struct zone_node *)(uintptr_t)(s & SLOT_PTR_MASK);
}

static bool slot_fits(const void *node)
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

struct ans_slot {
	uint32_t hash;
	const struct zone_answer *a;
};

struct render;
static void render_free(struct render *r);

struct zb {
	struct arena *out; /* published nodes and answers: lives as long as the snapshot */
	struct arena *tmp; /* build nodes, rdata and RRsets: freed by zb_free */
	struct tables *t;
	bool incremental;	  /* t started from an older build's tables */
	bool finished;		  /* zb_finish handed the tables over */
	bool declared[MAX_ZONES]; /* zones this build declared */
	struct htab names, chaos; /* this build's nodes */
	/* the nodes this build made, in order: what zb_finish renders */
	struct bnode **fresh;
	size_t n_fresh, cap_fresh;
	/* identical answers are stored once (a Service's full and short names
	 * share their address and CHAOS answers, for one) */
	struct ans_slot *dedup;
	struct bnode *last; /* the node zb_rr_add added to last, in last_zone */
	/* names looked up lately: a Service's names share their parents and
	 * SRV targets, and the big table costs a cache miss a probe */
	struct bnode *ncache[1024];
	const struct zb_zone *last_zone;
	struct render *r; /* one rendering context, reused for every answer */
};

static uint32_t slot_home(uint32_t hash, uint32_t cap)
{
	return (uint32_t)(((uint64_t)hash * cap) >> 32);
}

static int htab_init(struct htab *h, uint32_t cap)
{
	h->slots = calloc(cap, sizeof(*h->slots));
	if (!h->slots)
		return -ENOMEM;
	h->cap = cap;
	h->n = 0;
	return 0;
}

/* A table's capacity for n names at a load of about 0.7. */
static uint32_t htab_cap_for(size_t n)
{
	size_t cap = n + n * 3 / 7 + 16;
	return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

static size_t htab_bytes(const struct htab *h)
{
	return h->slots ? (size_t)h->cap * sizeof(*h->slots) : 0;
}

static uint32_t entry_hash(const struct htab *h, const struct zone_node *n);

static slot_t *htab_slot(const struct htab *h, const uint8_t *key, size_t len, uint32_t hash)
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

static const struct zone_node *htab_find(const struct htab *h, const uint8_t *key, size_t len,
					 uint32_t hash)
{
	const slot_t *s = htab_slot(h, key, len, hash);
	return s ? slot_node(*s) : NULL;
}

static void htab_put_nogrow(struct htab *h, uint32_t hash, const struct zone_node *n)
{
	uint32_t i = slot_home(hash, h->cap);
	while (h->slots[i])
		if (++i == h->cap)
			i = 0;
	h->slots[i] = slot_make(hash, n);
	h->n++;
}

static int htab_grow(struct htab *h, uint32_t cap)
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
static int htab_put(struct htab *h, uint32_t hash, const struct zone_node *n)
{
	if (!slot_fits(n))
		return -EOVERFLOW;
	if ((!h->slots || (size_t)(h->n + 1) * 4 > (size_t)h->cap * 3) &&
	    htab_grow(h, h->slots ? h->cap * 2 : 64) < 0)
		return -ENOMEM;
	htab_put_nogrow(h, hash, n);
	return 0;
}

/* Adds a name or replaces the node the table has for it. */
static int htab_replace(struct htab *h, const uint8_t *key, size_t len, uint32_t hash,
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
static void htab_remove(struct htab *h, const uint8_t *key, size_t len, uint32_t hash)
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

static int htab_copy(struct htab *dst, const struct htab *src)
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

/* A published name: the overlay decides when it has the name, else the base. */
static const struct zone_node *layered_find(const struct htab *base, const struct htab *over,
					    const uint8_t *key, size_t len, uint32_t hash)
{
	if (over->n) {
		const struct zone_node *n = htab_find(over, key, len, hash);
		if (n)
			return (n->flags & NF_GONE) ? NULL : n;
	}
	return htab_find(base, key, len, hash);
}

static void base_release(struct base *bs)
{
	if (bs && --bs->refs == 0) {
		free(bs->names.slots);
		free(bs->chaos.slots);
		free(bs);
	}
}

struct zb *zb_new(struct arena *out)
{
	struct zb *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->out = out;
	b->names.build = b->chaos.build = true;
	b->tmp = arena_new();
	b->t = arena_alloc(out, sizeof(struct tables));
	if (!b->tmp || !b->t) {
		arena_free(b->tmp);
		free(b);
		return NULL;
	}
	return b;
}

void zb_free(struct zb *b)
{
	if (!b)
		return;
	if (!b->finished)
		zb_tables_free(b->t); /* the arena holding the nodes is the caller's */
	arena_free(b->tmp);
	free(b->names.slots);
	free(b->chaos.slots);
	free(b->dedup);
	render_free(b->r);
	free(b->fresh);
	free(b);
}

void zb_tables_free(void *tables)
{
	struct tables *t = tables;
	if (!t)
		return;
	free(t->over.slots);
	free(t->chaos_over.slots);
	t->over.slots = t->chaos_over.slots = NULL;
	base_release(t->base);
	t->base = NULL;
}

size_t zb_tables_bytes(const void *tables)
{
	const struct tables *t = tables;
	size_t n = htab_bytes(&t->over) + htab_bytes(&t->chaos_over);
	if (t->base)
		n += htab_bytes(&t->base->names) + htab_bytes(&t->base->chaos);
	return n;
}

static uint32_t entry_hash(const struct htab *h, const struct zone_node *n)
{
	if (h->build)
		return BNODE(n)->hash;
	uint8_t name[DNAME_MAX];
	node_name_copy(n, name);
	return dname_hash(name, n->len);
}

static struct bnode *bfind(const struct htab *h, const uint8_t *name, size_t len, uint32_t hash)
{
	const struct zone_node *n = htab_find(h, name, len, hash);
	return n ? BNODE(n) : NULL;
}

#define NCACHE(b, hash) (&(b)->ncache[(hash) & (sizeof((b)->ncache) / sizeof(void *) - 1)])

/* A name of this build in its zones. */
static struct bnode *bfind_name(struct zb *b, const uint8_t *name, size_t len, uint32_t hash)
{
	struct bnode **c = NCACHE(b, hash);
	if (*c && (*c)->hash == hash && BHDR(*c)->len == len &&
	    memcmp(BHDR(*c)->name, name, len) == 0)
		return *c;
	struct bnode *n = bfind(&b->names, name, len, hash);
	if (n)
		*c = n;
	return n;
}

/* A name an older build made and this one did not remove. */
static const struct zone_node *old_find(const struct zb *b, bool chaos, const uint8_t *name,
					size_t len, uint32_t hash)
{
	const struct tables *t = b->t;
	if (!t->base)
		return NULL;
	return chaos ? layered_find(&t->base->chaos, &t->chaos_over, name, len, hash)
		     : layered_find(&t->base->names, &t->over, name, len, hash);
}

static struct bnode *bnode_new(struct zb *b, struct htab *h, const uint8_t *name, size_t len,
			       uint32_t hash)
{
	struct bnode *bn =
	    arena_alloc(b->tmp, sizeof(*bn) + offsetof(struct zone_node, name) + len);
	if (!bn)
		return NULL;
	struct zone_node *hdr = BHDR(bn);
	memcpy(hdr->name, name, len);
	hdr->len = (uint8_t)len;
	hdr->own = (uint8_t)len;
	bn->hash = hash;
	if (name[0] == 1 && name[1] == '*')
		hdr->flags |= NF_WILDCARD;
	if (htab_put(h, hash, hdr) < 0)
		return NULL;
	if (b->n_fresh == b->cap_fresh) {
		size_t cap = b->cap_fresh ? b->cap_fresh * 2 : 1024;
		struct bnode **nf = realloc(b->fresh, cap * sizeof(*nf));
		if (!nf)
			return NULL;
		b->fresh = nf;
		b->cap_fresh = cap;
	}
	b->fresh[b->n_fresh++] = bn;
	if (h == &b->names)
		*NCACHE(b, hash) = bn;
	return bn;
}

static bool name_under(const uint8_t *name, size_t len, const uint8_t *apex, size_t apex_len)
{
	if (len < apex_len || memcmp(name + len - apex_len, apex, apex_len) != 0)
		return false;
	/* The match must start at a label boundary. */
	for (size_t i = 0; i < len; i += name[i] + 1u)
		if (i == len - apex_len)
			return true;
	return false;
}

int zb_zone_add(struct zb *b, const uint8_t *apex, struct zb_zone **out)
{
	size_t len = dname_len(apex);
	struct tables *t = b->t;
	uint8_t idx = 0;
	/* An incremental build declares the zones again, in the same order, so
	 * the index every older node carries still names the right zone. */
	for (idx = 0; idx < t->n_zones; idx++)
		if (t->zones[idx]->apex_len == len && memcmp(t->zones[idx]->apex, apex, len) == 0)
			break;
	if (idx < t->n_zones && b->declared[idx])
		return -EEXIST;
	if (idx == t->n_zones && (b->incremental || t->n_zones == MAX_ZONES))
		return b->incremental ? -EAGAIN : -ENOSPC;
	struct zb_zone *z = arena_alloc(b->out, sizeof(*z));
	if (!z)
		return -ENOMEM;
	memcpy(z->apex, apex, len);
	z->apex_len = (uint8_t)len;
	z->idx = idx;
	if (idx < t->n_zones)
		z->pod_ttl = t->zones[idx]->pod_ttl; /* marked by full builds only */
	/* The apex carries the SOA, whose serial changes with every build: a new
	 * apex node replaces the older one, its descendants stay. */
	uint32_t hash = dname_hash(apex, len);
	z->apex_node = bfind_name(b, apex, len, hash);
	if (!z->apex_node && !(z->apex_node = bnode_new(b, &b->names, apex, len, hash)))
		return -ENOMEM;
	BHDR(z->apex_node)->zidx = (uint8_t)(idx + 1);
	BHDR(z->apex_node)->flags |= NF_APEX;
	t->zones[idx] = z;
	b->declared[idx] = true;
	if (idx == t->n_zones)
		t->n_zones++;
	*out = z;
	return 0;
}

/* Creates the node and its empty non-terminal ancestors up to the apex. A node
 * already claimed by a deeper zone keeps that zone. In an incremental build
 * the node that receives data must be new: data on a name an older build
 * made (a PTR two Services share) needs a full build (-EAGAIN). *out is NULL
 * when the name is an older build's. */
static int node_in_zone(struct zb *b, struct zb_zone *z, const uint8_t *owner, size_t len,
			bool for_data, struct bnode **out)
{
	struct tables *t = b->t;
	struct bnode *leaf = NULL, *child = NULL;
	const uint8_t *p = owner;
	size_t l = len;
	*out = NULL;
	/* The first few names' slots are fetched together: each is a cache miss
	 * in a table of a million names, and they do not depend on each other. */
	uint32_t hs[4];
	size_t nh = 0;
	for (const uint8_t *q = owner; nh < 4; q += q[0] + 1u) {
		size_t ql = len - (size_t)(q - owner);
		if (ql < z->apex_len)
			break;
		hs[nh] = dname_hash(q, ql);
		if (b->names.slots)
			__builtin_prefetch(&b->names.slots[slot_home(hs[nh], b->names.cap)]);
		nh++;
		if (ql == z->apex_len)
			break;
	}
	for (size_t depth = 0; l >= z->apex_len; depth++) {
		uint32_t hash = depth < nh ? hs[depth] : dname_hash(p, l);
		struct bnode *n = bfind_name(b, p, l, hash);
		if (!n) {
			const struct zone_node *old = old_find(b, false, p, l, hash);
			if (old) {
				/* older and shared: it and its ancestors exist */
				if (!leaf && for_data)
					return -EAGAIN;
				if (child && !child->up)
					child->up_old = old;
				break;
			}
			if (!(n = bnode_new(b, &b->names, p, l, hash)))
				return -ENOMEM;
		}
		if (child && !child->up && !child->up_old)
			child->up = n;
		child = n;
		struct zone_node *h = BHDR(n);
		if (!leaf) {
			leaf = n;
		} else if (h->zidx == z->idx + 1) {
			break; /* a node already in this zone has its ancestors already */
		}
		if (!h->zidx || t->zones[h->zidx - 1]->apex_len < z->apex_len)
			h->zidx = (uint8_t)(z->idx + 1);
		if (l == z->apex_len)
			break;
		l -= p[0] + 1u;
		p += p[0] + 1u;
	}
	*out = leaf;
	return 0;
}

int zb_rr_add(struct zb *b, struct zb_zone *z, const uint8_t *owner, uint16_t type, uint32_t ttl,
	      const uint8_t *rdata, uint16_t rdlen)
{
	size_t len = dname_len(owner);
	if (!name_under(owner, len, z->apex, z->apex_len))
		return -EINVAL;
	struct bnode *n = b->last;
	int ret;
	/* A name's records mostly come one after the other. */
	if (!n || b->last_zone != z || BHDR(n)->len != len ||
	    memcmp(BHDR(n)->name, owner, len) != 0) {
		if ((ret = node_in_zone(b, z, owner, len, true, &n)) < 0)
			return ret;
		b->last = n;
		b->last_zone = z;
	}
	struct rrset *s = n->sets, *last = NULL;
	for (; s && s->type != type; s = s->next)
		last = s;
	if (!s) {
		s = arena_alloc(b->tmp, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->type = type;
		s->ttl = ttl;
		/* Keep RRsets in insertion order: the SOA first at the apex. */
		if (last)
			last->next = s;
		else
			n->sets = s;
	}
	/* An RRset has one TTL (RFC 2181 5.2): the lowest wins. */
	if (ttl < s->ttl)
		s->ttl = ttl;
	if (s->n < 64)
		for (struct rdata *r = s->head; r; r = r->next)
			if (r->len == rdlen && memcmp(r->d, rdata, rdlen) == 0)
				return 0;
	struct rdata *r = arena_alloc(b->tmp, sizeof(*r) + rdlen);
	if (!r)
		return -ENOMEM;
	r->len = rdlen;
	memcpy(r->d, rdata, rdlen);
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->n++;
	if (type == DNS_T_CNAME)
		BHDR(n)->flags |= NF_CNAME;
	return 0;
}

void zb_zone_mark_dynamic(struct zb_zone *z)
{
	z->dynamic = true;
}

int zb_name_add(struct zb *b, struct zb_zone *z, const uint8_t *name)
{
	size_t len = dname_len(name);
	if (!name_under(name, len, z->apex, z->apex_len))
		return -EINVAL;
	struct bnode *n;
	return node_in_zone(b, z, name, len, false, &n);
}

int zb_mark_pod_root(struct zb *b, struct zb_zone *z, const uint8_t *name, uint32_t ttl)
{
	struct bnode *n;
	int ret = node_in_zone(b, z, name, dname_len(name), true, &n);
	if (ret < 0)
		return ret;
	BHDR(n)->flags |= NF_POD_ROOT;
	z->pod_ttl = ttl;
	return 0;
}

/* ---- rendering ------------------------------------------------------------ */

#define MSG_LIMIT 65000 /* room for header, question and OPT within 64 KiB */
#define DICT_SIZE 2048

struct dict_entry {
	uint32_t gen;
	uint32_t hash;
	uint16_t off; /* message offset of the name suffix */
	uint8_t len;
	const uint8_t *name; /* lowercased suffix */
};

struct writer {
	uint8_t *buf;
	size_t len;
	size_t base; /* message offset of buf[0] */
	bool full;
	struct dict_entry *dict;
	uint32_t gen;
	bool compress;
	/* The question's suffixes, entered into the dictionary on its first
	 * use: most answers (addresses, TXT) never compress a name. */
	const uint8_t *qname_pending;
};

/* The hashes of every suffix of a name, longest first, computed from the
 * root up so that each byte is hashed once (a name is looked up and entered
 * suffix by suffix). Returns the number of labels. */
static size_t suffix_hashes(const uint8_t *name, uint8_t *offs, uint32_t *hs)
{
	size_t n = 0;
	for (size_t i = 0; name[i]; i += name[i] + 1u)
		offs[n++] = (uint8_t)i;
	uint64_t h = 0x9E3779B97F4A7C15ull;
	for (size_t k = n; k-- > 0;) {
		const uint8_t *l = name + offs[k];
		for (size_t j = 0; j <= l[0]; j++)
			h = (h ^ l[j]) * 0x100000001B3ull;
		hs[k] = (uint32_t)(h ^ (h >> 29));
	}
	return n;
}

#define MAX_LABELS 128

static void dict_add_all(struct writer *w, const uint8_t *name, size_t off);

static void dict_ready(struct writer *w)
{
	if (w->qname_pending) {
		const uint8_t *q = w->qname_pending;
		w->qname_pending = NULL;
		dict_add_all(w, q, 12);
	}
}

static bool dict_find(struct writer *w, const uint8_t *name, size_t len, uint32_t h, uint16_t *off)
{
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE;
	     i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen)
			return false;
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0) {
			*off = e->off;
			return true;
		}
	}
	return false;
}

/* Returns whether the dictionary had the name already. */
static bool dict_add(struct writer *w, const uint8_t *name, size_t len, uint32_t h, size_t off)
{
	if (off >= 0x3FFF || len <= 1)
		return false;
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE / 2;
	     i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen) {
			e->gen = w->gen;
			e->hash = h;
			e->off = (uint16_t)off;
			e->len = (uint8_t)len;
			e->name = name;
			return false;
		}
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
			return true;
	}
	return false;
}

/* Registers every suffix of a name that sits at message offset `off`. */
static void dict_add_all(struct writer *w, const uint8_t *name, size_t off)
{
	uint8_t offs[MAX_LABELS];
	uint32_t hs[MAX_LABELS];
	dict_ready(w);
	size_t len = dname_len(name), n = suffix_hashes(name, offs, hs);
	/* A name the dictionary has came with its suffixes (an SRV RRset names
	 * one target again and again). */
	for (size_t k = 0; k < n; k++)
		if (dict_add(w, name + offs[k], len - offs[k], hs[k], off + offs[k]) && k == 0)
			return;
}

static void put(struct writer *w, const void *p, size_t n)
{
	if (w->full || w->base + w->len + n > MSG_LIMIT) {
		w->full = true;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put16(struct writer *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	put(w, b, 2);
}

static void put32(struct writer *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	put(w, b, 4);
}

/* Writes a (lowercase, uncompressed) name, compressing against what the
 * message already holds when allowed. */
static void put_name(struct writer *w, const uint8_t *name, bool compress)
{
	size_t len = dname_len(name);
	if (!w->compress) {
		put(w, name, len);
		return;
	}
	size_t start = w->base + w->len;
	uint8_t offs[MAX_LABELS];
	uint32_t hs[MAX_LABELS];
	size_t n = suffix_hashes(name, offs, hs);
	dict_ready(w);
	for (size_t k = 0; compress && k < n; k++) {
		uint16_t off;
		if (dict_find(w, name + offs[k], len - offs[k], hs[k], &off)) {
			put(w, name, offs[k]);
			put16(w, (uint16_t)(0xC000 | off));
			if (!w->full)
				for (size_t j = 0; j < k; j++)
					dict_add(w, name + offs[j], len - offs[j], hs[j],
						 start + offs[j]);
			return;
		}
	}
	put(w, name, len);
	if (!w->full)
		for (size_t k = 0; k < n; k++)
			dict_add(w, name + offs[k], len - offs[k], hs[k], start + offs[k]);
}

/* Writes one RR. `owner_ptr` >= 0: the owner is a pointer to that offset. */
static void put_rr(struct writer *w, const uint8_t *owner, int owner_ptr, uint16_t type,
		   uint32_t ttl, const struct rdata *rd)
{
	if (owner_ptr >= 0)
		put16(w, (uint16_t)(0xC000 | owner_ptr));
	else
		put_name(w, owner, true);
	put16(w, type);
	put16(w, DNS_C_IN);
	put32(w, ttl);
	size_t rdlen_at = w->len;
	put16(w, 0);
	size_t rstart = w->len;
	const uint8_t *d = rd->d;
	/* RFC 3597 section 4: only the types of RFC 1035 have compressed names. */
	switch (type) {
	case DNS_T_NS:
	case DNS_T_CNAME:
	case DNS_T_PTR:
		put_name(w, d, true);
		break;
	case DNS_T_MX:
		put(w, d, 2);
		put_name(w, d + 2, true);
		break;
	case DNS_T_SOA: {
		size_t l1 = dname_len(d);
		size_t l2 = dname_len(d + l1);
		put_name(w, d, true);
		put_name(w, d + l1, true);
		put(w, d + l1 + l2, 20);
		break;
	}
	case DNS_T_SRV: {
		/* RFC 2782: the target is never compressed, but later names may
		 * point at it. */
		size_t start = w->base + w->len + 6;
		put(w, d, rd->len);
		if (!w->full && w->compress)
			dict_add_all(w, d + 6, start);
		break;
	}
	default:
		put(w, d, rd->len);
		break;
	}
	if (w->full)
		return;
	size_t rl = w->len - rstart;
	w->buf[rdlen_at] = (uint8_t)(rl >> 8);
	w->buf[rdlen_at + 1] = (uint8_t)rl;
}

static struct rrset *find_set(const struct bnode *n, uint16_t type)
{
	for (struct rrset *s = n ? n->sets : NULL; s; s = s->next)
		if (s->type == type)
			return s;
	return NULL;
}

/* The apex of a zone this build declared (older zones' build nodes are gone). */
static struct bnode *zone_apex(const struct zb *b, const struct zb_zone *z)
{
	return b->declared[z->idx] ? z->apex_node : NULL;
}

/* The rendering context for one answer. */
struct render {
	struct zb *b;
	struct writer w;
	/* the answer being rendered: the writer fills its data */
	struct zone_answer *cand;
	struct dict_entry dict[DICT_SIZE];
	uint16_t counts[3];
	uint16_t section;
	size_t an_ns_len;
	/* names already given addresses in the additional section */
	const uint8_t *added[64];
	size_t n_added;
	const uint8_t *qname; /* the answer's owner, for log lines (NULL: synthesized) */
	bool trim_logged;     /* this answer's trimming was reported */
	bool glue_cut;	      /* some glue of this answer did not fit */
	/* one node's answers while it is laid out */
	uint16_t *list_types;
	const struct zone_answer **list_ans;
	size_t list_cap;
};

static struct render *render_ctx(struct zb *b)
{
	if (!b->r) {
		b->r = calloc(1, sizeof(*b->r));
		if (!b->r)
			return NULL;
		b->r->b = b;
		b->r->cand = malloc(sizeof(struct zone_answer) + MSG_LIMIT);
		if (!b->r->cand) {
			free(b->r);
			b->r = NULL;
		}
	}
	return b->r;
}

static void render_free(struct render *r)
{
	if (!r)
		return;
	free(r->cand);
	free(r->list_types);
	free(r->list_ans);
	free(r);
}

/* Starts an answer for a question of `qname` (NULL: a wildcard or synthesized
 * owner, no compression against the question). */
static void render_begin(struct render *r, const uint8_t *qname)
{
	memset(r->counts, 0, sizeof(r->counts));
	r->section = 0;
	r->n_added = 0;
	r->w.buf = r->cand->data;
	r->w.len = 0;
	r->w.full = false;
	r->w.dict = r->dict;
	r->w.gen++;
	if (r->w.gen == 0) {
		memset(r->dict, 0, sizeof(r->dict));
		r->w.gen = 1;
	}
	r->w.compress = qname != NULL;
	size_t qlen = qname ? dname_len(qname) : 0;
	r->w.base = 12 + qlen + 4;
	r->w.qname_pending = qname;
	r->qname = qname;
	r->trim_logged = false;
	r->glue_cut = false;
}

/* Trimmed answers already reported, so that a full build (which renders every
 * name again) does not repeat them: a report comes again only when what was
 * trimmed changes. Builds run on one thread at a time (the control thread;
 * tests build from one thread too). */
#define TRIM_SEEN 1024
static uint64_t trim_seen[TRIM_SEEN];
static size_t trim_seen_n;

static bool trim_first_report(uint64_t key)
{
	key |= 1; /* 0 marks a free slot */
	size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 54) & (TRIM_SEEN - 1);
	for (size_t k = 0; k < TRIM_SEEN; k++, i = (i + 1) & (TRIM_SEEN - 1)) {
		if (trim_seen[i] == key)
			return false;
		if (!trim_seen[i])
			break;
	}
	if (trim_seen_n >= TRIM_SEEN / 2) {
		memset(trim_seen, 0, sizeof(trim_seen));
		trim_seen_n = 0;
		i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 54) & (TRIM_SEEN - 1);
	}
	while (trim_seen[i])
		i = (i + 1) & (TRIM_SEEN - 1);
	trim_seen[i] = key;
	trim_seen_n++;
	return true;
}

/* One log line per trimmed answer: the name (a Service's names say which
 * Service), the RRset, how much fitted. Glue in the additional section may be
 * cut short (RFC 2181 9: the answer is complete without it), so that is
 * information; a cut in the answer or authority section is a warning. `s` is
 * the RRset cut (answer, authority) or the one whose glue was (additional). */
static void report_trim(struct render *r, const struct rrset *s, size_t fitted)
{
	static const char *const section[3] = {"answer", "authority", "additional"};
	size_t total = 0;
	char name[4 * DNAME_MAX + 1]; /* every byte escaped as \DDD at worst */

	if (r->trim_logged)
		return;
	r->trim_logged = true;
	for (const struct rdata *rd = s->head; rd; rd = rd->next)
		total++;
	if (!r->qname || dname_to_text(r->qname, name, sizeof(name)) < 0)
		snprintf(name, sizeof(name), "(a synthesized name)");
	uint64_t key = 0xcbf29ce484222325ull;
	for (const char *p = name; *p; p++)
		key = (key ^ (uint8_t)*p) * 0x100000001b3ull;
	key = (key ^ s->type) * 0x100000001b3ull;
	key = (key ^ r->section) * 0x100000001b3ull;
	key = (key ^ fitted) * 0x100000001b3ull;
	key = (key ^ total) * 0x100000001b3ull;
	if (!trim_first_report(key))
		return;
	if (r->section == 2)
		log_info("%s: the answer is complete (%zu records of type %u), but the additional "
			 "section holds only %zu address records for its %zu targets: the rest "
			 "do not fit in 64 KiB and are left out",
			 name, total, s->type, fitted, total);
	else
		log_warn("%s: the %s section holds %zu of %zu records of type %u: the rest do not "
			 "fit in 64 KiB, so the answer is served cut short",
			 name, section[r->section < 3 ? r->section : 0], fitted, total, s->type);
}

static void render_set(struct render *r, const uint8_t *owner, int owner_ptr, const struct rrset *s)
{
	size_t fitted = 0;
	for (const struct rdata *rd = s->head; rd; rd = rd->next) {
		size_t before = r->w.len;
		put_rr(&r->w, owner, owner_ptr, s->type, s->ttl, rd);
		if (r->w.full) {
			r->w.len = before;
			r->w.full = true;
			if (r->section == 2)
				r->glue_cut = true; /* reported by render_additional_for */
			else
				report_trim(r, s, fitted);
			return;
		}
		r->counts[r->section]++;
		fitted++;
	}
}

static void render_next_section(struct render *r)
{
	r->section++;
	if (r->section == 2)
		r->an_ns_len = r->w.len;
}

static const struct zone_answer *node_answer(const struct zone_node *n, uint16_t qtype);

/* The addresses of a name an older build made (the nameserver's, to an
 * incremental build that renders the apex again), taken from its rendered
 * answer: A and AAAA records name nothing, so their bytes stand as they are
 * behind a new owner. */
static void render_old_addresses(struct render *r, const uint8_t *target,
				 const struct zone_node *old, uint16_t type)
{
	const struct zone_answer *a = node_answer(old, type);
	const uint8_t *p = a ? a->data : NULL;
	for (uint16_t i = 0; a && i < a->an; i++) {
		/* owner (a pointer to the question), type, class, TTL, rdlength */
		if ((size_t)(p - a->data) + 12 > a->len_an_ns || p[0] != 0xC0 || p[1] != 12 ||
		    (p[2] << 8 | p[3]) != type)
			return; /* not a plain address RRset (a CNAME chain) */
		size_t rl = (size_t)(p[10] << 8 | p[11]);
		size_t before = r->w.len;
		put_name(&r->w, target, true);
		put(&r->w, p + 2, 10 + rl);
		if (r->w.full) {
			r->w.len = before;
			return;
		}
		r->counts[r->section]++;
		p += 12 + rl;
	}
}

/* Addresses of a target name we serve, for the additional section. */
static void render_addresses_of(struct render *r, const uint8_t *target)
{
	size_t len = dname_len(target);
	for (size_t i = 0; i < r->n_added; i++)
		if (memcmp(r->added[i], target, len) == 0)
			return;
	if (r->n_added < 64)
		r->added[r->n_added++] = target;
	uint32_t hash = dname_hash(target, len);
	struct bnode *n = bfind_name(r->b, target, len, hash);
	bool was_full = r->w.full;
	if (!n) {
		const struct zone_node *old = old_find(r->b, false, target, len, hash);
		if (old) {
			render_old_addresses(r, target, old, DNS_T_A);
			render_old_addresses(r, target, old, DNS_T_AAAA);
		}
		r->w.full = was_full;
		return;
	}
	struct rrset *a = find_set(n, DNS_T_A), *aaaa = find_set(n, DNS_T_AAAA);
	if (a)
		render_set(r, NODE_NAME(BHDR(n)), -1, a);
	if (aaaa)
		render_set(r, NODE_NAME(BHDR(n)), -1, aaaa);
	/* The additional section is optional: running out of room there is not
	 * an error worth a log line. */
	r->w.full = was_full;
}

static void render_additional_for(struct render *r, const struct rrset *s)
{
	for (const struct rdata *rd = s->head; rd; rd = rd->next) {
		if (s->type == DNS_T_SRV && rd->len > 7)
			render_addresses_of(r, rd->d + 6);
		else if (s->type == DNS_T_MX && rd->len > 3)
			render_addresses_of(r, rd->d + 2);
		else if (s->type == DNS_T_NS)
			render_addresses_of(r, rd->d);
	}
	if (r->glue_cut)
		report_trim(r, s, r->counts[2]);
}

static bool answer_eq(const struct zone_answer *x, const struct zone_answer *y)
{
	return x->an == y->an && x->ns == y->ns && x->ar == y->ar && x->len == y->len &&
	       x->len_an_ns == y->len_an_ns && x->rcode == y->rcode && x->aa == y->aa &&
	       x->patch_owner == y->patch_owner && x->apex_len == y->apex_len &&
	       memcmp(x->data, y->data, x->len) == 0;
}

/* The stored answer with the same bytes as `a` (the candidate being
 * rendered), or a new copy of it in the output arena. The answers that repeat
 * are rendered close together (a Service's full and short names, one after
 * the other), so a small direct-mapped cache finds them without a table of
 * every answer. */
#define DEDUP_SLOTS 4096

static const struct zone_answer *answer_intern(struct zb *b, const struct zone_answer *a)
{
	uint32_t h = dname_hash(a->data, a->len) ^ ((uint32_t)a->an << 16 | a->rcode << 8 | a->ar);
	if (!b->dedup && !(b->dedup = calloc(DEDUP_SLOTS, sizeof(*b->dedup))))
		return NULL;
	struct ans_slot *sl = &b->dedup[h & (DEDUP_SLOTS - 1)];
	if (sl->a && sl->hash == h && answer_eq(sl->a, a))
		return sl->a;
	/* An answer is read field by field and copied as bytes: it needs the
	 * alignment of its 16-bit counts only. */
	struct zone_answer *c =
	    arena_alloc_raw(b->out, sizeof(*c) + a->len, _Alignof(struct zone_answer));
	if (!c)
		return NULL;
	memcpy(c, a, sizeof(*c) + a->len);
	sl->hash = h;
	sl->a = c;
	return c;
}

static const struct zone_answer *render_end_patched(struct render *r, uint8_t rcode, bool aa,
						    uint8_t apex_len)
{
	if (r->section < 2)
		r->an_ns_len = r->w.len;
	struct zone_answer *c = r->cand;
	c->an = r->counts[0];
	c->ns = r->counts[1];
	c->ar = r->counts[2];
	c->len = (uint16_t)r->w.len;
	c->len_an_ns = (uint16_t)r->an_ns_len;
	c->rcode = rcode;
	c->aa = aa;
	c->patch_owner = apex_len != 0;
	c->apex_len = apex_len;
	return answer_intern(r->b, c);
}

static const struct zone_answer *render_end(struct render *r, uint8_t rcode, bool aa)
{
	return render_end_patched(r, rcode, aa, 0);
}

static uint32_t soa_negative_ttl(const struct rrset *soa)
{
	/* RFC 2308 section 5: the lesser of the SOA's TTL and its MINIMUM. */
	const struct rdata *rd = soa->head;
	size_t l1 = dname_len(rd->d);
	size_t l2 = dname_len(rd->d + l1);
	const uint8_t *m = rd->d + l1 + l2 + 16;
	uint32_t min = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
	return min < soa->ttl ? min : soa->ttl;
}

/* A negative answer: the zone's SOA in authority, its owner a pointer to the
 * apex inside the question, patched per query (the apex is always a suffix
 * of the question name here). */
static const struct zone_answer *render_negative(struct render *r, struct zb_zone *z, uint8_t rcode)
{
	struct rrset *soa = find_set(zone_apex(r->b, z), DNS_T_SOA);
	if (!soa)
		return NULL;
	render_begin(r, NULL);
	render_next_section(r);
	struct rrset one = *soa;
	one.n = 1;
	one.ttl = soa_negative_ttl(soa);
	struct rdata *saved = soa->head->next;
	soa->head->next = NULL;
	one.head = one.tail = soa->head;
	render_set(r, NULL, 12, &one);
	soa->head->next = saved;
	return render_end_patched(r, rcode, true, z->apex_len);
}

/* The zone a name falls in (the deepest apex above it), or NULL. */
static struct zb_zone *zone_of(struct zb *b, const uint8_t *name, size_t len)
{
	struct zb_zone *best = NULL;
	for (uint8_t zi = 0; zi < b->t->n_zones; zi++) {
		struct zb_zone *z = b->t->zones[zi];
		if (name_under(name, len, z->apex, z->apex_len) &&
		    (!best || z->apex_len > best->apex_len))
			best = z;
	}
	return best;
}

/* Where a CNAME chain from `n` ends among this build's names (NULL when it
 * leaves them or loops). */
static struct bnode *cname_final(struct zb *b, struct bnode *n)
{
	struct bnode *cur = n;
	for (int depth = 0; depth < 8 && cur; depth++) {
		struct rrset *cn = find_set(cur, DNS_T_CNAME);
		if (!cn)
			return cur;
		size_t tl = dname_len(cn->head->d);
		cur = bfind_name(b, cn->head->d, tl, dname_hash(cn->head->d, tl));
	}
	return NULL;
}

/* Follows a CNAME chain from `n` inside the data svcdns serves. Renders the
 * chain and, if the final name has one, the RRset of `qtype`; when the chain
 * ends inside a zone we serve without that data, the final rcode and the
 * zone's SOA say so (RFC 6604, RFC 2308 section 2.1). A name an older build
 * made counts as one without data. */
static const struct zone_answer *render_cname_chain(struct render *r, struct bnode *n,
						    uint16_t qtype, const uint8_t *qname)
{
	struct zb *b = r->b;
	render_begin(r, qname);
	uint8_t rcode = 0;
	struct bnode *cur = n;
	struct zb_zone *neg_zone = NULL;
	const uint8_t *owner = NULL; /* NULL: the question itself */
	const struct bnode *seen[8];
	for (int depth = 0; depth < 8 && cur; depth++) {
		/* A loop ends the chain where it closes: each CNAME once. */
		for (int k = 0; k < depth; k++)
			if (seen[k] == cur)
				goto chain_end;
		seen[depth] = cur;
		struct rrset *cn = find_set(cur, DNS_T_CNAME);
		if (!cn) {
			struct rrset *s = find_set(cur, qtype);
			if (s)
				render_set(r, NODE_NAME(BHDR(cur)), -1, s);
			else
				neg_zone = ZONE(b->t, BHDR(cur));
			break;
		}
		if (owner)
			render_set(r, owner, -1, cn);
		else
			render_set(r, NULL, 12, cn);
		const uint8_t *target = cn->head->d;
		owner = target;
		size_t tl = dname_len(target);
		uint32_t th = dname_hash(target, tl);
		cur = bfind_name(b, target, tl, th);
		if (!cur) {
			const struct zone_node *old = old_find(b, false, target, tl, th);
			if (old && old->zidx)
				neg_zone = ZONE(b->t, old);
			else if (!old && (neg_zone = zone_of(b, target, tl)))
				rcode = 3;
		}
	}
chain_end:;
	struct rrset *soa = neg_zone ? find_set(zone_apex(b, neg_zone), DNS_T_SOA) : NULL;
	if (soa) {
		struct rdata *saved = soa->head->next;
		struct rrset one = *soa;
		soa->head->next = NULL;
		one.head = one.tail = soa->head;
		one.ttl = soa_negative_ttl(soa);
		render_next_section(r);
		render_set(r, neg_zone->apex, -1, &one);
		soa->head->next = saved;
	}
	return render_end(r, rcode, true);
}

/* Renders a node's answers and lays out its published node. */
static int render_node(struct zb *b, struct render *r, struct bnode *bn)
{
	struct zone_node *h = BHDR(bn);
	/* The parent first: the node points at it. */
	if (bn->up && !bn->up->pub) {
		int ret = render_node(b, r, bn->up);
		if (ret < 0)
			return ret;
	}
	const struct zone_node *up = bn->up ? bn->up->pub : bn->up_old;
	*NCACHE(b, bn->hash) = bn; /* SRV targets are mostly the name just rendered */
	if (up && (up->len + h->name[0] + 1u != h->len))
		up = NULL; /* not the parent (cannot happen): keep the whole name */
	size_t cap = 0;
	for (struct rrset *s = bn->sets; s; s = s->next)
		cap++;
	/* one answer per type, plus CNAME chains */
	struct bnode *final = (h->flags & NF_CNAME) ? cname_final(b, bn) : NULL;
	for (struct rrset *s = final ? final->sets : NULL; s; s = s->next)
		cap++;
	if (cap > r->list_cap) {
		size_t nc = cap + 64;
		void *ta = realloc(r->list_types, nc * sizeof(*r->list_types));
		if (ta)
			r->list_types = ta;
		void *aa = realloc(r->list_ans, nc * sizeof(*r->list_ans));
		if (aa)
			r->list_ans = aa;
		if (!ta || !aa)
			return -ENOMEM;
		r->list_cap = nc;
	}
	uint16_t *types = r->list_types;
	const struct zone_answer **ans = r->list_ans;
	size_t cnt = 0;
	const uint8_t *qname = (h->flags & NF_WILDCARD) ? NULL : NODE_NAME(h);

	for (struct rrset *s = bn->sets; s; s = s->next) {
		render_begin(r, qname);
		render_set(r, NULL, 12, s);
		render_next_section(r);
		render_next_section(r);
		render_additional_for(r, s);
		if (!(ans[cnt] = render_end(r, 0, true)))
			return -ENOMEM;
		types[cnt++] = s->type;
	}
	const struct zone_answer *cname_default = NULL;
	if (h->flags & NF_CNAME) {
		for (struct rrset *s = final ? final->sets : NULL; s; s = s->next) {
			bool have = false;
			for (size_t i = 0; i < cnt && !have; i++)
				have = types[i] == s->type;
			if (s->type == DNS_T_CNAME || have)
				continue;
			if (!(ans[cnt] = render_cname_chain(r, bn, s->type, qname)))
				return -ENOMEM;
			types[cnt++] = s->type;
		}
		if (!(cname_default = render_cname_chain(r, bn, 0, qname)))
			return -ENOMEM;
	}
	if (cnt > UINT16_MAX)
		return -E2BIG;
	unsigned extras = node_extras(h->flags);
	size_t own = up ? h->name[0] + 1u : h->len;
	size_t off = node_layout_ans_off(h->len, own);
	struct zone_node *n =
	    arena_alloc(b->out, off + (cnt + extras) * sizeof(*ans) + cnt * sizeof(*types));
	if (!n)
		return -ENOMEM;
	memcpy(n, h, offsetof(struct zone_node, name) + own);
	n->own = (uint8_t)own;
	if (up)
		memcpy((uint8_t *)n + node_up_off(own), &up, sizeof(up));
	n->n_ans = (uint16_t)cnt;
	const struct zone_answer **na = (const struct zone_answer **)((uint8_t *)n + off);
	memcpy(na, ans, cnt * sizeof(*ans));
	if (h->flags & (NF_CUT | NF_BELOW_CUT))
		na[cnt++] = bn->cut->referral;
	if (h->flags & NF_CNAME)
		na[cnt++] = cname_default;
	memcpy((uint8_t *)(na + cnt), types, n->n_ans * sizeof(*types));
	bn->pub = n;
	return 0;
}

static int render_referral(struct render *r, struct bnode *cut)
{
	struct rrset *ns = find_set(cut, DNS_T_NS);
	render_begin(r, NULL);
	render_next_section(r);
	render_set(r, NODE_NAME(BHDR(cut)), -1, ns);
	render_next_section(r);
	render_additional_for(r, ns);
	cut->referral = render_end(r, 0, false);
	return cut->referral ? 0 : -ENOMEM;
}

int zb_chaos_txt(struct zb *b, const uint8_t *owner, const char *const *strings, size_t n)
{
	size_t len = dname_len(owner);
	uint32_t hash = dname_hash(owner, len);
	struct bnode *node = bfind(&b->chaos, owner, len, hash);
	if (!node && !(node = bnode_new(b, &b->chaos, owner, len, hash)))
		return -ENOMEM;
	struct render *r = render_ctx(b);
	if (!r)
		return -ENOMEM;
	render_begin(r, owner);
	for (size_t i = 0; i < n; i++) {
		/* One RR per string; a long string becomes several
		 * character-strings of at most 255 bytes in that RR. */
		size_t sl = strlen(strings[i]);
		size_t pieces = sl ? (sl + 254) / 255 : 1;
		size_t before = r->w.len;
		put16(&r->w, 0xC00C);
		put16(&r->w, DNS_T_TXT);
		put16(&r->w, DNS_C_CH);
		put32(&r->w, 0);
		put16(&r->w, (uint16_t)(sl + pieces));
		for (size_t k = 0; k < pieces; k++) {
			size_t pl = sl - k * 255 > 255 ? 255 : sl - k * 255;
			uint8_t l8 = (uint8_t)pl;
			put(&r->w, &l8, 1);
			put(&r->w, strings[i] + k * 255, pl);
		}
		if (r->w.full) {
			r->w.len = before;
			break;
		}
		r->counts[0]++;
	}
	node->chaos = render_end(r, 0, true);
	return node->chaos ? 0 : -ENOMEM;
}

int zb_reserve(struct zb *b, size_t n_names)
{
	uint32_t cap = htab_cap_for(n_names * 15 / 14); /* a load of 2/3 at most */
	if (b->names.cap >= cap)
		return 0;
	return htab_grow(&b->names, cap);
}

struct zb *zb_new_incremental(struct arena *out, const void *prev_tables)
{
	const struct tables *pt = prev_tables;
	struct zb *b = zb_new(out);
	if (!b)
		return NULL;
	struct tables *t = b->t;
	/* The overlay is copied (it is small), the base shared. */
	t->base = pt->base;
	t->base->refs++;
	if (htab_copy(&t->over, &pt->over) < 0 || htab_copy(&t->chaos_over, &pt->chaos_over) < 0) {
		zb_free(b);
		return NULL;
	}
	memcpy(t->zones, pt->zones, sizeof(t->zones));
	t->n_zones = pt->n_zones;
	t->n_names = pt->n_names;
	b->incremental = true;
	return b;
}

/* Takes an older build's name out of the tables being built: a tombstone in
 * the overlay hides it in the base; a name only the overlay has just goes. */
static int old_remove(struct zb *b, bool chaos, const uint8_t *name, size_t len, uint32_t hash)
{
	struct tables *t = b->t;
	const struct htab *base = chaos ? &t->base->chaos : &t->base->names;
	struct htab *over = chaos ? &t->chaos_over : &t->over;
	if (!layered_find(base, over, name, len, hash))
		return 0;
	if (!chaos)
		t->n_names--;
	if (!htab_find(base, name, len, hash)) {
		htab_remove(over, name, len, hash);
		return 0;
	}
	struct zone_node *tomb = arena_alloc(b->out, offsetof(struct zone_node, name) + len);
	if (!tomb)
		return -ENOMEM;
	tomb->len = (uint8_t)len;
	tomb->own = (uint8_t)len;
	tomb->flags = NF_GONE;
	memcpy(tomb->name, name, len);
	return htab_replace(over, name, len, hash, tomb);
}

int zb_remove_owned(struct zb *b, const struct zb *scratch, const uint8_t *const *roots,
		    size_t n_roots)
{
	if (!b->t->base)
		return -EINVAL;
	for (size_t i = 0; i < scratch->n_fresh; i++) {
		const struct bnode *sn = scratch->fresh[i];
		const struct zone_node *sh = BHDR(sn);
		const uint8_t *name = NODE_NAME(sh);
		int ret;
		if (!sh->zidx) {
			if ((ret = old_remove(b, true, name, sh->len, sn->hash)) < 0)
				return ret;
			continue;
		}
		bool owned = sn->sets && !(sh->flags & NF_APEX);
		for (size_t k = 0; k < n_roots && !owned; k++)
			owned = name_under(name, sh->len, roots[k], dname_len(roots[k]));
		if (!owned)
			continue;
		const struct zone_node *cur = old_find(b, false, name, sh->len, sn->hash);
		if (!cur)
			continue;
		/* A name whose data comes from more than one Service (a pod address
		 * behind two headless Services) cannot lose one part here. */
		const struct zone_answer *const *ans = node_ans(cur);
		const uint16_t *types = node_types(cur);
		for (uint16_t k = 0; k < cur->n_ans; k++) {
			const struct rrset *s = find_set(sn, types[k]);
			if (ans[k]->an > 1 && s && s->n != ans[k]->an)
				return -EAGAIN;
		}
		if ((ret = old_remove(b, false, name, sh->len, sn->hash)) < 0)
			return ret;
	}
	return 0;
}

int zb_data_rrs(struct zb *b, zb_rr_cb cb, void *arg)
{
	for (size_t i = 0; i < b->n_fresh; i++) {
		const struct bnode *n = b->fresh[i];
		const struct zone_node *h = BHDR(n);
		if (!h->zidx || (h->flags & NF_APEX))
			continue;
		for (const struct rrset *s = n->sets; s; s = s->next)
			for (const struct rdata *r = s->head; r; r = r->next) {
				int ret = cb(arg, NODE_NAME(h), s->type, s->ttl, r->d, r->len);
				if (ret < 0)
					return ret;
			}
	}
	return 0;
}

int zb_zone_rrs(struct zb *b, const uint8_t *apex, zb_rr_cb cb, void *arg)
{
	size_t alen = dname_len(apex);
	struct tables *t = b->t;
	const struct zb_zone *z = NULL;
	for (uint8_t i = 0; i < t->n_zones; i++)
		if (t->zones[i]->apex_len == alen && memcmp(t->zones[i]->apex, apex, alen) == 0)
			z = t->zones[i];
	if (!z)
		return -ENOENT;
	const struct rrset *soa = find_set(zone_apex(b, z), DNS_T_SOA);
	if (!soa)
		return -ENOENT;
	int ret = cb(arg, z->apex, DNS_T_SOA, soa->ttl, soa->head->d, soa->head->len);
	if (ret < 0)
		return ret;
	/* The rest in build order: names as they were first created. */
	for (size_t i = 0; i < b->n_fresh; i++) {
		const struct bnode *n = b->fresh[i];
		const struct zone_node *h = BHDR(n);
		if (!h->zidx || t->zones[h->zidx - 1] != z)
			continue;
		for (const struct rrset *s = n->sets; s; s = s->next) {
			if (s->type == DNS_T_SOA && n == z->apex_node)
				continue;
			for (const struct rdata *r = s->head; r; r = r->next)
				if ((ret = cb(arg, NODE_NAME(h), s->type, s->ttl, r->d, r->len)) <
				    0)
					return ret;
		}
	}
	return 0;
}

/* A CHAOS name's published node: its one TXT answer. */
static int publish_chaos_node(struct zb *b, struct bnode *bn)
{
	/* A few fixed names (version.bind, id.server): each holds its whole
	 * name. Services' port views are rendered at query time. */
	const struct zone_node *h = BHDR(bn);
	size_t off = node_layout_ans_off(h->len, h->len);
	struct zone_node *n = arena_alloc(b->out, off + sizeof(void *) + sizeof(uint16_t));
	if (!n)
		return -ENOMEM;
	memcpy(n, h, offsetof(struct zone_node, name) + h->len);
	n->own = h->len;
	n->flags = 0;
	n->n_ans = 1;
	const struct zone_answer **na = (const struct zone_answer **)((uint8_t *)n + off);
	na[0] = bn->chaos;
	uint16_t txt = DNS_T_TXT;
	memcpy(na + 1, &txt, sizeof(txt));
	bn->pub = n;
	return 0;
}

/* One table of every live name of a base and an overlay: a copy of the base
 * with the overlay's changes made to it (names in the base keep their slots,
 * so their hashes need not be computed again). */
static int htab_merge(struct htab *dst, const struct htab *base, const struct htab *over)
{
	if (htab_copy(dst, base) < 0)
		return -ENOMEM;
	if (!dst->slots && htab_init(dst, htab_cap_for(over->n)) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; over->slots && i < over->cap; i++) {
		if (!over->slots[i])
			continue;
		const struct zone_node *n = slot_node(over->slots[i]);
		uint8_t name[DNAME_MAX];
		node_name_copy(n, name);
		uint32_t hash = dname_hash(name, n->len);
		if (n->flags & NF_GONE)
			htab_remove(dst, name, n->len, hash);
		else if (htab_replace(dst, name, n->len, hash, n) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* An overlay past 1/16 of its base (and a handful of names) is merged into a
 * new base: lookups stay at one table, and the copies of the overlay each
 * build makes stay small. The merge costs one pass over the base's slots,
 * far less than rendering every name again. */
#define OVERLAY_MERGE_MIN      64
#define OVERLAY_MERGE_FRACTION 16

static int tables_merge(struct tables *t)
{
	struct base *bs = calloc(1, sizeof(*bs));
	if (!bs || htab_merge(&bs->names, &t->base->names, &t->over) < 0 ||
	    htab_merge(&bs->chaos, &t->base->chaos, &t->chaos_over) < 0) {
		if (bs) {
			free(bs->names.slots);
			free(bs->chaos.slots);
			free(bs);
		}
		return -ENOMEM;
	}
	bs->refs = 1;
	base_release(t->base);
	t->base = bs;
	free(t->over.slots);
	free(t->chaos_over.slots);
	memset(&t->over, 0, sizeof(t->over));
	memset(&t->chaos_over, 0, sizeof(t->chaos_over));
	return 0;
}

/* Puts this build's nodes into the published tables: a new base for a full
 * build, the overlay for an incremental one. */
static int tables_publish(struct zb *b)
{
	struct tables *t = b->t;
	if (!t->base) {
		size_t nn = 0, nc = 0;
		for (size_t i = 0; i < b->n_fresh; i++) {
			if (BHDR(b->fresh[i])->zidx)
				nn++;
			else
				nc++;
		}
		for (size_t i = 0; i < b->n_fresh; i++)
			if (!slot_fits(b->fresh[i]->pub))
				return -EOVERFLOW;
		struct base *bs = calloc(1, sizeof(*bs));
		if (!bs || htab_init(&bs->names, htab_cap_for(nn)) < 0 ||
		    htab_init(&bs->chaos, htab_cap_for(nc)) < 0) {
			if (bs) {
				free(bs->names.slots);
				free(bs);
			}
			return -ENOMEM;
		}
		bs->refs = 1;
		for (size_t i = 0; i < b->n_fresh; i++) {
			/* a random slot each: fetch a few ahead */
			if (i + 8 < b->n_fresh) {
				const struct bnode *ahead = b->fresh[i + 8];
				const struct htab *ht = BHDR(ahead)->zidx ? &bs->names : &bs->chaos;
				__builtin_prefetch(&ht->slots[slot_home(ahead->hash, ht->cap)]);
			}
			const struct bnode *bn = b->fresh[i];
			htab_put_nogrow(BHDR(bn)->zidx ? &bs->names : &bs->chaos, bn->hash,
					bn->pub);
		}
		t->base = bs;
		t->n_names = nn;
		return 0;
	}
	for (size_t i = 0; i < b->n_fresh; i++) {
		const struct bnode *bn = b->fresh[i];
		bool chaos = !BHDR(bn)->zidx;
		const struct zone_node *h = BHDR(bn);
		if (!chaos && !old_find(b, false, h->name, h->len, bn->hash))
			t->n_names++;
		if (htab_replace(chaos ? &t->chaos_over : &t->over, h->name, h->len, bn->hash,
				 bn->pub) < 0)
			return -ENOMEM;
	}
	size_t over = (size_t)t->over.n + t->chaos_over.n;
	size_t base = (size_t)t->base->names.n + t->base->chaos.n;
	if (over > OVERLAY_MERGE_MIN && over * OVERLAY_MERGE_FRACTION > base)
		return tables_merge(t);
	return 0;
}

int zb_finish(struct zb *b, void **tables, size_t *n_names)
{
	struct render *r = render_ctx(b);
	if (!r)
		return -ENOMEM;
	struct tables *t = b->t;
	int ret;

	/* Only what this build made is rendered: in an incremental build the
	 * older nodes are shared with the snapshots still being read. */
	size_t n_cuts = 0;
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		struct zone_node *h = BHDR(bn);
		if (!h->zidx)
			continue;
		/* Delegations: an NS RRset below an apex cuts the zone. */
		if (!(h->flags & NF_APEX) && find_set(bn, DNS_T_NS)) {
			h->flags |= NF_CUT;
			n_cuts++;
		}
		if ((h->flags & NF_WILDCARD) && h->len > 2) {
			const uint8_t *pn = NODE_NAME(h) + 2;
			struct bnode *parent =
			    bfind_name(b, pn, h->len - 2u, dname_hash(pn, h->len - 2u));
			if (parent)
				BHDR(parent)->flags |= NF_WILD_CHILD;
		}
	}
	/* Cluster zones never delegate: the walk below only runs for static zones
	 * that do. */
	for (size_t i = 0; n_cuts && i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		struct zone_node *h = BHDR(bn);
		if (!h->zidx)
			continue;
		/* The highest cut above a node (closest to the apex) decides. */
		const uint8_t *p = NODE_NAME(h);
		size_t l = h->len;
		while (l > ZONE(t, h)->apex_len) {
			struct bnode *a = bfind_name(b, p, l, dname_hash(p, l));
			if (a && (BHDR(a)->flags & NF_CUT)) {
				bn->cut = a;
				if (a != bn)
					h->flags |= NF_BELOW_CUT;
			}
			l -= p[0] + 1u;
			p += p[0] + 1u;
		}
	}
	for (uint8_t zi = 0; zi < t->n_zones; zi++) {
		struct zb_zone *z = t->zones[zi];
		if (!b->declared[zi])
			continue; /* an older build's zone, answers unchanged */
		z->nxdomain = render_negative(r, z, 3);
		z->nodata = render_negative(r, z, 0);
		if (!z->nxdomain || !z->nodata) {
			log_error("zone without an SOA at its apex; cannot answer negatively");
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		if ((BHDR(bn)->flags & NF_CUT) && render_referral(r, bn) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		ret = BHDR(bn)->zidx ? render_node(b, r, bn) : publish_chaos_node(b, bn);
		if (ret < 0)
			return ret;
	}
	if ((ret = tables_publish(b)) < 0)
		return ret;
	*tables = t;
	*n_names = t->n_names;
	b->finished = true;
	return 0;
}

/* ---- lookup (query path: no allocation, no locks) -------------------------- */

static const struct zone_node *find_name(const struct tables *t, const uint8_t *key, size_t len)
{
	return layered_find(&t->base->names, &t->over, key, len, dname_hash(key, len));
}

static const struct zone_answer *node_answer(const struct zone_node *n, uint16_t qtype)
{
	const uint16_t *types = node_types(n);
	for (uint16_t i = 0; i < n->n_ans; i++)
		if (types[i] == qtype)
			return node_ans(n)[i];
	if (qtype == DNS_T_ANY && n->n_ans)
		return node_ans(n)[0];
	return NULL;
}

static int parse_dashed_ip(const uint8_t *label, struct net_addr *out)
{
	char text[64];
	size_t ll = label[0];
	if (ll == 0 || ll >= sizeof(text))
		return -1;
	int dashes = 0, digits_only = 1;
	for (size_t i = 0; i < ll; i++) {
		char c = (char)label[1 + i];
		if (c == '-')
			dashes++;
		else if (c < '0' || c > '9')
			digits_only = 0;
		text[i] = c;
	}
	text[ll] = '\0';
	if (dashes == 3 && digits_only) {
		for (size_t i = 0; i < ll; i++)
			if (text[i] == '-')
				text[i] = '.';
		/* inet_pton rejects leading zeros? It accepts them in glibc only
		 * as decimal, which is what kube-dns did too. */
		if (inet_pton(AF_INET, text, out->bytes) == 1) {
			out->family = AF_INET;
			return 0;
		}
		return -1;
	}
	for (size_t i = 0; i < ll; i++)
		if (text[i] == '-')
			text[i] = ':';
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

static void answer_from_node(const struct tables *t, const struct zone_node *n, uint16_t qtype,
			     struct zone_result *r)
{
	const struct zone_answer *a;
	if (n->flags & NF_BELOW_CUT || (n->flags & NF_CUT && qtype != DNS_T_DS)) {
		r->ans = node_referral(n);
		return;
	}
	if ((a = node_answer(n, qtype))) {
		r->ans = a;
		return;
	}
	if ((n->flags & NF_CNAME) && qtype != DNS_T_CNAME) {
		r->ans = node_cname_default(n);
		return;
	}
	r->ans = ZONE(t, n)->nodata;
}

void zb_lookup(const void *tables, const uint8_t *key, size_t keylen, uint16_t qtype,
	       struct zone_result *r)
{
	const struct tables *t = tables;
	r->kind = ZR_ANSWER;
	r->ans = NULL;
	r->dynamic = false;
	r->apex = NULL;
	r->apex_len = 0;
	const struct zone_node *n = find_name(t, key, keylen);
	if (n && n->zidx) {
		r->dynamic = ZONE(t, n)->dynamic;
		r->apex = ZONE(t, n)->apex;
		r->apex_len = ZONE(t, n)->apex_len;
		answer_from_node(t, n, qtype, r);
		return;
	}
	/* Closest encloser: drop labels from the left until a name exists. */
	const uint8_t *p = key;
	size_t l = keylen;
	int dropped = 0;
	while (l > 1) {
		l -= p[0] + 1u;
		p += p[0] + 1u;
		dropped++;
		const struct zone_node *ce = find_name(t, p, l);
		if (!ce || !ce->zidx)
			continue;
		const struct zb_zone *cz = ZONE(t, ce);
		r->dynamic = cz->dynamic;
		r->apex = cz->apex;
		r->apex_len = cz->apex_len;
		if (ce->flags & (NF_CUT | NF_BELOW_CUT)) {
			r->ans = node_referral(ce);
			return;
		}
		if (ce->flags & NF_WILD_CHILD) {
			uint8_t wk[DNAME_MAX + 2];
			wk[0] = 1;
			wk[1] = '*';
			memcpy(wk + 2, p, l);
			const struct zone_node *w = find_name(t, wk, l + 2);
			if (w) {
				answer_from_node(t, w, qtype, r);
				return;
			}
		}
		if (ce->flags & NF_POD_ROOT) {
			/* <ip>.<ns>.pod.<zone>: kube-dns's "pods insecure" records. */
			if (dropped == 1) {
				r->ans = cz->nodata;
				return;
			}
			if (dropped == 2 && parse_dashed_ip(key, &r->addr) == 0) {
				uint16_t want = r->addr.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
				if (qtype == want || qtype == DNS_T_ANY) {
					r->kind = ZR_POD_ADDR;
					r->ttl = cz->pod_ttl;
				} else {
					r->ans = cz->nodata;
				}
				return;
			}
		}
		r->ans = cz->nxdomain;
		return;
	}
	r->kind = ZR_REFUSED;
}

const struct zone_answer *zb_lookup_chaos(const void *tables, const uint8_t *key, size_t keylen,
					  uint16_t qtype)
{
	const struct tables *t = tables;
	const struct zone_node *n =
	    layered_find(&t->base->chaos, &t->chaos_over, key, keylen, dname_hash(key, keylen));
	if (!n || (qtype != DNS_T_TXT && qtype != DNS_T_ANY))
		return NULL;
	return node_ans(n)[0];
}
