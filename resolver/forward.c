/* The forwarder: options, the state all workers share, and the per-worker
 * engine that asks upstreams (UDP, TCP after TC), fails over, coalesces
 * identical queries and answers clients from the cache. See forward.h. */
#include "resolver/forward.h"

#include "wire/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/shash.h"
#include "resolver/forward_msg.h"
#include "resolver/resolvconf.h"

#define FQ_TABLE     1024  /* buckets of a worker's in-flight table (a power of two) */
#define FWD_ORIG_MAX 1232  /* largest cluster answer kept as a fallback for a splice */
#define TCP_IDLE_MS  10000 /* an upstream TCP connection nobody waits on is closed */
#define UDP_DRAIN    16	   /* datagrams read per wakeup of one attempt's socket */
#define FLAG_RA	     0x80

struct fwd_slot {
	_Alignas(64) atomic_uint_fast64_t forwarded, coalesced, rejected, servfail_down,
	    recursion_refused;
};

struct forwarder {
	struct forward_options opt;
	struct upstream_set *ups;
	struct cache *cache;
	struct fwd_route_config route;
	struct net_cidr allow[FWD_MAX_ALLOW];
	size_t n_allow;
	atomic_uint inflight;
	unsigned threads;
	struct fwd_slot *slots;
};

/* One client waiting for an upstream answer. */
struct fwaiter {
	struct fwaiter *next;
	enum dns_proto proto;
	int udp_fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t ctl[64];
	size_t ctl_len;
	void *conn;
	uint8_t hdr[4];
	uint8_t q[DNAME_MAX + 4];
	uint16_t qlen, limit;
	bool edns, edns_do;
	enum fwd_route_kind kind;
	uint8_t prefix[FWD_PREFIX_MAX];
	uint16_t plen, pcount;
	/* SPLICE: the cluster's own answer, sent when the target fails. */
	uint8_t orig[FWD_ORIG_MAX];
	uint16_t orig_len;
	uint64_t start_ns; /* when the query was taken, for /metrics */
};

struct udp_attempt;
struct tconn;

/* One upstream query in flight (per distinct question, per worker). */
struct fq {
	struct fq *hnext;	  /* in the worker's table */
	struct fq *prev, *next;	  /* active list; `next` also links the free list */
	struct fq *tprev, *tnext; /* waiting on a TCP connection */
	struct fq *all_next;	  /* everything this worker allocated */
	struct forward_worker *fw;
	struct fwd_key key;
	const struct upstream_group *g;
	uv_timer_t timer; /* initialised once, closed at worker shutdown */
	struct udp_attempt *ua;
	struct tconn *tc;
	uint32_t tried;
	unsigned start;
	int cur; /* group member asked now; -1: none left */
	uint16_t id;
	bool tcp, tcp_written, tcp_reused, tcp_retried;
	bool early; /* the attempt failed before it was sent; already reported */
	bool prefetch;
	bool active;
	uint64_t attempt_ns;
	struct fwaiter *waiters;
	unsigned n_waiters;
};

struct udp_attempt {
	uv_poll_t poll;
	int fd;
	struct fq *fq; /* NULL once the attempt is over */
	struct forward_worker *fw;
	struct udp_attempt *next_free;
};

struct tconn {
	uv_tcp_t h;
	uv_connect_t creq;
	uv_timer_t idle;
	struct forward_worker *fw;
	size_t up;
	bool connected, closing;
	unsigned handles_open;
	unsigned answered;
	struct fq *pending;
	uint8_t *buf;
	size_t len, cap;
};

struct twrite {
	uv_write_t req;
	uint8_t data[2 + FWD_QUERY_MAX];
};

struct forward_worker {
	struct forwarder *f;
	uv_loop_t *loop;
	unsigned thread;
	forward_tcp_reply_fn tcp_reply;
	struct fq *table[FQ_TABLE];
	struct fq *active;
	struct fq *free_fq, *all_fq;
	struct fwaiter *free_w;
	size_t n_waiters, max_waiters;
	struct udp_attempt *free_ua;
	struct tconn **tconns; /* per upstream */
	unsigned rr;
	bool closing;
	uint16_t ttl_off[FWD_MAX_RRS];
	uint16_t cttl[FWD_MAX_RRS];
	uint8_t rbuf[65536];
	uint8_t cbuf[65536];
	uint8_t out[65536];
};

