/* The datapath's control side: turns a model view into Service ports and
 * listeners, diffs them against what is open (bind new, close removed,
 * re-point kept ones), retries ports that could not be bound, and answers
 * the questions the CHAOS view and the metrics ask. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shash.h"
#include "wire/dname.h"

#define RETRY_BIND_MS	     5000
#define RETRY_PAUSED_MS	     100
#define LOG_INTERVAL_MS	     10000
#define AFFINITY_MAX_ENTRIES 65536
#define PROXY_DEFAULT_CAP    16384

/* ---- small helpers --------------------------------------------------------- */

void proxy_endpoint_format(const struct proxy_endpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	net_addr_format(&ep->addr, a, sizeof(a));
	snprintf(buf, len, ep->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, ep->port);
}

static socklen_t addr_sockaddr(const struct net_addr *a, uint16_t port,
			       struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->bytes, 16);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	memcpy(&s4->sin_addr, a->bytes, 4);
	return sizeof(*s4);
}

socklen_t proxy_endpoint_sockaddr(const struct proxy_endpoint *ep, struct sockaddr_storage *ss)
{
	return addr_sockaddr(&ep->addr, ep->port, ss);
}

static bool addr_is_any(const struct net_addr *a)
{
	static const uint8_t zero[16];
	return memcmp(a->bytes, zero, a->family == AF_INET ? 4 : 16) == 0;
}

static bool rate_ok(uint64_t now, uint64_t *last, unsigned *count, unsigned *suppressed)
{
	if (*last && now - *last < LOG_INTERVAL_MS) {
		(*count)++;
		return false;
	}
	*suppressed = *count;
	*count = 0;
	*last = now ? now : 1;
	return true;
}

bool pport_log_allowed(struct pport *pp, unsigned *suppressed)
{
	return rate_ok(uv_now(pp->p->loop), &pp->log_ms, &pp->log_suppressed, suppressed);
}

const char *proxy_skipped_note(unsigned skipped, char *buf, size_t len)
{
	if (!skipped)
		return "";
	snprintf(buf, len, " (%u similar messages skipped)", skipped);
	return buf;
}

bool proxy_cap_log_allowed(struct proxy *p, unsigned *suppressed)
{
	return rate_ok(uv_now(p->loop), &p->cap_log_ms, &p->cap_suppressed, suppressed);
}

static void plive_put(struct plive *lv)
{
	if (lv && --lv->refs == 0)
		free(lv);
}

void pport_active_add(struct pport *pp, int delta)
{
	pp->st.active += (uint64_t)(int64_t)delta;
	atomic_store_explicit(&pp->live->active, pp->st.active, memory_order_relaxed);
}

/* Publishes a port's listener state to the CHAOS view. */
static void pport_live_listeners(struct pport *pp)
{
	atomic_store_explicit(&pp->live->n_listeners, pp->n_listeners, memory_order_relaxed);
	atomic_store_explicit(&pp->live->n_bound, pp->n_bound, memory_order_relaxed);
	atomic_store_explicit(&pp->live->dns_served, pp->dns_served, memory_order_relaxed);
	atomic_store_explicit(&pp->live->err, pp->err, memory_order_relaxed);
}

static void live_index_free(struct live_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_ports; i++)
		plive_put(ix->ports[i].live);
	free(ix);
}

static void proxy_free(struct proxy *p)
{
	close(p->epfd);
	live_index_free(p->live_cur);
	for (struct live_index *ix = p->live_old, *next; ix; ix = next) {
		next = ix->next;
		live_index_free(ix);
	}
	for (size_t i = 0; i < p->n_pipes; i++) {
		close(p->pipes[i][0]);
		close(p->pipes[i][1]);
	}
	free(p->udp_buf);
	free(p->ports);
	free(p->ls);
	free(p);
}

void proxy_handle_closed(struct proxy *p)
{
	if (--p->handles == 0 && p->stopping)
		proxy_free(p);
}

/* ---- the datapath's epoll set ---------------------------------------------- */

#define EV_BATCH 256

static void on_idle(uv_idle_t *h);

int proxy_ev_add(struct proxy *p, int fd, uint32_t events, struct pev *e)
{
	struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = e};
	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void proxy_ev_ready(struct proxy *p, struct pev *e)
{
	if (e->queued)
		return;
	e->queued = true;
	dlist_add(p->ready.prev, &e->ready); /* at the tail: first come, first resumed */
	if (!uv_is_active((uv_handle_t *)&p->idle))
		uv_idle_start(&p->idle, on_idle);
}

void proxy_ev_cancel(struct pev *e)
{
	if (!e->queued)
		return;
	e->queued = false;
	dlist_del(&e->ready);
}

