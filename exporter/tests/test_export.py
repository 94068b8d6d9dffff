"""End-to-end export tests: PyTorch module -> .apus, read back with an independent reader."""

import json
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import apus_export
from apus_export import ExportError, UnsupportedTransformError
from apus_reader import golden_passes, read_apus, run_onnx, to_onnx

torchvision = pytest.importorskip("torchvision")
from torchvision import transforms as T  # noqa: E402


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(32)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomize_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-identity BatchNorm statistics, so that a lost or misfolded BatchNorm shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def tiny_model(seed=1):
    torch.manual_seed(seed)
    return randomize_batchnorm(TinyCNN(), seed)


TINY_LABELS = [f"class {i}" for i in range(10)]
TINY_PREPROCESS = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(),
                             T.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])


def tiny_input():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    model = tiny_model()
    x = tiny_input()
    header = apus_export.export(model, x, work / "tiny.apus", preprocess=TINY_PREPROCESS, labels=TINY_LABELS,
                                golden=3, metadata={"experiment": "unit-test"},
                                onnx_path=work / "tiny.onnx")
    return model, x, header, read_apus(work / "tiny.apus"), onnx.load(str(work / "tiny.onnx")), work


def check_initializers_match_onnx(artifact, proto, float16=False):
    names = [init.name for init in proto.graph.initializer]
    assert artifact.graph["initializers"] == names
    converted = 0
    for init in proto.graph.initializer:
        expected = numpy_helper.to_array(init)
        stored = artifact.tensors[init.name]
        if float16 and stored.dtype == np.float16:
            converted += 1
            assert expected.dtype == np.float32 and expected.size >= 256
            np.testing.assert_array_equal(stored, expected.astype(np.float16))
        else:
            assert stored.dtype == expected.dtype, init.name
            assert stored.tobytes() == np.ascontiguousarray(expected).astype(stored.dtype).tobytes(), init.name
    return converted


def check_goldens_recomputed(artifact, model, expected_count):
    golden = artifact.header["golden"]
    assert len(golden) == expected_count
    graph = artifact.graph
    with torch.no_grad():
        for i, example in enumerate(golden):
            assert example["source"] == "pytorch"
            inputs = [torch.from_numpy(np.array(artifact.tensors[example["inputs"][v["name"]]]))
                      for v in graph["inputs"]]
            assert list(example["inputs"]) == [v["name"] for v in graph["inputs"]]
            assert example["inputs"][graph["inputs"][0]["name"]] == f"golden.{i}.{graph['inputs'][0]['name']}"
            out = model(*inputs)
            outs = [out] if isinstance(out, torch.Tensor) else list(out)
            for value, tensor in zip(graph["outputs"], outs):
                np.testing.assert_array_equal(artifact.tensors[example["outputs"][value["name"]]], tensor.numpy())


def check_goldens_in_ort(artifact, model_proto):
    worst = 0.0
    for example in artifact.header["golden"]:
        feeds = {n: np.array(artifact.tensors[t]) for n, t in example["inputs"].items()}
        actual = run_onnx(model_proto, feeds)
        for (name, tname), a in zip(example["outputs"].items(), actual):
            ok, rel = golden_passes(a, np.array(artifact.tensors[tname]), example["tolerance"])
            assert ok, f"{name}: relative error {rel:.3e} exceeds {example['tolerance']}"
            worst = max(worst, rel)
    return worst


