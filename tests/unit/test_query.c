/* The query path against a snapshot built from a hand-made model view: every
 * record kind of the Kubernetes DNS specification, negative answers, EDNS,
 * truncation, and hostile messages. Answers are checked by parsing them with
 * ldns, independently of the code that wrote them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "dns/lifecycle_freshness.h"
#include "dns/query.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

/* ---- a small cluster ------------------------------------------------------ */

static struct model_svc_port web_ports[] = {
    {.name = "http", .port = 80, .proto = PROTO_TCP, .target_name = "http"},
    {.name = "metrics", .port = 9110, .proto = PROTO_TCP, .target_num = 9110},
    {.name = "", .port = 7000, .proto = PROTO_UDP, .target_num = 7000},
};
static struct model_svc_port db_ports[] = {
    {.name = "postgres", .port = 5432, .proto = PROTO_TCP, .target_num = 5432},
};
static struct model_svc_port np_ports[] = {
    {.name = "http", .port = 80, .proto = PROTO_TCP, .target_num = 8080, .node_port = 30080},
};

static struct model_service svc_web, svc_db, svc_ext, svc_dual, svc_empty, svc_np, svc_big, svc_pnr;
static uint16_t tp_web1[] = {8080, 9110, 7000}, tp_web2[] = {8081, 9110, 7000};
static uint16_t tp_db[] = {5432};
static struct view_endpoint eps_web[2], eps_db[3], eps_empty[1], eps_pnr[2];
static struct view_endpoint eps_big[300];
static uint16_t tp_big[300][1];
static struct view_service vsvcs[8];
static char *namespaces[] = {"default", "empty-ns", "shop"};
static struct snapshot *snap;

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	assert_int_equal(net_addr_parse(text, &a), 0);
	return a;
}

static int setup(void **state)
{
	(void)state;
	svc_web = (struct model_service){
	    .ns = "shop", .name = "web", .n_cluster_ips = 1, .ports = web_ports, .n_ports = 3};
	svc_web.cluster_ips[0] = addr("10.96.10.10");
	eps_web[0] = (struct view_endpoint){
	    .addr = addr("10.244.1.11"), .ready = true, .target_ports = tp_web1};
	eps_web[1] = (struct view_endpoint){
	    .addr = addr("10.244.1.12"), .ready = false, .target_ports = tp_web2};

	svc_db = (struct model_service){
	    .ns = "shop", .name = "db", .headless = true, .ports = db_ports, .n_ports = 1};
	eps_db[0] = (struct view_endpoint){
	    .addr = addr("10.244.2.21"), .hostname = "db-0", .ready = true, .target_ports = tp_db};
	eps_db[1] = (struct view_endpoint){
	    .addr = addr("10.244.2.22"), .ready = true, .target_ports = tp_db};
	eps_db[2] = (struct view_endpoint){
	    .addr = addr("10.244.2.23"), .hostname = "db-2", .ready = false, .target_ports = tp_db};

	svc_ext = (struct model_service){.ns = "shop",
					 .name = "payments",
					 .type = SVC_EXTERNAL_NAME,
					 .external_name = "api.payments.example.com"};

	svc_dual = (struct model_service){.ns = "default", .name = "dual", .n_cluster_ips = 2};
	svc_dual.cluster_ips[0] = addr("10.96.0.50");
	svc_dual.cluster_ips[1] = addr("fd00:10:96::50");

	svc_empty = (struct model_service){
	    .ns = "default", .name = "lonely", .headless = true, .ports = db_ports, .n_ports = 1};
	eps_empty[0] = (struct view_endpoint){
	    .addr = addr("10.244.9.9"), .ready = false, .target_ports = tp_db};

	svc_np = (struct model_service){.ns = "default",
					.name = "frontend",
					.type = SVC_NODE_PORT,
					.n_cluster_ips = 1,
					.ports = np_ports,
					.n_ports = 1};
	svc_np.cluster_ips[0] = addr("10.96.20.20");

	svc_big = (struct model_service){
	    .ns = "default", .name = "big", .headless = true, .ports = db_ports, .n_ports = 1};
	for (int i = 0; i < 300; i++) {
		char t[32];
		snprintf(t, sizeof(t), "10.250.%d.%d", i / 200, i % 200 + 1);
		tp_big[i][0] = 5432;
		eps_big[i] = (struct view_endpoint){
		    .addr = addr(t), .ready = true, .target_ports = tp_big[i]};
	}
	svc_pnr = (struct model_service){
	    .ns = "default", .name = "pnr", .headless = true, .publish_not_ready = true};
	eps_pnr[0] = (struct view_endpoint){.addr = addr("10.244.7.1"), .ready = true};
	eps_pnr[1] = (struct view_endpoint){.addr = addr("10.244.7.2"), .ready = false};

	/* sorted by (ns, name), as the view gives them */
	vsvcs[0] = (struct view_service){.svc = &svc_big, .eps = eps_big, .n_eps = 300};
	vsvcs[1] = (struct view_service){.svc = &svc_dual};
	vsvcs[2] = (struct view_service){.svc = &svc_np};
	vsvcs[3] = (struct view_service){.svc = &svc_empty, .eps = eps_empty, .n_eps = 1};
	vsvcs[4] = (struct view_service){.svc = &svc_pnr, .eps = eps_pnr, .n_eps = 2};
	vsvcs[5] = (struct view_service){.svc = &svc_db, .eps = eps_db, .n_eps = 3};
	vsvcs[6] = (struct view_service){.svc = &svc_ext};
	vsvcs[7] = (struct view_service){.svc = &svc_web, .eps = eps_web, .n_eps = 2};
	/* Static: the snapshot keeps pointers to both (the CHAOS port view is
	 * rendered from them at query time). */
	static struct model_view view;
	static struct snapshot_config cfg;
	view = (struct model_view){
	    .svcs = vsvcs, .n_svcs = 8, .namespaces = namespaces, .n_namespaces = 3};
	struct model_view tmp = view;
	cfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "testhost"};
	cfg.ns_addr = addr("127.0.0.1");
	cfg.have_ns_addr = true;
	int ret = snapshot_build(&cfg, &tmp, NULL, &snap);
	if (ret < 0)
		return ret;
	/* the view here is static: the snapshot must not free it */
	free(snap->view);
	snap->view = &view;
	snap->synced = true;
	return ret;
}

