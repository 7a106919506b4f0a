/* The model: the cluster as discovery sees it (Services, EndpointSlices, Pods,
 * Namespaces, ServiceCIDRs), reduced to the fields DNS and the datapath use.
 *
 * Owns: the object types, the store of objects by source, and the "view" that
 * resolves every Service to its final set of endpoints (EndpointSlices where
 * they exist, else derived from Pods the way the endpoints controller would).
 * Must never: know about DNS wire formats or snapshots; zones/ reads the view,
 * nothing here reads zones/.
 *
 * A parser builds an object field by field (every string and array its own
 * malloc); *_free() releases it and everything under it. The store packs what
 * it keeps (model_object_pack): one allocation per object, immutable from then
 * on and reference counted, so that views point into it instead of copying.
 * *_free() on a packed object drops one reference.
 *
 * Where it lives: the objects in model.c, the store in store.c, the allocator
 * in alloc.c, the view in view.c and its parts (view_build.h). */
#ifndef SVCDNS_MODEL_H
#define SVCDNS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include "common/netaddr.h"

enum model_proto { PROTO_TCP = 6, PROTO_UDP = 17, PROTO_SCTP = 132 };

struct model_label {
	char *key;
	char *value;
};

struct model_labels {
	struct model_label *items;
	size_t n;
};

enum model_svc_type {
	SVC_CLUSTER_IP = 0,
	SVC_NODE_PORT,
	SVC_LOAD_BALANCER,
	SVC_EXTERNAL_NAME,
};

struct model_svc_port {
	char *name;		  /* "" when unnamed */
	uint16_t port;		  /* 1..65535 */
	uint8_t proto;		  /* enum model_proto */
	uint16_t target_num;	  /* numeric targetPort; 0 when target_name is used */
	char *target_name;	  /* named targetPort (container port name) or NULL */
	uint16_t node_port;	  /* 0 when none; allocated for NodePort/LoadBalancer */
	bool node_port_allocated; /* node_port came from the allocator, not the manifest */
};

#define MODEL_EXT_IPS_MAX 4

struct model_service {
	char *ns;
	char *name;
	enum model_svc_type type;
	bool headless;			/* spec.clusterIP == "None" */
	struct net_addr cluster_ips[2]; /* up to one per family, primary first */
	size_t n_cluster_ips;
	bool cluster_ip_allocated; /* no clusterIP in the manifest: allocated */
	char *external_name;	   /* ExternalName target, no trailing dot, or NULL */
	struct model_svc_port *ports;
	size_t n_ports;
	bool has_selector; /* a selector was given (may still be empty) */
	uint32_t refs;	   /* 0: built by a parser; else packed, references held */
	struct model_labels selector;
	bool publish_not_ready;	 /* spec.publishNotReadyAddresses, or the tolerate-unready-endpoints
				    annotation */
	bool affinity_client_ip; /* spec.sessionAffinity == ClientIP */
	uint32_t affinity_timeout; /* seconds, default 10800 */
	/* A ServiceImport (multicluster.x-k8s.io/v1alpha1, kind KIND_IMPORT): a
	 * ClusterSetIP one has cluster_ips from spec.ips, a Headless one is
	 * headless; ports from spec.ports; no selector, nothing allocated. */
	bool imported;
	/* spec.externalIPs, then status.loadBalancer.ingress[].ip of a
	 * LoadBalancer: forwarded like the ClusterIP. Inline (copied with the
	 * struct); addresses past MODEL_EXT_IPS_MAX are not kept. */
	struct net_addr ext_ips[MODEL_EXT_IPS_MAX];
	uint8_t n_ext_ips;
	bool ext_policy_local; /* spec.externalTrafficPolicy == Local */
	bool int_policy_local; /* spec.internalTrafficPolicy == Local */
};

struct model_slice_port {
	char *name; /* "" when unnamed */
	uint16_t port;
	uint8_t proto;
};

