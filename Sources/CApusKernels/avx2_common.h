/// Vector helpers shared by the AVX2 kernels (depthwise rows, packed GEMM, epilogue, Winograd
/// transforms) for CPUs without AVX-512: private to this target, included only inside
/// `#if defined(__x86_64__)`.
#ifndef APUS_AVX2_COMMON_H
#define APUS_AVX2_COMMON_H

#include <immintrin.h>

#include "apus_kernels.h"

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
/// AVX2 without FMA: for code whose products and sums must each round on their own (the Winograd
/// transforms), and for helpers that both kinds of kernel inline.
#define TARGET_AVX2_NO_FMA __attribute__((target("avx2")))
#define ALWAYS_INLINE inline __attribute__((always_inline))

/// Lanes `i` with `0 ≤ first + i < width` set: the columns of a vector at column `first` that lie
/// inside a row `width` long (`lanes_inside(0, n)`: the first `n` lanes, all eight from 8 on).
TARGET_AVX2_NO_FMA static ALWAYS_INLINE __m256i lanes_inside(long first, long width) {
    long low = -first, high = width - first;
    low = low < 0 ? 0 : low > 8 ? 8 : low;
    high = high < 0 ? 0 : high > 8 ? 8 : high;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i beforeLow = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)low), lanes);
    return _mm256_andnot_si256(beforeLow, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)high), lanes));
}

/// e^(-x) on eight lanes: the clamp, reduction and polynomial of `exp_negated16` (avx512_common.h);
/// 2ⁿ is built in the exponent bits as two factors 2^(n/2) · 2^(n − n/2), so that n in
/// [-128, 128] (the clamped range) gives subnormals and +inf as a single scaling would. NaN stays
/// NaN.
TARGET_AVX2 static ALWAYS_INLINE __m256 exp_negated8(__m256 x) {
    __m256 v = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-89.0f), x));
    __m256 n = _mm256_round_ps(
        _mm256_mul_ps(v, _mm256_set1_ps(-1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 s = _mm256_fmadd_ps(n, _mm256_set1_ps(0.693147180559945f), v);
    __m256 p = _mm256_set1_ps(-0x1.0F9F9Cp-7f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0x1.573A1Ap-5f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0x1.555A80p-3f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0x1.FFFDC6p-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0x1.FFFFF6p-1f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    __m256i rest = _mm256_sub_epi32(ni, half);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    __m256 b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, a), b);
}

/// The activation `ACT` (`APUS_GEMM_*`; CLIP clamps to [low, high]) on eight lanes, in the order
/// of the AVX-512 kernels' `activate_v`.
TARGET_AVX2 static ALWAYS_INLINE __m256 activate8(int ACT, __m256 v, __m256 low, __m256 high) {
    switch (ACT) {
    case APUS_GEMM_RELU: return _mm256_max_ps(_mm256_setzero_ps(), v);
    case APUS_GEMM_CLIP: return _mm256_min_ps(high, _mm256_max_ps(low, v));
    case APUS_GEMM_SIGMOID:
    case APUS_GEMM_SILU: {
        __m256 denominator = _mm256_add_ps(_mm256_set1_ps(1.0f), exp_negated8(v));
        return _mm256_div_ps(ACT == APUS_GEMM_SILU ? v : _mm256_set1_ps(1.0f), denominator);
    }
    default: return v;
    }
}

/// `CALL(K, S, ACT)` with the activation `ACT` a constant, one case per activation the AVX2 kernels
/// apply in registers (anything else as `APUS_GEMM_NONE`), so that each case's code is specialised.
#define BY_ACTIVATION8(activation, CALL, K, S)                                                                         \
    switch (activation) {                                                                                              \
    case APUS_GEMM_RELU: CALL(K, S, APUS_GEMM_RELU); break;                                                            \
    case APUS_GEMM_CLIP: CALL(K, S, APUS_GEMM_CLIP); break;                                                            \
    case APUS_GEMM_SIGMOID: CALL(K, S, APUS_GEMM_SIGMOID); break;                                                      \
    case APUS_GEMM_SILU: CALL(K, S, APUS_GEMM_SILU); break;                                                            \
    default: CALL(K, S, APUS_GEMM_NONE); break;                                                                        \
    }

/// `value` plus `residual`'s first `n` floats (when given), then the activation `ACT`, stored to the
/// first `n` floats at `out` (`n` ≤ 8; `mask` is `lanes_inside(0, n)`, used only when `n` < 8): how
/// the AVX2 kernels that transpose their sums back to planes finish each vector of a plane.
TARGET_AVX2 static ALWAYS_INLINE void finish_store8(int ACT, __m256 value, float *out, const float *residual, long n,
                                                    __m256i mask, __m256 low, __m256 high) {
    if (residual) value = _mm256_add_ps(value, n == 8 ? _mm256_loadu_ps(residual) : _mm256_maskload_ps(residual, mask));
    value = activate8(ACT, value, low, high);
    if (n == 8) {
        _mm256_storeu_ps(out, value);
    } else {
        _mm256_maskstore_ps(out, mask, value);
    }
}

/// Transposes eight vectors in place: afterwards `v[j]` lane `i` is what `v[i]` lane `j` was.
TARGET_AVX2_NO_FMA static ALWAYS_INLINE void transpose8(__m256 v[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
    // u[4b + c], each 128-bit half: column c (low half) or 4 + c (high half) of rows 4b ..< 4b + 4.
    for (int b = 0; b < 2; b++) {
        u[4 * b] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
        u[4 * b + 1] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0xEE);
        u[4 * b + 2] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
        u[4 * b + 3] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        v[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        v[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

#endif
