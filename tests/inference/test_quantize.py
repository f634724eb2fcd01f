"""int8 export: the graph (integer convolutions, the NMF and the kept convolutions in float32), its
metadata, the readers that run it (Segmenter, predict, eval, serve) and the errors of the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'segnext[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segnext[onnx]')")
import onnx  # noqa: E402

import segnext  # noqa: E402
from segnext.cli.main import main  # noqa: E402


def scene(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Two flat regions with noise: something a model and its calibration can see."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2] = rng.integers(0, 256, 3)
    image[:, width // 2:] = rng.integers(0, 256, 3)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """A model folder quantized once by the command (`export --int8 --verify`, calibrated on four
    images), for the tests of the graph, of its metadata and of the readers that run it."""
    folder = tmp_path_factory.mktemp("int8")
    model = segnext.create_model("segnext_t", 4, class_names=["a", "b", "c", "d"])
    model.config.test_settings = segnext.TestConfig(img_scale=None).to_dict()
    (folder / "calibration").mkdir()
    for index in range(4):
        Image.fromarray(scene(index)).save(folder / "calibration" / f"{index}.png")
    path = folder / "m.int8.onnx"
    assert main(["export", "-c", str(segnext.save_model(model, folder / "model")), "--int8", "--calibration",
                 str(folder / "calibration"), "--calibration-images", "4", "-o", str(path), "--verify"]) == 0
    return model, path


def test_the_convolutions_are_integer_and_the_rest_float(int8_model):
    _, path = int8_model
    graph = onnx.load(str(path)).graph
    produced_by = {output: node for node in graph.node for output in node.output}
    quantized, kept = [], []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = produced_by.get(node.input[1])
        (quantized if weight is not None and weight.op_type == "DequantizeLinear" else kept).append(node.name)
    assert len(quantized) > 120  # the blocks of stages 2-4
    kept_groups = ("/backbone/patch_embed1/", "/backbone/patch_embed2/", "/backbone/block1.", "/decode_head/")
    assert kept and all(name.startswith(kept_groups) for name in kept)
    matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    assert matmuls and not any(produced_by.get(name) is not None and produced_by[name].op_type == "DequantizeLinear"
                               for node in matmuls for name in node.input)  # the NMF stays float32


def test_metadata_and_readers(int8_model, tmp_path):
    model, path = int8_model
    meta = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    quantization = json.loads(meta["quantization"])
    assert quantization["calibration_images"] == 4 and quantization["method"] == "minmax"
    assert json.loads(meta["class_names"]) == ["a", "b", "c", "d"]
    assert json.loads(meta["test_config"])["img_scale"] is None
    segmenter = segnext.Segmenter.from_onnx(path)
    image = scene(10)
    labels = segmenter.predict(image)
    assert labels.shape == image.shape[:2] and labels.max() < 4
    reference = segnext.Segmenter(model.eval(), segmenter.test_config).predict(image)
    assert (labels == reference).mean() > 0.5  # random weights have near ties; trained models agree far better


def test_predict_and_eval_run_what_the_command_quantized(int8_model, tmp_path):
    _, out = int8_model
    for split in ("train", "val"):
        (tmp_path / "data" / "images" / split).mkdir(parents=True)
        (tmp_path / "data" / "labels" / split).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(scene(index)).save(tmp_path / "data" / "images" / split / f"{index}.png")
            Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 4).astype(np.uint8)).save(
                tmp_path / "data" / "labels" / split / f"{index}.png")
    (tmp_path / "data" / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c", "d"]}))
    assert main(["predict", "--onnx", str(out), str(tmp_path / "data" / "images" / "val"), "--out",
                 str(tmp_path / "pred"), "--no-progress"]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 3
    config = tmp_path / "folder.yaml"
    config.write_text(json.dumps({"model": {"name": "segnext_t"}, "data": {"dataset": "folder",
                                                                          "root": str(tmp_path / "data")}}))
    assert main(["eval", str(config), "--onnx", str(out), "--out", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["num_images"] == 3


def test_the_command_names_what_is_missing(tmp_path, capsys):
    folder = segnext.save_model(segnext.create_model("segnext_t", 3), tmp_path / "model")
    assert main(["export", "-c", str(folder), "--int8", "-o", str(tmp_path / "m.onnx")]) == 1
    assert "--int8 needs --calibration" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", "-c", str(folder), "--int8", "--calibration", str(tmp_path / "empty"), "-o",
                 str(tmp_path / "m.onnx")]) == 1
    assert "a folder with no images" in capsys.readouterr().err


def test_a_model_of_other_input_channels_is_calibrated_on_files_of_its_bands(tmp_path, capsys):
    """int8 for a 4-channel model: calibrated on .npy files of its bands (prepared as its test prepares
    them), its labels those of the float model but for a few pixels; an RGB model leaves arrays out."""
    model = segnext.create_model("segnext_t", 4, in_channels=4)
    model.config.test_settings = segnext.TestConfig(img_scale=None, mean=(100, 110, 120, 500),
                                                    std=(50, 55, 60, 200)).to_dict()
    folder = segnext.save_model(model, tmp_path / "rgbn")
    (tmp_path / "bands").mkdir()
    tiles = [np.concatenate([scene(index), scene(index + 9)[:, :, :1] * 4.0], axis=2) for index in range(4)]
    for index, tile in enumerate(tiles):
        np.save(tmp_path / "bands" / f"{index}.npy", tile.astype(np.float32))
    path = tmp_path / "rgbn.int8.onnx"
    assert main(["export", "-c", str(folder), "--int8", "--calibration", str(tmp_path / "bands"), "-o",
                 str(path)]) == 0
    quantized, float_model = segnext.Segmenter.from_onnx(path), segnext.Segmenter.from_checkpoint(folder)
    agreement = np.mean([(quantized.predict(tile) == float_model.predict(tile)).mean() for tile in tiles])
    assert agreement > 0.9, agreement
    rgb = segnext.save_model(segnext.create_model("segnext_t", 3), tmp_path / "rgb")
    Image.fromarray(scene(7)).save(tmp_path / "bands" / "photo.png")
    capsys.readouterr()
    assert main(["export", "-c", str(rgb), "--int8", "--calibration", str(tmp_path / "bands"), "-o",
                 str(tmp_path / "rgb.int8.onnx")]) == 0
    assert "segnext export: note: " in capsys.readouterr().err
