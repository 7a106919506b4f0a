/* The incremental view: the next view from the changes the store recorded,
 * recomputing only the Services they touch and sharing the rest with the
 * previous view, with allocation left exactly as a full build would leave it. */
#include "discovery/model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "discovery/alloc.h"
#include "discovery/store_iter.h"
#include "discovery/view_build.h"

/* Recomputes only the Services the store marked (and, where Pods changed, the
 * selector Services of their namespaces); the rest are shared with the
 * previous view. Allocation is kept exactly as a full build would leave it:
 * the pools' bitmaps stay current between builds, and anything whose outcome
 * depends on Services that are not recomputed makes the build a full one. */

struct dirty {
	const char *ns;
	const char *name;
	const struct view_service *old; /* in prev, or NULL */
	size_t pos;			/* index of old in prev, or where it would be */
	struct model_service *clone;	/* working copy of the stored version, or NULL */
	struct view_service vs;		/* the new version, when clone */
	bool packed;			/* vs holds a block this build owns */
	bool reused;			/* vs is old: nothing changed */
};

static int cmp_dirty(const void *x, const void *y)
{
	const struct dirty *a = x, *b = y;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

/* Index of ns/name in prev, or where it would be inserted. */
static size_t view_find(const struct model_view *v, const char *ns, const char *name, bool *found)
{
	size_t lo = 0, hi = v->n_svcs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *s = v->svcs[mid].svc;
		int c = strcmp0(s->ns, ns);
		if (!c && name)
			c = strcmp0(s->name, name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = name && lo < v->n_svcs && streq0(v->svcs[lo].svc->ns, ns) &&
		 streq0(v->svcs[lo].svc->name, name);
	return lo;
}

static bool vs_derives_from_pods(const struct view_service *vs)
{
	const struct model_service *s = vs->svc;
	return s->type != SVC_EXTERNAL_NAME && !vs->from_slices && s->has_selector &&
	       s->selector.n > 0;
}
/* The allocation phases of a full build, over the recomputed Services only:
 * every other Service keeps what it holds, exactly as in a full build where
 * its sticky value is still free. */
static int incr_alloc(struct build *b, struct dirty *dv, size_t nd)
{
	int ret;

	for (size_t i = 0; i < nd; i++)
		if (dv[i].old && (ret = view_alloc_release(b, dv[i].old->svc)))
			return ret;
	for (size_t i = 0; i < b->n_svcs; i++)
		if ((ret = view_alloc_claim(b, b->svcs[i])))
			return ret;
	/* view_alloc_cluster_ips and view_alloc_node_ports would reset the
	 * pools and claim again what the claims above did: only their keep and
	 * take parts run. */
	if ((ret = view_alloc_assign(b)))
		return ret;
	if (b->key.oom)
		return -ENOMEM;
	for (size_t i = 0; i < nd; i++)
		if (dv[i].old)
			view_alloc_forget(b, dv[i].old->svc);
	return 0;
}

/* Slices of the recomputed Services, each Service's sorted by name as the
 * full build's merge walk has them. */
static int incr_slices(struct build *b)
{
	const struct model_slice *one;
	size_t total = 0, n;

	for (size_t i = 0; i < b->n_svcs; i++) {
		store_service_slices(b->st, b->svcs[i]->ns, b->svcs[i]->name, &one, &n);
		total += n;
	}
	b->slices = calloc(total ? total : 1, sizeof(*b->slices));
	b->slice_lo = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_lo));
	b->slice_hi = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_hi));
	if (!b->slices || !b->slice_lo || !b->slice_hi)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_slice *const *v =
		    store_service_slices(b->st, b->svcs[i]->ns, b->svcs[i]->name, &one, &n);
		b->slice_lo[i] = b->n_slices;
		for (size_t k = 0; k < n && b->n_slices < total; k++)
			b->slices[b->n_slices++] = v[k];
		b->slice_hi[i] = b->n_slices;
		qsort(b->slices + b->slice_lo[i], b->slice_hi[i] - b->slice_lo[i],
		      sizeof(*b->slices), view_cmp_slice);
	}
	return 0;
}