static inline void stat_inc(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- setup ----------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* An address a wildcard listener of this host answers on. Other loopback
 * addresses than 127.0.0.1 are left out: 127.0.0.53 is systemd-resolved's,
 * bound by it, not by a wildcard; whether it loops back to svcdns is for the
 * start-up loop check to find. */
static bool is_local(const struct dns_listen *a)
{
	if (a->addr.ss_family == AF_INET &&
	    ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
		return true;
	if (is_loopback(&a->addr))
		return a->addr.ss_family == AF_INET6;
	int fd = socket(a->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_storage ss = a->addr;
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	bool ok = bind(fd, (struct sockaddr *)&ss, a->len) == 0;
	close(fd);
	return ok;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_port;
	return ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* True when sending to `u` would reach svcdns itself. */
static bool is_own_address(const struct dns_listen *u, const struct dns_listen *listen,
			   size_t n_listen)
{
	for (size_t i = 0; i < n_listen; i++) {
		const struct dns_listen *l = &listen[i];
		if (l->addr.ss_family != u->addr.ss_family)
			continue;
		if (upstream_addr_equal((const struct sockaddr *)&l->addr,
					(const struct sockaddr *)&u->addr))
			return true;
		if (is_wildcard(&l->addr) && port_of(&l->addr) == port_of(&u->addr) && is_local(u))
			return true;
	}
	return false;
}

static const struct {
	const char *text;
} default_allow[] = {{"127.0.0.0/8"},	 {"::1/128"},	    {"10.0.0.0/8"}, {"172.16.0.0/12"},
		     {"192.168.0.0/16"}, {"100.64.0.0/10"}, {"fc00::/7"}};

int forward_new(const struct forward_options *o, const struct dns_listen *listen, size_t n_listen,
		unsigned threads, struct forwarder **out)
{
	int ret = -ENOMEM;
	struct dns_listen defaults[FWD_MAX_UPSTREAMS];
	size_t n_def = 0;
	struct upstream_group_cfg groups[1 + FWD_MAX_STUBS];
	size_t n_groups = 0;
	struct forwarder *f = NULL;

	*out = NULL;
	if (o->upstream_none && o->n_upstreams) {
		log_error("--upstream none cannot go with --upstream addresses");
		return -EINVAL;
	}
	for (size_t i = 0; i < o->n_upstreams; i++) {
		if (is_own_address(&o->upstreams[i], listen, n_listen)) {
			log_error(
			    "--upstream %s: that is svcdns's own listen address; forwarding to "
			    "it would loop",
			    o->upstreams[i].text);
			return -EINVAL;
		}
		defaults[n_def++] = o->upstreams[i];
	}
	if (!o->upstream_none && !o->n_upstreams) {
		const char *path = o->resolv_conf ? o->resolv_conf : "/etc/resolv.conf";
		struct dns_listen found[FWD_MAX_UPSTREAMS];
		int n = resolvconf_read(path, found, FWD_MAX_UPSTREAMS);
		if (n < 0)
			log_warn("%s: %s; no default upstreams", path, strerror(-n));
		for (int i = 0; i < n; i++) {
			if (is_own_address(&found[i], listen, n_listen)) {
				log_warn("%s: nameserver %s is svcdns itself; skipped", path,
					 found[i].text);
				continue;
			}
			defaults[n_def++] = found[i];
		}
		if (n >= 0 && n_def == 0)
			log_warn("%s: no usable nameserver; names outside the zones served get "
				 "REFUSED",
				 path);
	}
	if (n_def)
		groups[n_groups++] = (struct upstream_group_cfg){".", defaults, n_def};
	for (size_t i = 0; i < o->n_stubs; i++) {
		for (size_t k = 0; k < o->stubs[i].n; k++) {
			if (is_own_address(&o->stubs[i].servers[k], listen, n_listen)) {
				log_error("--stub-domain %s: %s is svcdns's own listen address",
					  o->stubs[i].domain, o->stubs[i].servers[k].text);
				return -EINVAL;
			}
		}
		groups[n_groups++] = (struct upstream_group_cfg){
		    o->stubs[i].domain, o->stubs[i].servers, o->stubs[i].n};
	}
	if (n_groups == 0)
		return 0; /* forwarding off: REFUSED outside the zones, as without a forwarder */
	/* The workers' tables of queries in flight hash client names with it. */
	int err = shash_init();
	if (err < 0)
		return err;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->opt = *o;
	f->threads = threads ? threads : 1;
	f->slots = aligned_alloc(64, sizeof(*f->slots) * (f->threads + 1));
	if (!f->slots)
		goto fail;
	memset(f->slots, 0, sizeof(*f->slots) * (f->threads + 1));
	ret = upstream_set_new(groups, n_groups, o->policy, o->timeout_ms, f->threads, &f->ups);
	if (ret < 0) {
		log_error("upstreams: cannot be set up (%s)", strerror(-ret));
		goto fail;
	}
	if (o->cache_bytes || o->cache_entries) {
		struct cache_config cc = {
		    .max_bytes = o->cache_bytes,
		    .max_entries = o->cache_entries,
		    .stale_s = o->serve_stale_s,
		    .prefetch = o->prefetch,
		    .threads = f->threads + 1,
		};
		if ((ret = cache_new(&cc, &f->cache)) < 0) {
			log_error("cache: cannot be set up (%s)", strerror(-ret));
			goto fail;
		}
	}
	int zl = dname_from_text(o->zone, f->route.zone, sizeof(f->route.zone));
	if (zl < 0) {
		ret = -EINVAL;
		goto fail;
	}
	f->route.zone_len = (uint16_t)zl;
	f->route.autopath = o->autopath;
	for (size_t i = 0; i < o->n_cluster_cidrs && i < FWD_ROUTE_MAX_CIDRS; i++)
		f->route.cluster_cidrs[f->route.n_cluster_cidrs++] = o->cluster_cidrs[i];
	if (o->n_allow) {
		memcpy(f->allow, o->allow, o->n_allow * sizeof(f->allow[0]));
		f->n_allow = o->n_allow;
	} else {
		for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
			net_cidr_parse(default_allow[i].text, &f->allow[f->n_allow++]);
	}
	for (size_t g = 0; g < f->ups->n_groups; g++) {
		const struct upstream_group *grp = &f->ups->groups[g];
		char list[512];
		size_t o2 = 0;
		list[0] = '\0';
		for (size_t i = 0; i < grp->n && o2 < sizeof(list); i++)
			o2 += (size_t)snprintf(list + o2, sizeof(list) - o2, "%s%s", i ? ", " : "",
					       f->ups->ups[grp->first + i].text);
		log_info("forwarding %s to %s", grp->text, list);
	}
	static const char *const policies[] = {"sequential", "round_robin", "random"};
	log_info("forwarder: policy %s, timeout %u ms, at most %u in flight, cache %s%zu %s, "
		 "serve-stale %us, prefetch %s, autopath %s",
		 policies[o->policy], o->timeout_ms, o->max_concurrent, f->cache ? "" : "off ",
		 o->cache_bytes ? o->cache_bytes >> 10 : o->cache_entries,
		 o->cache_bytes ? "KiB" : "entries", o->serve_stale_s, o->prefetch ? "on" : "off",
		 o->autopath ? "on" : "off");
	*out = f;
	return 0;
fail:
	forward_free(f);
	return ret;
}

void forward_free(struct forwarder *f)
{
	if (!f)
		return;
	cache_free(f->cache);
	upstream_set_free(f->ups);
	free(f->slots);
	free(f);
}

int forward_control_start(struct forwarder *f, uv_loop_t *loop)
{
	return f ? upstream_health_start(f->ups, loop) : 0;
}

void forward_control_stop(struct forwarder *f)
{
	if (f)
		upstream_health_stop(f->ups);
}

struct cache *forward_cache(struct forwarder *f)
{
	return f ? f->cache : NULL;
}

struct upstream_set *forward_upstreams(struct forwarder *f)
{
	return f ? f->ups : NULL;
}

void forward_stats_get(struct forwarder *f, struct forward_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!f)
		return;
	for (unsigned t = 0; t <= f->threads; t++) {
		struct fwd_slot *s = &f->slots[t];
		out->forwarded += atomic_load_explicit(&s->forwarded, memory_order_relaxed);
		out->coalesced += atomic_load_explicit(&s->coalesced, memory_order_relaxed);
		out->rejected += atomic_load_explicit(&s->rejected, memory_order_relaxed);
		out->servfail_down += atomic_load_explicit(&s->servfail_down, memory_order_relaxed);
		out->recursion_refused +=
		    atomic_load_explicit(&s->recursion_refused, memory_order_relaxed);
	}
	out->in_flight = atomic_load(&f->inflight);
}

/* ---- per worker: pools ----------------------------------------------------- */

int forward_worker_new(struct forwarder *f, uv_loop_t *loop, unsigned thread,
		       forward_tcp_reply_fn tcp_reply, struct forward_worker **out)
{
	struct forward_worker *fw = calloc(1, sizeof(*fw));
	if (!fw)
		return -ENOMEM;
	fw->tconns = calloc(f->ups->n ? f->ups->n : 1, sizeof(*fw->tconns));
	if (!fw->tconns) {
		free(fw);
		return -ENOMEM;
	}
	fw->f = f;
	fw->loop = loop;
	fw->thread = thread < f->threads ? thread : f->threads;
	fw->tcp_reply = tcp_reply;
	fw->max_waiters = (size_t)f->opt.max_concurrent * 4 + 1024;
	*out = fw;
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

static void on_fq_timer(uv_timer_t *t);

static struct fq *fq_find(struct forward_worker *fw, const struct fwd_key *k)
{
	for (struct fq *q = fw->table[k->hash & (FQ_TABLE - 1)]; q; q = q->hnext)
		if (fwd_key_equal(&q->key, k))
			return q;
	return NULL;
}

static struct fq *fq_new(struct forward_worker *fw, const struct fwd_key *k,
			 const struct upstream_group *g, bool prefetch)
{
	struct fq *q = fw->free_fq;
	if (q) {
		fw->free_fq = q->next;
	} else {
		if (!(q = calloc(1, sizeof(*q))))
			return NULL;
		uv_timer_init(fw->loop, &q->timer);
		q->timer.data = q;
		q->all_next = fw->all_fq;
		fw->all_fq = q;
	}
	q->fw = fw;
	q->key = *k;
	q->g = g;
	q->ua = NULL;
	q->tc = NULL;
	q->tprev = q->tnext = NULL;
	q->tried = 0;
	q->cur = -1;
	q->tcp = q->tcp_written = q->tcp_reused = q->tcp_retried = q->early = false;
	q->prefetch = prefetch;
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

/* ---- per worker: attempts -------------------------------------------------- */

static struct upstream *fq_upstream(const struct fq *q, size_t *idx)
{
	size_t i = q->g->first + (size_t)q->cur;
	if (idx)
		*idx = i;
	return &q->fw->f->ups->ups[i];
}

static void ua_closed(uv_handle_t *h)
{
	struct udp_attempt *ua = h->data;
	close(ua->fd);
	ua->next_free = ua->fw->free_ua;
	ua->fw->free_ua = ua;
}

static void tconn_unlink(struct tconn *tc, struct fq *q);

/* Ends the current attempt: its socket closes, its timer stops. */
static void attempt_end(struct fq *q)
{
	uv_timer_stop(&q->timer);
	if (q->ua) {
		q->ua->fq = NULL;
		uv_close((uv_handle_t *)&q->ua->poll, ua_closed);
		q->ua = NULL;
	}
	if (q->tc)
		tconn_unlink(q->tc, q);
}

static void fq_attempt(struct fq *q);
static void fq_complete(struct fq *q, const struct fwd_msg *m);
static void tcp_start(struct fq *q);

/* Reports a failure that happened before anything was sent, from the loop
 * (never from inside forward_query). */
static void fail_soon(struct fq *q)
{
	q->early = true;
	uv_timer_start(&q->timer, on_fq_timer, 0, 0);
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

static void on_ua_readable(uv_poll_t *h, int status, int events);

static void udp_start(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	uint8_t msg[FWD_QUERY_MAX];
	q->tcp = false;
	q->id = (uint16_t)arc4random();
	size_t len = fwd_query_build(&q->key, q->id, msg);
	q->attempt_ns = uv_hrtime();
	int fd = upstream_udp_socket(u);
	if (fd < 0)
		goto early;
	if (sendto(fd, msg, len, 0, (const struct sockaddr *)&u->addr, u->addr_len) < 0) {
		close(fd);
		goto early;
	}
	struct udp_attempt *ua = fw->free_ua;
	if (ua)
		fw->free_ua = ua->next_free;
	else if (!(ua = malloc(sizeof(*ua)))) {
		close(fd);
		goto early;
	}
	ua->fd = fd;
	ua->fq = q;
	ua->fw = fw;
	uv_poll_init(fw->loop, &ua->poll, fd);
	ua->poll.data = ua;
	uv_poll_start(&ua->poll, UV_READABLE, on_ua_readable);
	q->ua = ua;
	log_attempt(q, u, "query");
	uv_timer_start(&q->timer, on_fq_timer, fw->f->opt.timeout_ms, 0);
	return;
early:
	log_attempt(q, u, "cannot send");
	upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0, false);
	fail_soon(q);
}

/* An answer that passed the checks: done, next upstream, or TCP. */
static void attempt_answered(struct fq *q, const struct fwd_msg *m)
{
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	uint64_t dur_us = (uv_hrtime() - q->attempt_ns) / 1000u;
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
	if (m->tc) {
		if (q->tcp) { /* a TCP answer cannot be truncated: broken server */
			fq_attempt(q);
			return;
		}
		tcp_start(q);
		return;
	}
	/* SERVFAIL, REFUSED, NOTIMP, FORMERR: this server cannot help; another might. */
	if (m->rcode == 1 || m->rcode == DNS_RCODE_SERVFAIL || m->rcode == 4 ||
	    m->rcode == DNS_RCODE_REFUSED) {
		fq_attempt(q);
		return;
	}
	fq_complete(q, m);
}

static void drain_errqueue(int fd)
{
	uint8_t buf[512], ctl[512];
	for (int i = 0; i < 8; i++) {
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};
		if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
	}
}

static void on_ua_readable(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct udp_attempt *ua = h->data;
	struct fq *q = ua->fq;
	if (!q)
		return;
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	for (int i = 0; i < UDP_DRAIN; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n =
		    recvfrom(ua->fd, fw->rbuf, sizeof(fw->rbuf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) && status >= 0)
				return;
			/* ICMP port unreachable and friends (IP_RECVERR): fail now,
			 * not after the timeout. */
			int err = errno;
			drain_errqueue(ua->fd);
			if (log_get_level() >= LOG_DEBUG)
				log_debug("upstream %s: %s", u->text, strerror(err));
			upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0,
					false);
			attempt_end(q);
			fq_attempt(q);
			return;
		}
		if (!upstream_addr_equal((struct sockaddr *)&from, (struct sockaddr *)&u->addr)) {
			upstream_count_dropped(fw->f->ups, idx, fw->thread);
			log_debug("upstream %s: answer from another address dropped", u->text);
			continue;
		}
		struct fwd_msg m;
		int ret = fwd_msg_parse(fw->rbuf, (size_t)n, &q->key, q->id, fw->ttl_off, &m);
		if (ret < 0) {
			upstream_count_dropped(fw->f->ups, idx, fw->thread);
			log_debug("upstream %s: answer dropped: %s", u->text,
				  ret == -EPROTO   ? "wrong ID"
				  : ret == -ENOMSG ? "wrong question"
						   : "malformed");
			continue;
		}
		attempt_answered(q, &m);
		return;
	}
}

/* ---- per worker: upstream TCP ---------------------------------------------- */

static void tconn_closed(uv_handle_t *h)
{
	struct tconn *tc = h->data;
	if (--tc->handles_open == 0) {
		free(tc->buf);
		free(tc);
	}
}

static void tconn_close(struct tconn *tc)
{
	if (tc->closing)
		return;
	tc->closing = true;
	if (tc->fw->tconns[tc->up] == tc)
		tc->fw->tconns[tc->up] = NULL;
	uv_close((uv_handle_t *)&tc->idle, tconn_closed);
	uv_close((uv_handle_t *)&tc->h, tconn_closed);
}

static void on_tconn_idle(uv_timer_t *t)
{
	struct tconn *tc = t->data;
	if (!tc->pending)
		tconn_close(tc);
}

static void tconn_unlink(struct tconn *tc, struct fq *q)
{
	if (q->tprev)
		q->tprev->tnext = q->tnext;
	else
		tc->pending = q->tnext;
	if (q->tnext)
		q->tnext->tprev = q->tprev;
	q->tprev = q->tnext = NULL;
	q->tc = NULL;
	if (!tc->pending && !tc->closing)
		uv_timer_start(&tc->idle, on_tconn_idle, TCP_IDLE_MS, 0);
}

/* The connection failed: every query on it tries again (once, on a new
 * connection, when this one had answered before and the server may just have
 * closed it as idle) or moves on to the next upstream. */
static void tconn_fail(struct tconn *tc)
{
	struct forward_worker *fw = tc->fw;
	struct fq *list = tc->pending;
	tc->pending = NULL;
	tconn_close(tc);
	while (list) {
		struct fq *q = list;
		list = q->tnext;
		q->tprev = q->tnext = NULL;
		q->tc = NULL;
		if (q->tcp_reused && !q->tcp_retried) {
			q->tcp_retried = true;
			uv_timer_stop(&q->timer);
			tcp_start(q);
			continue;
		}
		size_t idx;
		struct upstream *u = fq_upstream(q, &idx);
		log_attempt(q, u, "tcp connection lost for");
		upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0, true);
		attempt_end(q);
		fq_attempt(q);
	}
}

static void on_twrite(uv_write_t *req, int status)
{
	(void)status; /* a failed write shows up on the read side */
	free(req);
}

static bool tconn_write(struct tconn *tc, struct fq *q)
{
	struct twrite *w = malloc(sizeof(*w));
	if (!w)
		return false;
	size_t len = fwd_query_build(&q->key, q->id, w->data + 2);
	w->data[0] = (uint8_t)(len >> 8);
	w->data[1] = (uint8_t)len;
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(len + 2));
	if (uv_write(&w->req, (uv_stream_t *)&tc->h, &b, 1, on_twrite) < 0) {
		free(w);
		return false;
	}
	q->tcp_written = true;
	log_attempt(q, fq_upstream(q, NULL), "query");
	return true;
}

