// Winograd F(4×4, 3×3) input and output transforms with AVX-512: the operations, their order and
// the memory layouts of `WinogradConv2D.transformInput` / `transformOutput` (Swift), so the
// results are the same bits; written here because the Swift versions of these 36-vector
// transforms spill (16 SSE registers in the default build) and check every index for overflow.
#include "apus_kernels.h"

#include <string.h>

#if defined(__x86_64__)

#include "avx512_common.h"
#include "lane_masks.h"

/// `Bᵀ d` for one column of six vectors, in the order of `WinogradConv2D.inputRows`.
TARGET static inline __attribute__((always_inline)) void input_rows(const __m512 d[6], __m512 out[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    __m512 a = _mm512_sub_ps(d[4], _mm512_mul_ps(four, d[2]));
    __m512 b = _mm512_sub_ps(d[3], _mm512_mul_ps(four, d[1]));
    __m512 c = _mm512_sub_ps(d[4], d[2]);
    __m512 e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    out[0] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d[0]), _mm512_mul_ps(five, d[2])), d[4]);
    out[1] = _mm512_add_ps(a, b);
    out[2] = _mm512_sub_ps(a, b);
    out[3] = _mm512_add_ps(c, e);
    out[4] = _mm512_sub_ps(c, e);
    out[5] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d[1]), _mm512_mul_ps(five, d[3])), d[5]);
}

/// `Aᵀ m` for one column of six vectors, in the order of `WinogradConv2D.outputRows`.
TARGET static inline __attribute__((always_inline)) void output_rows(const __m512 m[6], __m512 out[4]) {
    __m512 s12 = _mm512_add_ps(m[1], m[2]);
    __m512 d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]);
    __m512 d34 = _mm512_sub_ps(m[3], m[4]);
    out[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    out[1] = _mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(2.0f), d34));
    out[2] = _mm512_add_ps(s12, _mm512_mul_ps(_mm512_set1_ps(4.0f), s34));
    out[3] = _mm512_add_ps(_mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(8.0f), d34)), m[5]);
}

/// A permutation of two vectors (`_mm512_permutex2var_ps` index `i` < 16 from `a`, else `b`).
#define INDEX(...) _mm512_setr_epi32(__VA_ARGS__)

/// `Bᵀ` along each row of the six transformed columns (`columns[j]`: Bᵀ down column j of every
/// lane's tile) and the 36 results stored at `base`, one vector per position: V[ξr][ξc].
TARGET static inline __attribute__((always_inline)) void input_columns_store(
    __m512 columns[6][6], float *base, long positionStride) {
    for (int r = 0; r < 6; r++) {
        __m512 d[6] = {columns[0][r], columns[1][r], columns[2][r], columns[3][r], columns[4][r], columns[5][r]};
        __m512 out[6];
        input_rows(d, out);
        for (int i = 0; i < 6; i++) _mm512_storeu_ps(base + (r * 6 + i) * positionStride, out[i]);
    }
}

