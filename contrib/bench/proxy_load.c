/* Backends and load generators for contrib/bench/proxy.sh: a byte sink and a
 * one-shot request/response server over TCP, a UDP echo server, and the three
 * clients that measure bulk throughput, connection rate and UDP request rate.
 * Single-threaded epoll, libc only, so the tool costs the same whatever sits
 * between client and backend. Build: cc -O2 -o proxy_load proxy_load.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF	 (256 * 1024)
#define MAX_FD	 65536
#define REQ_LEN	 16
#define RESP_LEN 64

static uint8_t buf[BUF];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		fprintf(stderr, "proxy_load: %s: not an IPv4 address\n", ip);
		exit(2);
	}
	return sa;
}

static int listener(const struct sockaddr_in *sa, int type)
{
	int one = 1;
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		die("bind");
	if (type == SOCK_STREAM && listen(fd, 4096) < 0)
		die("listen");
	return fd;
}

static void ep_add(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

/* sink: counts a connection's bytes until EOF, answers with the count. */
/* rr: reads a request, answers RESP_LEN bytes, closes. */
__attribute__((noreturn)) static int serve_tcp(const struct sockaddr_in *sa, int sink)
{
	static uint64_t count[MAX_FD];
	int lfd = listener(sa, SOCK_STREAM), ep = epoll_create1(0);
	ep_add(ep, lfd, EPOLLIN);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if (c >= MAX_FD) {
						close(c);
						continue;
					}
					count[c] = 0;
					ep_add(ep, c, EPOLLIN);
				}
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, BUF);
				if (r > 0) {
					count[fd] += (uint64_t)r;
					if (sink)
						continue;
					memset(buf, 'r', RESP_LEN);
					ssize_t w = write(fd, buf, RESP_LEN);
					(void)w;
					close(fd);
					break;
				}
				if (r < 0 && errno == EAGAIN)
					break;
				if (r == 0 && sink) {
					ssize_t w = write(fd, &count[fd], sizeof(count[fd]));
					(void)w;
				}
				close(fd);
				break;
			}
		}
	}
}

__attribute__((noreturn)) static int serve_udp(const struct sockaddr_in *sa)
{
	int fd = listener(sa, SOCK_DGRAM);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl2 = sizeof(from);
		ssize_t r = recvfrom(fd, buf, BUF, 0, (struct sockaddr *)&from, &fl2);
		if (r >= 0)
			sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl2);
	}
}

/* Sends for `secs`, half-closes, waits for the sink's count. */
static int run_bulk(const struct sockaddr_in *sa, double secs)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		die("connect");
	memset(buf, 'b', BUF);
	double t0 = now(), t1;
	uint64_t sent = 0;
	do {
		ssize_t w = write(fd, buf, BUF);
		if (w < 0)
			die("write");
		sent += (uint64_t)w;
	} while ((t1 = now()) - t0 < secs);
	shutdown(fd, SHUT_WR);
	uint64_t got = 0;
	if (read(fd, &got, sizeof(got)) != sizeof(got))
		die("read count");
	double dt = now() - t0;
	close(fd);
	if (got != sent)
		fprintf(stderr, "proxy_load: sent %llu bytes, the sink counted %llu\n",
			(unsigned long long)sent, (unsigned long long)got);
	printf("%.1f\n", (double)got / dt / 1e6); /* MB/s */
	return 0;
}

/* `conc` connections at a time: connect, send a request, read the answer
 * until EOF, close, again. Prints completed connections per second. */
