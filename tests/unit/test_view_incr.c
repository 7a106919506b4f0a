/* model_view_update gives the view model_view_build gives: two stores get the
 * same random changes, one is viewed incrementally after every step and the
 * other in full, each with its own allocator, and the views must be equal in
 * every field, allocations included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/labelsel.h"
#include "discovery/manifest.h"
#include "discovery/model.h"

static unsigned rnd(unsigned *seed, unsigned n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) % n;
}

static const char *const nss[] = {"a", "b", "c"};

/* One random object as YAML appended to buf. */
static void gen_object(unsigned *seed, char *buf, size_t cap)
{
	size_t len = strlen(buf);
	const char *ns = nss[rnd(seed, 3)];
	unsigned k = rnd(seed, 8);
	unsigned kind = rnd(seed, 10);

	if (len)
		len += (size_t)snprintf(buf + len, cap - len, "---\n");
	if (rnd(seed, 30) == 0) {
		/* Now and then a ServiceImport or a multicluster slice: the next
		 * view is a full one, and the imports are shared until then. */
		if (rnd(seed, 2))
			snprintf(buf + len, cap - len,
				 "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\n"
				 "metadata: {name: s%u, namespace: %s}\nspec:\n  type: %s\n"
				 "  ports: [{name: http, port: 80, protocol: TCP}]\n",
				 k, ns,
				 rnd(seed, 2) ? "Headless" : "ClusterSetIP\n  ips: [10.42.0.1]");
		else
			snprintf(
			    buf + len, cap - len,
			    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
			    "metadata: {name: mc%u-%u, namespace: %s, labels: "
			    "{multicluster.kubernetes.io/service-name: s%u, "
			    "multicluster.kubernetes.io/source-cluster: c%u}}\naddressType: IPv4\n"
			    "ports: [{name: http, port: 8080}]\nendpoints:\n"
			    "- {addresses: [10.245.1.%u], hostname: h%u}\n",
			    k, rnd(seed, 2), ns, k, rnd(seed, 2), rnd(seed, 6), rnd(seed, 3));
		return;
	}
	if (kind < 4) {
		static const char *const types[] = {"ClusterIP", "NodePort", "ClusterIP"};
		unsigned t = rnd(seed, 3);
		len += (size_t)snprintf(buf + len, cap - len,
					"apiVersion: v1\nkind: Service\nmetadata: {name: s%u, "
					"namespace: %s}\nspec:\n  type: %s\n",
					k, ns, types[t]);
		unsigned ip = rnd(seed, 4);
		if (ip == 0)
			len += (size_t)snprintf(buf + len, cap - len, "  clusterIP: None\n");
		else if (ip == 1)
			len += (size_t)snprintf(buf + len, cap - len, "  clusterIP: 10.96.0.%u\n",
						2 + rnd(seed, 6));
		if (rnd(seed, 2))
			len += (size_t)snprintf(buf + len, cap - len, "  selector: {app: p%u}\n",
						rnd(seed, 3));
		len += (size_t)snprintf(buf + len, cap - len, "  ports:\n  - {name: http, port: %u",
					80 + rnd(seed, 2));
		if (t == 1 && rnd(seed, 2))
			len += (size_t)snprintf(buf + len, cap - len, ", nodePort: %u",
						30000 + rnd(seed, 4));
		len += (size_t)snprintf(buf + len, cap - len, "}\n");
	} else if (kind < 7) {
		len += (size_t)snprintf(buf + len, cap - len,
					"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
					"metadata: {name: s%u-%u, namespace: %s, labels: "
					"{kubernetes.io/service-name: s%u}}\naddressType: IPv4\n"
					"ports: [{name: http, port: %u}]\nendpoints:\n",
					k, rnd(seed, 2), ns, k, 8000 + rnd(seed, 2));
		/* The endpoint's zone and hints change alone too (topology). */
		static const char *const topo[] = {"", ", zone: z0", ", zone: z1",
						   ", zone: z0, hints: {forZones: [{name: z1}]}"};
		for (unsigned e = 0, n = 1 + rnd(seed, 3); e < n; e++)
			len += (size_t)snprintf(buf + len, cap - len,
						"- {addresses: [10.244.1.%u], nodeName: n%u%s, "
						"conditions: {ready: %s}}\n",
						rnd(seed, 6), rnd(seed, 2), topo[rnd(seed, 4)],
						rnd(seed, 4) ? "true" : "false");
	} else if (kind < 9) {
		len += (size_t)snprintf(
		    buf + len, cap - len,
		    "apiVersion: v1\nkind: Pod\nmetadata: {name: pod%u, namespace: %s, labels: "
		    "{app: p%u}}\nspec:\n  nodeName: n%u\n  containers:\n  - name: c\n"
		    "    ports: [{containerPort: %u}]\n",
		    k, ns, rnd(seed, 3), rnd(seed, 2), 9000 + rnd(seed, 2));
		/* Mostly with a status: Pods without one force full builds. */
		if (rnd(seed, 6))
			len += (size_t)snprintf(
			    buf + len, cap - len, "status:\n  phase: %s\n  podIP: 10.244.2.%u\n",
			    rnd(seed, 5) ? "Running" : "Succeeded", rnd(seed, 8));
	} else {
		/* Labels that move the namespace in and out of --namespace-labels. */
		static const char *const teams[] = {"x", "y", NULL};
		const char *team = teams[rnd(seed, 3)];
		snprintf(buf + len, cap - len,
			 "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {%s%s}}\n",
			 ns, team ? "team: " : "", team ? team : "");
	}
}

