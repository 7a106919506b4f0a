/* The allocator: pools of ClusterIPs, Pod IPs and NodePorts handed to objects
 * that lack them, as the API server and the CNI would, deterministic (hash of
 * the object's key, then the next free value) and sticky while the object lives. */
#include "discovery/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

/* Allocation bitmaps cover at most this many addresses (2 MiB of bits); the
 * API server itself refuses service ranges larger than 2^20. */
#define POOL_MAX_BITS 24

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

bool alloc_pool_port_in(const struct alloc_pool *p, uint32_t v)
{
	return v >= p->first_value && v - p->first_value < p->size;
}

void alloc_pool_reset(struct alloc_pool *p)
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

bool alloc_pool_test(const struct alloc_pool *p, uint32_t off)
{
	return p->used[off / 64] >> (off % 64) & 1;
}

void alloc_pool_set(struct alloc_pool *p, uint32_t off)
{
	p->used[off / 64] |= (uint64_t)1 << (off % 64);
}

bool alloc_pool_addr_offset(const struct alloc_pool *p, const struct net_addr *a, uint32_t *off)
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

void alloc_pool_offset_addr(const struct alloc_pool *p, uint32_t off, struct net_addr *a)
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

bool alloc_pool_claim(struct alloc_pool *p, uint32_t off)
{
	bool was = alloc_pool_test(p, off);
	alloc_pool_set(p, off);
	if (p->claims && p->claims[off] < UINT8_MAX)
		p->claims[off]++;
	return !was;
}

bool alloc_pool_keep(struct alloc_pool *p, const void *key, size_t klen, uint32_t gen,
		     uint32_t *off)
{
	struct store_map_slot *s = store_map_find(&p->sticky, key, klen);

	if (!s)
		return false;
	uint32_t o = (uint32_t)s->val;
	if (o < p->lo || o >= p->hi || alloc_pool_test(p, o))
		return false;
	alloc_pool_set(p, o);
	s->gen = gen;
	*off = o;
	return true;
}

int alloc_pool_take(struct alloc_pool *p, const void *key, size_t klen, uint32_t gen, uint32_t *off)
{
	uint32_t span = p->hi - p->lo;
	struct store_map_slot *s;
	bool created;
	int ret;

	if (span == 0)
		return -ENOSPC;
	uint32_t o = p->lo + (uint32_t)(store_hash(key, klen) % span);
	for (uint32_t n = 0; alloc_pool_test(p, o); n++) {
		if (n == span)
			return -ENOSPC;
		o = o + 1 == p->hi ? p->lo : o + 1;
	}
	ret = store_map_insert(&p->sticky, key, klen, &s, &created);
	if (ret)
		return ret;
	alloc_pool_set(p, o);
	s->val = o;
	s->gen = gen;
	*off = o;
	return 0;
}

int alloc_pool_release(struct alloc_pool *p, uint32_t off, bool allocated)
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

void alloc_sweep(struct model_alloc *a)
{
	store_map_sweep(&a->svc.sticky, a->gen);
	store_map_sweep(&a->pod.sticky, a->gen);
	store_map_sweep(&a->node.sticky, a->gen);
	store_map_sweep(&a->notes, a->gen);
}
