/// Vector helpers shared by the AVX-512 kernels (GEMM epilogue, depthwise convolution): private
/// to this target, included only inside `#if defined(__x86_64__)`.
#ifndef APUS_AVX512_COMMON_H
#define APUS_AVX512_COMMON_H

#include <immintrin.h>

#include "apus_kernels.h"

#define TARGET __attribute__((target("avx512f")))

/// e^(-x) on sixteen lanes, for the logistic functions: `n = round(-x · log2 e)`, `s = x + n · ln 2`
/// (= −r, the reduced argument, in one fused multiply-add), XNNPACK's degree-5 polynomial for `e^r`
/// on |r| ≤ ln 2 / 2 written in `s` (odd coefficients negated), then `vscalefps` multiplies by 2ⁿ.
/// `x` is clamped to [-89, 89] first: e^89 overflows to +inf and e^-89 is a subnormal, so ±inf
/// give +inf and a value that adds nothing to 1, where `inf − inf` in the reduction would give
/// NaN; NaN stays NaN. ln 2 in one float (not two) is off by 1.9e-9, which |n| ≤ 128 turns into at
/// most 2.5e-7 in `r`: within 5.4 ulp of e^(-x) over the clamped range and 3.1 where |x| ≤ 30 (4
/// ulp with ln 2 in two parts and the argument negated, one vector operation each more: SiLU 0.21 →
/// 0.19 ns per element).
TARGET static inline __m512 exp_negated16(__m512 x) {
    __m512 v = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-89.0f), x));
    __m512 n = _mm512_roundscale_ps(
        _mm512_mul_ps(v, _mm512_set1_ps(-1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 s = _mm512_fmadd_ps(n, _mm512_set1_ps(0.693147180559945f), v);
    __m512 p = _mm512_set1_ps(-0x1.0F9F9Cp-7f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0x1.573A1Ap-5f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0x1.555A80p-3f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0x1.FFFDC6p-2f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0x1.FFFFF6p-1f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/// `_mm512_permutex2var_ps` indices that pick the even (`even_lanes`) or odd (`odd_lanes`) lanes of
/// two vectors taken as 32 consecutive values: the two phases of a stride-2 row.
TARGET static inline __m512i even_lanes(void) {
    return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}

TARGET static inline __m512i odd_lanes(void) {
    return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

/// `_mm512_maskz_loadu_ps(mask, p)`, with the address moved to a line of zeros when no lane is
/// read. Lanes a mask leaves out do not fault, but the load still translates their addresses: on
/// the Zen 4 this project measures on, a masked load whose unread lanes reach an unmapped page (the
/// padding rows above a network's input, which lie before its buffer) takes a microcode assist.
/// The stem of resnet18 ran 1.40 instead of 1.12 ms whenever the page before the input was
/// unmapped.
TARGET static inline __m512 load_lanes(__mmask16 mask, const float *p) {
    static const float nothing[16] __attribute__((aligned(64))) = {0};
    return _mm512_maskz_loadu_ps(mask, mask ? p : nothing);
}

/// Sigmoid (`1 / (1 + exp(-x))`) or SiLU (`x / (1 + exp(-x))`) of sixteen lanes.
TARGET static inline __m512 logistic16(__m512 x, int silu) {
    __m512 denominator = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_negated16(x));
    return _mm512_div_ps(silu ? x : _mm512_set1_ps(1.0f), denominator);
}

/// The activation `activation` (an `APUS_GEMM_*` code; Clip clamps to [low, high]) of sixteen
/// lanes. Max and min take the value as their second operand, which they return when it is NaN,
/// so NaN passes through like in the Swift epilogue. Inlined with a constant code, the switch
/// folds away.
TARGET static inline __attribute__((always_inline)) __m512 activate_v(
    int activation, __m512 v, __m512 low, __m512 high) {
    switch (activation) {
    case APUS_GEMM_RELU: return _mm512_max_ps(_mm512_setzero_ps(), v);
    case APUS_GEMM_CLIP: return _mm512_min_ps(high, _mm512_max_ps(low, v));
    case APUS_GEMM_SIGMOID: return logistic16(v, 0);
    case APUS_GEMM_SILU: return logistic16(v, 1);
    default: return v;
    }
}

/// ``activate_v`` with the Clip bounds as scalars.
TARGET static inline __attribute__((always_inline)) __m512 activate(int activation, __m512 v, float low, float high) {
    return activate_v(activation, v, _mm512_set1_ps(low), _mm512_set1_ps(high));
}

/// The epilogue of one vector of row `r`: + bias, + residual, then the activation.
TARGET static inline __m512 finish(
    __m512 v, const apus_gemm_epilogue *epi, const float *bias, long r, const float *residual, __mmask16 mask) {
    if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[r]));
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual));
    return activate(epi->activation, v, epi->low, epi->high);
}

#endif
