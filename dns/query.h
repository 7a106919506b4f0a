/* Answering one DNS message: parse the header and question by hand, look the
 * name up in the snapshot, and write the response behind the client's header.
 *
 * Owns: the RFC rules for a query (FORMERR, NOTIMP, REFUSED, EDNS0, TC) and
 * the response layout. UDP, TCP and the tests all drive this one function.
 * Must never: allocate, lock, log or block; it is the hot path. */
#ifndef SVCDNS_QUERY_H
#define SVCDNS_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "zones/snapshot.h"

enum dns_proto { DNS_UDP = 0, DNS_TCP = 1 };

/* Largest UDP payload svcdns sends with EDNS (the DNS flag day 2020 value):
 * bigger answers go over TCP instead of being fragmented. */
#define DNS_EDNS_MAX_UDP 1232
#define DNS_MAX_MSG 65535

struct dns_query_info {
	uint16_t qtype;
	uint8_t rcode;
	uint8_t truncated;
	/* For the forwarder (dns/forward.h); qend is 0 when the question was
	 * not read or the query was rejected before the lookup. */
	uint16_t qend;  /* end of the question */
	uint16_t limit; /* largest response the client accepts */
	uint8_t edns;   /* the query had an OPT record */
	uint8_t edns_do;
	uint8_t outside; /* REFUSED only because the IN-class name is in no zone served */
	uint8_t cluster; /* the answer came from a zone built from the cluster */
	uint8_t xfr;     /* an AXFR or IXFR: answered REFUSED unless the TCP path serves it */
	/* The apex of the zone the name fell in (lowercase wire), or NULL: the
	 * metrics label by zone without looking the name up again. */
	const uint8_t *apex;
	uint8_t apex_len;
	uint8_t stale;   /* carries EDE 3, Stale Answer (dns/lifecycle_freshness.h) */
};

/* Writes the response to `req` into `resp` (capacity `cap`, at least 512).
 * Returns its length, or 0 when nothing must be sent (a response, a message
 * shorter than a header). `s` may be NULL before the first snapshot: then
 * every query is answered SERVFAIL. */
size_t dns_answer(const struct snapshot *s, const uint8_t *req, size_t len, uint8_t *resp,
		  size_t cap, enum dns_proto proto, struct dns_query_info *info);

#endif
