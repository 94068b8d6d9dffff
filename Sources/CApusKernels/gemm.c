#include "apus_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MR APUS_GEMM_PANEL_ROWS
/// Reduction steps per block: one strip of `b` (KC × 48 floats = 24 KB at most) stays in L1
/// while every row panel passes over it.
#define KC APUS_GEMM_BLOCK_COLUMNS

size_t apus_gemm_packed_count(long m, long k) {
    long panels = (m + MR - 1) / MR;
    return (size_t)(panels * MR * k);
}

void apus_gemm_pack(const float *a, long lda, long m, long k, float *packed) {
    apus_gemm_pack_panels(a, lda, m, k, 0, (m + MR - 1) / MR, packed);
}

/// `kc` columns of one panel (MR values each, column by column) times their scales.
static void scale_panel(const float *source, const float *scale, long kc, float *dest) {
    for (long kk = 0; kk < kc; kk++) {
        float s = scale[kk];
        for (long r = 0; r < MR; r++) dest[kk * MR + r] = source[kk * MR + r] * s;
    }
}

#if defined(__x86_64__)
/// `scale_panel` two columns per vector: lanes 0–7 (column kk) times `scale[kk]`, lanes 8–15 times
/// `scale[kk + 1]`, the sixteen scales of eight such vectors from one load. The same products.
/// (The loop above, compiled for SSE2, took 2.4 % of efficientnet_b0's time at 1 thread.)
__attribute__((target("avx512f"))) static void scale_panel_avx512(
    const float *source, const float *scale, long kc, float *dest) {
    const __m512i pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    long kk = 0;
    for (; kk + 16 <= kc; kk += 16) {
        const __m512 s = _mm512_loadu_ps(scale + kk);
        for (int j = 0; j < 8; j++) {
            const __m512 sv = _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(2 * j)), s);
            const long at = (kk + 2 * j) * MR;
            _mm512_storeu_ps(dest + at, _mm512_mul_ps(_mm512_loadu_ps(source + at), sv));
        }
    }
    scale_panel(source + kk * MR, scale + kk, kc - kk, dest + kk * MR);
}
#endif

void apus_gemm_packed_scale_columns(const float *packed, long m, long k, const float *scale, long firstPanel,
                                    long panelCount, long kBegin, long kEnd, float *out) {
    long paddedRows = (m + MR - 1) / MR * MR;
    if (kBegin < 0) kBegin = 0;
    if (kEnd > k) kEnd = k;
#if defined(__x86_64__)
    // The packed kernel also runs on AVX2-only CPUs (gemm_avx2.c), which take the plain loop.
    int avx512 = __builtin_cpu_supports("avx512f");
#endif
    for (long k0 = kBegin / KC * KC; k0 < kEnd; k0 += KC) {
        // A block holds every panel, each column by column: MR values of column k0 + kk at a
        // time, so the block's columns [lo, hi) of a panel are one run of its floats.
        const long width = k - k0 < KC ? k - k0 : KC;
        const long lo = k0 > kBegin ? k0 : kBegin, hi = k0 + width < kEnd ? k0 + width : kEnd;
        for (long p = firstPanel; p < firstPanel + panelCount; p++) {
            const long at = k0 * paddedRows + p * MR * width + (lo - k0) * MR;
#if defined(__x86_64__)
            if (avx512) {
                scale_panel_avx512(packed + at, scale + lo, hi - lo, out + at);
                continue;
            }
#endif
            scale_panel(packed + at, scale + lo, hi - lo, out + at);
        }
    }
}

