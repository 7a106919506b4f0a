/* Building a snapshot: in full from the model view and the static zones, or
 * incrementally from the previous one when few Services changed (which ones,
 * found by comparing the two views). Publishing is zones/publish.c. */
#include "zones/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "zones/builder.h"
#include "zones/cluster.h"
#include "zones/xfr.h"
#include "zones/zonefile.h"

struct snap_priv {
	/* The arenas this snapshot's nodes live in: its own, and, when it was
	 * built incrementally, those of the builds it shares nodes with. */
	struct arena **arenas;
	size_t n_arenas;
	void *tables;
	size_t full_bytes;    /* arena bytes of the last full build in this line */
	unsigned incremental; /* incremental builds since that full build */
};

/* An incremental build pays when few Services changed; past these, or once
 * the garbage of replaced nodes adds up (the arenas of the incremental builds
 * of a line past a quarter of its full build's), the next build is a full one.
 * An incremental build's cost does not depend on the size of the snapshot
 * (builder.h), so a line may be long. */
#define INCR_MAX_CHANGED_MIN	  64
#define INCR_MAX_CHANGED_FRACTION 20 /* 1/20 of the Services */
#define INCR_MAX_ARENAS		  256
#define INCR_MAX_GARBAGE_FRACTION 4
#define INCR_MIN_GARBAGE	  ((size_t)4 << 20) /* small clusters: by the arena count */

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	if (s->view) {
		model_view_free(s->view);
		free(s->view);
	}
	xfr_diff_release(s->journal);
	snapshot_addr_zones_free(s);
	for (size_t i = 0; i < s->n_withheld; i++)
		free(s->withheld[i]);
	free(s->withheld);
	struct snap_priv *p = s->priv;
	if (p) {
		zb_tables_free(p->tables);
		for (size_t i = 0; i < p->n_arenas; i++)
			arena_release(p->arenas[i]);
		free(p->arenas);
		free(p);
	}
	free(s);
}

static double ms_since_on(clockid_t clk, const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(clk, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static double ms_since(const struct timespec *t0)
{
	return ms_since_on(CLOCK_MONOTONIC, t0);
}

/* ---- comparing views: which Services changed ------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool addr_eq(const struct net_addr *a, const struct net_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

static bool svc_eq(const struct view_service *x, const struct view_service *y)
{
	const struct model_service *a = x->svc, *b = y->svc;
	if (a->type != b->type || a->headless != b->headless || a->imported != b->imported ||
	    a->n_cluster_ips != b->n_cluster_ips || !str_eq(a->external_name, b->external_name) ||
	    a->n_ports != b->n_ports || a->publish_not_ready != b->publish_not_ready ||
	    a->affinity_client_ip != b->affinity_client_ip ||
	    a->affinity_timeout != b->affinity_timeout || x->n_eps != y->n_eps)
		return false;
	for (size_t i = 0; i < a->n_cluster_ips; i++)
		if (!addr_eq(&a->cluster_ips[i], &b->cluster_ips[i]))
			return false;
	for (size_t i = 0; i < a->n_ports; i++) {
		const struct model_svc_port *p = &a->ports[i], *q = &b->ports[i];
		if (p->port != q->port || p->proto != q->proto || p->target_num != q->target_num ||
		    p->node_port != q->node_port || !str_eq(p->name, q->name) ||
		    !str_eq(p->target_name, q->target_name))
			return false;
	}
	for (size_t e = 0; e < x->n_eps; e++) {
		const struct view_endpoint *p = &x->eps[e], *q = &y->eps[e];
		if (!addr_eq(&p->addr, &q->addr) || p->ready != q->ready ||
		    p->serving != q->serving || p->terminating != q->terminating ||
		    !str_eq(p->hostname, q->hostname) || !str_eq(p->node_name, q->node_name) ||
		    !str_eq(p->pod_name, q->pod_name) || !str_eq(p->cluster, q->cluster) ||
		    !str_eq(p->zone, q->zone) || !str_eq(p->for_zones, q->for_zones))
			return false;
		if ((p->target_ports == NULL) != (q->target_ports == NULL) ||
		    (p->target_ports &&
		     memcmp(p->target_ports, q->target_ports, a->n_ports * sizeof(uint16_t)) != 0))
			return false;
	}
	return true;
}

static int svc_cmp(const struct view_service *x, const struct view_service *y)
{
	int c = strcmp(x->svc->ns, y->svc->ns);
	return c ? c : strcmp(x->svc->name, y->svc->name);
}

struct view_diff {
	const struct view_service **gone; /* old versions to take out */
	const struct view_service **come; /* new versions to put in */
	size_t n_gone, n_come;
	/* the other side's Services: an import's PTR yields to a local one */
	const struct model_view *old, *cur;
};

static bool vs_has_addr(const struct view_service *vs, const struct net_addr *a)
{
	for (size_t i = 0; i < vs->svc->n_cluster_ips; i++)
		if (addr_eq(&vs->svc->cluster_ips[i], a))
			return true;
	for (size_t e = 0; e < vs->n_eps; e++)
		if (addr_eq(&vs->eps[e].addr, a))
			return true;
	return false;
}

/* Whether a Service shares an address (and so perhaps a PTR) with a Service
 * of the other kind, local or imported, in either view: which of the two
 * names the PTR depends on the order of a full build. */
static bool shares_ptr(const struct view_diff *d, const struct view_service *vs)
{
	const struct model_view *vw[2] = {d->old, d->cur};
	const struct model_service *s = vs->svc;
	for (int k = 0; k < 2; k++) {
		const struct view_service *set = s->imported ? vw[k]->svcs : vw[k]->imports;
		size_t n = s->imported ? vw[k]->n_svcs : vw[k]->n_imports;
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < s->n_cluster_ips; j++)
				if (vs_has_addr(&set[i], &s->cluster_ips[j]))
					return true;
			for (size_t e = 0; e < vs->n_eps; e++)
				if (vs_has_addr(&set[i], &vs->eps[e].addr))
					return true;
		}
	}
	return false;
}

