/* List-then-watch reflectors for Services, EndpointSlices and Namespaces. Each
 * API object is one store source ("api:Service/ns/name"), so an event swaps
 * one object. A list's pages are decoded in the thread pool; a relist is
 * applied in one step once every page is back, so that unchanged objects are
 * not touched, and what it no longer names is removed only at its end, so
 * that nothing disappears while it runs. A first list (an empty index) is
 * stored as its pages come back. */
#include "discovery/kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "common/jarena.h"
#include "common/log.h"
#include "discovery/kube_contact.h"
#include "discovery/kube_http.h"
#include "discovery/manifest.h"
#include "discovery/store_iter.h"

#define DEFAULT_PAGE_SIZE   500
#define DEFAULT_TIMEOUT_MS  30000
#define DEFAULT_BACKOFF_MIN 500
#define DEFAULT_BACKOFF_MAX 30000
/* client-go asks the server to end a watch after 5 to 10 minutes, so that
 * load spreads over the API servers; we do the same. */
#define WATCH_TIMEOUT_MIN_S 300
#define MAX_NAMESPACES	    256
#define DEFAULT_PROBE_MS    10000
/* After an outage, the resources that still wait to retry are retried within
 * this much of the first one reaching the server again. */
#define RECOVERY_JITTER_MS 500

struct kube_res_desc {
	const char *name; /* "services" */
	const char *path;
	const char *kind;
	const char *api_version;
	bool labelled;	   /* --labels applies */
	const char *where; /* for manifest_decode_object's log lines */
};

static const struct kube_res_desc RES[KUBE_RESOURCES] = {
    [KUBE_SERVICES] = {"services", "/api/v1/services", "Service", "v1", true, "api services"},
    [KUBE_ENDPOINTSLICES] = {"endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
			     "EndpointSlice", "discovery.k8s.io/v1", true, "api endpointslices"},
    [KUBE_NAMESPACES] = {"namespaces", "/api/v1/namespaces", "Namespace", "v1", false,
			 "api namespaces"},
};

/* One object of a list being collected. */
struct pending {
	char *key;
	char *rv;
	enum { P_UNCHANGED, P_DECODED, P_INVALID } what;
	struct model_object obj;
};

struct pend_list {
	struct pending *v;
	size_t n, cap;
};

struct reflector;

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
	unsigned failures;	  /* in a row, for the backoff */
	unsigned page_count;
	char *body; /* the list page being received */
	size_t body_len, body_cap;
	size_t body_hint; /* the last page's size: the next one is sized for it */
	struct kube_lines lines;
	bool watch_progress; /* this watch delivered at least one event */
	/* key (= store source) -> malloc'd resourceVersion of the stored object */
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
	struct kube_contact contact;
	uv_timer_t probe_timer;
	struct kube_http_req *probe;
};

static void start_list(struct reflector *r);
static void start_watch(struct reflector *r);
static void server_back(struct kube_source *ks);

/* ---- small helpers -------------------------------------------------------- */

const char *kube_resource_name(enum kube_resource r)
{
	return r < KUBE_RESOURCES ? RES[r].name : "?";
}

const char *kube_event_type_name(enum kube_event_type t)
{
	static const char *const names[KUBE_EV_TYPES] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK",
							 "ERROR"};
	return t < KUBE_EV_TYPES ? names[t] : "?";
}

unsigned kube_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned failures, uint32_t rnd)
{
	uint64_t d = min_ms ? min_ms : 1;

	for (unsigned i = 0; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	uint64_t half = d / 2;
	return (unsigned)(d - half + rnd % (half + 1));
}

int kube_query_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
			     *p == '~';
		if (o + (plain ? 1 : 3) >= cap)
			return -ENOSPC;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o >= cap)
		return -ENOSPC;
	out[o] = '\0';
	return (int)o;
}

static char *escape_dup(const char *s)
{
	size_t cap = strlen(s) * 3 + 1;
	char *out = malloc(cap);

	if (out && kube_query_escape(s, out, cap) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static uint32_t rand32(void)
{
	uint32_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)uv_hrtime();
	return v;
}

static void set_str(char **field, const char *value)
{
	char *d = value ? strdup(value) : NULL;
	if (value && !d) {
		log_error("api: out of memory");
		return;
	}
	free(*field);
	*field = d;
}

/* A short, printable excerpt of untrusted bytes for a log line. */
static void excerpt(const char *p, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = c >= 0x20 && c < 0x7f && c != '\\' ? (char)c : '?';
	}
	if (len > o)
		out[o++] = '.', out[o++] = '.', out[o++] = '.';
	out[o] = '\0';
}