/* Half a million of these at 100k Services: no padding between fields. */
struct model_endpoint {
	struct net_addr *addrs; /* addresses of one endpoint (one family) */
	char *hostname;		/* or NULL */
	char *node_name;	/* or NULL */
	char *pod_name;		/* targetRef name when kind Pod, or NULL */
	char *zone;		/* the endpoint's zone, or NULL */
	/* hints.forZones: the zones the EndpointSlice controller gives this
	 * endpoint to, comma-separated (a zone name holds no comma), or NULL */
	char *for_zones;
	uint32_t n_addrs;
	bool ready;   /* absent counts as ready */
	bool serving; /* absent: same as ready */
	bool terminating;
};

struct model_slice {
	char *ns;
	char *name;
	char *service; /* label kubernetes.io/service-name */
	/* A multicluster slice (label multicluster.kubernetes.io/service-name):
	 * it belongs to the ServiceImport of that name, never to a Service, and
	 * service is NULL. cluster: multicluster.kubernetes.io/source-cluster. */
	char *mc_service;
	char *cluster;
	uint8_t address_type; /* AF_INET, AF_INET6, or 0 for FQDN (ignored) */
	uint32_t refs;	      /* as model_service.refs */
	struct model_slice_port *ports;
	size_t n_ports;
	struct model_endpoint *endpoints;
	size_t n_endpoints;
	/* The endpoints.kubernetes.io/last-change-trigger-time annotation (the
	 * change in the cluster this version reflects), in milliseconds since
	 * the epoch; 0 when absent or not RFC 3339. */
	int64_t trigger_ms;
};

struct model_container_port {
	char *name; /* or NULL */
	uint16_t port;
	uint8_t proto;
};

struct model_pod {
	char *ns;
	char *name;
	bool name_generated; /* the manifest had no metadata.name */
	uint32_t refs;	     /* as model_service.refs */
	struct model_labels labels;
	struct model_container_port *ports; /* every container's ports, in order */
	size_t n_ports;
	char *hostname;	  /* spec.hostname or NULL */
	char *subdomain;  /* spec.subdomain or NULL */
	char *node_name;  /* spec.nodeName or NULL */
	bool has_status;  /* false: written for a cluster, taken as running+ready */
	bool ready;	  /* Ready condition True, or Running with no conditions */
	bool terminal;	  /* phase Succeeded or Failed */
	bool terminating; /* metadata.deletionTimestamp set */
	struct net_addr ips[2];
	size_t n_ips;
	bool ip_allocated; /* ips[0] came from the pod CIDR allocator */
};

struct model_namespace {
	char *name;
	uint32_t refs;		    /* as model_service.refs */
	struct model_labels labels; /* what --namespace-labels selects by */
};

/* A ServiceCIDR (networking.k8s.io): a range the cluster gives Service
 * addresses from, at most one per family. */
struct model_service_cidr {
	char *name;
	uint32_t refs; /* as model_service.refs */
	struct net_cidr cidrs[2];
	size_t n_cidrs;
};

enum model_kind {
	KIND_SERVICE = 0,
	KIND_SLICE,
	KIND_POD,
	KIND_NAMESPACE,
	KIND_SERVICE_CIDR,
	KIND_IMPORT, /* a model_service (u.svc) with imported set */
	KIND_COUNT
};

/* One decoded object, as a manifest file or the API yields it. */
struct model_object {
	enum model_kind kind;
	union {
		struct model_service *svc;
		struct model_slice *slice;
		struct model_pod *pod;
		struct model_namespace *ns;
		struct model_service_cidr *cidr;
	} u;
};

void model_service_free(struct model_service *s);
void model_slice_free(struct model_slice *s);
void model_pod_free(struct model_pod *p);
void model_object_free(struct model_object *o); /* frees the payload, not o */

/* Replaces o's payload by one packed block holding the same values and frees
 * the parser's version; a packed payload is left alone. On -ENOMEM o is
 * unchanged. */
int model_object_pack(struct model_object *o);
/* Another reference to a packed object (the store's objects are packed); the
 * matching *_free() drops it. */
void model_object_ref(const struct model_object *o);
const char *model_object_ns(const struct model_object *o);
const char *model_object_name(const struct model_object *o);
const char *model_kind_name(enum model_kind k);
const char *model_proto_name(uint8_t proto); /* "TCP", "UDP", "SCTP" */

