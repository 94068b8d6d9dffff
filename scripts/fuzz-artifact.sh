#!/usr/bin/env bash
# Fuzzes the .apus reader (ArtifactReader.read(data:)) with libFuzzer under AddressSanitizer.
#
#   scripts/fuzz-artifact.sh [SECONDS]        # default 60
#
# A thrown ArtifactError is a pass; a crash, a hang (-timeout), an allocation above -rss_limit_mb
# or -malloc_limit_mb, or an accepted file that does not survive a rewrite (see
# Fuzz/ArtifactReaderFuzz/Sources/ArtifactReaderFuzz/main.swift) fails. Crashing inputs are saved
# in $APUS_FUZZ_DIR/crashes (default .build/fuzz-artifact/crashes) and the script exits non-zero.
#
# Environment: APUS_FUZZ_DIR (work folder), APUS_FUZZ_JOBS (parallel workers, default 1),
# APUS_FUZZ_MAX_LEN (default 16384), APUS_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
package="$root/Fuzz/ArtifactReaderFuzz"
work="${APUS_FUZZ_DIR:-$root/.build/fuzz-artifact}"
jobs="${APUS_FUZZ_JOBS:-1}"
max_len="${APUS_FUZZ_MAX_LEN:-16384}"
mkdir -p "$work/corpus" "$work/seeds" "$work/crashes"

echo "== building the fuzz target (debug, -sanitize=fuzzer,address)"
# -parse-as-library: main.swift has no top-level code; its @_cdecl("ArtifactReaderFuzz_main")
# function is what SwiftPM links as `main`, and it starts libFuzzer's driver.
if ! swift build --package-path "$package" -c debug \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$work/build.log" 2>&1; then
    grep -vE "ld.gold: warning: Cannot export local symbol" "$work/build.log" >&2
    echo "== build failed" >&2
    exit 1
fi
binary="$(swift build --package-path "$package" -c debug -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -parse-as-library --show-bin-path)/ArtifactReaderFuzz"
[ -x "$binary" ] || { echo "build failed: $binary missing" >&2; exit 1; }

echo "== writing seed artifacts"
APUS_FUZZ_WRITE_SEEDS="$work/seeds" "$binary"

echo "== fuzzing for ${seconds}s ($jobs job(s)); corpus $work/corpus"
log="$work/fuzz.log"
parallel=""
if [ "$jobs" -gt 1 ]; then
    # libFuzzer's -jobs mode writes fuzz-<n>.log into the current folder.
    parallel="-jobs=$jobs -workers=$jobs"
    cd "$work"
    rm -f "$work"/fuzz-*.log
fi
set +e
# shellcheck disable=SC2086
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}" \
"$binary" "$work/corpus" "$work/seeds" \
    -dict="$package/artifact.dict" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -artifact_prefix="$work/crashes/" -print_final_stats=1 \
    $parallel ${APUS_FUZZ_ARGS:-} >"$log" 2>&1
status=$?
set -e
if [ "$jobs" -gt 1 ]; then cat "$work"/fuzz-*.log >>"$log" 2>/dev/null || true; fi

grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|Done [0-9]+ runs)" "$log" | tail -12
crashes=$(find "$work/crashes" -type f | wc -l)
if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    echo "== FAILED (exit $status, $crashes crashing input(s) in $work/crashes); log: $log" >&2
    grep -E "ERROR|SUMMARY|==[0-9]+==|Fatal|abort|does not survive|not stable" "$log" | head -20 >&2
    exit 1
fi
echo "== no crashes; log: $log"
