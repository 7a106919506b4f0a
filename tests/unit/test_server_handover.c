/* Unit tests for the DNS server's sockets taken over from another process
 * (dns/server.h, struct dns_inherited): every socket received is served, as
 * many new ones join as the workers need, the server serves duplicates (the
 * caller's copies outlive its stop), and dns_server_sockets lists them all
 * for the next hand-over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns/server.h"
#include "wire/listen.h"

#define MAXS 8

static int bound(int type, unsigned port, unsigned *got)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 16) < 0)) {
		close(fd);
		return -1;
	}
	socklen_t len = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*got = ntohs(a.sin_port);
	return fd;
}

/* n_udp and n_tcp sockets of one SO_REUSEPORT group on a free port. */
static unsigned make_group(int *udp, size_t n_udp, int *tcp, size_t n_tcp)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		unsigned port = 0, p;
		int probe = bound(SOCK_DGRAM, 0, &port);
		int t0 = bound(SOCK_STREAM, port, &p);
		close(probe);
		if (t0 < 0)
			continue;
		close(t0);
		bool ok = true;
		for (size_t i = 0; i < n_udp; i++)
			ok = ok && (udp[i] = bound(SOCK_DGRAM, port, &p)) >= 0;
		for (size_t i = 0; i < n_tcp; i++)
			ok = ok && (tcp[i] = bound(SOCK_STREAM, port, &p)) >= 0;
		if (ok)
			return port;
	}
	fail_msg("no free port for a socket group");
	return 0;
}

static ino_t ino(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static bool served(const int *fds, size_t n, int fd)
{
	for (size_t i = 0; i < n; i++)
		if (ino(fds[i]) == ino(fd))
			return true;
	return false;
}

static void test_taken_over(void **state)
{
	(void)state;
	static const struct {
		size_t udp, tcp;
		unsigned threads;
		size_t want_udp, want_tcp;
	} cases[] = {
	    {2, 2, 2, 2, 2}, /* as many as workers */
	    {3, 3, 1, 3, 3}, /* more: one worker serves all three */
	    {1, 1, 3, 3, 3}, /* fewer: two new ones join the group */
	    {0, 0, 2, 2, 2}, /* none: a plain start */
	    {3, 1, 2, 3, 2}, /* the kinds apart */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int udp[MAXS], tcp[MAXS];
		unsigned port = make_group(udp, cases[c].udp, tcp, cases[c].tcp);
		char text[32];
		snprintf(text, sizeof(text), "127.0.0.1:%u", port);
		struct dns_listen l;
		assert_int_equal(dns_listen_parse(text, &l), 0);
		struct dns_inherited inh = {udp, cases[c].udp, tcp, cases[c].tcp};
		struct dns_server_config cfg = {
		    .listen = &l,
		    .n_listen = 1,
		    .threads = cases[c].threads,
		    .tcp_max_conns = 16,
		    .tcp_idle_timeout_ms = 1000,
		    .inherited = &inh,
		};
		struct dns_server *srv = NULL;
		assert_int_equal(dns_server_start(&cfg, &srv), 0);
		int fds[MAXS];
		size_t n = dns_server_sockets(srv, 0, SOCK_DGRAM, fds, MAXS);
		assert_int_equal(n, cases[c].want_udp);
		for (size_t i = 0; i < cases[c].udp; i++) {
			assert_true(served(fds, n, udp[i]));
		}
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < cases[c].udp; j++)
				assert_int_not_equal(fds[i], udp[j]); /* duplicates, not ours */
		n = dns_server_sockets(srv, 0, SOCK_STREAM, fds, MAXS);
		assert_int_equal(n, cases[c].want_tcp);
		for (size_t i = 0; i < cases[c].tcp; i++)
			assert_true(served(fds, n, tcp[i]));
		/* A smaller buffer still says how many there are. */
		assert_int_equal(dns_server_sockets(srv, 0, SOCK_DGRAM, fds, 1), cases[c].want_udp);
		dns_server_stop(srv);
		/* The caller's copies outlive the server's stop. */
		for (size_t i = 0; i < cases[c].udp; i++) {
			assert_true(fcntl(udp[i], F_GETFD) >= 0);
			close(udp[i]);
		}
		for (size_t i = 0; i < cases[c].tcp; i++) {
			assert_true(fcntl(tcp[i], F_GETFD) >= 0);
			close(tcp[i]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_taken_over),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
