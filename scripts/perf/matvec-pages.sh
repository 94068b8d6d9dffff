#!/usr/bin/env bash
# Builds and runs scripts/perf/matvec_pages.c: the packed kernel's matrix-vector path on weights
# from memory, on 4 KiB pages against 2 MiB pages (AVX-512 CPUs).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"${CC:-$(command -v clang || echo cc)}" -O2 -I"$root/Sources/CApusKernels/include" "$root/scripts/perf/matvec_pages.c" \
    "$root/Sources/CApusKernels/gemm.c" "$root/Sources/CApusKernels/prefetch_stream.c" -o "$out/matvec_pages"
"$out/matvec_pages"
