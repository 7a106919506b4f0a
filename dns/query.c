/* One query in, one response out: straight-line code over bytes, cheapest
 * rejections first, every read bounds-checked. See query.h. */
#include "dns/query.h"

#include "wire/wire.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/lifecycle_freshness.h"
#include "wire/dname.h"

struct edns {
	int present;
	uint16_t payload;
	uint8_t version;
	uint16_t flags;
};

/* Walks the RRs after the question; finds the OPT record. Returns 0 or -1 for
 * a malformed message (FORMERR). */
static int parse_additional(const uint8_t *req, size_t len, size_t off, unsigned count,
			    struct edns *e)
{
	for (unsigned i = 0; i < count; i++) {
		int o = dname_skip(req, len, off);
		if (o < 0 || (size_t)o + 10 > len)
			return -1;
		size_t rr = (size_t)o;
		uint16_t type = wire_rd16(req + rr);
		uint16_t rdlen = wire_rd16(req + rr + 8);
		if (rr + 10 + rdlen > len)
			return -1;
		if (type == DNS_T_OPT) {
			/* RFC 6891 6.1.1: one OPT, owned by the root. */
			if (e->present || rr != off + 1 || req[off] != 0)
				return -1;
			e->present = 1;
			e->payload = wire_rd16(req + rr + 2);
			e->version = req[rr + 5];
			e->flags = wire_rd16(req + rr + 6);
		}
		off = rr + 10 + rdlen;
	}
	return 0;
}

static size_t put_opt(uint8_t *p, const struct edns *e, uint8_t ext_rcode)
{
	p[0] = 0; /* root owner */
	wire_wr16(p + 1, DNS_T_OPT);
	wire_wr16(p + 3, DNS_EDNS_MAX_UDP);
	p[5] = ext_rcode;
	p[6] = 0; /* version 0 */
	wire_wr16(p + 7, e->flags & DNS_EDNS_FLAG_DO);
	wire_wr16(p + 9, 0);
	return WIRE_OPT_LEN;
}

/* Which record a rotating answer starts at: one counter per worker, moved on
 * by every such answer, so that a name asked N times starts at each of its k
 * records about N/k times. */
static _Thread_local uint32_t rot_next;

/* Records [lo, hi) of a rotating answer section, started at lo + k % (hi - lo),
 * at out; returns their bytes. */
static inline size_t put_tier(uint8_t *out, const struct zone_answer *a, unsigned lo, unsigned hi,
			      uint32_t k)
{
	if (lo == hi)
		return 0;
	size_t first = zone_answer_rot_off(a, lo);
	size_t end = zone_answer_rec_off(a, hi);
	if (hi - lo == 1) { /* one record (the node's often): no division, one copy */
		memcpy(out, a->data + first, end - first);
		return end - first;
	}
	size_t start = zone_answer_rot_off(a, lo + k % (hi - lo));
	memcpy(out, a->data + start, end - start);
	memcpy(out + end - start, a->data + first, start - first);
	return end - first;
}

/* Records [lo, hi) of variant v of a rotating answer section, started at
 * lo + k % (hi - lo), one by one (they are not adjacent in data); returns
 * their bytes. */
static inline size_t put_var_tier(uint8_t *out, const struct zone_answer *a, unsigned v,
				  unsigned lo, unsigned hi, uint32_t k)
{
	size_t n = 0;
	unsigned cnt = hi - lo, j = cnt ? k % cnt : 0;
	for (unsigned i = 0; i < cnt; i++) {
		size_t off = zone_answer_var_off(a, v, lo + j);
		size_t l = 12u + wire_rd16(a->data + off + 10); /* owner: a 2-byte pointer */
		memcpy(out + n, a->data + off, l);
		n += l;
		j = j + 1 == cnt ? 0 : j + 1;
	}
	return n;
}

/* The variant of `a` for the zone of `peer` (central mode), or -1: a client
 * that is no known endpoint, or whose zone the answer has no ordering for. */
static inline int client_var(const struct snapshot *s, const struct sockaddr *peer,
			     const struct zone_answer *a)
{
	int z = -1;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)peer;
		z = snapshot_addr_zone(s, AF_INET, (const uint8_t *)&in->sin_addr);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)peer;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		z = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? snapshot_addr_zone(s, AF_INET, b + 12)
							  : snapshot_addr_zone(s, AF_INET6, b);
	}
	if (z < 0)
		return -1;
	uint32_t h = s->zone_hashes[z];
	for (unsigned i = 0; i < a->n_var; i++)
		if (zone_answer_var_zone(a, i) == h)
			return (int)i;
	return -1;
}

