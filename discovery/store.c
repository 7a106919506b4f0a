/* The model store: every decoded object, grouped by the source (file or API
 * resource) that gave it, with one index by kind/ns/name so that a name has one
 * owner across all sources. Replacing or removing a source costs its own size. */
#include "discovery/store_iter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/log.h"
#include "discovery/labelsel.h"
#include "discovery/model.h"

#define PSET_MIN_CAP 16

/* ---- the store ----------------------------------------------------------- */

struct store_source;

struct store_obj {
	struct model_object obj;
	struct store_source *src;
};

/* Sets of entries that carry their own keys (kind, namespace, name): the
 * owner of every name (a struct store_obj *), the EndpointSlices of every
 * Service, the sources by name. No key is copied: at 200k objects a map with key copies cost
 * some 14 MB more than these 8-byte slots. Open addressing, linear probes,
 * backward-shift removal as store_map (store_map.c). */
struct pkey {
	int kind;
	const char *ns;
	const char *name;
};

struct pset {
	uintptr_t *slots; /* 0: empty */
	size_t cap;	  /* power of two, or 0 */
	size_t n;
	void (*key_of)(uintptr_t e, struct pkey *k);
};

static const char *str0(const char *s)
{
	return s ? s : "";
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t pkey_hash(const struct pkey *k)
{
	unsigned char kind = (unsigned char)k->kind;
	uint64_t h = fnv(0xcbf29ce484222325ULL, &kind, 1);
	const char *ns = str0(k->ns), *name = str0(k->name);

	h = fnv(h, ns, strlen(ns) + 1); /* with the NUL: "a"+"bc" is not "ab"+"c" */
	h = fnv(h, name, strlen(name));
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static size_t pset_home(const struct pset *s, uintptr_t e, size_t mask)
{
	struct pkey k;
	s->key_of(e, &k);
	return (size_t)pkey_hash(&k) & mask;
}

/* The slot holding key k, or the empty one where it would go. */
static size_t pset_index(const struct pset *s, const struct pkey *k)
{
	size_t mask = s->cap - 1;
	size_t i = (size_t)pkey_hash(k) & mask;

	for (; s->slots[i]; i = (i + 1) & mask) {
		struct pkey e;
		s->key_of(s->slots[i], &e);
		if (e.kind == k->kind && strcmp(str0(e.ns), str0(k->ns)) == 0 &&
		    strcmp(str0(e.name), str0(k->name)) == 0)
			break;
	}
	return i;
}

static uintptr_t *pset_find(const struct pset *s, const struct pkey *k)
{
	if (s->n == 0)
		return NULL;
	size_t i = pset_index(s, k);
	return s->slots[i] ? &s->slots[i] : NULL;
}

/* The slot for key k: holding its entry, or 0 for the caller to fill (which
 * it must, before any other call on the set). Returns 0 or -ENOMEM. */
static int pset_slot(struct pset *s, const struct pkey *k, uintptr_t **slot)
{
	if ((s->n + 1) * 4 > s->cap * 3) {
		size_t cap = s->cap ? s->cap * 2 : PSET_MIN_CAP;
		uintptr_t *slots = calloc(cap, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slots[i])
				continue;
			size_t j = pset_home(s, s->slots[i], cap - 1);
			while (slots[j])
				j = (j + 1) & (cap - 1);
			slots[j] = s->slots[i];
		}
		free(s->slots);
		s->slots = slots;
		s->cap = cap;
	}
	size_t i = pset_index(s, k);
	if (!s->slots[i])
		s->n++;
	*slot = &s->slots[i];
	return 0;
}

/* Removes the entry in *slot (a pointer pset_find or pset_slot gave). */
static void pset_remove(struct pset *s, uintptr_t *slot)
{
	size_t mask = s->cap - 1;
	size_t i = (size_t)(slot - s->slots), j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!s->slots[j])
			break;
		size_t home = pset_home(s, s->slots[j], mask);
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		s->slots[i] = s->slots[j];
		i = j;
	}
	s->slots[i] = 0;
	s->n--;
}

static void owner_key(uintptr_t e, struct pkey *k)
{
	const struct store_obj *o = (const struct store_obj *)e;
	*k = (struct pkey){o->obj.kind, model_object_ns(&o->obj), model_object_name(&o->obj)};
}

static struct pkey obj_key(const struct model_object *o)
{
	return (struct pkey){o->kind, model_object_ns(o), model_object_name(o)};
}

/* The API source makes every object a source of its own: its bookkeeping is
 * one allocation then (the name is part of it, the object sits in `one`). */
