/* DNS worker threads: UDP in batches with recvmmsg/sendmmsg, TCP with several
 * queries per connection, all answered by dns_answer() against the snapshot
 * the worker entered for that batch. See server.h. */
#include "dns/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/shash.h"
#include "resolver/forward.h"
#include "dns/limits.h"
#include "dns/query.h"
#include "dns/querylog.h"
#include "dns/rrl.h"
#include "wire/tcpframe.h"
#include "zones/snapshot.h"
#include "zones/xfr.h"

#define UDP_BATCH	    64
#define UDP_BUF		    4096 /* largest query we read over UDP; larger ones are cut and FORMERR */
#define UDP_ROUNDS	    8	 /* batches per wakeup before yielding to TCP and control */
#define TCP_WRITE_QUEUE_MAX (256u << 10)
/* Queries of one connection the forwarder may hold at once; more wait unread. */
#define TCP_PENDING_MAX 64
/* When a socket stays full (more than UDP_BACKLOG_BATCHES full batches in a
 * row) and others are waiting, one source's queries past this many in a batch
 * are dropped unanswered: answering a flood must not take the time that the
 * queries queued behind it need. A burst that a short stall piled up is still
 * answered in full. */
#define UDP_SOURCE_SHARE    16
#define UDP_BACKLOG_BATCHES 4
/* Someone else is waiting when another source was in a batch this recently. */
#define UDP_OTHERS_MS 1000

