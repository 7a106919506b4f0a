/* The datapath's endpoint choice: round robin, sessionAffinity ClientIP with
 * its timeout (driven by a fake clock), endpoints that come and go, and the
 * bounded affinity table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/balance.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct net_addr ip(const char *text)
{
	struct net_addr a;
	assert_int_equal(net_addr_parse(text, &a), 0);
	return a;
}

static struct proxy_endpoint ep(const char *text, uint16_t port)
{
	return (struct proxy_endpoint){.addr = ip(text), .port = port};
}

/* Three endpoints, sorted by address as the view sorts them. */
static void three(struct proxy_endpoint eps[3])
{
	eps[0] = ep("10.244.1.1", 8080);
	eps[1] = ep("10.244.1.2", 8080);
	eps[2] = ep("10.244.1.3", 8081);
}

static void test_round_robin(void **state)
{
	(void)state;
	struct proxy_endpoint eps[3];
	struct balance b;
	three(eps);
	balance_init(&b, 64);
	struct net_addr client = ip("10.0.0.1");
	/* Without affinity the same client goes round: 0 1 2 0 1 2. */
	static const size_t want[] = {0, 1, 2, 0, 1, 2, 0};
	for (size_t i = 0; i < N_ELEMS(want); i++)
		assert_int_equal(balance_pick(&b, eps, 3, &client, 0, 1000 + i), want[i]);
	assert_int_equal(balance_affinity_count(&b, 1000, 1000), 0);
	/* Fewer endpoints: the cursor wraps into the new range. */
	for (size_t i = 0; i < 4; i++)
		assert_true(balance_pick(&b, eps, 2, &client, 0, 2000) < 2);
	balance_free(&b);
}

static void test_affinity(void **state)
{
	(void)state;
	struct proxy_endpoint eps[3];
	struct balance b;
	three(eps);
	balance_init(&b, 64);
	struct net_addr a = ip("10.0.0.1"), c = ip("10.0.0.2"), v6 = ip("fd00::1");
	const uint32_t tmo = 10000; /* 10 s */

	size_t ea = balance_pick(&b, eps, 3, &a, tmo, 0);
	size_t ec = balance_pick(&b, eps, 3, &c, tmo, 0);
	size_t e6 = balance_pick(&b, eps, 3, &v6, tmo, 0);
	assert_int_equal(ea, 0);
	assert_int_equal(ec, 1);
	assert_int_equal(e6, 2);
	/* Within the timeout every client keeps its endpoint, and each use
	 * pushes the timeout forward (kube-proxy's "recent" match does too). */
	for (uint64_t t = 1000; t < 40000; t += 5000) {
		assert_int_equal(balance_pick(&b, eps, 3, &a, tmo, t), ea);
		assert_int_equal(balance_pick(&b, eps, 3, &v6, tmo, t), e6);
	}
	assert_int_equal(balance_affinity_count(&b, tmo, 36000), 2); /* c expired */
	/* c was last seen at 0: at 10 s it is a new client and goes round. */
	assert_int_equal(balance_pick(&b, eps, 3, &c, tmo, 10000 + 36000), 0);
	/* a's endpoint disappears: a moves on and stays on its new one. */
	struct proxy_endpoint rest[2] = {eps[1], eps[2]};
	size_t na = balance_pick(&b, rest, 2, &a, tmo, 50000);
	for (int i = 0; i < 5; i++)
		assert_int_equal(balance_pick(&b, rest, 2, &a, tmo, 50001 + (uint64_t)i), na);
	/* After a refused connection the caller binds the client elsewhere. */
	size_t other = na == 0 ? 1 : 0;
	balance_bind(&b, &a, &rest[other], tmo, 50010);
	assert_int_equal(balance_pick(&b, rest, 2, &a, tmo, 50011), other);
	/* Forgotten: the next pick is round robin again. */
	balance_forget(&b, &a);
	uint32_t cursor = b.cursor;
	assert_int_equal(balance_pick(&b, rest, 2, &a, tmo, 50012), cursor % 2);
	balance_free(&b);
}

static void test_find(void **state)
{
	(void)state;
	struct proxy_endpoint eps[3];
	three(eps);
	for (long i = 0; i < 3; i++)
		assert_int_equal(balance_find(eps, 3, &eps[i]), i);
	struct proxy_endpoint x = ep("10.244.1.2", 9090); /* right address, other port */
	assert_int_equal(balance_find(eps, 3, &x), -1);
	x = ep("10.244.1.9", 8080);
	assert_int_equal(balance_find(eps, 3, &x), -1);
	assert_int_equal(balance_find(eps, 0, &x), -1);
}

/* Many clients, some forgotten: the table keeps finding the rest (deletion
 * must not cut probe chains), never grows past its bound, and reuses what
 * expired. */
static void test_table(void **state)
{
	(void)state;
	struct proxy_endpoint eps[3];
	struct balance b;
	three(eps);
	balance_init(&b, 256);
	const uint32_t tmo = 1000;
	size_t got[200];
	char text[32];
	for (int i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "10.1.%d.%d", i / 50, i % 50 + 1);
		struct net_addr c = ip(text);
		got[i] = balance_pick(&b, eps, 3, &c, tmo, 0);
	}
	for (int i = 0; i < 200; i += 3) {
		snprintf(text, sizeof(text), "10.1.%d.%d", i / 50, i % 50 + 1);
		struct net_addr c = ip(text);
		balance_forget(&b, &c);
	}
	assert_int_equal(balance_affinity_count(&b, tmo, 1), 200 - 67);
	uint32_t cursor = b.cursor;
	for (int i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "10.1.%d.%d", i / 50, i % 50 + 1);
		struct net_addr c = ip(text);
		if (i % 3 == 0)
			continue;
		assert_int_equal(balance_pick(&b, eps, 3, &c, tmo, 1), got[i]);
	}
	assert_int_equal(b.cursor, cursor); /* nobody went round */

	/* The bound: at most 2 * max_entries slots, the rest not remembered. */
	struct balance small;
	balance_init(&small, 16);
	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "10.2.0.%d", i + 1);
		struct net_addr c = ip(text);
		balance_pick(&small, eps, 3, &c, tmo, 0);
	}
	assert_true(small.cap <= 32);
	assert_true(small.affinity_dropped > 0);
	assert_true(balance_affinity_count(&small, tmo, 0) <= 24);
	/* Once they expire, new clients are remembered again. */
	uint64_t dropped = small.affinity_dropped;
	for (int i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "10.3.0.%d", i + 1);
		struct net_addr c = ip(text);
		balance_pick(&small, eps, 3, &c, tmo, 5000);
	}
	assert_int_equal(small.affinity_dropped, dropped);
	assert_int_equal(balance_affinity_count(&small, tmo, 5000), 10);
	balance_clear(&small);
	assert_int_equal(balance_affinity_count(&small, tmo, 5000), 0);
	balance_free(&small);
	balance_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_robin),
	    cmocka_unit_test(test_affinity),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
