#!/usr/bin/env python3
"""Apus vs ONNX Runtime batch-1 latency (median, p99) on the fixture models, one run.

Usage: measure.py [--apus PATH] [--runs N] [--threads 1,2] [--models a,b] [--ops]
Run with the project venv's python (onnxruntime, numpy). ORT and Apus are timed alternately
per (model, threads) so that both see the same machine state.
"""
import argparse, json, os, subprocess, time
import numpy as np

def fixtures():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    return subprocess.check_output(["bash", os.path.join(root, "scripts/fixtures/models/cached.sh")], text=True).strip()

def ort_latency(model, x, threads, runs, warmup=5):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(warmup): s.run(None, {name: x})
    t = []
    c0 = time.process_time()
    for _ in range(runs):
        a = time.perf_counter(); s.run(None, {name: x}); t.append((time.perf_counter() - a) * 1e3)
    cpu = (time.process_time() - c0) * 1e3 / runs
    t.sort()
    return t[len(t) // 2], t[min(len(t) - 1, int(np.ceil(len(t) * 0.99)) - 1)], t[0], cpu

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--apus", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.build/release/apus"))
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet_b0")
    p.add_argument("--ops", action="store_true")
    p.add_argument("--no-ort", action="store_true")
    a = p.parse_args()
    root = fixtures()
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"{'model':16} {'thr':>3} {'ORT med':>8} {'ORT p99':>8} {'Apus med':>9} {'Apus p99':>9} {'ratio':>6} {'ORT min':>8} {'Apus min':>8} {'ratio':>6} {'ORT cpu':>7} {'Apuscpu':>7} {'ratio':>6}")
    for m in a.models.split(","):
        onnx = os.path.join(root, m, "model.onnx")
        npy = os.path.join(root, m, "input_0.npy")
        x = np.load(npy)
        for th in [int(t) for t in a.threads.split(",")]:
            om, op, omin, ocpu = (float("nan"),) * 4 if a.no_ort else ort_latency(onnx, x, th, a.runs)
            for binary in a.apus.split(","):
                cmd = [binary, "profile", onnx, "--threads", str(th), "--runs", str(a.runs), "--input", npy, "--json"]
                if a.ops: cmd.append("--ops")
                r = json.loads(subprocess.check_output(cmd, text=True).strip().splitlines()[-1])
                label = os.path.basename(binary)
                print(f"{m:16} {th:>3} {om:8.2f} {op:8.2f} {r['median_ms']:9.2f} {r['p99_ms']:9.2f} {r['median_ms']/om:6.2f} {omin:8.2f} {r.get('min_ms', float('nan')):8.2f} {r.get('min_ms', float('nan'))/omin:6.2f} {ocpu:7.2f} {r.get('cpu_ms', float('nan')):7.2f} {r.get('cpu_ms', float('nan'))/ocpu:6.2f}  {label} {r['blas']}", flush=True)
                if a.ops:
                    print("    " + ", ".join(f"{k} {v:.2f}" for k, v in r["ops_ms"].items()))

if __name__ == "__main__":
    main()
