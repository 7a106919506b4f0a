/* The region allocator: alignment, zeroing, chunk growth and the oversized
 * block, reset keeping a small first chunk, counted references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/arena.h"

static void test_alignment_and_zeroing(void **state)
{
	(void)state;
	struct arena *a = arena_new();
	assert_non_null(a);
	for (size_t size = 1; size < 200; size += 7) {
		unsigned char *p = arena_alloc(a, size);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 8, 0);
		for (size_t i = 0; i < size; i++)
			assert_int_equal(p[i], 0);
		memset(p, 0xEE, size); /* the next block must not see this */
		unsigned char *q = arena_alloc_aligned(a, 3, 2);
		assert_non_null(q);
		assert_int_equal((uintptr_t)q % 2, 0);
		assert_true(q >= p + size);
		q[0] = q[1] = q[2] = 0xEE;
		unsigned char *r = arena_alloc_aligned(a, 32, 16);
		assert_non_null(r);
		assert_int_equal((uintptr_t)r % 16, 0);
		assert_true(r >= q + 3);
		memset(r, 0xEE, 32);
	}
	arena_free(a);
}

static void test_growth(void **state)
{
	(void)state;
	struct arena *a = arena_new_sized(1024, 4096);
	assert_non_null(a);
	assert_int_equal(arena_bytes(a), 0);
	/* the first chunk holds the first blocks; the next ones double up to max */
	assert_non_null(arena_alloc(a, 1000));
	size_t one = arena_bytes(a);
	assert_true(one >= 1024 && one < 2048);
	assert_non_null(arena_alloc(a, 1000));
	assert_true(arena_bytes(a) - one >= 2048);
	for (int i = 0; i < 64; i++)
		assert_non_null(arena_alloc(a, 1000));
	size_t before = arena_bytes(a);
	/* a block larger than any chunk gets a chunk of its own size */
	unsigned char *big = arena_alloc(a, 100000);
	assert_non_null(big);
	big[99999] = 1;
	assert_true(arena_bytes(a) - before >= 100000);
	assert_true(arena_bytes(a) - before < 100000 + 4096);
	arena_free(a);
}

static void test_reset(void **state)
{
	(void)state;
	struct arena *a = arena_new_sized(4096, 1 << 20);
	assert_non_null(a);
	unsigned char *first = arena_alloc_aligned(a, 100, 16);
	assert_non_null(first);
	for (int i = 0; i < 100; i++)
		assert_non_null(arena_alloc(a, 1000));
	assert_true(arena_bytes(a) > 4096 * 2);
	/* the first chunk is small enough to keep: the next block reuses it */
	arena_reset(a, 4096);
	size_t kept = arena_bytes(a);
	assert_true(kept > 4096 && kept < 4096 + 256);
	unsigned char *again = arena_alloc_aligned(a, 100, 16);
	assert_ptr_equal(again, first);
	assert_int_equal(arena_bytes(a), kept);
	/* reused memory comes zeroed from arena_alloc */
	memset(again, 0xAB, 100);
	arena_reset(a, 4096);
	unsigned char *zeroed = arena_alloc(a, 100);
	assert_ptr_equal(zeroed, first);
	for (int i = 0; i < 100; i++)
		assert_int_equal(zeroed[i], 0);
	/* nothing is kept when the first chunk is over the limit */
	arena_reset(a, 1024);
	assert_int_equal(arena_bytes(a), 0);
	assert_non_null(arena_alloc(a, 10));
	arena_free(a);
	arena_free(NULL);
}

static void test_references(void **state)
{
	(void)state;
	struct arena *a = arena_new();
	assert_non_null(a);
	unsigned char *p = arena_alloc(a, 64);
	assert_non_null(p);
	arena_retain(a);
	arena_release(a);
	/* one reference left: the block is still there (ASan would tell) */
	p[63] = 7;
	assert_int_equal(p[63], 7);
	arena_release(a);
	arena_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alignment_and_zeroing),
	    cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_references),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