/* The Status object of an error response says why; take its message. */
static void status_message(const char *body, size_t len, char *out, size_t cap)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));

	if (m)
		excerpt(m, strlen(m), out, cap);
	else
		excerpt(body, len, out, cap);
	json_decref(j);
}

static bool ns_allowed(const struct kube_source *ks, const char *ns)
{
	if (ks->n_ns_filter == 0)
		return true;
	for (size_t i = 0; i < ks->n_ns_filter; i++)
		if (ns && strcmp(ks->ns_filter[i], ns) == 0)
			return true;
	return false;
}

static void notify(struct kube_source *ks)
{
	/* Before the first full sync a partial store would answer NXDOMAIN for
	 * names that exist; main builds once, at sync. */
	if (ks->synced && !ks->stopping)
		ks->cb(ks->arg);
}

/* ---- object identity ------------------------------------------------------- */

struct ident {
	const char *ns, *name, *rv;
	char key[300];
};

/* Reads metadata. Returns 0, 1 when filtered out, or -EINVAL when the object
 * has no usable identity. */
static int object_ident(struct reflector *r, json_t *obj, struct ident *id)
{
	json_t *meta = json_object_get(obj, "metadata");

	if (!json_is_object(obj) || !json_is_object(meta))
		return -EINVAL;
	id->name = json_string_value(json_object_get(meta, "name"));
	id->ns = json_string_value(json_object_get(meta, "namespace"));
	id->rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (!id->name || !*id->name)
		return -EINVAL;
	if (r->res == KUBE_NAMESPACES)
		id->ns = NULL;
	else if (!id->ns || !*id->ns)
		return -EINVAL;
	if (!ns_allowed(r->ks, r->res == KUBE_NAMESPACES ? id->name : id->ns))
		return 1;
	int n = snprintf(id->key, sizeof(id->key), "api:%s/%s%s%s", r->d->kind,
			 id->ns ? id->ns : "", id->ns ? "/" : "", id->name);
	if (n < 0 || (size_t)n >= sizeof(id->key))
		return -EINVAL;
	return 0;
}

static const char *index_rv(const struct reflector *r, const char *key)
{
	struct store_map_slot *s = store_map_find(&r->index, key, strlen(key));
	return s ? (const char *)s->val : NULL;
}

/* Records key -> rv and marks it with gen. Returns 0 or -ENOMEM. */
static int index_set(struct reflector *r, const char *key, const char *rv, uint32_t gen)
{
	struct store_map_slot *s;
	bool created;
	int rc = store_map_insert(&r->index, key, strlen(key), &s, &created);

	if (rc < 0)
		return rc;
	s->gen = gen;
	if (rv) {
		char *d = strdup(rv ? rv : "");
		if (!d)
			return -ENOMEM;
		free((char *)s->val);
		s->val = (uintptr_t)d;
	} else if (created) {
		s->val = (uintptr_t)calloc(1, 1);
	}
	return 0;
}

static void index_del(struct reflector *r, const char *key)
{
	struct store_map_slot *s = store_map_find(&r->index, key, strlen(key));

	if (!s)
		return;
	free((char *)s->val);
	store_map_remove(&r->index, key, strlen(key));
}

/* ADDED or MODIFIED: decode and swap the one object. Returns true when the
 * store changed. */
static bool object_upsert(struct reflector *r, json_t *obj, const struct ident *id)
{
	const char *old = index_rv(r, id->key);
	struct model_object mo;

	if (old && id->rv && strcmp(old, id->rv) == 0)
		return false; /* seen already (a resumed watch may repeat it) */
	int rc = manifest_decode_item(r->d->where, obj, r->d->kind, r->d->api_version, &mo);
	if (rc < 0) {
		/* Logged. The API server accepted this version, so it is what the
		 * cluster holds now: it replaces the previous one and, being of no
		 * use to us, contributes nothing. Keeping the old version would
		 * serve what the cluster no longer says (and a fresh start would
		 * differ from a long-running instance). */
		model_store_remove(r->ks->store, id->key);
		if (index_set(r, id->key, id->rv, r->gen) < 0)
			log_error("api %s: out of memory indexing %s", r->d->name, id->key);
		return old != NULL;
	}
	if (rc == 1) {
		/* not a kind we use: nothing of it is served */
		model_store_remove(r->ks->store, id->key);
		index_del(r, id->key);
		return old != NULL;
	}
	model_store_replace(r->ks->store, id->key, &mo, 1);
	if (index_set(r, id->key, id->rv, r->gen) < 0)
		log_error("api %s: out of memory indexing %s", r->d->name, id->key);
	return true;
}

