#ifndef APUS_KERNELS_H
#define APUS_KERNELS_H

#include <stddef.h>

/// Rows per packed panel of the left matrix.
#define APUS_GEMM_PANEL_ROWS 8
/// Columns per block of the packed left matrix (the kernel's reduction block).
#define APUS_GEMM_BLOCK_COLUMNS 128

/// Floats needed to pack an `m` × `k` matrix into panels of `APUS_GEMM_PANEL_ROWS` rows
/// (the last panel padded with zero rows).
size_t apus_gemm_packed_count(long m, long k);

/// Packs `a` (`m` × `k`, row-major, row stride `lda`) for the kernel: the columns in blocks of
/// 128, each block holding every panel of 8 rows (zero past row `m`), each panel column by column,
/// so the kernel reads the packed matrix front to back.
void apus_gemm_pack(const float *a, long lda, long m, long k, float *packed);

/// Packs only the panels `firstPanel ..< firstPanel + panelCount` of `a` into `packed` (the
/// whole packed matrix of `apus_gemm_pack`, whose other panels are left untouched), so disjoint
/// panel ranges can be packed in parallel.
void apus_gemm_pack_panels(const float *a, long lda, long m, long k, long firstPanel, long panelCount, float *packed);

/// Writes to `out` columns `kBegin ..< kEnd` of panels `firstPanel ..< firstPanel + panelCount` of
/// the packed `m` × `k` matrix `packed` with column `j` multiplied by `scale[j]` (`A · diag(scale)`,
/// in the same packed layout, at the same offsets): one rounding per element. AVX-512F where the
/// CPU has it, plain C otherwise (the same products).
void apus_gemm_packed_scale_columns(const float *packed, long m, long k, const float *scale, long firstPanel,
                                    long panelCount, long kBegin, long kEnd, float *out);

/// Activations the kernel applies itself (others are applied by the caller afterwards).
enum { APUS_GEMM_NONE = 0, APUS_GEMM_RELU = 1, APUS_GEMM_CLIP = 2, APUS_GEMM_SIGMOID = 3, APUS_GEMM_SILU = 4 };

/// What the kernel does to each sum before storing it: `+ bias[row]` (one value per row of the
/// call, or NULL), `+ residual[row][column]` (row stride `residual_stride`, or NULL), then the
/// activation (`APUS_GEMM_CLIP` clamps to [low, high]).
typedef struct {
    const float *bias;
    const float *residual;
    long residual_stride;
    int activation;
    float low;
    float high;
} apus_gemm_epilogue;

/// `c[m × n] = A[firstRow ..< firstRow + m] · b` where `A` (`packedRows` × `k`) was packed by
/// `apus_gemm_pack` and `firstRow` is a multiple of 8; `b` is `k` × `n` row-major with row stride
/// `ldb`; `c` has row stride `ldc`. Uses AVX-512F and VL, AVX2 and FMA: call only when the CPU
/// and OS support them (`PackedGemm.isAvailable`). Every output element is summed in ascending `k` order
/// with one fused multiply-add per term, whatever `m`, `n` and the tile it sits in; then
/// `epilogue` (NULL: none) is applied while the block is still in registers. When `accumulate`
/// is nonzero the sums start from `c`'s values instead of zero (`c += A · b`), so a product split
/// into several calls along k sums in the same order as one call would.
void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue);

/// `apus_gemm_packed_avx512` over the reduction steps `kBegin ..< kEnd` of the packed `A` only
/// (`packedRows` × `k`, packed whole): `c = A[rows][kBegin ..< kEnd] · b` with `b` holding those
/// `kEnd − kBegin` rows from its row 0, each sum the ascending chain of that range, then
/// `epilogue`. With `accumulate`, a product cut into consecutive ranges sums as one call over all
/// of them does. AVX-512F only.
void apus_gemm_packed_range_avx512(
    const float *packed, long packedRows, long firstRow, long k, long kBegin, long kEnd, long m, long n, const float *b,
    long ldb, float *c, long ldc, int accumulate, const apus_gemm_epilogue *epilogue);

