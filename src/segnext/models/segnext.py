"""The SegNeXt segmentor (MSCAN encoder + LightHamHead, or the all-MLP decoder of the paper's
ablation; logits resized to the input size) and its training loss."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IGNORE_INDEX, SAVED_NMF_SEED
from ..ops.banded_loss import banded_cross_entropy
from .configuration import SegNeXtConfig
from .download import fetch
from .ham_head import LightHamHead
from .hub import push_model_folder, resolve_model_folder
from .loading import build_from_checkpoint
from .mlp_head import AllMLPHead
from .mscan import MSCAN
from .nmf import NMF2D
from .pretrained import published_model
from .weights import read_checkpoint, save_model


def _check_images(images: torch.Tensor, channels: int = 3) -> None:
    """What PyTorch would only report deep inside the first convolution, said in the model's terms."""
    if not isinstance(images, torch.Tensor):  # a torch.fx trace (optimize_for_inference) has no values to check
        return
    if images.dim() == 4 and images.shape[1] == channels and images.is_floating_point():
        return
    got = f"{str(images.dtype).replace('torch.', '')} {tuple(images.shape)}"
    if channels != 3:  # a model of other inputs than RGB (in_channels)
        raise ValueError(f"this SegNeXt takes a batch of normalised images of {channels} channels, float "
                         f"(B, {channels}, H, W) (its in_channels), and got {got}")
    if images.dim() == 4 and images.shape[3] == 3 and images.shape[1] != 3:
        hint = "channels last in the shape? images.permute(0, 3, 1, 2) makes (B, 3, H, W)"
    elif images.dim() == 3 and images.shape[0] == 3:
        hint = "one image? images.unsqueeze(0) makes a batch of one"
    elif images.dim() == 3 and images.shape[2] == 3:
        hint = "one (H, W, 3) image? images.permute(2, 0, 1).unsqueeze(0) makes a batch of one"
    elif images.dim() == 4 and images.shape[1] == 1:
        hint = "grayscale? images.expand(-1, 3, -1, -1) repeats the channel, as the data pipeline reads them"
    elif not images.is_floating_point():
        hint = "pixels as integers? the model takes them normalised, as segnext.inference.to_tensor makes them"
    else:
        hint = "3 colour channels are needed"
    raise ValueError(f"SegNeXt takes a batch of normalised RGB images, float (B, 3, H, W), and got {got}: {hint} "
                     f"(segnext.Segmenter(model).predict(image) takes an image file or array as it is)")


