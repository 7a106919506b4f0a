/* Static zones from master files (RFC 1035 syntax), read with ldns.
 *
 * Owns: loading and checking a zone file into a list of records, and adding
 * those records to a snapshot build. Must never: be called on the query path. */
#ifndef SVCDNS_ZONEFILE_H
#define SVCDNS_ZONEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "zones/builder.h"

struct static_zone;

/* Reads FILE as the zone ORIGIN. Errors (unreadable file, syntax error with
 * its line, no SOA at the apex, records outside the zone) are logged with the
 * file name and returned as negative codes. */
int zonefile_load(const char *origin, const char *path, struct static_zone **out);
void zonefile_free(struct static_zone *z);
const char *zonefile_origin(const struct static_zone *z);

/* Adds the zone and its records to a build. */
int zonefile_records(struct zb *b, const struct static_zone *z);

#endif
