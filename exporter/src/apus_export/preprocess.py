"""Translate torchvision preprocessing into the Apus PreprocessSpec JSON.

The spec describes what happens to a decoded RGB image (a PIL image on the Python side) before it
reaches the model. Only transforms whose result on a PIL image the Swift side reproduces exactly
are translated; everything else raises `UnsupportedTransformError` naming the transform's class and
its position, so an artifact never silently carries a different pipeline than the one the model
was validated with.

Supported (torchvision.transforms and, where the class exists, torchvision.transforms.v2):
Compose (nested, flattened), Resize, CenterCrop, Pad (constant, integer fill), ToTensor,
PILToTensor, ConvertImageDtype(torch.float32), Normalize, the `ImageClassification` preset that
`weights.transforms()` returns, and from v2 also ToImage (== PILToTensor for PIL input),
ToDtype(torch.float32, scale=True) (== ConvertImageDtype) and Identity (no step).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import UnsupportedTransformError

__all__ = ["translate", "UnsupportedTransformError"]

# PIL's resampling constants, which torchvision accepts in place of InterpolationMode.
_PIL_INTERPOLATION = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "lanczos", 4: "box", 5: "hamming"}
_SUPPORTED_INTERPOLATION = ("nearest", "bilinear", "bicubic")

# Stages of the image as it flows through the pipeline; used to refuse orders whose torchvision
# semantics differ from what the spec's ops mean (e.g. Resize on a tensor is not PIL's resize).
_IMAGE, _UINT8_TENSOR, _FLOAT_TENSOR = "image", "uint8 tensor", "float tensor"


def translate(transform: Any) -> dict:
    """Return the PreprocessSpec (``{"steps": [...]}``) equivalent to a torchvision transform.

    `transform` may be a single transform, a ``Compose`` (v1 or v2), a ``torch.nn.Sequential`` or a
    plain list/tuple of transforms. Raises `UnsupportedTransformError` for anything the spec cannot
    express exactly.
    """
    steps: list[dict] = []
    state = {"stage": _IMAGE}
    _translate_into(transform, "transform", steps, state)
    return {"steps": steps}


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _refuse(obj: Any, where: str, why: str) -> UnsupportedTransformError:
    return UnsupportedTransformError(f"{where} ({_class_name(obj)}): {why}")


def _children(transform: Any) -> list | None:
    """The sub-transforms of a container transform, or None if it is not a container."""
    if isinstance(transform, (list, tuple)):
        return list(transform)
    name = type(transform).__name__
    module = type(transform).__module__
    if name == "Compose" and module.startswith("torchvision.transforms"):
        return list(transform.transforms)
    try:
        import torch

        if type(transform) is torch.nn.Sequential:
            return list(transform)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return None


def _translate_into(transform: Any, where: str, steps: list, state: dict) -> None:
    children = _children(transform)
    if children is not None:
        for index, child in enumerate(children):
            _translate_into(child, f"{where}[{index}]", steps, state)
        return

    name = type(transform).__name__
    module = type(transform).__module__
    is_v1 = module.startswith("torchvision.transforms.transforms")
    is_v2 = module.startswith("torchvision.transforms.v2")
    is_preset = module == "torchvision.transforms._presets" and name == "ImageClassification"

    if is_preset:
        _preset_steps(transform, where, steps, state)
        return
    if type(transform).__module__ == "torch.nn.modules.linear" and name == "Identity":
        return
    if not (is_v1 or is_v2):
        raise _refuse(transform, where, "not a torchvision transform the Apus preprocessing spec supports "
                      "(supported: Compose, Resize, CenterCrop, Pad, ToTensor, PILToTensor, "
                      "ConvertImageDtype(torch.float32), Normalize, ImageClassification preset)")

    if name == "Resize":
        _require_stage(transform, where, state, _IMAGE, "Resize must act on the PIL image (before "
                       "ToTensor/PILToTensor): torchvision's tensor resize is a different algorithm")
        steps.append(_resize_step(transform, where, transform.size, transform.interpolation,
                                  getattr(transform, "max_size", None)))
    elif name == "CenterCrop":
        steps.append({"op": "center_crop", "size": _size_list(transform, where, transform.size)})
    elif name == "Pad":
        steps.append(_pad_step(transform, where))
    elif name == "ToTensor":
        _require_stage(transform, where, state, _IMAGE, "ToTensor expects a PIL image")
        steps.append({"op": "to_tensor"})
        state["stage"] = _FLOAT_TENSOR
    elif name in ("PILToTensor", "ToImage") and (name == "PILToTensor" or is_v2):
        _require_stage(transform, where, state, _IMAGE, f"{name} expects a PIL image")
        steps.append({"op": "pil_to_tensor"})
        state["stage"] = _UINT8_TENSOR
    elif name == "ConvertImageDtype":
        _convert_dtype_step(transform, where, transform.dtype, steps, state)
    elif name == "ToDtype" and is_v2:
        dtype = transform.dtype
        if isinstance(dtype, dict):
            raise _refuse(transform, where, "per-type dtype dictionaries are not supported")
        if not getattr(transform, "scale", False):
            raise _refuse(transform, where, "ToDtype without scale=True (a plain cast) is not supported; "
                          "use ToDtype(torch.float32, scale=True)")
        _convert_dtype_step(transform, where, dtype, steps, state)
    elif name == "Normalize":
        if state["stage"] != _FLOAT_TENSOR:
            raise _refuse(transform, where, f"Normalize needs a float tensor but gets a {state['stage']} "
                          "here (add ToTensor or PILToTensor + ConvertImageDtype before it)")
        steps.append({"op": "normalize", "mean": _floats(transform, where, transform.mean, "mean"),
                      "std": _floats(transform, where, transform.std, "std")})
    elif name == "Identity" and is_v2:
        return
    else:
        raise _refuse(transform, where, "this transform has no equivalent in the Apus preprocessing spec "
                      "(supported: Compose, Resize, CenterCrop, Pad, ToTensor, PILToTensor, "
                      "ConvertImageDtype(torch.float32), Normalize, ImageClassification preset)")


def _require_stage(transform: Any, where: str, state: dict, stage: str, why: str) -> None:
    if state["stage"] != stage:
        raise _refuse(transform, where, f"{why}; here the input is a {state['stage']}")


def _preset_steps(preset: Any, where: str, steps: list, state: dict) -> None:
    # ImageClassification.forward: resize -> center_crop -> pil_to_tensor (PIL input) ->
    # convert_image_dtype(float) -> normalize.
    _require_stage(preset, where, state, _IMAGE, "the ImageClassification preset expects a PIL image")
    steps.append(_resize_step(preset, where, preset.resize_size, preset.interpolation, None))
    steps.append({"op": "center_crop", "size": _size_list(preset, where, preset.crop_size)})
    steps.append({"op": "pil_to_tensor"})
    steps.append({"op": "convert_image_dtype", "dtype": "float32"})
    steps.append({"op": "normalize", "mean": _floats(preset, where, preset.mean, "mean"),
                  "std": _floats(preset, where, preset.std, "std")})
    state["stage"] = _FLOAT_TENSOR


def _interpolation_name(transform: Any, where: str, interpolation: Any) -> str:
    if isinstance(interpolation, bool):
        raise _refuse(transform, where, f"invalid interpolation {interpolation!r}")
    if isinstance(interpolation, numbers.Integral):
        name = _PIL_INTERPOLATION.get(int(interpolation), f"PIL resample {int(interpolation)}")
    else:
        value = getattr(interpolation, "value", interpolation)
        name = str(value).lower()
    if name not in _SUPPORTED_INTERPOLATION:
        raise _refuse(transform, where, f"interpolation {name!r} is not supported "
                      f"(supported: {', '.join(_SUPPORTED_INTERPOLATION)})")
    return name


def _resize_step(transform: Any, where: str, size: Any, interpolation: Any, max_size: Any) -> dict:
    if size is None:
        raise _refuse(transform, where, "Resize(size=None, max_size=...) is not supported")
    sizes = _size_list(transform, where, size)
    # torchvision always antialiases PIL images, whatever `antialias` says (True, None or 'warn');
    # the spec's pipeline runs on decoded images, so the step is antialiased.
    step = {"op": "resize", "size": sizes,
            "interpolation": _interpolation_name(transform, where, interpolation), "antialias": True}
    if max_size is not None:
        if len(sizes) != 1:
            raise _refuse(transform, where, "max_size is only allowed with a single (smaller-edge) size")
        max_size = _positive_int(transform, where, max_size, "max_size")
        if max_size <= sizes[0]:
            raise _refuse(transform, where, f"max_size {max_size} must be greater than size {sizes[0]}")
        step["max_size"] = max_size
    return step


def _positive_int(transform: Any, where: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise _refuse(transform, where, f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _size_list(transform: Any, where: str, size: Any) -> list[int]:
    """torchvision's size argument as a list: [s] (int or 1-sequence) or [h, w]."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return [_positive_int(transform, where, size, "size")]
    if isinstance(size, (list, tuple)) and len(size) in (1, 2):
        return [_positive_int(transform, where, s, "size") for s in size]
    raise _refuse(transform, where, f"size must be an int or a 1- or 2-element sequence, got {size!r}")


