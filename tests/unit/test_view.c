/* Unit tests for the model store and the view: selectors, targetPort
 * resolution, ClusterIP/NodePort/Pod IP allocation, endpoints from Pods and
 * from EndpointSlices, and the store's per-source bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "discovery/model.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- building objects by hand ------------------------------------------------ */

static char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	assert_non_null(p);
	return p;
}

/* kv: NULL-terminated "key=value" strings. */
static struct model_labels mk_labels(const char *const *kv)
{
	struct model_labels l = {0};
	size_t n = 0;

	while (kv && kv[n])
		n++;
	l.items = xcalloc(n, sizeof(*l.items));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');
		assert_non_null(eq);
		l.items[i].key = xstrdup(kv[i]);
		l.items[i].key[eq - kv[i]] = '\0';
		l.items[i].value = xstrdup(eq + 1);
	}
	l.n = n;
	return l;
}

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	assert_int_equal(net_addr_parse(text, &a), 0);
	return a;
}

static const char *addr_text(const struct net_addr *a, char *buf)
{
	net_addr_format(a, buf, 64);
	return buf;
}

struct port_spec {
	const char *name;
	uint16_t port;
	uint8_t proto;
	uint16_t target_num;
	const char *target_name;
	uint16_t node_port;
};

struct svc_spec {
	const char *ns;
	const char *name;
	enum model_svc_type type;
	const char *cluster_ip;	     /* NULL: none given; "None": headless */
	const char *const *selector; /* NULL: no selector */
	const struct port_spec *ports;
	size_t n_ports;
};

static struct model_object mk_svc(const struct svc_spec *sp)
{
	struct model_service *s = xcalloc(1, sizeof(*s));

	s->ns = xstrdup(sp->ns ? sp->ns : "default");
	s->name = xstrdup(sp->name);
	s->type = sp->type;
	if (sp->cluster_ip && strcmp(sp->cluster_ip, "None") == 0) {
		s->headless = true;
	} else if (sp->cluster_ip) {
		s->cluster_ips[0] = addr(sp->cluster_ip);
		s->n_cluster_ips = 1;
	}
	if (sp->type == SVC_EXTERNAL_NAME)
		s->external_name = xstrdup("example.com");
	if (sp->selector) {
		s->has_selector = true;
		s->selector = mk_labels(sp->selector);
	}
	s->ports = xcalloc(sp->n_ports, sizeof(*s->ports));
	s->n_ports = sp->n_ports;
	for (size_t i = 0; i < sp->n_ports; i++) {
		const struct port_spec *p = &sp->ports[i];
		s->ports[i] = (struct model_svc_port){
		    .name = xstrdup(p->name ? p->name : ""),
		    .port = p->port,
		    .proto = p->proto ? p->proto : PROTO_TCP,
		    .target_num = p->target_num,
		    .target_name = xstrdup(p->target_name),
		    .node_port = p->node_port,
		};
	}
	s->affinity_timeout = 10800;
	return (struct model_object){.kind = KIND_SERVICE, .u.svc = s};
}

struct cport {
	const char *name;
	uint16_t port;
	uint8_t proto;
};

struct pod_spec {
	const char *ns;
	const char *name;
	bool name_generated;
	const char *const *labels;
	const struct cport *ports;
	size_t n_ports;
	bool has_status;
	bool ready;
	bool terminal;
	bool terminating;
	const char *ip;	 /* status.podIP, or NULL */
	const char *ip6; /* a second podIP, or NULL */
	const char *hostname;
	const char *subdomain;
	const char *node;
};

static struct model_object mk_pod(const struct pod_spec *sp)
{
	struct model_pod *p = xcalloc(1, sizeof(*p));

	p->ns = xstrdup(sp->ns ? sp->ns : "default");
	p->name = xstrdup(sp->name);
	p->name_generated = sp->name_generated;
	p->labels = mk_labels(sp->labels);
	p->ports = xcalloc(sp->n_ports, sizeof(*p->ports));
	p->n_ports = sp->n_ports;
	for (size_t i = 0; i < sp->n_ports; i++)
		p->ports[i] = (struct model_container_port){
		    .name = xstrdup(sp->ports[i].name),
		    .port = sp->ports[i].port,
		    .proto = sp->ports[i].proto ? sp->ports[i].proto : PROTO_TCP,
		};
	p->hostname = xstrdup(sp->hostname);
	p->subdomain = xstrdup(sp->subdomain);
	p->node_name = xstrdup(sp->node);
	p->has_status = sp->has_status;
	p->ready = sp->ready;
	p->terminal = sp->terminal;
	p->terminating = sp->terminating;
	if (sp->ip)
		p->ips[p->n_ips++] = addr(sp->ip);
	if (sp->ip6)
		p->ips[p->n_ips++] = addr(sp->ip6);
	return (struct model_object){.kind = KIND_POD, .u.pod = p};
}

struct sport {
	const char *name;
	uint16_t port;
	uint8_t proto;
};

struct ep_spec {
	const char *addr;
	bool ready;
	bool terminating;
	const char *hostname;
	const char *pod;
};

struct slice_spec {
	const char *ns;
	const char *name;
	const char *service;
	uint8_t family; /* AF_INET, AF_INET6, 0 for FQDN */
	const struct sport *ports;
	size_t n_ports;
	const struct ep_spec *eps;
	size_t n_eps;
};

static struct model_object mk_slice(const struct slice_spec *sp)
{
	struct model_slice *s = xcalloc(1, sizeof(*s));

	s->ns = xstrdup(sp->ns ? sp->ns : "default");
	s->name = xstrdup(sp->name);
	s->service = xstrdup(sp->service);
	s->address_type = sp->family;
	s->ports = xcalloc(sp->n_ports, sizeof(*s->ports));
	s->n_ports = sp->n_ports;
	for (size_t i = 0; i < sp->n_ports; i++)
		s->ports[i] = (struct model_slice_port){
		    .name = xstrdup(sp->ports[i].name ? sp->ports[i].name : ""),
		    .port = sp->ports[i].port,
		    .proto = sp->ports[i].proto ? sp->ports[i].proto : PROTO_TCP,
		};
	s->endpoints = xcalloc(sp->n_eps, sizeof(*s->endpoints));
	s->n_endpoints = sp->n_eps;
	for (size_t i = 0; i < sp->n_eps; i++) {
		struct model_endpoint *e = &s->endpoints[i];
		e->addrs = xcalloc(1, sizeof(*e->addrs));
		if (sp->family) {
			e->addrs[0] = addr(sp->eps[i].addr);
			e->n_addrs = 1;
		}
		e->hostname = xstrdup(sp->eps[i].hostname);
		e->pod_name = xstrdup(sp->eps[i].pod);
		e->ready = sp->eps[i].ready;
		e->serving = sp->eps[i].ready;
		e->terminating = sp->eps[i].terminating;
	}
	return (struct model_object){.kind = KIND_SLICE, .u.slice = s};
}

