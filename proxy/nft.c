/* The kernel datapath: the nftables table svcdns owns, kept equal to the
 * snapshot's view by transactions that touch only what changed (map elements
 * re-pointed, chains added and deleted; a chain is never rewritten). */
#include "proxy/nft_impl.h"
#include "proxy/nft_nl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "common/log.h"

#define T "inet " NFTDP_TABLE

struct nftdp {
	struct nftdp_config cfg;
	struct nft_batch b; /* libnftables: the static part, at start */
	struct nft_nl *nl;  /* libnftnl: every Service's chains and elements */
	struct stab objs;   /* chain and set names in the table -> 1 (chain) or 2 (set) */
	struct stab elems;  /* "<map>|<key>" -> verdict (owned; "" in a set) */
	struct stab recs;   /* "ns/name" -> struct nft_rec * as programmed */
	uint64_t last_view; /* the id of the view applied last, 0: none */
	bool need_full;	    /* a Service was refused: compare everything next time */
	struct nft_refusals refused;
	struct nftdp_stats st;
};

/* One step of a transaction, in the order the kernel needs them: elements
 * leave before the chains they lead to; new chains are declared first, then
 * the sets and maps (whose elements lead to them), then the rules that use
 * those; old chains are emptied, then the sets and maps their rules used go,
 * then the chains those maps led to. */
enum op_kind {
	OP_DEL_ELEM = 0,
	OP_ADD_SET,
	OP_ADD_CHAIN,
	OP_ADD_ELEM,
	OP_FLUSH,
	OP_DEL_SET,
	OP_DEL_CHAIN,
	OP_N
};

struct op {
	uint8_t kind, map;
	const char *name;		   /* object name or element key (borrowed) */
	const char *body;		   /* an element's verdict (borrowed) */
	const struct nft_obj *obj;	   /* the chain or set to add (borrowed) */
	const struct conntrack_target *ct; /* a UDP endpoint's chain deleted */
};

struct plan {
	struct op *ops;
	size_t n, cap;
	bool oom;
};

static struct op *plan_add(struct plan *p, enum op_kind kind, unsigned map, const char *name,
			   const char *body)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct op *n = realloc(p->ops, cap * sizeof(*n));
		if (!n) {
			p->oom = true;
			return NULL;
		}
		p->ops = n;
		p->cap = cap;
	}
	p->ops[p->n] =
	    (struct op){.kind = (uint8_t)kind, .map = (uint8_t)map, .name = name, .body = body};
	return &p->ops[p->n++];
}

/* ---- the static part: maps, hooked chains, their rules ------------------- */

static void static_maps(struct nft_batch *b)
{
	static const char *const types[NM_COUNT] = {
	    [NM_SVC4] = "type ipv4_addr . inet_proto . inet_service : verdict",
	    [NM_SVC6] = "type ipv6_addr . inet_proto . inet_service : verdict",
	    [NM_NOEP4] = "type ipv4_addr . inet_proto . inet_service : verdict",
	    [NM_NOEP6] = "type ipv6_addr . inet_proto . inet_service : verdict",
	    [NM_NP4] = "type inet_proto . inet_service : verdict",
	    [NM_NP6] = "type inet_proto . inet_service : verdict",
	    [NM_NPNOEP] = "type inet_proto . inet_service : verdict",
	    [NM_CIP4] = "type ipv4_addr",
	    [NM_CIP6] = "type ipv6_addr",
	};
	nft_batch_add(b, "add table " T);
	for (unsigned m = 0; m < NM_COUNT; m++)
		nft_batch_add(b, "add %s " T " %s { %s ; }", nft_map_is_set(m) ? "set" : "map",
			      nft_map_names[m], types[m]);
}

/* A chain svcdns owns outright: created if missing, its rules replaced (in
 * the same transaction, so no packet sees it empty). */
static void own_chain(struct nft_batch *b, const char *name, const char *hook)
{
	if (hook)
		nft_batch_add(b, "add chain " T " %s { %s ; policy accept ; }", name, hook);
	else
		nft_batch_add(b, "add chain " T " %s", name);
	nft_batch_add(b, "flush chain " T " %s", name);
}

