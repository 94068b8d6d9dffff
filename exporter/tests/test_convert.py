"""ONNX -> .apus conversion and the writer, on hand-made ONNX graphs (fast, no torch export)."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from apus_export import ExportError
from apus_export.artifact import convert_model, write_artifact
from apus_reader import read_apus, run_onnx, to_onnx


def make_model(nodes, inputs, outputs, initializers=(), opset=18, value_info=()):
    graph = helper.make_graph(nodes, "handmade", inputs, outputs, list(initializers), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def write(tmp_path, converted, **extra):
    header = {"graph": converted.graph, **extra}
    write_artifact(tmp_path / "m.apus", header, converted.tensors, converted.dtypes)
    return read_apus(tmp_path / "m.apus")


def test_attributes_of_every_kind(tmp_path):
    t = numpy_helper.from_array(np.arange(6, dtype=np.int32).reshape(2, 3), "ignored")
    t2 = numpy_helper.from_array(np.array([True, False]), "")
    node = helper.make_node(
        "Custom", ["x", ""], ["y"], name="custom", domain="test.domain",
        i=7, big=9223372036854775807, f=0.5, s="constant", ints=[1, -2, 3], floats=[0.0, 6.0],
        strings=["a", "é"], t=t, ts=[t, t2])
    model = make_model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model.opset_import.append(helper.make_opsetid("test.domain", 1))
    converted = convert_model(model)
    (n,) = converted.graph["nodes"]
    assert n["name"] == "custom" and n["op"] == "Custom" and n["domain"] == "test.domain"
    assert n["inputs"] == ["x", ""] and n["outputs"] == ["y"]
    a = n["attributes"]
    assert a["i"] == {"int": 7}
    assert a["big"] == {"int": 9223372036854775807}
    assert a["f"] == {"float": 0.5}
    assert a["s"] == {"string": "constant"}
    assert a["ints"] == {"ints": [1, -2, 3]}
    assert a["floats"] == {"floats": [0.0, 6.0]}
    assert a["strings"] == {"strings": ["a", "é"]}
    assert a["t"] == {"tensor": "custom.t"}
    assert a["ts"] == {"tensors": ["custom.ts.0", "custom.ts.1"]}
    assert converted.graph["opset_imports"] == {"": 18, "test.domain": 1}
    artifact = write(tmp_path, converted)
    np.testing.assert_array_equal(artifact.tensors["custom.t"], np.arange(6, dtype=np.int32).reshape(2, 3))
    assert artifact.header["tensors"]["custom.ts.1"]["dtype"] == "bool"
    np.testing.assert_array_equal(artifact.tensors["custom.ts.1"], [True, False])
    assert artifact.graph["initializers"] == []
    # The JSON carries the exact int64 and the UTF-8 string.
    assert b'"big":{"int":9223372036854775807}' in artifact.header_bytes
    assert "é".encode() in artifact.header_bytes


def test_float_attribute_keeps_the_exact_float32_value(tmp_path):
    node = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.1)
    model = make_model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    value = convert_model(model).graph["nodes"][0]["attributes"]["alpha"]["float"]
    assert np.float32(value) == np.float32(0.1) and value == float(np.float32(0.1))


def test_constants_initializers_symbolic_dims_and_run(tmp_path):
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["shift"], name="",
                         value=numpy_helper.from_array(np.array([1.5, -2.0, 0.25, 3.0], np.float32), "c")),
        helper.make_node("MatMul", ["x", "wT"], ["xw"]),
        helper.make_node("Add", ["xw", "shift"], ["y0"]),
        helper.make_node("Relu", ["y0"], ["y"]),
        helper.make_node("Shape", ["y"], ["s"], name="shape_node"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
              # An initializer listed as a graph input (old exporters): not a graph input in .apus.
              helper.make_tensor_value_info("wT", TensorProto.FLOAT, [3, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None]),
               helper.make_tensor_value_info("s", TensorProto.INT64, [2])]
    model = make_model(nodes, inputs, outputs, [numpy_helper.from_array(w.T.copy(), "wT")])
    converted = convert_model(model, name="tiny")
    g = converted.graph
    assert g["name"] == "tiny"
    assert g["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}]
    assert g["outputs"][0]["shape"] == ["batch", "unk__1"]
    assert g["initializers"] == ["wT"]
    constant = g["nodes"][0]
    assert constant["op"] == "Constant" and constant["name"] == "Constant_0"
    assert constant["attributes"] == {"value": {"tensor": "Constant_0.value"}}
    artifact = write(tmp_path, converted)
    assert list(artifact.tensors) == ["wT", "Constant_0.value"]
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    y, s = run_onnx(to_onnx(artifact), {"x": x})
    np.testing.assert_allclose(y, np.maximum(x @ w.T + [1.5, -2.0, 0.25, 3.0], 0), rtol=1e-6, atol=1e-6)
    assert list(s) == [5, 4]


def test_generated_tensor_names_avoid_value_names():
    nodes = [helper.make_node("Constant", [], ["a"], name="k", value=numpy_helper.from_array(np.float32(1), "")),
             helper.make_node("Identity", ["a"], ["k.value"])]
    model = make_model(nodes, [], [helper.make_tensor_value_info("k.value", TensorProto.FLOAT, [])])
    converted = convert_model(model)
    assert converted.graph["nodes"][0]["attributes"]["value"] == {"tensor": "k.value#2"}


def test_duplicate_and_empty_node_names_become_unique():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="n"), helper.make_node("Relu", ["a"], ["b"], name="n"),
             helper.make_node("Relu", ["b"], ["c"])]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                       [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])])
    assert [n["name"] for n in convert_model(model).graph["nodes"]] == ["n", "n#2", "Relu_2"]


def if_model():
    then_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)
    return make_model([node], [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                               helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def test_refuses_subgraphs_naming_the_node():
    with pytest.raises(ExportError, match=r"node 'branch' \(If\) has a subgraph attribute '(then|else)_branch'"):
        convert_model(if_model())


@pytest.mark.parametrize("elem,array", [
    (TensorProto.DOUBLE, np.zeros(2, np.float64)),
    (TensorProto.COMPLEX64, np.zeros(2, np.complex64)),
    (TensorProto.UINT16, np.zeros(2, np.uint16)),
])
def test_refuses_unsupported_initializer_dtypes(elem, array):
    model = make_model([helper.make_node("Identity", ["w"], ["y"])], [],
                       [helper.make_tensor_value_info("y", elem, [2])], [numpy_helper.from_array(array, "w")])
    name = TensorProto.DataType.Name(elem).lower()
    with pytest.raises(ExportError, match=rf"initializer 'w' has dtype {name}"):
        convert_model(model)


def test_refuses_string_and_bfloat16_tensors():
    s = helper.make_tensor("names", TensorProto.STRING, [1], [b"x"])
    model = make_model([helper.make_node("Constant", [], ["y"], name="c", value=s)], [],
                       [helper.make_tensor_value_info("y", TensorProto.STRING, [1])])
    with pytest.raises(ExportError, match=r"graph output 'y' has dtype string"):
        convert_model(model)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    with pytest.raises(ExportError, match=r"attribute 'value' of node 'c' \(Constant\) has dtype string"):
        convert_model(model)
    b = helper.make_tensor("bf", TensorProto.BFLOAT16, [1], [1.0])
    model = make_model([helper.make_node("Identity", ["bf"], ["y"])], [],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [b])
    with pytest.raises(ExportError, match=r"initializer 'bf' has dtype bfloat16"):
        convert_model(model)


def test_refuses_double_intermediates_and_casts():
    nodes = [helper.make_node("Cast", ["x"], ["d"], name="to_double", to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT)]
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ExportError, match=r"node 'to_double' \(Cast\) casts to double"):
        convert_model(make_model(nodes, *io))
    with pytest.raises(ExportError, match=r"value 'd' has dtype double"):
        convert_model(make_model(nodes, *io, value_info=[helper.make_tensor_value_info("d", TensorProto.DOUBLE, [1])]))


def test_refuses_non_finite_float_attribute():
    node = helper.make_node("Clip", ["x"], ["y"], name="clip", max=float("inf"))
    model = make_model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], opset=6)
    with pytest.raises(ExportError, match=r"attribute 'max' of node 'clip' \(Clip\) is inf"):
        convert_model(model)


def test_layout_alignment_padding_and_empty_tensors(tmp_path):
    arrays = {"a": np.arange(3, dtype=np.float32), "empty": np.zeros((0, 4), np.float32),
              "b": np.array([True, False, True]), "c": np.arange(17, dtype=np.int64).reshape(17, 1),
              "h": np.arange(5, dtype=np.float16), "u": np.arange(65, dtype=np.uint8)}
    dtypes = {"a": "float32", "empty": "float32", "b": "bool", "c": "int64", "h": "float16", "u": "uint8"}
    graph = {"name": "none", "opset_imports": {"": 18}, "inputs": [], "outputs": [], "initializers": list(arrays),
             "nodes": []}
    write_artifact(tmp_path / "l.apus", {"graph": graph, "metadata": {"k": "v"}}, dict(arrays), dtypes)
    artifact = read_apus(tmp_path / "l.apus")
    table = artifact.header["tensors"]
    assert [table[n]["offset"] for n in arrays] == [0, 64, 64, 128, 320, 384]
    assert artifact.header["data_length"] == 384 + 128
    for name, array in arrays.items():
        np.testing.assert_array_equal(artifact.tensors[name], array)
        assert table[name]["dtype"] == dtypes[name]
    assert artifact.header["metadata"] == {"k": "v"}
    # Header: compact JSON right after the 16-byte prefix; data starts on a 64-byte boundary.
    raw = (tmp_path / "l.apus").read_bytes()
    n = int.from_bytes(raw[8:16], "little")
    assert raw[16:16 + n] == json.dumps(artifact.header, separators=(",", ":"), ensure_ascii=False).encode()


def test_empty_data_section(tmp_path):
    graph = {"name": "none", "opset_imports": {"": 18}, "inputs": [], "outputs": [], "initializers": [], "nodes": []}
    header = write_artifact(tmp_path / "e.apus", {"graph": graph}, {}, {})
    artifact = read_apus(tmp_path / "e.apus")
    assert header["data_length"] == 0 and artifact.header["tensors"] == {}
    assert artifact.file_size % 64 == 0