/* Pods of the namespaces where a recomputed Service derives endpoints, with
 * the addresses the last full build gave them (no Pod changed that could move
 * one: see model_view_update). */
static int incr_pods(struct build *b)
{
	struct store_map nss;
	struct model_store_iter it;
	const struct model_object *o;
	struct store_map_slot *slot;
	bool created;
	size_t n = 0;
	int ret = 0;

	store_map_init(&nss);
	for (size_t i = 0; i < b->n_svcs; i++) {
		if (!view_derives_from_pods(b, i))
			continue;
		const char *ns = b->svcs[i]->ns ? b->svcs[i]->ns : "";
		if ((ret = store_map_insert(&nss, ns, strlen(ns), &slot, &created)))
			goto out;
	}
	if (nss.n == 0)
		goto out;
	model_store_iter_init(&it, b->st, KIND_POD);
	while ((o = model_store_iter_next(&it))) {
		const char *ns = o->u.pod->ns ? o->u.pod->ns : "";
		if (!store_map_find(&nss, ns, strlen(ns)))
			continue;
		if (b->n_pods == n) {
			n = n ? n * 2 : 64;
			struct pod_ref *p = realloc(b->pods, n * sizeof(*p));
			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			b->pods = p;
		}
		struct pod_ref *r = &b->pods[b->n_pods++];
		*r = (struct pod_ref){.pod = o->u.pod};
		if (!r->pod->ip_allocated) {
			r->n_ips = r->pod->n_ips < 2 ? r->pod->n_ips : 2;
			memcpy(r->ips, r->pod->ips, r->n_ips * sizeof(r->ips[0]));
		}
		if (r->pod->has_status || r->n_ips)
			continue;
		if (view_alloc_pod_sticky(b, r->pod, &r->ips[0]))
			r->n_ips = 1;
	}
	if (b->n_pods)
		qsort(b->pods, b->n_pods, sizeof(*b->pods), view_cmp_pod);
out:
	store_map_clear(&nss);
	return ret;
}

static int dirty_push(struct dirty **dv, size_t *n, size_t *cap, const char *ns, const char *name)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct dirty *v = realloc(*dv, c * sizeof(*v));
		if (!v)
			return -ENOMEM;
		*dv = v;
		*cap = c;
	}
	(*dv)[(*n)++] = (struct dirty){.ns = ns, .name = name};
	return 0;
}

static bool ns_listed(const struct model_view *v, const char *ns)
{
	size_t lo = 0, hi = v->n_namespaces;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->namespaces[mid], ns);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool ns_served(const struct model_store *st, const char *ns)
{
	return store_ns_present(st, ns) && store_ns_selected(st, ns);
}

/* The namespace list: prev's, shared, unless a changed object's namespace
 * came or went. */
static int incr_namespaces(const struct model_store *st, const struct model_view *prev,
			   struct view_priv *priv)
{
	const struct store_map *nss = &store_changes(st)->nss;
	const struct view_priv *pp = prev->priv;
	const char **names = NULL;
	size_t n = 0;
	bool changed = false;
	int ret = 0;

	for (size_t i = 0; i < nss->cap && !changed; i++)
		if (nss->slots[i].key)
			changed =
			    ns_served(st, nss->slots[i].key) != ns_listed(prev, nss->slots[i].key);
	if (!changed) {
		priv->ns = pp->ns;
		priv->ns->refs++;
		return 0;
	}
	names = calloc(prev->n_namespaces + nss->n + 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < prev->n_namespaces; i++)
		if (ns_served(st, prev->namespaces[i]))
			names[n++] = prev->namespaces[i];
	for (size_t i = 0; i < nss->cap; i++) {
		const char *ns = nss->slots[i].key;
		if (ns && *ns && ns_served(st, ns) && !ns_listed(prev, ns))
			names[n++] = ns;
	}
	qsort(names, n, sizeof(*names), view_cmp_str);
	priv->ns = view_nsblock_new(names, n);
	if (!priv->ns)
		ret = -ENOMEM;
	free(names);
	return ret;
}

