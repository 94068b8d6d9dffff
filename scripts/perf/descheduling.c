// How often the host takes the vCPUs away: one thread pinned to each CPU reads the clock in a loop
// for `seconds` (default 10) and counts the gaps between consecutive reads by size. A gap is time
// the thread did not run (an interrupt, or the hypervisor running something else on that core).
// Gaps of a millisecond or more are what push a 3 ms inference over 1.3 × its median
// (Docs/performance.md, "p99 and the host").
//
//   cc -O2 scripts/perf/descheduling.c -o /tmp/descheduling -lpthread && /tmp/descheduling 10
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "timing.h"

static double seconds = 10;

static void *watch(void *argument) {
    const int cpu = (int)(long)argument;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    const double limits[] = {5e-6, 50e-6, 500e-6, 1e-3, 5e-3};
    long counts[5] = {0};
    double lost = 0, worst = 0;
    const double start = now();
    double last = start;
    for (;;) {
        const double t = now(), gap = t - last;
        last = t;
        if (gap > limits[0]) {
            lost += gap;
            if (gap > worst) worst = gap;
            for (int i = 0; i < 5; i++) counts[i] += gap > limits[i];
        }
        if (t - start > seconds) break;
    }
    printf(
        "cpu%d over %.0f s: gaps >5 µs %ld, >50 µs %ld, >0.5 ms %ld, >1 ms %ld, >5 ms %ld; %.1f ms lost (%.2f %%), "
        "worst %.2f ms\n",
        cpu, seconds, counts[0], counts[1], counts[2], counts[3], counts[4], lost * 1e3, lost / seconds * 100,
        worst * 1e3);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) seconds = atof(argv[1]);
    pthread_t other;
    pthread_create(&other, NULL, watch, (void *)1);
    watch((void *)0);
    pthread_join(other, NULL);
    return 0;
}
