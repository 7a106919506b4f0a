/* Incremental snapshot builds answer exactly like full builds of the same
 * data: a cluster is changed in several ways, the incremental snapshot and a
 * full one of the changed cluster are asked the same questions, and every
 * answer must match (the SOA serial aside). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "discovery/manifest.h"
#include "discovery/model.h"
#include "dns/query.h"
#include "wire/dname.h"
#include "zones/snapshot.h"

static const char *const base_yaml =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    "spec:\n  clusterIP: 10.96.0.10\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n"
    "  - {name: metrics, port: 9110}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n"
    "spec:\n  clusterIP: 10.96.0.11\n  ports:\n  - {name: grpc, port: 9000}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
    "spec:\n  clusterIP: None\n  ports:\n  - {name: pg, port: 5432}\n---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: db-1, namespace: shop, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv4\nports: [{name: pg, port: 5432}]\nendpoints:\n"
    "- {addresses: [10.244.0.1], hostname: db-0}\n- {addresses: [10.244.0.2], hostname: db-1}\n"
    "- {addresses: [10.244.0.3], hostname: db-2, conditions: {ready: false}}\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\n"
    "spec: {type: ExternalName, externalName: example.com}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: gone, namespace: default}\n"
    "spec:\n  clusterIP: 10.96.0.20\n  ports: [{name: http, port: 80}]\n";

/* The same cluster, changed: web moved address and lost a port, db's endpoint
 * that was not ready is ready, one is gone and a new one is not ready yet
 * (coming names), gone was deleted, new was added. */
static const char *const changed_yaml =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    "spec:\n  clusterIP: 10.96.0.12\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n"
    "spec:\n  clusterIP: 10.96.0.11\n  ports:\n  - {name: grpc, port: 9000}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
    "spec:\n  clusterIP: None\n  ports:\n  - {name: pg, port: 5432}\n---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: db-1, namespace: shop, labels: {kubernetes.io/service-name: db}}\n"
    "addressType: IPv4\nports: [{name: pg, port: 5432}]\nendpoints:\n"
    "- {addresses: [10.244.0.1], hostname: db-0}\n- {addresses: [10.244.0.3], hostname: db-2}\n"
    "- {addresses: [10.244.0.4], hostname: db-3, conditions: {ready: false}}\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\n"
    "spec: {type: ExternalName, externalName: example.com}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: new, namespace: default}\n"
    "spec:\n  clusterIP: 10.96.0.30\n  ports: [{name: http, port: 80}]\n";

/* A change an incremental build cannot make alone: a new namespace. */
static const char *const new_ns_yaml =
    "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: elsewhere}\n"
    "spec:\n  clusterIP: 10.96.0.40\n  ports: [{name: http, port: 80}]\n";

static const char *const questions[][2] = {
    {"web.shop.svc.cluster.local", "A"},
    {"web.shop.svc", "A"},
    {"_http._tcp.web.shop.svc.cluster.local", "SRV"},
    {"_metrics._tcp.web.shop.svc.cluster.local", "SRV"},
    {"_tcp.web.shop.svc.cluster.local", "A"},
    {"web.shop.svc.cluster.local", "SRV"},
    {"api.shop.svc.cluster.local", "A"},
    {"db.shop.svc.cluster.local", "A"},
    {"db-0.db.shop.svc.cluster.local", "A"},
    {"db-1.db.shop.svc.cluster.local", "A"},
    {"db-2.db.shop.svc.cluster.local", "A"},
    {"db-2.db.shop.svc.cluster.local", "TXT"},
    {"db-3.db.shop.svc.cluster.local", "A"},
    {"x.db-3.db.shop.svc.cluster.local", "A"},
    {"_pg._tcp.db.shop.svc.cluster.local", "SRV"},
    {"ext.default.svc.cluster.local", "A"},
    {"gone.default.svc.cluster.local", "A"},
    {"gone.default.svc", "A"},
    {"new.default.svc.cluster.local", "A"},
    {"_http._tcp.new.default.svc.cluster.local", "SRV"},
    {"10.0.96.10.in-addr.arpa", "PTR"},
    {"12.0.96.10.in-addr.arpa", "PTR"},
    {"20.0.96.10.in-addr.arpa", "PTR"},
    {"30.0.96.10.in-addr.arpa", "PTR"},
    {"2.0.244.10.in-addr.arpa", "PTR"},
    {"3.0.244.10.in-addr.arpa", "PTR"},
    {"shop.svc.cluster.local", "A"},
    {"default.svc.cluster.local", "A"},
    {"cluster.local", "NS"},
    {"dns-version.cluster.local", "TXT"},
    {"nope.shop.svc.cluster.local", "A"},
    {"other.elsewhere.svc.cluster.local", "A"},
    {"elsewhere.svc.cluster.local", "A"},
};

