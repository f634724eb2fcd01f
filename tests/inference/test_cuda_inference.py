"""Inference on a GPU (marked `cuda`; skipped, saying so, without one): float32 parity with TF32
off, CUDA-graph replays equal to the eager forward, `Segmenter` with CUDA graphs.
benchmarks/gpu/device_check.sh runs them on the GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import segnext
from segnext.inference.cuda_graph import CudaGraphSegNeXt
from synthetic_weights import synthetic_images, synthetic_state_dict

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="no CUDA device here (these tests run on a GPU)")]

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "mmseg_reference.safetensors"


@pytest.fixture()
def no_tf32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def reference_case(name: str):
    from safetensors import safe_open

    with safe_open(str(REFERENCE), framework="pt") as handle:
        case = json.loads(handle.metadata()[name])
        expected = {key.split(".", 1)[1]: handle.get_tensor(key) for key in handle.keys()  # noqa: SIM118
                    if key.startswith(name + ".")}
    model = segnext.create_model(f"segnext_{case['variant']}", case["num_classes"], nmf_seed=case["nmf_seed"],
                                 drop_path_rate=0.0)
    model.load_state_dict(synthetic_state_dict(model, case["weight_seed"]))
    images = synthetic_images(case["batch"], case["height"], case["width"], case["image_seed"])
    return model.eval(), images, expected


@pytest.mark.parametrize("name", ["t", "b"])
def test_float32_on_the_gpu_equals_mmsegmentation_with_tf32_off(no_tf32, name):
    model, images, expected = reference_case(name)
    with torch.no_grad():
        logits = model.cuda().forward_logits(images.cuda()).cpu()
    torch.testing.assert_close(logits, expected["decode_logits"], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("amp", [None, torch.float16, torch.bfloat16])
def test_cuda_graph_replays_the_eager_forward(amp):
    model, _, _ = reference_case("t")
    folded = model.cuda().reparameterize()
    graphed = CudaGraphSegNeXt(folded, autocast_dtype=amp)
    for shape in [(1, 3, 64, 96), (2, 3, 96, 64), (1, 3, 64, 96)]:
        images = torch.randn(shape, device="cuda")
        with torch.no_grad():
            replayed = graphed.forward_logits(images)
            eager = graphed._eager(images)  # the recorded function itself, run eagerly
        assert torch.equal(replayed.argmax(1), eager.argmax(1))
        torch.testing.assert_close(replayed, eager, atol=1e-6, rtol=0)
    assert graphed.captures == 2  # the third call replayed the first recording


def test_segmenter_with_cuda_graphs_predicts_the_eager_labels(tmp_path):
    model, _, _ = reference_case("t")
    model.config.test_settings = segnext.TestConfig(img_scale=(160, 96)).to_dict()
    folder = segnext.save_model(model, tmp_path / "model")
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8) for _ in range(3)]
    graphed = segnext.Segmenter.from_checkpoint(folder, device="cuda", backend="cuda_graph")
    folded = segnext.Segmenter.from_checkpoint(folder, device="cuda", backend="eager")
    folded.model = folded.model.reparameterize()
    assert isinstance(graphed.model, CudaGraphSegNeXt)
    for got, want in zip(graphed.predict(photos, batch_size=2), folded.predict(photos, batch_size=2)):
        assert np.array_equal(got, want)


def test_confidence_on_the_gpu_is_the_cpus_to_float_rounding(no_tf32):
    """`predict_with_confidence` takes the maximum on the device; with bfloat16 autocast the scores
    are still float32 when it is taken."""
    model, _, _ = reference_case("t")
    config = segnext.TestConfig(img_scale=(160, 96))
    photo = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    labels, confidence = segnext.Segmenter(model, config, device="cpu").predict_with_confidence(photo)
    for amp, memory_efficient in ((False, None), (True, None), (False, True)):  # True: in bands on the GPU
        gpu = segnext.Segmenter(model.cuda(), config, device="cuda", amp=amp, memory_efficient=memory_efficient)
        got_labels, got = gpu.predict_with_confidence(photo)
        assert got.dtype == np.float32 and got.shape == confidence.shape
        assert (got_labels == labels).mean() >= (0.99 if amp else 0.999)
        if amp:  # bfloat16 (else float16) logits: close on the whole, not at every pixel
            assert np.abs(got - confidence).mean() < 0.01
        else:
            np.testing.assert_allclose(got, confidence, atol=1e-3)
        model.cpu()


def test_probabilities_in_bands_on_the_gpu_are_the_cpus_to_float_rounding(no_tf32, tmp_path):
    """`segnext predict --probs` on a GPU: the bands are made on the device and written to the file
    (with windows over the image at its own size, made with the labels and held as float16)."""
    model, _, _ = reference_case("t")
    photo = np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    for config in (segnext.TestConfig(img_scale=(160, 96)),
                   segnext.TestConfig(img_scale=(160, 96), scales=(0.75, 1.0), flip=True),
                   segnext.TestConfig(img_scale=None, mode="slide", crop_size=(64, 64), stride=(48, 48), flip=True)):
        labels, probabilities = segnext.Segmenter(model.cpu(), config, device="cpu").predict_with_proba(photo)
        gpu = segnext.Segmenter(model.cuda(), config, device="cuda")
        (got_labels, got), = gpu.predict_group([gpu.prepare(photo)], with_probabilities=True,
                                               probabilities_in_bands=True)
        assert (got_labels == labels).mean() >= 0.999
        saved = np.load(got.save(tmp_path / "probs.npy"))
        np.testing.assert_allclose(saved.astype(np.float32), probabilities, atol=2e-3)
        model.cpu()


@pytest.mark.parametrize("options", [dict(in_channels=4), dict(decoder="mlp", head_in_stages=(0, 1, 2, 3))],
                         ids=["rgb_and_near_infrared", "all_mlp_decoder"])
def test_a_model_of_other_inputs_or_decoder_on_the_gpu_and_in_a_cuda_graph(no_tf32, options):
    """in_channels=4 (RGB + near infrared), and the all-MLP decoder (no NMF bases to give the graph):
    the GPU forward is the CPU's to float rounding, and its CUDA-graph replay is its folded eager forward."""
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 5, **options).eval()
    images = torch.randn(1, model.config.in_channels, 64, 96)
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(model.cuda()(images.cuda()).cpu(), expected, atol=2e-4, rtol=1e-4)
        graphed = CudaGraphSegNeXt(model.reparameterize())
        replayed = graphed.forward_logits(images.cuda())
        torch.testing.assert_close(replayed, graphed._eager(images.cuda()), atol=1e-6, rtol=0)