/// `apus_gemm_packed_avx512` with AVX2 and FMA only (the same arguments, layout and bits), for
/// CPUs without AVX-512: call only when the CPU and OS support AVX2 and FMA.
void apus_gemm_packed_avx2(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, int accumulate, const apus_gemm_epilogue *epilogue);

/// `block[r][c] = activation(block[r][c] + bias[r] + residual[r][c])` for `rows` rows of
/// `columns` values (`bias` and `residual` may be NULL; `activation` an `APUS_GEMM_*` code, CLIP
/// clamping to [low, high]): `Epilogue.apply` with AVX2 and FMA, the sums in the same order, the
/// activations of the AVX2 kernels. Call only when the CPU and OS support AVX2 and FMA.
void apus_epilogue_avx2(
    float *block, long rows, long columns, long rowStride, const float *bias, const float *residual,
    long residualStride, int activation, float low, float high);

/// Copies a strided sample of `planes` consecutive input planes (`inputHeight` × `inputWidth`
/// each) into as many consecutive blocks of `rows` rows of `width` floats at `dest`:
/// `dest[p][r][x] = plane[p][firstRow + r · rowStride][columnOffset + x · columnStride]`, zero
/// where that lies outside the plane. The convolution paths use it to lay out one kernel tap's
/// input so that the tap is a plain GEMM operand. AVX-512 for column strides 1 and 2 when `vector`
/// is nonzero (only then: the caller checks the CPU), scalar otherwise; the same values either way.
void apus_strided_plane(
    const float *plane, long planes, long inputHeight, long inputWidth, long firstRow, long rowStride, long rows,
    long columnOffset, long columnStride, long width, float *dest, int vector);

/// Replaces each of the `n` values at `x` by its sigmoid (`silu` = 0) or SiLU (`silu` = 1), with
/// the exp of the kernels' epilogue. AVX-512F only.
void apus_logistic_avx512(float *x, long n, int silu);

/// The shape of a depthwise convolution (one 2-D filter per plane): square `kernel`, square
/// `stride` (1 or 2), no dilation; zero padding `pad_top` rows above and `pad_left` columns left
/// (the bottom and right padding follow from the output size).
typedef struct {
    long input_height;
    long input_width;
    long output_height;
    long output_width;
    long kernel;
    long stride;
    long pad_top;
    long pad_left;
} apus_depthwise_geometry;

/// Whether `apus_depthwise_avx512` computes this geometry (kernel 1 to 7, stride 1 or 2, sizes
/// whose offsets fit in 32 bits).
int apus_depthwise_supported(const apus_depthwise_geometry *g);

/// Bytes of the table `apus_depthwise_prepare` writes for `g` (0 when unsupported).
size_t apus_depthwise_table_size(const apus_depthwise_geometry *g);

/// Writes the kernel's table for `g` into `table` (`apus_depthwise_table_size` bytes, 8-byte
/// aligned): for every vector of sixteen outputs, where its taps start in the input plane and the
/// lanes each tap may load (zero padding is a masked-off lane), so the kernel does no bounds
/// arithmetic. The table depends only on the geometry: make it once per plan.
void apus_depthwise_prepare(const apus_depthwise_geometry *g, void *table);

/// Depthwise convolution of the planes `first ..< first + count` of `input` (planes of
/// input_height × input_width, plane `t` filtered by `weights[(t % channels) · kernel²...]`)
/// into the same planes of `output`, four vectors of sixteen outputs at a time. Each output is
/// `bias[t % channels]` (0 when `epilogue` or its bias is NULL) plus the taps in (row, column)
/// order, one fused multiply-add each, padding read as zero; then the residual plane (the
/// epilogue's `residual` is the first plane's, planes contiguous) and the activation. The
/// epilogue's `residual_stride` is ignored. `table` is `apus_depthwise_prepare`'s for `g`.
/// AVX-512F only: call when `PackedGemm.isAvailable`.
void apus_depthwise_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue);

