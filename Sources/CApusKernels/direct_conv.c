// Direct convolution kernels in AVX-512, chosen at run time (DirectConvKernel.swift): depthwise
// layers, and layers with at most four input channels (network stems). Both walk one table per
// plan that says, for every vector of 16 outputs, where its taps start and which lanes exist.
#include "apus_kernels.h"
#include "lane_masks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/// The table's header; then `units` unit records, then the masks, `[unit][tap][load]`.
typedef struct {
    long units;
    long taps;
    /// Loads per tap: 1, or 2 for stride 2 (the 32 input columns whose even ones are the taps).
    long loads;
    /// The first `full` units (a multiple of four) load every lane of every tap, without masks.
    long full;
} table_header;

/// Sixteen outputs: where they go in the output plane, where tap (0, 0) of the first one is in
/// the input plane (negative inside the padding), and which lanes exist.
typedef struct {
    int32_t input;
    int32_t output;
    uint32_t tail;
} table_unit;

/// Units are processed four at a time; the count is padded with units that load and store nothing.
#define GROUP 4

int apus_depthwise_supported(const apus_depthwise_geometry *g) {
    const long limit = 1L << 28;
    return g->kernel >= 1 && g->kernel <= 7 && (g->stride == 1 || g->stride == 2) && g->input_height > 0 &&
        g->input_width > 0 && g->output_height > 0 && g->output_width > 0 && g->pad_top >= 0 && g->pad_left >= 0 &&
        g->pad_top < limit && g->pad_left < limit && g->input_height < limit && g->input_width < limit &&
        g->output_height < limit && g->output_width < limit && g->input_height * g->input_width < limit &&
        g->output_height * g->output_width < limit;
}

/// Stride 1 with output rows as wide as input rows: the plane is convolved as one flat row, so a
/// vector spans row ends and 7- or 14-wide maps fill whole vectors; tap (ky, kx) of output `p` is
/// input `p + (ky − pad_top)·width + kx − pad_left`.
static int is_flat(const apus_depthwise_geometry *g) {
    return g->stride == 1 && g->output_width == g->input_width;
}

static long unit_count(const apus_depthwise_geometry *g) {
    long units = is_flat(g) ? (g->output_height * g->output_width + 15) / 16
                            : g->output_height * ((g->output_width + 15) / 16);
    return (units + GROUP - 1) / GROUP * GROUP;
}

static size_t units_bytes(long units) {
    return ((size_t)units * sizeof(table_unit) + 7) / 8 * 8;
}

/// The parts of a table made by `apus_depthwise_prepare`.
typedef struct {
    const table_header *header;
    const table_unit *units;
    const uint16_t *masks;
} table_view;

static inline table_view view_of(const void *table) {
    table_view view;
    view.header = table;
    view.units = (const table_unit *)(view.header + 1);
    view.masks = (const uint16_t *)((const char *)view.units + units_bytes(view.header->units));
    return view;
}

size_t apus_depthwise_table_size(const apus_depthwise_geometry *g) {
    if (!apus_depthwise_supported(g)) return 0;
    long units = unit_count(g);
    long loads = g->stride == 2 ? 2 : 1;
    return sizeof(table_header) + units_bytes(units) + (size_t)(units * g->kernel * g->kernel * loads) * 2;
}

/// Moves the units whose every tap mask is full to the front (units are independent: each writes
/// its own outputs), as many as fill whole groups, and records how many there are.
static void move_full_units_first(table_header *header, table_unit *units, uint16_t *masks) {
    const long per = header->taps * header->loads;
    long full = 0;
    for (long u = 0; u < header->units; u++) {
        int all = 1;
        for (long i = 0; i < per; i++) all &= masks[u * per + i] == 0xFFFF;
        if (!all) continue;
        // Swap unit u with unit `full`, masks included.
        table_unit t = units[u];
        units[u] = units[full];
        units[full] = t;
        for (long i = 0; i < per; i++) {
            uint16_t m = masks[u * per + i];
            masks[u * per + i] = masks[full * per + i];
            masks[full * per + i] = m;
        }
        full++;
    }
    header->full = full / GROUP * GROUP;
}

void apus_depthwise_prepare(const apus_depthwise_geometry *g, void *table) {
    const long K = g->kernel, S = g->stride, H = g->input_height, W = g->input_width;
    const long outH = g->output_height, outW = g->output_width;
    table_header *header = table;
    header->units = unit_count(g);
    header->taps = K * K;
    header->loads = S == 2 ? 2 : 1;
    header->full = 0;
    table_unit *units = (table_unit *)(header + 1);
    uint16_t *masks = (uint16_t *)((char *)units + units_bytes(header->units));
    memset(units, 0, units_bytes(header->units));
    memset(masks, 0, (size_t)(header->units * header->taps * header->loads) * 2);
    if (is_flat(g)) {
        const long count = outH * W;
        for (long u = 0; u * 16 < count; u++) {
            long p0 = u * 16;
            units[u].output = (int32_t)p0;
            units[u].input = (int32_t)(p0 - g->pad_top * W - g->pad_left);
            units[u].tail = count - p0 >= 16 ? 0xFFFFu : (1u << (count - p0)) - 1u;
            for (long ky = 0; ky < K; ky++) {
                for (long kx = 0; kx < K; kx++) {
                    uint16_t mask = 0;
                    for (long j = 0; j < 16 && p0 + j < count; j++) {
                        long y = (p0 + j) / W + ky - g->pad_top;
                        long x = (p0 + j) % W + kx - g->pad_left;
                        if (y >= 0 && y < H && x >= 0 && x < W) mask |= (uint16_t)(1u << j);
                    }
                    masks[u * K * K + ky * K + kx] = mask;
                }
            }
        }
        move_full_units_first(header, units, masks);
        return;
    }
    const long vectors = (outW + 15) / 16;
    for (long oy = 0; oy < outH; oy++) {
        for (long v = 0; v < vectors; v++) {
            long u = oy * vectors + v;
            long x0 = v * 16;
            units[u].output = (int32_t)(oy * outW + x0);
            units[u].input = (int32_t)((oy * S - g->pad_top) * W + x0 * S - g->pad_left);
            units[u].tail = outW - x0 >= 16 ? 0xFFFFu : (1u << (outW - x0)) - 1u;
            for (long ky = 0; ky < K; ky++) {
                long iy = oy * S + ky - g->pad_top;
                if (iy < 0 || iy >= H) continue;
                for (long kx = 0; kx < K; kx++) {
                    long first = x0 * S + kx - g->pad_left;
                    uint16_t *m = masks + (u * K * K + ky * K + kx) * header->loads;
                    m[0] = range_mask(first, W);
                    if (S == 2) m[1] = range_mask(first + 16, W);
                }
            }
        }
    }
    move_full_units_first(header, units, masks);
}

#if defined(__x86_64__)

#include "avx512_common.h"

/// Whether the environment sets `name` to "0": the switches that keep a specialised kernel off, to
/// measure the one behind it.
static int switched_off(const char *name) {
    const char *text = getenv(name);
    return text && strcmp(text, "0") == 0;
}

/// `base + offset` computed on integers: the start of a vector inside the padding lies before
/// the plane, and the lanes it would read are masked off (masked loads do not fault).
static inline const float *offset_pointer(const float *base, long offset) {
    return (const float *)((uintptr_t)base + (uintptr_t)(offset * (long)sizeof(float)));
}

/// Residual, activation `ACT` (an `APUS_GEMM_*` constant) and store of one vector.
TARGET static inline __attribute__((always_inline)) void store(
    const int ACT, __m512 acc, float *out, const float *residual, float low, float high, __mmask16 mask) {
    if (residual) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, residual));
    acc = activate(ACT, acc, low, high);
    _mm512_mask_storeu_ps(out, mask, acc);
}

