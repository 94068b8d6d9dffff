"""apus_export: export PyTorch models to Apus `.apus` artifacts.

    import apus_export
    apus_export.export(model, example_input, "resnet50.apus",
                       preprocess=weights.transforms(), labels=weights.meta["categories"])
"""

from ._version import __version__
from .errors import ExportError, UnsupportedTransformError
from .exporter import export
from . import preprocess

__all__ = ["export", "preprocess", "ExportError", "UnsupportedTransformError", "__version__"]
