#!/usr/bin/env bash
# Builds and runs scripts/perf/blas_prepacked.c: OpenBLAS's sgemm kernel on weights packed once
# (CApusKernels/blas_packed.c) against cblas_sgemm and the AVX2 packed kernel, one thread, HASWELL core unless
# APUS_BENCH_CORETYPE says otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"${CC:-$(command -v clang || echo cc)}" -O2 -I"$root/Sources/CApusKernels/include" "$root/scripts/perf/blas_prepacked.c" \
    "$root/Sources/CApusKernels/blas_packed.c" "$root/Sources/CApusKernels/gemm.c" "$root/Sources/CApusKernels/prefetch_stream.c" \
    "$root/Sources/CApusKernels/gemm_avx2.c" -o "$out/blas_prepacked" -lopenblas -ldl -lpthread
core="${APUS_BENCH_CORETYPE:-HASWELL}"
OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS=1 "$out/blas_prepacked"
