/* Response rate limiting (dns/rrl.h) on a fake clock: the rate and its
 * one-second burst, refilling, the slip cadence, which responses share a flow
 * (network prefix, kind, name), the slipped response itself, and a table far
 * smaller than the number of flows. Then the counters every limit hit goes to
 * (dns/limits.h) and their log, which must not flood: one line per limit per
 * DNS_LIMITS_LOG_MS with the count since the last. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dns/limits.h"
#include "dns/rrl.h"
#include "wire/wire.h"

/* A response as svcdns writes it: header, the question (name as asked),
 * then `an` answer records (their bytes do not matter to RRL). */
static size_t response(uint8_t *out, const char *name, uint16_t qtype, uint8_t rcode, uint16_t an)
{
	memset(out, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(out, 0x1234);
	wire_hdr_set(out, WIRE_QR, true);
	wire_hdr_set_rcode(out, rcode);
	wire_hdr_set_count(out, WIRE_QD, 1);
	wire_hdr_set_count(out, WIRE_AN, an);
	size_t n = WIRE_HDR_LEN;
	for (const char *p = name; *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	wire_wr16(out + n, qtype);
	wire_wr16(out + n + 2, DNS_C_IN);
	n += 4;
	for (uint16_t i = 0; i < an; i++) { /* A records, compressed owner */
		wire_wr16(out + n, 0xC000 | WIRE_HDR_LEN);
		wire_wr16(out + n + 2, DNS_T_A);
		wire_wr16(out + n + 4, DNS_C_IN);
		wire_wr32(out + n + 6, 5);
		wire_wr16(out + n + 10, 4);
		wire_wr32(out + n + 12, 0x0A000001); /* 10.0.0.1 */
		n += 16;
	}
	return n;
}

static struct sockaddr_storage peer(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(40000);
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &a6->sin6_addr), 1);
		a6->sin6_family = AF_INET6;
	}
	return ss;
}

static enum rrl_verdict check(struct rrl *r, const char *client, const char *name, uint16_t qtype,
			      uint8_t rcode, uint16_t an, uint64_t now)
{
	uint8_t buf[512];
	struct sockaddr_storage p = peer(client);
	size_t len = response(buf, name, qtype, rcode, an);
	return rrl_check(r, (struct sockaddr *)&p, buf, len, now);
}

#define A_WEB "web.shop.svc.cluster.local"

static void test_rate_burst_refill(void **state)
{
	(void)state;
	struct rrl *r;
	assert_int_equal(rrl_new(5, 2, 1024, &r), 0);
	/* one second of burst: 5 pass, then drop and slip alternate */
	for (int i = 0; i < 5; i++)
		assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 1000),
				 RRL_PASS);
	static const enum rrl_verdict after[] = {RRL_DROP, RRL_SLIP, RRL_DROP, RRL_SLIP};
	for (int i = 0; i < 4; i++)
		assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 1000),
				 after[i]);
	/* 5 per second is one per 200 ms */
	assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 1199),
			 RRL_DROP);
	assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 1200),
			 RRL_PASS);
	assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 1200),
			 RRL_SLIP);
	/* a quiet second refills the whole burst, no more */
	for (int i = 0; i < 5; i++)
		assert_int_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 5000),
				 RRL_PASS);
	assert_int_not_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 5000),
			     RRL_PASS);
	/* a clock that goes back refills nothing */
	assert_int_not_equal(check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 4000),
			     RRL_PASS);
	rrl_free(r);
}

/* Which responses share a flow with A_WEB A NOERROR to 192.0.2.1, and which
 * do not: the first `rate` of each flow pass on a fresh table. */
struct flow_case {
	const char *note;
	const char *client, *name;
	uint16_t qtype;
	uint8_t rcode;
	uint16_t an;
	bool shared;
};

