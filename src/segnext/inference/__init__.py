"""Test-time inference: settings, the official test procedure, the fast inference model, images
in / labels out (`Segmenter`), ONNX export."""

from .export import export_onnx
from .optimize import OptimizedSegNeXt, optimize_for_inference
from .preprocess import PreparedImage, prepare, resize_for_test, to_rgb_array, to_tensor
from .segment import (
    ClassProbabilities,
    evaluation_mode,
    model_logits,
    segment,
    segment_group,
    segment_group_confidence,
    segment_group_scores,
    segment_group_with_probabilities,
    segment_logits,
    slide_logits,
    slide_logits_in_bands,
)
from .segmenter import OnnxModel, Segmenter, leave_unsure
from .settings import MS_RATIOS, TestConfig, default_test_config, override_test_config, test_config_for

__all__ = [
    "ClassProbabilities", "MS_RATIOS", "OnnxModel", "OptimizedSegNeXt", "PreparedImage", "Segmenter", "TestConfig",
    "default_test_config", "evaluation_mode", "export_onnx", "leave_unsure", "model_logits", "optimize_for_inference",
    "override_test_config", "prepare", "resize_for_test", "segment", "segment_group", "segment_group_confidence",
    "segment_group_scores", "segment_group_with_probabilities", "segment_logits", "slide_logits",
    "slide_logits_in_bands", "test_config_for",
    "to_rgb_array", "to_tensor",
]
