"""MMSegmentation 1.2.2's SegNeXt, built beside segnext's: the peer of the benchmarks and the reference
of the parity fixture (tests/fixtures/make_mmseg_reference.py).

It needs a virtual environment with MMSegmentation on mmcv-lite (pure Python; its compiled ops, which
SegNeXt never calls, are stood in for):

    pip install torch==2.13.0 mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2 ftfy regex

(`--no-deps` for mmcv-lite and mmengine plus their small dependencies where opencv-python-headless
must stay the only OpenCV.)
"""

from __future__ import annotations

import sys
import types
from typing import Dict

import torch

VARIANTS = {
    "t": dict(name="segnext_t", embed_dims=[32, 64, 160, 256], depths=[3, 3, 5, 2], channels=256, rank=16),
    "s": dict(name="segnext_s", embed_dims=[64, 128, 320, 512], depths=[2, 2, 4, 2], channels=256, rank=16),
    "b": dict(name="segnext_b", embed_dims=[64, 128, 320, 512], depths=[3, 3, 12, 3], channels=512, rank=64),
    "l": dict(name="segnext_l", embed_dims=[64, 128, 320, 512], depths=[3, 5, 27, 3], channels=1024, rank=64,
              drop_path_rate=0.3),
}


def import_mmseg():
    """Import mmseg with a stand-in for mmcv's compiled ops (mmcv-lite has none)."""
    if "mmcv.ops" not in sys.modules:
        stand_in = types.ModuleType("mmcv.ops")

        class _Missing:  # any op mmseg imports at start-up; SegNeXt never calls one
            def __init__(self, *args, **kwargs):
                raise RuntimeError("mmcv.ops is not available in mmcv-lite")

        def missing_op(name):
            if name.startswith("__"):  # module attributes (__file__, __path__, ...) that tools probe
                raise AttributeError(name)
            return _Missing

        stand_in.__getattr__ = missing_op
        sys.modules["mmcv.ops"] = stand_in
    import mmseg  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    return MODELS


def mmseg_config(variant: str, num_classes: int = 150) -> dict:
    """MMSegmentation 1.2.2's configs/segnext/segnext_mscan-{t,s,b,l}_..._ade20k-512x512.py model, BN for SyncBN."""
    v = VARIANTS[variant]
    return dict(
        type="EncoderDecoder",
        backbone=dict(
            type="MSCAN", embed_dims=v["embed_dims"], mlp_ratios=[8, 8, 4, 4], drop_rate=0.0,
            drop_path_rate=v.get("drop_path_rate", 0.1),
            depths=v["depths"], attention_kernel_sizes=[5, [1, 7], [1, 11], [1, 21]],
            attention_kernel_paddings=[2, [0, 3], [0, 5], [0, 10]], act_cfg=dict(type="GELU"),
            norm_cfg=dict(type="BN", requires_grad=True)),
        decode_head=dict(
            type="LightHamHead", in_channels=v["embed_dims"][1:], in_index=[1, 2, 3], channels=v["channels"],
            ham_channels=v["channels"], dropout_ratio=0.1, num_classes=num_classes,
            norm_cfg=dict(type="GN", num_groups=32, requires_grad=True), align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            ham_kwargs=dict(MD_S=1, MD_R=v["rank"], train_steps=6, eval_steps=7, inv_t=100, rand_init=True)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))


def to_mmseg_1x_keys(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k.replace("mlp.dwconv.dwconv.", "mlp.dwconv."): v for k, v in state_dict.items()}


def patch_mmseg_bases(bases: torch.Tensor) -> None:
    """Make MMSegmentation's NMF use `bases` (1, D, R) for every image instead of a random draw."""
    from mmseg.models.decode_heads.ham_head import NMF2D

    def fixed_bases(self, B, S, D, R, device=None):
        return bases.to(device or "cpu").expand(B * S, -1, -1).contiguous()

    NMF2D._build_bases = fixed_bases


def data_samples(labels: torch.Tensor) -> list:
    """MMSegmentation's training targets for label maps (B, H, W): one SegDataSample each."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    size = tuple(labels.shape[1:])
    samples = []
    for label in labels:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        sample.set_metainfo(dict(img_shape=size, pad_shape=size, ori_shape=size))
        samples.append(sample)
    return samples
