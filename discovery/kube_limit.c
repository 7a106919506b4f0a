/* The API client's token bucket and in-flight bound (kube_limit.h): plain
 * arithmetic over the caller's clock. */
#include "discovery/kube_limit.h"

void kube_limit_init(struct kube_limit *l, double qps, unsigned burst, unsigned max_inflight,
		     uint64_t now_ms)
{
	l->qps = qps > 0 ? qps : 0;
	l->burst = burst ? burst : 1;
	l->max_inflight = max_inflight;
	l->tokens = l->burst;
	l->last_ms = now_ms;
	l->inflight = 0;
}

static void refill(struct kube_limit *l, uint64_t now_ms)
{
	if (now_ms <= l->last_ms)
		return;
	l->tokens += (double)(now_ms - l->last_ms) * l->qps / 1000.0;
	if (l->tokens > l->burst)
		l->tokens = l->burst;
	l->last_ms = now_ms;
}

uint64_t kube_limit_try(struct kube_limit *l, bool token, bool long_running, uint64_t now_ms)
{
	if (!long_running && l->max_inflight && l->inflight >= l->max_inflight)
		return UINT64_MAX;
	if (token && l->qps > 0) {
		refill(l, now_ms);
		if (l->tokens < 1.0) {
			double ms = (1.0 - l->tokens) * 1000.0 / l->qps;
			return ms < 1.0 ? 1 : (uint64_t)(ms + 0.999);
		}
		l->tokens -= 1.0;
	}
	if (!long_running)
		l->inflight++;
	return 0;
}

void kube_limit_done(struct kube_limit *l, bool long_running)
{
	if (!long_running && l->inflight)
		l->inflight--;
}
