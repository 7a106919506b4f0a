/* The kernel datapath's bookkeeping: string tables for the names and map
 * elements the nftables table holds, read back from the kernel with netlink
 * dumps when svcdns starts so that a restart rewrites nothing in place. */
#include "proxy/nft_impl.h"
#include "proxy/nft_nl.h"

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
	/* FNV's low bits depend only on the low bits of the bytes: keys that
	 * differ in a digit or two crowd together under linear probing (a
	 * restart at 100,000 Services spent minutes in strcmp). A 64-bit
	 * finalizer spreads every bit. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static size_t slot_of(const struct stab *t, const char *key, uint64_t h)
{
	size_t mask = t->cap - 1, i = (size_t)h & mask;
	uint32_t tag = (uint32_t)(h >> 32);
	while (t->keys[i] && (t->tags[i] != tag || strcmp(t->keys[i], key) != 0))
		i = (i + 1) & mask;
	return i;
}

void *stab_get(const struct stab *t, const char *key)
{
	if (!t->cap)
		return NULL;
	size_t i = slot_of(t, key, str_hash(key));
	return t->keys[i] ? t->vals[i] : NULL;
}

static int grow(struct stab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct stab n = {.keys = calloc(cap, sizeof(char *)),
			 .vals = calloc(cap, sizeof(void *)),
			 .tags = calloc(cap, sizeof(uint32_t)),
			 .cap = cap};
	if (!n.keys || !n.vals || !n.tags) {
		free(n.keys);
		free(n.vals);
		free(n.tags);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->cap; i++)
		if (t->keys[i]) {
			uint64_t h = str_hash(t->keys[i]);
			size_t j = slot_of(&n, t->keys[i], h);
			n.keys[j] = t->keys[i];
			n.vals[j] = t->vals[i];
			n.tags[j] = (uint32_t)(h >> 32);
		}
	n.n = t->n;
	free(t->keys);
	free(t->vals);
	free(t->tags);
	*t = n;
	return 0;
}

int stab_put(struct stab *t, const char *key, void *val)
{
	/* At most half full: an absent key ends its probe within a few slots. */
	if ((t->n + 1) * 2 > t->cap && grow(t) < 0)
		return -ENOMEM;
	uint64_t h = str_hash(key);
	size_t i = slot_of(t, key, h);
	if (!t->keys[i]) {
		if (!(t->keys[i] = strdup(key)))
			return -ENOMEM;
		t->tags[i] = (uint32_t)(h >> 32);
		t->n++;
	}
	t->vals[i] = val;
	return 0;
}

void *stab_del(struct stab *t, const char *key)
{
	if (!t->cap)
		return NULL;
	size_t mask = t->cap - 1, i = slot_of(t, key, str_hash(key));
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
		t->tags[i] = t->tags[j];
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
	free(t->tags);
	memset(t, 0, sizeof(*t));
}

void nft_elem_id(unsigned map, const char *key, char *buf, size_t len)
{
	snprintf(buf, len, "%u|%s", map, key);
}

struct reader {
	struct stab *objs, *elems;
	unsigned map;
};

/* A Service's chain or set, by its prefix; the table's own are not. */
static int read_name(void *arg, const char *name, unsigned kind)
{
	struct reader *r = arg;
	static const char *const prefixes[] = {"svc-", "sep-", "ext-", "aff-", "svm-"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], 4) == 0)
			return stab_put(r->objs, name, (void *)(uintptr_t)kind);
	return 0;
}

static int read_elem(void *arg, const char *key, const char *verdict)
{
	struct reader *r = arg;
	char id[600];
	nft_elem_id(r->map, key, id, sizeof(id));
	char *v = strdup(verdict);
	if (!v || stab_put(r->elems, id, v) < 0) {
		free(v);
		return -ENOMEM;
	}
	return 0;
}

int nft_state_read(struct nft_nl *nl, struct stab *objs, struct stab *elems)
{
	struct reader r = {.objs = objs, .elems = elems};
	int ret = nft_nl_read_names(nl, read_name, &r);
	for (unsigned m = 0; m < NM_COUNT && ret == 0; m++) {
		r.map = m;
		ret = nft_nl_read_elems(nl, m, read_elem, &r);
	}
	return ret;
}