static void on_tconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct tconn *tc = h->data;
	size_t want = tc->len + 4096;
	if (tc->len >= 2) {
		size_t msg = 2u + wire_rd16(tc->buf);
		if (msg > want)
			want = msg;
	}
	if (want > tc->cap) {
		uint8_t *nb = realloc(tc->buf, want);
		if (nb) {
			tc->buf = nb;
			tc->cap = want;
		}
	}
	buf->base = (char *)tc->buf + tc->len;
	buf->len = tc->cap - tc->len;
}

static void on_tconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct tconn *tc = s->data;
	struct forward_worker *fw = tc->fw;
	if (nread < 0) {
		tconn_fail(tc);
		return;
	}
	tc->len += (size_t)nread;
	size_t off = 0;
	while (tc->len - off >= 2) {
		size_t mlen = wire_rd16(tc->buf + off);
		if (tc->len - off < 2 + mlen)
			break;
		uint8_t *msg = tc->buf + off + 2;
		off += 2 + mlen;
		struct fq *q = tc->pending;
		while (q && !(q->tcp_written && mlen >= 2 && wire_rd16(msg) == q->id))
			q = q->tnext;
		if (!q) {
			upstream_count_dropped(fw->f->ups, tc->up, fw->thread);
			continue;
		}
		struct fwd_msg m;
		if (fwd_msg_parse(msg, mlen, &q->key, q->id, fw->ttl_off, &m) < 0) {
			upstream_count_dropped(fw->f->ups, tc->up, fw->thread);
			continue;
		}
		tc->answered++;
		attempt_answered(q, &m);
		if (tc->closing)
			return;
	}
	if (off) {
		memmove(tc->buf, tc->buf + off, tc->len - off);
		tc->len -= off;
	}
}