static void static_nodeports(struct nft_batch *b, const struct nftdp_config *c)
{
	char a[64];
	if (c->node_addr.family &&
	    !(c->node_addr.family == AF_INET && !memcmp(c->node_addr.bytes, "\0\0\0\0", 4))) {
		net_addr_format(&c->node_addr, a, sizeof(a));
		bool v6 = c->node_addr.family == AF_INET6;
		nft_batch_add(
		    b, "add rule " T " services %s daddr %s meta l4proto . th dport vmap @%s",
		    v6 ? "ip6" : "ip", a, nft_map_names[v6 ? NM_NP6 : NM_NP4]);
		nft_batch_add(b,
			      "add rule " T
			      " filter-checks ct state new %s daddr %s meta l4proto . "
			      "th dport vmap @%s",
			      v6 ? "ip6" : "ip", a, nft_map_names[NM_NPNOEP]);
		return;
	}
	/* Every local address of the node but loopback, as kube-proxy does. */
	nft_batch_add(b,
		      "add rule " T " services fib daddr type local ip daddr != 127.0.0.0/8 "
		      "meta l4proto . th dport vmap @%s",
		      nft_map_names[NM_NP4]);
	nft_batch_add(b,
		      "add rule " T " services fib daddr type local ip6 daddr != ::1 "
		      "meta l4proto . th dport vmap @%s",
		      nft_map_names[NM_NP6]);
	nft_batch_add(b,
		      "add rule " T " filter-checks ct state new fib daddr type local "
		      "meta l4proto . th dport vmap @%s",
		      nft_map_names[NM_NPNOEP]);
}

static void static_cidr_drop(struct nft_batch *b, const struct net_cidr *c, bool v6)
{
	char a[64];
	if (!c->prefix || c->base.family != (v6 ? AF_INET6 : AF_INET))
		return;
	net_addr_format(&c->base, a, sizeof(a));
	nft_batch_add(
	    b, "add rule " T " filter-checks ct state new %s daddr %s/%u %s daddr != @%s drop",
	    v6 ? "ip6" : "ip", a, c->prefix, v6 ? "ip6" : "ip",
	    nft_map_names[v6 ? NM_CIP6 : NM_CIP4]);
}

/* DNS to and from the node's own listeners never enters conntrack. */
static void static_notrack(struct nft_batch *b, const struct nftdp_config *c)
{
	static const char *const chains[2] = {"raw-prerouting", "raw-output"};
	for (size_t i = 0; i < c->n_dns_addrs; i++) {
		char a[64];
		const char *ip = c->dns_addrs[i].family == AF_INET6 ? "ip6" : "ip";
		net_addr_format(&c->dns_addrs[i], a, sizeof(a));
		for (int k = 0; k < 2; k++)
			for (int udp = 0; udp < 2; udp++) {
				const char *l4 = udp ? "udp" : "tcp";
				nft_batch_add(b,
					      "add rule " T " %s %s daddr %s %s dport %u notrack",
					      chains[k], ip, a, l4, c->dns_ports[i]);
				nft_batch_add(b,
					      "add rule " T " %s %s saddr %s %s sport %u notrack",
					      chains[k], ip, a, l4, c->dns_ports[i]);
			}
	}
}

