/* A region allocator: many small blocks carved one after the other from
 * chunks of the system heap, and given back all at once (arena_free, or
 * arena_reset to use the region again). The snapshot builder keeps every
 * published node and answer in regions; the JSON parser's scopes
 * (common/jarena.h) take their values from one per thread.
 *
 * Owns: the chunks and how they grow. Must never: free a single block, lock,
 * or log. A region belongs to one thread at a time (its owner's); the counted
 * references are for one thread too (the control thread, which builds and
 * frees snapshots). The struct is in this header only so that the common case
 * of arena_alloc_aligned, a pointer bump, is inline: its fields are arena.c's. */
#ifndef SVCDNS_ARENA_H
#define SVCDNS_ARENA_H

#include <stddef.h>
#include <string.h>

#define ARENA_ALIGN_MAX 16 /* every chunk's data starts at this alignment */

struct arena_chunk {
	struct arena_chunk *next; /* older chunks */
	size_t used, cap;
	_Alignas(ARENA_ALIGN_MAX) unsigned char data[];
};

struct arena {
	struct arena_chunk *head; /* the chunk blocks come from; the first made is last */
	size_t total;		  /* bytes taken from the heap, chunk headers included */
	size_t first, max;	  /* chunk sizes: the first, and where doubling stops */
	unsigned refs;
};

/* A region whose chunks double from 8 KiB to 256 KiB: small when it holds
 * one Service's records, few chunks when it holds a hundred thousand. */
struct arena *arena_new(void);
/* Chunks from `first` bytes doubling up to `max` (a block larger than that
 * gets a chunk of its own size). NULL when out of memory. */
struct arena *arena_new_sized(size_t first, size_t max);

/* Frees every chunk and the region, whatever its references. NULL is fine. */
void arena_free(struct arena *a);

/* Snapshots built incrementally share the regions of older builds: a region
 * starts with one reference, and the last release frees it. */
void arena_retain(struct arena *a);
void arena_release(struct arena *a);

/* Empties the region: every block is given back. The first chunk stays
 * (empty) when it holds at most `keep` bytes, so that a region filled and
 * emptied again and again costs no malloc once warm. */
void arena_reset(struct arena *a, size_t keep);

/* Bytes the region holds from the heap. */
size_t arena_bytes(const struct arena *a);

/* The out-of-line part of arena_alloc_aligned: a new chunk. */
void *arena_alloc_chunk(struct arena *a, size_t size, size_t align);

/* `size` bytes at a multiple of `align` (a power of two up to
 * ARENA_ALIGN_MAX), uninitialised; NULL when out of memory. */
static inline void *arena_alloc_aligned(struct arena *a, size_t size, size_t align)
{
	struct arena_chunk *c = a->head;
	if (c) {
		size_t at = (c->used + align - 1) & ~(align - 1);
		if (at <= c->cap && c->cap - at >= size) {
			c->used = at + size;
			return c->data + at;
		}
	}
	return arena_alloc_chunk(a, size, align);
}

/* `size` bytes, 8-byte aligned and zeroed. */
static inline void *arena_alloc(struct arena *a, size_t size)
{
	void *p = arena_alloc_aligned(a, size, 8);
	if (p)
		memset(p, 0, size);
	return p;
}

#endif
