/* The operations modules without a network: zone labels, counting and the
 * Prometheus text, the query log line, and the
 * freshness of answers (EDE 3 and generation.<zone>) through dns_answer(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "common/metrics.h"
#include "common/metrics_qlog.h"
#include "dns/lifecycle_freshness.h"
#include "dns/query.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"
#include "tmpdir.h"

/* A query in wire form: header, one question, optionally an OPT record. */
static size_t make_query(uint8_t *buf, const char *name, uint16_t type, uint16_t qclass, bool edns)
{
	memset(buf, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(buf, 0x1234);
	wire_hdr_set_count(buf, WIRE_QD, 1);
	int nl = dname_from_text(name, buf + WIRE_HDR_LEN, 255);
	assert_true(nl > 0);
	size_t n = WIRE_HDR_LEN + (size_t)nl;
	wire_wr16(buf + n, type);
	wire_wr16(buf + n + 2, qclass);
	n += 4;
	if (edns) {
		/* root owner, payload 1232, no flags, no options */
		memset(buf + n, 0, WIRE_OPT_LEN);
		wire_wr16(buf + n + 1, DNS_T_OPT);
		wire_wr16(buf + n + 3, 1232);
		n += WIRE_OPT_LEN;
		wire_hdr_set_count(buf, WIRE_AR, 1);
	}
	return n;
}

/* ---- zone labels ------------------------------------------------------------ */

static void test_zone_of(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	int cl = metrics_zone_add(m, "cluster.local", METRICS_ZONE_CLUSTER);
	int rev = metrics_zone_add(m, "in-addr.arpa.", METRICS_ZONE_CLUSTER);
	int st = metrics_zone_add(m, "2.0.192.in-addr.arpa", METRICS_ZONE_STATIC);
	assert_true(cl > 0 && rev > 0 && st > 0);
	assert_int_equal(metrics_zone_add(m, "Cluster.Local.", METRICS_ZONE_CLUSTER), cl);

	const struct {
		const char *name;
		int *want;
	} cases[] = {
	    {"web.shop.svc.cluster.local", &cl},
	    {"WEB.Shop.SVC.Cluster.LOCAL", &cl},
	    {"cluster.local", &cl},
	    {"10.2.0.192.in-addr.arpa", &st}, /* the longest zone wins */
	    {"10.96.10.10.in-addr.arpa", &rev},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t w[256];
		int n = dname_from_text(cases[i].name, w, sizeof(w));
		/* the query path hands over the name as the client wrote it */
		const char *p = cases[i].name;
		for (int k = 0, o = 1; k < n - 1 && p[k]; k++, o++)
			if (p[k] != '.')
				w[o] = (uint8_t)p[k];
		assert_int_equal(metrics_zone_of(m, w, (size_t)n), (unsigned)*cases[i].want);
	}
	static const char *const outside[] = {"xcluster.local", "example.org", "local", "."};
	for (size_t i = 0; i < 4; i++) {
		uint8_t w[256];
		int n = dname_from_text(outside[i], w, sizeof(w));
		assert_int_equal(metrics_zone_of(m, w, (size_t)n), 0);
	}
	/* a name cut short is no zone's */
	uint8_t cut[] = {3, 'w', 'e', 'b', 7, 'c', 'l'};
	assert_int_equal(metrics_zone_of(m, cut, sizeof(cut)), 0);
	metrics_free(m);
}

static void test_type_slots(void **state)
{
	(void)state;
	assert_string_equal(metrics_type_name(metrics_type_slot(1)), "A");
	assert_string_equal(metrics_type_name(metrics_type_slot(28)), "AAAA");
	assert_string_equal(metrics_type_name(metrics_type_slot(33)), "SRV");
	assert_string_equal(metrics_type_name(metrics_type_slot(252)), "AXFR");
	assert_string_equal(metrics_type_name(metrics_type_slot(99)), "other");
	assert_string_equal(metrics_rcode_name(3), "NXDOMAIN");
	assert_string_equal(metrics_rcode_name(16), "BADVERS");
}

/* ---- counting and the text format ------------------------------------------ */

static void src_hostile(struct metrics_out *o, void *arg)
{
	(void)arg;
	metrics_family(o, "test_labels", "gauge", "Labels that need escaping.");
	metrics_sample(o, "test_labels", 2.5, "a", "q\"uo\\te\nnl", "b", "", NULL);
	static const double bounds[2] = {0.1, 1};
	static const uint64_t counts[3] = {1, 2, 3};
	metrics_family(o, "test_hist", "histogram", "A histogram.");
	metrics_histogram(o, "test_hist", bounds, 2, counts, 7.5, "k", "v", NULL);
}

static void count(struct metrics_worker *w, const char *name, uint16_t type, uint8_t rcode,
		  enum metrics_proto proto, bool v6, size_t resp_len)
{
	uint8_t req[512], resp[512] = {0};
	size_t len = make_query(req, name, type, DNS_C_IN, false);
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	wire_hdr_set_rcode(resp, rcode);
	struct metrics_query q = {
	    .req = req,
	    .req_len = len,
	    .qend = (uint16_t)len,
	    .qtype = type,
	    .resp = resp_len ? resp : NULL,
	    .resp_len = resp_len,
	    .rcode = rcode,
	    .proto = proto,
	    .peer = v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
	    .dur_ns = 30000,
	};
	metrics_dns_query(w, &q);
}

static void test_render(void **state)
{
	(void)state;
	struct metrics *m;
	char *body;
	size_t len;
	assert_int_equal(metrics_new(&m), 0);
	metrics_zone_add(m, "cluster.local", METRICS_ZONE_CLUSTER);
	struct metrics_worker *w1 = metrics_worker_new(m), *w2 = metrics_worker_new(m);
	assert_non_null(w1);
	assert_non_null(w2);
	/* two workers, one sum */
	count(w1, "web.shop.svc.cluster.local", DNS_T_A, DNS_RCODE_NOERROR, METRICS_UDP, false, 80);
	count(w2, "web.shop.svc.cluster.local", DNS_T_A, DNS_RCODE_NOERROR, METRICS_UDP, false, 80);
	count(w2, "nothere.cluster.local", DNS_T_A, DNS_RCODE_NXDOMAIN, METRICS_TCP, true, 100);
	/* no response yet */
	count(w1, "example.org", DNS_T_AAAA, DNS_RCODE_REFUSED, METRICS_UDP, false, 0);
	assert_int_equal(metrics_register_source(m, "hostile", src_hostile, NULL), 0);
	assert_int_equal(metrics_render(m, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	static const char *const want[] = {
	    "svcdns_dns_requests_total{zone=\"cluster.local.\",proto=\"udp\",family=\"ipv4\","
	    "type=\"A\"} 2\n",
	    "svcdns_dns_requests_total{zone=\"cluster.local.\",proto=\"tcp\",family=\"ipv6\","
	    "type=\"A\"} 1\n",
	    "svcdns_dns_requests_total{zone=\".\",proto=\"udp\",family=\"ipv4\",type=\"AAAA\"} 1\n",
	    "svcdns_dns_responses_total{zone=\"cluster.local.\",proto=\"udp\",type=\"A\","
	    "rcode=\"NOERROR\"} 2\n",
	    "svcdns_dns_responses_total{zone=\"cluster.local.\",proto=\"tcp\",type=\"A\","
	    "rcode=\"NXDOMAIN\"} 1\n",
	    "svcdns_dns_request_duration_seconds_bucket{zone=\"cluster.local.\",type=\"A\","
	    "le=\"2.5e-05\"} 0\n",
	    "svcdns_dns_request_duration_seconds_bucket{zone=\"cluster.local.\",type=\"A\","
	    "le=\"5e-05\"} 3\n",
	    "svcdns_dns_request_duration_seconds_count{zone=\"cluster.local.\",type=\"A\"} 3\n",
	    "svcdns_dns_response_size_bytes_sum{zone=\"cluster.local.\",proto=\"udp\"} 160\n",
	    "# TYPE svcdns_dns_requests_total counter\n",
	    "test_labels{a=\"q\\\"uo\\\\te\\nnl\",b=\"\"} 2.5\n",
	    "test_hist_bucket{k=\"v\",le=\"0.1\"} 1\n",
	    "test_hist_bucket{k=\"v\",le=\"1\"} 3\n",
	    "test_hist_bucket{k=\"v\",le=\"+Inf\"} 6\n",
	    "test_hist_sum{k=\"v\"} 7.5\n",
	    "test_hist_count{k=\"v\"} 6\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(body, want[i]))
			fail_msg("missing: %s", want[i]);
	/* a response that was not sent is not counted */
	assert_null(strstr(body, "rcode=\"REFUSED\""));
	assert_null(strstr(body, "coredns_"));
	free(body);

	metrics_set_compat(m, true);
	metrics_set_server_label(m, "dns://:53");
	assert_int_equal(metrics_render(m, &body, &len), 0);
	static const char *const compat[] = {
	    "coredns_dns_requests_total{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\","
	    "proto=\"udp\",family=\"1\",type=\"A\"} 2\n",
	    "coredns_dns_responses_total{server=\"dns://:53\",zone=\"cluster.local.\",view=\"\","
	    "rcode=\"NXDOMAIN\",plugin=\"kubernetes\"} 1\n",
	    "coredns_dns_request_duration_seconds_count{server=\"dns://:53\",zone=\"cluster.local."
	    "\",view=\"\",type=\"A\"} 3\n",
	    "coredns_build_info{",
	};
	for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]); i++)
		if (!strstr(body, compat[i]))
			fail_msg("missing: %s", compat[i]);
	free(body);
	metrics_free(m);
}

/* ---- the query log line ----------------------------------------------------- */

static void test_qlog_format(void **state)
{
	(void)state;
	uint8_t req[512], resp[64] = {0};
	char line[1400];
	size_t len = make_query(req, "web.shop.svc.cluster.local", DNS_T_SRV, DNS_C_IN, true);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	wire_hdr_set(resp, WIRE_QR, true);
	wire_hdr_set(resp, WIRE_AA, true);
	wire_hdr_set_rcode(resp, DNS_RCODE_NXDOMAIN);
	/* rflags and rflags2 are the header's bytes 2 and 3, as the query log
	 * takes them */
	struct qlog_entry_in e = {
	    .peer = (struct sockaddr *)&a,
	    .req = req,
	    .req_len = len,
	    .qend = (uint16_t)(len - WIRE_OPT_LEN),
	    .bufsize = 1232,
	    .answered = true,
	    .rcode = DNS_RCODE_NXDOMAIN,
	    .rflags = resp[2],
	    .rflags2 = resp[3],
	    .resp_len = 120,
	    .dur_ns = 1500,
	};
	qlog_format(&e, line, sizeof(line));
	assert_string_equal(line, "127.0.0.1:40000 - 4660 \"SRV IN web.shop.svc.cluster.local. udp "
				  "55 false 1232\" NXDOMAIN qr,aa 120 0.000002s");
	e.answered = false;
	e.tcp = true;
	qlog_format(&e, line, sizeof(line));
	assert_non_null(strstr(line, "tcp 55 false 1232\" FORWARDED"));

	/* a hostile name stays one token, with nothing unprintable in it */
	uint8_t evil[64] = {0};
	wire_hdr_set_id(evil, 0x1234);
	wire_hdr_set_count(evil, WIRE_QD, 1);
	static const uint8_t name[] = {5, 'a', ' ', '"', '\n', '.', 3, 'c', 'o', 'm', 0};
	memcpy(evil + WIRE_HDR_LEN, name, sizeof(name));
	size_t el = WIRE_HDR_LEN + sizeof(name);
	wire_wr16(evil + el, DNS_T_A);
	wire_wr16(evil + el + 2, DNS_C_IN);
	el += 4;
	e.req = evil;
	e.req_len = el;
	e.qend = (uint16_t)el;
	qlog_format(&e, line, sizeof(line));
	assert_non_null(strstr(line, "A IN a\\032\\\"\\010\\..com. tcp"));
}

/* ---- freshness through dns_answer --------------------------------------------- */

static struct model_service svc = {.ns = "shop", .name = "web", .n_cluster_ips = 1};
static struct view_service vsvc = {.svc = &svc};
static char *nss[] = {"shop"};
static struct snapshot_config scfg = {.zone = "cluster.local", .ttl = 5, .hostname = "h"};

/* The EDE option of a response's OPT record: its info-code, or -1 if none. */
static int ede_code(const uint8_t *r, size_t n)
{
	for (size_t i = WIRE_HDR_LEN; i + WIRE_OPT_LEN <= n; i++)
		if (r[i] == 0 && wire_rd16(r + i + 1) == DNS_T_OPT) {
			size_t rdlen = wire_rd16(r + i + 9);
			const uint8_t *o = r + i + WIRE_OPT_LEN;
			if (i + WIRE_OPT_LEN + rdlen != n)
				continue;
			for (size_t k = 0; k + 4 <= rdlen;) {
				size_t ol = wire_rd16(o + k + 2);
				if (wire_rd16(o + k) == DNS_EDNS_EDE && ol >= 2)
					return wire_rd16(o + k + 4);
				k += 4 + ol;
			}
			return -1;
		}
	return -1;
}

static void test_freshness(void **state)
{
	(void)state;
	struct snapshot *s;
	assert_int_equal(net_addr_parse("10.96.0.7", &svc.cluster_ips[0]), 0);
	struct model_view view = {.svcs = &vsvc, .n_svcs = 1, .namespaces = nss, .n_namespaces = 1};
	assert_int_equal(snapshot_build(&scfg, &view, NULL, &s), 0);
	free(s->view);
	s->view = NULL;
	s->synced = true;
	assert_int_equal(freshness_set_zone("cluster.local"), 0);

	uint8_t req[512], resp[4096];
	struct dns_query_info info;
	size_t len, n;

	/* fresh: no EDE */
	freshness_set_heard(0, false);
	len = make_query(req, "web.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_true(n > 0);
	assert_int_equal(ede_code(resp, n), -1);
	assert_int_equal(info.stale, 0);

	/* stale: EDE 3 on cluster answers to EDNS clients only. Heard from 90 s
	 * ago, or, on a machine up for less than that (CLOCK_MONOTONIC starts
	 * near 0 at boot), as long ago as the clock allows: 0 means "never". */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	uint64_t ago = now > 90ull * 1000000000u ? 90ull * 1000000000u : now - 1;
	freshness_set_heard(now - ago, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(ede_code(resp, n), DNS_EDE_STALE);
	assert_int_equal(info.stale, 1);
	assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_NOERROR);
	assert_int_equal(wire_hdr_count(resp, WIRE_AN), 1); /* the answer is still there */
	len = make_query(req, "web.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, false);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(ede_code(resp, n), -1);
	assert_int_equal(info.stale, 0);
	/* NXDOMAIN from the cluster zone is stale data too */
	len = make_query(req, "nothere.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_NXDOMAIN);
	assert_int_equal(ede_code(resp, n), DNS_EDE_STALE);
	/* CHAOS answers are not cluster data */
	len = make_query(req, "version.bind", DNS_T_TXT, DNS_C_CH, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(ede_code(resp, n), -1);

	/* generation.<zone> in CHAOS: generation, serial, ages, stale */
	len = make_query(req, "Generation.Cluster.Local", DNS_T_TXT, DNS_C_CH, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_NOERROR);
	assert_int_equal(wire_hdr_count(resp, WIRE_AN), 1);
	char gen[64];
	snprintf(gen, sizeof(gen), "generation=%llu", (unsigned long long)s->generation);
	assert_non_null(memmem(resp, n, gen, strlen(gen)));
	assert_non_null(memmem(resp, n, "stale=yes", 9));
	/* `ago` old when set (printed in tenths, cut down); a loaded machine may
	 * take a while to get here */
	const char *age = memmem(resp, n, "source-age=", 11);
	assert_non_null(age);
	double age_s = strtod(age + 11, NULL), ago_s = (double)ago / 1e9;
	assert_true(age_s >= ago_s - 0.1 && age_s < ago_s + 60.0);
	/* not in IN, and not for another zone */
	len = make_query(req, "generation.cluster.local", DNS_T_TXT, DNS_C_IN, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_null(memmem(resp, n, "generation=", 11));
	len = make_query(req, "generation.example.org", DNS_T_TXT, DNS_C_CH, true);
	n = dns_answer(s, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(wire_hdr_rcode(resp), DNS_RCODE_REFUSED);

	freshness_set_heard(0, false);
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zone_of),   cmocka_unit_test(test_type_slots),
	    cmocka_unit_test(test_render),    cmocka_unit_test(test_qlog_format),
	    cmocka_unit_test(test_freshness),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
