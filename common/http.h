/* The HTTP endpoint (--http): a small GET-only HTTP/1.1 server on the control
 * thread's libuv loop, for /metrics, /health, /ready and /debug/model.
 *
 * Owns: the listening socket and libmicrohttpd in external-event mode (its
 * epoll fd watched by the loop, its timeouts run by a loop timer), the limits
 * (connections, bytes of a request, idle time) and the routing of a path to
 * the caller's handler.
 * Must never: run on, or wait for, a DNS worker; handlers run on the loop
 * thread and must return at once. */
#ifndef SVCDNS_HTTP_H
#define SVCDNS_HTTP_H

#include <stddef.h>

#include <uv.h>

/* What a handler answers: `body` is malloc'd and taken over (may be NULL for
 * an empty body). */
struct http_reply {
	int status;
	const char *content_type; /* a static string */
	char *body;
	size_t len;
};

/* Called for GET and HEAD requests only (others get 405 without it). */
typedef void (*http_handler_fn)(void *arg, const char *path, struct http_reply *out);

struct http_config {
	const char *listen; /* "ADDR:PORT" or "[V6]:PORT" */
	int fd;		    /* > 0: serve this listening socket (taken over) instead of binding */
	unsigned max_conns; /* open connections, default 64 */
	unsigned timeout_s; /* an idle or slow connection is closed after this, default 10 */
	size_t max_request; /* bytes of a request's line and headers, default 16 KiB */
	http_handler_fn handler;
	void *arg;
};

struct http_server;

/* Binds the address (logged with the reason when it cannot) and serves on
 * `loop`. Returns 0 or a negative errno. */
int http_start(uv_loop_t *loop, const struct http_config *cfg, struct http_server **out);
/* The listening socket, to hand over to another process (until http_stop). */
int http_listener_fd(const struct http_server *h);
/* Closes the socket and every connection; memory goes with the loop's close
 * callbacks (run the loop once more before closing it). */
void http_stop(struct http_server *h);

/* Whether `text` is an address http_start accepts ("ADDR:PORT", "[V6]:PORT");
 * 0 or -EINVAL. */
int http_listen_check(const char *text);

/* Helpers for handlers: a reply with a copy of `text`. */
void http_reply_text(struct http_reply *out, int status, const char *content_type,
		     const char *text);

#endif
