/* TCP on a DNS worker: several queries per connection (RFC 7766), each carried
 * out as dns_process() decides; idle and lifetime limits, and reading paused
 * while a client's answers pile up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns/worker.h"
#include "wire/tcpframe.h"
#include "zones/snapshot.h"

#define TCP_WRITE_QUEUE_MAX (256u << 10)
/* Queries of one connection the forwarder may hold at once; more wait unread. */
#define TCP_PENDING_MAX 64
/* While draining, a connection is closed once it owes nothing and has sent
 * nothing for this long: a query already on its way (the one a client
 * connected to send) is still read and answered, rather than met by a reset. */
#define TCP_DRAIN_QUIET_MS 100

struct tcp_conn {
	uv_tcp_t handle;
	uv_timer_t idle; /* idle timeout, or the end of its lifetime if sooner */
	struct worker *w;
	struct tcp_conn *prev, *next;
	uint8_t *buf;
	size_t len, cap;
	bool closing;
	bool paused;
	unsigned handles_open;
	unsigned pending; /* queries the forwarder holds: it replies later */
	struct sockaddr_storage peer;
	int peer_len;
	uint64_t born_ms; /* loop time of the accept, for --tcp-max-lifetime */
	bool expired;	  /* past its lifetime: answers what it owes, then closes */
};

struct tcp_write {
	uv_write_t req;
	struct tcp_conn *c;
	uint8_t *ext; /* bytes written from elsewhere (a zone transfer), freed after */
	uint8_t data[];
};

/* A connection is freed once its handles are closed and the forwarder has
 * let go of every query it took from it. */
static void conn_drain(struct tcp_conn *c);

static void conn_free(struct tcp_conn *c)
{
	if (c->handles_open == 0 && c->pending == 0) {
		struct worker *w = c->w;
		w->tcp_conns--;
		if (c->prev)
			c->prev->next = c->next;
		else
			w->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c->buf);
		free(c);
		dns_worker_drained_check(w);
	}
}

static void conn_free_cb(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	c->handles_open--;
	conn_free(c);
}

static void conn_close(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->idle, conn_free_cb);
	uv_close((uv_handle_t *)&c->handle, conn_free_cb);
}

static void on_conn_timer(uv_timer_t *t);

/* One timer per connection: --tcp-idle-timeout from the last byte read, cut
 * short by the end of --tcp-max-lifetime, so that a client trickling a byte
 * now and then (slow loris) still goes at its lifetime. */
static void conn_arm_timer(struct tcp_conn *c)
{
	const struct dns_server_config *cfg = c->w->cfg;
	uint64_t delay = cfg->tcp_idle_timeout_ms;
	if (cfg->tcp_max_lifetime_ms && !c->expired) {
		uint64_t end = c->born_ms + cfg->tcp_max_lifetime_ms, now = uv_now(&c->w->loop);
		uint64_t left = end > now ? end - now : 0;
		if (left < delay)
			delay = left;
	}
	if (c->w->draining && delay > TCP_DRAIN_QUIET_MS)
		delay = TCP_DRAIN_QUIET_MS;
	uv_timer_start(&c->idle, on_conn_timer, delay, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
	struct tcp_conn *c = t->data;
	struct worker *w = c->w;
	const struct dns_server_config *cfg = w->cfg;
	uint64_t now = uv_now(&w->loop);
	if (w->draining && !c->expired) {
		if (c->pending == 0 && c->handle.write_queue_size == 0)
			conn_close(c);
		else
			conn_arm_timer(c);
		return;
	}
	if (c->expired) {
		conn_close(c); /* it had an idle period to take what it was owed */
		return;
	}
	if (cfg->tcp_max_lifetime_ms && now >= c->born_ms + cfg->tcp_max_lifetime_ms) {
		dns_worker_limit_hit(w, DNS_LIMIT_TCP_LIFETIME, now);
		c->expired = true;
		uv_read_stop((uv_stream_t *)&c->handle);
		uv_timer_start(&c->idle, on_conn_timer, cfg->tcp_idle_timeout_ms, 0);
		conn_drain(c);
		return;
	}
	dns_worker_limit_hit(w, DNS_LIMIT_TCP_IDLE, now);
	conn_close(c);
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct tcp_conn *c = h->data;
	/* Grow to what the message in progress needs, never past one message. */
	size_t want = tcpframe_want(c->buf, c->len, 4096);
	if (want > c->cap) {
		uint8_t *nb = realloc(c->buf, want);
		if (nb) {
			c->buf = nb;
			c->cap = want;
		}
	}
	buf->base = (char *)c->buf + c->len;
	buf->len = c->cap - c->len;
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_resume(struct tcp_conn *c);

static void on_write(uv_write_t *req, int status)
{
	struct tcp_write *wr = (struct tcp_write *)req;
	struct tcp_conn *c = wr->c;
	(void)status;
	free(wr->ext);
	free(wr);
	conn_resume(c);
	conn_drain(c);
}

static bool tcp_send(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
	struct tcp_write *wr = malloc(sizeof(*wr) + 2 + len);
	if (!wr)
		return false;
	wr->c = c;
	wr->ext = NULL;
	wr->data[0] = (uint8_t)(len >> 8);
	wr->data[1] = (uint8_t)len;
	memcpy(wr->data + 2, msg, len);
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)(2 + len));
	if (uv_write(&wr->req, (uv_stream_t *)&c->handle, &b, 1, on_write) < 0) {
		free(wr);
		return false;
	}
	return true;
}