static struct model_object mk_ns(const char *name)
{
	struct model_namespace *n = xcalloc(1, sizeof(*n));
	n->name = xstrdup(name);
	return (struct model_object){.kind = KIND_NAMESPACE, .u.ns = n};
}

static void put(struct model_store *st, const char *source, struct model_object *objs, size_t n)
{
	assert_int_equal(model_store_replace(st, source, objs, n), 0);
}

static void put_svc(struct model_store *st, const char *source, const struct svc_spec *sp)
{
	struct model_object o = mk_svc(sp);
	put(st, source, &o, 1);
}

static void put_pod(struct model_store *st, const char *source, const struct pod_spec *sp)
{
	struct model_object o = mk_pod(sp);
	put(st, source, &o, 1);
}

static void put_slice(struct model_store *st, const char *source, const struct slice_spec *sp)
{
	struct model_object o = mk_slice(sp);
	put(st, source, &o, 1);
}

static const struct view_service *find_vs(const struct model_view *v, const char *ns,
					  const char *name)
{
	for (size_t i = 0; i < v->n_svcs; i++)
		if (strcmp(v->svcs[i].svc->ns, ns) == 0 && strcmp(v->svcs[i].svc->name, name) == 0)
			return &v->svcs[i];
	fail_msg("service %s/%s not in the view", ns, name);
	return NULL;
}

static struct model_alloc *alloc_with(const char *svc_cidr, const char *pod_cidr)
{
	struct net_cidr sc, pc;
	assert_int_equal(net_cidr_parse(svc_cidr, &sc), 0);
	assert_int_equal(net_cidr_parse(pod_cidr, &pc), 0);
	struct model_alloc *a = model_alloc_new(&sc, &pc);
	assert_non_null(a);
	return a;
}

static struct model_alloc *alloc_default(void)
{
	return alloc_with("10.96.0.0/12", "10.244.0.0/16");
}

static void build(const struct model_store *st, struct model_alloc *a, struct model_view *v)
{
	assert_int_equal(model_view_build(st, a, v), 0);
}

/* The ClusterIP a fresh allocator gives `name` among services named names[]. */
static struct net_addr fresh_ip(const char *svc_cidr, const char *const *names, size_t n,
				const char *name)
{
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with(svc_cidr, "10.244.0.0/16");
	struct model_view v;
	struct net_addr out = {0};

	for (size_t i = 0; i < n; i++)
		put_svc(st, names[i], &(struct svc_spec){.name = names[i]});
	build(st, a, &v);
	const struct view_service *vs = find_vs(&v, "default", name);
	if (vs->svc->n_cluster_ips)
		out = vs->svc->cluster_ips[0];
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
	return out;
}

/* ---- selectors and ports -------------------------------------------------- */

static void test_selector_matches(void **state)
{
	(void)state;
	static const struct {
		const char *const sel[4];
		const char *const labels[4];
		bool match;
	} cases[] = {
	    {{"app=web"}, {"app=web"}, true},
	    {{"app=web"}, {"tier=fe", "app=web", "x=y"}, true},
	    {{"app=web", "tier=fe"}, {"tier=fe", "app=web"}, true},
	    {{"app=web", "tier=fe"}, {"app=web"}, false}, /* one pair missing */
	    {{"app=web"}, {"app=db"}, false},		  /* different value */
	    {{"app=web"}, {"application=web"}, false},	  /* different key */
	    {{"app=web"}, {"web=app"}, false},
	    {{"app="}, {"app="}, true}, /* empty value is a value */
	    {{"app="}, {"app=x"}, false},
	    {{NULL}, {"app=web"}, false}, /* empty selector */
	    {{NULL}, {NULL}, false},
	    {{"app=web"}, {NULL}, false},
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct model_labels sel = mk_labels(cases[i].sel);
		struct model_labels labels = mk_labels(cases[i].labels);
		bool got = model_selector_matches(&sel, &labels);
		if (got != cases[i].match)
			fail_msg("case %zu: got %d, want %d", i, got, cases[i].match);
		for (size_t k = 0; k < sel.n; k++) {
			free(sel.items[k].key);
			free(sel.items[k].value);
		}
		free(sel.items);
		for (size_t k = 0; k < labels.n; k++) {
			free(labels.items[k].key);
			free(labels.items[k].value);
		}
		free(labels.items);
	}
}

static void test_resolve_target_port(void **state)
{
	(void)state;
	static const struct cport pod_ports[] = {
	    {"http", 8080, PROTO_TCP},
	    {"dns", 5353, PROTO_UDP},
	    {"dns-tcp", 5353, PROTO_TCP},
	    {NULL, 9000, PROTO_TCP},
	};
	static const struct {
		struct port_spec sp;
		uint16_t want;
	} cases[] = {
	    {{.port = 80, .target_num = 8080}, 8080},	 /* numeric */
	    {{.port = 80, .target_num = 1234}, 1234},	 /* numeric, not declared */
	    {{.port = 80, .target_name = "http"}, 8080}, /* named */
	    {{.port = 53, .proto = PROTO_UDP, .target_name = "dns"}, 5353},
	    {{.port = 80, .proto = PROTO_UDP, .target_name = "http"}, 0}, /* wrong protocol */
	    {{.port = 53, .target_name = "dns"}, 0},			  /* dns is UDP only */
	    {{.port = 80, .target_name = "nope"}, 0},			  /* not found */
	    {{.port = 80}, 80},						  /* defaults to port */
	    {{.port = 443, .proto = PROTO_UDP}, 443},
	};
	struct model_object pod = mk_pod(
	    &(struct pod_spec){.name = "p", .ports = pod_ports, .n_ports = N_ELEMS(pod_ports)});

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const struct port_spec *p = &cases[i].sp;
		struct model_svc_port sp = {
		    .name = "",
		    .port = p->port,
		    .proto = p->proto ? p->proto : PROTO_TCP,
		    .target_num = p->target_num,
		    .target_name = (char *)p->target_name,
		};
		uint16_t got = model_resolve_target_port(&sp, pod.u.pod);
		if (got != cases[i].want)
			fail_msg("case %zu: got %u, want %u", i, got, cases[i].want);
	}
	model_object_free(&pod);
}

/* ---- ClusterIP allocation ------------------------------------------------------- */