static bool object_delete(struct reflector *r, const struct ident *id)
{
	if (!index_rv(r, id->key))
		return false;
	model_store_remove(r->ks->store, id->key);
	index_del(r, id->key);
	return true;
}

/* ---- retrying ------------------------------------------------------------- */

static void on_retry(uv_timer_t *t)
{
	struct reflector *r = t->data;

	r->unreachable = false;
	kube_contact_set_open(&r->ks->contact, r->res, true);
	if (r->need_list)
		start_list(r);
	else
		start_watch(r);
}

static void retry_later(struct reflector *r, const struct kube_http_result *res, const char *what,
			const char *why)
{
	const struct kube_source *ks = r->ks;
	unsigned ms =
	    kube_backoff_ms(ks->o.backoff_min_ms, ks->o.backoff_max_ms, r->failures, rand32());

	if (r->failures < 31)
		r->failures++;
	kube_contact_set_open(&r->ks->contact, r->res, false);
	/* No HTTP response at all (refused, reset, timed out): the server is
	 * away, and whichever resource reaches it first calls the others back. */
	r->unreachable = !res || res->status == 0;
	if (res && res->retry_after && res->retry_after * 1000u > ms)
		ms = res->retry_after * 1000u < ks->o.backoff_max_ms ? res->retry_after * 1000u
								     : ks->o.backoff_max_ms;
	log_warn("api %s: %s: %s; retrying in %.1f s", r->d->name, what, why, ms / 1000.0);
	uv_timer_start(&r->retry, on_retry, ms, 0);
}

/* Explains a failed request in one line; credentials are named, never shown. */
static void describe_failure(struct reflector *r, const struct kube_http_result *res, char *out,
			     size_t cap)
{
	struct kube_conn *c = &r->ks->conn;
	char msg[300] = "";

	if (res->status == 0 || res->status / 100 == 2) {
		snprintf(out, cap, "%s (%s)", res->error, c->server);
		return;
	}
	status_message(res->body, res->body_len, msg, sizeof(msg));
	if (res->status == 401) {
		const char *cred = c->token_file		 ? "the token in "
				   : c->token			 ? "the kubeconfig's token"
				   : c->cert_file || c->cert_pem ? "the client certificate"
								 : "no credentials";
		snprintf(out, cap, "401 Unauthorized: the API server rejected %s%s (%s)", cred,
			 c->token_file ? c->token_file : "", msg);
		kubeconfig_token_stale(c);
	} else if (res->status == 403) {
		snprintf(out, cap,
			 "403 Forbidden: not allowed to list and watch %s (the ClusterRole in "
			 "contrib/kubernetes/rbac.yaml grants it): %s",
			 r->d->name, msg);
	} else {
		snprintf(out, cap, "HTTP %ld: %s", res->status, msg);
	}
}

/* ---- list ----------------------------------------------------------------- */

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
		free(l->v[i].rv);
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
static void list_discard(struct reflector *r)
{
	r->list_seq++;
	for (size_t i = 0; i < r->done_cap; i++) {
		if (r->done[i])
			page_work_free(r->done[i]);
		r->done[i] = NULL;
	}
	r->list_received = false;
}

static void body_reset(struct reflector *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
}

/* 2xx response headers of a reflector's request: contact, and if the server
 * had been away, it is back. */
static void on_reflector_headers(void *arg, long status)
{
	struct reflector *r = arg;

	if (status / 100 != 2)
		return;
	kube_contact_heard(&r->ks->contact, r->res, now_ms());
	server_back(r->ks);
}

