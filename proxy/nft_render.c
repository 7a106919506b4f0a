/* One Service rendered to what the nftables table holds for it: per port and
 * address family a chain that picks an endpoint, a chain per endpoint that
 * DNATs to it, a chain for the NodePort, affinity sets, and the map elements
 * that lead there. Names carry a hash of the contents (FNV-1a: stable across
 * runs, which a restart relies on to find its rules unchanged). */
#include "proxy/nft_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Room for a readable suffix ("ns/name/tcp/80"): chain names stop at 255. */
#define ID_MAX 200

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull; /* a separator: "a","bc" != "ab","c" */
}

#define FNV_INIT 0xcbf29ce484222325ull

static const char *proto_kw(uint8_t proto)
{
	return proto == PROTO_UDP ? "udp" : proto == PROTO_SCTP ? "sctp" : "tcp";
}

void nft_obj_drop_contents(struct nft_obj *o)
{
	for (size_t i = 0; i < o->n_rules; i++)
		for (size_t k = 0; k < o->rules[i].n; k++)
			free(o->rules[i].s[k].ref);
	free(o->rules);
	o->rules = NULL;
	o->n_rules = 0;
}

void nft_rec_clear(struct nft_rec *r)
{
	for (size_t i = 0; i < r->n_objs; i++) {
		free(r->objs[i].name);
		nft_obj_drop_contents(&r->objs[i]);
	}
	for (size_t i = 0; i < r->n_elems; i++) {
		free(r->elems[i].key);
		free(r->elems[i].verdict);
	}
	free(r->objs);
	free(r->elems);
	free(r->svc);
	memset(r, 0, sizeof(*r));
}

static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;
	return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vfmt(f, ap);
	va_end(ap);
	return s;
}

/* A new object named `name` (taken, even on failure) in *out; *out is NULL
 * when the record has it already (two ports sharing it). 0 or -ENOMEM. */
static int add_obj(struct nft_rec *r, char *name, uint8_t family, struct nft_obj **out)
{
	*out = NULL;
	if (!name)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_objs; i++)
		if (strcmp(r->objs[i].name, name) == 0) {
			free(name);
			return 0;
		}
	if (r->n_objs == r->cap_objs) {
		size_t cap = r->cap_objs ? r->cap_objs * 2 : 8;
		struct nft_obj *n = realloc(r->objs, cap * sizeof(*n));
		if (!n) {
			free(name);
			return -ENOMEM;
		}
		r->objs = n;
		r->cap_objs = cap;
	}
	*out = &r->objs[r->n_objs++];
	**out = (struct nft_obj){.name = name, .family = family};
	return 0;
}

/* A new empty rule at the end of chain o; NULL when out of memory. */
static struct nft_rule *add_rule(struct nft_obj *o)
{
	struct nft_rule *n = realloc(o->rules, (o->n_rules + 1) * sizeof(*n));
	if (!n)
		return NULL;
	o->rules = n;
	n = &o->rules[o->n_rules++];
	memset(n, 0, sizeof(*n));
	return n;
}

/* Appends a step; ref is copied. False when out of memory. */
static bool step(struct nft_rule *r, uint8_t kind, const char *ref, const struct net_addr *addr,
		 uint8_t proto, uint16_t port, uint32_t n)
{
	if (!r || r->n == NFT_RULE_STEPS)
		return false;
	struct nft_step *s = &r->s[r->n];
	*s = (struct nft_step){.kind = kind, .proto = proto, .port = port, .n = n};
	if (addr)
		s->addr = *addr;
	if (ref && !(s->ref = strdup(ref)))
		return false;
	r->n++;
	return true;
}

