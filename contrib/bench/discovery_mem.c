/* The discovery side's own memory: loads a manifest directory (as memory.py
 * generates it) into a store, builds the view, and prints the heap bytes in
 * use (mallinfo2) after each step, so that store and view are measured apart
 * from the snapshot and from what the allocator keeps but does not use.
 *
 *   cc -O2 -I. -o /tmp/discovery_mem contrib/bench/discovery_mem.c \
 *      BUILD/libsvcdns_core.a $(pkg-config --libs ldns libuv libcurl jansson yaml-0.1 \
 *      libmicrohttpd libnftables libnetfilter_conntrack) -lpthread -lm
 *   /tmp/discovery_mem [--per-object] DIR/manifests
 *
 * --per-object stores every object as a source of its own, as the API source
 * does (its source name is the object's kind/namespace/name). */
#define _GNU_SOURCE /* asprintf */
#include <dirent.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "discovery/manifest.h"
#include "discovery/model.h"
#include "discovery/store_iter.h"

static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	bool per_object = argc == 3 && strcmp(argv[1], "--per-object") == 0;
	if (argc != 2 && !per_object) {
		fprintf(stderr, "usage: discovery_mem [--per-object] MANIFEST_DIR\n");
		return 2;
	}
	const char *dir = argv[argc - 1];
	log_set_level(LOG_WARN);
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		return 1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
		}
		if (asprintf(&names[n++], "%s/%s", dir, de->d_name) < 0)
			return 1;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_name);

	struct net_cidr svc_cidr, pod_cidr;
	net_cidr_parse("10.96.0.0/12", &svc_cidr);
	net_cidr_parse("10.244.0.0/16", &pod_cidr);
	size_t base = heap_used();
	struct model_store *st = model_store_new();
	struct model_alloc *alloc = model_alloc_new(&svc_cidr, &pod_cidr);
	size_t peak = 0;
	for (size_t i = 0; i < n; i++) {
		struct manifest_result r = {0};
		if (manifest_read_file(names[i], &r) == 0) {
			size_t h = heap_used();
			if (h > peak)
				peak = h;
			if (per_object) {
				for (size_t k = 0; k < r.n_objs; k++) {
					char src[512];
					snprintf(src, sizeof(src), "%s/%s/%s",
						 model_kind_name(r.objs[k].kind),
						 model_object_ns(&r.objs[k]),
						 model_object_name(&r.objs[k]));
					model_store_replace(st, src, &r.objs[k], 1);
				}
			} else {
				model_store_replace(st, names[i], r.objs, r.n_objs);
			}
			r.n_objs = 0;
		}
		manifest_result_free(&r);
	}
	size_t loaded = heap_used();
	/* The packed objects themselves, by kind; the rest of the store is its
	 * bookkeeping (indexes, per-source records). */
	for (int k = 0; k < KIND_COUNT; k++) {
		struct model_store_iter it;
		const struct model_object *o;
		size_t bytes = 0, count = 0;
		model_store_iter_init(&it, st, (enum model_kind)k);
		while ((o = model_store_iter_next(&it))) {
			bytes += malloc_usable_size(o->u.svc) + sizeof(size_t);
			count++;
		}
		if (count)
			printf("  %-13s %7zu objects %8.1f MiB (%zu bytes each)\n",
			       model_kind_name((enum model_kind)k), count, (double)bytes / 1048576,
			       bytes / count);
	}
	struct model_view v;
	/* As the server does: the update also clears the store's change record. */
	if (model_view_update(st, alloc, NULL, &v)) {
		fprintf(stderr, "view build failed\n");
		return 1;
	}
	size_t after_view = heap_used();
	size_t eps = 0;
	for (size_t i = 0; i < v.n_svcs; i++)
		eps += v.svcs[i].n_eps;
	printf("%zu services, %zu endpoints, %zu files\n", v.n_svcs, eps, n);
	model_view_free(&v);
	size_t store = heap_used() - base;
	printf("store  %8.1f MiB (with its change record %.1f MiB, peak while loading %.1f MiB)\n",
	       (double)store / 1048576, (double)(loaded - base) / 1048576,
	       (double)(peak - base) / 1048576);
	printf("view   %8.1f MiB\n", (double)(after_view - base - store) / 1048576);
	printf("total  %8.1f MiB\n", (double)(after_view - base) / 1048576);
	model_alloc_free(alloc);
	model_store_free(st);
	printf("left   %8.1f MiB after freeing both\n", (double)(heap_used() - base) / 1048576);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}