/// `apus_depthwise_avx512` through the table-driven kernel alone, which every geometry it takes
/// can run: the reference the specialised kernels (stride-1 and stride-2 rows, bands, channel
/// groups) are tested against, bit for bit. AVX-512F only.
void apus_depthwise_table_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, const float *weights, long channels,
    long first, long count, float *output, const apus_gemm_epilogue *epilogue);

/// Whether `apus_depthwise_band_avx512` takes `g`: 3 × 3, stride 2, one column of left padding,
/// input rows at most 4096 wide. (Returns 0 off x86-64.)
int apus_depthwise_band_supported(const apus_depthwise_geometry *g);

/// Output rows `firstOutputRow ..< firstOutputRow + outputRows` of the depthwise planes `first ..<
/// first + count` (stride-2 3 × 3 geometries `apus_depthwise_band_supported` takes), with the
/// results of `apus_depthwise_avx512`, bit for bit. Plane `t`'s input comes from a band of
/// `inputRows` rows: its input row `firstInputRow` is at `input + (t − first) · inputPlaneStride`,
/// the next rows follow `input_width` floats apart, and the band must hold every row those output
/// rows read (from `2·firstOutputRow − pad_top`, clamped to 0, to `2·(firstOutputRow + outputRows −
/// 1) − pad_top + 2`, clamped to the image); rows outside the image read as zero. Outputs (and the
/// epilogue's residual) are whole planes, plane `t` at `t · output plane`. AVX-512F only.
void apus_depthwise_band_avx512(
    const apus_depthwise_geometry *g, const float *input, long inputPlaneStride, long firstInputRow, long inputRows,
    const float *weights, long channels, long first, long count, long firstOutputRow, long outputRows, float *output,
    const apus_gemm_epilogue *epilogue);

/// One channel's zero-padded input plane as `DepthwiseLayout` (Swift) lays it out: padded rows
/// `row_stride` floats apart, each split into `stride` column phases of `phase_width` floats
/// (phase `p` holds padded columns `p, p + stride, …`), `stride` spare rows after the last one
/// read and 16 floats of slack after those.
typedef struct {
    long output_height;
    long output_width;
    long row_stride;
    long phase_width;
    long kernel;
    long stride;
} apus_depthwise_plane_geometry;

/// Whether `apus_depthwise_plane_avx2` takes `g`: kernel 3 or 5, stride 1 or 2.
int apus_depthwise_plane_supported(const apus_depthwise_plane_geometry *g);

/// Output rows `first ..< first + count` of one depthwise channel from its phase-split padded
/// `plane` (the rows those outputs read must be filled): each output is `bias` plus the taps in
/// (row, column) order, one fused multiply-add each, then `+ residual` (the channel's plane laid
/// out like `output`, or NULL) and the activation (`APUS_GEMM_*`; CLIP clamps to [low, high]).
/// Two rows and up to 32 columns at a time; `first` even unless it is the last row. AVX2 and FMA:
/// call only when the CPU and OS support them.
void apus_depthwise_plane_avx2(
    const apus_depthwise_plane_geometry *g, const float *plane, long first, long count, const float *weights,
    float bias, const float *residual, float *output, int activation, float low, float high);

/// Whether `apus_depthwise_direct_avx2` takes `g`: kernel 3 or 5, stride 1 or 2, non-empty input
/// and output, padding not negative.
int apus_depthwise_direct_supported(const apus_depthwise_geometry *g);

/// Output rows `first ..< first + count` of one depthwise channel read straight from its unpadded
/// `input` plane (`input_height` × `input_width`): the results of `apus_depthwise_plane_avx2` on
/// the padded plane, bit for bit (the same fused multiply-adds in the same order, padding as zero
/// products), without the padded copy. At stride 2 the even and odd columns are split in
/// registers. Two rows and up to 32 columns at a time. AVX2 and FMA: call only when the CPU and
/// OS support them.
void apus_depthwise_direct_avx2(
    const apus_depthwise_geometry *g, const float *input, long first, long count, const float *weights, float bias,
    const float *residual, float *output, int activation, float low, float high);