static struct model_store *store;
static struct model_alloc *alloc;
static struct snapshot_config cfg = {.zone = "cluster.local", .ttl = 5, .hostname = "t"};

static void load(const char *source, const char *yaml)
{
	struct manifest_result r = {0};
	assert_int_equal(manifest_decode(source, yaml, strlen(yaml), &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(model_store_replace(store, source, r.objs, r.n_objs), 0);
	r.n_objs = 0; /* the store owns them now */
	manifest_result_free(&r);
}

static struct snapshot *build(const struct snapshot *prev)
{
	struct model_view v;
	struct snapshot *s = NULL;
	assert_int_equal(model_view_build(store, alloc, &v), 0);
	assert_int_equal(snapshot_build(&cfg, &v, prev, &s), 0);
	s->synced = true;
	return s;
}

/* One answer as text, with the SOA serial blanked. */
static char *answer_text(const struct snapshot *s, const char *name, const char *type)
{
	uint8_t req[512], resp[DNS_MAX_MSG];
	ldns_pkt *q = NULL;
	assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, ldns_get_rr_type_by_name(type),
						    LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 7);
	uint8_t *wire = NULL;
	size_t len = 0;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	memcpy(req, wire, len);
	free(wire);
	ldns_pkt_free(q);
	struct dns_query_info info;
	size_t n = dns_answer(s, req, len, resp, sizeof(resp), DNS_TCP, &info);
	ldns_pkt *p = NULL;
	assert_int_equal(ldns_wire2pkt(&p, resp, n), LDNS_STATUS_OK);
	ldns_rr_list *sections[2] = {ldns_pkt_answer(p), ldns_pkt_authority(p)};
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < ldns_rr_list_rr_count(sections[k]); i++) {
			ldns_rr *rr = ldns_rr_list_rr(sections[k], i);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA)
				ldns_rdf_deep_free(ldns_rr_set_rdf(
				    rr, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, 1), 2));
		}
	ldns_rr_list_sort(ldns_pkt_answer(p));
	ldns_rr_list_sort(ldns_pkt_additional(p));
	ldns_pkt_set_id(p, 0);
	char *text = ldns_pkt2str(p);
	ldns_pkt_free(p);
	/* drop the timing lines ldns prints */
	char *cut = strstr(text, ";; Query time");
	if (cut)
		*cut = '\0';
	return text;
}

static void compare(const struct snapshot *a, const struct snapshot *b)
{
	for (size_t i = 0; i < sizeof(questions) / sizeof(questions[0]); i++) {
		char *x = answer_text(a, questions[i][0], questions[i][1]);
		char *y = answer_text(b, questions[i][0], questions[i][1]);
		if (strcmp(x, y) != 0)
			fail_msg("%s %s differs:\nincremental:\n%s\nfull:\n%s", questions[i][0],
				 questions[i][1], x, y);
		free(x);
		free(y);
	}
}

static void test_incremental_matches_full(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);

	load("a.yaml", base_yaml);
	struct snapshot *s1 = build(NULL);
	assert_false(s1->incremental);
	char *t = answer_text(s1, "gone.default.svc.cluster.local", "A");
	assert_non_null(strstr(t, "10.96.0.20"));
	free(t);

	load("a.yaml", changed_yaml);
	struct snapshot *s2 = build(s1);
	assert_true(s2->incremental);
	struct snapshot *full = build(NULL);
	assert_false(full->incremental);
	compare(s2, full);
	t = answer_text(s2, "gone.default.svc.cluster.local", "A");
	assert_non_null(strstr(t, "NXDOMAIN"));
	free(t);
	t = answer_text(s2, "new.default.svc.cluster.local", "A");
	assert_non_null(strstr(t, "10.96.0.30"));
	free(t);
	t = answer_text(s1, "db-2.db.shop.svc.cluster.local", "A");
	assert_non_null(strstr(t, "NXDOMAIN"));
	assert_non_null(strstr(t, "86400 0")); /* the coming name's SOA MINIMUM */
	free(t);
	t = answer_text(s2, "db-2.db.shop.svc.cluster.local", "A");
	assert_non_null(strstr(t, "10.244.0.3"));
	free(t);
	assert_true(s2->serial > s1->serial);

	/* a chain of incremental builds, back and forth */
	load("a.yaml", base_yaml);
	struct snapshot *s3 = build(s2);
	assert_true(s3->incremental);
	snapshot_free(full);
	full = build(NULL);
	compare(s3, full);
	snapshot_free(full);

	/* a new namespace: a full build */
	load("b.yaml", new_ns_yaml);
	struct snapshot *s4 = build(s3);
	assert_false(s4->incremental);
	full = build(NULL);
	compare(s4, full);
	t = answer_text(s4, "other.elsewhere.svc.cluster.local", "A");
	assert_non_null(strstr(t, "10.96.0.40"));
	free(t);

	/* older snapshots stay valid while newer ones share their nodes, and
	 * may be freed in any order */
	snapshot_free(s2);
	t = answer_text(s3, "web.shop.svc.cluster.local", "A");
	assert_non_null(strstr(t, "10.96.0.10"));
	free(t);
	snapshot_free(s1);
	snapshot_free(s3);
	snapshot_free(s4);
	snapshot_free(full);
	model_alloc_free(alloc);
	model_store_free(store);
}

