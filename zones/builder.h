/* The snapshot builder: collects resource records for any number of zones,
 * then renders every answer to wire form and lays out the lookup tables.
 *
 * Owns: RRset collection, empty non-terminals, answer rendering (compression,
 * additional-section addresses, CNAME chains, wildcards, referrals) and the
 * snapshot's hash tables (a base shared by a line of incremental builds and a
 * small overlay of what each changed, merged into a new base as it grows).
 * Build-only data lives in the builder and goes with zb_free; published nodes
 * hold their answers inline and their first label only.
 * Must never: write to a node, answer or table an earlier build published
 * (the snapshots still being read share them).
 * Internal to zones/: cluster.c and zonefile.c feed it, snapshot.c publishes
 * what it makes. Build-time code, on the control thread: allocation is fine
 * here; only zb_lookup and zb_lookup_chaos run on the query path (any thread,
 * no allocation, no lock). Nodes and answers live in common/arena.h regions.
 *
 * The builder's files: build.c (collecting names and RRsets), answers.c
 * (zb_finish: every name's answers and published node), render.c and
 * writer.c (one answer in wire form), tables.c and htab.c (the published
 * tables, base and overlay), lookup.c (the query path); build.h, render.h,
 * writer.h and tables.h are their internal headers. */
#ifndef SVCDNS_BUILDER_H
#define SVCDNS_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

struct zb;
struct zb_zone;

struct zb *zb_new(struct arena *out);
void zb_free(struct zb *b);
/* Sizes the build's table for about n_names names (a full build of a big
 * cluster grows it a dozen times otherwise). */
int zb_reserve(struct zb *b, size_t n_names);
/* Renders answers that may rotate (snapshot_config.rotate); before zb_finish. */
void zb_set_rotate(struct zb *b, bool rotate);
/* The locality tier (0 nearest, ZB_TIERS - 1 farthest) of the records added
 * from now on. An RRset whose records were added in tier order renders with
 * each tier rotating on its own (zone_answer.rot_t1, rot_t2); the default 0
 * makes one tier. */
#define ZB_TIERS 3
void zb_set_tier(struct zb *b, unsigned tier);
/* The zone (snapshot_zone_hash; 0: none) of the records added from now on:
 * a rotating answer whose records span 2 to ZONE_ANSWER_MAX_VARS zones, in
 * one tier, renders an ordering for each (zone_answer.n_var). */
void zb_set_zone(struct zb *b, uint32_t zone);
/* Frees the tables zb_finish made (their nodes live in the output arena). */
void zb_tables_free(void *tables);
/* Bytes the tables' hash slots take (the shared base counted in full). */
size_t zb_tables_bytes(const void *tables);

/* Starts a build from an older build's tables: their base table and nodes are
 * shared, read-only (the nodes' arenas must outlive this build's snapshot),
 * and the small overlay of names changed since that base is copied, so the
 * cost does not depend on how many names there are. Zones are declared again,
 * in the same order; names are removed with zb_remove_owned and added as
 * usual. Adding data to a name an older build made fails with -EAGAIN: the
 * caller then builds in full. */
struct zb *zb_new_incremental(struct arena *out, const void *prev_tables);

/* Removes from `b` the names that `scratch` (a build of one Service's
 * records alone) gave data to, and every name at or below one of `roots`;
 * and its CHAOS names. -EAGAIN when a name's data is shared with another
 * Service. */
int zb_remove_owned(struct zb *b, const struct zb *scratch, const uint8_t *const *roots,
		    size_t n_roots);

/* Declares a zone by its apex (lowercased wire form). Its SOA must be added
 * with zb_rr_add like any record. */
int zb_zone_add(struct zb *b, const uint8_t *apex, struct zb_zone **out);

/* Adds one record. Owner must be at or below the zone's apex (lowercase wire).
 * Rdata names must be uncompressed. Duplicate records are dropped. */
int zb_rr_add(struct zb *b, struct zb_zone *z, const uint8_t *owner, uint16_t type, uint32_t ttl,
	      const uint8_t *rdata, uint16_t rdlen);

/* Marks a zone as built from the cluster (answered SERVFAIL before the first sync). */
void zb_zone_mark_dynamic(struct zb_zone *z);

/* Whether this build gave the name records of that type (an older build's
 * names are not looked at: adding to one makes the build a full one anyway). */
bool zb_has_type(struct zb *b, const uint8_t *owner, uint16_t type);

/* Makes sure a name exists (an empty non-terminal if nothing else). */
int zb_name_add(struct zb *b, struct zb_zone *z, const uint8_t *name);

/* Lets a zone hold coming names (below), answered with this negative TTL at
 * most. Declared again by each build, like the zone. */
void zb_zone_coming_names(struct zb_zone *z, uint32_t negative_ttl);

/* A name that is coming (an endpoint not ready yet): answered NXDOMAIN with
 * a short negative TTL and an Extended DNS Error (zb_zone_coming_names), unless
 * an older build made it or it has data or a name below it that is not
 * coming too. Its ancestors are not made real by it. */
int zb_name_coming(struct zb *b, struct zb_zone *z, const uint8_t *name);

/* Marks a node for synthesized pod records: `<ip>.<ns>.pod.<zone>`. One per
 * zone: the TTL is the zone's. */
int zb_mark_pod_root(struct zb *b, struct zb_zone *z, const uint8_t *name, uint32_t ttl);

/* Adds a CHAOS TXT answer (strings given as NUL-terminated C strings). */
int zb_chaos_txt(struct zb *b, const uint8_t *owner, const char *const *strings, size_t n);

/* Calls `cb` for every record of the zone at `apex` in a build that is not
 * finished yet: the SOA first, then the others (what a zone transfer sends).
 * -ENOENT when the build has no such zone. */
typedef int (*zb_rr_cb)(void *arg, const uint8_t *owner, uint16_t type, uint32_t ttl,
			const uint8_t *rdata, uint16_t rdlen);
int zb_zone_rrs(struct zb *b, const uint8_t *apex, zb_rr_cb cb, void *arg);
/* Every record of an unfinished build outside the zone apexes. */
int zb_data_rrs(struct zb *b, zb_rr_cb cb, void *arg);

/* Renders every answer and builds the lookup tables into the output arena.
 * *tables receives the opaque table struct zone_lookup reads. */
int zb_finish(struct zb *b, void **tables, size_t *n_names);

/* Lookup over the tables zb_finish made (snapshot.c wraps these). With
 * `pods`, a name under a pod root exists only for an address of a Pod of its
 * namespace in that view (--pods verified); without, for any address. */
void zb_lookup(const void *tables, const uint8_t *key, size_t keylen, uint16_t qtype,
	       const struct model_view *pods, struct zone_result *r);
const struct zone_answer *zb_lookup_chaos(const void *tables, const uint8_t *key, size_t keylen,
					  uint16_t qtype);

#endif
