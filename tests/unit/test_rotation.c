/* Rotation of answers of several records (snapshot_config.rotate): asked N
 * times, a name whose A, AAAA or SRV RRset holds k records starts with each
 * of them N/k times, and every answer still holds every record, with the
 * additional section's glue intact (its names must not point into the
 * rotated records), over UDP, EDNS and TCP, in cluster and static zones.
 * Answers are read back with ldns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "dns/query.h"
#include "tmpdir.h"
#include "wire/wire.h"
#include "zones/snapshot.h"
#include "zones/zonefile.h"

static struct model_svc_port ports[] = {
    {.name = "pg", .port = 5432, .proto = PROTO_TCP, .target_num = 5432},
};
static uint16_t tp[] = {5432};
static struct model_service svc_db, svc_v6, svc_mid, svc_big, svc_one;
static struct view_endpoint eps_db[4], eps_v6[3], eps_mid[8], eps_big[40], eps_one[1];
static char hostnames[12][8];
static struct view_service vsvcs[5];
static char *namespaces[] = {"rot"};
static struct model_view view;
static struct static_zone *zone;
static struct snapshot *snap_rot, *snap_fixed;

/* A static zone: a name of three addresses, and an SRV RRset whose targets
 * share a suffix that the question does not hold (the glue's names would
 * point into the answer section if nothing kept them from it). */
static const char zone_text[] = "$TTL 60\n"
				"@ SOA ns.example.org. admin.example.org. 1 7200 1800 86400 60\n"
				"@ NS ns.example.org.\n"
				"ns A 192.0.2.53\n"
				"www A 192.0.2.1\nwww A 192.0.2.2\nwww A 192.0.2.3\n"
				"_x._tcp SRV 0 1 80 a.farm.example.org.\n"
				"_x._tcp SRV 0 1 80 b.farm.example.org.\n"
				"_x._tcp SRV 0 1 80 c.farm.example.org.\n"
				"a.farm A 192.0.2.11\nb.farm A 192.0.2.12\nc.farm A 192.0.2.13\n";

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	assert_int_equal(net_addr_parse(text, &a), 0);
	return a;
}

static void endpoints(struct view_endpoint *eps, size_t n, const char *prefix, bool named)
{
	for (size_t i = 0; i < n; i++) {
		char t[64];
		snprintf(t, sizeof(t), "%s%d", prefix, (int)i + 1);
		eps[i] = (struct view_endpoint){.addr = addr(t), .ready = true, .target_ports = tp};
		if (named && i < 12) {
			snprintf(hostnames[i], sizeof(hostnames[i]), "m-%02zu", i);
			eps[i].hostname = hostnames[i];
		}
	}
}

static struct snapshot *build(bool rotate)
{
	static struct snapshot_config cfgs[2];
	struct snapshot_config *cfg = &cfgs[rotate];
	static const struct static_zone *zones[1];
	zones[0] = zone;
	*cfg = (struct snapshot_config){.zone = "cluster.local",
					.ttl = 5,
					.hostname = "t",
					.rotate = rotate,
					.static_zones = zones,
					.n_static_zones = 1};
	struct model_view tmp = view;
	struct snapshot *s = NULL;
	assert_int_equal(snapshot_build(cfg, &tmp, NULL, &s), 0);
	free(s->view); /* the view here is static */
	s->view = NULL;
	s->synced = true;
	return s;
}

