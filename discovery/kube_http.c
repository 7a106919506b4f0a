/* libcurl's multi interface on the libuv loop: curl tells which sockets to
 * watch (uv_poll) and when to call it back (uv_timer); each request carries
 * its own silence timer so that a server that accepts and then says nothing
 * cannot hold a request open for ever. Requests wait in a queue for the
 * client-side limits, and every one is counted for the metrics. */
#include "discovery/kube_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/log.h"

#define ERR_BODY_MAX	   (64u << 10)
#define CONNECT_TIMEOUT_MS 10000
#define KEEPALIVE_IDLE_S   10
#define KEEPALIVE_INTVL_S  5
#define KEEPALIVE_CNT	   3
/* Bytes curl reads per wake-up of a socket. Its default (16 KiB) is about one
 * EndpointSlice event of 100 endpoints, and the loop builds a snapshot between
 * two wake-ups: at one event per build, a busy watch fell ever further behind. */
#define RECV_BUFFER (256L << 10)

struct http_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct kube_http *h;
	struct http_sock *prev, *next;
};

struct kube_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct kube_conn *conn;
	struct kube_http_req *reqs;
	struct http_sock *socks;
	bool freeing;
	/* requests waiting for the limits, oldest first */
	struct kube_http_req *wait_head, *wait_tail;
	struct kube_limit lim;
	uv_timer_t lim_timer;
	int closing; /* handles still to close before h is freed */
	struct kube_http_stats stats[KUBE_HTTP_SLOTS];
};

struct kube_http_req {
	struct kube_http *h;
	CURL *easy;
	struct curl_slist *headers;
	struct kube_http_opts o;
	uv_timer_t silence;
	bool got_headers;
	bool timed_out;
	int abort_code;
	unsigned retry_after;
	long status;
	char *err_body;
	size_t err_len;
	char errbuf[CURL_ERROR_SIZE];
	char msg[CURL_ERROR_SIZE + 64];
	struct kube_http_req *prev, *next;
	struct kube_http_req *wnext; /* in the wait queue */
	bool waiting, started;
	uint64_t asked_ns, start_ns, headers_ns;
};

