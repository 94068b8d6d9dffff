// The packed GEMM kernel (AVX-512, or with `avx2` as argument the AVX2 one) with a bias +
// activation epilogue at the shapes of efficientnet_b0's expansions (SiLU) and the logistic pass
// alone, one thread: median and minimum over repeated calls on warm operands. The SiLU rows
// against the ReLU rows show what the logistic costs inside the epilogue;
// scripts/perf/activation-epilogue.sh builds this file against two source trees to compare a
// change.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apus_kernels.h"
#include "timing.h"

static int avx2;

static void run(long m, long n, long k, int activation, const char *name, int calls) {
    float *a = malloc(sizeof(float) * m * k), *bias = malloc(sizeof(float) * m);
    float *b = aligned_alloc(64, sizeof(float) * (k * n + 64)), *c = aligned_alloc(64, sizeof(float) * (m * n + 64));
    float *packed = aligned_alloc(64, sizeof(float) * ((m + 7) / 8 * 8 * k + 64));
    for (long i = 0; i < m * k; i++) a[i] = ((i * 7) % 13) * 0.05f - 0.3f;
    for (long i = 0; i < k * n; i++) b[i] = ((i * 5) % 11) * 0.1f - 0.5f;
    for (long i = 0; i < m; i++) bias[i] = 0.1f;
    apus_gemm_pack(a, k, m, k, packed);
    apus_gemm_epilogue epilogue = {bias, 0, 0, activation, 0, 6};
    double *t = malloc(sizeof(double) * calls);
    for (int r = 0; r < calls; r++) {
        double start = now();
        (avx2 ? apus_gemm_packed_avx2 : apus_gemm_packed_avx512)(packed, m, 0, k, m, n, b, n, c, n, 0, &epilogue);
        t[r] = now() - start;
    }
    qsort(t, calls, sizeof(double), compare);
    printf("| %ld × %ld × %ld | %s | %.1f | %.1f |\n", m, n, k, name, t[calls / 2] * 1e6, t[0] * 1e6);
    free(a); free(bias); free(b); free(c); free(packed); free(t);
}

static void logistic(int silu, int calls) {
    const long n = 4096;
    float *x = aligned_alloc(64, sizeof(float) * n);
    double best = 1e9;
    for (int r = 0; r < calls; r++) {
        for (long i = 0; i < n; i++) x[i] = (i % 200) * 0.1f - 10;
        double start = now();
        if (avx2) {
            apus_epilogue_avx2(x, 1, n, n, 0, 0, 0, silu ? APUS_GEMM_SILU : APUS_GEMM_SIGMOID, 0, 0);
        } else {
            apus_logistic_avx512(x, n, silu);
        }
        double t = now() - start;
        if (t < best) best = t;
    }
    printf("| logistic pass, 4096 floats in L1 | %s | ns per element, best: %.3f | |\n", silu ? "SiLU" : "sigmoid",
        best / n * 1e9);
    free(x);
}

int main(int argc, char **argv) {
    avx2 = argc > 1 && strcmp(argv[1], "avx2") == 0;
    printf("%s kernels\n", avx2 ? "AVX2" : "AVX-512");
    printf("| GEMM M × N × K | epilogue | median µs | min µs |\n|---|---|---|---|\n");
    const long shapes[][3] = {{144, 3136, 24}, {96, 12544, 16}, {240, 784, 40}, {672, 196, 112}, {1152, 49, 192}};
    for (int s = 0; s < 5; s++) {
        run(shapes[s][0], shapes[s][1], shapes[s][2], APUS_GEMM_RELU, "ReLU", 300);
        run(shapes[s][0], shapes[s][1], shapes[s][2], APUS_GEMM_SILU, "SiLU", 300);
    }
    logistic(0, 2000);
    logistic(1, 2000);
    return 0;
}
