/* The forwarder's per-worker engine: queries in flight (identical ones
 * coalesced), failover, TC -> TCP, and how each client is answered; time and
 * sockets only through forward_io.h. See forward.h. */
#include "resolver/forward_engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "resolver/upstream_budget.h"
#include "wire/wire.h"

static uint64_t now_ms(const struct forward_worker *fw)
{
	return fwd_now_ms(fw);
}

/* ---- pools ------------------------------------------------------------------ */

int forward_worker_new_io(struct forwarder *f, unsigned thread, forward_tcp_reply_fn tcp_reply,
			  const struct fwd_clock *clk, const struct fwd_net *net,
			  struct forward_worker **out)
{
	struct forward_worker *fw = calloc(1, sizeof(*fw));
	if (!fw)
		return -ENOMEM;
	fw->f = f;
	fw->thread = thread < f->threads ? thread : f->threads;
	fw->tcp_reply = tcp_reply;
	fw->clk = *clk;
	fw->net = *net;
	fw->max_waiters = (size_t)f->opt.max_concurrent * 4 + 1024;
	if (f->ups->budget) {
		fw->budget_timer = fw->clk.timer_new(fw->clk.ctx, fwd_budget_wake, fw);
		if (!fw->budget_timer) {
			free(fw);
			return -ENOMEM;
		}
		size_t most = (size_t)f->opt.max_qps * FWD_BUDGET_WAIT_MS / 1000;
		fw->max_waiting = most ? most : 1;
	}
	*out = fw;
	return 0;
}

int forward_worker_new(struct forwarder *f, uv_loop_t *loop, unsigned thread,
		       forward_tcp_reply_fn tcp_reply, struct forward_worker **out)
{
	struct fwd_uv *uv;
	int ret = fwd_uv_new(loop, f->ups, thread < f->threads ? thread : f->threads, true, &uv);
	if (ret < 0)
		return ret;
	ret = forward_worker_new_io(f, thread, tcp_reply, fwd_uv_clock(uv), fwd_uv_net(uv), out);
	if (ret < 0) {
		fwd_uv_free(uv);
		return ret;
	}
	(*out)->uv = uv;
	return 0;
}

static struct fwaiter *waiter_get(struct forward_worker *fw)
{
	if (fw->n_waiters >= fw->max_waiters)
		return NULL;
	struct fwaiter *w = fw->free_w;
	if (w)
		fw->free_w = w->next;
	else if (!(w = malloc(sizeof(*w))))
		return NULL;
	fw->n_waiters++;
	w->next = NULL;
	return w;
}

static void waiter_put(struct forward_worker *fw, struct fwaiter *w)
{
	fw->n_waiters--;
	w->next = fw->free_w;
	fw->free_w = w;
}

static void on_fq_timer(void *arg);

static struct fq *fq_find(struct forward_worker *fw, const struct fwd_key *k)
{
	for (struct fq *q = fw->table[k->hash & (FQ_TABLE - 1)]; q; q = q->hnext)
		if (fwd_key_equal(&q->key, k))
			return q;
	return NULL;
}

static struct fq *fq_alloc(struct forward_worker *fw)
{
	struct fq *q = fw->free_fq;
	if (q) {
		fw->free_fq = q->next;
		return q;
	}
	if (!(q = calloc(1, sizeof(*q))))
		return NULL;
	q->timer = fw->clk.timer_new(fw->clk.ctx, on_fq_timer, q);
	if (!q->timer) {
		free(q);
		return NULL;
	}
	q->all_next = fw->all_fq;
	fw->all_fq = q;
	return q;
}

