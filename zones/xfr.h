/* Zone transfers: AXFR (RFC 5936), and IXFR (RFC 1995) answered with the
 * whole zone, regenerated from a snapshot's view and static zones and packed
 * into DNS messages framed for TCP.
 *
 * Owns: which zones can be transferred, the record order (SOA first and
 * last), message packing. Must never: run on a snapshot the caller does not
 * hold (call between snapshot_enter and snapshot_leave), or on the UDP path. */
#ifndef SVCDNS_XFR_H
#define SVCDNS_XFR_H

#include <stddef.h>
#include <stdint.h>

#include "zones/snapshot.h"

/* Largest DNS message of a transfer; well under 64 KiB so that clients with
 * small buffers cope. */
#define XFR_MSG_MAX 16384

/* Answers an AXFR or IXFR request `req` (a whole, well-formed query whose
 * question ends at `qend`). On success *out holds one or more TCP-framed
 * messages (2-byte length prefix each), malloc'd, and 0 is returned. -ENOENT:
 * the question names no zone svcdns serves (answer NOTAUTH). */
int xfr_answer(const struct snapshot *s, const uint8_t *req, size_t len, size_t qend,
	       uint8_t **out, size_t *out_len);

/* The apex of the zone a transfer or NOTIFY names, for the notifier: the
 * zones that change with the cluster. Fills up to `max` lowercase wire names
 * and returns how many. */
size_t xfr_dynamic_zones(const struct snapshot_config *cfg, uint8_t names[][255], size_t max);

#endif
