"""int8 inference on CPUs: post-training static quantization of the exported model with ONNX Runtime.

    segnext.inference.export_int8(model, "segnext_t.int8.onnx", calibration=["a.jpg", "b.jpg", ...])
    segnext export -c segnext-t-ade/ --int8 --calibration photos/ -o segnext_t.int8.onnx

The float32 ONNX graph (`export_onnx`: the folded model, fixed NMF bases) is quantized by ONNX
Runtime's static quantizer (`onnxruntime.quantization.quantize_static`):
- the convolutions only: their weights per output channel in int8, their inputs in uint8 with ranges
  calibrated on real images (each prepared as the test prepares it: the model's resize and
  normalisation), written as QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into
  integer convolutions (VNNI instructions on x86 CPUs that have them);
- everything else stays float32: the NMF (its multiplicative updates divide by small numbers), the
  GELUs, norms, the attention products and the resizes; and the convolutions of `FLOAT_CONVOLUTIONS`,
  where int8 costs the most accuracy for the least time (BENCHMARKS.md);
- the exact (erf) GELUs are fused into ONNX Runtime's one-pass `Gelu` operator first: ONNX Runtime
  does that itself for a float32 graph, but not once quantization nodes surround them, where the
  five operators of the erf formula would each take a pass over memory.
The result is an ONNX file with the same inputs, outputs and segnext metadata, run by
`segnext predict --onnx`, `Segmenter.from_onnx`, `segnext serve --onnx` and `segnext benchmark`.
Labels agree with float32 on about 99% of pixels or more, not bit for bit: check a model on your own
data (`segnext eval` accepts `--onnx` models too) before you deploy it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np

from ..utils import require, user_path
from .preprocess import ImageInput, prepare, to_tensor
from .settings import TestConfig

# Convolutions left in float32, by the name of their weight in the exported graph (a regular
# expression): the first stage and the convolutions around it (the stem, whose input is the image
# itself, and the downsampling into stage 2), whose 32-64 channels make int8 gain little time there
# and lose the most labels; and the decoder, whose output the NMF decomposes. Chosen by measuring
# labels and time per group of layers on CamVid (BENCHMARKS.md).
FLOAT_CONVOLUTIONS = (r"^backbone\.patch_embed[12]\.", r"^backbone\.block1\.", r"^decode_head\.")

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def calibration_batches(images: Sequence[ImageInput], config: TestConfig) -> Iterator[np.ndarray]:
    """Each image as the model sees it at test time (the first test scale): (1, 3, h, w) float32."""
    for image in images:
        prepared = prepare(image, config)
        yield to_tensor(prepared.views[0], config.mean, config.std, config.nodata).contiguous().numpy()


def quantize_onnx(float_path, int8_path, calibration: Iterable[np.ndarray], *, method: str = "minmax",
                  float_convolutions: Sequence[str] = FLOAT_CONVOLUTIONS) -> Path:
    """Quantize the float32 SegNeXt ONNX file `float_path` (written by `export_onnx`) into `int8_path`.

    calibration: network inputs (1, 3, h, w) float32, normalised, at least one.
    method: how activation ranges are set from them: "minmax" (moving average of min/max),
        "percentile" (99.999th) or "entropy".
    float_convolutions: regular expressions of weight names whose convolutions stay float32.
    """
    import re

    onnx = require("onnx", "onnx", "int8 quantization")
    require("onnxruntime", "onnx", "int8 quantization")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    batches: List[np.ndarray] = [np.ascontiguousarray(batch, dtype=np.float32) for batch in calibration]
    if not batches:
        raise ValueError("int8 quantization needs calibration images: give at least one (a few dozen is better)")
    float_path, int8_path = user_path(float_path), user_path(int8_path)
    source = onnx.load(str(float_path))
    patterns = [re.compile(pattern) for pattern in float_convolutions]
    kept_float = [node.name for node in source.graph.node if node.op_type == "Conv" and len(node.input) > 1
                  and any(pattern.search(node.input[1]) for pattern in patterns)]
    # onnxruntime before 1.20 sets the range of every Softmax output, quantized or not, and fails when
    # it was not calibrated: calibrate the NMF's softmax too, and leave it float.
    softmaxes = [node.name for node in source.graph.node if node.op_type == "Softmax"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(batches)

        def get_next(self):
            batch = next(self.remaining, None)
            return None if batch is None else {source.graph.input[0].name: batch}

    options = {"CalibMovingAverage": True} if method == "minmax" else {}
    with tempfile.TemporaryDirectory() as folder:
        fused = Path(folder) / "fused.onnx"
        onnx.save(_fuse_gelu(source), str(fused))
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(fused), str(prepared), skip_symbolic_shape=False)
        staged = Path(folder) / "int8.onnx"
        quantize_static(str(prepared), str(staged), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv", "Softmax"], per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=kept_float + softmaxes,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile,
                                          "entropy": CalibrationMethod.Entropy}[method],
                        extra_options=options)
        quantized = onnx.load(str(staged))
    metadata = {entry.key: entry.value for entry in source.metadata_props}
    metadata["quantization"] = json.dumps({
        "format": "int8 static, QDQ: per-channel int8 weights, uint8 activations, convolutions only",
        "calibration_images": len(batches), "method": method, "float_convolutions": list(float_convolutions),
        "tool": "onnxruntime.quantization", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    del quantized.metadata_props[:]
    for key, value in metadata.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    quantized.doc_string = source.doc_string + " (int8)"
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(int8_path))
    return int8_path


def _fuse_gelu(model):
    """A copy of the ONNX `model` with each erf GELU as one com.microsoft `Gelu` node."""
    import copy

    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel as GraphEditor

    editor = GraphEditor(copy.deepcopy(model))
    FusionGelu(editor).apply()
    editor.prune_graph()
    return editor.model


def export_int8(model, path, calibration: Sequence[ImageInput], *, test_config: Optional[TestConfig] = None,
                method: str = "minmax", float_convolutions: Sequence[str] = FLOAT_CONVOLUTIONS,
                training_data=None) -> Path:
    """`export_onnx(model)` quantized to int8 (`quantize_onnx`), calibrated on `calibration` images
    (paths, PIL images or arrays) prepared with `test_config` (default: the model's saved settings);
    training_data as export_onnx's."""
    from .export import export_onnx
    from .settings import test_config_for

    if not calibration:
        raise ValueError("int8 export needs calibration images: give at least one (a few dozen is better)")
    test_config = test_config or test_config_for(model)
    with tempfile.TemporaryDirectory() as folder:
        float_path = export_onnx(model, Path(folder) / "float32.onnx", test_config=test_config,
                                 training_data=training_data)
        return quantize_onnx(float_path, path, calibration_batches(calibration, test_config), method=method,
                             float_convolutions=float_convolutions)
