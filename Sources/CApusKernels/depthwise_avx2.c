// Depthwise 3 × 3 and 5 × 5 convolution (strides 1 and 2) with AVX2 and FMA, for CPUs without
// AVX-512: the row kernel of `DepthwiseConv2D` (Swift) on the same phase-split padded plane, eight
// columns per vector, with fused multiply-adds. The Swift version is compiled for SSE2 in the
// default build (four registers per sixteen columns, separate multiplies and adds, spills).
#include "apus_kernels.h"

#if defined(__x86_64__)

#include "avx2_common.h"

#include <string.h>

/// Two output rows (`oy`, `oy + 1`) of `V` vectors from column `x`: each input row of the pair's
/// window is loaded once per tap column and feeds both rows it belongs to.
TARGET_AVX2 static ALWAYS_INLINE void pair_block(const apus_depthwise_plane_geometry *g, const float *plane,
                                                 const float *weights, float bias, long oy, long x, const int V,
                                                 const int K, const int S, int second, const float *residual,
                                                 float *output, int activation, __m256 low, __m256 high) {
    const long rowStride = g->row_stride, phaseWidth = g->phase_width, outW = g->output_width;
    __m256 acc0[4], acc1[4];
    for (int i = 0; i < V; i++) acc0[i] = acc1[i] = _mm256_set1_ps(bias);
    const float *top = plane + oy * S * rowStride + x;
    for (int t = 0; t < K + S; t++) {
        const float *row = top + t * rowStride;
        for (int kx = 0; kx < K; kx++) {
            const float *p = row + (kx % S) * phaseWidth + kx / S;
            __m256 w0 = _mm256_set1_ps(t < K ? weights[t * K + kx] : 0.0f);
            __m256 w1 = _mm256_set1_ps(t >= S ? weights[(t - S) * K + kx] : 0.0f);
            for (int i = 0; i < V; i++) {
                __m256 v = _mm256_loadu_ps(p + 8 * i);
                if (t < K) acc0[i] = _mm256_fmadd_ps(w0, v, acc0[i]);
                if (t >= S) acc1[i] = _mm256_fmadd_ps(w1, v, acc1[i]);
            }
        }
    }
    for (int i = 0; i < V; i++) {
        long column = x + 8 * i;
        long left = outW - column;
        if (left <= 0) break;
        const long n = left < 8 ? left : 8;
        __m256i mask = lanes_inside(0, n);
        for (int r = 0; r < 1 + second; r++) {
            long index = (oy + r) * outW + column;
            finish_store8(activation, r ? acc1[i] : acc0[i], output + index, residual ? residual + index : NULL, n,
                          mask, low, high);
        }
    }
}

/// Output rows `first ..< first + count` of one shape (kernel `K`, stride `S`, constants after
/// inlining), four vectors at a time (the last four partly when 25–31 columns are left), then
/// the rest.
TARGET_AVX2 static ALWAYS_INLINE void shape_rows(const apus_depthwise_plane_geometry *g, const float *plane,
                                                 long first, long count, const float *weights, float bias,
                                                 const float *residual, float *output, int activation, float low,
                                                 float high, const int K, const int S) {
    const __m256 lowV = _mm256_set1_ps(low), highV = _mm256_set1_ps(high);
    const long outW = g->output_width, end = first + count;
    for (long oy = first; oy < end; oy += 2) {
        int second = oy + 1 < end;
        long x = 0;
        for (; outW - x > 24; x += 32) {
            pair_block(g, plane, weights, bias, oy, x, 4, K, S, second, residual, output, activation, lowV, highV);
        }
        long left = outW - x;
        if (left > 16) {
            pair_block(g, plane, weights, bias, oy, x, 3, K, S, second, residual, output, activation, lowV, highV);
        } else if (left > 8) {
            pair_block(g, plane, weights, bias, oy, x, 2, K, S, second, residual, output, activation, lowV, highV);
        } else if (left > 0) {
            pair_block(g, plane, weights, bias, oy, x, 1, K, S, second, residual, output, activation, lowV, highV);
        }
    }
}

int apus_depthwise_plane_supported(const apus_depthwise_plane_geometry *g) {
    return (g->kernel == 3 || g->kernel == 5) && (g->stride == 1 || g->stride == 2) && g->output_width > 0 &&
           g->output_height > 0;
}

