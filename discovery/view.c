/* The view: every Service with its final endpoints, as the API server and the
 * endpoints controller would leave them: ClusterIPs, NodePorts and Pod IPs
 * allocated where manifests lack them, endpoints from EndpointSlices or Pods. */
#include "discovery/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "discovery/pack.h"
#include "discovery/store_iter.h"

/* Allocation bitmaps cover at most this many addresses (2 MiB of bits); the
 * API server itself refuses service ranges larger than 2^20. */
#define POOL_MAX_BITS 24
#define ADDR_TEXT     64

/* ---- small helpers --------------------------------------------------------- */

static int strcmp0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static bool streq0(const char *a, const char *b)
{
	return strcmp0(a, b) == 0;
}

/* A growable byte buffer for building map keys; an allocation failure is
 * remembered and reported once by the caller. */
struct kbuf {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

static void kb_put(struct kbuf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Appends s and a NUL separator: names never hold NUL, so keys built from
 * several fields cannot collide. */
static void kb_field(struct kbuf *b, const char *s)
{
	kb_put(b, s ? s : "", s ? strlen(s) : 0);
	kb_put(b, "", 1);
}

static void kb_u32(struct kbuf *b, uint32_t v)
{
	char num[16];
	int n = snprintf(num, sizeof(num), "%u", v);
	kb_put(b, num, (size_t)n + 1);
}

/* Everything the view points into lives in chunks freed together. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t cap;
	size_t pad_; /* keeps data 16-byte aligned on LP64 */
	unsigned char data[];
};

#define ARENA_CHUNK (256u << 10)

static void *arena_alloc(struct arena_chunk **head, size_t size)
{
	size = (size + 15) & ~(size_t)15;
	struct arena_chunk *c = *head;

	if (!c || c->cap - c->used < size) {
		size_t cap = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		/* A large block gets its own chunk behind the current one, so the
		 * current chunk's free space is not abandoned. */
		if (*head && cap == size) {
			c->next = (*head)->next;
			(*head)->next = c;
		} else {
			c->next = *head;
			*head = c;
		}
	}
	void *p = c->data + c->used;
	c->used += size;
	return p;
}

static void arena_free(struct arena_chunk *c)
{
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
}

/* ---- allocation pools -------------------------------------------------------
 * A pool is a range of values (addresses of a CIDR, or port numbers) seen as
 * offsets [0, size), of which [lo, hi) may be handed out. The bitmap is rebuilt
 * on every view build: explicit claims first, then sticky allocations that are
 * still free, then new ones. */
struct alloc_pool {
	const char *what;
	uint8_t family; /* AF_INET, AF_INET6, or 0 for port numbers */
	struct net_addr base;
	uint32_t first_value; /* port pools: the value at offset 0 */
	uint32_t size;
	uint32_t lo;
	uint32_t hi;
	uint64_t *used;
	/* Explicit claims per offset (service and NodePort pools), saturating:
	 * an incremental build releases a claim only where it knows that no
	 * other Service still holds the value. */
	uint8_t *claims;
	bool starved;		 /* a build left some object without a value */
	struct store_map sticky; /* object key -> offset */
};

struct model_alloc {
	struct alloc_pool svc;
	struct alloc_pool pod;
	struct alloc_pool node;
	/* Things already logged, so that a condition is logged once while it
	 * lasts rather than on every build. */
	struct store_map notes;
	uint32_t gen;
};

static size_t addr_len(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

static int pool_init_cidr(struct alloc_pool *p, const struct net_cidr *c, uint32_t skip_low,
			  const char *what)
{
	unsigned bits = c->base.family == AF_INET ? 32 : 128;
	unsigned host;

	if ((c->base.family != AF_INET && c->base.family != AF_INET6) || c->prefix > bits)
		return -EINVAL;
	host = bits - c->prefix;
	p->what = what;
	p->family = c->base.family;
	p->base = c->base;
	for (unsigned i = 0; i < addr_len(p->family); i++) {
		unsigned keep = c->prefix > i * 8 ? c->prefix - i * 8 : 0;
		if (keep < 8)
			p->base.bytes[i] &= (uint8_t)(0xff00u >> keep);
	}
	p->size = host > POOL_MAX_BITS ? 1u << POOL_MAX_BITS : 1u << host;
	p->lo = skip_low;
	/* IPv4 ranges lose their broadcast address; IPv6 has none. */
	p->hi = p->size - (p->family == AF_INET && host <= POOL_MAX_BITS ? 1 : 0);
	if (p->hi < p->lo)
		p->hi = p->lo;
	if (host > POOL_MAX_BITS)
		log_info("%s range is larger than 2^%d addresses; only the first 2^%d are used",
			 what, POOL_MAX_BITS, POOL_MAX_BITS);
	p->used = calloc((p->size + 63) / 64, sizeof(uint64_t));
	return p->used ? 0 : -ENOMEM;
}

static int pool_init_ports(struct alloc_pool *p, uint32_t min, uint32_t max, const char *what)
{
	p->what = what;
	p->family = 0;
	p->first_value = min;
	p->size = max - min + 1;
	p->lo = 0;
	p->hi = p->size;
	p->used = calloc((p->size + 63) / 64, sizeof(uint64_t));
	return p->used ? 0 : -ENOMEM;
}

/* Whether port v is in the pool's range (an explicit nodePort outside it is
 * served, but is no allocator's business). */
static bool pool_port_in(const struct alloc_pool *p, uint32_t v)
{
	return v >= p->first_value && v - p->first_value < p->size;
}

static void pool_reset(struct alloc_pool *p)
{
	memset(p->used, 0, (p->size + 63) / 64 * sizeof(uint64_t));
	if (p->claims)
		memset(p->claims, 0, p->size);
	p->starved = false;
}

static int pool_track_claims(struct alloc_pool *p)
{
	p->claims = calloc(p->size, 1);
	return p->claims ? 0 : -ENOMEM;
}

static bool pool_test(const struct alloc_pool *p, uint32_t off)
{
	return p->used[off / 64] >> (off % 64) & 1;
}

static void pool_set(struct alloc_pool *p, uint32_t off)
{
	p->used[off / 64] |= (uint64_t)1 << (off % 64);
}

/* The offset of an address in the pool's range, if it is in it. */
static bool pool_addr_offset(const struct alloc_pool *p, const struct net_addr *a, uint32_t *off)
{
	size_t len = addr_len(p->family);
	uint8_t d[16];
	int borrow = 0;

	if (a->family != p->family)
		return false;
	for (size_t k = 0; k < len; k++) {
		size_t i = len - 1 - k; /* least significant byte first */
		int v = (int)a->bytes[i] - (int)p->base.bytes[i] - borrow;
		borrow = v < 0;
		d[i] = (uint8_t)v;
	}
	if (borrow)
		return false;
	for (size_t i = 0; i < len - 4; i++)
		if (d[i])
			return false;
	uint32_t v = (uint32_t)d[len - 4] << 24 | (uint32_t)d[len - 3] << 16 |
		     (uint32_t)d[len - 2] << 8 | d[len - 1];
	if (v >= p->size)
		return false;
	*off = v;
	return true;
}

static void pool_offset_addr(const struct alloc_pool *p, uint32_t off, struct net_addr *a)
{
	size_t len = addr_len(p->family);
	uint32_t carry = off;

	*a = p->base;
	for (size_t k = 0; k < len && carry; k++) {
		size_t i = len - 1 - k;
		uint32_t v = a->bytes[i] + (carry & 0xff);
		a->bytes[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
}

/* Reserves an explicit claim; false when it was already taken. */
static bool pool_claim(struct alloc_pool *p, uint32_t off)
{
	bool was = pool_test(p, off);
	pool_set(p, off);
	if (p->claims && p->claims[off] < UINT8_MAX)
		p->claims[off]++;
	return !was;
}

/* Gives the object back the value it held in earlier builds, if still free. */
static bool pool_keep(struct alloc_pool *p, const struct kbuf *key, uint32_t gen, uint32_t *off)
{
	struct store_map_slot *s = store_map_find(&p->sticky, key->p, key->len);

	if (!s)
		return false;
	uint32_t o = (uint32_t)s->val;
	if (o < p->lo || o >= p->hi || pool_test(p, o))
		return false;
	pool_set(p, o);
	s->gen = gen;
	*off = o;
	return true;
}

/* A new value: start where the key hashes to, take the next free one. */
static int pool_take(struct alloc_pool *p, const struct kbuf *key, uint32_t gen, uint32_t *off)
{
	uint32_t span = p->hi - p->lo;
	struct store_map_slot *s;
	bool created;
	int ret;

	if (span == 0)
		return -ENOSPC;
	uint32_t o = p->lo + (uint32_t)(store_hash(key->p, key->len) % span);
	for (uint32_t n = 0; pool_test(p, o); n++) {
		if (n == span)
			return -ENOSPC;
		o = o + 1 == p->hi ? p->lo : o + 1;
	}
	ret = store_map_insert(&p->sticky, key->p, key->len, &s, &created);
	if (ret)
		return ret;
	pool_set(p, o);
	s->val = o;
	s->gen = gen;
	*off = o;
	return 0;
}

static void pool_fini(struct alloc_pool *p)
{
	free(p->used);
	p->used = NULL;
	free(p->claims);
	p->claims = NULL;
	store_map_clear(&p->sticky);
}

struct model_alloc *model_alloc_new(const struct net_cidr *service_cidr,
				    const struct net_cidr *pod_cidr)
{
	struct model_alloc *a = calloc(1, sizeof(*a));
	struct net_cidr def_svc = {.base = {.family = AF_INET, .bytes = {10, 96}}, .prefix = 12};
	struct net_cidr def_pod = {.base = {.family = AF_INET, .bytes = {10, 244}}, .prefix = 16};

	if (!a)
		return NULL;
	store_map_init(&a->svc.sticky);
	store_map_init(&a->pod.sticky);
	store_map_init(&a->node.sticky);
	store_map_init(&a->notes);
	/* The first host address of the service range is the `kubernetes`
	 * Service's in real clusters; it is never handed out. */
	if (pool_init_cidr(&a->svc, service_cidr ? service_cidr : &def_svc, 2, "service CIDR") ||
	    pool_init_cidr(&a->pod, pod_cidr ? pod_cidr : &def_pod, 1, "pod CIDR") ||
	    pool_init_ports(&a->node, MODEL_NODE_PORT_MIN, MODEL_NODE_PORT_MAX, "NodePort") ||
	    pool_track_claims(&a->svc) || pool_track_claims(&a->node)) {
		log_error("cannot set up address allocation (bad CIDR or out of memory)");
		model_alloc_free(a);
		return NULL;
	}
	return a;
}

int model_alloc_set_node_ports(struct model_alloc *a, uint16_t min, uint16_t max)
{
	struct alloc_pool np = {0};

	if (min == 0 || max < min)
		return -EINVAL;
	if (pool_init_ports(&np, min, max, "NodePort") < 0 || pool_track_claims(&np) < 0) {
		free(np.used);
		return -ENOMEM;
	}
	store_map_init(&np.sticky);
	pool_fini(&a->node);
	a->node = np;
	return 0;
}

void model_alloc_free(struct model_alloc *a)
{
	if (!a)
		return;
	pool_fini(&a->svc);
	pool_fini(&a->pod);
	pool_fini(&a->node);
	store_map_clear(&a->notes);
	free(a);
}

/* ---- selectors and ports ----------------------------------------------------- */

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

/* ---- the build ------------------------------------------------------------- */

/* One Service's data in one allocation: this header, the store objects it
 * holds references on, then (see pack_pass) the rest. */
struct vblock {
	size_t refs;
	size_t n_held;
	struct model_object held[];
};

/* The namespace list, shared by views while it does not change. */
struct nsblock {
	size_t refs;
	size_t n;
	char *names[];
};

struct view_priv {
	struct nsblock *ns;
	struct view_change *changes;
	uint64_t store_epoch; /* the store's change epoch this view is current for, or 0 */
};

static uint64_t g_view_ids;

struct pod_ref {
	const struct model_pod *pod;
	struct net_addr ips[2];
	size_t n_ips;
};

struct idx_list {
	size_t *v;
	size_t n;
	size_t cap;
};

struct ep_tmp {
	struct view_endpoint ep;
	size_t seq; /* breaks ties so that merging is deterministic */
};

struct build {
	const struct model_store *st;
	struct model_alloc *alloc;
	struct arena_chunk *scratch;   /* endpoint target ports until packed */
	struct model_service **clones; /* owned, freed with the build */
	size_t n_clones;
	struct kbuf key;
	bool oom;

	struct model_service **svcs;
	size_t n_svcs;
	size_t *slice_lo; /* per service: its slices are slices[lo, hi) */
	size_t *slice_hi;

	struct pod_ref *pods;
	size_t n_pods;

	const struct model_slice **slices;
	size_t n_slices;

	/* (ns, key, value) of every selector pair in use -> index in lists */
	struct store_map label_idx;
	struct idx_list *lists;
	size_t n_lists;

	struct ep_tmp *eps;
	size_t n_eps;
	size_t cap_eps;

	/* The store objects whose strings the current Service's endpoints use. */
	struct model_object *held;
	size_t n_held;
	size_t cap_held;
};

/* True the first time a condition is seen while it lasts (keyed by b->key). */
static bool note_once(struct build *b)
{
	struct store_map_slot *s;
	bool created = false;

	if (b->key.oom || store_map_insert(&b->alloc->notes, b->key.p, b->key.len, &s, &created)) {
		/* Cannot remember: logging twice is better than not at all. */
		return true;
	}
	s->gen = b->alloc->gen;
	return created;
}

static void key_obj(struct build *b, const char *tag, const char *ns, const char *name)
{
	b->key.len = 0;
	kb_field(&b->key, tag);
	kb_field(&b->key, ns);
	kb_field(&b->key, name);
}

static int cmp_svc(const void *x, const void *y)
{
	const struct model_service *a = *(struct model_service *const *)x;
	const struct model_service *b = *(struct model_service *const *)y;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

static bool wants_cluster_ip(const struct model_service *s);
static bool has_node_ports(const struct model_service *s);

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
static int clone_service(struct build *b, const struct model_service *src)
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

static int collect_services(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_SERVICE);
	struct model_store_iter it;
	const struct model_object *o;

	b->clones = calloc(n ? n : 1, sizeof(*b->clones));
	if (!b->clones)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_SERVICE);
	while ((o = model_store_iter_next(&it)) && b->n_clones < n) {
		int ret = clone_service(b, o->u.svc);
		if (ret)
			return ret;
	}
	b->svcs = b->clones;
	b->n_svcs = b->n_clones;
	qsort(b->svcs, b->n_svcs, sizeof(*b->svcs), cmp_svc);
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

static int assign_cluster_ips(struct build *b);
static int assign_node_ports(struct build *b);

static bool wants_cluster_ip(const struct model_service *s)
{
	return !s->headless && s->type != SVC_EXTERNAL_NAME && s->n_cluster_ips == 0;
}

static int alloc_cluster_ips(struct build *b)
{
	struct alloc_pool *p = &b->alloc->svc;
	struct ip_claim *claims = NULL;
	size_t n_claims = 0;
	char text[ADDR_TEXT];
	uint32_t off;
	int ret = 0;

	pool_reset(p);
	claims = calloc(b->n_svcs * 2 + 1, sizeof(*claims));
	if (!claims)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++) {
			claims[n_claims++] = (struct ip_claim){.addr = s->cluster_ips[j], .svc = i};
			if (pool_addr_offset(p, &s->cluster_ips[j], &off))
				pool_claim(p, off);
		}
	}
	qsort(claims, n_claims, sizeof(*claims), cmp_ip_claim);
	for (size_t i = 1; i < n_claims; i++) {
		if (net_addr_cmp(&claims[i].addr, &claims[i - 1].addr) != 0)
			continue;
		const struct model_service *first = b->svcs[claims[i - 1].svc];
		const struct model_service *s = b->svcs[claims[i].svc];
		key_obj(b, "dup-ip", s->ns, s->name);
		kb_put(&b->key, claims[i].addr.bytes, sizeof(claims[i].addr.bytes));
		if (!note_once(b))
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
		key_obj(b, "svc", s->ns, s->name);
		if (b->key.oom) {
			ret = -ENOMEM;
			goto out;
		}
		if (pool_keep(p, &b->key, b->alloc->gen, &off)) {
			pool_offset_addr(p, off, &s->cluster_ips[0]);
			s->n_cluster_ips = 1;
			s->cluster_ip_allocated = true;
		}
	}
	for (size_t i = 0; i < b->n_svcs; i++) {
		struct model_service *s = b->svcs[i];
		if (!wants_cluster_ip(s))
			continue;
		key_obj(b, "svc", s->ns, s->name);
		if (b->key.oom) {
			ret = -ENOMEM;
			goto out;
		}
		ret = pool_take(p, &b->key, b->alloc->gen, &off);
		if (ret == -ENOSPC) {
			ret = 0;
			p->starved = true;
			key_obj(b, "svc-full", s->ns, s->name);
			if (note_once(b))
				log_warn("Service %s/%s: no spec.clusterIP and the %s is full; it "
					 "gets no ClusterIP",
					 s->ns, s->name, p->what);
			continue;
		}
		if (ret)
			goto out;
		pool_offset_addr(p, off, &s->cluster_ips[0]);
		s->n_cluster_ips = 1;
		s->cluster_ip_allocated = true;
		net_addr_format(&s->cluster_ips[0], text, sizeof(text));
		log_info("Service %s/%s: no spec.clusterIP, allocated %s", s->ns, s->name, text);
	}
out:
	return ret;
}

static bool has_node_ports(const struct model_service *s)
{
	return s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER;
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
	key_obj(b, "node", s->ns, s->name);
	kb_u32(&b->key, s->ports[i].port);
}

static int alloc_node_ports(struct build *b)
{
	struct alloc_pool *p = &b->alloc->node;
	struct port_claim *claims = NULL;
	size_t n_claims = 0, total = 0;
	int ret = 0;

	pool_reset(p);
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
			if (pool_port_in(p, np))
				pool_claim(p, np - p->first_value);
		}
	}
	qsort(claims, n_claims, sizeof(*claims), cmp_port_claim);
	for (size_t i = 1; i < n_claims; i++) {
		if (claims[i].port != claims[i - 1].port || claims[i].svc == claims[i - 1].svc)
			continue;
		const struct model_service *first = b->svcs[claims[i - 1].svc];
		const struct model_service *s = b->svcs[claims[i].svc];
		key_obj(b, "dup-node", s->ns, s->name);
		kb_u32(&b->key, claims[i].port);
		if (note_once(b))
			log_warn(
			    "Service %s/%s: nodePort %u is also claimed by Service %s/%s; both "
			    "are served",
			    s->ns, s->name, claims[i].port, first->ns, first->name);
	}
	ret = assign_node_ports(b);
	free(claims);
	return ret;
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
					if (!pool_keep(p, &b->key, b->alloc->gen, &off))
						continue;
				} else {
					ret = pool_take(p, &b->key, b->alloc->gen, &off);
					if (ret == -ENOSPC) {
						ret = 0;
						p->starved = true;
						key_obj(b, "node-full", s->ns, s->name);
						kb_u32(&b->key, sp->port);
						if (note_once(b))
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

static int cmp_pod(const void *x, const void *y)
{
	const struct model_pod *a = ((const struct pod_ref *)x)->pod;
	const struct model_pod *b = ((const struct pod_ref *)y)->pod;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

static int collect_pods(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_POD);
	struct alloc_pool *p = &b->alloc->pod;
	struct model_store_iter it;
	const struct model_object *o;
	char text[ADDR_TEXT];
	uint32_t off;
	int ret;

	b->pods = calloc(n ? n : 1, sizeof(*b->pods));
	if (!b->pods)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_POD);
	while ((o = model_store_iter_next(&it)) && b->n_pods < n) {
		struct pod_ref *r = &b->pods[b->n_pods++];
		r->pod = o->u.pod;
		if (!r->pod->ip_allocated) {
			r->n_ips = r->pod->n_ips < 2 ? r->pod->n_ips : 2;
			memcpy(r->ips, r->pod->ips, r->n_ips * sizeof(r->ips[0]));
		}
	}
	qsort(b->pods, b->n_pods, sizeof(*b->pods), cmp_pod);

	pool_reset(p);
	for (size_t i = 0; i < b->n_pods; i++)
		for (size_t j = 0; j < b->pods[i].n_ips; j++)
			if (pool_addr_offset(p, &b->pods[i].ips[j], &off))
				pool_set(p, off); /* hostNetwork Pods share addresses */

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->n_pods; i++) {
			struct pod_ref *r = &b->pods[i];
			const struct model_pod *pod = r->pod;
			if (pod->has_status || r->n_ips)
				continue;
			key_obj(b, "pod", pod->ns, pod->name);
			if (b->key.oom)
				return -ENOMEM;
			if (pass == 0) {
				if (!pool_keep(p, &b->key, b->alloc->gen, &off))
					continue;
			} else {
				ret = pool_take(p, &b->key, b->alloc->gen, &off);
				if (ret == -ENOSPC) {
					p->starved = true;
					key_obj(b, "pod-full", pod->ns, pod->name);
					if (note_once(b))
						log_warn(
						    "Pod %s/%s has no status and the %s is full; "
						    "it gets no IP",
						    pod->ns, pod->name, p->what);
					continue;
				}
				if (ret)
					return ret;
			}
			pool_offset_addr(p, off, &r->ips[0]);
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

static int cmp_slice(const void *x, const void *y)
{
	const struct model_slice *a = *(const struct model_slice *const *)x;
	const struct model_slice *b = *(const struct model_slice *const *)y;
	int c = strcmp0(a->ns, b->ns);
	if (!c)
		c = strcmp0(a->service, b->service);
	return c ? c : strcmp0(a->name, b->name);
}

/* Slices sorted by (ns, service, name) are matched to Services sorted by
 * (ns, name) in one merge walk. */
static int collect_slices(struct build *b)
{
	size_t n = model_store_count(b->st, KIND_SLICE);
	struct model_store_iter it;
	const struct model_object *o;

	b->slices = calloc(n ? n : 1, sizeof(*b->slices));
	b->slice_lo = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_lo));
	b->slice_hi = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_hi));
	if (!b->slices || !b->slice_lo || !b->slice_hi)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_SLICE);
	while ((o = model_store_iter_next(&it)) && b->n_slices < n) {
		const struct model_slice *sl = o->u.slice;
		/* FQDN slices are deprecated and carry no address we could serve. */
		if (sl->service && (sl->address_type == AF_INET || sl->address_type == AF_INET6))
			b->slices[b->n_slices++] = sl;
	}
	qsort(b->slices, b->n_slices, sizeof(*b->slices), cmp_slice);

	size_t j = 0;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		int c = 1;
		while (j < b->n_slices) {
			c = strcmp0(b->slices[j]->ns, s->ns);
			if (!c)
				c = strcmp0(b->slices[j]->service, s->name);
			if (c >= 0)
				break;
			j++;
		}
		b->slice_lo[i] = j;
		while (j < b->n_slices && streq0(b->slices[j]->ns, s->ns) &&
		       streq0(b->slices[j]->service, s->name))
			j++;
		b->slice_hi[i] = j;
	}
	return 0;
}

