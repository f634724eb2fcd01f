"""The training/evaluation config: one YAML file, validated against the dataclasses below.

A config file has the sections `model`, `data`, `optimizer`, `schedule`, `loss`, `train` and
`evaluation` (each one a dataclass here, with the official SegNeXt recipe as defaults), plus an
optional `description`. A file may start from others with `_base_: NAME` (or a list): a path
relative to the file, or the name of a shipped config (`ade20k/base`, `segnext_t_ade20k_512x512_160k`);
sections are merged key by key, the file's own values winning.

Command-line overrides are dotted `key=value` strings, the value parsed as YAML:
`train.max_iters=2000`, `data.crop_size=[256,256]`, `model.options.drop_path_rate=0.0`.

Every key is checked: an unknown or misspelled one is an error that names the file and the key and
suggests the closest valid key (`train.max_iter` -> "Did you mean 'train.max_iters'?").
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from ..constants import IMAGENET_MEAN, IMAGENET_STD, NORMALISED_MEAN_LIMIT
from ..devices import device_defaults
from ..inference.settings import TestConfig
from ..utils import did_you_mean, json_safe

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # the shipped configs


@dataclass
class ModelSection:
    name: str = "segnext_t"
    num_classes: Optional[int] = None  # None: the dataset's number of classes
    pretrained: Optional[str] = None  # published weights: "imagenet" (the encoder, as the paper) or "ade20k"
    backbone_checkpoint: Optional[str] = None  # or the encoder from a file (mscan_t.pth ...)
    checkpoint: Optional[str] = None  # start from a whole model instead (fine-tuning; wins over the two above)
    # Fine-tuning on other classes: the new classifier's rows of the classes the weights name too
    # (case and spacing aside) are copied from them; false: every row starts anew.
    match_class_names: bool = True
    options: Dict[str, Any] = field(default_factory=dict)  # SegNeXtConfig fields, e.g. drop_path_rate
    sync_bn: bool = False  # SyncBatchNorm across GPUs (CUDA + DDP only)
    # Encoder stages not trained, from the first (MMSegmentation's frozen_stages, with norm_eval):
    # 0 trains everything (the official recipes), 4 the decoder alone (fine-tuning on few images).
    frozen_stages: int = 0

    def checked_num_classes(self, dataset) -> int:
        """num_classes, which must be the dataset's when given."""
        from ..data.selection import SelectedLabels

        if self.num_classes not in (None, dataset.num_classes):
            selected = " (data.classes)" if isinstance(dataset.label_map, SelectedLabels) else ""
            raise ConfigError(f"model.num_classes is {self.num_classes} but the {dataset.name} dataset has "
                              f"{dataset.num_classes} classes{selected}; set model.num_classes={dataset.num_classes} "
                              f"or null (the dataset's number).")
        return dataset.num_classes

    def starting_point(self) -> str:
        """Where the weights of a run start from, in words."""
        if self.checkpoint is not None:
            return f"model.checkpoint {self.checkpoint}"
        if self.pretrained is not None:
            return f"the published weights {self.name}.{self.pretrained}"
        if self.backbone_checkpoint is not None:
            return f"the encoder of model.backbone_checkpoint {self.backbone_checkpoint}"
        return "random initialisation"

    def build(self, dataset, nmf_seed: Optional[int]):
        """(the model this section describes, with the dataset's class names and palette; lines for
        the log saying which tensors came from where).

        A model.checkpoint of other classes than the dataset's is fine-tuned: every tensor is loaded
        but the classifier, which starts anew (the log names it)."""
        from ..models import create_model
        from ..models.hub import hub_reference

        for key in ("backbone_checkpoint", "checkpoint"):
            path = getattr(self, key)
            if path is not None and hub_reference(path) is None and not Path(path).exists():
                raise FileNotFoundError(
                    f"model.{key} {path} does not exist. "
                    + ("Fix the path, or use the published ImageNet encoder with model.pretrained=imagenet "
                       "(downloaded once), or train from scratch with model.backbone_checkpoint=null."
                       if key == "backbone_checkpoint" else "Fix the path or set model.checkpoint=null."))
        if self.checkpoint is None and self.pretrained is not None and self.backbone_checkpoint is not None:
            raise ConfigError(f"model.pretrained ({self.pretrained}) and model.backbone_checkpoint "
                              f"({self.backbone_checkpoint}) both name the encoder's weights; set one of them to null.")
        extra = {}
        if len(dataset.class_names) == dataset.num_classes:
            extra["class_names"] = list(dataset.class_names)
            if len(dataset.palette) == dataset.num_classes:
                extra["palette"] = [list(map(int, c)) for c in dataset.palette]
        lines = []
        if self.checkpoint is not None:
            unused = [f"model.{key} ({getattr(self, key)})" for key in ("pretrained", "backbone_checkpoint")
                      if getattr(self, key) is not None]
            if unused:
                lines.append(f"{' and '.join(unused)} not used: model.checkpoint holds the whole model.")
            model, reports = create_model(self.name, dataset.num_classes, checkpoint=self.checkpoint, nmf_seed=nmf_seed,
                                          ignore_mismatched_sizes=True, match_class_names=self.match_class_names,
                                          output_loading_info=True, **self.options, **extra)
            key = "model.checkpoint"
        else:
            model, reports = create_model(self.name, dataset.num_classes, pretrained=self.pretrained,
                                          backbone_checkpoint=self.backbone_checkpoint, nmf_seed=nmf_seed,
                                          match_class_names=self.match_class_names, output_loading_info=True,
                                          **self.options, **extra)
            key = "model.pretrained" if self.pretrained is not None else "model.backbone_checkpoint"
        lines += [f"{key} {report.summary()}" for report in reports]
        channels = getattr(dataset, "channels", 3)
        if model.config.in_channels != channels:
            raise ConfigError(f"model.checkpoint {self.checkpoint} takes {model.config.in_channels} input channels, "
                              f"and data.mean/data.std normalise {channels}: {CHANNELS_MATCH}")
        temperature = model.config.logit_temperature
        if self.checkpoint is not None and temperature != 1 and "logit_temperature" not in self.options:
            # Fitted to those weights' confidence, which training changes; the loss wants the raw logits.
            model.config.logit_temperature = 1.0
            lines.append(f"model.checkpoint's logit_temperature {temperature:.3f} (segnext calibrate's) is reset to 1 "
                         f"for training: calibrate the trained model again.")
        if not reports:
            lines.append("model: random initialisation (no model.pretrained, model.backbone_checkpoint or "
                         "model.checkpoint)")
        return model, lines


