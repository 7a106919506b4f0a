/* Snapshot builder and lookup: RRsets in, prerendered wire answers and one
 * open-addressing hash table out. See builder.h for the contract. */
#include "zones/builder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "zones/dname.h"

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

void *arena_alloc(struct arena *a, size_t size)
{
	size = (size + 7u) & ~(size_t)7u;
	struct chunk *c = a->head;
	if (!c || c->cap - c->used < size) {
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
	}
	void *p = c->data + c->used;
	c->used += size;
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

/* ---- nodes and tables ----------------------------------------------------- */

enum {
	NF_APEX = 1,
	NF_CUT = 2,       /* delegation point (NS below an apex) */
	NF_BELOW_CUT = 4, /* glue or occluded data under a delegation */
	NF_WILD_CHILD = 8,
	NF_POD_ROOT = 16,
	NF_WILDCARD = 32, /* the node's first label is '*' */
	NF_CNAME = 64,
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

struct type_ans {
	uint16_t type;
	const struct zone_answer *ans;
};

/* A name. Kept small: there are several per Service. The wire name follows
 * the struct (NODE_NAME); what few nodes need (delegations, CNAMEs, the pod
 * root) lives in `ext`. */
struct node_ext {
	const struct zone_node *cut; /* NF_CUT node this node is at or under */
	const struct zone_answer *cname_default;
	const struct zone_answer *referral; /* on NF_CUT nodes */
	uint32_t pod_ttl;
};

struct zone_node {
	uint32_t hash;
	uint32_t gen; /* the build that made it: older nodes are shared, read-only */
	uint8_t len;
	uint8_t flags;
	uint8_t zidx; /* 1 + index into tables.zones; 0: no zone (CHAOS names) */
	uint16_t n_ans;
	struct type_ans *ans; /* sorted by type */
	struct node_ext *ext; /* NULL for most nodes */
	struct rrset *sets;   /* build time only */
};

#define NODE_NAME(n) ((const uint8_t *)((n) + 1))

struct zb_zone {
	uint8_t idx; /* position in tables.zones: the same in every build */
	uint8_t apex[DNAME_MAX];
	uint8_t apex_len;
	bool dynamic;
	struct zone_node *apex_node;
	const struct zone_answer *nxdomain;
	const struct zone_answer *nodata;
};

struct slot {
	uint32_t hash;
	struct zone_node *node;
};

struct htab {
	struct slot *slots;
	uint32_t mask;
	uint32_t n;
};

#define MAX_ZONES 72

struct tables {
	struct htab names;
	struct htab chaos;
	struct zb_zone *zones[MAX_ZONES];
	uint8_t n_zones;
	uint32_t gen;
};

#define ZONE(t, n) ((t)->zones[(n)->zidx - 1])

struct zb {
	struct arena *out; /* nodes, names, answers: lives as long as the snapshot */
	struct arena *tmp; /* rdata and RRsets: freed by zb_free */
	struct tables *t;
	bool incremental;  /* t started as a copy of an older build's tables */
	bool finished;     /* zb_finish handed the tables over */
	/* the nodes this build made, in order: what zb_finish renders */
	struct zone_node **fresh;
	size_t n_fresh, cap_fresh;
	struct render *r; /* one rendering context, reused for every answer */
	int log_truncated;
};

static int htab_init(struct htab *h, uint32_t cap)
{
	h->slots = calloc(cap, sizeof(*h->slots));
	if (!h->slots)
		return -ENOMEM;
	h->mask = cap - 1;
	h->n = 0;
	return 0;
}

static struct zone_node *htab_find(const struct htab *h, const uint8_t *key, size_t len,
				   uint32_t hash)
{
	if (!h->slots)
		return NULL;
	for (uint32_t i = hash & h->mask;; i = (i + 1) & h->mask) {
		const struct slot *s = &h->slots[i];
		if (!s->node)
			return NULL;
		if (s->hash == hash && s->node->len == len && memcmp(NODE_NAME(s->node), key, len) == 0)
			return s->node;
	}
}

static void htab_put_nogrow(struct htab *h, struct zone_node *n)
{
	uint32_t i = n->hash & h->mask;
	while (h->slots[i].node)
		i = (i + 1) & h->mask;
	h->slots[i].hash = n->hash;
	h->slots[i].node = n;
	h->n++;
}

static int htab_put(struct htab *h, struct zone_node *n)
{
	/* Load factor at most 1/2 keeps misses (NXDOMAIN, the common case under a
	 * search path) to a couple of probes. */
	if (!h->slots || (h->n + 1) * 2 > h->mask + 1) {
		struct htab nh;
		uint32_t cap = h->slots ? (h->mask + 1) * 2 : 1024;
		if (htab_init(&nh, cap) < 0)
			return -ENOMEM;
		if (h->slots)
			for (uint32_t i = 0; i <= h->mask; i++)
				if (h->slots[i].node)
					htab_put_nogrow(&nh, h->slots[i].node);
		free(h->slots);
		*h = nh;
	}
	htab_put_nogrow(h, n);
	return 0;
}

struct zb *zb_new(struct arena *out)
{
	struct zb *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->out = out;
	b->tmp = arena_new();
	b->t = arena_alloc(out, sizeof(struct tables));
	if (b->t)
		b->t->gen = 1;
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
	free(b->r);
	free(b->fresh);
	free(b);
}

void zb_tables_free(void *tables)
{
	struct tables *t = tables;
	if (!t)
		return;
	free(t->names.slots);
	free(t->chaos.slots);
	t->names.slots = t->chaos.slots = NULL;
}

static struct zone_node *node_get(struct zb *b, struct htab *h, const uint8_t *name, size_t len,
				  bool create)
{
	uint32_t hash = dname_hash(name, len);
	struct zone_node *n = htab_find(h, name, len, hash);
	if (n || !create)
		return n;
	/* The name lives right behind its node: one allocation, one cache line
	 * more often than not. */
	n = arena_alloc(b->out, sizeof(*n) + len);
	if (!n)
		return NULL;
	memcpy((uint8_t *)(n + 1), name, len);
	n->len = (uint8_t)len;
	n->hash = hash;
	n->gen = b->t->gen;
	if (name[0] == 1 && name[1] == '*')
		n->flags |= NF_WILDCARD;
	if (htab_put(h, n) < 0)
		return NULL;
	if (b->n_fresh == b->cap_fresh) {
		size_t cap = b->cap_fresh ? b->cap_fresh * 2 : 1024;
		struct zone_node **nf = realloc(b->fresh, cap * sizeof(*nf));
		if (!nf)
			return NULL;
		b->fresh = nf;
		b->cap_fresh = cap;
	}
	b->fresh[b->n_fresh++] = n;
	return n;
}

/* Removes a name from a table (backward-shift deletion keeps every probe
 * sequence intact without tombstones). Returns the node that was there. */
static struct zone_node *htab_remove(struct htab *h, const uint8_t *key, size_t len)
{
	if (!h->slots)
		return NULL;
	uint32_t hash = dname_hash(key, len);
	uint32_t i = hash & h->mask;
	for (;; i = (i + 1) & h->mask) {
		struct slot *sl = &h->slots[i];
		if (!sl->node)
			return NULL;
		if (sl->hash == hash && sl->node->len == len &&
		    memcmp(NODE_NAME(sl->node), key, len) == 0)
			break;
	}
	struct zone_node *gone = h->slots[i].node;
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & h->mask;
		if (!h->slots[j].node)
			break;
		uint32_t home = h->slots[j].hash & h->mask;
		/* move j back into the hole at i unless its home lies in (i, j] */
		bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (between)
			continue;
		h->slots[i] = h->slots[j];
		i = j;
	}
	h->slots[i].node = NULL;
	h->slots[i].hash = 0;
	h->n--;
	return gone;
}

static struct node_ext *node_ext(struct zb *b, struct zone_node *n)
{
	if (!n->ext)
		n->ext = arena_alloc(b->out, sizeof(*n->ext));
	return n->ext;
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
	if (idx < t->n_zones && t->zones[idx]->apex_node &&
	    t->zones[idx]->apex_node->gen == t->gen)
		return -EEXIST;
	if (idx == t->n_zones && (b->incremental || t->n_zones == MAX_ZONES))
		return b->incremental ? -EAGAIN : -ENOSPC;
	struct zb_zone *z = arena_alloc(b->out, sizeof(*z));
	if (!z)
		return -ENOMEM;
	memcpy(z->apex, apex, len);
	z->apex_len = (uint8_t)len;
	z->idx = idx;
	/* The apex carries the SOA, whose serial changes with every build: an
	 * older apex node is replaced, its descendants stay. */
	htab_remove(&t->names, apex, len);
	z->apex_node = node_get(b, &t->names, apex, len, true);
	if (!z->apex_node)
		return -ENOMEM;
	z->apex_node->zidx = (uint8_t)(idx + 1);
	z->apex_node->flags |= NF_APEX;
	t->zones[idx] = z;
	if (idx == t->n_zones)
		t->n_zones++;
	*out = z;
	return 0;
}

/* Creates the node and its empty non-terminal ancestors up to the apex. A node
 * already claimed by a deeper zone keeps that zone. In an incremental build
 * the node that receives data must be new: data on a name an older build
 * made (a PTR two Services share) needs a full build (-EAGAIN). */
static int node_in_zone(struct zb *b, struct zb_zone *z, const uint8_t *owner, size_t len,
			bool for_data, struct zone_node **out)
{
	struct tables *t = b->t;
	struct zone_node *leaf = NULL;
	const uint8_t *p = owner;
	size_t l = len;
	while (l >= z->apex_len) {
		struct zone_node *n = node_get(b, &t->names, p, l, true);
		if (!n)
			return -ENOMEM;
		if (!leaf) {
			leaf = n;
			if (for_data && n->gen != t->gen)
				return -EAGAIN;
		}
		/* A node already in this zone has its ancestors already: stop. */
		if (n->zidx == z->idx + 1 && n != leaf)
			break;
		if (n->gen != t->gen)
			break; /* older and shared: it and its ancestors exist */
		if (!n->zidx || t->zones[n->zidx - 1]->apex_len < z->apex_len)
			n->zidx = (uint8_t)(z->idx + 1);
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
	struct zone_node *n;
	int ret = node_in_zone(b, z, owner, len, true, &n);
	if (ret < 0)
		return ret;
	struct rrset *s = n->sets;
	while (s && s->type != type)
		s = s->next;
	if (!s) {
		s = arena_alloc(b->tmp, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->type = type;
		s->ttl = ttl;
		/* Keep RRsets in insertion order: the SOA first at the apex. */
		struct rrset **tail = &n->sets;
		while (*tail)
			tail = &(*tail)->next;
		*tail = s;
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
	if (type == T_CNAME)
		n->flags |= NF_CNAME;
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
	struct zone_node *n;
	return node_in_zone(b, z, name, len, false, &n);
}

int zb_mark_pod_root(struct zb *b, struct zb_zone *z, const uint8_t *name, uint32_t ttl)
{
	struct zone_node *n;
	int ret = node_in_zone(b, z, name, dname_len(name), true, &n);
	if (ret < 0)
		return ret;
	if (!node_ext(b, n))
		return -ENOMEM;
	n->flags |= NF_POD_ROOT;
	n->ext->pod_ttl = ttl;
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
};

static const uint8_t *dict_find(struct writer *w, const uint8_t *name, size_t len, uint16_t *off)
{
	uint32_t h = dname_hash(name, len);
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE; i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen)
			return NULL;
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0) {
			*off = e->off;
			return e->name;
		}
	}
	return NULL;
}

static void dict_add(struct writer *w, const uint8_t *name, size_t len, size_t off)
{
	if (off >= 0x3FFF || len <= 1)
		return;
	uint32_t h = dname_hash(name, len);
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE / 2; i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen) {
			e->gen = w->gen;
			e->hash = h;
			e->off = (uint16_t)off;
			e->len = (uint8_t)len;
			e->name = name;
			return;
		}
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
			return;
	}
}

