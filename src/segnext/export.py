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

The exported function is `optimize_for_inference(model)` (BatchNorm and layer scale folded), traced
with plain PyTorch operators. The file's metadata_props hold what a predictor needs: num_classes,
class_names and palette (JSON), variant, nmf_seed, the normalisation mean/std and the test settings.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

DEFAULT_OPSET = 17


class _LogitsOnly(nn.Module):
    """The traced function: normalised images -> logits at the input size, bases fixed."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def export_onnx(model, path, height: int = 512, width: int = 512, *, batch_size: int = 1,
                dynamic: bool = True, opset: int = DEFAULT_OPSET, test_config=None, check: bool = True) -> Path:
    """Write `model` (a SegNeXt, optimized or not) to the ONNX file `path`; returns the path.

    height, width, batch_size: the example input traced (with dynamic=False, the only input size).
    test_config: a `segnext.inference.TestConfig` stored in the metadata for `segnext predict --onnx`
        (default: the official settings of the model's dataset).
    check: run onnx's checker on the written file (needs the onnx package).
    """
    from .models import SegNeXt
    from .optimize import OptimizedSegNeXt, optimize_for_inference
    from .predict import default_test_config

    if isinstance(model, SegNeXt):
        if model.nmf_seed is None:
            raise ValueError("ONNX export needs fixed NMF bases, but this model draws random ones at every forward "
                             "(nmf_seed=None). Create it with an int nmf_seed, e.g. create_model(..., nmf_seed=0).")
        optimized = optimize_for_inference(model.eval())
    elif isinstance(model, OptimizedSegNeXt):
        if model.nmf_seed is None:
            raise ValueError("ONNX export needs fixed NMF bases (nmf_seed=None draws random ones).")
        optimized = model
    else:
        raise TypeError(f"export_onnx expects a segnext SegNeXt model, got {type(model).__name__}")
    if height < 1 or width < 1 or batch_size < 1:
        raise ValueError(f"invalid example input size {batch_size}x3x{height}x{width}")
    optimized = optimized.cpu().eval()
    config = optimized.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(batch_size, 3, height, width)
    dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"},
                    "logits": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape arithmetic (recorded as graph ops)
        torch.onnx.export(_LogitsOnly(optimized).eval(), (example,), str(path), input_names=["images"],
                          output_names=["logits"], dynamic_axes=dynamic_axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)

    test_config = test_config or default_test_config(config.num_classes, config.class_names)
    metadata = {
        "segnext_format": "segnext-onnx/1",
        "variant": config.variant,
        "num_classes": str(config.num_classes),
        "class_names": json.dumps(config.class_names) if config.class_names else "",
        "palette": json.dumps(config.palette) if config.palette else "",
        "nmf_seed": str(optimized.nmf_seed),
        "input": "images: RGB float32 (B, 3, H, W), (pixel - mean) / std",
        "mean": json.dumps(list(test_config.mean)),
        "std": json.dumps(list(test_config.std)),
        "test_config": json.dumps(_plain(asdict(test_config))),
        "output": "logits: (B, num_classes, H, W) at the input size",
    }
    _write_metadata(path, metadata, check)
    return path


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _write_metadata(path: Path, metadata: dict, check: bool) -> None:
    try:
        import onnx
    except ImportError:
        raise ValueError("writing the ONNX metadata (class names, palette) needs the onnx package: "
                         "pip install 'segnext[onnx]'") from None
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"SegNeXt {metadata['variant']} ({metadata['num_classes']} classes), exported by segnext"
    onnx.save(model, str(path))
    if check:
        onnx.checker.check_model(str(path))


def onnx_metadata(path) -> dict:
    """The metadata_props of an exported file, as a dict of strings."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}
