/* Parse-scoped allocation for jansson. See jarena.h. */
#include "common/jarena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

/* Every block starts with a 16-byte header (alignment stays at 16) that says
 * where it came from, so that free can tell. */
#define TAG_HEAP  UINT64_C(0x4a48454150000001)
#define TAG_SCOPE UINT64_C(0x4a53434f50450002)
#define HDR	  16u

/* A region keeps its first chunk between scopes when it is small, so that a
 * thread decoding page after page allocates nothing; a big one (a whole
 * manifest file's tree) goes back to the system. */
#define CHUNK_MIN  ((size_t)256 << 10)
#define CHUNK_KEEP ((size_t)1 << 20)

struct chunk {
	struct chunk *next;
	size_t cap, used;
	_Alignas(16) unsigned char data[];
};

static _Thread_local struct chunk *t_head;
static _Thread_local unsigned t_depth;

static void *heap_alloc(size_t size)
{
	if (size > SIZE_MAX - HDR)
		return NULL;
	uint64_t *h = malloc(HDR + size);
	if (!h)
		return NULL;
	h[0] = TAG_HEAP;
	return (unsigned char *)h + HDR;
}

void *jarena_malloc(size_t size)
{
	if (!t_depth)
		return heap_alloc(size);
	if (size > SIZE_MAX / 2)
		return NULL;
	size_t need = HDR + ((size + 15u) & ~(size_t)15u);
	struct chunk *c = t_head;
	if (!c || c->cap - c->used < need) {
		size_t cap = c ? c->cap * 2 : CHUNK_MIN;
		if (cap < need)
			cap = need;
		struct chunk *n = malloc(sizeof(*n) + cap);
		if (!n)
			return NULL;
		n->cap = cap;
		n->used = 0;
		n->next = c;
		t_head = c = n;
	}
	uint64_t *h = (uint64_t *)(void *)(c->data + c->used);
	c->used += need;
	h[0] = TAG_SCOPE;
	return (unsigned char *)h + HDR;
}

void jarena_free(void *p)
{
	if (!p)
		return;
	uint64_t *h = (uint64_t *)(void *)((unsigned char *)p - HDR);
	if (h[0] == TAG_HEAP)
		free(h);
	/* TAG_SCOPE: freed with its region when the scope ends */
}

void jarena_install(void)
{
	json_set_alloc_funcs(jarena_malloc, jarena_free);
}

void jarena_begin(void)
{
	t_depth++;
}

static void release(bool keep_small)
{
	struct chunk *c = t_head;
	t_head = NULL;
	while (c) {
		struct chunk *next = c->next;
		/* the first chunk allocated is the last in the list */
		if (keep_small && !next && c->cap <= CHUNK_KEEP) {
			c->used = 0;
			t_head = c;
		} else {
			free(c);
		}
		c = next;
	}
}

void jarena_end(void)
{
	if (t_depth && --t_depth == 0)
		release(true);
}

void jarena_thread_release(void)
{
	if (!t_depth)
		release(false);
}