/// The output tiles of the sixteen lanes of M at `first` (one vector per position): `Aᵀ` along
/// each row of M, then down the columns, plus `b`; then each output row's four columns of the
/// sixteen tiles interleaved into 64 floats, tile by tile: `chunk[r][c]` holds tiles 4c ..< 4c + 4
/// of output row r.
TARGET static inline __attribute__((always_inline)) void output_chunks(
    const float *first, long positionStride, __m512 b, __m512 chunk[4][4]) {
    // First pairs (a0 a1 | a2 a3) of tiles 0–7 and 8–15, then pairs of pairs.
    const __m512i pairLow = INDEX(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i pairHigh = INDEX(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i quadLow = INDEX(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i quadHigh = INDEX(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    __m512 o[6][4];
    for (int i = 0; i < 6; i++) {
        __m512 row[6];
        for (int p = 0; p < 6; p++) row[p] = _mm512_loadu_ps(first + (i * 6 + p) * positionStride);
        output_rows(row, o[i]);
    }
    __m512 y[4][4];
    for (int a = 0; a < 4; a++) {
        __m512 column[6] = {o[0][a], o[1][a], o[2][a], o[3][a], o[4][a], o[5][a]};
        __m512 out[4];
        output_rows(column, out);
        for (int r = 0; r < 4; r++) y[r][a] = _mm512_add_ps(out[r], b);
    }
    for (int r = 0; r < 4; r++) {
        __m512 low01 = _mm512_permutex2var_ps(y[r][0], pairLow, y[r][1]);
        __m512 high01 = _mm512_permutex2var_ps(y[r][0], pairHigh, y[r][1]);
        __m512 low23 = _mm512_permutex2var_ps(y[r][2], pairLow, y[r][3]);
        __m512 high23 = _mm512_permutex2var_ps(y[r][2], pairHigh, y[r][3]);
        chunk[r][0] = _mm512_permutex2var_ps(low01, quadLow, low23);
        chunk[r][1] = _mm512_permutex2var_ps(low01, quadHigh, low23);
        chunk[r][2] = _mm512_permutex2var_ps(high01, quadLow, high23);
        chunk[r][3] = _mm512_permutex2var_ps(high01, quadHigh, high23);
    }
}

TARGET void apus_winograd_input_avx512(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch) {
    const long inH = g->input_height, inW = g->input_width;
    const long rows = g->plane_rows, rowStride = g->row_stride, phaseStride = rows * rowStride;
    const long tileRows = g->tile_rows, tileColumns = g->tile_columns;
    const long positionStride = g->position_stride;
    // Padded columns 64 at a time into the four phases, 16 floats each: `lineCount` padded columns
    // (whole vectors) give lineCount / 4 phase columns, at most 12 short of a whole chunk, which
    // the row stride holds (`WinogradConv2D.PhasePlane`).
    const long chunks = (g->line_count + 63) / 64;
    const long written = chunks * 16;
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
    const __m512i evens = even_lanes();
    const __m512i odds = odd_lanes();
    for (long channel = firstChannel; channel < firstChannel + channelCount; channel++) {
        const float *source = input + channel * inH * inW;
        for (long y = firstRow; y < endRow; y++) {
            const float *line = source + (y - g->pad_top) * inW;
            float *row = scratch + y * rowStride;
            for (long k = 0; k < chunks; k++) {
                // Padded column c is input column c − pad_left; outside the row, zero.
                __m512 a[4];
                for (int i = 0; i < 4; i++) {
                    long first = 64 * k + 16 * i - g->pad_left;
                    a[i] = load_lanes((__mmask16)range_mask(first, inW), line + first);
                }
                __m512 e0 = _mm512_permutex2var_ps(a[0], evens, a[1]), o0 = _mm512_permutex2var_ps(a[0], odds, a[1]);
                __m512 e1 = _mm512_permutex2var_ps(a[2], evens, a[3]), o1 = _mm512_permutex2var_ps(a[2], odds, a[3]);
                _mm512_storeu_ps(row + 16 * k, _mm512_permutex2var_ps(e0, evens, e1));
                _mm512_storeu_ps(row + phaseStride + 16 * k, _mm512_permutex2var_ps(o0, evens, o1));
                _mm512_storeu_ps(row + 2 * phaseStride + 16 * k, _mm512_permutex2var_ps(e0, odds, e1));
                _mm512_storeu_ps(row + 3 * phaseStride + 16 * k, _mm512_permutex2var_ps(o0, odds, o1));
            }
        }
        float *destination = v + channel * g->tile_stride;
        if (tileColumns == 4) {
            // Maps four tiles wide (13 to 16 columns: ResNet's 14 × 14): four tile rows side by side
            // in one vector, each group of lanes loaded from its own rows, instead of a vector per
            // tile row with three quarters of the lanes idle. Each lane's arithmetic is the same, so
            // are the bits; each (position, channel) row gets one 16-float store. (Seven and eight
            // tiles a row, two tile rows per vector, gained nothing: Docs/performance.md.)
            for (long tileRow0 = 0; tileRow0 < tileRows; tileRow0 += 4) {
                const long rowsHere = tileRows - tileRow0 < 4 ? tileRows - tileRow0 : 4;
                __m512 columns[6][6];
                for (int j = 0; j < 6; j++) {
                    __m512 d[6];
                    for (int r = 0; r < 6; r++) {
                        __m512 lanes = _mm512_setzero_ps();
                        for (long s = 0; s < rowsHere; s++) {
                            // Lanes 4s ..< 4s + 4: tile row tileRow0 + s.
                            const float *top = scratch + (j & 3) * phaseStride + ((tileRow0 + s) * 4 + r) * rowStride +
                                (j >> 2) - 4 * s;
                            const __mmask16 mask = (__mmask16)(0xF << (4 * s));
                            lanes = _mm512_mask_loadu_ps(lanes, mask, top);
                        }
                        d[r] = lanes;
                    }
                    input_rows(d, columns[j]);
                }
                input_columns_store(columns, destination + tileRow0 * tileColumns, positionStride);
            }
            continue;
        }
        for (long tileRow = 0; tileRow < tileRows; tileRow++) {
            const long y0 = tileRow * 4;
            for (long q0 = 0; q0 < tileColumns; q0 += 16) {
                // Column j of every tile: phase j % 4, shifted by j / 4; Bᵀ down the six rows.
                __m512 columns[6][6];
                for (int j = 0; j < 6; j++) {
                    const float *top = scratch + (j & 3) * phaseStride + y0 * rowStride + q0 + (j >> 2);
                    __m512 d[6];
                    for (int r = 0; r < 6; r++) d[r] = _mm512_loadu_ps(top + r * rowStride);
                    input_rows(d, columns[j]);
                }
                // Stored in the Swift order (lanes past a tile row's end are overwritten by the next
                // row's stores).
                input_columns_store(columns, destination + tileRow * tileColumns + q0, positionStride);
            }
        }
    }
}

TARGET void apus_winograd_output_avx512(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output) {
    const long outH = g->output_height, outW = g->output_width;
    const long tileRows = g->tile_rows, tileColumns = g->tile_columns;
    const long positionStride = g->position_stride;
    for (long channel = firstChannel; channel < firstChannel + channelCount; channel++) {
        float *plane = output + channel * outH * outW;
        const __m512 b = _mm512_set1_ps(bias ? bias[channel] : 0.0f);
        const float *source = m + channel * g->tile_stride;
        if (tileColumns == 4) {
            // Maps four tiles wide, as in the input transform: four tile rows per vector, one load
            // per row of M; tile row s of the vector is chunk s of each output row.
            const long columns = 16 < outW ? 16 : outW;
            for (long tileRow0 = 0; tileRow0 < tileRows; tileRow0 += 4) {
                __m512 chunk[4][4];
                output_chunks(source + tileRow0 * 4, positionStride, b, chunk);
                const long rowsHere = tileRows - tileRow0 < 4 ? tileRows - tileRow0 : 4;
                for (long s = 0; s < rowsHere; s++) {
                    for (long r = 0; r < 4; r++) {
                        const long oy = (tileRow0 + s) * 4 + r;
                        if (oy >= outH) break;
                        _mm512_mask_storeu_ps(plane + oy * outW, (__mmask16)range_mask(0, columns), chunk[r][s]);
                    }
                }
            }
            continue;
        }
        for (long tileRow = 0; tileRow < tileRows; tileRow++) {
            for (long q0 = 0; q0 < tileColumns; q0 += 16) {
                __m512 chunk[4][4];
                output_chunks(source + tileRow * tileColumns + q0, positionStride, b, chunk);
                // Only the tiles that exist and the columns inside the map are written.
                const long count = tileColumns - q0 < 16 ? tileColumns - q0 : 16;
                const long oy = tileRow * 4, ox = q0 * 4;
                const long outputRows = outH - oy < 4 ? outH - oy : 4;
                const long columns = count * 4 < outW - ox ? count * 4 : outW - ox;
                for (long r = 0; r < outputRows; r++) {
                    float *destination = plane + (oy + r) * outW + ox;
                    for (int c = 0; c < 4; c++) {
                        long left = columns - 16 * c;
                        if (left <= 0) break;
                        _mm512_mask_storeu_ps(destination + 16 * c, (__mmask16)range_mask(0, left), chunk[r][c]);
                    }
                }
            }
        }
    }
}

#else

void apus_winograd_input_avx512(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch) {
    (void)g; (void)input; (void)firstChannel; (void)channelCount; (void)v; (void)scratch;
}

void apus_winograd_output_avx512(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output) {
    (void)g; (void)m; (void)firstChannel; (void)channelCount; (void)bias; (void)output;
}

#endif
