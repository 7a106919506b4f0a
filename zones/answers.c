/* The answers of every name a build made, rendered when the build finishes:
 * one per RRset type, CNAME chains followed inside the data served, negative
 * answers and referrals; each name's published node laid out around them. */
#include "zones/build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "zones/render.h"

/* ---- negative answers and CNAME chains ------------------------------------- */

static uint32_t soa_negative_ttl(const struct rrset *soa)
{
	/* RFC 2308 section 5: the lesser of the SOA's TTL and its MINIMUM. */
	const struct rdata *rd = soa->head;
	size_t l1 = dname_len(rd->d);
	size_t l2 = dname_len(rd->d + l1);
	uint32_t min = wire_rd32(rd->d + l1 + l2 + 16);
	return min < soa->ttl ? min : soa->ttl;
}

/* The zone's SOA, its first record alone, with the negative TTL, into the
 * current section (owner as render_set takes it). */
static void render_negative_soa(struct render *r, struct rrset *soa, const uint8_t *owner,
				int owner_ptr)
{
	struct rrset one = *soa;
	one.n = 1;
	one.ttl = soa_negative_ttl(soa);
	struct rdata *saved = soa->head->next;
	soa->head->next = NULL;
	one.head = one.tail = soa->head;
	render_set(r, owner, owner_ptr, &one);
	soa->head->next = saved;
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
	render_negative_soa(r, soa, NULL, WIRE_HDR_LEN);
	return render_end_patched(r, rcode, true, z->apex_len);
}

/* The NXDOMAIN of a coming name: the zone's SOA with its TTL and MINIMUM
 * lowered to the zone's not_ready_ttl, so that no cache keeps it longer (RFC 2308,
 * 5), and the mark that makes the response carry the Extended DNS Error. */
static const struct zone_answer *render_not_ready(struct render *r, struct zb_zone *z)
{
	struct rrset *soa = find_set(zone_apex(r->b, z), DNS_T_SOA);
	if (!soa)
		return NULL;
	const struct rdata *rd = soa->head;
	union {
		struct rdata rd;
		uint8_t bytes[sizeof(struct rdata) + 2 * DNAME_MAX + 20];
	} low;
	if (rd->len > sizeof(low.bytes) - sizeof(struct rdata) || rd->len < 20)
		return NULL;
	memcpy(&low.rd, rd, sizeof(struct rdata) + rd->len);
	low.rd.next = NULL;
	uint8_t *minimum = low.rd.d + low.rd.len - 4;
	struct rrset one = *soa;
	one.n = 1;
	one.head = one.tail = &low.rd;
	uint32_t cap = z->not_ready_ttl;
	if (wire_rd32(minimum) > cap)
		wire_wr32(minimum, cap);
	one.ttl = soa_negative_ttl(soa) < cap ? soa_negative_ttl(soa) : cap;
	render_begin(r, NULL);
	r->cand->not_ready = 1;
	render_next_section(r);
	render_set(r, NULL, WIRE_HDR_LEN, &one);
	return render_end_patched(r, DNS_RCODE_NXDOMAIN, true, z->apex_len);
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
	uint8_t rcode = DNS_RCODE_NOERROR;
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
		render_set(r, owner, owner ? -1 : WIRE_HDR_LEN, cn);
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
				rcode = DNS_RCODE_NXDOMAIN;
		}
	}
chain_end:;
	struct rrset *soa = neg_zone ? find_set(zone_apex(b, neg_zone), DNS_T_SOA) : NULL;
	if (soa) {
		render_next_section(r);
		render_negative_soa(r, soa, neg_zone->apex, -1);
	}
	return render_end(r, rcode, true);
}

/* ---- a name's answers and its published node ------------------------------- */

/* Room for `cap` answers in the context's lists. */
static int node_lists_reserve(struct render *r, size_t cap)
{
	if (cap <= r->list_cap)
		return 0;
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
	return 0;
}

/* Renders a node's answers into the context's lists: one per RRset, then one
 * per type the end of its CNAME chain (`final`) has, and the chain's answer
 * for every other type. Returns how many typed answers, or an error. */
static int render_node_answers(struct render *r, struct bnode *bn, struct bnode *final,
			       const struct zone_answer **cname_default)
{
	const struct zone_node *h = BHDR(bn);
	uint16_t *types = r->list_types;
	const struct zone_answer **ans = r->list_ans;
	size_t cnt = 0;
	const uint8_t *qname = (h->flags & NF_WILDCARD) ? NULL : NODE_NAME(h);

	for (struct rrset *s = bn->sets; s; s = s->next) {
		render_begin(r, qname);
		if (s->type == DNS_T_A || s->type == DNS_T_AAAA || s->type == DNS_T_SRV)
			render_rotating(r);
		render_set(r, NULL, WIRE_HDR_LEN, s);
		render_next_section(r);
		render_next_section(r);
		render_additional_for(r, s);
		if (!(ans[cnt] = render_end(r, DNS_RCODE_NOERROR, true)))
			return -ENOMEM;
		types[cnt++] = s->type;
	}
	*cname_default = NULL;
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
		if (!(*cname_default = render_cname_chain(r, bn, 0, qname)))
			return -ENOMEM;
	}
	if (cnt > UINT16_MAX)
		return -E2BIG;
	return (int)cnt;
}

