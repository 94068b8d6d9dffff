// What the two vCPUs cost each other, in three probes (Docs/performance.md, "Two threads when the
// vCPUs are far apart"). Run it next to `Benchmarks/compare/core_latency.c`, which tells the
// placement (about 100 ns round trip near, 400–700 ns far):
//
//   cc -O2 -mavx512f scripts/perf/cross_core.c -o /tmp/cross_core -lpthread && /tmp/cross_core
//
// - stream: CPU 0 reads, then writes, 1 MB that CPU 1 wrote last, against 1 MB it wrote itself;
// - shared: both CPUs read the same 14 MB at the same time (every thread reading all weights);
// - handoff: CPU 0 hands CPU 1 a job of 10 µs of register-only arithmetic and does the same work
//   itself, 20000 times, like a parallel region of one layer.
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "timing.h"

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static volatile float sink;

static void write_all(float *p, long n, float v) {
    for (long i = 0; i < n; i += 16) _mm512_storeu_ps(p + i, _mm512_set1_ps(v));
}

static float read_all(const float *p, long n) {
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 32) {
        a = _mm512_add_ps(a, _mm512_loadu_ps(p + i));
        b = _mm512_add_ps(b, _mm512_loadu_ps(p + i + 16));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

// One request word: the other thread waits for a new value, does its part, and answers with -value.
static _Alignas(64) atomic_long request;
static _Alignas(64) atomic_long answer;

// ---- stream ----
static float *stream_buffer;
static const long stream_floats = 1L << 18;  // 1 MB

static void *stream_writer(void *unused) {
    (void)unused;
    pin(1);
    for (long seen = 0;;) {
        long r;
        while ((r = atomic_load(&request)) == seen) {}
        if (r < 0) return NULL;
        seen = r;
        write_all(stream_buffer, stream_floats, (float)r);
        atomic_store(&answer, r);
    }
}

static void probe_stream(void) {
    stream_buffer = aligned_alloc(64, stream_floats * sizeof(float));
    memset(stream_buffer, 0, stream_floats * sizeof(float));
    pthread_t thread;
    pthread_create(&thread, NULL, stream_writer, NULL);
    const int rounds = 200;
    double readLocal = 0, readRemote = 0, writeLocal = 0, writeRemote = 0;
    long r = 0;
    for (int i = 0; i < rounds; i++) {
        atomic_store(&request, ++r);
        while (atomic_load(&answer) != r) {}
        double t = now();
        sink += read_all(stream_buffer, stream_floats);
        readRemote += now() - t;
        atomic_store(&request, ++r);
        while (atomic_load(&answer) != r) {}
        t = now();
        write_all(stream_buffer, stream_floats, (float)i);
        writeRemote += now() - t;
        t = now();
        sink += read_all(stream_buffer, stream_floats);
        readLocal += now() - t;
        t = now();
        write_all(stream_buffer, stream_floats, (float)i + 1);
        writeLocal += now() - t;
    }
    atomic_store(&request, -1);
    pthread_join(thread, NULL);
    printf(
        "stream 1 MB: read %.1f µs written by this CPU, %.1f by the other; write %.1f / %.1f\n",
        readLocal / rounds * 1e6, readRemote / rounds * 1e6, writeLocal / rounds * 1e6, writeRemote / rounds * 1e6);
}

// ---- shared ----
static float *shared_buffer;
static const long shared_floats = 14L << 18;  // 14 MB
static atomic_int shared_barrier;
static double shared_time[2];

static void *shared_reader(void *who) {
    const int cpu = (int)(long)who;
    pin(cpu);
    const int passes = 30;
    double total = 0;
    for (int p = 0; p < passes; p++) {
        atomic_fetch_add(&shared_barrier, 1);
        while (atomic_load(&shared_barrier) < 2 * (p + 1)) {}
        double t = now();
        sink += read_all(shared_buffer, shared_floats);
        if (p > 0) total += now() - t;
    }
    shared_time[cpu] = total / (passes - 1);
    return NULL;
}

static void probe_shared(void) {
    shared_buffer = aligned_alloc(64, shared_floats * sizeof(float));
    for (long i = 0; i < shared_floats; i++) shared_buffer[i] = 1;
    pthread_t thread;
    pthread_create(&thread, NULL, shared_reader, (void *)1);
    shared_reader((void *)0);
    pthread_join(thread, NULL);
    printf("shared 14 MB read by both at once: %.0f µs on CPU 0, %.0f on CPU 1\n", shared_time[0] * 1e6,
        shared_time[1] * 1e6);
}

// ---- handoff ----
static long work_iterations;

static float work(void) {
    __m512 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm512_set1_ps((float)j);
    const __m512 w = _mm512_set1_ps(1.0001f);
    for (long i = 0; i < work_iterations; i++) {
        for (int j = 0; j < 8; j++) a[j] = _mm512_fmadd_ps(w, a[j], a[j]);
    }
    __m512 s = a[0];
    for (int j = 1; j < 8; j++) s = _mm512_add_ps(s, a[j]);
    return _mm512_reduce_add_ps(s);
}

static void *handoff_worker(void *unused) {
    (void)unused;
    pin(1);
    for (long seen = 0;;) {
        long r;
        while ((r = atomic_load_explicit(&request, memory_order_acquire)) == seen) {}
        if (r < 0) return NULL;
        seen = r;
        sink += work();
        atomic_store_explicit(&answer, r, memory_order_release);
    }
}

static void probe_handoff(void) {
    const double target = 10e-6;
    work_iterations = 1000;
    double t = now();
    for (int i = 0; i < 1000; i++) sink += work();
    work_iterations = (long)(work_iterations * target / ((now() - t) / 1000));
    t = now();
    for (int i = 0; i < 2000; i++) sink += work();
    const double alone = (now() - t) / 2000;
    atomic_store(&request, 0);
    atomic_store(&answer, 0);
    pthread_t thread;
    pthread_create(&thread, NULL, handoff_worker, NULL);
    const long jobs = 20000;
    for (long j = 1; j <= jobs + 200; j++) {
        if (j == 201) t = now();
        atomic_store_explicit(&request, j, memory_order_release);
        sink += work();
        while (atomic_load_explicit(&answer, memory_order_acquire) != j) {}
    }
    const double perJob = (now() - t) / jobs;
    atomic_store(&request, -1);
    pthread_join(thread, NULL);
    printf("handoff: %.2f µs per job of %.2f µs work on each CPU\n", perJob * 1e6, alone * 1e6);
}

int main(void) {
    pin(0);
    probe_stream();
    atomic_store(&request, 0);
    atomic_store(&answer, 0);
    probe_shared();
    probe_handoff();
    return 0;
}