static bool derives_from_pods(const struct build *b, size_t i)
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
static int index_pods(struct build *b)
{
	size_t n_pairs = 0;
	int ret;

	for (size_t i = 0; i < b->n_svcs; i++)
		if (derives_from_pods(b, i))
			n_pairs += b->svcs[i]->selector.n;
	if (n_pairs == 0)
		return 0;
	b->lists = calloc(n_pairs, sizeof(*b->lists));
	if (!b->lists)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_service *s = b->svcs[i];
		if (!derives_from_pods(b, i))
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

static void held_push(struct build *b, enum model_kind kind, const void *obj)
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
	uint16_t *tp = arena_alloc(&b->scratch, (n ? n : 1) * sizeof(*tp));
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
			held_push(b, KIND_SLICE, sl);
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
		key_obj(b, "no-port", s->ns, s->name);
		kb_field(&b->key, pod->name);
		kb_u32(&b->key, (uint32_t)i);
		if (note_once(b))
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
		held_push(b, KIND_POD, pod);
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

/* ---- packing ----------------------------------------------------------------
 * A Service's block is laid out in two passes over the same code: one that
 * only measures (base NULL), one that writes, so that the two cannot differ. */
/* The block: header, held objects, the Service copy when the stored one
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

static bool svc_same(const struct model_service *a, const struct model_service *b);

/* Packs the Service with its endpoints into one block. The stored Service is
 * shared (by reference) when allocation left it as it is, which it mostly
 * does. Takes references on b->held for the block. */
static int pack_service(struct build *b, const struct model_service *s, bool from_slices,
			const struct ep_tmp *eps, size_t n_eps, struct view_service *vs)
{
	const struct model_service *stored = store_service_find(b->st, s->ns, s->name);
	const struct model_service *shared = stored && svc_same(stored, s) ? stored : NULL;
	const struct model_service *svc;
	struct packer p = {0};
	struct vblock *blk;

	if (shared)
		held_push(b, KIND_SERVICE, shared);
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

static struct vblock *blk_of(const struct view_service *vs)
{
	return vs->priv;
}

static void blk_unref(const struct view_service *vs)
{
	struct vblock *blk = blk_of(vs);
	if (--blk->refs)
		return;
	for (size_t i = 0; i < blk->n_held; i++)
		model_object_free(&blk->held[i]);
	free(blk);
}

static struct nsblock *nsblock_new(const char *const *names, size_t n)
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

static void nsblock_unref(struct nsblock *nb)
{
	if (nb && --nb->refs == 0)
		free(nb);
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
	}
	return pack_service(b, s, from_slices, b->eps, n, vs);
}

/* Computes and packs b->svcs[i] into out[i]; *n_done counts the packed ones. */
static int build_endpoints(struct build *b, struct view_service *out, size_t *n_done)
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
		} else if (derives_from_pods(b, i)) {
			eps_from_pods(b, i);
			key_obj(b, "derived", s->ns, s->name);
			if (log_get_level() >= LOG_DEBUG && note_once(b))
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
		if (b->scratch && b->scratch->next) {
			arena_free(b->scratch);
			b->scratch = NULL;
		} else if (b->scratch) {
			b->scratch->used = 0;
		}
	}
