/* Publishing and reclaiming snapshots while readers are inside batches: the
 * protocol step by step on one thread, then reader threads that check every
 * snapshot they are handed while the writer publishes thousands. A freed
 * snapshot that a reader still uses is caught by ASan or TSan, or, in a plain
 * build, by its fields no longer matching its generation. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "wire/wire.h"
#include "zones/snapshot.h"

/* ---- two versions of a one-Service cluster --------------------------------- */

/* Generation g is built from version g % 2: web's ClusterIP is 10.96.0.10 in
 * version 0 and 10.96.0.11 in version 1, so every snapshot's answer tells
 * which generation built it. The views are static (priv NULL): freeing a
 * snapshot frees its copy of the view struct, never these arrays. */
static char *namespaces[] = {"shop"};
static struct model_svc_port web_ports[] = {
    {.name = "http", .port = 80, .proto = PROTO_TCP, .target_num = 8080},
};
static struct model_service svc_web[2];
static struct view_service vsvcs[2][1];
static struct model_view views[2];
static const struct snapshot_config cfg = {
    .zone = "cluster.local", .ttl = 5, .hostname = "testhost"};

static const uint8_t web_key[] = "\3web\4shop\3svc\7cluster\5local";

static void views_init(void)
{
	for (int v = 0; v < 2; v++) {
		svc_web[v] = (struct model_service){.ns = "shop",
						    .name = "web",
						    .n_cluster_ips = 1,
						    .ports = web_ports,
						    .n_ports = 1};
		svc_web[v].cluster_ips[0].family = AF_INET;
		memcpy(svc_web[v].cluster_ips[0].bytes, (uint8_t[]){10, 96, 0, (uint8_t)(10 + v)},
		       4);
		vsvcs[v][0] = (struct view_service){.svc = &svc_web[v]};
		views[v] = (struct model_view){
		    .svcs = vsvcs[v], .n_svcs = 1, .namespaces = namespaces, .n_namespaces = 1};
	}
}

/* Builds the next generation from the current one (incrementally where the
 * builder can, so snapshots share arenas with the ones before them). */
static struct snapshot *build_next(void)
{
	const struct snapshot *prev = snapshot_current();
	uint64_t g = prev ? prev->generation + 1 : 1;
	struct model_view tmp = views[g % 2];
	struct snapshot *s = NULL;
	if (snapshot_build(&cfg, &tmp, prev, &s) < 0)
		return NULL;
	return s;
}

/* The rendered A answer for web, as the first snapshots of each version
 * have it; the readers compare every snapshot's answer with these. */
struct ref_answer {
	uint8_t data[512];
	uint16_t len;
};
static struct ref_answer refs[2];

static int answer_get(const struct snapshot *s, struct ref_answer *out)
{
	struct zone_result r;
	zone_lookup(s, web_key, sizeof(web_key), DNS_T_A, &r);
	if (r.kind != ZR_ANSWER || !r.ans || r.ans->an != 1 || r.ans->len > sizeof(out->data))
		return -1;
	memcpy(out->data, r.ans->data, r.ans->len);
	out->len = r.ans->len;
	return 0;
}

/* 0 when s is intact: its view and its answer are those of its generation. */
static int snapshot_check(const struct snapshot *s)
{
	const struct ref_answer *ref = &refs[s->generation % 2];
	if (!s->view || s->view->svcs != views[s->generation % 2].svcs)
		return -1;
	struct zone_result r;
	zone_lookup(s, web_key, sizeof(web_key), DNS_T_A, &r);
	if (r.kind != ZR_ANSWER || !r.ans || r.ans->len != ref->len ||
	    memcmp(r.ans->data, ref->data, ref->len) != 0)
		return -1;
	return 0;
}

/* Publishes generations 1 and 2 and records their answers. */
static void publish_first_two(void)
{
	for (int i = 0; i < 2; i++) {
		struct snapshot *s = build_next();
		assert_non_null(s);
		assert_int_equal(answer_get(s, &refs[s->generation % 2]), 0);
		snapshot_publish(s);
	}
	/* The two versions' answers differ: a snapshot checked against the
	 * other version's answer would fail. */
	assert_true(refs[0].len != refs[1].len ||
		    memcmp(refs[0].data, refs[1].data, refs[0].len) != 0);
}

static int setup(void **state)
{
	(void)state;
	views_init();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	snapshot_shutdown();
	return 0;
}

/* ---- the protocol, one step at a time ---------------------------------------- */

static void test_protocol_steps(void **state)
{
	(void)state;
	struct snapshot_reader *r1 = snapshot_reader_register();
	assert_non_null(r1);
	publish_first_two();
	/* Generation 1 was retired with no reader inside: already freed. */
	assert_int_equal(snapshot_reclaim(), 0);

	/* A reader inside a batch keeps what it holds and everything retired
	 * while that batch lasts, even snapshots it never saw. */
	const struct snapshot *held = snapshot_enter(r1);
	assert_int_equal(held->generation, 2);
	snapshot_publish(build_next());
	snapshot_publish(build_next());
	assert_int_equal(snapshot_reclaim(), 2);
	assert_int_equal(snapshot_check(held), 0);

	/* A reader registered after those were retired does not hold them. */
	struct snapshot_reader *r2 = snapshot_reader_register();
	assert_non_null(r2);
	const struct snapshot *late = snapshot_enter(r2);
	assert_int_equal(late->generation, 4);
	assert_int_equal(snapshot_reclaim(), 2);

	/* Leaving ends the hold, whatever the reader does next: here it enters
	 * again at once and gets the current generation. */
	snapshot_leave(r1);
	const struct snapshot *again = snapshot_enter(r1);
	assert_int_equal(again->generation, 4);
	assert_int_equal(snapshot_reclaim(), 0);

	/* Both are inside: the next retirement waits for both. */
	snapshot_publish(build_next());
	assert_int_equal(snapshot_reclaim(), 1);
	snapshot_leave(r1);
	assert_int_equal(snapshot_reclaim(), 1);
	snapshot_leave(r2);
	assert_int_equal(snapshot_reclaim(), 0);
	assert_int_equal(snapshot_current()->generation, 5);
}