static int on_list_data(void *arg, const char *data, size_t len)
{
	struct reflector *r = arg;

	kube_contact_heard(&r->ks->contact, r->res, now_ms());
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
	rc = object_ident(r, it, &id);
	if (rc == 1)
		goto out;
	if (rc < 0) {
		log_warn("api %s: list item %zu has no name or namespace; ignored", r->d->name, i);
		rc = 0;
		goto out;
	}
	const char *old = pc->use_index ? index_rv(r, id.key) : NULL;
	if (old && id.rv && strcmp(old, id.rv) == 0) {
		p.what = P_UNCHANGED;
	} else {
		rc = manifest_decode_item(r->d->where, it, r->d->kind, r->d->api_version, &p.obj);
		p.what = rc == 0 ? P_DECODED : P_INVALID;
	}
	p.key = strdup(id.key);
	p.rv = strdup(id.rv ? id.rv : "");
	if (!p.key || !p.rv || pend_push(pc->out, &p) < 0) {
		free(p.key);
		free(p.rv);
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

/* A fresh list starts: its objects are marked with a new generation. */
static void list_begin(struct reflector *r)
{
	r->apply_gen = ++r->gen;
	if (r->apply_gen == 0) /* after wrapping: 0 is what a fresh index slot holds */
		r->apply_gen = r->gen = 1;
	r->apply_early = r->index.n == 0;
	r->next_apply = 0;
	r->n_added = r->n_updated = r->n_unchanged = 0;
	r->store_ns = 0;
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
		if (p->what == P_DECODED)
			model_store_replace(ks->store, p->key, &p->obj, 1);
		else /* of no use to us (logged): it replaces the old version (object_upsert) */
			model_store_remove(ks->store, p->key);
		p->what = P_UNCHANGED; /* the store owns the object now */
		if (store_map_insert(&r->index, p->key, klen, &s, &created) < 0) {
			log_error("api %s: out of memory indexing %s", r->d->name, p->key);
			continue;
		}
		free((char *)s->val);
		s->val = (uintptr_t)p->rv; /* the index takes the resourceVersion */
		p->rv = NULL;
		s->gen = r->apply_gen;
		if (created)
			r->n_added++;
		else
			r->n_updated++;
	}
	r->store_ns += uv_hrtime() - t0;
}

/* Every page is stored: what the list did not name goes, and the store now
 * holds exactly what was listed. */
static void apply_end(struct reflector *r)
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
		free((char *)s->val);
		s->val = 0;
		removed++;
	}
	store_map_sweep(&r->index, gen);
	r->store_ns += uv_hrtime() - t0;
	free(r->rv);
	r->rv = r->list_rv;
	r->list_rv = NULL;
	log_info("api %s: %s at resourceVersion %s: %zu objects in %u page%s (%zu new, %zu "
		 "changed, %zu removed, %zu unchanged), stored in %.1f ms%s",
		 r->d->name, r->synced ? "listed again" : "listed", r->rv ? r->rv : "?",
		 r->n_added + r->n_updated + r->n_unchanged, r->page_count,
		 r->page_count == 1 ? "" : "s", r->n_added, r->n_updated, removed, r->n_unchanged,
		 (double)r->store_ns / 1e6, r->apply_early ? " as the pages came" : "");
	r->need_list = false;
	bool first = !r->synced;
	r->synced = true;
	if (first && !ks->synced) {
		bool all = true;
		for (int k = 0; k < KUBE_RESOURCES; k++)
			all = all && ks->r[k].synced;
		if (all) {
			ks->synced = true;
			log_info("api: first full sync of services, endpointslices and namespaces "
				 "done");
			notify(ks);
			return;
		}
	}
	if (r->n_added || r->n_updated || removed)
		notify(ks);
}

static void source_maybe_free(struct kube_source *ks);

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
	apply_end(r);
	start_watch(r);
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
		source_maybe_free(ks);
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
		list_discard(r);
		free(r->cont);
		r->cont = NULL;
		retry_later(r, NULL, "list", why);
		return;
	}
	r->done[pw->page] = pw;
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

static void on_list_done(void *arg, const struct kube_http_result *res)
{
	struct reflector *r = arg;
	char why[600];
	json_error_t jerr = {0};

	r->req = NULL;
	if (res->curl_code != 0 || res->status != 200) {
		body_reset(r);
		if (res->status == 410 && r->cont) {
			/* the continue token outlived etcd's compaction: start over */
			log_info("api %s: list continuation expired (410 Gone); listing from "
				 "the start",
				 r->d->name);
			free(r->cont);
			r->cont = NULL;
			list_discard(r);
			if (r->failures++ < 2) {
				start_list(r);
				return;
			}
		}
		describe_failure(r, res, why, sizeof(why));
		retry_later(r, res, "list", why);
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
		body_reset(r);
		retry_later(r, NULL, "list", why); /* the same page again */
		return;
	}
	if (page_queue(r) < 0) {
		json_decref(meta);
		body_reset(r);
		list_discard(r);
		free(r->cont);
		r->cont = NULL;
		retry_later(r, NULL, "list", "out of memory");
		return;
	}
	r->page_count++;
	/* Every page of one list is served at the first page's resourceVersion. */
	if (!r->list_rv)
		set_str(&r->list_rv, rv);
	set_str(&r->cont, cont && *cont ? cont : NULL);
	json_decref(meta);
	if (r->cont) {
		start_list(r);
		return;
	}
	r->list_received = true;
	list_advance(r);
}