static void on_idle(uv_idle_t *h)
{
	struct proxy *p = h->data;
	/* One pass over what is ready now; what gets requeued waits for the
	 * next turn, after the loop has polled everything else. */
	struct dlist batch;
	dlist_init(&batch);
	if (p->ready.next != &p->ready) {
		batch.next = p->ready.next;
		batch.prev = p->ready.prev;
		batch.next->prev = &batch;
		batch.prev->next = &batch;
		dlist_init(&p->ready);
	}
	while (batch.next != &batch) {
		struct pev *e = (struct pev *)((char *)batch.next - offsetof(struct pev, ready));
		dlist_del(&e->ready);
		e->queued = false;
		e->on_resume(e);
	}
	if (p->ready.next == &p->ready)
		uv_idle_stop(&p->idle);
}

static void on_epoll(uv_poll_t *h, int status, int events)
{
	struct proxy *p = h->data;
	struct epoll_event evs[EV_BATCH];
	(void)status;
	(void)events;
	/* Objects closed while this batch runs are freed only by their timer's
	 * close callback, after it: a later event in the batch may name them
	 * (they ignore it once closing). */
	int n = epoll_wait(p->epfd, evs, EV_BATCH, 0);
	for (int i = 0; i < n; i++) {
		struct pev *e = evs[i].data.ptr;
		e->on_event(e, evs[i].events);
	}
}

/* ---- Service ports --------------------------------------------------------- */

void pendpoints_put(struct pendpoints *e)
{
	if (e && --e->refs == 0)
		free(e);
}

void pport_put(struct pport *pp)
{
	if (!pp || --pp->refs)
		return;
	pendpoints_put(pp->eps);
	plive_put(pp->live);
	balance_free(&pp->bal);
	free(pp->ns);
	free(pp->name);
	free(pp->port_name);
	free(pp);
}

static int port_key_cmp(const char *ns, const char *name, uint8_t proto, uint16_t port,
			const struct pport *b)
{
	int c = strcmp(ns, b->ns);
	if (c)
		return c;
	if ((c = strcmp(name, b->name)))
		return c;
	if (proto != b->proto)
		return proto < b->proto ? -1 : 1;
	return port == b->port ? 0 : port < b->port ? -1 : 1;
}