struct store_source {
	struct store_obj *objs; /* &one when n is 1, else its own allocation */
	size_t n;
	size_t pos; /* index in model_store.list */
	struct store_obj one;
	char name[];
};

static void source_key(uintptr_t e, struct pkey *k)
{
	*k = (struct pkey){0, NULL, ((const struct store_source *)e)->name};
}

struct model_store {
	struct pset sources; /* struct store_source *, by name */
	struct store_source **list;
	size_t n_list;
	size_t cap_list;
	struct pset owners; /* every name's owner: struct store_obj * */
	size_t counts[KIND_COUNT];
	struct store_map ns_refs; /* namespace -> objects that put it in the view */
	struct pset slice_idx;	  /* by ns and Service: its slice, or a list (LIST_TAG) */
	size_t pods_unaddressed;
	struct store_changes changes;
	bool changes_lost; /* too many to be worth recording: the next view is full */
	bool multicluster; /* a ServiceImport was stored, or the resource exists */
	const struct label_selector *ns_sel; /* --namespace-labels, or NULL */
	bool keep_pod_addrs;		     /* --pods verified */
};

/* A slice_idx entry is the one slice of a Service (most have exactly one), or
 * with LIST_TAG set a list of two or more (objects are malloc'd, so the low bit
 * of their address is free). */
#define LIST_TAG ((uintptr_t)1)

struct slice_list {
	uint32_t n;
	uint32_t cap;
	const struct model_slice *v[];
};

static void slices_key(uintptr_t e, struct pkey *k)
{
	const struct model_slice *sl = e & LIST_TAG
					   ? ((const struct slice_list *)(e & ~LIST_TAG))->v[0]
					   : (const struct model_slice *)e;
	*k = (struct pkey){KIND_COUNT, sl->ns, sl->service};
}

static void key_done(char *k, char *buf)
{
	if (k != buf)
		free(k);
}

struct model_store *model_store_new(void)
{
	struct model_store *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->sources.key_of = source_key;
	store_map_init(&st->ns_refs);
	st->owners.key_of = owner_key;
	st->slice_idx.key_of = slices_key;
	store_map_init(&st->changes.svcs);
	store_map_init(&st->changes.nss);
	store_map_init(&st->changes.pod_nss);
	st->changes.epoch = 1;
	return st;
}

/* Releases the name of one stored object, unless another entry holds it. */
static void store_unclaim(struct model_store *st, const struct store_obj *e)
{
	struct pkey k = obj_key(&e->obj);
	uintptr_t *s = pset_find(&st->owners, &k);

	if (s && *s == (uintptr_t)e)
		pset_remove(&st->owners, s);
}

/* "ns\0name" into buf (or a malloc'd key when it does not fit). */
static char *pair_key(const char *ns, const char *name, char *buf, size_t cap, size_t *len)
{
	size_t lns = ns ? strlen(ns) : 0, lname = name ? strlen(name) : 0;
	size_t need = lns + 1 + lname;
	char *k = need <= cap ? buf : malloc(need);

	if (!k)
		return NULL;
	if (lns)
		memcpy(k, ns, lns);
	k[lns] = '\0';
	if (lname)
		memcpy(k + lns + 1, name, lname);
	*len = need;
	return k;
}

/* A change that cannot be recorded makes the next view a full one. */
static void mark(struct model_store *st, struct store_map *m, const char *ns, const char *name)
{
	char buf[512];
	size_t len;
	struct store_map_slot *slot;
	bool created;

	if (st->changes_lost)
		return;
	char *k = name ? pair_key(ns, name, buf, sizeof(buf), &len) : (char *)(ns ? ns : "");
	/* Past half the Services an incremental view is refused anyway (see
	 * model_view_update); loading a cluster would otherwise record every
	 * Service, some 9 MiB at 100k, only to build in full. */
	if (m == &st->changes.svcs && m->n >= st->counts[KIND_SERVICE] / 2 + 64) {
		store_map_clear(m);
		st->changes_lost = true;
		st->changes.epoch++;
		goto out;
	}
	if (!name)
		len = strlen(k);
	if (!k || store_map_insert(m, k, len, &slot, &created))
		st->changes.epoch++;
out:
	if (name)
		key_done(k, buf);
}

static void ns_ref(struct model_store *st, const char *ns, int delta)
{
	struct store_map_slot *slot;
	bool created;

	if (!ns || !*ns)
		return;
	mark(st, &st->changes.nss, ns, NULL);
	if (delta > 0) {
		if (store_map_insert(&st->ns_refs, ns, strlen(ns), &slot, &created) == 0)
			slot->val++;
		else
			st->changes.epoch++;
		return;
	}
	slot = store_map_find(&st->ns_refs, ns, strlen(ns));
	if (slot && --slot->val == 0)
		store_map_remove(&st->ns_refs, ns, strlen(ns));
}

