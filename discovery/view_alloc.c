/* Allocation inside a view build: which Service gets which ClusterIP and
 * NodePort, which Pod without a status gets which IP, in an order that makes
 * the result independent of how the store was filled (alloc.c owns the pools). */
#include "discovery/alloc.h"

#include <errno.h>
#include <sys/socket.h>

#include "common/log.h"
#include "discovery/view_build.h"

#define ADDR_TEXT 64

static bool wants_cluster_ip(const struct model_service *s)
{
	return !s->headless && s->type != SVC_EXTERNAL_NAME && s->n_cluster_ips == 0;
}

static bool has_node_ports(const struct model_service *s)
{
	return s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER;
}

/* Whether allocation may write to a Service: it lacks a ClusterIP or a
 * NodePort, or holds one an allocator gave (recomputed). */
static bool alloc_may_change(const struct model_service *s)
{
	if (s->cluster_ip_allocated || wants_cluster_ip(s))
		return true;
	for (size_t i = 0; i < s->n_ports; i++)
		if (s->ports[i].node_port_allocated ||
		    (has_node_ports(s) && !s->ports[i].node_port))
			return true;
	return false;
}

/* A working copy of a stored Service. Values an allocator gave are not

 * claims: they are recomputed (and kept, being sticky) like any other. A
 * Service that allocation leaves alone (most) is not copied: the build holds
 * a reference on the stored, packed one and never writes to it. */
int view_clone_service(struct build *b, const struct model_service *src)
{
	struct model_object o = {.kind = KIND_SERVICE, .u.svc = (struct model_service *)src};
	struct model_object copy;

	if (src->refs && !alloc_may_change(src)) {
		model_object_ref(&o);
		b->clones[b->n_clones++] = o.u.svc;
		return 0;
	}
	int ret = model_object_clone(&o, &copy);
	if (ret)
		return ret;
	struct model_service *s = copy.u.svc;
	b->clones[b->n_clones++] = s;
	if (s->cluster_ip_allocated) {
		s->n_cluster_ips = 0;
		s->cluster_ip_allocated = false;
	}
	for (size_t i = 0; i < s->n_ports; i++) {
		if (s->ports[i].node_port_allocated) {
			s->ports[i].node_port = 0;
			s->ports[i].node_port_allocated = false;
		}
	}
	return 0;
}

struct ip_claim {
	struct net_addr addr;
	size_t svc;
};

static int cmp_ip_claim(const void *x, const void *y)
{
	const struct ip_claim *a = x, *b = y;
	int c = net_addr_cmp(&a->addr, &b->addr);
	if (c)
		return c;
	return a->svc < b->svc ? -1 : a->svc > b->svc;
}

/* Sticky addresses first, all of them, so that a new Service earlier in sort
 * order never takes the address a later one already holds. */
static int assign_cluster_ips(struct build *b)
{
	struct alloc_pool *p = &b->alloc->svc;
	char text[ADDR_TEXT];
	uint32_t off;
	int ret = 0;

	for (size_t i = 0; i < b->n_svcs; i++) {
		struct model_service *s = b->svcs[i];
		if (!wants_cluster_ip(s))
			continue;
		view_key_obj(b, "svc", s->ns, s->name);
		if (b->key.oom) {
			ret = -ENOMEM;
			goto out;
		}
		if (alloc_pool_keep(p, b->key.p, b->key.len, b->alloc->gen, &off)) {
			alloc_pool_offset_addr(p, off, &s->cluster_ips[0]);
			s->n_cluster_ips = 1;
			s->cluster_ip_allocated = true;
		}
	}
	for (size_t i = 0; i < b->n_svcs; i++) {
		struct model_service *s = b->svcs[i];
		if (!wants_cluster_ip(s))
			continue;
		view_key_obj(b, "svc", s->ns, s->name);
		if (b->key.oom) {
			ret = -ENOMEM;
			goto out;
		}
		ret = alloc_pool_take(p, b->key.p, b->key.len, b->alloc->gen, &off);
		if (ret == -ENOSPC) {
			ret = 0;
			p->starved = true;
			view_key_obj(b, "svc-full", s->ns, s->name);
			if (view_note_once(b))
				log_warn("Service %s/%s: no spec.clusterIP and the %s is full; it "
					 "gets no ClusterIP",
					 s->ns, s->name, p->what);
			continue;
		}
		if (ret)
			goto out;
		alloc_pool_offset_addr(p, off, &s->cluster_ips[0]);
		s->n_cluster_ips = 1;
		s->cluster_ip_allocated = true;
		net_addr_format(&s->cluster_ips[0], text, sizeof(text));
		log_info("Service %s/%s: no spec.clusterIP, allocated %s", s->ns, s->name, text);
	}
out:
	return ret;
}

