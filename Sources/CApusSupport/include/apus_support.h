#ifndef APUS_SUPPORT_H
#define APUS_SUPPORT_H

/// CPU feature bits Apus cares about (from CPUID), as a bit set.
enum {
    APUS_CPU_SSE3 = 1 << 0,
    APUS_CPU_AVX = 1 << 1,
    APUS_CPU_AVX2 = 1 << 2,
    APUS_CPU_FMA = 1 << 3,
    APUS_CPU_AVX512F = 1 << 4,
    APUS_CPU_AVX512BW = 1 << 5,
    APUS_CPU_AVX512DQ = 1 << 6,
    APUS_CPU_AVX512VL = 1 << 7,
    APUS_CPU_AVX512CD = 1 << 8,
    APUS_CPU_OS_AVX = 1 << 9,     // the OS saves YMM state (XCR0)
    APUS_CPU_OS_AVX512 = 1 << 10, // the OS saves ZMM/opmask state (XCR0)
};

/// Returns the CPU feature bits of the running processor (0 on non-x86 machines).
unsigned int apus_cpu_features(void);

/// Copies the 12-character CPUID vendor string into `out` (13 bytes, NUL-terminated).
void apus_cpu_vendor(char out[13]);

/// CPUID family and model (display values).
void apus_cpu_family_model(int *family, int *model);

/// Number of CPUs in this thread's affinity mask, or -1 if it cannot be read.
int apus_affinity_cpu_count(void);

/// SHA-256's 64 round constants (shared by the portable Swift code and `apus_sha256_blocks`).
const unsigned int *apus_sha256_round_constants(void);

/// Whether the CPU has the SHA extensions (and SSSE3, SSE4.1) that `apus_sha256_blocks` uses.
int apus_sha256_hardware_available(void);

/// SHA-256's compression function over `count` consecutive 64-byte blocks at `data`, updating the
/// eight state words (A … H) in place, with the SHA extensions. Only call it when
/// `apus_sha256_hardware_available()` returned 1.
void apus_sha256_blocks(unsigned int state[8], const unsigned char *data, unsigned long count);

#endif
