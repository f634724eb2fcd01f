"""ONNX export: onnxruntime gives the PyTorch outputs (same fixed NMF bases), at any input size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import segnext

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'segnext[onnx]'): ONNX export untested")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segnext[onnx]'): "
                                                 "ONNX parity untested")

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model(checkpoint_path):
    return segnext.create_model(checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    # traced at one size; the graph must be exact at the fixtures' other sizes too
    return segnext.export_onnx(model, tmp_path_factory.mktemp("onnx") / "segnext_t.onnx", 96, 128)


@pytest.mark.parametrize("prefix", ["", "odd_"])
def test_onnxruntime_matches_pytorch_on_the_fixtures(model, onnx_file, io_data, prefix):
    images = io_data[prefix + "input"]  # (2, 3, 256, 320) and (1, 3, 75, 101)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images).numpy()  # the model's fixed (seeded) bases, which the file stores
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= TOLERANCE


def test_graph_is_deterministic_and_self_describing(onnx_file, model):
    graph = onnx.load(str(onnx_file))
    operators = {node.op_type for node in graph.graph.node}
    assert not operators & {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial"}
    assert graph.opset_import[0].version == 17
    meta = {p.key: p.value for p in graph.metadata_props}
    assert int(meta["num_classes"]) == 150
    assert json.loads(meta["class_names"]) == list(model.config.class_names)
    assert json.loads(meta["palette"]) == [list(c) for c in model.config.palette]
    assert json.loads(meta["test_config"])["size_divisor"] == 32  # ADE20K's official test resize
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]


def test_a_model_of_other_input_channels_exports_with_them(checkpoint_path, tmp_path):
    model = segnext.create_model(checkpoint=checkpoint_path, in_channels=4).eval()
    path = segnext.export_onnx(model, tmp_path / "rgbn.onnx", 64, 96)
    images = torch.randn(1, 4, 72, 80)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        assert np.abs(logits - model(images).numpy()).max() <= TOLERANCE
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["input"].startswith("images: float32 (B, 4, H, W)")
    with pytest.raises(ValueError, match="this model takes 4 input channels and its test settings normalise 3"):
        segnext.Segmenter.from_onnx(path)


def test_an_rgb_model_of_bands_exports_its_settings_and_reads_16_bit_colour(checkpoint_path, tmp_path):
    """An RGB model tested on bands (16-bit colour, `TestConfig.bands`): the file says so, and the
    ONNX Segmenter reads the colour in its units as the PyTorch one does."""
    model = segnext.create_model(checkpoint=checkpoint_path).eval()
    settings = segnext.TestConfig(img_scale=None, mean=(1150.0, 1140.0, 1120.0), std=(70.0, 72.0, 80.0), bands=True)
    model.config.test_settings = settings.to_dict()
    path = segnext.export_onnx(model, tmp_path / "wide.onnx", 64, 96)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["input"].startswith("images: float32 (B, 3, H, W), bands") and json.loads(meta["test_config"])["bands"]
    colour = np.random.default_rng(0).integers(1024, 1280, (48, 64, 3)).astype(np.uint16)
    from_onnx = segnext.Segmenter.from_onnx(path)
    assert from_onnx.test_config.reads_bands
    labels = from_onnx.predict(colour)
    assert (labels == segnext.Segmenter(model, settings).predict(colour)).mean() > 0.999


def test_info_reads_what_export_wrote_into_the_file(onnx_file, capsys):
    from segnext.cli.main import main

    assert main(["info", str(onnx_file)]) == 0
    out = capsys.readouterr().out
    for line in ("  variant      segnext_t (ONNX, input tensor(float) batch x 3 x height x width)",
                 "  classes      150 (wall, building, sky, floor, tree, ...)",
                 "  input        images: RGB float32 (B, 3, H, W), (pixel - mean) / std",
                 "  test         whole, img_scale (2048, 512), sides rounded up to a multiple of 32"):
        assert line in out, out
    assert main(["info", str(onnx_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["in_channels"] == 3


def test_random_bases_cannot_be_exported(checkpoint_path, tmp_path):
    model = segnext.create_model(checkpoint=checkpoint_path, nmf_seed=None).eval()
    with pytest.raises(ValueError, match="nmf_seed"):
        segnext.export_onnx(model, tmp_path / "m.onnx", 64, 64)


def test_static_export_refuses_other_sizes(model, tmp_path):
    from segnext.inference import OnnxModel as OnnxSegmenterModel

    path = segnext.export_onnx(model, tmp_path / "static.onnx", 64, 96, dynamic=False)
    runner = OnnxSegmenterModel(path)
    assert runner(torch.zeros(1, 3, 64, 96)).shape == (1, 150, 64, 96)
    with pytest.raises(ValueError, match="exported for 64x96"):
        runner(torch.zeros(1, 3, 64, 64))
    images = torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    assert runner.fixed_batch == 1  # a batch (segnext predict --batch-size) runs one image at a time
    assert torch.equal(runner(images), torch.cat([runner(images[index:index + 1]) for index in range(3)]))


def test_an_opset_too_old_for_the_resizes_is_refused_before_writing(tmp_path):
    model = segnext.create_model("segnext_t", num_classes=3)
    with pytest.raises(ValueError, match="ONNX opset 9 is too old for SegNeXt's resizes; use 11 or newer"):
        segnext.export_onnx(model, tmp_path / "m.onnx", 64, 64, opset=9)
    with pytest.raises(ValueError, match="ONNX opset 99: .*use an opset from 11 to the newest this PyTorch"):
        segnext.export_onnx(model, tmp_path / "m.onnx", 64, 64, opset=99)  # newer than any exporter knows
    assert not (tmp_path / "m.onnx").exists()
