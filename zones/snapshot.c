/* Snapshot building and publishing: one writer builds a new immutable
 * snapshot and swaps one pointer; readers never lock. An old snapshot is freed
 * once every reader that was inside a batch when it was retired has left. */
#include "zones/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "zones/builder.h"
#include "zones/cluster.h"
#include "zones/zonefile.h"

struct snap_priv {
	struct arena *arena;
	void *tables;
};

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	if (s->view) {
		model_view_free(s->view);
		free(s->view);
	}
	struct snap_priv *p = s->priv;
	if (p) {
		zb_tables_free(p->tables);
		arena_free(p->arena);
		free(p);
	}
	free(s);
}

int snapshot_build(const struct snapshot_config *cfg, struct model_view *view,
		   const struct snapshot *prev, struct snapshot **out)
{
	int ret = -ENOMEM;
	struct zb *b = NULL;
	struct snapshot *s = calloc(1, sizeof(*s));
	struct snap_priv *p = calloc(1, sizeof(*p));
	if (!s || !p)
		goto fail;
	s->priv = p;
	p->arena = arena_new();
	if (!p->arena || !(b = zb_new(p->arena)))
		goto fail;

	/* The serial grows with every snapshot; seeded from the clock so that it
	 * also grows across restarts (secondaries compare serials). */
	uint32_t now = (uint32_t)time(NULL);
	s->generation = prev ? prev->generation + 1 : 1;
	s->serial = prev ? prev->serial + 1 : now;
	if (prev && (int32_t)(now - s->serial) > 0)
		s->serial = now;

	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((ret = cluster_records(b, cfg, view, s->serial)) < 0) {
		log_error("snapshot: building the cluster zone failed (%s)", strerror(-ret));
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_static_zones; i++)
		if ((ret = zonefile_records(b, cfg->static_zones[i])) < 0) {
			log_error("snapshot: zone %s cannot be added (%s)",
				  zonefile_origin(cfg->static_zones[i]),
				  ret == -EEXIST ? "it overlaps another zone" : strerror(-ret));
			goto fail;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if ((ret = zb_finish(b, &p->tables, &s->n_names)) < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t2);
	log_debug("snapshot: records %.1f ms, rendering %.1f ms",
		  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		  (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6);
	zb_free(b);
	s->bytes = arena_bytes(p->arena);
	s->view = malloc(sizeof(*s->view));
	if (!s->view) {
		snapshot_free(s);
		return -ENOMEM;
	}
	*s->view = *view;
	memset(view, 0, sizeof(*view));
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->built_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	*out = s;
	return 0;
fail:
	zb_free(b);
	snapshot_free(s);
	if (!s)
		free(p);
	return ret < 0 ? ret : -ENOMEM;
}

void zone_lookup(const struct snapshot *s, const uint8_t *key, size_t keylen, uint16_t qtype,
		 struct zone_result *r)
{
	const struct snap_priv *p = s->priv;
	zb_lookup(p->tables, key, keylen, qtype, r);
}

const struct zone_answer *zone_lookup_chaos(const struct snapshot *s, const uint8_t *key,
					    size_t keylen, uint16_t qtype)
{
	const struct snap_priv *p = s->priv;
	return zb_lookup_chaos(p->tables, key, keylen, qtype);
}

/* ---- publishing ------------------------------------------------------------ */

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
	/* An odd count means "inside". The fetch_add is a full barrier, so the
	 * writer either sees us inside or we see its new pointer. */
	atomic_fetch_add_explicit(&r->active, 1, memory_order_seq_cst);
	return atomic_load_explicit(&g_current, memory_order_seq_cst);
}

void snapshot_leave(struct snapshot_reader *r)
{
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
