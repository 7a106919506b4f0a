/* The forwarder's clock and network on a libuv loop: timers are uv_timer_t,
 * time is common/clock.h, and each UDP exchange has a socket of its own
 * (random source port, ICMP errors reported); TCP goes to forward_tcp.c, and
 * everything for a TLS upstream to forward_tls.c. */
#include "resolver/forward_io.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "resolver/forward_tls.h"
#include "resolver/upstream.h"

#define UDP_DRAIN 16 /* datagrams read per wakeup of one exchange's socket */

struct fwd_timer {
	uv_timer_t h;
	fwd_timer_fn fn;
	void *arg;
};

struct udp_xchg {
	struct fwd_xchg x; /* tcp: false */
	uv_poll_t poll;
	int fd;
	struct fwd_uv *uv;
	size_t up;
	bool open; /* neither ended nor failed */
	bool (*on_answer)(void *arg, uint8_t *msg, size_t len);
	void (*on_error)(void *arg, int err, bool reused);
	void *arg;
	struct udp_xchg *next_free;
};

struct fwd_uv {
	uv_loop_t *loop;
	struct upstream_set *ups;
	unsigned slot;
	bool count_drops;
	struct fwd_clock clock;
	struct fwd_net net;
	struct fwd_tcp *tcp;
	struct fwd_tls *tls; /* NULL: no TLS upstream */
	struct udp_xchg *free_udp;
	uint8_t rbuf[65536];
};

/* ---- time ------------------------------------------------------------------ */

/* Cache expiry is read on every query: the coarse clock is enough there. */
static uint64_t uv_clock_ms(void *ctx)
{
	(void)ctx;
	return clock_now_ms_coarse();
}

static uint64_t uv_clock_ns(void *ctx)
{
	(void)ctx;
	return clock_now_ns();
}

static void on_uv_timer(uv_timer_t *h)
{
	struct fwd_timer *t = h->data;
	t->fn(t->arg);
}

static struct fwd_timer *uv_timer_make(void *ctx, fwd_timer_fn fn, void *arg)
{
	struct fwd_uv *u = ctx;
	struct fwd_timer *t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	uv_timer_init(u->loop, &t->h);
	t->h.data = t;
	t->fn = fn;
	t->arg = arg;
	return t;
}

static void uv_timer_arm(struct fwd_timer *t, uint64_t after_ms, uint64_t repeat_ms)
{
	uv_timer_start(&t->h, on_uv_timer, after_ms, repeat_ms);
}

static void uv_timer_disarm(struct fwd_timer *t)
{
	uv_timer_stop(&t->h);
}

static void timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void uv_timer_release(struct fwd_timer *t)
{
	uv_close((uv_handle_t *)&t->h, timer_closed);
}

/* ---- UDP exchanges --------------------------------------------------------- */

/* A non-blocking UDP socket that reports ICMP errors (IP_RECVERR), so that a
 * closed port fails at once rather than after the timeout. The kernel picks a
 * random source port when it is first used. */
static int udp_socket(const struct upstream *u)
{
	int fam = u->addr.ss_family;
	int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (fam == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
	return fd;
}

static void drain_errqueue(int fd)
{
	uint8_t buf[512], ctl[512];
	for (int i = 0; i < 8; i++) {
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};
		if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
	}
}

static void udp_fail(struct udp_xchg *x, int err)
{
	struct upstream *u = &x->uv->ups->ups[x->up];
	drain_errqueue(x->fd);
	log_debug("upstream %s: %s", u->text, strerror(err));
	uv_poll_stop(&x->poll);
	x->open = false;
	x->on_error(x->arg, -err, false);
}

static void on_udp_readable(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct udp_xchg *x = h->data;
	struct fwd_uv *uv = x->uv;
	struct upstream *u = &uv->ups->ups[x->up];
	for (int i = 0; i < UDP_DRAIN && x->open; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n =
		    recvfrom(x->fd, uv->rbuf, sizeof(uv->rbuf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) && status >= 0)
				return;
			/* ICMP port unreachable and friends (IP_RECVERR). */
			udp_fail(x, errno);
			return;
		}
		if (!upstream_addr_equal((struct sockaddr *)&from, (struct sockaddr *)&u->addr)) {
			if (uv->count_drops) {
				upstream_count_dropped(uv->ups, x->up, uv->slot);
				log_debug("upstream %s: answer from another address dropped",
					  u->text);
			}
			continue;
		}
		if (x->on_answer(x->arg, uv->rbuf, (size_t)n))
			return;
	}
}