/* Takes key and verdict (even on failure); verdict NULL for a set. */
static int add_elem(struct nft_rec *r, unsigned map, char *key, char *verdict, bool want_verdict)
{
	if (!key || (want_verdict && !verdict))
		goto oom;
	for (size_t i = 0; i < r->n_elems; i++)
		if (r->elems[i].map == map && strcmp(r->elems[i].key, key) == 0) {
			free(key);
			free(verdict);
			return 0; /* two ports or families asking for one element */
		}
	if (r->n_elems == r->cap_elems) {
		size_t cap = r->cap_elems ? r->cap_elems * 2 : 8;
		struct nft_elem *n = realloc(r->elems, cap * sizeof(*n));
		if (!n)
			goto oom;
		r->elems = n;
		r->cap_elems = cap;
	}
	r->elems[r->n_elems++] =
	    (struct nft_elem){.map = (uint8_t)map, .key = key, .verdict = verdict};
	return 0;
oom:
	free(key);
	free(verdict);
	return -ENOMEM;
}

/* One Service port in one address family. */
struct port_fam {
	const struct view_service *vs;
	size_t idx;
	const struct net_addr *cip;
	char id[ID_MAX + 1]; /* ns/name/proto/port, "/v6" for IPv6 */
	uint32_t affinity_s; /* 0: none */
	bool node_port;
	const char *node; /* this node's name, or NULL */
};

static bool on_this_node(const struct port_fam *pf, const struct view_endpoint *ep)
{
	return pf->node && ep->node_name && strcmp(ep->node_name, pf->node) == 0;
}

/* The endpoints the port forwards to (local: only those on this node): the
 * ready ones of the family; when none is ready, those still serving while
 * terminating (as kube-proxy does). */
static size_t pick_endpoints(const struct port_fam *pf, bool local,
			     const struct view_endpoint **out)
{
	const struct view_service *vs = pf->vs;
	size_t n = 0;
	for (int pass = 0; pass < 2 && n == 0; pass++)
		for (size_t e = 0; e < vs->n_eps; e++) {
			const struct view_endpoint *ep = &vs->eps[e];
			if (!ep->target_ports || !ep->target_ports[pf->idx] ||
			    ep->addr.family != pf->cip->family || (local && !on_this_node(pf, ep)))
				continue;
			bool take =
			    pass == 0 ? ep->ready : (!ep->ready && ep->serving && ep->terminating);
			if (take)
				out[n++] = ep;
		}
	return n;
}

/* The chain (and affinity set) of one endpoint: *sep gets the chain's name,
 * *aff the set's (NULL without affinity). */
