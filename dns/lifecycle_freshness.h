/* Freshness on the query path: how old the cluster data is, as DNS answers
 * show it. The control thread (lifecycle.h) keeps a few atomics current; the
 * workers read them while answering.
 *
 * Owns: the "stale" state (the data source silent for longer than
 * --stale-after), the Extended DNS Error 3 (Stale Answer, RFC 8914) option,
 * the CHAOS TXT answer for generation.<zone>, and whether cluster names are
 * held unanswered while the first sync is under way (--startup-timeout).
 * Must never: lock, allocate or block in what dns_answer() calls; only the
 * freshness_set_* functions write, and only the control thread calls them. */
#ifndef SVCDNS_LIFECYCLE_FRESHNESS_H
#define SVCDNS_LIFECYCLE_FRESHNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/snapshot.h"

/* The cluster zone, for generation.<zone>. Before the workers start. */
int freshness_set_zone(const char *zone);
/* From the control thread: when the data source was last heard from
 * (CLOCK_MONOTONIC ns; 0 means "always fresh", as a manifest directory is),
 * and whether that is longer ago than --stale-after. */
void freshness_set_heard(uint64_t heard_ns, bool stale);

/* From the control thread: while `hold`, a name of the cluster's zones asked
 * before the first full sync gets no answer at all (the client asks again
 * and then finds the data) instead of SERVFAIL. */
void freshness_set_startup_hold(bool hold);
/* How many queries the hold left unanswered so far (for the log). */
uint64_t freshness_startup_held(void);

/* ---- query path ----------------------------------------------------------- */

/* Whether to leave this cluster name unanswered (it is then counted). */
bool freshness_startup_hold(void);

/* When the data is stale, writes the EDE option (code, length, info-code 3,
 * a short text with the age) into out[0..cap) and returns its length; else 0. */
size_t freshness_ede(uint8_t *out, size_t cap);

/* Is the lowercased wire name `key` generation.<zone> (CHAOS, TXT or ANY)? */
bool freshness_is_generation(const uint8_t *key, size_t keylen, uint16_t qtype);

/* Writes the CHAOS TXT record (owner: a pointer to the question) for
 * generation.<zone> from snapshot `s` into out[0..cap): generation, serial,
 * seconds since the build, seconds since the source was heard from, stale.
 * Returns its length, 0 when it does not fit. */
size_t freshness_generation_txt(const struct snapshot *s, uint8_t *out, size_t cap);

#endif