static void test_cluster_ip_deterministic(void **state)
{
	(void)state;
	static const char *const names[] = {"web", "db", "cache", "api", "queue"};
	struct net_addr first[N_ELEMS(names)];
	char t1[64], t2[64];

	for (int round = 0; round < 2; round++) {
		struct model_store *st = model_store_new();
		struct model_alloc *a = alloc_default();
		struct model_view v;
		/* The second round adds them in the reverse order. */
		for (size_t i = 0; i < N_ELEMS(names); i++) {
			const char *n = names[round ? N_ELEMS(names) - 1 - i : i];
			put_svc(st, n,
				&(struct svc_spec){.name = n,
						   .ports = (struct port_spec[]){{.port = 80}},
						   .n_ports = 1});
		}
		build(st, a, &v);
		assert_int_equal(v.n_svcs, N_ELEMS(names));
		for (size_t i = 0; i < N_ELEMS(names); i++) {
			const struct view_service *vs = find_vs(&v, "default", names[i]);
			assert_int_equal(vs->svc->n_cluster_ips, 1);
			assert_true(vs->svc->cluster_ip_allocated);
			const struct net_addr *ip = &vs->svc->cluster_ips[0];
			assert_int_equal(ip->family, AF_INET);
			/* inside 10.96.0.0/12 */
			assert_int_equal(ip->bytes[0], 10);
			assert_int_equal(ip->bytes[1] & 0xf0, 96);
			if (round == 0) {
				first[i] = *ip;
				for (size_t k = 0; k < i; k++)
					assert_int_not_equal(net_addr_cmp(&first[k], ip), 0);
			} else if (net_addr_cmp(&first[i], ip) != 0) {
				fail_msg("%s: %s then %s", names[i], addr_text(&first[i], t1),
					 addr_text(ip, t2));
			}
		}
		model_view_free(&v);
		model_alloc_free(a);
		model_store_free(st);
	}
}

/* In a /29, five addresses are usable: .2 to .6 (.0 network, .1 kubernetes,
 * .7 broadcast). */
