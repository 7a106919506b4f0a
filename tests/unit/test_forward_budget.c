/* The upstream budget (--upstream-max-qps) under load, on a scripted clock:
 * the sliding window itself against a table of send times, then the whole
 * engine offered ten times its budget by clients that mostly ask a few
 * popular names, against a fake upstream that answers everything and counts
 * what it receives. No socket, no sleep: ten seconds of load run in
 * milliseconds, and every packet's time is exact. */
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
#include "resolver/upstream_budget.h"
#include "wire/dname.h"
#include "wire/wire.h"

#include "fwd_fake_clock.h"

/* ---- the window alone --------------------------------------------------------- */

struct take_case {
	uint64_t at_ms; /* since the start */
	uint64_t want;	/* 0: sent; else the wait the budget reports */
};

/* A budget of 3: a burst of three, then nothing until the first is a second
 * old, whatever the spacing; a token bucket would let 3 more through at the
 * boundary. */
static const struct take_case window_cases[] = {
    {0, 0},    {0, 0},	    {10, 0},   {10, 990}, {999, 1},  {1000, 0}, {1000, 0},   {1001, 9},
    {1010, 0}, {1500, 500}, {2000, 0}, {2000, 0}, {2009, 1}, {2010, 0}, {2010, 990},
};

static void test_window(void **state)
{
	(void)state;
	struct fake_clock c = {.now = 5000000};
	struct fwd_clock clk = fc_clock(&c);
	struct upstream_budget *b;
	assert_int_equal(upstream_budget_new(2, 3, &b), 0);
	uint64_t start = c.now;
	for (size_t i = 0; i < sizeof(window_cases) / sizeof(window_cases[0]); i++) {
		c.now = start + window_cases[i].at_ms;
		size_t slot = 99;
		uint64_t got = upstream_budget_take(b, 0, &clk, &slot);
		if (!got)
			upstream_budget_sent(b, 0, slot, &clk);
		if (got != window_cases[i].want)
			fail_msg("case %zu (at %llu ms): wait %llu, want %llu", i,
				 (unsigned long long)window_cases[i].at_ms, (unsigned long long)got,
				 (unsigned long long)window_cases[i].want);
	}
	/* each upstream has its own window */
	size_t slot;
	assert_int_equal(upstream_budget_take(b, 1, &clk, &slot), 0);
	/* taken and not yet out: it holds its place in the window until it is */
	c.now += 5000;
	assert_int_equal(upstream_budget_take(b, 1, &clk, &slot), 0);
	assert_int_equal(upstream_budget_take(b, 1, &clk, &slot), 0);
	assert_int_equal(upstream_budget_take(b, 1, &clk, &slot), 1);
	upstream_budget_sent(b, 1, 0, &clk);
	assert_int_equal(upstream_budget_take(b, 1, &clk, &slot), 1000);
	assert_int_equal(upstream_budget_held(b, 0), 6);
	assert_int_equal(upstream_budget_held(b, 1), 2);
	upstream_budget_free(b);
	assert_int_equal(upstream_budget_new(1, 0, &b), -EINVAL);
}

/* ---- the engine under load -------------------------------------------------------- */

#define QPS	    50	  /* the budget */
#define OFFERED	    500	  /* client queries per second: ten times it */
#define SECONDS	    10	  /* of load */
#define N_POPULAR   5	  /* names half the queries ask */
#define ANSWER_TTL  2	  /* seconds: popular names expire during the run */
#define MAX_SENT    20000 /* packets the fake upstream can record */
#define N_QUERIES   (OFFERED * SECONDS)
#define UPSTREAM_MS 3 /* the fake upstream answers this long after a query */

struct fake_up {
	struct fwd_xchg x;
	bool open;
	uint64_t due;
	uint8_t msg[FWD_QUERY_MAX];
	size_t len;
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	void *arg;
	struct fake_up *next;
};

struct load {
	struct fake_clock clk;
	struct fwd_clock fclk;
	struct fwd_net fnet;
	struct fake_up *xs;
	uint64_t sent_at[MAX_SENT];
	size_t n_sent;
	struct forwarder *f;
	struct forward_worker *fw;
};

struct query {
	bool popular;
	unsigned answers;
	uint8_t rcode;
	bool has_addr;
};