static void start_list(struct reflector *r)
{
	struct kube_source *ks = r->ks;
	char *pq = NULL, *cont = NULL;
	int rc;

	if (!r->cont) {
		/* a fresh list: whatever was collected before is stale */
		list_discard(r);
		list_begin(r);
		free(r->list_rv);
		r->list_rv = NULL;
		r->page_count = 0;
	}
	r->want_relist = false;
	if (r->cont && !(cont = escape_dup(r->cont))) {
		retry_later(r, NULL, "list", "out of memory");
		return;
	}
	/* No resourceVersion: the list is read from etcd, so it is current. */
	rc = asprintf(&pq, "%s?limit=%u%s%s%s%s", r->d->path, ks->o.page_size,
		      cont ? "&continue=" : "", cont ? cont : "",
		      r->d->labelled && ks->labels_q ? "&labelSelector=" : "",
		      r->d->labelled && ks->labels_q ? ks->labels_q : "");
	free(cont);
	if (rc < 0) {
		retry_later(r, NULL, "list", "out of memory");
		return;
	}
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = ks->o.timeout_ms,
	    .idle_ms = ks->o.timeout_ms,
	    .on_data = on_list_data,
	    .on_headers = on_reflector_headers,
	    .on_done = on_list_done,
	    .arg = r,
	};
	log_debug("api %s: GET %s", r->d->name, pq);
	rc = kube_http_get(ks->http, &o, &r->req);
	free(pq);
	if (rc < 0)
		retry_later(r, NULL, "list", strerror(-rc));
}

/* ---- watch ---------------------------------------------------------------- */

static enum kube_event_type event_type(const char *s)
{
	for (int t = 0; t < KUBE_EV_TYPES; t++)
		if (s && strcmp(s, kube_event_type_name((enum kube_event_type)t)) == 0)
			return (enum kube_event_type)t;
	return KUBE_EV_TYPES;
}

static int on_event_line(void *arg, const char *line, size_t len)
{
	struct reflector *r = arg;
	json_error_t jerr;
	char ex[120];
	json_t *ev = json_loadb(line, len, 0, &jerr);
	json_t *obj = json_object_get(ev, "object");
	enum kube_event_type t = event_type(json_string_value(json_object_get(ev, "type")));
	int rc = 0;

	if (!json_is_object(obj) || t == KUBE_EV_TYPES) {
		excerpt(line, len, ex, sizeof(ex));
		log_warn("api %s: watch: skipping a line that is not an event (%s): %s", r->d->name,
			 ev ? "no known type or no object" : jerr.text, ex);
		r->bad_lines++;
		goto out;
	}
	r->events[t]++;
	if (t == KUBE_EV_ERROR) {
		long code = (long)json_integer_value(json_object_get(obj, "code"));
		const char *m = json_string_value(json_object_get(obj, "message"));
		excerpt(m ? m : "", m ? strlen(m) : 0, ex, sizeof(ex));
		if (code == 410) {
			log_info("api %s: watch: resourceVersion %s is gone (410: %s); listing "
				 "again",
				 r->d->name, r->rv ? r->rv : "?", ex);
			r->want_relist = true;
		} else {
			log_warn("api %s: watch: ERROR event %ld: %s", r->d->name, code, ex);
			r->watch_failed = "the API server sent an ERROR event";
		}
		rc = -EPROTO; /* ends this watch; its done callback decides what next */
		goto out;
	}
	r->watch_progress = true;
	r->failures = 0;
	json_t *meta = json_object_get(obj, "metadata");
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (t == KUBE_EV_BOOKMARK) {
		if (rv)
			set_str(&r->rv, rv);
		goto out;
	}
	struct ident id;
	int irc = object_ident(r, obj, &id);
	if (irc < 0) {
		excerpt(line, len, ex, sizeof(ex));
		log_warn("api %s: watch: %s event without a usable name: %s", r->d->name,
			 kube_event_type_name(t), ex);
		r->bad_lines++;
	} else if (irc == 0) {
		bool changed =
		    t == KUBE_EV_DELETED ? object_delete(r, &id) : object_upsert(r, obj, &id);
		log_debug("api %s: %s %s rv %s%s", r->d->name, kube_event_type_name(t), id.key,
			  id.rv ? id.rv : "?", changed ? "" : " (no change)");
		if (changed)
			notify(r->ks);
	}
	if (rv)
		set_str(&r->rv, rv);
out:
	json_decref(ev);
	return rc;
}

