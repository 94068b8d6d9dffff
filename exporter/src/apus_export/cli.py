"""Command line: export a torchvision classifier to an `.apus` artifact.

    python -m apus_export torchvision:resnet50 -o resnet50.apus [--weights-file state_dict.pt]
        [--weights DEFAULT|IMAGENET1K_V1|none] [--weights-dtype float16] [--golden N]
        [--batch 1] [--dynamic-batch]

Nothing is downloaded: the architecture is built with weights=None, the weights come from
--weights-file (a state dict saved by torch.save), and only the metadata of torchvision's weights
enum (preset transforms, category names) is read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from .errors import ExportError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m apus_export",
                                     description="Export a torchvision model to an .apus artifact.")
    parser.add_argument("model", help="torchvision:<name>, e.g. torchvision:resnet50")
    parser.add_argument("-o", "--output", required=True, help="the .apus file to write")
    parser.add_argument("--weights-file", help="state dict (torch.save) to load into the model; "
                        "without it the weights are random (seeded)")
    parser.add_argument("--weights", default=None,
                        help="the torchvision weights entry whose preset transforms and categories "
                             "are used (DEFAULT, IMAGENET1K_V1, ...) or 'none' for neither; by default "
                             "the entry whose checkpoint file name equals --weights-file's, else DEFAULT")
    parser.add_argument("--weights-dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--golden", type=int, default=3, help="number of golden examples (default 3)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the example input")
    parser.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and inputs")
    return parser.parse_args(argv)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_state_dict(path: str) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state


def _entry_for_file(enum, weights_file: str | None):
    """The weights entry whose download URL names the same checkpoint file (torchvision file names
    carry a hash prefix, so equal names mean the same checkpoint)."""
    if not weights_file:
        return None
    base = os.path.basename(weights_file)
    for entry in enum:
        if os.path.basename(getattr(entry, "url", "")) == base:
            return entry
    return None


def run(argv=None) -> int:
    args = _parse(argv)
    import torch
    import torchvision

    from .exporter import export

    source, _, name = args.model.partition(":")
    if source != "torchvision" or not name:
        raise ExportError(f"model must be given as torchvision:<name>, got {args.model!r}")
    if name not in torchvision.models.list_models():
        raise ExportError(f"torchvision has no model {name!r}")
    if args.batch < 1:
        raise ExportError(f"--batch must be >= 1, got {args.batch}")

    torch.manual_seed(args.seed)
    model = torchvision.models.get_model(name, weights=None)
    metadata = {"torchvision_model": name}
    if args.weights_file:
        model.load_state_dict(_load_state_dict(args.weights_file))
        metadata["weights_file"] = os.path.basename(args.weights_file)
        metadata["weights_file_sha256"] = _sha256(args.weights_file)
    else:
        print(f"note: no --weights-file: {name} gets random weights (seed {args.seed})", file=sys.stderr)
        metadata["weights_file"] = "none (random weights)"

    preprocess = labels = None
    image_size = 224
    if (args.weights or "").lower() != "none":
        try:
            enum = torchvision.models.get_model_weights(name)
        except (ValueError, KeyError):
            raise ExportError(f"torchvision has no weights metadata for {name}; use --weights none") from None
        try:
            if args.weights is None:
                entry = _entry_for_file(enum, args.weights_file) or enum.DEFAULT
            else:
                entry = enum[args.weights] if args.weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            choices = ", ".join(["DEFAULT", *enum.__members__])
            raise ExportError(f"{name} has no weights entry {args.weights!r} (choices: {choices})") from None
        preprocess = entry.transforms()
        labels = entry.meta.get("categories")
        crop = getattr(preprocess, "crop_size", None)
        if isinstance(crop, (list, tuple)) and crop:
            image_size = int(crop[0])
        metadata["torchvision_weights"] = str(entry)
        print(f"preprocessing and labels from {entry}", file=sys.stderr)

    generator = torch.Generator().manual_seed(args.seed)
    example = torch.randn((args.batch, 3, image_size, image_size), generator=generator)
    header = export(model, example, args.output, preprocess=preprocess, labels=labels, golden=args.golden,
                    weights_dtype=args.weights_dtype, output_kind="logits", input_names=["input"],
                    output_names=["logits"], dynamic_batch=args.dynamic_batch, metadata=metadata,
                    name=name)

    graph = header["graph"]
    size = os.path.getsize(args.output)
    golden = header.get("golden", [])
    print(f"wrote {args.output}: {size:,} bytes ({size / 1e6:.1f} MB)")
    print(f"  graph {graph['name']}: {len(graph['nodes'])} nodes, {len(graph['initializers'])} initializers, "
          f"opset {graph['opset_imports']}")
    for value in graph["inputs"]:
        print(f"  input  {value['name']}: {value['dtype']} {value['shape']}")
    for value in graph["outputs"]:
        print(f"  output {value['name']}: {value['dtype']} {value['shape']}")
    print(f"  tensors: {len(header['tensors'])}, data {header['data_length']:,} bytes, "
          f"weights {args.weights_dtype}")
    if golden:
        print(f"  golden examples: {len(golden)}, tolerance {golden[0]['tolerance']}")
    else:
        print("  golden examples: 0")
    if "preprocess" in header:
        print(f"  preprocess: {' -> '.join(step['op'] for step in header['preprocess']['steps'])}")
    if "labels" in header:
        print(f"  labels: {len(header['labels'])}")
    print(f"  data sha256: {header['integrity']['data_sha256']}")
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
