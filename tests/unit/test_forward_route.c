/* Which queries the forwarder takes, against a small snapshot: names outside
 * the zones, reverse names outside the cluster CIDRs, ExternalName targets,
 * and --autopath's `<name>.<ns>.svc.<zone>` (and every case it must leave to
 * the client's own search list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resolver/forward_route.h"
#include "dns/query.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

static struct model_service svc_web, svc_ext;
static struct view_service vsvcs[2];
static char *namespaces[] = {"default", "shop"};
static struct snapshot *snap;

static int setup(void **state)
{
	(void)state;
	svc_web = (struct model_service){.ns = "shop", .name = "web", .n_cluster_ips = 1};
	assert_int_equal(net_addr_parse("10.96.10.10", &svc_web.cluster_ips[0]), 0);
	svc_ext = (struct model_service){.ns = "shop",
					 .name = "payments",
					 .type = SVC_EXTERNAL_NAME,
					 .external_name = "api.payments.example.com"};
	vsvcs[0] = (struct view_service){.svc = &svc_ext};
	vsvcs[1] = (struct view_service){.svc = &svc_web};
	struct model_view view = {
	    .svcs = vsvcs, .n_svcs = 2, .namespaces = namespaces, .n_namespaces = 2};
	/* static: a snapshot keeps pointing at its settings */
	static struct snapshot_config cfg;
	cfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "t"};
	int ret = snapshot_build(&cfg, &view, NULL, &snap);
	free(snap->view); /* the view here is static */
	snap->view = NULL;
	snap->synced = true;
	return ret;
}

static int teardown(void **state)
{
	(void)state;
	snapshot_free(snap);
	return 0;
}