static struct fq *fq_new(struct forward_worker *fw, const struct fwd_key *k,
			 const struct upstream_group *g, bool prefetch)
{
	struct fq *q = fq_alloc(fw);
	if (!q)
		return NULL;
	q->fw = fw;
	q->key = *k;
	q->g = g;
	q->x = NULL;
	q->tried = 0;
	q->cur = -1;
	q->tcp = q->tcp_retried = q->early = false;
	q->prefetch = prefetch;
	q->waiting = q->wait_tcp = q->budget_fail = false;
	q->sent = 0;
	q->wprev = q->wnext = NULL;
	q->waiters = NULL;
	q->n_waiters = 0;
	switch (fw->f->opt.policy) {
	case UPSTREAM_ROUND_ROBIN:
		q->start = fw->rr++ % g->n;
		break;
	case UPSTREAM_RANDOM:
		q->start = arc4random_uniform((uint32_t)g->n);
		break;
	default:
		q->start = 0;
	}
	struct fq **b = &fw->table[k->hash & (FQ_TABLE - 1)];
	q->hnext = *b;
	*b = q;
	q->prev = NULL;
	q->next = fw->active;
	if (fw->active)
		fw->active->prev = q;
	fw->active = q;
	q->active = true;
	return q;
}

/* ---- attempts ------------------------------------------------------------- */

static struct upstream *fq_upstream(const struct fq *q, size_t *idx)
{
	size_t i = q->g->first + (size_t)q->cur;
	if (idx)
		*idx = i;
	return &q->fw->f->ups->ups[i];
}

void fwd_fq_timer_start(struct fq *q, uint64_t ms)
{
	q->fw->clk.timer_start(q->timer, ms, 0);
}

/* Ends the current attempt: its exchange ends, its timer stops. */
static void attempt_end(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	fw->clk.timer_stop(q->timer);
	if (q->x) {
		fw->net.end(q->x);
		q->x = NULL;
	}
}

static void fq_complete(struct fq *q, const struct fwd_msg *m);

/* Reports a failure that happened before anything was sent, from the loop
 * (never from inside forward_query). */
void fwd_fq_fail_soon(struct fq *q)
{
	q->early = true;
	fwd_fq_timer_start(q, 0);
}

static void log_attempt(const struct fq *q, const struct upstream *u, const char *what)
{
	if (log_get_level() < LOG_DEBUG)
		return;
	char name[DNAME_MAX * 4 + 4];
	dname_to_text(q->key.name, name, sizeof(name));
	log_debug("upstream %s: %s %s type %u id %u%s%s", u->text, what, name, q->key.qtype, q->id,
		  q->tcp ? " tcp" : "", q->prefetch ? " prefetch" : "");
}

static bool on_attempt_answer(void *arg, uint8_t *msg, size_t len);
static void on_attempt_error(void *arg, int err, bool reused);

/* Asks the member q->cur, over UDP or (after TC, or again on a fresh
 * connection) over TCP, with a new random ID. */
static void attempt_send(struct fq *q, bool tcp)
{
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	uint8_t msg[FWD_QUERY_MAX];
	q->tcp = tcp;
	q->id = (uint16_t)arc4random();
	struct fwd_xchg_req r = {
	    .up = idx,
	    .tcp = tcp,
	    .msg = msg,
	    .len = fwd_query_build(&q->key, q->id, msg),
	    .on_answer = on_attempt_answer,
	    .on_error = on_attempt_error,
	    .arg = q,
	};
	q->attempt_ns = fw->clk.now_ns(fw->clk.ctx);
	int ret = fw->net.send(fw->net.ctx, &r, &q->x);
	if (fw->f->ups->budget)
		upstream_budget_sent(fw->f->ups->budget, idx, q->slot, &fw->clk);
	if (ret < 0) {
		q->x = NULL;
		log_attempt(q, u, tcp ? "cannot connect for" : "cannot send");
		upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0, tcp);
		fwd_fq_fail_soon(q);
		return;
	}
	q->sent++;
	log_attempt(q, u, "query");
	fwd_fq_timer_start(q, fw->f->opt.timeout_ms);
}

/* This server cannot help with the question; another one might. */
static bool rcode_moves_on(uint8_t rcode)
{
	return rcode == DNS_RCODE_FORMERR || rcode == DNS_RCODE_SERVFAIL ||
	       rcode == DNS_RCODE_NOTIMP || rcode == DNS_RCODE_REFUSED;
}

