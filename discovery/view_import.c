/* The view's ServiceImports (KEP-1645): each import with the endpoints of
 * the multicluster EndpointSlices that name it, every source cluster's,
 * computed and packed by the same code as a local Service's endpoints. */
#include "discovery/model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "discovery/store_iter.h"
#include "discovery/view_build.h"

static int cmp_import(const void *x, const void *y)
{
	const struct model_service *a = *(struct model_service *const *)x;
	const struct model_service *b = *(struct model_service *const *)y;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

static int collect_imports(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_IMPORT);
	struct model_store_iter it;
	const struct model_object *o;

	b->clones = calloc(n ? n : 1, sizeof(*b->clones));
	if (!b->clones)
		return -ENOMEM;
	/* Nothing is allocated for an import: the stored one is used as it is,
	 * under a reference that view_build_fini drops. */
	model_store_iter_init(&it, b->st, KIND_IMPORT);
	while ((o = model_store_iter_next(&it)) && b->n_clones < n) {
		model_object_ref(o);
		b->clones[b->n_clones++] = o->u.svc;
	}
	b->svcs = b->clones;
	b->n_svcs = b->n_clones;
	qsort(b->svcs, b->n_svcs, sizeof(*b->svcs), cmp_import);
	return 0;
}

int view_build_imports(const struct model_store *st, struct model_alloc *alloc,
		       struct model_view *out)
{
	struct build b = {.st = st, .alloc = alloc};
	int ret;

	store_map_init(&b.label_idx);
	out->multicluster = store_multicluster(st);
	if ((ret = collect_imports(&b)) || (ret = view_collect_slices(&b, true)))
		goto out;
	if (!(out->imports = calloc(b.n_svcs ? b.n_svcs : 1, sizeof(*out->imports)))) {
		ret = -ENOMEM;
		goto out;
	}
	ret = view_build_endpoints(&b, out->imports, &out->n_imports);
out:
	view_build_fini(&b);
	return ret;
}

int view_share_imports(const struct model_view *prev, struct model_view *out)
{
	out->multicluster = prev->multicluster;
	if (!prev->n_imports)
		return 0;
	out->imports = calloc(prev->n_imports, sizeof(*out->imports));
	if (!out->imports)
		return -ENOMEM;
	for (size_t i = 0; i < prev->n_imports; i++) {
		out->imports[i] = prev->imports[i];
		view_blk_of(&prev->imports[i])->refs++;
	}
	out->n_imports = prev->n_imports;
	return 0;
}

void view_free_imports(struct model_view *v)
{
	for (size_t i = 0; i < v->n_imports; i++)
		view_blk_unref(&v->imports[i]);
	free(v->imports);
	v->imports = NULL;
	v->n_imports = 0;
}
