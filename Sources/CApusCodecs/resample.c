// Pillow's 8-bit resampling passes (libImaging/Resample.c), in the same Int32 arithmetic.
//
// Swift compiles for baseline x86-64 (SSE2, no 32-bit lane multiply), so the hot loops live here
// with an AVX2 version chosen at run time. Integer sums do not depend on order, so the SIMD and
// portable kernels give the same bytes as Pillow.
#include "apus_codecs.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define APUS_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#endif

#define APUS_PRECISION_BITS 22

static inline uint8_t clip8(int32_t value) {
    int32_t v = value >> APUS_PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Wrapping Int32 multiply-add, as Pillow's int arithmetic behaves on the values it meets
// (the sums never overflow for weights normalized to 1; wrapping keeps it defined in C).
static inline int32_t mac(int32_t acc, int32_t a, int32_t b) {
    return (int32_t)((uint32_t)acc + (uint32_t)a * (uint32_t)b);
}

static void horizontal_pixel_portable(const uint8_t *p, uint8_t *o, const int32_t *w, int n) {
    int32_t s0 = 1 << (APUS_PRECISION_BITS - 1), s1 = s0, s2 = s0;
    for (int t = 0; t < n; t++) {
        s0 = mac(s0, p[3 * t], w[t]);
        s1 = mac(s1, p[3 * t + 1], w[t]);
        s2 = mac(s2, p[3 * t + 2], w[t]);
    }
    o[0] = clip8(s0);
    o[1] = clip8(s1);
    o[2] = clip8(s2);
}

static void horizontal_portable(const uint8_t *in, size_t in_stride, int row_count, uint8_t *out, size_t out_stride,
                                int out_width, const int32_t *start, const int32_t *tap_count,
                                const int32_t *weights, int weight_stride) {
    for (int r = 0; r < row_count; r++) {
        const uint8_t *row = in + (size_t)r * in_stride;
        uint8_t *o = out + (size_t)r * out_stride;
        for (int j = 0; j < out_width; j++) {
            horizontal_pixel_portable(row + 3 * (size_t)start[j], o + 3 * j, weights + (size_t)j * weight_stride,
                                      tap_count[j]);
        }
    }
}

static void vertical_portable(const uint8_t *in, size_t row_bytes, uint8_t *out, int first_out, int end_out,
                              const int32_t *start, const int32_t *tap_count, const int32_t *weights,
                              int weight_stride) {
    for (int y = first_out; y < end_out; y++) {
        const uint8_t *base = in + (size_t)start[y] * row_bytes;
        const int32_t *w = weights + (size_t)y * weight_stride;
        uint8_t *o = out + (size_t)y * row_bytes;
        for (size_t i = 0; i < row_bytes; i++) {
            int32_t s = 1 << (APUS_PRECISION_BITS - 1);
            for (int t = 0; t < tap_count[y]; t++) s = mac(s, base[(size_t)t * row_bytes + i], w[t]);
            o[i] = clip8(s);
        }
    }
}

#ifdef APUS_HAVE_AVX2_KERNELS

// Four taps per step: one 16-byte load holds pixels t…t+4; two in-lane byte shuffles spread
// pixels (t, t+1) and (t+2, t+3) into Int32 lanes [R G B 0 | R G B 0], each multiplied by its
// tap's weight broadcast over its 128-bit half.
__attribute__((target("avx2"))) static void horizontal_avx2(const uint8_t *in, size_t in_stride,
                                                            const uint8_t *in_end, int row_count, uint8_t *out,
                                                            size_t out_stride, int out_width, const int32_t *start,
                                                            const int32_t *tap_count, const int32_t *weights,
                                                            int weight_stride) {
    const __m256i spread01 = _mm256_setr_epi8(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1, 3, -1,
                                              -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, -1, -1, -1, -1);
    const __m256i spread23 = _mm256_setr_epi8(6, -1, -1, -1, 7, -1, -1, -1, 8, -1, -1, -1, -1, -1, -1, -1, 9, -1,
                                              -1, -1, 10, -1, -1, -1, 11, -1, -1, -1, -1, -1, -1, -1);
    const __m256i pick01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m256i pick23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    const __m128i bias = _mm_set1_epi32(1 << (APUS_PRECISION_BITS - 1));
    for (int r = 0; r < row_count; r++) {
        const uint8_t *row = in + (size_t)r * in_stride;
        uint8_t *o = out + (size_t)r * out_stride;
        for (int j = 0; j < out_width; j++) {
            const uint8_t *p = row + 3 * (size_t)start[j];
            const int32_t *w = weights + (size_t)j * weight_stride;
            int n = tap_count[j];
            int quads = (n + 3) / 4;
            // The last quad loads 16 bytes from pixel start + 4 * (quads - 1).
            if (quads == 0 || p + 12 * (size_t)(quads - 1) + 16 > in_end) {
                horizontal_pixel_portable(p, o + 3 * j, w, n);
                continue;
            }
            __m256i acc = _mm256_setzero_si256();
            for (int q = 0; q < quads; q++) {
                __m256i pixels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 12 * q)));
                __m256i w4 = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w + 4 * q)));
                __m256i a = _mm256_shuffle_epi8(pixels, spread01);
                __m256i b = _mm256_shuffle_epi8(pixels, spread23);
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(a, _mm256_permutevar8x32_epi32(w4, pick01)));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(b, _mm256_permutevar8x32_epi32(w4, pick23)));
            }
            __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            sum = _mm_srai_epi32(_mm_add_epi32(sum, bias), APUS_PRECISION_BITS);
            sum = _mm_packus_epi16(_mm_packs_epi32(sum, sum), sum);
            uint32_t bytes = (uint32_t)_mm_cvtsi128_si32(sum);
            o[3 * j] = (uint8_t)bytes;
            o[3 * j + 1] = (uint8_t)(bytes >> 8);
            o[3 * j + 2] = (uint8_t)(bytes >> 16);
        }
    }
}

