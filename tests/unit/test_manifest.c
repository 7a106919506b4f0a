/* Unit tests for manifest decoding (YAML/JSON to validated model objects) and
 * the manifest directory source. Most cases are tables: bytes in, what the
 * decoder must yield out; the directory tests drive a real libuv loop. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "common/log.h"
#include "discovery/manifest.h"
#include "discovery/manifest_fields.h"
#include "discovery/model.h"
#include "discovery/yaml2json.h"
#include "tmpdir.h"

/* ---- helpers ---------------------------------------------------------------- */

static const char *fixture(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("SVCDNS_FIXTURES");
	if (dir)
		snprintf(buf, len, "%s/manifest-unit/%s", dir, name);
	else
		snprintf(buf, len, "tests/fixtures/manifest-unit/%s", name);
	return buf;
}

static int decode(const char *path, const char *text, struct manifest_result *r)
{
	return manifest_decode(path, text, strlen(text), r);
}

static const struct model_object *find_obj(const struct manifest_result *r, enum model_kind k,
					   const char *name)
{
	for (size_t i = 0; i < r->n_objs; i++)
		if (r->objs[i].kind == k && strcmp(model_object_name(&r->objs[i]), name) == 0)
			return &r->objs[i];
	return NULL;
}

static const struct model_service *find_svc(const struct manifest_result *r, const char *name)
{
	const struct model_object *o = find_obj(r, KIND_SERVICE, name);
	assert_non_null(o);
	return o->u.svc;
}

static const char *label(const struct model_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return l->items[i].value;
	return NULL;
}

static void assert_addr(const struct net_addr *a, const char *text)
{
	char buf[64];
	net_addr_format(a, buf, sizeof(buf));
	assert_string_equal(buf, text);
}

/* Captures what the module logs while `fn` runs, to check log lines. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	char tmpl[] = "/tmp/svcdns-log-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

/* ---- YAML to JSON ---------------------------------------------------------- */

