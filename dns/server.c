/* DNS worker threads: each runs its own loop with its own SO_REUSEPORT UDP and
 * TCP sockets (udp.c, tcp.c); this file opens them, starts, drains and stops
 * the workers. See server.h. */
#include "dns/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/shash.h"
#include "dns/limits.h"
#include "dns/rrl.h"
#include "dns/worker.h"
#include "resolver/forward.h"
#include "zones/snapshot.h"

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

void dns_worker_limit_hit(struct worker *w, enum dns_limit what, uint64_t now_ms)
{
	dns_limits_hit(w->srv->limits, w->index, what, now_ms);
}

/* Closes every handle of a worker so that its loop can end. */
static void worker_close_all(struct worker *w)
{
	forward_worker_close(w->ctx.fwd);
	dns_tcp_close_all(w);
	for (size_t i = 0; i < w->n_udp; i++)
		if (w->udp[i].w && !uv_is_closing((uv_handle_t *)&w->udp[i].poll))
			uv_close((uv_handle_t *)&w->udp[i].poll, NULL);
	for (size_t i = 0; i < w->n_tcp; i++)
		if (w->tcp[i].w && !uv_is_closing((uv_handle_t *)&w->tcp[i].handle))
			uv_close((uv_handle_t *)&w->tcp[i].handle, NULL);
	if (w->limits_tick_on && !uv_is_closing((uv_handle_t *)&w->limits_tick))
		uv_close((uv_handle_t *)&w->limits_tick, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->stop))
		uv_close((uv_handle_t *)&w->stop, NULL);
}

void dns_worker_drained_check(struct worker *w)
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
	for (size_t i = 0; i < w->n_udp; i++)
		if (w->udp[i].w && !uv_is_closing((uv_handle_t *)&w->udp[i].poll))
			uv_poll_stop(&w->udp[i].poll);
	for (size_t i = 0; i < w->n_tcp; i++)
		if (w->tcp[i].w && !uv_is_closing((uv_handle_t *)&w->tcp[i].handle))
			uv_close((uv_handle_t *)&w->tcp[i].handle, NULL);
	dns_tcp_drain_all(w);
	dns_worker_drained_check(w);
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
	metrics_worker_enter(w->ctx.mw);
	atomic_fetch_add(&w->srv->running, 1);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void worker_cleanup(struct worker *w)
{
	for (size_t i = 0; i < w->n_udp; i++)
		if (w->udp[i].fd >= 0)
			close(w->udp[i].fd);
	free(w->udp);
	free(w->tcp);
	rrl_free(w->ctx.rrl);
	forward_worker_free(w->ctx.fwd);
	uv_loop_close(&w->loop);
}

/* Socket j of listen address i: the j-th one taken over, else a new one. A
 * socket taken over is served through a duplicate, so that the caller's
 * copy and the server's close apart. */
