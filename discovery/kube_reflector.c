/* What a reflector's list and watch share: the identity of an API object and
 * the index of what is stored (key -> resourceVersion), swapping one object
 * for an event, retrying with backoff, and saying why a request failed. */
#include "discovery/kube_reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "discovery/manifest.h"

/* The Status object of an error response says why; take its message. */
static void status_message(const char *body, size_t len, char *out, size_t cap)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));

	if (m)
		kube_excerpt(m, strlen(m), out, cap);
	else
		kube_excerpt(body, len, out, cap);
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

/* ---- object identity ------------------------------------------------------- */

/* Reads metadata. Returns 0, 1 when filtered out, or -EINVAL when the object
 * has no usable identity. */
int kube_object_ident(struct reflector *r, json_t *obj, struct ident *id)
{
	json_t *meta = json_object_get(obj, "metadata");

	if (!json_is_object(obj) || !json_is_object(meta))
		return -EINVAL;
	id->name = json_string_value(json_object_get(meta, "name"));
	id->ns = json_string_value(json_object_get(meta, "namespace"));
	id->rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (!id->name || !*id->name)
		return -EINVAL;
	if (r->res == KUBE_NAMESPACES || r->d->cluster_scoped)
		id->ns = NULL;
	else if (!id->ns || !*id->ns)
		return -EINVAL;
	if (!r->d->cluster_scoped &&
	    !ns_allowed(r->ks, r->res == KUBE_NAMESPACES ? id->name : id->ns))
		return 1;
	int n = snprintf(id->key, sizeof(id->key), "api:%s/%s%s%s", r->d->kind,
			 id->ns ? id->ns : "", id->ns ? "/" : "", id->name);
	if (n < 0 || (size_t)n >= sizeof(id->key))
		return -EINVAL;
	return 0;
}

/* ---- the index -------------------------------------------------------------
 * One word per object for its resourceVersion: etcd's are decimal revisions,
 * kept in the word itself (low bit set); any other is a copy; 0 is none. At
 * 100,000 Services and their slices that is one allocation fewer per object. */

#define RV_MAX_DIGITS 18 /* below 2^63 */

uintptr_t kube_rv_pack(const char *rv)
{
	size_t len = rv ? strlen(rv) : 0;
	uint64_t n = 0;

	if (!len)
		return 0;
	if (len <= RV_MAX_DIGITS && sizeof(uintptr_t) >= 8 && (rv[0] != '0' || len == 1) &&
	    strspn(rv, "0123456789") == len) {
		for (size_t i = 0; i < len; i++)
			n = n * 10 + (uint64_t)(rv[i] - '0');
		return (uintptr_t)(n << 1 | 1);
	}
	/* out of memory: none, which the next version simply replaces */
	return (uintptr_t)strdup(rv);
}

void kube_rv_free(uintptr_t v)
{
	if (v && !(v & 1))
		free((char *)v);
}

bool kube_rv_same(uintptr_t v, const char *rv)
{
	if (!rv)
		return false;
	if (!v)
		return !*rv;
	if (!(v & 1))
		return strcmp((const char *)v, rv) == 0;
	uintptr_t w = kube_rv_pack(rv);
	bool same = w == v;
	kube_rv_free(w);
	return same;
}

const struct store_map_slot *kube_index_find(const struct reflector *r, const char *key)
{
	return store_map_find(&r->index, key, strlen(key));
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
	kube_rv_free(s->val);
	s->val = kube_rv_pack(rv);
	return 0;
}

static void index_del(struct reflector *r, const char *key)
{
	struct store_map_slot *s = store_map_find(&r->index, key, strlen(key));

	if (!s)
		return;
	kube_rv_free(s->val);
	store_map_remove(&r->index, key, strlen(key));
}

/* ADDED or MODIFIED: decode and swap the one object. Returns true when the
 * store changed. */
bool kube_object_upsert(struct reflector *r, json_t *obj, const struct ident *id)
{
	struct store_map_slot *s = store_map_find(&r->index, id->key, strlen(id->key));
	bool old = s != NULL;
	struct model_object mo;

	if (s && kube_rv_same(s->val, id->rv)) {
		/* seen already (a resumed watch may repeat it, a streamed list
		 * names it again): still listed */
		s->gen = r->gen;
		return false;
	}
	int rc = r->res == KUBE_PODS
		     ? manifest_decode_pod_addrs(r->d->where, obj, &mo)
		     : manifest_decode_item(r->d->where, obj, r->d->kind, r->d->api_version, &mo);
	if (rc < 0) {
		/* Logged. The API server accepted this version, so it is what the
		 * cluster holds now: it replaces the previous one and, being of no
		 * use to us, contributes nothing. Keeping the old version would
		 * serve what the cluster no longer says (and a fresh start would
		 * differ from a long-running instance). */
		model_store_remove(r->ks->store, id->key);
		if (index_set(r, id->key, id->rv, r->gen) < 0)
			log_error("api %s: out of memory indexing %s", r->d->name, id->key);
		return old;
	}
	if (rc == 1) {
		/* not a kind we use: nothing of it is served */
		model_store_remove(r->ks->store, id->key);
		index_del(r, id->key);
		return old;
	}
	kube_trigger_note(r, id->key, &mo);
	model_store_replace(r->ks->store, id->key, &mo, 1);
	if (index_set(r, id->key, id->rv, r->gen) < 0)
		log_error("api %s: out of memory indexing %s", r->d->name, id->key);
	return true;
}

