/* Fuzz target: an upstream's answer as the forwarder sees it. fwd_msg_parse()
 * checks it against the question it answers (taken from the input itself, so
 * that every input reaches the section walk, and against a fixed other
 * question, which it must refuse); then the cache TTL, and the client's
 * response rendered three ways (fwd_render, behind a CNAME svcdns made with
 * fwd_render_splice, fwd_render_error) under each size limit. Every response
 * must fit its limit, parse with ldns and carry the client's question exactly
 * as the client asked it. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "common/log.h"

#include "wire/wire.h"
#include "resolver/forward_msg.h"
#include "fuzz.h"
#include "wire/dname.h"

static uint16_t *ttl_off;
static uint8_t *wire, *out, *kept;
static uint16_t *starts;
static bool trace;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	trace = getenv("SVCDNS_FUZZ_TRACE") != NULL;
	ttl_off = malloc(FWD_MAX_RRS * sizeof(*ttl_off));
	wire = malloc(65535);
	out = malloc(65535);
	kept = malloc(65535);
	starts = malloc(65535 * sizeof(*starts));
	FUZZ_CHECK(ttl_off && wire && out && kept && starts, "out of memory");
	return 0;
}

/* Whether the upstream's message, as svcdns keeps it (its OPT and whatever
 * follows cut off), is well formed: ldns reads it, every record ends where
 * its RDLENGTH says (ldns reads an A record of 28 octets as 4 and goes on
 * from there), and every compression pointer points back to a name read
 * before it (RFC 1035 4.1.4). svcdns passes records on as they are and
 * rewrites the header, TTLs and OPT around them, so only then must a response
 * be readable: a pointer into those bytes reads differently afterwards (see
 * "Known problems" in README.md). */
static bool well_formed;

/* Label offsets of the names read so far: where a pointer may point. */
static size_t n_starts;

static bool known_start(size_t off)
{
	for (size_t i = 0; i < n_starts; i++)
		if (starts[i] == off)
			return true;
	return false;
}

/* Reads the name at *off the strict way; false for a pointer that does not
 * point back at a name read before. */
static bool strict_name(const uint8_t *msg, size_t len, size_t *off)
{
	size_t o = *off;
	bool jumped = false;
	for (unsigned hops = 0; hops < 128; hops++) {
		if (o >= len)
			return false;
		uint8_t l = msg[o];
		if ((l & 0xC0) == 0xC0) {
			if (o + 2 > len)
				return false;
			size_t to = wire_rd16(msg + o) & 0x3FFF;
			if (to >= o || !known_start(to))
				return false;
			if (!jumped)
				*off = o + 2;
			return true; /* the rest was checked when it was read */
		}
		if (l & 0xC0 || o + 1 + l > len)
			return false;
		if (!jumped && n_starts < 65535)
			starts[n_starts++] = (uint16_t)o;
		o += 1u + l;
		if (l == 0) {
			*off = o;
			return true;
		}
	}
	return false;
}

/* The names in a type's rdata that svcdns's forwarder knows about: their
 * count and the fixed bytes before the first (forward_msg.c copies them out
 * when it splices); -1: no names; -2: names ldns would read and we do not
 * model (then nothing is promised). */
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
		break;
	}
	const ldns_rr_descriptor *d = ldns_rr_descript(type);
	size_t max = d ? ldns_rr_descriptor_maximum(d) : 0;
	for (size_t i = 0; i < max && i < 64; i++)
		if (ldns_rr_descriptor_field_type(d, i) == LDNS_RDF_TYPE_DNAME)
			return -2;
	return -1;
}

static bool ldns_reads(const uint8_t *msg, const struct fwd_msg *m)
{
	memcpy(kept, msg, m->len);
	wire_hdr_set_count(kept, WIRE_AR, m->ar);
	ldns_pkt *in = NULL;
	bool ok = ldns_wire2pkt(&in, kept, m->len) == LDNS_STATUS_OK;
	ldns_pkt_free(in);
	n_starts = 0;
	size_t off = WIRE_HDR_LEN;
	ok = ok && strict_name(kept, m->len, &off);
	off = m->qend;
	unsigned rrs = (unsigned)m->an + m->ns + m->ar;
	for (unsigned i = 0; ok && i < rrs; i++) {
		size_t rr_start = off;
		if (!strict_name(kept, m->len, &off) || off + 10 > m->len)
			return false;
		uint16_t type = wire_rd16(kept + off);
		size_t end = off + 10 + wire_rd16(kept + off + 8), pos = rr_start, skip;
		int names = rdata_names(type, &skip);
		if (names == -2)
			return false;
		size_t p = off + 10 + skip;
		for (int k = 0; k < names; k++)
			if (p > end || !strict_name(kept, end, &p))
				return false;
		ldns_rr *rr = NULL;
		ok = ldns_wire2rr(&rr, kept, m->len, &pos, LDNS_SECTION_ANSWER) == LDNS_STATUS_OK &&
		     pos == end;
		ldns_rr_free(rr);
		off = end;
	}
	return ok;
}

