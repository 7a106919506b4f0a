/* Unit tests for the pieces of the Kubernetes API source that need no server:
 * splitting a watch stream into lines (events cut anywhere, CRLF, empty lines,
 * the length cap), splitting a list page into its items, the backoff delays
 * with their jitter, and query escaping.
 * The source against a real protocol peer is tested in test_kube_*.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "discovery/kube.h"
#include "discovery/kube_contact.h"
#include "discovery/kube_http.h"
#include "discovery/kube_reflector.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct collected {
	char text[4096]; /* lines joined by '|' */
	size_t n;
	int stop_after; /* return -EPROTO at this line (1-based), 0: never */
};

static int collect(void *arg, const char *line, size_t len)
{
	struct collected *c = arg;
	size_t used = strlen(c->text);

	assert_true(used + len + 2 < sizeof(c->text));
	if (c->n)
		c->text[used++] = '|';
	memcpy(c->text + used, line, len);
	c->text[used + len] = '\0';
	c->n++;
	return c->stop_after && (int)c->n == c->stop_after ? -EPROTO : 0;
}

/* Every way of cutting the input into pieces gives the same lines. */
static void test_lines_split_anywhere(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"{\"a\":1}\n{\"b\":2}\n", "{\"a\":1}|{\"b\":2}"},
	    {"one\r\ntwo\r\n", "one|two"},
	    {"\n\n x \n\r\n", " x "},	       /* empty lines are not events */
	    {"last line without newline", ""}, /* kept until its newline comes */
	    {"a\nb", "a"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const char *in = cases[i].in;
		size_t len = strlen(in);
		for (size_t cut1 = 0; cut1 <= len; cut1++) {
			for (size_t cut2 = cut1; cut2 <= len; cut2++) {
				struct kube_lines lb;
				struct collected c = {0};
				kube_lines_init(&lb, 1024);
				assert_int_equal(kube_lines_feed(&lb, in, cut1, collect, &c), 0);
				assert_int_equal(
				    kube_lines_feed(&lb, in + cut1, cut2 - cut1, collect, &c), 0);
				assert_int_equal(
				    kube_lines_feed(&lb, in + cut2, len - cut2, collect, &c), 0);
				if (strcmp(c.text, cases[i].want) != 0)
					fail_msg("\"%s\" cut at %zu,%zu: got \"%s\", want \"%s\"",
						 in, cut1, cut2, c.text, cases[i].want);
				kube_lines_free(&lb);
			}
		}
	}
}

static void test_lines_cap(void **state)
{
	(void)state;
	struct kube_lines lb;
	struct collected c = {0};
	char big[64];

	kube_lines_init(&lb, 16);
	/* exactly at the cap is fine, in one piece or several */
	assert_int_equal(kube_lines_feed(&lb, "0123456789abcdef\n", 17, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&lb, "0123456789", 10, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&lb, "abcdef\n", 7, collect, &c), 0);
	assert_int_equal(c.n, 2);
	/* one byte more is refused, whole or in pieces, and the buffer is reset */
	memset(big, 'x', sizeof(big));
	big[17] = '\n';
	assert_int_equal(kube_lines_feed(&lb, big, 18, collect, &c), -E2BIG);
	assert_int_equal(kube_lines_feed(&lb, big, 10, collect, &c), 0);
	assert_int_equal(kube_lines_feed(&lb, big, 10, collect, &c), -E2BIG);
	assert_int_equal(lb.len, 0);
	/* the stream can go on afterwards */
	assert_int_equal(kube_lines_feed(&lb, "ok\n", 3, collect, &c), 0);
	assert_int_equal(c.n, 3);
	/* a reset drops a partial line (a stream cut mid-line) */
	assert_int_equal(kube_lines_feed(&lb, "{\"type\":\"ADD", 12, collect, &c), 0);
	kube_lines_reset(&lb);
	assert_int_equal(kube_lines_feed(&lb, "new\n", 4, collect, &c), 0);
	assert_string_equal(strrchr(c.text, '|') + 1, "new");
	kube_lines_free(&lb);
}

static void test_lines_callback_stops(void **state)
{
	(void)state;
	struct kube_lines lb;
	struct collected c = {.stop_after = 2};

	kube_lines_init(&lb, 100);
	assert_int_equal(kube_lines_feed(&lb, "a\nb\nc\n", 6, collect, &c), -EPROTO);
	assert_string_equal(c.text, "a|b"); /* nothing after the line that stopped it */
	kube_lines_free(&lb);
}

