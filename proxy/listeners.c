/* The datapath's listeners: a socket per Service port address (ClusterIP:port,
 * NodePort), bound with IP_FREEBIND, and the timer that binds again the ones
 * that failed and resumes the ones paused for lack of descriptors. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/log.h"

#define RETRY_BIND_MS	5000
#define RETRY_PAUSED_MS 100

int proxy_listener_key_cmp(uint8_t proto, const struct net_addr *a, uint16_t port,
			   const struct plistener *l)
{
	if (proto != l->proto)
		return proto < l->proto ? -1 : 1;
	int c = net_addr_cmp(a, &l->addr);
	if (c)
		return c;
	return port == l->lport ? 0 : port < l->lport ? -1 : 1;
}

void proxy_listener_text(const struct plistener *l, char *buf, size_t len)
{
	struct proxy_endpoint ep = {.addr = l->addr, .port = l->lport};
	char a[64];
	proxy_endpoint_format(&ep, a, sizeof(a));
	snprintf(buf, len, "%s/%s", a, proxy_proto_name(l->proto));
}

static void on_listener(uv_poll_t *h, int status, int events)
{
	struct plistener *l = h->data;
	(void)events;
	if (status < 0) {
		/* libuv has stopped the handle: poll again shortly. */
		char where[96];
		proxy_listener_text(l, where, sizeof(where));
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
int proxy_listener_bind(struct plistener *l)
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

struct plistener *proxy_listener_new(struct proxy *p, uint8_t proto, const struct net_addr *a,
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
	l->wildcard = proxy_addr_is_any(a);
	l->salen = proxy_addr_sockaddr(a, port, &l->sa);
	return l;
}

void proxy_listener_close(struct plistener *l)
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
		if (proxy_listener_bind(l) == 0) {
			char where[96];
			proxy_listener_text(l, where, sizeof(where));
			log_info("proxy: Service %s/%s: now listening on %s", l->port->ns,
				 l->port->name, where);
			l->port->n_bound++;
			if (l->port->n_bound == l->port->n_listeners)
				l->port->err = 0;
			pport_live_listeners(l->port);
		}
	}
	proxy_retry_schedule(p);
}

void proxy_retry_schedule(struct proxy *p)
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
	proxy_retry_schedule(l->p);
}