/* An incremental build renders the apex again (its SOA serial changes): the
 * nameserver's glue comes from the older build's node. */
static void test_incremental_glue(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);
	static const char *const dns_yaml =
	    "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\n"
	    "spec:\n  clusterIP: 10.96.0.53\n  ports: [{name: dns, port: 53, protocol: UDP}]\n";
	load("dns.yaml", dns_yaml);
	load("a.yaml", base_yaml);
	struct snapshot *s1 = build(NULL);
	load("a.yaml", changed_yaml);
	struct snapshot *s2 = build(s1);
	assert_true(s2->incremental);
	struct snapshot *full = build(NULL);
	compare(s2, full);
	char *t = answer_text(s2, "cluster.local", "NS");
	assert_non_null(strstr(t, "10.96.0.53"));
	free(t);
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(full);
	model_alloc_free(alloc);
	model_store_free(store);
}

/* ---- a long line of incremental builds ------------------------------------
 * Services change address, go away and come back, one or two per build, for
 * far more builds than the overlay takes before it is merged into a new base
 * (and than the arenas a line may hold): after every build the answers equal
 * a full build's. */

#define CHURN_SVCS   24
#define CHURN_BUILDS 150

static char *churn_yaml(const bool *present, const unsigned *ipv)
{
	size_t cap = 512 * CHURN_SVCS, len = 0;
	char *y = malloc(cap);
	assert_non_null(y);
	len += (size_t)snprintf(y + len, cap - len,
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: t}\n");
	for (int i = 0; i < CHURN_SVCS; i++) {
		if (!present[i])
			continue;
		if (i % 8 == 7)
			len += (size_t)snprintf(
			    y + len, cap - len,
			    "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, "
			    "namespace: t}\nspec: {type: ExternalName, externalName: "
			    "x%u.example.com}\n",
			    i, ipv[i]);
		else
			len += (size_t)snprintf(
			    y + len, cap - len,
			    "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: "
			    "t}\n"
			    "spec:\n  clusterIP: 10.96.%d.%u\n  ports: [{name: http, port: "
			    "80}%s]\n",
			    i, i, ipv[i],
			    ipv[i] % 3 == 0 ? ", {name: dns, port: 53, protocol: UDP}" : "");
	}
	return y;
}

static void compare_churn(const struct snapshot *a, const struct snapshot *b,
			  const unsigned (*seen)[256])
{
	char q[128];
	/* prefix, suffix after the Service's name, type */
	static const char *const forms[][3] = {
	    {"", ".t.svc.cluster.local", "A"},	 {"", ".t.svc", "A"},
	    {"", ".t.svc.cluster.local", "SRV"}, {"_http._tcp.", ".t.svc.cluster.local", "SRV"},
	    {"_dns._udp.", ".t.svc", "SRV"},	 {"_tcp.", ".t.svc.cluster.local", "TXT"},
	    {"", ".t.svc.cluster.local", "ANY"}, {"x.", ".t.svc.cluster.local", "A"},
	};
	for (int i = 0; i < CHURN_SVCS; i++) {
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			snprintf(q, sizeof(q), "%ss%d%s", forms[f][0], i, forms[f][1]);
			char *x = answer_text(a, q, forms[f][2]);
			char *y = answer_text(b, q, forms[f][2]);
			if (strcmp(x, y) != 0)
				fail_msg("%s %s differs:\nincremental:\n%s\nfull:\n%s", q,
					 forms[f][2], x, y);
			free(x);
			free(y);
		}
		/* every address the Service ever had: PTR now or NXDOMAIN */
		for (unsigned v = 1; v < 256; v++) {
			if (!seen[i][v])
				continue;
			snprintf(q, sizeof(q), "%u.%d.96.10.in-addr.arpa", v, i);
			char *x = answer_text(a, q, "PTR");
			char *y = answer_text(b, q, "PTR");
			if (strcmp(x, y) != 0)
				fail_msg("%s PTR differs:\nincremental:\n%s\nfull:\n%s", q, x, y);
			free(x);
			free(y);
		}
	}
}