/// Units `begin ..< end` of one plane, four at a time: four independent chains of fused
/// multiply-adds hide the FMA latency (one chain per vector, in tap order, so the grouping does
/// not change a result). `K` (0: `k` at run time), `S`, `ACT` and `FULL` (every lane of every
/// tap exists: plain loads, no masks) are constants in each instantiation.
TARGET static inline __attribute__((always_inline)) void units_of_plane(
    const int K, const int S, const int ACT, const int FULL, long k, long W, const table_unit *units,
    const uint16_t *masks, long begin, long end, const float *in, const __m512 *weights, float bias, float *out,
    const float *residual, float low, float high) {
    if (K) k = K;
    const long taps = k * k;
    const long L = S == 2 ? 2 : 1;
    const __m512i evens = even_lanes();
    const __m512i odds = odd_lanes();
    for (long u = begin; u < end; u += GROUP) {
        const table_unit *un = units + u;
        const uint16_t *m = masks + u * taps * L;
        if (S == 1 && FULL) {
            // Stride 1 walks the plane front to back, 64 outputs per group: fetch the 64 input
            // columns a group a few rows on will need (past the plane: the next plane's).
            const char *ahead = (const char *)offset_pointer(in, un[0].input + (k + 2) * W);
#pragma clang loop unroll(full)
            for (int line = 0; line < GROUP; line++) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
        }
        __m512 acc[GROUP];
        const float *base[GROUP];
#pragma clang loop unroll(full)
        for (int j = 0; j < GROUP; j++) {
            acc[j] = _mm512_set1_ps(bias);
            base[j] = offset_pointer(in, un[j].input);
        }
        for (long ky = 0; ky < k; ky++) {
            // Stride 2: one load of 32 columns serves two taps, kx (its even columns) and kx + 1 (its
            // odd ones), with the mask of tap kx (a lane exists if its column does).
            for (long kx = 0; kx < k; kx += S) {
                const long t = ky * k + kx;
#pragma clang loop unroll(full)
                for (int j = 0; j < GROUP; j++) {
                    const uint16_t *mt = m + (j * taps + t) * L;
                    const float *p = base[j] + kx;
                    if (S == 2) {
                        __m512 lowHalf = FULL ? _mm512_loadu_ps(p) : load_lanes(mt[0], p);
                        __m512 highHalf = FULL ? _mm512_loadu_ps(p + 16) : load_lanes(mt[1], p + 16);
                        acc[j] = _mm512_fmadd_ps(
                            weights[t], _mm512_permutex2var_ps(lowHalf, evens, highHalf), acc[j]);
                        if (kx + 1 < k) {
                            acc[j] = _mm512_fmadd_ps(
                                weights[t + 1], _mm512_permutex2var_ps(lowHalf, odds, highHalf), acc[j]);
                        }
                    } else {
                        __m512 v = FULL ? _mm512_loadu_ps(p) : load_lanes(mt[0], p);
                        acc[j] = _mm512_fmadd_ps(weights[t], v, acc[j]);
                    }
                }
            }
#pragma clang loop unroll(full)
            for (int j = 0; j < GROUP; j++) base[j] += W;
        }
        for (int j = 0; j < GROUP; j++) {
            __mmask16 tail = (__mmask16)un[j].tail;
            if (!tail) continue;
            store(ACT, acc[j], out + un[j].output, residual ? residual + un[j].output : 0, low, high, tail);
        }
    }
}

/// One plane: the units without masks, then the others.
TARGET static inline __attribute__((always_inline)) void plane(
    const int K, const int S, const int ACT, const apus_depthwise_geometry *g, const void *table, const float *in,
    const float *w, float bias, float *out, const float *residual, float low, float high) {
    const table_view v = view_of(table);
    const long k = K ? K : g->kernel;
    __m512 weights[49];
    for (long t = 0; t < k * k; t++) weights[t] = _mm512_set1_ps(w[t]);
    units_of_plane(
        K, S, ACT, 1, k, g->input_width, v.units, v.masks, 0, v.header->full, in, weights, bias, out, residual, low,
        high);
    units_of_plane(
        K, S, ACT, 0, k, g->input_width, v.units, v.masks, v.header->full, v.header->units, in, weights, bias, out,
        residual, low, high);
}

/// Floats of the banded kernel's scratch, on the stack (32 KiB: a band stays in L1).
#define BAND_FLOATS 8192

/// The banded kernel, for 5 × 5 stride-1 layers on maps 9 to 32 wide (efficientnet's 14 × 14
/// and 28 × 28 layers). The table-driven kernel loads each of the 25 taps of every vector with a
/// mask read from the table (the flat 14 × 14 plane has almost no vector without a padded lane):
/// 50 loads per 25 fused multiply-adds. This one copies a band of input rows into a zero-padded
/// scratch and computes eight output rows at a time, so each loaded input vector feeds up to five
/// rows' sums and no load needs a mask (672 planes of 14 × 14: 125 → 93 µs; 1.2–1.45× on these
/// shapes; 7 × 7 maps stay on the flat kernel, which fills whole vectors there).
///
/// Scratch row `i` holds padded input row `oy0 + i` of the band starting at output row `oy0`,
/// `row_stride` floats, input column `x` at `pad_left + x`. Tap (ky, kx) of the output vector at
/// column `x` of output row `r` is the plain load at row `r + ky`, column `x + kx`.
typedef struct {
    long row_stride;
    /// Output rows per band: a multiple of 8, so that every group of rows a pass computes fits.
    long band_rows;
} band_layout;

/// The band layout of `g`, or 0 when the banded kernel does not take it.
static int band_layout_of(const apus_depthwise_geometry *g, band_layout *b) {
    const long K = g->kernel;
    const long vectors = (g->output_width + 15) / 16;
    if (K != 5 || g->stride != 1 || vectors > 2 || g->output_width <= 8) return 0;
    // Columns the last vector's taps read, and those the copy of an input row writes.
    long width = vectors * 16 + K - 1;
    const long written = g->input_width + g->pad_left + 1;
    if (written > width) width = written;
    b->row_stride = (width + 15) / 16 * 16;
    // A band of B output rows reads B − 1 + K padded rows.
    const long rows = BAND_FLOATS / b->row_stride;
    long band = rows < K ? 0 : (rows - K + 1) / 8 * 8;
    if (band < 8) return 0;
    const long needed = (g->output_height + 7) / 8 * 8;
    b->band_rows = band < needed ? band : needed;
    return 1;
}

/// Writes padded row `row` (input row `row − pad_top`, or zeros) into `dest` from column
/// `pad_left`; the columns around it keep the zeros the scratch started with.
TARGET static inline void fill_row(
    const apus_depthwise_geometry *g, const band_layout *b, const float *input, long row, float *dest) {
    const long iy = row - g->pad_top, W = g->input_width;
    if (iy < 0 || iy >= g->input_height) {
        memset(dest, 0, sizeof(float) * (size_t)b->row_stride);
        return;
    }
    const float *source = input + iy * W;
    float *d = dest + g->pad_left;
    long j = 0;
    for (; j + 16 <= W; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(source + j));
    if (j < W) {
        const __mmask16 m = range_mask(j, W);
        _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, source + j));
    }
}

/// `R` output rows × `NV` vectors of a band (R·NV = 8 independent chains); the first `rows` of
/// them are stored. Each output sums bias, then taps in (ky, kx) order, one fused multiply-add
/// each: the order of the table-driven kernel, so both give the same bits.
TARGET static inline __attribute__((always_inline)) void band_block(
    const int K, const int R, const int NV, const int ACT, const band_layout *b, const float *first,
    const __m512 *weights, float bias, float *out, const float *residual, long outW, long rows, float low,
    float high) {
    __m512 acc[R][NV];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_set1_ps(bias);
    }
    // Scratch row t feeds output rows t − K + 1 … t of the group.
#pragma clang loop unroll(full)
    for (int t = 0; t < R - 1 + K; t++) {
        const float *row = first + t * b->row_stride;
#pragma clang loop unroll(full)
        for (int kx = 0; kx < K; kx++) {
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) {
                const __m512 x = _mm512_loadu_ps(row + kx + 16 * v);
#pragma clang loop unroll(full)
                for (int r = 0; r < R; r++) {
                    const int ky = t - r;
                    if (ky >= 0 && ky < K) acc[r][v] = _mm512_fmadd_ps(weights[ky * K + kx], x, acc[r][v]);
                }
            }
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        if (r >= rows) break;
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            const long index = r * outW + 16 * v;
            store(ACT, acc[r][v], out + index, residual ? residual + index : 0, low, high, range_mask(16 * v, outW));
        }
    }
}

/// One plane through the banded kernel: for each band of output rows, copy the padded input rows
/// it reads into the scratch, then compute eight rows of one vector at a time (maps at most 16
/// wide) or four rows of two.
TARGET static inline __attribute__((always_inline)) void banded_plane(
    const int K, const int ACT, const apus_depthwise_geometry *g, const band_layout *b, float *scratch,
    const float *in, const float *w, float bias, float *out, const float *residual, float low, float high) {
    __m512 weights[K * K];
    for (long t = 0; t < K * K; t++) weights[t] = _mm512_set1_ps(w[t]);
    const long outH = g->output_height, outW = g->output_width;
    {
        // The next plane (contiguous with this one; prefetches do not fault), while this one computes.
        const char *next = (const char *)(in + g->input_height * g->input_width);
        for (long b = 0; b < g->input_height * g->input_width * (long)sizeof(float); b += 64) {
            _mm_prefetch(next + b, _MM_HINT_T0);
        }
    }
    for (long oy0 = 0; oy0 < outH; oy0 += b->band_rows) {
        const long rows = outH - oy0 < b->band_rows ? outH - oy0 : b->band_rows;
        for (long i = 0; i < rows - 1 + K; i++) fill_row(g, b, in, oy0 + i, scratch + i * b->row_stride);
        float *o = out + oy0 * outW;
        const float *res = residual ? residual + oy0 * outW : 0;
        const long step = outW <= 16 ? 8 : 4;
        for (long r = 0; r < rows; r += step) {
            const float *first = scratch + r * b->row_stride;
            const float *rr = res ? res + r * outW : 0;
            if (step == 8) {
                band_block(K, 8, 1, ACT, b, first, weights, bias, o + r * outW, rr, outW, rows - r, low, high);
            } else {
                band_block(K, 4, 2, ACT, b, first, weights, bias, o + r * outW, rr, outW, rows - r, low, high);
            }
        }
    }
}