out:
	free(slice_tp);
	return ret;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp0(*(const char *const *)x, *(const char *const *)y);
}

static int build_namespaces(struct build *b, struct view_priv *priv)
{
	size_t cap = model_store_count(b->st, KIND_NAMESPACE) + b->n_svcs + b->n_pods + b->n_slices;
	const char **names = calloc(cap ? cap : 1, sizeof(*names));
	struct model_store_iter it;
	const struct model_object *o;
	size_t n = 0, u = 0;
	int ret = 0;

	if (!names)
		return -ENOMEM;
	model_store_iter_init(&it, b->st, KIND_NAMESPACE);
	while ((o = model_store_iter_next(&it)) && n < cap)
		if (o->u.ns->name)
			names[n++] = o->u.ns->name;
	for (size_t i = 0; i < b->n_svcs && n < cap; i++)
		names[n++] = b->svcs[i]->ns;
	for (size_t i = 0; i < b->n_pods && n < cap; i++)
		names[n++] = b->pods[i].pod->ns;
	for (size_t i = 0; i < b->n_slices && n < cap; i++)
		names[n++] = b->slices[i]->ns;
	qsort(names, n, sizeof(*names), cmp_str);

	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !names[i][0] || (u && strcmp(names[u - 1], names[i]) == 0))
			continue;
		names[u++] = names[i];
	}
	priv->ns = nsblock_new(names, u);
	if (!priv->ns)
		ret = -ENOMEM;

	free(names);
	return ret;
}

