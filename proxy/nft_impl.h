/* The kernel datapath's inner structures, shared by nft.c (the record, the
 * diff and the transactions), nft_render.c (a Service rendered to chains,
 * sets and map elements) and nft_state.c (the string tables, and what the
 * table already holds when svcdns starts), and nft_live.c (the Services the
 * kernel refused, and the CHAOS view). Internal to proxy/.
 *
 * Owns: the names of the table's maps and the layout of one Service's record.
 * Must never: be included outside proxy/ (proxy/nft.h is the interface). */
#ifndef SVCDNS_NFT_IMPL_H
#define SVCDNS_NFT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/conntrack.h"
#include "proxy/nft.h"
#include "proxy/nft_batch.h"

/* The table's maps and sets that Services put elements in. */
enum nft_map {
	NM_SVC4 = 0, /* ClusterIP . proto . port : goto svc chain */
	NM_SVC6,
	NM_NOEP4, /* same key: goto reject-chain (no endpoint) */
	NM_NOEP6,
	NM_NP4, /* proto . NodePort : goto ext chain */
	NM_NP6,
	NM_NPNOEP, /* proto . NodePort : goto reject-chain */
	NM_CIP4,   /* every ClusterIP (a set): the rest of the CIDR is dropped */
	NM_CIP6,
	NM_COUNT
};
extern const char *const nft_map_names[NM_COUNT];
static inline bool nft_map_is_set(unsigned m)
{
	return m == NM_CIP4 || m == NM_CIP6;
}

/* One step of a rule, as svcdns writes them (the family is the chain's). */
enum nft_step_kind {
	NS_SADDR_EQ = 1,    /* ip(6) saddr == addr */
	NS_SADDR_IN,	    /* ip(6) saddr @ref */
	NS_SADDR_UPDATE,    /* update @ref { ip(6) saddr } */
	NS_L4PROTO_EQ,	    /* meta l4proto == proto */
	NS_FIB_SADDR_LOCAL, /* fib saddr type local */
	NS_JUMP,	    /* jump ref */
	NS_GOTO,	    /* goto ref */
	NS_DROP,
	NS_DNAT,	/* dnat ip(6) to addr:port */
	NS_NUMGEN_ZERO, /* numgen random mod n == 0 */
};

struct nft_step {
	uint8_t kind, proto;
	uint16_t port;
	uint32_t n;
	struct net_addr addr;
	char *ref; /* a chain or set name (owned) */
};

#define NFT_RULE_STEPS 3
struct nft_rule {
	struct nft_step s[NFT_RULE_STEPS];
	uint8_t n;
};

/* A chain or a set a Service owns. Its name carries a hash of its contents:
 * a name present in the table means these very rules are there. The
 * rules are kept only until the object is written. */
struct nft_obj {
	char *name;
	bool is_set; /* session affinity's address sets, endpoint maps */
	uint8_t family;
	struct nft_rule *rules; /* chain */
	size_t n_rules;
	uint32_t timeout_s; /* affinity set: how long an address stays */
	/* A UDP endpoint's chain: the endpoint, whose conntrack entries go
	 * with the chain. */
	bool udp;
	struct conntrack_target ep;
};

struct nft_elem {
	uint8_t map;   /* enum nft_map */
	char *key;     /* as nft lists it, numeric: "10.96.0.10 . 6 . 80" */
	char *verdict; /* "goto svc-..." ; NULL in a set */
};

/* Everything one Service puts in the table. */
struct nft_rec {
	char *svc; /* "ns/name" */
	struct nft_obj *objs;
	size_t n_objs, cap_objs;
	struct nft_elem *elems;
	size_t n_elems, cap_elems;
};

/* ---- nft_render.c ---- */
/* The record of `vs` (empty for a Service the datapath does not forward).
 * 0 or -ENOMEM (then *out is cleared). */
int nft_render(const struct view_service *vs, const struct nftdp_config *cfg, struct nft_rec *out);
void nft_rec_clear(struct nft_rec *r);
/* Frees the rules an object holds to be written, keeping its name. */
void nft_obj_drop_contents(struct nft_obj *o);

/* ---- nft_state.c ---- */
/* A table from strings to pointers (open addressing): names of chains and
 * sets in the table, map elements ("<map>|<key>" to the verdict), records. */
struct stab {
	char **keys;
	void **vals;
	uint32_t *tags; /* the high bits of each key's hash: most probes skip strcmp */
	size_t n, cap;
};
void *stab_get(const struct stab *t, const char *key);
/* Copies key; replaces the value of a key present. 0 or -ENOMEM. */
int stab_put(struct stab *t, const char *key, void *val);
/* Removes key and returns its value (NULL: absent). */
void *stab_del(struct stab *t, const char *key);
void stab_free(struct stab *t, void (*free_val)(void *));
/* Calls fn for every entry (the table must not change meanwhile). */
void stab_each(const struct stab *t, void (*fn)(void *arg, const char *key, void *val), void *arg);
/* "<map>|<key>" into buf. */
void nft_elem_id(unsigned map, const char *key, char *buf, size_t len);

/* Reads which Service chains, sets and map elements the table holds into
 * `objs` (name -> (void *)1, 2 for a set, 3 for a map of an older version)
 * and `elems` (id -> verdict, owned, "" in a set). 0 or a negative errno. */
struct nft_nl;
int nft_state_read(struct nft_nl *nl, struct stab *objs, struct stab *elems);

/* ---- nft_live.c ---- */
/* The Services whose rules the kernel refused at their last attempt, with
 * the reason, and the immutable CHAOS indexes built from them per apply. */
struct nft_live;
struct nft_refusals {
	struct stab why; /* "ns/name" -> the kernel's reason (owned) */
	char **keys;	 /* why's keys in the view's order, as of the last index */
	size_t n_keys;
	struct nft_live *cur, *old; /* the index of the last apply; retired ones */
};
/* why NULL: the Service's rules went in (or it is gone). */
void nft_refusal_set(struct nft_refusals *r, const char *svc, const char *why);
/* A full run: every Service is tried again. */
void nft_refusals_reset(struct nft_refusals *r);
/* After an apply of v: the sorted keys and a new index (the old one retired).
 * 0 or -ENOMEM (then there is no index and no key). */
int nft_refusals_index(struct nft_refusals *r, const struct model_view *v);
size_t nft_refusals_keys(const struct nft_refusals *r, const char *const **keys);
/* Frees the retired indexes but `keep`. */
void nft_refusals_reclaim(struct nft_refusals *r, const void *keep);
void nft_refusals_free(struct nft_refusals *r);
/* nftdp_chaos_live's body (the query path). */
size_t nft_live_chaos(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
		      size_t cap, uint16_t *n_rr);

#endif