static struct pport *port_find(const struct proxy *p, const char *ns, const char *name,
			       uint8_t proto, uint16_t port)
{
	size_t lo = 0, hi = p->n_ports;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = port_key_cmp(ns, name, proto, port, p->ports[mid]);
		if (c == 0)
			return p->ports[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool proxied_service(const struct model_service *s)
{
	return s->type != SVC_EXTERNAL_NAME && !s->headless && s->n_cluster_ips > 0;
}

static bool proxied_proto(uint8_t proto)
{
	return proto == PROTO_TCP || proto == PROTO_UDP;
}

/* The endpoints port `idx` forwards to: the ready ones; when none is ready,
 * the ones still serving while terminating (as kube-proxy does, so that a
 * rolling update of a single replica drains instead of failing). */
static struct pendpoints *endpoints_build(const struct view_service *vs, size_t idx)
{
	size_t n_ready = 0, n_term = 0;
	for (size_t e = 0; e < vs->n_eps; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		if (!ep->target_ports || !ep->target_ports[idx])
			continue;
		n_ready += ep->ready;
		n_term += !ep->ready && ep->serving && ep->terminating;
	}
	bool use_term = n_ready == 0;
	size_t n = use_term ? n_term : n_ready;
	struct pendpoints *pe = malloc(sizeof(*pe) + n * sizeof(pe->ep[0]));
	if (!pe)
		return NULL;
	pe->refs = 1;
	pe->n = 0;
	for (size_t e = 0; e < vs->n_eps; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		if (!ep->target_ports || !ep->target_ports[idx])
			continue;
		bool take = use_term ? (!ep->ready && ep->serving && ep->terminating) : ep->ready;
		if (!take)
			continue;
		pe->ep[pe->n].addr = ep->addr;
		pe->ep[pe->n].port = ep->target_ports[idx];
		pe->n++;
	}
	/* The view sorts endpoints by address and keeps one per address. */
	return pe;
}

static bool endpoints_equal(const struct pendpoints *a, const struct pendpoints *b)
{
	if (!a || !b || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (net_addr_cmp(&a->ep[i].addr, &b->ep[i].addr) ||
		    a->ep[i].port != b->ep[i].port)
			return false;
	return true;
}

/* ---- listeners ------------------------------------------------------------- */

static int listener_key_cmp(uint8_t proto, const struct net_addr *a, uint16_t port,
			    const struct plistener *l)
{
	if (proto != l->proto)
		return proto < l->proto ? -1 : 1;
	int c = net_addr_cmp(a, &l->addr);
	if (c)
		return c;
	return port == l->lport ? 0 : port < l->lport ? -1 : 1;
}

static void listener_text(const struct plistener *l, char *buf, size_t len)
{
	struct proxy_endpoint ep = {.addr = l->addr, .port = l->lport};
	char a[64];
	proxy_endpoint_format(&ep, a, sizeof(a));
	snprintf(buf, len, "%s/%s", a, model_proto_name(l->proto));
}

static void on_listener(uv_poll_t *h, int status, int events)
{
	struct plistener *l = h->data;
	(void)events;
	if (status < 0) {
		/* libuv has stopped the handle: poll again shortly. */
		char where[96];
		listener_text(l, where, sizeof(where));
		log_warn("proxy: Service %s/%s: listener %s: %s; pausing it briefly", l->port->ns,
			 l->port->name, where, uv_strerror(status));
		l->paused = false;
		proxy_listener_pause(l);
		return;
	}
	if (l->proto == PROTO_TCP)
		tcp_listener_accept(l);
	else
		udp_listener_read(l);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct plistener *l = h->data;
	struct proxy *p = l->p;
	free(l->buckets);
	pport_put(l->port);
	free(l);
	proxy_handle_closed(p);
}

/* Binds the listener's socket; returns 0 or a negative errno (l->fd stays -1). */
static int listener_bind(struct plistener *l)
{
	struct proxy *p = l->p;
	int one = 1, ret;
	int type = l->proto == PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	int fd = socket(l->sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* TCP: rebind while old connections linger in TIME_WAIT. Not for UDP,
	 * where it would let two sockets share the port silently. */
	if (l->proto == PROTO_TCP && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	/* The ClusterIP need not be on any interface: a `local` route (or
	 * nothing, for 127/8) delivers to it. Applies to IPv6 sockets too. */
	if (setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one)))
		goto fail;
	if (l->sa.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto fail;
	if (l->proto == PROTO_UDP && l->wildcard) {
		if (l->sa.ss_family == AF_INET
			? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
			: setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)))
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&l->sa, l->salen))
		goto fail;
	if (l->proto == PROTO_TCP && listen(fd, SOMAXCONN))
		goto fail;
	if ((ret = uv_poll_init(p->loop, &l->poll, fd)) < 0) {
		close(fd);
		return ret;
	}
	p->handles++;
	l->poll.data = l;
	l->fd = fd;
	l->err = 0;
	uv_poll_start(&l->poll, UV_READABLE, on_listener);
	return 0;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

static struct plistener *listener_new(struct proxy *p, uint8_t proto, const struct net_addr *a,
				      uint16_t port, bool node_port)
{
	struct plistener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->p = p;
	l->fd = -1;
	l->proto = proto;
	l->addr = *a;
	l->lport = port;
	l->node_port = node_port;
	l->wildcard = addr_is_any(a);
	l->salen = addr_sockaddr(a, port, &l->sa);
	return l;
}

static void listener_close(struct plistener *l)
{
	if (l->proto == PROTO_UDP)
		udp_listener_flows_close(l);
	if (l->fd < 0) {
		free(l->buckets);
		pport_put(l->port);
		free(l);
		return;
	}
	/* uv_close stops polling the descriptor first, so it may go now. */
	uv_close((uv_handle_t *)&l->poll, on_listener_closed);
	close(l->fd);
	l->fd = -1;
}

static void retry_schedule(struct proxy *p);

static void on_retry(uv_timer_t *t)
{
	struct proxy *p = t->data;
	p->retry_active = false;
	for (size_t i = 0; i < p->n_ls; i++) {
		struct plistener *l = p->ls[i];
		if (l->paused) {
			l->paused = false;
			uv_poll_start(&l->poll, UV_READABLE, on_listener);
			continue;
		}
		if (l->fd >= 0)
			continue;
		if (listener_bind(l) == 0) {
			char where[96];
			listener_text(l, where, sizeof(where));
			log_info("proxy: Service %s/%s: now listening on %s", l->port->ns,
				 l->port->name, where);
			l->port->n_bound++;
			if (l->port->n_bound == l->port->n_listeners)
				l->port->err = 0;
			pport_live_listeners(l->port);
		}
	}
	retry_schedule(p);
}

static void retry_schedule(struct proxy *p)
{
	if (p->stopping)
		return;
	uint64_t due = 0;
	for (size_t i = 0; i < p->n_ls; i++) {
		const struct plistener *l = p->ls[i];
		if (l->paused)
			due = RETRY_PAUSED_MS;
		else if (l->fd < 0 && !due)
			due = RETRY_BIND_MS;
	}
	if (!due || (p->retry_active && due == RETRY_BIND_MS))
		return;
	uv_timer_start(&p->retry, on_retry, due, 0);
	p->retry_active = true;
}

void proxy_listener_pause(struct plistener *l)
{
	if (l->paused)
		return;
	l->paused = true;
	uv_poll_stop(&l->poll);
	retry_schedule(l->p);
}

/* ---- start, stop ------------------------------------------------------------ */

int proxy_start(uv_loop_t *loop, const struct proxy_config *cfg, struct proxy **out)
{
	/* UDP flows and session affinity hash client addresses with it. */
	int err = shash_init();
	if (err < 0)
		return err;
	struct proxy *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->cfg = *cfg;
	dlist_init(&p->conns);
	dlist_init(&p->ready);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0 || uv_poll_init(loop, &p->ep_poll, p->epfd) < 0) {
		int ret = p->epfd < 0 ? -errno : -ENOMEM;
		if (p->epfd >= 0)
			close(p->epfd);
		free(p);
		return ret;
	}
	uv_timer_init(loop, &p->retry);
	uv_idle_init(loop, &p->idle);
	p->retry.data = p->ep_poll.data = p->idle.data = p;
	p->handles = 3;
	uv_poll_start(&p->ep_poll, UV_READABLE, on_epoll);

	/* Each connection holds two descriptors (four more while bytes sit in
	 * its pipes), each flow one: use what the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t fds = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		fds = rl.rlim_cur;
	/* Caps not given: a third each of what is left after 1024 descriptors
	 * for DNS and listeners, so that a flood of either cannot take all. */
	uint64_t share = fds > 1024 + 3 * 64 ? (fds - 1024) / 3 : 64;
	if (share > PROXY_DEFAULT_CAP)
		share = PROXY_DEFAULT_CAP;
	if (!p->cfg.max_conns)
		p->cfg.max_conns = (unsigned)share;
	if (!p->cfg.max_flows)
		p->cfg.max_flows = (unsigned)share;
	uint64_t need = 2ull * p->cfg.max_conns + p->cfg.max_flows + 1024;
	if (need > fds)
		log_warn("proxy: --proxy-max-conns %u and --proxy-max-flows %u may need %llu file "
			 "descriptors, the limit is %llu: past it, new connections are reset",
			 p->cfg.max_conns, p->cfg.max_flows, (unsigned long long)need,
			 (unsigned long long)fds);
	char node[INET6_ADDRSTRLEN];
	net_addr_format(&cfg->node_addr, node, sizeof(node));
	log_info("proxy: datapath on the control loop, NodePorts on %s, up to %u connections and "
		 "%u UDP flows, UDP timeout %u s, %s",
		 node, p->cfg.max_conns, p->cfg.max_flows, cfg->udp_timeout_ms / 1000,
		 cfg->no_splice ? "copying through user space" : "splice(2)");
	*out = p;
	return 0;
}

/* The proxy's own handles: the last to close frees it. */
static void on_retry_closed(uv_handle_t *h)
{
	proxy_handle_closed(h->data);
}

void proxy_stop(struct proxy *p)
{
	if (!p || p->stopping)
		return;
	p->stopping = true;
	for (size_t i = 0; i < p->n_ls; i++)
		listener_close(p->ls[i]);
	p->n_ls = 0;
	tcp_conn_close_all(p);
	for (size_t i = 0; i < p->n_ports; i++) {
		p->ports[i]->in_table = false;
		pport_put(p->ports[i]);
	}
	p->n_ports = 0;
	/* The last close callback (this timer's, a listener's or a
	 * connection's) frees the proxy. */
	uv_close((uv_handle_t *)&p->retry, on_retry_closed);
	uv_close((uv_handle_t *)&p->ep_poll, on_retry_closed);
	uv_close((uv_handle_t *)&p->idle, on_retry_closed);
}

/* ---- apply ------------------------------------------------------------------ */

struct want_port {
	const struct view_service *vs;
	size_t idx;
	size_t order;
	struct pport *pp;	/* existing or new */
	bool fresh;		/* pp was created by this apply */
	struct pendpoints *eps; /* the new set */
	char *port_name;
};

struct want_listener {
	uint8_t proto;
	struct net_addr addr;
	uint16_t port;
	bool node_port;
	size_t order;
	struct pport *pp;
};

static int want_port_cmp(const void *a, const void *b)
{
	const struct want_port *x = a, *y = b;
	const struct model_service *sx = x->vs->svc, *sy = y->vs->svc;
	const struct model_svc_port *px = &sx->ports[x->idx], *py = &sy->ports[y->idx];
	int c = strcmp(sx->ns, sy->ns);
	if (!c)
		c = strcmp(sx->name, sy->name);
	if (!c)
		c = (int)px->proto - (int)py->proto;
	if (!c)
		c = (int)px->port - (int)py->port;
	if (!c)
		c = x->order < y->order ? -1 : x->order > y->order;
	return c;
}

static int want_listener_cmp(const void *a, const void *b)
{
	const struct want_listener *x = a, *y = b;
	int c = (int)x->proto - (int)y->proto;
	if (!c)
		c = net_addr_cmp(&x->addr, &y->addr);
	if (!c)
		c = (int)x->port - (int)y->port;
	if (!c)
		c = x->order < y->order ? -1 : x->order > y->order;
	return c;
}

static bool dns_serves(const struct proxy *p, const struct net_addr *a, uint16_t port)
{
	for (size_t i = 0; i < p->cfg.n_dns_addrs; i++) {
		const struct sockaddr_storage *ss = &p->cfg.dns_addrs[i];
		struct net_addr d = {.family = (uint8_t)ss->ss_family};
		uint16_t dport;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
			memcpy(d.bytes, &s4->sin_addr, 4);
			dport = ntohs(s4->sin_port);
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
			memcpy(d.bytes, &s6->sin6_addr, 16);
			dport = ntohs(s6->sin6_port);
		} else {
			continue;
		}
		if (dport == port && d.family == a->family &&
		    (addr_is_any(&d) || net_addr_cmp(&d, a) == 0))
			return true;
	}
	return false;
}

