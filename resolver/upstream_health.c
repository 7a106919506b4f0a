/* The control thread's probes: ". NS" to a down server until it answers, and
 * at start a random name that only comes back to svcdns through a forwarding
 * loop. Time and sockets through forward_io.h. */
#include "resolver/upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/forward_msg.h"
#include "resolver/upstream_budget.h"
#include "wire/wire.h"

#define LOOP_CHECK_ROUNDS 3 /* the loop probe is sent this many times, one probe period apart */

/* One probe query, from when it is sent until its answer or its deadline. */
struct probe {
	struct upstream_health *h;
	size_t idx;
	bool loop_check;
	uint16_t id;
	uint64_t deadline_ms;
	struct fwd_key key;
	struct fwd_xchg *x; /* NULL once it failed or could not be sent */
	struct probe *next;
};

struct upstream_health {
	struct upstream_set *set;
	struct fwd_clock clk;
	struct fwd_net net;
	struct fwd_timer *timer;
	struct probe *probes;
	unsigned loop_rounds;
	uint16_t ttl_off[FWD_MAX_RRS];
};

/* Unlinks, ends and frees a probe. */
static void probe_end(struct upstream_health *h, struct probe *p)
{
	for (struct probe **pp = &h->probes; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->x)
		h->net.end(p->x);
	free(p);
}

static bool on_probe_answer(void *arg, uint8_t *msg, size_t len)
{
	struct probe *p = arg;
	struct upstream_health *h = p->h;
	struct fwd_msg m;
	if (fwd_msg_parse(msg, len, &p->key, p->id, h->ttl_off, &m) < 0)
		return false;
	if (!p->loop_check)
		upstream_probe_result(h->set, p->idx, true);
	probe_end(h, p);
	return true;
}

/* Refused or unreachable: the probe failed; its deadline counts it. */
static void on_probe_error(void *arg, int err, bool reused)
{
	(void)err;
	(void)reused;
	struct probe *p = arg;
	p->h->net.end(p->x);
	p->x = NULL;
}

static void probe_send(struct upstream_health *h, size_t idx, bool loop_check)
{
	struct upstream *u = &h->set->ups[idx];
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->h = h;
	p->idx = idx;
	p->loop_check = loop_check;
	p->id = (uint16_t)arc4random();
	p->deadline_ms = h->clk.now_ms(h->clk.ctx) + h->set->timeout_ms;
	if (loop_check) {
		memcpy(p->key.name, u->probe_name, u->probe_len);
		p->key.name_len = u->probe_len;
		p->key.qtype = DNS_T_HINFO;
	} else {
		p->key.name[0] = 0; /* ". NS": every resolver can answer it */
		p->key.name_len = 1;
		p->key.qtype = DNS_T_NS;
	}
	p->key.qclass = DNS_C_IN;
	uint8_t q[FWD_QUERY_MAX];
	struct fwd_xchg_req r = {
	    .up = idx,
	    .tcp = false,
	    .msg = q,
	    .len = fwd_query_build(&p->key, p->id, q),
	    .on_answer = on_probe_answer,
	    .on_error = on_probe_error,
	    .arg = p,
	};
	/* A probe that could not be sent, or that --upstream-max-qps held
	 * back, waits for its deadline like one that got no answer. */
	struct upstream_budget *b = h->set->budget;
	size_t slot;
	if (b && upstream_budget_take(b, idx, &h->clk, &slot)) {
		p->x = NULL;
	} else {
		if (h->net.send(h->net.ctx, &r, &p->x) < 0)
			p->x = NULL;
		if (b)
			upstream_budget_sent(b, idx, slot, &h->clk);
	}
	p->next = h->probes;
	h->probes = p;
}

static bool probing(const struct upstream_health *h, size_t idx, bool loop_check)
{
	for (const struct probe *p = h->probes; p; p = p->next)
		if (p->idx == idx && p->loop_check == loop_check)
			return true;
	return false;
}

static void on_tick(void *arg)
{
	struct upstream_health *h = arg;
	struct upstream_set *s = h->set;
	uint64_t now = h->clk.now_ms(h->clk.ctx);
	for (struct probe *p = h->probes, *next; p; p = next) {
		next = p->next;
		if (now < p->deadline_ms)
			continue;
		if (!p->loop_check)
			upstream_probe_result(s, p->idx, false);
		probe_end(h, p);
	}
	for (size_t i = 0; i < s->n; i++) {
		struct upstream *u = &s->ups[i];
		if (h->loop_rounds < LOOP_CHECK_ROUNDS && !probing(h, i, true) &&
		    !atomic_load(&u->looped))
			probe_send(h, i, true);
		if (atomic_load(&u->down) && !atomic_load(&u->looped) && !probing(h, i, false))
			probe_send(h, i, false);
	}
	if (h->loop_rounds < LOOP_CHECK_ROUNDS) {
		h->loop_rounds++;
	} else if (atomic_load(&s->loop_check_active)) {
		/* Every loop probe has had its answer or its timeout: a query
		 * with our probe name arriving later is a client's, not ours. */
		bool any = false;
		for (const struct probe *p = h->probes; p && !any; p = p->next)
			any = p->loop_check;
		if (!any)
			atomic_store(&s->loop_check_active, false);
	}
}

int upstream_health_start(struct upstream_set *s, const struct fwd_clock *clk,
			  const struct fwd_net *net)
{
	struct upstream_health *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->set = s;
	h->clk = *clk;
	h->net = *net;
	h->timer = h->clk.timer_new(h->clk.ctx, on_tick, h);
	if (!h->timer) {
		free(h);
		return -ENOMEM;
	}
	s->health = h;
	atomic_store(&s->loop_check_active, true);
	h->clk.timer_start(h->timer, 0, UPSTREAM_PROBE_MS);
	return 0;
}

void upstream_health_stop(struct upstream_set *s)
{
	struct upstream_health *h = s ? s->health : NULL;
	if (!h)
		return;
	s->health = NULL;
	atomic_store(&s->loop_check_active, false);
	while (h->probes)
		probe_end(h, h->probes);
	h->clk.timer_free(h->timer);
	free(h);
}
