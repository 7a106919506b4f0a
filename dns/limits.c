/* The counting and telling of every time one of the DNS listeners' limits is
 * hit: counters per worker (one writer each, so a hit costs a
 * load and a store), one log line per limit per DNS_LIMITS_LOG_MS at most.
 * See limits.h. */
#include "dns/limits.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* One cache line per worker, so that workers counting never share one. */
struct worker_counts {
	_Alignas(64) atomic_uint_least64_t n[DNS_LIMIT_COUNT];
};

/* The log state of one limit. Whoever wins the exchange of next_ms writes
 * the line; the exchange orders one winner's stores before the next one's
 * loads. */
struct limit_log {
	atomic_uint_least64_t next_ms; /* no line before this */
	atomic_uint_least64_t told;    /* the total the last line accounted for */
	atomic_uint_least64_t last_ms; /* when that line was written (0: never) */
};

struct dns_limits {
	unsigned n_workers;
	struct dns_limits_config cfg;
	struct worker_counts *w;
	struct limit_log log[DNS_LIMIT_COUNT];
};

static const char *const names[DNS_LIMIT_COUNT] = {
    [DNS_LIMIT_TCP_CONNS] = "tcp_conns",       [DNS_LIMIT_TCP_IDLE] = "tcp_idle",
    [DNS_LIMIT_TCP_LIFETIME] = "tcp_lifetime", [DNS_LIMIT_TCP_BACKLOG] = "tcp_backlog",
    [DNS_LIMIT_UDP_SOURCE] = "udp_source",     [DNS_LIMIT_RRL_DROP] = "rrl_drop",
    [DNS_LIMIT_RRL_SLIP] = "rrl_slip",
};

/* Idle connections closing is routine; the rest says someone pushed. */
static const enum log_level levels[DNS_LIMIT_COUNT] = {
    [DNS_LIMIT_TCP_CONNS] = LOG_WARN,	 [DNS_LIMIT_TCP_IDLE] = LOG_DEBUG,
    [DNS_LIMIT_TCP_LIFETIME] = LOG_INFO, [DNS_LIMIT_TCP_BACKLOG] = LOG_INFO,
    [DNS_LIMIT_UDP_SOURCE] = LOG_WARN,	 [DNS_LIMIT_RRL_DROP] = LOG_INFO,
    [DNS_LIMIT_RRL_SLIP] = LOG_INFO,
};

int dns_limits_new(unsigned n_workers, const struct dns_limits_config *cfg, struct dns_limits **out)
{
	struct dns_limits *l = calloc(1, sizeof(*l));
	size_t bytes = (size_t)(n_workers ? n_workers : 1) * sizeof(struct worker_counts);
	if (!l)
		return -ENOMEM;
	l->w = aligned_alloc(_Alignof(struct worker_counts), bytes);
	if (!l->w) {
		free(l);
		return -ENOMEM;
	}
	memset(l->w, 0, bytes);
	l->n_workers = n_workers ? n_workers : 1;
	l->cfg = *cfg;
	*out = l;
	return 0;
}

void dns_limits_free(struct dns_limits *l)
{
	if (!l)
		return;
	free(l->w);
	free(l);
}

uint64_t dns_limits_worker_count(const struct dns_limits *l, unsigned worker, enum dns_limit what)
{
	if (!l || worker >= l->n_workers || what >= DNS_LIMIT_COUNT)
		return 0;
	return atomic_load_explicit(&l->w[worker].n[what], memory_order_relaxed);
}

uint64_t dns_limits_count(const struct dns_limits *l, enum dns_limit what)
{
	uint64_t sum = 0;
	for (unsigned i = 0; l && i < l->n_workers; i++)
		sum += dns_limits_worker_count(l, i, what);
	return sum;
}

const char *dns_limit_name(enum dns_limit what)
{
	return what < DNS_LIMIT_COUNT ? names[what] : "unknown";
}

