#!/usr/bin/env bash
# Builds and runs scripts/perf/gemm_kernels.c: the packed AVX-512 GEMM kernel against OpenBLAS
# sgemm (SKYLAKEX core unless OPENBLAS_CORETYPE says otherwise) at convolution GEMM shapes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"${CC:-$(command -v clang || echo cc)}" -O2 -I"$root/Sources/CApusKernels/include" "$root/scripts/perf/gemm_kernels.c" \
    "$root/Sources/CApusKernels/gemm.c" "$root/Sources/CApusKernels/prefetch_stream.c" -o "$out/gemm_kernels" -lopenblas
OPENBLAS_CORETYPE="${APUS_BENCH_CORETYPE:-SKYLAKEX}" OPENBLAS_NUM_THREADS=1 "$out/gemm_kernels"