static void on_tconn_connect(uv_connect_t *req, int status)
{
	struct tconn *tc = req->data;
	if (tc->closing)
		return;
	if (status < 0) {
		tconn_fail(tc);
		return;
	}
	tc->connected = true;
	uv_tcp_nodelay(&tc->h, 1);
	uv_read_start((uv_stream_t *)&tc->h, on_tconn_alloc, on_tconn_read);
	for (struct fq *q = tc->pending; q; q = q->tnext) {
		if (!q->tcp_written && !tconn_write(tc, q)) {
			tconn_fail(tc);
			return;
		}
	}
}

static struct tconn *tconn_open(struct forward_worker *fw, size_t up)
{
	const struct upstream *u = &fw->f->ups->ups[up];
	struct tconn *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return NULL;
	tc->fw = fw;
	tc->up = up;
	uv_tcp_init(fw->loop, &tc->h);
	uv_timer_init(fw->loop, &tc->idle);
	tc->h.data = tc->idle.data = tc->creq.data = tc;
	tc->handles_open = 2;
	fw->tconns[up] = tc;
	log_debug("upstream %s: opening a tcp connection", u->text);
	if (uv_tcp_connect(&tc->creq, &tc->h, (const struct sockaddr *)&u->addr, on_tconn_connect) <
	    0) {
		tconn_close(tc);
		return NULL;
	}
	return tc;
}

