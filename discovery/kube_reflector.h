/* The API source's parts, shared by the files that make it up: kube.c (the
 * source, its filters and the contact probe), kube_reflector.c (object
 * identity, the index of what is stored, retrying), kube_list.c (paginated
 * lists decoded in the thread pool) and kube_watch.c (watch streams, and the
 * streaming list that begins one: KEP-3157 WatchList).
 *
 * Owns: struct kube_source (opaque in kube.h) and its reflectors, one per
 * resource. Must never: be included outside discovery/; kube.h is the
 * interface. Everything here runs on the source's loop thread, except the
 * decoding of list pages (kube_list.c says what a worker may read).
 * Internal to discovery/. */
#ifndef SVCDNS_KUBE_REFLECTOR_H
#define SVCDNS_KUBE_REFLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "discovery/kube.h"
#include "discovery/kube_contact.h"
#include "discovery/kube_http.h"
#include "discovery/store_map.h"

#define MAX_NAMESPACES 256

struct kube_res_desc {
	const char *name; /* "services" */
	const char *path;
	const char *kind;
	const char *api_version;
	bool labelled;	   /* --labels applies */
	const char *where; /* for manifest_decode_object's log lines */
	/* A server may lack it: 404 (or 403) for this and its fallback means
	 * the source does without it (kube_list.c). */
	bool optional;
	const struct kube_res_desc *fallback; /* an older version to try on 404, or NULL */
	bool cluster_scoped;		      /* no namespace, and --namespaces does not apply */
	const char *without;		      /* what doing without it means, for the log */
};

extern const struct kube_res_desc kube_res[KUBE_RESOURCES];

struct page_work; /* kube_list.c */

struct reflector {
	struct kube_source *ks;
	enum kube_resource res;
	const struct kube_res_desc *d;
	struct kube_http_req *req;
	uv_timer_t retry;
	char *rv;		  /* last resourceVersion seen (list or event) */
	char *list_rv;		  /* resourceVersion of the list being collected */
	char *cont;		  /* continue token of the next page, or NULL */
	bool need_list;		  /* a (re)list must complete before watching */
	bool want_relist;	  /* the watch said 410: list again when it ends */
	const char *watch_failed; /* this watch must not be resumed at once: why */
	bool unreachable;	  /* waits to retry after no HTTP response came at all */
	bool synced;		  /* the first list was applied */
	bool absent;		  /* optional, and the server does not serve it */
	unsigned failures;	  /* in a row, for the backoff */
	unsigned page_count;
	bool cont_waits; /* the next page is asked for once a decoded one is back */
	char *body;	 /* the list page being received */
	size_t body_len, body_cap;
	size_t body_hint; /* the last page's size: the next one is sized for it */
	struct kube_lines lines;
	bool watch_progress; /* this watch delivered at least one event */
	/* The current watch streams a list (sendInitialEvents): its events are
	 * the list until the bookmark that ends the initial events. */
	bool streaming;
	bool streamed;	    /* the list being collected (or last applied) was streamed */
	bool wl_refused;    /* the server refused to stream this list: pages until it is in */
	bool wl_ignored;    /* the server ignores sendInitialEvents: pages from now on */
	bool wl_not_wanted; /* the stream showed it is not a streamed list (kube_watch.c) */
	bool rv_gone;	    /* r->rv is compacted away: a streamed list starts from "" */
	unsigned watch_tmo; /* timeoutSeconds of the current watch */
	/* key (= store source) -> resourceVersion of the stored object (kube_rv_pack) */
	struct store_map index;
	uint32_t gen;
	uint32_t list_seq;	   /* changes when a list is started afresh or given up */
	unsigned inflight;	   /* pages in the thread pool, of any list */
	unsigned inflight_indexed; /* of those, pages whose worker reads the index */
	/* The index was empty when this list started (a first sync): workers
	 * need not read it, so pages are stored as they come back, in order,
	 * rather than all at the end. */
	bool apply_early;
	size_t next_apply; /* the first page not stored yet */
	uint32_t apply_gen;
	size_t n_added, n_updated, n_unchanged;
	uint64_t store_ns;
	bool list_received;	 /* the last page of the current list is in */
	struct page_work **done; /* by page number, decoded pages of the current list */
	size_t done_cap;
	uint64_t events[KUBE_EV_TYPES];
	uint64_t pages;		 /* list pages asked for */
	uint64_t watch_restarts; /* watches started after the first */
	bool watched;		 /* a watch was started once */
	uint64_t relists;
	uint64_t bad_lines;
};

struct kube_source {
	uv_loop_t *loop;
	struct kube_conn conn;
	struct kube_http *http;
	struct model_store *store;
	kube_changed_cb cb;
	void *arg;
	struct kube_options o;
	char *labels_q; /* escaped label selector, or NULL */
	char *ns_filter[MAX_NAMESPACES];
	size_t n_ns_filter;
	bool synced;
	bool stopping;
	int open_handles;
	unsigned inflight; /* pages in the thread pool: the source outlives them */
	struct reflector r[KUBE_RESOURCES];
	int n_res; /* the reflectors in use: r[0, n_res) */
	struct kube_contact contact;
	uv_timer_t probe_timer;
	struct kube_http_req *probe;
	struct kube_trigger *trig; /* kube.h: trigger times noted since the last take */
	size_t n_trig, cap_trig;
	uint64_t trig_dropped;
	/* failures in a row of the server itself (no response, 5xx, 429), by
	 * any resource: the backoff they share (kube_retry_later) */
	unsigned server_failures;
};

