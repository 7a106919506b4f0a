/* DNS over TLS to upstreams: a libuv TCP connection per TLS upstream per loop
 * with OpenSSL driven through memory BIOs, so that the loop alone decides when
 * bytes move. Queries are framed as over TCP and pipelined; answers are
 * matched by ID. See forward_tls.h. */
#include "resolver/forward_tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "resolver/forward_msg.h"
#include "resolver/upstream.h"
#include "wire/wire.h"

#define TLS_IDLE_MS	   15000 /* a connection nobody waits on is closed */
#define TLS_BACKOFF_MIN_MS 250	 /* pause after a failed connection, doubled per failure */
#define TLS_BACKOFF_MAX_MS 5000
/* Debian's CA bundle, where curl finds it too: the container image carries
 * this file but not OpenSSL's own directory. */
#define TLS_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

struct fwd_tls_ctx {
	SSL_CTX *ctx;
};

struct tlsconn;

/* One query on a connection (or waiting for its handshake). */
struct tls_req {
	struct fwd_xchg x;  /* tcp, tls: true */
	struct tlsconn *tc; /* NULL once the connection failed */
	struct tls_req *prev, *next;
	uint16_t id;
	bool written;
	bool retried; /* already moved once from a lost connection to a new one */
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	void (*on_error)(void *arg, int err, bool reused);
	void *arg;
	size_t len;
	uint8_t data[2 + FWD_QUERY_MAX]; /* length-prefixed */
};

enum tls_state { TLS_CONNECTING, TLS_HANDSHAKE, TLS_READY };

struct tlsconn {
	uv_tcp_t h;
	uv_connect_t creq;
	uv_timer_t timer; /* the handshake's deadline, then the idle timeout */
	struct fwd_tls *pool;
	size_t up;
	SSL *ssl;
	BIO *net_in, *net_out; /* bytes from the server into ssl; ssl's bytes to the server */
	enum tls_state state;
	bool closing;
	bool broken; /* a write failed: the timer fails it from the loop */
	unsigned handles_open;
	unsigned answered;
	struct tls_req *pending;
	uint8_t *buf; /* plaintext read, up to a whole framed message */
	size_t len, cap;
};

/* What one loop remembers of one TLS upstream across its connections. */
struct tls_up {
	SSL_SESSION *session; /* for resumption; NULL: none yet */
	uint64_t retry_at;    /* loop time before which no new connection is made */
	unsigned backoff_ms;
	bool logged; /* the current run of failures was logged */
};

struct fwd_tls {
	uv_loop_t *loop;
	struct upstream_set *ups;
	unsigned slot;
	struct tlsconn **conns; /* per upstream */
	struct tls_up *state;	/* per upstream */
};

struct tls_write {
	uv_write_t req;
	uint8_t data[];
};

/* ---- the shared context ------------------------------------------------------- */

int fwd_tls_ctx_new(const char *ca_file, struct fwd_tls_ctx **out)
{
	int ret = -ENOMEM;
	struct fwd_tls_ctx *c = calloc(1, sizeof(*c));
	if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method())))
		goto fail;
	ret = -EINVAL;
	if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION))
		goto fail;
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file) {
		if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
			log_error("--upstream-ca %s: no certificate could be read from it (%s)",
				  ca_file, ERR_reason_error_string(ERR_peek_last_error()));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1 ||
		   (access(TLS_CA_BUNDLE, R_OK) == 0 &&
		    SSL_CTX_load_verify_locations(c->ctx, TLS_CA_BUNDLE, NULL) != 1)) {
		log_error("TLS upstreams: the system's CA certificates cannot be read; name them "
			  "with --upstream-ca");
		goto fail;
	}
	ERR_clear_error();
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	fwd_tls_ctx_free(c);
	return ret;
}

void fwd_tls_ctx_free(struct fwd_tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

/* ---- the pool ----------------------------------------------------------------- */

int fwd_tls_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, struct fwd_tls **out)
{
	struct fwd_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	size_t n = ups->n ? ups->n : 1;
	t->conns = calloc(n, sizeof(*t->conns));
	t->state = calloc(n, sizeof(*t->state));
	if (!t->conns || !t->state) {
		fwd_tls_free(t);
		return -ENOMEM;
	}
	t->loop = loop;
	t->ups = ups;
	t->slot = slot;
	*out = t;
	return 0;
}

void fwd_tls_free(struct fwd_tls *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->state && i < t->ups->n; i++)
		SSL_SESSION_free(t->state[i].session);
	free(t->state);
	free(t->conns);
	free(t);
}