# How the data and a model of other input channels than RGB (SegNeXtConfig.in_channels) agree.
CHANNELS_MATCH = ("give data.mean and data.std one value per input channel of the images, in the units of their "
                  "files (`segnext data stats` computes them), and model.options.in_channels as many")


@dataclass
class HuggingFaceSection:
    """How to read a dataset saved with Hugging Face `datasets` (data.dataset: huggingface)."""

    image_column: str = "image"
    label_column: Optional[str] = None  # None: the other image column (scene_parse_150: annotation)
    classes: Optional[str] = None  # a segnext dataset (ade20k ...), a .json file; None: ROOT/classes.json|id2label.json
    # The label column holds colour masks: each colour is its class's in the palette of `classes`
    # (a classes.json's, with its "ignore_colors" -> 255, or a segnext dataset's).
    label_colors: bool = False


@dataclass
class DataSection:
    dataset: str = "folder"  # a name of segnext.data.DATASETS, or huggingface (a `datasets` save_to_disk folder)
    root: str = ""
    train_split: str = "train"  # several joined with "+" read as one: train+val for a final model
    val_split: str = "val"
    # The official training pipeline: keep-ratio resize to img_scale x ratio, crop, flip, photometric.
    crop_size: Tuple[int, int] = (512, 512)  # (h, w)
    img_scale: Tuple[int, int] = (2048, 512)  # (long, short) bound before the random ratio
    ratio_range: Tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    # The normalisation, for training and test alike: one value per image channel, in the units of the
    # image files (0..255 for RGB). Other than three values: images of that many bands (.npy / TIFF,
    # `segnext.data.read_bands`) for a model of as many input channels (model.options.in_channels).
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    # Read images of three channels as bands too, at all their bits and in their units, not as 8-bit
    # RGB: colour of 16 bits a sample (aerial and satellite scenes as TIFFs or PNGs), data.mean and
    # data.std in its units (`segnext data stats --bands`), data.photometric false. The test reads
    # them alike (it is saved with the model).
    bands: bool = False
    # The value that marks no data in the bands (a DEM's -9999, a satellite band's 0), or null: such
    # samples are read as NaN, the channel's mean once normalised (as float bands' NaN always is),
    # in training and test alike (it is saved with the model), so that no outlier reaches the network.
    nodata: Optional[float] = None
    # Where an image holds no data (every band NaN or data.nodata; a TIFF's mask, "no data" value or
    # alpha band, as GDAL finds them) its pixels are unlabelled in training and evaluation, as
    # `segnext data tile` and `segnext predict --geotiff` leave them. true: keep the label map's classes.
    label_no_data: bool = False
    # DataLoader worker processes per training process; null: up to 4 (the official configs'
    # workers_per_gpu), no more than this process's share of the CPUs (`sampler.default_num_workers`).
    num_workers: Optional[int] = None
    # A training file that cannot be read: "error" stops the run naming it; "skip" trains on the next
    # readable sample, logs the file once and counts it, and stops the run when more than
    # max_unreadable_fraction of the training set is unreadable. Validation files must all be readable.
    on_unreadable: str = "error"
    max_unreadable_fraction: float = 0.01
    # An augmentation pipeline of one's own instead of the official one: "module:function" or
    # "path/to/file.py:function" building an albumentations / torchvision.transforms.v2 pipeline
    # (segnext.data.augment; docs/training.md).
    transform: Optional[str] = None
    # Class-selective copy-paste (ClassMix restricted to these classes, `segnext.data.ClassPaste`):
    # with probability copy_paste_prob, the pixels of these classes (names, as the dataset's) in a
    # second, independently augmented training sample are pasted onto each sample. Empty: off.
    copy_paste_classes: List[str] = field(default_factory=list)
    copy_paste_prob: float = 0.5
    # Some of the dataset's classes, or classes merged from several (`segnext.data.selection`):
    # [road, car] (the others ignored), {vehicle: [car, bus], road: road}, {road: road, other: "*"}.
    classes: Any = None
    huggingface: HuggingFaceSection = field(default_factory=HuggingFaceSection)

    def build(self, split: str, transform=None, seed: int = 0, channels: Optional[int] = None,
              bands: Optional[bool] = None):
        """The dataset's `split` (`segnext.data.build_dataset`), after checking the root. channels: the
        images' (a model's input channels); by default as many as data.mean's values. bands: whether
        three are read as bands (a model's test settings' `bands`); by default data.bands."""
        from ..data import build_dataset
        from ..data.hf import DATASET_NAME, build_huggingface_dataset
        from ..data.selection import select_classes

        if not self.root:
            raise ConfigError(f"data.root is empty: set it to the {self.dataset} dataset directory, "
                              f"e.g. `segnext train CONFIG data.root=/path/to/data`.")
        root = Path(self.root).expanduser()
        if not root.exists():
            from ..data import DATASETS

            prepare = DATASETS[self.dataset].prepare if self.dataset in DATASETS else ""
            raise FileNotFoundError(
                f"data.root {self.root} does not exist. Point it at the {self.dataset} dataset with "
                f"`data.root=/path/to/data` on the command line"
                + (f"; to make its layout: {prepare}" if prepare else "") + ". See docs/datasets.md for downloads.")
        channels = len(self.mean) if channels is None else channels
        bands = self.bands if bands is None else bands
        if self.dataset == DATASET_NAME:
            if channels != 3 or bands:
                raise ConfigError(f"data.dataset {DATASET_NAME}: its images are read as 8-bit RGB, and the model "
                                  f"reads {channels} channels as bands; bands are read from files (a folder dataset "
                                  f"of .npy arrays or TIFFs)")
            hf = self.huggingface
            dataset = build_huggingface_dataset(root, split, hf.image_column, hf.label_column, hf.classes,
                                                label_colors=hf.label_colors,
                                                transform=transform, seed=seed)
        else:
            dataset = build_dataset(self.dataset, str(root), split, transform=transform, seed=seed, channels=channels,
                                    bands=bands, nodata=self.nodata, label_no_data=self.label_no_data)
        if self.classes is not None:
            dataset = select_classes(dataset, self.classes)
        if self.transform is not None and transform is not None:
            dataset[0]  # try a pipeline of one's own on a sample now: a mistake shows before any training
        return dataset

    def training_data(self) -> Optional[dict]:
        """What a model trained on this section's data records of it (`segnext.save_model`): the
        dataset, the training split and its frames per group (None where the names carry no groups);
        None for a Hugging Face dataset."""
        from ..data import DATASETS
        from ..data.datasets import get_spec
        from ..data.splits import split_groups

        if self.dataset not in DATASETS:
            return None
        root = Path(self.root).expanduser()
        return {"dataset": self.dataset, "split": self.train_split,
                "groups": split_groups(get_spec(self.dataset, root), root, self.train_split) or None}

    def normalisation_note(self, dataset, images: int = 2) -> Optional[str]:
        """A warning when the first training images, normalised with data.mean/data.std, have a
        channel mean further than `NORMALISED_MEAN_LIMIT` from 0: the statistics are not in the
        images' units (the 0..255 ImageNet values for colour read as 16-bit bands, say), and the
        network would see inputs far from any it was built or trained for. None when they agree or
        no image could be read (training reports an unreadable file itself)."""
        import numpy as np

        from ..data import DataError
        from ..inference.preprocess import normalised_channel_means

        channels = len(self.mean)
        for index in range(min(images, len(dataset))):
            try:
                sample = dataset.load(index)
            except (DataError, OSError):
                return None
            normalised = normalised_channel_means(sample["image"], self.mean, self.std)
            if np.abs(normalised).max() > NORMALISED_MEAN_LIMIT:
                shown = ", ".join(f"{value:.1f}" for value in normalised)
                command = (f"segnext data stats {self.dataset} {self.root} --split {self.train_split}"
                           + (f" --channels {channels}" if channels != 3 else "")
                           + (" --bands" if self.bands else ""))
                return (f"data.mean/data.std normalise the training image {sample.get('path', index)} to channel means "
                        f"of {shown} (a normalisation gives about 0): they are not in the images' units; `{command}` "
                        f"measures them" + ("" if self.bands or channels != 3 else
                                            ", and data.bands=true reads colour of more than 8 bits at all its bits"))
        return None

    def validation_note(self, training_data: Optional[dict] = None) -> Optional[str]:
        """What the val scores are worth when val is training data or shares its sequences (a note for
        the log and results.json), else None (`segnext.data.splits.shared_group_note`).
        training_data: `self.training_data()` when already at hand (its groups are not listed again)."""
        from ..data import DATASETS
        from ..data.datasets import get_spec
        from ..data.splits import shared_group_note

        if self.dataset not in DATASETS:  # a Hugging Face dataset: splits of one DatasetDict, no file names
            return None
        root = Path(self.root).expanduser()
        return shared_group_note(get_spec(self.dataset, root), root, self.train_split, self.val_split,
                                 trained_groups=(training_data or {}).get("groups"))

    def train_transform(self):
        """The official training pipeline with this section's settings, or data.transform's."""
        from ..data import TrainTransform

        if self.transform is not None:
            from ..data.augment import load_transform

            return load_transform(self.transform, self, tuple(self.crop_size), self.mean, self.std)
        return TrainTransform(crop_size=tuple(self.crop_size), img_scale=tuple(self.img_scale),
                              ratio_range=tuple(self.ratio_range), cat_max_ratio=self.cat_max_ratio,
                              flip_prob=self.flip_prob, photometric=self.photometric, mean=tuple(self.mean),
                              std=tuple(self.std))

    def class_paste(self, class_names: Sequence[str]):
        """The `segnext.data.ClassPaste` of copy_paste_classes, given the dataset's class names (None: off)."""
        from ..data import ClassPaste

        if not self.copy_paste_classes:
            return None
        names = [str(name) for name in class_names]
        for wanted in self.copy_paste_classes:
            if wanted not in names:
                raise ConfigError(f"data.copy_paste_classes: {wanted!r} is not a class of the {self.dataset} "
                                  f"dataset.{did_you_mean(wanted, names)} Its classes: {', '.join(names)}.")
        return ClassPaste([names.index(wanted) for wanted in self.copy_paste_classes], self.copy_paste_prob)

    def title(self) -> str:
        return f"{self.dataset} ({self.root})" if self.dataset in ("folder", "huggingface") else self.dataset


