// Max pooling in AVX-512 (Pool2D.swift chooses it at run time, like the other kernels): the
// algorithm of the Swift path, whose SIMD16 code is four SSE2 instructions per vector in the
// default build.
#include "apus_kernels.h"
#include "lane_masks.h"

#if defined(__x86_64__)
#include "avx512_common.h"

/// `v` where it is larger than `best` or NaN, else `best` (the Swift path's `maxKeepingNaN`: once
/// NaN, the running maximum stays NaN, and of equal values the first is kept).
TARGET static inline __m512 max_keeping_nan(__m512 best, __m512 v) {
    __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(best, take, v);
}

TARGET void apus_max_pool_avx512(
    const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer) {
    const long inW = g->input_width, inH = g->input_height, outW = g->output_width;
    const long kh = g->kernel_height, kw = g->kernel_width, sh = g->stride_height, sw = g->stride_width;
    long width = g->pad_left + inW;
    if ((outW - 1) * sw + kw > width) width = (outW - 1) * sw + kw;
    const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
    const __m512i evens = even_lanes();
    // The row maximum, −∞ around the input columns (written once: only those are rewritten).
    float *rowMax = buffer, *inside = buffer + g->pad_left;
    const long total = width + APUS_MAX_POOL_SLACK;
    for (long x = 0; x < total; x += 16) _mm512_mask_storeu_ps(rowMax + x, (__mmask16)range_mask(x, total), lowest);
    for (long p = 0; p < planes; p++) {
        const float *in = input + p * inH * inW;
        float *out = output + p * g->output_height * outW;
        for (long oy = 0; oy < g->output_height; oy++, out += outW) {
            const long y0 = oy * sh - g->pad_top;
            long ky0 = y0 >= 0 ? 0 : -y0, ky1 = inH - y0 < kh ? inH - y0 : kh;
            if (ky1 < ky0) ky1 = ky0;
            for (long x = 0; x < inW; x += 16) {
                const __mmask16 m = (__mmask16)range_mask(x, inW);
                __m512 best = lowest;
                if (ky0 < ky1) {
                    best = _mm512_mask_loadu_ps(lowest, m, in + (y0 + ky0) * inW + x);
                    for (long ky = ky0 + 1; ky < ky1; ky++) {
                        best = max_keeping_nan(best, _mm512_mask_loadu_ps(lowest, m, in + (y0 + ky) * inW + x));
                    }
                }
                _mm512_mask_storeu_ps(inside + x, m, best);
            }
            for (long x = 0; x < outW; x += 16) {
                const __mmask16 m = (__mmask16)range_mask(x, outW);
                __m512 best;
                if (sw == 1) {
                    best = _mm512_loadu_ps(rowMax + x);
                    for (long kx = 1; kx < kw; kx++) best = max_keeping_nan(best, _mm512_loadu_ps(rowMax + x + kx));
                } else {
                    const float *w = rowMax + 2 * x;
                    best = _mm512_permutex2var_ps(_mm512_loadu_ps(w), evens, _mm512_loadu_ps(w + 16));
                    for (long kx = 1; kx < kw; kx++) {
                        best = max_keeping_nan(
                            best, _mm512_permutex2var_ps(_mm512_loadu_ps(w + kx), evens, _mm512_loadu_ps(w + kx + 16)));
                    }
                }
                _mm512_mask_storeu_ps(out + x, m, best);
            }
        }
    }
}

#else

void apus_max_pool_avx512(const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer) {
    (void)g; (void)input; (void)planes; (void)output; (void)buffer;
}

#endif
