/* Unit tests for the pipeline (daemon/pipeline.h) with a datapath stage that
 * a test controls instead of proxy_apply: a datapath that cannot take a new
 * view keeps the previous snapshot served, the failure is counted and
 * retried with backoff, and the retry publishes once the datapath recovers;
 * a Service the datapath refuses is withheld from DNS until it goes in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/log.h"
#include "daemon/pipeline.h"
#include "discovery/manifest.h"
#include "discovery/model.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/snapshot.h"

#define SVC_FMT                                                                                    \
	"apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n"                \
	"spec: {clusterIP: %s, ports: [{name: http, port: 80, protocol: TCP}]}\n"

/* The stand-in datapath: fails while `fail` is set, and remembers the
 * Services it forwards after each apply that worked. */
struct fake_datapath {
	int fail; /* 0, or the negative errno to return */
	unsigned calls;
	char forwarded[8][32];
	size_t n_forwarded;
	const char *refuse[4]; /* "default/<name>", sorted: refused Services */
	size_t n_refuse;
};

static size_t fake_refused(void *arg, const char *const **keys)
{
	struct fake_datapath *d = arg;
	*keys = d->refuse;
	return d->n_refuse;
}

static int fake_apply(void *arg, struct snapshot *s)
{
	struct fake_datapath *d = arg;
	d->calls++;
	if (d->fail)
		return d->fail;
	d->n_forwarded = 0;
	for (size_t i = 0; i < s->view->n_svcs && i < 8; i++)
		snprintf(d->forwarded[d->n_forwarded++], sizeof(d->forwarded[0]), "%s",
			 s->view->svcs[i].svc->name);
	return 0;
}

struct env {
	uv_loop_t loop;
	struct model_store *store;
	struct model_alloc *alloc;
	struct snapshot_config scfg;
	struct pipeline *p;
	struct fake_datapath dp;
};

/* Replaces the objects of source "svc-<name>" with one Service. */
static void put_service(struct env *e, const char *name, const char *ip)
{
	char text[512], source[64];
	struct manifest_result r = {0};
	snprintf(text, sizeof(text), SVC_FMT, name, ip);
	snprintf(source, sizeof(source), "svc-%s", name);
	assert_int_equal(manifest_decode("svc.yaml", text, strlen(text), &r), 0);
	assert_int_equal(r.n_objs, 1);
	assert_int_equal(model_store_replace(e->store, source, r.objs, r.n_objs), 0);
	r.n_objs = 0;
	manifest_result_free(&r);
}

/* What the served snapshot answers for <name>.default.svc.cluster.local A. */
static int served_rcode(const char *name)
{
	char text[128];
	uint8_t key[256];
	struct zone_result r;
	snprintf(text, sizeof(text), "%s.default.svc.cluster.local", name);
	int len = dname_from_text(text, key, sizeof(key));
	assert_true(len > 0);
	const struct snapshot *s = snapshot_current();
	assert_non_null(s);
	zone_lookup(s, key, (size_t)len, DNS_T_A, &r);
	assert_int_equal(r.kind, ZR_ANSWER);
	return r.ans->rcode;
}

static bool forwarded(const struct fake_datapath *d, const char *name)
{
	for (size_t i = 0; i < d->n_forwarded; i++)
		if (strcmp(d->forwarded[i], name) == 0)
			return true;
	return false;
}

static int setup(void **state)
{
	static struct env e;
	struct net_cidr svc, pod;
	memset(&e, 0, sizeof(e));
	log_set_level(LOG_ERROR);
	assert_int_equal(uv_loop_init(&e.loop), 0);
	assert_int_equal(net_cidr_parse("10.96.0.0/12", &svc), 0);
	assert_int_equal(net_cidr_parse("10.244.0.0/16", &pod), 0);
	e.store = model_store_new();
	e.alloc = model_alloc_new(&svc, &pod);
	assert_non_null(e.store);
	assert_non_null(e.alloc);
	e.scfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "test"};
	struct pipeline_config pc = {
	    .loop = &e.loop,
	    .store = e.store,
	    .alloc = e.alloc,
	    .scfg = &e.scfg,
	    .retry_min_ms = 1,
	    .retry_max_ms = 8,
	    .withheld_min_ms = 2,
	};
	assert_int_equal(pipeline_new(&pc, &e.p), 0);
	pipeline_set_datapath_stage(e.p, fake_apply, &e.dp);
	pipeline_set_datapath_refused(e.p, fake_refused);
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	pipeline_stop(e->p);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	pipeline_free(e->p);
	snapshot_shutdown();
	model_alloc_free(e->alloc);
	model_store_free(e->store);
	return 0;
}

/* Runs the loop until the pipeline has nothing scheduled, or `cond` holds. */
static void run_until(struct env *e, bool (*cond)(struct env *e))
{
	for (int i = 0; i < 10000 && !(cond && cond(e)); i++)
		if (uv_run(&e->loop, UV_RUN_ONCE) == 0)
			break;
}

static bool has_two(struct env *e)
{
	(void)e;
	return snapshot_current() && snapshot_current()->view->n_svcs == 2;
}

