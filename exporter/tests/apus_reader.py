"""A minimal, independent `.apus` v1 reader for the tests (does not import apus_export).

It checks the layout rules of the format (magic, version, alignment, offsets, lengths, zero
padding, no overlap, file size, SHA-256, graph well-formedness) and returns the header and numpy
views of every tensor. It also rebuilds an ONNX model from the header, so that onnxruntime can
check that the graph written into the artifact is complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np

DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int64": np.dtype("<i8"),
          "int32": np.dtype("<i4"), "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "bool": np.dtype("?")}


class Artifact:
    def __init__(self, header: dict, tensors: dict, header_bytes: bytes, file_size: int):
        self.header = header
        self.tensors = tensors
        self.header_bytes = header_bytes
        self.file_size = file_size

    @property
    def graph(self) -> dict:
        return self.header["graph"]


def read_apus(path) -> Artifact:
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) >= 16, "file shorter than the fixed prefix"
    assert data[:4] == b"APUS", f"bad magic {data[:4]!r}"
    (major,) = struct.unpack("<I", data[4:8])
    assert major == 1, f"major version {major}"
    (n,) = struct.unpack("<Q", data[8:16])
    assert n <= len(data) - 16
    header_bytes = data[16:16 + n]
    header = json.loads(header_bytes.decode("utf-8"))
    start = (16 + n + 63) // 64 * 64
    assert data[16 + n:start] == bytes(start - 16 - n), "header padding is not zero"
    for key in ("format", "graph", "tensors", "integrity", "data_length"):
        assert key in header, f"missing {key}"
    assert header["format"] == {"name": "apus", "version": [1, 0]}
    data_length = header["data_length"]
    assert data_length % 64 == 0
    assert len(data) == start + data_length, "file size != D + data_length"
    section = data[start:]
    integrity = header["integrity"]
    assert integrity["algorithm"] == "sha256"
    assert hashlib.sha256(section).hexdigest() == integrity["data_sha256"], "SHA-256 mismatch"

    tensors = {}
    covered = np.zeros(data_length, dtype=bool)
    ranges = []
    for name, entry in header["tensors"].items():
        dtype = DTYPES[entry["dtype"]]
        shape = entry["shape"]
        assert all(isinstance(d, int) and d >= 0 for d in shape), f"{name}: bad shape {shape}"
        count = math.prod(shape)
        assert entry["length"] == count * dtype.itemsize, f"{name}: length {entry['length']} != {count}*{dtype.itemsize}"
        assert entry["offset"] % 64 == 0, f"{name}: offset {entry['offset']} not aligned"
        assert entry["offset"] + entry["length"] <= data_length, f"{name}: out of bounds"
        ranges.append((entry["offset"], entry["offset"] + entry["length"], name))
        covered[entry["offset"]:entry["offset"] + entry["length"]] = True
        tensors[name] = np.frombuffer(section, dtype=dtype, count=count, offset=entry["offset"]).reshape(shape)
    ranges.sort()
    for (s0, e0, a), (s1, e1, b) in zip(ranges, ranges[1:]):
        assert e0 <= s1 or s1 == e1 or s0 == e0, f"tensors {a} and {b} overlap"
    padding = np.frombuffer(section, dtype=np.uint8)[~covered]
    assert not padding.any(), "padding between tensors is not zero"
    if ranges:
        assert data_length == (max(e for _, e, _ in ranges) + 63) // 64 * 64, "data section has trailing slack"

    _check_graph(header, tensors)
    return Artifact(header, tensors, header_bytes, len(data))


def _check_graph(header: dict, tensors: dict) -> None:
    graph = header["graph"]
    produced = {}
    for name in graph["initializers"]:
        assert name in tensors, f"initializer {name} not in tensors"
        produced[name] = "initializer"
    for value in graph["inputs"]:
        assert value["name"] not in produced, f"input {value['name']} is also an initializer"
        assert value["dtype"] in DTYPES
        assert all(isinstance(d, (int, str)) for d in value["shape"])
        produced[value["name"]] = "input"
    for node in graph["nodes"]:
        for name in node["inputs"]:
            assert name == "" or name in produced, f"node {node['name']} reads {name} before it is produced"
        for name in node["outputs"]:
            if name:
                assert name not in produced, f"{name} produced twice"
                produced[name] = node["name"]
        for attr_name, attr in node["attributes"].items():
            assert len(attr) == 1, f"{node['name']}.{attr_name}: {attr}"
            ((kind, value),) = attr.items()
            assert kind in ("int", "ints", "float", "floats", "string", "strings", "tensor", "tensors"), kind
            if kind == "tensor":
                assert value in tensors
            if kind == "tensors":
                assert all(v in tensors for v in value)
    for value in graph["outputs"]:
        assert value["name"] in produced, f"output {value['name']} never produced"
    for example in header.get("golden", []):
        for name in [*example["inputs"].values(), *example["outputs"].values()]:
            assert name in tensors, f"golden tensor {name} missing"


def to_onnx(artifact: Artifact):
    """Rebuild an ONNX ModelProto from the artifact (float16 weights upcast when flagged)."""
    import onnx
    from onnx import AttributeProto, helper, numpy_helper

    elem = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16,
            "int64": onnx.TensorProto.INT64, "int32": onnx.TensorProto.INT32, "int8": onnx.TensorProto.INT8,
            "uint8": onnx.TensorProto.UINT8, "bool": onnx.TensorProto.BOOL}
    graph = artifact.graph
    upcast = artifact.header.get("float16_weights", False)

    def tensor(name):
        array = np.array(artifact.tensors[name])
        return numpy_helper.from_array(array, name)

    nodes = []
    for node in graph["nodes"]:
        proto = helper.make_node(node["op"], node["inputs"], node["outputs"], name=node["name"],
                                 domain=node["domain"])
        for attr_name, attr in node["attributes"].items():
            ((kind, value),) = attr.items()
            a = AttributeProto()
            a.name = attr_name
            if kind == "int":
                a.type, a.i = AttributeProto.INT, value
            elif kind == "float":
                a.type, a.f = AttributeProto.FLOAT, value
            elif kind == "string":
                a.type, a.s = AttributeProto.STRING, value.encode()
            elif kind == "ints":
                a.type = AttributeProto.INTS
                a.ints.extend(value)
            elif kind == "floats":
                a.type = AttributeProto.FLOATS
                a.floats.extend(value)
            elif kind == "strings":
                a.type = AttributeProto.STRINGS
                a.strings.extend(v.encode() for v in value)
            elif kind == "tensor":
                a.type = AttributeProto.TENSOR
                a.t.CopyFrom(tensor(value))
            elif kind == "tensors":
                a.type = AttributeProto.TENSORS
                a.tensors.extend(tensor(v) for v in value)
            proto.attribute.append(a)
        nodes.append(proto)
    initializers = []
    for name in graph["initializers"]:
        array = np.array(artifact.tensors[name])
        if upcast and array.dtype == np.float16:
            array = array.astype(np.float32)
        initializers.append(numpy_helper.from_array(array, name))
    inputs = [helper.make_tensor_value_info(v["name"], elem[v["dtype"]], v["shape"]) for v in graph["inputs"]]
    outputs = [helper.make_tensor_value_info(v["name"], elem[v["dtype"]], v["shape"]) for v in graph["outputs"]]
    g = helper.make_graph(nodes, graph["name"], inputs, outputs, initializers)
    opsets = [helper.make_opsetid(d, v) for d, v in graph["opset_imports"].items()]
    return helper.make_model(g, opset_imports=opsets, ir_version=9)


def run_onnx(model, feeds: dict) -> list:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString() if not isinstance(model, str) else model,
                                   options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def golden_passes(actual: np.ndarray, expected: np.ndarray, tolerance: dict) -> tuple[bool, float]:
    """The spec's rule: max|a-e| <= absolute + relative * max|e|; also returns the relative error."""
    expected = expected.astype(np.float64)
    diff = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    scale = float(np.abs(expected).max(initial=0.0))
    return diff <= tolerance["absolute"] + tolerance["relative"] * scale, diff / (scale or 1.0)