static struct pport *pport_new(const struct view_service *vs, size_t idx, struct proxy *p)
{
	const struct model_service *s = vs->svc;
	struct pport *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	pp->ns = strdup(s->ns);
	pp->name = strdup(s->name);
	if (!pp->ns || !pp->name) {
		free(pp->ns);
		free(pp->name);
		free(pp);
		return NULL;
	}
	pp->proto = s->ports[idx].proto;
	pp->port = s->ports[idx].port;
	pp->refs = 1;
	pp->p = p;
	pp->live = calloc(1, sizeof(*pp->live));
	if (!pp->live) {
		free(pp->ns);
		free(pp->name);
		free(pp);
		return NULL;
	}
	pp->live->refs = 1;
	dlist_init(&pp->flows);
	balance_init(&pp->bal, AFFINITY_MAX_ENTRIES);
	return pp;
}

/* Phase one: everything that can fail to allocate, with nothing changed yet. */
static int apply_prepare(struct proxy *p, const struct model_view *v, struct want_port **out,
			 size_t *n_out)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n_svcs; i++)
		if (proxied_service(v->svcs[i].svc))
			for (size_t k = 0; k < v->svcs[i].svc->n_ports; k++)
				n += proxied_proto(v->svcs[i].svc->ports[k].proto);
	struct want_port *w = calloc(n ? n : 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct view_service *vs = &v->svcs[i];
		if (!proxied_service(vs->svc))
			continue;
		for (size_t k = 0; k < vs->svc->n_ports; k++)
			if (proxied_proto(vs->svc->ports[k].proto)) {
				w[m].vs = vs;
				w[m].idx = k;
				w[m].order = m;
				m++;
			}
	}
	qsort(w, m, sizeof(*w), want_port_cmp);
	size_t kept = 0;
	for (size_t i = 0; i < m; i++) {
		/* The manifest reader rejects duplicate ports; keep the first anyway. */
		if (kept && want_port_cmp(&w[kept - 1], &w[i]) == 0)
			continue;
		if (kept) {
			const struct want_port *a = &w[kept - 1], *b = &w[i];
			const struct model_svc_port *pa = &a->vs->svc->ports[a->idx];
			const struct model_svc_port *pb = &b->vs->svc->ports[b->idx];
			if (a->vs == b->vs && pa->proto == pb->proto && pa->port == pb->port)
				continue;
		}
		w[kept++] = w[i];
	}
	m = kept;
	int ret = 0;
	for (size_t i = 0; i < m; i++) {
		const struct model_service *s = w[i].vs->svc;
		const struct model_svc_port *sp = &s->ports[w[i].idx];
		w[i].pp = port_find(p, s->ns, s->name, sp->proto, sp->port);
		if (!w[i].pp) {
			w[i].pp = pport_new(w[i].vs, w[i].idx, p);
			w[i].fresh = true;
		}
		w[i].eps = endpoints_build(w[i].vs, w[i].idx);
		w[i].port_name = strdup(sp->name ? sp->name : "");
		if (!w[i].pp || !w[i].eps || !w[i].port_name) {
			ret = -ENOMEM;
			m = i + 1;
			break;
		}
	}
	if (ret < 0) {
		for (size_t i = 0; i < m; i++) {
			if (w[i].fresh)
				pport_put(w[i].pp);
			pendpoints_put(w[i].eps);
			free(w[i].port_name);
		}
		free(w);
		return ret;
	}
	*out = w;
	*n_out = m;
	return 0;
}