#if defined(__x86_64__)
/// Eight whole rows × eight columns of one panel, transposed in registers: `dest[j · 8 + r]` =
/// `source[r · lda + j]`.
__attribute__((target("avx2"))) static void pack_block8x8(const float *source, long lda, float *dest) {
    __m256 r0 = _mm256_loadu_ps(source), r1 = _mm256_loadu_ps(source + lda);
    __m256 r2 = _mm256_loadu_ps(source + 2 * lda), r3 = _mm256_loadu_ps(source + 3 * lda);
    __m256 r4 = _mm256_loadu_ps(source + 4 * lda), r5 = _mm256_loadu_ps(source + 5 * lda);
    __m256 r6 = _mm256_loadu_ps(source + 6 * lda), r7 = _mm256_loadu_ps(source + 7 * lda);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dest, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dest + 8, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dest + 16, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dest + 24, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dest + 32, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dest + 40, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dest + 48, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dest + 56, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

void apus_gemm_pack_panels(const float *a, long lda, long m, long k, long firstPanel, long panelCount, float *packed) {
    long paddedRows = (m + MR - 1) / MR * MR;
#if defined(__x86_64__) && MR == 8
    int avx2 = __builtin_cpu_supports("avx2");
#endif
    for (long p = firstPanel; p < firstPanel + panelCount; p++) {
        for (long k0 = 0; k0 < k; k0 += KC) {
            long kc = k - k0 < KC ? k - k0 : KC;
            float *dest = packed + k0 * paddedRows + p * MR * kc;
            long done = 0;
#if defined(__x86_64__) && MR == 8
            // Whole panels: eight columns at a time through registers (the same bytes).
            if (avx2 && p * MR + MR <= m) {
                for (; done + 8 <= kc; done += 8) pack_block8x8(a + p * MR * lda + k0 + done, lda, dest + done * MR);
            }
#endif
            for (long r = 0; r < MR; r++) {
                long row = p * MR + r;
                if (row < m) {
                    const float *source = a + row * lda + k0;
                    for (long kk = done; kk < kc; kk++) dest[kk * MR + r] = source[kk];
                } else {
                    for (long kk = done; kk < kc; kk++) dest[kk * MR + r] = 0.0f;
                }
            }
        }
    }
}

#if defined(__x86_64__)

#include "avx512_common.h"
#include "prefetch_stream.h"

#ifndef PREFETCH
#define PREFETCH 2048
#endif

TARGET void apus_logistic_avx512(float *x, long n, int silu) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, logistic16(_mm512_loadu_ps(x + i), silu));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, mask, logistic16(_mm512_maskz_loadu_ps(mask, x + i), silu));
    }
}