/* An answer that passed the checks: done, next upstream, or TCP. */
static void attempt_answered(struct fq *q, const struct fwd_msg *m)
{
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	uint64_t dur_us = (fw->clk.now_ns(fw->clk.ctx) - q->attempt_ns) / 1000u;
	upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_ANSWER, m->rcode, dur_us, q->tcp);
	if (log_get_level() >= LOG_DEBUG) {
		static const char *const names[] = {"NOERROR",	"FORMERR", "SERVFAIL",
						    "NXDOMAIN", "NOTIMP",  "REFUSED"};
		char what[64];
		snprintf(what, sizeof(what), "%s%s answer to", m->tc ? "truncated " : "",
			 m->rcode < 6 ? names[m->rcode] : "other");
		log_attempt(q, u, what);
	}
	attempt_end(q);
	/* Truncated over TCP too: a broken server, as good as no answer. */
	if (m->tc && !q->tcp)
		fwd_fq_next(q, true);
	else if (m->tc || rcode_moves_on(m->rcode))
		fwd_fq_next(q, false);
	else
		fq_complete(q, m);
}

static bool on_attempt_answer(void *arg, uint8_t *msg, size_t len)
{
	struct fq *q = arg;
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	struct fwd_msg m;
	int ret = fwd_msg_parse(msg, len, &q->key, q->id, fw->ttl_off, &m);
	if (ret < 0) {
		upstream_count_dropped(fw->f->ups, idx, fw->thread);
		log_debug("upstream %s: answer dropped: %s", u->text,
			  ret == -EPROTO   ? "wrong ID"
			  : ret == -ENOMSG ? "wrong question"
					   : "malformed");
		return false;
	}
	attempt_answered(q, &m);
	return true;
}

/* A network error: the same server once more over a fresh TCP connection
 * when the old one may only have been closed as idle, else the next one. */
static void on_attempt_error(void *arg, int err, bool reused)
{
	(void)err;
	struct fq *q = arg;
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	attempt_end(q);
	if (q->tcp && reused && !q->tcp_retried) {
		q->tcp_retried = true;
		fwd_fq_next(q, true);
		return;
	}
	if (q->tcp)
		log_attempt(q, u, "tcp connection lost for");
	upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0, q->tcp);
	fwd_fq_next(q, false);
}

/* ---- a query's life --------------------------------------------------------- */

/* The next group member to ask, by the policy, skipping servers already
 * asked and servers that are down; with a budget, the first of them that has
 * room takes a packet of it. -1 when none is left, with *wake_ms > 0 when the
 * budget holds back every one left (the milliseconds until one has room). */
static int pick_member(struct fq *q, uint64_t *wake_ms)
{
	struct forward_worker *fw = q->fw;
	struct upstream_set *s = fw->f->ups;
	*wake_ms = 0;
	for (size_t k = 0; k < q->g->n; k++) {
		unsigned m = (unsigned)((q->start + k) % q->g->n);
		if (q->tried & (1u << m))
			continue;
		if (!upstream_usable(&s->ups[q->g->first + m]))
			continue;
		if (!s->budget)
			return (int)m;
		uint64_t w = upstream_budget_take(s->budget, q->g->first + m, &fw->clk, &q->slot);
		if (!w)
			return (int)m;
		if (!*wake_ms || w < *wake_ms)
			*wake_ms = w;
	}
	return -1;
}

/* True when a server q has not asked yet could still be asked. */
static bool member_left(const struct fq *q)
{
	struct upstream_set *s = q->fw->f->ups;
	for (size_t m = 0; m < q->g->n; m++)
		if (!(q->tried & (1u << m)) && upstream_usable(&s->ups[q->g->first + m]))
			return true;
	return false;
}