/* What happened, in the words of the flag that set the limit. */
static void describe(const struct dns_limits *l, enum dns_limit what, unsigned long long n,
		     char *out, size_t cap)
{
	const struct dns_limits_config *c = &l->cfg;
	switch (what) {
	case DNS_LIMIT_TCP_CONNS:
		snprintf(out, cap, "%llu TCP connections refused: --tcp-max-conns %u per thread", n,
			 c->tcp_max_conns);
		break;
	case DNS_LIMIT_TCP_IDLE:
		snprintf(out, cap, "%llu TCP connections closed after --tcp-idle-timeout %u ms", n,
			 c->tcp_idle_timeout_ms);
		break;
	case DNS_LIMIT_TCP_LIFETIME:
		snprintf(out, cap, "%llu TCP connections closed at --tcp-max-lifetime %u ms", n,
			 c->tcp_max_lifetime_ms);
		break;
	case DNS_LIMIT_TCP_BACKLOG:
		snprintf(out, cap,
			 "%llu times a TCP client's unread answers or unanswered queries filled "
			 "its queue; its connection is read again once they drain",
			 n);
		break;
	case DNS_LIMIT_UDP_SOURCE:
		snprintf(out, cap,
			 "%llu UDP queries dropped: their source sent more than %u of a full batch "
			 "of %u",
			 n, c->udp_source_share, c->udp_batch);
		break;
	case DNS_LIMIT_RRL_DROP:
		snprintf(out, cap, "%llu responses dropped by --rrl %u", n, c->rrl);
		break;
	case DNS_LIMIT_RRL_SLIP:
		snprintf(out, cap, "%llu responses sent truncated by --rrl-slip %u", n,
			 c->rrl_slip);
		break;
	default:
		snprintf(out, cap, "%llu hits of limit %d", n, (int)what);
		break;
	}
}

static void tell(struct dns_limits *l, enum dns_limit what, uint64_t now_ms)
{
	struct limit_log *g = &l->log[what];
	uint64_t next = atomic_load_explicit(&g->next_ms, memory_order_relaxed);
	if (now_ms < next ||
	    !atomic_compare_exchange_strong_explicit(&g->next_ms, &next, now_ms + DNS_LIMITS_LOG_MS,
						     memory_order_acq_rel, memory_order_relaxed))
		return;
	uint64_t total = dns_limits_count(l, what);
	uint64_t told = atomic_load_explicit(&g->told, memory_order_relaxed);
	uint64_t last = atomic_load_explicit(&g->last_ms, memory_order_relaxed);
	if (total == told)
		return;
	char text[256];
	describe(l, what, (unsigned long long)(total - told), text, sizeof(text));
	if (last)
		log_msg(levels[what], "limits: %s in the last %.0f s", text,
			(double)(now_ms - last) / 1000.0);
	else
		log_msg(levels[what], "limits: %s (the first; at most one line per %d s follows)",
			text, DNS_LIMITS_LOG_MS / 1000);
	atomic_store_explicit(&g->told, total, memory_order_relaxed);
	atomic_store_explicit(&g->last_ms, now_ms ? now_ms : 1, memory_order_relaxed);
}

void dns_limits_hit(struct dns_limits *l, unsigned worker, enum dns_limit what, uint64_t now_ms)
{
	if (!l || worker >= l->n_workers || what >= DNS_LIMIT_COUNT)
		return;
	/* One writer per counter: a load and a store, no locked instruction. */
	atomic_uint_least64_t *n = &l->w[worker].n[what];
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (now_ms >= atomic_load_explicit(&l->log[what].next_ms, memory_order_relaxed))
		tell(l, what, now_ms);
}

void dns_limits_flush(struct dns_limits *l, uint64_t now_ms)
{
	if (!l)
		return;
	for (int what = 0; what < DNS_LIMIT_COUNT; what++) {
		/* A window with nothing new is left unclaimed, so that the next
		 * hit after a quiet spell is told at once. */
		if (dns_limits_count(l, (enum dns_limit)what) !=
		    atomic_load_explicit(&l->log[what].told, memory_order_relaxed))
			tell(l, (enum dns_limit)what, now_ms);
	}
}
