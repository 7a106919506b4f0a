/* Which Services the kernel refused, and what the CHAOS view shows of the
 * kernel datapath: per port of a forwarded Service, whether its rules are in
 * ("nftables=programmed") or were refused, with the kernel's reason. */
#include "proxy/nft_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/dname.h"
#include "wire/wire.h"

/* One refused Service in an index. */
struct live_refusal {
	const char *ns, *name;
	size_t ns_len, name_len;
	const char *why;
};

/* An immutable index, one per apply: the view's Services (the array the
 * snapshot's view holds, which lives as long as that snapshot) and the
 * refused ones. One allocation. */
struct nft_live {
	struct nft_live *next; /* retired list */
	const struct view_service *svcs;
	size_t n_svcs, n;
	struct live_refusal r[];
};

/* "ns/name" against (ns, name), in the view's order. */
static int key_cmp_parts(const char *key, const char *ns, size_t nsl, const char *name, size_t nl)
{
	const char *slash = strchr(key, '/');
	size_t kl = slash ? (size_t)(slash - key) : strlen(key);
	int c = strncmp(key, ns, kl < nsl ? kl : nsl);
	if (c || kl != nsl)
		return c ? c : (kl > nsl) - (kl < nsl);
	const char *kn = slash ? slash + 1 : "";
	size_t knl = strlen(kn);
	c = strncmp(kn, name, knl < nl ? knl : nl);
	return c ? c : (knl > nl) - (knl < nl);
}

static int key_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	const char *s = strchr(y, '/');
	size_t nsl = s ? (size_t)(s - y) : strlen(y);
	const char *name = s ? s + 1 : "";
	return key_cmp_parts(x, y, nsl, name, strlen(name));
}

void nft_refusal_set(struct nft_refusals *r, const char *svc, const char *why)
{
	free(stab_del(&r->why, svc));
	if (!why)
		return;
	/* "Error: Could not process rule: File exists": the part after "Error: ". */
	if (strncmp(why, "Error: ", 7) == 0)
		why += 7;
	char *w = strndup(why, 96);
	if (!w || stab_put(&r->why, svc, w) < 0)
		free(w);
}

void nft_refusals_reset(struct nft_refusals *r)
{
	stab_free(&r->why, free);
}

static void collect_key(void *arg, const char *key, void *val)
{
	struct nft_refusals *r = arg;
	(void)val;
	r->keys[r->n_keys++] = (char *)key;
}

/* The current index leaves for the retired list (readers may still hold it). */
static void retire(struct nft_refusals *r)
{
	if (r->cur) {
		r->cur->next = r->old;
		r->old = r->cur;
		r->cur = NULL;
	}
}

int nft_refusals_index(struct nft_refusals *r, const struct model_view *v)
{
	/* Retired even on failure: it points into an older view's Services. */
	retire(r);
	r->n_keys = 0;
	char **keys = realloc(r->keys, (r->why.n + 1) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	r->keys = keys;
	r->n_keys = 0;
	stab_each(&r->why, collect_key, r);
	qsort(r->keys, r->n_keys, sizeof(*r->keys), key_cmp);
	size_t chars = 0;
	for (size_t i = 0; i < r->n_keys; i++)
		chars += strlen(r->keys[i]) + 1 + strlen(stab_get(&r->why, r->keys[i])) + 1;
	struct nft_live *lv = calloc(1, sizeof(*lv) + r->n_keys * sizeof(lv->r[0]) + chars);
	if (!lv)
		return -ENOMEM;
	char *str = (char *)(lv->r + r->n_keys);
	for (size_t i = 0; i < r->n_keys; i++) {
		struct live_refusal *e = &lv->r[i];
		const char *k = r->keys[i], *slash = strchr(k, '/');
		size_t kl = strlen(k) + 1;
		e->ns = memcpy(str, k, kl);
		e->ns_len = slash ? (size_t)(slash - k) : kl - 1;
		e->name = e->ns + e->ns_len + (slash != NULL);
		e->name_len = kl - 1 - e->ns_len - (slash != NULL);
		str += kl;
		const char *why = stab_get(&r->why, k);
		size_t wl = strlen(why) + 1;
		e->why = memcpy(str, why, wl);
		str += wl;
	}
	lv->n = r->n_keys;
	lv->svcs = v->svcs;
	lv->n_svcs = v->n_svcs;
	r->cur = lv;
	return 0;
}

size_t nft_refusals_keys(const struct nft_refusals *r, const char *const **keys)
{
	*keys = (const char *const *)r->keys;
	return r->n_keys;
}

void nft_refusals_reclaim(struct nft_refusals *r, const void *keep)
{
	for (struct nft_live **pp = &r->old; *pp;) {
		struct nft_live *lv = *pp;
		if (lv == keep) {
			pp = &lv->next;
			continue;
		}
		*pp = lv->next;
		free(lv);
	}
}

void nft_refusals_free(struct nft_refusals *r)
{
	nft_refusals_reclaim(r, NULL);
	free(r->cur);
	free(r->keys);
	stab_free(&r->why, free);
	memset(r, 0, sizeof(*r));
}

/* ---- the CHAOS view, on DNS worker threads ---------------------------------
 * Straight-line code over bytes: no allocation, no lock. */

static int bytes_cmp(const uint8_t *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

static void put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i] && *len < cap; i++)
		buf[(*len)++] = s[i];
}