static void test_yaml_core_schema(void **state)
{
	(void)state;
	static const struct {
		const char *yaml;
		const char *json; /* compact dump of the documents array */
	} cases[] = {
	    {"a: 1", "[{\"a\": 1}]"},
	    {"a: -12\nb: +3\nc: 0x1F\nd: 0o17\ne: 0755",
	     "[{\"a\": -12, \"b\": 3, \"c\": 31, \"d\": 15, \"e\": 755}]"},
	    {"[true, True, TRUE, false, False, FALSE]",
	     "[[true, true, true, false, false, false]]"},
	    {"[~, null, Null, NULL, ]", "[[null, null, null, null]]"},
	    {"a:\nb: ''", "[{\"a\": null, \"b\": \"\"}]"},
	    {"[1.5, .5, 1e3, -2.5E-1]", "[[1.5, 0.5, 1000.0, -0.25]]"},
	    {"[yes, no, on, off, 1_000, 0b1, 1.2.3]",
	     "[[\"yes\", \"no\", \"on\", \"off\", \"1_000\", \"0b1\", \"1.2.3\"]]"},
	    {"['1', \"true\", !!str 7, ! 8, |\n  x\n]", NULL}, /* block scalar in flow: error */
	    {"a: '1'\nb: \"true\"\nc: !!str 7\nd: |\n  x\n",
	     "[{\"a\": \"1\", \"b\": \"true\", \"c\": \"7\", \"d\": \"x\\n\"}]"},
	    {"a: 99999999999999999999", "[{\"a\": 1e20}]"},
	    {"a: .inf", "[{\"a\": \".inf\"}]"},
	    {"1: one\nnull: x\ntrue: y", "[{\"1\": \"one\", \"null\": \"x\", \"true\": \"y\"}]"},
	    {"---\n---\na: 1\n...\n---\n# only a comment\n---\n- 2\n", "[{\"a\": 1}, [2]]"},
	    {"", "[]"},
	    {"a: &x {b: 1}\nc: *x\nd:\n  <<: *x\n  e: 2\n",
	     "[{\"a\": {\"b\": 1}, \"c\": {\"b\": 1}, \"d\": {\"e\": 2, \"b\": 1}}]"},
	    {"a: &x {b: 1}\nd:\n  b: 5\n  <<: *x\n", "[{\"a\": {\"b\": 1}, \"d\": {\"b\": 5}}]"},
	    {"a: 1\na: 2", NULL},   /* duplicate key */
	    {"? [a]\n: 1", NULL},   /* non-scalar key */
	    {"a: *nope", NULL},	    /* unknown anchor */
	    {"a: \"x\\0y\"", NULL}, /* NUL inside a string */
	    {"a: [1, 2", NULL},	    /* truncated */
	    {"a: \xff\xfe", NULL},  /* invalid UTF-8 */
	    {"a: b: c", NULL},
	    {"&a [*a]", NULL}, /* an alias inside its own anchor */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *docs = (json_t *)1;
		char err[256] = "";
		int rc = yaml_to_json_docs(cases[i].yaml, strlen(cases[i].yaml), &docs, err,
					   sizeof(err));
		if (!cases[i].json) {
			if (rc != -EINVAL)
				fail_msg("case %zu (%s): expected -EINVAL, got %d", i,
					 cases[i].yaml, rc);
			assert_null(docs);
			assert_true(strlen(err) > 0);
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu (%s): %s", i, cases[i].yaml, err);
		char *dump = json_dumps(docs, JSON_ENCODE_ANY | JSON_COMPACT);
		/* JSON_COMPACT drops the spaces after ',' and ':'; compare
		 * without whitespace on either side */
		char want[512], got[512];
		size_t w = 0, g = 0;
		for (const char *p = cases[i].json; *p && w + 1 < sizeof(want); p++)
			if (*p != ' ')
				want[w++] = *p;
		for (const char *p = dump; *p && g + 1 < sizeof(got); p++)
			if (*p != ' ')
				got[g++] = *p;
		want[w] = got[g] = '\0';
		free(dump);
		json_decref(docs);
		if (strcmp(want, got) != 0)
			fail_msg("case %zu (%s): want %s, got %s", i, cases[i].yaml, want, got);
	}
}

static void test_yaml_error_position(void **state)
{
	(void)state;
	const char *y = "a: 1\nb:\n  c: 2\n  c: 3\n";
	json_t *docs;
	char err[256];
	assert_int_equal(yaml_to_json_docs(y, strlen(y), &docs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 4 column 3"));
	assert_non_null(strstr(err, "duplicate key \"c\""));
}

static void test_yaml_alias_bomb(void **state)
{
	(void)state;
	const char *bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
			   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
			   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
			   "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
			   "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
	json_t *docs;
	char err[256];
	struct timespec t0, t1;
	/* CPU time, not wall time: a loaded machine must not fail the test. An
	 * unbounded expansion would take minutes (9^9 nodes); the bound is
	 * generous. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	assert_int_equal(yaml_to_json_docs(bomb, strlen(bomb), &docs, err, sizeof(err)), -EINVAL);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	assert_non_null(strstr(err, "alias bomb"));
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 5.0);

	/* the same through the manifest decoder: the file is refused */
	struct manifest_result r;
	assert_int_equal(decode("bomb.yaml", bomb, &r), -EINVAL);
	assert_int_equal(r.n_objs, 0);

	/* a few legitimate aliases are fine */
	const char *ok =
	    "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
	    "spec:\n  selector: &sel {app: a}\n  ports: [{port: 80}]\n"
	    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: a}\n";
	assert_int_equal(decode("ok.yaml", ok, &r), 0);
	assert_int_equal(r.n_objs, 2);
	manifest_result_free(&r);
}

static void test_yaml_deep_nesting(void **state)
{
	(void)state;
	char buf[4096];
	size_t n = 0;
	n += (size_t)snprintf(buf, sizeof(buf), "apiVersion: v1\nkind: Service\nx: ");
	for (int i = 0; i < 100; i++)
		buf[n++] = '[';
	for (int i = 0; i < 100; i++)
		buf[n++] = ']';
	buf[n] = '\0';
	json_t *docs;
	char err[256];
	assert_int_equal(yaml_to_json_docs(buf, n, &docs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nesting deeper"));
	struct manifest_result r;
	assert_int_equal(manifest_decode("deep.yaml", buf, n, &r), -EINVAL);

	/* 60 levels are allowed */
	n = 0;
	for (int i = 0; i < 60; i++)
		buf[n++] = '[';
	for (int i = 0; i < 60; i++)
		buf[n++] = ']';
	buf[n] = '\0';
	assert_int_equal(yaml_to_json_docs(buf, n, &docs, err, sizeof(err)), 0);
	json_decref(docs);

	/* an alias may not smuggle depth past the limit either */
	n = 0;
	n += (size_t)snprintf(buf, sizeof(buf), "a: &a ");
	for (int i = 0; i < 40; i++)
		buf[n++] = '[';
	for (int i = 0; i < 40; i++)
		buf[n++] = ']';
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\nb: ");
	for (int i = 0; i < 40; i++)
		buf[n++] = '[';
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "*a");
	for (int i = 0; i < 40; i++)
		buf[n++] = ']';
	buf[n] = '\0';
	assert_int_equal(yaml_to_json_docs(buf, n, &docs, err, sizeof(err)), -EINVAL);
}

/* ---- the article's examples ------------------------------------------------ */

static void test_article(void **state)
{
	(void)state;
	char path[512];
	struct manifest_result r;
	assert_int_equal(manifest_read_file(fixture("article.yaml", path, sizeof(path)), &r), 0);
	assert_int_equal(r.n_objs, 2);
	assert_int_equal(r.n_invalid, 0);

	const struct model_service *s = find_svc(&r, "my-service");
	assert_string_equal(s->ns, "default");
	assert_int_equal(s->type, SVC_CLUSTER_IP);
	assert_false(s->headless);
	assert_int_equal(s->n_cluster_ips, 0); /* allocated later */
	assert_null(s->external_name);
	assert_true(s->has_selector);
	assert_int_equal(s->selector.n, 1);
	assert_string_equal(label(&s->selector, "app"), "my-app");
	assert_int_equal(s->n_ports, 1);
	assert_string_equal(s->ports[0].name, "");
	assert_int_equal(s->ports[0].port, 80);
	assert_int_equal(s->ports[0].proto, PROTO_TCP);
	assert_int_equal(s->ports[0].target_num, 8080);
	assert_null(s->ports[0].target_name);
	assert_int_equal(s->ports[0].node_port, 0);
	assert_false(s->publish_not_ready);
	assert_false(s->affinity_client_ip);
	assert_int_equal(s->affinity_timeout, 10800);

	/* the article's Pod has no name: it is named after the file */
	const struct model_object *o = find_obj(&r, KIND_POD, "article-1");
	assert_non_null(o);
	const struct model_pod *p = o->u.pod;
	assert_true(p->name_generated);
	assert_string_equal(p->ns, "default");
	assert_string_equal(label(&p->labels, "app"), "my-app");
	assert_int_equal(p->n_ports, 1);
	assert_int_equal(p->ports[0].port, 8080);
	assert_int_equal(p->ports[0].proto, PROTO_TCP);
	assert_null(p->ports[0].name);
	assert_false(p->has_status);
	assert_int_equal(p->n_ips, 0);
	assert_false(p->terminal);
	assert_false(p->terminating);
	manifest_result_free(&r);
}

/* The article's fragments, completed into objects the way a reader would. */
static void test_article_fragments(void **state)
{
	(void)state;
	struct manifest_result r;
	const char *text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: np\nspec:\n"
			   "  type: NodePort\n"
			   "  ports:\n"
			   "    - port: 80\n"
			   "      targetPort: 8080\n"
			   "      nodePort: 30080\n"
			   "---\n"
			   "apiVersion: v1\nkind: Service\nmetadata:\n  name: multi\nspec:\n"
			   "  selector:\n    app: a\n"
			   "  ports:\n"
			   "    - name: http\n"
			   "      port: 80\n"
			   "      targetPort: 8080\n"
			   "    - name: metrics\n"
			   "      port: 9110\n"
			   "      targetPort: 9110\n"
			   "---\n"
			   "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\nspec:\n"
			   "  ports: [{port: 80}]\n"
			   "  # Service B\n"
			   "  selector:\n"
			   "    app: b\n";
	assert_int_equal(decode("fragments.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 3);
	const struct model_service *np = find_svc(&r, "np");
	assert_int_equal(np->type, SVC_NODE_PORT);
	assert_false(np->has_selector);
	assert_int_equal(np->ports[0].node_port, 30080);
	assert_int_equal(np->ports[0].target_num, 8080);
	const struct model_service *m = find_svc(&r, "multi");
	assert_int_equal(m->n_ports, 2);
	assert_string_equal(m->ports[0].name, "http");
	assert_string_equal(m->ports[1].name, "metrics");
	assert_int_equal(m->ports[1].port, 9110);
	assert_int_equal(m->ports[1].target_num, 9110);
	assert_string_equal(label(&find_svc(&r, "b")->selector, "app"), "b");
	manifest_result_free(&r);

	/* the bare fragment (no kind) is an invalid object, not a broken file */
	assert_int_equal(decode("frag.yaml", "type: NodePort\nports:\n  - port: 80\n", &r), 0);
	assert_int_equal(r.n_objs, 0);
	assert_int_equal(r.n_invalid, 1);
	assert_int_equal(r.n_rejected, 0);
	manifest_result_free(&r);
}

static const char SELECTOR_LIST[] = "apiVersion: v1\n"
				    "kind: Service\n"
				    "metadata:\n"
				    "  name: bad\n"
				    "spec:\n"
				    "  selector:\n"
				    "    app: [a, b]\n"
				    "  ports:\n"
				    "    - port: 80\n"
				    "---\n"
				    "apiVersion: v1\n"
				    "kind: Service\n"
				    "metadata:\n"
				    "  name: good\n"
				    "spec:\n"
				    "  selector:\n"
				    "    app: a\n"
				    "  ports:\n"
				    "    - port: 80\n";

static void decode_selector_list(void *arg)
{
	struct manifest_result *r = arg;
	assert_int_equal(decode("demo.yaml", SELECTOR_LIST, r), 0);
}

static void test_selector_list_rejected(void **state)
{
	(void)state;
	struct manifest_result r;
	enum log_level lvl = log_get_level();
	log_set_level(LOG_INFO);
	char *log = capture_stderr(decode_selector_list, &r);
	log_set_level(lvl);
	assert_int_equal(r.n_objs, 1);
	assert_int_equal(r.n_invalid, 1);
	assert_non_null(find_svc(&r, "good"));
	assert_int_equal(r.n_rejected, 1);
	assert_int_equal(r.rejected[0].kind, KIND_SERVICE);
	assert_string_equal(r.rejected[0].ns, "default");
	assert_string_equal(r.rejected[0].name, "bad");
	assert_non_null(strstr(log, "manifest demo.yaml: Service default/bad: spec.selector.app: "
				    "value must be a string, got array: a Service selects one "
				    "group of Pods (plain key=value pairs)"));
	/* one line for the one problem */
	size_t lines = 0;
	for (const char *p = log; (p = strstr(p, "default/bad")); p++)
		lines++;
	assert_int_equal(lines, 1);
	free(log);
	manifest_result_free(&r);
}

/* ---- invalid objects: each one rejected, the rest of the file kept ---------- */

#define SVC_HEAD(name) "apiVersion: v1\nkind: Service\nmetadata:\n  name: " name "\nspec:\n"
#define MCS_API	       "multicluster.x-k8s.io/v1alpha1"
#define IMP_HEAD       "apiVersion: " MCS_API "\nkind: ServiceImport\nmetadata: {name: x}\nspec:\n"
#define SLICE_HEAD                                                                                 \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s1\n"            \
	"  labels:\n    kubernetes.io/service-name: web\n"
#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n"

static const struct invalid_case {
	const char *what;
	const char *yaml;
	bool named; /* appears in rejected[] */
} invalid_cases[] = {
    {"ServiceImport of an unknown type", IMP_HEAD "  type: ClusterIP\n", true},
    {"ServiceImport without spec",
     "apiVersion: " MCS_API "\nkind: ServiceImport\n"
     "metadata: {name: x}\n",
     true},
    {"ServiceImport with two IPv4 IPs",
     IMP_HEAD "  type: ClusterSetIP\n  ips: [10.0.0.1, "
	      "10.0.0.2]\n",
     true},
    {"Headless ServiceImport with an IP", IMP_HEAD "  type: Headless\n  ips: [10.0.0.1]\n", true},
    {"ServiceImport IP not an address", IMP_HEAD "  type: ClusterSetIP\n  ips: [ten]\n", true},
    {"ServiceImport port 0", IMP_HEAD "  type: Headless\n  ports: [{port: 0}]\n", true},
    {"port 0", SVC_HEAD("x") "  ports: [{port: 0}]\n", true},
    {"port 70000", SVC_HEAD("x") "  ports: [{port: 70000}]\n", true},
    {"port as string", SVC_HEAD("x") "  ports: [{port: \"80\"}]\n", true},
    {"port as float", SVC_HEAD("x") "  ports: [{port: 80.5}]\n", true},
    {"port missing", SVC_HEAD("x") "  ports: [{name: a}]\n", true},
    {"no ports", SVC_HEAD("x") "  selector: {app: a}\n", true},
    {"protocol lowercase", SVC_HEAD("x") "  ports: [{port: 80, protocol: tcp}]\n", true},
    {"unnamed port among several", SVC_HEAD("x") "  ports: [{name: a, port: 80}, {port: 81}]\n",
     true},
    {"duplicate port name", SVC_HEAD("x") "  ports: [{name: a, port: 80}, {name: a, port: 81}]\n",
     true},
    {"port name uppercase", SVC_HEAD("x") "  ports: [{name: HTTP, port: 80}]\n", true},
    {"duplicate port+protocol",
     SVC_HEAD("x") "  ports: [{name: a, port: 80}, {name: b, port: 80}]\n", true},
    {"targetPort bad name", SVC_HEAD("x") "  ports: [{port: 80, targetPort: Http_x}]\n", true},
    {"targetPort name too long",
     SVC_HEAD("x") "  ports: [{port: 80, targetPort: abcdefghijklmnop}]\n", true},
    {"targetPort 70000", SVC_HEAD("x") "  ports: [{port: 80, targetPort: 70000}]\n", true},
    {"targetPort \"70000\"", SVC_HEAD("x") "  ports: [{port: 80, targetPort: \"70000\"}]\n", true},
    {"targetPort list", SVC_HEAD("x") "  ports: [{port: 80, targetPort: [1]}]\n", true},
    {"nodePort on ClusterIP", SVC_HEAD("x") "  ports: [{port: 80, nodePort: 30080}]\n", true},
    {"nodePort out of range",
     SVC_HEAD("x") "  type: NodePort\n  ports: [{port: 80, nodePort: 70000}]\n", true},
    {"nodePort duplicate",
     SVC_HEAD("x") "  type: NodePort\n  ports: [{name: a, port: 80, nodePort: 30001}, {name: b, "
		   "port: 81, nodePort: 30001}]\n",
     true},
    {"type unknown", SVC_HEAD("x") "  type: Internal\n  ports: [{port: 80}]\n", true},
    {"name uppercase", SVC_HEAD("My-Svc") "  ports: [{port: 80}]\n", true},
    {"name starts with digit", SVC_HEAD("1abc") "  ports: [{port: 80}]\n", true},
    {"name too long",
     SVC_HEAD("a234567890123456789012345678901234567890123456789012345678901234") "  ports: "
										  "[{port: 80}]\n",
     true},
    {"no name", "apiVersion: v1\nkind: Service\nmetadata: {}\nspec:\n  ports: [{port: 80}]\n",
     false},
    {"name not a string",
     "apiVersion: v1\nkind: Service\nmetadata: {name: [a]}\nspec:\n  ports: [{port: 80}]\n", false},
    {"bad namespace",
     "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: Bad_NS}\nspec:\n  ports: "
     "[{port: 80}]\n",
     true},
    {"wrong apiVersion",
     "apiVersion: apps/v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n",
     true},
    {"no apiVersion", "kind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n", true},
    {"no kind", "apiVersion: v1\nmetadata: {name: x}\n", false},
    {"no spec", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", true},
    {"clusterIP not an IP", SVC_HEAD("x") "  clusterIP: 10.0.0\n  ports: [{port: 80}]\n", true},
    {"clusterIPs same family",
     SVC_HEAD("x") "  clusterIPs: [10.0.0.1, 10.0.0.2]\n  ports: [{port: 80}]\n", true},
    {"clusterIPs three",
     SVC_HEAD("x") "  clusterIPs: [10.0.0.1, fd00::1, 10.0.0.2]\n  ports: [{port: 80}]\n", true},
    {"clusterIPs[0] differs",
     SVC_HEAD("x") "  clusterIP: 10.0.0.1\n  clusterIPs: [10.0.0.2]\n  ports: [{port: 80}]\n",
     true},
    {"headless NodePort",
     SVC_HEAD("x") "  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n", true},
    {"ExternalName without name", SVC_HEAD("x") "  type: ExternalName\n", true},
    {"ExternalName invalid", SVC_HEAD("x") "  type: ExternalName\n  externalName: -bad..example\n",
     true},
    {"ExternalName with clusterIP",
     SVC_HEAD("x") "  type: ExternalName\n  externalName: a.example\n  clusterIP: 10.0.0.1\n",
     true},
    {"selector number", SVC_HEAD("x") "  selector: {app: 1}\n  ports: [{port: 80}]\n", true},
    {"selector bool", SVC_HEAD("x") "  selector: {app: true}\n  ports: [{port: 80}]\n", true},
    {"selector object", SVC_HEAD("x") "  selector: {app: {a: b}}\n  ports: [{port: 80}]\n", true},
    {"selector list", SVC_HEAD("x") "  selector: [app]\n  ports: [{port: 80}]\n", true},
    {"selector bad value", SVC_HEAD("x") "  selector: {app: \"a b\"}\n  ports: [{port: 80}]\n",
     true},
    {"label not a string",
     "apiVersion: v1\nkind: Service\nmetadata: {name: x, labels: {v: 1.0}}\nspec:\n  ports: "
     "[{port: 80}]\n",
     true},
    {"publishNotReadyAddresses string",
     SVC_HEAD("x") "  publishNotReadyAddresses: \"true\"\n  ports: [{port: 80}]\n", true},
    {"sessionAffinity unknown", SVC_HEAD("x") "  sessionAffinity: Cookie\n  ports: [{port: 80}]\n",
     true},
    {"affinity timeout 0",
     SVC_HEAD("x") "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: "
		   "{timeoutSeconds: 0}}\n  ports: [{port: 80}]\n",
     true},
    {"ports not a list", SVC_HEAD("x") "  ports: {port: 80}\n", true},
    {"externalIP not an address", SVC_HEAD("x") "  externalIPs: [1.2.3]\n  ports: [{port: 80}]\n",
     true},
    {"ingress ip not an address",
     SVC_HEAD("x") "  type: LoadBalancer\n  ports: [{port: 80}]\nstatus: {loadBalancer: "
		   "{ingress: [{ip: lb.example.com}]}}\n",
     true},
    {"externalTrafficPolicy unknown",
     SVC_HEAD("x") "  externalTrafficPolicy: Node\n  ports: [{port: 80}]\n", true},
    {"slice bad addressType", SLICE_HEAD "addressType: IPv5\n", true},
    {"slice no addressType", SLICE_HEAD "endpoints: []\n", true},
    {"slice wrong apiVersion",
     "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata:\n  name: s1\n  labels: "
     "{kubernetes.io/service-name: web}\naddressType: IPv4\n",
     true},
    {"slice port 0", SLICE_HEAD "addressType: IPv4\nports: [{port: 0}]\n", true},
    {"pod bad podIP", POD_HEAD "status: {podIP: 10.0.0.300}\n", true},
    {"pod containerPort 0",
     POD_HEAD "spec:\n  containers: [{name: c, ports: [{containerPort: 0}]}]\n", true},
    {"pod port name too long",
     POD_HEAD
     "spec:\n  containers: [{name: c, ports: [{containerPort: 80, name: abcdefghijklmnop}]}]\n",
     true},
    {"pod label list", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  labels: {app: [a]}\n",
     true},
    {"pod bad hostname", POD_HEAD "spec: {hostname: a.b}\n", true},
    {"pod podIPs same family", POD_HEAD "status: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}\n",
     true},
    {"pod name invalid", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Pod}\n", true},
    {"namespace bad name", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n", true},
    {"not an object in a List", "apiVersion: v1\nkind: List\nitems: [42]\n", false},
};

static const char GOOD_SVC[] = SVC_HEAD("good") "  selector: {app: a}\n  ports: [{port: 80}]\n";

static void test_invalid_objects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const struct invalid_case *c = &invalid_cases[i];
		char text[2048];
		struct manifest_result r;
		/* valid objects on both sides: they must survive */
		snprintf(text, sizeof(text), "%s---\n%s---\n%s", GOOD_SVC, c->yaml,
			 "apiVersion: v1\nkind: Namespace\nmetadata: {name: after}\n");
		int rc = decode("invalid.yaml", text, &r);
		if (rc != 0 || r.n_invalid != 1 || r.n_objs != 2)
			fail_msg("case \"%s\": rc %d, %zu objects, %zu invalid", c->what, rc,
				 r.n_objs, r.n_invalid);
		assert_non_null(find_obj(&r, KIND_SERVICE, "good"));
		assert_non_null(find_obj(&r, KIND_NAMESPACE, "after"));
		if (r.n_rejected != (c->named ? 1u : 0u))
			fail_msg("case \"%s\": %zu rejected identities", c->what, r.n_rejected);
		manifest_result_free(&r);

		/* the object alone through the API entry point is invalid too */
		json_t *docs;
		char err[256];
		struct model_object o;
		assert_int_equal(
		    yaml_to_json_docs(c->yaml, strlen(c->yaml), &docs, err, sizeof(err)), 0);
		json_t *obj = json_array_get(docs, 0);
		if (json_is_array(json_object_get(obj, "items")))
			obj = json_array_get(json_object_get(obj, "items"), 0);
		if (manifest_decode_object("test", obj, &o) >= 0)
			fail_msg("case \"%s\": accepted by manifest_decode_object", c->what);
		json_decref(docs);
	}
}

/* ---- valid variants ---------------------------------------------------------- */

static void test_service_variants(void **state)
{
	(void)state;
	struct manifest_result r;
	const char *text = SVC_HEAD(
	    "named-target") "  ports:\n"
			    "  - {name: http, port: 80, targetPort: http-alt}\n"
			    "  - {name: dns, port: 53, protocol: UDP, targetPort: \"5353\"}\n"
			    "  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 0}\n"
			    "---\n" SVC_HEAD(
				"dual") "  clusterIP: 10.96.0.10\n"
					"  clusterIPs: [10.96.0.10, \"fd00::a\"]\n"
					"  ports: [{port: 53, protocol: UDP}]\n"
					"---\n" SVC_HEAD(
					    "v6only") "  clusterIPs: [\"fd00::b\"]\n  ports: "
						      "[{port: 80}]\n"
						      "---\n" SVC_HEAD(
							  "headless") "  clusterIP: None\n  "
								      "selector: {app: db}\n"
								      "  publishNotReadyAddresses: "
								      "true\n"
								      "---\n" SVC_HEAD(
									  "ext") "  type: "
										 "ExternalName\n  "
										 "externalName: "
										 "DB.Example.COM.\n"
										 "---\n" SVC_HEAD(
										     "lb") "  "
											   "type: "
											   "LoadBal"
											   "ancer\n"
											   "  "
											   "session"
											   "Affinit"
											   "y: "
											   "ClientI"
											   "P\n"
											   "  "
											   "session"
											   "Affinit"
											   "yConfig"
											   ": "
											   "{client"
											   "IP: "
											   "{timeou"
											   "tSecond"
											   "s: "
											   "60}}\n"
											   "  "
											   "ports:"
											   "\n  - "
											   "{name: "
											   "a, "
											   "port: "
											   "53, "
											   "protoco"
											   "l: "
											   "TCP, "
											   "nodePor"
											   "t: "
											   "30053}"
											   "\n"
											   "  - "
											   "{name: "
											   "b, "
											   "port: "
											   "53, "
											   "protoco"
											   "l: "
											   "UDP, "
											   "nodePor"
											   "t: "
											   "30053}"
											   "\n"
											   "  - "
											   "{name: "
											   "c, "
											   "port: "
											   "54, "
											   "protoco"
											   "l: "
											   "SCTP}\n"
											   "---"
											   "\n" SVC_HEAD(
											       "emp"
											       "ty-"
											       "se"
											       "l") "  selector: {}\n  ports: [{port: 1}]\n"
												    "---\napiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: kube-system}\n"
												    "spec: {ports: [{port: 65535}]}\n";
	assert_int_equal(decode("variants.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 8);

	const struct model_service *s = find_svc(&r, "named-target");
	assert_int_equal(s->n_ports, 3);
	assert_string_equal(s->ports[0].target_name, "http-alt");
	assert_int_equal(s->ports[0].target_num, 0);
	assert_null(s->ports[1].target_name);
	assert_int_equal(s->ports[1].target_num, 5353);
	assert_int_equal(s->ports[1].proto, PROTO_UDP);
	assert_int_equal(s->ports[2].target_num, 53);

	s = find_svc(&r, "dual");
	assert_int_equal(s->n_cluster_ips, 2);
	assert_addr(&s->cluster_ips[0], "10.96.0.10");
	assert_addr(&s->cluster_ips[1], "fd00::a");
	assert_false(s->cluster_ip_allocated);
	s = find_svc(&r, "v6only");
	assert_int_equal(s->n_cluster_ips, 1);
	assert_addr(&s->cluster_ips[0], "fd00::b");

	s = find_svc(&r, "headless");
	assert_true(s->headless);
	assert_int_equal(s->n_cluster_ips, 0);
	assert_int_equal(s->n_ports, 0);
	assert_true(s->publish_not_ready);

	s = find_svc(&r, "ext");
	assert_int_equal(s->type, SVC_EXTERNAL_NAME);
	assert_string_equal(s->external_name, "db.example.com");
	assert_false(s->has_selector);

	s = find_svc(&r, "lb");
	assert_int_equal(s->type, SVC_LOAD_BALANCER);
	assert_true(s->affinity_client_ip);
	assert_int_equal(s->affinity_timeout, 60);
	assert_int_equal(s->ports[0].node_port, 30053);
	assert_int_equal(s->ports[1].node_port, 30053);
	assert_int_equal(s->ports[2].proto, PROTO_SCTP);

	s = find_svc(&r, "empty-sel");
	assert_true(s->has_selector);
	assert_int_equal(s->selector.n, 0);
	s = find_svc(&r, "other");
	assert_string_equal(s->ns, "kube-system");
	assert_int_equal(s->ports[0].port, 65535);
	manifest_result_free(&r);
}

/* One unusable endpoint never hides its neighbours: only it is dropped (one
 * log line each), whatever is wrong with it. A slice without the Service label
 * is valid and belongs to no Service. Addresses with leading zeros are read as
 * the API server reads them. */
static void test_slice_endpoint_dropped(void **state)
{
	(void)state;
	static const char *const bad_eps[] = {
	    "{addresses: [\"fd00::1\"]}",
	    "{addresses: [10.1.2]}",
	    "{conditions: {ready: true}}",
	    "{addresses: [10.0.0.1], hostname: A_B}",
	    "{addresses: [10.0.0.9], conditions: {ready: \"yes\"}}",
	    "{addresses: [10.0.0.256]}",
	    "42",
	};
	for (size_t i = 0; i < sizeof(bad_eps) / sizeof(bad_eps[0]); i++) {
		char text[1024];
		struct manifest_result r;
		snprintf(text, sizeof(text),
			 SLICE_HEAD "addressType: IPv4\nendpoints:\n- {addresses: [10.244.07.5]}\n"
				    "- %s\n- {addresses: [10.244.7.6]}\n",
			 bad_eps[i]);
		assert_int_equal(decode("drop.yaml", text, &r), 0);
		if (r.n_invalid != 0 || r.n_objs != 1)
			fail_msg("endpoint %s: %zu invalid, %zu objects", bad_eps[i], r.n_invalid,
				 r.n_objs);
		const struct model_slice *sl = r.objs[0].u.slice;
		if (sl->n_endpoints != 2)
			fail_msg("endpoint %s: %u endpoints kept, want 2", bad_eps[i],
				 (unsigned)sl->n_endpoints);
		const uint8_t want0[4] = {10, 244, 7, 5}, want1[4] = {10, 244, 7, 6};
		assert_memory_equal(sl->endpoints[0].addrs[0].bytes, want0, 4);
		assert_memory_equal(sl->endpoints[1].addrs[0].bytes, want1, 4);
		manifest_result_free(&r);
	}

	struct manifest_result r;
	assert_int_equal(
	    decode("nolabel.yaml",
		   "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
		   "s1}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\n",
		   &r),
	    0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 1);
	assert_null(r.objs[0].u.slice->service);
	manifest_result_free(&r);

	/* nodePorts: whatever the API server's range gave (any port) */
	assert_int_equal(
	    decode("np.yaml",
		   SVC_HEAD("x") "  type: NodePort\n  clusterIP: 10.96.05.77\n  ports: "
				 "[{name: a, port: 80, nodePort: 35000}, {name: b, "
				 "port: 81, nodePort: 20001}]\n",
		   &r),
	    0);
	assert_int_equal(r.n_invalid, 0);
	const struct model_service *sv = find_obj(&r, KIND_SERVICE, "x")->u.svc;
	assert_int_equal(sv->ports[0].node_port, 35000);
	assert_int_equal(sv->ports[1].node_port, 20001);
	const uint8_t cip[4] = {10, 96, 5, 77};
	assert_memory_equal(sv->cluster_ips[0].bytes, cip, 4);
	manifest_result_free(&r);
}

static void test_endpoint_slice(void **state)
{
	(void)state;
	struct manifest_result r;
	const char *text = SLICE_HEAD
	    "addressType: IPv4\n"
	    "ports:\n"
	    "- {name: http, port: 8080}\n"
	    "- {port: 53, protocol: UDP}\n"
	    "- {name: all, port: null}\n"
	    "endpoints:\n"
	    "- addresses: [10.0.0.1]\n"
	    "- addresses: [10.0.0.2]\n"
	    "  conditions: {ready: false}\n"
	    "  hostname: db-0\n"
	    "  nodeName: node-a\n"
	    "  targetRef: {kind: Pod, name: db-0, namespace: default}\n"
	    "- addresses: [10.0.0.3]\n"
	    "  conditions: {ready: false, serving: true, terminating: true}\n"
	    "---\n"
	    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	    "metadata: {name: s6, namespace: ns1, labels: {kubernetes.io/service-name: web}}\n"
	    "addressType: IPv6\nendpoints: [{addresses: [\"fd00::1\"]}]\n"
	    "---\n"
	    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	    "metadata: {name: sf, labels: {kubernetes.io/service-name: ext}}\n"
	    "addressType: FQDN\nendpoints: [{addresses: [db.example.com]}]\n";
	assert_int_equal(decode("slices.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 3);

	const struct model_object *o = find_obj(&r, KIND_SLICE, "s1");
	assert_non_null(o);
	const struct model_slice *sl = o->u.slice;
	assert_string_equal(sl->ns, "default");
	assert_string_equal(sl->service, "web");
	assert_int_equal(sl->address_type, AF_INET);
	assert_int_equal(sl->n_ports, 2); /* the port without a number is skipped */
	assert_string_equal(sl->ports[0].name, "http");
	assert_int_equal(sl->ports[0].port, 8080);
	assert_int_equal(sl->ports[0].proto, PROTO_TCP);
	assert_string_equal(sl->ports[1].name, "");
	assert_int_equal(sl->ports[1].proto, PROTO_UDP);
	assert_int_equal(sl->n_endpoints, 3);
	const struct model_endpoint *e = &sl->endpoints[0];
	assert_int_equal(e->n_addrs, 1);
	assert_addr(&e->addrs[0], "10.0.0.1");
	assert_true(e->ready); /* absent counts as ready */
	assert_true(e->serving);
	assert_false(e->terminating);
	assert_null(e->hostname);
	assert_null(e->pod_name);
	e = &sl->endpoints[1];
	assert_false(e->ready);
	assert_false(e->serving); /* absent: same as ready */
	assert_string_equal(e->hostname, "db-0");
	assert_string_equal(e->node_name, "node-a");
	assert_string_equal(e->pod_name, "db-0");
	e = &sl->endpoints[2];
	assert_false(e->ready);
	assert_true(e->serving);
	assert_true(e->terminating);

	o = find_obj(&r, KIND_SLICE, "s6");
	assert_non_null(o);
	assert_int_equal(o->u.slice->address_type, AF_INET6);
	assert_addr(&o->u.slice->endpoints[0].addrs[0], "fd00::1");
	o = find_obj(&r, KIND_SLICE, "sf");
	assert_non_null(o);
	assert_int_equal(o->u.slice->address_type, 0);
	manifest_result_free(&r);
}

static void test_pods(void **state)
{
	(void)state;
	struct manifest_result r;
	const char *text =
	    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n"
	    "  labels: {app: web, tier: front}\n"
	    "spec:\n  hostname: web-1\n  subdomain: web\n  nodeName: node-1\n"
	    "  initContainers:\n"
	    "  - {name: init, ports: [{containerPort: 1}]}\n"
	    "  - {name: proxy, restartPolicy: Always, ports: [{name: proxy, containerPort: "
	    "15001}]}\n"
	    "  containers:\n"
	    "  - name: app\n    ports:\n    - {name: http, containerPort: 8080}\n"
	    "    - {name: dns, containerPort: 53, protocol: UDP}\n"
	    "status:\n  phase: Running\n  podIP: 10.244.0.5\n"
	    "  podIPs: [{ip: 10.244.0.5}, {ip: \"fd00::5\"}]\n"
	    "  conditions: [{type: Ready, status: \"False\"}]\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: running}\n"
	    "status: {phase: Running, podIP: 10.244.0.6}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: done}\n"
	    "status: {phase: Succeeded, conditions: [{type: Ready, status: \"True\"}]}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: going, deletionTimestamp: "
	    "\"2024-01-01T00:00:00Z\"}\n"
	    "status: {phase: Pending}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {labels: {app: x}}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {labels: {app: y}}\n";
	assert_int_equal(decode("My_Pods.v2.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 6);

	const struct model_object *o = find_obj(&r, KIND_POD, "web-1");
	assert_non_null(o);
	const struct model_pod *p = o->u.pod;
	assert_string_equal(p->ns, "shop");
	assert_false(p->name_generated);
	assert_string_equal(label(&p->labels, "tier"), "front");
	assert_int_equal(p->n_ports, 3); /* app's two, then the sidecar's */
	assert_string_equal(p->ports[0].name, "http");
	assert_int_equal(p->ports[0].port, 8080);
	assert_int_equal(p->ports[1].proto, PROTO_UDP);
	assert_string_equal(p->ports[2].name, "proxy");
	assert_string_equal(p->hostname, "web-1");
	assert_string_equal(p->subdomain, "web");
	assert_string_equal(p->node_name, "node-1");
	assert_true(p->has_status);
	assert_false(p->ready); /* the Ready condition wins over the phase */
	assert_int_equal(p->n_ips, 2);
	assert_addr(&p->ips[0], "10.244.0.5");
	assert_addr(&p->ips[1], "fd00::5");

	p = find_obj(&r, KIND_POD, "running")->u.pod;
	assert_true(p->ready);
	assert_int_equal(p->n_ips, 1);
	p = find_obj(&r, KIND_POD, "done")->u.pod;
	assert_true(p->terminal);
	p = find_obj(&r, KIND_POD, "going")->u.pod;
	assert_true(p->terminating);
	assert_false(p->ready);

	/* unnamed Pods: named after the file stem and their rank */
	o = find_obj(&r, KIND_POD, "my-pods-v2-1");
	assert_non_null(o);
	assert_true(o->u.pod->name_generated);
	assert_string_equal(label(&o->u.pod->labels, "app"), "x");
	o = find_obj(&r, KIND_POD, "my-pods-v2-2");
	assert_non_null(o);
	assert_string_equal(label(&o->u.pod->labels, "app"), "y");
	manifest_result_free(&r);
}

/* ---- file formats ----------------------------------------------------------- */

static void test_list_json(void **state)
{
	(void)state;
	char path[512];
	struct manifest_result r;
	assert_int_equal(manifest_read_file(fixture("list.json", path, sizeof(path)), &r), 0);
	assert_int_equal(r.n_invalid, 0);
	assert_int_equal(r.n_objs, 3); /* the Deployment is ignored */
	const struct model_service *s = find_svc(&r, "web");
	assert_string_equal(s->ns, "shop");
	assert_int_equal(s->type, SVC_NODE_PORT);
	assert_int_equal(s->n_cluster_ips, 1);
	assert_addr(&s->cluster_ips[0], "10.96.0.20");
	assert_int_equal(s->ports[0].node_port, 30080);
	assert_int_equal(s->ports[1].target_num, 9110);
	const struct model_object *o = find_obj(&r, KIND_SLICE, "web-abc12");
	assert_non_null(o);
	assert_string_equal(o->u.slice->endpoints[0].pod_name, "web-1");
	o = find_obj(&r, KIND_NAMESPACE, "shop");
	assert_non_null(o);
	manifest_result_free(&r);

	/* the same List written as YAML (kubectl get -o yaml), with a nested
	 * ServiceList */
	const char *yaml = "apiVersion: v1\nkind: List\nitems:\n"
			   "- apiVersion: v1\n  kind: ServiceList\n  items:\n"
			   "  - apiVersion: v1\n    kind: Service\n    metadata: {name: a}\n"
			   "    spec: {ports: [{port: 80}]}\n"
			   "  - apiVersion: v1\n    kind: Service\n    metadata: {name: b}\n"
			   "    spec: {ports: [{port: 0}]}\n"
			   "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: n}\n";
	assert_int_equal(decode("list.yaml", yaml, &r), 0);
	assert_int_equal(r.n_objs, 2);
	assert_int_equal(r.n_invalid, 1);
	assert_non_null(find_obj(&r, KIND_SERVICE, "a"));
	manifest_result_free(&r);
}

static void test_json_files(void **state)
{
	(void)state;
	struct manifest_result r;
	static const struct {
		const char *path;
		const char *text;
		int rc;
		size_t n_objs, n_invalid;
	} cases[] = {
	    {"a.json",
	     "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"x\"}}", 0, 1,
	     0},
	    /* content decides: JSON in a .yaml file */
	    {"a.yaml",
	     "  {\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"x\"}}", 0, 1,
	     0},
	    /* flow YAML that is not JSON, in a .yaml file */
	    {"a.yaml", "{apiVersion: v1, kind: Namespace, metadata: {name: x}}", 0, 1, 0},
	    {"a.json", "{apiVersion: v1, kind: Namespace}", -EINVAL, 0, 0},
	    {"a.json", "{\"kind\":\"Namespace\",\"kind\":\"Pod\"}", -EINVAL, 0, 0},
	    {"a.json", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\"", -EINVAL, 0, 0},
	    {"a.json", "{} {}", -EINVAL, 0, 0},
	    {"a.json", "[]", -EINVAL, 0, 0},
	    {"a.json", "{}", 0, 0, 1},
	    {"a.json",
	     "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"x\"},"
	     "\"spec\":{\"ports\":[{\"port\":80.0}]}}",
	     0, 0, 1},
	    {"a.json",
	     "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"x\"},"
	     "\"spec\":{\"ports\":[{\"port\":99999999999999999999999}]}}",
	     -EINVAL, 0, 0},
	    {"a.json",
	     "\xEF\xBB\xBF{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
	     "\"x\"}}",
	     0, 1, 0},
	    {"a.yaml", "just a string", -EINVAL, 0, 0},
	    {"a.yaml", "- a\n- b\n", -EINVAL, 0, 0},
	    {"a.yaml", "", 0, 0, 0},
	    {"a.yaml", "# nothing but a comment\n---\n", 0, 0, 0},
	    {"a.yaml",
	     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n"
	     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
	     "kind: ServiceList\n",
	     0, 0, 0},
	    {"a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n", -EINVAL, 0, 0},
	    {"a.yaml", "apiVersion: v1\nkind: Service\n\tmetadata: {}\n", -EINVAL, 0, 0},
	    {"a.yaml", "a: \xC3\x28\n", -EINVAL, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = decode(cases[i].path, cases[i].text, &r);
		if (rc != cases[i].rc || r.n_objs != cases[i].n_objs ||
		    r.n_invalid != cases[i].n_invalid)
			fail_msg("case %zu (%s): rc %d, %zu objects, %zu invalid", i, cases[i].text,
				 rc, r.n_objs, r.n_invalid);
		manifest_result_free(&r);
	}
}

static void test_nul_bytes(void **state)
{
	const char *dir = *state;
	static const char text[] = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n\0\n";
	struct manifest_result r;
	assert_int_equal(manifest_decode("nul.yaml", text, sizeof(text) - 1, &r), -EINVAL);
	assert_int_equal(r.n_objs, 0);
	assert_int_equal(manifest_decode("nul.json", "{\"a\":\0}", 7, &r), -EINVAL);

	char path[600];
	snprintf(path, sizeof(path), "%s/nul.yaml", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(manifest_read_file(path, &r), -EINVAL);
	assert_int_equal(manifest_read_file("/nonexistent/x.yaml", &r), -ENOENT);
}

/* Garbage of every kind: truncations of real files, random mutations and
 * random bytes. Whatever comes out must be consistent and freeable. */
static void test_garbage(void **state)
{
	(void)state;
	char path[512];
	static char buf[8192];
	struct manifest_result r;
	const char *files[] = {"article.yaml", "list.json"};
	uint32_t seed = 12345;
	enum log_level lvl = log_get_level();
	log_set_level(LOG_ERROR); /* thousands of warnings otherwise */

	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(fixture(files[f], path, sizeof(path)), "rb");
		assert_non_null(fp);
		size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		for (size_t cut = 0; cut < len; cut++) {
			int rc = manifest_decode(files[f], buf, cut, &r);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc < 0)
				assert_int_equal(r.n_objs + r.n_rejected, 0);
			manifest_result_free(&r);
		}
		static char mut[8192];
		for (int iter = 0; iter < 3000; iter++) {
			memcpy(mut, buf, len);
			int flips = 1 + iter % 4;
			for (int k = 0; k < flips; k++) {
				seed = seed * 1103515245u + 12345u;
				size_t at = (seed >> 8) % len;
				seed = seed * 1103515245u + 12345u;
				static const char pick[] = "{}[]:-,'\"&*!|>#\n \t0-9aZ\xff\x80";
				mut[at] = (iter & 1) ? (char)(seed >> 16)
						     : pick[(seed >> 16) % (sizeof(pick) - 1)];
			}
			int rc = manifest_decode(files[f], mut, len, &r);
			assert_true(rc == 0 || rc == -EINVAL);
			manifest_result_free(&r);
		}
	}
	for (int iter = 0; iter < 500; iter++) {
		size_t len = (size_t)(iter * 7 % 512);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (char)(seed >> 16);
		}
		int rc = manifest_decode(iter & 1 ? "r.json" : "r.yaml", buf, len, &r);
		assert_true(rc == 0 || rc == -EINVAL);
		manifest_result_free(&r);
	}
	log_set_level(lvl);
}

static void test_decode_object(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *o = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":"
			       "{\"name\":\"api\",\"namespace\":\"x\"},\"spec\":{\"clusterIP\":"
			       "\"10.0.0.1\",\"ports\":[{\"port\":443,\"targetPort\":\"https\"}]}}",
			       0, &jerr);
	assert_non_null(o);
	struct model_object out;
	assert_int_equal(manifest_decode_object("api", o, &out), 0);
	assert_int_equal(out.kind, KIND_SERVICE);
	assert_string_equal(out.u.svc->name, "api");
	assert_string_equal(out.u.svc->ports[0].target_name, "https");
	model_object_free(&out);
	json_decref(o);

	o = json_loads("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}", 0, &jerr);
	assert_int_equal(manifest_decode_object("api", o, &out), 1);
	json_decref(o);
	/* a nameless Pod from the API is not given a name */
	o = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{}}", 0, &jerr);
	assert_true(manifest_decode_object("api", o, &out) < 0);
	json_decref(o);
	/* a NUL inside a string (jansson with JSON_ALLOW_NUL) must not slip through */
	const char *nul = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
			  "\"a\\u0000b\"}}";
	o = json_loadb(nul, strlen(nul), JSON_ALLOW_NUL, &jerr);
	assert_non_null(o);
	assert_true(manifest_decode_object("api", o, &out) < 0);
	json_decref(o);
}

/* ServiceCIDRs: validated as the API server does, both versions, cluster
 * scoped; packed in the store, and the view lists every range once, sorted. */
static void test_service_cidr(void **state)
{
	(void)state;
	static const struct {
		const char *api, *cidrs;
		int rc;
	} cases[] = {
	    {"networking.k8s.io/v1", "[\"10.96.0.0/12\"]", 0},
	    {"networking.k8s.io/v1beta1", "[\"10.96.0.0/12\",\"fd00:10:96::/108\"]", 0},
	    {"networking.k8s.io/v2", "[\"10.96.0.0/12\"]", -EINVAL},
	    {"networking.k8s.io/v1", "[\"10.96.0.1/12\"]", -EINVAL}, /* not canonical */
	    {"networking.k8s.io/v1", "[\"10.96.0.0/12\",\"10.0.0.0/8\"]", -EINVAL}, /* one family */
	    {"networking.k8s.io/v1", "[\"10.96.0.10\"]", -EINVAL}, /* not a range */
	    {"networking.k8s.io/v1", "[]", -EINVAL},
	    {"networking.k8s.io/v1", "[\"10.0.0.0/8\",\"fd00::/64\",\"fd01::/64\"]", -EINVAL},
	};
	char text[400];
	json_error_t jerr;
	struct model_object out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
			 "{\"apiVersion\":\"%s\",\"kind\":\"ServiceCIDR\",\"metadata\":{\"name\":"
			 "\"r%zu\",\"namespace\":\"ignored\"},\"spec\":{\"cidrs\":%s}}",
			 cases[i].api, i, cases[i].cidrs);
		json_t *o = json_loads(text, 0, &jerr);
		assert_non_null(o);
		int rc = manifest_decode_object("api", o, &out);
		json_decref(o);
		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].cidrs, rc,
				 cases[i].rc);
		if (rc == 0) {
			assert_int_equal(out.kind, KIND_SERVICE_CIDR);
			assert_string_equal(model_object_ns(&out), "");
			model_object_free(&out);
		}
	}

	struct manifest_result r = {0};
	assert_int_equal(decode("cidrs.yaml",
				"apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\n"
				"metadata: {name: b}\nspec: {cidrs: [10.96.0.0/12, fd00::/108]}\n"
				"---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\n"
				"metadata: {name: a}\nspec: {cidrs: [10.50.0.0/16]}\n"
				"---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\n"
				"metadata: {name: c}\nspec: {cidrs: [10.96.0.0/12]}\n",
				&r),
			 0);
	assert_int_equal(r.n_objs, 3);
	struct model_store *st = model_store_new();
	struct model_alloc *al = model_alloc_new(NULL, NULL);
	assert_int_equal(model_store_replace(st, "cidrs.yaml", r.objs, r.n_objs), 0);
	r.n_objs = 0;
	manifest_result_free(&r);
	struct model_view v;
	assert_int_equal(model_view_build(st, al, &v), 0);
	assert_int_equal(v.n_service_cidrs, 3);
	const char *want[] = {"10.50.0.0/16", "10.96.0.0/12", "fd00::/108"};
	for (size_t i = 0; i < 3; i++) {
		char buf[64];
		net_addr_format(&v.service_cidrs[i].base, buf, sizeof(buf));
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%u",
			 v.service_cidrs[i].prefix);
		assert_string_equal(buf, want[i]);
	}
	model_view_free(&v);
	model_store_remove(st, "cidrs.yaml");
	assert_int_equal(model_view_build(st, al, &v), 0);
	assert_int_equal(v.n_service_cidrs, 0);
	model_view_free(&v);
	model_alloc_free(al);
	model_store_free(st);
}

/* The last-change-trigger-time annotation: RFC 3339 as the controllers write
 * it (fractions of any length, Z or an offset); anything else is no time. */
static void test_trigger_time(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t ms;
	} cases[] = {
	    {"2024-01-01T00:00:00Z", 1704067200000},
	    {"2024-01-01T00:00:00.5Z", 1704067200500},
	    {"2024-01-01T00:00:00.123456789Z", 1704067200123},
	    {"2024-01-01T01:30:00+01:30", 1704067200000},
	    {"2023-12-31T23:00:00-01:00", 1704067200000},
	    {"2024-01-01 00:00:00Z", 0},
	    {"2024-01-01T00:00:00", 0},
	    {"2024-01-01T00:00:00.Z", 0},
	    {"2024-13-01T00:00:00Z", 0},
	    {"yesterday", 0},
	    {"", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mf_rfc3339_ms(cases[i].text) != cases[i].ms)
			fail_msg("%s: %lld, want %lld", cases[i].text,
				 (long long)mf_rfc3339_ms(cases[i].text), (long long)cases[i].ms);
	assert_int_equal(mf_rfc3339_ms(NULL), 0);

	struct manifest_result r = {0};
	assert_int_equal(
	    decode("s.yaml",
		   "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a\n"
		   "  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "
		   "'2024-01-01T00:00:00Z'}\n  labels: {kubernetes.io/service-name: a}\n"
		   "addressType: IPv4\nendpoints: []\n",
		   &r),
	    0);
	assert_int_equal(r.n_objs, 1);
	assert_int_equal(r.objs[0].u.slice->trigger_ms, 1704067200000);
	manifest_result_free(&r);
}

/* ---- the directory source ---------------------------------------------------- */

struct dir_fixture {
	char dir[512];
	uv_loop_t loop;
	struct model_store *store;
	struct manifest_dir *md;
	int changes;
};

static void on_changed(void *arg)
{
	((struct dir_fixture *)arg)->changes++;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* written in place (not renamed) to exercise same-inode rewrites */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until `changes` moves past `from` or `ms` pass; returns the
 * milliseconds taken. */
static uint64_t run_until_change(struct dir_fixture *fx, int from, uint64_t ms)
{
	uv_timer_t t;
	bool expired = false;
	uint64_t start;
	uv_update_time(&fx->loop);
	start = uv_now(&fx->loop);
	uv_timer_init(&fx->loop, &t);
	t.data = &expired;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (fx->changes == from && !expired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	uv_update_time(&fx->loop);
	return uv_now(&fx->loop) - start;
}

static const struct model_service *stored_svc(struct dir_fixture *fx, const char *file,
					      const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", fx->dir, file);
	const struct model_object *o =
	    model_store_find(fx->store, path, KIND_SERVICE, "default", name);
	return o ? o->u.svc : NULL;
}

#define SVC_PORT(name, port) SVC_HEAD(name) "  ports: [{port: " #port "}]\n"

static void test_manifest_dir(void **state)
{
	struct dir_fixture fx = {0};
	snprintf(fx.dir, sizeof(fx.dir), "%s", (const char *)*state);
	assert_int_equal(uv_loop_init(&fx.loop), 0);
	fx.store = model_store_new();
	assert_non_null(fx.store);

	write_file(fx.dir, "a.yaml", SVC_PORT("a", 80));
	write_file(fx.dir, "b.json",
		   "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"},"
		   "\"spec\":{\"ports\":[{\"port\":81}]}}");
	write_file(fx.dir, ".hidden.yaml", SVC_PORT("h1", 80));
	write_file(fx.dir, "c.yaml~", SVC_PORT("h2", 80));
	write_file(fx.dir, "d.txt", SVC_PORT("h3", 80));
	/* the same name in a later file loses to the earlier one */
	write_file(fx.dir, "z.yml", SVC_PORT("a", 99));

	assert_int_equal(manifest_dir_start(&fx.loop, fx.dir, fx.store, on_changed, &fx, &fx.md),
			 0);
	assert_null(stored_svc(&fx, "z.yml", "a")); /* a.yaml had it first */
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 80);
	assert_non_null(stored_svc(&fx, "b.json", "b"));
	assert_null(stored_svc(&fx, ".hidden.yaml", "h1"));

	/* a change is served quickly (inotify, not the 1 s rescan) */
	int c = fx.changes;
	write_file(fx.dir, "a.yaml", SVC_PORT("a", 82));
	uint64_t took = run_until_change(&fx, c, 3000);
	assert_true(fx.changes > c);
	assert_true(took < 500);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 82);

	/* same size, same inode: seen through the timestamps, or the bytes within one tick */
	c = fx.changes;
	write_file(fx.dir, "a.yaml", SVC_PORT("a", 83));
	run_until_change(&fx, c, 3000);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 83);

	/* a file that cannot be parsed keeps what it had, and nothing changes */
	c = fx.changes;
	write_file(fx.dir, "a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n");
	run_until_change(&fx, c, 1500);
	assert_int_equal(fx.changes, c);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 83);

	/* an invalid object keeps its previous version; a new object is added */
	c = fx.changes;
	write_file(fx.dir, "a.yaml", SVC_PORT("a", 0) "---\n" SVC_PORT("a2", 90));
	run_until_change(&fx, c, 3000);
	assert_true(fx.changes > c);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 83);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a2")->ports[0].port, 90);

	/* a new file, then a removed file */
	c = fx.changes;
	write_file(fx.dir, "c.yaml", SVC_PORT("c", 70));
	run_until_change(&fx, c, 3000);
	assert_non_null(stored_svc(&fx, "c.yaml", "c"));
	c = fx.changes;
	char path[600];
	snprintf(path, sizeof(path), "%s/b.json", fx.dir);
	assert_int_equal(unlink(path), 0);
	run_until_change(&fx, c, 3000);
	assert_true(fx.changes > c);
	assert_null(stored_svc(&fx, "b.json", "b"));

	/* the directory goes away: objects stay; it comes back: reloaded */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	assert_int_equal(system(cmd), 0);
	c = fx.changes;
	run_until_change(&fx, c, 1500);
	assert_int_equal(fx.changes, c);
	assert_non_null(stored_svc(&fx, "a.yaml", "a"));
	assert_non_null(stored_svc(&fx, "c.yaml", "c"));
	assert_int_equal(mkdir(fx.dir, 0700), 0);
	write_file(fx.dir, "a.yaml", SVC_PORT("a", 84));
	run_until_change(&fx, c, 3000);
	assert_true(fx.changes > c);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 84);
	assert_null(stored_svc(&fx, "c.yaml", "c")); /* not in the new directory */
	/* and the watch works again on the new directory */
	c = fx.changes;
	write_file(fx.dir, "a.yaml", SVC_PORT("a", 85));
	took = run_until_change(&fx, c, 3000);
	assert_int_equal(stored_svc(&fx, "a.yaml", "a")->ports[0].port, 85);
	assert_true(took < 1500);

	manifest_dir_stop(fx.md);
	assert_int_equal(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&fx.loop), 0);
	model_store_free(fx.store);
}