static bool is_wildcard(const struct dns_listen *l)
{
	if (l->addr.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
}

static int open_socket(const struct dns_listen *l, int type)
{
	int fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (l->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (type == SOCK_DGRAM && is_wildcard(l)) {
		/* Reply from the address the query came to, not the route's choice. */
		if (l->addr.ss_family == AF_INET)
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	}
	if (type == SOCK_DGRAM) {
		int sz = 4 << 20; /* absorb bursts; the kernel caps it at rmem_max */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	if (bind(fd, (const struct sockaddr *)&l->addr, l->len) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

/* ---- workers --------------------------------------------------------------- */

struct worker;

struct udp_sock {
	uv_poll_t poll;
	int fd;
	bool pktinfo;
	unsigned full_streak; /* full batches read in a row, across wakeups */
	uint64_t others_ms;   /* when a full batch last held more than one source */
	struct worker *w;
};

struct tcp_listener {
	uv_tcp_t handle;
	struct worker *w;
};

struct worker {
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t stop;
	struct snapshot_reader *reader;
	struct forward_worker *fwd; /* NULL without forwarding */
	struct udp_sock *udp;
	struct tcp_listener *tcp;
	size_t n_socks;
	unsigned tcp_conns;
	struct tcp_conn *conns; /* every open connection, for shutdown */
	const struct dns_server_config *cfg;
	struct dns_server *srv;
	struct metrics_worker *mw; /* NULL: not counted */
	unsigned index;		   /* its own counters in srv->limits */
	struct rrl *rrl;	   /* NULL: --rrl is off */
	uv_timer_t limits_tick;	   /* worker 0 only: tells the last hits of each limit */
	bool limits_tick_on;
	bool draining; /* lameduck is over: answer what is in flight, take nothing new */
	bool drained;  /* counted in srv->drained */
	/* UDP batch buffers, per worker: the query path allocates nothing. */
	struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH], out_iov[UDP_BATCH];
	struct sockaddr_storage peers[UDP_BATCH];
	uint8_t in_ctl[UDP_BATCH][64], out_ctl[UDP_BATCH][64];
	uint8_t in_buf[UDP_BATCH][UDP_BUF];
	uint8_t out_buf[UDP_BATCH][DNS_EDNS_MAX_UDP > 512 ? 4096 : 512];
	/* Queries per source in the current full batch (UDP_SOURCE_SHARE). */
	struct udp_src {
		uint64_t key;
		uint32_t gen;
		uint32_t n;
	} src[2 * UDP_BATCH];
	uint32_t src_gen;
};

enum { PHASE_RUN = 0, PHASE_DRAIN, PHASE_STOP };

struct dns_server {
	struct worker *workers;
	unsigned n_workers;
	struct dns_server_config cfg;
	atomic_int phase;    /* what a worker's stop signal means */
	atomic_uint drained; /* workers with no connection left while draining */
	struct dns_limits *limits;
};

/* Counts one query for /metrics and the query log (common/metrics.h); resp
 * NULL: the forwarder answers later and counts that answer itself. */
static void count_query(struct worker *w, const uint8_t *req, size_t len,
			const struct dns_query_info *info, const uint8_t *resp, size_t rlen,
			enum dns_proto proto, const struct sockaddr *peer, uint64_t t0)
{
	if (!w->mw)
		return;
	uint8_t rcode = resp && rlen >= 4 ? (resp[3] & 0x0F) : info->rcode;
	if (info->rcode > 15 && rcode == (info->rcode & 0x0F))
		rcode = info->rcode; /* BADVERS: the header only holds its low bits */
	struct metrics_query q = {
	    .req = req,
	    .req_len = len,
	    .qend = info->qend,
	    .qtype = info->qtype,
	    .resp = resp,
	    .resp_len = resp ? rlen : 0,
	    .rcode = rcode,
	    .proto = proto == DNS_TCP ? METRICS_TCP : METRICS_UDP,
	    .peer = peer,
	    .dur_ns = resp ? uv_hrtime() - t0 : 0,
	    .stale = info->stale,
	    .dnssec_ok = info->edns_do,
	    .bufsize = info->limit,
	    .apex = info->apex,
	    .apex_len = info->apex_len,
	};
	metrics_dns_query(w->mw, &q);
}

/* Copies the destination address of a query into the reply's control data so
 * that the reply leaves from it (wildcard binds only). */
static size_t reply_control(const struct msghdr *in, uint8_t *ctl, size_t cap)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)in); c;
	     c = CMSG_NXTHDR((struct msghdr *)in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			if (CMSG_SPACE(sizeof(pi)) > cap)
				return 0;
			struct cmsghdr *o = (struct cmsghdr *)ctl;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			if (CMSG_SPACE(sizeof(pi)) > cap)
				return 0;
			struct cmsghdr *o = (struct cmsghdr *)ctl;
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
	}
	return 0;
}

static void limit_hit(struct worker *w, enum dns_limit what, uint64_t now_ms)
{
	dns_limits_hit(w->srv->limits, w->index, what, now_ms);
}

/* Counts a query of a full batch against its source (an IPv4 address, an
 * IPv6 /64); false once the source had UDP_SOURCE_SHARE of this batch. */
static bool src_take(struct worker *w, const struct sockaddr_storage *peer)
{
	uint64_t key;
	if (peer->ss_family == AF_INET) {
		key = 1ull << 32 | ((const struct sockaddr_in *)peer)->sin_addr.s_addr;
	} else if (peer->ss_family == AF_INET6) {
		memcpy(&key, ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr, 8);
		key ^= 2ull << 32;
	} else {
		return true;
	}
	/* 128 slots for at most 64 sources: the probe always ends. Sources can be
	 * spoofed at will, so the slot comes from the keyed hash: a batch of
	 * chosen addresses cannot make one long probe run. */
	size_t mask = 2 * UDP_BATCH - 1;
	for (size_t h = (size_t)shash_u64(key) & mask;; h = (h + 1) & mask) {
		struct udp_src *s = &w->src[h];
		if (s->gen != w->src_gen) {
			*s = (struct udp_src){.key = key, .gen = w->src_gen, .n = 1};
			return true;
		}
		if (s->key == key)
			return ++s->n <= UDP_SOURCE_SHARE;
	}
}

/* Same source as src_take counts them: an IPv4 address, an IPv6 /64. */
static bool same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr,
			      ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr, 8) == 0;
	return true;
}

