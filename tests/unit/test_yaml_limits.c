/* YAML inputs that would expand without bound are refused quickly, with a
 * message, whatever the mix of aliases, long strings and nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "discovery/yaml2json.h"

static char *long_string_bomb(size_t len, int levels, int fan)
{
	/* a: &a "xxxx...", b: &b [*a, *a, ...], c: &c [*b, *b, ...], ... */
	size_t cap = len + 64 + (size_t)levels * (size_t)fan * 8 + 64;
	char *y = malloc(cap);
	size_t o = (size_t)snprintf(y, cap, "l0: &l0 \"");
	memset(y + o, 'x', len);
	o += len;
	o += (size_t)snprintf(y + o, cap - o, "\"\n");
	for (int l = 1; l <= levels; l++) {
		o += (size_t)snprintf(y + o, cap - o, "l%d: &l%d [", l, l);
		for (int k = 0; k < fan; k++)
			o += (size_t)snprintf(y + o, cap - o, "%s*l%d", k ? ", " : "", l - 1);
		o += (size_t)snprintf(y + o, cap - o, "]\n");
	}
	return y;
}

static void test_long_string_alias_bomb(void **state)
{
	(void)state;
	char *y = long_string_bomb(10000, 5, 10);
	json_t *docs = NULL;
	char err[256] = "";
	int rc = yaml_to_json_docs(y, strlen(y), &docs, err, sizeof(err));
	assert_true(rc < 0);
	assert_null(docs);
	assert_non_null(strstr(err, "alias bomb"));
	free(y);
}

static void test_small_aliases_still_fine(void **state)
{
	(void)state;
	char *y = long_string_bomb(100, 2, 3); /* 100 * 9 bytes: harmless */
	json_t *docs = NULL;
	char err[256] = "";
	assert_int_equal(yaml_to_json_docs(y, strlen(y), &docs, err, sizeof(err)), 0);
	assert_non_null(docs);
	json_decref(docs);
	free(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_long_string_alias_bomb),
	    cmocka_unit_test(test_small_aliases_still_fine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