/* ---- a connection's life ------------------------------------------------------ */

static void tlsconn_closed(uv_handle_t *h)
{
	struct tlsconn *tc = h->data;
	if (--tc->handles_open == 0) {
		SSL_free(tc->ssl); /* and its BIOs */
		free(tc->buf);
		free(tc);
	}
}

static void on_tls_write(uv_write_t *req, int status)
{
	(void)status; /* a failed write shows up on the read side */
	free(req);
}

/* Sends what OpenSSL has written for the server. */
static int tlsconn_flush(struct tlsconn *tc)
{
	size_t n = BIO_ctrl_pending(tc->net_out);
	if (!n)
		return 0;
	struct tls_write *w = malloc(sizeof(*w) + n);
	if (!w)
		return -ENOMEM;
	if (BIO_read(tc->net_out, w->data, (int)n) != (int)n) {
		free(w);
		return -EIO;
	}
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
	if (uv_write(&w->req, (uv_stream_t *)&tc->h, &b, 1, on_tls_write) < 0) {
		free(w);
		return -EIO;
	}
	return 0;
}

/* Keeps the session for the next connection, says goodbye, and closes. */
static void tlsconn_close(struct tlsconn *tc)
{
	if (tc->closing)
		return;
	tc->closing = true;
	struct fwd_tls *t = tc->pool;
	if (t->conns[tc->up] == tc)
		t->conns[tc->up] = NULL;
	if (tc->state == TLS_READY && !tc->broken) {
		SSL_SESSION *s = SSL_get1_session(tc->ssl);
		if (s && SSL_SESSION_is_resumable(s)) {
			SSL_SESSION_free(t->state[tc->up].session);
			t->state[tc->up].session = s;
		} else {
			SSL_SESSION_free(s);
		}
		ERR_clear_error();
		SSL_shutdown(tc->ssl);
		(void)tlsconn_flush(tc);
	}
	ERR_clear_error();
	uv_close((uv_handle_t *)&tc->timer, tlsconn_closed);
	uv_close((uv_handle_t *)&tc->h, tlsconn_closed);
}

void fwd_tls_close(struct fwd_tls *t)
{
	for (size_t i = 0; t && i < t->ups->n; i++)
		if (t->conns[i])
			tlsconn_close(t->conns[i]);
}

static struct tlsconn *tlsconn_open(struct fwd_tls *t, size_t up);

static void req_link(struct tlsconn *tc, struct tls_req *r)
{
	r->tc = tc;
	r->prev = NULL;
	r->next = tc->pending;
	if (tc->pending)
		tc->pending->prev = r;
	tc->pending = r;
}

/* The connection failed. Queries on a connection that had answered before
 * (the server may only have closed it as idle) move once to a new one; the
 * others hear so, and the forwarder moves on to the next upstream. */
static void tlsconn_fail(struct tlsconn *tc)
{
	struct tls_req *list = tc->pending;
	struct fwd_tls *t = tc->pool;
	size_t up = tc->up;
	bool reused = tc->answered > 0;
	tc->pending = NULL;
	tlsconn_close(tc);
	struct tlsconn *fresh = NULL;
	while (list) {
		struct tls_req *r = list;
		list = r->next;
		r->prev = r->next = NULL;
		if (reused && !r->retried && (fresh || (fresh = tlsconn_open(t, up)))) {
			r->retried = true;
			r->written = false;
			req_link(fresh, r);
			continue;
		}
		r->tc = NULL;
		r->on_error(r->arg, -ECONNRESET, false);
	}
}

/* A connection that never carried a query failed: the next one waits. */
static void tls_up_failed(struct tlsconn *tc)
{
	struct tls_up *s = &tc->pool->state[tc->up];
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : TLS_BACKOFF_MIN_MS;
	if (s->backoff_ms > TLS_BACKOFF_MAX_MS)
		s->backoff_ms = TLS_BACKOFF_MAX_MS;
	s->retry_at = uv_now(tc->pool->loop) + s->backoff_ms;
}

/* Logs the first failure of a run at `warn` level, the rest at debug. */
static bool tls_up_log_once(struct tlsconn *tc)
{
	struct tls_up *s = &tc->pool->state[tc->up];
	bool first = !s->logged;
	s->logged = true;
	return first;
}