/* What every response to the client must be. */
static void check_client(const struct fwd_client_q *c, const uint8_t *resp, size_t n, size_t limit,
			 const char *what, bool parse)
{
	FUZZ_CHECK(n >= WIRE_HDR_LEN + (size_t)c->qlen, "%s: %zu bytes", what, n);
	FUZZ_CHECK(n <= limit, "%s: %zu bytes over a limit of %zu", what, n, limit);
	FUZZ_CHECK(wire_hdr_id(resp) == wire_hdr_id(c->hdr), "%s: ID not the client's", what);
	FUZZ_CHECK(wire_hdr_has(resp, WIRE_QR), "%s: QR clear", what);
	FUZZ_CHECK(wire_hdr_count(resp, WIRE_QD) == 1 &&
		       memcmp(resp + WIRE_HDR_LEN, c->q, c->qlen) == 0,
		   "%s: the client's question is not echoed as asked", what);
	if (!parse)
		return;
	ldns_pkt *pkt = NULL;
	ldns_status st = ldns_wire2pkt(&pkt, resp, n);
	if (st != LDNS_STATUS_OK)
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "%02x%s", resp[i], i + 1 == n ? "\n" : "");
	FUZZ_CHECK(st == LDNS_STATUS_OK, "%s: ldns cannot parse it (hex above): %s", what,
		   ldns_get_errorstr_by_id(st));
	FUZZ_CHECK(!c->edns || ldns_pkt_edns(pkt), "%s: no OPT for an EDNS client", what);
	ldns_pkt_free(pkt);
}

