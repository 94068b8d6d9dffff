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

# shellcheck source=lib/fuzz-run.sh
source "$root/scripts/lib/fuzz-run.sh"
fuzz_run "$package/artifact.dict"
