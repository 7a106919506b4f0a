/* HTTP for the Kubernetes API source: libcurl's multi interface driven by the
 * libuv loop (uv_poll per socket, one uv_timer for curl's timeouts) in
 * kube_http.c, and the framing of response bodies (a watch stream into lines,
 * a list page into its items) in kube_body.c.
 *
 * Owns: curl handles and their sockets, TLS and credentials of each request
 * (from a struct kube_conn), the per-request silence timeout, the client-side
 * limits every request waits for (kube_limit.h: requests start in the order
 * asked), the statistics of every request, and the line buffer. Must never: interpret the
 * Kubernetes protocol (the reflectors do, in kube_list.c and kube_watch.c) or log a token. The
 * transport runs on the loop's thread; a list page is split in the thread pool. */
#ifndef SVCDNS_KUBE_HTTP_H
#define SVCDNS_KUBE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "discovery/kube_limit.h"
#include "discovery/kubeconfig.h"

struct kube_http;
struct kube_http_req;

struct kube_http_result {
	int curl_code;	      /* CURLcode; 0 when the transfer completed */
	long status;	      /* HTTP status, 0 when none was received */
	bool timed_out;	      /* our silence timeout (or curl's) ended it */
	unsigned retry_after; /* seconds from a Retry-After header, 0 when none */
	const char *error;    /* one line for logs; never NULL */
	const char *body;     /* start of a non-2xx body (the Status object), or "" */
	size_t body_len;
};

/* Body bytes of a 2xx response as they arrive. Return 0 to go on, or a
 * negative errno-style code to abort the transfer: done is still called, with
 * curl_code != 0 and error "stopped reading: " and that code's strerror. */
typedef int (*kube_http_data_cb)(void *arg, const char *data, size_t len);
/* The response headers are in, with the final status (not 1xx). Called from
 * inside curl: it may start timers, never requests. */
typedef void (*kube_http_headers_cb)(void *arg, long status);
/* Called exactly once per request unless it was cancelled. The request is
 * freed right after the callback returns. */
typedef void (*kube_http_done_cb)(void *arg, const struct kube_http_result *r);

struct kube_http_opts {
	const char *path_query; /* "/api/v1/services?limit=500": appended to the server */
	/* Abort when no byte arrived for this long; first_ms applies until the
	 * response headers are in, idle_ms afterwards. 0: no limit. */
	unsigned first_ms;
	unsigned idle_ms;
	kube_http_data_cb on_data;
	kube_http_headers_cb on_headers; /* or NULL */
	kube_http_done_cb on_done;
	void *arg;
	/* A watch: not counted in flight; its duration is until its headers. */
	bool long_running;
	/* Takes no token of the rate (a later page of a list already begun). */
	bool untokened;
	unsigned slot; /* statistics slot, < KUBE_HTTP_SLOTS */
};

/* ---- statistics ---------------------------------------------------------------
 * Per slot (the caller's labels: kube.c uses verb x resource): requests and
 * their duration by status code (KUBE_HTTP_CODES kept apart: see
 * kube_http_code_name), the time waited for the limits, the body bytes
 * received. Durations: until the body is in, for a watch until its headers;
 * a failure, until it failed. */
#define KUBE_HTTP_SLOTS	     8
#define KUBE_HTTP_CODES	     10
#define KUBE_HTTP_DUR_BOUNDS 14

struct kube_http_stats {
	uint64_t requests[KUBE_HTTP_CODES];
	uint64_t dur[KUBE_HTTP_CODES][KUBE_HTTP_DUR_BOUNDS + 1]; /* per bucket, last +Inf */
	double dur_sum[KUBE_HTTP_CODES];
	uint64_t wait[KUBE_HTTP_DUR_BOUNDS + 1];
	double wait_sum;
	uint64_t waited; /* requests that could not start at once */
	uint64_t bytes;
};

/* Upper bounds of the duration buckets, seconds. */
extern const double kube_http_dur_bounds[KUBE_HTTP_DUR_BOUNDS];
/* "200", "401", ..., "other" (any other status), "none" (no response). */
const char *kube_http_code_name(unsigned i);
const struct kube_http_stats *kube_http_stats(const struct kube_http *h, unsigned slot);
/* The client-side limits (kube_limit_init's meaning), from now on. */
void kube_http_set_limits(struct kube_http *h, double qps, unsigned burst, unsigned max_inflight);

int kube_http_new(uv_loop_t *loop, struct kube_conn *conn, struct kube_http **out);
/* Cancels every request (no callbacks) and closes every handle; the loop
 * finishes closing them. */
void kube_http_free(struct kube_http *h);

/* A request: it starts now, or once the limits let it (in the order asked);
 * on_done is called either way, never from inside this call. */
int kube_http_get(struct kube_http *h, const struct kube_http_opts *o, struct kube_http_req **out);
/* Changes a request's silence limit once its headers are in (idle_ms), from
 * now on: a streamed list allows less silence before its end than after. */
void kube_http_set_idle(struct kube_http_req *req, unsigned idle_ms);
/* Stops a request, started or waiting; its callbacks are not called afterwards. */
void kube_http_cancel(struct kube_http_req *req);

/* ---- lines -----------------------------------------------------------------
 * A watch body is newline-delimited JSON; one event may arrive in many
 * pieces and many events in one. Lines longer than `max` are refused. */
struct kube_lines {
	char *buf;
	size_t len, cap, max;
};

typedef int (*kube_line_cb)(void *arg, const char *line, size_t len);

void kube_lines_init(struct kube_lines *lb, size_t max);
void kube_lines_reset(struct kube_lines *lb); /* drops a partial line */
void kube_lines_free(struct kube_lines *lb);
/* Calls cb for every complete non-empty line (without its "\n" or "\r\n").
 * Returns 0, -E2BIG when a line grows past max (the buffer is reset), the
 * first negative value cb returned, or -ENOMEM. */
int kube_lines_feed(struct kube_lines *lb, const char *data, size_t len, kube_line_cb cb,
		    void *arg);

/* ---- list pages ------------------------------------------------------------
 * A list page is one JSON object {"metadata": {...}, "items": [...], ...}.
 * Splitting it lets each item be parsed, decoded and freed on its own: as one
 * tree, a page of 500 objects is tens of thousands of small blocks that are
 * all freed at once, and malloc then spends more time consolidating them than
 * the parse took. Only the structure is followed here; jansson checks each
 * piece when it parses it. */
struct kube_span {
	const char *p; /* NULL: absent */
	size_t len;
};

typedef int (*kube_item_cb)(void *arg, size_t index, const char *item, size_t len);

/* Calls cb for every element of the top-level "items" array, in order, and
 * sets *meta to the top-level "metadata" value. Returns 0, the first negative
 * value cb returned, or -EINVAL when the body is not an object whose members
 * are well nested, or has no "items" array. With cb NULL, it returns 0 as soon
 * as it has the metadata (the API server sends it before the items): the rest
 * is neither read nor checked. */
int kube_list_split(const char *body, size_t len, struct kube_span *meta, kube_item_cb cb,
		    void *arg);

#endif