static int up_send(void *ctx, const struct fwd_xchg_req *r, struct fwd_xchg **out)
{
	struct load *l = ctx;
	assert_true(l->n_sent < MAX_SENT);
	l->sent_at[l->n_sent++] = l->clk.now;
	struct fake_up *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_true(r->len <= sizeof(x->msg));
	x->x.tcp = r->tcp;
	x->open = true;
	x->due = l->clk.now + UPSTREAM_MS;
	memcpy(x->msg, r->msg, r->len);
	x->len = r->len;
	x->on_answer = r->on_answer;
	x->arg = r->arg;
	x->next = l->xs;
	l->xs = x;
	*out = &x->x;
	return 0;
}

static void up_end(struct fwd_xchg *x)
{
	((struct fake_up *)x)->open = false;
}

/* Answers every open exchange that is due: one A record, ANSWER_TTL. */
static void up_answer_due(struct load *l)
{
	for (struct fake_up *x = l->xs; x; x = x->next) {
		if (!x->open || x->due > l->clk.now)
			continue;
		uint8_t out[512];
		size_t n = WIRE_HDR_LEN + dname_len(x->msg + WIRE_HDR_LEN) + 4;
		memcpy(out, x->msg, n);
		wire_hdr_set(out, WIRE_QR, true);
		wire_hdr_set(out, WIRE_RA, true);
		wire_hdr_set_count(out, WIRE_AR, 0);
		wire_hdr_set_count(out, WIRE_AN, 1);
		wire_wr16(out + n, 0xC000 | WIRE_HDR_LEN);
		wire_wr16(out + n + 2, DNS_T_A);
		wire_wr16(out + n + 4, DNS_C_IN);
		wire_wr32(out + n + 6, ANSWER_TTL);
		wire_wr16(out + n + 10, 4);
		memcpy(out + n + 12, "\xc0\x00\x02\x01", 4);
		n += 16;
		assert_true(x->on_answer(x->arg, out, n));
	}
}

static void on_reply(void *conn, const uint8_t *msg, size_t len)
{
	struct query *q = conn;
	assert_non_null(msg);
	assert_true(len >= WIRE_HDR_LEN);
	q->answers++;
	q->rcode = wire_hdr_rcode(msg);
	q->has_addr = wire_hdr_count(msg, WIRE_AN) > 0;
}

static void ask(struct load *l, struct query *q, unsigned i)
{
	char text[64];
	q->popular = i % 2 == 0;
	if (q->popular)
		snprintf(text, sizeof(text), "popular%u.example.test", (i / 2) % N_POPULAR);
	else
		snprintf(text, sizeof(text), "unique%u.example.test", i);
	uint8_t req[512], resp[4096];
	memset(req, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(req, (uint16_t)i);
	wire_hdr_set(req, WIRE_RD, true);
	wire_hdr_set_count(req, WIRE_QD, 1);
	int nl = dname_from_text(text, req + WIRE_HDR_LEN, DNAME_MAX);
	assert_true(nl > 0);
	size_t len = WIRE_HDR_LEN + (size_t)nl;
	wire_wr16(req + len, DNS_T_A);
	wire_wr16(req + len + 2, DNS_C_IN);
	len += 4;
	memcpy(resp, req, len);
	wire_hdr_set(resp, WIRE_QR, true);
	wire_hdr_set_rcode(resp, DNS_RCODE_REFUSED);
	size_t rlen = len;
	struct dns_query_info info = {.qtype = DNS_T_A,
				      .rcode = DNS_RCODE_REFUSED,
				      .qend = (uint16_t)len,
				      .limit = 65535,
				      .outside = 1};
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(5300)};
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct forward_client fc = {.proto = DNS_TCP,
				    .peer = (const struct sockaddr *)&peer,
				    .peer_len = sizeof(peer),
				    .udp_fd = -1,
				    .conn = q};
	if (forward_query(l->fw, NULL, &fc, req, len, resp, &rlen, sizeof(resp), &info) ==
	    FORWARD_REPLY)
		on_reply(q, resp, rlen);
}

