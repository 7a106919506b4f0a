/* The verdict on one DNS message: answer, log, transfer, forward, rate limit
 * and count, in that order, for either transport. See process.h. */
#include "dns/process.h"

#include <errno.h>
#include <netinet/in.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/netaddr.h"
#include "dns/limits.h"
#include "dns/query.h"
#include "dns/querylog.h"
#include "dns/rrl.h"
#include "wire/wire.h"
#include "zones/xfr.h"

/* Counts one query for /metrics and the query log (common/metrics.h);
 * answered false: the forwarder answers later and counts that answer. */
static void count(const struct dns_process_ctx *ctx, const struct dns_msg *m, bool answered)
{
	const struct dns_query_info *info = &m->info;
	const uint8_t *resp = answered ? m->resp : NULL;
	uint8_t rcode =
	    resp && m->rlen >= WIRE_HDR_LEN ? (uint8_t)wire_hdr_rcode(resp) : info->rcode;
	if (info->rcode > WIRE_RCODE_BITS && rcode == (info->rcode & WIRE_RCODE_BITS))
		rcode = info->rcode; /* BADVERS: the header only holds its low bits */
	struct metrics_query q = {
	    .req = m->req,
	    .req_len = m->len,
	    .qend = info->qend,
	    .qtype = info->qtype,
	    .resp = resp,
	    .resp_len = resp ? m->rlen : 0,
	    .rcode = rcode,
	    .proto = m->client.proto == DNS_TCP ? METRICS_TCP : METRICS_UDP,
	    .peer = m->client.peer,
	    .dur_ns = resp ? uv_hrtime() - m->t0 : 0,
	    .stale = info->stale,
	    .dnssec_ok = info->edns_do,
	    .bufsize = info->limit,
	    .apex = info->apex,
	    .apex_len = info->apex_len,
	};
	metrics_dns_query(ctx->mw, &q);
}

static bool transfer_allowed(const struct dns_process_ctx *ctx, const struct sockaddr *p)
{
	for (size_t i = 0; i < ctx->n_allow_transfer; i++) {
		if (p->sa_family == AF_INET &&
		    net_cidr_contains_raw(
			&ctx->allow_transfer[i], AF_INET,
			(const uint8_t *)&((const struct sockaddr_in *)p)->sin_addr))
			return true;
		if (p->sa_family == AF_INET6 &&
		    net_cidr_contains_raw(&ctx->allow_transfer[i], AF_INET6,
					  ((const struct sockaddr_in6 *)p)->sin6_addr.s6_addr))
			return true;
	}
	return false;
}

/* An AXFR/IXFR over TCP from a client allowed to transfer: the whole zone,
 * regenerated while the snapshot is held. False when it is answered by the
 * single message in m->resp instead (REFUSED as dns_answer wrote it, or the
 * transfer's own error). */
static bool transfer(const struct dns_process_ctx *ctx, const struct snapshot *s, struct dns_msg *m)
{
	if (!s || !m->info.qend || !m->client.peer || !transfer_allowed(ctx, m->client.peer))
		return false;
	m->xfr = NULL;
	m->xfr_len = 0;
	int ret = xfr_answer(s, m->req, m->len, m->info.qend, &m->xfr, &m->xfr_len);
	if (ret == 0)
		return true;
	/* Not a zone we serve (NOTAUTH), a broken IXFR, or no memory. */
	unsigned rcode = ret == -ENOENT	   ? DNS_RCODE_NOTAUTH
			 : ret == -EBADMSG ? DNS_RCODE_FORMERR
					   : DNS_RCODE_SERVFAIL;
	wire_hdr_set_rcode(m->resp, rcode);
	return false;
}

/* Response rate limiting (dns/rrl.h) of the response in m->resp. */
static enum dns_verdict rate_limit(const struct dns_process_ctx *ctx, struct dns_msg *m)
{
	uint64_t now_ms = m->t0 / 1000000;
	switch (rrl_check(ctx->rrl, m->client.peer, m->resp, m->rlen, now_ms)) {
	case RRL_DROP:
		dns_limits_hit(ctx->limits, ctx->worker, DNS_LIMIT_RRL_DROP, now_ms);
		return DNS_DROP;
	case RRL_SLIP:
		m->rlen = rrl_slip(m->resp, m->rlen);
		dns_limits_hit(ctx->limits, ctx->worker, DNS_LIMIT_RRL_SLIP, now_ms);
		return DNS_SLIP;
	default:
		return DNS_REPLY;
	}
}

enum dns_verdict dns_process(const struct dns_process_ctx *ctx, const struct snapshot *s,
			     struct dns_msg *m)
{
	enum dns_proto proto = m->client.proto;
	m->rlen =
	    dns_answer_from(s, m->client.peer, m->req, m->len, m->resp, m->cap, proto, &m->info);
	if (log_get_level() >= LOG_DEBUG)
		dns_log_query(m->client.peer, m->req, m->len, proto);
	if (!m->rlen)
		return DNS_DISCARD;
	if (m->info.xfr && proto == DNS_TCP && transfer(ctx, s, m))
		return DNS_TRANSFER;
	enum dns_verdict v = DNS_REPLY;
	if (ctx->fwd && forward_query(ctx->fwd, s, &m->client, m->req, m->len, m->resp, &m->rlen,
				      m->cap, &m->info) == FORWARD_PENDING) {
		v = DNS_FORWARD;
	} else if (!m->rlen) {
		return DNS_DISCARD;
	} else if (ctx->rrl && proto == DNS_UDP && (v = rate_limit(ctx, m)) == DNS_DROP) {
		return DNS_DROP;
	}
	/* One call site: the counting is inlined into the query path. */
	if (ctx->mw)
		count(ctx, m, v != DNS_FORWARD);
	return v;
}
