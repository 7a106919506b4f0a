/* The view: every Service with its final endpoints, as the API server and the
 * endpoints controller would leave them. This is the full build: collect the
 * store's objects, allocate, derive endpoints, list the namespaces. */
#include "discovery/model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "discovery/alloc.h"
#include "discovery/store_iter.h"
#include "discovery/view_build.h"

static uint64_t g_view_ids;

uint64_t view_next_id(void)
{
	return ++g_view_ids;
}

bool view_note_once(struct build *b)
{
	struct store_map_slot *s;
	bool created = false;

	if (b->key.oom || store_map_insert(&b->alloc->notes, b->key.p, b->key.len, &s, &created)) {
		/* Cannot remember: logging twice is better than not at all. */
		return true;
	}
	s->gen = b->alloc->gen;
	return created;
}

void view_key_obj(struct build *b, const char *tag, const char *ns, const char *name)
{
	b->key.len = 0;
	kb_field(&b->key, tag);
	kb_field(&b->key, ns);
	kb_field(&b->key, name);
}

static int cmp_cidr(const void *x, const void *y)
{
	const struct net_cidr *a = x, *b = y;
	int c = net_addr_cmp(&a->base, &b->base);
	return c ? c : (int)a->prefix - (int)b->prefix;
}

int view_service_cidrs(const struct model_store *st, struct model_view *out)
{
	size_t n = model_store_count(st, KIND_SERVICE_CIDR), k = 0;
	struct model_store_iter it;
	const struct model_object *o;

	out->service_cidrs = NULL;
	out->n_service_cidrs = 0;
	if (n == 0)
		return 0;
	struct net_cidr *v = calloc(n * 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	model_store_iter_init(&it, st, KIND_SERVICE_CIDR);
	while ((o = model_store_iter_next(&it)) && k + 2 <= n * 2)
		for (size_t i = 0; i < o->u.cidr->n_cidrs; i++)
			v[k++] = o->u.cidr->cidrs[i];
	qsort(v, k, sizeof(*v), cmp_cidr);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (u == 0 || cmp_cidr(&v[u - 1], &v[i]) != 0)
			v[u++] = v[i];
	out->service_cidrs = v;
	out->n_service_cidrs = u;
	return 0;
}

static int cmp_svc(const void *x, const void *y)
{
	const struct model_service *a = *(struct model_service *const *)x;
	const struct model_service *b = *(struct model_service *const *)y;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

static int collect_services(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_SERVICE);
	struct model_store_iter it;
	const struct model_object *o;

	b->clones = calloc(n ? n : 1, sizeof(*b->clones));
	if (!b->clones)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_SERVICE);
	while ((o = model_store_iter_next(&it)) && b->n_clones < n) {
		if (!store_ns_selected(b->st, o->u.svc->ns))
			continue;
		int ret = view_clone_service(b, o->u.svc);
		if (ret)
			return ret;
	}
	b->svcs = b->clones;
	b->n_svcs = b->n_clones;
	qsort(b->svcs, b->n_svcs, sizeof(*b->svcs), cmp_svc);
	return 0;
}

int view_cmp_pod(const void *x, const void *y)
{
	const struct model_pod *a = ((const struct pod_ref *)x)->pod;
	const struct model_pod *b = ((const struct pod_ref *)y)->pod;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

static int collect_pods(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_POD);
	struct model_store_iter it;
	const struct model_object *o;

	b->pods = calloc(n ? n : 1, sizeof(*b->pods));
	if (!b->pods)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_POD);
	while ((o = model_store_iter_next(&it)) && b->n_pods < n) {
		struct pod_ref *r = &b->pods[b->n_pods++];
		r->pod = o->u.pod;
		if (!r->pod->ip_allocated) {
			r->n_ips = r->pod->n_ips < 2 ? r->pod->n_ips : 2;
			memcpy(r->ips, r->pod->ips, r->n_ips * sizeof(r->ips[0]));
		}
	}
	qsort(b->pods, b->n_pods, sizeof(*b->pods), view_cmp_pod);
	return 0;
}

/* The Service a slice belongs to: its local one, or (mc) the ServiceImport
 * that multicluster.kubernetes.io/service-name names. */
static const char *slice_owner(const struct model_slice *sl, bool mc)
{
	return mc ? sl->mc_service : sl->service;
}

static int cmp_slice_by(const void *x, const void *y, bool mc)
{
	const struct model_slice *a = *(const struct model_slice *const *)x;
	const struct model_slice *b = *(const struct model_slice *const *)y;
	int c = strcmp0(a->ns, b->ns);
	if (!c)
		c = strcmp0(slice_owner(a, mc), slice_owner(b, mc));
	return c ? c : strcmp0(a->name, b->name);
}

int view_cmp_slice(const void *x, const void *y)
{
	return cmp_slice_by(x, y, false);
}

static int cmp_mc_slice(const void *x, const void *y)
{
	return cmp_slice_by(x, y, true);
}

