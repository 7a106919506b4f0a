/* TCP forwarding: accept on a ClusterIP or NodePort listener, connect to an
 * endpoint (the next one when it refuses or stays silent past the connect
 * timeout), then move bytes both ways with splice(2) through a pipe, so that
 * they never cross into user space, or with recv/send where splice cannot. */
#include "proxy/datapath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"

#define ACCEPT_BATCH 64
#define PUMP_ROUNDS  16 /* per event and direction, so one busy connection cannot starve others */
#define CHUNK	     (256 * 1024)
#define COPY_BUF     (64 * 1024)

/* One direction of a connection: bytes read from one socket, not yet written
 * to the other, wait in a pipe (splice) or a buffer (copy). */
struct pdir {
	int pipe[2]; /* -1 when holding none */
	size_t pending;
	uint8_t *buf;
	size_t off;
	bool copy; /* recv/send instead of splice */
	bool eof;  /* the source sent FIN */
	bool shut; /* FIN passed on to the destination */
	bool more; /* stopped by the budget with work left: resume from the ready list */
};

enum conn_state { CONNECTING, RELAYING, CLOSING };

struct pconn {
	struct dlist link;
	struct proxy *p;
	struct pport *port;
	struct pendpoints *eps; /* held while endpoints are being tried */
	struct net_addr client;
	int cfd, ufd;
	struct pev cev;	  /* the client's socket; also the ready-list entry */
	struct pev uev;	  /* the endpoint's socket, whichever attempt it is */
	uv_timer_t timer; /* connect timeout; its close callback frees the connection */
	size_t first, tries, cur;
	enum conn_state state;
	struct pdir up;	  /* client -> endpoint */
	struct pdir down; /* endpoint -> client */
};

#define CONN_OF(e, member) ((struct pconn *)((char *)(e)-offsetof(struct pconn, member)))

/* ---- pipes ------------------------------------------------------------------ */

static int pipe_get(struct proxy *p, int fds[2])
{
	if (p->n_pipes) {
		p->n_pipes--;
		fds[0] = p->pipes[p->n_pipes][0];
		fds[1] = p->pipes[p->n_pipes][1];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		fds[0] = fds[1] = -1;
		return -errno;
	}
	/* A bigger pipe moves a burst in fewer calls; the default size is
	 * fine when the kernel refuses. */
	(void)fcntl(fds[1], F_SETPIPE_SZ, CHUNK);
	return 0;
}

/* Returns an empty pipe to the pool (or closes it). */
static void pipe_put(struct proxy *p, int fds[2])
{
	if (fds[0] < 0)
		return;
	if (p->n_pipes < PROXY_PIPE_POOL && !p->stopping) {
		p->pipes[p->n_pipes][0] = fds[0];
		p->pipes[p->n_pipes][1] = fds[1];
		p->n_pipes++;
	} else {
		close(fds[0]);
		close(fds[1]);
	}
	fds[0] = fds[1] = -1;
}

static void dir_release(struct proxy *p, struct pdir *d)
{
	if (d->pipe[0] >= 0 && d->pending) {
		/* Bytes left inside: the pipe cannot be reused. */
		close(d->pipe[0]);
		close(d->pipe[1]);
		d->pipe[0] = d->pipe[1] = -1;
	}
	pipe_put(p, d->pipe);
	free(d->buf);
	d->buf = NULL;
}

/* ---- closing ------------------------------------------------------------------ */

