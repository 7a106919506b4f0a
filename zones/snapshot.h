/* The snapshot: every name svcdns serves, with every answer already rendered to
 * wire form, built once per change and never modified afterwards.
 *
 * Owns: the snapshot layout, building one (from the model view, static zones
 * and settings), the lookup the query path calls, and publishing with one
 * atomic pointer store plus safe reclamation of the old one.
 * Must never: reach into discovery/ for anything but the view it is given, or
 * allocate, lock or log on the lookup path. */
#ifndef SVCDNS_SNAPSHOT_H
#define SVCDNS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discovery/model.h"

/* A rendered response tail: the answer, authority and additional sections of
 * a response whose question is the name the answer was built for, placed right
 * after that question. Compression pointers inside point either into the
 * question name (offset 12 onward) or into the tail itself, so the bytes are
 * valid behind any question of the same length (the client's case may differ). */
struct zone_answer {
	uint16_t an, ns, ar; /* record counts */
	uint16_t len;	     /* bytes of all three sections */
	uint16_t len_an_ns;  /* bytes of answer + authority (additional dropped first) */
	/* 0: served as rendered. Else the answer section is one RRset of `rot`
	 * (= an >= 2) records and no authority, which a response may start at
	 * any of its records (zone_answer_rot_off): nothing points into it. */
	uint16_t rot;
	/* Records [0, rot_t1) are the nearest tier, [rot_t1, rot_t2) the next,
	 * [rot_t2, rot) the farthest (this node, this zone, the rest): each
	 * rotates within itself. rot_t1 == rot_t2 == rot: one tier. */
	uint16_t rot_t1, rot_t2;
	uint8_t rcode;
	uint8_t aa;	     /* authoritative answer */
	uint8_t patch_owner; /* the first authority RR's owner is a pointer to the apex,
			      * whose offset depends on the question: patch it */
	uint8_t apex_len;    /* wire length of that apex */
	uint8_t not_ready;   /* NXDOMAIN for a name whose endpoint is not ready yet:
			      * the response carries the Extended DNS Error that
			      * says so (ZONE_EDE_NOT_READY_TEXT) */
	/* Central mode: orderings of a one-tier rotating answer section for
	 * clients of its endpoints' zones (zone_answer_var), behind the rotation
	 * table; 0 when the records span fewer than 2 or more than
	 * ZONE_ANSWER_MAX_VARS zones. */
	uint8_t n_var;
	uint8_t data[];
};

/* Zones of one answer that get their own ordering at most, and the records
 * of an answer that gets any at most. */
#define ZONE_ANSWER_MAX_VARS   8
#define ZONE_ANSWER_VAR_MAX_AN 512

/* Where record k (< a->rot) of a rotating answer section starts in data:
 * a table of native uint16_t behind the data, at an even offset. */
static inline size_t zone_answer_rot_off(const struct zone_answer *a, unsigned k)
{
	uint16_t off;
	__builtin_memcpy(&off, a->data + ((a->len + 1u) & ~1u) + 2u * k, sizeof(off));
	return off;
}

/* Where the answer section's record k (<= a->rot; a->rot: its end) starts. */
static inline size_t zone_answer_rec_off(const struct zone_answer *a, unsigned k)
{
	return k < a->rot ? zone_answer_rot_off(a, k) : a->len_an_ns;
}

/* One ordering for clients of one zone, behind the rotation table: its zone
 * (snapshot_zone_hash, 4 bytes), how many records are of that zone (2 bytes;
 * they come first, then the rest, each part rotating within itself), and
 * where each of the `rot` records starts in that order (native uint16_t).
 * Read with memcpy: nothing behind the data is aligned past 2 bytes. */
#define ZONE_ANSWER_VAR_HDR 6u

static inline size_t zone_answer_var_size(const struct zone_answer *a)
{
	return ZONE_ANSWER_VAR_HDR + 2u * a->rot;
}

/* Where variant i (< a->n_var) starts in data. */
static inline size_t zone_answer_var_base(const struct zone_answer *a, unsigned i)
{
	return ((a->len + 1u) & ~1u) + 2u * a->rot + i * zone_answer_var_size(a);
}

static inline uint32_t zone_answer_var_zone(const struct zone_answer *a, unsigned i)
{
	uint32_t z;
	__builtin_memcpy(&z, a->data + zone_answer_var_base(a, i), sizeof(z));
	return z;
}

