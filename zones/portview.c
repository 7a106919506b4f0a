/* The CHAOS port view, `dig CH TXT <svc>.<ns>.svc.<zone>`: each port of a Service
 * with its target, NodePort and endpoints (of an import under clusterset.local,
 * with their clusters), rendered when asked from the view (a
 * debugging aid; prerendered it cost a quarter of the snapshot at 100k Services). */
#include "zones/snapshot.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "wire/dname.h"
#include "wire/wire.h"

/* Writes TXT records (owner: a pointer to the question, class CH, TTL 0) with
 * no allocation; text longer than 255 bytes goes on in the next
 * character-string of the same record. */
struct txtw {
	uint8_t *out;
	size_t cap, len;
	size_t rr;    /* offset of the current record */
	size_t piece; /* offset of the current character-string's length byte */
	bool full;
};

static void txt_raw(struct txtw *w, const void *p, size_t n)
{
	if (w->full || w->len + n > w->cap) {
		w->full = true;
		return;
	}
	memcpy(w->out + w->len, p, n);
	w->len += n;
}

static void txt_begin(struct txtw *w)
{
	/* owner, type, class, TTL 0, rdlength (txt_end) */
	uint8_t head[12] = {0};
	wire_wr16(head, 0xC000 | WIRE_HDR_LEN);
	wire_wr16(head + 2, DNS_T_TXT);
	wire_wr16(head + 4, DNS_C_CH);
	w->rr = w->len;
	txt_raw(w, head, sizeof(head));
	w->piece = w->len;
	txt_raw(w, "", 1);
}

static void txt_put(struct txtw *w, const char *p, size_t n)
{
	while (n && !w->full) {
		size_t have = w->len - w->piece - 1;
		if (have == 255) {
			w->out[w->piece] = 255;
			w->piece = w->len;
			txt_raw(w, "", 1);
			continue;
		}
		size_t k = 255 - have < n ? 255 - have : n;
		txt_raw(w, p, k);
		p += k;
		n -= k;
	}
}

static void txt_puts(struct txtw *w, const char *s)
{
	txt_put(w, s, strlen(s));
}

static void txt_putu(struct txtw *w, size_t v)
{
	char d[24];
	size_t i = sizeof(d);
	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	txt_put(w, d + i, sizeof(d) - i);
}

static void txt_end(struct txtw *w)
{
	if (w->full)
		return;
	w->out[w->piece] = (uint8_t)(w->len - w->piece - 1);
	size_t rdlen = w->len - w->rr - 12;
	if (rdlen > 0xFFFF) {
		w->full = true;
		return;
	}
	wire_wr16(w->out + w->rr + 10, (uint16_t)rdlen);
}

/* An endpoint as ` addr:port` (IPv6 in brackets), or ` cluster/addr:port`
 * for an imported Service's. */
static void txt_endpoint(struct txtw *w, const struct view_endpoint *ep, uint16_t port)
{
	const struct net_addr *a = &ep->addr;
	txt_put(w, " ", 1);
	if (ep->cluster) {
		txt_puts(w, ep->cluster);
		txt_put(w, "/", 1);
	}
	if (a->family == AF_INET) {
		for (int i = 0; i < 4; i++) {
			if (i)
				txt_put(w, ".", 1);
			txt_putu(w, a->bytes[i]);
		}
	} else {
		char addr[INET6_ADDRSTRLEN];
		net_addr_format(a, addr, sizeof(addr));
		txt_put(w, "[", 1);
		txt_puts(w, addr);
		txt_put(w, "]", 1);
	}
	txt_put(w, ":", 1);
	txt_putu(w, port);
}

/* One record per port: `name port/proto -> target nodePort=N endpoints=R/T
 * ready: a:p ... not-ready: a:p ...`. */
