#include "apus_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MR APUS_GEMM_PANEL_ROWS
/// Reduction steps per block: one 32-column strip of `b` (KC × 32 floats = 16 KB) stays in L1
/// while every row panel passes over it.
#define KC 128

size_t apus_gemm_packed_count(long m, long k) {
    long panels = (m + MR - 1) / MR;
    return (size_t)(panels * MR * k);
}

void apus_gemm_pack(const float *a, long lda, long m, long k, float *packed) {
    long panels = (m + MR - 1) / MR;
    long paddedRows = panels * MR;
    for (long k0 = 0; k0 < k; k0 += KC) {
        long kc = k - k0 < KC ? k - k0 : KC;
        for (long p = 0; p < panels; p++) {
            float *dest = packed + k0 * paddedRows + p * MR * kc;
            for (long kk = 0; kk < kc; kk++) {
                for (long r = 0; r < MR; r++) {
                    long row = p * MR + r;
                    dest[kk * MR + r] = row < m ? a[row * lda + k0 + kk] : 0.0f;
                }
            }
        }
    }
}

void apus_gemm_pack_transposed(const float *a, long lda, long k, long m, float *packed) {
    long panels = (m + MR - 1) / MR;
    long paddedRows = panels * MR;
    for (long k0 = 0; k0 < k; k0 += KC) {
        long kc = k - k0 < KC ? k - k0 : KC;
        for (long p = 0; p < panels; p++) {
            float *dest = packed + k0 * paddedRows + p * MR * kc;
            long rows = m - p * MR < MR ? m - p * MR : MR;
            for (long kk = 0; kk < kc; kk++) {
                const float *source = a + (k0 + kk) * lda + p * MR;
                long r = 0;
                for (; r < rows; r++) dest[kk * MR + r] = source[r];
                for (; r < MR; r++) dest[kk * MR + r] = 0.0f;
            }
        }
    }
}

#if defined(__x86_64__)

#define TARGET __attribute__((target("avx512f")))
#ifndef PREFETCH
#define PREFETCH 2048
#endif

/// The epilogue of one vector of row `r`: + bias, + residual, then the activation. Max and min
/// take the running value as their second operand, which they return when it is NaN, so NaN
/// passes through like in the Swift epilogue.
TARGET static inline __m512 finish(
    __m512 v, const apus_gemm_epilogue *epi, const float *bias, long r, const float *residual, __mmask16 mask) {
    if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[r]));
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual));
    switch (epi->activation) {
    case APUS_GEMM_RELU: v = _mm512_max_ps(_mm512_setzero_ps(), v); break;
    case APUS_GEMM_CLIP:
        v = _mm512_max_ps(_mm512_set1_ps(epi->low), v);
        v = _mm512_min_ps(_mm512_set1_ps(epi->high), v);
        break;
    default: break;
    }
    return v;
}