static int socket_for(const struct dns_server_config *cfg, size_t i, int type, size_t j)
{
	const struct dns_inherited *inh = cfg->inherited ? &cfg->inherited[i] : NULL;
	size_t n = !inh ? 0 : type == SOCK_DGRAM ? inh->n_udp : inh->n_tcp;
	if (j >= n)
		return open_socket(&cfg->listen[i], type);
	int fd = fcntl(type == SOCK_DGRAM ? inh->udp[j] : inh->tcp[j], F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

/* How many sockets listen address i has of `type`: one per worker, or every
 * one taken over when there were more (none may go unread: the kernel keeps
 * sending them their share). */
static size_t sockets_of(const struct dns_server *srv, size_t i, int type)
{
	const struct dns_inherited *inh = srv->cfg.inherited ? &srv->cfg.inherited[i] : NULL;
	size_t n = !inh ? 0 : type == SOCK_DGRAM ? inh->n_udp : inh->n_tcp;
	return n > srv->n_workers ? n : srv->n_workers;
}

static int listen_udp(struct worker *w, size_t i, size_t j)
{
	const struct dns_listen *l = &w->cfg->listen[i];
	int fd = socket_for(w->cfg, i, SOCK_DGRAM, j);
	if (fd < 0) {
		log_error("listen %s (udp): %s", l->text, strerror(-fd));
		return fd;
	}
	struct udp_sock *us = &w->udp[w->n_udp++];
	us->fd = fd;
	us->w = w;
	us->listen = (unsigned)i;
	us->pktinfo = is_wildcard(l);
	uv_poll_init(&w->loop, &us->poll, fd);
	us->poll.data = us;
	uv_poll_start(&us->poll, UV_READABLE, dns_udp_read);
	return 0;
}

static int listen_tcp(struct worker *w, size_t i, size_t j)
{
	const struct dns_listen *l = &w->cfg->listen[i];
	int tfd = socket_for(w->cfg, i, SOCK_STREAM, j);
	if (tfd < 0) {
		log_error("listen %s (tcp): %s", l->text, strerror(-tfd));
		return tfd;
	}
	struct tcp_listener *tl = &w->tcp[w->n_tcp++];
	uv_tcp_init(&w->loop, &tl->handle);
	tl->w = w;
	tl->fd = tfd;
	tl->listen = (unsigned)i;
	tl->handle.data = tl;
	if (uv_tcp_open(&tl->handle, tfd) < 0 ||
	    uv_listen((uv_stream_t *)&tl->handle, 1024, dns_tcp_accept) < 0) {
		close(tfd);
		tl->fd = -1;
		log_error("listen %s (tcp): cannot listen", l->text);
		return -EIO;
	}
	return 0;
}

/* Opens the worker's share of the sockets of listen address i (sockets j
 * with j % workers == its index) and starts polling them; a bad address is
 * logged here, naming it. */
static int worker_listen(struct worker *w, size_t i)
{
	struct dns_server *srv = w->srv;
	for (size_t j = w->index; j < sockets_of(srv, i, SOCK_DGRAM); j += srv->n_workers) {
		int ret = listen_udp(w, i, j);
		if (ret < 0)
			return ret;
	}
	for (size_t j = w->index; j < sockets_of(srv, i, SOCK_STREAM); j += srv->n_workers) {
		int ret = listen_tcp(w, i, j);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The worker's share of the sockets over every address: room for them. */
static int worker_alloc_socks(struct worker *w)
{
	struct dns_server *srv = w->srv;
	size_t nu = 0, nt = 0;
	for (size_t i = 0; i < w->cfg->n_listen; i++) {
		nu += (sockets_of(srv, i, SOCK_DGRAM) - 1 - w->index) / srv->n_workers + 1;
		nt += (sockets_of(srv, i, SOCK_STREAM) - 1 - w->index) / srv->n_workers + 1;
	}
	w->udp = calloc(nu, sizeof(*w->udp));
	w->tcp = calloc(nt, sizeof(*w->tcp));
	if (!w->udp || !w->tcp)
		return -ENOMEM;
	for (size_t k = 0; k < nu; k++)
		w->udp[k].fd = -1;
	for (size_t k = 0; k < nt; k++)
		w->tcp[k].fd = -1;
	return 0;
}

/* Sets worker t up, sockets and all, without starting its thread. *inited
 * counts the workers whose loop exists (and must be closed on failure). */
static int worker_init(struct dns_server *srv, unsigned t, unsigned *inited)
{
	const struct dns_server_config *cfg = &srv->cfg;
	struct worker *w = &srv->workers[t];
	w->cfg = cfg;
	w->srv = srv;
	w->index = t;
	w->ctx = (struct dns_process_ctx){
	    .mw = cfg->metrics ? metrics_worker_new(cfg->metrics) : NULL,
	    .limits = srv->limits,
	    .worker = t,
	    .allow_transfer = cfg->allow_transfer,
	    .n_allow_transfer = cfg->n_allow_transfer,
	};
	/* The receive headers point at fixed buffers for the worker's life;
	 * dns_udp_read resets only what recvmmsg writes back. */
	for (int i = 0; i < UDP_BATCH; i++) {
		w->in_iov[i].iov_base = w->in_buf[i];
		w->in_iov[i].iov_len = UDP_BUF;
		w->in[i].msg_hdr.msg_name = &w->peers[i];
		w->in[i].msg_hdr.msg_iov = &w->in_iov[i];
		w->in[i].msg_hdr.msg_iovlen = 1;
	}
	w->in_dirty = UDP_BATCH; /* none is ready for recvmmsg yet */
	w->reader = snapshot_reader_register();
	if (!w->reader)
		return -ENOSPC;
	uv_loop_init(&w->loop);
	(*inited)++;
	uv_async_init(&w->loop, &w->stop, on_stop);
	w->stop.data = w;
	if (cfg->forwarder &&
	    forward_worker_new(cfg->forwarder, &w->loop, t, dns_tcp_forward_reply, &w->ctx.fwd) < 0)
		return -ENOMEM;
	if (worker_alloc_socks(w) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		int ret = worker_listen(w, i);
		if (ret < 0)
			return ret;
	}
	if (cfg->rrl) {
		int ret = rrl_new(cfg->rrl, cfg->rrl_slip, RRL_BUCKETS_DEFAULT, &w->ctx.rrl);
		if (ret < 0)
			return ret;
	}
	if (t == 0) {
		uv_timer_init(&w->loop, &w->limits_tick);
		w->limits_tick.data = w;
		w->limits_tick_on = true;
		uv_timer_start(&w->limits_tick, on_limits_tick, DNS_LIMITS_LOG_MS,
			       DNS_LIMITS_LOG_MS);
	}
	return 0;
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
	for (unsigned t = 0; t < srv->n_workers; t++)
		if ((ret = worker_init(srv, t, &inited)) < 0)
			goto fail_workers;
	for (unsigned t = 0; t < srv->n_workers; t++) {
		if (pthread_create(&srv->workers[t].thread, NULL, worker_main, &srv->workers[t]) !=
		    0) {
			ret = -EAGAIN;
			goto fail_threads;
		}
		started++;
	}
	/* Every worker reads before the start returns: after a hand-over, the
	 * old process stops reading as soon as it does. */
	for (int waited = 0; atomic_load(&srv->running) < srv->n_workers && waited < 2000; waited++)
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
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

size_t dns_server_sockets(const struct dns_server *srv, size_t i, int type, int *fds, size_t cap)
{
	size_t n = 0;
	for (unsigned t = 0; t < srv->n_workers; t++) {
		const struct worker *w = &srv->workers[t];
		if (type == SOCK_DGRAM) {
			for (size_t k = 0; k < w->n_udp; k++)
				if (w->udp[k].listen == i && w->udp[k].fd >= 0 && n++ < cap)
					fds[n - 1] = w->udp[k].fd;
		} else {
			for (size_t k = 0; k < w->n_tcp; k++)
				if (w->tcp[k].listen == i && w->tcp[k].fd >= 0 && n++ < cap)
					fds[n - 1] = w->tcp[k].fd;
		}
	}
	return n;
}

const struct dns_limits *dns_server_limits(const struct dns_server *srv)
{
	return srv ? srv->limits : NULL;
}