static bool str_same(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && streq0(a, b);
}

/* Whether a recomputed Service is exactly what the previous view holds. */
static bool vs_same(const struct view_service *a, const struct view_service *b)
{
	size_t ntp = a->svc->n_ports ? a->svc->n_ports : 1;

	if (a->from_slices != b->from_slices || a->n_eps != b->n_eps ||
	    !view_svc_same(a->svc, b->svc))
		return false;
	for (size_t i = 0; i < a->n_eps; i++) {
		const struct view_endpoint *p = &a->eps[i], *q = &b->eps[i];
		if (net_addr_cmp(&p->addr, &q->addr) != 0 || p->ready != q->ready ||
		    p->serving != q->serving || p->terminating != q->terminating ||
		    !str_same(p->hostname, q->hostname) || !str_same(p->node_name, q->node_name) ||
		    !str_same(p->pod_name, q->pod_name) || !str_same(p->cluster, q->cluster) ||
		    !str_same(p->zone, q->zone) || !str_same(p->for_zones, q->for_zones) ||
		    memcmp(p->target_ports, q->target_ports, ntp * sizeof(uint16_t)) != 0)
			return false;
	}
	return true;
}

/* Assembles the new svcs array: prev's entries shared, the recomputed ones in
 * their places, and the list of those that differ. */
static int incr_merge(const struct model_view *prev, struct dirty *dv, size_t nd,
		      struct model_view *out, struct view_priv *priv)
{
	size_t cur = 0, n = 0, nc = 0;

	out->svcs = calloc(prev->n_svcs + nd + 1, sizeof(*out->svcs));
	priv->changes = calloc(nd + 1, sizeof(*priv->changes));
	if (!out->svcs || !priv->changes)
		return -ENOMEM;
	for (size_t i = 0; i <= nd; i++) {
		size_t upto = i < nd ? dv[i].pos : prev->n_svcs;
		for (; cur < upto; cur++) {
			out->svcs[n++] = prev->svcs[cur];
			view_blk_of(&prev->svcs[cur])->refs++;
		}
		if (i == nd)
			break;
		struct dirty *d = &dv[i];
		if (d->old)
			cur = d->pos + 1;
		if (d->clone) {
			if (d->reused)
				view_blk_of(d->old)->refs++;
			out->svcs[n] = d->reused ? *d->old : d->vs;
			d->packed = false; /* the view owns it now */
			n++;
		}
		if (!d->reused && (d->old || d->clone))
			priv->changes[nc++] = (struct view_change){
			    .old = d->old, .cur = d->clone ? &out->svcs[n - 1] : NULL};
	}
	out->n_svcs = n;
	out->changes = priv->changes;
	out->n_changes = nc;
	return 0;
}

/* Under --namespace-labels, a namespace whose labels moved in or out of the
 * selector brings or takes all its Services, none of which changed itself:
 * those of prev (leaving) and those of the store (coming) are recomputed. */
static int dirty_ns_flips(const struct model_store *st, const struct model_view *prev,
			  struct dirty **dv, size_t *nd, size_t *cap)
{
	const struct store_map *nss = &store_changes(st)->nss;
	struct store_map flips;
	struct store_map_slot *slot;
	struct model_store_iter it;
	const struct model_object *o;
	bool created, found;
	int ret = 0;

	store_map_init(&flips);
	for (size_t i = 0; i < nss->cap; i++) {
		const char *ns = nss->slots[i].key;
		if (!ns || !*ns)
			continue;
		bool now = store_ns_present(st, ns) && store_ns_selected(st, ns);
		if (now == ns_listed(prev, ns))
			continue;
		if ((ret = store_map_insert(&flips, ns, strlen(ns), &slot, &created)))
			goto out;
		for (size_t k = view_find(prev, ns, NULL, &found);
		     k < prev->n_svcs && streq0(prev->svcs[k].svc->ns, ns); k++)
			if ((ret = dirty_push(dv, nd, cap, ns, prev->svcs[k].svc->name)))
				goto out;
	}
	if (flips.n == 0)
		goto out;
	model_store_iter_init(&it, st, KIND_SERVICE);
	while ((o = model_store_iter_next(&it))) {
		const char *ns = o->u.svc->ns ? o->u.svc->ns : "";
		if (store_map_find(&flips, ns, strlen(ns)) &&
		    (ret = dirty_push(dv, nd, cap, o->u.svc->ns, o->u.svc->name)))
			goto out;
	}
out:
	store_map_clear(&flips);
	return ret;
}