static void static_part(struct nft_batch *b, const struct nftdp_config *c)
{
	static_maps(b);
	own_chain(b, "reject-chain", NULL);
	nft_batch_add(b, "add rule " T " reject-chain reject");
	own_chain(b, "mark-for-masquerade", NULL);
	nft_batch_add(b, "add rule " T " mark-for-masquerade meta mark set meta mark | 0x4000");
	own_chain(b, "masquerading", NULL);
	nft_batch_add(b, "add rule " T " masquerading meta mark & 0x4000 == 0 return");
	nft_batch_add(b, "add rule " T " masquerading meta mark set meta mark ^ 0x4000");
	nft_batch_add(b, "add rule " T " masquerading masquerade fully-random");
	own_chain(b, "services", NULL);
	nft_batch_add(b, "add rule " T " services ip daddr . meta l4proto . th dport vmap @%s",
		      nft_map_names[NM_SVC4]);
	nft_batch_add(b, "add rule " T " services ip6 daddr . meta l4proto . th dport vmap @%s",
		      nft_map_names[NM_SVC6]);
	own_chain(b, "filter-checks", NULL);
	nft_batch_add(b,
		      "add rule " T " filter-checks ct state new ip daddr . meta l4proto . th "
		      "dport vmap @%s",
		      nft_map_names[NM_NOEP4]);
	nft_batch_add(b,
		      "add rule " T " filter-checks ct state new ip6 daddr . meta l4proto . th "
		      "dport vmap @%s",
		      nft_map_names[NM_NOEP6]);
	static_nodeports(b, c);
	static_cidr_drop(b, &c->service_cidr4, false);
	static_cidr_drop(b, &c->service_cidr6, true);
	own_chain(b, "nat-prerouting", "type nat hook prerouting priority dstnat");
	nft_batch_add(b, "add rule " T " nat-prerouting jump services");
	own_chain(b, "nat-output", "type nat hook output priority -100");
	nft_batch_add(b, "add rule " T " nat-output jump services");
	own_chain(b, "nat-postrouting", "type nat hook postrouting priority srcnat");
	nft_batch_add(b, "add rule " T " nat-postrouting jump masquerading");
	/* Before DNAT: a Service port with no endpoint is refused, an unused
	 * address of the Service CIDR dropped. */
	own_chain(b, "filter-prerouting", "type filter hook prerouting priority dstnat - 10");
	nft_batch_add(b, "add rule " T " filter-prerouting jump filter-checks");
	own_chain(b, "filter-output", "type filter hook output priority -110");
	nft_batch_add(b, "add rule " T " filter-output jump filter-checks");
	own_chain(b, "raw-prerouting", "type filter hook prerouting priority raw");
	own_chain(b, "raw-output", "type filter hook output priority raw");
	static_notrack(b, c);
}

/* ---- planning a transaction ---------------------------------------------- */

/* What one run has decided about an element or object, so that two Services
 * (one leaving, one arriving with the same address) never delete or add the
 * same thing twice. */
#define RUN_DELETED ((uintptr_t)1)
#define RUN_CLAIMED ((uintptr_t)2)

struct run {
	struct plan plan;
	struct stab marks; /* "E|<map>|<key>" or "O|<name>" -> RUN_* bits */
};

static uintptr_t run_marks(struct run *r, char kind, const char *name)
{
	char k[640];
	snprintf(k, sizeof(k), "%c|%s", kind, name);
	return (uintptr_t)stab_get(&r->marks, k);
}

static void run_mark(struct run *r, char kind, const char *name, uintptr_t bit)
{
	char k[640];
	snprintf(k, sizeof(k), "%c|%s", kind, name);
	if (stab_put(&r->marks, k, (void *)(run_marks(r, kind, name) | bit)) < 0)
		r->plan.oom = true;
}

static bool rec_has_elem(const struct nft_rec *r, const struct nft_elem *e)
{
	for (size_t i = 0; r && i < r->n_elems; i++)
		if (r->elems[i].map == e->map && strcmp(r->elems[i].key, e->key) == 0)
			return true;
	return false;
}

static bool rec_has_obj(const struct nft_rec *r, const char *name)
{
	for (size_t i = 0; r && i < r->n_objs; i++)
		if (strcmp(r->objs[i].name, name) == 0)
			return true;
	return false;
}

/* val: what the record of names holds for it (1 chain, 2 set, 3 map); o: the record's object, or
 * NULL for one found in the table only. */
static void plan_del_obj(struct run *run, const char *name, const void *val,
			 const struct nft_obj *o)
{
	if (run_marks(run, 'O', name) & (RUN_DELETED | RUN_CLAIMED))
		return;
	run_mark(run, 'O', name, RUN_DELETED);
	unsigned kind = (unsigned)(uintptr_t)val;
	if (kind >= 2) {
		plan_add(&run->plan, OP_DEL_SET, kind, name, NULL);
		return;
	}
	plan_add(&run->plan, OP_FLUSH, 0, name, NULL);
	struct op *op = plan_add(&run->plan, OP_DEL_CHAIN, 0, name, NULL);
	if (op && o && o->udp)
		op->ct = &o->ep;
}

