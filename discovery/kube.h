/* The Kubernetes API source: lists, then watches, Services, EndpointSlices
 * (discovery.k8s.io/v1) and Namespaces the way client-go's reflector does, and
 * keeps the model store equal to what the API server holds.
 *
 * Owns: one reflector per resource (paginated list, watch from the list's
 * resourceVersion with bookmarks, resume from the last resourceVersion after a
 * dropped stream, relist on 410 Gone, backoff with jitter), the namespace and
 * label filters, the first-sync state and the counters kept for metrics.
 * Must never: build snapshots or touch DNS; it only feeds the store and says
 * when the store changed. A failure never empties the store: what was last
 * seen is kept until the API server says otherwise. */
#ifndef SVCDNS_KUBE_H
#define SVCDNS_KUBE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "discovery/kubeconfig.h"
#include "discovery/model.h"

struct kube_http_stats;

enum kube_resource { KUBE_SERVICES = 0, KUBE_ENDPOINTSLICES, KUBE_NAMESPACES, KUBE_RESOURCES };

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

struct kube_options {
	const char *namespaces;	 /* "a,b,c": only these namespaces are served; NULL: all */
	const char *labels;	 /* label selector for Services and EndpointSlices, or NULL */
	unsigned page_size;	 /* list limit, default 500 */
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

/* Starts the three reflectors. Takes ownership of *conn's contents (the
 * struct is emptied) whatever the result. Returns 0, or -EINVAL for a bad
 * filter (logged). */
int kube_source_start(uv_loop_t *loop, struct kube_conn *conn, const struct kube_options *o,
		      struct model_store *store, kube_changed_cb cb, void *arg,
		      struct kube_source **out);
/* Cancels every request and frees the source once the loop has closed its
 * handles. The store keeps what it holds. */
void kube_source_stop(struct kube_source *ks);

/* ---- state and metrics (plain getters, loop thread) ------------------------ */

/* All three resources have completed their first full list. */
bool kube_source_synced(const struct kube_source *ks);
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

/* ---- exposed for unit tests ------------------------------------------------ */

/* The delay before retry number `failures` (0-based): min doubled per failure,
 * capped at max, then "equal jitter": a uniform value in [d/2, d] from rnd. */
unsigned kube_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned failures, uint32_t rnd);

/* Percent-encodes s for a URL query (RFC 3986 unreserved kept). Returns the
 * length written, or -ENOSPC when it does not fit in cap (with the NUL). */
int kube_query_escape(const char *s, char *out, size_t cap);

#endif
