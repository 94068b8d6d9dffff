#!/usr/bin/env bash
# Builds and runs scripts/perf/activation_epilogue.c: the packed GEMM kernel with ReLU and SiLU
# epilogues at efficientnet_b0's expansion shapes, and the logistic pass alone (one thread).
# `--avx2` runs the AVX2 kernels instead of the AVX-512 ones. With a second source tree as
# argument (e.g. a `git worktree` of an older revision), builds the harness against both trees'
# kernels and runs them alternately, three times each.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mode=""
if [[ "${1:-}" == "--avx2" ]]; then
    mode=avx2
    shift
fi
build() {
    "${CC:-$(command -v clang || echo cc)}" -O2 -I"$1/Sources/CApusKernels/include" -I"$root/scripts/perf" \
        "$root/scripts/perf/activation_epilogue.c" "$1/Sources/CApusKernels/gemm.c" \
        "$1/Sources/CApusKernels/gemm_avx2.c" "$1/Sources/CApusKernels/epilogue_avx2.c" \
        "$1/Sources/CApusKernels/prefetch_stream.c" -o "$2"
}
build "$root" "$out/this"
if [[ $# -eq 0 ]]; then
    "$out/this" $mode
    exit
fi
build "$1" "$out/other"
for round in 1 2 3; do
    echo "round $round, $1:"
    "$out/other" $mode
    echo "round $round, $root:"
    "$out/this" $mode
done