int view_alloc_cluster_ips(struct build *b)
{
	struct alloc_pool *p = &b->alloc->svc;
	struct ip_claim *claims = NULL;
	size_t n_claims = 0;
	char text[ADDR_TEXT];
	uint32_t off;
	int ret = 0;

	alloc_pool_reset(p);
	claims = calloc(b->n_svcs * 2 + 1, sizeof(*claims));
	if (!claims)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++) {
			claims[n_claims++] = (struct ip_claim){.addr = s->cluster_ips[j], .svc = i};
			if (alloc_pool_addr_offset(p, &s->cluster_ips[j], &off))
				alloc_pool_claim(p, off);
		}
	}
	qsort(claims, n_claims, sizeof(*claims), cmp_ip_claim);
	for (size_t i = 1; i < n_claims; i++) {
		if (net_addr_cmp(&claims[i].addr, &claims[i - 1].addr) != 0)
			continue;
		const struct model_service *first = b->svcs[claims[i - 1].svc];
		const struct model_service *s = b->svcs[claims[i].svc];
		view_key_obj(b, "dup-ip", s->ns, s->name);
		kb_put(&b->key, claims[i].addr.bytes, sizeof(claims[i].addr.bytes));
		if (!view_note_once(b))
			continue;
		net_addr_format(&claims[i].addr, text, sizeof(text));
		log_warn("Service %s/%s: clusterIP %s is also claimed by Service %s/%s; both are "
			 "served",
			 s->ns, s->name, text, first->ns, first->name);
	}

	ret = assign_cluster_ips(b);
	free(claims);
	return ret;
}

struct port_claim {
	uint16_t port;
	size_t svc;
};

static int cmp_port_claim(const void *x, const void *y)
{
	const struct port_claim *a = x, *b = y;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return a->svc < b->svc ? -1 : a->svc > b->svc;
}

/* Ports of one Service that share a number (TCP and UDP 53) share a NodePort,
 * as the API server gives them. */
static uint16_t sibling_node_port(const struct model_service *s, size_t i)
{
	for (size_t j = 0; j < s->n_ports; j++)
		if (j != i && s->ports[j].port == s->ports[i].port && s->ports[j].node_port)
			return s->ports[j].node_port;
	return 0;
}

static void key_node_port(struct build *b, const struct model_service *s, size_t i)
{
	/* Keyed by the port number, not its index, so that editing the port
	 * list does not move the others. */
	view_key_obj(b, "node", s->ns, s->name);
	kb_u32(&b->key, s->ports[i].port);
}

static int assign_node_ports(struct build *b)
{
	struct alloc_pool *p = &b->alloc->node;
	uint32_t off;
	int ret = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->n_svcs; i++) {
			struct model_service *s = b->svcs[i];
			if (!has_node_ports(s))
				continue;
			for (size_t j = 0; j < s->n_ports; j++) {
				struct model_svc_port *sp = &s->ports[j];
				if (sp->node_port)
					continue;
				uint16_t shared = sibling_node_port(s, j);
				if (shared) {
					sp->node_port = shared;
					sp->node_port_allocated = true;
					continue;
				}
				key_node_port(b, s, j);
				if (b->key.oom) {
					ret = -ENOMEM;
					goto out;
				}
				if (pass == 0) {
					if (!alloc_pool_keep(p, b->key.p, b->key.len, b->alloc->gen,
							     &off))
						continue;
				} else {
					ret = alloc_pool_take(p, b->key.p, b->key.len,
							      b->alloc->gen, &off);
					if (ret == -ENOSPC) {
						ret = 0;
						p->starved = true;
						view_key_obj(b, "node-full", s->ns, s->name);
						kb_u32(&b->key, sp->port);
						if (view_note_once(b))
							log_warn(
							    "Service %s/%s port %u: no nodePort "
							    "and the NodePort range is full",
							    s->ns, s->name, sp->port);
						continue;
					}
					if (ret)
						goto out;
					log_info(
					    "Service %s/%s port %u/%s: no nodePort, allocated %u",
					    s->ns, s->name, sp->port, model_proto_name(sp->proto),
					    off + p->first_value);
				}
				sp->node_port = (uint16_t)(off + p->first_value);
				sp->node_port_allocated = true;
			}
		}
	}