void kube_trigger_note(struct reflector *r, const char *key, const struct model_object *o)
{
	struct kube_source *ks = r->ks;

	if (o->kind != KIND_SLICE || !r->synced)
		return;
	const struct model_slice *sl = o->u.slice;
	if (!sl->trigger_ms || !sl->service)
		return;
	const struct model_object *old =
	    model_store_find(ks->store, key, KIND_SLICE, sl->ns, sl->name);
	if (old && old->u.slice->trigger_ms == sl->trigger_ms)
		return;
	if (ks->n_trig == ks->cap_trig) {
		size_t cap = ks->cap_trig ? ks->cap_trig * 2 : 64;
		if (cap > KUBE_MAX_TRIGGERS)
			cap = KUBE_MAX_TRIGGERS;
		struct kube_trigger *n =
		    cap > ks->cap_trig ? realloc(ks->trig, cap * sizeof(*n)) : NULL;
		if (!n) {
			ks->trig_dropped++;
			return;
		}
		ks->trig = n;
		ks->cap_trig = cap;
	}
	struct kube_trigger *t = &ks->trig[ks->n_trig++];
	t->at_ms = sl->trigger_ms;
	snprintf(t->ns, sizeof(t->ns), "%s", sl->ns ? sl->ns : "");
	snprintf(t->service, sizeof(t->service), "%s", sl->service);
}

bool kube_object_delete(struct reflector *r, const struct ident *id)
{
	if (!kube_index_find(r, id->key))
		return false;
	model_store_remove(r->ks->store, id->key);
	index_del(r, id->key);
	return true;
}

/* ---- retrying ------------------------------------------------------------- */

void kube_on_retry(uv_timer_t *t)
{
	struct reflector *r = t->data;

	r->unreachable = false;
	kube_contact_set_open(&r->ks->contact, r->res, true);
	if (r->need_list)
		kube_list_start(r);
	else
		kube_watch_start(r);
}

void kube_retry_later(struct reflector *r, const struct kube_http_result *res, const char *what,
		      const char *why)
{
	struct kube_source *ks = r->ks;
	/* The server's own failures grow one backoff for all the resources;
	 * each draws its own jitter from it. The shared count is the longest run
	 * of failures any one resource has had, not the sum of every resource's
	 * requests: an outage of a few seconds that five resources each ran into
	 * twice is two rounds of backoff, not ten. */
	bool server = !res || res->status == 0 || res->status == 429 || res->status >= 500;
	unsigned failures = r->failures > ks->server_failures ? r->failures : ks->server_failures;
	unsigned ms =
	    kube_backoff_ms(ks->o.backoff_min_ms, ks->o.backoff_max_ms, failures, kube_rand32());

	if (r->failures < 31)
		r->failures++;
	if (server && ks->server_failures < r->failures)
		ks->server_failures = r->failures;
	kube_contact_set_open(&r->ks->contact, r->res, false);
	/* No HTTP response at all (refused, reset, timed out): the server is
	 * away, and whichever resource reaches it first calls the others back. */
	r->unreachable = !res || res->status == 0;
	if (res && res->retry_after && res->retry_after * 1000u > ms)
		ms = res->retry_after * 1000u < ks->o.backoff_max_ms ? res->retry_after * 1000u
								     : ks->o.backoff_max_ms;
	log_warn("api %s: %s: %s; retrying in %.1f s", r->d->name, what, why, ms / 1000.0);
	uv_timer_start(&r->retry, kube_on_retry, ms, 0);
}

/* Explains a failed request in one line; credentials are named, never shown. */
void kube_describe_failure(struct reflector *r, const struct kube_http_result *res, char *out,
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
			 "contrib/kubernetes/rbac.yaml grants it%s): %s",
			 r->d->name,
			 r->res == KUBE_PODS ? " once \"pods\" is added, for --pods verified" : "",
			 msg);
	} else {
		snprintf(out, cap, "HTTP %ld: %s", res->status, msg);
	}
}

/* 2xx response headers of a reflector's request: contact, and if the server
 * had been away, it is back. */
void kube_on_headers(void *arg, long status)
{
	struct reflector *r = arg;

	if (status / 100 != 2)
		return;
	r->ks->server_failures = 0;
	kube_contact_heard(&r->ks->contact, r->res, clock_now_ms());
	kube_server_back(r->ks);
}
