/* The DNS listeners: N worker threads, each with its own libuv loop and its
 * own SO_REUSEPORT UDP and TCP sockets on every listen address.
 *
 * Owns: sockets, batching (recvmmsg/sendmmsg), TCP framing, connection limits
 * and timeouts, and entering/leaving the published snapshot around each batch.
 * What happens to each message is dns_process()'s to decide (process.h); the
 * transports carry out its verdict.
 * Must never: build or change snapshots; it only reads the published one. */
#ifndef SVCDNS_SERVER_H
#define SVCDNS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "wire/listen.h"

struct forwarder; /* resolver/forward.h */
struct metrics;	  /* common/metrics.h */

/* Listening sockets of one address taken over from the process this one
 * replaces (a hand-over): they are served as they are, with their queues,
 * and the address gets only as many new ones as it needs to give each
 * worker one. The server serves duplicates; the caller closes these. */
struct dns_inherited {
	const int *udp;
	size_t n_udp;
	const int *tcp;
	size_t n_tcp;
};

struct dns_server_config {
	const struct dns_listen *listen;
	size_t n_listen;
	unsigned threads;
	unsigned tcp_max_conns; /* per worker */
	unsigned tcp_idle_timeout_ms;
	unsigned tcp_max_lifetime_ms; /* 0: none (dns/limits.h) */
	unsigned rrl, rrl_slip;	      /* response rate limiting, rrl 0: off (dns/rrl.h) */
	struct forwarder *forwarder;  /* NULL: no forwarding; each worker runs its own part */
	struct metrics *metrics;      /* per-worker counters (common/metrics.h), or NULL */
	/* Clients that may transfer zones (AXFR, IXFR over TCP); none by default. */
	const struct net_cidr *allow_transfer;
	size_t n_allow_transfer;
	const struct dns_inherited *inherited; /* n_listen of them, or NULL: bind all */
};

struct net_cidr;
struct dns_server;

/* Binds every socket now (so that a bad address fails here, with a log line
 * naming it) and starts the workers; returns once each runs its loop (or
 * after 2 s). */
int dns_server_start(const struct dns_server_config *cfg, struct dns_server **out);
/* Ends lameduck: workers stop taking queries (UDP reads stop, TCP listeners
 * close); each open TCP connection is still read and answered, and closed
 * once it owes nothing and has been quiet for a moment (dns/tcp.c). Returns
 * at once; dns_server_drained() says when every connection is gone. Then
 * call dns_server_stop. */
void dns_server_drain(struct dns_server *srv);
bool dns_server_drained(const struct dns_server *srv);
/* The listening sockets of listen address `i` of `type` (SOCK_DGRAM or
 * SOCK_STREAM), every worker's, for a hand-over: up to `cap` into `fds`;
 * returns how many there are. Until dns_server_drain (it closes the TCP
 * ones). Control thread. */
size_t dns_server_sockets(const struct dns_server *srv, size_t i, int type, int *fds, size_t cap);
/* Stops every worker, closes every socket, frees everything. */
void dns_server_stop(struct dns_server *srv);

/* How often each limit was hit (dns/limits.h: dns_limits_count and
 * dns_limits_worker_count read it from any thread); valid until the stop. */
struct dns_limits;
const struct dns_limits *dns_server_limits(const struct dns_server *srv);

#endif
