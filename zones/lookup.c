/* The lookup the query path makes: a name in the published tables, else its
 * closest encloser (wildcards, delegations, pod addresses, NXDOMAIN). No
 * allocation, no locks: the tables are immutable once published. */
#include "zones/builder.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "zones/tables.h"

/* Inlined at each of its calls: the query path probes without a call (the
 * compiler would otherwise keep one out-of-line copy). */
static inline __attribute__((always_inline)) const struct zone_node *
find_name(const struct tables *t, const uint8_t *key, size_t len)
{
	return layered_find(&t->base->names, &t->over, key, len, dname_hash(key, len));
}

static int parse_dashed_ip(const uint8_t *label, struct net_addr *out)
{
	char text[64];
	size_t ll = label[0];
	if (ll == 0 || ll >= sizeof(text))
		return -1;
	int dashes = 0, digits_only = 1;
	for (size_t i = 0; i < ll; i++) {
		char c = (char)label[1 + i];
		if (c == '-')
			dashes++;
		else if (c < '0' || c > '9')
			digits_only = 0;
		text[i] = c;
	}
	text[ll] = '\0';
	if (dashes == 3 && digits_only) {
		for (size_t i = 0; i < ll; i++)
			if (text[i] == '-')
				text[i] = '.';
		/* inet_pton rejects leading zeros? It accepts them in glibc only
		 * as decimal, which is what kube-dns did too. */
		if (inet_pton(AF_INET, text, out->bytes) == 1) {
			out->family = AF_INET;
			return 0;
		}
		return -1;
	}
	for (size_t i = 0; i < ll; i++)
		if (text[i] == '-')
			text[i] = ':';
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

/* The view's namespace name that equals a wire label: <0, 0, >0 as strcmp. */
static int label_cmp(const uint8_t *label, const char *name)
{
	size_t ll = label[0], nl = strlen(name);
	int c = memcmp(label + 1, name, ll < nl ? ll : nl);
	return c ? c : (ll > nl) - (ll < nl);
}

/* Whether namespace `label` is served (--pods verified: `<ns>.pod` exists). */
static bool pod_ns_served(const struct model_view *v, const uint8_t *label)
{
	size_t lo = 0, hi = v->n_namespaces;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = label_cmp(label, v->namespaces[mid]);
		if (!c)
			return true;
		if (c > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Whether a Pod of namespace `label` has address a: two binary searches over
 * the view's sorted arrays. */
static bool pod_exists(const struct model_view *v, const uint8_t *label, const struct net_addr *a)
{
	size_t lo = 0, hi = v->n_pod_nss;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = label_cmp(label, v->pod_nss[mid].ns);
		if (!c) {
			lo = v->pod_nss[mid].lo;
			hi = v->pod_nss[mid].hi;
			while (lo < hi) {
				size_t m = lo + (hi - lo) / 2;
				int d = net_addr_cmp(a, &v->pod_addrs[m]);
				if (!d)
					return true;
				if (d > 0)
					lo = m + 1;
				else
					hi = m;
			}
			return false;
		}
		if (c > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* <ip>.<ns>.pod.<zone> (`dropped` labels below the pod root): kube-dns's and
 * CoreDNS's pod records, insecure (any address) or verified against `pods`. */
static void answer_pod(const struct zb_zone *cz, const uint8_t *key, int dropped, uint16_t qtype,
		       const struct model_view *pods, struct zone_result *r)
{
	const uint8_t *ns = dropped == 2 ? key + key[0] + 1 : key;

	if (dropped == 1) {
		r->ans = !pods || pod_ns_served(pods, key) ? cz->nodata : cz->nxdomain;
		return;
	}
	if (dropped != 2 || parse_dashed_ip(key, &r->addr) < 0 ||
	    (pods && !pod_exists(pods, ns, &r->addr))) {
		r->ans = cz->nxdomain;
		return;
	}
	uint16_t want = r->addr.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
	if (qtype == want || qtype == DNS_T_ANY) {
		r->kind = ZR_POD_ADDR;
		r->ttl = cz->pod_ttl;
	} else {
		r->ans = cz->nodata;
	}
}

static void answer_from_node(const struct tables *t, const struct zone_node *n, uint16_t qtype,
			     struct zone_result *r)
{
	const struct zone_answer *a;
	if (n->flags & NF_BELOW_CUT || (n->flags & NF_CUT && qtype != DNS_T_DS)) {
		r->ans = node_referral(n);
		return;
	}
	if (node_is_coming(n)) {
		r->ans = ZONE(t, n)->not_ready; /* this snapshot's SOA serial */
		return;
	}
	if ((a = node_answer(n, qtype))) {
		r->ans = a;
		return;
	}
	if ((n->flags & NF_CNAME) && qtype != DNS_T_CNAME) {
		r->ans = node_cname_default(n);
		return;
	}
	r->ans = ZONE(t, n)->nodata;
}

void zb_lookup(const void *tables, const uint8_t *key, size_t keylen, uint16_t qtype,
	       const struct model_view *pods, struct zone_result *r)
{
	const struct tables *t = tables;
	r->kind = ZR_ANSWER;
	r->ans = NULL;
	r->dynamic = false;
	r->apex = NULL;
	r->apex_len = 0;
	const struct zone_node *n = find_name(t, key, keylen);
	if (n && n->zidx) {
		r->dynamic = ZONE(t, n)->dynamic;
		r->apex = ZONE(t, n)->apex;
		r->apex_len = ZONE(t, n)->apex_len;
		answer_from_node(t, n, qtype, r);
		return;
	}
	/* Closest encloser: drop labels from the left until a name exists. */
	const uint8_t *p = key;
	size_t l = keylen;
	int dropped = 0;
	while (l > 1) {
		l -= p[0] + 1u;
		p += p[0] + 1u;
		dropped++;
		const struct zone_node *ce = find_name(t, p, l);
		if (!ce || !ce->zidx)
			continue;
		const struct zb_zone *cz = ZONE(t, ce);
		r->dynamic = cz->dynamic;
		r->apex = cz->apex;
		r->apex_len = cz->apex_len;
		if (ce->flags & (NF_CUT | NF_BELOW_CUT)) {
			r->ans = node_referral(ce);
			return;
		}
		if (ce->flags & NF_WILD_CHILD) {
			uint8_t wk[DNAME_MAX + 2];
			wk[0] = 1;
			wk[1] = '*';
			memcpy(wk + 2, p, l);
			const struct zone_node *w = find_name(t, wk, l + 2);
			if (w) {
				answer_from_node(t, w, qtype, r);
				return;
			}
		}
		if (ce->flags & NF_POD_ROOT) {
			answer_pod(cz, key, dropped, qtype, pods, r);
			return;
		}
		r->ans = cz->nxdomain;
		return;
	}
	r->kind = ZR_REFUSED;
}

const struct zone_answer *zb_lookup_chaos(const void *tables, const uint8_t *key, size_t keylen,
					  uint16_t qtype)
{
	const struct tables *t = tables;
	const struct zone_node *n =
	    layered_find(&t->base->chaos, &t->chaos_over, key, keylen, dname_hash(key, keylen));
	if (!n || (qtype != DNS_T_TXT && qtype != DNS_T_ANY))
		return NULL;
	return node_ans(n)[0];
}
