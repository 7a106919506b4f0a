/* The API client's token bucket and in-flight bound (discovery/kube_limit.h),
 * driven by a clock the test holds: the burst, the refill rate, the wait it
 * names, watches outside the in-flight bound, and no limit at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "discovery/kube_limit.h"

static void test_burst_then_rate(void **state)
{
	(void)state;
	struct kube_limit l;
	uint64_t now = 1000;
	kube_limit_init(&l, 5, 10, 0, now);
	for (int i = 0; i < 10; i++)
		assert_int_equal(kube_limit_try(&l, true, true, now), 0);
	/* the bucket is empty: the next token is 200 ms away at 5/s */
	assert_int_equal(kube_limit_try(&l, true, true, now), 200);
	now += 150;
	assert_int_equal(kube_limit_try(&l, true, true, now), 50);
	now += 50;
	assert_int_equal(kube_limit_try(&l, true, true, now), 0);
	/* a long quiet spell refills to the burst, not beyond */
	now += 60000;
	for (int i = 0; i < 10; i++)
		assert_int_equal(kube_limit_try(&l, true, true, now), 0);
	assert_true(kube_limit_try(&l, true, true, now) > 0);
	/* over 10 s at most 10 + 5 * 10 requests start */
	unsigned started = 0;
	for (uint64_t t = now; t < now + 10000; t++)
		while (kube_limit_try(&l, true, true, t) == 0)
			started++;
	assert_in_range(started, 49, 50);
}

static void test_inflight(void **state)
{
	(void)state;
	struct kube_limit l;
	kube_limit_init(&l, 0, 0, 2, 0);
	assert_int_equal(kube_limit_try(&l, true, false, 0), 0);
	assert_int_equal(kube_limit_try(&l, false, false, 0), 0);
	/* a third list waits for one to end; a watch does not count */
	assert_int_equal(kube_limit_try(&l, true, false, 0), UINT64_MAX);
	assert_int_equal(kube_limit_try(&l, true, true, 0), 0);
	kube_limit_done(&l, true);
	assert_int_equal(kube_limit_try(&l, true, false, 0), UINT64_MAX);
	kube_limit_done(&l, false);
	assert_int_equal(kube_limit_try(&l, true, false, 0), 0);
	assert_int_equal(l.inflight, 2);
}

static void test_no_limits(void **state)
{
	(void)state;
	struct kube_limit l;
	kube_limit_init(&l, 0, 0, 0, 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(kube_limit_try(&l, true, false, 0), 0);
}

/* Continuation pages take no token, yet count in flight. */
static void test_untokened(void **state)
{
	(void)state;
	struct kube_limit l;
	kube_limit_init(&l, 1, 1, 1, 0);
	assert_int_equal(kube_limit_try(&l, true, false, 0), 0);
	kube_limit_done(&l, false);
	assert_int_equal(kube_limit_try(&l, true, false, 0), 1000);
	assert_int_equal(kube_limit_try(&l, false, false, 0), 0);
	assert_int_equal(kube_limit_try(&l, false, false, 0), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_rate),
	    cmocka_unit_test(test_inflight),
	    cmocka_unit_test(test_no_limits),
	    cmocka_unit_test(test_untokened),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
