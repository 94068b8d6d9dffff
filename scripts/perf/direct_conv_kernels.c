// The AVX-512 direct convolution kernels (Sources/CApusKernels/direct_conv.c) at the depthwise and
// stem shapes of MobileNetV2, EfficientNet-B0 and ResNet, one thread: best of 100 calls over all
// planes of one image (bias + Relu6 epilogue), in microseconds and GFLOP/s.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "apus_kernels.h"
#include "timing.h"

/// `inputs` = 0: depthwise over `outputs` channels; otherwise the stem kernel.
static void run(long inputs, long outputs, long size, long kernel, long stride) {
    long pad = kernel / 2, outSize = (size + 2 * pad - kernel) / stride + 1;
    apus_depthwise_geometry g = {size, size, outSize, outSize, kernel, stride, pad, pad};
    long planesIn = inputs ? inputs : outputs;
    float *in = aligned_alloc(64, sizeof(float) * (planesIn * size * size + 64));
    float *out = aligned_alloc(64, sizeof(float) * (outputs * outSize * outSize + 64));
    long weightCount = outputs * (inputs ? inputs : 1) * kernel * kernel;
    float *w = malloc(sizeof(float) * weightCount), *b = malloc(sizeof(float) * outputs);
    for (long i = 0; i < planesIn * size * size; i++) in[i] = (i % 17) * 0.1f - 0.8f;
    for (long i = 0; i < weightCount; i++) w[i] = (i % 7) * 0.01f;
    for (long i = 0; i < outputs; i++) b[i] = 0.5f;
    apus_gemm_epilogue e = {b, 0, 0, APUS_GEMM_CLIP, 0, 6};
    void *table = aligned_alloc(64, (apus_depthwise_table_size(&g) + 63) / 64 * 64);
    apus_depthwise_prepare(&g, table);
    double best = 1e9;
    for (int r = 0; r < 100; r++) {
        double t = now();
        if (inputs) apus_direct_conv_avx512(&g, table, in, inputs, w, 0, outputs, out, &e);
        else apus_depthwise_avx512(&g, table, in, w, outputs, 0, outputs, out, &e);
        t = now() - t;
        if (t < best) best = t;
    }
    double flop = 2.0 * outputs * (inputs ? inputs : 1) * outSize * outSize * kernel * kernel;
    printf("| %s | %ld→%ld ch, %ld², %ld×%ld stride %ld | %.1f | %.1f |\n", inputs ? "stem" : "depthwise",
        inputs ? inputs : outputs, outputs, size, kernel, kernel, stride, best * 1e6, flop / best * 1e-9);
    free(in); free(out); free(w); free(b); free(table);
}

int main(void) {
    printf("| kernel | shape | µs | GFLOP/s |\n|---|---|---|---|\n");
    run(0, 32, 112, 3, 1);
    run(0, 96, 112, 3, 2);
    run(0, 144, 56, 3, 1);
    run(0, 144, 56, 3, 2);
    run(0, 192, 28, 3, 1);
    run(0, 192, 28, 3, 2);
    run(0, 144, 56, 5, 2);
    run(0, 240, 28, 5, 1);
    run(0, 576, 14, 3, 1);
    run(0, 576, 14, 3, 2);
    run(0, 672, 14, 5, 2);
    run(0, 960, 7, 3, 1);
    run(0, 1152, 7, 5, 1);
    run(0, 1152, 7, 3, 1);
    run(0, 672, 14, 5, 1);
    run(0, 480, 14, 3, 1);
    run(0, 240, 28, 3, 2);
    run(0, 240, 28, 5, 2);
    run(3, 32, 224, 3, 2);
    run(3, 64, 224, 7, 2);
    return 0;
}
