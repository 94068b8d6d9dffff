#!/usr/bin/env python3
"""Splits `apus profile --ops` step times of a model by convolution kind (depthwise, 1×1,
k×k) using the ONNX graph's attributes. Usage: conv_split.py APUS MODEL.onnx [THREADS]"""
import re, subprocess, sys, collections
import onnx

apus, model = sys.argv[1], sys.argv[2]
threads = sys.argv[3] if len(sys.argv) > 3 else "1"
m = onnx.load(model)
inits = {i.name: list(i.dims) for i in m.graph.initializer}
kind = {}
for n in m.graph.node:
    if n.op_type != "Conv": continue
    g = next((a.i for a in n.attribute if a.name == "group"), 1)
    w = inits.get(n.input[1], [0, 0, 0, 0])
    kind[n.name] = "depthwise" if g > 1 and w[1] == 1 else (f"{w[2]}x{w[3]}" + (f" g{g}" if g > 1 else ""))
out = subprocess.run([apus, "profile", model, "--threads", threads, "--runs", "20", "--ops", "--steps", "100000"],
                     capture_output=True, text=True)
totals = collections.Counter(); counts = collections.Counter()
for line in out.stderr.splitlines():
    r = re.match(r"\s*([\d.]+) ms\s+(\S+) (\S+) ->", line)
    if not r: continue
    ms, op, node = float(r[1]), r[2], r[3]
    k = kind.get(node, op)
    totals[k] += ms; counts[k] += 1
print(out.stdout.splitlines()[0])
for k, v in totals.most_common(): print(f"  {k:12} {v:8.3f} ms {counts[k]:3d} steps")