static void build_fini(struct build *b)
{
	for (size_t i = 0; i < b->n_clones; i++)
		model_service_free(b->clones[i]);
	free(b->clones);
	arena_free(b->scratch);
	free(b->key.p);
	free(b->slice_lo);
	free(b->slice_hi);
	free(b->pods);
	free(b->slices);
	store_map_clear(&b->label_idx);
	for (size_t i = 0; i < b->n_lists; i++)
		free(b->lists[i].v);
	free(b->lists);
	free(b->eps);
	free(b->held);
}

int model_view_build(const struct model_store *st, struct model_alloc *alloc,
		     struct model_view *out)
{
	struct build b = {.st = st, .alloc = alloc};
	struct view_priv *priv;
	int ret;

	memset(out, 0, sizeof(*out));
	store_map_init(&b.label_idx);
	priv = calloc(1, sizeof(*priv));
	if (!priv) {
		ret = -ENOMEM;
		goto fail;
	}
	out->priv = priv;
	alloc->gen++;

	ret = collect_services(&b);
	if (!ret)
		ret = alloc_cluster_ips(&b);
	if (!ret)
		ret = alloc_node_ports(&b);
	if (!ret)
		ret = collect_pods(&b);
	if (!ret)
		ret = collect_slices(&b);
	if (!ret)
		ret = index_pods(&b);
	if (!ret && !(out->svcs = calloc(b.n_svcs ? b.n_svcs : 1, sizeof(*out->svcs))))
		ret = -ENOMEM;
	if (!ret)
		ret = build_endpoints(&b, out->svcs, &out->n_svcs);
	if (!ret)
		ret = build_namespaces(&b, priv);
	if (ret)
		goto fail;
	out->namespaces = priv->ns->names;
	out->n_namespaces = priv->ns->n;
	out->id = ++g_view_ids;

