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

/* Sorted, unique pairs into one block. */
static int pack(struct pairs *p, struct podblock **out)
{
	size_t n = 0, n_nss = 0, names = 0;

	if (p->n)
		qsort(p->v, p->n, sizeof(*p->v), cmp_pair);
	for (size_t i = 0; i < p->n; i++) {
		if (n && cmp_pair(&p->v[n - 1], &p->v[i]) == 0)
			continue;
		if (!n || strcmp(p->v[n - 1].ns, p->v[i].ns) != 0) {
			n_nss++;
			names += strlen(p->v[i].ns) + 1;
		}
		p->v[n++] = p->v[i];
	}
	struct podblock *pb = calloc(1, sizeof(*pb));
	if (!pb)
		return -ENOMEM;
	pb->refs = 1;
	pb->nss = calloc(n_nss ? n_nss : 1, sizeof(*pb->nss));
	pb->addrs = calloc(n ? n : 1, sizeof(*pb->addrs));
	pb->names = malloc(names ? names : 1);
	if (!pb->nss || !pb->addrs || !pb->names) {
		view_podblock_unref(pb);
		return -ENOMEM;
	}
	char *str = pb->names;
	for (size_t i = 0; i < n; i++) {
		if (!i || strcmp(p->v[i - 1].ns, p->v[i].ns) != 0) {
			size_t len = strlen(p->v[i].ns) + 1;
			memcpy(str, p->v[i].ns, len);
			pb->nss[pb->n_nss++] = (struct view_pod_ns){.ns = str, .lo = (uint32_t)i};
			str += len;
		}
		pb->addrs[i] = p->v[i].addr;
		pb->nss[pb->n_nss - 1].hi = (uint32_t)(i + 1);
	}
	pb->n_addrs = n;
	*out = pb;
	return 0;
}

int view_pods_build(const struct model_store *st, const struct build *b, struct view_priv *priv)
{
	struct pairs p = {0};
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
	if (!ret)
		ret = pack(&p, &priv->pods);
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
