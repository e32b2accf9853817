/*
 * The bench programs' clock and sort order: they time this thread's CPU time, not the wall clock, so that two builds
 * compare fairly on a machine other work shares (runtimes/c/bench/README.md). Include after defining
 * _POSIX_C_SOURCE (clock_gettime).
 */
#ifndef SBIF_BENCH_THREAD_TIME_H
#define SBIF_BENCH_THREAD_TIME_H

#include <time.h>

/** This thread's CPU time in seconds. */
static inline double thread_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/** qsort's ascending order of doubles (for medians of timed samples). */
static inline int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