const double kube_http_dur_bounds[KUBE_HTTP_DUR_BOUNDS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static const long code_values[KUBE_HTTP_CODES - 2] = {200, 401, 403, 404, 410, 429, 500, 503};

const char *kube_http_code_name(unsigned i)
{
	static const char *const names[KUBE_HTTP_CODES] = {"200", "401", "403", "404",	 "410",
							   "429", "500", "503", "other", "none"};
	return i < KUBE_HTTP_CODES ? names[i] : "none";
}

static unsigned code_index(long status)
{
	if (status <= 0)
		return KUBE_HTTP_CODES - 1;
	for (unsigned i = 0; i < KUBE_HTTP_CODES - 2; i++)
		if (code_values[i] == status)
			return i;
	return KUBE_HTTP_CODES - 2;
}

static unsigned dur_bucket(double s)
{
	unsigned b = 0;
	while (b < KUBE_HTTP_DUR_BOUNDS && s > kube_http_dur_bounds[b])
		b++;
	return b;
}

static struct kube_http_stats *slot_stats(struct kube_http *h, const struct kube_http_req *r)
{
	return &h->stats[r->o.slot < KUBE_HTTP_SLOTS ? r->o.slot : 0];
}

const struct kube_http_stats *kube_http_stats(const struct kube_http *h, unsigned slot)
{
	return slot < KUBE_HTTP_SLOTS ? &h->stats[slot] : NULL;
}

static void check_done(struct kube_http *h);
static void on_lim_timer(uv_timer_t *t);
static void wait_remove(struct kube_http *h, struct kube_http_req *r);

/* ---- sockets and timers ---------------------------------------------------- */

static void sock_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static void sock_drop(struct http_sock *s)
{
	struct kube_http *h = s->h;

	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct http_sock *s = p->data;
	struct kube_http *h = s->h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct kube_http *h = userp;
	struct http_sock *s = socketp;
	(void)e;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(h->multi, fd, NULL);
			sock_drop(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->fd = fd;
		s->h = h;
		s->poll.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		curl_multi_assign(h->multi, fd, s);
	}
	int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
	struct kube_http *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
	struct kube_http *h = userp;
	(void)m;

	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- requests -------------------------------------------------------------- */

static void req_closed(uv_handle_t *hd)
{
	struct kube_http_req *r = hd->data;
	free(r->err_body);
	free(r);
}

/* Takes the request out of curl and the list, and frees it once its timer
 * handle is closed. Never called from inside a curl callback. */
static void req_destroy(struct kube_http_req *r)
{
	struct kube_http *h = r->h;

	if (r->waiting)
		wait_remove(h, r);
	if (r->started) {
		r->started = false;
		kube_limit_done(&h->lim, r->o.long_running);
		/* The next one may start: from the loop, not from inside the
		 * caller that ended this one. */
		if (h->wait_head && !h->freeing)
			uv_timer_start(&h->lim_timer, on_lim_timer, 0, 0);
	}
	if (r->easy) {
		curl_multi_remove_handle(h->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	uv_timer_stop(&r->silence);
	uv_close((uv_handle_t *)&r->silence, req_closed);
}

static void req_finish(struct kube_http_req *r, CURLcode code)
{
	struct kube_http_result res = {.curl_code = (int)code, .body = "", .error = ""};
	long status = 0;

	if (r->easy)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	res.status = status;
	res.retry_after = r->retry_after;
	res.timed_out = r->timed_out || code == CURLE_OPERATION_TIMEDOUT;
	if (r->timed_out) {
		snprintf(r->msg, sizeof(r->msg), "%s for %u ms",
			 r->got_headers ? "no data" : "no response",
			 r->got_headers ? r->o.idle_ms : r->o.first_ms);
		res.error = r->msg;
	} else if (r->abort_code < 0) {
		snprintf(r->msg, sizeof(r->msg), "stopped reading: %s", strerror(-r->abort_code));
		res.error = r->msg;
	} else if (code != CURLE_OK) {
		snprintf(r->msg, sizeof(r->msg), "%s",
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
		res.error = r->msg;
	}
	if (r->err_body) {
		res.body = r->err_body;
		res.body_len = r->err_len;
	}
	if (r->started) {
		struct kube_http_stats *st = slot_stats(r->h, r);
		unsigned ci = code_index(status);
		uint64_t end = r->o.long_running && r->headers_ns ? r->headers_ns : uv_hrtime();
		double d = (double)(end - r->start_ns) / 1e9;
		st->requests[ci]++;
		st->dur[ci][dur_bucket(d)]++;
		st->dur_sum[ci] += d;
	}
	kube_http_done_cb done = r->o.on_done;
	void *arg = r->o.arg;
	/* The callback may start new requests; this one is gone by then. */
	curl_multi_remove_handle(r->h->multi, r->easy);
	done(arg, &res);
	req_destroy(r);
}

static void check_done(struct kube_http *h)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct kube_http_req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r)
			req_finish(r, m->data.result);
	}
}

static void on_silence(uv_timer_t *t)
{
	struct kube_http_req *r = t->data;

	r->timed_out = true;
	req_finish(r, CURLE_OPERATION_TIMEDOUT);
}

/* Re-arms the silence timer: when a request starts, and whenever bytes come. */
static void touch(struct kube_http_req *r)
{
	unsigned ms = r->got_headers ? r->o.idle_ms : r->o.first_ms;

	if (ms)
		uv_timer_start(&r->silence, on_silence, ms, 0);
	else
		uv_timer_stop(&r->silence);
}

void kube_http_set_idle(struct kube_http_req *req, unsigned idle_ms)
{
	if (!req)
		return;
	req->o.idle_ms = idle_ms;
	if (req->got_headers)
		touch(req);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct kube_http_req *r = arg;
	size_t len = size * n;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->got_headers = false; /* a new response (after 100 Continue) */
		r->retry_after = 0;
	} else if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		/* 1xx responses are followed by the real one */
		r->got_headers = status >= 200;
		if (r->got_headers && !r->headers_ns)
			r->headers_ns = uv_hrtime();
		if (r->got_headers && r->o.on_headers)
			r->o.on_headers(r->o.arg, status);
	} else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		unsigned long v = strtoul(p + 12, NULL, 10);
		r->retry_after = v > 3600 ? 3600 : (unsigned)v;
	}
	touch(r);
	return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct kube_http_req *r = arg;
	size_t len = size * n;
	long status = 0;

	touch(r);
	slot_stats(r->h, r)->bytes += len;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		int rc = r->o.on_data ? r->o.on_data(r->o.arg, p, len) : 0;
		if (rc < 0) {
			r->abort_code = rc;
			return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
		}
		return len;
	}
	/* Keep the start of an error body: the Status object says why. */
	if (r->err_len < ERR_BODY_MAX) {
		size_t take = len < ERR_BODY_MAX - r->err_len ? len : ERR_BODY_MAX - r->err_len;
		char *nb = realloc(r->err_body, r->err_len + take + 1);
		if (nb) {
			memcpy(nb + r->err_len, p, take);
			r->err_len += take;
			nb[r->err_len] = '\0';
			r->err_body = nb;
		}
	}
	return len;
}

