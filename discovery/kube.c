/* The Kubernetes API source: list-then-watch reflectors (Services,
 * EndpointSlices, Namespaces, ServiceCIDRs) on one connection, the namespace
 * and label filters, the contact probe, and the state and counters kube.h
 * reports. */
#include "discovery/kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/log.h"
#include "discovery/kube_reflector.h"

#define DEFAULT_PAGE_SIZE   500
#define DEFAULT_TIMEOUT_MS  30000
#define DEFAULT_BACKOFF_MIN 500
#define DEFAULT_BACKOFF_MAX 30000
#define DEFAULT_PROBE_MS    10000
/* After an outage, the resources that still wait to retry are retried within
 * this much of the first one reaching the server again. */
#define RECOVERY_JITTER_MS 500

_Static_assert(KUBE_RESOURCES <= KUBE_CONTACT_STREAMS, "a contact stream per resource");

/* ServiceCIDR went GA in Kubernetes 1.33; 1.31 and 1.32 serve v1beta1. */
static const struct kube_res_desc servicecidrs_beta = {
    .name = "servicecidrs",
    .path = "/apis/networking.k8s.io/v1beta1/servicecidrs",
    .kind = "ServiceCIDR",
    .api_version = "networking.k8s.io/v1beta1",
    .where = "api servicecidrs",
    .optional = true,
    .cluster_scoped = true,
    .without = "the reverse zones follow --service-cidr",
};

const struct kube_res_desc kube_res[KUBE_RESOURCES] = {
    [KUBE_SERVICES] = {"services", "/api/v1/services", "Service", "v1", true, "api services"},
    [KUBE_ENDPOINTSLICES] = {"endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
			     "EndpointSlice", "discovery.k8s.io/v1", true, "api endpointslices"},
    [KUBE_NAMESPACES] = {"namespaces", "/api/v1/namespaces", "Namespace", "v1", false,
			 "api namespaces"},
    [KUBE_SERVICECIDRS] = {.name = "servicecidrs",
			   .path = "/apis/networking.k8s.io/v1/servicecidrs",
			   .kind = "ServiceCIDR",
			   .api_version = "networking.k8s.io/v1",
			   .where = "api servicecidrs",
			   .optional = true,
			   .fallback = &servicecidrs_beta,
			   .cluster_scoped = true,
			   .without = "the reverse zones follow --service-cidr"},
    [KUBE_SERVICEIMPORTS] = {.name = "serviceimports",
			     .path = "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports",
			     .kind = "ServiceImport",
			     .api_version = "multicluster.x-k8s.io/v1alpha1",
			     .labelled = true,
			     .where = "api serviceimports",
			     .optional = true,
			     .without = "clusterset.local is served only from manifests' imports"},
    [KUBE_PODS] = {"pods", "/api/v1/pods", "Pod", "v1", false, "api pods"},
};

/* ---- small helpers -------------------------------------------------------- */