TARGET_AVX2 void apus_depthwise_plane_avx2(const apus_depthwise_plane_geometry *g, const float *plane, long first,
                                           long count, const float *weights, float bias, const float *residual,
                                           float *output, int activation, float low, float high) {
    switch (g->kernel * 10 + g->stride) {
    case 31: shape_rows(g, plane, first, count, weights, bias, residual, output, activation, low, high, 3, 1); break;
    case 32: shape_rows(g, plane, first, count, weights, bias, residual, output, activation, low, high, 3, 2); break;
    case 51: shape_rows(g, plane, first, count, weights, bias, residual, output, activation, low, high, 5, 1); break;
    case 52: shape_rows(g, plane, first, count, weights, bias, residual, output, activation, low, high, 5, 2); break;
    default: break;
    }
}

/// Eight floats of an input row from `column` on; with `EDGE`, those outside the row (`0 ≤ column
/// < width`) read as zero, the padding, and are never touched.
TARGET_AVX2 static ALWAYS_INLINE __m256 direct_load(const float *row, long column, long width, const int EDGE) {
    if (!EDGE) return _mm256_loadu_ps(row + column);
    return _mm256_maskload_ps(row + column, lanes_inside(column, width));
}

/// The input row's values under tap column `kx` for eight outputs whose first reads column `c`:
/// at stride 1 one load; at stride 2 the even (or odd) floats of the sixteen from `c + kx` (rounded
/// down to even), deinterleaved by one shuffle into the order [0 1 4 5 2 3 6 7] of the outputs (the
/// sums are put back in order once, after the last tap). Taps `kx` and `kx + 1` share their loads.
TARGET_AVX2 static ALWAYS_INLINE __m256 direct_tap(const float *row, long c, int kx, long width, const int S,
                                                   const int EDGE) {
    if (S == 1) return direct_load(row, c + kx, width, EDGE);
    const long base = c + (kx & ~1);
    const __m256 a = direct_load(row, base, width, EDGE), b = direct_load(row, base + 8, width, EDGE);
    return (kx & 1) ? _mm256_shuffle_ps(a, b, 0xDD) : _mm256_shuffle_ps(a, b, 0x88);
}

/// Columns of zeros left of a padding row's start (the most left padding the direct kernel takes).
#define DIRECT_MAX_PAD 8
/// Floats of the zero row that stands for padding rows (the widest input row the kernel takes,
/// plus the reach of one block past it).
#define DIRECT_ZERO_FLOATS 2112

/// Two output rows (`oy`, `oy + 1`) of `V` vectors from column `x`, read from the unpadded input
/// plane: what `pair_block` computes from the padded plane, the same fused multiply-adds in the
/// same order (a padding row or column enters as a zero product, as there), so the same bits.
/// Padding rows are read from `zeros`; with `EDGE` the columns outside the row are masked off the
/// loads.
TARGET_AVX2 static ALWAYS_INLINE void direct_block(const apus_depthwise_geometry *g, const float *input,
                                                   const float *zeros, const float *weights, float bias, long oy,
                                                   long x, const int V, const int K, const int S, const int EDGE,
                                                   int second, const float *residual, float *output, int activation,
                                                   __m256 low, __m256 high) {
    const long inH = g->input_height, inW = g->input_width, outW = g->output_width;
    __m256 acc0[4], acc1[4];
#pragma clang loop unroll(full)
    for (int i = 0; i < V; i++) acc0[i] = acc1[i] = _mm256_set1_ps(bias);
    const long top = oy * S - g->pad_top;
    const long c0 = x * S - g->pad_left;
    // Rows 0 ..< S feed only the first output row, S ..< K both, K ..< K + S only the second.
    // The row loops stay loops: unrolled, clang computed every row's taps first and spilled them.
#define DIRECT_ROWS_OF(T0, T1, FIRST, SECOND)                                                                          \
    _Pragma("clang loop unroll(disable)") for (int t = T0; t < T1; t++) {                                              \
        const long iy = top + t;                                                                                       \
        const float *row = iy >= 0 && iy < inH ? input + iy * inW : zeros;                                             \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < V; i++) {                                               \
            _Pragma("clang loop unroll(full)") for (int kx = 0; kx < K; kx++) {                                        \
                const __m256 v = direct_tap(row, c0 + 8 * S * i, kx, inW, S, EDGE);                                    \
                if (FIRST) acc0[i] = _mm256_fmadd_ps(_mm256_set1_ps(weights[t * K + kx]), v, acc0[i]);               \
                if (SECOND) acc1[i] = _mm256_fmadd_ps(_mm256_set1_ps(weights[(t - S) * K + kx]), v, acc1[i]);         \
            }                                                                                                          \
        }                                                                                                              \
    }
    DIRECT_ROWS_OF(0, S, 1, 0)
    DIRECT_ROWS_OF(S, K, 1, 1)
    DIRECT_ROWS_OF(K, K + S, 0, 1)