void fwd_fq_next(struct fq *q, bool tcp)
{
	struct forward_worker *fw = q->fw;
	struct upstream_set *s = fw->f->ups;
	uint64_t wake = 0;
	if (q->sent >= fw->f->opt.max_tries) {
		if (tcp || member_left(q))
			fwd_stat_inc(&fw->f->slots[fw->thread].tries_exhausted);
		fwd_budget_remove(q);
		q->cur = -1;
		fwd_fq_fail_soon(q);
		return;
	}
	if (tcp) {
		if (s->budget &&
		    (wake = upstream_budget_take(s->budget, q->g->first + (size_t)q->cur, &fw->clk,
						 &q->slot))) {
			fwd_budget_wait(q, true, wake);
			return;
		}
	} else {
		int m = pick_member(q, &wake);
		if (m < 0 && wake) {
			fwd_budget_wait(q, false, wake);
			return;
		}
		q->cur = m;
		if (m < 0) {
			fwd_budget_remove(q);
			fwd_fq_fail_soon(q);
			return;
		}
		q->tried |= 1u << m;
	}
	fwd_budget_remove(q);
	attempt_send(q, tcp);
}

static void fq_release(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	attempt_end(q);
	fwd_budget_remove(q);
	struct fq **b = &fw->table[q->key.hash & (FQ_TABLE - 1)];
	while (*b != q)
		b = &(*b)->hnext;
	*b = q->hnext;
	if (q->prev)
		q->prev->next = q->next;
	else
		fw->active = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->active = false;
	atomic_fetch_sub(&fw->f->inflight, 1);
	q->next = fw->free_fq;
	fw->free_fq = q;
}

/* What one client needs to be answered, whether it waits or not. */
struct fwd_dest {
	struct fwd_client_q cq;
	enum fwd_route_kind kind;
	const uint8_t *prefix;
	uint16_t plen, pcount;
	const uint8_t *orig; /* SPLICE fallback */
	size_t orig_len;
};

/* Renders the response for d from m (NULL: every upstream failed). */
static size_t render(const struct fwd_dest *d, const struct fwd_msg *m, const struct fwd_ttl *t,
		     uint8_t *out, size_t cap)
{
	if (!m) {
		if (d->kind == FWD_ROUTE_SPLICE) {
			/* The cluster's own answer still stands; the client
			 * follows the CNAME or its search list itself. */
			if (d->orig != out)
				memcpy(out, d->orig, d->orig_len);
			return d->orig_len;
		}
		return fwd_render_error(&d->cq, DNS_RCODE_SERVFAIL, false, out, cap);
	}
	if (d->kind == FWD_ROUTE_DIRECT)
		return fwd_render(&d->cq, m, t, out, cap);
	size_t n = fwd_render_splice(&d->cq, d->prefix, d->plen, d->pcount, m, t, out, cap);
	return n ? n : fwd_render_error(&d->cq, m->rcode, true, out, cap);
}

/* A cache entry as a response: a SERVFAIL entry reads as every upstream
 * failing. */
static size_t render_hit(const struct fwd_dest *d, const struct cache_hit *hit, uint8_t *out,
			 size_t cap)
{
	return render(d, hit->kind == CACHE_SERVFAIL ? NULL : &hit->msg, &hit->ttl, out, cap);
}

static void waiter_dest(const struct fwaiter *w, struct fwd_dest *d)
{
	memcpy(d->cq.hdr, w->hdr, WIRE_HDR_LEN);
	d->cq.q = w->q;
	d->cq.qlen = w->qlen;
	d->cq.limit = w->limit;
	d->cq.edns = w->edns;
	d->cq.edns_do = w->edns_do;
	d->kind = w->kind;
	d->prefix = w->prefix;
	d->plen = w->plen;
	d->pcount = w->pcount;
	d->orig = w->orig;
	d->orig_len = w->orig_len;
}

