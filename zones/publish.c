/* Publishing snapshots: one atomic pointer swap for the writer, no lock for
 * readers, and an old snapshot freed once every reader that was inside a
 * batch when it was retired has left that batch. See snapshot.h. */
#include "zones/snapshot.h"

#include <stdlib.h>

#include "common/log.h"

static _Atomic(struct snapshot *) g_current;
static struct snapshot_reader g_readers[SNAPSHOT_MAX_READERS];
static atomic_uint g_n_readers;

struct retired {
	struct retired *next;
	struct snapshot *snap;
	unsigned n;
	uint_fast64_t seen[SNAPSHOT_MAX_READERS];
};
static struct retired *g_retired; /* writer (control thread) only */

struct snapshot_reader *snapshot_reader_register(void)
{
	unsigned i = atomic_fetch_add(&g_n_readers, 1);
	if (i >= SNAPSHOT_MAX_READERS)
		return NULL;
	return &g_readers[i];
}

const struct snapshot *snapshot_enter(struct snapshot_reader *r)
{
	/* The count goes odd before the pointer is read, and both are seq_cst,
	 * as are the writer's exchange and its reads of the counts after it: in
	 * their single total order either this load comes after the exchange
	 * (and returns the new snapshot) or the writer's read of the count comes
	 * after our increment (and records us inside). With either side weaker
	 * both could miss the other. */
	atomic_fetch_add_explicit(&r->active, 1, memory_order_seq_cst);
	return atomic_load_explicit(&g_current, memory_order_seq_cst);
}

void snapshot_leave(struct snapshot_reader *r)
{
	/* Release: the batch's reads of the snapshot happen before the free of
	 * a reclaim that reads this count or a later one. */
	atomic_fetch_add_explicit(&r->active, 1, memory_order_release);
}

const struct snapshot *snapshot_current(void)
{
	return atomic_load(&g_current);
}

void snapshot_publish(struct snapshot *s)
{
	struct snapshot *old = atomic_exchange_explicit(&g_current, s, memory_order_seq_cst);
	if (!old)
		return;
	struct retired *rt = calloc(1, sizeof(*rt));
	if (!rt) {
		/* Cannot track it safely: leaking one snapshot beats a crash. */
		log_error("snapshot: out of memory retiring generation %llu",
			  (unsigned long long)old->generation);
		return;
	}
	rt->snap = old;
	rt->n = atomic_load(&g_n_readers);
	if (rt->n > SNAPSHOT_MAX_READERS)
		rt->n = SNAPSHOT_MAX_READERS;
	for (unsigned i = 0; i < rt->n; i++)
		rt->seen[i] = atomic_load_explicit(&g_readers[i].active, memory_order_seq_cst);
	rt->next = g_retired;
	g_retired = rt;
	snapshot_reclaim();
}

size_t snapshot_reclaim(void)
{
	size_t left = 0;
	for (struct retired **pp = &g_retired; *pp;) {
		struct retired *rt = *pp;
		bool busy = false;
		for (unsigned i = 0; i < rt->n && !busy; i++)
			busy = (rt->seen[i] & 1) &&
			       atomic_load_explicit(&g_readers[i].active, memory_order_acquire) ==
				   rt->seen[i];
		if (busy) {
			left++;
			pp = &rt->next;
			continue;
		}
		*pp = rt->next;
		snapshot_free(rt->snap);
		free(rt);
	}
	return left;
}

void snapshot_shutdown(void)
{
	for (struct retired *rt = g_retired, *n; rt; rt = n) {
		n = rt->next;
		snapshot_free(rt->snap);
		free(rt);
	}
	g_retired = NULL;
	snapshot_free(atomic_exchange(&g_current, NULL));
	atomic_store(&g_n_readers, 0);
	for (unsigned i = 0; i < SNAPSHOT_MAX_READERS; i++)
		atomic_store(&g_readers[i].active, 0);
}
