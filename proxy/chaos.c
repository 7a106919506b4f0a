/* The CHAOS live view: what `dig CH TXT <svc>.<ns>.svc.<zone>` shows of the
 * datapath. The control thread publishes each port's state into atomics and
 * builds an immutable index per apply; DNS workers read both on the query
 * path (proxy_chaos_live) without a lock. */
#include "proxy/datapath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "wire/dname.h"
#include "wire/wire.h"

/* ---- the control thread: publishing ------------------------------------------ */

void plive_put(struct plive *lv)
{
	if (lv && --lv->refs == 0)
		free(lv);
}

/* Publishes a port's listener state to the CHAOS view. */
void pport_live_listeners(struct pport *pp)
{
	atomic_store_explicit(&pp->live->n_listeners, pp->n_listeners, memory_order_relaxed);
	atomic_store_explicit(&pp->live->n_bound, pp->n_bound, memory_order_relaxed);
	atomic_store_explicit(&pp->live->dns_served, pp->dns_served, memory_order_relaxed);
	atomic_store_explicit(&pp->live->err, pp->err, memory_order_relaxed);
}

void live_index_free(struct live_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_ports; i++)
		plive_put(ix->ports[i].live);
	free(ix);
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

void proxy_live_publish(struct proxy *p)
{
	for (size_t i = 0; i < p->n_ports; i++)
		pport_live_listeners(p->ports[i]);
	struct live_index *ix = live_index_build(p);
	if (!ix) {
		log_error("proxy: out of memory indexing the CHAOS view; it shows the previous "
			  "Services");
		return;
	}
	if (p->live_cur) {
		p->live_cur->next = p->live_old;
		p->live_old = p->live_cur;
	}
	p->live_cur = ix;
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
	size_t off;
	if (!ix || !(off = dname_service_labels(key, keylen, &name, &l1, &ns, &l2)))
		return 0;
	/* An imported Service (clusterset.local) has no datapath here. */
	static const uint8_t clusterset[] = "\12clusterset\5local";
	if (keylen - off == sizeof(clusterset) && memcmp(key + off, clusterset, keylen - off) == 0)
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
		size_t rr = wire_put_ch_txt(out + n, cap - n, line, ll);
		if (!rr)
			break; /* what fits: the mapping lines above are complete */
		n += rr;
		(*n_rr)++;
	}
	return n;
}