static void test_datapath_failure_keeps_previous(void **state)
{
	struct env *e = *state;
	put_service(e, "a", "10.96.0.10");
	assert_int_equal(pipeline_run(e->p), 0);
	const struct snapshot *first = snapshot_current();
	assert_non_null(first);
	uint64_t first_gen = first->generation;
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);
	assert_true(forwarded(&e->dp, "a"));

	/* The datapath cannot take the view holding b: b is not published. */
	e->dp.fail = -ENOMEM;
	put_service(e, "b", "10.96.0.11");
	pipeline_changed(e->p);
	uv_run(&e->loop, UV_RUN_NOWAIT);
	assert_int_equal(e->dp.calls, 2);
	assert_ptr_equal(snapshot_current(), first);
	assert_int_equal(served_rcode("b"), DNS_RCODE_NXDOMAIN);
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 1);
	assert_int_equal(pipeline_failures(e->p, PIPELINE_SNAPSHOT), 0);
	assert_int_equal(pipeline_retry_ms(e->p), 1);

	/* Retries back off, doubling up to the cap, and publish nothing. */
	unsigned want[] = {2, 4, 8, 8};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(pipeline_run(e->p) < 0);
		assert_int_equal(pipeline_retry_ms(e->p), want[i]);
		assert_ptr_equal(snapshot_current(), first);
	}
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 5);
	/* A change during the backoff waits for the retry. */
	pipeline_changed(e->p);
	assert_int_equal(pipeline_retry_ms(e->p), 8);

	/* The datapath recovers: the scheduled retry publishes b, after the
	 * datapath forwards it. */
	e->dp.fail = 0;
	run_until(e, has_two);
	assert_true(has_two(e));
	assert_true(forwarded(&e->dp, "b"));
	assert_int_equal(served_rcode("b"), DNS_RCODE_NOERROR);
	assert_int_equal(pipeline_retry_ms(e->p), 0);
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 5);
	assert_true(snapshot_current()->generation > first_gen);
	snapshot_reclaim();
}

/* Every Service a published snapshot holds was forwarded first. */
static void test_published_means_forwarded(void **state)
{
	struct env *e = *state;
	static const char *const names[] = {"c", "d", "e"};
	for (size_t i = 0; i < 3; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.96.1.%zu", i + 1);
		e->dp.fail = i == 1 ? -ENOMEM : 0;
		put_service(e, names[i], ip);
		pipeline_changed(e->p);
		uv_run(&e->loop, UV_RUN_NOWAIT);
		const struct model_view *v = snapshot_current()->view;
		for (size_t k = 0; k < v->n_svcs; k++)
			assert_true(forwarded(&e->dp, v->svcs[k].svc->name));
	}
	e->dp.fail = 0;
	run_until(e, NULL);
	assert_int_equal(served_rcode("d"), DNS_RCODE_NOERROR);
	assert_int_equal(served_rcode("e"), DNS_RCODE_NOERROR);
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 1);
	snapshot_reclaim();
}

static bool none_withheld(struct env *e)
{
	return pipeline_withheld(e->p, NULL) == 0;
}

/* A Service the datapath refuses has no names (the others keep theirs), its
 * view stays (CHAOS), a retry is scheduled without any change, and the names
 * come back once the datapath takes it; an answered Service whose update is
 * refused is withheld too. */
static void test_refused_withheld(void **state)
{
	struct env *e = *state;
	put_service(e, "a", "10.96.0.10");
	put_service(e, "b", "10.96.0.11");
	e->dp.refuse[0] = "default/b";
	e->dp.n_refuse = 1;
	assert_int_equal(pipeline_run(e->p), 0);
	const struct snapshot *s = snapshot_current();
	assert_int_equal(s->view->n_svcs, 2);
	assert_int_equal(s->n_withheld, 1);
	assert_string_equal(s->withheld[0], "default/b");
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);
	assert_int_equal(served_rcode("b"), DNS_RCODE_NXDOMAIN);
	uint64_t total = 0;
	assert_int_equal(pipeline_withheld(e->p, &total), 1);
	assert_int_equal(total, 1);
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 0);
	unsigned calls = e->dp.calls;

	/* Still refused at the retry: it backs off; then it goes in. */
	assert_int_equal(uv_run(&e->loop, UV_RUN_ONCE), 1);
	assert_true(e->dp.calls > calls);
	assert_int_equal(served_rcode("b"), DNS_RCODE_NXDOMAIN);
	e->dp.n_refuse = 0;
	run_until(e, none_withheld);
	assert_int_equal(snapshot_current()->n_withheld, 0);
	assert_int_equal(served_rcode("b"), DNS_RCODE_NOERROR);
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);

	/* An update of an answered Service refused: withheld as well. */
	e->dp.refuse[0] = "default/a";
	e->dp.n_refuse = 1;
	put_service(e, "a", "10.96.0.12");
	assert_int_equal(pipeline_run(e->p), 0);
	assert_int_equal(served_rcode("a"), DNS_RCODE_NXDOMAIN);
	assert_int_equal(served_rcode("b"), DNS_RCODE_NOERROR);
	e->dp.n_refuse = 0;
	run_until(e, none_withheld);
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);
	snapshot_reclaim();
}

