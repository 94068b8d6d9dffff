"""The command-line exporter (`python -m apus_export`)."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from apus_export.cli import main
from apus_reader import golden_passes, read_apus, run_onnx, to_onnx

torchvision = pytest.importorskip("torchvision")

MOBILENET_WEIGHTS = "/root/.cache/apus/demo-b3a21dcd0a19/weights/mobilenet_v2-b0353104.pth"


def skimage_photo(name):
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", name)
    return path if os.path.exists(path) else None


@pytest.mark.skipif(not os.path.exists(MOBILENET_WEIGHTS), reason="pretrained MobileNetV2 weights not cached")
def test_cli_mobilenet_v2_with_pretrained_weights(tmp_path):
    out = tmp_path / "mobilenet_v2.apus"
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH"), src] if p)
    result = subprocess.run([sys.executable, "-m", "apus_export", "torchvision:mobilenet_v2", "-o", str(out),
                             "--weights-file", MOBILENET_WEIGHTS, "--golden", "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {out}" in result.stdout and "golden examples: 2" in result.stdout
    assert "labels: 1000" in result.stdout
    assert "MobileNet_V2_Weights.IMAGENET1K_V1" in result.stderr  # chosen from the file name

    artifact = read_apus(out)
    header = artifact.header
    assert header["graph"]["name"] == "mobilenet_v2"
    assert header["metadata"]["weights_file"] == "mobilenet_v2-b0353104.pth"
    assert header["metadata"]["weights_file_sha256"].startswith("b0353104")
    assert header["preprocess"]["steps"][0] == {"op": "resize", "size": [256], "interpolation": "bilinear",
                                                "antialias": True}
    assert header["labels"][285] == "Egyptian cat"
    model = to_onnx(artifact)
    for example in header["golden"]:
        feeds = {n: np.array(artifact.tensors[t]) for n, t in example["inputs"].items()}
        (actual,) = run_onnx(model, feeds)
        ok, rel = golden_passes(actual, np.array(artifact.tensors[example["outputs"]["logits"]]), example["tolerance"])
        assert ok, rel

    # The artifact classifies a real photo with its own preprocessing (run here by torchvision).
    photo = skimage_photo("chelsea.png")
    if photo is None:
        pytest.skip("scikit-image sample photos not installed")
    from PIL import Image

    preset = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    x = preset(Image.open(photo).convert("RGB")).unsqueeze(0).numpy()
    (logits,) = run_onnx(model, {"input": x})
    assert header["labels"][int(logits[0].argmax())] == "Egyptian cat"


def test_cli_random_weights_without_metadata(tmp_path, capsys):
    out = tmp_path / "squeezenet.apus"
    assert main(["torchvision:squeezenet1_1", "-o", str(out), "--weights", "none", "--golden", "1",
                 "--batch", "2", "--weights-dtype", "float16"]) == 0
    captured = capsys.readouterr()
    assert "random weights" in captured.err
    artifact = read_apus(out)
    assert "labels" not in artifact.header and "preprocess" not in artifact.header
    assert artifact.header["float16_weights"] is True
    assert artifact.graph["inputs"][0]["shape"] == [2, 3, 224, 224]
    assert len(artifact.header["golden"]) == 1
    assert f"wrote {out}" in captured.out


@pytest.mark.parametrize("argv,message", [
    (["torchvision:not_a_model"], "torchvision has no model 'not_a_model'"),
    (["timm:resnet50"], "torchvision:<name>"),
    (["torchvision:resnet18", "--weights", "IMAGENET9K"], "no weights entry 'IMAGENET9K'"),
    (["torchvision:resnet18", "--batch", "0"], "--batch must be >= 1"),
])
def test_cli_errors(tmp_path, capsys, argv, message):
    assert main([*argv, "-o", str(tmp_path / "x.apus")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.apus").exists()