/// Widest input row the stride-2 row kernel takes (its zero row must cover it).
#define ROW_KERNEL_MAX_WIDTH 4096

/// Rows above and below the input read as this row of zeros.
static const float zero_row[ROW_KERNEL_MAX_WIDTH + 64] __attribute__((aligned(64)));

/// The row kernels' groups of sums: `R` output rows × `NV` vectors (at most 16 × 2; fixed sizes,
/// since arrays sized by the `const int` parameters would be variable-length, on the stack).
typedef __m512 block_sums[16][2];

/// Every sum of the group starts at the bias.
TARGET static inline __attribute__((always_inline)) void block_start(
    const int R, const int NV, block_sums acc, float bias) {
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_set1_ps(bias);
    }
}

/// Adds input row `t` of the group (its `K` taps per vector in `taps[kx][v]`) to the output rows
/// that read it: output row `r` reads it as tap row `ky = t − S·r` (stride `S`). Independent sums
/// next to each other; each sum still takes its taps in (ky, kx) order.
TARGET static inline __attribute__((always_inline)) void block_add_row(
    const int K, const int S, const int R, const int NV, const int t, __m512 taps[][2], const __m512 *w,
    block_sums acc) {
#pragma clang loop unroll(full)
    for (int kx = 0; kx < K; kx++) {
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
            const int ky = t - S * r;
            if (ky < 0 || ky >= K) continue;
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(w[ky * K + kx], taps[kx][v], acc[r][v]);
        }
    }
}

/// Stores the group's first `stored` rows from column `x0` of `out` (rows `rowStride` apart), with
/// the residual and activation; with `LAST`, the last vector's lanes are `lastMask`.
TARGET static inline __attribute__((always_inline)) void block_store(
    const int R, const int NV, const int LAST, const int ACT, block_sums acc, float *out, const float *residual,
    long rowStride, long x0, long stored, __mmask16 lastMask, float low, float high) {
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        if (r >= stored) break;
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            const long index = r * rowStride + x0 + 16 * v;
            const __mmask16 mask = LAST && v == NV - 1 ? lastMask : 0xFFFF;
            store(ACT, acc[r][v], out + index, residual ? residual + index : 0, low, high, mask);
        }
    }
}

/// Whether the stride-2 row kernel takes `g`: 3 × 3 with one column of left padding, or 5 × 5
/// with two on maps more than 8 outputs wide (7-wide maps go to the channel kernel: 672 planes of
/// 14² → 7², 27 against 40 µs; 240 planes of 28² → 14² ran 77 µs there, 49 here) and inputs at
/// most 1024 wide (an earlier two-row kernel ran 4096-wide planes 1.4× slower than the table).
static int s2_rows_apply(const apus_depthwise_geometry *g) {
    if (g->stride != 2 || g->input_width > ROW_KERNEL_MAX_WIDTH) return 0;
    if (g->kernel == 3) return g->pad_left == 1;
    return g->kernel == 5 && g->pad_left == 2 && g->output_width > 8 && g->input_width <= 1024;
}

/// The stride-2 row kernel, 3 × 3 with one column of left padding (MobileNetV2's and
/// EfficientNet's downsampling layers) or 5 × 5 with two (EfficientNet's), for `R` output rows ×
/// `NV` vectors. The table-driven kernel builds each tap row from two loads of 32 columns and
/// permutes, `K` times per row. Here one pair of loads at `2x` gives, through two permutes, the
/// even columns and the odd ones, and every tap is one of them as is or moved by one lane
/// (`valignd`) with the neighbouring vector's lane coming in: for 3 × 3, tap kx = 0 (columns
/// `2x − 1`) is the odd vector moved up, kx = 1 the even one, kx = 2 the odd one; for 5 × 5, taps
/// 0 and 1 are the even and odd vectors moved up, 2 and 3 as is, 4 the even one moved down. Each
/// loaded input row feeds every output row of the group that reads it. `LAST`: the last vector's 32
/// columns pass the row's end (masked loads; the masks computed once per group: computed per load,
/// their scalar arithmetic was the bound). Each output sums bias, then taps in (ky, kx) order: the
/// table-driven kernel's order, so the same bits.
TARGET static inline __attribute__((always_inline)) void s2_block(
    const int K, const int R, const int NV, const int LAST, const int ACT, const float *const *rows, long x0, long W,
    const __m512 *w, float bias, float *out, const float *residual, long outW, long stored, float low, float high) {
    const __m512i evens = even_lanes();
    const __m512i odds = odd_lanes();
    block_sums acc;
    block_start(R, NV, acc, bias);
    const long c0 = 2 * x0, lastColumn = 2 * (x0 + 16 * (NV - 1)), next = c0 + 32 * NV;
    const __mmask16 lowMask = range_mask(lastColumn, W), highMask = range_mask(lastColumn + 16, W);
#pragma clang loop unroll(full)
    for (int t = 0; t < 2 * R + K - 2; t++) {
        const float *row = rows[t];
        __m512 even[3], odd[2];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            const long c = c0 + 32 * v;
            __m512 lo, hi;
            if (LAST && v == NV - 1) {
                lo = _mm512_maskz_loadu_ps(lowMask, row + c);
                hi = _mm512_maskz_loadu_ps(highMask, row + c + 16);
            } else {
                lo = _mm512_loadu_ps(row + c);
                hi = _mm512_loadu_ps(row + c + 16);
            }
            even[v] = _mm512_permutex2var_ps(lo, evens, hi);
            odd[v] = _mm512_permutex2var_ps(lo, odds, hi);
        }
        // The last odd column before the group, and for 5 × 5 the last even one and the first even
        // one after it.
        const __m512 previousOdd = _mm512_set1_ps(c0 >= 1 ? row[c0 - 1] : 0.0f);
        __m512 previousEven = previousOdd;
        if (K == 5) {
            previousEven = _mm512_set1_ps(c0 >= 2 ? row[c0 - 2] : 0.0f);
            even[NV] = _mm512_set1_ps(next < W ? row[next] : 0.0f);
        }
        __m512 taps[5][2];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            const __m512 beforeOdd = v ? odd[v - 1] : previousOdd;
            const __m512 oddUp = _mm512_castsi512_ps(
                _mm512_alignr_epi32(_mm512_castps_si512(odd[v]), _mm512_castps_si512(beforeOdd), 15));
            if (K == 3) {
                taps[0][v] = oddUp;
                taps[1][v] = even[v];
                taps[2][v] = odd[v];
            } else {
                const __m512 beforeEven = v ? even[v - 1] : previousEven;
                taps[0][v] = _mm512_castsi512_ps(
                    _mm512_alignr_epi32(_mm512_castps_si512(even[v]), _mm512_castps_si512(beforeEven), 15));
                taps[1][v] = oddUp;
                taps[2][v] = even[v];
                taps[3][v] = odd[v];
                taps[4][v] = _mm512_castsi512_ps(
                    _mm512_alignr_epi32(_mm512_castps_si512(even[v + 1]), _mm512_castps_si512(even[v]), 1));
            }
        }
        block_add_row(K, 2, R, NV, t, taps, w, acc);
    }
    const __mmask16 storeMask = range_mask(x0 + 16 * (NV - 1), outW);
    block_store(R, NV, LAST, ACT, acc, out, residual, outW, x0, stored, storeMask, low, high);
}

