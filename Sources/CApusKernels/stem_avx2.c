// Direct convolution of layers with few input channels (a network's stem: 3 → 32 or 64 channels,
// 3 × 3 or 7 × 7, stride 2) in AVX2 and FMA, for CPUs without AVX-512, where such a layer otherwise
// goes through im2col and OpenBLAS with a reduction of 27 or 147. Output channels are in the lanes:
// per tap, the weights of 16 output channels are two vector loads and each output position's
// input value one broadcast, so twelve sums (two vectors × six positions) take eight loads per
// twelve fused multiply-adds, and all fifteen values stay in registers (four vectors × three
// positions would need seventeen: the sums spilled, 42 GFLOP/s on resnet's stem). The sums of a
// chunk of an output row go back to planes through 8 × 8 transposes, with residual and activation
// on the way.
#include "apus_kernels.h"

#if defined(__x86_64__)

#include "avx2_common.h"

#include <string.h>

/// Output channels per pass: two vectors.
#define STEM_LANES 16

/// Floats of a call's scratch, on the stack (48 KiB): the zero-padded input rows of a chunk of
/// output columns, then the chunk's sums.
#define STEM_FLOATS 12288

static long passes_of(const apus_stem_geometry *g) {
    return (g->output_channels + STEM_LANES - 1) / STEM_LANES;
}

static long row_floats(const apus_stem_geometry *g, long chunk) {
    return g->input_channels * g->kernel * ((chunk - 1) * g->stride + g->kernel);
}

/// Output columns per chunk: the whole row when its padded input rows and sums fit the scratch,
/// else the largest halving of it that does.
static long chunk_of(const apus_stem_geometry *g) {
    long chunk = g->output_width < 256 ? g->output_width : 256;
    while (chunk > 1 && row_floats(g, chunk) + chunk * STEM_LANES > STEM_FLOATS) chunk = (chunk + 1) / 2;
    return chunk;
}

int apus_stem_supported(const apus_stem_geometry *g) {
    const long limit = 1L << 28;
    if (g->input_channels < 1 || g->input_channels > 4 || g->output_channels < 1 || g->output_channels > limit) return 0;
    if (g->kernel < 1 || g->kernel > 11 || g->stride < 1 || g->stride > 4) return 0;
    if (g->input_height < 1 || g->input_width < 1 || g->output_height < 1 || g->output_width < 1) return 0;
    if (g->input_height > limit || g->input_width > limit || g->output_height > limit || g->output_width > limit) return 0;
    if (g->pad_top < 0 || g->pad_left < 0 || g->pad_top > limit || g->pad_left > limit) return 0;
    const long chunk = chunk_of(g);
    return row_floats(g, chunk) + chunk * STEM_LANES <= STEM_FLOATS;
}

size_t apus_stem_packed_floats(const apus_stem_geometry *g) {
    return (size_t)(passes_of(g) * g->input_channels * g->kernel * g->kernel * STEM_LANES);
}

void apus_stem_pack(const apus_stem_geometry *g, const float *weights, float *packed) {
    const long C = g->input_channels, K = g->kernel, M = g->output_channels, taps = C * K * K;
    for (long p = 0; p < passes_of(g); p++) {
        for (long t = 0; t < taps; t++) {
            for (long lane = 0; lane < STEM_LANES; lane++) {
                long m = p * STEM_LANES + lane;
                packed[(p * taps + t) * STEM_LANES + lane] = m < M ? weights[m * taps + t] : 0.0f;
            }
        }
    }
}