#undef DIRECT_ROWS_OF
#pragma clang loop unroll(full)
    for (int i = 0; i < V; i++) {
        long column = x + 8 * i;
        long left = outW - column;
        if (left <= 0) continue;
        if (S == 2) {
            acc0[i] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc0[i]), 0xD8));
            acc1[i] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc1[i]), 0xD8));
        }
        const long n = left < 8 ? left : 8;
        __m256i mask = lanes_inside(0, n);
        long index = oy * outW + column;
        finish_store8(activation, acc0[i], output + index, residual ? residual + index : NULL, n, mask, low, high);
        if (second) {
            index += outW;
            finish_store8(activation, acc1[i], output + index, residual ? residual + index : NULL, n, mask, low, high);
        }
    }
}

/// Output rows `first ..< first + count` of one shape from the unpadded plane, as `shape_rows`:
/// the vectors whose loads all lie inside the row four at a time with plain loads, the others
/// (at the row's ends) one at a time with masked loads.
TARGET_AVX2 static ALWAYS_INLINE void direct_rows(const apus_depthwise_geometry *g, const float *input,
                                                  const float *zeros, long first, long count, const float *weights,
                                                  float bias, const float *residual, float *output, int activation,
                                                  float low, float high, const int K, const int S) {
    const __m256 lowV = _mm256_set1_ps(low), highV = _mm256_set1_ps(high);
    const long outW = g->output_width, end = first + count, vectors = (outW + 7) / 8;
    // Vector j reads columns 8jS − pad_left ..< 8jS − pad_left + 8S + K − 1: inside the row for
    // j in inner ..< outer.
    const long step = 8 * S;
    long inner = (g->pad_left + step - 1) / step;
    const long reach = g->input_width + g->pad_left - step - K + 1;
    long outer = reach < 0 ? 0 : reach / step + 1;
    if (outer > vectors) outer = vectors;
    if (inner > outer) inner = outer;
    for (long oy = first; oy < end; oy += 2) {
        const int second = oy + 1 < end;
#define DIRECT_BLOCK(j, V, EDGE)                                                                                       \
    direct_block(g, input, zeros, weights, bias, oy, 8 * (j), V, K, S, EDGE, second, residual, output, activation,    \
                 lowV, highV)
        for (long j = 0; j < inner; j++) DIRECT_BLOCK(j, 1, 1);
        long j = inner;
        for (; outer - j >= 4; j += 4) DIRECT_BLOCK(j, 4, 0);
        if (outer - j == 3) {
            DIRECT_BLOCK(j, 3, 0);
        } else if (outer - j == 2) {
            DIRECT_BLOCK(j, 2, 0);
        } else if (outer - j == 1) {
            DIRECT_BLOCK(j, 1, 0);
        }
        for (j = outer; j < vectors; j++) DIRECT_BLOCK(j, 1, 1);
#undef DIRECT_BLOCK
    }
}

int apus_depthwise_direct_supported(const apus_depthwise_geometry *g) {
    return (g->kernel == 3 || g->kernel == 5) && (g->stride == 1 || g->stride == 2) && g->output_width > 0 &&
           g->output_height > 0 && g->input_width > 0 && g->input_height > 0 && g->pad_top >= 0 &&
           g->pad_left >= 0 && g->pad_left <= DIRECT_MAX_PAD &&
           DIRECT_MAX_PAD + (g->output_width + 7) / 8 * 8 * g->stride + g->kernel + 16 <= DIRECT_ZERO_FLOATS;
}

