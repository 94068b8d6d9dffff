#!/usr/bin/env python3
"""Times every Conv of a fixture model as one plain single-threaded OpenBLAS sgemm
(M = out channels per group, K = in channels per group × kH × kW, N = outH × outW; groups
calls), the reference for "conv layers ≥ 70% of sgemm GFLOP/s". Loads the system
libopenblas.so.0 via ctypes, so OPENBLAS_CORETYPE applies as for Apus.

Usage: sgemm_convs.py MODEL.onnx [--runs N]
Prints total sgemm ms, total FLOPs, GFLOP/s (excluding depthwise convs, which are not sgemm).
"""
import ctypes, sys, time, argparse
import numpy as np, onnx
from onnx import shape_inference

def convs(path):
    m = shape_inference.infer_shapes(onnx.load(path))
    shapes = {}
    for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type != "Conv": continue
        g = 1
        for a in n.attribute:
            if a.name == "group": g = a.i
        w = inits[n.input[1]]; y = shapes[n.output[0]]
        M = w[0] // g; K = w[1] * w[2] * w[3]; N = y[2] * y[3]
        out.append((n.name, g, M, K, N))
    return out

def main():
    p = argparse.ArgumentParser(); p.add_argument("model"); p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_set_num_threads(1)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core = lib.openblas_get_corename().decode()
    total_ms = 0.0; total_flops = 0; total_cpu = 0.0
    for name, g, M, K, N in convs(a.model):
        if g > 1 and M == 1 and K <= 49: continue  # depthwise
        A = np.random.rand(M, K).astype(np.float32); B = np.random.rand(K, N).astype(np.float32)
        C = np.zeros((M, N), np.float32)
        fp = ctypes.POINTER(ctypes.c_float)
        args = (101, 111, 111, M, N, K, ctypes.c_float(1), A.ctypes.data_as(fp), K, B.ctypes.data_as(fp), N,
                ctypes.c_float(0), C.ctypes.data_as(fp), N)
        for _ in range(2): lib.cblas_sgemm(*args)
        t = []
        c0 = time.process_time()
        for _ in range(a.runs):
            s = time.perf_counter()
            for _ in range(g): lib.cblas_sgemm(*args)
            t.append(time.perf_counter() - s)
        total_cpu += (time.process_time() - c0) * 1e3 / a.runs
        ms = sorted(t)[len(t) // 2] * 1e3
        total_ms += ms; total_flops += 2 * M * K * N * g
    print(f"{a.model}: core {core}: sgemm of non-depthwise convs {total_ms:.2f} ms, {total_flops/1e9:.3f} GFLOP, {total_flops/total_ms/1e6:.1f} GFLOP/s; CPU {total_cpu:.2f} ms, {total_flops/total_cpu/1e6:.1f} GFLOP/s of CPU time")

main()
