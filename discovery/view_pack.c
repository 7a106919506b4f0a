/* Packing a Service's part of the view: the Service (shared with the store
 * when allocation left it as it is), its endpoints and their target ports in
 * one reference-counted block that every view in which it did not change shares. */
#include "discovery/view_build.h"

#include <errno.h>

#include "discovery/pack.h"
#include "discovery/store_iter.h"

/* A Service's block is laid out in two passes over the same code: one that
 * only measures (base NULL), one that writes, so that the two cannot differ.
 * The block: header, held objects, the Service copy when the stored one
 * cannot be shared (with its arrays and strings), endpoints, target ports.
 * Endpoint strings are the store's, kept alive by the held objects. */
static struct view_endpoint *pack_pass(struct packer *p, const struct model_service *s,
				       const struct model_service *shared,
				       const struct model_object *held, size_t n_held,
				       const struct ep_tmp *eps, size_t n_eps, struct vblock **out,
				       const struct model_service **svc_out)
{
	struct vblock *blk = pk_take(p, sizeof(*blk) + n_held * sizeof(*held), 16);
	struct model_service *copy = shared ? NULL : pk_take(p, sizeof(*copy), 16);
	struct model_svc_port *ports = NULL;
	struct model_label *labels = NULL;
	struct view_endpoint *veps = pk_take(p, n_eps * sizeof(*veps), 8);
	size_t ntp = s->n_ports ? s->n_ports : 1;
	uint16_t *tp = NULL;
	char *str;

	*out = blk;
	*svc_out = shared ? shared : copy;
	if (blk) {
		blk->refs = 1;
		blk->n_held = n_held;
		if (n_held)
			memcpy(blk->held, held, n_held * sizeof(*held));
	}
	for (size_t i = 0; i < n_eps; i++) {
		const struct view_endpoint *e = &eps[i].ep;
		/* Endpoints of one slice usually serve the same ports. */
		bool same_tp = i > 0 && memcmp(e->target_ports, eps[i - 1].ep.target_ports,
					       ntp * sizeof(*tp)) == 0;
		if (!same_tp) {
			tp = pk_take(p, ntp * sizeof(*tp), 2);
			if (tp)
				memcpy(tp, e->target_ports, ntp * sizeof(*tp));
		}
		if (veps) {
			veps[i] = *e;
			veps[i].target_ports = tp;
		}
	}
	if (shared)
		return veps;
	ports = pk_take(p, s->n_ports * sizeof(*ports), 8);
	labels = pk_take(p, s->selector.n * sizeof(*labels), 8);
	if (copy) {
		*copy = *s;
		copy->refs = 0;
		copy->ports = s->n_ports ? ports : NULL;
		copy->selector.items = s->selector.n ? labels : NULL;
	}
	str = pk_str(p, s->ns);
	if (copy)
		copy->ns = str;
	str = pk_str(p, s->name);
	if (copy)
		copy->name = str;
	str = pk_str(p, s->external_name);
	if (copy)
		copy->external_name = str;
	for (size_t i = 0; i < s->n_ports; i++) {
		if (copy)
			ports[i] = s->ports[i];
		str = pk_str(p, s->ports[i].name);
		if (copy)
			ports[i].name = str;
		str = pk_str(p, s->ports[i].target_name);
		if (copy)
			ports[i].target_name = str;
	}
	for (size_t i = 0; i < s->selector.n; i++) {
		str = pk_str(p, s->selector.items[i].key);
		if (copy)
			labels[i].key = str;
		str = pk_str(p, s->selector.items[i].value);
		if (copy)
			labels[i].value = str;
	}
	return veps;
}

/* Packs the Service with its endpoints into one block. The stored Service is
 * shared (by reference) when allocation left it as it is, which it mostly
 * does. Takes references on b->held for the block. */
