/* Parse-scoped allocation for jansson: values made inside a scope come from
 * the region and are released with it; values made outside are heap blocks
 * that free() returns, wherever they are released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/jarena.h"

static void test_heap_and_scope(void **state)
{
	(void)state;
	/* outside a scope: a heap block, aligned, freed by jarena_free */
	unsigned char *h = jarena_malloc(100);
	assert_non_null(h);
	assert_int_equal((uintptr_t)h % 16, 0);
	memset(h, 0xAB, 100);

	jarena_begin();
	unsigned char *a = jarena_malloc(24), *b = jarena_malloc(1 << 20);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal((uintptr_t)a % 16, 0);
	assert_int_equal((uintptr_t)b % 16, 0);
	memset(a, 1, 24);
	memset(b, 2, 1 << 20); /* larger than a chunk: a chunk of its own */
	assert_true(a + 24 <= b || b + (1 << 20) <= a);
	jarena_free(a); /* nothing happens until the scope ends */
	assert_int_equal(a[0], 1);
	/* a heap block made before the scope is still freed for real inside it */
	jarena_free(h);
	jarena_begin(); /* nested: the outer scope still owns the region */
	unsigned char *c = jarena_malloc(8);
	assert_non_null(c);
	jarena_end();
	assert_int_equal(b[(1 << 20) - 1], 2);
	jarena_end();
	jarena_free(NULL);
	jarena_thread_release();
}

static void test_jansson(void **state)
{
	(void)state;
	jarena_install();
	/* made outside, released inside a scope */
	json_t *outside = json_pack("{s:s, s:[i,i]}", "name", "web", "ports", 80, 443);
	assert_non_null(outside);
	for (int round = 0; round < 50; round++) {
		jarena_begin();
		json_error_t err;
		json_t *v = json_loads("{\"kind\":\"Service\",\"metadata\":{\"name\":\"db\"},"
				       "\"spec\":{\"ports\":[{\"port\":5432}]}}",
				       0, &err);
		assert_non_null(v);
		assert_string_equal(
		    json_string_value(json_object_get(json_object_get(v, "metadata"), "name")),
		    "db");
		json_decref(v);
		if (round == 10)
			json_decref(outside);
		jarena_end();
	}
	/* made and released outside any scope */
	json_t *again = json_loads("[1,2,3]", 0, NULL);
	assert_int_equal(json_array_size(again), 3);
	json_decref(again);
	jarena_thread_release();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_heap_and_scope),
	    cmocka_unit_test(test_jansson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
