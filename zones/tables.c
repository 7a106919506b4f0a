/* The published tables as a line of snapshots shares them: a full build's
 * new base, an incremental build's overlay of changed names and tombstones
 * over an older base, and the merge of the two once the overlay grows. */
#include "zones/tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zones/build.h"

static void base_release(struct base *bs)
{
	if (bs && --bs->refs == 0) {
		free(bs->names.slots);
		free(bs->chaos.slots);
		free(bs);
	}
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

/* A full build's nodes: a new base, sized for them at once. */
static int publish_base(struct zb *b)
{
	struct tables *t = b->t;
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
		htab_put_nogrow(BHDR(bn)->zidx ? &bs->names : &bs->chaos, bn->hash, bn->pub);
	}
	t->base = bs;
	t->n_names = nn;
	return 0;
}

/* An incremental build's nodes: into the overlay, replacing older ones. */
static int publish_overlay(struct zb *b)
{
	struct tables *t = b->t;
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

int zb_tables_publish(struct zb *b)
{
	return b->t->base ? publish_overlay(b) : publish_base(b);
}