static void plan_elems(struct nftdp *nd, struct run *run, const struct nft_rec *nw,
		       const struct nft_rec *old)
{
	char id[600];
	for (size_t i = 0; nw && i < nw->n_elems; i++) {
		const struct nft_elem *e = &nw->elems[i];
		nft_elem_id(e->map, e->key, id, sizeof(id));
		uintptr_t m = run_marks(run, 'E', id);
		if (m & RUN_CLAIMED) {
			log_warn("nftables: Service %s: %s %s is another Service's; not forwarded",
				 nw->svc, nft_map_names[e->map], e->key);
			continue;
		}
		run_mark(run, 'E', id, RUN_CLAIMED);
		const char *g = stab_get(&nd->elems, id);
		const char *want = e->verdict ? e->verdict : "";
		if (g && !(m & RUN_DELETED) && strcmp(g, want) == 0)
			continue;
		if (g && !(m & RUN_DELETED))
			plan_add(&run->plan, OP_DEL_ELEM, e->map, e->key, NULL);
		plan_add(&run->plan, OP_ADD_ELEM, e->map, e->key, e->verdict);
	}
	for (size_t i = 0; old && i < old->n_elems; i++) {
		const struct nft_elem *e = &old->elems[i];
		nft_elem_id(e->map, e->key, id, sizeof(id));
		if (rec_has_elem(nw, e) || !stab_get(&nd->elems, id) ||
		    (run_marks(run, 'E', id) & (RUN_DELETED | RUN_CLAIMED)))
			continue;
		run_mark(run, 'E', id, RUN_DELETED);
		plan_add(&run->plan, OP_DEL_ELEM, e->map, e->key, NULL);
	}
}

/* The steps that turn what `old` put in the table into what `nw` wants
 * (either may be NULL), against what the table holds now. */
static void plan_service(struct nftdp *nd, struct run *run, const struct nft_rec *nw,
			 const struct nft_rec *old)
{
	plan_elems(nd, run, nw, old);
	for (size_t i = 0; nw && i < nw->n_objs; i++) {
		const struct nft_obj *o = &nw->objs[i];
		run_mark(run, 'O', o->name, RUN_CLAIMED);
		if (stab_get(&nd->objs, o->name))
			continue;
		struct op *op = plan_add(&run->plan, o->is_set ? OP_ADD_SET : OP_ADD_CHAIN,
					 o->is_set ? 2 : 1, o->name, NULL);
		if (op)
			op->obj = o;
	}
	for (size_t i = 0; old && i < old->n_objs; i++) {
		const struct nft_obj *o = &old->objs[i];
		void *val = stab_get(&nd->objs, o->name);
		if (!rec_has_obj(nw, o->name) && val)
			plan_del_obj(run, o->name, val, o);
	}
}

/* ---- writing and committing a transaction -------------------------------- */

/* Consecutive element steps on one map, as messages of many elements. */
static size_t write_elems(struct nft_nl *nl, const struct op *ops, size_t n, size_t i)
{
	unsigned map = ops[i].map, kind = ops[i].kind;
	size_t j = i;
	while (j < n && ops[j].kind == kind && ops[j].map == map)
		j++;
	const char **keys = calloc(j - i, sizeof(*keys));
	const char **verdicts = calloc(j - i, sizeof(*verdicts));
	if (keys && verdicts) {
		for (size_t k = i; k < j; k++) {
			keys[k - i] = ops[k].name;
			verdicts[k - i] = ops[k].body;
		}
		nft_nl_elems(nl, kind == OP_ADD_ELEM, map, keys,
			     kind == OP_ADD_ELEM && !nft_map_is_set(map) ? verdicts : NULL, j - i);
	} else {
		nft_nl_abandon(nl);
	}
	free(keys);
	free(verdicts);
	return j;
}

static int op_order(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	return (int)x->map - (int)y->map;
}

static void write_plan(struct nft_nl *nl, struct plan *p)
{
	/* Within a kind only the map order matters. */
	if (p->n)
		qsort(p->ops, p->n, sizeof(p->ops[0]), op_order);
	/* New chains exist, empty, before the maps that lead to them and
	 * before any rule: the rules come after the sets they use. */
	for (size_t i = 0; i < p->n; i++)
		if (p->ops[i].kind == OP_ADD_CHAIN)
			nft_nl_chain(nl, true, p->ops[i].name);
	for (size_t i = 0; i < p->n;) {
		const struct op *o = &p->ops[i];
		switch (o->kind) {
		case OP_DEL_ELEM:
		case OP_ADD_ELEM:
			i = write_elems(nl, p->ops, p->n, i);
			continue;
		case OP_ADD_SET:
			nft_nl_set(nl, o->obj);
			break;
		case OP_ADD_CHAIN:
			for (size_t k = 0; k < o->obj->n_rules; k++)
				nft_nl_rule(nl, o->name, o->obj->family, &o->obj->rules[k]);
			break;
		case OP_FLUSH:
			nft_nl_flush_chain(nl, o->name);
			break;
		case OP_DEL_CHAIN:
			nft_nl_chain(nl, false, o->name);
			break;
		case OP_DEL_SET:
			nft_nl_del_set(nl, o->name);
			break;
		}
		i++;
	}
}