static void on_tlsconn_timer(uv_timer_t *h)
{
	struct tlsconn *tc = h->data;
	if (tc->state != TLS_READY) {
		const struct upstream *u = &tc->pool->ups->ups[tc->up];
		if (tc->state == TLS_HANDSHAKE)
			upstream_count_tls(tc->pool->ups, tc->up, tc->pool->slot,
					   UPSTREAM_TLS_ERROR);
		if (tls_up_log_once(tc))
			log_warn("upstream %s: no TLS connection within %u ms", u->text,
				 tc->pool->ups->timeout_ms);
		tls_up_failed(tc);
		tlsconn_fail(tc);
	} else if (tc->broken) {
		tlsconn_fail(tc);
	} else if (!tc->pending) {
		tlsconn_close(tc);
	}
}

static int tlsconn_write(struct tlsconn *tc, struct tls_req *r)
{
	ERR_clear_error();
	if (SSL_write(tc->ssl, r->data, (int)r->len) != (int)r->len)
		return -EIO;
	r->written = true;
	return tlsconn_flush(tc);
}

/* ---- reading answers ---------------------------------------------------------- */

/* One framed message: to the query with its ID (IDs are random, so two may
 * share one; the question decides). */
static void tlsconn_deliver(struct tlsconn *tc, uint8_t *msg, size_t mlen)
{
	uint16_t id = mlen >= 2 ? wire_hdr_id(msg) : 0;
	bool matched = false;
	for (struct tls_req *r = tc->pending, *next; r && mlen >= 2; r = next) {
		next = r->next;
		if (!r->written || r->id != id)
			continue;
		matched = true; /* a refusal is counted by the one who refused */
		if (r->on_answer(r->arg, msg, mlen)) {
			tc->answered++;
			return;
		}
		if (tc->closing)
			return;
	}
	if (!matched)
		upstream_count_dropped(tc->pool->ups, tc->up, tc->pool->slot);
}

/* Room for the rest of the message being read, or 4 KiB more. */
static bool tlsconn_room(struct tlsconn *tc)
{
	size_t want = tc->len + 4096;
	if (tc->len >= 2 && 2u + wire_rd16(tc->buf) > want)
		want = 2u + wire_rd16(tc->buf);
	if (want <= tc->cap)
		return true;
	uint8_t *nb = realloc(tc->buf, want);
	if (!nb)
		return false;
	tc->buf = nb;
	tc->cap = want;
	return true;
}

/* Every whole message in the plaintext read so far. */
static void tlsconn_frames(struct tlsconn *tc)
{
	size_t off = 0;
	while (tc->len - off >= 2) {
		size_t mlen = wire_rd16(tc->buf + off);
		if (tc->len - off < 2 + mlen)
			break;
		uint8_t *msg = tc->buf + off + 2;
		off += 2 + mlen;
		tlsconn_deliver(tc, msg, mlen);
		if (tc->closing)
			return;
	}
	if (off) {
		memmove(tc->buf, tc->buf + off, tc->len - off);
		tc->len -= off;
	}
}

