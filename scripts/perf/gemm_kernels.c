// The packed AVX-512 GEMM kernel (Sources/CApusKernels) against OpenBLAS sgemm at the GEMM shapes
// of ResNet and MobileNetV2 convolutions, one thread, interleaved call by call. The weights cycle
// through 8 copies (more than the L2 holds) as they do in a model run; the kernel's weights are
// packed once beforehand, OpenBLAS packs them on every call as it must. Prints the median over
// 80 calls and the largest difference between the two results.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "apus_kernels.h"
#include "timing.h"

#define COPIES 8
#define CALLS 80

static void run(const char *name, long m, long n, long k) {
    float *a[COPIES], *packed[COPIES];
    for (int c = 0; c < COPIES; c++) {
        a[c] = aligned_alloc(64, sizeof(float) * m * k);
        for (long i = 0; i < m * k; i++) a[c][i] = ((i + c) % 7) * 0.1f - 0.3f;
        packed[c] = aligned_alloc(64, sizeof(float) * apus_gemm_packed_count(m, k));
        apus_gemm_pack(a[c], k, m, k, packed[c]);
    }
    float *b = aligned_alloc(64, sizeof(float) * k * n);
    float *c1 = aligned_alloc(64, sizeof(float) * m * n), *c2 = aligned_alloc(64, sizeof(float) * m * n);
    for (long i = 0; i < k * n; i++) b[i] = (i % 5) * 0.1f - 0.2f;
    double blas[CALLS], kernel[CALLS];
    for (int r = 0; r < CALLS; r++) {
        int c = r % COPIES;
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a[c], k, b, n, 0, c1, n);
        blas[r] = now() - t;
        t = now();
        apus_gemm_packed_avx512(packed[c], m, 0, k, m, n, b, n, c2, n, 0, 0);
        kernel[r] = now() - t;
    }
    qsort(blas, CALLS, sizeof(double), compare);
    qsort(kernel, CALLS, sizeof(double), compare);
    double worst = 0;
    for (long i = 0; i < m * n; i++) {
        double d = c1[i] > c2[i] ? c1[i] - c2[i] : c2[i] - c1[i];
        if (d > worst) worst = d;
    }
    double flop = 2.0 * m * n * k;
    printf("| %s | %ld×%ld×%ld | %.1f | %.1f | %.2f× | %.1g |\n", name, m, n, k, flop / blas[CALLS / 2] / 1e9,
        flop / kernel[CALLS / 2] / 1e9, blas[CALLS / 2] / kernel[CALLS / 2], worst);
    for (int c = 0; c < COPIES; c++) {
        free(a[c]);
        free(packed[c]);
    }
    free(b);
    free(c1);
    free(c2);
}

int main(void) {
    openblas_set_num_threads(1);
    printf("| layer | M×N×K | OpenBLAS GFLOP/s | packed kernel GFLOP/s | speed-up | max difference |\n");
    printf("|---|---|---|---|---|---|\n");
    run("resnet 7×7 stem (im2col)", 64, 12544, 147);
    run("resnet 3×3 at 56² (im2col)", 64, 3136, 576);
    run("resnet 3×3 at 28²", 128, 784, 1152);
    run("resnet 3×3 at 14²", 256, 196, 2304);
    run("resnet 3×3 at 7²", 512, 49, 4608);
    run("resnet50 1×1 at 56²", 256, 3136, 64);
    run("resnet50 1×1 at 14²", 1024, 196, 256);
    run("resnet50 1×1 at 7²", 2048, 49, 512);
    run("Winograd position, 56² × 64", 64, 196, 64);
    run("Winograd position, 14² × 256", 256, 16, 256);
    run("mobilenet_v2 1×1 at 112²", 96, 12544, 16);
    run("mobilenet_v2 1×1 at 14²", 576, 196, 96);
    run("mobilenet_v2 1×1 at 7²", 1280, 49, 320);
    return 0;
}
