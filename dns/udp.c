/* UDP on a DNS worker: datagrams read and answered in batches (recvmmsg,
 * sendmmsg) inside one snapshot, each carried out as dns_process() decides,
 * and a share per source when a socket stays full. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "common/shash.h"
#include "dns/worker.h"
#include "zones/snapshot.h"

#define UDP_ROUNDS 8 /* batches per wakeup before yielding to TCP and control */
/* Full batches in a row that make a backlog (see UDP_SOURCE_SHARE). */
#define UDP_BACKLOG_BATCHES 4
/* Someone else is waiting when another source was in a batch this recently. */
#define UDP_OTHERS_MS 1000

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

/* Whether this batch of n is shared out per source: full batch after full
 * batch is a backlog, and shares only matter when someone else is waiting.
 * A single heavy source (a node-local cache, a load generator) keeps all it
 * sent. Under a flood most batches hold the flooder alone, the others'
 * queries being a few among thousands: a second source seen in the last
 * UDP_OTHERS_MS counts as waiting. */
static bool batch_shared(struct worker *w, struct udp_sock *us, int n, uint64_t now_ms)
{
	if (n < UDP_BATCH)
		us->full_streak = 0;
	else if (us->full_streak <= UDP_BACKLOG_BATCHES)
		us->full_streak++;
	if (us->full_streak <= UDP_BACKLOG_BATCHES)
		return false;
	if (++w->src_gen == 0)
		w->src_gen = 1;
	bool many = false;
	for (int i = 1; i < n && !many; i++)
		many = !same_source(&w->peers[0], &w->peers[i]);
	if (many)
		us->others_ms = now_ms;
	return us->others_ms && now_ms - us->others_ms < UDP_OTHERS_MS;
}

/* Makes the receive headers ready for recvmmsg on `us`. Only what recvmmsg
 * writes back is reset (the rest of each header points at fixed buffers, set
 * when the worker started), and only in the headers the last call filled:
 * a batch of one must not cost the resetting of all UDP_BATCH. All of them
 * when `us` wants other control buffers than they were set for. */
static void batch_ready(struct worker *w, struct udp_sock *us)
{
	int dirty = w->in_pktinfo == us->pktinfo ? w->in_dirty : UDP_BATCH;
	for (int i = 0; i < dirty; i++) {
		struct msghdr *m = &w->in[i].msg_hdr;
		m->msg_namelen = sizeof(w->peers[i]);
		m->msg_control = us->pktinfo ? w->in_ctl[i] : NULL;
		m->msg_controllen = us->pktinfo ? sizeof(w->in_ctl[i]) : 0;
		m->msg_flags = 0;
	}
	w->in_pktinfo = us->pktinfo;
	w->in_dirty = 0;
}

/* Datagram i of the batch, carried out as dns_process() decides; true when
 * its response was queued as out[k]. */
static bool answer_one(struct worker *w, struct udp_sock *us, const struct snapshot *s, int i,
		       int k, uint64_t t0)
{
	struct msghdr *in = &w->in[i].msg_hdr;
	size_t len = w->in[i].msg_len;
	if (in->msg_flags & MSG_TRUNC)
		len = WIRE_HDR_LEN < len ? WIRE_HDR_LEN : len; /* cut: answered FORMERR */
	struct dns_msg m;
	m.req = w->in_buf[i];
	m.len = len;
	/* Field by field: the query path does not zero what it then overwrites. */
	m.client.proto = DNS_UDP;
	m.client.peer = (struct sockaddr *)&w->peers[i];
	m.client.peer_len = in->msg_namelen;
	m.client.udp_fd = us->fd;
	m.client.ctl = w->out_ctl[k];
	m.client.ctl_len =
	    us->pktinfo ? reply_control(in, w->out_ctl[k], sizeof(w->out_ctl[k])) : 0;
	m.client.conn = NULL;
	m.t0 = t0;
	m.resp = w->out_buf[k];
	m.cap = sizeof(w->out_buf[k]);
	switch (dns_process(&w->ctx, s, &m)) {
	case DNS_REPLY:
	case DNS_SLIP:
		break;
	default: /* forwarded, dropped, or nothing to answer; no transfer over UDP */
		return false;
	}
	w->out_iov[k].iov_base = w->out_buf[k];
	w->out_iov[k].iov_len = m.rlen;
	struct msghdr *out = &w->out[k].msg_hdr;
	memset(out, 0, sizeof(*out));
	out->msg_name = &w->peers[i];
	out->msg_namelen = in->msg_namelen;
	out->msg_iov = &w->out_iov[k];
	out->msg_iovlen = 1;
	if (m.client.ctl_len) {
		out->msg_control = w->out_ctl[k];
		out->msg_controllen = m.client.ctl_len;
	}
	return true;
}

static void send_batch(struct worker *w, struct udp_sock *us, int k)
{
	for (int sent = 0; sent < k;) {
		int r = sendmmsg(us->fd, w->out + sent, (unsigned)(k - sent), 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* One unreachable client must not cost the others their
			 * answers: skip it and go on. */
			sent++;
			continue;
		}
		sent += r;
	}
}

void dns_udp_read(uv_poll_t *h, int status, int events)
{
	struct udp_sock *us = h->data;
	struct worker *w = us->w;
	if (status < 0 || !(events & UV_READABLE))
		return;
	for (int round = 0; round < UDP_ROUNDS; round++) {
		batch_ready(w, us);
		int n = recvmmsg(us->fd, w->in, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			us->full_streak = 0;
			return;
		}
		w->in_dirty = n;
		uint64_t t0 = uv_hrtime();
		uint64_t now_ms = t0 / 1000000;
		bool shared = batch_shared(w, us, n, now_ms);
		const struct snapshot *s = snapshot_enter(w->reader);
		int k = 0;
		for (int i = 0; i < n; i++) {
			if (shared && !src_take(w, &w->peers[i])) {
				dns_worker_limit_hit(w, DNS_LIMIT_UDP_SOURCE, now_ms);
				continue;
			}
			if (answer_one(w, us, s, i, k, t0))
				k++;
		}
		snapshot_leave(w->reader);
		send_batch(w, us, k);
		if (n < UDP_BATCH)
			return;
	}
}