static int teardown(void **state)
{
	(void)state;
	snap->view = NULL;
	snapshot_free(snap);
	return 0;
}

/* ---- queries ---------------------------------------------------------------- */

struct q {
	const char *name;
	uint16_t type;
	uint16_t qclass;
	int edns; /* 0: none, else the payload size */
	enum dns_proto proto;
};

static size_t make_query(const struct q *q, uint8_t *buf)
{
	memset(buf, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(buf, 0x1234);
	wire_hdr_set(buf, WIRE_RD, true);
	wire_hdr_set_count(buf, WIRE_QD, 1);
	size_t n = WIRE_HDR_LEN;
	/* keep the case as written: the answer must echo it */
	const char *p = q->name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	buf[n++] = 0;
	wire_wr16(buf + n, q->type);
	wire_wr16(buf + n + 2, q->qclass ? q->qclass : DNS_C_IN);
	n += 4;
	if (q->edns) {
		wire_hdr_set_count(buf, WIRE_AR, 1);
		/* root owner, the payload size, no flags, no options */
		memset(buf + n, 0, WIRE_OPT_LEN);
		wire_wr16(buf + n + 1, DNS_T_OPT);
		wire_wr16(buf + n + 3, (uint16_t)q->edns);
		n += WIRE_OPT_LEN;
	}
	return n;
}

static ldns_pkt *ask(const struct q *q, size_t *len_out)
{
	static uint8_t req[1024], resp[DNS_MAX_MSG];
	size_t len = make_query(q, req);
	struct dns_query_info info;
	size_t n = dns_answer(snap, req, len, resp, sizeof(resp), q->proto, &info);
	assert_true(n > 0);
	if (len_out)
		*len_out = n;
	ldns_pkt *pkt = NULL;
	assert_int_equal(ldns_wire2pkt(&pkt, resp, n), LDNS_STATUS_OK);
	/* the question is echoed as asked, case included */
	assert_memory_equal(resp + WIRE_HDR_LEN, req + WIRE_HDR_LEN,
			    len - WIRE_HDR_LEN - (q->edns ? WIRE_OPT_LEN : 0));
	return pkt;
}

static char *section_text(ldns_rr_list *l)
{
	/* "type rdata" lines, sorted, without owner/ttl: easy to compare */
	static char out[65536];
	char *lines[1024];
	size_t n = ldns_rr_list_rr_count(l);
	assert_true(n < 1024);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(l, i);
		char *owner = ldns_rdf2str(ldns_rr_owner(rr));
		char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
		char buf[1024] = "";
		for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
			char *r = ldns_rdf2str(ldns_rr_rdf(rr, k));
			strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
			strncat(buf, r, sizeof(buf) - strlen(buf) - 1);
			free(r);
		}
		size_t sz = strlen(owner) + strlen(type) + strlen(buf) + 4;
		lines[i] = malloc(sz);
		snprintf(lines[i], sz, "%s %s%s", owner, type, buf);
		for (char *c = lines[i]; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		free(owner);
		free(type);
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
			char *t = lines[j];
			lines[j] = lines[j - 1];
			lines[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strncat(out, lines[i], sizeof(out) - strlen(out) - 2);
		strcat(out, "\n");
		free(lines[i]);
	}
	return out;
}

struct tcase {
	struct q q;
	int rcode;
	const char *answer;	/* sorted lines, NULL: do not check */
	const char *authority;	/* NULL: do not check */
	const char *additional; /* without OPT; NULL: do not check */
};

static void run_cases(const struct tcase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct tcase *c = &cases[i];
		ldns_pkt *p = ask(&c->q, NULL);
		if ((int)ldns_pkt_get_rcode(p) != c->rcode)
			fail_msg("%s/%u: rcode %d, want %d", c->q.name, c->q.type,
				 ldns_pkt_get_rcode(p), c->rcode);
		const char *got;
		if (c->answer && strcmp(got = section_text(ldns_pkt_answer(p)), c->answer) != 0)
			fail_msg("%s/%u answer:\n%s\nwant:\n%s", c->q.name, c->q.type, got,
				 c->answer);
		if (c->authority &&
		    strcmp(got = section_text(ldns_pkt_authority(p)), c->authority) != 0)
			fail_msg("%s/%u authority:\n%s\nwant:\n%s", c->q.name, c->q.type, got,
				 c->authority);
		if (c->additional &&
		    strcmp(got = section_text(ldns_pkt_additional(p)), c->additional) != 0)
			fail_msg("%s/%u additional:\n%s\nwant:\n%s", c->q.name, c->q.type, got,
				 c->additional);
		if (c->rcode != LDNS_RCODE_REFUSED)
			assert_true(ldns_pkt_aa(p));
		assert_true(ldns_pkt_qr(p));
		assert_int_equal(ldns_pkt_id(p), 0x1234);
		ldns_pkt_free(p);
	}
}