/* Parses "TCP"/"UDP"/"SCTP" (exact case, as the API spells them); 0 on error. */
uint8_t model_proto_parse(const char *s);

/* ---- the store -------------------------------------------------------------
 * Objects grouped by the source that gave them (a file path, or an API
 * resource). Replacing a source's objects is one call, so a file that changes
 * swaps its whole contribution at once. Names are unique per kind/ns/name across
 * all sources: the first source to hold a name keeps it; a later duplicate is
 * rejected with a log line naming both sources. */
struct model_store;

struct model_store *model_store_new(void);
void model_store_free(struct model_store *st);

/* Takes ownership of objs[0..n) (the array itself stays the caller's).
 * Objects whose kind/ns/name another source already holds are dropped and
 * logged. Returns 0 or a negative error code. */
int model_store_replace(struct model_store *st, const char *source, struct model_object *objs,
			size_t n);
/* Drops everything a source contributed. */
void model_store_remove(struct model_store *st, const char *source);

/* Serves only the namespaces whose labels sel matches (a namespace without a
 * Namespace object has none); NULL: all. Services, EndpointSlices and Pods of
 * other namespaces stay in the store but not in the view. The selector must
 * outlive the store; the next view is built in full. */
struct label_selector;
void model_store_set_ns_selector(struct model_store *st, const struct label_selector *sel);

/* Views built from the store carry the addresses of its Pods (pod_nss and
 * pod_addrs), for --pods verified. Set before the first view. */
void model_store_keep_pod_addrs(struct model_store *st, bool keep);

/* The previous objects of a source, to keep an object whose new version is
 * invalid. Returns NULL if the source holds no such object. */
const struct model_object *model_store_find(const struct model_store *st, const char *source,
					    enum model_kind kind, const char *ns, const char *name);

/* Deep copy of one object (used to carry the last good version forward). */
int model_object_clone(const struct model_object *src, struct model_object *dst);

/* ---- allocation ------------------------------------------------------------
 * ClusterIPs, NodePorts and Pod IPs for objects that lack them, as the API
 * server and the CNI would give them: deterministic (hash of ns/name, then the
 * next free value), and sticky for the life of the process, so that an object
 * keeps its address while it exists. */
struct model_alloc;

struct model_alloc *model_alloc_new(const struct net_cidr *service_cidr,
				    const struct net_cidr *pod_cidr);
/* The API server's default --service-node-port-range. */
#define MODEL_NODE_PORT_MIN 30000
#define MODEL_NODE_PORT_MAX 32767
/* The range NodePorts are allocated from (--node-port-range), before the first
 * view is built. An explicit nodePort outside it is served as it is, as the
 * API server's own range is not ours to know. Returns 0, -EINVAL or -ENOMEM. */
int model_alloc_set_node_ports(struct model_alloc *a, uint16_t min, uint16_t max);
void model_alloc_free(struct model_alloc *a);

/* ---- the view --------------------------------------------------------------
 * Every Service with its final endpoints. Built from the store in one pass;
 * immutable afterwards; zones/ builds a snapshot from it. */
struct view_endpoint {
	const char *hostname;  /* explicit hostname or NULL */
	const char *node_name; /* or NULL */
	const char *pod_name;  /* or NULL */
	const char *cluster;   /* an imported Service's: the source cluster, or NULL */
	const char *zone;      /* or NULL */
	const char *for_zones; /* hints.forZones, comma-separated, or NULL */
	/* target_ports[i] is the port this endpoint serves service port i on, or 0
	 * when it does not serve that port. Indexed like model_service.ports. */
	uint16_t *target_ports;
	struct net_addr addr; /* after the pointers: no padding */
	bool ready;
	bool serving;
	bool terminating;
};

/* Each Service's data (endpoints, target ports, and a model_service copy when
 * allocation filled something in) is one refcounted block, shared by every view
 * in which the Service did not change; views may be freed in any order. The
 * block holds references on the store's objects it points into: the stored
 * Service when svc is that, and the EndpointSlices and Pods whose strings
 * (hostname, node and Pod names) the endpoints use. */
