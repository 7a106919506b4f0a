/* The datapath's core: starting and stopping it, the helpers its files share
 * (addresses, logs that cannot flood) and the table of Service ports with its
 * counters. Applying a view is apply.c, listeners listeners.c, the epoll set
 * events.c, the CHAOS view chaos.c, connections tcp.c, flows udp.c. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shash.h"

#define LOG_INTERVAL_MS	  10000
#define PROXY_DEFAULT_CAP 16384

/* ---- small helpers --------------------------------------------------------- */

void proxy_endpoint_format(const struct proxy_endpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	net_addr_format(&ep->addr, a, sizeof(a));
	snprintf(buf, len, ep->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, ep->port);
}

socklen_t proxy_addr_sockaddr(const struct net_addr *a, uint16_t port, struct sockaddr_storage *ss)
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
	return proxy_addr_sockaddr(&ep->addr, ep->port, ss);
}

bool proxy_addr_is_any(const struct net_addr *a)
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

void pport_active_add(struct pport *pp, int delta)
{
	pp->st.active += (uint64_t)(int64_t)delta;
	atomic_store_explicit(&pp->live->active, pp->st.active, memory_order_relaxed);
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

int pport_key_cmp(const char *ns, const char *name, uint8_t proto, uint16_t port,
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

struct pport *pport_find(const struct proxy *p, const char *ns, const char *name, uint8_t proto,
			 uint16_t port)
{
	size_t lo = 0, hi = p->n_ports;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = pport_key_cmp(ns, name, proto, port, p->ports[mid]);
		if (c == 0)
			return p->ports[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
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
	err = proxy_ev_open(p);
	if (err < 0) {
		free(p);
		return err;
	}
	uv_timer_init(loop, &p->retry);
	p->retry.data = p;
	p->handles = 3; /* the retry timer and the epoll set's two handles */

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
		proxy_listener_close(p->ls[i]);
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
	proxy_ev_close(p, on_retry_closed);
}

/* ---- what it does ----------------------------------------------------------- */

int proxy_port_stats_get(const struct proxy *p, const char *ns, const char *name, uint8_t proto,
			 uint16_t port, struct proxy_port_stats *out)
{
	const struct pport *pp = pport_find(p, ns, name, proto, port);
	if (!pp)
		return -ENOENT;
	*out = pp->st;
	out->listeners = pp->n_listeners;
	out->listeners_bound = pp->n_bound;
	return 0;
}

void proxy_port_foreach(const struct proxy *p, proxy_port_cb cb, void *arg)
{
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct pport *pp = p->ports[i];
		struct proxy_port_stats st = pp->st;
		st.listeners = pp->n_listeners;
		st.listeners_bound = pp->n_bound;
		cb(arg, pp->ns, pp->name, pp->port_name ? pp->port_name : "", pp->proto, pp->port,
		   &st);
	}
}
