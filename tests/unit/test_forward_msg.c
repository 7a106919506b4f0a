/* Upstream messages: the query svcdns sends, the checks an answer must pass
 * (ID, QR, question, bounds), the cache TTL of an answer (RFC 2308), and the
 * responses rendered from it (TTL countdown, truncation, CNAME splices). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "resolver/forward_msg.h"

#include "wire/wire.h"

/* ---- a tiny message writer for the tests ---------------------------------- */

struct w {
	uint8_t b[4096];
	size_t n;
};

static void put16(struct w *w, uint16_t v)
{
	wire_wr16(w->b + w->n, v);
	w->n += 2;
}

static void put32(struct w *w, uint32_t v)
{
	wire_wr32(w->b + w->n, v);
	w->n += 4;
}

static void putn(struct w *w, const void *p, size_t len)
{
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

/* Header: id, flags, counts. */
static void header(struct w *w, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
		   uint16_t ar)
{
	wire_hdr_set_id(w->b, id);
	wire_hdr_set_flags(w->b, flags);
	wire_hdr_set_count(w->b, WIRE_QD, qd);
	wire_hdr_set_count(w->b, WIRE_AN, an);
	wire_hdr_set_count(w->b, WIRE_NS, ns);
	wire_hdr_set_count(w->b, WIRE_AR, ar);
	w->n = WIRE_HDR_LEN;
}

/* The flags of an upstream's ordinary answer. */
#define ANSWER_FLAGS (WIRE_QR | WIRE_RD | WIRE_RA)

static void question(struct w *w, const char *wire, size_t len, uint16_t type)
{
	putn(w, wire, len);
	put16(w, type);
	put16(w, DNS_C_IN);
}

/* One record whose owner is a pointer to the question (right after the header). */
static void rr_ptr_owner(struct w *w, uint16_t type, uint32_t ttl, const void *rd, uint16_t rdlen)
{
	put16(w, 0xC000 | WIRE_HDR_LEN);
	put16(w, type);
	put16(w, DNS_C_IN);
	put32(w, ttl);
	put16(w, rdlen);
	putn(w, rd, rdlen);
}

static void opt(struct w *w)
{
	w->b[w->n++] = 0;
	put16(w, DNS_T_OPT);
	put16(w, 1232);
	put32(w, 0);
	put16(w, 0);
}

#define NAME	 "\3www\7example\3org" /* + the root's 0 from the literal */
#define NAME_LEN 17

static void key_for(struct fwd_key *k, const char *wire, size_t len, uint16_t type)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->name, wire, len);
	k->name_len = (uint16_t)len;
	k->qtype = type;
	k->qclass = DNS_C_IN;
	fwd_key_hash(k);
}

/* An answer: 2 A records (TTL 300 and 60), OPT. */
static void answer_a(struct w *w, uint16_t id)
{
	static const uint8_t a1[] = {192, 0, 2, 1}, a2[] = {192, 0, 2, 2};
	header(w, id, ANSWER_FLAGS, 1, 2, 0, 1);
	question(w, NAME, NAME_LEN, DNS_T_A);
	rr_ptr_owner(w, DNS_T_A, 300, a1, 4);
	rr_ptr_owner(w, DNS_T_A, 60, a2, 4);
	opt(w);
}

static uint16_t offs[FWD_MAX_RRS];

static void test_query_build(void **state)
{
	(void)state;
	struct fwd_key k;
	uint8_t q[FWD_QUERY_MAX];
	key_for(&k, NAME, NAME_LEN, DNS_T_AAAA);
	k.flags = FWD_KEY_DO | FWD_KEY_CD;
	size_t n = fwd_query_build(&k, 0xBEEF, q);
	assert_int_equal(n, WIRE_HDR_LEN + NAME_LEN + 4 + WIRE_OPT_LEN);
	assert_int_equal(wire_hdr_id(q), 0xBEEF);
	assert_int_equal(wire_hdr_flags(q), WIRE_RD | WIRE_CD);
	assert_memory_equal(q + WIRE_HDR_LEN, NAME, NAME_LEN);
	assert_int_equal(wire_rd16(q + WIRE_HDR_LEN + NAME_LEN), DNS_T_AAAA);
	const uint8_t *opt = q + n - WIRE_OPT_LEN; /* root, type, class, TTL, rdlength */
	assert_int_equal(wire_rd16(opt + 1), DNS_T_OPT);
	assert_int_equal(wire_rd16(opt + 7), DNS_EDNS_FLAG_DO);
}