/* Reads the plaintext OpenSSL has; false when the connection is gone. */
static bool tlsconn_read_plain(struct tlsconn *tc)
{
	for (;;) {
		if (!tlsconn_room(tc)) {
			tlsconn_fail(tc);
			return false;
		}
		ERR_clear_error();
		int n = SSL_read(tc->ssl, tc->buf + tc->len, (int)(tc->cap - tc->len));
		if (n <= 0) {
			int e = SSL_get_error(tc->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				return true;
			log_debug("upstream %s: tls connection ended (%s)",
				  tc->pool->ups->ups[tc->up].text,
				  e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "error");
			tlsconn_fail(tc);
			return false;
		}
		tc->len += (size_t)n;
		tlsconn_frames(tc);
		if (tc->closing)
			return false;
	}
}

/* Counts a failed handshake and logs it: a verification failure once per run
 * of them across every loop (the upstream's shared flag), anything else once
 * per run on this loop. */
static void log_handshake_failure(struct tlsconn *tc)
{
	struct upstream *u = &tc->pool->ups->ups[tc->up];
	long v = SSL_get_verify_result(tc->ssl);
	unsigned long e = ERR_peek_last_error();
	bool first = tls_up_log_once(tc);
	upstream_count_tls(tc->pool->ups, tc->up, tc->pool->slot,
			   v != X509_V_OK ? UPSTREAM_TLS_VERIFY_FAILED : UPSTREAM_TLS_ERROR);
	if (v != X509_V_OK && !atomic_exchange(&u->tls_verify_logged, true)) {
		/* An error: either an attack or a misconfiguration. */
		log_error("upstream %s: TLS certificate verification failed: %s (expected name "
			  "%s); not used, and never asked in plaintext",
			  u->text, X509_verify_cert_error_string(v),
			  u->tls_name[0] ? u->tls_name : "its address");
	} else if (first && v == X509_V_OK) {
		log_warn("upstream %s: TLS handshake failed: %s", u->text,
			 e ? ERR_reason_error_string(e) : "connection closed");
	} else {
		log_debug("upstream %s: TLS handshake failed again", u->text);
	}
}

/* Moves the handshake on; at its end, sends the queries that waited for it. */
static bool tlsconn_handshake(struct tlsconn *tc)
{
	ERR_clear_error();
	int r = SSL_do_handshake(tc->ssl);
	if (r != 1) {
		int e = SSL_get_error(tc->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (tlsconn_flush(tc) == 0)
				return true;
		} else {
			log_handshake_failure(tc);
		}
		tls_up_failed(tc);
		tlsconn_fail(tc);
		return false;
	}
	struct tls_up *s = &tc->pool->state[tc->up];
	struct upstream *u = &tc->pool->ups->ups[tc->up];
	bool resumed = SSL_session_reused(tc->ssl);
	upstream_count_tls(tc->pool->ups, tc->up, tc->pool->slot,
			   resumed ? UPSTREAM_TLS_RESUMED : UPSTREAM_TLS_OK);
	if (s->logged)
		log_info("upstream %s: TLS connection established again", u->text);
	log_debug("upstream %s: tls connection up (%s%s)", u->text, SSL_get_version(tc->ssl),
		  resumed ? ", session resumed" : "");
	s->logged = false;
	/* Only a write when it changes: the flag's line stays shared. */
	if (atomic_load_explicit(&u->tls_verify_logged, memory_order_relaxed))
		atomic_store(&u->tls_verify_logged, false);
	s->backoff_ms = 0;
	s->retry_at = 0;
	tc->state = TLS_READY;
	uv_timer_stop(&tc->timer);
	for (struct tls_req *q = tc->pending; q; q = q->next) {
		if (!q->written && tlsconn_write(tc, q) < 0) {
			tlsconn_fail(tc);
			return false;
		}
	}
	if (!tc->pending)
		uv_timer_start(&tc->timer, on_tlsconn_timer, TLS_IDLE_MS, 0);
	return true;
}

static void on_tlsconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static _Thread_local char in[16384];
	buf->base = in;
	buf->len = sizeof(in);
}

static void on_tlsconn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct tlsconn *tc = st->data;
	if (tc->closing || nread == 0)
		return;
	if (nread < 0) {
		if (tc->state != TLS_READY) {
			log_handshake_failure(tc);
			tls_up_failed(tc);
		}
		tlsconn_fail(tc);
		return;
	}
	if (BIO_write(tc->net_in, buf->base, (int)nread) != (int)nread) {
		tlsconn_fail(tc);
		return;
	}
	if (tc->state == TLS_HANDSHAKE && !tlsconn_handshake(tc))
		return;
	if (tc->state == TLS_READY && tlsconn_read_plain(tc) && tlsconn_flush(tc) < 0)
		tlsconn_fail(tc);
}

static void on_tlsconn_connect(uv_connect_t *req, int status)
{
	struct tlsconn *tc = req->data;
	if (tc->closing)
		return;
	if (status < 0) {
		const struct upstream *u = &tc->pool->ups->ups[tc->up];
		if (tls_up_log_once(tc))
			log_warn("upstream %s: cannot connect: %s", u->text, uv_strerror(status));
		tls_up_failed(tc);
		tlsconn_fail(tc);
		return;
	}
	tc->state = TLS_HANDSHAKE;
	uv_tcp_nodelay(&tc->h, 1);
	uv_read_start((uv_stream_t *)&tc->h, on_tlsconn_alloc, on_tlsconn_read);
	tlsconn_handshake(tc);
}

/* The SSL object of a new connection: server name (SNI) and the name or
 * address its certificate must show, and the last session to resume. */
