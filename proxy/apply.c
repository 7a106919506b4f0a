/* Applying a model view to the datapath: the Service ports it forwards and
 * their endpoints, diffed against what is open (listeners bound for new
 * addresses, closed for removed ones, re-pointed for the rest). The new port
 * table is prepared, every allocation it needs made, before anything changes. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "common/log.h"

#define AFFINITY_MAX_ENTRIES 65536

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
		if (net_addr_cmp(&a->ep[i].addr, &b->ep[i].addr) || a->ep[i].port != b->ep[i].port)
			return false;
	return true;
}

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
		    (proxy_addr_is_any(&d) || net_addr_cmp(&d, a) == 0))
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
		w[i].pp = pport_find(p, s->ns, s->name, sp->proto, sp->port);
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
			int c =
			    pport_key_cmp(old->ns, old->name, old->proto, old->port, table[mid]);
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

/* The listeners the ports in w[0..n) want, into wl (room for each ClusterIP
 * and a NodePort per port), with each port's listener state reset for the
 * merge that follows. Returns how many. */
static size_t wanted_listeners(struct proxy *p, struct want_port *w, size_t n,
			       struct want_listener *wl)
{
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
	return m;
}

/* The listener for wanted address x: the open one at p->ls[*j] when it is
 * that address (re-pointed to x's port), else a new one, bound now. Open
 * listeners that sort before x are unwanted and closed on the way. NULL when
 * out of memory. */
static struct plistener *listener_take(struct proxy *p, const struct want_listener *x,
				       const char *where, size_t *j)
{
	while (*j < p->n_ls && proxy_listener_key_cmp(x->proto, &x->addr, x->port, p->ls[*j]) > 0)
		proxy_listener_close(p->ls[(*j)++]);
	struct plistener *l;
	if (*j < p->n_ls && proxy_listener_key_cmp(x->proto, &x->addr, x->port, p->ls[*j]) == 0) {
		l = p->ls[(*j)++];
		if (l->port != x->pp) {
			if (l->proto == PROTO_UDP)
				udp_listener_flows_close(l);
			pport_put(l->port);
			l->port = x->pp;
			x->pp->refs++;
		}
		l->node_port = x->node_port;
		return l;
	}
	l = proxy_listener_new(p, x->proto, &x->addr, x->port, x->node_port);
	if (!l) {
		log_error("proxy: Service %s/%s: out of memory for %s", x->pp->ns, x->pp->name,
			  where);
		return NULL;
	}
	l->port = x->pp;
	x->pp->refs++;
	int ret = proxy_listener_bind(l);
	if (ret < 0) {
		l->err = ret;
		log_warn("proxy: Service %s/%s: cannot listen on %s (%s); skipped, retried every "
			 "5 s",
			 x->pp->ns, x->pp->name, where, strerror(-ret));
	} else {
		log_debug("proxy: Service %s/%s: listening on %s", x->pp->ns, x->pp->name, where);
	}
	return l;
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
	size_t m = wanted_listeners(p, w, n, wl);
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
		proxy_listener_text(&tmp, where, sizeof(where));
		if (dns_serves(p, &x->addr, x->port)) {
			x->pp->dns_served = true;
			continue;
		}
		x->pp->n_listeners++;
		if (taken) {
			/* Two Service ports want the same address: the first keeps it. */
			if (!x->pp->had_conflict)
				log_warn("proxy: Service %s/%s: %s is already Service %s/%s's; "
					 "not forwarded",
					 x->pp->ns, x->pp->name, where, o->pp->ns, o->pp->name);
			x->pp->conflict = true;
			if (!x->pp->err)
				x->pp->err = -EADDRINUSE;
			continue;
		}
		struct plistener *l = listener_take(p, x, where, &j);
		if (!l)
			continue;
		ls[nl++] = l;
		if (l->fd >= 0)
			x->pp->n_bound++;
		else if (!x->pp->err)
			x->pp->err = l->err;
	}
	while (j < p->n_ls)
		proxy_listener_close(p->ls[j++]);
	free(p->ls);
	p->ls = ls;
	p->n_ls = nl;
	free(wl);
	return 0;
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
	proxy_live_publish(p);
	proxy_retry_schedule(p);
	return ret;
}