	/* Only a complete build may forget: what was not used in it is gone
	 * from the cluster, and its address or note is released. */
	store_map_sweep(&alloc->svc.sticky, alloc->gen);
	store_map_sweep(&alloc->pod.sticky, alloc->gen);
	store_map_sweep(&alloc->node.sticky, alloc->gen);
	store_map_sweep(&alloc->notes, alloc->gen);
	build_fini(&b);
	return 0;

fail:
	log_error("cannot build the view of the cluster: %s", strerror(-ret));
	build_fini(&b);
	model_view_free(out);
	return ret;
}

void model_view_free(struct model_view *v)
{
	struct view_priv *priv = v->priv;

	if (priv) {
		for (size_t i = 0; i < v->n_svcs; i++)
			blk_unref(&v->svcs[i]);
		free(v->svcs);
		nsblock_unref(priv->ns);
		free(priv->changes);
		free(priv);
	}
	memset(v, 0, sizeof(*v));
}

/* ---- the incremental build --------------------------------------------------
 * Recomputes only the Services the store marked (and, where Pods changed, the
 * selector Services of their namespaces); the rest are shared with the
 * previous view. Allocation is kept exactly as a full build would leave it:
 * the pools' bitmaps stay current between builds, and anything whose outcome
 * depends on Services that are not recomputed makes the build a full one. */

struct dirty {
	const char *ns;
	const char *name;
	const struct view_service *old; /* in prev, or NULL */
	size_t pos;			/* index of old in prev, or where it would be */
	struct model_service *clone;	/* working copy of the stored version, or NULL */
	struct view_service vs;		/* the new version, when clone */
	bool packed;			/* vs holds a block this build owns */
	bool reused;			/* vs is old: nothing changed */
};