static void test_incremental_churn(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);

	bool present[CHURN_SVCS];
	unsigned ipv[CHURN_SVCS];
	static unsigned seen[CHURN_SVCS][256];
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < CHURN_SVCS; i++) {
		present[i] = true;
		ipv[i] = 1;
		seen[i][1] = 1;
	}
	char *y = churn_yaml(present, ipv);
	load("c.yaml", y);
	free(y);
	struct snapshot *cur = build(NULL);
	uint32_t rnd = 12345;
	size_t n_incremental = 0;
	for (int k = 0; k < CHURN_BUILDS; k++) {
		for (int c = 0; c < 1 + k % 2; c++) {
			rnd = rnd * 1103515245u + 12345u;
			int i = (int)((rnd >> 8) % CHURN_SVCS);
			if (present[i] && (rnd >> 20) % 4 == 0) {
				present[i] = false; /* deleted, maybe back later */
			} else {
				present[i] = true;
				ipv[i] = 1 + (ipv[i] + (rnd >> 24) % 7 + 1) % 250;
				seen[i][ipv[i]] = 1;
			}
		}
		y = churn_yaml(present, ipv);
		load("c.yaml", y);
		free(y);
		struct snapshot *next = build(cur);
		n_incremental += next->incremental;
		struct snapshot *full = build(NULL);
		compare_churn(next, full, (const unsigned(*)[256])seen);
		/* CHAOS port views follow too */
		for (int i = 0; i < CHURN_SVCS; i++) {
			uint8_t key[256];
			char text[64];
			snprintf(text, sizeof(text), "s%d.t.svc", i);
			int kl = dname_from_text(text, key, sizeof(key));
			assert_true(kl > 0);
			uint8_t va[4096], vb[4096];
			uint16_t na, nb;
			bool cut_a, cut_b;
			size_t la =
			    zone_port_view(next, key, (size_t)kl, va, sizeof(va), &na, &cut_a);
			size_t lb =
			    zone_port_view(full, key, (size_t)kl, vb, sizeof(vb), &nb, &cut_b);
			assert_false(cut_a || cut_b);
			assert_int_equal(la != 0, present[i]);
			assert_int_equal(lb != 0, present[i]);
			assert_int_equal(la, lb);
			assert_int_equal(na, nb);
			if (la)
				assert_memory_equal(va, vb, la);
		}
		snapshot_free(full);
		snapshot_free(cur);
		cur = next;
	}
	/* most builds were incremental: the overlay and its merges were used */
	assert_true(n_incremental > CHURN_BUILDS / 2);
	snapshot_free(cur);
	model_alloc_free(alloc);
	model_store_free(store);
}

/* ---- the clusterset zone ---------------------------------------------------
 * ServiceImports (ClusterSetIP, dual-stack or not, and Headless with the
 * slices of two clusters) change, go and come back, and a local Service now
 * and then takes an import's address (whose PTR is then the local one): after
 * every build the answers equal a full build's. */

#define MCS_IMPORTS 8

struct mcs_state {
	bool present[MCS_IMPORTS];
	bool cluster_b[MCS_IMPORTS]; /* cluster-b's slice exists */
	unsigned v[MCS_IMPORTS];
	unsigned local; /* the local Service's address takes m0's when equal */
	bool seen[MCS_IMPORTS][256];
};

static char *mcs_yaml(const struct mcs_state *m)
{
	size_t cap = 1024 * MCS_IMPORTS + 512, len = 0;
	char *y = malloc(cap);
	assert_non_null(y);
	len +=
	    (size_t)snprintf(y + len, cap - len,
			     "apiVersion: v1\nkind: Service\nmetadata: {name: loc, namespace: t}\n"
			     "spec:\n  clusterIP: 10.100.0.%u\n  ports: [{name: http, port: 80}]\n",
			     m->local);
	for (int i = 0; i < MCS_IMPORTS; i++) {
		unsigned v = m->v[i];
		if (!m->present[i])
			continue;
		if (i % 2 == 0) {
			len += (size_t)snprintf(
			    y + len, cap - len,
			    "---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\n"
			    "metadata: {name: m%d, namespace: t}\nspec:\n  type: ClusterSetIP\n"
			    "  ips: [10.100.%d.%u%s]\n  ports: [{name: http, port: 80, protocol: "
			    "TCP}%s]\n",
			    i, i, v, v % 2 ? ", \"fd00::1\"" : "",
			    v % 3 ? "" : ", {name: dns, port: 53, protocol: UDP}");
			continue;
		}
		len += (size_t)snprintf(
		    y + len, cap - len,
		    "---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\n"
		    "metadata: {name: m%d, namespace: t}\nspec:\n  type: Headless\n"
		    "  ports: [{name: http, port: 80, protocol: TCP}]\n"
		    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		    "metadata: {name: m%d-a, namespace: t, labels: "
		    "{multicluster.kubernetes.io/service-name: m%d, "
		    "multicluster.kubernetes.io/source-cluster: cluster-a}}\n"
		    "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n"
		    "- {addresses: [10.200.%d.%u], hostname: h0}\n"
		    "- {addresses: [10.200.%d.%u], hostname: h1, conditions: {ready: %s}}\n",
		    i, i, i, i, v, i, v + 1, v % 3 ? "true" : "false");
		if (m->cluster_b[i])
			len += (size_t)snprintf(
			    y + len, cap - len,
			    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
			    "metadata: {name: m%d-b, namespace: t, labels: "
			    "{multicluster.kubernetes.io/service-name: m%d, "
			    "multicluster.kubernetes.io/source-cluster: cluster-b}}\n"
			    "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n"
			    "- {addresses: [10.201.%d.%u], hostname: h0}\n",
			    i, i, i, v);
	}
	return y;
}

