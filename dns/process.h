/* What happens to one DNS message, decided in one place for UDP and TCP (the
 * way NSD's query_process does it): answer it from the snapshot, log it, serve
 * an allowed zone transfer, hand what the snapshot does not cover to the
 * forwarder, apply response rate limiting, count it. The transports only carry
 * out the verdict: send, wait, drop or stream.
 *
 * Owns: the order of those steps and which of them apply to which transport
 * (transfers only over TCP, RRL only over UDP).
 * Must never: touch a socket, lock, block, or allocate (an allowed zone
 * transfer alone allocates its messages; it is not the query path). Each DNS
 * worker calls it on its own thread, inside the snapshot it entered. */
#ifndef SVCDNS_PROCESS_H
#define SVCDNS_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "resolver/forward.h"
#include "wire/query_info.h"
#include "zones/snapshot.h"

struct dns_limits;
struct metrics_worker;
struct net_cidr;
struct rrl;

enum dns_verdict {
	DNS_REPLY = 0, /* send resp[0..rlen) now */
	DNS_SLIP,      /* RRL: send resp[0..rlen), cut to header and question with TC set */
	DNS_FORWARD,   /* the forwarder took it and answers later, from the worker's loop */
	DNS_TRANSFER,  /* TCP: send xfr[0..xfr_len), already framed; the caller frees xfr */
	DNS_DROP,      /* RRL: answered, but nothing is sent */
	DNS_DISCARD,   /* not a query to answer (a response, a runt, a cluster name held
			* before the first sync): nothing is sent, and TCP may close
			* the connection (RFC 7766) */
};

/* What a worker processes with: set once, when the worker starts. */
struct dns_process_ctx {
	struct forward_worker *fwd; /* NULL: no forwarding */
	struct rrl *rrl;	    /* NULL: --rrl is off; UDP only */
	struct metrics_worker *mw;  /* NULL: not counted */
	struct dns_limits *limits;  /* RRL hits are counted here, as `worker` */
	unsigned worker;
	const struct net_cidr *allow_transfer; /* clients that may AXFR/IXFR */
	size_t n_allow_transfer;
};

/* One message. The caller sets the input fields; dns_process the output. */
struct dns_msg {
	const uint8_t *req;
	size_t len;
	/* Who asked, over what, and how the forwarder reaches them later. */
	struct forward_client client;
	uint64_t t0; /* uv_hrtime() when the message was read */
	uint8_t *resp;
	size_t cap; /* room at resp: at least 512 bytes */
	/* Output. */
	size_t rlen;  /* DNS_REPLY, DNS_SLIP */
	uint8_t *xfr; /* DNS_TRANSFER only: malloc'd */
	size_t xfr_len;
	struct dns_query_info info; /* what dns_answer read of the query */
};

/* Decides the fate of m->req against snapshot `s` (NULL before the first
 * one: SERVFAIL) and prepares what the verdict sends. */
enum dns_verdict dns_process(const struct dns_process_ctx *ctx, const struct snapshot *s,
			     struct dns_msg *m);

#endif
