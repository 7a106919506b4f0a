/* The Kubernetes API source: lists, then watches, Services, EndpointSlices
 * (discovery.k8s.io/v1), Namespaces and, where the server has them,
 * ServiceCIDRs (networking.k8s.io/v1, else v1beta1) and ServiceImports
 * (multicluster.x-k8s.io/v1alpha1) the way client-go's
 * reflector does, and keeps the model store equal to what the API server holds.
 *
 * With --pods verified, the Pods too, keeping only their addresses.
 *
 * Owns: one reflector per resource (a streamed list where the server does it, else a paged
 * one; watch from the list's resourceVersion with bookmarks, resume from the last
 * resourceVersion after a dropped stream, relist on 410 Gone, backoff with jitter), the
 * namespace and label filters, the first-sync state and the counters kept for metrics.
 * Must never: build snapshots or touch DNS; it only feeds the store and says when the store
 * changed. A failure never empties the store: what was last seen is kept until the API server
 * says otherwise. */
#ifndef SVCDNS_KUBE_H
#define SVCDNS_KUBE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "discovery/kubeconfig.h"
#include "discovery/model.h"

struct kube_http_stats;

/* KUBE_PODS is watched only with kube_options.pods. */
enum kube_resource {
	KUBE_SERVICES = 0,
	KUBE_ENDPOINTSLICES,
	KUBE_NAMESPACES,
	/* Optional: a server without them (before Kubernetes 1.31, or RBAC
	 * that does not grant them) is served without them. */
	KUBE_SERVICECIDRS,
	/* Optional: ServiceImports (multicluster.x-k8s.io/v1alpha1) where the
	 * Multi-Cluster Services CRD is installed. */
	KUBE_SERVICEIMPORTS,
	/* Only with kube_options.pods (--pods verified); the last, so that the
	 * source watches [0, kube_source_resources()). */
	KUBE_PODS,
	KUBE_RESOURCES
};

enum kube_event_type {
	KUBE_EV_ADDED = 0,
	KUBE_EV_MODIFIED,
	KUBE_EV_DELETED,
	KUBE_EV_BOOKMARK,
	KUBE_EV_ERROR,
	KUBE_EV_TYPES
};

/* A watch event line is refused beyond this (one object, not a list). */
#define KUBE_MAX_LINE (16u << 20)
/* A list page's body is refused beyond this. */
#define KUBE_MAX_PAGE (256u << 20)

/* How a resource is listed: a streamed list (KEP-3157 WatchList: a watch that
 * begins with the current objects) when the server does it, else pages; or
 * only one of the two. */
enum kube_list_mode { KUBE_LIST_AUTO = 0, KUBE_LIST_WATCHLIST, KUBE_LIST_PAGED };

struct kube_options {
	const char *namespaces; /* "a,b,c": only these namespaces are served; NULL: all */
	const char *labels;	/* label selector for Services and EndpointSlices, or NULL */
	bool pods;		/* watch the Pods too, keeping their addresses (--pods verified) */
	unsigned page_size;	/* list limit, default 500 */
	enum kube_list_mode list_mode;
	unsigned timeout_ms;	 /* a list page, or a watch's response headers, default 30000 */
	unsigned backoff_min_ms; /* first retry delay, default 500 (jittered down to half) */
	unsigned backoff_max_ms; /* default 30000 */
	unsigned probe_ms;	 /* prove contact at least this often (kube_contact.h), 10000 */
	unsigned qps;		 /* kube_source_set_limits; 0: none */
	unsigned burst;
	unsigned max_inflight;
};

/* Called on the loop thread after the store changed (never before the first
 * full sync, then once at it). */
typedef void (*kube_changed_cb)(void *arg);

struct kube_source;

/* Starts the reflectors (three, or four with the Pods). Takes ownership of *conn's contents (the
 * struct is emptied) whatever the result. Returns 0, or -EINVAL for a bad
 * filter (logged). */
int kube_source_start(uv_loop_t *loop, struct kube_conn *conn, const struct kube_options *o,
		      struct model_store *store, kube_changed_cb cb, void *arg,
		      struct kube_source **out);
/* Cancels every request and frees the source once the loop has closed its
 * handles. The store keeps what it holds. */
void kube_source_stop(struct kube_source *ks);

/* ---- state and metrics (plain getters, loop thread) ------------------------ */

/* Every resource has completed its first full list (an optional one the
 * server does not serve counts as listed). */