static inline unsigned zone_answer_var_near(const struct zone_answer *a, unsigned i)
{
	uint16_t n;
	__builtin_memcpy(&n, a->data + zone_answer_var_base(a, i) + 4, sizeof(n));
	return n;
}

/* Where the k-th record (< a->rot) of variant i starts in data. */
static inline size_t zone_answer_var_off(const struct zone_answer *a, unsigned i, unsigned k)
{
	uint16_t off;
	__builtin_memcpy(&off, a->data + zone_answer_var_base(a, i) + ZONE_ANSWER_VAR_HDR + 2u * k,
			 sizeof(off));
	return off;
}

/* Bytes of an answer with its rotation table and its orderings per zone. */
static inline size_t zone_answer_size(const struct zone_answer *a)
{
	if (a->n_var)
		return sizeof(*a) + zone_answer_var_base(a, a->n_var);
	return sizeof(*a) + (a->rot ? ((a->len + 1u) & ~1u) + 2u * a->rot : a->len);
}
/* A name svcdns knows is coming: an endpoint of a headless Service that is
 * not ready yet. It is answered NXDOMAIN with the zone's SOA whose TTL and
 * MINIMUM are lowered to snapshot_config.not_ready_ttl (RFC 2308: caches keep
 * the answer no longer), and an Extended DNS Error (RFC 8914) info-code 0,
 * Other, with this text: 14, Not Ready, would say the server itself cannot
 * answer yet. */
#define ZONE_EDE_NOT_READY_TEXT "endpoint not ready yet"

struct zone;
struct zone_node;

/* What zone_lookup found. */
enum zone_result_kind {
	ZR_ANSWER = 0, /* copy `ans` */
	ZR_REFUSED,    /* not in any zone served */
	ZR_POD_ADDR,   /* synthesize one A/AAAA for `addr` with the question as owner */
};

struct zone_result {
	enum zone_result_kind kind;
	bool dynamic;	     /* the name is in a zone built from the cluster (not a static zone) */
	const uint8_t *apex; /* the zone's apex (lowercase wire), NULL outside every zone */
	uint8_t apex_len;
	const struct zone_answer *ans;
	struct net_addr addr; /* ZR_POD_ADDR */
	uint32_t ttl;	      /* ZR_POD_ADDR */
};

/* Reverse ranges a snapshot holds at most; ServiceCIDRs beyond are logged
 * and not served as the cluster's. */
#define SNAPSHOT_MAX_REV_CIDRS 32

/* Settings a snapshot is built with. */
struct snapshot_config {
	const char *zone;	 /* cluster domain, e.g. "cluster.local" */
	uint32_t ttl;		 /* records of the cluster zone */
	const char *hostname;	 /* id.server */
	struct net_addr ns_addr; /* glue for ns.dns.<zone> when kube-dns is unknown */
	bool have_ns_addr;
	/* An endpoint without a hostname is named by its Pod's name (targetRef)
	 * when that is a DNS label, instead of its dashed address (CoreDNS's
	 * endpoint_pod_names). */
	bool endpoint_pod_names;
	/* A ClusterIP Service with no ready endpoint has no names (NXDOMAIN, so
	 * that a client's search list goes on; its PTR stays), as CoreDNS's
	 * ignore empty_service. Headless Services have none then anyway. */
	bool ignore_empty_service;
	/* The cluster's ranges as the command line gives them (--service-cidr,
	 * --pod-cidr), or NULL: with them the snapshot says which reverse names
	 * are the cluster's (rev_cidrs below). */
	const struct net_cidr *service_cidr, *pod_cidr;
	/* A, AAAA and SRV answers of more than one record start at another of
	 * their records from one query to the next (the order of CoreDNS's
	 * loadbalance plugin, as a rotation); false keeps the rendered order. */
	bool rotate;
	/* The Multi-Cluster Services zone clusterset.local (KEP-1645):
	 * SNAPSHOT_CLUSTERSET_AUTO serves it once the view says multicluster (a
	 * ServiceImport was seen, or the API server has the resource). */
	enum snapshot_clusterset {
		SNAPSHOT_CLUSTERSET_AUTO = 0,
		SNAPSHOT_CLUSTERSET_ON,
		SNAPSHOT_CLUSTERSET_OFF,
	} clusterset;
	/* Names under pod.<zone> (CoreDNS's pods): insecure answers any
	 * well-formed `<a-b-c-d>.<ns>.pod.<zone>` with its address; disabled has
	 * no such names; verified answers only the address of a Pod of that
	 * namespace in the view (its pod_addrs, which the view must carry). */
	enum snapshot_pods {
		SNAPSHOT_PODS_INSECURE = 0,
		SNAPSHOT_PODS_DISABLED,
		SNAPSHOT_PODS_VERIFIED
	} pods;
	/* This node and its zone (node mode), or NULL: the A, AAAA and SRV
	 * answers of a headless Service list the endpoints on this node first,
	 * then those of this zone (or hinted to it), then the rest, each tier
	 * rotating within itself (zones/topology.c). */
	const char *node_name, *node_zone;
	/* The negative TTL of a name whose endpoint is not ready yet (seconds;
	 * the zone's own when that is lower). */
	uint32_t not_ready_ttl;
	/* Static zones parsed by zonefile_load (opaque here; see zonefile.h). */
	const struct static_zone *const *static_zones;
	size_t n_static_zones;
};