/* The transaction went in: the record of the table follows it. */
static int commit_plan(struct nftdp *nd, const struct plan *p)
{
	char id[600];
	int ret = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct op *o = &p->ops[i];
		switch (o->kind) {
		case OP_DEL_ELEM:
			nft_elem_id(o->map, o->name, id, sizeof(id));
			free(stab_del(&nd->elems, id));
			break;
		case OP_ADD_ELEM: {
			nft_elem_id(o->map, o->name, id, sizeof(id));
			char *v = strdup(o->body ? o->body : "");
			free(stab_del(&nd->elems, id));
			if (!v || stab_put(&nd->elems, id, v) < 0) {
				free(v);
				ret = -ENOMEM;
			}
			break;
		}
		case OP_ADD_SET:
		case OP_ADD_CHAIN:
			if (stab_put(&nd->objs, o->name, (void *)(uintptr_t)o->map) < 0)
				ret = -ENOMEM;
			break;
		case OP_DEL_CHAIN:
		case OP_DEL_SET:
			stab_del(&nd->objs, o->name);
			break;
		}
	}
	/* A record that lost an entry is rebuilt from the kernel by a full run. */
	if (ret < 0)
		nd->need_full = true;
	return ret;
}

/* The UDP endpoints whose chains went: their conntrack entries go too, or
 * their clients would keep sending to them until the entries time out. */
static void drop_stale_udp(struct nftdp *nd, const struct plan *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->ops[i].ct != NULL;
	if (!n)
		return;
	struct conntrack_target *t = calloc(n, sizeof(*t));
	if (!t)
		return;
	n = 0;
	for (size_t i = 0; i < p->n; i++)
		if (p->ops[i].ct)
			t[n++] = *p->ops[i].ct;
	int ret = conntrack_drop_udp(t, n);
	if (ret < 0)
		log_warn("nftables: cannot delete the UDP conntrack entries of %zu removed "
			 "endpoint%s (%s)",
			 n, n == 1 ? "" : "s", strerror(-ret));
	else
		nd->st.conntrack_deleted += (uint64_t)ret;
	free(t);
}

/* Sends the run's plan; on success the record follows. */
static int run_send(struct nftdp *nd, struct run *run)
{
	if (run->plan.oom)
		return -ENOMEM;
	write_plan(nd->nl, &run->plan);
	int ret = nft_nl_commit(nd->nl);
	if (ret == 0) {
		commit_plan(nd, &run->plan);
		drop_stale_udp(nd, &run->plan);
	}
	return ret;
}

static void run_reset(struct run *run)
{
	free(run->plan.ops);
	stab_free(&run->marks, NULL);
	memset(run, 0, sizeof(*run));
}

/* ---- applying a view ------------------------------------------------------ */

static void rec_free(void *p)
{
	if (p) {
		nft_rec_clear(p);
		free(p);
	}
}

/* The record kept once programmed: names and elements, not the rules. */
static void rec_keep(struct nftdp *nd, struct nft_rec *r)
{
	for (size_t i = 0; i < r->n_objs; i++)
		nft_obj_drop_contents(&r->objs[i]);
	struct nft_rec *old = stab_get(&nd->recs, r->svc);
	if (r->n_objs == 0 && r->n_elems == 0) {
		rec_free(stab_del(&nd->recs, r->svc));
		rec_free(r);
		return;
	}
	if (stab_put(&nd->recs, r->svc, r) < 0) {
		nd->need_full = true;
		rec_free(r);
		r = NULL;
	}
	if (old != r)
		rec_free(old);
}

/* One Service: its new record (NULL: gone) sent alone, its failure logged
 * with its name. */
