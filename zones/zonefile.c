/* Static zones: ldns reads the master file; we keep each record as owner,
 * type, TTL and uncompressed wire rdata, ready to add to every build. */
#include "zones/zonefile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "common/log.h"
#include "wire/dname.h"

struct static_rr {
	uint8_t owner[DNAME_MAX];
	uint16_t type;
	uint32_t ttl;
	uint16_t rdlen;
	uint8_t *rdata;
};

struct static_zone {
	char *origin;
	uint8_t apex[DNAME_MAX];
	struct static_rr *rrs;
	size_t n;
};

const char *zonefile_origin(const struct static_zone *z)
{
	return z->origin;
}

void zonefile_free(struct static_zone *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		free(z->rrs[i].rdata);
	free(z->rrs);
	free(z->origin);
	free(z);
}

/* Renders an ldns rdf list to uncompressed wire rdata. */
static int rr_rdata_wire(const ldns_rr *rr, uint8_t **out, uint16_t *len)
{
	ldns_buffer *buf = ldns_buffer_new(512);
	if (!buf)
		return -ENOMEM;
	int ret = -EINVAL;
	if (ldns_rr_rdata2buffer_wire(buf, rr) != LDNS_STATUS_OK)
		goto out;
	size_t n = ldns_buffer_position(buf);
	if (n > 65535)
		goto out;
	*out = malloc(n ? n : 1);
	if (!*out) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(*out, ldns_buffer_begin(buf), n);
	*len = (uint16_t)n;
	ret = 0;
out:
	ldns_buffer_free(buf);
	return ret;
}

int zonefile_load(const char *origin, const char *path, struct static_zone **out)
{
	int ret = -EINVAL;
	ldns_zone *zone = NULL;
	ldns_rdf *origin_rdf = NULL;
	struct static_zone *z = NULL;
	int line = 0;
	char ob[DNAME_MAX * 4 + 2];

	FILE *fp = fopen(path, "r");
	if (!fp) {
		ret = -errno;
		log_error("zone file %s: %s", path, strerror(errno));
		return ret;
	}
	snprintf(ob, sizeof(ob), "%s%s", origin, origin[strlen(origin) - 1] == '.' ? "" : ".");
	origin_rdf = ldns_dname_new_frm_str(ob);
	if (!origin_rdf) {
		log_error("zone file %s: origin %s is not a domain name", path, origin);
		goto out;
	}
	ldns_status st =
	    ldns_zone_new_frm_fp_l(&zone, fp, origin_rdf, 3600, LDNS_RR_CLASS_IN, &line);
	if (st != LDNS_STATUS_OK) {
		log_error("zone file %s: line %d: %s", path, line, ldns_get_errorstr_by_id(st));
		goto out;
	}
	z = calloc(1, sizeof(*z));
	if (!z || !(z->origin = strdup(ob))) {
		ret = -ENOMEM;
		goto out;
	}
	if (dname_from_text(ob, z->apex, sizeof(z->apex)) < 0) {
		log_error("zone file %s: origin %s is not a domain name", path, origin);
		goto out;
	}
	ldns_rr *soa = ldns_zone_soa(zone);
	if (!soa || ldns_dname_compare(ldns_rr_owner(soa), origin_rdf) != 0) {
		log_error("zone file %s: no SOA record at the apex %s", path, ob);
		goto out;
	}
	ldns_rr_list *list = ldns_zone_rrs(zone);
	size_t n = ldns_rr_list_rr_count(list) + 1;
	z->rrs = calloc(n, sizeof(*z->rrs));
	if (!z->rrs) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = i == 0 ? soa : ldns_rr_list_rr(list, i - 1);
		ldns_rdf *owner = ldns_rr_owner(rr);
		if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
			continue;
		if (!ldns_dname_is_subdomain(owner, origin_rdf) &&
		    ldns_dname_compare(owner, origin_rdf) != 0) {
			char *t = ldns_rdf2str(owner);
			log_error("zone file %s: %s is outside the zone %s", path, t ? t : "?", ob);
			free(t);
			goto out;
		}
		struct static_rr *s = &z->rrs[z->n];
		size_t ol = ldns_rdf_size(owner);
		if (ol > DNAME_MAX)
			goto out;
		memcpy(s->owner, ldns_rdf_data(owner), ol);
		dname_lower(s->owner, ol);
		s->type = (uint16_t)ldns_rr_get_type(rr);
		s->ttl = ldns_rr_ttl(rr);
		int rc = rr_rdata_wire(rr, &s->rdata, &s->rdlen);
		if (rc < 0) {
			ret = rc;
			log_error("zone file %s: a record cannot be rendered", path);
			goto out;
		}
		/* Names inside rdata are matched case-insensitively at build time. */
		if (s->type == LDNS_RR_TYPE_NS || s->type == LDNS_RR_TYPE_CNAME ||
		    s->type == LDNS_RR_TYPE_PTR)
			dname_lower(s->rdata, s->rdlen);
		else if (s->type == LDNS_RR_TYPE_MX && s->rdlen > 2)
			dname_lower(s->rdata + 2, s->rdlen - 2u);
		else if (s->type == LDNS_RR_TYPE_SRV && s->rdlen > 6)
			dname_lower(s->rdata + 6, s->rdlen - 6u);
		z->n++;
	}
	log_info("zone %s loaded from %s: %zu records", ob, path, z->n);
	*out = z;
	z = NULL;
	ret = 0;
out:
	zonefile_free(z);
	if (zone)
		ldns_zone_deep_free(zone);
	if (origin_rdf)
		ldns_rdf_deep_free(origin_rdf);
	fclose(fp);
	return ret;
}

int zonefile_records(struct zb *b, const struct static_zone *z)
{
	struct zb_zone *zz;
	int ret = zb_zone_add(b, z->apex, &zz);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < z->n; i++) {
		const struct static_rr *s = &z->rrs[i];
		if ((ret = zb_rr_add(b, zz, s->owner, s->type, s->ttl, s->rdata, s->rdlen)) < 0)
			return ret;
	}
	return 0;
}