static void test_flows(void **state)
{
	(void)state;
	static const struct flow_case cases[] = {
	    {"same /24", "192.0.2.200", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, true},
	    {"another /24", "192.0.3.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, false},
	    {"name case does not matter", "192.0.2.1", "WEB.shop.SVC.cluster.local", DNS_T_A,
	     DNS_RCODE_NOERROR, 1, true},
	    {"another name", "192.0.2.1", "db.shop.svc.cluster.local", DNS_T_A, DNS_RCODE_NOERROR,
	     1, false},
	    {"another type", "192.0.2.1", A_WEB, DNS_T_AAAA, DNS_RCODE_NOERROR, 1, false},
	    {"NODATA is another kind", "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 0, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct flow_case *c = &cases[i];
		struct rrl *r;
		assert_int_equal(rrl_new(3, 0, 1024, &r), 0);
		for (int k = 0; k < 3; k++)
			assert_int_equal(
			    check(r, "192.0.2.1", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 100),
			    RRL_PASS);
		enum rrl_verdict v = check(r, c->client, c->name, c->qtype, c->rcode, c->an, 100);
		if ((v != RRL_PASS) != c->shared)
			fail_msg("%s: verdict %d, want the flow %s", c->note, (int)v,
				 c->shared ? "shared" : "separate");
		rrl_free(r);
	}
}

static void test_kinds_per_network(void **state)
{
	(void)state;
	struct rrl *r;
	assert_int_equal(rrl_new(2, 0, 1024, &r), 0);
	/* NXDOMAIN: random names make no new flows */
	assert_int_equal(check(r, "198.51.100.7", "a1.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0),
			 RRL_PASS);
	assert_int_equal(check(r, "198.51.100.8", "b2.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0),
			 RRL_PASS);
	assert_int_equal(
	    check(r, "198.51.100.9", "c3.example", DNS_T_TXT, DNS_RCODE_NXDOMAIN, 0, 0), RRL_DROP);
	/* errors likewise, and apart from NXDOMAIN */
	assert_int_equal(check(r, "198.51.100.7", "x.example", DNS_T_A, DNS_RCODE_REFUSED, 0, 0),
			 RRL_PASS);
	assert_int_equal(check(r, "198.51.100.7", "y.example", DNS_T_A, DNS_RCODE_SERVFAIL, 0, 0),
			 RRL_PASS);
	assert_int_equal(check(r, "198.51.100.7", "z.example", DNS_T_A, DNS_RCODE_FORMERR, 0, 0),
			 RRL_DROP);
	/* IPv6: one /56 is one network */
	assert_int_equal(
	    check(r, "2001:db8:0:1::1", "n.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0), RRL_PASS);
	assert_int_equal(
	    check(r, "2001:db8:0:ff::2", "m.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0), RRL_PASS);
	assert_int_equal(
	    check(r, "2001:db8:0:42::3", "o.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0), RRL_DROP);
	assert_int_equal(
	    check(r, "2001:db8:0:100::3", "o.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0, 0),
	    RRL_PASS);
	/* a query (QR clear) is not ours to limit */
	uint8_t q[512];
	size_t ql = response(q, "q.example", DNS_T_A, DNS_RCODE_NXDOMAIN, 0);
	wire_hdr_set(q, WIRE_QR, false);
	struct sockaddr_storage p = peer("198.51.100.7");
	assert_int_equal(rrl_check(r, (struct sockaddr *)&p, q, ql, 0), RRL_PASS);
	rrl_free(r);
}

static void test_slip_cadence(void **state)
{
	(void)state;
	static const struct {
		unsigned slip;
		const char *want; /* after the one response of the burst */
	} cases[] = {{0, "DDDDDD"}, {1, "SSSSSS"}, {2, "DSDSDS"}, {3, "DDSDDS"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rrl *r;
		char got[8] = "";
		assert_int_equal(rrl_new(1, cases[i].slip, 64, &r), 0);
		assert_int_equal(check(r, "203.0.113.5", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 0),
				 RRL_PASS);
		for (int k = 0; k < 6; k++) {
			enum rrl_verdict v =
			    check(r, "203.0.113.5", A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 1, 0);
			got[k] = v == RRL_SLIP ? 'S' : v == RRL_DROP ? 'D' : 'P';
		}
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("slip %u: %s, want %s", cases[i].slip, got, cases[i].want);
		rrl_free(r);
	}
}

static void test_slipped_response(void **state)
{
	(void)state;
	uint8_t buf[512];
	size_t len = response(buf, A_WEB, DNS_T_A, DNS_RCODE_NOERROR, 3);
	size_t qend = WIRE_HDR_LEN + strlen(A_WEB) + 2 + 4;
	assert_int_equal(rrl_slip(buf, len), qend);
	assert_true(wire_hdr_has(buf, WIRE_QR)); /* still a response */
	assert_true(wire_hdr_has(buf, WIRE_TC));
	assert_int_equal(wire_hdr_count(buf, WIRE_QD), 1); /* the question stays */
	assert_int_equal(wire_hdr_count(buf, WIRE_AN), 0);
	assert_int_equal(wire_hdr_count(buf, WIRE_NS), 0);
	assert_int_equal(wire_hdr_count(buf, WIRE_AR), 0);
	assert_int_equal(wire_hdr_id(buf), 0x1234);
	/* no readable question: the header alone */
	len = response(buf, A_WEB, DNS_T_A, DNS_RCODE_REFUSED, 0);
	buf[WIRE_HDR_LEN] = 0xc0; /* a pointer where the name should be */
	assert_int_equal(rrl_slip(buf, len), WIRE_HDR_LEN);
	assert_int_equal(wire_hdr_count(buf, WIRE_QD), 0);
}

static void test_crowded_table(void **state)
{
	(void)state;
	struct rrl *r;
	char name[64];
	/* 4 buckets, 500 flows: each flow's first response still passes */
	assert_int_equal(rrl_new(1, 2, 4, &r), 0);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(
		    check(r, "192.0.2.1", name, DNS_T_A, DNS_RCODE_NOERROR, 1, (uint64_t)i),
		    RRL_PASS);
	}
	rrl_free(r);
	assert_int_equal(rrl_new(0, 2, 4, &r), -EINVAL);
	assert_int_equal(rrl_new(1, 2, 6, &r), -EINVAL);
	assert_int_equal(rrl_classify((const uint8_t *)"", 0), RRL_ERROR);
}

/* Runs fn with stderr going to a file; returns what was written. */
static char *captured(void (*fn)(struct dns_limits *), struct dns_limits *l)
{
	char path[] = "/tmp/svcdns-test-limits-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path); /* the descriptor is all this needs */
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn(l);
	dup2(saved, 2);
	close(saved);
	static char text[8192];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(fd);
	return text;
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void burst_of_hits(struct dns_limits *l)
{
	/* 1000 hits over 5 s from two workers: the first is told at once */
	for (int i = 0; i < 1000; i++)
		dns_limits_hit(l, (unsigned)(i & 1), DNS_LIMIT_RRL_DROP, 100000 + (uint64_t)i * 5);
	dns_limits_flush(l, 104999); /* the 10 s are not over: nothing */
}

static void after_ten_seconds(struct dns_limits *l)
{
	dns_limits_flush(l, 110001);			  /* the rest of the burst, in one line */
	dns_limits_flush(l, 130000);			  /* nothing new: nothing */
	dns_limits_hit(l, 0, DNS_LIMIT_RRL_DROP, 200000); /* after a quiet spell: at once */
	dns_limits_hit(l, 0, DNS_LIMIT_TCP_CONNS, 200000);
}

static void test_limit_counters_and_log(void **state)
{
	(void)state;
	struct dns_limits *l;
	struct dns_limits_config cfg = {.tcp_max_conns = 7, .rrl = 20, .rrl_slip = 2};
	assert_int_equal(dns_limits_new(2, &cfg, &l), 0);
	const char *text = captured(burst_of_hits, l);
	assert_int_equal(count_lines(text, "limits: "), 1);
	assert_non_null(strstr(text, "limits: 1 responses dropped by --rrl 20 (the first"));
	assert_int_equal(dns_limits_count(l, DNS_LIMIT_RRL_DROP), 1000);
	assert_int_equal(dns_limits_worker_count(l, 1, DNS_LIMIT_RRL_DROP), 500);
	assert_int_equal(dns_limits_count(l, DNS_LIMIT_RRL_SLIP), 0);

	text = captured(after_ten_seconds, l);
	assert_int_equal(count_lines(text, "limits: "), 3);
	assert_non_null(strstr(text, "limits: 999 responses dropped by --rrl 20 in the last 10 s"));
	assert_non_null(strstr(text, "limits: 1 responses dropped by --rrl 20 in the last 90 s"));
	assert_non_null(strstr(text, "limits: 1 TCP connections refused: --tcp-max-conns 7"));
	assert_string_equal(dns_limit_name(DNS_LIMIT_UDP_SOURCE), "udp_source");
	/* a worker index out of range is ignored, never written */
	dns_limits_hit(l, 2, DNS_LIMIT_TCP_IDLE, 0);
	assert_int_equal(dns_limits_count(l, DNS_LIMIT_TCP_IDLE), 0);
	dns_limits_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_burst_refill),	   cmocka_unit_test(test_flows),
	    cmocka_unit_test(test_kinds_per_network),	   cmocka_unit_test(test_slip_cadence),
	    cmocka_unit_test(test_slipped_response),	   cmocka_unit_test(test_crowded_table),
	    cmocka_unit_test(test_limit_counters_and_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
