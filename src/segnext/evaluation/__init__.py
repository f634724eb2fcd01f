"""Metrics with MMSegmentation's conventions and the evaluation loop."""

from .evaluate import evaluate, results_for_json, write_results
from .metrics import SegmentationMetric, format_results, majority_class_miou, most_confused

__all__ = ["SegmentationMetric", "evaluate", "format_results", "majority_class_miou", "most_confused",
           "results_for_json", "write_results"]