/* How many resources the source watches: KUBE_PODS and above are left out
 * unless kube_options.pods. */
int kube_source_resources(const struct kube_source *ks);
/* All its resources have completed their first full list. */
bool kube_source_synced(const struct kube_source *ks);
/* Whether the server serves resource r (false only for an optional one it
 * answered 404 or 403 for, and while it is asked again). */
bool kube_source_served(const struct kube_source *ks, enum kube_resource r);
/* One resource's first list was applied (/ready names those still waiting). */
bool kube_resource_synced(const struct kube_source *ks, enum kube_resource r);
/* Seconds since the resource heard from least recently was last proven in
 * contact (kube_contact.h: a healthy quiet watch stays in contact), or -1
 * while one never was. */
double kube_source_seconds_since_contact(const struct kube_source *ks);
/* How often contact is proven; freshness thresholds should be a few times
 * this. */
void kube_source_set_probe_ms(struct kube_source *ks, unsigned ms);
uint64_t kube_source_events(const struct kube_source *ks, enum kube_resource r,
			    enum kube_event_type t);
/* Lists started again after 410 Gone (the first list is not counted). */
uint64_t kube_source_relists(const struct kube_source *ks, enum kube_resource r);
/* ---- the API client's manners and its requests ------------------------------
 * Client-side limits: a token bucket of `qps` with `burst` for every list
 * (its later pages take none), watch and probe, and at most `max_inflight`
 * requests at once that are not watches; 0 turns a limit off. After a
 * failure the three resources share one backoff (kube_backoff_ms, jittered
 * per process), so replicas that lost the API server together do not come
 * back together. */
void kube_source_set_limits(struct kube_source *ks, double qps, unsigned burst,
			    unsigned max_inflight);

enum kube_verb { KUBE_VERB_LIST = 0, KUBE_VERB_WATCH, KUBE_VERBS };
const char *kube_verb_name(enum kube_verb v);
/* The statistics slot (discovery/kube_http.h) of a verb on a resource. */
static inline unsigned kube_http_slot(enum kube_verb v, enum kube_resource r)
{
	return (unsigned)v * KUBE_RESOURCES + (unsigned)r;
}
/* Every request's statistics for a verb on a resource (the contact probe is a
 * list of namespaces); NULL before the source has a client. */
const struct kube_http_stats *kube_source_http_stats(const struct kube_source *ks, enum kube_verb v,
						     enum kube_resource r);
uint64_t kube_source_list_pages(const struct kube_source *ks, enum kube_resource r);
uint64_t kube_source_watch_restarts(const struct kube_source *ks, enum kube_resource r);

/* Lines of a watch stream that were not events and were skipped. */
uint64_t kube_source_bad_lines(const struct kube_source *ks, enum kube_resource r);
const char *kube_resource_name(enum kube_resource r);	  /* "services", ... */
const char *kube_event_type_name(enum kube_event_type t); /* "ADDED", ... */

/* ---- DNS programming latency ------------------------------------------------
 * An EndpointSlice whose last-change-trigger-time annotation changed (a
 * change in the cluster: the Kubernetes DNS programming latency SLI is
 * measured from it) is noted when it is stored; the pipeline takes the notes
 * before a build and observes each once the snapshot holding it is
 * published. Slices of the first full list are not noted (their changes are
 * old news), nor those whose annotation a relist or an update repeats. */
struct kube_trigger {
	int64_t at_ms; /* the annotation, milliseconds since the epoch */
	char ns[64];
	char service[64];
};
/* Notes kept at most between two builds; more are dropped (counted). */
#define KUBE_MAX_TRIGGERS 100000

/* Moves the notes taken since the last call to *out (malloc'd, the caller
 * frees it) and returns their number; 0 and NULL when none. */
size_t kube_source_take_triggers(struct kube_source *ks, struct kube_trigger **out);
/* Notes dropped beyond KUBE_MAX_TRIGGERS. */
uint64_t kube_source_triggers_dropped(const struct kube_source *ks);

/* ---- exposed for unit tests ------------------------------------------------ */

/* The delay before retry number `failures` (0-based): min doubled per failure,
 * capped at max, then "equal jitter": a uniform value in [d/2, d] from rnd. */
unsigned kube_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned failures, uint32_t rnd);

/* Percent-encodes s for a URL query (RFC 3986 unreserved kept). Returns the
 * length written, or -ENOSPC when it does not fit in cap (with the NUL). */
int kube_query_escape(const char *s, char *out, size_t cap);

#endif
