// Winograd F(4×4, 3×3) input and output transforms with AVX2, for CPUs without AVX-512: the
// operations, their order and the memory layouts of `WinogradConv2D.transformInput` /
// `transformOutput` (Swift) and of winograd.c, so the same bits, eight tile columns per vector.
// No FMA: the Swift transforms round every product and sum on its own.
#include "apus_kernels.h"

#include <string.h>

#if defined(__x86_64__)

#include "avx2_common.h"

/// `Bᵀ d` for one column of six vectors, in the order of `WinogradConv2D.inputRows`.
TARGET_AVX2_NO_FMA static ALWAYS_INLINE void input_rows8(const __m256 d[6], __m256 out[6]) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    __m256 a = _mm256_sub_ps(d[4], _mm256_mul_ps(four, d[2]));
    __m256 b = _mm256_sub_ps(d[3], _mm256_mul_ps(four, d[1]));
    __m256 c = _mm256_sub_ps(d[4], d[2]);
    __m256 e = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
    out[0] = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(four, d[0]), _mm256_mul_ps(five, d[2])), d[4]);
    out[1] = _mm256_add_ps(a, b);
    out[2] = _mm256_sub_ps(a, b);
    out[3] = _mm256_add_ps(c, e);
    out[4] = _mm256_sub_ps(c, e);
    out[5] = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(four, d[1]), _mm256_mul_ps(five, d[3])), d[5]);
}

/// `Aᵀ m` for one column of six vectors, in the order of `WinogradConv2D.outputRows`.
TARGET_AVX2_NO_FMA static ALWAYS_INLINE void output_rows8(const __m256 m[6], __m256 out[4]) {
    __m256 s12 = _mm256_add_ps(m[1], m[2]);
    __m256 d12 = _mm256_sub_ps(m[1], m[2]);
    __m256 s34 = _mm256_add_ps(m[3], m[4]);
    __m256 d34 = _mm256_sub_ps(m[3], m[4]);
    out[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    out[1] = _mm256_add_ps(d12, _mm256_mul_ps(_mm256_set1_ps(2.0f), d34));
    out[2] = _mm256_add_ps(s12, _mm256_mul_ps(_mm256_set1_ps(4.0f), s34));
    out[3] = _mm256_add_ps(_mm256_add_ps(d12, _mm256_mul_ps(_mm256_set1_ps(8.0f), d34)), m[5]);
}

TARGET_AVX2_NO_FMA void apus_winograd_input_avx2(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch) {
    const long inH = g->input_height, inW = g->input_width;
    const long rows = g->plane_rows, rowStride = g->row_stride, phaseStride = rows * rowStride;
    const long tileRows = g->tile_rows, tileColumns = g->tile_columns;
    const long positionStride = g->position_stride;
    // Padded columns 32 at a time into the four phases, 8 floats each: `line_count` padded columns
    // give line_count / 4 phase columns and at most 4 more, which the row stride holds
    // (`WinogradConv2D.PhasePlane`: tile columns + 17 or more).
    const long chunks = (g->line_count + 31) / 32;
    const long written = chunks * 8;
    for (long y = 0; y < rows; y++) {
        int inside = y >= g->pad_top && y - g->pad_top < inH;
        for (long p = 0; p < 4; p++) {
            float *row = scratch + p * phaseStride + y * rowStride;
            if (inside) {
                memset(row + written, 0, (size_t)(rowStride - written) * sizeof(float));
            } else {
                memset(row, 0, (size_t)rowStride * sizeof(float));
            }
        }
    }
    const long firstRow = g->pad_top < rows ? g->pad_top : rows;
    const long endRow = g->pad_top + inH < rows ? g->pad_top + inH : rows;
    // Phase p of 32 columns after the 4 × 4 transposes within 128-bit lanes: columns
    // (p, p + 8, p + 16, p + 24 | p + 4, p + 12, p + 20, p + 28), put in order by this permutation.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (long channel = firstChannel; channel < firstChannel + channelCount; channel++) {
        const float *source = input + channel * inH * inW;
        for (long y = firstRow; y < endRow; y++) {
            const float *line = source + (y - g->pad_top) * inW;
            float *row = scratch + y * rowStride;
            for (long k = 0; k < chunks; k++) {
                // Padded column c is input column c − pad_left; outside the row, zero.
                __m256 a[4];
                for (int i = 0; i < 4; i++) {
                    long first = 32 * k + 8 * i - g->pad_left;
                    // Past `line_count` padded columns zero too, as in the Swift transform.
                    __m256i mask =
                        _mm256_and_si256(lanes_inside(first, inW), lanes_inside(32 * k + 8 * i, g->line_count));
                    int none = _mm256_testz_si256(mask, mask);
                    a[i] = none ? _mm256_setzero_ps() : _mm256_maskload_ps(line + first, mask);
                }
                __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
                __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
                __m256 p0 = _mm256_shuffle_ps(t0, t2, 0x44), p1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                __m256 p2 = _mm256_shuffle_ps(t1, t3, 0x44), p3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                _mm256_storeu_ps(row + 8 * k, _mm256_permutevar8x32_ps(p0, order));
                _mm256_storeu_ps(row + phaseStride + 8 * k, _mm256_permutevar8x32_ps(p1, order));
                _mm256_storeu_ps(row + 2 * phaseStride + 8 * k, _mm256_permutevar8x32_ps(p2, order));
                _mm256_storeu_ps(row + 3 * phaseStride + 8 * k, _mm256_permutevar8x32_ps(p3, order));
            }
        }
        float *destination = v + channel * g->tile_stride;
        for (long tileRow = 0; tileRow < tileRows; tileRow++) {
            const long y0 = tileRow * 4;
            // Eight tile columns per vector, as many vectors as the tile row needs (lanes past its
            // end spill into the next row, which overwrites them, or into the row's padding).
            for (long q0 = 0; q0 < tileColumns; q0 += 8) {
                // Column j of every tile: phase j % 4, shifted by j / 4; Bᵀ down the six rows.
                __m256 columns[6][6];
                for (int j = 0; j < 6; j++) {
                    const float *top = scratch + (j & 3) * phaseStride + y0 * rowStride + q0 + (j >> 2);
                    __m256 d[6];
                    for (int r = 0; r < 6; r++) d[r] = _mm256_loadu_ps(top + r * rowStride);
                    input_rows8(d, columns[j]);
                }
                // Bᵀ along each transformed row: V[ξr][ξc], stored in the Swift order (lanes past
                // a tile row's end are overwritten by the next row's stores).
                float *base = destination + tileRow * tileColumns + q0;
                for (int r = 0; r < 6; r++) {
                    __m256 d[6] = {columns[0][r], columns[1][r], columns[2][r], columns[3][r], columns[4][r],
                        columns[5][r]};
                    __m256 out[6];
                    input_rows8(d, out);
                    for (int i = 0; i < 6; i++) _mm256_storeu_ps(base + (r * 6 + i) * positionStride, out[i]);
                }
            }
        }
    }
}