static int cmp_dirty(const void *x, const void *y)
{
	const struct dirty *a = x, *b = y;
	int c = strcmp0(a->ns, b->ns);
	return c ? c : strcmp0(a->name, b->name);
}

/* Index of ns/name in prev, or where it would be inserted. */
static size_t view_find(const struct model_view *v, const char *ns, const char *name, bool *found)
{
	size_t lo = 0, hi = v->n_svcs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *s = v->svcs[mid].svc;
		int c = strcmp0(s->ns, ns);
		if (!c && name)
			c = strcmp0(s->name, name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = name && lo < v->n_svcs && streq0(v->svcs[lo].svc->ns, ns) &&
		 streq0(v->svcs[lo].svc->name, name);
	return lo;
}

static bool view_derives_from_pods(const struct view_service *vs)
{
	const struct model_service *s = vs->svc;
	return s->type != SVC_EXTERNAL_NAME && !vs->from_slices && s->has_selector &&
	       s->selector.n > 0;
}

/* Gives up one value: an allocated one is free at once, a claimed one when
 * its last claim goes; -EAGAIN when the claim count is unknown. */
static int pool_release(struct alloc_pool *p, uint32_t off, bool allocated)
{
	if (!allocated) {
		if (p->claims[off] == 0 || p->claims[off] == UINT8_MAX)
			return -EAGAIN;
		if (--p->claims[off] != 0)
			return 0;
	}
	p->used[off / 64] &= ~((uint64_t)1 << (off % 64));
	return 0;
}

/* Gives up an old version's values; -EAGAIN when a claim count is unknown. */
static int release_old(struct build *b, const struct model_service *s)
{
	struct alloc_pool *p = &b->alloc->svc, *np = &b->alloc->node;
	uint32_t off;

	for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++)
		if (pool_addr_offset(p, &s->cluster_ips[j], &off) &&
		    pool_release(p, off, s->cluster_ip_allocated) < 0)
			return -EAGAIN;
	if (!has_node_ports(s))
		return 0;
	for (size_t j = 0; j < s->n_ports; j++) {
		uint16_t v = s->ports[j].node_port;
		if (pool_port_in(np, v) &&
		    pool_release(np, v - np->first_value, s->ports[j].node_port_allocated) < 0)
			return -EAGAIN;
	}
	return 0;
}

/* Takes a new version's explicit claims; -EAGAIN when one lands on a value an
 * allocation holds (that other Service would move: a full build's job). */
static int claim_new(struct build *b, const struct model_service *s)
{
	struct alloc_pool *p = &b->alloc->svc, *np = &b->alloc->node;
	char text[ADDR_TEXT];
	uint32_t off;

	for (size_t j = 0; j < s->n_cluster_ips && j < 2; j++) {
		if (!pool_addr_offset(p, &s->cluster_ips[j], &off))
			continue;
		if ((p->claims[off] == 0 && pool_test(p, off)) || p->claims[off] == UINT8_MAX)
			return -EAGAIN;
		if (p->claims[off]) {
			key_obj(b, "dup-ip", s->ns, s->name);
			kb_put(&b->key, s->cluster_ips[j].bytes, sizeof(s->cluster_ips[j].bytes));
			net_addr_format(&s->cluster_ips[j], text, sizeof(text));
			if (note_once(b))
				log_warn("Service %s/%s: clusterIP %s is also claimed by another "
					 "Service; both are served",
					 s->ns, s->name, text);
		}
		pool_claim(p, off);
	}
	if (!has_node_ports(s))
		return 0;
	for (size_t j = 0; j < s->n_ports; j++) {
		uint16_t v = s->ports[j].node_port;
		if (!pool_port_in(np, v))
			continue;
		off = v - np->first_value;
		if ((np->claims[off] == 0 && pool_test(np, off)) || np->claims[off] == UINT8_MAX)
			return -EAGAIN;
		pool_claim(np, off);
	}
	return 0;
}

/* Sticky entries of an old version that the new one did not use go, as a
 * full build's sweep would drop them. */
static void forget_old(struct build *b, const struct model_service *s)
{
	struct store_map_slot *slot;

	if (s->cluster_ip_allocated) {
		key_obj(b, "svc", s->ns, s->name);
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

/* The allocation phases of a full build, over the recomputed Services only:
 * every other Service keeps what it holds, exactly as in a full build where
 * its sticky value is still free. */
static int incr_alloc(struct build *b, struct dirty *dv, size_t nd)
{
	int ret;

	for (size_t i = 0; i < nd; i++)
		if (dv[i].old && (ret = release_old(b, dv[i].old->svc)))
			return ret;
	for (size_t i = 0; i < b->n_svcs; i++)
		if ((ret = claim_new(b, b->svcs[i])))
			return ret;
	/* alloc_cluster_ips and alloc_node_ports skip what the claims above
	 * already did when the pools are not reset: run their keep/take parts. */
	if ((ret = assign_cluster_ips(b)) || (ret = assign_node_ports(b)))
		return ret;
	if (b->key.oom)
		return -ENOMEM;
	for (size_t i = 0; i < nd; i++)
		if (dv[i].old)
			forget_old(b, dv[i].old->svc);
	return 0;
}

/* Slices of the recomputed Services, each Service's sorted by name as the
 * full build's merge walk has them. */
static int incr_slices(struct build *b)
{
	const struct model_slice *one;
	size_t total = 0, n;

	for (size_t i = 0; i < b->n_svcs; i++) {
		store_service_slices(b->st, b->svcs[i]->ns, b->svcs[i]->name, &one, &n);
		total += n;
	}
	b->slices = calloc(total ? total : 1, sizeof(*b->slices));
	b->slice_lo = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_lo));
	b->slice_hi = calloc(b->n_svcs ? b->n_svcs : 1, sizeof(*b->slice_hi));
	if (!b->slices || !b->slice_lo || !b->slice_hi)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_svcs; i++) {
		const struct model_slice *const *v =
		    store_service_slices(b->st, b->svcs[i]->ns, b->svcs[i]->name, &one, &n);
		b->slice_lo[i] = b->n_slices;
		for (size_t k = 0; k < n && b->n_slices < total; k++)
			b->slices[b->n_slices++] = v[k];
		b->slice_hi[i] = b->n_slices;
		qsort(b->slices + b->slice_lo[i], b->slice_hi[i] - b->slice_lo[i],
		      sizeof(*b->slices), cmp_slice);
	}
	return 0;
}

