/* The API client's manners: a token bucket of requests per second with a
 * burst (client-go's --kube-api-qps and --kube-api-burst), and a bound on the
 * requests in flight at once that are not long-running (kube-apiserver's
 * max-inflight leaves watches out; so does this).
 *
 * Owns: the bucket and the in-flight count; time is the caller's (the loop's
 * clock, or a test's), so it can be driven without sleeping. Must never:
 * read a clock, allocate or log. Called on the API source's loop thread. */
#ifndef SVCDNS_KUBE_LIMIT_H
#define SVCDNS_KUBE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct kube_limit {
	double qps;	       /* tokens per second; 0: no rate limit */
	double burst;	       /* the bucket's size */
	unsigned max_inflight; /* 0: no bound */
	double tokens;	       /* as of last_ms */
	uint64_t last_ms;
	unsigned inflight; /* started, not long-running, not done */
};

/* A full bucket at now_ms. qps 0 disables the rate, max_inflight 0 the bound;
 * burst is at least 1 when qps is set. */
void kube_limit_init(struct kube_limit *l, double qps, unsigned burst, unsigned max_inflight,
		     uint64_t now_ms);
/* Whether a request may start now: 0 when it may (a token is taken when
 * `token`, and it is counted in flight unless `long_running`), else how many
 * ms until a token is due, or UINT64_MAX when it waits for a request in
 * flight to end (kube_limit_done). */
uint64_t kube_limit_try(struct kube_limit *l, bool token, bool long_running, uint64_t now_ms);
/* A request that kube_limit_try let start has ended. */
void kube_limit_done(struct kube_limit *l, bool long_running);

#endif