TARGET_AVX2_NO_FMA void apus_winograd_output_avx2(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output) {
    const long outH = g->output_height, outW = g->output_width;
    const long tileRows = g->tile_rows, tileColumns = g->tile_columns;
    const long positionStride = g->position_stride;
    for (long channel = firstChannel; channel < firstChannel + channelCount; channel++) {
        float *plane = output + channel * outH * outW;
        const __m256 b = _mm256_set1_ps(bias ? bias[channel] : 0.0f);
        const float *source = m + channel * g->tile_stride;
        for (long tileRow = 0; tileRow < tileRows; tileRow++) {
            for (long q0 = 0; q0 < tileColumns; q0 += 8) {
                const float *first = source + tileRow * tileColumns + q0;
                // Aᵀ along each row of M: o[ξr][a], then down the columns: y[b][a] (+ bias).
                __m256 o[6][4];
                for (int i = 0; i < 6; i++) {
                    __m256 row[6];
                    for (int p = 0; p < 6; p++) row[p] = _mm256_loadu_ps(first + (i * 6 + p) * positionStride);
                    output_rows8(row, o[i]);
                }
                __m256 y[4][4];
                for (int a = 0; a < 4; a++) {
                    __m256 column[6] = {o[0][a], o[1][a], o[2][a], o[3][a], o[4][a], o[5][a]};
                    __m256 out[4];
                    output_rows8(column, out);
                    for (int r = 0; r < 4; r++) y[r][a] = _mm256_add_ps(out[r], b);
                }
                // The four columns of each output row of the eight tiles, tile after tile; only
                // the tiles that exist and the columns inside the map are written.
                const long count = tileColumns - q0 < 8 ? tileColumns - q0 : 8;
                const long oy = tileRow * 4, ox = q0 * 4;
                const long outputRows = outH - oy < 4 ? outH - oy : 4;
                const long columns = count * 4 < outW - ox ? count * 4 : outW - ox;
                for (long r = 0; r < outputRows; r++) {
                    __m256 u0 = _mm256_unpacklo_ps(y[r][0], y[r][1]), u1 = _mm256_unpackhi_ps(y[r][0], y[r][1]);
                    __m256 u2 = _mm256_unpacklo_ps(y[r][2], y[r][3]), u3 = _mm256_unpackhi_ps(y[r][2], y[r][3]);
                    __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xEE);
                    __m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xEE);
                    __m256 chunk[4] = {
                        _mm256_permute2f128_ps(v0, v1, 0x20), _mm256_permute2f128_ps(v2, v3, 0x20),
                        _mm256_permute2f128_ps(v0, v1, 0x31), _mm256_permute2f128_ps(v2, v3, 0x31)};
                    float *destination = plane + (oy + r) * outW + ox;
                    for (int c = 0; c < 4; c++) {
                        long left = columns - 8 * c;
                        if (left <= 0) break;
                        if (left >= 8) {
                            _mm256_storeu_ps(destination + 8 * c, chunk[c]);
                        } else {
                            _mm256_maskstore_ps(destination + 8 * c, lanes_inside(0, left), chunk[c]);
                        }
                    }
                }
            }
        }
    }
}

#else

void apus_winograd_input_avx2(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch) {
    (void)g; (void)input; (void)firstChannel; (void)channelCount; (void)v; (void)scratch;
}

void apus_winograd_output_avx2(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output) {
    (void)g; (void)m; (void)firstChannel; (void)channelCount; (void)bias; (void)output;
}

#endif