/* The first `len` bytes of answer `a` (all of it, or answer and authority),
 * its answer section rotated when it may be (zone_answer.rot): as one, or
 * each locality tier within itself, so that the nearest stay first; in
 * central mode the tiers of the ordering for `peer`'s zone, when it has one. */
static inline void put_answer(uint8_t *out, const struct zone_answer *a, size_t len,
			      const struct snapshot *s, const struct sockaddr *peer)
{
	if (__builtin_expect(!a->rot, 1)) {
		memcpy(out, a->data, len);
		return;
	}
	uint32_t k = rot_next++;
	size_t an_len = a->len_an_ns; /* no authority: the answer section */
	int v = a->n_var && peer ? client_var(s, peer, a) : -1;
	if (v >= 0) {
		unsigned near = zone_answer_var_near(a, (unsigned)v);
		size_t n = put_var_tier(out, a, (unsigned)v, 0, near, k);
		put_var_tier(out + n, a, (unsigned)v, near, a->rot, k);
	} else if (__builtin_expect(a->rot_t1 == a->rot, 1)) {
		size_t start = zone_answer_rot_off(a, k % a->rot);
		memcpy(out, a->data + start, an_len - start);
		memcpy(out + an_len - start, a->data, start);
	} else {
		size_t n = put_tier(out, a, 0, a->rot_t1, k);
		n += put_tier(out + n, a, a->rot_t1, a->rot_t2, k);
		put_tier(out + n, a, a->rot_t2, a->rot, k);
	}
	memcpy(out + an_len, a->data + an_len, len - an_len);
}

/* The EDE option of a coming name (info-code 0 and its text), 6 + 22 bytes. */
static size_t put_ede_not_ready(uint8_t *p)
{
	static const char text[] = ZONE_EDE_NOT_READY_TEXT;
	wire_wr16(p, DNS_EDNS_EDE);
	wire_wr16(p + 2, (uint16_t)(2 + sizeof(text) - 1));
	wire_wr16(p + 4, DNS_EDE_OTHER);
	memcpy(p + 6, text, sizeof(text) - 1);
	return 6 + sizeof(text) - 1;
}

/* The response's flags: QR, with the query's opcode, RD and CD; AA, TC, RA,
 * Z and AD cleared, rcode 0. */
static inline uint16_t reply_flags(const uint8_t *req)
{
	return (uint16_t)(WIRE_QR | (wire_hdr_flags(req) & (WIRE_OPCODE_BITS | WIRE_RD | WIRE_CD)));
}

/* Header + question (when one was read), with the given rcode and no records. */
static size_t reply_empty(uint8_t *resp, const uint8_t *req, size_t qend, uint8_t rcode,
			  const struct edns *e, struct dns_query_info *info)
{
	memcpy(resp, req, WIRE_HDR_LEN);
	wire_hdr_set_flags(resp, reply_flags(req));
	wire_hdr_set_rcode(resp, rcode);
	size_t n = WIRE_HDR_LEN;
	wire_hdr_set_count(resp, WIRE_QD, qend > WIRE_HDR_LEN ? 1 : 0);
	wire_hdr_set_count(resp, WIRE_AN, 0);
	wire_hdr_set_count(resp, WIRE_NS, 0);
	wire_hdr_set_count(resp, WIRE_AR, 0);
	if (qend > WIRE_HDR_LEN) {
		memcpy(resp + WIRE_HDR_LEN, req + WIRE_HDR_LEN, qend - WIRE_HDR_LEN);
		n = qend;
	}
	if (e && e->present) {
		n += put_opt(resp + n, e, (uint8_t)(rcode >> 4));
		wire_hdr_set_count(resp, WIRE_AR, 1);
	}
	info->rcode = rcode;
	return n;
}

size_t dns_answer(const struct snapshot *s, const uint8_t *req, size_t len, uint8_t *resp,
		  size_t cap, enum dns_proto proto, struct dns_query_info *info)
{
	return dns_answer_from(s, NULL, req, len, resp, cap, proto, info);
}

size_t dns_answer_from(const struct snapshot *s, const struct sockaddr *peer, const uint8_t *req,
		       size_t len, uint8_t *resp, size_t cap, enum dns_proto proto,
		       struct dns_query_info *info)
{
	uint8_t key[DNAME_MAX];
	struct edns e = {0};
	info->qtype = 0;
	info->rcode = 0;
	info->truncated = 0;
	info->qend = 0;
	info->xfr = 0;
	info->apex = NULL;
	info->apex_len = 0;
	info->stale = 0;
	info->outside = 0;
	info->cluster = 0;

	if (len < WIRE_HDR_LEN || cap < 512)
		return 0;
	if (wire_hdr_has(req, WIRE_QR)) /* a response: never answer it (reflection loops) */
		return 0;
	unsigned opcode = wire_hdr_opcode(req);
	uint16_t qdcount = wire_hdr_count(req, WIRE_QD);