static void udp_closed(uv_handle_t *h)
{
	struct udp_xchg *x = h->data;
	close(x->fd);
	x->next_free = x->uv->free_udp;
	x->uv->free_udp = x;
}

static int udp_send(struct fwd_uv *uv, const struct fwd_xchg_req *r, struct fwd_xchg **out)
{
	const struct upstream *u = &uv->ups->ups[r->up];
	int fd = udp_socket(u);
	if (fd < 0)
		return fd;
	if (sendto(fd, r->msg, r->len, 0, (const struct sockaddr *)&u->addr, u->addr_len) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct udp_xchg *x = uv->free_udp;
	if (x) {
		uv->free_udp = x->next_free;
	} else if (!(x = malloc(sizeof(*x)))) {
		close(fd);
		return -ENOMEM;
	}
	x->x.tcp = false;
	x->x.tls = false;
	x->fd = fd;
	x->uv = uv;
	x->up = r->up;
	x->open = true;
	x->on_answer = r->on_answer;
	x->on_error = r->on_error;
	x->arg = r->arg;
	uv_poll_init(uv->loop, &x->poll, fd);
	x->poll.data = x;
	uv_poll_start(&x->poll, UV_READABLE, on_udp_readable);
	*out = &x->x;
	return 0;
}

static void udp_end(struct udp_xchg *x)
{
	x->open = false;
	uv_close((uv_handle_t *)&x->poll, udp_closed);
}

/* ---- the network ------------------------------------------------------------ */

static int uv_net_send(void *ctx, const struct fwd_xchg_req *r, struct fwd_xchg **out)
{
	struct fwd_uv *uv = ctx;
	/* Whatever the engine asks for, a TLS upstream gets TLS or nothing. */
	if (uv->ups->ups[r->up].tls)
		return uv->tls ? fwd_tls_send(uv->tls, r, out) : -EPROTONOSUPPORT;
	return r->tcp ? fwd_tcp_send(uv->tcp, r, out) : udp_send(uv, r, out);
}

static void uv_net_end(struct fwd_xchg *x)
{
	if (x->tls)
		fwd_tls_end(x);
	else if (x->tcp)
		fwd_tcp_end(x);
	else
		udp_end((struct udp_xchg *)x);
}

int fwd_uv_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, bool count_drops,
	       struct fwd_uv **out)
{
	struct fwd_uv *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	int ret = fwd_tcp_new(loop, ups, slot, &u->tcp);
	if (ret == 0 && ups->tls)
		ret = fwd_tls_new(loop, ups, slot, &u->tls);
	if (ret < 0) {
		fwd_tcp_free(u->tcp);
		free(u);
		return ret;
	}
	u->loop = loop;
	u->ups = ups;
	u->slot = slot;
	u->count_drops = count_drops;
	u->clock = (struct fwd_clock){
	    .ctx = u,
	    .now_ms = uv_clock_ms,
	    .now_ns = uv_clock_ns,
	    .timer_new = uv_timer_make,
	    .timer_start = uv_timer_arm,
	    .timer_stop = uv_timer_disarm,
	    .timer_free = uv_timer_release,
	};
	u->net = (struct fwd_net){.ctx = u, .send = uv_net_send, .end = uv_net_end};
	*out = u;
	return 0;
}

const struct fwd_clock *fwd_uv_clock(struct fwd_uv *u)
{
	return &u->clock;
}

const struct fwd_net *fwd_uv_net(struct fwd_uv *u)
{
	return &u->net;
}

void fwd_uv_close(struct fwd_uv *u)
{
	if (!u)
		return;
	fwd_tcp_close(u->tcp);
	fwd_tls_close(u->tls);
}

void fwd_uv_free(struct fwd_uv *u)
{
	if (!u)
		return;
	for (struct udp_xchg *x = u->free_udp, *next; x; x = next) {
		next = x->next_free;
		free(x);
	}
	fwd_tcp_free(u->tcp);
	fwd_tls_free(u->tls);
	free(u);
}
