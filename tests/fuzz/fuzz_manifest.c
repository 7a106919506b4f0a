/* Fuzz target: the bytes of a manifest file through manifest_decode(), then on
 * through the store, the view and snapshots (full and incremental), asking for
 * every Service the file defined. Built twice: FUZZ_MANIFEST_PATH names the
 * file ".json" (jansson only) or ".yaml" (YAML, or JSON when it looks like it). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "common/log.h"
#include "discovery/manifest.h"
#include "dns/query.h"
#include "fuzz.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

#ifndef FUZZ_MANIFEST_PATH
#define FUZZ_MANIFEST_PATH "fuzz.yaml"
#endif

/* Services asked about per snapshot stay bounded whatever the file holds. */
#define MAX_QUERIED_SVCS 8

static struct net_cidr svc_cidr, pod_cidr;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Every rejected object logs a line; SVCDNS_FUZZ_LOG=1 brings them back. */
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	FUZZ_CHECK(net_cidr_parse("10.96.0.0/12", &svc_cidr) == 0, "service cidr");
	FUZZ_CHECK(net_cidr_parse("10.244.0.0/16", &pod_cidr) == 0, "pod cidr");
	return 0;
}

/* What every decoded object must look like, whatever the input was. */
static void check_object(const struct model_object *o)
{
	FUZZ_CHECK(o->kind < KIND_COUNT, "kind %d", (int)o->kind);
	const char *name = model_object_name(o), *ns = model_object_ns(o);
	FUZZ_CHECK(name && *name, "%s without a name", model_kind_name(o->kind));
	FUZZ_CHECK(o->kind == KIND_NAMESPACE || (ns && *ns), "%s %s without a namespace",
		   model_kind_name(o->kind), name);
	if (o->kind == KIND_SERVICE) {
		const struct model_service *s = o->u.svc;
		FUZZ_CHECK(s->n_cluster_ips <= 2, "Service %s: %zu ClusterIPs", name,
			   s->n_cluster_ips);
		FUZZ_CHECK(s->n_ports == 0 || s->ports, "Service %s: ports", name);
		for (size_t i = 0; i < s->n_ports; i++)
			FUZZ_CHECK(s->ports[i].port != 0 && s->ports[i].name,
				   "Service %s: port %zu is 0 or unnamed", name, i);
	}
	/* A deep copy is what keeps the last good version of an object alive. */
	struct model_object copy;
	FUZZ_CHECK(model_object_clone(o, &copy) == 0, "clone of %s %s", model_kind_name(o->kind),
		   name);
	FUZZ_CHECK(copy.kind == o->kind && strcmp(model_object_name(&copy), name) == 0,
		   "clone differs");
	model_object_free(&copy);
}

/* ---- serving what was decoded --------------------------------------------- */

/* Both versions of the file: a Service name and an SRV name per Service. */
#define MAX_NAMES (2 * MAX_QUERIED_SVCS * 2)

struct names {
	char name[MAX_NAMES][300];
	size_t n;
};

/* A Service's name and its first named port's SRV name. */
static void names_add(struct names *nm, const struct model_view *v)
{
	for (size_t i = 0; i < v->n_svcs && i < MAX_QUERIED_SVCS && nm->n + 2 <= MAX_NAMES; i++) {
		const struct model_service *svc = v->svcs[i].svc;
		snprintf(nm->name[nm->n++], sizeof(nm->name[0]), "%s.%s.svc.cluster.local",
			 svc->name, svc->ns);
		if (svc->n_ports && svc->ports[0].name[0])
			snprintf(nm->name[nm->n++], sizeof(nm->name[0]),
				 "_%s._%s.%s.%s.svc.cluster.local", svc->ports[0].name,
				 svc->ports[0].proto == PROTO_UDP ? "udp" : "tcp", svc->name,
				 svc->ns);
	}
}

/* Asks `s` over `proto` into out (DNS_MAX_MSG bytes); when `parse`, the answer
 * must parse with ldns. Returns its length, and where the question ends. */