/* Sends bytes that are already framed (a zone transfer's messages). Takes
 * ownership of `data` (malloc'd). */
static bool tcp_send_framed(struct tcp_conn *c, uint8_t *data, size_t len)
{
	struct tcp_write *wr = malloc(sizeof(*wr));
	if (!wr) {
		free(data);
		return false;
	}
	wr->c = c;
	wr->ext = data;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	if (uv_write(&wr->req, (uv_stream_t *)&c->handle, &b, 1, on_write) < 0) {
		free(data);
		free(wr);
		return false;
	}
	return true;
}

/* What a connection may have queued: past it, reading pauses (TCPFRAME_PAUSE). */
static int conn_full(const struct tcp_conn *c)
{
	return c->handle.write_queue_size > TCP_WRITE_QUEUE_MAX || c->pending >= TCP_PENDING_MAX
		   ? TCPFRAME_PAUSE
		   : TCPFRAME_NEXT;
}

struct tcp_batch {
	struct tcp_conn *c;
	uint64_t t0;
};

/* One complete message of a connection (wire/tcpframe.h), carried out as
 * dns_process() decides. */
static int on_tcp_msg(void *arg, const uint8_t *msg, size_t mlen)
{
	struct tcp_batch *b = arg;
	struct tcp_conn *c = b->c;
	struct worker *w = c->w;
	static _Thread_local uint8_t resp[DNS_MAX_MSG];
	struct dns_msg m;
	m.req = msg;
	m.len = mlen;
	m.client = (struct forward_client){
	    .proto = DNS_TCP,
	    .peer = (struct sockaddr *)&c->peer,
	    .peer_len = (socklen_t)c->peer_len,
	    .conn = c,
	};
	m.t0 = b->t0;
	m.resp = resp;
	m.cap = sizeof(resp);
	const struct snapshot *snap = snapshot_enter(w->reader);
	enum dns_verdict v = dns_process(&w->ctx, snap, &m);
	snapshot_leave(w->reader);
	switch (v) {
	case DNS_FORWARD:
		/* Until dns_tcp_forward_reply: never called from inside
		 * forward_query (resolver/forward.h), so counting it now is in time. */
		c->pending++;
		return conn_full(c);
	case DNS_TRANSFER:
		if (!tcp_send_framed(c, m.xfr, m.xfr_len))
			return -EIO;
		return conn_full(c);
	case DNS_REPLY:
	case DNS_SLIP:
		if (!tcp_send(c, resp, m.rlen))
			return -EIO;
		return conn_full(c);
	default:
		return -EPROTO; /* not a query we can answer at all: RFC 7766 lets us close */
	}
}

