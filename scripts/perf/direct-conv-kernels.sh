#!/usr/bin/env bash
# Builds and runs scripts/perf/direct_conv_kernels.c: the AVX-512 depthwise and stem kernels at
# model shapes, one thread (Docs/performance.md, "Depthwise and stem convolutions").
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"${CC:-$(command -v clang || echo cc)}" -O2 -I"$root/Sources/CApusKernels/include" \
    "$root/scripts/perf/direct_conv_kernels.c" "$root/Sources/CApusKernels/direct_conv.c" "$root/Sources/CApusKernels/gemm.c" "$root/Sources/CApusKernels/prefetch_stream.c" -o "$out/direct_conv_kernels"
"$out/direct_conv_kernels"
