// The OpenBLAS sgemm reference of the comparison: plain cblas_sgemm calls (row-major, C = A·B)
// at given shapes, on OpenBLAS's own threads, timed with CLOCK_MONOTONIC.
//
//   sgemm_ref THREADS REPEATS M,N,K [M,N,K ...]
//
// Prints one JSON object: per shape the best and median seconds of REPEATS calls (after one
// untimed call), plus the OpenBLAS core and thread count. OpenBLAS is loaded with dlopen so
// that OPENBLAS_CORETYPE (set by the caller to the core Apus runs) takes effect exactly as it
// does for Apus.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*sgemm_fn)(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS REPEATS M,N,K [M,N,K ...]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    int repeats = atoi(argv[2]);
    if (threads < 1 || repeats < 1) {
        fprintf(stderr, "THREADS and REPEATS must be positive\n");
        return 2;
    }
    char value[16];
    snprintf(value, sizeof value, "%d", threads);
    setenv("OPENBLAS_NUM_THREADS", value, 1);
    void *handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!handle) handle = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf(stderr, "cannot load OpenBLAS: %s\n", dlerror());
        return 1;
    }
    sgemm_fn sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    set_threads_fn set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    corename_fn corename = (corename_fn)dlsym(handle, "openblas_get_corename");
    if (!sgemm) {
        fprintf(stderr, "no cblas_sgemm\n");
        return 1;
    }
    if (set_threads) set_threads(threads);

    printf("{\"core\": \"%s\", \"threads\": %d, \"shapes\": [", corename ? corename() : "unknown", threads);
    double *times = calloc((size_t)repeats, sizeof(double));
    for (int arg = 3; arg < argc; arg++) {
        long m, n, k;
        if (sscanf(argv[arg], "%ld,%ld,%ld", &m, &n, &k) != 3 || m < 1 || n < 1 || k < 1 || m * k > (1L << 28) ||
            k * n > (1L << 28) || m * n > (1L << 28)) {
            fprintf(stderr, "bad shape '%s' (want M,N,K)\n", argv[arg]);
            return 2;
        }
        float *a = aligned_alloc(64, (size_t)(m * k * 4 + 64) / 64 * 64);
        float *b = aligned_alloc(64, (size_t)(k * n * 4 + 64) / 64 * 64);
        float *c = aligned_alloc(64, (size_t)(m * n * 4 + 64) / 64 * 64);
        for (long i = 0; i < m * k; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (long i = 0; i < k * n; i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        memset(c, 0, (size_t)(m * n * 4));
        // CblasRowMajor = 101, CblasNoTrans = 111.
        sgemm(101, 111, 111, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b, (int)n, 0.0f, c, (int)n);
        for (int r = 0; r < repeats; r++) {
            double start = now();
            sgemm(101, 111, 111, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b, (int)n, 0.0f, c, (int)n);
            times[r] = now() - start;
        }
        qsort(times, (size_t)repeats, sizeof(double), compare_doubles);
        double median = repeats % 2 ? times[repeats / 2] : (times[repeats / 2 - 1] + times[repeats / 2]) / 2;
        printf("%s{\"m\": %ld, \"n\": %ld, \"k\": %ld, \"best_s\": %.9f, \"median_s\": %.9f, \"gflops_median\": %.3f}",
               arg > 3 ? ", " : "", m, n, k, times[0], median, 2.0 * m * n * k / median / 1e9);
        free(a);
        free(b);
        free(c);
    }
    printf("]}\n");
    free(times);
    return 0;
}