TARGET_AVX2 void apus_depthwise_direct_avx2(const apus_depthwise_geometry *g, const float *input, long first,
                                            long count, const float *weights, float bias, const float *residual,
                                            float *output, int activation, float low, float high) {
    if (!apus_depthwise_direct_supported(g)) return;
    float zeroRow[DIRECT_ZERO_FLOATS] __attribute__((aligned(32)));
    // The zero row's floats a block reads, from column −DIRECT_MAX_PAD.
    const long used = DIRECT_MAX_PAD + (g->output_width + 7) / 8 * 8 * g->stride + g->kernel + 16;
    memset(zeroRow, 0, sizeof(float) * (size_t)used);
    const float *zeros = zeroRow + DIRECT_MAX_PAD;
#define DIRECT_ROWS(K, S)                                                                                              \
    direct_rows(g, input, zeros, first, count, weights, bias, residual, output, activation, low, high, K, S)
    switch (g->kernel * 10 + g->stride) {
    case 31: DIRECT_ROWS(3, 1); break;
    case 32: DIRECT_ROWS(3, 2); break;
    case 51: DIRECT_ROWS(5, 1); break;
    case 52: DIRECT_ROWS(5, 2); break;
    default: break;
    }
#undef DIRECT_ROWS
}

/// Floats of the channel kernel's scratch, on the stack (60 KiB: a 28 × 28 output map at stride 1
/// with a 5 × 5 kernel fits, 28 × 28 → 14 × 14 at stride 2 too; 56 × 56 → 28 × 28 does not, and
/// would not stay in L1 either).
#define CHANNEL_FLOATS 15360

/// The zero-padded map the channel kernel reads: `rows` × `columns` positions from row −pad_top,
/// column −pad_left, each a vector of eight channels.
typedef struct {
    long rows, columns;
} channel_layout;

/// The channel layout of `g`, or 0 when the channel kernel does not take it: kernels of 1 to 7,
/// stride 1 or 2, output maps of at most 28 × 28 whose padded map and sums fit the scratch.
static int channel_layout_of(const apus_depthwise_geometry *g, channel_layout *c) {
    if (g->kernel < 1 || g->kernel > 7 || (g->stride != 1 && g->stride != 2)) return 0;
    if (g->output_height < 1 || g->output_width < 1 || g->output_height > 28 || g->output_width > 28) return 0;
    if (g->input_height < 1 || g->input_width < 1 || g->pad_top < 0 || g->pad_left < 0) return 0;
    if (g->input_height > CHANNEL_FLOATS || g->input_width > CHANNEL_FLOATS) return 0;
    c->rows = (g->output_height - 1) * g->stride + g->kernel;
    c->columns = (g->output_width - 1) * g->stride + g->kernel;
    return 8 * (c->rows * c->columns + g->output_height * g->output_width) <= CHANNEL_FLOATS &&
           g->input_height * g->input_width <= CHANNEL_FLOATS / 8;
}

int apus_depthwise_channels_supported(const apus_depthwise_geometry *g) {
    channel_layout c;
    return channel_layout_of(g, &c);
}

/// Loads floats `column ..< column + 8` of the eight rows `first + i · rowStride` (those at
/// `valid` or past it as zero), transposed: `v[j]` holds float `column + j` of every row.
TARGET_AVX2 static ALWAYS_INLINE void load_transposed(const float *first, long rowStride, long column, long valid,
                                                      __m256 v[8]) {
    if (column + 8 <= valid) {
        for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(first + i * rowStride + column);
    } else {
        const __m256i mask = lanes_inside(column, valid);
        for (int i = 0; i < 8; i++) v[i] = _mm256_maskload_ps(first + i * rowStride + column, mask);
    }
    transpose8(v);
}