/* Phase two for ports: swap in the new endpoint sets and the new table. */
static void apply_ports(struct proxy *p, struct want_port *w, size_t n, struct pport **table)
{
	for (size_t i = 0; i < n; i++) {
		struct pport *pp = w[i].pp;
		const struct model_service *s = w[i].vs->svc;
		bool changed = !endpoints_equal(pp->eps, w[i].eps);
		pendpoints_put(pp->eps);
		pp->eps = w[i].eps;
		free(pp->port_name);
		pp->port_name = w[i].port_name;
		pp->svc_idx = w[i].idx;
		uint32_t aff = s->affinity_client_ip ? s->affinity_timeout * 1000u : 0;
		if (s->affinity_client_ip && !aff)
			aff = 1000; /* timeoutSeconds is at least 1 */
		if (!aff && pp->affinity_ms)
			balance_clear(&pp->bal);
		pp->affinity_ms = aff;
		if (w[i].fresh)
			pp->in_table = true;
		else
			pp->refs++; /* the new table's reference; the old one is dropped below */
		if (changed && pp->proto == PROTO_UDP && !w[i].fresh)
			udp_port_flows_prune(pp);
		table[i] = pp;
	}
	for (size_t i = 0; i < p->n_ports; i++) {
		struct pport *old = p->ports[i];
		bool kept = false;
		for (size_t lo = 0, hi = n; lo < hi && !kept;) {
			size_t mid = lo + (hi - lo) / 2;
			int c = port_key_cmp(old->ns, old->name, old->proto, old->port, table[mid]);
			if (c == 0)
				kept = true;
			else if (c < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		/* A removed port's listeners close in apply_listeners, and
		 * their flows with them; its connections hold it until done. */
		if (!kept)
			old->in_table = false;
		pport_put(old);
	}
	free(p->ports);
	p->ports = table;
	p->n_ports = n;
}

/* Phase two for listeners: merge the wanted set into the open one. */
static int apply_listeners(struct proxy *p, struct want_port *w, size_t n)
{
	size_t cap = 0;
	for (size_t i = 0; i < n; i++)
		cap += w[i].vs->svc->n_cluster_ips + 1;
	struct want_listener *wl = calloc(cap ? cap : 1, sizeof(*wl));
	struct plistener **ls = calloc(cap + p->n_ls + 1, sizeof(*ls));
	if (!wl || !ls) {
		free(wl);
		free(ls);
		return -ENOMEM;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		const struct model_service *s = w[i].vs->svc;
		const struct model_svc_port *sp = &s->ports[w[i].idx];
		struct pport *pp = w[i].pp;
		pp->n_listeners = pp->n_bound = 0;
		pp->err = 0;
		pp->dns_served = false;
		pp->had_conflict = pp->conflict;
		pp->conflict = false;
		for (size_t k = 0; k < s->n_cluster_ips; k++)
			wl[m++] = (struct want_listener){.proto = sp->proto,
							 .addr = s->cluster_ips[k],
							 .port = sp->port,
							 .order = w[i].order,
							 .pp = pp};
		bool np = s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER;
		if (np && sp->node_port)
			wl[m++] = (struct want_listener){.proto = sp->proto,
							 .addr = p->cfg.node_addr,
							 .port = sp->node_port,
							 .node_port = true,
							 .order = w[i].order,
							 .pp = pp};
	}
	qsort(wl, m, sizeof(*wl), want_listener_cmp);

	size_t nl = 0, j = 0, owner = 0;
	for (size_t i = 0; i < m; i++) {
		struct want_listener *x = &wl[i];
		const struct want_listener *o = &wl[owner];
		bool taken = i > 0 && o->proto == x->proto && o->port == x->port &&
			     net_addr_cmp(&o->addr, &x->addr) == 0;
		if (!taken)
			owner = i;
		char where[96];
		struct plistener tmp = {.proto = x->proto, .addr = x->addr, .lport = x->port};
		listener_text(&tmp, where, sizeof(where));
		if (dns_serves(p, &x->addr, x->port)) {
			x->pp->dns_served = true;
			continue;
		}
		if (taken) {
			/* Two Service ports want the same address: the first keeps it. */
			if (!x->pp->had_conflict)
				log_warn("proxy: Service %s/%s: %s is already Service %s/%s's; "
					 "not forwarded",
					 x->pp->ns, x->pp->name, where, o->pp->ns, o->pp->name);
			x->pp->conflict = true;
			x->pp->n_listeners++;
			if (!x->pp->err) {
				x->pp->err = -EADDRINUSE;
			}
			continue;
		}
		/* Close the open listeners that sort before this one: unwanted. */
		while (j < p->n_ls && listener_key_cmp(x->proto, &x->addr, x->port, p->ls[j]) > 0)
			listener_close(p->ls[j++]);
		struct plistener *l = NULL;
		if (j < p->n_ls && listener_key_cmp(x->proto, &x->addr, x->port, p->ls[j]) == 0) {
			l = p->ls[j++];
			if (l->port != x->pp) {
				if (l->proto == PROTO_UDP)
					udp_listener_flows_close(l);
				pport_put(l->port);
				l->port = x->pp;
				x->pp->refs++;
			}
			l->node_port = x->node_port;
		} else {
			l = listener_new(p, x->proto, &x->addr, x->port, x->node_port);
			if (!l) {
				log_error("proxy: Service %s/%s: out of memory for %s", x->pp->ns,
					  x->pp->name, where);
				x->pp->n_listeners++;
				continue;
			}
			l->port = x->pp;
			x->pp->refs++;
			int ret = listener_bind(l);
			if (ret < 0) {
				l->err = ret;
				log_warn("proxy: Service %s/%s: cannot listen on %s (%s); skipped, "
					 "retried every 5 s",
					 x->pp->ns, x->pp->name, where, strerror(-ret));
			} else {
				log_debug("proxy: Service %s/%s: listening on %s", x->pp->ns,
					  x->pp->name, where);
			}
		}
		ls[nl++] = l;
		x->pp->n_listeners++;
		if (l->fd >= 0) {
			x->pp->n_bound++;
		} else if (!x->pp->err) {
			x->pp->err = l->err;
		}
	}
	while (j < p->n_ls)
		listener_close(p->ls[j++]);
	free(p->ls);
	p->ls = ls;
	p->n_ls = nl;
	free(wl);
	return 0;
}

/* The CHAOS view's index of the current table: one allocation, freed whole. */
static struct live_index *live_index_build(struct proxy *p)
{
	size_t n_svcs = 0, chars = 0;
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct pport *pp = p->ports[i];
		const struct pport *prev = i ? p->ports[i - 1] : NULL;
		if (!prev || strcmp(prev->ns, pp->ns) || strcmp(prev->name, pp->name)) {
			n_svcs++;
			chars += strlen(pp->ns) + strlen(pp->name) + 2;
		}
		chars += strlen(pp->port_name ? pp->port_name : "") + 1;
	}
	size_t size = sizeof(struct live_index) + n_svcs * sizeof(struct live_svc) +
		      p->n_ports * sizeof(struct live_port) + chars;
	struct live_index *ix = calloc(1, size);
	if (!ix)
		return NULL;
	ix->svcs = (struct live_svc *)(ix + 1);
	ix->ports = (struct live_port *)(ix->svcs + n_svcs);
	char *str = (char *)(ix->ports + p->n_ports);
	for (size_t i = 0; i < p->n_ports; i++) {
		struct pport *pp = p->ports[i];
		struct live_svc *sv = ix->n_svcs ? &ix->svcs[ix->n_svcs - 1] : NULL;
		if (!sv || strcmp(sv->ns, pp->ns) || strcmp(sv->name, pp->name)) {
			sv = &ix->svcs[ix->n_svcs++];
			sv->ns_len = strlen(pp->ns);
			sv->name_len = strlen(pp->name);
			sv->ns = memcpy(str, pp->ns, sv->ns_len + 1);
			str += sv->ns_len + 1;
			sv->name = memcpy(str, pp->name, sv->name_len + 1);
			str += sv->name_len + 1;
			sv->first = ix->n_ports;
		}
		const char *pn = pp->port_name ? pp->port_name : "";
		size_t pl = strlen(pn);
		/* In the Service's own order, like the mapping lines above them. */
		size_t k = ix->n_ports++;
		while (k > sv->first && ix->ports[k - 1].port_idx > pp->svc_idx) {
			ix->ports[k] = ix->ports[k - 1];
			k--;
		}
		ix->ports[k] = (struct live_port){.live = pp->live,
						  .name = memcpy(str, pn, pl + 1),
						  .proto = pp->proto,
						  .port = pp->port,
						  .port_idx = pp->svc_idx};
		str += pl + 1;
		pp->live->refs++;
		sv->n++;
	}
	return ix;
}

int proxy_apply(struct proxy *p, const struct model_view *v)
{
	struct want_port *w = NULL;
	size_t n = 0;
	if (p->stopping)
		return 0;
	int ret = apply_prepare(p, v, &w, &n);
	struct pport **table = ret < 0 ? NULL : calloc(n ? n : 1, sizeof(*table));
	if (ret == 0 && !table) {
		for (size_t i = 0; i < n; i++) {
			if (w[i].fresh)
				pport_put(w[i].pp);
			pendpoints_put(w[i].eps);
			free(w[i].port_name);
		}
		ret = -ENOMEM;
	}
	if (ret < 0) {
		log_error("proxy: out of memory applying the new view; the datapath keeps the "
			  "previous one");
		free(w);
		return ret;
	}
	apply_ports(p, w, n, table);
	ret = apply_listeners(p, w, n);
	if (ret < 0)
		log_error("proxy: out of memory updating listeners; they stay as they were");
	free(w);
	for (size_t i = 0; i < p->n_ports; i++)
		pport_live_listeners(p->ports[i]);
	struct live_index *ix = live_index_build(p);
	if (ix) {
		if (p->live_cur) {
			p->live_cur->next = p->live_old;
			p->live_old = p->live_cur;
		}
		p->live_cur = ix;
	} else {
		log_error("proxy: out of memory indexing the CHAOS view; it shows the previous "
			  "Services");
	}
	retry_schedule(p);
	return ret;
}

/* ---- what it does ----------------------------------------------------------- */

int proxy_port_stats_get(const struct proxy *p, const char *ns, const char *name, uint8_t proto,
			 uint16_t port, struct proxy_port_stats *out)
{
	const struct pport *pp = port_find(p, ns, name, proto, port);
	if (!pp)
		return -ENOENT;
	*out = pp->st;
	return 0;
}

void proxy_port_foreach(const struct proxy *p, proxy_port_cb cb, void *arg)
{
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct pport *pp = p->ports[i];
		cb(arg, pp->ns, pp->name, pp->port_name ? pp->port_name : "", pp->proto, pp->port,
		   &pp->st);
	}
}