/* Registers every suffix of a name that sits at message offset `off`. */
static void dict_add_all(struct writer *w, const uint8_t *name, size_t off)
{
	size_t len = dname_len(name);
	for (size_t i = 0; name[i]; i += name[i] + 1u)
		dict_add(w, name + i, len - i, off + i);
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
	size_t start = w->base + w->len;
	for (size_t i = 0; name[i]; i += name[i] + 1u) {
		uint16_t off;
		if (compress && w->compress && dict_find(w, name + i, len - i, &off)) {
			put(w, name, i);
			put16(w, (uint16_t)(0xC000 | off));
			if (!w->full)
				for (size_t j = 0; j < i; j += name[j] + 1u)
					dict_add(w, name + j, len - j, start + j);
			return;
		}
	}
	put(w, name, len);
	if (!w->full && w->compress)
		dict_add_all(w, name, start);
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
	put16(w, C_IN);
	put32(w, ttl);
	size_t rdlen_at = w->len;
	put16(w, 0);
	size_t rstart = w->len;
	const uint8_t *d = rd->d;
	/* RFC 3597 section 4: only the types of RFC 1035 have compressed names. */
	switch (type) {
	case T_NS:
	case T_CNAME:
	case T_PTR:
		put_name(w, d, true);
		break;
	case T_MX:
		put(w, d, 2);
		put_name(w, d + 2, true);
		break;
	case T_SOA: {
		size_t l1 = dname_len(d);
		size_t l2 = dname_len(d + l1);
		put_name(w, d, true);
		put_name(w, d + l1, true);
		put(w, d + l1 + l2, 20);
		break;
	}
	case T_SRV: {
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

static struct rrset *find_set(const struct zone_node *n, uint16_t type)
{
	for (struct rrset *s = n ? n->sets : NULL; s; s = s->next)
		if (s->type == type)
			return s;
	return NULL;
}

/* The rendering context for one answer. */
struct render {
	struct zb *b;
	struct writer w;
	uint8_t scratch[MSG_LIMIT];
	struct dict_entry dict[DICT_SIZE];
	uint16_t counts[3];
	uint16_t section;
	size_t an_ns_len;
	/* names already given addresses in the additional section */
	const uint8_t *added[64];
	size_t n_added;
};

static struct render *render_ctx(struct zb *b)
{
	if (!b->r) {
		b->r = calloc(1, sizeof(*b->r));
		if (b->r)
			b->r->b = b;
	}
	return b->r;
}

/* Starts an answer for a question of `qname` (NULL: a wildcard or synthesized
 * owner, no compression against the question). */
static void render_begin(struct render *r, const uint8_t *qname)
{
	memset(r->counts, 0, sizeof(r->counts));
	r->section = 0;
	r->n_added = 0;
	r->w.buf = r->scratch;
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
	if (qname)
		dict_add_all(&r->w, qname, 12);
}

static void render_set(struct render *r, const uint8_t *owner, int owner_ptr, const struct rrset *s)
{
	for (const struct rdata *rd = s->head; rd; rd = rd->next) {
		size_t before = r->w.len;
		put_rr(&r->w, owner, owner_ptr, s->type, s->ttl, rd);
		if (r->w.full) {
			r->w.len = before;
			r->w.full = true;
			if (!r->b->log_truncated++)
				log_warn("an RRset does not fit in 64 KiB; it is served cut short");
			return;
		}
		r->counts[r->section]++;
	}
}

static void render_next_section(struct render *r)
{
	r->section++;
	if (r->section == 2)
		r->an_ns_len = r->w.len;
}

/* Addresses of a target name, if svcdns serves it, for the additional section. */
static void render_addresses_of(struct render *r, const uint8_t *target)
{
	size_t len = dname_len(target);
	for (size_t i = 0; i < r->n_added; i++)
		if (memcmp(r->added[i], target, len) == 0)
			return;
	if (r->n_added < 64)
		r->added[r->n_added++] = target;
	struct zone_node *n = htab_find(&r->b->t->names, target, len, dname_hash(target, len));
	if (!n)
		return;
	struct rrset *a = find_set(n, T_A), *aaaa = find_set(n, T_AAAA);
	bool was_full = r->w.full;
	if (a)
		render_set(r, NODE_NAME(n), -1, a);
	if (aaaa)
		render_set(r, NODE_NAME(n), -1, aaaa);
	/* The additional section is optional: running out of room there is not
	 * an error worth a log line. */
	r->w.full = was_full;
}

static void render_additional_for(struct render *r, const struct rrset *s)
{
	for (const struct rdata *rd = s->head; rd; rd = rd->next) {
		if (s->type == T_SRV && rd->len > 7)
			render_addresses_of(r, rd->d + 6);
		else if (s->type == T_MX && rd->len > 3)
			render_addresses_of(r, rd->d + 2);
		else if (s->type == T_NS)
			render_addresses_of(r, rd->d);
	}
}

static const struct zone_answer *render_end(struct render *r, uint8_t rcode, bool aa)
{
	if (r->section < 2)
		r->an_ns_len = r->w.len;
	struct zone_answer *a = arena_alloc(r->b->out, sizeof(*a) + r->w.len);
	if (!a)
		return NULL;
	a->an = r->counts[0];
	a->ns = r->counts[1];
	a->ar = r->counts[2];
	a->len = (uint16_t)r->w.len;
	a->len_an_ns = (uint16_t)r->an_ns_len;
	a->rcode = rcode;
	a->aa = aa;
	memcpy(a->data, r->scratch, r->w.len);
	return a;
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
	struct rrset *soa = find_set(z->apex_node, T_SOA);
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
	struct zone_answer *a = (struct zone_answer *)render_end(r, rcode, true);
	if (a) {
		a->patch_owner = 1;
		a->apex_len = z->apex_len;
	}
	return a;
}

static int add_ans(struct zb *b, struct zone_node *n, struct type_ans *list, uint16_t *cnt,
		   uint16_t type, const struct zone_answer *a)
{
	(void)b;
	(void)n;
	if (!a)
		return -ENOMEM;
	for (uint16_t i = 0; i < *cnt; i++)
		if (list[i].type == type)
			return 0;
	list[*cnt].type = type;
	list[*cnt].ans = a;
	(*cnt)++;
	return 0;
}

/* Follows a CNAME chain from `n` inside the data svcdns serves. Renders the
 * chain and, if the final name has one, the RRset of `qtype`. */
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

/* Where a CNAME chain from `n` ends (NULL when it leaves the data or loops). */
static struct zone_node *cname_final(struct zb *b, struct zone_node *n)
{
	struct zone_node *cur = n;
	for (int depth = 0; depth < 8 && cur; depth++) {
		struct rrset *cn = find_set(cur, T_CNAME);
		if (!cn)
			return cur;
		size_t tl = dname_len(cn->head->d);
		cur = htab_find(&b->t->names, cn->head->d, tl, dname_hash(cn->head->d, tl));
	}
	return NULL;
}

/* Follows a CNAME chain from `n` inside the data svcdns serves. Renders the
 * chain and, if the final name has one, the RRset of `qtype`; when the chain
 * ends inside a zone we serve without that data, the final rcode and the
 * zone's SOA say so (RFC 6604, RFC 2308 section 2.1). */
static const struct zone_answer *render_cname_chain(struct render *r, struct zone_node *n,
						    uint16_t qtype, const uint8_t *qname)
{
	render_begin(r, qname);
	uint8_t rcode = 0;
	struct zone_node *cur = n;
	struct zb_zone *neg_zone = NULL;
	const uint8_t *owner = NULL; /* NULL: the question itself */
	const struct zone_node *seen[8];
	for (int depth = 0; depth < 8 && cur; depth++) {
		/* A loop ends the chain where it closes: each CNAME once. */
		for (int k = 0; k < depth; k++)
			if (seen[k] == cur)
				goto chain_end;
		seen[depth] = cur;
		struct rrset *cn = find_set(cur, T_CNAME);
		if (!cn) {
			struct rrset *s = find_set(cur, qtype);
			if (s)
				render_set(r, NODE_NAME(cur), -1, s);
			else
				neg_zone = ZONE(r->b->t, cur);
			break;
		}
		if (owner)
			render_set(r, owner, -1, cn);
		else
			render_set(r, NULL, 12, cn);
		const uint8_t *target = cn->head->d;
		owner = target;
		size_t tl = dname_len(target);
		cur = htab_find(&r->b->t->names, target, tl, dname_hash(target, tl));
		if (!cur && (neg_zone = zone_of(r->b, target, tl)))
			rcode = 3;
	}
chain_end:
	if (neg_zone) {
		struct rrset *soa = find_set(neg_zone->apex_node, T_SOA);
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
	}
	return render_end(r, rcode, true);
}

static int render_node(struct zb *b, struct render *r, struct zone_node *n)
{
	size_t nsets = 0;
	for (struct rrset *s = n->sets; s; s = s->next)
		nsets++;
	/* one answer per type, plus ANY, plus CNAME chains */
	size_t cap = nsets + 1; /* + ANY */
	struct zone_node *final = (n->flags & NF_CNAME) ? cname_final(b, n) : NULL;
	for (struct rrset *s = final ? final->sets : NULL; s; s = s->next)
		cap++;
	struct type_ans *list = arena_alloc(b->out, cap * sizeof(*list));
	if (!list)
		return -ENOMEM;
	uint16_t cnt = 0;
	const uint8_t *qname = (n->flags & NF_WILDCARD) ? NULL : NODE_NAME(n);
	int owner_ptr = 12;

	for (struct rrset *s = n->sets; s; s = s->next) {
		render_begin(r, qname);
		render_set(r, NULL, owner_ptr, s);
		render_next_section(r);
		render_next_section(r);
		render_additional_for(r, s);
		if (add_ans(b, n, list, &cnt, s->type, render_end(r, 0, true)) < 0)
			return -ENOMEM;
	}
	/* ANY gets one RRset (RFC 8482 section 4.2): the first one, already
	 * rendered, so ANY costs no memory and cannot amplify. */
	if (cnt > 0 && add_ans(b, n, list, &cnt, T_ANY, list[0].ans) < 0)
		return -ENOMEM;
	if (n->flags & NF_CNAME) {
		for (struct rrset *s = final ? final->sets : NULL; s; s = s->next)
			if (s->type != T_CNAME &&
			    add_ans(b, n, list, &cnt, s->type, render_cname_chain(r, n, s->type, qname)) < 0)
				return -ENOMEM;
		if (!node_ext(b, n))
			return -ENOMEM;
		n->ext->cname_default = render_cname_chain(r, n, 0, qname);
		if (!n->ext->cname_default)
			return -ENOMEM;
	}
	/* sort by type for a short scan at query time */
	for (uint16_t i = 1; i < cnt; i++)
		for (uint16_t j = i; j > 0 && list[j - 1].type > list[j].type; j--) {
			struct type_ans t = list[j];
			list[j] = list[j - 1];
			list[j - 1] = t;
		}
	n->ans = list;
	n->n_ans = cnt;
	return 0;
}

static int render_referral(struct render *r, struct zone_node *cut)
{
	struct rrset *ns = find_set(cut, T_NS);
	render_begin(r, NULL);
	render_next_section(r);
	render_set(r, NODE_NAME(cut), -1, ns);
	render_next_section(r);
	render_additional_for(r, ns);
	if (!node_ext(r->b, cut))
		return -ENOMEM;
	cut->ext->referral = render_end(r, 0, false);
	return cut->ext->referral ? 0 : -ENOMEM;
}

int zb_chaos_txt(struct zb *b, const uint8_t *owner, const char *const *strings, size_t n)
{
	size_t len = dname_len(owner);
	struct zone_node *node = node_get(b, &b->t->chaos, owner, len, true);
	if (!node)
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
		put16(&r->w, T_TXT);
		put16(&r->w, C_CH);
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
	const struct zone_answer *a = render_end(r, 0, true);
	if (!a)
		return -ENOMEM;
	node->ans = arena_alloc(b->out, sizeof(struct type_ans));
	if (!node->ans)
		return -ENOMEM;
	node->ans[0].type = T_TXT;
	node->ans[0].ans = a;
	node->n_ans = 1;
	return 0;
}

static int htab_copy(struct htab *dst, const struct htab *src)
{
	*dst = *src;
	dst->slots = NULL;
	if (!src->slots)
		return 0;
	size_t bytes = ((size_t)src->mask + 1) * sizeof(*src->slots);
	dst->slots = malloc(bytes);
	if (!dst->slots)
		return -ENOMEM;
	memcpy(dst->slots, src->slots, bytes);
	return 0;
}

struct zb *zb_new_incremental(struct arena *out, const void *prev_tables)
{
	const struct tables *pt = prev_tables;
	struct zb *b = zb_new(out);
	if (!b)
		return NULL;
	struct tables *t = b->t;
	if (htab_copy(&t->names, &pt->names) < 0 || htab_copy(&t->chaos, &pt->chaos) < 0) {
		zb_free(b);
		return NULL;
	}
	memcpy(t->zones, pt->zones, sizeof(t->zones));
	t->n_zones = pt->n_zones;
	t->gen = pt->gen + 1;
	b->incremental = true;
	return b;
}

int zb_remove_owned(struct zb *b, const struct zb *scratch, const uint8_t *const *roots,
		    size_t n_roots)
{
	struct tables *t = b->t;
	for (size_t i = 0; i < scratch->n_fresh; i++) {
		const struct zone_node *sn = scratch->fresh[i];
		const uint8_t *name = NODE_NAME(sn);
		if (!sn->zidx) {
			htab_remove(&t->chaos, name, sn->len);
			continue;
		}
		bool owned = sn->sets && !(sn->flags & NF_APEX);
		for (size_t k = 0; k < n_roots && !owned; k++)
			owned = name_under(name, sn->len, roots[k], dname_len(roots[k]));
		if (!owned)
			continue;
		const struct zone_node *cur = htab_find(&t->names, name, sn->len, sn->hash);
		if (!cur)
			continue;
		/* A name whose data comes from more than one Service (a pod address
		 * behind two headless Services) cannot lose one part here. */
		for (uint16_t k = 0; k < cur->n_ans; k++)
			if (cur->ans[k].type != T_ANY && cur->ans[k].ans->an > 1 &&
			    find_set(sn, cur->ans[k].type) &&
			    find_set(sn, cur->ans[k].type)->n != cur->ans[k].ans->an)
				return -EAGAIN;
		htab_remove(&t->names, name, sn->len);
	}
	return 0;
}

int zb_data_rrs(struct zb *b, zb_rr_cb cb, void *arg)
{
	for (size_t i = 0; i < b->n_fresh; i++) {
		const struct zone_node *n = b->fresh[i];
		if (!n->zidx || (n->flags & NF_APEX))
			continue;
		for (const struct rrset *s = n->sets; s; s = s->next)
			for (const struct rdata *r = s->head; r; r = r->next) {
				int ret = cb(arg, NODE_NAME(n), s->type, s->ttl, r->d, r->len);
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
	const struct rrset *soa = find_set(z->apex_node, T_SOA);
	if (!soa)
		return -ENOENT;
	int ret = cb(arg, z->apex, T_SOA, soa->ttl, soa->head->d, soa->head->len);
	if (ret < 0)
		return ret;
	/* The rest in build order: names as they were first created. */
	for (size_t i = 0; i < b->n_fresh; i++) {
		const struct zone_node *n = b->fresh[i];
		if (!n->zidx || t->zones[n->zidx - 1] != z)
			continue;
		for (const struct rrset *s = n->sets; s; s = s->next) {
			if (s->type == T_SOA && n == z->apex_node)
				continue;
			for (const struct rdata *r = s->head; r; r = r->next)
				if ((ret = cb(arg, NODE_NAME(n), s->type, s->ttl, r->d, r->len)) < 0)
					return ret;
		}
	}
	return 0;
}

int zb_finish(struct zb *b, void **tables, size_t *n_names)
{
	int ret = -ENOMEM;
	struct render *r = render_ctx(b);
	if (!r)
		return -ENOMEM;
	struct tables *t = b->t;
	struct htab *h = &t->names;

	/* Only what this build made is rendered: in an incremental build the
	 * older nodes are shared with the snapshots still being read. CHAOS
	 * nodes (no zone) were rendered when they were added. */
	size_t n_cuts = 0;
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct zone_node *n = b->fresh[i];
		if (!n->zidx)
			continue;
		/* Delegations: an NS RRset below an apex cuts the zone. */
		if (!(n->flags & NF_APEX) && find_set(n, T_NS)) {
			n->flags |= NF_CUT;
			n_cuts++;
		}
		if ((n->flags & NF_WILDCARD) && n->len > 2) {
			struct zone_node *parent = htab_find(h, NODE_NAME(n) + 2, n->len - 2u,
							     dname_hash(NODE_NAME(n) + 2, n->len - 2u));
			if (parent && parent->gen == t->gen)
				parent->flags |= NF_WILD_CHILD;
		}
	}
	/* Cluster zones never delegate: the walk below only runs for static zones
	 * that do. */
	for (size_t i = 0; n_cuts && i < b->n_fresh; i++) {
		struct zone_node *n = b->fresh[i];
		if (!n->zidx)
			continue;
		/* The highest cut above a node (closest to the apex) decides. */
		const uint8_t *p = NODE_NAME(n);
		size_t l = n->len;
		while (l > ZONE(t, n)->apex_len) {
			struct zone_node *a = htab_find(h, p, l, dname_hash(p, l));
			if (a && (a->flags & NF_CUT)) {
				if (!node_ext(b, n))
					goto out;
				n->ext->cut = a;
				if (a != n)
					n->flags |= NF_BELOW_CUT;
			}
			l -= p[0] + 1u;
			p += p[0] + 1u;
		}
	}
	for (uint8_t zi = 0; zi < t->n_zones; zi++) {
		struct zb_zone *z = t->zones[zi];
		if (z->apex_node->gen != t->gen)
			continue; /* an older build's zone, answers unchanged */
		z->nxdomain = render_negative(r, z, 3);
		z->nodata = render_negative(r, z, 0);
		if (!z->nxdomain || !z->nodata) {
			log_error("zone without an SOA at its apex; cannot answer negatively");
			ret = -EINVAL;
			goto out;
		}
	}
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct zone_node *n = b->fresh[i];
		if (!n->zidx)
			continue;
		if ((n->flags & NF_CUT) && render_referral(r, n) < 0)
			goto out;
		if (render_node(b, r, n) < 0)
			goto out;
	}
	for (size_t i = 0; i < b->n_fresh; i++)
		b->fresh[i]->sets = NULL; /* the tmp arena goes away */
	*tables = t;
	*n_names = h->n;
	b->finished = true;
	ret = 0;
out:
	return ret;
}

/* ---- lookup (query path: no allocation, no locks) -------------------------- */

static const struct zone_answer *node_answer(const struct zone_node *n, uint16_t qtype)
{
	for (uint16_t i = 0; i < n->n_ans; i++)
		if (n->ans[i].type == qtype)
			return n->ans[i].ans;
	return NULL;
}

static int parse_dashed_ip(const uint8_t *label, struct model_addr *out)
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
	if (n->flags & NF_BELOW_CUT || (n->flags & NF_CUT && qtype != T_DS)) {
		r->ans = n->ext->cut->ext->referral;
		return;
	}
	if ((a = node_answer(n, qtype))) {
		r->ans = a;
		return;
	}
	if ((n->flags & NF_CNAME) && qtype != T_CNAME) {
		r->ans = n->ext->cname_default;
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
	const struct zone_node *n = htab_find(&t->names, key, keylen, dname_hash(key, keylen));
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
		const struct zone_node *ce = htab_find(&t->names, p, l, dname_hash(p, l));
		if (!ce || !ce->zidx)
			continue;
		const struct zb_zone *cz = ZONE(t, ce);
		r->dynamic = cz->dynamic;
		r->apex = cz->apex;
		r->apex_len = cz->apex_len;
		if (ce->flags & (NF_CUT | NF_BELOW_CUT)) {
			r->ans = ce->ext->cut->ext->referral;
			return;
		}
		if (ce->flags & NF_WILD_CHILD) {
			uint8_t wk[DNAME_MAX + 2];
			wk[0] = 1;
			wk[1] = '*';
			memcpy(wk + 2, p, l);
			const struct zone_node *w =
			    htab_find(&t->names, wk, l + 2, dname_hash(wk, l + 2));
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
				uint16_t want = r->addr.family == AF_INET ? T_A : T_AAAA;
				if (qtype == want || qtype == T_ANY) {
					r->kind = ZR_POD_ADDR;
					r->ttl = ce->ext->pod_ttl;
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
	const struct zone_node *n = htab_find(&t->chaos, key, keylen, dname_hash(key, keylen));
	if (!n || (qtype != T_TXT && qtype != T_ANY))
		return NULL;
	return n->ans[0].ans;
}