static int setup(void **state)
{
	if (tmpdir_setup(state) < 0)
		return -1;
	const char *dir = *state;
	char path[600];
	snprintf(path, sizeof(path), "%s/example.org.zone", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(zone_text, f);
	fclose(f);
	if (zonefile_load("example.org", path, &zone) < 0)
		return -1;

	svc_big = (struct model_service){
	    .ns = "rot", .name = "big", .headless = true, .ports = ports, .n_ports = 1};
	svc_db = (struct model_service){
	    .ns = "rot", .name = "db", .headless = true, .ports = ports, .n_ports = 1};
	svc_mid = (struct model_service){
	    .ns = "rot", .name = "mid", .headless = true, .ports = ports, .n_ports = 1};
	svc_one = (struct model_service){
	    .ns = "rot", .name = "one", .headless = true, .ports = ports, .n_ports = 1};
	svc_v6 = (struct model_service){
	    .ns = "rot", .name = "v6", .headless = true, .ports = ports, .n_ports = 1};
	endpoints(eps_big, 40, "10.250.1.", false);
	endpoints(eps_db, 4, "10.250.0.", true);
	endpoints(eps_mid, 8, "10.250.2.", true);
	endpoints(eps_one, 1, "10.250.3.", false);
	endpoints(eps_v6, 3, "fd00::", false);
	/* sorted by (ns, name), as the view gives them */
	vsvcs[0] = (struct view_service){.svc = &svc_big, .eps = eps_big, .n_eps = 40};
	vsvcs[1] = (struct view_service){.svc = &svc_db, .eps = eps_db, .n_eps = 4};
	vsvcs[2] = (struct view_service){.svc = &svc_mid, .eps = eps_mid, .n_eps = 8};
	vsvcs[3] = (struct view_service){.svc = &svc_one, .eps = eps_one, .n_eps = 1};
	vsvcs[4] = (struct view_service){.svc = &svc_v6, .eps = eps_v6, .n_eps = 3};
	view = (struct model_view){
	    .svcs = vsvcs, .n_svcs = 5, .namespaces = namespaces, .n_namespaces = 1};
	snap_rot = build(true);
	snap_fixed = build(false);
	return 0;
}

static int teardown(void **state)
{
	snapshot_free(snap_rot);
	snapshot_free(snap_fixed);
	zonefile_free(zone);
	return tmpdir_teardown(state);
}

/* ---- asking ----------------------------------------------------------------- */

static size_t make_query(const char *name, uint16_t type, int edns, uint8_t *buf)
{
	memset(buf, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(buf, 0x4321);
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
	n += 4;
	if (edns) {
		wire_hdr_set_count(buf, WIRE_AR, 1);
		memset(buf + n, 0, WIRE_OPT_LEN);
		wire_wr16(buf + n + 1, DNS_T_OPT);
		wire_wr16(buf + n + 3, (uint16_t)edns);
		n += WIRE_OPT_LEN;
	}
	return n;
}

static ldns_pkt *ask(const struct snapshot *s, const char *name, uint16_t type, int edns,
		     enum dns_proto proto)
{
	static uint8_t req[512], resp[DNS_MAX_MSG];
	size_t len = make_query(name, type, edns, req);
	struct dns_query_info info;
	size_t n = dns_answer(s, req, len, resp, sizeof(resp), proto, &info);
	assert_true(n > 0);
	ldns_pkt *p = NULL;
	assert_int_equal(ldns_wire2pkt(&p, resp, n), LDNS_STATUS_OK);
	return p;
}

/* "owner type rdata" of every record of a section, in order, lowercased. */
static size_t rr_lines(ldns_rr_list *l, char lines[][160], size_t max)
{
	size_t n = ldns_rr_list_rr_count(l);
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(l, i);
		char *owner = ldns_rdf2str(ldns_rr_owner(rr));
		char rd[120] = "";
		for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
			char *r = ldns_rdf2str(ldns_rr_rdf(rr, k));
			strncat(rd, " ", sizeof(rd) - strlen(rd) - 1);
			strncat(rd, r, sizeof(rd) - strlen(rd) - 1);
			free(r);
		}
		snprintf(lines[i], 160, "%s %u%s", owner, (unsigned)ldns_rr_get_type(rr), rd);
		for (char *c = lines[i]; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		free(owner);
	}
	return n;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Asks `name` k*rounds times; each of its k answer records comes first
 * `rounds` times (one worker's counter moves by one per rotating answer), and
 * every response holds the same records in each section as the first. */
static void check_rotates(const char *name, uint16_t type, size_t k, int edns, enum dns_proto proto)
{
	enum { ROUNDS = 25 };
	static char first[64][160], got[64][160], ref_an[64][160], ref_ar[64][160];
	static char an[64][160], ar[64][160];
	size_t counts[64] = {0}, n_ref_ar = 0;
	for (size_t q = 0; q < k * ROUNDS; q++) {
		ldns_pkt *p = ask(snap_rot, name, type, edns, proto);
		if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR)
			fail_msg("%s: rcode %d", name, ldns_pkt_get_rcode(p));
		assert_false(ldns_pkt_tc(p));
		size_t n = rr_lines(ldns_pkt_answer(p), an, 64);
		size_t m = rr_lines(ldns_pkt_additional(p), ar, 64);
		assert_int_equal(n, k);
		if (q == 0) {
			memcpy(first, an, sizeof(an));
			memcpy(ref_an, an, sizeof(an));
			qsort(ref_an, n, sizeof(ref_an[0]), cmp_line);
			memcpy(ref_ar, ar, sizeof(ar));
			n_ref_ar = m;
		}
		/* which record came first */
		size_t i = 0;
		while (i < k && strcmp(first[i], an[0]) != 0)
			i++;
		assert_true(i < k);
		counts[i]++;
		/* the rest follow in their cycle: a rotation, not a shuffle */
		for (size_t j = 0; j < k; j++)
			assert_string_equal(an[j], first[(i + j) % k]);
		memcpy(got, an, sizeof(an));
		qsort(got, n, sizeof(got[0]), cmp_line);
		for (size_t j = 0; j < k; j++)
			assert_string_equal(got[j], ref_an[j]);
		/* the additional section stays in order, and stays right */
		assert_int_equal(m, n_ref_ar);
		for (size_t j = 0; j < m; j++)
			assert_string_equal(ar[j], ref_ar[j]);
		ldns_pkt_free(p);
	}
	for (size_t i = 0; i < k; i++)
		if (counts[i] != ROUNDS)
			fail_msg("%s: record %zu came first %zu times of %zu, want %d", name, i,
				 counts[i], k * ROUNDS, ROUNDS);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_cluster_rotates(void **state)
{
	(void)state;
	check_rotates("db.rot.svc.cluster.local", LDNS_RR_TYPE_A, 4, 0, DNS_UDP);
	check_rotates("v6.rot.svc.cluster.local", LDNS_RR_TYPE_AAAA, 3, 1232, DNS_UDP);
	check_rotates("_pg._tcp.db.rot.svc.cluster.local", LDNS_RR_TYPE_SRV, 4, 1232, DNS_UDP);
	/* the short form, and the client's case: pointers into the question */
	check_rotates("DB.Rot.svc", LDNS_RR_TYPE_A, 4, 0, DNS_TCP);
	check_rotates("_PG._tcp.dB.rot.svc.Cluster.local", LDNS_RR_TYPE_SRV, 4, 0, DNS_TCP);
	check_rotates("big.rot.svc.cluster.local", LDNS_RR_TYPE_A, 40, 0, DNS_TCP);
}

static void test_static_rotates(void **state)
{
	(void)state;
	check_rotates("www.example.org", LDNS_RR_TYPE_A, 3, 0, DNS_UDP);
	check_rotates("_x._tcp.example.org", LDNS_RR_TYPE_SRV, 3, 1232, DNS_UDP);
	/* the glue names each target (it could not point into the rotated
	 * records, so it names them in full) */
	ldns_pkt *p = ask(snap_rot, "_x._tcp.example.org", LDNS_RR_TYPE_SRV, 1232, DNS_UDP);
	static char ar[8][160];
	size_t m = rr_lines(ldns_pkt_additional(p), ar, 8);
	assert_int_equal(m, 3);
	assert_string_equal(ar[0], "a.farm.example.org. 1 192.0.2.11");
	assert_string_equal(ar[2], "c.farm.example.org. 1 192.0.2.13");
	ldns_pkt_free(p);
}

/* Additional data that does not fit is dropped, the answer still rotates;
 * what does not fit at all is truncated to no records (a correct prefix). */
static void test_fit(void **state)
{
	(void)state;
	/* 8 SRV records fit 512 bytes, their glue does not */
	ldns_pkt *p =
	    ask(snap_rot, "_pg._tcp.mid.rot.svc.cluster.local", LDNS_RR_TYPE_SRV, 0, DNS_UDP);
	assert_false(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 8);
	assert_int_equal(ldns_pkt_arcount(p), 0);
	ldns_pkt_free(p);
	check_rotates("_pg._tcp.mid.rot.svc.cluster.local", LDNS_RR_TYPE_SRV, 8, 0, DNS_UDP);
	check_rotates("_pg._tcp.mid.rot.svc.cluster.local", LDNS_RR_TYPE_SRV, 8, 4096, DNS_UDP);

	/* 40 addresses are 640 bytes of records: over 512, TC and none */
	p = ask(snap_rot, "big.rot.svc.cluster.local", LDNS_RR_TYPE_A, 0, DNS_UDP);
	assert_true(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
	check_rotates("big.rot.svc.cluster.local", LDNS_RR_TYPE_A, 40, 1232, DNS_UDP);
}

/* One record, or rotation off: the rendered order every time. */
static void test_fixed(void **state)
{
	(void)state;
	static char a[64][160], b[64][160];
	for (int round = 0; round < 2; round++) {
		const struct snapshot *s = round ? snap_fixed : snap_rot;
		const char *name = round ? "_pg._tcp.db.rot.svc.cluster.local"
					 : "_pg._tcp.one.rot.svc.cluster.local";
		ldns_pkt *p = ask(s, name, LDNS_RR_TYPE_SRV, 1232, DNS_UDP);
		size_t n = rr_lines(ldns_pkt_answer(p), a, 64);
		assert_int_equal(n, round ? 4 : 1);
		ldns_pkt_free(p);
		for (int q = 0; q < 9; q++) {
			p = ask(s, name, LDNS_RR_TYPE_SRV, 1232, DNS_UDP);
			assert_int_equal(rr_lines(ldns_pkt_answer(p), b, 64), n);
			for (size_t j = 0; j < n; j++)
				assert_string_equal(a[j], b[j]);
			ldns_pkt_free(p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cluster_rotates),
	    cmocka_unit_test(test_static_rotates),
	    cmocka_unit_test(test_fit),
	    cmocka_unit_test(test_fixed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
