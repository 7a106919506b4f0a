/* Fuzz target: a kubeconfig file through kubeconfig_load() (it reads a path,
 * so the input goes through a file in a temporary directory that also holds
 * a CA, a token and a client certificate for relative paths to find), then
 * the token and the command-line overrides; and the input alone through
 * kubeconfig_base64_decode(), whose output must encode back to its input's
 * characters. A failed load leaves nothing behind; a successful one names a
 * server and frees cleanly. The directory goes when the process ends: at exit,
 * on abort() (a failed check) and on a sanitizer's report. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "discovery/kubeconfig.h"
#include "fuzz.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif
#ifdef HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

static char dir[64], path[128];
static bool trace;

/* Everything put() and the inputs write, as full paths made at start: the
 * removal may run in a signal handler, where only unlink and rmdir are safe. */
static const char *const files[] = {"ca.crt",	  "token",	"empty-token",
				    "client.crt", "client.key", "kubeconfig"};
static char file_paths[sizeof(files) / sizeof(files[0])][160];
static struct sigaction prev_abrt;

static void remove_dir(void)
{
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(file_paths[i]);
	rmdir(dir);
}

static void on_abort(int sig)
{
	remove_dir();
	/* then whatever handled it before (libFuzzer's crash report, or the
	 * default): the signal is blocked here, so it arrives once we return */
	sigaction(SIGABRT, &prev_abrt, NULL);
	raise(sig);
}

/* Contexts a kubeconfig names; the input's first byte picks one (or none:
 * current-context). */
static const char *const contexts[] = {NULL,  "test", "kind-kind", "minikube",
				       "gke", "",     "decoy",	   "default"};

static void put(const char *name, const char *text)
{
	char p[160];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	FUZZ_CHECK(f, "create %s: %s", p, strerror(errno));
	fputs(text, f);
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	trace = getenv("SVCDNS_FUZZ_TRACE") != NULL;
	snprintf(dir, sizeof(dir), "/tmp/svcdns-fuzz-kc-XXXXXX");
	FUZZ_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		snprintf(file_paths[i], sizeof(file_paths[i]), "%s/%s", dir, files[i]);
	atexit(remove_dir);
	struct sigaction sa = {.sa_handler = on_abort};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGABRT, &sa, &prev_abrt);
#ifdef HAVE_SANITIZER
	__sanitizer_set_death_callback(remove_dir);
#endif
	put("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	put("token", "  fuzz-token-value\n");
	put("empty-token", "");
	put("client.crt", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
	put("client.key", "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n");
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decoding must invert encoding: the output, encoded again (without
 * padding), is exactly the input's alphabet characters. */
static void check_base64(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *out = NULL;
	FUZZ_CHECK(in, "out of memory");
	memcpy(in, data, size);
	in[size] = '\0';
	size_t n = 0;
	int rc = kubeconfig_base64_decode(in, &out, &n);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL, "base64: %d", rc);
		FUZZ_CHECK(out == NULL, "base64: output after an error");
		free(in);
		return;
	}
	FUZZ_CHECK(out && out[n] == '\0', "base64: output not terminated");
	size_t k = 0;
	for (size_t i = 0; in[i]; i++)
		if (strchr(b64, in[i]))
			in[k++] = in[i];
	size_t e = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | (uint8_t)out[i];
		for (bits += 8; bits >= 6; bits -= 6, e++)
			FUZZ_CHECK(e < k && b64[acc >> (bits - 6) & 63] == in[e],
				   "base64: byte %zu encodes back differently", i);
	}
	if (bits)
		FUZZ_CHECK(e < k && b64[acc << (6 - bits) & 63] == in[e++],
			   "base64: the last bits encode back differently");
	FUZZ_CHECK(e == k, "base64: %zu characters decoded to %zu bytes", k, n);
	free(out);
	free(in);
}

static bool empty(const struct kube_conn *c)
{
	return !c->server && !c->origin && !c->ca_file && !c->ca_pem && !c->cert_file &&
	       !c->key_file && !c->cert_pem && !c->key_pem && !c->proxy && !c->namespace &&
	       !c->token && !c->token_file;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *ctx = contexts[data[0] % (sizeof(contexts) / sizeof(contexts[0]))];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	FUZZ_CHECK(write(fd, data + 1, size - 1) == (ssize_t)(size - 1), "write %s", path);
	close(fd);

	struct kube_conn c;
	memset(&c, 0x5a, sizeof(c)); /* must be overwritten either way */
	int rc = kubeconfig_load(path, ctx, &c);
	if (trace)
		fprintf(stderr, "context %s: rc %d server %s\n", ctx ? ctx : "(current)", rc,
			rc == 0 ? c.server : "-");
	if (rc < 0) {
		FUZZ_CHECK(empty(&c), "a failed load (%d) left fields set", rc);
	} else {
		FUZZ_CHECK(rc == 0, "returned %d", rc);
		FUZZ_CHECK(c.server && *c.server && c.origin, "loaded without a server or origin");
		FUZZ_CHECK(!(c.token && c.token_file), "both a token and a token file");
		FUZZ_CHECK(!!(c.cert_file || c.cert_pem) == !!(c.key_file || c.key_pem),
			   "a certificate without its key or the other way round");
		FUZZ_CHECK(!c.ca_pem || c.ca_pem[c.ca_pem_len] == '\0', "CA data not terminated");
		/* Token files are read only inside our directory: the input may
		 * name any path (a FIFO would hang the fuzzer). */
		if (!c.token_file || strncmp(c.token_file, dir, strlen(dir)) == 0)
			(void)kubeconfig_token(&c, 0);
		rc = kubeconfig_override(&c, NULL, NULL, NULL);
		FUZZ_CHECK(rc == 0, "override with nothing: %d", rc);
		size_t n = strlen(c.server);
		FUZZ_CHECK(n == 0 || c.server[n - 1] != '/', "server %s ends in /", c.server);
		rc = kubeconfig_override(&c, "https://127.0.0.1:6443/", NULL, NULL);
		FUZZ_CHECK(rc == 0 && strcmp(c.server, "https://127.0.0.1:6443") == 0,
			   "override of the server: %d %s", rc, c.server);
		kubeconfig_free(&c);
		FUZZ_CHECK(empty(&c), "kubeconfig_free left fields set");
	}
	check_base64(data + 1, size - 1);
	return 0;
}
