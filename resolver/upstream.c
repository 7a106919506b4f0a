/* Upstream servers: groups, shared health state and counters, which the
 * workers and the control thread's probes (upstream_health.c) report into.
 * See upstream.h. */
#include "resolver/upstream.h"

#include "wire/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

const unsigned upstream_dur_bounds_ms[UPSTREAM_DUR_BUCKETS] = {1,   2,	 5,   10,   25,	  50,
							       100, 250, 500, 1000, 2500, 5000};

const char *const upstream_tls_outcome_names[UPSTREAM_TLS_OUTCOMES] = {"ok", "resumed",
								       "verify_failed", "error"};

struct upstream_slot {
	_Alignas(64) atomic_uint_fast64_t requests, tcp_requests, tls_requests, timeouts,
	    net_errors, dropped, health_failures, dur_us_sum;
	atomic_uint_fast64_t tls_handshakes[UPSTREAM_TLS_OUTCOMES];
	atomic_uint_fast64_t rcodes[16];
	atomic_uint_fast64_t dur_buckets[UPSTREAM_DUR_BUCKETS + 1];
};

static inline void stat_inc(atomic_uint_fast64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

bool upstream_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

static void random_label(uint8_t *out)
{
	static const char hex[] = "0123456789abcdef";
	out[0] = 16;
	for (int i = 1; i <= 16; i++)
		out[i] = (uint8_t)hex[arc4random_uniform(16)];
}

int upstream_set_new(const struct upstream_group_cfg *groups, size_t n_groups,
		     enum upstream_policy policy, unsigned timeout_ms, unsigned threads,
		     struct upstream_set **out)
{
	int ret = -ENOMEM;
	struct upstream_set *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	size_t total = 0;
	for (size_t g = 0; g < n_groups; g++)
		total += groups[g].n;
	s->policy = policy;
	s->timeout_ms = timeout_ms;
	s->slots = threads + 1;
	s->ups = calloc(total ? total : 1, sizeof(*s->ups));
	s->groups = calloc(n_groups ? n_groups : 1, sizeof(*s->groups));
	if (!s->ups || !s->groups)
		goto fail;
	for (size_t g = 0; g < n_groups; g++) {
		struct upstream_group *grp = &s->groups[s->n_groups];
		int l = dname_from_text(groups[g].domain, grp->domain, sizeof(grp->domain));
		if (l < 0 || groups[g].n == 0 || groups[g].n > UPSTREAM_MAX_PER_GROUP) {
			ret = -EINVAL;
			goto fail;
		}
		grp->domain_len = (uint16_t)l;
		snprintf(grp->text, sizeof(grp->text), "%s", groups[g].domain);
		grp->first = s->n;
		grp->n = groups[g].n;
		s->n_groups++;
		for (size_t i = 0; i < groups[g].n; i++) {
			struct upstream *u = &s->ups[s->n++];
			const struct dns_listen *l2 = &groups[g].servers[i];
			memcpy(&u->addr, &l2->addr, sizeof(u->addr));
			u->addr_len = l2->len;
			snprintf(u->text, sizeof(u->text), "%s", l2->text);
			u->tls = l2->tls;
			memcpy(u->tls_name, l2->tls_name, sizeof(u->tls_name));
			u->group = g;
			/* Two random labels under the root, as CoreDNS's loop plugin
			 * does: a real resolver must forward them to find out. */
			random_label(u->probe_name);
			random_label(u->probe_name + 17);
			u->probe_name[34] = 0;
			u->probe_len = 35;
			u->slots = aligned_alloc(64, sizeof(*u->slots) * s->slots);
			if (!u->slots)
				goto fail;
			memset(u->slots, 0, sizeof(*u->slots) * s->slots);
		}
	}
	*out = s;
	return 0;
fail:
	upstream_set_free(s);
	return ret;
}

void upstream_set_free(struct upstream_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->ups[i].slots);
	free(s->ups);
	free(s->groups);
	free(s->health);
	free(s);
}

/* True when `name` is `domain` or below it (both lowercased wire). */
static bool name_under(const uint8_t *name, size_t len, const uint8_t *domain, size_t dlen)
{
	if (dlen > len)
		return false;
	for (size_t off = 0;; off += name[off] + 1u) {
		if (len - off == dlen)
			return memcmp(name + off, domain, dlen) == 0;
		if (len - off < dlen || name[off] == 0)
			return false;
	}
}

const struct upstream_group *upstream_group_for(const struct upstream_set *s, const uint8_t *name,
						size_t len)
{
	const struct upstream_group *best = NULL;
	for (size_t g = 0; g < s->n_groups; g++) {
		const struct upstream_group *grp = &s->groups[g];
		if ((!best || grp->domain_len > best->domain_len) &&
		    name_under(name, len, grp->domain, grp->domain_len))
			best = grp;
	}
	return best;
}

bool upstream_group_all_down(const struct upstream_set *s, const struct upstream_group *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (upstream_usable(&s->ups[g->first + i]))
			return false;
	return true;
}

static struct upstream_slot *slot_of(const struct upstream_set *s, size_t idx, unsigned thread)
{
	return &s->ups[idx].slots[thread < s->slots ? thread : s->slots - 1];
}

