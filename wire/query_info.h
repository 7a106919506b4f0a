/* What answering a query learned about it, handed from the authoritative path
 * (dns/query.h) to the resolver (resolver/forward_route.h), the query log and
 * the metrics: the resolver decides from it without parsing the message again.
 *
 * Owns: the record's layout only. Must never grow pointers to anything but the
 * query's own buffer and the published snapshot (apex); no allocation. */
#ifndef SVCDNS_QUERY_INFO_H
#define SVCDNS_QUERY_INFO_H

#include <stdint.h>

enum dns_proto { DNS_UDP = 0, DNS_TCP = 1 };

struct dns_query_info {
	uint16_t qtype;
	uint8_t rcode;
	uint8_t truncated;
	/* For the resolver; qend is 0 when the question was not read or the
	 * query was rejected before the lookup. */
	uint16_t qend;	/* end of the question */
	uint16_t limit; /* largest response the client accepts */
	uint8_t edns;	/* the query had an OPT record */
	uint8_t edns_do;
	uint8_t outside; /* REFUSED only because the IN-class name is in no zone served */
	uint8_t cluster; /* the answer came from a zone built from the cluster */
	uint8_t xfr;	 /* an AXFR or IXFR: answered REFUSED unless the TCP path serves it */
	/* The apex of the zone the name fell in (lowercase wire), or NULL: the
	 * metrics label by zone without looking the name up again. */
	const uint8_t *apex;
	uint8_t apex_len;
	uint8_t stale; /* carries EDE 3, Stale Answer (dns/lifecycle_freshness.h) */
};

#endif