static void on_udp(uv_poll_t *h, int status, int events)
{
	struct udp_sock *us = h->data;
	struct worker *w = us->w;
	if (status < 0 || !(events & UV_READABLE))
		return;
	for (int round = 0; round < UDP_ROUNDS; round++) {
		/* Only what recvmmsg overwrites is reset: the rest of each header
		 * points at fixed buffers and was set when the worker started. */
		for (int i = 0; i < UDP_BATCH; i++) {
			struct msghdr *m = &w->in[i].msg_hdr;
			m->msg_namelen = sizeof(w->peers[i]);
			m->msg_control = us->pktinfo ? w->in_ctl[i] : NULL;
			m->msg_controllen = us->pktinfo ? sizeof(w->in_ctl[i]) : 0;
			m->msg_flags = 0;
		}
		int n = recvmmsg(us->fd, w->in, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			us->full_streak = 0;
			return;
		}
		uint64_t t0 = uv_hrtime();
		uint64_t now_ms = t0 / 1000000;
		/* Full batch after full batch: a backlog, so each source gets its share. */
		if (n < UDP_BATCH)
			us->full_streak = 0;
		else if (us->full_streak <= UDP_BACKLOG_BATCHES)
			us->full_streak++;
		bool full = us->full_streak > UDP_BACKLOG_BATCHES;
		if (full && ++w->src_gen == 0)
			w->src_gen = 1;
		/* Shares only matter when someone else is waiting: a single heavy
		 * source (a node-local cache, a load generator) keeps all it sent.
		 * Under a flood most batches hold the flooder alone, the others'
		 * queries being a few among thousands: a second source seen in the
		 * last UDP_OTHERS_MS counts as waiting. */
		if (full) {
			bool many = false;
			for (int i = 1; i < n && !many; i++)
				many = !same_source(&w->peers[0], &w->peers[i]);
			if (many)
				us->others_ms = now_ms;
			full = us->others_ms && now_ms - us->others_ms < UDP_OTHERS_MS;
		}
		const struct snapshot *s = snapshot_enter(w->reader);
		int k = 0;
		for (int i = 0; i < n; i++) {
			if (full && !src_take(w, &w->peers[i])) {
				limit_hit(w, DNS_LIMIT_UDP_SOURCE, now_ms);
				continue;
			}
			struct dns_query_info info;
			size_t len = w->in[i].msg_len;
			if (w->in[i].msg_hdr.msg_flags & MSG_TRUNC)
				len = 12 < len ? 12 : len; /* cut: answer FORMERR below */
			size_t rlen = dns_answer(s, w->in_buf[i], len, w->out_buf[k],
						 sizeof(w->out_buf[k]), DNS_UDP, &info);
			if (log_get_level() >= LOG_DEBUG)
				dns_log_query((struct sockaddr *)&w->peers[i], w->in_buf[i], len,
					      DNS_UDP);
			if (!rlen)
				continue;
			size_t cl = 0;
			if (us->pktinfo)
				cl = reply_control(&w->in[i].msg_hdr, w->out_ctl[k],
						   sizeof(w->out_ctl[k]));
			if (w->fwd) {
				struct forward_client fc = {
				    .proto = DNS_UDP,
				    .peer = (struct sockaddr *)&w->peers[i],
				    .peer_len = w->in[i].msg_hdr.msg_namelen,
				    .udp_fd = us->fd,
				    .ctl = w->out_ctl[k],
				    .ctl_len = cl,
				};
				if (forward_query(w->fwd, s, &fc, w->in_buf[i], len, w->out_buf[k],
						  &rlen, sizeof(w->out_buf[k]),
						  &info) == FORWARD_PENDING) {
					count_query(w, w->in_buf[i], len, &info, NULL, 0, DNS_UDP,
						    fc.peer, t0);
					continue;
				}
			}
			if (w->rrl) {
				enum rrl_verdict v =
				    rrl_check(w->rrl, (struct sockaddr *)&w->peers[i],
					      w->out_buf[k], rlen, now_ms);
				if (v == RRL_DROP) {
					limit_hit(w, DNS_LIMIT_RRL_DROP, now_ms);
					continue;
				}
				if (v == RRL_SLIP) {
					rlen = rrl_slip(w->out_buf[k], rlen);
					limit_hit(w, DNS_LIMIT_RRL_SLIP, now_ms);
				}
			}
			count_query(w, w->in_buf[i], len, &info, w->out_buf[k], rlen, DNS_UDP,
				    (struct sockaddr *)&w->peers[i], t0);
			w->out_iov[k].iov_base = w->out_buf[k];
			w->out_iov[k].iov_len = rlen;
			struct msghdr *m = &w->out[k].msg_hdr;
			memset(m, 0, sizeof(*m));
			m->msg_name = &w->peers[i];
			m->msg_namelen = w->in[i].msg_hdr.msg_namelen;
			m->msg_iov = &w->out_iov[k];
			m->msg_iovlen = 1;
			if (cl) {
				m->msg_control = w->out_ctl[k];
				m->msg_controllen = cl;
			}
			k++;
		}
		snapshot_leave(w->reader);
		for (int sent = 0; sent < k;) {
			int r = sendmmsg(us->fd, w->out + sent, (unsigned)(k - sent), 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* One unreachable client must not cost the others
				 * their answers: skip it and go on. */
				sent++;
				continue;
			}
			sent += r;
		}
		if (n < UDP_BATCH)
			return;
	}
}

