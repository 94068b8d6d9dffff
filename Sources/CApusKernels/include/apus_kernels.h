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
/// `epilogue` (NULL: none) is applied while the block is still in registers.
void apus_gemm_packed_avx512(
    const float *packed, long packedRows, long firstRow, long k, long m, long n, const float *b, long ldb, float *c,
    long ldc, const apus_gemm_epilogue *epilogue);

/// Replaces each of the `n` values at `x` by its sigmoid (`silu` = 0) or SiLU (`silu` = 1), with
/// the exp of the kernels' epilogue. AVX-512F only.
void apus_logistic_avx512(float *x, long n, int silu);

#endif