static int run_connrate(const struct sockaddr_in *sa, double secs, int conc)
{
	int ep = epoll_create1(0);
	static size_t got[MAX_FD];
	uint64_t done = 0, errors = 0;
	struct epoll_event evs[256];
	int live = 0;
	double t0 = now(), end = t0 + secs;
	memset(buf, 'q', REQ_LEN);
	for (;;) {
		while (live < conc && now() < end) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (fd < 0 || fd >= MAX_FD)
				die("socket");
			int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
			if (r < 0 && errno != EINPROGRESS) {
				errors++;
				close(fd);
				continue;
			}
			got[fd] = 0;
			ep_add(ep, fd, EPOLLOUT);
			live++;
		}
		if (live == 0)
			break;
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (evs[i].events & EPOLLOUT) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || write(fd, buf, REQ_LEN) != REQ_LEN) {
					errors++;
					close(fd);
					live--;
					continue;
				}
				struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
				epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
				continue;
			}
			uint8_t rb[4096];
			ssize_t r;
			while ((r = read(fd, rb, sizeof(rb))) > 0)
				got[fd] += (size_t)r;
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r == 0 && got[fd] == RESP_LEN)
				done++;
			else
				errors++;
			close(fd);
			live--;
		}
	}
	double dt = now() - t0;
	if (errors)
		fprintf(stderr, "proxy_load: %llu connections failed\n",
			(unsigned long long)errors);
	printf("%.0f\n", (double)done / dt);
	return 0;
}

/* `conc` sockets, each with one request in flight; a request with no answer
 * after 200 ms is sent again. Prints answered requests per second. */
static int run_udprate(const struct sockaddr_in *sa, double secs, int conc)
{
	int ep = epoll_create1(0);
	static double sent_at[MAX_FD];
	uint64_t done = 0, lost = 0;
	int fds[1024];
	if (conc > 1024)
		conc = 1024;
	memset(buf, 'u', 32);
	double t0 = now(), end = t0 + secs, last_check = t0;
	for (int i = 0; i < conc; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (fds[i] < 0 || connect(fds[i], (const struct sockaddr *)sa, sizeof(*sa)) < 0)
			die("udp socket");
		ep_add(ep, fds[i], EPOLLIN);
		if (send(fds[i], buf, 32, 0) < 0)
			lost++;
		sent_at[fds[i]] = t0;
	}
	struct epoll_event evs[256];
	double t;
	while ((t = now()) < end) {
		int n = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			uint8_t rb[2048];
			while (recv(fd, rb, sizeof(rb), 0) > 0) {
				done++;
				sent_at[fd] = now();
				if (send(fd, buf, 32, 0) < 0)
					lost++;
			}
		}
		if (t - last_check > 0.1) {
			last_check = t;
			for (int i = 0; i < conc; i++)
				if (t - sent_at[fds[i]] > 0.2) {
					lost++;
					sent_at[fds[i]] = t;
					if (send(fds[i], buf, 32, 0) < 0)
						lost++;
				}
		}
	}
	if (lost)
		fprintf(stderr, "proxy_load: %llu datagrams lost or resent\n",
			(unsigned long long)lost);
	printf("%.0f\n", (double)done / (now() - t0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && (!strcmp(argv[1], "sink") || !strcmp(argv[1], "rr"))) {
		struct sockaddr_in sa = addr_of(argv[2], argv[3]);
		return serve_tcp(&sa, !strcmp(argv[1], "sink"));
	}
	if (argc >= 4 && !strcmp(argv[1], "udp-echo")) {
		struct sockaddr_in sa = addr_of(argv[2], argv[3]);
		return serve_udp(&sa);
	}
	if (argc >= 5 && !strcmp(argv[1], "bulk")) {
		struct sockaddr_in sa = addr_of(argv[2], argv[3]);
		return run_bulk(&sa, atof(argv[4]));
	}
	if (argc >= 6 && !strcmp(argv[1], "connrate")) {
		struct sockaddr_in sa = addr_of(argv[2], argv[3]);
		return run_connrate(&sa, atof(argv[4]), atoi(argv[5]));
	}
	if (argc >= 6 && !strcmp(argv[1], "udprate")) {
		struct sockaddr_in sa = addr_of(argv[2], argv[3]);
		return run_udprate(&sa, atof(argv[4]), atoi(argv[5]));
	}
	fprintf(stderr, "usage: proxy_load sink|rr|udp-echo IP PORT\n"
			"       proxy_load bulk IP PORT SECONDS\n"
			"       proxy_load connrate|udprate IP PORT SECONDS CONCURRENCY\n");
	return 2;
}