const void *proxy_live_index(struct proxy *p)
{
	return p ? p->live_cur : NULL;
}

void proxy_live_reclaim(struct proxy *p, const void *keep)
{
	for (struct live_index **pp = &p->live_old; *pp;) {
		struct live_index *ix = *pp;
		if (ix == keep) {
			pp = &ix->next;
			continue;
		}
		*pp = ix->next;
		live_index_free(ix);
	}
}

/* ---- the CHAOS view, on DNS worker threads ---------------------------------
 * Straight-line code over bytes, as on the rest of the query path: no
 * allocation, no lock, no locale (strerror may take one). */

struct text {
	char *p;
	size_t len, cap;
};

static void text_put(struct text *t, const char *s)
{
	while (*s && t->len < t->cap)
		t->p[t->len++] = *s++;
}

static void text_u64(struct text *t, uint64_t v)
{
	char d[24];
	size_t n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n && t->len < t->cap)
		t->p[t->len++] = d[--n];
}

static const char *errno_name(int err)
{
	switch (err) {
	case EADDRINUSE:
		return "address in use";
	case EADDRNOTAVAIL:
		return "address not available";
	case EACCES:
	case EPERM:
		return "permission denied";
	case EMFILE:
	case ENFILE:
		return "out of file descriptors";
	case ENOMEM:
	case ENOBUFS:
		return "out of memory";
	default:
		return NULL;
	}
}

