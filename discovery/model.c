/* Model objects: freeing, deep copies and the small value parsers every source
 * shares (addresses, CIDRs, protocols). See model.h. */
#include "discovery/model.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "discovery/pack.h"

static void labels_free(struct model_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* A packed object is one block: the last reference frees it whole. Returns
 * true when the object was packed (and so is dealt with). */
static bool packed_unref(void *obj, uint32_t *refs)
{
	if (*refs == 0)
		return false;
	if (--*refs == 0)
		free(obj);
	return true;
}

void model_service_free(struct model_service *s)
{
	if (!s || packed_unref(s, &s->refs))
		return;
	free(s->ns);
	free(s->name);
	free(s->external_name);
	for (size_t i = 0; i < s->n_ports; i++) {
		free(s->ports[i].name);
		free(s->ports[i].target_name);
	}
	free(s->ports);
	labels_free(&s->selector);
	free(s);
}

static void endpoint_clear(struct model_endpoint *e)
{
	free(e->addrs);
	free(e->hostname);
	free(e->node_name);
	free(e->pod_name);
	free(e->zone);
	free(e->for_zones);
}

void model_slice_free(struct model_slice *s)
{
	if (!s || packed_unref(s, &s->refs))
		return;
	free(s->ns);
	free(s->name);
	free(s->service);
	free(s->mc_service);
	free(s->cluster);
	for (size_t i = 0; i < s->n_ports; i++)
		free(s->ports[i].name);
	free(s->ports);
	for (size_t i = 0; i < s->n_endpoints; i++)
		endpoint_clear(&s->endpoints[i]);
	free(s->endpoints);
	free(s);
}

void model_pod_free(struct model_pod *p)
{
	if (!p || packed_unref(p, &p->refs))
		return;
	free(p->ns);
	free(p->name);
	labels_free(&p->labels);
	for (size_t i = 0; i < p->n_ports; i++)
		free(p->ports[i].name);
	free(p->ports);
	free(p->hostname);
	free(p->subdomain);
	free(p->node_name);
	free(p);
}

static void model_namespace_free(struct model_namespace *n)
{
	if (!n || packed_unref(n, &n->refs))
		return;
	free(n->name);
	labels_free(&n->labels);
	free(n);
}

static void model_service_cidr_free(struct model_service_cidr *c)
{
	if (!c || packed_unref(c, &c->refs))
		return;
	free(c->name);
	free(c);
}

void model_object_free(struct model_object *o)
{
	if (!o)
		return;
	switch (o->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		model_service_free(o->u.svc);
		break;
	case KIND_SLICE:
		model_slice_free(o->u.slice);
		break;
	case KIND_POD:
		model_pod_free(o->u.pod);
		break;
	case KIND_NAMESPACE:
		model_namespace_free(o->u.ns);
		break;
	case KIND_SERVICE_CIDR:
		model_service_cidr_free(o->u.cidr);
		break;
	default:
		break;
	}
	o->u.svc = NULL;
}

const char *model_object_ns(const struct model_object *o)
{
	switch (o->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		return o->u.svc->ns;
	case KIND_SLICE:
		return o->u.slice->ns;
	case KIND_POD:
		return o->u.pod->ns;
	default:
		return "";
	}
}

const char *model_object_name(const struct model_object *o)
{
	switch (o->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		return o->u.svc->name;
	case KIND_SLICE:
		return o->u.slice->name;
	case KIND_POD:
		return o->u.pod->name;
	case KIND_NAMESPACE:
		return o->u.ns->name;
	case KIND_SERVICE_CIDR:
		return o->u.cidr->name;
	default:
		return "";
	}
}

const char *model_kind_name(enum model_kind k)
{
	static const char *const names[] = {"Service",	 "EndpointSlice", "Pod",
					    "Namespace", "ServiceCIDR",	  "ServiceImport"};
	return (unsigned)k < KIND_COUNT ? names[k] : "?";
}

const char *model_proto_name(uint8_t proto)
{
	switch (proto) {
	case PROTO_TCP:
		return "TCP";
	case PROTO_UDP:
		return "UDP";
	case PROTO_SCTP:
		return "SCTP";
	default:
		return "?";
	}
}

uint8_t model_proto_parse(const char *s)
{
	if (!s)
		return 0;
	if (strcmp(s, "TCP") == 0)
		return PROTO_TCP;
	if (strcmp(s, "UDP") == 0)
		return PROTO_UDP;
	if (strcmp(s, "SCTP") == 0)
		return PROTO_SCTP;
	return 0;
}

/* ---- deep copies ---------------------------------------------------------- */

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int labels_clone(struct model_labels *dst, const struct model_labels *src)
{
	dst->items = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->items = calloc(src->n, sizeof(*dst->items));
	if (!dst->items)
		return -ENOMEM;
	dst->n = src->n;
	for (size_t i = 0; i < src->n; i++)
		if (dup_str(&dst->items[i].key, src->items[i].key) ||
		    dup_str(&dst->items[i].value, src->items[i].value))
			return -ENOMEM;
	return 0;
}

static struct model_service *service_clone(const struct model_service *src)
{
	struct model_service *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	*s = *src;
	s->refs = 0;
	s->ns = s->name = s->external_name = NULL;
	s->ports = NULL;
	s->n_ports = 0;
	s->selector.items = NULL;
	s->selector.n = 0;
	if (dup_str(&s->ns, src->ns) || dup_str(&s->name, src->name) ||
	    dup_str(&s->external_name, src->external_name) ||
	    labels_clone(&s->selector, &src->selector))
		goto fail;
	if (src->n_ports) {
		s->ports = calloc(src->n_ports, sizeof(*s->ports));
		if (!s->ports)
			goto fail;
		s->n_ports = src->n_ports;
		for (size_t i = 0; i < src->n_ports; i++) {
			s->ports[i] = src->ports[i];
			s->ports[i].name = s->ports[i].target_name = NULL;
			if (dup_str(&s->ports[i].name, src->ports[i].name) ||
			    dup_str(&s->ports[i].target_name, src->ports[i].target_name))
				goto fail;
		}
	}
	return s;
fail:
	model_service_free(s);
	return NULL;
}

static struct model_slice *slice_clone(const struct model_slice *src)
{
	struct model_slice *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	*s = *src;
	s->refs = 0;
	s->ns = s->name = s->service = s->mc_service = s->cluster = NULL;
	s->ports = NULL;
	s->n_ports = 0;
	s->endpoints = NULL;
	s->n_endpoints = 0;
	if (dup_str(&s->ns, src->ns) || dup_str(&s->name, src->name) ||
	    dup_str(&s->service, src->service) || dup_str(&s->mc_service, src->mc_service) ||
	    dup_str(&s->cluster, src->cluster))
		goto fail;
	if (src->n_ports) {
		s->ports = calloc(src->n_ports, sizeof(*s->ports));
		if (!s->ports)
			goto fail;
		s->n_ports = src->n_ports;
		for (size_t i = 0; i < src->n_ports; i++) {
			s->ports[i] = src->ports[i];
			s->ports[i].name = NULL;
			if (dup_str(&s->ports[i].name, src->ports[i].name))
				goto fail;
		}
	}
	if (src->n_endpoints) {
		s->endpoints = calloc(src->n_endpoints, sizeof(*s->endpoints));
		if (!s->endpoints)
			goto fail;
		s->n_endpoints = src->n_endpoints;
		for (size_t i = 0; i < src->n_endpoints; i++) {
			const struct model_endpoint *se = &src->endpoints[i];
			struct model_endpoint *de = &s->endpoints[i];
			*de = *se;
			de->addrs = NULL;
			de->hostname = de->node_name = de->pod_name = NULL;
			de->zone = de->for_zones = NULL;
			if (se->n_addrs) {
				de->addrs = malloc(se->n_addrs * sizeof(*de->addrs));
				if (!de->addrs) {
					de->n_addrs = 0;
					goto fail;
				}
				memcpy(de->addrs, se->addrs, se->n_addrs * sizeof(*de->addrs));
			}
			if (dup_str(&de->hostname, se->hostname) ||
			    dup_str(&de->node_name, se->node_name) ||
			    dup_str(&de->pod_name, se->pod_name) || dup_str(&de->zone, se->zone) ||
			    dup_str(&de->for_zones, se->for_zones))
				goto fail;
		}
	}
	return s;
fail:
	model_slice_free(s);
	return NULL;
}

static struct model_pod *pod_clone(const struct model_pod *src)
{
	struct model_pod *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	*p = *src;
	p->refs = 0;
	p->ns = p->name = p->hostname = p->subdomain = p->node_name = NULL;
	p->labels.items = NULL;
	p->labels.n = 0;
	p->ports = NULL;
	p->n_ports = 0;
	if (dup_str(&p->ns, src->ns) || dup_str(&p->name, src->name) ||
	    dup_str(&p->hostname, src->hostname) || dup_str(&p->subdomain, src->subdomain) ||
	    dup_str(&p->node_name, src->node_name) || labels_clone(&p->labels, &src->labels))
		goto fail;
	if (src->n_ports) {
		p->ports = calloc(src->n_ports, sizeof(*p->ports));
		if (!p->ports)
			goto fail;
		p->n_ports = src->n_ports;
		for (size_t i = 0; i < src->n_ports; i++) {
			p->ports[i] = src->ports[i];
			p->ports[i].name = NULL;
			if (dup_str(&p->ports[i].name, src->ports[i].name))
				goto fail;
		}
	}
	return p;
fail:
	model_pod_free(p);
	return NULL;
}

int model_object_clone(const struct model_object *src, struct model_object *dst)
{
	dst->kind = src->kind;
	dst->u.svc = NULL;
	switch (src->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		dst->u.svc = service_clone(src->u.svc);
		break;
	case KIND_SLICE:
		dst->u.slice = slice_clone(src->u.slice);
		break;
	case KIND_POD:
		dst->u.pod = pod_clone(src->u.pod);
		break;
	case KIND_NAMESPACE: {
		struct model_namespace *n = calloc(1, sizeof(*n));
		if (n && (dup_str(&n->name, src->u.ns->name) ||
			  labels_clone(&n->labels, &src->u.ns->labels))) {
			model_namespace_free(n);
			n = NULL;
		}
		dst->u.ns = n;
		break;
	}
	case KIND_SERVICE_CIDR: {
		struct model_service_cidr *c = malloc(sizeof(*c));
		if (c) {
			*c = *src->u.cidr;
			c->refs = 0;
			if (dup_str(&c->name, src->u.cidr->name)) {
				free(c);
				c = NULL;
			}
		}
		dst->u.cidr = c;
		break;
	}
	default:
		return -EINVAL;
	}
	return dst->u.svc ? 0 : -ENOMEM;
}

/* ---- packing -----------------------------------------------------------------
 * An object is laid out in two passes over the same code: one that only
 * measures (base NULL), one that writes, so that the two cannot differ. The
 * copy is shallow first (*dst = *src), then every pointer is redirected into
 * the block. */
#define PK_SET(p, lhs, expr)                                                                       \
	do {                                                                                       \
		void *v_ = (expr);                                                                 \
		if ((p)->base)                                                                     \
			(lhs) = v_;                                                                \
	} while (0)

static void pk_labels(struct packer *p, struct model_labels *d, const struct model_labels *s)
{
	struct model_label *items = pk_array(p, s->items, s->n, sizeof(*items), 8);

	if (p->base)
		d->items = items;
	for (size_t i = 0; i < s->n; i++) {
		PK_SET(p, items[i].key, pk_str(p, s->items[i].key));
		PK_SET(p, items[i].value, pk_str(p, s->items[i].value));
	}
}

static void *pack_service(struct packer *p, const struct model_service *s)
{
	struct model_service *d = pk_take(p, sizeof(*d), 16);

	if (d)
		*d = *s;
	PK_SET(p, d->ports, pk_array(p, s->ports, s->n_ports, sizeof(*s->ports), 8));
	pk_labels(p, d ? &d->selector : NULL, &s->selector);
	PK_SET(p, d->ns, pk_str(p, s->ns));
	PK_SET(p, d->name, pk_str(p, s->name));
	PK_SET(p, d->external_name, pk_str(p, s->external_name));
	for (size_t i = 0; i < s->n_ports; i++) {
		PK_SET(p, d->ports[i].name, pk_str(p, s->ports[i].name));
		PK_SET(p, d->ports[i].target_name, pk_str(p, s->ports[i].target_name));
	}
	return d;
}

static void *pack_slice(struct packer *p, const struct model_slice *s)
{
	struct model_slice *d = pk_take(p, sizeof(*d), 16);

	if (d)
		*d = *s;
	PK_SET(p, d->ports, pk_array(p, s->ports, s->n_ports, sizeof(*s->ports), 8));
	PK_SET(p, d->endpoints,
	       pk_array(p, s->endpoints, s->n_endpoints, sizeof(*s->endpoints), 8));
	for (size_t i = 0; i < s->n_endpoints; i++)
		PK_SET(p, d->endpoints[i].addrs,
		       pk_array(p, s->endpoints[i].addrs, s->endpoints[i].n_addrs,
				sizeof(struct net_addr), 1));
	PK_SET(p, d->ns, pk_str(p, s->ns));
	PK_SET(p, d->name, pk_str(p, s->name));
	PK_SET(p, d->service, pk_str(p, s->service));
	PK_SET(p, d->mc_service, pk_str(p, s->mc_service));
	PK_SET(p, d->cluster, pk_str(p, s->cluster));
	for (size_t i = 0; i < s->n_ports; i++)
		PK_SET(p, d->ports[i].name, pk_str(p, s->ports[i].name));
	/* Endpoints of one slice mostly sit on few nodes: a node name equal to
	 * the previous endpoint's is stored once. */
	for (size_t i = 0; i < s->n_endpoints; i++) {
		const struct model_endpoint *e = &s->endpoints[i];
		PK_SET(p, d->endpoints[i].hostname, pk_str(p, e->hostname));
		PK_SET(p, d->endpoints[i].pod_name, pk_str(p, e->pod_name));
		if (i > 0 && e->node_name && s->endpoints[i - 1].node_name &&
		    strcmp(e->node_name, s->endpoints[i - 1].node_name) == 0) {
			if (d)
				d->endpoints[i].node_name = d->endpoints[i - 1].node_name;
		} else
			PK_SET(p, d->endpoints[i].node_name, pk_str(p, e->node_name));
		/* Zones likewise: a slice's endpoints share a few. */
		if (i > 0 && e->zone && s->endpoints[i - 1].zone &&
		    strcmp(e->zone, s->endpoints[i - 1].zone) == 0) {
			if (d)
				d->endpoints[i].zone = d->endpoints[i - 1].zone;
		} else
			PK_SET(p, d->endpoints[i].zone, pk_str(p, e->zone));
		if (i > 0 && e->for_zones && s->endpoints[i - 1].for_zones &&
		    strcmp(e->for_zones, s->endpoints[i - 1].for_zones) == 0) {
			if (d)
				d->endpoints[i].for_zones = d->endpoints[i - 1].for_zones;
		} else
			PK_SET(p, d->endpoints[i].for_zones, pk_str(p, e->for_zones));
	}
	return d;
}

static void *pack_pod(struct packer *p, const struct model_pod *s)
{
	struct model_pod *d = pk_take(p, sizeof(*d), 16);

	if (d)
		*d = *s;
	PK_SET(p, d->ports, pk_array(p, s->ports, s->n_ports, sizeof(*s->ports), 8));
	pk_labels(p, d ? &d->labels : NULL, &s->labels);
	PK_SET(p, d->ns, pk_str(p, s->ns));
	PK_SET(p, d->name, pk_str(p, s->name));
	PK_SET(p, d->hostname, pk_str(p, s->hostname));
	PK_SET(p, d->subdomain, pk_str(p, s->subdomain));
	PK_SET(p, d->node_name, pk_str(p, s->node_name));
	for (size_t i = 0; i < s->n_ports; i++)
		PK_SET(p, d->ports[i].name, pk_str(p, s->ports[i].name));
	return d;
}

static void *pack_namespace(struct packer *p, const struct model_namespace *s)
{
	struct model_namespace *d = pk_take(p, sizeof(*d), 16);

	if (d)
		*d = *s;
	pk_labels(p, d ? &d->labels : NULL, &s->labels);
	PK_SET(p, d->name, pk_str(p, s->name));
	return d;
}

static void *pack_service_cidr(struct packer *p, const struct model_service_cidr *s)
{
	struct model_service_cidr *d = pk_take(p, sizeof(*d), 16);

	if (d)
		*d = *s;
	PK_SET(p, d->name, pk_str(p, s->name));
	return d;
}

static void *pack_pass(struct packer *p, const struct model_object *o)
{
	switch (o->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		return pack_service(p, o->u.svc);
	case KIND_SLICE:
		return pack_slice(p, o->u.slice);
	case KIND_POD:
		return pack_pod(p, o->u.pod);
	case KIND_NAMESPACE:
		return pack_namespace(p, o->u.ns);
	case KIND_SERVICE_CIDR:
		return pack_service_cidr(p, o->u.cidr);
	default:
		return NULL;
	}
}

static uint32_t *refs_of(const struct model_object *o)
{
	switch (o->kind) {
	case KIND_SERVICE:
	case KIND_IMPORT:
		return &o->u.svc->refs;
	case KIND_SLICE:
		return &o->u.slice->refs;
	case KIND_POD:
		return &o->u.pod->refs;
	case KIND_NAMESPACE:
		return &o->u.ns->refs;
	case KIND_SERVICE_CIDR:
		return &o->u.cidr->refs;
	default:
		return NULL;
	}
}

int model_object_pack(struct model_object *o)
{
	struct packer p = {0};
	uint32_t *refs = refs_of(o);

	if (!refs)
		return -EINVAL;
	if (*refs)
		return 0;
	pack_pass(&p, o);
	p.base = malloc(p.off);
	if (!p.base)
		return -ENOMEM;
	p.off = 0;
	struct model_object packed = {.kind = o->kind, .u.svc = pack_pass(&p, o)};
	*refs_of(&packed) = 1;
	model_object_free(o);
	*o = packed;
	return 0;
}

void model_object_ref(const struct model_object *o)
{
	uint32_t *refs = refs_of(o);

	/* Only a packed object has references to count. */
	if (refs && *refs)
		++*refs;
}
