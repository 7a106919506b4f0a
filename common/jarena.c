/* Parse-scoped allocation for jansson: the tagging that tells a scoped block
 * from a heap one, and the per-thread region (common/arena.h) scopes take
 * their blocks from. See jarena.h. */
#include "common/jarena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "common/arena.h"

/* Every block starts with a 16-byte header (alignment stays at 16) that says
 * where it came from, so that free can tell. */
#define TAG_HEAP  UINT64_C(0x4a48454150000001)
#define TAG_SCOPE UINT64_C(0x4a53434f50450002)
#define HDR	  16u

/* A region keeps its first chunk between scopes when it is small, so that a
 * thread decoding page after page allocates nothing; a big one (a whole
 * manifest file's tree) goes back to the system. Chunks keep doubling: one
 * file's tree may take hundreds of megabytes. */
#define CHUNK_MIN  ((size_t)256 << 10)
#define CHUNK_KEEP ((size_t)1 << 20)

static _Thread_local struct arena *t_region;
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
	if (!t_region && !(t_region = arena_new_sized(CHUNK_MIN, SIZE_MAX)))
		return NULL;
	uint64_t *h = arena_alloc_aligned(t_region, HDR + ((size + 15u) & ~(size_t)15u), 16);
	if (!h)
		return NULL;
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

void jarena_end(void)
{
	if (t_depth && --t_depth == 0 && t_region)
		arena_reset(t_region, CHUNK_KEEP);
}

void jarena_thread_release(void)
{
	if (!t_depth) {
		arena_free(t_region);
		t_region = NULL;
	}
}
