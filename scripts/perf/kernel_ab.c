// Two builds of the AVX-512 kernels in one process, alternated call by call: the GEMM kernel
// (gemm.c), the depthwise kernels (direct_conv.c) and the Winograd transforms (winograd.c) of the
// current tree against those of another revision, whose exported symbols kernel-ab.sh renames to `old_…`. On a host whose speed moves
// by 10–50 % between processes (Docs/performance.md), alternating within one process is what
// resolves a few percent. Prints, per shape, the median of each build over the calls, their ratio,
// and whether both wrote the same bits.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apus_kernels.h"
#include "timing.h"

void old_apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue);
void old_apus_winograd_input_avx512(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch);
void old_apus_winograd_output_avx512(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output);
void old_apus_depthwise_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue);
void old_apus_direct_conv_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, long inputChannels, const float *weights,
    long firstChannel, long channelCount, float *output, const apus_gemm_epilogue *epilogue);

/// Packed weights cycle through this many copies (more than L2 holds for the larger layers), as
/// they come from L3 in a model run.
#define COPIES 8

static void report(const char *what, double *old, double *now_, long calls, int same) {
    qsort(old, calls, sizeof(double), compare);
    qsort(now_, calls, sizeof(double), compare);
    printf("| %s | %.2f | %.2f | %.3f | %s |\n", what, old[calls / 2] * 1e6, now_[calls / 2] * 1e6,
        now_[calls / 2] / old[calls / 2], same ? "same" : "DIFFERENT");
}

/// Calls `run(context, 0)` (the old build) and `run(context, 1)` (the new one) `calls` times each,
/// which of the two goes first alternating, and times each call into `t[0]` and `t[1]`.
static void alternate(long calls, void (*run)(void *, int), void *context, double *t[2]) {
    for (long q = 0; q < calls; q++) {
        for (int i = 0; i < 2; i++) {
            int v = (int)((i + q) & 1);
            double start = now();
            run(context, v);
            t[v][q] = now() - start;
        }
    }
}

static const char *activation_name(int activation) {
    static const char *names[] = {"none", "ReLU", "Clip", "Sigmoid", "SiLU"};
    return activation >= 0 && activation <= 4 ? names[activation] : "?";
}

struct gemm_call {
    float **packed;
    long copy, m, n, k;
    const float *b;
    float *out[2];
    apus_gemm_epilogue epilogue;
};

static void run_gemm(void *context, int current) {
    struct gemm_call *c = context;
    const float *packed = c->packed[c->copy++ / 2 % COPIES];
    (current ? apus_gemm_packed_avx512 : old_apus_gemm_packed_avx512)(
        packed, c->m, 0, c->k, c->m, c->n, c->b, c->n, c->out[current], c->n, 0, &c->epilogue);
}

static void gemm(long m, long n, long k, int activation, int residual, long calls) {
    float *packed[COPIES];
    for (int c = 0; c < COPIES; c++) {
        float *a = aligned_alloc(64, sizeof(float) * m * k);
        for (long i = 0; i < m * k; i++) a[i] = ((i * 7 + c) % 13) * 0.1f - 0.6f;
        packed[c] = aligned_alloc(64, sizeof(float) * apus_gemm_packed_count(m, k));
        apus_gemm_pack(a, k, m, k, packed[c]);
        free(a);
    }
    float *b = aligned_alloc(64, sizeof(float) * k * n), *bias = aligned_alloc(64, sizeof(float) * m);
    float *r = aligned_alloc(64, sizeof(float) * m * n);
    float *out[2] = {aligned_alloc(64, sizeof(float) * m * n), aligned_alloc(64, sizeof(float) * m * n)};
    for (long i = 0; i < k * n; i++) b[i] = (i % 5) * 0.1f - 0.2f;
    for (long i = 0; i < m; i++) bias[i] = 0.1f * (i % 3) - 0.1f;
    for (long i = 0; i < m * n; i++) r[i] = (i % 3) * 0.1f - 0.05f;
    struct gemm_call call = {packed, 0, m, n, k, b, {out[0], out[1]}, {bias, residual ? r : 0, n, activation, 0, 6}};
    double *t[2] = {malloc(sizeof(double) * calls), malloc(sizeof(double) * calls)};
    alternate(calls, run_gemm, &call, t);
    char what[96];
    snprintf(what, sizeof what, "GEMM %ld × %ld × %ld, %s%s", m, n, k, activation_name(activation),
        residual ? " + residual" : "");
    report(what, t[0], t[1], calls, memcmp(out[0], out[1], sizeof(float) * m * n) == 0);
    for (int c = 0; c < COPIES; c++) free(packed[c]);
    free(b); free(bias); free(r); free(out[0]); free(out[1]); free(t[0]); free(t[1]);
}

