#!/usr/bin/env bash
# Quick side-by-side check of Apus against ONNX Runtime and PyTorch: resnet18, batch 1, 1 thread,
# the default release build, a few runs (a few minutes when builds and fixtures are cached).
# Fails (non-zero) when any engine's output disagrees with PyTorch's reference beyond 1e-4 of the
# output scale, or when any engine fails to run.
#   scripts/bench-quick.sh [OUT_DIR]        # results.md, results.json and plots go to OUT_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$root/scripts/setup-venv.sh")"
out="${1:-}"
if [[ -z "$out" ]]; then
    out="$(mktemp -d "${TMPDIR:-/tmp}/apus-bench-quick.XXXXXX")"
fi
# The binary scripts/test.sh built (a smoke run: the published runs build their own, with the
# Swift runtime linked in).
swift build -c release --product apus --package-path "$root" >&2
exec "$venv/bin/python" "$root/Benchmarks/compare/compare.py" --quick --out "$out" --binary "$root/.build/release/apus"