static void waiter_send(struct forward_worker *fw, struct fwaiter *w, const uint8_t *msg,
			size_t len)
{
	if (msg && len)
		metrics_dns_reply_late(msg, len, w->proto == DNS_TCP ? METRICS_TCP : METRICS_UDP,
				       (const struct sockaddr *)&w->peer, w->start_ns);
	if (w->proto == DNS_TCP) {
		fw->tcp_reply(w->conn, msg, len);
		return;
	}
	if (!msg || !len)
		return;
	struct iovec iov = {(void *)msg, len};
	struct msghdr mh = {
	    .msg_name = &w->peer,
	    .msg_namelen = w->peer_len,
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = w->ctl_len ? w->ctl : NULL,
	    .msg_controllen = w->ctl_len,
	};
	/* A client that went away costs nothing but this failed send. */
	(void)sendmsg(w->udp_fd, &mh, MSG_DONTWAIT);
}

static void deliver_all(struct fq *q, const struct fwd_msg *m, const struct fwd_ttl *t)
{
	struct forward_worker *fw = q->fw;
	while (q->waiters) {
		struct fwaiter *w = q->waiters;
		q->waiters = w->next;
		struct fwd_dest d;
		waiter_dest(w, &d);
		size_t n = render(&d, m, t, fw->out, sizeof(fw->out));
		waiter_send(fw, w, fw->out, n);
		waiter_put(fw, w);
	}
	q->n_waiters = 0;
}

static void fq_complete(struct fq *q, const struct fwd_msg *m)
{
	struct forwarder *f = q->fw->f;
	uint32_t ttl;
	enum fwd_cache_kind kind =
	    fwd_msg_cache_ttl(m, f->opt.cache_max_ttl, f->opt.cache_max_neg_ttl, &ttl);
	struct fwd_ttl t = {.age = 0, .cap = kind ? ttl : UINT32_MAX, .stale = false};
	if (f->cache && kind != FWD_CACHE_NONE)
		cache_put(f->cache, &q->key, m,
			  kind == FWD_CACHE_POSITIVE ? CACHE_POSITIVE : CACHE_NEGATIVE, ttl,
			  now_ms(q->fw));
	deliver_all(q, m, &t);
	fq_release(q);
}

/* Every upstream failed (or none was usable). */
static void fq_fail(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	struct forwarder *f = fw->f;
	if (q->budget_fail && q->waiters)
		fwd_stat_inc(&f->slots[fw->thread].budget_refused);
	if (f->cache && f->opt.serve_stale_s && q->waiters) {
		struct cache_hit hit;
		if (cache_get(f->cache, &q->key, now_ms(fw), true, fw->thread, fw->cbuf,
			      sizeof(fw->cbuf), fw->cttl, &hit) != CACHE_MISS) {
			deliver_all(q, hit.kind == CACHE_SERVFAIL ? NULL : &hit.msg, &hit.ttl);
			fq_release(q);
			return;
		}
	}
	/* Only an upstream's failure is cached: the budget's passes. */
	if (f->cache && f->opt.cache_servfail_ttl && !q->prefetch && !q->budget_fail)
		cache_put(f->cache, &q->key, NULL, CACHE_SERVFAIL, f->opt.cache_servfail_ttl,
			  now_ms(fw));
	if (log_get_level() >= LOG_DEBUG) {
		char name[DNAME_MAX * 4 + 4];
		dname_to_text(q->key.name, name, sizeof(name));
		log_debug("forward: no upstream answered %s type %u: SERVFAIL", name, q->key.qtype);
	}
	deliver_all(q, NULL, NULL);
	fq_release(q);
}

static void on_fq_timer(void *arg)
{
	struct fq *q = arg;
	if (!q->active)
		return;
	if (q->waiting) { /* waited FWD_BUDGET_WAIT_MS for the budget */
		fwd_budget_remove(q);
		q->budget_fail = true;
		fq_fail(q);
		return;
	}
	if (q->cur < 0) {
		fq_fail(q);
		return;
	}
	if (!q->early) {
		size_t idx;
		struct upstream *u = fq_upstream(q, &idx);
		log_attempt(q, u, "timeout for");
		upstream_report(q->fw->f->ups, idx, q->fw->thread, UPSTREAM_TIMEOUT, 0, 0, q->tcp);
	}
	q->early = false;
	attempt_end(q);
	fwd_fq_next(q, false);
}

