"""ONNX ModelProto -> `.apus` v1 header and data section, and the file writer.

Layout (little-endian): "APUS" | UInt32 major version | UInt64 header length N | N bytes of UTF-8
JSON | zero padding to a multiple of 64 (data start D) | data section, every tensor at an offset
(relative to D) that is a multiple of 64, zero padding between tensors and after the last one up to
a multiple of 64. The file ends at D + data_length.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections import OrderedDict
from typing import Iterable

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from .errors import ExportError

MAGIC = b"APUS"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
ALIGNMENT = 64

# Reader limits from RELIABILITY.md: refuse to write what the reader would refuse to read.
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_TENSORS = 1_000_000
MAX_NODES = 1_000_000

# ONNX element type -> (.apus dtype name, numpy dtype). Anything else is refused.
ONNX_DTYPES = {
    TensorProto.FLOAT: ("float32", np.dtype("<f4")),
    TensorProto.FLOAT16: ("float16", np.dtype("<f2")),
    TensorProto.INT64: ("int64", np.dtype("<i8")),
    TensorProto.INT32: ("int32", np.dtype("<i4")),
    TensorProto.INT8: ("int8", np.dtype("i1")),
    TensorProto.UINT8: ("uint8", np.dtype("u1")),
    TensorProto.BOOL: ("bool", np.dtype("?")),
}
DTYPE_NAMES = {name: dtype for name, dtype in ONNX_DTYPES.values()}


def onnx_type_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"ONNX element type {elem_type}"


def dtype_name_of_array(array: np.ndarray, what: str) -> str:
    """The .apus dtype name of a numpy array, or ExportError naming `what`."""
    for name, dtype in DTYPE_NAMES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ExportError(f"{what} has dtype {array.dtype}, which .apus v1 does not support "
                      f"(supported: {', '.join(DTYPE_NAMES)})")


def little_endian(array: np.ndarray, dtype_name: str) -> np.ndarray:
    """A C-contiguous little-endian copy/view of `array` with the canonical dtype."""
    return np.ascontiguousarray(array, dtype=DTYPE_NAMES[dtype_name])


class ConvertedGraph:
    """The `graph` header object plus the tensors (name -> little-endian array) it refers to."""

    def __init__(self, graph: dict, tensors: "OrderedDict[str, np.ndarray]", dtypes: dict[str, str]):
        self.graph = graph
        self.tensors = tensors
        self.dtypes = dtypes

    @property
    def input_names(self) -> list[str]:
        return [v["name"] for v in self.graph["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [v["name"] for v in self.graph["outputs"]]


def _tensor_array(tensor: TensorProto, what: str) -> tuple[np.ndarray, str]:
    if tensor.data_type not in ONNX_DTYPES:
        raise ExportError(f"{what} has dtype {onnx_type_name(tensor.data_type)}, which .apus v1 does "
                          f"not support (supported: {', '.join(DTYPE_NAMES)})")
    if tensor.data_location == TensorProto.EXTERNAL:
        raise ExportError(f"{what} still refers to external data; load the model with "
                          "load_external_data=True")
    name, dtype = ONNX_DTYPES[tensor.data_type]
    array = numpy_helper.to_array(tensor)
    if array.size and array.dtype.kind != dtype.kind:
        raise ExportError(f"{what}: unexpected numpy dtype {array.dtype} for ONNX {name}")
    return little_endian(array, name), name


def _value_info(value: onnx.ValueInfoProto, what: str, unknown_dims: list[int]) -> dict:
    if not value.type.HasField("tensor_type"):
        raise ExportError(f"{what} {value.name!r} is not a tensor (sequence, map and optional values "
                          "are not supported in .apus v1)")
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type not in ONNX_DTYPES:
        raise ExportError(f"{what} {value.name!r} has dtype {onnx_type_name(tensor_type.elem_type)}, "
                          f"which .apus v1 does not support (supported: {', '.join(DTYPE_NAMES)})")
    if not tensor_type.HasField("shape"):
        raise ExportError(f"{what} {value.name!r} has no shape (not even its rank is known)")
    shape: list = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            shape.append(dim.dim_param)
        else:
            unknown_dims[0] += 1
            shape.append(f"unk__{unknown_dims[0]}")
    return {"name": value.name, "dtype": ONNX_DTYPES[tensor_type.elem_type][0], "shape": shape}


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}#{n}"
    taken.add(name)
    return name


def _finite_float(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ExportError(f"{what} is {value}, which JSON (and so the .apus header) cannot represent")
    return value


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExportError(f"{what} is not valid UTF-8") from None


def convert_model(model: onnx.ModelProto, name: str | None = None) -> ConvertedGraph:
    """Convert a loaded ONNX model (external data already loaded) to the `.apus` graph + tensors."""
    if len(model.functions):
        try:
            from onnx import inliner
        except ImportError:  # pragma: no cover - onnx < 1.16
            raise ExportError("the ONNX model uses local functions and this onnx version cannot "
                              "inline them; upgrade onnx to >= 1.16") from None
        model = inliner.inline_local_functions(model)
    graph = model.graph
    if len(graph.sparse_initializer):
        raise ExportError(f"sparse initializer {graph.sparse_initializer[0].values.name!r}: sparse "
                          "tensors are not supported in .apus v1")

    tensors: OrderedDict[str, np.ndarray] = OrderedDict()
    dtypes: dict[str, str] = {}
    initializer_names: list[str] = []
    for init in graph.initializer:
        if init.name in tensors:
            raise ExportError(f"initializer {init.name!r} is defined twice")
        if not init.name:
            raise ExportError("an initializer has an empty name")
        array, dtype = _tensor_array(init, f"initializer {init.name!r}")
        tensors[init.name] = array
        dtypes[init.name] = dtype
        initializer_names.append(init.name)
    init_set = set(initializer_names)

    unknown_dims = [0]
    inputs = [_value_info(v, "graph input", unknown_dims) for v in graph.input if v.name not in init_set]
    outputs = [_value_info(v, "graph output", unknown_dims) for v in graph.output]
    for value in graph.value_info:
        elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None
        if elem is not None and elem != TensorProto.UNDEFINED and elem not in ONNX_DTYPES:
            raise ExportError(f"value {value.name!r} has dtype {onnx_type_name(elem)}, which .apus v1 "
                              f"does not support (supported: {', '.join(DTYPE_NAMES)})")

    if len(graph.node) > MAX_NODES:
        raise ExportError(f"the graph has {len(graph.node)} nodes; .apus readers accept at most {MAX_NODES}")

    # Names a generated tensor name must not collide with: every value of the graph.
    taken: set[str] = set(init_set) | {v.name for v in graph.input}
    for node in graph.node:
        taken.update(o for o in node.output if o)
    node_names: set[str] = set()
    nodes = []
    for index, node in enumerate(graph.node):
        node_name = _unique(node.name or f"{node.op_type}_{index}", node_names)
        where = f"node {node_name!r} ({node.op_type})"
        attributes: dict = {}
        for attr in node.attribute:
            attributes[attr.name] = _attribute(attr, node_name, where, tensors, dtypes, taken)
        if node.op_type == "Cast" and node.domain in ("", "ai.onnx"):
            to = attributes.get("to", {}).get("int")
            if to is not None and to not in ONNX_DTYPES:
                raise ExportError(f"{where} casts to {onnx_type_name(to)}, which .apus v1 does not "
                                  f"support (supported: {', '.join(DTYPE_NAMES)})")
        nodes.append({
            "name": node_name,
            "op": node.op_type,
            "domain": "" if node.domain == "ai.onnx" else node.domain,
            "inputs": list(node.input),
            "outputs": list(node.output),
            "attributes": attributes,
        })

    opsets: dict[str, int] = {}
    for opset in model.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        opsets[domain] = int(opset.version)

    header_graph = {
        "name": name if name is not None else graph.name,
        "opset_imports": opsets,
        "inputs": inputs,
        "outputs": outputs,
        "initializers": initializer_names,
        "nodes": nodes,
    }
    return ConvertedGraph(header_graph, tensors, dtypes)


def _attribute(attr: AttributeProto, node_name: str, where: str, tensors: OrderedDict,
               dtypes: dict, taken: set[str]) -> dict:
    what = f"attribute {attr.name!r} of {where}"
    if attr.ref_attr_name:
        raise ExportError(f"{what} refers to a function attribute ({attr.ref_attr_name!r}); "
                          "not supported in .apus v1")
    kind = attr.type
    if kind == AttributeProto.FLOAT:
        return {"float": _finite_float(attr.f, what)}
    if kind == AttributeProto.INT:
        return {"int": int(attr.i)}
    if kind == AttributeProto.STRING:
        return {"string": _decode(attr.s, what)}
    if kind == AttributeProto.FLOATS:
        return {"floats": [_finite_float(v, what) for v in attr.floats]}
    if kind == AttributeProto.INTS:
        return {"ints": [int(v) for v in attr.ints]}
    if kind == AttributeProto.STRINGS:
        return {"strings": [_decode(v, what) for v in attr.strings]}
    if kind == AttributeProto.TENSOR:
        return {"tensor": _attribute_tensor(attr.t, f"{node_name}.{attr.name}", what, tensors, dtypes, taken)}
    if kind == AttributeProto.TENSORS:
        return {"tensors": [_attribute_tensor(t, f"{node_name}.{attr.name}.{i}", f"{what}[{i}]", tensors,
                                              dtypes, taken) for i, t in enumerate(attr.tensors)]}
    if kind in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise ExportError(f"{where} has a subgraph attribute {attr.name!r}: control flow and other "
                          "subgraphs (If/Loop/Scan) are not supported in .apus v1; export a model "
                          "without data-dependent control flow")
    kind_name = AttributeProto.AttributeType.Name(kind) if kind in AttributeProto.AttributeType.values() \
        else str(kind)
    raise ExportError(f"{what} has kind {kind_name}, which .apus v1 does not support")


def _attribute_tensor(tensor: TensorProto, base: str, what: str, tensors: OrderedDict,
                      dtypes: dict, taken: set[str]) -> str:
    array, dtype = _tensor_array(tensor, f"tensor {what}")
    table_name = _unique(base, taken)
    tensors[table_name] = array
    dtypes[table_name] = dtype
    return table_name


def align(value: int, alignment: int = ALIGNMENT) -> int:
    return (value + alignment - 1) // alignment * alignment


def layout(tensors: "OrderedDict[str, np.ndarray]", dtypes: dict[str, str]) -> tuple[dict, int]:
    """The header's tensors table (insertion order) and the data section length."""
    if len(tensors) > MAX_TENSORS:
        raise ExportError(f"{len(tensors)} tensors; .apus readers accept at most {MAX_TENSORS}")
    table: dict = {}
    offset = 0
    for name, array in tensors.items():
        offset = align(offset)
        table[name] = {"dtype": dtypes[name], "shape": [int(d) for d in array.shape],
                       "offset": offset, "length": int(array.nbytes)}
        offset += array.nbytes
    return table, align(offset)