@dataclass
class OptimizerSection:
    """AdamW with mmcv's `paramwise_cfg`: a parameter takes the settings of the longest key that is a
    substring of its name (`head` before `norm`), lr x lr_mult and weight decay x decay_mult."""

    lr: float = 6e-5
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    custom_keys: Dict[str, Dict[str, float]] = field(default_factory=lambda: {
        "pos_block": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0}, "head": {"lr_mult": 10.0}})
    # Scale the gradients down, all together, so that their global L2 norm is at most this, before each
    # update (MMSegmentation's optim_wrapper clip_grad=dict(max_norm=...)); null: no clipping, as the
    # official SegNeXt configs. The train log then records the norms before clipping.
    clip_grad_norm: Optional[float] = None


@dataclass
class ScheduleSection:
    """Poly decay over train.max_iters with mmcv's linear warm-up multiplied onto it."""

    power: float = 1.0
    min_lr: float = 0.0
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    # Decay over train.max_time_minutes of wall-clock time instead of over max_iters, for a fixed
    # time budget on a machine of unknown speed. The lr then depends on timing: such a run is not
    # bit-reproducible, and a resumed one is not identical to an uninterrupted one.
    by_time: bool = False


@dataclass
class LossSection:
    # "all_pixels": sum of per-pixel cross-entropy / all label pixels, ignored ones included (official,
    # MMSegmentation 0.x avg_non_ignore=False); "valid_pixels": / the non-ignored pixels.
    reduction: str = "all_pixels"
    class_weight: Optional[List[float]] = None  # per-class weights of the cross-entropy
    # Compute resize + cross-entropy in bands of label rows (segnext.segmentation_loss(banded=True)):
    # the same loss and gradient to float rounding, a much faster CPU step; false: the plain path;
    # null: the device's choice (segnext.devices: banded on the CPU, plain on a GPU).
    banded: Optional[bool] = None
    # Online hard example mining (MMSegmentation's OHEMPixelSampler): only pixels whose probability of
    # their true class is below ohem_threshold count, at least ohem_min_kept per image (the hardest);
    # the loss is their mean. null: every pixel counts.
    ohem_threshold: Optional[float] = None
    ohem_min_kept: int = 100000
    # Adds dice_weight x the soft Dice loss (segnext.models.dice_loss: 1 - the mean Dice of the classes
    # in the batch) to the cross-entropy; not in the official recipe: for classes of few pixels (thin
    # cracks, small defects), whose share of a cross-entropy is small. 0: off. Uses the plain loss path.
    dice_weight: float = 0.0

    def check_class_weight(self, dataset) -> None:
        """class_weight, when given, holds a weight for each class of the dataset."""
        if self.class_weight is not None and len(self.class_weight) != dataset.num_classes:
            raise ConfigError(f"loss.class_weight has {len(self.class_weight)} values but the {dataset.name} dataset "
                              f"has {dataset.num_classes} classes ({', '.join(dataset.class_names[:12])}"
                              f"{', ...' if dataset.num_classes > 12 else ''}): give one per class, in that order. "
                              f"`segnext data check` prints the weights of a training split, ready to use.")