static void test_cluster_ip_skips_reserved(void **state)
{
	(void)state;
	static const char *const names[] = {"a", "b", "c", "d", "e", "f"};
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with("10.96.0.0/29", "10.244.0.0/16");
	struct model_view v;
	bool seen[8] = {0};

	for (size_t i = 0; i < N_ELEMS(names); i++)
		put_svc(st, names[i], &(struct svc_spec){.name = names[i]});
	build(st, a, &v);
	size_t without = 0;
	for (size_t i = 0; i < v.n_svcs; i++) {
		const struct model_service *s = v.svcs[i].svc;
		if (s->n_cluster_ips == 0) {
			without++;
			continue;
		}
		uint8_t last = s->cluster_ips[0].bytes[3];
		assert_memory_equal(s->cluster_ips[0].bytes, ((uint8_t[]){10, 96, 0}), 3);
		assert_true(last >= 2 && last <= 6);
		assert_false(seen[last]);
		seen[last] = true;
	}
	assert_int_equal(without, 1); /* the range is full: one goes without */
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

static void test_cluster_ip_explicit_reserved(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with("10.96.0.0/29", "10.244.0.0/16");
	struct model_view v;
	char t[64];

	/* Three explicit claims leave .5 and .6 to the two without one,
	 * whatever their names hash to; x2 and x3 claim the same address. */
	put_svc(st, "x1", &(struct svc_spec){.name = "x1", .cluster_ip = "10.96.0.2"});
	put_svc(st, "x2", &(struct svc_spec){.name = "x2", .cluster_ip = "10.96.0.3"});
	put_svc(st, "x3", &(struct svc_spec){.name = "x3", .cluster_ip = "10.96.0.3"});
	put_svc(st, "x4", &(struct svc_spec){.name = "x4", .cluster_ip = "10.96.0.4"});
	put_svc(st, "out", &(struct svc_spec){.name = "out", .cluster_ip = "192.168.1.1"});
	put_svc(st, "n1", &(struct svc_spec){.name = "n1"});
	put_svc(st, "n2", &(struct svc_spec){.name = "n2"});
	put_svc(st, "hl", &(struct svc_spec){.name = "hl", .cluster_ip = "None"});
	put_svc(st, "ext", &(struct svc_spec){.name = "ext", .type = SVC_EXTERNAL_NAME});
	build(st, a, &v);

	static const struct {
		const char *name;
		const char *ip; /* NULL: no ClusterIP */
		bool allocated;
	} want[] = {
	    {"x1", "10.96.0.2", false}, {"x2", "10.96.0.3", false},    {"x3", "10.96.0.3", false},
	    {"x4", "10.96.0.4", false}, {"out", "192.168.1.1", false}, {"hl", NULL, false},
	    {"ext", NULL, false},
	};
	for (size_t i = 0; i < N_ELEMS(want); i++) {
		const struct model_service *s = find_vs(&v, "default", want[i].name)->svc;
		assert_int_equal(s->cluster_ip_allocated, want[i].allocated);
		if (!want[i].ip) {
			assert_int_equal(s->n_cluster_ips, 0);
			continue;
		}
		assert_int_equal(s->n_cluster_ips, 1);
		assert_string_equal(addr_text(&s->cluster_ips[0], t), want[i].ip);
	}
	const struct model_service *n1 = find_vs(&v, "default", "n1")->svc;
	const struct model_service *n2 = find_vs(&v, "default", "n2")->svc;
	assert_true(n1->cluster_ip_allocated && n2->cluster_ip_allocated);
	uint8_t l1 = n1->cluster_ips[0].bytes[3], l2 = n2->cluster_ips[0].bytes[3];
	assert_true((l1 == 5 && l2 == 6) || (l1 == 6 && l2 == 5));
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

static void test_cluster_ip_sticky(void **state)
{
	(void)state;
	/* "zz" sorts after the others, so a fresh allocator serves them first;
	 * the names are chosen so that one of them then takes zz's address. */
	static const char *const all[] = {"zz", "a", "b", "c", "d"};
	struct net_addr alone = fresh_ip("10.96.0.0/29", all, 1, "zz");
	struct net_addr crowded = fresh_ip("10.96.0.0/29", all, N_ELEMS(all), "zz");
	char t1[64], t2[64];

	/* Precondition: without stickiness zz would move. */
	if (net_addr_cmp(&alone, &crowded) == 0)
		fail_msg("test names do not displace zz (%s)", addr_text(&alone, t1));

	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with("10.96.0.0/29", "10.244.0.0/16");
	struct model_view v;
	put_svc(st, "zz", &(struct svc_spec){.name = "zz"});
	build(st, a, &v);
	assert_int_equal(net_addr_cmp(&v.svcs[0].svc->cluster_ips[0], &alone), 0);
	model_view_free(&v);

	for (size_t i = 1; i < N_ELEMS(all); i++)
		put_svc(st, all[i], &(struct svc_spec){.name = all[i]});
	build(st, a, &v);
	const struct model_service *zz = find_vs(&v, "default", "zz")->svc;
	if (net_addr_cmp(&zz->cluster_ips[0], &alone) != 0)
		fail_msg("zz moved from %s to %s", addr_text(&alone, t1),
			 addr_text(&zz->cluster_ips[0], t2));
	model_view_free(&v);

	/* Released when it disappears: the /29 is full, and a newcomer gets
	 * exactly the address zz left. */
	model_store_remove(st, "zz");
	put_svc(st, "new", &(struct svc_spec){.name = "new"});
	build(st, a, &v);
	const struct model_service *nw = find_vs(&v, "default", "new")->svc;
	assert_int_equal(nw->n_cluster_ips, 1);
	assert_int_equal(net_addr_cmp(&nw->cluster_ips[0], &alone), 0);
	model_view_free(&v);

	/* An explicit claim wins over a sticky allocation. */
	put_svc(st, "claim",
		&(struct svc_spec){.name = "claim", .cluster_ip = addr_text(&alone, t1)});
	model_store_remove(st, "a");
	build(st, a, &v);
	nw = find_vs(&v, "default", "new")->svc;
	assert_int_equal(nw->n_cluster_ips, 1);
	assert_int_not_equal(net_addr_cmp(&nw->cluster_ips[0], &alone), 0);
	model_view_free(&v);

	model_alloc_free(a);
	model_store_free(st);
}

/* An IPv6 service range works the same way: never the network address or the
 * first host, always inside the range. */
static void test_cluster_ip_ipv6(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with("fd00:10:96::/125", "10.244.0.0/16");
	struct model_view v;
	struct net_addr base = addr("fd00:10:96::");
	bool seen[8] = {0};

	/* /125: eight addresses, ::2 to ::7 usable (IPv6 has no broadcast). */
	for (int i = 0; i < 7; i++) {
		char name[16];
		snprintf(name, sizeof(name), "v6-%d", i);
		put_svc(st, name, &(struct svc_spec){.name = name});
	}
	build(st, a, &v);
	size_t without = 0;
	for (size_t i = 0; i < v.n_svcs; i++) {
		const struct model_service *s = v.svcs[i].svc;
		if (s->n_cluster_ips == 0) {
			without++;
			continue;
		}
		assert_int_equal(s->cluster_ips[0].family, AF_INET6);
		assert_memory_equal(s->cluster_ips[0].bytes, base.bytes, 15);
		uint8_t last = s->cluster_ips[0].bytes[15];
		assert_in_range(last, 2, 7);
		assert_false(seen[last]);
		seen[last] = true;
	}
	assert_int_equal(without, 1);
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

/* ---- NodePort allocation ------------------------------------------------------ */

static uint16_t node_port_of(const struct model_view *v, const char *name, size_t port)
{
	return find_vs(v, "default", name)->svc->ports[port].node_port;
}

static void test_node_port(void **state)
{
	(void)state;
	static const struct port_spec np_ports[] = {
	    {.name = "http", .port = 80},
	    {.name = "dns", .port = 53, .proto = PROTO_UDP},
	    {.name = "dns-tcp", .port = 53, .proto = PROTO_TCP},
	};
	static const struct port_spec fixed_ports[] = {{.port = 80, .node_port = 30080}};

	/* Learn what "np" port 0 would get, then claim it explicitly. */
	uint16_t free_pick;
	{
		struct model_store *st = model_store_new();
		struct model_alloc *a = alloc_default();
		struct model_view v;
		put_svc(st, "np",
			&(struct svc_spec){
			    .name = "np", .type = SVC_NODE_PORT, .ports = np_ports, .n_ports = 3});
		build(st, a, &v);
		free_pick = node_port_of(&v, "np", 0);
		model_view_free(&v);
		model_alloc_free(a);
		model_store_free(st);
	}
	assert_in_range(free_pick, 30000, 32767);

	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	struct port_spec claim = {.port = 80, .node_port = free_pick};
	put_svc(st, "np",
		&(struct svc_spec){
		    .name = "np", .type = SVC_NODE_PORT, .ports = np_ports, .n_ports = 3});
	put_svc(st, "claimer",
		&(struct svc_spec){
		    .name = "claimer", .type = SVC_LOAD_BALANCER, .ports = &claim, .n_ports = 1});
	put_svc(st, "fixed",
		&(struct svc_spec){
		    .name = "fixed", .type = SVC_NODE_PORT, .ports = fixed_ports, .n_ports = 1});
	put_svc(st, "cip", &(struct svc_spec){.name = "cip", .ports = fixed_ports, .n_ports = 1});
	put_svc(st, "cip0", &(struct svc_spec){.name = "cip0", .ports = np_ports, .n_ports = 1});
	build(st, a, &v);

	const struct model_service *np = find_vs(&v, "default", "np")->svc;
	for (size_t i = 0; i < 3; i++) {
		assert_in_range(np->ports[i].node_port, 30000, 32767);
		assert_true(np->ports[i].node_port_allocated);
		assert_int_not_equal(np->ports[i].node_port, free_pick);
		assert_int_not_equal(np->ports[i].node_port, 30080);
	}
	assert_int_not_equal(np->ports[0].node_port, np->ports[1].node_port);
	/* TCP and UDP 53 share one NodePort, as the API server gives them. */
	assert_int_equal(np->ports[1].node_port, np->ports[2].node_port);
	assert_int_equal(node_port_of(&v, "claimer", 0), free_pick);
	assert_false(find_vs(&v, "default", "claimer")->svc->ports[0].node_port_allocated);
	assert_int_equal(node_port_of(&v, "fixed", 0), 30080);
	/* A ClusterIP Service gets no NodePort. */
	assert_int_equal(node_port_of(&v, "cip0", 0), 0);
	model_view_free(&v);

	model_alloc_free(a);
	model_store_free(st);

	/* --node-port-range: allocation comes from it; an explicit nodePort
	 * outside it (the API server's range is its own) is served as it is. */
	static const struct port_spec far_ports[] = {{.port = 80, .node_port = 35000}};
	st = model_store_new();
	a = alloc_default();
	assert_int_equal(model_alloc_set_node_ports(a, 20000, 20002), 0);
	assert_int_equal(model_alloc_set_node_ports(a, 5, 4), -EINVAL);
	put_svc(st, "np",
		&(struct svc_spec){
		    .name = "np", .type = SVC_NODE_PORT, .ports = np_ports, .n_ports = 3});
	put_svc(st, "far",
		&(struct svc_spec){
		    .name = "far", .type = SVC_NODE_PORT, .ports = far_ports, .n_ports = 1});
	build(st, a, &v);
	np = find_vs(&v, "default", "np")->svc;
	for (size_t i = 0; i < 3; i++)
		assert_in_range(np->ports[i].node_port, 20000, 20002);
	assert_int_equal(node_port_of(&v, "far", 0), 35000);
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

/* ---- Pod IPs and derived endpoints -------------------------------------------- */

/* The article's example: a Service selecting app=my-app, port 80 to 8080,
 * and a Pod with no name and no status. */
static void test_article_example(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	char t[64];

	put_svc(st, "svc.yaml",
		&(struct svc_spec){.name = "my-service",
				   .selector = (const char *const[]){"app=my-app", NULL},
				   .ports = (struct port_spec[]){{.port = 80, .target_num = 8080}},
				   .n_ports = 1});
	put_pod(st, "pod.yaml",
		&(struct pod_spec){.name = "my-app-gen-0",
				   .name_generated = true,
				   .labels = (const char *const[]){"app=my-app", NULL},
				   .ports = (struct cport[]){{NULL, 8080, PROTO_TCP}},
				   .n_ports = 1});
	build(st, a, &v);

	assert_int_equal(v.n_svcs, 1);
	const struct view_service *vs = &v.svcs[0];
	assert_string_equal(vs->svc->name, "my-service");
	assert_true(vs->svc->cluster_ip_allocated);
	assert_false(vs->from_slices);
	assert_int_equal(vs->n_eps, 1);
	const struct view_endpoint *ep = &vs->eps[0];
	assert_true(ep->ready);
	assert_true(ep->serving);
	assert_false(ep->terminating);
	assert_int_equal(ep->target_ports[0], 8080);
	assert_string_equal(ep->pod_name, "my-app-gen-0");
	assert_null(ep->hostname);
	assert_int_equal(ep->addr.family, AF_INET);
	assert_int_equal(ep->addr.bytes[0], 10);
	assert_int_equal(ep->addr.bytes[1], 244);
	/* neither network nor broadcast address */
	assert_false(ep->addr.bytes[2] == 0 && ep->addr.bytes[3] == 0);
	assert_false(ep->addr.bytes[2] == 255 && ep->addr.bytes[3] == 255);
	struct net_addr first = ep->addr;
	model_view_free(&v);

	/* Sticky: rebuilding, and adding other Pods, keeps the address. */
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "other-%d", i);
		put_pod(st, name, &(struct pod_spec){.name = name});
	}
	build(st, a, &v);
	if (net_addr_cmp(&v.svcs[0].eps[0].addr, &first) != 0)
		fail_msg("pod moved to %s", addr_text(&v.svcs[0].eps[0].addr, t));
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

static void test_pod_ip_alloc(void **state)
{
	(void)state;
	static const char *const sel[] = {"app=x", NULL};
	static const char *const lbl[] = {"app=x", NULL};
	struct net_addr fresh;
	char t[64];

	/* What "auto" gets alone in a /29 pod range... */
	{
		struct model_store *st = model_store_new();
		struct model_alloc *a = alloc_with("10.96.0.0/12", "10.244.0.0/29");
		struct model_view v;
		put_svc(st, "s",
			&(struct svc_spec){.name = "s",
					   .selector = sel,
					   .ports = (struct port_spec[]){{.port = 80}},
					   .n_ports = 1});
		put_pod(st, "auto", &(struct pod_spec){.name = "auto", .labels = lbl});
		build(st, a, &v);
		assert_int_equal(v.svcs[0].n_eps, 1);
		fresh = v.svcs[0].eps[0].addr;
		model_view_free(&v);
		model_alloc_free(a);
		model_store_free(st);
	}
	/* ...is reserved when a Pod with a status holds it. */
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_with("10.96.0.0/12", "10.244.0.0/29");
	struct model_view v;
	put_svc(st, "s",
		&(struct svc_spec){.name = "s",
				   .selector = sel,
				   .ports = (struct port_spec[]){{.port = 80}},
				   .n_ports = 1});
	put_pod(st, "auto", &(struct pod_spec){.name = "auto", .labels = lbl});
	put_pod(st, "real",
		&(struct pod_spec){.name = "real",
				   .labels = lbl,
				   .has_status = true,
				   .ready = false,
				   .ip = addr_text(&fresh, t)});
	put_pod(
	    st, "noip",
	    &(struct pod_spec){.name = "noip", .labels = lbl, .has_status = true, .ready = true});
	put_pod(st, "done",
		&(struct pod_spec){.name = "done",
				   .labels = lbl,
				   .has_status = true,
				   .terminal = true,
				   .ip = "10.244.0.6"});
	/* bye takes another address of the range, so that auto has to avoid
	 * two claims. */
	char bye_ip[64];
	snprintf(bye_ip, sizeof(bye_ip), "10.244.0.%d", fresh.bytes[3] == 1 ? 2 : 1);
	put_pod(st, "bye",
		&(struct pod_spec){.name = "bye",
				   .labels = lbl,
				   .has_status = true,
				   .ready = true,
				   .terminating = true,
				   .ip = bye_ip});
	build(st, a, &v);
	const struct view_service *vs = &v.svcs[0];
	/* auto (ready, allocated), real (not ready), bye (terminating);
	 * noip has no address, done is terminal. */
	assert_int_equal(vs->n_eps, 3);
	size_t seen = 0;
	for (size_t i = 0; i < vs->n_eps; i++) {
		const struct view_endpoint *ep = &vs->eps[i];
		if (i)
			assert_true(net_addr_cmp(&vs->eps[i - 1].addr, &ep->addr) < 0);
		uint8_t last = ep->addr.bytes[3];
		assert_true(last >= 1 && last <= 6);
		if (strcmp(ep->pod_name, "auto") == 0) {
			assert_int_not_equal(net_addr_cmp(&ep->addr, &fresh), 0);
			assert_true(ep->ready);
			seen |= 1;
		} else if (strcmp(ep->pod_name, "real") == 0) {
			assert_int_equal(net_addr_cmp(&ep->addr, &fresh), 0);
			assert_false(ep->ready);
			assert_false(ep->serving);
			seen |= 2;
		} else if (strcmp(ep->pod_name, "bye") == 0) {
			assert_false(ep->ready);
			assert_true(ep->serving);
			assert_true(ep->terminating);
			seen |= 4;
		} else {
			fail_msg("unexpected endpoint %s", ep->pod_name);
		}
	}
	assert_int_equal(seen, 7);
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

static void test_derived_endpoints(void **state)
{
	(void)state;
	static const struct cport web_ports[] = {{"http", 8080, PROTO_TCP},
						 {"metrics", 9090, PROTO_TCP}};
	static const struct port_spec ports[] = {
	    {.name = "http", .port = 80, .target_name = "http"},
	    {.name = "metrics", .port = 9090, .target_name = "metrics", .proto = PROTO_UDP},
	    {.name = "raw", .port = 7000},
	};
	static const char *const web[] = {"app=web", "tier=fe", NULL};
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	char t[64];

	put_svc(st, "s",
		&(struct svc_spec){.name = "web", .selector = web, .ports = ports, .n_ports = 3});
	put_svc(st, "s",
		&(struct svc_spec){
		    .name = "web", .selector = web, .ports = ports, .n_ports = 3}); /* replaced */
	put_svc(
	    st, "hl",
	    &(struct svc_spec){
		.name = "hl", .cluster_ip = "None", .selector = web, .ports = ports, .n_ports = 1});
	put_svc(st, "nosel", &(struct svc_spec){.name = "nosel", .ports = ports, .n_ports = 1});
	put_svc(st, "empty",
		&(struct svc_spec){.name = "empty",
				   .selector = (const char *const[]){NULL},
				   .ports = ports,
				   .n_ports = 1});
	put_svc(st, "ext",
		&(struct svc_spec){.name = "ext",
				   .type = SVC_EXTERNAL_NAME,
				   .selector = web,
				   .ports = ports,
				   .n_ports = 1});
	put_svc(st, "other-ns",
		&(struct svc_spec){
		    .ns = "prod", .name = "web", .selector = web, .ports = ports, .n_ports = 1});

	const struct pod_spec pods[] = {
	    {.name = "w2",
	     .labels = (const char *const[]){"tier=fe", "app=web", "x=1", NULL},
	     .ports = web_ports,
	     .n_ports = 2,
	     .has_status = true,
	     .ready = true,
	     .ip = "10.1.0.20",
	     .ip6 = "fd00::20",
	     .node = "n1",
	     .hostname = "w2",
	     .subdomain = "hl"},
	    {.name = "w1",
	     .labels = web,
	     .ports = web_ports,
	     .n_ports = 1,
	     .has_status = true,
	     .ready = true,
	     .ip = "10.1.0.10",
	     .hostname = "w1",
	     .subdomain = "other"},
	    {.name = "half",
	     .labels = (const char *const[]){"app=web", NULL},
	     .has_status = true,
	     .ready = true,
	     .ip = "10.1.0.30"},
	    {.name = "wrongval",
	     .labels = (const char *const[]){"app=web", "tier=be", NULL},
	     .has_status = true,
	     .ready = true,
	     .ip = "10.1.0.31"},
	    {.ns = "prod",
	     .name = "pw",
	     .labels = web,
	     .has_status = true,
	     .ready = true,
	     .ip = "10.2.0.1"},
	};
	for (size_t i = 0; i < N_ELEMS(pods); i++) {
		char src[32];
		snprintf(src, sizeof(src), "pod-%zu", i);
		put_pod(st, src, &pods[i]);
	}
	build(st, a, &v);

	/* web: w1 and w2 (IPv4 only: the Service is single-stack IPv4), sorted. */
	const struct view_service *vs = find_vs(&v, "default", "web");
	assert_false(vs->from_slices);
	assert_int_equal(vs->n_eps, 2);
	static const struct {
		const char *addr;
		const char *pod;
		const char *node;
		uint16_t tp[3];
	} want[] = {
	    {"10.1.0.10", "w1", NULL, {8080, 0, 7000}},
	    {"10.1.0.20", "w2", "n1", {8080, 0, 7000}}, /* metrics is TCP on the Pod */
	};
	for (size_t i = 0; i < N_ELEMS(want); i++) {
		const struct view_endpoint *ep = &vs->eps[i];
		assert_string_equal(addr_text(&ep->addr, t), want[i].addr);
		assert_string_equal(ep->pod_name, want[i].pod);
		if (want[i].node)
			assert_string_equal(ep->node_name, want[i].node);
		else
			assert_null(ep->node_name);
		assert_null(ep->hostname); /* subdomain is not "web" */
		for (size_t k = 0; k < 3; k++)
			assert_int_equal(ep->target_ports[k], want[i].tp[k]);
	}

	/* headless "hl": both families of w2, hostname only for w2 (subdomain hl). */
	vs = find_vs(&v, "default", "hl");
	assert_int_equal(vs->n_eps, 3);
	assert_string_equal(addr_text(&vs->eps[0].addr, t), "10.1.0.10");
	assert_null(vs->eps[0].hostname);
	assert_string_equal(addr_text(&vs->eps[1].addr, t), "10.1.0.20");
	assert_string_equal(vs->eps[1].hostname, "w2");
	assert_string_equal(addr_text(&vs->eps[2].addr, t), "fd00::20");
	assert_string_equal(vs->eps[2].hostname, "w2");

	assert_int_equal(find_vs(&v, "default", "nosel")->n_eps, 0);
	assert_int_equal(find_vs(&v, "default", "empty")->n_eps, 0);
	assert_int_equal(find_vs(&v, "default", "ext")->n_eps, 0);
	vs = find_vs(&v, "prod", "web");
	assert_int_equal(vs->n_eps, 1);
	assert_string_equal(vs->eps[0].pod_name, "pw");

	/* Sorted by (ns, name). */
	for (size_t i = 1; i < v.n_svcs; i++) {
		int c = strcmp(v.svcs[i - 1].svc->ns, v.svcs[i].svc->ns);
		assert_true(c < 0 ||
			    (c == 0 && strcmp(v.svcs[i - 1].svc->name, v.svcs[i].svc->name) < 0));
	}
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

/* ---- EndpointSlices ----------------------------------------------------------- */

static void test_slices(void **state)
{
	(void)state;
	static const struct port_spec ports[] = {
	    {.name = "http", .port = 80, .target_num = 8080},
	    {.name = "dns", .port = 53, .proto = PROTO_UDP},
	    {.name = "", .port = 99},
	};
	static const char *const sel[] = {"app=web", NULL};
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	char t[64];

	put_svc(st, "svc",
		&(struct svc_spec){.name = "web", .selector = sel, .ports = ports, .n_ports = 3});
	put_svc(
	    st, "svc2",
	    &(struct svc_spec){.name = "fqdn-only", .selector = sel, .ports = ports, .n_ports = 1});
	/* A matching Pod that the slices must win over. */
	put_pod(
	    st, "pod",
	    &(struct pod_spec){
		.name = "p", .labels = sel, .has_status = true, .ready = true, .ip = "10.9.9.9"});
	/* During a rollout the same address appears in two slices. */
	put_slice(st, "s-old",
		  &(struct slice_spec){
		      .name = "web-old",
		      .service = "web",
		      .family = AF_INET,
		      .ports = (struct sport[]){{"http", 8080, PROTO_TCP}, {"dns", 53, PROTO_TCP}},
		      .n_ports = 2,
		      .eps = (struct ep_spec[]){{"10.0.0.2", false, true, NULL, "old"},
						{"10.0.0.1", true, false, "h1", "p1"}},
		      .n_eps = 2});
	put_slice(st, "s-new",
		  &(struct slice_spec){
		      .name = "web-new",
		      .service = "web",
		      .family = AF_INET,
		      .ports = (struct sport[]){{"dns", 5353, PROTO_UDP}, {"", 9999, PROTO_TCP}},
		      .n_ports = 2,
		      .eps = (struct ep_spec[]){{"10.0.0.2", true, false, NULL, "new"},
						{"10.0.0.3", false, false, NULL, NULL}},
		      .n_eps = 2});
	put_slice(
	    st, "s-v6",
	    &(struct slice_spec){.name = "web-v6",
				 .service = "web",
				 .family = AF_INET6,
				 .ports = (struct sport[]){{"http", 8080, PROTO_TCP}},
				 .n_ports = 1,
				 .eps = (struct ep_spec[]){{"fd00::1", true, false, NULL, NULL}},
				 .n_eps = 1});
	put_slice(st, "s-fqdn",
		  &(struct slice_spec){
		      .name = "fq",
		      .service = "fqdn-only",
		      .family = 0,
		      .ports = (struct sport[]){{"http", 80, PROTO_TCP}},
		      .n_ports = 1,
		      .eps = (struct ep_spec[]){{"x.example.com", true, false, NULL, NULL}},
		      .n_eps = 1});
	put_slice(
	    st, "s-orphan",
	    &(struct slice_spec){.name = "orphan",
				 .service = "gone",
				 .family = AF_INET,
				 .eps = (struct ep_spec[]){{"10.0.0.99", true, false, NULL, NULL}},
				 .n_eps = 1});
	put_slice(
	    st, "s-other-ns",
	    &(struct slice_spec){.ns = "prod",
				 .name = "web-x",
				 .service = "web",
				 .family = AF_INET,
				 .eps = (struct ep_spec[]){{"10.0.0.98", true, false, NULL, NULL}},
				 .n_eps = 1});
	build(st, a, &v);

	const struct view_service *vs = find_vs(&v, "default", "web");
	assert_true(vs->from_slices);
	static const struct {
		const char *addr;
		bool ready;
		bool terminating;
		const char *hostname;
		const char *pod;
		uint16_t tp[3];
	} want[] = {
	    {"10.0.0.1", true, false, "h1", "p1", {8080, 0, 0}},
	    /* merged: ready in the new slice, ports from both */
	    {"10.0.0.2", true, false, NULL, "new", {8080, 5353, 9999}},
	    {"10.0.0.3", false, false, NULL, NULL, {0, 5353, 9999}},
	    {"fd00::1", true, false, NULL, NULL, {8080, 0, 0}},
	};
	assert_int_equal(vs->n_eps, N_ELEMS(want));
	for (size_t i = 0; i < N_ELEMS(want); i++) {
		const struct view_endpoint *ep = &vs->eps[i];
		assert_string_equal(addr_text(&ep->addr, t), want[i].addr);
		assert_int_equal(ep->ready, want[i].ready);
		assert_int_equal(ep->terminating, want[i].terminating);
		if (want[i].hostname)
			assert_string_equal(ep->hostname, want[i].hostname);
		else
			assert_null(ep->hostname);
		if (want[i].pod)
			assert_string_equal(ep->pod_name, want[i].pod);
		else
			assert_null(ep->pod_name);
		for (size_t k = 0; k < 3; k++)
			if (ep->target_ports[k] != want[i].tp[k])
				fail_msg("%s port %zu: got %u want %u", want[i].addr, k,
					 ep->target_ports[k], want[i].tp[k]);
	}
	/* An FQDN slice is ignored: the selector applies. */
	vs = find_vs(&v, "default", "fqdn-only");
	assert_false(vs->from_slices);
	assert_int_equal(vs->n_eps, 1);
	assert_string_equal(addr_text(&vs->eps[0].addr, t), "10.9.9.9");
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

/* ---- namespaces and copying ------------------------------------------------------ */

static void test_namespaces_and_copy(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	struct model_object objs[] = {mk_ns("zeta"), mk_ns("default"), mk_ns("empty")};

	put(st, "ns.yaml", objs, N_ELEMS(objs));
	put_svc(st, "s",
		&(struct svc_spec){.ns = "kube-system",
				   .name = "dns",
				   .selector = (const char *const[]){"k=v", NULL}});
	put_pod(st, "p",
		&(struct pod_spec){
		    .ns = "apps", .name = "p", .labels = (const char *const[]){"k=v", NULL}});
	put_slice(
	    st, "sl",
	    &(struct slice_spec){.ns = "beta", .name = "x", .service = "y", .family = AF_INET});
	build(st, a, &v);

	static const char *const want[] = {"apps",  "beta",	   "default",
					   "empty", "kube-system", "zeta"};
	assert_int_equal(v.n_namespaces, N_ELEMS(want));
	for (size_t i = 0; i < N_ELEMS(want); i++)
		assert_string_equal(v.namespaces[i], want[i]);

	/* The view owns its data: emptying the store leaves it intact (ASan
	 * reports any use of freed memory). */
	model_store_free(st);
	assert_string_equal(v.svcs[0].svc->name, "dns");
	assert_string_equal(v.svcs[0].svc->selector.items[0].key, "k");
	assert_int_equal(v.svcs[0].n_eps, 0);
	assert_string_equal(v.namespaces[0], "apps");
	model_view_free(&v);
	model_alloc_free(a);
}

/* ---- the store ------------------------------------------------------------------- */

static void test_store_duplicates(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	char t[64];

	put_svc(st, "a.yaml", &(struct svc_spec){.name = "web", .cluster_ip = "10.96.0.10"});
	struct model_object b[] = {
	    mk_svc(&(struct svc_spec){.name = "web", .cluster_ip = "10.96.0.20"}),
	    mk_svc(&(struct svc_spec){.name = "other"}),
	    mk_svc(&(struct svc_spec){.name = "other", .cluster_ip = "10.96.0.30"}),
	    mk_pod(&(struct pod_spec){.name = "web"}),		     /* another kind: no clash */
	    mk_svc(&(struct svc_spec){.ns = "prod", .name = "web"}), /* another ns */
	};
	put(st, "b.yaml", b, N_ELEMS(b));

	assert_non_null(model_store_find(st, "a.yaml", KIND_SERVICE, "default", "web"));
	assert_null(model_store_find(st, "b.yaml", KIND_SERVICE, "default", "web"));
	assert_non_null(model_store_find(st, "b.yaml", KIND_SERVICE, "default", "other"));
	assert_non_null(model_store_find(st, "b.yaml", KIND_POD, "default", "web"));
	assert_non_null(model_store_find(st, "b.yaml", KIND_SERVICE, "prod", "web"));
	assert_null(model_store_find(st, "a.yaml", KIND_POD, "default", "web"));
	assert_null(model_store_find(st, "c.yaml", KIND_SERVICE, "default", "web"));

	build(st, a, &v);
	assert_int_equal(v.n_svcs, 3);
	const struct model_service *web = find_vs(&v, "default", "web")->svc;
	assert_string_equal(addr_text(&web->cluster_ips[0], t), "10.96.0.10");
	/* Within one file the first one is kept too. */
	assert_true(find_vs(&v, "default", "other")->svc->cluster_ip_allocated);
	model_view_free(&v);

	/* a.yaml replaced with something else: the name is free again, and b's
	 * version was dropped when b was stored, so nobody holds it. */
	put_svc(st, "a.yaml", &(struct svc_spec){.name = "api"});
	assert_null(model_store_find(st, "a.yaml", KIND_SERVICE, "default", "web"));
	put_svc(st, "c.yaml", &(struct svc_spec){.name = "web", .cluster_ip = "10.96.0.40"});
	const struct model_object *o =
	    model_store_find(st, "c.yaml", KIND_SERVICE, "default", "web");
	assert_non_null(o);
	assert_string_equal(addr_text(&o->u.svc->cluster_ips[0], t), "10.96.0.40");
	model_alloc_free(a);
	model_store_free(st);
}

static void test_store_replace_and_remove(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;

	struct model_object one[] = {
	    mk_svc(&(struct svc_spec){.name = "a"}),
	    mk_svc(&(struct svc_spec){.name = "b"}),
	    mk_ns("team"),
	};
	put(st, "f.yaml", one, N_ELEMS(one));
	put_svc(st, "g.yaml", &(struct svc_spec){.name = "g"});
	assert_non_null(model_store_find(st, "f.yaml", KIND_NAMESPACE, NULL, "team"));

	/* The whole contribution of f.yaml is swapped: b stays (new version),
	 * a and the namespace go, c comes. */
	struct model_object two[] = {
	    mk_svc(&(struct svc_spec){.name = "b", .cluster_ip = "10.96.7.7"}),
	    mk_svc(&(struct svc_spec){.name = "c"}),
	};
	put(st, "f.yaml", two, N_ELEMS(two));
	assert_null(model_store_find(st, "f.yaml", KIND_SERVICE, "default", "a"));
	assert_null(model_store_find(st, "f.yaml", KIND_NAMESPACE, NULL, "team"));
	const struct model_object *b = model_store_find(st, "f.yaml", KIND_SERVICE, "default", "b");
	assert_non_null(b);
	assert_int_equal(b->u.svc->n_cluster_ips, 1);
	assert_non_null(model_store_find(st, "f.yaml", KIND_SERVICE, "default", "c"));

	build(st, a, &v);
	static const char *const want[] = {"b", "c", "g"};
	assert_int_equal(v.n_svcs, N_ELEMS(want));
	for (size_t i = 0; i < N_ELEMS(want); i++)
		assert_string_equal(v.svcs[i].svc->name, want[i]);
	assert_int_equal(v.n_namespaces, 1);
	model_view_free(&v);

	model_store_remove(st, "f.yaml");
	model_store_remove(st, "nonexistent");
	assert_null(model_store_find(st, "f.yaml", KIND_SERVICE, "default", "b"));
	build(st, a, &v);
	assert_int_equal(v.n_svcs, 1);
	assert_string_equal(v.svcs[0].svc->name, "g");
	model_view_free(&v);

	/* An empty replace is a removal; the name is then free for others. */
	put(st, "g.yaml", NULL, 0);
	put_svc(st, "h.yaml", &(struct svc_spec){.name = "g"});
	assert_non_null(model_store_find(st, "h.yaml", KIND_SERVICE, "default", "g"));
	build(st, a, &v);
	assert_int_equal(v.n_svcs, 1);
	model_view_free(&v);
	model_alloc_free(a);
	model_store_free(st);
}

/* Many sources, replaced and removed in turns: the index stays consistent. */
static void test_store_churn(void **state)
{
	(void)state;
	struct model_store *st = model_store_new();
	struct model_alloc *a = alloc_default();
	struct model_view v;
	enum { N = 3000 };
	char src[32], name[32];

	log_set_level(LOG_ERROR);
	for (int i = 0; i < N; i++) {
		snprintf(src, sizeof(src), "f%d", i);
		snprintf(name, sizeof(name), "s%d", i % (N / 2)); /* half are duplicates */
		put_svc(st, src, &(struct svc_spec){.name = name});
	}
	for (int i = 0; i < N; i += 3) {
		snprintf(src, sizeof(src), "f%d", i);
		model_store_remove(st, src);
	}
	for (int i = 0; i < N / 2; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		bool held = false;
		for (int k = i; k < N && !held; k += N / 2) {
			snprintf(src, sizeof(src), "f%d", k);
			held = model_store_find(st, src, KIND_SERVICE, "default", name) != NULL;
		}
		/* held by f<i> unless f<i> was removed (i % 3 == 0) */
		if (held != (i % 3 != 0))
			fail_msg("%s: held=%d", name, held);
	}
	build(st, a, &v);
	size_t want = 0;
	for (int i = 0; i < N / 2; i++)
		want += i % 3 != 0;
	assert_int_equal(v.n_svcs, want);
	model_view_free(&v);
	log_set_level(LOG_INFO);
	model_alloc_free(a);
	model_store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_selector_matches),
	    cmocka_unit_test(test_resolve_target_port),
	    cmocka_unit_test(test_cluster_ip_deterministic),
	    cmocka_unit_test(test_cluster_ip_skips_reserved),
	    cmocka_unit_test(test_cluster_ip_explicit_reserved),
	    cmocka_unit_test(test_cluster_ip_sticky),
	    cmocka_unit_test(test_cluster_ip_ipv6),
	    cmocka_unit_test(test_node_port),
	    cmocka_unit_test(test_article_example),
	    cmocka_unit_test(test_pod_ip_alloc),
	    cmocka_unit_test(test_derived_endpoints),
	    cmocka_unit_test(test_slices),
	    cmocka_unit_test(test_namespaces_and_copy),
	    cmocka_unit_test(test_store_duplicates),
	    cmocka_unit_test(test_store_replace_and_remove),
	    cmocka_unit_test(test_store_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
