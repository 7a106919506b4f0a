/* The HTTP endpoint on the control loop: libmicrohttpd parses and limits the
 * requests; libuv watches its epoll fd and runs its timeouts. See http.h. */
#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"

struct http_server {
	uv_poll_t poll;
	uv_timer_t timer;
	struct MHD_Daemon *d;
	int fd; /* the listening socket */
	int handles_open;
	http_handler_fn handler;
	void *arg;
	char listen[96];
};

void http_reply_text(struct http_reply *out, int status, const char *content_type, const char *text)
{
	out->status = status;
	out->content_type = content_type;
	out->len = strlen(text);
	out->body = malloc(out->len + 1);
	if (!out->body) {
		out->len = 0;
		out->status = 500;
		return;
	}
	memcpy(out->body, text, out->len + 1);
}

static int parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *port;
	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || (size_t)(colon - text) >= sizeof(host) || strchr(text, ':') != colon)
			return -EINVAL;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port = colon + 1;
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (*port == '\0' || *end || p < 0 || p > 65535)
		return -EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*a6);
		return 0;
	}
	return -EINVAL;
}

int http_listen_check(const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return parse_listen(text, &ss, &len);
}

static int open_listener(const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	if (parse_listen(text, &ss, &len) < 0)
		return -EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* libmicrohttpd's own messages: the format comes from the library. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *h = cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* Mostly what clients did wrong: never at a level a client could flood. */
	log_debug("http %s: %s", h->listen, msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_reply r = {.status = 500, .content_type = "text/plain; charset=utf-8"};
	struct MHD_Response *resp;
	enum MHD_Result ret;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_reply_text(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
				"only GET and HEAD\n");
	} else {
		h->handler(h->arg, url, &r);
	}
	resp = MHD_create_response_from_buffer(
	    r.len, r.body, r.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(r.body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r.status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, (unsigned)r.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_timer(uv_timer_t *t);

/* Lets MHD do what is ready, then sleeps until its next timeout, or at most
 * RUN_MAX_IDLE_MS: MHD puts its listening socket back into its epoll set
 * only at the start of a run, so after it stood at its connection limit a
 * waiting client would otherwise wake nothing. */
#define RUN_MAX_IDLE_MS 250

static void run(struct http_server *h)
{
	MHD_UNSIGNED_LONG_LONG ms = RUN_MAX_IDLE_MS;
	MHD_run(h->d);
	if (MHD_get_timeout(h->d, &ms) != MHD_YES || ms > RUN_MAX_IDLE_MS)
		ms = RUN_MAX_IDLE_MS;
	uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
}

static void on_timer(uv_timer_t *t)
{
	run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	run(p->data);
}

static void on_closed(uv_handle_t *hd)
{
	struct http_server *h = hd->data;
	if (--h->handles_open == 0)
		free(h);
}

int http_start(uv_loop_t *loop, const struct http_config *cfg, struct http_server **out)
{
	int ret;
	struct http_server *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->handler = cfg->handler;
	h->arg = cfg->arg;
	snprintf(h->listen, sizeof(h->listen), "%s", cfg->listen);
	int fd = cfg->fd > 0 ? fcntl(cfg->fd, F_DUPFD_CLOEXEC, 3) : open_listener(cfg->listen);
	if (cfg->fd > 0 && fd < 0)
		fd = -errno;
	if (fd < 0) {
		ret = fd;
		log_error("http %s: %s", cfg->listen,
			  fd == -EINVAL ? "expected ADDR:PORT or [ADDR]:PORT" : strerror(-fd));
		goto fail;
	}
	unsigned max_conns = cfg->max_conns ? cfg->max_conns : 64;
	unsigned timeout_s = cfg->timeout_s ? cfg->timeout_s : 10;
	size_t max_request = cfg->max_request ? cfg->max_request : 16384;
	/* External mode on MHD's own epoll set: the loop only watches one fd.
	 * The memory limit bounds a request's line and headers (MHD answers
	 * 431 or 414 beyond it); the timeout closes slow and idle clients. */
	h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_LISTEN_SOCKET,
				fd, MHD_OPTION_CONNECTION_LIMIT, max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, max_request, MHD_OPTION_END);
	if (!h->d) {
		close(fd);
		log_error("http %s: cannot start the HTTP server", cfg->listen);
		ret = -EIO;
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || uv_poll_init(loop, &h->poll, info->epoll_fd) < 0) {
		MHD_stop_daemon(h->d);
		log_error("http %s: cannot watch the HTTP server's events", cfg->listen);
		ret = -EIO;
		goto fail;
	}
	h->fd = fd;
	uv_timer_init(loop, &h->timer);
	h->poll.data = h->timer.data = h;
	h->handles_open = 2;
	uv_poll_start(&h->poll, UV_READABLE, on_poll);
	run(h);
	log_info("http: serving /metrics, /health, /ready and /debug/model on %s", cfg->listen);
	*out = h;
	return 0;
fail:
	free(h);
	return ret;
}

int http_listener_fd(const struct http_server *h)
{
	return h ? h->fd : -1;
}

void http_stop(struct http_server *h)
{
	if (!h)
		return;
	/* The loop lets go of the epoll fd before MHD closes it. */
	uv_poll_stop(&h->poll);
	uv_close((uv_handle_t *)&h->poll, on_closed);
	uv_close((uv_handle_t *)&h->timer, on_closed);
	MHD_stop_daemon(h->d);
	h->d = NULL;
}