static void put_u16(char *buf, size_t cap, size_t *len, unsigned v)
{
	char d[6];
	size_t n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n && *len < cap)
		buf[(*len)++] = d[--n];
}

/* "http 80/TCP nftables=programmed" or "... nftables=refused(File exists)". */
static size_t port_line(const struct model_svc_port *sp, const char *why, char *buf, size_t cap)
{
	size_t len = 0;
	const char *name = sp->name && sp->name[0] ? sp->name : "-";
	const char *proto = sp->proto == PROTO_UDP    ? "/UDP"
			    : sp->proto == PROTO_SCTP ? "/SCTP"
						      : "/TCP";
	put(buf, cap, &len, name, 63);
	put(buf, cap, &len, " ", 1);
	put_u16(buf, cap, &len, sp->port);
	put(buf, cap, &len, proto, 5);
	if (why) {
		put(buf, cap, &len, " nftables=refused(", 18);
		put(buf, cap, &len, why, 96);
		put(buf, cap, &len, ")", 1);
	} else {
		put(buf, cap, &len, " nftables=programmed", 20);
	}
	return len;
}

static const struct view_service *find_svc(const struct nft_live *lv, const uint8_t *name,
					   size_t nl, const uint8_t *ns, size_t nsl)
{
	size_t lo = 0, hi = lv->n_svcs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_service *s = lv->svcs[mid].svc;
		int c = bytes_cmp(ns, nsl, s->ns, strlen(s->ns));
		if (!c)
			c = bytes_cmp(name, nl, s->name, strlen(s->name));
		if (!c)
			return &lv->svcs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const char *find_refusal(const struct nft_live *lv, const uint8_t *name, size_t nl,
				const uint8_t *ns, size_t nsl)
{
	size_t lo = 0, hi = lv->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct live_refusal *e = &lv->r[mid];
		int c = bytes_cmp(ns, nsl, e->ns, e->ns_len);
		if (!c)
			c = bytes_cmp(name, nl, e->name, e->name_len);
		if (!c)
			return e->why;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t nft_live_chaos(const void *index, const uint8_t *key, size_t keylen, uint8_t *out,
		      size_t cap, uint16_t *n_rr)
{
	const struct nft_live *lv = index;
	const uint8_t *name, *ns;
	size_t nl, nsl, off;
	*n_rr = 0;
	if (!lv || !(off = dname_service_labels(key, keylen, &name, &nl, &ns, &nsl)))
		return 0;
	/* An imported Service (clusterset.local) has no datapath here. */
	static const uint8_t clusterset[] = "\12clusterset\5local";
	if (keylen - off == sizeof(clusterset) && memcmp(key + off, clusterset, keylen - off) == 0)
		return 0;
	const struct view_service *vs = find_svc(lv, name, nl, ns, nsl);
	const struct model_service *s = vs ? vs->svc : NULL;
	if (!s || s->type == SVC_EXTERNAL_NAME || s->headless || !s->n_cluster_ips)
		return 0;
	const char *why = find_refusal(lv, name, nl, ns, nsl);
	size_t n = 0;
	for (size_t i = 0; i < s->n_ports; i++) {
		char line[255];
		size_t ll = port_line(&s->ports[i], why, line, sizeof(line));
		size_t rr = wire_put_ch_txt(out + n, cap - n, line, ll);
		if (!rr)
			break; /* what fits: the mapping lines above are complete */
		n += rr;
		(*n_rr)++;
	}
	return n;
}
