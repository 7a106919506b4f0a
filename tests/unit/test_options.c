/* Unit tests for the option table (daemon/options.h): the table is whole,
 * defaults are those svcdns always had, every time flag takes one duration
 * syntax with its old bare-number unit, errors are one line naming where
 * the value came from, the --config file comes before the command line, and
 * what a reload may apply comes from the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/options.h"
#include "daemon/options_table.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char conf_path[64];

static int setup(void **state)
{
	(void)state;
	unsetenv("KUBERNETES_SERVICE_HOST"); /* no in-cluster source by accident */
	snprintf(conf_path, sizeof(conf_path), "/tmp/svcdns-test-options-XXXXXX");
	int fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(conf_path);
	return 0;
}

static void write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Loads "svcdns --manifests /m ARGS..." (NULL-terminated). */
static int load(struct svcdns_options **o, char *err, size_t cap, ...)
{
	char *argv[64] = {"svcdns", "--manifests", "/m"};
	int argc = 3;
	va_list ap;
	va_start(ap, cap);
	for (char *a; (a = va_arg(ap, char *)) && argc < 63;)
		argv[argc++] = a;
	va_end(ap);
	static char *keep[64];
	memcpy(keep, argv, sizeof(keep)); /* options keep pointing at argv */
	err[0] = '\0';
	*o = NULL;
	return options_load(argc, keep, o, err, cap);
}

static void test_table_is_whole(void **state)
{
	(void)state;
	assert_true(options_count() > 50);
	for (size_t i = 0; i < options_count(); i++) {
		const struct opt_def *d = options_at(i);
		assert_non_null(d->name);
		assert_non_null(d->help);
		bool takes = d->kind != OPT_FLAG && d->kind != OPT_ACTION;
		if (takes != (d->arg != NULL))
			fail_msg("--%s: an argument name exactly when it takes a value", d->name);
		if (d->kind == OPT_DURATION && d->lo > d->hi)
			fail_msg("--%s: empty range", d->name);
		if ((d->flags & OPT_REPEAT) && !d->max_n)
			fail_msg("--%s: repeatable without room", d->name);
		if ((d->flags & OPT_REPEAT) && d->kind != OPT_CUSTOM && !d->count_off)
			fail_msg("--%s: repeatable without a count", d->name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(options_at(k)->name, d->name) == 0)
				fail_msg("--%s twice", d->name);
		assert_ptr_equal(options_find(d->name), d);
	}
	assert_non_null(options_at(0)->section);
}

static void test_defaults(void **state)
{
	(void)state;
	struct svcdns_options *o;
	char err[512];
	assert_int_equal(load(&o, err, sizeof(err), NULL), 0);
	assert_int_equal(o->action, OPTIONS_RUN);
	assert_string_equal(o->manifests, "/m");
	assert_string_equal(o->zone, "cluster.local");
	assert_int_equal(o->ttl, 5);
	assert_int_equal(o->n_listen, 2);
	assert_string_equal(o->listen[0].text, "0.0.0.0:53");
	assert_int_equal(o->tcp_max_conns, 1024);
	assert_int_equal(o->tcp_idle_timeout_ms, 10000);
	assert_int_equal(o->limits.tcp_max_lifetime_ms, 120000);
	assert_int_equal(o->limits.rrl, 0);
	assert_int_equal(o->limits.rrl_slip, 2);
	assert_int_equal(o->node_port_min, 30000);
	assert_int_equal(o->node_port_max, 32767);
	assert_int_equal(o->threads, 0);
	assert_int_equal(o->kube.page_size, 500);
	assert_int_equal(o->kube.timeout_ms, 30000);
	assert_int_equal(o->kube.backoff_max_ms, 30000);
	assert_int_equal(o->fwd.timeout_ms, 2000);
	assert_int_equal(o->fwd.max_concurrent, 1000);
	assert_int_equal(o->fwd.cache_bytes, 32u << 20);
	assert_int_equal(o->fwd.cache_max_ttl, 3600);
	assert_int_equal(o->fwd.cache_max_neg_ttl, 1800);
	assert_int_equal(o->fwd.cache_servfail_ttl, 5);
	assert_int_equal(o->fwd.serve_stale_s, 0);
	assert_int_equal(o->fwd.policy, UPSTREAM_SEQUENTIAL);
	assert_string_equal(o->fwd.resolv_conf, "/etc/resolv.conf");
	assert_false(o->no_prefetch);
	assert_int_equal(o->pcfg.udp_timeout_ms, 30000);
	assert_int_equal(o->pcfg.connect_timeout_ms, 1000);
	assert_int_equal(o->lc.stale_after_s, 60);
	assert_int_equal(o->lc.unready_after_s, 0);
	assert_int_equal(o->lc.lameduck_ms, 5000);
	assert_false(o->lc.compat);
	assert_int_equal(o->log_level, 2); /* info */
	options_free(o);
}