int view_pack_service(struct build *b, const struct model_service *s, bool from_slices,
		      const struct ep_tmp *eps, size_t n_eps, struct view_service *vs)
{
	const struct model_service *stored = store_service_find(b->st, s->ns, s->name);
	const struct model_service *shared = stored && view_svc_same(stored, s) ? stored : NULL;
	const struct model_service *svc;
	struct packer p = {0};
	struct vblock *blk;

	if (shared)
		view_held_push(b, KIND_SERVICE, shared);
	if (b->oom)
		return -ENOMEM;
	pack_pass(&p, s, shared, b->held, b->n_held, eps, n_eps, &blk, &svc);
	p.base = malloc(p.off);
	if (!p.base)
		return -ENOMEM;
	p.off = 0;
	struct view_endpoint *veps =
	    pack_pass(&p, s, shared, b->held, b->n_held, eps, n_eps, &blk, &svc);
	for (size_t i = 0; i < b->n_held; i++)
		model_object_ref(&b->held[i]);
	*vs = (struct view_service){.svc = svc,
				    .eps = n_eps ? veps : NULL,
				    .n_eps = n_eps,
				    .from_slices = from_slices,
				    .priv = blk};
	return 0;
}

void view_blk_unref(const struct view_service *vs)
{
	struct vblock *blk = view_blk_of(vs);
	if (--blk->refs)
		return;
	for (size_t i = 0; i < blk->n_held; i++)
		model_object_free(&blk->held[i]);
	free(blk);
}

struct nsblock *view_nsblock_new(const char *const *names, size_t n)
{
	size_t size = sizeof(struct nsblock) + n * sizeof(char *);
	for (size_t i = 0; i < n; i++)
		size += strlen(names[i]) + 1;
	struct nsblock *nb = malloc(size);
	if (!nb)
		return NULL;
	char *str = (char *)&nb->names[n];
	nb->refs = 1;
	nb->n = n;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]) + 1;
		memcpy(str, names[i], len);
		nb->names[i] = str;
		str += len;
	}
	return nb;
}

void view_nsblock_unref(struct nsblock *nb)
{
	if (nb && --nb->refs == 0)
		free(nb);
}

bool view_svc_same(const struct model_service *a, const struct model_service *b)
{
	if (!streq0(a->ns, b->ns) || !streq0(a->name, b->name) || a->type != b->type ||
	    a->headless != b->headless || a->n_cluster_ips != b->n_cluster_ips ||
	    a->cluster_ip_allocated != b->cluster_ip_allocated ||
	    (a->external_name == NULL) != (b->external_name == NULL) ||
	    !streq0(a->external_name, b->external_name) || a->n_ports != b->n_ports ||
	    a->has_selector != b->has_selector || a->selector.n != b->selector.n ||
	    a->publish_not_ready != b->publish_not_ready ||
	    a->affinity_client_ip != b->affinity_client_ip ||
	    a->affinity_timeout != b->affinity_timeout || a->imported != b->imported ||
	    a->n_ext_ips != b->n_ext_ips || a->ext_policy_local != b->ext_policy_local ||
	    a->int_policy_local != b->int_policy_local)
		return false;
	for (size_t i = 0; i < a->n_ext_ips; i++)
		if (net_addr_cmp(&a->ext_ips[i], &b->ext_ips[i]) != 0)
			return false;
	for (size_t i = 0; i < a->n_cluster_ips && i < 2; i++)
		if (net_addr_cmp(&a->cluster_ips[i], &b->cluster_ips[i]) != 0)
			return false;
	for (size_t i = 0; i < a->n_ports; i++) {
		const struct model_svc_port *p = &a->ports[i], *q = &b->ports[i];
		if (p->port != q->port || p->proto != q->proto || p->target_num != q->target_num ||
		    p->node_port != q->node_port ||
		    p->node_port_allocated != q->node_port_allocated || !streq0(p->name, q->name) ||
		    (p->target_name == NULL) != (q->target_name == NULL) ||
		    !streq0(p->target_name, q->target_name))
			return false;
	}
	for (size_t i = 0; i < a->selector.n; i++)
		if (!streq0(a->selector.items[i].key, b->selector.items[i].key) ||
		    !streq0(a->selector.items[i].value, b->selector.items[i].value))
			return false;
	return true;
}