def _pad_step(transform: Any, where: str) -> dict:
    mode = getattr(transform, "padding_mode", "constant")
    if mode != "constant":
        raise _refuse(transform, where, f"padding_mode {mode!r} is not supported (only 'constant')")
    fill = transform.fill
    if isinstance(fill, bool) or not isinstance(fill, numbers.Integral):
        raise _refuse(transform, where, f"fill must be an int, got {fill!r}")
    padding = transform.padding
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        values = [int(padding)] * 4
    elif isinstance(padding, (list, tuple)) and len(padding) in (1, 2, 4) and all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding):
        p = [int(v) for v in padding]
        values = p * 4 if len(p) == 1 else (p * 2 if len(p) == 2 else p)  # [l,t,r,b]
    else:
        raise _refuse(transform, where, f"padding must be an int or a 1-, 2- or 4-element int sequence, "
                      f"got {padding!r}")
    if any(v < 0 for v in values):
        raise _refuse(transform, where, f"negative padding {values} is not supported")
    return {"op": "pad", "padding": values, "fill": int(fill), "padding_mode": "constant"}


def _convert_dtype_step(transform: Any, where: str, dtype: Any, steps: list, state: dict) -> None:
    import torch

    if dtype is not torch.float32:
        raise _refuse(transform, where, f"only conversion to torch.float32 is supported, got {dtype}")
    if state["stage"] == _IMAGE:
        raise _refuse(transform, where, "image dtype conversion needs a tensor (add PILToTensor before it)")
    steps.append({"op": "convert_image_dtype", "dtype": "float32"})
    state["stage"] = _FLOAT_TENSOR


def _floats(transform: Any, where: str, values: Any, what: str) -> list[float]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, numbers.Real):
        values = [values]
    try:
        result = [float(v) for v in values]
    except (TypeError, ValueError):
        raise _refuse(transform, where, f"{what} must be a sequence of numbers, got {values!r}") from None
    if not result:
        raise _refuse(transform, where, f"{what} is empty")
    if not all(math.isfinite(v) for v in result):
        raise _refuse(transform, where, f"{what} {result} is not finite")
    if what == "std" and any(v == 0 for v in result):
        raise _refuse(transform, where, f"std {result} contains zero")
    return result
