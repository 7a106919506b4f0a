/* The forwarder's routing decisions, made from bytes and snapshot lookups
 * only. See forward_route.h. */
#include "resolver/forward_route.h"

#include "wire/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "resolver/forward_msg.h"

/* True when `name` ends with `suffix` on a label boundary; *before gets the
 * number of bytes in front of the suffix. */
static bool ends_with(const uint8_t *name, size_t len, const uint8_t *suffix, size_t slen,
		      size_t *before)
{
	if (slen > len)
		return false;
	for (size_t off = 0;; off += name[off] + 1u) {
		if (len - off == slen) {
			*before = off;
			return memcmp(name + off, suffix, slen) == 0;
		}
		if (len - off < slen || name[off] == 0)
			return false;
	}
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The address prefix a reverse name stands for. Returns its length in bits,
 * or -1 when the name is not a plain reverse name. */
static int reverse_prefix(const uint8_t *key, size_t len, uint8_t *family, uint8_t *bytes)
{
	static const uint8_t v4[] = "\x07in-addr\x04"
				    "arpa";
	static const uint8_t v6[] = "\x03ip6\x04"
				    "arpa";
	size_t before;
	memset(bytes, 0, 16);
	if (ends_with(key, len, v4, sizeof(v4), &before)) {
		*family = AF_INET;
		int n = 0;
		uint8_t oct[4];
		for (size_t off = 0; off < before; off += key[off] + 1u) {
			uint8_t ll = key[off];
			if (n == 4 || ll == 0 || ll > 3)
				return -1;
			unsigned v = 0;
			for (uint8_t i = 1; i <= ll; i++) {
				uint8_t c = key[off + i];
				if (c < '0' || c > '9' || (i == 1 && c == '0' && ll > 1))
					return -1;
				v = v * 10 + (unsigned)(c - '0');
			}
			if (v > 255)
				return -1;
			oct[n++] = (uint8_t)v;
		}
		for (int i = 0; i < n; i++)
			bytes[i] = oct[n - 1 - i];
		return n * 8;
	}
	if (ends_with(key, len, v6, sizeof(v6), &before)) {
		*family = AF_INET6;
		int n = 0;
		uint8_t nib[32];
		for (size_t off = 0; off < before; off += key[off] + 1u) {
			int v = key[off] == 1 ? hexval(key[off + 1]) : -1;
			if (v < 0 || n == 32)
				return -1;
			nib[n++] = (uint8_t)v;
		}
		for (int i = 0; i < n; i++) {
			int pos = n - 1 - i; /* the nibble nearest ip6.arpa comes first */
			bytes[i / 2] |= (uint8_t)(i % 2 ? nib[pos] : nib[pos] << 4);
		}
		return n * 4;
	}
	return -1;
}

/* A reverse name the cluster cannot hold: its address range does not meet
 * the cluster's ranges, as the snapshot says them (they follow the cluster's
 * ServiceCIDRs), else as configured. */
static bool reverse_outside_cluster(const struct fwd_route_config *cfg, const struct snapshot *s,
				    const uint8_t *key, size_t len)
{
	uint8_t family, bytes[16];
	int bits = reverse_prefix(key, len, &family, bytes);
	if (bits < 0)
		return false;
	const struct net_cidr *ranges = cfg->cluster_cidrs;
	size_t n = cfg->n_cluster_cidrs;
	if (s && s->n_rev_cidrs) {
		ranges = s->rev_cidrs;
		n = s->n_rev_cidrs;
	}
	for (size_t i = 0; i < n; i++) {
		/* the ranges meet when the shorter prefix holds the other */
		struct net_cidr c = ranges[i];
		if ((unsigned)bits < c.prefix)
			c.prefix = (uint8_t)bits;
		if (net_cidr_contains_raw(&c, family, bytes))
			return false;
	}
	return true;
}

static enum zone_result_kind lookup(const struct snapshot *s, const uint8_t *name, size_t len,
				    uint8_t *rcode)
{
	struct zone_result r;
	zone_lookup(s, name, len, 1 /* A */, &r);
	*rcode = (r.kind == ZR_ANSWER && r.ans) ? r.ans->rcode : DNS_RCODE_NOERROR;
	return r.kind;
}

/* ExternalName: the cluster answered with CNAME records only, and the last
 * one points outside every zone served. */
static enum fwd_route_kind route_chase(const struct snapshot *s, const uint8_t *resp, size_t rlen,
				       const struct dns_query_info *info, struct fwd_route *r)
{
	unsigned an = wire_rd16(resp + 6);
	size_t off = info->qend, last_rd = 0;
	if (an == 0 || info->qtype == DNS_T_CNAME || info->qtype == DNS_T_ANY)
		return FWD_ROUTE_NONE;
	for (unsigned i = 0; i < an; i++) {
		int o = dname_skip(resp, rlen, off);
		if (o < 0 || (size_t)o + 10 > rlen || wire_rd16(resp + o) != DNS_T_CNAME)
			return FWD_ROUTE_NONE;
		last_rd = (size_t)o + 10;
		off = last_rd + wire_rd16(resp + o + 8);
		if (off > rlen)
			return FWD_ROUTE_NONE;
	}
	size_t next;
	int tl = fwd_name_expand(resp, rlen, last_rd, r->target, &next);
	if (tl < 0 || off - info->qend > FWD_PREFIX_MAX)
		return FWD_ROUTE_NONE;
	dname_lower(r->target, (size_t)tl);
	uint8_t rc;
	if (lookup(s, r->target, (size_t)tl, &rc) != ZR_REFUSED)
		return FWD_ROUTE_NONE; /* inside our zones: the snapshot already followed it */
	r->target_len = (uint16_t)tl;
	memcpy(r->prefix, resp + info->qend, off - info->qend);
	r->plen = (uint16_t)(off - info->qend);
	r->pcount = (uint16_t)an;
	return r->kind = FWD_ROUTE_SPLICE;
}

/* Autopath: `<name>.<ns>.svc.<zone>` is NXDOMAIN, `<ns>` is a namespace, and
 * neither `<name>.svc.<zone>` nor `<name>.<zone>` exists: every name the
 * client would try next in the cluster fails, so give it the answer for
 * `<name>.` now, behind a CNAME that says so. */
static enum fwd_route_kind route_autopath(const struct fwd_route_config *cfg,
					  const struct snapshot *s, const uint8_t *key, size_t klen,
					  const uint8_t *resp, size_t rlen,
					  const struct dns_query_info *info, struct fwd_route *r)
{
	uint8_t svc[DNAME_MAX], name[DNAME_MAX], rc;
	size_t slen = 4 + cfg->zone_len, before;
	if (info->qtype == DNS_T_ANY || slen > DNAME_MAX)
		return FWD_ROUTE_NONE;
	memcpy(svc, "\x03svc", 4);
	memcpy(svc + 4, cfg->zone, cfg->zone_len);
	if (!ends_with(key, klen, svc, slen, &before) || before == 0)
		return FWD_ROUTE_NONE;
	/* The namespace is the last label in front of svc.<zone>. */
	size_t ns_off = 0;
	int labels = 0;
	for (size_t off = 0; off < before; off += key[off] + 1u) {
		ns_off = off;
		labels++;
	}
	if (labels < 2)
		return FWD_ROUTE_NONE;
	if (lookup(s, key + ns_off, klen - ns_off, &rc) != ZR_ANSWER || rc != DNS_RCODE_NOERROR)
		return FWD_ROUTE_NONE;
	size_t nl = ns_off; /* `<name>` without its root */
	memcpy(name, key, nl);
	memcpy(name + nl, svc, slen);
	if (lookup(s, name, nl + slen, &rc) == ZR_REFUSED || rc != DNS_RCODE_NXDOMAIN)
		return FWD_ROUTE_NONE;
	memcpy(name + nl, cfg->zone, cfg->zone_len);
	if (lookup(s, name, nl + cfg->zone_len, &rc) == ZR_REFUSED || rc != DNS_RCODE_NXDOMAIN)
		return FWD_ROUTE_NONE;
	name[nl] = 0;
	if (lookup(s, name, nl + 1, &rc) != ZR_REFUSED)
		return FWD_ROUTE_NONE; /* `<name>.` is ours: the client finds it itself */

	/* The CNAME lives as long as the negative answer it replaces. */
	uint32_t ttl = 5;
	if (wire_hdr_count(resp, WIRE_AN) == 0 && wire_hdr_count(resp, WIRE_NS) >= 1) {
		int o = dname_skip(resp, rlen, info->qend);
		if (o >= 0 && (size_t)o + 10 <= rlen)
			ttl = wire_rd32(resp + o + 4);
	}
	memcpy(r->target, name, nl + 1);
	r->target_len = (uint16_t)(nl + 1);
	uint8_t *p = r->prefix;
	/* Owner: a compression pointer to the question's name. */
	wire_wr16(p, (uint16_t)(0xC000 | WIRE_HDR_LEN));
	wire_wr16(p + 2, DNS_T_CNAME);
	wire_wr16(p + 4, DNS_C_IN);
	wire_wr32(p + 6, ttl);
	wire_wr16(p + 10, r->target_len);
	memcpy(p + 12, r->target, r->target_len);
	r->plen = (uint16_t)(12 + r->target_len);
	r->pcount = 1;
	r->autopath = true;
	return r->kind = FWD_ROUTE_SPLICE;
}

/* --fallthrough: an NXDOMAIN of a zone served (`apex`) for a name under the
 * zones it names, or under any zone when it names none. */
static bool falls_through(const struct fwd_fallthrough *ft, const uint8_t *key, size_t klen,
			  const struct dns_query_info *info)
{
	size_t before;
	if (!ft->on || !info->apex)
		return false;
	if (ft->n == 0)
		return true;
	for (size_t i = 0; i < ft->n; i++)
		if (ends_with(key, klen, ft->zones[i], ft->len[i], &before))
			return true;
	return false;
}

enum fwd_route_kind fwd_route(const struct fwd_route_config *cfg, const struct snapshot *s,
			      const uint8_t *req, const uint8_t *resp, size_t rlen,
			      const struct dns_query_info *info, struct fwd_route *r)
{
	uint8_t key[DNAME_MAX];
	r->kind = FWD_ROUTE_NONE;
	r->plen = r->pcount = 0;
	r->autopath = false;
	if (!info->qend || rlen < info->qend)
		return FWD_ROUTE_NONE;
	int kl = dname_read_question(req, info->qend, WIRE_HDR_LEN, key);
	if (kl < 0)
		return FWD_ROUTE_NONE;
	size_t klen = (size_t)kl;
	uint16_t qclass = wire_rd16(req + info->qend - 2);
	uint8_t rcode = (uint8_t)wire_hdr_rcode(resp);

	if (info->outside || (info->cluster && qclass == DNS_C_IN && rcode == DNS_RCODE_NXDOMAIN &&
			      reverse_outside_cluster(cfg, s, key, klen))) {
		memcpy(r->target, key, klen);
		r->target_len = (uint16_t)klen;
		return r->kind = FWD_ROUTE_DIRECT;
	}
	if (!s || qclass != DNS_C_IN)
		return FWD_ROUTE_NONE;
	if (info->cluster && rcode == DNS_RCODE_NOERROR)
		return route_chase(s, resp, rlen, info, r);
	/* Autopath first: it answers only names that can be nothing but a step
	 * of the client's search list. */
	if (info->cluster && rcode == DNS_RCODE_NXDOMAIN && cfg->autopath &&
	    route_autopath(cfg, s, key, klen, resp, rlen, info, r) != FWD_ROUTE_NONE)
		return r->kind;
	if (rcode == DNS_RCODE_NXDOMAIN && falls_through(&cfg->fallthrough, key, klen, info)) {
		memcpy(r->target, key, klen);
		r->target_len = (uint16_t)klen;
		return r->kind = FWD_ROUTE_DIRECT;
	}
	return FWD_ROUTE_NONE;
}
