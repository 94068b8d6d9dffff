// The AVX-512 Winograd transforms (Sources/CApusKernels/winograd.c) on one image of a ResNet
// layer, one thread: the best of 30 calls of the input and the output transform. The optional
// third argument adds floats to the stride between the 36 tile positions' matrices, to show what
// `WinogradConv2D.positionStride` avoids (Docs/performance.md, "Winograd transforms"). SwiftPM
// compiles the package's C with clang; gcc -O2 makes this file's input transform ~1.7× slower.
//   clang -O2 -ISources/CApusKernels/include scripts/perf/winograd_transforms.c \
//       Sources/CApusKernels/winograd.c -o /tmp/winograd && /tmp/winograd 56 64 0 && /tmp/winograd 56 64 16
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "apus_kernels.h"
#include "timing.h"

int main(int argc, char **argv) {
    long size = argc > 1 ? atol(argv[1]) : 56, channels = argc > 2 ? atol(argv[2]) : 64;
    long extra = argc > 3 ? atol(argv[3]) : 0;
    // 3 × 3, stride 1, pads 1: the output is the input's size; the layout of WinogradConv2D.
    long tileRows = (size + 3) / 4, tileColumns = (size + 3) / 4, tiles = tileRows * tileColumns;
    long tileStride = (tiles + 30) / 16 * 16, positionStride = channels * tileStride + extra;
    long rows = tileRows * 4 + 2, rowStride = (tileColumns + 32) / 16 * 16;
    long lineCount = (tileColumns * 4 + 2 + 15) / 16 * 16;
    apus_winograd_geometry g = {size, size, size, size, 1, 1, tileRows, tileColumns, tileStride, positionStride, rows,
        rowStride, lineCount};
    float *input = aligned_alloc(64, sizeof(float) * channels * size * size);
    float *v = aligned_alloc(64, sizeof(float) * (36 * positionStride + 64));
    float *m = aligned_alloc(64, sizeof(float) * (36 * positionStride + 64));
    float *scratch = aligned_alloc(64, sizeof(float) * (4 * rows * rowStride + 64));
    float *output = aligned_alloc(64, sizeof(float) * channels * size * size);
    if (!input || !v || !m || !scratch || !output) return 1;
    for (long i = 0; i < channels * size * size; i++) input[i] = (float)(i % 13) * 0.1f;
    for (long i = 0; i < 36 * positionStride + 64; i++) m[i] = (float)(i % 7) * 0.1f;
    double in = 1e9, out = 1e9;
    for (int r = 0; r < 30; r++) {
        double t = now();
        apus_winograd_input_avx512(&g, input, 0, channels, v, scratch);
        t = now() - t;
        if (t < in) in = t;
        t = now();
        apus_winograd_output_avx512(&g, m, 0, channels, 0, output);
        t = now() - t;
        if (t < out) out = t;
    }
    printf("%ld × %ld², position stride %ld floats (%ld bytes mod 4096): input %.1f µs, output %.1f µs\n", channels,
        size, positionStride, positionStride * 4 % 4096, in * 1e6, out * 1e6);
    return 0;
}
