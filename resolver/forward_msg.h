/* Upstream messages on the wire: the query svcdns sends upstream, the checks
 * an answer must pass before anyone sees it, and rendering a client's response
 * from a checked answer (directly, or spliced behind a CNAME svcdns made).
 *
 * Owns: the rules for accepting an upstream answer (ID, QR, question,
 * bounds), stripping the upstream's OPT, TTL countdown on output, and the
 * cache TTL of an answer (RFC 2308 for negative ones).
 * Must never: do I/O, allocate, lock or log: pure functions over bytes. */
#ifndef SVCDNS_FORWARD_MSG_H
#define SVCDNS_FORWARD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/dname.h"
#include "wire/wire.h"

#define FWD_KEY_DO 0x01 /* the client asked for DNSSEC records */
#define FWD_KEY_CD 0x02 /* the client disabled validation */

/* What is asked upstream: also the cache key and the coalescing key. */
struct fwd_key {
	uint8_t name[DNAME_MAX]; /* lowercased wire form */
	uint16_t name_len;
	uint16_t qtype, qclass;
	uint8_t flags; /* FWD_KEY_* */
	uint32_t hash;
};

/* Fills in k->hash from the other fields, with the process's secret key
 * (common/shash.h): the name is the client's choice, and the cache and the
 * table of queries in flight pick their shard and bucket from this hash. */
void fwd_key_hash(struct fwd_key *k);
bool fwd_key_equal(const struct fwd_key *a, const struct fwd_key *b);

/* Largest query fwd_query_build writes. */
#define FWD_QUERY_MAX (12 + DNAME_MAX + 4 + 11)
/* Stale answers carry this TTL (RFC 8767 section 4 suggests 30 s). */
#define FWD_STALE_TTL 30

/* The upstream query: RD set, CD as the client asked, OPT with our UDP
 * payload and DO as the client asked. Returns its length. */
size_t fwd_query_build(const struct fwd_key *k, uint16_t id, uint8_t *out);

/* A checked upstream answer. `wire` holds header, question (lowercased) and
 * the answer, authority and additional sections, with the upstream's OPT (and
 * anything after it) cut off. Pointers inside point into `wire` only. */
struct fwd_msg {
	const uint8_t *wire;
	uint16_t len;
	uint16_t qend;	    /* end of the question */
	uint16_t an_end;    /* end of the answer section */
	uint16_t an_ns_end; /* end of the authority section */
	uint16_t an, ns, ar;
	uint8_t rcode; /* the low 4 bits */
	bool tc;       /* truncated: ask again over TCP; nothing else is set */
	bool ad;
	/* Offsets in `wire` of every record's TTL field, in order; the first
	 * n_ttl_an_ns belong to the answer and authority sections. */
	const uint16_t *ttl_off;
	uint16_t n_ttl, n_ttl_an_ns;
	/* The authority SOA's TTL and MINIMUM (RFC 2308), when there is one. */
	bool has_soa;
	uint32_t soa_ttl, soa_min;
};

/* Upper bound on the records of one message (each takes at least 11 bytes). */
#define FWD_MAX_RRS (65535 / 11 + 1)

/* Checks an answer to the query `k` sent with `id` and makes it a fwd_msg,
 * editing `wire` in place (lowercased question, OPT cut). `ttl_off` must hold
 * FWD_MAX_RRS entries. Returns 0, -EPROTO (not an answer to that query: wrong
 * ID, QR clear, other opcode), -ENOMSG (wrong question) or -EBADMSG
 * (malformed). */
int fwd_msg_parse(uint8_t *wire, size_t len, const struct fwd_key *k, uint16_t id,
		  uint16_t *ttl_off, struct fwd_msg *m);

enum fwd_cache_kind { FWD_CACHE_NONE = 0, FWD_CACHE_POSITIVE, FWD_CACHE_NEGATIVE };

/* How long an answer may be cached: positive ones for their smallest TTL
 * (capped by max_ttl), NXDOMAIN and NODATA for min(SOA TTL, SOA MINIMUM)
 * (capped by max_neg_ttl; never without an SOA, RFC 2308 section 5). Returns
 * the kind (NONE: do not cache) and *ttl. */
enum fwd_cache_kind fwd_msg_cache_ttl(const struct fwd_msg *m, uint32_t max_ttl,
				      uint32_t max_neg_ttl, uint32_t *ttl);

/* The client's side of a response: its header and question, as it sent them. */
struct fwd_client_q {
	uint8_t hdr[WIRE_HDR_LEN]; /* as the client sent it: ID and flags count */
	const uint8_t *q;	   /* the question: name as asked, type, class */
	uint16_t qlen;
	uint16_t limit; /* largest response the client accepts */
	bool edns, edns_do;
};

/* TTLs on output: min(record TTL, cap) less the entry's age, or
 * FWD_STALE_TTL when `stale`. */
struct fwd_ttl {
	uint32_t age;
	uint32_t cap;
	bool stale;
};

/* The response to a client whose question is the one `m` answers (same name
 * up to case, so every offset in m carries over): the sections of m behind
 * the client's header and question, RA set, AA clear, TTLs counted down, our
 * OPT when the client sent one (with EDE 3, Stale Answer, when t is stale). Drops the additional
 * section, then sets TC, when the response would exceed the client's limit. Returns its length (0
 * when `cap` is too small even for the header). */
size_t fwd_render(const struct fwd_client_q *c, const struct fwd_msg *m, const struct fwd_ttl *t,
		  uint8_t *out, size_t cap);

/* The response for a client whose question differs from m's: `prefix`
 * (pcount answer records svcdns made, owned by the client's question, placed
 * right after it) followed by m's answer and authority records with every
 * name written out in full. Returns its length, or 0 when it does not fit the
 * client's limit (send fwd_render_error(..., tc) instead). */
size_t fwd_render_splice(const struct fwd_client_q *c, const uint8_t *prefix, size_t plen,
			 uint16_t pcount, const struct fwd_msg *m, const struct fwd_ttl *t,
			 uint8_t *out, size_t cap);

/* A response with no records: `rcode`, TC when `tc`. */
size_t fwd_render_error(const struct fwd_client_q *c, uint8_t rcode, bool tc, uint8_t *out,
			size_t cap);

/* Adds an Extended DNS Error (RFC 8914, info-code `code`, no text) to the
 * OPT that ends out[0..n), a response rendered above for c; without EDNS, or
 * when it would pass the client's limit, the response stays as it is.
 * Returns its length. */
size_t fwd_add_ede(const struct fwd_client_q *c, uint16_t code, uint8_t *out, size_t n, size_t cap);

/* Reads a possibly compressed name at msg[off] into `out` (uncompressed,
 * case kept). Pointers must point backwards. Returns the wire length of the
 * name in `out`, or -EBADMSG; *next gets the offset after the name in msg. */
int fwd_name_expand(const uint8_t *msg, size_t len, size_t off, uint8_t *out, size_t *next);

#endif