static void reset_close(int fd)
{
	/* Linger 0: close sends RST, so the client learns at once. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct pconn *c = h->data;
	struct proxy *p = c->p;
	pport_put(c->port);
	free(c);
	proxy_handle_closed(p);
}

/* Closes the endpoint socket of the current attempt (which also takes it out
 * of the epoll set). */
static void upstream_drop(struct pconn *c, bool rst)
{
	if (c->ufd < 0)
		return;
	if (rst)
		reset_close(c->ufd);
	else
		close(c->ufd);
	c->ufd = -1;
}

static void conn_close(struct pconn *c, bool rst)
{
	if (c->state == CLOSING)
		return;
	struct proxy *p = c->p;
	c->state = CLOSING;
	proxy_ev_cancel(&c->cev);
	if (rst)
		reset_close(c->cfd);
	else
		close(c->cfd);
	upstream_drop(c, rst);
	/* Freed in the timer's close callback: after any epoll batch that may
	 * still name this connection. */
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
	dir_release(p, &c->up);
	dir_release(p, &c->down);
	pendpoints_put(c->eps);
	c->eps = NULL;
	dlist_del(&c->link);
	p->n_conns--;
	pport_active_add(c->port, -1);
}

void tcp_conn_close_all(struct proxy *p)
{
	while (p->conns.next != &p->conns) {
		struct pconn *c =
		    (struct pconn *)((char *)p->conns.next - offsetof(struct pconn, link));
		conn_close(c, false);
	}
}

/* ---- relaying ------------------------------------------------------------------ */

/* The source said EOF and everything before it was written: pass the FIN on
 * (a half-close; the other direction keeps going). */
static void dir_finish(struct proxy *p, struct pdir *d, int dfd)
{
	if (!d->shut) {
		shutdown(dfd, SHUT_WR);
		d->shut = true;
	}
	dir_release(p, d);
}

/* Moves what `d` can from sfd to dfd until either would block (the edge-
 * triggered events then say when to go on), EOF, or the budget is spent (then
 * d->more asks to be resumed). Returns 0, or a negative errno when the
 * connection must be torn down. */
static int pump(struct proxy *p, struct pdir *d, int sfd, int dfd, uint64_t *counter)
{
	d->more = false;
	for (int round = 0; round < PUMP_ROUNDS; round++) {
		ssize_t n;
		if (d->pending) {
			if (d->pipe[0] >= 0)
				n = splice(d->pipe[0], NULL, dfd, NULL, d->pending,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			else
				n = send(dfd, d->buf + d->off, d->pending, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN)
					return 0; /* EPOLLOUT on dfd resumes */
				if (errno == EINTR)
					continue;
				return -errno;
			}
			d->pending -= (size_t)n;
			d->off = d->pending ? d->off + (size_t)n : 0;
			*counter += (uint64_t)n;
			continue;
		}
		if (d->eof) {
			dir_finish(p, d, dfd);
			return 0;
		}
		if (!d->copy) {
			if (d->pipe[0] < 0 && pipe_get(p, d->pipe) < 0) {
				d->copy = true; /* out of descriptors: copy instead */
				continue;
			}
			n = splice(sfd, NULL, d->pipe[1], NULL, CHUNK,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
				pipe_put(p, d->pipe);
				d->copy = true;
				continue;
			}
		} else {
			if (!d->buf && !(d->buf = malloc(COPY_BUF)))
				return -ENOMEM;
			n = recv(sfd, d->buf, COPY_BUF, 0);
		}
		if (n > 0) {
			d->pending = (size_t)n;
			d->off = 0;
			continue;
		}
		if (n == 0) {
			d->eof = true;
			continue;
		}
		if (errno == EAGAIN) {
			/* Empty: give the pipe back, idle connections hold none.
			 * EPOLLIN on sfd resumes. */
			pipe_put(p, d->pipe);
			return 0;
		}
		if (errno == EINTR)
			continue;
		return -errno;
	}
	if (d->pending || !d->eof)
		d->more = true;
	else
		dir_finish(p, d, dfd);
	return 0;
}

static void conn_fail(struct pconn *c, int err, const char *side)
{
	log_debug("proxy: Service %s/%s port %u/%s: connection ended by %s: %s", c->port->ns,
		  c->port->name, c->port->port, proxy_proto_name(c->port->proto), side,
		  strerror(-err));
	/* Pass the reset on, so that neither peer waits on a dead connection. */
	conn_close(c, true);
}

static void relay(struct pconn *c, bool up, bool down)
{
	struct proxy_port_stats *st = &c->port->st;
	int ret;
	if (up && !c->up.shut && (ret = pump(c->p, &c->up, c->cfd, c->ufd, &st->bytes_in)) < 0) {
		conn_fail(c, ret, "an error client->endpoint");
		return;
	}
	if (down && !c->down.shut &&
	    (ret = pump(c->p, &c->down, c->ufd, c->cfd, &st->bytes_out)) < 0) {
		conn_fail(c, ret, "an error endpoint->client");
		return;
	}
	if (c->up.shut && c->down.shut)
		conn_close(c, false);
	else if (c->up.more || c->down.more)
		proxy_ev_ready(c->p, &c->cev);
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t el = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	return err;
}

static void on_client_event(struct pev *e, uint32_t ev)
{
	struct pconn *c = CONN_OF(e, cev);
	if (c->state != RELAYING)
		return;
	if ((ev & EPOLLERR) && !(ev & EPOLLIN)) {
		int err = sock_error(c->cfd);
		conn_fail(c, -(err ? err : ECONNRESET), "the client");
		return;
	}
	/* EPOLLOUT edges come with every ACK: only a direction with bytes
	 * waiting cares. EPOLLIN (data, FIN or reset) always moves `up`. */
	relay(c, ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR),
	      (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->down.pending);
}

static void on_conn_resume(struct pev *e)
{
	struct pconn *c = CONN_OF(e, cev);
	if (c->state == RELAYING)
		relay(c, c->up.more, c->down.more);
}

/* ---- connecting ------------------------------------------------------------------ */

static void conn_try(struct pconn *c);

static void attempt_failed(struct pconn *c, int err)
{
	struct pport *pp = c->port;
	pp->st.endpoint_failures++;
	unsigned skipped;
	if (pport_log_allowed(pp, &skipped)) {
		char ep[64];
		proxy_endpoint_format(&c->eps->ep[c->cur], ep, sizeof(ep));
		log_warn("proxy: Service %s/%s port %u/TCP: endpoint %s: %s; trying the next%s",
			 pp->ns, pp->name, pp->port, ep,
			 err == -ETIMEDOUT ? "no answer in time" : strerror(-err),
			 SKIPPED(skipped));
	}
	if (pp->affinity_ms)
		balance_forget(&pp->bal, &c->client);
}

static void conn_connected(struct pconn *c)
{
	struct pport *pp = c->port;
	uv_timer_stop(&c->timer);
	if (proxy_ev_add(c->p, c->cfd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, &c->cev) < 0) {
		conn_close(c, true);
		return;
	}
	c->state = RELAYING;
	if (pp->affinity_ms)
		balance_bind(&pp->bal, &c->client, &c->eps->ep[c->cur], pp->affinity_ms,
			     uv_now(c->p->loop));
	pendpoints_put(c->eps);
	c->eps = NULL;
	c->up.copy = c->down.copy = c->p->cfg.no_splice;
	/* The client may have spoken already: its EPOLLIN edge came before we
	 * listened. */
	relay(c, true, true);
}

static void on_upstream_event(struct pev *e, uint32_t ev)
{
	struct pconn *c = CONN_OF(e, uev);
	if (c->state == CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		/* The socket knows whether the connect worked. */
		int err = sock_error(c->ufd);
		if (!err && (ev & (EPOLLERR | EPOLLHUP)))
			err = ECONNREFUSED;
		if (!err) {
			conn_connected(c);
			return;
		}
		uv_timer_stop(&c->timer);
		upstream_drop(c, false);
		attempt_failed(c, -err);
		conn_try(c);
		return;
	}
	if (c->state != RELAYING)
		return;
	if ((ev & EPOLLERR) && !(ev & EPOLLIN)) {
		int err = sock_error(c->ufd);
		conn_fail(c, -(err ? err : ECONNRESET), "the endpoint");
		return;
	}
	relay(c, (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->up.pending,
	      ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR));
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct pconn *c = t->data;
	if (c->state != CONNECTING)
		return;
	upstream_drop(c, false);
	attempt_failed(c, -ETIMEDOUT);
	conn_try(c);
}

/* Tries endpoints from the current position until one connects or starts
 * connecting; resets the client when every endpoint has been tried. */
static void conn_try(struct pconn *c)
{
	struct proxy *p = c->p;
	while (c->tries < c->eps->n) {
		c->cur = (c->first + c->tries) % c->eps->n;
		c->tries++;
		struct sockaddr_storage ss;
		socklen_t sl = proxy_endpoint_sockaddr(&c->eps->ep[c->cur], &ss);
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			unsigned skipped;
			if (proxy_cap_log_allowed(p, &skipped))
				log_warn(
				    "proxy: cannot open a socket to an endpoint (%s); resetting "
				    "the client%s",
				    strerror(errno), SKIPPED(skipped));
			conn_close(c, true);
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		int r = connect(fd, (struct sockaddr *)&ss, sl);
		if (r < 0 && errno != EINPROGRESS) {
			int err = errno;
			close(fd);
			attempt_failed(c, -err);
			continue;
		}
		c->ufd = fd;
		if (proxy_ev_add(p, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, &c->uev) < 0) {
			conn_close(c, true);
			return;
		}
		if (r == 0) {
			conn_connected(c);
			return;
		}
		uv_timer_start(&c->timer, on_connect_timeout, p->cfg.connect_timeout_ms, 0);
		return;
	}
	unsigned skipped;
	if (pport_log_allowed(c->port, &skipped))
		log_warn("proxy: Service %s/%s port %u/TCP: none of %zu endpoints answered; "
			 "connection reset%s",
			 c->port->ns, c->port->name, c->port->port, c->eps->n, SKIPPED(skipped));
	conn_close(c, true);
}

/* ---- accepting ------------------------------------------------------------------ */

static void client_addr(const struct sockaddr_storage *ss, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = (uint8_t)ss->ss_family;
	if (ss->ss_family == AF_INET6)
		memcpy(a->bytes, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	else
		memcpy(a->bytes, &((const struct sockaddr_in *)ss)->sin_addr, 4);
}

static void conn_start(struct plistener *l, int fd, const struct sockaddr_storage *ss)
{
	struct proxy *p = l->p;
	struct pport *pp = l->port;
	unsigned skipped;

	if (p->n_conns >= p->cfg.max_conns) {
		pp->st.over_limit++;
		if (proxy_cap_log_allowed(p, &skipped))
			log_warn("proxy: %u connections open, the --proxy-max-conns limit: new "
				 "ones are reset%s",
				 p->n_conns, SKIPPED(skipped));
		reset_close(fd);
		return;
	}
	if (!pp->eps || pp->eps->n == 0) {
		/* Like kube-proxy's REJECT: fail fast rather than hang. */
		pp->st.no_endpoints++;
		if (pport_log_allowed(pp, &skipped))
			log_info("proxy: Service %s/%s port %u/TCP has no ready endpoint; "
				 "connection reset%s",
				 pp->ns, pp->name, pp->port, SKIPPED(skipped));
		reset_close(fd);
		return;
	}
	struct pconn *c = calloc(1, sizeof(*c));
	if (!c) {
		reset_close(fd);
		return;
	}
	uv_timer_init(p->loop, &c->timer);
	p->handles++;
	c->timer.data = c;
	c->cev.on_event = on_client_event;
	c->cev.on_resume = on_conn_resume;
	c->uev.on_event = on_upstream_event;
	dlist_init(&c->cev.ready);
	c->p = p;
	c->cfd = fd;
	c->ufd = -1;
	c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
	c->port = pp;
	pp->refs++;
	c->eps = pp->eps;
	c->eps->refs++;
	client_addr(ss, &c->client);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	dlist_add(&p->conns, &c->link);
	p->n_conns++;
	pp->st.connections++;
	pport_active_add(pp, 1);
	c->first = balance_pick(&pp->bal, c->eps->ep, c->eps->n, &c->client, pp->affinity_ms,
				uv_now(p->loop));
	conn_try(c);
}

void tcp_listener_accept(struct plistener *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_start(l, fd, &ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN)
			return;
		unsigned skipped;
		if (proxy_cap_log_allowed(l->p, &skipped))
			log_warn(
			    "proxy: Service %s/%s: accept: %s; pausing this listener briefly%s",
			    l->port->ns, l->port->name, strerror(errno), SKIPPED(skipped));
		/* EMFILE and the like: the pending connection stays queued and
		 * would wake us at once; wait for descriptors to free up. */
		proxy_listener_pause(l);
		return;
	}
}