/* Records one Service's old version to take out and/or new one to put in;
 * -EAGAIN when an incremental build cannot express it. */
static int diff_add(struct view_diff *d, const struct view_service *g, const struct view_service *n,
		    size_t max)
{
	/* The nameserver's glue is the kube-dns Service's address. */
	if ((g && cluster_is_ns_service(g->svc)) || (n && cluster_is_ns_service(n->svc)))
		return -EAGAIN;
	if ((g && d->n_gone == max) || (n && d->n_come == max))
		return -EAGAIN;
	if ((d->old->n_imports || d->cur->n_imports) &&
	    ((g && shares_ptr(d, g)) || (n && shares_ptr(d, n))))
		return -EAGAIN;
	if (g)
		d->gone[d->n_gone++] = g;
	if (n)
		d->come[d->n_come++] = n;
	return 0;
}

/* One merge walk over two sorted arrays of Services. */
static int diff_walk(struct view_diff *d, const struct view_service *os, size_t no,
		     const struct view_service *cs, size_t nc, size_t max)
{
	size_t i = 0, j = 0;
	while (i < no || j < nc) {
		const struct view_service *a = i < no ? &os[i] : NULL;
		const struct view_service *b = j < nc ? &cs[j] : NULL;
		int c = !a ? 1 : !b ? -1 : svc_cmp(a, b);
		const struct view_service *g = NULL, *n = NULL;
		if (c == 0) {
			if (!svc_eq(a, b)) {
				g = a;
				n = b;
			}
			i++;
			j++;
		} else if (c < 0) {
			g = a;
			i++;
		} else {
			n = b;
			j++;
		}
		if ((g || n) && diff_add(d, g, n, max) < 0)
			return -EAGAIN;
	}
	return 0;
}

/* Walks both views (sorted by namespace and name) once, Services then
 * imports. Returns -EAGAIN when an incremental build cannot express the
 * change. */
static int view_diff(const struct model_view *old, const struct model_view *cur, size_t max,
		     struct view_diff *d)
{
	if (old->n_namespaces != cur->n_namespaces)
		return -EAGAIN;
	/* A view derived from old shares its namespace list when unchanged. */
	for (size_t i = 0; i < cur->n_namespaces && old->namespaces != cur->namespaces; i++)
		if (strcmp(old->namespaces[i], cur->namespaces[i]) != 0)
			return -EAGAIN;
	d->gone = calloc(max, sizeof(*d->gone));
	d->come = calloc(max, sizeof(*d->come));
	d->n_gone = d->n_come = 0;
	d->old = old;
	d->cur = cur;
	if (!d->gone || !d->come)
		return -ENOMEM;
	/* The view knows what changed since old: no walk over every Service
	 * (its imports are old's: a change to one makes a view in full). */
	bool listed = cur->base_id && cur->base_id == old->id;
	for (size_t k = 0; listed && k < cur->n_changes; k++) {
		const struct view_service *g = cur->changes[k].old, *n = cur->changes[k].cur;
		if (!(g && n && svc_eq(g, n)) && diff_add(d, g, n, max) < 0)
			return -EAGAIN;
	}
	if (listed)
		return 0;
	if (diff_walk(d, old->svcs, old->n_svcs, cur->svcs, cur->n_svcs, max) < 0)
		return -EAGAIN;
	return diff_walk(d, old->imports, old->n_imports, cur->imports, cur->n_imports, max);
}

