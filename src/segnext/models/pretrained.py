"""The published SegNeXt weights by name, as data: where each file is, the start of its SHA-256
and what it scores.

Two kinds, both from MMSegmentation's model zoo (`configs/segnext/metafile.yaml` and the
`checkpoint_file` of its SegNeXt configs):

- `ade20k`: the four segmentation models trained on ADE20K (150 classes) with the official recipe
  (512x512 crops, batch 16, 160k iterations), as MMSegmentation 1.x re-published them. mIoU is
  MMSegmentation's reported val score, single scale and with the multi-scale + flip test.
- `imagenet`: the four ImageNet-1K MSCAN encoders the paper starts from (encoder only).

The suffix of every file name is the start of the file's SHA-256, checked after a download.
`segnext.create_model("segnext_t", pretrained="ade20k")` fetches a file into the cache
(`segnext.models.download`) and loads it.

Weights trained by this project can ship inside the package (`bundled=True`): a model folder below
`segnext/weights/` (float16 safetensors, config.json with classes and test settings, a model card),
checked against the whole SHA-256 of its `model.safetensors` before it is loaded; no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from ..utils import did_you_mean
from .configuration import check_variant

DEFAULT_BASE_URL = "https://download.openmmlab.com/mmsegmentation/v0.5"


@dataclass(frozen=True)
class PretrainedWeights:
    """One published file.

    Args:
        variant: the SegNeXt variant it holds ("segnext_t" ...).
        tag: what it was trained on: "ade20k" (a whole segmentation model) or "imagenet" (the encoder).
        path: where it is below the base URL.
        sha256_prefix: the start of the file's SHA-256 (the suffix of its name).
        num_classes: classes of its classifier; None for an encoder alone.
        miou, miou_ms_flip: the reported val mIoU, single scale and multi-scale + flip (None for a
            model trained on its val split too: its card gives a score on data it has not seen).
        bundled: shipped in the package: `path` is a model folder below `segnext/weights/` and
            `sha256_prefix` the whole SHA-256 of its model.safetensors.
    """

    variant: str
    tag: str
    path: str
    sha256_prefix: str
    num_classes: Optional[int] = None
    miou: Optional[float] = None
    miou_ms_flip: Optional[float] = None
    bundled: bool = False

    @property
    def name(self) -> str:
        return f"{self.variant}.{self.tag}"

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def encoder_only(self) -> bool:
        return self.num_classes is None


def _ade20k(letter: str, stamp: str, sha256_prefix: str, miou: float, miou_ms_flip: float) -> PretrainedWeights:
    run = f"segnext_mscan-{letter}_1x16_512x512_adamw_160k_ade20k"
    return PretrainedWeights(f"segnext_{letter}", "ade20k", f"segnext/{run}/{run}_{stamp}-{sha256_prefix}.pth",
                             sha256_prefix, num_classes=150, miou=miou, miou_ms_flip=miou_ms_flip)


def _imagenet(letter: str, sha256_prefix: str) -> PretrainedWeights:
    return PretrainedWeights(f"segnext_{letter}", "imagenet",
                             f"pretrain/segnext/mscan_{letter}_20230227-{sha256_prefix}.pth", sha256_prefix)


PRETRAINED: Dict[str, PretrainedWeights] = {weights.name: weights for weights in [
    _ade20k("t", "20230210_140244", "05bd8466", 41.5, 42.59),
    _ade20k("s", "20230214_113014", "43013668", 44.16, 45.81),
    _ade20k("b", "20230209_172053", "b6f6c70c", 48.03, 49.68),
    _ade20k("l", "20230209_172055", "19b14b63", 50.99, 52.1),
    _imagenet("t", "119e8c9f"),
    _imagenet("s", "f33ccdf2"),
    _imagenet("b", "3ab7d230"),
    _imagenet("l", "cef260d4"),
    # Trained by this project and shipped in the package: SegNeXt-T from scratch on CamVid's train
    # split in the 60-minute CPU recipe (camvid/segnext_t_camvid_cpu_60min); its card has the rest.
    PretrainedWeights("segnext_t", "camvid", "segnext_t_camvid-e1a3c958",
                      "e1a3c9588708958da6f6f33e264204a1f576fe1128ce130cd731e86133f0b4af",
                      num_classes=11, miou=63.89, bundled=True),
]}


def list_pretrained() -> List[str]:
    """Names of the published weights, "<variant>.<tag>" (timm's convention): `segnext_t.ade20k`, ..."""
    return list(PRETRAINED)


def published_model(text: str) -> Optional[PretrainedWeights]:
    """The whole published model a checkpoint argument names, or None: "segnext_t.camvid", or a tag
    that one model alone carries ("camvid"). A tag that several variants carry is an error that lists
    them."""
    if text in PRETRAINED:
        weights = PRETRAINED[text]
        return None if weights.encoder_only else weights
    carriers = [weights for weights in PRETRAINED.values() if weights.tag == text and not weights.encoder_only]
    if len(carriers) > 1:
        raise ValueError(f"{text!r} names published weights of several variants: "
                         f"{', '.join(weights.name for weights in carriers)}; name one of them.")
    return carriers[0] if carriers else None


def pretrained_weights(variant: str, tag: str) -> PretrainedWeights:
    """The published file of `variant` trained on `tag` ("ade20k" or "imagenet")."""
    check_variant(variant)
    name = f"{variant}.{tag}"
    if name not in PRETRAINED:
        available = sorted(weights.tag for weights in PRETRAINED.values() if weights.variant == variant)
        carriers = [weights.variant for weights in PRETRAINED.values() if weights.tag == tag]
        hint = (f" {tag!r} is published for {', '.join(carriers)} only." if carriers
                else did_you_mean(tag, available))
        raise ValueError(f"No published weights {tag!r} for {variant}.{hint} Available for {variant}: "
                         f"{', '.join(available)} (segnext.list_pretrained() lists every file).")
    return PRETRAINED[name]