/* ---- the entry point ---------------------------------------------------------- */

static bool client_allowed(const struct forwarder *f, const struct sockaddr *sa)
{
	uint8_t fam;
	const uint8_t *a;
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		fam = AF_INET;
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			fam = AF_INET;
			a = a6->s6_addr + 12;
		} else {
			fam = AF_INET6;
			a = a6->s6_addr;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < f->n_allow; i++)
		if (net_cidr_contains_raw(&f->allow[i], fam, a))
			return true;
	return false;
}

static bool waiter_add(struct forward_worker *fw, struct fq *q, const struct forward_client *c,
		       const struct fwd_dest *d)
{
	struct fwaiter *w = waiter_get(fw);
	if (!w)
		return false;
	w->proto = c->proto;
	w->udp_fd = c->udp_fd;
	w->peer_len = 0;
	if (c->peer && c->peer_len <= sizeof(w->peer)) {
		memcpy(&w->peer, c->peer, c->peer_len);
		w->peer_len = c->peer_len;
	}
	w->ctl_len = c->ctl_len <= sizeof(w->ctl) ? c->ctl_len : 0;
	if (w->ctl_len)
		memcpy(w->ctl, c->ctl, w->ctl_len);
	w->conn = c->conn;
	w->start_ns = fw->clk.now_ns(fw->clk.ctx);
	memcpy(w->hdr, d->cq.hdr, WIRE_HDR_LEN);
	memcpy(w->q, d->cq.q, d->cq.qlen);
	w->qlen = d->cq.qlen;
	w->limit = d->cq.limit;
	w->edns = d->cq.edns;
	w->edns_do = d->cq.edns_do;
	w->kind = d->kind;
	memcpy(w->prefix, d->prefix, d->plen);
	w->plen = d->plen;
	w->pcount = d->pcount;
	w->orig_len = 0;
	if (d->kind == FWD_ROUTE_SPLICE) {
		memcpy(w->orig, d->orig, d->orig_len);
		w->orig_len = (uint16_t)d->orig_len;
	}
	w->next = q->waiters;
	q->waiters = w;
	q->n_waiters++;
	return true;
}

static bool inflight_take(struct forwarder *f)
{
	unsigned n = atomic_fetch_add(&f->inflight, 1);
	if (n < f->opt.max_concurrent)
		return true;
	atomic_fetch_sub(&f->inflight, 1);
	return false;
}

/* Refreshes k from upstream with no client waiting: a prefetch (counted
 * as such), or an expired entry the budget made svcdns answer stale. */
static void prefetch_start(struct forward_worker *fw, const struct fwd_key *k,
			   const struct upstream_group *g, bool count)
{
	struct forwarder *f = fw->f;
	if (fq_find(fw, k) || upstream_group_all_down(f->ups, g) || !inflight_take(f))
		return;
	struct fq *q = fq_new(fw, k, g, true);
	if (!q) {
		atomic_fetch_sub(&f->inflight, 1);
		return;
	}
	if (count)
		cache_count_prefetch(f->cache, fw->thread);
	fwd_fq_next(q, false);
}

/* Answers a forwarded question from the cache, joins it to the same
 * question in flight, or sends it upstream; d->orig is `resp`. */
