/* Socket hand-over over a Unix socket (SOCK_SEQPACKET, SCM_RIGHTS): the
 * receiving side, run once before a new process serves, and the listening
 * side of a serving process. See handover.h. */
#include "daemon/handover.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

#define HO_MAGIC       0x5356484fu /* "SVHO" */
#define HO_FDS_MAX     64	   /* sockets per message; more go in several */
#define HO_SOCKETS_MAX 1024	   /* received in all: more is not an svcdns talking */
#define HO_WAIT_MS     5000	   /* a process that says nothing this long is gone */

enum ho_kind { HO_SOCKETS = 1, HO_END = 2, HO_SERVING = 3 };

struct ho_msg {
	uint32_t magic;
	uint32_t kind;
	uint32_t n; /* sockets attached */
};

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

static int send_msg(int fd, enum ho_kind kind, const int *fds, size_t n)
{
	struct ho_msg m = {.magic = HO_MAGIC, .kind = kind, .n = (uint32_t)n};
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int) * HO_FDS_MAX)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	ssize_t r;
	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)sizeof(m) ? 0 : r < 0 ? -errno : -EIO;
}

/* One message; its sockets into fds[0..*n) (closed on close-on-exec). */
static int recv_msg(int fd, struct ho_msg *m, int *fds, size_t *n)
{
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	union {
		char buf[CMSG_SPACE(sizeof(int) * HO_FDS_MAX)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl)};
	*n = 0;
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds + *n, CMSG_DATA(c), k * sizeof(int));
			*n += k;
		}
	if (r == 0)
		return -ECONNRESET;
	if (r != (ssize_t)sizeof(*m) || m->magic != HO_MAGIC || (mh.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	return 0;
}

/* ---- the new process --------------------------------------------------------- */

struct handover_taken {
	int conn;
	size_t n_listen;
	struct dns_inherited *inh; /* n_listen; their arrays point into fds */
	int *fds;		   /* every socket kept, grouped per address and type */
	size_t n_fds;
	int http_fd;
};

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* What a received socket is for, from what the kernel says of it (not from
 * the sender): a listen index (UDP: 2*i, TCP: 2*i+1), the HTTP one (-2), or
 * none of ours (-1). */
static long classify(int fd, const struct dns_listen *listen, size_t n_listen,
		     const struct dns_listen *http)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0, acc = 0;
	socklen_t tl = sizeof(type), al = sizeof(acc);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return -1;
	if (type == SOCK_STREAM &&
	    (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc))
		return -1;
	if (type == SOCK_STREAM && http && same_addr(&ss, &http->addr))
		return -2;
	for (size_t i = 0; i < n_listen; i++)
		if (same_addr(&ss, &listen[i].addr))
			return type == SOCK_DGRAM ? (long)(2 * i) : (long)(2 * i + 1);
	return -1;
}