/// `R` outputs of the flattened output plane from position `p0` on (past its end the last one
/// again, never stored), each the sum of bias, then the taps in (ky, kx) order, one fused
/// multiply-add each, into `sums` (one vector of eight channels per position).
TARGET_AVX2 static ALWAYS_INLINE void channel_block(const int K, const int S, const int R, long k, long outW,
                                                    long outPlane, long columns, const float *map,
                                                    const __m256 *weights, __m256 b, long p0, float *sums) {
    const float *base[8];
    __m256 acc[8];
    for (int j = 0; j < R; j++) {
        long p = p0 + j < outPlane ? p0 + j : outPlane - 1;
        base[j] = map + 8 * ((p / outW) * S * columns + (p % outW) * S);
        acc[j] = b;
    }
    for (long ky = 0; ky < (K ? K : k); ky++) {
        for (long kx = 0; kx < (K ? K : k); kx++) {
            const __m256 w = weights[ky * (K ? K : k) + kx];
            const long offset = 8 * (ky * columns + kx);
            for (int j = 0; j < R; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_load_ps(base[j] + offset), acc[j]);
        }
    }
    for (int j = 0; j < R && p0 + j < outPlane; j++) _mm256_store_ps(sums + 8 * (p0 + j), acc[j]);
}

/// Eight planes of consecutive channels (`in`, `out`, `residual` at the first; `w` and `bias` at
/// its channel) through the channel kernel: the planes become one zero-padded map of eight-lane
/// vectors, one lane per plane (an 8 × 8 transpose per eight positions), so that a tap is one
/// aligned load and one fused multiply-add for eight outputs, eight outputs in flight; the sums go
/// back to planes through the same transpose, then residual and activation. The same operations
/// in the same order as `apus_depthwise_plane_avx2`, so the same bits.
TARGET_AVX2 static ALWAYS_INLINE void channel_group(const int K, const int S, const int ACT,
                                                    const apus_depthwise_geometry *g, const channel_layout *c,
                                                    const int *offsets, float *scratch, const float *in,
                                                    const float *w, const float *bias, float *out,
                                                    const float *residual, __m256 low, __m256 high) {
    const long k = K ? K : g->kernel;
    const long taps = k * k, inPlane = g->input_height * g->input_width;
    const long outW = g->output_width, outPlane = g->output_height * outW;
    float *map = scratch, *sums = scratch + 8 * c->rows * c->columns;
    __m256 v[8];
    for (long s0 = 0; s0 < inPlane; s0 += 8) {
        load_transposed(in, inPlane, s0, inPlane, v);
        for (int j = 0; j < 8 && s0 + j < inPlane; j++) {
            if (offsets[s0 + j] >= 0) _mm256_store_ps(map + 8 * offsets[s0 + j], v[j]);
        }
    }
    __m256 weights[56];
    for (long t0 = 0; t0 < taps; t0 += 8) {
        load_transposed(w, taps, t0, taps, v);
        for (int j = 0; j < 8 && t0 + j < taps; j++) weights[t0 + j] = v[j];
    }
    const __m256 b = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    long p0 = 0;
    for (; p0 + 8 <= outPlane; p0 += 8) channel_block(K, S, 8, k, outW, outPlane, c->columns, map, weights, b, p0, sums);
    if (outPlane - p0 > 4) {
        channel_block(K, S, 8, k, outW, outPlane, c->columns, map, weights, b, p0, sums);
    } else if (outPlane > p0) {
        channel_block(K, S, 4, k, outW, outPlane, c->columns, map, weights, b, p0, sums);
    }
    // Back to planes: eight positions of the eight planes per transpose.
    for (long s0 = 0; s0 < outPlane; s0 += 8) {
        const long n = outPlane - s0 < 8 ? outPlane - s0 : 8;
        for (int j = 0; j < 8; j++) v[j] = j < n ? _mm256_load_ps(sums + 8 * (s0 + j)) : _mm256_setzero_ps();
        transpose8(v);
        const __m256i mask = lanes_inside(0, n);
        for (int i = 0; i < 8; i++) {
            finish_store8(ACT, v[i], out + i * outPlane + s0, residual ? residual + i * outPlane + s0 : NULL, n, mask,
                          low, high);
        }
    }
}

