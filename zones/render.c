/* Rendering one answer: RRsets into its sections, the addresses of the names
 * it points at in the additional section, a report when it is cut short, and
 * identical answers stored once. See render.h. */
#include "zones/render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "wire/dname.h"

struct render *render_ctx_get(struct zb *b)
{
	if (!b->r) {
		b->r = calloc(1, sizeof(*b->r));
		if (!b->r)
			return NULL;
		b->r->b = b;
		/* data, and the rotation table: 2 bytes per record of at
		 * least 16 */
		b->r->cand = malloc(sizeof(struct zone_answer) + MSG_LIMIT + MSG_LIMIT / 4 +
				    ZONE_ANSWER_MAX_VARS *
					(ZONE_ANSWER_VAR_HDR + 2u * ZONE_ANSWER_VAR_MAX_AN));
		if (!b->r->cand) {
			free(b->r);
			b->r = NULL;
		}
	}
	return b->r;
}

void render_ctx_free(struct render *r)
{
	if (!r)
		return;
	free(r->cand);
	free(r->list_types);
	free(r->list_ans);
	free(r);
}

void render_begin(struct render *r, const uint8_t *qname)
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
	r->w.base = WIRE_HDR_LEN + qlen + 4;
	r->w.qname_pending = qname;
	r->qname = qname;
	r->trim_logged = false;
	r->glue_cut = false;
	r->rot = false;
	memset(r->tier_n, 0, sizeof(r->tier_n));
	r->tier_sorted = true;
	r->tier_last = 0;
	r->w.no_ptr_lo = r->w.no_ptr_hi = 0;
	r->cand->not_ready = 0;
}

void render_rotating(struct render *r)
{
	r->rot = r->b->rotate && r->section == 0 && r->w.len == 0;
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

void render_set(struct render *r, const uint8_t *owner, int owner_ptr, const struct rrset *s)
{
	size_t fitted = 0;
	for (const struct rdata *rd = s->head; rd; rd = rd->next) {
		size_t before = r->w.len;
		writer_put_rr(&r->w, owner, owner_ptr, s->type, s->ttl, rd->d, rd->len);
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
		if (r->section == 0) {
			r->tier_sorted = r->tier_sorted && rd->tier >= r->tier_last;
			r->tier_last = rd->tier;
			r->tier_n[rd->tier]++;
			if (r->counts[0] <= ZONE_ANSWER_VAR_MAX_AN)
				r->rec_zone[r->counts[0] - 1] = rd->zone;
		}
	}
}

void render_next_section(struct render *r)
{
	r->section++;
	if (r->section == 1 && r->rot) {
		r->w.no_ptr_lo = r->w.base;
		r->w.no_ptr_hi = r->w.base + r->w.len;
	}
	if (r->section == 2)
		r->an_ns_len = r->w.len;
}

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
		if ((size_t)(p - a->data) + 12 > a->len_an_ns ||
		    wire_rd16(p) != (0xC000 | WIRE_HDR_LEN) || wire_rd16(p + 2) != type)
			return; /* not a plain address RRset (a CNAME chain) */
		size_t rl = wire_rd16(p + 10);
		size_t before = r->w.len;
		writer_put_name(&r->w, target, true);
		writer_put(&r->w, p + 2, 10 + rl);
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

void render_additional_for(struct render *r, const struct rrset *s)
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
	       x->len_an_ns == y->len_an_ns && x->rot == y->rot && x->rcode == y->rcode &&
	       x->aa == y->aa && x->patch_owner == y->patch_owner && x->apex_len == y->apex_len &&
	       x->not_ready == y->not_ready && x->rot_t1 == y->rot_t1 && x->rot_t2 == y->rot_t2 &&
	       x->n_var == y->n_var &&
	       memcmp(x->data, y->data, zone_answer_size(x) - sizeof(*x)) == 0;
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
	size_t size = zone_answer_size(a);
	struct zone_answer *c = arena_alloc_aligned(b->out, size, _Alignof(struct zone_answer));
	if (!c)
		return NULL;
	memcpy(c, a, size);
	sl->hash = h;
	sl->a = c;
	return c;
}