static void port_view_records(struct txtw *w, const struct view_service *vs, uint16_t *n_rr)
{
	const struct model_service *s = vs->svc;
	if (s->type == SVC_EXTERNAL_NAME || s->n_ports == 0) {
		txt_begin(w);
		if (s->type == SVC_EXTERNAL_NAME) {
			txt_puts(w, "externalName -> ");
			txt_puts(w, s->external_name ? s->external_name : "-");
		} else {
			txt_puts(w, s->headless ? "no ports (headless)" : "no ports");
		}
		txt_end(w);
		*n_rr += !w->full;
		return;
	}
	for (size_t i = 0; i < s->n_ports && !w->full; i++) {
		const struct model_svc_port *p = &s->ports[i];
		size_t total = 0, ready = 0;
		for (size_t e = 0; e < vs->n_eps; e++)
			if (vs->eps[e].target_ports && vs->eps[e].target_ports[i]) {
				total++;
				ready += vs->eps[e].ready;
			}
		txt_begin(w);
		txt_puts(w, p->name && p->name[0] ? p->name : "-");
		txt_put(w, " ", 1);
		txt_putu(w, p->port);
		txt_put(w, "/", 1);
		txt_puts(w, model_proto_name(p->proto));
		if (s->imported) {
			/* An import has no target of its own: each cluster's
			 * endpoints say which port they serve it on. */
			txt_puts(w, s->headless ? " imported Headless" : " imported ClusterSetIP");
		} else {
			txt_put(w, " -> ", 4);
			if (p->target_name)
				txt_put(w, p->target_name, strnlen(p->target_name, 31));
			else
				txt_putu(w, p->target_num ? p->target_num : p->port);
			txt_puts(w, " nodePort=");
			if (p->node_port)
				txt_putu(w, p->node_port);
			else
				txt_put(w, "-", 1);
		}
		txt_puts(w, " endpoints=");
		txt_putu(w, ready);
		txt_put(w, "/", 1);
		txt_putu(w, total);
		for (int want = 1; want >= 0; want--) {
			bool first = true;
			for (size_t e = 0; e < vs->n_eps; e++) {
				const struct view_endpoint *ep = &vs->eps[e];
				if (!ep->target_ports || !ep->target_ports[i] ||
				    ep->ready != (bool)want)
					continue;
				if (first)
					txt_puts(w, want ? " ready:" : " not-ready:");
				first = false;
				txt_endpoint(w, ep, ep->target_ports[i]);
			}
		}
		txt_end(w);
		*n_rr += !w->full;
	}
}

/* A label against a C string, in the order the view is sorted in (strcmp). */
static int label_cmp(const uint8_t *a, size_t al, const char *b)
{
	size_t bl = strlen(b);
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

size_t zone_port_view(const struct snapshot *s, const uint8_t *key, size_t keylen, uint8_t *out,
		      size_t cap, uint16_t *n_rr, bool *cut)
{
	*n_rr = 0;
	*cut = false;
	const struct model_view *v = s->view;
	if (!v || !s->cfg || keylen < 1)
		return 0;
	/* <svc>.<ns>.svc.<zone> or the short form <svc>.<ns>.svc */
	const uint8_t *name, *ns;
	size_t l1, l2, off = dname_service_labels(key, keylen, &name, &l1, &ns, &l2);
	if (!off)
		return 0;
	const uint8_t *rest = key + off;
	size_t rest_len = keylen - off;
	/* The clusterset zone's names view the imports (when it is served). */
	static const uint8_t clusterset[] = "\12clusterset\5local";
	const struct view_service *set = v->svcs;
	size_t n_set = v->n_svcs;
	if (rest_len == sizeof(clusterset) && memcmp(rest, clusterset, rest_len) == 0) {
		if (s->cfg->clusterset == SNAPSHOT_CLUSTERSET_OFF ||
		    (s->cfg->clusterset == SNAPSHOT_CLUSTERSET_AUTO && !v->multicluster))
			return 0;
		set = v->imports;
		n_set = v->n_imports;
	} else if (rest_len != 1) {
		uint8_t zone[DNAME_MAX];
		int zl = dname_from_text(s->cfg->zone, zone, sizeof(zone));
		if (zl <= 0 || (size_t)zl != rest_len || memcmp(rest, zone, rest_len) != 0)
			return 0;
	}
	size_t lo = 0, hi = n_set;
	const struct view_service *vs = NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *m = set[mid].svc;
		int c = label_cmp(ns, l2, m->ns);
		if (!c)
			c = label_cmp(name, l1, m->name);
		if (!c) {
			vs = &set[mid];
			break;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (!vs)
		return 0;
	struct txtw w = {.out = out, .cap = cap};
	port_view_records(&w, vs, n_rr);
	if (w.full) {
		*cut = true;
		*n_rr = 0;
		return 0;
	}
	return w.len;
}