	/* The question, when there is exactly one and it is well formed. */
	size_t qend = 0;
	int qlen = -1;
	if (qdcount == 1) {
		qlen = dname_read_question(req, len, WIRE_HDR_LEN, key);
		if (qlen >= 0 && WIRE_HDR_LEN + (size_t)qlen + 4 <= len)
			qend = WIRE_HDR_LEN + (size_t)qlen + 4;
	}
	if (opcode != DNS_OP_QUERY)
		return reply_empty(resp, req, qend, DNS_RCODE_NOTIMP, NULL, info);
	if (!qend)
		return reply_empty(resp, req, 0, DNS_RCODE_FORMERR, NULL, info);
	uint16_t qtype = wire_rd16(req + qend - 4);
	uint16_t qclass = wire_rd16(req + qend - 2);
	info->qtype = qtype;

	/* A query carries no answer or authority records (RFC 1035 4.1.1), but
	 * an IXFR names the client's version in an authority SOA (RFC 1995). */
	uint16_t nscount = wire_hdr_count(req, WIRE_NS);
	if (wire_hdr_count(req, WIRE_AN) || (nscount && qtype != DNS_T_IXFR))
		return reply_empty(resp, req, qend, DNS_RCODE_FORMERR, NULL, info);
	if (parse_additional(req, len, qend, (unsigned)nscount + wire_hdr_count(req, WIRE_AR), &e) <
	    0)
		return reply_empty(resp, req, qend, DNS_RCODE_FORMERR, NULL, info);
	if (e.present && e.version > 0)
		return reply_empty(resp, req, qend, DNS_RCODE_BADVERS, &e, info);
	if (qtype == DNS_T_OPT)
		return reply_empty(resp, req, qend, DNS_RCODE_FORMERR, &e, info);

	size_t limit = proto == DNS_TCP ? DNS_MAX_MSG : 512;
	if (proto == DNS_UDP && e.present) {
		limit = e.payload < 512 ? 512 : e.payload;
		if (limit > DNS_EDNS_MAX_UDP)
			limit = DNS_EDNS_MAX_UDP;
	}
	if (limit > cap)
		limit = cap;
	size_t opt = e.present ? WIRE_OPT_LEN : 0;
	info->qend = (uint16_t)qend;
	info->limit = (uint16_t)limit;
	info->edns = (uint8_t)e.present;
	info->edns_do = (e.flags & DNS_EDNS_FLAG_DO) != 0;

	if (!s)
		return reply_empty(resp, req, qend, DNS_RCODE_SERVFAIL, &e, info);
	/* Transfers are the TCP path's to serve, to the clients it allows
	 * (zones/xfr.h); this is the answer for everyone else. */
	if (qtype == DNS_T_AXFR || qtype == DNS_T_IXFR) {
		info->xfr = 1;
		return reply_empty(resp, req, qend, DNS_RCODE_REFUSED, &e, info);
	}

	struct zone_result r;
	r.dynamic = false;
	bool generation = false; /* CH TXT generation.<zone>: made now, not prerendered */
	/* CH TXT <svc>.<ns>.svc.<zone>: a Service's port view, made now. Probed
	 * with no room first: a Service that exists does not fit in 0 bytes. */
	bool port_view = false, pv_cut = false;
	uint16_t pv_n = 0;
	uint8_t pv_probe[1];
	if (qclass == DNS_C_IN) {
		zone_lookup(s, key, (size_t)qlen, qtype, &r);
	} else if (qclass == DNS_C_CH) {
		r.kind = ZR_ANSWER;
		r.ans = zone_lookup_chaos(s, key, (size_t)qlen, qtype);
		generation = !r.ans && freshness_is_generation(key, (size_t)qlen, qtype);
		port_view =
		    !r.ans && !generation && (qtype == DNS_T_TXT || qtype == DNS_T_ANY) &&
		    (zone_port_view(s, key, (size_t)qlen, pv_probe, 0, &pv_n, &pv_cut), pv_cut);
		if (!r.ans && !generation && !port_view)
			r.kind = ZR_REFUSED;
	} else {
		r.kind = ZR_REFUSED;
	}
	if (r.kind == ZR_REFUSED) {
		info->outside = qclass == DNS_C_IN;
		return reply_empty(resp, req, qend, DNS_RCODE_REFUSED, &e, info);
	}
	info->cluster = r.dynamic;
	if (qclass == DNS_C_IN && r.kind != ZR_REFUSED) {
		info->apex = r.apex;
		info->apex_len = r.apex_len;
	}
	if (r.dynamic && !s->synced) {
		/* --startup-timeout: no answer yet, so that the client asks again
		 * once the data may be there; SERVFAIL after it. */
		if (freshness_startup_hold())
			return 0;
		return reply_empty(resp, req, qend, DNS_RCODE_SERVFAIL, &e, info);
	}
	/* Cluster data the source has not confirmed lately (RFC 8914, 3), and
	 * a name whose endpoint is not ready yet (zones/snapshot.h). */
	uint8_t ede[128];
	size_t ede_len = r.dynamic && e.present ? freshness_ede(ede, sizeof(ede)) : 0;
	bool stale = ede_len != 0;
	if (e.present && qclass == DNS_C_IN && r.kind == ZR_ANSWER && r.ans && r.ans->not_ready)
		ede_len += put_ede_not_ready(ede + ede_len);
	opt += ede_len;