static void test_parse_checks(void **state)
{
	(void)state;
	struct fwd_key k;
	struct fwd_msg m;
	struct w w;
	key_for(&k, NAME, NAME_LEN, DNS_T_A);
	static const struct {
		const char *what;
		uint16_t id, flags;
		const char *qname;
		size_t qlen;
		uint16_t qtype;
		int want;
		unsigned opcode;
	} cases[] = {
	    {"good", 7, ANSWER_FLAGS, NAME, NAME_LEN, DNS_T_A, 0},
	    {"question in other case", 7, ANSWER_FLAGS, "\3WWW\7Example\3ORG", NAME_LEN, DNS_T_A,
	     0},
	    {"wrong ID", 8, ANSWER_FLAGS, NAME, NAME_LEN, DNS_T_A, -EPROTO},
	    {"QR clear", 7, WIRE_RD, NAME, NAME_LEN, DNS_T_A, -EPROTO},
	    {"other opcode", 7, ANSWER_FLAGS, NAME, NAME_LEN, DNS_T_A, -EPROTO, 1 /* IQUERY */},
	    {"other name", 7, ANSWER_FLAGS, "\3ww2\7example\3org", NAME_LEN, DNS_T_A, -ENOMSG},
	    {"other type", 7, ANSWER_FLAGS, NAME, NAME_LEN, DNS_T_AAAA, -ENOMSG},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		header(&w, cases[i].id, cases[i].flags, 1, 0, 0, 0);
		wire_hdr_set_opcode(w.b, cases[i].opcode);
		question(&w, cases[i].qname, cases[i].qlen, cases[i].qtype);
		int ret = fwd_msg_parse(w.b, w.n, &k, 7, offs, &m);
		if (ret != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].what, ret, cases[i].want);
	}
	/* The question is lowercased in place: cached pointers read the same. */
	header(&w, 7, ANSWER_FLAGS, 1, 0, 0, 0);
	question(&w, "\3WWW\7Example\3ORG", NAME_LEN, DNS_T_A);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 7, offs, &m), 0);
	assert_memory_equal(w.b + WIRE_HDR_LEN, NAME, NAME_LEN);

	/* A record running past the end, and one with a bad rdlength. */
	answer_a(&w, 7);
	assert_int_equal(fwd_msg_parse(w.b, w.n - 15, &k, 7, offs, &m), -EBADMSG);
	answer_a(&w, 7);
	w.b[WIRE_HDR_LEN + NAME_LEN + 4 + 10] = 0xFF;
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 7, offs, &m), -EBADMSG);
	/* Two questions. */
	header(&w, 7, ANSWER_FLAGS, 2, 0, 0, 0);
	question(&w, NAME, NAME_LEN, DNS_T_A);
	question(&w, NAME, NAME_LEN, DNS_T_A);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 7, offs, &m), -ENOMSG);
	/* Shorter than a header. */
	assert_int_equal(fwd_msg_parse(w.b, WIRE_HDR_LEN - 1, &k, 7, offs, &m), -EBADMSG);
}

static void test_parse_layout(void **state)
{
	(void)state;
	struct fwd_key k;
	struct fwd_msg m;
	struct w w;
	key_for(&k, NAME, NAME_LEN, DNS_T_A);
	answer_a(&w, 9);
	size_t full = w.n;
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 9, offs, &m), 0);
	assert_int_equal(m.an, 2);
	assert_int_equal(m.ar, 0);		      /* OPT removed */
	assert_int_equal(m.len, full - WIRE_OPT_LEN); /* ... and cut off */
	assert_int_equal(m.qend, WIRE_HDR_LEN + NAME_LEN + 4);
	assert_int_equal(m.n_ttl, 2);
	assert_int_equal(m.an_end, m.len);
	assert_false(m.tc);

	/* TC: nothing but the flag matters. */
	header(&w, 9, ANSWER_FLAGS | WIRE_TC, 1, 0, 0, 0);
	question(&w, NAME, NAME_LEN, DNS_T_A);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 9, offs, &m), 0);
	assert_true(m.tc);
}