static int apply_one(struct nftdp *nd, const char *svc, struct nft_rec *nw)
{
	struct run run = {0};
	const struct nft_rec *old = stab_get(&nd->recs, svc);
	plan_service(nd, &run, nw, old);
	int ret = run_send(nd, &run);
	run_reset(&run);
	if (ret < 0) {
		const char *why = ret == -ENOMEM ? "out of memory" : nft_nl_error(nd->nl);
		log_error("nftables: Service %s: the kernel refused its rules (%s); it is not "
			  "forwarded and its names are withheld from DNS until they go in "
			  "(retried with backoff)",
			  svc, why);
		nft_refusal_set(&nd->refused, svc, why);
		nd->st.failures++;
		nd->need_full = true;
		rec_free(nw);
		return ret;
	}
	if (stab_get(&nd->refused.why, svc))
		log_info("nftables: Service %s: its rules are in now", svc);
	nft_refusal_set(&nd->refused, svc, NULL);
	if (nw)
		rec_keep(nd, nw);
	else
		rec_free(stab_del(&nd->recs, svc));
	return 0;
}

struct change {
	char *svc;	    /* "ns/name" */
	struct nft_rec *nw; /* NULL: the Service is gone */
};

static void changes_free(struct change *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].svc);
		rec_free(c[i].nw);
	}
	free(c);
}

/* Renders the Services to change: those in v->changes, or all of them and
 * every recorded one the view no longer has. */
static int collect(struct nftdp *nd, const struct model_view *v, bool full, struct change **out,
		   size_t *n_out)
{
	size_t cap = (full ? v->n_svcs + nd->recs.n : v->n_changes) + 1, n = 0;
	struct change *c = calloc(cap, sizeof(*c));
	struct stab seen = {0};
	int ret = c ? 0 : -ENOMEM;
	for (size_t i = 0; ret == 0 && i < (full ? v->n_svcs : v->n_changes); i++) {
		const struct view_service *vs = full ? &v->svcs[i] : v->changes[i].cur;
		const struct view_service *gone = full ? NULL : v->changes[i].old;
		if (!vs) {
			c[n].svc = malloc(strlen(gone->svc->ns) + strlen(gone->svc->name) + 2);
			if (!c[n].svc) {
				ret = -ENOMEM;
				break;
			}
			sprintf(c[n++].svc, "%s/%s", gone->svc->ns, gone->svc->name);
			continue;
		}
		c[n].nw = calloc(1, sizeof(*c[n].nw));
		if (!c[n].nw || nft_render(vs, &nd->cfg, c[n].nw) < 0 ||
		    !(c[n].svc = strdup(c[n].nw->svc)) ||
		    (full && stab_put(&seen, c[n].svc, c) < 0))
			ret = -ENOMEM;
		n++;
	}
	for (size_t i = 0; ret == 0 && full && i < nd->recs.cap; i++)
		if (nd->recs.keys[i] && !stab_get(&seen, nd->recs.keys[i]))
			if (!(c[n++].svc = strdup(nd->recs.keys[i])))
				ret = -ENOMEM;
	stab_free(&seen, NULL);
	if (ret < 0) {
		changes_free(c, n);
		return ret;
	}
	*out = c;
	*n_out = n;
	return 0;
}

struct orphans {
	struct run *run;
	bool elems;
};

static void orphan_visit(void *arg, const char *key, void *val)
{
	struct orphans *o = arg;
	if (o->elems) {
		if (run_marks(o->run, 'E', key) & (RUN_CLAIMED | RUN_DELETED))
			return;
		run_mark(o->run, 'E', key, RUN_DELETED);
		unsigned map = (unsigned)strtoul(key, NULL, 10);
		plan_add(&o->run->plan, OP_DEL_ELEM, map, strchr(key, '|') + 1, NULL);
	} else {
		plan_del_obj(o->run, key, val, NULL);
	}
}

/* In a full run: what the table holds that no Service wants any more. */
static void plan_orphans(struct nftdp *nd, struct run *run)
{
	struct orphans o = {.run = run, .elems = true};
	stab_each(&nd->elems, orphan_visit, &o);
	o.elems = false;
	stab_each(&nd->objs, orphan_visit, &o);
}

/* Services per transaction: a full sync of 100,000 Services is more
 * messages than one netlink datagram carries (the socket's buffer is an
 * int), and a transaction's cost beyond the table's validation grows with it. */