/// One block of 8 rows × `NV` vectors of 16 columns (`mask[v]` marks the columns that exist):
/// 8·NV accumulators in registers for the whole block of k. Instantiated below for NV = 1, 2, 3
/// with the constant propagated, so that the loops unroll and the arrays stay in registers.
TARGET static inline __attribute__((always_inline)) void kernel_8xnv(
    const int NV, const int ACT, const int TAIL, long kc, const float *a, const float *b, long ldb, float *c, long ldc,
    long rows, const __mmask16 *mask, int accumulate, const apus_gemm_epilogue *epi, const float *bias,
    const float *residual, const float *bNext, const char *ahead, long aheadStride) {
    __m512 acc[MR][3];
    // `TAIL` (up to 4; `strip` instantiates 0 and 1, with more the accumulators spill) more
    // columns right after the 16·NV, computed down the rows: the panel's eight values at one k are
    // one 8-lane vector, so they cost one load and TAIL fused multiply-adds per k on top of the
    // block's 8·NV, where a separate pass would stream the weights a second time. Lane r of
    // tail[j] is row r of column 16·NV + j; each sum is the same ascending chain of fused
    // multiply-adds as in the wide part and in kernel_columns.
    __m256 tail[4];
    const __mmask16 rowMask = (__mmask16)(rows >= MR ? (1u << MR) - 1u : (1u << rows) - 1u);
    const __m512i rowsOfC = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_set1_epi32((int)ldc));
    for (int j = 0; j < TAIL; j++) {
        tail[j] = accumulate ? _mm512_castps512_ps256(
                                   _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rowMask, rowsOfC, c + 16 * NV + j, 4))
                             : _mm256_setzero_ps();
    }
    for (int r = 0; r < MR; r++) {
        for (int v = 0; v < NV; v++) {
            // Continuing the running sums keeps every element's terms in ascending k order.
            acc[r][v] = accumulate && rows > r ? _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v)
                                               : _mm512_setzero_ps();
        }
    }
    if (epi) {
        // The block's residual, and its outputs when nothing was stored there yet, are fetched
        // now, a whole block of k ahead of the epilogue: in the column-strip order every row of the
        // output is its own stream, too many for the hardware prefetcher.
        for (int r = 0; r < MR; r++) {
            if (rows <= r) break;
            for (int v = 0; v < NV; v++) {
                if (residual) _mm_prefetch((const char *)(residual + r * epi->residual_stride + 16 * v), _MM_HINT_T0);
                if (!accumulate) __builtin_prefetch(c + r * ldc + 16 * v, 1, 3);
            }
        }
    }
    for (long kk = 0; kk < kc; kk++) {
        // The packed weights stream from memory once per block; fetch ahead of the loads.
        _mm_prefetch((const char *)(a + PREFETCH), _MM_HINT_T0);
        // The block's share of the thread's read-ahead stream, two lines per step into L2 (with no
        // stream, `aheadStride` is 0 and the one line is the panel's, already in L1).
        _mm_prefetch(ahead + kk * aheadStride, _MM_HINT_T1);
        _mm_prefetch(ahead + kk * aheadStride + 64, _MM_HINT_T1);
        if (bNext) {
            // The next strip of b: its kc rows are ldb apart, too many streams for the hardware
            // prefetcher, so the first panel over this strip fetches them.
            const char *next = (const char *)(bNext + kk * ldb);
            _mm_prefetch(next, _MM_HINT_T0);
            _mm_prefetch(next + 64, _MM_HINT_T0);
            _mm_prefetch(next + 128, _MM_HINT_T0);
            _mm_prefetch(next + 191, _MM_HINT_T0);
        }
        __m512 bv[3];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
        if (TAIL) {
            __m256 column = _mm256_loadu_ps(a);
            for (int j = 0; j < TAIL; j++) tail[j] = _mm256_fmadd_ps(column, _mm256_set1_ps(b[16 * NV + j]), tail[j]);
        }
        a += MR;
        b += ldb;
    }
    if (!epi) {
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            if (rows <= r) break;
            for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], acc[r][v]);
        }
        for (int j = 0; j < TAIL; j++) {
            _mm512_mask_i32scatter_ps(c + 16 * NV + j, rowMask, rowsOfC, _mm512_castps256_ps512(tail[j]), 4);
        }
        return;
    }
    // + bias, + residual, then the activation `ACT` (a constant in each instantiation, so no
    // branch per vector), each element in the order of `finish`; bounds and biases broadcast once.
    const __m512 low = _mm512_set1_ps(epi->low), high = _mm512_set1_ps(epi->high);
    if (TAIL) {
        const __m512i rowsOfResidual = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0),
            _mm512_set1_epi32((int)epi->residual_stride));
        const __m512 columnBias = bias ? _mm512_maskz_loadu_ps(rowMask, bias) : _mm512_setzero_ps();
        for (int j = 0; j < TAIL; j++) {
            __m512 value = _mm512_castps256_ps512(tail[j]);
            if (bias) value = _mm512_add_ps(value, columnBias);
            if (residual) {
                value = _mm512_add_ps(
                    value,
                    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rowMask, rowsOfResidual, residual + 16 * NV + j, 4));
            }
            _mm512_mask_i32scatter_ps(c + 16 * NV + j, rowMask, rowsOfC, activate_v(ACT, value, low, high), 4);
        }
    }
    // Unrolled, so that the sums stay in registers (a loop over the rows stored them to the stack
    // and read them back: at k = 16 the epilogue took a fifth of the product's time).
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
        if (rows <= r) break;
        const __m512 rowBias = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
        for (int v = 0; v < NV; v++) {
            __m512 value = acc[r][v];
            if (bias) value = _mm512_add_ps(value, rowBias);
            if (residual) {
                value = _mm512_add_ps(
                    value, _mm512_maskz_loadu_ps(mask[v], residual + r * epi->residual_stride + 16 * v));
            }
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], activate_v(ACT, value, low, high));
        }
    }
}

static inline __mmask16 mask_for(long columns) {
    if (columns >= 16) return (__mmask16)0xFFFF;
    if (columns <= 0) return 0;
    return (__mmask16)((1u << columns) - 1u);
}

#define TARGETVL __attribute__((target("avx512f,avx512vl,avx2,fma")))