class SegNeXt(nn.Module):
    """Args:
        config: the architecture (`segnext.create_model` builds it from a variant name).
        nmf_seed: None draws the NMF bases from the global RNG at every forward, as the official
            code; an int gives fixed bases (the same for every image) in eval mode.
    """

    def __init__(self, config: SegNeXtConfig, nmf_seed: Optional[int] = 0):
        super().__init__()
        self.config = config
        self.backbone = MSCAN(config.embed_dims, config.depths, config.mlp_ratios, config.drop_path_rate,
                              config.attention_kernel_size, config.strip_kernel_sizes,
                              attention_channel_mixing=config.attention_channel_mixing,
                              in_channels=config.in_channels, attention_gating=config.attention_gating,
                              attention=config.attention)
        head_in_channels = [config.embed_dims[i] for i in config.head_in_stages]
        if config.decoder == "mlp":  # the paper's ablation: SegFormer's decoder, nothing drawn at random
            self.decode_head = AllMLPHead(head_in_channels, config.head_channels, config.num_classes,
                                          groups=config.group_norm_groups, dropout_ratio=config.dropout_ratio)
        else:
            nmf = NMF2D(config.nmf_rank, config.nmf_train_steps, config.nmf_eval_steps, seed=nmf_seed)
            self.decode_head = LightHamHead(
                in_channels=head_in_channels, ham_channels=config.ham_channels, channels=config.head_channels,
                num_classes=config.num_classes, groups=config.group_norm_groups, dropout_ratio=config.dropout_ratio,
                nmf=nmf,
            )
        self._seed_without_nmf = nmf_seed  # kept for a decoder without NMF, so it saves and loads alike
        self.reparameterized = False

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def nmf(self) -> Optional[NMF2D]:
        """The Hamburger's matrix decomposition; None for the all-MLP decoder."""
        hamburger = getattr(self.decode_head, "hamburger", None)
        return None if hamburger is None else hamburger.ham

    @property
    def nmf_seed(self) -> Optional[int]:
        """None: official random bases at every forward; int: fixed, batch-invariant bases (eval).
        Without NMF (the all-MLP decoder) the seed is only kept, as the model's others are."""
        return self.nmf.seed if self.nmf is not None else self._seed_without_nmf

    @nmf_seed.setter
    def nmf_seed(self, value: Optional[int]) -> None:
        if self.nmf is not None:
            self.nmf.seed = value
        self._seed_without_nmf = value

    def forward_logits(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits at stride 8 (the decode head's output: the stride of the first stage it reads),
        before the resize to the input size."""
        _check_images(images, self.config.in_channels)
        features = self.backbone(images)
        logits = self.decode_head([features[i] for i in self.config.head_in_stages], nmf_bases)
        if self.config.logit_temperature != 1 and not self.reparameterized:  # folded into the classifier there
            logits = logits / self.config.logit_temperature
        return logits

    def forward(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """images (B, 3, H, W), normalised -> logits (B, num_classes, H, W)."""
        logits = self.forward_logits(images, nmf_bases)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    def set_grad_checkpointing(self, enable: bool = True) -> SegNeXt:
        """Recompute each encoder block in the backward pass instead of keeping its activations
        (timm's name): training takes less memory and about a quarter more time, with the same
        gradients and BatchNorm statistics (`segnext.models.mscan.recompute_in_backward`)."""
        self.backbone.grad_checkpointing = enable
        return self

    def freeze_encoder(self, stages: int = 4) -> SegNeXt:
        """Train only the decoder and the encoder stages after the first `stages` (4: the decoder
        alone; 0: everything again), for fine-tuning on few images: the frozen stages take no
        gradient, so the backward pass stops above them, and keep their BatchNorm statistics
        (`segnext.models.mscan.MSCAN.freeze_stages`)."""
        self.backbone.freeze_stages(stages)
        return self

    def reparameterize(self) -> SegNeXt:
        """Fold BatchNorms and layer scales into convolutions (and the logit temperature into the
        classifier) and split the decoder's squeeze conv by stage, in place, for inference: the same
        function up to float rounding, less work. The model is then in eval mode for good
        (`segnext.optimize_for_inference` does this on a copy); a second call changes nothing."""
        if self.reparameterized:
            return self
        self.eval()
        for module in list(self.modules()):
            if module is not self and hasattr(module, "reparameterize"):
                module.reparameterize()
        with torch.no_grad():  # the classifier is linear: dividing its output is dividing its weights
            classifier = self.decode_head.conv_seg
            classifier.weight.div_(self.config.logit_temperature)
            if classifier.bias is not None:
                classifier.bias.div_(self.config.logit_temperature)
        self.reparameterized = True
        return self

    def train(self, mode: bool = True) -> SegNeXt:
        if mode and self.reparameterized:
            raise RuntimeError("this SegNeXt was reparameterized for inference (BatchNorm folded) and cannot be "
                               "trained; train the model that create_model returns")
        return super().train(mode)

    def reset_classifier(self, num_classes: int, class_names: Optional[Sequence[str]] = None,
                         palette: Optional[Sequence[Sequence[int]]] = None) -> SegNeXt:
        """Replace the classifier (`decode_head.conv_seg`) by a new one for `num_classes` classes,
        initialised as the official one; everything else is kept (timm's `reset_classifier`). A
        logit temperature fitted for the old classifier (`segnext calibrate`) is reset to 1."""
        self.decode_head.reset_classifier(num_classes)
        self.config.num_classes = num_classes
        self.config.logit_temperature = 1.0
        self.config.class_names = list(class_names) if class_names else None
        self.config.palette = [list(c) for c in palette] if palette else None
        return self

    def save_pretrained(self, directory, **card) -> None:
        """Write the model folder (`config.json`, `model.safetensors`, `README.md`; see `segnext.save_model`,
        whose `source` and `metrics` describe the weights in the card)."""
        save_model(self, directory, **card)

    @classmethod
    def from_pretrained(cls, folder_or_hub_id, *, revision: Optional[str] = None, num_classes: Optional[int] = None,
                        ignore_mismatched_sizes: bool = False, nmf_seed=SAVED_NMF_SEED,
                        **overrides) -> SegNeXt:
        """A model folder (or any checkpoint file `segnext.create_model` reads), or the Hugging Face Hub
        repository `owner/name` holding one (`pip install 'segnext[hub]'`; `revision`: a branch, tag or
        commit). num_classes / ignore_mismatched_sizes: as in `create_model`, for fine-tuning; nmf_seed:
        as in `create_model` (by default the seed the model was saved with). The name of published
        weights ("camvid", "segnext_t.ade20k") loads those, as `create_model(checkpoint=...)` does."""
        text = str(folder_or_hub_id)
        published = None if Path(text).expanduser().exists() else published_model(text)
        path = fetch(published) if published is not None else resolve_model_folder(folder_or_hub_id, revision)
        checkpoint = read_checkpoint(path)
        model, report = build_from_checkpoint(cls, checkpoint, num_classes=num_classes, nmf_seed=nmf_seed,
                                              ignore_mismatched_sizes=ignore_mismatched_sizes, **overrides)
        report.warn()
        return model

    def push_to_hub(self, repo_id: str, **options) -> str:
        """Upload the model folder to the Hugging Face Hub repository `repo_id` (created if needed);
        options: private, token, commit_message, source, metrics. Returns the commit's URL."""
        return push_model_folder(self, repo_id, **options)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                      reduction: str = "all_pixels", class_weight: Optional[Sequence[float]] = None,
                      banded: bool = False, ohem_threshold: Optional[float] = None,
                      ohem_min_kept: int = 100000, dice_weight: float = 0.0) -> torch.Tensor:
    """The official training loss (MMSegmentation 0.x `BaseDecodeHead.losses`): stride-8 `logits`
    (B, K, h, w) resized bilinearly to the size of `labels` (B, H, W), then cross-entropy.

    reduction: "all_pixels" (official) divides the summed loss by ALL label pixels, ignored ones
        included; "valid_pixels" by the non-ignored pixels.
    class_weight: per-class weights of the cross-entropy.
    banded: compute the same loss and gradient a band of label rows at a time
        (`segnext.ops.banded_loss`): the full-resolution class scores never exist, which makes a
        CPU training step much faster and smaller. Equal to the default path to float rounding.
    ohem_threshold: online hard example mining, as MMSegmentation's `OHEMPixelSampler(thresh,
        min_kept)`: only the pixels whose predicted probability of their true class is below
        `ohem_threshold` count, and at least the `ohem_min_kept` x batch size hardest ones. The loss
        is then the (class-weighted) mean over the kept pixels, whatever `reduction` says, so that it
        does not shrink as fewer pixels stay hard. Needs the full-resolution scores: `banded` is not used.
    dice_weight: adds `dice_weight` x `dice_loss` of the same resized scores (not in the official
        recipe: for classes of few pixels, whose share of a cross-entropy is small). Needs the
        full-resolution scores: `banded` is not used.
    The loss is computed in float32, also under autocast.
    """
    if reduction not in ("all_pixels", "valid_pixels"):
        raise ValueError(f"loss reduction must be 'all_pixels' or 'valid_pixels', got {reduction!r}")
    if labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if logits.dim() != 4 or labels.dim() != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits (B, K, h, w) and labels (B, H, W), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    if labels.is_floating_point() and bool((labels != labels.round()).any()):
        raise ValueError("labels hold fractions, not class ids: were they resized with bilinear interpolation (as "
                         "images are)? Label maps are resized with nearest-neighbour, e.g. F.interpolate(labels, "
                         "size, mode='nearest'), and given as integers")
    labels = labels.to(device=logits.device, dtype=torch.long)
    num_classes = logits.shape[1]
    outside = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(outside.any()):
        raise ValueError(f"label value {int(labels[outside][0])} is neither a class index in [0, {num_classes}) nor "
                         f"the ignore index {ignore_index}: check the dataset's label mapping and num_classes")
    weight = None
    if class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32, device=logits.device)
        if weight.shape != (num_classes,):
            raise ValueError(f"class_weight has {weight.numel()} values for {num_classes} classes")
    if banded and ohem_threshold is None and not dice_weight:
        total = banded_cross_entropy(logits, labels, ignore_index, weight)
        return total / (labels.numel() if reduction == "all_pixels" else (labels != ignore_index).sum().clamp(min=1))
    resized = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    if ohem_threshold is not None:
        per_pixel = F.cross_entropy(resized, labels, weight=weight, ignore_index=ignore_index, reduction="none")
        kept = hard_pixels(resized, labels, ignore_index, ohem_threshold, ohem_min_kept * labels.shape[0])
        kept_weight = kept.float() if weight is None else weight[labels.clamp(0, num_classes - 1)] * kept
        loss = (per_pixel * kept).sum() / kept_weight.sum().clamp(min=1e-12)
    else:
        total = F.cross_entropy(resized, labels, weight=weight, ignore_index=ignore_index, reduction="sum")
        loss = total / (labels.numel() if reduction == "all_pixels" else (labels != ignore_index).sum().clamp(min=1))
    if dice_weight:
        loss = loss + dice_weight * dice_loss(resized, labels, ignore_index)
    return loss


def dice_loss(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
              eps: float = 1e-6) -> torch.Tensor:
    """The soft Dice loss of class scores (B, K, H, W) against labels (B, H, W): 1 - the mean over the
    classes in `labels` of 2 |P ∩ Y| / (|P| + |Y|), where P is the softmax probability of the class
    and Y its labelled pixels, summed over the batch's labelled pixels (as smp's multiclass
    `DiceLoss`). Each class weighs the same whatever its pixels: a thin class's errors count as much
    as a large one's. Sums by class, without a one-hot (B, K, H, W) tensor."""
    num_classes = scores.shape[1]
    valid = labels != ignore_index
    probabilities = scores.float().softmax(1)
    classes = labels[valid]
    true_probability = probabilities.gather(1, labels.clamp(0, num_classes - 1)[:, None])[:, 0][valid]
    intersection = torch.zeros(num_classes, device=scores.device).index_add(0, classes, true_probability)
    labelled = torch.bincount(classes, minlength=num_classes).float()
    predicted = (probabilities * valid[:, None]).sum((0, 2, 3))
    present = labelled > 0
    if not bool(present.any()):
        return scores.sum() * 0.0  # no labelled pixel: nothing to learn, but a graph to backward through
    dice = 2 * intersection / (predicted + labelled + eps)
    return 1 - dice[present].mean()


@torch.no_grad()
def hard_pixels(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int, threshold: float,
                min_kept: int) -> torch.Tensor:
    """The pixels MMSegmentation's `OHEMPixelSampler` keeps: labelled pixels whose softmax probability
    of their true class is below max(threshold, the (min_kept + 1)-th smallest such probability).
    scores (B, K, H, W), labels (B, H, W); returns a bool mask (B, H, W)."""
    valid = labels != ignore_index
    true_class = torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(1)
    probability = scores.softmax(1).gather(1, true_class).squeeze(1)
    valid_probability = probability[valid]
    if valid_probability.numel() == 0:
        return valid
    floor = valid_probability.kthvalue(min(min_kept, valid_probability.numel() - 1) + 1).values
    return valid & (probability < max(float(floor), threshold))
