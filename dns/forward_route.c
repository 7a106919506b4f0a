/* The forwarder's routing decisions, made from bytes and snapshot lookups
 * only. See forward_route.h. */
#include "dns/forward_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/forward_msg.h"

#define T_CNAME	       5
#define T_ANY	       255
#define C_IN	       1
#define RCODE_NOERROR  0
#define RCODE_NXDOMAIN 3

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int fwd_cidr_parse(const char *text, struct fwd_cidr *out)
{
	char host[64];
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	unsigned max;
	if (inet_pton(AF_INET, host, out->bytes) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->bytes) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	unsigned long p = max;
	if (slash) {
		char *end;
		p = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end || p > max)
			return -EINVAL;
	}
	out->prefix = (uint8_t)p;
	return 0;
}

/* True when the first `bits` bits of a and b are equal. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool fwd_cidr_contains(const struct fwd_cidr *c, uint8_t family, const uint8_t *addr)
{
	return c->family == family && prefix_equal(c->bytes, addr, c->prefix);
}

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
 * the service or pod CIDR. */
static bool reverse_outside_cluster(const struct fwd_route_config *cfg, const uint8_t *key,
				    size_t len)
{
	uint8_t family, bytes[16];
	int bits = reverse_prefix(key, len, &family, bytes);
	if (bits < 0)
		return false;
	for (size_t i = 0; i < cfg->n_cluster_cidrs; i++) {
		const struct fwd_cidr *c = &cfg->cluster_cidrs[i];
		if (c->family != family)
			continue;
		unsigned common = (unsigned)bits < c->prefix ? (unsigned)bits : c->prefix;
		if (prefix_equal(c->bytes, bytes, common))
			return false;
	}
	return true;
}

static enum zone_result_kind lookup(const struct snapshot *s, const uint8_t *name, size_t len,
				    uint8_t *rcode)
{
	struct zone_result r;
	zone_lookup(s, name, len, 1 /* A */, &r);
	*rcode = (r.kind == ZR_ANSWER && r.ans) ? r.ans->rcode : RCODE_NOERROR;
	return r.kind;
}

/* ExternalName: the cluster answered with CNAME records only, and the last
 * one points outside every zone served. */
static enum fwd_route_kind route_chase(const struct snapshot *s, const uint8_t *resp, size_t rlen,
				       const struct dns_query_info *info, struct fwd_route *r)
{
	unsigned an = rd16(resp + 6);
	size_t off = info->qend, last_rd = 0;
	if (an == 0 || info->qtype == T_CNAME || info->qtype == T_ANY)
		return FWD_ROUTE_NONE;
	for (unsigned i = 0; i < an; i++) {
		int o = dname_skip(resp, rlen, off);
		if (o < 0 || (size_t)o + 10 > rlen || rd16(resp + o) != T_CNAME)
			return FWD_ROUTE_NONE;
		last_rd = (size_t)o + 10;
		off = last_rd + rd16(resp + o + 8);
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
	if (info->qtype == T_ANY || slen > DNAME_MAX)
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
	if (lookup(s, key + ns_off, klen - ns_off, &rc) != ZR_ANSWER || rc != RCODE_NOERROR)
		return FWD_ROUTE_NONE;
	size_t nl = ns_off; /* `<name>` without its root */
	memcpy(name, key, nl);
	memcpy(name + nl, svc, slen);
	if (lookup(s, name, nl + slen, &rc) == ZR_REFUSED || rc != RCODE_NXDOMAIN)
		return FWD_ROUTE_NONE;
	memcpy(name + nl, cfg->zone, cfg->zone_len);
	if (lookup(s, name, nl + cfg->zone_len, &rc) == ZR_REFUSED || rc != RCODE_NXDOMAIN)
		return FWD_ROUTE_NONE;
	name[nl] = 0;
	if (lookup(s, name, nl + 1, &rc) != ZR_REFUSED)
		return FWD_ROUTE_NONE; /* `<name>.` is ours: the client finds it itself */

	/* The CNAME lives as long as the negative answer it replaces. */
	uint32_t ttl = 5;
	if (rd16(resp + 6) == 0 && rd16(resp + 8) >= 1) {
		int o = dname_skip(resp, rlen, info->qend);
		if (o >= 0 && (size_t)o + 10 <= rlen)
			ttl = rd32(resp + o + 4);
	}
	memcpy(r->target, name, nl + 1);
	r->target_len = (uint16_t)(nl + 1);
	uint8_t *p = r->prefix;
	p[0] = 0xC0;
	p[1] = 12;
	p[2] = 0;
	p[3] = T_CNAME;
	p[4] = 0;
	p[5] = C_IN;
	p[6] = (uint8_t)(ttl >> 24);
	p[7] = (uint8_t)(ttl >> 16);
	p[8] = (uint8_t)(ttl >> 8);
	p[9] = (uint8_t)ttl;
	p[10] = (uint8_t)(r->target_len >> 8);
	p[11] = (uint8_t)r->target_len;
	memcpy(p + 12, r->target, r->target_len);
	r->plen = (uint16_t)(12 + r->target_len);
	r->pcount = 1;
	r->autopath = true;
	return r->kind = FWD_ROUTE_SPLICE;
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
	int kl = dname_read_question(req, info->qend, 12, key);
	if (kl < 0)
		return FWD_ROUTE_NONE;
	size_t klen = (size_t)kl;
	uint16_t qclass = rd16(req + info->qend - 2);
	uint8_t rcode = resp[3] & 0x0F;

	if (info->outside || (info->cluster && qclass == C_IN && rcode == RCODE_NXDOMAIN &&
			      reverse_outside_cluster(cfg, key, klen))) {
		memcpy(r->target, key, klen);
		r->target_len = (uint16_t)klen;
		return r->kind = FWD_ROUTE_DIRECT;
	}
	if (!s || !info->cluster || qclass != C_IN)
		return FWD_ROUTE_NONE;
	if (rcode == RCODE_NOERROR)
		return route_chase(s, resp, rlen, info, r);
	if (rcode == RCODE_NXDOMAIN && cfg->autopath)
		return route_autopath(cfg, s, key, klen, resp, rlen, info, r);
	return FWD_ROUTE_NONE;
}