/* Asks the same upstream again over TCP (after TC, or to retry on a fresh
 * connection). */
static void tcp_start(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	size_t idx;
	struct upstream *u = fq_upstream(q, &idx);
	q->tcp = true;
	q->tcp_written = false;
	q->id = (uint16_t)arc4random();
	q->attempt_ns = uv_hrtime();
	struct tconn *tc = fw->tconns[idx];
	q->tcp_reused = tc && tc->answered > 0;
	if (!tc && !(tc = tconn_open(fw, idx))) {
		log_attempt(q, u, "cannot connect for");
		upstream_report(fw->f->ups, idx, fw->thread, UPSTREAM_NET_ERROR, 0, 0, true);
		fail_soon(q);
		return;
	}
	q->tc = tc;
	q->tprev = NULL;
	q->tnext = tc->pending;
	if (tc->pending)
		tc->pending->tprev = q;
	tc->pending = q;
	uv_timer_stop(&tc->idle);
	uv_timer_start(&q->timer, on_fq_timer, fw->f->opt.timeout_ms, 0);
	if (tc->connected && !tconn_write(tc, q))
		tconn_fail(tc);
}

/* ---- per worker: a query's life -------------------------------------------- */

/* The next group member to ask, by the policy, skipping servers already
 * asked and servers that are down; -1 when none is left. */