/* Pods of the namespaces where a recomputed Service derives endpoints, with
 * the addresses the last full build gave them (no Pod changed that could move
 * one: see model_view_update). */
static int incr_pods(struct build *b)
{
	struct store_map nss;
	struct model_store_iter it;
	const struct model_object *o;
	struct store_map_slot *slot;
	bool created;
	size_t n = 0;
	int ret = 0;

	store_map_init(&nss);
	for (size_t i = 0; i < b->n_svcs; i++) {
		if (!derives_from_pods(b, i))
			continue;
		const char *ns = b->svcs[i]->ns ? b->svcs[i]->ns : "";
		if ((ret = store_map_insert(&nss, ns, strlen(ns), &slot, &created)))
			goto out;
	}
	if (nss.n == 0)
		goto out;
	model_store_iter_init(&it, b->st, KIND_POD);
	while ((o = model_store_iter_next(&it))) {
		const char *ns = o->u.pod->ns ? o->u.pod->ns : "";
		if (!store_map_find(&nss, ns, strlen(ns)))
			continue;
		if (b->n_pods == n) {
			n = n ? n * 2 : 64;
			struct pod_ref *p = realloc(b->pods, n * sizeof(*p));
			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			b->pods = p;
		}
		struct pod_ref *r = &b->pods[b->n_pods++];
		*r = (struct pod_ref){.pod = o->u.pod};
		if (!r->pod->ip_allocated) {
			r->n_ips = r->pod->n_ips < 2 ? r->pod->n_ips : 2;
			memcpy(r->ips, r->pod->ips, r->n_ips * sizeof(r->ips[0]));
		}
		if (r->pod->has_status || r->n_ips)
			continue;
		key_obj(b, "pod", r->pod->ns, r->pod->name);
		slot = store_map_find(&b->alloc->pod.sticky, b->key.p, b->key.len);
		if (slot) {
			pool_offset_addr(&b->alloc->pod, (uint32_t)slot->val, &r->ips[0]);
			r->n_ips = 1;
		}
	}
	if (b->n_pods)
		qsort(b->pods, b->n_pods, sizeof(*b->pods), cmp_pod);
out:
	store_map_clear(&nss);
	return ret;
}

static int dirty_push(struct dirty **dv, size_t *n, size_t *cap, const char *ns, const char *name)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct dirty *v = realloc(*dv, c * sizeof(*v));
		if (!v)
			return -ENOMEM;
		*dv = v;
		*cap = c;
	}
	(*dv)[(*n)++] = (struct dirty){.ns = ns, .name = name};
	return 0;
}

static bool ns_listed(const struct model_view *v, const char *ns)
{
	size_t lo = 0, hi = v->n_namespaces;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->namespaces[mid], ns);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The namespace list: prev's, shared, unless a changed object's namespace
 * came or went. */
static int incr_namespaces(const struct model_store *st, const struct model_view *prev,
			   struct view_priv *priv)
{
	const struct store_map *nss = &store_changes(st)->nss;
	const struct view_priv *pp = prev->priv;
	const char **names = NULL;
	size_t n = 0;
	bool changed = false;
	int ret = 0;

