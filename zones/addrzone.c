/* Central mode's map from a client address to its zone: the zone of every
 * endpoint address whose EndpointSlice names one, so that a server that is not
 * on a node can still tell which zone a querying Pod is in. */
#include "zones/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The key of an address: family, then its bytes with the unused ones zero,
 * so that one memcmp orders entries. */
static void addr_key(const struct net_addr *a, uint8_t *family, uint8_t bytes[16])
{
	size_t n = a->family == AF_INET ? 4 : 16;
	*family = a->family;
	memset(bytes, 0, 16);
	memcpy(bytes, a->bytes, n);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct snapshot_addr_zone *x = a, *y = b;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	int c = memcmp(x->bytes, y->bytes, sizeof(x->bytes));
	if (c)
		return c;
	return (int)x->zone - (int)y->zone;
}

/* The distinct zone names of the view's endpoints, sorted, at most
 * SNAPSHOT_MAX_ZONES (the first by name). */
static int collect_zones(const struct model_view *v, struct snapshot *s, size_t n_eps)
{
	const char **names = malloc((n_eps ? n_eps : 1) * sizeof(*names));
	size_t n = 0;
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < v->n_svcs; i++)
		for (size_t e = 0; e < v->svcs[i].n_eps; e++)
			if (v->svcs[i].eps[e].zone && v->svcs[i].eps[e].zone[0])
				names[n++] = v->svcs[i].eps[e].zone;
	qsort(names, n, sizeof(*names), name_cmp);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(names[k - 1], names[i]) != 0)
			names[k++] = names[i];
	if (k > SNAPSHOT_MAX_ZONES) {
		log_warn("snapshot: endpoints name %zu zones; clients are placed in the first %d "
			 "only",
			 k, SNAPSHOT_MAX_ZONES);
		k = SNAPSHOT_MAX_ZONES;
	}
	s->zone_names = names;
	s->n_zone_names = k;
	if (!(s->zone_hashes = malloc((k ? k : 1) * sizeof(*s->zone_hashes))))
		return -ENOMEM;
	for (size_t i = 0; i < k; i++)
		s->zone_hashes[i] = snapshot_zone_hash(names[i]);
	return 0;
}

int snapshot_addr_zones_build(const struct snapshot_config *cfg, const struct model_view *v,
			      struct snapshot *s)
{
	size_t n_eps = 0, n = 0;
	int ret;

	if (cfg->node_zone && cfg->node_zone[0])
		return 0; /* node mode: the server's own zone orders answers */
	for (size_t i = 0; i < v->n_svcs; i++)
		n_eps += v->svcs[i].n_eps;
	if ((ret = collect_zones(v, s, n_eps)) < 0 || !s->n_zone_names)
		return ret;
	struct snapshot_addr_zone *t = malloc(n_eps * sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < v->n_svcs; i++)
		for (size_t e = 0; e < v->svcs[i].n_eps; e++) {
			const struct view_endpoint *ep = &v->svcs[i].eps[e];
			if (!ep->zone || !ep->zone[0])
				continue;
			const char **z = bsearch(&ep->zone, s->zone_names, s->n_zone_names,
						 sizeof(*s->zone_names), name_cmp);
			if (!z)
				continue; /* past SNAPSHOT_MAX_ZONES */
			addr_key(&ep->addr, &t[n].family, t[n].bytes);
			t[n++].zone = (uint8_t)(z - s->zone_names);
		}
	qsort(t, n, sizeof(*t), entry_cmp);
	/* An address in slices of two zones: the first zone by name. */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!k || t[k - 1].family != t[i].family ||
		    memcmp(t[k - 1].bytes, t[i].bytes, sizeof(t[i].bytes)) != 0)
			t[k++] = t[i];
	s->addr_zones = t;
	s->n_addr_zones = k;
	s->bytes +=
	    k * sizeof(*t) + s->n_zone_names * (sizeof(*s->zone_names) + sizeof(*s->zone_hashes));
	return 0;
}

void snapshot_addr_zones_free(struct snapshot *s)
{
	free(s->addr_zones);
	free(s->zone_names);
	free(s->zone_hashes);
	s->addr_zones = NULL;
	s->zone_names = NULL;
	s->zone_hashes = NULL;
	s->n_addr_zones = s->n_zone_names = 0;
}

uint32_t snapshot_zone_hash(const char *zone)
{
	uint32_t h = 2166136261u; /* FNV-1a: the same in every build */
	for (const unsigned char *p = (const unsigned char *)zone; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h ? h : 1;
}

int snapshot_addr_zone(const struct snapshot *s, uint8_t family, const uint8_t *bytes)
{
	struct snapshot_addr_zone key;
	size_t lo = 0, hi = s->n_addr_zones;

	if (!hi || (family != AF_INET && family != AF_INET6))
		return -1;
	key.family = family;
	memset(key.bytes, 0, sizeof(key.bytes));
	memcpy(key.bytes, bytes, family == AF_INET ? 4 : 16);
	key.zone = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct snapshot_addr_zone *m = &s->addr_zones[mid];
		int c = m->family != key.family ? (m->family < key.family ? -1 : 1)
						: memcmp(m->bytes, key.bytes, sizeof(key.bytes));
		if (c == 0)
			return m->zone;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}