struct ident {
	const char *ns, *name, *rv;
	char key[300];
};

/* ---- kube.c -------------------------------------------------------------- */

uint32_t kube_rand32(void);
/* Percent-encoded copy of s for a URL query, or NULL when out of memory. */
char *kube_escape_dup(const char *s);
/* Replaces *field by a copy of value (NULL for NULL); logs when out of memory. */
void kube_set_str(char **field, const char *value);
/* A short, printable excerpt of untrusted bytes for a log line. */
void kube_excerpt(const char *p, size_t len, char *out, size_t cap);
/* Tells the source's user that the store changed (from the first full sync on). */
void kube_notify(struct kube_source *ks);
/* Some request reached the server: resources waiting out a backoff because
 * it was away retry now. */
void kube_server_back(struct kube_source *ks);
/* Frees the source once it is stopping and nothing of it is left in flight. */
void kube_source_maybe_free(struct kube_source *ks);
/* A resource completed its first list (or was found absent): when that was
 * the last one, the source is synced and its user told. Returns true then. */
bool kube_sync_check(struct kube_source *ks);

/* ---- kube_reflector.c ---------------------------------------------------- */

/* Reads metadata. Returns 0, 1 when filtered out, or -EINVAL when the object
 * has no usable identity. */
int kube_object_ident(struct reflector *r, json_t *obj, struct ident *id);
/* The index's slot for key (its val a kube_rv_pack'ed resourceVersion), or
 * NULL when nothing is stored under it. */
const struct store_map_slot *kube_index_find(const struct reflector *r, const char *key);
/* A resourceVersion as one word (NULL and "" as 0); kube_rv_free releases it. */
uintptr_t kube_rv_pack(const char *rv);
void kube_rv_free(uintptr_t v);
/* Whether a packed resourceVersion is rv. */
bool kube_rv_same(uintptr_t v, const char *rv);
/* ADDED or MODIFIED: decode and swap the one object. Returns true when the
 * store changed. */
bool kube_object_upsert(struct reflector *r, json_t *obj, const struct ident *id);
bool kube_object_delete(struct reflector *r, const struct ident *id);
/* Before `o` is stored under `key`: notes its trigger time when it is an
 * EndpointSlice whose annotation differs from the stored version's (kube.h). */
void kube_trigger_note(struct reflector *r, const char *key, const struct model_object *o);
/* The retry timer's callback: lists or watches again. */
void kube_on_retry(uv_timer_t *t);
/* Logs the failure of `what` and starts the retry timer with backoff. res is
 * the failed response, or NULL when none came with the failure (out of
 * memory, a page that is not a list). */
void kube_retry_later(struct reflector *r, const struct kube_http_result *res, const char *what,
		      const char *why);
/* Explains a failed request in one line; credentials are named, never shown. */
void kube_describe_failure(struct reflector *r, const struct kube_http_result *res, char *out,
			   size_t cap);
/* 2xx response headers of a reflector's request: contact, and if the server
 * had been away, it is back. */
void kube_on_headers(void *arg, long status);

/* ---- kube_list.c --------------------------------------------------------- */

/* Asks for the next page of the list (the first, when no continuation). */
void kube_list_start(struct reflector *r);
/* Forgets the list being collected; pages of it still in the thread pool are
 * dropped when they come back. */
void kube_list_discard(struct reflector *r);
void kube_body_reset(struct reflector *r);
/* An optional resource answered 404 (the server does not have it: an older
 * Kubernetes) or 403 (RBAC does not grant it), to a list or a streamed list:
 * its older version is tried, else the source does without it, forgets what
 * it held of it, and asks again much later. Returns false when this is not
 * such a case. */
bool kube_list_optional_missing(struct reflector *r, const struct kube_http_result *res);
/* A fresh list starts (paged or streamed): its objects are marked with a new
 * generation. */
void kube_list_begin(struct reflector *r);
/* The list is complete (its resourceVersion in r->list_rv): what it did not
 * name goes, the store holds exactly what was listed, and the first sync is
 * noted. */
void kube_list_end(struct reflector *r);

/* ---- kube_watch.c -------------------------------------------------------- */

/* Watches from r->rv. */
void kube_watch_start(struct reflector *r);
/* Whether the next list is asked for as a streamed list (--api-list-mode). */
bool kube_watchlist_wanted(const struct reflector *r);
/* Lists by a watch with sendInitialEvents=true: the ADDED events up to the
 * bookmark annotated k8s.io/initial-events-end are the list, stored as they
 * come; the watch then goes on. */
void kube_watchlist_start(struct reflector *r);

#endif