/// One 8 × 32 block (two vectors per row; `m0`/`m1` mask the columns that exist).
TARGET static inline void kernel_8x32(
    long kc, const float *a, const float *b, long ldb, float *c, long ldc, long rows, __mmask16 m0, __mmask16 m1,
    int accumulate, const apus_gemm_epilogue *epi, const float *bias, const float *residual) {
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
    __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
    if (accumulate) {
        // Continue the running sums so every element adds its terms in ascending k order.
        float *row = c;
#define LOADROW(r)                                                                                                     \
    if (rows > r) {                                                                                                    \
        c##r##0 = _mm512_maskz_loadu_ps(m0, row);                                                                      \
        c##r##1 = _mm512_maskz_loadu_ps(m1, row + 16);                                                                 \
    }                                                                                                                  \
    row += ldc;
        LOADROW(0) LOADROW(1) LOADROW(2) LOADROW(3) LOADROW(4) LOADROW(5) LOADROW(6) LOADROW(7)
#undef LOADROW
    }
    for (long kk = 0; kk < kc; kk++) {
        // The packed weights stream from memory once per block; fetch ahead of the loads.
        _mm_prefetch((const char *)(a + PREFETCH), _MM_HINT_T0);
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        __m512 av;
#define STEP(r)                                                                                                        \
    av = _mm512_set1_ps(a[r]);                                                                                         \
    c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                                                                        \
    c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
#undef STEP
        a += MR;
        b += ldb;
    }
    if (epi) {
        const float *res = residual;
#define FINISHROW(r)                                                                                                   \
    if (rows > r) {                                                                                                    \
        c##r##0 = finish(c##r##0, epi, bias, r, res, m0);                                                              \
        c##r##1 = finish(c##r##1, epi, bias, r, res ? res + 16 : 0, m1);                                               \
    }                                                                                                                  \
    if (res) res += epi->residual_stride;
        FINISHROW(0) FINISHROW(1) FINISHROW(2) FINISHROW(3) FINISHROW(4) FINISHROW(5) FINISHROW(6) FINISHROW(7)
#undef FINISHROW
    }
    float *row = c;
#define STOREROW(r)                                                                                                    \
    if (rows > r) {                                                                                                    \
        _mm512_mask_storeu_ps(row, m0, c##r##0);                                                                       \
        _mm512_mask_storeu_ps(row + 16, m1, c##r##1);                                                                  \
    }                                                                                                                  \
    row += ldc;
    STOREROW(0) STOREROW(1) STOREROW(2) STOREROW(3) STOREROW(4) STOREROW(5) STOREROW(6) STOREROW(7)
#undef STOREROW
}

/// One 8 × 16 block (one vector per row), for the last strip when at most 16 columns remain.
TARGET static inline void kernel_8x16(
    long kc, const float *a, const float *b, long ldb, float *c, long ldc, long rows, __mmask16 m0, int accumulate,
    const apus_gemm_epilogue *epi, const float *bias, const float *residual) {
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(), c3 = _mm512_setzero_ps();
    __m512 c4 = _mm512_setzero_ps(), c5 = _mm512_setzero_ps(), c6 = _mm512_setzero_ps(), c7 = _mm512_setzero_ps();
    if (accumulate) {
        float *row = c;
#define LOADROW(r)                                                                                                     \
    if (rows > r) c##r = _mm512_maskz_loadu_ps(m0, row);                                                               \
    row += ldc;
        LOADROW(0) LOADROW(1) LOADROW(2) LOADROW(3) LOADROW(4) LOADROW(5) LOADROW(6) LOADROW(7)
#undef LOADROW
    }
    for (long kk = 0; kk < kc; kk++) {
        _mm_prefetch((const char *)(a + PREFETCH), _MM_HINT_T0);
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
#define STEP(r) c##r = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b0, c##r);
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
#undef STEP
        a += MR;
        b += ldb;
    }
    if (epi) {
        const float *res = residual;
#define FINISHROW(r)                                                                                                   \
    if (rows > r) c##r = finish(c##r, epi, bias, r, res, m0);                                                          \
    if (res) res += epi->residual_stride;
        FINISHROW(0) FINISHROW(1) FINISHROW(2) FINISHROW(3) FINISHROW(4) FINISHROW(5) FINISHROW(6) FINISHROW(7)
#undef FINISHROW
    }
    float *row = c;
#define STOREROW(r)                                                                                                    \
    if (rows > r) _mm512_mask_storeu_ps(row, m0, c##r);                                                                \
    row += ldc;
    STOREROW(0) STOREROW(1) STOREROW(2) STOREROW(3) STOREROW(4) STOREROW(5) STOREROW(6) STOREROW(7)
#undef STOREROW
}

static inline __mmask16 mask_for(long columns) {
    if (columns >= 16) return (__mmask16)0xFFFF;
    if (columns <= 0) return 0;
    return (__mmask16)((1u << columns) - 1u);
}

TARGET void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, const apus_gemm_epilogue *epilogue) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (long r = 0; r < m; r++) memset(c + r * ldc, 0, (size_t)n * sizeof(float));
        if (epilogue) {
            // Nothing to sum: the epilogue runs on zeros, through the same vector code.
            for (long p = 0; p < (m + MR - 1) / MR; p++) {
                long rows = m - p * MR < MR ? m - p * MR : MR;
                for (long r = 0; r < rows; r++) {
                    for (long n0 = 0; n0 < n; n0 += 16) {
                        __mmask16 mask = n - n0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - n0)) - 1u);
                        float *out = c + (p * MR + r) * ldc + n0;
                        const float *res =
                            epilogue->residual ? epilogue->residual + (p * MR + r) * epilogue->residual_stride + n0 : 0;
                        const float *bias = epilogue->bias ? epilogue->bias + p * MR : 0;
                        _mm512_mask_storeu_ps(
                            out, mask, finish(_mm512_maskz_loadu_ps(mask, out), epilogue, bias, r, res, mask));
                    }
                }
            }
        }
        return;
    }
    long panels = (m + MR - 1) / MR;
    long paddedRows = (packedRows + MR - 1) / MR * MR;
    for (long k0 = 0; k0 < k; k0 += KC) {
        long kc = k - k0 < KC ? k - k0 : KC;
        int accumulate = k0 > 0;
        // The epilogue runs when the last block stores its sums.
        const apus_gemm_epilogue *epi = k0 + kc >= k ? epilogue : 0;
#define EPILOGUE_ARGS(p, n0)                                                                                           \
    const float *bias = epi && epi->bias ? epi->bias + (p) * MR : 0;                                                   \
    const float *residual = epi && epi->residual ? epi->residual + (p) * MR * epi->residual_stride + (n0) : 0;
        const float *block = packed + k0 * paddedRows + firstRow * kc;
        // When the block of b (kc × n) fits in L2, walk the row panels outside so each panel of A
        // is read once per block (A is the large operand for late layers: megabytes of weights);
        // otherwise keep one 32-column strip of b in L1 while every row panel passes over it.
        if (kc * n * (long)sizeof(float) <= 256 * 1024) {
            for (long p = 0; p < panels; p++) {
                long rows = m - p * MR < MR ? m - p * MR : MR;
                const float *aPanel = block + p * MR * kc;
                for (long n0 = 0; n0 < n; n0 += 32) {
                    long columns = n - n0;
                    const float *bStrip = b + k0 * ldb + n0;
                    float *cBlock = c + p * MR * ldc + n0;
                    EPILOGUE_ARGS(p, n0)
                    if (columns > 16) {
                        kernel_8x32(
                            kc, aPanel, bStrip, ldb, cBlock, ldc, rows, mask_for(columns), mask_for(columns - 16),
                            accumulate, epi, bias, residual);
                    } else {
                        kernel_8x16(
                            kc, aPanel, bStrip, ldb, cBlock, ldc, rows, mask_for(columns), accumulate, epi, bias,
                            residual);
                    }
                }
            }
            continue;
        }
        for (long n0 = 0; n0 < n; n0 += 32) {
            long columns = n - n0;
            const float *bStrip = b + k0 * ldb + n0;
            for (long p = 0; p < panels; p++) {
                long rows = m - p * MR < MR ? m - p * MR : MR;
                const float *aPanel = block + p * MR * kc;
                float *cBlock = c + p * MR * ldc + n0;
                EPILOGUE_ARGS(p, n0)
                if (columns > 16) {
                    kernel_8x32(
                        kc, aPanel, bStrip, ldb, cBlock, ldc, rows, mask_for(columns), mask_for(columns - 16),
                        accumulate, epi, bias, residual);
                } else {
                    kernel_8x16(
                        kc, aPanel, bStrip, ldb, cBlock, ldc, rows, mask_for(columns), accumulate, epi, bias,
                        residual);
                }
            }
        }
    }
}

#else

void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, const apus_gemm_epilogue *epilogue) {
    (void)epilogue;
    (void)packed; (void)packedRows; (void)firstRow; (void)k; (void)m; (void)n; (void)b; (void)ldb; (void)c; (void)ldc;
}

#endif