def test_tiny_layout_header_and_tensors(tiny_export):
    model, x, header, artifact, proto, work = tiny_export
    h = artifact.header
    assert h == header  # export() returns what it wrote
    # Compact JSON, UTF-8.
    assert artifact.header_bytes == json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert list(h)[:4] == ["format", "graph", "tensors", "data_length"]
    g = h["graph"]
    assert g["name"] == "TinyCNN"
    assert g["opset_imports"][""] == 18
    assert g["inputs"] == [{"name": "input", "dtype": "float32", "shape": [1, 3, 32, 32]}]
    assert g["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [1, 10]}]
    assert h["labels"] == TINY_LABELS
    assert h["output_kind"] == "logits"
    assert h["preprocess"]["steps"][0] == {"op": "resize", "size": [36], "interpolation": "bilinear",
                                           "antialias": True}
    assert "float16_weights" not in h
    assert {n["op"] for n in g["nodes"]} >= {"Conv", "Relu", "MaxPool", "Gemm"}
    assert len({n["name"] for n in g["nodes"]}) == len(g["nodes"])
    check_initializers_match_onnx(artifact, proto)


def test_tiny_metadata(tiny_export):
    meta = tiny_export[3].header["metadata"]
    assert meta["producer"] == f"apus-export {apus_export.__version__}"
    assert meta["torch"] == torch.__version__
    assert meta["torchvision"] == torchvision.__version__
    assert meta["onnx"] == onnx.__version__
    assert meta["source"] == f"{TinyCNN.__module__}.TinyCNN"
    assert meta["experiment"] == "unit-test"
    assert meta["created"].endswith("Z") and len(meta["created"]) == 20
    assert all(isinstance(v, str) for v in meta.values())


def test_tiny_goldens(tiny_export):
    model, x, header, artifact, proto, work = tiny_export
    golden = artifact.header["golden"]
    np.testing.assert_array_equal(artifact.tensors["golden.0.input"], x.numpy())
    assert not np.array_equal(artifact.tensors["golden.1.input"], artifact.tensors["golden.2.input"])
    for example in golden:
        assert example["tolerance"] == {"relative": 1e-4, "absolute": 1e-5}
    check_goldens_recomputed(artifact, model, 3)
    check_goldens_in_ort(artifact, proto)


def test_tiny_graph_rebuilt_from_artifact_runs_in_onnxruntime(tiny_export):
    artifact = tiny_export[3]
    assert check_goldens_in_ort(artifact, to_onnx(artifact)) < 1e-5


def test_export_is_deterministic_apart_from_creation_time(tiny_export, tmp_path):
    _, x, header, *_ = tiny_export
    again = apus_export.export(tiny_model(), x, tmp_path / "again.apus", preprocess=TINY_PREPROCESS,
                               labels=TINY_LABELS, golden=3, metadata={"experiment": "unit-test"})
    assert again["integrity"] == header["integrity"]
    assert again["tensors"] == header["tensors"]
    assert again["graph"] == header["graph"]


def test_given_golden_inputs_multiple_outputs_and_int_input(tmp_path):
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, 8)
            self.a = torch.nn.Linear(8, 3)
            self.b = torch.nn.Linear(8, 2)

        def forward(self, tokens, scale):
            h = self.embed(tokens).mean(1) * scale
            return self.a(h), torch.softmax(self.b(h), -1)

    torch.manual_seed(3)
    model = TwoHeads().eval()
    tokens = torch.tensor([[1, 5, 7, 19]])
    scale = torch.tensor([[2.0]])
    examples = [(torch.tensor([[0, 2, 4, 6]]), torch.tensor([[0.5]])), (tokens, torch.tensor([[-1.0]]))]
    apus_export.export(model, (tokens, scale), tmp_path / "two.apus", golden=examples, output_kind=None,
                       input_names=["tokens", "scale"], output_names=["a", "b"])
    artifact = read_apus(tmp_path / "two.apus")
    g = artifact.graph
    assert [v["name"] for v in g["inputs"]] == ["tokens", "scale"]
    assert g["inputs"][0]["dtype"] == "int64"
    assert [v["name"] for v in g["outputs"]] == ["a", "b"]
    assert "output_kind" not in artifact.header and "labels" not in artifact.header
    assert "preprocess" not in artifact.header
    assert artifact.header["golden"][1]["inputs"] == {"tokens": "golden.1.tokens", "scale": "golden.1.scale"}
    np.testing.assert_array_equal(artifact.tensors["golden.0.tokens"], [[0, 2, 4, 6]])
    check_goldens_recomputed(artifact, model, 2)
    check_goldens_in_ort(artifact, to_onnx(artifact))


def test_random_golden_for_integer_input_stays_in_range(tmp_path):
    model = torch.nn.Embedding(10, 4).eval()
    tokens = torch.tensor([[2, 9, 3]])
    apus_export.export(model, tokens, tmp_path / "e.apus", golden=4, output_kind=None)
    artifact = read_apus(tmp_path / "e.apus")
    for i in range(4):
        t = artifact.tensors[f"golden.{i}.input"]
        assert t.dtype == np.int64 and t.min() >= 2 and t.max() <= 9
    check_goldens_recomputed(artifact, model, 4)


def test_no_golden(tmp_path):
    header = apus_export.export(tiny_model(), tiny_input(), tmp_path / "n.apus", golden=0)
    assert "golden" not in header
    assert not any(name.startswith("golden.") for name in read_apus(tmp_path / "n.apus").tensors)


def test_float16_weights_tiny(tmp_path):
    model = tiny_model()
    header = apus_export.export(model, tiny_input(), tmp_path / "h.apus", weights_dtype="float16",
                                onnx_path=tmp_path / "h.onnx")
    artifact = read_apus(tmp_path / "h.apus")
    assert artifact.header["float16_weights"] is True
    assert artifact.header["metadata"]["weights_dtype"] == "float16"
    converted = check_initializers_match_onnx(artifact, onnx.load(str(tmp_path / "h.onnx")), float16=True)
    assert converted == int(artifact.header["metadata"]["float16_tensors"]) >= 2
    for name, entry in artifact.header["tensors"].items():
        if entry["dtype"] == "float16":
            assert name in artifact.graph["initializers"]
    tolerance = header["golden"][0]["tolerance"]
    measured = float(header["metadata"]["float16_measured_relative_error"])
    assert tolerance["relative"] == pytest.approx(max(2 * measured, 1e-3))
    assert check_goldens_in_ort(artifact, to_onnx(artifact)) <= tolerance["relative"]


# --- resnet18 --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_model():
    torch.manual_seed(18)
    return randomize_batchnorm(torchvision.models.resnet18(weights=None), 18)


