/* Rendering one answer at a time: a context (writer, compression dictionary,
 * section counts) that a build reuses for every answer it renders, the RRsets
 * written into it, and the finished answer stored in the output arena once
 * per distinct byte string.
 *
 * Internal to zones/ (answers.c drives it; build.c frees it). Build-time only,
 * on the control thread; it reports answers cut short to fit 64 KiB in the log,
 * once per distinct cut. Must never: hand out an answer it has not stored in
 * the build's output arena. */
#ifndef SVCDNS_ZONES_RENDER_H
#define SVCDNS_ZONES_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zones/build.h"
#include "zones/writer.h"

/* The rendering context for one answer. Sections: 0 answer, 1 authority,
 * 2 additional, in that order. */
struct render {
	struct zb *b;
	struct writer w;
	/* the answer being rendered: the writer fills its data */
	struct zone_answer *cand;
	struct dict_entry dict[DICT_SIZE];
	uint16_t counts[3];
	uint16_t section;
	size_t an_ns_len;
	/* names already given addresses in the additional section */
	const uint8_t *added[64];
	size_t n_added;
	const uint8_t *qname; /* the answer's owner, for log lines (NULL: synthesized) */
	bool trim_logged;     /* this answer's trimming was reported */
	bool glue_cut;	      /* some glue of this answer did not fit */
	bool rot;	      /* this answer's answer section may rotate (render_rotating) */
	/* the answer section's records per locality tier, and whether the
	 * tiers came in order (rdata.tier) */
	uint16_t tier_n[ZB_TIERS];
	bool tier_sorted;
	uint8_t tier_last;
	/* the zone of each of the answer section's first records (rdata.zone) */
	uint32_t rec_zone[ZONE_ANSWER_VAR_MAX_AN];
	/* one node's answers while it is laid out */
	uint16_t *list_types;
	const struct zone_answer **list_ans;
	size_t list_cap;
};

/* The build's context, made on first use; NULL when out of memory. */
struct render *render_ctx_get(struct zb *b);
void render_ctx_free(struct render *r);

/* Starts an answer for a question of `qname` (NULL: a wildcard or synthesized
 * owner, no compression against the question). */
void render_begin(struct render *r, const uint8_t *qname);
/* Writes an RRset into the current section (owner as writer_put_rr takes it);
 * what does not fit is left out and reported. */
void render_set(struct render *r, const uint8_t *owner, int owner_ptr, const struct rrset *s);
void render_next_section(struct render *r);
/* Called before the answer section's one RRset (owned by the question) is
 * written: when the build rotates, the answer is rendered so that its
 * records may be served in any rotation (no name points into them) and
 * render_end records where each starts. */
void render_rotating(struct render *r);
/* The addresses of the names an SRV, MX or NS RRset points at, when this
 * build or an older one serves them (the additional section). */
void render_additional_for(struct render *r, const struct rrset *s);
/* Finishes the answer: the stored copy, or NULL when out of memory.
 * `apex_len` != 0: the first authority record's owner is a pointer to the
 * question's suffix of that length, patched per query. */
const struct zone_answer *render_end_patched(struct render *r, uint8_t rcode, bool aa,
					     uint8_t apex_len);
const struct zone_answer *render_end(struct render *r, uint8_t rcode, bool aa);

#endif
