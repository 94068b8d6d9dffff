#!/usr/bin/env python3
"""Runs one peer engine (ONNX Runtime or PyTorch eager) in its own process for compare.py.

    peer_runner.py ort   --onnx MODEL.onnx --input X.npy --threads N [--warmup W] [--seconds S | --runs R]
    peer_runner.py torch --arch ARCH --state-dict SD.pt --input X.npy --threads N ...
    ... --save-output OUT.npy      # run once and save the output instead of timing

Like `apus bench --json`: the first result is announced on stderr ("first run: X ms") the moment
it exists, so the caller can time process start → first result; the timed runs go to stdout as
one JSON object. The measured call is the engine's plain inference call on a preloaded input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()


def peak_rss_bytes() -> int:
    """VmHWM of this process (ru_maxrss would keep the pre-exec image of a large parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["ort", "torch"])
    parser.add_argument("--onnx")
    parser.add_argument("--arch")
    parser.add_argument("--state-dict")
    parser.add_argument("--input", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--save-output")
    args = parser.parse_args()

    import numpy as np

    x_np = np.load(args.input)
    t_load0 = time.perf_counter()
    if args.engine == "ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        feeds = {input_name: x_np}

        def infer():
            return session.run(None, feeds)[0]

        version = ort.__version__
    else:
        import torch
        import torchvision

        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        model = getattr(torchvision.models, args.arch)(weights=None)
        model.load_state_dict(torch.load(args.state_dict, map_location="cpu", weights_only=True))
        model.eval()
        x = torch.from_numpy(x_np)

        def infer():
            with torch.no_grad():
                return model(x).numpy()

        version = torch.__version__
    load_s = time.perf_counter() - t_load0

    t0 = time.perf_counter()
    y = infer()
    first_s = time.perf_counter() - t0
    print(f"first run: {first_s * 1e3:.2f} ms", file=sys.stderr, flush=True)

    if args.save_output:
        np.save(args.save_output, np.asarray(y, dtype=np.float32))
        print(json.dumps({"saved": args.save_output}))
        return 0

    for _ in range(args.warmup):
        infer()
    latencies = []
    start = time.perf_counter()
    while True:
        if args.runs is not None and len(latencies) >= args.runs:
            break
        if args.runs is None and len(latencies) >= 3 and time.perf_counter() - start >= args.seconds:
            break
        t = time.perf_counter()
        infer()
        latencies.append(time.perf_counter() - t)
    print(json.dumps({
        "engine": args.engine,
        "version": version,
        "threads": args.threads,
        "loadMilliseconds": load_s * 1e3,
        "firstRunMilliseconds": first_s * 1e3,
        "latenciesMilliseconds": [v * 1e3 for v in latencies],
        "peakRSSBytes": peak_rss_bytes(),
        "pid": os.getpid(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
