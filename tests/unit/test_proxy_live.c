/* The datapath's control side on a real loop: listeners follow the views it
 * is given (bound, kept, closed, refused when taken), the CHAOS lines read its
 * live state, counters are there for every port, and stopping it leaves no
 * handle or byte behind. Addresses are in 127.77.200.0/24, this file's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "proxy/proxy.h"
#include "wire/wire.h"

/* A free TCP port on `host`: bind to 0 and give it back. */
static uint16_t free_port(const char *host)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET, host, &sa.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static int tcp_connect(const char *host, uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int err = r < 0 ? errno : 0;
	close(fd);
	return err;
}

/* One Service of the view, built by hand. */
struct fake_svc {
	struct model_service svc;
	struct model_svc_port ports[2];
	struct view_endpoint eps[2];
	uint16_t tp[2][2];
};

static void fake_init(struct fake_svc *f, const char *ns, const char *name, const char *cip,
		      uint16_t port, uint8_t proto)
{
	memset(f, 0, sizeof(*f));
	f->svc.ns = (char *)ns;
	f->svc.name = (char *)name;
	f->svc.type = SVC_CLUSTER_IP;
	if (cip) {
		assert_int_equal(net_addr_parse(cip, &f->svc.cluster_ips[0]), 0);
		f->svc.n_cluster_ips = 1;
	} else {
		f->svc.headless = true;
	}
	f->ports[0] = (struct model_svc_port){
	    .name = (char *)"http", .port = port, .proto = proto, .target_num = 8080};
	f->svc.ports = f->ports;
	f->svc.n_ports = 1;
	assert_int_equal(net_addr_parse("127.77.201.1", &f->eps[0].addr), 0);
	f->eps[0].ready = true;
	f->tp[0][0] = 8080;
	f->eps[0].target_ports = f->tp[0];
}

static void view_of(struct model_view *v, struct view_service *vs, struct fake_svc *const *f,
		    size_t n)
{
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		vs[i] = (struct view_service){.svc = &f[i]->svc, .eps = f[i]->eps, .n_eps = 1};
	}
	v->svcs = vs;
	v->n_svcs = n;
}

/* The CHAOS lines for <svc>.<ns>.svc.cluster.local, joined by '|'. */
static size_t chaos(const void *ix, const char *svc, const char *ns, char *text, size_t cap)
{
	uint8_t key[256], out[2048];
	size_t k = 0;
	const char *labels[] = {svc, ns, "svc", "cluster", "local"};
	for (size_t i = 0; i < 5; i++) {
		size_t l = strlen(labels[i]);
		key[k++] = (uint8_t)l;
		memcpy(key + k, labels[i], l);
		k += l;
	}
	key[k++] = 0;
	uint16_t n_rr = 0;
	size_t len = proxy_chaos_live(ix, key, k, out, sizeof(out), &n_rr);
	size_t t = 0, o = 0;
	text[0] = '\0';
	for (uint16_t r = 0; r < n_rr; r++) {
		/* pointer owner, TXT, CH, TTL 0 */
		assert_true(o + 13 <= len);
		assert_int_equal(wire_rd16(out + o), 0xC000 | WIRE_HDR_LEN);
		assert_int_equal(wire_rd16(out + o + 2), DNS_T_TXT);
		assert_int_equal(wire_rd16(out + o + 4), DNS_C_CH);
		size_t rdlen = wire_rd16(out + o + 10);
		size_t sl = out[o + 12];
		assert_int_equal(rdlen, sl + 1);
		t += (size_t)snprintf(text + t, cap - t, "%s%.*s", r ? "|" : "", (int)sl,
				      (const char *)out + o + 13);
		o += 12 + rdlen;
	}
	assert_int_equal(o, len);
	return n_rr;
}

static void run_briefly(uv_loop_t *loop)
{
	for (int i = 0; i < 5; i++)
		uv_run(loop, UV_RUN_NOWAIT);
}

