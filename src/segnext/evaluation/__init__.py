"""Metrics with MMSegmentation's conventions and the evaluation loop."""

from .evaluate import evaluate, hardest_first, results_for_json, write_per_image, write_results
from .metrics import (
    ConfidenceCalibration,
    SegmentationMetric,
    class_areas,
    format_results,
    image_scores,
    majority_class_miou,
    most_confused,
)

__all__ = ["ConfidenceCalibration", "SegmentationMetric", "class_areas", "evaluate", "format_results", "hardest_first",
           "image_scores", "majority_class_miou", "most_confused", "results_for_json", "write_per_image",
           "write_results"]