static int on_watch_data(void *arg, const char *data, size_t len)
{
	struct reflector *r = arg;
	kube_contact_heard(&r->ks->contact, r->res, now_ms());
	int rc = kube_lines_feed(&r->lines, data, len, on_event_line, r);

	if (rc == -E2BIG) {
		log_error("api %s: watch: an event line is longer than %u MiB; reconnecting",
			  r->d->name, KUBE_MAX_LINE >> 20);
		r->watch_failed = "an event line was too long";
	}
	return rc;
}

static void on_watch_done(void *arg, const struct kube_http_result *res)
{
	struct reflector *r = arg;
	char why[600];

	r->req = NULL;
	if (r->lines.len)
		log_info("api %s: watch: stream ended inside an event (%zu bytes dropped); the "
			 "event comes again on resume",
			 r->d->name, r->lines.len);
	kube_lines_reset(&r->lines);
	if (r->want_relist || res->status == 410) {
		if (!r->want_relist)
			log_info("api %s: watch: resourceVersion %s is gone (410); listing again",
				 r->d->name, r->rv ? r->rv : "?");
		r->relists++;
		r->need_list = true;
		free(r->cont);
		r->cont = NULL;
		start_list(r);
		return;
	}
	if (r->watch_failed) {
		retry_later(r, res, "watch", r->watch_failed);
		return;
	}
	if (res->status == 200 && res->curl_code == 0) {
		/* the server ended the watch (timeoutSeconds): resume at once, unless it
		 * keeps ending watches before anything arrives */
		if (r->watch_progress || r->failures == 0) {
			log_debug("api %s: watch ended; resuming from %s", r->d->name, r->rv);
			start_watch(r);
		} else {
			retry_later(r, res, "watch", "ended without an event");
		}
		return;
	}
	if (res->status == 200 && r->watch_progress && !res->timed_out) {
		/* dropped after events: resume from the last one straight away */
		log_info("api %s: watch interrupted (%s); resuming from resourceVersion %s",
			 r->d->name, res->error, r->rv ? r->rv : "?");
		start_watch(r);
		return;
	}
	describe_failure(r, res, why, sizeof(why));
	retry_later(r, res, "watch", why);
}

static void start_watch(struct reflector *r)
{
	struct kube_source *ks = r->ks;
	char *pq = NULL, *rv = escape_dup(r->rv ? r->rv : "");
	unsigned tmo = WATCH_TIMEOUT_MIN_S + rand32() % WATCH_TIMEOUT_MIN_S;
	int rc;

	if (!rv) {
		retry_later(r, NULL, "watch", "out of memory");
		return;
	}
	rc = asprintf(
	    &pq, "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u%s%s",
	    r->d->path, rv, tmo, r->d->labelled && ks->labels_q ? "&labelSelector=" : "",
	    r->d->labelled && ks->labels_q ? ks->labels_q : "");
	free(rv);
	if (rc < 0) {
		retry_later(r, NULL, "watch", "out of memory");
		return;
	}
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = ks->o.timeout_ms,
	    /* the server ends the watch after tmo; silence beyond that is a hang */
	    .idle_ms = tmo * 1000u + ks->o.timeout_ms,
	    .on_data = on_watch_data,
	    .on_headers = on_reflector_headers,
	    .on_done = on_watch_done,
	    .arg = r,
	};
	r->watch_progress = false;
	r->watch_failed = NULL;
	kube_lines_reset(&r->lines);
	log_debug("api %s: GET %s", r->d->name, pq);
	rc = kube_http_get(ks->http, &o, &r->req);
	free(pq);
	if (rc < 0)
		retry_later(r, NULL, "watch", strerror(-rc));
}

/* ---- contact ---------------------------------------------------------------- */

/* Some request reached the server: the resources still waiting out a backoff
 * because the server was away retry now (with a little jitter), instead of
 * each waiting out its own, which grew while the server was gone. A resource
 * that failed with an HTTP error (403, 500) keeps its backoff. */
