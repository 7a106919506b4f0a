/* Fuzz target: one DNS message through dns_answer() against a fixture snapshot
 * (every kind of cluster record plus static zones), under the UDP and TCP
 * limits. Every response must parse with ldns, echo the question and respect
 * the size limit; case and transport must not change the answer. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "common/log.h"

#include "wire/wire.h"
#include "dns/query.h"
#include "fuzz.h"
#include "zones/snapshot.h"
#include "zones/zonefile.h"

/* The capacities the workers pass (dns/udp.c's buffers, dns/tcp.c's buffer)
 * and the smallest one query.h allows. */
#define CAP_UDP 4096
#define CAP_TCP DNS_MAX_MSG
#define CAP_MIN 512

/* ---- the fixture ------------------------------------------------------------
 * A small cluster with one Service of each shape the specification names, and
 * names as long as Kubernetes allows, so that rendering, compression and the
 * length checks all see their edge cases. */

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
    {.name = "sip", .port = 5060, .proto = PROTO_SCTP, .target_num = 5060, .node_port = 30060},
};
static struct model_svc_port dns_ports[] = {
    {.name = "dns", .port = 53, .proto = PROTO_UDP, .target_num = 53},
    {.name = "dns-tcp", .port = 53, .proto = PROTO_TCP, .target_num = 53},
};
static struct model_svc_port long_ports[] = {
    {.name = "abcdefghijklmno", .port = 65535, .proto = PROTO_TCP, .target_num = 1},
};

static uint16_t tp_web1[] = {8080, 9110, 7000}, tp_web2[] = {8081, 9110, 7000};
static uint16_t tp_db[] = {5432}, tp_dns[] = {53, 53}, tp_np[] = {8080, 0}, tp_long[] = {1};

#define BIG_EPS 150 /* enough A records to overflow any UDP limit, not TCP's */
static struct view_endpoint eps_web[2], eps_db[3], eps_lonely[1], eps_pnr[2], eps_v6[2], eps_dns[1],
    eps_np[1], eps_long[1], eps_big[BIG_EPS];
static uint16_t tp_big[BIG_EPS][1];

static struct model_service svc_web, svc_db, svc_ext, svc_dual, svc_lonely, svc_np, svc_big,
    svc_pnr, svc_v6, svc_dns, svc_lb, svc_long;

#define NS63  "n23456789-123456789-123456789-123456789-123456789-123456789-123"
#define SVC63 "s23456789-123456789-123456789-123456789-123456789-123456789-123"
static char *namespaces[] = {"default", "kube-system", NS63, "shop"};
static struct view_service vsvcs[12];

/* Static zones: CNAME chains (inside and out of the data, dangling, looping),
 * wildcards (A, TXT and CNAME), a delegation with glue, and a reverse zone. */
static const char zone_example[] = "$ORIGIN example.test.\n"
				   "$TTL 300\n"
				   "@ IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n"
				   "@ IN NS ns1\n"
				   "@ IN NS ns2.example.net.\n"
				   "@ IN A 192.0.2.10\n"
				   "@ IN MX 10 mail\n"
				   "ns1 IN A 192.0.2.1\n"
				   "ns1 IN AAAA 2001:db8::1\n"
				   "mail IN A 192.0.2.25\n"
				   "www IN CNAME @\n"
				   "alias IN CNAME www\n"
				   "ext IN CNAME www.example.net.\n"
				   "dangling IN CNAME missing\n"
				   "loop1 IN CNAME loop2\n"
				   "loop2 IN CNAME loop1\n"
				   "txt 600 IN TXT \"hello world\" \"second string\"\n"
				   "multi IN A 192.0.2.31\n"
				   "multi IN A 192.0.2.32\n"
				   "a.b.c IN A 192.0.2.50\n"
				   "*.wild IN A 192.0.2.99\n"
				   "*.wild IN TXT \"wild\"\n"
				   "host.wild IN A 192.0.2.98\n"
				   "*.cw IN CNAME www\n"
				   "_sip._udp IN SRV 10 60 5060 sip\n"
				   "sip IN A 192.0.2.60\n"
				   "sub IN NS ns.sub\n"
				   "sub IN NS ns.other.net.\n"
				   "ns.sub IN A 192.0.2.53\n";
