/* The Pods' addresses a view carries for --pods verified: per namespace, a
 * sorted run of addresses in one array, so that the query path finds a Pod
 * by two binary searches and no allocation. 17 bytes an address. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/store_iter.h"
#include "discovery/view_build.h"

struct pair {
	const char *ns;
	struct net_addr addr;
};

struct pairs {
	struct pair *v;
	size_t n, cap;
};

static int push(struct pairs *p, const char *ns, const struct net_addr *a)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct pair *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n].ns = ns;
	p->v[p->n].addr = *a;
	p->n++;
	return 0;
}

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;
	int c = strcmp(a->ns, b->ns);
	return c ? c : net_addr_cmp(&a->addr, &b->addr);
}

static bool pod_counts(const struct model_store *st, const struct model_pod *p)
{
	return !p->terminal && p->ns && *p->ns && store_ns_selected(st, p->ns);
}

/* Sorts and drops duplicates; counts the namespaces and their names' bytes. */
static void sort_unique(struct pairs *p, size_t *n_nss, size_t *names)
{
	size_t n = 0;

	if (p->n)
		qsort(p->v, p->n, sizeof(*p->v), cmp_pair);
	for (size_t i = 0; i < p->n; i++) {
		if (n && cmp_pair(&p->v[n - 1], &p->v[i]) == 0)
			continue;
		if (!n || strcmp(p->v[n - 1].ns, p->v[i].ns) != 0) {
			++*n_nss;
			*names += strlen(p->v[i].ns) + 1;
		}
		p->v[n++] = p->v[i];
	}
	p->n = n;
}

static struct podblock *block_new(size_t n_nss, size_t n, size_t names)
{
	struct podblock *pb = calloc(1, sizeof(*pb));

	if (!pb)
		return NULL;
	pb->refs = 1;
	pb->nss = calloc(n_nss ? n_nss : 1, sizeof(*pb->nss));
	pb->addrs = calloc(n ? n : 1, sizeof(*pb->addrs));
	pb->names = malloc(names ? names : 1);
	if (!pb->nss || !pb->addrs || !pb->names) {
		view_podblock_unref(pb);
		return NULL;
	}
	return pb;
}

/* Appends namespace ns with addrs[0..n) to pb; *str is where its name goes. */
static void block_put(struct podblock *pb, char **str, const char *ns, const struct net_addr *addrs,
		      size_t n)
{
	size_t len = strlen(ns) + 1;

	memcpy(*str, ns, len);
	pb->nss[pb->n_nss++] = (struct view_pod_ns){
	    .ns = *str, .lo = (uint32_t)pb->n_addrs, .hi = (uint32_t)(pb->n_addrs + n)};
	*str += len;
	memcpy(pb->addrs + pb->n_addrs, addrs, n * sizeof(*addrs));
	pb->n_addrs += n;
}

/* The next namespace's run of sorted pairs from *j, as addresses into tmp. */
static size_t run_of(const struct pairs *p, size_t *j, struct net_addr *tmp)
{
	size_t n = 0;
	const char *ns = p->v[*j].ns;

	while (*j < p->n && strcmp(p->v[*j].ns, ns) == 0)
		tmp[n++] = p->v[(*j)++].addr;
	return n;
}

/* One block from prev's namespaces that are not in `changed` (copied) and
 * the fresh pairs (sorted, unique; only namespaces in `changed`), merged in
 * namespace order. With prev NULL, the fresh pairs alone. */