static int collect_item(void *arg, size_t index, const char *item, size_t len)
{
	struct collected *c = arg;

	assert_int_equal(index, c->n);
	return collect(c, item, len);
}

/* A page gives its items as they are written and its metadata; anything
 * that is not a well-nested object with an items array is refused. */
static void test_list_split(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		const char *items, *meta;
	} cases[] = {
	    {"{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"7\"},"
	     "\"items\":[{\"a\":1},{\"b\":[1,{\"c\":\"]}\"}]}]}",
	     0, "{\"a\":1}|{\"b\":[1,{\"c\":\"]}\"}]}", "{\"resourceVersion\":\"7\"}"},
	    {" { \"items\" : [ ] , \"metadata\" : { } } \n", 0, "", "{ }"},
	    {"{\"items\":[1, \"x\\\"y\", null,true]}", 0, "1|\"x\\\"y\"|null|true", NULL},
	    {"{\"metadata\":{\"items\":[{}]},\"items\":[{}]}", 0, "{}", "{\"items\":[{}]}"},
	    {"{\"metadata\":{}}", -EINVAL, "", NULL},	     /* no items */
	    {"{\"items\":null}", -EINVAL, "", NULL},	     /* not an array */
	    {"{\"items\":[{}]", -EINVAL, "{}", NULL},	     /* cut short */
	    {"{\"items\":[{\"a\":\"}]}", -EINVAL, "", NULL}, /* open string */
	    {"{\"items\":[{]}]}", -EINVAL, "", NULL},	     /* badly nested */
	    {"{\"items\":[{}]} x", -EINVAL, "{}", NULL},     /* trailing bytes */
	    {"[{\"items\":[]}]", -EINVAL, "", NULL},	     /* not an object */
	    {"", -EINVAL, "", NULL},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct collected c = {0};
		struct kube_span meta;
		int rc = kube_list_split(cases[i].in, strlen(cases[i].in), &meta, collect_item, &c);
		if (rc != cases[i].rc || strcmp(c.text, cases[i].items) != 0)
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i].in, rc, c.text,
				 cases[i].rc, cases[i].items);
		if (rc == 0 && cases[i].meta) {
			assert_non_null(meta.p);
			assert_int_equal(meta.len, strlen(cases[i].meta));
			assert_memory_equal(meta.p, cases[i].meta, meta.len);
		} else if (rc == 0) {
			assert_null(meta.p);
		}
	}
	/* without a callback, only the metadata is looked for */
	static const char early[] = "{\"metadata\":{\"continue\":\"x\"},\"items\":[{]]";
	struct kube_span m2;
	assert_int_equal(kube_list_split(early, strlen(early), &m2, NULL, NULL), 0);
	assert_int_equal(m2.len, strlen("{\"continue\":\"x\"}"));
	assert_int_equal(kube_list_split("{\"items\":[]}", 12, &m2, NULL, NULL), 0);
	assert_null(m2.p);
	/* the callback's error stops the split and is returned */
	struct collected c = {.stop_after = 1};
	struct kube_span meta;
	assert_int_equal(kube_list_split("{\"items\":[1,2]}", 15, &meta, collect_item, &c),
			 -EPROTO);
	assert_string_equal(c.text, "1");
}

static void test_backoff(void **state)
{
	(void)state;
	static const struct {
		unsigned min, max, failures;
		uint32_t rnd;
		unsigned want;
	} cases[] = {
	    /* equal jitter: [d/2, d] */
	    {500, 30000, 0, 0, 250},	   {500, 30000, 0, 250, 500},
	    {500, 30000, 0, 251, 250}, /* rnd wraps modulo d/2+1 */
	    {500, 30000, 1, 0, 500},	   {500, 30000, 1, 500, 1000},
	    {500, 30000, 5, 0, 8000},	   {500, 30000, 5, 8000, 16000},
	    {500, 30000, 6, 15000, 30000}, /* capped */
	    {500, 30000, 31, 0, 15000},	   {500, 30000, 1000, 15000, 30000},
	    {500, 1000, 3, 0, 500},	   {1, 1, 9, 7, 1},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		unsigned got =
		    kube_backoff_ms(cases[i].min, cases[i].max, cases[i].failures, cases[i].rnd);
		if (got != cases[i].want)
			fail_msg("min %u max %u failures %u rnd %u: got %u, want %u", cases[i].min,
				 cases[i].max, cases[i].failures, cases[i].rnd, got, cases[i].want);
	}
	/* never above max nor below half of it once capped, whatever rnd is */
	for (uint32_t r = 0; r < 100000; r += 7) {
		unsigned d = kube_backoff_ms(500, 30000, 20, r * 2654435761u);
		assert_in_range(d, 15000, 30000);
	}
}

