/* The message writer: appending bytes, names compressed through a dictionary
 * of the suffixes already written, and whole records. See writer.h. */
#include "zones/writer.h"

#include "wire/dname.h"

#define MAX_LABELS 128

/* The hashes of every suffix of a name, longest first, computed from the
 * root up so that each byte is hashed once (a name is looked up and entered
 * suffix by suffix). Returns the number of labels. */
static size_t suffix_hashes(const uint8_t *name, uint8_t *offs, uint32_t *hs)
{
	size_t n = 0;
	for (size_t i = 0; name[i]; i += name[i] + 1u)
		offs[n++] = (uint8_t)i;
	uint64_t h = 0x9E3779B97F4A7C15ull;
	for (size_t k = n; k-- > 0;) {
		const uint8_t *l = name + offs[k];
		for (size_t j = 0; j <= l[0]; j++)
			h = (h ^ l[j]) * 0x100000001B3ull;
		hs[k] = (uint32_t)(h ^ (h >> 29));
	}
	return n;
}

static void dict_add_all(struct writer *w, const uint8_t *name, size_t off);

static void dict_ready(struct writer *w)
{
	if (w->qname_pending) {
		const uint8_t *q = w->qname_pending;
		w->qname_pending = NULL;
		dict_add_all(w, q, WIRE_HDR_LEN);
	}
}

static bool dict_find(struct writer *w, const uint8_t *name, size_t len, uint32_t h, uint16_t *off)
{
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE;
	     i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen)
			return false;
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0) {
			*off = e->off;
			/* The only entry of this name: a shorter suffix may
			 * still be found outside the range. */
			return e->off < w->no_ptr_lo || e->off >= w->no_ptr_hi;
		}
	}
	return false;
}

/* Returns whether the dictionary had the name already. */
static bool dict_add(struct writer *w, const uint8_t *name, size_t len, uint32_t h, size_t off)
{
	if (off >= 0x3FFF || len <= 1)
		return false;
	for (uint32_t i = h & (DICT_SIZE - 1), k = 0; k < DICT_SIZE / 2;
	     i = (i + 1) & (DICT_SIZE - 1), k++) {
		struct dict_entry *e = &w->dict[i];
		if (e->gen != w->gen) {
			e->gen = w->gen;
			e->hash = h;
			e->off = (uint16_t)off;
			e->len = (uint8_t)len;
			e->name = name;
			return false;
		}
		if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
			return true;
	}
	return false;
}

/* Registers every suffix of a name that sits at message offset `off`. */
static void dict_add_all(struct writer *w, const uint8_t *name, size_t off)
{
	uint8_t offs[MAX_LABELS];
	uint32_t hs[MAX_LABELS];
	dict_ready(w);
	size_t len = dname_len(name), n = suffix_hashes(name, offs, hs);
	/* A name the dictionary has came with its suffixes (an SRV RRset names
	 * one target again and again). */
	for (size_t k = 0; k < n; k++)
		if (dict_add(w, name + offs[k], len - offs[k], hs[k], off + offs[k]) && k == 0)
			return;
}

void writer_put_name(struct writer *w, const uint8_t *name, bool compress)
{
	size_t len = dname_len(name);
	if (!w->compress) {
		writer_put(w, name, len);
		return;
	}
	size_t start = w->base + w->len;
	uint8_t offs[MAX_LABELS];
	uint32_t hs[MAX_LABELS];
	size_t n = suffix_hashes(name, offs, hs);
	dict_ready(w);
	for (size_t k = 0; compress && k < n; k++) {
		uint16_t off;
		if (dict_find(w, name + offs[k], len - offs[k], hs[k], &off)) {
			writer_put(w, name, offs[k]);
			writer_put16(w, (uint16_t)(0xC000 | off));
			if (!w->full)
				for (size_t j = 0; j < k; j++)
					dict_add(w, name + offs[j], len - offs[j], hs[j],
						 start + offs[j]);
			return;
		}
	}
	writer_put(w, name, len);
	if (!w->full)
		for (size_t k = 0; k < n; k++)
			dict_add(w, name + offs[k], len - offs[k], hs[k], start + offs[k]);
}

void writer_put_rr(struct writer *w, const uint8_t *owner, int owner_ptr, uint16_t type,
		   uint32_t ttl, const uint8_t *rdata, uint16_t rdlen)
{
	if (owner_ptr >= 0)
		writer_put16(w, (uint16_t)(0xC000 | owner_ptr));
	else
		writer_put_name(w, owner, true);
	writer_put16(w, type);
	writer_put16(w, DNS_C_IN);
	writer_put32(w, ttl);
	size_t rdlen_at = w->len;
	writer_put16(w, 0);
	size_t rstart = w->len;
	const uint8_t *d = rdata;
	/* RFC 3597 section 4: only the types of RFC 1035 have compressed names. */
	switch (type) {
	case DNS_T_NS:
	case DNS_T_CNAME:
	case DNS_T_PTR:
		writer_put_name(w, d, true);
		break;
	case DNS_T_MX:
		writer_put(w, d, 2);
		writer_put_name(w, d + 2, true);
		break;
	case DNS_T_SOA: {
		size_t l1 = dname_len(d);
		size_t l2 = dname_len(d + l1);
		writer_put_name(w, d, true);
		writer_put_name(w, d + l1, true);
		writer_put(w, d + l1 + l2, 20);
		break;
	}
	case DNS_T_SRV: {
		/* RFC 2782: the target is never compressed, but later names may
		 * point at it. */
		size_t start = w->base + w->len + 6;
		writer_put(w, d, rdlen);
		if (!w->full && w->compress)
			dict_add_all(w, d + 6, start);
		break;
	}
	default:
		writer_put(w, d, rdlen);
		break;
	}
	if (w->full)
		return;
	size_t rl = w->len - rstart;
	wire_wr16(w->buf + rdlen_at, (uint16_t)rl);
}
