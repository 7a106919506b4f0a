/* DNS over TCP framing (wire/tcpframe.h): which messages a buffer yields, how
 * much of it is consumed, pausing and stopping, the buffer growth rule, and
 * that a stream split anywhere yields the same messages as read whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/tcpframe.h"

/* What the callback saw: each message's length and first byte, in order. */
struct seen {
	size_t n;
	size_t len[16];
	int first[16];
	int verdict_at; /* return `verdict` for message number verdict_at */
	int verdict;
};

static int record(void *arg, const uint8_t *msg, size_t len)
{
	struct seen *s = arg;
	if (s->n < 16) {
		s->len[s->n] = len;
		s->first[s->n] = len ? msg[0] : -1;
	}
	s->n++;
	return (int)s->n - 1 == s->verdict_at ? s->verdict : TCPFRAME_NEXT;
}

struct feed_case {
	const char *name;
	const uint8_t *buf;
	size_t len;
	ssize_t consumed;
	size_t n_msgs;
	size_t lens[4];
	int verdict_at, verdict;
};

static const uint8_t two[] = {0, 3, 'a', 'b', 'c', 0, 1, 'z'};
static const uint8_t two_and_half[] = {0, 1, 'x', 0, 2, 'y', 'y', 0, 5, 'p', 'q'};
static const uint8_t lone_byte[] = {0};
static const uint8_t prefix_only[] = {0x01, 0x00};
static const uint8_t empty_msg[] = {0, 0, 0, 1, 'k'};
static const uint8_t huge_prefix[] = {0xff, 0xff, 1, 2, 3};

static void test_feed_table(void **state)
{
	(void)state;
	static const struct feed_case cases[] = {
	    {"two whole messages", two, sizeof(two), 8, 2, {3, 1}, -1, 0},
	    {"two and a half", two_and_half, sizeof(two_and_half), 7, 2, {1, 2}, -1, 0},
	    {"one byte of a prefix", lone_byte, 1, 0, 0, {0}, -1, 0},
	    {"a prefix alone", prefix_only, 2, 0, 0, {0}, -1, 0},
	    {"nothing", two, 0, 0, 0, {0}, -1, 0},
	    {"a zero-length message is handed over",
	     empty_msg,
	     sizeof(empty_msg),
	     5,
	     2,
	     {0, 1},
	     -1,
	     0},
	    {"a length larger than the rest", huge_prefix, sizeof(huge_prefix), 0, 0, {0}, -1, 0},
	    {"pause after the first", two, sizeof(two), 5, 1, {3}, 0, TCPFRAME_PAUSE},
	    {"pause after the last", two, sizeof(two), 8, 2, {3, 1}, 1, TCPFRAME_PAUSE},
	    {"stop (close) at the second", two, sizeof(two), -5, 2, {3, 1}, 1, -5},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct feed_case *c = &cases[i];
		struct seen s = {.verdict_at = c->verdict_at, .verdict = c->verdict};
		ssize_t got = tcpframe_feed(c->buf, c->len, record, &s);
		if (got != c->consumed || s.n != c->n_msgs)
			fail_msg("%s: consumed %zd with %zu messages, want %zd with %zu", c->name,
				 got, s.n, c->consumed, c->n_msgs);
		for (size_t m = 0; m < c->n_msgs; m++)
			if (s.len[m] != c->lens[m])
				fail_msg("%s: message %zu is %zu bytes, want %zu", c->name, m,
					 s.len[m], c->lens[m]);
	}
}

static void test_want(void **state)
{
	(void)state;
	uint8_t big[4] = {0x40, 0x00, 0, 0}; /* a 16384-byte message is coming */
	uint8_t max[2] = {0xff, 0xff};
	assert_int_equal(tcpframe_want(NULL, 0, 4096), 4096);
	assert_int_equal(tcpframe_want(big, 1, 4096), 1 + 4096);
	assert_int_equal(tcpframe_want(big, 4, 4096), 2 + 16384);
	assert_int_equal(tcpframe_want(two, 2, 4096), 2 + 4096);
	assert_int_equal(tcpframe_want(max, 2, 4096), TCPFRAME_MAX);
	/* never more than a frame and a read, whatever is claimed held */
	assert_int_equal(tcpframe_want(two, 100000, 4096), TCPFRAME_MAX + 4096);
}

/* The server's loop in miniature: bytes arrive in pieces, complete frames
 * are taken, the rest is kept. Messages are concatenated into `out`. */
struct sink {
	uint8_t out[4096];
	size_t len, n;
};

static int collect(void *arg, const uint8_t *msg, size_t len)
{
	struct sink *k = arg;
	assert_true(k->len + len + 1 <= sizeof(k->out));
	k->out[k->len++] = (uint8_t)len;
	memcpy(k->out + k->len, msg, len);
	k->len += len;
	k->n++;
	return TCPFRAME_NEXT;
}

static void run_split(const uint8_t *stream, size_t len, size_t piece, struct sink *k)
{
	uint8_t buf[1024];
	size_t held = 0;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < piece ? len - off : piece;
		assert_true(held + n <= sizeof(buf));
		memcpy(buf + held, stream + off, n);
		held += n;
		off += n;
		ssize_t used = tcpframe_feed(buf, held, collect, k);
		assert_true(used >= 0 && (size_t)used <= held);
		memmove(buf, buf + used, held - (size_t)used);
		held -= (size_t)used;
	}
}

static void test_any_split(void **state)
{
	(void)state;
	uint8_t stream[600];
	size_t len = 0;
	/* messages of 0 to 60 bytes back to back */
	for (unsigned m = 0; m < 12; m++) {
		unsigned ml = (m * 7) % 61;
		stream[len++] = 0;
		stream[len++] = (uint8_t)ml;
		for (unsigned j = 0; j < ml; j++)
			stream[len++] = (uint8_t)(m * 31 + j);
	}
	struct sink whole = {0};
	run_split(stream, len, len, &whole);
	assert_int_equal(whole.n, 12);
	for (size_t piece = 1; piece <= 70; piece++) {
		struct sink k = {0};
		run_split(stream, len, piece, &k);
		if (k.n != whole.n || k.len != whole.len || memcmp(k.out, whole.out, k.len) != 0)
			fail_msg("pieces of %zu bytes: %zu messages, want %zu", piece, k.n,
				 whole.n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_feed_table),
	    cmocka_unit_test(test_want),
	    cmocka_unit_test(test_any_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