static void mcs_compare(const struct snapshot *a, const struct snapshot *b,
			const struct mcs_state *m)
{
	static const char *const forms[][3] = {
	    {"", "", "A"},
	    {"", "", "AAAA"},
	    {"", "", "SRV"},
	    {"_http._tcp.", "", "SRV"},
	    {"_dns._udp.", "", "SRV"},
	    {"h0.cluster-a.", "", "A"},
	    {"h1.cluster-a.", "", "A"},
	    {"h0.cluster-b.", "", "A"},
	    {"cluster-a.", "", "A"},
	};
	char q[128];
	for (int i = 0; i < MCS_IMPORTS; i++) {
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			snprintf(q, sizeof(q), "%sm%d.t.svc.clusterset.local", forms[f][0], i);
			char *x = answer_text(a, q, forms[f][2]);
			char *y = answer_text(b, q, forms[f][2]);
			if (strcmp(x, y) != 0)
				fail_msg("%s %s differs:\nincremental:\n%s\nfull:\n%s", q,
					 forms[f][2], x, y);
			free(x);
			free(y);
		}
		for (unsigned v = 1; v < 256; v++) {
			if (!m->seen[i][v])
				continue;
			static const char *const nets[] = {"100", "200", "201"};
			for (int n = 0; n < 3; n++) {
				snprintf(q, sizeof(q), "%u.%d.%s.10.in-addr.arpa", v, i, nets[n]);
				char *x = answer_text(a, q, "PTR");
				char *y = answer_text(b, q, "PTR");
				if (strcmp(x, y) != 0)
					fail_msg("%s PTR differs:\nincremental:\n%s\nfull:\n%s", q,
						 x, y);
				free(x);
				free(y);
			}
		}
	}
}

static void test_incremental_clusterset(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);
	static struct mcs_state m;
	memset(&m, 0, sizeof(m));
	m.local = 200;

	/* no import yet: the zone is not served in auto mode */
	char *y = mcs_yaml(&m);
	load("m.yaml", y);
	free(y);
	struct snapshot *cur = build(NULL);
	char *t = answer_text(cur, "dns-version.clusterset.local", "TXT");
	assert_non_null(strstr(t, "REFUSED"));
	free(t);

	for (int i = 0; i < MCS_IMPORTS; i++) {
		m.present[i] = m.cluster_b[i] = true;
		m.v[i] = 1;
		m.seen[i][1] = m.seen[i][2] = true;
	}
	uint32_t rnd = 4242;
	size_t n_incremental = 0;
	for (int k = 0; k < 80; k++) {
		rnd = rnd * 1103515245u + 12345u;
		int i = (int)((rnd >> 8) % MCS_IMPORTS);
		switch (k == 0 ? 9 : (rnd >> 20) % 6) {
		case 0:
			m.present[i] = !m.present[i];
			break;
		case 1:
			m.cluster_b[i] = !m.cluster_b[i];
			break;
		case 2:
			/* the local Service takes m0's address, or leaves it */
			m.local = m.local == m.v[0] ? 200 : m.v[0];
			break;
		default:
			m.v[i] = 1 + (m.v[i] + (rnd >> 24) % 7) % 250;
			m.seen[i][m.v[i]] = m.seen[i][m.v[i] + 1] = true;
			break;
		}
		y = mcs_yaml(&m);
		load("m.yaml", y);
		free(y);
		struct snapshot *next = build(cur);
		if (k == 0)
			assert_false(next->incremental); /* the zone came */
		n_incremental += next->incremental;
		struct snapshot *full = build(NULL);
		mcs_compare(next, full, &m);
		t = answer_text(next, "dns-version.clusterset.local", "TXT");
		assert_non_null(strstr(t, "\"1.0.0\""));
		free(t);
		snapshot_free(full);
		snapshot_free(cur);
		cur = next;
	}
	assert_true(n_incremental > 40);
	snapshot_free(cur);
	model_alloc_free(alloc);
	model_store_free(store);
}

