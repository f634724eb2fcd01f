"""Values shared by every layer of the package, defined once."""

from __future__ import annotations

# The label of pixels that count in no metric and no loss (void, unlabelled, padding), as in MMSegmentation.
IGNORE_INDEX = 255

# ImageNet normalisation in RGB order (0..255 pixels), as every official SegNeXt config uses.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# The default `nmf_seed` of models built for inference: fixed NMF bases, so a prediction depends
# on nothing but the image (None restores the official random draw at every forward).
DEFAULT_NMF_SEED = 0

# The default `nmf_seed` of functions that load a model: the seed it was saved with (model folders and
# training checkpoints record it), else DEFAULT_NMF_SEED.
SAVED_NMF_SEED = "saved"

# Normalised channel means beyond this many standard deviations say that an image is in other units
# than the normalisation's mean and std (8-bit RGB with the ImageNet values stays within about 2.2;
# 12-bit data with them lies about 17 away).
NORMALISED_MEAN_LIMIT = 6.0

# File endings read as images (any letter case), for dataset folders and `segnext predict` inputs.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jfif")

# File endings of arrays of bands (.npy), read where images may have other channels than RGB (a model's
# in_channels: `segnext.data.read_bands`).
ARRAY_SUFFIXES = (".npy",)
TIFF_SUFFIXES = (".tif", ".tiff")

# File endings read as videos by `segnext predict` (OpenCV decodes them).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

# The per-class metrics `SegmentationMetric.compute()` gives (each with its mean, "m" + name), in the
# order tables show them, and the columns shown unless asked for others.
PER_CLASS_METRICS = ("IoU", "Acc", "Dice", "Precision", "Recall")
DEFAULT_METRIC_COLUMNS = ("IoU", "Acc")

# The benchmarks whose evaluation servers `segnext predict --submission` writes for (their test labels
# are not public), as named by `segnext.data.submission.SUBMISSION_FORMATS`.
SUBMISSION_BENCHMARKS = ("cityscapes", "ade20k", "voc")