/// Output rows `oyBegin ..< oyEnd` of one plane through the stride-2 row kernel, two at a time
/// (`s2_block`: two rows × two vectors, the best of 2–4 rows on 112², 56² and 28² planes). `in` is
/// the plane's input row `firstInputRow`, and only rows before `inputEnd` are there (the caller
/// keeps `firstInputRow <= 2·oyBegin − pad_top` and `inputEnd` past every row a stored output
/// reads; the unstored second row of an odd last pair reads zeros past it); `out` and `residual`
/// are the output plane's row 0.
TARGET static inline __attribute__((always_inline)) void s2_rows(
    const int K, const int ACT, const apus_depthwise_geometry *g, const float *in, long firstInputRow, long inputEnd,
    long oyBegin, long oyEnd, const float *wt, float bias, float *out, const float *residual, float low, float high) {
    const int R = 2;
    __m512 w[25];
    for (int t = 0; t < K * K; t++) w[t] = _mm512_set1_ps(wt[t]);
    const long W = g->input_width, H = g->input_height, outW = g->output_width;
    const long vectors = (outW + 15) / 16;
    // Vectors whose 32 loaded columns all exist load without masks.
    long plain = W / 32;
    if (plain > vectors) plain = vectors;
    for (long oy = oyBegin; oy < oyEnd; oy += R) {
        const float *rows[7];  // 2·R + K − 2 input rows, at most 7 (a literal: not a variable-length array)
        for (int t = 0; t < 2 * R + K - 2; t++) {
            const long iy = 2 * oy - g->pad_top + t;
            rows[t] = iy >= 0 && iy < H && iy < inputEnd ? in + (iy - firstInputRow) * W : zero_row;
        }
        const long stored = oyEnd - oy < R ? oyEnd - oy : R;
        float *o = out + oy * outW;
        const float *res = residual ? residual + oy * outW : 0;
#define S2_BLOCK(NV, LAST, v)                                                                                          \
    s2_block(K, R, NV, LAST, ACT, rows, 16 * (v), W, w, bias, o, res, outW, stored, low, high)
        long v = 0;
        for (; v + 2 <= plain; v += 2) S2_BLOCK(2, 0, v);
        if (v + 2 <= vectors) {
            S2_BLOCK(2, 1, v);
            v += 2;
        }
        if (v < vectors) S2_BLOCK(1, 1, v);
#undef S2_BLOCK
    }
}

/// One whole plane through the stride-2 row kernel.
TARGET static inline __attribute__((always_inline)) void s2_plane(
    const int ACT, const apus_depthwise_geometry *g, const float *in, const float *wt, float bias, float *out,
    const float *residual, float low, float high) {
    if (g->kernel == 5) {
        s2_rows(5, ACT, g, in, 0, g->input_height, 0, g->output_height, wt, bias, out, residual, low, high);
    } else {
        s2_rows(3, ACT, g, in, 0, g->input_height, 0, g->output_height, wt, bias, out, residual, low, high);
    }
}

/// Whether the stride-2 pair kernel takes `g`: 3 × 3, stride 2, onto output maps at most 8 × 8
/// from input rows at most 16 wide (MobileNetV2's 576 planes of 14² → 7²; `APUS_DEPTHWISE_PAIRS=0`
/// turns it off, to compare). 5 × 5 (EfficientNet's 672 planes of 14² → 7²) stays on the channel
/// kernel: 25 permutes per pair of rows there, and it ran 53 → 60 µs.
static int s2_pairs_apply(const apus_depthwise_geometry *g) {
    static int enabled = -1;
    if (enabled < 0) enabled = !switched_off("APUS_DEPTHWISE_PAIRS");
    return enabled && g->stride == 2 && g->kernel == 3 && g->output_width <= 8 && g->output_height <= 8 &&
        g->input_width <= 16;
}

/// What the pair kernel's permutes take from a pair of input rows, per kernel column.
typedef struct {
    /// Lane `h · output_width + x` (output row `2p + h`, column `x`) takes input column
    /// `2x + kx − pad_left` of the first row (h = 0) or of the second (h = 1: index + 16).
    __m512i index[3];
    /// The lanes whose column exists (the others are padding: zero).
    __mmask16 columns[3];
} pairs_layout;

TARGET static void pairs_layout_of(const apus_depthwise_geometry *g, pairs_layout *p) {
    const long outW = g->output_width, W = g->input_width;
    for (long kx = 0; kx < g->kernel; kx++) {
        int32_t index[16] = {0};
        unsigned mask = 0;
        for (long lane = 0; lane < 2 * outW; lane++) {
            const long h = lane / outW, x = lane % outW, ix = 2 * x + kx - g->pad_left;
            if (ix < 0 || ix >= W) continue;
            index[lane] = (int32_t)(16 * h + ix);
            mask |= 1u << lane;
        }
        p->index[kx] = _mm512_loadu_si512(index);
        p->columns[kx] = (__mmask16)mask;
    }
}

/// One plane through the stride-2 pair kernel. On a 7-wide output map a row is under half a
/// vector, and the channel kernel (sixteen planes transposed in, sixteen out) spends more on its
/// input transposes than on the taps (at stride 2 the input has four times the output's
/// positions); here two output rows share a vector: for each kernel row, the two input rows they
/// read (one vector each) go through one two-source permute per kernel column (`vpermt2ps`,
/// padding lanes zeroed), and the pairs of the plane (at most four) are independent chains of
/// fused multiply-adds. Each output sums bias, then taps in (ky, kx) order, padding as zero
/// products: the table-driven kernel's order, so the same bits.
TARGET static inline __attribute__((always_inline)) void s2_pairs_plane(
    const int ACT, const apus_depthwise_geometry *g, const pairs_layout *layout, const float *in,
    const float *wt, float bias, float *out, const float *residual, float low, float high) {
    const int K = 3;
    const long W = g->input_width, H = g->input_height, outW = g->output_width, outH = g->output_height;
    const long pairs = (outH + 1) / 2;
    const __mmask16 rowLanes = (__mmask16)((1u << W) - 1u);
    __m512 acc[4];
#pragma clang loop unroll(full)
    for (int p = 0; p < 4; p++) acc[p] = _mm512_set1_ps(bias);
#pragma clang loop unroll(full)
    for (int ky = 0; ky < K; ky++) {
#pragma clang loop unroll(full)
        for (int p = 0; p < 4; p++) {
            if (p >= pairs) break;
            const long first = 4 * p + ky - g->pad_top, second = first + 2;
            const __m512 a = first >= 0 && first < H ? _mm512_maskz_loadu_ps(rowLanes, in + first * W)
                                                     : _mm512_setzero_ps();
            const __m512 b = second >= 0 && second < H ? _mm512_maskz_loadu_ps(rowLanes, in + second * W)
                                                       : _mm512_setzero_ps();
#pragma clang loop unroll(full)
            for (int kx = 0; kx < K; kx++) {
                const __m512 v = _mm512_maskz_permutex2var_ps(layout->columns[kx], a, layout->index[kx], b);
                acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(wt[ky * K + kx]), v, acc[p]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int p = 0; p < 4; p++) {
        if (p >= pairs) break;
        const long rows = outH - 2 * p < 2 ? 1 : 2;
        const __mmask16 mask = (__mmask16)((1u << (rows * outW)) - 1u);
        const long at = 2 * p * outW;
        store(ACT, acc[p], out + at, residual ? residual + at : 0, low, high, mask);
    }
}

/// `s2_pairs_plane` with the activation fixed, as a function of its own (as `PLANE_FUNCTION` does
/// for the row kernels).
#define PAIRS_FUNCTION(NAME, ACT)                                                                                      \
    TARGET static __attribute__((noinline)) void NAME(                                                                 \
        const apus_depthwise_geometry *g, const pairs_layout *layout, const float *in, const float *wt, float bias,    \
        float *out, const float *residual, float low, float high) {                                                    \
        s2_pairs_plane(ACT, g, layout, in, wt, bias, out, residual, low, high);                                        \
    }
PAIRS_FUNCTION(s2_pairs_none, APUS_GEMM_NONE)
PAIRS_FUNCTION(s2_pairs_relu, APUS_GEMM_RELU)
PAIRS_FUNCTION(s2_pairs_clip, APUS_GEMM_CLIP)

/// The stride-1 3 × 3 row kernel with one column of padding on each side (output rows as wide as
/// input rows): MobileNetV2's and EfficientNet's 3 × 3 layers on 112², 56², 28² and 14² maps. The
/// table-driven kernel reads a mask from the table for each of the nine taps of a vector (a flat
/// 56-wide plane has few vectors without a row end in them) and ran at a quarter of the FMA rate
/// in L1. Here a row's centre tap (columns x ..< x + 16) and right tap (from x + 1) are plain
/// loads, and the left tap is the centre moved up a lane (`valignd`) with the previous vector's
/// last column coming in (a zero at the row's start); the last vector's centre is a masked load
/// and its right tap the centre moved down a lane with a zero coming in. (Three loads per row ran
/// 56² planes 1.25× slower: the loads, most of them across two cache lines, were the bound; all
/// three taps from one load and two shifts gave nothing more.) Each loaded row feeds the `R`
/// output rows of the group that read it (`R` rows × `NV` vectors: up to eight sums in flight).
/// Each output sums bias, then taps in (ky, kx) order, one fused multiply-add each, padding as
/// zeros: the order of the table-driven kernel, so the same bits. `FIRST`: the group starts the
/// row; `LAST`: its last vector holds the row's end.
TARGET static inline __attribute__((always_inline)) void s1_group(
    const int R, const int NV, const int FIRST, const int LAST, const int ACT, const float *const *rows, long x0,
    long W, const __m512 *w, float bias, float *out, const float *residual, long stored, float low, float high) {
    block_sums acc;
    block_start(R, NV, acc, bias);
    const __m512i zero = _mm512_setzero_si512();
    // The last vector's mask, the same for every row and its stores.
    const __mmask16 lastMask = range_mask(x0 + 16 * (NV - 1), W);
#pragma clang loop unroll(full)
    for (int t = 0; t < R + 2; t++) {
        const float *row = rows[t];
        __m512 taps[3][2];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            const long x = x0 + 16 * v;
            const int first = FIRST && v == 0, last = LAST && v == NV - 1;
            const __m512 centre = last ? _mm512_maskz_loadu_ps(lastMask, row + x) : _mm512_loadu_ps(row + x);
            const __m512i before = first ? zero
                : v > 0 ? _mm512_castps_si512(taps[1][v - 1])
                        : _mm512_castps_si512(_mm512_set1_ps(row[x - 1]));
            taps[0][v] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(centre), before, 15));
            taps[1][v] = centre;
            taps[2][v] = last ? _mm512_castsi512_ps(_mm512_alignr_epi32(zero, _mm512_castps_si512(centre), 1))
                              : _mm512_loadu_ps(row + x + 1);
        }
        block_add_row(3, 1, R, NV, t, taps, w, acc);
    }
    block_store(R, NV, LAST, ACT, acc, out, residual, W, x0, stored, lastMask, low, high);
}

