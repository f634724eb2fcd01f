"""segnext: SegNeXt semantic segmentation, exact to the authors' code, on any PyTorch device."""

from .checkpoint import CheckpointError, read_checkpoint, save_model
from .metrics import SegmentationMetric
from .models import DEFAULT_NMF_SEED, SegNeXt, SegNeXtConfig, create_model, list_models
from .optimize import optimize_for_inference
from .export import export_onnx
from .predict import Segmenter

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "DEFAULT_NMF_SEED", "SegNeXt", "SegNeXtConfig", "create_model", "list_models",
    "read_checkpoint", "save_model", "SegmentationMetric", "optimize_for_inference", "export_onnx", "Segmenter",
]