static void slice_index(struct model_store *st, const struct model_slice *sl, int delta)
{
	struct pkey k = {KIND_COUNT, sl->ns, sl->service};
	uintptr_t *slot;

	if (delta > 0) {
		if (pset_slot(&st->slice_idx, &k, &slot))
			goto oom;
		if (!*slot) {
			*slot = (uintptr_t)sl;
		} else if (!(*slot & LIST_TAG)) {
			struct slice_list *l = malloc(sizeof(*l) + 2 * sizeof(l->v[0]));
			if (!l)
				goto oom;
			l->n = 2;
			l->cap = 2;
			l->v[0] = (const struct model_slice *)*slot;
			l->v[1] = sl;
			*slot = (uintptr_t)l | LIST_TAG;
		} else {
			struct slice_list *l = (struct slice_list *)(*slot & ~LIST_TAG);
			if (l->n == l->cap) {
				l = realloc(l, sizeof(*l) + 2 * l->cap * sizeof(l->v[0]));
				if (!l)
					goto oom;
				l->cap *= 2;
				*slot = (uintptr_t)l | LIST_TAG;
			}
			l->v[l->n++] = sl;
		}
	} else if ((slot = pset_find(&st->slice_idx, &k))) {
		if (!(*slot & LIST_TAG)) {
			if (*slot == (uintptr_t)sl)
				pset_remove(&st->slice_idx, slot);
		} else {
			/* The list's first slice is its key: any member has the same. */
			struct slice_list *l = (struct slice_list *)(*slot & ~LIST_TAG);
			for (uint32_t i = 0; i < l->n; i++)
				if (l->v[i] == sl) {
					l->v[i] = l->v[--l->n];
					break;
				}
			if (l->n == 1) {
				*slot = (uintptr_t)l->v[0];
				free(l);
			}
		}
	}
	return;
oom:
	/* The index misses a slice: no view may be derived incrementally from
	 * here on, which model_view_update learns from the epoch. */
	st->changes.epoch++;
}

/* Keeps the indexes and the change record in step with one object coming
 * (delta 1) or going (-1). */
static void obj_account(struct model_store *st, const struct model_object *o, int delta)
{
	st->counts[o->kind] += (size_t)(ssize_t)delta;
	switch (o->kind) {
	case KIND_SERVICE:
		mark(st, &st->changes.svcs, o->u.svc->ns, o->u.svc->name);
		ns_ref(st, o->u.svc->ns, delta);
		break;
	case KIND_SLICE:
		if (o->u.slice->mc_service)
			st->changes.epoch++;
		if (o->u.slice->service)
			mark(st, &st->changes.svcs, o->u.slice->ns, o->u.slice->service);
		if (store_slice_served(o->u.slice)) {
			slice_index(st, o->u.slice, delta);
			ns_ref(st, o->u.slice->ns, delta);
		} else if (o->u.slice->ns && *o->u.slice->ns) {
			mark(st, &st->changes.nss, o->u.slice->ns, NULL);
		}
		break;
	case KIND_POD:
		mark(st, &st->changes.pod_nss, o->u.pod->ns ? o->u.pod->ns : "", NULL);
		if (!o->u.pod->has_status)
			st->pods_unaddressed += (size_t)(ssize_t)delta;
		ns_ref(st, o->u.pod->ns, delta);
		break;
	case KIND_NAMESPACE:
		ns_ref(st, o->u.ns->name, delta);
		break;
	case KIND_IMPORT:
		/* Imports are few and change rarely: the next view is a full one. */
		st->multicluster = true;
		st->changes.epoch++;
		break;
	default:
		break;
	}
}

static void store_free_objs(struct model_store *st, struct store_source *src,
			    struct store_obj *objs, size_t n, bool account)
{
	for (size_t i = 0; i < n; i++) {
		if (account)
			obj_account(st, &objs[i].obj, -1);
		model_object_free(&objs[i].obj);
	}
	if (!src || objs != &src->one)
		free(objs);
}

static void source_drop(struct model_store *st, struct store_source *src)
{
	for (size_t i = 0; i < src->n; i++)
		store_unclaim(st, &src->objs[i]);
	store_free_objs(st, src, src->objs, src->n, true);
	st->n_list--;
	if (src->pos != st->n_list) {
		st->list[src->pos] = st->list[st->n_list];
		st->list[src->pos]->pos = src->pos;
	}
	struct pkey k = {0, NULL, src->name};
	uintptr_t *slot = pset_find(&st->sources, &k);
	if (slot)
		pset_remove(&st->sources, slot);
	free(src);
}