/// One call of the depthwise or the direct kernel (`inputChannels`: the direct kernel's only).
struct table_call {
    const apus_depthwise_geometry *g;
    const void *table;
    const float *in, *w;
    long inputChannels, channels;
    float *out[2];
    apus_gemm_epilogue epilogue;
};

static void run_depthwise(void *context, int current) {
    struct table_call *c = context;
    (current ? apus_depthwise_avx512 : old_apus_depthwise_avx512)(
        c->g, c->table, c->in, c->w, c->channels, 0, c->channels, c->out[current], &c->epilogue);
}

static void depthwise(long channels, long size, long kernel, long stride, int activation, long calls) {
    long pad = kernel / 2, outSize = (size + 2 * pad - kernel) / stride + 1;
    apus_depthwise_geometry g = {size, size, outSize, outSize, kernel, stride, pad, pad};
    long outCount = channels * outSize * outSize;
    float *in = aligned_alloc(64, sizeof(float) * (channels * size * size + 64));
    float *out[2] = {aligned_alloc(64, sizeof(float) * (outCount + 64)), aligned_alloc(64, sizeof(float) * (outCount + 64))};
    float *w = malloc(sizeof(float) * channels * kernel * kernel), *b = malloc(sizeof(float) * channels);
    for (long i = 0; i < channels * size * size; i++) in[i] = (i % 17) * 0.1f - 0.8f;
    for (long i = 0; i < channels * kernel * kernel; i++) w[i] = (i % 7) * 0.01f - 0.02f;
    for (long i = 0; i < channels; i++) b[i] = 0.5f;
    void *table = aligned_alloc(64, (apus_depthwise_table_size(&g) + 63) / 64 * 64);
    apus_depthwise_prepare(&g, table);
    struct table_call call = {&g, table, in, w, 0, channels, {out[0], out[1]}, {b, 0, 0, activation, 0, 6}};
    double *t[2] = {malloc(sizeof(double) * calls), malloc(sizeof(double) * calls)};
    alternate(calls, run_depthwise, &call, t);
    char what[96];
    snprintf(what, sizeof what, "depthwise %ld × %ld², %ld × %ld stride %ld, %s", channels, size, kernel, kernel, stride,
        activation_name(activation));
    report(what, t[0], t[1], calls, memcmp(out[0], out[1], sizeof(float) * outCount) == 0);
    free(in); free(out[0]); free(out[1]); free(w); free(b); free(table); free(t[0]); free(t[1]);
}

static void run_direct(void *context, int current) {
    struct table_call *c = context;
    (current ? apus_direct_conv_avx512 : old_apus_direct_conv_avx512)(
        c->g, c->table, c->in, c->inputChannels, c->w, 0, c->channels, c->out[current], &c->epilogue);
}