/* NXDOMAIN with an SOA in authority: TTL soa_ttl, MINIMUM soa_min. */
static void nxdomain(struct w *w, uint16_t id, uint8_t rcode, uint32_t soa_ttl, uint32_t soa_min)
{
	header(w, id, ANSWER_FLAGS, 1, 0, 1, 0);
	wire_hdr_set_rcode(w->b, rcode);
	question(w, NAME, NAME_LEN, DNS_T_A);
	/* owner: example.org via a pointer into the question (offset 12+4) */
	put16(w, 0xC000 | 16);
	put16(w, DNS_T_SOA);
	put16(w, DNS_C_IN);
	put32(w, soa_ttl);
	put16(w, 2 + 2 + 20);
	put16(w, 0xC000 | 16); /* mname */
	put16(w, 0xC000 | 16); /* rname */
	put32(w, 2024);
	put32(w, 3600);
	put32(w, 900);
	put32(w, 86400);
	put32(w, soa_min);
}

static void test_cache_ttl(void **state)
{
	(void)state;
	struct fwd_key k;
	struct fwd_msg m;
	struct w w;
	uint32_t ttl;
	key_for(&k, NAME, NAME_LEN, DNS_T_A);

	answer_a(&w, 1);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 1, offs, &m), 0);
	assert_int_equal(fwd_msg_cache_ttl(&m, 3600, 1800, &ttl), FWD_CACHE_POSITIVE);
	assert_int_equal(ttl, 60); /* the smallest record TTL */
	answer_a(&w, 1);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 1, offs, &m), 0);
	assert_int_equal(fwd_msg_cache_ttl(&m, 30, 1800, &ttl), FWD_CACHE_POSITIVE);
	assert_int_equal(ttl, 30); /* capped */

	static const struct {
		uint8_t rcode;
		uint32_t soa_ttl, soa_min, max_neg;
		enum fwd_cache_kind kind;
		uint32_t ttl;
	} neg[] = {
	    /* RFC 2308 5: the MINIMUM */
	    {DNS_RCODE_NXDOMAIN, 3600, 60, 1800, FWD_CACHE_NEGATIVE, 60},
	    /* ... or the SOA's TTL, if smaller */
	    {DNS_RCODE_NXDOMAIN, 30, 600, 1800, FWD_CACHE_NEGATIVE, 30},
	    /* capped */
	    {DNS_RCODE_NXDOMAIN, 7200, 7200, 1800, FWD_CACHE_NEGATIVE, 1800},
	    /* NODATA */
	    {DNS_RCODE_NOERROR, 3600, 60, 1800, FWD_CACHE_NEGATIVE, 60},
	    /* zero: not cached */
	    {DNS_RCODE_NXDOMAIN, 0, 60, 1800, FWD_CACHE_NONE, 0},
	    /* SERVFAIL: the forwarder decides */
	    {DNS_RCODE_SERVFAIL, 3600, 60, 1800, FWD_CACHE_NONE, 0},
	};
	for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++) {
		nxdomain(&w, 1, neg[i].rcode, neg[i].soa_ttl, neg[i].soa_min);
		assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 1, offs, &m), 0);
		assert_true(m.has_soa);
		assert_int_equal(fwd_msg_cache_ttl(&m, 3600, neg[i].max_neg, &ttl), neg[i].kind);
		assert_int_equal(ttl, neg[i].ttl);
	}
	/* A negative answer without an SOA is not cached (RFC 2308 5). */
	header(&w, 1, ANSWER_FLAGS, 1, 0, 0, 0);
	wire_hdr_set_rcode(w.b, DNS_RCODE_NXDOMAIN);
	question(&w, NAME, NAME_LEN, DNS_T_A);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 1, offs, &m), 0);
	assert_int_equal(fwd_msg_cache_ttl(&m, 3600, 1800, &ttl), FWD_CACHE_NONE);
}