/* ---- readers and a writer at once --------------------------------------------- */

#define N_READERS     3
#define PUBLISHES     3000
#define RUN_BUDGET_NS (4 * 1000000000ull) /* a slow sanitizer build stops early */
#define DRAIN_EVERY   100
#define DRAIN_MAX_NS  (20 * 1000000000ull)

static atomic_bool g_stop;
static atomic_uint g_started;
/* The newest generation the writer is about to publish: no reader can be
 * handed a newer one. */
static atomic_uint_fast64_t g_published;

struct reader_stats {
	uint64_t batches;
	uint64_t first_gen, last_gen;
	int failed; /* 0, or the line of the first check that failed */
};

static void *reader_main(void *arg)
{
	struct reader_stats *st = arg;
	struct snapshot_reader *r = snapshot_reader_register();
	if (!r) {
		st->failed = __LINE__;
		return NULL;
	}
	bool counted = false;
	while (!atomic_load(&g_stop)) {
		const struct snapshot *s = snapshot_enter(r);
		uint64_t g = s->generation;
		if (g < st->last_gen || g > atomic_load(&g_published)) {
			st->failed = __LINE__;
		} else {
			/* Batches of different lengths; some give the CPU away
			 * while inside, so the writer retires what they hold. */
			unsigned n = 1 + (unsigned)(st->batches % 7);
			for (unsigned i = 0; i < n && !st->failed; i++) {
				if (snapshot_check(s) < 0)
					st->failed = __LINE__;
				if (i == 3)
					sched_yield();
			}
			/* Not freed and reused while the reader was away. */
			if (s->generation != g)
				st->failed = __LINE__;
		}
		snapshot_leave(r);
		if (st->failed)
			break;
		if (!st->first_gen)
			st->first_gen = g;
		st->last_gen = g;
		st->batches++;
		if (!counted) {
			atomic_fetch_add(&g_started, 1);
			counted = true;
		}
	}
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits until every retired snapshot is freed while the readers keep
 * entering and leaving: each reader soon leaves the batch it is in, so this
 * ends unless reclaim waits for more than that batch. Returns 0, or -1 past
 * a bound far beyond any batch. */
static int drain(void)
{
	uint64_t t0 = now_ns();
	while (snapshot_reclaim() != 0) {
		if (now_ns() - t0 > DRAIN_MAX_NS)
			return -1;
		sched_yield();
	}
	return 0;
}

static void test_readers_and_writer(void **state)
{
	(void)state;
	publish_first_two();
	atomic_store(&g_published, snapshot_current()->generation);
	atomic_store(&g_stop, false);
	atomic_store(&g_started, 0);

	pthread_t t[N_READERS];
	struct reader_stats st[N_READERS];
	memset(st, 0, sizeof(st));
	for (int i = 0; i < N_READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &st[i]), 0);
	/* Every reader has been through a batch before publishing starts. */
	uint64_t t0 = now_ns();
	while (atomic_load(&g_started) < N_READERS && now_ns() - t0 < DRAIN_MAX_NS)
		sched_yield();

	unsigned published = 0, deferred = 0, drains = 0;
	bool drain_failed = false, build_failed = false;
	t0 = now_ns();
	while (published < PUBLISHES && now_ns() - t0 < RUN_BUDGET_NS) {
		struct snapshot *s = build_next();
		if (!s) {
			build_failed = true;
			break;
		}
		atomic_store(&g_published, s->generation);
		snapshot_publish(s);
		published++;
		/* publish reclaimed what it could: what is left is held. */
		if (snapshot_reclaim() > 0)
			deferred++;
		if (published % DRAIN_EVERY == 0) {
			if (drain() < 0) {
				drain_failed = true;
				break;
			}
			drains++;
		}
	}
	atomic_store(&g_stop, true);
	for (int i = 0; i < N_READERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	print_message("%u snapshots published, %u retired while held, %u drains\n", published,
		      deferred, drains);
	assert_false(build_failed);
	assert_false(drain_failed);
	for (int i = 0; i < N_READERS; i++) {
		if (st[i].failed)
			fail_msg("reader %d: check at line %d failed", i, st[i].failed);
		assert_true(st[i].batches > 0);
	}
	/* The run was long enough to mean something: many generations, some
	 * retired while readers held them, every reader saw several. */
	assert_true(published >= 2 * DRAIN_EVERY);
	assert_true(drains >= 2);
	assert_true(deferred > 0);
	for (int i = 0; i < N_READERS; i++)
		assert_true(st[i].last_gen > st[i].first_gen);
	/* With the readers gone, every retired snapshot is freed; ASan's leak
	 * check at exit (after snapshot_shutdown frees the current one) sees
	 * any that was not, and a second free of one would be reported. */
	assert_int_equal(snapshot_reclaim(), 0);
	assert_int_equal(snapshot_current()->generation, 2 + published);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_protocol_steps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readers_and_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