static const char zone_reverse[] = "$ORIGIN 2.0.192.in-addr.arpa.\n"
				   "$TTL 3600\n"
				   "@ IN SOA ns1.example.test. hostmaster.example.test. 7 3600 900 "
				   "604800 3600\n"
				   "@ IN NS ns1.example.test.\n"
				   "10 IN PTR example.test.\n"
				   "25 IN PTR mail.example.test.\n";

static struct snapshot *snap;
static bool trace; /* SVCDNS_FUZZ_TRACE=1: one line per input, to see what seeds reach */
static uint8_t *resp_udp, *resp_tcp, *resp_min, *resp_case, *req_case;

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	FUZZ_CHECK(net_addr_parse(text, &a) == 0, "fixture address %s", text);
	return a;
}

/* zonefile_load reads a path: the zone text goes through a temporary file. */
static struct static_zone *load_zone(const char *origin, const char *text)
{
	char path[] = "/tmp/svcdns-fuzz-zone-XXXXXX";
	int fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	size_t len = strlen(text);
	bool written = write(fd, text, len) == (ssize_t)len;
	close(fd);
	struct static_zone *z = NULL;
	int rc = written ? zonefile_load(origin, path, &z) : -EIO;
	unlink(path); /* before any check can end the process */
	FUZZ_CHECK(written, "write %s", path);
	FUZZ_CHECK(rc == 0, "fixture zone %s: %d", origin, rc);
	return z;
}

