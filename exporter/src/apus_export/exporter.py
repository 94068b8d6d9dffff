"""`export()`: PyTorch module -> ONNX (torch.onnx.export) -> `.apus` artifact."""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import tempfile
import warnings
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from . import artifact
from ._version import __version__
from .errors import ExportError

DEFAULT_OPSET = 18
GOLDEN_SEED = 0x41505553  # "APUS"
FLOAT32_TOLERANCE = {"relative": 1e-4, "absolute": 1e-5}
FLOAT16_FALLBACK_RELATIVE = 2e-2
FLOAT16_MIN_RELATIVE = 1e-3
# Float32 initializers with fewer elements stay float32 under weights_dtype="float16": they cost
# nothing, keep biases/normalisation parameters exact and never change values that determine
# shapes (e.g. Resize scales).
FLOAT16_MIN_ELEMENTS = 256
FLOAT16_MAX = 65504.0
OUTPUT_KINDS = ("logits", "probabilities")


def export(module: torch.nn.Module, example_inputs: Any, path: str | os.PathLike, preprocess: Any = None,
           labels: Sequence[str] | None = None, golden: int | Sequence[Any] = 3,
           weights_dtype: str = "float32", output_kind: str | None = "logits",
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_batch: bool = False, metadata: dict[str, str] | None = None, *,
           name: str | None = None, opset_version: int = DEFAULT_OPSET,
           onnx_path: str | os.PathLike | None = None) -> dict:
    """Export `module` to the `.apus` artifact at `path`; returns the header that was written.

    example_inputs: a tensor or a tuple of tensors (the module's positional inputs).
    preprocess: a torchvision transform (translated with `apus_export.preprocess.translate`), a
        ready PreprocessSpec dict (``{"steps": [...]}``), or None.
    labels: class names, one per output class (index order).
    golden: N (the first example is `example_inputs`, the rest seeded normal inputs of the same
        shape) or a list of examples (each a tensor, or a tuple of tensors for several inputs).
        The outputs are computed by PyTorch (eval mode, no_grad) and stored with the inputs.
    weights_dtype: "float32" or "float16" (float32 initializers with >= 256 elements are stored
        as float16; the header gets ``"float16_weights": true`` and the loader upcasts them).
    output_kind: "logits", "probabilities" or None.
    input_names / output_names: graph value names (default "input"/"input_<i>" and
        "logits"/"probabilities"/"output"/"output_<i>").
    dynamic_batch: dimension 0 of every input and output becomes the symbol "batch".
    metadata: extra string -> string entries for the header's metadata.
    name: the graph name (default: the module's class name).
    opset_version: the ONNX opset requested from torch.onnx.export.
    onnx_path: if given, the intermediate ONNX model is also saved there (weights in
        `<onnx_path>.data`), e.g. to compare with other runtimes.
    """
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if weights_dtype not in ("float32", "float16"):
        raise ExportError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise ExportError(f"output_kind must be one of {OUTPUT_KINDS} or None, got {output_kind!r}")
    inputs = _input_tuple(example_inputs, "example_inputs")
    user_metadata = _check_metadata(metadata)
    label_list = _check_labels(labels)
    preprocess_spec = _preprocess_spec(preprocess)

    was_training = module.training
    module.eval()
    try:
        examples = _golden_examples(golden, inputs)
        with torch.no_grad():
            golden_outputs = [_output_tuple(module(*example)) for example in examples]
            example_outputs = golden_outputs[0] if examples and examples[0] is inputs else \
                _output_tuple(module(*inputs))
        input_names = _names(input_names, len(inputs), "input", "input_names")
        default_output = output_kind if output_kind and len(example_outputs) == 1 else "output"
        output_names = _names(output_names, len(example_outputs), default_output, "output_names")

        with tempfile.TemporaryDirectory(prefix="apus-export-") as work:
            exported = os.path.join(work, "model.onnx")
            _torch_export(module, inputs, exported, input_names, output_names, dynamic_batch,
                          opset_version)
            model = onnx.load(exported, load_external_data=True)
            if onnx_path is not None:
                saved = onnx.ModelProto()
                saved.CopyFrom(model)  # saving with external data rewrites the proto in place
                onnx.save(saved, os.fspath(onnx_path), save_as_external_data=True,
                          all_tensors_to_one_file=True,
                          location=os.path.basename(os.fspath(onnx_path)) + ".data")
            converted = artifact.convert_model(model, name or type(module).__name__)
            if converted.input_names != input_names:
                raise ExportError(f"the exported graph's inputs are {converted.input_names}, expected "
                                  f"{input_names} (does the module ignore an input?)")
            if converted.output_names != output_names:
                raise ExportError(f"the exported graph's outputs are {converted.output_names}, "
                                  f"expected {output_names}")

            tolerance = dict(FLOAT32_TOLERANCE)
            extra_header: dict = {}
            extra_metadata: dict[str, str] = {}
            if weights_dtype == "float16":
                stored = _store_float16(converted)
                measured = _measure_float16_error(model, stored, examples, golden_outputs,
                                                  input_names, work)
                if measured is None:
                    tolerance = {"relative": FLOAT16_FALLBACK_RELATIVE, "absolute": 1e-5}
                    extra_metadata["float16_measured_relative_error"] = "not measured"
                else:
                    tolerance = {"relative": max(2 * measured, FLOAT16_MIN_RELATIVE), "absolute": 1e-5}
                    extra_metadata["float16_measured_relative_error"] = f"{measured:.3e}"
                extra_metadata["float16_tensors"] = str(len(stored))
                extra_header["float16_weights"] = True
    finally:
        module.train(was_training)

    if label_list is not None:
        _check_labels_match(label_list, converted)
    golden_entries = _add_golden(converted, examples, golden_outputs, tolerance)

    meta = _metadata(module, opset_version, weights_dtype)
    meta.update(extra_metadata)
    meta.update(user_metadata)

    header: dict = {"graph": converted.graph}
    if preprocess_spec is not None:
        header["preprocess"] = preprocess_spec
    if label_list is not None:
        header["labels"] = label_list
    if output_kind is not None:
        header["output_kind"] = output_kind
    if golden_entries:
        header["golden"] = golden_entries
    header["metadata"] = meta
    header.update(extra_header)
    return artifact.write_artifact(path, header, converted.tensors, converted.dtypes)