static void test_render(void **state)
{
	(void)state;
	struct fwd_key k;
	struct fwd_msg m;
	struct w w, client;
	uint8_t out[4096];
	key_for(&k, NAME, NAME_LEN, DNS_T_A);
	answer_a(&w, 1);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 1, offs, &m), 0);

	/* The client asked in its own case, with RD and CD. */
	header(&client, 0x1234, WIRE_RD | WIRE_CD, 1, 0, 0, 0);
	question(&client, "\3Www\7EXAMPLE\3org", NAME_LEN, DNS_T_A);
	struct fwd_client_q cq = {
	    .q = client.b + WIRE_HDR_LEN, .qlen = NAME_LEN + 4, .limit = 512, .edns = true};
	memcpy(cq.hdr, client.b, 4);
	struct fwd_ttl t = {.age = 10, .cap = 3600};
	size_t n = fwd_render(&cq, &m, &t, out, sizeof(out));
	assert_int_equal(n, m.len + WIRE_OPT_LEN);
	assert_int_equal(wire_hdr_id(out), 0x1234);
	/* no AA, rcode NOERROR */
	assert_int_equal(wire_hdr_flags(out), WIRE_QR | WIRE_RD | WIRE_RA | WIRE_CD);
	/* the client's case */
	assert_memory_equal(out + WIRE_HDR_LEN, "\3Www\7EXAMPLE\3org", NAME_LEN);
	assert_int_equal(wire_rd32(out + m.ttl_off[0]), 290); /* counted down */
	assert_int_equal(wire_rd32(out + m.ttl_off[1]), 50);
	assert_int_equal(wire_hdr_count(out, WIRE_AR), 1); /* our OPT */

	t = (struct fwd_ttl){.age = 100, .cap = 3600};
	fwd_render(&cq, &m, &t, out, sizeof(out));
	assert_int_equal(wire_rd32(out + m.ttl_off[1]), 0); /* never below zero */
	t = (struct fwd_ttl){.age = 0, .cap = 20};
	fwd_render(&cq, &m, &t, out, sizeof(out));
	assert_int_equal(wire_rd32(out + m.ttl_off[0]), 20); /* never above the cache's TTL */
	t = (struct fwd_ttl){.age = 5000, .cap = 300, .stale = true};
	fwd_render(&cq, &m, &t, out, sizeof(out));
	assert_int_equal(wire_rd32(out + m.ttl_off[0]), FWD_STALE_TTL);

	/* Too big for the client: TC, no records. */
	cq.limit = (uint16_t)(m.qend + WIRE_OPT_LEN + 10);
	t = (struct fwd_ttl){.cap = 3600};
	n = fwd_render(&cq, &m, &t, out, sizeof(out));
	assert_int_equal(n, m.qend + WIRE_OPT_LEN);
	assert_true(wire_hdr_has(out, WIRE_TC));
	assert_int_equal(wire_hdr_count(out, WIRE_AN), 0);

	/* An error response keeps the question. */
	cq.limit = 512;
	n = fwd_render_error(&cq, DNS_RCODE_SERVFAIL, false, out, sizeof(out));
	assert_int_equal(n, m.qend + WIRE_OPT_LEN);
	assert_int_equal(wire_hdr_rcode(out), DNS_RCODE_SERVFAIL);
	assert_int_equal(wire_hdr_count(out, WIRE_QD), 1);
}