#define SERVICES_PER_TXN 16384

/* The Services c[from, to) in one transaction, planned with the marks of
 * the whole run (a later group must not take back what an earlier one
 * moved); when the kernel refuses it, one transaction per Service. False
 * when a Service was refused. */
static bool apply_group(struct nftdp *nd, struct run *run, struct change *c, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		plan_service(nd, run, c[i].nw, stab_get(&nd->recs, c[i].svc));
	int ret = run_send(nd, run);
	free(run->plan.ops);
	memset(&run->plan, 0, sizeof(run->plan));
	if (ret == 0) {
		for (size_t i = from; i < to; i++) {
			if (stab_get(&nd->refused.why, c[i].svc))
				log_info("nftables: Service %s: its rules are in now", c[i].svc);
			nft_refusal_set(&nd->refused, c[i].svc, NULL);
			if (c[i].nw)
				rec_keep(nd, c[i].nw);
			else
				rec_free(stab_del(&nd->recs, c[i].svc));
			c[i].nw = NULL;
		}
		return true;
	}
	log_warn("nftables: a transaction of %zu Service%s was refused (%s); applying them one "
		 "by one",
		 to - from, to - from == 1 ? "" : "s", nft_nl_error(nd->nl));
	bool ok = true;
	for (size_t i = from; i < to; i++) {
		ok &= apply_one(nd, c[i].svc, c[i].nw) == 0;
		c[i].nw = NULL;
	}
	return ok;
}

/* One transaction per SERVICES_PER_TXN changes, then, in a full run, one
 * deleting what no Service wants any more. */
