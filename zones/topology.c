/* Topology in a headless Service's answers: the locality tier of each
 * endpoint as this server's node and zone see it (the order of the rendered
 * RRsets), and the zonal names clients filter by (CoreDNS's `_zone` names). */
#include "zones/cluster.h"

#include <string.h>
#include <sys/socket.h>

#include "wire/dname.h"
#include "wire/wire.h"

/* Whether the comma-separated list holds `zone`. */
static bool zone_listed(const char *list, const char *zone)
{
	size_t zl = strlen(zone);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == zl && memcmp(p, zone, zl) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

unsigned cluster_endpoint_tier(const struct cluster_zones *cz, const struct view_endpoint *ep)
{
	if (!cz->node && !cz->node_zone)
		return 0;
	if (cz->node && ep->node_name && strcmp(ep->node_name, cz->node) == 0)
		return 0;
	/* Hints are where the EndpointSlice controller wants this zone's
	 * traffic to go (kube-proxy follows them): they win over the zone. */
	if (cz->node_zone && (ep->for_zones ? zone_listed(ep->for_zones, cz->node_zone)
					    : ep->zone && strcmp(ep->zone, cz->node_zone) == 0))
		return 1;
	return 2;
}

static bool published(const struct model_service *s, const struct view_endpoint *e)
{
	return e->ready || s->publish_not_ready;
}

/* A zone name that can be one DNS label. */
static bool zone_label_ok(const char *z)
{
	size_t n = strlen(z);
	if (n == 0 || n > DNAME_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = z[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* The published addresses of `vs` (of zone `zone`, or all when NULL) at
 * `owner`, nearest tier first. */
static int zonal_addrs(struct zb *b, const struct cluster_zones *cz, const uint8_t *owner,
		       const struct view_service *vs, const char *zone)
{
	int ret = 0;
	for (unsigned tier = 0; tier < ZB_TIERS && ret >= 0; tier++) {
		zb_set_tier(b, tier);
		for (size_t e = 0; e < vs->n_eps && ret >= 0; e++) {
			const struct view_endpoint *ep = &vs->eps[e];
			if (!published(vs->svc, ep) || cluster_endpoint_tier(cz, ep) != tier ||
			    (zone && (!ep->zone || strcmp(ep->zone, zone) != 0)))
				continue;
			ret = cluster_add_addr(b, cz->z, owner, &ep->addr, cz->ttl);
		}
	}
	zb_set_tier(b, 0);
	return ret;
}

/* Zones one Service's zonal names are made for at most (the first ones its
 * sorted endpoints name); a zone past them is answered as one without
 * endpoints. */
#define ZONAL_MAX 64

int cluster_zonal_names(struct zb *b, const struct cluster_zones *cz, const uint8_t *sname,
			const struct view_service *vs)
{
	const char *zones[ZONAL_MAX];
	size_t n_zones = 0;
	uint8_t base[DNAME_MAX], pin[DNAME_MAX], prefer[DNAME_MAX], name[DNAME_MAX];
	int ret = 0;

	for (size_t e = 0; e < vs->n_eps; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		if (!published(vs->svc, ep) || !ep->zone || !zone_label_ok(ep->zone))
			continue;
		bool seen = false;
		for (size_t i = 0; i < n_zones && !seen; i++)
			seen = strcmp(zones[i], ep->zone) == 0;
		if (!seen && n_zones < ZONAL_MAX)
			zones[n_zones++] = ep->zone;
	}
	if (!n_zones)
		return 0;
	if (cluster_prepend_label(base, "_zone", sname) < 0 ||
	    cluster_prepend_label(pin, "pin", base) < 0 ||
	    cluster_prepend_label(prefer, "prefer", base) < 0)
		return 0; /* the Service's name is too long for them */
	for (size_t i = 0; i < n_zones; i++) {
		if (cluster_prepend_label(name, zones[i], pin) >= 0 &&
		    (ret = zonal_addrs(b, cz, name, vs, zones[i])) < 0)
			return ret;
		if (cluster_prepend_label(name, zones[i], prefer) >= 0 &&
		    (ret = zonal_addrs(b, cz, name, vs, zones[i])) < 0)
			return ret;
	}
	/* Any other zone: pin has nothing (NODATA), prefer falls back to all. */
	if (cluster_prepend_label(name, "*", pin) < 0 || (ret = zb_name_add(b, cz->z, name)) < 0)
		return ret;
	if (cluster_prepend_label(name, "*", prefer) < 0 ||
	    (ret = zonal_addrs(b, cz, name, vs, NULL)) < 0)
		return ret;
	return 0;
}