# ------------------------------------------------------------------------------------------------
# Arguments


def _input_tuple(value: Any, what: str) -> tuple:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    raise ExportError(f"{what} must be a tensor or a non-empty tuple of tensors, got {type(value).__name__}")


def _output_tuple(value: Any) -> tuple:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)):
        flat: list = []
        for item in value:
            flat.extend(_output_tuple(item))
        return tuple(flat)
    if isinstance(value, dict):
        flat = []
        for item in value.values():
            flat.extend(_output_tuple(item))
        return tuple(flat)
    raise ExportError(f"the module returned a {type(value).__name__}; only tensors and (nested) "
                      "tuples/lists/dicts of tensors can be exported")


def _names(names: Sequence[str] | None, count: int, base: str, what: str) -> list[str]:
    if names is None:
        return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]
    names = list(names)
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise ExportError(f"{what} must be {count} non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ExportError(f"{what} contains duplicates: {names!r}")
    return names


def _check_metadata(metadata: dict | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ExportError(f"metadata must be a dict of strings, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ExportError(f"metadata entries must map strings to strings, got {key!r}: {value!r}")
    return dict(metadata)


def _check_labels(labels: Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    labels = list(labels)
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            raise ExportError(f"labels[{index}] is {label!r}; labels must be strings")
    return labels


def _check_labels_match(labels: list[str], converted: artifact.ConvertedGraph) -> None:
    outputs = converted.graph["outputs"]
    if len(outputs) == 1 and outputs[0]["shape"] and isinstance(outputs[0]["shape"][-1], int):
        classes = outputs[0]["shape"][-1]
        if classes != len(labels):
            raise ExportError(f"{len(labels)} labels given but output {outputs[0]['name']!r} has "
                              f"{classes} classes (shape {outputs[0]['shape']})")


def _preprocess_spec(preprocess: Any) -> dict | None:
    if preprocess is None:
        return None
    if isinstance(preprocess, dict):
        if not isinstance(preprocess.get("steps"), list):
            raise ExportError("a preprocess dict must be a PreprocessSpec: {\"steps\": [...]}")
        return preprocess
    from .preprocess import translate

    return translate(preprocess)


def _golden_examples(golden: Any, inputs: tuple) -> list[tuple]:
    if isinstance(golden, bool):
        raise ExportError("golden must be a count or a list of example inputs, not a bool")
    if isinstance(golden, int):
        if golden < 0:
            raise ExportError(f"golden must be >= 0, got {golden}")
        if golden == 0:
            return []
        generator = torch.Generator().manual_seed(GOLDEN_SEED)
        examples = [inputs]
        for _ in range(golden - 1):
            examples.append(tuple(_random_like(x, generator) for x in inputs))
        return examples
    if isinstance(golden, (list, tuple)):
        return [_input_tuple(example, f"golden[{i}]") for i, example in enumerate(golden)]
    raise ExportError(f"golden must be a count or a list of example inputs, got {type(golden).__name__}")


def _random_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if x.dtype.is_floating_point:
        return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.dtype)
    if x.dtype == torch.bool:
        return torch.randint(0, 2, x.shape, generator=generator).to(torch.bool)
    # Integer inputs (token ids, indices): stay within the range the example uses.
    low = int(x.min()) if x.numel() else 0
    high = int(x.max()) if x.numel() else 0
    return torch.randint(low, high + 1, x.shape, generator=generator, dtype=x.dtype)


# ------------------------------------------------------------------------------------------------
# Export and conversion


def _torch_export(module: torch.nn.Module, inputs: tuple, path: str, input_names: list[str],
                  output_names: list[str], dynamic_batch: bool, opset_version: int) -> None:
    kwargs: dict = {"input_names": input_names, "output_names": output_names,
                    "opset_version": opset_version}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {n: {0: "batch"} for n in [*input_names, *output_names]}
    log = io.StringIO()
    try:
        # The dynamo exporter reports progress on stdout; keep it for the error message only.
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            # dynamic_axes works with both exporters and names the symbol; the dynamo exporter
            # merely recommends dynamic_shapes.
            warnings.filterwarnings("ignore", message=".*dynamic_axes.*")
            torch.onnx.export(module, inputs, path, **kwargs)
    except Exception as error:
        progress = log.getvalue().strip()
        raise ExportError(f"torch.onnx.export failed: {type(error).__name__}: {error}"
                          + (f"\n{progress}" if progress else "")) from error
    if not os.path.exists(path):
        raise ExportError("torch.onnx.export did not write a model file")


def _store_float16(converted: artifact.ConvertedGraph) -> list[str]:
    if any(converted.dtypes[n] == "float16" for n in converted.graph["initializers"]):
        raise ExportError("weights_dtype='float16' needs a float32 model, but it already has float16 "
                          "initializers (the loader would upcast them)")
    stored = []
    for name in converted.graph["initializers"]:
        array = converted.tensors[name]
        if converted.dtypes[name] != "float32" or array.size < FLOAT16_MIN_ELEMENTS:
            continue
        if np.abs(array[np.isfinite(array)]).max(initial=0.0) > FLOAT16_MAX:
            continue  # would overflow to inf: keep this one float32
        converted.tensors[name] = artifact.little_endian(array.astype(np.float16), "float16")
        converted.dtypes[name] = "float16"
        stored.append(name)
    return stored


def _measure_float16_error(model: onnx.ModelProto, stored: list[str], examples: list[tuple],
                           outputs: list[tuple], input_names: list[str], work: str) -> float | None:
    """max over goldens/outputs of max|a-e| / max|e| with the float16-rounded weights, run by
    onnxruntime (or onnx's reference evaluator); None when neither can run the model."""
    if not examples:
        return None
    rounded = onnx.ModelProto()
    rounded.CopyFrom(model)
    stored_set = set(stored)
    for index, init in enumerate(rounded.graph.initializer):
        if init.name in stored_set:
            values = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            rounded.graph.initializer[index].CopyFrom(numpy_helper.from_array(values, init.name))
    path = os.path.join(work, "float16-rounded.onnx")
    onnx.save(rounded, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="float16-rounded.onnx.data")
    try:
        run = _onnx_runner(path)
    except Exception:
        return None
    worst = 0.0
    for example, expected in zip(examples, outputs):
        feeds = {n: x.detach().cpu().numpy() for n, x in zip(input_names, example)}
        actual = run(feeds)
        for a, e in zip(actual, expected):
            e = e.detach().cpu().numpy().astype(np.float64)
            a = np.asarray(a, dtype=np.float64)
            scale = float(np.abs(e).max(initial=0.0)) or 1.0
            worst = max(worst, float(np.abs(a - e).max(initial=0.0)) / scale)
    return worst


def _onnx_runner(path: str):
    try:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(path)
        return lambda feeds: evaluator.run(None, feeds)


def _add_golden(converted: artifact.ConvertedGraph, examples: list[tuple], outputs: list[tuple],
                tolerance: dict) -> list[dict]:
    graph_inputs = converted.graph["inputs"]
    graph_outputs = converted.graph["outputs"]
    entries = []
    for index, (example, result) in enumerate(zip(examples, outputs)):
        if len(example) != len(graph_inputs):
            raise ExportError(f"golden example {index} has {len(example)} inputs; the graph has "
                              f"{len(graph_inputs)}")
        if len(result) != len(graph_outputs):
            raise ExportError(f"golden example {index} produced {len(result)} outputs; the graph has "
                              f"{len(graph_outputs)}")
        entry: dict = {"inputs": {}, "outputs": {}}
        for kind, values, infos in (("inputs", example, graph_inputs), ("outputs", result, graph_outputs)):
            for value, info in zip(values, infos):
                table_name = f"golden.{index}.{info['name']}"
                what = f"golden example {index} {kind[:-1]} {info['name']!r}"
                array = value.detach().cpu().contiguous().numpy()
                dtype = artifact.dtype_name_of_array(array, what)
                if dtype != info["dtype"]:
                    raise ExportError(f"{what} has dtype {dtype}, the graph expects {info['dtype']}")
                _check_shape(list(array.shape), info["shape"], what)
                if table_name in converted.tensors:
                    raise ExportError(f"tensor name {table_name!r} is already used by the model")
                converted.tensors[table_name] = artifact.little_endian(array, dtype)
                converted.dtypes[table_name] = dtype
                entry[kind][info["name"]] = table_name
        entry["tolerance"] = dict(tolerance)
        entry["source"] = "pytorch"
        entries.append(entry)
    return entries


def _check_shape(shape: list[int], declared: list, what: str) -> None:
    if len(shape) != len(declared) or any(isinstance(d, int) and d != s for s, d in zip(shape, declared)):
        raise ExportError(f"{what} has shape {shape}; the graph declares {declared}")


def _metadata(module: torch.nn.Module, opset_version: int, weights_dtype: str) -> dict[str, str]:
    cls = type(module)
    meta = {
        "producer": f"apus-export {__version__}",
        "torch": torch.__version__,
    }
    try:
        import torchvision

        meta["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    meta["onnx"] = onnx.__version__
    meta["onnx_opset"] = str(opset_version)
    meta["source"] = f"{cls.__module__}.{cls.__qualname__}"
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["weights_dtype"] = weights_dtype
    return meta
