// The packed kernel's matrix-vector path (one column: a squeeze-and-excitation product on a 1 × 1
// map) on weights read from memory, as in a model run: 64, 128 or 256 packed copies of each
// matrix (with both layouts 28–110 MB for the largest: partly in L3 to all from DRAM), taken in a
// scattered order, on 4 KiB pages (heap blocks off the page grid, as in an artifact's mapping) or
// side by side on 2 MiB pages (one madvise(MADV_HUGEPAGE) pool, as Planner.placeStreamedWeights
// lays them out), alternated call by call. Prints the median of 1000 calls of each.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "apus_kernels.h"
#include "timing.h"

#define COPIES 256
#define CALLS 1000

static char *pool;
static size_t used;

static void run(long m, long k, int copies) {
    float *small[COPIES], *huge[COPIES];
    float *a = malloc(sizeof(float) * m * k);
    for (long i = 0; i < m * k; i++) a[i] = (i % 7) * 0.1f - 0.3f;
    size_t bytes = (sizeof(float) * apus_gemm_packed_count(m, k) + 63) / 64 * 64;
    for (int q = 0; q < copies; q++) {
        small[q] = malloc(bytes + 64 * (q % 8));
        apus_gemm_pack(a, k, m, k, small[q]);
        huge[q] = (float *)(pool + used);
        used += bytes;
        apus_gemm_pack(a, k, m, k, huge[q]);
    }
    float b[4096], c[4096];
    for (long i = 0; i < k; i++) b[i] = (i % 5) * 0.1f;
    static double t[2][CALLS];
    for (int r = 0; r < 2 * CALLS; r++) {
        int q = (r / 2 * 37) % copies, onHuge = r % 2;
        double t0 = now();
        apus_gemm_packed_avx512(onHuge ? huge[q] : small[q], m, 0, k, m, 1, b, 1, c, 1, 0, 0);
        t[onHuge][r / 2] = now() - t0;
    }
    qsort(t[0], CALLS, sizeof(double), compare);
    qsort(t[1], CALLS, sizeof(double), compare);
    printf("| %ld × %ld | %ld KB | %d | %.1f | %.1f |\n", m, k, (long)bytes / 1024, copies, t[0][CALLS / 2] * 1e6,
           t[1][CALLS / 2] * 1e6);
    for (int q = 0; q < copies; q++) free(small[q]);
    free(a);
}

int main(void) {
    size_t size = 4L << 30;
    char *raw = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 1;
    pool = (char *)(((size_t)raw + (2 << 20) - 1) & ~((size_t)(2 << 20) - 1));
    madvise(pool, size - (4 << 20), 14);  // MADV_HUGEPAGE
    printf("| weights (rows × k) | packed | copies | 4 KiB pages µs | 2 MiB pages µs |\n|---|---|---|---|---|\n");
    long shapes[][2] = {{1152, 48}, {48, 1152}, {672, 28}, {28, 672}, {480, 20}, {20, 480}};
    int copies[] = {64, 128, 256};
    for (unsigned i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int c = 0; c < 3; c++) run(shapes[i][0], shapes[i][1], copies[c]);
    }
    return 0;
}