static int render_endpoint(struct nft_rec *r, const struct port_fam *pf,
			   const struct view_endpoint *ep, char **sep, char **aff)
{
	uint8_t fam = (uint8_t)pf->cip->family;
	uint8_t proto = pf->vs->svc->ports[pf->idx].proto;
	uint16_t port = ep->target_ports[pf->idx];
	char a[64], dst[80], tag[96];
	net_addr_format(&ep->addr, a, sizeof(a));
	snprintf(dst, sizeof(dst), fam == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
	snprintf(tag, sizeof(tag), "%s/%u", dst, pf->affinity_s);
	uint64_t h = fnv(fnv(FNV_INIT, pf->id), tag);
	*sep = fmt("sep-%016llx-%s", (unsigned long long)h, pf->id);
	*aff = NULL;
	struct nft_obj *o = NULL;
	if (pf->affinity_s) {
		*aff = fmt("aff-%016llx", (unsigned long long)h);
		if (!*aff || add_obj(r, strdup(*aff), fam, &o) < 0)
			return -ENOMEM;
		if (o) {
			o->is_set = true;
			o->timeout_s = pf->affinity_s;
		}
	}
	if (!*sep || add_obj(r, strdup(*sep), fam, &o) < 0)
		return -ENOMEM;
	if (!o)
		return 0;
	if (*aff && !step(add_rule(o), NS_SADDR_UPDATE, *aff, NULL, 0, 0, 0))
		return -ENOMEM;
	/* A Pod reaching its own Service is masqueraded: else the reply would go
	 * straight back from its own address and never be un-DNATed. */
	struct nft_rule *rl = add_rule(o);
	if (!step(rl, NS_SADDR_EQ, NULL, &ep->addr, 0, 0, 0) ||
	    !step(rl, NS_JUMP, "mark-for-masquerade", NULL, 0, 0, 0))
		return -ENOMEM;
	rl = add_rule(o);
	if (!step(rl, NS_L4PROTO_EQ, NULL, NULL, proto, 0, 0) ||
	    !step(rl, NS_DNAT, NULL, &ep->addr, 0, port, 0))
		return -ENOMEM;
	if (proto == PROTO_UDP) {
		o->udp = true;
		o->ep = (struct conntrack_target){.addr = ep->addr, .port = port};
	}
	return 0;
}

/* The Service chain: affinity first, then one endpoint at random per
 * connection: endpoint k of n is taken with probability 1/(n-k) when none
 * before it was, which is 1/n for each. kube-proxy draws once into a verdict
 * map instead; a map per Service chain costs the kernel a walk over every
 * set of the table each time one is created or named (its sets are a list),
 * which makes a full sync quadratic, and a map shared by every chain is
 * walked whole for each chain that uses it when the table is validated.
 * The cascade costs a rule per endpoint skipped, for the first packet of a
 * connection only (NAT chains see no other). */
static int service_chain(struct nft_obj *o, char **affs, char **seps, size_t n)
{
	for (size_t i = 0; affs && i < n; i++) {
		struct nft_rule *rl = add_rule(o);
		if (!step(rl, NS_SADDR_IN, affs[i], NULL, 0, 0, 0) ||
		    !step(rl, NS_GOTO, seps[i], NULL, 0, 0, 0))
			return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		struct nft_rule *rl = add_rule(o);
		if ((k + 1 < n && !step(rl, NS_NUMGEN_ZERO, NULL, NULL, 0, 0, (uint32_t)(n - k))) ||
		    !step(rl, NS_GOTO, seps[k], NULL, 0, 0, 0))
			return -ENOMEM;
	}
	return 0;
}

static char *addr_key(const struct net_addr *addr, const struct model_svc_port *sp)
{
	char a[64];
	net_addr_format(addr, a, sizeof(a));
	return fmt("%s . %u . %u", a, sp->proto, sp->port);
}

static char *cip_key(const struct port_fam *pf)
{
	return addr_key(pf->cip, &pf->vs->svc->ports[pf->idx]);
}

static bool has_ext_ips(const struct port_fam *pf)
{
	for (size_t i = 0; i < pf->vs->svc->n_ext_ips; i++)
		if (pf->vs->svc->ext_ips[i].family == pf->cip->family)
			return true;
	return false;
}

/* The chain traffic from outside takes (NodePort, externalIPs, LoadBalancer
 * ingress) and the map elements that lead there. With the Cluster policy it
 * is masqueraded, as kube-proxy does by default: the endpoint may be on
 * another node, and its reply must come back through this one. With Local
 * (lsvc: the chain over this node's endpoints, NULL when it has none) it
 * keeps its source and stays on the node, or is dropped; the node's own
 * traffic still goes to every endpoint, masqueraded. */
static int render_external(struct nft_rec *r, const struct port_fam *pf, const char *svc,
			   const char *lsvc)
{
	const struct model_service *s = pf->vs->svc;
	const struct model_svc_port *sp = &s->ports[pf->idx];
	bool v6 = pf->cip->family == AF_INET6;
	/* The name hashes the rules as nft lists them: stable across versions. */
	char *text;
	if (s->ext_policy_local) {
		char last[256];
		snprintf(last, sizeof(last), lsvc ? "goto %s" : "drop", lsvc);
		text = fmt("fib saddr type local jump mark-for-masquerade\n"
			   "fib saddr type local goto %s\n%s",
			   svc, last);
	} else {
		text = fmt("jump mark-for-masquerade\ngoto %s", svc);
	}
	if (!text)
		return -ENOMEM;
	uint64_t he = fnv(fnv(FNV_INIT, "ext"), text);
	free(text);
	char *ext = fmt("ext-%016llx-%s", (unsigned long long)he, pf->id);
	struct nft_obj *o = NULL;
	int ret = ext ? add_obj(r, strdup(ext), (uint8_t)pf->cip->family, &o) : -ENOMEM;
	if (ret == 0 && o) {
		uint8_t local = s->ext_policy_local ? NS_FIB_SADDR_LOCAL : 0;
		struct nft_rule *rl = add_rule(o);
		if (local && !step(rl, local, NULL, NULL, 0, 0, 0))
			ret = -ENOMEM;
		if (!step(rl, NS_JUMP, "mark-for-masquerade", NULL, 0, 0, 0))
			ret = -ENOMEM;
		rl = add_rule(o);
		if (local && !step(rl, local, NULL, NULL, 0, 0, 0))
			ret = -ENOMEM;
		if (!step(rl, NS_GOTO, svc, NULL, 0, 0, 0))
			ret = -ENOMEM;
		if (local && !step(add_rule(o), lsvc ? NS_GOTO : NS_DROP, lsvc, NULL, 0, 0, 0))
			ret = -ENOMEM;
	}
	if (ret == 0 && pf->node_port)
		ret = add_elem(r, v6 ? NM_NP6 : NM_NP4, fmt("%u . %u", sp->proto, sp->node_port),
			       ext ? fmt("goto %s", ext) : NULL, true);
	for (size_t i = 0; i < s->n_ext_ips && ret == 0; i++)
		if (s->ext_ips[i].family == pf->cip->family)
			ret = add_elem(r, v6 ? NM_SVC6 : NM_SVC4, addr_key(&s->ext_ips[i], sp),
				       ext ? fmt("goto %s", ext) : NULL, true);
	free(ext);
	return ret;
}

static int render_no_endpoints(struct nft_rec *r, const struct port_fam *pf)
{
	const struct model_svc_port *sp = &pf->vs->svc->ports[pf->idx];
	bool v6 = pf->cip->family == AF_INET6;
	int ret =
	    add_elem(r, v6 ? NM_NOEP6 : NM_NOEP4, cip_key(pf), strdup("goto reject-chain"), true);
	for (size_t i = 0; i < pf->vs->svc->n_ext_ips && ret == 0; i++)
		if (pf->vs->svc->ext_ips[i].family == pf->cip->family)
			ret = add_elem(r, v6 ? NM_NOEP6 : NM_NOEP4,
				       addr_key(&pf->vs->svc->ext_ips[i], sp),
				       strdup("goto reject-chain"), true);
	if (ret == 0 && pf->node_port)
		ret = add_elem(r, NM_NPNOEP, fmt("%u . %u", sp->proto, sp->node_port),
			       strdup("goto reject-chain"), true);
	return ret;
}

/* The Service chain over eps[0..n) (n > 0) and its endpoint map; *svc gets
 * the chain's name. */
static int render_svc_chain(struct nft_rec *r, const struct port_fam *pf,
			    const struct view_endpoint **eps, size_t n, char **svc)
{
	char **seps = calloc(n, sizeof(*seps));
	char **affs = calloc(n, sizeof(*affs));
	struct nft_obj *o = NULL;
	uint8_t fam = (uint8_t)pf->cip->family;
	int ret = -ENOMEM;
	*svc = NULL;
	if (!seps || !affs)
		goto out;
	/* "cascade": the chains of older versions, which led to a map, differ. */
	uint64_t h = fnv(fnv(FNV_INIT, "cascade"), pf->id);
	for (size_t i = 0; i < n; i++) {
		if (render_endpoint(r, pf, eps[i], &seps[i], &affs[i]) < 0)
			goto out;
		h = fnv(h, seps[i]);
	}
	*svc = fmt("svc-%016llx-%s", (unsigned long long)h, pf->id);
	if (!*svc || add_obj(r, strdup(*svc), fam, &o) < 0)
		goto out;
	ret = o ? service_chain(o, pf->affinity_s ? affs : NULL, seps, n) : 0;
out:
	for (size_t i = 0; seps && affs && i < n; i++) {
		free(seps[i]);
		free(affs[i]);
	}
	free(seps);
	free(affs);
	if (ret < 0) {
		free(*svc);
		*svc = NULL;
	}
	return ret;
}

/* internalTrafficPolicy Local sends the ClusterIP to this node's endpoints
 * (dropped when it has none), externalTrafficPolicy Local the traffic from
 * outside; both need the chain over the local endpoints. */
static int render_port_fam(struct nft_rec *r, struct port_fam *pf)
{
	const struct model_service *s = pf->vs->svc;
	bool v6 = pf->cip->family == AF_INET6;
	bool external = pf->node_port || has_ext_ips(pf);
	const struct view_endpoint **eps = calloc(pf->vs->n_eps + 1, sizeof(*eps));
	char *svc = NULL, *lsvc = NULL;
	int ret = -ENOMEM;
	if (!eps)
		goto out;
	size_t n = pick_endpoints(pf, false, eps);
	if (n == 0) {
		ret = render_no_endpoints(r, pf);
		goto out;
	}
	if ((ret = render_svc_chain(r, pf, eps, n, &svc)) < 0)
		goto out;
	if (s->int_policy_local || (external && s->ext_policy_local)) {
		n = pick_endpoints(pf, true, eps);
		if (n > 0 && (ret = render_svc_chain(r, pf, eps, n, &lsvc)) < 0)
			goto out;
	}
	const char *internal = s->int_policy_local ? lsvc : svc;
	ret = add_elem(r, v6 ? NM_SVC6 : NM_SVC4, cip_key(pf),
		       internal ? fmt("goto %s", internal) : strdup("drop"), true);
	if (ret == 0 && external)
		ret = render_external(r, pf, svc, lsvc);
out:
	free(eps);
	free(svc);
	free(lsvc);
	return ret;
}

static bool forwarded(const struct model_service *s)
{
	return s->type != SVC_EXTERNAL_NAME && !s->headless && s->n_cluster_ips > 0;
}

int nft_render(const struct view_service *vs, const struct nftdp_config *cfg, struct nft_rec *out)
{
	const struct model_service *s = vs->svc;
	memset(out, 0, sizeof(*out));
	out->svc = fmt("%s/%s", s->ns, s->name);
	if (!out->svc)
		return -ENOMEM;
	if (!forwarded(s))
		return 0;
	int ret = 0;
	for (size_t c = 0; c < s->n_cluster_ips && ret == 0; c++) {
		char a[64];
		net_addr_format(&s->cluster_ips[c], a, sizeof(a));
		bool v6 = s->cluster_ips[c].family == AF_INET6;
		ret = add_elem(out, v6 ? NM_CIP6 : NM_CIP4, strdup(a), NULL, false);
		for (size_t k = 0; k < s->n_ports && ret == 0; k++) {
			const struct model_svc_port *sp = &s->ports[k];
			struct port_fam pf = {.vs = vs, .idx = k, .cip = &s->cluster_ips[c]};
			snprintf(pf.id, sizeof(pf.id), "%.80s/%.100s/%s/%u%s", s->ns, s->name,
				 proto_kw(sp->proto), sp->port, v6 ? "/v6" : "");
			if (s->affinity_client_ip)
				pf.affinity_s = s->affinity_timeout ? s->affinity_timeout : 1;
			pf.node = cfg->node_name;
			pf.node_port = (s->type == SVC_NODE_PORT || s->type == SVC_LOAD_BALANCER) &&
				       sp->node_port;
			ret = render_port_fam(out, &pf);
		}
	}
	if (ret < 0)
		nft_rec_clear(out);
	return ret;
}
