// OpenBLAS's sgemm kernel on weights packed once (CApusKernels/blas_packed.c, what
// BLASPackedMatrix runs) against cblas_sgemm, which packs the weights on every call, and against
// the project's AVX2 packed kernel (gemm_avx2.c), at the GEMM shapes of ResNet and MobileNetV2
// convolutions and Winograd products on CPUs without AVX-512. One thread, the three interleaved
// call by call (rotating which goes first); the weights cycle through 8 copies (more than the L3
// holds for the large layers), as they do in a model run. Prints medians and best GFLOP/s over
// 160 calls each, and the largest difference between OpenBLAS's two results.
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "apus_kernels.h"
#include "timing.h"

#define COPIES 8
#define CALLS 160

static apus_blas_kernels kernels;

static void run(const char *name, long m, long n, long k) {
    float *w[COPIES], *packed[COPIES], *panels[COPIES];
    for (int c = 0; c < COPIES; c++) {
        w[c] = aligned_alloc(64, sizeof(float) * m * k);
        for (long i = 0; i < m * k; i++) w[c][i] = ((i * 7 + c) % 13) * 0.1f - 0.6f;
        packed[c] = aligned_alloc(64, sizeof(float) * m * k);
        apus_blas_pack_weights(&kernels, w[c], m, k, k, m, 0, packed[c]);
        panels[c] = aligned_alloc(64, sizeof(float) * apus_gemm_packed_count(m, k));
        apus_gemm_pack(w[c], k, m, k, panels[c]);
    }
    float *x = aligned_alloc(64, sizeof(float) * k * n);
    float *y1 = aligned_alloc(64, sizeof(float) * m * n), *y2 = aligned_alloc(64, sizeof(float) * m * n);
    float *y3 = aligned_alloc(64, sizeof(float) * m * n);
    for (long i = 0; i < k * n; i++) x[i] = ((i * 3) % 11) * 0.1f - 0.5f;
    static double blas[CALLS], prepacked[CALLS], avx2[CALLS];
    for (int r = 0; r < CALLS; r++) {
        int c = r % COPIES;
        for (int j = 0; j < 3; j++) {
            double t = now();
            if ((j + r) % 3 == 0) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, w[c], k, x, n, 0, y1, n);
                blas[r] = now() - t;
            } else if ((j + r) % 3 == 1) {
                apus_blas_packed_gemm(&kernels, packed[c], m, 0, m, k, n, x, n, y2, n);
                prepacked[r] = now() - t;
            } else {
                apus_gemm_packed_avx2(panels[c], m, 0, k, m, n, x, n, y3, n, 0, 0);
                avx2[r] = now() - t;
            }
        }
    }
    qsort(blas, CALLS, sizeof(double), compare);
    qsort(prepacked, CALLS, sizeof(double), compare);
    qsort(avx2, CALLS, sizeof(double), compare);
    double worst = 0;
    for (long i = 0; i < m * n; i++) {
        double d = y1[i] > y2[i] ? y1[i] - y2[i] : y2[i] - y1[i];
        if (d > worst) worst = d;
    }
    double flop = 2.0 * m * n * k;
    printf("| %s | %ld×%ld×%ld | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.2f× | %.1g |\n", name, m, n, k,
           flop / blas[CALLS / 2] / 1e9, flop / blas[0] / 1e9, flop / prepacked[CALLS / 2] / 1e9,
           flop / prepacked[0] / 1e9, flop / avx2[CALLS / 2] / 1e9, flop / avx2[0] / 1e9,
           blas[CALLS / 2] / prepacked[CALLS / 2], worst);
    for (int c = 0; c < COPIES; c++) {
        free(w[c]);
        free(packed[c]);
        free(panels[c]);
    }
    free(x);
    free(y1);
    free(y2);
    free(y3);
}

int main(void) {
    openblas_set_num_threads(1);
    void *handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    const char *core = getenv("OPENBLAS_CORETYPE");
    char name[64];
    snprintf(name, sizeof name, "sgemm_kernel_%s", core);
    kernels.kernel = (apus_blas_kernel_fn)dlsym(handle, name);
    snprintf(name, sizeof name, "sgemm_oncopy_%s", core);
    kernels.pack_weights = (apus_blas_copy_fn)dlsym(handle, name);
    snprintf(name, sizeof name, "sgemm_itcopy_%s", core);
    kernels.pack_columns = (apus_blas_copy_fn)dlsym(handle, name);
    if (!kernels.kernel || !kernels.pack_weights || !kernels.pack_columns) {
        fprintf(stderr, "OpenBLAS exports no sgemm kernel for core %s\n", core);
        return 1;
    }
    printf("| layer | M×N×K | cblas_sgemm GFLOP/s median (best) | OpenBLAS kernel, prepacked | AVX2 packed kernel "
           "| prepacked ÷ cblas speed-up | max difference |\n");
    printf("|---|---|---|---|---|---|---|\n");
    run("resnet50 3×3 at 7²", 512, 49, 4608);
    run("resnet50 1×1 at 7², 1024 → 2048", 2048, 49, 1024);
    run("resnet50 1×1 at 7², 512 → 2048", 2048, 49, 512);
    run("resnet50 1×1 at 7², 2048 → 512", 512, 49, 2048);
    run("resnet50 1×1 at 14²", 1024, 196, 256);
    run("resnet50 3×3 s2 at 14²", 256, 196, 2304);
    run("resnet50 3×3 s2 at 28²", 128, 784, 1152);
    run("resnet50 1×1 at 56²", 256, 3136, 64);
    run("mobilenet_v2 1×1 at 7², 320 → 1280", 1280, 49, 320);
    run("mobilenet_v2 1×1 at 7², 960 → 320", 320, 49, 960);
    run("mobilenet_v2 1×1 at 7², 160 → 960", 960, 49, 160);
    run("mobilenet_v2 1×1 at 14², 96 → 576", 576, 196, 96);
    run("mobilenet_v2 1×1 at 14², 576 → 96", 96, 196, 576);
    run("mobilenet_v2 1×1 at 56², 24 → 144", 144, 3136, 24);
    run("mobilenet_v2 1×1 at 112², 16 → 96", 96, 12544, 16);
    run("mobilenet_v2 1×1 at 56², 144 → 24", 24, 3136, 144);
    run("Winograd product, 56² × 64", 64, 196, 64);
    run("Winograd product, 28² × 128", 128, 49, 128);
    run("Winograd product, 14² × 256", 256, 16, 256);
    return 0;
}
