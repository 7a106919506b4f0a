/* The ClusterIP datapath: listeners on every Service port's ClusterIP:port and
 * NodePort that forward TCP connections and UDP flows to ready endpoints.
 *
 * Owns: listener sockets (bound with IP_FREEBIND), forwarded connections and
 * flows, the choice of endpoint (round robin, sessionAffinity ClientIP), the
 * caps on connections and flows, and the counters per Service port.
 * Must never: reach into discovery/ or change a snapshot. It reads the view a
 * snapshot carries (its types come through proxy/view_types.h alone), copies
 * what it forwards by, and keeps no pointer into it.
 * Every function runs on the loop given to proxy_start (the control loop),
 * except proxy_chaos_live, which DNS workers call. */
#ifndef SVCDNS_PROXY_H
#define SVCDNS_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "proxy/view_types.h"

struct proxy_config {
	/* Where NodePorts listen: --node-address (0.0.0.0 by default). */
	struct net_addr node_addr;
	unsigned max_conns;	     /* open TCP connections, all ports; 0: from RLIMIT_NOFILE */
	unsigned max_flows;	     /* open UDP flows, all ports; 0: from RLIMIT_NOFILE */
	unsigned udp_timeout_ms;     /* an idle UDP flow is closed after this */
	unsigned connect_timeout_ms; /* per endpoint attempt */
	bool no_splice;		     /* copy through user space even where splice works */
	/* Addresses svcdns itself serves DNS on: a Service port there (the
	 * kube-dns ClusterIP on a node-local instance) is left to DNS. */
	const struct sockaddr_storage *dns_addrs;
	size_t n_dns_addrs;
};

struct proxy;

/* Creates the datapath on `loop` with no listeners; proxy_apply adds them. */
int proxy_start(uv_loop_t *loop, const struct proxy_config *cfg, struct proxy **out);

/* Makes the datapath forward what `v` (a snapshot's view) describes: listeners are opened for new
 * Service ports, closed for removed ones and re-pointed to new endpoints for
 * the rest. Established connections are never touched; a UDP flow whose
 * endpoint disappeared is dropped (its next datagram picks a live endpoint),
 * as kube-proxy clears conntrack for it. A port that cannot be bound is
 * logged with its Service and skipped (retried every few seconds). Called
 * before the snapshot holding `v` is published, so that DNS never hands out
 * a ClusterIP that is not forwarded yet. Returns 0 or -ENOMEM (then the
 * previous state keeps being served). */
int proxy_apply(struct proxy *p, const struct model_view *v);

/* Closes every listener, connection and flow. The memory is released by the
 * loop's close callbacks: run the loop once more before uv_loop_close. */
void proxy_stop(struct proxy *p);

/* ---- what the datapath does, for people and metrics ---------------------- */

struct proxy_port_stats {
	uint64_t connections;	    /* TCP connections accepted, UDP flows opened */
	uint64_t active;	    /* open now */
	uint64_t bytes_in;	    /* client -> endpoint */
	uint64_t bytes_out;	    /* endpoint -> client */
	uint64_t endpoint_failures; /* attempts refused, timed out or unreachable */
	uint64_t no_endpoints;	    /* connections reset, datagrams dropped: none ready */
	uint64_t over_limit;	    /* turned away by --proxy-max-conns/-flows */
	/* Its listeners (ClusterIP and NodePort addresses) and how many are
	 * bound now; one that cannot be bound is retried every 5 s. */
	uint64_t listeners, listeners_bound;
};

/* Counters of one Service port. Returns 0, or -ENOENT when the datapath does
 * not serve that port. */
int proxy_port_stats_get(const struct proxy *p, const char *ns, const char *name, uint8_t proto,
			 uint16_t port, struct proxy_port_stats *out);

/* Calls `cb` for every Service port the datapath serves, in (namespace, name,
 * protocol, port) order. `port_name` is "" for an unnamed port. */
typedef void (*proxy_port_cb)(void *arg, const char *ns, const char *name, const char *port_name,
			      uint8_t proto, uint16_t port, const struct proxy_port_stats *st);
void proxy_port_foreach(const struct proxy *p, proxy_port_cb cb, void *arg);

/* ---- the CHAOS view -------------------------------------------------------
 * `dig CH TXT <svc>.<ns>.svc.<zone>` ends with one line per forwarded port,
 * read when the query is answered: "http 80/TCP proxy=listening conns=2".
 * The state lives in atomics the datapath updates; a snapshot reaches them
 * through an immutable index (proxy_live_index) set on it before it is
 * published, and an index is freed only once no snapshot can point to it. */

/* The index describing the datapath as of the last proxy_apply. */
const void *proxy_live_index(struct proxy *p);

/* For the query path (any thread, inside a snapshot whose index is `index`;
 * no lock, no allocation): when the lowercased wire name `key` is
 * <svc>.<ns>.svc.<...> of a forwarded Service, writes one CHAOS TXT record
 * per port (owner: a compression pointer to the question) into out[0..cap),
 * sets *n_rr and returns the bytes written; else returns 0. */
size_t proxy_chaos_live(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
			size_t cap, uint16_t *n_rr);

/* Frees old indexes. Call only when no snapshot but the current one exists
 * (snapshot_reclaim returned 0); `keep` is the current snapshot's index. */
void proxy_live_reclaim(struct proxy *p, const void *keep);

#endif