/* ---- TCP ------------------------------------------------------------------- */

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
static void worker_drained_check(struct worker *w);
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
		worker_drained_check(w);
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
	uv_timer_start(&c->idle, on_conn_timer, delay, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
	struct tcp_conn *c = t->data;
	struct worker *w = c->w;
	const struct dns_server_config *cfg = w->cfg;
	uint64_t now = uv_now(&w->loop);
	if (c->expired) {
		conn_close(c); /* it had an idle period to take what it was owed */
		return;
	}
	if (cfg->tcp_max_lifetime_ms && now >= c->born_ms + cfg->tcp_max_lifetime_ms) {
		limit_hit(w, DNS_LIMIT_TCP_LIFETIME, now);
		c->expired = true;
		uv_read_stop((uv_stream_t *)&c->handle);
		uv_timer_start(&c->idle, on_conn_timer, cfg->tcp_idle_timeout_ms, 0);
		conn_drain(c);
		return;
	}
	limit_hit(w, DNS_LIMIT_TCP_IDLE, now);
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

static bool transfer_allowed(const struct tcp_conn *c)
{
	const struct dns_server_config *cfg = c->w->cfg;
	const struct sockaddr_storage *p = &c->peer;
	for (size_t i = 0; i < cfg->n_allow_transfer; i++) {
		if (p->ss_family == AF_INET &&
		    net_cidr_contains_raw(
			&cfg->allow_transfer[i], AF_INET,
			(const uint8_t *)&((const struct sockaddr_in *)p)->sin_addr))
			return true;
		if (p->ss_family == AF_INET6 &&
		    net_cidr_contains_raw(&cfg->allow_transfer[i], AF_INET6,
					  ((const struct sockaddr_in6 *)p)->sin6_addr.s6_addr))
			return true;
	}
	return false;
}

/* An allowed AXFR/IXFR: the whole zone, regenerated while the snapshot is
 * held. Returns true when it was sent (or the connection was closed). */
static bool tcp_transfer(struct tcp_conn *c, const struct snapshot *snap, const uint8_t *req,
			 size_t len, const struct dns_query_info *info, uint8_t *resp, size_t *rlen)
{
	if (!info->xfr || !snap || !info->qend || !transfer_allowed(c))
		return false;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int ret = xfr_answer(snap, req, len, info->qend, &out, &out_len);
	if (ret == -ENOENT || ret == -EBADMSG) {
		/* Not a zone we serve (NOTAUTH, RFC 2845's 9) or a broken IXFR. */
		resp[3] = (uint8_t)((resp[3] & 0xF0) | (ret == -ENOENT ? 9 : 1));
		return false;
	}
	if (ret < 0) {
		resp[3] = (uint8_t)((resp[3] & 0xF0) | 2); /* SERVFAIL */
		return false;
	}
	*rlen = 0;
	if (!tcp_send_framed(c, out, out_len))
		conn_close(c);
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

/* One complete message of a connection (wire/tcpframe.h). */
static int on_tcp_msg(void *arg, const uint8_t *msg, size_t mlen)
{
	struct tcp_batch *b = arg;
	struct tcp_conn *c = b->c;
	static _Thread_local uint8_t resp[DNS_MAX_MSG];
	struct dns_query_info info;
	const struct snapshot *snap = snapshot_enter(c->w->reader);
	size_t rlen = dns_answer(snap, msg, mlen, resp, sizeof(resp), DNS_TCP, &info);
	if (rlen && info.xfr && tcp_transfer(c, snap, msg, mlen, &info, resp, &rlen)) {
		snapshot_leave(c->w->reader);
		return c->closing ? -EPIPE : conn_full(c);
	}
	if (log_get_level() >= LOG_DEBUG)
		dns_log_query((struct sockaddr *)&c->peer, msg, mlen, DNS_TCP);
	enum forward_verdict v = FORWARD_REPLY;
	if (rlen && c->w->fwd) {
		struct forward_client fc = {
		    .proto = DNS_TCP,
		    .peer = (struct sockaddr *)&c->peer,
		    .peer_len = (socklen_t)c->peer_len,
		    .conn = c,
		};
		c->pending++;
		v = forward_query(c->w->fwd, snap, &fc, msg, mlen, resp, &rlen, sizeof(resp),
				  &info);
		if (v == FORWARD_REPLY)
			c->pending--;
	}
	snapshot_leave(c->w->reader);
	if (rlen || v == FORWARD_PENDING)
		count_query(c->w, msg, mlen, &info, v == FORWARD_PENDING ? NULL : resp, rlen,
			    DNS_TCP, (struct sockaddr *)&c->peer, b->t0);
	if (v == FORWARD_PENDING)
		return conn_full(c);
	if (rlen == 0)
		return -EPROTO; /* not a query we can answer at all: RFC 7766 lets us close */
	if (!tcp_send(c, resp, rlen))
		return -EIO;
	return conn_full(c);
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
		limit_hit(c->w, DNS_LIMIT_TCP_BACKLOG, uv_now(&c->w->loop));
	}
}

/* Once a paused connection's queue is down to half, what it sent meanwhile
 * is answered and reading starts again. Only from write callbacks: never
 * inside the forwarder's. */
static void conn_resume(struct tcp_conn *c)
{
	if (!c->paused || c->closing || c->w->draining || c->expired ||
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
static void on_forward_reply(void *conn, const uint8_t *msg, size_t len)
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

static void on_connection(uv_stream_t *server, int status)
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
		limit_hit(w, DNS_LIMIT_TCP_CONNS, uv_now(&w->loop));
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

/* Closes every handle of a worker so that its loop can end. */
static void worker_close_all(struct worker *w)
{
	forward_worker_close(w->fwd);
	for (struct tcp_conn *c = w->conns; c; c = c->next)
		conn_close(c);
	for (size_t i = 0; i < w->n_socks; i++) {
		if (w->udp[i].w && !uv_is_closing((uv_handle_t *)&w->udp[i].poll))
			uv_close((uv_handle_t *)&w->udp[i].poll, NULL);
		if (w->tcp[i].w && !uv_is_closing((uv_handle_t *)&w->tcp[i].handle))
			uv_close((uv_handle_t *)&w->tcp[i].handle, NULL);
	}
	if (w->limits_tick_on && !uv_is_closing((uv_handle_t *)&w->limits_tick))
		uv_close((uv_handle_t *)&w->limits_tick, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->stop))
		uv_close((uv_handle_t *)&w->stop, NULL);
}

/* While draining: a connection that owes its client nothing is closed. A
 * write handed to the kernel still reaches the client after the close. */
static void conn_drain(struct tcp_conn *c)
{
	if (!(c->w->draining || c->expired) || c->closing)
		return;
	uv_read_stop((uv_stream_t *)&c->handle);
	if (c->pending == 0 && c->handle.write_queue_size == 0)
		conn_close(c);
}

static void worker_drained_check(struct worker *w)
{
	if (w->draining && !w->drained && w->tcp_conns == 0) {
		w->drained = true;
		atomic_fetch_add(&w->srv->drained, 1);
	}
}

/* The end of lameduck: no new queries (UDP reads stop, TCP listeners close),
 * answers in flight still go out; UDP sockets stay open for the forwarder's
 * late answers until the stop. */
static void worker_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	for (size_t i = 0; i < w->n_socks; i++) {
		if (w->udp[i].w && !uv_is_closing((uv_handle_t *)&w->udp[i].poll))
			uv_poll_stop(&w->udp[i].poll);
		if (w->tcp[i].w && !uv_is_closing((uv_handle_t *)&w->tcp[i].handle))
			uv_close((uv_handle_t *)&w->tcp[i].handle, NULL);
	}
	for (struct tcp_conn *c = w->conns, *next; c; c = next) {
		next = c->next;
		conn_drain(c);
	}
	worker_drained_check(w);
}

static void on_stop(uv_async_t *a)
{
	struct worker *w = a->data;
	if (atomic_load(&w->srv->phase) == PHASE_DRAIN)
		worker_drain(w);
	else
		worker_close_all(w);
}

static void on_limits_tick(uv_timer_t *t)
{
	struct worker *w = t->data;
	dns_limits_flush(w->srv->limits, uv_now(&w->loop));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	metrics_worker_enter(w->mw);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void worker_cleanup(struct worker *w)
{
	for (size_t i = 0; i < w->n_socks; i++)
		if (w->udp[i].fd >= 0)
			close(w->udp[i].fd);
	free(w->udp);
	free(w->tcp);
	rrl_free(w->rrl);
	forward_worker_free(w->fwd);
	uv_loop_close(&w->loop);
}

int dns_server_start(const struct dns_server_config *cfg, struct dns_server **out)
{
	/* The per-source share of a batch hashes client addresses with it. */
	int ret = shash_init();
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	struct dns_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	srv->n_workers = cfg->threads ? cfg->threads : 1;
	srv->workers = calloc(srv->n_workers, sizeof(struct worker));
	if (!srv->workers)
		goto fail;
	struct dns_limits_config lcfg = {
	    .tcp_max_conns = cfg->tcp_max_conns,
	    .tcp_idle_timeout_ms = cfg->tcp_idle_timeout_ms,
	    .tcp_max_lifetime_ms = cfg->tcp_max_lifetime_ms,
	    .rrl = cfg->rrl,
	    .rrl_slip = cfg->rrl_slip,
	    .udp_source_share = UDP_SOURCE_SHARE,
	    .udp_batch = UDP_BATCH,
	};
	if (dns_limits_new(srv->n_workers, &lcfg, &srv->limits) < 0)
		goto fail;
	unsigned started = 0, inited = 0;
	for (unsigned t = 0; t < srv->n_workers; t++) {
		struct worker *w = &srv->workers[t];
		w->cfg = &srv->cfg;
		w->srv = srv;
		w->index = t;
		w->mw = cfg->metrics ? metrics_worker_new(cfg->metrics) : NULL;
		/* The receive headers point at fixed buffers for the worker's life;
		 * on_udp resets only what recvmmsg writes back. */
		for (int i = 0; i < UDP_BATCH; i++) {
			w->in_iov[i].iov_base = w->in_buf[i];
			w->in_iov[i].iov_len = UDP_BUF;
			w->in[i].msg_hdr.msg_name = &w->peers[i];
			w->in[i].msg_hdr.msg_iov = &w->in_iov[i];
			w->in[i].msg_hdr.msg_iovlen = 1;
		}
		w->reader = snapshot_reader_register();
		if (!w->reader) {
			ret = -ENOSPC;
			goto fail_workers;
		}
		uv_loop_init(&w->loop);
		inited++;
		uv_async_init(&w->loop, &w->stop, on_stop);
		w->stop.data = w;
		if (cfg->forwarder &&
		    forward_worker_new(cfg->forwarder, &w->loop, t, on_forward_reply, &w->fwd) < 0)
			goto fail_workers;
		w->n_socks = cfg->n_listen;
		w->udp = calloc(cfg->n_listen, sizeof(*w->udp));
		w->tcp = calloc(cfg->n_listen, sizeof(*w->tcp));
		if (!w->udp || !w->tcp)
			goto fail_workers;
		for (size_t i = 0; i < cfg->n_listen; i++)
			w->udp[i].fd = -1;
		for (size_t i = 0; i < cfg->n_listen; i++) {
			const struct dns_listen *l = &cfg->listen[i];
			int fd = open_socket(l, SOCK_DGRAM);
			if (fd < 0) {
				ret = fd;
				log_error("listen %s (udp): %s", l->text, strerror(-fd));
				goto fail_workers;
			}
			w->udp[i].fd = fd;
			w->udp[i].w = w;
			w->udp[i].pktinfo = is_wildcard(l);
			uv_poll_init(&w->loop, &w->udp[i].poll, fd);
			w->udp[i].poll.data = &w->udp[i];
			uv_poll_start(&w->udp[i].poll, UV_READABLE, on_udp);

			int tfd = open_socket(l, SOCK_STREAM);
			if (tfd < 0) {
				ret = tfd;
				log_error("listen %s (tcp): %s", l->text, strerror(-tfd));
				goto fail_workers;
			}
			uv_tcp_init(&w->loop, &w->tcp[i].handle);
			w->tcp[i].w = w;
			w->tcp[i].handle.data = &w->tcp[i];
			if (uv_tcp_open(&w->tcp[i].handle, tfd) < 0 ||
			    uv_listen((uv_stream_t *)&w->tcp[i].handle, 1024, on_connection) < 0) {
				close(tfd);
				log_error("listen %s (tcp): cannot listen", l->text);
				ret = -EIO;
				goto fail_workers;
			}
		}
		ret = cfg->rrl ? rrl_new(cfg->rrl, cfg->rrl_slip, RRL_BUCKETS_DEFAULT, &w->rrl) : 0;
		if (ret < 0)
			goto fail_workers;
		ret = -ENOMEM;
		if (t == 0) {
			uv_timer_init(&w->loop, &w->limits_tick);
			w->limits_tick.data = w;
			w->limits_tick_on = true;
			uv_timer_start(&w->limits_tick, on_limits_tick, DNS_LIMITS_LOG_MS,
				       DNS_LIMITS_LOG_MS);
		}
	}
	for (unsigned t = 0; t < srv->n_workers; t++) {
		if (pthread_create(&srv->workers[t].thread, NULL, worker_main, &srv->workers[t]) !=
		    0) {
			ret = -EAGAIN;
			goto fail_threads;
		}
		started++;
	}
	for (size_t i = 0; i < cfg->n_listen; i++)
		log_info("listening on %s (udp, tcp), %u threads", cfg->listen[i].text,
			 srv->n_workers);
	*out = srv;
	return 0;

fail_threads:
	for (unsigned t = 0; t < started; t++) {
		uv_async_send(&srv->workers[t].stop);
		pthread_join(srv->workers[t].thread, NULL);
	}
fail_workers:
	for (unsigned t = started; t < inited; t++) {
		struct worker *w = &srv->workers[t];
		if (w->udp && w->tcp)
			worker_close_all(w);
		else
			uv_close((uv_handle_t *)&w->stop, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT);
	}
	for (unsigned t = 0; t < inited; t++)
		worker_cleanup(&srv->workers[t]);
fail:
	dns_limits_free(srv->limits);
	free(srv->workers);
	free(srv);
	return ret;
}

void dns_server_drain(struct dns_server *srv)
{
	atomic_store(&srv->phase, PHASE_DRAIN);
	for (unsigned t = 0; t < srv->n_workers; t++)
		uv_async_send(&srv->workers[t].stop);
}

bool dns_server_drained(const struct dns_server *srv)
{
	return atomic_load(&srv->drained) == srv->n_workers;
}

void dns_server_stop(struct dns_server *srv)
{
	if (!srv)
		return;
	atomic_store(&srv->phase, PHASE_STOP);
	for (unsigned t = 0; t < srv->n_workers; t++)
		uv_async_send(&srv->workers[t].stop);
	for (unsigned t = 0; t < srv->n_workers; t++) {
		pthread_join(srv->workers[t].thread, NULL);
		worker_cleanup(&srv->workers[t]);
	}
	dns_limits_free(srv->limits);
	free(srv->workers);
	free(srv);
}

const struct dns_limits *dns_server_limits(const struct dns_server *srv)
{
	return srv ? srv->limits : NULL;
}