/* Zones a snapshot numbers for its clients at most (one byte each). */
#define SNAPSHOT_MAX_ZONES 255

/* One endpoint address and the zone of its EndpointSlice endpoint: family,
 * then the address (an IPv4 one in bytes[0..4), the rest zero). */
struct snapshot_addr_zone {
	uint8_t family;
	uint8_t zone; /* index into snapshot.zone_names */
	uint8_t bytes[16];
};

struct snapshot {
	uint64_t generation;
	uint32_t serial;
	/* The data source has completed its first full sync. Until then names in
	 * the cluster's zones are answered SERVFAIL: an empty zone would tell
	 * clients that every Service does not exist. */
	bool synced;
	/* The view this snapshot was built from (owned, freed with it): the
	 * datapath and the debug view read Services and endpoints from here, so
	 * that DNS and forwarding always serve the same generation. */
	struct model_view *view;
	uint64_t built_ns; /* monotonic time the build finished */
	/* The settings it was built with (owned by the program, outlives it):
	 * zone transfers regenerate the records from them and `view`. */
	const struct snapshot_config *cfg;
	bool incremental; /* built from the previous snapshot's tables */
	/* The changes that led here, newest first (zones/xfr.h), or NULL. */
	struct xfr_diff *journal;
	/* Lines appended to a CHAOS TXT answer from state that changes between
	 * builds (the datapath's listeners and connections), or NULL. Set before
	 * publishing; called on the query path with `chaos_live_arg`, so it must
	 * not allocate, lock or block. Writes whole TXT records (owner: pointer
	 * to the question) into out[0..cap), returns their bytes, count in *n_rr. */
	size_t (*chaos_live)(const void *arg, const uint8_t *key, size_t keylen, uint8_t *out,
			     size_t cap, uint16_t *n_rr);
	const void *chaos_live_arg;
	/* The address ranges whose reverse names are the cluster's: answered
	 * here, NXDOMAIN with the SOA when nothing is there; reverse names
	 * outside them go to the forwarder. The view's ServiceCIDRs when it has
	 * any (the cluster says its ranges: they replace cfg->service_cidr),
	 * else cfg->service_cidr; then cfg->pod_cidr. None when cfg gives no
	 * ranges: the forwarder then keeps its own. */
	struct net_cidr rev_cidrs[SNAPSHOT_MAX_REV_CIDRS];
	size_t n_rev_cidrs;
	bool rev_cidrs_from_cluster; /* the service ranges came from ServiceCIDRs */
	/* Services of the view that have no names here (snapshot_withhold):
	 * "ns/name", sorted as the view sorts Services (owned). */
	char **withheld;
	size_t n_withheld;
	/* Central mode (cfg->node_zone unset): the zone of every endpoint
	 * address of the view whose EndpointSlice names one, sorted
	 * (snapshot_addr_zone), and the zones by name, numbered from 0. Made
	 * from the whole view by every build, full or incremental, so both give
	 * the same table. Empty in node mode. Pods are not in it: the view
	 * carries their addresses, not their nodes. The names point into the
	 * view's strings. */
	struct snapshot_addr_zone *addr_zones;
	size_t n_addr_zones;
	const char **zone_names;
	uint32_t *zone_hashes; /* snapshot_zone_hash of each name */
	size_t n_zone_names;
	size_t n_names;
	size_t bytes; /* memory held, for logs and metrics */
	void *priv;   /* arena and tables */
};

/* Builds a snapshot. `prev` (may be NULL) supplies the generation and serial
 * to grow from. Takes ownership of *view's contents on success (the caller's
 * struct is emptied), so the snapshot can keep it. Returns 0 and *out, or a
 * negative error code (then *view is untouched). */