/// The groups of one call with the kernel size, stride and activation fixed.
TARGET_AVX2 static ALWAYS_INLINE void channel_groups(const int K, const int S, const int ACT,
                                                     const apus_depthwise_geometry *g, const channel_layout *c,
                                                     const int *offsets, float *scratch, const float *input,
                                                     const float *weights, long channels, long first, long groups,
                                                     float *output, const apus_gemm_epilogue *e) {
    const long inPlane = g->input_height * g->input_width, outPlane = g->output_height * g->output_width;
    const long taps = g->kernel * g->kernel;
    const __m256 low = _mm256_set1_ps(e->low), high = _mm256_set1_ps(e->high);
    for (long t = first; t < first + 8 * groups; t += 8) {
        const long channel = t % channels;
        channel_group(K, S, ACT, g, c, offsets, scratch, input + t * inPlane, weights + channel * taps,
                      e->bias ? e->bias + channel : NULL, output + t * outPlane,
                      e->residual ? e->residual + t * outPlane : NULL, low, high);
    }
}

#define CHANNEL_GROUPS_OF(K, S, ACT)                                                                                   \
    channel_groups(K, S, ACT, g, &layout, offsets, scratch, input, weights, channels, first, groups, output, &e)

/// `CHANNEL_GROUPS_OF` with the activation fixed.
#define CHANNEL_GROUPS_BY_ACTIVATION(K, S) BY_ACTIVATION8(e.activation, CHANNEL_GROUPS_OF, K, S)

TARGET_AVX2 void apus_depthwise_channels_avx2(const apus_depthwise_geometry *g, const float *input,
                                              const float *weights, long channels, long first, long groups,
                                              float *output, const apus_gemm_epilogue *epilogue) {
    channel_layout layout;
    if (groups <= 0 || !channel_layout_of(g, &layout)) return;
    const apus_gemm_epilogue e = epilogue ? *epilogue : (apus_gemm_epilogue){0};
    float scratch[CHANNEL_FLOATS] __attribute__((aligned(32)));
    // Zeroed once: the padding sits at the same places for every group; and where each input
    // position goes in the padded map (−1: no output reads it).
    memset(scratch, 0, sizeof(float) * (size_t)(8 * layout.rows * layout.columns));
    int offsets[CHANNEL_FLOATS / 8];
    const long inPlane = g->input_height * g->input_width;
    for (long s = 0; s < inPlane; s++) {
        long y = s / g->input_width + g->pad_top, x = s % g->input_width + g->pad_left;
        offsets[s] = y < layout.rows && x < layout.columns ? (int)(y * layout.columns + x) : -1;
    }
    if (g->stride == 1) {
        switch (g->kernel) {
        case 3: CHANNEL_GROUPS_BY_ACTIVATION(3, 1) return;
        case 5: CHANNEL_GROUPS_BY_ACTIVATION(5, 1) return;
        default: CHANNEL_GROUPS_BY_ACTIVATION(0, 1) return;
        }
    }
    switch (g->kernel) {
    case 3: CHANNEL_GROUPS_BY_ACTIVATION(3, 2) return;
    case 5: CHANNEL_GROUPS_BY_ACTIVATION(5, 2) return;
    default: CHANNEL_GROUPS_BY_ACTIVATION(0, 2) return;
    }
}

#else

int apus_depthwise_plane_supported(const apus_depthwise_plane_geometry *g) {
    (void)g;
    return 0;
}

void apus_depthwise_plane_avx2(const apus_depthwise_plane_geometry *g, const float *plane, long first, long count,
                               const float *weights, float bias, const float *residual, float *output, int activation,
                               float low, float high) {
    (void)g; (void)plane; (void)first; (void)count; (void)weights; (void)bias; (void)residual; (void)output;
    (void)activation; (void)low; (void)high;
}

int apus_depthwise_direct_supported(const apus_depthwise_geometry *g) {
    (void)g;
    return 0;
}

void apus_depthwise_direct_avx2(const apus_depthwise_geometry *g, const float *input, long first, long count,
                                const float *weights, float bias, const float *residual, float *output,
                                int activation, float low, float high) {
    (void)g; (void)input; (void)first; (void)count; (void)weights; (void)bias; (void)residual; (void)output;
    (void)activation; (void)low; (void)high;
}

int apus_depthwise_channels_supported(const apus_depthwise_geometry *g) {
    (void)g;
    return 0;
}

void apus_depthwise_channels_avx2(const apus_depthwise_geometry *g, const float *input, const float *weights,
                                  long channels, long first, long groups, float *output,
                                  const apus_gemm_epilogue *epilogue) {
    (void)g; (void)input; (void)weights; (void)channels; (void)first; (void)groups; (void)output; (void)epilogue;
}

#endif
