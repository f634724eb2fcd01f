"""torch.hub entry points: `torch.hub.load(REPO, "segnext_t", pretrained="ade20k")`.

REPO is this repository on GitHub (torch.hub downloads it) or a local copy with `source="local"`.
Each entry point is `segnext.create_model` for one variant:

    model = torch.hub.load(REPO, "segnext_t", pretrained="ade20k")                  # 150 ADE20K classes
    model = torch.hub.load(REPO, "segnext_b", pretrained="imagenet", num_classes=19)  # ImageNet encoder
    model = torch.hub.load(REPO, "segnext_t", pretrained="camvid")                  # 11 CamVid classes
    model = torch.hub.load(REPO, "segnext_s", num_classes=19)                      # random weights

pretrained: "ade20k", "imagenet" or, for segnext_t, "camvid" (see `segnext.list_pretrained()`), True
for "ade20k", None or False for random weights; other keyword arguments go to `segnext.create_model`.
"""

import os
import sys

dependencies = ["torch", "numpy", "safetensors", "tqdm"]

# A checkout keeps the package under src/; torch.hub imports this file from the checkout's root.
_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if os.path.isdir(os.path.join(_SOURCE, "segnext")) and _SOURCE not in sys.path:
    sys.path.insert(0, _SOURCE)

from segnext.models import create_model as _create_model  # noqa: E402


def _entry(variant):
    def entry(pretrained=None, num_classes=None, **kwargs):
        if pretrained is True:
            pretrained = "ade20k"
        if not pretrained and num_classes is None:
            num_classes = 150
        return _create_model(variant, num_classes, pretrained=pretrained or None, **kwargs)

    entry.__name__ = variant
    entry.__doc__ = (f"SegNeXt variant {variant} (segnext.create_model({variant!r}, num_classes, pretrained=...)); "
                     f"pretrained: 'ade20k', 'imagenet' (give num_classes) or None for random weights.")
    return entry


segnext_t = _entry("segnext_t")
segnext_s = _entry("segnext_s")
segnext_b = _entry("segnext_b")
segnext_l = _entry("segnext_l")
