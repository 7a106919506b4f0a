/* The region allocator's chunks: making a region, adding a chunk when the
 * current one is full, and giving chunks back. The pointer bump itself is
 * inline in arena.h. */
#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>

#define FIRST_DEFAULT ((size_t)8 << 10)
#define MAX_DEFAULT   ((size_t)256 << 10)

struct arena *arena_new_sized(size_t first, size_t max)
{
	struct arena *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->first = first ? first : FIRST_DEFAULT;
	a->max = max < a->first ? a->first : max;
	a->refs = 1;
	return a;
}

struct arena *arena_new(void)
{
	return arena_new_sized(FIRST_DEFAULT, MAX_DEFAULT);
}

void *arena_alloc_chunk(struct arena *a, size_t size, size_t align)
{
	(void)align; /* a chunk's data is aligned for every allowed `align` */
	if (size > SIZE_MAX / 2)
		return NULL;
	/* Each chunk twice the one before, so that the count of chunks grows
	 * with the logarithm of the bytes until `max`; whatever the current
	 * chunk has left is abandoned (blocks are small next to a chunk). */
	size_t next = a->first;
	if (a->head)
		next = a->head->cap > a->max / 2 ? a->max : a->head->cap * 2;
	if (next > a->max)
		next = a->max;
	size_t cap = size > next ? size : next;
	struct arena_chunk *c = malloc(sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->cap = cap;
	c->used = size;
	c->next = a->head;
	a->head = c;
	a->total += sizeof(*c) + cap;
	return c->data;
}

void arena_reset(struct arena *a, size_t keep)
{
	struct arena_chunk *c = a->head;
	a->head = NULL;
	a->total = 0;
	while (c) {
		struct arena_chunk *next = c->next;
		if (!next && c->cap <= keep) {
			c->used = 0;
			a->head = c;
			a->total = sizeof(*c) + c->cap;
		} else {
			free(c);
		}
		c = next;
	}
}

void arena_free(struct arena *a)
{
	if (!a)
		return;
	arena_reset(a, 0);
	free(a);
}

void arena_retain(struct arena *a)
{
	a->refs++;
}

void arena_release(struct arena *a)
{
	if (a && --a->refs == 0)
		arena_free(a);
}

size_t arena_bytes(const struct arena *a)
{
	return a->total;
}