static int merge(const struct podblock *prev, const struct store_map *changed, struct pairs *fresh,
		 size_t n_nss, size_t names, struct podblock **out)
{
	size_t n = fresh->n, i = 0, j = 0;
	struct net_addr *tmp = malloc((fresh->n ? fresh->n : 1) * sizeof(*tmp));

	for (size_t k = 0; prev && k < prev->n_nss; k++) {
		const char *ns = prev->nss[k].ns;
		if (store_map_find(changed, ns, strlen(ns)))
			continue;
		n_nss++;
		names += strlen(ns) + 1;
		n += prev->nss[k].hi - prev->nss[k].lo;
	}
	struct podblock *pb = tmp ? block_new(n_nss, n, names) : NULL;
	if (!pb) {
		free(tmp);
		return -ENOMEM;
	}
	char *str = pb->names;
	size_t n_prev = prev ? prev->n_nss : 0;
	while (i < n_prev || j < fresh->n) {
		if (i < n_prev &&
		    store_map_find(changed, prev->nss[i].ns, strlen(prev->nss[i].ns))) {
			i++;
			continue;
		}
		int c = i < n_prev && j < fresh->n ? strcmp(prev->nss[i].ns, fresh->v[j].ns)
			: i < n_prev		   ? -1
						   : 1;
		if (c < 0) {
			const struct view_pod_ns *r = &prev->nss[i++];
			block_put(pb, &str, r->ns, prev->addrs + r->lo, r->hi - r->lo);
		} else {
			const char *ns = fresh->v[j].ns;
			size_t k = run_of(fresh, &j, tmp);
			block_put(pb, &str, ns, tmp, k);
		}
	}
	free(tmp);
	*out = pb;
	return 0;
}

int view_pods_build(const struct model_store *st, const struct build *b, struct view_priv *priv)
{
	struct pairs p = {0};
	struct store_map none;
	size_t n_nss = 0, names = 0;
	int ret = 0;

	if (b) {
		for (size_t i = 0; i < b->n_pods && !ret; i++) {
			const struct pod_ref *r = &b->pods[i];
			if (!pod_counts(st, r->pod))
				continue;
			for (size_t k = 0; k < r->n_ips && !ret; k++)
				ret = push(&p, r->pod->ns, &r->ips[k]);
		}
	} else {
		struct model_store_iter it;
		const struct model_object *o;
		model_store_iter_init(&it, st, KIND_POD);
		while (!ret && (o = model_store_iter_next(&it))) {
			const struct model_pod *pod = o->u.pod;
			if (!pod_counts(st, pod) || pod->ip_allocated)
				continue;
			for (size_t k = 0; k < pod->n_ips && k < 2 && !ret; k++)
				ret = push(&p, pod->ns, &pod->ips[k]);
		}
	}
	store_map_init(&none);
	if (!ret) {
		sort_unique(&p, &n_nss, &names);
		ret = merge(NULL, &none, &p, n_nss, names, &priv->pods);
	}
	free(p.v);
	return ret;
}

int view_pods_update(const struct model_store *st, const struct podblock *prev,
		     const struct store_map *changed, struct view_priv *priv)
{
	struct pairs p = {0};
	struct model_store_iter it;
	const struct model_object *o;
	size_t n_nss = 0, names = 0;
	int ret = 0;

	/* One pass over the Pods, without sorting those of other namespaces. */
	model_store_iter_init(&it, st, KIND_POD);
	while (!ret && (o = model_store_iter_next(&it))) {
		const struct model_pod *pod = o->u.pod;
		if (!pod->ns || !store_map_find(changed, pod->ns, strlen(pod->ns)) ||
		    !pod_counts(st, pod) || pod->ip_allocated)
			continue;
		for (size_t k = 0; k < pod->n_ips && k < 2 && !ret; k++)
			ret = push(&p, pod->ns, &pod->ips[k]);
	}
	if (!ret) {
		sort_unique(&p, &n_nss, &names);
		ret = merge(prev, changed, &p, n_nss, names, &priv->pods);
	}
	free(p.v);
	return ret;
}

void view_podblock_unref(struct podblock *pb)
{
	if (!pb || --pb->refs > 0)
		return;
	free(pb->nss);
	free(pb->addrs);
	free(pb->names);
	free(pb);
}

void view_pods_expose(struct model_view *v, const struct view_priv *priv)
{
	const struct podblock *pb = priv->pods;

	v->pod_nss = pb ? pb->nss : NULL;
	v->n_pod_nss = pb ? pb->n_nss : 0;
	v->pod_addrs = pb ? pb->addrs : NULL;
	v->n_pod_addrs = pb ? pb->n_addrs : 0;
}
