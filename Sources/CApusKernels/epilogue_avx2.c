// The epilogue after an OpenBLAS product (`Epilogue.apply`) with AVX2, for CPUs without AVX-512:
// `block[r][c] = activation(block[r][c] + bias[r] + residual[r][c])`, eight lanes at a time,
// the sums in Epilogue's order and the activations of the AVX2 kernels (`activate8`).
#include "apus_kernels.h"

#if defined(__x86_64__)

#include "avx2_common.h"

/// One row with the activation `ACT` as a constant.
TARGET_AVX2 static ALWAYS_INLINE void row8(
    const int ACT, float *out, long count, float bias, const float *residual, __m256 low, __m256 high) {
    const __m256 b = _mm256_set1_ps(bias);
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(out + i), b);
        if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + i));
        _mm256_storeu_ps(out + i, activate8(ACT, v, low, high));
    }
    if (i < count) {
        const __m256i mask = lanes_inside(0, count - i);
        __m256 v = _mm256_add_ps(_mm256_maskload_ps(out + i, mask), b);
        if (residual) v = _mm256_add_ps(v, _mm256_maskload_ps(residual + i, mask));
        _mm256_maskstore_ps(out + i, mask, activate8(ACT, v, low, high));
    }
}

TARGET_AVX2 void apus_epilogue_avx2(
    float *block, long rows, long columns, long rowStride, const float *bias, const float *residual,
    long residualStride, int activation, float low, float high) {
    const __m256 lowVector = _mm256_set1_ps(low), highVector = _mm256_set1_ps(high);
    for (long r = 0; r < rows; r++) {
        float *out = block + r * rowStride;
        const float rowBias = bias ? bias[r] : 0.0f;
        const float *rowResidual = residual ? residual + r * residualStride : 0;
#define ROW(ACT) row8(ACT, out, columns, rowBias, rowResidual, lowVector, highVector)
        switch (activation) {
        case APUS_GEMM_RELU: ROW(APUS_GEMM_RELU); break;
        case APUS_GEMM_CLIP: ROW(APUS_GEMM_CLIP); break;
        case APUS_GEMM_SIGMOID: ROW(APUS_GEMM_SIGMOID); break;
        case APUS_GEMM_SILU: ROW(APUS_GEMM_SILU); break;
        default: ROW(APUS_GEMM_NONE); break;
        }
#undef ROW
    }
}

#else

void apus_epilogue_avx2(
    float *block, long rows, long columns, long rowStride, const float *bias, const float *residual,
    long residualStride, int activation, float low, float high) {
    (void)block; (void)rows; (void)columns; (void)rowStride; (void)bias; (void)residual; (void)residualStride;
    (void)activation; (void)low; (void)high;
}

#endif