@dataclass
class TrainSection:
    max_iters: int = 160000
    batch_size: int = 16  # images per optimizer step in total: processes x micro_batch_size x accumulation
    micro_batch_size: int = 2  # images per forward pass on one process (BatchNorm sees these)
    max_time_minutes: Optional[float] = None  # stop (and evaluate) after this much wall-clock time
    amp: bool = False  # mixed precision: autocast to amp_dtype (fp16 with a gradient scaler)
    amp_dtype: Optional[str] = None  # "bf16" or "fp16"; null: the device's (segnext.devices: bf16 CPU, fp16 CUDA)
    # NHWC model and input; null: the device's choice (segnext.devices: on the CPU, faster steps; on a
    # GPU, NCHW was faster). The same function either way, rounded differently.
    channels_last: Optional[bool] = None
    # On the CPU: the weight gradient of the 1x11 and 1x21 strip convolutions taken on the transposed
    # image (segnext.ops.strip_conv_grad), which oneDNN computes much faster; equal to float rounding.
    transposed_strip_grads: bool = True
    # Recompute each encoder block in the backward pass instead of keeping its activations: less
    # memory (a larger micro_batch_size fits), about a quarter more time per step, the same gradients.
    grad_checkpointing: bool = False
    seed: int = 0
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N
    threads: Optional[int] = None  # torch CPU threads per process, set by `segnext train` (None: torch's)
    log_interval: int = 50
    checkpoint_interval: int = 16000
    keep_checkpoints: int = 2  # the last K iteration checkpoints are kept (best.pt in addition)
    eval_interval: int = 16000  # 0: evaluate only at the end
    # Under torchrun: how long a process waits for the others at a collective operation (gradient
    # averaging, evaluation) before the run stops with an error naming the process that failed or hung.
    distributed_timeout_minutes: float = 10.0
    # Experiment trackers fed the log's numbers (train/loggers.py): tensorboard, mlflow, wandb.
    # None: TensorBoard when it is installed; [] for none.
    loggers: Optional[List[str]] = None
    logger_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # e.g. {mlflow: {experiment: x}}

    def accumulation(self, processes: int) -> int:
        """Gradient-accumulation steps: batch_size = processes x micro_batch_size x accumulation."""
        per_step = processes * self.micro_batch_size
        if self.batch_size % per_step:
            raise ConfigError(f"train.batch_size ({self.batch_size}) must be a multiple of train.micro_batch_size "
                              f"({self.micro_batch_size}) x processes ({processes}) = {per_step}; change one of them.")
        return self.batch_size // per_step


@dataclass
class EvaluationSection(TestConfig):
    """The test-time settings (every field of `segnext.TestConfig`; mean/std are data.mean/data.std)
    plus what to evaluate during training."""

    nmf_seed: Optional[int] = 0  # fixed NMF bases: reproducible numbers (None: the official random draw)
    max_images: Optional[int] = None  # periodic evaluations use only the first N val images
    num_overlays: int = 4  # prediction overlays in the final report