static void test_escape(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"app=web", "app%3Dweb"},
	    {"app in (a,b),!canary", "app%20in%20%28a%2Cb%29%2C%21canary"},
	    {"k8s.io/name-x_y~", "k8s.io%2Fname-x_y~"},
	    {"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%3D%3D"},
	    {"", ""},
	};
	char out[128];

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		assert_int_equal(kube_query_escape(cases[i].in, out, sizeof(out)),
				 (int)strlen(cases[i].want));
		assert_string_equal(out, cases[i].want);
	}
	assert_int_equal(kube_query_escape("abc", out, 3), -ENOSPC);
	assert_int_equal(kube_query_escape("a=", out, 4), -ENOSPC);
	assert_int_equal(kube_query_escape("a=", out, 5), 4);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(kube_resource_name(KUBE_SERVICES), "services");
	assert_string_equal(kube_resource_name(KUBE_ENDPOINTSLICES), "endpointslices");
	assert_string_equal(kube_resource_name(KUBE_NAMESPACES), "namespaces");
	assert_string_equal(kube_event_type_name(KUBE_EV_BOOKMARK), "BOOKMARK");
	assert_string_equal(kube_event_type_name(KUBE_EV_TYPES), "?");
}

/* Runs the clock from `from` to `to` in steps of `step` ms, answering every
 * probe that is due when `answer` (the server is there), and returns the
 * largest contact age seen. */
static int64_t run_clock(struct kube_contact *c, uint64_t from, uint64_t to, uint64_t step,
			 bool answer, unsigned *probes)
{
	int64_t worst = 0;
	for (uint64_t now = from; now <= to; now += step) {
		if (kube_contact_probe_due(c, now)) {
			(*probes)++;
			c->probing = true;
			if (answer)
				kube_contact_probe_answered(c, now + 3); /* a 3 ms round trip */
			else
				c->probing = false; /* failed at once: refused */
		}
		int64_t age = kube_contact_age_ms(c, now);
		if (age > worst)
			worst = age;
	}
	return worst;
}

/* Freshness on a quiet, healthy cluster, under the test's clock: no byte ever
 * comes on the watches (kube-apiserver sends no bookmark while nothing
 * changes), yet contact never ages past the probe interval, over an hour. A
 * stream that fails ages from its last proof however well the others do; a
 * server that stops answering probes ages every stream. */
/* The index keeps a decimal resourceVersion in its word and anything else as a
 * copy; either compares equal to its text only. */
static void test_rv_pack(void **state)
{
	(void)state;
	static const char *same[] = {"1",   "0",   "40204",	  "999999999999999999",
				     "12a", "007", "opaque-etag", "1234567890123456789"};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		uintptr_t v = kube_rv_pack(same[i]);
		assert_true(v != 0);
		assert_true(kube_rv_same(v, same[i]));
		assert_false(kube_rv_same(v, "2"));
		assert_false(kube_rv_same(v, NULL));
		kube_rv_free(v);
	}
	uintptr_t n = kube_rv_pack("40204");
	assert_true(n & 1); /* in the word: nothing to free */
	assert_false(kube_rv_same(n, "040204"));
	assert_false(kube_rv_same(n, "40205"));
	assert_int_equal(kube_rv_pack(""), 0);
	assert_int_equal(kube_rv_pack(NULL), 0);
	assert_true(kube_rv_same(0, ""));
	assert_false(kube_rv_same(0, "1"));
}

