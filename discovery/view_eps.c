/* Each Service's endpoints, as the EndpointSlice controller would leave them:
 * from its EndpointSlices where it has some, else from the Pods its selector
 * matches, merged by address and packed with the Service (view_pack.c). */
#include "discovery/view_build.h"

#include <errno.h>

#include "common/arena.h"
#include "common/log.h"

/* Endpoint target ports wait in a region (common/arena.h), emptied once each
 * Service is packed. */
#define SCRATCH_CHUNK (256u << 10)

/* ---- selectors and ports ------------------------------------------------- */

bool model_selector_matches(const struct model_labels *selector, const struct model_labels *labels)
{
	if (selector->n == 0)
		return false;
	for (size_t i = 0; i < selector->n; i++) {
		const struct model_label *want = &selector->items[i];
		bool found = false;
		for (size_t j = 0; j < labels->n && !found; j++)
			found = streq0(labels->items[j].key, want->key) &&
				streq0(labels->items[j].value, want->value);
		if (!found)
			return false;
	}
	return true;
}

uint16_t model_resolve_target_port(const struct model_svc_port *sp, const struct model_pod *pod)
{
	if (sp->target_name && sp->target_name[0]) {
		/* As the controller does: a named port must exist on the Pod with
		 * the Service port's protocol. */
		for (size_t i = 0; i < pod->n_ports; i++) {
			const struct model_container_port *cp = &pod->ports[i];
			if (cp->name && strcmp(cp->name, sp->target_name) == 0 &&
			    cp->proto == sp->proto)
				return cp->port;
		}
		return 0;
	}
	return sp->target_num ? sp->target_num : sp->port;
}

/* ---- the endpoints of one Service ---------------------------------------- */

bool view_derives_from_pods(const struct build *b, size_t i)
{
	const struct model_service *s = b->svcs[i];
	return s->type != SVC_EXTERNAL_NAME && b->slice_lo[i] == b->slice_hi[i] &&
	       s->has_selector && s->selector.n > 0;
}

static void key_label(struct build *b, const char *ns, const struct model_label *l)
{
	b->key.len = 0;
	kb_field(&b->key, ns);
	kb_field(&b->key, l->key);
	kb_field(&b->key, l->value);
}

static int list_push(struct idx_list *l, size_t v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		size_t *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = v;
	return 0;
}

/* Indexes Pods by the (ns, key, value) pairs that some selector uses, so that
 * a Service looks only at the Pods carrying its rarest pair. */
int view_index_pods(struct build *b)
{
	size_t n_pairs = 0;
	int ret;

	for (size_t i = 0; i < b->n_svcs; i++)
		if (view_derives_from_pods(b, i))
			n_pairs += b->svcs[i]->selector.n;
	if (n_pairs == 0)
		return 0;
	b->lists = calloc(n_pairs, sizeof(*b->lists));
	if (!b->lists)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		if (!view_derives_from_pods(b, i))
			continue;
		for (size_t j = 0; j < s->selector.n; j++) {
			struct store_map_slot *slot;
			bool created;
			key_label(b, s->ns, &s->selector.items[j]);
			if (b->key.oom)
				return -ENOMEM;
			ret =
			    store_map_insert(&b->label_idx, b->key.p, b->key.len, &slot, &created);
			if (ret)
				return ret;
			if (created)
				slot->val = b->n_lists++;
		}
	}
	for (size_t i = 0; i < b->n_pods; i++) {
		const struct model_pod *pod = b->pods[i].pod;
		if (b->pods[i].n_ips == 0 || pod->terminal)
			continue;
		for (size_t j = 0; j < pod->labels.n; j++) {
			key_label(b, pod->ns, &pod->labels.items[j]);
			if (b->key.oom)
				return -ENOMEM;
			struct store_map_slot *slot =
			    store_map_find(&b->label_idx, b->key.p, b->key.len);
			if (slot && (ret = list_push(&b->lists[slot->val], i)))
				return ret;
		}
	}
	return 0;
}

static struct view_endpoint *ep_push(struct build *b)
{
	if (b->n_eps == b->cap_eps) {
		size_t cap = b->cap_eps ? b->cap_eps * 2 : 64;
		struct ep_tmp *e = realloc(b->eps, cap * sizeof(*e));
		if (!e) {
			b->oom = true;
			return NULL;
		}
		b->eps = e;
		b->cap_eps = cap;
	}
	struct ep_tmp *t = &b->eps[b->n_eps];
	memset(t, 0, sizeof(*t));
	t->seq = b->n_eps++;
	return &t->ep;
}

void view_held_push(struct build *b, enum model_kind kind, const void *obj)
{
	if (b->n_held == b->cap_held) {
		size_t cap = b->cap_held ? b->cap_held * 2 : 16;
		struct model_object *h = realloc(b->held, cap * sizeof(*h));
		if (!h) {
			b->oom = true;
			return;
		}
		b->held = h;
		b->cap_held = cap;
	}
	b->held[b->n_held++] = (struct model_object){.kind = kind, .u.svc = (void *)obj};
}

