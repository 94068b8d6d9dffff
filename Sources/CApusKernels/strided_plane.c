#include "apus_kernels.h"
#include "lane_masks.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

/// One row, stride 1 or 2, sixteen outputs per step. Lanes whose input column lies outside the
/// row are masked off the loads (so they read as zero and never touch memory), which covers the
/// padding at both ends without a scalar loop.
__attribute__((target("avx512f"))) static void vector_row(
    const float *row, long inputWidth, long columnOffset, long stride, long width, float *dest) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (long x = 0; x < width; x += 16) {
        __mmask16 store = (__mmask16)range_mask(x, width);
        long first = columnOffset + x * stride;
        __m512 v;
        if (stride == 1) {
            v = _mm512_maskz_loadu_ps(range_mask(first, inputWidth) & store, row + first);
        } else {
            __m512 low = _mm512_maskz_loadu_ps(range_mask(first, inputWidth), row + first);
            __m512 high = _mm512_maskz_loadu_ps(range_mask(first + 16, inputWidth), row + first + 16);
            v = _mm512_permutex2var_ps(low, even, high);
        }
        _mm512_mask_storeu_ps(dest + x, store, v);
    }
}
#endif

void apus_strided_plane(
    const float *plane, long inputHeight, long inputWidth, long firstRow, long rowStride, long rows, long columnOffset,
    long columnStride, long width, float *dest, int vector) {
    for (long r = 0; r < rows; r++, dest += width) {
        long y = firstRow + r * rowStride;
        if (y < 0 || y >= inputHeight) {
            memset(dest, 0, (size_t)width * sizeof(float));
            continue;
        }
        const float *row = plane + y * inputWidth;
#if defined(__x86_64__)
        if (vector && (columnStride == 1 || columnStride == 2)) {
            vector_row(row, inputWidth, columnOffset, columnStride, width, dest);
            continue;
        }
#else
        (void)vector;
#endif
        for (long x = 0; x < width; x++) {
            long column = columnOffset + x * columnStride;
            dest[x] = column >= 0 && column < inputWidth ? row[column] : 0.0f;
        }
    }
}