/* The offsets of the answer section's records, behind the data (see
 * zone_answer_rot_off). Returns false when a record is not one that rotates:
 * its owner must be the question, as render_rotating's callers write it. */
static bool rot_table(struct zone_answer *c)
{
	uint8_t *tbl = c->data + ((c->len + 1u) & ~1u);
	size_t p = 0;
	if (c->len & 1u)
		c->data[c->len] = 0; /* the padding is compared like the rest */
	for (unsigned k = 0; k < c->an; k++) {
		if (p + 12 > c->len_an_ns || wire_rd16(c->data + p) != (0xC000 | WIRE_HDR_LEN))
			return false;
		uint16_t off = (uint16_t)p;
		memcpy(tbl + 2u * k, &off, sizeof(off));
		p += 12u + wire_rd16(c->data + p + 10);
	}
	return p == c->len_an_ns;
}

/* One ordering of the rotation table for clients of zone `zone`: its
 * records first, then the rest, each in rendered order. */
static void put_var(struct zone_answer *c, const uint32_t *rec_zone, unsigned i, uint32_t zone)
{
	uint8_t *v = c->data + zone_answer_var_base(c, i);
	uint16_t n_near = 0;
	unsigned k = 0;
	memcpy(v, &zone, sizeof(zone));
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned j = 0; j < c->rot; j++) {
			if ((rec_zone[j] == zone) != (pass == 0))
				continue;
			uint16_t off = (uint16_t)zone_answer_rot_off(c, j);
			memcpy(v + ZONE_ANSWER_VAR_HDR + 2u * k++, &off, sizeof(off));
			n_near = (uint16_t)(n_near + (pass == 0));
		}
	memcpy(v + 4, &n_near, sizeof(n_near));
}

/* Central mode: an ordering per zone of a one-tier rotating answer whose
 * records name 2 to ZONE_ANSWER_MAX_VARS zones (zone_answer.n_var), in the
 * order the zones first appear. */
static void zone_vars(struct render *r, struct zone_answer *c)
{
	uint32_t zones[ZONE_ANSWER_MAX_VARS];
	unsigned n = 0;
	c->n_var = 0;
	if (!c->rot || c->rot_t1 != c->rot || c->rot > ZONE_ANSWER_VAR_MAX_AN)
		return;
	for (unsigned j = 0; j < c->rot; j++) {
		uint32_t z = r->rec_zone[j];
		bool seen = false;
		for (unsigned i = 0; i < n && !seen; i++)
			seen = zones[i] == z;
		if (!z || seen)
			continue;
		if (n == ZONE_ANSWER_MAX_VARS)
			return; /* too many zones: the plain rotation */
		zones[n++] = z;
	}
	if (n < 2)
		return;
	c->n_var = (uint8_t)n;
	for (unsigned i = 0; i < n; i++)
		put_var(c, r->rec_zone, i, zones[i]);
}

const struct zone_answer *render_end_patched(struct render *r, uint8_t rcode, bool aa,
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
	c->rot = c->rot_t1 = c->rot_t2 = 0;
	c->n_var = 0;
	if (r->rot && c->an >= 2 && c->ns == 0 && !apex_len && rot_table(c)) {
		c->rot = c->rot_t1 = c->rot_t2 = c->an;
		/* Tiers in order and all of the answer: each rotates alone. */
		if (r->tier_sorted && r->tier_n[0] + r->tier_n[1] + r->tier_n[2] == c->an &&
		    r->tier_n[0] != c->an && r->tier_n[1] != c->an && r->tier_n[2] != c->an) {
			c->rot_t1 = r->tier_n[0];
			c->rot_t2 = (uint16_t)(r->tier_n[0] + r->tier_n[1]);
		}
		zone_vars(r, c);
	}
	return answer_intern(r->b, c);
}

const struct zone_answer *render_end(struct render *r, uint8_t rcode, bool aa)
{
	return render_end_patched(r, rcode, aa, 0);
}