/* ---- topology ---------------------------------------------------------------
 * A server on node n0 in zone z0: the endpoints of two headless Services move
 * between nodes and zones, gain and lose hints and readiness, with nothing
 * else about them changing; after every build the rendered answers (their
 * order, and where each locality tier starts) equal a full build's, for the
 * Services' names, SRV and zonal names. */

#define TOPO_EPS    12
#define TOPO_BUILDS 60

struct topo_ep {
	unsigned node, zone, hint; /* zone 3: none; hint 0: none, else zone hint-1 */
	bool ready;
};

static char *topo_yaml(const struct topo_ep eps[2][TOPO_EPS])
{
	size_t cap = 512 + 2 * TOPO_EPS * 200, len = 0;
	char *y = malloc(cap);
	assert_non_null(y);
	for (int s = 0; s < 2; s++) {
		len += (size_t)snprintf(
		    y + len, cap - len,
		    "%sapiVersion: v1\nkind: Service\nmetadata: {name: h%d, namespace: t}\n"
		    "spec:\n  clusterIP: None\n  ports: [{name: pg, port: 5432}]\n---\n"
		    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		    "metadata: {name: h%d-1, namespace: t, labels: {kubernetes.io/service-name: "
		    "h%d}}\n"
		    "addressType: IPv4\nports: [{name: pg, port: 5432}]\nendpoints:\n",
		    s ? "---\n" : "", s, s, s);
		for (int e = 0; e < TOPO_EPS; e++) {
			const struct topo_ep *p = &eps[s][e];
			char zone[32] = "", hint[64] = "";
			if (p->zone < 3)
				snprintf(zone, sizeof(zone), ", zone: z%u", p->zone);
			if (p->hint)
				snprintf(hint, sizeof(hint), ", hints: {forZones: [{name: z%u}]}",
					 p->hint - 1);
			len += (size_t)snprintf(
			    y + len, cap - len,
			    "- {addresses: [10.200.%d.%d], hostname: e%d, nodeName: n%u%s%s, "
			    "conditions: {ready: %s}}\n",
			    s, e + 1, e, p->node, zone, hint, p->ready ? "true" : "false");
		}
	}
	return y;
}

/* The raw answers of `name` for `type` are the same bytes in both. */
static void topo_same(const struct snapshot *a, const struct snapshot *b, const char *name,
		      uint16_t type)
{
	uint8_t key[256];
	int kl = dname_from_text(name, key, sizeof(key));
	assert_true(kl > 0);
	struct zone_result ra, rb;
	zone_lookup(a, key, (size_t)kl, type, &ra);
	zone_lookup(b, key, (size_t)kl, type, &rb);
	assert_int_equal(ra.kind, rb.kind);
	assert_true((ra.ans == NULL) == (rb.ans == NULL));
	if (!ra.ans)
		return;
	assert_int_equal(ra.ans->rcode, rb.ans->rcode);
	assert_int_equal(ra.ans->an, rb.ans->an);
	if (!ra.ans->an)
		return; /* a negative answer: its SOA serial differs */
	/* the header's fields, then the data with its rotation table */
	const struct zone_answer *x = ra.ans, *y = rb.ans;
	if (x->len != y->len || x->len_an_ns != y->len_an_ns || x->ar != y->ar ||
	    x->rot != y->rot || x->rot_t1 != y->rot_t1 || x->rot_t2 != y->rot_t2 ||
	    x->n_var != y->n_var || zone_answer_size(x) != zone_answer_size(y) ||
	    memcmp(x->data, y->data, zone_answer_size(x) - sizeof(*x)) != 0)
		fail_msg("%s type %u: the incremental build's answer differs (tiers %u/%u/%u, "
			 "full %u/%u/%u)",
			 name, type, x->rot_t1, x->rot_t2, x->rot, y->rot_t1, y->rot_t2, y->rot);
}

