// Round trip of one cache line between the first two CPUs this process may use: one thread
// writes a counter, the other waits for it and answers, `rounds` times. Prints nanoseconds per
// round trip. On the 2-vCPU VMs this project is measured on it is either about 100 ns or about
// 400 ns, depending on where the host has placed the two vCPUs, and two-thread inference is
// about 25 % slower in the 400 ns placement (Docs/performance.md).
//
//   cc -O2 -o core_latency core_latency.c -lpthread && ./core_latency [rounds]
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long counter;
static long rounds = 50000;
static int cpus[2];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *unused) {
    (void)unused;
    pin(cpus[1]);
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&counter, memory_order_acquire) != 2 * i + 1) {}
        atomic_store_explicit(&counter, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atol(argv[1]);
    if (rounds < 1) rounds = 1;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
    int found = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++) {
        if (CPU_ISSET(cpu, &allowed)) cpus[found++] = cpu;
    }
    if (found < 2) {
        printf("{\"round_trip_ns\": null}\n");
        return 0;
    }
    pin(cpus[0]);
    pthread_t thread;
    if (pthread_create(&thread, NULL, answer, NULL) != 0) return 1;
    double start = now();
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&counter, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&counter, memory_order_acquire) != 2 * i + 2) {}
    }
    double seconds = now() - start;
    pthread_join(thread, NULL);
    printf("{\"round_trip_ns\": %.1f, \"cpus\": [%d, %d]}\n", seconds / (double)rounds * 1e9, cpus[0], cpus[1]);
    return 0;
}
