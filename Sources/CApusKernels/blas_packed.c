// OpenBLAS's sgemm kernel on weights packed once. cblas_sgemm packs both operands on every call;
// for a convolution the weights are the same at every inference, and on small maps (7 × 7,
// 14 × 14) packing them is a large share of the call. Here they are packed once, at plan time,
// by OpenBLAS's own copy routine, and each call packs only the activations and runs the same
// assembly kernel. Row-major W[rows × k] · B[k × n] is, in OpenBLAS's column-major terms,
// Bᵀ · Wᵀ: the activations are its "A" (packed by itcopy, 16-row panels on Haswell), the weights
// its "B" (oncopy, 4-column panels).
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "apus_kernels.h"

void apus_blas_pack_weights(const apus_blas_kernels *kernels, const float *w, long count, long k, long ldw,
                            long totalRows, long firstRow, float *packed) {
    for (long first = 0; first < k; first += APUS_BLAS_REDUCTION_BLOCK) {
        long depth = k - first < APUS_BLAS_REDUCTION_BLOCK ? k - first : APUS_BLAS_REDUCTION_BLOCK;
        // Column-major K × rows with leading dimension ldw: element (l, r) is w[r · ldw + l]. A
        // block holds every row, four at a time, each panel `depth` deep.
        kernels->pack_weights(depth, count, w + first, ldw, packed + first * totalRows + firstRow * depth);
    }
}

/// `width` rows from `top` (row stride `ldw`), interleaved step by step, `depth` steps.
static float *write_panel(const float *top, long ldw, long width, long depth, float *out) {
    for (long step = 0; step < depth; step++)
        for (long lane = 0; lane < width; lane++) *out++ = top[lane * ldw + step];
    return out;
}

void apus_blas_layout_write(const float *w, long rows, long k, long ldw, float *packed) {
    for (long first = 0; first < k; first += APUS_BLAS_REDUCTION_BLOCK) {
        long depth = k - first < APUS_BLAS_REDUCTION_BLOCK ? k - first : APUS_BLAS_REDUCTION_BLOCK;
        float *out = packed + first * rows;
        long row = 0;
        for (; row + 4 <= rows; row += 4) out = write_panel(w + row * ldw + first, ldw, 4, depth, out);
        if (rows - row >= 2) {
            out = write_panel(w + row * ldw + first, ldw, 2, depth, out);
            row += 2;
        }
        if (rows - row >= 1) write_panel(w + row * ldw + first, ldw, 1, depth, out);
    }
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void make_scratch_key(void) { pthread_key_create(&scratch_key, free); }

/// This thread's buffer for the packed activations (one column block × one reduction block).
static float *thread_scratch(void) {
    pthread_once(&scratch_once, make_scratch_key);
    float *scratch = pthread_getspecific(scratch_key);
    if (scratch) return scratch;
    if (posix_memalign((void **)&scratch, 64,
                       sizeof(float) * APUS_BLAS_COLUMN_BLOCK * APUS_BLAS_REDUCTION_BLOCK) != 0)
        return NULL;
    pthread_setspecific(scratch_key, scratch);
    return scratch;
}

int apus_blas_packed_gemm(const apus_blas_kernels *kernels, const float *packed, long rows, long firstRow,
                          long rowCount, long k, long n, const float *b, long ldb, float *c, long ldc) {
    if (rowCount <= 0 || n <= 0) return 0;
    float *scratch = thread_scratch();
    if (!scratch) return 1;
    // The kernel adds to c.
    for (long r = 0; r < rowCount; r++) memset(c + r * ldc, 0, sizeof(float) * n);
    for (long column = 0; column < n; column += APUS_BLAS_COLUMN_BLOCK) {
        long width = n - column < APUS_BLAS_COLUMN_BLOCK ? n - column : APUS_BLAS_COLUMN_BLOCK;
        for (long first = 0; first < k; first += APUS_BLAS_REDUCTION_BLOCK) {
            long depth = k - first < APUS_BLAS_REDUCTION_BLOCK ? k - first : APUS_BLAS_REDUCTION_BLOCK;
            kernels->pack_columns(depth, width, b + first * ldb + column, ldb, scratch);
            kernels->kernel(width, rowCount, depth, 1.0f, scratch, packed + first * rows + firstRow * depth,
                            c + column, ldc);
        }
    }
    return 0;
}