/// Whether `apus_depthwise_channels_avx2` takes `g`: kernel 1 to 7, stride 1 or 2, output maps of
/// at most 28 × 28 whose padded map and sums fit its 60 KiB of stack scratch (28 × 28 at stride 1,
/// 14 × 14 at stride 2).
int apus_depthwise_channels_supported(const apus_depthwise_geometry *g);

/// Depthwise planes `first ..< first + 8 · groups` (image-major, `channels` per image) in groups of
/// eight consecutive channels, each group starting at a channel that is a multiple of 8 and
/// ending inside its image: plane `t` is channel `t % channels`, its input `input + t · input
/// plane`, its weights `weights + channel · kernel²`. Each output is the epilogue's `bias[channel]`
/// (or 0) plus the taps in (ky, kx) order, one fused multiply-add each (padding as zeros), then the
/// residual (planes laid out like `output`; `residual_stride` ignored) and the activation: the
/// bits of `apus_depthwise_plane_avx2`. For small maps, where a plane is a few vectors; nothing
/// happens for a geometry `apus_depthwise_channels_supported` rejects. AVX2 and FMA: call only
/// when the CPU and OS support them.
void apus_depthwise_channels_avx2(
    const apus_depthwise_geometry *g, const float *input, const float *weights, long channels, long first,
    long groups, float *output, const apus_gemm_epilogue *epilogue);

/// Direct convolution of one image with few input channels (a network's stem, where im2col's
/// reduction of `inputChannels · kernel²` is too short for the GEMM kernel): output channels
/// `firstChannel ..< firstChannel + channelCount` of `output` (planes of output_height ×
/// output_width) from the `inputChannels` planes of `input`, `weights` [output channel][input
/// channel][kernel][kernel], using the table `apus_depthwise_prepare` made for the same spatial
/// geometry. Each output is `bias[channel]` plus the terms in (input channel, ky, kx) order, one
/// fused multiply-add each; then the residual (same layout as `output`, from its first plane) and
/// the activation. AVX-512F only.
void apus_direct_conv_avx512(
    const apus_depthwise_geometry *g, const void *table, const float *input, long inputChannels, const float *weights,
    long firstChannel, long channelCount, float *output, const apus_gemm_epilogue *epilogue);

/// The shape of a convolution with few input channels for `apus_stem_avx2`: square `kernel`, square
/// `stride`, no dilation, one group; zero padding `pad_top` rows above and `pad_left` columns left
/// (the bottom and right padding follow from the output size).
typedef struct {
    long input_channels;
    long input_height;
    long input_width;
    long output_channels;
    long output_height;
    long output_width;
    long kernel;
    long stride;
    long pad_top;
    long pad_left;
} apus_stem_geometry;

/// Whether `apus_stem_avx2` takes `g`: 1 to 4 input channels, kernel 1 to 11, stride 1 to 4, and
/// the padded input rows of at least one output column (with its sums) within its 48 KiB of stack.
int apus_stem_supported(const apus_stem_geometry *g);

/// Floats of `g`'s weights packed by `apus_stem_pack`.
size_t apus_stem_packed_floats(const apus_stem_geometry *g);

/// Packs `weights` ([output channel][input channel][kernel][kernel]) for `apus_stem_avx2`: passes of
/// 16 output channels, each [input channel][ky][kx][16 lanes], channels past the last as zeros.
void apus_stem_pack(const apus_stem_geometry *g, const float *weights, float *packed);

