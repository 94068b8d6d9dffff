#!/usr/bin/env python3
"""Times the ImageNet preprocessing of a 12-megapixel JPEG: PIL + torchvision vs Apus.

Writes (once, cached) a 4000x3000 JPEG, quality 90, made by upscaling a real photo
(scikit-image's `coffee`) with PIL, into ~/.cache/apus/prepbench-<hash>/. Then, in one run:

- PIL + torchvision: `weights.transforms()(Image.open(p).convert("RGB"))` (file read included),
  with ResNet50_Weights.IMAGENET1K_V1 (resize 256 bilinear, crop 224, normalize);
- Apus: `apus preprocess-bench IMAGE` (file read + decode + the same preset, timed inside the Swift
  process after a warm-up run), which also writes its last tensor so both can be compared.

The sides alternate in --rounds rounds; medians over all runs of each side.

Usage: python scripts/bench/preprocess_bench.py [--apus .build/release/apus] [--runs 30]
"""
import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image


def make_image(width: int, height: int, quality: int, noise: float) -> Path:
    key = hashlib.sha256(f"coffee-{width}x{height}-q{quality}-n{noise}-v1".encode()).hexdigest()[:12]
    folder = Path.home() / ".cache" / "apus" / f"prepbench-{key}"
    path = folder / f"coffee_{width}x{height}_q{quality}.jpg"
    if path.exists():
        return path
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(skimage.data.coffee()).resize((width, height), Image.Resampling.LANCZOS)
    if noise > 0:  # optional sensor-like noise, for a file with realistic entropy
        rng = np.random.default_rng(0)
        a = np.asarray(photo).astype(np.float32) + rng.normal(0, noise, (height, width, 3))
        photo = Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))
    tmp = path.with_suffix(".tmp")
    photo.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apus", default=".build/release/apus")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per side, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.0, help="stddev of added noise (0 = plain upscale)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    path = make_image(4000, 3000, 90, args.noise)
    transform = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()  # resize 256, crop 224
    print(f"image: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print(f"uptime: {os.popen('uptime').read().strip()}")

    def pil_once():
        with Image.open(path) as im:
            return transform(im.convert("RGB"))

    reference = pil_once()
    out = path.parent / "apus_tensor.f32"
    # Alternate the two sides in rounds so load from other processes hits both alike.
    pil_times, apus_times = [], []
    per_round = max(1, args.runs // args.rounds)
    for _ in range(args.rounds):
        for _ in range(per_round):
            t0 = time.perf_counter()
            pil_once()
            pil_times.append((time.perf_counter() - t0) * 1000)
        command = [args.apus, "preprocess-bench", str(path), "--runs", str(per_round), "--output", str(out),
                   "--print-times"]
        text = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        for line in text.splitlines():
            if line.startswith("times_ms"):
                apus_times += [float(v) for v in line.split()[1:]]
    ours = np.fromfile(out, dtype=np.float32).reshape(reference.shape)
    diff = float(np.abs(ours - reference.numpy()).max())
    apus_median = statistics.median(apus_times)
    pil_median = statistics.median(pil_times)
    print(f"PIL+torchvision: median {pil_median:.1f} ms (min {min(pil_times):.1f}, max {max(pil_times):.1f}, "
          f"{args.runs} runs; Pillow {Image.__version__}, torchvision {torchvision.__version__})")
    print(f"apus:            median {apus_median:.1f} ms (min {min(apus_times):.1f}, max {max(apus_times):.1f}, "
          f"{len(apus_times)} runs)")
    print(f"ratio PIL/apus:  {pil_median / apus_median:.2f}x")
    print(f"max |apus - torchvision| = {diff:.3g}")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    if diff > 1e-6:
        sys.exit("tensors differ")


if __name__ == "__main__":
    main()