static uint16_t *ports_alloc(struct build *b, size_t n)
{
	if (!b->scratch && !(b->scratch = arena_new_sized(SCRATCH_CHUNK, SCRATCH_CHUNK))) {
		b->oom = true;
		return NULL;
	}
	uint16_t *tp =
	    arena_alloc_aligned(b->scratch, (n ? n : 1) * sizeof(*tp), _Alignof(uint16_t));
	if (!tp)
		b->oom = true;
	else
		memset(tp, 0, (n ? n : 1) * sizeof(*tp));
	return tp;
}

static void eps_from_slices(struct build *b, size_t si, uint16_t *slice_tp)
{
	const struct model_service *s = b->svcs[si];
	bool *oom = &b->oom;

	/* Endpoints point at the store's strings; the block holds the slices. */
	for (size_t k = b->slice_lo[si]; k < b->slice_hi[si]; k++) {
		const struct model_slice *sl = b->slices[k];
		size_t n_before = b->n_eps;
		for (size_t i = 0; i < s->n_ports; i++) {
			slice_tp[i] = 0;
			for (size_t j = 0; j < sl->n_ports; j++)
				if (streq0(sl->ports[j].name, s->ports[i].name) &&
				    sl->ports[j].proto == s->ports[i].proto)
					slice_tp[i] = sl->ports[j].port;
		}
		for (size_t e = 0; e < sl->n_endpoints; e++) {
			const struct model_endpoint *me = &sl->endpoints[e];
			for (size_t a = 0; a < me->n_addrs; a++) {
				if (me->addrs[a].family != sl->address_type)
					continue;
				struct view_endpoint *ep = ep_push(b);
				if (!ep)
					return;
				ep->addr = me->addrs[a];
				ep->hostname = me->hostname;
				ep->node_name = me->node_name;
				ep->pod_name = me->pod_name;
				ep->zone = me->zone;
				ep->for_zones = me->for_zones;
				ep->cluster = sl->cluster;
				ep->ready = me->ready;
				ep->serving = me->serving;
				ep->terminating = me->terminating;
				ep->target_ports = ports_alloc(b, s->n_ports);
				if (*oom)
					return;
				memcpy(ep->target_ports, slice_tp, s->n_ports * sizeof(*slice_tp));
			}
		}
		if (b->n_eps > n_before)
			view_held_push(b, KIND_SLICE, sl);
	}
}

static bool family_served(const struct model_service *s, uint8_t family)
{
	/* A single-stack Service gets endpoints of its own family only; one
	 * without a ClusterIP (headless) takes every address. */
	if (s->n_cluster_ips == 0)
		return true;
	for (size_t i = 0; i < s->n_cluster_ips && i < 2; i++)
		if (s->cluster_ips[i].family == family)
			return true;
	return false;
}

static uint16_t *pod_target_ports(struct build *b, const struct model_service *s,
				  const struct model_pod *pod)
{
	uint16_t *tp = ports_alloc(b, s->n_ports);

	if (!tp)
		return NULL;
	for (size_t i = 0; i < s->n_ports; i++) {
		const struct model_svc_port *sp = &s->ports[i];
		tp[i] = model_resolve_target_port(sp, pod);
		if (tp[i] || !sp->target_name)
			continue;
		view_key_obj(b, "no-port", s->ns, s->name);
		kb_field(&b->key, pod->name);
		kb_u32(&b->key, (uint32_t)i);
		if (view_note_once(b))
			log_warn("Service %s/%s port %u: Pod %s/%s has no %s container port named "
				 "%s; it does not serve this port",
				 s->ns, s->name, sp->port, pod->ns, pod->name,
				 model_proto_name(sp->proto), sp->target_name);
	}
	return tp;
}

static void eps_from_pod(struct build *b, const struct model_service *s, const struct pod_ref *r)
{
	const struct model_pod *pod = r->pod;
	bool serving = pod->has_status ? pod->ready : true;
	uint16_t *tp = NULL;
	size_t n_before = b->n_eps;

	for (size_t a = 0; a < r->n_ips && a < 2; a++) {
		if (!family_served(s, r->ips[a].family))
			continue;
		struct view_endpoint *ep = ep_push(b);
		if (!ep)
			return;
		if (!tp) {
			tp = pod_target_ports(b, s, pod);
			ep->target_ports = tp;
		} else {
			/* Each endpoint owns its array: merging may change it. */
			ep->target_ports = ports_alloc(b, s->n_ports);
			if (ep->target_ports)
				memcpy(ep->target_ports, tp, s->n_ports * sizeof(*tp));
		}
		if (!ep->target_ports)
			return;
		ep->addr = r->ips[a];
		/* The controller names a Pod's hostname only for the Service its
		 * subdomain names. */
		if (pod->hostname && streq0(pod->subdomain, s->name))
			ep->hostname = pod->hostname;
		ep->node_name = pod->node_name;
		ep->pod_name = pod->name;
		/* As the EndpointSlice controller: serving is the Pod's readiness,
		 * ready also requires that it is not terminating. */
		ep->serving = serving;
		ep->terminating = pod->terminating;
		ep->ready = serving && !pod->terminating;
	}
	if (b->n_eps > n_before && !b->oom)
		view_held_push(b, KIND_POD, pod);
}