static void log_if_group_down(struct upstream_set *s, const struct upstream *u)
{
	const struct upstream_group *g = &s->groups[u->group];
	if (upstream_group_all_down(s, g))
		log_error("upstreams for %s: all %zu down; answering SERVFAIL at once until one of "
			  "them answers a probe",
			  g->text, g->n);
}

void upstream_report(struct upstream_set *s, size_t idx, unsigned thread, enum upstream_outcome o,
		     uint8_t rcode, uint64_t dur_us, bool tcp)
{
	struct upstream *u = &s->ups[idx];
	struct upstream_slot *sl = slot_of(s, idx, thread);
	stat_inc(&sl->requests, 1);
	if (u->tls)
		stat_inc(&sl->tls_requests, 1);
	else if (tcp)
		stat_inc(&sl->tcp_requests, 1);
	if (o == UPSTREAM_ANSWER) {
		stat_inc(&sl->rcodes[rcode & 15], 1);
		stat_inc(&sl->dur_us_sum, dur_us);
		unsigned b = 0;
		while (b < UPSTREAM_DUR_BUCKETS && dur_us > upstream_dur_bounds_ms[b] * 1000ull)
			b++;
		stat_inc(&sl->dur_buckets[b], 1);
		/* Only a write when it changes: a healthy server's line stays shared. */
		if (atomic_load_explicit(&u->fails, memory_order_relaxed))
			atomic_store_explicit(&u->fails, 0, memory_order_relaxed);
		return;
	}
	stat_inc(o == UPSTREAM_TIMEOUT ? &sl->timeouts : &sl->net_errors, 1);
	unsigned f = atomic_fetch_add_explicit(&u->fails, 1, memory_order_relaxed) + 1;
	bool was = false;
	if (f >= UPSTREAM_MAX_FAILS && atomic_compare_exchange_strong(&u->down, &was, true)) {
		log_warn(
		    "upstream %s: down after %u failures in a row (last: %s); probing it every "
		    "%u ms",
		    u->text, f, o == UPSTREAM_TIMEOUT ? "timeout" : "network error",
		    UPSTREAM_PROBE_MS);
		log_if_group_down(s, u);
	}
}

void upstream_count_dropped(struct upstream_set *s, size_t idx, unsigned thread)
{
	stat_inc(&slot_of(s, idx, thread)->dropped, 1);
}

void upstream_count_tls(struct upstream_set *s, size_t idx, unsigned thread,
			enum upstream_tls_outcome o)
{
	stat_inc(&slot_of(s, idx, thread)->tls_handshakes[o], 1);
}

void upstream_probe_result(struct upstream_set *s, size_t idx, bool answered)
{
	struct upstream *u = &s->ups[idx];
	if (!answered) {
		stat_inc(&slot_of(s, idx, s->slots - 1)->health_failures, 1);
		return;
	}
	atomic_store(&u->fails, 0);
	bool was = true;
	if (atomic_compare_exchange_strong(&u->down, &was, false))
		log_info("upstream %s: answers again; back in use", u->text);
}

bool upstream_loop_probe_seen(struct upstream_set *s, const uint8_t *name, size_t len)
{
	if (!atomic_load_explicit(&s->loop_check_active, memory_order_relaxed))
		return false;
	for (size_t i = 0; i < s->n; i++) {
		struct upstream *u = &s->ups[i];
		if (u->probe_len != len || memcmp(u->probe_name, name, len) != 0)
			continue;
		bool was = false;
		if (atomic_compare_exchange_strong(&u->looped, &was, true)) {
			log_error(
			    "forwarding loop: a query svcdns sent to upstream %s came back to "
			    "svcdns; %s is not used (is it a resolver, such as systemd-resolved "
			    "at 127.0.0.53, that forwards to svcdns? name real resolvers with "
			    "--upstream or --resolv-conf)",
			    u->text, u->text);
			log_if_group_down(s, u);
		}
		return true;
	}
	return false;
}

void upstream_stats_get(const struct upstream_set *s, size_t idx, struct upstream_stats *out)
{
	memset(out, 0, sizeof(*out));
	const struct upstream *u = &s->ups[idx];
	for (unsigned t = 0; t < s->slots; t++) {
		const struct upstream_slot *sl = &u->slots[t];
#define SUM(f) out->f += atomic_load_explicit(&sl->f, memory_order_relaxed)
		SUM(requests);
		SUM(tcp_requests);
		SUM(tls_requests);
		for (int o = 0; o < UPSTREAM_TLS_OUTCOMES; o++)
			SUM(tls_handshakes[o]);
		SUM(timeouts);
		SUM(net_errors);
		SUM(dropped);
		SUM(health_failures);
		SUM(dur_us_sum);
		for (int r = 0; r < 16; r++)
			SUM(rcodes[r]);
		for (int b = 0; b <= UPSTREAM_DUR_BUCKETS; b++)
			SUM(dur_buckets[b]);
#undef SUM
	}
	out->down = atomic_load(&((struct upstream *)u)->down);
	out->looped = atomic_load(&((struct upstream *)u)->looped);
}