static enum forward_verdict forward_take(struct forward_worker *fw, const struct forward_client *c,
					 const struct fwd_key *key, const struct upstream_group *g,
					 const struct fwd_dest *d, uint8_t *resp, size_t *rlen,
					 size_t cap)
{
	struct forwarder *f = fw->f;
	struct fwd_slot *slot = &f->slots[fw->thread];
	struct cache_hit hit;
	if (f->cache && cache_get(f->cache, key, now_ms(fw), false, fw->thread, fw->cbuf,
				  sizeof(fw->cbuf), fw->cttl, &hit) == CACHE_FRESH) {
		*rlen = render_hit(d, &hit, resp, cap);
		if (hit.prefetch)
			prefetch_start(fw, key, g, true);
		return FORWARD_REPLY;
	}
	struct fq *q = fq_find(fw, key);
	if (q) {
		if (!waiter_add(fw, q, c, d))
			goto reject;
		fwd_stat_inc(&slot->coalesced);
		return FORWARD_PENDING;
	}
	if (upstream_group_all_down(f->ups, g)) {
		fwd_stat_inc(&slot->servfail_down);
		if (f->cache && f->opt.serve_stale_s &&
		    cache_get(f->cache, key, now_ms(fw), true, fw->thread, fw->cbuf,
			      sizeof(fw->cbuf), fw->cttl, &hit) != CACHE_MISS)
			*rlen = render_hit(d, &hit, resp, cap);
		else
			*rlen = render(d, NULL, NULL, resp, cap);
		return FORWARD_REPLY;
	}
	if (fwd_budget_held(fw, g)) {
		/* RFC 8767 for a budget as for a failure: an expired answer now
		 * beats a wait, and its refresh waits in the queue instead. */
		if (f->cache && f->opt.serve_stale_s &&
		    cache_get(f->cache, key, now_ms(fw), true, fw->thread, fw->cbuf,
			      sizeof(fw->cbuf), fw->cttl, &hit) == CACHE_STALE) {
			fwd_stat_inc(&slot->budget_stale);
			*rlen = render_hit(d, &hit, resp, cap);
			prefetch_start(fw, key, g, false);
			return FORWARD_REPLY;
		}
		if (fw->n_waiting >= fw->max_waiting) {
			fwd_stat_inc(&slot->budget_refused);
			*rlen = render(d, NULL, NULL, resp, cap);
			return FORWARD_REPLY;
		}
	}
	if (!inflight_take(f))
		goto reject;
	q = fq_new(fw, key, g, false);
	if (!q) {
		atomic_fetch_sub(&f->inflight, 1);
		goto reject;
	}
	if (!waiter_add(fw, q, c, d)) {
		fq_release(q);
		goto reject;
	}
	fwd_fq_next(q, false);
	return FORWARD_PENDING;
reject:
	fwd_stat_inc(&slot->rejected);
	if (d->kind == FWD_ROUTE_DIRECT)
		*rlen = fwd_render_error(&d->cq, DNS_RCODE_REFUSED, false, resp, cap);
	return FORWARD_REPLY;
}

/* --filter-aaaa, --filter-a: the address family the cluster cannot use is
 * answered NOERROR with no address and EDE 17 (Filtered), never asked
 * upstream; a CNAME svcdns made (ExternalName, autopath) stays in front.
 * No SOA: svcdns knows no zone cut to name, so downstream caches do not keep
 * the answer (RFC 2308 section 5), and asking svcdns again costs no packet.
 * False when the question is not filtered. */
static bool filter_take(struct forward_worker *fw, const struct fwd_dest *d, uint16_t qtype,
			uint8_t *resp, size_t *rlen, size_t cap)
{
	struct forwarder *f = fw->f;
	struct fwd_slot *slot = &f->slots[fw->thread];
	if (qtype == DNS_T_AAAA && f->filter_aaaa)
		fwd_stat_inc(&slot->filtered_aaaa);
	else if (qtype == DNS_T_A && f->filter_a)
		fwd_stat_inc(&slot->filtered_a);
	else
		return false;
	size_t n;
	if (d->kind == FWD_ROUTE_DIRECT) {
		n = fwd_render_error(&d->cq, DNS_RCODE_NOERROR, false, resp, cap);
	} else {
		const struct fwd_msg none = {.rcode = DNS_RCODE_NOERROR};
		const struct fwd_ttl t = {.cap = UINT32_MAX};
		n = fwd_render_splice(&d->cq, d->prefix, d->plen, d->pcount, &none, &t, resp, cap);
	}
	if (n) /* else nothing was written: the cluster's own answer stands */
		*rlen = fwd_add_ede(&d->cq, DNS_EDE_FILTERED, resp, n, cap);
	return true;
}

