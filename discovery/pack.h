/* Packing into one block: a sizing pass with no base counts the bytes, a
 * second pass with the allocated block copies into it, at the same offsets.
 *
 * Owns: nothing but these helpers, shared by the store's packed objects
 * (model.c) and the view's per-Service blocks (view_pack.c). */
#ifndef SVCDNS_PACK_H
#define SVCDNS_PACK_H

#include <stddef.h>
#include <string.h>

struct packer {
	unsigned char *base; /* NULL: the sizing pass */
	size_t off;
};

/* Reserves size bytes at the next multiple of align (a power of two). */
static inline void *pk_take(struct packer *p, size_t size, size_t align)
{
	p->off = (p->off + align - 1) & ~(align - 1);
	void *r = p->base ? p->base + p->off : NULL;
	p->off += size;
	return r;
}

/* Copies src[0..n) of size elt into the block; NULL when n is 0. */
static inline void *pk_array(struct packer *p, const void *src, size_t n, size_t elt, size_t align)
{
	if (!n)
		return NULL;
	void *d = pk_take(p, n * elt, align);
	if (d)
		memcpy(d, src, n * elt);
	return d;
}

/* A C string, or NULL for NULL. */
static inline char *pk_str(struct packer *p, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = pk_take(p, n, 1);
	if (d)
		memcpy(d, s, n);
	return d;
}

#endif