#define SOA_CL                                                                                     \
	"cluster.local. soa ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5\n"

/* The serial changes per build; replace it before comparing authority. */
static void check_soa_authority(const char *name, uint16_t type, int rcode, const char *apex)
{
	struct q q = {.name = name, .type = type};
	ldns_pkt *p = ask(&q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(p), rcode);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_nscount(p), 1);
	ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
	assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	char *owner = ldns_rdf2str(ldns_rr_owner(soa));
	/* the owner may point into the question: the client's case shows */
	assert_int_equal(strcasecmp(owner, apex), 0);
	assert_int_equal(ldns_rr_ttl(soa), 5);
	free(owner);
	ldns_pkt_free(p);
}

static void test_cluster_ip(void **state)
{
	(void)state;
	static const struct tcase cases[] = {
	    {{"web.shop.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "web.shop.svc.cluster.local. a 10.96.10.10\n",
	     "",
	     ""},
	    {{"WeB.ShOp.SvC.ClUsTeR.LoCaL", LDNS_RR_TYPE_A},
	     0,
	     "web.shop.svc.cluster.local. a 10.96.10.10\n",
	     "",
	     ""},
	    {{"_http._tcp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV},
	     0,
	     "_http._tcp.web.shop.svc.cluster.local. srv 0 100 80 web.shop.svc.cluster.local.\n",
	     "",
	     "web.shop.svc.cluster.local. a 10.96.10.10\n"},
	    {{"_metrics._tcp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV},
	     0,
	     "_metrics._tcp.web.shop.svc.cluster.local. srv 0 100 9110 "
	     "web.shop.svc.cluster.local.\n",
	     NULL,
	     NULL},
	    /* the unnamed UDP port has no SRV; _udp does not exist at all */
	    {{"_udp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV}, 3, "", NULL, NULL},
	    {{"_nope._tcp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV}, 3, "", NULL, NULL},
	    {{"_http._udp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV}, 3, "", NULL, NULL},
	    {{"_tcp.web.shop.svc.cluster.local", LDNS_RR_TYPE_SRV}, 0, "", NULL, NULL},
	    {{"dual.default.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "dual.default.svc.cluster.local. a 10.96.0.50\n",
	     NULL,
	     NULL},
	    {{"dual.default.svc.cluster.local", LDNS_RR_TYPE_AAAA},
	     0,
	     "dual.default.svc.cluster.local. aaaa fd00:10:96::50\n",
	     NULL,
	     NULL},
	    {{"frontend.default.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "frontend.default.svc.cluster.local. a 10.96.20.20\n",
	     NULL,
	     NULL},
	    {{"web.shop.svc", LDNS_RR_TYPE_A}, 0, "web.shop.svc. a 10.96.10.10\n", NULL, NULL},
	    {{"_http._tcp.web.shop.svc", LDNS_RR_TYPE_SRV},
	     0,
	     "_http._tcp.web.shop.svc. srv 0 100 80 web.shop.svc.\n",
	     NULL,
	     "web.shop.svc. a 10.96.10.10\n"},
	};
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_headless(void **state)
{
	(void)state;
	static const struct tcase cases[] = {
	    /* ready endpoints only; db-2 is not ready */
	    {{"db.shop.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "db.shop.svc.cluster.local. a 10.244.2.21\ndb.shop.svc.cluster.local. a 10.244.2.22\n",
	     "",
	     ""},
	    {{"db-0.db.shop.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "db-0.db.shop.svc.cluster.local. a 10.244.2.21\n",
	     NULL,
	     NULL},
	    /* no hostname: the dashed address names it */
	    {{"10-244-2-22.db.shop.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "10-244-2-22.db.shop.svc.cluster.local. a 10.244.2.22\n",
	     NULL,
	     NULL},
	    {{"db-2.db.shop.svc.cluster.local", LDNS_RR_TYPE_A}, 3, "", NULL, NULL},
	    {{"_postgres._tcp.db.shop.svc.cluster.local", LDNS_RR_TYPE_SRV},
	     0,
	     "_postgres._tcp.db.shop.svc.cluster.local. srv 0 50 5432 "
	     "10-244-2-22.db.shop.svc.cluster.local.\n"
	     "_postgres._tcp.db.shop.svc.cluster.local. srv 0 50 5432 "
	     "db-0.db.shop.svc.cluster.local.\n",
	     "",
	     "10-244-2-22.db.shop.svc.cluster.local. a 10.244.2.22\n"
	     "db-0.db.shop.svc.cluster.local. a 10.244.2.21\n"},
	    /* headless with no ready endpoint: NXDOMAIN (spec 2.4.1) */
	    {{"lonely.default.svc.cluster.local", LDNS_RR_TYPE_A}, 3, "", NULL, NULL},
	    /* publishNotReadyAddresses: not-ready endpoints are published */
	    {{"pnr.default.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "pnr.default.svc.cluster.local. a 10.244.7.1\npnr.default.svc.cluster.local. a "
	     "10.244.7.2\n",
	     NULL,
	     NULL},
	};
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_external_ptr_pod(void **state)
{
	(void)state;
	static const struct tcase cases[] = {
	    {{"payments.shop.svc.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "payments.shop.svc.cluster.local. cname api.payments.example.com.\n",
	     NULL,
	     NULL},
	    {{"payments.shop.svc.cluster.local", LDNS_RR_TYPE_CNAME},
	     0,
	     "payments.shop.svc.cluster.local. cname api.payments.example.com.\n",
	     NULL,
	     NULL},
	    {{"10.10.96.10.in-addr.arpa", LDNS_RR_TYPE_PTR},
	     0,
	     "10.10.96.10.in-addr.arpa. ptr web.shop.svc.cluster.local.\n",
	     NULL,
	     NULL},
	    {{"21.2.244.10.in-addr.arpa", LDNS_RR_TYPE_PTR},
	     0,
	     "21.2.244.10.in-addr.arpa. ptr db-0.db.shop.svc.cluster.local.\n",
	     NULL,
	     NULL},
	    {{"0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa",
	      LDNS_RR_TYPE_PTR},
	     0,
	     "0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. ptr "
	     "dual.default.svc.cluster.local.\n",
	     NULL,
	     NULL},
	    {{"10-244-1-5.default.pod.cluster.local", LDNS_RR_TYPE_A},
	     0,
	     "10-244-1-5.default.pod.cluster.local. a 10.244.1.5\n",
	     NULL,
	     NULL},
	    {{"10-244-1-5.default.pod.cluster.local", LDNS_RR_TYPE_AAAA}, 0, "", NULL, NULL},
	    {{"10-244-1-500.default.pod.cluster.local", LDNS_RR_TYPE_A}, 3, "", NULL, NULL},
	    {{"fd00-1--5.default.pod.cluster.local", LDNS_RR_TYPE_AAAA},
	     0,
	     "fd00-1--5.default.pod.cluster.local. aaaa fd00:1::5\n",
	     NULL,
	     NULL},
	    {{"dns-version.cluster.local", LDNS_RR_TYPE_TXT},
	     0,
	     "dns-version.cluster.local. txt \"1.1.0\"\n",
	     NULL,
	     NULL},
	    {{"cluster.local", LDNS_RR_TYPE_NS},
	     0,
	     "cluster.local. ns ns.dns.cluster.local.\n",
	     "",
	     "ns.dns.cluster.local. a 127.0.0.1\n"},
	    {{"example.com", LDNS_RR_TYPE_A}, 5, "", "", ""},
	    {{"web.shop.svc.cluster.local", LDNS_RR_TYPE_A, 255}, 5, "", "", ""},
	};
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_negative(void **state)
{
	(void)state;
	check_soa_authority("nope.shop.svc.cluster.local", LDNS_RR_TYPE_A, 3, "cluster.local.");
	check_soa_authority("google.com.shop.svc.cluster.local", LDNS_RR_TYPE_A, 3,
			    "cluster.local.");
	check_soa_authority("web.shop.svc.cluster.local", LDNS_RR_TYPE_AAAA, 0, "cluster.local.");
	check_soa_authority("shop.svc.cluster.local", LDNS_RR_TYPE_A, 0, "cluster.local.");
	check_soa_authority("empty-ns.svc.cluster.local", LDNS_RR_TYPE_A, 0, "cluster.local.");
	check_soa_authority("nons.svc.cluster.local", LDNS_RR_TYPE_A, 3, "cluster.local.");
	check_soa_authority("svc.cluster.local", LDNS_RR_TYPE_A, 0, "cluster.local.");
	check_soa_authority("pod.cluster.local", LDNS_RR_TYPE_A, 0, "cluster.local.");
	check_soa_authority("4.3.2.1.in-addr.arpa", LDNS_RR_TYPE_PTR, 3, "in-addr.arpa.");
	check_soa_authority("nope.shop.svc", LDNS_RR_TYPE_A, 3, "svc.");
	check_soa_authority("CLUSTER.local", LDNS_RR_TYPE_AAAA, 0, "cluster.local.");
}

static void test_chaos(void **state)
{
	(void)state;
	struct q q = {.name = "web.shop.svc.cluster.local", .type = LDNS_RR_TYPE_TXT, .qclass = 3};
	ldns_pkt *p = ask(&q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(p), 0);
	assert_int_equal(ldns_pkt_ancount(p), 3);
	char *t = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	assert_string_equal(t, "\"http 80/TCP -> http nodePort=- endpoints=1/2 ready: "
			       "10.244.1.11:8080 not-ready: 10.244.1.12:8081\"");
	free(t);
	ldns_pkt_free(p);

	q.name = "frontend.default.svc.cluster.local";
	p = ask(&q, NULL);
	t = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	assert_string_equal(t, "\"http 80/TCP -> 8080 nodePort=30080 endpoints=0/0\"");
	free(t);
	ldns_pkt_free(p);

	q.name = "version.bind";
	p = ask(&q, NULL);
	t = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	assert_true(strncmp(t, "\"svcdns ", 8) == 0);
	free(t);
	ldns_pkt_free(p);
	q.name = "id.server";
	p = ask(&q, NULL);
	t = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	assert_string_equal(t, "\"testhost\"");
	free(t);
	ldns_pkt_free(p);
}

/* The port view is rendered per query: too big for UDP it is truncated, over
 * TCP a line past 255 bytes continues in the next character-string. */
static void test_port_view(void **state)
{
	(void)state;
	size_t len;
	struct q q = {
	    .name = "big.default.svc.cluster.local", .type = LDNS_RR_TYPE_TXT, .qclass = 3};
	ldns_pkt *p = ask(&q, &len);
	assert_true(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_true(len <= 512);
	ldns_pkt_free(p);

	q.proto = DNS_TCP;
	p = ask(&q, &len);
	assert_false(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 1);
	ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), 0);
	assert_int_equal(ldns_rr_get_class(rr), LDNS_RR_CLASS_CH);
	assert_int_equal(ldns_rr_ttl(rr), 0);
	/* 300 endpoints of ~18 characters: many 255-byte strings, joined back
	 * they are the whole line */
	size_t nrd = ldns_rr_rd_count(rr), total = 0;
	assert_true(nrd > 20);
	char line[16384] = "";
	for (size_t k = 0; k < nrd; k++) {
		ldns_rdf *rd = ldns_rr_rdf(rr, k);
		size_t sl = ldns_rdf_data(rd)[0];
		assert_true(sl <= 255);
		if (k + 1 < nrd)
			assert_int_equal(sl, 255);
		memcpy(line + total, ldns_rdf_data(rd) + 1, sl);
		total += sl;
	}
	line[total] = '\0';
	const char *head = "postgres 5432/TCP -> 5432 nodePort=- endpoints=300/300 ready: "
			   "10.250.0.1:5432 10.250.0.2:5432 ";
	assert_true(strncmp(line, head, strlen(head)) == 0);
	assert_non_null(strstr(line, " 10.250.1.100:5432"));
	ldns_pkt_free(p);

	/* the short form names the same Service; other names are refused */
	q.proto = DNS_UDP;
	q.name = "web.shop.svc";
	p = ask(&q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(p), 0);
	assert_int_equal(ldns_pkt_ancount(p), 3);
	ldns_pkt_free(p);
	const char *refused[] = {"nothere.shop.svc.cluster.local", "web.shop.svc.other.zone",
				 "web.shop.pod.cluster.local", "shop.svc.cluster.local"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		q.name = refused[i];
		p = ask(&q, NULL);
		assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
		ldns_pkt_free(p);
	}
	/* only TXT (and ANY) */
	q.name = "web.shop.svc.cluster.local";
	q.type = LDNS_RR_TYPE_A;
	p = ask(&q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
	ldns_pkt_free(p);
}

static void test_truncation(void **state)
{
	(void)state;
	size_t len;
	struct q q = {.name = "big.default.svc.cluster.local", .type = LDNS_RR_TYPE_A};
	ldns_pkt *p = ask(&q, &len);
	assert_true(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_true(len <= 512);
	ldns_pkt_free(p);

	q.edns = 4096; /* more than we ever send over UDP */
	p = ask(&q, &len);
	assert_true(ldns_pkt_tc(p));
	assert_true(len <= DNS_EDNS_MAX_UDP);
	assert_non_null(ldns_pkt_edns(p) ? p : NULL);
	ldns_pkt_free(p);

	q.proto = DNS_TCP;
	p = ask(&q, &len);
	assert_false(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 300);
	ldns_pkt_free(p);

	/* an SRV whose additional section does not fit loses it, not the answer */
	q = (struct q){.name = "_postgres._tcp.big.default.svc.cluster.local",
		       .type = LDNS_RR_TYPE_SRV,
		       .edns = 1232};
	p = ask(&q, &len);
	assert_true(ldns_pkt_tc(p)); /* 300 SRVs do not fit 1232 bytes either */
	ldns_pkt_free(p);
	q.proto = DNS_TCP;
	p = ask(&q, &len);
	assert_int_equal(ldns_pkt_ancount(p), 300);
	ldns_pkt_free(p);
}

static void test_edns(void **state)
{
	(void)state;
	struct q q = {.name = "web.shop.svc.cluster.local", .type = LDNS_RR_TYPE_A, .edns = 1400};
	ldns_pkt *p = ask(&q, NULL);
	assert_true(ldns_pkt_edns(p));
	assert_int_equal(ldns_pkt_edns_udp_size(p), DNS_EDNS_MAX_UDP);
	ldns_pkt_free(p);
	q.edns = 0;
	p = ask(&q, NULL);
	assert_false(ldns_pkt_edns(p));
	ldns_pkt_free(p);
}

/* ---- hostile input ----------------------------------------------------------- */

static int answer_rcode(const uint8_t *req, size_t len, size_t *rlen)
{
	static uint8_t resp[DNS_MAX_MSG];
	struct dns_query_info info;
	size_t n = dns_answer(snap, req, len, resp, sizeof(resp), DNS_UDP, &info);
	*rlen = n;
	if (!n)
		return -1;
	assert_true(n >= WIRE_HDR_LEN);
	assert_true(wire_hdr_has(resp, WIRE_QR));
	return (int)wire_hdr_rcode(resp);
}

static void test_hostile(void **state)
{
	(void)state;
	uint8_t m[600];
	size_t rl;
	struct q q = {.name = "web.shop.svc.cluster.local", .type = DNS_T_A};
	size_t len = make_query(&q, m);

	/* shorter than a header */
	assert_int_equal(answer_rcode(m, WIRE_HDR_LEN - 1, &rl), -1);
	/* header only, qdcount 1 */
	assert_int_equal(answer_rcode(m, WIRE_HDR_LEN, &rl), DNS_RCODE_FORMERR);

	uint8_t r[600];
	memcpy(r, m, len);
	wire_hdr_set(r, WIRE_QR, true); /* a response: dropped */
	assert_int_equal(answer_rcode(r, len, &rl), -1);

	memcpy(r, m, len);
	wire_hdr_set_count(r, WIRE_QD, 0); /* no question */
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);
	wire_hdr_set_count(r, WIRE_QD, 2); /* two questions */
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);

	memcpy(r, m, len);
	/* opcode STATUS (2) and no other flag, then UPDATE */
	wire_hdr_set(r, WIRE_RD, false);
	wire_hdr_set_opcode(r, 2);
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_NOTIMP);
	wire_hdr_set_opcode(r, DNS_OP_UPDATE);
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_NOTIMP);

	memcpy(r, m, len);
	r[WIRE_HDR_LEN] = 60; /* a label running past the end */
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);
	memcpy(r, m, len);
	/* compression pointer in the question */
	wire_wr16(r + WIRE_HDR_LEN, 0xC000 | WIRE_HDR_LEN);
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);
	memcpy(r, m, len);
	r[WIRE_HDR_LEN] = 0x40; /* extended label type */
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);
	/* question without type and class */
	assert_int_equal(answer_rcode(m, len - 3, &rl), DNS_RCODE_FORMERR);

	/* an answer record in a query */
	memcpy(r, m, len);
	wire_hdr_set_count(r, WIRE_AN, 1);
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);

	/* EDNS: version 1 gets BADVERS (extended rcode 16: header 0, OPT 1) */
	q.edns = 1232;
	len = make_query(&q, m);
	memcpy(r, m, len);
	r[len - WIRE_OPT_LEN + 6] = 1; /* the OPT's version: its TTL's second byte */
	static uint8_t resp[DNS_MAX_MSG];
	struct dns_query_info info;
	size_t n = dns_answer(snap, r, len, resp, sizeof(resp), DNS_UDP, &info);
	ldns_pkt *p = NULL;
	assert_int_equal(ldns_wire2pkt(&p, resp, n), LDNS_STATUS_OK);
	assert_int_equal(ldns_pkt_edns_extended_rcode(p), 1);
	ldns_pkt_free(p);
	/* two OPT records */
	memcpy(r, m, len);
	memcpy(r + len, m + len - WIRE_OPT_LEN, WIRE_OPT_LEN);
	wire_hdr_set_count(r, WIRE_AR, 2);
	assert_int_equal(answer_rcode(r, len + WIRE_OPT_LEN, &rl), DNS_RCODE_FORMERR);
	/* OPT with a non-root owner */
	memcpy(r, m, len);
	r[len - WIRE_OPT_LEN] = 0xC0;
	assert_int_equal(answer_rcode(r, len, &rl), DNS_RCODE_FORMERR);

	/* a name of more than 255 octets */
	memset(r, 0, WIRE_HDR_LEN);
	wire_hdr_set_count(r, WIRE_QD, 1);
	size_t o = WIRE_HDR_LEN;
	for (int i = 0; i < 5; i++) {
		r[o++] = 60;
		memset(r + o, 'a', 60);
		o += 60;
	}
	r[o++] = 0;
	wire_wr16(r + o, DNS_T_A);
	wire_wr16(r + o + 2, DNS_C_IN);
	o += 4;
	assert_int_equal(answer_rcode(r, o, &rl), DNS_RCODE_FORMERR);

	/* no snapshot yet: SERVFAIL */
	len = make_query(&(struct q){.name = "web.shop.svc.cluster.local", .type = DNS_T_A}, m);
	n = dns_answer(NULL, m, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_SERVFAIL);
}

static void test_not_synced(void **state)
{
	(void)state;
	/* Before the first full sync an empty zone would deny every Service. */
	uint8_t m[600];
	size_t rl;
	snap->synced = false;
	size_t len =
	    make_query(&(struct q){.name = "web.shop.svc.cluster.local", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_SERVFAIL);
	len = make_query(&(struct q){.name = "1.2.3.4.in-addr.arpa", .type = DNS_T_PTR}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_SERVFAIL);
	len = make_query(&(struct q){.name = "version.bind", .type = DNS_T_TXT, .qclass = DNS_C_CH},
			 m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_NOERROR);
	len = make_query(&(struct q){.name = "example.com", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_REFUSED);
	/* --startup-timeout: held cluster names get no answer at all; the rest
	 * is answered as above */
	freshness_set_startup_hold(true);
	len = make_query(&(struct q){.name = "web.shop.svc.cluster.local", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), -1);
	len = make_query(&(struct q){.name = "1.2.3.4.in-addr.arpa", .type = DNS_T_PTR}, m);
	assert_int_equal(answer_rcode(m, len, &rl), -1);
	len = make_query(&(struct q){.name = "version.bind", .type = DNS_T_TXT, .qclass = DNS_C_CH},
			 m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_NOERROR);
	len = make_query(&(struct q){.name = "example.com", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_REFUSED);
	snap->synced = true;
	len = make_query(&(struct q){.name = "web.shop.svc.cluster.local", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_NOERROR);
	freshness_set_startup_hold(false);
	len = make_query(&(struct q){.name = "web.shop.svc.cluster.local", .type = DNS_T_A}, m);
	assert_int_equal(answer_rcode(m, len, &rl), DNS_RCODE_NOERROR);
}

static void test_random_bytes(void **state)
{
	(void)state;
	/* Random and mutated messages: the sanitizers catch any bad access. */
	static uint8_t resp[DNS_MAX_MSG];
	uint8_t m[600];
	struct q q = {
	    .name = "_http._tcp.web.shop.svc.cluster.local", .type = DNS_T_SRV, .edns = 1232};
	size_t base = make_query(&q, m);
	uint32_t seed = 12345;
	for (int i = 0; i < 200000; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t len = (i & 1) ? base : (seed >> 8) % sizeof(m);
		uint8_t buf[600];
		if (i & 1) {
			memcpy(buf, m, base);
			for (int k = 0; k < 3; k++) {
				seed = seed * 1103515245u + 12345u;
				buf[(seed >> 8) % base] = (uint8_t)(seed >> 24);
			}
		} else {
			for (size_t k = 0; k < len; k++) {
				seed = seed * 1103515245u + 12345u;
				buf[k] = (uint8_t)(seed >> 16);
			}
		}
		struct dns_query_info info;
		size_t n = dns_answer(snap, buf, len, resp, sizeof(resp),
				      (i % 3) ? DNS_UDP : DNS_TCP, &info);
		if (n) {
			ldns_pkt *p = NULL;
			/* whatever we send must itself be a well-formed message */
			assert_int_equal(ldns_wire2pkt(&p, resp, n), LDNS_STATUS_OK);
			ldns_pkt_free(p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cluster_ip),
	    cmocka_unit_test(test_headless),
	    cmocka_unit_test(test_external_ptr_pod),
	    cmocka_unit_test(test_negative),
	    cmocka_unit_test(test_chaos),
	    cmocka_unit_test(test_port_view),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_edns),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_not_synced),
	    cmocka_unit_test(test_random_bytes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