/* One time value: the flag, what is given, and the field it lands in (or -1
 * when it must be refused, with `why` in the message). */
struct dur_case {
	const char *flag, *value;
	size_t off;
	long long want;
	const char *why;
};

#define OFF(field) offsetof(struct svcdns_options, field)

static const struct dur_case dur_cases[] = {
    /* bare numbers keep their old unit */
    {"--api-timeout", "2000", OFF(kube.timeout_ms), 2000},
    {"--stale-after", "2", OFF(lc.stale_after_s), 2},
    {"--udp-timeout", "5", OFF(pcfg.udp_timeout_ms), 5000},
    {"--lameduck", "2", OFF(lc.lameduck_ms), 2000},
    {"--ttl", "30", OFF(ttl), 30},
    {"--tcp-idle-timeout", "300", OFF(tcp_idle_timeout_ms), 300},
    {"--cache-max-ttl", "60", OFF(fwd.cache_max_ttl), 60},
    /* units everywhere */
    {"--api-timeout", "2s", OFF(kube.timeout_ms), 2000},
    {"--api-timeout", "250ms", OFF(kube.timeout_ms), 250},
    {"--api-timeout", "1.5s", OFF(kube.timeout_ms), 1500},
    {"--api-timeout", "1h", OFF(kube.timeout_ms), 3600000},
    {"--stale-after", "2m", OFF(lc.stale_after_s), 120},
    {"--stale-after", "1h", OFF(lc.stale_after_s), 3600},
    {"--lameduck", "500ms", OFF(lc.lameduck_ms), 500},
    {"--lameduck", "0", OFF(lc.lameduck_ms), 0},
    {"--ttl", "5m", OFF(ttl), 300},
    {"--upstream-timeout", "1500ms", OFF(fwd.timeout_ms), 1500},
    {"--udp-timeout", "90s", OFF(pcfg.udp_timeout_ms), 90000},
    {"--tcp-max-lifetime", "0", OFF(limits.tcp_max_lifetime_ms), 0},
    {"--serve-stale", "1h", OFF(fwd.serve_stale_s), 3600},
    {"--unready-after", "0", OFF(lc.unready_after_s), 0},
    /* refused, saying why */
    {"--ttl", "abc", 0, -1, "--ttl abc: expected seconds (a bare number) or a duration"},
    {"--api-timeout", "x", 0, -1, "expected milliseconds (a bare number)"},
    {"--stale-after", "1500ms", 0, -1, "--stale-after 1500ms: expected whole seconds"},
    {"--stale-after", "0", 0, -1, "--stale-after 0: expected a duration from 1s to 24h"},
    {"--api-timeout", "2h", 0, -1, "expected a duration from 1ms to 1h"},
    {"--lameduck", "-1", 0, -1, "expected seconds"},
    {"--lameduck", "5x", 0, -1, "expected seconds"},
    {"--lameduck", "1e3", 0, -1, "expected seconds"},
    {"--lameduck", "1.s", 0, -1, "expected seconds"},
    {"--lameduck", "0x10", 0, -1, "expected seconds"},
    {"--serve-stale", "2d", 0, -1, "expected seconds"},
};