/* Takes out the names one old Service version had, using a scratch build of
 * its records to learn them. */
static int remove_service(struct zb *b, const struct snapshot_config *cfg, uint32_t serial,
			  bool mcs, const struct view_service *vs, struct xfr_diff *journal)
{
	int ret = -ENOMEM;
	struct arena *a = arena_new();
	struct zb *scratch = a ? zb_new(a) : NULL;
	struct cluster_zones cz;
	uint8_t full[255], shortn[255];
	if (!scratch)
		goto out;
	if ((ret = cluster_zones(scratch, cfg, serial, mcs, &cz)) < 0 ||
	    (ret = cluster_service(scratch, &cz, vs)) < 0)
		goto out;
	if (cluster_service_roots(&cz, vs->svc, full, shortn) < 0) {
		ret = 0; /* it had no names */
		goto out;
	}
	const uint8_t *roots[2] = {full, shortn};
	ret = zb_remove_owned(b, scratch, roots, 2);
	if (ret == 0 && journal)
		ret = xfr_diff_collect(journal, scratch, false);
out:
	zb_free(scratch);
	arena_free(a);
	return ret;
}

/* The records a new Service version brings, for the IXFR journal. */
static int journal_added(const struct snapshot_config *cfg, uint32_t serial, bool mcs,
			 const struct view_service *vs, struct xfr_diff *journal)
{
	int ret = -ENOMEM;
	struct arena *a = arena_new();
	struct zb *scratch = a ? zb_new(a) : NULL;
	struct cluster_zones cz;
	if (scratch && (ret = cluster_zones(scratch, cfg, serial, mcs, &cz)) == 0 &&
	    (ret = cluster_service(scratch, &cz, vs)) == 0)
		ret = xfr_diff_collect(journal, scratch, true);
	zb_free(scratch);
	arena_free(a);
	return ret;
}

static int build_incremental(const struct snapshot_config *cfg, const struct model_view *view,
			     const struct snapshot *prev, struct snapshot *s, struct snap_priv *p,
			     size_t *n_changed, double *diff_ms)
{
	const struct snap_priv *pp = prev->priv;
	struct view_diff d = {0};
	struct zb *b = NULL;
	int ret;

	size_t max = view->n_svcs / INCR_MAX_CHANGED_FRACTION;
	if (max < INCR_MAX_CHANGED_MIN)
		max = INCR_MAX_CHANGED_MIN;
	if (!prev->view || pp->n_arenas >= INCR_MAX_ARENAS)
		return -EAGAIN;
	/* The clusterset zone comes (or goes): the zones are declared anew. */
	bool mcs = clusterset_served(cfg, view);
	if (mcs != clusterset_served(cfg, prev->view))
		return -EAGAIN;
	size_t incr_bytes = 0; /* the last arena is the full build's */
	for (size_t i = 0; i + 1 < pp->n_arenas; i++)
		incr_bytes += arena_bytes(pp->arenas[i]);
	if (incr_bytes > INCR_MIN_GARBAGE &&
	    incr_bytes > pp->full_bytes / INCR_MAX_GARBAGE_FRACTION)
		return -EAGAIN;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((ret = view_diff(prev->view, view, max, &d)) < 0)
		goto out;
	*n_changed = d.n_gone > d.n_come ? d.n_gone : d.n_come;
	*diff_ms = ms_since(&t0);

	ret = -ENOMEM;
	p->arenas = calloc(pp->n_arenas + 1, sizeof(*p->arenas));
	if (!p->arenas)
		goto out;
	p->arenas[0] = arena_new();
	if (!p->arenas[0])
		goto out;
	p->n_arenas = 1;
	for (size_t i = 0; i < pp->n_arenas; i++) {
		arena_retain(pp->arenas[i]);
		p->arenas[p->n_arenas++] = pp->arenas[i];
	}
	if (!(b = zb_new_incremental(p->arenas[0], pp->tables)))
		goto out;
	zb_set_rotate(b, cfg->rotate);
	struct cluster_zones cz;
	if ((ret = cluster_zones(b, cfg, s->serial, mcs, &cz)) < 0)
		goto out;
	ret = -ENOMEM;
	if (!(s->journal = xfr_diff_new(prev->serial, s->serial, prev->journal)))
		goto out;
	for (size_t i = 0; i < d.n_gone; i++)
		if ((ret = remove_service(b, cfg, s->serial, mcs, d.gone[i], s->journal)) < 0)
			goto out;
	for (size_t i = 0; i < d.n_come; i++)
		if ((ret = cluster_service(b, &cz, d.come[i])) < 0 ||
		    (ret = journal_added(cfg, s->serial, mcs, d.come[i], s->journal)) < 0)
			goto out;
	if ((ret = zb_finish(b, &p->tables, &s->n_names)) < 0)
		goto out;
	p->full_bytes = pp->full_bytes;
	p->incremental = pp->incremental + 1;
	ret = 0;
out:
	zb_free(b);
	free(d.gone);
	free(d.come);
	return ret;
}