static size_t make_query(const char *name, uint16_t type, uint16_t qclass, uint8_t *buf)
{
	memset(buf, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(buf, 0x77);
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
	wire_wr16(buf + n + 2, qclass);
	return n + 4;
}

static void test_routes(void **state)
{
	(void)state;
	static const struct {
		const char *qname;
		uint16_t qtype, qclass;
		bool autopath;
		enum fwd_route_kind want;
		const char *target; /* text, for DIRECT and SPLICE */
	} cases[] = {
	    {"www.Example.org", DNS_T_A, DNS_C_IN, false, FWD_ROUTE_DIRECT, "www.example.org."},
	    /* CH: not forwarded */
	    {"www.example.org", DNS_T_A, DNS_C_CH, false, FWD_ROUTE_NONE, NULL},
	    {"web.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    {"nothere.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    /* ExternalName: chase the target, except when the CNAME itself is asked */
	    {"payments.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, false, FWD_ROUTE_SPLICE,
	     "api.payments.example.com."},
	    {"payments.shop.svc.cluster.local", DNS_T_AAAA, DNS_C_IN, false, FWD_ROUTE_SPLICE,
	     "api.payments.example.com."},
	    {"payments.shop.svc.cluster.local", DNS_T_CNAME, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    /* autopath */
	    {"google.com.default.svc.cluster.local", DNS_T_A, DNS_C_IN, false, FWD_ROUTE_NONE,
	     NULL},
	    {"google.com.default.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_SPLICE,
	     "google.com."},
	    {"Google.COM.shop.svc.cluster.local", DNS_T_AAAA, DNS_C_IN, true, FWD_ROUTE_SPLICE,
	     "google.com."},
	    {"redis.default.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_SPLICE,
	     "redis."},
	    /* web.shop from namespace default: web.shop.svc.<zone> exists */
	    {"web.shop.default.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_NONE, NULL},
	    /* shop is a namespace: shop.svc.<zone> exists */
	    {"shop.default.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_NONE, NULL},
	    /* not a namespace: not a search suffix we know */
	    {"google.com.nons.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_NONE, NULL},
	    /* the name is ours: the client finds it itself */
	    {"dns-version.cluster.local.default.svc.cluster.local", DNS_T_TXT, DNS_C_IN, true,
	     FWD_ROUTE_NONE, NULL},
	    /* a name that exists is never autopathed */
	    {"web.shop.svc.cluster.local", DNS_T_A, DNS_C_IN, true, FWD_ROUTE_NONE, NULL},
	    /* reverse names */
	    {"8.8.8.8.in-addr.arpa", DNS_T_PTR, DNS_C_IN, false, FWD_ROUTE_DIRECT,
	     "8.8.8.8.in-addr.arpa."},
	    {"9.in-addr.arpa", DNS_T_SOA, DNS_C_IN, false, FWD_ROUTE_DIRECT, "9.in-addr.arpa."},
	    /* a ClusterIP */
	    {"10.10.96.10.in-addr.arpa", DNS_T_PTR, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    /* service CIDR */
	    {"99.99.96.10.in-addr.arpa", DNS_T_PTR, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    /* pod CIDR */
	    {"5.5.244.10.in-addr.arpa", DNS_T_PTR, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    /* not an address */
	    {"x.8.8.8.in-addr.arpa", DNS_T_PTR, DNS_C_IN, false, FWD_ROUTE_NONE, NULL},
	    {"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", DNS_T_PTR,
	     DNS_C_IN, false, FWD_ROUTE_DIRECT,
	     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."},
	    {"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", DNS_T_PTR,
	     DNS_C_IN, false, FWD_ROUTE_NONE, NULL}, /* fd00::/8, the cluster's v6 CIDR here */
	};
	struct fwd_route_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.zone_len = (uint16_t)dname_from_text("cluster.local", cfg.zone, sizeof(cfg.zone));
	assert_int_equal(net_cidr_parse("10.96.0.0/12", &cfg.cluster_cidrs[0]), 0);
	assert_int_equal(net_cidr_parse("10.244.0.0/16", &cfg.cluster_cidrs[1]), 0);
	assert_int_equal(net_cidr_parse("fd00::/8", &cfg.cluster_cidrs[2]), 0);
	cfg.n_cluster_cidrs = 3;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t req[512], resp[4096];
		struct dns_query_info info;
		struct fwd_route r;
		size_t len = make_query(cases[i].qname, cases[i].qtype, cases[i].qclass, req);
		size_t rlen = dns_answer(snap, req, len, resp, sizeof(resp), DNS_UDP, &info);
		assert_true(rlen > 0);
		cfg.autopath = cases[i].autopath;
		enum fwd_route_kind k = fwd_route(&cfg, snap, req, resp, rlen, &info, &r);
		if (k != cases[i].want)
			fail_msg("%s type %u%s: route %d, want %d", cases[i].qname, cases[i].qtype,
				 cases[i].autopath ? " (autopath)" : "", k, cases[i].want);
		if (!cases[i].target)
			continue;
		char text[DNAME_MAX * 4];
		dname_to_text(r.target, text, sizeof(text));
		if (strcmp(text, cases[i].target) != 0)
			fail_msg("%s: target %s, want %s", cases[i].qname, text, cases[i].target);
		if (k == FWD_ROUTE_SPLICE) {
			assert_int_equal(r.pcount, 1);
			/* a CNAME, owned by the question */
			assert_int_equal(wire_rd16(r.prefix + 2), DNS_T_CNAME);
			assert_int_equal(r.prefix[0], 0xC0);
		}
	}
}

static void test_autopath_prefix(void **state)
{
	(void)state;
	uint8_t req[512], resp[4096];
	struct dns_query_info info;
	struct fwd_route r;
	struct fwd_route_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.zone_len = (uint16_t)dname_from_text("cluster.local", cfg.zone, sizeof(cfg.zone));
	cfg.autopath = true;
	size_t len = make_query("google.com.default.svc.cluster.local", DNS_T_A, DNS_C_IN, req);
	size_t rlen = dns_answer(snap, req, len, resp, sizeof(resp), DNS_UDP, &info);
	assert_int_equal(fwd_route(&cfg, snap, req, resp, rlen, &info, &r), FWD_ROUTE_SPLICE);
	/* CNAME, IN, the negative TTL of the cluster zone, rdata google.com. */
	static const uint8_t want[] = {0xC0, 12,  0,   5,   0,	 1,   0,   0, 0,   5,	0,   12,
				       6,    'g', 'o', 'o', 'g', 'l', 'e', 3, 'c', 'o', 'm', 0};
	assert_int_equal(r.plen, sizeof(want));
	assert_memory_equal(r.prefix, want, sizeof(want));
	assert_true(r.autopath);
}

/* --fallthrough: NXDOMAIN under the zones given (none: every zone served)
 * goes upstream as it was asked; NODATA, answers and SERVFAIL before the sync
 * stay; autopath keeps the names it answers. */
static void test_fallthrough(void **state)
{
	(void)state;
	static const struct {
		const char *qname;
		uint16_t qtype;
		const char *zones; /* NULL: off; "": every zone; else comma-separated */
		bool autopath;
		enum fwd_route_kind want;
	} cases[] = {
	    {"other.far.svc.cluster.local", DNS_T_A, NULL, false, FWD_ROUTE_NONE},
	    {"other.far.svc.cluster.local", DNS_T_A, "", false, FWD_ROUTE_DIRECT},
	    {"Other.Far.svc.cluster.local", DNS_T_SRV, "far.svc.cluster.local", false,
	     FWD_ROUTE_DIRECT},
	    {"other.near.svc.cluster.local", DNS_T_A, "far.svc.cluster.local", false,
	     FWD_ROUTE_NONE},
	    /* a zone given must end on a label: far.svc is not r.svc */
	    {"other.far.svc.cluster.local", DNS_T_A, "r.svc.cluster.local", false, FWD_ROUTE_NONE},
	    /* NODATA and answers stay ours */
	    {"web.shop.svc.cluster.local", DNS_T_TXT, "", false, FWD_ROUTE_NONE},
	    {"web.shop.svc.cluster.local", DNS_T_A, "", false, FWD_ROUTE_NONE},
	    /* reverse names inside the cluster's CIDRs, the short form */
	    {"99.99.96.10.in-addr.arpa", DNS_T_PTR, "", false, FWD_ROUTE_DIRECT},
	    {"99.99.96.10.in-addr.arpa", DNS_T_PTR, "cluster.local", false, FWD_ROUTE_NONE},
	    {"nothere.shop.svc", DNS_T_A, "", false, FWD_ROUTE_DIRECT},
	    /* autopath answers its names first; the rest falls through */
	    {"google.com.default.svc.cluster.local", DNS_T_A, "", true, FWD_ROUTE_SPLICE},
	    {"google.com.nons.svc.cluster.local", DNS_T_A, "", true, FWD_ROUTE_DIRECT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fwd_route_config cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.zone_len =
		    (uint16_t)dname_from_text("cluster.local", cfg.zone, sizeof(cfg.zone));
		assert_int_equal(net_cidr_parse("10.96.0.0/12", &cfg.cluster_cidrs[0]), 0);
		cfg.n_cluster_cidrs = 1;
		cfg.autopath = cases[i].autopath;
		cfg.fallthrough.on = cases[i].zones != NULL;
		for (const char *z = cases[i].zones; z && *z;) {
			char one[64];
			size_t l = strcspn(z, ",");
			snprintf(one, sizeof(one), "%.*s", (int)l, z);
			int wl = dname_from_text(one, cfg.fallthrough.zones[cfg.fallthrough.n],
						 DNAME_MAX);
			assert_true(wl > 0);
			cfg.fallthrough.len[cfg.fallthrough.n++] = (uint16_t)wl;
			z += l + (z[l] == ',');
		}
		uint8_t req[512], resp[4096];
		struct dns_query_info info;
		struct fwd_route r;
		size_t len = make_query(cases[i].qname, cases[i].qtype, DNS_C_IN, req);
		size_t rlen = dns_answer(snap, req, len, resp, sizeof(resp), DNS_UDP, &info);
		assert_true(rlen > 0);
		enum fwd_route_kind k = fwd_route(&cfg, snap, req, resp, rlen, &info, &r);
		if (k != cases[i].want)
			fail_msg("%s type %u, fallthrough %s: route %d, want %d", cases[i].qname,
				 cases[i].qtype, cases[i].zones ? cases[i].zones : "off", k,
				 cases[i].want);
	}
	/* before the first sync: SERVFAIL, never an NXDOMAIN to pass on */
	snap->synced = false;
	struct fwd_route_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fallthrough.on = true;
	uint8_t req[512], resp[4096];
	struct dns_query_info info;
	struct fwd_route r;
	size_t len = make_query("other.far.svc.cluster.local", DNS_T_A, DNS_C_IN, req);
	size_t rlen = dns_answer(snap, req, len, resp, sizeof(resp), DNS_UDP, &info);
	snap->synced = true;
	assert_int_equal(fwd_route(&cfg, snap, req, resp, rlen, &info, &r), FWD_ROUTE_NONE);
}

static void test_cidr(void **state)
{
	(void)state;
	struct net_cidr c;
	static const uint8_t a1[4] = {172, 31, 255, 1}, a2[4] = {172, 32, 0, 1};
	assert_int_equal(net_cidr_parse("172.16.0.0/12", &c), 0);
	assert_true(net_cidr_contains_raw(&c, 2 /* AF_INET */, a1));
	assert_false(net_cidr_contains_raw(&c, 2, a2));
	assert_int_equal(net_cidr_parse("127.0.0.2", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_true(net_cidr_parse("10.0.0.0/33", &c) < 0);
	assert_true(net_cidr_parse("nope/8", &c) < 0);
	assert_true(net_cidr_parse("10.0.0.0/", &c) < 0);
	assert_int_equal(net_cidr_parse("fc00::/7", &c), 0);
	assert_int_equal(c.prefix, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_autopath_prefix),
	    cmocka_unit_test(test_fallthrough),
	    cmocka_unit_test(test_cidr),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