static void test_incremental_topology(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);
	struct snapshot_config saved = cfg;
	cfg.node_name = "n0";
	cfg.node_zone = "z0";
	cfg.rotate = true;

	static struct topo_ep eps[2][TOPO_EPS];
	uint32_t rnd = 777;
	for (int s = 0; s < 2; s++)
		for (int e = 0; e < TOPO_EPS; e++)
			eps[s][e] = (struct topo_ep){
			    .node = (unsigned)e % 3, .zone = (unsigned)e % 4, .ready = true};
	char *y = topo_yaml((const struct topo_ep(*)[TOPO_EPS])eps);
	load("t.yaml", y);
	free(y);
	struct snapshot *cur = build(NULL);
	size_t n_incremental = 0, n_tiered = 0;
	for (int k = 0; k < TOPO_BUILDS; k++) {
		for (int c = 0; c < 3; c++) {
			rnd = rnd * 1103515245u + 12345u;
			struct topo_ep *p = &eps[(rnd >> 8) & 1][(rnd >> 9) % TOPO_EPS];
			switch ((rnd >> 16) % 4) {
			case 0:
				p->node = (rnd >> 20) % 3;
				break;
			case 1:
				p->zone = (rnd >> 20) % 4;
				break;
			case 2:
				p->hint = (rnd >> 20) % 4;
				break;
			default:
				p->ready = !p->ready || (rnd >> 20) % 3 == 0;
			}
		}
		y = topo_yaml((const struct topo_ep(*)[TOPO_EPS])eps);
		load("t.yaml", y);
		free(y);
		struct snapshot *next = build(cur);
		n_incremental += next->incremental;
		struct snapshot *full = build(NULL);
		for (int s = 0; s < 2; s++) {
			char name[128];
			snprintf(name, sizeof(name), "h%d.t.svc.cluster.local", s);
			topo_same(next, full, name, DNS_T_A);
			snprintf(name, sizeof(name), "h%d.t.svc", s);
			topo_same(next, full, name, DNS_T_A);
			snprintf(name, sizeof(name), "_pg._tcp.h%d.t.svc.cluster.local", s);
			topo_same(next, full, name, DNS_T_SRV);
			static const char *const zones[] = {"z0", "z1", "z2", "zx"};
			for (int z = 0; z < 4; z++) {
				snprintf(name, sizeof(name), "%s.pin._zone.h%d.t.svc.cluster.local",
					 zones[z], s);
				topo_same(next, full, name, DNS_T_A);
				snprintf(name, sizeof(name),
					 "%s.prefer._zone.h%d.t.svc.cluster.local", zones[z], s);
				topo_same(next, full, name, DNS_T_A);
			}
			struct zone_result r;
			uint8_t key[256];
			snprintf(name, sizeof(name), "h%d.t.svc.cluster.local", s);
			int kl = dname_from_text(name, key, sizeof(key));
			zone_lookup(full, key, (size_t)kl, DNS_T_A, &r);
			n_tiered += r.ans && r.ans->rot && r.ans->rot_t1 != r.ans->rot;
		}
		snapshot_free(full);
		snapshot_free(cur);
		cur = next;
	}
	/* the overlay was used, and most answers had tiers */
	assert_true(n_incremental > TOPO_BUILDS / 2);
	assert_true(n_tiered > TOPO_BUILDS);
	snapshot_free(cur);
	cfg = saved;
	model_alloc_free(alloc);
	model_store_free(store);
}

/* ---- client zones (central mode) --------------------------------------------
 * Without --node-zone the snapshot maps every endpoint address to its zone:
 * after every build of the topology churn the incremental build's table equals
 * a full build's, and it says what the YAML says; an IPv6 endpoint is found by
 * its 16 bytes; node mode has no table. */

static void addr_zones_same(const struct snapshot *a, const struct snapshot *b)
{
	assert_int_equal(a->n_zone_names, b->n_zone_names);
	for (size_t i = 0; i < a->n_zone_names; i++)
		assert_string_equal(a->zone_names[i], b->zone_names[i]);
	assert_int_equal(a->n_addr_zones, b->n_addr_zones);
	assert_memory_equal(a->addr_zones, b->addr_zones, a->n_addr_zones * sizeof(*a->addr_zones));
}

/* The A answer of h<svc> in `s` has one ordering per zone its published
 * endpoints name, each listing that zone's endpoints first and every
 * endpoint once; returns how many orderings. */
static unsigned check_vars(const struct snapshot *s, int svc, const struct topo_ep *eps)
{
	char name[64];
	uint8_t key[256];
	struct zone_result r;
	snprintf(name, sizeof(name), "h%d.t.svc.cluster.local", svc);
	int kl = dname_from_text(name, key, sizeof(key));
	zone_lookup(s, key, (size_t)kl, DNS_T_A, &r);
	if (!r.ans || !r.ans->n_var)
		return 0;
	const struct zone_answer *a = r.ans;
	for (unsigned v = 0; v < a->n_var; v++) {
		unsigned near = zone_answer_var_near(a, v), seen[TOPO_EPS] = {0};
		for (unsigned k = 0; k < a->rot; k++) {
			const uint8_t *rd = a->data + zone_answer_var_off(a, v, k) + 12;
			assert_int_equal(rd[2], svc);
			unsigned e = (unsigned)rd[3] - 1;
			assert_true(e < TOPO_EPS);
			seen[e]++;
			char zn[8];
			snprintf(zn, sizeof(zn), "z%u", eps[e].zone);
			bool same =
			    eps[e].zone < 3 && snapshot_zone_hash(zn) == zone_answer_var_zone(a, v);
			assert_true(same == (k < near));
		}
		for (unsigned e = 0; e < TOPO_EPS; e++)
			assert_int_equal(seen[e], eps[e].ready ? 1 : 0);
	}
	return a->n_var;
}