/* Before the first snapshot a failure leaves nothing published. */
static void test_first_run_fails(void **state)
{
	struct env *e = *state;
	put_service(e, "a", "10.96.0.10");
	e->dp.fail = -ENOMEM;
	assert_int_equal(pipeline_run(e->p), -ENOMEM);
	assert_null(snapshot_current());
	assert_int_equal(pipeline_failures(e->p, PIPELINE_DATAPATH), 1);
	e->dp.fail = 0;
	run_until(e, NULL);
	assert_non_null(snapshot_current());
	assert_int_equal(served_rcode("a"), DNS_RCODE_NOERROR);
}

/* The DNS programming latency (daemon/programming.h), with the time given:
 * each trigger time is observed once, at the publish after it was added, by
 * the kind of its Service; a time ahead of the clock counts as 0; a Service
 * the view does not hold is skipped, not guessed. */
static void test_programming_latency(void **state)
{
	(void)state;
	struct service_def {
		const char *name;
		bool headless, selector;
		enum model_svc_type type;
	} defs[] = {
	    {"a-cip", false, true, SVC_CLUSTER_IP},
	    {"b-ext", false, false, SVC_EXTERNAL_NAME},
	    {"c-hl", true, true, SVC_CLUSTER_IP},
	    {"d-raw", true, false, SVC_CLUSTER_IP},
	};
	struct model_service svcs[4];
	struct view_service vs[4];
	struct model_label lab = {"app", "x"};
	for (size_t i = 0; i < 4; i++) {
		svcs[i] = (struct model_service){.ns = "ns",
						 .name = (char *)defs[i].name,
						 .headless = defs[i].headless,
						 .type = defs[i].type,
						 .has_selector = defs[i].selector};
		if (defs[i].selector)
			svcs[i].selector = (struct model_labels){&lab, 1};
		vs[i] = (struct view_service){.svc = &svcs[i]};
	}
	struct model_view v = {.svcs = vs, .n_svcs = 4};
	static const struct {
		const char *svc;
		int64_t at_ms;
		int kind; /* -1: skipped */
		double sec;
	} cases[] = {
	    {"a-cip", 99000, PROG_CLUSTER_IP, 1.0},
	    {"c-hl", 99990, PROG_HEADLESS_SELECTOR, 0.01},
	    {"d-raw", 40000, PROG_HEADLESS_NO_SELECTOR, 60.0},
	    {"c-hl", 200000, PROG_HEADLESS_SELECTOR, 0}, /* ahead of the clock */
	    {"b-ext", 99000, -1, 0},
	    {"gone", 99000, -1, 0},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct programming pg = {0};
	struct kube_trigger *t = calloc(n, sizeof(*t));
	assert_non_null(t);
	for (size_t i = 0; i < n; i++) {
		t[i].at_ms = cases[i].at_ms;
		snprintf(t[i].ns, sizeof(t[i].ns), "ns");
		snprintf(t[i].service, sizeof(t[i].service), "%s", cases[i].svc);
	}
	/* added in two takes (a failed run in between keeps the first) */
	struct kube_trigger *t2 = malloc(2 * sizeof(*t2));
	assert_non_null(t2);
	memcpy(t2, t + n - 2, 2 * sizeof(*t2));
	programming_add(&pg, t, n - 2);
	programming_add(&pg, t2, 2);
	programming_published(&pg, &v, 100000);

	double sum[PROG_N_KINDS] = {0};
	uint64_t count[PROG_N_KINDS] = {0}, skipped = 0;
	for (size_t i = 0; i < n; i++) {
		if (cases[i].kind < 0) {
			skipped++;
			continue;
		}
		count[cases[i].kind]++;
		sum[cases[i].kind] += cases[i].sec;
	}
	for (int k = 0; k < PROG_N_KINDS; k++) {
		uint64_t c = 0;
		for (int b = 0; b <= PROG_N_BOUNDS; b++)
			c += pg.hist[k][b];
		assert_int_equal(c, count[k]);
		assert_true(pg.sum[k] > sum[k] - 1e-9 && pg.sum[k] < sum[k] + 1e-9);
	}
	assert_int_equal(pg.skipped, skipped);
	assert_int_equal(pg.hist[PROG_HEADLESS_SELECTOR][0], 1); /* the clamped one, le=0.001 */
	assert_int_equal(pg.hist[PROG_CLUSTER_IP][10], 1);	 /* 1 s: le=1.024 */
	/* a publish with nothing new observes nothing */
	programming_published(&pg, &v, 200000);
	assert_int_equal(pg.hist[PROG_CLUSTER_IP][10], 1);
	assert_string_equal(programming_kind_name(PROG_HEADLESS_NO_SELECTOR),
			    "headless_without_selector");
	programming_free(&pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_run_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datapath_failure_keeps_previous, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_published_means_forwarded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_withheld, setup, teardown),
	    cmocka_unit_test(test_programming_latency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