/// Whether the stride-1 row kernel takes `g`: 3 × 3, stride 1, one column of padding on each side
/// (`APUS_DEPTHWISE_ROWS=0` turns it off, to measure the table-driven kernel).
static int s1_rows_apply(const apus_depthwise_geometry *g) {
    static int enabled = -1;
    if (enabled < 0) enabled = !switched_off("APUS_DEPTHWISE_ROWS");
    return enabled && g->kernel == 3 && g->stride == 1 && g->pad_left == 1 && g->output_width == g->input_width &&
        g->input_width <= ROW_KERNEL_MAX_WIDTH;
}

/// Output rows `oyBegin ..< oyEnd` of one plane through the stride-1 row kernel, `R` at a time:
/// the row's vectors in groups of two, the first group starting it and the last one ending it.
TARGET static inline __attribute__((always_inline)) void s1_rows_of(
    const int R, const int ACT, const apus_depthwise_geometry *g, const float *in, long oyBegin, long oyEnd,
    const __m512 *w, float bias, float *out, const float *residual, float low, float high) {
    const long W = g->input_width, H = g->input_height;
    const long vectors = (W + 15) / 16;
    for (long oy = oyBegin; oy < oyEnd; oy += R) {
        const float *rows[18];
        for (int t = 0; t < R + 2; t++) {
            const long iy = oy - g->pad_top + t;
            rows[t] = iy >= 0 && iy < H ? in + iy * W : zero_row;
        }
        const long stored = oyEnd - oy < R ? oyEnd - oy : R;
        float *o = out + oy * W;
        const float *res = residual ? residual + oy * W : 0;
#define S1_GROUP(NV, FIRST, LAST, v)                                                                                   \
    s1_group(R, NV, FIRST, LAST, ACT, rows, 16 * (v), W, w, bias, o, res, stored, low, high)
        if (vectors == 1) {
            S1_GROUP(1, 1, 1, 0);
            continue;
        }
        if (vectors == 2) {
            S1_GROUP(2, 1, 1, 0);
            continue;
        }
        S1_GROUP(2, 1, 0, 0);
        long v = 2;
        for (; v + 2 < vectors; v += 2) S1_GROUP(2, 0, 0, v);
        if (v + 2 == vectors) {
            S1_GROUP(2, 0, 1, v);
        } else {
            S1_GROUP(1, 0, 1, v);
        }
#undef S1_GROUP
    }
}

/// One whole plane through the stride-1 row kernel: four rows of two vectors at a time on maps
/// wider than 16, seven rows of one vector on narrower ones (the best of 3–6 and of 4–14 on 56²,
/// 28² and 14² planes).
TARGET static inline __attribute__((always_inline)) void s1_plane(
    const int ACT, const apus_depthwise_geometry *g, const float *in, const float *wt, float bias, float *out,
    const float *residual, float low, float high) {
    __m512 w[9];
    for (int t = 0; t < 9; t++) w[t] = _mm512_set1_ps(wt[t]);
    if (g->input_width > 16) {
        s1_rows_of(4, ACT, g, in, 0, g->output_height, w, bias, out, residual, low, high);
    } else {
        s1_rows_of(7, ACT, g, in, 0, g->output_height, w, bias, out, residual, low, high);
    }
}

int apus_depthwise_band_supported(const apus_depthwise_geometry *g) {
    return apus_depthwise_supported(g) && g->kernel == 3 && s2_rows_apply(g);
}

/// The planes of one `apus_depthwise_band_avx512` call with the activation fixed.
#define S2_BAND(ACT)                                                                                                   \
    for (long t = first; t < first + count; t++) {                                                                     \
        long channel = t % channels;                                                                                   \
        s2_rows(                                                                                                       \
            3, ACT, g, input + (t - first) * inputPlaneStride, firstInputRow, firstInputRow + inputRows, firstOutputRow,  \
            firstOutputRow + outputRows, weights + channel * 9, bias ? bias[channel] : 0.0f, output + t * outPlane,    \
            residual ? residual + t * outPlane : 0, low, high);                                                        \
    }

TARGET void apus_depthwise_band_avx512(
    const apus_depthwise_geometry *g, const float *input, long inputPlaneStride, long firstInputRow, long inputRows,
    const float *weights, long channels, long first, long count, long firstOutputRow, long outputRows, float *output,
    const apus_gemm_epilogue *epilogue) {
    if (count <= 0 || outputRows <= 0) return;
    const long outPlane = g->output_height * g->output_width;
    const apus_gemm_epilogue e = epilogue ? *epilogue : (apus_gemm_epilogue){0};
    const float *bias = e.bias, *residual = e.residual;
    const float low = e.low, high = e.high;
    switch (e.activation) {
    case APUS_GEMM_RELU: S2_BAND(APUS_GEMM_RELU) break;
    case APUS_GEMM_CLIP: S2_BAND(APUS_GEMM_CLIP) break;
    default: S2_BAND(APUS_GEMM_NONE) break;
    }
    if (e.activation == APUS_GEMM_SIGMOID || e.activation == APUS_GEMM_SILU) {
        // Over the band's rows of each plane afterwards (in registers beside eight sums it spills).
        for (long t = first; t < first + count; t++) {
            apus_logistic_avx512(
                output + t * outPlane + firstOutputRow * g->output_width, outputRows * g->output_width,
                e.activation == APUS_GEMM_SILU);
        }
    }
}

/// The planes of one call through the stride-2 row kernel.
#define S2_ROWS(ACT, LOGISTIC)                                                                                         \
    for (long t = first; t < first + count; t++) {                                                                     \
        long channel = t % channels;                                                                                   \
        PLANE_OF(s2_plane, ACT)(                                                                                       \
            g, input + t * inPlane, weights + channel * taps, bias ? bias[channel] : 0.0f, output + t * outPlane,      \
            residual ? residual + t * outPlane : 0, low, high);                                                        \
        if (LOGISTIC) apus_logistic_avx512(output + t * outPlane, outPlane, activation == APUS_GEMM_SILU);             \
    }

/// `PLANE` (`s1_plane` or `s2_plane`) with the activation fixed, as a function of its own: inlined
/// into `depthwise` with everything else, the row kernels' registers were allocated differently
/// with every change elsewhere in it (an unrelated edit once ran 28 × 28 planes 2× slower).
#define PLANE_FUNCTION(PLANE, NAME, ACT)                                                                               \
    TARGET static __attribute__((noinline)) void NAME(                                                                 \
        const apus_depthwise_geometry *g, const float *in, const float *wt, float bias, float *out,                    \
        const float *residual, float low, float high) {                                                                \
        PLANE(ACT, g, in, wt, bias, out, residual, low, high);                                                         \
    }
PLANE_FUNCTION(s1_plane, s1_plane_none, APUS_GEMM_NONE)
PLANE_FUNCTION(s1_plane, s1_plane_relu, APUS_GEMM_RELU)
PLANE_FUNCTION(s1_plane, s1_plane_clip, APUS_GEMM_CLIP)
PLANE_FUNCTION(s2_plane, s2_plane_none, APUS_GEMM_NONE)
PLANE_FUNCTION(s2_plane, s2_plane_relu, APUS_GEMM_RELU)
PLANE_FUNCTION(s2_plane, s2_plane_clip, APUS_GEMM_CLIP)

