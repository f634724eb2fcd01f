"""`segnext export`: a fixed-size export built for the size of the user's images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import segnext
from segnext.cli.main import main
from segnext.inference import TestConfig
from segnext.inference.preprocess import model_input_sizes

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'segnext[onnx]'): ONNX export untested")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segnext[onnx]'): "
                                          "ONNX models untested")


def test_model_input_sizes_follow_the_test_resize():
    camvid = TestConfig(img_scale=(480, 360), scales=(1.5,))  # the CamVid recipe tests at 1.5x
    assert model_input_sizes((360, 480), camvid) == ((540, 720),)
    ade20k = TestConfig(img_scale=(2048, 512), size_divisor=32)
    assert model_input_sizes((40, 56), ade20k) == ((512, 736),)  # 512x717, up to a multiple of 32
    slide = TestConfig(img_scale=(2048, 1024), mode="slide", crop_size=(1024, 1024), stride=(768, 768))
    assert model_input_sizes((1024, 2048), slide) == ((1024, 1024),)  # the window
    assert model_input_sizes((100, 200), TestConfig(img_scale=None, mode="slide", crop_size=(64, 512),
                                                    stride=(48, 384))) == ((64, 200),)
    assert model_input_sizes((64, 64), TestConfig(img_scale=(64, 64), scales=(0.5, 1.0), flip=True)) == \
        ((32, 32), (64, 64))


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A model that tests its 40x56 images at 1.5 times a (96, 64) scale: 96x134 inputs."""
    model = segnext.create_model("segnext_t", num_classes=4)
    model.config.test_settings = TestConfig(img_scale=(96, 64), scales=(1.5,)).to_dict()
    return segnext.save_model(model.eval(), tmp_path_factory.mktemp("models") / "model")


def test_static_export_for_an_image_size_predicts_those_images(model_folder, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    path = tmp_path / "static.onnx"
    assert main(["export", "-c", str(model_folder), "-o", str(path), "--static", "--image-size", "40", "56",
                 "--verify"]) == 0
    assert "96x134 input" in capsys.readouterr().out
    through_onnx = segnext.Segmenter.from_onnx(path).predict(image)
    through_torch = segnext.Segmenter.from_checkpoint(model_folder, device="cpu", backend="eager").predict(image)
    assert through_onnx.shape == (40, 56)
    assert (through_onnx == through_torch).mean() >= 0.99
    # each pixel's confidence through ONNX (logits at the input size, then the bands), as `serve --onnx` gives it
    onnx_labels, onnx_confidence = segnext.Segmenter.from_onnx(path).predict_with_confidence(image)
    assert np.array_equal(onnx_labels, through_onnx)
    _, torch_confidence = segnext.Segmenter.from_checkpoint(model_folder, device="cpu",
                                                            backend="eager").predict_with_confidence(image)
    assert np.abs(onnx_confidence - torch_confidence).mean() < 1e-3

    # the size the export was given as --shape (the image's own) is not what the model gets: named
    assert main(["export", "-c", str(model_folder), "-o", str(tmp_path / "wrong.onnx"), "--static",
                 "--shape", "40", "56"]) == 0
    with pytest.raises(ValueError, match=r"exported for 40x56 inputs but got 96x134 \(the image after the test "
                                         r"resize\).*--static --image-size H W"):
        segnext.Segmenter.from_onnx(tmp_path / "wrong.onnx").predict(image)


def test_a_static_export_of_a_multi_scale_test_is_refused(tmp_path, capsys):
    model = segnext.create_model("segnext_t", num_classes=4)
    model.config.test_settings = TestConfig(img_scale=(96, 64), scales=(0.5, 1.0), flip=True).to_dict()
    folder = segnext.save_model(model.eval(), tmp_path / "multi")
    assert main(["export", "-c", str(folder), "-o", str(tmp_path / "m.onnx"), "--static",
                 "--image-size", "40", "56"]) == 1
    error = capsys.readouterr().err
    assert "input sizes 32x45, 64x90; a static export takes one. Leave out --static" in error
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(SystemExit):  # one way to give the size
        main(["export", "-c", str(folder), "--shape", "64", "64", "--image-size", "40", "56"])


def test_an_export_never_replaces_a_file_that_is_not_onnx(model_folder, capsys):
    """`--out model/model.safetensors` (argparse reads --out as --output) replaced the weights by the ONNX file."""
    weights = model_folder / "model.safetensors"
    before = weights.read_bytes()
    assert main(["export", "-c", str(model_folder), "--out", str(weights)]) == 1
    assert "the file exists and is not a .onnx file; writing there would replace it" in capsys.readouterr().err
    assert weights.read_bytes() == before
