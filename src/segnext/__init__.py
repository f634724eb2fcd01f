"""segnext: SegNeXt semantic segmentation, exact to the authors' code, on any PyTorch device.

    import segnext
    model = segnext.create_model("segnext_t", pretrained="ade20k")       # published weights, cached
    labels = segnext.Segmenter.from_checkpoint("my-model/").predict("photo.jpg")

The names below are imported on first use, so that `import segnext` (and `segnext --help`) stays
fast and PyTorch loads only when a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "list_models": "segnext.models",
    "list_pretrained": "segnext.models",
    "create_model": "segnext.models",
    "SegNeXt": "segnext.models",
    "SegNeXtConfig": "segnext.models",
    "DEFAULT_NMF_SEED": "segnext.models",
    "CheckpointError": "segnext.models",
    "read_checkpoint": "segnext.models",
    "save_model": "segnext.models",
    "segmentation_loss": "segnext.models",
    "Segmenter": "segnext.inference",
    "TestConfig": "segnext.inference",
    "optimize_for_inference": "segnext.inference",
    "export_onnx": "segnext.inference",
    "SegmentationMetric": "segnext.evaluation",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .evaluation import SegmentationMetric  # noqa: F401
    from .inference import Segmenter, TestConfig, export_onnx, optimize_for_inference  # noqa: F401
    from .models import (  # noqa: F401
        DEFAULT_NMF_SEED,
        CheckpointError,
        SegNeXt,
        SegNeXtConfig,
        create_model,
        list_models,
        list_pretrained,
        read_checkpoint,
        save_model,
        segmentation_loss,
    )


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segnext' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__