/* Answers every complete message received, keeps the rest, and stops reading
 * a client whose answers pile up (it does not read them, or the forwarder
 * holds too many of its queries). */
static void conn_process(struct tcp_conn *c, uint64_t t0)
{
	struct tcp_batch b = {c, t0};
	ssize_t used = tcpframe_feed(c->buf, c->len, on_tcp_msg, &b);
	if (used < 0) {
		conn_close(c);
		return;
	}
	if (used) {
		memmove(c->buf, c->buf + used, c->len - (size_t)used);
		c->len -= (size_t)used;
	}
	if (!c->paused && !c->closing && conn_full(c) == TCPFRAME_PAUSE) {
		c->paused = true;
		uv_read_stop((uv_stream_t *)&c->handle);
		dns_worker_limit_hit(c->w, DNS_LIMIT_TCP_BACKLOG, uv_now(&c->w->loop));
	}
}

/* Once a paused connection's queue is down to half, what it sent meanwhile
 * is answered and reading starts again. Only from write callbacks: never
 * inside the forwarder's. */
static void conn_resume(struct tcp_conn *c)
{
	if (!c->paused || c->closing || c->expired ||
	    c->handle.write_queue_size >= TCP_WRITE_QUEUE_MAX / 2 ||
	    c->pending >= TCP_PENDING_MAX / 2)
		return;
	c->paused = false;
	conn_process(c, uv_hrtime());
	if (!c->paused && !c->closing)
		uv_read_start((uv_stream_t *)&c->handle, on_tcp_alloc, on_tcp_read);
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct tcp_conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return; /* EAGAIN: no byte, so no sign of life either */
	c->len += (size_t)nread;
	conn_arm_timer(c);
	conn_process(c, uv_hrtime());
}

/* The forwarder's answer to a query it took from connection `conn`. */
void dns_tcp_forward_reply(void *conn, const uint8_t *msg, size_t len)
{
	struct tcp_conn *c = conn;
	c->pending--;
	if (c->closing) {
		conn_free(c);
		return;
	}
	if (msg && !tcp_send(c, msg, len))
		conn_close(c);
	else
		conn_drain(c);
}

void dns_tcp_accept(uv_stream_t *server, int status)
{
	struct tcp_listener *l = server->data;
	struct worker *w = l->w;
	if (status < 0)
		return;
	struct tcp_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->w = w;
	uv_tcp_init(&w->loop, &c->handle);
	uv_timer_init(&w->loop, &c->idle);
	c->handle.data = c;
	c->idle.data = c;
	c->handles_open = 2;
	w->tcp_conns++;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->handle) < 0) {
		conn_close(c);
		return;
	}
	if (w->tcp_conns > w->cfg->tcp_max_conns) {
		dns_worker_limit_hit(w, DNS_LIMIT_TCP_CONNS, uv_now(&w->loop));
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->handle, 1);
	c->peer_len = sizeof(c->peer);
	if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&c->peer, &c->peer_len) < 0)
		c->peer.ss_family = AF_UNSPEC; /* no address: never allowed recursion */
	c->born_ms = uv_now(&w->loop);
	conn_arm_timer(c);
	uv_read_start((uv_stream_t *)&c->handle, on_tcp_alloc, on_tcp_read);
}

void dns_tcp_close_all(struct worker *w)
{
	for (struct tcp_conn *c = w->conns; c; c = c->next)
		conn_close(c);
}

/* Past its lifetime: a connection that owes its client nothing is closed. A
 * write handed to the kernel still reaches the client after the close. While
 * draining, the quiet timer closes it instead (TCP_DRAIN_QUIET_MS). */
static void conn_drain(struct tcp_conn *c)
{
	if (!c->expired || c->closing)
		return;
	uv_read_stop((uv_stream_t *)&c->handle);
	if (c->pending == 0 && c->handle.write_queue_size == 0)
		conn_close(c);
}

void dns_tcp_drain_all(struct worker *w)
{
	for (struct tcp_conn *c = w->conns; c; c = c->next)
		if (!c->closing)
			conn_arm_timer(c);
}