static int build_full(const struct snapshot_config *cfg, const struct model_view *view,
		      struct snapshot *s, struct snap_priv *p)
{
	struct zb *b = NULL;
	int ret = -ENOMEM;
	p->arenas = calloc(1, sizeof(*p->arenas));
	if (!p->arenas || !(p->arenas[0] = arena_new()))
		goto out;
	p->n_arenas = 1;
	if (!(b = zb_new(p->arenas[0])))
		goto out;
	zb_set_rotate(b, cfg->rotate);
	if ((ret = cluster_records(b, cfg, view, s->serial, s->withheld, s->n_withheld)) < 0) {
		log_error("snapshot: building the cluster zone failed (%s)", strerror(-ret));
		goto out;
	}
	for (size_t i = 0; i < cfg->n_static_zones; i++)
		if ((ret = zonefile_records(b, cfg->static_zones[i])) < 0) {
			log_error("snapshot: zone %s cannot be added (%s)",
				  zonefile_origin(cfg->static_zones[i]),
				  ret == -EEXIST ? "it overlaps another zone" : strerror(-ret));
			goto out;
		}
	if ((ret = zb_finish(b, &p->tables, &s->n_names)) < 0)
		goto out;
	p->full_bytes = arena_bytes(p->arenas[0]);
	ret = 0;
out:
	zb_free(b);
	return ret;
}

static void priv_clear(struct snap_priv *p)
{
	zb_tables_free(p->tables);
	for (size_t i = 0; i < p->n_arenas; i++)
		arena_release(p->arenas[i]);
	free(p->arenas);
	memset(p, 0, sizeof(*p));
}

/* s->rev_cidrs from the view's ServiceCIDRs (else the service flag) and
 * the pod flag. */
static void rev_cidrs(const struct snapshot_config *cfg, const struct model_view *v,
		      struct snapshot *s)
{
	size_t n = 0, max = SNAPSHOT_MAX_REV_CIDRS - 1; /* room for the pod range */

	if (!cfg->service_cidr && !cfg->pod_cidr)
		return;
	if (v->n_service_cidrs) {
		if (v->n_service_cidrs > max)
			log_warn("snapshot: %zu ServiceCIDR ranges; the reverse names of the "
				 "first %zu only are the cluster's",
				 v->n_service_cidrs, max);
		for (size_t i = 0; i < v->n_service_cidrs && n < max; i++)
			s->rev_cidrs[n++] = v->service_cidrs[i];
		s->rev_cidrs_from_cluster = true;
	} else if (cfg->service_cidr) {
		s->rev_cidrs[n++] = *cfg->service_cidr;
	}
	if (cfg->pod_cidr)
		s->rev_cidrs[n++] = *cfg->pod_cidr;
	s->n_rev_cidrs = n;
}

