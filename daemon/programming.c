/* DNS programming latency as the Kubernetes SLI defines it: trigger times
 * wait here from the build that includes them to the publish that serves
 * them. See programming.h. */
#include "daemon/programming.h"

#include <stdlib.h>
#include <string.h>

const double prog_bounds[PROG_N_BOUNDS] = {0.001,  0.002,  0.004,  0.008,   0.016,   0.032,  0.064,
					   0.128,  0.256,  0.512,  1.024,   2.048,   4.096,  8.192,
					   16.384, 32.768, 65.536, 131.072, 262.144, 524.288};

const char *programming_kind_name(enum prog_kind k)
{
	static const char *const names[PROG_N_KINDS] = {"cluster_ip", "headless_with_selector",
							"headless_without_selector"};
	return k < PROG_N_KINDS ? names[k] : "?";
}

void programming_add(struct programming *pg, struct kube_trigger *t, size_t n)
{
	if (!n) {
		free(t);
		return;
	}
	if (!pg->pend) {
		pg->pend = t;
		pg->n_pend = pg->cap_pend = n;
		return;
	}
	/* Runs failed and were retried: the earlier ones still wait. */
	size_t room = pg->n_pend < KUBE_MAX_TRIGGERS ? KUBE_MAX_TRIGGERS - pg->n_pend : 0;
	size_t take = n < room ? n : room;
	if (pg->n_pend + take > pg->cap_pend) {
		struct kube_trigger *g = realloc(pg->pend, (pg->n_pend + take) * sizeof(*g));
		if (!g)
			take = 0;
		else
			pg->pend = g, pg->cap_pend = pg->n_pend + take;
	}
	memcpy(pg->pend + pg->n_pend, t, take * sizeof(*t));
	pg->n_pend += take;
	pg->skipped += n - take;
	free(t);
}

static const struct model_service *find_service(const struct model_view *v, const char *ns,
						const char *name)
{
	size_t lo = 0, hi = v->n_svcs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *s = v->svcs[mid].svc;
		int c = strcmp(s->ns, ns);
		if (!c)
			c = strcmp(s->name, name);
		if (!c)
			return s;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void programming_published(struct programming *pg, const struct model_view *v, int64_t now_ms)
{
	for (size_t i = 0; i < pg->n_pend; i++) {
		const struct kube_trigger *t = &pg->pend[i];
		const struct model_service *s = v ? find_service(v, t->ns, t->service) : NULL;
		if (!s || s->type == SVC_EXTERNAL_NAME) {
			pg->skipped++;
			continue;
		}
		enum prog_kind k = !s->headless			      ? PROG_CLUSTER_IP
				   : s->has_selector && s->selector.n ? PROG_HEADLESS_SELECTOR
								      : PROG_HEADLESS_NO_SELECTOR;
		double sec = now_ms > t->at_ms ? (double)(now_ms - t->at_ms) / 1000.0 : 0;
		size_t b = 0;
		while (b < PROG_N_BOUNDS && sec > prog_bounds[b])
			b++;
		pg->hist[k][b]++;
		pg->sum[k] += sec;
	}
	pg->n_pend = 0;
}

void programming_free(struct programming *pg)
{
	free(pg->pend);
	memset(pg, 0, sizeof(*pg));
}
