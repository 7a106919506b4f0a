/* The cluster zone: turns the model view into the records of the Kubernetes
 * DNS-Based Service Discovery specification (schema 1.1.0), the short form
 * `<svc>.<ns>.svc.`, the reverse zones and the CHAOS port-mapping view. */
#include "zones/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "wire/dname.h"

#define SCHEMA_VERSION "1.1.0"

/* Joins `label` in front of the wire name `suffix`. Returns the length or -EINVAL. */
static int prepend(uint8_t *out, const char *label, size_t ll, const uint8_t *suffix)
{
	size_t sl = dname_len(suffix);
	if (ll == 0 || ll > DNAME_LABEL_MAX || 1 + ll + sl > DNAME_MAX)
		return -EINVAL;
	out[0] = (uint8_t)ll;
	for (size_t i = 0; i < ll; i++) {
		uint8_t c = (uint8_t)label[i];
		out[1 + i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
	}
	memcpy(out + 1 + ll, suffix, sl);
	return (int)(1 + ll + sl);
}

static int prepend_str(uint8_t *out, const char *label, const uint8_t *suffix)
{
	return prepend(out, label, strlen(label), suffix);
}

static int add_addr(struct zb *b, struct zb_zone *z, const uint8_t *owner,
		    const struct net_addr *a, uint32_t ttl)
{
	if (a->family == AF_INET)
		return zb_rr_add(b, z, owner, DNS_T_A, ttl, a->bytes, 4);
	return zb_rr_add(b, z, owner, DNS_T_AAAA, ttl, a->bytes, 16);
}

/* The reverse name of an address: d.c.b.a.in-addr.arpa or the ip6.arpa
 * nibbles, written as wire form directly (there is one per Service and per
 * endpoint of a headless Service). */
static int reverse_name(const struct net_addr *a, uint8_t *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (a->family == AF_INET) {
		for (int i = 3; i >= 0; i--) {
			unsigned v = a->bytes[i];
			uint8_t *lab = &out[o++];
			if (v >= 100)
				out[o++] = (uint8_t)('0' + v / 100);
			if (v >= 10)
				out[o++] = (uint8_t)('0' + v / 10 % 10);
			out[o++] = (uint8_t)('0' + v % 10);
			*lab = (uint8_t)(&out[o] - lab - 1);
		}
		memcpy(out + o, "\7in-addr\4arpa", 14);
		return (int)(o + 14);
	}
	for (int i = 15; i >= 0; i--) {
		out[o++] = 1;
		out[o++] = (uint8_t)hex[a->bytes[i] & 15];
		out[o++] = 1;
		out[o++] = (uint8_t)hex[a->bytes[i] >> 4];
	}
	memcpy(out + o, "\3ip6\4arpa", 10);
	return (int)(o + 10);
}

/* The system-assigned hostname of an endpoint without one: its address with
 * dashes, as CoreDNS writes it (10-1-2-3, 2001-db8--1). */
static void dashed_addr(const struct net_addr *a, char *out, size_t len)
{
	net_addr_format(a, out, len);
	for (char *p = out; *p; p++)
		if (*p == '.' || *p == ':')
			*p = '-';
}

static bool valid_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DNAME_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static const char *proto_label(uint8_t proto)
{
	switch (proto) {
	case PROTO_UDP:
		return "_udp";
	case PROTO_SCTP:
		return "_sctp";
	default:
		return "_tcp";
	}
}

/* An endpoint is published when ready, or always with publishNotReadyAddresses. */
static bool published(const struct model_service *s, const struct view_endpoint *e)
{
	return e->ready || s->publish_not_ready;
}

static int srv_rdata(uint8_t *rd, uint16_t prio, uint16_t weight, uint16_t port,
		     const uint8_t *target)
{
	size_t tl = dname_len(target);
	rd[0] = (uint8_t)(prio >> 8);
	rd[1] = (uint8_t)prio;
	rd[2] = (uint8_t)(weight >> 8);
	rd[3] = (uint8_t)weight;
	rd[4] = (uint8_t)(port >> 8);
	rd[5] = (uint8_t)port;
	memcpy(rd + 6, target, tl);
	return (int)(6 + tl);
}

/* Records of one Service under `svc_suffix` (the wire name `svc.<zone>` or
 * `svc.`). PTRs only for the real zone (rev != NULL). The short form
 * (`short_form`) carries the Service-level records only — addresses, CNAME and
 * the SRV records of ClusterIP Services, what `dig svc.ns.svc` asks for; the
 * per-endpoint names of headless Services live under the full zone alone. */
static int service_records(struct zb *b, struct zb_zone *z, const uint8_t *svc_suffix,
			   const struct view_service *vs, uint32_t ttl, struct zb_zone *rev4,
			   struct zb_zone *rev6, bool short_form)
{
	const struct model_service *s = vs->svc;
	uint8_t nsname[DNAME_MAX], sname[DNAME_MAX], name[DNAME_MAX], rd[DNAME_MAX + 8];
	uint8_t tmp[DNAME_MAX];
	int ret;

	if (prepend_str(nsname, s->ns, svc_suffix) < 0 || prepend_str(sname, s->name, nsname) < 0) {
		log_warn("Service %s/%s: name too long for DNS; not served", s->ns, s->name);
		return 0;
	}
	if (s->type == SVC_EXTERNAL_NAME) {
		if (!s->external_name)
			return 0;
		int l = dname_from_text(s->external_name, rd, sizeof(rd));
		if (l < 0) {
			log_warn("Service %s/%s: externalName %s is not a DNS name; not served",
				 s->ns, s->name, s->external_name);
			return 0;
		}
		return zb_rr_add(b, z, sname, DNS_T_CNAME, ttl, rd, (uint16_t)l);
	}

	if (!s->headless) {
		for (size_t i = 0; i < s->n_cluster_ips; i++) {
			if ((ret = add_addr(b, z, sname, &s->cluster_ips[i], ttl)) < 0)
				return ret;
			if (rev4 && reverse_name(&s->cluster_ips[i], name) > 0) {
				struct zb_zone *rz =
				    s->cluster_ips[i].family == AF_INET ? rev4 : rev6;
				if ((ret = zb_rr_add(b, rz, name, DNS_T_PTR, ttl, sname,
						     (uint16_t)dname_len(sname))) < 0)
					return ret;
			}
		}
		if (s->n_cluster_ips == 0)
			return 0;
		for (size_t i = 0; i < s->n_ports; i++) {
			const struct model_svc_port *p = &s->ports[i];
			if (!p->name || !p->name[0] || !valid_label(p->name))
				continue;
			char plabel[DNAME_LABEL_MAX + 2];
			snprintf(plabel, sizeof(plabel), "_%s", p->name);
			if (prepend_str(tmp, proto_label(p->proto), sname) < 0 ||
			    prepend_str(name, plabel, tmp) < 0)
				continue;
			int l = srv_rdata(rd, 0, 100, p->port, sname);
			if ((ret = zb_rr_add(b, z, name, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0 ||
			    (ret = zb_rr_add(b, z, sname, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0)
				return ret;
		}
		return 0;
	}

	/* Headless: the endpoints themselves. */
	size_t n_pub = 0;
	for (size_t e = 0; e < vs->n_eps; e++)
		n_pub += published(s, &vs->eps[e]);
	for (size_t e = 0; e < vs->n_eps; e++) {
		const struct view_endpoint *ep = &vs->eps[e];
		if (!published(s, ep))
			continue;
		char host[64];
		if (ep->hostname && valid_label(ep->hostname))
			snprintf(host, sizeof(host), "%s", ep->hostname);
		else
			dashed_addr(&ep->addr, host, sizeof(host));
		uint8_t hname[DNAME_MAX];
		if (prepend_str(hname, host, sname) < 0)
			continue;
		if ((ret = add_addr(b, z, sname, &ep->addr, ttl)) < 0)
			return ret;
		if (short_form)
			continue;
		if ((ret = add_addr(b, z, hname, &ep->addr, ttl)) < 0)
			return ret;
		if (rev4 && reverse_name(&ep->addr, name) > 0) {
			struct zb_zone *rz = ep->addr.family == AF_INET ? rev4 : rev6;
			if ((ret = zb_rr_add(b, rz, name, DNS_T_PTR, ttl, hname,
					     (uint16_t)dname_len(hname))) < 0)
				return ret;
		}
		for (size_t i = 0; i < s->n_ports; i++) {
			const struct model_svc_port *p = &s->ports[i];
			uint16_t port = ep->target_ports ? ep->target_ports[i] : 0;
			if (!port || !p->name || !p->name[0] || !valid_label(p->name))
				continue;
			char plabel[DNAME_LABEL_MAX + 2];
			snprintf(plabel, sizeof(plabel), "_%s", p->name);
			if (prepend_str(tmp, proto_label(p->proto), sname) < 0 ||
			    prepend_str(name, plabel, tmp) < 0)
				continue;
			/* Equal shares of weight, as CoreDNS gives them. */
			uint16_t weight = (uint16_t)(n_pub ? (100 / n_pub ? 100 / n_pub : 1) : 100);
			int l = srv_rdata(rd, 0, weight, port, hname);
			if ((ret = zb_rr_add(b, z, name, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0 ||
			    (ret = zb_rr_add(b, z, sname, DNS_T_SRV, ttl, rd, (uint16_t)l)) < 0)
				return ret;
		}
	}
	return 0;
}

/* ---- CHAOS: the port mapping as `dig CH TXT` shows it ----------------------
 * Rendered when asked, from the snapshot's view: it is a debugging aid, and
 * prerendering it cost a quarter of the snapshot (26 MB at 100k Services). */

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
	static const uint8_t head[12] = {0xC0, 0x0C, 0, DNS_T_TXT, 0, DNS_C_CH, 0, 0, 0, 0, 0, 0};
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
	w->out[w->rr + 10] = (uint8_t)(rdlen >> 8);
	w->out[w->rr + 11] = (uint8_t)rdlen;
}

/* An endpoint as ` addr:port` (IPv6 in brackets). */
static void txt_endpoint(struct txtw *w, const struct net_addr *a, uint16_t port)
{
	txt_put(w, " ", 1);
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
				txt_endpoint(w, &ep->addr, ep->target_ports[i]);
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
	if (rest_len != 1) {
		uint8_t zone[DNAME_MAX];
		int zl = dname_from_text(s->cfg->zone, zone, sizeof(zone));
		if (zl <= 0 || (size_t)zl != rest_len || memcmp(rest, zone, rest_len) != 0)
			return 0;
	}
	size_t lo = 0, hi = v->n_svcs;
	const struct view_service *vs = NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *m = v->svcs[mid].svc;
		int c = label_cmp(ns, l2, m->ns);
		if (!c)
			c = label_cmp(name, l1, m->name);
		if (!c) {
			vs = &v->svcs[mid];
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

static int soa_rdata(uint8_t *rd, const uint8_t *mname, const uint8_t *rname, uint32_t serial,
		     uint32_t minimum)
{
	size_t l1 = dname_len(mname), l2 = dname_len(rname);
	memcpy(rd, mname, l1);
	memcpy(rd + l1, rname, l2);
	uint32_t v[5] = {serial, 7200, 1800, 86400, minimum};
	uint8_t *p = rd + l1 + l2;
	for (int i = 0; i < 5; i++) {
		p[0] = (uint8_t)(v[i] >> 24);
		p[1] = (uint8_t)(v[i] >> 16);
		p[2] = (uint8_t)(v[i] >> 8);
		p[3] = (uint8_t)v[i];
		p += 4;
	}
	return (int)(l1 + l2 + 20);
}

/* Declares a zone with an SOA and NS naming ns.dns.<zone>. */
static int zone_with_soa(struct zb *b, const uint8_t *apex, const uint8_t *mname,
			 const uint8_t *rname, uint32_t serial, uint32_t ttl, struct zb_zone **out)
{
	uint8_t rd[2 * DNAME_MAX + 20];
	int ret = zb_zone_add(b, apex, out);
	if (ret < 0)
		return ret;
	zb_zone_mark_dynamic(*out);
	int l = soa_rdata(rd, mname, rname, serial, ttl);
	if ((ret = zb_rr_add(b, *out, apex, DNS_T_SOA, ttl, rd, (uint16_t)l)) < 0)
		return ret;
	return zb_rr_add(b, *out, apex, DNS_T_NS, ttl, mname, (uint16_t)dname_len(mname));
}

int cluster_zones(struct zb *b, const struct snapshot_config *cfg, uint32_t serial,
		  struct cluster_zones *cz)
{
	uint8_t mname[DNAME_MAX], rname[DNAME_MAX], name[DNAME_MAX], tmp[DNAME_MAX];
	uint32_t ttl = cfg->ttl;
	int ret;

	if (dname_from_text(cfg->zone, cz->zone, sizeof(cz->zone)) < 0)
		return -EINVAL;
	if (prepend_str(tmp, "dns", cz->zone) < 0 || prepend_str(mname, "ns", tmp) < 0 ||
	    prepend_str(rname, "hostmaster", cz->zone) < 0 ||
	    prepend_str(cz->svc_full, "svc", cz->zone) < 0)
		return -EINVAL;
	dname_from_text("svc.", cz->svc_short, sizeof(cz->svc_short));
	cz->ttl = ttl;

	if ((ret = zone_with_soa(b, cz->zone, mname, rname, serial, ttl, &cz->z)) < 0)
		return ret;
	/* The short form is its own small zone so that its negative answers carry
	 * an SOA that is an ancestor of the question. */
	if ((ret = zone_with_soa(b, cz->svc_short, mname, rname, serial, ttl, &cz->zs)) < 0)
		return ret;
	dname_from_text("in-addr.arpa", name, sizeof(name));
	if ((ret = zone_with_soa(b, name, mname, rname, serial, ttl, &cz->rev4)) < 0)
		return ret;
	dname_from_text("ip6.arpa", name, sizeof(name));
	return zone_with_soa(b, name, mname, rname, serial, ttl, &cz->rev6);
}

bool cluster_is_ns_service(const struct model_service *s)
{
	return strcmp(s->ns, "kube-system") == 0 && strcmp(s->name, "kube-dns") == 0;
}

int cluster_base(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		 const struct cluster_zones *cz)
{
	uint8_t mname[DNAME_MAX], name[DNAME_MAX], tmp[DNAME_MAX], rd[256];
	uint32_t ttl = cz->ttl;
	int ret;

	if (prepend_str(tmp, "dns", cz->zone) < 0 || prepend_str(mname, "ns", tmp) < 0)
		return -EINVAL;
	/* Glue for the nameserver: the kube-dns Service if the cluster has one
	 * (that is the address pods use), else the address we listen on. */
	bool glued = false;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct model_service *s = v->svcs[i].svc;
		if (cluster_is_ns_service(s) && !s->headless)
			for (size_t k = 0; k < s->n_cluster_ips; k++) {
				if ((ret = add_addr(b, cz->z, mname, &s->cluster_ips[k], ttl)) < 0)
					return ret;
				glued = true;
			}
	}
	if (!glued && cfg->have_ns_addr &&
	    (ret = add_addr(b, cz->z, mname, &cfg->ns_addr, ttl)) < 0)
		return ret;

	if (prepend_str(name, "dns-version", cz->zone) < 0)
		return -EINVAL;
	rd[0] = sizeof(SCHEMA_VERSION) - 1;
	memcpy(rd + 1, SCHEMA_VERSION, sizeof(SCHEMA_VERSION) - 1);
	if ((ret = zb_rr_add(b, cz->z, name, DNS_T_TXT, ttl, rd, sizeof(SCHEMA_VERSION))) < 0)
		return ret;
	if ((ret = zb_name_add(b, cz->z, cz->svc_full)) < 0)
		return ret;
	if (prepend_str(name, "pod", cz->zone) < 0 ||
	    (ret = zb_mark_pod_root(b, cz->z, name, ttl)) < 0)
		return ret;

	for (size_t i = 0; i < v->n_namespaces; i++) {
		if (prepend_str(name, v->namespaces[i], cz->svc_full) < 0)
			continue;
		if ((ret = zb_name_add(b, cz->z, name)) < 0)
			return ret;
		if (prepend_str(name, v->namespaces[i], cz->svc_short) >= 0 &&
		    (ret = zb_name_add(b, cz->zs, name)) < 0)
			return ret;
	}

	/* CHAOS identity, as BIND, Knot and NSD answer it. */
	const char *version = "svcdns " SVCDNS_VERSION;
	const char *host = cfg->hostname ? cfg->hostname : "svcdns";
	static const char *const version_names[] = {"version.bind", "version.server"};
	static const char *const id_names[] = {"id.server", "hostname.bind"};
	for (int i = 0; i < 2; i++) {
		dname_from_text(version_names[i], name, sizeof(name));
		if ((ret = zb_chaos_txt(b, name, &version, 1)) < 0)
			return ret;
		dname_from_text(id_names[i], name, sizeof(name));
		if ((ret = zb_chaos_txt(b, name, &host, 1)) < 0)
			return ret;
	}
	return 0;
}

int cluster_service_roots(const struct cluster_zones *cz, const struct model_service *s,
			  uint8_t full[DNAME_MAX], uint8_t shortn[DNAME_MAX])
{
	uint8_t nsn[DNAME_MAX];
	if (prepend_str(nsn, s->ns, cz->svc_full) < 0 || prepend_str(full, s->name, nsn) < 0 ||
	    prepend_str(nsn, s->ns, cz->svc_short) < 0 || prepend_str(shortn, s->name, nsn) < 0)
		return -EINVAL;
	return 0;
}

int cluster_service(struct zb *b, const struct cluster_zones *cz, const struct view_service *vs)
{
	int ret;
	if ((ret = service_records(b, cz->z, cz->svc_full, vs, cz->ttl, cz->rev4, cz->rev6,
				   false)) < 0 ||
	    (ret = service_records(b, cz->zs, cz->svc_short, vs, cz->ttl, NULL, NULL, true)) < 0)
		return ret;
	return 0;
}

int cluster_records(struct zb *b, const struct snapshot_config *cfg, const struct model_view *v,
		    uint32_t serial)
{
	struct cluster_zones cz;
	int ret;
	/* Names per Service: its full and short names, a _proto and a port name
	 * under each per named port, a reverse name, and per endpoint of a
	 * headless one a name and a reverse name. An estimate: the table grows
	 * past it if need be. */
	size_t n_names = v->n_namespaces * 2;
	for (size_t i = 0; i < v->n_svcs; i++) {
		const struct model_service *s = v->svcs[i].svc;
		n_names += 3 + 4 * s->n_ports + (s->headless ? 2 * v->svcs[i].n_eps : 0);
	}
	if ((ret = zb_reserve(b, n_names)) < 0)
		return ret;
	if ((ret = cluster_zones(b, cfg, serial, &cz)) < 0 ||
	    (ret = cluster_base(b, cfg, v, &cz)) < 0)
		return ret;
	for (size_t i = 0; i < v->n_svcs; i++)
		if ((ret = cluster_service(b, &cz, &v->svcs[i])) < 0)
			return ret;
	return 0;
}