/// Fills `rows` with the input rows output row `oy`'s columns `x0 ..< x0 + count` read: for each
/// channel and kernel row, `(count − 1) · stride + kernel` floats from input column
/// `x0 · stride − pad_left` on, zero outside the image.
static void fill_rows(const apus_stem_geometry *g, const float *input, long oy, long x0, long count, float *rows) {
    const long K = g->kernel, H = g->input_height, W = g->input_width;
    const long width = (count - 1) * g->stride + K, left = x0 * g->stride - g->pad_left;
    // The columns of the line inside the image: [begin, end).
    long begin = left < 0 ? -left : 0, end = W - left < width ? W - left : width;
    if (end < begin) end = begin;
    for (long c = 0; c < g->input_channels; c++) {
        for (long ky = 0; ky < K; ky++) {
            float *line = rows + (c * K + ky) * width;
            long iy = oy * g->stride - g->pad_top + ky;
            if (iy < 0 || iy >= H || begin == end) {
                memset(line, 0, sizeof(float) * (size_t)width);
                continue;
            }
            const float *source = input + (c * H + iy) * W + left;
            memset(line, 0, sizeof(float) * (size_t)begin);
            memcpy(line + begin, source + begin, sizeof(float) * (size_t)(end - begin));
            memset(line + end, 0, sizeof(float) * (size_t)(width - end));
        }
    }
}

/// `R` output positions from `x` of a chunk (their input lines in `rows`, `width` floats each) for
/// the `V` vectors of one pass: each sum is the bias, then the taps in (channel, ky, kx) order, one
/// fused multiply-add each; stored to `sums` (`STEM_LANES` floats per position). `K` and `S` are
/// constants after inlining, or 0 for `k` and `s`.
TARGET_AVX2 static ALWAYS_INLINE void stem_block(const int K, const int S, const int V, const int R, long k, long s,
                                                 long lines, long width, const float *rows, const float *packed,
                                                 const __m256 *bias, long x, float *sums) {
    const long kernel = K ? K : k, stride = S ? S : s;
    const float *at = rows + x * stride;
    __m256 acc[2][12];
    for (int j = 0; j < R; j++) {
        for (int v = 0; v < V; v++) acc[v][j] = bias[v];
    }
    for (long l = 0; l < lines; l++, at += width, packed += kernel * STEM_LANES) {
        // One tap's weights live at a time: unrolled, a 3 × 3 kernel's six weight vectors and the
        // twelve sums spilled (mobilenet_v2's stem at 25–30 GFLOP/s).
#pragma clang loop unroll(disable)
        for (long kx = 0; kx < kernel; kx++) {
            __m256 w[2];
            for (int v = 0; v < V; v++) w[v] = _mm256_loadu_ps(packed + kx * STEM_LANES + 8 * v);
            for (int j = 0; j < R; j++) {
                const __m256 in = _mm256_broadcast_ss(at + j * stride + kx);
                for (int v = 0; v < V; v++) acc[v][j] = _mm256_fmadd_ps(w[v], in, acc[v][j]);
            }
        }
    }
    for (int j = 0; j < R; j++) {
        for (int v = 0; v < V; v++) _mm256_storeu_ps(sums + (x + j) * STEM_LANES + 8 * v, acc[v][j]);
    }
}

/// One pass (output channels `first ..< first + 8 · V`, the last vector possibly partial) over
/// one chunk (`count` positions of output row `oy` from column `x0`): the sums, then back to the
/// channels' planes with residual and activation.
TARGET_AVX2 static ALWAYS_INLINE void stem_pass(const int K, const int S, const int V, const int ACT,
                                                const apus_stem_geometry *g, const float *rows, long count,
                                                const float *packed, long first, float *sums, long oy, long x0,
                                                float *output, const apus_gemm_epilogue *e) {
    // Positions in flight: twelve sums, with the weights and one broadcast in the other registers.
    const int R = V == 2 ? 6 : 12;
    const long M = g->output_channels, k = g->kernel, s = g->stride;
    const long width = (count - 1) * s + k, lines = g->input_channels * k;
    __m256 bias[2];
    for (int v = 0; v < V; v++) {
        const long c = first + 8 * v;
        bias[v] = e->bias ? _mm256_maskload_ps(e->bias + c, lanes_inside(0, M - c)) : _mm256_setzero_ps();
    }
    if (count >= R) {
        // The last block ends at the chunk's end, recomputing a few positions (the same sums).
        for (long x = 0; x < count; x += R) {
            stem_block(K, S, V, R, k, s, lines, width, rows, packed, bias, x + R <= count ? x : count - R, sums);
        }
    } else {
        for (long x = 0; x < count; x++) stem_block(K, S, V, 1, k, s, lines, width, rows, packed, bias, x, sums);
    }
    const long plane = g->output_height * g->output_width;
    const __m256 low = _mm256_set1_ps(e->low), high = _mm256_set1_ps(e->high);
    __m256 t[8];
    for (int v = 0; v < V; v++) {
        const long c0 = first + 8 * v;
        const long channels = M - c0 < 8 ? M - c0 : 8;
        for (long s0 = 0; s0 < count; s0 += 8) {
            const long n = count - s0 < 8 ? count - s0 : 8;
            for (int j = 0; j < 8; j++) {
                t[j] = j < n ? _mm256_loadu_ps(sums + (s0 + j) * STEM_LANES + 8 * v) : _mm256_setzero_ps();
            }
            transpose8(t);
            const __m256i mask = lanes_inside(0, n);
            const long at = oy * g->output_width + x0 + s0;
            for (int i = 0; i < channels; i++) {
                const long offset = (c0 + i) * plane + at;
                finish_store8(ACT, t[i], output + offset, e->residual ? e->residual + offset : NULL, n, mask, low,
                              high);
            }
        }
    }
}

