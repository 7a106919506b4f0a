/* The datapath's inner structures, shared by proxy.c (start, stop, the port
 * table), events.c (the epoll set), listeners.c, apply.c (a view applied),
 * chaos.c (the CHAOS live view), tcp.c (connections) and udp.c (flows).
 * Internal to proxy/.
 *
 * Owns: the layout of Service ports, listeners, connections and flows, and who
 * holds a reference to what.
 * Must never: be included outside proxy/ (proxy.h is the interface).
 *
 * Lifetimes: a Service port (pport) is held by the table while the view has
 * it, and by each listener, connection and flow that uses it; its counters
 * outlive its listeners. An endpoint set (pendpoints) is immutable and held
 * by the port and by each connection still trying endpoints, so that an
 * update never pulls the list from under a retry. */
#ifndef SVCDNS_DATAPATH_H
#define SVCDNS_DATAPATH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "proxy/balance.h"
#include "proxy/proxy.h"

/* An intrusive doubly linked list. */
struct dlist {
	struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *h)
{
	h->prev = h->next = h;
}

static inline void dlist_add(struct dlist *h, struct dlist *n)
{
	n->next = h->next;
	n->prev = h;
	h->next->prev = n;
	h->next = n;
}

static inline void dlist_del(struct dlist *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define PROXY_PIPE_POOL 64

/* One descriptor in the datapath's own epoll set. Connections and flows
 * register edge-triggered, once, and never change their interest: no
 * epoll_ctl per state change. Work cut short by a budget goes on the ready
 * list and is resumed on a later loop turn, since no new edge would come. */
struct pev {
	void (*on_event)(struct pev *e, uint32_t events);
	void (*on_resume)(struct pev *e);
	struct dlist ready;
	bool queued;
};

struct pendpoints {
	unsigned refs;
	size_t n;
	struct proxy_endpoint ep[]; /* sorted by address */
};

/* What the CHAOS view shows of one Service port, read by DNS workers while
 * the control loop writes it: every field atomic, relaxed (each is shown on
 * its own). Held by its port and by every live index that lists it. */
struct plive {
	unsigned refs; /* control thread only */
	_Atomic uint32_t n_listeners, n_bound;
	_Atomic uint32_t dns_served; /* an address svcdns serves DNS on */
	_Atomic int32_t err;	     /* first bind error, negative errno */
	_Atomic uint64_t active;     /* open connections or flows */
};

/* An immutable index from Service to its ports' live state, one per apply. */
struct live_port {
	struct plive *live;
	const char *name;
	uint8_t proto;
	uint16_t port;
	size_t port_idx;
};

struct live_svc {
	const char *ns, *name;
	size_t ns_len, name_len;
	size_t first, n; /* ports[first .. first + n) */
};

struct live_index {
	struct live_index *next; /* retired list */
	struct live_svc *svcs;	 /* sorted by (ns, name) */
	size_t n_svcs;
	struct live_port *ports;
	size_t n_ports;
};

struct pport {
	char *ns, *name, *port_name;
	uint8_t proto;
	uint16_t port;
	size_t svc_idx; /* position among the Service's ports, for the CHAOS order */
	struct plive *live;
	unsigned refs;
	bool in_table;
	struct proxy *p;
	struct pendpoints *eps;
	struct balance bal;
	uint32_t affinity_ms; /* 0: no session affinity */
	struct proxy_port_stats st;
	/* What the CHAOS view says about its listeners (set by proxy_apply and
	 * the bind retry). */
	unsigned n_listeners, n_bound;
	bool dns_served;	     /* an address svcdns serves DNS on */
	bool conflict, had_conflict; /* another Service holds an address (logged once) */
	int err;		     /* first bind error, negative errno */
	struct dlist flows;	     /* UDP flows of this port */
	uint64_t log_ms;	     /* rate limit for per-port warnings */
	unsigned log_suppressed;
};

struct plistener {
	struct proxy *p;
	uv_poll_t poll;
	int fd;	   /* -1 while not bound */
	int err;   /* last bind error, negative errno */
	bool want; /* mark during proxy_apply */
	bool paused;
	uint8_t proto;
	bool node_port;
	bool wildcard;	      /* bound to 0.0.0.0 / ::: replies need the packet's address */
	struct net_addr addr; /* the key: proto, addr, lport */
	uint16_t lport;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct pport *port;
	/* UDP: flows by client address (chained hash). */
	struct pflow **buckets;
	size_t n_buckets, n_flows;
};

struct proxy {
	uv_loop_t *loop;
	struct proxy_config cfg;
	struct pport **ports; /* sorted by (ns, name, proto, port) */
	size_t n_ports;
	struct plistener **ls; /* sorted by (proto, address, port) */
	size_t n_ls;
	unsigned n_conns, n_flows;
	struct dlist conns; /* every TCP connection, for proxy_stop */
	int epfd;	    /* connections' and flows' descriptors */
	uv_poll_t ep_poll;  /* the loop polls epfd */
	uv_idle_t idle;	    /* keeps the loop from sleeping while work is ready */
	struct dlist ready; /* struct pev, resumed from `idle` */
	unsigned handles;   /* uv handles not yet closed; freed at 0 once stopping */
	bool stopping;
	struct live_index *live_cur; /* as of the last apply */
	struct live_index *live_old; /* retired, freed by proxy_live_reclaim */
	uv_timer_t retry;	     /* re-binds listeners that failed, resumes paused ones */
	bool retry_active;
	/* Pipes for splice(2) not in use: a pipe is taken only while bytes sit
	 * in it, so idle connections hold two descriptors, not six. */
	int pipes[PROXY_PIPE_POOL][2];
	size_t n_pipes;
	uint8_t *udp_buf; /* one datagram at a time, shared: single-threaded */
	uint64_t cap_log_ms;
	unsigned cap_suppressed;
};

/* "TCP" or "UDP": the only protocols the datapath forwards. */
static inline const char *proxy_proto_name(uint8_t proto)
{
	return proto == PROTO_UDP ? "UDP" : "TCP";
}

/* ---- proxy.c ---- */
void pport_put(struct pport *pp);
void pendpoints_put(struct pendpoints *e);
/* The port table is sorted by (ns, name, proto, port): its order, and a
 * binary search in it (NULL: not served). */
int pport_key_cmp(const char *ns, const char *name, uint8_t proto, uint16_t port,
		  const struct pport *b);
struct pport *pport_find(const struct proxy *p, const char *ns, const char *name, uint8_t proto,
			 uint16_t port);
/* The number of open connections or flows of `pp` changed by `delta`. */
void pport_active_add(struct pport *pp, int delta);
/* A handle owned by the datapath was closed (frees the proxy when stopping). */
void proxy_handle_closed(struct proxy *p);
/* Warnings about one port at most once per 10 s, with the count skipped. */
bool pport_log_allowed(struct pport *pp, unsigned *suppressed);
bool proxy_cap_log_allowed(struct proxy *p, unsigned *suppressed);
/* " (N similar messages skipped)", or "" when none were. */
const char *proxy_skipped_note(unsigned skipped, char *buf, size_t len);
#define SKIPPED(n) proxy_skipped_note((n), (char[48]){0}, 48)
void proxy_endpoint_format(const struct proxy_endpoint *ep, char *buf, size_t len);
socklen_t proxy_endpoint_sockaddr(const struct proxy_endpoint *ep, struct sockaddr_storage *ss);
socklen_t proxy_addr_sockaddr(const struct net_addr *a, uint16_t port, struct sockaddr_storage *ss);
bool proxy_addr_is_any(const struct net_addr *a);

/* ---- events.c ---- */
/* Creates the epoll set and starts polling it on p->loop (two handles, which
 * proxy_ev_close closes). 0 or a negative errno, with nothing left open. */
int proxy_ev_open(struct proxy *p);
void proxy_ev_close(struct proxy *p, uv_close_cb cb);
/* Adds fd to the datapath's epoll set, edge-triggered. 0 or -errno. */
int proxy_ev_add(struct proxy *p, int fd, uint32_t events, struct pev *e);
/* Resumes `e` on a later loop turn (its budget ran out with work left). */
void proxy_ev_ready(struct proxy *p, struct pev *e);
/* Takes `e` off the ready list (it is being closed). */
void proxy_ev_cancel(struct pev *e);

/* ---- listeners.c ---- */
/* The listener table is sorted by (proto, address, port). */
int proxy_listener_key_cmp(uint8_t proto, const struct net_addr *a, uint16_t port,
			   const struct plistener *l);
/* "10.96.0.10:80/TCP", for logs. */
void proxy_listener_text(const struct plistener *l, char *buf, size_t len);
/* A listener not bound yet (fd -1), with no port. */
struct plistener *proxy_listener_new(struct proxy *p, uint8_t proto, const struct net_addr *a,
				     uint16_t port, bool node_port);
/* Binds and starts polling; 0 or a negative errno (l->fd stays -1). */
int proxy_listener_bind(struct plistener *l);
/* Closes the socket and its flows, drops its port; frees it (now or once
 * its handle is closed). */
void proxy_listener_close(struct plistener *l);
/* A listener could not accept (EMFILE): retried by the retry timer. */
void proxy_listener_pause(struct plistener *l);
/* Arms the retry timer when a listener is unbound or paused. */
void proxy_retry_schedule(struct proxy *p);

/* ---- chaos.c (the control thread's side) ---- */
void plive_put(struct plive *lv);
/* Publishes a port's listener state to the CHAOS view. */
void pport_live_listeners(struct pport *pp);
/* Publishes every port's state and a new index of the current table (the
 * previous one retires until proxy_live_reclaim). */
void proxy_live_publish(struct proxy *p);
void live_index_free(struct live_index *ix);

/* ---- tcp.c ---- */
void tcp_listener_accept(struct plistener *l);
void tcp_conn_close_all(struct proxy *p);

/* ---- udp.c ---- */
void udp_listener_read(struct plistener *l);
/* Closes every flow of a listener (it is going away). */
void udp_listener_flows_close(struct plistener *l);
/* Closes the flows of `pp` whose endpoint is not in its current set. */
void udp_port_flows_prune(struct pport *pp);

#endif