static void server_back(struct kube_source *ks)
{
	for (int k = 0; k < KUBE_RESOURCES; k++) {
		struct reflector *r = &ks->r[k];
		if (!r->unreachable || r->req || !uv_is_active((uv_handle_t *)&r->retry))
			continue;
		r->unreachable = false;
		r->failures = 0;
		log_info("api %s: the API server answers again; retrying now", r->d->name);
		uv_timer_start(&r->retry, on_retry, rand32() % RECOVERY_JITTER_MS, 0);
	}
}

static void on_probe_done(void *arg, const struct kube_http_result *res)
{
	struct kube_source *ks = arg;

	ks->probe = NULL;
	ks->contact.probing = false;
	if (res->curl_code == 0 && res->status / 100 == 2) {
		kube_contact_probe_answered(&ks->contact, now_ms());
		server_back(ks);
	} else {
		log_debug("api: contact probe failed: %s (HTTP %ld)", res->error, res->status);
	}
}

/* A quiet watch proves nothing by itself: when an open resource has had no
 * proof for probe_ms, a list of one Namespace (cheap for the API server and
 * etcd) shows that the server is there and answering. */
static void on_probe_tick(uv_timer_t *t)
{
	struct kube_source *ks = t->data;
	char pq[64];

	if (ks->stopping || ks->probe || !kube_contact_probe_due(&ks->contact, now_ms()))
		return;
	unsigned tmo = ks->contact.probe_ms * 2;
	if (tmo < 2000)
		tmo = 2000;
	if (tmo > ks->o.timeout_ms)
		tmo = ks->o.timeout_ms;
	snprintf(pq, sizeof(pq), "%s?limit=1", RES[KUBE_NAMESPACES].path);
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = tmo,
	    .idle_ms = tmo,
	    .on_done = on_probe_done,
	    .arg = ks,
	};
	if (kube_http_get(ks->http, &o, &ks->probe) == 0)
		ks->contact.probing = true;
}

static void probe_schedule(struct kube_source *ks)
{
	uint64_t tick = ks->contact.probe_ms / 4;
	if (tick < 50)
		tick = 50;
	uv_timer_start(&ks->probe_timer, on_probe_tick, tick, tick);
}

void kube_source_set_probe_ms(struct kube_source *ks, unsigned ms)
{
	if (!ks || ms == 0 || ms == ks->contact.probe_ms)
		return;
	ks->contact.probe_ms = ms;
	probe_schedule(ks);
}

/* ---- the source ----------------------------------------------------------- */

static int parse_namespaces(struct kube_source *ks, const char *list)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		bool ok = n > 0 && n <= 63;
		for (size_t i = 0; i < n && ok; i++)
			ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') ||
			     (p[i] == '-' && i > 0 && i + 1 < n);
		if (!ok || ks->n_ns_filter == MAX_NAMESPACES) {
			log_error("--namespaces %s: expected up to %d namespace names separated by "
				  "commas",
				  list, MAX_NAMESPACES);
			return -EINVAL;
		}
		if (!(ks->ns_filter[ks->n_ns_filter] = strndup(p, n)))
			return -ENOMEM;
		ks->n_ns_filter++;
		p += n + (e ? 1 : 0);
	}
	return 0;
}

static void source_free(struct kube_source *ks)
{
	for (int k = 0; k < KUBE_RESOURCES; k++) {
		struct reflector *r = &ks->r[k];
		list_discard(r);
		free(r->done);
		for (size_t i = 0; i < r->index.cap; i++)
			if (r->index.slots[i].key)
				free((char *)r->index.slots[i].val);
		store_map_clear(&r->index);
		kube_lines_free(&r->lines);
		body_reset(r);
		free(r->rv);
		free(r->list_rv);
		free(r->cont);
	}
	for (size_t i = 0; i < ks->n_ns_filter; i++)
		free(ks->ns_filter[i]);
	free(ks->labels_q);
	kubeconfig_free(&ks->conn);
	free(ks);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct kube_source *ks = h->data;

	--ks->open_handles;
	source_maybe_free(ks);
}

/* Once the timers are closed and no page is left in the thread pool. */
static void source_maybe_free(struct kube_source *ks)
{
	if (ks->open_handles == 0 && ks->inflight == 0)
		source_free(ks);
}

int kube_source_start(uv_loop_t *loop, struct kube_conn *conn, const struct kube_options *o,
		      struct model_store *store, kube_changed_cb cb, void *arg,
		      struct kube_source **out)
{
	struct kube_source *ks = calloc(1, sizeof(*ks));
	int rc;