	/* Header and question as the client sent them. */
	memcpy(resp, req, qend); /* QDCOUNT stays the query's: 1 */
	/* The flags word is written once, at the end. */
	uint16_t flags = reply_flags(req) | WIRE_AA;
	size_t n = qend;
	uint16_t an = 0, ns = 0, ar = 0;
	uint8_t rcode = DNS_RCODE_NOERROR;

	if (r.kind == ZR_POD_ADDR) {
		size_t alen = r.addr.family == AF_INET ? 4 : 16;
		wire_wr16(resp + n, 0xC00C);
		wire_wr16(resp + n + 2, alen == 4 ? DNS_T_A : DNS_T_AAAA);
		wire_wr16(resp + n + 4, DNS_C_IN);
		wire_wr32(resp + n + 6, r.ttl);
		wire_wr16(resp + n + 10, (uint16_t)alen);
		memcpy(resp + n + 12, r.addr.bytes, alen);
		n += 12 + alen;
		an = 1;
	} else if (generation) {
		size_t k = freshness_generation_txt(s, resp + n, limit - opt - n);
		n += k;
		an = k ? 1 : 0;
	} else if (port_view) {
		size_t pv_len =
		    zone_port_view(s, key, (size_t)qlen, resp + n, limit - opt - n, &pv_n, &pv_cut);
		if (pv_cut) {
			flags |= WIRE_TC;
			info->truncated = 1;
		}
		n += pv_len;
		an = pv_n;
	} else {
		const struct zone_answer *a = r.ans;
		if (!a)
			return reply_empty(resp, req, qend, DNS_RCODE_SERVFAIL, &e, info);
		rcode = a->rcode;
		if (!a->aa)
			flags &= (uint16_t)~WIRE_AA;
		if (n + a->len + opt <= limit) {
			put_answer(resp + n, a, a->len, s, peer);
			an = a->an;
			ns = a->ns;
			ar = a->ar;
			if (a->patch_owner) /* the SOA's owner: the apex inside the question */
				wire_wr16(resp + n,
					  (uint16_t)(0xC000 |
						     (WIRE_HDR_LEN + (size_t)qlen - a->apex_len)));
			n += a->len;
		} else if (n + a->len_an_ns + opt <= limit) {
			/* Additional data is optional: drop it rather than truncate. */
			put_answer(resp + n, a, a->len_an_ns, s, peer);
			an = a->an;
			ns = a->ns;
			if (a->patch_owner)
				wire_wr16(resp + n,
					  (uint16_t)(0xC000 |
						     (WIRE_HDR_LEN + (size_t)qlen - a->apex_len)));
			n += a->len_an_ns;
		} else {
			flags |= WIRE_TC;
			info->truncated = 1;
		}
	}
	/* The datapath's live state follows a Service's CHAOS port lines. */
	if (qclass == DNS_C_CH && s->chaos_live && an && !ns && !ar) {
		uint16_t k = 0;
		n += s->chaos_live(s->chaos_live_arg, key, (size_t)qlen, resp + n, limit - opt - n,
				   &k);
		an = (uint16_t)(an + k);
	}
	if (e.present) {
		n += put_opt(resp + n, &e, 0);
		ar++;
		if (ede_len) {
			memcpy(resp + n, ede, ede_len);
			wire_wr16(resp + n - 2, (uint16_t)ede_len); /* the OPT's RDLENGTH */
			n += ede_len;
			info->stale = stale;
		}
	}
	wire_hdr_set_flags(resp, (uint16_t)(flags | (rcode & WIRE_RCODE_BITS)));
	wire_hdr_set_count(resp, WIRE_AN, an);
	wire_hdr_set_count(resp, WIRE_NS, ns);
	wire_hdr_set_count(resp, WIRE_AR, ar);
	info->rcode = rcode;
	return n;
}