	for (size_t i = 0; i < nss->cap && !changed; i++)
		if (nss->slots[i].key)
			changed = store_ns_present(st, nss->slots[i].key) !=
				  ns_listed(prev, nss->slots[i].key);
	if (!changed) {
		priv->ns = pp->ns;
		priv->ns->refs++;
		return 0;
	}
	names = calloc(prev->n_namespaces + nss->n + 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < prev->n_namespaces; i++)
		if (store_ns_present(st, prev->namespaces[i]))
			names[n++] = prev->namespaces[i];
	for (size_t i = 0; i < nss->cap; i++) {
		const char *ns = nss->slots[i].key;
		if (ns && *ns && store_ns_present(st, ns) && !ns_listed(prev, ns))
			names[n++] = ns;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	priv->ns = nsblock_new(names, n);
	if (!priv->ns)
		ret = -ENOMEM;
	free(names);
	return ret;
}

static bool svc_same(const struct model_service *a, const struct model_service *b)
{
	if (!streq0(a->ns, b->ns) || !streq0(a->name, b->name) || a->type != b->type ||
	    a->headless != b->headless || a->n_cluster_ips != b->n_cluster_ips ||
	    a->cluster_ip_allocated != b->cluster_ip_allocated ||
	    (a->external_name == NULL) != (b->external_name == NULL) ||
	    !streq0(a->external_name, b->external_name) || a->n_ports != b->n_ports ||
	    a->has_selector != b->has_selector || a->selector.n != b->selector.n ||
	    a->publish_not_ready != b->publish_not_ready ||
	    a->affinity_client_ip != b->affinity_client_ip ||
	    a->affinity_timeout != b->affinity_timeout)
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

static bool str_same(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && streq0(a, b);
}

/* Whether a recomputed Service is exactly what the previous view holds. */
static bool vs_same(const struct view_service *a, const struct view_service *b)
{
	size_t ntp = a->svc->n_ports ? a->svc->n_ports : 1;

	if (a->from_slices != b->from_slices || a->n_eps != b->n_eps || !svc_same(a->svc, b->svc))
		return false;
	for (size_t i = 0; i < a->n_eps; i++) {
		const struct view_endpoint *p = &a->eps[i], *q = &b->eps[i];
		if (net_addr_cmp(&p->addr, &q->addr) != 0 || p->ready != q->ready ||
		    p->serving != q->serving || p->terminating != q->terminating ||
		    !str_same(p->hostname, q->hostname) || !str_same(p->node_name, q->node_name) ||
		    !str_same(p->pod_name, q->pod_name) ||
		    memcmp(p->target_ports, q->target_ports, ntp * sizeof(uint16_t)) != 0)
			return false;
	}
	return true;
}

/* Assembles the new svcs array: prev's entries shared, the recomputed ones in
 * their places, and the list of those that differ. */
static int incr_merge(const struct model_view *prev, struct dirty *dv, size_t nd,
		      struct model_view *out, struct view_priv *priv)
{
	size_t cur = 0, n = 0, nc = 0;

	out->svcs = calloc(prev->n_svcs + nd + 1, sizeof(*out->svcs));
	priv->changes = calloc(nd + 1, sizeof(*priv->changes));
	if (!out->svcs || !priv->changes)
		return -ENOMEM;
	for (size_t i = 0; i <= nd; i++) {
		size_t upto = i < nd ? dv[i].pos : prev->n_svcs;
		for (; cur < upto; cur++) {
			out->svcs[n++] = prev->svcs[cur];
			blk_of(&prev->svcs[cur])->refs++;
		}
		if (i == nd)
			break;
		struct dirty *d = &dv[i];
		if (d->old)
			cur = d->pos + 1;
		if (d->clone) {
			if (d->reused)
				blk_of(d->old)->refs++;
			out->svcs[n] = d->reused ? *d->old : d->vs;
			d->packed = false; /* the view owns it now */
			n++;
		}
		if (!d->reused && (d->old || d->clone))
			priv->changes[nc++] = (struct view_change){
			    .old = d->old, .cur = d->clone ? &out->svcs[n - 1] : NULL};
	}
	out->n_svcs = n;
	out->changes = priv->changes;
	out->n_changes = nc;
	return 0;
}

static int view_incremental(const struct model_store *st, struct model_alloc *alloc,
			    const struct model_view *prev, struct model_view *out)
{
	const struct store_changes *ch = store_changes(st);
	struct build b = {.st = st, .alloc = alloc};
	struct view_priv *priv = NULL;
	struct view_service *nv = NULL;
	struct dirty *dv = NULL;
	size_t nd = 0, cap = 0, n_done = 0;
	size_t limit = prev->n_svcs / 4 + 64;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	store_map_init(&b.label_idx);
	/* A pool that was full left Services without a value that any freed one
	 * may now go to, in an order only a full build knows. */
	if (alloc->svc.starved || alloc->node.starved)
		return -EAGAIN;
	/* Pods without a status take addresses from one pool: with any of them
	 * around, a Pod change may move another's. */
	if (ch->pod_nss.n && (store_pods_unaddressed(st) || alloc->pod.sticky.n))
		return -EAGAIN;
	if (ch->svcs.n > limit)
		return -EAGAIN;

	for (size_t i = 0; i < ch->svcs.cap; i++) {
		const char *key = ch->svcs.slots[i].key;
		if (key && (ret = dirty_push(&dv, &nd, &cap, key, key + strlen(key) + 1)))
			goto out;
	}
	for (size_t i = 0; i < ch->pod_nss.cap; i++) {
		const char *ns = ch->pod_nss.slots[i].key;
		bool found;
		if (!ns)
			continue;
		for (size_t k = view_find(prev, ns, NULL, &found);
		     k < prev->n_svcs && streq0(prev->svcs[k].svc->ns, ns); k++) {
			if (nd > limit) {
				ret = -EAGAIN;
				goto out;
			}
			const struct model_service *s = prev->svcs[k].svc;
			if (view_derives_from_pods(&prev->svcs[k]) &&
			    (ret = dirty_push(&dv, &nd, &cap, s->ns, s->name)))
				goto out;
		}
	}
	if (nd > limit) {
		ret = -EAGAIN;
		goto out;
	}
	if (nd)
		qsort(dv, nd, sizeof(*dv), cmp_dirty);
	size_t u = 0;
	for (size_t i = 0; i < nd; i++)
		if (!u || cmp_dirty(&dv[u - 1], &dv[i]) != 0)
			dv[u++] = dv[i];
	nd = u;

	b.clones = calloc(nd + 1, sizeof(*b.clones));
	if (!b.clones) {
		ret = -ENOMEM;
		goto out;
	}
	alloc->gen++;
	for (size_t i = 0; i < nd; i++) {
		struct dirty *d = &dv[i];
		bool found;
		d->pos = view_find(prev, d->ns, d->name, &found);
		d->old = found ? &prev->svcs[d->pos] : NULL;
		const struct model_service *cur = store_service_find(st, d->ns, d->name);
		if (!cur)
			continue;
		if ((ret = clone_service(&b, cur)))
			goto out;
		d->clone = b.clones[b.n_clones - 1];
	}
	b.svcs = b.clones;
	b.n_svcs = b.n_clones;

	if ((ret = incr_alloc(&b, dv, nd)) || (ret = incr_slices(&b)) || (ret = incr_pods(&b)) ||
	    (ret = index_pods(&b)))
		goto out;
	nv = calloc(b.n_svcs + 1, sizeof(*nv));
	if (!nv) {
		ret = -ENOMEM;
		goto out;
	}
	ret = build_endpoints(&b, nv, &n_done);
	for (size_t i = 0, k = 0; i < nd && k < n_done; i++) {
		if (!dv[i].clone)
			continue;
		dv[i].vs = nv[k++];
		dv[i].packed = true;
	}
	if (ret)
		goto out;
	for (size_t i = 0; i < nd; i++) {
		struct dirty *d = &dv[i];
		if (d->clone && d->old && vs_same(d->old, &d->vs)) {
			blk_unref(&d->vs);
			d->packed = false;
			d->reused = true;
		}
	}

	priv = calloc(1, sizeof(*priv));
	if (!priv) {
		ret = -ENOMEM;
		goto out;
	}
	out->priv = priv;
	if ((ret = incr_namespaces(st, prev, priv)) || (ret = incr_merge(prev, dv, nd, out, priv)))
		goto out;
	out->namespaces = priv->ns->names;
	out->n_namespaces = priv->ns->n;
	out->id = ++g_view_ids;
	out->base_id = prev->id;
out:
	for (size_t i = 0; i < nd; i++)
		if (dv[i].packed)
			blk_unref(&dv[i].vs);
	if (ret)
		model_view_free(out);
	free(nv);
	free(dv);
	build_fini(&b);
	return ret;
}

int model_view_update(struct model_store *st, struct model_alloc *alloc,
		      const struct model_view *prev, struct model_view *out)
{
	const struct view_priv *pp = prev ? prev->priv : NULL;
	int ret = -EAGAIN;

	if (pp && pp->store_epoch == store_changes(st)->epoch) {
		ret = view_incremental(st, alloc, prev, out);
		if (ret < 0 && ret != -EAGAIN)
			log_warn("model: incremental view failed (%s); building in full",
				 strerror(-ret));
	}
	if (ret < 0 && (ret = model_view_build(st, alloc, out)) < 0)
		return ret;
	store_changes_reset(st);
	((struct view_priv *)out->priv)->store_epoch = store_changes(st)->epoch;
	return 0;
}
