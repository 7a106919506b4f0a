/* What every fuzz target shares: the libFuzzer entry points (declared here so
 * that -Wmissing-prototypes holds without libFuzzer's headers) and the check
 * macro that turns a broken invariant into a crash libFuzzer can report. */
#ifndef SVCDNS_FUZZ_H
#define SVCDNS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once before the first input, by libFuzzer or by replay_main.c. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
/* One input; returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant must stop the run where it happened: abort() is a crash
 * to libFuzzer (input saved) and a failed test to ctest. */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
