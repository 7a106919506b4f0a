/* Wire-form names: text conversion, lowercasing, the bounds-checked readers
 * the query path relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire/dname.h"

static void test_from_text(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int len; /* -1: invalid */
		const char *wire;
	} cases[] = {
	    {"cluster.local", 15, "\7cluster\5local"},
	    {"Cluster.LOCAL.", 15, "\7cluster\5local"},
	    {".", 1, ""},
	    {"a", 3, "\1a"},
	    {"", -1, NULL},
	    {"a..b", -1, NULL},
	    {".a", -1, NULL},
	    {"a\\.b", -1, NULL},
	    /* a 64-octet label */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", -1, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[256];
		int n = dname_from_text(cases[i].text, out, sizeof(out));
		if (cases[i].len < 0) {
			assert_true(n < 0);
			continue;
		}
		assert_int_equal(n, cases[i].len);
		assert_memory_equal(out, cases[i].wire, (size_t)n);
		assert_int_equal(dname_len(out), (size_t)n);
	}
	/* 255 octets is the limit: 4 labels of 63 = 256 wire octets */
	char big[300];
	memset(big, 'a', sizeof(big));
	for (int i = 63; i < 256; i += 64)
		big[i] = '.';
	big[255] = '\0';
	uint8_t out[300];
	assert_true(dname_from_text(big, out, sizeof(out)) < 0);
	big[253] = '\0'; /* 4 labels: 63,63,63,61 -> 255 octets */
	assert_int_equal(dname_from_text(big, out, sizeof(out)), 255);
}

static void test_to_text(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(dname_to_text((const uint8_t *)"\3web\4shop", buf, sizeof(buf)), 9);
	assert_string_equal(buf, "web.shop.");
	dname_to_text((const uint8_t *)"\3a.b\1\1", buf, sizeof(buf));
	assert_string_equal(buf, "a\\046b.\\001.");
	dname_to_text((const uint8_t *)"", buf, sizeof(buf));
	assert_string_equal(buf, ".");
	assert_true(dname_to_text((const uint8_t *)"\7cluster\5local", buf, 8) < 0);
}

static void test_read_question(void **state)
{
	(void)state;
	uint8_t key[256];
	static const struct {
		const char *pkt;
		size_t len;
		int want;
		const char *key;
	} cases[] = {
	    {"\3WeB\4Shop\0", 10, 10, "\3web\4shop"},
	    {"\0", 1, 1, ""},
	    {"\3web", 4, -EBADMSG, NULL},      /* runs past the end */
	    {"\3web\4sho", 8, -EBADMSG, NULL}, /* label runs past the end */
	    {"\300\014", 2, -EBADMSG, NULL},   /* a pointer */
	    {"\100abc\0", 5, -EBADMSG, NULL},  /* extended label type */
	    {"\200abc\0", 5, -EBADMSG, NULL},  /* reserved label type */
	    {"", 0, -EBADMSG, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = dname_read_question((const uint8_t *)cases[i].pkt, cases[i].len, 0, key);
		assert_int_equal(n, cases[i].want);
		if (n > 0)
			assert_memory_equal(key, cases[i].key, (size_t)n);
	}
	/* 256 octets: rejected even when the bytes are all there */
	uint8_t pkt[300] = {0};
	size_t o = 0;
	for (int i = 0; i < 4; i++) {
		pkt[o++] = 63;
		memset(pkt + o, 'x', 63);
		o += 63;
	}
	pkt[o++] = 0;
	assert_int_equal(dname_read_question(pkt, o, 0, key), -EBADMSG);
}

static void test_lowercase_every_byte(void **state)
{
	(void)state;
	/* Every byte value at every position of an 8-byte word: the word-wise
	 * lowercasing must agree with the obvious one. */
	for (int shift = 0; shift < 8; shift++) {
		for (int base = 0; base < 256; base += 60) {
			uint8_t pkt[128], key[256];
			size_t o = 0;
			for (int pad = 0; pad < shift; pad++)
				pkt[o++] = 0; /* bytes before the name */
			size_t start = o;
			pkt[o++] = 60;
			for (int i = 0; i < 60; i++)
				pkt[o++] = (uint8_t)((base + i) & 0xFF);
			pkt[o++] = 0;
			int n = dname_read_question(pkt, o, start, key);
			assert_int_equal(n, 62);
			for (int i = 0; i < 62; i++) {
				uint8_t c = pkt[start + (size_t)i];
				uint8_t want = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
				if (key[i] != want)
					fail_msg("byte 0x%02x became 0x%02x", c, key[i]);
			}
		}
	}
}

static void test_skip(void **state)
{
	(void)state;
	assert_int_equal(dname_skip((const uint8_t *)"\3abc\300\014", 6, 0), 6);
	assert_int_equal(dname_skip((const uint8_t *)"\3abc\300", 5, 0), -EBADMSG);
	assert_int_equal(dname_skip((const uint8_t *)"\0", 1, 0), 1);
	assert_int_equal(dname_skip((const uint8_t *)"\5ab", 3, 0), -EBADMSG);
	assert_int_equal(dname_skip((const uint8_t *)"\100", 1, 0), -EBADMSG);
}

static void test_lower_hash(void **state)
{
	(void)state;
	uint8_t a[] = "\3WeB\4SHOP";
	uint8_t b[] = "\3web\4shop";
	dname_lower(a, sizeof(a));
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(dname_hash(a, sizeof(a)), dname_hash(b, sizeof(b)));
	assert_int_equal(dname_labels((const uint8_t *)"\3web\4shop"), 2);
	assert_int_equal(dname_labels((const uint8_t *)""), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_text),
	    cmocka_unit_test(test_to_text),
	    cmocka_unit_test(test_read_question),
	    cmocka_unit_test(test_skip),
	    cmocka_unit_test(test_lowercase_every_byte),
	    cmocka_unit_test(test_lower_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
