/* Parse-scoped allocation for jansson: inside a scope every JSON value comes
 * from a per-thread region that is reset in one step when the scope ends, so
 * decoding a list page or a manifest file costs no malloc/free per node (they
 * were a fifth of loading 100 000 Services).
 *
 * Owns: the allocator functions handed to json_set_alloc_funcs, the tag that
 * tells a scoped block from a heap one, and one region per thread (a
 * common/arena.h region: its chunks are that module's). Any thread may parse;
 * each uses its own region.
 * Must never: be used for a JSON value that outlives its scope. A scope is
 * one function that parses, reads the tree into its own structures and
 * releases the tree before jarena_end. */
#ifndef SVCDNS_JARENA_H
#define SVCDNS_JARENA_H

#include <stddef.h>

/* Hands jansson these allocators. Called once, first thing in main(), before
 * any JSON value exists; without it scopes change nothing (the tests). */
void jarena_install(void);

/* Scopes nest; the region of the calling thread is reset when the outermost
 * one ends. */
void jarena_begin(void);
void jarena_end(void);

/* Releases the calling thread's region (a thread that is about to end). */
void jarena_thread_release(void);

/* For tests: the allocator functions themselves. */
void *jarena_malloc(size_t size);
void jarena_free(void *p);

#endif
