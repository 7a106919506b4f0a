/* Collecting a build: zones, names with their empty non-terminal ancestors,
 * and RRsets, in the build's own table (or, for an incremental build, beside
 * an older build's tables); and reading the records back for transfers. */
#include "zones/build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zones/render.h"

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
	render_ctx_free(b->r);
	free(b->fresh);
	free(b);
}

void zb_set_rotate(struct zb *b, bool rotate)
{
	b->rotate = rotate;
}

void zb_set_tier(struct zb *b, unsigned tier)
{
	b->tier = (uint8_t)(tier < ZB_TIERS ? tier : ZB_TIERS - 1);
}

void zb_set_zone(struct zb *b, uint32_t zone)
{
	b->zone = zone;
}

int zb_reserve(struct zb *b, size_t n_names)
{
	uint32_t cap = htab_cap_for(n_names * 15 / 14); /* a load of 2/3 at most */
	if (b->names.cap >= cap)
		return 0;
	return htab_grow(&b->names, cap);
}

struct bnode *zb_node_new(struct zb *b, struct htab *h, const uint8_t *name, size_t len,
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
	if (!z->apex_node && !(z->apex_node = zb_node_new(b, &b->names, apex, len, hash)))
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
 * when the name is an older build's. `real`: the name is not a coming one
 * (zb_name_coming), nor are its ancestors then. */
static int node_in_zone(struct zb *b, struct zb_zone *z, const uint8_t *owner, size_t len,
			bool for_data, bool real, struct bnode **out)
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
			if (!(n = zb_node_new(b, &b->names, p, l, hash)))
				return -ENOMEM;
		}
		if (child && !child->up && !child->up_old)
			child->up = n;
		child = n;
		n->real = n->real || real;
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
		if ((ret = node_in_zone(b, z, owner, len, true, true, &n)) < 0)
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
	r->tier = b->tier;
	r->zone = b->zone;
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

bool zb_has_type(struct zb *b, const uint8_t *owner, uint16_t type)
{
	size_t len = dname_len(owner);
	return find_set(bfind_name(b, owner, len, dname_hash(owner, len)), type) != NULL;
}

int zb_name_add(struct zb *b, struct zb_zone *z, const uint8_t *name)
{
	size_t len = dname_len(name);
	if (!name_under(name, len, z->apex, z->apex_len))
		return -EINVAL;
	struct bnode *n;
	return node_in_zone(b, z, name, len, false, true, &n);
}

void zb_zone_coming_names(struct zb_zone *z, uint32_t negative_ttl)
{
	z->coming_names = true;
	z->not_ready_ttl = negative_ttl;
}

int zb_name_coming(struct zb *b, struct zb_zone *z, const uint8_t *name)
{
	size_t len = dname_len(name);
	if (!z->coming_names || !name_under(name, len, z->apex, z->apex_len))
		return -EINVAL;
	if (old_find(b, false, name, len, dname_hash(name, len)))
		return 0; /* an older build's name: what it holds is served */
	struct bnode *n;
	int ret = node_in_zone(b, z, name, len, false, false, &n);
	if (ret < 0)
		return ret;
	if (n)
		n->coming = true;
	return 0;
}

int zb_mark_pod_root(struct zb *b, struct zb_zone *z, const uint8_t *name, uint32_t ttl)
{
	struct bnode *n;
	int ret = node_in_zone(b, z, name, dname_len(name), true, true, &n);
	if (ret < 0)
		return ret;
	BHDR(n)->flags |= NF_POD_ROOT;
	z->pod_ttl = ttl;
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