def test_unsure_pixels_left_unlabelled_on_the_gpu_as_on_the_cpu(tmp_path):
    """leave_unsure on the GPU's confidence: the same pixels as on the CPU, but for the few whose
    confidence lies within float rounding of the threshold."""
    model, _, _ = reference_case("t")
    config = segnext.TestConfig(img_scale=(160, 96))
    photo = np.random.default_rng(2).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    cpu_labels, cpu_confidence = segnext.Segmenter(model, config, device="cpu").predict_with_confidence(photo)
    gpu_labels, gpu_confidence = segnext.Segmenter(model.cuda(), config, device="cuda").predict_with_confidence(photo)
    below = float(np.median(cpu_confidence))
    left_cpu = segnext.inference.leave_unsure(cpu_labels, cpu_confidence, below)
    left_gpu = segnext.inference.leave_unsure(gpu_labels, gpu_confidence, below)
    assert (left_cpu == left_gpu).mean() >= 0.99


@pytest.mark.parametrize("flip", [False, True])
def test_sliding_windows_in_bands_on_the_gpu_as_on_the_cpu(no_tf32, flip):
    """A scene at its own size in sliding windows, its logits a band of rows at a time on the device
    (each window normalised on the CPU and moved there): the labels and confidence of the GPU's full
    map of logits, and the CPU's to float rounding."""
    model, _, _ = reference_case("t")
    config = segnext.TestConfig(img_scale=None, mode="slide", crop_size=(64, 64), stride=(48, 48), flip=flip)
    scene = np.random.default_rng(3).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    cpu_labels, cpu_confidence = segnext.Segmenter(model, config, device="cpu").predict_with_confidence(scene)
    gpu = segnext.Segmenter(model.cuda(), config, device="cuda")
    results = {}
    for memory_efficient in (False, True):
        gpu.memory_efficient = memory_efficient
        results[memory_efficient] = gpu.predict_with_confidence(scene)
    (full_labels, full_confidence), (band_labels, band_confidence) = results[False], results[True]
    assert (band_labels == full_labels).mean() >= 0.999 and (band_labels == cpu_labels).mean() >= 0.999
    np.testing.assert_allclose(band_confidence, full_confidence, atol=1e-5)
    np.testing.assert_allclose(band_confidence, cpu_confidence, atol=2e-3)


@pytest.mark.parametrize("flip", [False, True])
def test_a_tiff_scene_read_in_windows_on_the_gpu_gives_the_labels_of_its_pixels(no_tf32, tmp_path, flip):
    """A TIFF scene read from its file a window at a time (`TiffScene`), each window normalised on the
    CPU and moved to the device: the labels of the same pixels given as an array, segmented in bands
    of rows there too."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data import open_tiff_scene

    model, _, _ = reference_case("t")
    config = segnext.TestConfig(img_scale=None, mode="slide", crop_size=(64, 64), stride=(48, 48), flip=flip)
    pixels = np.random.default_rng(4).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "scene.tif", pixels, photometric="rgb", tile=(32, 32), compression="zlib")
    gpu = segnext.Segmenter(model.cuda(), config, device="cuda", memory_efficient=True)
    from_file, from_array = gpu.predict(open_tiff_scene(tmp_path / "scene.tif")), gpu.predict(pixels)
    assert from_file.shape == (150, 230) and (from_file == from_array).mean() >= 0.999
