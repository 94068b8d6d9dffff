#!/usr/bin/env bash
# The test command: prepares the cached Python environment and fixtures (outside the clone, under
# ${APUS_CACHE:-~/.cache/apus}), then runs the Swift test suite in release mode (model-sized tests
# are far too slow in debug builds) and the exporter's Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(bash scripts/setup-venv.sh)"
export APUS_PYTHON="$venv/bin/python"
if [[ -x scripts/fixtures/models/cached.sh ]]; then
    APUS_MODEL_FIXTURES="$(bash scripts/fixtures/models/cached.sh)"
    export APUS_MODEL_FIXTURES
fi
if [[ -x scripts/fetch-demo-assets.sh ]]; then
    APUS_DEMO_DIR="$(bash scripts/fetch-demo-assets.sh)"
    export APUS_DEMO_DIR
fi
APUS_ARTIFACT_FIXTURES="$(bash scripts/fixtures/artifacts/cached.sh)"
APUS_DEMO_ARTIFACT="$(bash scripts/demo.sh --print-artifact)"
export APUS_ARTIFACT_FIXTURES APUS_DEMO_ARTIFACT
swift build -c release --product apus
# The README demo must keep working: PyTorch's top-1 for these photos.
demo_output="$(bash scripts/demo.sh)"
echo "$demo_output"
grep -q "Egyptian cat" <<<"$demo_output" && grep -q "espresso" <<<"$demo_output"
swift test -c release "$@"
"$APUS_PYTHON" -m pip install -q --disable-pip-version-check ./exporter
"$APUS_PYTHON" -m pytest exporter/tests -q
# The side-by-side benchmark in quick mode (fails if any engine disagrees with PyTorch).
bash scripts/bench-quick.sh
# The example inference service: real server, real HTTP, tritonclient as an independent client.
bash scripts/test-service.sh
