/* Zone transfers: AXFR (RFC 5936), and IXFR (RFC 1995) answered with the
 * whole zone, regenerated from a snapshot's view and static zones and packed
 * into DNS messages framed for TCP.
 *
 * Owns: which zones can be transferred, the record order (SOA first and
 * last), message packing. Must never: run on a snapshot the caller does not
 * hold (call between snapshot_enter and snapshot_leave), or on the UDP path. */
#ifndef SVCDNS_XFR_H
#define SVCDNS_XFR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/builder.h"
#include "zones/snapshot.h"

/* Largest DNS message of a transfer; well under 64 KiB so that clients with
 * small buffers cope. */
#define XFR_MSG_MAX 16384

/* Answers an AXFR or IXFR request `req` (a whole, well-formed query whose
 * question ends at `qend`). On success *out holds one or more TCP-framed
 * messages (2-byte length prefix each), malloc'd, and 0 is returned. -ENOENT:
 * the question names no zone svcdns serves (answer NOTAUTH). */
int xfr_answer(const struct snapshot *s, const uint8_t *req, size_t len, size_t qend, uint8_t **out,
	       size_t *out_len);

/* ---- the IXFR journal ----------------------------------------------------
 * An incremental build knows exactly which Services changed; it records the
 * records they took out and put in as one diff, chained to the previous
 * snapshot's. Snapshots own their chain by reference; a full build starts a
 * new chain (and IXFR from before it is answered with the whole zone). */
struct xfr_diff;

/* Starts a diff from `from` to `to`, chained to `prev` (may be NULL). */
struct xfr_diff *xfr_diff_new(uint32_t from, uint32_t to, struct xfr_diff *prev);
/* Records what one Service version contributed, as deleted or added
 * records: `scratch` is a build of that Service's records alone. */
int xfr_diff_collect(struct xfr_diff *d, struct zb *scratch, bool added);
void xfr_diff_release(struct xfr_diff *d);

/* The apex of the zone a transfer or NOTIFY names, for the notifier: the
 * zones that change with the cluster. Fills up to `max` lowercase wire names
 * and returns how many. */
size_t xfr_dynamic_zones(const struct snapshot_config *cfg, uint8_t names[][255], size_t max);

#endif