static struct store_source *source_find(const struct model_store *st, const char *name)
{
	struct pkey k = {0, NULL, name};
	uintptr_t *s = pset_find(&st->sources, &k);
	return s ? (struct store_source *)*s : NULL;
}

static int source_get(struct model_store *st, const char *name, struct store_source **out)
{
	struct store_source *src = source_find(st, name);
	struct pkey k = {0, NULL, name};
	size_t len = strlen(name) + 1;
	uintptr_t *slot;
	int ret;

	if (src) {
		*out = src;
		return 0;
	}
	if (st->n_list == st->cap_list) {
		size_t cap = st->cap_list ? st->cap_list * 2 : 16;
		struct store_source **list = realloc(st->list, cap * sizeof(*list));
		if (!list)
			return -ENOMEM;
		st->list = list;
		st->cap_list = cap;
	}
	src = calloc(1, sizeof(*src) + len);
	if (!src)
		return -ENOMEM;
	memcpy(src->name, name, len);
	ret = pset_slot(&st->sources, &k, &slot);
	if (ret) {
		free(src);
		return ret;
	}
	*slot = (uintptr_t)src;
	src->pos = st->n_list;
	st->list[st->n_list++] = src;
	*out = src;
	return 0;
}

void model_store_free(struct model_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_list; i++) {
		store_free_objs(st, st->list[i], st->list[i]->objs, st->list[i]->n, false);
		free(st->list[i]);
	}
	free(st->list);
	free(st->sources.slots);
	free(st->owners.slots);
	store_map_clear(&st->ns_refs);
	for (size_t i = 0; i < st->slice_idx.cap; i++)
		if (st->slice_idx.slots[i] & LIST_TAG)
			free((void *)(st->slice_idx.slots[i] & ~LIST_TAG));
	free(st->slice_idx.slots);
	store_map_clear(&st->changes.svcs);
	store_map_clear(&st->changes.nss);
	store_map_clear(&st->changes.pod_nss);
	free(st);
}