static void fixture_build(void)
{
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

	svc_lonely = (struct model_service){
	    .ns = "default", .name = "lonely", .headless = true, .ports = db_ports, .n_ports = 1};
	eps_lonely[0] = (struct view_endpoint){
	    .addr = addr("10.244.9.9"), .ready = false, .target_ports = tp_db};

	svc_np = (struct model_service){.ns = "default",
					.name = "frontend",
					.type = SVC_NODE_PORT,
					.n_cluster_ips = 1,
					.ports = np_ports,
					.n_ports = 2};
	svc_np.cluster_ips[0] = addr("10.96.20.20");
	eps_np[0] = (struct view_endpoint){
	    .addr = addr("10.244.3.31"), .ready = true, .target_ports = tp_np};

	svc_lb = (struct model_service){.ns = "default",
					.name = "lb",
					.type = SVC_LOAD_BALANCER,
					.n_cluster_ips = 1,
					.ports = np_ports,
					.n_ports = 1};
	svc_lb.cluster_ips[0] = addr("10.96.20.21");

	svc_big = (struct model_service){
	    .ns = "default", .name = "big", .headless = true, .ports = db_ports, .n_ports = 1};
	for (int i = 0; i < BIG_EPS; i++) {
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

	svc_v6 = (struct model_service){
	    .ns = "default", .name = "v6", .headless = true, .ports = db_ports, .n_ports = 1};
	eps_v6[0] = (struct view_endpoint){.addr = addr("fd00:10:244::7"),
					   .hostname = "six",
					   .ready = true,
					   .target_ports = tp_db};
	eps_v6[1] = (struct view_endpoint){
	    .addr = addr("fd00:10:244::8"), .ready = true, .target_ports = tp_db};

	svc_dns = (struct model_service){.ns = "kube-system",
					 .name = "kube-dns",
					 .n_cluster_ips = 1,
					 .ports = dns_ports,
					 .n_ports = 2};
	svc_dns.cluster_ips[0] = addr("10.96.0.10");
	eps_dns[0] = (struct view_endpoint){
	    .addr = addr("10.244.0.2"), .ready = true, .target_ports = tp_dns};

	/* the longest names Kubernetes allows: 63-octet namespace and Service */
	svc_long = (struct model_service){
	    .ns = NS63, .name = SVC63, .headless = true, .ports = long_ports, .n_ports = 1};
	eps_long[0] = (struct view_endpoint){.addr = addr("10.244.63.63"),
					     .hostname = SVC63,
					     .ready = true,
					     .target_ports = tp_long};

	/* sorted by (ns, name), as model_view_build gives them */
	size_t k = 0;
	vsvcs[k++] = (struct view_service){.svc = &svc_big, .eps = eps_big, .n_eps = BIG_EPS};
	vsvcs[k++] = (struct view_service){.svc = &svc_dual};
	vsvcs[k++] = (struct view_service){.svc = &svc_np, .eps = eps_np, .n_eps = 1};
	vsvcs[k++] = (struct view_service){.svc = &svc_lb};
	vsvcs[k++] = (struct view_service){.svc = &svc_lonely, .eps = eps_lonely, .n_eps = 1};
	vsvcs[k++] = (struct view_service){.svc = &svc_pnr, .eps = eps_pnr, .n_eps = 2};
	vsvcs[k++] = (struct view_service){.svc = &svc_v6, .eps = eps_v6, .n_eps = 2};
	vsvcs[k++] = (struct view_service){.svc = &svc_dns, .eps = eps_dns, .n_eps = 1};
	vsvcs[k++] = (struct view_service){.svc = &svc_long, .eps = eps_long, .n_eps = 1};
	vsvcs[k++] = (struct view_service){.svc = &svc_db, .eps = eps_db, .n_eps = 3};
	vsvcs[k++] = (struct view_service){.svc = &svc_ext};
	vsvcs[k++] = (struct view_service){.svc = &svc_web, .eps = eps_web, .n_eps = 2};
	FUZZ_CHECK(k == sizeof(vsvcs) / sizeof(vsvcs[0]), "fixture size %zu", k);

	/* The static zones are never freed: the snapshot refers to them for the
	 * life of the process, as in the server. */
	static const struct static_zone *zones[2];
	zones[0] = load_zone("example.test", zone_example);
	zones[1] = load_zone("2.0.192.in-addr.arpa", zone_reverse);

	struct model_view view = {.svcs = vsvcs,
				  .n_svcs = k,
				  .namespaces = namespaces,
				  .n_namespaces = sizeof(namespaces) / sizeof(namespaces[0])};
	/* static: a snapshot keeps pointing at its settings */
	static struct snapshot_config cfg;
	cfg = (struct snapshot_config){.zone = "cluster.local",
				       .ttl = 5,
				       .hostname = "fuzzhost",
				       .static_zones = zones,
				       .n_static_zones = 2};
	cfg.ns_addr = addr("127.0.0.1");
	cfg.have_ns_addr = true;
	int rc = snapshot_build(&cfg, &view, NULL, &snap);
	FUZZ_CHECK(rc == 0, "snapshot_build: %d", rc);
	/* the view is static here: the snapshot must not free it */
	free(snap->view);
	snap->view = NULL;
	snap->synced = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Logging costs a write(2) per line; SVCDNS_FUZZ_LOG=1 brings it back. */
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	trace = getenv("SVCDNS_FUZZ_TRACE") != NULL;
	fixture_build();
	/* Exactly the capacity promised, so that ASan sees one byte too many. */
	resp_udp = malloc(CAP_UDP);
	resp_tcp = malloc(CAP_TCP);
	resp_min = malloc(CAP_MIN);
	resp_case = malloc(CAP_UDP);
	req_case = malloc(DNS_MAX_MSG);
	FUZZ_CHECK(resp_udp && resp_tcp && resp_min && resp_case && req_case, "out of memory");
	return 0;
}

/* ---- checks, written independently of dns/query.c -------------------------- */

/* Wire length of the question name right after the header when it is one
 * svcdns must accept (uncompressed, labels up to 63, at most 255 octets), else -1. */
static int question_name_len(const uint8_t *m, size_t len)
{
	size_t off = WIRE_HDR_LEN, n = 0;
	for (;;) {
		if (off >= len)
			return -1;
		uint8_t l = m[off];
		if (l > 63)
			return -1;
		n += 1u + l;
		if (n > 255 || off + 1 + l > len)
			return -1;
		off += 1u + l;
		if (l == 0)
			return (int)n;
	}
}

/* Skips a name that may end in a compression pointer; 0 on error. */
static size_t skip_name(const uint8_t *m, size_t len, size_t off)
{
	for (;;) {
		if (off >= len)
			return 0;
		uint8_t l = m[off];
		if ((l & 0xC0) == 0xC0)
			return off + 2 <= len ? off + 2 : 0;
		if (l & 0xC0)
			return 0;
		off += 1u + l;
		if (l == 0)
			return off <= len ? off : 0;
	}
}

struct seen {
	uint8_t rcode;
	bool tc, opt;
	uint16_t an, ns, ar;
};

/* What must hold for any response to any request. */
static struct seen check_response(const uint8_t *req, size_t len, const uint8_t *resp, size_t n,
				  size_t cap, enum dns_proto proto, const char *what)
{
	struct seen s = {0};
	FUZZ_CHECK(n <= cap, "%s: %zu bytes written into %zu", what, n, cap);
	if (len < WIRE_HDR_LEN || wire_hdr_has(req, WIRE_QR)) {
		FUZZ_CHECK(n == 0, "%s: answered a %s", what,
			   len < WIRE_HDR_LEN ? "runt" : "response");
		return s;
	}
	FUZZ_CHECK(n >= WIRE_HDR_LEN, "%s: no response (%zu bytes) to a query", what, n);
	FUZZ_CHECK(wire_hdr_id(resp) == wire_hdr_id(req), "%s: ID not echoed", what);
	FUZZ_CHECK(wire_hdr_has(resp, WIRE_QR), "%s: QR clear", what);
	FUZZ_CHECK(wire_hdr_opcode(resp) == wire_hdr_opcode(req) &&
		       wire_hdr_has(resp, WIRE_RD) == wire_hdr_has(req, WIRE_RD),
		   "%s: opcode/RD not echoed", what);
	s.rcode = (uint8_t)wire_hdr_rcode(resp);
	s.tc = wire_hdr_has(resp, WIRE_TC);
	s.an = wire_hdr_count(resp, WIRE_AN);
	s.ns = wire_hdr_count(resp, WIRE_NS);
	s.ar = wire_hdr_count(resp, WIRE_AR);

	int qn = question_name_len(req, len);
	bool question =
	    wire_hdr_count(req, WIRE_QD) == 1 && qn >= 0 && WIRE_HDR_LEN + (size_t)qn + 4 <= len;
	size_t off = WIRE_HDR_LEN;
	if (question) {
		FUZZ_CHECK(wire_hdr_count(resp, WIRE_QD) == 1, "%s: question dropped", what);
		FUZZ_CHECK(n >= WIRE_HDR_LEN + (size_t)qn + 4 &&
			       memcmp(resp + WIRE_HDR_LEN, req + WIRE_HDR_LEN, (size_t)qn + 4) == 0,
			   "%s: question not echoed as asked", what);
		off = WIRE_HDR_LEN + (size_t)qn + 4;
	} else {
		FUZZ_CHECK(wire_hdr_count(resp, WIRE_QD) == 0,
			   "%s: question count %u without a question", what,
			   wire_hdr_count(resp, WIRE_QD));
	}

	/* The counts describe the bytes exactly: no record cut, nothing after. */
	unsigned rrs = (unsigned)s.an + s.ns + s.ar;
	for (unsigned i = 0; i < rrs; i++) {
		size_t o = skip_name(resp, n, off);
		FUZZ_CHECK(o && o + 10 <= n, "%s: record %u of %u runs past %zu", what, i, rrs, n);
		if (wire_rd16(resp + o) == LDNS_RR_TYPE_OPT) {
			FUZZ_CHECK(i >= (unsigned)s.an + s.ns && !s.opt, "%s: misplaced OPT", what);
			s.opt = true;
		}
		off = o + 10 + wire_rd16(resp + o + 8);
		FUZZ_CHECK(off <= n, "%s: rdata of record %u runs past %zu", what, i, n);
	}
	FUZZ_CHECK(off == n, "%s: %zu bytes after the last record", what, n - off);

	ldns_pkt *pkt = NULL;
	ldns_status st = ldns_wire2pkt(&pkt, resp, n);
	FUZZ_CHECK(st == LDNS_STATUS_OK, "%s: ldns cannot parse the response: %s", what,
		   ldns_get_errorstr_by_id(st));
	ldns_pkt_free(pkt);

	if (proto == DNS_UDP) {
		size_t limit = 512;
		if (s.opt) {
			/* the client's payload, read by ldns rather than by us */
			limit = DNS_EDNS_MAX_UDP;
			ldns_pkt *q = NULL;
			if (ldns_wire2pkt(&q, req, len) == LDNS_STATUS_OK && ldns_pkt_edns(q)) {
				size_t p = ldns_pkt_edns_udp_size(q);
				if (p > 512 && p < limit)
					limit = p;
				else if (p <= 512)
					limit = 512;
			}
			ldns_pkt_free(q);
		}
		FUZZ_CHECK(n <= limit, "%s: %zu bytes over UDP, limit %zu", what, n, limit);
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query_info info;

	size_t nu = dns_answer(snap, data, size, resp_udp, CAP_UDP, DNS_UDP, &info);
	struct seen u = check_response(data, size, resp_udp, nu, CAP_UDP, DNS_UDP, "udp");
	size_t nt = dns_answer(snap, data, size, resp_tcp, CAP_TCP, DNS_TCP, &info);
	struct seen t = check_response(data, size, resp_tcp, nt, CAP_TCP, DNS_TCP, "tcp");
	size_t nm = dns_answer(snap, data, size, resp_min, CAP_MIN, DNS_TCP, &info);
	check_response(data, size, resp_min, nm, CAP_MIN, DNS_TCP, "tcp-512");
	size_t nn = dns_answer(NULL, data, size, resp_case, CAP_UDP, DNS_UDP, &info);
	check_response(data, size, resp_case, nn, CAP_UDP, DNS_UDP, "no-snapshot");

	if (trace)
		fprintf(stderr, "udp: %zu bytes rcode %u an %u ns %u ar %u%s; tcp: %zu bytes\n", nu,
			u.rcode, u.an, u.ns, u.ar, u.tc ? " TC" : "", nt);
	FUZZ_CHECK((nu == 0) == (nt == 0), "udp %zu bytes, tcp %zu", nu, nt);
	if (!nu)
		return 0;
	/* The transport changes how much fits, never what the answer is. */
	FUZZ_CHECK(u.rcode == t.rcode, "udp rcode %u, tcp %u", u.rcode, t.rcode);
	FUZZ_CHECK(!t.tc, "TC over TCP with %u bytes of room", CAP_TCP);
	if (!u.tc) {
		FUZZ_CHECK(u.an == t.an && u.ns == t.ns, "udp %u/%u records, tcp %u/%u", u.an, u.ns,
			   t.an, t.ns);
		if (u.ar == t.ar)
			FUZZ_CHECK(nu == nt && memcmp(resp_udp, resp_tcp, nu) == 0,
				   "udp and tcp differ with the same counts");
	}

	/* Lookups ignore case: flipping the case of every letter of the question
	 * changes nothing in the response but the echoed question. */
	int qn = question_name_len(data, size);
	if (wire_hdr_count(data, WIRE_QD) != 1 || qn < 0 || WIRE_HDR_LEN + (size_t)qn + 4 > size ||
	    size > DNS_MAX_MSG)
		return 0;
	memcpy(req_case, data, size);
	bool flipped = false;
	for (size_t i = WIRE_HDR_LEN; i < WIRE_HDR_LEN + (size_t)qn;) {
		size_t l = req_case[i++];
		for (size_t j = 0; j < l; j++, i++)
			if ((req_case[i] | 0x20) >= 'a' && (req_case[i] | 0x20) <= 'z') {
				req_case[i] ^= 0x20;
				flipped = true;
			}
	}
	if (!flipped)
		return 0;
	size_t nc = dns_answer(snap, req_case, size, resp_case, CAP_UDP, DNS_UDP, &info);
	check_response(req_case, size, resp_case, nc, CAP_UDP, DNS_UDP, "udp-case");
	FUZZ_CHECK(nc == nu, "case changed the response length: %zu, %zu", nu, nc);
	size_t qname_end = WIRE_HDR_LEN + (size_t)qn;
	FUZZ_CHECK(memcmp(resp_case, resp_udp, WIRE_HDR_LEN) == 0 &&
		       memcmp(resp_case + qname_end, resp_udp + qname_end, nu - qname_end) == 0,
		   "case changed the response");
	return 0;
}