static void load_start(struct load *l, const char *const *args)
{
	const char *argv[24] = {"svcdns", "--manifests", "."};
	int argc = 3;
	while (*args)
		argv[argc++] = *args++;
	struct svcdns_options *so = NULL;
	char err[256];
	assert_int_equal(options_load(argc, (char *const *)argv, &so, err, sizeof(err)), 0);
	struct forward_options o = so->fwd;
	o.prefetch = !so->no_prefetch;
	o.zone = so->zone;
	assert_int_equal(forward_new(&o, NULL, 0, 1, &l->f), 0);
	options_free(so);
	l->clk.now = 7000000;
	l->fclk = fc_clock(&l->clk);
	l->fnet = (struct fwd_net){l, up_send, up_end};
	assert_int_equal(forward_worker_new_io(l->f, 0, on_reply, &l->fclk, &l->fnet, &l->fw), 0);
}

static void load_finish(struct load *l)
{
	forward_worker_close(l->fw);
	forward_worker_free(l->fw);
	forward_free(l->f);
	for (struct fake_up *x = l->xs, *next; x; x = next) {
		next = x->next;
		assert_false(x->open);
		free(x);
	}
	assert_null(l->clk.timers);
}

/* The most packets any one-second window [t, t+1000) holds. */
static size_t busiest_second(const struct load *l)
{
	size_t most = 0;
	for (size_t i = 0, j = 0; i < l->n_sent; i++) {
		while (j < l->n_sent && l->sent_at[j] < l->sent_at[i] + 1000)
			j++;
		if (j - i > most)
			most = j - i;
	}
	return most;
}

static void test_load(void **state)
{
	(void)state;
	struct load *l = calloc(1, sizeof(*l));
	struct query *qs = calloc(N_QUERIES, sizeof(*qs));
	assert_non_null(l);
	assert_non_null(qs);
	char qps[16];
	snprintf(qps, sizeof(qps), "%u", QPS);
	const char *args[] = {"--upstream", "192.0.2.1", "--upstream-max-qps", qps, "--serve-stale",
			      "300",	    NULL};
	load_start(l, args);
	uint64_t start = l->clk.now;
	unsigned step_ms = 1000 / OFFERED, per_step = OFFERED * step_ms / 1000;
	if (!per_step)
		per_step = 1;
	unsigned asked = 0;
	for (uint64_t t = 0; asked < N_QUERIES; t += step_ms) {
		fc_run_until(&l->clk, start + t);
		up_answer_due(l);
		for (unsigned k = 0; k < per_step && asked < N_QUERIES; k++, asked++)
			ask(l, &qs[asked], asked);
	}
	/* let every wait end: the longest is two seconds */
	for (unsigned t = 0; t < 3000; t++) {
		fc_run_until(&l->clk, l->clk.now + 1);
		up_answer_due(l);
	}

	size_t most = busiest_second(l);
	unsigned pop_ok = 0, pop = 0, uniq_ok = 0, uniq = 0, unanswered = 0;
	for (unsigned i = 0; i < N_QUERIES; i++) {
		struct query *q = &qs[i];
		unanswered += q->answers != 1;
		bool ok = q->answers == 1 && q->rcode == DNS_RCODE_NOERROR && q->has_addr;
		if (q->popular) {
			pop++;
			pop_ok += ok;
		} else {
			uniq++;
			uniq_ok += ok;
		}
	}
	struct forward_stats fs;
	forward_stats_get(l->f, &fs);
	print_message("offered %u queries in %u s (%u/s) against a budget of %u/s: %zu packets "
		      "upstream, at most %zu in any second; popular names answered %u/%u, unique "
		      "names %u/%u; waits %llu, refused %llu, stale %llu\n",
		      N_QUERIES, SECONDS, OFFERED, QPS, l->n_sent, most, pop_ok, pop, uniq_ok, uniq,
		      (unsigned long long)fs.budget_waits, (unsigned long long)fs.budget_refused,
		      (unsigned long long)fs.budget_stale);
	assert_int_equal(unanswered, 0);
	assert_true(most <= QPS);
	/* the budget is used, not left idle: most of each second's packets go out */
	assert_true(l->n_sent >= (size_t)QPS * (SECONDS - 1));
	/* the popular names keep resolving: fresh, coalesced or stale */
	assert_true(pop_ok >= pop * 99 / 100);
	assert_true(fs.budget_stale > 0 && fs.budget_refused > 0);
	load_finish(l);
	free(qs);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