static void test_durations(void **state)
{
	(void)state;
	char err[512];
	for (size_t i = 0; i < N_ELEMS(dur_cases); i++) {
		const struct dur_case *c = &dur_cases[i];
		struct svcdns_options *o;
		int ret = load(&o, err, sizeof(err), (char *)c->flag, (char *)c->value, NULL);
		if (c->want < 0) {
			if (ret != -EINVAL || !strstr(err, c->why))
				fail_msg("%s %s: want refused with \"%s\", got %d \"%s\"", c->flag,
					 c->value, c->why, ret, err);
			continue;
		}
		if (ret != 0)
			fail_msg("%s %s: refused: %s", c->flag, c->value, err);
		unsigned got = *(unsigned *)((char *)o + c->off);
		if ((long long)got != c->want)
			fail_msg("%s %s: got %u, want %lld", c->flag, c->value, got, c->want);
		options_free(o);
	}
}

/* Values of other kinds, and the limits test_rrl.c once held. */
static void test_values(void **state)
{
	(void)state;
	struct svcdns_options *o;
	char err[512];
	assert_int_equal(load(&o, err, sizeof(err), "--rrl", "50", "--rrl-slip", "0", "--listen",
			      "127.0.0.1:5353", "--listen", "[::1]:5353", "--upstream", "none",
			      "--stub-domain", "corp.example=10.0.0.1,10.0.0.2:5353",
			      "--cache-size", "10000", "--policy", "random", "--no-prefetch",
			      "--proxy", "--node-port-range", "31000-31010", "--log-level", "debug",
			      "--metrics-compat", "coredns", "--http", "127.0.0.1:9153",
			      "--allow-transfer", "10.0.0.0/8", "--notify", "192.0.2.1", NULL),
			 0);
	assert_int_equal(o->limits.rrl, 50);
	assert_int_equal(o->limits.rrl_slip, 0);
	assert_int_equal(o->n_listen, 2); /* given: the defaults are not added */
	assert_true(o->fwd.upstream_none);
	assert_int_equal(o->fwd.n_stubs, 1);
	assert_int_equal(o->fwd.stubs[0].n, 2);
	assert_string_equal(o->fwd.stubs[0].domain, "corp.example");
	assert_int_equal(o->fwd.cache_entries, 10000);
	assert_int_equal(o->fwd.cache_bytes, 0);
	assert_int_equal(o->fwd.policy, UPSTREAM_RANDOM);
	assert_true(o->no_prefetch);
	assert_true(o->proxy);
	assert_false(o->proxy_nftables); /* --proxy alone: the user-space datapath */
	assert_int_equal(o->node_port_min, 31000);
	assert_int_equal(o->node_port_max, 31010);
	assert_int_equal(o->log_level, 3);
	assert_true(o->lc.compat);
	assert_string_equal(o->lc.http, "127.0.0.1:9153");
	assert_int_equal(o->n_allow_transfer, 1);
	assert_int_equal(o->n_notify, 1);
	options_free(o);

	static const char *const bad[][3] = {
	    {"--rrl", "1000001", "--rrl 1000001: expected a whole number from 0 to 1000000"},
	    {"--rrl", "-1", "--rrl -1: expected a whole number"},
	    {"--rrl-slip", "x", "--rrl-slip x: expected a whole number from 0 to 100"},
	    {"--threads", "0", "--threads 0: expected a whole number from 1 to 256"},
	    {"--threads", "lots", "--threads lots"},
	    {"--listen", "127.0.0.1:99999", "--listen 127.0.0.1:99999: expected ADDR:PORT"},
	    {"--zone", "a..b", "--zone a..b: not a domain name"},
	    {"--zone-file", "noequals", "--zone-file noequals: expected ORIGIN=FILE"},
	    {"--service-cidr", "10.96.0.0/33", "expected a CIDR"},
	    {"--node-address", "nope", "expected an IP address"},
	    {"--policy", "best", "expected sequential, round_robin or random"},
	    {"--cache-size", "12Q", "expected entries (10000) or a size"},
	    {"--metrics-compat", "prom", "expected coredns or none"},
	    {"--http", "nowhere", "--http nowhere: expected ADDR:PORT"},
	    {"--log-level", "loud", "expected error, warn, info or debug"},
	    {"--node-port-range", "5-3", "expected FIRST-LAST"},
	};
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		int ret = load(&o, err, sizeof(err), (char *)bad[i][0], (char *)bad[i][1], NULL);
		if (ret != -EINVAL || !strstr(err, bad[i][2]))
			fail_msg("%s %s: want \"%s\", got %d \"%s\"", bad[i][0], bad[i][1],
				 bad[i][2], ret, err);
		assert_null(strchr(err, '\n'));
	}
}