static int connect_old(const char *path)
{
	struct sockaddr_un sun;
	int ret = unix_addr(path, &sun);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = HO_WAIT_MS / 1000, .tv_usec = (HO_WAIT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Receives every message up to HO_END into fds (with each one's class in
 * cls); the sockets received are kept even when the exchange fails after. */
static int receive_all(int conn, int *fds, long *cls, size_t *n, const struct dns_listen *listen,
		       size_t n_listen, const struct dns_listen *http)
{
	for (;;) {
		struct ho_msg m;
		int got[HO_FDS_MAX];
		size_t k;
		int ret = recv_msg(conn, &m, got, &k);
		for (size_t j = 0; j < k; j++) {
			long c =
			    *n < HO_SOCKETS_MAX ? classify(got[j], listen, n_listen, http) : -1;
			if (c == -1) {
				close(got[j]);
				continue;
			}
			fds[*n] = got[j];
			cls[(*n)++] = c;
		}
		if (ret < 0)
			return ret;
		if (m.kind == HO_END)
			return 0;
		if (m.kind != HO_SOCKETS)
			return -EPROTO;
	}
}

/* Groups the sockets received per address and type for dns/server.h. */
static int group(struct handover_taken *t, const int *fds, const long *cls, size_t n)
{
	t->inh = calloc(t->n_listen ? t->n_listen : 1, sizeof(*t->inh));
	t->fds = calloc(n ? n : 1, sizeof(int));
	if (!t->inh || !t->fds)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_listen; i++)
		for (int tcp = 0; tcp < 2; tcp++) {
			int *start = t->fds + t->n_fds;
			for (size_t j = 0; j < n; j++)
				if (cls[j] == (long)(2 * i + (size_t)tcp))
					t->fds[t->n_fds++] = fds[j];
			size_t count = (size_t)(t->fds + t->n_fds - start);
			if (tcp) {
				t->inh[i].tcp = start;
				t->inh[i].n_tcp = count;
			} else {
				t->inh[i].udp = start;
				t->inh[i].n_udp = count;
			}
		}
	for (size_t j = 0; j < n; j++)
		if (cls[j] == -2 && !t->http_fd)
			t->http_fd = fds[j];
		else if (cls[j] == -2)
			close(fds[j]);
	return 0;
}

static void log_sockets(const struct handover_taken *t, const char *path)
{
	size_t nu = 0, nt = 0;
	for (size_t i = 0; i < t->n_listen; i++) {
		nu += t->inh[i].n_udp;
		nt += t->inh[i].n_tcp;
	}
	log_info("handover: took over %zu UDP and %zu TCP DNS sockets%s from the process on %s; "
		 "serving them once synced",
		 nu, nt, t->http_fd ? " and the HTTP one" : "", path);
}

int handover_take(const char *path, const struct dns_listen *listen, size_t n_listen,
		  const char *http, struct handover_taken **out)
{
	*out = NULL;
	struct dns_listen hl;
	const struct dns_listen *hp = http && dns_listen_parse(http, &hl) == 0 ? &hl : NULL;
	int conn = connect_old(path);
	if (conn < 0) {
		log_info("handover: no process to take over from on %s (%s); binding the sockets",
			 path, strerror(-conn));
		return 0;
	}
	int ret = -ENOMEM;
	int *fds = calloc(HO_SOCKETS_MAX, sizeof(int));
	long *cls = calloc(HO_SOCKETS_MAX, sizeof(long));
	struct handover_taken *t = calloc(1, sizeof(*t));
	size_t n = 0;
	if (!fds || !cls || !t)
		goto fail;
	t->conn = conn;
	t->n_listen = n_listen;
	int rr = receive_all(conn, fds, cls, &n, listen, n_listen, hp);
	if (rr < 0) {
		/* The old process went away mid-way: what it sent is still ours
		 * to serve (the sockets live on in this process). */
		log_warn("handover: the process on %s went away before it sent every socket (%s); "
			 "binding what is missing",
			 path, rr == -EAGAIN ? "no answer in time" : strerror(-rr));
	}
	if ((ret = group(t, fds, cls, n)) < 0)
		goto fail;
	log_sockets(t, path);
	free(fds);
	free(cls);
	*out = t;
	return 0;
fail:
	for (size_t j = 0; fds && j < n; j++)
		close(fds[j]);
	free(fds);
	free(cls);
	if (t) {
		free(t->inh);
		free(t->fds);
		free(t);
	}
	close(conn);
	return ret;
}

const struct dns_inherited *handover_inherited(const struct handover_taken *t)
{
	return t ? t->inh : NULL;
}

int handover_http_fd(const struct handover_taken *t)
{
	return t ? t->http_fd : 0;
}

void handover_done(struct handover_taken *t, bool serving)
{
	if (!t)
		return;
	if (serving) {
		int ret = send_msg(t->conn, HO_SERVING, NULL, 0);
		if (ret < 0)
			log_info("handover: the old process is gone already (%s); serving",
				 strerror(-ret));
		else
			log_info("handover: serving; the old process stops reading and drains");
	}
	close(t->conn);
	for (size_t j = 0; j < t->n_fds; j++)
		close(t->fds[j]);
	if (t->http_fd)
		close(t->http_fd);
	free(t->inh);
	free(t->fds);
	free(t);
}

/* ---- the serving process ----------------------------------------------------- */

struct handover_server {
	struct handover_hooks h;
	uv_poll_t listener, conn;
	int lfd, cfd; /* -1: closed */
	bool conn_polling;
	int handles; /* open uv handles; freed at 0 once stopped */
	bool stopped;
};

static void on_closed(uv_handle_t *hd)
{
	struct handover_server *hs = hd->data;
	if (--hs->handles == 0 && hs->stopped)
		free(hs);
}

static void conn_end(struct handover_server *hs)
{
	if (hs->cfd < 0)
		return;
	if (hs->conn_polling)
		uv_close((uv_handle_t *)&hs->conn, on_closed);
	else
		hs->handles--;
	hs->conn_polling = false;
	close(hs->cfd);
	hs->cfd = -1;
}

static void on_conn(uv_poll_t *p, int status, int events)
{
	struct handover_server *hs = p->data;
	(void)events;
	struct ho_msg m;
	int fds[HO_FDS_MAX];
	size_t k = 0;
	int ret = status < 0 ? status : recv_msg(hs->cfd, &m, fds, &k);
	for (size_t j = 0; j < k; j++)
		close(fds[j]);
	if (ret == -EAGAIN)
		return;
	bool taken = ret == 0 && m.kind == HO_SERVING;
	if (!taken)
		log_warn("handover: the new process went away before it served (%s); serving on",
			 ret < 0 ? strerror(-ret) : "unexpected message");
	conn_end(hs);
	if (taken) {
		log_info("handover: the new process serves our sockets; no more hand-overs here");
		uv_close((uv_handle_t *)&hs->listener, on_closed);
		close(hs->lfd);
		hs->lfd = -1;
	}
	hs->h.done(hs->h.arg, taken);
}

/* Sends every listening socket, per address and type, then HO_END. */
static int send_sockets(struct handover_server *hs, int cfd)
{
	int fds[HO_SOCKETS_MAX];
	for (size_t i = 0; i < hs->h.n_listen; i++)
		for (int tcp = 0; tcp < 2; tcp++) {
			size_t n = dns_server_sockets(
			    hs->h.server, i, tcp ? SOCK_STREAM : SOCK_DGRAM, fds, HO_SOCKETS_MAX);
			n = n > HO_SOCKETS_MAX ? HO_SOCKETS_MAX : n;
			for (size_t off = 0; off < n; off += HO_FDS_MAX) {
				size_t k = n - off > HO_FDS_MAX ? HO_FDS_MAX : n - off;
				int ret = send_msg(cfd, HO_SOCKETS, fds + off, k);
				if (ret < 0)
					return ret;
			}
		}
	if (hs->h.http_fd >= 0) {
		int ret = send_msg(cfd, HO_SOCKETS, &hs->h.http_fd, 1);
		if (ret < 0)
			return ret;
	}
	return send_msg(cfd, HO_END, NULL, 0);
}

static void on_listener(uv_poll_t *p, int status, int events)
{
	struct handover_server *hs = p->data;
	(void)events;
	if (status < 0)
		return;
	int cfd = accept4(hs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (hs->cfd >= 0) {
		log_warn("handover: a second process asked while one is taking over; refused");
		close(cfd);
		return;
	}
	/* Whoever connects gets our sockets and can stop us serving: only a
	 * process of our own user (the file's mode says the same). */
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid()) {
		log_warn("handover: refused a process of another user");
		close(cfd);
		return;
	}
	int ret = send_sockets(hs, cfd);
	if (ret < 0) {
		log_warn("handover: cannot send the sockets to the new process: %s",
			 strerror(-ret));
		close(cfd);
		return;
	}
	log_info("handover: a new process took copies of our sockets; serving until it does");
	hs->cfd = cfd;
	hs->handles++;
	if (uv_poll_init(p->loop, &hs->conn, cfd) == 0) {
		hs->conn.data = hs;
		hs->conn_polling = true;
		uv_poll_start(&hs->conn, UV_READABLE | UV_DISCONNECT, on_conn);
	} else {
		conn_end(hs);
	}
}

int handover_listen(uv_loop_t *loop, const char *path, const struct handover_hooks *h,
		    struct handover_server **out)
{
	struct sockaddr_un sun;
	int ret = unix_addr(path, &sun);
	if (ret < 0)
		goto fail;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	/* A socket left there is stale: whoever served it handed over to us,
	 * or died (handover_take found nobody answering). Anything else there
	 * is not ours to remove. */
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		close(fd);
		ret = -EEXIST;
		goto fail;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 4) < 0) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	struct handover_server *hs = calloc(1, sizeof(*hs));
	if (!hs) {
		close(fd);
		ret = -ENOMEM;
		goto fail;
	}
	hs->h = *h;
	hs->lfd = fd;
	hs->cfd = -1;
	hs->handles = 1;
	uv_poll_init(loop, &hs->listener, fd);
	hs->listener.data = hs;
	uv_poll_start(&hs->listener, UV_READABLE, on_listener);
	log_info("handover: the next process can take over through %s", path);
	*out = hs;
	return 0;
fail:
	log_error("handover: cannot listen on %s: %s", path, strerror(-ret));
	return ret;
}

bool handover_pending(const struct handover_server *hs)
{
	return hs && hs->cfd >= 0;
}

void handover_stop(struct handover_server *hs)
{
	if (!hs)
		return;
	conn_end(hs);
	if (hs->lfd >= 0) {
		uv_close((uv_handle_t *)&hs->listener, on_closed);
		close(hs->lfd);
		hs->lfd = -1;
	}
	hs->stopped = true;
	if (hs->handles == 0)
		free(hs);
}