static void test_contact_quiet_cluster(void **state)
{
	(void)state;
	const unsigned probe = 10000; /* --stale-after 30 s, 60 s: 10 s */
	struct kube_contact c;
	unsigned probes = 0;

	kube_contact_init(&c, probe);
	assert_int_equal(kube_contact_age_ms(&c, 5), -1); /* never in contact yet */
	for (unsigned i = 0; i < KUBE_CONTACT_STREAMS; i++) {
		kube_contact_set_open(&c, i, true);
		kube_contact_heard(&c, i, 1000); /* the lists' pages */
	}
	assert_int_equal(kube_contact_age_ms(&c, 1000), 0);
	/* one hour of silence on the watches, the clock moving 250 ms a tick */
	int64_t worst = run_clock(&c, 1000, 3600000, 250, true, &probes);
	assert_true(worst <= (int64_t)probe + 250);
	/* one probe per interval (plus the tick it waits for), no more */
	assert_true(probes >= 3600000 / (probe + 250) - 2 && probes <= 3600000 / probe + 2);

	/* Events on one stream do not hide another's failure. */
	uint64_t now = 3600000;
	kube_contact_set_open(&c, KUBE_ENDPOINTSLICES, false); /* waits to retry */
	uint64_t failed_at = c.ok_ms[KUBE_ENDPOINTSLICES];
	for (now = 3600000; now <= 3660000; now += 250) {
		kube_contact_heard(&c, KUBE_SERVICES, now);
		if (kube_contact_probe_due(&c, now)) {
			c.probing = true;
			kube_contact_probe_answered(&c, now);
		}
	}
	assert_int_equal(kube_contact_age_ms(&c, 3660000), (int64_t)(3660000 - failed_at));
	/* it watches again: its headers are proof */
	kube_contact_set_open(&c, KUBE_ENDPOINTSLICES, true);
	kube_contact_heard(&c, KUBE_ENDPOINTSLICES, 3660000);
	assert_true(kube_contact_age_ms(&c, 3660000) <= (int64_t)probe);

	/* The server stops answering probes (the watches look open but carry
	 * nothing): contact ages without bound, so staleness starts. */
	probes = 0;
	worst = run_clock(&c, 3660000, 3780000, 250, false, &probes);
	assert_true(worst >= 110000);
	assert_true(probes > 100); /* retried on every tick while due */

	/* No probe while one is out, none while every stream waits to retry. */
	kube_contact_init(&c, probe);
	kube_contact_set_open(&c, 0, true);
	assert_true(kube_contact_probe_due(&c, 1));
	c.probing = true;
	assert_false(kube_contact_probe_due(&c, 100000));
	kube_contact_init(&c, probe);
	assert_false(kube_contact_probe_due(&c, 100000));
}

/* An optional resource the server does not serve (ServiceCIDRs before 1.31)
 * is ignored: its stream, never heard, neither keeps the age at -1 nor asks
 * for probes; once served again it counts like the others. */
static void test_contact_ignored_stream(void **state)
{
	(void)state;
	struct kube_contact c;

	kube_contact_init(&c, 1000);
	for (unsigned i = 0; i < KUBE_CONTACT_STREAMS; i++)
		kube_contact_set_open(&c, i, true);
	for (unsigned i = 0; i + 1 < KUBE_CONTACT_STREAMS; i++)
		kube_contact_heard(&c, i, 5000);
	assert_int_equal(kube_contact_age_ms(&c, 5000), -1);
	kube_contact_set_open(&c, KUBE_CONTACT_STREAMS - 1, false);
	kube_contact_set_ignored(&c, KUBE_CONTACT_STREAMS - 1, true);
	assert_int_equal(kube_contact_age_ms(&c, 5200), 200);
	assert_false(kube_contact_probe_due(&c, 5200));
	kube_contact_set_open(&c, KUBE_CONTACT_STREAMS - 1, true);
	assert_false(kube_contact_probe_due(&c, 5300)); /* still ignored: no probe for it */
	kube_contact_set_ignored(&c, KUBE_CONTACT_STREAMS - 1, false);
	assert_int_equal(kube_contact_age_ms(&c, 5300), -1);
	kube_contact_heard(&c, KUBE_CONTACT_STREAMS - 1, 5300);
	assert_int_equal(kube_contact_age_ms(&c, 5400), 400);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines_split_anywhere),
	    cmocka_unit_test(test_lines_cap),
	    cmocka_unit_test(test_lines_callback_stops),
	    cmocka_unit_test(test_list_split),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_contact_quiet_cluster),
	    cmocka_unit_test(test_contact_ignored_stream),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_rv_pack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