static void test_follow_views(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct sockaddr_storage dns = {0};
	struct sockaddr_in *d4 = (struct sockaddr_in *)&dns;
	d4->sin_family = AF_INET;
	d4->sin_port = htons(53);
	inet_pton(AF_INET, "127.77.200.3", &d4->sin_addr);
	struct proxy_config cfg = {.max_conns = 16,
				   .max_flows = 16,
				   .udp_timeout_ms = 1000,
				   .connect_timeout_ms = 200,
				   .dns_addrs = &dns,
				   .n_dns_addrs = 1};
	net_addr_parse("127.0.0.1", &cfg.node_addr);
	struct proxy *p = NULL;
	assert_int_equal(proxy_start(&loop, &cfg, &p), 0);

	uint16_t pa = free_port("127.77.200.1"), pb = free_port("127.77.200.2");
	/* b's address is taken by someone else: bind must fail, a must not care. */
	int squat = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sb = {.sin_family = AF_INET, .sin_port = htons(pb)};
	inet_pton(AF_INET, "127.77.200.2", &sb.sin_addr);
	assert_int_equal(bind(squat, (struct sockaddr *)&sb, sizeof(sb)), 0);
	assert_int_equal(listen(squat, 1), 0);

	static struct fake_svc a, b, dnss, headless, udp, twin;
	fake_init(&a, "default", "a", "127.77.200.1", pa, PROTO_TCP);
	fake_init(&b, "default", "b", "127.77.200.2", pb, PROTO_TCP);
	fake_init(&dnss, "kube-system", "kube-dns", "127.77.200.3", 53, PROTO_UDP);
	fake_init(&headless, "default", "h", NULL, 80, PROTO_TCP);
	fake_init(&udp, "default", "u", "127.77.200.4", pa, PROTO_UDP);
	/* Claims a's address too: the first Service (by namespace/name) keeps it. */
	fake_init(&twin, "default", "twin", "127.77.200.1", pa, PROTO_TCP);
	struct fake_svc *all[] = {&a, &b, &headless, &twin, &udp, &dnss};
	struct view_service vs[6];
	struct model_view v;
	view_of(&v, vs, all, 6);
	assert_int_equal(proxy_apply(p, &v), 0);
	const void *ix1 = proxy_live_index(p);
	assert_non_null(ix1);

	char text[512], want[512];
	assert_int_equal(chaos(ix1, "a", "default", text, sizeof(text)), 1);
	snprintf(want, sizeof(want), "http %u/TCP proxy=listening conns=0", pa);
	assert_string_equal(text, want);
	assert_int_equal(chaos(ix1, "b", "default", text, sizeof(text)), 1);
	snprintf(want, sizeof(want),
		 "http %u/TCP proxy=not-listening(0/1 bound: address in use) conns=0", pb);
	assert_string_equal(text, want);
	assert_int_equal(chaos(ix1, "kube-dns", "kube-system", text, sizeof(text)), 1);
	assert_string_equal(text, "http 53/UDP proxy=dns flows=0");
	snprintf(want, sizeof(want), "http %u/UDP proxy=listening flows=0", pa);
	assert_int_equal(chaos(ix1, "u", "default", text, sizeof(text)), 1);
	assert_string_equal(text, want);
	assert_int_equal(chaos(ix1, "twin", "default", text, sizeof(text)), 1);
	snprintf(want, sizeof(want),
		 "http %u/TCP proxy=not-listening(0/1 bound: address in use) conns=0", pa);
	assert_string_equal(text, want);
	assert_int_equal(chaos(ix1, "h", "default", text, sizeof(text)), 0); /* headless */
	assert_int_equal(chaos(ix1, "nope", "default", text, sizeof(text)), 0);

	/* A is listening: a connection is accepted (and reset: its endpoint
	 * refuses, 127.77.201.1:8080 has no listener), and counted. */
	assert_int_equal(tcp_connect("127.77.200.1", pa), 0);
	for (int i = 0; i < 50; i++) {
		struct proxy_port_stats st;
		run_briefly(&loop);
		assert_int_equal(proxy_port_stats_get(p, "default", "a", PROTO_TCP, pa, &st), 0);
		if (st.endpoint_failures)
			break;
		usleep(10000);
	}
	struct proxy_port_stats st;
	assert_int_equal(proxy_port_stats_get(p, "default", "a", PROTO_TCP, pa, &st), 0);
	assert_int_equal(st.connections, 1);
	assert_int_equal(st.endpoint_failures, 1);
	assert_int_equal(st.active, 0);
	assert_int_equal(proxy_port_stats_get(p, "default", "h", PROTO_TCP, 80, &st), -ENOENT);

	/* The squatter leaves: the retry timer binds b within its period. */
	close(squat);

	/* The next view drops a: its listener closes (connect is refused),
	 * the old index stays readable until reclaimed. */
	struct fake_svc *rest[] = {&b, &udp};
	view_of(&v, vs, rest, 2);
	assert_int_equal(proxy_apply(p, &v), 0);
	const void *ix2 = proxy_live_index(p);
	assert_ptr_not_equal(ix1, ix2);
	assert_int_equal(tcp_connect("127.77.200.1", pa), ECONNREFUSED);
	assert_int_equal(chaos(ix2, "a", "default", text, sizeof(text)), 0);
	assert_int_equal(chaos(ix1, "a", "default", text, sizeof(text)), 1);
	assert_int_equal(proxy_port_stats_get(p, "default", "a", PROTO_TCP, pa, &st), -ENOENT);
	proxy_live_reclaim(p, ix2);
	for (int i = 0; i < 700; i++) { /* the retry period is 5 s */
		run_briefly(&loop);
		chaos(ix2, "b", "default", text, sizeof(text));
		if (strstr(text, "proxy=listening"))
			break;
		usleep(10000);
	}
	snprintf(want, sizeof(want), "http %u/TCP proxy=listening conns=0", pb);
	assert_string_equal(text, want);

	proxy_stop(p);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_follow_views),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