struct view_service {
	const struct model_service *svc; /* the stored Service, or its copy in the block */
	struct view_endpoint *eps;	 /* deduplicated by address, sorted */
	size_t n_eps;
	bool from_slices; /* endpoints came from EndpointSlices, not Pods */
	void *priv;	  /* the block; NULL in views not built here */
};

/* One Service that differs between a view and the view it was derived from:
 * old is NULL for a new Service, cur NULL for a removed one. */
struct view_change {
	const struct view_service *old; /* into the base view's svcs */
	const struct view_service *cur; /* into this view's svcs */
};

/* The Pods of one namespace that have an address (--pods verified). */
struct view_pod_ns {
	const char *ns;
	uint32_t lo, hi; /* its addresses are model_view.pod_addrs[lo, hi), sorted */
};

struct model_view {
	struct view_service *svcs; /* sorted by (ns, name) */
	size_t n_svcs;
	/* ServiceImports with the endpoints of their multicluster slices, sorted
	 * by (ns, name); apart from svcs, so that nothing that serves the local
	 * cluster (allocation, the datapath) meets them. A change to one builds
	 * the next view in full. */
	struct view_service *imports;
	size_t n_imports;
	/* A ServiceImport was ever stored, or the API server has the resource:
	 * the clusterset zone's "auto" mode serves it from then on. */
	bool multicluster;
	char **namespaces; /* sorted, unique: Namespace objects and every ns in use */
	size_t n_namespaces;
	/* The ranges of every ServiceCIDR object, sorted, unique (owned); none
	 * when the cluster does not say them (before Kubernetes 1.31, manifests
	 * without such objects). */
	struct net_cidr *service_cidrs;
	size_t n_service_cidrs;
	/* With model_store_keep_pod_addrs: the addresses of the Pods that are
	 * not Succeeded or Failed, per served namespace (sorted by name; only
	 * namespaces with such a Pod); NULL and 0 otherwise. */
	const struct view_pod_ns *pod_nss;
	size_t n_pod_nss;
	const struct net_addr *pod_addrs;
	size_t n_pod_addrs;
	uint64_t id; /* unique per view built in this process, never 0 */
	/* Set by model_view_update when it derived this view from another: the
	 * base view's id and every Service that differs from it, sorted. 0 and
	 * none for a view built in full. */
	uint64_t base_id;
	const struct view_change *changes;
	size_t n_changes;
	void *priv; /* the blocks the view holds references to */
};

/* Builds the view: copies what it needs from the store (so the store may change
 * afterwards), fills in allocations, derives endpoints for Services with a
 * selector and no EndpointSlice. Allocations and derived-endpoint notes are
 * logged once per object. Returns 0 or a negative error code. */
int model_view_build(const struct model_store *st, struct model_alloc *alloc,
		     struct model_view *out);
void model_view_free(struct model_view *v);

/* The next view after prev, from the changes the store recorded since prev
 * was made by this function: unchanged Services are shared with prev, changed
 * ones recomputed, in time proportional to the changes. Builds in full (as
 * model_view_build) when prev is NULL, was not the last view this function
 * made from st, or the changes are too many or touch allocation in ways only a
 * full build gets right. The result is identical to model_view_build's either
 * way, allocations included. Resets the store's change record on success.
 * prev stays valid and unchanged. Returns 0 or a negative error code. */
int model_view_update(struct model_store *st, struct model_alloc *alloc,
		      const struct model_view *prev, struct model_view *out);

/* The store is told that the ServiceImport resource exists (the API server
 * listed it), so that views say multicluster even before the first import. */
bool model_store_set_multicluster(struct model_store *st); /* true: it was not yet */

/* Exposed for unit tests: does every selector pair match the labels? An empty
 * selector matches nothing (a Service with an empty selector gets no derived
 * endpoints, as in Kubernetes). */
bool model_selector_matches(const struct model_labels *selector, const struct model_labels *labels);

/* Exposed for unit tests: the port a Pod serves a Service port on, or 0. */
uint16_t model_resolve_target_port(const struct model_svc_port *sp, const struct model_pod *pod);

#endif
