"""Checks a running apus-serve with NVIDIA's own Open Inference Protocol client (tritonclient.http).

For every .apus file given: the server is live and ready, the model's metadata names its inputs and
outputs with datatypes and shapes, and inferring each golden example stored in the file reproduces
the stored (PyTorch-computed) outputs within the file's tolerance. The goldens are read straight from
the file with the small reader below (format: Docs/artifact-format.md), not through the server.

usage: python triton_check.py HOST:PORT MODEL.apus...
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

DTYPES = {"float32": ("<f4", "FP32"), "float16": ("<f2", "FP16"), "int64": ("<i8", "INT64"),
          "int32": ("<i4", "INT32"), "int8": ("i1", "INT8"), "uint8": ("u1", "UINT8"), "bool": ("?", "BOOL")}


def read_goldens(path):
    data = Path(path).read_bytes()
    assert data[:4] == b"APUS", f"{path}: not an .apus file"
    (length,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + length])
    start = (16 + length + 63) // 64 * 64

    def tensor(name):
        entry = header["tensors"][name]
        dtype = np.dtype(DTYPES[entry["dtype"]][0])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        return np.frombuffer(data, dtype=dtype, count=count, offset=start + entry["offset"]).reshape(entry["shape"])

    goldens = []
    for golden in header.get("golden") or []:
        goldens.append({
            "inputs": {k: tensor(v) for k, v in golden["inputs"].items()},
            "outputs": {k: tensor(v) for k, v in golden["outputs"].items()},
            "tolerance": golden["tolerance"],
        })
    return header, goldens


def main():
    url, paths = sys.argv[1], sys.argv[2:]
    client = httpclient.InferenceServerClient(url=url, connection_timeout=60, network_timeout=120)
    failures = 0
    passed = 0

    def check(condition, message):
        nonlocal failures, passed
        if condition:
            passed += 1
        else:
            failures += 1
            print(f"FAIL: {message}")

    check(client.is_server_live(), "server is live")
    check(client.is_server_ready(), "server is ready")
    for path in paths:
        name = Path(path).stem
        header, goldens = read_goldens(path)
        check(client.is_model_ready(name), f"{name}: model ready")
        metadata = client.get_model_metadata(name)
        check(metadata["name"] == name and metadata["platform"] == "apus", f"{name}: metadata {metadata}")
        declared = {i["name"]: i for i in header["graph"]["inputs"]}
        for entry in metadata["inputs"]:
            spec = declared.get(entry["name"])
            check(spec is not None, f"{name}: metadata input {entry['name']} is declared in the file")
            if spec:
                shape = [d if isinstance(d, int) else -1 for d in spec["shape"]]
                check(entry["shape"] == shape, f"{name}: input shape {entry['shape']} vs {shape}")
                check(entry["datatype"] == DTYPES[spec["dtype"]][1], f"{name}: datatype {entry['datatype']}")
        check(len(goldens) > 0, f"{name}: the file has golden examples")
        for index, golden in enumerate(goldens):
            inputs = []
            for input_name, value in golden["inputs"].items():
                tensor = httpclient.InferInput(input_name, list(value.shape), DTYPES[str(value.dtype.name)][1]
                                               if value.dtype.name in DTYPES else "FP32")
                tensor.set_data_from_numpy(np.ascontiguousarray(value), binary_data=False)
                inputs.append(tensor)
            outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in golden["outputs"]]
            result = client.infer(name, inputs, outputs=outputs, request_id=f"golden-{index}")
            check(result.get_response()["id"] == f"golden-{index}", f"{name}: request id echoed")
            for output_name, expected in golden["outputs"].items():
                actual = result.as_numpy(output_name)
                check(actual is not None and actual.shape == expected.shape,
                      f"{name} golden {index} {output_name}: shape {None if actual is None else actual.shape} vs {expected.shape}")
                if actual is None or actual.shape != expected.shape:
                    continue
                error = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
                scale = float(np.max(np.abs(expected.astype(np.float64))))
                allowed = golden["tolerance"]["absolute"] + golden["tolerance"]["relative"] * scale
                check(error <= allowed, f"{name} golden {index} {output_name}: max error {error} > allowed {allowed}")
                check(int(np.argmax(actual)) == int(np.argmax(expected)), f"{name} golden {index}: same top-1")
                print(f"{name} golden {index} {output_name}: max error {error:.3g} (allowed {allowed:.3g})")
    try:
        client.get_model_metadata("no_such_model")
        check(False, "unknown model raises")
    except httpclient.InferenceServerException as error:
        check("unknown model" in str(error), f"unknown model error: {error}")
    print(f"tritonclient: {passed} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
