/* UDP forwarding: one flow per client address and listener, each with its
 * own socket connected to the endpoint chosen when the flow opened; replies
 * leave through the listener, so that they come from the ClusterIP:port (or
 * the address the client sent a NodePort datagram to). Idle flows expire. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shash.h"

#define UDP_MAX	   65536
#define RECV_BATCH 64 /* datagrams per readiness event, for fairness */

struct pflow {
	struct pflow *hnext; /* listener's hash chain */
	struct dlist port_link;
	struct plistener *l;
	struct pport *port;
	struct sockaddr_storage client;
	socklen_t clen;
	struct net_addr client_ip;
	struct proxy_endpoint ep;
	bool have_local; /* wildcard listener: reply from the packet's destination */
	union {
		struct in_pktinfo v4;
		struct in6_pktinfo v6;
	} local;
	int fd;
	struct pev ev;	  /* replies from the endpoint */
	uv_timer_t timer; /* idle timeout; its close callback frees the flow */
	uint64_t last_ms;
	bool closing;
};

/* Keyed (common/shash.h): a client picks its source port, and over UDP its
 * address too, so with a hash anyone can compute it one host could pile its
 * flows into one chain. */
static size_t sa_hash(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		return (size_t)shash_bytes((uint64_t)AF_INET6 << 16 | s6->sin6_port, &s6->sin6_addr,
					   16);
	}
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	return (size_t)shash_bytes((uint64_t)AF_INET << 16 | s4->sin_port, &s4->sin_addr, 4);
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	const struct sockaddr_in *x = (const struct sockaddr_in *)a;
	const struct sockaddr_in *y = (const struct sockaddr_in *)b;
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

static struct pflow **flow_slot(struct plistener *l, const struct sockaddr_storage *ss)
{
	if (!l->n_buckets)
		return NULL;
	struct pflow **pf = &l->buckets[sa_hash(ss) & (l->n_buckets - 1)];
	while (*pf && !sa_equal(&(*pf)->client, ss))
		pf = &(*pf)->hnext;
	return pf;
}

/* Keeps chains short: at most one flow per bucket on average. */
static int flow_table_grow(struct plistener *l)
{
	if (l->n_flows < l->n_buckets)
		return 0;
	size_t nb = l->n_buckets ? l->n_buckets * 2 : 16;
	struct pflow **b = calloc(nb, sizeof(*b));
	if (!b)
		return l->n_buckets ? 0 : -ENOMEM; /* longer chains beat dropping */
	for (size_t i = 0; i < l->n_buckets; i++)
		for (struct pflow *f = l->buckets[i], *next; f; f = next) {
			next = f->hnext;
			size_t k = sa_hash(&f->client) & (nb - 1);
			f->hnext = b[k];
			b[k] = f;
		}
	free(l->buckets);
	l->buckets = b;
	l->n_buckets = nb;
	return 0;
}

static void on_flow_closed(uv_handle_t *h)
{
	struct pflow *f = h->data;
	struct proxy *p = f->port->p;
	pport_put(f->port);
	free(f);
	proxy_handle_closed(p);
}

static void flow_close(struct pflow *f)
{
	if (f->closing)
		return;
	struct plistener *l = f->l;
	struct proxy *p = l->p;
	f->closing = true;
	struct pflow **pf = flow_slot(l, &f->client);
	if (pf && *pf == f)
		*pf = f->hnext;
	l->n_flows--;
	dlist_del(&f->port_link);
	proxy_ev_cancel(&f->ev);
	close(f->fd); /* leaves the epoll set with it */
	/* Freed after any epoll batch that may still name it. */
	uv_close((uv_handle_t *)&f->timer, on_flow_closed);
	p->n_flows--;
	pport_active_add(f->port, -1);
}

void udp_listener_flows_close(struct plistener *l)
{
	for (size_t i = 0; i < l->n_buckets; i++)
		while (l->buckets[i])
			flow_close(l->buckets[i]);
}

void udp_port_flows_prune(struct pport *pp)
{
	for (struct dlist *n = pp->flows.next, *next; n != &pp->flows; n = next) {
		next = n->next;
		struct pflow *f = (struct pflow *)((char *)n - offsetof(struct pflow, port_link));
		if (!pp->eps || balance_find(pp->eps->ep, pp->eps->n, &f->ep) < 0)
			flow_close(f);
	}
}

