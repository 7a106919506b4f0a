/* The list half of a reflector. Each API object is one store source
 * ("api:Service/ns/name"), so an event swaps one object. A list's pages are
 * decoded in the thread pool; a relist is applied in one step once every page
 * is back, so that unchanged objects are not touched, and what it no longer
 * names is removed only at its end, so that nothing disappears while it runs.
 * A first list (an empty index) is stored as its pages come back. */
#include "discovery/kube_reflector.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/jarena.h"
#include "common/log.h"
#include "discovery/manifest.h"
#include "discovery/store_iter.h"

/* List pages handed to the thread pool before the next is asked for: as many
 * as libuv has workers by default. */
#define PAGES_AHEAD 4

/* A list this long returns its freed memory when it ends (kube_list_end). */
#define TRIM_AFTER_OBJECTS 1000

/* One object of a list being collected. */
struct pending {
	char *key;
	uintptr_t rv; /* kube_rv_pack */
	enum { P_UNCHANGED, P_DECODED, P_INVALID } what;
	struct model_object obj;
};

struct pend_list {
	struct pending *v;
	size_t n, cap;
};

/* One list page handed to the thread pool, where it is parsed and decoded:
 * jansson is most of a first sync's work, and meanwhile the loop thread
 * receives the next page and answers queries. While pages are out, the
 * worker reads the reflector's index (unchanged objects are not decoded
 * again), so the loop thread changes that index only when none are out. */
struct page_work {
	uv_work_t w;
	struct reflector *r;
	uint32_t seq;	/* the list it belongs to: a page of a list given up is dropped */
	size_t page;	/* 0-based */
	bool use_index; /* unchanged objects are looked up in the index, not decoded */
	char *body;
	size_t len;
	struct pend_list items;
	int rc;
	char why[JSON_ERROR_TEXT_LENGTH];
};

static int pend_push(struct pend_list *l, struct pending *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct pending *n = realloc(l->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->v = n;
		l->cap = cap;
	}
	l->v[l->n++] = *p;
	return 0;
}

static void pend_free(struct pend_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		kube_rv_free(l->v[i].rv);
		if (l->v[i].what == P_DECODED)
			model_object_free(&l->v[i].obj);
	}
	free(l->v);
	*l = (struct pend_list){0};
}

static void page_work_free(struct page_work *pw)
{
	pend_free(&pw->items);
	free(pw->body);
	free(pw);
}

/* Forgets the list being collected; pages of it still in the thread pool are
 * dropped when they come back. */
void kube_list_discard(struct reflector *r)
{
	r->list_seq++;
	r->cont_waits = false;
	for (size_t i = 0; i < r->done_cap; i++) {
		if (r->done[i])
			page_work_free(r->done[i]);
		r->done[i] = NULL;
	}
	r->list_received = false;
}

void kube_body_reset(struct reflector *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
}