def test_resnet18_with_preset_labels_dynamic_batch(resnet18_model, tmp_path):
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    apus_export.export(resnet18_model, x, tmp_path / "r18.apus", preprocess=weights.transforms(),
                       labels=weights.meta["categories"], golden=2, dynamic_batch=True, name="resnet18",
                       onnx_path=tmp_path / "r18.onnx")
    artifact = read_apus(tmp_path / "r18.apus")
    g = artifact.graph
    assert g["name"] == "resnet18"
    assert g["inputs"][0]["shape"] == ["batch", 3, 224, 224]
    assert g["outputs"][0]["shape"] == ["batch", 1000]
    assert len(artifact.header["labels"]) == 1000 and artifact.header["labels"][0] == "tench"
    assert [s["op"] for s in artifact.header["preprocess"]["steps"]] == [
        "resize", "center_crop", "pil_to_tensor", "convert_image_dtype", "normalize"]
    proto = onnx.load(str(tmp_path / "r18.onnx"))
    check_initializers_match_onnx(artifact, proto)
    check_goldens_recomputed(artifact, resnet18_model, 2)
    check_goldens_in_ort(artifact, proto)
    rebuilt = to_onnx(artifact)
    check_goldens_in_ort(artifact, rebuilt)
    # The symbolic batch really is dynamic: batch 3 through the rebuilt graph matches PyTorch.
    x3 = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = resnet18_model(x3).numpy()
    (actual,) = run_onnx(rebuilt, {"input": x3.numpy()})
    ok, rel = golden_passes(actual, expected, {"relative": 1e-4, "absolute": 1e-5})
    assert ok, rel


def test_resnet18_float16_weights(resnet18_model, tmp_path):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    header = apus_export.export(resnet18_model, x, tmp_path / "r18h.apus", golden=2, weights_dtype="float16")
    artifact = read_apus(tmp_path / "r18h.apus")
    assert artifact.header["float16_weights"] is True
    fp32 = sum(e["length"] for n, e in header["tensors"].items() if n in header["graph"]["initializers"])
    assert fp32 < 26_000_000  # about half of resnet18's 46.8 MB of float32 weights
    measured = float(header["metadata"]["float16_measured_relative_error"])
    tolerance = header["golden"][0]["tolerance"]
    assert 0 < measured < 1e-2
    assert tolerance["relative"] == pytest.approx(max(2 * measured, 1e-3))
    worst = check_goldens_in_ort(artifact, to_onnx(artifact))
    print(f"resnet18 float16 weights: measured relative error {measured:.3e}, rebuilt-graph ORT "
          f"{worst:.3e}, tolerance {tolerance}")


# --- refusals --------------------------------------------------------------------------------


def test_refuses_lambda_preprocess_before_exporting(tmp_path):
    preprocess = T.Compose([T.Resize(36), T.Lambda(lambda img: img), T.ToTensor()])
    with pytest.raises(UnsupportedTransformError, match=r"transform\[1\].*Lambda"):
        apus_export.export(tiny_model(), tiny_input(), tmp_path / "x.apus", preprocess=preprocess)
    assert not (tmp_path / "x.apus").exists()


def test_refuses_double_weights_and_inputs(tmp_path):
    model = torch.nn.Linear(3, 2).double().eval()
    with pytest.raises(ExportError, match=r"initializer 'weight' has dtype double"):
        apus_export.export(model, torch.randn(2, 3, dtype=torch.float64), tmp_path / "d.apus")
    with pytest.raises(ExportError, match=r"graph input 'input' has dtype double"):
        apus_export.export(torch.nn.ReLU(), torch.randn(2, 3, dtype=torch.float64), tmp_path / "d.apus")
    assert list(tmp_path.iterdir()) == []


def test_refuses_data_dependent_control_flow(tmp_path):
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda t: t * 2.0, lambda t: t - 1.0, (x,))

    try:
        apus_export.export(Branchy(), torch.randn(2, 3), tmp_path / "b.apus", output_kind=None)
    except ExportError as error:
        message = str(error)
        if "torch.onnx.export failed" in message:
            pytest.skip(f"this torch cannot export torch.cond: {message[:200]}")
        assert "subgraph" in message and "If" in message
    else:
        pytest.fail("an If subgraph was exported")


def test_argument_errors(tmp_path):
    model, x = tiny_model(), tiny_input()
    with pytest.raises(ExportError, match="weights_dtype"):
        apus_export.export(model, x, tmp_path / "a.apus", weights_dtype="bfloat16")
    with pytest.raises(ExportError, match="output_kind"):
        apus_export.export(model, x, tmp_path / "a.apus", output_kind="scores")
    with pytest.raises(ExportError, match="metadata"):
        apus_export.export(model, x, tmp_path / "a.apus", metadata={"n": 3})
    with pytest.raises(ExportError, match="3 labels.*10 classes"):
        apus_export.export(model, x, tmp_path / "a.apus", labels=["a", "b", "c"], golden=0)
    with pytest.raises(ExportError, match="golden"):
        apus_export.export(model, x, tmp_path / "a.apus", golden=-1)
    with pytest.raises(ExportError, match=r"golden example 0 input 'input' has shape \[1, 3, 8, 8\]"):
        apus_export.export(model, x, tmp_path / "a.apus", golden=[torch.randn(1, 3, 8, 8)])