@dataclass
class Config:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    description: str = ""

    def to_dict(self) -> dict:
        """Plain lists/dicts/scalars (YAML- and JSON-safe)."""
        return json_safe(dataclasses.asdict(self))

    def follow_class_selection(self, dataset) -> List[str]:
        """With data.classes, a model.num_classes, loss.class_weight and data.copy_paste_classes written
        for all the dataset's classes (a shipped config's) follow the selection: the number of classes
        selected, the weights of the classes kept (merged classes have no weight to take: that is an
        error), the pasted classes kept as they are. Lines saying what changed."""
        from ..data.selection import SelectedLabels

        selected = getattr(dataset, "label_map", None)
        if not isinstance(selected, SelectedLabels):
            return []
        full, names = len(selected.source_names), ", ".join(dataset.class_names)
        notes = []
        if self.model.num_classes == full != dataset.num_classes:
            self.model.num_classes = dataset.num_classes
            notes.append(f"model.num_classes {full} -> {dataset.num_classes}: data.classes selects {names}")
        weights = self.loss.class_weight
        if weights is not None and len(weights) == full:
            if not all(len(members) == 1 for members in selected.members):
                raise ConfigError(f"loss.class_weight weighs the dataset's {full} classes, but data.classes makes "
                                  f"{dataset.num_classes} of them ({names}), some merged: give one weight per new "
                                  f"class, in that order (`segnext data check {dataset.name} ROOT --split train "
                                  f"--classes SELECTION` prints them), or loss.class_weight=null.")
            self.loss.class_weight = [weights[members[0]] for members in selected.members]
            notes.append(f"loss.class_weight: the weights of the classes selected, {self.loss.class_weight}")
        pasted = self.data.copy_paste_classes
        if pasted and not set(pasted) <= set(dataset.class_names) and set(pasted) <= set(selected.source_names):
            self.data.copy_paste_classes = [name for name in pasted if name in dataset.class_names]
            notes.append(f"data.copy_paste_classes: {', '.join(self.data.copy_paste_classes) or 'none'} (the "
                         f"classes of {', '.join(pasted)} that data.classes keeps as they are)")
        return notes

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def summary(self, model, train_set, val_set, processes: int, device: str, work_dir, workers: int) -> str:
        """Two lines saying what a run trains, on what, how (workers: the data loader's processes)."""
        parameters = sum(p.numel() for p in model.parameters())
        train = self.train
        amp = f", amp {train.amp_dtype or device_defaults(device).train_amp_dtype}" if train.amp else ""
        budget = f" or {train.max_time_minutes} min" if train.max_time_minutes else ""
        return (f"segnext train: {self.model.name} ({parameters:,} parameters, {train_set.num_classes} classes) on "
                f"{self.data.title()} ({len(train_set)} train / {len(val_set)} val images)\n"
                f"  batch {train.batch_size} = {processes} process(es) x {train.micro_batch_size} images x "
                f"{train.accumulation(processes)} accumulation step(s); device {device}{amp}; "
                f"{workers} data worker(s) per process; "
                f"{train.max_iters} iterations{budget}; work dir {work_dir}")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file (or override) and key and says what to do."""


class _Origin:
    """Where the values come from, for error messages: the file, or the command-line override that
    set a key."""

    def __init__(self, path: str, overrides: Sequence[str] = ()):
        self.path = path
        self.overrides = {item.split("=", 1)[0].strip(): item for item in overrides}

    def of(self, key: str) -> str:
        """The override that set `key` (or, for a section, the overrides of keys in it), else the file."""
        items = [item for overridden, item in self.overrides.items()
                 if key == overridden or key.startswith((overridden + ".", overridden + "["))
                 or overridden.startswith(key + ".")]
        if not items:
            return self.path
        return ("override " if len(items) == 1 else "overrides ") + ", ".join(repr(item) for item in items)

    def __str__(self) -> str:
        return self.path


# ---------------------------------------------------------------------------------------------------
# Loading


def find_config(name_or_path: str) -> Path:
    """A path to a YAML file, or a shipped config by name: `ade20k/segnext_t_ade20k_512x512_160k`,
    its file name alone when that is unique, or a base such as `_base_/ade20k`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = name_or_path[:-5] if name_or_path.endswith(".yaml") else name_or_path
    if (CONFIG_DIR / f"{name}.yaml").is_file():
        return CONFIG_DIR / f"{name}.yaml"
    by_stem = [p for p in CONFIG_DIR.rglob("*.yaml") if p.stem == Path(name).name]
    if len(by_stem) == 1:
        return by_stem[0]
    raise FileNotFoundError(
        f"Config {name_or_path} not found: it is neither a file nor a shipped config."
        f"{did_you_mean(name, list_configs())} List the shipped configs with `segnext train --list-configs`."
    )


def list_configs() -> List[str]:
    """The shipped configs a run can start from (the `_base_/` files are only their building blocks)."""
    return sorted(p.relative_to(CONFIG_DIR).as_posix()[:-5] for p in CONFIG_DIR.rglob("*.yaml")
                  if p.parent.name != "_base_")


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> Config:
    """Read a config file (following `_base_`), apply `key=value` overrides, validate."""
    path = find_config(name_or_path)
    raw = _read_with_bases(path, seen=())
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw, source=_Origin(str(path), overrides))


def config_from_dict(raw: dict, source: Union[str, _Origin] = "<dict>") -> Config:
    source = source if isinstance(source, _Origin) else _Origin(source)
    raw = _with_evaluation_normalisation(raw, source)
    return _build(Config, raw, prefix="", source=source)


