/* Upstream TCP for the forwarder, on libuv: one connection per upstream per
 * loop, opened on demand (an answer came back truncated), shared by every
 * query to that upstream, answers matched by ID, closed after a while idle. */
#include "resolver/forward_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "resolver/forward_msg.h"
#include "resolver/upstream.h"
#include "wire/wire.h"

#define TCP_IDLE_MS 10000 /* a connection nobody waits on is closed */

struct tconn;

/* One query on a connection (or waiting for it to connect). */
struct tcp_req {
	struct fwd_xchg x; /* tcp: true */
	struct tconn *tc;  /* NULL once the connection failed */
	struct tcp_req *prev, *next;
	uint16_t id;
	bool written;
	bool reused; /* the connection had answered before this query was queued */
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	void (*on_error)(void *arg, int err, bool reused);
	void *arg;
	size_t len;
	uint8_t data[2 + FWD_QUERY_MAX]; /* length-prefixed */
};

struct tconn {
	uv_tcp_t h;
	uv_connect_t creq;
	uv_timer_t idle;
	struct fwd_tcp *pool;
	size_t up;
	bool connected, closing;
	bool broken; /* a write failed: the idle timer fails it from the loop */
	unsigned handles_open;
	unsigned answered;
	struct tcp_req *pending;
	uint8_t *buf;
	size_t len, cap;
};

struct twrite {
	uv_write_t req;
	uint8_t data[2 + FWD_QUERY_MAX];
};

struct fwd_tcp {
	uv_loop_t *loop;
	struct upstream_set *ups;
	unsigned slot;
	struct tconn **conns; /* per upstream */
};

int fwd_tcp_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, struct fwd_tcp **out)
{
	struct fwd_tcp *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->conns = calloc(ups->n ? ups->n : 1, sizeof(*t->conns));
	if (!t->conns) {
		free(t);
		return -ENOMEM;
	}
	t->loop = loop;
	t->ups = ups;
	t->slot = slot;
	*out = t;
	return 0;
}

void fwd_tcp_free(struct fwd_tcp *t)
{
	if (!t)
		return;
	free(t->conns);
	free(t);
}

/* ---- a connection's life --------------------------------------------------- */

static void tconn_closed(uv_handle_t *h)
{
	struct tconn *tc = h->data;
	if (--tc->handles_open == 0) {
		free(tc->buf);
		free(tc);
	}
}

static void tconn_close(struct tconn *tc)
{
	if (tc->closing)
		return;
	tc->closing = true;
	if (tc->pool->conns[tc->up] == tc)
		tc->pool->conns[tc->up] = NULL;
	uv_close((uv_handle_t *)&tc->idle, tconn_closed);
	uv_close((uv_handle_t *)&tc->h, tconn_closed);
}

void fwd_tcp_close(struct fwd_tcp *t)
{
	for (size_t i = 0; t && i < t->ups->n; i++)
		if (t->conns[i])
			tconn_close(t->conns[i]);
}

/* The connection failed: every query on it hears so, and decides for itself
 * whether to try again on a new connection or move on. */
static void tconn_fail(struct tconn *tc)
{
	struct tcp_req *list = tc->pending;
	tc->pending = NULL;
	tconn_close(tc);
	while (list) {
		struct tcp_req *r = list;
		list = r->next;
		r->prev = r->next = NULL;
		r->tc = NULL;
		r->on_error(r->arg, -ECONNRESET, r->reused);
	}
}

static void on_tconn_idle(uv_timer_t *t)
{
	struct tconn *tc = t->data;
	if (tc->broken)
		tconn_fail(tc);
	else if (!tc->pending)
		tconn_close(tc);
}

static void on_twrite(uv_write_t *req, int status)
{
	(void)status; /* a failed write shows up on the read side */
	free(req);
}

static bool tconn_write(struct tconn *tc, struct tcp_req *r)
{
	struct twrite *w = malloc(sizeof(*w));
	if (!w)
		return false;
	memcpy(w->data, r->data, r->len);
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)r->len);
	if (uv_write(&w->req, (uv_stream_t *)&tc->h, &b, 1, on_twrite) < 0) {
		free(w);
		return false;
	}
	r->written = true;
	return true;
}

/* ---- reading answers ------------------------------------------------------- */

static void on_tconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct tconn *tc = h->data;
	size_t want = tc->len + 4096;
	if (tc->len >= 2) {
		size_t msg = 2u + wire_rd16(tc->buf);
		if (msg > want)
			want = msg;
	}
	if (want > tc->cap) {
		uint8_t *nb = realloc(tc->buf, want);
		if (nb) {
			tc->buf = nb;
			tc->cap = want;
		}
	}
	buf->base = (char *)tc->buf + tc->len;
	buf->len = tc->cap - tc->len;
}

