/* --filter-aaaa and --filter-a, as a table: the flags and the cluster's
 * CIDRs in, a question out, and either the filtered answer (NOERROR, no
 * record in any section, EDE 17 when the client sent EDNS) with no packet
 * upstream, or the question forwarded as before. On the scripted clock and a
 * network that only counts what is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "daemon/options.h"
#include "resolver/forward_int.h"
#include "wire/dname.h"
#include "wire/wire.h"

#include "fwd_fake_clock.h"

struct filter_case {
	const char *name;
	const char *args[6];
	const char *svc_cidr, *pod_cidr;
	uint16_t qtype;
	bool edns;
	bool filtered;
};

static const struct filter_case cases[] = {
    {"off by default: AAAA goes upstream",
     {NULL},
     "10.96.0.0/12",
     "10.244.0.0/16",
     DNS_T_AAAA,
     true,
     false},
    {"on: AAAA answered empty, EDE 17",
     {"--filter-aaaa", "on"},
     NULL,
     NULL,
     DNS_T_AAAA,
     true,
     true},
    {"on, a client without EDNS: no OPT",
     {"--filter-aaaa", "on"},
     NULL,
     NULL,
     DNS_T_AAAA,
     false,
     true},
    {"on: A still goes upstream", {"--filter-aaaa", "on"}, NULL, NULL, DNS_T_A, true, false},
    {"on: other types still go upstream",
     {"--filter-aaaa", "on"},
     NULL,
     NULL,
     DNS_T_MX,
     true,
     false},
    {"auto, IPv4 CIDRs: AAAA filtered",
     {"--filter-aaaa", "auto"},
     "10.96.0.0/12",
     "10.244.0.0/16",
     DNS_T_AAAA,
     true,
     true},
    {"auto, IPv4 CIDRs: A not",
     {"--filter-aaaa", "auto", "--filter-a", "auto"},
     "10.96.0.0/12",
     "10.244.0.0/16",
     DNS_T_A,
     true,
     false},
    {"auto, dual-stack CIDRs: AAAA not",
     {"--filter-aaaa", "auto"},
     "10.96.0.0/12",
     "fd00:10:244::/56",
     DNS_T_AAAA,
     true,
     false},
    {"auto, IPv6 CIDRs: AAAA not",
     {"--filter-aaaa", "auto"},
     "fd00:10:96::/108",
     "fd00:10:244::/56",
     DNS_T_AAAA,
     true,
     false},
    {"--filter-a auto, IPv6 CIDRs: A filtered",
     {"--filter-a", "auto"},
     "fd00:10:96::/108",
     "fd00:10:244::/56",
     DNS_T_A,
     true,
     true},
    {"--filter-a on: A filtered", {"--filter-a", "on"}, NULL, NULL, DNS_T_A, true, true},
};

static unsigned n_sent;

static int count_send(void *ctx, const struct fwd_xchg_req *r, struct fwd_xchg **out)
{
	static struct fwd_xchg x;
	(void)ctx;
	x.tcp = r->tcp;
	n_sent++;
	*out = &x;
	return 0;
}

static void count_end(struct fwd_xchg *x)
{
	(void)x;
}

static unsigned released;

static void on_reply(void *conn, const uint8_t *msg, size_t len)
{
	(void)conn;
	(void)len;
	if (!msg)
		released++;
}

/* The EDE info-code in resp's OPT, or -1. */
static int ede_of(const uint8_t *resp, size_t len)
{
	if (len < WIRE_HDR_LEN + WIRE_OPT_LEN + 6 || wire_rd16(resp + len - 6) != DNS_EDNS_EDE)
		return -1;
	return wire_rd16(resp + len - 2);
}