def _data_chunks(tensors: "OrderedDict[str, np.ndarray]", table: dict, data_length: int) -> Iterable:
    position = 0
    for name, array in tensors.items():
        entry = table[name]
        if entry["offset"] > position:
            yield bytes(entry["offset"] - position)
        if array.nbytes:
            yield memoryview(np.ascontiguousarray(array)).cast("B")
        position = entry["offset"] + array.nbytes
    if data_length > position:
        yield bytes(data_length - position)


def write_artifact(path: str | os.PathLike, header: dict, tensors: "OrderedDict[str, np.ndarray]",
                   dtypes: dict[str, str]) -> dict:
    """Write the artifact; `header` holds everything but tensors/data_length/integrity.

    Returns the complete header as written. The file appears atomically (written beside the
    target, then renamed).
    """
    table, data_length = layout(tensors, dtypes)
    digest = hashlib.sha256()
    for chunk in _data_chunks(tensors, table, data_length):
        digest.update(chunk)

    full: dict = {"format": {"name": "apus", "version": [FORMAT_MAJOR, FORMAT_MINOR]}}
    full["graph"] = header["graph"]
    full["tensors"] = table
    full["data_length"] = data_length
    for key, value in header.items():
        if key not in ("format", "graph", "tensors", "data_length", "integrity"):
            full[key] = value
    full["integrity"] = {"algorithm": "sha256", "data_sha256": digest.hexdigest()}

    try:
        text = json.dumps(full, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as error:
        raise ExportError(f"the header contains a value JSON cannot represent: {error}") from None
    blob = text.encode("utf-8")
    if len(blob) > MAX_HEADER_BYTES:
        raise ExportError(f"the JSON header is {len(blob)} bytes; .apus readers accept at most "
                          f"{MAX_HEADER_BYTES}")
    prefix = MAGIC + struct.pack("<I", FORMAT_MAJOR) + struct.pack("<Q", len(blob)) + blob
    prefix += bytes(align(len(prefix)) - len(prefix))

    path = os.fspath(path)
    temporary = f"{path}.partial-{os.getpid()}"
    try:
        with open(temporary, "wb") as file:
            file.write(prefix)
            for chunk in _data_chunks(tensors, table, data_length):
                file.write(chunk)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return full
