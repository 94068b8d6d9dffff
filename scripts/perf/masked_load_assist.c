// What one AVX-512 masked load costs when lanes it does not read lie on an unmapped page. The
// direct and depthwise kernels start the vectors of padding rows before their plane; for a
// network's input that is before its buffer (Docs/performance.md, "Masked loads next to unmapped
// pages"). Build and run: cc -O2 scripts/perf/masked_load_assist.c -o /tmp/assist && /tmp/assist
#include <immintrin.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include "timing.h"

/// Nanoseconds per masked load of `p` with `mask`, over ten million dependent loads.
__attribute__((target("avx512f"))) static double per_load(const float *p, __mmask16 mask) {
    const int count = 10000000;
    __m512 sum = _mm512_setzero_ps();
    double t = now();
    for (int i = 0; i < count; i++) {
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, p));
        __asm__ volatile("" : "+v"(sum), "+r"(p));
    }
    t = now() - t;
    float lanes[16];
    _mm512_storeu_ps(lanes, sum);
    return t / count * 1e9 + lanes[0] * 0;
}

int main(void) {
    // Three pages; the first is unmapped again, so the second starts right after a hole.
    char *region = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return 1;
    region[4096] = 1;
    region[8192] = 1;
    munmap(region, 4096);
    const float *page = (const float *)(region + 4096);
    printf("no lane read, address inside a mapped page:              %6.2f ns\n", per_load(page + 64, 0));
    printf("no lane read, 32 bytes before the page (hole before it):  %6.2f ns\n", per_load(page - 8, 0));
    printf("upper 8 lanes read, same address:                         %6.2f ns\n", per_load(page - 8, 0xff00));
    printf("no lane read, whole vector in the hole:                   %6.2f ns\n", per_load(page - 1024, 0));
    return 0;
}
