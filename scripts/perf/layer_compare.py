#!/usr/bin/env python3
"""Layer by layer: Apus against ONNX Runtime on one model, one thread count.

Usage (the project venv's python, from the repository root):

    python scripts/perf/layer_compare.py mobilenet_v2 [--threads 1] [--runs 300] [--top 30]

It takes the model fixture's ONNX file (scripts/fixtures/models/cached.sh), converts it with
`apus convert` into a temporary artifact, then in one sitting:

1. runs ONNX Runtime (default optimizations, sequential, intra-op threads = --threads) with its
   profiler on, and takes each node's median kernel time;
2. runs `apus bench --profile --json` on the artifact for the same thread count;
3. maps every ONNX Runtime node (which fuses a Conv with its activation and residual Add, and
   renames it after the fused output, e.g. `hardtanh_2_nchwc`) back to the Conv or Gemm node of
   the ONNX graph it came from, so that both engines' times land on the same layer;
4. prints the layers sorted by Apus − ONNX Runtime, with Apus's GEMM shape for each (a step
   Apus joined from two layers, `a+b`, against the sum of ONNX Runtime's two).

ONNX Runtime's own nodes that have no Apus counterpart (layout reorders) and Apus's standalone
nodes that ONNX Runtime fused away show up with the other side at 0. ONNX Runtime's profiler
adds some overhead of its own: compare layers, not the totals, with `apus bench` and compare.py.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def repository_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fixture_directory(model):
    root = repository_root()
    fixtures = os.environ.get("APUS_MODEL_FIXTURES") or subprocess.check_output(
        ["bash", os.path.join(root, "scripts/fixtures/models/cached.sh")], text=True).strip()
    return os.path.join(fixtures, model)


def ort_node_times(onnx_path, x, threads, runs):
    """Median kernel time per ONNX Runtime node, in ms, and the median run time."""
    import numpy as np
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(scratch, "ort")
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(20):
            session.run(None, {name: x})
        latencies = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, {name: x})
            latencies.append(time.perf_counter() - start)
        events = json.load(open(session.end_profiling()))
    per_node = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"][: -len("_kernel_time")]].append(event["dur"] / 1000.0)
    return {node: float(np.median(times)) for node, times in per_node.items()}, float(np.median(latencies)) * 1e3


def layer_of(ort_name, producers, nodes_by_name):
    """The ONNX Conv or Gemm node behind an ONNX Runtime node name, or the name itself."""
    name = re.sub(r"_nchwc$", "", ort_name).split("/")[0]
    tensor = name
    if name in nodes_by_name and name not in producers:
        node = nodes_by_name[name]
        if node.op_type in ("Conv", "Gemm"):
            return node.name
        tensor = node.input[0] if node.input else None
    # Walk back through activations and Adds (preferring the Conv input) to the producing layer.
    for _ in range(4):
        if tensor not in producers:
            break
        node = producers[tensor]
        if node.op_type in ("Conv", "Gemm"):
            return node.name
        inputs = [i for i in node.input if i in producers]
        convs = [i for i in inputs if producers[i].op_type == "Conv"]
        tensor = convs[-1] if convs else (inputs[0] if inputs else None)
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model fixture name (resnet50, mobilenet_v2, efficientnet_b0, ...)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300, help="ONNX Runtime runs (default 300)")
    parser.add_argument("--seconds", type=float, default=4, help="apus bench seconds (default 4)")
    parser.add_argument("--top", type=int, default=30, help="layers to print (default 30; 0: all)")
    parser.add_argument("--apus", default=os.path.join(repository_root(), ".build/release/apus"))
    args = parser.parse_args()

    import numpy as np
    import onnx
    directory = fixture_directory(args.model)
    onnx_path = os.path.join(directory, "model.onnx")
    x = np.load(os.path.join(directory, "input_0.npy"))
    graph = onnx.load(onnx_path, load_external_data=False).graph
    producers = {output: node for node in graph.node for output in node.output}
    nodes_by_name = {node.name: node for node in graph.node}

    env = dict(os.environ)
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(variable, None)
    with tempfile.TemporaryDirectory() as scratch:
        artifact = os.path.join(scratch, "model.apus")
        subprocess.run([args.apus, "convert", onnx_path, "-o", artifact], check=True, capture_output=True, env=env)
        ort_times, ort_median = ort_node_times(onnx_path, x, args.threads, args.runs)
        report = json.loads(subprocess.check_output(
            [args.apus, "bench", artifact, "--threads", str(args.threads), "--seconds", str(args.seconds),
             "--profile", "--json"], env=env))

    ort_layers = collections.defaultdict(float)
    for name, ms in ort_times.items():
        ort_layers[layer_of(name, producers, nodes_by_name)] += ms
    apus_layers = {}
    for node in report["profile"]["nodes"]:
        gemm = node.get("gemm")
        shape = ""
        if gemm:
            shape = f"{gemm['m']}×{gemm['n']}×{gemm['k']}" + (f" ({gemm['groups']} groups)" if gemm["groups"] > 1 else "")
        apus_layers[node["node"]] = (node["milliseconds"], node["opType"], shape)

    # A step Apus's planner joined from several layers is named "a+b": compare it with their sum.
    for joined in [name for name in apus_layers if "+" in name]:
        ort_layers[joined] = sum(ort_layers.pop(part, 0.0) for part in joined.split("+"))
    rows = []
    for layer in set(ort_layers) | set(apus_layers):
        apus_ms, op_type, shape = apus_layers.get(layer, (0.0, "", ""))
        rows.append((apus_ms - ort_layers.get(layer, 0.0), layer, op_type, shape, apus_ms, ort_layers.get(layer, 0.0)))
    rows.sort(reverse=True)
    apus_total = sum(r[4] for r in rows)
    ort_total = sum(r[5] for r in rows)
    print(f"{args.model}, {args.threads} thread(s): sum of layer times Apus {apus_total:.3f} ms, "
          f"ONNX Runtime {ort_total:.3f} ms (its median run with the profiler on: {ort_median:.3f} ms; "
          f"Apus median run: {report['medianMilliseconds']:.3f} ms)")
    print(f"{'layer':<28} {'Apus op':<12} {'Apus ms':>8} {'ORT ms':>8} {'Apus−ORT':>9}  GEMM M×N×K")
    shown = rows if args.top <= 0 else rows[: args.top // 2] + rows[-(args.top - args.top // 2):]
    for index, (difference, layer, op_type, shape, apus_ms, ort_ms) in enumerate(shown):
        if args.top > 0 and index == args.top // 2 and len(rows) > args.top:
            print(f"{'…':<28}")
        print(f"{layer[:28]:<28} {op_type:<12} {apus_ms:8.3f} {ort_ms:8.3f} {difference:+9.3f}  {shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