def _with_evaluation_normalisation(raw: dict, source: str) -> dict:
    """evaluation.mean/std/bands are data.mean/std/bands: the normalisation (and how images are
    read) is set once, in the data section."""
    from ..data.bands import reads_bands

    if not isinstance(raw.get("evaluation", {}), dict) or not isinstance(raw.get("data", {}), dict):
        return raw  # _build names the problem
    raw = copy.deepcopy(raw)
    data, evaluation = raw.get("data") or {}, raw.setdefault("evaluation", {}) or {}
    raw["evaluation"] = evaluation
    for key, default in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
        wanted = data.get(key, list(default))
        if key in evaluation and _as_floats(evaluation[key]) != _as_floats(wanted):
            raise ConfigError(f"{source.of('evaluation.' + key)}: evaluation.{key} {evaluation[key]} differs from "
                              f"data.{key} {wanted}; the "
                              f"normalisation is set once, in data.{key} (the model sees it in training and test).")
        evaluation[key] = wanted
    if "bands" in evaluation and evaluation["bands"] != data.get("bands", False):
        raise ConfigError(f"{source.of('evaluation.bands')}: evaluation.bands {evaluation['bands']} differs from "
                          f"data.bands {data.get('bands', False)}; images are read as bands or not once, in "
                          f"data.bands (training and test read them alike).")
    evaluation["bands"] = data.get("bands", False)
    if "nodata" in evaluation and evaluation["nodata"] != data.get("nodata"):
        raise ConfigError(f"{source.of('evaluation.nodata')}: evaluation.nodata {evaluation['nodata']} differs from "
                          f"data.nodata {data.get('nodata')}; the value of no data is set once, in data.nodata "
                          f"(training and test read it alike).")
    evaluation["nodata"] = data.get("nodata")
    if data.get("nodata") is not None and not reads_bands(len(data.get("mean") or IMAGENET_MEAN),
                                                          bool(data.get("bands"))):
        raise ConfigError(f"{source.of('data.nodata')}: data.nodata {data['nodata']} marks no data in images read as "
                          f"bands (data.mean of other than three values, or data.bands=true); 8-bit RGB pictures "
                          f"have none: leave it out.")
    return raw


def _as_floats(values) -> Optional[list]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _yaml_error(where: str, error: yaml.YAMLError) -> ConfigError:
    """A YAML error for people; a tag that would build a Python object is named as such."""
    if isinstance(error, yaml.constructor.ConstructorError) and error.problem_mark is not None:
        tag = str(error.problem).split("tag ")[-1].strip("'")
        line = error.problem_mark.line + 1
        if "python/" in tag:
            return ConfigError(f"{where}, line {line}: refused the tag {tag.replace('tag:yaml.org,2002:', '!!')}: "
                               f"configs are data, and segnext never builds Python objects from them. Write the "
                               f"value as plain YAML (a number, string, list or mapping).")
        return ConfigError(f"{where}, line {line}: unknown YAML tag {tag}; write the value as plain YAML.")
    return ConfigError(f"{where} is not valid YAML: {error}")


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())  # the safe loader: plain data only, never Python objects
    except yaml.YAMLError as error:
        raise _yaml_error(str(path), error) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model:, data:, train: ...), not a "
                          f"{type(data).__name__}.")
    return data


