#!/usr/bin/env bash
# Builds scripts/perf/kernel_ab.c against the AVX-512 GEMM, depthwise and Winograd transform
# kernels of this tree and of revision REV (default HEAD~1), REV's global symbols renamed `old_…`,
# and runs it: the two builds alternated call by call in one process, medians per shape
# (Docs/performance.md, "Zen 4, thirteenth session").
#
#   bash scripts/perf/kernel-ab.sh [REV] [CALLS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rev="${1:-HEAD~1}"
calls="${2:-300}"
cc="${CC:-$(command -v clang || echo cc)}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
kernels=(gemm direct_conv prefetch_stream winograd)

mkdir -p "$out/old"
git -C "$root" archive "$rev" Sources/CApusKernels | tar -x -C "$out/old"
for f in "${kernels[@]}"; do
    "$cc" -O2 -I"$out/old/Sources/CApusKernels/include" -c "$out/old/Sources/CApusKernels/$f.c" -o "$out/old_$f.o"
    "$cc" -O2 -I"$root/Sources/CApusKernels/include" -c "$root/Sources/CApusKernels/$f.c" -o "$out/new_$f.o"
done
# Every global the old objects define gets the prefix, in definitions and references alike, so that
# the old kernels call the old helpers.
for f in "${kernels[@]}"; do nm --defined-only -g "$out/old_$f.o" | awk '{print $3}'; done | sort -u |
    awk '{print $1 " old_" $1}' > "$out/renames"
for f in "${kernels[@]}"; do objcopy --redefine-syms="$out/renames" "$out/old_$f.o"; done
"$cc" -O2 -I"$root/Sources/CApusKernels/include" -I"$root/scripts/perf" "$root/scripts/perf/kernel_ab.c" \
    "$out"/new_*.o "$out"/old_*.o -o "$out/kernel_ab"
echo "old: $(git -C "$root" rev-parse --short "$rev"), new: the working tree"
"$out/kernel_ab" "$calls"