__attribute__((target("avx2"))) static void vertical_avx2(const uint8_t *in, size_t row_bytes, uint8_t *out,
                                                          int first_out, int end_out, const int32_t *start,
                                                          const int32_t *tap_count, const int32_t *weights,
                                                          int weight_stride) {
    const __m256i bias = _mm256_set1_epi32(1 << (APUS_PRECISION_BITS - 1));
    for (int y = first_out; y < end_out; y++) {
        const uint8_t *base = in + (size_t)start[y] * row_bytes;
        const int32_t *w = weights + (size_t)y * weight_stride;
        uint8_t *o = out + (size_t)y * row_bytes;
        int n = tap_count[y];
        size_t i = 0;
        for (; i + 16 <= row_bytes; i += 16) {
            __m256i lo = bias, hi = bias;
            for (int t = 0; t < n; t++) {
                __m128i raw = _mm_loadu_si128((const __m128i *)(base + (size_t)t * row_bytes + i));
                __m256i wt = _mm256_set1_epi32(w[t]);
                lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(raw), wt));
                hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(raw, 8)), wt));
            }
            lo = _mm256_srai_epi32(lo, APUS_PRECISION_BITS);
            hi = _mm256_srai_epi32(hi, APUS_PRECISION_BITS);
            // packs works per 128-bit half: [lo0 hi0 | lo1 hi1] → fix the order with a permute.
            __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
            __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
            _mm_storeu_si128((__m128i *)(o + i), bytes);
        }
        for (; i < row_bytes; i++) {
            int32_t s = 1 << (APUS_PRECISION_BITS - 1);
            for (int t = 0; t < n; t++) s = mac(s, base[(size_t)t * row_bytes + i], w[t]);
            o[i] = clip8(s);
        }
    }
}

// Read and written with relaxed atomics: several threads may resize at once (and tests flip
// `avx2_disabled` while other suites run; both kernels give the same bytes).
static int avx2_state = -1;  // -1 unknown, 0 no, 1 yes
static int avx2_disabled = 0;

static int use_avx2(void) {
    if (__atomic_load_n(&avx2_disabled, __ATOMIC_RELAXED)) return 0;
    int state = __atomic_load_n(&avx2_state, __ATOMIC_RELAXED);
    if (state < 0) {
        __builtin_cpu_init();
        state = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&avx2_state, state, __ATOMIC_RELAXED);
    }
    return state;
}
#else
static int use_avx2(void) { return 0; }
#endif

int apus_resample_simd(int disable) {
#ifdef APUS_HAVE_AVX2_KERNELS
    __atomic_store_n(&avx2_disabled, disable != 0, __ATOMIC_RELAXED);
#else
    (void)disable;
#endif
    return use_avx2();
}

void apus_resample_horizontal_rgb(const uint8_t *in, size_t in_stride, const uint8_t *in_end, int row_count,
                                  uint8_t *out, size_t out_stride, int out_width, const int32_t *start,
                                  const int32_t *tap_count, const int32_t *weights, int weight_stride) {
#ifdef APUS_HAVE_AVX2_KERNELS
    if (use_avx2()) {
        horizontal_avx2(in, in_stride, in_end, row_count, out, out_stride, out_width, start, tap_count, weights,
                        weight_stride);
        return;
    }
#endif
    (void)in_end;
    horizontal_portable(in, in_stride, row_count, out, out_stride, out_width, start, tap_count, weights,
                        weight_stride);
}

void apus_resample_vertical(const uint8_t *in, size_t row_bytes, uint8_t *out, int first_out, int end_out,
                            const int32_t *start, const int32_t *tap_count, const int32_t *weights,
                            int weight_stride) {
#ifdef APUS_HAVE_AVX2_KERNELS
    if (use_avx2()) {
        vertical_avx2(in, row_bytes, out, first_out, end_out, start, tap_count, weights, weight_stride);
        return;
    }
#endif
    vertical_portable(in, row_bytes, out, first_out, end_out, start, tap_count, weights, weight_stride);
}