int snapshot_build(const struct snapshot_config *cfg, struct model_view *view,
		   const struct snapshot *prev, struct snapshot **out);
void snapshot_free(struct snapshot *s);

/* Builds *s again, in full and without the names of the Services `keys`
 * ("ns/name", sorted as the view sorts Services; n > 0): the daemon's
 * pipeline withholds the Services the datapath could not forward, so that
 * DNS never hands out a ClusterIP whose rules are not in. The view, the
 * generation, the serial and what was set on *s (synced, chaos_live) carry
 * over; the old *s is freed. A build after a snapshot with withheld names is
 * a full one. 0, or a negative errno (*s untouched). Control thread. */
int snapshot_withhold(struct snapshot **s, const char *const *keys, size_t n);

/* The zone index of a client address (`family` AF_INET or AF_INET6, its 4
 * or 16 bytes) in s->addr_zones, or -1 when it is no known endpoint's. A
 * binary search: never allocates. Any thread. */
int snapshot_addr_zone(const struct snapshot *s, uint8_t family, const uint8_t *bytes);
/* Fills s->addr_zones and s->zone_names from `view`, the view s is built
 * from (central mode only; nothing when cfg->node_zone is set). 0 or
 * -ENOMEM. Control thread. */
int snapshot_addr_zones_build(const struct snapshot_config *cfg, const struct model_view *view,
			      struct snapshot *s);
void snapshot_addr_zones_free(struct snapshot *s);
/* A zone name's key in zone_answer_var: stable across builds and processes,
 * never 0 (0 is no zone). */
uint32_t snapshot_zone_hash(const char *zone);

/* IN-class lookup. `key` is the lowercased wire qname. Never allocates. */
void zone_lookup(const struct snapshot *s, const uint8_t *key, size_t keylen, uint16_t qtype,
		 struct zone_result *r);

/* CHAOS-class TXT lookup (version.bind, id.server, port mappings). Returns the
 * rendered answer, or NULL when the name is unknown. */
const struct zone_answer *zone_lookup_chaos(const struct snapshot *s, const uint8_t *key,
					    size_t keylen, uint16_t qtype);

/* CHAOS TXT `<svc>.<ns>.svc.<zone>` (or the short form): the Service's port
 * mapping, one record per port, rendered from the snapshot's view into
 * out[0..cap) without allocating. Returns the bytes written and the record
 * count in *n_rr; 0 when there is no such Service, or, with *cut set, when
 * the records do not fit in cap. */
size_t zone_port_view(const struct snapshot *s, const uint8_t *key, size_t keylen, uint8_t *out,
		      size_t cap, uint16_t *n_rr, bool *cut);

/* ---- publishing ---------------------------------------------------------
 * Readers (DNS workers, each with its own registered snapshot_reader) call
 * snapshot_enter() before a batch of queries and snapshot_leave() after;
 * neither locks, batches do not nest, and the pointer enter returns must not
 * be used after the leave. The writer (the control thread, the only one)
 * calls snapshot_publish(), then snapshot_reclaim() from time to time.
 *
 * A reader's `active` counts its own enters and leaves, so it is odd exactly
 * while the reader is inside a batch and never takes the same value twice.
 * Publishing swaps the pointer, then records every registered reader's count;
 * the old snapshot is freed once each reader whose recorded count was odd has
 * moved its count on, that is, has left the batch it was in then (being
 * inside a later batch does not hold it). A reader whose count was even, or
 * that registered afterwards, loads the new pointer when it next enters. So a
 * long batch keeps every snapshot retired while it lasts, not only the one it
 * holds, and snapshot_reclaim() returning 0 means no reader holds anything but
 * the current snapshot. */
#define SNAPSHOT_MAX_READERS 256

struct snapshot_reader {
	/* Enters plus leaves so far: odd inside a batch. Not a generation. */
	_Alignas(64) atomic_uint_fast64_t active;
};

struct snapshot_reader *snapshot_reader_register(void);
const struct snapshot *snapshot_enter(struct snapshot_reader *r);
void snapshot_leave(struct snapshot_reader *r);
/* The current snapshot for the control thread (which is the only writer). */
const struct snapshot *snapshot_current(void);
void snapshot_publish(struct snapshot *s);
/* Frees retired snapshots no reader can hold. Returns how many remain. */
size_t snapshot_reclaim(void);
/* At exit, after every reader has stopped. */
void snapshot_shutdown(void);

#endif