/// The function of `PLANE` (`s1_plane`, `s2_plane` or `s2_pairs`) for the constant activation `ACT`.
#define PLANE_OF(PLANE, ACT)                                                                                           \
    (ACT == APUS_GEMM_RELU ? PLANE##_relu : ACT == APUS_GEMM_CLIP ? PLANE##_clip : PLANE##_none)

/// The planes of one call through the stride-2 pair kernel.
#define S2_PAIRS(ACT, LOGISTIC)                                                                                        \
    for (long t = first; t < first + count; t++) {                                                                     \
        long channel = t % channels;                                                                                   \
        PLANE_OF(s2_pairs, ACT)(                                                                                       \
            g, &pairsLayout, input + t * inPlane, weights + channel * taps, bias ? bias[channel] : 0.0f,               \
            output + t * outPlane, residual ? residual + t * outPlane : 0, low, high);                                 \
        if (LOGISTIC) apus_logistic_avx512(output + t * outPlane, outPlane, activation == APUS_GEMM_SILU);             \
    }

/// The planes of one call through the stride-1 row kernel.
#define S1_ROWS(ACT, LOGISTIC)                                                                                         \
    for (long t = first; t < first + count; t++) {                                                                     \
        long channel = t % channels;                                                                                   \
        PLANE_OF(s1_plane, ACT)(                                                                                       \
            g, input + t * inPlane, weights + channel * taps, bias ? bias[channel] : 0.0f, output + t * outPlane,      \
            residual ? residual + t * outPlane : 0, low, high);                                                        \
        if (LOGISTIC) apus_logistic_avx512(output + t * outPlane, outPlane, activation == APUS_GEMM_SILU);             \
    }

/// Plane `t` (channel `t % channels`) through the table-driven kernel, with kernel, stride and
/// activation fixed.
#define ONE_PLANE(K, S, ACT, t)                                                                                        \
    plane(                                                                                                             \
        K, S, ACT, g, table, input + (t) * inPlane, weights + (t) % channels * taps,                                   \
        bias ? bias[(t) % channels] : 0.0f, output + (t) * outPlane, residual ? residual + (t) * outPlane : 0, low,     \
        high);

/// The planes of one call through the table-driven kernel.
#define PLANES(K, S, ACT)                                                                                              \
    for (long t = first; t < first + count; t++) {                                                                     \
        ONE_PLANE(K, S, ACT, t)                                                                                        \
    }

/// `BODY(K, S, ACT)` with the activation `activation` as a constant.
#define BY_ACTIVATION_OF(BODY, K, S)                                                                                   \
    switch (activation) {                                                                                              \
    case APUS_GEMM_RELU: BODY(K, S, APUS_GEMM_RELU) break;                                                             \
    case APUS_GEMM_CLIP: BODY(K, S, APUS_GEMM_CLIP) break;                                                             \
    case APUS_GEMM_SIGMOID: BODY(K, S, APUS_GEMM_SIGMOID) break;                                                       \
    case APUS_GEMM_SILU: BODY(K, S, APUS_GEMM_SILU) break;                                                             \
    default: BODY(K, S, APUS_GEMM_NONE) break;                                                                         \
    }

#define BY_ACTIVATION(K, S) BY_ACTIVATION_OF(PLANES, K, S)

/// The planes of one call through the banded kernel (5 × 5).
#define BANDED(ACT, LOGISTIC)                                                                                          \
    for (long t = first; t < first + count; t++) {                                                                     \
        long channel = t % channels;                                                                                   \
        banded_plane(                                                                                                  \
            5, ACT, g, &band, scratch, input + t * inPlane, weights + channel * taps, bias ? bias[channel] : 0.0f,      \
            output + t * outPlane, residual ? residual + t * outPlane : 0, low, high);                                 \
        if (LOGISTIC) apus_logistic_avx512(output + t * outPlane, outPlane, activation == APUS_GEMM_SILU);             \
    }

/// `PLANES_OF(ACT, LOGISTIC)` with the activation fixed, for the kernels that keep eight sums in
/// flight: Sigmoid and SiLU beside them spill (a 672-plane 14 × 14 layer took 1.4× its time), so
/// those run over each plane afterwards, in L1 (the same operations on the same sums, so the same
/// bits).
#define BY_ACTIVATION_LOGISTIC_AFTER(PLANES_OF)                                                                        \
    switch (activation) {                                                                                              \
    case APUS_GEMM_RELU: PLANES_OF(APUS_GEMM_RELU, 0) break;                                                           \
    case APUS_GEMM_CLIP: PLANES_OF(APUS_GEMM_CLIP, 0) break;                                                           \
    case APUS_GEMM_SIGMOID:                                                                                            \
    case APUS_GEMM_SILU: PLANES_OF(APUS_GEMM_NONE, 1) break;                                                           \
    default: PLANES_OF(APUS_GEMM_NONE, 0) break;                                                                       \
    }

/// Floats of the channel kernel's scratch, on the stack (68 KiB: a 28 × 28 map at stride 2 fits).
#define CHANNEL_FLOATS 17408

/// The channel kernel, for small maps (7 × 7, up to 14 × 14): there a plane is a few vectors,
/// most of them with lanes past a row's end masked off, and a tap's vector loads feed one sum.
/// This one turns sixteen planes (consecutive channels of one image) into one zero-padded map of
/// sixteen-lane vectors, one lane per plane (a 16 × 16 transpose per sixteen positions), so that a
/// tap is one unmasked load and one fused multiply-add for sixteen outputs, eight outputs of a row
/// in flight; the sums go back to planes through the same transpose. Each output sums bias, then
/// the taps in (ky, kx) order, one fused multiply-add each (padding as zeros): the order of the
/// table-driven kernel, so both give the same bits.
typedef struct {
    /// Rows and columns of the padded map: what the outputs read, from row −pad_top, column −pad_left.
    long rows, columns;
} channel_layout;

/// The channel layout of `g`, or 0 when the channel kernel does not take it: output maps of at
/// most 14 × 14 whose padded map and sums fit the scratch.
static int channel_layout_of(const apus_depthwise_geometry *g, channel_layout *c) {
    static int enabled = -1;
    if (enabled < 0) enabled = !switched_off("APUS_DEPTHWISE_CHANNELS");
    if (!enabled || g->output_width > 14 || g->output_height > 14) return 0;
    c->rows = (g->output_height - 1) * g->stride + g->kernel;
    c->columns = (g->output_width - 1) * g->stride + g->kernel;
    // The map, the sums, and 14 positions of slack that the last row's outputs past its end read.
    return 16 * (c->rows * c->columns + g->output_height * g->output_width + 14) <= CHANNEL_FLOATS
        && g->input_height * g->input_width <= CHANNEL_FLOATS / 16;
}

/// Transposes sixteen vectors in place: afterwards `v[j]` lane `i` is what `v[i]` lane `j` was.
TARGET static inline __attribute__((always_inline)) void transpose16(__m512 v[16]) {
    __m512 t[16], u[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    // u[4b + c], 128-bit lane L: column 4L + c of rows 4b ..< 4b + 4.
#pragma clang loop unroll(full)
    for (int b = 0; b < 4; b++) {
        __m512d t0 = _mm512_castps_pd(t[4 * b]), t1 = _mm512_castps_pd(t[4 * b + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * b + 2]), t3 = _mm512_castps_pd(t[4 * b + 3]);
        u[4 * b] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
#pragma clang loop unroll(full)
    for (int c = 0; c < 4; c++) {
        __m512 even0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), odd0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 even1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 odd1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        v[c] = _mm512_shuffle_f32x4(even0, even1, 0x88);
        v[8 + c] = _mm512_shuffle_f32x4(even0, even1, 0xDD);
        v[4 + c] = _mm512_shuffle_f32x4(odd0, odd1, 0x88);
        v[12 + c] = _mm512_shuffle_f32x4(odd0, odd1, 0xDD);
    }
}

/// Loads the sixteen rows `rows[i] + column` (`valid` floats each, the rest zero), transposed.
TARGET static inline __attribute__((always_inline)) void load_transposed(
    const float *first, long rowStride, long column, long valid, __m512 v[16]) {
    const __mmask16 m = (__mmask16)range_mask(column, valid);
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i++) v[i] = _mm512_maskz_loadu_ps(m, first + i * rowStride + column);
    transpose16(v);
}

/// Sixteen planes `t0 ..< t0 + 16` of channels `c0 ..< c0 + 16` through the channel kernel.
/// `scratch` holds the padded map (its border already zero) and then the sums; `offsets[s]` is
/// where input position `s` goes in the map (in vectors), −1 when no output reads it.
TARGET static inline __attribute__((always_inline)) void channel_group(
    const int K, const int S, const int ACT, const apus_depthwise_geometry *g, const channel_layout *c,
    const int *offsets, float *scratch, const float *in, const float *w, const float *bias, float *out,
    const float *residual, float low, float high) {
    const long k = K ? K : g->kernel;
    const long taps = k * k, inPlane = g->input_height * g->input_width;
    const long outW = g->output_width, outPlane = g->output_height * outW;
    float *map = scratch, *sums = scratch + 16 * c->rows * c->columns;
    __m512 v[16];
    for (long s0 = 0; s0 < inPlane; s0 += 16) {
        load_transposed(in, inPlane, s0, inPlane, v);
        for (int j = 0; j < 16 && s0 + j < inPlane; j++) {
            if (offsets[s0 + j] >= 0) _mm512_store_ps(map + 16 * offsets[s0 + j], v[j]);
        }
    }
    __m512 weights[64];
    for (long t0 = 0; t0 < taps; t0 += 16) {
        load_transposed(w, taps, t0, taps, v);
        for (int j = 0; j < 16 && t0 + j < taps; j++) weights[t0 + j] = v[j];
    }
    const __m512 b = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    for (long oy = 0; oy < g->output_height; oy++) {
        for (long x0 = 0; x0 < outW; x0 += 8) {
            // Eight outputs of the row, their taps at constant offsets from one pointer (with a
            // pointer per output, the loop reloaded them from the stack: 5 × 5 on 7² maps took
            // 1.2 times as long). Outputs past the row's end read on into the next row, or past
            // the map into the scratch's slack; their sums are never stored.
            __m512 acc[8];
#pragma clang loop unroll(full)
            for (int j = 0; j < 8; j++) acc[j] = b;
            const float *first = map + 16 * (oy * S * c->columns + x0 * S);
            for (long ky = 0; ky < k; ky++) {
                const float *row = first + 16 * ky * c->columns;
#pragma clang loop unroll(full)
                for (long kx = 0; kx < (K ? K : 1); kx++) {
                    const __m512 wt = weights[ky * k + kx];
#pragma clang loop unroll(full)
                    for (int j = 0; j < 8; j++) {
                        acc[j] = _mm512_fmadd_ps(wt, _mm512_load_ps(row + 16 * (kx + j * S)), acc[j]);
                    }
                }
                if (!K) {
                    for (long kx = 1; kx < k; kx++) {
                        const __m512 wt = weights[ky * k + kx];
#pragma clang loop unroll(full)
                        for (int j = 0; j < 8; j++) {
                            acc[j] = _mm512_fmadd_ps(wt, _mm512_load_ps(row + 16 * (kx + j * S)), acc[j]);
                        }
                    }
                }
            }
            for (int j = 0; j < 8 && x0 + j < outW; j++) _mm512_store_ps(sums + 16 * (oy * outW + x0 + j), acc[j]);
        }
    }
    // Back to planes: sixteen positions of the sixteen planes per transpose.
    for (long s0 = 0; s0 < outPlane; s0 += 16) {
        const long n = outPlane - s0 < 16 ? outPlane - s0 : 16;
#pragma clang loop unroll(full)
        for (int j = 0; j < 16; j++) v[j] = j < n ? _mm512_load_ps(sums + 16 * (s0 + j)) : _mm512_setzero_ps();
        transpose16(v);
        const __mmask16 m = (__mmask16)range_mask(0, n);
#pragma clang loop unroll(full)
        for (int i = 0; i < 16; i++) {
            store(ACT, v[i], out + i * outPlane + s0, residual ? residual + i * outPlane + s0 : 0, low, high, m);
        }
    }
}

/// The planes `first ..< first + count` in groups of sixteen consecutive channels of one image
/// (starting at a channel that is a multiple of 16, so that the grouping never depends on how a
/// caller splits the planes) through the channel kernel; the other planes through `ONE_PLANE`.
#define CHANNEL_GROUPS(K, S, ACT)                                                                                      \
    for (long t = first; t < first + count;) {                                                                         \
        long channel = t % channels;                                                                                   \
        if (channel % 16 == 0 && channel + 16 <= channels && t + 16 <= first + count) {                                \
            channel_group(                                                                                             \
                K, S, ACT, g, &layout, offsets, scratch, input + t * inPlane, weights + channel * taps,                \
                bias ? bias + channel : 0, output + t * outPlane, residual ? residual + t * outPlane : 0, low, high);  \
            t += 16;                                                                                                   \
        } else {                                                                                                       \
            ONE_PLANE(K, S, ACT, t)                                                                                    \
            t += 1;                                                                                                    \
        }                                                                                                              \
    }

#define CHANNELS_BY_ACTIVATION(K, S) BY_ACTIVATION_OF(CHANNEL_GROUPS, K, S)

/// `BY(K, S)` with the kernel size and stride as constants for the common shapes (K = 0: any
/// size, read from `g`), so that the tap loops unroll; then returns.
#define BY_KERNEL_AND_STRIDE(BY)                                                                                       \
    if (g->stride == 1) {                                                                                              \
        switch (g->kernel) {                                                                                           \
        case 3: BY(3, 1) return;                                                                                       \
        case 5: BY(5, 1) return;                                                                                       \
        default: BY(0, 1) return;                                                                                      \
        }                                                                                                              \
    }                                                                                                                  \
    switch (g->kernel) {                                                                                               \
    case 3: BY(3, 2) return;                                                                                           \
    case 5: BY(5, 2) return;                                                                                           \
    default: BY(0, 2) return;                                                                                          \
    }

/// `apus_depthwise_avx512`, or with `table_only` `apus_depthwise_table_avx512`.
TARGET static void depthwise(
    int table_only, const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights,
    long channels, long first, long count, float *output, const apus_gemm_epilogue *epilogue) {
    const long inPlane = g->input_height * g->input_width;
    const long outPlane = g->output_height * g->output_width;
    const long taps = g->kernel * g->kernel;
    // No epilogue reads as one with nothing in it (APUS_GEMM_NONE is 0).
    const apus_gemm_epilogue e = epilogue ? *epilogue : (apus_gemm_epilogue){0};
    const float *bias = e.bias, *residual = e.residual;
    const int activation = e.activation;
    const float low = e.low, high = e.high;
    if (!table_only) {
        // The row kernels beat the channel kernel on maps 14 outputs wide (3 × 3: 480 planes of
        // 14², 24.6 → 17 µs; 192 planes of 28² → 14², 21.3 → 19.0 µs), not on 7 × 7 ones (960
        // planes of 7²: 13.4 against 19 µs; 576 planes of 14² → 7²: 17 against 33 µs).
        // 3 × 3 stride 2 onto maps at most 8 wide: the pair kernel (576 planes of 14² → 7²: 25.5 µs
        // on the channel kernel, 17.4 here).
        if (s2_pairs_apply(g)) {
            pairs_layout pairsLayout;
            pairs_layout_of(g, &pairsLayout);
            BY_ACTIVATION_LOGISTIC_AFTER(S2_PAIRS)
            return;
        }
        const int rows = s1_rows_apply(g) || s2_rows_apply(g);
        channel_layout layout;
        if (!(rows && g->output_width > 8) && count >= 16 && channels >= 16 && channel_layout_of(g, &layout)) {
            float scratch[CHANNEL_FLOATS] __attribute__((aligned(64)));
            // Zeroed once: the padding sits at the same places for every group (and the sums and
            // the slack after them, which outputs past a row's end read, hold numbers from the
            // start); and where each input position goes in the padded map.
            memset(
                scratch, 0,
                sizeof(float)
                    * (size_t)(16 * (layout.rows * layout.columns + g->output_height * g->output_width + 14)));
            int offsets[CHANNEL_FLOATS / 16];
            for (long s = 0; s < inPlane; s++) {
                long y = s / g->input_width + g->pad_top, x = s % g->input_width + g->pad_left;
                offsets[s] = y < layout.rows && x < layout.columns ? (int)(y * layout.columns + x) : -1;
            }
            BY_KERNEL_AND_STRIDE(CHANNELS_BY_ACTIVATION)
        }
        band_layout band;
        if (band_layout_of(g, &band)) {
            // Zeroed once: the padding sits at the same places in every band of every plane.
            float scratch[BAND_FLOATS] __attribute__((aligned(64)));
            memset(scratch, 0, sizeof(scratch));
            BY_ACTIVATION_LOGISTIC_AFTER(BANDED)
            return;
        }
        if (s2_rows_apply(g)) {
            BY_ACTIVATION_LOGISTIC_AFTER(S2_ROWS)
            return;
        }
        if (s1_rows_apply(g)) {
            BY_ACTIVATION_LOGISTIC_AFTER(S1_ROWS)
            return;
        }
    }
    BY_KERNEL_AND_STRIDE(BY_ACTIVATION)
}

TARGET void apus_depthwise_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue) {
    depthwise(0, g, table, input, weights, channels, first, count, output, epilogue);
}

