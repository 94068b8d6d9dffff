"""Prints Docs/accuracy.md's table: every model fixture run by `apus run` at 1 and 2 threads
against the output PyTorch computed (max |apus - torch|, relative to max |torch|, top-5, and
whether 1 and 2 threads give the same bytes).

    python scripts/accuracy-table.py [FIXTURE_DIR] [APUS_BINARY]

FIXTURE_DIR defaults to `bash scripts/fixtures/models/cached.sh`, the binary to .build/release/apus.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fixtures = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
    ["bash", os.path.join(root, "scripts/fixtures/models/cached.sh")], check=True, capture_output=True,
    text=True).stdout.strip()
apus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, ".build/release/apus")

print("| model | max \\|apus − torch\\| | max \\|torch\\| | relative | top-5 | 1 = 2 threads |")
print("|---|---:|---:|---:|---|---|")
for name in sorted(os.listdir(fixtures)):
    d = os.path.join(fixtures, name)
    if not os.path.exists(os.path.join(d, "meta.json")):
        continue
    meta = json.load(open(os.path.join(d, "meta.json")))
    outputs = {}
    for threads in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [apus, "run", os.path.join(d, "model.onnx"), "--threads", str(threads), "--input",
                 f"{meta['input_name']}={d}/input_0.npy", "--output-dir", tmp], check=True, capture_output=True)
            outputs[threads] = np.load(os.path.join(tmp, meta["output_name"] + ".npy"))
    reference = np.load(os.path.join(d, "output_0.npy"))
    error = float(np.abs(outputs[1] - reference).max())
    scale = float(np.abs(reference).max())

    def top5(x):
        return np.argsort(-x.reshape(x.shape[0], -1), axis=1)[:, :5]

    same_top = bool((top5(outputs[1]) == top5(reference)).all())
    same_bytes = outputs[1].tobytes() == outputs[2].tobytes()
    print(f"| {name} | {error:.2e} | {scale:.3g} | {error / scale:.1e} | {'yes' if same_top else 'NO'} "
          f"| {'yes' if same_bytes else 'NO'} |")