out:
	return ret;
}

int view_alloc_node_ports(struct build *b)
{
	struct alloc_pool *p = &b->alloc->node;
	struct port_claim *claims = NULL;
	size_t n_claims = 0, total = 0;
	int ret = 0;

	alloc_pool_reset(p);
	for (size_t i = 0; i < b->n_svcs; i++)
		total += has_node_ports(b->svcs[i]) ? b->svcs[i]->n_ports : 0;
	claims = calloc(total + 1, sizeof(*claims));
	if (!claims)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		if (!has_node_ports(s))
			continue;
		for (size_t j = 0; j < s->n_ports; j++) {
			uint16_t np = s->ports[j].node_port;
			if (!np)
				continue;
			claims[n_claims++] = (struct port_claim){.port = np, .svc = i};
			if (alloc_pool_port_in(p, np))
				alloc_pool_claim(p, np - p->first_value);
		}
	}
	qsort(claims, n_claims, sizeof(*claims), cmp_port_claim);
	for (size_t i = 1; i < n_claims; i++) {
		if (claims[i].port != claims[i - 1].port || claims[i].svc == claims[i - 1].svc)
			continue;
		const struct model_service *first = b->svcs[claims[i - 1].svc];
		const struct model_service *s = b->svcs[claims[i].svc];
		view_key_obj(b, "dup-node", s->ns, s->name);
		kb_u32(&b->key, claims[i].port);
		if (view_note_once(b))
			log_warn(
			    "Service %s/%s: nodePort %u is also claimed by Service %s/%s; both "
			    "are served",
			    s->ns, s->name, claims[i].port, first->ns, first->name);
	}
	ret = assign_node_ports(b);
	free(claims);
	return ret;
}

/* Pods without a status get an address from the pod CIDR, sticky ones first;
 * addresses that Pods report are taken as they are. b->pods is sorted. */
int view_alloc_pod_ips(struct build *b)
{
	struct alloc_pool *p = &b->alloc->pod;
	char text[ADDR_TEXT];
	uint32_t off;
	int ret;

	alloc_pool_reset(p);
	for (size_t i = 0; i < b->n_pods; i++)
		for (size_t j = 0; j < b->pods[i].n_ips; j++)
			if (alloc_pool_addr_offset(p, &b->pods[i].ips[j], &off))
				alloc_pool_set(p, off); /* hostNetwork Pods share addresses */

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->n_pods; i++) {
			struct pod_ref *r = &b->pods[i];
			const struct model_pod *pod = r->pod;
			if (pod->has_status || r->n_ips)
				continue;
			view_key_obj(b, "pod", pod->ns, pod->name);
			if (b->key.oom)
				return -ENOMEM;
			if (pass == 0) {
				if (!alloc_pool_keep(p, b->key.p, b->key.len, b->alloc->gen, &off))
					continue;
			} else {
				ret = alloc_pool_take(p, b->key.p, b->key.len, b->alloc->gen, &off);
				if (ret == -ENOSPC) {
					p->starved = true;
					view_key_obj(b, "pod-full", pod->ns, pod->name);
					if (view_note_once(b))
						log_warn(
						    "Pod %s/%s has no status and the %s is full; "
						    "it gets no IP",
						    pod->ns, pod->name, p->what);
					continue;
				}
				if (ret)
					return ret;
			}
			alloc_pool_offset_addr(p, off, &r->ips[0]);
			r->n_ips = 1;
			if (pass == 1) {
				net_addr_format(&r->ips[0], text, sizeof(text));
				log_info("Pod %s/%s has no status: taken as running and ready, "
					 "allocated %s",
					 pod->ns, pod->name, text);
			}
		}
	}
	return 0;
}