static int pick_member(const struct fq *q)
{
	struct upstream_set *s = q->fw->f->ups;
	for (size_t k = 0; k < q->g->n; k++) {
		unsigned m = (unsigned)((q->start + k) % q->g->n);
		if (q->tried & (1u << m))
			continue;
		if (!upstream_usable(&s->ups[q->g->first + m]))
			continue;
		return (int)m;
	}
	return -1;
}

static void fq_attempt(struct fq *q)
{
	int m = pick_member(q);
	q->cur = m;
	if (m < 0) {
		fail_soon(q);
		return;
	}
	q->tried |= 1u << m;
	udp_start(q);
}

static void fq_release(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	attempt_end(q);
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

static void waiter_dest(const struct fwaiter *w, struct fwd_dest *d)
{
	memcpy(d->cq.hdr, w->hdr, 4);
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
			  now_ms());
	deliver_all(q, m, &t);
	fq_release(q);
}

/* Every upstream failed (or none was usable). */
static void fq_fail(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	struct forwarder *f = fw->f;
	if (f->cache && f->opt.serve_stale_s && q->waiters) {
		struct cache_hit hit;
		if (cache_get(f->cache, &q->key, now_ms(), true, fw->thread, fw->cbuf,
			      sizeof(fw->cbuf), fw->cttl, &hit) != CACHE_MISS) {
			deliver_all(q, hit.kind == CACHE_SERVFAIL ? NULL : &hit.msg, &hit.ttl);
			fq_release(q);
			return;
		}
	}
	if (f->cache && f->opt.cache_servfail_ttl && !q->prefetch)
		cache_put(f->cache, &q->key, NULL, CACHE_SERVFAIL, f->opt.cache_servfail_ttl,
			  now_ms());
	if (log_get_level() >= LOG_DEBUG) {
		char name[DNAME_MAX * 4 + 4];
		dname_to_text(q->key.name, name, sizeof(name));
		log_debug("forward: no upstream answered %s type %u: SERVFAIL", name, q->key.qtype);
	}
	deliver_all(q, NULL, NULL);
	fq_release(q);
}

