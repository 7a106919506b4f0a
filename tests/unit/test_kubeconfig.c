/* Unit tests for reading API connection settings: kubeconfig contexts, *-data
 * fields, paths relative to the kubeconfig, what is refused and why, command
 * line overrides, in-cluster settings, and the token file read again when it
 * changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "discovery/kubeconfig.h"
#include "tmpdir.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char fixtures[512];

static const char *fx(const char *name)
{
	static char path[1024];
	snprintf(path, sizeof(path), "%s/kube/kubeconfig/%s", fixtures, name);
	return path;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);
	return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

struct ctx_case {
	const char *context; /* NULL: current-context */
	const char *server;
	const char *ca_file_suffix; /* NULL: none expected */
	const char *ca_pem;
	const char *cert_pem, *key_pem;
	const char *token;
	const char *token_file_suffix;
	const char *proxy;
	const char *ns;
	bool insecure;
};

static void test_contexts(void **state)
{
	(void)state;
	static const struct ctx_case cases[] = {
	    {.context = NULL, /* current-context: dev */
	     .server = "https://dev.example.com:6443",
	     .ca_file_suffix = "/kubeconfig/../tls/ca.crt",
	     .token_file_suffix = "/kubeconfig/tokens/dev",
	     .ns = "team-a"},
	    {.context = "prod",
	     .server = "https://10.0.0.1:6443",
	     .ca_pem = "hello ca\n",
	     .cert_pem = "cert\n",
	     .key_pem = "key\n",
	     .proxy = "http://proxy.example.com:3128"},
	    {.context = "lab",
	     .server = "https://lab:6443",
	     .token = "inline-token",
	     .insecure = true},
	    {.context = "nouser", .server = "https://lab:6443", .insecure = true},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const struct ctx_case *c = &cases[i];
		struct kube_conn conn;
		assert_int_equal(kubeconfig_load(fx("full.yaml"), c->context, &conn), 0);
		/* overriding nothing normalises the URL (no trailing '/') */
		assert_int_equal(kubeconfig_override(&conn, NULL, NULL, NULL), 0);
		assert_string_equal(conn.server, c->server);
		assert_true(conn.insecure == c->insecure);
		if (c->ca_file_suffix)
			assert_true(ends_with(conn.ca_file, c->ca_file_suffix));
		else
			assert_null(conn.ca_file);
		if (c->ca_pem) {
			assert_int_equal(conn.ca_pem_len, strlen(c->ca_pem));
			assert_memory_equal(conn.ca_pem, c->ca_pem, conn.ca_pem_len);
		} else {
			assert_null(conn.ca_pem);
		}
		if (c->cert_pem) {
			assert_string_equal(conn.cert_pem, c->cert_pem);
			assert_string_equal(conn.key_pem, c->key_pem);
		}
		if (c->token)
			assert_string_equal(conn.token, c->token);
		else
			assert_null(conn.token);
		if (c->token_file_suffix)
			assert_true(ends_with(conn.token_file, c->token_file_suffix));
		else
			assert_null(conn.token_file); /* an inline token wins over tokenFile */
		if (c->proxy)
			assert_string_equal(conn.proxy, c->proxy);
		if (c->ns)
			assert_string_equal(conn.namespace, c->ns);
		assert_non_null(conn.origin);
		kubeconfig_free(&conn);
	}
}

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *file, *context;
		int rc;
	} cases[] = {
	    {"full.yaml", "missing", -ENOENT},	     /* no such context */
	    {"full.yaml", "ghost-cluster", -ENOENT}, /* its cluster does not exist */
	    {"full.yaml", "ghost-user", -ENOENT},    /* its user does not exist */
	    {"exec.yaml", NULL, -ENOTSUP},	     /* exec plugins are not run */
	    {"broken.yaml", NULL, -EINVAL},	     /* certificate-authority-data not base64 */
	    {"broken.yaml", "b", -EINVAL},	     /* a cluster without server */
	    {"broken.yaml", "half-cert", -EINVAL},   /* a certificate without its key */
	    {"nocontext.yaml", NULL, -EINVAL},	     /* no current-context */
	    {"does-not-exist.yaml", NULL, -ENOENT},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct kube_conn conn;
		int rc = kubeconfig_load(fx(cases[i].file), cases[i].context, &conn);
		if (rc != cases[i].rc)
			fail_msg("%s context %s: got %d, want %d", cases[i].file,
				 cases[i].context ? cases[i].context : "(current)", rc,
				 cases[i].rc);
		assert_null(conn.server);
	}
}

static void test_override(void **state)
{
	(void)state;
	struct kube_conn conn = {0};

	/* nothing loaded: --api-server is required */
	assert_int_equal(kubeconfig_override(&conn, NULL, NULL, "/x/ca.crt"), -EINVAL);
	assert_int_equal(kubeconfig_override(&conn, "ftp://x", NULL, NULL), -EINVAL);
	assert_int_equal(kubeconfig_override(&conn, "https://api:6443///", NULL, NULL), 0);
	assert_string_equal(conn.server, "https://api:6443");
	kubeconfig_free(&conn);

	/* flags win over the kubeconfig: server, CA (which also ends insecure) */
	assert_int_equal(kubeconfig_load(fx("full.yaml"), "lab", &conn), 0);
	assert_int_equal(kubeconfig_override(&conn, "https://other:443", NULL, "/etc/ca.pem"), 0);
	assert_string_equal(conn.server, "https://other:443");
	assert_string_equal(conn.ca_file, "/etc/ca.pem");
	assert_false(conn.insecure);
	assert_int_equal(kubeconfig_override(&conn, NULL, "/nonexistent/token", NULL), -ENOENT);
	kubeconfig_free(&conn);
}