enum forward_verdict forward_query(struct forward_worker *fw, const struct snapshot *s,
				   const struct forward_client *c, const uint8_t *req, size_t len,
				   uint8_t *resp, size_t *rlen, size_t cap,
				   const struct dns_query_info *info)
{
	struct forwarder *f = fw->f;
	struct fwd_route r;
	(void)len;
	if (!*rlen || !info->qend || fw->closing)
		return FORWARD_REPLY;
	if (!client_allowed(f, c->peer)) {
		if (info->outside)
			fwd_stat_inc(&f->slots[fw->thread].recursion_refused);
		return FORWARD_REPLY;
	}
	wire_hdr_set(resp, WIRE_RA, true);
	if (fwd_route(&f->route, s, req, resp, *rlen, info, &r) == FWD_ROUTE_NONE)
		return FORWARD_REPLY;
	if (r.kind == FWD_ROUTE_SPLICE && *rlen > FWD_ORIG_MAX)
		return FORWARD_REPLY;

	struct fwd_key key;
	memcpy(key.name, r.target, r.target_len);
	key.name_len = r.target_len;
	key.qtype = info->qtype;
	key.qclass = wire_rd16(req + info->qend - 2);
	key.flags = (uint8_t)((info->edns_do ? FWD_KEY_DO : 0) |
			      (wire_hdr_has(req, WIRE_CD) ? FWD_KEY_CD : 0));
	fwd_key_hash(&key);
	const struct upstream_group *g = upstream_group_for(f->ups, key.name, key.name_len);
	if (!g)
		return FORWARD_REPLY;
	if (r.kind == FWD_ROUTE_DIRECT && key.qtype == DNS_T_HINFO &&
	    upstream_loop_probe_seen(f->ups, key.name, key.name_len))
		return FORWARD_REPLY; /* our own loop probe came back: REFUSED ends it */

	struct fwd_dest d = {
	    .cq = {.q = req + WIRE_HDR_LEN,
		   .qlen = (uint16_t)(info->qend - WIRE_HDR_LEN),
		   .limit = info->limit,
		   .edns = info->edns,
		   .edns_do = info->edns_do},
	    .kind = r.kind,
	    .prefix = r.prefix,
	    .plen = r.plen,
	    .pcount = r.pcount,
	    .orig = resp,
	    .orig_len = *rlen,
	};
	memcpy(d.cq.hdr, req, WIRE_HDR_LEN);
	if (filter_take(fw, &d, key.qtype, resp, rlen, cap))
		return FORWARD_REPLY;
	fwd_stat_inc(&f->slots[fw->thread].forwarded);
	return forward_take(fw, c, &key, g, &d, resp, rlen, cap);
}

/* ---- shutdown -------------------------------------------------------------- */

void forward_worker_close(struct forward_worker *fw)
{
	if (!fw || fw->closing)
		return;
	fw->closing = true;
	while (fw->active) {
		struct fq *q = fw->active;
		while (q->waiters) {
			struct fwaiter *w = q->waiters;
			q->waiters = w->next;
			waiter_send(fw, w, NULL, 0); /* TCP: lets go of the connection */
			waiter_put(fw, w);
		}
		fq_release(q);
	}
	if (fw->budget_timer) {
		fw->clk.timer_free(fw->budget_timer);
		fw->budget_timer = NULL;
	}
	for (struct fq *q = fw->all_fq; q; q = q->all_next) {
		fw->clk.timer_free(q->timer);
		q->timer = NULL;
	}
	fwd_uv_close(fw->uv);
}

void forward_worker_free(struct forward_worker *fw)
{
	if (!fw)
		return;
	for (struct fq *q = fw->all_fq, *next; q; q = next) {
		next = q->all_next;
		free(q);
	}
	for (struct fwaiter *w = fw->free_w, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	fwd_uv_free(fw->uv);
	free(fw);
}