/// Columns `0 ..< COLS` (at most 4) of rows `r < rows` of `c` (rows `ldc` apart) as four vectors
/// down the rows: lane r of `v[j]` is row r, column j (zero for the rows and columns left out).
/// Eight short row loads and a 4 × 8 transpose in registers instead of a gather per column.
TARGETVL static inline __attribute__((always_inline)) void load_columns(
    const int COLS, const float *c, long ldc, long rows, __m256 v[4]) {
    const __mmask8 columns = (__mmask8)((1u << COLS) - 1u);
    __m128 r[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm_maskz_loadu_ps(columns, c + i * ldc) : _mm_setzero_ps();
    const __m256 u0 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[0]), r[4], 1);
    const __m256 u1 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[1]), r[5], 1);
    const __m256 u2 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[2]), r[6], 1);
    const __m256 u3 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[3]), r[7], 1);
    const __m256 t0 = _mm256_unpacklo_ps(u0, u1), t1 = _mm256_unpackhi_ps(u0, u1);
    const __m256 t2 = _mm256_unpacklo_ps(u2, u3), t3 = _mm256_unpackhi_ps(u2, u3);
    v[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    v[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    v[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    v[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

/// The inverse of `load_columns`: stores columns `0 ..< COLS` of rows `r < rows` from four vectors
/// down the rows.
TARGETVL static inline __attribute__((always_inline)) void store_columns(
    const int COLS, float *c, long ldc, long rows, const __m256 v[4]) {
    const __mmask8 columns = (__mmask8)((1u << COLS) - 1u);
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    // u[i], 128-bit half h: row i + 4h, columns 0–3.
    const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
        _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)), _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
        _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        if (i >= rows) break;
        const __m128 row = i < 4 ? _mm256_castps256_ps128(u[i]) : _mm256_extractf128_ps(u[i - 4], 1);
        _mm_mask_storeu_ps(c + i * ldc, columns, row);
    }
}

/// The last `columns` (1 to 4) columns for up to four row panels at once, vectorized down the
/// rows: a panel's eight values at one k are contiguous in the packed layout. Each element's sum
/// is the same ascending chain of fused multiply-adds as in the wide kernels. Columns of `c` are
/// read and written through 4 × 8 transposes (`load_columns`, `store_columns`): with a gather and a
/// scatter per column instead, a squeeze-and-excitation product of 1152 × 48 weights on a 1 × 1
/// map took 5.8 instead of 4.6 µs (the 196-wide layers' 4-column tails did not change measurably).
TARGETVL static inline __attribute__((always_inline)) void kernel_columns_n(
    const int COLS, long kc, const float *block, long panelStride, long panelCount, long m, const float *b, long ldb,
    float *c, long ldc, int accumulate, const apus_gemm_epilogue *epi) {
    const long columns = COLS;
    for (long p0 = 0; p0 < panelCount; p0 += 4) {
        long panels = panelCount - p0 < 4 ? panelCount - p0 : 4;
        // Missing panels and columns repeat the first one; their sums are never stored.
        const float *a0 = block + (p0 + 0) * panelStride;
        const float *a1 = panels > 1 ? block + (p0 + 1) * panelStride : a0;
        const float *a2 = panels > 2 ? block + (p0 + 2) * panelStride : a0;
        const float *a3 = panels > 3 ? block + (p0 + 3) * panelStride : a0;
        long j1 = columns > 1 ? 1 : 0, j2 = columns > 2 ? 2 : 0, j3 = columns > 3 ? 3 : 0;
        __m256 acc[4][4];
        long rowsOf[4];
#pragma clang loop unroll(full)
        for (int p = 0; p < 4; p++) {
            long rows = m - (p0 + p) * MR;
            rowsOf[p] = p < panels ? (rows >= 8 ? 8 : rows) : 0;
            if (accumulate) {
                load_columns(COLS, c + (p0 + p) * MR * ldc, ldc, rowsOf[p], acc[p]);
            } else {
                for (int j = 0; j < 4; j++) acc[p][j] = _mm256_setzero_ps();
            }
        }
        // The four panels two groups ahead, two lines per step (what this group reads per step):
        // with one to four columns there are few multiply-adds per weight, so a matrix-vector
        // product (a squeeze-and-excitation layer on a 1 × 1 map) waits for its weights, and the
        // hardware prefetcher stops at every 4 KiB page. Past the last panel the lines fetched
        // are unused, and prefetches never fault.
        const char *ahead = (const char *)(block + (p0 + 8) * panelStride);
        for (long kk = 0; kk < kc; kk++) {
            _mm_prefetch(ahead + kk * 128, _MM_HINT_T0);
            _mm_prefetch(ahead + kk * 128 + 64, _MM_HINT_T0);
            const float *bRow = b + kk * ldb;
            __m256 v[4] = {_mm256_loadu_ps(a0 + kk * MR), _mm256_loadu_ps(a1 + kk * MR), _mm256_loadu_ps(a2 + kk * MR),
                _mm256_loadu_ps(a3 + kk * MR)};
            __m256 w[4] = {_mm256_set1_ps(bRow[0]), _mm256_set1_ps(bRow[j1]), _mm256_set1_ps(bRow[j2]),
                _mm256_set1_ps(bRow[j3])};
            // Only the columns that exist: with one column left, a quarter of the work.
            for (int p = 0; p < 4; p++) {
                for (int j = 0; j < COLS; j++) acc[p][j] = _mm256_fmadd_ps(v[p], w[j], acc[p][j]);
            }
        }
#pragma clang loop unroll(full)
        for (int p = 0; p < 4; p++) {
            if (!rowsOf[p]) continue;
            long row0 = (p0 + p) * MR;
            __m256 out[4];
            if (epi) {
                const __mmask8 rowMask = (__mmask8)((1u << rowsOf[p]) - 1u);
                const __m256 bias = epi->bias ? _mm256_maskz_loadu_ps(rowMask, epi->bias + row0) : _mm256_setzero_ps();
                __m256 residual[4];
                if (epi->residual) {
                    load_columns(
                        COLS, epi->residual + row0 * epi->residual_stride, epi->residual_stride, rowsOf[p], residual);
                }
                // Only the columns that exist (the others are not stored).
#pragma clang loop unroll(full)
                for (int j = 0; j < 4; j++) out[j] = _mm256_setzero_ps();
#pragma clang loop unroll(full)
                for (int j = 0; j < COLS; j++) {
                    __m256 v = acc[p][j];
                    if (epi->bias) v = _mm256_add_ps(v, bias);
                    if (epi->residual) v = _mm256_add_ps(v, residual[j]);
                    if (epi->activation == APUS_GEMM_RELU) {
                        v = _mm256_max_ps(_mm256_setzero_ps(), v);
                    } else if (epi->activation == APUS_GEMM_CLIP) {
                        v = _mm256_max_ps(_mm256_set1_ps(epi->low), v);
                        v = _mm256_min_ps(_mm256_set1_ps(epi->high), v);
                    } else if (epi->activation == APUS_GEMM_SIGMOID || epi->activation == APUS_GEMM_SILU) {
                        v = _mm512_castps512_ps256(
                            logistic16(_mm512_castps256_ps512(v), epi->activation == APUS_GEMM_SILU));
                    }
                    out[j] = v;
                }
            } else {
#pragma clang loop unroll(full)
                for (int j = 0; j < 4; j++) out[j] = acc[p][j];
            }
            store_columns(COLS, c + row0 * ldc, ldc, rowsOf[p], out);
        }
    }
}

/// `kernel_columns_n` for `columns` (1 to 4) known at compile time.
TARGETVL static void kernel_columns(
    long kc, const float *block, long panelStride, long panelCount, long m, const float *b, long ldb, float *c, long ldc,
    long columns, int accumulate, const apus_gemm_epilogue *epi) {
    switch (columns) {
    case 1: kernel_columns_n(1, kc, block, panelStride, panelCount, m, b, ldb, c, ldc, accumulate, epi); break;
    case 2: kernel_columns_n(2, kc, block, panelStride, panelCount, m, b, ldb, c, ldc, accumulate, epi); break;
    case 3: kernel_columns_n(3, kc, block, panelStride, panelCount, m, b, ldb, c, ldc, accumulate, epi); break;
    default: kernel_columns_n(4, kc, block, panelStride, panelCount, m, b, ldb, c, ldc, accumulate, epi); break;
    }
}

/// One strip of up to 48 columns starting at `c`/`b` for one row panel; returns the columns done.
/// A whole strip can take one more column past its 48 (`tail`, `kernel_8xnv`'s `TAIL`).
TARGET static inline long strip(
    long kc, const float *aPanel, const float *bStrip, long ldb, float *cBlock, long ldc, long rows, long columns,
    long tail, int accumulate, const apus_gemm_epilogue *epi, const float *bias, const float *residual,
    const float *bNext, const char *ahead, long aheadStride) {
    const __mmask16 mask[3] = {mask_for(columns), mask_for(columns - 16), mask_for(columns - 32)};
    const int nv = columns > 32 ? 3 : (columns > 16 ? 2 : 1);
    // One kernel per vector count, tail and activation, each with its constants propagated.
#define KERNEL(NV, TAIL, ACT)                                                                                          \
    kernel_8xnv(                                                                                                       \
        NV, ACT, TAIL, kc, aPanel, bStrip, ldb, cBlock, ldc, rows, mask, accumulate, epi, bias, residual, bNext, ahead, \
        aheadStride)
#define BY_ACTIVATION(NV, TAIL)                                                                                        \
    switch (epi ? epi->activation : APUS_GEMM_NONE) {                                                                  \
    case APUS_GEMM_RELU: KERNEL(NV, TAIL, APUS_GEMM_RELU); break;                                                      \
    case APUS_GEMM_CLIP: KERNEL(NV, TAIL, APUS_GEMM_CLIP); break;                                                      \
    case APUS_GEMM_SIGMOID: KERNEL(NV, TAIL, APUS_GEMM_SIGMOID); break;                                                \
    case APUS_GEMM_SILU: KERNEL(NV, TAIL, APUS_GEMM_SILU); break;                                                      \
    default: KERNEL(NV, TAIL, APUS_GEMM_NONE); break;                                                                  \
    }
    if (nv == 3) {
        if (columns == 48 && tail == 1) {
            BY_ACTIVATION(3, 1)
            return 49;
        }
        BY_ACTIVATION(3, 0)
        return columns < 48 ? columns : 48;
    }
    if (nv == 2) {
        BY_ACTIVATION(2, 0)
    } else {
        BY_ACTIVATION(1, 0)
    }
#undef BY_ACTIVATION
#undef KERNEL
    return columns;
}

TARGET void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    apus_gemm_packed_range_avx512(packed, packedRows, firstRow, k, 0, k, m, n, b, ldb, c, ldc, accumulate, epilogue);
}