/* The Services to recompute, sorted and unique: those the store marked, those
 * deriving endpoints from Pods in a namespace where a Pod changed, and those
 * of a namespace the namespace selector took in or out.
 * -EAGAIN beyond limit (a full build is cheaper then). */
static int collect_dirty(const struct model_store *st, const struct model_view *prev, size_t limit,
			 struct dirty **out, size_t *n_out)
{
	const struct store_changes *ch = store_changes(st);
	struct dirty *dv = NULL;
	size_t nd = 0, cap = 0;
	int ret = 0;

	if (store_ns_filtered(st) && (ret = dirty_ns_flips(st, prev, &dv, &nd, &cap)))
		goto out;

	for (size_t i = 0; i < ch->svcs.cap; i++) {
		const char *key = ch->svcs.slots[i].key;
		if (key && (ret = dirty_push(&dv, &nd, &cap, key, key + strlen(key) + 1)))
			goto out;
	}
	for (size_t i = 0; i < ch->pod_nss.cap; i++) {
		const char *ns = ch->pod_nss.slots[i].key;
		bool found;
		if (!ns)
			continue;
		for (size_t k = view_find(prev, ns, NULL, &found);
		     k < prev->n_svcs && streq0(prev->svcs[k].svc->ns, ns); k++) {
			if (nd > limit) {
				ret = -EAGAIN;
				goto out;
			}
			const struct model_service *s = prev->svcs[k].svc;
			if (vs_derives_from_pods(&prev->svcs[k]) &&
			    (ret = dirty_push(&dv, &nd, &cap, s->ns, s->name)))
				goto out;
		}
	}
	if (nd > limit) {
		ret = -EAGAIN;
		goto out;
	}
	if (nd)
		qsort(dv, nd, sizeof(*dv), cmp_dirty);
	size_t u = 0;
	for (size_t i = 0; i < nd; i++)
		if (!u || cmp_dirty(&dv[u - 1], &dv[i]) != 0)
			dv[u++] = dv[i];
	nd = u;
out:
	*out = dv;
	*n_out = nd;
	return ret;
}

/* The Pods' addresses: prev's, shared, unless a Pod changed or (with a
 * namespace selector) a namespace may have come or gone. */
static int incr_pods_addrs(const struct model_store *st, const struct model_view *prev,
			   struct view_priv *priv)
{
	const struct store_changes *ch = store_changes(st);
	const struct view_priv *pp = prev->priv;

	if (!store_keeps_pod_addrs(st))
		return 0;
	if (pp->pods && ch->pod_nss.n == 0 && !(store_ns_filtered(st) && ch->nss.n)) {
		priv->pods = pp->pods;
		priv->pods->refs++;
		return 0;
	}
	/* Pods without a status have the addresses only a full build gives. */
	if (store_pods_unaddressed(st))
		return -EAGAIN;
	/* A namespace that may have come or gone under the selector: all again. */
	if (!pp->pods || (store_ns_filtered(st) && ch->nss.n))
		return view_pods_build(st, NULL, priv);
	return view_pods_update(st, pp->pods, &ch->pod_nss, priv);
}

