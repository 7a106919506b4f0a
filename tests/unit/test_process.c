/* The verdict on one message (dns/process.h), as a table: message and
 * transport in, verdict and response out; zone transfers only over TCP and
 * only for allowed clients, RRL only over UDP, and what gets counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "common/metrics.h"
#include "common/netaddr.h"
#include "dns/limits.h"
#include "dns/process.h"
#include "dns/rrl.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

static struct model_svc_port web_ports[] = {
    {.name = "http", .port = 80, .proto = PROTO_TCP, .target_num = 8080},
};
static struct model_service svc_web;
static struct view_service vsvcs[1];
static char *namespaces[] = {"shop"};
static struct snapshot *snap;
static struct model_view view;
static struct snapshot_config scfg;

static int setup(void **state)
{
	(void)state;
	svc_web = (struct model_service){
	    .ns = "shop", .name = "web", .n_cluster_ips = 1, .ports = web_ports, .n_ports = 1};
	assert_int_equal(net_addr_parse("10.96.10.10", &svc_web.cluster_ips[0]), 0);
	vsvcs[0] = (struct view_service){.svc = &svc_web};
	view = (struct model_view){
	    .svcs = vsvcs, .n_svcs = 1, .namespaces = namespaces, .n_namespaces = 1};
	struct model_view tmp = view;
	scfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "testhost"};
	int ret = snapshot_build(&scfg, &tmp, NULL, &snap);
	if (ret < 0)
		return ret;
	/* the view here is static: the snapshot must not free it */
	free(snap->view);
	snap->view = &view;
	snap->synced = true;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	snap->view = NULL;
	snapshot_free(snap);
	return 0;
}

/* A query for `name` (dotted, no trailing dot) of `type`, class IN. */
static size_t make_query(const char *name, uint16_t type, uint8_t *buf)
{
	memset(buf, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(buf, 0x1234);
	wire_hdr_set(buf, WIRE_RD, true);
	wire_hdr_set_count(buf, WIRE_QD, 1);
	size_t n = WIRE_HDR_LEN;
	for (const char *p = name; *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	buf[n++] = 0;
	wire_wr16(buf + n, type);
	wire_wr16(buf + n + 2, DNS_C_IN);
	return n + 4;
}

static struct sockaddr_in peer_v4(const char *text)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000)};
	assert_int_equal(inet_pton(AF_INET, text, &a.sin_addr), 1);
	return a;
}

static uint8_t resp[DNS_MAX_MSG];

static enum dns_verdict run(const struct dns_process_ctx *ctx, const uint8_t *req, size_t len,
			    enum dns_proto proto, const struct sockaddr_in *peer, struct dns_msg *m)
{
	*m = (struct dns_msg){
	    .req = req,
	    .len = len,
	    .client = {.proto = proto,
		       .peer = (const struct sockaddr *)peer,
		       .peer_len = sizeof(*peer)},
	    .t0 = 5000000000ull, /* the same instant for every message: no RRL refill */
	    .resp = resp,
	    .cap = proto == DNS_TCP ? sizeof(resp) : 4096,
	};
	return dns_process(ctx, snap, m);
}

/* ---- the table -------------------------------------------------------------- */

struct verdict_case {
	const char *what;
	const char *name;
	uint16_t type;
	enum dns_proto proto;
	const char *peer;
	int mangle; /* 1: set QR (a response), 2: cut to 5 bytes */
	enum dns_verdict verdict;
	int rcode; /* of the response, for REPLY */
};

static void test_verdicts(void **state)
{
	(void)state;
	struct net_cidr allow;
	assert_int_equal(net_cidr_parse("192.0.2.0/24", &allow), 0);
	struct dns_process_ctx ctx = {.allow_transfer = &allow, .n_allow_transfer = 1};
	static const struct verdict_case cases[] = {
	    {"an answer", "web.shop.svc.cluster.local", DNS_T_A, DNS_UDP, "10.0.0.1", 0, DNS_REPLY,
	     DNS_RCODE_NOERROR},
	    {"an answer over TCP", "web.shop.svc.cluster.local", DNS_T_A, DNS_TCP, "10.0.0.1", 0,
	     DNS_REPLY, DNS_RCODE_NOERROR},
	    {"a name that does not exist", "nope.shop.svc.cluster.local", DNS_T_A, DNS_UDP,
	     "10.0.0.1", 0, DNS_REPLY, DNS_RCODE_NXDOMAIN},
	    {"a response is never answered", "web.shop.svc.cluster.local", DNS_T_A, DNS_UDP,
	     "10.0.0.1", 1, DNS_DISCARD},
	    {"a runt over TCP", "web.shop.svc.cluster.local", DNS_T_A, DNS_TCP, "10.0.0.1", 2,
	     DNS_DISCARD},
	    {"AXFR over UDP, even from an allowed client", "cluster.local", DNS_T_AXFR, DNS_UDP,
	     "192.0.2.7", 0, DNS_REPLY, DNS_RCODE_REFUSED},
	    {"AXFR over TCP from a client not allowed", "cluster.local", DNS_T_AXFR, DNS_TCP,
	     "10.0.0.1", 0, DNS_REPLY, DNS_RCODE_REFUSED},
	    {"AXFR over TCP from an allowed client", "cluster.local", DNS_T_AXFR, DNS_TCP,
	     "192.0.2.7", 0, DNS_TRANSFER},
	    {"AXFR of a zone not served", "example.org", DNS_T_AXFR, DNS_TCP, "192.0.2.7", 0,
	     DNS_REPLY, DNS_RCODE_NOTAUTH},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct verdict_case *c = &cases[i];
		uint8_t req[512];
		size_t len = make_query(c->name, c->type, req);
		if (c->mangle == 1)
			wire_hdr_set(req, WIRE_QR, true);
		if (c->mangle == 2)
			len = 5;
		struct sockaddr_in peer = peer_v4(c->peer);
		struct dns_msg m;
		enum dns_verdict v = run(&ctx, req, len, c->proto, &peer, &m);
		print_message("%s\n", c->what);
		assert_int_equal(v, c->verdict);
		if (v == DNS_REPLY) {
			assert_true(m.rlen >= len);
			assert_true(wire_hdr_has(resp, WIRE_QR));
			assert_int_equal(wire_hdr_id(resp), 0x1234);
			assert_int_equal(wire_hdr_rcode(resp), c->rcode);
			assert_null(m.xfr);
		}
		if (v == DNS_TRANSFER) {
			/* Framed messages: the first one answers with the SOA. */
			assert_non_null(m.xfr);
			assert_true(m.xfr_len > 2 + WIRE_HDR_LEN);
			size_t first = wire_rd16(m.xfr);
			assert_true(2 + first <= m.xfr_len);
			assert_int_equal(wire_hdr_rcode(m.xfr + 2), DNS_RCODE_NOERROR);
			assert_true(wire_hdr_count(m.xfr + 2, WIRE_AN) > 0);
			free(m.xfr);
		}
	}
}