/* The parsed message's own bookkeeping. */
static void check_msg(const struct fwd_msg *m, size_t len)
{
	FUZZ_CHECK(m->wire == wire && m->len <= len, "length %u of %zu", m->len, len);
	FUZZ_CHECK(m->qend <= m->an_end && m->an_end <= m->an_ns_end && m->an_ns_end <= m->len,
		   "sections out of order: %u %u %u %u", m->qend, m->an_end, m->an_ns_end, m->len);
	FUZZ_CHECK(m->n_ttl_an_ns <= m->n_ttl && m->n_ttl <= FWD_MAX_RRS, "TTL counts");
	for (unsigned i = 0; i < m->n_ttl; i++)
		FUZZ_CHECK(m->ttl_off[i] >= m->qend && m->ttl_off[i] + 4u <= m->len,
			   "TTL %u at %u outside %u..%u", i, m->ttl_off[i], m->qend, m->len);
	FUZZ_CHECK(!m->tc || m->len == m->qend, "a truncated answer kept records");
	FUZZ_CHECK(m->rcode < 16, "rcode %u", m->rcode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < WIRE_HDR_LEN || size > 65535)
		return 0;
	struct fwd_key k = {0};
	struct fwd_msg m;
	/* The input also decides whether the client asked with DO: by the low
	 * bit of its rcode (odd rcodes, NXDOMAIN among them, with DO). */
	bool want_do = wire_hdr_rcode(data) & 1;
	/* The question the input answers, when it has one we could have sent. */
	int ql = wire_hdr_count(data, WIRE_QD) == 1
		     ? dname_read_question(data, size, WIRE_HDR_LEN, k.name)
		     : -1;
	bool asked = ql > 0 && WIRE_HDR_LEN + (size_t)ql + 4 <= size;
	if (asked) {
		k.name_len = (uint16_t)ql;
		k.qtype = wire_rd16(data + WIRE_HDR_LEN + ql);
		k.qclass = wire_rd16(data + WIRE_HDR_LEN + ql + 2);
		k.flags = want_do ? FWD_KEY_DO : 0;
		fwd_key_hash(&k);
	}

	/* A question we did not ask: the answer must be refused. */
	struct fwd_key other = {.qtype = DNS_T_A, .qclass = DNS_C_IN};
	other.name_len =
	    (uint16_t)dname_from_text("svcdns-fuzz-other.example.", other.name, sizeof(other.name));
	fwd_key_hash(&other);
	bool same_q = asked && k.name_len == other.name_len && k.qtype == other.qtype &&
		      k.qclass == other.qclass && memcmp(k.name, other.name, k.name_len) == 0;
	if (!same_q) {
		memcpy(wire, data, size);
		int rc = fwd_msg_parse(wire, size, &other, wire_hdr_id(data), ttl_off, &m);
		FUZZ_CHECK(rc == -EPROTO || rc == -ENOMSG || rc == -EBADMSG,
			   "an answer to another question was taken: %d", rc);
	}
	if (!asked)
		return 0;
	memcpy(wire, data, size);
	int rc = fwd_msg_parse(wire, size, &k, (uint16_t)(wire_hdr_id(data) ^ 1), ttl_off, &m);
	FUZZ_CHECK(rc == -EPROTO, "an answer with another ID was taken: %d", rc);
	memcpy(wire, data, size);
	rc = fwd_msg_parse(wire, size, &k, wire_hdr_id(data), ttl_off, &m);
	if (trace)
		fprintf(stderr, "parse %d: rcode %u an %u ns %u ar %u%s\n", rc,
			rc == 0 ? m.rcode : 0, rc == 0 ? m.an : 0, rc == 0 ? m.ns : 0,
			rc == 0 ? m.ar : 0, rc == 0 && m.tc ? " TC" : "");
	if (rc < 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -ENOMSG || rc == -EBADMSG, "returned %d", rc);
		return 0;
	}
	check_msg(&m, size);
	well_formed = ldns_reads(data, &m);
	if (trace)
		fprintf(stderr, "%s\n",
			well_formed ? "well formed: responses must parse"
				    : "not well formed: responses need not parse");
	FUZZ_CHECK(memcmp(wire + WIRE_HDR_LEN, k.name, k.name_len) == 0, "question not lowercased");

	uint32_t ttl;
	enum fwd_cache_kind kind = fwd_msg_cache_ttl(&m, 3600, 1800, &ttl);
	FUZZ_CHECK(kind == FWD_CACHE_NONE ? ttl == 0 || m.rcode != DNS_RCODE_NOERROR : ttl > 0,
		   "cache kind %d with TTL %u", (int)kind, ttl);
	FUZZ_CHECK(ttl <= (kind == FWD_CACHE_NEGATIVE ? 1800u : 3600u), "TTL %u over its cap", ttl);

	/* The client asked the same name in its own case, with its own ID. */
	uint8_t q[DNAME_MAX + 4];
	memcpy(q, data + WIRE_HDR_LEN, (size_t)ql + 4);
	for (int i = 0; i < ql; i++)
		if ((q[i] | 0x20) >= 'a' && (q[i] | 0x20) <= 'z' && (i & 1))
			q[i] ^= 0x20;
	/* svcdns's own CNAME from the client's name to the name asked upstream:
	 * owner (a pointer to the question), type, class, TTL, rdlength, 12 bytes */
	uint8_t prefix[12 + DNAME_MAX];
	wire_wr16(prefix, 0xC000 | WIRE_HDR_LEN);
	wire_wr16(prefix + 2, DNS_T_CNAME);
	wire_wr16(prefix + 4, DNS_C_IN);
	wire_wr32(prefix + 6, 5);
	wire_wr16(prefix + 10, (uint16_t)ql);
	memcpy(prefix + 12, k.name, (size_t)ql);
	static const uint16_t limits[] = {512, 1232, 65535};
	struct fwd_ttl tt = {.age = 7, .cap = 3600};
	for (int l = 0; l < 3; l++) {
		for (int e = 0; e < 2; e++) {
			struct fwd_client_q c = {
			    .q = q,
			    .qlen = (uint16_t)(ql + 4),
			    .limit = limits[l],
			    .edns = e,
			    .edns_do = e && want_do,
			};
			wire_hdr_set_id(c.hdr, 0xabcd);
			wire_hdr_set(c.hdr, WIRE_RD, true);
			size_t n = fwd_render(&c, &m, &tt, out, 65535);
			check_client(&c, out, n, limits[l], "fwd_render", well_formed);
			FUZZ_CHECK(wire_hdr_rcode(out) == m.rcode, "rcode changed");
			n = fwd_render_splice(&c, prefix, 12 + (size_t)ql, 1, &m, &tt, out, 65535);
			if (n)
				check_client(&c, out, n, limits[l], "fwd_render_splice",
					     well_formed);
			n = fwd_render_error(&c, DNS_RCODE_SERVFAIL, l == 0, out, 65535);
			check_client(&c, out, n, limits[l], "fwd_render_error", true);
			tt.stale = !tt.stale;
		}
	}
	return 0;
}