	if (!ks) {
		kubeconfig_free(conn);
		return -ENOMEM;
	}
	ks->conn = *conn;
	*conn = (struct kube_conn){0};
	ks->loop = loop;
	ks->store = store;
	ks->cb = cb;
	ks->arg = arg;
	ks->o = *o;
	if (!ks->o.page_size)
		ks->o.page_size = DEFAULT_PAGE_SIZE;
	if (!ks->o.timeout_ms)
		ks->o.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!ks->o.backoff_min_ms)
		ks->o.backoff_min_ms = DEFAULT_BACKOFF_MIN;
	if (!ks->o.backoff_max_ms)
		ks->o.backoff_max_ms = DEFAULT_BACKOFF_MAX;
	if (ks->o.backoff_max_ms < ks->o.backoff_min_ms)
		ks->o.backoff_max_ms = ks->o.backoff_min_ms;
	kube_contact_init(&ks->contact, o->probe_ms ? o->probe_ms : DEFAULT_PROBE_MS);
	ks->o.namespaces = ks->o.labels = NULL; /* not kept: the caller's strings */
	if (o->namespaces && (rc = parse_namespaces(ks, o->namespaces)) < 0)
		goto fail;
	if (o->labels && *o->labels && !(ks->labels_q = escape_dup(o->labels))) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = kube_http_new(loop, &ks->conn, &ks->http);
	if (rc < 0)
		goto fail;
	for (int k = 0; k < KUBE_RESOURCES; k++) {
		struct reflector *r = &ks->r[k];
		r->ks = ks;
		r->res = (enum kube_resource)k;
		r->d = &RES[k];
		kube_lines_init(&r->lines, KUBE_MAX_LINE);
		store_map_init(&r->index);
		uv_timer_init(loop, &r->retry);
		r->retry.data = r;
		r->need_list = true;
		kube_contact_set_open(&ks->contact, (unsigned)k, true);
		ks->open_handles++;
	}
	uv_timer_init(loop, &ks->probe_timer);
	ks->probe_timer.data = ks;
	ks->open_handles++;
	probe_schedule(ks);
	log_info("api: connecting to %s (%s)%s%s%s%s", ks->conn.server, ks->conn.origin,
		 o->namespaces ? "; namespaces " : "", o->namespaces ? o->namespaces : "",
		 ks->labels_q ? "; labels " : "", ks->labels_q ? o->labels : "");
	for (int k = 0; k < KUBE_RESOURCES; k++)
		start_list(&ks->r[k]);
	*out = ks;
	return 0;
fail:
	if (rc == -ENOMEM)
		log_error("api: out of memory");
	source_free(ks);
	return rc;
}

void kube_source_stop(struct kube_source *ks)
{
	if (!ks)
		return;
	ks->stopping = true;
	for (int k = 0; k < KUBE_RESOURCES; k++) {
		struct reflector *r = &ks->r[k];
		kube_http_cancel(r->req);
		r->req = NULL;
	}
	kube_http_cancel(ks->probe);
	ks->probe = NULL;
	kube_http_free(ks->http);
	ks->http = NULL;
	for (int k = 0; k < KUBE_RESOURCES; k++) {
		uv_timer_stop(&ks->r[k].retry);
		ks->r[k].retry.data = ks;
		uv_close((uv_handle_t *)&ks->r[k].retry, on_handle_closed);
	}
	uv_timer_stop(&ks->probe_timer);
	uv_close((uv_handle_t *)&ks->probe_timer, on_handle_closed);
}

bool kube_source_synced(const struct kube_source *ks)
{
	return ks->synced;
}

double kube_source_seconds_since_contact(const struct kube_source *ks)
{
	int64_t age = kube_contact_age_ms(&ks->contact, now_ms());

	return age < 0 ? -1 : (double)age / 1000.0;
}

uint64_t kube_source_events(const struct kube_source *ks, enum kube_resource r,
			    enum kube_event_type t)
{
	return r < KUBE_RESOURCES && t < KUBE_EV_TYPES ? ks->r[r].events[t] : 0;
}

uint64_t kube_source_relists(const struct kube_source *ks, enum kube_resource r)
{
	return r < KUBE_RESOURCES ? ks->r[r].relists : 0;
}

uint64_t kube_source_bad_lines(const struct kube_source *ks, enum kube_resource r)
{
	return r < KUBE_RESOURCES ? ks->r[r].bad_lines : 0;
}
