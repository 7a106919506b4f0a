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
#include "dns/forward_msg.h"
#include "fuzz.h"
#include "zones/dname.h"

static uint16_t *ttl_off;
static uint8_t *wire, *out;
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
	FUZZ_CHECK(ttl_off && wire && out, "out of memory");
	return 0;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Whether ldns reads the upstream's own message: svcdns passes records on
 * as they are, so a response can only be as readable as what came in. */
static bool well_formed;

/* What every response to the client must be. */
static void check_client(const struct fwd_client_q *c, const uint8_t *resp, size_t n, size_t limit,
			 const char *what, bool parse)
{
	FUZZ_CHECK(n >= 12 + (size_t)c->qlen, "%s: %zu bytes", what, n);
	FUZZ_CHECK(n <= limit, "%s: %zu bytes over a limit of %zu", what, n, limit);
	FUZZ_CHECK(memcmp(resp, c->hdr, 2) == 0, "%s: ID not the client's", what);
	FUZZ_CHECK(resp[2] & 0x80, "%s: QR clear", what);
	FUZZ_CHECK(rd16(resp + 4) == 1 && memcmp(resp + 12, c->q, c->qlen) == 0,
		   "%s: the client's question is not echoed as asked", what);
	if (!parse)
		return;
	ldns_pkt *pkt = NULL;
	ldns_status st = ldns_wire2pkt(&pkt, resp, n);
	FUZZ_CHECK(st == LDNS_STATUS_OK, "%s: ldns cannot parse it: %s", what,
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
	if (size < 12 || size > 65535)
		return 0;
	struct fwd_key k = {0};
	struct fwd_msg m;
	/* The question the input answers, when it has one we could have sent. */
	int ql = rd16(data + 4) == 1 ? dname_read_question(data, size, 12, k.name) : -1;
	bool asked = ql > 0 && 12 + (size_t)ql + 4 <= size;
	if (asked) {
		k.name_len = (uint16_t)ql;
		k.qtype = rd16(data + 12 + ql);
		k.qclass = rd16(data + 12 + ql + 2);
		k.flags = data[3] & 0x01 ? FWD_KEY_DO : 0;
		fwd_key_hash(&k);
	}

	/* A question we did not ask: the answer must be refused. */
	struct fwd_key other = {.qtype = 1, .qclass = 1};
	other.name_len =
	    (uint16_t)dname_from_text("svcdns-fuzz-other.example.", other.name, sizeof(other.name));
	fwd_key_hash(&other);
	if (!asked || !fwd_key_equal(&k, &other)) {
		memcpy(wire, data, size);
		int rc = fwd_msg_parse(wire, size, &other, rd16(data), ttl_off, &m);
		FUZZ_CHECK(rc == -EPROTO || rc == -ENOMSG || rc == -EBADMSG,
			   "an answer to another question was taken: %d", rc);
	}
	if (!asked)
		return 0;
	memcpy(wire, data, size);
	int rc = fwd_msg_parse(wire, size, &k, (uint16_t)(rd16(data) ^ 1), ttl_off, &m);
	FUZZ_CHECK(rc == -EPROTO, "an answer with another ID was taken: %d", rc);
	memcpy(wire, data, size);
	rc = fwd_msg_parse(wire, size, &k, rd16(data), ttl_off, &m);
	if (trace)
		fprintf(stderr, "parse %d: rcode %u an %u ns %u ar %u%s\n", rc,
			rc == 0 ? m.rcode : 0, rc == 0 ? m.an : 0, rc == 0 ? m.ns : 0,
			rc == 0 ? m.ar : 0, rc == 0 && m.tc ? " TC" : "");
	if (rc < 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -ENOMSG || rc == -EBADMSG, "returned %d", rc);
		return 0;
	}
	check_msg(&m, size);
	ldns_pkt *in = NULL;
	well_formed = ldns_wire2pkt(&in, data, size) == LDNS_STATUS_OK;
	ldns_pkt_free(in);
	FUZZ_CHECK(memcmp(wire + 12, k.name, k.name_len) == 0, "question not lowercased");

	uint32_t ttl;
	enum fwd_cache_kind kind = fwd_msg_cache_ttl(&m, 3600, 1800, &ttl);
	FUZZ_CHECK(kind == FWD_CACHE_NONE ? ttl == 0 || m.rcode != 0 : ttl > 0,
		   "cache kind %d with TTL %u", (int)kind, ttl);
	FUZZ_CHECK(ttl <= (kind == FWD_CACHE_NEGATIVE ? 1800u : 3600u), "TTL %u over its cap", ttl);

	/* The client asked the same name in its own case, with its own ID. */
	uint8_t q[DNAME_MAX + 4];
	memcpy(q, data + 12, (size_t)ql + 4);
	for (int i = 0; i < ql; i++)
		if ((q[i] | 0x20) >= 'a' && (q[i] | 0x20) <= 'z' && (i & 1))
			q[i] ^= 0x20;
	/* svcdns's own CNAME from the client's name to the name asked upstream */
	uint8_t prefix[12 + DNAME_MAX];
	static const uint8_t cname_head[] = {0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 5};
	memcpy(prefix, cname_head, sizeof(cname_head));
	prefix[10] = (uint8_t)(ql >> 8);
	prefix[11] = (uint8_t)ql;
	memcpy(prefix + 12, k.name, (size_t)ql);
	static const uint16_t limits[] = {512, 1232, 65535};
	struct fwd_ttl tt = {.age = 7, .cap = 3600};
	for (int l = 0; l < 3; l++) {
		for (int e = 0; e < 2; e++) {
			struct fwd_client_q c = {
			    .hdr = {0xab, 0xcd, 0x01, 0x00},
			    .q = q,
			    .qlen = (uint16_t)(ql + 4),
			    .limit = limits[l],
			    .edns = e,
			    .edns_do = e && (data[3] & 1),
			};
			size_t n = fwd_render(&c, &m, &tt, out, 65535);
			check_client(&c, out, n, limits[l], "fwd_render", well_formed);
			FUZZ_CHECK((out[3] & 0x0F) == m.rcode, "rcode changed");
			n = fwd_render_splice(&c, prefix, 12 + (size_t)ql, 1, &m, &tt, out, 65535);
			if (n)
				check_client(&c, out, n, limits[l], "fwd_render_splice",
					     well_formed);
			n = fwd_render_error(&c, 2, l == 0, out, 65535);
			check_client(&c, out, n, limits[l], "fwd_render_error", true);
			tt.stale = !tt.stale;
		}
	}
	return 0;
}