/* Lays out the published node (tables.h) of a build node whose `cnt` answers
 * are in the context's lists; `up` is its parent's published node, or NULL to
 * keep the whole name. */
static int node_layout(struct zb *b, struct render *r, struct bnode *bn, const struct zone_node *up,
		       size_t cnt, const struct zone_answer *cname_default)
{
	const struct zone_node *h = BHDR(bn);
	const uint16_t *types = r->list_types;
	const struct zone_answer **ans = r->list_ans;
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
	if (node_lists_reserve(r, cap + 1) < 0)
		return -ENOMEM;
	const struct zone_answer *cname_default;
	int cnt = render_node_answers(r, bn, final, &cname_default);
	if (cnt < 0)
		return cnt;
	if (bn->coming && !bn->real && cnt == 0 && ZONE(b->t, h)->not_ready) {
		r->list_types[0] = ZONE_T_COMING;
		r->list_ans[0] = ZONE(b->t, h)->not_ready;
		cnt = 1;
	}
	return node_layout(b, r, bn, up, (size_t)cnt, cname_default);
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

/* ---- CHAOS names ------------------------------------------------------------ */

int zb_chaos_txt(struct zb *b, const uint8_t *owner, const char *const *strings, size_t n)
{
	size_t len = dname_len(owner);
	uint32_t hash = dname_hash(owner, len);
	struct bnode *node = bfind(&b->chaos, owner, len, hash);
	if (!node && !(node = zb_node_new(b, &b->chaos, owner, len, hash)))
		return -ENOMEM;
	struct render *r = render_ctx_get(b);
	if (!r)
		return -ENOMEM;
	render_begin(r, owner);
	for (size_t i = 0; i < n; i++) {
		/* One RR per string; a long string becomes several
		 * character-strings of at most 255 bytes in that RR. */
		size_t sl = strlen(strings[i]);
		size_t pieces = sl ? (sl + 254) / 255 : 1;
		size_t before = r->w.len;
		writer_put16(&r->w, 0xC000 | WIRE_HDR_LEN);
		writer_put16(&r->w, DNS_T_TXT);
		writer_put16(&r->w, DNS_C_CH);
		writer_put32(&r->w, 0);
		writer_put16(&r->w, (uint16_t)(sl + pieces));
		for (size_t k = 0; k < pieces; k++) {
			size_t pl = sl - k * 255 > 255 ? 255 : sl - k * 255;
			uint8_t l8 = (uint8_t)pl;
			writer_put(&r->w, &l8, 1);
			writer_put(&r->w, strings[i] + k * 255, pl);
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

/* ---- finishing a build ------------------------------------------------------ */

/* Marks delegations (an NS RRset below an apex cuts the zone) and the parents
 * of wildcards. Returns the number of cuts. */
static size_t mark_cuts(struct zb *b)
{
	size_t n_cuts = 0;
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		struct zone_node *h = BHDR(bn);
		if (!h->zidx)
			continue;
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
	return n_cuts;
}

/* Gives every node at or below a cut that cut: the highest one above it
 * (closest to the apex) decides. */
static void mark_below_cuts(struct zb *b)
{
	for (size_t i = 0; i < b->n_fresh; i++) {
		struct bnode *bn = b->fresh[i];
		struct zone_node *h = BHDR(bn);
		if (!h->zidx)
			continue;
		const uint8_t *p = NODE_NAME(h);
		size_t l = h->len;
		while (l > ZONE(b->t, h)->apex_len) {
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
}

/* NXDOMAIN and NODATA of every zone this build declared (an older build's
 * zone keeps its answers). */
static int render_negatives(struct zb *b, struct render *r)
{
	struct tables *t = b->t;
	for (uint8_t zi = 0; zi < t->n_zones; zi++) {
		struct zb_zone *z = t->zones[zi];
		if (!b->declared[zi])
			continue;
		z->nxdomain = render_negative(r, z, DNS_RCODE_NXDOMAIN);
		z->nodata = render_negative(r, z, DNS_RCODE_NOERROR);
		z->not_ready = z->coming_names ? render_not_ready(r, z) : NULL;
		if (!z->nxdomain || !z->nodata || (z->coming_names && !z->not_ready)) {
			log_error("zone without an SOA at its apex; cannot answer negatively");
			return -EINVAL;
		}
	}
	return 0;
}

int zb_finish(struct zb *b, void **tables, size_t *n_names)
{
	struct render *r = render_ctx_get(b);
	if (!r)
		return -ENOMEM;
	int ret;

	/* Only what this build made is rendered: in an incremental build the
	 * older nodes are shared with the snapshots still being read. Cluster
	 * zones never delegate: the walk for names below a cut only runs for
	 * static zones that do. */
	if (mark_cuts(b))
		mark_below_cuts(b);
	if ((ret = render_negatives(b, r)) < 0)
		return ret;
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
	if ((ret = zb_tables_publish(b)) < 0)
		return ret;
	*tables = b->t;
	*n_names = b->t->n_names;
	b->finished = true;
	return 0;
}