/* One framed message: to the query with its ID, if any still waits. */
static void tconn_deliver(struct tconn *tc, uint8_t *msg, size_t mlen)
{
	struct tcp_req *r = tc->pending;
	while (r && !(r->written && mlen >= 2 && wire_hdr_id(msg) == r->id))
		r = r->next;
	if (!r) {
		upstream_count_dropped(tc->pool->ups, tc->up, tc->pool->slot);
		return;
	}
	if (r->on_answer(r->arg, msg, mlen))
		tc->answered++;
}

static void on_tconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct tconn *tc = s->data;
	if (nread < 0) {
		tconn_fail(tc);
		return;
	}
	tc->len += (size_t)nread;
	size_t off = 0;
	while (tc->len - off >= 2) {
		size_t mlen = wire_rd16(tc->buf + off);
		if (tc->len - off < 2 + mlen)
			break;
		uint8_t *msg = tc->buf + off + 2;
		off += 2 + mlen;
		tconn_deliver(tc, msg, mlen);
		if (tc->closing)
			return;
	}
	if (off) {
		memmove(tc->buf, tc->buf + off, tc->len - off);
		tc->len -= off;
	}
}

static void on_tconn_connect(uv_connect_t *req, int status)
{
	struct tconn *tc = req->data;
	if (tc->closing)
		return;
	if (status < 0) {
		tconn_fail(tc);
		return;
	}
	tc->connected = true;
	uv_tcp_nodelay(&tc->h, 1);
	uv_read_start((uv_stream_t *)&tc->h, on_tconn_alloc, on_tconn_read);
	for (struct tcp_req *r = tc->pending; r; r = r->next) {
		if (!r->written && !tconn_write(tc, r)) {
			tconn_fail(tc);
			return;
		}
	}
}

static struct tconn *tconn_open(struct fwd_tcp *t, size_t up)
{
	const struct upstream *u = &t->ups->ups[up];
	struct tconn *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return NULL;
	tc->pool = t;
	tc->up = up;
	uv_tcp_init(t->loop, &tc->h);
	uv_timer_init(t->loop, &tc->idle);
	tc->h.data = tc->idle.data = tc->creq.data = tc;
	tc->handles_open = 2;
	t->conns[up] = tc;
	log_debug("upstream %s: opening a tcp connection", u->text);
	if (uv_tcp_connect(&tc->creq, &tc->h, (const struct sockaddr *)&u->addr, on_tconn_connect) <
	    0) {
		tconn_close(tc);
		return NULL;
	}
	return tc;
}

/* ---- exchanges ------------------------------------------------------------- */

int fwd_tcp_send(struct fwd_tcp *t, const struct fwd_xchg_req *q, struct fwd_xchg **out)
{
	if (q->len < WIRE_HDR_LEN || q->len > FWD_QUERY_MAX)
		return -EMSGSIZE;
	struct tconn *tc = t->conns[q->up];
	bool reused = tc && tc->answered > 0;
	if (!tc && !(tc = tconn_open(t, q->up)))
		return -ECONNREFUSED;
	struct tcp_req *r = malloc(sizeof(*r));
	if (!r) {
		if (!tc->pending && !tc->broken)
			uv_timer_start(&tc->idle, on_tconn_idle, TCP_IDLE_MS, 0);
		return -ENOMEM;
	}
	r->x.tcp = true;
	r->x.tls = false;
	r->tc = tc;
	r->id = wire_hdr_id(q->msg);
	r->written = false;
	r->reused = reused;
	r->on_answer = q->on_answer;
	r->on_error = q->on_error;
	r->arg = q->arg;
	wire_wr16(r->data, (uint16_t)q->len);
	memcpy(r->data + 2, q->msg, q->len);
	r->len = q->len + 2;
	r->prev = NULL;
	r->next = tc->pending;
	if (tc->pending)
		tc->pending->prev = r;
	tc->pending = r;
	/* A broken connection's idle timer is about to fail it, this query too. */
	if (!tc->broken) {
		uv_timer_stop(&tc->idle);
		if (tc->connected && !tconn_write(tc, r)) {
			/* Failed from the loop, not from inside this call. */
			tc->broken = true;
			uv_timer_start(&tc->idle, on_tconn_idle, 0, 0);
		}
	}
	*out = &r->x;
	return 0;
}

void fwd_tcp_end(struct fwd_xchg *x)
{
	struct tcp_req *r = (struct tcp_req *)x;
	struct tconn *tc = r->tc;
	if (tc) {
		if (r->prev)
			r->prev->next = r->next;
		else
			tc->pending = r->next;
		if (r->next)
			r->next->prev = r->prev;
		if (!tc->pending && !tc->closing && !tc->broken)
			uv_timer_start(&tc->idle, on_tconn_idle, TCP_IDLE_MS, 0);
	}
	free(r);
}