/* The zone name the snapshot gives 10.200.<s>.<e+1>, or NULL. */
static const char *zone_of(const struct snapshot *s, int svc, int e)
{
	const uint8_t a[4] = {10, 200, (uint8_t)svc, (uint8_t)(e + 1)};
	int z = snapshot_addr_zone(s, AF_INET, a);
	return z < 0 ? NULL : s->zone_names[z];
}

static void test_incremental_addr_zones(void **state)
{
	(void)state;
	struct net_cidr sc, pc;
	net_cidr_parse("10.96.0.0/12", &sc);
	net_cidr_parse("10.244.0.0/16", &pc);
	store = model_store_new();
	alloc = model_alloc_new(&sc, &pc);
	struct snapshot_config saved = cfg;
	cfg.rotate = true;

	static struct topo_ep eps[2][TOPO_EPS];
	uint32_t rnd = 4242;
	for (int s = 0; s < 2; s++)
		for (int e = 0; e < TOPO_EPS; e++)
			eps[s][e] = (struct topo_ep){
			    .node = (unsigned)e % 3, .zone = (unsigned)e % 4, .ready = e % 5 != 0};
	char *y = topo_yaml((const struct topo_ep(*)[TOPO_EPS])eps);
	load("t.yaml", y);
	free(y);
	load("v6.yaml",
	     "apiVersion: v1\nkind: Service\nmetadata: {name: six, namespace: t}\n"
	     "spec:\n  clusterIP: None\n  ports: [{name: pg, port: 5432}]\n---\n"
	     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	     "metadata: {name: six-1, namespace: t, labels: {kubernetes.io/service-name: six}}\n"
	     "addressType: IPv6\nports: [{name: pg, port: 5432}]\nendpoints:\n"
	     "- {addresses: ['fd00::7'], zone: z9, conditions: {ready: true}}\n");
	struct snapshot *cur = build(NULL);
	const uint8_t v6[16] = {0xfd, [15] = 7}, v6_other[16] = {0xfd, [15] = 8};
	int z9 = snapshot_addr_zone(cur, AF_INET6, v6);
	assert_true(z9 >= 0);
	assert_string_equal(cur->zone_names[z9], "z9");
	assert_int_equal(snapshot_addr_zone(cur, AF_INET6, v6_other), -1);
	assert_int_equal(snapshot_addr_zone(cur, AF_INET, v6), -1);
	size_t n_incremental = 0, n_vars = 0;
	for (int k = 0; k < TOPO_BUILDS; k++) {
		rnd = rnd * 1103515245u + 12345u;
		struct topo_ep *p = &eps[(rnd >> 8) & 1][(rnd >> 9) % TOPO_EPS];
		if ((rnd >> 16) % 3)
			p->zone = (rnd >> 20) % 4;
		else
			p->ready = !p->ready;
		y = topo_yaml((const struct topo_ep(*)[TOPO_EPS])eps);
		load("t.yaml", y);
		free(y);
		struct snapshot *next = build(cur);
		n_incremental += next->incremental;
		struct snapshot *full = build(NULL);
		addr_zones_same(next, full);
		for (int s = 0; s < 2; s++) {
			char name[128];
			snprintf(name, sizeof(name), "h%d.t.svc.cluster.local", s);
			topo_same(next, full, name, DNS_T_A);
			snprintf(name, sizeof(name), "_pg._tcp.h%d.t.svc.cluster.local", s);
			topo_same(next, full, name, DNS_T_SRV);
			n_vars += check_vars(next, s, eps[s]);
		}
		for (int s = 0; s < 2; s++)
			for (int e = 0; e < TOPO_EPS; e++) {
				const char *z = zone_of(next, s, e);
				if (eps[s][e].zone == 3) {
					assert_null(z);
					continue;
				}
				char want[8];
				snprintf(want, sizeof(want), "z%u", eps[s][e].zone);
				assert_non_null(z);
				assert_string_equal(z, want);
			}
		snapshot_free(full);
		snapshot_free(cur);
		cur = next;
	}
	assert_true(n_incremental > TOPO_BUILDS / 2);
	assert_true(n_vars > TOPO_BUILDS); /* most answers had orderings per zone */
	snapshot_free(cur);

	/* node mode: the server's own zone orders answers, no table */
	cfg.node_zone = "z0";
	cur = build(NULL);
	assert_int_equal(cur->n_addr_zones, 0);
	assert_int_equal(cur->n_zone_names, 0);
	snapshot_free(cur);
	cfg = saved;
	model_alloc_free(alloc);
	model_store_free(store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_incremental_matches_full),
	    cmocka_unit_test(test_incremental_glue),
	    cmocka_unit_test(test_incremental_churn),
	    cmocka_unit_test(test_incremental_clusterset),
	    cmocka_unit_test(test_incremental_topology),
	    cmocka_unit_test(test_incremental_addr_zones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
