#define _GNU_SOURCE
#include "apus_support.h"
#include <sched.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long apus_xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

unsigned int apus_cpu_features(void) {
    unsigned int eax, ebx, ecx, edx, features = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (ecx & bit_SSE3) features |= APUS_CPU_SSE3;
    if (ecx & bit_AVX) features |= APUS_CPU_AVX;
    if (ecx & bit_FMA) features |= APUS_CPU_FMA;
    int osxsave = (ecx & bit_OSXSAVE) != 0;
    if (osxsave) {
        unsigned long long xcr0 = apus_xgetbv0();
        if ((xcr0 & 0x6) == 0x6) features |= APUS_CPU_OS_AVX;
        if ((xcr0 & 0xE6) == 0xE6) features |= APUS_CPU_OS_AVX512;
    }
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        if (ebx & bit_AVX2) features |= APUS_CPU_AVX2;
        if (ebx & bit_AVX512F) features |= APUS_CPU_AVX512F;
        if (ebx & bit_AVX512BW) features |= APUS_CPU_AVX512BW;
        if (ebx & bit_AVX512DQ) features |= APUS_CPU_AVX512DQ;
        if (ebx & bit_AVX512VL) features |= APUS_CPU_AVX512VL;
        if (ebx & bit_AVX512CD) features |= APUS_CPU_AVX512CD;
    }
    return features;
}

void apus_cpu_vendor(char out[13]) {
    unsigned int eax, ebx, ecx, edx;
    memset(out, 0, 13);
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return;
    memcpy(out, &ebx, 4);
    memcpy(out + 4, &edx, 4);
    memcpy(out + 8, &ecx, 4);
}

void apus_cpu_family_model(int *family, int *model) {
    unsigned int eax, ebx, ecx, edx;
    *family = 0;
    *model = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return;
    int base_family = (eax >> 8) & 0xF;
    int base_model = (eax >> 4) & 0xF;
    int ext_family = (eax >> 20) & 0xFF;
    int ext_model = (eax >> 16) & 0xF;
    *family = base_family == 0xF ? base_family + ext_family : base_family;
    *model = (base_family == 0x6 || base_family == 0xF) ? (ext_model << 4) + base_model : base_model;
}
#else
unsigned int apus_cpu_features(void) { return 0; }
void apus_cpu_vendor(char out[13]) { memset(out, 0, 13); }
void apus_cpu_family_model(int *family, int *model) { *family = 0; *model = 0; }
#endif

int apus_affinity_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    return -1;
#endif
}
