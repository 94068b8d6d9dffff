// Timing helpers shared by the C harnesses in scripts/perf.
#ifndef APUS_PERF_TIMING_H
#define APUS_PERF_TIMING_H

#include <time.h>

/// Seconds on the monotonic clock.
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/// Ascending order of doubles, for qsort (medians of timed calls).
static inline int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