static void test_manifest_dir_missing(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct manifest_dir *md = (struct manifest_dir *)1;
	struct model_store *st = model_store_new();
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_true(manifest_dir_start(&loop, "/nonexistent/svcdns", st, NULL, NULL, &md) < 0);
	assert_null(md);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	model_store_free(st);
}

/* A ServiceImport of each kind, and a multicluster slice: it belongs to the
 * import and its cluster, never to the local Service of the same name. */
static void test_service_import(void **state)
{
	(void)state;
	struct manifest_result r;
	static const char text[] =
	    "apiVersion: " MCS_API "\nkind: ServiceImport\nmetadata: {name: web, namespace: a}\n"
	    "spec:\n  type: ClusterSetIP\n  ips: [10.42.0.1, \"fd00::1\"]\n"
	    "  ports: [{name: http, port: 80, protocol: TCP}, {port: 53, protocol: UDP}]\n---\n"
	    "apiVersion: " MCS_API "\nkind: ServiceImport\nmetadata: {name: db, namespace: a}\n"
	    "spec: {type: Headless}\n---\n"
	    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: db-x\n"
	    "  namespace: a\n  labels:\n    kubernetes.io/service-name: db\n"
	    "    multicluster.kubernetes.io/service-name: db\n"
	    "    multicluster.kubernetes.io/source-cluster: east\n"
	    "addressType: IPv4\nendpoints: [{addresses: [10.1.0.1]}]\n";
	assert_int_equal(decode("mcs.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	const struct model_object *o = find_obj(&r, KIND_IMPORT, "web");
	assert_non_null(o);
	assert_true(o->u.svc->imported);
	assert_false(o->u.svc->headless);
	assert_int_equal(o->u.svc->n_cluster_ips, 2);
	assert_int_equal(o->u.svc->n_ports, 2);
	assert_string_equal(o->u.svc->ports[1].name, "");
	assert_int_equal(o->u.svc->ports[1].proto, PROTO_UDP);
	o = find_obj(&r, KIND_IMPORT, "db");
	assert_non_null(o);
	assert_true(o->u.svc->headless);
	assert_int_equal(o->u.svc->n_cluster_ips, 0);
	assert_null(find_obj(&r, KIND_SERVICE, "db"));
	o = find_obj(&r, KIND_SLICE, "db-x");
	assert_non_null(o);
	assert_null(o->u.slice->service);
	assert_string_equal(o->u.slice->mc_service, "db");
	assert_string_equal(o->u.slice->cluster, "east");
	manifest_result_free(&r);
}

/* The external addresses the kernel datapath forwards, and the policies. */
static void test_service_external(void **state)
{
	(void)state;
	struct manifest_result r;
	static const char text[] = SVC_HEAD(
	    "lb") "  type: LoadBalancer\n  externalIPs: [192.0.2.1, \"2001:db8::1\"]\n"
		  "  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n"
		  "  ports: [{port: 80}]\nstatus: {loadBalancer: {ingress: "
		  "[{ip: 192.0.2.9}, {hostname: lb.example.com}, {ip: 192.0.2.1}]}}\n"
		  "---\n" SVC_HEAD("plain") "  externalTrafficPolicy: Cluster\n"
					    "  ports: [{port: 80}]\nstatus: {loadBalancer: "
					    "{ingress: [{ip: 192.0.2.7}]}}\n";
	assert_int_equal(decode("ext.yaml", text, &r), 0);
	assert_int_equal(r.n_invalid, 0);
	const struct model_service *s = find_svc(&r, "lb");
	assert_int_equal(s->n_ext_ips, 3);
	assert_addr(&s->ext_ips[0], "192.0.2.1");
	assert_addr(&s->ext_ips[1], "2001:db8::1");
	assert_addr(&s->ext_ips[2], "192.0.2.9");
	assert_true(s->ext_policy_local);
	assert_true(s->int_policy_local);
	s = find_svc(&r, "plain");
	assert_int_equal(s->n_ext_ips, 0);
	assert_false(s->ext_policy_local);
	assert_false(s->int_policy_local);
	manifest_result_free(&r);
}

int main(void)
{
	if (!getenv("SVCDNS_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_yaml_core_schema),
	    cmocka_unit_test(test_yaml_error_position),
	    cmocka_unit_test(test_yaml_alias_bomb),
	    cmocka_unit_test(test_yaml_deep_nesting),
	    cmocka_unit_test(test_article),
	    cmocka_unit_test(test_article_fragments),
	    cmocka_unit_test(test_selector_list_rejected),
	    cmocka_unit_test(test_invalid_objects),
	    cmocka_unit_test(test_service_variants),
	    cmocka_unit_test(test_endpoint_slice),
	    cmocka_unit_test(test_service_import),
	    cmocka_unit_test(test_service_external),
	    cmocka_unit_test(test_slice_endpoint_dropped),
	    cmocka_unit_test(test_pods),
	    cmocka_unit_test(test_list_json),
	    cmocka_unit_test(test_json_files),
	    cmocka_unit_test_setup_teardown(test_nul_bytes, tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_decode_object),
	    cmocka_unit_test(test_service_cidr),
	    cmocka_unit_test(test_trigger_time),
	    cmocka_unit_test_setup_teardown(test_manifest_dir, tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test(test_manifest_dir_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
