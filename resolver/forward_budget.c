/* The forwarder's upstream budget queue: questions that --upstream-max-qps
 * holds back wait here, oldest first, bounded in number and in time, and
 * leave as each upstream's sliding window frees room. See forward_engine.h. */
#include "resolver/forward_engine.h"

#include "resolver/upstream_budget.h"

/* Queued questions one wake-up may find still held back before it stops:
 * bounded work per wake-up, whatever the length of the queue. */
#define FWD_BUDGET_SCAN 8

void fwd_budget_remove(struct fq *q)
{
	struct forward_worker *fw = q->fw;
	if (!q->waiting)
		return;
	if (q->wprev)
		q->wprev->wnext = q->wnext;
	else
		fw->wait_head = q->wnext;
	if (q->wnext)
		q->wnext->wprev = q->wprev;
	else
		fw->wait_tail = q->wprev;
	q->wprev = q->wnext = NULL;
	q->waiting = false;
	fw->n_waiting--;
}

/* Wakes the queue in `ms` (at least 1), unless it wakes sooner already. */
static void budget_arm(struct forward_worker *fw, uint64_t ms)
{
	if (!ms)
		ms = 1;
	uint64_t due = fwd_now_ms(fw) + ms;
	if (fw->budget_armed && fw->budget_due <= due)
		return;
	fw->budget_armed = true;
	fw->budget_due = due;
	fw->clk.timer_start(fw->budget_timer, ms, 0);
}

void fwd_budget_refuse(struct fq *q)
{
	fwd_budget_remove(q);
	q->budget_fail = true;
	q->cur = -1;
	fwd_fq_fail_soon(q);
}

void fwd_budget_wait(struct fq *q, bool tcp, uint64_t wake_ms)
{
	struct forward_worker *fw = q->fw;
	q->wait_tcp = tcp;
	if (!q->waiting) {
		if (fw->n_waiting >= fw->max_waiting) {
			fwd_budget_refuse(q);
			return;
		}
		q->wprev = fw->wait_tail;
		q->wnext = NULL;
		if (fw->wait_tail)
			fw->wait_tail->wnext = q;
		else
			fw->wait_head = q;
		fw->wait_tail = q;
		q->waiting = true;
		fw->n_waiting++;
		fwd_stat_inc(&fw->f->slots[fw->thread].budget_waits);
		fwd_fq_timer_start(q, FWD_BUDGET_WAIT_MS);
	}
	budget_arm(fw, wake_ms);
}

/* Until FWD_BUDGET_SCAN questions found no room; those rearm the wake-up.
 * Nothing is freed meanwhile: a question that fails does so from the loop. */
void fwd_budget_wake(void *arg)
{
	struct forward_worker *fw = arg;
	fw->budget_armed = false;
	unsigned held = 0;
	for (struct fq *q = fw->wait_head, *next; q && held < FWD_BUDGET_SCAN; q = next) {
		next = q->wnext;
		fwd_fq_next(q, q->wait_tcp);
		held += q->waiting;
	}
}

bool fwd_budget_held(struct forward_worker *fw, const struct upstream_group *g)
{
	struct upstream_set *s = fw->f->ups;
	if (!s->budget)
		return false;
	for (size_t i = 0; i < g->n; i++)
		if (upstream_usable(&s->ups[g->first + i]) &&
		    !upstream_budget_peek(s->budget, g->first + i, &fw->clk))
			return false;
	return true;
}