int model_store_replace(struct model_store *st, const char *source, struct model_object *objs,
			size_t n)
{
	struct store_source *src = NULL;
	struct store_obj *kept = NULL;
	size_t k = 0, i = 0;
	int ret;

	ret = source_get(st, source, &src);
	if (ret)
		goto fail;
	if (n) {
		kept = calloc(n, sizeof(*kept));
		if (!kept) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	/* The old version gives up its names first, so that an object which
	 * stays in the same source keeps its name. */
	for (size_t j = 0; j < src->n; j++)
		store_unclaim(st, &src->objs[j]);

	for (i = 0; i < n; i++) {
		struct model_object *o = &objs[i];
		uintptr_t *slot;

		/* What the store keeps is packed: a parser's many small blocks
		 * become one, and views may share it by reference. */
		ret = model_object_pack(o);
		if (ret)
			goto fail;
		const char *ns = model_object_ns(o), *name = model_object_name(o);

		struct pkey key = obj_key(o);
		ret = pset_slot(&st->owners, &key, &slot);
		if (ret)
			goto fail;
		if (!*slot) {
			kept[k] = (struct store_obj){.obj = *o, .src = src};
			*slot = (uintptr_t)&kept[k];
			obj_account(st, o, 1);
			k++;
			continue;
		}
		const struct store_obj *holder = (const struct store_obj *)*slot;
		if (holder->src == src)
			log_warn("manifest %s: %s %s%s%s appears more than once; the first is kept",
				 source, model_kind_name(o->kind), ns ? ns : "",
				 ns && *ns ? "/" : "", name ? name : "");
		else
			log_warn("manifest %s: %s %s%s%s duplicates the one in %s; ignored", source,
				 model_kind_name(o->kind), ns ? ns : "", ns && *ns ? "/" : "",
				 name ? name : "", holder->src->name);
		model_object_free(o);
	}
	store_free_objs(st, src, src->objs, src->n, true);
	src->objs = kept;
	src->n = k;
	if (k == 1) {
		/* The owners map points at the entry: it follows it into src. */
		struct pkey key = obj_key(&kept->obj);
		uintptr_t *slot = pset_find(&st->owners, &key);
		src->one = *kept;
		if (slot)
			*slot = (uintptr_t)&src->one;
		src->objs = &src->one;
		free(kept);
	}
	if (k == 0)
		source_drop(st, src);
	return 0;

fail:
	/* Ownership of objs was promised: whatever was not stored is freed, and
	 * the source is dropped whole rather than left half replaced. */
	for (; i < n; i++)
		model_object_free(&objs[i]);
	for (size_t j = 0; j < k; j++)
		store_unclaim(st, &kept[j]);
	if (kept)
		store_free_objs(st, NULL, kept, k, true);
	if (src)
		source_drop(st, src);
	log_error("manifest %s: out of memory while storing its objects; dropped", source);
	return ret;
}

void model_store_remove(struct model_store *st, const char *source)
{
	struct store_source *src = source_find(st, source);

	if (src)
		source_drop(st, src);
}

const struct model_object *model_store_find(const struct model_store *st, const char *source,
					    enum model_kind kind, const char *ns, const char *name)
{
	struct pkey k = {kind, ns, name};
	uintptr_t *s = pset_find(&st->owners, &k);
	const struct store_obj *e = s ? (const struct store_obj *)*s : NULL;

	return e && strcmp(e->src->name, source) == 0 ? &e->obj : NULL;
}

/* ---- iteration ----------------------------------------------------------- */

void model_store_iter_init(struct model_store_iter *it, const struct model_store *st,
			   enum model_kind kind)
{
	it->st = st;
	it->kind = kind;
	it->src = 0;
	it->i = 0;
}

const struct model_object *model_store_iter_next(struct model_store_iter *it)
{
	const struct model_store *st = it->st;

	while (it->src < st->n_list) {
		const struct store_source *src = st->list[it->src];
		while (it->i < src->n) {
			const struct model_object *o = &src->objs[it->i++].obj;
			if (o->kind == it->kind)
				return o;
		}
		it->src++;
		it->i = 0;
	}
	return NULL;
}

size_t model_store_count(const struct model_store *st, enum model_kind kind)
{
	return st->counts[kind];
}

/* ---- changes ------------------------------------------------------------- */

const struct store_changes *store_changes(const struct model_store *st)
{
	return &st->changes;
}

void store_changes_reset(struct model_store *st)
{
	store_map_clear(&st->changes.svcs);
	store_map_clear(&st->changes.nss);
	store_map_clear(&st->changes.pod_nss);
	st->changes_lost = false;
	st->changes.epoch++;
}

bool model_store_set_multicluster(struct model_store *st)
{
	if (st->multicluster)
		return false;
	st->changes.epoch++;
	st->multicluster = true;
	return true;
}

bool store_multicluster(const struct model_store *st)
{
	return st->multicluster;
}

void model_store_set_ns_selector(struct model_store *st, const struct label_selector *sel)
{
	st->ns_sel = sel;
	st->changes.epoch++;
}

void model_store_keep_pod_addrs(struct model_store *st, bool keep)
{
	st->keep_pod_addrs = keep;
	st->changes.epoch++;
}

bool store_keeps_pod_addrs(const struct model_store *st)
{
	return st->keep_pod_addrs;
}

bool store_ns_filtered(const struct model_store *st)
{
	return st->ns_sel != NULL;
}

bool store_ns_selected(const struct model_store *st, const char *ns)
{
	if (!st->ns_sel)
		return true;
	struct pkey k = {KIND_NAMESPACE, "", ns};
	uintptr_t *s = ns ? pset_find(&st->owners, &k) : NULL;
	const struct model_namespace *n = s ? ((const struct store_obj *)*s)->obj.u.ns : NULL;
	return label_selector_matches(st->ns_sel, n ? &n->labels : NULL);
}

bool store_ns_present(const struct model_store *st, const char *ns)
{
	return ns && store_map_find(&st->ns_refs, ns, strlen(ns)) != NULL;
}

size_t store_pods_unaddressed(const struct model_store *st)
{
	return st->pods_unaddressed;
}

const struct model_service *store_service_find(const struct model_store *st, const char *ns,
					       const char *name)
{
	struct pkey k = {KIND_SERVICE, ns, name};
	uintptr_t *s = pset_find(&st->owners, &k);

	return s ? ((const struct store_obj *)*s)->obj.u.svc : NULL;
}

const struct model_slice *const *store_service_slices(const struct model_store *st, const char *ns,
						      const char *name,
						      const struct model_slice **one, size_t *n)
{
	struct pkey k = {KIND_COUNT, ns, name};
	uintptr_t *s = pset_find(&st->slice_idx, &k);

	if (!s) {
		*n = 0;
		return NULL;
	}
	if (!(*s & LIST_TAG)) {
		*one = (const struct model_slice *)*s;
		*n = 1;
		return one;
	}
	const struct slice_list *l = (const struct slice_list *)(*s & ~LIST_TAG);
	*n = l->n;
	return l->v;
}
