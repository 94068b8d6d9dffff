#!/usr/bin/env python3
"""Loading a >= 1 GB model: Apus (.apus, memory-mapped) vs ONNX Runtime (.onnx), in one run.

Builds (once, cached in ~/.cache/apus/large-<hash>/) a wide MLP with seeded random weights,
4 x Linear(8192, 8192) with ReLU between (1.07 GB of float32), exported with apus_export to
model.apus plus the intermediate model.onnx (+ model.onnx.data). Then, each in a fresh process:

- apus:  `apus load-bench model.apus --sleep S` prints load time, VmRSS after load, first-run
  latency and VmRSS after it, a second run's latency, then sleeps so the process can be inspected;
- ORT:   a python process doing the same with onnxruntime.InferenceSession;
- sharing: two apus processes alive at once; RSS and PSS of each from /proc/PID/smaps_rollup
  (PSS splits shared pages between the processes that map them).

Usage: PYTHONPATH=exporter/src python scripts/bench/large_model.py [--apus .build/release/apus]
"""
import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LAYERS, WIDTH, SEED = 4, 8192, 0
REPO = Path(__file__).resolve().parents[2]


def build() -> Path:
    key = hashlib.sha256(f"mlp-{LAYERS}x{WIDTH}-seed{SEED}-v1".encode()).hexdigest()[:12]
    folder = Path.home() / ".cache" / "apus" / f"large-{key}"
    if (folder / "model.apus").exists() and (folder / "model.onnx").exists():
        return folder
    import torch

    sys.path.insert(0, str(REPO / "exporter" / "src"))
    import apus_export

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    layers = []
    for i in range(LAYERS):
        layers.append(torch.nn.Linear(WIDTH, WIDTH))
        if i + 1 < LAYERS:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():  # keep activations O(1) through the layers
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0, (1.0 / WIDTH) ** 0.5)
    example = torch.randn(1, WIDTH, generator=torch.Generator().manual_seed(SEED))
    t0 = time.perf_counter()
    apus_export.export(model, example, folder / "model.apus.tmp", golden=2, onnx_path=folder / "model.onnx",
                       metadata={"purpose": "large-artifact loading benchmark"})
    os.replace(folder / "model.apus.tmp", folder / "model.apus")
    print(f"exported in {time.perf_counter() - t0:.1f} s")
    return folder


ORT_CHILD = r"""
import sys, time
import numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
t0 = time.perf_counter()
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[3])
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
print(f"load_ms {(time.perf_counter() - t0) * 1000:.2f}", flush=True)
print(f"load_rss_kb {rss()}", flush=True)
inp = session.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
x = ((np.arange(int(np.prod(shape))) % 17) / 17 - 0.5).astype(np.float32).reshape(shape)
t0 = time.perf_counter()
out = session.run(None, {inp.name: x})[0]
print(f"first_run_ms {(time.perf_counter() - t0) * 1000:.2f}", flush=True)
print(f"run_rss_kb {rss()}", flush=True)
t0 = time.perf_counter()
session.run(None, {inp.name: x})
print(f"second_run_ms {(time.perf_counter() - t0) * 1000:.2f}", flush=True)
print(f"output_head {out.reshape(-1)[:4].tolist()}", flush=True)
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""


def smaps_rollup(pid: int) -> dict:
    values = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "kB":
            values[parts[0].rstrip(":")] = int(parts[1])
    return values


def start(command: list) -> tuple:
    """Starts a measured process and reads its report up to "ready"."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    report = {}
    for line in process.stdout:
        line = line.strip()
        if line == "ready":
            break
        key, _, value = line.partition(" ")
        report[key] = value
    return process, report


def stop(process) -> None:
    process.terminate()
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apus", default=str(REPO / ".build" / "release" / "apus"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per runtime (medians)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    folder = build()
    apus_file, onnx_file = folder / "model.apus", folder / "model.onnx"
    size = apus_file.stat().st_size
    onnx_size = onnx_file.stat().st_size + (folder / "model.onnx.data").stat().st_size
    print(f"model: {apus_file} ({size / 1e9:.3f} GB); ONNX {onnx_size / 1e9:.3f} GB")
    print(f"machine: {os.cpu_count()} CPUs, uptime: {os.popen('uptime').read().strip()}")

    # Reading the whole file (page cache warm after the first read) — what a copying loader pays.
    reads = []
    chunk = bytearray(64 << 20)
    for _ in range(3):
        t0 = time.perf_counter()
        with open(apus_file, "rb", buffering=0) as f:
            while f.readinto(chunk):
                pass
        reads.append((time.perf_counter() - t0) * 1000)
    print(f"read whole .apus file (warm page cache): median {statistics.median(reads):.0f} ms")

    runtimes = {
        "apus": lambda: [args.apus, "load-bench", str(apus_file), "--threads", str(args.threads), "--sleep", "60"],
        "onnxruntime": lambda: [args.python, "-c", ORT_CHILD, str(onnx_file), "60", str(args.threads)],
    }
    results = {}
    for name, command in runtimes.items():
        rows = []
        for _ in range(args.repeats):
            process, report = start(command())
            roll = smaps_rollup(process.pid)
            stop(process)
            report["pss_kb"] = roll.get("Pss", 0)
            rows.append(report)
        results[name] = rows
        med = lambda key: statistics.median(float(r[key]) for r in rows)  # noqa: E731
        print(f"{name:12s} load {med('load_ms'):8.1f} ms   RSS after load {med('load_rss_kb') / 1024:7.1f} MB   "
              f"first run {med('first_run_ms'):8.1f} ms   RSS after run {med('run_rss_kb') / 1024:7.1f} MB   "
              f"second run {med('second_run_ms'):6.1f} ms   "
              f"(median of {len(rows)}; output head {rows[0].get('output_head')})")

    # Two apus processes at once: the weights are the same file pages, counted once.
    first, _ = start(runtimes["apus"]())
    second, _ = start(runtimes["apus"]())
    a, b = smaps_rollup(first.pid), smaps_rollup(second.pid)
    stop(first)
    stop(second)
    print(f"two apus processes: RSS {a['Rss'] / 1024:.1f} + {b['Rss'] / 1024:.1f} MB, "
          f"PSS {a['Pss'] / 1024:.1f} + {b['Pss'] / 1024:.1f} MB, "
          f"anonymous (Private_Dirty) {a.get('Private_Dirty', 0) / 1024:.1f} + {b.get('Private_Dirty', 0) / 1024:.1f} MB")
    first, _ = start(runtimes["onnxruntime"]())
    second, _ = start(runtimes["onnxruntime"]())
    a, b = smaps_rollup(first.pid), smaps_rollup(second.pid)
    stop(first)
    stop(second)
    print(f"two ORT processes:  RSS {a['Rss'] / 1024:.1f} + {b['Rss'] / 1024:.1f} MB, "
          f"PSS {a['Pss'] / 1024:.1f} + {b['Pss'] / 1024:.1f} MB, "
          f"anonymous (Private_Dirty) {a.get('Private_Dirty', 0) / 1024:.1f} + {b.get('Private_Dirty', 0) / 1024:.1f} MB")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
