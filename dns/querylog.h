/* The query log: one debug line per query received (--log-level debug), so
 * that a person, or a test, can see exactly what clients ask.
 *
 * Owns: the line's format. Must never: be called unless the level is debug
 * (callers check log_get_level() first, keeping the query path cheap). */
#ifndef SVCDNS_QUERYLOG_H
#define SVCDNS_QUERYLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/query.h"

/* "query from 127.0.0.1#40000 udp: google.com. IN A" */
void dns_log_query(const struct sockaddr *peer, const uint8_t *req, size_t len,
		   enum dns_proto proto);

#endif
