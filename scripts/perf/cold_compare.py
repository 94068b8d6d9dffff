#!/usr/bin/env python3
"""Cold start, the comparison's way, for A/B work: process spawn → first result of one model,
for several `apus` binaries and ONNX Runtime, processes alternated round by round.

Usage (the project venv's python, from the repository root):

    python scripts/perf/cold_compare.py resnet50 --threads 2 --rounds 7 \\
        --artifact /tmp/pp/resnet50.apus OLD/apus .build-bench/release/apus [--no-ort]

Each round starts every binary once (`apus bench ARTIFACT --threads T --input x=… --warmup 0
--runs 1 --json`) and ONNX Runtime once (`Benchmarks/compare/peer_runner.py`, as compare.py
does), and times spawn → the "first run" line on stderr, as compare.py's cold start. It prints
each one's median, minimum and maximum and, with ONNX Runtime, the ratio of medians. The input
is the model fixture's (scripts/fixtures/models/cached.sh); the artifact is made by the first
binary (`apus convert`) unless --artifact names one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_to_first(cmd: list, env: dict) -> float:
    """Milliseconds from spawn to the child's "first run" line on stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    cold = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("first run"):
            cold = (time.perf_counter() - start) * 1e3
            break
    out, err = proc.communicate()
    if proc.returncode != 0 or cold is None:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-2000:]}")
    return cold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="fixture name, e.g. resnet50")
    parser.add_argument("binaries", nargs="+", type=Path, help="apus binaries to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--artifact", type=Path, help="the .apus file (default: converted by the first binary)")
    parser.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    args = parser.parse_args()

    fixtures = subprocess.run([ROOT / "scripts/fixtures/models/cached.sh", args.model], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    folder = Path(fixtures) / args.model
    onnx, sample = folder / "model.onnx", folder / "input_0.npy"
    artifact = args.artifact
    if artifact is None:
        artifact = Path(tempfile.mkdtemp(prefix="apus-cold-")) / f"{args.model}.apus"
        subprocess.run([args.binaries[0], "convert", onnx, "-o", artifact, "--prepack-for", "host"], check=True,
                       stdout=subprocess.DEVNULL)
    # The first line under "inputs:" of `apus inspect`, e.g. "  x: float32 [1, 3, 224, 224]".
    lines = subprocess.run([args.binaries[0], "inspect", artifact], check=True, stdout=subprocess.PIPE,
                           text=True).stdout.splitlines()
    name = lines[lines.index("inputs:") + 1].split(":")[0].strip()

    threads = str(args.threads)
    env = dict(os.environ)
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for binary in args.binaries:
            cmd = [binary, "bench", artifact, "--threads", threads, "--input", f"{name}={sample}", "--warmup", "0",
                   "--runs", "1", "--json"]
            runs.setdefault(str(binary), []).append(time_to_first(cmd, env))
        if not args.no_ort:
            cmd = [sys.executable, ROOT / "Benchmarks/compare/peer_runner.py", "ort", "--input", sample, "--threads",
                   threads, "--onnx", onnx, "--warmup", "0", "--seconds", "0.01"]
            peer_env = {**env, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
            runs.setdefault("ONNX Runtime", []).append(time_to_first(cmd, peer_env))
    print(f"{args.model}, {threads} thread(s), {args.rounds} alternated rounds: spawn → first result, ms")
    ort = statistics.median(runs["ONNX Runtime"]) if "ONNX Runtime" in runs else None
    for label, values in runs.items():
        median = statistics.median(values)
        ratio = f"  {median / ort:.3f} of ONNX Runtime's" if ort and label != "ONNX Runtime" else ""
        print(f"  {label}: median {median:.1f}  min {min(values):.1f}  max {max(values):.1f}{ratio}")


if __name__ == "__main__":
    main()
