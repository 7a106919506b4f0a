/* Internal to discovery/: walking the store by kind, and the record of what
 * changed since the last view (the view's incremental build reads it).
 *
 * Must never be included outside discovery/; model.h is the public interface. */
#ifndef SVCDNS_STORE_ITER_H
#define SVCDNS_STORE_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "discovery/model.h"
#include "discovery/store_map.h"

/* ---- iteration -----------------------------------------------------------
 * Visits every object of one kind, in no particular order. The store must not
 * change while an iterator is in use. */
struct model_store_iter {
	const struct model_store *st;
	enum model_kind kind;
	size_t src;
	size_t i;
};

void model_store_iter_init(struct model_store_iter *it, const struct model_store *st,
			   enum model_kind kind);
const struct model_object *model_store_iter_next(struct model_store_iter *it);
size_t model_store_count(const struct model_store *st, enum model_kind kind);

/* ---- changes since the last view ---------------------------------------------
 * What an incremental view build must look at: every store change marks the
 * Services it may affect, so that the view recomputes those and shares the
 * rest. Keys of `svcs` are "ns\0name" (the Service a changed Service or
 * EndpointSlice names, old and new versions); `nss` holds the namespace of
 * every changed object (its presence in the namespace list may change);
 * `pod_nss` those where a Pod changed (selector Services there may change).
 * The epoch grows on every reset, so that a view knows whether the changes are
 * relative to it. */
struct store_changes {
	struct store_map svcs;
	struct store_map nss;
	struct store_map pod_nss;
	uint64_t epoch;
};

/* An EndpointSlice the view serves: it names its Service and is not FQDN. */
static inline bool store_slice_served(const struct model_slice *sl)
{
	return sl->service && (sl->address_type == AF_INET || sl->address_type == AF_INET6);
}

const struct store_changes *store_changes(const struct model_store *st);
void store_changes_reset(struct model_store *st);
/* Whether a ServiceImport was ever stored or the resource is known to exist. */
bool store_multicluster(const struct model_store *st);
/* Whether any object (or a Namespace object) is in namespace ns. */
bool store_ns_present(const struct model_store *st, const char *ns);
/* Whether --namespace-labels lets namespace ns be served (always without
 * one): its Namespace object's labels, or none when it has no such object. */
bool store_ns_selected(const struct model_store *st, const char *ns);
/* Whether a namespace selector is set at all. */
bool store_ns_filtered(const struct model_store *st);
/* Whether views carry the Pods' addresses (model_store_keep_pod_addrs). */
bool store_keeps_pod_addrs(const struct model_store *st);
/* Pods the view gives an address to (no status): they make every Pod change a
 * matter for the whole Pod address pool. */
size_t store_pods_unaddressed(const struct model_store *st);
const struct model_service *store_service_find(const struct model_store *st, const char *ns,
					       const char *name);
/* The served EndpointSlices naming Service ns/name, in no particular order;
 * valid until the store changes. A single one is returned through *one (the
 * result then points at it). */
const struct model_slice *const *store_service_slices(const struct model_store *st, const char *ns,
						      const char *name,
						      const struct model_slice **one, size_t *n);

#endif