static void eps_from_pods(struct build *b, size_t si)
{
	const struct model_service *s = b->svcs[si];
	const struct idx_list *best = NULL;

	for (size_t j = 0; j < s->selector.n; j++) {
		key_label(b, s->ns, &s->selector.items[j]);
		if (b->key.oom) {
			b->oom = true;
			return;
		}
		struct store_map_slot *slot = store_map_find(&b->label_idx, b->key.p, b->key.len);
		if (!slot)
			return;
		const struct idx_list *l = &b->lists[slot->val];
		if (!best || l->n < best->n)
			best = l;
	}
	if (!best)
		return;
	for (size_t k = 0; k < best->n && !b->oom; k++) {
		const struct pod_ref *r = &b->pods[best->v[k]];
		if (model_selector_matches(&s->selector, &r->pod->labels))
			eps_from_pod(b, s, r);
	}
}

static int cmp_ep(const void *x, const void *y)
{
	const struct ep_tmp *a = x, *b = y;
	int c = net_addr_cmp(&a->ep.addr, &b->ep.addr);
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sorts the scratch endpoints, merges those sharing an address (the same Pod
 * in an old and a new slice during a rollout) and packs the Service. */
static int eps_finish(struct build *b, const struct model_service *s, bool from_slices,
		      struct view_service *vs)
{
	size_t n = 0;

	if (b->n_eps)
		qsort(b->eps, b->n_eps, sizeof(*b->eps), cmp_ep);
	for (size_t i = 0; i < b->n_eps; i++) {
		const struct view_endpoint *e = &b->eps[i].ep;
		struct view_endpoint *last = n ? &b->eps[n - 1].ep : NULL;
		if (!last || net_addr_cmp(&last->addr, &e->addr) != 0) {
			if (n != i)
				b->eps[n].ep = *e;
			n++;
			continue;
		}
		for (size_t k = 0; k < s->n_ports; k++)
			if (!last->target_ports[k])
				last->target_ports[k] = e->target_ports[k];
		last->ready = last->ready || e->ready;
		last->serving = last->serving || e->serving;
		last->terminating = last->terminating && e->terminating;
		if (!last->hostname)
			last->hostname = e->hostname;
		if (!last->node_name)
			last->node_name = e->node_name;
		if (!last->pod_name)
			last->pod_name = e->pod_name;
		if (!last->cluster)
			last->cluster = e->cluster;
		if (!last->zone)
			last->zone = e->zone;
		if (!last->for_zones)
			last->for_zones = e->for_zones;
	}
	return view_pack_service(b, s, from_slices, b->eps, n, vs);
}

/* Computes and packs b->svcs[i] into out[i]; *n_done counts the packed ones. */
int view_build_endpoints(struct build *b, struct view_service *out, size_t *n_done)
{
	uint16_t *slice_tp = NULL;
	size_t max_ports = 1;
	int ret = 0;

	for (size_t i = 0; i < b->n_svcs; i++)
		if (b->svcs[i]->n_ports > max_ports)
			max_ports = b->svcs[i]->n_ports;
	slice_tp = calloc(max_ports, sizeof(*slice_tp));
	if (!slice_tp)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		bool from_slices = false;
		b->n_eps = 0;
		b->n_held = 0;
		if (s->type == SVC_EXTERNAL_NAME) {
			/* A DNS alias: nothing behind it to reach. */
		} else if (b->slice_lo[i] < b->slice_hi[i]) {
			from_slices = true;
			eps_from_slices(b, i, slice_tp);
		} else if (view_derives_from_pods(b, i)) {
			eps_from_pods(b, i);
			view_key_obj(b, "derived", s->ns, s->name);
			if (log_get_level() >= LOG_DEBUG && view_note_once(b))
				log_debug("Service %s/%s: no EndpointSlice, endpoints derived from "
					  "Pods matching its selector",
					  s->ns, s->name);
		}
		if (b->oom) {
			ret = -ENOMEM;
			goto out;
		}
		ret = eps_finish(b, s, from_slices, &out[i]);
		if (ret)
			goto out;
		(*n_done)++;
		/* Scratch ports are dead once packed; a large Service must not
		 * make the next ones pile up. */
		if (b->scratch)
			arena_reset(b->scratch, SCRATCH_CHUNK);
	}
out:
	free(slice_tp);
	arena_free(b->scratch);
	b->scratch = NULL;
	return ret;
}