int view_alloc_release(struct build *b, const struct model_service *s)
{
	struct alloc_pool *p = &b->alloc->svc, *np = &b->alloc->node;
	uint32_t off;

	for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++)
		if (alloc_pool_addr_offset(p, &s->cluster_ips[j], &off) &&
		    alloc_pool_release(p, off, s->cluster_ip_allocated) < 0)
			return -EAGAIN;
	if (!has_node_ports(s))
		return 0;
	for (size_t j = 0; j < s->n_ports; j++) {
		uint16_t v = s->ports[j].node_port;
		if (alloc_pool_port_in(np, v) &&
		    alloc_pool_release(np, v - np->first_value, s->ports[j].node_port_allocated) <
			0)
			return -EAGAIN;
	}
	return 0;
}

int view_alloc_claim(struct build *b, const struct model_service *s)
{
	struct alloc_pool *p = &b->alloc->svc, *np = &b->alloc->node;
	char text[ADDR_TEXT];
	uint32_t off;

	for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++) {
		if (!alloc_pool_addr_offset(p, &s->cluster_ips[j], &off))
			continue;
		if ((p->claims[off] == 0 && alloc_pool_test(p, off)) || p->claims[off] == UINT8_MAX)
			return -EAGAIN;
		if (p->claims[off]) {
			view_key_obj(b, "dup-ip", s->ns, s->name);
			kb_put(&b->key, s->cluster_ips[j].bytes, sizeof(s->cluster_ips[j].bytes));
			net_addr_format(&s->cluster_ips[j], text, sizeof(text));
			if (view_note_once(b))
				log_warn("Service %s/%s: clusterIP %s is also claimed by another "
					 "Service; both are served",
					 s->ns, s->name, text);
		}
		alloc_pool_claim(p, off);
	}
	if (!has_node_ports(s))
		return 0;
	for (size_t j = 0; j < s->n_ports; j++) {
		uint16_t v = s->ports[j].node_port;
		if (!alloc_pool_port_in(np, v))
			continue;
		off = v - np->first_value;
		if ((np->claims[off] == 0 && alloc_pool_test(np, off)) ||
		    np->claims[off] == UINT8_MAX)
			return -EAGAIN;
		alloc_pool_claim(np, off);
	}
	return 0;
}

/* Sticky entries of an old version that the new one did not use go, as a
 * full build's sweep would drop them. */
void view_alloc_forget(struct build *b, const struct model_service *s)
{
	struct store_map_slot *slot;

	if (s->cluster_ip_allocated) {
		view_key_obj(b, "svc", s->ns, s->name);
		slot = store_map_find(&b->alloc->svc.sticky, b->key.p, b->key.len);
		if (slot && slot->gen != b->alloc->gen)
			store_map_remove(&b->alloc->svc.sticky, b->key.p, b->key.len);
	}
	for (size_t j = 0; j < s->n_ports && has_node_ports(s); j++) {
		if (!s->ports[j].node_port_allocated)
			continue;
		key_node_port(b, s, j);
		slot = store_map_find(&b->alloc->node.sticky, b->key.p, b->key.len);
		if (slot && slot->gen != b->alloc->gen)
			store_map_remove(&b->alloc->node.sticky, b->key.p, b->key.len);
	}
}

int view_alloc_assign(struct build *b)
{
	int ret = assign_cluster_ips(b);

	return ret ? ret : assign_node_ports(b);
}

bool view_alloc_pod_sticky(struct build *b, const struct model_pod *pod, struct net_addr *out)
{
	struct store_map_slot *slot;

	view_key_obj(b, "pod", pod->ns, pod->name);
	slot = store_map_find(&b->alloc->pod.sticky, b->key.p, b->key.len);
	if (!slot)
		return false;
	alloc_pool_offset_addr(&b->alloc->pod, (uint32_t)slot->val, out);
	return true;
}