static void apply(struct model_store *st, const char *source, const char *yaml)
{
	struct manifest_result r = {0};
	if (!yaml) {
		model_store_remove(st, source);
		return;
	}
	assert_int_equal(manifest_decode(source, yaml, strlen(yaml), &r), 0);
	assert_int_equal(model_store_replace(st, source, r.objs, r.n_objs), 0);
	r.n_objs = 0; /* the store owns them now */
	manifest_result_free(&r);
}

static void str_same(const char *a, const char *b)
{
	assert_int_equal(a == NULL, b == NULL);
	if (a)
		assert_string_equal(a, b);
}

static void svcs_same(const struct view_service *xs, const struct view_service *ys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct view_service *p = &xs[i], *q = &ys[i];
		const struct model_service *a = p->svc, *b = q->svc;
		assert_int_equal(a->imported, b->imported);
		assert_string_equal(a->ns, b->ns);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->type, b->type);
		assert_int_equal(a->headless, b->headless);
		assert_int_equal(a->n_cluster_ips, b->n_cluster_ips);
		assert_int_equal(a->cluster_ip_allocated, b->cluster_ip_allocated);
		for (size_t j = 0; j < a->n_cluster_ips; j++)
			assert_int_equal(net_addr_cmp(&a->cluster_ips[j], &b->cluster_ips[j]), 0);
		assert_int_equal(a->n_ports, b->n_ports);
		for (size_t j = 0; j < a->n_ports; j++) {
			assert_int_equal(a->ports[j].port, b->ports[j].port);
			assert_int_equal(a->ports[j].node_port, b->ports[j].node_port);
			assert_int_equal(a->ports[j].node_port_allocated,
					 b->ports[j].node_port_allocated);
			str_same(a->ports[j].name, b->ports[j].name);
		}
		assert_int_equal(p->from_slices, q->from_slices);
		assert_int_equal(p->n_eps, q->n_eps);
		for (size_t e = 0; e < p->n_eps; e++) {
			const struct view_endpoint *u = &p->eps[e], *v = &q->eps[e];
			assert_int_equal(net_addr_cmp(&u->addr, &v->addr), 0);
			assert_int_equal(u->ready, v->ready);
			assert_int_equal(u->serving, v->serving);
			assert_int_equal(u->terminating, v->terminating);
			str_same(u->hostname, v->hostname);
			str_same(u->node_name, v->node_name);
			str_same(u->pod_name, v->pod_name);
			str_same(u->cluster, v->cluster);
			str_same(u->zone, v->zone);
			str_same(u->for_zones, v->for_zones);
			for (size_t j = 0; j < a->n_ports; j++)
				assert_int_equal(u->target_ports[j], v->target_ports[j]);
		}
	}
}