int view_collect_slices(struct build *b, bool mc)
{
	size_t n = model_store_count(b->st, KIND_SLICE);
	struct model_store_iter it;
	const struct model_object *o;

	b->slices = calloc(n ? n : 1, sizeof(*b->slices));
	b->slice_lo = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_lo));
	b->slice_hi = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_hi));
	if (!b->slices || !b->slice_lo || !b->slice_hi)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_SLICE);
	while ((o = model_store_iter_next(&it)) && b->n_slices < n) {
		const struct model_slice *sl = o->u.slice;
		/* FQDN slices are deprecated and carry no address we could serve. */
		if (slice_owner(sl, mc) &&
		    (sl->address_type == AF_INET || sl->address_type == AF_INET6))
			b->slices[b->n_slices++] = sl;
	}
	qsort(b->slices, b->n_slices, sizeof(*b->slices), mc ? cmp_mc_slice : view_cmp_slice);

	size_t j = 0;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		while (j < b->n_slices) {
			int c = strcmp0(b->slices[j]->ns, s->ns);
			if (!c)
				c = strcmp0(slice_owner(b->slices[j], mc), s->name);
			if (c >= 0)
				break;
			j++;
		}
		b->slice_lo[i] = j;
		while (j < b->n_slices && streq0(b->slices[j]->ns, s->ns) &&
		       streq0(slice_owner(b->slices[j], mc), s->name))
			j++;
		b->slice_hi[i] = j;
	}
	return 0;
}

int view_cmp_str(const void *x, const void *y)
{
	return strcmp0(*(const char *const *)x, *(const char *const *)y);
}

static int build_namespaces(struct build *b, struct view_priv *priv)
{
	size_t cap = model_store_count(b->st, KIND_NAMESPACE) + b->n_svcs + b->n_pods + b->n_slices;
	const char **names = calloc(cap ? cap : 1, sizeof(*names));
	struct model_store_iter it;
	const struct model_object *o;
	size_t n = 0, u = 0;
	int ret = 0;

	if (!names)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_NAMESPACE);
	while ((o = model_store_iter_next(&it)) && n < cap)
		if (o->u.ns->name)
			names[n++] = o->u.ns->name;
	for (size_t i = 0; i < b->n_svcs && n < cap; i++)
		names[n++] = b->svcs[i]->ns;
	for (size_t i = 0; i < b->n_pods && n < cap; i++)
		names[n++] = b->pods[i].pod->ns;
	for (size_t i = 0; i < b->n_slices && n < cap; i++)
		names[n++] = b->slices[i]->ns;
	qsort(names, n, sizeof(*names), view_cmp_str);

	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !names[i][0] || (u && strcmp(names[u - 1], names[i]) == 0))
			continue;
		if (!store_ns_selected(b->st, names[i]))
			continue;
		names[u++] = names[i];
	}
	priv->ns = view_nsblock_new(names, u);
	if (!priv->ns)
		ret = -ENOMEM;

	free(names);
	return ret;
}

void view_build_fini(struct build *b)
{
	for (size_t i = 0; i < b->n_clones; i++)
		model_service_free(b->clones[i]);
	free(b->clones);
	free(b->key.p);
	free(b->slice_lo);
	free(b->slice_hi);
	free(b->pods);
	free(b->slices);
	store_map_clear(&b->label_idx);
	for (size_t i = 0; i < b->n_lists; i++)
		free(b->lists[i].v);
	free(b->lists);
	free(b->eps);
	free(b->held);
}

int model_view_build(const struct model_store *st, struct model_alloc *alloc,
		     struct model_view *out)
{
	struct build b = {.st = st, .alloc = alloc};
	struct view_priv *priv;
	int ret;

	memset(out, 0, sizeof(*out));
	store_map_init(&b.label_idx);
	priv = calloc(1, sizeof(*priv));
	if (!priv) {
		ret = -ENOMEM;
		goto fail;
	}
	out->priv = priv;
	alloc->gen++;

	ret = collect_services(&b);
	if (!ret)
		ret = view_alloc_cluster_ips(&b);
	if (!ret)
		ret = view_alloc_node_ports(&b);
	if (!ret)
		ret = collect_pods(&b);
	if (!ret)
		ret = view_alloc_pod_ips(&b);
	if (!ret)
		ret = view_collect_slices(&b, false);
	if (!ret)
		ret = view_index_pods(&b);
	if (!ret && !(out->svcs = calloc(b.n_svcs ? b.n_svcs : 1, sizeof(*out->svcs))))
		ret = -ENOMEM;
	if (!ret)
		ret = view_build_endpoints(&b, out->svcs, &out->n_svcs);
	if (!ret)
		ret = build_namespaces(&b, priv);
	if (!ret)
		ret = view_service_cidrs(st, out);
	if (!ret)
		ret = view_build_imports(st, alloc, out);
	if (!ret && store_keeps_pod_addrs(st))
		ret = view_pods_build(st, &b, priv);
	if (ret)
		goto fail;
	out->namespaces = priv->ns->names;
	out->n_namespaces = priv->ns->n;
	view_pods_expose(out, priv);
	out->id = view_next_id();

	/* Only a complete build may forget: what was not used in it is gone
	 * from the cluster, and its address or note is released. */
	alloc_sweep(alloc);
	view_build_fini(&b);
	return 0;

fail:
	log_error("cannot build the view of the cluster: %s", strerror(-ret));
	view_build_fini(&b);
	model_view_free(out);
	return ret;
}

void model_view_free(struct model_view *v)
{
	struct view_priv *priv = v->priv;

	free(v->service_cidrs);
	if (priv) {
		for (size_t i = 0; i < v->n_svcs; i++)
			view_blk_unref(&v->svcs[i]);
		free(v->svcs);
		view_nsblock_unref(priv->ns);
		view_podblock_unref(priv->pods);
		free(priv->changes);
		view_free_imports(v);
		free(priv);
	}
	memset(v, 0, sizeof(*v));
}