/* One port's line: "http 80/TCP proxy=listening conns=2". */
static size_t live_line(const struct live_port *lp, char *buf, size_t cap)
{
	struct text t = {.p = buf, .cap = cap};
	const struct plive *lv = lp->live;
	uint32_t nl = atomic_load_explicit(&lv->n_listeners, memory_order_relaxed);
	uint32_t nb = atomic_load_explicit(&lv->n_bound, memory_order_relaxed);
	int32_t err = atomic_load_explicit(&lv->err, memory_order_relaxed);
	uint64_t active = atomic_load_explicit(&lv->active, memory_order_relaxed);

	text_put(&t, lp->name[0] ? lp->name : "-");
	text_put(&t, " ");
	text_u64(&t, lp->port);
	text_put(&t, lp->proto == PROTO_UDP ? "/UDP proxy=" : "/TCP proxy=");
	if (nl == 0 && atomic_load_explicit(&lv->dns_served, memory_order_relaxed)) {
		text_put(&t, "dns");
	} else if (nb == nl) {
		text_put(&t, "listening");
	} else {
		text_put(&t, nb ? "partial(" : "not-listening(");
		text_u64(&t, nb);
		text_put(&t, "/");
		text_u64(&t, nl);
		text_put(&t, " bound: ");
		const char *why = errno_name(-err);
		if (why) {
			text_put(&t, why);
		} else {
			text_put(&t, "errno ");
			text_u64(&t, (uint64_t)(err < 0 ? -err : err));
		}
		text_put(&t, ")");
	}
	text_put(&t, lp->proto == PROTO_UDP ? " flows=" : " conns=");
	text_u64(&t, active);
	return t.len;
}

