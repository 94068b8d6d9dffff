#include "apus_kernels.h"
#include "lane_masks.h"

#include <string.h>

#if defined(__x86_64__)
#include "avx512_common.h"

/// Rows of vectors of sixteen outputs at column stride 1 or 2 (`width` at most 16 · MAX_VECTORS).
/// The lane masks depend only on the columns, so they are made once for all rows: lanes whose
/// input column lies outside the row are masked off the loads (they read as zero and never touch
/// memory), which covers the padding at both ends without a scalar loop.
#define MAX_VECTORS 256

__attribute__((target("avx512f"))) static void vector_rows(
    const float *plane, long planes, long inputHeight, long inputWidth, long firstRow, long rowStride, long rows,
    long columnOffset, long columnStride, long width, float *dest) {
    const __m512i even = even_lanes();
    const long vectors = (width + 15) / 16;
    __mmask16 store[MAX_VECTORS], low[MAX_VECTORS], high[MAX_VECTORS];
    for (long v = 0; v < vectors; v++) {
        long first = columnOffset + 16 * v * columnStride;
        store[v] = (__mmask16)range_mask(16 * v, width);
        low[v] = (__mmask16)range_mask(first, inputWidth);
        high[v] = (__mmask16)range_mask(first + 16, inputWidth);
        if (columnStride == 1) low[v] &= store[v];
    }
    // Rows outside the plane are zero; the rest are a range of rows.
    long begin = 0, end = rows;
    while (begin < rows && (firstRow + begin * rowStride < 0 || firstRow + begin * rowStride >= inputHeight)) begin++;
    while (end > begin && (firstRow + (end - 1) * rowStride < 0 || firstRow + (end - 1) * rowStride >= inputHeight)) {
        end--;
    }
    const long inPlane = inputHeight * inputWidth, outPlane = rows * width, step = rowStride * inputWidth;
    // Maps up to 32 wide (most strided layers): the masks stay in registers.
    const int narrow = vectors <= 2;
    const __mmask16 s0 = store[0], l0 = low[0], h0 = high[0];
    const __mmask16 s1 = vectors > 1 ? store[1] : 0, l1 = vectors > 1 ? low[1] : 0, h1 = vectors > 1 ? high[1] : 0;
    for (long p = 0; p < planes; p++, plane += inPlane, dest += outPlane) {
        memset(dest, 0, (size_t)(begin * width) * sizeof(float));
        memset(dest + end * width, 0, (size_t)((rows - end) * width) * sizeof(float));
        const float *source = plane + (firstRow + begin * rowStride) * inputWidth + columnOffset;
        float *d = dest + begin * width;
        if (narrow && columnStride == 2) {
            for (long r = begin; r < end; r++, d += width, source += step) {
                __m512 a = _mm512_maskz_loadu_ps(l0, source), b = _mm512_maskz_loadu_ps(h0, source + 16);
                _mm512_mask_storeu_ps(d, s0, _mm512_permutex2var_ps(a, even, b));
                if (vectors > 1) {
                    a = _mm512_maskz_loadu_ps(l1, source + 32);
                    b = _mm512_maskz_loadu_ps(h1, source + 48);
                    _mm512_mask_storeu_ps(d + 16, s1, _mm512_permutex2var_ps(a, even, b));
                }
            }
        } else if (narrow) {
            for (long r = begin; r < end; r++, d += width, source += step) {
                _mm512_mask_storeu_ps(d, s0, _mm512_maskz_loadu_ps(l0, source));
                if (vectors > 1) _mm512_mask_storeu_ps(d + 16, s1, _mm512_maskz_loadu_ps(l1, source + 16));
            }
        } else {
            for (long r = begin; r < end; r++, d += width, source += step) {
                if (columnStride == 1) {
                    for (long v = 0; v < vectors; v++) {
                        _mm512_mask_storeu_ps(d + 16 * v, store[v], _mm512_maskz_loadu_ps(low[v], source + 16 * v));
                    }
                } else {
                    for (long v = 0; v < vectors; v++) {
                        __m512 a = _mm512_maskz_loadu_ps(low[v], source + 32 * v);
                        __m512 b = _mm512_maskz_loadu_ps(high[v], source + 32 * v + 16);
                        _mm512_mask_storeu_ps(d + 16 * v, store[v], _mm512_permutex2var_ps(a, even, b));
                    }
                }
            }
        }
    }
}
#endif

void apus_strided_plane(
    const float *plane, long planes, long inputHeight, long inputWidth, long firstRow, long rowStride, long rows,
    long columnOffset, long columnStride, long width, float *dest, int vector) {
#if defined(__x86_64__)
    if (vector && (columnStride == 1 || columnStride == 2) && width <= 16 * MAX_VECTORS) {
        vector_rows(
            plane, planes, inputHeight, inputWidth, firstRow, rowStride, rows, columnOffset, columnStride, width, dest);
        return;
    }
#else
    (void)vector;
#endif
    for (long p = 0; p < planes; p++, plane += inputHeight * inputWidth) {
        for (long r = 0; r < rows; r++, dest += width) {
            long y = firstRow + r * rowStride;
            if (y < 0 || y >= inputHeight) {
                memset(dest, 0, (size_t)width * sizeof(float));
                continue;
            }
            const float *row = plane + y * inputWidth;
            for (long x = 0; x < width; x++) {
                long column = columnOffset + x * columnStride;
                dest[x] = column >= 0 && column < inputWidth ? row[column] : 0.0f;
            }
        }
    }
}