static int tlsconn_ssl(struct tlsconn *tc, const struct upstream *u, SSL_SESSION *session)
{
	if (!(tc->ssl = SSL_new(tc->pool->ups->tls->ctx)))
		return -ENOMEM;
	tc->net_in = BIO_new(BIO_s_mem());
	tc->net_out = BIO_new(BIO_s_mem());
	if (!tc->net_in || !tc->net_out) {
		BIO_free(tc->net_in);
		BIO_free(tc->net_out);
		return -ENOMEM;
	}
	BIO_set_mem_eof_return(tc->net_in, -1); /* empty: wait for more, not the end */
	SSL_set_bio(tc->ssl, tc->net_in, tc->net_out);
	SSL_set_connect_state(tc->ssl);
	X509_VERIFY_PARAM *p = SSL_get0_param(tc->ssl);
	X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (u->tls_name[0]) {
		if (!SSL_set_tlsext_host_name(tc->ssl, u->tls_name) ||
		    !X509_VERIFY_PARAM_set1_host(p, u->tls_name, 0))
			return -EINVAL;
	} else {
		const void *a =
		    u->addr.ss_family == AF_INET
			? (const void *)&((const struct sockaddr_in *)&u->addr)->sin_addr
			: (const void *)&((const struct sockaddr_in6 *)&u->addr)->sin6_addr;
		if (!X509_VERIFY_PARAM_set1_ip(p, a, u->addr.ss_family == AF_INET ? 4 : 16))
			return -EINVAL;
	}
	if (session)
		SSL_set_session(tc->ssl, session);
	return 0;
}

static struct tlsconn *tlsconn_open(struct fwd_tls *t, size_t up)
{
	const struct upstream *u = &t->ups->ups[up];
	struct tlsconn *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return NULL;
	tc->pool = t;
	tc->up = up;
	if (tlsconn_ssl(tc, u, t->state[up].session) < 0) {
		ERR_clear_error();
		SSL_free(tc->ssl);
		free(tc);
		return NULL;
	}
	uv_tcp_init(t->loop, &tc->h);
	uv_timer_init(t->loop, &tc->timer);
	tc->h.data = tc->timer.data = tc->creq.data = tc;
	tc->handles_open = 2;
	t->conns[up] = tc;
	log_debug("upstream %s: opening a tls connection", u->text);
	if (uv_tcp_connect(&tc->creq, &tc->h, (const struct sockaddr *)&u->addr,
			   on_tlsconn_connect) < 0) {
		tlsconn_close(tc);
		return NULL;
	}
	uv_timer_start(&tc->timer, on_tlsconn_timer, t->ups->timeout_ms, 0);
	return tc;
}

/* ---- exchanges ---------------------------------------------------------------- */

int fwd_tls_send(struct fwd_tls *t, const struct fwd_xchg_req *q, struct fwd_xchg **out)
{
	if (q->len < WIRE_HDR_LEN || q->len > FWD_QUERY_MAX)
		return -EMSGSIZE;
	struct tlsconn *tc = t->conns[q->up];
	if (!tc) {
		if (uv_now(t->loop) < t->state[q->up].retry_at)
			return -ECONNREFUSED; /* the last connection failed a moment ago */
		if (!(tc = tlsconn_open(t, q->up)))
			return -ECONNREFUSED;
	}
	struct tls_req *r = malloc(sizeof(*r));
	if (!r) {
		if (!tc->pending && tc->state == TLS_READY && !tc->broken)
			uv_timer_start(&tc->timer, on_tlsconn_timer, TLS_IDLE_MS, 0);
		return -ENOMEM;
	}
	r->x.tcp = true;
	r->x.tls = true;
	r->id = wire_hdr_id(q->msg);
	r->written = r->retried = false;
	r->on_answer = q->on_answer;
	r->on_error = q->on_error;
	r->arg = q->arg;
	wire_wr16(r->data, (uint16_t)q->len);
	memcpy(r->data + 2, q->msg, q->len);
	r->len = q->len + 2;
	req_link(tc, r);
	/* A broken connection's timer is about to fail it, this query too. */
	if (tc->state == TLS_READY && !tc->broken) {
		uv_timer_stop(&tc->timer);
		if (tlsconn_write(tc, r) < 0) {
			/* Failed from the loop, not from inside this call. */
			tc->broken = true;
			uv_timer_start(&tc->timer, on_tlsconn_timer, 0, 0);
		}
	}
	*out = &r->x;
	return 0;
}

void fwd_tls_end(struct fwd_xchg *x)
{
	struct tls_req *r = (struct tls_req *)x;
	struct tlsconn *tc = r->tc;
	if (tc) {
		if (r->prev)
			r->prev->next = r->next;
		else
			tc->pending = r->next;
		if (r->next)
			r->next->prev = r->prev;
		if (!tc->pending && !tc->closing && !tc->broken && tc->state == TLS_READY)
			uv_timer_start(&tc->timer, on_tlsconn_timer, TLS_IDLE_MS, 0);
	}
	free(r);
}