/// Output rows `first_row ..< first_row + row_count` of every output channel of one image (`input`
/// its planes, `output` and the epilogue's `residual` its output planes; `residual_stride`
/// ignored). Each output is `bias[channel]` (or 0) plus the taps in (input channel, ky, kx) order,
/// one fused multiply-add each (padding as zeros), then the residual and the activation. Output
/// channels in the lanes, 16 per pass; nothing happens for a geometry `apus_stem_supported`
/// rejects. AVX2 and FMA: call only when the CPU and OS support them.
void apus_stem_avx2(
    const apus_stem_geometry *g, const float *packed, const float *input, long first_row, long row_count,
    float *output, const apus_gemm_epilogue *epilogue);

/// The shape of a max pooling without dilation: zero-based padding `pad_top` rows above and
/// `pad_left` columns left; the output size follows from the caller's rule (ceil mode included).
typedef struct {
    long input_height;
    long input_width;
    long output_height;
    long output_width;
    long kernel_height;
    long kernel_width;
    long stride_height;
    long stride_width;
    long pad_top;
    long pad_left;
} apus_pool_geometry;

/// Floats `apus_max_pool_avx512`'s buffer needs past the padded row width
/// (`max(pad_left + input_width, (output_width − 1) · stride_width + kernel_width)`).
#define APUS_MAX_POOL_SLACK 64

/// Max pooling of `planes` planes (input_height × input_width each, consecutive) into `output`,
/// strides 1 or 2: for each output row the maximum over the window's rows, then over its columns,
/// each in window order, with NaN kept once met and padding as −∞ (Pool2D's Swift path, value for
/// value). `buffer` holds the padded row width + `APUS_MAX_POOL_SLACK` floats. AVX-512F only.
void apus_max_pool_avx512(const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer);

/// `apus_max_pool_avx512` with AVX2 only (eight columns per vector; the same values, the same
/// buffer), for CPUs without AVX-512.
void apus_max_pool_avx2(const apus_pool_geometry *g, const float *input, long planes, float *output, float *buffer);


/// The spatial layout of a Winograd F(4×4, 3×3) convolution's transforms (`WinogradConv2D`):
/// the input or output plane, the tile grid, the row stride of the transformed matrices
/// (`tile_stride`), the stride between tile positions (channels × `tile_stride`), and the phase
/// plane of the input transform's scratch (`plane_rows` rows of `row_stride` floats per phase,
/// `line_count` padded columns per input row).
typedef struct {
    long input_height, input_width, output_height, output_width, pad_top, pad_left;
    long tile_rows, tile_columns, tile_stride, position_stride;
    long plane_rows, row_stride, line_count;
} apus_winograd_geometry;

/// `WinogradConv2D.transformInput` with AVX-512, the same bits: transforms the input tiles of
/// channels `firstChannel ..< firstChannel + channelCount` into `v`, using `scratch` (the phase
/// plane, 4 × `plane_rows` × `row_stride` floats).
void apus_winograd_input_avx512(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch);

/// `WinogradConv2D.transformOutput` with AVX-512, the same bits: transforms `m` back into output
/// channels `firstChannel ..< firstChannel + channelCount`, adding `bias` (or 0 when NULL).
void apus_winograd_output_avx512(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output);

/// `apus_winograd_input_avx512` with AVX2 only (eight tile columns per vector; the same bits), for
/// CPUs without AVX-512: call only when the CPU and OS support AVX2.
void apus_winograd_input_avx2(
    const apus_winograd_geometry *g, const float *input, long firstChannel, long channelCount, float *v,
    float *scratch);

/// `apus_winograd_output_avx512` with AVX2 only (the same bits), for CPUs without AVX-512.
void apus_winograd_output_avx2(
    const apus_winograd_geometry *g, const float *m, long firstChannel, long channelCount, const float *bias,
    float *output);


/// OpenBLAS's level-3 building blocks for one core type (`sgemm_kernel_HASWELL` and its copy
/// routines), looked up at run time: its assembly kernel on weights packed once in its own
/// layout, instead of `cblas_sgemm`, which packs the weights again on every call.
typedef int (*apus_blas_kernel_fn)(long m, long n, long k, float alpha, const float *a, const float *b, float *c,
                                   long ldc);