static size_t ask(const struct snapshot *s, const char *name, uint16_t type, uint16_t qclass,
		  enum dns_proto proto, bool parse, uint8_t *out, size_t *qend)
{
	uint8_t req[WIRE_HDR_LEN + DNAME_MAX + 4] = {0};
	wire_hdr_set_id(req, 0x4a11);
	wire_hdr_set(req, WIRE_RD, true);
	wire_hdr_set_count(req, WIRE_QD, 1);
	int l = dname_from_text(name, req + WIRE_HDR_LEN, DNAME_MAX);
	if (l < 0)
		return 0; /* too long for DNS: nothing to ask */
	size_t len = WIRE_HDR_LEN + (size_t)l;
	wire_wr16(req + len, type);
	wire_wr16(req + len + 2, qclass);
	len += 4;
	struct dns_query_info info;
	size_t n = dns_answer(s, req, len, out, DNS_MAX_MSG, proto, &info);
	FUZZ_CHECK(n >= len, "%s: %zu bytes", name, n);
	if (parse) {
		ldns_pkt *pkt = NULL;
		ldns_status st = ldns_wire2pkt(&pkt, out, n);
		FUZZ_CHECK(st == LDNS_STATUS_OK, "%s type %u: ldns cannot parse the answer: %s",
			   name, type, ldns_get_errorstr_by_id(st));
		ldns_pkt_free(pkt);
	}
	*qend = len;
	return n;
}

/* End of the answer section; bounds-checked, as the response may not have
 * been parsed. */
static size_t answer_end(const uint8_t *m, size_t n, size_t off)
{
	unsigned an = wire_hdr_count(m, WIRE_AN);
	for (unsigned i = 0; i < an; i++) {
		while (off < n && m[off] && (m[off] & 0xC0) != 0xC0)
			off += 1u + m[off];
		off += off < n && m[off] ? 2 : 1;
		FUZZ_CHECK(off + 10 <= n, "answer record %u runs past %zu", i, n);
		off += 10u + wire_rd16(m + off + 8);
	}
	FUZZ_CHECK(off <= n, "answer section runs past %zu", n);
	return off;
}

static const struct {
	uint16_t type, qclass;
} qtypes[] = {
    {LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN},	  {LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_IN},
    {LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_IN}, {LDNS_RR_TYPE_ANY, LDNS_RR_CLASS_IN},
    {LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH},
};
#define N_QTYPES (sizeof(qtypes) / sizeof(qtypes[0]))

/* What the full build answered: flags, rcode, counts and the answer section
 * (the authority section holds the SOA, whose serial differs by design). */
struct expect {
	size_t n; /* 0: not asked */
	uint8_t hdr[10];
	size_t alen;
	uint64_t hash;
};
static struct expect expected[MAX_NAMES][N_QTYPES];
static uint8_t resp[DNS_MAX_MSG];

static uint64_t fnv64(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211u;
	return h;
}

static void record(const struct snapshot *full, const struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		for (size_t t = 0; t < N_QTYPES; t++) {
			struct expect *e = &expected[i][t];
			size_t q;
			e->n = ask(full, nm->name[i], qtypes[t].type, qtypes[t].qclass, DNS_TCP,
				   false, resp, &q);
			if (!e->n)
				continue;
			memcpy(e->hdr, resp + 2, 10);
			e->alen = answer_end(resp, e->n, q);
			e->hash = fnv64(resp, e->alen);
		}
}

/* An incremental build must answer exactly as a full build of the same view. */
static void check(const struct snapshot *incr, const struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		for (size_t t = 0; t < N_QTYPES; t++) {
			const struct expect *e = &expected[i][t];
			size_t q;
			size_t n = ask(incr, nm->name[i], qtypes[t].type, qtypes[t].qclass, DNS_TCP,
				       true, resp, &q);
			if (!n && !e->n)
				continue;
			FUZZ_CHECK(memcmp(resp + 2, e->hdr, 10) == 0,
				   "%s type %u: incremental and full builds differ in the header",
				   nm->name[i], qtypes[t].type);
			size_t alen = answer_end(resp, n, q);
			FUZZ_CHECK(alen == e->alen && fnv64(resp, alen) == e->hash,
				   "%s type %u: incremental and full builds answer differently",
				   nm->name[i], qtypes[t].type);
			/* and the UDP path over the same data */
			ask(incr, nm->name[i], qtypes[t].type, qtypes[t].qclass, DNS_UDP, true,
			    resp, &q);
		}
}

