/* Round robin and ClientIP session affinity for one Service port. The affinity
 * table is open addressing with linear probing; expired entries stay in place
 * (so probe chains stay intact) until an insert reuses them or a rehash drops
 * them, which keeps lookups free of any sweep. */
#include "proxy/balance.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/shash.h"

struct balance_slot {
	bool used;
	struct net_addr client;
	struct proxy_endpoint ep;
	uint64_t last_ms; /* last time this client was sent to ep */
};

void balance_init(struct balance *b, size_t max_entries)
{
	memset(b, 0, sizeof(*b));
	b->max_entries = max_entries < 8 ? 8 : max_entries;
}

void balance_free(struct balance *b)
{
	free(b->slots);
	b->slots = NULL;
	b->cap = b->used = 0;
}

void balance_clear(struct balance *b)
{
	balance_free(b);
}

static size_t addr_len(const struct net_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static bool addr_eq(const struct net_addr *a, const struct net_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, addr_len(a)) == 0;
}

static size_t addr_hash(const struct net_addr *a)
{
	/* Keyed (common/shash.h): a NodePort is open to any address, and an IPv6
	 * client has a /64 to choose from, enough to fill one probe run. */
	return (size_t)shash_bytes(a->family, a->bytes, addr_len(a));
}

static bool expired(const struct balance_slot *s, uint32_t affinity_ms, uint64_t now_ms)
{
	return now_ms - s->last_ms >= affinity_ms;
}

static struct balance_slot *slot_find(const struct balance *b, const struct net_addr *client)
{
	if (!b->cap)
		return NULL;
	size_t mask = b->cap - 1;
	for (size_t i = addr_hash(client) & mask;; i = (i + 1) & mask) {
		struct balance_slot *s = &b->slots[i];
		if (!s->used)
			return NULL;
		if (addr_eq(&s->client, client))
			return s;
	}
}

/* Rebuilds the table with `cap` slots, keeping only live entries. */
static int rehash(struct balance *b, size_t cap, uint32_t affinity_ms, uint64_t now_ms)
{
	struct balance_slot *ns = calloc(cap, sizeof(*ns));
	if (!ns)
		return -1;
	size_t used = 0;
	for (size_t k = 0; k < b->cap; k++) {
		const struct balance_slot *s = &b->slots[k];
		if (!s->used || expired(s, affinity_ms, now_ms))
			continue;
		for (size_t i = addr_hash(&s->client) & (cap - 1);; i = (i + 1) & (cap - 1))
			if (!ns[i].used) {
				ns[i] = *s;
				used++;
				break;
			}
	}
	free(b->slots);
	b->slots = ns;
	b->cap = cap;
	b->used = used;
	return 0;
}

void balance_bind(struct balance *b, const struct net_addr *client, const struct proxy_endpoint *ep,
		  uint32_t affinity_ms, uint64_t now_ms)
{
	if (!affinity_ms)
		return;
	struct balance_slot *s = slot_find(b, client);
	if (s) {
		s->ep = *ep;
		s->last_ms = now_ms;
		return;
	}
	/* Keep the load at most 3/4 (counting expired slots, which still take
	 * part in probing): rehash, growing while live entries are over half. */
	if ((b->used + 1) * 4 > b->cap * 3) {
		size_t live = balance_affinity_count(b, affinity_ms, now_ms);
		size_t cap = b->cap ? b->cap : 16;
		while ((live + 1) * 2 > cap && cap / 2 < b->max_entries)
			cap *= 2;
		if ((live + 1) * 4 > cap * 3 || rehash(b, cap, affinity_ms, now_ms) < 0) {
			b->affinity_dropped++;
			return;
		}
	}
	size_t mask = b->cap - 1;
	struct balance_slot *reuse = NULL;
	size_t i = addr_hash(client) & mask;
	for (; b->slots[i].used; i = (i + 1) & mask)
		if (!reuse && expired(&b->slots[i], affinity_ms, now_ms))
			reuse = &b->slots[i];
	if (!reuse) {
		reuse = &b->slots[i];
		reuse->used = true;
		b->used++;
	}
	/* An expired slot reused in the middle of a chain is fine: a lookup for
	 * its old client fails either way. */
	reuse->client = *client;
	reuse->ep = *ep;
	reuse->last_ms = now_ms;
}

void balance_forget(struct balance *b, const struct net_addr *client)
{
	struct balance_slot *s = slot_find(b, client);
	if (!s)
		return;
	/* Backward-shift deletion: later members of the chain move up so that
	 * no lookup stops early at the hole. */
	size_t mask = b->cap - 1;
	size_t hole = (size_t)(s - b->slots);
	for (size_t j = (hole + 1) & mask; b->slots[j].used; j = (j + 1) & mask) {
		size_t home = addr_hash(&b->slots[j].client) & mask;
		/* Move j into the hole unless its home lies cyclically in (hole, j]. */
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (!stays) {
			b->slots[hole] = b->slots[j];
			hole = j;
		}
	}
	memset(&b->slots[hole], 0, sizeof(b->slots[hole]));
	b->used--;
}

size_t balance_affinity_count(const struct balance *b, uint32_t affinity_ms, uint64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < b->cap; i++)
		n += b->slots[i].used && !expired(&b->slots[i], affinity_ms, now_ms);
	return n;
}

static int ep_cmp(const struct proxy_endpoint *a, const struct proxy_endpoint *b)
{
	int c = net_addr_cmp(&a->addr, &b->addr);
	if (c)
		return c;
	return (int)a->port - (int)b->port;
}

long balance_find(const struct proxy_endpoint *eps, size_t n, const struct proxy_endpoint *ep)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ep_cmp(&eps[mid], ep);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

size_t balance_pick(struct balance *b, const struct proxy_endpoint *eps, size_t n,
		    const struct net_addr *client, uint32_t affinity_ms, uint64_t now_ms)
{
	if (affinity_ms) {
		struct balance_slot *s = slot_find(b, client);
		if (s && !expired(s, affinity_ms, now_ms)) {
			long i = balance_find(eps, n, &s->ep);
			if (i >= 0) {
				s->last_ms = now_ms;
				return (size_t)i;
			}
		}
	}
	size_t i = b->cursor % n;
	b->cursor = (uint32_t)(i + 1);
	balance_bind(b, client, &eps[i], affinity_ms, now_ms);
	return i;
}