static int on_list_data(void *arg, const char *data, size_t len)
{
	struct reflector *r = arg;

	kube_contact_heard(&r->ks->contact, r->res, clock_now_ms());
	if (r->body_len + len > KUBE_MAX_PAGE)
		return -EFBIG;
	if (r->body_len + len > r->body_cap) {
		size_t cap = r->body_cap		  ? r->body_cap
			     : r->body_hint > (64u << 10) ? r->body_hint + r->body_hint / 4
							  : 64u << 10;
		while (cap < r->body_len + len)
			cap *= 2;
		char *nb = realloc(r->body, cap);
		if (!nb)
			return -ENOMEM;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	return 0;
}

struct page_ctx {
	struct reflector *r;
	bool use_index;
	struct pend_list *out;
	json_error_t jerr;
};

/* One item of a list page, parsed on its own (in the thread pool), into
 * pc->out. An object whose resourceVersion is the one already stored is not
 * decoded again. */
static int collect_item(void *arg, size_t i, const char *text, size_t len)
{
	struct page_ctx *pc = arg;
	struct reflector *r = pc->r;
	struct ident id;
	struct pending p = {0};
	int rc;
	/* The item's tree lives only in this function: its values come from the
	 * thread's parse region, reset at the end (common/jarena.h). */
	jarena_begin();
	json_t *it = json_loadb(text, len, 0, &pc->jerr);

	if (!it) {
		jarena_end();
		return -EINVAL;
	}
	rc = kube_object_ident(r, it, &id);
	if (rc == 1)
		goto out;
	if (rc < 0) {
		log_warn("api %s: list item %zu has no name or namespace; ignored", r->d->name, i);
		rc = 0;
		goto out;
	}
	const struct store_map_slot *old = pc->use_index ? kube_index_find(r, id.key) : NULL;
	if (old && kube_rv_same(old->val, id.rv)) {
		p.what = P_UNCHANGED;
	} else {
		rc = r->res == KUBE_PODS ? manifest_decode_pod_addrs(r->d->where, it, &p.obj)
					 : manifest_decode_item(r->d->where, it, r->d->kind,
								r->d->api_version, &p.obj);
		p.what = rc == 0 ? P_DECODED : P_INVALID;
	}
	p.key = strdup(id.key);
	p.rv = kube_rv_pack(id.rv);
	if (!p.key || pend_push(pc->out, &p) < 0) {
		free(p.key);
		kube_rv_free(p.rv);
		if (p.what == P_DECODED)
			model_object_free(&p.obj);
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	json_decref(it);
	jarena_end();
	return rc;
}

void kube_list_begin(struct reflector *r)
{
	r->apply_gen = ++r->gen;
	if (r->apply_gen == 0) /* after wrapping: 0 is what a fresh index slot holds */
		r->apply_gen = r->gen = 1;
	r->apply_early = r->index.n == 0;
	r->next_apply = 0;
	r->n_added = r->n_updated = r->n_unchanged = 0;
	r->store_ns = 0;
	r->streamed = false;
}

/* Stores one decoded page, and marks what it listed in the index. */
static void apply_page(struct reflector *r, struct page_work *pw)
{
	struct kube_source *ks = r->ks;
	uint64_t t0 = uv_hrtime();

	/* One index lookup per object: at 100k objects, the hash probes (cache
	 * misses all) are most of this loop. */
	for (size_t i = 0; i < pw->items.n; i++) {
		struct pending *p = &pw->items.v[i];
		size_t klen = strlen(p->key);
		struct store_map_slot *s;
		bool created;
		if (p->what == P_UNCHANGED) {
			if ((s = store_map_find(&r->index, p->key, klen))) {
				s->gen = r->apply_gen;
				r->n_unchanged++;
			}
			continue;
		}
		if (p->what == P_DECODED) {
			kube_trigger_note(r, p->key, &p->obj);
			model_store_replace(ks->store, p->key, &p->obj, 1);
		} else /* of no use to us (logged): it replaces the old version (object_upsert) */
			model_store_remove(ks->store, p->key);
		p->what = P_UNCHANGED; /* the store owns the object now */
		if (store_map_insert(&r->index, p->key, klen, &s, &created) < 0) {
			log_error("api %s: out of memory indexing %s", r->d->name, p->key);
			continue;
		}
		kube_rv_free(s->val);
		s->val = p->rv; /* the index takes the resourceVersion */
		p->rv = 0;
		s->gen = r->apply_gen;
		if (created)
			r->n_added++;
		else
			r->n_updated++;
	}
	r->store_ns += uv_hrtime() - t0;
}

/* Every page (or streamed object) is stored: what the list did not name goes,
 * and the store now holds exactly what was listed. */
void kube_list_end(struct reflector *r)
{
	struct kube_source *ks = r->ks;
	size_t removed = 0;
	uint32_t gen = r->apply_gen;
	uint64_t t0 = uv_hrtime();

	for (size_t i = 0; i < r->index.cap; i++) {
		struct store_map_slot *s = &r->index.slots[i];
		if (!s->key || s->gen == gen)
			continue;
		model_store_remove(ks->store, s->key);
		kube_rv_free(s->val);
		s->val = 0;
		removed++;
	}
	store_map_sweep(&r->index, gen);
	r->store_ns += uv_hrtime() - t0;
	free(r->rv);
	r->rv = r->list_rv;
	r->list_rv = NULL;
	size_t listed = r->n_added + r->n_updated + r->n_unchanged;
	if (r->streamed)
		log_info("api %s: %s at resourceVersion %s: %zu objects streamed (%zu new, %zu "
			 "changed, %zu removed, %zu unchanged), stored in %.1f ms as they came",
			 r->d->name, r->synced ? "listed again" : "listed", r->rv ? r->rv : "?",
			 listed, r->n_added, r->n_updated, removed, r->n_unchanged,
			 (double)r->store_ns / 1e6);
	else
		log_info("api %s: %s at resourceVersion %s: %zu objects in %u page%s (%zu new, "
			 "%zu changed, %zu removed, %zu unchanged), stored in %.1f ms%s",
			 r->d->name, r->synced ? "listed again" : "listed", r->rv ? r->rv : "?",
			 listed, r->page_count, r->page_count == 1 ? "" : "s", r->n_added,
			 r->n_updated, removed, r->n_unchanged, (double)r->store_ns / 1e6,
			 r->apply_early ? " as the pages came" : "");
	/* The list's page bodies and decoding scratch are freed by now, much of
	 * it in the thread pool's own malloc arenas, which the snapshot build
	 * that follows (on this thread) cannot reuse: hand it back first, so
	 * that the build's peak does not stack on it. */
	if (listed >= TRIM_AFTER_OBJECTS)
		malloc_trim(0);
	/* a refusal holds for this list only: the next one asks again */
	r->wl_refused = false;
	r->rv_gone = false;
	r->need_list = false;
	bool changed = r->n_added || r->n_updated || removed;
	if (r->absent) {
		log_info("api %s: now served at %s; following it", r->d->name, r->d->api_version);
		r->absent = false;
		kube_contact_set_ignored(&ks->contact, r->res, false);
	}
	/* ServiceImports exist: clusterset.local is served from now on, even
	 * with no import yet (a change to build). */
	if (r->res == KUBE_SERVICEIMPORTS)
		changed = model_store_set_multicluster(ks->store) || changed;
	bool first = !r->synced;
	r->synced = true;
	if (first && kube_sync_check(ks))
		return;
	if (changed)
		kube_notify(ks);
}

bool kube_sync_check(struct kube_source *ks)
{
	if (ks->synced)
		return false;
	for (int k = 0; k < ks->n_res; k++)
		if (!ks->r[k].synced)
			return false;
	ks->synced = true;
	log_info("api: first full sync of services, endpointslices, namespaces%s%s%s done",
		 ks->r[KUBE_SERVICECIDRS].absent ? "" : ", servicecidrs",
		 ks->r[KUBE_SERVICEIMPORTS].absent ? "" : ", serviceimports",
		 ks->n_res > KUBE_PODS ? ", pods" : "");
	kube_notify(ks);
	return true;
}

static void on_absent_recheck(uv_timer_t *t)
{
	struct reflector *r = t->data;

	r->d = &kube_res[r->res];
	kube_contact_set_open(&r->ks->contact, r->res, true);
	kube_list_start(r);
}

/* An optional resource answered 404 (the server does not have it: an older
 * Kubernetes) or 403 (RBAC does not grant it): its older version is tried,
 * else the source does without it, forgets what it held of it, and asks
 * again much later. Returns false when this is not such a case. */
bool kube_list_optional_missing(struct reflector *r, const struct kube_http_result *res)
{
	struct kube_source *ks = r->ks;
	size_t removed = 0;

	if (!r->d->optional || (res->status != 404 && res->status != 403) || r->cont)
		return false;
	if (res->status == 404 && r->d->fallback) {
		log_debug("api %s: %s is not served; trying %s", r->d->name, r->d->api_version,
			  r->d->fallback->api_version);
		r->d = r->d->fallback;
		kube_list_start(r);
		return true;
	}
	if (!r->absent && res->status == 404)
		log_info(
		    "api %s: not served by this API server (it has no %s: HTTP 404 for %s); %s",
		    r->d->name, r->d->api_version, r->d->path, r->d->without);
	else if (!r->absent)
		log_warn("api %s: forbidden (HTTP 403 for %s; the ClusterRole in "
			 "contrib/kubernetes/rbac.yaml grants list and watch on it); %s",
			 r->d->name, r->d->path, r->d->without);
	r->absent = true;
	r->need_list = true;
	r->failures = 0;
	kube_contact_set_open(&ks->contact, r->res, false);
	kube_contact_set_ignored(&ks->contact, r->res, true);
	for (size_t i = 0; i < r->index.cap; i++) {
		struct store_map_slot *s = &r->index.slots[i];
		if (!s->key)
			continue;
		model_store_remove(ks->store, s->key);
		kube_rv_free(s->val);
		s->val = 0;
		removed++;
	}
	store_map_clear(&r->index);
	/* asked again after the longest backoff, silently: a CRD installed or a
	 * cluster upgraded under a running svcdns is found within it */
	uv_timer_start(&r->retry, on_absent_recheck, ks->o.backoff_max_ms, 0);
	bool first = !r->synced;
	r->synced = true;
	if (!(first && kube_sync_check(ks)) && removed)
		kube_notify(ks);
	return true;
}

/* Stores the pages that are back, in page order: as they come when no worker
 * reads the index, else all at once when the last one is back. */
static void list_advance(struct reflector *r)
{
	bool all = r->list_received && r->inflight == 0;

	if (!all && !(r->apply_early && r->inflight_indexed == 0))
		return;
	while (r->next_apply < r->page_count && r->done[r->next_apply]) {
		apply_page(r, r->done[r->next_apply]);
		page_work_free(r->done[r->next_apply]);
		r->done[r->next_apply++] = NULL;
	}
	if (!all)
		return;
	r->list_received = false;
	r->failures = 0;
	kube_list_end(r);
	kube_watch_start(r);
}

static void page_decode(uv_work_t *w)
{
	struct page_work *pw = w->data;
	struct page_ctx pc = {.r = pw->r, .use_index = pw->use_index, .out = &pw->items};
	struct kube_span ms;

	pw->rc = kube_list_split(pw->body, pw->len, &ms, collect_item, &pc);
	if (pw->rc < 0)
		snprintf(pw->why, sizeof(pw->why), "%s",
			 pw->rc == -ENOMEM ? "out of memory" : pc.jerr.text);
	free(pw->body);
	pw->body = NULL;
}

static void page_decoded(uv_work_t *w, int status)
{
	struct page_work *pw = w->data;
	struct reflector *r = pw->r;
	struct kube_source *ks = r->ks;
	char why[600];

	ks->inflight--;
	r->inflight--;
	if (pw->use_index)
		r->inflight_indexed--;
	if (ks->stopping) {
		page_work_free(pw);
		kube_source_maybe_free(ks);
		return;
	}
	if (pw->seq != r->list_seq) {
		page_work_free(pw);
		list_advance(r); /* a newer list may wait for this page to be out */
		return;
	}
	if (status < 0 || pw->rc < 0) {
		/* the pages after it are on their way: list again from the start */
		snprintf(why, sizeof(why), "page %zu is not a %s list (%s)", pw->page + 1,
			 r->d->kind, status < 0 ? uv_strerror(status) : pw->why);
		page_work_free(pw);
		kube_http_cancel(r->req);
		r->req = NULL;
		kube_list_discard(r);
		free(r->cont);
		r->cont = NULL;
		kube_retry_later(r, NULL, "list", why);
		return;
	}
	r->done[pw->page] = pw;
	if (r->cont_waits && r->req == NULL && r->inflight < PAGES_AHEAD) {
		r->cont_waits = false;
		kube_list_start(r);
	}
	list_advance(r);
}

/* Hands the page in r->body to the thread pool. Returns 0 or -ENOMEM. */
static int page_queue(struct reflector *r)
{
	struct page_work *pw;

	if (r->page_count >= r->done_cap) {
		size_t cap = r->done_cap ? r->done_cap * 2 : 64;
		struct page_work **d = realloc(r->done, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		memset(d + r->done_cap, 0, (cap - r->done_cap) * sizeof(*d));
		r->done = d;
		r->done_cap = cap;
	}
	if (!(pw = calloc(1, sizeof(*pw))))
		return -ENOMEM;
	pw->w.data = pw;
	pw->r = r;
	pw->seq = r->list_seq;
	pw->page = r->page_count;
	pw->use_index = !r->apply_early;
	pw->body = r->body;
	pw->len = r->body_len;
	r->body_hint = r->body_len;
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	/* uv_queue_work fails only for a NULL work callback */
	uv_queue_work(r->ks->loop, &pw->w, page_decode, page_decoded);
	r->inflight++;
	r->ks->inflight++;
	if (pw->use_index)
		r->inflight_indexed++;
	return 0;
}

/* Asks for the next page, unless PAGES_AHEAD pages wait for the thread pool:
 * then the first one back asks for it (page_decoded). The server holds the
 * rest of the list, not this process: at most that many page bodies and
 * their objects are in memory at once besides the store. */
static void list_next_page(struct reflector *r)
{
	if (r->inflight >= PAGES_AHEAD) {
		r->cont_waits = true;
		return;
	}
	kube_list_start(r);
}

static void on_list_done(void *arg, const struct kube_http_result *res)
{
	struct reflector *r = arg;
	char why[600];
	json_error_t jerr = {0};

	r->req = NULL;
	if (res->curl_code != 0 || res->status != 200) {
		kube_body_reset(r);
		if (kube_list_optional_missing(r, res))
			return;
		if (res->status == 410 && r->cont) {
			/* the continue token outlived etcd's compaction: start over */
			log_info("api %s: list continuation expired (410 Gone); listing from "
				 "the start",
				 r->d->name);
			free(r->cont);
			r->cont = NULL;
			kube_list_discard(r);
			if (r->failures++ < 2) {
				kube_list_start(r);
				return;
			}
		}
		kube_describe_failure(r, res, why, sizeof(why));
		kube_retry_later(r, res, "list", why);
		return;
	}
	/* Only the page's metadata is read here, so that the next page is asked
	 * for at once; its items are checked and decoded in the thread pool. */
	struct kube_span ms;
	json_t *meta = NULL;
	int rc = kube_list_split(r->body, r->body_len, &ms, NULL, NULL);
	if (rc == 0 && ms.p)
		meta = json_loadb(ms.p, ms.len, 0, &jerr);
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	const char *cont = json_string_value(json_object_get(meta, "continue"));
	if (rc < 0 || !rv) {
		snprintf(why, sizeof(why), "the response is not a %s list (%s)", r->d->kind,
			 jerr.text[0] ? jerr.text
			 : rc < 0     ? "not a JSON object with an items array"
				      : "no metadata.resourceVersion");
		json_decref(meta);
		kube_body_reset(r);
		kube_retry_later(r, NULL, "list", why); /* the same page again */
		return;
	}
	if (page_queue(r) < 0) {
		json_decref(meta);
		kube_body_reset(r);
		kube_list_discard(r);
		free(r->cont);
		r->cont = NULL;
		kube_retry_later(r, NULL, "list", "out of memory");
		return;
	}
	r->page_count++;
	/* Every page of one list is served at the first page's resourceVersion. */
	if (!r->list_rv)
		kube_set_str(&r->list_rv, rv);
	kube_set_str(&r->cont, cont && *cont ? cont : NULL);
	json_decref(meta);
	if (r->cont) {
		list_next_page(r);
		return;
	}
	r->list_received = true;
	list_advance(r);
}

void kube_list_start(struct reflector *r)
{
	struct kube_source *ks = r->ks;
	char *pq = NULL, *cont = NULL;
	int rc;

	if (!r->cont && kube_watchlist_wanted(r)) {
		kube_watchlist_start(r);
		return;
	}
	if (!r->cont) {
		/* a fresh list: whatever was collected before is stale */
		kube_list_discard(r);
		kube_list_begin(r);
		free(r->list_rv);
		r->list_rv = NULL;
		r->page_count = 0;
	}
	r->want_relist = false;
	if (r->cont && !(cont = kube_escape_dup(r->cont))) {
		kube_retry_later(r, NULL, "list", "out of memory");
		return;
	}
	/* No resourceVersion: the list is read from etcd, so it is current. */
	rc = asprintf(&pq, "%s?limit=%u%s%s%s%s", r->d->path, ks->o.page_size,
		      cont ? "&continue=" : "", cont ? cont : "",
		      r->d->labelled && ks->labels_q ? "&labelSelector=" : "",
		      r->d->labelled && ks->labels_q ? ks->labels_q : "");
	free(cont);
	if (rc < 0) {
		kube_retry_later(r, NULL, "list", "out of memory");
		return;
	}
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = ks->o.timeout_ms,
	    .idle_ms = ks->o.timeout_ms,
	    .on_data = on_list_data,
	    .on_headers = kube_on_headers,
	    .on_done = on_list_done,
	    .arg = r,
	    /* A paged list is one list: its later pages take no token (client-go
	     * reads a whole list in one response from the watch cache). */
	    .untokened = r->cont != NULL,
	    .slot = kube_http_slot(KUBE_VERB_LIST, r->res),
	};
	r->pages++;
	log_debug("api %s: GET %s", r->d->name, pq);
	rc = kube_http_get(ks->http, &o, &r->req);
	free(pq);
	if (rc < 0)
		kube_retry_later(r, NULL, "list", strerror(-rc));
}