static void test_splice(void **state)
{
	(void)state;
	struct fwd_key k;
	struct fwd_msg m;
	struct w w, client;
	uint8_t out[4096];
	/* The upstream's answer for www.example.org: a CNAME to example.org
	 * (compressed into the question) and its A record. */
	key_for(&k, NAME, NAME_LEN, DNS_T_A);
	header(&w, 3, ANSWER_FLAGS, 1, 2, 0, 0);
	question(&w, NAME, NAME_LEN, DNS_T_A);
	uint8_t cname[2] = {0xC0, 16};
	rr_ptr_owner(&w, DNS_T_CNAME, 300, cname, 2);
	put16(&w, 0xC000 | 16);
	put16(&w, DNS_T_A);
	put16(&w, DNS_C_IN);
	put32(&w, 300);
	put16(&w, 4);
	putn(&w, "\xC0\x00\x02\x0A", 4);
	assert_int_equal(fwd_msg_parse(w.b, w.n, &k, 3, offs, &m), 0);

	/* The client asked www.example.org.default.svc.cluster.local; svcdns puts
	 * its CNAME to www.example.org first. */
	static const char cq_name[] = "\3www\7example\3org\7default\3svc\7cluster\5local";
	header(&client, 0x4242, WIRE_RD, 1, 0, 0, 0);
	question(&client, cq_name, sizeof(cq_name), DNS_T_A);
	struct w prefix;
	prefix.n = 0;
	rr_ptr_owner(&prefix, DNS_T_CNAME, 5, NAME, NAME_LEN);
	struct fwd_client_q cq = {
	    .q = client.b + WIRE_HDR_LEN, .qlen = (uint16_t)(sizeof(cq_name) + 4), .limit = 512};
	memcpy(cq.hdr, client.b, 4);
	struct fwd_ttl t = {.age = 1, .cap = 3600};
	size_t n = fwd_render_splice(&cq, prefix.b, prefix.n, 1, &m, &t, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(wire_hdr_count(out, WIRE_AN), 3); /* CNAME of ours + the upstream's two */
	size_t off = WIRE_HDR_LEN + sizeof(cq_name) + 4 + prefix.n;
	/* The upstream's CNAME, owner written out in full (no pointer into a
	 * question that is not there any more), its target too. */
	assert_memory_equal(out + off, NAME, NAME_LEN);
	off += NAME_LEN;
	assert_int_equal(wire_rd16(out + off), DNS_T_CNAME);
	assert_int_equal(wire_rd32(out + off + 4), 299);
	assert_int_equal(wire_rd16(out + off + 8), 13); /* rdlength of "example.org." in full */
	assert_memory_equal(out + off + 10, "\7example\3org", 13);
	off += 10 + 13;
	assert_memory_equal(out + off, "\7example\3org", 13);

	/* It does not fit: 0, the caller sends TC. */
	cq.limit = (uint16_t)(WIRE_HDR_LEN + cq.qlen + prefix.n + 20);
	assert_int_equal(fwd_render_splice(&cq, prefix.b, prefix.n, 1, &m, &t, out, sizeof(out)),
			 0);
}

static void test_name_expand(void **state)
{
	(void)state;
	uint8_t out[DNAME_MAX];
	size_t next;
	/* a header, then "abc" at 12, then "www" + a pointer to it */
	static const uint8_t msg[] = "\0\0\0\0\0\0\0\0\0\0\0\0\3abc\0\3www\300\014";
	assert_int_equal(fwd_name_expand(msg, 23, 17, out, &next), 9);
	assert_memory_equal(out, "\3www\3abc", 9);
	assert_int_equal(next, 23);
	/* a pointer into the header (which is rewritten): rejected */
	static const uint8_t hdr[] = "\0\0\3abc\0\0\0\0\0\0\300\002";
	assert_int_equal(fwd_name_expand(hdr, 14, 12, out, &next), -EBADMSG);
	/* a pointer to itself, or forward: rejected */
	static const uint8_t loop[] = "\300\000";
	assert_int_equal(fwd_name_expand(loop, 2, 0, out, &next), -EBADMSG);
	static const uint8_t fwdp[] = "\300\002\3abc\0";
	assert_int_equal(fwd_name_expand(fwdp, 7, 0, out, &next), -EBADMSG);
	/* running past the end */
	assert_int_equal(fwd_name_expand(msg, 14, 12, out, &next), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_query_build),	 cmocka_unit_test(test_parse_checks),
	    cmocka_unit_test(test_parse_layout), cmocka_unit_test(test_cache_ttl),
	    cmocka_unit_test(test_render),	 cmocka_unit_test(test_splice),
	    cmocka_unit_test(test_name_expand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