/* What curl has no option for in this version: the count of keepalive
 * probes, and a bound on unacknowledged data (a request written into a dead
 * connection). Failures are harmless: the defaults only take longer. */
static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	int cnt = KEEPALIVE_CNT;
	unsigned user_timeout = (KEEPALIVE_IDLE_S + KEEPALIVE_CNT * KEEPALIVE_INTVL_S) * 1000u;
	(void)arg;

	if (purpose == CURLSOCKTYPE_IPCXN) {
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	}
	return CURL_SOCKOPT_OK;
}

static int set_tls_and_auth(struct kube_http_req *r, const char *token)
{
	struct kube_conn *c = r->h->conn;
	CURL *e = r->easy;
	char *auth = NULL;

	if (c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->ca_pem) {
		struct curl_blob b = {c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	if (c->cert_pem) {
		struct curl_blob b = {c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (c->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	if (c->key_pem) {
		struct curl_blob b = {c->key_pem, c->key_pem_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
	}
	if (c->proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);

	struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
	if (!l)
		return -ENOMEM;
	r->headers = l;
	if (token) {
		if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
			return -ENOMEM;
		l = curl_slist_append(r->headers, auth);
		/* the slist holds its own copy; do not leave the token lying around */
		explicit_bzero(auth, strlen(auth));
		free(auth);
		if (!l)
			return -ENOMEM;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	return 0;
}

/* ---- the limits ---------------------------------------------------------------- */

static uint64_t limit_try(struct kube_http *h, const struct kube_http_req *r)
{
	return kube_limit_try(&h->lim, !r->o.untokened, r->o.long_running, clock_now_ms());
}

/* Hands a request the limits let go to curl. */
static int req_start(struct kube_http_req *r)
{
	struct kube_http *h = r->h;

	r->started = true;
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK)
		return -ENOMEM; /* req_destroy gives its place back */
	r->start_ns = uv_hrtime();
	struct kube_http_stats *st = slot_stats(h, r);
	double waited = (double)(r->start_ns - r->asked_ns) / 1e9;
	st->wait[dur_bucket(waited)]++;
	st->wait_sum += waited;
	touch(r);
	return 0;
}

static void wait_push(struct kube_http *h, struct kube_http_req *r)
{
	r->waiting = true;
	r->wnext = NULL;
	if (h->wait_tail)
		h->wait_tail->wnext = r;
	else
		h->wait_head = r;
	h->wait_tail = r;
	slot_stats(h, r)->waited++;
}

static void wait_remove(struct kube_http *h, struct kube_http_req *r)
{
	struct kube_http_req **pp = &h->wait_head, *prev = NULL;
	while (*pp && *pp != r) {
		prev = *pp;
		pp = &(*pp)->wnext;
	}
	if (*pp)
		*pp = r->wnext;
	if (h->wait_tail == r)
		h->wait_tail = prev;
	r->waiting = false;
}

/* Starts the waiting requests the limits let go, in order; arms the timer
 * for the next token, or waits for a request in flight to end. */
static void on_lim_timer(uv_timer_t *t)
{
	struct kube_http *h = t->data;

	while (h->wait_head) {
		struct kube_http_req *r = h->wait_head;
		uint64_t wait = limit_try(h, r);
		if (wait == UINT64_MAX)
			return;
		if (wait) {
			uv_timer_start(&h->lim_timer, on_lim_timer, wait, 0);
			return;
		}
		wait_remove(h, r);
		if (req_start(r) < 0)
			req_finish(r, CURLE_OUT_OF_MEMORY);
	}
}

void kube_http_set_limits(struct kube_http *h, double qps, unsigned burst, unsigned max_inflight)
{
	unsigned inflight = h->lim.inflight;
	kube_limit_init(&h->lim, qps, burst, max_inflight, clock_now_ms());
	h->lim.inflight = inflight;
}

int kube_http_get(struct kube_http *h, const struct kube_http_opts *o, struct kube_http_req **out)
{
	struct kube_http_req *r = calloc(1, sizeof(*r));
	char *url = NULL;
	int rc = -ENOMEM;

	if (!r)
		return -ENOMEM;
	r->h = h;
	r->o = *o;
	uv_timer_init(h->loop, &r->silence);
	r->silence.data = r;
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	if (asprintf(&url, "%s%s", h->conn->server, o->path_query) < 0) {
		url = NULL;
		goto fail;
	}
	r->easy = curl_easy_init();
	if (!r->easy)
		goto fail;
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "svcdns/" SVCDNS_VERSION);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(o->first_ms && o->first_ms < CONNECT_TIMEOUT_MS
				    ? o->first_ms
				    : CONNECT_TIMEOUT_MS));
	/* A quiet watch carries no bytes for minutes: a peer (or a NAT or
	 * proxy on the way) that vanished without a FIN is noticed by TCP
	 * keepalive within IDLE + CNT * INTVL seconds, and the watch then fails
	 * and is retried, which is what freshness relies on (kube_contact.h). */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, (long)KEEPALIVE_IDLE_S);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, (long)KEEPALIVE_INTVL_S);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	rc = set_tls_and_auth(r, kubeconfig_token(h->conn, clock_now_ms()));
	if (rc < 0)
		goto fail;
	r->asked_ns = uv_hrtime();
	uint64_t wait = h->wait_head ? 1 : limit_try(h, r);
	if (wait == 0 && (rc = req_start(r)) < 0)
		goto fail;
	if (wait) {
		wait_push(h, r);
		if (wait != UINT64_MAX && !h->wait_head->wnext)
			uv_timer_start(&h->lim_timer, on_lim_timer, wait, 0);
	}
	free(url);
	*out = r;
	return 0;
fail:
	free(url);
	req_destroy(r);
	return rc;
}

void kube_http_cancel(struct kube_http_req *r)
{
	if (r)
		req_destroy(r);
}

int kube_http_new(uv_loop_t *loop, struct kube_conn *conn, struct kube_http **out)
{
	static bool global_done;
	struct kube_http *h;

	/* Not thread-safe: called from main before any worker thread exists. */
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -ENOMEM;
		global_done = true;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return -ENOMEM;
	}
	h->loop = loop;
	h->conn = conn;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	uv_timer_init(loop, &h->lim_timer);
	h->lim_timer.data = h;
	kube_limit_init(&h->lim, 0, 0, 0, clock_now_ms());
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = h;
	return 0;
}

static void http_closed(uv_handle_t *hd)
{
	struct kube_http *h = hd->data;
	if (--h->closing == 0)
		free(h);
}

void kube_http_free(struct kube_http *h)
{
	if (!h)
		return;
	h->freeing = true;
	while (h->reqs)
		req_destroy(h->reqs);
	/* Cleanup closes the cached connections; their sockets are dropped
	 * here whether or not curl reports each one. */
	curl_multi_cleanup(h->multi);
	while (h->socks)
		sock_drop(h->socks);
	uv_timer_stop(&h->timer);
	uv_timer_stop(&h->lim_timer);
	h->closing = 2;
	uv_close((uv_handle_t *)&h->timer, http_closed);
	uv_close((uv_handle_t *)&h->lim_timer, http_closed);
}