int snapshot_build(const struct snapshot_config *cfg, struct model_view *view,
		   const struct snapshot *prev, struct snapshot **out)
{
	int ret = -ENOMEM;
	struct snapshot *s = calloc(1, sizeof(*s));
	struct snap_priv *p = calloc(1, sizeof(*p));
	if (!s || !p) {
		free(s);
		free(p);
		return -ENOMEM;
	}
	s->priv = p;

	/* The serial grows with every snapshot; seeded from the clock so that it
	 * also grows across restarts (secondaries compare serials). */
	uint32_t now = (uint32_t)time(NULL);
	s->generation = prev ? prev->generation + 1 : 1;
	s->serial = prev ? prev->serial + 1 : now;
	if (prev && (int32_t)(now - s->serial) > 0)
		s->serial = now;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* CPU time too: on a busy node the wall clock says little about the build. */
	struct timespec c0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	size_t n_changed = 0;
	double diff_ms = 0;
	/* Names withheld from prev are not in its tables: they come back with
	 * a full build. */
	ret = prev && !prev->n_withheld
		  ? build_incremental(cfg, view, prev, s, p, &n_changed, &diff_ms)
		  : -EAGAIN;
	if (ret == 0) {
		s->incremental = true;
		log_debug(
		    "snapshot: incremental build, %zu services changed, %.2f ms (%.2f ms CPU; "
		    "finding the changes %.2f ms)",
		    n_changed, ms_since(&t0), ms_since_on(CLOCK_THREAD_CPUTIME_ID, &c0), diff_ms);
	} else {
		if (ret != -EAGAIN)
			log_warn("snapshot: incremental build failed (%s); building in full",
				 strerror(-ret));
		priv_clear(p);
		xfr_diff_release(s->journal);
		s->journal = NULL;
		if ((ret = build_full(cfg, view, s, p)) < 0)
			goto fail;
		log_debug("snapshot: full build, %.1f ms (%.1f ms CPU)", ms_since(&t0),
			  ms_since_on(CLOCK_THREAD_CPUTIME_ID, &c0));
	}
	s->bytes = zb_tables_bytes(p->tables);
	for (size_t i = 0; i < p->n_arenas; i++)
		s->bytes += arena_bytes(p->arenas[i]);
	if ((ret = snapshot_addr_zones_build(cfg, view, s)) < 0)
		goto fail;
	s->view = malloc(sizeof(*s->view));
	if (!s->view) {
		snapshot_free(s);
		return -ENOMEM;
	}
	*s->view = *view;
	memset(view, 0, sizeof(*view));
	rev_cidrs(cfg, s->view, s);
	s->cfg = cfg;
	s->built_ns = clock_now_ns();
	*out = s;
	return 0;
fail:
	snapshot_free(s);
	return ret < 0 ? ret : -ENOMEM;
}

int snapshot_withhold(struct snapshot **sp, const char *const *keys, size_t n)
{
	struct snapshot *old = *sp;
	struct snapshot *s = calloc(1, sizeof(*s));
	struct snap_priv *p = calloc(1, sizeof(*p));
	int ret = -ENOMEM;
	if (!s || !p) {
		free(s);
		free(p);
		return -ENOMEM;
	}
	s->priv = p;
	if (!(s->withheld = calloc(n, sizeof(*s->withheld))))
		goto fail;
	for (; s->n_withheld < n; s->n_withheld++)
		if (!(s->withheld[s->n_withheld] = strdup(keys[s->n_withheld])))
			goto fail;
	s->generation = old->generation;
	s->serial = old->serial;
	if ((ret = build_full(old->cfg, old->view, s, p)) < 0)
		goto fail;
	s->bytes = zb_tables_bytes(p->tables);
	for (size_t i = 0; i < p->n_arenas; i++)
		s->bytes += arena_bytes(p->arenas[i]);
	s->view = old->view;
	old->view = NULL;
	s->cfg = old->cfg;
	s->synced = old->synced;
	s->chaos_live = old->chaos_live;
	s->chaos_live_arg = old->chaos_live_arg;
	memcpy(s->rev_cidrs, old->rev_cidrs, sizeof(s->rev_cidrs));
	s->n_rev_cidrs = old->n_rev_cidrs;
	s->rev_cidrs_from_cluster = old->rev_cidrs_from_cluster;
	/* The same view: the same client zones. */
	s->addr_zones = old->addr_zones;
	s->n_addr_zones = old->n_addr_zones;
	s->zone_names = old->zone_names;
	s->zone_hashes = old->zone_hashes;
	s->n_zone_names = old->n_zone_names;
	s->bytes += s->n_addr_zones * sizeof(*s->addr_zones) +
		    s->n_zone_names * (sizeof(*s->zone_names) + sizeof(*s->zone_hashes));
	old->addr_zones = NULL;
	old->zone_names = NULL;
	old->zone_hashes = NULL;
	old->n_addr_zones = old->n_zone_names = 0;
	s->built_ns = clock_now_ns();
	snapshot_free(old);
	*sp = s;
	return 0;
fail:
	snapshot_free(s);
	return ret;
}

void zone_lookup(const struct snapshot *s, const uint8_t *key, size_t keylen, uint16_t qtype,
		 struct zone_result *r)
{
	const struct snap_priv *p = s->priv;
	const struct model_view *pods =
	    s->cfg && s->cfg->pods == SNAPSHOT_PODS_VERIFIED ? s->view : NULL;
	zb_lookup(p->tables, key, keylen, qtype, pods, r);
}

const struct zone_answer *zone_lookup_chaos(const struct snapshot *s, const uint8_t *key,
					    size_t keylen, uint16_t qtype)
{
	const struct snap_priv *p = s->priv;
	return zb_lookup_chaos(p->tables, key, keylen, qtype);
}