/// `sgemm_oncopy` / `sgemm_itcopy`: pack a column-major block (`m` rows of the reduction, `n`
/// columns, leading dimension `lda`) into the kernel's panels.
typedef int (*apus_blas_copy_fn)(long m, long n, const float *a, long lda, float *b);

typedef struct {
    apus_blas_kernel_fn kernel;
    apus_blas_copy_fn pack_weights;
    apus_blas_copy_fn pack_columns;
} apus_blas_kernels;

/// The reduction block of the packed layout: the weights are packed in blocks of this many
/// reduction steps, each block holding every row.
#define APUS_BLAS_REDUCTION_BLOCK 384
/// Columns of the right-hand matrix packed per kernel call.
#define APUS_BLAS_COLUMN_BLOCK 256

/// Packs `count` rows of a `totalRows` × `k` weight matrix for `apus_blas_packed_gemm`, rows
/// `firstRow ..< firstRow + count` (`firstRow` a multiple of 4, `count` too unless the range ends
/// at `totalRows`): `w` is row `firstRow`, row-major with row stride `ldw`, and `packed` the
/// whole packed matrix (`totalRows · k` floats), of which only this range's floats are written.
void apus_blas_pack_weights(const apus_blas_kernels *kernels, const float *w, long count, long k, long ldw,
                            long totalRows, long firstRow, float *packed);

/// Writes the whole `rows` × `k` matrix `w` (row-major, row stride `ldw`) in the layout
/// `apus_blas_pack_weights` produces on cores whose weight panels are four rows wide, without
/// OpenBLAS: per reduction block (`APUS_BLAS_REDUCTION_BLOCK` steps, the last one shorter) every
/// row, four rows at a time step by step, then a pair of rows and a single row when `rows` leaves
/// them. `apus convert` stores it; a reader checks it against the loaded core's copy routine
/// before reading such weights in place.
void apus_blas_layout_write(const float *w, long rows, long k, long ldw, float *packed);

/// `c[rowCount × n] = W[firstRow ..< firstRow + rowCount] · b` with `W` (`rows` × `k`) packed by
/// `apus_blas_pack_weights`; `firstRow` a multiple of 4 and `firstRow + rowCount` a multiple of
/// 4 or `rows`; `b` is `k` × `n` row-major (row stride `ldb`), `c` row stride `ldc`. Each output
/// is summed over the reduction blocks in order; the same call gives the same bits on any
/// thread, but OpenBLAS's edge kernels round differently from its main one, so the bits depend
/// on the call's ranges. Uses a scratch buffer of its thread, allocated on first use (384 KB
/// per thread, kept until the thread ends); returns nonzero when that allocation fails.
int apus_blas_packed_gemm(const apus_blas_kernels *kernels, const float *packed, long rows, long firstRow,
                          long rowCount, long k, long n, const float *b, long ldb, float *c, long ldc);

/// A read-ahead stream: a region of memory a later step will read (a classifier's weights,
/// megabytes that a matrix-vector product would otherwise stream from DRAM), fetched into the
/// cache by the packed GEMM kernel while it computes an earlier, compute-bound step. The kernel
/// claims a share of the region per block of `k` (two 64-byte lines per step of `k`) and issues
/// the prefetches between its fused multiply-adds. A stream is opaque memory of
/// `apus_prefetch_stream_size()` bytes, 64-byte aligned; prefetching never faults and never
/// changes a result.
size_t apus_prefetch_stream_size(void);

/// Starts `stream` over `byteCount` bytes from `base` (nothing claimed yet).
void apus_prefetch_stream_start(void *stream, const void *base, long byteCount);

/// Makes `stream` (NULL: none) the one the calling thread's kernel calls read ahead on.
void apus_prefetch_stream_use(void *stream);

/// The calling thread's stream, or NULL.
void *apus_prefetch_stream_current(void);

/// Bytes of `stream` handed out to kernel calls so far (at most its length).
long apus_prefetch_stream_claimed(const void *stream);

#endif