TARGET void apus_gemm_packed_range_avx512(
    const float *packed, long packedRows, long firstRow, long k, long kBegin, long kEnd, long m, long n, const float *b,
    long ldb, float *c, long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    if (m <= 0 || n <= 0) return;
    if (kBegin < 0) kBegin = 0;
    if (kEnd > k) kEnd = k;
    if (kEnd <= kBegin) {
        if (!accumulate) {
            for (long r = 0; r < m; r++) memset(c + r * ldc, 0, (size_t)n * sizeof(float));
        }
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
    // Columns past the last whole 48-wide strip, when there are at most four, go down the rows
    // instead of through a mostly empty 16-lane strip: a single one in the last strip's pass (its
    // `tail`: 512 × 49 × 4608, a 7 × 7 map, 232 → 245 GFLOP/s against 258 for 48 columns), more on
    // their own (kernel_columns; in the strip's pass, their accumulators would spill). The strip's
    // gathers and scatters need strides that fit in 32 bits.
    long tail = n % 48;
    long wide = n;
    long residualStride = epilogue && epilogue->residual ? epilogue->residual_stride : 0;
    if (tail >= 1 && tail <= 4) wide = n - tail;
    long stripTail = wide >= 48 && n - wide == 1 && ldc <= (1L << 27) && residualStride <= (1L << 27) ? 1 : 0;
    apus_gemm_epilogue tailEpilogue;
    if (epilogue) {
        tailEpilogue = *epilogue;
        if (tailEpilogue.residual) tailEpilogue.residual += wide;
    }
    // Each strip's share of the thread's read-ahead stream (apus_prefetch_stream_use), claimed
    // here: two lines per step of k from `ahead` (the stream's last, shorter share runs past its
    // end by less than one block: prefetches never fault), or, with no stream or none left,
    // `aheadStride` 0 and the panel's first line again. Claimed inside the kernel, or with a
    // test for the stream in its loop, the kernel ran 2.4 times slower (why was not found: the
    // compiled strips had a fifth more stack accesses); an unconditional prefetch of a line in
    // L1 costs nothing measurable.
    const int readsAhead = apus_prefetch_current_stream != 0;
#define READ_AHEAD(panel)                                                                                              \
    const char *ahead = (const char *)(panel);                                                                         \
    long aheadStride = 0;                                                                                              \
    if (readsAhead && apus_prefetch_claim(kc * 128, &ahead) > 0) aheadStride = 128;
    // The packed blocks of KC steps the range [kBegin, kEnd) touches: in each, the steps [lo, hi)
    // of its `width`, the panels `width · MR` floats apart (the whole product: lo = k0, hi = k0 +
    // width). `b` holds the range's rows from row 0.
    for (long k0 = kBegin / KC * KC; k0 < kEnd; k0 += KC) {
        const long width = k - k0 < KC ? k - k0 : KC;
        const long lo = k0 > kBegin ? k0 : kBegin, hi = k0 + width < kEnd ? k0 + width : kEnd;
        const long kc = hi - lo, panelStride = width * MR;
        const float *bBlock = b + (lo - kBegin) * ldb;
        int continues = accumulate || lo > kBegin;
        // The epilogue runs when the last block stores its sums.
        const apus_gemm_epilogue *epi = hi >= kEnd ? epilogue : 0;
#define EPILOGUE_ARGS(p, n0)                                                                                           \
    const float *bias = epi && epi->bias ? epi->bias + (p) * MR : 0;                                                   \
    const float *residual = epi && epi->residual ? epi->residual + (p) * MR * epi->residual_stride + (n0) : 0;
        const float *block = packed + k0 * paddedRows + firstRow * width + (lo - k0) * MR;
        // When the block of b (kc × n) fits in L2, walk the row panels outside so each panel of A
        // is read once per block (A is the large operand for late layers: megabytes of weights);
        // otherwise keep one strip of b in L1 while every row panel passes over it.
        if (kc * n * (long)sizeof(float) <= 256 * 1024) {
            for (long p = 0; p < panels; p++) {
                long rows = m - p * MR < MR ? m - p * MR : MR;
                const float *aPanel = block + p * panelStride;
                for (long n0 = 0; n0 < wide;) {
                    EPILOGUE_ARGS(p, n0)
                    const float *bNext = p == 0 && n0 + 48 < wide ? bBlock + n0 + 48 : 0;
                    READ_AHEAD(aPanel)
                    n0 += strip(
                        kc, aPanel, bBlock + n0, ldb, c + p * MR * ldc + n0, ldc, rows, wide - n0,
                        n0 + 48 == wide ? stripTail : 0, continues, epi, bias, residual, bNext, ahead,
                        aheadStride);
                }
            }
        } else {
            for (long n0 = 0; n0 < wide;) {
                long done = 0;
                for (long p = 0; p < panels; p++) {
                    long rows = m - p * MR < MR ? m - p * MR : MR;
                    EPILOGUE_ARGS(p, n0)
                    const float *bNext = p == 0 && n0 + 48 < wide ? bBlock + n0 + 48 : 0;
                    READ_AHEAD(block + p * panelStride)
                    done = strip(
                        kc, block + p * panelStride, bBlock + n0, ldb, c + p * MR * ldc + n0, ldc, rows, wide - n0,
                        n0 + 48 == wide ? stripTail : 0, continues, epi, bias, residual, bNext, ahead,
                        aheadStride);
                }
                n0 += done;
            }
        }
        if (wide < n && stripTail == 0) {
            kernel_columns(
                kc, block, panelStride, panels, m, bBlock + wide, ldb, c + wide, ldc, n - wide, continues,
                epi ? &tailEpilogue : 0);
        }
    }
#undef READ_AHEAD
}

#else

void apus_logistic_avx512(float *x, long n, int silu) {
    (void)x; (void)n; (void)silu;
}

void apus_gemm_packed_range_avx512(
    const float *packed, long packedRows, long firstRow, long k, long kBegin, long kEnd, long m, long n, const float *b,
    long ldb, float *c, long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    (void)packed; (void)packedRows; (void)firstRow; (void)k; (void)kBegin; (void)kEnd; (void)m; (void)n; (void)b;
    (void)ldb; (void)c; (void)ldc; (void)accumulate; (void)epilogue;
}

void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue) {
    (void)epilogue; (void)accumulate;
    (void)packed; (void)packedRows; (void)firstRow; (void)k; (void)m; (void)n; (void)b; (void)ldb; (void)c; (void)ldc;
}

#endif