/* RRL applies to UDP alone: at one response per second with slip 2, the
 * same question from one client passes once, then is dropped and slipped
 * in turn; over TCP it always passes. Each hit is counted. */
static void test_rrl(void **state)
{
	(void)state;
	struct dns_limits_config lcfg = {.rrl = 1, .rrl_slip = 2};
	struct dns_limits *limits;
	struct rrl *rrl;
	assert_int_equal(dns_limits_new(1, &lcfg, &limits), 0);
	assert_int_equal(rrl_new(1, 2, 1024, &rrl), 0);
	struct dns_process_ctx ctx = {.rrl = rrl, .limits = limits};
	uint8_t req[512];
	size_t len = make_query("web.shop.svc.cluster.local", DNS_T_A, req);
	struct sockaddr_in peer = peer_v4("10.0.0.9");
	struct dns_msg m;
	static const enum dns_verdict udp[] = {DNS_REPLY, DNS_DROP, DNS_SLIP, DNS_DROP, DNS_SLIP};
	for (size_t i = 0; i < sizeof(udp) / sizeof(udp[0]); i++) {
		assert_int_equal(run(&ctx, req, len, DNS_UDP, &peer, &m), udp[i]);
		if (udp[i] == DNS_SLIP) {
			/* header and question alone, TC set */
			assert_int_equal(m.rlen, len);
			assert_true(wire_hdr_has(resp, WIRE_TC));
			assert_int_equal(wire_hdr_count(resp, WIRE_AN), 0);
		}
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(run(&ctx, req, len, DNS_TCP, &peer, &m), DNS_REPLY);
	assert_int_equal(dns_limits_count(limits, DNS_LIMIT_RRL_DROP), 2);
	assert_int_equal(dns_limits_count(limits, DNS_LIMIT_RRL_SLIP), 2);
	rrl_free(rrl);
	dns_limits_free(limits);
}

/* What is sent is counted; what is dropped or discarded is not. */
static void test_counted(void **state)
{
	(void)state;
	struct metrics *mx;
	assert_int_equal(metrics_new(&mx), 0);
	struct metrics_worker *mw = metrics_worker_new(mx);
	assert_non_null(mw);
	struct dns_process_ctx ctx = {.mw = mw};
	uint8_t req[512];
	size_t len = make_query("nope.shop.svc.cluster.local", DNS_T_A, req);
	struct sockaddr_in peer = peer_v4("10.0.0.1");
	struct dns_msg m;
	assert_int_equal(run(&ctx, req, len, DNS_UDP, &peer, &m), DNS_REPLY);
	assert_int_equal(run(&ctx, req, len, DNS_TCP, &peer, &m), DNS_REPLY);
	wire_hdr_set(req, WIRE_QR, true);
	assert_int_equal(run(&ctx, req, len, DNS_UDP, &peer, &m), DNS_DISCARD);
	char *body;
	size_t blen;
	assert_int_equal(metrics_render(mx, &body, &blen), 0);
	assert_non_null(strstr(body, "svcdns_dns_responses_total{zone=\".\",proto=\"udp\","
				     "type=\"A\",rcode=\"NXDOMAIN\"} 1\n"));
	assert_non_null(strstr(body, "svcdns_dns_responses_total{zone=\".\",proto=\"tcp\","
				     "type=\"A\",rcode=\"NXDOMAIN\"} 1\n"));
	assert_non_null(strstr(body, "svcdns_dns_requests_total{zone=\".\",proto=\"udp\","
				     "family=\"ipv4\",type=\"A\"} 1\n"));
	free(body);
	metrics_free(mx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_rrl),
	    cmocka_unit_test(test_counted),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