static void endpoint_failed(struct pflow *f, int err)
{
	struct pport *pp = f->port;
	unsigned skipped;
	pp->st.endpoint_failures++;
	if (pport_log_allowed(pp, &skipped)) {
		char ep[64];
		proxy_endpoint_format(&f->ep, ep, sizeof(ep));
		log_warn("proxy: Service %s/%s port %u/UDP: endpoint %s: %s; its flow is closed, "
			 "the next datagram picks another%s",
			 pp->ns, pp->name, pp->port, ep, strerror(-err), SKIPPED(skipped));
	}
	if (pp->affinity_ms)
		balance_forget(&pp->bal, &f->client_ip);
}

static void flow_reply(struct pflow *f, size_t len)
{
	struct plistener *l = f->l;
	struct iovec iov = {.iov_base = l->p->udp_buf, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {
	    .msg_name = &f->client, .msg_namelen = f->clen, .msg_iov = &iov, .msg_iovlen = 1};
	if (f->have_local) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		struct cmsghdr *cm = (struct cmsghdr *)ctl.buf;
		if (f->client.ss_family == AF_INET) {
			mh.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
			memcpy(CMSG_DATA(cm), &f->local.v4, sizeof(f->local.v4));
		} else {
			mh.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
			cm->cmsg_level = IPPROTO_IPV6;
			cm->cmsg_type = IPV6_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
			memcpy(CMSG_DATA(cm), &f->local.v6, sizeof(f->local.v6));
		}
	}
	/* A full send buffer drops the reply, as the network would. */
	if (sendmsg(l->fd, &mh, MSG_DONTWAIT) >= 0)
		f->port->st.bytes_out += len;
}

static void flow_read(struct pflow *f)
{
	for (int i = 0; i < RECV_BATCH; i++) {
		ssize_t n = recv(f->fd, f->l->p->udp_buf, UDP_MAX, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return; /* the next datagram's edge resumes */
			/* ICMP port unreachable from the endpoint, and the like. */
			endpoint_failed(f, -errno);
			flow_close(f);
			return;
		}
		f->last_ms = uv_now(f->l->p->loop);
		flow_reply(f, (size_t)n);
	}
	/* Budget spent: no new edge may come for what is queued already. */
	proxy_ev_ready(f->l->p, &f->ev);
}

#define FLOW_OF(e) ((struct pflow *)((char *)(e)-offsetof(struct pflow, ev)))

static void on_flow_event(struct pev *e, uint32_t events)
{
	(void)events; /* errors show on recv */
	if (!FLOW_OF(e)->closing)
		flow_read(FLOW_OF(e));
}

static void on_flow_resume(struct pev *e)
{
	if (!FLOW_OF(e)->closing)
		flow_read(FLOW_OF(e));
}

static void on_flow_timer(uv_timer_t *t)
{
	struct pflow *f = t->data;
	struct proxy *p = f->l->p;
	uint64_t idle = uv_now(p->loop) - f->last_ms;
	/* Activity only stamps last_ms; the timer checks it when due, which
	 * spares a timer update per datagram. */
	if (idle >= p->cfg.udp_timeout_ms)
		flow_close(f);
	else
		uv_timer_start(&f->timer, on_flow_timer, p->cfg.udp_timeout_ms - idle, 0);
}

static void local_from_cmsg(struct pflow *f, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			f->local.v4.ipi_spec_dst = pi.ipi_addr;
			f->local.v4.ipi_ifindex = 0;
			f->have_local = true;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			memcpy(&f->local.v6, CMSG_DATA(cm), sizeof(f->local.v6));
			f->have_local = true;
		}
	}
}