static int view_incremental(const struct model_store *st, struct model_alloc *alloc,
			    const struct model_view *prev, struct model_view *out)
{
	const struct store_changes *ch = store_changes(st);
	struct build b = {.st = st, .alloc = alloc};
	struct view_priv *priv = NULL;
	struct view_service *nv = NULL;
	struct dirty *dv = NULL;
	size_t nd = 0, n_done = 0;
	size_t limit = prev->n_svcs / 4 + 64;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	store_map_init(&b.label_idx);
	/* A pool that was full left Services without a value that any freed one
	 * may now go to, in an order only a full build knows. */
	if (alloc->svc.starved || alloc->node.starved)
		return -EAGAIN;
	/* Pods without a status take addresses from one pool: with any of them
	 * around, a Pod change may move another's. */
	if (ch->pod_nss.n && (store_pods_unaddressed(st) || alloc->pod.sticky.n))
		return -EAGAIN;
	if (ch->svcs.n > limit)
		return -EAGAIN;

	if ((ret = collect_dirty(st, prev, limit, &dv, &nd)))
		goto out;
	b.clones = calloc(nd + 1, sizeof(*b.clones));
	if (!b.clones) {
		ret = -ENOMEM;
		goto out;
	}
	alloc->gen++;
	for (size_t i = 0; i < nd; i++) {
		struct dirty *d = &dv[i];
		bool found;
		d->pos = view_find(prev, d->ns, d->name, &found);
		d->old = found ? &prev->svcs[d->pos] : NULL;
		const struct model_service *cur = store_service_find(st, d->ns, d->name);
		if (!cur || !store_ns_selected(st, d->ns))
			continue;
		if ((ret = view_clone_service(&b, cur)))
			goto out;
		d->clone = b.clones[b.n_clones - 1];
	}
	b.svcs = b.clones;
	b.n_svcs = b.n_clones;

	if ((ret = incr_alloc(&b, dv, nd)) || (ret = incr_slices(&b)) || (ret = incr_pods(&b)) ||
	    (ret = view_index_pods(&b)))
		goto out;
	nv = calloc(b.n_svcs + 1, sizeof(*nv));
	if (!nv) {
		ret = -ENOMEM;
		goto out;
	}
	ret = view_build_endpoints(&b, nv, &n_done);
	for (size_t i = 0, k = 0; i < nd && k < n_done; i++) {
		if (!dv[i].clone)
			continue;
		dv[i].vs = nv[k++];
		dv[i].packed = true;
	}
	if (ret)
		goto out;
	for (size_t i = 0; i < nd; i++) {
		struct dirty *d = &dv[i];
		if (d->clone && d->old && vs_same(d->old, &d->vs)) {
			view_blk_unref(&d->vs);
			d->packed = false;
			d->reused = true;
		}
	}

	priv = calloc(1, sizeof(*priv));
	if (!priv) {
		ret = -ENOMEM;
		goto out;
	}
	out->priv = priv;
	if ((ret = incr_namespaces(st, prev, priv)) ||
	    (ret = incr_merge(prev, dv, nd, out, priv)) || (ret = view_service_cidrs(st, out)) ||
	    (ret = view_share_imports(prev, out)) || (ret = incr_pods_addrs(st, prev, priv)))
		goto out;
	out->namespaces = priv->ns->names;
	out->n_namespaces = priv->ns->n;
	view_pods_expose(out, priv);
	out->id = view_next_id();
	out->base_id = prev->id;
out:
	for (size_t i = 0; i < nd; i++)
		if (dv[i].packed)
			view_blk_unref(&dv[i].vs);
	if (ret)
		model_view_free(out);
	free(nv);
	free(dv);
	view_build_fini(&b);
	return ret;
}

int model_view_update(struct model_store *st, struct model_alloc *alloc,
		      const struct model_view *prev, struct model_view *out)
{
	const struct view_priv *pp = prev ? prev->priv : NULL;
	int ret = -EAGAIN;

	if (pp && pp->store_epoch == store_changes(st)->epoch) {
		ret = view_incremental(st, alloc, prev, out);
		if (ret < 0 && ret != -EAGAIN)
			log_warn("model: incremental view failed (%s); building in full",
				 strerror(-ret));
	}
	if (ret < 0 && (ret = model_view_build(st, alloc, out)) < 0)
		return ret;
	store_changes_reset(st);
	((struct view_priv *)out->priv)->store_epoch = store_changes(st)->epoch;
	return 0;
}