static void run_case(const struct filter_case *fc)
{
	const char *argv[16] = {"svcdns", "--manifests", ".", "--upstream", "192.0.2.1"};
	int argc = 5;
	for (size_t i = 0; fc->args[i]; i++)
		argv[argc++] = fc->args[i];
	struct svcdns_options *so = NULL;
	char err[256];
	assert_int_equal(options_load(argc, (char *const *)argv, &so, err, sizeof(err)), 0);
	struct forward_options o = so->fwd;
	o.zone = so->zone;
	if (fc->svc_cidr) {
		assert_int_equal(net_cidr_parse(fc->svc_cidr, &o.cluster_cidrs[0]), 0);
		assert_int_equal(net_cidr_parse(fc->pod_cidr, &o.cluster_cidrs[1]), 0);
		o.n_cluster_cidrs = 2;
	}
	struct fake_clock c = {.now = 3000000};
	struct fwd_clock clk = fc_clock(&c);
	struct fwd_net net = {NULL, count_send, count_end};
	struct forwarder *f;
	struct forward_worker *fw;
	assert_int_equal(forward_new(&o, NULL, 0, 1, &f), 0);
	options_free(so);
	assert_int_equal(forward_worker_new_io(f, 0, on_reply, &clk, &net, &fw), 0);

	uint8_t req[512], resp[4096];
	memset(req, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(req, 0x4242);
	wire_hdr_set(req, WIRE_RD, true);
	wire_hdr_set_count(req, WIRE_QD, 1);
	int nl = dname_from_text("www.example.test", req + WIRE_HDR_LEN, DNAME_MAX);
	size_t len = WIRE_HDR_LEN + (size_t)nl;
	wire_wr16(req + len, fc->qtype);
	wire_wr16(req + len + 2, DNS_C_IN);
	len += 4;
	memcpy(resp, req, len);
	wire_hdr_set(resp, WIRE_QR, true);
	wire_hdr_set_rcode(resp, DNS_RCODE_REFUSED);
	size_t rlen = len;
	struct dns_query_info info = {.qtype = fc->qtype,
				      .rcode = DNS_RCODE_REFUSED,
				      .qend = (uint16_t)len,
				      .limit = 1232,
				      .edns = fc->edns,
				      .outside = 1};
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(5300)};
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct forward_client cl = {.proto = DNS_TCP,
				    .peer = (const struct sockaddr *)&peer,
				    .peer_len = sizeof(peer),
				    .udp_fd = -1,
				    .conn = resp};
	n_sent = released = 0;
	enum forward_verdict v =
	    forward_query(fw, NULL, &cl, req, len, resp, &rlen, sizeof(resp), &info);
	fc_run_until(&c, c.now);
	struct forward_stats st;
	forward_stats_get(f, &st);
	if (fc->filtered) {
		if (v != FORWARD_REPLY || n_sent)
			fail_msg("%s: asked upstream", fc->name);
		assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_NOERROR);
		assert_int_equal(wire_hdr_id(resp), 0x4242);
		assert_true(wire_hdr_has(resp, WIRE_QR) && wire_hdr_has(resp, WIRE_RA));
		assert_int_equal(wire_hdr_count(resp, WIRE_AN), 0);
		assert_int_equal(wire_hdr_count(resp, WIRE_NS), 0);
		assert_int_equal(wire_hdr_count(resp, WIRE_AR), fc->edns ? 1 : 0);
		assert_int_equal(rlen, len + (fc->edns ? WIRE_OPT_LEN + 6 : 0));
		if (fc->edns)
			assert_int_equal(ede_of(resp, rlen), DNS_EDE_FILTERED);
		assert_int_equal(st.filtered_aaaa + st.filtered_a, 1);
		assert_int_equal(st.forwarded, 0);
	} else {
		if (v != FORWARD_PENDING || n_sent != 1)
			fail_msg("%s: not forwarded", fc->name);
		assert_int_equal(st.filtered_aaaa + st.filtered_a, 0);
	}
	forward_worker_close(fw);
	forward_worker_free(fw);
	forward_free(f);
	assert_int_equal(released, fc->filtered ? 0 : 1);
	assert_null(c.timers);
}

static void test_filter(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