TARGET void apus_depthwise_table_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue) {
    depthwise(1, g, table, input, weights, channels, first, count, output, epilogue);
}

/// Output channels per pass of the direct kernel; with two units, 16 accumulators.
#define DIRECT_CHANNELS 8

/// Units `begin ..< end` of one image for `channels` (at most 8) output channels, two units at a
/// time: each input vector (one per input channel and tap) feeds eight accumulators. Every output
/// sums bias, then (input channel, ky, kx) in order, one fused multiply-add each.
TARGET static inline __attribute__((always_inline)) void direct_units(
    const int K, const int S, const int ACT, const int FULL, long k, long W, long inPlane, long outPlane,
    const table_unit *units, const uint16_t *masks, long begin, long end, const float *in, long inputChannels,
    const float *w, long channels, const float *bias, float *out, const float *residual, float low, float high) {
    if (K) k = K;
    const long taps = k * k;
    const long L = S == 2 ? 2 : 1;
    const long filter = inputChannels * taps;
    const __m512i evens = even_lanes();
    const __m512i odds = odd_lanes();
    // Channels past `channels` repeat the last one; their sums are never stored.
    const float *filters[DIRECT_CHANNELS];
    for (int c = 0; c < DIRECT_CHANNELS; c++) filters[c] = w + (c < channels ? c : channels - 1) * filter;
    for (long u = begin; u < end; u += 2) {
        const table_unit *un = units + u;
        __m512 acc[2][DIRECT_CHANNELS];
#pragma clang loop unroll(full)
        for (int c = 0; c < DIRECT_CHANNELS; c++) {
            __m512 b = _mm512_set1_ps(bias ? bias[c < channels ? c : 0] : 0.0f);
            acc[0][c] = b;
            acc[1][c] = b;
        }
        for (long ci = 0; ci < inputChannels; ci++) {
            const float *base0 = offset_pointer(in + ci * inPlane, un[0].input);
            const float *base1 = offset_pointer(in + ci * inPlane, un[1].input);
            const uint16_t *m0 = masks + u * taps * L;
            const uint16_t *m1 = m0 + taps * L;
            for (long ky = 0; ky < k; ky++) {
                for (long kx = 0; kx < k; kx += S) {
                    const long t = ky * k + kx;
                    const long tw = ci * taps + t;
                    __m512 v0, v1, o0 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps();
                    if (S == 2) {
                        __m512 l0 = FULL ? _mm512_loadu_ps(base0 + kx) : load_lanes(m0[t * 2], base0 + kx);
                        __m512 h0 = FULL ? _mm512_loadu_ps(base0 + kx + 16)
                                         : load_lanes(m0[t * 2 + 1], base0 + kx + 16);
                        __m512 l1 = FULL ? _mm512_loadu_ps(base1 + kx) : load_lanes(m1[t * 2], base1 + kx);
                        __m512 h1 = FULL ? _mm512_loadu_ps(base1 + kx + 16)
                                         : load_lanes(m1[t * 2 + 1], base1 + kx + 16);
                        v0 = _mm512_permutex2var_ps(l0, evens, h0);
                        v1 = _mm512_permutex2var_ps(l1, evens, h1);
                        if (kx + 1 < k) {
                            o0 = _mm512_permutex2var_ps(l0, odds, h0);
                            o1 = _mm512_permutex2var_ps(l1, odds, h1);
                        }
                    } else {
                        v0 = FULL ? _mm512_loadu_ps(base0 + kx) : load_lanes(m0[t], base0 + kx);
                        v1 = FULL ? _mm512_loadu_ps(base1 + kx) : load_lanes(m1[t], base1 + kx);
                    }
#pragma clang loop unroll(full)
                    for (int c = 0; c < DIRECT_CHANNELS; c++) {
                        __m512 wv = _mm512_set1_ps(filters[c][tw]);
                        acc[0][c] = _mm512_fmadd_ps(wv, v0, acc[0][c]);
                        acc[1][c] = _mm512_fmadd_ps(wv, v1, acc[1][c]);
                    }
                    if (S == 2 && kx + 1 < k) {
#pragma clang loop unroll(full)
                        for (int c = 0; c < DIRECT_CHANNELS; c++) {
                            __m512 wv = _mm512_set1_ps(filters[c][tw + 1]);
                            acc[0][c] = _mm512_fmadd_ps(wv, o0, acc[0][c]);
                            acc[1][c] = _mm512_fmadd_ps(wv, o1, acc[1][c]);
                        }
                    }
                }
                base0 += W;
                base1 += W;
            }
        }
        for (int j = 0; j < 2; j++) {
            __mmask16 tail = (__mmask16)un[j].tail;
            if (!tail) continue;
            for (int c = 0; c < DIRECT_CHANNELS && c < channels; c++) {
                long index = c * outPlane + un[j].output;
                store(ACT, acc[j][c], out + index, residual ? residual + index : 0, low, high, tail);
            }
        }
    }
}