/* Opens a flow for a datagram from `from`, or returns NULL (counted). */
static struct pflow *flow_open(struct plistener *l, const struct sockaddr_storage *from,
			       socklen_t flen, struct msghdr *mh)
{
	struct proxy *p = l->p;
	struct pport *pp = l->port;
	unsigned skipped;
	if (p->n_flows >= p->cfg.max_flows) {
		pp->st.over_limit++;
		if (proxy_cap_log_allowed(p, &skipped))
			log_warn(
			    "proxy: %u UDP flows open, the --proxy-max-flows limit: new flows' "
			    "datagrams are dropped%s",
			    p->n_flows, SKIPPED(skipped));
		return NULL;
	}
	if (!pp->eps || pp->eps->n == 0) {
		pp->st.no_endpoints++;
		if (pport_log_allowed(pp, &skipped))
			log_info("proxy: Service %s/%s port %u/UDP has no ready endpoint; datagram "
				 "dropped%s",
				 pp->ns, pp->name, pp->port, SKIPPED(skipped));
		return NULL;
	}
	struct pflow *f = calloc(1, sizeof(*f));
	if (!f || flow_table_grow(l) < 0) {
		free(f);
		return NULL;
	}
	memcpy(&f->client, from, flen);
	f->clen = flen;
	f->client_ip.family = (uint8_t)from->ss_family;
	if (from->ss_family == AF_INET6)
		memcpy(f->client_ip.bytes, &((const struct sockaddr_in6 *)from)->sin6_addr, 16);
	else
		memcpy(f->client_ip.bytes, &((const struct sockaddr_in *)from)->sin_addr, 4);
	size_t i = balance_pick(&pp->bal, pp->eps->ep, pp->eps->n, &f->client_ip, pp->affinity_ms,
				uv_now(p->loop));
	f->ep = pp->eps->ep[i];
	struct sockaddr_storage ss;
	socklen_t sl = proxy_endpoint_sockaddr(&f->ep, &ss);
	f->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	f->ev.on_event = on_flow_event;
	f->ev.on_resume = on_flow_resume;
	dlist_init(&f->ev.ready);
	if (f->fd < 0 || connect(f->fd, (struct sockaddr *)&ss, sl) < 0 ||
	    proxy_ev_add(p, f->fd, EPOLLIN, &f->ev) < 0) {
		if (proxy_cap_log_allowed(p, &skipped))
			log_warn("proxy: cannot open a UDP socket to an endpoint (%s); datagram "
				 "dropped%s",
				 strerror(errno), SKIPPED(skipped));
		if (f->fd >= 0)
			close(f->fd);
		free(f);
		return NULL;
	}
	uv_timer_init(p->loop, &f->timer);
	p->handles++;
	f->timer.data = f;
	f->l = l;
	f->port = pp;
	pp->refs++;
	if (l->wildcard)
		local_from_cmsg(f, mh);
	struct pflow **slot = &l->buckets[sa_hash(&f->client) & (l->n_buckets - 1)];
	f->hnext = *slot;
	*slot = f;
	l->n_flows++;
	dlist_add(&pp->flows, &f->port_link);
	p->n_flows++;
	pp->st.connections++;
	pport_active_add(pp, 1);
	f->last_ms = uv_now(p->loop);
	uv_timer_start(&f->timer, on_flow_timer, p->cfg.udp_timeout_ms, 0);
	return f;
}

void udp_listener_read(struct plistener *l)
{
	struct proxy *p = l->p;
	if (!p->udp_buf && !(p->udp_buf = malloc(UDP_MAX)))
		return;
	for (int i = 0; i < RECV_BATCH; i++) {
		struct sockaddr_storage from;
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + 64];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = p->udp_buf, .iov_len = UDP_MAX};
		struct msghdr mh = {.msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = l->wildcard ? ctl.buf : NULL,
				    .msg_controllen = l->wildcard ? sizeof(ctl.buf) : 0};
		ssize_t n = recvmsg(l->fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		struct pflow **slot = flow_slot(l, &from);
		struct pflow *f = slot ? *slot : NULL;
		/* A refused endpoint shows as an error on send; a new flow
		 * picks the next endpoint, once per endpoint at most. */
		size_t tries = l->port->eps ? l->port->eps->n : 0;
		for (;;) {
			if (!f && !(f = flow_open(l, &from, mh.msg_namelen, &mh)))
				break;
			if (send(f->fd, p->udp_buf, (size_t)n, MSG_DONTWAIT) >= 0) {
				f->port->st.bytes_in += (uint64_t)n;
				f->last_ms = uv_now(p->loop);
				break;
			}
			if (errno != ECONNREFUSED)
				break;
			endpoint_failed(f, -errno);
			flow_close(f);
			f = NULL;
			if (tries-- <= 1)
				break;
		}
	}
}