static void views_same(const struct model_view *x, const struct model_view *y)
{
	assert_int_equal(x->n_namespaces, y->n_namespaces);
	for (size_t i = 0; i < x->n_namespaces; i++)
		assert_string_equal(x->namespaces[i], y->namespaces[i]);
	assert_int_equal(x->n_pod_nss, y->n_pod_nss);
	for (size_t i = 0; i < x->n_pod_nss; i++) {
		assert_string_equal(x->pod_nss[i].ns, y->pod_nss[i].ns);
		assert_int_equal(x->pod_nss[i].lo, y->pod_nss[i].lo);
		assert_int_equal(x->pod_nss[i].hi, y->pod_nss[i].hi);
	}
	assert_int_equal(x->n_pod_addrs, y->n_pod_addrs);
	for (size_t i = 0; i < x->n_pod_addrs; i++)
		assert_int_equal(net_addr_cmp(&x->pod_addrs[i], &y->pod_addrs[i]), 0);
	assert_int_equal(x->n_svcs, y->n_svcs);
	svcs_same(x->svcs, y->svcs, x->n_svcs);
	assert_int_equal(x->multicluster, y->multicluster);
	assert_int_equal(x->n_imports, y->n_imports);
	svcs_same(x->imports, y->imports, x->n_imports);
}

/* Random changes with an optional namespace selector on both stores, and
 * the Pods' addresses kept (--pods verified) or not. */
static void random_changes(const char *selector, bool pod_addrs)
{
	struct label_selector *sel = NULL;
	char why[128];
	assert_int_equal(label_selector_parse(selector, &sel, why, sizeof(why)), 0);
	struct model_store *si = model_store_new(), *sf = model_store_new();
	if (selector) {
		model_store_set_ns_selector(si, sel);
		model_store_set_ns_selector(sf, sel);
	}
	model_store_keep_pod_addrs(si, pod_addrs);
	model_store_keep_pod_addrs(sf, pod_addrs);
	struct model_alloc *ai = model_alloc_new(NULL, NULL), *af = model_alloc_new(NULL, NULL);
	struct model_view vi = {0}, vf;
	unsigned seed = 1, incremental = 0, shared = 0, mc_eps = 0;
	static char yaml[16384];

	for (int step = 0; step < 1500; step++) {
		char source[16];
		snprintf(source, sizeof(source), "src%u", rnd(&seed, 40));
		/* Several sources per step now and then, as a burst of events. */
		for (unsigned n = 1 + (rnd(&seed, 5) == 0 ? rnd(&seed, 6) : 0); n > 0; n--) {
			snprintf(source, sizeof(source), "src%u", rnd(&seed, 40));
			yaml[0] = '\0';
			bool remove = rnd(&seed, 5) == 0;
			for (unsigned k = 1 + rnd(&seed, 2); !remove && k > 0; k--)
				gen_object(&seed, yaml, sizeof(yaml));
			apply(si, source, remove ? NULL : yaml);
			apply(sf, source, remove ? NULL : yaml);
		}
		struct model_view next;
		assert_int_equal(model_view_update(si, ai, step ? &vi : NULL, &next), 0);
		assert_int_equal(model_view_build(sf, af, &vf), 0);
		if (next.base_id) {
			assert_int_equal(next.base_id, vi.id);
			incremental++;
			shared += next.n_imports > 0;
		}
		for (size_t i = 0; i < next.n_imports; i++)
			mc_eps += next.imports[i].n_eps > 0;
		views_same(&next, &vf);
		model_view_free(&vf);
		model_view_free(&vi);
		vi = next;
	}
	/* Most steps must have taken the incremental path, with imports about. */
	assert_true(incremental > 500);
	assert_true(vi.multicluster);
	assert_true(shared > 100); /* incremental views sharing imports */
	assert_true(mc_eps > 20);  /* views with imports that have endpoints from their slices */
	model_view_free(&vi);
	model_alloc_free(ai);
	model_alloc_free(af);
	model_store_free(si);
	model_store_free(sf);
	label_selector_free(sel);
}

static void test_random_changes(void **state)
{
	(void)state;
	random_changes(NULL, false);
}

/* Namespaces whose labels move in and out of the selector take their Services
 * in and out of the view, incrementally, as a full build would. */
static void test_random_changes_ns_selector(void **state)
{
	(void)state;
	random_changes("team=x", false);
	random_changes("team notin (y)", true);
}

/* The Pods' addresses (--pods verified) follow Pods incrementally as a full
 * build gives them. */
static void test_random_changes_pod_addrs(void **state)
{
	(void)state;
	random_changes(NULL, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_changes),
	    cmocka_unit_test(test_random_changes_ns_selector),
	    cmocka_unit_test(test_random_changes_pod_addrs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