/// Sigmoid and SiLU in registers beside sixteen live accumulators spill (the stem of
/// efficientnet_b0 took twice as long): they run over each group's planes right after the group,
/// while its 8 planes are still in L2 (a 112² stem's 32 planes, 1.6 MB, are not).
#define DIRECT(K, S, ACT)                                                                                              \
    for (long c0 = firstChannel; c0 < firstChannel + channelCount; c0 += DIRECT_CHANNELS) {                            \
        long n = firstChannel + channelCount - c0 < DIRECT_CHANNELS ? firstChannel + channelCount - c0                \
                                                                    : DIRECT_CHANNELS;                                 \
        const float *w = weights + c0 * inputChannels * g->kernel * g->kernel;                                         \
        const float *b = bias ? bias + c0 : 0;                                                                         \
        float *o = output + c0 * outPlane;                                                                             \
        const float *r = residual ? residual + c0 * outPlane : 0;                                                      \
        direct_units(                                                                                                  \
            K, S, ACT, 1, g->kernel, g->input_width, inPlane, outPlane, v.units, v.masks, 0, v.header->full, input,    \
            inputChannels, w, n, b, o, r, low, high);                                                                  \
        direct_units(                                                                                                  \
            K, S, ACT, 0, g->kernel, g->input_width, inPlane, outPlane, v.units, v.masks, v.header->full,              \
            v.header->units, input, inputChannels, w, n, b, o, r, low, high);                                          \
        if (activation == APUS_GEMM_SIGMOID || activation == APUS_GEMM_SILU)                                           \
            apus_logistic_avx512(o, n * outPlane, activation == APUS_GEMM_SILU);                                       \
    }

#define DIRECT_BY_ACTIVATION(K, S)                                                                                     \
    switch (activation) {                                                                                              \
    case APUS_GEMM_RELU: DIRECT(K, S, APUS_GEMM_RELU) break;                                                           \
    case APUS_GEMM_CLIP: DIRECT(K, S, APUS_GEMM_CLIP) break;                                                           \
    default: DIRECT(K, S, APUS_GEMM_NONE) break;                                                                       \
    }

TARGET void apus_direct_conv_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, long inputChannels, const float *weights,
    long firstChannel, long channelCount, float *output, const apus_gemm_epilogue *epilogue) {
    if (channelCount <= 0) return;
    const table_view v = view_of(table);
    const long inPlane = g->input_height * g->input_width;
    const long outPlane = g->output_height * g->output_width;
    // No epilogue reads as one with nothing in it (APUS_GEMM_NONE is 0).
    const apus_gemm_epilogue e = epilogue ? *epilogue : (apus_gemm_epilogue){0};
    const float *bias = e.bias, *residual = e.residual;
    const int activation = e.activation;
    const float low = e.low, high = e.high;
    if (g->stride == 1) {
        switch (g->kernel) {
        case 3: DIRECT_BY_ACTIVATION(3, 1) break;
        default: DIRECT_BY_ACTIVATION(0, 1) break;
        }
    } else {
        switch (g->kernel) {
        case 3: DIRECT_BY_ACTIVATION(3, 2) break;
        case 7: DIRECT_BY_ACTIVATION(7, 2) break;
        default: DIRECT_BY_ACTIVATION(0, 2) break;
        }
    }
}

#else

int apus_depthwise_band_supported(const apus_depthwise_geometry *g) {
    (void)g;
    return 0;
}

void apus_depthwise_band_avx512(
    const apus_depthwise_geometry *g, const float *input, long inputPlaneStride, long firstInputRow, long inputRows,
    const float *weights, long channels, long first, long count, long firstOutputRow, long outputRows, float *output,
    const apus_gemm_epilogue *epilogue) {
    (void)g; (void)input; (void)inputPlaneStride; (void)firstInputRow; (void)inputRows; (void)weights; (void)channels;
    (void)first;
    (void)count; (void)firstOutputRow; (void)outputRows; (void)output; (void)epilogue;
}

void apus_depthwise_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue) {
    (void)g; (void)table; (void)input; (void)weights; (void)channels; (void)first; (void)count; (void)output;
    (void)epilogue;
}

void apus_depthwise_table_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue) {
    (void)g; (void)table; (void)input; (void)weights; (void)channels; (void)first; (void)count; (void)output;
    (void)epilogue;
}

void apus_direct_conv_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, long inputChannels, const float *weights,
    long firstChannel, long channelCount, float *output, const apus_gemm_epilogue *epilogue) {
    (void)g; (void)table; (void)input; (void)inputChannels; (void)weights; (void)firstChannel; (void)channelCount;
    (void)output; (void)epilogue;
}

#endif