def _read_with_bases(path: Path, seen: tuple) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path} includes itself through _base_ ({' -> '.join(str(p) for p in seen + (path,))}).")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        base_path = path.parent / str(base)
        if not base_path.is_file():  # else the name of a shipped config
            try:
                base_path = find_config(str(base))
            except FileNotFoundError:
                raise ConfigError(f"{path}: _base_ {base} is neither a file (looked at {base_path}) nor a shipped "
                                  f"config (`segnext train --list-configs`).") from None
        merged = _merge(merged, _read_with_bases(base_path, seen + (path,)))
    return _merge(merged, data)


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value` override to the raw (not yet validated) config dict."""
    if "=" not in item:
        raise ConfigError(f"Override {item!r} is not of the form key=value (e.g. train.max_iters=1000).")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise _yaml_error(f"Override {item!r}", error) from None
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"Override {item!r}: {key!r} is not a dotted key such as train.max_iters.")
    _check_override_path(parts, item)
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _check_override_path(parts: List[str], item: str) -> None:
    """Name a misspelled key at override time (before it is buried in a merged dict)."""
    cls: Any = Config
    for depth, part in enumerate(parts):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return  # inside a free-form dict (model.options, optimizer.custom_keys)
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            prefix = ".".join(parts[:depth])
            full_names = [f"{prefix}.{n}" if prefix else n for n in names]
            raise ConfigError(f"Override {item!r}: unknown key {'.'.join(parts[:depth + 1])!r}."
                              f"{_suggest_key('.'.join(parts[:depth + 1]), full_names)} "
                              f"Valid keys here: {', '.join(full_names)}.")
        cls = typing.get_type_hints(cls)[part]


def _config_keys(cls: Any = None, prefix: str = "") -> List[str]:
    """Every dotted key of the config (`train.eval_interval`, `data.huggingface.classes`, ...)."""
    keys = []
    hints = typing.get_type_hints(cls or Config)
    for f in dataclasses.fields(cls or Config):
        kind = hints[f.name]
        nested = isinstance(kind, type) and dataclasses.is_dataclass(kind)
        keys += _config_keys(kind, f"{prefix}{f.name}.") if nested else [prefix + f.name]
    return keys


# Keys of this config by the names other trainers (MMSegmentation's configs among them) give them
_KEY_ALIASES = {"epochs": "train.max_iters", "max_epochs": "train.max_iters", "iters": "train.max_iters",
                "samples_per_gpu": "train.micro_batch_size", "workers_per_gpu": "data.num_workers",
                "workers": "data.num_workers", "variant": "model.name", "arch": "model.name",
                "backbone": "model.name", "model.classes": "model.num_classes", "crop": "data.crop_size",
                "ms": "evaluation.scales", "tta": "evaluation.scales", "evaluation.interval": "train.eval_interval",
                "loss.weight": "loss.class_weight"}  # PyTorch's CrossEntropyLoss(weight=...)


def _suggest_key(key: str, siblings: List[str]) -> str:
    """" Did you mean ...?" for a mistyped key: the same name in another section (`data.batch_size`
    -> `train.batch_size`), else the key other trainers' name means (`train.epochs` ->
    `train.max_iters`), else a close name in its own section (`train.max_iter`), else a name that
    holds it as a word (`loss.weight` -> `loss.class_weight`)."""
    leaf = key.rsplit(".", 1)[-1]
    everywhere = _config_keys()
    same_name = [k for k in everywhere if k.rsplit(".", 1)[-1] == leaf]
    alias = _KEY_ALIASES.get(key) or (None if same_name else _KEY_ALIASES.get(leaf))
    if alias:
        return f" Did you mean {alias!r}?"
    if same_name:
        return did_you_mean(key, same_name) or f" Did you mean {same_name[0]!r}?"
    leaves = {k.rsplit(".", 1)[-1]: k for k in siblings}
    close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
    if close:
        return f" Did you mean {leaves[close[0]]!r}?"
    holding = [k for k in everywhere if leaf in k.rsplit(".", 1)[-1].split("_")]
    if holding:
        return did_you_mean(key, holding) or f" Did you mean {holding[0]!r}?"
    return ""


# ---------------------------------------------------------------------------------------------------
# Validation: raw dict -> dataclasses, with errors that name the key


def _build(cls, raw: Any, prefix: str, source: str):
    where = prefix.rstrip(".") or "the top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            full = [prefix + n for n in names]
            raise ConfigError(
                f"{source.of(prefix + str(key))}: unknown key {prefix + str(key)!r}."
                f"{_suggest_key(prefix + str(key), full)} "
                f"Valid keys in {where}: {', '.join(names)}."
            )
    values = {}
    for name in names:
        if name not in raw:
            continue
        kind = hints[name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name], prefix + name + ".", source)
        else:
            values[name] = _coerce(raw[name], kind, prefix + name, source)
    try:
        config = cls(**values)
    except ValueError as error:  # a dataclass's own checks (TestConfig's)
        raise ConfigError(f"{source.of(prefix.rstrip('.'))}: {where}: {error}") from None
    _check_values(config, prefix, source)
    return config


def _coerce(value: Any, kind: Any, key: str, source: str) -> Any:
    """Check `value` against the type annotation `kind`; lists become tuples where a tuple is declared."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source.of(key)}: {key} must be true or false, got {value!r}.")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{source.of(key)}: {key} must be an integer, got {value!r}.")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as text; accept what float() reads
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{source.of(key)}: {key} must be a number, got {value!r}.")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source.of(key)}: {key} must be a string, got {value!r}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source.of(key)}: {key} must be a list, got {value!r}.")
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{source.of(key)}: {key} must be a list of {len(args)} values, got {list(value)!r}.")
        item_kinds = [args[0]] * len(value) if (origin is list or args[-1] is Ellipsis) else list(args)
        items = [_coerce(v, t, f"{key}[{i}]", source) for i, (v, t) in enumerate(zip(value, item_kinds))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source.of(key)}: {key} must be a mapping, got {value!r}.")
        value_kind = args[1] if args else Any
        return {str(k): _coerce(v, value_kind, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"unsupported config type {kind} for {key}")  # a bug in this file, not in the config


def _check_channels(config: Config, fail) -> None:
    """The data's channels (data.mean's values) are the model's input channels; images of other
    channels than RGB, or of three read as bands, come from files of bands, without the RGB
    photometric distortion."""
    from ..data.bands import reads_bands
    from ..data.hf import DATASET_NAME

    channels, options = len(config.data.mean), config.model.options
    in_channels = options.get("in_channels", 3)
    # Without options.in_channels a model.checkpoint's own, checked when it is loaded.
    if (config.model.checkpoint is None or "in_channels" in options) and in_channels != channels:
        fail("model.options.in_channels", f"is {in_channels} and data.mean/data.std normalise {channels} channels: "
                                          f"{CHANNELS_MATCH}.")
    bands = reads_bands(channels, config.data.bands)
    held = "are read as bands (data.bands)" if channels == 3 else f"have {channels} channels"
    if bands and config.data.photometric:
        fail("data.photometric", f"is true: the photometric distortion (brightness, contrast, saturation, hue) is "
                                 f"8-bit RGB's, and the images {held}; set data.photometric=false.")
    if bands and config.data.dataset == DATASET_NAME:
        fail("data.dataset", f"is {DATASET_NAME}, whose images are read as 8-bit RGB; images that {held} are "
                             f"read from files (a folder dataset of .npy arrays or TIFFs).")


def _check_values(section: Any, prefix: str, source: str) -> None:
    """Range and choice checks that types cannot express."""

    def fail(key: str, message: str):
        raise ConfigError(f"{source.of(prefix + key)}: {prefix}{key} {message}")

    if isinstance(section, LossSection) and section.reduction not in ("all_pixels", "valid_pixels"):
        fail("reduction", f"must be 'all_pixels' (official) or 'valid_pixels', got {section.reduction!r}."
             f"{did_you_mean(section.reduction, ['all_pixels', 'valid_pixels'])}")
    if isinstance(section, LossSection) and section.class_weight is not None and (
            any(weight < 0 for weight in section.class_weight) or not any(section.class_weight)):
        fail("class_weight", f"must hold weights of 0 or more, not all 0, got {section.class_weight}.")
    if isinstance(section, LossSection) and section.ohem_threshold is not None:
        if not 0 < section.ohem_threshold <= 1:
            fail("ohem_threshold", f"must be a probability in (0, 1] or null, got {section.ohem_threshold}.")
        if section.ohem_min_kept < 0:
            fail("ohem_min_kept", f"must be 0 or more, got {section.ohem_min_kept}.")
    if isinstance(section, LossSection) and not (isinstance(section.dice_weight, (int, float)) and
                                                 not isinstance(section.dice_weight, bool) and
                                                 0 <= section.dice_weight < float("inf")):
        fail("dice_weight", f"must be a number of 0 or more (0: off), got {section.dice_weight!r}.")
    if isinstance(section, DataSection):
        if section.on_unreadable not in ("error", "skip"):
            fail("on_unreadable", f"must be 'error' or 'skip', got {section.on_unreadable!r}."
                 f"{did_you_mean(section.on_unreadable, ['error', 'skip'])}")
        if not 0 <= section.max_unreadable_fraction <= 1:
            fail("max_unreadable_fraction", f"must be a fraction from 0 to 1, got {section.max_unreadable_fraction}.")
        if section.num_workers is not None and section.num_workers < 0:
            fail("num_workers", f"must be 0 or more (0: load in the training process) or null (up to 4, as the "
                                f"CPUs allow), got {section.num_workers}.")
        if not 0 <= section.copy_paste_prob <= 1:
            fail("copy_paste_prob", f"must be a probability from 0 to 1, got {section.copy_paste_prob}.")
        if not section.mean or len(section.mean) != len(section.std):
            fail("mean", f"and data.std need one value per image channel each (three for RGB), got "
                         f"{len(section.mean)} and {len(section.std)}.")
        if min(section.std) <= 0:
            fail("std", f"must hold positive values, got {list(section.std)}.")
    if isinstance(section, TrainSection):
        for key in ("max_iters", "batch_size", "micro_batch_size", "log_interval", "checkpoint_interval",
                    "keep_checkpoints"):
            if getattr(section, key) < 1:
                fail(key, f"must be at least 1, got {getattr(section, key)}.")
        if section.distributed_timeout_minutes <= 0:
            fail("distributed_timeout_minutes", f"must be positive, got {section.distributed_timeout_minutes}.")
        if section.eval_interval < 0:
            fail("eval_interval", f"must be >= 0 (0: only at the end), got {section.eval_interval}.")
        if section.amp_dtype not in (None, "bf16", "fp16"):
            fail("amp_dtype", f"must be bf16, fp16 or null (the device's), got {section.amp_dtype!r}.")
        if section.batch_size % section.micro_batch_size:
            fail("batch_size", f"({section.batch_size}) must be a multiple of train.micro_batch_size "
                               f"({section.micro_batch_size}).")
        from .loggers import setting_problem

        problem = setting_problem(section.loggers, section.logger_options)
        if problem is not None:
            fail(*problem)
    if isinstance(section, OptimizerSection):
        if section.clip_grad_norm is not None and not section.clip_grad_norm > 0:
            fail("clip_grad_norm", f"must be positive (the largest gradient norm kept) or null (no clipping), got "
                                   f"{section.clip_grad_norm}.")
        for key, rule in section.custom_keys.items():
            if not isinstance(rule, dict):
                fail(f"custom_keys.{key}", f"must be a mapping like {{lr_mult: 10.0}}, got {rule!r}.")
            for name in rule:
                if name not in ("lr_mult", "decay_mult"):
                    hint = did_you_mean(name, ["lr_mult", "decay_mult"])
                    fail(f"custom_keys.{key}.{name}", f"is not a valid rule.{hint} Valid: lr_mult, decay_mult.")
    if isinstance(section, Config) and section.schedule.by_time and not section.train.max_time_minutes:
        fail("schedule.by_time", "needs train.max_time_minutes (the time the lr decays over).")
    if isinstance(section, Config):
        _check_channels(section, fail)
    if isinstance(section, DataSection):
        from ..data import DATASETS
        from ..data.hf import DATASET_NAME

        known = [*DATASETS, DATASET_NAME]
        if section.dataset not in known:
            hint = did_you_mean(section.dataset, known)
            fail("dataset", f"is {section.dataset!r}, not a dataset segnext reads.{hint} Known: {', '.join(known)} "
                            f"(`segnext data list`).")
        if section.transform is not None and section.transform.count(":") < 1:
            fail("transform", f"is {section.transform!r}, not of the form module:function (e.g. my_augment:build, "
                              f"or path/to/my_augment.py:build).")
    if isinstance(section, ModelSection):
        from ..models.configuration import VARIANTS, SegNeXtConfig

        if section.name not in VARIANTS:
            fail("name", f"is {section.name!r}, not a SegNeXt variant.{did_you_mean(section.name, VARIANTS)} "
                         f"Available: {', '.join(VARIANTS)}.")
        from ..models.pretrained import pretrained_weights

        if section.pretrained is not None:
            try:
                pretrained_weights(section.name, str(section.pretrained))
            except ValueError as error:
                fail("pretrained", f"is {section.pretrained!r}. {error} Or null for none.")
        stages = len(section.options.get("depths", VARIANTS[section.name]["depths"]))
        if not 0 <= section.frozen_stages <= stages:
            fail("frozen_stages", f"must be from 0 (train the whole encoder) to {stages} (train the decoder alone), "
                                  f"got {section.frozen_stages}.")
        valid = [f.name for f in dataclasses.fields(SegNeXtConfig)
                 if f.name not in ("variant", "num_classes", "test_settings")]
        for key in section.options:
            if key not in valid:
                fail(f"options.{key}", f"is not a model option.{did_you_mean(key, valid)} Valid: {', '.join(valid)}.")
        channels = section.options.get("in_channels", 3)
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            fail("options.in_channels", f"must be a positive number of image channels, got {channels!r}.")
