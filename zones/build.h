/* A build in progress: the build nodes that collect each name's RRsets, the
 * build's own table of them, and the state zb_finish renders from.
 *
 * Internal to zones/ (the builder's files: build.c, render.c, answers.c,
 * tables.c, htab.c). Build-time only, on the control thread: nothing here is
 * read by the query path. Must never: let anything published (a node, an
 * answer) point into the tmp arena, which goes with zb_free. */
#ifndef SVCDNS_ZONES_BUILD_H
#define SVCDNS_ZONES_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "zones/builder.h"
#include "zones/tables.h"

/* One record's data, uncompressed wire form. */
struct rdata {
	struct rdata *next;
	uint16_t len;
	uint8_t tier;  /* its locality tier (zb_set_tier), in the padding */
	uint32_t zone; /* its zone (zb_set_zone) */
	uint8_t d[];
};

struct rrset {
	struct rrset *next;
	uint16_t type;
	uint32_t ttl;
	uint32_t n;
	struct rdata *head, *tail;
};

/* A name while a build collects it (tmp arena). Its header and name (a struct
 * zone_node with n_ans unused) follow it, so that the build's table holds the
 * same kind of pointer as the published ones. */
struct bnode {
	struct rrset *sets;
	struct bnode *cut;		    /* the highest NF_CUT node at or above it */
	const struct zone_answer *referral; /* on NF_CUT nodes */
	const struct zone_answer *chaos;    /* CHAOS names: their TXT answer */
	struct zone_node *pub;		    /* what zb_finish made of it */
	/* the parent: this build's, or an older build's published node */
	struct bnode *up;
	const struct zone_node *up_old;
	uint32_t hash;
	/* named by zb_name_coming; `real`: it has data, or a name below it
	 * that is not coming. A coming name is one that is not real. */
	bool coming, real;
};

#define BHDR(bn)   ((struct zone_node *)((bn) + 1))
#define BNODE(hdr) ((struct bnode *)(hdr)-1)

/* A slot of the cache that stores identical answers once (render.c). */
struct ans_slot {
	uint32_t hash;
	const struct zone_answer *a;
};

/* A build: the `out` arena is the caller's and lives as long as the snapshot
 * made from it; the rest is the build's own. */
struct zb {
	struct arena *out; /* published nodes and answers: lives as long as the snapshot */
	struct arena *tmp; /* build nodes, rdata and RRsets: freed by zb_free */
	struct tables *t;
	bool incremental;	  /* t started from an older build's tables */
	bool finished;		  /* zb_finish handed the tables over */
	bool declared[MAX_ZONES]; /* zones this build declared */
	struct htab names, chaos; /* this build's nodes */
	/* the nodes this build made, in order: what zb_finish renders */
	struct bnode **fresh;
	size_t n_fresh, cap_fresh;
	/* identical answers are stored once (a Service's full and short names
	 * share their address and CHAOS answers, for one) */
	struct ans_slot *dedup;
	struct bnode *last; /* the node zb_rr_add added to last, in last_zone */
	/* names looked up lately: a Service's names share their parents and
	 * SRV targets, and the big table costs a cache miss a probe */
	struct bnode *ncache[1024];
	const struct zb_zone *last_zone;
	struct render *r; /* one rendering context, reused for every answer */
	bool rotate;	  /* snapshot_config.rotate */
	uint8_t tier;	  /* given to the records added now (zb_set_tier) */
	uint32_t zone;	  /* given to the records added now (zb_set_zone) */
};

static inline struct bnode *bfind(const struct htab *h, const uint8_t *name, size_t len,
				  uint32_t hash)
{
	const struct zone_node *n = htab_find(h, name, len, hash);
	return n ? BNODE(n) : NULL;
}

#define NCACHE(b, hash) (&(b)->ncache[(hash) & (sizeof((b)->ncache) / sizeof(void *) - 1)])

/* A name of this build in its zones. */
static inline struct bnode *bfind_name(struct zb *b, const uint8_t *name, size_t len, uint32_t hash)
{
	struct bnode **c = NCACHE(b, hash);
	if (*c && (*c)->hash == hash && BHDR(*c)->len == len &&
	    memcmp(BHDR(*c)->name, name, len) == 0)
		return *c;
	struct bnode *n = bfind(&b->names, name, len, hash);
	if (n)
		*c = n;
	return n;
}

/* A name an older build made and this one did not remove. */
static inline const struct zone_node *old_find(const struct zb *b, bool chaos, const uint8_t *name,
					       size_t len, uint32_t hash)
{
	const struct tables *t = b->t;
	if (!t->base)
		return NULL;
	return chaos ? layered_find(&t->base->chaos, &t->chaos_over, name, len, hash)
		     : layered_find(&t->base->names, &t->over, name, len, hash);
}

static inline bool name_under(const uint8_t *name, size_t len, const uint8_t *apex, size_t apex_len)
{
	if (len < apex_len || memcmp(name + len - apex_len, apex, apex_len) != 0)
		return false;
	/* The match must start at a label boundary. */
	for (size_t i = 0; i < len; i += name[i] + 1u)
		if (i == len - apex_len)
			return true;
	return false;
}

static inline struct rrset *find_set(const struct bnode *n, uint16_t type)
{
	for (struct rrset *s = n ? n->sets : NULL; s; s = s->next)
		if (s->type == type)
			return s;
	return NULL;
}

/* The apex of a zone this build declared (older zones' build nodes are gone). */
static inline struct bnode *zone_apex(const struct zb *b, const struct zb_zone *z)
{
	return b->declared[z->idx] ? z->apex_node : NULL;
}

/* Makes a build node for a name not in `h` (b->names or b->chaos) and adds it
 * to the table and to the build's list of new nodes. */
struct bnode *zb_node_new(struct zb *b, struct htab *h, const uint8_t *name, size_t len,
			  uint32_t hash);

/* Puts this build's rendered nodes into the published tables (tables.c). */
int zb_tables_publish(struct zb *b);

#endif
