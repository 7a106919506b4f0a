/* The limits that keep one client from taking svcdns away from the others:
 * their values, a counter of every time one was hit, and log lines about
 * them that cannot themselves flood the log.
 *
 * Owns: struct limits_options, the values of --tcp-max-lifetime, --rrl and
 * --rrl-slip (the program's option table, daemon/options.c, declares and
 * parses every flag; --tcp-max-conns and --tcp-idle-timeout come in struct
 * dns_limits_config), the per-worker hit counters with their getters,
 * and the log: at most one line per limit per DNS_LIMITS_LOG_MS, carrying the
 * count since the previous line.
 * Must never: allocate, lock or block when a limit is hit (a worker calls it
 * on its query path); a worker writes only its own counters. */
#ifndef SVCDNS_LIMITS_H
#define SVCDNS_LIMITS_H

#include <stdint.h>

enum dns_limit {
	DNS_LIMIT_TCP_CONNS = 0, /* a connection refused: --tcp-max-conns */
	DNS_LIMIT_TCP_IDLE,	 /* a connection closed after --tcp-idle-timeout of silence */
	DNS_LIMIT_TCP_LIFETIME,	 /* a connection closed at --tcp-max-lifetime */
	DNS_LIMIT_TCP_BACKLOG,	 /* a connection stopped being read: its answers pile up */
	DNS_LIMIT_UDP_SOURCE,	 /* a query dropped: its source had its share of a full batch */
	DNS_LIMIT_RRL_DROP,	 /* a response not sent: --rrl */
	DNS_LIMIT_RRL_SLIP,	 /* a response sent truncated instead: --rrl-slip */
	DNS_LIMIT_COUNT
};

/* At most one log line per limit per this long. */
#define DNS_LIMITS_LOG_MS 10000

/* The largest --rrl: the token arithmetic of dns/rrl.h stays in 32 bits. */
#define LIMITS_RRL_MAX 1000000u

struct limits_options {
	unsigned tcp_max_lifetime_ms; /* 0: no limit */
	unsigned rrl;		      /* answers per second per flow, 0: off */
	unsigned rrl_slip;	      /* 0: drop every limited answer */
};

/* What the log lines quote. */
struct dns_limits_config {
	unsigned tcp_max_conns, tcp_idle_timeout_ms, tcp_max_lifetime_ms;
	unsigned rrl, rrl_slip;
	unsigned udp_source_share, udp_batch; /* dns/udp.c's fairness rule */
};

struct dns_limits;

int dns_limits_new(unsigned n_workers, const struct dns_limits_config *cfg,
		   struct dns_limits **out);
void dns_limits_free(struct dns_limits *l);

/* Counts one hit by `worker` (its own thread only) and logs when the limit's
 * last line is DNS_LIMITS_LOG_MS old. now_ms: any monotonic clock, the same
 * for every caller. */
void dns_limits_hit(struct dns_limits *l, unsigned worker, enum dns_limit what, uint64_t now_ms);
/* Logs the hits not logged yet of every limit whose last line is old enough;
 * call it every DNS_LIMITS_LOG_MS so that the last hits of a burst are told. */
void dns_limits_flush(struct dns_limits *l, uint64_t now_ms);

/* Plain getters, from any thread (for /metrics). */
uint64_t dns_limits_count(const struct dns_limits *l, enum dns_limit what);
uint64_t dns_limits_worker_count(const struct dns_limits *l, unsigned worker, enum dns_limit what);
/* A metric label: "tcp_conns", "tcp_idle", ... */
const char *dns_limit_name(enum dns_limit what);

#endif