static void test_command_line_errors(void **state)
{
	(void)state;
	struct svcdns_options *o;
	char err[512];
	static const struct {
		const char *args[3];
		const char *want;
	} cases[] = {
	    {{"--nope"}, "unrecognized option '--nope'"},
	    {{"-x"}, "unrecognized option '-x'"},
	    {{"--listen"}, "option '--listen' requires a value"},
	    {{"--no-prefetch=1"}, "--no-prefetch takes no value"},
	    {{"--proxy=1"}, "--proxy 1: expected userspace or nftables"},
	    {{"stray"}, "unexpected argument 'stray'"},
	    {{"--context", "x"}, "apply to the Kubernetes API source"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int ret = load(&o, err, sizeof(err), (char *)cases[i].args[0],
			       (char *)cases[i].args[1], NULL);
		if (ret != -EINVAL || !strstr(err, cases[i].want))
			fail_msg("%s: want \"%s\", got %d \"%s\"", cases[i].args[0], cases[i].want,
				 ret, err);
	}
	char *none[] = {"svcdns"};
	assert_int_equal(options_load(1, none, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no data source"));

	/* an action needs nothing else, and wins over a bad value */
	char *help[] = {"svcdns", "-h"};
	assert_int_equal(options_load(2, help, &o, err, sizeof(err)), 0);
	assert_int_equal(o->action, OPTIONS_HELP);
	options_free(o);
	char *man[] = {"svcdns", "--ttl", "abc", "--man"};
	assert_int_equal(options_load(4, man, &o, err, sizeof(err)), 0);
	assert_int_equal(o->action, OPTIONS_MAN);
	options_free(o);
	char *cleanup[] = {"svcdns", "--proxy-cleanup"};
	assert_int_equal(options_load(2, cleanup, &o, err, sizeof(err)), 0);
	assert_int_equal(o->action, OPTIONS_PROXY_CLEANUP);
	options_free(o);

	/* --proxy takes its mode after '=' (alone it stays the user-space one) */
	char *nft[] = {"svcdns", "--manifests", "d", "--proxy=nftables"};
	assert_int_equal(options_load(4, nft, &o, err, sizeof(err)), 0);
	assert_true(o->proxy);
	assert_true(o->proxy_nftables);
	options_free(o);
	char *us[] = {"svcdns", "--manifests", "d", "--proxy=userspace"};
	assert_int_equal(options_load(4, us, &o, err, sizeof(err)), 0);
	assert_true(o->proxy);
	assert_false(o->proxy_nftables);
	options_free(o);
}

static void test_config_file(void **state)
{
	(void)state;
	struct svcdns_options *o;
	char err[512], want[256];
	struct config_line *lines;
	size_t n;

	/* the syntax */
	write_conf("# a comment\n\n  listen 127.0.0.1:5353  \n--zone-file a.org=/x y.zone\n"
		   "ttl=30\nlog-queries\n");
	assert_int_equal(config_read_file(conf_path, &lines, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_string_equal(lines[1].name, "zone-file");
	assert_string_equal(lines[1].value, "a.org=/x y.zone");
	assert_int_equal(lines[2].line, 5);
	assert_string_equal(lines[2].value, "30");
	assert_null(lines[3].value);
	config_lines_free(lines, n);

	/* the file first, then the command line */
	assert_int_equal(load(&o, err, sizeof(err), "--config", conf_path, "--ttl", "7", "--listen",
			      "127.0.0.1:5354", NULL),
			 0);
	assert_int_equal(o->ttl, 7);
	assert_int_equal(o->n_listen, 2);
	assert_string_equal(o->listen[0].text, "127.0.0.1:5353");
	assert_int_equal(o->n_zone_files, 1);
	assert_true(o->lc.log_queries);
	assert_string_equal(o->config, conf_path);
	options_free(o);

	/* an error names the file and the line (after the path) */
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"ttl 5\nttl abc\n", ":2: --ttl abc: expected seconds"},
	    {"ttl 5\n-- 3\n", ":2: expected an option name"},
	    {"config /etc/other\n", ":1: --config cannot name another file"},
	    {"\nno-such-option 1\n", ":2: unrecognized option --no-such-option"},
	    {"listen\n", ":1: --listen requires a value"},
	    {"log-queries yes\n", ":1: --log-queries takes no value"},
	    {"help\n", ":1: --help belongs on the command line"},
	};
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		write_conf(bad[i].text);
		snprintf(want, sizeof(want), "%s%s", conf_path, bad[i].want);
		int ret = load(&o, err, sizeof(err), "--config", conf_path, NULL);
		if (ret != -EINVAL || !strstr(err, want))
			fail_msg("\"%s\": want \"%s\", got %d \"%s\"", bad[i].text, want, ret, err);
	}
	unlink(conf_path);
	assert_int_equal(load(&o, err, sizeof(err), "--config", conf_path, NULL), -ENOENT);
	assert_non_null(strstr(err, conf_path));
}

static void test_reload_rules(void **state)
{
	(void)state;
	static const char *const reloadable[] = {
	    "ttl",	     "zone-file", "metrics-compat", "stale-after",
	    "unready-after", "lameduck",  "log-level",	    "log-queries",
	};
	/* lifecycle.c applies exactly these: marking another one reloadable
	 * needs code there, and this list, to change with it */
	size_t n = 0;
	for (size_t i = 0; i < options_count(); i++) {
		const struct opt_def *d = options_at(i);
		bool listed = false;
		for (size_t k = 0; k < N_ELEMS(reloadable); k++)
			listed |= strcmp(reloadable[k], options_name(d)) == 0;
		if (listed != options_reloadable(d))
			fail_msg("--%s: reloadable %d, lifecycle.c applies it %d", options_name(d),
				 options_reloadable(d), listed);
		n += listed;
	}
	assert_int_equal(n, N_ELEMS(reloadable));

	struct svcdns_options *a, *b;
	char err[512], out[256];
	assert_int_equal(load(&a, err, sizeof(err), "--ttl", "5", "--listen", "127.0.0.1:1", NULL),
			 0);
	assert_int_equal(load(&b, err, sizeof(err), "--ttl", "9", "--lameduck", "1s", "--listen",
			      "127.0.0.1:1", NULL),
			 0);
	assert_int_equal(options_restart_needed(a, b, out, sizeof(out)), 0);
	options_free(b);
	assert_int_equal(load(&b, err, sizeof(err), "--listen", "127.0.0.1:2", "--threads", "2",
			      "--proxy", "--rrl", "0", NULL),
			 0);
	/* --rrl 0 is its default: no change */
	assert_int_equal(options_restart_needed(a, b, out, sizeof(out)), 3);
	assert_string_equal(out, " --listen --threads --proxy");
	options_free(a);
	options_free(b);
}

/* Every option appears in what people read: help, man page, README table. */
static void test_generated_text(void **state)
{
	(void)state;
	void (*print[])(FILE *) = {options_print_help, options_print_man, options_print_markdown};
	for (size_t p = 0; p < N_ELEMS(print); p++) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		assert_non_null(f);
		print[p](f);
		fclose(f);
		for (size_t i = 0; i < options_count(); i++) {
			char want[128], name[64];
			const char *s = options_name(options_at(i));
			if (p == 1) { /* roff: hyphens escaped */
				size_t k = 0;
				for (; *s && k + 3 < sizeof(name); s++)
					k += (size_t)snprintf(name + k, sizeof(name) - k,
							      *s == '-' ? "\\-" : "%c", *s);
				snprintf(want, sizeof(want), "\\-\\-%s", name);
			} else {
				snprintf(want, sizeof(want), "--%s", s);
			}
			if (!strstr(text, want))
				fail_msg("output %zu lacks %s", p, want);
		}
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_is_whole),	cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_durations),		cmocka_unit_test(test_values),
	    cmocka_unit_test(test_command_line_errors), cmocka_unit_test(test_config_file),
	    cmocka_unit_test(test_reload_rules),	cmocka_unit_test(test_generated_text),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