static void test_in_cluster(void **state)
{
	const char *dir = *state;
	char path[600];
	struct kube_conn conn;
	FILE *f;

	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("SVCDNS_SERVICEACCOUNT_DIR", dir, 1);
	assert_int_equal(kubeconfig_in_cluster(&conn), -ENOENT);

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	/* no token or CA mounted */
	assert_true(kubeconfig_in_cluster(&conn) < 0);
	static const char *const files[][2] = {
	    {"token", "sa-token\n"}, {"ca.crt", "pem"}, {"namespace", "kube-system"}};
	for (size_t i = 0; i < N_ELEMS(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
		assert_non_null(f = fopen(path, "w"));
		fputs(files[i][1], f);
		fclose(f);
	}
	assert_int_equal(kubeconfig_in_cluster(&conn), 0);
	assert_string_equal(conn.server, "https://[fd00::1]:443"); /* IPv6 in brackets */
	assert_string_equal(conn.namespace, "kube-system");
	assert_string_equal(kubeconfig_token(&conn, 1), "sa-token");
	kubeconfig_free(&conn);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("SVCDNS_SERVICEACCOUNT_DIR");
}

static void write_file(const char *path, const char *text)
{
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%.600s.tmp", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

/* The clock is passed in: no sleeping to test the periodic re-read. */
static void test_token_file(void **state)
{
	const char *dir = *state;
	char path[600];
	struct kube_conn conn = {0};

	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, "one\n");
	assert_int_equal(kubeconfig_override(&conn, "https://api", path, NULL), 0);
	assert_string_equal(kubeconfig_token(&conn, 1000), "one");
	/* rotated (a new inode, as the kubelet's atomic writer does) */
	write_file(path, "two\n");
	assert_string_equal(kubeconfig_token(&conn, 1001), "two");
	/* gone for a moment: the previous token stays */
	unlink(path);
	assert_string_equal(kubeconfig_token(&conn, 1002), "two");
	/* empty: the previous token stays */
	write_file(path, "\n");
	assert_string_equal(kubeconfig_token(&conn, 1003), "two");
	write_file(path, "three");
	assert_string_equal(kubeconfig_token(&conn, 1004), "three");
	/* rewritten in place with the same size and mtime is caught by the
	 * periodic re-read, or at once after a 401 */
	FILE *f = fopen(path, "r+");
	assert_non_null(f);
	fputs("thrEE", f);
	fclose(f);
	struct timespec ts[2] = {{0, UTIME_OMIT}, {0, 0}};
	ts[1].tv_sec = conn.tf_mtime_ns / 1000000000LL;
	ts[1].tv_nsec = conn.tf_mtime_ns % 1000000000LL;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_string_equal(kubeconfig_token(&conn, 1005), "three");
	kubeconfig_token_stale(&conn);
	assert_string_equal(kubeconfig_token(&conn, 1006), "thrEE");
	write_file(path, "four!");
	ts[1].tv_sec = 0;
	ts[1].tv_nsec = UTIME_OMIT;
	assert_string_equal(kubeconfig_token(&conn, 1006 + KUBE_TOKEN_REREAD_MS), "four!");
	kubeconfig_free(&conn);
}

static void test_base64(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"", ""},
	    {"Zg==", "f"},
	    {"Zm8=", "fo"},
	    {"Zm9v", "foo"},
	    {"Zm9vYg==", "foob"},
	    {"Zm9v\nYmFy\n", "foobar"},
	    {" Zm9v YmE= ", "fooba"},
	};
	static const char *const bad[] = {"Zg=", "Z", "Zm9v!", "Zg==Zg==", "Zh==", "Zm9=a"};
	char *out;
	size_t len;

	for (size_t i = 0; i < N_ELEMS(ok); i++) {
		assert_int_equal(kubeconfig_base64_decode(ok[i].in, &out, &len), 0);
		assert_int_equal(len, strlen(ok[i].out));
		assert_string_equal(out, ok[i].out);
		free(out);
	}
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		int rc = kubeconfig_base64_decode(bad[i], &out, &len);
		if (rc != -EINVAL)
			fail_msg("\"%s\" decoded (rc %d)", bad[i], rc);
	}
}

int main(void)
{
	const char *f = getenv("SVCDNS_FIXTURES");
	snprintf(fixtures, sizeof(fixtures), "%s", f ? f : "tests/fixtures");
	log_set_level(LOG_ERROR + (getenv("SVCDNS_TEST_VERBOSE") ? 3 : 0));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contexts),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_override),
	    cmocka_unit_test_setup_teardown(test_in_cluster, tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(test_token_file, tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
