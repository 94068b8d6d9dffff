// Depthwise 3 × 3 and 5 × 5 convolution (strides 1 and 2) with AVX2 and FMA, for CPUs without
// AVX-512: the row kernel of `DepthwiseConv2D` (Swift) on the same phase-split padded plane, eight
// columns per vector, with fused multiply-adds. The Swift version is compiled for SSE2 in the
// default build (four registers per sixteen columns, separate multiplies and adds, spills).
#include "apus_kernels.h"

#if defined(__x86_64__)

#include "avx2_common.h"

/// Residual (when given), then the activation, on one vector of sums.
TARGET_AVX2 static ALWAYS_INLINE __m256 finish(__m256 acc, const float *residual, __m256i mask, int full,
                                               int activation, __m256 low, __m256 high) {
    if (residual) acc = _mm256_add_ps(acc, full ? _mm256_loadu_ps(residual) : _mm256_maskload_ps(residual, mask));
    return activate8(activation, acc, low, high);
}

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
        int full = left >= 8;
        __m256i mask = lanes_inside(0, left);
        for (int r = 0; r < 1 + second; r++) {
            long index = (oy + r) * outW + column;
            __m256 value = finish(r ? acc1[i] : acc0[i], residual ? residual + index : NULL, mask, full, activation,
                                  low, high);
            if (full) {
                _mm256_storeu_ps(output + index, value);
            } else {
                _mm256_maskstore_ps(output + index, mask, value);
            }
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

#endif
