/* The view's build, shared by its parts: view.c (a full build: collect the
 * store's objects, namespaces), view_alloc.c (ClusterIPs, NodePorts and Pod
 * IPs for the objects that lack them), view_eps.c (each Service's endpoints),
 * view_pack.c (each Service's data packed into one shared block),
 * view_import.c (the ServiceImports and their endpoints) and view_incr.c (the next view from the
 * store's recorded changes).
 *
 * Owns: the working state of one build (struct build) and the layout of the
 * blocks a view holds. Must never: change the store; a view, once built, is
 * never written to again. Internal to discovery/. Called on the thread that
 * builds views only. */
#ifndef SVCDNS_VIEW_BUILD_H
#define SVCDNS_VIEW_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/model.h"
#include "discovery/store_map.h"

static inline int strcmp0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static inline bool streq0(const char *a, const char *b)
{
	return strcmp0(a, b) == 0;
}

/* A growable byte buffer for building map keys; an allocation failure is
 * remembered and reported once by the caller. */
struct kbuf {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

static inline void kb_put(struct kbuf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Appends s and a NUL separator: names never hold NUL, so keys built from
 * several fields cannot collide. */
static inline void kb_field(struct kbuf *b, const char *s)
{
	kb_put(b, s ? s : "", s ? strlen(s) : 0);
	kb_put(b, "", 1);
}

static inline void kb_u32(struct kbuf *b, uint32_t v)
{
	char num[16];
	int n = snprintf(num, sizeof(num), "%u", v);
	kb_put(b, num, (size_t)n + 1);
}

/* One Service's data in one allocation: this header, the store objects it
 * holds references on, then (see view_pack.c) the rest. */
struct vblock {
	size_t refs;
	size_t n_held;
	struct model_object held[];
};

/* The namespace list, shared by views while it does not change. */
struct nsblock {
	size_t refs;
	size_t n;
	char *names[];
};

/* The Pods' addresses of a view (view_pods.c), shared while no Pod changes. */
struct podblock {
	size_t refs;
	struct view_pod_ns *nss;
	size_t n_nss;
	struct net_addr *addrs;
	size_t n_addrs;
	char *names; /* the namespace names nss point into */
};

struct view_priv {
	struct podblock *pods; /* or NULL */
	struct nsblock *ns;
	struct view_change *changes;
	uint64_t store_epoch; /* the store's change epoch this view is current for, or 0 */
};

struct pod_ref {
	const struct model_pod *pod;
	struct net_addr ips[2];
	size_t n_ips;
};

struct idx_list {
	size_t *v;
	size_t n;
	size_t cap;
};

struct ep_tmp {
	struct view_endpoint ep;
	size_t seq; /* breaks ties so that merging is deterministic */
};

struct arena; /* common/arena.h */

struct build {
	const struct model_store *st;
	struct model_alloc *alloc;
	struct arena *scratch;	       /* endpoint target ports until packed */
	struct model_service **clones; /* owned, freed with the build */
	size_t n_clones;
	struct kbuf key;
	bool oom;

	struct model_service **svcs;
	size_t n_svcs;
	size_t *slice_lo; /* per service: its slices are slices[lo, hi) */
	size_t *slice_hi;

	struct pod_ref *pods;
	size_t n_pods;

	const struct model_slice **slices;
	size_t n_slices;

	/* (ns, key, value) of every selector pair in use -> index in lists */
	struct store_map label_idx;
	struct idx_list *lists;
	size_t n_lists;

	struct ep_tmp *eps;
	size_t n_eps;
	size_t cap_eps;

	/* The store objects whose strings the current Service's endpoints use. */
	struct model_object *held;
	size_t n_held;
	size_t cap_held;
};

/* ---- view.c -------------------------------------------------------------- */

/* A new view id: unique in this process, never 0. */
uint64_t view_next_id(void);
/* Sets b->key to the key of one object for one purpose (tag). */
void view_key_obj(struct build *b, const char *tag, const char *ns, const char *name);
/* True the first time the condition b->key names is seen while it lasts. */
bool view_note_once(struct build *b);
/* out->service_cidrs: the ranges of every ServiceCIDR in the store, sorted
 * and unique (a few objects: collected afresh by every build). */
int view_service_cidrs(const struct model_store *st, struct model_view *out);
int view_cmp_pod(const void *x, const void *y);	  /* struct pod_ref, by ns/name */
int view_cmp_slice(const void *x, const void *y); /* by ns, Service, name */
/* b->slices: the slices of b->svcs (mc: the multicluster slices of the
 * imports in b->svcs), sorted by (ns, owner, name), and each one's range
 * [slice_lo, slice_hi) found in one merge walk with b->svcs sorted by
 * (ns, name). */
int view_collect_slices(struct build *b, bool mc);
int view_cmp_str(const void *x, const void *y); /* const char *, NULL as "" */
void view_build_fini(struct build *b);

/* ---- view_alloc.c ------------------------------------------------------------
 * A full build runs view_alloc_cluster_ips, view_alloc_node_ports and, once
 * the Pods are collected, view_alloc_pod_ips; an incremental one releases what
 * the old versions of its Services held, claims what the new ones name and
 * runs view_alloc_assign over the recomputed Services only. */

/* A working copy of a stored Service for b->svcs, into b->clones. */
int view_clone_service(struct build *b, const struct model_service *src);
int view_alloc_cluster_ips(struct build *b);
int view_alloc_node_ports(struct build *b);
int view_alloc_pod_ips(struct build *b);
/* ClusterIPs and NodePorts for b->svcs that lack them, sticky ones first,
 * with the pools as they are (not reset). */
int view_alloc_assign(struct build *b);
/* Gives up an old version's values; -EAGAIN when a claim count is unknown. */
int view_alloc_release(struct build *b, const struct model_service *s);
/* Takes a new version's explicit claims; -EAGAIN when one lands on a value an
 * allocation holds (that other Service would move: a full build's job). */
int view_alloc_claim(struct build *b, const struct model_service *s);
/* Drops the sticky values of an old version that this build did not use. */
void view_alloc_forget(struct build *b, const struct model_service *s);
/* The address the last full build gave a Pod without a status, if any. */
bool view_alloc_pod_sticky(struct build *b, const struct model_pod *pod, struct net_addr *out);

/* ---- view_eps.c ---------------------------------------------------------- */

/* Whether b->svcs[i] gets its endpoints from the Pods its selector matches. */
bool view_derives_from_pods(const struct build *b, size_t i);
/* Indexes b->pods by the selector pairs of the Services that derive. */
int view_index_pods(struct build *b);
/* Computes and packs b->svcs[i] into out[i]; *n_done counts the packed ones. */
int view_build_endpoints(struct build *b, struct view_service *out, size_t *n_done);
/* Notes a store object whose strings the current Service's endpoints use. */
void view_held_push(struct build *b, enum model_kind kind, const void *obj);

/* ---- view_import.c ------------------------------------------------------- */

/* out->imports and out->multicluster from the store, in full. */
int view_build_imports(const struct model_store *st, struct model_alloc *alloc,
		       struct model_view *out);
/* out->imports shared with prev (no import changed since). */
int view_share_imports(const struct model_view *prev, struct model_view *out);
void view_free_imports(struct model_view *v);
/* ---- view_pods.c --------------------------------------------------------- */

/* The Pods' addresses for --pods verified, into priv->pods: from b->pods (a
 * full build, with the addresses allocation gave) or, with b NULL, from the
 * store's Pods (an incremental build). Pods that are Succeeded or Failed, or
 * in a namespace that is not served, do not count. */
int view_pods_build(const struct model_store *st, const struct build *b, struct view_priv *priv);
/* The same from prev, rebuilding only the namespaces in `changed` (keys:
 * namespace names) from the store's Pods and sharing nothing: the others'
 * addresses are copied, with no sort. */
int view_pods_update(const struct model_store *st, const struct podblock *prev,
		     const struct store_map *changed, struct view_priv *priv);
void view_podblock_unref(struct podblock *pb);
/* Points the view's fields at priv->pods. */
void view_pods_expose(struct model_view *v, const struct view_priv *priv);

/* ---- view_pack.c --------------------------------------------------------- */

/* Packs Service s with eps[0..n_eps) into one block, into *vs. */
int view_pack_service(struct build *b, const struct model_service *s, bool from_slices,
		      const struct ep_tmp *eps, size_t n_eps, struct view_service *vs);
void view_blk_unref(const struct view_service *vs);
struct nsblock *view_nsblock_new(const char *const *names, size_t n);
void view_nsblock_unref(struct nsblock *nb);
/* Whether two Services hold the same values (allocated ones included). */
bool view_svc_same(const struct model_service *a, const struct model_service *b);

static inline struct vblock *view_blk_of(const struct view_service *vs)
{
	return vs->priv;
}

#endif