static int bytes_cmp(const uint8_t *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

size_t proxy_chaos_live(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
			size_t cap, uint16_t *n_rr)
{
	const struct live_index *ix = index;
	*n_rr = 0;
	/* <svc>.<ns>.svc.<zone> or the short form: the first two labels name
	 * the Service, the third must be "svc". */
	const uint8_t *name, *ns;
	size_t l1, l2;
	if (!ix || !dname_service_labels(key, keylen, &name, &l1, &ns, &l2))
		return 0;
	size_t lo = 0, hi = ix->n_svcs;
	const struct live_svc *sv = NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct live_svc *m = &ix->svcs[mid];
		int c = bytes_cmp(ns, l2, m->ns, m->ns_len);
		if (!c)
			c = bytes_cmp(name, l1, m->name, m->name_len);
		if (!c) {
			sv = m;
			break;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (!sv)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < sv->n; i++) {
		char line[255];
		size_t ll = live_line(&ix->ports[sv->first + i], line, sizeof(line));
		size_t rr = 12 + 1 + ll;
		if (n + rr > cap)
			break; /* what fits: the mapping lines above are complete */
		uint8_t *w = out + n;
		static const uint8_t head[10] = {0xC0, 0x0C, 0, 16, 0, 3, 0, 0, 0, 0};
		memcpy(w, head, sizeof(head));
		w[10] = (uint8_t)((ll + 1) >> 8);
		w[11] = (uint8_t)(ll + 1);
		w[12] = (uint8_t)ll;
		memcpy(w + 13, line, ll);
		n += rr;
		(*n_rr)++;
	}
	return n;
}
