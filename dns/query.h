/* Answering one DNS message: parse the header and question by hand, look the
 * name up in the snapshot, and write the response behind the client's header.
 *
 * Owns: the RFC rules for a query (FORMERR, NOTIMP, REFUSED, EDNS0, TC) and
 * the response layout. dns_process() (process.h) calls it for UDP and TCP
 * alike; the tests call it directly.
 * Must never: allocate, lock, log or block; it is the hot path. */
#ifndef SVCDNS_QUERY_H
#define SVCDNS_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "wire/query_info.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

struct sockaddr;

/* Writes the response to `req` into `resp` (capacity `cap`, at least 512).
 * Returns its length, or 0 when nothing must be sent (a response, a message
 * shorter than a header, a cluster name asked before the first sync while
 * lifecycle_freshness.h holds such names). `s` may be NULL before the first
 * snapshot: then every query is answered SERVFAIL. */
size_t dns_answer(const struct snapshot *s, const uint8_t *req, size_t len, uint8_t *resp,
		  size_t cap, enum dns_proto proto, struct dns_query_info *info);
/* The same for a query from `peer` (NULL: unknown): in central mode a client
 * that is a known endpoint gets the answers ordered for its zone first
 * (zone_answer.n_var). */
size_t dns_answer_from(const struct snapshot *s, const struct sockaddr *peer, const uint8_t *req,
		       size_t len, uint8_t *resp, size_t cap, enum dns_proto proto,
		       struct dns_query_info *info);

#endif