const char *kube_resource_name(enum kube_resource r)
{
	return r < KUBE_RESOURCES ? kube_res[r].name : "?";
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

char *kube_escape_dup(const char *s)
{
	size_t cap = strlen(s) * 3 + 1;
	char *out = malloc(cap);

	if (out && kube_query_escape(s, out, cap) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

uint32_t kube_rand32(void)
{
	uint32_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)uv_hrtime();
	return v;
}

void kube_set_str(char **field, const char *value)
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
void kube_excerpt(const char *p, size_t len, char *out, size_t cap)
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

void kube_notify(struct kube_source *ks)
{
	/* Before the first full sync a partial store would answer NXDOMAIN for
	 * names that exist; main builds once, at sync. */
	if (ks->synced && !ks->stopping)
		ks->cb(ks->arg);
}

/* ---- contact ---------------------------------------------------------------- */

/* Some request reached the server: the resources still waiting out a backoff
 * because the server was away retry now (with a little jitter), instead of
 * each waiting out its own, which grew while the server was gone. A resource
 * that failed with an HTTP error (403, 500) keeps its backoff. */
void kube_server_back(struct kube_source *ks)
{
	for (int k = 0; k < ks->n_res; k++) {
		struct reflector *r = &ks->r[k];
		if (!r->unreachable || r->req || !uv_is_active((uv_handle_t *)&r->retry))
			continue;
		r->unreachable = false;
		r->failures = 0;
		log_info("api %s: the API server answers again; retrying now", r->d->name);
		uv_timer_start(&r->retry, kube_on_retry, kube_rand32() % RECOVERY_JITTER_MS, 0);
	}
}

static void on_probe_done(void *arg, const struct kube_http_result *res)
{
	struct kube_source *ks = arg;

	ks->probe = NULL;
	ks->contact.probing = false;
	if (res->curl_code == 0 && res->status / 100 == 2) {
		kube_contact_probe_answered(&ks->contact, clock_now_ms());
		kube_server_back(ks);
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

	if (ks->stopping || ks->probe || !kube_contact_probe_due(&ks->contact, clock_now_ms()))
		return;
	unsigned tmo = ks->contact.probe_ms * 2;
	if (tmo < 2000)
		tmo = 2000;
	if (tmo > ks->o.timeout_ms)
		tmo = ks->o.timeout_ms;
	snprintf(pq, sizeof(pq), "%s?limit=1", kube_res[KUBE_NAMESPACES].path);
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = tmo,
	    .idle_ms = tmo,
	    .on_done = on_probe_done,
	    .arg = ks,
	    .slot = kube_http_slot(KUBE_VERB_LIST, KUBE_NAMESPACES),
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
	for (int k = 0; k < ks->n_res; k++) {
		struct reflector *r = &ks->r[k];
		kube_list_discard(r);
		free(r->done);
		for (size_t i = 0; i < r->index.cap; i++)
			if (r->index.slots[i].key)
				kube_rv_free(r->index.slots[i].val);
		store_map_clear(&r->index);
		kube_lines_free(&r->lines);
		kube_body_reset(r);
		free(r->rv);
		free(r->list_rv);
		free(r->cont);
	}
	for (size_t i = 0; i < ks->n_ns_filter; i++)
		free(ks->ns_filter[i]);
	free(ks->trig);
	free(ks->labels_q);
	kubeconfig_free(&ks->conn);
	free(ks);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct kube_source *ks = h->data;

	--ks->open_handles;
	kube_source_maybe_free(ks);
}

/* Once the timers are closed and no page is left in the thread pool. */
void kube_source_maybe_free(struct kube_source *ks)
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
	ks->n_res = o->pods ? KUBE_RESOURCES : KUBE_PODS;
	kube_contact_init(&ks->contact, o->probe_ms ? o->probe_ms : DEFAULT_PROBE_MS);
	/* the streams beyond the resources watched have nothing to be in
	 * contact with */
	for (unsigned i = (unsigned)ks->n_res; i < KUBE_CONTACT_STREAMS; i++)
		kube_contact_set_ignored(&ks->contact, i, true);
	ks->o.namespaces = ks->o.labels = NULL; /* not kept: the caller's strings */
	if (o->namespaces && (rc = parse_namespaces(ks, o->namespaces)) < 0)
		goto fail;
	if (o->labels && *o->labels && !(ks->labels_q = kube_escape_dup(o->labels))) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = kube_http_new(loop, &ks->conn, &ks->http);
	if (rc < 0)
		goto fail;
	kube_source_set_limits(ks, o->qps, o->burst, o->max_inflight);
	for (int k = 0; k < ks->n_res; k++) {
		struct reflector *r = &ks->r[k];
		r->ks = ks;
		r->res = (enum kube_resource)k;
		r->d = &kube_res[k];
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
	for (int k = 0; k < ks->n_res; k++)
		kube_list_start(&ks->r[k]);
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
	for (int k = 0; k < ks->n_res; k++) {
		struct reflector *r = &ks->r[k];
		kube_http_cancel(r->req);
		r->req = NULL;
	}
	kube_http_cancel(ks->probe);
	ks->probe = NULL;
	kube_http_free(ks->http);
	ks->http = NULL;
	for (int k = 0; k < ks->n_res; k++) {
		uv_timer_stop(&ks->r[k].retry);
		ks->r[k].retry.data = ks;
		uv_close((uv_handle_t *)&ks->r[k].retry, on_handle_closed);
	}
	uv_timer_stop(&ks->probe_timer);
	uv_close((uv_handle_t *)&ks->probe_timer, on_handle_closed);
}

int kube_source_resources(const struct kube_source *ks)
{
	return ks->n_res;
}

bool kube_source_synced(const struct kube_source *ks)
{
	return ks->synced;
}

size_t kube_source_take_triggers(struct kube_source *ks, struct kube_trigger **out)
{
	size_t n = ks->n_trig;

	*out = ks->trig;
	ks->trig = NULL;
	ks->n_trig = ks->cap_trig = 0;
	if (!n) {
		free(*out);
		*out = NULL;
	}
	return n;
}

uint64_t kube_source_triggers_dropped(const struct kube_source *ks)
{
	return ks->trig_dropped;
}

bool kube_source_served(const struct kube_source *ks, enum kube_resource r)
{
	return r < KUBE_RESOURCES && !ks->r[r].absent;
}

bool kube_resource_synced(const struct kube_source *ks, enum kube_resource r)
{
	return r >= (enum kube_resource)ks->n_res || ks->r[r].synced;
}

double kube_source_seconds_since_contact(const struct kube_source *ks)
{
	int64_t age = kube_contact_age_ms(&ks->contact, clock_now_ms());

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
