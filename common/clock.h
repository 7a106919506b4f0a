/* The process's one monotonic clock: the time every module measures
 * durations, deadlines and expiry with, read in one place so that they all
 * agree (the same clock as uv_hrtime() and libuv's timers, CLOCK_MONOTONIC).
 * Wall-clock time (log lines, HTTP dates) is not this module's.
 *
 * Owns: reading the monotonic clock. Must never: jump backwards, allocate,
 * lock or log. Threads: any, the query path included (a vDSO read, no
 * system call). Code whose time a test must control takes its time from its
 * caller (as resolver/cache.h does) or through an interface of its own, and
 * uses these functions only in its production implementation. */
#ifndef SVCDNS_CLOCK_H
#define SVCDNS_CLOCK_H

#include <stdint.h>

/* Nanoseconds since an arbitrary point before the process started. */
uint64_t clock_now_ns(void);
/* The same clock in milliseconds. */
uint64_t clock_now_ms(void);
/* Milliseconds from the coarse variant of the same clock: it lags by at most
 * one kernel tick (1-4 ms) and is cheaper, for per-query reads where a tick
 * does not matter (cache expiry). Never ahead of clock_now_ms(). */
uint64_t clock_now_ms_coarse(void);

#endif