static void on_fq_timer(uv_timer_t *t)
{
	struct fq *q = t->data;
	if (!q->active)
		return;
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
	fq_attempt(q);
}

/* ---- per worker: the entry point ------------------------------------------- */

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
	w->start_ns = uv_hrtime();
	memcpy(w->hdr, d->cq.hdr, 4);
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

static void prefetch_start(struct forward_worker *fw, const struct fwd_key *k,
			   const struct upstream_group *g)
{
	struct forwarder *f = fw->f;
	if (fq_find(fw, k) || upstream_group_all_down(f->ups, g) || !inflight_take(f))
		return;
	struct fq *q = fq_new(fw, k, g, true);
	if (!q) {
		atomic_fetch_sub(&f->inflight, 1);
		return;
	}
	cache_count_prefetch(f->cache, fw->thread);
	fq_attempt(q);
}

enum forward_verdict forward_query(struct forward_worker *fw, const struct snapshot *s,
				   const struct forward_client *c, const uint8_t *req, size_t len,
				   uint8_t *resp, size_t *rlen, size_t cap,
				   const struct dns_query_info *info)
{
	struct forwarder *f = fw->f;
	struct fwd_slot *slot = &f->slots[fw->thread];
	struct fwd_route r;
	(void)len;
	if (!*rlen || !info->qend || fw->closing)
		return FORWARD_REPLY;
	if (!client_allowed(f, c->peer)) {
		if (info->outside)
			stat_inc(&slot->recursion_refused);
		return FORWARD_REPLY;
	}
	resp[3] |= FLAG_RA;
	if (fwd_route(&f->route, s, req, resp, *rlen, info, &r) == FWD_ROUTE_NONE)
		return FORWARD_REPLY;
	if (r.kind == FWD_ROUTE_SPLICE && *rlen > FWD_ORIG_MAX)
		return FORWARD_REPLY;

	struct fwd_key key;
	memcpy(key.name, r.target, r.target_len);
	key.name_len = r.target_len;
	key.qtype = info->qtype;
	key.qclass = wire_rd16(req + info->qend - 2);
	key.flags =
	    (uint8_t)((info->edns_do ? FWD_KEY_DO : 0) | ((req[3] & 0x10) ? FWD_KEY_CD : 0));
	fwd_key_hash(&key);
	const struct upstream_group *g = upstream_group_for(f->ups, key.name, key.name_len);
	if (!g)
		return FORWARD_REPLY;
	if (r.kind == FWD_ROUTE_DIRECT && key.qtype == DNS_T_HINFO &&
	    upstream_loop_probe_seen(f->ups, key.name, key.name_len))
		return FORWARD_REPLY; /* our own loop probe came back: REFUSED ends it */

	struct fwd_dest d = {
	    .cq = {.q = req + 12,
		   .qlen = (uint16_t)(info->qend - 12),
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
	memcpy(d.cq.hdr, req, 4);
	stat_inc(&slot->forwarded);

	struct cache_hit hit;
	if (f->cache && cache_get(f->cache, &key, now_ms(), false, fw->thread, fw->cbuf,
				  sizeof(fw->cbuf), fw->cttl, &hit) == CACHE_FRESH) {
		*rlen =
		    render(&d, hit.kind == CACHE_SERVFAIL ? NULL : &hit.msg, &hit.ttl, resp, cap);
		if (hit.prefetch)
			prefetch_start(fw, &key, g);
		return FORWARD_REPLY;
	}
	struct fq *q = fq_find(fw, &key);
	if (q) {
		if (!waiter_add(fw, q, c, &d))
			goto reject;
		stat_inc(&slot->coalesced);
		return FORWARD_PENDING;
	}
	if (upstream_group_all_down(f->ups, g)) {
		stat_inc(&slot->servfail_down);
		if (f->cache && f->opt.serve_stale_s &&
		    cache_get(f->cache, &key, now_ms(), true, fw->thread, fw->cbuf,
			      sizeof(fw->cbuf), fw->cttl, &hit) != CACHE_MISS) {
			*rlen = render(&d, hit.kind == CACHE_SERVFAIL ? NULL : &hit.msg, &hit.ttl,
				       resp, cap);
			return FORWARD_REPLY;
		}
		*rlen = render(&d, NULL, NULL, resp, cap);
		return FORWARD_REPLY;
	}
	if (!inflight_take(f))
		goto reject;
	q = fq_new(fw, &key, g, false);
	if (!q) {
		atomic_fetch_sub(&f->inflight, 1);
		goto reject;
	}
	if (!waiter_add(fw, q, c, &d)) {
		fq_release(q);
		goto reject;
	}
	fq_attempt(q);
	return FORWARD_PENDING;
reject:
	stat_inc(&slot->rejected);
	if (r.kind == FWD_ROUTE_DIRECT)
		*rlen = fwd_render_error(&d.cq, DNS_RCODE_REFUSED, false, resp, cap);
	return FORWARD_REPLY;
}

/* ---- per worker: shutdown -------------------------------------------------- */

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
	for (struct fq *q = fw->all_fq; q; q = q->all_next)
		uv_close((uv_handle_t *)&q->timer, NULL);
	for (size_t i = 0; i < fw->f->ups->n; i++)
		if (fw->tconns[i])
			tconn_close(fw->tconns[i]);
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
	for (struct udp_attempt *ua = fw->free_ua, *next; ua; ua = next) {
		next = ua->next_free;
		free(ua);
	}
	free(fw->tconns);
	free(fw);
}
