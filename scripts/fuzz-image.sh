#!/usr/bin/env bash
# Fuzzes image decoding (ImageDecoder.decode(data:options:) with a 4 MP pixel limit: JPEG via
# libjpeg, PNG via libpng) and, for images that decode, the torchvision classification
# preprocessing (PreprocessSpec.imageClassification), with libFuzzer under AddressSanitizer.
#
#   scripts/fuzz-image.sh [SECONDS]        # default 60
#
# A thrown ImageError is a pass; a crash, a leak, a hang (-timeout), or an allocation above
# -rss_limit_mb or -malloc_limit_mb fails. Crashing inputs are saved in $APUS_FUZZ_DIR/crashes
# (default .build/fuzz-image/crashes) and the script exits non-zero.
#
# Seeds: the tiny JPEG/PNG files in Fuzz/ImageDecoderFuzz/seeds (baseline, progressive, grayscale,
# CMYK JPEG; palette, tRNS, RGBA, gray+alpha, 1-bit, 16-bit, Adam7-interlaced PNG), written by
# Fuzz/ImageDecoderFuzz/make_seeds.py with Pillow.
#
# Environment: APUS_FUZZ_DIR (work folder), APUS_FUZZ_JOBS (parallel workers, default 1),
# APUS_FUZZ_MAX_LEN (default 8192), APUS_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
package="$root/Fuzz/ImageDecoderFuzz"
work="${APUS_FUZZ_DIR:-$root/.build/fuzz-image}"
jobs="${APUS_FUZZ_JOBS:-1}"
max_len="${APUS_FUZZ_MAX_LEN:-8192}"
mkdir -p "$work/corpus" "$work/seeds" "$work/crashes"

echo "== building the fuzz target (debug, -sanitize=fuzzer,address)"
# -parse-as-library: main.swift has no top-level code; its @_cdecl("ImageDecoderFuzz_main")
# function is what SwiftPM links as `main`, and it starts libFuzzer's driver.
# -Xcc: instrument the C decoder glue (Sources/CApusCodecs) too, for coverage and ASan; the
# system libjpeg/libpng are not instrumented (ASan still checks the memory they get from malloc).
flags=(-c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
    -Xcc -fsanitize=fuzzer-no-link,address)
if ! swift build --package-path "$package" "${flags[@]}" >"$work/build.log" 2>&1; then
    grep -vE "ld.gold: warning: Cannot export local symbol" "$work/build.log" >&2
    echo "== build failed" >&2
    exit 1
fi
binary="$(swift build --package-path "$package" "${flags[@]}" --show-bin-path)/ImageDecoderFuzz"
[ -x "$binary" ] || { echo "build failed: $binary missing" >&2; exit 1; }

cp "$package"/seeds/* "$work/seeds/"

# shellcheck source=lib/fuzz-run.sh
source "$root/scripts/lib/fuzz-run.sh"
fuzz_run "$package/image.dict"