static struct snapshot *build(const struct model_store *st, struct model_alloc *alloc,
			      const struct snapshot *prev)
{
	/* static: a snapshot keeps pointing at its settings */
	static struct snapshot_config cfg;
	cfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "fuzzhost"};
	struct model_view view;
	int rc = model_view_build(st, alloc, &view);
	FUZZ_CHECK(rc == 0, "model_view_build: %d", rc);
	struct snapshot *s = NULL;
	rc = snapshot_build(&cfg, &view, prev, &s);
	FUZZ_CHECK(rc == 0, "snapshot_build: %d", rc);
	s->synced = true;
	return s;
}

/* Decodes one version of the file; the objects are checked and returned in
 * *r (left empty when the file as a whole is refused). */
static void decode(const uint8_t *data, size_t size, struct manifest_result *r)
{
	int rc = manifest_decode(FUZZ_MANIFEST_PATH, (const char *)data, size, r);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "manifest_decode returned %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(!r->objs && !r->n_objs && !r->rejected && !r->n_rejected,
			   "a failed decode left a result");
		return;
	}
	for (size_t i = 0; i < r->n_objs; i++)
		check_object(&r->objs[i]);
	for (size_t i = 0; i < r->n_rejected; i++)
		FUZZ_CHECK(r->rejected[i].kind < KIND_COUNT && r->rejected[i].name,
			   "rejected object %zu", i);
}

/* Into the store, as the directory source does; the store takes the objects,
 * the array stays ours. */
static void store(struct model_store *st, struct manifest_result *r)
{
	int rc = model_store_replace(st, FUZZ_MANIFEST_PATH, r->objs, r->n_objs);
	FUZZ_CHECK(rc == 0, "model_store_replace: %d", rc);
	r->n_objs = 0;
	manifest_result_free(r);
}

/* The input is one version of the file, or two separated by FUZZ_NEXT: the
 * file as it was, then as it was edited (the second built incrementally from
 * the first, as the server does, and checked against a full build). */
#define FUZZ_NEXT "\n#next\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *next = memmem(data, size, FUZZ_NEXT, strlen(FUZZ_NEXT));
	size_t first = next ? (size_t)(next - data) : size;
	struct manifest_result r;
	struct model_store *st = model_store_new();
	struct model_alloc *alloc = model_alloc_new(&svc_cidr, &pod_cidr);
	FUZZ_CHECK(st && alloc, "out of memory");

	decode(data, first, &r);
	store(st, &r);
	struct snapshot *s1 = build(st, alloc, NULL);
	struct names nm = {.n = 0};
	names_add(&nm, s1->view);
	size_t n_first = s1->view->n_svcs;

	/* The second build grows from the first, as the server's next snapshot
	 * does; the reference is a full build of the same data. */
	struct snapshot *s2, *ref = s1;
	if (next) {
		size_t skip = first + strlen(FUZZ_NEXT);
		decode(data + skip, size - skip, &r);
		store(st, &r);
	}
	s2 = build(st, alloc, s1);
	if (next) {
		ref = build(st, alloc, NULL);
		names_add(&nm, ref->view);
	}
	if (getenv("SVCDNS_FUZZ_TRACE"))
		fprintf(stderr, "Services: %zu, then %zu; second build %s; %zu names asked\n",
			n_first, s2->view->n_svcs, s2->incremental ? "incremental" : "full", nm.n);
	record(ref, &nm);
	/* Retired, as the server would once its readers left: s2 must not need
	 * anything of s1 that it does not hold a reference to. */
	if (ref != s1)
		snapshot_free(ref);
	snapshot_free(s1);
	check(s2, &nm);
	snapshot_free(s2);
	model_alloc_free(alloc);
	model_store_free(st);
	return 0;
}