/// A network stem on the direct kernel: `inputChannels` → `channels`, `size`² input, pad k / 2.
static void direct(long inputChannels, long channels, long size, long kernel, long stride, int activation, long calls) {
    long pad = kernel / 2, outSize = (size + 2 * pad - kernel) / stride + 1;
    apus_depthwise_geometry g = {size, size, outSize, outSize, kernel, stride, pad, pad};
    long inCount = inputChannels * size * size, outCount = channels * outSize * outSize;
    long weightCount = channels * inputChannels * kernel * kernel;
    float *in = aligned_alloc(64, sizeof(float) * (inCount + 64));
    float *out[2] = {aligned_alloc(64, sizeof(float) * (outCount + 64)), aligned_alloc(64, sizeof(float) * (outCount + 64))};
    float *w = malloc(sizeof(float) * weightCount), *b = malloc(sizeof(float) * channels);
    for (long i = 0; i < inCount; i++) in[i] = (i % 17) * 0.1f - 0.8f;
    for (long i = 0; i < weightCount; i++) w[i] = (i % 7) * 0.01f - 0.02f;
    for (long i = 0; i < channels; i++) b[i] = 0.5f;
    void *table = aligned_alloc(64, (apus_depthwise_table_size(&g) + 63) / 64 * 64);
    apus_depthwise_prepare(&g, table);
    struct table_call call = {&g, table, in, w, inputChannels, channels, {out[0], out[1]}, {b, 0, 0, activation, 0, 6}};
    double *t[2] = {malloc(sizeof(double) * calls), malloc(sizeof(double) * calls)};
    alternate(calls, run_direct, &call, t);
    char what[96];
    snprintf(what, sizeof what, "direct %ld → %ld, %ld², %ld × %ld stride %ld, %s", inputChannels, channels, size,
        kernel, kernel, stride, activation_name(activation));
    report(what, t[0], t[1], calls, memcmp(out[0], out[1], sizeof(float) * outCount) == 0);
    free(in); free(out[0]); free(out[1]); free(w); free(b); free(table); free(t[0]); free(t[1]);
}

struct winograd_call {
    apus_winograd_geometry g;
    long channels;
    const float *in, *bias;
    /// Each build's V (input transform) or output planes (output transform).
    float *written[2], *scratch;
    int output;
};

static void run_winograd(void *context, int current) {
    struct winograd_call *c = context;
    if (c->output) {
        (current ? apus_winograd_output_avx512 : old_apus_winograd_output_avx512)(
            &c->g, c->in, 0, c->channels, c->bias, c->written[current]);
    } else {
        (current ? apus_winograd_input_avx512 : old_apus_winograd_input_avx512)(
            &c->g, c->in, 0, c->channels, c->written[current], c->scratch);
    }
}

