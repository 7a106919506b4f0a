/* Fuzz target: a Kubernetes watch body (newline-delimited JSON events) cut
 * into chunks at points the input chooses, through kube_lines_feed() (the
 * line buffer of discovery/kube_http.h) and then the event decoding of
 * discovery/kube_watch.c: type, object, kind and apiVersion filled in as a list
 * item lacks them, manifest_decode_object(). However the body is chunked, the
 * same lines come out and the stream fails (line too long) at the same place.
 *
 * kube_watch.c's line handler is static (it also updates the reflector's index and
 * the store); the few lines of glue before manifest_decode_object are
 * repeated here, and the decoder itself is the real one. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "discovery/kube.h"
#include "discovery/kube_http.h"
#include "discovery/manifest.h"
#include "fuzz.h"

/* Small enough that the fuzzer meets the limit (the server's is 16 MiB). */
#define MAX_LINE 2048

static bool trace;

/* The resources a watch can be for: what kube.c fills in. */
static const struct {
	const char *kind, *api_version;
	bool namespaced;
} RES[] = {
    {"Service", "v1", true},
    {"EndpointSlice", "discovery.k8s.io/v1", true},
    {"Namespace", "v1", false},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* every line that is not an event logs; SVCDNS_FUZZ_LOG=1 shows them */
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	trace = getenv("SVCDNS_FUZZ_TRACE") != NULL;
	return 0;
}

struct stream {
	unsigned res;
	size_t n_lines, n_events, n_objects;
	uint64_t digest; /* of every line delivered, in order */
};

static enum kube_event_type event_type(const char *s)
{
	for (int t = 0; t < KUBE_EV_TYPES; t++)
		if (s && strcmp(s, kube_event_type_name((enum kube_event_type)t)) == 0)
			return (enum kube_event_type)t;
	return KUBE_EV_TYPES;
}

/* One event, as on_event_line() in kube_watch.c reads it. */
static void decode_event(struct stream *st, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *ev = json_loadb(line, len, 0, &jerr);
	json_t *obj = json_object_get(ev, "object");
	enum kube_event_type t = event_type(json_string_value(json_object_get(ev, "type")));
	if (!json_is_object(obj) || t == KUBE_EV_TYPES)
		goto out;
	st->n_events++;
	if (t == KUBE_EV_ERROR) {
		(void)json_integer_value(json_object_get(obj, "code"));
		(void)json_string_value(json_object_get(obj, "message"));
		goto out;
	}
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	if (t == KUBE_EV_BOOKMARK || t == KUBE_EV_DELETED || !json_is_object(meta) || !name ||
	    !*name || (RES[st->res].namespaced && (!ns || !*ns)))
		goto out;
	if (!json_object_get(obj, "kind"))
		json_object_set_new(obj, "kind", json_string(RES[st->res].kind));
	if (!json_object_get(obj, "apiVersion"))
		json_object_set_new(obj, "apiVersion", json_string(RES[st->res].api_version));
	struct model_object mo;
	int rc = manifest_decode_object("fuzz watch", obj, &mo);
	FUZZ_CHECK(rc == 0 || rc == 1 || rc < 0, "decode returned %d", rc);
	if (rc == 0) {
		const char *got = model_object_name(&mo);
		FUZZ_CHECK(got && *got, "decoded %s without a name", model_kind_name(mo.kind));
		st->n_objects++;
		model_object_free(&mo);
	}
out:
	json_decref(ev);
}

static uint64_t mix(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull; /* a line boundary */
}

static int on_line(void *arg, const char *line, size_t len)
{
	struct stream *st = arg;
	FUZZ_CHECK(len > 0 && len <= MAX_LINE, "a line of %zu bytes", len);
	FUZZ_CHECK(!memchr(line, '\n', len), "a newline inside a line");
	st->n_lines++;
	st->digest = mix(st->digest, line, len);
	decode_event(st, line, len);
	return 0;
}

/* Feeds the body in chunks of sizes[i % n] bytes (n 0: whole); returns the
 * first error (the watch ends there) or 0. */
static int run(struct stream *st, const char *body, size_t len, const uint8_t *sizes, size_t n)
{
	struct kube_lines lb;
	kube_lines_init(&lb, MAX_LINE);
	int rc = 0;
	for (size_t off = 0, i = 0; off < len && rc == 0;) {
		size_t c = n ? (size_t)(sizes[i++ % n] % 97) + 1 : len - off;
		if (c > len - off)
			c = len - off;
		rc = kube_lines_feed(&lb, body + off, c, on_line, st);
		off += c;
		FUZZ_CHECK(lb.len <= MAX_LINE, "%zu bytes held for a line", lb.len);
	}
	FUZZ_CHECK(rc == 0 || rc == -E2BIG, "kube_lines_feed returned %d", rc);
	kube_lines_free(&lb);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* byte 0: the resource (low 2 bits) and how many chunk sizes follow
	 * (bits 2-4); then the sizes; then the body */
	if (size < 1)
		return 0;
	size_t n_sizes = (data[0] >> 2) & 7;
	if (size < 1 + n_sizes)
		return 0;
	const char *body = (const char *)data + 1 + n_sizes;
	size_t len = size - 1 - n_sizes;
	static const uint8_t one = 0;
	struct stream st[3];
	int rc[3];
	for (int i = 0; i < 3; i++)
		st[i] = (struct stream){.res = (data[0] & 3) % 3, .digest = 0xcbf29ce484222325ull};
	rc[0] = run(&st[0], body, len, NULL, 0);
	rc[1] = run(&st[1], body, len, data + 1, n_sizes);
	rc[2] = run(&st[2], body, len, &one, 1); /* a byte at a time */
	if (trace)
		fprintf(stderr, "%zu bytes: %zu lines, %zu events, %zu objects, rc %d\n", len,
			st[0].n_lines, st[0].n_events, st[0].n_objects, rc[0]);
	for (int i = 1; i < 3; i++)
		FUZZ_CHECK(rc[i] == rc[0] && st[i].n_lines == st[0].n_lines &&
			       st[i].digest == st[0].digest && st[i].n_objects == st[0].n_objects,
			   "chunking %d: %zu lines rc %d, whole: %zu lines rc %d", i, st[i].n_lines,
			   rc[i], st[0].n_lines, rc[0]);
	return 0;
}
