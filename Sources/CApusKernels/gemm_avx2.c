// The packed GEMM kernel with AVX2 and FMA, for CPUs without AVX-512: the layout of
// `apus_gemm_pack` (panels of 8 rows, blocks of 128 reduction steps) and the arithmetic of
// `apus_gemm_packed_avx512` (each element summed in ascending k with one fused multiply-add per
// term, then bias, residual and activation), so both give the same bits. Blocks of 8 rows × 8
// columns: eight accumulators, one vector of `b` and eight broadcast weights per step.
#include "apus_kernels.h"

#if defined(__x86_64__)

#include "avx2_common.h"

#define MR APUS_GEMM_PANEL_ROWS
#define KC APUS_GEMM_BLOCK_COLUMNS

/// One block of `rows` (≤ 8) rows × 8 columns (`FULL`) or fewer (`mask`) over `kc` steps.
TARGET_AVX2 static ALWAYS_INLINE void block8x8(
    const int ACT, const int FULL, long kc, const float *a, const float *b, long ldb, float *c, long ldc, long rows,
    __m256i mask, int accumulate, const apus_gemm_epilogue *epi, const float *bias, const float *residual) {
    __m256 acc[MR];
    for (int r = 0; r < MR; r++) {
        if (accumulate && r < rows) {
            acc[r] = FULL ? _mm256_loadu_ps(c + r * ldc) : _mm256_maskload_ps(c + r * ldc, mask);
        } else {
            acc[r] = _mm256_setzero_ps();
        }
    }
    for (long kk = 0; kk < kc; kk++) {
        __m256 bv = FULL ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, mask);
        for (int r = 0; r < MR; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r), bv, acc[r]);
        a += MR;
        b += ldb;
    }
    const __m256 low = _mm256_set1_ps(epi ? epi->low : 0.0f), high = _mm256_set1_ps(epi ? epi->high : 0.0f);
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        __m256 value = acc[r];
        if (epi) {
            if (bias) value = _mm256_add_ps(value, _mm256_set1_ps(bias[r]));
            if (residual) {
                const float *source = residual + r * epi->residual_stride;
                value = _mm256_add_ps(value, FULL ? _mm256_loadu_ps(source) : _mm256_maskload_ps(source, mask));
            }
            value = activate8(ACT, value, low, high);
        }
        if (FULL) {
            _mm256_storeu_ps(c + r * ldc, value);
        } else {
            _mm256_maskstore_ps(c + r * ldc, mask, value);
        }
    }
}

/// `block8x8` with the activation and the full/partial choice as constants.
TARGET_AVX2 static void block(
    long kc, const float *a, const float *b, long ldb, float *c, long ldc, long rows, long columns, int accumulate,
    const apus_gemm_epilogue *epi, const float *bias, const float *residual) {
    const __m256i mask = lanes_inside(0, columns);
    const int activation = epi ? epi->activation : APUS_GEMM_NONE;
#define BLOCK(ACT, FULL) block8x8(ACT, FULL, kc, a, b, ldb, c, ldc, rows, mask, accumulate, epi, bias, residual)
#define BY_ACTIVATION(FULL)                                                                                            \
    switch (activation) {                                                                                              \
    case APUS_GEMM_RELU: BLOCK(APUS_GEMM_RELU, FULL); break;                                                           \
    case APUS_GEMM_CLIP: BLOCK(APUS_GEMM_CLIP, FULL); break;                                                           \
    case APUS_GEMM_SIGMOID: BLOCK(APUS_GEMM_SIGMOID, FULL); break;                                                     \
    case APUS_GEMM_SILU: BLOCK(APUS_GEMM_SILU, FULL); break;                                                           \
    default: BLOCK(APUS_GEMM_NONE, FULL); break;                                                                       \
    }
    if (columns >= 8) {
        BY_ACTIVATION(1)
    } else {
        BY_ACTIVATION(0)
    }
#undef BY_ACTIVATION
#undef BLOCK
}

TARGET_AVX2 void apus_gemm_packed_avx2(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    if (m <= 0 || n <= 0) return;
    long panels = (m + MR - 1) / MR;
    long paddedRows = (packedRows + MR - 1) / MR * MR;
    // k = 0: one pass of the blocks over no steps, which starts from zeros (or c) and applies the
    // epilogue.
    long blocks = k > 0 ? (k + KC - 1) / KC : 1;
    for (long blockIndex = 0; blockIndex < blocks; blockIndex++) {
        long k0 = blockIndex * KC;
        long kc = k - k0 < KC ? k - k0 : KC;
        if (kc < 0) kc = 0;
        int continues = accumulate || k0 > 0;
        // The epilogue runs when the last block stores its sums.
        const apus_gemm_epilogue *epi = blockIndex == blocks - 1 ? epilogue : 0;
        const float *blockA = packed + k0 * paddedRows + firstRow * kc;
        // A block of b that fits in L2: each panel of A passes over it once; otherwise one strip
        // of b (8 columns × kc) stays in L1 while every panel passes over it.
        int panelsOutside = kc * n * (long)sizeof(float) <= 256 * 1024;
        long outer = panelsOutside ? panels : (n + 7) / 8;
        long inner = panelsOutside ? (n + 7) / 8 : panels;
        for (long i = 0; i < outer; i++) {
            for (long j = 0; j < inner; j++) {
                long p = panelsOutside ? i : j;
                long n0 = 8 * (panelsOutside ? j : i);
                long rows = m - p * MR < MR ? m - p * MR : MR;
                const float *bias = epi && epi->bias ? epi->bias + p * MR : 0;
                const float *residual = epi && epi->residual ? epi->residual + p * MR * epi->residual_stride + n0 : 0;
                block(
                    kc, blockA + p * MR * kc, b + k0 * ldb + n0, ldb, c + p * MR * ldc + n0, ldc, rows, n - n0,
                    continues, epi, bias, residual);
            }
        }
    }
}

#else

void apus_gemm_packed_avx2(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    (void)packed; (void)packedRows; (void)firstRow; (void)k; (void)m; (void)n; (void)b; (void)ldb; (void)c;
    (void)ldc; (void)accumulate; (void)epilogue;
}

#endif
