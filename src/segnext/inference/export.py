"""`export_onnx`: SegNeXt as an ONNX graph for onnxruntime, TensorRT and other runtimes.

    segnext.export_onnx(model, "segnext_t.onnx", height=512, width=512)

The graph takes normalised images `images` (B, 3, H, W) float32 and returns `logits`
(B, num_classes, H, W), the same function as `model(images)` with the model's fixed NMF bases:
- the bases of the model's integer `nmf_seed` are stored in the file as a constant, so the graph
  has no random operator and gives the same numbers on every run and runtime;
- height, width and batch are dynamic by default (`height`/`width` only set the example input the
  graph is traced with); every size computation (stride-2 "same" convs rounding up, the resizes to
  the stride-8 and input sizes) is recorded as a shape computation, so any size stays exact;
- opset 17 by default: supported by onnxruntime and TensorRT 8.6+, with LayerNormalization as
  one operator; GELU is written with Erf (the exact GELU), GroupNorm with InstanceNormalization.

The exported function is the reparameterized model (`SegNeXt.reparameterize()`: BatchNorm and
layer scale folded), traced with standard PyTorch operators. The file's metadata_props hold what a
predictor needs: num_classes,
class_names and palette (JSON), variant, nmf_seed, the normalisation mean/std and the test settings.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from ..compat import onnx_export_options
from ..models.segnext import SegNeXt
from ..utils import require, user_path
from .optimize import OptimizedSegNeXt
from .settings import test_config_for

DEFAULT_OPSET = 17
MIN_OPSET = 11  # the first opset whose Resize takes output sizes computed in the graph (dynamic sizes)


def export_onnx(model, path, height: int = 512, width: int = 512, *, batch_size: int = 1,
                dynamic: bool = True, opset: int = DEFAULT_OPSET, test_config=None, training_data=None,
                check: bool = True) -> Path:
    """Write `model` (a SegNeXt, optimized or not) to the ONNX file `path`; returns the path.

    height, width, batch_size: the example input traced (with dynamic=False, the only input size).
    test_config: a `segnext.TestConfig` stored in the metadata for `segnext predict --onnx`
        (default: the model's saved settings, else the official ones of its dataset).
    training_data: what the model was trained on (`save_model`'s record: dataset, split, frames per
        group), stored so that `segnext eval --onnx` can say when a split shares that data.
    check: run onnx's checker on the written file (needs the onnx package).
    """
    require("onnx", "onnx", "ONNX export")
    if isinstance(model, OptimizedSegNeXt):
        model = model.model
    if not isinstance(model, SegNeXt):
        raise TypeError(f"export_onnx expects a segnext SegNeXt model, got {type(model).__name__}")
    if model.nmf_seed is None:
        raise ValueError("ONNX export needs fixed NMF bases, but this model draws random ones at every forward "
                         "(nmf_seed=None). Create it with an int nmf_seed, e.g. create_model(..., nmf_seed=0).")
    if height < 1 or width < 1 or batch_size < 1:
        raise ValueError(f"invalid example input size {batch_size}x{model.config.in_channels}x{height}x{width}")
    if opset < MIN_OPSET:
        raise ValueError(f"ONNX opset {opset} is too old for SegNeXt's resizes; use {MIN_OPSET} or newer (default "
                         f"{DEFAULT_OPSET})")
    exported = model if model.reparameterized else copy.deepcopy(model).reparameterize()
    exported = exported.cpu()
    config = exported.config
    path = user_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = config.in_channels
    example = torch.zeros(batch_size, channels, height, width)
    dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"},
                    "logits": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape arithmetic (recorded as graph ops)
        try:
            torch.onnx.export(exported, (example,), str(path), input_names=["images"],
                              output_names=["logits"], dynamic_axes=dynamic_axes, opset_version=opset,
                              do_constant_folding=True, **onnx_export_options())
        except (RuntimeError, ValueError) as error:  # which one depends on the PyTorch release
            if "opset" not in str(error).lower():
                raise
            raise ValueError(f"ONNX opset {opset}: {error}; use an opset from {MIN_OPSET} to the newest this PyTorch "
                             f"({torch.__version__}) exports (the default {DEFAULT_OPSET} works)") from None

    test_config = test_config or test_config_for(exported)
    metadata = {
        "segnext_format": "segnext-onnx/1",
        "variant": config.variant,
        "num_classes": str(config.num_classes),
        "class_names": json.dumps(config.class_names) if config.class_names else "",
        "palette": json.dumps(config.palette) if config.palette else "",
        "nmf_seed": str(exported.nmf_seed),
        "input": ("images: RGB float32 (B, 3, H, W), (pixel - mean) / std"
                  if channels == 3 and not test_config.bands else
                  f"images: float32 (B, {channels}, H, W), bands normalised as the model was trained"),
        "mean": json.dumps(list(test_config.mean)),
        "std": json.dumps(list(test_config.std)),
        "test_config": json.dumps(test_config.to_dict()),
        "output": "logits: (B, num_classes, H, W) at the input size",
    }
    if training_data:
        metadata["training_data"] = json.dumps(training_data)
    _write_metadata(path, metadata, check)
    return path


def _write_metadata(path: Path, metadata: dict, check: bool) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"SegNeXt {metadata['variant']} ({metadata['num_classes']} classes), exported by segnext"
    onnx.save(model, str(path))
    if check:
        onnx.checker.check_model(str(path))