/// Output rows `first_row ..< first_row + row_count` with the kernel size, stride and activation
/// fixed (0: read from `g`).
TARGET_AVX2 static ALWAYS_INLINE void stem_rows(const int K, const int S, const int ACT, const apus_stem_geometry *g,
                                                const float *packed, const float *input, long first_row,
                                                long row_count, float *output, const apus_gemm_epilogue *e) {
    float scratch[STEM_FLOATS] __attribute__((aligned(32)));
    const long chunk = chunk_of(g), taps = g->input_channels * g->kernel * g->kernel;
    float *rows = scratch;
    for (long oy = first_row; oy < first_row + row_count; oy++) {
        for (long x0 = 0; x0 < g->output_width; x0 += chunk) {
            const long count = g->output_width - x0 < chunk ? g->output_width - x0 : chunk;
            fill_rows(g, input, oy, x0, count, rows);
            float *sums = rows + row_floats(g, count);
            for (long p = 0; p < passes_of(g); p++) {
                const long first = p * STEM_LANES, left = g->output_channels - first;
                const float *w = packed + p * taps * STEM_LANES;
                if (left > 8) {
                    stem_pass(K, S, 2, ACT, g, rows, count, w, first, sums, oy, x0, output, e);
                } else {
                    stem_pass(K, S, 1, ACT, g, rows, count, w, first, sums, oy, x0, output, e);
                }
            }
        }
    }
}

#define STEM_ROWS_OF(K, S, ACT) stem_rows(K, S, ACT, g, packed, input, first_row, row_count, output, &e)

#define STEM_BY_ACTIVATION(K, S) BY_ACTIVATION8(e.activation, STEM_ROWS_OF, K, S)

TARGET_AVX2 void apus_stem_avx2(const apus_stem_geometry *g, const float *packed, const float *input, long first_row,
                                long row_count, float *output, const apus_gemm_epilogue *epilogue) {
    if (!apus_stem_supported(g) || row_count <= 0) return;
    const apus_gemm_epilogue e = epilogue ? *epilogue : (apus_gemm_epilogue){0};
    if (g->stride == 2 && g->kernel == 7) {
        STEM_BY_ACTIVATION(7, 2)
    } else if (g->stride == 2 && g->kernel == 3) {
        STEM_BY_ACTIVATION(3, 2)
    } else {
        STEM_BY_ACTIVATION(0, 0)
    }
}

#else

int apus_stem_supported(const apus_stem_geometry *g) {
    (void)g;
    return 0;
}

size_t apus_stem_packed_floats(const apus_stem_geometry *g) {
    (void)g;
    return 0;
}

void apus_stem_pack(const apus_stem_geometry *g, const float *weights, float *packed) {
    (void)g; (void)weights; (void)packed;
}

void apus_stem_avx2(const apus_stem_geometry *g, const float *packed, const float *input, long first_row,
                    long row_count, float *output, const apus_gemm_epilogue *epilogue) {
    (void)g; (void)packed; (void)input; (void)first_row; (void)row_count; (void)output; (void)epilogue;
}

#endif
