#!/usr/bin/env bash
# Fuzzes the ONNX reader (ONNXReader.read(data:), readTensor(data:)) and, for models that parse,
# GraphRunner (validation, optimizer, operators; small graphs are planned and run once on zeros
# under a 64 MB budget) with libFuzzer under AddressSanitizer.
#
#   scripts/fuzz-onnx.sh [SECONDS]        # default 60
#
# A thrown ONNXError/GraphError is a pass; a crash, a hang (-timeout), or an allocation above
# -rss_limit_mb or -malloc_limit_mb fails. Crashing inputs are saved in $APUS_FUZZ_DIR/crashes
# (default .build/fuzz-onnx/crashes) and the script exits non-zero.
#
# Seeds: up to APUS_FUZZ_SEEDS (default 200) models under 4 KB from the ONNX node tests
# (/usr/share/libonnx-testdata/data/node/*/model.onnx, or APUS_ONNX_TESTDATA) and their
# test_data_set_0/*.pb tensors.
#
# Environment: APUS_FUZZ_DIR (work folder), APUS_FUZZ_JOBS (parallel workers, default 1),
# APUS_FUZZ_MAX_LEN (default 8192), APUS_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
package="$root/Fuzz/ONNXReaderFuzz"
work="${APUS_FUZZ_DIR:-$root/.build/fuzz-onnx}"
jobs="${APUS_FUZZ_JOBS:-1}"
max_len="${APUS_FUZZ_MAX_LEN:-8192}"
testdata="${APUS_ONNX_TESTDATA:-/usr/share/libonnx-testdata/data/node}"
seed_count="${APUS_FUZZ_SEEDS:-200}"
mkdir -p "$work/corpus" "$work/seeds" "$work/crashes"

echo "== building the fuzz target (debug, -sanitize=fuzzer,address)"
# -parse-as-library: main.swift has no top-level code; its @_cdecl("ONNXReaderFuzz_main")
# function is what SwiftPM links as `main`, and it starts libFuzzer's driver.
if ! swift build --package-path "$package" -c debug \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$work/build.log" 2>&1; then
    grep -vE "ld.gold: warning: Cannot export local symbol" "$work/build.log" >&2
    echo "== build failed" >&2
    exit 1
fi
binary="$(swift build --package-path "$package" -c debug -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -parse-as-library --show-bin-path)/ONNXReaderFuzz"
[ -x "$binary" ] || { echo "build failed: $binary missing" >&2; exit 1; }

if [ -z "$(ls -A "$work/seeds")" ]; then
    if [ -d "$testdata" ]; then
        echo "== copying up to $seed_count small node-test models (< 4 KB) and their tensors as seeds"
        # Sorted, then every k-th, so the seeds span all operators (not just the first letters of
        # the alphabet) and are the same on every machine with the same test data.
        models=$(find "$testdata" -mindepth 2 -maxdepth 2 -name model.onnx -size -4k | sort)
        total=$(echo "$models" | grep -c . || true)
        for model in $(echo "$models" | awk -v n="$seed_count" -v t="$total" \
            't <= n || int((NR - 1) * n / t) != int(NR * n / t)'); do
            name="$(basename "$(dirname "$model")")"
            cp "$model" "$work/seeds/$name.onnx"
            for pb in "$(dirname "$model")"/test_data_set_0/*.pb; do
                [ -f "$pb" ] && [ "$(stat -c %s "$pb")" -le "$max_len" ] && cp "$pb" "$work/seeds/$name.$(basename "$pb")"
            done
        done
        echo "   $(ls "$work/seeds" | wc -l) seed files"
    else
        echo "== no ONNX test data at $testdata; starting from an empty corpus" >&2
    fi
fi

# shellcheck source=lib/fuzz-run.sh
source "$root/scripts/lib/fuzz-run.sh"
fuzz_run "$package/onnx.dict"
