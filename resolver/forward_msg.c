/* Upstream queries and answers on the wire: build, check, render. Every read
 * of an upstream answer is bounds-checked: the upstream is not trusted.
 * See forward_msg.h. */
#include "resolver/forward_msg.h"

#include "wire/wire.h"

#include <errno.h>
#include <string.h>

#include "common/shash.h"

#define OPT_DO 0x8000 /* DNSSEC OK, in the flags half of the OPT record's TTL */

void fwd_key_hash(struct fwd_key *k)
{
	uint64_t tag = (uint64_t)k->qtype | (uint64_t)k->qclass << 16 | (uint64_t)k->flags << 32;
	k->hash = (uint32_t)shash_bytes(tag, k->name, k->name_len);
}

bool fwd_key_equal(const struct fwd_key *a, const struct fwd_key *b)
{
	return a->hash == b->hash && a->qtype == b->qtype && a->qclass == b->qclass &&
	       a->flags == b->flags && a->name_len == b->name_len &&
	       memcmp(a->name, b->name, a->name_len) == 0;
}

size_t fwd_query_build(const struct fwd_key *k, uint16_t id, uint8_t *out)
{
	memset(out, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(out, id);
	wire_hdr_set(out, WIRE_RD, true); /* the upstream is a resolver */
	wire_hdr_set(out, WIRE_CD, (k->flags & FWD_KEY_CD) != 0);
	wire_hdr_set_count(out, WIRE_QD, 1);
	wire_hdr_set_count(out, WIRE_AR, 1);
	size_t n = WIRE_HDR_LEN;
	memcpy(out + n, k->name, k->name_len);
	n += k->name_len;
	wire_wr16(out + n, k->qtype);
	wire_wr16(out + n + 2, k->qclass);
	n += 4;
	out[n] = 0;
	wire_wr16(out + n + 1, DNS_T_OPT);
	wire_wr16(out + n + 3, DNS_EDNS_MAX_UDP);
	out[n + 5] = 0;
	out[n + 6] = 0;
	wire_wr16(out + n + 7, (k->flags & FWD_KEY_DO) ? OPT_DO : 0);
	wire_wr16(out + n + 9, 0);
	return n + WIRE_OPT_LEN;
}

/* Skips a name like dname_skip, but also follows its compression pointers:
 * each must lead back to bytes before it and past the header, so that a
 * hostile upstream cannot make a name out of the header or the OPT record,
 * both of which are rewritten before the answer is passed on. */
static int name_skip(const uint8_t *w, size_t len, size_t off)
{
	uint8_t name[DNAME_MAX];
	size_t next = off;
	if (fwd_name_expand(w, len, off, name, &next) < 0)
		return -EBADMSG;
	return (int)next;
}

/* Skips the names at the start of an SOA's rdata; returns the offset of its
 * five numbers or -EBADMSG. */
static int soa_numbers(const uint8_t *w, size_t end, size_t rd)
{
	int o = name_skip(w, end, rd);
	if (o < 0)
		return -EBADMSG;
	o = name_skip(w, end, (size_t)o);
	if (o < 0 || (size_t)o + 20 > end)
		return -EBADMSG;
	return o;
}

int fwd_msg_parse(uint8_t *wire, size_t len, const struct fwd_key *k, uint16_t id,
		  uint16_t *ttl_off, struct fwd_msg *m)
{
	uint8_t qname[DNAME_MAX];
	memset(m, 0, sizeof(*m));
	if (len < WIRE_HDR_LEN || len > 65535)
		return -EBADMSG;
	if (wire_hdr_id(wire) != id || !wire_hdr_has(wire, WIRE_QR) ||
	    wire_hdr_opcode(wire) != DNS_OP_QUERY)
		return -EPROTO;
	if (wire_hdr_count(wire, WIRE_QD) != 1)
		return -ENOMSG;
	int ql = dname_read_question(wire, len, WIRE_HDR_LEN, qname);
	if (ql < 0 || WIRE_HDR_LEN + (size_t)ql + 4 > len)
		return -ENOMSG;
	size_t qend = WIRE_HDR_LEN + (size_t)ql + 4;
	if ((size_t)ql != k->name_len || memcmp(qname, k->name, k->name_len) != 0 ||
	    wire_rd16(wire + qend - 4) != k->qtype || wire_rd16(wire + qend - 2) != k->qclass)
		return -ENOMSG;
	/* The 0x20 case of the upstream's echo is its own business; ours is
	 * lowercase, so that cached pointers into it read the same for everyone. */
	memcpy(wire + WIRE_HDR_LEN, qname, (size_t)ql);

	m->wire = wire;
	m->qend = (uint16_t)qend;
	m->rcode = (uint8_t)wire_hdr_rcode(wire);
	m->ad = wire_hdr_has(wire, WIRE_AD);
	if (wire_hdr_has(wire, WIRE_TC)) {
		m->tc = true;
		m->len = (uint16_t)qend;
		m->an_end = m->an_ns_end = (uint16_t)qend;
		m->ttl_off = ttl_off;
		return 0;
	}
	unsigned counts[3] = {wire_hdr_count(wire, WIRE_AN), wire_hdr_count(wire, WIRE_NS),
			      wire_hdr_count(wire, WIRE_AR)};
	size_t off = qend;
	size_t cut = 0; /* where the OPT starts, when there is one */
	unsigned n_ttl = 0, kept_ar = 0;
	for (int sec = 0; sec < 3; sec++) {
		for (unsigned i = 0; i < counts[sec]; i++) {
			int o = name_skip(wire, len, off);
			if (o < 0 || (size_t)o + 10 > len)
				return -EBADMSG;
			size_t rr = (size_t)o;
			uint16_t type = wire_rd16(wire + rr);
			uint16_t rdlen = wire_rd16(wire + rr + 8);
			size_t end = rr + 10 + rdlen;
			if (end > len)
				return -EBADMSG;
			if (sec == 2 && (type == DNS_T_OPT || cut)) {
				/* Our OPT replaces it; whatever follows (TSIG,
				 * SIG(0)) belonged to that exchange only. */
				if (!cut)
					cut = off;
				off = end;
				continue;
			}
			if (type == DNS_T_OPT)
				return -EBADMSG;
			if (n_ttl >= FWD_MAX_RRS)
				return -EBADMSG;
			ttl_off[n_ttl++] = (uint16_t)(rr + 4);
			if (sec == 1 && type == DNS_T_SOA && !m->has_soa) {
				int nums = soa_numbers(wire, end, rr + 10);
				if (nums < 0)
					return -EBADMSG;
				m->has_soa = true;
				m->soa_ttl = wire_rd32(wire + rr + 4);
				m->soa_min = wire_rd32(wire + nums + 16);
			}
			if (sec == 2)
				kept_ar++;
			off = end;
		}
		if (sec == 0)
			m->an_end = (uint16_t)off;
		if (sec == 1) {
			m->an_ns_end = (uint16_t)off;
			m->n_ttl_an_ns = (uint16_t)n_ttl;
		}
	}
	m->len = (uint16_t)(cut ? cut : off);
	m->an = (uint16_t)counts[0];
	m->ns = (uint16_t)counts[1];
	m->ar = (uint16_t)kept_ar;
	m->ttl_off = ttl_off;
	m->n_ttl = (uint16_t)n_ttl;
	return 0;
}

enum fwd_cache_kind fwd_msg_cache_ttl(const struct fwd_msg *m, uint32_t max_ttl,
				      uint32_t max_neg_ttl, uint32_t *ttl)
{
	*ttl = 0;
	if (m->tc)
		return FWD_CACHE_NONE;
	if (m->rcode == DNS_RCODE_NXDOMAIN || (m->rcode == DNS_RCODE_NOERROR && m->an == 0)) {
		if (!m->has_soa)
			return FWD_CACHE_NONE;
		uint32_t t = m->soa_ttl < m->soa_min ? m->soa_ttl : m->soa_min;
		*ttl = t < max_neg_ttl ? t : max_neg_ttl;
		return *ttl ? FWD_CACHE_NEGATIVE : FWD_CACHE_NONE;
	}
	if (m->rcode != DNS_RCODE_NOERROR)
		return FWD_CACHE_NONE;
	uint32_t t = max_ttl;
	for (unsigned i = 0; i < m->n_ttl_an_ns; i++) {
		uint32_t v = wire_rd32(m->wire + m->ttl_off[i]);
		if (v & 0x80000000u) /* RFC 2181 8: a TTL with the top bit set is zero */
			v = 0;
		if (v < t)
			t = v;
	}
	*ttl = t;
	return t ? FWD_CACHE_POSITIVE : FWD_CACHE_NONE;
}

static uint32_t ttl_out(uint32_t orig, const struct fwd_ttl *t)
{
	if (t->stale)
		return FWD_STALE_TTL;
	if (orig & 0x80000000u)
		orig = 0;
	if (orig > t->cap)
		orig = t->cap;
	return orig > t->age ? orig - t->age : 0;
}

/* The client's ID, opcode, RD and CD; QR and RA; one question. */
static size_t put_header(const struct fwd_client_q *c, uint8_t rcode, bool ad, uint8_t *out)
{
	memset(out, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(out, wire_hdr_id(c->hdr));
	wire_hdr_set(out, WIRE_QR, true);
	wire_hdr_set_opcode(out, wire_hdr_opcode(c->hdr));
	wire_hdr_set(out, WIRE_RD, wire_hdr_has(c->hdr, WIRE_RD));
	wire_hdr_set(out, WIRE_RA, true);
	wire_hdr_set(out, WIRE_CD, wire_hdr_has(c->hdr, WIRE_CD));
	/* AD only for clients that said they understand it (RFC 6840 5.7/5.8). */
	wire_hdr_set(out, WIRE_AD, ad && (c->edns_do || wire_hdr_has(c->hdr, WIRE_AD)));
	wire_hdr_set_rcode(out, rcode);
	wire_hdr_set_count(out, WIRE_QD, 1);
	memcpy(out + WIRE_HDR_LEN, c->q, c->qlen);
	return WIRE_HDR_LEN + (size_t)c->qlen;
}

/* An Extended DNS Error option (RFC 8914) with an info-code and no text. */
#define EDE_LEN 6

/* Our OPT, with an EDE option when ede >= 0. */
static size_t put_opt(const struct fwd_client_q *c, int ede, uint8_t *p)
{
	p[0] = 0;
	wire_wr16(p + 1, DNS_T_OPT);
	wire_wr16(p + 3, DNS_EDNS_MAX_UDP);
	p[5] = 0;
	p[6] = 0;
	wire_wr16(p + 7, c->edns_do ? OPT_DO : 0);
	wire_wr16(p + 9, ede >= 0 ? EDE_LEN : 0);
	if (ede < 0)
		return WIRE_OPT_LEN;
	wire_wr16(p + 11, DNS_EDNS_EDE);
	wire_wr16(p + 13, 2);
	wire_wr16(p + 15, (uint16_t)ede);
	return WIRE_OPT_LEN + EDE_LEN;
}

/* The room our OPT takes in a response to c. */
static size_t opt_len(const struct fwd_client_q *c, int ede)
{
	return c->edns ? WIRE_OPT_LEN + (ede >= 0 ? EDE_LEN : 0) : 0;
}

/* Stale answers say so (RFC 8767 section 6, EDE 3). */
static int ttl_ede(const struct fwd_ttl *t)
{
	return t->stale ? DNS_EDE_STALE : -1;
}

static size_t finish(const struct fwd_client_q *c, uint8_t *out, size_t n, uint16_t an, uint16_t ns,
		     uint16_t ar, int ede)
{
	if (c->edns) {
		n += put_opt(c, ede, out + n);
		ar++;
	}
	wire_hdr_set_count(out, WIRE_AN, an);
	wire_hdr_set_count(out, WIRE_NS, ns);
	wire_hdr_set_count(out, WIRE_AR, ar);
	return n;
}

size_t fwd_render_error(const struct fwd_client_q *c, uint8_t rcode, bool tc, uint8_t *out,
			size_t cap)
{
	if (cap < WIRE_HDR_LEN + (size_t)c->qlen + WIRE_OPT_LEN)
		return 0;
	size_t n = put_header(c, rcode, false, out);
	wire_hdr_set(out, WIRE_TC, tc);
	return finish(c, out, n, 0, 0, 0, -1);
}

size_t fwd_add_ede(const struct fwd_client_q *c, uint16_t code, uint8_t *out, size_t n, size_t cap)
{
	size_t limit = c->limit < cap ? c->limit : cap;
	if (!c->edns || n < WIRE_HDR_LEN + WIRE_OPT_LEN || n + EDE_LEN > limit)
		return n;
	uint8_t *rdlen = out + n - 2; /* our OPT is last, and has no option yet */
	if (wire_rd16(out + n - WIRE_OPT_LEN + 1) != DNS_T_OPT || wire_rd16(rdlen) != 0)
		return n;
	wire_wr16(rdlen, EDE_LEN);
	wire_wr16(out + n, DNS_EDNS_EDE);
	wire_wr16(out + n + 2, 2);
	wire_wr16(out + n + 4, code);
	return n + EDE_LEN;
}

size_t fwd_render(const struct fwd_client_q *c, const struct fwd_msg *m, const struct fwd_ttl *t,
		  uint8_t *out, size_t cap)
{
	size_t limit = c->limit < cap ? c->limit : cap;
	size_t opt = opt_len(c, ttl_ede(t));
	if ((size_t)c->qlen + WIRE_HDR_LEN != m->qend)
		return 0; /* not the same question: the caller's mistake */
	size_t body_end;
	uint16_t ar = m->ar;
	unsigned n_ttl = m->n_ttl;
	if (m->len + opt <= limit) {
		body_end = m->len;
	} else if (m->an_ns_end + opt <= limit) {
		body_end = m->an_ns_end; /* additional data is optional */
		ar = 0;
		n_ttl = m->n_ttl_an_ns;
	} else {
		return fwd_render_error(c, m->rcode, true, out, cap);
	}
	size_t n = put_header(c, m->rcode, m->ad, out);
	memcpy(out + n, m->wire + n, body_end - n);
	for (unsigned i = 0; i < n_ttl; i++)
		wire_wr32(out + m->ttl_off[i], ttl_out(wire_rd32(m->wire + m->ttl_off[i]), t));
	return finish(c, out, body_end, m->an, m->ns, ar, ttl_ede(t));
}

int fwd_name_expand(const uint8_t *msg, size_t len, size_t off, uint8_t *out, size_t *next)
{
	size_t o = 0;
	size_t limit = off; /* a pointer must go back from where it is found */
	bool jumped = false;
	for (;;) {
		if (off >= len)
			return -EBADMSG;
		uint8_t ll = msg[off];
		if ((ll & 0xC0) == 0xC0) {
			if (off + 2 > len)
				return -EBADMSG;
			size_t to = (size_t)(ll & 0x3F) << 8 | msg[off + 1];
			if (!jumped)
				*next = off + 2;
			jumped = true;
			/* Back from where it is found (no loops), and never into the
			 * header, which is rewritten before the answer is sent. */
			if (to >= limit || to < WIRE_HDR_LEN)
				return -EBADMSG;
			limit = to;
			off = to;
			continue;
		}
		if (ll & 0xC0)
			return -EBADMSG;
		if (o + 1 + ll > DNAME_MAX || off + 1 + ll > len)
			return -EBADMSG;
		memcpy(out + o, msg + off, 1u + ll);
		o += 1u + ll;
		off += 1u + ll;
		if (ll == 0) {
			if (!jumped)
				*next = off;
			return (int)o;
		}
	}
}

/* Copies the name at msg[*off] in full into out[*n]; false when it does not fit. */
static bool copy_name(const struct fwd_msg *m, size_t *off, uint8_t *out, size_t *n, size_t cap)
{
	uint8_t name[DNAME_MAX];
	int l = fwd_name_expand(m->wire, m->len, *off, name, off);
	if (l < 0 || *n + (size_t)l > cap)
		return false;
	memcpy(out + *n, name, (size_t)l);
	*n += (size_t)l;
	return true;
}

/* Where the names in a type's rdata are: the number of names and the fixed
 * bytes before the first; -1 for types whose rdata is copied as it is. */
static int rdata_names(uint16_t type, size_t *skip)
{
	*skip = 0;
	switch (type) {
	case DNS_T_NS:
	case DNS_T_MD:
	case DNS_T_MF:
	case DNS_T_CNAME:
	case DNS_T_MB:
	case DNS_T_MG:
	case DNS_T_MR:
	case DNS_T_PTR:
	case DNS_T_DNAME:
		return 1;
	case DNS_T_MX:
	case DNS_T_AFSDB:
	case DNS_T_RT:
		*skip = 2;
		return 1;
	case DNS_T_SRV:
		*skip = 6;
		return 1;
	case DNS_T_SOA:
	case DNS_T_MINFO:
	case DNS_T_RP:
		return 2;
	default:
		return -1;
	}
}

/* Copies one record of m at *off with every name in full. */
static bool copy_rr(const struct fwd_msg *m, size_t *off, const struct fwd_ttl *t, uint8_t *out,
		    size_t *n, size_t cap)
{
	if (!copy_name(m, off, out, n, cap) || *off + 10 > m->len || *n + 10 > cap)
		return false;
	const uint8_t *rr = m->wire + *off;
	uint16_t type = wire_rd16(rr);
	size_t rdlen = wire_rd16(rr + 8);
	size_t rd = *off + 10, rd_end = rd + rdlen;
	if (rd_end > m->len)
		return false;
	memcpy(out + *n, rr, 4);
	wire_wr32(out + *n + 4, ttl_out(wire_rd32(rr + 4), t));
	size_t len_at = *n + 8;
	*n += 10;
	size_t start = *n, skip;
	int names = rdata_names(type, &skip);
	if (names < 0) {
		if (*n + rdlen > cap)
			return false;
		memcpy(out + *n, m->wire + rd, rdlen);
		*n += rdlen;
	} else {
		size_t p = rd;
		if (p + skip > rd_end || *n + skip > cap)
			return false;
		memcpy(out + *n, m->wire + p, skip);
		*n += skip;
		p += skip;
		for (int i = 0; i < names; i++)
			if (!copy_name(m, &p, out, n, cap) || p > rd_end)
				return false;
		if (*n + (rd_end - p) > cap)
			return false;
		memcpy(out + *n, m->wire + p, rd_end - p); /* SOA numbers */
		*n += rd_end - p;
	}
	if (*n - start > 65535)
		return false;
	wire_wr16(out + len_at, (uint16_t)(*n - start));
	*off = rd_end;
	return true;
}

size_t fwd_render_splice(const struct fwd_client_q *c, const uint8_t *prefix, size_t plen,
			 uint16_t pcount, const struct fwd_msg *m, const struct fwd_ttl *t,
			 uint8_t *out, size_t cap)
{
	size_t limit = c->limit < cap ? c->limit : cap;
	size_t opt = opt_len(c, ttl_ede(t));
	if (WIRE_HDR_LEN + (size_t)c->qlen + plen + opt > limit)
		return 0;
	size_t n = put_header(c, m->rcode, m->ad, out);
	memcpy(out + n, prefix, plen);
	n += plen;
	size_t room = limit - opt;
	size_t off = m->qend;
	for (unsigned i = 0; i < m->an; i++)
		if (!copy_rr(m, &off, t, out, &n, room))
			return 0;
	for (unsigned i = 0; i < m->ns; i++)
		if (!copy_rr(m, &off, t, out, &n, room))
			return 0;
	return finish(c, out, n, (uint16_t)(pcount + m->an), m->ns, 0, ttl_ede(t));
}