static int apply_changes(struct nftdp *nd, struct change *c, size_t n, bool full)
{
	struct run run = {0};
	bool ok = true;
	for (size_t from = 0; from < n; from += SERVICES_PER_TXN)
		ok &= apply_group(nd, &run, c, from,
				  n - from > SERVICES_PER_TXN ? from + SERVICES_PER_TXN : n);
	/* Orphans go only when every Service went in: a refused one may still
	 * hold what looks unused. Every Service of the view marked what it
	 * holds in this run's marks. */
	if (full && ok) {
		plan_orphans(nd, &run);
		if (run_send(nd, &run) < 0) {
			nd->need_full = true;
			log_warn("nftables: cannot delete what no Service uses any more (%s); "
				 "retried at the next full sync",
				 nft_nl_error(nd->nl));
		}
	}
	run_reset(&run);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int nftdp_apply(struct nftdp *nd, const struct model_view *v)
{
	uint64_t t0 = now_ns();
	bool full = !nd->last_view || v->base_id != nd->last_view || nd->need_full;
	struct change *c = NULL;
	size_t n = 0;
	int ret = collect(nd, v, full, &c, &n);
	if (ret < 0) {
		log_error("nftables: out of memory rendering the rules; the table keeps the "
			  "previous ones");
		nd->need_full = true;
		return ret;
	}
	if (full)
		nd->need_full = false;
	/* A full run tries every Service: those refused before and gone from
	 * the view are forgotten, the others set again by their outcome. */
	struct nft_refusals before = {0};
	if (full) {
		before.why = nd->refused.why;
		memset(&nd->refused.why, 0, sizeof(nd->refused.why));
		for (size_t i = 0; i < n; i++)
			if (stab_get(&before.why, c[i].svc))
				nft_refusal_set(&nd->refused, c[i].svc,
						stab_get(&before.why, c[i].svc));
	}
	nft_refusals_reset(&before);
	apply_changes(nd, c, n, full);
	changes_free(c, n);
	/* Without the list of refused Services DNS could hand one out: the
	 * snapshot is not published (the pipeline retries). */
	if ((ret = nft_refusals_index(&nd->refused, v)) < 0)
		log_error("nftables: out of memory listing the refused Services; the snapshot "
			  "waits for the next run");
	nd->st.refused = nd->refused.why.n;
	nd->last_view = v->id;
	nd->st.syncs++;
	nd->st.full_syncs += full;
	nd->st.last_sync_ns = now_ns() - t0;
	static const double bounds[] = NFTDP_SYNC_BOUNDS;
	double s = (double)nd->st.last_sync_ns / 1e9;
	size_t b = 0;
	while (b < NFTDP_SYNC_N_BOUNDS && s > bounds[b])
		b++;
	nd->st.sync_buckets[b]++;
	nd->st.sync_sum_s += s;
	nd->st.chains = nd->objs.n;
	nd->st.elements = nd->elems.n;
	log_debug("nftables: %s sync of %zu Service%s in %.2f ms", full ? "full" : "incremental", n,
		  n == 1 ? "" : "s", (double)nd->st.last_sync_ns / 1e6);
	return ret;
}

/* ---- start, stop, cleanup -------------------------------------------------- */

static int start_error(const char *err)
{
	if (strstr(err, "Operation not permitted")) {
		log_error("nftables: not permitted to program the kernel (%s): svcdns needs "
			  "CAP_NET_ADMIN for --proxy=nftables",
			  err);
		return -EPERM;
	}
	if (strstr(err, "Protocol not supported") || strstr(err, "not supported")) {
		log_error("nftables: this kernel has no nf_tables (%s): load the nf_tables and "
			  "nft_nat modules, or use --proxy=userspace",
			  err);
		return -EPROTONOSUPPORT;
	}
	log_error("nftables: the kernel refused the table " T " (%s)", err);
	return -EINVAL;
}

int nftdp_start(const struct nftdp_config *cfg, struct nftdp **out)
{
	struct nftdp *nd = calloc(1, sizeof(*nd));
	int ret = -ENOMEM;
	if (!nd || nft_batch_init(&nd->b) < 0)
		goto fail;
	nd->cfg = *cfg;
	/* The addresses are the caller's; the configuration outlives the datapath. */
	static_part(&nd->b, cfg);
	if ((ret = nft_batch_run(&nd->b)) < 0) {
		ret = ret == -ENOMEM ? ret : start_error(nd->b.err);
		goto fail;
	}
	if ((ret = nft_nl_open(&nd->nl)) < 0) {
		log_error("nftables: cannot open a netlink socket (%s)", strerror(-ret));
		goto fail;
	}
	if ((ret = nft_state_read(nd->nl, &nd->objs, &nd->elems)) < 0) {
		log_error("nftables: cannot read back the table " T " (%s)", strerror(-ret));
		goto fail;
	}
	log_info("nftables: table " T " ready (%zu Service chains and sets, %zu map elements "
		 "already there)",
		 nd->objs.n, nd->elems.n);
	*out = nd;
	return 0;
fail:
	nftdp_stop(nd);
	return ret;
}

void nftdp_stop(struct nftdp *nd)
{
	if (!nd)
		return;
	nft_batch_fini(&nd->b);
	nft_nl_close(nd->nl);
	stab_free(&nd->objs, NULL);
	stab_free(&nd->elems, free);
	stab_free(&nd->recs, rec_free);
	nft_refusals_free(&nd->refused);
	free(nd);
}

size_t nftdp_refused(const struct nftdp *nd, const char *const **keys)
{
	return nft_refusals_keys(&nd->refused, keys);
}

const void *nftdp_live_index(const struct nftdp *nd)
{
	return nd ? nd->refused.cur : NULL;
}

size_t nftdp_chaos_live(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
			size_t cap, uint16_t *n_rr)
{
	return nft_live_chaos(index, key, keylen, out, cap, n_rr);
}

void nftdp_live_reclaim(struct nftdp *nd, const void *keep)
{
	if (nd)
		nft_refusals_reclaim(&nd->refused, keep);
}

int nftdp_cleanup(void)
{
	struct nft_batch b;
	if (nft_batch_init(&b) < 0)
		return -ENOMEM;
	char *out = NULL;
	int ret = nft_batch_list(&b, "list table " T, &out);
	free(out);
	if (ret == -ENOENT) {
		log_info("nftables: no table " T " to remove");
		ret = 0;
	} else if (ret == 0) {
		nft_batch_add(&b, "delete table " T);
		if ((ret = nft_batch_run(&b)) < 0)
			log_error("nftables: cannot delete the table " T " (%s)", b.err);
		else
			log_info("nftables: table " T " removed");
	} else {
		ret = start_error(b.err);
	}
	nft_batch_fini(&b);
	return ret;
}

void nftdp_stats_get(const struct nftdp *nd, struct nftdp_stats *out)
{
	*out = nd->st;
}
