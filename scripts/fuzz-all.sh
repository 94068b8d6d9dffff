#!/usr/bin/env bash
# Runs every fuzz target, one after the other, for a bounded time each (RELIABILITY.md point 8):
#
#   scripts/fuzz-all.sh [SECONDS_PER_TARGET]        # default 60
#
# Targets: the .apus reader (fuzz-artifact.sh), the ONNX reader and runner (fuzz-onnx.sh) and
# image decoding with preprocessing (fuzz-image.sh). Every target runs even if an earlier one
# fails; the script exits non-zero if any failed. The environment is passed on (APUS_FUZZ_JOBS,
# APUS_FUZZ_ARGS, ...), except APUS_FUZZ_DIR, which would make the targets share a folder.
set -uo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
unset APUS_FUZZ_DIR
failed=()
for target in artifact onnx image; do
    echo "=== fuzz-$target (${seconds}s)"
    if ! "$root/scripts/fuzz-$target.sh" "$seconds"; then
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "=== FAILED: ${failed[*]} (crashing inputs in .build/fuzz-<target>/crashes)" >&2
    exit 1
fi
echo "=== all fuzz targets passed"
