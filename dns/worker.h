/* A DNS worker's state, shared by server.c (threads, sockets, start and stop),
 * udp.c (datagram batches) and tcp.c (connections). Internal to dns/.
 *
 * Owns: the layout of a worker and of the server that holds the workers.
 * Must never: be included outside dns/ (server.h is the interface). Every
 * function here runs on the worker's own thread, in its own loop; only
 * `phase`, `drained` and the limits' counters are read across threads. */
#ifndef SVCDNS_DNS_WORKER_H
#define SVCDNS_DNS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "dns/limits.h"
#include "dns/process.h"
#include "dns/server.h"
#include "wire/wire.h"

#define UDP_BATCH 64
#define UDP_BUF	  4096 /* largest query we read over UDP; larger ones are cut and FORMERR */
/* When a socket stays full (more than UDP_BACKLOG_BATCHES full batches in a
 * row) and others are waiting, one source's queries past this many in a batch
 * are dropped unanswered: answering a flood must not take the time that the
 * queries queued behind it need. A burst that a short stall piled up is still
 * answered in full. */
#define UDP_SOURCE_SHARE 16

struct worker;

struct udp_sock {
	uv_poll_t poll;
	int fd;
	unsigned listen; /* its address: cfg->listen[listen] */
	bool pktinfo;
	unsigned full_streak; /* full batches read in a row, across wakeups */
	uint64_t others_ms;   /* when a full batch last held more than one source */
	struct worker *w;
};

struct tcp_listener {
	uv_tcp_t handle;
	int fd;		 /* -1: not open (yet) */
	unsigned listen; /* its address: cfg->listen[listen] */
	struct worker *w;
};

struct worker {
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t stop;
	struct snapshot_reader *reader;
	/* The forwarder's part (NULL without forwarding), the RRL table (NULL:
	 * --rrl is off) and the counters (NULL: not counted) live in `ctx`. */
	struct dns_process_ctx ctx;
	/* Its share of every address's sockets: usually one UDP and one TCP
	 * each, more when a hand-over brought more than there are workers. */
	struct udp_sock *udp;
	struct tcp_listener *tcp;
	size_t n_udp, n_tcp;
	unsigned tcp_conns;
	struct tcp_conn *conns; /* every open connection, for shutdown */
	const struct dns_server_config *cfg;
	struct dns_server *srv;
	unsigned index;		/* its own counters in srv->limits */
	uv_timer_t limits_tick; /* worker 0 only: tells the last hits of each limit */
	bool limits_tick_on;
	bool draining; /* lameduck is over: no new connection or datagram; open ones finish */
	bool drained;  /* counted in srv->drained */
	/* UDP batch buffers, per worker: the query path allocates nothing. */
	struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
	int in_dirty;	 /* receive headers the last recvmmsg filled, to reset */
	bool in_pktinfo; /* the clean ones are set for a socket with IP_PKTINFO */
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
	atomic_uint running; /* workers whose thread has reached its loop */
	struct dns_limits *limits;
};

/* ---- server.c ---- */
void dns_worker_limit_hit(struct worker *w, enum dns_limit what, uint64_t now_ms);
/* While draining: counts the worker as drained once its last connection is gone. */
void dns_worker_drained_check(struct worker *w);

/* ---- udp.c ---- */
/* The poll callback of a UDP socket: reads, answers and sends in batches. */
void dns_udp_read(uv_poll_t *h, int status, int events);

/* ---- tcp.c ---- */
/* The listener callback: accepts one connection. */
void dns_tcp_accept(uv_stream_t *server, int status);
/* The forwarder's answer to a query it took from connection `conn`
 * (forward_tcp_reply_fn). */
void dns_tcp_forward_reply(void *conn, const uint8_t *msg, size_t len);
/* Closes every connection of the worker (it is stopping). */
void dns_tcp_close_all(struct worker *w);
/* Lameduck is over: each connection is closed once it owes its client nothing. */
void dns_tcp_drain_all(struct worker *w);

#endif
