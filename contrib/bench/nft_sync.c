/* How fast the kernel datapath (--proxy=nftables) programs a cluster: a full
 * sync of N Services with 5 endpoints each into an empty table; a restart
 * (the table read back, the same view applied again: nothing to write); then
 * 100 each of one Service added, one endpoint removed and one Service
 * deleted, every one its own transaction, timed until the kernel
 * acknowledged it. Runs in a network namespace of its own (unshare), so the
 * table goes when it exits.
 *
 *   contrib/bench/nft_sync.sh [N...]      # builds this and runs it, as root
 *   nft_sync N full                       # the full sync alone
 *
 * Prints one line per measure: milliseconds, median and p99 for changes. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "common/log.h"
#include "proxy/nft.h"

#define EPS	5
#define CHANGES 100

static struct model_svc_port port80 = {
    .name = "http", .port = 80, .proto = PROTO_TCP, .target_num = 8080};
static uint16_t tports[1] = {8080};

static double clock_ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wall time, and the CPU time of this process in user space and in the
 * kernel (netlink is handled in the sender's context): on a busy machine the
 * second says what the work costs, the first what it took. */
static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static double cpu_ms(void)
{
	return clock_ms(CLOCK_PROCESS_CPUTIME_ID);
}

static void v4(struct net_addr *a, uint32_t host)
{
	a->family = AF_INET;
	host = htonl(host);
	memcpy(a->bytes, &host, 4);
}

/* Service i: ClusterIP 10.96.0.0 + i + 1, endpoints in 10.244.0.0/16 + ... */
static void make_service(struct view_service *vs, struct model_service *s,
			 struct view_endpoint *eps, size_t i, size_t n_eps)
{
	char name[32];
	snprintf(name, sizeof(name), "svc-%zu", i);
	memset(s, 0, sizeof(*s));
	s->ns = "bench";
	s->name = strdup(name);
	s->type = SVC_CLUSTER_IP;
	v4(&s->cluster_ips[0], (10u << 24 | 96u << 16) + (uint32_t)i + 1);
	s->n_cluster_ips = 1;
	s->ports = &port80;
	s->n_ports = 1;
	for (size_t e = 0; e < n_eps; e++) {
		memset(&eps[e], 0, sizeof(eps[e]));
		v4(&eps[e].addr, (10u << 24 | 128u << 16) + (uint32_t)(i * EPS + e));
		eps[e].target_ports = tports;
		eps[e].ready = eps[e].serving = true;
	}
	*vs = (struct view_service){.svc = s, .eps = eps, .n_eps = n_eps};
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t view_id = 1;

/* One change applied as the next view: its wall and CPU milliseconds. */
static void one_change(struct nftdp *nd, struct view_service *old, struct view_service *cur,
		       double *wall, double *cpu)
{
	struct view_change ch = {.old = old, .cur = cur};
	struct model_view v = {
	    .id = view_id + 1, .base_id = view_id, .changes = &ch, .n_changes = 1};
	double t0 = now_ms(), c0 = cpu_ms();
	nftdp_apply(nd, &v);
	view_id++;
	*wall = now_ms() - t0;
	*cpu = cpu_ms() - c0;
}

static void report(const char *what, size_t n, double *ms, double *cpu)
{
	qsort(ms, CHANGES, sizeof(double), cmp_double);
	qsort(cpu, CHANGES, sizeof(double), cmp_double);
	printf("%-22s %7zu Services: median %8.2f ms  p99 %8.2f ms  (CPU: median %7.2f ms  p99 "
	       "%7.2f ms)\n",
	       what, n, ms[CHANGES / 2], ms[CHANGES * 99 / 100], cpu[CHANGES / 2],
	       cpu[CHANGES * 99 / 100]);
}

static int bench(size_t n, bool full_only)
{
	size_t total = n + CHANGES;
	struct view_service *vs = calloc(total, sizeof(*vs));
	struct model_service *ss = calloc(total, sizeof(*ss));
	struct view_endpoint *eps = calloc(total * EPS, sizeof(*eps));
	struct view_service *fewer = calloc(CHANGES, sizeof(*fewer));
	double ms[CHANGES], cpu[CHANGES];
	struct nftdp *nd = NULL;
	struct nftdp_config cfg = {0};
	if (!vs || !ss || !eps || !fewer)
		return 1;
	for (size_t i = 0; i < total; i++)
		make_service(&vs[i], &ss[i], &eps[i * EPS], i, EPS);
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "nft_sync: unshare(CLONE_NEWNET): %s (run as root)\n",
			strerror(errno));
		return 77;
	}
	if (nftdp_start(&cfg, &nd) < 0)
		return 1;
	struct model_view full = {.svcs = vs, .n_svcs = n, .id = view_id};
	double t0 = now_ms(), c0 = cpu_ms();
	nftdp_apply(nd, &full);
	double t_full = now_ms() - t0, c_full = cpu_ms() - c0;
	struct nftdp_stats st;
	nftdp_stats_get(nd, &st);
	printf("%-22s %7zu Services: %10.1f ms (CPU %.1f ms; %llu chains, %llu map elements)\n",
	       "full sync", n, t_full, c_full, (unsigned long long)st.chains,
	       (unsigned long long)st.elements);
	/* A restart: the table stays, a new datapath reads it back and
	 * converges on the same view, writing nothing. */
	nftdp_stop(nd);
	nd = NULL;
	t0 = now_ms();
	c0 = cpu_ms();
	if (nftdp_start(&cfg, &nd) < 0)
		return 1;
	double t_read = now_ms() - t0, c_read = cpu_ms() - c0;
	full.id = ++view_id;
	nftdp_apply(nd, &full);
	printf("%-22s %7zu Services: %10.1f ms (CPU %.1f ms; reading the table back: %.1f ms, "
	       "CPU %.1f ms)\n",
	       "restart, same view", n, now_ms() - t0, cpu_ms() - c0, t_read, c_read);
	for (size_t k = 0; k < CHANGES && !full_only; k++)
		one_change(nd, NULL, &vs[n + k], &ms[k], &cpu[k]);
	if (!full_only)
		report("one Service added", n, ms, cpu);
	for (size_t k = 0; k < CHANGES && !full_only; k++) {
		fewer[k] = vs[k];
		fewer[k].n_eps = EPS - 1;
		one_change(nd, &vs[k], &fewer[k], &ms[k], &cpu[k]);
	}
	if (!full_only)
		report("one endpoint removed", n, ms, cpu);
	for (size_t k = 0; k < CHANGES && !full_only; k++)
		one_change(nd, &fewer[k], NULL, &ms[k], &cpu[k]);
	if (!full_only)
		report("one Service deleted", n, ms, cpu);
	nftdp_stats_get(nd, &st);
	if (st.failures)
		printf("FAILURES: %llu transactions refused\n", (unsigned long long)st.failures);
	nftdp_stop(nd);
	for (size_t i = 0; i < total; i++)
		free(ss[i].name);
	free(vs);
	free(ss);
	free(eps);
	free(fewer);
	return st.failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	setvbuf(stdout, NULL, _IOLBF, 0); /* each figure as soon as it is known */
	if (argc < 2) {
		fprintf(stderr, "usage: nft_sync N [full] (Services, 5 endpoints each; full: the "
				"full sync only)\n");
		return 2;
	}
	return bench((size_t)strtoul(argv[1], NULL, 10), argc > 2 && !strcmp(argv[2], "full"));
}
