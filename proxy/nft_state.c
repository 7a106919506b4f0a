/* The kernel datapath's bookkeeping: string tables for the names and map
 * elements the nftables table holds, and, when svcdns starts, reading them
 * back from the kernel so that a restart rewrites nothing that is in place. */
#include "proxy/nft_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nft_map_names[NM_COUNT] = {
    [NM_SVC4] = "service-ips4",
    [NM_SVC6] = "service-ips6",
    [NM_NOEP4] = "no-endpoint-services4",
    [NM_NOEP6] = "no-endpoint-services6",
    [NM_NP4] = "service-nodeports4",
    [NM_NP6] = "service-nodeports6",
    [NM_NPNOEP] = "no-endpoint-nodeports",
    [NM_CIP4] = "cluster-ips4",
    [NM_CIP6] = "cluster-ips6",
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static size_t slot_of(const struct stab *t, const char *key)
{
	size_t mask = t->cap - 1, i = (size_t)str_hash(key) & mask;
	while (t->keys[i] && strcmp(t->keys[i], key) != 0)
		i = (i + 1) & mask;
	return i;
}

void *stab_get(const struct stab *t, const char *key)
{
	if (!t->cap)
		return NULL;
	size_t i = slot_of(t, key);
	return t->keys[i] ? t->vals[i] : NULL;
}

static int grow(struct stab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct stab n = {
	    .keys = calloc(cap, sizeof(char *)), .vals = calloc(cap, sizeof(void *)), .cap = cap};
	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->cap; i++)
		if (t->keys[i]) {
			size_t j = slot_of(&n, t->keys[i]);
			n.keys[j] = t->keys[i];
			n.vals[j] = t->vals[i];
		}
	n.n = t->n;
	free(t->keys);
	free(t->vals);
	*t = n;
	return 0;
}

int stab_put(struct stab *t, const char *key, void *val)
{
	if ((t->n + 1) * 4 > t->cap * 3 && grow(t) < 0)
		return -ENOMEM;
	size_t i = slot_of(t, key);
	if (!t->keys[i]) {
		if (!(t->keys[i] = strdup(key)))
			return -ENOMEM;
		t->n++;
	}
	t->vals[i] = val;
	return 0;
}

void *stab_del(struct stab *t, const char *key)
{
	if (!t->cap)
		return NULL;
	size_t mask = t->cap - 1, i = slot_of(t, key);
	if (!t->keys[i])
		return NULL;
	void *val = t->vals[i];
	free(t->keys[i]);
	t->keys[i] = NULL;
	t->n--;
	/* Backward shift: every key after the hole stays reachable. */
	for (size_t j = (i + 1) & mask; t->keys[j]; j = (j + 1) & mask) {
		size_t home = (size_t)str_hash(t->keys[j]) & mask;
		bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (between)
			continue;
		t->keys[i] = t->keys[j];
		t->vals[i] = t->vals[j];
		t->keys[j] = NULL;
		i = j;
	}
	return val;
}

void stab_each(const struct stab *t, void (*fn)(void *arg, const char *key, void *val), void *arg)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->keys[i])
			fn(arg, t->keys[i], t->vals[i]);
}

void stab_free(struct stab *t, void (*free_val)(void *))
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->keys[i]) {
			free(t->keys[i]);
			if (free_val)
				free_val(t->vals[i]);
		}
	free(t->keys);
	free(t->vals);
	memset(t, 0, sizeof(*t));
}

void nft_elem_id(unsigned map, const char *key, char *buf, size_t len)
{
	snprintf(buf, len, "%u|%s", map, key);
}

/* The names of "\tchain NAME {" (or set) lines of table inet svcdns in a
 * listing of every inet chain or set. */
static int read_names(const char *text, const char *kw, void *mark, struct stab *objs)
{
	bool ours = false;
	size_t kwlen = strlen(kw);
	for (const char *l = text; *l;) {
		size_t n = strcspn(l, "\n");
		if (strncmp(l, "table ", 6) == 0)
			ours = n == strlen("table inet " NFTDP_TABLE " {") &&
			       strncmp(l, "table inet " NFTDP_TABLE " {", n) == 0;
		else if (ours && l[0] == '\t' && strncmp(l + 1, kw, kwlen) == 0 &&
			 l[1 + kwlen] == ' ') {
			const char *name = l + 2 + kwlen;
			size_t nl = strcspn(name, " \n");
			char buf[256];
			bool service_obj =
			    strncmp(name, "svc-", 4) == 0 || strncmp(name, "sep-", 4) == 0 ||
			    strncmp(name, "ext-", 4) == 0 || strncmp(name, "aff-", 4) == 0 ||
			    strncmp(name, "svm-", 4) == 0;
			if (service_obj && nl < sizeof(buf)) {
				memcpy(buf, name, nl);
				buf[nl] = '\0';
				if (stab_put(objs, buf, mark) < 0)
					return -ENOMEM;
			}
		}
		l += n + (l[n] == '\n');
	}
	return 0;
}

/* "elements = { a : goto x, b : goto y }" of one map or set listing. */
static int read_elems(const char *text, unsigned map, struct stab *elems)
{
	const char *p = strstr(text, "elements = {");
	if (!p)
		return 0;
	p += strlen("elements = {");
	const char *end = strchr(p, '}');
	if (!end)
		return -EINVAL;
	while (p < end) {
		size_t n = strcspn(p, ",}");
		if (p + n > end)
			n = (size_t)(end - p);
		char item[512], id[600];
		size_t a = 0;
		while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\n'))
			a++;
		size_t b = n;
		while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\n'))
			b--;
		if (b > a && b - a < sizeof(item)) {
			memcpy(item, p + a, b - a);
			item[b - a] = '\0';
			char *colon = strstr(item, " : ");
			const char *verdict = "";
			if (colon) {
				*colon = '\0';
				verdict = colon + 3;
			}
			nft_elem_id(map, item, id, sizeof(id));
			char *v = strdup(verdict);
			if (!v || stab_put(elems, id, v) < 0) {
				free(v);
				return -ENOMEM;
			}
		}
		p += n + 1;
	}
	return 0;
}

int nft_state_read(struct nft_batch *b, struct stab *objs, struct stab *elems)
{
	char *text = NULL, cmd[128];
	int ret = nft_batch_list(b, "list chains inet", &text);
	if (ret == 0)
		ret = read_names(text, "chain", (void *)1, objs);
	free(text);
	text = NULL;
	if (ret == 0 && (ret = nft_batch_list(b, "list sets inet", &text)) == 0)
		ret = read_names(text, "set", (void *)2, objs);
	free(text);
	text = NULL;
	if (ret == 0 && (ret = nft_batch_list(b, "list maps inet", &text)) == 0)
		ret = read_names(text, "map", (void *)3, objs);
	free(text);
	for (unsigned m = 0; m < NM_COUNT && ret == 0; m++) {
		snprintf(cmd, sizeof(cmd), "list %s inet " NFTDP_TABLE " %s",
			 nft_map_is_set(m) ? "set" : "map", nft_map_names[m]);
		text = NULL;
		ret = nft_batch_list(b, cmd, &text);
		if (ret == 0)
			ret = read_elems(text, m, elems);
		free(text);
	}
	return ret;
}