/// The Winograd F(4×4, 3×3) input or output transform of `channels` planes of `size`², pad 1, in
/// the layout `WinogradConv2D` gives them (tile stride, position stride, phase plane).
static void winograd(long channels, long size, int output, long calls) {
    long tiles = (size + 3) / 4, count = tiles * tiles, tileStride = (count + 30) / 16 * 16;
    long positionStride = channels * tileStride;
    if ((positionStride / 16) % 2 == 0) positionStride += 16;
    long rows = tiles * 4 + 2, rowStride = (tiles + 1 + 31) / 16 * 16, line = (tiles * 4 + 2 + 15) / 16 * 16;
    struct winograd_call call = {{size, size, size, size, 1, 1, tiles, tiles, tileStride, positionStride, rows,
                                     rowStride, line},
        channels, 0, 0, {0, 0}, 0, output};
    long inCount = output ? 36 * positionStride : channels * size * size;
    float *in = aligned_alloc(64, sizeof(float) * (inCount + 64)), *bias = malloc(sizeof(float) * channels);
    for (long i = 0; i < inCount + 64; i++) in[i] = (i % 13) * 0.1f - 0.6f;
    for (long i = 0; i < channels; i++) bias[i] = 0.1f;
    long outCount = output ? channels * size * size : 36 * positionStride + 64;
    for (int i = 0; i < 2; i++) {
        call.written[i] = aligned_alloc(64, sizeof(float) * outCount);
        memset(call.written[i], 0, sizeof(float) * outCount);
    }
    call.scratch = aligned_alloc(64, sizeof(float) * (4 * rows * rowStride + line + 640));
    call.in = in;
    call.bias = bias;
    double *t[2] = {malloc(sizeof(double) * calls), malloc(sizeof(double) * calls)};
    alternate(calls, run_winograd, &call, t);
    // Input transform: V's tiles only (a row's padding past the last tile is scratch).
    int same = 1;
    if (output) {
        same = memcmp(call.written[0], call.written[1], sizeof(float) * outCount) == 0;
    } else {
        for (long p = 0; p < 36 && same; p++)
            for (long c = 0; c < channels && same; c++) {
                long at = p * positionStride + c * tileStride;
                same = memcmp(call.written[0] + at, call.written[1] + at, sizeof(float) * count) == 0;
            }
    }
    char what[96];
    snprintf(what, sizeof what, "Winograd %s transform %ld × %ld²", output ? "output" : "input", channels, size);
    report(what, t[0], t[1], calls, same);
    free(in); free(bias); free(call.written[0]); free(call.written[1]); free(call.scratch); free(t[0]); free(t[1]);
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 300;
    printf("| kernel and shape | old µs | new µs | new ÷ old | bits |\n|---|---|---|---|---|\n");
    // MobileNetV2's and EfficientNet-B0's expansions, projections and squeeze-and-excitation products.
    gemm(96, 1008, 16, APUS_GEMM_CLIP, 0, calls);
    gemm(96, 1008, 16, APUS_GEMM_SILU, 0, calls);
    gemm(144, 3136, 24, APUS_GEMM_CLIP, 0, calls);
    gemm(24, 3136, 144, APUS_GEMM_NONE, 1, calls);
    gemm(576, 196, 96, APUS_GEMM_CLIP, 0, calls);
    gemm(96, 196, 576, APUS_GEMM_NONE, 1, calls);
    gemm(672, 196, 112, APUS_GEMM_SILU, 0, calls);
    gemm(1152, 49, 192, APUS_GEMM_SILU, 0, calls);
    gemm(192, 49, 1152, APUS_GEMM_NONE, 1, calls);
    gemm(48, 1, 1152, APUS_GEMM_SILU, 0, calls);
    gemm(1152, 1, 48, APUS_GEMM_SIGMOID, 0, calls);
    gemm(256, 196, 2304, APUS_GEMM_RELU, 1, calls / 4);
    // Their depthwise layers on 7² to 28² maps.
    depthwise(1152, 7, 5, 1, APUS_GEMM_SILU, calls);
    depthwise(1152, 7, 3, 1, APUS_GEMM_SILU, calls);
    depthwise(960, 7, 3, 1, APUS_GEMM_CLIP, calls);
    depthwise(672, 14, 5, 2, APUS_GEMM_SILU, calls);
    depthwise(576, 14, 3, 2, APUS_GEMM_CLIP, calls);
    depthwise(672, 14, 5, 1, APUS_GEMM_SILU, calls);
    depthwise(480, 14, 3, 1, APUS_GEMM_SILU, calls);
    depthwise(240, 28, 5, 1, APUS_GEMM_SILU, calls);
    depthwise(240, 28, 3, 2, APUS_GEMM_SILU, calls);
    // The stems: MobileNetV2's, EfficientNet-B0's and ResNet's.
    direct(3, 32, 224, 3, 2, APUS_GEMM_CLIP, calls);
    direct(3, 32, 224, 3, 2, APUS_GEMM_SILU, calls);
    direct(3, 64, 224, 7, 2, APUS_GEMM_RELU, calls / 4);
    // ResNet's Winograd layers: 56², 28² and 14² maps (14, 7 and 4 tiles a row).
    for (int output = 0; output < 2; output++) {
        winograd(64, 56, output, calls / 2);
        winograd(128, 28, output, calls / 2);
        winograd(256, 14, output, calls / 2);
    }
    return 0;
}
