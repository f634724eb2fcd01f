"""Metrics with MMSegmentation's conventions, the evaluation loop, its results files and the intervals
and comparisons of their scores."""

from .bootstrap import (
    bootstrap_interval,
    format_comparison,
    format_groups,
    format_interval,
    paired_difference,
    sampling_units,
)
from .evaluate import STOPPED_ELSEWHERE, EvaluationStopped, PartialScores, evaluate
from .metrics import (
    ConfidenceCalibration,
    SegmentationMetric,
    area_scores,
    category_scores,
    class_areas,
    format_calibration,
    format_categories,
    format_results,
    image_scores,
    majority_class_miou,
    most_confused,
)
from .predictions import PredictionFolder, evaluate_predictions
from .results import (
    areas_for_json,
    areas_from_json,
    check_same_images,
    check_tested_alike,
    compare_results,
    dataset_image_groups,
    group_scores,
    hardest_first,
    image_names,
    pool_results,
    read_results,
    resampled_scores,
    results_for_json,
    test_record,
    write_per_image,
    write_results,
)
from .temperature import fit_temperature, pixel_logits

__all__ = ["ConfidenceCalibration", "EvaluationStopped", "PartialScores", "PredictionFolder", "STOPPED_ELSEWHERE",
           "SegmentationMetric", "area_scores", "areas_for_json", "areas_from_json", "bootstrap_interval",
           "category_scores", "check_same_images", "check_tested_alike", "class_areas", "compare_results",
           "dataset_image_groups", "evaluate", "evaluate_predictions", "fit_temperature", "format_calibration",
           "format_categories", "format_comparison", "format_groups", "format_interval", "format_results",
           "group_scores", "hardest_first", "image_names", "image_scores", "majority_class_miou", "most_confused",
           "paired_difference", "pixel_logits", "pool_results", "read_results", "resampled_scores", "results_for_json",
           "sampling_units", "test_record", "write_per_image", "write_results"]
