// Max pooling in AVX2 for CPUs without AVX-512 (Pool2D.swift chooses it at run time): max_pool.c's
// algorithm and order, eight columns per vector.
#include "apus_kernels.h"

#if defined(__x86_64__)
#include "avx2_common.h"

/// `v` where it is larger than `best` or NaN, else `best` (max_pool.c's `max_keeping_nan`).
TARGET_AVX2_NO_FMA static ALWAYS_INLINE __m256 max_keeping_nan8(__m256 best, __m256 v) {
    __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(best, v, take);
}

/// The even lanes of the sixteen floats at `w` (stride-2 columns).
TARGET_AVX2_NO_FMA static ALWAYS_INLINE __m256 even_columns(const float *w) {
    // [w0 w2 w8 w10 | w4 w6 w12 w14], then the 64-bit pairs reordered to w0 w2 w4 w6 w8 w10 w12 w14.
    __m256 pairs = _mm256_shuffle_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(w + 8), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0)));
}

/// The lanes of `mask` loaded from `p`, −∞ in the others (masked-off lanes are never read).
TARGET_AVX2_NO_FMA static ALWAYS_INLINE __m256 load_or_lowest(const float *p, __m256i mask, __m256 lowest) {
    return _mm256_blendv_ps(lowest, _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
}

/// The maximum over window rows `ky0 ..< ky1` (from row `y0`) of the eight columns at `x`: plain
/// loads when `FULL`, else the lanes of `mask` with −∞ in the others; −∞ for an empty window.
TARGET_AVX2_NO_FMA static ALWAYS_INLINE __m256 window_rows8(
    const int FULL, const float *in, long inW, long y0, long ky0, long ky1, long x, __m256i mask, __m256 lowest) {
    if (ky0 >= ky1) return lowest;
    const float *first = in + (y0 + ky0) * inW + x;
    __m256 best = FULL ? _mm256_loadu_ps(first) : load_or_lowest(first, mask, lowest);
    for (long ky = ky0 + 1; ky < ky1; ky++) {
        const float *p = in + (y0 + ky) * inW + x;
        best = max_keeping_nan8(best, FULL ? _mm256_loadu_ps(p) : load_or_lowest(p, mask, lowest));
    }
    return best;
}

TARGET_AVX2_NO_FMA void apus_max_pool_avx2(
    const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer) {
    const long inW = g->input_width, inH = g->input_height, outW = g->output_width;
    const long kh = g->kernel_height, kw = g->kernel_width, sh = g->stride_height, sw = g->stride_width;
    long width = g->pad_left + inW;
    if ((outW - 1) * sw + kw > width) width = (outW - 1) * sw + kw;
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
    // The row maximum, −∞ around the input columns (written once: only those are rewritten).
    float *rowMax = buffer, *inside = buffer + g->pad_left;
    const long total = width + APUS_MAX_POOL_SLACK;
    long start = 0;
    for (; start + 8 <= total; start += 8) _mm256_storeu_ps(rowMax + start, lowest);
    if (start < total) _mm256_maskstore_ps(rowMax + start, lanes_inside(start, total), lowest);
    for (long p = 0; p < planes; p++) {
        const float *in = input + p * inH * inW;
        float *out = output + p * g->output_height * outW;
        for (long oy = 0; oy < g->output_height; oy++, out += outW) {
            const long y0 = oy * sh - g->pad_top;
            long ky0 = y0 >= 0 ? 0 : -y0, ky1 = inH - y0 < kh ? inH - y0 : kh;
            if (ky1 < ky0) ky1 = ky0;
            // Whole vectors with plain loads and stores (masked stores are slow on AMD cores),
            // the row's last columns masked.
            long column = 0;
            for (; column + 8 <= inW; column += 8) {
                const __m256i all = _mm256_set1_epi32(-1);
                _mm256_storeu_ps(inside + column, window_rows8(1, in, inW, y0, ky0, ky1, column, all, lowest));
            }
            if (column < inW) {
                const __m256i m = lanes_inside(column, inW);
                _mm256_maskstore_ps(inside + column, m, window_rows8(0, in, inW, y0, ky0, ky1, column, m, lowest));
            }
            for (long x = 0; x < outW; x += 8) {
                __m256 best;
                if (sw == 1) {
                    best = _mm256_loadu_ps(rowMax + x);
                    for (long kx = 1; kx < kw; kx++) best = max_keeping_nan8(best, _mm256_loadu_ps(rowMax + x + kx));
                } else {
                    const float *w = rowMax + 2 * x;
                    best = even_columns(w);
                    for (long kx = 1; kx < kw; kx++) best = max_keeping_nan8(best, even_columns(w + kx));
                }
                if (x + 8 <= outW) {
                    _mm256_storeu_ps(out + x, best);
                } else {
                    _mm256_maskstore_ps(out + x, lanes_inside(x, outW), best);
                }
            }
        }
    }
}

#else

void apus_max_pool_avx2(const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer) {
    (void)g; (void)input; (void)planes; (void)output; (void)buffer;
}

#endif
